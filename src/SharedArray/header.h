/*
 * The .npy header codec: pure C over byte buffers, no Python objects, so a
 * fuzzer can drive it directly.  See docs/FORMAT.md for the layout.
 */
#ifndef SHAREDARRAY_HEADER_H
#define SHAREDARRAY_HEADER_H

#include <stddef.h>
#include <stdint.h>

/* Enough for NumPy 2 (64); the runtime NumPy limit is checked by callers. */
#define SA_MAXDIMS 64
/* A header longer than this is refused: no sane dtype needs more. */
#define SA_HEADER_MAX (1u << 20)
/* Bytes before the header text: magic(6) + version(2) + length(2 or 4). */
#define SA_PREFIX_V1 10
#define SA_PREFIX_V2 12

typedef enum {
    SA_HDR_OK = 0,
    SA_HDR_NOT_NPY,     /* no .npy magic: some other file */
    SA_HDR_NEED_MORE,   /* valid so far; header is data_offset bytes long */
    SA_HDR_CORRUPT,     /* has the magic but does not parse; see why */
    SA_HDR_LEGACY,      /* no .npy magic, but a SharedArray 3.x trailer
                         * (set by sa_probe_open, never by the parser) */
} sa_hdr_status;

typedef struct {
    int major;                /* 1, 2 or 3 (3: header text is UTF-8) */
    size_t data_offset;       /* prefix + header length: where data starts */
    /*
     * The descr as it stands in the header: literal is the whole Python
     * literal ('<f8' with its quotes, or a list) for the Python fallback;
     * body is the text between the quotes when it is a plain string without
     * escapes, else NULL.  Both point into the buffer given to the parser.
     */
    const char *literal;
    size_t literal_len;
    const char *body;
    size_t body_len;
    int fortran_order;
    int ndim;
    int64_t dims[SA_MAXDIMS];
} sa_header;

/*
 * Parses the first len bytes of a file.  A complete dict followed by blanks
 * is enough: the rest of the padding up to data_offset (most of a page) need
 * not be read, as nothing in it is ever interpreted; the caller checks that
 * the file is data_offset bytes long at least.  Returns SA_HDR_NEED_MORE
 * (with h->data_offset set) when the dict runs past len; the caller reads
 * data_offset bytes and calls again.  On SA_HDR_CORRUPT, *why names the
 * defect.  Never reads outside [buf, buf+len).
 */
sa_hdr_status sa_header_parse(const unsigned char *buf, size_t len,
                              sa_header *h, const char **why);

/* A plain descr string like "<f8", "|S10", "<M8[ns]", split into parts. */
typedef struct {
    char byteorder;       /* '<', '>', '|' or '=' */
    char kind;            /* one of "biufcSUVMm" */
    uint64_t itemsize;    /* bytes per element */
} sa_simple_descr;

/*
 * Returns 0 if [s, s+n) is a plain descr of a kind that holds no pointers,
 * -1 otherwise (object dtypes, unknown kinds, anything odd: the caller then
 * lets NumPy judge it).
 */
int sa_descr_parse_simple(const char *s, size_t n, sa_simple_descr *out);

/*
 * Renders a complete header: descr_literal is the Python literal of the
 * descr (with its quotes or brackets), utf8 says it holds non-ASCII bytes.
 * The data offset is rounded up to a multiple of align (a power of two).
 * On success returns 0 and a malloc'd buffer of *out_len bytes (== the data
 * offset) that the caller frees; returns -1 when the header would be too
 * long or an argument is invalid, -2 when out of memory.
 */
int sa_header_build(const char *descr_literal, size_t descr_len, int utf8,
                    int fortran_order, int ndim, const int64_t *dims,
                    size_t align, unsigned char **out, size_t *out_len);

/*
 * nbytes = itemsize * prod(dims); returns -1 if itemsize times the product
 * of the non-zero dims exceeds max (NumPy refuses such shapes even when a
 * zero makes the array empty).
 */
int sa_header_nbytes(const int64_t *dims, int ndim, uint64_t itemsize,
                     uint64_t max, uint64_t *nbytes);

#endif
