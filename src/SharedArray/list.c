/*
 * list()
 *
 * Linux keeps POSIX shared memory as files in a tmpfs, so listing is a scan
 * of that directory: each entry is opened and its header read with pread
 * (nothing is mapped), and remembered until its statx changes.  Files that
 * are not valid arrays, or that we may not read, are skipped.
 */
#include "sharedarray.h"

#if SA_HAVE_SHM_DIR

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
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
    f->mtime_sec = (int64_t)SA_MTIME_SEC(st);
    f->mtime_nsec = (uint32_t)SA_MTIME_NSEC(st);
    f->mode = st->st_mode;
    f->uid = st->st_uid;
    f->gid = st->st_gid;
    /* Who looked: another user may not be allowed to read it. */
    f->euid = euid;
}

/*
 * What list() remembers between calls, in module state: for each file it
 * saw (in directory order), its name, its seen_file, and its entry
 * (Py_None for a file skipped).  A hash index by name is built only when
 * a call finds the directory's order changed.
 */
typedef struct {
    char *name; /* malloc'd */
    size_t len;
    seen_file snap;
    PyObject *entry;
} seen_rec;

struct sa_seen {
    seen_rec *recs;
    size_t n, cap;
    size_t *index; /* rec + 1 per slot, 0 for none; mask + 1 slots */
    size_t mask;
    uint64_t k0, k1; /* the index's hash key */
};

void
sa_seen_free(sa_seen *t)
{
    size_t i;

    if (t == NULL) {
        return;
    }
    for (i = 0; i < t->n; i++) {
        free(t->recs[i].name);
        Py_DECREF(t->recs[i].entry);
    }
    free(t->recs);
    free(t->index);
    free(t);
}

int
sa_seen_traverse(sa_seen *t, visitproc visit, void *arg)
{
    size_t i;

    for (i = 0; t != NULL && i < t->n; i++) {
        Py_VISIT(t->recs[i].entry);
    }
    return 0;
}

/* A table for up to cap files, or NULL (no exception). */
static sa_seen *
seen_new(size_t cap)
{
    sa_seen *t = calloc(1, sizeof(*t));

    if (t == NULL) {
        return NULL;
    }
    t->cap = cap;
    t->recs = cap ? malloc(cap * sizeof(*t->recs)) : NULL;
    if (cap && t->recs == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                              \
    do {                                                                      \
        v0 += v1;                                                             \
        v1 = ROTL(v1, 13);                                                    \
        v1 ^= v0;                                                             \
        v0 = ROTL(v0, 32);                                                    \
        v2 += v3;                                                             \
        v3 = ROTL(v3, 16);                                                    \
        v3 ^= v2;                                                             \
        v0 += v3;                                                             \
        v3 = ROTL(v3, 21);                                                    \
        v3 ^= v0;                                                             \
        v2 += v1;                                                             \
        v1 = ROTL(v1, 17);                                                    \
        v1 ^= v2;                                                             \
        v2 = ROTL(v2, 32);                                                    \
    } while (0)

/*
 * SipHash-1-3 of a file name, keyed per process: names are chosen by
 * whoever creates files in the directory, who must not be able to make
 * the index slow.
 */
static uint64_t
name_hash(const sa_seen *t, const char *s, size_t len)
{
    uint64_t v0 = t->k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = t->k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = t->k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = t->k1 ^ 0x7465646279746573ULL;
    uint64_t m, b = (uint64_t)len << 56;
    size_t i, rest = len & 7;

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&m, s + i, 8);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (m = 0; rest > 0; rest--) {
        m |= (uint64_t)(unsigned char)s[i + rest - 1] << (8 * (rest - 1));
    }
    b |= m;
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/*
 * The index's key, from Python's secret hash key (so PYTHONHASHSEED
 * decides here too): the hashes of two strings.  -1 on failure.
 */
static int
hash_key(sa_seen *t)
{
    PyObject *a = PyBytes_FromString("SharedArray.list k0");
    PyObject *b = PyBytes_FromString("SharedArray.list k1");
    Py_hash_t ha = a != NULL ? PyObject_Hash(a) : -1;
    Py_hash_t hb = b != NULL ? PyObject_Hash(b) : -1;

    Py_XDECREF(a);
    Py_XDECREF(b);
    if (ha == -1 || hb == -1) {
        PyErr_Clear();
        return -1;
    }
    t->k0 = (uint64_t)ha;
    t->k1 = (uint64_t)hb;
    return 0;
}

/* Indexes t by name; -1 when out of memory (then lookups just miss). */
static int
seen_index(sa_seen *t)
{
    size_t slots = 16, i, h;

    while (slots < 2 * t->n) {
        slots *= 2;
    }
    t->index = calloc(slots, sizeof(*t->index));
    if (t->index == NULL) {
        return -1;
    }
    t->mask = slots - 1;
    if (hash_key(t) < 0) {
        free(t->index);
        t->index = NULL;
        return -1;
    }
    for (i = 0; i < t->n; i++) {
        h = (size_t)name_hash(t, t->recs[i].name, t->recs[i].len);
        while (t->index[h & t->mask] != 0) {
            h++;
        }
        t->index[h & t->mask] = i + 1;
    }
    return 0;
}

static int
rec_is(const seen_rec *r, const char *name, size_t len)
{
    return r->len == len && memcmp(r->name, name, len) == 0;
}

/*
 * The record of name in t, or NULL.  *cursor is where the last one was
 * found plus one: a directory read again usually comes in the same order,
 * so the next record is tried first, without hashing.
 */
static const seen_rec *
seen_find(sa_seen *t, const char *name, size_t len, size_t *cursor)
{
    size_t h, k;

    if (t == NULL || t->n == 0) {
        return NULL;
    }
    if (*cursor < t->n && rec_is(&t->recs[*cursor], name, len)) {
        return &t->recs[(*cursor)++];
    }
    if (t->index == NULL && seen_index(t) < 0) {
        return NULL;
    }
    h = (size_t)name_hash(t, name, len);
    while ((k = t->index[h & t->mask]) != 0) {
        if (rec_is(&t->recs[k - 1], name, len)) {
            *cursor = k;
            return &t->recs[k - 1];
        }
        h++;
    }
    return NULL;
}

/* Remembers what was seen of a file; name's ownership passes to t. */
static void
seen_add(sa_seen *t, char **name, size_t len, const seen_file *snap,
         PyObject *entry)
{
    seen_rec *r;

    if (t->n == t->cap) {
        return; /* only a call's own files, which it counted */
    }
    r = &t->recs[t->n++];
    r->name = *name;
    *name = NULL;
    r->len = len;
    r->snap = *snap;
    Py_INCREF(entry);
    r->entry = entry;
}

/*
 * The entry for an opened directory entry p (closed here): a new reference
 * to an ArrayDesc, Py_None to skip the file, NULL on error.  Remembers what
 * it found in seen when the file has a birth time.
 */
static PyObject *
entry_of_probe(sa_state *st, char **fname, size_t len, sa_seen *seen,
               uid_t euid, sa_probe *p)
{
    PyObject *entry = Py_None;
    seen_file now;

    Py_INCREF(entry);
    if (p->regular && (p->kind == SA_SEG_NPY || p->kind == SA_SEG_LEGACY)) {
        Py_DECREF(entry);
        entry = make_entry(st, *fname, p);
    }
    if (entry != NULL && p->regular && p->id.has_btime) {
        seen_of(&now, &p->st, &p->id, euid);
        seen_add(seen, fname, len, &now, entry);
    }
    sa_probe_close(p);
    return entry;
}

/* The same for a file not opened yet (signal handlers run on EINTR). */
static PyObject *
list_one(sa_state *st, int dirfd, char **fname, size_t len, sa_seen *seen,
         uid_t euid)
{
    sa_probe p;
    int err = sa_probe_py(&p, dirfd, *fname, 0, 1);

    if (err < 0) {
        return NULL; /* a signal handler raised */
    }
    if (err != 0) {
        Py_RETURN_NONE; /* vanished, or not ours to read */
    }
    return entry_of_probe(st, fname, len, seen, euid, &p);
}

/* One directory entry on its way through list(). */
typedef struct {
    char *name;           /* malloc'd, until the new table takes it */
    size_t len;           /* of name */
    const seen_rec *memo; /* in the last call's table, or NULL */
    /* Set by the thread that probes it, before done: */
    int hit;         /* the memo still holds */
    int err;         /* when probed: sa_probe_open's result */
    int again;       /* probed, but its entry must probe it again */
    sa_probe *probe; /* its slot, while that holds the probe */
    atomic_int done; /* probed: the fields above may be read */
} item;

/*
 * The items are kept in blocks that never move, so that the helper can
 * probe the first while the main thread still reads the directory and
 * adds more: block b holds SA_LIST_BLOCK0 << b of them.
 */
#define SA_LIST_BLOCK0 256
#define SA_LIST_BLOCKS 24 /* over 4e9 items, and no shift too wide */

/* Where item i is: its block and its place in it. */
static size_t
item_place(size_t i, size_t *off)
{
    size_t q = i / SA_LIST_BLOCK0 + 1, b = 0;

    while (q > 1) {
        q >>= 1;
        b++;
    }
    *off = i - SA_LIST_BLOCK0 * (((size_t)1 << b) - 1);
    return b;
}

/*
 * Files probed whose entries are not built yet, at most: item i probes
 * into slot i % SA_LIST_SLOTS, free again once entry i - SA_LIST_SLOTS is
 * built.  Room for what the helper probes while the directory is read.
 */
#define SA_LIST_SLOTS 1024

/* A helper out of slots sleeps until this many more are free (a wakeup
 * per entry would cost more than the entries). */
#define SA_LIST_WAKE 32

/* Descriptors that probed files keep open until their entries are built,
 * at most: a file that would need one more is probed again then. */
#define SA_LIST_FDS 64

/*
 * The items, probed in order by whichever thread claims each first: the
 * main thread, which reads the directory, then builds the entries in order
 * and probes when the next one is not ready, and a helper thread that only
 * probes, from the time the first items are read.
 */
typedef struct {
    item *blocks[SA_LIST_BLOCKS]; /* each written before avail covers it */
    sa_probe *slots;              /* SA_LIST_SLOTS of them */
    atomic_size_t avail;          /* items read so far (and complete) */
    atomic_int all_read;          /* avail is final */
    atomic_size_t next;           /* the first item no thread has claimed */
    atomic_size_t built;          /* entries the main thread is done with */
    atomic_int fds;               /* descriptors that slots hold */
    atomic_int waiting; /* the helper sleeps until built reaches wake */
    atomic_size_t wake;
    atomic_int stop; /* list() is over: the helper probes no more */
    pthread_mutex_t lock;
    pthread_cond_t moved;
    int dirfd;
    uid_t euid;
    /* The main thread's alone: */
    pthread_t helper;
    int threaded;
} work;

static item *
item_at(const work *w, size_t i)
{
    size_t off, b = item_place(i, &off);

    return &w->blocks[b][off];
}

/*
 * Whether an opened .npy file's descriptor is still needed once probed:
 * only when sa_segment_layout will look for a 3.x trailer, that is when
 * the data size the header gives does not account for the file.  For a
 * plain descr the size is known here already (layout refuses the file if
 * NumPy's itemsize differs); anything else keeps its descriptor.
 */
static int
needs_fd(const sa_probe *p)
{
    const sa_header *h = &p->hdr;
    sa_simple_descr sd;
    uint64_t nbytes, size = (uint64_t)p->st.st_size;

    if (!p->regular || p->kind != SA_SEG_NPY) {
        return 0;
    }
    if (h->body == NULL ||
        sa_descr_parse_simple(h->body, h->body_len, &sd) != 0 ||
        sa_header_nbytes(h->dims, h->ndim, sd.itemsize, (uint64_t)NPY_MAX_INTP,
                         &nbytes) != 0) {
        return 1;
    }
    return size != h->data_offset + nbytes &&
           size != h->data_offset + nbytes + 1;
}

/*
 * Without the GIL: statx for a known file (a memo that still holds is a
 * hit), else open it and read its header; the descriptor is closed at
 * once unless the entry will need it and few are held.  Pure C on the
 * item's own fields.
 */
static void
probe_item(work *w, size_t i)
{
    item *it = item_at(w, i);
    sa_probe *slot = &w->slots[i % SA_LIST_SLOTS];
    struct stat sb;
    sa_ident id;
    seen_file now;

    if (it->memo != NULL &&
        sa_statat(w->dirfd, it->name, AT_SYMLINK_NOFOLLOW, &sb, &id) == 0) {
        seen_of(&now, &sb, &id, w->euid);
        if (memcmp(&it->memo->snap, &now, sizeof(now)) == 0) {
            it->hit = 1;
            goto done;
        }
    }
    it->err = sa_probe_open(slot, w->dirfd, it->name, 0, 1);
    if (it->err != 0) {
        goto done;
    }
    if (!needs_fd(slot)) {
        close(slot->fd);
        slot->fd = -1;
    }
    else if (atomic_fetch_add(&w->fds, 1) >= SA_LIST_FDS) {
        atomic_fetch_sub(&w->fds, 1);
        sa_probe_close(slot);
        it->again = 1;
        goto done;
    }
    it->probe = slot;
done:
    atomic_store_explicit(&it->done, 1, memory_order_release);
}

/* The helper: claims and probes items until none are left. */
static void *
probe_thread(void *arg)
{
    work *w = (work *)arg;
    size_t i;
    int all_read;

    for (;;) {
        i = atomic_fetch_add(&w->next, 1);
        /* Read from the directory yet?  Seldom not: reading is faster. */
        for (;;) {
            all_read = atomic_load(&w->all_read);
            if (i < atomic_load_explicit(&w->avail, memory_order_acquire)) {
                break;
            }
            if (all_read || atomic_load(&w->stop)) {
                return NULL;
            }
            sched_yield();
        }
        /* Its slot is free once entry i - SA_LIST_SLOTS is built. */
        if (i >= atomic_load(&w->built) + SA_LIST_SLOTS) {
            pthread_mutex_lock(&w->lock);
            atomic_store(&w->wake, i + 1 - SA_LIST_SLOTS + SA_LIST_WAKE);
            atomic_store(&w->waiting, 1);
            while (atomic_load(&w->built) < atomic_load(&w->wake)) {
                pthread_cond_wait(&w->moved, &w->lock);
            }
            atomic_store(&w->waiting, 0);
            pthread_mutex_unlock(&w->lock);
        }
        if (atomic_load(&w->stop)) {
            /* The slot may still hold an entry never built. */
            return NULL;
        }
        probe_item(w, i);
    }
}

/*
 * The main thread, without the GIL, until item i of n (all read) is
 * probed: claims and probes items itself (within the slots free), or
 * waits for the helper to finish the one it has.
 */
static void
await_item(work *w, size_t i, size_t n)
{
    item *it = item_at(w, i);
    size_t j;

    while (!atomic_load_explicit(&it->done, memory_order_acquire)) {
        j = atomic_load(&w->next);
        if (j < n && j < i + SA_LIST_SLOTS &&
            atomic_compare_exchange_weak(&w->next, &j, j + 1)) {
            probe_item(w, j);
        }
        else if (j >= n || j >= i + SA_LIST_SLOTS) {
            sched_yield(); /* the helper has item i: a moment */
        }
    }
}

/* Entry i is built and its slot free: tells a helper that waits for it. */
static void
mark_built(work *w, size_t i)
{
    atomic_store(&w->built, i + 1);
    if (atomic_load(&w->waiting) && i + 1 >= atomic_load(&w->wake)) {
        pthread_mutex_lock(&w->lock);
        pthread_cond_signal(&w->moved);
        pthread_mutex_unlock(&w->lock);
    }
}

/* Below this many files a second thread costs more than it saves. */
#define SA_LIST_THREADED_MIN 256

/*
 * Reads the directory into w's items (names, and the last call's records),
 * each one handed to the helper as soon as it is complete; the helper is
 * started once there are SA_LIST_THREADED_MIN, so that probing overlaps
 * reading.  *n is how many were read, on error too.  -1 with an exception.
 */
static int
read_dir(work *w, DIR *dir, sa_seen *before, size_t *n)
{
    size_t cursor = 0, len, b, off;
    struct dirent *de;
    item *it;
    int ret = -1;

    for (*n = 0;;) {
        errno = 0;
        de = readdir(dir);
        if (de == NULL) {
            if (errno != 0) {
                PyErr_SetFromErrnoWithFilename(PyExc_OSError, SA_SHM_DIR);
                goto done;
            }
            break;
        }
        if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN) {
            continue;
        }
        b = item_place(*n, &off);
        if (off == 0) {
            if (b >= SA_LIST_BLOCKS ||
                (SIZE_MAX / sizeof(item)) >> b < SA_LIST_BLOCK0 ||
                (w->blocks[b] = malloc(((size_t)SA_LIST_BLOCK0 << b) *
                                       sizeof(item))) == NULL) {
                PyErr_NoMemory();
                goto done;
            }
        }
        it = &w->blocks[b][off];
        memset(it, 0, sizeof(*it));
        len = strlen(de->d_name);
        it->name = malloc(len + 1);
        if (it->name == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        memcpy(it->name, de->d_name, len + 1);
        it->len = len;
        it->memo = seen_find(before, de->d_name, len, &cursor);
        atomic_store_explicit(&w->avail, ++*n, memory_order_release);
        if (*n == SA_LIST_THREADED_MIN) {
            w->threaded =
                pthread_create(&w->helper, NULL, probe_thread, w) == 0;
        }
    }
    ret = 0;
done:
    atomic_store(&w->all_read, 1);
    return ret;
}

static void
free_items(work *w, size_t n)
{
    size_t i, b;
    item *it;

    for (i = 0; i < n; i++) {
        it = item_at(w, i);
        free(it->name);
        if (it->probe != NULL) {
            sa_probe_close(it->probe);
        }
    }
    for (b = 0; b < SA_LIST_BLOCKS; b++) {
        free(w->blocks[b]);
    }
}

/*
 * The entry for item i, probed: a new reference, Py_None to skip it, NULL
 * on error.
 */
static PyObject *
entry_of_item(sa_state *st, work *w, size_t i, sa_seen *seen)
{
    item *it = item_at(w, i);
    PyObject *entry;
    int held;

    if (it->hit) {
        /* Known from the last call, and unchanged. */
        seen_add(seen, &it->name, it->len, &it->memo->snap, it->memo->entry);
        Py_INCREF(it->memo->entry);
        return it->memo->entry;
    }
    if (it->err == EINTR || it->again) {
        return list_one(st, w->dirfd, &it->name, it->len, seen, w->euid);
    }
    if (it->err != 0) {
        Py_RETURN_NONE; /* vanished, or not ours to read */
    }
    held = it->probe->fd >= 0;
    entry = entry_of_probe(st, &it->name, it->len, seen, w->euid, it->probe);
    it->probe = NULL; /* closed */
    if (held) {
        atomic_fetch_sub(&w->fds, 1);
    }
    return entry;
}

PyObject *
sa_list(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
        PyObject *kwnames)
{
    sa_state *st = sa_get_state(module);
    PyObject *result = NULL, *entry;
    sa_seen *before, *seen = NULL;
    DIR *dir = NULL;
    work w;
    int ok = 0, sync_made = 0, gc_was_on = 0;
    size_t i, n = 0;

    if (sa_parse_args("list", args, nargs, kwnames, NULL, 0, 0, NULL) < 0) {
        return NULL;
    }
    memset(&w, 0, sizeof(w));
    w.euid = geteuid();
    /* Ours alone while we use it: a list() in another thread meanwhile
     * (the GIL is released while probing) starts from nothing. */
    before = st->list_seen;
    st->list_seen = NULL;
    result = PyList_New(0);
    if (result == NULL) {
        goto cleanup;
    }
    /* Thousands of small tuples would set off the cyclic collector again
     * and again (full collections in a young process); they hold no
     * cycles.  Turned back on below, whatever happens. */
    gc_was_on = PyGC_Disable();
    w.slots = malloc(SA_LIST_SLOTS * sizeof(*w.slots));
    if (w.slots == NULL) {
        PyErr_NoMemory();
        goto cleanup;
    }
    if (pthread_mutex_init(&w.lock, NULL) != 0) {
        PyErr_NoMemory();
        goto cleanup;
    }
    if (pthread_cond_init(&w.moved, NULL) != 0) {
        pthread_mutex_destroy(&w.lock);
        PyErr_NoMemory();
        goto cleanup;
    }
    sync_made = 1;
    dir = opendir(SA_SHM_DIR);
    if (dir == NULL) {
        PyErr_SetFromErrnoWithFilename(PyExc_OSError, SA_SHM_DIR);
        goto cleanup;
    }
    w.dirfd = dirfd(dir);
    if (read_dir(&w, dir, before, &n) < 0) {
        goto cleanup;
    }
    seen = seen_new(n);
    if (seen == NULL) {
        PyErr_NoMemory();
        goto cleanup;
    }
    for (i = 0; i < n; i++) {
        if (!atomic_load_explicit(&item_at(&w, i)->done,
                                  memory_order_acquire)) {
            Py_BEGIN_ALLOW_THREADS
                await_item(&w, i, n);
            Py_END_ALLOW_THREADS
        }
        entry = entry_of_item(st, &w, i, seen);
        mark_built(&w, i);
        if (entry == NULL) {
            goto cleanup;
        }
        if (entry != Py_None && PyList_Append(result, entry) < 0) {
            Py_DECREF(entry);
            goto cleanup;
        }
        Py_DECREF(entry);
    }
    ok = 1;
cleanup:
    if (w.threaded) {
        /* No more probes, and a helper waiting for a slot goes: after an
         * error, entries before it were never built.  Joined before the
         * last call's table (which its items point into) goes back to
         * module state, where another thread's list() may take it. */
        atomic_store(&w.stop, 1);
        mark_built(&w, n + SA_LIST_SLOTS);
        Py_BEGIN_ALLOW_THREADS
            pthread_join(w.helper, NULL);
        Py_END_ALLOW_THREADS
    }
    if (ok) {
        /* What is gone from the directory is forgotten. */
        sa_seen_free(st->list_seen);
        st->list_seen = seen;
        seen = NULL;
    }
    else {
        Py_CLEAR(result);
        if (st->list_seen == NULL) {
            /* What the next call can still use. */
            st->list_seen = before;
            before = NULL;
        }
    }
    if (sync_made) {
        pthread_cond_destroy(&w.moved);
        pthread_mutex_destroy(&w.lock);
    }
    free_items(&w, n);
    free(w.slots);
    if (dir != NULL) {
        closedir(dir);
    }
    if (gc_was_on) {
        PyGC_Enable();
    }
    sa_seen_free(before);
    sa_seen_free(seen);
    return result;
}

#else /* !SA_HAVE_SHM_DIR */

/* Systems without a directory of shm objects (macOS, the BSDs) cannot
 * enumerate them; the seed's list() was Linux-only too. */
PyObject *
sa_list(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs,
        PyObject *kwnames)
{
    if (sa_parse_args("list", args, nargs, kwnames, NULL, 0, 0, NULL) < 0) {
        return NULL;
    }
    PyErr_SetString(PyExc_NotImplementedError,
                    "list() needs a directory of shared memory objects "
                    "(Linux's /dev/shm); this build uses the portable "
                    "POSIX backend (shm_open), which cannot enumerate them");
    return NULL;
}

void
sa_seen_free(sa_seen *t)
{
    (void)t;
}

int
sa_seen_traverse(sa_seen *t, visitproc visit, void *arg)
{
    (void)t;
    (void)visit;
    (void)arg;
    return 0;
}

#endif
