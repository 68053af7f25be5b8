"""The stubs describe the real API: mypy --strict accepts typed use of it
(tests/typing and examples/), and that same code runs."""

import glob
import os
import subprocess
import sys
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def test_typed_code_runs():
    sys.path.insert(0, os.path.join(HERE, "typing"))
    try:
        import check_api
    finally:
        sys.path.pop(0)
    name = f"sa-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    assert check_api.roundtrip(name) == 0.0


def test_mypy_strict():
    pytest.importorskip("mypy", reason="mypy comes with the [test] extra")
    files = [os.path.join(HERE, "typing", "check_api.py")]
    files += sorted(glob.glob(os.path.join(ROOT, "examples", "*.py")))
    env = dict(os.environ, MYPYPATH=os.path.join(ROOT, "src"))
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--cache-dir", os.devnull, *files],
        capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
