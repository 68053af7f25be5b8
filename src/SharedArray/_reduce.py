"""Send arrays that live in SharedArray segments between processes by name.

An ndarray whose memory lies in a SharedArray mapping (the array itself, or
any slice, view, transpose or read-only attachment of it) is pickled by
multiprocessing as (name, identity, offset, shape, strides, dtype) and
re-attached by the receiver: no copy of the data.  The identity is the
file's device, inode and birth time (inode numbers are reused at once on
ext4), so a receiver never maps a different array: if the name no longer
refers to the same file when the array is sent, it is sent by value as any
other ndarray; if it changes while in transit, the receiver raises
OSError(ESTALE).  Only multiprocessing's pickler is affected; plain
``pickle.dumps`` always copies, so its output stays portable.
"""

import errno
import os
from multiprocessing.reduction import ForkingPickler

import numpy as np

from . import _core


def _owner(arr):
    base = arr.base
    while isinstance(base, np.ndarray):
        base = base.base
    return base if isinstance(base, _core.Mapping) else None


def _by_reference(arr):
    """The rebuild arguments for ``arr``, or None to send it by value."""
    mapping = _owner(arr)
    if mapping is None or arr.size == 0:
        return None
    try:
        # Device, inode and birth time: an inode number alone is reused.
        if _core._identity_of(mapping.name) != mapping._identity:
            return None
    except (OSError, ValueError):
        return None
    name = mapping.name
    if name.startswith("file://"):
        # The receiver may run in another directory.
        name = "file://" + os.path.abspath(_core._resolve(name))
    offset = arr.__array_interface__["data"][0] - mapping.addr
    return (name, mapping._identity, offset, arr.shape, arr.strides,
            arr.dtype, not arr.flags.writeable)


def _rebuild(name, identity, offset, shape, strides, dtype, readonly):
    # Through the mapping cache: the views of one segment in a message
    # share one mapping.
    mapping = _core.attach(name, ro=readonly).base
    if mapping._identity != tuple(identity):
        raise OSError(
            errno.ESTALE,
            "array was deleted or replaced while a view of it was in transit",
            name,
        )
    return np.ndarray(shape, dtype, buffer=mapping, offset=offset,
                      strides=strides)


def _reduce(arr):
    args = _by_reference(arr)
    if args is None:
        return arr.__reduce_ex__(4)
    return _rebuild, args


def register():
    """Make multiprocessing send shared arrays by reference (idempotent)."""
    ForkingPickler.register(np.ndarray, _reduce)
