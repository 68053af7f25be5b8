"""from_array() copies into a new segment atomically; info() describes one
without mapping it."""

import os
import stat
import time

import numpy as np
import pytest

import SharedArray as sa
from _helpers import assert_same_array, random_array, shm_path

SOURCES = {
    "C 2-d": lambda: random_array((5, 7), "<f8"),
    "F 3-d": lambda: random_array((2, 3, 4), ">i4", order="F"),
    "strided": lambda: random_array((8, 6), "<u2")[::2, ::-3],
    "0-d": lambda: np.array(3.5),
    "empty": lambda: np.zeros((0, 4), "c16"),
    "structured": lambda: random_array(
        (4,), [("t", "<M8[ms]"), ("v", "<f4", (2,)), ("s", "S3")]),
    "unicode": lambda: np.array(["é", "wörd", ""]),
}


@pytest.mark.parametrize("kind", SOURCES)
def test_from_array_copies_exactly(shm_name, kind):
    src = SOURCES[kind]()
    name = "shm://" + shm_name()
    a = sa.from_array(name, src)
    assert_same_array(a, src)
    assert a.flags.writeable
    b = sa.attach(name)
    assert_same_array(b, src)
    # A copy, not a view of the source.
    if src.size:
        a.reshape(-1)[:1] = np.zeros(1, src.dtype)
        assert b.reshape(-1)[:1].tobytes() == a.reshape(-1)[:1].tobytes()
    sa.delete(name)


def test_from_array_keeps_fortran_order(shm_name):
    src = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    name = shm_name()
    a = sa.from_array(name, src)
    assert a.flags.f_contiguous and not a.flags.c_contiguous
    assert sa.info(name).order == "F"
    sa.delete(name)


def test_from_array_accepts_array_likes_and_mode(shm_name):
    name = shm_name()
    a = sa.from_array(name, [[1, 2], [3, 4]], mode=0o640)
    assert a.tolist() == [[1, 2], [3, 4]]
    assert stat.S_IMODE(os.stat(shm_path(name)).st_mode) == 0o640
    sa.delete(name)


@pytest.mark.parametrize("bad, exc", [
    (np.array([object()]), TypeError),
    (np.zeros(2, [("a", "O")]), TypeError),
    ([[1, 2], [3]], (ValueError, TypeError)),  # NumPy 1.x: object array
])
def test_from_array_refusals_leave_nothing(shm_name, bad, exc):
    name = shm_name()
    with pytest.raises(exc):
        sa.from_array(name, bad)
    assert not os.path.exists(shm_path(name))


def test_from_array_existing_name_is_left_alone(shm_name):
    name = shm_name()
    first = sa.from_array(name, np.arange(3))
    with pytest.raises(FileExistsError) as info:
        sa.from_array(name, np.ones(5))
    assert info.value.filename == name
    assert sa.attach(name).tolist() == first.tolist() == [0, 1, 2]
    sa.delete(name)


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
    maps_before = open("/proc/self/maps").read().count(shm_path(name))
    for _ in range(5):
        sa.info(name)
    assert open("/proc/self/maps").read().count(shm_path(name)) == maps_before
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
