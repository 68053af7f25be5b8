"""Every script in examples/ runs to success (each checks its own result)."""

import glob
import os
import re
import subprocess
import sys

import pytest

from _helpers import SHM_DIR

EXAMPLES = sorted(glob.glob(os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "examples", "*.py")))


def _shm():
    return set(os.listdir(SHM_DIR))


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_example_runs_and_cleans_up(path):
    before = _shm()
    r = subprocess.run([sys.executable, path], capture_output=True, text=True,
                       timeout=300, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip(), "an example should say what it did"
    left = {n for n in _shm() - before if "sharedarray" in n}
    assert not left, left
    if os.path.basename(path) == "worker_pool.py":
        # The pool shows what it is about: blocks worked on side by side by
        # several processes (it once printed "... by 1 worker processes").
        m = re.search(r"(\d+) blocks done by (\d+) worker processes", r.stdout)
        assert m, r.stdout
        assert int(m[2]) > 1 and int(m[2]) == int(m[1]), r.stdout


def test_there_are_examples():
    names = {os.path.basename(p) for p in EXAMPLES}
    assert {"worker_pool.py", "pipeline.py", "persistent.py"} <= names
