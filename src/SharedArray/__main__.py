"""Command line: list, inspect and delete shared arrays (like ipcs/ipcrm).

    python -m SharedArray list [--json]
    python -m SharedArray info NAME... [--json]
    python -m SharedArray delete NAME...
"""

import argparse
import json
import os
import pwd
import stat
import sys
import time

from . import _core


def _owner(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _as_dict(entry):
    return {
        "name": entry.name,
        "dtype": entry.dtype.str if entry.dtype.fields is None
        else str(entry.dtype),
        "shape": list(entry.dims),
        "nbytes": entry.nbytes,
        "order": entry.order,
        "mode": f"{entry.mode:04o}",
        "owner": _owner(entry.uid),
        "uid": entry.uid,
        "mtime": entry.mtime,
        "format": entry.format,
    }


def _table(entries, out):
    header = ("NAME", "DTYPE", "SHAPE", "SIZE", "MODE", "OWNER", "MODIFIED")
    rows = [header]
    for e in sorted(entries, key=lambda e: e.name):
        rows.append((
            e.name,
            str(e.dtype),
            "x".join(map(str, e.dims)) or "()",
            _size(e.nbytes),
            stat.filemode(stat.S_IFREG | e.mode)[1:],
            _owner(e.uid),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.mtime)),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        out.write("\n")


def _cmd_list(args):
    entries = _core.list()
    if args.json:
        json.dump([_as_dict(e) for e in entries], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _table(entries, sys.stdout)
    return 0


def _cmd_info(args):
    status, found = 0, []
    for name in args.names:
        try:
            found.append(_core.info(name))
        except (OSError, ValueError, TypeError) as exc:
            _error(exc)
            status = 1
    if args.json:
        json.dump([_as_dict(e) for e in found], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for e in found:
            for key, value in _as_dict(e).items():
                if key == "mtime":
                    value = time.strftime("%Y-%m-%d %H:%M:%S",
                                          time.localtime(value))
                print(f"{key + ':':8} {value}")
            if len(found) > 1:
                print()
    return status


def _cmd_delete(args):
    status = 0
    for name in args.names:
        try:
            _core.delete(name)
        except (OSError, ValueError, TypeError) as exc:
            _error(exc)
            status = 1
        else:
            if args.verbose:
                print(f"deleted {name}")
    return status


def _error(exc):
    if isinstance(exc, OSError) and exc.strerror:
        what = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    else:
        what = str(exc)
    print(f"sharedarray: {what}", file=sys.stderr)


def _parser():
    p = argparse.ArgumentParser(
        prog="sharedarray",
        description="List, inspect and delete SharedArray arrays. Names are "
        "shm://NAME, file://PATH or a bare NAME (= shm://NAME).",
    )
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


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except OSError as exc:
        _error(exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
