"""How fast is SynthFER generation?

Prints images/s and seconds for 20,000 faces at 48 px grey (the book's default;
target: <= 10 s on 2 cores) and, for reference, 112 px RGB. Each setting runs
`--repeats` times and reports the best run, since other processes on a shared
machine only ever make a run slower.

    python benchmarks/bench_synthfer.py [--n 20000] [--repeats 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssfer.data.synthfer import _workers, make_synthfer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="images per setting")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    print(f"SynthFER generation, n={args.n}, {_workers()} worker threads, {os.cpu_count()} CPUs visible")
    for size, channels in ((48, 1), (112, 3)):
        best = float("inf")
        for _ in range(args.repeats):
            t = time.perf_counter()
            data = make_synthfer(args.n, size=size, channels=channels, seed=0)
            best = min(best, time.perf_counter() - t)
        mb = data.images.nbytes / 2**20
        print(f"  {size:>3} px {'grey' if channels == 1 else 'RGB '}: {best:6.2f} s  "
              f"{args.n / best:8.0f} images/s  ({mb:.0f} MiB uint8)")
        del data


if __name__ == "__main__":
    main()
