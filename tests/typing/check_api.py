"""Type-checked (mypy --strict) use of the public API; also run by pytest."""

import numpy as np
import numpy.typing as npt

import SharedArray as sa


def roundtrip(name: str) -> float:
    a: npt.NDArray[np.float64] = sa.create(name, (2, 3), dtype=np.float64,
                                           order="F", mode=0o600)
    b = sa.attach(name, ro=True)
    c = sa.from_array(name + "-copy", a)
    base = a.base
    assert isinstance(base, sa.Mapping)
    size: int = base.size
    base.msync(sa.MS_SYNC | sa.MS_INVALIDATE)
    entries: list[sa.ArrayDesc] = []
    try:
        entries = sa.list()
    except NotImplementedError:  # the portable backend cannot list
        pass
    for entry_name, _dtype, dims in entries:
        assert isinstance(entry_name, str) and isinstance(dims, tuple)
    info = sa.info(name)
    order: str = info.order
    plain: str = info.name.decode("ascii")
    stats: sa.CacheInfo = sa.cache_info()
    limits: tuple[int, int] = sa.cache_limits(max_entries=stats.max_entries)
    sa.cache_clear()
    assert plain and limits
    sa.delete(name)
    sa.delete(name + "-copy")
    return float(b.sum() + c.sum()) + size * 0 + len(order) * 0
