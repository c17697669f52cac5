"""Time ``import tsdiff`` in fresh interpreters (median of several runs).

Usage: python benchmarks/bench_import.py [--runs N] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, help="write the table into this markdown file")
    args = parser.parse_args()
    runs = args.runs
    base, pkg = [], []
    for _ in range(runs):
        for target, code in ((base, "pass"), (pkg, "import tsdiff")):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            target.append(time.perf_counter() - t0)
    b, p = statistics.median(base), statistics.median(pkg)
    lines = [
        f"Command: `python benchmarks/bench_import.py --out benchmarks/RESULTS.md` (median of {runs} fresh "
        "interpreters; torch, scikit-learn and the other heavy libraries load only on first use)",
        "",
        "| measure | seconds |",
        "|---|---:|",
        f"| bare interpreter start | {b:.3f} |",
        f"| start + import tsdiff | {p:.3f} |",
        f"| import tsdiff alone | {p - b:.3f} |",
    ]
    print("\n".join(lines))
    if args.out:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from report import write_section

        write_section(args.out, "Import time", "\n".join(lines))


if __name__ == "__main__":
    main()
