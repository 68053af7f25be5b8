import gc
import subprocess
import uuid
from typing import NamedTuple

import pytest

from _helpers import (
    SHM_DIR,
    drop_cache,
    own_prefix,
    remove_path,
    remove_shm_entries,
    shm_path,
    unique_shm_name,
)


@pytest.fixture(scope="session", autouse=True)
def no_leftover_segments():
    """At the end of the session, no sa-test-PID-* entry may be left in
    /dev/shm: the suite must leave /dev/shm as it found it."""
    yield
    left = remove_shm_entries(own_prefix())  # clean up, then fail
    assert not left, f"tests left entries in {SHM_DIR}: {left}"


@pytest.fixture
def shm_name():
    """Factory of unique shm names; whatever exists under them is removed.

    shm_name() -> 'sa-test-PID-XXXXXXXX'; shm_name(suffix='-x') appends;
    shm_name(length=255) pads the name with 'x' to that many bytes.
    """
    made = []

    def make(suffix="", length=None):
        name = unique_shm_name() + suffix
        if length is not None:
            name += "x" * (length - len(name.encode()))
        made.append(name)
        return name

    yield make
    for name in made:
        remove_path(shm_path(name))


class FileName(NamedTuple):
    uri: str    # 'file://PATH', for SharedArray
    path: str   # PATH, for os and numpy


@pytest.fixture
def file_name(tmp_path):
    """Factory of unique file:// names inside the test's tmp_path."""

    def make(suffix=".npy"):
        path = str(tmp_path / f"arr-{uuid.uuid4().hex[:8]}{suffix}")
        return FileName("file://" + path, path)

    return make


@pytest.fixture
def tmpfs(tmp_path):
    """mount(options) -> a fresh tmpfs under tmp_path (root only: skips if
    it cannot be mounted); every one of them is unmounted at teardown, and
    the test fails if one is still busy (an array or the cache kept a
    mapping, or a descriptor leaked)."""
    mounted = []

    def mount(options):
        mnt = tmp_path / f"tmpfs{len(mounted)}"
        mnt.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)],
            capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {proc.stderr.strip()}")
        mounted.append(mnt)
        return mnt

    try:
        yield mount
    finally:
        gc.collect()
        drop_cache()
        busy = []
        for mnt in mounted:
            done = subprocess.run(["umount", str(mnt)], capture_output=True,
                                  text=True, check=False)
            if done.returncode != 0:
                subprocess.run(["umount", "-l", str(mnt)], capture_output=True,
                               check=False)
                busy.append(f"{mnt}: {done.stderr.strip()}")
        if busy:
            pytest.fail(f"tmpfs still busy after the test: {busy}")
