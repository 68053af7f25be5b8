"""Big arrays on huge pages: file:// on a huge tmpfs or on hugetlbfs.

Both need root (to mount, and for hugetlbfs to reserve pages), and skip
cleanly without it.  Whether huge pages really back the array is read from
/proc/self/smaps, not assumed.
"""

import contextlib
import gc
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import SharedArray as sa
from _helpers import IS_ROOT, SHM_DIR, needs, run_python, shm_path, smaps_of, vmas_at

MiB = 1 << 20
needs_root = pytest.mark.skipif(not IS_ROOT, reason="mounting needs root")


@contextlib.contextmanager
def mount(fstype, options):
    d = tempfile.mkdtemp(prefix="sa-test-mnt-")
    r = subprocess.run(["mount", "-t", fstype, "-o", options, fstype, d],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        os.rmdir(d)
        pytest.skip(f"cannot mount {fstype} ({options}): {r.stderr.strip()}")
    try:
        yield d
    finally:
        # Whatever the test did: no mount is left behind (a failed test's
        # traceback may still hold an array; the cache may hold a mapping).
        gc.collect()
        sa.cache_clear()
        done = subprocess.run(["umount", d], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", d], capture_output=True, check=False)
        os.rmdir(d)
        assert done.returncode == 0, f"{d} was still busy: {done.stderr.strip()}"


@contextlib.contextmanager
def reserved_hugepages(n):
    path = "/proc/sys/vm/nr_hugepages"
    with open(path) as f:
        before = int(f.read())
    try:
        with open(path, "w") as f:
            f.write(str(before + n))
        with open(path) as f:
            if int(f.read()) < before + n:
                pytest.skip("the kernel could not reserve huge pages")
        yield
    finally:
        with open(path, "w") as f:
            f.write(str(before))


@needs_root
def test_huge_tmpfs_backs_array_with_huge_pages():
    with mount("tmpfs", "huge=always,size=64M") as d:
        name = f"file://{d}/big.npy"
        a = sa.create(name, (16 * MiB,), np.uint8)
        try:
            a[::4096] = 1  # touch every page
            fields = smaps_of(a.base.addr)
            pmd = int(fields.get("ShmemPmdMapped", 0)) + int(
                fields.get("FilePmdMapped", 0))
            if pmd == 0 and not int(fields.get("Rss", 0)):
                pytest.fail(f"array not resident: {fields}")
            assert pmd >= 8 * 1024, f"expected PMD-mapped huge pages: {fields}"
            assert int(a.sum()) == 16 * MiB // 4096
            b = sa.attach(name, ro=True)
            assert int(b.sum()) == 16 * MiB // 4096
            del b
        finally:
            del a
            sa.delete(name)


@needs_root
@pytest.mark.parametrize("huge", ["advise", "within_size", "always", "never"])
@needs("huge_pages")
def test_create_asks_for_huge_pages_on_tmpfs(huge):
    """huge=advise is the cautious setting an administrator picks: only
    mappings that ask get huge pages.  create asks (MADV_HUGEPAGE) before it
    reserves the segment by faulting it in, so every option but never backs
    a big array with huge pages at once, before anything is written."""
    with mount("tmpfs", f"huge={huge},size=64M") as d:
        name = f"file://{d}/big.npy"
        a = sa.create(name, (16 * MiB,), np.uint8)
        try:
            fields = smaps_of(a.base.addr)
            pmd = int(fields.get("ShmemPmdMapped", 0)) + int(
                fields.get("FilePmdMapped", 0))
            if huge == "never":
                assert pmd == 0, fields
            else:
                assert pmd >= 14 * 1024, f"expected huge pages: {fields}"
            a[::4096] = 1
            assert int(sa.attach(name, ro=True).sum()) == 16 * MiB // 4096
        finally:
            del a
            sa.delete(name)


@needs_root
@pytest.mark.parametrize("huge", ["advise", "always", "never"])
def test_create_on_a_full_huge_tmpfs_is_enospc(huge):
    """Reserving by faulting in must still turn a full filesystem into
    OSError(ENOSPC) at create, leaving nothing, never a SIGBUS later; run
    in a child so that a SIGBUS would be seen as a signal, not a crash."""
    with mount("tmpfs", f"huge={huge},size=8M") as d:
        code = (
            "import errno, sys, SharedArray as sa\n"
            f"name = 'file://{d}/big.npy'\n"
            "try:\n"
            "    sa.create(name, 16 << 20, 'u1')\n"
            "except OSError as e:\n"
            "    sys.exit(0 if e.errno == errno.ENOSPC and e.filename == name else 3)\n"
            "sys.exit(4)\n")
        run_python(code)
        assert os.listdir(d) == []
        st = os.statvfs(d)
        assert st.f_bfree == st.f_blocks   # nothing held


@needs_root
@pytest.mark.parametrize("n", [1, 3 * MiB, 2 * MiB - 4096, 4 * MiB])
@needs("huge_pages")
def test_hugetlbfs_create_attach_and_release(n):
    with reserved_hugepages(8), mount("hugetlbfs", "pagesize=2M") as d:
        name = f"file://{d}/a.npy"
        a = sa.create(name, (n,), np.uint8)
        try:
            a[-1] = 7
            addr = a.base.addr
            assert smaps_of(addr)["KernelPageSize"] == "2048"
            assert a.base.size == n
            # Another process sees the data through the same huge pages.
            code = ("import SharedArray as sa, sys; "
                    f"b = sa.attach({name!r}, ro=True); "
                    "sys.exit(0 if b[-1] == 7 and b.shape == "
                    f"({n},) else 1)")
            run_python(code)
        finally:
            del a
            sa.delete(name)
        # The whole mapping is released, not leaked by a short munmap.
        assert not vmas_at(addr)
        b = sa.from_array(name, np.arange(n % 1000 + 1, dtype=np.int64))
        addr = b.base.addr
        del b
        assert not vmas_at(addr)
        sa.delete(name)


@needs_root
def test_hugetlbfs_out_of_huge_pages_is_a_clean_error():
    with reserved_hugepages(2), mount("hugetlbfs", "pagesize=2M") as d:
        name = f"file://{d}/too-big.npy"
        with pytest.raises(OSError) as info:
            sa.create(name, (64 * MiB,), np.uint8)
        assert info.value.filename == name
        assert os.listdir(d) == []


SHM_CHILD = r"""
import sys
import numpy as np
import SharedArray as sa

name = sys.argv[1]
a = sa.create("shm://" + name, (16 << 20,), np.uint8)
try:
    a[::4096] = 1
    addr, pmd = a.base.addr, 0
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= addr < hi
            elif inside and line.startswith(("ShmemPmdMapped:", "FilePmdMapped:")):
                pmd += int(line.split()[1])
    b = sa.attach(name, ro=True)
    print(pmd, int(b.sum()))
    del b
finally:
    del a
    sa.delete(name)
"""


@needs_root
@pytest.mark.parametrize("huge", ["always", "within_size"])
def test_shm_names_on_huge_pages_when_dev_shm_is_huge(shm_name, huge):
    """The README's recipe for shm:// on huge pages: /dev/shm mounted with
    huge=.  Tried in a private mount namespace, on a fresh tmpfs over
    /dev/shm, so the machine's own /dev/shm is never touched."""
    name = shm_name()
    script = (f"mount -t tmpfs -o huge={huge},size=64M tmpfs {SHM_DIR} && "
              f'exec "$0" -c "$1" "$2"')
    r = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--",
         "sh", "-c", script, sys.executable, SHM_CHILD, name],
        capture_output=True, text=True, timeout=120, check=False)
    if r.returncode != 0 and "mount" in r.stderr and "Traceback" not in r.stderr:
        pytest.skip(f"cannot mount a huge tmpfs over /dev/shm: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    pmd_kb, total = map(int, r.stdout.split())
    assert total == 16 * MiB // 4096
    # within_size leaves the last, partial 2 MiB of the file in small pages.
    assert pmd_kb >= 14 * 1024, f"only {pmd_kb} kB on huge pages"
    assert not os.path.lexists(shm_path(name))
