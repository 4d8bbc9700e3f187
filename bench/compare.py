"""Ratios between two runs of one bench script (e.g. the code before and after a change, each run with its
own PYTHONPATH), row by row: new / old for every measured number.

    PYTHONPATH=/tmp/old python bench/bench_train_throughput.py --json old.json
    python bench/bench_train_throughput.py --json new.json
    python bench/compare.py old.json new.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

KEYS = ("preset", "batch", "length")  # what names a row; every other number is a measurement


def row_key(row: dict) -> tuple:
    return tuple(row.get(k) for k in KEYS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args()
    old = {row_key(r): r for r in json.loads(args.old.read_text())["rows"]}
    for row in json.loads(args.new.read_text())["rows"]:
        before = old.get(row_key(row))
        if before is None:
            print(f"{row_key(row)}: not in {args.old}")
            continue
        ratios = {k: v / before[k] for k, v in row.items()
                  if k not in KEYS and isinstance(v, (int, float)) and before.get(k)}
        print(", ".join(f"{k}={row.get(k)}" for k in KEYS if k in row) + ": "
              + ", ".join(f"{k} {before[k]:.4g} -> {row[k]:.4g} ({r:.2f}x)" for k, r in ratios.items()))


if __name__ == "__main__":
    main()
