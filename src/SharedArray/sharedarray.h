/*
 * Private header shared by every C file that touches Python or NumPy.  The
 * module file defines SA_IMPORT_ARRAY before including it; the others get
 * NO_IMPORT_ARRAY, so all share the one NumPy API table.
 */
#ifndef SHAREDARRAY_PRIVATE_H
#define SHAREDARRAY_PRIVATE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define NPY_NO_DEPRECATED_API NPY_API_VERSION
/* Built against NumPy 2 headers, loadable by NumPy >= 1.23. */
#define NPY_TARGET_VERSION NPY_1_23_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL SharedArray_ARRAY_API
#ifndef SA_IMPORT_ARRAY
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>
#include <numpy/npy_2_compat.h>

#include <stdint.h>
#include <sys/types.h>

#include "header.h"
#include "names.h"
#include "segment.h"

/* NumPy 1.x builds arrays of at most 32 dimensions, 2.x of 64. */
#define SA_RUNTIME_MAXDIMS \
    (PyArray_RUNTIME_VERSION >= NPY_2_0_API_VERSION ? 64 : 32)

typedef struct {
    PyTypeObject *mapping_type;  /* owner of one mmap; every array's base */
    PyTypeObject *entry_type;    /* list() entries */
    PyObject *descr_cache;       /* dict: plain descr str -> dtype */
} sa_state;

static inline sa_state *
sa_get_state(PyObject *module)
{
    return (sa_state *)PyModule_GetState(module);
}

/* args.c: METH_FASTCALL argument parsing, names, errors. */
int sa_parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames, const char *const *names, int nnames,
                  int nrequired, PyObject **out);
int sa_name_from_object(PyObject *obj, sa_name *out);
/* _resolve(name): the file path a name stands for. */
PyObject *sa_resolve(PyObject *module, PyObject *name);
/* Raises the OSError subclass that matches err, carrying name; NULL. */
PyObject *sa_raise_errno(int err, PyObject *name);

/* descr.c: dtypes in and out of headers. */
/* Refuses dtypes that cannot be shared; name (or NULL) is the segment. */
int sa_descr_check(PyArray_Descr *d, PyObject *name);
PyObject *sa_descr_literal(PyArray_Descr *d, int *utf8);
/*
 * Validates an opened segment completely: a regular file with a parsed
 * header, a shareable dtype, at most SA_RUNTIME_MAXDIMS dimensions, and
 * data that fits inside the file.  Returns a new dtype reference and sets
 * *nbytes, or NULL with ValueError/TypeError naming the segment.
 */
PyArray_Descr *sa_probe_resolve(sa_state *st, const sa_probe *p,
                                PyObject *name, uint64_t *nbytes);

/* mapping.c: the owner object. */
extern PyType_Spec sa_mapping_spec;
/*
 * Wraps the mapping [addr, addr+size), whose data is nbytes at data_offset,
 * in a new owner object; the owner munmaps it when it dies.  On failure the
 * region is unmapped here and NULL returned.
 */
PyObject *sa_mapping_new(sa_state *st, void *addr, size_t size,
                         size_t data_offset, uint64_t nbytes, PyObject *name,
                         const struct stat *st_file, int writable);
/*
 * An ndarray over the owner's data.  Steals mapping and descr, whatever the
 * outcome.
 */
PyObject *sa_array_new(PyObject *mapping, PyArray_Descr *descr, int ndim,
                       const int64_t *dims, int fortran, int writable);

/* One operation per file. */
PyObject *sa_create(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames);
PyObject *sa_from_array(PyObject *module, PyObject *const *args,
                        Py_ssize_t nargs, PyObject *kwnames);
PyObject *sa_attach(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames);
PyObject *sa_delete(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames);
PyObject *sa_list(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames);

PyObject *sa_info(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames);

extern PyStructSequence_Desc sa_entry_desc;
/* An ArrayDesc for an opened segment; NULL with ValueError if invalid. */
PyObject *sa_entry_new(sa_state *st, PyObject *name, const sa_probe *p);

#endif
