"""Which file an array is: the multiprocessing reducer and the mapping cache.

6. An array sent by reference (name + identity) must never arrive as a
   different array, even when the name was deleted and recreated and the
   new file got the same inode number (ext4 reuses a freed one at once; a
   fresh tmpfs mounted where the old one was reuses device and inode).
7. One message with 70,000 views of one array needs one mapping in the
   receiver, not one per view (vm.max_map_count is 65530).
8. The per-process mapping cache: attach of a name mapped in this process
   reuses the mapping, and never serves a stale one (delete and recreate,
   inode reuse, truncation, chmod, ro/rw, fork); its budget and
   cache_clear() really unmap.

Sharing is always checked across a process boundary (spawn, subprocess or
fork); anything that could die of SIGBUS runs in a forked child.
"""

import contextlib
import errno
import gc
import multiprocessing as mp
import os
import pickle
import shutil
import subprocess
from multiprocessing.reduction import ForkingPickler

import numpy as np
import pytest

import SharedArray as sa
from _helpers import (
    IS_ROOT,
    NOBODY,
    PAGE,
    assert_same_array,
    drop_cache,
    is_shared,
    needs,
    read_header,
    run_forked,
    run_python,
    shm_path,
    vmas_at,
)

MiB = 1 << 20


# ----------------------------------------------------------------------
# Helpers


def release():
    """Forget every mapping no array uses any more."""
    gc.collect()
    drop_cache()


def identity(path):
    st = os.stat(path)
    return st.st_dev, st.st_ino


def maps_of(dev, ino):
    """Lines of /proc/self/maps that map the file (dev, ino)."""
    want = f"{os.major(dev):02x}:{os.minor(dev):02x}"
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 5 and int(fields[4]) == ino and fields[3] == want:
                out.append(line.rstrip("\n"))
    return out


def fs_type(path):
    """The type of the filesystem holding path, from /proc/self/mounts."""
    path = os.path.realpath(path)
    best, kind = "", None
    with open("/proc/self/mounts") as f:
        for line in f:
            _, mnt, typ = line.split()[:3]
            mnt = mnt.replace("\\040", " ")
            inside = path == mnt or path.startswith(mnt.rstrip("/") + "/")
            if inside and len(mnt) >= len(best):
                best, kind = mnt, typ
    return kind


def mount(args, mnt):
    proc = subprocess.run(["mount", *args, str(mnt)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount {args}: {proc.stderr.strip()}")


def umount(mnt):
    """Unmount; if still busy, detach it lazily and fail."""
    if not os.path.ismount(mnt):
        return
    release()
    done = subprocess.run(["umount", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        pytest.fail(f"{mnt} still busy: {done.stderr.strip()}")


@pytest.fixture
def ext4_dir(tmp_path):
    """A directory on ext4: tmp_path if it is on ext4, else (as root) a
    loop-mounted ext4 image."""
    if fs_type(tmp_path) == "ext4":
        d = tmp_path / "ext4"
        d.mkdir()
        yield d
        shutil.rmtree(d, ignore_errors=True)
        return
    if not IS_ROOT or shutil.which("mkfs.ext4") is None:
        pytest.skip(f"{tmp_path} is {fs_type(tmp_path)}, not ext4, and no "
                    "ext4 image can be mounted (needs root and mkfs.ext4)")
    image = tmp_path / "ext4.img"
    with open(image, "wb") as f:
        f.truncate(64 * MiB)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True,
                   capture_output=True)
    d = tmp_path / "ext4"
    d.mkdir()
    mount(["-o", "loop", str(image)], d)
    try:
        yield d
    finally:
        umount(d)
        image.unlink()


needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (mount, setuid)")


@contextlib.contextmanager
def cache_limits(max_entries=64, max_bytes=1 << 30):
    """Run with these cache limits (None: keep the default) and an empty
    cache; restore the limits in force before, and empty the cache, after."""
    saved = sa.cache_limits()
    try:
        sa.cache_clear()
        if max_entries is not None or max_bytes is not None:
            sa.cache_limits(max_entries=max_entries, max_bytes=max_bytes)
        yield saved
    finally:
        sa.cache_limits(max_entries=saved[0], max_bytes=saved[1])
        gc.collect()
        sa.cache_clear()


# Workers (spawn)


def check_and_write(view, expected, value):
    """Receives a view by reference: checks it, writes through it."""
    assert is_shared(view), "the view arrived by value"
    assert view.tolist() == expected, (view.tolist(), expected)
    view[...] = value
    return True


def loads_elsewhere(payload):
    """Unpickles a payload made by ForkingPickler.dumps in another process."""
    try:
        arr = pickle.loads(payload)
    except OSError as exc:
        return ["raised", type(exc).__name__, exc.errno]
    except Exception as exc:
        return ["raised", repr(exc), None]
    return ["data", arr.tolist()]


def receive_views(q_in, q_out, dev, ino):
    try:
        views = q_in.get(timeout=600)
        ok = all(is_shared(v) and float(v[0]) == i for i, v in enumerate(views))
        for i, v in enumerate(views):
            v[1] = -i
        lines = maps_of(dev, ino)
        q_out.put(["ok", len(views), ok, len(lines), lines[:3]])
    except BaseException as exc:
        q_out.put(["error", repr(exc)[:1000]])


# ----------------------------------------------------------------------
# 6. The reducer never hands over a different array


ORIGINAL = np.arange(4096, dtype="<i8")
REPLACEMENT = np.full(4096, 7, dtype="<i8")  # same shape and dtype


def _send_while_alive(uri):
    """The positive case: a view sent while the array is alive arrives with
    its data, and a write in the child is seen by the parent."""
    a = sa.attach(uri)
    with mp.get_context("spawn").Pool(1) as pool:
        assert pool.apply(check_and_write, (a[100:200], a[100:200].tolist(), -5))
    assert (a[100:200] == -5).all()
    assert (a[:100] == ORIGINAL[:100]).all() and (a[200:] == ORIGINAL[200:]).all()


def _payload_then_drop(uri):
    """ForkingPickler bytes of a view, and what that view held; then every
    array of the name is dropped."""
    a = sa.attach(uri)
    view = a[1000:1010]
    payload = bytes(ForkingPickler.dumps(view))
    want = view.tolist()
    del a, view
    release()
    return payload, want


def _assert_original_or_estale(payload, want, how):
    with mp.get_context("spawn").Pool(1) as pool:
        got = pool.apply(loads_elsewhere, (payload,))
    assert got in (["data", want], ["raised", "OSError", errno.ESTALE]), (
        f"a view pickled before the array was replaced ({how}) arrived as "
        f"{got[:1] + [got[1][:3]] if got[0] == 'data' else got} instead of the "
        f"original data {want[:3]}... or OSError(ESTALE)")


@needs("birth_times")
def test_reducer_never_hands_over_a_replaced_array_ext4(ext4_dir):
    """Contract 6 on ext4: the name is deleted and recreated, and the new
    file gets the freed inode number (ext4 reuses it at once)."""
    path = str(ext4_dir / "x.npy")
    uri = "file://" + path
    sa.from_array(uri, ORIGINAL)
    release()
    _send_while_alive(uri)
    payload, want = _payload_then_drop(uri)
    old = identity(path)
    sa.delete(uri)
    # Recreate until the new file has the old inode number; files that do
    # not are moved aside (still holding their inode) and tried again.
    aside = []
    for attempt in range(50):
        sa.from_array(uri, REPLACEMENT)
        release()
        if identity(path) == old or attempt == 49:
            break  # reused; or the last try, which stays at path
        aside.append(f"{path}.aside{attempt}")
        os.rename(path, aside[-1])
    reused = identity(path) == old  # nothing is asserted about reuse
    try:
        _assert_original_or_estale(
            payload, want, "inode number reused" if reused else "new inode")
    finally:
        sa.delete(uri)
        for p in aside:
            os.unlink(p)


@needs_root
@needs("birth_times")
def test_reducer_never_hands_over_a_replaced_array_tmpfs(tmp_path):
    """Contract 6 on tmpfs: recreated under the same name on the same tmpfs
    (a new inode number), and on a fresh tmpfs mounted where the old one
    was, which gets the same device number and inode numbers."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    path = str(mnt / "x.npy")
    uri = "file://" + path
    mount(["-t", "tmpfs", "-o", "size=16M", "tmpfs"], mnt)
    try:
        sa.from_array(uri, ORIGINAL)
        release()
        _send_while_alive(uri)
        # Same tmpfs.
        payload, want = _payload_then_drop(uri)
        sa.delete(uri)
        sa.from_array(uri, REPLACEMENT)
        release()
        _assert_original_or_estale(payload, want, "recreated on the same tmpfs")
        sa.delete(uri)

        # A new tmpfs in the old one's place: its device number is the old
        # one's (the lowest free), and its inode numbers count up from the
        # same start, so the new array gets the old (dev, ino) after a few
        # files moved aside.
        sa.from_array(uri, ORIGINAL)
        release()
        payload, want = _payload_then_drop(uri)
        old = identity(path)
        sa.delete(uri)
        for _attempt in range(10):
            umount(mnt)
            mount(["-t", "tmpfs", "-o", "size=16M", "tmpfs"], mnt)
            for k in range(64):
                _make(uri, REPLACEMENT)
                now = identity(path)
                if now == old or now[0] != old[0] or now[1] > old[1]:
                    break
                os.rename(path, f"{path}.aside{k}")
            if now == old:
                break
        else:
            pytest.fail(f"10 fresh tmpfs never reproduced (dev, ino) {old}")
        _assert_original_or_estale(payload, want, "same (dev, ino) on a new tmpfs")
        sa.delete(uri)
    finally:
        umount(mnt)


# ----------------------------------------------------------------------
# 7. One message, many views


@needs("birth_times")
def test_one_message_with_70000_views_needs_one_mapping(shm_name):
    """Contract 7: 70,000 row views of one array in one Queue message to a
    spawned process: all arrive (by reference), and the receiver maps the
    segment once, not once per view (vm.max_map_count is 65530)."""
    n = 70_000
    name = "shm://" + shm_name()
    a = sa.create(name, (n, 2), "<f8")
    a[:, 0] = np.arange(n)
    dev, ino = identity(shm_path(name))
    ctx = mp.get_context("spawn")
    q_in, q_out = ctx.Queue(), ctx.Queue()
    q_in.cancel_join_thread()  # never hang at exit if the receiver died
    p = ctx.Process(target=receive_views, args=(q_in, q_out, dev, ino))
    p.start()
    try:
        q_in.put([a[i] for i in range(n)])
        got = q_out.get(timeout=600)
        p.join(60)
    finally:
        if p.is_alive():
            p.terminate()
            p.join()
    assert got[0] == "ok", f"the receiver failed: {got[1]}"
    _, count, ok, nmaps, lines = got
    assert (count, ok) == (n, True)
    assert 1 <= nmaps <= 2, f"the receiver maps the segment {nmaps} times: {lines}"
    assert (a[:, 1] == -np.arange(n)).all()  # the receiver's writes
    sa.delete(name)


# ----------------------------------------------------------------------
# 8. The per-process mapping cache


def _make(name, arr):
    """Create name holding arr, keeping no array of it."""
    sa.from_array(name, arr)
    release()


@needs("birth_times")
def test_cache_hit_reuses_the_mapping_and_is_counted(shm_name):
    """Contract 8 (h) and the basic promise: the first attach is a miss,
    a repeated attach (same ro) a hit that returns a new array over the
    same Mapping; cache_info() reports it."""
    name = "shm://" + shm_name()
    with cache_limits(None, None):  # the defaults
        _make(name, np.arange(10.0))
        before = sa.cache_info()
        a = sa.attach(name)
        mid = sa.cache_info()
        assert (mid.misses, mid.hits) == (before.misses + 1, before.hits)
        b = sa.attach(name)
        after = sa.cache_info()
        assert (after.misses, after.hits) == (mid.misses, mid.hits + 1)
        assert b is not a and b.base is a.base
        assert after.entries >= 1 and after.nbytes >= a.nbytes
        assert after.max_entries > 0 and after.max_bytes > 0
        a[3] = 42.0
        assert b[3] == 42.0
        del a, b
    sa.delete(name)


def test_cache_limits_sets_and_reports(shm_name):
    """cache_limits sets only the limits given and returns those in force;
    0 disables caching: nothing is kept once the arrays are dropped.
    (Whether two live attaches still share a mapping with caching disabled
    is not part of the contract, so it is not asserted.)"""
    name = "shm://" + shm_name()
    _make(name, np.arange(4.0))
    with cache_limits(None, None) as saved:
        assert sa.cache_limits() == saved
        assert sa.cache_limits(max_entries=5, max_bytes=123456) == (5, 123456)
        assert sa.cache_limits(max_bytes=654321) == (5, 654321)
        info = sa.cache_info()
        assert (info.max_entries, info.max_bytes) == (5, 654321)
        for limits in ({"max_entries": 0}, {"max_bytes": 0}):
            sa.cache_limits(max_entries=5, max_bytes=654321)
            sa.cache_limits(**limits)
            a = sa.attach(name)
            b = sa.attach(name)
            a[1] = 9.0
            assert b[1] == 9.0, limits
            st = os.stat(shm_path(name))
            del a, b
            gc.collect()
            assert sa.cache_info().entries == 0, limits
            assert maps_of(st.st_dev, st.st_ino) == [], limits
    sa.delete(name)


@pytest.mark.parametrize("hold", [False, True], ids=["dropped", "held"])
@pytest.mark.parametrize("change", ["contents", "shape", "dtype"])
@needs("birth_times")
def test_cache_delete_and_recreate_in_this_process(shm_name, change, hold):
    """(a) delete + recreate under the same name in this process: the next
    attach sees the new array, whether the old one is still held or not."""
    name = "shm://" + shm_name()
    old = np.arange(10.0)
    new = {"contents": np.full(10, 7.0),
           "shape": np.arange(12.0).reshape(3, 4),
           "dtype": np.arange(10, dtype="<i4")}[change]
    with cache_limits():
        _make(name, old)
        a = sa.attach(name)
        assert sa.attach(name).base is a.base  # cached
        if not hold:
            del a
            gc.collect()
        sa.delete(name)
        _make(name, new)
        for ro in (False, True):
            assert_same_array(sa.attach(name, ro=ro), new)
        if hold:
            assert_same_array(a, old)  # the held array is the old one
            del a
    sa.delete(name)


REPLACE_CODE = """
import os, sys
import numpy as np
import SharedArray as sa
name, how, tmp = sys.argv[1:]
new = np.arange(12, dtype="<i4").reshape(3, 4) * 3
if how == "delete-create":
    sa.delete(name)
    sa.from_array(name, new)
else:  # a new file renamed over the name
    sa.from_array("shm://" + tmp, new)
    os.rename("/dev/shm/" + tmp, "/dev/shm/" + name[len("shm://"):])
"""


@pytest.mark.parametrize("hold", [False, True], ids=["dropped", "held"])
@pytest.mark.parametrize("how", ["delete-create", "rename-over"])
@needs("birth_times")
def test_cache_sees_replacement_by_another_process(shm_name, how, hold):
    """(a) another process deletes and recreates the name (or renames a new
    array over it) while this process's cache holds the old mapping: the
    next attach sees the new array."""
    name = "shm://" + shm_name()
    tmp = shm_name(suffix="-tmp")
    with cache_limits():
        _make(name, np.arange(10.0))
        a = sa.attach(name)
        assert sa.attach(name, ro=True).base is sa.attach(name, ro=True).base
        assert sa.attach(name).base is a.base  # cached
        if not hold:
            del a
            gc.collect()
        run_python(REPLACE_CODE, name, how, tmp)
        want = np.arange(12, dtype="<i4").reshape(3, 4) * 3
        for ro in (False, True):
            assert_same_array(sa.attach(name, ro=ro), want)
        if hold:
            assert a.tolist() == list(range(10))
            del a
    sa.delete(name)


@needs("birth_times")
def test_cache_inode_reuse_ext4(ext4_dir):
    """(b) file:// on ext4: delete, then recreate until the new file gets
    the freed inode number: the next attach sees the new array."""
    path = str(ext4_dir / "x.npy")
    uri = "file://" + path
    with cache_limits():
        _make(uri, ORIGINAL)
        a = sa.attach(uri)
        assert sa.attach(uri).base is a.base  # cached
        del a
        gc.collect()
        old = identity(path)
        sa.delete(uri)
        aside = []
        for attempt in range(50):
            _make(uri, REPLACEMENT)
            if identity(path) == old or attempt == 49:
                break  # reused; or the last try, which stays at path
            aside.append(f"{path}.aside{attempt}")
            os.rename(path, aside[-1])
        try:
            for ro in (False, True):
                got = sa.attach(uri, ro=ro)
                assert (got == REPLACEMENT).all(), (
                    f"ro={ro}: attach returned the deleted array "
                    f"(inode {'reused' if identity(path) == old else 'new'})")
                del got
        finally:
            for p in aside:
                os.unlink(p)
    sa.delete(uri)


@pytest.mark.parametrize("hold", [False, True], ids=["dropped", "held"])
@needs("birth_times")
def test_cache_truncated_by_another_process(shm_name, hold):
    """(c) another process truncates the file to its header: attach (rw or
    ro) raises ValueError; it never returns the stale mapping, whose data
    would now raise SIGBUS.  Checked in a forked child, which inherits the
    cache."""
    name = "shm://" + shm_name()
    path = shm_path(name)
    with cache_limits():
        _make(name, np.arange(4096.0))
        offset = read_header(path)["data_offset"]
        a = sa.attach(name)
        r = sa.attach(name, ro=True)
        assert sa.attach(name).base is a.base  # cached
        assert sa.attach(name, ro=True).base is r.base
        if not hold:
            del a, r
            gc.collect()
        run_python("import os, sys; os.truncate(sys.argv[1], int(sys.argv[2]))",
                   path, str(offset))

        def attach_after_truncation():
            out = []
            for ro in (False, True):
                try:
                    b = sa.attach(name, ro=ro)
                except ValueError as exc:
                    out.append(["ValueError", "truncated" in str(exc)])
                    continue
                except BaseException as exc:
                    out.append([repr(exc), None])
                    continue
                out.append(["attached", float(b.sum())])  # SIGBUS if stale
            return out

        got = run_forked(attach_after_truncation)
        assert got == ("ok", [["ValueError", True]] * 2), got
        if hold:
            del a, r  # not touched: their data is gone
    os.unlink(path)


@needs_root
@needs("birth_times")
def test_cache_notices_chmod_by_the_owner(shm_name):
    """(d) a process of another uid attaches a 0o666 array read-write (and
    again, from the cache); the owner chmods it to 0o644; the next rw
    attach in that process raises PermissionError, ro still works."""
    name = "shm://" + shm_name()
    path = shm_path(name)
    with cache_limits():
        a = sa.create(name, 16, "<f8", mode=0o666)
        del a
        release()  # the child must not inherit an entry made as root

        def other_user(sync):
            a = sa.attach(name)
            cached = sa.attach(name).base is a.base
            a[0] = 1.0
            sync()  # the owner chmods 0o644
            try:
                sa.attach(name)
                rw = "attached"
            except PermissionError as exc:
                rw = ["PermissionError", exc.errno]
            ro = sa.attach(name, ro=True)
            return [cached, rw, float(ro[0]), ro.flags.writeable]

        got = run_forked(other_user, uid=NOBODY,
                         between=lambda: os.chmod(path, 0o644))
    assert got == ("ok", [True, ["PermissionError", errno.EACCES], 1.0, False]), got
    sa.delete(name)


@needs("birth_times")
def test_cache_ro_and_rw_are_separate_mappings(shm_name):
    """(e) attach(ro=True) and attach(ro=False) of one name never share a
    mapping, in either order; the read-only one stays read-only."""
    name = "shm://" + shm_name()
    with cache_limits():
        _make(name, np.arange(8.0))
        r1 = sa.attach(name, ro=True)
        r2 = sa.attach(name, ro=True)
        w1 = sa.attach(name)
        w2 = sa.attach(name)
        r3 = sa.attach(name, ro=True)
        assert r1.base is r2.base is r3.base
        assert w1.base is w2.base
        assert w1.base is not r1.base
        for r in (r1, r2, r3):
            assert not r.flags.writeable and not r.base.writable
            with pytest.raises(ValueError):
                r.flags.writeable = True
            with pytest.raises(ValueError):
                r[0] = 5
        assert vmas_at(r1.base.addr)[0].split()[1].startswith("r-")
        assert w1.flags.writeable and w1.base.writable
        w1[0] = 5.0
        assert r1[0] == 5.0
        del r1, r2, r3, w1, w2
    sa.delete(name)


@needs("birth_times")
def test_cache_after_fork(shm_name):
    """(f) after fork, the child's attach of a name cached in the parent
    works and shares memory with the parent both ways."""
    name = "shm://" + shm_name()
    with cache_limits():
        _make(name, np.zeros(8))
        a = sa.attach(name)
        assert sa.attach(name).base is a.base  # cached
        a[0] = 1.0  # before the fork

        def child(sync):
            b = sa.attach(name)
            before = b.tolist()
            sync()  # the parent writes a[1]
            seen = float(b[1])
            b[2] = 3.0
            sa.attach(name)[3] = 4.0
            return [before[:2], seen]

        def parent_writes():
            a[1] = 2.0

        got = run_forked(child, between=parent_writes)
        assert got == ("ok", [[1.0, 0.0], 2.0]), got
        assert a.tolist()[:4] == [1.0, 2.0, 3.0, 4.0]
    sa.delete(name)


def test_cache_max_entries(shm_name):
    """(g) with max_entries=2, three names attached and dropped leave at
    most two entries, and at most two of them mapped."""
    names = ["shm://" + shm_name() for _ in range(3)]
    for name in names:
        _make(name, np.arange(16.0))
    ids = [identity(shm_path(n)) for n in names]
    with cache_limits(max_entries=2):
        for name in names:
            a = sa.attach(name)
            assert float(a[5]) == 5.0
            del a
        gc.collect()
        assert sa.cache_info().entries <= 2
        mapped = [n for n, (dev, ino) in zip(names, ids) if maps_of(dev, ino)]
        assert len(mapped) <= 2, mapped
    for name in names:
        sa.delete(name)


@needs("birth_times")
def test_cache_max_bytes(shm_name):
    """(g) with max_bytes smaller than an array, that array is unmapped
    once its arrays are dropped, while a small one is kept."""
    big, small = "shm://" + shm_name(), "shm://" + shm_name()
    _make(big, np.zeros(MiB // 8))
    _make(small, np.zeros(4))
    big_id, small_id = identity(shm_path(big)), identity(shm_path(small))
    with cache_limits(max_entries=64, max_bytes=16 * PAGE):
        a = sa.attach(big)
        a[-1] = 1.0
        s = sa.attach(small)
        del a, s
        gc.collect()
        assert maps_of(*big_id) == [], "an array over the byte budget is kept"
        assert len(maps_of(*small_id)) == 1, "a small array is not kept"
        assert sa.cache_info().nbytes <= 16 * PAGE
    sa.delete(big)
    sa.delete(small)


@needs("birth_times")
def test_cache_clear_unmaps(shm_name):
    """(g) cache_clear() drops every entry: arrays still held stay valid,
    and once they are dropped no mapping of the segments remains."""
    x, y = "shm://" + shm_name(), "shm://" + shm_name()
    _make(x, np.arange(8.0))
    _make(y, np.arange(8.0))
    x_id, y_id = identity(shm_path(x)), identity(shm_path(y))
    with cache_limits():
        held = sa.attach(x)
        for name in (x, y):
            sa.attach(name)
            sa.attach(name, ro=True)
        gc.collect()
        assert maps_of(*y_id), "nothing was cached"
        sa.cache_clear()
        info = sa.cache_info()
        assert (info.entries, info.nbytes) == (0, 0)
        assert maps_of(*y_id) == []
        held[:] = 9.0  # still valid
        offset = read_header(shm_path(x))["data_offset"]
        assert np.fromfile(shm_path(x), "<f8", offset=offset).tolist() == [9.0] * 8
        assert len(maps_of(*x_id)) == 1
        del held
        gc.collect()
        assert maps_of(*x_id) == []
    sa.delete(x)
    sa.delete(y)


@pytest.mark.parametrize("hold", [False, True], ids=["dropped", "held"])
@needs("birth_times")
def test_cache_delete_does_not_pin(shm_name, hold):
    """(g) delete() evicts the name: the segment's memory is not pinned by
    the cache once this process's arrays of it are dropped."""
    name = "shm://" + shm_name()
    _make(name, np.arange(8.0))
    ident = identity(shm_path(name))
    with cache_limits():
        a = sa.attach(name)
        sa.attach(name, ro=True)
        if not hold:
            del a
        gc.collect()
        assert maps_of(*ident), "nothing was cached"
        sa.delete(name)
        if hold:
            a[0] = 1.0  # still valid after delete
            del a
        gc.collect()
        assert maps_of(*ident) == [], "the cache pins a deleted segment"


@needs("birth_times")
def test_cache_lets_go_of_segments_deleted_elsewhere(shm_name):
    """A segment deleted by another process is not kept mapped by the cache
    until the budget pushes it out: within 16 attaches that map something
    anew, its mapping goes."""
    gone = shm_name()
    sa.create(gone, 2 << 20, "u1")   # a sweep looks at mappings of 1 MiB+
    a = sa.attach(gone)
    addr = a.base.addr
    del a
    gc.collect()
    assert vmas_at(addr)                     # kept by the cache
    run_python("import SharedArray as sa, sys; sa.delete(sys.argv[1])", gone)
    others = [shm_name() for _ in range(16)]
    for name in others:
        sa.create(name, 8, "u1")
        sa.attach(name)
    assert not vmas_at(addr)
    for name in others:
        sa.delete(name)
