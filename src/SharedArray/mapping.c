/*
 * The owner object: one per mmap, set as the base of every array made over
 * it, so the region is unmapped exactly when the last array or view using
 * it is gone.
 */
#include "sharedarray.h"

#include <errno.h>
#include <structmember.h>
#include <sys/mman.h>

typedef struct {
    PyObject_HEAD
    void *map_addr;     /* the whole mapping, header first: for munmap, */
    size_t map_size;    /* msync, mlock */
    char *data;         /* the array's bytes: addr, size and the buffer */
    size_t nbytes;
    PyObject *name;     /* str, as the user passed it */
    dev_t dev;          /* identity of the file, for the pickling reducer */
    ino_t ino;
    int writable;
} sa_mapping;

PyObject *
sa_mapping_new(sa_state *st, void *addr, size_t size, size_t data_offset,
               uint64_t nbytes, PyObject *name, const struct stat *st_file,
               int writable)
{
    sa_mapping *self = PyObject_New(sa_mapping, st->mapping_type);

    if (self == NULL) {
        munmap(addr, size);
        return NULL;
    }
    self->map_addr = addr;
    self->map_size = size;
    self->data = (char *)addr + data_offset;
    self->nbytes = (size_t)nbytes;
    Py_INCREF(name);
    self->name = name;
    self->dev = st_file->st_dev;
    self->ino = st_file->st_ino;
    self->writable = writable;
    return (PyObject *)self;
}

PyObject *
sa_array_new(PyObject *mapping, PyArray_Descr *descr, int ndim,
             const int64_t *dims, int fortran, int writable)
{
    sa_mapping *m = (sa_mapping *)mapping;
    npy_intp shape[SA_MAXDIMS];
    PyObject *arr;
    int i, flags;

    for (i = 0; i < ndim; i++) {
        shape[i] = (npy_intp)dims[i];
    }
    flags = (writable ? NPY_ARRAY_WRITEABLE : 0) |
            (fortran ? NPY_ARRAY_F_CONTIGUOUS : 0);
    arr = PyArray_NewFromDescr(&PyArray_Type, descr, ndim, shape, NULL,
                               m->data, flags, NULL);
    if (arr == NULL) {
        Py_DECREF(mapping);
        return NULL;
    }
    /* Steals mapping even when it fails. */
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

    /* Nothing can catch an exception from here; a failed munmap of our own
     * region cannot happen short of memory corruption. */
    if (self->map_addr != NULL) {
        munmap(self->map_addr, self->map_size);
    }
    Py_XDECREF(self->name);
    tp->tp_free(op);
    Py_DECREF(tp);
}

/* mlock, munlock and msync may block for long: without the GIL. */
static PyObject *
mapping_msync(PyObject *op, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"flags", NULL};
    sa_mapping *self = (sa_mapping *)op;
    int flags = MS_SYNC, rc, err = 0;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|i:msync", kwlist, &flags)) {
        return NULL;
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
    sa_mapping *self = (sa_mapping *)op;
    return Py_BuildValue("(KK)", (unsigned long long)self->dev,
                         (unsigned long long)self->ino);
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
     METH_VARARGS | METH_KEYWORDS,
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
     PyDoc_STR("(st_dev, st_ino) of the file, to tell it from a "
               "replacement of the same name."),
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
