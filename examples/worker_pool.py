"""A pool of workers over one big array, with no copies.

The input and the output live in shared memory.  Slices of them are passed
to pool workers as ordinary arguments: SharedArray makes multiprocessing
send them by reference (name, offset, strides), so each worker reads and
writes the parent's memory directly.
"""

import multiprocessing as mp
import os
import sys

import numpy as np
import numpy.typing as npt

import SharedArray as sa


def row_norms(rows: npt.NDArray[np.float64],
              out: npt.NDArray[np.float64]) -> int:
    """Runs in a worker: rows and out are views of the parent's arrays."""
    np.sqrt(np.einsum("ij,ij->i", rows, rows), out=out)
    return os.getpid()


def main() -> int:
    tag = f"sharedarray-example-pool-{os.getpid()}"
    rng = np.random.default_rng(0)
    data = sa.from_array(f"shm://{tag}-in", rng.standard_normal((4000, 500)))
    norms = sa.create(f"shm://{tag}-out", data.shape[0])
    try:
        blocks = range(0, data.shape[0], 500)
        with mp.get_context("spawn").Pool(4) as pool:
            pids = pool.starmap(
                row_norms, [(data[i:i + 500], norms[i:i + 500]) for i in blocks])
        ok = np.allclose(norms, np.linalg.norm(data, axis=1))
        print(f"{len(pids)} blocks done by {len(set(pids))} worker processes; "
              f"norms match: {ok}")
        return 0 if ok else 1
    finally:
        sa.delete(f"shm://{tag}-in")
        sa.delete(f"shm://{tag}-out")


if __name__ == "__main__":
    sys.exit(main())
