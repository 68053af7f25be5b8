"""info() describes an array without mapping it."""

import os
import time

import numpy as np
import pytest

import SharedArray as sa
from _helpers import shm_path


def test_info_describes_without_mapping(shm_name):
    name = "shm://" + shm_name()
    dt = np.dtype([("x", "<f4"), ("y", "<i2", (3,))])
    before = time.time()
    a = sa.create(name, (2, 5), dt, order="F", mode=0o604)
    d = sa.info(name)
    assert d.name == name
    assert d.dtype == dt
    assert d.dims == (2, 5)
    assert d.nbytes == a.nbytes
    assert d.order == "F"
    assert d.mode == 0o604
    assert d.uid == os.geteuid()
    assert before - 2 <= d.mtime <= time.time() + 2
    assert d.format == "npy"
    name_, dtype_, dims_ = d  # unpacks like SharedArray 3.x list entries
    assert (name_, dtype_, dims_) == (name, dt, (2, 5))
    sa.delete(name)


def test_info_does_not_map(shm_name):
    name = shm_name()
    sa.create(name, 10)
    def mappings():
        with open("/proc/self/maps") as f:
            return f.read().count(shm_path(name))

    maps_before = mappings()
    for _ in range(5):
        sa.info(name)
    assert mappings() == maps_before
    sa.delete(name)


def test_info_errors(shm_name, tmp_path):
    missing = shm_name()
    with pytest.raises(FileNotFoundError) as info:
        sa.info(missing)
    assert info.value.filename == missing
    other = tmp_path / "notes.txt"
    other.write_text("not an array")
    with pytest.raises(ValueError, match="notes.txt"):
        sa.info("file://" + str(other))
    with pytest.raises(ValueError, match="invalid array name"):
        sa.info("shm://a/b")
