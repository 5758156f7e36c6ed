/* safetensors, the Hugging Face weight format: an 8-byte little-endian header length
 * N, N bytes of JSON ({"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape":
 * [2, 3], "data_offsets": [begin, end]}, ...}, maybe padded with trailing spaces), then
 * the data section, which the offsets index. Loading reads the whole file into one
 * RT_ALIGN-aligned image (its size from fstat, after the header length has been
 * checked against it) and parses the header with a small strict JSON parser that
 * accepts only the shapes the format uses: objects, arrays, strings, non-negative
 * integers, and strings as __metadata__ values. Strings are decoded in place (an
 * escape's UTF-8 is never longer than its spelling), so names point into the image.
 * Every declared size is checked against the file before it is trusted, and the
 * tensors must tile the data section exactly, as the reference implementation
 * requires. Saving writes the header, padded with spaces so the data section starts at
 * a multiple of 8, and the tensors in the order given, through rt_write_atomic. The
 * data is little-endian, the runtime's host order. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "descent/runtime.h"
#include "mem.h"

#define HEADER_LIMIT 100000000u /* 100 MB, the reference implementation's limit */

static const struct {
	const char *name;
	size_t size;
} dtypes[] = {
    [RT_ST_F32] = {"F32", 4},   [RT_ST_F64] = {"F64", 8}, [RT_ST_I32] = {"I32", 4},
    [RT_ST_I64] = {"I64", 8},   [RT_ST_U8] = {"U8", 1},   [RT_ST_F16] = {"F16", 2},
    [RT_ST_BF16] = {"BF16", 2}, [RT_ST_I8] = {"I8", 1},   [RT_ST_I16] = {"I16", 2},
    [RT_ST_BOOL] = {"BOOL", 1},
};
#define NDTYPES (int)(sizeof dtypes / sizeof dtypes[0])
#define DTYPE_LIST "F32, F64, I32, I64, U8, F16, BF16, I8, I16, BOOL"

size_t rt_st_dtype_size(rt_st_dtype t)
{
	return (int)t >= 0 && (int)t < NDTYPES ? dtypes[t].size : 0;
}

/* Bytes of a tensor of this shape and element size; -1 if the product overflows. */
static int byte_size(const int64_t *shape, int rank, size_t esize, uint64_t *bytes)
{
	uint64_t b = esize;
	for (int i = 0; i < rank; i++) {
		uint64_t d = (uint64_t)shape[i];
		if (d && b > (uint64_t)INT64_MAX / d)
			return -1;
		b *= d;
	}
	*bytes = b;
	return 0;
}

/* Length of the valid UTF-8 sequence at s (avail bytes), 0 if it is not one. */
static int utf8_seq(const unsigned char *s, size_t avail)
{
	unsigned c = s[0];
	int len;
	uint32_t cp, min;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f, min = 0x80;
	else if ((c & 0xf0) == 0xe0)
		len = 3, cp = c & 0x0f, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07, min = 0x10000;
	else
		return 0;
	if (avail < (size_t)len)
		return 0;
	for (int i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static int valid_utf8(const char *s)
{
	size_t n = strlen(s);
	for (size_t i = 0; i < n;) {
		int k = utf8_seq((const unsigned char *)s + i, n - i);
		if (!k)
			return 0;
		i += (size_t)k;
	}
	return 1;
}

/* Encodes cp (at most 0x10ffff) as UTF-8 at o; returns its length. */
static size_t put_utf8(char *o, uint32_t cp)
{
	size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
	for (size_t i = n - 1; i > 0; i--, cp >>= 6)
		o[i] = (char)(0x80 | (cp & 0x3f));
	o[0] = (char)(n == 1 ? cp : (0xff00u >> n & 0xff) | cp);
	return n;
}

/* ---- the header's JSON ---- */

typedef struct Json {
	char *s; /* the header, decoded in place */
	size_t n, p;
	const char *path;
	char *err;
	size_t errlen;
} Json;

static int peek(const Json *j) { return j->p < j->n ? (unsigned char)j->s[j->p] : -1; }

static void skip_ws(Json *j)
{
	int c;
	while ((c = peek(j)) == ' ' || c == '\t' || c == '\n' || c == '\r')
		j->p++;
}

/* What is at the current position, for messages: 'x', byte 0xff, the end. */
static const char *found(const Json *j, char *buf, size_t len)
{
	int c = peek(j);
	if (c < 0)
		snprintf(buf, len, "the end of the header");
	else if (c >= 0x20 && c < 0x7f)
		snprintf(buf, len, "'%c' at byte %zu of the header", c, j->p);
	else
		snprintf(buf, len, "byte 0x%02x at byte %zu of the header", (unsigned)c,
		         j->p);
	return buf;
}

static int bad_json(const Json *j, const char *what)
{
	char f[64];
	return rt_fail(j->err, j->errlen, j->path,
	               "header is not valid JSON: %s, found %s", what,
	               found(j, f, sizeof f));
}

/* A value of the wrong kind at the current position: "<msg>, found 'x' at byte N". */
static int bad_value(const Json *j, const char *fmt, ...)
{
	char msg[512], f[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return rt_fail(j->err, j->errlen, j->path, "%s, found %s", msg,
	               found(j, f, sizeof f));
}

static int expect(Json *j, char c, const char *what)
{
	skip_ws(j);
	if (peek(j) != c)
		return bad_json(j, what);
	j->p++;
	return 0;
}

static int hex4(const Json *j, size_t at, uint32_t *v)
{
	if (at + 4 > j->n)
		return -1;
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = j->s[at + i];
		int d = c >= '0' && c <= '9'   ? c - '0'
		        : c >= 'a' && c <= 'f' ? c - 'a' + 10
		        : c >= 'A' && c <= 'F' ? c - 'A' + 10
		                               : -1;
		if (d < 0)
			return -1;
		*v = *v << 4 | (uint32_t)d;
	}
	return 0;
}

/* A \uXXXX escape at j->p (and its low surrogate if it is a high one); the code point
 * goes to *cp and j->p past the escape(s). */
static int unicode_escape(Json *j, uint32_t *cp)
{
	if (hex4(j, j->p + 2, cp))
		return bad_json(j, "\\u must be followed by 4 hex digits");
	if (*cp >= 0xdc00 && *cp <= 0xdfff)
		return bad_json(j, "lone low surrogate in a \\u escape");
	if (*cp >= 0xd800 && *cp <= 0xdbff) {
		uint32_t lo;
		if (j->p + 12 > j->n || j->s[j->p + 6] != '\\' || j->s[j->p + 7] != 'u' ||
		    hex4(j, j->p + 8, &lo) || lo < 0xdc00 || lo > 0xdfff)
			return bad_json(j, "high surrogate in a \\u escape without a low "
			                   "surrogate after it");
		*cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
		j->p += 6;
	}
	if (*cp == 0)
		return bad_json(j, "\\u0000 (NUL) in a string is not supported");
	j->p += 6;
	return 0;
}

/* A string at j->p, decoded in place and NUL-terminated where its closing quote was
 * (or earlier); *out points into the header. */
static int parse_string(Json *j, char **out)
{
	skip_ws(j);
	if (peek(j) != '"')
		return bad_json(j, "expected a string");
	size_t start = ++j->p;
	char *w = j->s + start;
	for (;;) {
		int c = peek(j);
		if (c < 0)
			return bad_json(j, "unterminated string");
		if (c == '"') {
			*w = 0;
			j->p++;
			*out = j->s + start;
			return 0;
		}
		if (c < 0x20)
			return bad_json(j, "control character in a string (it must be "
			                   "escaped)");
		if (c >= 0x80) {
			int k = utf8_seq((unsigned char *)j->s + j->p, j->n - j->p);
			if (!k)
				return bad_json(j, "invalid UTF-8 in a string");
			memmove(w, j->s + j->p, (size_t)k);
			w += k;
			j->p += (size_t)k;
			continue;
		}
		if (c != '\\') {
			*w++ = (char)c;
			j->p++;
			continue;
		}
		int e = j->p + 1 < j->n ? j->s[j->p + 1] : -1;
		const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
		const char *k = e > 0 ? strchr(from, e) : NULL;
		if (k) {
			*w++ = to[k - from];
			j->p += 2;
		} else if (e == 'u') {
			uint32_t cp = 0; /* set by unicode_escape; gcc -O3 cannot tell */
			if (unicode_escape(j, &cp))
				return -1;
			w += put_utf8(w, cp);
		} else
			return bad_json(j, "invalid escape in a string");
	}
}

/* Integers: a JSON number that must be a non-negative integer up to INT64_MAX. The
 * messages name the tensor and the entry ("shape entry", "data_offsets entry"). */
static int parse_int(Json *j, const char *name, const char *what, uint64_t *v)
{
	skip_ws(j);
	size_t start = j->p;
	int c = peek(j), neg = c == '-';
	if (neg)
		c = (j->p++, peek(j));
	if (c < '0' || c > '9') {
		j->p = start;
		return bad_value(j, "tensor '%s': %s must be a non-negative integer",
		                 name, what);
	}
	int over = 0, integral = 1;
	*v = 0;
	if (c == '0')
		j->p++;
	else
		while ((c = peek(j)) >= '0' && c <= '9') {
			over |= *v > ((uint64_t)INT64_MAX - (uint64_t)(c - '0')) / 10;
			*v = *v * 10 + (uint64_t)(c - '0');
			j->p++;
		}
	if (peek(j) == '.') {
		integral = 0;
		j->p++;
		if ((c = peek(j)) < '0' || c > '9')
			return bad_json(j, "expected a digit after '.'");
		while ((c = peek(j)) >= '0' && c <= '9')
			j->p++;
	}
	if ((c = peek(j)) == 'e' || c == 'E') {
		integral = 0;
		j->p++;
		if ((c = peek(j)) == '+' || c == '-')
			j->p++;
		if ((c = peek(j)) < '0' || c > '9')
			return bad_json(j, "expected a digit in the exponent");
		while ((c = peek(j)) >= '0' && c <= '9')
			j->p++;
	}
	int len = (int)(j->p - start);
	if (neg || !integral)
		return rt_fail(
		    j->err, j->errlen, j->path,
		    "tensor '%s': %s must be a non-negative integer, found %.*s at "
		    "byte %zu of the header",
		    name, what, len, j->s + start, start);
	if (over)
		return rt_fail(
		    j->err, j->errlen, j->path,
		    "tensor '%s': %s %.*s at byte %zu of the header is too large", name,
		    what, len, j->s + start, start);
	return 0;
}

/* An array of at most max integers; *count = max + 1 (and the array left unread) when
 * it holds more. */
static int parse_ints(Json *j, const char *name, const char *key, uint64_t *v, int max,
                      int *count)
{
	char what[64];
	snprintf(what, sizeof what, "%s entry", key);
	skip_ws(j);
	if (peek(j) != '[')
		return bad_value(j, "tensor '%s': %s must be an array of integers", name,
		                 key);
	j->p++;
	*count = 0;
	skip_ws(j);
	if (peek(j) == ']') {
		j->p++;
		return 0;
	}
	for (;;) {
		if (*count == max) {
			*count = max + 1;
			return 0;
		}
		if (parse_int(j, name, what, &v[(*count)++]))
			return -1;
		skip_ws(j);
		if (peek(j) == ']') {
			j->p++;
			return 0;
		}
		if (expect(j, ',', "expected ',' or ']' after an array entry"))
			return -1;
	}
}

/* ---- the header's meaning ---- */

typedef struct Load {
	Json j;
	const char *data; /* the data section */
	uint64_t datalen;
	rt_st_file *out;
	int cap, mcap, have_meta;
} Load;

/* p with room for element n (cap elements now), or NULL with p left as it was. */
static void *grow(void *p, int *cap, int n, size_t elem)
{
	if (n < *cap)
		return p;
	if (n >= INT_MAX / 2)
		return NULL;
	int c = *cap ? *cap * 2 : 16;
	void *q = rt_realloc(p, (size_t)c * elem);
	if (q)
		*cap = c;
	return q;
}

/* Checks one tensor's entry against its dtype's size and the data section. */
static int check_tensor(Load *L, const rt_st_tensor *t, const uint64_t *off)
{
	const char *path = L->j.path;
	char shape[160];
	rt_shape_text(shape, sizeof shape, t->rank, t->shape);
	uint64_t bytes;
	if (off[0] > off[1])
		return rt_fail(
		    L->j.err, L->j.errlen, path,
		    "tensor '%s': data_offsets [%llu, %llu] begin after they end",
		    t->name, (unsigned long long)off[0], (unsigned long long)off[1]);
	if (byte_size(t->shape, t->rank, dtypes[t->dtype].size, &bytes))
		return rt_fail(L->j.err, L->j.errlen, path,
		               "tensor '%s': shape %s of %s is too large (its byte size "
		               "overflows)",
		               t->name, shape, dtypes[t->dtype].name);
	if (bytes != off[1] - off[0])
		return rt_fail(L->j.err, L->j.errlen, path,
		               "tensor '%s' has shape %s of %s (%llu bytes) but its "
		               "data_offsets [%llu, %llu] span %llu bytes",
		               t->name, shape, dtypes[t->dtype].name,
		               (unsigned long long)bytes, (unsigned long long)off[0],
		               (unsigned long long)off[1],
		               (unsigned long long)(off[1] - off[0]));
	if (off[1] > L->datalen)
		return rt_fail(
		    L->j.err, L->j.errlen, path,
		    "tensor '%s': data_offsets [%llu, %llu] are outside the data "
		    "section (%llu bytes)",
		    t->name, (unsigned long long)off[0], (unsigned long long)off[1],
		    (unsigned long long)L->datalen);
	return 0;
}

/* The value of a tensor's "dtype". */
static int parse_dtype(Json *j, const char *name, rt_st_dtype *dt)
{
	char *d;
	if (peek(j) != '"')
		return bad_value(j, "tensor '%s': dtype must be a string", name);
	if (parse_string(j, &d))
		return -1;
	int k = 0;
	while (k < NDTYPES && strcmp(d, dtypes[k].name))
		k++;
	if (k == NDTYPES)
		return rt_fail(j->err, j->errlen, j->path,
		               "tensor '%s': dtype '%s' is not supported (supported: %s)",
		               name, d, DTYPE_LIST);
	*dt = (rt_st_dtype)k;
	return 0;
}

static const char *const keys[] = {"dtype", "shape", "data_offsets"};

/* The value of keys[k] into t or off; *noff counts the offsets. */
static int parse_field(Json *j, int k, rt_st_tensor *t, uint64_t *off, int *noff)
{
	uint64_t shape[RT_MAXRANK + 1];
	if (k == 0)
		return parse_dtype(j, t->name, &t->dtype);
	if (k == 1) {
		if (parse_ints(j, t->name, "shape", shape, RT_MAXRANK, &t->rank))
			return -1;
		if (t->rank > RT_MAXRANK)
			return rt_fail(j->err, j->errlen, j->path,
			               "tensor '%s' has more than %d dimensions", t->name,
			               RT_MAXRANK);
		for (int i = 0; i < t->rank; i++)
			t->shape[i] = (int64_t)shape[i];
		return 0;
	}
	if (parse_ints(j, t->name, "data_offsets", off, 2, noff))
		return -1;
	if (*noff != 2)
		return rt_fail(
		    j->err, j->errlen, j->path,
		    "tensor '%s': data_offsets must be two integers [begin, end]",
		    t->name);
	return 0;
}

/* {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, keys in any order. */
static int parse_tensor(Load *L, char *name)
{
	Json *j = &L->j;
	rt_st_tensor t = {.name = name};
	int noff = 0, seen[3] = {0};
	uint64_t off[3];
	skip_ws(j);
	if (peek(j) != '{')
		return bad_value(j,
		                 "tensor '%s': expected an object with dtype, shape "
		                 "and data_offsets",
		                 name);
	j->p++;
	skip_ws(j);
	for (int first = 1; peek(j) != '}'; first = 0) {
		if (!first &&
		    expect(j, ',', "expected ',' or '}' after a tensor's entry"))
			return -1;
		char *key;
		size_t at = (skip_ws(j), j->p);
		if (parse_string(j, &key) || expect(j, ':', "expected ':' after a key"))
			return -1;
		int k = 0;
		while (k < 3 && strcmp(key, keys[k]))
			k++;
		if (k == 3 || seen[k])
			return rt_fail(
			    j->err, j->errlen, j->path,
			    k == 3 ? "tensor '%s': unknown key '%s' at byte %zu of "
			             "the header (expected dtype, shape and "
			             "data_offsets)"
			           : "tensor '%s': key '%s' appears twice (byte %zu "
			             "of the header)",
			    name, key, at);
		seen[k] = 1;
		skip_ws(j);
		if (parse_field(j, k, &t, off, &noff))
			return -1;
		skip_ws(j);
	}
	j->p++;
	for (int k = 0; k < 3; k++)
		if (!seen[k])
			return rt_fail(j->err, j->errlen, j->path,
			               "tensor '%s' has no %s", name, keys[k]);
	if (check_tensor(L, &t, off))
		return -1;
	t.data = L->data + off[0];
	t.nbytes = (size_t)(off[1] - off[0]);
	rt_st_file *f = L->out;
	rt_st_tensor *q = grow(f->t, &L->cap, f->n, sizeof t);
	if (!q)
		return rt_fail(j->err, j->errlen, j->path, "out of memory");
	f->t = q;
	f->t[f->n++] = t;
	return 0;
}

/* {"key": "value", ...} or null; at is where its key was, for messages. */
static int parse_meta(Load *L, size_t at)
{
	Json *j = &L->j;
	rt_st_file *f = L->out;
	if (L->have_meta)
		return rt_fail(
		    j->err, j->errlen, j->path,
		    "__metadata__ appears twice in the header (again at byte %zu)", at);
	L->have_meta = 1;
	skip_ws(j);
	if (j->n - j->p >= 4 && !memcmp(j->s + j->p, "null", 4)) {
		j->p += 4; /* as the reference implementation: no metadata */
		return 0;
	}
	if (peek(j) != '{')
		return bad_value(j, "__metadata__ must be an object of strings");
	j->p++;
	skip_ws(j);
	for (int first = 1; peek(j) != '}'; first = 0) {
		if (!first && expect(j, ',', "expected ',' or '}' in __metadata__"))
			return -1;
		char *key, *val;
		if (parse_string(j, &key) || expect(j, ':', "expected ':' after a key"))
			return -1;
		skip_ws(j);
		if (peek(j) != '"')
			return bad_value(j, "__metadata__ entry '%s' must be a string",
			                 key);
		if (parse_string(j, &val))
			return -1;
		int m = f->nmeta, kc = L->mcap, vc = L->mcap;
		const char **k = grow(f->meta_keys, &kc, m, sizeof *k);
		if (k)
			f->meta_keys = k;
		const char **v = grow(f->meta_vals, &vc, m, sizeof *v);
		if (v)
			f->meta_vals = v;
		if (!k || !v)
			return rt_fail(j->err, j->errlen, j->path, "out of memory");
		L->mcap = kc;
		f->meta_keys[m] = key;
		f->meta_vals[m] = val;
		f->nmeta++;
		skip_ws(j);
	}
	j->p++;
	return 0;
}

static int parse_header(Load *L)
{
	Json *j = &L->j;
	skip_ws(j);
	if (peek(j) != '{')
		return bad_value(j, "header is not a JSON object");
	j->p++;
	skip_ws(j);
	for (int first = 1; peek(j) != '}'; first = 0) {
		if (!first && expect(j, ',', "expected ',' or '}' after a tensor"))
			return -1;
		char *key;
		size_t at = (skip_ws(j), j->p);
		if (parse_string(j, &key) || expect(j, ':', "expected ':' after a key"))
			return -1;
		if (strcmp(key, "__metadata__") ? parse_tensor(L, key)
		                                : parse_meta(L, at))
			return -1;
		skip_ws(j);
	}
	j->p++;
	skip_ws(j);
	if (j->p < j->n)
		return bad_json(j, "expected only spaces after the header's object");
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int by_offset(const void *a, const void *b)
{
	const rt_st_tensor *x = *(const rt_st_tensor *const *)a,
	                   *y = *(const rt_st_tensor *const *)b;
	if (x->data != y->data)
		return (const char *)x->data < (const char *)y->data ? -1 : 1;
	return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

/* Sorts s[0..n) and returns a string that appears twice in it, or NULL. */
static const char *first_duplicate(const char **s, int n)
{
	qsort(s, (size_t)n, sizeof *s, by_name);
	for (int i = 1; i < n; i++)
		if (!strcmp(s[i - 1], s[i]))
			return s[i];
	return NULL;
}

/* Tensor names and metadata keys are unique. */
static int check_names(Load *L)
{
	rt_st_file *f = L->out;
	int n = f->n > f->nmeta ? f->n : f->nmeta;
	const char **s = rt_alloc(((size_t)n + 1) * sizeof *s), *dup;
	if (!s)
		return rt_fail(L->j.err, L->j.errlen, L->j.path, "out of memory");
	for (int i = 0; i < f->nmeta; i++)
		s[i] = f->meta_keys[i];
	if ((dup = first_duplicate(s, f->nmeta)))
		rt_fail(L->j.err, L->j.errlen, L->j.path,
		        "__metadata__ key '%s' appears twice", dup);
	for (int i = 0; !dup && i < f->n; i++)
		s[i] = f->t[i].name;
	if (!dup && (dup = first_duplicate(s, f->n)))
		rt_fail(L->j.err, L->j.errlen, L->j.path,
		        "tensor name '%s' appears twice in the header", dup);
	rt_free(s);
	return dup ? -1 : 0;
}

/* The tensors tile the data section: sorted by offset, each begins where the previous
 * one ended, the first at 0, and the last ends at the end of the file. */
static int check_tiling(Load *L)
{
	const char *path = L->j.path;
	char *err = L->j.err;
	size_t errlen = L->j.errlen;
	rt_st_file *f = L->out;
	const rt_st_tensor **ts = rt_alloc(((size_t)f->n + 1) * sizeof *ts), *prev = NULL;
	if (!ts)
		return rt_fail(err, errlen, path, "out of memory");
	for (int i = 0; i < f->n; i++)
		ts[i] = &f->t[i];
	qsort(ts, (size_t)f->n, sizeof *ts, by_offset);
	uint64_t at = 0;
	int rc = 0;
	for (int i = 0; i < f->n && !rc; i++) {
		const rt_st_tensor *t = ts[i];
		unsigned long long begin = (uint64_t)((const char *)t->data - L->data);
		if (begin > at && !prev)
			rc = rt_fail(
			    err, errlen, path,
			    "tensor '%s' begins at byte %llu of the data section, not "
			    "at 0 (a gap at its start)",
			    t->name, begin);
		else if (begin > at)
			rc = rt_fail(
			    err, errlen, path,
			    "gap in the data section between tensor '%s' (ends at "
			    "%llu) and tensor '%s' (begins at %llu)",
			    prev->name, (unsigned long long)at, t->name, begin);
		else if (begin < at)
			rc = rt_fail(
			    err, errlen, path,
			    "tensor '%s' (bytes %llu to %llu of the data section) "
			    "overlaps tensor '%s' (which ends at %llu)",
			    t->name, begin, begin + t->nbytes, prev->name,
			    (unsigned long long)at);
		at = begin + t->nbytes;
		prev = t;
	}
	rt_free(ts);
	if (rc || at == L->datalen)
		return rc;
	if (!prev)
		return rt_fail(
		    err, errlen, path,
		    "%llu bytes of data belong to no tensor (the header lists none)",
		    (unsigned long long)L->datalen);
	return rt_fail(
	    err, errlen, path,
	    "%llu bytes at the end of the data section belong to no tensor (the "
	    "last one, '%s', ends at %llu of %llu)",
	    (unsigned long long)(L->datalen - at), prev->name, (unsigned long long)at,
	    (unsigned long long)L->datalen);
}

/* The whole file into out->mem; the header length checked before anything is
 * allocated. */
static int read_image(const char *path, rt_st_file *out, uint64_t *hlen, size_t *size,
                      char *err, size_t errlen)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return rt_fail(err, errlen, path, "cannot open: %s", strerror(errno));
	int rc = -1;
	struct stat st;
	unsigned char b[8];
	if (fstat(fileno(fp), &st)) {
		rt_fail(err, errlen, path, "cannot stat: %s", strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		rt_fail(err, errlen, path, "not a regular file");
		goto done;
	}
	if (st.st_size < 8) {
		rt_fail(err, errlen, path,
		        "file is %lld bytes long, too short for a safetensors header (8 "
		        "bytes of length, then the JSON)",
		        (long long)st.st_size);
		goto done;
	}
	if ((uint64_t)st.st_size > SIZE_MAX - RT_ALIGN) {
		rt_fail(err, errlen, path, "file is too large for this machine");
		goto done;
	}
	if (fread(b, 1, 8, fp) != 8) {
		rt_fail(err, errlen, path, "read error: %s",
		        ferror(fp) ? strerror(errno) : "file shrank while being read");
		goto done;
	}
	*hlen = 0;
	for (int i = 7; i >= 0; i--)
		*hlen = *hlen << 8 | b[i];
	*size = (size_t)st.st_size;
	if (*hlen > *size - 8) {
		rt_fail(
		    err, errlen, path,
		    "header length %llu is larger than the rest of the file (%llu bytes)",
		    (unsigned long long)*hlen, (unsigned long long)(*size - 8));
		goto done;
	}
	if (*hlen > HEADER_LIMIT) {
		rt_fail(err, errlen, path, "header length %llu is over the 100 MB limit",
		        (unsigned long long)*hlen);
		goto done;
	}
	out->mem = rt_alloc(*size);
	if (!out->mem) {
		rt_fail(err, errlen, path, "out of memory (%zu bytes)", *size);
		goto done;
	}
	memcpy(out->mem, b, 8);
	if (fread((char *)out->mem + 8, 1, *size - 8, fp) != *size - 8) {
		rt_fail(err, errlen, path, "read error: %s",
		        ferror(fp) ? strerror(errno) : "file shrank while being read");
		goto done;
	}
	rc = 0;
done:
	fclose(fp);
	return rc;
}

int rt_st_load(const char *path, rt_st_file *out, char *err, size_t errlen)
{
	if (!path || !out)
		return rt_error(err, errlen, "rt_st_load: %s is NULL",
		                !path ? "the path" : "out");
	memset(out, 0, sizeof *out);
	uint64_t hlen = 0;
	size_t size = 0;
	if (read_image(path, out, &hlen, &size, err, errlen)) {
		rt_st_free(out);
		return -1;
	}
	char *img = out->mem;
	Load L = {.j = {img + 8, (size_t)hlen, 0, path, err, errlen},
	          .data = img + 8 + hlen,
	          .datalen = size - 8 - hlen,
	          .out = out};
	if (parse_header(&L) || check_names(&L) || check_tiling(&L)) {
		rt_st_free(out);
		return -1;
	}
	return 0;
}

const rt_st_tensor *rt_st_find(const rt_st_file *f, const char *name)
{
	for (int i = 0; f && name && i < f->n; i++)
		if (!strcmp(f->t[i].name, name))
			return &f->t[i];
	return NULL;
}

const char *rt_st_meta(const rt_st_file *f, const char *key)
{
	for (int i = 0; f && key && i < f->nmeta; i++)
		if (!strcmp(f->meta_keys[i], key))
			return f->meta_vals[i];
	return NULL;
}

void rt_st_free(rt_st_file *f)
{
	if (!f)
		return;
	rt_free(f->t);
	rt_free((void *)f->meta_keys);
	rt_free((void *)f->meta_vals);
	rt_free(f->mem);
	memset(f, 0, sizeof *f);
}

/* ---- saving ---- */

typedef struct Buf {
	char *s;
	size_t n, cap;
	int oom;
} Buf;

static void put(Buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n > b->cap) {
		size_t c = b->cap ? b->cap : 256;
		while (c < b->n + n)
			c *= 2;
		char *q = rt_realloc(b->s, c);
		if (!q) {
			b->oom = 1;
			return;
		}
		b->s = q;
		b->cap = c;
	}
	memcpy(b->s + b->n, s, n);
	b->n += n;
}

static void puts_(Buf *b, const char *s) { put(b, s, strlen(s)); }

static void put_u64(Buf *b, uint64_t v)
{
	char t[24];
	put(b, t, (size_t)snprintf(t, sizeof t, "%llu", (unsigned long long)v));
}

static void put_json_string(Buf *b, const char *s)
{
	put(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		const char *k = c ? strchr("\"\\\b\f\n\r\t", c) : NULL;
		char e[8];
		if (k) {
			e[0] = '\\';
			e[1] = "\"\\bfnrt"[k - "\"\\\b\f\n\r\t"];
			put(b, e, 2);
		} else if (c < 0x20)
			put(b, e, (size_t)snprintf(e, sizeof e, "\\u%04x", c));
		else
			put(b, s, 1);
	}
	put(b, "\"", 1);
}

/* One tensor to be saved: its name, dtype, shape and size; *bytes its size. */
static int check_save_tensor(const char *path, const rt_st_tensor *t, int i,
                             uint64_t *bytes, char *err, size_t errlen)
{
	const char *name = t->name;
	char shape[160];
	if (!name)
		return rt_fail(err, errlen, path, "tensor %d: name is NULL", i);
	if (!valid_utf8(name))
		return rt_fail(err, errlen, path, "tensor %d: name is not valid UTF-8",
		               i);
	if (!strcmp(name, "__metadata__"))
		return rt_fail(
		    err, errlen, path,
		    "tensor %d: name '__metadata__' is reserved for the metadata", i);
	if (!rt_st_dtype_size(t->dtype))
		return rt_fail(err, errlen, path, "tensor '%s': invalid dtype %d", name,
		               (int)t->dtype);
	if (t->rank < 0 || t->rank > RT_MAXRANK)
		return rt_fail(err, errlen, path,
		               "tensor '%s': rank %d is not between 0 and %d", name,
		               t->rank, RT_MAXRANK);
	for (int d = 0; d < t->rank; d++)
		if (t->shape[d] < 0)
			return rt_fail(err, errlen, path,
			               "tensor '%s': dimension %d is negative (%lld)",
			               name, d + 1, (long long)t->shape[d]);
	rt_shape_text(shape, sizeof shape, t->rank, t->shape);
	if (byte_size(t->shape, t->rank, dtypes[t->dtype].size, bytes))
		return rt_fail(err, errlen, path,
		               "tensor '%s': shape %s of %s is too large (its byte size "
		               "overflows)",
		               name, shape, dtypes[t->dtype].name);
	if (*bytes != t->nbytes)
		return rt_fail(
		    err, errlen, path,
		    "tensor '%s': nbytes is %zu but shape %s of %s takes %llu bytes",
		    name, t->nbytes, shape, dtypes[t->dtype].name,
		    (unsigned long long)*bytes);
	if (*bytes && !t->data)
		return rt_fail(err, errlen, path, "tensor '%s': data is NULL", name);
	return 0;
}

/* Every name, key and size checked before anything is written. */
static int check_save(const char *path, const rt_st_tensor *t, int n,
                      const char *const *mk, const char *const *mv, int nmeta, char *err,
                      size_t errlen)
{
	if (n < 0 || nmeta < 0 || (n && !t) || (nmeta && (!mk || !mv)))
		return rt_fail(err, errlen, path,
		               "invalid arguments (n = %d, nmeta = %d)", n, nmeta);
	uint64_t total = 0, bytes = 0;
	for (int i = 0; i < n; i++) {
		if (check_save_tensor(path, &t[i], i, &bytes, err, errlen))
			return -1;
		if (total > (uint64_t)INT64_MAX - bytes)
			return rt_fail(err, errlen, path,
			               "the tensors are too large in total");
		total += bytes;
	}
	for (int i = 0; i < nmeta; i++)
		if (!mk[i] || !mv[i] || !valid_utf8(mk[i]) || !valid_utf8(mv[i]))
			return rt_fail(
			    err, errlen, path,
			    "__metadata__ entry %d: key and value must be valid UTF-8 "
			    "strings",
			    i);
	const char **s = rt_alloc(((size_t)(n > nmeta ? n : nmeta) + 1) * sizeof *s),
	           *dup;
	if (!s)
		return rt_fail(err, errlen, path, "out of memory");
	for (int i = 0; i < n; i++)
		s[i] = t[i].name;
	if ((dup = first_duplicate(s, n)))
		rt_fail(err, errlen, path, "tensor name '%s' appears twice", dup);
	for (int i = 0; !dup && i < nmeta; i++)
		s[i] = mk[i];
	if (!dup && (dup = first_duplicate(s, nmeta)))
		rt_fail(err, errlen, path, "__metadata__ key '%s' appears twice", dup);
	rt_free(s);
	return dup ? -1 : 0;
}

/* The header's JSON, with consecutive offsets in the given order, padded with spaces
 * so that 8 + its length is a multiple of 8. */
static void put_header(Buf *b, const rt_st_tensor *t, int n, const char *const *mk,
                       const char *const *mv, int nmeta)
{
	put(b, "{", 1);
	if (nmeta) {
		puts_(b, "\"__metadata__\":{");
		for (int i = 0; i < nmeta; i++) {
			puts_(b, i ? "," : "");
			put_json_string(b, mk[i]);
			put(b, ":", 1);
			put_json_string(b, mv[i]);
		}
		puts_(b, n ? "}," : "}");
	}
	uint64_t at = 0;
	for (int i = 0; i < n; i++) {
		puts_(b, i ? "," : "");
		put_json_string(b, t[i].name);
		puts_(b, ":{\"dtype\":\"");
		puts_(b, dtypes[t[i].dtype].name);
		puts_(b, "\",\"shape\":[");
		for (int d = 0; d < t[i].rank; d++) {
			puts_(b, d ? "," : "");
			put_u64(b, (uint64_t)t[i].shape[d]);
		}
		puts_(b, "],\"data_offsets\":[");
		put_u64(b, at);
		put(b, ",", 1);
		at += t[i].nbytes;
		put_u64(b, at);
		puts_(b, "]}");
	}
	put(b, "}", 1);
	while (!b->oom && (8 + b->n) % 8) /* put does nothing once out of memory */
		put(b, " ", 1);
}

int rt_st_save(const char *path, const rt_st_tensor *t, int n,
               const char *const *meta_keys, const char *const *meta_vals, int nmeta,
               char *err, size_t errlen)
{
	if (check_save(path, t, n, meta_keys, meta_vals, nmeta, err, errlen))
		return -1;
	Buf b = {0};
	put_header(&b, t, n, meta_keys, meta_vals, nmeta);
	int np = 0, rc = -1;
	const void **parts = rt_alloc(((size_t)n + 2) * sizeof *parts);
	size_t *sizes = rt_alloc(((size_t)n + 2) * sizeof *sizes);
	unsigned char len8[8];
	if (b.oom || !parts || !sizes)
		rt_fail(err, errlen, path, "out of memory");
	else if (b.n > HEADER_LIMIT)
		rt_fail(err, errlen, path,
		        "the header would be %zu bytes, over the 100 MB limit", b.n);
	else {
		for (int i = 0; i < 8; i++)
			len8[i] = (unsigned char)((uint64_t)b.n >> 8 * i);
		parts[np] = len8;
		sizes[np++] = 8;
		parts[np] = b.s;
		sizes[np++] = b.n;
		for (int i = 0; i < n; i++) {
			parts[np] = t[i].data;
			sizes[np++] = t[i].nbytes;
		}
		rc = rt_write_atomic(path, parts, sizes, np, err, errlen);
	}
	rt_free(parts);
	rt_free(sizes);
	rt_free(b.s);
	return rc;
}
