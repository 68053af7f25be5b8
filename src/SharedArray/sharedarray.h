/*
 * Private header shared by every C file that touches Python or NumPy.  The
 * module file defines SA_IMPORT_ARRAY before including it; the others get
 * NO_IMPORT_ARRAY, so all share the one NumPy API table.
 */
#ifndef SHAREDARRAY_PRIVATE_H
#define SHAREDARRAY_PRIVATE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define NPY_NO_DEPRECATED_API NPY_API_VERSION
/* Built against NumPy 2 headers, loadable by NumPy >= 1.23. */
#define NPY_TARGET_VERSION NPY_1_23_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL SharedArray_ARRAY_API
#ifndef SA_IMPORT_ARRAY
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>
#include <numpy/npy_2_compat.h>

#include <stdint.h>
#include <sys/types.h>

#include "header.h"
#include "names.h"
#include "segment.h"

/* The mapping cache's default budget (cache_limits() changes it), and how
 * often it looks for entries whose segment is gone. */
#define SA_CACHE_MAX_ENTRIES 64
#define SA_CACHE_MAX_BYTES ((uint64_t)1 << 30)
#define SA_CACHE_SWEEP_EVERY 16
#define SA_CACHE_SWEEP_MIN ((size_t)1 << 20)

/* NumPy 1.x builds arrays of at most 32 dimensions, 2.x of 64. */
#define SA_RUNTIME_MAXDIMS                                                    \
    (PyArray_RUNTIME_VERSION >= NPY_2_0_API_VERSION ? 64 : 32)

typedef struct {
    PyTypeObject *mapping_type; /* owner of one mmap; every array's base */
    PyTypeObject *entry_type;   /* list() entries */
    PyTypeObject *name_type;    /* ArrayDesc.name: str with 3.x's decode() */
    PyObject *descr_cache;      /* dict: descr text -> dtype */
    /* The plain descr resolved last, which the next header most likely
     * names too (list() reads thousands): its text and dtype. */
    PyArray_Descr *descr_last;
    size_t descr_last_len;
    char descr_last_text[32];
    /* ArrayDesc's constant strings: order and format. */
    PyObject *str_c, *str_f, *str_npy, *str_legacy;
    struct sa_seen *list_seen; /* what the last list() saw (list.c) */
    /* The mapping cache (cache.c): key -> Mapping, least recently used
     * first, within the budget; key -> weakref for mappings that are
     * alive only because arrays use them. */
    PyObject *cache_strong;
    PyObject *cache_weak;
    Py_ssize_t cache_max_entries;
    uint64_t cache_max_bytes;
    uint64_t cache_bytes; /* map_size of the strong entries */
    uint64_t cache_hits;
    uint64_t cache_misses;
} sa_state;

/* What an array over a segment looks like: from its header, or create(). */
typedef struct {
    PyArray_Descr *descr; /* a reference owned by whoever holds this */
    int ndim;
    int64_t dims[SA_MAXDIMS];
    int fortran;
    size_t data_offset;
    uint64_t nbytes;
} sa_layout;

/* The owner object (mapping.c); the cache reads it directly. */
typedef struct {
    PyObject_HEAD void
        *map_addr;   /* the mapping: header and data, for munmap, */
    size_t map_size; /* msync, mlock */
    char *data;      /* the array's bytes: addr, size and the buffer */
    size_t nbytes;
    PyObject *name; /* str, as the user passed it */
    PyArray_Descr *descr;
    int ndim;
    int fortran;
    int64_t dims[SA_MAXDIMS];
    /* The file as it was when mapped: identity, and what a cache hit must
     * find unchanged. */
    sa_ident id;
    uint64_t file_size;
    mode_t mode;
    uid_t uid;
    gid_t gid;
    uid_t euid; /* ours when the cache took it */
    gid_t egid;
    int writable;
    PyObject *cache_key; /* bytes, set once the cache has seen it */
    PyObject *weakreflist;
} sa_mapping;

static inline sa_state *
sa_get_state(PyObject *module)
{
    return (sa_state *)PyModule_GetState(module);
}

/* args.c: turning METH_FASTCALL arguments into C values. */
int sa_parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames, const char *const *names, int nnames,
                  int nrequired, PyObject **out);
/* A name argument (str; os.fsencode'd when it is not UTF-8) parsed. */
int sa_name_from_object(PyObject *obj, sa_name *out);

/* errors.c: every failed system call reaches Python through here. */
/* Raises the OSError subclass that matches err, carrying name; NULL. */
PyObject *sa_raise_errno(int err, PyObject *name);
/* The same with a message of our own instead of strerror(err). */
PyObject *sa_raise_errno_msg(int err, PyObject *name, const char *msg);
PyObject *sa_raise_errno_text(int err, PyObject *name, PyObject *text);

/* lookup.c: what a name refers to now, for the pickling reducer. */
/* _resolve(name): the file path a name stands for. */
PyObject *sa_resolve(PyObject *module, PyObject *name);
/* _identity_of(name): the identity of the file now under name, as
 * Mapping._identity gives it for the file mapped. */
PyObject *sa_identity_of(PyObject *module, PyObject *name);
/* (dev, ino, birth seconds, birth nanoseconds) */
PyObject *sa_identity_tuple(const sa_ident *id);

/* descr.c: dtypes in and out of headers. */
/* Refuses dtypes that cannot be shared; name (or NULL) is the segment. */
int sa_descr_check(PyArray_Descr *d, PyObject *name);
PyObject *sa_descr_literal(PyArray_Descr *d, int *utf8);
/* The dtype of p's intact .npy header; NULL with ValueError naming it. */
PyArray_Descr *sa_descr_of_header(sa_state *st, const sa_probe *p,
                                  PyObject *name);
/* The dtype of p's 3.x trailer, and its data size. */
PyArray_Descr *sa_descr_of_legacy(const sa_probe *p, PyObject *name,
                                  uint64_t *nbytes);

/* validate.c: opening and validating segments. */
/* Why a named segment is opened; decides the flags (the one place). */
typedef enum { SA_TO_READ, SA_TO_WRITE, SA_TO_DELETE } sa_purpose;
/*
 * sa_probe_open with the GIL released, retried after signal handlers ran
 * when interrupted: 0, an errno value, or -1 when a handler raised.
 */
int sa_probe_py(sa_probe *p, int dirfd, const char *path, int writable,
                int nofollow);
/* Opens name for purpose; -1 with OSError naming it (or a handler's). */
int sa_open_segment(sa_probe *p, PyObject *nameobj, const sa_name *name,
                    sa_purpose purpose);
/*
 * Validates an opened segment completely, exactly as attach needs it: a
 * regular file with a parsed header (or a 3.x trailer, when the file's
 * sizes say so), a shareable dtype, dimensions NumPy can build (subarray
 * dimensions included), a size NumPy accepts, and data inside the file.
 * Returns 0 and fills out (out->descr a new reference), or -1 with
 * ValueError naming the segment (MemoryError, or OSError from reading the
 * trailer, pass through).
 */
int sa_segment_layout(sa_state *st, sa_probe *p, PyObject *name,
                      sa_layout *out);

/* mapping.c: the owner object. */
extern PyType_Spec sa_mapping_spec;
/*
 * Wraps the mapping [addr, addr+size) of a file described by st_file/id in
 * a new owner object laid out as lay (its descr is borrowed, the owner
 * takes its own reference); the owner munmaps it when it dies.  On failure
 * the region is unmapped here and NULL returned.
 */
PyObject *sa_mapping_new(sa_state *st, void *addr, size_t size,
                         const sa_layout *lay, PyObject *name,
                         const struct stat *st_file, const sa_ident *id,
                         int writable);
/*
 * A new ndarray over the owner's data, shaped as the owner's layout; the
 * owner (not stolen) becomes its base.  A failure names the array.
 */
PyObject *sa_array_new(PyObject *mapping);

/* cache.c: the per-process mapping cache. */
/* The cache key of name mapped writable or not: a new bytes object. */
PyObject *sa_cache_key(const sa_name *name, int writable);
/*
 * The cached mapping for key if the file under name is still the one it
 * maps (one statx), as a new reference; NULL without an exception when
 * there is none or it is stale (then it is dropped); NULL with one on
 * error.
 */
PyObject *sa_cache_lookup(sa_state *st, PyObject *key, const sa_name *name);
/* Remembers mapping under key; errors are swallowed (it is only a cache). */
void sa_cache_put(sa_state *st, PyObject *key, PyObject *mapping);
/* Drops both keys of name (delete() in this process). */
void sa_cache_forget(sa_state *st, const sa_name *name);
/* Called by a dying mapping: drops its dead entry from the weak index. */
void sa_cache_dead(sa_state *st, PyObject *key);
PyObject *sa_cache_info(PyObject *module, PyObject *args);
PyObject *sa_cache_clear(PyObject *module, PyObject *args);
PyObject *sa_cache_limits(PyObject *module, PyObject *const *args,
                          Py_ssize_t nargs, PyObject *kwnames);

/* attach.c: the array over name (parsed from nameobj), NULL on error. */
PyObject *sa_attach_impl(sa_state *st, PyObject *nameobj, const sa_name *name,
                         int ro);

/* One operation per file. */
PyObject *sa_create(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames);
PyObject *sa_from_array(PyObject *module, PyObject *const *args,
                        Py_ssize_t nargs, PyObject *kwnames);
PyObject *sa_attach(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames);
PyObject *sa_delete(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames);
PyObject *sa_list(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames);
/* What list() remembers between calls: freed, visited by the module. */
typedef struct sa_seen sa_seen;
void sa_seen_free(sa_seen *t);
int sa_seen_traverse(sa_seen *t, visitproc visit, void *arg);

PyObject *sa_info(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames);

/* entry.c: ArrayDesc, the entries of list() and info(), and ArrayName. */
extern PyStructSequence_Desc sa_entry_desc;
extern PyType_Spec sa_name_spec;
/* An ArrayDesc for an opened segment; NULL with ValueError if invalid. */
PyObject *sa_entry_new(sa_state *st, PyObject *name, sa_probe *p);

#endif
