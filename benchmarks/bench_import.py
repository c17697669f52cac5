"""Time ``import tsdiff`` in fresh interpreters (median of several runs).

Usage: python benchmarks/bench_import.py [runs]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    base, pkg = [], []
    for _ in range(runs):
        for target, code in ((base, "pass"), (pkg, "import tsdiff")):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            target.append(time.perf_counter() - t0)
    b, p = statistics.median(base), statistics.median(pkg)
    print("| measure | seconds |\n|---|---:|")
    print(f"| bare interpreter start | {b:.3f} |")
    print(f"| start + import tsdiff | {p:.3f} |")
    print(f"| import tsdiff alone | {p - b:.3f} |")


if __name__ == "__main__":
    main()
