"""Migrate legacy yearly datasets (lyk/ArxivEmbedding, generations 1 and 2) into the papersys store.

    uv run python scripts/migrate_reference_embeddings.py LEGACY_DIR [--config PATH]
        [--model LEGACY_COL=ALIAS[:HF_NAME] ...] [--dry-run] [--report PATH]

Prints a summary; ``--report`` also writes the full report as JSON. Exit status: 0 when every input was
usable, 1 when some input was unusable (reported and skipped), the error's own status on a papersys error.
See devdoc/migration.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from papersys import service
from papersys.config import load_config
from papersys.errors import PapersysError
from papersys.progress import LogProgress, RichProgress
from papersys.runtime import Runtime
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
        logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        sink: RichProgress | LogProgress = RichProgress() if sys.stderr.isatty() else LogProgress()
        with sink:
            report = service.migrate_legacy(
                config, args.legacy_dir, models=args.model, dry_run=args.dry_run, runtime=Runtime(progress=sink)
            )
        for line in report.summary():
            print(line)
        if args.report:
            write_json(report.to_dict(), args.report)
    except PapersysError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 1 if report.unusable else 0


if __name__ == "__main__":
    sys.exit(main())
