/*
 * attach(name, ro=False)
 *
 * The hot path: one open, fstat and pread (no page of the mapping is
 * touched to read the header), validation, one mmap.  The header is checked
 * against the file size before anything is mapped.
 */
#include "sharedarray.h"

#include <fcntl.h>

static PyObject *
attach_impl(sa_state *st, PyObject *nameobj, const sa_name *name, int ro)
{
    sa_probe p;
    PyArray_Descr *d = NULL;
    PyObject *mapping, *result = NULL;
    uint64_t nbytes;
    void *addr = NULL;
    size_t maplen = 0;
    int err;

    Py_BEGIN_ALLOW_THREADS
    err = sa_probe_open(&p, AT_FDCWD, name->path, !ro,
                        name->backend == SA_BACKEND_SHM);
    Py_END_ALLOW_THREADS
    if (err != 0) {
        return sa_raise_errno(err, nameobj);
    }
    d = sa_probe_resolve(st, &p, nameobj, &nbytes);
    if (d == NULL) {
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    err = sa_map(p.fd, &p.st, (uint64_t)p.st.st_size, !ro, &addr, &maplen);
    Py_END_ALLOW_THREADS
    if (err != 0) {
        sa_raise_errno(err, nameobj);
        goto done;
    }
    mapping = sa_mapping_new(st, addr, maplen, p.hdr.data_offset, nbytes,
                             nameobj, &p.st, !ro);
    if (mapping == NULL) {
        goto done;
    }
    result = sa_array_new(mapping, d, p.hdr.ndim, p.hdr.dims,
                          p.hdr.fortran_order, !ro);
    d = NULL;
done:
    Py_XDECREF(d);
    sa_probe_close(&p);
    return result;
}

PyObject *
sa_attach(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames)
{
    static const char *const names[] = {"name", "ro"};
    PyObject *a[2];
    sa_name name;
    int ro = 0;

    if (sa_parse_args("attach", args, nargs, kwnames, names, 2, 1, a) < 0 ||
        sa_name_from_object(a[0], &name) < 0) {
        return NULL;
    }
    if (a[1] != NULL && (ro = PyObject_IsTrue(a[1])) < 0) {
        return NULL;
    }
    return attach_impl(sa_get_state(module), a[0], &name, ro);
}
