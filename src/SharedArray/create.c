/*
 * create(name, shape, dtype=float, order='C', mode=0o600)
 *
 * Builds the whole segment under no name (O_TMPFILE), reserves its blocks,
 * and only then links it into place without replacing anything: a racing
 * attach sees FileNotFoundError or the complete array, and a failure at any
 * step leaves nothing behind.
 */
#include "sharedarray.h"

#include <errno.h>
#include <unistd.h>

typedef struct {
    int ndim;
    int64_t dims[SA_MAXDIMS];
} shape_t;

/* Appends the subarray dims of a dtype like ('f8', (2, 3)), as np.zeros. */
static PyArray_Descr *
flatten_subarray(PyArray_Descr *d, shape_t *shape)
{
    Py_INCREF(d);
    while (PyDataType_HASSUBARRAY(d)) {
        PyArray_ArrayDescr *sub = PyDataType_SUBARRAY(d);
        PyArray_Dims extra = {NULL, 0};
        PyArray_Descr *base;
        int i;

        if (!PyArray_IntpConverter(sub->shape, &extra)) {
            Py_DECREF(d);
            return NULL;
        }
        if (shape->ndim + extra.len > SA_RUNTIME_MAXDIMS) {
            PyDimMem_FREE(extra.ptr);
            PyErr_Format(PyExc_ValueError,
                         "shape and dtype together have more than %d "
                         "dimensions",
                         SA_RUNTIME_MAXDIMS);
            Py_DECREF(d);
            return NULL;
        }
        for (i = 0; i < extra.len; i++) {
            shape->dims[shape->ndim++] = extra.ptr[i];
        }
        PyDimMem_FREE(extra.ptr);
        base = sub->base;
        Py_INCREF(base);
        Py_DECREF(d);
        d = base;
    }
    return d;
}

static int
convert_shape(PyObject *obj, shape_t *shape)
{
    PyArray_Dims dims = {NULL, 0};
    int i, rc = -1;

    if (obj == Py_None) {
        PyErr_SetString(PyExc_TypeError,
                        "shape must be an int or a sequence of ints, not None");
        return -1;
    }
    if (!PyArray_IntpConverter(obj, &dims)) {
        return -1;
    }
    if (dims.len > SA_RUNTIME_MAXDIMS) {
        PyErr_Format(PyExc_ValueError, "shape has %d dimensions; at most %d",
                     dims.len, SA_RUNTIME_MAXDIMS);
        goto done;
    }
    for (i = 0; i < dims.len; i++) {
        if (dims.ptr[i] < 0) {
            PyErr_Format(PyExc_ValueError,
                         "negative dimensions are not allowed (shape %R)",
                         obj);
            goto done;
        }
        shape->dims[i] = dims.ptr[i];
    }
    shape->ndim = dims.len;
    rc = 0;
done:
    PyDimMem_FREE(dims.ptr);
    return rc;
}

static PyObject *
create_impl(sa_state *st, PyObject *nameobj, const sa_name *name,
            shape_t *shape, PyArray_Descr *dtype, int fortran,
            unsigned int mode)
{
    PyArray_Descr *d = NULL;
    PyObject *literal = NULL, *mapping = NULL, *result = NULL;
    unsigned char *header = NULL;
    size_t header_len = 0;
    uint64_t nbytes;
    sa_create_job job = {.name = name, .mode = mode};
    struct stat ident;
    long page;
    int utf8 = 0, err;

    d = flatten_subarray(dtype, shape);
    if (d == NULL || sa_descr_check(d) < 0) {
        goto done;
    }
    if (sa_header_nbytes(shape->dims, shape->ndim,
                         (uint64_t)PyDataType_ELSIZE(d),
                         (uint64_t)NPY_MAX_INTP, &nbytes) < 0) {
        PyErr_Format(PyExc_ValueError,
                     "array is too big: shape times itemsize %zd overflows",
                     (Py_ssize_t)PyDataType_ELSIZE(d));
        goto done;
    }
    literal = sa_descr_literal(d, &utf8);
    if (literal == NULL) {
        goto done;
    }
    page = sysconf(_SC_PAGESIZE);
    if (sa_header_build(PyBytes_AS_STRING(literal),
                        (size_t)PyBytes_GET_SIZE(literal), utf8, fortran,
                        shape->ndim, shape->dims,
                        page > 0 ? (size_t)page : 4096, &header,
                        &header_len) < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "dtype description is too long for a .npy header");
        goto done;
    }
    if (nbytes > (uint64_t)NPY_MAX_INTP - header_len) {
        PyErr_SetString(PyExc_ValueError, "array is too big");
        goto done;
    }
    job.header = header;
    job.header_len = header_len;
    job.total = header_len + nbytes;

    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        err = sa_create_run(&job);
        Py_END_ALLOW_THREADS
        if (err != EINTR) {
            break;
        }
        /* Interrupted while reserving: nothing is left; retry unless a
         * handler raised (e.g. KeyboardInterrupt). */
        if (PyErr_CheckSignals() < 0) {
            goto done;
        }
    }
    if (err != 0) {
        sa_raise_errno(err, nameobj);
        goto done;
    }
    ident.st_dev = job.dev;
    ident.st_ino = job.ino;
    mapping = sa_mapping_new(st, job.addr, job.size, nameobj, &ident, 1);
    if (mapping == NULL) {
        goto done;
    }
    /* sa_array_new steals both. */
    result = sa_array_new(mapping, d, shape->ndim, shape->dims, fortran,
                          header_len, 1);
    d = NULL;
done:
    Py_XDECREF(d);
    Py_XDECREF(literal);
    free(header);
    return result;
}

PyObject *
sa_create(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames)
{
    static const char *const names[] = {"name", "shape", "dtype", "order",
                                        "mode"};
    PyObject *a[5];
    PyArray_Descr *dtype = NULL;
    PyObject *result = NULL;
    sa_name name;
    shape_t shape = {0};
    NPY_ORDER order = NPY_CORDER;
    long mode = 0600;

    if (sa_parse_args("create", args, nargs, kwnames, names, 5, 2, a) < 0 ||
        sa_name_from_object(a[0], &name) < 0 || convert_shape(a[1], &shape) < 0) {
        return NULL;
    }
    if (!PyArray_DescrConverter(a[2] ? a[2] : Py_None, &dtype)) {
        return NULL;
    }
    if (a[3] != NULL && !PyArray_OrderConverter(a[3], &order)) {
        goto done;
    }
    if (order != NPY_CORDER && order != NPY_FORTRANORDER) {
        PyErr_SetString(PyExc_ValueError, "order must be 'C' or 'F'");
        goto done;
    }
    if (a[4] != NULL) {
        if (!PyLong_Check(a[4]) || PyBool_Check(a[4])) {
            PyErr_Format(PyExc_TypeError, "mode must be an int such as 0o600, "
                         "not %.100s", Py_TYPE(a[4])->tp_name);
            goto done;
        }
        mode = PyLong_AsLong(a[4]);
        if (mode == -1 && PyErr_Occurred()) {
            goto done;
        }
        if (mode < 0 || mode > 0777) {
            PyErr_Format(PyExc_ValueError,
                         "mode must hold permission bits only (0 to 0o777), "
                         "not %R", a[4]);
            goto done;
        }
    }
    result = create_impl(sa_get_state(module), a[0], &name, &shape, dtype,
                         order == NPY_FORTRANORDER, (unsigned int)mode);
done:
    Py_XDECREF(dtype);
    return result;
}
