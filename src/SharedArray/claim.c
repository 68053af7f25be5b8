/*
 * A claim is a listening socket bound to a name in Linux's abstract socket
 * namespace derived from the array's name: bind(2) of a taken address
 * fails, so at most one process holds it, and the kernel lets go of it
 * when the holder exits, even by SIGKILL, so a claim is never stale and
 * nothing is ever left on disk.  A waiter connects to the holder once:
 * the connection tells it the holder's uid (SO_PEERCRED), and it hangs up
 * when the holder closes the socket, which is what the waiter polls for.
 *
 * Elsewhere (no abstract sockets: SA_HAVE_ABSTRACT_SOCKETS from meson)
 * no claim is ever had and creators go on unclaimed: shm_open(O_EXCL)
 * settles races over shm names there, and link(2) those over files.
 */
/* struct ucred, SOCK_CLOEXEC */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "claim.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

#if SA_HAVE_ABSTRACT_SOCKETS

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

/* Creators of different names that hash alike merely take turns. */
static uint64_t
fnv1a(const char *s)
{
    uint64_t h = 14695981039346656037ull;

    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

/* The socket address of name's claim; 0, or an errno (directory gone). */
static int
claim_address(const sa_name *name, struct sockaddr_un *addr,
              socklen_t *addrlen)
{
    struct stat dir;
    int n;

    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    /* sun_path[0] == '\0': the abstract namespace, no file anywhere. */
    if (name->backend == SA_BACKEND_SHM) {
        n = snprintf(addr->sun_path + 1, sizeof(addr->sun_path) - 1,
                     "SharedArray.create/shm/%016llx",
                     (unsigned long long)fnv1a(name->base));
    }
    else {
        /* The directory by identity: relative and absolute paths, or two
         * processes in different directories, must meet on one claim. */
        if (stat(name->dir, &dir) < 0) {
            return errno;
        }
        n = snprintf(addr->sun_path + 1, sizeof(addr->sun_path) - 1,
                     "SharedArray.create/%llx/%llx/%016llx",
                     (unsigned long long)dir.st_dev,
                     (unsigned long long)dir.st_ino,
                     (unsigned long long)fnv1a(name->base));
    }
    *addrlen =
        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    return 0;
}

/* Connects to the holder; EBUSY to wait for it, 0 to go on unclaimed,
 * EAGAIN when it let go meanwhile (try to claim again). */
static int
watch_holder(sa_claim *c, const struct sockaddr_un *addr, socklen_t addrlen)
{
    struct ucred peer;
    socklen_t len = sizeof(peer);
    int s;

    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0) {
        c->tried = 1;
        return 0;
    }
    if (connect(s, (const struct sockaddr *)addr, addrlen) < 0) {
        int err = errno;
        close(s);
        if (err == ECONNREFUSED) {
            return EAGAIN;
        }
        /* Backlog full (EAGAIN) or anything else: we cannot tell who
         * holds it, so we do not wait on it. */
        c->tried = 1;
        return 0;
    }
    if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0 ||
        peer.uid != geteuid()) {
        /* Another user's claim could be held only to stall us. */
        close(s);
        c->tried = 1;
        return 0;
    }
    c->wait_fd = s;
    return EBUSY;
}

int
sa_claim_try(sa_claim *c, const sa_name *name)
{
    struct sockaddr_un addr;
    socklen_t addrlen = 0;
    int err, attempts;

    if (c->fd >= 0 || c->tried) {
        return 0;
    }
    err = claim_address(name, &addr, &addrlen);
    if (err != 0) {
        return err;
    }
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->tried = 1;
        return 0;
    }
    /* A holder that lets go between our bind and our connect is met by
     * binding again; one caught between its bind and its listen refuses
     * connections for a moment (longer if the scheduler took its CPU), so
     * we pause and look again.  A socket bound and never listened on (by
     * someone else) makes us give up after about 200 ms. */
    for (attempts = 0; attempts < 200; attempts++) {
        if (bind(c->fd, (const struct sockaddr *)&addr, addrlen) == 0) {
            if (listen(c->fd, 128) == 0) {
                return 0;
            }
            break;
        }
        if (errno != EADDRINUSE) {
            break;
        }
        err = watch_holder(c, &addr, addrlen);
        if (err == EAGAIN) {
            struct timespec pause = {.tv_sec = 0, .tv_nsec = 1000000};
            nanosleep(&pause, NULL);
            continue;
        }
        /* Waiting (EBUSY), or going on unclaimed (0). */
        close(c->fd);
        c->fd = -1;
        return err;
    }
    close(c->fd);
    c->fd = -1;
    c->tried = 1;
    return 0;
}

#else /* !SA_HAVE_ABSTRACT_SOCKETS */

int
sa_claim_try(sa_claim *c, const sa_name *name)
{
    (void)name;
    c->tried = 1;
    return 0;
}

#endif

int
sa_claim_wait(sa_claim *c, int timeout_ms)
{
    struct pollfd pfd = {.fd = c->wait_fd, .events = POLLIN};
    int r;

    if (c->wait_fd < 0) {
        return 1;
    }
    r = poll(&pfd, 1, timeout_ms);
    if (r == 0 || (r < 0 && errno == EINTR)) {
        return 0;
    }
    /* Hung up (the holder closed its claim), or poll failed: look again. */
    close(c->wait_fd);
    c->wait_fd = -1;
    return 1;
}

void
sa_claim_release(sa_claim *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->wait_fd >= 0) {
        close(c->wait_fd);
        c->wait_fd = -1;
    }
}
