/*
 * dtypes in and out of .npy headers.  Plain descrs ("<f8", "|S10",
 * "<M8[ns]") are recognised in C and resolved through a cache; anything
 * else (structured, nested, escaped) goes to SharedArray._format, which
 * uses NumPy's own numpy.lib.format and ast.literal_eval.
 */
#include "sharedarray.h"

#include <string.h>
#include <unistd.h>

/* The cache only ever holds descrs seen in headers; keep it bounded. */
#define SA_DESCR_CACHE_MAX 512
/* numpy.lib.format's default max_header_size. */
#define SA_FOREIGN_DESCR_MAX 10000

/*
 * A dtype given as an argument is refused with exc; one read from a segment
 * (name given) makes the segment invalid: ValueError naming it.
 */
static void
refuse(PyObject *exc, PyObject *name, const char *fmt, PyArray_Descr *d)
{
    PyObject *msg = PyUnicode_FromFormat(fmt, (PyObject *)d);

    if (msg == NULL) {
        return;
    }
    if (name != NULL) {
        PyErr_Format(PyExc_ValueError, "%R is not a usable array: %U", name,
                     msg);
    }
    else {
        PyErr_SetObject(exc, msg);
    }
    Py_DECREF(msg);
}

int
sa_descr_check(PyArray_Descr *d, PyObject *name)
{
    if (d->type_num == NPY_OBJECT || PyDataType_REFCHK(d)) {
        refuse(PyExc_TypeError, name,
               "dtype %R holds Python objects or pointers, which cannot be "
               "shared between processes",
               d);
        return -1;
    }
    if (d->type_num < 0 || d->type_num >= NPY_NTYPES_LEGACY) {
        refuse(PyExc_TypeError, name,
               "dtype %R cannot be stored in a shared array: only NumPy's "
               "built-in non-object dtypes have a .npy description",
               d);
        return -1;
    }
    if (PyDataType_ELSIZE(d) <= 0) {
        refuse(PyExc_ValueError, name,
               "dtype %R has itemsize 0; give a size (e.g. 'S10')", d);
        return -1;
    }
    return 0;
}

PyObject *
sa_descr_literal(PyArray_Descr *d, int *utf8)
{
    PyObject *text = NULL, *str = NULL, *mod = NULL, *bytes = NULL;
    const unsigned char *b;
    Py_ssize_t i, n;

    if (!PyDataType_HASFIELDS(d) && !PyDataType_HASSUBARRAY(d)) {
        str = PyObject_GetAttrString((PyObject *)d, "str");
        if (str == NULL) {
            goto done;
        }
        text = PyUnicode_FromFormat("'%U'", str);
    }
    else {
        mod = PyImport_ImportModule("SharedArray._format");
        if (mod == NULL) {
            goto done;
        }
        text = PyObject_CallMethod(mod, "descr_literal", "O", (PyObject *)d);
    }
    if (text == NULL) {
        goto done;
    }
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "descr_literal did not return str");
        goto done;
    }
    bytes = PyUnicode_AsUTF8String(text);
    if (bytes == NULL) {
        goto done;
    }
    b = (const unsigned char *)PyBytes_AS_STRING(bytes);
    n = PyBytes_GET_SIZE(bytes);
    *utf8 = 0;
    for (i = 0; i < n; i++) {
        if (b[i] >= 0x80) {
            *utf8 = 1;
            break;
        }
    }
done:
    Py_XDECREF(text);
    Py_XDECREF(str);
    Py_XDECREF(mod);
    return bytes;
}

static PyObject *
invalid(PyObject *name, const char *what)
{
    PyErr_Format(PyExc_ValueError, "%R is not a valid array: %s", name,
                 what);
    return NULL;
}

/* A plain descr: cached, else NumPy's converter, checked against the C parse. */
static PyArray_Descr *
descr_plain(sa_state *st, const sa_header *h, const sa_simple_descr *sd,
            PyObject *name)
{
    PyObject *key = NULL;
    PyArray_Descr *d = NULL;

    key = PyUnicode_FromStringAndSize(h->body, (Py_ssize_t)h->body_len);
    if (key == NULL) {
        goto done;
    }
    d = (PyArray_Descr *)PyDict_GetItemWithError(st->descr_cache, key);
    if (d != NULL) {
        Py_INCREF(d);
        goto done;
    }
    if (PyErr_Occurred()) {
        goto done;
    }
    if (!PyArray_DescrConverter(key, &d)) {
        PyErr_Clear();
        invalid(name, "its header names a dtype NumPy does not know");
        goto done;
    }
    if (d->kind != sd->kind || (uint64_t)PyDataType_ELSIZE(d) != sd->itemsize) {
        Py_CLEAR(d);
        invalid(name, "its header names a dtype NumPy reads differently");
        goto done;
    }
    if (sa_descr_check(d, name) < 0) {
        Py_CLEAR(d);
        goto done;
    }
    if (PyDict_GET_SIZE(st->descr_cache) >= SA_DESCR_CACHE_MAX) {
        PyDict_Clear(st->descr_cache);
    }
    if (PyDict_SetItem(st->descr_cache, key, (PyObject *)d) < 0) {
        Py_CLEAR(d);
    }
done:
    Py_XDECREF(key);
    return d;
}

/*
 * Anything else: NumPy's own .npy code, through SharedArray._format.  Its
 * cost grows with the descr (a structured dtype with thousands of fields
 * takes seconds), so results are cached by text, and a file owned by
 * another user, who could plant it to stall everyone's list(), may not
 * have a descr longer than NumPy's own max_header_size.
 */
static PyArray_Descr *
descr_literal_eval(sa_state *st, const sa_probe *p, PyObject *name)
{
    const sa_header *h = &p->hdr;
    PyObject *key = NULL, *text = NULL, *mod = NULL, *res = NULL;
    PyArray_Descr *d = NULL;
    char tag = h->major == 3 ? 'u' : 'l';

    if (h->literal_len > SA_FOREIGN_DESCR_MAX && p->st.st_uid != geteuid()) {
        PyErr_Format(PyExc_ValueError,
                     "%R is not a valid array: its header's descr is %zu "
                     "bytes long, and a file owned by another user may have "
                     "at most %d (NumPy's max_header_size)",
                     name, h->literal_len, SA_FOREIGN_DESCR_MAX);
        return NULL;
    }
    /* Keyed by encoding and text: bytes never equal the str keys of
     * plain descrs. */
    key = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)h->literal_len + 1);
    if (key == NULL) {
        goto done;
    }
    PyBytes_AS_STRING(key)[0] = tag;
    memcpy(PyBytes_AS_STRING(key) + 1, h->literal, h->literal_len);
    d = (PyArray_Descr *)PyDict_GetItemWithError(st->descr_cache, key);
    if (d != NULL) {
        Py_INCREF(d);
        goto done;
    }
    if (PyErr_Occurred()) {
        goto done;
    }
    if (h->major == 3) {
        text = PyUnicode_DecodeUTF8(h->literal, (Py_ssize_t)h->literal_len,
                                    "strict");
    }
    else {
        text = PyUnicode_DecodeLatin1(h->literal, (Py_ssize_t)h->literal_len,
                                      "strict");
    }
    if (text == NULL) {
        PyErr_Clear();
        invalid(name, "its header is not valid text");
        goto done;
    }
    mod = PyImport_ImportModule("SharedArray._format");
    if (mod == NULL) {
        goto done;
    }
    res = PyObject_CallMethod(mod, "dtype_from_literal", "O", text);
    if (res == NULL) {
        if (PyErr_ExceptionMatches(PyExc_MemoryError)) {
            goto done;
        }
        PyErr_Clear();
        invalid(name, "its header's descr is not a dtype NumPy can read");
        goto done;
    }
    if (!PyArray_DescrCheck(res)) {
        invalid(name, "its header's descr is not a dtype");
        goto done;
    }
    if (sa_descr_check((PyArray_Descr *)res, name) < 0) {
        goto done;
    }
    if (PyDict_GET_SIZE(st->descr_cache) >= SA_DESCR_CACHE_MAX) {
        PyDict_Clear(st->descr_cache);
    }
    if (PyDict_SetItem(st->descr_cache, key, res) < 0) {
        goto done;
    }
    d = (PyArray_Descr *)res;
    res = NULL;
done:
    Py_XDECREF(key);
    Py_XDECREF(text);
    Py_XDECREF(mod);
    Py_XDECREF(res);
    return d;
}

/* A SharedArray 3.x trailer: NumPy type number plus itemsize. */
static PyArray_Descr *
descr_legacy(const sa_probe *p, PyObject *name, uint64_t *nbytes)
{
    const sa_legacy *lg = &p->legacy;
    PyArray_Descr *d;

    if (lg->typenum >= NPY_NTYPES_LEGACY || lg->typenum == NPY_OBJECT) {
        return (PyArray_Descr *)invalid(
            name, "its SharedArray 3.x trailer has an unusable type number");
    }
    d = PyArray_DescrNewFromType(lg->typenum);
    if (d == NULL) {
        return NULL;
    }
    if (PyDataType_ELSIZE(d) == 0) {
        /* Flexible (S, U, V): the trailer carries the size. */
        if (lg->typenum == NPY_UNICODE && lg->itemsize % 4 != 0) {
            Py_DECREF(d);
            return (PyArray_Descr *)invalid(
                name, "its SharedArray 3.x trailer has a bad itemsize");
        }
        PyDataType_SET_ELSIZE(d, lg->itemsize);
    }
    if (PyDataType_ELSIZE(d) != lg->itemsize || sa_descr_check(d, name) < 0) {
        if (!PyErr_Occurred()) {
            invalid(name, "its SharedArray 3.x trailer has a bad itemsize");
        }
        Py_DECREF(d);
        return NULL;
    }
    *nbytes = lg->size;
    return d;
}

/* The dtype of an intact .npy header, or NULL with ValueError. */
static PyArray_Descr *
descr_npy(sa_state *st, const sa_probe *p, PyObject *name)
{
    const sa_header *h = &p->hdr;
    sa_simple_descr sd;

    if (h->body != NULL &&
        sa_descr_parse_simple(h->body, h->body_len, &sd) == 0) {
        return descr_plain(st, h, &sd, name);
    }
    return descr_literal_eval(st, p, name);
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
sa_probe_resolve(sa_state *st, sa_probe *p, PyObject *name, sa_layout *out)
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
    if (p->status == SA_HDR_NOT_NPY) {
        invalid(name, "no .npy header");
        return -1;
    }
    if (p->status != SA_HDR_OK && p->status != SA_HDR_LEGACY) {
        PyErr_Format(PyExc_ValueError, "%R is not a valid array: %s", name,
                     p->why ? p->why : "corrupt header");
        return -1;
    }
    if (p->status == SA_HDR_OK) {
        d = descr_npy(st, p, name);
        if (d == NULL) {
            return -1;
        }
        /* As NumPy counts: zero-length sides aside, the size must fit. */
        if (sa_header_nbytes(h->dims, h->ndim,
                             (uint64_t)PyDataType_ELSIZE(d),
                             (uint64_t)NPY_MAX_INTP, &nbytes) < 0) {
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
            if (p->status == SA_HDR_LEGACY) {
                Py_CLEAR(d);
            }
        }
    }
    if (p->status == SA_HDR_LEGACY) {
        d = descr_legacy(p, name, &nbytes);
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
        PyErr_Format(PyExc_ValueError,
                     "%R is not a valid array: file is truncated (%llu "
                     "bytes of data expected after the header, %llu present)",
                     name, (unsigned long long)nbytes,
                     (unsigned long long)((uint64_t)p->st.st_size >
                                                  h->data_offset
                                              ? (uint64_t)p->st.st_size -
                                                    h->data_offset
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
