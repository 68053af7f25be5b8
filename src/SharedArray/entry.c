/*
 * ArrayDesc, what list() and info() say of an array, and ArrayName, the str
 * its name is.
 */
#include "sharedarray.h"

static PyStructSequence_Field entry_fields[] = {
    {"name", "name as attach() takes it (list(): the bare shm name)"},
    {"dtype", "numpy.dtype of the elements"},
    {"dims", "shape, a tuple of ints"},
    {"nbytes", "size of the data in bytes"},
    {"order", "'C' or 'F'"},
    {"mode", "permission bits of the segment"},
    {"uid", "owner's user id"},
    {"mtime", "last modification, seconds since the epoch"},
    {"format", "'npy', or 'sharedarray3' for a SharedArray 3.x segment"},
    {NULL, NULL},
};

PyStructSequence_Desc sa_entry_desc = {
    .name = "SharedArray.ArrayDesc",
    .doc = "An array described by SharedArray.list() or SharedArray.info().",
    .fields = entry_fields,
    /* (name, dtype, dims) unpack as in SharedArray 3.x; nbytes is extra. */
    .n_in_sequence = 3,
};

/*
 * ArrayDesc.name: a str, as new code wants, whose decode() gives the name
 * back as SharedArray 3.x code expects of the bytes it used to get there
 * (e.name.decode(), e.name.decode("ascii")): the file name's bytes
 * (os.fsencode) decoded as asked, so the result is a plain str.
 */
static PyObject *
name_decode(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    static const char *const names[] = {"encoding", "errors"};
    const char *encoding = "utf-8", *errors = "strict";
    PyObject *a[2], *raw, *res;
    int i;

    if (sa_parse_args("decode", args, nargs, kwnames, names, 2, 0, a) < 0) {
        return NULL;
    }
    for (i = 0; i < 2; i++) {
        if (a[i] != NULL && !PyUnicode_Check(a[i])) {
            return PyErr_Format(PyExc_TypeError,
                                "decode() argument '%s' must be str, not "
                                "%.100s",
                                names[i], Py_TYPE(a[i])->tp_name);
        }
    }
    if ((a[0] != NULL && (encoding = PyUnicode_AsUTF8(a[0])) == NULL) ||
        (a[1] != NULL && (errors = PyUnicode_AsUTF8(a[1])) == NULL)) {
        return NULL;
    }
    raw = PyUnicode_EncodeFSDefault(self);
    if (raw == NULL) {
        return NULL;
    }
    res = PyUnicode_Decode(PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw),
                           encoding, errors);
    Py_DECREF(raw);
    return res;
}

static PyMethodDef name_methods[] = {
    {"decode", (PyCFunction)(void (*)(void))name_decode,
     METH_FASTCALL | METH_KEYWORDS,
     PyDoc_STR("decode(encoding='utf-8', errors='strict')\n--\n\n"
               "The name as SharedArray 3.x code decodes it: "
               "os.fsencode(name).decode(encoding, errors), a plain str.")},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot name_slots[] = {
    {Py_tp_methods, name_methods},
    {Py_tp_doc,
     PyDoc_STR("The name of an array in an ArrayDesc: a str that also has "
               "3.x's bytes.decode().")},
    {0, NULL},
};

PyType_Spec sa_name_spec = {
    .name = "SharedArray.ArrayName",
    .basicsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = name_slots,
};

/*
 * An ArrayName of the str name: str's own constructor called directly,
 * without the type call around it (list() makes thousands).
 */
static PyObject *
name_new(sa_state *st, PyObject *name)
{
    PyObject *args = PyTuple_Pack(1, name), *res;

    if (args == NULL) {
        return NULL;
    }
    res = st->name_type->tp_new(st->name_type, args, NULL);
    Py_DECREF(args);
    return res;
}

PyObject *
sa_entry_new(sa_state *st, PyObject *name, sa_probe *p)
{
    PyObject *entry = NULL, *v;
    sa_layout lay;
    int i;

    if (sa_segment_layout(st, p, name, &lay) < 0) {
        return NULL;
    }
    entry = PyStructSequence_New(st->entry_type);
    if (entry == NULL) {
        Py_DECREF(lay.descr);
        return NULL;
    }
    /* A failed item leaves NULL in place, which the entry's dealloc skips. */
    PyStructSequence_SET_ITEM(entry, 0, name_new(st, name));
    PyStructSequence_SET_ITEM(entry, 1, (PyObject *)lay.descr);
    v = PyTuple_New(lay.ndim);
    for (i = 0; v != NULL && i < lay.ndim; i++) {
        PyObject *dim = PyLong_FromLongLong(lay.dims[i]);
        if (dim == NULL) {
            Py_CLEAR(v);
            break;
        }
        PyTuple_SET_ITEM(v, i, dim);
    }
    PyStructSequence_SET_ITEM(entry, 2, v);
    PyStructSequence_SET_ITEM(entry, 3,
                              PyLong_FromUnsignedLongLong(lay.nbytes));
    v = lay.fortran ? st->str_f : st->str_c;
    Py_INCREF(v);
    PyStructSequence_SET_ITEM(entry, 4, v);
    PyStructSequence_SET_ITEM(entry, 5,
                              PyLong_FromLong((long)(p->st.st_mode & 07777)));
    PyStructSequence_SET_ITEM(
        entry, 6, PyLong_FromUnsignedLong((unsigned long)p->st.st_uid));
    PyStructSequence_SET_ITEM(
        entry, 7,
        PyFloat_FromDouble((double)SA_MTIME_SEC(&p->st) +
                           (double)SA_MTIME_NSEC(&p->st) * 1e-9));
    v = p->kind == SA_SEG_LEGACY ? st->str_legacy : st->str_npy;
    Py_INCREF(v);
    PyStructSequence_SET_ITEM(entry, 8, v);
    for (i = 0; i < 9; i++) {
        if (PyStructSequence_GET_ITEM(entry, i) == NULL) {
            Py_DECREF(entry);
            return NULL;
        }
    }
    return entry;
}
