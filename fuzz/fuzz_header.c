/*
 * libFuzzer harness for the code that reads untrusted segments: the .npy
 * header parser, the plain-descr parser, the size arithmetic and the name
 * parser and the SharedArray 3.x trailer parser.  Any input must be rejected cleanly; an accepted header must
 * survive a rebuild-and-reparse round trip.  Build: fuzz/run.sh.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "header.h"
#include "legacy.h"
#include "names.h"

static void
check_roundtrip(const sa_header *h)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    sa_header again;
    const char *why;
    int i;

    if (sa_header_build(h->literal, h->literal_len, h->major == 3,
                        h->fortran_order, h->ndim, h->dims, 4096, &buf,
                        &len) != 0) {
        return; /* refused (e.g. too long): fine, but never a crash */
    }
    if (len % 4096 != 0 ||
        sa_header_parse(buf, len, &again, &why) != SA_HDR_OK ||
        again.data_offset != len || again.ndim != h->ndim ||
        again.fortran_order != h->fortran_order ||
        again.literal_len != h->literal_len ||
        memcmp(again.literal, h->literal, h->literal_len) != 0) {
        abort();
    }
    for (i = 0; i < h->ndim; i++) {
        if (again.dims[i] != h->dims[i]) {
            abort();
        }
    }
    free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sa_header h;
    sa_simple_descr sd;
    sa_name name;
    sa_legacy lg;
    const char *why;
    uint64_t nbytes;

    if (sa_header_parse(data, size, &h, &why) == SA_HDR_OK) {
        if (h.ndim < 0 || h.ndim > SA_MAXDIMS ||
            h.literal < (const char *)data ||
            h.literal + h.literal_len > (const char *)data + size) {
            abort();
        }
        if (h.body != NULL &&
            sa_descr_parse_simple(h.body, h.body_len, &sd) == 0) {
            if (sd.itemsize == 0) {
                abort();
            }
            if (sa_header_nbytes(h.dims, h.ndim, sd.itemsize, INT64_MAX,
                                 &nbytes) == 0 &&
                nbytes > INT64_MAX) {
                abort();
            }
        }
        check_roundtrip(&h);
    }
    if (sa_name_parse((const char *)data, size, &name, &why) == 0) {
        /* A shm name never leaves the shm directory. */
        if (name.backend == SA_BACKEND_SHM &&
            (strchr(name.base, '/') != NULL || strcmp(name.base, "..") == 0 ||
             strncmp(name.path, SA_SHM_DIR "/", sizeof(SA_SHM_DIR)) != 0)) {
            abort();
        }
    }
    /* The input as the tail of a file a little larger than it. */
    if (sa_legacy_parse(data, size, (uint64_t)size + 64, &lg) == 0) {
        if (lg.ndim < 0 || lg.ndim > SA_MAXDIMS || lg.itemsize <= 0 ||
            lg.size > (uint64_t)size + 64) {
            abort();
        }
    }
    return 0;
}
