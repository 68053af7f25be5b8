"""from_array() copies into a new segment atomically."""

import os
import stat

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


# A ragged list: NumPy >= 1.24 refuses to make an array of it (ValueError);
# NumPy 1.23 made an object array of it, which from_array refuses (TypeError).
RAGGED = ValueError if np.lib.NumpyVersion(np.__version__) >= "1.24.0" else TypeError


@pytest.mark.parametrize("bad, exc", [
    (np.array([object()]), TypeError),
    (np.zeros(2, [("a", "O")]), TypeError),
    ([[1, 2], [3]], RAGGED),
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
