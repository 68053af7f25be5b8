/*
 * The per-process mapping cache.  Programs attach the same few segments
 * over and over (each task of a pool, each frame of a pipeline); a repeated
 * attach of a name whose file is unchanged returns a new array over the
 * mapping this process already has, for one statx instead of open, pread,
 * mmap and a page fault per page touched.
 *
 * Two dicts, keyed by mode and path: strong holds mappings within the
 * budget (entries and bytes), least recently used first, and keeps them
 * mapped when no array uses them; weak indexes every other live mapping,
 * pinning nothing, so that views of one segment arriving in one process
 * share one mapping whatever the budget.  A hit must find the file under
 * the name to be the very file mapped (device, inode, birth time) with the
 * same size, type, permission bits and owner: a deleted, replaced,
 * truncated, chmod-ed or chown-ed segment is never served.  Files without
 * a birth time are not cached, since their inode numbers can be reused.
 */
#include "sharedarray.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

PyObject *
sa_cache_key(const sa_name *name, int writable)
{
    size_t n = strlen(name->path);
    PyObject *key = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n + 1);

    if (key != NULL) {
        /* Upper case for shm_open names, which are no file paths. */
        PyBytes_AS_STRING(key)[0] =
            name->shm_object ? (writable ? 'W' : 'R') : (writable ? 'w' : 'r');
        memcpy(PyBytes_AS_STRING(key) + 1, name->path, n);
    }
    return key;
}

static int
still_same(const sa_mapping *m, const struct stat *now, const sa_ident *id)
{
    /* Same credentials too: open(2) would judge permissions as before
     * (a forked child that dropped privileges must not inherit access). */
    return m->euid == geteuid() && m->egid == getegid() && id->has_btime &&
           m->id.has_btime && id->dev == m->id.dev && id->ino == m->id.ino &&
           id->btime_sec == m->id.btime_sec &&
           id->btime_nsec == m->id.btime_nsec &&
           (uint64_t)now->st_size == m->file_size && now->st_mode == m->mode &&
           now->st_uid == m->uid && now->st_gid == m->gid;
}

/* Drops key from strong (adjusting the byte count) and from weak. */
static void
drop(sa_state *st, PyObject *key)
{
    PyObject *m = PyDict_GetItemWithError(st->cache_strong, key);

    if (m != NULL) {
        st->cache_bytes -= ((sa_mapping *)m)->map_size;
        if (PyDict_DelItem(st->cache_strong, key) < 0) {
            PyErr_Clear();
        }
    }
    if (PyDict_DelItem(st->cache_weak, key) < 0) {
        PyErr_Clear();
    }
    PyErr_Clear();
}

/* Moves least recently used strong entries to the weak index until the
 * budget holds. */
static void
trim(sa_state *st)
{
    while (PyDict_GET_SIZE(st->cache_strong) > 0 &&
           (PyDict_GET_SIZE(st->cache_strong) > st->cache_max_entries ||
            st->cache_bytes > st->cache_max_bytes)) {
        Py_ssize_t pos = 0;
        PyObject *key, *m, *ref;

        if (!PyDict_Next(st->cache_strong, &pos, &key, &m)) {
            break;
        }
        Py_INCREF(key);
        Py_INCREF(m);
        st->cache_bytes -= ((sa_mapping *)m)->map_size;
        if (PyDict_DelItem(st->cache_strong, key) < 0) {
            PyErr_Clear();
        }
        ref = PyWeakref_NewRef(m, NULL);
        if (ref == NULL || PyDict_SetItem(st->cache_weak, key, ref) < 0) {
            PyErr_Clear();
        }
        Py_XDECREF(ref);
        Py_DECREF(key);
        Py_DECREF(m); /* may unmap it, if no array uses it */
    }
}

/* Makes m (mapped under key) the most recently used strong entry, if the
 * budget allows it at all; else indexes it weakly. */
static void
remember(sa_state *st, PyObject *key, PyObject *m)
{
    sa_mapping *map = (sa_mapping *)m;
    PyObject *ref;

    if (st->cache_max_entries > 0 && map->map_size <= st->cache_max_bytes) {
        /* Another thread may have put one under key meanwhile. */
        PyObject *old = PyDict_GetItemWithError(st->cache_strong, key);

        if (old != NULL) {
            st->cache_bytes -= ((sa_mapping *)old)->map_size;
        }
        PyErr_Clear();
        if (PyDict_SetItem(st->cache_strong, key, m) == 0) {
            st->cache_bytes += map->map_size;
            if (PyDict_DelItem(st->cache_weak, key) < 0) {
                PyErr_Clear();
            }
            trim(st);
            return;
        }
        PyErr_Clear();
    }
    ref = PyWeakref_NewRef(m, NULL);
    if (ref == NULL || PyDict_SetItem(st->cache_weak, key, ref) < 0) {
        PyErr_Clear();
    }
    Py_XDECREF(ref);
}

PyObject *
sa_cache_lookup(sa_state *st, PyObject *key, const sa_name *name)
{
    PyObject *m, *ref;
    struct stat now;
    sa_ident id;
    int err, strong = 1;

    if (st->cache_max_entries == 0) {
        return NULL;
    }
    m = PyDict_GetItemWithError(st->cache_strong, key);
    if (m == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        strong = 0;
        ref = PyDict_GetItemWithError(st->cache_weak, key);
        if (ref == NULL) {
            return NULL;
        }
        m = PyWeakref_GetObject(ref);
        if (m == NULL || m == Py_None) {
            PyErr_Clear();
            drop(st, key);
            return NULL;
        }
    }
    Py_INCREF(m);
    Py_BEGIN_ALLOW_THREADS
        err = sa_stat_path(name->path, name->shm_object,
                           sa_name_nofollow(name), &now, &id);
    Py_END_ALLOW_THREADS
    if (err != 0 || !still_same((sa_mapping *)m, &now, &id)) {
        drop(st, key);
        Py_DECREF(m);
        return NULL;
    }
    st->cache_hits++;
    /* Most recently used goes last (a weak one comes back if it fits). */
    if (strong) {
        /* (Unless another thread dropped it while we were in statx.) */
        if (PyDict_DelItem(st->cache_strong, key) == 0) {
            st->cache_bytes -= ((sa_mapping *)m)->map_size;
        }
        PyErr_Clear();
    }
    remember(st, key, m);
    return m;
}

/*
 * Every SA_CACHE_SWEEP_EVERY misses, lets go of the strong entries (of
 * SA_CACHE_SWEEP_MIN bytes or more) whose name no longer leads to the file
 * they map: segments deleted or replaced
 * by other processes are then not kept in memory by us until the budget
 * pushes them out.  A symlink on the way (file:// names) also counts as
 * gone: the next attach maps it again.
 */
static void
sweep(sa_state *st)
{
    PyObject *stale = PyList_New(0), *key, *m;
    Py_ssize_t pos = 0, i;
    struct stat now;
    sa_ident id;

    if (stale == NULL) {
        PyErr_Clear();
        return;
    }
    while (PyDict_Next(st->cache_strong, &pos, &key, &m)) {
        /* key: 'r' or 'w' (a file), 'R' or 'W' (a shm object), then the
         * path. */
        const char *path = PyBytes_AS_STRING(key) + 1;
        int shm_object = PyBytes_AS_STRING(key)[0] <= 'Z';

        /* Small mappings keep little memory alive: not worth a statx. */
        if (((sa_mapping *)m)->map_size < SA_CACHE_SWEEP_MIN) {
            continue;
        }
        if ((sa_stat_path(path, shm_object, 1, &now, &id) != 0 ||
             !still_same((sa_mapping *)m, &now, &id)) &&
            PyList_Append(stale, key) < 0) {
            PyErr_Clear();
            break;
        }
    }
    for (i = 0; i < PyList_GET_SIZE(stale); i++) {
        drop(st, PyList_GET_ITEM(stale, i));
    }
    Py_DECREF(stale);
}

void
sa_cache_put(sa_state *st, PyObject *key, PyObject *mapping)
{
    sa_mapping *m = (sa_mapping *)mapping;

    if (++st->cache_misses % SA_CACHE_SWEEP_EVERY == 0) {
        sweep(st);
    }
    if (!m->id.has_btime || st->cache_max_entries == 0) {
        return;
    }
    drop(st, key);
    m->euid = geteuid();
    m->egid = getegid();
    Py_INCREF(key);
    Py_XSETREF(m->cache_key, key);
    remember(st, key, mapping);
}

void
sa_cache_forget(sa_state *st, const sa_name *name)
{
    PyObject *key;
    int w;

    for (w = 0; w < 2; w++) {
        key = sa_cache_key(name, w);
        if (key == NULL) {
            PyErr_Clear();
            return;
        }
        drop(st, key);
        Py_DECREF(key);
    }
}

void
sa_cache_dead(sa_state *st, PyObject *key)
{
    PyObject *type, *value, *tb, *ref, *obj;

    if (st == NULL || st->cache_weak == NULL) {
        return; /* the module is being torn down */
    }
    PyErr_Fetch(&type, &value, &tb);
    ref = PyDict_GetItemWithError(st->cache_weak, key);
    /* Only our own dead entry: the key may map a newer mapping by now. */
    if (ref != NULL &&
        ((obj = PyWeakref_GetObject(ref)) == NULL || obj == Py_None)) {
        PyDict_DelItem(st->cache_weak, key);
    }
    PyErr_Clear();
    PyErr_Restore(type, value, tb);
}

PyObject *
sa_cache_info(PyObject *module, PyObject *Py_UNUSED(args))
{
    sa_state *st = sa_get_state(module);

    return Py_BuildValue(
        "(KKnKnK)", (unsigned long long)st->cache_hits,
        (unsigned long long)st->cache_misses,
        PyDict_GET_SIZE(st->cache_strong), (unsigned long long)st->cache_bytes,
        st->cache_max_entries, (unsigned long long)st->cache_max_bytes);
}

PyObject *
sa_cache_clear(PyObject *module, PyObject *Py_UNUSED(args))
{
    sa_state *st = sa_get_state(module);

    PyDict_Clear(st->cache_strong);
    PyDict_Clear(st->cache_weak);
    st->cache_bytes = 0;
    Py_RETURN_NONE;
}

PyObject *
sa_cache_limits(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames)
{
    static const char *const names[] = {"max_entries", "max_bytes"};
    sa_state *st = sa_get_state(module);
    PyObject *a[2], *entries, *bytes;
    Py_ssize_t n = st->cache_max_entries;
    unsigned long long b = st->cache_max_bytes;

    if (sa_parse_args("cache_limits", args, nargs, kwnames, names, 2, 0, a) <
        0) {
        return NULL;
    }
    entries = a[0] != NULL ? a[0] : Py_None;
    bytes = a[1] != NULL ? a[1] : Py_None;
    if (entries != Py_None) {
        if (!PyLong_Check(entries) || PyBool_Check(entries)) {
            return PyErr_Format(PyExc_TypeError,
                                "max_entries must be an int or None, not "
                                "%.100s",
                                Py_TYPE(entries)->tp_name);
        }
        n = PyLong_AsSsize_t(entries);
        if (n == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (n < 0) {
            return PyErr_Format(PyExc_ValueError,
                                "max_entries must be >= 0, not %zd", n);
        }
    }
    if (bytes != Py_None) {
        if (!PyLong_Check(bytes) || PyBool_Check(bytes)) {
            return PyErr_Format(PyExc_TypeError,
                                "max_bytes must be an int or None, not %.100s",
                                Py_TYPE(bytes)->tp_name);
        }
        PyObject *zero = PyLong_FromLong(0);
        int negative;

        if (zero == NULL) {
            return NULL;
        }
        negative = PyObject_RichCompareBool(bytes, zero, Py_LT);
        Py_DECREF(zero);
        if (negative != 0) {
            return negative < 0
                       ? NULL
                       : PyErr_Format(PyExc_ValueError,
                                      "max_bytes must be >= 0, not %R", bytes);
        }
        b = PyLong_AsUnsignedLongLong(bytes);
        if (b == (unsigned long long)-1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    st->cache_max_entries = n;
    st->cache_max_bytes = b;
    trim(st);
    if (n == 0) {
        /* Disabled: live mappings are not shared by later attaches. */
        PyDict_Clear(st->cache_weak);
    }
    return Py_BuildValue("(nK)", st->cache_max_entries,
                         (unsigned long long)st->cache_max_bytes);
}
