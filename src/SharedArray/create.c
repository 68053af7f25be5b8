/*
 * create(name, shape, dtype=float, order='C', mode=0o600, exist_ok=False)
 * and from_array(name, array, mode=0o600)
 *
 * Builds the whole segment under no name (O_TMPFILE), reserves its blocks,
 * and only then links it into place without replacing anything: a racing
 * attach sees FileNotFoundError or the complete array, and a failure at any
 * step leaves nothing behind.
 */
#include "sharedarray.h"

#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* How long create(exist_ok=True) waits for another creator to publish. */
#define SA_EXIST_OK_WAIT_MS 10000

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

/* Permission bits only, applied exactly; 0o600 when obj is NULL. */
static int
convert_mode(PyObject *obj, unsigned int *mode)
{
    long v;

    *mode = 0600;
    if (obj == NULL) {
        return 0;
    }
    if (!PyLong_Check(obj) || PyBool_Check(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "mode must be an int such as 0o600, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    v = PyLong_AsLong(obj);
    if (v == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return -1;
        }
        PyErr_Clear();
    }
    if (v < 0 || v > 0777) {
        PyErr_Format(PyExc_ValueError,
                     "mode must hold permission bits only (0 to 0o777), "
                     "not %R",
                     obj);
        return -1;
    }
    *mode = (unsigned int)v;
    return 0;
}

static int
convert_shape(PyObject *obj, shape_t *shape)
{
    PyArray_Dims dims = {NULL, 0};
    int i, rc = -1;

    if (obj == Py_None) {
        PyErr_SetString(
            PyExc_TypeError,
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

/*
 * prepare, retried while a signal interrupts the reservation of space, and
 * while another process creates the same name (then, once it is done, the
 * name exists and prepare says EEXIST).  Waits in slices so that Ctrl-C
 * still works.
 */
static int
prepare(sa_create_job *job)
{
    int err;

    for (;;) {
        Py_BEGIN_ALLOW_THREADS
            if (job->claim.wait_fd >= 0) {
                sa_claim_wait(&job->claim, 100);
                err = EINTR;
            }
            else {
                err = sa_create_prepare(job);
            }
        Py_END_ALLOW_THREADS
        if (err != EINTR && err != EBUSY) {
            return err;
        }
        /* Nothing is left behind; go on unless a handler raised (e.g.
         * KeyboardInterrupt). */
        if (PyErr_CheckSignals() < 0) {
            sa_create_abort(job);
            return -1;
        }
    }
}

/* OSError(ENOSPC) that says how much was asked and how much there is. */
static void
raise_no_space(PyObject *nameobj, const sa_create_job *job)
{
    struct statvfs fs;
    PyObject *msg;

    if (job->name->dir[0] == '\0' || statvfs(job->name->dir, &fs) != 0) {
        sa_raise_errno(ENOSPC, nameobj);
        return;
    }
    msg = PyUnicode_FromFormat(
        "No space left on device: the array needs %llu bytes, %s has %llu "
        "free",
        (unsigned long long)job->total, job->name->dir,
        (unsigned long long)fs.f_bavail * (unsigned long long)fs.f_frsize);
    if (msg != NULL) {
        sa_raise_errno_text(ENOSPC, nameobj, msg);
        Py_DECREF(msg);
    }
}

/*
 * Makes the segment of job, laid out as lay, and publishes it: the new
 * array, or NULL with the exception (FileExistsError when the name is
 * taken).  src, if given, is copied in before the segment gets its name,
 * so nobody ever sees it half filled.  Leaves nothing behind on failure.
 */
static PyObject *
make_segment(sa_state *st, PyObject *nameobj, sa_create_job *job,
             const sa_layout *lay, PyArrayObject *src)
{
    PyObject *mapping, *arr = NULL, *result = NULL;
    int err;

    job->out_of_space = 0;
    err = prepare(job);
    if (err == ENOSPC) {
        raise_no_space(nameobj, job);
        goto done;
    }
    if (err != 0) {
        if (err > 0) {
            sa_raise_errno(err, nameobj);
        }
        goto done;
    }
    /* The owner takes the map now (and unmaps it if this fails). */
    mapping = sa_mapping_new(st, job->addr, job->size, lay, nameobj, &job->st,
                             &job->id, 1);
    job->addr = NULL;
    if (mapping == NULL) {
        goto done;
    }
    arr = sa_array_new(mapping);
    Py_DECREF(mapping);
    if (arr == NULL) {
        goto done;
    }
    if (src != NULL && PyArray_CopyInto((PyArrayObject *)arr, src) < 0) {
        goto done;
    }
    /* A Ctrl-C that came while we were reserving or copying (perhaps
     * delivered to another thread, so no EINTR) cancels the create: the
     * caller gets KeyboardInterrupt, so the name must not appear. */
    if (PyErr_CheckSignals() < 0) {
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
        err = sa_create_publish(job);
    Py_END_ALLOW_THREADS
    if (err != 0) {
        sa_raise_errno(err, nameobj);
        goto done;
    }
    result = arr;
    arr = NULL;
done:
    sa_create_abort(job);
    Py_XDECREF(arr);
    return result;
}

/* A tuple of the first n dims. */
static PyObject *
dims_tuple(int n, const int64_t *dims)
{
    PyObject *t = PyTuple_New(n);
    int i;

    for (i = 0; t != NULL && i < n; i++) {
        PyObject *v = PyLong_FromLongLong(dims[i]);
        if (v == NULL) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

/*
 * create(exist_ok=True) found the name taken: the array there, attached
 * writable, if it is laid out as asked; else FileExistsError naming both
 * layouts.
 */
static PyObject *
attach_existing(sa_state *st, PyObject *nameobj, const sa_name *name,
                const sa_layout *want)
{
    PyArrayObject *arr;
    sa_mapping *m;
    PyObject *have_shape = NULL, *want_shape = NULL, *msg = NULL, *exc;
    int i, same;

    arr = (PyArrayObject *)sa_attach_impl(st, nameobj, name, 0);
    if (arr == NULL) {
        return NULL;
    }
    m = (sa_mapping *)PyArray_BASE(arr);
    same = m->ndim == want->ndim &&
           PyArray_EquivTypes(m->descr, want->descr) &&
           (want->ndim < 2 || m->fortran == want->fortran);
    for (i = 0; same && i < want->ndim; i++) {
        same = m->dims[i] == want->dims[i];
    }
    if (same) {
        return (PyObject *)arr;
    }
    have_shape = dims_tuple(m->ndim, m->dims);
    want_shape = dims_tuple(want->ndim, want->dims);
    if (have_shape != NULL && want_shape != NULL) {
        msg = PyUnicode_FromFormat(
            "%R exists with shape %R, dtype %R, order '%s'; asked for shape "
            "%R, dtype %R, order '%s'",
            nameobj, have_shape, (PyObject *)m->descr, m->fortran ? "F" : "C",
            want_shape, (PyObject *)want->descr, want->fortran ? "F" : "C");
    }
    if (msg != NULL) {
        exc = PyObject_CallFunction(PyExc_FileExistsError, "iOO", EEXIST, msg,
                                    nameobj);
        if (exc != NULL) {
            PyErr_SetObject(PyExc_FileExistsError, exc);
            Py_DECREF(exc);
        }
    }
    Py_XDECREF(msg);
    Py_XDECREF(have_shape);
    Py_XDECREF(want_shape);
    Py_DECREF(arr);
    return NULL;
}

/*
 * Shared by create() and from_array(): builds the header once, then makes
 * the segment (or, with exist_ok, attaches the one that is there).
 */
static PyObject *
create_impl(sa_state *st, PyObject *nameobj, const sa_name *name,
            shape_t *shape, PyArray_Descr *dtype, int fortran,
            unsigned int mode, PyArrayObject *src, int exist_ok)
{
    PyArray_Descr *d = NULL;
    PyObject *literal = NULL, *result = NULL;
    sa_layout lay;
    unsigned char *header = NULL;
    size_t header_len = 0;
    uint64_t nbytes;
    sa_create_job job = {
        .name = name,
        .mode = mode,
        .fd = -1,
        .claim = {.fd = -1, .wait_fd = -1},
    };
    long page;
    int utf8 = 0, err, tries;
    long waited = 0;

    d = flatten_subarray(dtype, shape);
    if (d == NULL || sa_descr_check(d, NULL) < 0) {
        goto done;
    }
    if (sa_header_nbytes(shape->dims, shape->ndim,
                         (uint64_t)PyDataType_ELSIZE(d),
                         (uint64_t)NPY_MAX_INTP, &nbytes) != 0) {
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
    err = sa_header_build(
        PyBytes_AS_STRING(literal), (size_t)PyBytes_GET_SIZE(literal), utf8,
        fortran, shape->ndim, shape->dims, page > 0 ? (size_t)page : 4096,
        &header, &header_len);
    if (err == ENOMEM) {
        PyErr_NoMemory();
        goto done;
    }
    if (err != 0) {
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
    /* One spare byte for an empty array: NumPy < 1.25's np.memmap cannot
     * map zero bytes at the very end of a file.  Readers ignore it. */
    job.total = header_len + (nbytes ? nbytes : 1);
    lay.descr = d;
    lay.ndim = shape->ndim;
    memcpy(lay.dims, shape->dims, sizeof(int64_t) * (size_t)shape->ndim);
    lay.fortran = fortran;
    lay.data_offset = header_len;
    lay.nbytes = nbytes;

    /* With exist_ok, many processes may race: each either makes the array
     * or attaches the one another made; one deleted between the two is
     * made again.  Where a segment is visible before it is published
     * (posix backend: attach says FileNotFoundError until then), the
     * others wait for its creator, with growing pauses, up to
     * SA_EXIST_OK_WAIT_MS in all. */
    for (tries = 0;; tries++) {
        result = make_segment(st, nameobj, &job, &lay, src);
        if (result != NULL || !exist_ok || waited > SA_EXIST_OK_WAIT_MS ||
            !PyErr_ExceptionMatches(PyExc_FileExistsError)) {
            break;
        }
        PyErr_Clear();
        result = attach_existing(st, nameobj, name, &lay);
        if (result != NULL ||
            !PyErr_ExceptionMatches(PyExc_FileNotFoundError)) {
            break;
        }
        PyErr_Clear();
        if (tries >= 2) {
            long ms = tries < 9 ? 1L << (tries - 2) : 100;
            struct timespec pause = {.tv_sec = 0, .tv_nsec = ms * 1000000L};

            Py_BEGIN_ALLOW_THREADS
                nanosleep(&pause, NULL);
            Py_END_ALLOW_THREADS
            waited += ms;
            if (PyErr_CheckSignals() < 0) {
                break;
            }
        }
    }
    if (result == NULL && exist_ok && waited > SA_EXIST_OK_WAIT_MS &&
        PyErr_ExceptionMatches(PyExc_FileExistsError)) {
        PyErr_Clear();
        sa_raise_errno_msg(EEXIST, nameobj,
                           "File exists, but was not published within 10 s: "
                           "its creator is slow or died (delete() removes "
                           "it)");
    }
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
    static const char *const names[] = {"name",  "shape", "dtype",
                                        "order", "mode",  "exist_ok"};
    PyObject *a[6];
    PyArray_Descr *dtype = NULL;
    PyObject *result = NULL;
    sa_name name;
    shape_t shape = {0};
    NPY_ORDER order = NPY_CORDER;
    unsigned int mode;
    int exist_ok = 0;

    if (sa_parse_args("create", args, nargs, kwnames, names, 6, 2, a) < 0 ||
        sa_name_from_object(a[0], &name) < 0 ||
        convert_shape(a[1], &shape) < 0) {
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
    if (convert_mode(a[4], &mode) < 0) {
        goto done;
    }
    if (a[5] != NULL && (exist_ok = PyObject_IsTrue(a[5])) < 0) {
        goto done;
    }
    result = create_impl(sa_get_state(module), a[0], &name, &shape, dtype,
                         order == NPY_FORTRANORDER, (unsigned int)mode, NULL,
                         exist_ok);
done:
    Py_XDECREF(dtype);
    return result;
}

PyObject *
sa_from_array(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames)
{
    static const char *const names[] = {"name", "array", "mode"};
    PyObject *a[3], *result = NULL;
    PyArrayObject *src = NULL;
    PyArray_Descr *dtype;
    sa_name name;
    shape_t shape = {0};
    unsigned int mode;
    int i, fortran;

    if (sa_parse_args("from_array", args, nargs, kwnames, names, 3, 2, a) <
            0 ||
        sa_name_from_object(a[0], &name) < 0 ||
        convert_mode(a[2], &mode) < 0) {
        return NULL;
    }
    src = (PyArrayObject *)PyArray_FROM_O(a[1]);
    if (src == NULL) {
        return NULL;
    }
    shape.ndim = PyArray_NDIM(src);
    for (i = 0; i < shape.ndim; i++) {
        shape.dims[i] = PyArray_DIM(src, i);
    }
    /* Keep a Fortran-ordered source Fortran-ordered: the copy is a memcpy. */
    fortran = PyArray_NDIM(src) > 1 && PyArray_IS_F_CONTIGUOUS(src) &&
              !PyArray_IS_C_CONTIGUOUS(src);
    dtype = PyArray_DESCR(src);
    result = create_impl(sa_get_state(module), a[0], &name, &shape, dtype,
                         fortran, mode, src, 0);
    Py_DECREF(src);
    return result;
}
