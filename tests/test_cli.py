"""The command line: python -m SharedArray {list,info,delete,prune}."""

import ast
import contextlib
import gc
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types

import numpy as np
import pytest

import SharedArray as sa
import SharedArray.__main__ as cli_main
from _helpers import FEATURES, NOBODY, in_child, needs, own_prefix, shm_path


def cli(*args):
    return subprocess.run([sys.executable, "-m", "SharedArray", *args],
                          capture_output=True, text=True, timeout=120,
                          check=False)


@needs("list")
def test_list_table_and_json(shm_name):
    name = shm_name()
    sa.create(name, (3, 4), "<i2", mode=0o640)
    r = cli("list")
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith(name))
    assert "int16" in line and "3x4" in line and "rw-r-----" in line
    r = cli("list", "--json")
    assert r.returncode == 0, r.stderr
    entry = next(e for e in json.loads(r.stdout) if e["name"] == name)
    assert entry["shape"] == [3, 4]
    assert entry["dtype"] == "<i2"
    assert entry["nbytes"] == 24
    assert entry["mode"] == "0640"
    assert entry["format"] == "npy"
    sa.delete(name)


@pytest.mark.skipif(FEATURES["list"], reason="this build can list; the "
                    "portable backend's refusal is tested with that backend")
def test_list_and_prune_without_a_shm_directory_say_why():
    for args in (["list"], ["list", "--json"], ["prune"]):
        r = cli(*args)
        assert r.returncode == 2, (args, r)
        assert r.stdout == ""
        assert "portable POSIX backend" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def test_info_and_errors(shm_name, tmp_path):
    name = shm_name()
    sa.create(name, 5, [("a", "<f8"), ("b", "S2")])
    missing = shm_name()
    r = cli("info", "--json", name, missing)
    assert r.returncode == 1
    (entry,) = json.loads(r.stdout)
    assert entry["name"] == name and entry["shape"] == [5]
    assert missing in r.stderr and "No such file" in r.stderr
    sa.delete(name)


def test_delete_many_and_refuse_non_arrays(shm_name, tmp_path):
    a, b = shm_name(), shm_name()
    sa.create(a, 1)
    sa.create(b, 1)
    text = tmp_path / "keep.txt"
    text.write_text("precious")
    r = cli("delete", "-v", a, "file://" + str(text), b)
    assert r.returncode == 1
    assert "keep.txt" in r.stderr and "not an array" in r.stderr
    assert not os.path.exists(shm_path(a)) and not os.path.exists(shm_path(b))
    assert text.read_text() == "precious"
    assert f"deleted {a}" in r.stdout and f"deleted {b}" in r.stdout


@pytest.mark.parametrize("args", [(), ("list", "--help"), ("info",),
                                  ("bogus",)])
def test_usage(args):
    r = cli(*args)
    if "--help" in args:
        assert r.returncode == 0 and "usage:" in r.stdout
    else:
        assert r.returncode == 2 and "usage:" in r.stderr


# ----------------------------------------------------------------------
# Hostile names and entries.  Anyone who can write to /dev/shm picks the
# names `sharedarray list` shows to every user.

# Forges a row, clears the screen, sets the terminal title, hides text
# behind a bidi override; a backslash and a DEL for good measure.
HOSTILE = "-a\nforged 1x1 float64\x1b[2J\x1b]0;pwned\x07\t\\z\x7f\u202e"
HOSTILE_SHOWN = r"-a\nforged 1x1 float64\x1b[2J\x1b]0;pwned\x07\t\\z\x7f\u202e"


def run(*args, env=None, stdout=subprocess.PIPE):
    """The CLI as a subprocess, output as bytes (nothing decoded for us)."""
    return subprocess.run([sys.executable, "-m", "SharedArray", *args],
                          stdout=stdout, stderr=subprocess.PIPE, timeout=120, check=False,
                          env=None if env is None else {**os.environ, **env})


def assert_no_raw_controls(data):
    bad = sorted({b for b in data if (b < 0x20 and b != 0x0A) or b == 0x7F})
    assert not bad, f"raw control bytes {bad} in {data!r}"


def lines_with(stdout, text):
    """The lines of stdout that mention text: ours, all ASCII once escaped.
    (Other processes' arrays may have any name, so only these are ours.)"""
    found = [line for line in stdout.decode("utf-8", "surrogateescape").splitlines()
             if text in line]
    for line in found:
        assert line.isascii(), line
    return found


def rename_to_bytes(name, bad_name):
    """Move the array at shm name `name` to the (maybe non-UTF-8) name."""
    os.rename(os.fsencode(shm_path(name)), os.fsencode(shm_path(bad_name)))


@needs("list")
def test_control_characters_in_names_are_escaped(shm_name):
    name = shm_name(HOSTILE)
    base = name[: -len(HOSTILE)]
    shown = base + HOSTILE_SHOWN
    sa.create(name, (1, 1))

    r = run("list")
    assert r.returncode == 0, r.stderr
    assert_no_raw_controls(r.stdout)
    (line,) = lines_with(r.stdout, base)  # one line per array: no forged row
    assert line.startswith(shown + "  ")
    assert not any(ln.startswith("forged") for ln in r.stdout.decode().split("\n"))

    r = run("info", name)
    assert r.returncode == 0, r.stderr
    assert_no_raw_controls(r.stdout)
    assert lines_with(r.stdout, base) == [f"name:    {shown}"]

    # --json stays exact.
    for args in (("list", "--json"), ("info", "--json", name)):
        r = run(*args)
        assert r.returncode == 0, r.stderr
        assert [e["name"] for e in json.loads(r.stdout) if base in e["name"]] \
            == [name]

    r = run("delete", "-v", name)
    assert r.returncode == 0, r.stderr
    assert_no_raw_controls(r.stdout)
    assert r.stdout.decode("ascii") == f"deleted {shown}\n"
    assert not os.path.exists(shm_path(name))


def test_control_characters_in_error_messages_are_escaped(shm_name, tmp_path):
    missing = shm_name(HOSTILE)
    shown = missing[: -len(HOSTILE)] + HOSTILE_SHOWN
    for args in (("info", missing), ("delete", missing),
                 ("info", "file://" + str(tmp_path / ("x" + HOSTILE))),
                 ("list", str(tmp_path / ("x" + HOSTILE)))):
        r = run(*args)
        assert r.returncode == 1
        assert r.stdout == b""
        assert_no_raw_controls(r.stderr.rstrip(b"\n"))
        assert r.stderr.count(b"\n") == 1, r.stderr
        assert b"No such file" in r.stderr
    assert shown.encode() in run("info", missing).stderr
    # argparse echoes some arguments raw ("unrecognized arguments: ...").
    r = run("list", ".", "\x1b[2J\x1b]0;pwned\x07")
    assert r.returncode == 2
    assert_no_raw_controls(r.stderr.replace(b"\n", b""))
    assert rb"\x1b[2J\x1b]0;pwned\x07" in r.stderr


@needs("list")
def test_extreme_mtime_does_not_hide_other_arrays(shm_name, capsys):
    normal, extreme = shm_name(), shm_name()
    sa.create(normal, 2)
    sa.create(extreme, 3)
    os.utime(shm_path(extreme), (0, 2**62))  # time.localtime overflows
    assert sa.info(extreme).mtime == 2**62

    r = run("list")
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""
    (line,) = lines_with(r.stdout, normal)
    assert line.startswith(normal + "  ")
    (line,) = lines_with(r.stdout, extreme)
    assert line.startswith(extreme + "  ")
    assert line.endswith("  4611686018427387904")  # raw seconds

    r = run("info", extreme, normal)
    assert r.returncode == 0, r.stderr
    assert "mtime:   4611686018427387904" in r.stdout.decode()
    assert lines_with(r.stdout, "name:") == [f"name:    {extreme}",
                                             f"name:    {normal}"]

    assert cli_main.main(["info", extreme]) == 0
    assert "mtime:   4611686018427387904\n" in capsys.readouterr().out

    r = run("list", "--json")
    assert r.returncode == 0, r.stderr
    (entry,) = [e for e in json.loads(r.stdout) if e["name"] == extreme]
    assert entry["mtime"] == 2**62


@pytest.mark.parametrize("env, shown", [
    ({"PYTHONIOENCODING": "ascii:strict"}, r"-\xff\u00e9"),
    # The C locale without UTF-8 mode: file names are decoded as ASCII (each
    # byte of the UTF-8 e-acute is undecodable) and stdout is ASCII.
    ({"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0",
      "PYTHONIOENCODING": ""}, r"-\xff\xc3\xa9"),
], ids=["ascii-strict", "c-locale"])
@needs("list")
def test_non_utf8_name_is_listed_escaped(shm_name, env, shown):
    suffix = "-\udcff\u00e9"  # the bytes b"-\xff\xc3\xa9"
    made, bad = shm_name(), shm_name(suffix)
    base = bad[: -len(suffix)]
    sa.create(made, 4)
    rename_to_bytes(made, bad)

    r = run("list", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""  # no traceback
    r.stdout.decode("ascii")  # everything escaped for the ASCII stdout
    assert_no_raw_controls(r.stdout)
    (line,) = lines_with(r.stdout, base)
    assert line.startswith(base + shown + "  ")

    # JSON keeps the name exact: the undecodable byte as the escape \udcff.
    r = run("list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    names = [e["name"] for e in json.loads(r.stdout) if base in e["name"]]
    assert [os.fsencode(n) for n in names] == [os.fsencode(bad)]
    r = run("list", "--json", env={"PYTHONIOENCODING": "ascii:strict"})
    assert r.returncode == 0, r.stderr
    assert rb'"name": "' + base.encode() + rb'-\udcff\u00e9"' in r.stdout
    names = [e["name"] for e in json.loads(r.stdout) if base in e["name"]]
    assert names == [bad]


def test_info_and_delete_non_utf8_name_from_command_line(shm_name):
    # Needs the C core to accept surrogate-escaped names (os.fsencode).
    made, bad = shm_name(), shm_name("-\udcff")
    shown = bad[:-1] + r"\xff"
    sa.from_array(made, [1, 2, 3])
    rename_to_bytes(made, bad)
    strict = {"PYTHONIOENCODING": "ascii:strict"}

    r = run("info", bad, env=strict)
    assert r.returncode == 0, r.stderr
    assert lines_with(r.stdout, "name:") == [f"name:    {shown}"]
    r = run("info", "--json", bad, env=strict)
    assert r.returncode == 0, r.stderr
    (entry,) = json.loads(r.stdout)
    assert entry["name"] == bad and entry["shape"] == [3]

    r = run("delete", "-v", bad, env=strict)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"deleted {shown}\n".encode()
    assert not os.path.lexists(os.fsencode(shm_path(bad)))


def test_one_unformattable_entry_does_not_hide_the_others(shm_name, capsys,
                                                          monkeypatch):
    good_name = shm_name()
    sa.create(good_name, (2, 5), "<u2")
    good = sa.info(good_name)
    fields = ("name", "dtype", "dims", "nbytes", "order", "mode", "uid",
              "mtime", "format")
    like = {f: getattr(good, f) for f in fields}
    # A broken entry (as a bug in the core or in the formatting would give),
    # and odd but valid ones: NaN mtime, an unknown uid, a control character.
    broken = types.SimpleNamespace(**{**like, "name": "a-broken", "dims": None})
    odd = types.SimpleNamespace(**{**like, "name": "b\x1b", "uid": 2**32 - 2,
                                   "mtime": float("nan")})
    entries = {e.name: e for e in (good, broken, odd)}
    fake = types.SimpleNamespace(list=lambda: list(entries.values()),
                                 info=entries.__getitem__)
    monkeypatch.setattr(cli_main, "_core", fake)

    assert cli_main.main(["list"]) == 1
    out, err = capsys.readouterr()
    rows = [r for r in out.splitlines() if not r.startswith("(")]  # notes
    assert len(rows) == 4 and rows[0].startswith("NAME")
    assert rows[1].split() == ["a-broken"] + ["?"] * 7
    assert rows[2].split()[:2] == [r"b\x1b", "uint16"]
    assert rows[2].split()[-3:] == [str(2**32 - 2), "?", "nan"]  # no file
    assert rows[3].split()[:3] == [good_name, "uint16", "2x5"]
    assert err.startswith("sharedarray: a-broken: ") and err.count("\n") == 1

    assert cli_main.main(["list", "--json"]) == 1
    out, err = capsys.readouterr()
    assert [e["name"] for e in json.loads(out)] == [good_name, "b\x1b"]
    assert "a-broken" in err

    assert cli_main.main(["info", "a-broken", good_name]) == 1
    out, err = capsys.readouterr()
    assert f"name:    {good_name}\n" in out and "a-broken" not in out
    assert "a-broken" in err


def test_version(capsys):
    r = run("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == f"sharedarray {sa.__version__}\n"
    with pytest.raises(SystemExit) as exc:
        cli_main.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"sharedarray {sa.__version__}\n"


@needs("list")
def test_exit_codes(shm_name, capsys):
    """0 success, 1 if any operation failed, 2 usage error; in-process
    (main returns it, argparse raises SystemExit) and as a command."""
    made, missing, extreme = shm_name(), shm_name(), shm_name()
    sa.create(made, 1)
    sa.create(extreme, 1)
    os.utime(shm_path(extreme), (0, 2**62))
    cases = [  # (argv, status, also run as a command: slower)
        (["list"], 0, True),
        (["list", "--json"], 0, False),
        (["info", made], 0, False),
        (["info", extreme], 0, True),
        (["info", "--json", made, extreme], 0, False),
        (["--version"], 0, False),  # test_version runs it
        (["--help"], 0, False),
        (["info", missing], 1, False),
        (["info", made, missing], 1, True),
        (["info", "--json", missing], 1, False),
        (["info", "file://"], 1, False),  # invalid name
        (["delete", missing], 1, False),
        (["delete", "file:///"], 1, True),
        ([], 2, False),
        (["bogus"], 2, True),
        (["info"], 2, False),
        (["list", "--bogus"], 2, False),
        (["list", "a", "b"], 2, True),
        (["list", shm_path(missing)], 1, True),  # DIR: no such directory
        (["list", "file://"], 2, False),
        (["prune", missing], 0, True),  # a dry run that matches nothing
        (["prune", "--older-than", "10", missing], 2, False),  # no unit
        (["prune", "--older-than", "-1h", missing], 2, False),
        (["prune", "--user", "no such user", missing], 2, False),
        (["prune", "a/b"], 2, False),  # not a pattern for /dev/shm names
    ]
    for args, status, as_command in cases:
        if status != 2 and not args[0].startswith("--"):
            assert cli_main.main(args) == status, args
        else:  # argparse exits
            with pytest.raises(SystemExit) as exc:
                cli_main.main(args)
            assert exc.value.code == status, args
            assert ("usage:" in capsys.readouterr().err) == (status == 2)
        if as_command:
            assert run(*args).returncode == status, args
    assert os.path.exists(shm_path(made))


@needs("list")
def test_exit_code_when_stdout_is_closed(shm_name):
    # `sharedarray list | head -0`: status 1, no traceback, no
    # "Exception ignored" (and no status 120) from the flush at exit.
    sa.create(shm_name(), 1)
    r, w = os.pipe()
    os.close(r)
    try:
        for args in (("list",), ("list", "--json")):
            result = run(*args, stdout=w)
            assert result.returncode == 1, result.stderr
            assert result.stderr == b""
    finally:
        os.close(w)


# ----------------------------------------------------------------------
# Who maps what (MAPS), prune, list DIR, hints, wide dtypes.

HOLD = """\
import sys
import SharedArray as sa
held = [sa.attach(name) for name in sys.argv[1:]]
print("attached", flush=True)
sys.stdin.read()
"""


class Holder:
    """A child process that keeps arrays attached until released."""

    def __init__(self, *names):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, *names], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline() == "attached\n"

    def release(self):
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0


def untouched_by_us():
    """Let this process map no array: the mapping cache keeps what it
    attached (forked children would inherit it too)."""
    gc.collect()
    sa.cache_clear()


def cell(header, line, column):
    """The value in column of a table line (columns are aligned; SIZE and
    MODIFIED hold a space)."""
    return line[header.index(column):].split()[0]


def maps_of(name, *args):
    """MAPS of name, from `list --json` (and the table, which must agree)."""
    r = run("list", "--json", *args)
    assert r.returncode == 0, r.stderr
    (entry,) = [e for e in json.loads(r.stdout) if e["name"] == name]
    r = run("list", *args)
    assert r.returncode == 0, r.stderr
    header, *lines = r.stdout.decode().splitlines()
    (line,) = [line for line in lines if line.startswith(name + " ")]
    assert cell(header, line, "MAPS") == str(entry["maps"])
    return entry["maps"]


@needs("list")
def test_maps_counts_processes_by_inode_not_path(shm_name):
    name = shm_name()
    sa.create(name, 10)
    untouched_by_us()
    assert maps_of(name) == 0

    holder = Holder(name)
    try:
        assert maps_of(name) == 1
        # Distinct processes, not mappings: this one maps it twice (cache
        # off), which counts once.
        limits = sa.cache_limits()
        sa.cache_limits(max_entries=0)
        try:
            a, b = sa.attach(name), sa.attach(name)
            assert a.base is not b.base
            assert maps_of(name) == 2
            del a, b
        finally:
            sa.cache_limits(*limits)
        untouched_by_us()
        assert maps_of(name) == 1
    finally:
        holder.release()
    assert maps_of(name) == 0

    # The holder maps the old file, which its maps still show under the
    # name; a new array under the same name is another inode, mapped by no
    # one.
    holder = Holder(name)
    try:
        sa.delete(name)
        sa.create(name, 10)
        untouched_by_us()
        assert maps_of(name) == 0
    finally:
        holder.release()


@needs("list")
def test_proc_is_scanned_once_per_command(shm_name, monkeypatch, capsys):
    names = [shm_name() for _ in range(3)]
    for n in names:
        sa.create(n, 1)
    opened = []
    real_open = open

    def counting_open(path, *args, **kwargs):
        if isinstance(path, str) and path.endswith("/maps"):
            opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(cli_main, "open", counting_open, raising=False)
    pattern = own_prefix() + "*"
    for args in (["list"], ["list", "--json"], ["prune", pattern]):
        opened.clear()
        assert cli_main.main(args) == 0
        assert opened and len(opened) == len(set(opened)), args
    capsys.readouterr()


@needs("list")
def test_prune_keeps_what_a_process_maps(shm_name):
    # Works wherever the holder's mappings can be read: prune never deletes
    # what a process is seen to map, dry run or not.
    name = shm_name()
    sa.create(name, 10)
    untouched_by_us()
    holder = Holder(name)
    try:
        for args in (("prune", name), ("prune", "--yes", name)):
            r = run(*args)
            assert r.returncode == 0, r.stderr
            assert f"keep {name} (mapped by 1 process)\n".encode() in r.stdout
            assert b"delete" not in r.stdout.replace(b"nothing was deleted", b"")
            assert os.path.exists(shm_path(name))
    finally:
        holder.release()


def _readable(pid):
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            f.read(1)
    except (FileNotFoundError, ProcessLookupError):
        return True
    except OSError:
        return False
    return True


_SEE_ALL = ["unshare", "--pid", "--fork", "--mount-proc"]
_ALL_READABLE = ("import os; assert all(open(f'/proc/{p}/maps', 'rb').read() "
                 "is not None for p in os.listdir('/proc') if p.isdigit())")


def seeing_every_process():
    """A command prefix under which every process in /proc can be read, as
    prune needs before it deletes anything: none if that already holds;
    else, as root, a new PID namespace (and a /proc of its own), whose
    processes are then the only ones that exist for prune."""
    if os.geteuid() == 0 and shutil.which("unshare"):
        r = subprocess.run([*_SEE_ALL, sys.executable, "-c", _ALL_READABLE],
                           capture_output=True, timeout=60, check=False)
        if r.returncode == 0:
            return _SEE_ALL
    if all(_readable(p) for p in os.listdir("/proc") if p.isdigit()):
        return []
    pytest.skip("some processes' mappings cannot be read here, and no PID "
                "namespace can be made (needs root and unshare)")


DRIVER = """\
import json, os, subprocess, sys
plan = json.loads(sys.argv[1])

def cli(args):
    r = subprocess.run([sys.executable, "-m", "SharedArray", *args],
                       capture_output=True, text=True, timeout=120)
    return {"args": args, "rc": r.returncode, "out": r.stdout,
            "err": r.stderr, "exists": [os.path.exists(p) for p in plan["watch"]]}

holder = None
if plan["hold"]:
    holder = subprocess.Popen([sys.executable, "-c", plan["code"], *plan["hold"]],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "attached\\n"
held = [cli(a) for a in plan["held"]]
if holder:
    holder.stdin.close()
    holder.wait()
print(json.dumps({"held": held, "released": [cli(a) for a in plan["released"]]}))
"""


def scenario(hold=(), held=(), released=(), watch=()):
    """Run CLI commands while a child holds the arrays `hold` attached
    (held), then after it exited (released), where every process can be
    read (see seeing_every_process).  Each result has rc, out, err, and
    whether each name in watch exists after the command."""
    untouched_by_us()
    plan = {"hold": list(hold), "held": [list(a) for a in held],
            "released": [list(a) for a in released], "code": HOLD,
            "watch": [shm_path(n) for n in watch]}
    r = subprocess.run([*seeing_every_process(), sys.executable, "-c", DRIVER,
                        json.dumps(plan)], capture_output=True, text=True,
                       timeout=600, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    for result in out["held"] + out["released"]:  # notes, but no errors
        assert all(line.startswith("sharedarray: note: ")
                   for line in result["err"].splitlines()), result
    return out


@needs("list")
def test_prune_deletes_only_when_no_process_maps(shm_name):
    name = shm_name()
    sa.create(name, 1024)
    out = scenario(
        hold=[name],
        held=[("list", "--json"), ("prune", name), ("prune", "--yes", name)],
        released=[("list", "--json"), ("prune", name), ("prune", "--yes", name)],
        watch=[name])
    listed, dry, yes = out["held"]
    assert [e["maps"] for e in json.loads(listed["out"])
            if e["name"] == name] == [1]
    for r in (dry, yes):
        assert r["rc"] == 0 and r["exists"] == [True]
        assert r["out"] == f"keep {name} (mapped by 1 process)\n"

    listed, dry, yes = out["released"]
    assert [e["maps"] for e in json.loads(listed["out"])
            if e["name"] == name] == [0]
    assert dry["rc"] == 0 and dry["exists"] == [True]  # a dry run
    lines = dry["out"].splitlines()
    assert lines[0].startswith(f"would delete {name} (8.0 KiB, modified ")
    assert lines[1:] == ["(dry run: nothing was deleted; add --yes to delete)"]
    assert yes["rc"] == 0 and yes["exists"] == [False]
    lines = yes["out"].splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"deleted {name} (8.0 KiB, ")


@needs("list")
def test_prune_patterns_and_age(shm_name):
    old, new, other = shm_name("-old-aged"), shm_name("-new-aged"), shm_name()
    for n in (old, new, other):
        sa.create(n, 1)
    three_days_ago = time.time() - 3 * 86400
    os.utime(shm_path(old), (three_days_ago, three_days_ago))
    pattern = own_prefix() + "*-aged"
    out = scenario(released=[
        ("prune", pattern),
        ("prune", "--older-than", "2d", pattern),
        ("prune", "--older-than", "4d", pattern),
        ("prune", "--yes", "--older-than", "47h", pattern),
        ("prune", "--yes", "shm://" + new),
    ], watch=[old, new, other])
    both, two_days, four_days, yes, by_name = out["released"]
    assert [r["rc"] for r in out["released"]] == [0] * 5
    assert both["exists"] == [True, True, True]  # a dry run
    lines = both["out"].splitlines()
    assert sorted(line.split()[2] for line in lines[:2]) == sorted([old, new])
    assert all(line.startswith("would delete ") for line in lines[:2])
    assert lines[2:] == ["(dry run: nothing was deleted; add --yes to delete)"]
    assert [line.split()[2] for line in two_days["out"].splitlines()
            if line.startswith("would delete ")] == [old]
    assert four_days["out"] == "(no array matches)\n"
    assert yes["exists"] == [False, True, True]
    assert yes["out"].startswith(f"deleted {old} ") \
        and yes["out"].count("\n") == 1
    assert by_name["exists"] == [False, False, True]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
@needs("list")
def test_prune_never_touches_another_users_array(shm_name):
    mine, theirs = shm_name(), shm_name()
    sa.create(mine, 1)
    sa.create(theirs, 1)
    os.chown(shm_path(theirs), NOBODY, NOBODY)
    out = scenario(released=[
        ("prune", "--yes", mine, theirs),
        ("prune", "--user", "root", "--yes", theirs),
        ("prune", "--user", str(NOBODY), theirs),
        ("prune", "--user", str(NOBODY), "--yes", theirs),
    ], watch=[mine, theirs])
    as_root, as_root_named, dry, named = out["released"]
    assert as_root["exists"] == [False, True]
    assert as_root["out"].startswith(f"deleted {mine} ")
    assert theirs not in as_root["out"]
    assert as_root_named["out"] == "(no array matches)\n"
    assert as_root_named["exists"] == [False, True]
    # Only when --user names the owner.
    assert dry["out"].startswith(f"would delete {theirs} ")
    assert dry["exists"] == [False, True]
    assert named["out"].startswith(f"deleted {theirs} ")
    assert named["exists"] == [False, False]


def as_nobody(*args):
    """cli_main.main(args) in a child running as nobody: (status, out, err)."""
    untouched_by_us()

    def call():
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = cli_main.main(list(args))
        return status, out.getvalue(), err.getvalue()

    return tuple(in_child(call, uid=NOBODY))


@pytest.mark.skipif(os.geteuid() != 0, reason="setuid needs root")
@needs("list")
def test_unreadable_mappings_are_reported_and_block_prune(shm_name):
    # As nobody, root's processes (PID 1 at least) cannot be read: list says
    # so, and prune deletes nothing, even an array nobody owns and no
    # process maps.
    name = shm_name()
    sa.create(name, 1)
    os.chown(shm_path(name), NOBODY, NOBODY)
    status, out, err = as_nobody("list")
    assert status == 0 and err == ""
    header, *lines = out.splitlines()
    (line,) = [line for line in lines if line.startswith(name + " ")]
    assert cell(header, line, "MAPS") == "0"
    assert re.search(r"^\(the mappings of \d+ process(es)? \(PIDs? 1[,)].* "
                     r"could not be read: MAPS counts only the others\)$",
                     out, re.MULTILINE), out
    status, out, err = as_nobody("list", "--json")
    assert status == 0
    assert [e["maps"] for e in json.loads(out) if e["name"] == name] == [0]
    assert "sharedarray: note: the mappings of " in err

    for args in (("prune", name), ("prune", "--yes", name)):
        status, out, err = as_nobody(*args)
        assert status == 0 and err == ""
        lines = out.splitlines()
        assert lines[0] == f"keep {name} (may be in use)"
        assert lines[1].startswith("(the mappings of ")
        assert lines[1].endswith("could not be read: arrays not known to be "
                                 "in use are kept; run as root to see them)")
        assert os.path.exists(shm_path(name))


@needs("list")
def test_list_counts_what_is_not_an_array(shm_name):
    text, empty = shm_name(), shm_name()
    with open(shm_path(text), "w") as f:
        f.write("not an array")
    open(shm_path(empty), "w").close()
    r = run("list")
    assert r.returncode == 0 and r.stderr == b""
    notes = [line for line in r.stdout.decode().splitlines()
             if line.startswith("(")]
    counted = [int(m[1]) for m in (re.fullmatch(
        r"\((\d+) other entr(?:y|ies) in /dev/shm (?:is|are) not (?:a )?"
        r"readable arrays?\)", n) for n in notes) if m]
    assert counted and counted[0] >= 2  # ours, and whatever else is there
    r = run("list", "--json")
    assert r.returncode == 0
    assert isinstance(json.loads(r.stdout), list)  # still a plain list
    assert re.search(rb"^sharedarray: note: \d+ other entries in /dev/shm are "
                     rb"not readable arrays$", r.stderr, re.MULTILINE), r.stderr


def test_list_directory_of_file_arrays(tmp_path, monkeypatch):
    made = [sa.create("file://" + str(tmp_path / n), (2, 3), "<i4")
            for n in ("b.npy", "a")]
    del made
    (tmp_path / "notes.txt").write_text("not an array")
    (tmp_path / "sub").mkdir()
    sa.create("file://" + str(tmp_path / "sub" / "deeper.npy"), 1)
    os.symlink(tmp_path / "a", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    untouched_by_us()
    held = sa.attach("file://" + str(tmp_path / "a"))  # this process: MAPS 1
    want = ["file://" + str(tmp_path / n) for n in ("a", "b.npy")]
    # Where even root cannot read some process's mappings, a note says so.
    maps_note = r"the mappings of \d+ process(es)? \(PIDs? [0-9, .]+\) could " \
        r"not be read: {} counts only the others"
    for where in (str(tmp_path), "file://" + str(tmp_path)):
        r = run("list", where)
        assert r.returncode == 0 and r.stderr == b""
        header, *lines = r.stdout.decode().splitlines()
        assert [line.split()[0] for line in lines[:2]] == want
        assert [cell(header, line, "MAPS") for line in lines[:2]] == ["1", "0"]
        assert lines[0].split()[1:3] == ["int32", "2x3"]
        assert lines[2] == f"(4 other entries in {tmp_path} are not " \
            "readable arrays)"
        assert all(re.fullmatch(r"\(" + maps_note.format("MAPS") + r"\)", n)
                   for n in lines[3:]), lines
        r = run("list", "--json", where)
        assert r.returncode == 0
        entries = json.loads(r.stdout)
        assert [(e["name"], e["maps"]) for e in entries] == [(want[0], 1),
                                                              (want[1], 0)]
        first, *rest = r.stderr.decode().splitlines()
        assert first == (f"sharedarray: note: 4 other entries in {tmp_path} "
                         "are not readable arrays")
        assert all(re.fullmatch("sharedarray: note: " + maps_note.format(
            '"maps"'), n) for n in rest), rest
    del held
    # A relative DIR gives relative file:// names, which work as names.
    monkeypatch.chdir(tmp_path)
    r = run("list", "--json", "sub")
    assert [e["name"] for e in json.loads(r.stdout)] == ["file://sub/deeper.npy"]
    # Not a directory: say how to describe one array.
    r = run("list", str(tmp_path / "a"))
    assert r.returncode == 1 and r.stdout == b""
    assert r.stderr.decode() == (
        f"sharedarray: {tmp_path / 'a'}: Not a directory (to describe one "
        f"array, use: sharedarray info file://{tmp_path / 'a'})\n")


def test_hint_file_name_given_as_shm_name(tmp_path, monkeypatch):
    sa.create("file://" + str(tmp_path / "x.npy"), 1)
    monkeypatch.chdir(tmp_path)
    absolute = str(tmp_path / "x.npy")
    for name, meant in ((absolute, "file://" + absolute),
                        ("x.npy", "file://x.npy"),    # a valid shm name
                        ("./x.npy", "file://./x.npy")):
        for command in ("info", "delete"):
            r = run(command, name)
            assert r.returncode == 1 and r.stdout == b""
            err = r.stderr.decode()
            assert err.count("\n") == 1
            assert f"(did you mean {meant}? A name without file:// is a shm " \
                   "name, in /dev/shm)" in err, err
    assert run("info", "file://x.npy").returncode == 0
    assert os.path.exists(tmp_path / "x.npy")
    # No hint when there is no such file; the hint is escaped like the rest.
    assert b"did you mean" not in run("info", "nosuch/x.npy").stderr
    odd = "x" + HOSTILE
    sa.create("file://" + str(tmp_path / odd), 1)
    r = run("info", str(tmp_path / odd))
    assert r.returncode == 1
    assert_no_raw_controls(r.stderr.rstrip(b"\n"))
    assert r.stderr.count(b"\n") == 1
    assert (b"did you mean file://" + str(tmp_path).encode() + b"/x"
            + HOSTILE_SHOWN.encode() + b"?") in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="setuid needs root")
@needs("list")
def test_hint_missing_permission(shm_name, tmp_path):
    private, readable = shm_name(), shm_name()
    sa.create(private, 1)  # 0600, root's
    sa.create(readable, 1, mode=0o644)
    shared = tempfile.mkdtemp(dir="/tmp")  # tmp_path is not nobody's to reach
    try:
        os.chmod(shared, 0o755)
        in_dir = "file://" + os.path.join(shared, "x")
        sa.create(in_dir, 1, mode=0o644)
        hidden = "file://" + str(tmp_path / "y")
        sa.create(hidden, 1, mode=0o644)
        cases = [
            (("info", private), (f"{private}: Permission denied (reading an "
             f"array needs read permission on it: /dev/shm/{private} is "
             "rw-------, owned by root)")),
            (("delete", private), (f"{private}: Permission denied (deleting "
             f"an array needs read permission on it: /dev/shm/{private} is "
             "rw-------, owned by root)")),
            (("delete", readable), (f"{readable}: Operation not permitted "
             f"(/dev/shm is sticky: only the owner of /dev/shm/{readable} "
             "(root) or root can delete it)")),
            (("delete", in_dir), (f"{in_dir}: Permission denied (deleting "
             f"needs write permission on the directory {shared})")),
            (("list", shared + "/x"), (f"{shared}/x: Not a directory (to "
             f"describe one array, use: sharedarray info {in_dir})")),
        ]
        for args, message in cases:
            assert as_nobody(*args) == (1, "", f"sharedarray: {message}\n")
        # The first directory on the way that nobody may not search.
        blocked = next(str(d) for d in [*reversed(tmp_path.parents), tmp_path]
                       if not os.stat(d).st_mode & 0o001)
        status, out, err = as_nobody("info", hidden)
        assert (status, out) == (1, "")
        assert err == (f"sharedarray: {hidden}: Permission denied (reaching "
                       f"{tmp_path}/y needs search (x) permission on the "
                       f"directory {blocked})\n")
        assert os.path.exists(shm_path(private))
        assert os.path.exists(shm_path(readable))
        sa.delete(in_dir)
    finally:
        shutil.rmtree(shared)


@needs("list")
def test_wide_dtypes_are_shortened_in_the_table(shm_name):
    fields = [(f"field{i}", "<f8") for i in range(100)]
    fields[0] = ("t\u00e9" * 8, "<i2")  # escaped on an ASCII stdout
    fields[3] = ("a\x1bb", "u1")
    dtype = np.dtype(fields)
    name = shm_name()
    sa.create(name, 3, dtype)
    for env, shown in (
            # Cut after a whole field where one fits, with the field count.
            (None, "[('" + "t\u00e9" * 8 + "', \u2026 (100 fields)"),
            # Never in the middle of an escape.
            ({"PYTHONIOENCODING": "ascii:strict"},
             r"[('t\u00e9t\u00e9t\u00e9... (100 fields)")):
        r = run("list", env=env)
        assert r.returncode == 0, r.stderr
        assert_no_raw_controls(r.stdout)
        header, *lines = r.stdout.decode().splitlines()
        (line,) = [line for line in lines if line.startswith(name + " ")]
        start, end = header.index("DTYPE"), header.index("SHAPE")
        assert line[start:end].rstrip() == shown
        assert len(shown) <= 40
        assert cell(header, line, "SHAPE") == "3"
    # info and --json keep the whole dtype.
    r = run("info", name)
    assert r.returncode == 0, r.stderr
    assert_no_raw_controls(r.stdout)
    assert f"dtype:   {dtype}\n" in r.stdout.decode()
    assert r"('a\x1bb', 'u1')" in r.stdout.decode()
    for args in (("list", "--json"), ("info", "--json", name)):
        r = run(*args)
        assert r.returncode == 0, r.stderr
        (entry,) = [e for e in json.loads(r.stdout) if e["name"] == name]
        assert np.dtype(ast.literal_eval(entry["dtype"])) == dtype
