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

/*
 * What each .npy version means, as NumPy's numpy.lib.format keeps it in one
 * table: the bytes before the header text (magic, version, a little-endian
 * length of len_bytes), the longest length that field holds, and the text's
 * encoding ("latin1" or "utf-8", as Python names them).
 */
typedef struct {
    int major;
    size_t prefix;
    size_t len_bytes;
    uint64_t max_len;
    const char *encoding;
} sa_npy_version;

/* The entry for major, or NULL for a version we do not know. */
const sa_npy_version *sa_npy_version_of(int major);

typedef enum {
    SA_HDR_OK = 0,
    SA_HDR_NOT_NPY,   /* no .npy magic: some other file */
    SA_HDR_NEED_MORE, /* valid so far; header is data_offset bytes long */
    SA_HDR_CORRUPT,   /* has the magic but does not parse; see why */
} sa_hdr_status;

typedef struct {
    int major;          /* 1, 2 or 3 (3: header text is UTF-8) */
    size_t data_offset; /* prefix + header length: where data starts */
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
    char byteorder;    /* '<', '>', '|' or '=' */
    char kind;         /* one of "biufcSUVMm" */
    uint64_t itemsize; /* bytes per element */
} sa_simple_descr;

/*
 * Returns 0 if [s, s+n) is a plain descr of a kind that holds no pointers,
 * EINVAL otherwise (object dtypes, unknown kinds, anything odd: the caller
 * then lets NumPy judge it).
 */
int sa_descr_parse_simple(const char *s, size_t n, sa_simple_descr *out);

/*
 * Renders a complete header: descr_literal is the Python literal of the
 * descr (with its quotes or brackets), utf8 says it holds non-ASCII bytes.
 * The data offset is rounded up to a multiple of align (a power of two).
 * On success returns 0 and a malloc'd buffer of *out_len bytes (== the data
 * offset) that the caller frees; else an errno value: E2BIG when the header
 * would be longer than SA_HEADER_MAX, EINVAL for an invalid argument,
 * ENOMEM.
 */
int sa_header_build(const char *descr_literal, size_t descr_len, int utf8,
                    int fortran_order, int ndim, const int64_t *dims,
                    size_t align, unsigned char **out, size_t *out_len);

/*
 * nbytes = itemsize * prod(dims); returns 0, or EOVERFLOW if itemsize times
 * the product of the non-zero dims exceeds max (NumPy refuses such shapes
 * even when a zero makes the array empty) or a dim is negative.
 */
int sa_header_nbytes(const int64_t *dims, int ndim, uint64_t itemsize,
                     uint64_t max, uint64_t *nbytes);

#endif
