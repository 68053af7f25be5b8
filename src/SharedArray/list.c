/*
 * list()
 *
 * Linux keeps POSIX shared memory as files in a tmpfs, so listing is a scan
 * of that directory: each entry is opened and its header read with pread
 * (nothing is mapped).  Files that are not valid arrays, or that we may
 * not read, are skipped.
 */
#include "sharedarray.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>

static PyStructSequence_Field entry_fields[] = {
    {"name", "name as attach() takes it (list(): the bare shm name)"},
    {"dtype", "numpy.dtype of the elements"},
    {"dims", "shape, a tuple of ints"},
    {"nbytes", "size of the data in bytes"},
    {"order", "'C' or 'F'"},
    {"mode", "permission bits of the segment"},
    {"uid", "owner's user id"},
    {"mtime", "last modification, seconds since the epoch"},
    {"format", "'npy', or 'sharedarray3' for a SharedArray 3.x segment"},
    {NULL, NULL},
};

PyStructSequence_Desc sa_entry_desc = {
    .name = "SharedArray.ArrayDesc",
    .doc = "An array described by SharedArray.list() or SharedArray.info().",
    .fields = entry_fields,
    /* (name, dtype, dims) unpack as in SharedArray 3.x; nbytes is extra. */
    .n_in_sequence = 3,
};

PyObject *
sa_entry_new(sa_state *st, PyObject *name, const sa_probe *p)
{
    PyObject *entry = NULL, *v;
    PyArray_Descr *d;
    uint64_t nbytes;
    int i;

    d = sa_probe_resolve(st, p, name, &nbytes);
    if (d == NULL) {
        return NULL;
    }
    entry = PyStructSequence_New(st->entry_type);
    if (entry == NULL) {
        Py_DECREF(d);
        return NULL;
    }
    Py_INCREF(name);
    PyStructSequence_SET_ITEM(entry, 0, name);
    PyStructSequence_SET_ITEM(entry, 1, (PyObject *)d);
    /* A failed item leaves NULL in place, which the entry's dealloc skips. */
    v = PyTuple_New(p->hdr.ndim);
    for (i = 0; v != NULL && i < p->hdr.ndim; i++) {
        PyObject *dim = PyLong_FromLongLong(p->hdr.dims[i]);
        if (dim == NULL) {
            Py_CLEAR(v);
            break;
        }
        PyTuple_SET_ITEM(v, i, dim);
    }
    PyStructSequence_SET_ITEM(entry, 2, v);
    PyStructSequence_SET_ITEM(entry, 3, PyLong_FromUnsignedLongLong(nbytes));
    PyStructSequence_SET_ITEM(
        entry, 4, PyUnicode_FromString(p->hdr.fortran_order ? "F" : "C"));
    PyStructSequence_SET_ITEM(entry, 5,
                              PyLong_FromLong((long)(p->st.st_mode & 07777)));
    PyStructSequence_SET_ITEM(entry, 6,
                              PyLong_FromUnsignedLong((unsigned long)p->st.st_uid));
    PyStructSequence_SET_ITEM(
        entry, 7,
        PyFloat_FromDouble((double)p->st.st_mtim.tv_sec +
                           (double)p->st.st_mtim.tv_nsec * 1e-9));
    PyStructSequence_SET_ITEM(
        entry, 8,
        PyUnicode_FromString(p->status == SA_HDR_LEGACY ? "sharedarray3"
                                                        : "npy"));
    for (i = 2; i < 9; i++) {
        if (PyStructSequence_GET_ITEM(entry, i) == NULL) {
            Py_DECREF(entry);
            return NULL;
        }
    }
    return entry;
}

/* An entry for a directory entry, Py_None to skip it, NULL on error. */
static PyObject *
make_entry(sa_state *st, const char *fname, const sa_probe *p)
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

PyObject *
sa_list(PyObject *module, PyObject *const *Py_UNUSED(args), Py_ssize_t nargs,
        PyObject *kwnames)
{
    sa_state *st = sa_get_state(module);
    PyObject *result = NULL, *entry;
    DIR *dir = NULL;
    struct dirent *de;
    sa_probe p;
    int err;

    if (nargs != 0 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_SetString(PyExc_TypeError, "list() takes no arguments");
        return NULL;
    }
    result = PyList_New(0);
    if (result == NULL) {
        return NULL;
    }
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
        Py_BEGIN_ALLOW_THREADS
        err = sa_probe_open(&p, dirfd(dir), de->d_name, 0, 1);
        Py_END_ALLOW_THREADS
        if (err != 0) {
            continue;   /* vanished, or not ours to read */
        }
        entry = NULL;
        if (p.regular &&
            (p.status == SA_HDR_OK || p.status == SA_HDR_LEGACY)) {
            entry = make_entry(st, de->d_name, &p);
            if (entry == NULL) {
                sa_probe_close(&p);
                goto error;
            }
        }
        sa_probe_close(&p);
        if (entry != NULL && entry != Py_None &&
            PyList_Append(result, entry) < 0) {
            Py_DECREF(entry);
            goto error;
        }
        Py_XDECREF(entry);
    }
    closedir(dir);
    return result;
error:
    if (dir != NULL) {
        closedir(dir);
    }
    Py_DECREF(result);
    return NULL;
}
