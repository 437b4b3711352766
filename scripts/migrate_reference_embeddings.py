"""Migrate legacy yearly datasets (lyk/ArxivEmbedding, generations 1 and 2) into the papersys store.

    uv run python scripts/migrate_reference_embeddings.py LEGACY_DIR [--config PATH]
        [--model LEGACY_COL=ALIAS[:HF_NAME] ...] [--dry-run] [--report PATH]

Prints a summary; ``--report`` also writes the full report as JSON. Exit status: 0 when every input was
usable, 1 when some input was unusable (reported and skipped), the error's own status on a papersys error.
See devdoc/migration.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from papersys import service
from papersys.cli.console import print_error, progress_runtime, report_text, setup_logging
from papersys.config import load_config
from papersys.errors import PapersysError
from papersys.store.atomic import write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("legacy_dir", type=Path, metavar="LEGACY_DIR", help="directory holding the legacy files")
    parser.add_argument("--config", help="TOML config file (default: $PAPERSYS_CONFIG, else embedded defaults)")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="LEGACY_COL=ALIAS[:HF_NAME]",
        help="map a legacy vector column to a model alias (repeatable; default: jasper_v1, conan_v1, embedding)",
    )
    parser.add_argument("--dry-run", action="store_true", help="read and count everything, write nothing")
    parser.add_argument("--report", type=Path, metavar="PATH", help="also write the report as JSON to PATH")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        setup_logging(config.log_level)
        with progress_runtime() as runtime:
            report = service.migrate_legacy(
                config, args.legacy_dir, models=args.model, dry_run=args.dry_run, runtime=runtime
            )
        for line in report_text(report, as_json=False):
            print(line)
        if args.report:
            write_json(report.to_dict(), args.report)
    except (PapersysError, KeyboardInterrupt) as exc:
        return print_error(exc)
    return 1 if report.unusable else 0


if __name__ == "__main__":
    sys.exit(main())
