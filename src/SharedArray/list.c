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
    {"name", "name as attach() takes it (bare shm name)"},
    {"dtype", "numpy.dtype of the elements"},
    {"dims", "shape, a tuple of ints"},
    {"nbytes", "size of the data in bytes"},
    {NULL, NULL},
};

PyStructSequence_Desc sa_entry_desc = {
    .name = "SharedArray.ArrayDesc",
    .doc = "An array found by SharedArray.list().",
    .fields = entry_fields,
    /* (name, dtype, dims) unpack as in SharedArray 3.x; nbytes is extra. */
    .n_in_sequence = 3,
};

static PyObject *
make_entry(sa_state *st, const char *fname, const sa_probe *p)
{
    PyObject *name = NULL, *entry = NULL, *dims = NULL, *nb = NULL;
    PyArray_Descr *d = NULL;
    uint64_t nbytes;
    int i;

    name = PyUnicode_DecodeFSDefault(fname);
    if (name == NULL) {
        goto done;
    }
    d = sa_probe_resolve(st, p, name, &nbytes);
    if (d == NULL) {
        /* Not a valid array: skip it, unless we are out of memory. */
        if (!PyErr_ExceptionMatches(PyExc_MemoryError)) {
            PyErr_Clear();
            entry = Py_None;
            Py_INCREF(entry);
        }
        goto done;
    }
    dims = PyTuple_New(p->hdr.ndim);
    if (dims == NULL) {
        goto done;
    }
    for (i = 0; i < p->hdr.ndim; i++) {
        PyObject *v = PyLong_FromLongLong(p->hdr.dims[i]);
        if (v == NULL) {
            goto done;
        }
        PyTuple_SET_ITEM(dims, i, v);
    }
    nb = PyLong_FromUnsignedLongLong(nbytes);
    if (nb == NULL) {
        goto done;
    }
    entry = PyStructSequence_New(st->entry_type);
    if (entry == NULL) {
        goto done;
    }
    PyStructSequence_SET_ITEM(entry, 0, name);
    PyStructSequence_SET_ITEM(entry, 1, (PyObject *)d);
    PyStructSequence_SET_ITEM(entry, 2, dims);
    PyStructSequence_SET_ITEM(entry, 3, nb);
    name = NULL;
    d = NULL;
    dims = NULL;
    nb = NULL;
done:
    Py_XDECREF(name);
    Py_XDECREF(d);
    Py_XDECREF(dims);
    Py_XDECREF(nb);
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
