/*
 * .npy header codec.  The grammar accepted is the subset of Python literals
 * that numpy.lib.format writes: a dict with exactly the keys 'descr',
 * 'fortran_order' and 'shape'.  A descr that is more than a plain string is
 * returned as a span for the caller's Python fallback (ast.literal_eval);
 * nothing here evaluates anything.
 */
#include "header.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

static const sa_npy_version npy_versions[] = {
    {.major = 1,
     .prefix = 10,
     .len_bytes = 2,
     .max_len = 0xFFFF,
     .encoding = "latin1"},
    {.major = 2,
     .prefix = 12,
     .len_bytes = 4,
     .max_len = 0xFFFFFFFF,
     .encoding = "latin1"},
    {.major = 3,
     .prefix = 12,
     .len_bytes = 4,
     .max_len = 0xFFFFFFFF,
     .encoding = "utf-8"},
};

const sa_npy_version *
sa_npy_version_of(int major)
{
    size_t i;

    for (i = 0; i < sizeof(npy_versions) / sizeof(npy_versions[0]); i++) {
        if (npy_versions[i].major == major) {
            return &npy_versions[i];
        }
    }
    return NULL;
}

/* The little-endian length field of version v at p. */
static uint64_t
get_len(const sa_npy_version *v, const unsigned char *p)
{
    uint64_t n = 0;
    size_t i;

    for (i = v->len_bytes; i-- > 0;) {
        n = n << 8 | p[i];
    }
    return n;
}

/* Header size (prefix, text, newline) padded to a multiple of align. */
static size_t
padded_size(const sa_npy_version *v, size_t text_len, size_t align)
{
    return (v->prefix + text_len + 1 + align - 1) & ~(align - 1);
}

typedef struct {
    const char *p;
    const char *end;
    const char *why;
} cursor;

static void
skip_ws(cursor *c)
{
    while (c->p < c->end &&
           (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/*
 * The padding after the dict runs to the page boundary (about 4 KB of
 * spaces): compare it in blocks, not a byte at a time; attach reads it on
 * every call.
 */
static void
skip_padding(cursor *c)
{
    static const char spaces[] = "                                "
                                 "                                ";

    const size_t n = sizeof(spaces) - 1; /* 64, without the NUL */

    while ((size_t)(c->end - c->p) >= n && memcmp(c->p, spaces, n) == 0) {
        c->p += n;
    }
    skip_ws(c);
}

static int
expect(cursor *c, char ch, const char *why)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p != ch) {
        c->why = why;
        return -1;
    }
    c->p++;
    return 0;
}

/*
 * A quoted string literal.  Sets [body, body+len) to the text between the
 * quotes; *plain is 0 if it holds a backslash (escapes are left to Python).
 */
static int
parse_string(cursor *c, const char **body, size_t *len, int *plain)
{
    char quote;

    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) {
        c->why = "expected a string";
        return -1;
    }
    quote = *c->p++;
    *body = c->p;
    *plain = 1;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\n') {
            break;
        }
        if (*c->p == '\\') {
            *plain = 0;
            c->p++;
            if (c->p >= c->end) {
                break;
            }
        }
        c->p++;
    }
    if (c->p >= c->end || *c->p != quote) {
        c->why = "unterminated string";
        return -1;
    }
    *len = (size_t)(c->p - *body);
    c->p++;
    return 0;
}

/* Skips a bracketed literal ([...] with nested brackets and strings). */
static int
skip_bracketed(cursor *c)
{
    int depth = 0;

    do {
        if (c->p >= c->end) {
            c->why = "unterminated descr list";
            return -1;
        }
        if (*c->p == '\'' || *c->p == '"') {
            const char *body;
            size_t len;
            int plain;
            if (parse_string(c, &body, &len, &plain) < 0) {
                return -1;
            }
            continue;
        }
        if (*c->p == '[' || *c->p == '(') {
            if (++depth > 64) {
                c->why = "descr nested too deeply";
                return -1;
            }
        }
        else if (*c->p == ']' || *c->p == ')') {
            depth--;
        }
        c->p++;
    } while (depth > 0);
    return 0;
}

static int
is_ident_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '_';
}

static int
parse_bool(cursor *c, int *value)
{
    skip_ws(c);
    if ((size_t)(c->end - c->p) >= 4 && memcmp(c->p, "True", 4) == 0 &&
        (c->end - c->p == 4 || !is_ident_char(c->p[4]))) {
        c->p += 4;
        *value = 1;
        return 0;
    }
    if ((size_t)(c->end - c->p) >= 5 && memcmp(c->p, "False", 5) == 0 &&
        (c->end - c->p == 5 || !is_ident_char(c->p[5]))) {
        c->p += 5;
        *value = 0;
        return 0;
    }
    c->why = "fortran_order is not True or False";
    return -1;
}

/* A non-negative decimal integer; a trailing L (Python 2 files) is allowed. */
static int
parse_dim(cursor *c, int64_t *value)
{
    uint64_t v = 0;
    const char *start;

    skip_ws(c);
    start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        uint64_t digit = (uint64_t)(*c->p - '0');
        /* Checked before multiplying: v * 10 could wrap around. */
        if (v > ((uint64_t)INT64_MAX - digit) / 10) {
            c->why = "a dimension is too large";
            return -1;
        }
        v = v * 10 + digit;
        c->p++;
    }
    if (c->p == start) {
        c->why = "shape holds something other than non-negative integers";
        return -1;
    }
    if (c->p < c->end && *c->p == 'L') {
        c->p++;
    }
    *value = (int64_t)v;
    return 0;
}

/* A tuple of integers; one element needs its trailing comma, as in Python. */
static int
parse_shape(cursor *c, sa_header *h)
{
    int comma = 0;

    if (expect(c, '(', "shape is not a tuple") < 0) {
        return -1;
    }
    h->ndim = 0;
    skip_ws(c);
    while (c->p < c->end && *c->p != ')') {
        if (h->ndim >= SA_MAXDIMS) {
            c->why = "shape has too many dimensions";
            return -1;
        }
        if (parse_dim(c, &h->dims[h->ndim]) < 0) {
            return -1;
        }
        h->ndim++;
        skip_ws(c);
        comma = 0;
        if (c->p < c->end && *c->p == ',') {
            comma = 1;
            c->p++;
            skip_ws(c);
        }
        else {
            break;
        }
    }
    if (h->ndim == 1 && !comma) {
        c->why = "shape is not a tuple";
        return -1;
    }
    return expect(c, ')', "shape is not a tuple");
}

static int
parse_descr(cursor *c, sa_header *h)
{
    skip_ws(c);
    h->literal = c->p;
    h->body = NULL;
    if (c->p < c->end && *c->p == '[') {
        if (skip_bracketed(c) < 0) {
            return -1;
        }
    }
    else {
        const char *body;
        size_t len;
        int plain;
        if (parse_string(c, &body, &len, &plain) < 0) {
            c->why = "descr is neither a string nor a list";
            return -1;
        }
        if (plain) {
            h->body = body;
            h->body_len = len;
        }
    }
    h->literal_len = (size_t)(c->p - h->literal);
    return 0;
}

static int
parse_dict(cursor *c, sa_header *h)
{
    int seen_descr = 0, seen_order = 0, seen_shape = 0;

    if (expect(c, '{', "header is not a dict") < 0) {
        return -1;
    }
    for (;;) {
        const char *key;
        size_t klen;
        int plain;

        skip_ws(c);
        if (c->p < c->end && *c->p == '}') {
            c->p++;
            break;
        }
        if (parse_string(c, &key, &klen, &plain) < 0) {
            c->why = "header dict has a key that is not a string";
            return -1;
        }
        if (expect(c, ':', "header dict is malformed") < 0) {
            return -1;
        }
        if (plain && klen == 5 && memcmp(key, "descr", 5) == 0 &&
            !seen_descr) {
            seen_descr = 1;
            if (parse_descr(c, h) < 0) {
                return -1;
            }
        }
        else if (plain && klen == 13 &&
                 memcmp(key, "fortran_order", 13) == 0 && !seen_order) {
            seen_order = 1;
            if (parse_bool(c, &h->fortran_order) < 0) {
                return -1;
            }
        }
        else if (plain && klen == 5 && memcmp(key, "shape", 5) == 0 &&
                 !seen_shape) {
            seen_shape = 1;
            if (parse_shape(c, h) < 0) {
                return -1;
            }
        }
        else {
            c->why = "header dict has an unexpected or repeated key";
            return -1;
        }
        skip_ws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
        }
        else if (expect(c, '}', "header dict is malformed") < 0) {
            return -1;
        }
        else {
            break;
        }
    }
    if (!(seen_descr && seen_order && seen_shape)) {
        c->why = "header lacks one of 'descr', 'fortran_order', 'shape'";
        return -1;
    }
    skip_padding(c);
    if (c->p != c->end) {
        c->why = "header has trailing bytes after the dict";
        return -1;
    }
    return 0;
}

sa_hdr_status
sa_header_parse(const unsigned char *buf, size_t len, sa_header *h,
                const char **why)
{
    const sa_npy_version *v;
    size_t hlen;
    cursor c;

    memset(h, 0, sizeof(*h));
    *why = NULL;
    if (len < sizeof(npy_magic) ||
        memcmp(buf, npy_magic, sizeof(npy_magic)) != 0) {
        return SA_HDR_NOT_NPY;
    }
    if (len < 8) {
        *why = "file ends inside the .npy header";
        return SA_HDR_CORRUPT;
    }
    h->major = buf[6];
    v = sa_npy_version_of(h->major);
    if (buf[7] != 0 || v == NULL) {
        *why = "unsupported .npy format version";
        return SA_HDR_CORRUPT;
    }
    if (len < v->prefix) {
        *why = "file ends inside the .npy header";
        return SA_HDR_CORRUPT;
    }
    if (get_len(v, buf + 8) > SA_HEADER_MAX) {
        *why = "header is longer than 1 MiB";
        return SA_HDR_CORRUPT;
    }
    hlen = (size_t)get_len(v, buf + 8);
    h->data_offset = v->prefix + hlen;
    c.p = (const char *)buf + v->prefix;
    c.end = len < h->data_offset ? (const char *)buf + len : c.p + hlen;
    c.why = NULL;
    if (parse_dict(&c, h) < 0) {
        if (len < h->data_offset) {
            /* Perhaps only cut short: judge it on the whole header. */
            return SA_HDR_NEED_MORE;
        }
        *why = c.why ? c.why : "header does not parse";
        return SA_HDR_CORRUPT;
    }
    return SA_HDR_OK;
}

int
sa_descr_parse_simple(const char *s, size_t n, sa_simple_descr *out)
{
    size_t i = 0;
    uint64_t count = 0;
    size_t digits = 0;

    if (n == 0) {
        return EINVAL;
    }
    out->byteorder = '=';
    if (s[0] == '<' || s[0] == '>' || s[0] == '|' || s[0] == '=') {
        out->byteorder = s[i++];
    }
    if (i >= n || strchr("biufcSUVMm", s[i]) == NULL || s[i] == '\0') {
        return EINVAL;
    }
    out->kind = s[i++];
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        count = count * 10 + (uint64_t)(s[i++] - '0');
        if (++digits > 12) {
            return EINVAL;
        }
    }
    if (digits == 0 || count == 0) {
        return EINVAL;
    }
    if ((out->kind == 'M' || out->kind == 'm') && i < n && s[i] == '[') {
        i++;
        while (i < n && s[i] != ']') {
            if (!is_ident_char(s[i])) {
                return EINVAL;
            }
            i++;
        }
        if (i >= n) {
            return EINVAL;
        }
        i++;
    }
    if (i != n) {
        return EINVAL;
    }
    out->itemsize = out->kind == 'U' ? count * 4 : count;
    return 0;
}

int
sa_header_nbytes(const int64_t *dims, int ndim, uint64_t itemsize,
                 uint64_t max, uint64_t *nbytes)
{
    uint64_t total = itemsize;
    int i, empty = 0;

    /* As NumPy does: a zero-length side makes the array empty, but the
     * other sides must still multiply out within max. */
    for (i = 0; i < ndim; i++) {
        if (dims[i] < 0) {
            return EOVERFLOW;
        }
        if (dims[i] == 0) {
            empty = 1;
            continue;
        }
        if (__builtin_mul_overflow(total, (uint64_t)dims[i], &total)) {
            return EOVERFLOW;
        }
    }
    if (total > max) {
        return EOVERFLOW;
    }
    *nbytes = empty ? 0 : total;
    return 0;
}

static size_t
put_u64(char *p, uint64_t v)
{
    char tmp[24];
    size_t n = 0, i;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++) {
        p[i] = tmp[n - 1 - i];
    }
    return n;
}

int
sa_header_build(const char *descr_literal, size_t descr_len, int utf8,
                int fortran_order, int ndim, const int64_t *dims, size_t align,
                unsigned char **out, size_t *out_len)
{
    static const char k_descr[] = "{'descr': ";
    static const char k_order[] = ", 'fortran_order': ";
    static const char k_shape[] = ", 'shape': (";
    static const char k_end[] = "), }";
    const sa_npy_version *v;
    char *text = NULL;
    unsigned char *buf = NULL;
    size_t cap, n = 0, total, hlen, i;
    int d, err = EINVAL;

    *out = NULL;
    *out_len = 0;
    if (ndim < 0 || ndim > SA_MAXDIMS || align < 16 ||
        (align & (align - 1)) != 0) {
        goto done;
    }
    if (descr_len > SA_HEADER_MAX) {
        err = E2BIG;
        goto done;
    }
    cap = descr_len + sizeof(k_descr) + sizeof(k_order) + sizeof(k_shape) +
          sizeof(k_end) + 8 + (size_t)ndim * 24;
    text = malloc(cap);
    if (text == NULL) {
        err = ENOMEM;
        goto done;
    }
    memcpy(text + n, k_descr, sizeof(k_descr) - 1);
    n += sizeof(k_descr) - 1;
    memcpy(text + n, descr_literal, descr_len);
    n += descr_len;
    memcpy(text + n, k_order, sizeof(k_order) - 1);
    n += sizeof(k_order) - 1;
    memcpy(text + n, fortran_order ? "True" : "False", fortran_order ? 4 : 5);
    n += fortran_order ? 4 : 5;
    memcpy(text + n, k_shape, sizeof(k_shape) - 1);
    n += sizeof(k_shape) - 1;
    for (d = 0; d < ndim; d++) {
        if (dims[d] < 0) {
            goto done;
        }
        if (d > 0) {
            text[n++] = ',';
            text[n++] = ' ';
        }
        n += put_u64(text + n, (uint64_t)dims[d]);
    }
    if (ndim == 1) {
        text[n++] = ',';
    }
    memcpy(text + n, k_end, sizeof(k_end) - 1);
    n += sizeof(k_end) - 1;

    /* Version 1.0 while the length fits its field and the text is ASCII,
     * as NumPy chooses. */
    v = sa_npy_version_of(utf8 ? 3 : 1);
    total = padded_size(v, n, align);
    if (total - v->prefix > v->max_len) {
        v = sa_npy_version_of(2);
        total = padded_size(v, n, align);
    }
    hlen = total - v->prefix;
    if (hlen > SA_HEADER_MAX) {
        err = E2BIG;
        goto done;
    }
    buf = malloc(total);
    if (buf == NULL) {
        err = ENOMEM;
        goto done;
    }
    memcpy(buf, npy_magic, sizeof(npy_magic));
    buf[6] = (unsigned char)v->major;
    buf[7] = 0;
    for (i = 0; i < v->len_bytes; i++) {
        buf[8 + i] = (unsigned char)((hlen >> (8 * i)) & 0xFF);
    }
    memcpy(buf + v->prefix, text, n);
    memset(buf + v->prefix + n, ' ', total - v->prefix - n - 1);
    buf[total - 1] = '\n';
    *out = buf;
    *out_len = total;
    buf = NULL;
    err = 0;
done:
    free(text);
    free(buf);
    return err;
}
