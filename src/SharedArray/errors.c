/*
 * One way to fail: the C layers below return errno values, and every
 * failed system call reaches Python here, as the OSError subclass that
 * matches the errno (FileNotFoundError, PermissionError, ...), with the
 * array's name as filename, as CPython's own modules do.
 */
#include "sharedarray.h"

#include <errno.h>
#include <string.h>

PyObject *
sa_raise_errno(int err, PyObject *name)
{
    errno = err;
    return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, name);
}

PyObject *
sa_raise_errno_msg(int err, PyObject *name, const char *msg)
{
    PyObject *text = PyUnicode_FromString(msg);

    if (text != NULL) {
        sa_raise_errno_text(err, name, text);
        Py_DECREF(text);
    }
    return NULL;
}

PyObject *
sa_raise_errno_text(int err, PyObject *name, PyObject *text)
{
    PyObject *exc =
        PyObject_CallFunction(PyExc_OSError, "iOO", err, text, name);

    /* OSError(errno, ...) builds the matching subclass itself. */
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}
