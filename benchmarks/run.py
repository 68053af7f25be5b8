#!/usr/bin/env python3
"""SharedArray 4 against SharedArray 3.2.4, multiprocessing.shared_memory,
np.load(mmap_mode=) and the bare system calls, side by side.

    python benchmarks/run.py            # ~6 minutes
    python benchmarks/run.py --quick    # ~1 minute, smaller figures

Run it with the interpreter of the project's virtual environment (where
SharedArray 4 is installed).  It sets up SharedArray 3.2.4 in a virtual
environment of its own under the cache directory, compiles floor.c there,
measures every figure in rounds that interleave the contenders (each one a
worker process, see _worker.py), prints a Markdown table of medians and
ratios on stdout, and writes every round's median to results.json.  Progress
goes to stderr.  See README.md for what each figure measures.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from math import floor, log10
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_worker.py"
SHM_DIR = "/dev/shm"
V3 = "3.2.4"
GiB, MiB = 1 << 30, 1 << 20
PREFIX = f"sabench-{os.getpid()}"   # every segment this run makes


class NotAvailable(Exception):
    """A contender, or one of its figures, cannot be measured: n/a."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- figures ---------------------------------------------------------------


@dataclass
class Figure:
    key: str        # in results.json
    title: str      # row of the table
    label: str      # on the plot
    op: str         # the worker's and floor's name for it
    where: str      # a key of TMPFS: the file system it runs on
    n: int          # timed operations per round (fresh processes for
                    # first_read and list_cold)
    warmup: int     # untimed operations before them, each round
    rounds: int


# Where figures run: /dev/shm, or a tmpfs that run.py mounts (root only)
# with these options.
TMPFS = {"shm": None, "huge": "huge=always", "advise": "huge=advise",
         "never": "huge=never"}


def make_figures(quick, size, count):
    r_small, r_big = (5, 3) if quick else (7, 5)
    n_small = 500 if quick else 3000
    n_fresh = 1 if quick else 2
    size_text = f"{size // MiB} MiB" if size < GiB else f"{size // GiB} GiB"
    fill = f"create + fill + delete {size_text}"
    listing = f"list() with {count:,} arrays"

    def small(key, title, label, n=n_small):
        """A figure of many small operations in /dev/shm."""
        return Figure(key, title, label, key, "shm", n, n // 10, r_small)

    return [
        small("attach_again", "attach the same live segment again "
              "(loop of attach + drop)", "attach again\n(live)"),
        small("attach_again_read", "attach + read a[0], repeated (segment "
              "live)", "attach again\n+ read a[0]"),
        small("attach_first", "first attach of a name never attached in "
              "this process (+ drop)", "first attach", n_small // 3),
        small("receive", "pool worker receives an array and reads a[0] "
              "(others: receive the name, attach)",
              "receive array\n+ read a[0]"),
        small("create_delete", "create + delete 10 float64",
              "create\n+ delete", n_small // 3),
        Figure("create_fill", fill, f"create + fill\n+ delete\n{size_text}",
               "create_fill", "shm", 1, 0, r_small),
        # One untimed operation first: on a virtual machine the first touch
        # of memory the guest has not used yet is slow, and would land on
        # whichever contender runs first.
        Figure("create_fill_4k", f"{fill}, tmpfs huge=never (4K pages)",
               f"create + fill\n{size_text}\n4K tmpfs", "create_fill",
               "never", 1, 1, r_big),
        Figure("create_fill_advise", f"{fill}, tmpfs huge=advise",
               f"create + fill\n{size_text}\nhuge=advise",
               "create_fill_advise", "advise", 1, 1, r_big),
        # The same with the C floor reserving first, as SharedArray 4 does
        # (MADV_POPULATE_WRITE, so a full tmpfs is ENOSPC, never SIGBUS):
        # the floor of the work the 0.3x target asks for.  Only SharedArray
        # 4 and the C floor reserve; the others are n/a.
        Figure("create_fill_advise_reserved",
               f"{fill}, tmpfs huge=advise, space reserved before the fill",
               f"create + fill\n{size_text}\nhuge=advise\nreserved",
               "create_fill_advise_reserved", "advise", 1, 1, r_big),
        Figure("list_warm", f"{listing}, repeated call",
               f"list()\n{count:,} arrays\nrepeated", "list", "shm",
               3 if quick else 5, 1, r_big),
        Figure("list_cold", f"{listing}, cold call in a fresh process",
               f"list()\n{count:,} arrays\nfresh process", "list_cold",
               "shm", n_fresh, 0, r_big),
        Figure("first_read_4k", "fresh process: attach + read every page of "
               f"{size_text}, 4K pages",
               f"first read\n{size_text}\n4K pages", "first_read", "shm",
               n_fresh, 0, r_big),
        Figure("first_read_huge", "fresh process: attach + read every page "
               f"of {size_text}, 2M huge pages (tmpfs huge=always)",
               f"first read\n{size_text}\nhuge pages", "first_read", "huge",
               n_fresh, 0, r_big),
    ]


@dataclass
class Target:
    """The team's goal for a ratio: num / den at most (or at least) limit;
    num and den are (figure key, contender key)."""
    text: str
    num: tuple
    den: tuple
    limit: float
    at_least: bool = False

    def check(self, results):
        r = ratio(results, self.num, self.den)
        if r is None:
            return f"{self.text}: n/a"
        met = r >= self.limit if self.at_least else r <= self.limit
        return f"{self.text}: {'met' if met else '**missed**'} ({r:.2f}×)"


# Figures measured round by round in turn (round 1 of each, then round 2 of
# each, ...), because a target compares them: on a machine whose speed
# drifts, measuring one after the other would compare two moments.
INTERLEAVED = [{"create_fill_4k", "create_fill_advise",
                "create_fill_advise_reserved"},
               {"first_read_4k", "first_read_huge"}]


def interleaved(a, b):
    """Whether each round of figures a and b was measured at one time."""
    return a == b or any({a, b} <= group for group in INTERLEAVED)


def ratio(results, num, den):
    """Time of num / time of den, each a (figure key, contender key), or
    None.  Within one figure, or two interleaved ones, where each round
    measured both within moments, the median of the per-round ratios (a slow
    spell of the machine spoils one round's pair, not one side); otherwise
    the ratio of medians."""
    a = results.get(num[0], {}).get(num[1])
    b = results.get(den[0], {}).get(den[1])
    if not a or not b or 0 in b:
        return None
    if interleaved(num[0], den[0]) and len(a) == len(b):
        return statistics.median(x / y for x, y in zip(a, b))
    return statistics.median(a) / statistics.median(b)


def v4_vs(fig, other, limit, name):
    return Target(f"≤ {limit}× {name}", (fig, "v4"), (fig, other), limit)


TARGETS = {
    "attach_again": [v4_vs("attach_again", "v3", 0.2, V3)],
    "attach_again_read": [v4_vs("attach_again_read", "v3", 0.3, V3)],
    "attach_first": [v4_vs("attach_first", "v3", 0.8, V3),
                     v4_vs("attach_first", "floor", 1.3, "C floor")],
    "receive": [v4_vs("receive", "v3", 0.8, V3)],
    "create_delete": [v4_vs("create_delete", "v3", 0.9, V3)],
    "create_fill": [v4_vs("create_fill", "v3", 1.1, V3)],
    "create_fill_advise": [
        Target("≤ 0.3× 4K tmpfs", ("create_fill_advise", "v4"),
               ("create_fill_4k", "v4"), 0.3)],
    "create_fill_advise_reserved": [
        v4_vs("create_fill_advise_reserved", "floor", 1.3, "C floor")],
    "list_warm": [v4_vs("list_warm", "v3", 0.4, V3)],
    "list_cold": [v4_vs("list_cold", "v3", 0.9, V3)],
    "first_read_huge": [
        Target("≥ 10× faster than 4K", ("first_read_4k", "v4"),
               ("first_read_huge", "v4"), 10, at_least=True),
        v4_vs("first_read_huge", "floor", 2.0, "C floor"),
    ],
}


# ---- contenders ------------------------------------------------------------


class Contender:
    def __init__(self, key, label, short):
        self.key, self.label, self.short = key, label, short
        self.versions = {}      # python, numpy, SharedArray
        self.missing = None     # why it cannot be measured at all

    def give_up(self, why):
        self.missing = str(why)
        log(f"{self.label}: n/a: {why}")

    def start(self):
        pass

    def close(self):
        pass


class PythonWorker(Contender):
    """A contender run by _worker.py under some interpreter."""

    def __init__(self, key, label, short, python, kind, log_dir):
        super().__init__(key, label, short)
        self.python, self.kind = python, kind
        self.log_path = log_dir / f"worker-{key}.log"
        self.proc = None

    def start(self):
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                   MKL_NUM_THREADS="1")
        with open(self.log_path, "w") as stderr:
            self.proc = subprocess.Popen(
                [str(self.python), str(WORKER), self.kind],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                text=True, env=env, cwd=self.log_path.parent)
        self.versions = self._answer()["hello"]

    def _answer(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise NotAvailable(f"worker exited ({self.proc.returncode}); "
                               f"see {self.log_path}: {self._log_tail()}")
        answer = json.loads(line)
        if not answer["ok"]:
            if "na" in answer:
                raise NotAvailable(answer["na"])
            log(f"{self.label}: {answer['error']}")
            raise NotAvailable(answer["error"].strip().splitlines()[-1])
        return answer

    def _log_tail(self):
        try:
            return " | ".join(self.log_path.read_text().splitlines()[-3:])
        except OSError:
            return ""

    def measure(self, req):
        """(median ns per op net of timer overhead, ShmemPmdMapped kB)."""
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        answer = self._answer()
        median = statistics.median(answer["times_ns"]) - answer["overhead_ns"]
        return median, answer.get("pmd_kb")

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Floor(Contender):
    """The C program: one process per request."""

    def __init__(self, exe):
        super().__init__("floor", "C floor", "C")
        self.exe = exe

    def measure(self, req):
        args = [str(self.exe), req["op"], str(req["n"]), str(req["warmup"]),
                req["dir"], req["prefix"], str(req["size"]), str(req["count"])]
        out = subprocess.run(args, capture_output=True, text=True,
                             timeout=900)
        if out.returncode != 0:
            raise NotAvailable(f"floor failed: {out.stderr.strip()}")
        answer = json.loads(out.stdout)
        return answer["median_ns"], answer.get("pmd_kb")


def run_quiet(args, **kw):
    """Runs args; raises NotAvailable with the end of its output if it
    fails."""
    out = subprocess.run([str(a) for a in args], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, **kw)
    if out.returncode != 0:
        tail = "\n    ".join(out.stdout.strip().splitlines()[-8:])
        raise NotAvailable(f"`{' '.join(map(str, args))}` failed:\n    {tail}")


def setup_v3(cache):
    """The python of a virtual environment with SharedArray 3.2.4 in it,
    made (once) under cache."""
    tag = f"py{sys.version_info[0]}{sys.version_info[1]}"
    venv = cache / f"sharedarray-{V3}-{tag}"
    python = venv / "bin" / "python"
    check = [python, "-c", "import numpy, SharedArray; "
             "from importlib.metadata import version; "
             f"assert version('SharedArray') == '{V3}'"]
    try:
        run_quiet(check)
        return python
    except (NotAvailable, OSError):
        pass
    log(f"setting up SharedArray {V3} in {venv} ...")
    shutil.rmtree(venv, ignore_errors=True)
    run_quiet([sys.executable, "-m", "venv", venv])
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    attempts = [
        # 3.2.4 is an sdist; its build (in pip's isolated environment)
        # compiles against whatever NumPy that environment gets.
        [pip + ["numpy", f"SharedArray=={V3}"]],
        # Should that fail: build against NumPy < 2 installed beforehand.
        [pip + ["setuptools", "wheel", "numpy<2"],
         pip + ["--no-build-isolation", f"SharedArray=={V3}"]],
    ]
    errors = []
    for steps in attempts:
        try:
            for step in steps:
                run_quiet(step, timeout=900)
            run_quiet(check)
            return python
        except (NotAvailable, subprocess.TimeoutExpired) as e:
            errors.append(str(e))
    last = errors[-1].strip().splitlines()[-1].strip()
    raise NotAvailable(f"pip could not install SharedArray {V3} ({last})"
                       + "".join("\n  " + e for e in errors))


def build_floor(cache):
    src, exe = HERE / "floor.c", cache / "floor"
    if exe.exists() and exe.stat().st_mtime >= src.stat().st_mtime:
        return exe
    cc = os.environ.get("CC", "cc")
    try:
        run_quiet([cc, "-O2", "-o", exe, src])
    except FileNotFoundError:
        raise NotAvailable(f"no C compiler ({cc})") from None
    return exe


@contextmanager
def tmpfs(options):
    """A tmpfs mounted with -o OPTIONS,size=2G on a temporary directory,
    unmounted at the end: yields its path, or a NotAvailable saying why
    there is none."""
    if os.geteuid() != 0:
        yield NotAvailable(f"needs root to mount a tmpfs with {options}")
        return
    if (options != "huge=never"
            and not Path("/sys/kernel/mm/transparent_hugepage").is_dir()):
        yield NotAvailable("kernel without transparent huge pages")
        return
    path = tempfile.mkdtemp(prefix="sabench-tmpfs-")
    try:
        run_quiet(["mount", "-t", "tmpfs", "-o", f"{options},size=2G",
                   "sabench-tmpfs", path])
    except (NotAvailable, OSError) as e:
        os.rmdir(path)
        yield NotAvailable(f"mount -o {options} failed: {e}")
        return
    try:
        yield path
    finally:
        if subprocess.run(["umount", path]).returncode != 0:
            subprocess.run(["umount", "--lazy", path])
        try:
            os.rmdir(path)
        except OSError as e:
            log(f"could not remove {path}: {e}")


def mount_dirs(stack, figures):
    """{where: directory or NotAvailable} for the figures, mounting (until
    stack closes) the tmpfs they need."""
    dirs = {"shm": SHM_DIR}
    for where in dict.fromkeys(f.where for f in figures):
        if where not in dirs:
            dirs[where] = stack.enter_context(tmpfs(TMPFS[where]))
    return dirs


# ---- measuring -------------------------------------------------------------


def measure_all(figures, contenders, dirs, size, count):
    """{figure: {contender: [round medians in ns]}}, the reasons for n/a
    cells, and the smallest ShmemPmdMapped seen per figure and contender
    (for the figures that report it)."""
    results, missing, pmd = {}, {}, {}

    def prepare(fig):
        """Whether fig can be measured at all."""
        results[fig.key] = {c.key: [] for c in contenders}
        missing[fig.key] = {c.key: c.missing for c in contenders
                            if c.missing}
        if isinstance(dirs[fig.where], NotAvailable):
            missing[fig.key] = {c.key: str(dirs[fig.where])
                                for c in contenders}
            log(f"[{fig.key}] n/a: {dirs[fig.where]}")
            return False
        return True

    def measure_round(fig, r):
        shift = r % len(contenders)     # nobody always goes first
        done = []
        for c in contenders[shift:] + contenders[:shift]:
            if c.key in missing[fig.key]:
                continue
            req = {"op": fig.op, "n": fig.n, "warmup": fig.warmup,
                   "dir": dirs[fig.where], "prefix": f"{PREFIX}-{c.key}",
                   "size": size, "count": count}
            try:
                median, pmd_kb = c.measure(req)
            except NotAvailable as e:
                missing[fig.key][c.key] = str(e)
                log(f"[{fig.key}] {c.label}: n/a: {e}")
                continue
            results[fig.key][c.key].append(median)
            if pmd_kb is not None:
                cell = pmd.setdefault(fig.key, {})
                cell[c.key] = min(pmd_kb, cell.get(c.key, pmd_kb))
            done.append(f"{c.key} {fmt_time(median)}")
        log(f"[{fig.key}] round {r + 1}/{fig.rounds}: {', '.join(done)}")

    batches = []        # figures measured together: see INTERLEAVED
    for fig in figures:
        batch = next((b for b in batches if interleaved(b[0].key, fig.key)),
                     None)
        if batch is None:
            batches.append([fig])
        else:
            batch.append(fig)
    for batch in batches:
        batch = [fig for fig in batch if prepare(fig)]
        for r in range(max((fig.rounds for fig in batch), default=0)):
            for fig in batch:
                if r < fig.rounds:
                    measure_round(fig, r)
    return results, missing, pmd


def sweep(dirs):
    """Removes, and names, whatever this run left behind (nothing, unless a
    worker was killed)."""
    left = []
    for d in dirs:
        if isinstance(d, NotAvailable) or not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            if name.startswith(PREFIX + "-"):
                os.unlink(os.path.join(d, name))
                left.append(name)
    if left:
        log(f"removed {len(left)} leftover segment(s): {left[:5]} ...")


# ---- report ----------------------------------------------------------------


def sig3(x):
    """x with 3 significant digits, never in exponent notation."""
    digits = 0 if x <= 0 else max(0, 2 - floor(log10(x)))
    return f"{x:.{digits}f}"


def fmt_time(ns):
    if ns is None:
        return "n/a"
    if ns < 1e6:
        return f"{sig3(ns / 1e3)} µs"
    if ns < 1e9:
        return f"{sig3(ns / 1e6)} ms"
    return f"{sig3(ns / 1e9)} s"


def machine_info(contenders):
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {c.key: c.versions for c in contenders if c.versions}
    v4 = versions.get("v4", {})
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": v4.get("python", platform.python_version()),
        "numpy": v4.get("numpy"),
        "numpy_v3_venv": versions.get("v3", {}).get("numpy"),
        "sharedarray": v4.get("SharedArray"),
        "date": datetime.datetime.now(datetime.timezone.utc)
                .strftime("%Y-%m-%d %H:%M UTC"),
    }


def render(figures, contenders, results, missing, pmd, machine, config):
    def median(fig, c):
        v = results[fig][c]
        return statistics.median(v) if v else None

    numpy = f"NumPy {machine['numpy']}"
    if machine["numpy_v3_venv"]:
        numpy += f" ({V3}'s venv: {machine['numpy_v3_venv']})"
    lines = [
        f"**Machine:** {machine['cpu']}, {machine['cores']} cores, Linux "
        f"{machine['kernel']}, Python {machine['python']}, {numpy}, "
        f"SharedArray {machine['sharedarray']}, {machine['date']}.",
        "",
        f"{config['mode']} run. Times: median over rounds (contenders "
        "interleaved) of each round's median time per operation. Ratios: "
        "SharedArray 4's time / that contender's, the median of the "
        "per-round ratios; below 1× SharedArray 4 is faster.",
        "",
    ]
    v4, others = contenders[0], contenders[1:]
    head = ["Figure", v4.label]
    for c in others:
        head += [c.label, f"v4/{c.short}"]
    head.append("Target")
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 2)
                                + ["---"]) + "|")
    for fig in figures:
        row = [fig.title, fmt_time(median(fig.key, v4.key))]
        for c in others:
            r = ratio(results, (fig.key, v4.key), (fig.key, c.key))
            row += [fmt_time(median(fig.key, c.key)),
                    "n/a" if r is None else f"{r:.2f}×"]
        row.append("; ".join(t.check(results)
                             for t in TARGETS.get(fig.key, [])) or "—")
        lines.append("| " + " | ".join(row) + " |")

    labels = {c.key: c.label for c in contenders}
    na = {}     # (contender, reason) -> figures
    for fig in figures:
        for key, why in missing.get(fig.key, {}).items():
            na.setdefault((labels[key], why.splitlines()[0]), []).append(
                fig.key)
    notes = [f"{label}: n/a for {', '.join(figs)}: {why}"
             for (label, why), figs in na.items()]
    for fig in figures:
        if pmd.get(fig.key):
            notes.append(f"{fig.key}: ShmemPmdMapped (kB of the array mapped "
                         "with huge pages): " + ", ".join(
                             f"{labels[c]} {kb:,}"
                             for c, kb in pmd[fig.key].items()))
    if notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in notes]
    return "\n".join(lines)


# ---- main ------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="fewer rounds and operations, 256 MiB instead of "
                         "1 GiB, 1,000 list entries instead of 10,000")
    ap.add_argument("--cache-dir", type=Path, default=HERE / ".cache",
                    help="where SharedArray 3.2.4's venv and the floor "
                         "program live (default: %(default)s)")
    ap.add_argument("--output", type=Path, default=HERE / "results.json",
                    help="raw results (default: %(default)s)")
    ap.add_argument("--figures", help="comma-separated subset of figure "
                    "keys to run (for development)")
    args = ap.parse_args()
    # A SIGTERM unwinds like Ctrl-C: workers stop, the tmpfs is unmounted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    size = 256 * MiB if args.quick else GiB
    count = 1_000 if args.quick else 10_000
    figures = make_figures(args.quick, size, count)
    if args.figures:
        wanted = args.figures.split(",")
        unknown = set(wanted) - {f.key for f in figures}
        if unknown:
            ap.error(f"unknown figure(s) {', '.join(sorted(unknown))}; "
                     f"known: {', '.join(f.key for f in figures)}")
        figures = [f for f in figures if f.key in wanted]
    cache = args.cache_dir.resolve()
    cache.mkdir(parents=True, exist_ok=True)

    v4 = PythonWorker("v4", "SharedArray 4", "v4", sys.executable,
                      "sharedarray", cache)
    v3 = PythonWorker("v3", f"SharedArray {V3}", V3, None, "sharedarray",
                      cache)
    floor_c = Floor(None)
    contenders = [
        v4,
        v3,
        PythonWorker("shm", "mp.shared_memory", "shm", sys.executable,
                     "shared_memory", cache),
        PythonWorker("npy", "np.load", "np.load", sys.executable, "npy",
                     cache),
        floor_c,
    ]
    try:
        v3.python = setup_v3(cache)
    except NotAvailable as e:
        v3.give_up(e)
    try:
        floor_c.exe = build_floor(cache)
    except NotAvailable as e:
        floor_c.give_up(e)

    with ExitStack() as mounts:
        dirs = mount_dirs(mounts, figures)
        try:
            for c in contenders:
                if c.missing:
                    continue
                try:
                    c.start()
                except NotAvailable as e:
                    c.give_up(e)
            if not (v4.versions.get("SharedArray") or "").startswith("4"):
                sys.exit(f"{sys.executable} does not import SharedArray 4 "
                         f"({v4.missing or v4.versions}): run this with the "
                         "python of the project's virtual environment")
            results, missing, pmd = measure_all(figures, contenders, dirs,
                                                size, count)
        finally:
            for c in contenders:
                c.close()
            sweep(dirs.values())

    machine = machine_info(contenders)
    config = {"mode": "Quick" if args.quick else "Full", "size_bytes": size,
              "list_count": count,
              "figures": {f.key: {"title": f.title, "label": f.label,
                                  "n": f.n, "warmup": f.warmup,
                                  "rounds": f.rounds}
                          for f in figures},
              "targets": {key: [vars(t) for t in targets]
                          for key, targets in TARGETS.items()}}
    print(render(figures, contenders, results, missing, pmd, machine, config))
    args.output.write_text(json.dumps({
        "machine": machine,
        "config": config,
        "contenders": {c.key: c.label for c in contenders},
        "figures": results,
        "ratios_v4_to": {f: {c: ratio(results, (f, "v4"), (f, c))
                             for c in cells if c != "v4"}
                         for f, cells in results.items()},
        "not_available": missing,
        "shmem_pmd_mapped_kb": pmd,
    }, indent=1) + "\n")
    log(f"wrote {args.output}")


if __name__ == "__main__":
    main()
