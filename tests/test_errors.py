"""Every class of bad input and damaged file: exception type and message."""

import errno
import os
import pathlib

import numpy as np
import pytest

import SharedArray as sa
from _helpers import (
    MAXDIMS,
    POSIX_BACKEND,
    SHM_DIR,
    assert_refused,
    build_npy,
    header_text,
    list_names,
    needs,
    read_header,
    run_python,
    shm_path,
    write_bytes,
)


def names_it(exc, thing):
    """The message mentions thing (as is or as its repr)."""
    msg = str(exc)
    return thing in msg or repr(thing) in msg


# ----------------------------------------------------------------------
# Names

BAD_NAMES = [
    "a/b",
    "shm://a/b",
    "sa-test-dir/",
    ".",
    "..",
    "shm://.",
    "shm://..",
    "/..",
    "a\0b",
    "file://a\0b",
    "x" * 256,
    "shm://" + "y" * 256,
    "\u00e9" * 128,  # 256 bytes in UTF-8
    "",
    "shm://",
    "/",
    "///",
    "shm:///",
    "http://x",
    "ftp://host/file",
    "File://x",
    "file://",
    "file:///tmp/",
    "file://" + "z" * 256,
    "file:///tmp/..",
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
@pytest.mark.parametrize("op", ["create", "attach", "delete"])
def test_invalid_names_raise_value_error(name, op):
    call = {
        "create": lambda: sa.create(name, 3),
        "attach": lambda: sa.attach(name),
        "delete": lambda: sa.delete(name),
    }[op]
    with pytest.raises(ValueError) as info:
        call()
    assert not isinstance(info.value, OSError)
    if name:
        assert names_it(info.value, name), str(info.value)


@pytest.mark.parametrize("op", ["create", "attach", "delete"])
def test_unencodable_name_raises_value_error(op):
    # "\udcff" stands for the byte 0xff (os.fsdecode) and is a valid name;
    # a lone high surrogate stands for no byte at all.
    name = "sa-test-\ud800"
    with pytest.raises(ValueError, match="lone surrogates"):
        {"create": lambda: sa.create(name, 3),
         "attach": lambda: sa.attach(name),
         "delete": lambda: sa.delete(name)}[op]()


@pytest.mark.parametrize(
    "name", [None, b"sa-test-bytes", 42, pathlib.PurePosixPath("sa-test-p"), ["x"]],
    ids=repr,
)
@pytest.mark.parametrize("op", ["create", "attach", "delete"])
def test_non_str_names_raise_type_error(name, op):
    with pytest.raises(TypeError) as info:
        {"create": lambda: sa.create(name, 3),
         "attach": lambda: sa.attach(name),
         "delete": lambda: sa.delete(name)}[op]()
    assert "name" in str(info.value)
    assert not os.path.exists(shm_path("sa-test-bytes"))
    assert not os.path.exists(shm_path("sa-test-p"))


def test_invalid_names_create_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = set(os.listdir(SHM_DIR))
    for name in BAD_NAMES:
        with pytest.raises(ValueError):
            sa.create(name, 3)
    assert os.listdir(tmp_path) == []
    assert set(os.listdir(SHM_DIR)) - before == set()


# ----------------------------------------------------------------------
# System call failures: OSError subclasses with errno and filename


@pytest.mark.parametrize("spell", ["{}", "shm://{}", "/{}"])
def test_attach_missing(shm_name, spell):
    name = spell.format(shm_name())
    with pytest.raises(FileNotFoundError) as info:
        sa.attach(name)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == name
    assert names_it(info.value, name)
    with pytest.raises(FileNotFoundError):
        sa.attach(name, ro=True)


def test_delete_missing_file(file_name):
    f = file_name()
    with pytest.raises(FileNotFoundError) as info:
        sa.delete(f.uri)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == f.uri
    assert names_it(info.value, f.uri)


def test_create_existing(shm_name, file_name):
    name = shm_name()
    sa.create(name, 1)
    for spelled in (name, "shm://" + name, "/" + name):
        with pytest.raises(FileExistsError) as info:
            sa.create(spelled, 1)
        assert info.value.errno == errno.EEXIST
        assert info.value.filename == spelled
        assert names_it(info.value, spelled)
    sa.delete(name)
    f = file_name()
    sa.create(f.uri, 1)
    with pytest.raises(FileExistsError) as info:
        sa.create(f.uri, 1)
    assert info.value.filename == f.uri


def test_create_under_a_regular_file_as_directory(tmp_path):
    (tmp_path / "plain").write_text("x")
    uri = "file://" + str(tmp_path / "plain" / "a.npy")
    with pytest.raises(NotADirectoryError) as info:
        sa.create(uri, 1)
    assert info.value.filename == uri


# ----------------------------------------------------------------------
# Bad shapes, dtypes, orders and modes for create


@pytest.mark.parametrize("shape", [-1, (3, -1), [-5], (0, -1)], ids=repr)
def test_negative_dims(shm_name, shape):
    name = shm_name()
    with pytest.raises(ValueError) as info:
        sa.create(name, shape)
    assert "-1" in str(info.value) or "-5" in str(info.value) or "negative" in str(info.value)
    assert not os.path.lexists(shm_path(name))


def test_too_many_dims(shm_name):
    name = shm_name()
    with pytest.raises(ValueError) as info:
        sa.create(name, (1,) * (MAXDIMS + 1))
    assert "dimension" in str(info.value)
    # ...also when a subarray dtype pushes the shape over the limit.
    with pytest.raises(ValueError):
        sa.create(name, (1,) * (MAXDIMS - 1), ("f8", (1, 1)))
    assert not os.path.lexists(shm_path(name))


@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((2**40, 2**40), "f8"),
        ((2**62,), "f8"),
        ((2**31, 2**31, 2**2), "u1"),
        ((2**63 - 1,), "u1"),
        ((2**63,), "u1"),
        ((2**32, 2**32), ("u1", (2,))),
        ((3, 2**61), "c16"),
    ],
    ids=["2^80", "2^65", "2^64", "intp-max+header", "2^63-dim", "subarray", "c16"],
)
def test_size_overflow(shm_name, shape, dtype):
    name = shm_name()
    with pytest.raises(ValueError) as info:
        sa.create(name, shape, dtype)
    msg = str(info.value).lower()
    assert any(w in msg for w in ("overflow", "too big", "too large", "maximum", "exceed"))
    assert not os.path.lexists(shm_path(name))


@pytest.mark.parametrize("shape", [None], ids=repr)
def test_shape_none(shm_name, shape):
    with pytest.raises(TypeError) as info:
        sa.create(shm_name(), shape)
    assert "shape" in str(info.value)


@pytest.mark.parametrize("shape", [3.5, "abc", (2, 1.5), {"a": 1}, object()], ids=repr)
def test_shape_not_ints(shm_name, shape):
    name = shm_name()
    with pytest.raises(TypeError):
        sa.create(name, shape)
    assert not os.path.lexists(shm_path(name))


@pytest.mark.parametrize("order", ["X", "A", "K", "CF", ""], ids=repr)
def test_bad_order(shm_name, order):
    name = shm_name()
    with pytest.raises(ValueError) as info:
        sa.create(name, (2, 2), order=order)
    assert "order" in str(info.value)
    assert not os.path.lexists(shm_path(name))


@pytest.mark.parametrize(
    "mode, exc",
    # out of range: ValueError
    [(m, ValueError) for m in (-1, 0o1000, 0o4755, 0o2700, 0o1777, 2**31, 2**64, -(2**70))]
    # not an int: TypeError
    + [(m, TypeError) for m in (True, 1.5, "0o600", None, 0o600 + 0j, [0o600])],
    ids=repr,
)
def test_bad_mode(shm_name, mode, exc):
    name = shm_name()
    with pytest.raises(exc) as info:
        sa.create(name, 1, mode=mode)
    assert "mode" in str(info.value)
    assert not os.path.lexists(shm_path(name))


@pytest.mark.parametrize(
    "dtype",
    [object, "O", [("a", "O")], [("a", "i4"), ("b", "O")], ("O", (2,)),
     [("n", [("o", "O")])], [("s", "O", (3,))]],
    ids=repr,
)
def test_object_dtypes(shm_name, dtype):
    name = shm_name()
    with pytest.raises(TypeError) as info:
        sa.create(name, 3, dtype)
    assert "object" in str(info.value).lower()
    assert not os.path.lexists(shm_path(name))


@pytest.mark.parametrize("dtype", ["S", "U", "V0", np.dtype([]), [("a", "f8", (0,))]], ids=repr)
def test_zero_itemsize(shm_name, dtype):
    name = shm_name()
    with pytest.raises(ValueError) as info:
        sa.create(name, 3, dtype)
    assert repr(np.dtype(dtype)) in str(info.value) or "itemsize" in str(info.value)
    assert not os.path.lexists(shm_path(name))


def test_unknown_dtype(shm_name):
    name = shm_name()
    with pytest.raises(TypeError):
        sa.create(name, 3, "not-a-dtype")
    assert not os.path.lexists(shm_path(name))


@pytest.mark.parametrize(
    "call",
    [
        lambda n: sa.create(n),
        lambda n: sa.create(n, 1, float, "C", 0o600, False, "extra"),
        lambda n: sa.create(n, 1, shape=2),
        lambda n: sa.create(n, 1, bogus=1),
        lambda n: sa.create(name=n),
        lambda n: sa.attach(),
        lambda n: sa.attach(n, True, 1),
        lambda n: sa.attach(n, readonly=True),
        lambda n: sa.delete(),
        lambda n: sa.delete(n, n),
        lambda n: sa.delete(name=n, other=1),
    ],
)
def test_bad_arguments(shm_name, call):
    name = shm_name()
    with pytest.raises(TypeError):
        call(name)
    assert not os.path.lexists(shm_path(name))


def test_keyword_arguments_work(shm_name):
    name = shm_name()
    a = sa.create(name=name, shape=(2,), dtype="i2", order="C", mode=0o600)
    assert a.shape == (2,)
    assert sa.attach(name=name, ro=True).shape == (2,)
    sa.delete(name=name)


# ----------------------------------------------------------------------
# Damaged and hostile files: attach must raise, never crash or hang

GOOD_HEADER = header_text("<f8", (4,))

CORRUPT = {
    "empty": b"",
    "garbage": bytes(range(256)) * 4,
    "text": b"hello world\n" * 100,
    "magic-only": b"\x93NUMPY",
    "magic-and-version": b"\x93NUMPY\x01\x00",
    "bad-version": build_npy(GOOD_HEADER, b"\0" * 32, raw_prefix=b"\x93NUMPY\x09\x00\x76\x00"),
    "bad-minor": build_npy(GOOD_HEADER, b"\0" * 32, raw_prefix=b"\x93NUMPY\x01\x05\x76\x00"),
    "version-0": build_npy(GOOD_HEADER, b"\0" * 32, raw_prefix=b"\x93NUMPY\x00\x00\x76\x00"),
    "hlen-past-eof": b"\x93NUMPY\x01\x00\xff\xff{'descr': '<f8'",
    "v2-hlen-huge": b"\x93NUMPY\x02\x00\xff\xff\xff\xff" + b" " * 100,
    "v2-hlen-2MiB": b"\x93NUMPY\x02\x00\x00\x00\x20\x00" + b" " * 100,
    "not-a-dict": build_npy("['descr', '<f8']", b"\0" * 32),
    "garbage-header": build_npy(bytes(range(1, 120)), b"\0" * 32),
    "unterminated-dict": build_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4,)", b"\0" * 32),
    "missing-shape": build_npy("{'descr': '<f8', 'fortran_order': False}", b"\0" * 32),
    "missing-descr": build_npy("{'fortran_order': False, 'shape': (4,)}", b"\0" * 32),
    "extra-key": build_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4,), 'x': 1}", b"\0" * 32),
    "duplicate-key": build_npy("{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (4,)}", b"\0" * 32),
    "trailing-junk": build_npy(GOOD_HEADER + " junk", b"\0" * 32),
    "order-not-bool": build_npy("{'descr': '<f8', 'fortran_order': 1, 'shape': (4,)}", b"\0" * 32),
    "order-Truex": build_npy("{'descr': '<f8', 'fortran_order': Truex, 'shape': (4,)}", b"\0" * 32),
    "shape-not-tuple": build_npy("{'descr': '<f8', 'fortran_order': False, 'shape': 4}", b"\0" * 32),
    "shape-paren-int": build_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4)}", b"\0" * 32),
    "shape-list": build_npy("{'descr': '<f8', 'fortran_order': False, 'shape': [4]}", b"\0" * 32),
    "shape-negative": build_npy(header_text("<f8", (-4,)), b"\0" * 32),
    "shape-float": build_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4.0,)}", b"\0" * 32),
    "shape-65-dims": build_npy(header_text("<f8", (1,) * 65), b"\0" * 32),
    "shape-bigger-than-file": build_npy(header_text("<f8", (5,)), b"\0" * 32),
    "shape-2^40": build_npy(header_text("<f8", (1 << 40,)), b"\0" * 32),
    "shape-int64-max": build_npy(header_text("u1", (2**63 - 1,)), b"\0" * 32),
    "shape-product-overflows": build_npy(header_text("<f8", (2**32, 2**32, 2**4)), b"\0" * 32),
    "shape-20-digits": build_npy(header_text("<f8", (99999999999999999999,)), b"\0" * 32),
    "data-offset-past-eof": build_npy(header_text("<f8", (0,)), b"")[:-5],
    "descr-unknown": build_npy(header_text("<q9", (4,)), b"\0" * 32),
    "descr-empty": build_npy(header_text("", (4,)), b"\0" * 32),
    "descr-zero-size": build_npy(header_text("|S0", (4,)), b"\0" * 32),
    "descr-int": build_npy("{'descr': 8, 'fortran_order': False, 'shape': (4,)}", b"\0" * 32),
    "descr-bad-list": build_npy("{'descr': [('a', '<f8'), 7], 'fortran_order': False, 'shape': (4,)}", b"\0" * 32),
    "descr-unterminated-list": build_npy("{'descr': [('a', '<f8'), 'fortran_order': False, 'shape': (4,)}", b"\0" * 32),
    "descr-deep-nesting": build_npy("{'descr': " + "[" * 5000 + "]" * 5000 + ", 'fortran_order': False, 'shape': (4,)}", b"\0" * 32),
    "descr-30-nesting": build_npy("{'descr': " + "[" * 30 + "]" * 30 + ", 'fortran_order': False, 'shape': (4,)}", b"\0" * 32),
    "descr-mismatched-brackets": build_npy("{'descr': [(']', 'fortran_order': False, 'shape': (4,)}", b"\0" * 32),
    "v3-invalid-utf8": build_npy(b"{'descr': [('\xff\xfe', '<f8')], 'fortran_order': False, 'shape': (4,)}", b"\0" * 32, version=3),
    "nul-in-header": build_npy("{'descr': '<f8'\0, 'fortran_order': False, 'shape': (4,)}", b"\0" * 32),
}

# Dimensions that only fit in 64 bits modulo 2**64: a parser that lets them
# wrap would read 2**64 + 4 as 4.  They exceed the file like any huge shape.
WRAPPING_DIMS = [2**64, 2**64 + 4, 2**64 * 3 + 2, 18446744073709551620 * 10]


@pytest.mark.parametrize("dim", WRAPPING_DIMS)
def test_attach_refuses_dimension_beyond_64_bits(file_name, dim):
    f = file_name()
    write_bytes(f.path, build_npy(header_text("<f8", (dim,)), b"\0" * 64))
    with pytest.raises(ValueError) as info:
        a = sa.attach(f.uri)
        pytest.fail(f"header shape ({dim},) attached as an array of shape {a.shape}")
    assert names_it(info.value, f.uri)


# The spec lists "descr 'O'" among the corrupt headers that attach must
# refuse with ValueError (a file is untrusted input, not a dtype argument).
OBJECT_DESCRS = {
    "descr-object": build_npy(header_text("|O", (4,)), b"\0" * 32),
    "descr-object-field": build_npy(
        "{'descr': [('a', '<i8'), ('o', '|O')], 'fortran_order': False, 'shape': (2,)}",
        b"\0" * 32),
}


def check_refused(call, name):
    with pytest.raises(ValueError) as info:
        call()
    exc = info.value
    assert names_it(exc, name), str(exc)
    return exc


@pytest.mark.parametrize("content", list(CORRUPT.values()), ids=list(CORRUPT))
@pytest.mark.parametrize("ro", [False, True], ids=["rw", "ro"])
def test_attach_refuses_corrupt_file(file_name, content, ro):
    f = file_name()
    write_bytes(f.path, content)
    check_refused(lambda: sa.attach(f.uri, ro=ro), f.uri)
    with open(f.path, "rb") as fh:
        assert fh.read() == content  # untouched


@pytest.mark.parametrize("content", list(CORRUPT.values()), ids=list(CORRUPT))
def test_attach_refuses_corrupt_shm_segment(shm_name, content):
    name = shm_name()
    write_bytes(shm_path(name), content)
    if POSIX_BACKEND and not content:
        # An empty shm object is one that shm_open just made and its
        # creator has not written yet: not there yet, as for a racer.
        with pytest.raises(FileNotFoundError, match=name):
            sa.attach(name)
        return
    check_refused(lambda: sa.attach(name), name)


def test_unpublished_segment_is_not_found_and_can_be_deleted(shm_name):
    """A segment whose magic's first byte is still 0 is being made (posix
    backend) or was left so by a creator that died: attach and info say
    FileNotFoundError, and delete removes it (nothing else could)."""
    name = shm_name()
    image = build_npy(header_text("<f8", (4,)), b"\0" * 32)
    write_bytes(shm_path(name), b"\0" + image[1:])
    for call in (lambda: sa.attach(name), lambda: sa.attach(name, ro=True),
                 lambda: sa.info(name)):
        with pytest.raises(FileNotFoundError, match="still being created"):
            call()
    with pytest.raises(FileExistsError):
        sa.create(name, 4)
    sa.delete(name)
    assert not os.path.lexists(shm_path(name))


@pytest.mark.parametrize("content", list(OBJECT_DESCRS.values()), ids=list(OBJECT_DESCRS))
def test_attach_refuses_object_descr_with_value_error(file_name, content):
    f = file_name()
    write_bytes(f.path, content)
    with pytest.raises(ValueError) as info:
        sa.attach(f.uri)
    assert names_it(info.value, f.uri)


def test_attach_refuses_np_save_object_array(file_name):
    f = file_name()
    np.save(f.path, np.array([1, "x", None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        sa.attach(f.uri)


def test_attach_never_evaluates_header(file_name, tmp_path):
    marker = tmp_path / "pwned"
    evil = (f"{{'descr': [__import__('os').system('touch {marker}')], "
            "'fortran_order': False, 'shape': (4,)}")
    f = file_name()
    write_bytes(f.path, build_npy(evil, b"\0" * 32))
    check_refused(lambda: sa.attach(f.uri), f.uri)
    evil2 = (f"{{'descr': [('a', '<f8')] + [open('{marker}', 'w')], "
             "'fortran_order': False, 'shape': (4,)}")
    write_bytes(f.path, build_npy(evil2, b"\0" * 32))
    check_refused(lambda: sa.attach(f.uri), f.uri)
    assert not marker.exists()


@pytest.mark.parametrize("keep", ["all-but-1", "half-data", "header-only", "half-header", "10-bytes"])
def test_attach_truncated_segment(shm_name, keep):
    name = shm_name()
    a = sa.create(name, 1000, "<f8")
    a[:] = 1.0
    del a
    offset = read_header(shm_path(name))["data_offset"]
    size = {"all-but-1": offset + 7999, "half-data": offset + 4000,
            "header-only": offset, "half-header": offset // 2, "10-bytes": 10}[keep]
    os.truncate(shm_path(name), size)
    check_refused(lambda: sa.attach(name), name)
    check_refused(lambda: sa.attach(name, ro=True), name)
    assert name not in list_names()
    sa.delete(name)


def test_attach_truncated_long_header(shm_name):
    """A segment whose header is longer than one page, cut inside it."""
    name = shm_name()
    sa.create(name, 2, [(f"f{i:05d}", "u1") for i in range(2000)])
    os.truncate(shm_path(name), 5000)
    check_refused(lambda: sa.attach(name), name)
    sa.delete(name)


def test_attach_directory(shm_name, tmp_path):
    name = shm_name()
    os.mkdir(shm_path(name))
    for ro in (False, True):
        check_refused(lambda ro=ro: sa.attach(name, ro=ro), name)
        check_refused(lambda ro=ro: sa.attach("file://" + str(tmp_path), ro=ro),
                      "file://" + str(tmp_path))


def test_attach_shm_symlink_is_refused(shm_name):
    target, link = shm_name(), shm_name()
    sa.create(target, 3)
    os.symlink(shm_path(target), shm_path(link))
    with pytest.raises(OSError) as info:
        sa.attach(link)
    assert info.value.errno == errno.ELOOP and info.value.filename == link
    sa.delete(target)


@needs("list")
def test_attach_and_list_do_not_hang_on_fifo(shm_name, tmp_path):
    """Run in a child with a time limit: a blocking open would hang forever."""
    name = shm_name()
    os.mkfifo(shm_path(name))
    fifo_file = str(tmp_path / "fifo")
    os.mkfifo(fifo_file)
    out = run_python(
        """
        import sys
        import SharedArray as sa
        results = []
        for n in sys.argv[1:]:
            for ro in (False, True):
                try:
                    sa.attach(n, ro=ro)
                except (ValueError, OSError) as exc:
                    ok = (isinstance(exc, ValueError) and n in str(exc)) or (
                        isinstance(exc, OSError) and exc.filename == n)
                    results.append("refused" if ok else "unnamed:" + repr(exc))
                else:
                    results.append("attached")
        names = [e.name for e in sa.list()]
        results.append("listed" if sys.argv[1] in names else "not-listed")
        print(" ".join(results))
        """,
        name, "file://" + fifo_file, timeout=60,
    )
    assert out.split() == ["refused"] * 4 + ["not-listed"]


def test_failed_attaches_do_not_leak_descriptors_or_mappings(file_name):
    f = file_name()
    bad = list(CORRUPT.values())
    before_fds = len(os.listdir("/proc/self/fd"))
    with open("/proc/self/maps") as fh:
        before_maps = sum(1 for line in fh if f.path in line)
    for _ in range(5):
        for content in bad:
            write_bytes(f.path, content)
            with pytest.raises(ValueError):
                sa.attach(f.uri)
    assert len(os.listdir("/proc/self/fd")) <= before_fds
    with open("/proc/self/maps") as fh:
        assert sum(1 for line in fh if f.path in line) == before_maps


# info() and list() accept exactly what attach(ro=True) accepts.
AGREE_CASES = {
    # NumPy refuses any shape whose non-zero sides overflow, even if
    # another side is 0 and the array would be empty.
    "zero-and-huge": lambda: build_npy(header_text("<f8", (0, 2**63 - 1))),
    # A subarray dtype adds its dimensions: MAXDIMS - 1 + 2 > MAXDIMS.
    "subarray-past-maxdims": lambda: build_npy(
        header_text("(2,2)<f8", (1,) * (MAXDIMS - 1)), b"\0" * 32),
}


@pytest.mark.parametrize("case", sorted(AGREE_CASES))
@needs("list")
def test_info_and_list_agree_with_attach(shm_name, case):
    name = shm_name()
    write_bytes(shm_path(name), AGREE_CASES[case]())
    assert_refused(name)
    assert name not in list_names()


def test_create_overlapping_fields_is_type_error(file_name, tmp_path):
    """A dtype with no .npy description cannot be stored: TypeError, as
    docs/FORMAT.md says, and nothing is left behind."""
    f = file_name()
    overlapping = np.dtype({"names": ["a", "b"], "formats": ["<i4", "<i4"],
                            "offsets": [0, 0]})
    with pytest.raises(TypeError, match="no .npy description"):
        sa.create(f.uri, 3, overlapping)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("dtype, hint", [(str, "'U10'"), (bytes, "'S10'"), ("V", "'V8'")])
def test_sizeless_dtype_says_what_to_write(file_name, dtype, hint):
    """dtype=str is '<U0': the message suggests a length, 'U10' for str."""
    f = file_name()
    with pytest.raises(ValueError, match=hint):
        sa.create(f.uri, 3, dtype)
    assert not os.path.exists(f.path)
