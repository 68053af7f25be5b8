import ctypes
import errno
import gc
import os

import numpy as np
import pytest

import SharedArray as sa
from _helpers import (
    FEATURES,
    PAGE,
    read_header,
    remove_path,
    run_python,
    shm_path,
    smaps_field_kb,
    vmas_at,
)


def test_base_is_mapping(shm_name):
    name = shm_name()
    a = sa.create(name, 3)
    b = sa.attach(name)
    c = sa.attach(name, ro=True)
    for arr in (a, b, c):
        assert type(arr.base) is sa.Mapping
    # Each call maps the segment on its own.
    assert a.base is not b.base and b.base is not c.base
    sa.delete(name)


def test_mapping_cannot_be_instantiated():
    with pytest.raises(TypeError):
        sa.Mapping()


@pytest.mark.parametrize("form", ["{}", "shm://{}", "/{}"])
def test_mapping_name_is_as_passed(shm_name, form):
    name = shm_name()
    spelled = form.format(name)
    a = sa.create(spelled, 2)
    assert a.base.name == spelled and type(a.base.name) is str
    assert sa.attach(spelled).base.name == spelled
    sa.delete(name)


def test_mapping_name_file_backend(file_name):
    f = file_name()
    assert sa.create(f.uri, 2).base.name == f.uri
    assert sa.attach(f.uri).base.name == f.uri


def test_mapping_size_is_data_size(shm_name, file_name):
    name = shm_name()
    a = sa.create(name, (100, 3), "f8")
    assert type(a.base.size) is int
    assert a.base.size == a.nbytes == 2400
    # The file holds the header, then the data.
    hdr = read_header(shm_path(name))
    assert os.stat(shm_path(name)).st_size >= hdr["data_offset"] + a.base.size
    assert sa.attach(name).base.size == a.nbytes
    assert sa.create(shm_name(), (3, 0), "f8").base.size == 0
    assert sa.create(shm_name(), (), "c16").base.size == 16
    sa.delete(name)
    # An np.save file: the header is not page-sized.
    f = file_name()
    np.save(f.path, np.arange(10, dtype="u1"))
    assert sa.attach(f.uri).base.size == 10


def test_mapping_addr_is_the_data(shm_name, file_name):
    name = shm_name()
    a = sa.create(name, 5, "i4")
    addr = a.base.addr
    assert type(addr) is int
    assert addr == a.ctypes.data
    assert addr % PAGE == 0  # data starts on a page boundary
    # The mapping holds the header just before the data.
    offset = read_header(shm_path(name))["data_offset"]
    assert ctypes.string_at(addr - offset, 6) == b"\x93NUMPY"
    ino = os.stat(shm_path(name)).st_ino
    assert vmas_at(addr - offset, ino) == vmas_at(addr, ino) != []
    a[:] = [1, 2, 3, 4, 5]
    assert ctypes.string_at(addr, 20) == np.arange(1, 6, dtype="i4").tobytes()
    sa.delete(name)
    f = file_name()
    np.save(f.path, np.arange(4, dtype="<f8"))
    b = sa.attach(f.uri)
    assert b.base.addr == b.ctypes.data
    assert b.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_mapping_buffer_is_the_data(shm_name):
    name = shm_name()
    a = sa.create(name, (3, 4), "<u2")
    a[...] = np.arange(12).reshape(3, 4)
    mv = memoryview(a.base)
    assert mv.nbytes == a.nbytes
    assert bytes(mv) == a.tobytes()
    assert not mv.readonly
    mv[:2] = b"\xff\xff"
    assert a[0, 0] == 0xFFFF
    ro = memoryview(sa.attach(name, ro=True).base)
    assert ro.readonly and bytes(ro) == a.tobytes()
    with pytest.raises(TypeError):
        ro[:1] = b"\0"
    mv.release()
    ro.release()
    sa.delete(name)


def test_mapping_writable(shm_name):
    name = shm_name()
    a = sa.create(name, 1)
    assert a.base.writable is True
    assert sa.attach(name).base.writable is True
    assert sa.attach(name, ro=True).base.writable is False
    sa.delete(name)


@pytest.mark.parametrize("attr", ["name", "addr", "size", "writable"])
def test_mapping_attributes_are_read_only(shm_name, attr):
    name = shm_name()
    m = sa.create(name, 1).base
    before = getattr(m, attr)
    with pytest.raises(AttributeError):
        setattr(m, attr, before)
    with pytest.raises(AttributeError):
        delattr(m, attr)
    assert getattr(m, attr) == before
    sa.delete(name)


def test_ms_constants():
    values = [sa.MS_ASYNC, sa.MS_SYNC, sa.MS_INVALIDATE]
    assert all(type(v) is int and v > 0 for v in values)
    assert len(set(values)) == 3
    # Flags that combine: distinct bits.
    assert sa.MS_ASYNC & sa.MS_SYNC == 0
    assert sa.MS_SYNC & sa.MS_INVALIDATE == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.msync(),
        lambda m: m.msync(sa.MS_SYNC),
        lambda m: m.msync(sa.MS_ASYNC),
        lambda m: m.msync(flags=sa.MS_SYNC | sa.MS_INVALIDATE),
        lambda m: m.msync(sa.MS_ASYNC | sa.MS_INVALIDATE),
    ],
    ids=["default", "sync", "async", "sync|invalidate", "async|invalidate"],
)
def test_msync_flags(file_name, call):
    f = file_name()
    a = sa.create(f.uri, 1000, "<i4")
    a[:] = np.arange(1000)
    assert call(a.base) is None
    # The data is in the file, where the header says it is.
    off = read_header(f.path)["data_offset"]
    with open(f.path, "rb") as fh:
        fh.seek(off)
        assert np.frombuffer(fh.read(4000), "<i4").tolist() == list(range(1000))


def test_msync_on_read_only_mapping(shm_name):
    name = shm_name()
    sa.create(name, 10)
    b = sa.attach(name, ro=True)
    assert b.base.msync() is None
    sa.delete(name)


def test_msync_bad_flags_raise_oserror(shm_name):
    name = shm_name()
    m = sa.create(name, 10).base
    with pytest.raises(OSError) as info:
        m.msync(sa.MS_SYNC | sa.MS_ASYNC)
    assert info.value.errno == errno.EINVAL
    assert info.value.filename == name
    with pytest.raises(TypeError):
        m.msync("sync")
    with pytest.raises(TypeError):
        m.msync(sa.MS_SYNC, 1)
    sa.delete(name)


def test_mlock_munlock(shm_name):
    name = shm_name()
    a = sa.create(name, 3 * PAGE, "u1")
    m = a.base
    header = m.addr - read_header(shm_path(name))["data_offset"]
    assert smaps_field_kb(m.addr, "Locked") == 0
    assert m.mlock() is None
    # The whole mapping (header and data) is locked in RAM.
    assert smaps_field_kb(m.addr, "Locked") * 1024 >= m.size + (m.addr - header)
    assert smaps_field_kb(header, "Locked") > 0
    assert m.munlock() is None
    assert smaps_field_kb(m.addr, "Locked") == 0
    # munlock of an unlocked mapping is fine; so is locking twice.
    assert m.munlock() is None
    m.mlock()
    m.mlock()
    m.munlock()
    with pytest.raises(TypeError):
        m.mlock(1)
    sa.delete(name)


def test_mlock_read_only_mapping(shm_name):
    name = shm_name()
    sa.create(name, 10)
    m = sa.attach(name, ro=True).base
    m.mlock()
    assert smaps_field_kb(m.addr, "Locked") > 0
    m.munlock()
    sa.delete(name)


def test_view_keeps_mapping_alive(shm_name):
    name = shm_name()
    a = sa.create(name, 1000, "i8")
    a[:] = np.arange(1000)
    addr = a.base.addr
    ino = os.stat(shm_path(name)).st_ino
    v = a[500:510]
    vv = v[::2]
    sa.delete(name)
    del a
    gc.collect()
    # Still mapped, still correct.
    assert vmas_at(addr, ino)
    assert v.tolist() == list(range(500, 510))
    assert vv.tolist() == list(range(500, 510, 2))
    v[0] = -1
    assert vv[0] == -1


def test_mapping_object_keeps_memory_alive(shm_name):
    name = shm_name()
    a = sa.create(name, 10, "u1")
    m = a.base
    addr = m.addr
    ino = os.stat(shm_path(name)).st_ino
    a[:] = 42
    del a
    gc.collect()
    assert vmas_at(addr, ino)
    assert m.msync() is None
    assert ctypes.string_at(addr, 10) == b"\x2a" * 10
    assert bytes(memoryview(m)) == b"\x2a" * 10
    sa.delete(name)


def test_memoryview_and_derived_arrays_keep_mapping_alive(shm_name):
    name = shm_name()
    a = sa.create(name, (4, 4), "f4")
    a[...] = 2.5
    addr = a.base.addr
    ino = os.stat(shm_path(name)).st_ino
    mv = memoryview(a)
    t = a.T
    r = a.reshape(16)
    s = a.view("u4")
    del a
    gc.collect()
    assert vmas_at(addr, ino)
    assert mv.tolist()[3][3] == 2.5
    assert t[0, 3] == 2.5 and r[15] == 2.5
    assert s[0, 0] == np.float32(2.5).view("u4")
    sa.delete(name)


def test_mapping_is_released_with_last_reference(shm_name):
    name = shm_name()
    a = sa.create(name, 10 * PAGE, "u1")
    addr = a.base.addr
    v = a[::7]
    b = sa.attach(name)
    addr_b = b.base.addr
    ino = os.stat(shm_path(name)).st_ino
    assert vmas_at(addr, ino) and vmas_at(addr_b, ino)
    del a
    gc.collect()
    assert vmas_at(addr, ino)  # v still uses it
    del v
    gc.collect()
    assert not vmas_at(addr, ino)
    assert vmas_at(addr_b, ino)
    del b
    gc.collect()
    if FEATURES["birth_times"]:
        # attach's mapping is also held by the mapping cache, until dropped
        # (a build without birth times never caches).
        assert vmas_at(addr_b, ino)
        sa.cache_clear()
    assert not vmas_at(addr_b, ino)
    sa.delete(name)


def test_use_after_free_impossible_in_fresh_process(shm_name):
    """Drop the array, keep a view, churn the address space, read the view.

    Runs in a child so that a use-after-free shows as a failed child (e.g.
    SIGSEGV) instead of taking the test runner down.
    """
    name = shm_name()
    code = """
        import gc, sys
        import numpy as np
        import SharedArray as sa
        name = sys.argv[1]
        a = sa.create(name, 1 << 20, "i8")
        a[:] = np.arange(1 << 20)
        view = a[-1000:]
        sa.delete(name)
        del a
        gc.collect()
        # Map and unmap lots of other memory, hoping to reuse the range.
        junk = []
        for i in range(20):
            n = name + "-churn"
            j = sa.create(n, 1 << 20, "i8")
            sa.delete(n)
            j[:] = -7
            junk.append(np.full(1 << 17, -9))
            del j
        assert view.tolist() == list(range((1 << 20) - 1000, 1 << 20)), "bad data"
        print("OK")
        """
    try:
        out = run_python(code, name)
    finally:
        remove_path(shm_path(name + "-churn"))
    assert out.strip() == "OK"
