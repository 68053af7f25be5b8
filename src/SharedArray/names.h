/*
 * Array names: "shm://NAME", "file://PATH", or a bare NAME (= shm://NAME).
 * Pure C, no Python objects.
 */
#ifndef SHAREDARRAY_NAMES_H
#define SHAREDARRAY_NAMES_H

#include <limits.h>
#include <stddef.h>

/* What meson found out about the target system (meson.build decides). */
#include "sa_config.h"

typedef enum { SA_BACKEND_SHM, SA_BACKEND_FILE } sa_backend;

typedef struct {
    sa_backend backend;
    char path[PATH_MAX]; /* what open() takes, or shm_open() when
                          * shm_object */
    char dir[PATH_MAX];  /* the directory that will hold it ("" for a
                          * shm_object: there is none) */
    const char *base;    /* final component, inside path */
    int shm_object;      /* path is a shm_open(3) name, not a file path
                          * (shm:// names in the posix backend) */
} sa_name;

/*
 * Whether a symlink at the end of name's path is refused rather than
 * followed: a shm name stays in the shm directory; a file path goes
 * through symlinks as open(2) does.  Every open and stat of a name asks.
 */
static inline int
sa_name_nofollow(const sa_name *name)
{
    return name->backend == SA_BACKEND_SHM;
}

/*
 * Resolves name[0..len) into out.  Returns 0, or -1 with *why saying what is
 * wrong (the name never leaves its namespace: a shm name has no '/', no NUL,
 * is not "." or "..", and fits NAME_MAX).
 */
int sa_name_parse(const char *name, size_t len, sa_name *out,
                  const char **why);

#endif
