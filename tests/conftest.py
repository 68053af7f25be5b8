import os
import uuid
from typing import NamedTuple

import pytest

from _helpers import SHM_DIR, own_prefix, remove_path, unique_shm_name


def _own_entries():
    return sorted(e for e in os.listdir(SHM_DIR) if e.startswith(own_prefix()))


@pytest.fixture(scope="session", autouse=True)
def no_leftover_segments():
    """At the end of the session, no sa-test-PID-* entry may be left in
    /dev/shm: the suite must leave /dev/shm as it found it."""
    yield
    left = _own_entries()
    for entry in left:  # clean up, then fail
        remove_path(os.path.join(SHM_DIR, entry))
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
        remove_path(os.path.join(SHM_DIR, name))


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
