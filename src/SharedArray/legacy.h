/*
 * Segments written by SharedArray 3.x: raw data at offset 0 and a packed
 * trailer at the end of the file:
 *   char magic[16] = "[SharedArray]" (NUL padded); size_t size;
 *   int typenum; int itemsize; int ndims; npy_intp dims[NPY_MAXDIMS]
 * NPY_MAXDIMS was 32 under NumPy 1.x and 64 under 2.x, so the trailer is
 * 292 or 548 bytes; both are tried.  Pure C over a byte buffer.
 */
#ifndef SHAREDARRAY_LEGACY_H
#define SHAREDARRAY_LEGACY_H

#include <stddef.h>
#include <stdint.h>

#include "header.h"

#define SA_LEGACY_TRAILER_32 292
#define SA_LEGACY_TRAILER_64 548
#define SA_LEGACY_TAIL_MAX SA_LEGACY_TRAILER_64

typedef struct {
    uint64_t size; /* data bytes, checked against dims * itemsize */
    int typenum;   /* NumPy type number of the writer */
    int itemsize;
    int ndim;
    int64_t dims[SA_MAXDIMS];
    size_t trailer_len; /* SA_LEGACY_TRAILER_32 or _64 */
} sa_legacy;

/*
 * tail holds the last n bytes of a file of file_size bytes.  Returns 0 if
 * they end with a consistent 3.x trailer whose data fits in the file, else
 * EINVAL.
 */
int sa_legacy_parse(const unsigned char *tail, size_t n, uint64_t file_size,
                    sa_legacy *out);

#endif
