"""SharedArray 3.x idioms, as real programs write them, on version 4.

Each test is a pattern found in code written against SharedArray 3.x
(3.2.4): cleanup loops over list() that call bytes methods on the entry's
name, positional attach(name, True), base.msync(sa.MS_SYNC), the base's
addr/size/name, create() with a NumPy scalar type, and the void view that
ports code written for 3.x's structured arrays.  See "Differences from
SharedArray 3.x" in README.md.

In 3.x, ArrayDesc.name was bytes.  In version 4 it is a str subclass whose
decode(encoding='utf-8', errors='strict') returns
os.fsencode(name).decode(encoding, errors), a plain str, so e.name.decode()
keeps working and fails where bytes.decode failed.
"""

import ctypes
import multiprocessing as mp
import operator
import os

import numpy as np
import pytest

import SharedArray as sa
from _helpers import SHM_DIR, needs, remove_path, shm_path


def entry(name):
    """The list() entry of the shm array `name` (exactly one)."""
    found = [e for e in sa.list() if e.name == name]
    assert len(found) == 1, f"{name!r} listed {len(found)} times"
    return found[0]


# ----------------------------------------------------------------------
# list(): names


@needs("list")
def test_cleanup_loop_by_prefix_with_decode(shm_name):
    """for e in sa.list(): if e.name.decode().startswith(prefix):
    sa.delete(e.name.decode())  -- removes exactly the prefixed arrays."""
    prefix = shm_name() + "-job-"
    mine = [prefix + str(i) for i in range(3)]
    other = shm_name()
    try:
        for i, name in enumerate(mine):
            sa.create(name, 4, np.int32)[:] = i
        sa.create(other, 4, np.int32)

        deleted = []
        for e in sa.list():
            try:
                decoded = e.name.decode()
            except UnicodeDecodeError:
                # Another process's name that is not UTF-8 (3.x's bytes
                # .decode() failed on it the same way); never one of ours.
                assert not os.fsencode(e.name).startswith(prefix.encode())
                continue
            if decoded.startswith(prefix):
                sa.delete(e.name.decode())
                deleted.append(decoded)

        assert sorted(deleted) == mine
        for name in mine:
            assert not os.path.exists(shm_path(name))
            with pytest.raises(FileNotFoundError):
                sa.attach(name)
        assert os.path.exists(shm_path(other))
        assert entry(other).dims == (4,)
    finally:
        for name in mine:
            remove_path(shm_path(name))


@needs("list")
def test_decoded_name_is_plain_str_equal_to_name(shm_name):
    name = shm_name()
    sa.create(name, 3, np.float64)
    e = entry(name)
    decoded = e.name.decode()
    assert decoded == e.name == name
    assert type(decoded) is str
    assert hash(decoded) == hash(e.name)
    assert {e.name: 1}[decoded] == 1
    assert "shm://" + decoded == "shm://" + name


@needs("list")
def test_attach_and_delete_with_decoded_name(shm_name):
    name = shm_name()
    a = sa.create(name, 5, np.int64)
    a[:] = [1, 2, 3, 4, 5]
    e = entry(name)
    b = sa.attach(e.name.decode())
    assert b.tolist() == [1, 2, 3, 4, 5]
    b[0] = 42
    assert a[0] == 42                       # same memory
    sa.delete(e.name.decode())
    assert not os.path.exists(shm_path(name))
    assert b[0] == 42                       # still mapped after delete


@needs("list")
def test_delete_with_entry_name_directly(shm_name):
    """sa.delete(e.name): in 3.x bytes were refused (TypeError); in 4 the
    name is a str and this works."""
    name = shm_name()
    sa.create(name, 2)
    e = entry(name)
    assert isinstance(e.name, str)
    sa.delete(e.name)
    assert not os.path.exists(shm_path(name))
    assert all(x.name != name for x in sa.list())


@needs("list")
def test_attach_with_entry_name_directly(shm_name):
    name = shm_name()
    sa.create(name, (2, 2), np.uint8)[:] = 9
    e = entry(name)
    assert sa.attach(e.name).tolist() == [[9, 9], [9, 9]]
    assert sa.attach("shm://" + e.name).sum() == 36


@needs("list")
def test_decode_encodings_and_errors_like_bytes(shm_name):
    """Any encoding/errors, positional or keyword, as bytes.decode."""
    name = shm_name()
    sa.create(name, 1)
    e = entry(name)
    raw = name.encode()
    assert e.name.decode("ascii") == raw.decode("ascii") == name
    assert e.name.decode("utf-8", "strict") == name
    assert e.name.decode(encoding="latin-1", errors="strict") == name
    assert e.name.decode(errors="replace") == name
    for result in (e.name.decode("ascii"), e.name.decode("latin-1")):
        assert type(result) is str


@needs("list")
def test_decode_ascii_of_non_ascii_name_raises(shm_name):
    """e.name.decode("ascii") of a non-ASCII name raises UnicodeDecodeError,
    as bytes.decode did in 3.x (3.x listed b'...\\xc3\\xa9')."""
    name = shm_name(suffix="-\u00e9t\u00e9")
    a = sa.create(name, 2, np.int16)
    a[:] = 7
    e = entry(name)
    raw = name.encode("utf-8")
    with pytest.raises(UnicodeDecodeError) as exc:
        e.name.decode("ascii")
    assert exc.value.object == raw          # the name's bytes, as in 3.x
    assert e.name.decode() == e.name.decode("utf-8") == name
    assert type(e.name.decode()) is str
    # Other codecs give what bytes.decode gave in 3.x (mojibake included).
    assert e.name.decode("latin-1") == raw.decode("latin-1") != name
    assert e.name.decode("ascii", "ignore") == raw.decode("ascii", "ignore")
    assert e.name.decode("ascii", errors="replace") == raw.decode(
        "ascii", "replace")
    assert sa.attach(e.name.decode()).tolist() == [7, 7]
    sa.delete(e.name.decode())
    assert not os.path.exists(shm_path(name))


@needs("list")
def test_decode_of_undecodable_file_name(shm_name):
    """A file in /dev/shm whose name is not UTF-8: list() gives the name
    with surrogate escapes (os.fsdecode); decode() raises like
    bytes.decode() did in 3.x, and surrogateescape round-trips."""
    name = shm_name(suffix="-\udcff")
    raw = os.fsencode(name)
    assert raw.endswith(b"-\xff")
    with open(os.path.join(os.fsencode(SHM_DIR), raw), "wb") as f:
        np.save(f, np.arange(3, dtype="<i4"))
    e = entry(name)
    assert e.dims == (3,) and e.dtype == np.int32
    with pytest.raises(UnicodeDecodeError):
        raw.decode()                        # 3.x: e.name.decode()
    with pytest.raises(UnicodeDecodeError):
        e.name.decode()
    with pytest.raises(UnicodeDecodeError):
        e.name.decode("utf-8", "strict")
    assert e.name.decode("utf-8", "surrogateescape") == name
    assert e.name.decode("latin-1") == raw.decode("latin-1")


@needs("list")
def test_name_is_str_with_str_methods(shm_name):
    name = shm_name(suffix="-cam0")
    sa.create(name, 1)
    e = entry(name)
    assert isinstance(e.name, str)
    assert e.name.find("cam0") == len(name) - 4
    assert e.name.find("absent") == -1
    assert e.name.startswith("sa-test-")
    assert e.name.endswith("-cam0")
    assert e.name.split("-")[-1] == "cam0"
    assert "cam0" in e.name
    assert f"{e.name}" == name and str(e.name) == name
    assert os.path.exists(os.path.join(SHM_DIR, e.name))


def test_info_name_decode(shm_name):
    name = shm_name()
    sa.create(name, (2, 3), np.float32)
    for spelled in (name, "shm://" + name, "/" + name):
        d = sa.info(spelled)
        assert isinstance(d.name, str)
        assert d.name == spelled            # the name as given
        assert d.name.decode() == spelled
        assert type(d.name.decode()) is str
        assert d.name.decode("ascii") == spelled
        assert sa.attach(d.name.decode()).shape == (2, 3)
    sa.delete(sa.info(name).name.decode())
    assert not os.path.exists(shm_path(name))


def test_info_name_decode_ascii_non_ascii_raises(shm_name):
    name = shm_name(suffix="-\u00fc")
    sa.create(name, 1)
    d = sa.info(name)
    with pytest.raises(UnicodeDecodeError):
        d.name.decode("ascii")
    assert d.name.decode() == name


# ----------------------------------------------------------------------
# list(): entries


@needs("list")
def test_entry_unpacks_to_name_dtype_dims(shm_name):
    name = shm_name()
    sa.create(name, (3, 4), np.int16)
    e = entry(name)
    n, dtype, dims = e
    assert (n, dims) == (name, (3, 4))
    assert dtype == np.int16                # 3.x gave the scalar type
    assert np.dtype(dtype) == np.dtype(np.int16)
    assert len(e) == 3
    assert (e[0], e[1], e[2]) == (e.name, e.dtype, e.dims)
    found = {n: (dt, dm) for n, dt, dm in sa.list()}
    assert found[name] == (np.int16, (3, 4))


# ----------------------------------------------------------------------
# attach(name, ro)


@pytest.mark.parametrize("call", [
    lambda name: sa.attach(name, True),
    lambda name: sa.attach(name, ro=True),
], ids=["positional", "keyword"])
def test_attach_read_only(shm_name, call):
    name = shm_name()
    a = sa.create(name, 4, np.float64)
    a[:] = [1.5, 2.5, 3.5, 4.5]
    r = call(name)
    assert not r.flags.writeable
    assert r.tolist() == [1.5, 2.5, 3.5, 4.5]
    with pytest.raises(ValueError):
        r[0] = 0.0
    with pytest.raises(ValueError):
        r.flags.writeable = True            # kernel-enforced, as in 3.x
    a[3] = -1.0
    assert r[3] == -1.0                     # still the shared memory
    assert r.base.writable is False


@pytest.mark.parametrize("call", [
    lambda name: sa.attach(name, False),
    lambda name: sa.attach(name, ro=False),
    lambda name: sa.attach(name),
], ids=["positional", "keyword", "default"])
def test_attach_read_write(shm_name, call):
    name = shm_name()
    a = sa.create(name, 3, np.int32)
    w = call(name)
    assert w.flags.writeable
    w[:] = [4, 5, 6]
    assert a.tolist() == [4, 5, 6]


# ----------------------------------------------------------------------
# The base object


def test_msync_positional_flags(file_name):
    f = file_name()
    a = sa.create(f.uri, 1000, np.int64)
    a[:] = np.arange(1000)
    assert len({sa.MS_SYNC, sa.MS_ASYNC, sa.MS_INVALIDATE}) == 3
    assert a.base.msync(sa.MS_SYNC) is None
    assert a.base.msync(sa.MS_ASYNC) is None
    assert a.base.msync(sa.MS_SYNC | sa.MS_INVALIDATE) is None
    assert a.base.msync(flags=sa.MS_SYNC) is None
    assert np.load(f.path).tolist() == list(range(1000))
    sa.delete(f.uri)


def test_msync_positional_on_shm(shm_name):
    name = shm_name()
    a = sa.create(name, 10, np.uint8)
    a[:] = 3
    a.base.msync(sa.MS_SYNC)
    assert sa.attach(name).sum() == 30


@pytest.mark.parametrize("spell", [
    lambda n: n, lambda n: "shm://" + n, lambda n: "/" + n,
], ids=["bare", "shm://", "slash"])
def test_base_addr_size_name(shm_name, spell):
    name = spell(shm_name())
    a = sa.create(name, (4, 5), np.float32)
    a[...] = np.arange(20, dtype=np.float32).reshape(4, 5)
    b = sa.attach(name)
    for arr in (a, b):
        base = arr.base
        assert base.name == name            # as passed
        assert base.addr == arr.ctypes.data
        assert base.size == arr.nbytes == 80
        assert ctypes.string_at(base.addr, base.size) == arr.tobytes()
    assert a.base.addr != b.base.addr       # two mappings
    sa.delete(b.base.name)
    assert not os.path.exists(shm_path(name))


# ----------------------------------------------------------------------
# create(name, shape, dtype) positional


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32,
                                   np.complex128, np.bool_, float, int])
@needs("list")
def test_create_positional_scalar_type(shm_name, dtype):
    name = shm_name()
    a = sa.create(name, (3, 4), dtype)
    assert a.dtype == np.dtype(dtype)
    assert a.shape == (3, 4)
    assert not a.any()                      # zero-filled
    a[1, 2] = 1
    b = sa.attach(name)
    assert b.dtype == dtype and b.shape == (3, 4)
    assert b[1, 2] == 1 and b.sum() == 1
    assert entry(name).dtype == dtype


@needs("list")
def test_create_default_dtype_and_int_shape(shm_name):
    name = shm_name()
    a = sa.create(name, 10)
    assert a.dtype == np.float64 and a.shape == (10,)
    assert entry(name)[1:] == (np.float64, (10,))


# ----------------------------------------------------------------------
# Structured dtypes: the void view that ports 3.x code

POINT = np.dtype([("a", "<i4"), ("b", "<f8")])


def test_void_view_fix_for_structured_array(shm_name):
    """3.x returned V{itemsize} for a structured dtype; code stored raw
    records with a[i] = np.frombuffer(raw, np.void(n)).  Version 4 returns
    the structured dtype; a.view(f'V{a.dtype.itemsize}') restores 3.x's
    array over the same memory."""
    name = shm_name()
    a = sa.create(name, 4, POINT)
    assert a.dtype == POINT                 # 3.x: dtype('V12')
    raw = np.array([(7, 2.5)], POINT).tobytes()
    n = len(raw)

    with pytest.raises(ValueError):         # the 3.x idiom, unported
        a[1] = np.frombuffer(raw, np.void(n))

    v = a.view(f"V{a.dtype.itemsize}")
    assert v.dtype == np.dtype("V12") and v.shape == (4,)
    assert np.shares_memory(v, a)
    v[1] = np.frombuffer(raw, np.void(n))
    assert a[1].tolist() == (7, 2.5)
    assert v[1].tobytes() == raw
    b = sa.attach(name)
    assert b["a"].tolist() == [0, 7, 0, 0]
    assert b["b"].tolist() == [0.0, 2.5, 0.0, 0.0]
    assert b.view(f"V{b.dtype.itemsize}")[1].tobytes() == raw
    # 3.x code that viewed the void array as the structured dtype.
    assert a.view(POINT)[1]["a"] == 7


def test_void_view_reads_raw_records(shm_name):
    name = shm_name()
    a = sa.create(name, 3, POINT)
    a["a"] = [1, 2, 3]
    a["b"] = [0.5, 1.5, 2.5]
    v = sa.attach(name, True).view(f"V{POINT.itemsize}")
    assert not v.flags.writeable
    assert [bytes(r) for r in v] == [
        np.array([x], POINT).tobytes()
        for x in [(1, 0.5), (2, 1.5), (3, 2.5)]]


# ----------------------------------------------------------------------
# multiprocessing: a read-only flagged array travels read-only


def test_flagged_read_only_array_reaches_worker_read_only(shm_name):
    """3.x sent a writable copy; version 4 sends a read-only mapping.  A
    worker that needs a private copy gets one from a.copy()."""
    name = shm_name()
    a = sa.create(name, 4, np.float64)
    ro = sa.attach(name)
    ro.flags.writeable = False
    writeable = operator.attrgetter("flags.writeable")
    with mp.get_context("spawn").Pool(1) as pool:
        assert pool.apply(writeable, (ro,)) is False
        with pytest.raises(ValueError):
            pool.apply(operator.setitem, (ro, 0, 1.0))
        assert pool.apply(writeable, (ro.copy(),)) is True
        pool.apply(operator.setitem, (ro.copy(), 0, 2.0))
        assert a[0] == 0.0                  # the copy's write stays there
        pool.apply(operator.setitem, (a, 1, 3.0))
        assert a[1] == 3.0                  # a writable one is shared
