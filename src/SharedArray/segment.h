/*
 * Segment I/O: the system calls behind create, attach, delete and list.
 * Pure C, no Python objects: callers run these with the GIL released.
 * Every function returns 0 or an errno value, and leaves errno alone.
 */
#ifndef SHAREDARRAY_SEGMENT_H
#define SHAREDARRAY_SEGMENT_H

#include <stdint.h>
#include <sys/stat.h>

#include "claim.h"
#include "header.h"
#include "legacy.h"
#include "names.h"

/*
 * What makes a file this file and not a later one under the same name.
 * Inode numbers are reused (ext4 hands a freed one out again at once);
 * birth times are not.  ctime and mtime are no identity: every write fault
 * through a mapping updates them.  has_btime is 0 on filesystems that do
 * not record a birth time; such files are never served from the cache.
 */
typedef struct {
    uint64_t dev;
    uint64_t ino;
    int64_t btime_sec;
    uint32_t btime_nsec;
    int has_btime;
} sa_ident;

/* fstat of fd, or lstat/stat of path (fd < 0), with the birth time. */
int sa_stat(int fd, const char *path, int nofollow, struct stat *st,
            sa_ident *id);
/* statx(dirfd, path, flags) into the same two (fstatat elsewhere). */
int sa_statat(int dirfd, const char *path, int flags, struct stat *st,
              sa_ident *id);
/* The same for a name's path: a file (lstat if nofollow), or with
 * shm_object a shm_open(3) name (opened read-only, fstat, closed). */
int sa_stat_path(const char *path, int shm_object, int nofollow,
                 struct stat *st, sa_ident *id);

/* A struct stat's mtime, wherever this system keeps it (meson.build). */
#if SA_HAVE_ST_MTIM
#define SA_MTIME_SEC(st) ((st)->st_mtim.tv_sec)
#define SA_MTIME_NSEC(st) ((st)->st_mtim.tv_nsec)
#elif SA_HAVE_ST_MTIMESPEC
#define SA_MTIME_SEC(st) ((st)->st_mtimespec.tv_sec)
#define SA_MTIME_NSEC(st) ((st)->st_mtimespec.tv_nsec)
#else
#define SA_MTIME_SEC(st) ((st)->st_mtime)
#define SA_MTIME_NSEC(st) 0
#endif

/* What an opened file turned out to be. */
typedef enum {
    SA_SEG_OTHER,      /* not an array: no .npy magic, no 3.x trailer */
    SA_SEG_NPY,        /* an intact .npy header */
    SA_SEG_DAMAGED,    /* the .npy magic, but a header that does not parse */
    SA_SEG_LEGACY,     /* a SharedArray 3.x trailer */
    SA_SEG_INCOMPLETE, /* still being made by a creator (posix backend:
                        * the magic is written last), or left so by one
                        * that died: attach says FileNotFoundError */
} sa_seg_kind;

/* The first bytes of a segment whose creator has not published it yet:
 * the .npy magic with its first byte zero (see FORMAT.md). */
#define SA_UNPUBLISHED_MAGIC "\0NUMPY"

/* What an open segment looks like before anything is mapped. */
typedef struct {
    int fd; /* -1 when closed */
    struct stat st;
    sa_ident id;
    int regular;    /* st is a regular file (or a shm object) */
    int shm_object; /* opened with shm_open: read through mmap */
    sa_seg_kind kind;
    const char *why;    /* the defect when kind is SA_SEG_DAMAGED */
    sa_header hdr;      /* spans point into buf; for a 3.x segment
                              * only ndim, dims and data_offset (0) */
    sa_legacy legacy;   /* when kind is SA_SEG_LEGACY */
    unsigned char *buf; /* small, or malloc'd for long headers */
    size_t buf_len;
    unsigned char small[1024]; /* enough for all but many-field dicts */
} sa_probe;

/*
 * Opens path relative to dirfd (AT_FDCWD for none), read-write if writable,
 * without following a final symlink if nofollow, and reads and parses the
 * header without mapping anything.  On 0 the caller owns p->fd (and p->buf)
 * and must call sa_probe_close; on error nothing is left open.  EINTR is
 * returned, not retried: the caller runs signal handlers first (PEP 475).
 */
int sa_probe_open(sa_probe *p, int dirfd, const char *path, int writable,
                  int nofollow);
/* The same for a shm_open(3) name: shm objects need not support read(2),
 * so their header is read through a short-lived read-only mapping. */
int sa_probe_shm(sa_probe *p, const char *path, int writable);

void sa_probe_close(sa_probe *p);

/*
 * Looks for a SharedArray 3.x trailer at the end of p's file; on finding a
 * consistent one sets p->kind to SA_SEG_LEGACY and p->hdr's shape.  With
 * exact, only a trailer whose data and trailer make up the whole file
 * counts (the evidence that outweighs a .npy header at offset 0).
 */
int sa_probe_legacy(sa_probe *p, int exact);

/*
 * Makes sure the first len bytes of fd have blocks behind them before they
 * are mapped writable: a hole written through a mapping on a full
 * filesystem is SIGBUS, a failed fallocate here is ENOSPC.  trust_blocks
 * says st_blocks counts data only (tmpfs), so a file whose blocks cover
 * len has no hole; elsewhere SEEK_HOLE decides.  Filesystems that cannot
 * allocate ahead (no fallocate) are left as they are.
 */
int sa_reserve(int fd, const struct stat *st, uint64_t len, int trust_blocks);

/* Segments up to this size are created with one pwrite of the header and
 * the zeros (that reserves their blocks); bigger ones with fallocate. */
#define SA_WRITE_WHOLE_MAX (64 * 1024)

/*
 * mmap(MAP_SHARED) of the first len bytes of fd (described by st), whole
 * huge pages on hugetlbfs, whose mappings can only be unmapped whole.
 * *maplen is the length mapped, for munmap.
 */
int sa_map(int fd, const struct stat *st, uint64_t len, int writable,
           void **addr, size_t *maplen);

/*
 * Creating a segment is two steps with the caller's work between them:
 * sa_create_prepare builds it out of sight (O_TMPFILE, or a hidden
 * temporary name where the filesystem lacks it), applies the mode, reserves
 * every block, maps it and writes the header; the caller may then fill the
 * data; sa_create_publish links it under name->path, failing with EEXIST
 * rather than replacing anything.  Any failure, or sa_create_abort, leaves
 * nothing on disk.  The caller takes the mapping [addr, addr+size) by
 * setting addr to NULL; until then abort unmaps it.
 */
typedef struct {
    const sa_name *name;
    const unsigned char *header;
    size_t header_len;
    uint64_t total;    /* header_len + data bytes */
    unsigned int mode; /* permission bits, applied exactly */
    sa_claim claim;    /* caller sets fd and wait_fd to -1 */
    int shm_created;   /* a shm object made by prepare, to unlink on abort */
    unsigned char *magic; /* shm object: where publish writes the first
                           * byte of the magic (in the caller's mapping) */
    int out_of_space;     /* a first attempt found no room (caller: 0) */
    /* Set by prepare: */
    int fd;
    int tmp_named;
    char tmp[PATH_MAX];
    void *addr;
    size_t size;    /* mapped length */
    struct stat st; /* of the new file */
    sa_ident id;
} sa_create_job;

/*
 * prepare fails with EEXIST when the name exists before reserving anything
 * bigger than SA_WRITE_WHOLE_MAX.  It returns EBUSY when another process of
 * this user is creating the same name: the caller waits on job->claim
 * (sa_claim_wait) and calls prepare again, which then finds the name made
 * (EEXIST) or free.  EINTR: call again.
 */
int sa_create_prepare(sa_create_job *job);
int sa_create_publish(sa_create_job *job);
void sa_create_abort(sa_create_job *job);

/*
 * Unlinks name if, and only if, it still is the file that p (already
 * validated by the caller) has open: a file swapped in meanwhile is left.
 */
int sa_unlink_checked(const sa_probe *p, const sa_name *name);

#endif
