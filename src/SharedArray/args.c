/*
 * Turning the arguments of METH_FASTCALL functions into C values: the
 * positional-or-keyword parser every function and method uses, and array
 * names.
 */
#include "sharedarray.h"

#include <errno.h>

int
sa_parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames, const char *const *names, int nnames,
              int nrequired, PyObject **out)
{
    Py_ssize_t i, k, nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    int j;

    for (j = 0; j < nnames; j++) {
        out[j] = NULL;
    }
    if (nargs > 0 && nnames == 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes no arguments", fname);
        return -1;
    }
    if (nargs > nnames) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes at most %d arguments (%zd given)", fname,
                     nnames, nargs);
        return -1;
    }
    for (i = 0; i < nargs; i++) {
        out[i] = args[i];
    }
    for (k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        for (j = 0; j < nnames; j++) {
            if (PyUnicode_CompareWithASCIIString(key, names[j]) == 0) {
                break;
            }
        }
        if (j == nnames) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%U'", fname,
                         key);
            return -1;
        }
        if (out[j] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got multiple values for argument '%s'", fname,
                         names[j]);
            return -1;
        }
        out[j] = args[nargs + k];
    }
    for (j = 0; j < nrequired; j++) {
        if (out[j] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() missing required argument '%s'", fname,
                         names[j]);
            return -1;
        }
    }
    return 0;
}

int
sa_name_from_object(PyObject *obj, sa_name *out)
{
    const char *s, *why;
    PyObject *bytes = NULL;
    Py_ssize_t len;
    int rc;

    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "array name must be a str such as 'shm://NAME' or "
                     "'file://PATH', not %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    s = PyUnicode_AsUTF8AndSize(obj, &len);
    if (s == NULL) {
        /* Not UTF-8: a name list() read from a file name that is not (lone
         * surrogates, os.fsdecode's escapes).  Its bytes, as os.fsencode
         * gives them back, are the name. */
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            return -1;
        }
        PyErr_Clear();
        bytes = PyUnicode_EncodeFSDefault(obj);
        if (bytes == NULL) {
            if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError,
                             "invalid array name %R: it has characters no "
                             "file name can hold (lone surrogates)",
                             obj);
            }
            return -1;
        }
        s = PyBytes_AS_STRING(bytes);
        len = PyBytes_GET_SIZE(bytes);
    }
    rc = sa_name_parse(s, (size_t)len, out, &why);
    Py_XDECREF(bytes);
    if (rc < 0) {
        PyErr_Format(PyExc_ValueError, "invalid array name %R: %s", obj, why);
        return -1;
    }
    return 0;
}
