/*
 * What a name refers to now, for the pickling reducer (_reduce.py): the
 * path it stands for, and the identity of the file there, comparable with
 * Mapping._identity of the file an array maps.
 */
#include "sharedarray.h"

PyObject *
sa_resolve(PyObject *Py_UNUSED(module), PyObject *name)
{
    sa_name parsed;

    if (sa_name_from_object(name, &parsed) < 0) {
        return NULL;
    }
    return PyUnicode_DecodeFSDefault(parsed.path);
}

PyObject *
sa_identity_tuple(const sa_ident *id)
{
    return Py_BuildValue("(KKLk)", (unsigned long long)id->dev,
                         (unsigned long long)id->ino, (long long)id->btime_sec,
                         (unsigned long)id->btime_nsec);
}

PyObject *
sa_identity_of(PyObject *Py_UNUSED(module), PyObject *nameobj)
{
    sa_name name;
    struct stat st;
    sa_ident id;
    int err;

    if (sa_name_from_object(nameobj, &name) < 0) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
        err = sa_stat_path(name.path, name.shm_object, sa_name_nofollow(&name),
                           &st, &id);
    Py_END_ALLOW_THREADS
    if (err != 0) {
        return sa_raise_errno(err, nameobj);
    }
    return sa_identity_tuple(&id);
}
