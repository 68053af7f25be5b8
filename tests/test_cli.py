"""The command line: python -m SharedArray {list,info,delete}."""

import json
import os
import subprocess
import sys

import pytest

import SharedArray as sa
from _helpers import shm_path


def cli(*args):
    return subprocess.run([sys.executable, "-m", "SharedArray", *args],
                          capture_output=True, text=True, timeout=120)


def test_list_table_and_json(shm_name):
    name = shm_name()
    sa.create(name, (3, 4), "<i2", mode=0o640)
    r = cli("list")
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stdout.splitlines() if l.startswith(name))
    assert "int16" in line and "3x4" in line and "rw-r-----" in line
    r = cli("list", "--json")
    assert r.returncode == 0, r.stderr
    entry = next(e for e in json.loads(r.stdout) if e["name"] == name)
    assert entry["shape"] == [3, 4]
    assert entry["dtype"] == "<i2"
    assert entry["nbytes"] == 24
    assert entry["mode"] == "0640"
    assert entry["format"] == "npy"
    sa.delete(name)


def test_info_and_errors(shm_name, tmp_path):
    name = shm_name()
    sa.create(name, 5, [("a", "<f8"), ("b", "S2")])
    missing = shm_name()
    r = cli("info", "--json", name, missing)
    assert r.returncode == 1
    (entry,) = json.loads(r.stdout)
    assert entry["name"] == name and entry["shape"] == [5]
    assert missing in r.stderr and "No such file" in r.stderr
    sa.delete(name)


def test_delete_many_and_refuse_non_arrays(shm_name, tmp_path):
    a, b = shm_name(), shm_name()
    sa.create(a, 1)
    sa.create(b, 1)
    text = tmp_path / "keep.txt"
    text.write_text("precious")
    r = cli("delete", "-v", a, "file://" + str(text), b)
    assert r.returncode == 1
    assert "keep.txt" in r.stderr and "not an array" in r.stderr
    assert not os.path.exists(shm_path(a)) and not os.path.exists(shm_path(b))
    assert text.read_text() == "precious"
    assert f"deleted {a}" in r.stdout and f"deleted {b}" in r.stdout


@pytest.mark.parametrize("args", [(), ("list", "--help"), ("info",),
                                  ("bogus",)])
def test_usage(args):
    r = cli(*args)
    if "--help" in args:
        assert r.returncode == 0 and "usage:" in r.stdout
    else:
        assert r.returncode == 2 and "usage:" in r.stderr
