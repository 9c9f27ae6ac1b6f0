"""Command line: generate the demo registry and write its CSV files.

python -m setup.demo_data --households 2000 --out var/demo-input
"""

import argparse
import sys
import time
from datetime import date

from .registry import generate, write_csv


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}",
        description="Generate a seeded, realistic registry and write it as CSV for Odoo's import.",
    )
    parser.add_argument("--households", type=int, default=2000, help="number of households (default 2000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--country", default="PH", help="ISO 3166-1 alpha-2 code (default PH)")
    parser.add_argument("--out", default="var/demo-input", help="output folder (default var/demo-input)")
    parser.add_argument(
        "--as-of",
        type=date.fromisoformat,
        default=None,
        help="day the ages refer to, YYYY-MM-DD (default today)",
    )
    args = parser.parse_args(argv)
    if args.households < 0:
        parser.error("--households must be 0 or more")
    try:
        started = time.perf_counter()
        registry = generate(args.households, seed=args.seed, country=args.country, as_of=args.as_of)
        generated = time.perf_counter()
        paths = write_csv(registry, args.out)
        written = time.perf_counter()
    except ValueError as exc:
        parser.error(str(exc))
    for path in paths.values():
        print(path)
    summary = registry.summary()
    print(
        f"{summary['households']} households, {summary['individuals']} individuals "
        f"(mean size {summary['average_household_size']:.2f}), {summary['areas']} areas; "
        f"generated in {generated - started:.2f} s, written in {written - generated:.2f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
