/*
 * Module definition and exec slot only; each operation has its own file.
 */
#define SA_IMPORT_ARRAY
#include "sharedarray.h"

#include <sys/mman.h>

/* clang-format off: docstrings read best laid out as they print. */
PyDoc_STRVAR(
    create_doc,
    "create(name, shape, dtype=float, order='C', mode=0o600, exist_ok=False)\n"
    "--\n\n"
    "Create a zero-filled array in shared memory and return it.\n\n"
    "name is 'shm://NAME' (POSIX shared memory), 'file://PATH' (a file), or "
    "a\n"
    "bare NAME (= shm://NAME).  shape, dtype and order are as numpy.zeros\n"
    "takes them.  The segment is a .npy file whose data starts on a page\n"
    "boundary; it is created with exactly the permission bits in mode, its\n"
    "space is reserved up front (a full filesystem raises OSError(ENOSPC)),\n"
    "and it appears under name only once complete.\n\n"
    "Raises FileExistsError if name exists, unless exist_ok is true and the\n"
    "array there has this shape, dtype and order: then it is attached.");

PyDoc_STRVAR(
    from_array_doc,
    "from_array(name, array, mode=0o600)\n--\n\n"
    "Create an array in shared memory holding a copy of array (any "
    "array-like)\n"
    "and return it.  Shape and dtype are array's; a Fortran-ordered array\n"
    "stays Fortran-ordered.  Like create(), the segment appears under name "
    "only\n"
    "once complete, here with the data already copied in.");

PyDoc_STRVAR(
    attach_doc,
    "attach(name, ro=False)\n--\n\n"
    "Map an existing array and return it.  ro=True maps it read-only and\n"
    "returns a non-writeable array.  Any .npy file that NumPy wrote can be\n"
    "attached.  Raises FileNotFoundError if name does not exist and\n"
    "ValueError if it is not a valid array.");

PyDoc_STRVAR(
    delete_doc,
    "delete(name)\n--\n\n"
    "Remove the name of an array.  Arrays already attached stay valid; the\n"
    "memory is freed when the last one is gone.  Refuses (ValueError) to\n"
    "remove a file that is not an array.");

PyDoc_STRVAR(
    list_doc,
    "list()\n--\n\n"
    "Return the arrays in POSIX shared memory (Linux: /dev/shm) as\n"
    "ArrayDesc entries with name, dtype, dims and nbytes.  Files that are\n"
    "not arrays, or cannot be read, are skipped.");

PyDoc_STRVAR(
    info_doc,
    "info(name)\n--\n\n"
    "Describe an array without mapping it: an ArrayDesc with name, dtype,\n"
    "dims, nbytes, order, mode, uid, mtime and format.  Raises\n"
    "FileNotFoundError if name does not exist, ValueError if it is not an\n"
    "array.");
/* clang-format on */

/* What this build can do, decided by meson (sa_config.h): for the tests,
 * the CLI and bug reports. */
static int
add_features(PyObject *m)
{
    PyObject *f = Py_BuildValue(
        "{s:s,s:O,s:O,s:O,s:O,s:O,s:O}", "backend", SA_BACKEND_NAME, "list",
        SA_HAVE_SHM_DIR ? Py_True : Py_False, "birth_times",
        SA_HAVE_STATX || SA_HAVE_SYS_STATX || SA_HAVE_ST_BIRTHTIM ||
                SA_HAVE_ST_BIRTHTIMESPEC
            ? Py_True
            : Py_False,
        "claims", SA_HAVE_ABSTRACT_SOCKETS ? Py_True : Py_False, "o_tmpfile",
        SA_HAVE_O_TMPFILE ? Py_True : Py_False, "huge_pages",
        SA_HAVE_MADV_POPULATE_WRITE && SA_HAVE_STATFS_MAGIC ? Py_True
                                                            : Py_False,
        "fallocate", SA_HAVE_FALLOCATE ? Py_True : Py_False);

    if (f == NULL) {
        return -1;
    }
    if (PyModule_AddObject(m, "_features", f) < 0) {
        Py_DECREF(f);
        return -1;
    }
    return 0;
}

static PyMethodDef module_methods[] = {
    {"create", (PyCFunction)(void (*)(void))sa_create,
     METH_FASTCALL | METH_KEYWORDS, create_doc},
    {"from_array", (PyCFunction)(void (*)(void))sa_from_array,
     METH_FASTCALL | METH_KEYWORDS, from_array_doc},
    {"attach", (PyCFunction)(void (*)(void))sa_attach,
     METH_FASTCALL | METH_KEYWORDS, attach_doc},
    {"delete", (PyCFunction)(void (*)(void))sa_delete,
     METH_FASTCALL | METH_KEYWORDS, delete_doc},
    {"list", (PyCFunction)(void (*)(void))sa_list,
     METH_FASTCALL | METH_KEYWORDS, list_doc},
    {"info", (PyCFunction)(void (*)(void))sa_info,
     METH_FASTCALL | METH_KEYWORDS, info_doc},
    {"cache_info", sa_cache_info, METH_NOARGS,
     PyDoc_STR("cache_info()\n--\n\n"
               "(hits, misses, entries, nbytes, max_entries, max_bytes) of "
               "this process's mapping cache.")},
    {"cache_clear", sa_cache_clear, METH_NOARGS,
     PyDoc_STR("cache_clear()\n--\n\n"
               "Drop every mapping the cache holds; arrays in use stay "
               "valid.")},
    {"cache_limits", (PyCFunction)(void (*)(void))sa_cache_limits,
     METH_FASTCALL | METH_KEYWORDS,
     PyDoc_STR("cache_limits(max_entries=None, max_bytes=None)\n--\n\n"
               "Set the limits given; return (max_entries, max_bytes) in "
               "force.")},
    {"_identity_of", sa_identity_of, METH_O,
     PyDoc_STR("_identity_of(name)\n--\n\nThe identity of the file now "
               "under name, comparable with Mapping._identity.")},
    {"_resolve", sa_resolve, METH_O,
     PyDoc_STR("_resolve(name)\n--\n\nThe file path that name stands for.")},
    {NULL, NULL, 0, NULL},
};

static int
module_exec(PyObject *m)
{
    sa_state *st = sa_get_state(m);

    if (PyArray_ImportNumPyAPI() < 0) {
        return -1;
    }
    st->mapping_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(m, &sa_mapping_spec, NULL);
    if (st->mapping_type == NULL ||
        PyModule_AddType(m, st->mapping_type) < 0) {
        return -1;
    }
    st->entry_type = PyStructSequence_NewType(&sa_entry_desc);
    if (st->entry_type == NULL || PyModule_AddType(m, st->entry_type) < 0) {
        return -1;
    }
    st->name_type = (PyTypeObject *)PyType_FromModuleAndSpec(
        m, &sa_name_spec, (PyObject *)&PyUnicode_Type);
    if (st->name_type == NULL || PyModule_AddType(m, st->name_type) < 0) {
        return -1;
    }
    st->descr_cache = PyDict_New();
    st->str_c = PyUnicode_InternFromString("C");
    st->str_f = PyUnicode_InternFromString("F");
    st->str_npy = PyUnicode_InternFromString("npy");
    st->str_legacy = PyUnicode_InternFromString("sharedarray3");
    st->cache_strong = PyDict_New();
    st->cache_weak = PyDict_New();
    if (st->descr_cache == NULL || st->str_c == NULL || st->str_f == NULL ||
        st->str_npy == NULL || st->str_legacy == NULL ||
        st->cache_strong == NULL || st->cache_weak == NULL) {
        return -1;
    }
    st->cache_max_entries = SA_CACHE_MAX_ENTRIES;
    st->cache_max_bytes = SA_CACHE_MAX_BYTES;
    if (PyModule_AddIntConstant(m, "MS_ASYNC", MS_ASYNC) < 0 ||
        PyModule_AddIntConstant(m, "MS_SYNC", MS_SYNC) < 0 ||
        PyModule_AddIntConstant(m, "MS_INVALIDATE", MS_INVALIDATE) < 0 ||
        add_features(m) < 0) {
        return -1;
    }
    return 0;
}

static int
module_traverse(PyObject *m, visitproc visit, void *arg)
{
    sa_state *st = sa_get_state(m);
    int err;

    Py_VISIT(st->mapping_type);
    Py_VISIT(st->entry_type);
    Py_VISIT(st->name_type);
    Py_VISIT(st->descr_cache);
    Py_VISIT(st->descr_last);
    Py_VISIT(st->str_c);
    Py_VISIT(st->str_f);
    Py_VISIT(st->str_npy);
    Py_VISIT(st->str_legacy);
    if ((err = sa_seen_traverse(st->list_seen, visit, arg)) != 0) {
        return err;
    }
    Py_VISIT(st->cache_strong);
    Py_VISIT(st->cache_weak);
    return 0;
}

static int
module_clear(PyObject *m)
{
    sa_state *st = sa_get_state(m);
    Py_CLEAR(st->mapping_type);
    Py_CLEAR(st->entry_type);
    Py_CLEAR(st->name_type);
    Py_CLEAR(st->descr_cache);
    Py_CLEAR(st->descr_last);
    Py_CLEAR(st->str_c);
    Py_CLEAR(st->str_f);
    Py_CLEAR(st->str_npy);
    Py_CLEAR(st->str_legacy);
    sa_seen_free(st->list_seen);
    st->list_seen = NULL;
    Py_CLEAR(st->cache_strong);
    Py_CLEAR(st->cache_weak);
    return 0;
}

static void
module_free(void *m)
{
    module_clear((PyObject *)m);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "SharedArray._core",
    .m_doc = "C core of SharedArray: share NumPy arrays between processes.",
    .m_size = sizeof(sa_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC
PyInit__core(void)
{
    return PyModuleDef_Init(&module_def);
}
