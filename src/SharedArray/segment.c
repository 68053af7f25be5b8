/*
 * The system calls behind the operations, pure C returning errno values:
 * stat with identity, probing (open and read the header without mapping),
 * reserving holes, mapping, creating out of sight and publishing, checked
 * unlink.
 *
 * Which calls are used is decided in meson.build (sa_config.h): the linux
 * backend has statx, O_TMPFILE, fallocate and huge pages; the posix
 * backend uses only what POSIX (and macOS and FreeBSD) offer: shm_open for
 * shm names, fstat, a hidden name and link(2) to publish files, and for
 * shm objects the magic written last.
 */
/* mkostemp, O_TMPFILE, AT_EMPTY_PATH, statx, fallocate */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* st_birthtimespec and mkostemp on macOS */
#ifndef _DARWIN_C_SOURCE
#define _DARWIN_C_SOURCE
#endif
#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#if SA_HAVE_SYS_SYSMACROS_H
#include <sys/sysmacros.h>
#endif
#if SA_HAVE_STATFS_MAGIC
#include <sys/vfs.h>
#endif

/* Where shm objects are files in SA_SHM_DIR, anyone may plant a FIFO
 * there: opened without blocking, as sa_probe_open does (glibc and musl
 * pass O_NONBLOCK through; FreeBSD's shm_open would refuse it). */
#if SA_SHM_FILES
#define SHM_NONBLOCK O_NONBLOCK
#else
#define SHM_NONBLOCK 0
#endif

#if SA_HAVE_STATFS_MAGIC
#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif
#endif

/*
 * Reads a shm object's bytes [offset, offset + n) through a read-only
 * mapping of the pages that hold them, only as far as the size fstat gave
 * (a shm object need not support read(2): macOS's do not).  The first
 * byte is loaded with acquire order: a creator's release store of the
 * magic (sa_create_publish) then implies the header written before it.
 */
static ssize_t
map_read(const sa_probe *p, unsigned char *buf, size_t n, off_t offset)
{
    long page = sysconf(_SC_PAGESIZE);
    off_t start, size = p->st.st_size;
    size_t len;
    unsigned char *m;

    if (offset >= size) {
        return 0;
    }
    if ((uint64_t)n > (uint64_t)(size - offset)) {
        n = (size_t)(size - offset);
    }
    start = offset - offset % (off_t)page;
    len = (size_t)(offset - start) + n;
    m = mmap(NULL, len, PROT_READ, MAP_SHARED, p->fd, start);
    if (m == MAP_FAILED) {
        return -errno;
    }
    buf[0] = __atomic_load_n(m + (offset - start), __ATOMIC_ACQUIRE);
    memcpy(buf + 1, m + (offset - start) + 1, n - 1);
    munmap(m, len);
    return (ssize_t)n;
}

/*
 * pread of n bytes at offset until they are all read or the file ends;
 * returns the bytes read, or -errno (EINTR included: the caller decides).
 */
static ssize_t
read_full(const sa_probe *p, unsigned char *buf, size_t n, off_t offset)
{
    int fd = p->fd;
    size_t got = 0;

    if (p->shm_object) {
        return n == 0 ? 0 : map_read(p, buf, n, offset);
    }
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, offset + (off_t)got);
        if (r < 0) {
            return -errno;
        }
        if (r == 0) {
            break;
        }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Lets go of the header read into p (small, or malloc'd if long). */
static void
drop_buf(sa_probe *p)
{
    if (p->buf != NULL && p->buf != p->small) {
        free(p->buf);
    }
    p->buf = NULL;
}

void
sa_probe_close(sa_probe *p)
{
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }
    drop_buf(p);
}

#if !SA_HAVE_STATX && SA_HAVE_SYS_STATX
/* No wrapper in this libc (glibc < 2.28): the system call itself, and
 * where the kernel lacks it (before 4.11) fstatat, without birth times. */
#include <linux/stat.h>
#include <sys/syscall.h>

static int
statx(int dirfd, const char *path, int flags, unsigned int mask,
      struct statx *sx)
{
    struct stat st;

    if (syscall(SYS_statx, dirfd, path, flags, mask, sx) == 0) {
        return 0;
    }
    if (errno != ENOSYS) {
        return -1;
    }
    if (fstatat(dirfd, path, &st, flags) < 0) {
        return -1;
    }
    memset(sx, 0, sizeof(*sx));
    sx->stx_mask = STATX_BASIC_STATS; /* no STATX_BTIME */
    sx->stx_dev_major = major(st.st_dev);
    sx->stx_dev_minor = minor(st.st_dev);
    sx->stx_ino = (uint64_t)st.st_ino;
    sx->stx_mode = (uint16_t)st.st_mode;
    sx->stx_nlink = (uint32_t)st.st_nlink;
    sx->stx_uid = st.st_uid;
    sx->stx_gid = st.st_gid;
    sx->stx_rdev_major = major(st.st_rdev);
    sx->stx_rdev_minor = minor(st.st_rdev);
    sx->stx_size = (uint64_t)st.st_size;
    sx->stx_blksize = (uint32_t)st.st_blksize;
    sx->stx_blocks = (uint64_t)st.st_blocks;
    sx->stx_mtime.tv_sec = (int64_t)st.st_mtim.tv_sec;
    sx->stx_mtime.tv_nsec = (uint32_t)st.st_mtim.tv_nsec;
    return 0;
}
#endif

#if SA_HAVE_STATX || SA_HAVE_SYS_STATX
int
sa_stat(int fd, const char *path, int nofollow, struct stat *st, sa_ident *id)
{
    return fd >= 0 ? sa_statat(fd, "", AT_EMPTY_PATH, st, id)
                   : sa_statat(AT_FDCWD, path,
                               nofollow ? AT_SYMLINK_NOFOLLOW : 0, st, id);
}

int
sa_statat(int dirfd, const char *path, int flags, struct stat *st,
          sa_ident *id)
{
    struct statx sx;

    /* One call gives what fstat gives and the birth time. */
    if (statx(dirfd, path, flags, STATX_BASIC_STATS | STATX_BTIME, &sx) < 0) {
        return errno;
    }
    memset(st, 0, sizeof(*st));
    st->st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
    st->st_ino = (ino_t)sx.stx_ino;
    st->st_mode = (mode_t)sx.stx_mode;
    st->st_nlink = (nlink_t)sx.stx_nlink;
    st->st_uid = (uid_t)sx.stx_uid;
    st->st_gid = (gid_t)sx.stx_gid;
    st->st_rdev = makedev(sx.stx_rdev_major, sx.stx_rdev_minor);
    st->st_size = (off_t)sx.stx_size;
    st->st_blksize = (blksize_t)sx.stx_blksize;
    st->st_blocks = (blkcnt_t)sx.stx_blocks;
    st->st_mtim.tv_sec = (time_t)sx.stx_mtime.tv_sec;
    st->st_mtim.tv_nsec = (long)sx.stx_mtime.tv_nsec;
    id->dev = (uint64_t)st->st_dev;
    id->ino = (uint64_t)sx.stx_ino;
    id->has_btime = (sx.stx_mask & STATX_BTIME) != 0;
    id->btime_sec = id->has_btime ? (int64_t)sx.stx_btime.tv_sec : 0;
    id->btime_nsec = id->has_btime ? sx.stx_btime.tv_nsec : 0;
    return 0;
}

#else /* !SA_HAVE_STATX: fstat and fstatat, birth times where recorded */

static void
ident_of(const struct stat *st, sa_ident *id)
{
    memset(id, 0, sizeof(*id));
    id->dev = (uint64_t)st->st_dev;
    id->ino = (uint64_t)st->st_ino;
#if SA_HAVE_ST_BIRTHTIMESPEC
    id->btime_sec = (int64_t)st->st_birthtimespec.tv_sec;
    id->btime_nsec = (uint32_t)st->st_birthtimespec.tv_nsec;
#elif SA_HAVE_ST_BIRTHTIM
    id->btime_sec = (int64_t)st->st_birthtim.tv_sec;
    id->btime_nsec = (uint32_t)st->st_birthtim.tv_nsec;
#endif
    /* BSD reports -1 seconds, macOS 0, where no birth time is kept (shm
     * objects among them): such files are never served from the cache. */
    id->has_btime = id->btime_sec > 0;
}

int
sa_stat(int fd, const char *path, int nofollow, struct stat *st, sa_ident *id)
{
    if (fd >= 0) {
        if (fstat(fd, st) < 0) {
            return errno;
        }
    }
    else if (path == NULL) {
        return EINVAL;
    }
    else if ((nofollow ? lstat(path, st) : stat(path, st)) < 0) {
        return errno;
    }
    ident_of(st, id);
    return 0;
}

int
sa_statat(int dirfd, const char *path, int flags, struct stat *st,
          sa_ident *id)
{
    if (fstatat(dirfd, path, st, flags) < 0) {
        return errno;
    }
    ident_of(st, id);
    return 0;
}

#endif

int
sa_stat_path(const char *path, int shm_object, int nofollow, struct stat *st,
             sa_ident *id)
{
    int fd, err;

    if (!shm_object) {
        return sa_stat(-1, path, nofollow, st, id);
    }
    fd = shm_open(path, O_RDONLY | SHM_NONBLOCK, 0);
    if (fd < 0) {
        return errno;
    }
    err = sa_stat(fd, NULL, 0, st, id);
    close(fd);
    return err;
}

int
sa_probe_legacy(sa_probe *p, int exact)
{
    unsigned char tail[SA_LEGACY_TAIL_MAX];
    size_t n = SA_LEGACY_TAIL_MAX;
    ssize_t got;
    sa_legacy lg;
    int i;

    if ((uint64_t)p->st.st_size < SA_LEGACY_TRAILER_32) {
        return 0;
    }
    if ((uint64_t)p->st.st_size < n) {
        n = (size_t)p->st.st_size;
    }
    got = read_full(p, tail, n, p->st.st_size - (off_t)n);
    if (got < 0) {
        return (int)-got;
    }
    if ((size_t)got < n) {
        return 0; /* shrank under us: not an array */
    }
    if (sa_legacy_parse(tail, n, (uint64_t)p->st.st_size, &lg) != 0 ||
        (exact && lg.size + lg.trailer_len != (uint64_t)p->st.st_size)) {
        return 0;
    }
    p->legacy = lg;
    p->kind = SA_SEG_LEGACY;
    p->why = NULL;
    memset(&p->hdr, 0, sizeof(p->hdr));
    p->hdr.ndim = lg.ndim;
    for (i = 0; i < lg.ndim; i++) {
        p->hdr.dims[i] = lg.dims[i];
    }
    return 0;
}

/* Reads the first want bytes of p's file into p->buf and parses them. */
static int
read_and_parse(sa_probe *p, size_t want, sa_hdr_status *status)
{
    ssize_t got = read_full(p, p->buf, want, 0);

    if (got < 0) {
        return (int)-got;
    }
    p->buf_len = (size_t)got;
    *status = sa_header_parse(p->buf, p->buf_len, &p->hdr, &p->why);
    return 0;
}

/* The header at the start of p's file: p->kind NPY, DAMAGED or OTHER. */
static int
read_header(sa_probe *p)
{
    sa_hdr_status status = SA_HDR_NOT_NPY;
    size_t want = sizeof(p->small);
    int err;

    p->buf = p->small;
    if ((uint64_t)p->st.st_size < want) {
        want = (size_t)p->st.st_size;
    }
    if ((err = read_and_parse(p, want, &status)) != 0) {
        return err;
    }
    if (status == SA_HDR_NEED_MORE) {
        /* A long header (many fields); its length is capped by the parser. */
        want = p->hdr.data_offset;
        if ((uint64_t)p->st.st_size < want) {
            p->kind = SA_SEG_DAMAGED;
            p->why = "file is shorter than its header";
            return 0;
        }
        p->buf = malloc(want);
        if (p->buf == NULL) {
            return ENOMEM;
        }
        if ((err = read_and_parse(p, want, &status)) != 0) {
            return err;
        }
        if (status == SA_HDR_NEED_MORE) {
            status = SA_HDR_CORRUPT;
            p->why = "file is shorter than its header";
        }
    }
    p->kind = status == SA_HDR_OK        ? SA_SEG_NPY
              : status == SA_HDR_CORRUPT ? SA_SEG_DAMAGED
                                         : SA_SEG_OTHER;
    return 0;
}

static void
probe_init(sa_probe *p)
{
    p->fd = -1;
    p->buf = NULL;
    p->regular = 0;
    p->shm_object = 0;
    p->kind = SA_SEG_OTHER;
    p->why = NULL;
}

/*
 * Whether a file that is neither .npy nor 3.x is still being made: the
 * marked header (SA_UNPUBLISHED_MAGIC), or a shm object not written yet
 * (prepare_shm): empty, or, where shm objects take no write(2) (macOS:
 * not SA_SHM_FILES) and are sized before the header goes in through the
 * map, zeros.  (Where they are files, anyone may write zeros: those are
 * "not an array".)
 */
static int
unpublished(const sa_probe *p)
{
    static const unsigned char zeros[6];

    if (p->buf_len >= 6 && memcmp(p->buf, SA_UNPUBLISHED_MAGIC, 6) == 0) {
        return 1;
    }
    return p->shm_object &&
           (p->st.st_size == 0 || (!SA_SHM_FILES && p->buf_len >= 6 &&
                                   memcmp(p->buf, zeros, 6) == 0));
}

/*
 * Whether a shm object grew while its header was read: a creator sizes it
 * between writing the marked header and publishing (prepare_shm), so the
 * size seen before may belong to the unpublished object and the header
 * read after to the published one.  Then the header is read again.
 */
static int
grew(sa_probe *p, int *err)
{
    struct stat now;
    sa_ident id;

    if (!p->shm_object) {
        return 0;
    }
    if ((*err = sa_stat(p->fd, NULL, 0, &now, &id)) != 0 ||
        now.st_size == p->st.st_size) {
        return 0;
    }
    drop_buf(p);
    p->kind = SA_SEG_OTHER;
    p->why = NULL;
    return 1;
}

/* Reads and classifies the header of p->fd, which was just opened. */
static int
probe_fd(sa_probe *p)
{
    int err, tries = 0;

again:
    if ((err = sa_stat(p->fd, NULL, 0, &p->st, &p->id)) != 0) {
        return err;
    }
    /* macOS reports a shm object's mode without a file type. */
    p->regular = S_ISREG(p->st.st_mode) ||
                 (p->shm_object && (p->st.st_mode & S_IFMT) == 0);
    if (!p->regular) {
        return 0;
    }
    if ((err = read_header(p)) != 0) {
        return err;
    }
    /* A 3.x segment may hold anything at offset 0, even bytes that look
     * like (a damaged) .npy header; an intact .npy header is weighed
     * against a trailer later, once its data size is known. */
    if (p->kind != SA_SEG_NPY && (err = sa_probe_legacy(p, 0)) != 0) {
        return err;
    }
    if (p->kind != SA_SEG_NPY && p->kind != SA_SEG_LEGACY && unpublished(p)) {
        p->kind = SA_SEG_INCOMPLETE;
        p->why = "still being created";
    }
    /* It grows once (prepare_shm); more is someone else's doing. */
    if (tries++ < 2 && grew(p, &err)) {
        goto again;
    }
    return err;
}

int
sa_probe_shm(sa_probe *p, const char *path, int writable)
{
#if SA_SHM_FILES
    char file[PATH_MAX];
#endif
    int err;

    probe_init(p);
    p->shm_object = 1;
    p->fd = shm_open(path, (writable ? O_RDWR : O_RDONLY) | SHM_NONBLOCK, 0);
    if (p->fd < 0) {
        err = errno;
#if SA_SHM_FILES
        /* A directory or socket planted under the name is "not an array",
         * as in sa_probe_open. */
        if ((err == EISDIR || err == EINVAL || err == ENXIO) &&
            snprintf(file, sizeof(file), "%s%s", SA_SHM_DIR, path) <
                (int)sizeof(file) &&
            sa_statat(AT_FDCWD, file, AT_SYMLINK_NOFOLLOW, &p->st, &p->id) ==
                0 &&
            !S_ISREG(p->st.st_mode)) {
            return 0;
        }
#endif
        return err;
    }
    if ((err = probe_fd(p)) != 0) {
        sa_probe_close(p);
    }
    return err;
}

int
sa_probe_open(sa_probe *p, int dirfd, const char *path, int writable,
              int nofollow)
{
    int flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK |
                (nofollow ? O_NOFOLLOW : 0);
    int err = 0;

    probe_init(p);
    /* O_NONBLOCK: a FIFO planted under an array's name must not hang us. */
    p->fd = openat(dirfd, path, flags);
    if (p->fd < 0) {
        err = errno;
        /* A socket or device node under the name cannot be opened (on a
         * nodev mount not even by root: EACCES), but it is still "not an
         * array", not an I/O error; a regular file we may not open stays
         * EACCES. */
        if ((err == ENXIO || err == ENODEV || err == EOPNOTSUPP ||
             err == EISDIR || err == EACCES) &&
            sa_statat(dirfd, path, nofollow ? AT_SYMLINK_NOFOLLOW : 0, &p->st,
                      &p->id) == 0 &&
            !S_ISREG(p->st.st_mode)) {
            return 0;
        }
        goto error;
    }
    if ((err = probe_fd(p)) != 0) {
        goto error;
    }
    return 0;
error:
    sa_probe_close(p);
    return err;
}

int
sa_map(int fd, const struct stat *st, uint64_t len, int writable, void **addr,
       size_t *maplen)
{
    void *a;

    *addr = NULL;
    *maplen = 0;
#if SA_HAVE_STATFS_MAGIC
    {
        uint64_t blk = (uint64_t)st->st_blksize;
        struct statfs sfs;

        /* hugetlbfs reports its page size as the block size; only there
         * is the extra fstatfs paid, and only there rounding is right
         * (elsewhere pages past EOF would make mlock fail). */
        if (blk > (uint64_t)sysconf(_SC_PAGESIZE) && (blk & (blk - 1)) == 0 &&
            fstatfs(fd, &sfs) == 0 && sfs.f_type == HUGETLBFS_MAGIC) {
            if (len > UINT64_MAX - blk) {
                return EFBIG;
            }
            len = (len + blk - 1) & ~(blk - 1);
        }
    }
#else
    (void)st;
#endif
    if (len == 0 || len > (uint64_t)SIZE_MAX) {
        return len == 0 ? EINVAL : EFBIG;
    }
    a = mmap(NULL, (size_t)len, writable ? PROT_READ | PROT_WRITE : PROT_READ,
             MAP_SHARED, fd, 0);
    if (a == MAP_FAILED) {
        return errno;
    }
    *addr = a;
    *maplen = (size_t)len;
    return 0;
}

/*
 * Reserves the blocks of a new file that nobody else writes yet; 0 also
 * where the system cannot allocate ahead (nothing is promised there).
 */
static int
allocate_new(int fd, uint64_t len)
{
#if SA_HAVE_POSIX_FALLOCATE
    int err = posix_fallocate(fd, 0, (off_t)len);

    /* The BSDs refuse where the filesystem cannot (ZFS: EINVAL). */
    if (err == EINVAL || err == ENODEV || err == EOPNOTSUPP || err == ENOSYS) {
        return 0;
    }
    return err;
#else
    (void)fd;
    (void)len;
    return 0;
#endif
}

/*
 * Gives the first len bytes of fd blocks; 0 also where the filesystem
 * cannot allocate ahead (then nothing is promised: see the README).
 */
static int
allocate(int fd, uint64_t len)
{
#if SA_HAVE_FALLOCATE
    /* fallocate(2), not posix_fallocate: where the filesystem cannot,
     * glibc would emulate it by writing into blocks other processes may be
     * writing too. */
    if (fallocate(fd, 0, 0, (off_t)len) < 0) {
        if (errno == EOPNOTSUPP || errno == ENOSYS) {
            return 0;
        }
        return errno;
    }
    return 0;
#else
    /* The BSDs' posix_fallocate is a system call and refuses where it
     * cannot allocate: nothing is emulated by writing. */
    return allocate_new(fd, len);
#endif
}

int
sa_reserve(int fd, const struct stat *st, uint64_t len, int trust_blocks)
{
    off_t hole;

    if (len > (uint64_t)INT64_MAX) {
        return EFBIG;
    }
    if ((uint64_t)st->st_blocks * 512 >= len) {
        if (trust_blocks) {
            return 0;
        }
#if SA_HAVE_SEEK_HOLE
        /* Metadata blocks count too on disk filesystems: ask for holes. */
        hole = lseek(fd, 0, SEEK_HOLE);
        if (hole < 0 || (uint64_t)hole >= len) {
            return 0;
        }
#else
        (void)hole;
        return 0;
#endif
    }
    return allocate(fd, len);
}

/* Writes len bytes at offset 0; 0 or the errno (a short write is retried,
 * so the error is the real one: ENOSPC, EFBIG, or EINTR). */
static int
pwrite_full(int fd, const unsigned char *buf, size_t len)
{
    size_t done = 0;
    ssize_t r;

    while (done < len) {
        r = pwrite(fd, buf + done, len - done, (off_t)done);
        if (r < 0) { /* EINTR too: prepare starts again after handlers */
            return errno;
        }
        if (r == 0) {
            return ENOSPC;
        }
        done += (size_t)r;
    }
    return 0;
}

#if SA_HAVE_O_TMPFILE
/* Gives the O_TMPFILE descriptor fd the name path, never replacing one. */
static int
link_tmpfile(int fd, const char *path)
{
    /* Set once AT_EMPTY_PATH was refused: later creates go straight to
     * /proc (a benign race between threads costs one extra call). */
    static volatile int no_empty_path = 0;
    char proc[64];

    if (!no_empty_path) {
        if (linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0) {
            return 0;
        }
        /* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc does not. */
        if (errno != ENOENT && errno != EPERM) {
            return errno;
        }
        no_empty_path = 1;
    }
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0) {
        return 0;
    }
    return errno;
}
#endif

/*
 * On tmpfs, reserves the segment by faulting it in through the mapping
 * rather than with fallocate, after asking for huge pages: fallocate
 * allocates before any mapping exists, which on a tmpfs mounted
 * huge=advise (the cautious setting for /dev/shm) means small pages.  A
 * page that cannot be had is EFAULT from MADV_POPULATE_WRITE (where a
 * write would have been SIGBUS): ENOSPC.  EOPNOTSUPP when this is not a
 * tmpfs or the kernel is too old: the caller falls back to fallocate.
 */
static int
populate_tmpfs(sa_create_job *job)
{
#if SA_HAVE_MADV_POPULATE_WRITE && SA_HAVE_STATFS_MAGIC
    struct statfs sfs;
    int err;

    if (fstatfs(job->fd, &sfs) < 0 || sfs.f_type != TMPFS_MAGIC) {
        return EOPNOTSUPP;
    }
    /* More than the filesystem has free fails now, as fallocate would:
     * faulting in pages until the tmpfs is full could first exhaust memory
     * (a tmpfs may be as large as RAM) and wake the OOM killer. */
    if (sfs.f_blocks != 0 &&
        job->total / (uint64_t)sfs.f_bsize >= (uint64_t)sfs.f_bavail) {
        return ENOSPC;
    }
    if (ftruncate(job->fd, (off_t)job->total) < 0) {
        return errno;
    }
    if ((err = sa_stat(job->fd, NULL, 0, &job->st, &job->id)) != 0 ||
        (err = sa_map(job->fd, &job->st, job->total, 1, &job->addr,
                      &job->size)) != 0) {
        return err;
    }
    /* Advice only: refused where THP is off, and that is fine. */
    (void)madvise(job->addr, job->size, MADV_HUGEPAGE);
    if (madvise(job->addr, job->size, MADV_POPULATE_WRITE) == 0) {
        return 0;
    }
    if (errno == EFAULT) {
        return ENOSPC;
    }
    if (errno == EINVAL) {
        return EOPNOTSUPP; /* before Linux 5.14; the map stays */
    }
    return errno;
#else
    (void)job;
    return EOPNOTSUPP;
#endif
}

/*
 * Unlinks name if, and only if, it is still the file described by was: a
 * file swapped in meanwhile is left (ESTALE).
 */
static int
unlink_if_same(const sa_name *name, const struct stat *was)
{
    struct stat now;
    sa_ident id;
    int err;

    if ((err = sa_stat_path(name->path, name->shm_object, 1, &now, &id)) !=
        0) {
        return err;
    }
    if (now.st_dev != was->st_dev || now.st_ino != was->st_ino) {
        return ESTALE;
    }
    if ((name->shm_object ? shm_unlink(name->path) : unlink(name->path)) < 0) {
        return errno;
    }
    return 0;
}

/* Removes the shm object job made, unless someone deleted it and made
 * another meanwhile. */
static void
unlink_made_shm(sa_create_job *job)
{
    struct stat ours;

    /* A mode without read for us cannot be opened to compare: still ours
     * (made with O_EXCL, and nobody else could open it either). */
    if (fstat(job->fd, &ours) == 0 &&
        unlink_if_same(job->name, &ours) == EACCES) {
        shm_unlink(job->name->path);
    }
}

void
sa_create_abort(sa_create_job *job)
{
    if (job->addr != NULL) {
        munmap(job->addr, job->size);
        job->addr = NULL;
    }
    if (job->shm_created && job->fd >= 0) {
        unlink_made_shm(job);
    }
    job->shm_created = 0;
    job->magic = NULL;
    if (job->fd >= 0) {
        close(job->fd);
        job->fd = -1;
    }
    if (job->tmp_named) {
        unlink(job->tmp);
        job->tmp_named = 0;
    }
    sa_claim_release(&job->claim);
}

/*
 * sa_create_prepare for a shm object (posix backend): there is no making
 * it out of sight, so it is made under its name with O_EXCL (which also
 * settles races between creators), sized once (macOS allows one
 * ftruncate), reserved where posix_fallocate can, and given the header
 * without the first byte of its magic: until publish writes that byte,
 * attach and info report FileNotFoundError (FORMAT.md).
 */
static int
prepare_shm(sa_create_job *job)
{
    size_t done;
    ssize_t r = 0;
    int err;

    job->fd = shm_open(job->name->path, O_RDWR | O_CREAT | O_EXCL,
                       (mode_t)job->mode);
    if (job->fd < 0) {
        return errno;
    }
    job->shm_created = 1;
    if ((err = sa_stat(job->fd, NULL, 0, &job->st, &job->id)) != 0) {
        goto error;
    }
    /* Exactly the mode asked for, whatever the umask. */
    if ((job->st.st_mode & 07777) != (mode_t)job->mode) {
        if (fchmod(job->fd, (mode_t)job->mode) < 0) {
            err = errno;
            goto error;
        }
        job->st.st_mode = (job->st.st_mode & ~(mode_t)07777) | job->mode;
    }
    /* Where shm objects take write(2) (Linux, FreeBSD), the marked header
     * goes in before the object has any other size, so that an attacher
     * only ever sees it empty or marked (FileNotFoundError), never zeros.
     * (macOS has no write(2) here: it is sized first, and the header goes
     * in through the map a moment later.) */
    for (done = 1; done < job->header_len; done += (size_t)r) {
        r = pwrite(job->fd, job->header + done, job->header_len - done,
                   (off_t)done);
        if (r <= 0) {
            break;
        }
    }
    if (ftruncate(job->fd, (off_t)job->total) < 0) {
        err = errno;
        goto error;
    }
    /* Only its size changed since sa_stat: no second call for that. */
    job->st.st_size = (off_t)job->total;
    if ((err = sa_map(job->fd, &job->st, job->total, 1, &job->addr,
                      &job->size)) != 0) {
        goto error;
    }
    /* The marked header before the reservation, which may take long (a
     * creator killed from here on leaves something delete removes).  The
     * header page is no SIGBUS risk: one page. */
    if (done < job->header_len) {
        memcpy((unsigned char *)job->addr + 1, job->header + 1,
               job->header_len - 1);
    }
    if ((err = allocate_new(job->fd, job->total)) != 0) {
        goto error;
    }
    job->magic = job->addr;
    return 0;
error:
    sa_create_abort(job);
    return err;
}

int
sa_create_prepare(sa_create_job *job)
{
    unsigned char *whole;
    size_t written; /* bytes of the file written by pwrite: 0, header, all */
    int err = 0, claimed;
    struct stat taken;

    job->fd = -1;
    job->tmp_named = 0;
    job->shm_created = 0;
    job->magic = NULL;
    job->addr = NULL;
    job->size = 0;
    if (job->total > (uint64_t)SIZE_MAX || job->total > (uint64_t)INT64_MAX) {
        return EFBIG;
    }
    if (job->name->shm_object) {
        return prepare_shm(job);
    }
    /*
     * Segments bigger than one pwrite fail here when the name exists,
     * before a byte is reserved, and take turns with other creators of the
     * name (claim.c).  Small ones, whose reservation costs less than these
     * system calls, do both only once a first attempt ran out of space:
     * then a creator racing for the same name may have held the space.
     */
    claimed = job->total > SA_WRITE_WHOLE_MAX || job->out_of_space;
    if (claimed && lstat(job->name->path, &taken) == 0) {
        return EEXIST;
    }
#if SA_HAVE_O_TMPFILE
    /* The mode asked for (less the umask): unnamed, nobody else can open
     * it meanwhile, and usually no fchmod is needed below. */
    job->fd = open(job->name->dir, O_TMPFILE | O_RDWR | O_CLOEXEC,
                   (mode_t)job->mode);
    if (job->fd < 0 && errno != EOPNOTSUPP && errno != EISDIR &&
        errno != EINVAL) {
        err = errno;
        goto taken_or_error;
    }
#endif
    if (job->fd < 0) {
        /* No O_TMPFILE here: a hidden name, removed on every error path. */
        if (snprintf(job->tmp, sizeof(job->tmp), "%s/.sharedarray-XXXXXX",
                     job->name->dir) >= (int)sizeof(job->tmp)) {
            err = ENAMETOOLONG;
            goto error;
        }
        job->fd = mkostemp(job->tmp, O_CLOEXEC);
        if (job->fd < 0) {
            err = errno;
            goto taken_or_error;
        }
        job->tmp_named = 1;
    }
    /* Claimed after the file is open: with one descriptor left, the file
     * gets it and the claim is done without. */
    err = claimed ? sa_claim_try(&job->claim, job->name) : 0;
    if (err == EBUSY) {
        /* Someone else of ours is creating it: drop the file, keep the
         * connection to wait on. */
        int wait_fd = job->claim.wait_fd;

        job->claim.wait_fd = -1;
        sa_create_abort(job);
        job->claim.wait_fd = wait_fd;
        return EBUSY;
    }
    if (err != 0) {
        goto error;
    }
    /* The header goes in with pwrite: no page fault on the mapping.  A
     * small segment is written whole (header and zeros), which reserves
     * its blocks as fallocate would, in one call.  hugetlbfs has no
     * write(2) (EINVAL); there the header goes through the map. */
    if (job->total <= SA_WRITE_WHOLE_MAX &&
        (whole = calloc(1, (size_t)job->total)) != NULL) {
        memcpy(whole, job->header, job->header_len);
        written = (size_t)job->total;
        err = pwrite_full(job->fd, whole, written);
        free(whole);
    }
    else {
        written = job->header_len;
        err = pwrite_full(job->fd, job->header, written);
    }
    if (err == EINVAL) {
        written = 0;
        err = 0;
    }
    /* Reserve every block now: a full filesystem is ENOSPC here, not SIGBUS
     * on some later write. */
    if (err == 0 && written < job->total) {
        err = populate_tmpfs(job);
        if (err == EOPNOTSUPP) {
            err = allocate_new(job->fd, job->total);
        }
    }
    if ((err == ENOSPC || err == EDQUOT) && !claimed) {
        /* Once more, in turn with other creators of this name. */
        job->out_of_space = 1;
        sa_create_abort(job);
        return EINTR;
    }
    if (err != 0) {
        goto taken_or_error;
    }
    if ((err = sa_stat(job->fd, NULL, 0, &job->st, &job->id)) != 0) {
        goto error;
    }
    /* Exactly the mode asked for, whatever the umask (paid only when the
     * umask took bits away, or for mkostemp's 0600). */
    if ((job->st.st_mode & 07777) != (mode_t)job->mode) {
        if (fchmod(job->fd, (mode_t)job->mode) < 0) {
            err = errno;
            goto error;
        }
        job->st.st_mode = (job->st.st_mode & ~(mode_t)07777) | job->mode;
    }
    if (job->addr == NULL) {
        err = sa_map(job->fd, &job->st, job->total, 1, &job->addr, &job->size);
        if (err != 0) {
            goto error;
        }
    }
    if (written == 0) {
        memcpy(job->addr, job->header, job->header_len);
    }
    return 0;
taken_or_error:
    /* Out of space or inodes while the name was taken meanwhile (by a
     * creator that does not claim names): the name, not the space, is what
     * the caller needs to hear; link would have said EEXIST anyway. */
    if ((err == ENOSPC || err == EFBIG || err == EDQUOT) &&
        lstat(job->name->path, &taken) == 0) {
        err = EEXIST;
    }
error:
    sa_create_abort(job);
    return err;
}

int
sa_create_publish(sa_create_job *job)
{
    int err = 0;

    if (job->magic != NULL) {
        /* Release order: whoever reads the magic reads all written before
         * it (map_read's acquire load). */
        __atomic_store_n(job->magic, job->header[0], __ATOMIC_RELEASE);
        job->magic = NULL;
        job->shm_created = 0;
    }
    else if (job->tmp_named) {
        if (link(job->tmp, job->name->path) < 0) {
            err = errno;
            goto error;
        }
        unlink(job->tmp);
        job->tmp_named = 0;
    }
    else {
#if SA_HAVE_O_TMPFILE
        if ((err = link_tmpfile(job->fd, job->name->path)) != 0) {
            goto error;
        }
#else
        err = EINVAL; /* no O_TMPFILE: prepare always names the file */
        goto error;
#endif
    }
    close(job->fd);
    job->fd = -1;
    /* Waiters wake to find the name made. */
    sa_claim_release(&job->claim);
    return 0;
error:
    sa_create_abort(job);
    return err;
}

int
sa_unlink_checked(const sa_probe *p, const sa_name *name)
{
    return unlink_if_same(name, &p->st);
}
