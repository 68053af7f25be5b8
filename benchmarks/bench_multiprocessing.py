"""256 MiB to a pool worker and summed: by reference vs by value.

    python benchmarks/bench_multiprocessing.py [--mib 256] [--rounds 7]

Contenders, interleaved round by round, medians reported:
  by reference  the shared array itself is the task argument (SharedArray's
                reducer sends name + offset/shape/strides; the worker
                re-attaches)
  by name       the task argument is the name; the worker calls attach()
                (what users wrote by hand before)
  by value      an ordinary ndarray with the same contents (pickled, copied
                through the pool's pipe)
Each measurement is one pool.apply(np.sum, ...) round trip in a warm
'spawn' pool of one worker.
"""

import argparse
import multiprocessing as mp
import os
import statistics
import time

import numpy as np

import SharedArray as sa


def sum_by_name(name):
    return float(sa.attach(name, ro=True).sum())


def total(a):
    return float(a.sum())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    name = f"shm://sharedarray-bench-mp-{os.getpid()}"
    n = args.mib * (1 << 20) // 8
    shared = sa.create(name, n, np.float64)
    shared[:] = 1.0
    plain = np.ones(n)
    want = float(n)
    times = {"by reference": [], "by name": [], "by value": []}
    try:
        with mp.get_context("spawn").Pool(1) as pool:
            pool.apply(total, (np.zeros(1),))  # warm up the worker
            jobs = {
                "by reference": lambda: pool.apply(total, (shared,)),
                "by name": lambda: pool.apply(sum_by_name, (name,)),
                "by value": lambda: pool.apply(total, (plain,)),
            }
            for _ in range(args.rounds):
                for label, job in jobs.items():
                    t = time.perf_counter()
                    got = job()
                    times[label].append(time.perf_counter() - t)
                    assert got == want, (label, got, want)
    finally:
        sa.delete(name)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.mib} MiB float64 to a spawn pool worker and summed; "
          f"median of {args.rounds} interleaved rounds "
          f"({os.cpu_count()} CPUs, NumPy {np.__version__})\n")
    print("| contender | median | by value / this |")
    print("|---|---|---|")
    for label, m in med.items():
        print(f"| {label} | {m * 1e3:.1f} ms | {med['by value'] / m:.1f}x |")


if __name__ == "__main__":
    main()
