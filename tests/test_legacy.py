"""Segments written by SharedArray 3.x attach, list and delete.

3.x kept raw data at offset 0 and a packed trailer at the end:
magic[16] "[SharedArray]", size (size_t), typenum, itemsize, ndims (int),
dims (npy_intp x NPY_MAXDIMS: 32 under NumPy 1.x, 64 under 2.x).  The tests
build such files byte by byte.
"""

import os
import struct

import numpy as np
import pytest

import SharedArray as sa
from _helpers import list_entry, list_names, shm_path

CASES = [
    np.arange(12.0).reshape(3, 4),
    np.arange(5, dtype="<i2"),
    np.array([b"ab", b"cde"]),
    np.array(["xyz", "q"]),
    np.zeros((2, 0, 3), "u1"),
    np.array(7, "<c8"),
]


def legacy_bytes(arr, maxdims, typenum=None, size=None, itemsize=None):
    data = np.ascontiguousarray(arr).tobytes()
    dims = list(arr.shape) + [0] * (maxdims - arr.ndim)
    trailer = struct.pack(
        "=16sQiii%dq" % maxdims, b"[SharedArray]",
        len(data) if size is None else size,
        arr.dtype.num if typenum is None else typenum,
        arr.dtype.itemsize if itemsize is None else itemsize,
        arr.ndim, *dims)
    assert len(trailer) == {32: 292, 64: 548}[maxdims]
    return data + trailer


def write_legacy(name, arr, maxdims, **kw):
    with open(shm_path(name), "wb") as f:
        f.write(legacy_bytes(arr, maxdims, **kw))


@pytest.mark.parametrize("maxdims", [32, 64])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_attach_list_delete_legacy(shm_name, maxdims, case):
    want = CASES[case]
    name = shm_name()
    write_legacy(name, want, maxdims)
    got = sa.attach(name)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()
    entry = list_entry(name)
    assert (entry.dtype, entry.dims, entry.format) == (
        want.dtype, want.shape, "sharedarray3")
    assert sa.info(name).nbytes == want.nbytes
    if want.size:
        got.reshape(-1)[:1] = want.reshape(-1)[-1:]
        with open(shm_path(name), "rb") as f:
            assert f.read(want.itemsize) == want.reshape(-1)[-1:].tobytes()
    sa.delete(name)
    assert not os.path.exists(shm_path(name))
    # The array we hold survives the delete.
    assert got.shape == want.shape


def test_legacy_read_only_attach(shm_name):
    name = shm_name()
    write_legacy(name, np.arange(4.0), 64)
    ro = sa.attach(name, ro=True)
    assert not ro.flags.writeable
    assert ro.tolist() == [0.0, 1.0, 2.0, 3.0]
    sa.delete(name)


@pytest.mark.parametrize("corrupt", [
    {"typenum": 17},                  # object
    {"typenum": 9999},                # unknown type
    {"size": 999},                    # size disagrees with dims
    {"itemsize": 3},                  # itemsize disagrees with float64
])
def test_inconsistent_trailer_is_refused(shm_name, corrupt):
    name = shm_name()
    write_legacy(name, np.arange(4.0), 32, **corrupt)
    with pytest.raises(ValueError, match=name):
        sa.attach(name)
    assert name not in list_names()
    os.unlink(shm_path(name))


def test_data_larger_than_file_is_refused(shm_name):
    name = shm_name()
    raw = legacy_bytes(np.arange(100.0), 32)
    with open(shm_path(name), "wb") as f:
        f.write(raw[800 - 16:])  # most of the data cut off; trailer intact
    with pytest.raises(ValueError, match=name):
        sa.attach(name)
    os.unlink(shm_path(name))


def test_legacy_segment_holding_an_npy_image_is_read_as_legacy(shm_name):
    """A 3.x uint8 array whose bytes are an np.save blob: its trailer
    accounts for the whole file and the .npy header does not (the file is
    longer than header + data), so the file is 3.x's: the whole blob comes
    back as uint8, not the array inside it."""
    import io

    buf = io.BytesIO()
    np.save(buf, np.arange(6, dtype="<i4"))
    blob = np.frombuffer(buf.getvalue(), "u1")
    name = shm_name()
    write_legacy(name, blob, 64)
    got = sa.attach(name, ro=True)
    assert got.dtype == np.uint8 and got.shape == blob.shape
    assert got.tobytes() == blob.tobytes()
    e = sa.info(name)
    assert (e.format, e.dtype, e.dims) == ("sharedarray3", np.uint8, blob.shape)
    entry = list_entry(name)
    assert entry.format == "sharedarray3"
    sa.delete(name)


def test_npy_with_a_trailer_that_does_not_account_for_the_file_stays_npy(
        shm_name):
    """The other way round: a .npy file whose data runs to the end of the
    file is .npy, even when its last bytes hold a 3.x trailer (here the
    bytes of a 3.x segment stored as the .npy's data)."""
    import io

    inner = np.frombuffer(legacy_bytes(np.arange(4.0), 64), "u1")
    buf = io.BytesIO()
    np.save(buf, inner)
    name = shm_name()
    with open(shm_path(name), "wb") as f:
        f.write(buf.getvalue())
    got = sa.attach(name, ro=True)
    assert got.dtype == np.uint8 and got.tobytes() == inner.tobytes()
    assert sa.info(name).format == "npy"
    sa.delete(name)
