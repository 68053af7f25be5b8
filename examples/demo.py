"""Several processes fill one shared array, found by its name.

The parent creates an array in POSIX shared memory and starts four workers
with the 'spawn' start method: each is a fresh interpreter that inherits
nothing from the parent and receives only the array's *name*.  Each worker
attaches the array and fills its own block of rows; the parent, which never
receives any data back, then checks every row in its own view of the same
memory.

    python examples/demo.py

Exits with status 0 if every row holds what it should, 1 otherwise.  The
segment is deleted at the end, even on error, so nothing is left in /dev/shm.
"""

import multiprocessing
import os
import sys
import zlib

import numpy as np
import numpy.typing as npt

import SharedArray as sa

ROWS, COLS, WORKERS = 100, 1000, 4


def row_values(first: int, last: int) -> npt.NDArray[np.float64]:
    """What rows first..last (inclusive) must hold: sqrt of a running index."""
    index = np.arange(first * COLS, (last + 1) * COLS, dtype=np.float64)
    return np.sqrt(index).reshape(-1, COLS)


def worker(name: str, number: int, first: int, last: int) -> None:
    array = sa.attach(name)          # maps the parent's memory: no copy
    array[first:last + 1] = row_values(first, last)
    # One write per line, so that lines of concurrent workers do not mix.
    sys.stdout.write(f"worker {number} (pid {os.getpid()}): "
                     f"filled rows {first}..{last}\n")
    sys.stdout.flush()


def main() -> int:
    name = f"shm://sharedarray-demo-{os.getpid()}"
    array = sa.create(name, (ROWS, COLS), dtype=np.float64)
    try:
        print(f"parent (pid {os.getpid()}): created {name}, "
              f"shape {array.shape}, {array.nbytes} bytes", flush=True)

        spawn = multiprocessing.get_context("spawn")
        bounds = np.linspace(0, ROWS, WORKERS + 1).astype(int)
        workers = [
            spawn.Process(target=worker,
                          args=(name, number, int(start), int(stop) - 1))
            for number, (start, stop) in enumerate(zip(bounds, bounds[1:]))
        ]
        for process in workers:
            process.start()
        for process in workers:
            process.join()

        failed = [n for n, p in enumerate(workers) if p.exitcode != 0]
        expected = row_values(0, ROWS - 1)
        ok = not failed and np.array_equal(array, expected)

        print(f"parent: shape {array.shape}, dtype {array.dtype}, "
              f"crc32 {zlib.crc32(array.tobytes()):08x} "
              f"(expected {zlib.crc32(expected.tobytes()):08x})")
        if failed:
            print(f"parent: FAILED, workers {failed} exited with an error")
        elif not ok:
            bad = np.flatnonzero(~(array == expected).all(axis=1))
            print(f"parent: FAILED, {bad.size} rows differ, "
                  f"the first is row {bad[0]}")
        else:
            print("parent: every row is right: OK")
        return 0 if ok else 1
    finally:
        sa.delete(name)


if __name__ == "__main__":
    sys.exit(main())
