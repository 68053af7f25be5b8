"""A producer/consumer pipeline over a ring of frames in shared memory.

The producer (an acquisition process, say) writes frames into slots of one
shared array and passes only slot numbers through a queue; the consumer
processes each frame in place and hands the slot back.  Frames never go
through a pipe.
"""

import multiprocessing as mp
import os
import sys

import numpy as np

import SharedArray as sa

SLOTS, HEIGHT, WIDTH, FRAMES = 4, 480, 640, 40


def produce(name: str, free: "mp.Queue[int]", full: "mp.Queue[int]") -> None:
    ring = sa.attach(name)
    for n in range(FRAMES):
        slot = free.get()
        ring[slot] = n % 256          # "acquire" frame n into the slot
        full.put(slot)
    full.put(-1)


def consume(name: str, free: "mp.Queue[int]", full: "mp.Queue[int]",
            results: "mp.Queue[float]") -> None:
    ring = sa.attach(name, ro=True)
    while (slot := full.get()) != -1:
        results.put(float(ring[slot].mean()))
        free.put(slot)
    results.put(-1.0)


def main() -> int:
    name = f"shm://sharedarray-example-ring-{os.getpid()}"
    sa.create(name, (SLOTS, HEIGHT, WIDTH), np.uint8)
    ctx = mp.get_context("spawn")
    free: mp.Queue[int] = ctx.Queue()
    full: mp.Queue[int] = ctx.Queue()
    results: mp.Queue[float] = ctx.Queue()
    for slot in range(SLOTS):
        free.put(slot)
    procs = [ctx.Process(target=produce, args=(name, free, full)),
             ctx.Process(target=consume, args=(name, free, full, results))]
    try:
        for p in procs:
            p.start()
        means = []
        while (m := results.get(timeout=60)) != -1.0:
            means.append(m)
        for p in procs:
            p.join(60)
        ok = means == [float(n % 256) for n in range(FRAMES)]
        print(f"consumer processed {len(means)} frames of {HEIGHT}x{WIDTH} "
              f"through {SLOTS} shared slots; in order and intact: {ok}")
        return 0 if ok and all(p.exitcode == 0 for p in procs) else 1
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        sa.delete(name)


if __name__ == "__main__":
    sys.exit(main())
