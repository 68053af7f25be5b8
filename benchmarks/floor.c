/*
 * floor.c: the bare system calls behind each benchmark figure, timed in C.
 *
 * What no Python library can beat: run.py compiles this with `cc -O2` and
 * reports it as the "C floor" column.  Usage:
 *
 *   floor FIGURE N WARMUP DIR PREFIX SIZE COUNT
 *
 * FIGURE is one of attach, attach_read, create_delete, create_fill, list,
 * first_read.  The files are made in DIR under names starting with PREFIX
 * and removed before exit (also on error).  SIZE is the data size in bytes
 * of the big array (create_fill, first_read), COUNT the number of files for
 * list; the small array has 80 bytes of data.  Like a SharedArray 4 segment
 * (and a .npy file made by it), every file is a 4096-byte header followed
 * by the data.
 *
 * Prints one JSON line: the median time per operation over N timed
 * operations (after WARMUP untimed ones), net of the timer's own overhead,
 * which is also printed.  For first_read, each operation runs in a fresh
 * process (fork) and pmd_kb is the smallest ShmemPmdMapped of those
 * processes (non-zero when the mapping used huge pages).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HEADER 4096     /* data offset of a SharedArray 4 segment */
#define SMALL 80        /* data bytes of the small array: 10 float64 */

static const char *dir, *prefix;
static char path[PATH_MAX];     /* the one file of most figures */
static long made;               /* list: how many numbered files exist */
static size_t size;             /* data bytes of the big array */
static long count;              /* list: number of files */
static long page;
static volatile unsigned char sink;

static void
numbered(char *buf, long i)
{
    snprintf(buf, PATH_MAX, "%s/%s-%ld", dir, prefix, i);
}

static void
cleanup(void)
{
    char p[PATH_MAX];

    if (path[0] != '\0') {
        unlink(path);
    }
    while (made > 0) {
        numbered(p, --made);
        unlink(p);
    }
}

static void
die(const char *what)
{
    perror(what);
    exit(1);    /* atexit: cleanup() */
}

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t
median(uint64_t *v, long n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_u64);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A file of HEADER + data bytes at p, data filled with 1s if fill. */
static void
make_file(const char *p, size_t data, int fill)
{
    size_t len = HEADER + data;
    unsigned char *m;
    int fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

    if (fd < 0) {
        die(p);
    }
    if (ftruncate(fd, (off_t)len) < 0) {
        die("ftruncate");
    }
    m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        die("mmap");
    }
    memcpy(m, "\x93NUMPY", 6);   /* enough to be read back by list */
    if (fill) {
        memset(m + HEADER, 1, data);
    }
    munmap(m, len);
    close(fd);
}

/* ---- the operations ---------------------------------------------------- */

static void
op_noop(void)
{
}

/* open + fstat + mmap + close (+ read the first data byte) + munmap */
static void
attach(int touch)
{
    struct stat st;
    unsigned char *m;
    int fd = open(path, O_RDWR | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0) {
        die("attach");
    }
    m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
             fd, 0);
    if (m == MAP_FAILED) {
        die("mmap");
    }
    close(fd);
    if (touch) {
        sink = ((volatile unsigned char *)m)[HEADER];
    }
    munmap(m, (size_t)st.st_size);
}

static void
op_attach(void)
{
    attach(0);
}

static void
op_attach_read(void)
{
    attach(1);
}

/* open(O_CREAT|O_EXCL) + ftruncate + mmap (+ memset) + munmap + close +
 * unlink */
static void
create_delete(size_t data, int fill)
{
    size_t len = HEADER + data;
    unsigned char *m;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

    if (fd < 0 || ftruncate(fd, (off_t)len) < 0) {
        die("create");
    }
    m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        die("mmap");
    }
    if (fill) {
        memset(m + HEADER, 1, data);
    }
    munmap(m, len);
    close(fd);
    if (unlink(path) < 0) {
        die("unlink");
    }
}

static void
op_create_delete(void)
{
    create_delete(SMALL, 0);
}

static void
op_create_fill(void)
{
    create_delete(size, 1);
}

/* opendir + for each regular file: openat + pread(4096) + close */
static void
op_list(void)
{
    unsigned char buf[HEADER];
    struct dirent *de;
    long found = 0;
    DIR *d = opendir(dir);

    if (d == NULL) {
        die(dir);
    }
    while ((de = readdir(d)) != NULL) {
        int fd;

        if (de->d_type != DT_REG) {
            continue;
        }
        fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) {
            continue;
        }
        if (pread(fd, buf, sizeof(buf), 0) >= 6 &&
            memcmp(buf, "\x93NUMPY", 6) == 0) {
            found++;
        }
        close(fd);
    }
    closedir(d);
    if (found < count) {
        fprintf(stderr, "list found %ld of our %ld files\n", found, count);
        exit(1);
    }
}

/* In a fresh process: open + fstat + mmap + close + read one byte of every
 * data page; the time goes to *ns and ShmemPmdMapped to *pmd_kb.  The
 * munmap after it is not timed (nor is it in the Python workers). */
static void
first_read_child(uint64_t *ns, uint64_t *pmd_kb)
{
    struct stat st;
    unsigned char *m;
    unsigned int sum = 0;
    uint64_t t0 = now_ns();
    char line[256];
    FILE *f;
    int fd = open(path, O_RDWR | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0) {
        _exit(1);
    }
    m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
             fd, 0);
    if (m == MAP_FAILED) {
        _exit(1);
    }
    close(fd);
    for (size_t off = HEADER; off < (size_t)st.st_size; off += (size_t)page) {
        sum += ((volatile unsigned char *)m)[off];
    }
    sink = (unsigned char)sum;
    *ns = now_ns() - t0;
    *pmd_kb = 0;
    if ((f = fopen("/proc/self/smaps_rollup", "r")) != NULL) {
        while (fgets(line, sizeof(line), f) != NULL) {
            unsigned long long kb;
            if (sscanf(line, "ShmemPmdMapped: %llu kB", &kb) == 1) {
                *pmd_kb = kb;
            }
        }
        fclose(f);
    }
    munmap(m, (size_t)st.st_size);
    _exit(0);
}

/* ---- driver ------------------------------------------------------------ */

static uint64_t
time_ops(void (*op)(void), long n, long warmup, uint64_t *times)
{
    for (long i = 0; i < warmup; i++) {
        op();
    }
    for (long i = 0; i < n; i++) {
        uint64_t t0 = now_ns();
        op();
        times[i] = now_ns() - t0;
    }
    return median(times, n);
}

int
main(int argc, char **argv)
{
    struct { const char *name; void (*op)(void); } ops[] = {
        {"attach", op_attach},
        {"attach_read", op_attach_read},
        {"create_delete", op_create_delete},
        {"create_fill", op_create_fill},
        {"list", op_list},
    };
    const char *figure;
    uint64_t *times, overhead, med = 0, pmd_min = UINT64_MAX;
    long n, warmup;

    if (argc != 8) {
        fprintf(stderr,
                "usage: %s FIGURE N WARMUP DIR PREFIX SIZE COUNT\n", argv[0]);
        return 2;
    }
    figure = argv[1];
    n = atol(argv[2]);
    warmup = atol(argv[3]);
    dir = argv[4];
    prefix = argv[5];
    size = (size_t)strtoull(argv[6], NULL, 10);
    count = atol(argv[7]);
    page = sysconf(_SC_PAGESIZE);
    if (n < 1 || warmup < 0 || size == 0 || count < 0) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    /* Room for the calibration's 1000 timings too. */
    times = calloc((size_t)(n < 1000 ? 1000 : n), sizeof(*times));
    if (times == NULL) {
        die("calloc");
    }
    snprintf(path, sizeof(path), "%s/%s-%ld", dir, prefix, (long)getpid());
    atexit(cleanup);
    /* What the timing itself costs: subtracted from in-process figures. */
    overhead = time_ops(op_noop, 1000, 100, times);

    if (strcmp(figure, "first_read") == 0) {
        /* ns and pmd_kb of each child, in memory the children share. */
        uint64_t *shared = mmap(NULL, 2 * sizeof(uint64_t),
                                PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (shared == MAP_FAILED) {
            die("mmap");
        }
        make_file(path, size, 1);
        for (long i = 0; i < n; i++) {
            int status;
            pid_t pid = fork();

            if (pid < 0) {
                die("fork");
            }
            if (pid == 0) {
                first_read_child(&shared[0], &shared[1]);
            }
            if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
                WEXITSTATUS(status) != 0) {
                fprintf(stderr, "first_read child failed\n");
                exit(1);
            }
            times[i] = shared[0];
            if (shared[1] < pmd_min) {
                pmd_min = shared[1];
            }
        }
        med = median(times, n);
    }
    else {
        void (*op)(void) = NULL;

        for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
            if (strcmp(figure, ops[i].name) == 0) {
                op = ops[i].op;
            }
        }
        if (op == NULL) {
            fprintf(stderr, "unknown figure %s\n", figure);
            return 2;
        }
        if (op == op_attach || op == op_attach_read) {
            make_file(path, SMALL, 1);
        }
        else if (op == op_list) {
            char p[PATH_MAX];
            for (made = 0; made < count;) {
                numbered(p, made);
                make_file(p, SMALL, 0);
                made++;
            }
        }
        med = time_ops(op, n, warmup, times);
        med = med > overhead ? med - overhead : 0;
    }
    printf("{\"figure\": \"%s\", \"n\": %ld, \"median_ns\": %llu, "
           "\"overhead_ns\": %llu",
           figure, n, (unsigned long long)med, (unsigned long long)overhead);
    if (pmd_min != UINT64_MAX) {
        printf(", \"pmd_kb\": %llu", (unsigned long long)pmd_min);
    }
    printf("}\n");
    free(times);
    return 0;   /* atexit: cleanup() */
}
