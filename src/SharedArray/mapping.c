/*
 * The owner object: one per mmap, set as the base of every array made over
 * it, so the region is unmapped exactly when the last array or view using
 * it is gone.
 */
#include "sharedarray.h"

#include <errno.h>
#include <limits.h>
#include <structmember.h>
#include <sys/mman.h>
#include <unistd.h>

PyObject *
sa_mapping_new(sa_state *st, void *addr, size_t size, const sa_layout *lay,
               PyObject *name, const struct stat *st_file, const sa_ident *id,
               int writable)
{
    sa_mapping *self = PyObject_New(sa_mapping, st->mapping_type);
    int i;

    if (self == NULL) {
        munmap(addr, size);
        return NULL;
    }
    self->map_addr = addr;
    self->map_size = size;
    self->data = (char *)addr + lay->data_offset;
    self->nbytes = (size_t)lay->nbytes;
    Py_INCREF(name);
    self->name = name;
    Py_INCREF(lay->descr);
    self->descr = lay->descr;
    self->ndim = lay->ndim;
    self->fortran = lay->fortran;
    for (i = 0; i < lay->ndim; i++) {
        self->dims[i] = lay->dims[i];
    }
    self->id = *id;
    self->file_size = (uint64_t)st_file->st_size;
    self->mode = st_file->st_mode;
    self->uid = st_file->st_uid;
    self->gid = st_file->st_gid;
    self->writable = writable;
    self->cache_key = NULL;
    self->weakreflist = NULL;
    return (PyObject *)self;
}

/* Re-raises NumPy's refusal as ValueError naming the array. */
static void
name_the_failure(PyObject *name)
{
    PyObject *type, *value, *tb;

    if (PyErr_ExceptionMatches(PyExc_MemoryError)) {
        return;
    }
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyErr_Format(PyExc_ValueError, "%R is not a usable array: %S", name,
                 value != NULL ? value : Py_None);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

PyObject *
sa_array_new(PyObject *mapping)
{
    sa_mapping *m = (sa_mapping *)mapping;
    npy_intp shape[SA_MAXDIMS];
    PyObject *arr;
    int i, flags;

    for (i = 0; i < m->ndim; i++) {
        shape[i] = (npy_intp)m->dims[i];
    }
    flags = (m->writable ? NPY_ARRAY_WRITEABLE : 0) |
            (m->fortran ? NPY_ARRAY_F_CONTIGUOUS : 0);
    Py_INCREF(m->descr); /* stolen by NumPy */
    arr = PyArray_NewFromDescr(&PyArray_Type, m->descr, m->ndim, shape, NULL,
                               m->data, flags, NULL);
    if (arr == NULL) {
        name_the_failure(m->name);
        return NULL;
    }
    /* Steals the reference even when it fails. */
    Py_INCREF(mapping);
    if (PyArray_SetBaseObject((PyArrayObject *)arr, mapping) < 0) {
        Py_DECREF(arr);
        return NULL;
    }
    return arr;
}

static void
mapping_dealloc(PyObject *op)
{
    sa_mapping *self = (sa_mapping *)op;
    PyTypeObject *tp = Py_TYPE(op);

    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs(op);
    }
    if (self->cache_key != NULL) {
        sa_cache_dead((sa_state *)PyType_GetModuleState(tp), self->cache_key);
        Py_CLEAR(self->cache_key);
    }
    /* Nothing can catch an exception from here; a failed munmap of our own
     * region cannot happen short of memory corruption.  Unmapping a large
     * region takes a while: without the GIL, as mmapmodule does. */
    if (self->map_addr != NULL) {
        void *addr = self->map_addr;
        size_t size = self->map_size;
        Py_BEGIN_ALLOW_THREADS
            munmap(addr, size);
        Py_END_ALLOW_THREADS
    }
    Py_XDECREF(self->name);
    Py_XDECREF(self->descr);
    tp->tp_free(op);
    Py_DECREF(tp);
}

/* mlock, munlock and msync may block for long: without the GIL. */
static PyObject *
mapping_msync(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames)
{
    static const char *const names[] = {"flags"};
    sa_mapping *self = (sa_mapping *)op;
    PyObject *a[1];
    int flags = MS_SYNC, rc, err = 0;

    if (sa_parse_args("msync", args, nargs, kwnames, names, 1, 0, a) < 0) {
        return NULL;
    }
    if (a[0] != NULL) {
        long v = PyLong_AsLong(a[0]);
        if (v == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (v < INT_MIN || v > INT_MAX) {
            PyErr_SetString(PyExc_OverflowError, "flags out of range");
            return NULL;
        }
        flags = (int)v;
    }
    Py_BEGIN_ALLOW_THREADS
        rc = msync(self->map_addr, self->map_size, flags);
        if (rc < 0) {
            err = errno;
        }
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        return sa_raise_errno(err, self->name);
    }
    Py_RETURN_NONE;
}

static PyObject *
mapping_lock(sa_mapping *self, int lock)
{
    int rc, err = 0;

    Py_BEGIN_ALLOW_THREADS
        rc = lock ? mlock(self->map_addr, self->map_size)
                  : munlock(self->map_addr, self->map_size);
        if (rc < 0) {
            err = errno;
        }
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        return sa_raise_errno(err, self->name);
    }
    Py_RETURN_NONE;
}

static PyObject *
mapping_mlock(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    return mapping_lock((sa_mapping *)op, 1);
}

static PyObject *
mapping_munlock(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    return mapping_lock((sa_mapping *)op, 0);
}

static PyObject *
mapping_get_addr(PyObject *op, void *Py_UNUSED(closure))
{
    return PyLong_FromVoidPtr(((sa_mapping *)op)->data);
}

static PyObject *
mapping_get_size(PyObject *op, void *Py_UNUSED(closure))
{
    return PyLong_FromSize_t(((sa_mapping *)op)->nbytes);
}

static PyObject *
mapping_get_identity(PyObject *op, void *Py_UNUSED(closure))
{
    return sa_identity_tuple(&((sa_mapping *)op)->id);
}

static PyObject *
mapping_get_writable(PyObject *op, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(((sa_mapping *)op)->writable);
}

/*
 * The array's bytes as a flat buffer, read-only when attached with ro=True:
 * lets the pickling reducer rebuild any view with
 * np.ndarray(buffer=mapping, offset=, strides=), which NumPy bounds-checks.
 */
static int
mapping_getbuffer(PyObject *op, Py_buffer *view, int flags)
{
    sa_mapping *self = (sa_mapping *)op;
    return PyBuffer_FillInfo(view, op, self->data, (Py_ssize_t)self->nbytes,
                             !self->writable, flags);
}

static PyObject *
mapping_repr(PyObject *op)
{
    sa_mapping *self = (sa_mapping *)op;
    return PyUnicode_FromFormat("<SharedArray mapping %R, %zu bytes at %p>",
                                self->name, self->nbytes, (void *)self->data);
}

static PyMethodDef mapping_methods[] = {
    {"msync", (PyCFunction)(void (*)(void))mapping_msync,
     METH_FASTCALL | METH_KEYWORDS,
     PyDoc_STR("msync(flags=MS_SYNC)\n--\n\n"
               "Flush the mapping to its backing file (msync(2)); flags is "
               "MS_SYNC, MS_ASYNC, optionally | MS_INVALIDATE.")},
    {"mlock", mapping_mlock, METH_NOARGS,
     PyDoc_STR("mlock()\n--\n\nLock the mapping into RAM (mlock(2)).")},
    {"munlock", mapping_munlock, METH_NOARGS,
     PyDoc_STR("munlock()\n--\n\nAllow the mapping to be swapped again "
               "(munlock(2)).")},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef mapping_members[] = {
    {"name", T_OBJECT_EX, offsetof(sa_mapping, name), READONLY,
     PyDoc_STR("The array's name, as passed to create() or attach().")},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(sa_mapping, weakreflist),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef mapping_getset[] = {
    {"addr", mapping_get_addr, NULL,
     PyDoc_STR("Address of the array's data (its first byte), as in 3.x."),
     NULL},
    {"size", mapping_get_size, NULL,
     PyDoc_STR("Size of the array's data in bytes."), NULL},
    {"writable", mapping_get_writable, NULL,
     PyDoc_STR("False when attached with ro=True."), NULL},
    {"_identity", mapping_get_identity, NULL,
     PyDoc_STR("(st_dev, st_ino, birth seconds, birth nanoseconds) of "
               "the file, to tell it from a later file of the same name "
               "(inode numbers are reused)."),
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot mapping_slots[] = {
    {Py_tp_dealloc, mapping_dealloc},
    {Py_tp_repr, mapping_repr},
    {Py_tp_methods, mapping_methods},
    {Py_tp_members, mapping_members},
    {Py_tp_getset, mapping_getset},
    {Py_bf_getbuffer, mapping_getbuffer},
    {Py_tp_doc,
     PyDoc_STR("Owner of a SharedArray memory map: the .base of every array "
               "that create() or attach() returns.  The map is released "
               "when the last array or view using it is gone.")},
    {0, NULL},
};

PyType_Spec sa_mapping_spec = {
    .name = "SharedArray.Mapping",
    .basicsize = sizeof(sa_mapping),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = mapping_slots,
};
