/*
 * Array names to paths: "shm://NAME", "file://PATH" or a bare NAME, parsed
 * so that a shm name never leaves the shm directory.  Pure C, fuzzed.
 */
/* memmem */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "names.h"

#include <string.h>

static int
has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

static int
parse_shm(const char *s, size_t len, sa_name *out, const char **why)
{
    /* shm_open(3) ignores leading slashes; so do we, for old code. */
    while (len > 0 && *s == '/') {
        s++;
        len--;
    }
    if (len == 0) {
        *why = "shm name is empty";
        return -1;
    }
    if (memchr(s, '/', len) != NULL) {
        *why = "shm name may not contain '/'";
        return -1;
    }
    if ((len == 1 && s[0] == '.') ||
        (len == 2 && s[0] == '.' && s[1] == '.')) {
        *why = "shm name may not be '.' or '..'";
        return -1;
    }
    if (len > NAME_MAX) {
        *why = "shm name is longer than NAME_MAX (255 bytes)";
        return -1;
    }
    out->backend = SA_BACKEND_SHM;
#if SA_SHM_OPEN
    /* shm_open(3)'s portable form: one leading slash, no other. */
#if SA_SHM_NAME_MAX < NAME_MAX
    if (len > SA_SHM_NAME_MAX) {
        *why = "shm name is too long for this system's shm_open (macOS: at "
               "most 30 bytes)";
        return -1;
    }
#endif
    out->shm_object = 1;
    out->dir[0] = '\0';
    out->path[0] = '/';
    memcpy(out->path + 1, s, len);
    out->path[1 + len] = '\0';
    out->base = out->path + 1;
#else
    out->shm_object = 0;
    memcpy(out->dir, SA_SHM_DIR, sizeof(SA_SHM_DIR));
    memcpy(out->path, SA_SHM_DIR "/", sizeof(SA_SHM_DIR));
    memcpy(out->path + sizeof(SA_SHM_DIR), s, len);
    out->path[sizeof(SA_SHM_DIR) + len] = '\0';
    out->base = out->path + sizeof(SA_SHM_DIR);
#endif
    return 0;
}

static int
parse_file(const char *s, size_t len, sa_name *out, const char **why)
{
    const char *slash;
    size_t base_len;

    if (len == 0) {
        *why = "file path is empty";
        return -1;
    }
    if (len >= PATH_MAX) {
        *why = "file path is longer than PATH_MAX";
        return -1;
    }
    if (s[len - 1] == '/') {
        *why = "file path names a directory";
        return -1;
    }
    out->backend = SA_BACKEND_FILE;
    out->shm_object = 0;
    memcpy(out->path, s, len);
    out->path[len] = '\0';
    slash = strrchr(out->path, '/');
    if (slash == NULL) {
        out->base = out->path;
        memcpy(out->dir, ".", 2);
    }
    else {
        out->base = slash + 1;
        if (slash == out->path) {
            memcpy(out->dir, "/", 2);
        }
        else {
            memcpy(out->dir, out->path, (size_t)(slash - out->path));
            out->dir[slash - out->path] = '\0';
        }
    }
    base_len = strlen(out->base);
    if (base_len > NAME_MAX) {
        *why = "file name is longer than NAME_MAX (255 bytes)";
        return -1;
    }
    if ((base_len == 1 && out->base[0] == '.') ||
        (base_len == 2 && out->base[0] == '.' && out->base[1] == '.')) {
        *why = "file path names a directory";
        return -1;
    }
    return 0;
}

int
sa_name_parse(const char *name, size_t len, sa_name *out, const char **why)
{
    *why = NULL;
    if (memchr(name, '\0', len) != NULL) {
        *why = "name contains a NUL byte";
        return -1;
    }
    if (has_prefix(name, len, "shm://")) {
        return parse_shm(name + 6, len - 6, out, why);
    }
    if (has_prefix(name, len, "file://")) {
        return parse_file(name + 7, len - 7, out, why);
    }
    if (len >= 3 && memmem(name, len, "://", 3) != NULL) {
        *why = "unknown scheme; use shm://NAME or file://PATH";
        return -1;
    }
    return parse_shm(name, len, out, why);
}
