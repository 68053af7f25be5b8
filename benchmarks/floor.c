/*
 * floor.c: the bare system calls behind each benchmark figure, timed in C.
 *
 * What no Python library can beat: run.py compiles this with `cc -O2` and
 * reports it as the "C floor" column.  Usage:
 *
 *   floor FIGURE N WARMUP DIR PREFIX SIZE COUNT
 *
 * FIGURE is one of those in the table in main().  The files are made in DIR
 * under names starting with PREFIX and removed before exit (also on error).
 * SIZE is the data size in bytes of the big array (create_fill*,
 * first_read), COUNT the number of files for list*; the small array has 80
 * bytes of data.  Like a SharedArray 4 segment (and a .npy file made by
 * it), every file is a 4096-byte header followed by the data.
 *
 * Prints one JSON line: the median time per operation over N timed
 * operations (after WARMUP untimed ones), net of the timer's own overhead,
 * which is also printed.  The "fresh" figures (first_read, list_cold) run
 * each operation in a fresh process (fork).  pmd_kb, for the figures about
 * huge pages, is the ShmemPmdMapped of the mapping: for first_read the
 * smallest over the processes, for create_fill_advise that of one more
 * array made the same way after the timed ones.
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

#define HEADER 4096 /* data offset of a SharedArray 4 segment */
#define SMALL 80    /* data bytes of the small array: 10 float64 */
#define NO_PMD UINT64_MAX

static const char *dir, *prefix;
static char path[PATH_MAX];   /* the one file of most figures */
static long made;             /* how many numbered files exist */
static char **numbered_paths; /* attach_first: their names */
static long next_numbered;    /* attach_first: the next to attach */
static size_t size;           /* data bytes of the big array */
static long count;            /* list: number of files */
static long n, warmup;
static long page;
static volatile unsigned char sink;
static unsigned char *kept; /* attach_again*: the mapping kept */
static struct stat kept_st; /*   and the identity of its file */
static pid_t owner;         /* the process that removes the files */

static void
numbered(char *buf, long i)
{
    snprintf(buf, PATH_MAX, "%s/%s-%ld", dir, prefix, i);
}

static void
cleanup(void)
{
    char p[PATH_MAX];

    if (getpid() != owner) {
        return; /* a fresh-process child that failed: not its files */
    }
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
    exit(1); /* atexit: cleanup() */
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
median(uint64_t *v, long len)
{
    qsort(v, (size_t)len, sizeof(*v), cmp_u64);
    return len % 2 ? v[len / 2] : (v[len / 2 - 1] + v[len / 2]) / 2;
}

/* ShmemPmdMapped in kB: of the whole process (addr NULL, from
 * smaps_rollup) or of the mapping holding addr (from smaps). */
static uint64_t
pmd_kb(const void *addr)
{
    char line[4096];
    int inside = addr == NULL;
    uint64_t kb = 0;
    FILE *f =
        fopen(addr ? "/proc/self/smaps" : "/proc/self/smaps_rollup", "r");

    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long lo, hi;
        unsigned long long v;

        if (addr && sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
            inside = lo <= (uintptr_t)addr && (uintptr_t)addr < hi;
        }
        else if (inside && sscanf(line, "ShmemPmdMapped: %llu kB", &v) == 1) {
            kb = v;
            break;
        }
    }
    fclose(f);
    return kb;
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
    memcpy(m, "\x93NUMPY", 6); /* enough to be read back by list */
    if (fill) {
        memset(m + HEADER, 1, data);
    }
    munmap(m, len);
    close(fd);
}

/* ---- setting up -------------------------------------------------------- */

static void
setup_none(void)
{
}

static void
setup_big(void)
{
    make_file(path, size, 1);
}

/* The small file, mapped for good, as by an array alive in the process. */
static void
setup_kept(void)
{
    int fd;

    make_file(path, SMALL, 1);
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &kept_st) < 0) {
        die("open");
    }
    kept = mmap(NULL, (size_t)kept_st.st_size, PROT_READ | PROT_WRITE,
                MAP_SHARED, fd, 0);
    if (kept == MAP_FAILED) {
        die("mmap");
    }
    close(fd);
    sink = kept[HEADER];
}

static void
make_numbered(long how_many)
{
    char p[PATH_MAX];

    for (made = 0; made < how_many;) {
        numbered(p, made);
        make_file(p, SMALL, 0);
        made++;
    }
}

static void
setup_list(void)
{
    make_numbered(count);
}

/* A small file per operation, warm-up included, and their names. */
static void
setup_first(void)
{
    make_numbered(warmup + n);
    numbered_paths = calloc((size_t)made, sizeof(*numbered_paths));
    if (numbered_paths == NULL) {
        die("calloc");
    }
    for (long i = 0; i < made; i++) {
        numbered_paths[i] = malloc(PATH_MAX);
        if (numbered_paths[i] == NULL) {
            die("malloc");
        }
        numbered(numbered_paths[i], i);
    }
}

/* ---- the operations ---------------------------------------------------- */

static void
op_noop(void)
{
}

/* open + fstat + mmap + close + munmap of the next numbered file */
static void
op_attach_first(void)
{
    struct stat st;
    unsigned char *m;
    int fd = open(numbered_paths[next_numbered++], O_RDWR | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0) {
        die("attach");
    }
    m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
             0);
    if (m == MAP_FAILED) {
        die("mmap");
    }
    close(fd);
    munmap(m, (size_t)st.st_size);
}

/* Attaching a name mapped already: one stat to check that the name still
 * refers to the file mapped, then the mapping is reused. */
static void
op_attach_again(void)
{
    struct stat st;

    if (stat(path, &st) < 0) {
        die("stat");
    }
    if (st.st_ino != kept_st.st_ino || st.st_dev != kept_st.st_dev) {
        fprintf(stderr, "%s was replaced\n", path);
        exit(1);
    }
}

/* The same, then reading the first data byte. */
static void
op_attach_again_read(void)
{
    op_attach_again();
    sink = kept[HEADER];
}

/* open(O_CREAT|O_EXCL) + ftruncate + mmap (+ madvise(MADV_HUGEPAGE)) (+
 * memset) + munmap + close + unlink; with pmd, ShmemPmdMapped of the
 * mapping before munmap goes to *pmd. */
static void
create_delete(size_t data, int fill, int advise, int reserve, uint64_t *pmd)
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
    if (advise && madvise(m, len, MADV_HUGEPAGE) < 0) {
        die("madvise");
    }
#ifdef MADV_POPULATE_WRITE
    /* The reservation SharedArray 4 makes before anyone writes, so that a
     * full tmpfs is ENOSPC at create and never SIGBUS at the fill. */
    if (reserve && madvise(m, len, MADV_POPULATE_WRITE) < 0) {
        die("madvise(MADV_POPULATE_WRITE)");
    }
#else
    (void)reserve;
#endif
    if (fill) {
        memset(m + HEADER, 1, data);
    }
    if (pmd != NULL) {
        *pmd = pmd_kb(m);
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
    create_delete(SMALL, 0, 0, 0, NULL);
}

static void
op_create_fill(void)
{
    create_delete(size, 1, 0, 0, NULL);
}

static void
op_create_fill_advise(void)
{
    create_delete(size, 1, 1, 0, NULL);
}

static void
op_create_fill_advise_reserved(void)
{
    create_delete(size, 1, 1, 1, NULL);
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

/* open + fstat + mmap + close + read one byte of every data page; the
 * mapping stays (the munmap after it is not timed, nor is it in the Python
 * workers: the child exits). */
static void
op_first_read(void)
{
    struct stat st;
    unsigned char *m;
    unsigned int sum = 0;
    int fd = open(path, O_RDWR | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0) {
        _exit(1);
    }
    m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
             0);
    if (m == MAP_FAILED) {
        _exit(1);
    }
    close(fd);
    for (size_t off = HEADER; off < (size_t)st.st_size; off += (size_t)page) {
        sum += ((volatile unsigned char *)m)[off];
    }
    sink = (unsigned char)sum;
}

/* ---- driver ------------------------------------------------------------ */

static uint64_t
time_ops(void (*op)(void), long len, long warm, uint64_t *times)
{
    for (long i = 0; i < warm; i++) {
        op();
    }
    for (long i = 0; i < len; i++) {
        uint64_t t0 = now_ns();
        op();
        times[i] = now_ns() - t0;
    }
    return median(times, len);
}

/* Each of n operations in a forked child (none for warm-up): their median
 * time, and the smallest ShmemPmdMapped of the children to *pmd_min. */
static uint64_t
time_fresh(void (*op)(void), uint64_t *times, uint64_t *pmd_min)
{
    /* ns and pmd_kb of each child, in memory the children share. */
    uint64_t *shared = mmap(NULL, 2 * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (shared == MAP_FAILED) {
        die("mmap");
    }
    for (long i = 0; i < n; i++) {
        int status;
        pid_t pid = fork();

        if (pid < 0) {
            die("fork");
        }
        if (pid == 0) {
            uint64_t t0 = now_ns();

            op();
            shared[0] = now_ns() - t0;
            shared[1] = pmd_kb(NULL);
            _exit(0);
        }
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            fprintf(stderr, "child failed\n");
            exit(1);
        }
        times[i] = shared[0];
        if (shared[1] < *pmd_min) {
            *pmd_min = shared[1];
        }
    }
    return median(times, n);
}

int
main(int argc, char **argv)
{
    /* fresh: each operation in a new process; pmd: report ShmemPmdMapped */
    static const struct {
        const char *name;
        void (*setup)(void);
        void (*op)(void);
        int fresh, pmd;
    } figures[] = {
        {"attach_first", setup_first, op_attach_first, 0, 0},
        {"attach_again", setup_kept, op_attach_again, 0, 0},
        {"attach_again_read", setup_kept, op_attach_again_read, 0, 0},
        {"receive", setup_kept, op_attach_again_read, 0, 0},
        {"create_delete", setup_none, op_create_delete, 0, 0},
        {"create_fill", setup_none, op_create_fill, 0, 0},
        {"create_fill_advise", setup_none, op_create_fill_advise, 0, 1},
        {"create_fill_advise_reserved", setup_none,
         op_create_fill_advise_reserved, 0, 1},
        {"list", setup_list, op_list, 0, 0},
        {"list_cold", setup_list, op_list, 1, 0},
        {"first_read", setup_big, op_first_read, 1, 1},
    };
    const char *figure;
    uint64_t *times, overhead, med, pmd_min = NO_PMD;
    size_t f;

    if (argc != 8) {
        fprintf(stderr, "usage: %s FIGURE N WARMUP DIR PREFIX SIZE COUNT\n",
                argv[0]);
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
    for (f = 0; f < sizeof(figures) / sizeof(figures[0]); f++) {
        if (strcmp(figure, figures[f].name) == 0) {
            break;
        }
    }
    if (f == sizeof(figures) / sizeof(figures[0])) {
        fprintf(stderr, "unknown figure %s\n", figure);
        return 2;
    }
    /* Room for the calibration's 1000 timings too. */
    times = calloc((size_t)(n < 1000 ? 1000 : n), sizeof(*times));
    if (times == NULL) {
        die("calloc");
    }
    snprintf(path, sizeof(path), "%s/%s-%ld", dir, prefix, (long)getpid());
    owner = getpid();
    atexit(cleanup);
    /* What the timing itself costs: subtracted from in-process figures. */
    overhead = time_ops(op_noop, 1000, 100, times);

    figures[f].setup();
    if (figures[f].fresh) {
        med = time_fresh(figures[f].op, times, &pmd_min);
    }
    else {
        med = time_ops(figures[f].op, n, warmup, times);
        med = med > overhead ? med - overhead : 0;
    }
    if (figures[f].op == op_create_fill_advise ||
        figures[f].op == op_create_fill_advise_reserved) {
        /* untimed, for pmd_kb */
        create_delete(size, 1, 1, figures[f].op != op_create_fill_advise,
                      &pmd_min);
    }
    printf("{\"figure\": \"%s\", \"n\": %ld, \"median_ns\": %llu, "
           "\"overhead_ns\": %llu",
           figure, n, (unsigned long long)med, (unsigned long long)overhead);
    if (figures[f].pmd && pmd_min != NO_PMD) {
        printf(", \"pmd_kb\": %llu", (unsigned long long)pmd_min);
    }
    printf("}\n");
    free(times);
    return 0; /* atexit: cleanup() */
}
