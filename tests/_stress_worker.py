"""Stress worker for tests/test_stress.py (not a test module).

    python _stress_worker.py '{"names": [...], "seconds": 30, "threads": 4,
                               "wid": 0, "seed": 1, "start_at": EPOCH}'

Runs `threads` threads that, until the deadline, create, attach, write,
verify, pickle and delete arrays under the SAME few names as every other
worker.  Prints one JSON object on stdout: operation counts, exceptions by
type, and failures (anything other than the documented FileExistsError /
FileNotFoundError, or an array whose contents do not verify).

Every array is self-describing, so a reader can tell a complete array from a
torn, half-initialised or foreign one:

kinds 1-3, made by from_array (the data is in place when the name appears):
    u8[0] = MAGIC, u8[1] = writer << 32 | generation, u8[2] = length,
    u8[3] = checksum (sum of the payload, mod 2**64),
    u8[4:-SCRATCH] = payload(writer, generation), u8[-SCRATCH:] = scratch.
  kind 1: dtype '<u8'; kind 2: the same bytes as a structured dtype of two
  '<u4' fields (its descr goes through the Python fallback); kind 3: the
  same values as '>u8'.
kind 4, made by create (zero-filled): dtype '<i8', shape (rows, 8).

"Writers" attach and store tags, one aligned 8-byte store each, into the
scratch area (kinds 1-3) or anywhere (kind 4); a tag is t << 32 | h(t).
So every scratch element and every kind-4 element must be 0 or a valid tag.
"""

import collections
import json
import pickle
import random
import sys
import threading
import time
import traceback
from multiprocessing.reduction import ForkingPickler

import numpy as np

import SharedArray as sa
from _helpers import FEATURES, is_shared

MAGIC = np.uint64(0x5341535452455353)  # "SASTRESS"
SCRATCH = 16
HEAD = 4
K2 = np.dtype([("lo", "<u4"), ("hi", "<u4")])
KINDS = {np.dtype("<u8"): 1, K2: 2, np.dtype(">u8"): 3, np.dtype("<i8"): 4}
M32 = 0xFFFFFFFF


def tag(t):
    t &= M32
    return (t << 32) | ((t * 2654435761 + 0x7F4A7C15) & M32)


def _not_tags(snap):
    hi = snap >> np.uint64(32)
    lo = snap & np.uint64(M32)
    with np.errstate(over="ignore"):
        want = (hi * np.uint64(2654435761) + np.uint64(0x7F4A7C15)) & np.uint64(M32)
    return np.flatnonzero((snap != 0) & (lo != want))


# Suspects in a snapshot that were fine when read again on their own.
TORN_SNAPSHOT_READS = 0


def bad_tags(raw):
    """raw: uint64 array; indices of elements that are neither 0 nor a tag.

    The snapshot is a bulk copy (memcpy, maybe `rep movsb`), which is not
    atomic per 8-byte element: copying while a writer stores can read half
    of the old and half of the new value.  Each suspect is therefore read
    again on its own (one 8-byte load, atomic like the writer's store); only
    what is still wrong then is torn data in the array itself."""
    snap = np.array(raw)  # one snapshot: writers may be storing meanwhile
    bad = _not_tags(snap)
    if bad.size:
        again = np.array([raw[i] for i in bad], dtype=np.uint64)
        still = _not_tags(again)
        global TORN_SNAPSHOT_READS
        TORN_SNAPSHOT_READS += bad.size - still.size
        bad = bad[still]
        snap[bad] = again[still]
    return bad, snap


def check_tags(raw, what):
    bad, snap = bad_tags(raw)
    if bad.size:
        raise Bad(f"{what}: {bad.size} of {snap.size} elements neither 0 nor "
                  f"a tag, e.g. [{bad[0]}] = {int(snap[bad[0]]):#x}")


def payload(wid, gen, n):
    i = np.arange(n, dtype=np.uint64)
    seed = np.uint64(((wid & M32) << 32) | (gen & M32))
    with np.errstate(over="ignore"):
        x = i * np.uint64(0x9E3779B97F4A7C15) + seed * np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(29)
    return x


def build(wid, gen, n, kind):
    total = HEAD + n + SCRATCH
    a = np.zeros(total, np.uint64)
    p = payload(wid, gen, n)
    a[0] = MAGIC
    a[1] = ((wid & M32) << 32) | (gen & M32)
    a[2] = total
    a[3] = np.add.reduce(p, dtype=np.uint64) if n else 0
    a[HEAD:HEAD + n] = p
    if kind == 1:
        return a
    if kind == 2:
        return a.view(K2)
    return a.astype(">u8")


class Bad(Exception):
    """An array that does not verify."""


def raw_u8(arr):
    """The array's memory as native uint64 elements (no copy)."""
    return arr.reshape(-1).view(np.uint64) if arr.dtype.itemsize == 8 else None


def verify(arr):
    """Checks a whole array; returns its kind.  Raises Bad."""
    kind = KINDS.get(arr.dtype)
    if kind is None:
        raise Bad(f"unexpected dtype {arr.dtype!r}, shape {arr.shape}")
    if kind == 4:
        if arr.ndim != 2 or arr.shape[1] != 8 or not arr.flags.c_contiguous:
            raise Bad(f"kind 4 with shape {arr.shape}")
        check_tags(raw_u8(arr), "kind 4")
        return kind
    if arr.ndim != 1 or arr.shape[0] < HEAD + SCRATCH:
        raise Bad(f"kind {kind} with shape {arr.shape}")
    raw = raw_u8(arr)
    vals = raw.byteswap() if kind == 3 else raw
    if vals[0] != MAGIC:
        raise Bad(f"kind {kind}: no magic (torn or uninitialised): "
                  f"{vals[:4].tolist()}")
    wid, gen = int(vals[1]) >> 32, int(vals[1]) & M32
    if int(vals[2]) != arr.shape[0]:
        raise Bad(f"kind {kind}: length {int(vals[2])} in a {arr.shape} array")
    n = arr.shape[0] - HEAD - SCRATCH
    p = vals[HEAD:HEAD + n]
    if not np.array_equal(p, payload(wid, gen, n)):
        bad = np.flatnonzero(p != payload(wid, gen, n))
        raise Bad(f"kind {kind} writer {wid} gen {gen}: {bad.size} of {n} "
                  f"payload elements wrong, first at {bad[0]}")
    if int(vals[3]) != (int(np.add.reduce(p, dtype=np.uint64)) if n else 0):
        raise Bad(f"kind {kind}: checksum mismatch")
    check_tags(raw[-SCRATCH:], f"kind {kind} scratch")
    return kind


def pick_size(rng):
    r = rng.random()
    if r < 0.70:
        return rng.randrange(0, 600)
    if r < 0.95:
        return rng.randrange(600, 20000)
    return rng.randrange(20000, 300000)


OPS = ["create_pattern", "create_zero", "attach_verify", "attach_write",
       "delete", "info", "list", "pickle", "reverify"]
WEIGHTS = [25, 8, 30, 14, 15, 4, 1, 3, 6]


class Worker:
    def __init__(self, cfg):
        self.names = cfg["names"]
        self.prefixes = [n.split("://")[-1].rsplit("/", 1)[-1]
                         for n in self.names]
        self.deadline = cfg["start_at"] + cfg["seconds"]
        self.threads = cfg["threads"]
        self.wid = cfg["wid"]
        self.seed = cfg["seed"]
        self.lock = threading.Lock()
        self.ok = collections.Counter()
        self.exceptions = collections.Counter()
        self.failures = []
        self.verified_bytes = 0
        self.kinds_seen = collections.Counter()

    def fail(self, op, name, detail):
        with self.lock:
            if len(self.failures) < 50:
                self.failures.append({"op": op, "name": name,
                                      "detail": detail})

    def run_thread(self, t):
        rng = random.Random(self.seed * 1000 + t)
        wid = self.wid * 100 + t
        gen = 0
        held = collections.deque(maxlen=6)
        ok = collections.Counter()
        exc = collections.Counter()
        vbytes = 0
        kinds = collections.Counter()
        while time.time() < self.deadline:
            op = rng.choices(OPS, WEIGHTS)[0]
            name = rng.choice(self.names)
            try:
                if op == "create_pattern":
                    gen += 1
                    kind = rng.choice((1, 2, 3))
                    src = build(wid, gen, pick_size(rng), kind)
                    a = sa.from_array(name, src, mode=0o600)
                    # Others may already be writing its scratch area.
                    if (a.dtype != src.dtype or a.shape != src.shape or
                            a[:-SCRATCH].tobytes() != src[:-SCRATCH].tobytes()):
                        raise Bad("from_array result differs from source")
                    held.append(a)
                elif op == "create_zero":
                    a = sa.create(name, (rng.randrange(1, 3000), 8), "<i8")
                    held.append(a)
                elif op == "attach_verify":
                    a = sa.attach(name, ro=rng.random() < 0.5)
                    kinds[verify(a)] += 1
                    vbytes += a.nbytes
                    held.append(a)
                elif op == "attach_write":
                    a = sa.attach(name)
                    raw = raw_u8(a)
                    if raw is None:
                        raise Bad(f"dtype {a.dtype!r}")
                    lo = 0 if a.dtype == np.dtype("<i8") else raw.size - SCRATCH
                    for _ in range(16):
                        raw[rng.randrange(lo, raw.size)] = tag(rng.getrandbits(32))
                    held.append(a)
                elif op == "delete":
                    sa.delete(name)
                elif op == "info":
                    d = sa.info(name)
                    kind = KINDS.get(d.dtype)
                    if kind is None or (kind == 4) != (len(d.dims) == 2):
                        raise Bad(f"info: {d!r}")
                elif op == "list" and FEATURES["list"]:
                    for e in sa.list():
                        if e.name in self.prefixes and e.dtype not in KINDS:
                            raise Bad(f"list: {e!r}")
                elif op == "pickle":
                    a = sa.attach(name, ro=True)
                    view = a[::2] if a.ndim == 1 else a[1:]
                    try:
                        b = pickle.loads(ForkingPickler.dumps(view))
                    except OSError as e:
                        # Deleted or replaced between dumps and loads.
                        if e.errno != 116:  # ESTALE
                            raise
                        exc["pickle:OSError(ESTALE)"] += 1
                        continue
                    # Writers may store into it meanwhile: compare what
                    # nobody writes (kinds 1-3: magic and length).
                    # A view whose name was deleted or replaced meanwhile
                    # travels by value, and NumPy unpickles that in native
                    # byte order: same values, dtype up to byte order.
                    if (b.shape != view.shape or b.dtype not in
                            (view.dtype, view.dtype.newbyteorder())):
                        raise Bad(f"pickled view differs: {b.dtype!r} "
                                  f"{b.shape} for {view.dtype!r} {view.shape}")
                    if view.ndim == 1 and not np.array_equal(b[:2], view[:2]):
                        raise Bad(f"pickled view differs: {b[:2]!r} for "
                                  f"{view[:2]!r}")
                    if view.ndim == 2:
                        check_tags(raw_u8(np.ascontiguousarray(b)),
                                   "pickled kind 4")
                    ok["pickle-by-reference" if is_shared(b)
                       else "pickle-by-value"] += 1
                elif op == "reverify" and held:
                    a = held[rng.randrange(len(held))]
                    kinds[verify(a)] += 1
                    vbytes += a.nbytes
                ok[op] += 1
            except (FileExistsError, FileNotFoundError) as e:
                exc[f"{op}:{type(e).__name__}"] += 1
            except Bad as e:
                self.fail(op, name, str(e))
            except BaseException as e:  # noqa: BLE001  (anything undocumented is a failure)
                self.fail(op, name, "".join(
                    traceback.format_exception(type(e), e, e.__traceback__)))
                exc[f"{op}:{type(e).__name__}"] += 1
        # Re-verify everything still held after the names were churned.
        for a in held:
            try:
                verify(a)
            except Bad as e:
                self.fail("final-reverify", "", str(e))
        with self.lock:
            self.ok.update(ok)
            self.exceptions.update(exc)
            self.verified_bytes += vbytes
            self.kinds_seen.update(kinds)

    def run(self):
        threads = [threading.Thread(target=self.run_thread, args=(t,))
                   for t in range(self.threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return {
            "wid": self.wid,
            "ok": dict(self.ok),
            "exceptions": dict(self.exceptions),
            "failures": self.failures,
            "verified_bytes": self.verified_bytes,
            "kinds_seen": {str(k): v for k, v in self.kinds_seen.items()},
            "torn_snapshot_reads": TORN_SNAPSHOT_READS,
        }


def main():
    cfg = json.loads(sys.argv[1])
    # All workers start together.
    pause = cfg["start_at"] - time.time()
    if pause > 0:
        time.sleep(pause)
    result = Worker(cfg).run()
    json.dump(result, sys.stdout)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
