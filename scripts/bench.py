"""Benchmarks: ``uv run python scripts/bench.py NAME [options]``; each prints a JSON result and a summary.

Every benchmark lives in ``scripts/benchmarks/<name>.py`` and defines ``add_arguments(parser)`` and
``run(args) -> dict``. Figures quoted in devdoc/ and issue notes come from these runs (medians of
repeats taken in one run; the machine is noisy, so compare ratios measured together).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _names() -> list[str]:
    return sorted(p.stem for p in (HERE / "benchmarks").glob("*.py") if not p.stem.startswith("_"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    sub = parser.add_subparsers(dest="name", required=True)
    for name in _names():
        module = importlib.import_module(f"benchmarks.{name}")
        sp = sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(sp)
        sp.set_defaults(_module=module)
    args = parser.parse_args()
    result = args._module.run(args)
    text = json.dumps(result, indent=2, sort_keys=True, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    for line in result.get("summary", []) if isinstance(result.get("summary"), list) else []:
        print(line, file=sys.stderr)  # a bench's summary lines, after its JSON


if __name__ == "__main__":
    main()
