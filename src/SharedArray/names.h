/*
 * Array names: "shm://NAME", "file://PATH", or a bare NAME (= shm://NAME).
 * Pure C, no Python objects.
 */
#ifndef SHAREDARRAY_NAMES_H
#define SHAREDARRAY_NAMES_H

#include <limits.h>
#include <stddef.h>

#ifndef SA_SHM_DIR
#define SA_SHM_DIR "/dev/shm"
#endif

typedef enum { SA_BACKEND_SHM, SA_BACKEND_FILE } sa_backend;

typedef struct {
    sa_backend backend;
    char path[PATH_MAX]; /* what open() takes */
    char dir[PATH_MAX];  /* the directory that will hold it */
    const char *base;    /* final component, inside path */
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
