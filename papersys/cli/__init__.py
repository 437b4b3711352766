"""The ``papersys`` command line: commands in ``main``, console plumbing in ``console``, the status table."""

from papersys.cli.main import cli, main

__all__ = ["cli", "main"]
