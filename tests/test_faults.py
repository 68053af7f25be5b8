"""Fault injection: resource limits, full filesystems, signals, kills.

Each fault is injected in a child process (resource limits, signals and
kills must not hit the test runner), and each must end in a clean exception
of the right type and errno whose filename is the name passed, with nothing
left behind (no file, no hidden temporary, no reserved blocks, no open
descriptor or mapping), and a process that goes on working.

    fault                         how                                  needs
    file size limit (EFBIG)       RLIMIT_FSIZE, SIGXFSZ ignored        -
    /dev/shm full (ENOSPC)        1 MiB tmpfs on /dev/shm in a         root
                                  private mount namespace (unshare)
    out of descriptors (EMFILE)   RLIMIT_NOFILE, every slot taken      -
    out of address space (ENOMEM) RLIMIT_AS just above the process     -
    out of mappings (ENOMEM)      attach until vm.max_map_count        -
    owner lacks write (EACCES)    mode 0o400 segment attached rw       (root:
                                                                        setuid)
    Ctrl-C during a big create    SIGINT while a 3 GiB create runs     3 GiB
    SIGKILL during a big create   kill -9 while a 3 GiB create runs    3 GiB
    periodic signals              SIGALRM every 5 ms during create     1 GiB

ENOSPC on a file:// tmpfs and other users' permissions are covered by
tests/test_root.py; this file does not repeat them.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

import SharedArray as sa
import SharedArray._format  # imported before forking
from _helpers import (
    FEATURES,
    IS_ROOT,
    NOBODY,
    SHM_DIR,
    array_path,
    free_bytes,
    in_child,
    needs,
    remove_path,
    remove_shm_entries,
    shm_entries,
    shm_path,
)

GiB = 1 << 30
MiB = 1 << 20
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (mount, unshare)")

HERE = os.path.dirname(os.path.abspath(__file__))

# The children's common code, which takes the tests' helpers from here.
PRELUDE = f"import sys\nsys.path.insert(0, {HERE!r})\n" + textwrap.dedent(
    """
    import errno, json, os, resource, signal, sys, threading, time
    import numpy as np
    import SharedArray as sa
    from _helpers import SHM_DIR, array_path, outcome, shm_path

    def nfds():
        return len(os.listdir("/proc/self/fd"))

    def nmaps():
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)

    def report(**kw):
        print("RESULT " + json.dumps(kw), flush=True)
    """
)


def run_child(code, *args, prefix=(), timeout=300, env=None):
    """Runs PRELUDE + code in a fresh interpreter; returns the RESULT dict."""
    cmd = list(prefix) + [sys.executable, "-c", PRELUDE + textwrap.dedent(code)]
    cmd += [str(a) for a in args]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False,
        env=dict(os.environ, OPENBLAS_NUM_THREADS="1", **(env or {})))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"child exited {proc.returncode}\nstdout: {proc.stdout}\n"
        f"stderr: {proc.stderr}")
    assert proc.stderr == "", proc.stderr
    return json.loads(lines[-1][len("RESULT "):])


@pytest.fixture
def shm_prefix():
    """A unique prefix for shm names made by children; all removed after."""
    prefix = f"sa-test-{os.getpid()}-{uuid.uuid4().hex[:8]}-"
    yield prefix
    remove_shm_entries(prefix)


# ----------------------------------------------------------------------
# Full filesystems


def test_file_size_limit_is_a_clean_efbig(shm_prefix, tmp_path):
    """Past RLIMIT_FSIZE, posix_fallocate fails with EFBIG (and the kernel
    sends SIGXFSZ, ignored here as an application that sets the limit
    would): create and from_array raise OSError(EFBIG) naming the array and
    leave nothing; arrays under the limit still work."""
    uri = "file://" + str(tmp_path / "big.npy")
    got = run_child(
        """
        name, uri = sys.argv[1], sys.argv[2]
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))
        fds = nfds()
        r = {
            "create": outcome(lambda: sa.create(name, 2 << 20, "u1")),
            "from_array": outcome(
                lambda: sa.from_array(name, np.ones(2 << 20, "u1"))),
            "file": outcome(lambda: sa.create(uri, (512, 1024), "<f8")),
            "exists_after": os.path.lexists(shm_path(name)),
            "fds_leaked": nfds() - fds,
        }
        a = sa.create(name, 500 << 10, "u1")  # fits under the limit
        a[-1] = 3
        r["small"] = int(sa.attach(name, ro=True)[-1])
        sa.delete(name)
        report(**r)
        """, shm_prefix + "big", uri)
    name = shm_prefix + "big"
    assert got["create"] == ["OSError", errno.EFBIG, name]
    assert got["from_array"] == ["OSError", errno.EFBIG, name]
    assert got["file"] == ["OSError", errno.EFBIG, uri]
    assert got["exists_after"] is False
    assert got["fds_leaked"] == 0
    assert got["small"] == 3
    assert os.listdir(tmp_path) == []
    assert shm_entries(shm_prefix) == []


@needs_root
def test_full_dev_shm_is_a_clean_enospc():
    """shm:// names on a full /dev/shm: a 1 MiB tmpfs mounted over /dev/shm
    in a private mount namespace, so nothing else on the machine sees it."""
    got = run_child(
        """
        def free():
            return os.statvfs(SHM_DIR).f_bfree
        assert os.listdir(SHM_DIR) == [], "not a private /dev/shm"
        empty = free()
        r = {}
        r["create"] = outcome(lambda: sa.create("shm://big", 2 << 20, "u1"))
        r["from_array"] = outcome(
            lambda: sa.from_array("big2", np.ones((300, 1000), "<f8")))
        r["after_fail"] = [os.listdir(SHM_DIR), free() == empty]
        a = sa.create("first", 600 << 10, "u1")
        a[:] = 7
        r["second"] = outcome(lambda: sa.create("/second", 600 << 10, "u1"))
        r["listing"] = sorted(os.listdir(SHM_DIR))
        a[-1] = 8  # every page of the first array is still backed
        r["first_ok"] = bool((a[:-1] == 7).all()) and int(sa.attach("first")[-1]) == 8
        del a
        sa.delete("first")
        r["at_end"] = [os.listdir(SHM_DIR), free() == empty]
        report(**r)
        """,
        prefix=["unshare", "--mount", "--propagation", "private", "--",
                "sh", "-c", f'mount -t tmpfs -o size=1M tmpfs {SHM_DIR} && exec "$@"',
                "sh"])
    assert got["create"] == ["OSError", errno.ENOSPC, "shm://big"]
    assert got["from_array"] == ["OSError", errno.ENOSPC, "big2"]
    assert got["after_fail"] == [[], True]
    assert got["second"] == ["OSError", errno.ENOSPC, "/second"]
    assert got["listing"] == ["first"]
    assert got["first_ok"] is True
    assert got["at_end"] == [[], True]


# ----------------------------------------------------------------------
# Running out of descriptors, address space and mappings


def test_out_of_descriptors_is_a_clean_emfile(shm_prefix, tmp_path):
    uri = "file://" + str(tmp_path / "x.npy")
    got = run_child(
        """
        prefix, uri = sys.argv[1], sys.argv[2]
        existing = prefix + "existing"
        sa.create(existing, 10, "i4")[:] = 5
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        base = nfds()
        hog = []
        try:
            while True:
                hog.append(os.open("/dev/null", os.O_RDONLY))
        except OSError as e:
            assert e.errno == errno.EMFILE
        new = prefix + "new"
        r = {}
        for _ in range(200):  # repeated failures must not leak anything
            r["create"] = outcome(lambda: sa.create(new, 10))
            r["from_array"] = outcome(lambda: sa.from_array(new, np.ones(3)))
            r["file"] = outcome(lambda: sa.create(uri, 10))
            r["attach"] = outcome(lambda: sa.attach(existing))
            r["attach_ro"] = outcome(lambda: sa.attach(existing, ro=True))
            r["info"] = outcome(lambda: sa.info(existing))
            r["delete"] = outcome(lambda: sa.delete(existing))
            r["list"] = outcome(sa.list)
        r["new_exists"] = os.path.lexists(shm_path(new))
        # One free slot is enough for every call.
        os.close(hog.pop())
        a = sa.create(new, 10, "i4")
        a[:] = 1
        b = sa.attach(existing)
        r["one_slot"] = [int(a.sum()), int(b.sum())]
        sa.delete(new)
        sa.delete(existing)
        for fd in hog:
            os.close(fd)
        del a, b
        r["fds_leaked"] = nfds() - base
        report(**r)
        """, shm_prefix, uri)
    new, existing = shm_prefix + "new", shm_prefix + "existing"
    emfile = ["OSError", errno.EMFILE]
    assert got["create"] == emfile + [new]
    assert got["from_array"] == emfile + [new]
    assert got["file"] == emfile + [uri]
    for op in ("attach", "attach_ro", "info", "delete"):
        assert got[op] == emfile + [existing], op
    if FEATURES["list"]:
        assert got["list"][:2] == emfile
    else:
        assert got["list"][0] == "NotImplementedError"
    assert got["new_exists"] is False
    assert got["one_slot"] == [10, 50]
    assert got["fds_leaked"] == 0
    assert os.listdir(tmp_path) == []
    assert shm_entries(shm_prefix) == []


def test_out_of_address_space_is_a_clean_enomem(shm_prefix):
    """RLIMIT_AS just above what the process uses: mapping a 256 MiB array
    fails with OSError(ENOMEM) (attach) and leaves nothing (create, whose
    space was already reserved when mmap failed); small arrays still work,
    and raising the limit again makes the big attach work."""
    big = shm_prefix + "big"
    a = sa.create(big, 256 * MiB, "u1")
    a[-1] = 9
    del a
    try:
        got = run_child(
            """
            big, new = sys.argv[1], sys.argv[2]
            with open("/proc/self/status") as f:
                vm = [int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:")][0]
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            resource.setrlimit(resource.RLIMIT_AS, (vm + (64 << 20), hard))
            fds, maps = nfds(), nmaps()
            r = {}
            for _ in range(50):
                r["attach"] = outcome(lambda: sa.attach(big))
                r["attach_ro"] = outcome(lambda: sa.attach(big, ro=True))
                r["create"] = outcome(lambda: sa.create(new, 256 << 20, "u1"))
            r["leaked"] = [nfds() - fds, nmaps() - maps]
            r["new_exists"] = os.path.lexists(shm_path(new))
            s = sa.create(new, 1000, "f8")
            s[:] = 2
            r["small"] = float(sa.attach(new).sum())
            sa.delete(new)
            del s
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
            r["after"] = int(sa.attach(big, ro=True)[-1])
            report(**r)
            """, big, shm_prefix + "new")
    finally:
        sa.delete(big)
    enomem = ["OSError", errno.ENOMEM]
    assert got["attach"] == enomem + [big]
    assert got["attach_ro"] == enomem + [big]
    assert got["create"] == enomem + [shm_prefix + "new"]
    assert got["leaked"] == [0, 0]
    assert got["new_exists"] is False
    assert got["small"] == 2000.0
    assert got["after"] == 9
    assert shm_entries(shm_prefix) == []


def _max_map_count():
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except OSError:
        return None


@pytest.mark.skipif(not _max_map_count() or _max_map_count() > 300000,
                    reason="vm.max_map_count unknown or too high to exhaust "
                           "quickly (not lowered: it is system-wide)")
def test_out_of_mappings_is_a_clean_enomem(shm_prefix):
    """Attach one array, the mapping cache disabled, until the process
    reaches vm.max_map_count (each attach is then one mapping): OSError(ENOMEM) naming the array, no descriptor
    leaked, a create in that state leaves nothing, and after releasing some
    arrays everything works again.  The system-wide sysctl is not touched."""
    got = run_child(
        """
        name, new = sys.argv[1], sys.argv[2]
        # Without the cache every attach is a mapping of its own.
        sa.cache_limits(max_entries=0)
        a = sa.create(name, 512, "u1")
        a[:] = 1
        fds = nfds()
        held = []
        failure = None
        t0 = time.perf_counter()
        while failure is None:
            try:
                held.append(sa.attach(name, ro=True))
            except BaseException as e:
                failure = e
        seconds = time.perf_counter() - t0
        # Still at the limit: only library calls and small objects here.
        again = outcome(lambda: sa.attach(name))
        create = outcome(lambda: sa.create(new, 10))
        new_exists = os.path.lexists(shm_path(new))
        if create == "ok":
            # The allocator gave a mapping back meanwhile (free() of an
            # mmap'd chunk), so there was room after all: nothing to check.
            sa.delete(new)
        nheld = len(held)
        for _ in range(1000):  # one by one: a slice needs a big buffer
            held.pop()
        del held[: nheld // 2]
        r = {"held": nheld, "seconds": seconds,
             "first": [type(failure).__name__, getattr(failure, "errno", None),
                       getattr(failure, "filename", None)],
             "again": again, "create": create, "new_exists": new_exists,
             "fds_leaked": nfds() - fds}
        del failure
        b = sa.attach(name)
        c = sa.create(new, 10, "u1")
        c[:] = 2
        r["recovered"] = [int(b.sum()), int(sa.attach(new).sum())]
        sa.delete(new)
        sa.delete(name)
        held.clear()
        del a, b, c
        r["maps_after"] = nmaps()
        report(**r)
        """, shm_prefix + "many", shm_prefix + "new", timeout=600,
        # Small Python objects from the brk heap, not from new pymalloc
        # arenas (each one a mapping): near the limit, the only mmap calls
        # are the library's.
        env={"PYTHONMALLOC": "malloc"})
    many, new = shm_prefix + "many", shm_prefix + "new"
    print(f"FAULT max_map_count: {got['held']} attaches held before ENOMEM, "
          f"{got['seconds']:.2f} s")
    assert got["first"] == ["OSError", errno.ENOMEM, many]
    assert got["held"] > _max_map_count() * 0.9
    assert got["again"] == ["OSError", errno.ENOMEM, many]
    # At the limit even brk cannot grow the heap, so whether the mmap or a
    # small malloc before it fails first depends on the heap's state: either
    # is a clean out-of-memory error (never e.g. a ValueError).
    assert (got["create"] == ["OSError", errno.ENOMEM, new]
            or got["create"] == "ok"
            or got["create"][0] == "MemoryError"), got["create"]
    assert got["new_exists"] is (got["create"] == "ok")
    assert got["fds_leaked"] == 0
    assert got["recovered"] == [512, 20]
    assert got["maps_after"] < 1000
    assert shm_entries(shm_prefix) == []


# ----------------------------------------------------------------------
# Permission bits


def test_owner_without_write_permission_gets_eacces(shm_name):
    """A 0o400 segment: its owner may attach it read-only, not read-write.
    Root bypasses permission bits, so as root the segment is given to uid
    65534 and checked from a child running as that uid."""
    name = shm_name()
    a = sa.create(name, 4, "<i4", mode=0o400)
    a[:] = [1, 2, 3, 4]
    if IS_ROOT:
        os.chown(shm_path(name), NOBODY, NOBODY)

    def check():
        fds = len(os.listdir("/proc/self/fd"))
        r = {}
        try:
            sa.attach(name)
        except PermissionError as e:
            r["rw"] = ["PermissionError", e.errno, e.filename]
        else:
            r["rw"] = "attached"
        r["ro"] = sa.attach(name, ro=True).tolist()
        r["info_mode"] = sa.info(name).mode
        r["fds_leaked"] = len(os.listdir("/proc/self/fd")) - fds
        return r

    got = in_child(check, uid=NOBODY if IS_ROOT else None)
    assert got["rw"] == ["PermissionError", errno.EACCES, name]
    assert got["ro"] == [1, 2, 3, 4]
    assert got["info_mode"] == 0o400
    assert got["fds_leaked"] == 0
    sa.delete(name)



# ----------------------------------------------------------------------
# Signals and kills during the creation of a large array

BIG = 3 * GiB  # about a second of posix_fallocate on tmpfs; <= 4 GiB in use


@pytest.fixture(params=["shm", "file"])
def big_target(request, shm_prefix, tmpfs):
    """(name, directory that must end up empty of it, directory to watch
    for freed blocks or None).  file: a private 4 GiB tmpfs (root)."""
    if request.param == "shm":
        if free_bytes(SHM_DIR) < BIG + GiB:
            pytest.skip("/dev/shm has less than 4 GiB free")
        return shm_prefix + "huge", None
    if not IS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    d = str(tmpfs("size=4G"))
    return "file://" + d + "/huge.npy", d


INTERRUPT_CHILD = """
    name, size, source = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    main = threading.main_thread().ident
    sent = []
    def fire():
        time.sleep(0.15)
        sent.append(time.monotonic())
        signal.pthread_kill(main, signal.SIGINT)
    if source == "thread":
        threading.Thread(target=fire, daemon=True).start()
    else:
        print("READY", flush=True)
    t0 = time.monotonic()
    returned = None
    try:
        try:
            a = sa.create(name, size, "u1")
            returned = time.monotonic()
            del a
            outcome = "returned"
            time.sleep(2)  # an external SIGINT may still be on its way
        finally:
            ended = time.monotonic()
    except KeyboardInterrupt as e:
        outcome = "KeyboardInterrupt"
    path = array_path(name)
    left = os.path.lexists(path)
    if left:  # do not leave 3 GiB behind, whatever the verdict
        os.unlink(path)
    report(outcome=outcome, left=left, call_seconds=ended - t0,
           returned=returned is not None,
           sent_during_call=(bool(sent) and sent[0] < (returned or ended)))
"""


@pytest.mark.parametrize("source", ["thread", "process"])
def test_ctrl_c_during_large_create_leaves_nothing(big_target, source):
    """SIGINT arrives while create() of a 3 GiB array is reserving its
    space.  The caller must get KeyboardInterrupt and nothing may be left
    under the name (nor any reserved space).  "thread": a timer thread
    signals the main thread; "process": the parent sends SIGINT."""
    name, watch = big_target
    free = free_bytes(watch) if watch else None
    code = PRELUDE + textwrap.dedent(INTERRUPT_CHILD)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, name, str(BIG), source],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    try:
        if source == "process":
            assert proc.stdout.readline().strip() == "READY"
            time.sleep(0.15)
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    got = json.loads(out.strip().splitlines()[-1][len("RESULT "):])
    print(f"FAULT SIGINT ({source}) during create of 3 GiB: {got}")
    # The scenario is only meaningful if the signal came during the call.
    assert got["call_seconds"] > 0.3, "create finished too fast to interrupt"
    if source == "thread":
        assert got["sent_during_call"], got
    assert got["outcome"] == "KeyboardInterrupt", got
    assert got["left"] is False, (
        "KeyboardInterrupt, but the array was published under its name: "
        f"{got}")
    assert not os.path.lexists(array_path(name))
    if watch:
        assert free_bytes(watch) == free


@needs("o_tmpfile")
def test_sigkill_during_large_create_leaves_nothing(big_target):
    """kill -9 while create() of a 3 GiB array runs: the segment had no name
    yet (O_TMPFILE), so nothing is left and its space is given back."""
    name, watch = big_target
    free = free_bytes(watch) if watch else None
    code = PRELUDE + textwrap.dedent(
        """
        print("READY", flush=True)
        a = sa.create(sys.argv[1], int(sys.argv[2]), "u1")
        print("CREATED", flush=True)
        time.sleep(60)
        """)
    proc = subprocess.Popen([sys.executable, "-c", code, name, str(BIG)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(0.3)
        proc.kill()
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    killed_before_publish = "CREATED" not in out
    published = os.path.lexists(array_path(name))
    if published:
        remove_path(array_path(name))
    assert proc.returncode == -signal.SIGKILL
    assert killed_before_publish, "create finished before the kill; retry"
    assert not published
    if watch:
        deadline = time.monotonic() + 10  # the kernel frees asynchronously
        while free_bytes(watch) != free and time.monotonic() < deadline:
            time.sleep(0.05)
        assert free_bytes(watch) == free


def test_periodic_signals_do_not_stall_create(shm_prefix):
    """A SIGALRM every 5 ms with a Python handler that returns (a profiler,
    a watchdog) must neither fail nor stall create or from_array of big
    arrays: an interrupted reservation is retried, and must make progress."""
    got = run_child(
        """
        name = sys.argv[1]
        calls = [0]
        def handler(signum, frame):
            calls[0] += 1
        signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, 0.005, 0.005)
        t0 = time.monotonic()
        a = sa.create(name, 1 << 30, "u1")
        t1 = time.monotonic()
        src = np.arange(32 << 20, dtype="<i8")
        b = sa.from_array(name + "-copy", src)
        t2 = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        ok = (a.shape == (1 << 30,) and int(a[::1 << 20].sum()) == 0
              and int(a[-1]) == 0 and bool(np.array_equal(b, src)))
        sa.delete(name)
        sa.delete(name + "-copy")
        report(create_s=t1 - t0, from_array_s=t2 - t1, ok=ok, calls=calls[0])
        """, shm_prefix + "alarm", timeout=120)
    print(f"FAULT periodic SIGALRM: {got}")
    assert got["ok"] is True
    assert got["calls"] >= 1
    assert got["create_s"] < 30 and got["from_array_s"] < 30
    assert shm_entries(shm_prefix) == []
