"""A pool of workers over one big array, with no copies.

The input and the output live in shared memory.  Slices of them are passed
to pool workers as ordinary arguments: SharedArray makes multiprocessing
send them by reference (name, offset, strides), so each worker reads and
writes the parent's memory directly, and sees what the other workers write.

The job: scale the rows of a matrix so that the longest row has length 1.
Each worker takes one block of rows, computes the lengths (norms) of its
rows into the shared output, waits at a barrier until every block's norms
are in, reads the largest of all of them and scales its own rows.  The
barrier is what the algorithm needs between its two steps; it also means
that every block is held by a worker of its own at the same time, so the
pool runs one block per worker, side by side, whatever the machine's load.
"""

import itertools
import multiprocessing as mp
import multiprocessing.synchronize
import os
import sys

import numpy as np
import numpy.typing as npt

import SharedArray as sa

WORKERS = 4
ROWS, COLS = 4000, 500

_barrier: "multiprocessing.synchronize.Barrier | None" = None


def start_worker(barrier: "multiprocessing.synchronize.Barrier") -> None:
    """Pool initializer: a barrier can only reach a worker when it starts."""
    global _barrier
    _barrier = barrier


def normalize(rows: npt.NDArray[np.float64], norms: npt.NDArray[np.float64],
              all_norms: npt.NDArray[np.float64]) -> int:
    """Runs in a worker: rows, norms and all_norms are views of the parent's
    arrays (norms is this block's part of all_norms)."""
    assert _barrier is not None
    np.sqrt(np.einsum("ij,ij->i", rows, rows), out=norms)
    _barrier.wait(timeout=120)  # now all_norms is complete
    rows /= all_norms.max()
    return os.getpid()


def main() -> int:
    tag = f"sharedarray-example-pool-{os.getpid()}"
    original = np.random.default_rng(0).standard_normal((ROWS, COLS))
    data = sa.from_array(f"shm://{tag}-in", original)
    norms = sa.create(f"shm://{tag}-out", ROWS)
    try:
        # One block per worker: a block waits at the barrier for all the
        # others, so each must have a worker of its own (chunksize=1).
        bounds = np.linspace(0, ROWS, WORKERS + 1).astype(int)
        blocks = [(data[a:b], norms[a:b], norms)
                  for a, b in itertools.pairwise(bounds)]
        spawn = mp.get_context("spawn")
        with spawn.Pool(WORKERS, initializer=start_worker,
                        initargs=(spawn.Barrier(WORKERS),)) as pool:
            pids = pool.starmap(normalize, blocks, chunksize=1)
        want = np.linalg.norm(original, axis=1)
        ok = (np.allclose(norms, want)
              and np.allclose(data, original / want.max()))
        print(f"{len(pids)} blocks done by {len(set(pids))} worker processes "
              f"at once; longest row now {np.linalg.norm(data, axis=1).max():.3f}; "
              f"results match: {ok}")
        return 0 if ok else 1
    finally:
        sa.delete(f"shm://{tag}-in")
        sa.delete(f"shm://{tag}-out")


if __name__ == "__main__":
    sys.exit(main())
