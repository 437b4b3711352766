"""Entry point for ``python -m papersys``."""

from papersys.cli import main

if __name__ == "__main__":
    main()
