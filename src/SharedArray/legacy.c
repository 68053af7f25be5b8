/*
 * The SharedArray 3.x trailer parser (layout in legacy.h).  Pure C over a
 * byte buffer, fuzzed with the header codec.
 */
#include "legacy.h"

#include <errno.h>
#include <string.h>

static const char legacy_magic[16] = "[SharedArray]";

static int
parse_at(const unsigned char *t, size_t len, int maxdims, uint64_t file_size,
         sa_legacy *out)
{
    uint64_t size, nbytes;
    int32_t typenum, itemsize, ndims;
    int i;

    if (memcmp(t, legacy_magic, sizeof(legacy_magic)) != 0) {
        return EINVAL;
    }
    /* Written by the same machine: native byte order, packed. */
    memcpy(&size, t + 16, 8);
    memcpy(&typenum, t + 24, 4);
    memcpy(&itemsize, t + 28, 4);
    memcpy(&ndims, t + 32, 4);
    if (ndims < 0 || ndims > maxdims || itemsize <= 0 || typenum < 0) {
        return EINVAL;
    }
    for (i = 0; i < ndims; i++) {
        memcpy(&out->dims[i], t + 36 + 8 * (size_t)i, 8);
    }
    if (sa_header_nbytes(out->dims, ndims, (uint64_t)itemsize, INT64_MAX,
                         &nbytes) != 0 ||
        nbytes != size || size > file_size || file_size - size < len) {
        return EINVAL;
    }
    out->size = size;
    out->typenum = typenum;
    out->itemsize = itemsize;
    out->ndim = ndims;
    out->trailer_len = len;
    return 0;
}

int
sa_legacy_parse(const unsigned char *tail, size_t n, uint64_t file_size,
                sa_legacy *out)
{
    if (n > file_size) {
        return EINVAL;
    }
    if (n >= SA_LEGACY_TRAILER_64 &&
        parse_at(tail + n - SA_LEGACY_TRAILER_64, SA_LEGACY_TRAILER_64, 64,
                 file_size, out) == 0) {
        return 0;
    }
    if (n >= SA_LEGACY_TRAILER_32 &&
        parse_at(tail + n - SA_LEGACY_TRAILER_32, SA_LEGACY_TRAILER_32, 32,
                 file_size, out) == 0) {
        return 0;
    }
    return EINVAL;
}
