/* Datasets: IDX files (the MNIST family's format) and the per-batch helpers the training
 * loop needs. An IDX file is a 4-byte magic (0, 0, element type, number of dims), the
 * dims as big-endian uint32, then the elements in row-major order. A file that starts
 * with gzip's magic is inflated with zlib as it is read (zlib allocating through the
 * runtime's allocator); any other is read as it is. Everything the header declares is
 * checked before it is trusted: the magic, the rank, each dim, the product (for
 * overflow) and, before the output is allocated, the data size against the file: a
 * plain file's length is known from fstat, a gzipped one's is not, so its declared size
 * is capped at 2 GiB, its output grows as the data is inflated and the count actually
 * decompressed is checked afterwards. Bytes past the declared data are an error too. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "descent/runtime.h"
#include "mem.h"

#define GZ_LIMIT ((int64_t)1 << 31) /* the most data a gzipped file may declare */
#define CHUNK 65536
#define GROW_FROM ((int64_t)1 << 20) /* elements allocated at first for gzipped data */

/* The file's bytes, inflated when it starts with gzip's magic: member after member, as
 * gzip -d reads concatenated files; bytes after the last member that do not begin
 * another one are ignored, as zlib's gzread does. zlib allocates through rt_alloc. */
typedef struct Src {
	FILE *fp;
	int gz;          /* gzip members, else the bytes as they are */
	int zinit;       /* z needs inflateEnd */
	int between;     /* a member ended: another may follow */
	int done;        /* no more data */
	const char *msg; /* why the last read failed */
	z_stream z;      /* next_in/avail_in: the unread part of in, in both modes */
	unsigned char in[CHUNK];
} Src;

static voidpf zalloc(voidpf ud, uInt items, uInt size)
{
	(void)ud;
	if (size && items > SIZE_MAX / size)
		return Z_NULL;
	return rt_alloc((size_t)items * size);
}

static void zfree(voidpf ud, voidpf p)
{
	(void)ud;
	rt_free(p);
}

/* Appends what the file has to the unread input (up to the buffer's end); 1 if there
 * is unread input now, 0 at the end of the file, -1 on a read error. */
static int refill(Src *s)
{
	if (s->z.avail_in && s->z.next_in != s->in)
		memmove(s->in, s->z.next_in, s->z.avail_in);
	s->z.next_in = s->in;
	size_t k = fread(s->in + s->z.avail_in, 1, CHUNK - s->z.avail_in, s->fp);
	if (k == 0 && ferror(s->fp)) {
		s->msg = strerror(errno);
		return -1;
	}
	s->z.avail_in += (uInt)k;
	return s->z.avail_in > 0;
}

/* Opens the source on fp; 0, or -1 with s->msg. */
static int src_open(Src *s, FILE *fp)
{
	s->fp = fp;
	s->z.zalloc = zalloc;
	s->z.zfree = zfree;
	if (refill(s) < 0)
		return -1;
	s->gz = s->z.avail_in >= 2 && s->in[0] == 0x1f && s->in[1] == 0x8b;
	if (!s->gz)
		return 0;
	int rc = inflateInit2(&s->z, 15 + 16); /* gzip only */
	if (rc != Z_OK) {
		s->msg = rc == Z_MEM_ERROR ? "out of memory" : "cannot start zlib";
		return -1;
	}
	s->zinit = 1;
	return 0;
}

static void src_close(Src *s)
{
	if (s->zinit)
		inflateEnd(&s->z);
	fclose(s->fp);
}

/* Reads up to n bytes; returns how many were read (fewer at the end of the data, or
 * where a gzip stream is cut short), -1 on an error (s->msg). */
static int64_t read_upto(Src *s, unsigned char *buf, int64_t n)
{
	int64_t got = 0;
	while (got < n && !s->done) {
		int r = s->z.avail_in ? 1 : refill(s);
		if (r < 0)
			return -1;
		if (r == 0) {
			if (s->gz && !s->between) { /* inside a member */
				s->msg = "the gzip data is cut short (a truncated file?)";
				return -1;
			}
			s->done = 1;
			break;
		}
		uInt want = n - got < CHUNK ? (uInt)(n - got) : CHUNK;
		if (!s->gz) {
			uInt k = s->z.avail_in < want ? s->z.avail_in : want;
			memcpy(buf + got, s->z.next_in, k);
			s->z.next_in += k;
			s->z.avail_in -= k;
			got += k;
			continue;
		}
		if (s->between) {
			if (s->z.avail_in < 2 && refill(s) < 0)
				return -1;
			if (s->z.avail_in < 2 || s->z.next_in[0] != 0x1f ||
			    s->z.next_in[1] != 0x8b) {
				s->done = 1;
				break;
			}
			inflateReset(&s->z);
			s->between = 0;
		}
		s->z.next_out = buf + got;
		s->z.avail_out = want;
		int rc = inflate(&s->z, Z_NO_FLUSH);
		got = s->z.next_out - buf;
		if (rc == Z_STREAM_END)
			s->between = 1;
		else if (rc == Z_MEM_ERROR) {
			s->msg = "out of memory";
			return -1;
		} else if (rc != Z_OK && rc != Z_BUF_ERROR) {
			s->msg = s->z.msg ? s->z.msg : "corrupt gzip data";
			return -1;
		}
	}
	return got;
}

static int read_error(Src *s, char *err, size_t errlen, const char *path)
{
	return rt_fail(err, errlen, path, "read error: %s", s->msg);
}

/* The header: fills dims and *total (product of dims); 0, or -1 with a message. */
static int read_header(Src *g, const char *path, int as_labels, int *ndim, int64_t *dims,
                       int64_t *total, char *err, size_t errlen)
{
	unsigned char h[4 * RT_MAXRANK];
	int64_t got = read_upto(g, h, 4);
	if (got < 0)
		return read_error(g, err, errlen, path);
	if (got < 4)
		return rt_fail(err, errlen, path,
		               "not an IDX file (only %lld bytes long)", (long long)got);
	if (h[0] != 0 || h[1] != 0)
		return rt_fail(err, errlen, path,
		               "not an IDX file (bad magic %02x %02x %02x %02x)", h[0],
		               h[1], h[2], h[3]);
	if (h[2] != 0x08)
		return rt_fail(
		    err, errlen, path,
		    "IDX element type 0x%02x is not supported (only 0x08, unsigned byte)",
		    h[2]);
	*ndim = h[3];
	if (*ndim < 1 || *ndim > RT_MAXRANK)
		return rt_fail(err, errlen, path,
		               "IDX file has %d dimensions (must be 1 to %d)", *ndim,
		               RT_MAXRANK);
	if (as_labels && *ndim != 1)
		return rt_fail(
		    err, errlen, path,
		    "labels must be a 1-dimensional IDX file, this one has %d dimensions",
		    *ndim);
	got = read_upto(g, h, 4 * *ndim);
	if (got < 0)
		return read_error(g, err, errlen, path);
	if (got < 4 * *ndim)
		return rt_fail(err, errlen, path,
		               "truncated: header declares %d dimensions but ends after "
		               "%lld of them",
		               *ndim, (long long)got / 4);
	*total = 1;
	for (int i = 0; i < *ndim; i++) {
		const unsigned char *b = h + 4 * i;
		dims[i] =
		    (int64_t)b[0] << 24 | (int64_t)b[1] << 16 | (int64_t)b[2] << 8 | b[3];
		if (dims[i] == 0)
			return rt_fail(err, errlen, path, "dimension %d of %d is 0",
			               i + 1, *ndim);
		if (*total > INT64_MAX / 4 / dims[i])
			return rt_fail(err, errlen, path,
			               "declared size overflows (dimension %d is %lld)",
			               i + 1, (long long)dims[i]);
		*total *= dims[i];
	}
	return 0;
}

/* Decompresses the data into t->data, converting each byte; t->data has room for cap
 * elements and grows (to total at most) as data arrives. */
static int read_data(Src *g, const char *path, double scale, rt_tensor *t, int64_t total,
                     int64_t cap, char *err, size_t errlen)
{
	unsigned char buf[CHUNK];
	int64_t pos = 0;
	while (pos < total) {
		int64_t k = read_upto(g, buf, total - pos < CHUNK ? total - pos : CHUNK);
		if (k < 0)
			return read_error(g, err, errlen, path);
		if (k == 0)
			break;
		if (pos + k >
		    cap) { /* pos <= cap and k <= CHUNK <= cap: doubling is enough */
			int64_t c = cap > total / 2 ? total : 2 * cap;
			void *q = rt_realloc(t->data, (size_t)c * 4);
			if (!q)
				return rt_fail(err, errlen, path,
				               "out of memory (%lld bytes)",
				               (long long)c * 4);
			t->data = q;
			cap = c;
		}
		if (t->dtype == RT_I32) {
			int32_t *d = (int32_t *)t->data + pos;
			for (int64_t i = 0; i < k; i++)
				d[i] = buf[i];
		} else {
			float *d = (float *)t->data + pos;
			for (int64_t i = 0; i < k; i++)
				d[i] = (float)(buf[i] * scale);
		}
		pos += k;
	}
	if (pos < total)
		return rt_fail(err, errlen, path,
		               "truncated: expected %lld bytes of data, found %lld",
		               (long long)total, (long long)pos);
	int64_t extra = 0, k;
	while ((k = read_upto(g, buf, CHUNK)) > 0)
		extra += k;
	if (k < 0)
		return read_error(g, err, errlen, path);
	if (extra)
		return rt_fail(
		    err, errlen, path,
		    "%lld bytes of trailing data after the %lld bytes declared",
		    (long long)extra, (long long)total);
	return 0;
}

int rt_idx_load(const char *path, double scale, int as_labels, rt_tensor *out, char *err,
                size_t errlen)
{
	if (!path || !out)
		return rt_error(err, errlen, "rt_idx_load: %s is NULL",
		                !path ? "the path" : "out");
	memset(out, 0, sizeof *out);
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return rt_fail(err, errlen, path, "cannot open: %s", strerror(errno));
	struct stat st;
	int regular = fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode);
	Src *g = rt_alloc(sizeof *g);
	if (!g) {
		fclose(fp);
		return rt_fail(err, errlen, path, "cannot open: out of memory");
	}
	if (src_open(g, fp)) {
		rt_fail(err, errlen, path, "%s: %s", g->gz ? "cannot open" : "read error",
		        g->msg);
		src_close(g);
		rt_free(g);
		return -1;
	}
	int ndim = 0, rc = -1;
	int64_t dims[RT_MAXRANK] = {0}, total = 0;
	if (read_header(g, path, as_labels, &ndim, dims, &total, err, errlen))
		goto done;
	if (!g->gz && regular) {
		int64_t have = (int64_t)st.st_size - (4 + 4 * ndim);
		if (have < total) {
			rt_fail(err, errlen, path,
			        "truncated: expected %lld bytes of data, found %lld",
			        (long long)total, (long long)have);
			goto done;
		}
		if (have > total) {
			rt_fail(
			    err, errlen, path,
			    "%lld bytes of trailing data after the %lld bytes declared",
			    (long long)(have - total), (long long)total);
			goto done;
		}
	} else if (total > GZ_LIMIT) {
		rt_fail(err, errlen, path,
		        "declares %lld bytes of data, more than the 2 GiB limit for "
		        "compressed files",
		        (long long)total);
		goto done;
	}
	if ((uint64_t)total > SIZE_MAX / 4) {
		rt_fail(err, errlen, path,
		        "declares %lld bytes of data, too many for this machine",
		        (long long)total);
		goto done;
	}
	out->dtype = as_labels ? RT_I32 : RT_F32;
	out->n = dims[0];
	out->rank = ndim - 1;
	for (int i = 1; i < ndim; i++)
		out->dims[i - 1] = dims[i];
	out->stride = total / dims[0];
	/* a gzipped file's data size is only declared: the output grows with what really
	 * arrives, so that a small file declaring gigabytes cannot take them */
	int64_t cap = g->gz && total > GROW_FROM ? GROW_FROM : total;
	out->data = rt_alloc((size_t)cap * 4);
	if (!out->data) {
		rt_fail(err, errlen, path, "out of memory (%lld bytes)",
		        (long long)cap * 4);
		goto done;
	}
	rc = read_data(g, path, scale, out, total, cap, err, errlen);
done:
	src_close(g);
	rt_free(g);
	if (rc)
		rt_tensor_free(out);
	return rc;
}

void rt_tensor_free(rt_tensor *t)
{
	if (!t)
		return;
	rt_free(t->data);
	memset(t, 0, sizeof *t);
}

/* rows [lo, hi) of a gather: a[0] the source, a[1] the indices, a[2] the
 * destination, a[3] the row size in bytes */
static void gather_rows(void *const *a, int64_t lo, int64_t hi)
{
	size_t row = *(const size_t *)a[3];
	const int64_t *idx = a[1];
	for (int64_t i = lo; i < hi; i++)
		memcpy((char *)a[2] + (size_t)i * row,
		       (const char *)a[0] + (size_t)idx[i] * row, row);
}

void rt_gather(const rt_tensor *src, const int64_t *idx, int64_t count, int64_t batch,
               void *dst)
{
	/* both dtypes are 4 bytes wide */
	size_t row = (size_t)src->stride * 4;
	if (count > batch)
		count = batch;
	char *d = dst;
	/* random rows of a large data set: mostly waiting for memory, which threads
	 * overlap */
	void *a[4] = {src->data, (void *)idx, dst, &row};
	rt_parallel_for(gather_rows, a, count, (int64_t)(65536 / (row + 1)) + 1);
	if (batch > count)
		memset(d + (size_t)count * row, 0, (size_t)(batch - count) * row);
}

/* A prefetch every 256 bytes of each row, not every 64-byte line: the hardware's
 * prefetchers follow a row once it is started, and a prefetch a line put 2.6% of a
 * one-thread Fashion MLP training run in this loop itself (perf). */
void rt_prefetch_rows(const rt_tensor *src, const int64_t *idx, int64_t count)
{
	size_t row = (size_t)src->stride * 4;
	for (int64_t i = 0; i < count; i++)
		for (size_t b = 0; b < row; b += 256)
			__builtin_prefetch(
			    (const char *)src->data + (size_t)idx[i] * row + b, 0, 1);
}

void rt_argmax_rows(const float *x, int64_t rows, int64_t n, int32_t *out)
{
	for (int64_t r = 0; r < rows; r++) {
		const float *v = x + r * n;
		int64_t best = 0;
		for (int64_t j = 1; j < n && v[best] == v[best]; j++)
			if (v[j] > v[best] || v[j] != v[j])
				best = j;
		out[r] = (int32_t)best;
	}
}
