"""Decode-once cache on the real FER2013 (Kaggle folders): cold build vs re-open.

    .venv/bin/python benchmarks/bench_cache.py [--tar ../shared/data/fer2013.tar] [--workers 1 2]

Unpacks the tar to a temporary folder, builds the train split's cache at 48 px
(grey) once per worker count, each into a fresh cache folder, then re-opens it
(manifest scan + key + np.load mmap) and reads every pixel once. Prints the
machine's load average too: on a shared machine the timings move with it, the
CPU time of the one-worker build (decoding in this process) much less.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ssfer.data import load_dataset  # noqa: E402
from ssfer.data.decode import default_workers  # noqa: E402


def main() -> None:
    shared = Path(os.environ.get("SSFER_SHARED_DATA", REPO.parent / "shared" / "data"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tar", type=Path, default=shared / "fer2013.tar")
    ap.add_argument("--split", default="train")
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--workers", type=int, nargs="+", default=sorted({1, default_workers()}))
    ap.add_argument("--reopen", type=int, default=3, help="re-open repetitions (best is reported)")
    args = ap.parse_args()
    if not args.tar.is_file():
        sys.exit(f"{args.tar} not found (set SSFER_SHARED_DATA or pass --tar)")
    tmp = Path(tempfile.mkdtemp(prefix="ssfer-bench-"))
    try:
        t = time.perf_counter()
        subprocess.run(["tar", "-xf", str(args.tar), "-C", str(tmp)], check=True)
        print(f"unpack {args.tar.name}: {time.perf_counter() - t:.2f} s; load average {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} cores")
        for w in args.workers:
            cache = tmp / f"cache-w{w}"
            t, c = time.perf_counter(), time.process_time()
            d = load_dataset("fer2013", tmp, args.split, size=args.size, channels=1, cache_dir=cache, workers=w)
            cold, cpu = time.perf_counter() - t, time.process_time() - c
            n = len(d)
            mb = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) / 2**20
            print(f"cold build, {w} worker(s): {n} images {d.images.shape[1:]} in {cold:.2f} s "
                  f"= {n / cold:,.0f} img/s; cache {mb:.1f} MiB"
                  + (f"; CPU {cpu:.2f} s = {n / cpu:,.0f} img/s per busy core" if w == 1 else ""))
            best = best_read = float("inf")
            for _ in range(args.reopen):
                t = time.perf_counter()
                d = load_dataset("fer2013", tmp, args.split, size=args.size, channels=1, cache_dir=cache)
                best = min(best, time.perf_counter() - t)
                t = time.perf_counter()
                total = int(np.asarray(d.images, dtype=np.uint8).sum(dtype=np.uint64))
                best_read = min(best_read, time.perf_counter() - t)
            print(f"  re-open (scan {n} files + key + mmap): {best:.3f} s, best of {args.reopen}; "
                  f"read all pixels: {best_read:.3f} s (checksum {total}); speed-up x{cold / best:.0f}")
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
