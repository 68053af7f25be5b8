/*
 * attach(name, ro=False)
 *
 * The hot path.  A name this process has mapped already, whose file is
 * unchanged, is served from the mapping cache for one statx.  Otherwise:
 * one open, statx and pread (no page of the mapping is touched to read the
 * header), validation against the file's size, space reserved behind holes
 * when mapping writable, one mmap of the header and the data only.
 */
#include "sharedarray.h"

/* Maps and wraps an opened, validated segment; NULL with an exception. */
static PyObject *
map_segment(sa_state *st, PyObject *nameobj, const sa_name *name, sa_probe *p,
            const sa_layout *lay, int ro)
{
    uint64_t end = lay->data_offset + lay->nbytes;
    void *addr = NULL;
    size_t maplen = 0;
    int err = 0;

    /* An empty 3.x array has no data to map: map its first byte. */
    if (end == 0) {
        end = 1;
    }
    Py_BEGIN_ALLOW_THREADS
        if (!ro) {
            /* /dev/shm is a tmpfs, whose block count is data only. */
            err = sa_reserve(p->fd, &p->st, end,
                             name->backend == SA_BACKEND_SHM);
        }
        if (err == 0) {
            err = sa_map(p->fd, &p->st, end, !ro, &addr, &maplen);
        }
    Py_END_ALLOW_THREADS
    if (err != 0) {
        return sa_raise_errno(err, nameobj);
    }
    return sa_mapping_new(st, addr, maplen, lay, nameobj, &p->st, &p->id, !ro);
}

PyObject *
sa_attach_impl(sa_state *st, PyObject *nameobj, const sa_name *name, int ro)
{
    sa_probe p = {.fd = -1};
    sa_layout lay = {.descr = NULL};
    PyObject *key, *mapping = NULL, *result = NULL;

    key = sa_cache_key(name, !ro);
    if (key == NULL) {
        return NULL;
    }
    mapping = sa_cache_lookup(st, key, name);
    if (mapping != NULL || PyErr_Occurred()) {
        goto done;
    }
    if (sa_open_segment(&p, nameobj, name, ro ? SA_TO_READ : SA_TO_WRITE) <
            0 ||
        sa_segment_layout(st, &p, nameobj, &lay) < 0) {
        goto done;
    }
    mapping = map_segment(st, nameobj, name, &p, &lay, ro);
    if (mapping == NULL) {
        goto done;
    }
    sa_cache_put(st, key, mapping);
done:
    if (mapping != NULL) {
        result = sa_array_new(mapping);
        Py_DECREF(mapping);
    }
    Py_XDECREF(lay.descr);
    Py_DECREF(key);
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
    return sa_attach_impl(sa_get_state(module), a[0], &name, ro);
}
