/* NumPy .npy files: the magic "\x93NUMPY", a version (1.0, 2.0 or 3.0), the header's
 * length (2 bytes little-endian in 1.0, 4 in 2.0 and 3.0), then a Python dict literal
 * such as {'descr': '<f4', 'fortran_order': False, 'shape': (60000, 784), } padded with
 * spaces and a newline, then the elements in C order. The header is parsed by a small
 * reader for exactly those three keys and their values; the declared data size is
 * checked (for overflow, then against the file's length from fstat) before the output
 * is allocated, and the elements are then read in chunks and converted: floats to
 * float32 (float64 values must fit), integers to int32 labels (each range-checked).
 * Saving writes format 1.0 ('<f4' or '<i4') through rt_write_atomic, with the header
 * padded so the data starts at a multiple of 64 bytes, as NumPy does. The data is
 * little-endian, the runtime's host order. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "descent/runtime.h"
#include "mem.h"

#define HEADER_MAX (1 << 20) /* NumPy itself refuses headers over 10000 bytes */
#define CHUNK 65536          /* a multiple of every element size */
#define MAXDIMS (RT_MAXRANK + 1)

#define MAGIC "\x93NUMPY" /* 6 bytes */

/* The element types the loader converts: data from floats, labels from integers. */
static const struct {
	const char *code;
	size_t size;
	int is_float, is_signed;
	const char *cname;
} kinds[] = {
    {"f4", 4, 1, 1, "float32"}, {"f8", 8, 1, 1, "float64"}, {"i1", 1, 0, 1, "int8"},
    {"i2", 2, 0, 1, "int16"},   {"i4", 4, 0, 1, "int32"},   {"i8", 8, 0, 1, "int64"},
    {"u1", 1, 0, 0, "uint8"},   {"u2", 2, 0, 0, "uint16"},  {"u4", 4, 0, 0, "uint32"},
    {"u8", 8, 0, 0, "uint64"},
};
#define NKINDS (int)(sizeof kinds / sizeof kinds[0])
#define SUPPORTED                                                                        \
	"data: '<f4', '<f8'; labels: '<i4', '<i8', '|u1', '|i1', '<i2', '<u2', '<u4', "  \
	"'<u8'"

/* ---- the header: a Python dict literal ---- */

typedef struct Header {
	char descr[32];
	int fortran; /* -1 until seen */
	int rank;    /* -1 until seen */
	int64_t shape[MAXDIMS];
} Header;

typedef struct Py {
	const char *s;
	size_t n, p;
	const char *path;
	char *err;
	size_t errlen;
} Py;

static int peek(const Py *y) { return y->p < y->n ? (unsigned char)y->s[y->p] : -1; }

static void skip_ws(Py *y)
{
	int c;
	while ((c = peek(y)) == ' ' || c == '\t' || c == '\n' || c == '\r')
		y->p++;
}

static int bad_header(const Py *y, const char *what)
{
	int c = peek(y);
	char f[64];
	if (c < 0)
		snprintf(f, sizeof f, "the end of the header");
	else if (c >= 0x20 && c < 0x7f)
		snprintf(f, sizeof f, "'%c' at byte %zu of the header", c, y->p);
	else
		snprintf(f, sizeof f, "byte 0x%02x at byte %zu of the header",
		         (unsigned)c, y->p);
	return rt_fail(y->err, y->errlen, y->path, "bad .npy header: %s, found %s", what,
	               f);
}

static int expect(Py *y, char c, const char *what)
{
	skip_ws(y);
	if (peek(y) != c)
		return bad_header(y, what);
	y->p++;
	return 0;
}

/* A string in single or double quotes, without escapes, into out[cap]. */
static int py_string(Py *y, char *out, size_t cap)
{
	skip_ws(y);
	int q = peek(y);
	if (q != '\'' && q != '"')
		return bad_header(y, "expected a quoted string");
	size_t start = ++y->p, len;
	while (peek(y) >= 0 && peek(y) != q && peek(y) != '\\')
		y->p++;
	if (peek(y) != q)
		return bad_header(y, "expected the end of a string");
	len = y->p++ - start;
	if (len >= cap)
		return rt_fail(y->err, y->errlen, y->path,
		               "bad .npy header: string at byte %zu is too long", start);
	memcpy(out, y->s + start, len);
	out[len] = 0;
	return 0;
}

/* (d0, d1, ...) with an optional trailing comma; Python 2 wrote 3L for 3. */
static int py_shape(Py *y, Header *h)
{
	if (expect(y, '(', "expected '(' to open the shape"))
		return -1;
	h->rank = 0;
	for (;;) {
		skip_ws(y);
		if (peek(y) == ')') {
			y->p++;
			return 0;
		}
		if (h->rank == MAXDIMS)
			return rt_fail(
			    y->err, y->errlen, y->path,
			    "shape has more than %d dimensions (the examples and at "
			    "most %d per example)",
			    MAXDIMS, RT_MAXRANK);
		int c = peek(y);
		if (c < '0' || c > '9')
			return bad_header(y,
			                  "expected a non-negative integer in the shape");
		int64_t v = 0;
		while ((c = peek(y)) >= '0' && c <= '9') {
			if (v > (INT64_MAX - (c - '0')) / 10)
				return rt_fail(
				    y->err, y->errlen, y->path,
				    "bad .npy header: dimension %d of the shape is "
				    "too large",
				    h->rank + 1);
			v = v * 10 + (c - '0');
			y->p++;
		}
		if (peek(y) == 'L')
			y->p++;
		h->shape[h->rank++] = v;
		skip_ws(y);
		if (peek(y) == ',')
			y->p++;
		else if (peek(y) != ')')
			return bad_header(y, "expected ',' or ')' in the shape");
	}
}

static int py_bool(Py *y, int *v)
{
	skip_ws(y);
	const char *s = y->s + y->p;
	size_t left = y->n - y->p;
	if (left >= 4 && !memcmp(s, "True", 4))
		*v = 1, y->p += 4;
	else if (left >= 5 && !memcmp(s, "False", 5))
		*v = 0, y->p += 5;
	else
		return bad_header(y, "expected True or False for fortran_order");
	return 0;
}

static int parse_header(Py *y, Header *h)
{
	h->descr[0] = 0;
	h->fortran = h->rank = -1;
	if (expect(y, '{', "expected '{'"))
		return -1;
	for (;;) {
		skip_ws(y);
		if (peek(y) == '}')
			break;
		char key[32];
		size_t at = y->p;
		if (py_string(y, key, sizeof key) ||
		    expect(y, ':', "expected ':' after a key"))
			return -1;
		int dup;
		if (!strcmp(key, "descr")) {
			dup = h->descr[0] != 0;
			skip_ws(y);
			if (peek(y) == '[')
				return rt_fail(
				    y->err, y->errlen, y->path,
				    "structured arrays (a list as descr) are not "
				    "supported");
			if (!dup && py_string(y, h->descr, sizeof h->descr))
				return -1;
		} else if (!strcmp(key, "fortran_order")) {
			dup = h->fortran >= 0;
			if (!dup && py_bool(y, &h->fortran))
				return -1;
		} else if (!strcmp(key, "shape")) {
			dup = h->rank >= 0;
			if (!dup && py_shape(y, h))
				return -1;
		} else
			return rt_fail(
			    y->err, y->errlen, y->path,
			    "bad .npy header: unexpected key '%s' at byte %zu of "
			    "the header",
			    key, at);
		if (dup)
			return rt_fail(y->err, y->errlen, y->path,
			               "bad .npy header: key '%s' appears twice", key);
		skip_ws(y);
		if (peek(y) == ',')
			y->p++;
		else if (peek(y) != '}')
			return bad_header(y, "expected ',' or '}' after a value");
	}
	y->p++;
	skip_ws(y);
	if (y->p < y->n)
		return bad_header(y, "expected only spaces after the dict");
	const char *missing = !h->descr[0]     ? "descr"
	                      : h->fortran < 0 ? "fortran_order"
	                      : h->rank < 0    ? "shape"
	                                       : NULL;
	if (missing)
		return rt_fail(y->err, y->errlen, y->path, "bad .npy header: no '%s'",
		               missing);
	return 0;
}

/* ---- loading ---- */

/* The element type of descr, checked against what the caller asked for. */
static int find_kind(const char *path, const char *d, int as_labels, int *kind, char *err,
                     size_t errlen)
{
	int k = 0;
	while (k < NKINDS && (!d[0] || strcmp(d + 1, kinds[k].code)))
		k++;
	if (k == NKINDS || !strchr("<>|", d[0]) || (d[0] == '|' && kinds[k].size > 1))
		return rt_fail(err, errlen, path, "dtype '%s' is not supported (%s)", d,
		               SUPPORTED);
	if (d[0] == '>' && kinds[k].size > 1)
		return rt_fail(err, errlen, path,
		               "big-endian data ('%s') is not supported; convert it with "
		               "arr.astype('<%s')",
		               d, d + 1);
	if (as_labels && kinds[k].is_float)
		return rt_fail(
		    err, errlen, path,
		    "integers are wanted (class labels, embedding indices), but this "
		    "file holds %s ('%s'); convert them with arr.astype('<i4'), one-hot "
		    "labels with arr.argmax(1).astype('<i4')",
		    kinds[k].cname, d);
	if (!as_labels && !kinds[k].is_float)
		return rt_fail(
		    err, errlen, path,
		    "this file holds integers (%s, '%s'), not float32 or float64 "
		    "data; load it as labels, or convert it with arr.astype('<f4')",
		    kinds[k].cname, d);
	*kind = k;
	return 0;
}

/* The magic, version and header; *pre is where the data starts. */
static int read_header(FILE *fp, const char *path, int64_t size, Header *h, int64_t *pre,
                       char *err, size_t errlen)
{
	unsigned char b[12];
	if (size < 10)
		return rt_fail(err, errlen, path,
		               "not a .npy file (only %lld bytes long)", (long long)size);
	if (fread(b, 1, 10, fp) != 10)
		return rt_fail(err, errlen, path, "read error: %s", strerror(errno));
	if (memcmp(b, MAGIC, 6))
		return rt_fail(err, errlen, path,
		               "not a .npy file (it does not begin with \\x93NUMPY)");
	int major = b[6], minor = b[7];
	if (major < 1 || major > 3 || minor != 0)
		return rt_fail(
		    err, errlen, path,
		    ".npy format version %d.%d is not supported (1.0, 2.0, 3.0)", major,
		    minor);
	uint32_t hlen = b[8] | (uint32_t)b[9] << 8;
	*pre = 10;
	if (major > 1) {
		if (size < 12 || fread(b + 10, 1, 2, fp) != 2)
			return rt_fail(
			    err, errlen, path,
			    "truncated: the file ends inside the header length");
		hlen |= (uint32_t)b[10] << 16 | (uint32_t)b[11] << 24;
		*pre = 12;
	}
	if (hlen > size - *pre)
		return rt_fail(
		    err, errlen, path,
		    "header length %lu is larger than the rest of the file (%lld "
		    "bytes)",
		    (unsigned long)hlen, (long long)(size - *pre));
	if (hlen > HEADER_MAX)
		return rt_fail(err, errlen, path,
		               "header length %lu is over the 1 MiB limit",
		               (unsigned long)hlen);
	char *s = rt_alloc(hlen + 1);
	if (!s)
		return rt_fail(err, errlen, path, "out of memory");
	int rc = -1;
	if (fread(s, 1, hlen, fp) != hlen)
		rt_fail(err, errlen, path, "read error: %s", strerror(errno));
	else {
		Py y = {s, hlen, 0, path, err, errlen};
		rc = parse_header(&y, h);
	}
	*pre += hlen;
	rt_free(s);
	return rc;
}

/* Decodes count little-endian elements of kind k from b into t->data at pos. */
static int convert(const char *path, int k, const unsigned char *b, size_t count,
                   rt_tensor *t, int64_t pos, char *err, size_t errlen)
{
	size_t es = kinds[k].size;
	for (size_t i = 0; i < count; i++, b += es) {
		uint64_t u = 0;
		for (size_t j = es; j-- > 0;)
			u = u << 8 | b[j];
		int64_t at = pos + (int64_t)i;
		if (kinds[k].is_float) {
			float f;
			double d;
			if (es == 4) {
				uint32_t w = (uint32_t)u;
				memcpy(&f, &w, 4);
				d = f;
			} else {
				memcpy(&d, &u, 8);
				if (isfinite(d) && fabs(d) > FLT_MAX)
					return rt_fail(
					    err, errlen, path,
					    "element %lld is %g, too large for "
					    "float32",
					    (long long)at, d);
				f = (float)d;
			}
			/* as the CSV reader: a NaN in the data made training "diverge" */
			if (!isfinite(d))
				return rt_fail(
				    err, errlen, path,
				    "element %lld (row %lld) is %s; the data must be "
				    "finite",
				    (long long)at,
				    (long long)(t->stride ? at / t->stride : at),
				    isnan(d) ? "nan"
				    : d > 0  ? "inf"
				             : "-inf");
			((float *)t->data)[at] = f;
			continue;
		}
		int64_t v;
		if (!kinds[k].is_signed) {
			if (u > INT32_MAX)
				return rt_fail(
				    err, errlen, path,
				    "label %lld is %llu, which does not fit in int32",
				    (long long)at, (unsigned long long)u);
			v = (int64_t)u;
		} else if (es == 8)
			memcpy(&v, &u, 8);
		else {
			uint64_t sign = (uint64_t)1 << (8 * es - 1);
			v = (int64_t)(u & (sign - 1)) - (int64_t)(u & sign);
		}
		if (v < INT32_MIN || v > INT32_MAX)
			return rt_fail(err, errlen, path,
			               "label %lld is %lld, which does not fit in int32",
			               (long long)at, (long long)v);
		((int32_t *)t->data)[at] = (int32_t)v;
	}
	return 0;
}

static int read_data(FILE *fp, const char *path, int k, rt_tensor *t, int64_t total,
                     char *err, size_t errlen)
{
	unsigned char buf[CHUNK];
	size_t es = kinds[k].size;
	for (int64_t pos = 0; pos < total;) {
		size_t count = (size_t)(total - pos) < CHUNK / es ? (size_t)(total - pos)
		                                                  : CHUNK / es;
		if (fread(buf, es, count, fp) != count)
			return rt_fail(err, errlen, path, "read error: %s",
			               ferror(fp) ? strerror(errno)
			                          : "the file shrank while being read");
		if (convert(path, k, buf, count, t, pos, err, errlen))
			return -1;
		pos += (int64_t)count;
	}
	return 0;
}

/* Checks the header's shape and fills the output's shape; *total = elements. */
static int check_shape(const char *path, const Header *h, rt_tensor *out, int64_t *total,
                       char *err, size_t errlen)
{
	if (h->fortran)
		return rt_fail(err, errlen, path,
		               "Fortran-order arrays are not supported; save with "
		               "np.ascontiguousarray");
	if (h->rank == 0)
		return rt_fail(
		    err, errlen, path,
		    "shape () is a single scalar; the first dimension must count "
		    "the examples");
	*total = 1;
	for (int i = 0; i < h->rank; i++) {
		if (h->shape[i] == 0)
			return rt_fail(err, errlen, path, "dimension %d of %d is 0",
			               i + 1, h->rank);
		if (*total > INT64_MAX / 8 / h->shape[i])
			return rt_fail(err, errlen, path,
			               "declared size overflows (dimension %d is %lld)",
			               i + 1, (long long)h->shape[i]);
		*total *= h->shape[i];
	}
	out->n = h->shape[0];
	out->rank = h->rank - 1;
	for (int i = 1; i < h->rank; i++)
		out->dims[i - 1] = h->shape[i];
	out->stride = *total / h->shape[0];
	return 0;
}

int rt_npy_load(const char *path, int as_labels, rt_tensor *out, char *err, size_t errlen)
{
	if (!path || !out)
		return rt_error(err, errlen, "rt_npy_load: %s is NULL",
		                !path ? "the path" : "out");
	memset(out, 0, sizeof *out);
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return rt_fail(err, errlen, path, "cannot open: %s", strerror(errno));
	int rc = -1, k = 0;
	struct stat st;
	Header h;
	int64_t pre = 0, total = 0;
	if (fstat(fileno(fp), &st) || !S_ISREG(st.st_mode)) {
		rt_fail(err, errlen, path, "not a regular file");
		goto done;
	}
	if (read_header(fp, path, (int64_t)st.st_size, &h, &pre, err, errlen) ||
	    find_kind(path, h.descr, as_labels, &k, err, errlen) ||
	    check_shape(path, &h, out, &total, err, errlen))
		goto done;
	int64_t want = total * (int64_t)kinds[k].size, have = (int64_t)st.st_size - pre;
	if (have < want) {
		rt_fail(err, errlen, path,
		        "truncated: expected %lld bytes of data, found %lld",
		        (long long)want, (long long)have);
		goto done;
	}
	if (have > want) {
		rt_fail(err, errlen, path,
		        "%lld bytes of trailing data after the %lld bytes declared",
		        (long long)(have - want), (long long)want);
		goto done;
	}
	if ((uint64_t)total > SIZE_MAX / 4) {
		rt_fail(err, errlen, path,
		        "declares %lld elements, too many for this machine",
		        (long long)total);
		goto done;
	}
	out->dtype = as_labels ? RT_I32 : RT_F32;
	out->data = rt_alloc((size_t)total * 4);
	if (!out->data) {
		rt_fail(err, errlen, path, "out of memory (%lld bytes)",
		        (long long)total * 4);
		goto done;
	}
	rc = read_data(fp, path, k, out, total, err, errlen);
done:
	fclose(fp);
	if (rc)
		rt_tensor_free(out);
	return rc;
}

/* ---- saving ---- */

int rt_npy_save(const char *path, rt_dtype dtype, int rank, const int64_t *shape,
                const void *data, char *err, size_t errlen)
{
	if (!path)
		return rt_error(err, errlen, "rt_npy_save: the path is NULL");
	if (dtype != RT_F32 && dtype != RT_I32)
		return rt_fail(err, errlen, path, "invalid dtype %d", (int)dtype);
	if (rank < 0 || rank > MAXDIMS || (rank && !shape))
		return rt_fail(err, errlen, path, "rank %d is not between 0 and %d", rank,
		               MAXDIMS);
	char h[512];
	int64_t total = 1;
	memcpy(h, MAGIC, 6);
	h[6] = 1; /* version 1.0 */
	h[7] = 0;
	int k = 10 + snprintf(h + 10, sizeof h - 10,
	                      "{'descr': '<%s', 'fortran_order': False, 'shape': (",
	                      dtype == RT_F32 ? "f4" : "i4");
	for (int i = 0; i < rank; i++) {
		if (shape[i] < 0)
			return rt_fail(err, errlen, path,
			               "dimension %d is negative (%lld)", i + 1,
			               (long long)shape[i]);
		if (shape[i] && total > INT64_MAX / 4 / shape[i])
			return rt_fail(err, errlen, path,
			               "size overflows (dimension %d is %lld)", i + 1,
			               (long long)shape[i]);
		total *= shape[i];
		k += snprintf(h + k, sizeof h - (size_t)k, "%s%lld%s", i ? ", " : "",
		              (long long)shape[i], rank == 1 ? "," : "");
	}
	if (total && !data)
		return rt_fail(err, errlen, path, "data is NULL");
	if ((uint64_t)total > SIZE_MAX / 4)
		return rt_fail(err, errlen, path, "too large for this machine");
	k += snprintf(h + k, sizeof h - (size_t)k, "), }");
	while ((k + 1) % 64)
		h[k++] = ' ';
	h[k++] = '\n';
	h[8] = (char)((k - 10) & 0xff);
	h[9] = (char)((k - 10) >> 8);
	const void *parts[] = {h, data};
	size_t sizes[] = {(size_t)k, (size_t)total * 4};
	return rt_write_atomic(path, parts, sizes, 2, err, errlen);
}
