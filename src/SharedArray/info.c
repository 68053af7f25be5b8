/*
 * info(name)
 *
 * What list() says of one array, by name, without mapping it: a header
 * read with pread.  Raises as attach() would for a missing or invalid one.
 */
#include "sharedarray.h"

PyObject *
sa_info(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
        PyObject *kwnames)
{
    static const char *const names[] = {"name"};
    PyObject *a[1], *entry;
    sa_name name;
    sa_probe p;

    if (sa_parse_args("info", args, nargs, kwnames, names, 1, 1, a) < 0 ||
        sa_name_from_object(a[0], &name) < 0) {
        return NULL;
    }
    if (sa_open_segment(&p, a[0], &name, SA_TO_READ) < 0) {
        return NULL;
    }
    entry = sa_entry_new(sa_get_state(module), a[0], &p);
    sa_probe_close(&p);
    return entry;
}
