/*
 * dtypes in and out of headers: which dtypes may be shared, the descr
 * literal written for one, and the dtype read from a .npy header or a 3.x
 * trailer.  Plain descrs ("<f8", "|S10", "<M8[ns]") are recognised in C and
 * resolved through a cache; anything else (structured, nested, escaped)
 * goes to SharedArray._format, which uses NumPy's own numpy.lib.format and
 * ast.literal_eval.
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
        /* dtype=str gives '<U0': say what the user most likely meant. */
        refuse(PyExc_ValueError, name,
               d->kind == 'U'   ? "dtype %R has itemsize 0; give a length "
                                  "in characters, e.g. 'U10' (str of up to "
                                  "10 characters)"
               : d->kind == 'S' ? "dtype %R has itemsize 0; give a length "
                                  "in bytes, e.g. 'S10' (bytes of up to 10)"
                                : "dtype %R has itemsize 0; give a size, "
                                  "e.g. 'V8'",
               d);
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

/* The dtype cached under key as a new reference; NULL (no exception) when
 * there is none. */
static PyArray_Descr *
cached(sa_state *st, PyObject *key)
{
    PyObject *d = PyDict_GetItemWithError(st->descr_cache, key);

    Py_XINCREF(d);
    return (PyArray_Descr *)d;
}

/* Caches d under key; the cache only ever holds descrs seen in headers,
 * and starts again when full.  -1 on error. */
static int
remember(sa_state *st, PyObject *key, PyArray_Descr *d)
{
    if (PyDict_GET_SIZE(st->descr_cache) >= SA_DESCR_CACHE_MAX) {
        PyDict_Clear(st->descr_cache);
    }
    return PyDict_SetItem(st->descr_cache, key, (PyObject *)d);
}

static PyObject *
invalid(PyObject *name, const char *what)
{
    PyErr_Format(PyExc_ValueError, "%R is not a valid array: %s", name, what);
    return NULL;
}

/* Whether body is the text of the plain descr resolved last. */
static int
is_last(const sa_state *st, const char *body, size_t len)
{
    return st->descr_last != NULL && st->descr_last_len == len &&
           memcmp(st->descr_last_text, body, len) == 0;
}

/* Remembers d as the plain descr resolved last, if its text is short. */
static void
set_last(sa_state *st, const char *body, size_t len, PyArray_Descr *d)
{
    if (len > sizeof(st->descr_last_text)) {
        return;
    }
    memcpy(st->descr_last_text, body, len);
    st->descr_last_len = len;
    Py_INCREF(d);
    Py_XSETREF(st->descr_last, d);
}

/* A plain descr: cached, else NumPy's converter, checked against the C parse. */
static PyArray_Descr *
descr_plain(sa_state *st, const sa_header *h, const sa_simple_descr *sd,
            PyObject *name)
{
    PyObject *key = NULL;
    PyArray_Descr *d = NULL;

    if (is_last(st, h->body, h->body_len)) {
        Py_INCREF(st->descr_last);
        return st->descr_last;
    }
    key = PyUnicode_FromStringAndSize(h->body, (Py_ssize_t)h->body_len);
    if (key == NULL) {
        goto done;
    }
    if ((d = cached(st, key)) != NULL || PyErr_Occurred()) {
        goto found;
    }
    if (!PyArray_DescrConverter(key, &d)) {
        PyErr_Clear();
        invalid(name, "its header names a dtype NumPy does not know");
        goto done;
    }
    if (d->kind != sd->kind ||
        (uint64_t)PyDataType_ELSIZE(d) != sd->itemsize) {
        Py_CLEAR(d);
        invalid(name, "its header names a dtype NumPy reads differently");
        goto done;
    }
    if (sa_descr_check(d, name) < 0) {
        Py_CLEAR(d);
        goto done;
    }
    if (remember(st, key, d) < 0) {
        Py_CLEAR(d);
    }
found:
    if (d != NULL) {
        set_last(st, h->body, h->body_len, d);
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
    char tag = (char)('0' + h->major);

    if (h->literal_len > SA_FOREIGN_DESCR_MAX && p->st.st_uid != geteuid()) {
        PyErr_Format(PyExc_ValueError,
                     "%R is not a valid array: its header's descr is %zu "
                     "bytes long, and a file owned by another user may have "
                     "at most %d (NumPy's max_header_size)",
                     name, h->literal_len, SA_FOREIGN_DESCR_MAX);
        return NULL;
    }
    /* Keyed by version (its encoding) and text: bytes never equal the str
     * keys of plain descrs. */
    key = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)h->literal_len + 1);
    if (key == NULL) {
        goto done;
    }
    PyBytes_AS_STRING(key)[0] = tag;
    memcpy(PyBytes_AS_STRING(key) + 1, h->literal, h->literal_len);
    if ((d = cached(st, key)) != NULL || PyErr_Occurred()) {
        goto done;
    }
    text = PyUnicode_Decode(h->literal, (Py_ssize_t)h->literal_len,
                            sa_npy_version_of(h->major)->encoding, "strict");
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
    if (remember(st, key, (PyArray_Descr *)res) < 0) {
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
PyArray_Descr *
sa_descr_of_legacy(const sa_probe *p, PyObject *name, uint64_t *nbytes)
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
PyArray_Descr *
sa_descr_of_header(sa_state *st, const sa_probe *p, PyObject *name)
{
    const sa_header *h = &p->hdr;
    sa_simple_descr sd;

    if (h->body != NULL &&
        sa_descr_parse_simple(h->body, h->body_len, &sd) == 0) {
        return descr_plain(st, h, &sd, name);
    }
    return descr_literal_eval(st, p, name);
}
