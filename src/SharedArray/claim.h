/*
 * Claims on names being created, so that of several processes creating the
 * same name at once exactly one reserves space and the others wait and
 * then get EEXIST.  Without this, racing creators each reserve the full
 * size out of sight before linking, and on a filesystem that has room for
 * one of them both fail with ENOSPC.  Pure C, no Python objects.
 */
#ifndef SHAREDARRAY_CLAIM_H
#define SHAREDARRAY_CLAIM_H

#include "names.h"

typedef struct {
    int fd;      /* the claim, held while >= 0 */
    int wait_fd; /* a connection to another creator's claim, >= 0 while
                    * we wait for it to finish */
    int tried;   /* a claim was not to be had (see sa_claim_try) */
} sa_claim;

/*
 * Tries to claim name.  Returns 0 with c->fd held; 0 with c->fd == -1 and
 * c->tried set when no claim can be had (no abstract sockets, or the name
 * is held by another user, who could otherwise stall us forever): the
 * caller goes on unclaimed, as if claims did not exist; EBUSY with
 * c->wait_fd set when a process of this user holds it.
 */
int sa_claim_try(sa_claim *c, const sa_name *name);

/*
 * Waits up to timeout_ms for the holder waited on to let go.  Returns 1
 * when it has (wait_fd is then closed: try again), 0 on timeout.
 */
int sa_claim_wait(sa_claim *c, int timeout_ms);

/* Lets go of the claim and of any wait; idempotent. */
void sa_claim_release(sa_claim *c);

#endif
