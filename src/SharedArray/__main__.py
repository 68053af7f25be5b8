"""Command line: list, inspect and delete shared arrays (like ipcs/ipcrm).

    python -m SharedArray list [--json] [DIR]
    python -m SharedArray info [--json] NAME...
    python -m SharedArray delete [-v] NAME...
    python -m SharedArray prune [PATTERN...] [--older-than AGE] [--user USER]
                                [--yes]
    python -m SharedArray --version

Exit status: 0 success, 1 if any operation failed, 2 for a usage error.

Anyone who can write to /dev/shm chooses the names (and .npy headers) this
tool prints, so human-readable output never writes a name or any other text
from a file raw: see _escape.  --json output is exact instead: see _dump_json.

Who maps an array is read from /proc/PID/maps, once per command (_Maps):
a mapping is matched by device and inode, never by path (the path shown
there is stale once the name is deleted or reused, and create() maps the
file before it has a name).  prune deletes only what no process maps and
refuses to guess when some process's mappings cannot be read.
"""

import argparse
import fnmatch
import json
import math
import os
import pwd
import re
import stat
import sys
import time

from . import __version__, _core

SHM_DIR = "/dev/shm"
PROC = "/proc"  # tests point these elsewhere
DTYPE_WIDTH = 40  # the table shortens longer dtypes (info and --json do not)

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


def _dicts(entries, maps=None):
    """_as_dict of each entry (plus "maps": maps[id(entry)] when maps is
    given), and whether all of them worked: an entry that cannot be
    described is reported on stderr and left out, never the rest."""
    out, ok = [], True
    for e in entries:
        try:
            d = _as_dict(e)
            if maps is not None:
                d["maps"] = maps[id(e)]
            out.append(d)
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


def _dtype_cell(dtype, out):
    """The dtype for the table: escaped, and shortened to DTYPE_WIDTH
    characters with an ellipsis and the number of fields when longer (a
    structured dtype with many fields would make every row as wide)."""
    text = _escape(str(dtype), out, name=False)
    if len(text) <= DTYPE_WIDTH:
        return text
    dots = "\u2026" if _encodable("\u2026", getattr(out, "encoding", None)) \
        else "..."
    names = dtype.names or ()
    tail = f"{dots} ({len(names)} fields)" if names else dots
    kept, width = [], len(tail)
    for char in str(dtype):  # escape char by char: never cut an escape
        piece = _escape(char, out, name=False)
        if width + len(piece) > DTYPE_WIDTH:
            break
        kept.append(piece)
        width += len(piece)
    text = "".join(kept)
    cut = text.rfind(", ")  # end on a whole field where there is one
    return (text[:cut + 2] if cut > 0 else text) + tail


def _maps_cell(count):
    return "?" if count is None else str(count)


def _row(e, out, maps="?"):
    return (
        _escape(e.name, out),
        _dtype_cell(e.dtype, out),
        "x".join(map(str, e.dims)) or "()",
        _size(e.nbytes),
        stat.filemode(stat.S_IFREG | e.mode)[1:],
        _escape(_owner(e.uid), out, name=False),
        maps,
        _mtime(e.mtime),
    )


def _table(entries, out, maps=None):
    """Write the table (maps: id(entry) -> number of processes mapping it,
    or None); returns False if some entry could not be formatted (it is
    reported on stderr and shown with '?' fields)."""
    header = ("NAME", "DTYPE", "SHAPE", "SIZE", "MODE", "OWNER", "MAPS",
              "MODIFIED")
    rows, ok = [header], True
    for e in sorted(entries, key=lambda e: e.name):
        try:
            count = None if maps is None else maps.get(id(e))
            rows.append(_row(e, out, _maps_cell(count)))
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


# ----------------------------------------------------------------------
# Who maps what: /proc/PID/maps

_HIDING = {"hidepid=2", "hidepid=invisible", "hidepid=4",
           "hidepid=ptraceable"}


def _proc_hides_others():
    """True if /proc is mounted with a hidepid= that makes other users'
    processes invisible (not merely unreadable) to this one."""
    if os.geteuid() == 0:
        return False
    try:
        with open(os.path.join(PROC, "self", "mountinfo"), "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return False
    hides = False
    for line in lines:  # the last mount on PROC is the one in force
        mine, _, theirs = line.partition(" - ")
        fields = mine.split()
        if len(fields) >= 5 and fields[4] == PROC:
            hides = bool(_HIDING & set(theirs.split()[-1].split(",")))
    return hides


class _Maps:
    """Which processes map which files, from one pass over /proc/*/maps.

    keys are (st_dev, st_ino) pairs of the files of interest; a maps line
    names the file it maps by its device (MAJ:MIN in hex) and inode, which
    is matched instead of the path shown (stale once the name is deleted or
    reused; create() maps its file before the file has a name).

    count(key): the number of processes (distinct PIDs) mapping key among
    those whose maps could be read, or None if /proc could not be listed.
    unreadable: the PIDs whose maps could not be read (other users'
    processes, unless we are root; even root's reading is refused for a
    process with capabilities it lacks).  hidden: /proc hides other users'
    processes altogether (hidepid), so not even their number is known.
    A process that exits during the scan maps nothing any more.
    """

    def __init__(self, keys):
        self.ok, self.hidden, self.unreadable = True, False, []
        self._pids = {}
        keys = {k for k in keys if k is not None}
        if not keys:
            return
        # As the kernel writes them: "%02x:%02x" and "%lu".
        wanted = {(f"{os.major(d):02x}:{os.minor(d):02x}".encode(),
                   str(i).encode()): (d, i) for d, i in keys}
        devs = {dev for dev, _ in wanted}
        line = re.compile(
            rb"^[0-9a-f]+-[0-9a-f]+ \S+ [0-9a-f]+ ("
            + b"|".join(re.escape(d) for d in devs) + rb") ([0-9]+) ",
            re.MULTILINE)
        try:
            pids = [n for n in os.listdir(PROC) if n.isdigit()]
        except OSError:
            self.ok = False
            return
        self.hidden = _proc_hides_others()
        for pid in pids:
            try:
                with open(os.path.join(PROC, pid, "maps"), "rb") as f:
                    data = f.read()
            except (FileNotFoundError, ProcessLookupError):
                continue  # exited
            except OSError:
                self.unreadable.append(int(pid))  # EACCES: not ours to read
                continue
            if not any(d in data for d in devs):
                continue
            # A process may map thousands of segments: match in C.
            for hit in wanted.keys() & set(line.findall(data)):
                self._pids.setdefault(wanted[hit], set()).add(pid)

    def count(self, key):
        if not self.ok or key is None:
            return None
        return len(self._pids.get(key, ()))

    def unknown(self):
        """Why a count of 0 does not prove that nothing maps a file, or
        None if it does."""
        if not self.ok:
            return f"{PROC} could not be read"
        if self.hidden:
            return f"other users' processes are hidden in {PROC} (hidepid)"
        if self.unreadable:
            n, pids = len(self.unreadable), sorted(self.unreadable)
            shown = ", ".join(map(str, pids[:5])) + (", ..." if n > 5 else "")
            return (f"the mappings of {n} process{'es' if n != 1 else ''} "
                    f"(PID{'s' if n != 1 else ''} {shown}) could not be read")
        return None


def _key(path):
    """(st_dev, st_ino) of the regular file at path, or None."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except (OSError, TypeError, ValueError):
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


# ----------------------------------------------------------------------
# Commands

def _shm_listing():
    """The arrays in /dev/shm as (entry, path) pairs, and the number of
    other entries there (files that are not arrays or that this user
    cannot read; None if /dev/shm cannot be listed)."""
    try:
        names = os.listdir(SHM_DIR)  # before list(): see below
    except OSError:
        names = None
    entries = _core.list()
    pairs = []
    for e in entries:
        try:
            pairs.append((e, os.path.join(SHM_DIR, e.name)))
        except Exception:  # noqa: BLE001 - a broken entry: _table says so
            pairs.append((e, None))
    if names is None:
        return pairs, None
    listed = {getattr(e, "name", None) for e in entries}
    # An array deleted since listdir() is neither listed nor counted.
    others = sum(1 for n in names if n not in listed
                 and os.path.lexists(os.path.join(SHM_DIR, n)))
    return pairs, others


def _dir_listing(directory):
    """The arrays among the regular files of directory, as (entry, path)
    pairs named file://PATH, and the number of other entries there."""
    pairs, others = [], 0
    with os.scandir(directory) as it:
        for d in it:
            try:
                if d.is_file(follow_symlinks=False):
                    pairs.append((_core.info("file://" + d.path), d.path))
                    continue
            except (OSError, ValueError, TypeError):
                pass
            others += 1
    return sorted(pairs, key=lambda pair: pair[1]), others


def _list_notes(where, others, maps, column):
    """The notes that follow the list: what it could not show."""
    notes = []
    if others:
        notes.append(f"{others} other {'entry' if others == 1 else 'entries'}"
                     f" in {where} {'is' if others == 1 else 'are'} not "
                     f"{'a readable array' if others == 1 else 'readable arrays'}")
    why = maps.unknown() if maps is not None else None
    if why and not maps.ok:
        notes.append(f"{why}: {column} is unknown")
    elif why and maps.hidden:
        notes.append(f"{why}: {column} counts only the visible ones")
    elif why:
        notes.append(f"{why}: {column} counts only the others")
    return notes


def _cmd_list(args):
    out = sys.stdout
    if args.directory is None:
        where = SHM_DIR
        pairs, others = _shm_listing()
    else:
        where = args.directory
        try:
            pairs, others = _dir_listing(args.directory)
        except OSError as exc:
            _error(exc, hint=_hint(exc, args.directory, "list"))
            return 1
    keys = {id(e): _key(p) for e, p in pairs}
    maps = _Maps(keys.values()) if pairs else None  # one pass over /proc
    counts = {i: maps.count(k) for i, k in keys.items()} if maps else {}
    entries = [e for e, _ in pairs]
    if args.json:
        dicts, ok = _dicts(entries, counts)
        _dump_json(dicts)
        out.flush()  # before the notes: `list --json | head -0` says nothing
        for note in _list_notes(_escape(where, sys.stderr), others, maps,
                                '"maps"'):
            sys.stderr.write(f"sharedarray: note: {note}\n")
    else:
        ok = _table(entries, out, counts)
        for note in _list_notes(_escape(where, out), others, maps, "MAPS"):
            out.write(f"({note})\n")
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
            _error(exc, name=name, hint=_hint(exc, name, "info"))
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
            _error(exc, name=name, hint=_hint(exc, name, "delete"))
            status = 1
        else:
            if args.verbose:
                print(f"deleted {_escape(name, sys.stdout)}")
    return status


def _prune_candidates(args, uid, now):
    """The arrays in /dev/shm that pass the filters, as (entry, key)."""
    found = []
    for e in _core.list():
        try:
            name = str(e.name)
            if e.uid != uid:
                continue
            if args.patterns and not any(fnmatch.fnmatchcase(name, p)
                                         for p in args.patterns):
                continue
            if args.older_than is not None \
                    and not now - e.mtime >= args.older_than:  # NaN: not old
                continue
            st = os.stat(os.path.join(SHM_DIR, name), follow_symlinks=False)
        except OSError:
            continue  # gone since list()
        except Exception as exc:  # noqa: BLE001 - a broken entry: report it
            _error(exc, name=getattr(e, "name", None))
            continue
        if stat.S_ISREG(st.st_mode) and st.st_uid == uid:
            found.append((e, (st.st_dev, st.st_ino)))
    return sorted(found, key=lambda c: c[0].name)


def _cmd_prune(args):
    """Delete the arrays of one user that no process maps (a dry run unless
    --yes).  Conservative: if the mappings of any process could not be
    read, only arrays known to be mapped are known to be in use, and the
    rest might be, so nothing is deleted; an array whose file changed
    identity or owner since it was examined is left alone."""
    out, status = sys.stdout, 0
    uid = os.geteuid() if args.user is None else args.user
    found = _prune_candidates(args, uid, time.time())
    maps = _Maps(k for _, k in found)
    why = maps.unknown()
    dry = maybe = 0
    for e, key in found:
        shown = _escape(e.name, out)
        n = maps.count(key)
        if n:
            out.write(f"keep {shown} (mapped by {n} process"
                      f"{'es' if n != 1 else ''})\n")
            continue
        if why is not None:
            out.write(f"keep {shown} (may be in use)\n")
            maybe += 1
            continue
        what = f"({_size(e.nbytes)}, modified {_mtime(e.mtime)})"
        if not args.yes:
            out.write(f"would delete {shown} {what}\n")
            dry += 1
            continue
        try:
            st = os.stat(os.path.join(SHM_DIR, e.name), follow_symlinks=False)
            if (st.st_dev, st.st_ino) != key or st.st_uid != uid:
                out.write(f"keep {shown} (replaced since it was examined)\n")
                continue
            _core.delete("shm://" + e.name)
        except FileNotFoundError:
            continue  # deleted by someone else meanwhile
        except (OSError, ValueError, TypeError) as exc:
            out.flush()
            _error(exc, name=e.name, hint=_hint(exc, e.name, "delete"))
            status = 1
            continue
        out.write(f"deleted {shown} {what}\n")
    if maybe:
        advice = "" if os.geteuid() == 0 else "; run as root to see them"
        out.write(f"({why}: arrays not known to be in use are kept{advice})\n")
    if not found:
        out.write("(no array matches)\n")
    elif dry:
        out.write("(dry run: nothing was deleted; add --yes to delete)\n")
    return status


# ----------------------------------------------------------------------
# Errors, with hints for common mistakes

def _path_of(name):
    """The file behind a SharedArray name (no validation)."""
    if name.startswith("file://"):
        return name[len("file://"):]
    name = name.removeprefix("shm://")
    return os.path.join(SHM_DIR, name.lstrip("/"))


def _can(path, mode):
    effective = os.access in os.supports_effective_ids
    return os.access(path, mode, effective_ids=effective)


def _unsearchable(directory):
    """The first directory from / down to directory that this process may
    not search (pass through), or None."""
    chain, d = [], os.path.abspath(directory)
    while True:
        chain.append(d)
        if os.path.dirname(d) == d:
            break
        d = os.path.dirname(d)
    return next((d for d in reversed(chain) if not _can(d, os.X_OK)), None)


def _permission_hint(exc, name, op):
    """Which permission is missing, for a PermissionError of op."""
    err = sys.stderr
    if not isinstance(name, str):  # the C core's filename is the name
        if not isinstance(exc.filename, (str, bytes)):
            return None
        name = os.fsdecode(exc.filename)
    path = name if op == "list" else _path_of(name)
    parent = os.path.dirname(os.path.abspath(path))
    shown, shown_dir = _escape(path, err), _escape(parent, err)
    if op == "list" and os.path.isdir(path):
        return f"listing {shown} needs read permission on it"
    blocked = _unsearchable(parent)
    if blocked is not None:
        return (f"reaching {shown} needs search (x) permission on the "
                f"directory {_escape(blocked, err)}")
    st = os.stat(path, follow_symlinks=False)
    owner = _escape(_owner(st.st_uid), err, name=False)
    about = f"{shown} is {stat.filemode(st.st_mode)[1:]}, owned by {owner}"
    doing = "deleting" if op == "delete" else "reading"
    if not _can(path, os.R_OK):
        return f"{doing} an array needs read permission on it: {about}"
    if op != "delete":
        return None
    dst = os.stat(parent)
    if dst.st_mode & stat.S_ISVTX \
            and os.geteuid() not in (0, st.st_uid, dst.st_uid):
        return (f"{shown_dir} is sticky: only the owner of {shown} "
                f"({owner}) or root can delete it")
    if not _can(parent, os.W_OK | os.X_OK):
        return f"deleting needs write permission on the directory {shown_dir}"
    return None


def _hint(exc, name, op):
    """A hint for the usual mistake behind exc (of op 'info', 'delete' or
    'list' on name), escaped for stderr, or None."""
    err = sys.stderr
    try:
        if isinstance(exc, PermissionError):
            return _permission_hint(exc, name, op)
        if not isinstance(name, str) or "://" in name:
            return None
        if op == "list" and isinstance(exc, NotADirectoryError) \
                and os.path.isfile(name):
            return ("to describe one array, use: sharedarray info "
                    f"file://{_escape(name, err)}")
        if op != "list" and isinstance(exc, (ValueError, FileNotFoundError)) \
                and os.path.isfile(name):
            # A name without scheme:// is a shm name, looked up in /dev/shm
            # (and never holds a '/'); the user meant the file.
            return (f"did you mean file://{_escape(name, err)}? A name "
                    f"without file:// is a shm name, in {SHM_DIR}")
    except Exception:  # noqa: BLE001 - a hint must never fail the command
        return None
    return None


def _error(exc, name=None, hint=None):
    """Report exc on stderr, escaped.  The file name of an OSError is a name
    (escaped as one); other messages come from the C core, which already
    quotes names with repr, so only what is still unprintable is escaped.
    An exception that does not mention name (e.g. a UnicodeError) gets it
    prefixed.  hint (already escaped) follows on the same line."""
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
    if hint:
        what = f"{what} ({hint})"
    err.write(f"sharedarray: {what}\n")


# ----------------------------------------------------------------------
# Arguments

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _duration(text):
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]*)?)([smhdw])", text)
    if not m:
        raise argparse.ArgumentTypeError(
            f"invalid age {text!r}: give a number and a unit (s, m, h, d, "
            "w), e.g. 90s, 10m, 2h, 3d")
    return float(m[1]) * _UNITS[m[2]]


def _user(text):
    try:
        return pwd.getpwnam(text).pw_uid
    except (KeyError, ValueError):
        pass
    if text.isascii() and text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"unknown user {text!r}")


def _shm_pattern(text):
    """A pattern for shm names: 'shm://' and leading slashes are dropped,
    as in names; anything else with a '/' cannot match a name."""
    text = text.removeprefix("shm://")
    text = text.lstrip("/")
    if "/" in text or not text:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a pattern for names in {SHM_DIR} (prune only "
            "looks there)")
    return text


def _directory(text):
    text = text.removeprefix("file://")
    if not text:
        raise argparse.ArgumentTypeError("file:// needs a directory")
    return text


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse quotes some arguments with repr but not all ("unrecognized
        # arguments: ..." is raw): escape what the user typed.
        super().error(_escape(message, sys.stderr, name=False))


def _parser():
    p = _Parser(
        prog="sharedarray",
        description="List, inspect, delete and prune SharedArray arrays. "
        "Names are shm://NAME, file://PATH or a bare NAME (= shm://NAME).",
        epilog="Exit status: 0 success, 1 if any operation failed, 2 for a "
        "usage error. Non-printable characters in names are shown escaped "
        r"(\n, \x1b, \xff for a byte that is not UTF-8, \\ for a backslash); "
        "--json output is exact.",
    )
    p.add_argument("--version", action="version",
                   version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ls = sub.add_parser(
        "list", help="list the arrays in POSIX shared memory or a directory",
        description=f"List the arrays in POSIX shared memory ({SHM_DIR}), "
        "or those in DIR (file:// arrays). Other files there are skipped and "
        "counted. MAPS is the number of processes that map each array, as "
        f"far as {PROC} shows it.")
    ls.add_argument("directory", nargs="?", metavar="DIR", type=_directory,
                    help="a directory of file:// arrays (DIR or file://DIR)")
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

    pr = sub.add_parser(
        "prune", help="delete leftover arrays that no process maps",
        description=f"Delete the arrays in {SHM_DIR} of one user (you, "
        "unless --user says otherwise) that no process maps, as far as "
        f"{PROC} shows. Only prints what it would delete unless --yes is "
        "given. If the mappings of some process cannot be read (another "
        "user's, unless you are root), nothing is deleted.")
    pr.add_argument("patterns", nargs="*", metavar="PATTERN",
                    type=_shm_pattern,
                    help="only names matching one of these shell patterns "
                    "(e.g. 'job-*')")
    pr.add_argument("--older-than", metavar="AGE", type=_duration,
                    help="only arrays last modified longer ago than AGE "
                    "(e.g. 90s, 10m, 2h, 3d, 1w)")
    pr.add_argument("--user", metavar="USER", type=_user,
                    help="the arrays of USER (a name or a uid) instead of "
                    "yours; arrays of other users are never touched")
    pr.add_argument("--yes", action="store_true",
                    help="delete them (without it, only print them)")
    pr.set_defaults(func=_cmd_prune)
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
    except NotImplementedError as exc:
        # list and prune in a build with the portable backend (no /dev/shm
        # to read): a usage matter on this system, not a failed operation.
        print(f"sharedarray {args.command}: {exc}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
