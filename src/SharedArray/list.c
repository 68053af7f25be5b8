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
#include <pthread.h>
#include <stdlib.h>
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
 * The entry for an opened directory entry p (closed here): a new reference
 * to an ArrayDesc, Py_None to skip the file, NULL on error.  Remembers what
 * it found in seen (key -> (entry, seen_file bytes)) when the file has a
 * birth time.
 */
static PyObject *
entry_of_probe(sa_state *st, const char *fname, PyObject *key, PyObject *seen,
               uid_t euid, sa_probe *p)
{
    PyObject *entry = Py_None, *memo, *snap;
    seen_file now;

    Py_INCREF(entry);
    if (p->regular && (p->kind == SA_SEG_NPY || p->kind == SA_SEG_LEGACY)) {
        Py_DECREF(entry);
        entry = make_entry(st, fname, p);
    }
    if (entry != NULL && p->regular && p->id.has_btime) {
        seen_of(&now, &p->st, &p->id, euid);
        snap = PyBytes_FromStringAndSize((const char *)&now, sizeof(now));
        memo = snap != NULL ? PyTuple_Pack(2, entry, snap) : NULL;
        if (memo == NULL || PyDict_SetItem(seen, key, memo) < 0) {
            Py_CLEAR(entry);
        }
        Py_XDECREF(memo);
        Py_XDECREF(snap);
    }
    sa_probe_close(p);
    return entry;
}

/* The same for a file not opened yet (signal handlers run on EINTR). */
static PyObject *
list_one(sa_state *st, int dirfd, const char *fname, PyObject *key,
         PyObject *seen, uid_t euid)
{
    sa_probe p;
    int err = sa_probe_py(&p, dirfd, fname, 0, 1);

    if (err < 0) {
        return NULL; /* a signal handler raised */
    }
    if (err != 0) {
        Py_RETURN_NONE; /* vanished, or not ours to read */
    }
    return entry_of_probe(st, fname, key, seen, euid, &p);
}

/* One directory entry on its way through list(). */
typedef struct {
    char *name;       /* malloc'd */
    PyObject *key;    /* bytes of name */
    PyObject *memo;   /* borrowed from the last call's dict, or NULL */
    const char *snap; /* the memo's seen_file */
    int hit;          /* the memo still holds */
    int err;          /* when probed: sa_probe_open's result */
    sa_probe *slot;   /* where to probe it */
    sa_probe *probe;  /* slot, while it is open */
} item;

typedef struct {
    item *items;
    size_t first, count, step;
    int dirfd;
    uid_t euid;
} batch;

/*
 * Without the GIL: statx for known files (a memo that still holds is a
 * hit), open and read the header of the others.  Pure C on each item's
 * own fields, so two threads can share the list.
 */
static void
probe_batch(batch *b)
{
    struct stat sb;
    sa_ident id;
    seen_file now;
    size_t i;

    for (i = b->first; i < b->count; i += b->step) {
        item *it = &b->items[i];

        if (it->memo != NULL &&
            sa_statat(b->dirfd, it->name, AT_SYMLINK_NOFOLLOW, &sb, &id) ==
                0) {
            seen_of(&now, &sb, &id, b->euid);
            if (memcmp(it->snap, &now, sizeof(now)) == 0) {
                it->hit = 1;
                continue;
            }
        }
        it->err = sa_probe_open(it->slot, b->dirfd, it->name, 0, 1);
        if (it->err == 0) {
            it->probe = it->slot;
        }
    }
}

static void *
probe_thread(void *arg)
{
    probe_batch((batch *)arg);
    return NULL;
}

/* Below this many files a second thread costs more than it saves. */
#define SA_LIST_THREADED_MIN 256

/* Probes every item, on two threads when there are many. */
static void
probe_all(item *items, size_t n, int dirfd, uid_t euid)
{
    batch even = {items, 0, n, 1, dirfd, euid}, odd;
    pthread_t helper;
    int threaded = 0;

    if (n >= SA_LIST_THREADED_MIN) {
        even.step = 2;
        odd = even;
        odd.first = 1;
        threaded = pthread_create(&helper, NULL, probe_thread, &odd) == 0;
        if (!threaded) {
            even.step = 1;
        }
    }
    probe_batch(&even);
    if (threaded) {
        pthread_join(helper, NULL);
    }
}

/* Reads the directory into items: names, keys and last call's memos. */
static int
read_dir(DIR *dir, PyObject *before, item **out, size_t *out_n)
{
    item *items = NULL, *grown;
    size_t n = 0, cap = 0;
    struct dirent *de;
    PyObject *memo;

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
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            grown = realloc(items, cap * sizeof(*items));
            if (grown == NULL) {
                PyErr_NoMemory();
                goto error;
            }
            items = grown;
        }
        memset(&items[n], 0, sizeof(items[n]));
        items[n].name = strdup(de->d_name);
        items[n].key = PyBytes_FromString(de->d_name);
        n++;
        if (items[n - 1].name == NULL || items[n - 1].key == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_NoMemory();
            }
            goto error;
        }
        memo = PyDict_GetItemWithError(before, items[n - 1].key);
        if (memo == NULL && PyErr_Occurred()) {
            goto error;
        }
        if (memo != NULL) {
            items[n - 1].memo = memo;
            items[n - 1].snap = PyBytes_AS_STRING(PyTuple_GET_ITEM(memo, 1));
        }
    }
    *out = items;
    *out_n = n;
    return 0;
error:
    *out = items;
    *out_n = n;
    return -1;
}

static void
free_items(item *items, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(items[i].name);
        Py_XDECREF(items[i].key);
        if (items[i].probe != NULL) {
            sa_probe_close(items[i].probe);
        }
    }
    free(items);
}

/* Files probed at a time: bounds the descriptors open and the memory. */
#define SA_LIST_CHUNK 512

PyObject *
sa_list(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
        PyObject *kwnames)
{
    sa_state *st = sa_get_state(module);
    PyObject *result = NULL, *seen = NULL, *before, *entry;
    DIR *dir = NULL;
    item *items = NULL;
    sa_probe *pool = NULL;
    size_t n = 0, i;
    uid_t euid = geteuid();
    int gc_was_on = 0;

    if (sa_parse_args("list", args, nargs, kwnames, NULL, 0, 0, NULL) < 0) {
        return NULL;
    }
    /* Our own reference: another thread's list() may replace it while we
     * probe without the GIL, and the memos we hold must stay alive. */
    before = st->list_seen;
    Py_INCREF(before);
    result = PyList_New(0);
    seen = PyDict_New();
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
    if (read_dir(dir, before, &items, &n) < 0) {
        goto error;
    }
    pool = malloc(SA_LIST_CHUNK * sizeof(*pool));
    if (pool == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    for (i = 0; i < n; i++) {
        item *it = &items[i];

        if (i % SA_LIST_CHUNK == 0) {
            size_t m = n - i < SA_LIST_CHUNK ? n - i : SA_LIST_CHUNK, j;

            for (j = 0; j < m; j++) {
                items[i + j].slot = &pool[j];
            }
            Py_BEGIN_ALLOW_THREADS
                probe_all(items + i, m, dirfd(dir), euid);
            Py_END_ALLOW_THREADS
        }

        if (it->hit) {
            /* Known from the last call, and unchanged. */
            if (PyDict_SetItem(seen, it->key, it->memo) < 0) {
                goto error;
            }
            entry = PyTuple_GET_ITEM(it->memo, 0);
            Py_INCREF(entry);
        }
        else if (it->err == EINTR) {
            entry = list_one(st, dirfd(dir), it->name, it->key, seen, euid);
        }
        else if (it->err != 0) {
            continue; /* vanished, or not ours to read */
        }
        else {
            entry =
                entry_of_probe(st, it->name, it->key, seen, euid, it->probe);
            it->probe = NULL; /* closed */
        }
        if (entry == NULL) {
            goto error;
        }
        if (entry != Py_None && PyList_Append(result, entry) < 0) {
            Py_DECREF(entry);
            goto error;
        }
        Py_DECREF(entry);
    }
    /* What is gone from the directory is forgotten. */
    Py_SETREF(st->list_seen, seen);
    seen = NULL;
    goto done;
error:
    Py_CLEAR(result);
done:
    free_items(items, n);
    free(pool);
    if (dir != NULL) {
        closedir(dir);
    }
    if (gc_was_on) {
        PyGC_Enable();
    }
    Py_DECREF(before);
    Py_XDECREF(seen);
    return result;
}
