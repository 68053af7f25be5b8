/* mkostemp, O_TMPFILE, AT_EMPTY_PATH */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

/* pread until n bytes or end of file; returns bytes read or -errno. */
static ssize_t
read_full(int fd, unsigned char *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)got);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (r == 0) {
            break;
        }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

void
sa_probe_close(sa_probe *p)
{
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }
    if (p->buf != NULL && p->buf != p->small) {
        free(p->buf);
    }
    p->buf = NULL;
}

/* Looks for a SharedArray 3.x trailer at the end of the file. */
static int
probe_legacy(sa_probe *p)
{
    size_t n = SA_LEGACY_TAIL_MAX, got = 0;
    off_t at;
    int i;

    if ((uint64_t)p->st.st_size < n) {
        n = (size_t)p->st.st_size;
    }
    at = p->st.st_size - (off_t)n;
    while (got < n) {
        ssize_t r = pread(p->fd, p->small + got, n - got, at + (off_t)got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return errno;
        }
        if (r == 0) {
            return 0;  /* shrank under us: not an array */
        }
        got += (size_t)r;
    }
    if (sa_legacy_parse(p->small, n, (uint64_t)p->st.st_size, &p->legacy) ==
        0) {
        p->status = SA_HDR_LEGACY;
        memset(&p->hdr, 0, sizeof(p->hdr));
        p->hdr.ndim = p->legacy.ndim;
        for (i = 0; i < p->legacy.ndim; i++) {
            p->hdr.dims[i] = p->legacy.dims[i];
        }
    }
    return 0;
}

int
sa_probe_open(sa_probe *p, int dirfd, const char *path, int writable,
              int nofollow)
{
    int flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK |
                (nofollow ? O_NOFOLLOW : 0);
    size_t want;
    ssize_t got;
    int err = 0;

    p->fd = -1;
    p->buf = NULL;
    p->regular = 0;
    p->status = SA_HDR_NOT_NPY;
    p->why = NULL;
    /* O_NONBLOCK: a FIFO planted under an array's name must not hang us. */
    do {
        p->fd = openat(dirfd, path, flags);
    } while (p->fd < 0 && errno == EINTR);
    if (p->fd < 0) {
        err = errno;
        /* A socket or device node under the name cannot be opened, but it
         * is still "not an array", not an I/O error. */
        if ((err == ENXIO || err == ENODEV || err == EOPNOTSUPP) &&
            fstatat(dirfd, path, &p->st, nofollow ? AT_SYMLINK_NOFOLLOW : 0) ==
                0 &&
            !S_ISREG(p->st.st_mode)) {
            return 0;
        }
        goto error;
    }
    if (fstat(p->fd, &p->st) < 0) {
        err = errno;
        goto error;
    }
    p->regular = S_ISREG(p->st.st_mode);
    if (!p->regular) {
        return 0;
    }
    p->buf = p->small;
    want = sizeof(p->small);
    if ((uint64_t)p->st.st_size < want) {
        want = (size_t)p->st.st_size;
    }
    got = read_full(p->fd, p->buf, want);
    if (got < 0) {
        err = (int)-got;
        goto error;
    }
    p->buf_len = (size_t)got;
    p->status = sa_header_parse(p->buf, p->buf_len, &p->hdr, &p->why);
    if (p->status == SA_HDR_NEED_MORE) {
        /* A long header (many fields); its length is capped by the parser. */
        want = p->hdr.data_offset;
        if ((uint64_t)p->st.st_size < want) {
            p->status = SA_HDR_CORRUPT;
            p->why = "file is shorter than its header";
            return 0;
        }
        p->buf = malloc(want);
        if (p->buf == NULL) {
            err = ENOMEM;
            goto error;
        }
        got = read_full(p->fd, p->buf, want);
        if (got < 0) {
            err = (int)-got;
            goto error;
        }
        p->buf_len = (size_t)got;
        p->status = sa_header_parse(p->buf, p->buf_len, &p->hdr, &p->why);
        if (p->status == SA_HDR_NEED_MORE) {
            p->status = SA_HDR_CORRUPT;
            p->why = "file is shorter than its header";
        }
    }
    if (p->status == SA_HDR_NOT_NPY &&
        (uint64_t)p->st.st_size >= SA_LEGACY_TRAILER_32) {
        if ((err = probe_legacy(p)) != 0) {
            goto error;
        }
    }
    return 0;
error:
    sa_probe_close(p);
    return err;
}

int
sa_map(int fd, const struct stat *st, uint64_t len, int writable,
       void **addr, size_t *maplen)
{
    uint64_t blk = (uint64_t)st->st_blksize;
    struct statfs sfs;
    void *a;

    *addr = NULL;
    *maplen = 0;
    /* hugetlbfs reports its page size as the block size; only there is
     * the extra fstatfs paid, and only there rounding is right (elsewhere
     * pages past EOF would make mlock fail). */
    if (blk > (uint64_t)sysconf(_SC_PAGESIZE) && (blk & (blk - 1)) == 0 &&
        fstatfs(fd, &sfs) == 0 && sfs.f_type == HUGETLBFS_MAGIC) {
        if (len > UINT64_MAX - blk) {
            return EFBIG;
        }
        len = (len + blk - 1) & ~(blk - 1);
    }
    if (len == 0 || len > (uint64_t)SIZE_MAX) {
        return len == 0 ? EINVAL : EFBIG;
    }
    a = mmap(NULL, (size_t)len,
             writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (a == MAP_FAILED) {
        return errno;
    }
    *addr = a;
    *maplen = (size_t)len;
    return 0;
}

/* Writes len bytes at offset 0; 0 or the errno (a short write is retried,
 * so the error is the real one: ENOSPC, EFBIG...). */
static int
pwrite_full(int fd, const unsigned char *buf, size_t len)
{
    size_t done = 0;
    ssize_t r;

    while (done < len) {
        r = pwrite(fd, buf + done, len - done, (off_t)done);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return errno;
        }
        if (r == 0) {
            return ENOSPC;
        }
        done += (size_t)r;
    }
    return 0;
}

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

void
sa_create_abort(sa_create_job *job)
{
    if (job->addr != NULL) {
        munmap(job->addr, job->size);
        job->addr = NULL;
    }
    if (job->fd >= 0) {
        close(job->fd);
        job->fd = -1;
    }
    if (job->tmp_named) {
        unlink(job->tmp);
        job->tmp_named = 0;
    }
}

int
sa_create_prepare(sa_create_job *job)
{
    unsigned char *whole;
    size_t written;  /* bytes of the file written by pwrite: 0, header, all */
    int err = 0;

    job->fd = -1;
    job->tmp_named = 0;
    job->addr = NULL;
    job->size = 0;
    if (job->total > (uint64_t)SIZE_MAX || job->total > (uint64_t)INT64_MAX) {
        return EFBIG;
    }
#ifdef O_TMPFILE
    /* The mode asked for (less the umask): unnamed, nobody else can open
     * it meanwhile, and usually no fchmod is needed below. */
    job->fd = open(job->name->dir, O_TMPFILE | O_RDWR | O_CLOEXEC,
                   (mode_t)job->mode);
    if (job->fd < 0 && errno != EOPNOTSUPP && errno != EISDIR &&
        errno != EINVAL) {
        err = errno;
        goto error;
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
            goto error;
        }
        job->tmp_named = 1;
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
        err = posix_fallocate(job->fd, 0, (off_t)job->total);
    }
    if (err != 0) {
        struct stat taken;

        /* The name is already taken: that, not the size, is what the
         * caller needs to hear (link would have said EEXIST anyway).  Paid
         * only on this error path. */
        if ((err == ENOSPC || err == EFBIG || err == EDQUOT) &&
            lstat(job->name->path, &taken) == 0) {
            err = EEXIST;
        }
        goto error;
    }
    if (fstat(job->fd, &job->st) < 0) {
        err = errno;
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
    err = sa_map(job->fd, &job->st, job->total, 1, &job->addr, &job->size);
    if (err != 0) {
        goto error;
    }
    if (written == 0) {
        memcpy(job->addr, job->header, job->header_len);
    }
    return 0;
error:
    sa_create_abort(job);
    return err;
}

int
sa_create_publish(sa_create_job *job)
{
    int err = 0;

    if (job->tmp_named) {
        if (link(job->tmp, job->name->path) < 0) {
            err = errno;
            goto error;
        }
        unlink(job->tmp);
        job->tmp_named = 0;
    }
    else if ((err = link_tmpfile(job->fd, job->name->path)) != 0) {
        goto error;
    }
    close(job->fd);
    job->fd = -1;
    return 0;
error:
    sa_create_abort(job);
    return err;
}

int
sa_unlink_checked(const sa_probe *p, const char *path)
{
    struct stat now;

    if (lstat(path, &now) < 0) {
        return errno;
    }
    if (now.st_dev != p->st.st_dev || now.st_ino != p->st.st_ino) {
        /* Replaced since we validated it: not ours to remove. */
        return ESTALE;
    }
    if (unlink(path) < 0) {
        return errno;
    }
    return 0;
}
