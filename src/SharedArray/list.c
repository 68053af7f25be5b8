/*
 * list()
 *
 * Linux keeps POSIX shared memory as files in a tmpfs, so listing is a scan
 * of that directory: each entry is opened and its header read with pread
 * (nothing is mapped), and remembered until its statx changes.  Files that
 * are not valid arrays, or that we may not read, are skipped.
 */
#include "sharedarray.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* An entry for a directory entry, Py_None to skip it, NULL on error. */
static PyObject *
make_entry(sa_state *st, const char *fname, sa_probe *p)
{
    PyObject *name, *entry;

    name = PyUnicode_DecodeFSDefault(fname);
    if (name == NULL) {
        return NULL;
    }
    entry = sa_entry_new(st, name, p);
    Py_DECREF(name);
    if (entry == NULL && !PyErr_ExceptionMatches(PyExc_MemoryError)) {
        /* Not a valid array: skip it. */
        PyErr_Clear();
        entry = Py_None;
        Py_INCREF(entry);
    }
    return entry;
}

/*
 * What list() remembers of a file between calls: everything its entry
 * shows or depends on.  A file whose statx still gives all of this keeps
 * its entry (or stays skipped) without being opened and read again.
 */
typedef struct {
    uint64_t dev, ino, size;
    int64_t btime_sec, mtime_sec;
    uint32_t btime_nsec, mtime_nsec;
    uint32_t mode, uid, gid, euid;
} seen_file;

static void
seen_of(seen_file *f, const struct stat *st, const sa_ident *id, uid_t euid)
{
    memset(f, 0, sizeof(*f)); /* padding too: compared with memcmp */
    f->dev = id->dev;
    f->ino = id->ino;
    f->size = (uint64_t)st->st_size;
    f->btime_sec = id->btime_sec;
    f->btime_nsec = id->btime_nsec;
    f->mtime_sec = (int64_t)st->st_mtim.tv_sec;
    f->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
    f->mode = st->st_mode;
    f->uid = st->st_uid;
    f->gid = st->st_gid;
    /* Who looked: another user may not be allowed to read it. */
    f->euid = euid;
}

/*
 * The entry for one directory entry: a new reference to an ArrayDesc,
 * Py_None to skip the file, NULL on error.  Remembers what it found in
 * seen (key -> (entry, seen_file bytes)) when the file has a birth time.
 */
static PyObject *
list_one(sa_state *st, int dirfd, const char *fname, PyObject *key,
         PyObject *seen, uid_t euid)
{
    PyObject *entry = Py_None, *memo, *snap;
    seen_file now;
    sa_probe p;
    int err;

    err = sa_probe_py(&p, dirfd, fname, 0, 1);
    if (err < 0) {
        return NULL; /* a signal handler raised */
    }
    if (err != 0) {
        Py_RETURN_NONE; /* vanished, or not ours to read */
    }
    Py_INCREF(entry);
    if (p.regular && (p.kind == SA_SEG_NPY || p.kind == SA_SEG_LEGACY)) {
        Py_DECREF(entry);
        entry = make_entry(st, fname, &p);
    }
    if (entry != NULL && p.regular && p.id.has_btime) {
        seen_of(&now, &p.st, &p.id, euid);
        snap = PyBytes_FromStringAndSize((const char *)&now, sizeof(now));
        memo = snap != NULL ? PyTuple_Pack(2, entry, snap) : NULL;
        if (memo == NULL || PyDict_SetItem(seen, key, memo) < 0) {
            Py_CLEAR(entry);
        }
        Py_XDECREF(memo);
        Py_XDECREF(snap);
    }
    sa_probe_close(&p);
    return entry;
}

PyObject *
sa_list(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
        PyObject *kwnames)
{
    sa_state *st = sa_get_state(module);
    PyObject *result = NULL, *seen = NULL, *key = NULL, *entry, *memo;
    PyObject *before;
    DIR *dir = NULL;
    struct dirent *de;
    struct stat sb;
    sa_ident id;
    seen_file now;
    uid_t euid = geteuid();
    int err, gc_was_on = 0;

    if (sa_parse_args("list", args, nargs, kwnames, NULL, 0, 0, NULL) < 0) {
        return NULL;
    }
    result = PyList_New(0);
    seen = PyDict_New();
    /* Our own reference: another thread's list() may replace it while we
     * wait for a statx, and the memos we hold must stay alive. */
    before = st->list_seen;
    Py_INCREF(before);
    if (result == NULL || seen == NULL) {
        goto error;
    }
    /* Thousands of small tuples would set off the cyclic collector again
     * and again (full collections in a young process); they hold no
     * cycles.  Turned back on below, whatever happens. */
    gc_was_on = PyGC_Disable();
    dir = opendir(SA_SHM_DIR);
    if (dir == NULL) {
        PyErr_SetFromErrnoWithFilename(PyExc_OSError, SA_SHM_DIR);
        goto error;
    }
    for (;;) {
        errno = 0;
        de = readdir(dir);
        if (de == NULL) {
            if (errno != 0) {
                PyErr_SetFromErrnoWithFilename(PyExc_OSError, SA_SHM_DIR);
                goto error;
            }
            break;
        }
        if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN) {
            continue;
        }
        key = PyBytes_FromString(de->d_name);
        if (key == NULL) {
            goto error;
        }
        /* Known from the last call, and unchanged: one statx. */
        memo = PyDict_GetItemWithError(before, key);
        if (memo != NULL) {
            Py_BEGIN_ALLOW_THREADS
                err = sa_statat(dirfd(dir), de->d_name, AT_SYMLINK_NOFOLLOW,
                                &sb, &id);
            Py_END_ALLOW_THREADS
            if (err == 0) {
                seen_of(&now, &sb, &id, euid);
            }
            if (err == 0 &&
                memcmp(PyBytes_AS_STRING(PyTuple_GET_ITEM(memo, 1)), &now,
                       sizeof(now)) == 0) {
                if (PyDict_SetItem(seen, key, memo) < 0) {
                    goto error;
                }
                entry = PyTuple_GET_ITEM(memo, 0);
                Py_INCREF(entry);
            }
            else {
                memo = NULL;
            }
        }
        else if (PyErr_Occurred()) {
            goto error;
        }
        if (memo == NULL) {
            entry = list_one(st, dirfd(dir), de->d_name, key, seen, euid);
            if (entry == NULL) {
                goto error;
            }
        }
        Py_CLEAR(key);
        if (entry != Py_None && PyList_Append(result, entry) < 0) {
            Py_DECREF(entry);
            goto error;
        }
        Py_DECREF(entry);
    }
    /* What is gone from the directory is forgotten. */
    Py_SETREF(st->list_seen, seen);
    seen = NULL;
    Py_DECREF(before);
    closedir(dir);
    if (gc_was_on) {
        PyGC_Enable();
    }
    return result;
error:
    if (dir != NULL) {
        closedir(dir);
    }
    if (gc_was_on) {
        PyGC_Enable();
    }
    Py_DECREF(before);
    Py_XDECREF(key);
    Py_XDECREF(seen);
    Py_XDECREF(result);
    return NULL;
}
