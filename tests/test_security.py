"""Security properties: the namespace, planted links, untrusted headers.

Complements test_errors.py (invalid names for create/attach/delete, object
descrs, two code-in-header cases), test_delete.py (text files, FIFOs,
directories and symlinks refused) and test_root.py (other users and the
default mode); those cases are not repeated here.

* Names cannot escape /dev/shm, through any operation (info and from_array
  too), and nothing appears anywhere else.
* create/from_array never write through a planted symlink, whatever it
  points to (a victim file, an array, a directory, a FIFO, a device).
* delete never removes what is not an array: .npy look-alikes with a wrong
  magic, sockets, device nodes, symlinks to directories or FIFOs.
* Header text is never evaluated, by attach, info or list: code in any of
  the three fields, dunder chains, f-strings, pickled payloads of object
  arrays, and inputs that make Python's parser give up (which must not turn
  into anything but ValueError).
* Object dtypes are refused by from_array (structured, nested, subarray
  fields) and in segment headers (every spelling).
* A file:// array with the default mode is closed to other users (root).
"""

import errno
import os
import socket
import stat
import time
import uuid

import numpy as np
import pytest

import SharedArray as sa
import SharedArray._format  # imported before forking
from _helpers import (
    FEATURES,
    IS_ROOT,
    NOBODY,
    SHM_DIR,
    as_nobody,
    assert_refused,
    build_npy,
    header_text,
    list_names,
    outcome,
    remove_path,
    shm_path,
    under_sanitizer,
    write_bytes,
)

# Time limits mean nothing under valgrind.
SLOWDOWN = 50 if under_sanitizer() else 1


def fingerprint(path):
    """What must not change about a victim file."""
    st = os.lstat(path)
    content = None
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            content = f.read()
    return (st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_nlink,
            content)


# ----------------------------------------------------------------------
# The namespace


ESCAPES = ["shm://../{m}", "../{m}", "shm:///../{m}", "shm://x/../../{m}",
           "shm://{m}/", "{m}\0", "shm://../../tmp/{m}", "shm://..",
           "shm://.", ".", "..", "shm://" + "x" * 256, "{m}/" + "x" * 300]


@pytest.mark.parametrize("op", ["create", "from_array", "attach", "attach_ro",
                                "info", "delete"])
def test_names_cannot_escape_dev_shm(op, tmp_path, monkeypatch):
    marker = f"sa-test-escape-{uuid.uuid4().hex[:8]}"
    monkeypatch.chdir(tmp_path)
    call = {
        "create": lambda n: sa.create(n, 3),
        "from_array": lambda n: sa.from_array(n, np.arange(3)),
        "attach": lambda n: sa.attach(n),
        "attach_ro": lambda n: sa.attach(n, ro=True),
        "info": lambda n: sa.info(n),
        "delete": lambda n: sa.delete(n),
    }[op]
    for template in ESCAPES:
        name = template.format(m=marker)
        with pytest.raises(ValueError) as info:
            call(name)
        assert not isinstance(info.value, OSError), name
    for d in (SHM_DIR, "/dev", "/", "/tmp", str(tmp_path),
              str(tmp_path.parent)):
        assert not any(marker in e for e in os.listdir(d)), d


# ----------------------------------------------------------------------
# Planted symlinks


def _plant_targets(tmp_path, shm_name):
    """Things an attacker might point a symlink at."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious data\n")
    array_uri = "file://" + str(tmp_path / "victim-array.npy")
    sa.create(array_uri, 4, "<i4")[:] = [1, 2, 3, 4]
    directory = tmp_path / "victim-dir"
    directory.mkdir()
    fifo = tmp_path / "victim-fifo"
    os.mkfifo(fifo)
    targets = {
        "regular-file": str(victim),
        "array": array_uri[len("file://"):],
        "directory": str(directory),
        "fifo": str(fifo),
        "shm-array": shm_path(shm_name()),
        "passwd": "/etc/passwd",
    }
    sa.create(os.path.basename(targets["shm-array"]), 2)
    if IS_ROOT:
        dev = tmp_path / "victim-null"
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        targets["device"] = str(dev)
    return targets


@pytest.mark.parametrize("backend", ["shm", "file"])
@pytest.mark.parametrize("op", ["create", "from_array"])
def test_create_never_writes_through_a_planted_symlink(
        tmp_path, shm_name, backend, op):
    targets = _plant_targets(tmp_path, shm_name)
    before = {k: fingerprint(v) for k, v in targets.items()}
    dir_listing = sorted(os.listdir(targets["directory"]))
    for kind, target in targets.items():
        if backend == "shm":
            name = shm_name(suffix="-link")
            link = shm_path(name)
        else:
            link = str(tmp_path / f"link-{kind}.npy")
            name = "file://" + link
        os.symlink(target, link)
        with pytest.raises(FileExistsError) as info:
            if op == "create":
                sa.create(name, (1000,), "<f8")
            else:
                sa.from_array(name, np.full(1000, 7.0))
        assert info.value.errno == errno.EEXIST
        assert info.value.filename == name
        assert os.readlink(link) == target, kind
        os.unlink(link)
    after = {k: fingerprint(v) for k, v in targets.items()}
    assert after == before
    assert sorted(os.listdir(targets["directory"])) == dir_listing
    assert sa.attach("file://" + targets["array"]).tolist() == [1, 2, 3, 4]
    sa.delete(os.path.basename(targets["shm-array"]))


def test_symlink_out_of_dev_shm_is_not_followed(tmp_path, shm_name):
    """A shm name that is a symlink to an array elsewhere: attach and info
    refuse it (ELOOP), list skips it, delete refuses it."""
    real = "file://" + str(tmp_path / "real.npy")
    sa.create(real, 3, "<i2")[:] = 5
    name = shm_name()
    os.symlink(real[len("file://"):], shm_path(name))
    for exc in assert_refused(name, OSError):
        assert exc.errno == errno.ELOOP
        assert exc.filename == name
    assert name not in list_names()
    with pytest.raises(ValueError):
        sa.delete(name)
    assert os.path.islink(shm_path(name))
    assert sa.attach(real).tolist() == [5, 5, 5]


# ----------------------------------------------------------------------
# delete removes only arrays

GOOD_HEADER = header_text("<f8", (2,))


def _lookalike(magic):
    return build_npy(GOOD_HEADER, b"\0" * 16, raw_prefix=(
        magic + bytes([1, 0]) + len(build_npy(GOOD_HEADER)[10:]).to_bytes(2, "little")))


def _save_npz(path):
    with open(path, "wb") as f:  # a file object: savez would append .npz
        np.savez(f, a=np.arange(3))


NON_ARRAYS = {
    "magic-first-byte": lambda p: write_bytes(p, _lookalike(b"\x92NUMPY")),
    "magic-lowercase": lambda p: write_bytes(p, _lookalike(b"\x93numpy")),
    "magic-last-byte": lambda p: write_bytes(p, _lookalike(b"\x93NUMPZ")),
    "magic-shifted": lambda p: write_bytes(p, b" " + _lookalike(b"\x93NUMPY")),
    "magic-utf8": lambda p: write_bytes(p, _lookalike("\u201cNUMPY".encode()[:6])),
    "npz-archive": _save_npz,
    "sharedarray3-lookalike": lambda p: write_bytes(
        p, b"\0" * 300 + b"[SharedArray]\0\0\0" + b"\xff" * 40),
    "socket": lambda p: socket.socket(socket.AF_UNIX).bind(p),
    "symlink-to-directory": lambda p: os.symlink("/tmp", p),
    "symlink-to-fifo": lambda p: (os.mkfifo(p + ".fifo"), os.symlink(p + ".fifo", p)),
    "dangling-symlink": lambda p: os.symlink(p + ".nowhere", p),
    "hardlinked-text": lambda p: (write_bytes(p + ".orig", b"text\n"), os.link(p + ".orig", p)),
}
if IS_ROOT:
    NON_ARRAYS["char-device"] = lambda p: os.mknod(
        p, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    NON_ARRAYS["block-device"] = lambda p: os.mknod(
        p, stat.S_IFBLK | 0o600, os.makedev(7, 0))


@pytest.mark.parametrize("backend", ["shm", "file"])
@pytest.mark.parametrize("kind", sorted(NON_ARRAYS))
def test_delete_never_removes_a_non_array(tmp_path, shm_name, backend, kind):
    if backend == "shm":
        name = shm_name()
        path = shm_path(name)
    else:
        path = str(tmp_path / "thing")
        name = "file://" + path
    NON_ARRAYS[kind](path)
    before = fingerprint(path)
    # A shm name never follows a symlink (ELOOP); a file path does, to a
    # directory or FIFO (not a regular file) or to nothing.
    if kind.startswith("symlink") or kind == "dangling-symlink":
        if backend == "shm":
            want = OSError
        elif kind == "dangling-symlink":
            want = FileNotFoundError
        else:
            want = ValueError
    else:
        want = ValueError
    try:
        # Even a device node on a nodev /dev/shm, which cannot be opened.
        with pytest.raises(ValueError) as info:
            sa.delete(name)
        assert name in str(info.value) or getattr(info.value, "filename", None) == name
        assert fingerprint(path) == before
        for exc in assert_refused(name, want):
            if want is OSError:
                assert exc.errno == errno.ELOOP
        assert fingerprint(path) == before
    finally:
        for suffix in ("", ".fifo", ".orig"):
            remove_path(path + suffix)


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null", "/dev/urandom",
                                  "/proc/self/mem", "/proc/self/environ",
                                  "/proc/self/maps", "/sys/kernel/mm/transparent_hugepage/enabled"])
def test_special_files_are_never_mapped(path):
    """Devices and pseudo-files (some of which claim to be regular files of
    size 0) are refused cleanly by attach and info; delete is not tried on
    them (as root, a wrong delete would remove system files)."""
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist here")
    name = "file://" + path
    for ro in (True, False):
        # Only root may open the sysfs file for writing.
        want = (PermissionError if not ro and not IS_ROOT and
                path.startswith("/sys/") else ValueError)
        with pytest.raises(want) as info:
            sa.attach(name, ro=ro)
        assert name in str(info.value) or info.value.filename == name
    with pytest.raises(ValueError):
        sa.info(name)
    assert os.path.exists(path)


# ----------------------------------------------------------------------
# Headers are never evaluated

def _evil_headers(marker):
    touch = f"__import__('os').system('touch {marker}')"
    return {
        "call-in-shape": f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({touch},), }}",
        "call-in-order": f"{{'descr': '<f8', 'fortran_order': {touch}, 'shape': (2,), }}",
        "bare-call-descr": f"{{'descr': {touch}, 'fortran_order': False, 'shape': (2,), }}",
        "code-in-descr-string": f"{{'descr': {touch!r}, 'fortran_order': False, 'shape': (2,), }}",
        "lambda-in-list": f"{{'descr': [lambda: {touch}], 'fortran_order': False, 'shape': (2,), }}",
        "lambda-field-type": f"{{'descr': [('a', lambda: {touch})], 'fortran_order': False, 'shape': (2,), }}",
        "dunder-chain": "{'descr': [().__class__.__base__.__subclasses__()], 'fortran_order': False, 'shape': (2,), }",
        "fstring": f"{{'descr': [f\"{{{touch}}}\"], 'fortran_order': False, 'shape': (2,), }}",
        "escaped-string-code": f"{{'descr': ['\\x5f_import__', {touch}], 'fortran_order': False, 'shape': (2,), }}",
        "comprehension": f"{{'descr': [x for x in [{touch}]], 'fortran_order': False, 'shape': (2,), }}",
        "walrus": f"{{'descr': [(y := {touch})], 'fortran_order': False, 'shape': (2,), }}",
        "extra-key-with-code": f"{{'descr': '<f8', 'fortran_order': False, 'shape': (2,), {touch}: 1}}",
        # Inputs that make the parser or literal_eval give up.
        "deep-unary-minus": "{'descr': [%s1], 'fortran_order': False, 'shape': (2,), }" % ("-" * 50000),
        "long-addition": "{{'descr': [{}], 'fortran_order': False, 'shape': (2,), }}".format("+".join(["1"] * 50000)),
        "huge-int-literal": "{'descr': [('a', '<f8', (%s,))], 'fortran_order': False, 'shape': (2,), }" % ("9" * 100000),
        "deep-brackets": "{'descr': %s, 'fortran_order': False, 'shape': (2,), }" % ("[" * 64 + "]" * 64),
        "deep-dicts": "{'descr': [%s], 'fortran_order': False, 'shape': (2,), }" % ("{1: " * 150 + "1" + "}" * 150),
    }


@pytest.mark.parametrize("kind", sorted(_evil_headers("M")))
def test_header_is_never_evaluated(shm_name, tmp_path, kind):
    """attach, info and list refuse (ValueError; list skips) hostile header
    text, with no side effect and within a second."""
    marker = tmp_path / f"pwned-{uuid.uuid4().hex[:8]}"
    name = shm_name()
    write_bytes(shm_path(name), build_npy(_evil_headers(marker)[kind],
                                          b"\0" * 64, version=2))
    t0 = time.monotonic()
    assert_refused(name)
    listed = list_names()  # must neither raise nor list it
    assert name not in listed
    assert time.monotonic() - t0 < 5 * SLOWDOWN
    assert not marker.exists()
    sa.delete(name)  # it has the .npy magic: a damaged array, removable


class _Evil:
    """Unpickling this runs a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_object_array_is_never_unpickled(shm_name, tmp_path):
    marker = tmp_path / "pwned-by-pickle"
    name = shm_name()
    with open(shm_path(name), "wb") as f:
        np.save(f, np.array([_Evil(marker), 1], dtype=object), allow_pickle=True)
    assert_refused(name)
    assert name not in list_names()
    assert not marker.exists()
    sa.delete(name)


# ----------------------------------------------------------------------
# Object dtypes

OBJECT_SOURCES = {
    "object-field": lambda: np.zeros(3, [("a", "<i4"), ("o", "O")]),
    "nested-object-field": lambda: np.zeros(2, [("n", [("x", "<f4"), ("o", "O")])]),
    "object-subarray-field": lambda: np.zeros(2, [("s", "O", (3,))]),
    "list-of-objects": lambda: [object(), object()],
    "ragged-lists": lambda: np.array([[1], [1, 2]], dtype=object),
}


@pytest.mark.parametrize("kind", sorted(OBJECT_SOURCES))
def test_from_array_refuses_objects(shm_name, kind):
    name = shm_name()
    src = OBJECT_SOURCES[kind]()
    with pytest.raises(TypeError) as info:
        sa.from_array(name, src)
    assert "object" in str(info.value).lower()
    assert not os.path.lexists(shm_path(name))


OBJECT_DESCRS = ["'|O'", "'O'", "'|O8'", "'<O'", "'object'",
                 "[('a', [('b', '|O')])]", "[('a', '|O', (2,))]",
                 "[('a', '<i8'), ('', '|O')]", "('|O', (2,))"]


@pytest.mark.parametrize("descr", OBJECT_DESCRS)
def test_object_descr_in_header_is_refused(shm_name, descr):
    name = shm_name()
    write_bytes(shm_path(name), build_npy(
        f"{{'descr': {descr}, 'fortran_order': False, 'shape': (4,), }}",
        b"\0" * 256))
    assert_refused(name)
    assert name not in list_names()
    sa.delete(name)


# ----------------------------------------------------------------------
# Other users (root)


@pytest.mark.skipif(not IS_ROOT, reason="needs root to act as another uid")
def test_default_mode_file_array_is_closed_to_other_users(tmp_path):
    """A file:// array in a world-readable directory, default mode: another
    uid can neither attach it (rw or ro) nor read its description."""
    public = tmp_path / "public"
    public.mkdir()
    for d in (tmp_path, public):
        d.chmod(0o755)
    uri = "file://" + str(public / "private.npy")
    sa.create(uri, 8, "<f8")[:] = 1.5

    got = as_nobody(lambda: [
        outcome(call) for call in (
            lambda: sa.attach(uri), lambda: sa.attach(uri, ro=True),
            lambda: sa.info(uri), lambda: sa.delete(uri))])
    assert got[:3] == [["PermissionError", errno.EACCES, uri]] * 3
    # delete: the file cannot be read, and the directory is not theirs.
    assert got[3][0] == "PermissionError" and got[3][2] == uri
    assert sa.attach(uri).tolist() == [1.5] * 8


def _many_fields_npy(nfields):
    descr = [(f"f{i}", "|u1") for i in range(nfields)]
    head = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': (2,), }}"
    return build_npy(head, b"\0" * (2 * nfields))


@pytest.mark.skipif(not IS_ROOT, reason="needs root to chown a file to another user")
def test_long_descr_from_another_user_is_refused(shm_name):
    """Anyone can drop a valid .npy with a huge structured descr into
    /dev/shm (an 80,000-field header costs seconds to parse): a descr over
    NumPy's max_header_size (10,000 bytes) is refused in a file owned by
    another user, so list() stays fast for everyone; the same file of one's
    own is read."""
    foreign, own = shm_name(), shm_name()
    content = _many_fields_npy(2000)   # a descr of about 26,000 bytes
    write_bytes(shm_path(foreign), content)
    write_bytes(shm_path(own), content)
    os.chown(shm_path(foreign), NOBODY, NOBODY)
    for call in (lambda: sa.info(foreign), lambda: sa.attach(foreign, ro=True)):
        with pytest.raises(ValueError, match="another user may have at most 10000"):
            call()
    names = list_names()
    assert foreign not in names and (own in names or not FEATURES["list"])
    assert len(sa.info(own).dtype.names) == 2000
    a = sa.attach(own, ro=True)
    assert a.shape == (2,) and len(a.dtype.names) == 2000
