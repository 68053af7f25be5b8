"""A file-backed array that survives the process that made it.

`file://` arrays are ordinary .npy files: they outlive every process (and,
unlike /dev/shm, a reboot).  This script runs itself three times as fresh
interpreters; each run attaches the file, appends to it and flushes with
msync; finally the parent reads it back with plain NumPy.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np

import SharedArray as sa


def step(path: str) -> None:
    name = "file://" + path
    try:
        log = sa.attach(name)
    except FileNotFoundError:
        log = sa.create(name, 8, np.int64)
    runs = int(log[0]) + 1
    log[0] = runs
    log[runs] = os.getpid()
    base = log.base
    assert isinstance(base, sa.Mapping)
    base.msync(sa.MS_SYNC)
    print(f"run {runs} (pid {os.getpid()}): found {runs - 1} earlier run(s)")


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--step":
        step(sys.argv[2])
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "log.npy")
        pids = []
        for _ in range(3):
            r = subprocess.run([sys.executable, __file__, "--step", path],
                               check=True, capture_output=True, text=True)
            print(r.stdout, end="")
            pids.append(int(r.stdout.split("pid ")[1].split(")")[0]))
        saved = np.load(path)  # a plain .npy file: NumPy reads it directly
        ok = saved[0] == 3 and saved[1:4].tolist() == pids
        print(f"np.load sees {int(saved[0])} runs by pids "
              f"{saved[1:4].tolist()}: {ok}")
        sa.delete("file://" + path)
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
