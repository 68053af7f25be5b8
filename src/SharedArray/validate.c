/*
 * Segment validation: whether an opened file is an array, and how it is
 * laid out.  attach, info and list all go through here, so they accept
 * exactly the same files.  Also opening a named segment from Python: the
 * GIL released, signal handlers run on EINTR (PEP 475), errors raised.
 */
#include "sharedarray.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

static PyObject *
invalid(PyObject *name, const char *what)
{
    PyErr_Format(PyExc_ValueError, "%R is not a valid array: %s", name, what);
    return NULL;
}

/* sa_probe_py, or with shm_object for a shm_open(3) name (sa_probe_shm). */
static int
probe_py(sa_probe *p, int dirfd, const char *path, int writable, int nofollow,
         int shm_object)
{
    int err;

    for (;;) {
        Py_BEGIN_ALLOW_THREADS
            err = shm_object
                      ? sa_probe_shm(p, path, writable)
                      : sa_probe_open(p, dirfd, path, writable, nofollow);
        Py_END_ALLOW_THREADS
        if (err != EINTR) {
            return err;
        }
        if (PyErr_CheckSignals() < 0) {
            return -1;
        }
    }
}

int
sa_probe_py(sa_probe *p, int dirfd, const char *path, int writable,
            int nofollow)
{
    return probe_py(p, dirfd, path, writable, nofollow, 0);
}

/* Whether the shm object or file under name can be opened read-only. */
static int
readable(const sa_name *name)
{
    int fd;

    if (!name->shm_object) {
        return access(name->path, R_OK) == 0;
    }
    fd = shm_open(name->path, O_RDONLY | (SA_SHM_FILES ? O_NONBLOCK : 0), 0);
    if (fd < 0) {
        return 0;
    }
    close(fd);
    return 1;
}

int
sa_open_segment(sa_probe *p, PyObject *nameobj, const sa_name *name,
                sa_purpose purpose)
{
    /* Except to delete: there the link itself would be removed, not the
     * array, so delete never follows one. */
    int nofollow = sa_name_nofollow(name) || purpose == SA_TO_DELETE;
    int err = probe_py(p, AT_FDCWD, name->path, purpose == SA_TO_WRITE,
                       nofollow, name->shm_object);

    if (err == ELOOP && purpose == SA_TO_DELETE) {
        /* Not a failed call: a link is not an array. */
        PyErr_Format(PyExc_ValueError,
                     "%R is a symbolic link, not an array; not deleted",
                     nameobj);
    }
    else if (err == EACCES && purpose == SA_TO_WRITE && readable(name)) {
        sa_raise_errno_msg(EACCES, nameobj,
                           "Permission denied: readable but not writable "
                           "for you; attach(name, ro=True) maps it "
                           "read-only");
    }
    else if (err > 0) {
        sa_raise_errno(err, nameobj);
    }
    return err == 0 ? 0 : -1;
}

/* Dimensions a subarray dtype adds when NumPy builds the array. */
static int
subarray_ndim(PyArray_Descr *d)
{
    int n = 0;

    while (PyDataType_HASSUBARRAY(d)) {
        PyObject *shape = PyDataType_SUBARRAY(d)->shape;
        n += PyTuple_Check(shape) ? (int)PyTuple_GET_SIZE(shape) : 1;
        d = PyDataType_SUBARRAY(d)->base;
    }
    return n;
}

int
sa_segment_layout(sa_state *st, sa_probe *p, PyObject *name, sa_layout *out)
{
    const sa_header *h = &p->hdr;
    PyArray_Descr *d = NULL;
    uint64_t room, nbytes;
    int err, i;

    out->descr = NULL;
    if (!p->regular) {
        invalid(name, "not a regular file");
        return -1;
    }
    if (p->kind == SA_SEG_OTHER) {
        invalid(name, "no .npy header");
        return -1;
    }
    if (p->kind == SA_SEG_INCOMPLETE) {
        /* Not there yet, as far as attach is concerned (a creator that
         * died before publishing leaves it so: delete removes it). */
        sa_raise_errno_msg(ENOENT, name,
                           "No such array yet: it is still being created");
        return -1;
    }
    if (p->kind == SA_SEG_DAMAGED) {
        PyErr_Format(PyExc_ValueError, "%R is not a valid array: %s", name,
                     p->why ? p->why : "corrupt header");
        return -1;
    }
    if (p->kind == SA_SEG_NPY) {
        d = sa_descr_of_header(st, p, name);
        if (d == NULL) {
            return -1;
        }
        /* As NumPy counts: zero-length sides aside, the size must fit. */
        if (sa_header_nbytes(h->dims, h->ndim, (uint64_t)PyDataType_ELSIZE(d),
                             (uint64_t)NPY_MAX_INTP, &nbytes) != 0) {
            Py_DECREF(d);
            invalid(name, "its shape is too large");
            return -1;
        }
        /*
         * .npy data runs to the end of the file (ours keep one spare byte
         * when empty).  If it does not, a 3.x segment whose data happens
         * to start with a .npy image is told by its trailer: when that
         * trailer accounts for the file exactly, the file is 3.x's.
         */
        if ((uint64_t)p->st.st_size != h->data_offset + nbytes &&
            (uint64_t)p->st.st_size != h->data_offset + nbytes + 1) {
            Py_BEGIN_ALLOW_THREADS
                err = sa_probe_legacy(p, 1);
            Py_END_ALLOW_THREADS
            if (err != 0) {
                Py_DECREF(d);
                sa_raise_errno(err, name);
                return -1;
            }
            if (p->kind == SA_SEG_LEGACY) {
                Py_CLEAR(d);
            }
        }
    }
    if (p->kind == SA_SEG_LEGACY) {
        d = sa_descr_of_legacy(p, name, &nbytes);
        if (d == NULL) {
            return -1;
        }
    }
    if (h->ndim + subarray_ndim(d) > SA_RUNTIME_MAXDIMS) {
        Py_DECREF(d);
        invalid(name, "its shape (with the dtype's subarray dimensions) has "
                      "more dimensions than this NumPy supports");
        return -1;
    }
    /* The data must lie inside the file, or touching it would SIGBUS. */
    if ((uint64_t)p->st.st_size < h->data_offset ||
        nbytes > (room = (uint64_t)p->st.st_size - h->data_offset)) {
        Py_DECREF(d);
        PyErr_Format(
            PyExc_ValueError,
            "%R is not a valid array: file is truncated (%llu "
            "bytes of data expected after the header, %llu present)",
            name, (unsigned long long)nbytes,
            (unsigned long long)((uint64_t)p->st.st_size > h->data_offset
                                     ? (uint64_t)p->st.st_size - h->data_offset
                                     : 0));
        return -1;
    }
    out->descr = d;
    out->ndim = h->ndim;
    for (i = 0; i < h->ndim; i++) {
        out->dims[i] = h->dims[i];
    }
    out->fortran = h->fortran_order;
    out->data_offset = h->data_offset;
    out->nbytes = nbytes;
    return 0;
}
