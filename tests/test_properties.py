"""Property tests (hypothesis) over the public Python API.

For shapes, dtypes (every scalar kind and byte order, strings, voids,
datetimes, and structured dtypes: nested, subarray fields, aligned, explicit
offsets with gaps, titles, arbitrary Unicode field names), orders and names:

* create / attach / info / np.load agree exactly (memory bytes, dtype,
  shape, strides), or create raises a documented exception (ValueError,
  TypeError, OverflowError, OSError) and leaves nothing behind;
* for plain and simple structured dtypes there is no exception at all;
* from_array copies any source (C, F, strided, 0-d, empty) exactly;
* attach reads whatever numpy.save wrote (format 1.0, 2.0, 3.0) exactly;
* attach of a hand-made header agrees with NumPy's own reader whenever it
  accepts the file, and otherwise raises a documented exception;
* any text as a name: success at the one expected path, or a documented
  exception;
* bad arguments of every kind raise documented exceptions.

Never anything else, and never a crash.  Runs are reproducible
(derandomize=True, no example database).  SHAREDARRAY_PROPERTY_EXAMPLES
(default 150) sets max_examples for each property.
"""

import math
import os
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.lib import format as npy_format

import SharedArray as sa
from _helpers import FEATURES, IS_ROOT, build_npy, remove_path, shm_path

EXAMPLES = int(os.environ.get("SHAREDARRAY_PROPERTY_EXAMPLES", "150"))
DOCUMENTED = (ValueError, TypeError, OverflowError, OSError)
BIG_HEADER = 1 << 24

SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture],
)


def unique_name():
    return f"sa-test-{os.getpid()}-prop-{uuid.uuid4().hex[:10]}"


# ----------------------------------------------------------------------
# Strategies

LEAF_DTYPES = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(endianness="?"),
    hnp.unsigned_integer_dtypes(endianness="?"),
    hnp.floating_dtypes(endianness="?", sizes=(16, 32, 64)),
    st.just(np.dtype(np.longdouble)),
    hnp.complex_number_dtypes(endianness="?", sizes=(64, 128)),
    hnp.datetime64_dtypes(endianness="?"),
    hnp.timedelta64_dtypes(endianness="?"),
    hnp.byte_string_dtypes(endianness="?", min_len=1, max_len=12),
    hnp.unicode_string_dtypes(endianness="?", min_len=1, max_len=6),
    st.integers(1, 12).map(lambda n: np.dtype(f"V{n}")),
)

# Field names: any Unicode (quotes, backslashes, newlines, NUL, emoji...).
FIELD_NAMES = st.text(min_size=1, max_size=6)
SUB_SHAPES = st.sampled_from([(), (), (), (2,), (1, 3), (2, 1, 2)])


@st.composite
def structured_dtypes(draw, children):
    n = draw(st.integers(1, 4))
    names = draw(st.lists(FIELD_NAMES, min_size=n, max_size=n, unique=True))
    formats = []
    for _ in names:
        f, shape = draw(children), draw(SUB_SHAPES)
        formats.append(np.dtype((f, shape)) if shape else f)
    style = draw(st.sampled_from(["list", "aligned", "offsets", "titles"]))
    try:
        if style in ("list", "aligned"):
            return np.dtype(list(zip(names, formats)), align=style == "aligned")
        if style == "offsets":
            offsets, end = [], 0
            for f in formats:
                end += draw(st.integers(0, 8))
                offsets.append(end)
                end += f.itemsize
            return np.dtype({"names": names, "formats": formats,
                             "offsets": offsets,
                             "itemsize": end + draw(st.integers(0, 8))})
        titles = [draw(st.one_of(st.none(), FIELD_NAMES)) for _ in names]
        assume(len({t for t in titles if t} | set(names))
               == len(names) + sum(1 for t in titles if t))
        return np.dtype({"names": names, "formats": formats, "titles": titles})
    except (TypeError, ValueError):
        assume(False)


ANY_DTYPES = st.one_of(
    LEAF_DTYPES,
    st.recursive(LEAF_DTYPES, structured_dtypes, max_leaves=8),
    hnp.nested_dtypes(subtype_strategy=LEAF_DTYPES, max_itemsize=400),
    hnp.array_dtypes(subtype_strategy=LEAF_DTYPES, allow_subarrays=True),
)

# Plain dtypes and structured ones NumPy's .npy format describes exactly.
SIMPLE_DTYPES = st.one_of(
    LEAF_DTYPES,
    hnp.array_dtypes(subtype_strategy=LEAF_DTYPES, allow_subarrays=True,
                     max_size=4),
)

SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)
ORDERS = st.sampled_from(["C", "F"])


# ----------------------------------------------------------------------
# Helpers


def memory(a):
    """The bytes of a contiguous array, in memory order (padding included)."""
    assert a.flags.c_contiguous or a.flags.f_contiguous
    if a.nbytes == 0:
        return b""
    return a.ravel(order="K").view(np.uint8).tobytes()


def significant(dtype):
    """Mask of the bytes of one element that hold data (not padding)."""
    mask = np.zeros(dtype.itemsize, bool)

    def mark(dt, offset):
        if dt.fields:
            for value in dt.fields.values():
                mark(value[0], offset + value[1])
        elif dt.subdtype is not None:
            base, shape = dt.subdtype
            for i in range(int(np.prod(shape, dtype=np.int64))):
                mark(base, offset + i * base.itemsize)
        else:
            mask[offset:offset + dt.itemsize] = True

    mark(dtype, 0)
    return mask


def same_data(got, want_bytes, dtype):
    """got's memory equals want_bytes in every byte that holds data."""
    g = np.frombuffer(memory(got), np.uint8)
    w = np.frombuffer(want_bytes, np.uint8)
    if g.size != w.size:
        return False
    if g.size == 0:
        return True
    m = np.tile(significant(dtype), g.size // dtype.itemsize)
    return bool(np.array_equal(g[m], w[m]))


def fill(a, seed):
    """Random bytes into every byte of a (NaN payloads, odd bools...)."""
    if a.nbytes:
        a.ravel(order="K").view(np.uint8)[:] = np.frombuffer(
            np.random.default_rng(seed).bytes(a.nbytes), np.uint8)


def random_source(shape, dtype, seed):
    n = math.prod(shape)
    flat = np.zeros(n, dtype)
    fill(flat, seed)
    return flat.reshape(shape)


def expected_zeros(shape, dtype, order):
    try:
        return np.zeros(shape, dtype, order=order)
    except (ValueError, TypeError, MemoryError):
        return None


def same_layout(a, b):
    """Same strides (empty arrays: NumPy versions differ on their strides,
    which mean nothing; compare the contiguity flags instead)."""
    if a.size == 0 or b.size == 0:
        return (a.flags.c_contiguous, a.flags.f_contiguous) == (
            b.flags.c_contiguous, b.flags.f_contiguous)
    return a.strides == b.strides


def numpy_reads(path):
    """NumPy's own reading of a .npy file, mapped where it can (NumPy < 1.25
    cannot map an empty array that ends the file)."""
    try:
        return np.asarray(np.load(path, mmap_mode="r", allow_pickle=False,
                                  max_header_size=BIG_HEADER))
    except ValueError:
        return np.load(path, allow_pickle=False, max_header_size=BIG_HEADER)


def check_same(b, a):
    assert b.dtype == a.dtype, (b.dtype, a.dtype)
    assert b.shape == a.shape and same_layout(b, a), (b.strides, a.strides)
    assert memory(b) == memory(a)


# ----------------------------------------------------------------------
# Properties


def _round_trip(shape, dtype, order, seed, strict):
    name = unique_name()
    want = expected_zeros(shape, dtype, order)
    try:
        try:
            a = sa.create(name, shape, dtype, order=order)
        except DOCUMENTED as exc:
            event(f"create refused: {type(exc).__name__}")
            assert not strict or want is None, (
                f"create({shape}, {dtype!r}, {order}) refused: {exc!r}")
            assert not os.path.lexists(shm_path(name))
            return
        assert want is not None, f"np.zeros refuses {shape} {dtype!r}"
        event("created")
        assert a.dtype == want.dtype and a.shape == want.shape
        assert same_layout(a, want), (a.strides, want.strides)
        assert a.flags.writeable and a.base.writable
        assert memory(a) == bytes(a.nbytes)
        fill(a, seed)
        for ro in (False, True):
            check_same(sa.attach(name, ro=ro), a)
        d = sa.info(name)
        assert (d.dtype, d.dims, d.nbytes) == (a.dtype, a.shape, a.nbytes)
        assert d.order == order or (a.ndim <= 1 and d.order in "CF")
        loaded = numpy_reads(shm_path(name))
        check_same(loaded, a)
        del loaded, a
        sa.delete(name)
        assert not os.path.lexists(shm_path(name))
    finally:
        remove_path(shm_path(name))


@SETTINGS
@given(shape=SHAPES, dtype=ANY_DTYPES, order=ORDERS, seed=st.integers(0, 2**32))
def test_create_attach_round_trip_any_dtype(shape, dtype, order, seed):
    _round_trip(shape, dtype, order, seed, strict=False)


@SETTINGS
@given(shape=SHAPES, dtype=SIMPLE_DTYPES, order=ORDERS, seed=st.integers(0, 2**32))
def test_create_attach_round_trip_simple_dtypes_never_refused(shape, dtype, order, seed):
    _round_trip(shape, dtype, order, seed, strict=True)


SOURCE_LAYOUTS = st.sampled_from(["C", "F", "strided", "reversed"])


@SETTINGS
@given(shape=SHAPES, dtype=ANY_DTYPES, layout=SOURCE_LAYOUTS,
       seed=st.integers(0, 2**32))
def test_from_array_copies_exactly(shape, dtype, layout, seed):
    try:
        src = random_source(shape, dtype, seed)
    except (ValueError, TypeError, MemoryError):
        assume(False)
    if layout == "F":
        src = np.asfortranarray(src)
    elif layout == "strided" and src.ndim:
        src = np.repeat(src, 2, axis=0)[::2]
    elif layout == "reversed" and src.ndim:
        src = src[::-1]
    if src.dtype != dtype:  # NumPy expanded a subarray dtype
        dtype = src.dtype
    name = unique_name()
    try:
        try:
            a = sa.from_array(name, src)
        except DOCUMENTED as exc:
            event(f"from_array refused: {type(exc).__name__}")
            assert not os.path.lexists(shm_path(name))
            return
        fortran = src.ndim > 1 and src.flags.f_contiguous and not src.flags.c_contiguous
        assert a.dtype == src.dtype and a.shape == src.shape
        assert same_layout(a, np.empty(src.shape, src.dtype,
                                       order="F" if fortran else "C"))
        want = memory(np.array(src, order="F" if fortran else "C", copy=True))
        assert same_data(a, want, dtype)
        check_same(sa.attach(name, ro=True), a)
        event("copied")
        del a
        sa.delete(name)
    finally:
        remove_path(shm_path(name))


@pytest.mark.filterwarnings("ignore:Stored array in format")
@SETTINGS
@given(shape=SHAPES, dtype=ANY_DTYPES, order=ORDERS,
       version=st.sampled_from([None, (1, 0), (2, 0), (3, 0)]),
       seed=st.integers(0, 2**32))
def test_attach_reads_what_numpy_save_wrote(tmp_path_factory, shape, dtype,
                                            order, version, seed):
    try:
        src = random_source(shape, dtype, seed)
    except (ValueError, TypeError, MemoryError):
        assume(False)
    src = np.asfortranarray(src) if order == "F" else src
    path = str(tmp_path_factory.mktemp("npy") / "a.npy")
    try:
        with open(path, "wb") as fh:
            npy_format.write_array(fh, src, version=version, allow_pickle=False)
    except (ValueError, TypeError):
        assume(False)  # e.g. Unicode field names in a version 1.0 header
    uri = "file://" + path
    try:
        b = sa.attach(uri)
    except DOCUMENTED as exc:
        event(f"attach refused: {type(exc).__name__}")
        # Only for dtypes that SharedArray documents as refused.
        assert src.dtype.hasobject or src.dtype.itemsize == 0, repr(exc)
        return
    loaded = numpy_reads(path)
    check_same(b, loaded)
    assert same_data(b, memory(loaded), src.dtype)


# Hand-made headers: NumPy's reader is the reference.

JUNK_LITERALS = st.recursive(
    st.one_of(st.integers(-2**70, 2**70), st.text(max_size=8), st.booleans(),
              st.none(), st.floats(allow_nan=False), st.binary(max_size=4)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.lists(inner, max_size=3).map(tuple)),
    max_leaves=6)


@st.composite
def headers(draw):
    """(header text, data length) for a hand-made .npy file: mostly
    plausible (a real descr, a shape, about the right amount of data),
    sometimes junk in any field."""
    plausible = draw(st.integers(0, 9)) < 7
    dtype = draw(ANY_DTYPES)
    try:
        descr = repr(npy_format.dtype_to_descr(dtype))
    except (ValueError, TypeError):
        assume(False)
    shape = draw(SHAPES)
    nbytes = math.prod(shape) * dtype.itemsize
    if plausible:
        shape_text = repr(shape)
        fortran = draw(st.sampled_from(["True", "False"]))
        datalen = nbytes + draw(st.sampled_from([0, 0, 0, 1, 100, -1]))
    else:
        descr = draw(st.one_of(st.just(descr), JUNK_LITERALS.map(repr)))
        shape_text = draw(st.one_of(
            st.just(repr(shape)),
            st.lists(st.integers(-3, 2**64 + 3), max_size=3).map(
                lambda xs: repr(tuple(xs))),
            JUNK_LITERALS.map(repr)))
        fortran = draw(st.sampled_from(["True", "False", "1", "None", "'F'"]))
        datalen = draw(st.integers(0, 4096))
    keys = ["'descr': " + descr, "'fortran_order': " + fortran,
            "'shape': " + shape_text]
    keys = draw(st.permutations(keys))
    if not plausible and draw(st.integers(0, 4)) == 0:
        keys = keys[:2]
    text = "{" + ", ".join(keys) + draw(st.sampled_from([", }", "}", ",}"]))
    # NumPy reads such a file; so must SharedArray.
    must_accept = (plausible and datalen >= nbytes and not dtype.hasobject
                   and dtype.itemsize > 0)
    return text, max(0, min(datalen, 1 << 20)), must_accept


@SETTINGS
@given(header=headers(), version=st.sampled_from([1, 2, 3]),
       align=st.sampled_from([1, 16, 64, 4096]), seed=st.integers(0, 2**32))
def test_attach_agrees_with_numpy_on_hand_made_headers(tmp_path_factory, header,
                                                       version, align, seed):
    text, datalen, must_accept = header
    try:
        content = build_npy(text, np.random.default_rng(seed).bytes(datalen),
                            version=version, align=align)
    except UnicodeEncodeError:
        assume(False)
    path = str(tmp_path_factory.mktemp("hdr") / "h.npy")
    with open(path, "wb") as fh:
        fh.write(content)
    uri = "file://" + path
    try:
        b = sa.attach(uri, ro=True)
    except DOCUMENTED as exc:
        event(f"attach refused: {type(exc).__name__}")
        assert not must_accept, f"{text!r}: {exc!r}"
        try:
            sa.info(uri)
        except DOCUMENTED:
            pass
        else:
            raise AssertionError("info accepts what attach refuses")
        return
    event("attached")
    assert not b.flags.writeable
    d = sa.info(uri)
    assert (d.dtype, d.dims) == (b.dtype, b.shape)
    # Whatever SharedArray accepts, NumPy reads the same way.
    check_same(b, numpy_reads(path))


# Names: any text.

NAME_TEXT = st.text(max_size=40) | st.binary(max_size=10).map(
    lambda b: b.decode("latin-1"))


@SETTINGS
@given(suffix=NAME_TEXT, form=st.sampled_from(["bare", "shm", "slashes", "file"]))
def test_any_text_as_a_name(tmp_path_factory, suffix, form):
    """create/attach/info/delete with prefix + arbitrary text: either the
    array lives at exactly the path the name stands for, or every call
    raises a documented exception and nothing is created."""
    d = tmp_path_factory.mktemp("names")
    base = f"sa-test-{os.getpid()}-prop-" + suffix
    name = {"bare": base, "shm": "shm://" + base, "slashes": "///" + base,
            "file": "file://" + str(d) + "/" + suffix}[form]
    if form == "file":
        expected = str(d) + "/" + suffix
    else:
        expected = shm_path(base)
    created = False
    try:
        try:
            a = sa.create(name, 3, "<i2")
        except DOCUMENTED as exc:
            event(f"create refused: {type(exc).__name__}")
            for call in (lambda: sa.attach(name), lambda: sa.info(name),
                         lambda: sa.delete(name)):
                with pytest.raises(DOCUMENTED):
                    call()
            if form != "file" and "/" not in suffix and "\0" not in suffix:
                assert not os.path.lexists(expected)
            return
        created = True
        event("created")
        a[:] = [1, 2, 3]
        assert os.path.isfile(expected), (name, expected)
        assert sa.attach(name).tolist() == [1, 2, 3]
        assert sa.info(name).dims == (3,)
        if form != "file" and FEATURES["list"]:
            assert base in [e.name for e in sa.list()]
        sa.delete(name)
        created = False
        assert not os.path.lexists(expected)
    finally:
        if created and os.path.lexists(expected):
            os.unlink(expected)
        if form == "file":
            assert [e for e in os.listdir(d) if e != suffix] == []


# Bad arguments of every kind.

ANYTHING = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(),
    st.text(max_size=5), st.binary(max_size=5),
    st.lists(st.integers(-2, 2**65), max_size=70).map(tuple),
    st.lists(st.one_of(st.integers(-3, 5), st.floats(), st.text(max_size=2)),
             max_size=4),
    st.sampled_from([object, "O", "S", "U0", "V0", "i4,", "(2)f8", "i9",
                     "<M8[XX]", "f8", "C", "F", "K", "A", 0o600, 0o7777, -1]),
)


@SETTINGS
@given(shape=SHAPES | ANYTHING, dtype=LEAF_DTYPES | ANYTHING,
       order=ORDERS | ANYTHING, mode=st.integers(0, 0o777) | ANYTHING)
def test_bad_arguments_raise_documented_exceptions(shape, dtype, order, mode):
    name = unique_name()
    try:
        try:
            a = sa.create(name, shape, dtype, order=order, mode=mode)
        except DOCUMENTED as exc:
            event(f"refused: {type(exc).__name__}")
            assert not os.path.lexists(shm_path(name))
            return
        event("created")
        # Accepted: then it is what numpy.zeros would make.
        want = np.zeros(shape, dtype, order=order)
        assert a.dtype == want.dtype and a.shape == want.shape
        assert os.stat(shm_path(name)).st_mode & 0o7777 == mode
        del a
        if IS_ROOT or mode & 0o400:
            sa.delete(name)
        else:
            # delete reads the header first; without read permission even
            # the owner gets PermissionError (README FAQ), never a deletion.
            with pytest.raises(PermissionError):
                sa.delete(name)
            assert os.path.lexists(shm_path(name))
    finally:
        remove_path(shm_path(name))
