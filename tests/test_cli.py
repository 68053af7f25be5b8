"""The command line: python -m SharedArray {list,info,delete}."""

import json
import os
import subprocess
import sys
import types

import pytest
from _helpers import shm_path

import SharedArray as sa
import SharedArray.__main__ as cli_main


def cli(*args):
    return subprocess.run([sys.executable, "-m", "SharedArray", *args],
                          capture_output=True, text=True, timeout=120,
                          check=False)


def test_list_table_and_json(shm_name):
    name = shm_name()
    sa.create(name, (3, 4), "<i2", mode=0o640)
    r = cli("list")
    assert r.returncode == 0, r.stderr
    line = next(l for l in r.stdout.splitlines() if l.startswith(name))
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
    return [line for line in stdout.decode("ascii").splitlines() if text in line]


def rename_to_bytes(name, bad_name):
    """Move the array at shm name `name` to the (maybe non-UTF-8) name."""
    os.rename(os.fsencode(shm_path(name)), os.fsencode(shm_path(bad_name)))


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
    assert not any(l.startswith("forged") for l in r.stdout.decode().split("\n"))

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
                 ("info", "file://" + str(tmp_path / ("x" + HOSTILE)))):
        r = run(*args)
        assert r.returncode == 1
        assert r.stdout == b""
        assert_no_raw_controls(r.stderr.rstrip(b"\n"))
        assert r.stderr.count(b"\n") == 1, r.stderr
        assert b"No such file" in r.stderr
    assert shown.encode() in run("info", missing).stderr
    # argparse echoes some arguments raw ("unrecognized arguments: ...").
    r = run("list", "\x1b[2J\x1b]0;pwned\x07")
    assert r.returncode == 2
    assert_no_raw_controls(r.stderr.replace(b"\n", b""))
    assert rb"\x1b[2J\x1b]0;pwned\x07" in r.stderr


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
    rows = out.splitlines()
    assert len(rows) == 4 and rows[0].startswith("NAME")
    assert rows[1].split() == ["a-broken"] + ["?"] * 6
    assert rows[2].split()[:2] == [r"b\x1b", "uint16"]
    assert rows[2].split()[-2:] == [str(2**32 - 2), "nan"]
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
        (["list", "extra"], 2, True),
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
