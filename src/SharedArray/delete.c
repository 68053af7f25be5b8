/*
 * delete(name)
 *
 * Unlinks the name only after reading it back as an array: a file that is
 * not one (no .npy magic, a symlink, a FIFO) is refused with ValueError.
 * Existing attachments keep their mapping.
 */
#include "sharedarray.h"

#include <errno.h>
#include <unistd.h>

static PyObject *
delete_impl(sa_state *st, PyObject *nameobj, const sa_name *name)
{
    sa_probe p;
    PyObject *result = NULL;
    int err;

    if (sa_open_segment(&p, nameobj, name, SA_TO_DELETE) < 0) {
        return NULL;
    }
    /* A damaged header still marks the file as ours, and so does an
     * unpublished one (being made, or its creator died: delete is the way
     * to remove it); no magic does not. */
    if (!p.regular || p.kind == SA_SEG_OTHER) {
        PyErr_Format(PyExc_ValueError, "%R is not an array (%s); not deleted",
                     nameobj,
                     p.regular ? "no .npy header" : "not a regular file");
        goto done;
    }
    /* Done reading: the checked unlink of a shm object opens it again,
     * and one free descriptor must be enough (EMFILE). */
    close(p.fd);
    p.fd = -1;
    Py_BEGIN_ALLOW_THREADS
        err = sa_unlink_checked(&p, name);
    Py_END_ALLOW_THREADS
    if (err == ESTALE) {
        /* FileNotFoundError, with errno and filename like any other. */
        sa_raise_errno_msg(ENOENT, nameobj,
                           "replaced while being deleted; left in place");
        goto done;
    }
    if (err != 0) {
        sa_raise_errno(err, nameobj);
        goto done;
    }
    /* Memory of a deleted segment is not kept mapped by our cache. */
    sa_cache_forget(st, name);
    result = Py_None;
    Py_INCREF(result);
done:
    sa_probe_close(&p);
    return result;
}

PyObject *
sa_delete(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames)
{
    static const char *const names[] = {"name"};
    PyObject *a[1];
    sa_name name;

    if (sa_parse_args("delete", args, nargs, kwnames, names, 1, 1, a) < 0 ||
        sa_name_from_object(a[0], &name) < 0) {
        return NULL;
    }
    return delete_impl(sa_get_state(module), a[0], &name);
}
