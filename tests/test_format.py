"""Segments are .npy files: NumPy reads ours, we read NumPy's."""

import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npy_format

import SharedArray as sa
from _helpers import (
    PAGE,
    STRUCT_DTYPES,
    all_dtypes,
    assert_same_array,
    build_npy,
    fill_random,
    list_entry,
    random_array,
    read_header,
    remove_path,
    shm_path,
    unique_shm_name,
    write_bytes,
)

SHAPES = [(), (0,), (7,), (3, 4), (2, 0, 3), (2, 3, 1, 2)]
BIG = 1 << 22  # max_header_size for np.load of long headers


def np_load(path):
    return np.load(path, mmap_mode="r", max_header_size=BIG)


def np_save(path, arr, version=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "stored in format 3.0" notices
        with open(path, "wb") as fh:
            npy_format.write_array(fh, arr, version=version, allow_pickle=False)


def needs_utf8(dtype):
    return any(ord(ch) > 127 for ch in repr(npy_format.dtype_to_descr(dtype)))


DTYPES = all_dtypes()


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [d for _, d in DTYPES], ids=[i for i, _ in DTYPES])
def test_created_segments_are_npy_files(shm_name, dtype, order):
    for k, shape in enumerate(SHAPES):
        name = shm_name()
        path = shm_path(name)
        a = sa.create(name, shape, dtype, order=order)
        assert a.dtype == dtype and a.shape == shape
        fill_random(a, seed=k)

        hdr = read_header(path)
        assert hdr["major"] == (3 if needs_utf8(dtype) else 1)
        assert hdr["minor"] == 0
        assert hdr["data_offset"] % PAGE == 0, "data must start on a page"
        assert hdr["header_text"].endswith(b"\n")
        assert npy_format.descr_to_dtype(hdr["header"]["descr"]) == dtype
        assert hdr["header"]["shape"] == shape
        assert a.ctypes.data == a.base.addr and a.base.size == a.nbytes

        loaded = np_load(path)
        assert_same_array(loaded, a)
        if order == "F" and len(shape) > 1:
            assert loaded.flags.f_contiguous
        assert_same_array(np.load(path, max_header_size=BIG), a)

        b = sa.attach(name, ro=True)
        assert_same_array(b, a)
        assert b.strides == a.strides
        del a, b, loaded
        sa.delete(name)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [d for _, d in DTYPES], ids=[i for i, _ in DTYPES])
def test_np_save_files_attach(file_name, dtype, order):
    for k, shape in enumerate(SHAPES):
        f = file_name()
        src = random_array(shape, dtype, order, seed=k)
        np_save(f.path, src)
        b = sa.attach(f.uri)
        assert_same_array(b, src)
        if src.flags.f_contiguous and not src.flags.c_contiguous:
            assert b.flags.f_contiguous
        assert b.ctypes.data == b.base.addr and b.base.size == b.nbytes
        # Writable, and writes land in the file where NumPy reads them.
        if b.size:
            b.reshape(-1, order="A")[:1].view(np.uint8)[:1] ^= 0xFF
            assert b.tobytes() != src.tobytes()
            b.base.msync()
            assert_same_array(np.load(f.path, max_header_size=BIG), b)
        del b


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_np_format_versions_attach(file_name, version):
    f = file_name()
    src = np.arange(24, dtype="<f8").reshape(2, 3, 4)
    np_save(f.path, src, version=version)
    assert read_header(f.path)["major"] == version[0]
    b = sa.attach(f.uri)
    assert_same_array(b, src)


def test_np_save_unicode_field_names_v3(file_name):
    f = file_name()
    src = random_array((5,), STRUCT_DTYPES["unicode-names"])
    np_save(f.path, src)
    assert read_header(f.path)["major"] == 3
    assert_same_array(sa.attach(f.uri), src)


def many_fields(n):
    return np.dtype([(f"field_number_{i:06d}", "<i2") for i in range(n)])


@pytest.mark.parametrize(
    "nfields, major",
    [(10, 1), (40, 1), (600, 1), (1800, 1), (4000, 2)],
    ids=["small", "1k-4k", "4k-64k", "near-64k", "over-64k"],
)
def test_header_version_by_length(shm_name, nfields, major):
    dtype = many_fields(nfields)
    name = shm_name()
    a = sa.create(name, (3,), dtype)
    fill_random(a)
    hdr = read_header(shm_path(name))
    length = len(hdr["header_text"])
    assert hdr["major"] == major
    assert (length > 0xFFFF) == (major == 2)
    assert hdr["data_offset"] % PAGE == 0
    assert_same_array(np_load(shm_path(name)), a)
    assert_same_array(sa.attach(name), a)
    del a
    sa.delete(name)


def test_headers_around_1k_and_4k(shm_name):
    """Header texts of every length across the 1 KiB and 4 KiB marks (where
    a reader may switch from a short read to a full one, and the data offset
    from one page to two) round-trip through create, attach, list and NumPy.
    """
    lengths = set()
    for nbase in (54, 227):  # dicts of about 1000 and 4040 bytes
        base = [(f"f{i}" + "x" * (i % 3), "u1") for i in range(nbase)]
        for k in range(0, 60, 1 if nbase == 54 else 3):
            dtype = np.dtype(base + [("p" + "y" * k, "<i2")])
            name = shm_name()
            a = sa.create(name, (2,), dtype)
            fill_random(a, seed=k)
            hdr = read_header(shm_path(name))
            # Bytes from the start of the file to the end of the dict.
            lengths.add(hdr["data_offset"] - len(hdr["header_text"])
                        + len(hdr["header_text"].rstrip()))
            assert hdr["data_offset"] % PAGE == 0
            assert_same_array(sa.attach(name), a)
            assert_same_array(np_load(shm_path(name)), a)
            entry = list_entry(name)
            assert entry.dtype == dtype and entry.dims == (2,)
            del a
            sa.delete(name)
    # The sweep really crossed both marks.
    assert min(lengths) < 1020 and any(1030 < n < 4000 for n in lengths)
    assert any(4000 < n < 4090 for n in lengths) and max(lengths) > 4100


def test_np_save_long_header_attach(file_name):
    f = file_name()
    src = random_array((2,), many_fields(5000))
    np_save(f.path, src)
    assert read_header(f.path)["major"] == 2
    assert_same_array(sa.attach(f.uri), src)


@pytest.mark.parametrize(
    "header, shape, order",
    [
        ('{"descr": "<i4", "fortran_order": False, "shape": (2, 3)}', (2, 3), "C"),
        ("{'shape': (2, 3), 'descr': '<i4', 'fortran_order': True}", (2, 3), "F"),
        ("{ 'fortran_order' : False , 'shape' : ( 6 , ) , 'descr' : '<i4' , }", (6,), "C"),
        ("{'descr': '<i4', 'fortran_order': True, 'shape': (6,)}", (6,), "F"),
        ("{'descr': [('a', '<i2'), ('b', '<i2')], 'fortran_order': False, 'shape': (3,)}", (3,), "C"),
    ],
    ids=["double-quotes", "key-order", "spaces", "fortran-1d", "list-descr"],
)
@pytest.mark.parametrize("align", [64, 16, 1], ids=["align64", "align16", "unaligned"])
def test_hand_written_headers_read_like_numpy(file_name, header, shape, order, align):
    f = file_name()
    data = np.random.default_rng(3).bytes(24)
    write_bytes(f.path, build_npy(header, data, align=align))
    want = np.load(f.path)
    assert want.shape == shape
    b = sa.attach(f.uri)
    assert_same_array(b, want)
    if order == "F" and len(shape) > 1:
        assert b.flags.f_contiguous


def test_zero_size_and_0d_segments_via_numpy(shm_name):
    for shape in [(0,), (5, 0), (0, 0, 0), ()]:
        name = shm_name()
        a = sa.create(name, shape, "<f8")
        fill_random(a)
        assert_same_array(np.load(shm_path(name), mmap_mode="r"), a)
        assert_same_array(np.load(shm_path(name)), a)
        del a
        sa.delete(name)


def test_written_values_visible_to_numpy_memmap_live(shm_name):
    """Both sides map the same memory: no copy, in either direction."""
    name = shm_name()
    a = sa.create(name, (4, 4), "<i8")
    m = np.load(shm_path(name), mmap_mode="r+")
    a[2, 3] = 123
    assert m[2, 3] == 123
    m[0, 0] = -4
    m.flush()
    assert a[0, 0] == -4
    del m
    sa.delete(name)


SIMPLE_DTYPES = ["?", "u1", "<i2", ">i4", "<u8", "<f4", ">f8", "<c16", "S3", "<U2",
                 "<M8[us]", [("a", "<i2"), ("b", ">f4")]]


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.lists(st.integers(0, 5), min_size=0, max_size=4).map(tuple),
    dtype=st.sampled_from(SIMPLE_DTYPES).map(np.dtype),
    order=st.sampled_from("CF"),
    seed=st.integers(0, 2**32 - 1),
    backend=st.sampled_from(["shm", "file"]),
)
def test_property_round_trip(tmp_path_factory, shape, dtype, order, seed, backend):
    if backend == "shm":
        name = unique_shm_name()
        path = shm_path(name)
    else:
        path = str(tmp_path_factory.mktemp("prop") / "a.npy")
        name = "file://" + path
    try:
        a = sa.create(name, shape, dtype, order=order)
        assert a.shape == shape and a.dtype == dtype
        assert a.tobytes() == bytes(a.nbytes)
        want = random_array(shape, dtype, order, seed=seed)
        a[...] = want
        b = sa.attach(name)
        assert_same_array(b, a)
        assert_same_array(np.load(path, max_header_size=BIG), a)
        assert read_header(path)["data_offset"] % PAGE == 0
        del a, b
        sa.delete(name)
        assert not os.path.exists(path)
    finally:
        remove_path(path)
