"""Command line: list, inspect and delete shared arrays (like ipcs/ipcrm).

    python -m SharedArray list [--json]
    python -m SharedArray info [--json] NAME...
    python -m SharedArray delete [-v] NAME...
    python -m SharedArray --version

Exit status: 0 success, 1 if any operation failed, 2 for a usage error.

Anyone who can write to /dev/shm chooses the names (and .npy headers) this
tool prints, so human-readable output never writes a name or any other text
from a file raw: see _escape.  --json output is exact instead: see _dump_json.
"""

import argparse
import json
import math
import os
import pwd
import stat
import sys
import time

from . import __version__, _core

_NAMED_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _encodable(char, encoding):
    if encoding is None:
        return True
    try:
        char.encode(encoding)
    except (UnicodeError, LookupError):
        return False
    return True


def _escape(text, stream, name=True):
    """text with every character a terminal could act on written as a
    visible escape, so that a name cannot forge a row or send escape
    sequences to the terminal; stream is where text will be written (its
    characters that stream's encoding cannot encode are escaped too, so a
    strict ASCII stdout does not fail).

    * An undecodable byte of a file name (os.fsdecode gives it as a lone
      surrogate U+DC80..U+DCFF) is \\xNN, NN its value (80..ff).
    * Other non-printable ASCII (controls, DEL) is \\n, \\r, \\t or \\xNN
      (NN below 80, so never mistaken for a byte above).
    * Any other character that is not printable (str.isprintable: controls,
      format characters such as bidi overrides, separators other than the
      space) or that the stream cannot encode is \\uNNNN or \\UNNNNNNNN.
    * With name=True a backslash is doubled, so that the escaped text stands
      for exactly one name.  Text that is already a repr (NumPy's dtype
      strings, the C core's error messages) is passed with name=False.
    """
    encoding = getattr(stream, "encoding", None)
    if (text.isprintable() and (not name or "\\" not in text)
            and (encoding is None or _encodable(text, encoding))):
        return text
    out = []
    for char in text:
        code = ord(char)
        if char == "\\":
            out.append("\\\\" if name else char)
        elif char in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[char])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x80 and not char.isprintable():
            out.append(f"\\x{code:02x}")
        elif not char.isprintable() or not _encodable(char, encoding):
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out)


def _owner(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError, ValueError):
        return str(uid)


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _mtime(seconds):
    """Local time, or the raw number of seconds if it has none (anyone can
    set a file's mtime to 2**62, which time.localtime cannot convert)."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))
    except (OverflowError, OSError, ValueError):
        return f"{seconds:.0f}" if math.isfinite(seconds) else str(seconds)


def _dtype(dtype):
    return dtype.str if dtype.fields is None else str(dtype)


def _as_dict(entry):
    return {
        "name": entry.name,
        "dtype": _dtype(entry.dtype),
        "shape": list(entry.dims),
        "nbytes": entry.nbytes,
        "order": entry.order,
        "mode": f"{entry.mode:04o}",
        "owner": _owner(entry.uid),
        "uid": entry.uid,
        "mtime": entry.mtime,
        "format": entry.format,
    }


def _dicts(entries):
    """_as_dict of each entry, and whether all of them worked: an entry that
    cannot be described is reported on stderr and left out, never the rest."""
    out, ok = [], True
    for e in entries:
        try:
            out.append(_as_dict(e))
        except Exception as exc:  # noqa: BLE001 - any bug: keep the rest
            _error(exc, name=getattr(e, "name", None))
            ok = False
    return out, ok


def _dump_json(dicts):
    # --json is exact: names are written as they are, not escaped for a
    # terminal.  json.dumps already writes control characters as \n, \u001b
    # and so on.  A name that is not valid UTF-8 comes from SharedArray.list
    # (like os.fsdecode) with each undecodable byte as a lone surrogate
    # U+DC80..U+DCFF; ensure_ascii=True writes that as the JSON escape
    # \udcff, which json.loads reads back to the same str, for os.fsencode
    # or SharedArray.info to use.  (Parsers that insist on valid Unicode may
    # replace it with U+FFFD.)  The output is pure ASCII, so no stdout
    # encoding can fail on it.
    json.dump(dicts, sys.stdout, indent=2, ensure_ascii=True)
    sys.stdout.write("\n")


def _row(e, out):
    return (
        _escape(e.name, out),
        _escape(str(e.dtype), out, name=False),
        "x".join(map(str, e.dims)) or "()",
        _size(e.nbytes),
        stat.filemode(stat.S_IFREG | e.mode)[1:],
        _escape(_owner(e.uid), out, name=False),
        _mtime(e.mtime),
    )


def _table(entries, out):
    """Write the table; returns False if some entry could not be formatted
    (it is reported on stderr and shown with '?' fields)."""
    header = ("NAME", "DTYPE", "SHAPE", "SIZE", "MODE", "OWNER", "MODIFIED")
    rows, ok = [header], True
    for e in sorted(entries, key=lambda e: e.name):
        try:
            rows.append(_row(e, out))
        except Exception as exc:  # noqa: BLE001 - any bug: keep the rest
            name = getattr(e, "name", None)
            _error(exc, name=name)
            ok = False
            shown = _escape(name, out) if isinstance(name, str) else "?"
            rows.append((shown,) + ("?",) * (len(header) - 1))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        out.write("\n")
    return ok


def _cmd_list(args):
    entries = _core.list()
    if args.json:
        dicts, ok = _dicts(entries)
        _dump_json(dicts)
    else:
        ok = _table(entries, sys.stdout)
    return 0 if ok else 1


def _info_text(entry):
    """The key: value lines of one entry, escaped for stdout."""
    lines = []
    for key, value in _as_dict(entry).items():
        if key == "name":
            value = _escape(value, sys.stdout)
        elif key == "mtime":
            value = _mtime(value)
        else:
            value = _escape(str(value), sys.stdout, name=False)
        lines.append(f"{key + ':':8} {value}\n")
    return "".join(lines)


def _cmd_info(args):
    status, found = 0, []
    for name in args.names:
        try:
            found.append(_core.info(name))
        except (OSError, ValueError, TypeError) as exc:
            _error(exc, name=name)
            status = 1
    if args.json:
        dicts, ok = _dicts(found)
        _dump_json(dicts)
        status = status if ok else 1
    else:
        for e in found:
            try:
                text = _info_text(e)
            except Exception as exc:  # noqa: BLE001 - any bug: keep the rest
                _error(exc, name=getattr(e, "name", None))
                status = 1
                continue
            sys.stdout.write(text)
            if len(found) > 1:
                sys.stdout.write("\n")
    return status


def _cmd_delete(args):
    status = 0
    for name in args.names:
        try:
            _core.delete(name)
        except (OSError, ValueError, TypeError) as exc:
            _error(exc, name=name)
            status = 1
        else:
            if args.verbose:
                print(f"deleted {_escape(name, sys.stdout)}")
    return status


def _error(exc, name=None):
    """Report exc on stderr, escaped.  The file name of an OSError is a name
    (escaped as one); other messages come from the C core, which already
    quotes names with repr, so only what is still unprintable is escaped.
    An exception that does not mention name (e.g. a UnicodeError) gets it
    prefixed."""
    err = sys.stderr
    if isinstance(exc, OSError) and exc.strerror:
        if isinstance(exc.filename, (str, bytes)):
            what = (f"{_escape(os.fsdecode(exc.filename), err)}: "
                    f"{_escape(exc.strerror, err, name=False)}")
        else:
            what = _escape(exc.strerror, err, name=False)
    else:
        what = _escape(str(exc) or type(exc).__name__, err, name=False)
        if isinstance(name, str) and name not in str(exc) \
                and repr(name) not in str(exc):
            what = f"{_escape(name, err)}: {what}"
    err.write(f"sharedarray: {what}\n")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse quotes some arguments with repr but not all ("unrecognized
        # arguments: ..." is raw): escape what the user typed.
        super().error(_escape(message, sys.stderr, name=False))


def _parser():
    p = _Parser(
        prog="sharedarray",
        description="List, inspect and delete SharedArray arrays. Names are "
        "shm://NAME, file://PATH or a bare NAME (= shm://NAME).",
        epilog="Exit status: 0 success, 1 if any operation failed, 2 for a "
        "usage error. Non-printable characters in names are shown escaped "
        r"(\n, \x1b, \xff for a byte that is not UTF-8, \\ for a backslash); "
        "--json output is exact.",
    )
    p.add_argument("--version", action="version",
                   version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ls = sub.add_parser("list", help="list the arrays in POSIX shared memory",
                        description="List the arrays in POSIX shared memory "
                        "(" + "/dev/shm" + "); other files there are skipped.")
    ls.add_argument("--json", action="store_true",
                    help="print JSON instead of a table")
    ls.set_defaults(func=_cmd_list)

    info = sub.add_parser("info", help="describe arrays without mapping them",
                          description="Describe arrays by name without "
                          "mapping them.")
    info.add_argument("names", nargs="+", metavar="NAME")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_cmd_info)

    rm = sub.add_parser("delete", help="delete arrays (refuses non-arrays)",
                        description="Remove the names of arrays; processes "
                        "that have them attached keep them until they let "
                        "go. Files that are not arrays are refused.")
    rm.add_argument("names", nargs="+", metavar="NAME")
    rm.add_argument("-v", "--verbose", action="store_true",
                    help="say what was deleted")
    rm.set_defaults(func=_cmd_delete)
    return p


def _stdout_gone():
    """stdout's reader went away (`sharedarray list | head -1`): send what
    is still buffered, and whatever Python flushes at exit, to /dev/null so
    that the exit status stays 1 instead of an 'Exception ignored' and 120."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def main(argv=None):
    """Run the command line; returns the exit status (0 success, 1 if any
    operation failed).  Usage errors, --help and --version exit through
    argparse (SystemExit 2, 0, 0)."""
    args = _parser().parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_gone()
        return 1
    except OSError as exc:
        _error(exc)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
