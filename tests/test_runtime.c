/* Tests of the runtime library on its own, without the compiler: the random number
 * generator, parameter initialisation, IDX loading (good files and a table of broken
 * ones, written plain and gzipped into a temporary directory), the batch helpers, and
 * the training loop driven by a hand-written rt_program whose entry points are plain C
 * functions for a two-weight linear model. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "descent/runtime.h"
#include "tests.h"

/* ---- random numbers ---- */

static void test_rng_same_seed_same_stream(void)
{
	rt_rng a, b, c;
	rt_rng_seed(&a, 42);
	rt_rng_seed(&b, 42);
	rt_rng_seed(&c, 43);
	int differ = 0;
	for (int i = 0; i < 1000; i++) {
		uint64_t x = rt_rng_next(&a), z = rt_rng_next(&c);
		CU_ASSERT_EQUAL(x, rt_rng_next(&b));
		differ += x != z;
	}
	CU_ASSERT(differ > 990);
	/* seed 0 must not give the all-zero state, which xoshiro never leaves */
	rt_rng_seed(&a, 0);
	CU_ASSERT(a.s[0] | a.s[1] | a.s[2] | a.s[3]);
	CU_ASSERT(rt_rng_next(&a) != 0 || rt_rng_next(&a) != 0);
}

static void test_rng_uniform_in_unit_interval(void)
{
	rt_rng r;
	rt_rng_seed(&r, 7);
	double sum = 0, lo = 1, hi = 0;
	int n = 200000;
	for (int i = 0; i < n; i++) {
		double u = rt_rng_uniform(&r);
		CU_ASSERT_FATAL(u >= 0.0 && u < 1.0);
		sum += u;
		lo = u < lo ? u : lo;
		hi = u > hi ? u : hi;
	}
	CU_ASSERT(fabs(sum / n - 0.5) < 0.005);
	CU_ASSERT(lo < 1e-4 && hi > 1 - 1e-4);
}

static void test_rng_below_is_uniform(void)
{
	rt_rng r;
	rt_rng_seed(&r, 1);
	int count[10] = {0};
	for (int i = 0; i < 100000; i++) {
		uint64_t k = rt_rng_below(&r, 10);
		CU_ASSERT_FATAL(k < 10);
		count[k]++;
	}
	/* expected 10000 each, standard deviation ~95 */
	for (int k = 0; k < 10; k++)
		CU_ASSERT(abs(count[k] - 10000) < 600);
	CU_ASSERT_EQUAL(rt_rng_below(&r, 1), 0);
	CU_ASSERT_EQUAL(rt_rng_below(&r, 0), 0);
	/* a bound just over 2^63 rejects almost half the raw values: still in range */
	uint64_t big = (1ull << 63) + 1;
	for (int i = 0; i < 1000; i++)
		CU_ASSERT(rt_rng_below(&r, big) < big);
}

static void test_shuffle_is_a_deterministic_permutation(void)
{
	enum { N = 1000 };
	int64_t a[N], b[N];
	int seen[N] = {0};
	for (int i = 0; i < N; i++)
		a[i] = b[i] = i;
	rt_rng r1, r2;
	rt_rng_seed(&r1, 5);
	rt_rng_seed(&r2, 5);
	rt_shuffle(&r1, a, N);
	rt_shuffle(&r2, b, N);
	int fixed = 0;
	for (int i = 0; i < N; i++) {
		CU_ASSERT_FATAL(a[i] >= 0 && a[i] < N);
		seen[a[i]]++;
		fixed += a[i] == i;
		CU_ASSERT_EQUAL(a[i], b[i]);
	}
	for (int i = 0; i < N; i++)
		CU_ASSERT_EQUAL(seen[i], 1);
	CU_ASSERT(fixed < 10); /* about 1 expected */
	int64_t one = 9;
	rt_shuffle(&r1, &one, 1);
	rt_shuffle(&r1, NULL, 0);
	CU_ASSERT_EQUAL(one, 9);
}

/* ---- parameter initialisation ---- */

#define NINIT 5584
static const rt_param init_params[] = {
    {"a.weight", 2, {50, 100}, 0, 5000, RT_INIT_KAIMING_UNIFORM, 0, 100, 50, 1},
    {"a.bias", 1, {50}, 5000, 50, RT_INIT_ZEROS, 0, 100, 50, 1},
    /* floats 5050..5060 belong to no parameter */
    {"b.weight", 2, {10, 50}, 5060, 500, RT_INIT_XAVIER_UNIFORM, 0, 50, 10, 1},
    {"b.bias", 1, {10}, 5560, 10, RT_INIT_TORCH_LINEAR, 0, 50, 10, 1},
    {"norm.weight", 1, {10}, 5570, 10, RT_INIT_ONES, 0, 10, 10, 0},
};
static const rt_program init_prog = {
    .nparams = NINIT, .nparam = 5, .params = init_params};

static void init_with_seed(float *w, uint64_t seed)
{
	rt_rng r;
	rt_rng_seed(&r, seed);
	for (int i = 0; i < NINIT; i++)
		w[i] = 7.0f;
	rt_init_params(&init_prog, w, &r);
}

/* Every value within [-b, b], reaching near both ends, with mean ~0 and variance ~b^2/3.
 */
static void check_uniform(const float *w, int64_t n, double b)
{
	double lo = 0, hi = 0, sum = 0, sq = 0;
	for (int64_t i = 0; i < n; i++) {
		CU_ASSERT_FATAL(fabsf(w[i]) <= (float)b);
		lo = w[i] < lo ? w[i] : lo;
		hi = w[i] > hi ? w[i] : hi;
		sum += w[i];
		sq += (double)w[i] * w[i];
	}
	CU_ASSERT(lo < -0.9 * b && hi > 0.9 * b);
	CU_ASSERT(fabs(sum / n) < 0.1 * b);
	CU_ASSERT(fabs(sq / n / (b * b / 3) - 1) < 0.15);
}

static void test_init_params_bounds_per_scheme(void)
{
	static float w[NINIT];
	init_with_seed(w, 3);
	check_uniform(w, 5000, sqrt(6.0 / 100));
	for (int i = 5000; i < 5050; i++)
		CU_ASSERT_EQUAL(w[i], 0.0f);
	for (int i = 5050; i < 5060; i++)
		CU_ASSERT_EQUAL(w[i], 7.0f);
	check_uniform(w + 5060, 500, sqrt(6.0 / 60));
	for (int i = 5560; i < 5570; i++)
		CU_ASSERT(fabsf(w[i]) <= (float)(1 / sqrt(50.0)) && w[i] != 0.0f);
	for (int i = 5570; i < 5580; i++)
		CU_ASSERT_EQUAL(w[i], 1.0f);
	for (int i = 5580; i < NINIT; i++)
		CU_ASSERT_EQUAL(w[i], 7.0f);
}

static void test_init_params_deterministic_per_seed(void)
{
	static float a[NINIT], b[NINIT], c[NINIT];
	init_with_seed(a, 11);
	init_with_seed(b, 11);
	init_with_seed(c, 12);
	CU_ASSERT(memcmp(a, b, sizeof a) == 0);
	CU_ASSERT(memcmp(a, c, sizeof a) != 0);
}

/* RT_INIT_CONSTANT fills with value; RT_INIT_NORMAL draws N(0, value^2). */
static void test_init_params_constant_and_normal_use_value(void)
{
	enum { N = 10004 };
	static const rt_param ps[] = {
	    {"x", 1, {4}, 0, 4, RT_INIT_CONSTANT, -1.5, 1, 1, 0},
	    {"emb.weight", 2, {100, 100}, 4, 10000, RT_INIT_NORMAL, 0.5, 100, 100, 1},
	};
	const rt_program p = {.nparams = N, .nparam = 2, .params = ps};
	static float w[N];
	rt_rng r;
	rt_rng_seed(&r, 5);
	rt_init_params(&p, w, &r);
	for (int i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(w[i], -1.5f);
	double sum = 0, sq = 0;
	for (int i = 4; i < N; i++) {
		CU_ASSERT_FATAL(isfinite(w[i]));
		sum += w[i];
		sq += (double)w[i] * w[i];
	}
	double mean = sum / (N - 4), var = sq / (N - 4) - mean * mean;
	CU_ASSERT(fabs(mean) < 0.03);
	CU_ASSERT(fabs(sqrt(var) / 0.5 - 1) < 0.05);
}

/* ---- IDX files ---- */

static char tmpdir[64];
static char tmpfiles[32][128];
static int ntmp;

static const char *tmp_path(const char *name)
{
	if (!tmpdir[0]) {
		strcpy(tmpdir, "/tmp/descent_rt_XXXXXX");
		CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(tmpdir));
	}
	CU_ASSERT_FATAL(ntmp < 32);
	char *p = tmpfiles[ntmp++];
	snprintf(p, sizeof tmpfiles[0], "%s/%s", tmpdir, name);
	return p;
}

static void tmp_cleanup(void)
{
	for (int i = 0; i < ntmp; i++)
		unlink(tmpfiles[i]);
	ntmp = 0;
	if (tmpdir[0])
		rmdir(tmpdir);
	tmpdir[0] = 0;
}

static void write_file(const char *path, int gz, const unsigned char *b, size_t n)
{
	if (gz) {
		gzFile g = gzopen(path, "wb");
		CU_ASSERT_PTR_NOT_NULL_FATAL(g);
		CU_ASSERT_EQUAL(n ? gzwrite(g, b, (unsigned)n) : 0, (int)n);
		CU_ASSERT_EQUAL(gzclose(g), Z_OK);
	} else {
		FILE *f = fopen(path, "wb");
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		CU_ASSERT_EQUAL(fwrite(b, 1, n, f), n);
		fclose(f);
	}
}

/* An IDX file: the 4-byte magic, ndim big-endian dims, then n data bytes 1, 2, 3, ... */
static size_t make_idx(unsigned char *b, int type, int ndim, const uint32_t *dims,
                       size_t ndata)
{
	size_t k = 0;
	b[k++] = 0;
	b[k++] = 0;
	b[k++] = (unsigned char)type;
	b[k++] = (unsigned char)ndim;
	for (int i = 0; i < ndim; i++) {
		b[k++] = (unsigned char)(dims[i] >> 24);
		b[k++] = (unsigned char)(dims[i] >> 16);
		b[k++] = (unsigned char)(dims[i] >> 8);
		b[k++] = (unsigned char)dims[i];
	}
	for (size_t i = 0; i < ndata; i++)
		b[k++] = (unsigned char)(i + 1);
	return k;
}

static void test_idx_loads_images_plain_and_gzipped(void)
{
	unsigned char b[64];
	uint32_t dims[] = {3, 2, 2};
	size_t n = make_idx(b, 0x08, 3, dims, 12);
	for (int gz = 0; gz < 2; gz++) {
		const char *path = tmp_path(gz ? "img.gz" : "img");
		write_file(path, gz, b, n);
		rt_tensor t;
		char err[256] = "";
		CU_ASSERT_EQUAL_FATAL(rt_idx_load(path, 0.5, 0, &t, err, sizeof err), 0);
		CU_ASSERT_EQUAL(t.dtype, RT_F32);
		CU_ASSERT_EQUAL(t.n, 3);
		CU_ASSERT_EQUAL(t.rank, 2);
		CU_ASSERT(t.dims[0] == 2 && t.dims[1] == 2);
		CU_ASSERT_EQUAL(t.stride, 4);
		CU_ASSERT_EQUAL((uintptr_t)t.data % RT_ALIGN, 0);
		const float *v = t.data;
		for (int i = 0; i < 12; i++)
			CU_ASSERT_EQUAL(v[i], 0.5f * (float)(i + 1));
		rt_tensor_free(&t);
		CU_ASSERT_PTR_NULL(t.data);
	}
	tmp_cleanup();
}

static void test_idx_loads_labels_and_rank1_values(void)
{
	unsigned char b[64];
	uint32_t dims[] = {5};
	size_t n = make_idx(b, 0x08, 1, dims, 5);
	b[n - 1] = 255;
	const char *path = tmp_path("labels.gz");
	write_file(path, 1, b, n);
	rt_tensor t;
	char err[256] = "";
	CU_ASSERT_EQUAL_FATAL(rt_idx_load(path, 1.0, 1, &t, err, sizeof err), 0);
	CU_ASSERT_EQUAL(t.dtype, RT_I32);
	CU_ASSERT(t.n == 5 && t.rank == 0 && t.stride == 1);
	const int32_t *l = t.data;
	CU_ASSERT(l[0] == 1 && l[3] == 4 && l[4] == 255);
	rt_tensor_free(&t);
	/* the same file as values: float, one per example */
	CU_ASSERT_EQUAL_FATAL(rt_idx_load(path, 2.0, 0, &t, err, sizeof err), 0);
	CU_ASSERT(t.dtype == RT_F32 && t.n == 5 && t.rank == 0 && t.stride == 1);
	CU_ASSERT_EQUAL(((float *)t.data)[4], 510.0f);
	rt_tensor_free(&t);
	tmp_cleanup();
}

typedef struct BadIdx {
	const char *name;
	int gz, as_labels;
	int type, ndim;
	uint32_t dims[8];
	int64_t ndata;   /* data bytes written; -1: only 2 of the dims */
	const char *why; /* expected in the message */
} BadIdx;

static const BadIdx bad_idx[] = {
    {"truncated_plain",
     0,
     0,
     8,
     2,
     {2, 3},
     5,
     "truncated: expected 6 bytes of data, found 5"},
    {"truncated_gz",
     1,
     0,
     8,
     2,
     {2, 3},
     5,
     "truncated: expected 6 bytes of data, found 5"},
    {"trailing_plain", 0, 0, 8, 2, {2, 3}, 8, "2 bytes of trailing data"},
    {"trailing_gz", 1, 0, 8, 2, {2, 3}, 9, "3 bytes of trailing data"},
    {"ndim0", 0, 0, 8, 0, {0}, 4, "has 0 dimensions (must be 1 to 6)"},
    {"ndim7", 1, 0, 8, 7, {1, 1, 1, 1, 1, 1, 1}, 1, "has 7 dimensions"},
    {"zero_dim", 0, 0, 8, 2, {3, 0}, 0, "dimension 2 of 2 is 0"},
    {"type_f32", 0, 0, 0x0d, 1, {2}, 8, "element type 0x0d is not supported"},
    {"labels_2d", 0, 1, 8, 2, {2, 2}, 4, "labels must be a 1-dimensional IDX file"},
    {"huge_gz", 1, 0, 8, 3, {65535, 65535, 65535}, 10, "more than the 2 GiB limit"},
    {"huge_plain",
     0,
     0,
     8,
     3,
     {65535, 65535, 65535},
     10,
     "truncated: expected 281462092005375 bytes of data, found 10"},
    {"overflow",
     1,
     0,
     8,
     6,
     {~0u, ~0u, ~0u, ~0u, ~0u, ~0u},
     0,
     "declared size overflows"},
    {"short_header", 1, 0, 8, 3, {2, 2, 2}, -1, "header declares 3 dimensions"},
};

static void check_bad(const char *path, int as_labels, const char *why)
{
	rt_tensor t;
	char err[512] = "";
	int rc = rt_idx_load(path, 1.0, as_labels, &t, err, sizeof err);
	CU_ASSERT_EQUAL(rc, -1);
	CU_ASSERT_PTR_NULL(t.data);
	if (!strstr(err, why) || strncmp(err, path, strlen(path)) != 0) {
		printf("\n  %s: message \"%s\" lacks \"%s\" or the file name\n", path,
		       err, why);
		CU_FAIL("IDX error message");
	}
}

static void test_idx_rejects_bad_files(void)
{
	for (size_t i = 0; i < sizeof bad_idx / sizeof bad_idx[0]; i++) {
		const BadIdx *c = &bad_idx[i];
		unsigned char b[128];
		size_t n = make_idx(b, c->type, c->ndim, c->dims,
		                    c->ndata < 0 ? 0 : (size_t)c->ndata);
		if (c->ndata < 0)
			n = 4 + 8;
		const char *path = tmp_path(c->name);
		write_file(path, c->gz, b, n);
		check_bad(path, c->as_labels, c->why);
	}
	/* gzip's own magic inside a plain file, as when a .gz is compressed twice */
	const unsigned char magic[] = {0x1f, 0x8b, 0x08, 0x00, 1, 2, 3, 4};
	const char *path = tmp_path("twice.gz");
	write_file(path, 1, magic, sizeof magic);
	check_bad(path, 0, "not an IDX file (bad magic 1f 8b 08 00)");
	path = tmp_path("empty");
	write_file(path, 0, magic, 0);
	check_bad(path, 0, "not an IDX file (only 0 bytes long)");
	check_bad(tmp_path("missing"), 0, "cannot open: No such file");
	tmp_cleanup();
}

/* A gzip stream cut in the middle: said as one, not as a short file, nor a crash. */
static void test_idx_rejects_cut_gzip_stream(void)
{
	static unsigned char b[8 + 8 + 20000];
	uint32_t dims[] = {100, 200};
	size_t n = make_idx(b, 8, 2, dims, 20000);
	rt_rng r;
	rt_rng_seed(&r, 9);
	for (size_t i = 12; i < n; i++)
		b[i] = (unsigned char)rt_rng_next(&r); /* incompressible */
	const char *path = tmp_path("cut.gz");
	write_file(path, 1, b, n);
	FILE *f = fopen(path, "rb");
	static unsigned char z[40000];
	size_t zn = fread(z, 1, sizeof z, f);
	fclose(f);
	CU_ASSERT_FATAL(zn > 10000);
	write_file(path, 0, z, zn / 2);
	check_bad(path, 0, "the gzip data is cut short (a truncated file?)");
	tmp_cleanup();
}

static void test_idx_loads_fashion_mnist_test_set(void)
{
	const char *dir = "/usr/share/datasets/fashion-mnist";
	char ip[256], lp[256], err[512] = "";
	snprintf(ip, sizeof ip, "%s/t10k-images-idx3-ubyte.gz", dir);
	snprintf(lp, sizeof lp, "%s/t10k-labels-idx1-ubyte.gz", dir);
	if (access(lp, R_OK) || access(ip, R_OK))
		return; /* not on this machine */
	rt_tensor x, y;
	CU_ASSERT_EQUAL_FATAL(rt_idx_load(ip, 1.0 / 255, 0, &x, err, sizeof err), 0);
	CU_ASSERT_EQUAL_FATAL(rt_idx_load(lp, 1.0, 1, &y, err, sizeof err), 0);
	CU_ASSERT(x.dtype == RT_F32 && x.n == 10000 && x.rank == 2);
	CU_ASSERT(x.dims[0] == 28 && x.dims[1] == 28 && x.stride == 784);
	const float *v = x.data;
	float lo = 1, hi = 0;
	for (int64_t i = 0; i < x.n * x.stride; i++) {
		lo = v[i] < lo ? v[i] : lo;
		hi = v[i] > hi ? v[i] : hi;
	}
	CU_ASSERT(lo == 0.0f && hi == 1.0f);
	CU_ASSERT(y.dtype == RT_I32 && y.n == 10000 && y.rank == 0 && y.stride == 1);
	int count[10] = {0}, bad = 0;
	for (int64_t i = 0; i < y.n; i++) {
		int32_t l = ((int32_t *)y.data)[i];
		if (l < 0 || l > 9)
			bad++;
		else
			count[l]++;
	}
	CU_ASSERT_EQUAL(bad, 0);
	for (int k = 0; k < 10; k++)
		CU_ASSERT_EQUAL(count[k], 1000);
	rt_tensor_free(&x);
	rt_tensor_free(&y);
}

/* ---- batch helpers ---- */

static void test_gather_copies_rows_and_zeroes_padding(void)
{
	float data[5 * 3];
	for (int i = 0; i < 15; i++)
		data[i] = (float)i;
	rt_tensor src = {RT_F32, 5, 1, {3}, 3, data};
	int64_t idx[] = {4, 0, 2};
	float dst[4 * 3];
	for (int i = 0; i < 12; i++)
		dst[i] = -1;
	rt_gather(&src, idx, 2, 4, dst);
	const float want[12] = {12, 13, 14, 0, 1, 2, 0, 0, 0, 0, 0, 0};
	CU_ASSERT(memcmp(dst, want, sizeof want) == 0);

	int32_t lab[] = {10, 11, 12, 13, 14}, out[3] = {-1, -1, -1};
	rt_tensor ls = {RT_I32, 5, 0, {0}, 1, lab};
	rt_gather(&ls, idx, 3, 3, out);
	CU_ASSERT(out[0] == 14 && out[1] == 10 && out[2] == 12);
}

static void test_argmax_rows_first_of_ties(void)
{
	const float x[] = {0.1f, 0.7f, 0.2f, -3, -1, -2, 5, 5, 1, 0, 0, 9};
	int32_t out[4];
	rt_argmax_rows(x, 4, 3, out);
	CU_ASSERT(out[0] == 1 && out[1] == 1 && out[2] == 0 && out[3] == 2);
	/* a NaN is the largest, the first of them (torch.argmax, numpy.argmax) */
	const float y[] = {1, NAN, 9, NAN, 2, NAN, 3, 4, NAN};
	rt_argmax_rows(y, 3, 3, out);
	CU_ASSERT(out[0] == 1 && out[1] == 0 && out[2] == 2);
}

/* ---- the training loop, on a hand-written program ----
 * A linear model pred = w0 x0 + w1 x1, batch 2, with the compiled loss's convention:
 * weight_i is 1 for a real row and 0 for padding, and the loss is
 * sum_i weight_i (pred_i - y_i)^2 / sum_i weight_i, the mean over real rows.
 * train_step does SGD with hyper "lr" and logs what it was given. */

enum { B = 2 };
#define MAXLOG 64
static float log_w[MAXLOG][B], log_x[MAXLOG][B * 2];
static int nlog;

static double lin_loss(void *const *bufs, float *g)
{
	const float *w = bufs[RT_PARAMS], *x = bufs[RT_IO0], *y = bufs[RT_IO0 + 1];
	const float *wt = bufs[RT_IO0 + 2];
	double loss = 0, n = 0;
	g[0] = g[1] = 0;
	for (int i = 0; i < B; i++)
		n += wt[i];
	for (int i = 0; i < B; i++) {
		float e = w[0] * x[2 * i] + w[1] * x[2 * i + 1] - y[i];
		loss += wt[i] * e * e / n;
		g[0] += (float)(2 * wt[i] * e * x[2 * i] / n);
		g[1] += (float)(2 * wt[i] * e * x[2 * i + 1] / n);
	}
	return loss;
}

static int lin_train_step(void *const *bufs)
{
	float *w = bufs[RT_PARAMS], *g = bufs[RT_GRADS],
	      lr = ((float *)bufs[RT_HYPER])[0];
	if (nlog < MAXLOG) {
		memcpy(log_w[nlog], bufs[RT_IO0 + 2], sizeof log_w[0]);
		memcpy(log_x[nlog], bufs[RT_IO0], sizeof log_x[0]);
		nlog++;
	}
	*(float *)bufs[RT_IO0 + 3] = (float)lin_loss(bufs, g);
	w[0] -= lr * g[0];
	w[1] -= lr * g[1];
	return 0;
}

static int lin_evaluate(void *const *bufs)
{
	*(float *)bufs[RT_IO0 + 3] = (float)lin_loss(bufs, bufs[RT_GRADS]);
	return 0;
}

static const char *const lin_hypers[] = {"lr"};
static const rt_param lin_params[] = {
    {"w", 1, {2}, 0, 2, RT_INIT_TORCH_LINEAR, 0, 2, 1, 1},
};
static const rt_io lin_io[] = {
    {"x", RT_IO_INPUT, RT_F32, 2, {B, 2}, B * 2, 0},
    {"y", RT_IO_INPUT, RT_F32, 1, {B}, B, 0},
    {"weight", RT_IO_INPUT, RT_F32, 1, {B}, B, 0},
    {"loss", RT_IO_OUTPUT, RT_F32, 0, {0}, 1, 0},
};
static const rt_program lin_prog = {
    .batch = B,
    .nparams = 2,
    .nwork = 0,
    .nhyper = 1,
    .hyper_names = lin_hypers,
    .nparam = 1,
    .params = lin_params,
    .nio = 4,
    .io = lin_io,
    .io_x = 0,
    .io_y = 1,
    .io_weight = 2,
    .io_loss = 3,
    .io_output = -1,
    .evaluate = lin_evaluate,
    .train_step = lin_train_step,
};

/* n examples with x_i = (i + 1, (i % 3) - 1) / n, y = 2 x0 - x1 */
static void lin_data(int64_t n, rt_tensor *x, rt_tensor *y)
{
	static float xs[1000 * 2], ys[1000];
	for (int64_t i = 0; i < n; i++) {
		xs[2 * i] = (float)(i + 1) / (float)n;
		xs[2 * i + 1] = (float)(i % 3 - 1) / (float)n;
		ys[i] = 2 * xs[2 * i] - xs[2 * i + 1];
	}
	*x = (rt_tensor){RT_F32, n, 1, {2}, 2, xs};
	*y = (rt_tensor){RT_F32, n, 0, {0}, 1, ys};
}

static int ncb;
static int64_t cb_last_step, cb_nsteps;
static void progress(void *ud, int64_t step, int64_t nsteps, double loss)
{
	(void)loss;
	CU_ASSERT_PTR_EQUAL(ud, &ncb);
	ncb++;
	cb_last_step = step;
	cb_nsteps = nsteps;
}

/* rt_session_feed takes only the inputs besides x and y (and the weight): each
 * other slot, and one out of range, is refused with its number */
static void test_session_feed_refuses_other_slots(void)
{
	rt_session *s = rt_session_new(&lin_prog);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	rt_tensor x, y;
	lin_data(5, &x, &y);
	char err[256];
	const int bad[] = {0, 1, 2, 3, 4, -2};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err[0] = 0;
		CU_ASSERT_EQUAL(rt_session_feed(s, bad[i], &x, err, sizeof err), -1);
		CU_ASSERT_PTR_NOT_NULL(
		    strstr(err, "is not an input fed besides x and y"));
	}
	CU_ASSERT_EQUAL(s->feeds.n, 0);
	CU_ASSERT_EQUAL(rt_session_feed(s, -1, NULL, err, sizeof err), 0);
	rt_session_free(s);
}

static void test_train_epoch_pads_final_batch_with_zero_weight(void)
{
	rt_session *s = rt_session_new(&lin_prog);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_PTR_EQUAL(s->io, s->bufs + RT_IO0);
	rt_session_init(s, 1);
	CU_ASSERT_EQUAL(rt_set_hyper(s, "lr", 0.1f), 0);
	CU_ASSERT_EQUAL(rt_set_hyper(s, "momentum", 0.9f), -1);
	rt_tensor x, y;
	lin_data(5, &x, &y);
	rt_rng rng;
	rt_rng_seed(&rng, 2);
	rt_metrics m;
	char err[256] = "";
	nlog = ncb = 0;
	CU_ASSERT_EQUAL_FATAL(
	    rt_train_epoch(s, &x, &y, 0, &rng, progress, &ncb, &m, err, sizeof err), 0);
	CU_ASSERT_EQUAL(nlog, 3);
	CU_ASSERT(m.steps == 3 && m.examples == 5 && s->step == 3);
	CU_ASSERT(ncb == 3 && cb_last_step == 3 && cb_nsteps == 3);
	CU_ASSERT(isfinite(m.loss) && m.loss > 0 && isnan(m.accuracy) && m.seconds >= 0);
	for (int k = 0; k < 2; k++)
		CU_ASSERT(log_w[k][0] == 1.0f && log_w[k][1] == 1.0f);
	CU_ASSERT(log_w[2][0] == 1.0f && log_w[2][1] == 0.0f);
	CU_ASSERT(log_x[2][2] == 0.0f && log_x[2][3] == 0.0f);
	/* every example once: the x0 values seen are 1/5 .. 5/5 in some order */
	int seen[5] = {0};
	for (int k = 0; k < 3; k++)
		for (int i = 0; i < (k < 2 ? 2 : 1); i++)
			seen[(int)lrintf(log_x[k][2 * i] * 5) - 1]++;
	for (int i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(seen[i], 1);

	/* limit: only the first 3 examples, 2 steps, the second half-padded */
	nlog = 0;
	CU_ASSERT_EQUAL(
	    rt_train_epoch(s, &x, &y, 3, &rng, NULL, NULL, &m, err, sizeof err), 0);
	CU_ASSERT(nlog == 2 && m.steps == 2 && m.examples == 3 && s->step == 5);
	CU_ASSERT(log_w[1][0] == 1.0f && log_w[1][1] == 0.0f);
	for (int k = 0; k < 2; k++)
		CU_ASSERT(log_x[k][0] <= 3.0f / 5 && log_x[k][2] <= 3.0f / 5);
	rt_session_free(s);
}

/* Batches of 2, 2 and a padded 1: with 1/0 weights each batch's loss is the mean over
 * its real rows, and the epoch's loss the exact mean over the 5 examples. */
static void test_evaluate_loss_is_the_mean_over_examples(void)
{
	rt_session *s = rt_session_new(&lin_prog);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	rt_session_init(s, 1);
	s->params[0] = 1.5f;
	s->params[1] = -0.5f;
	rt_tensor x, y;
	lin_data(5, &x, &y);
	const float *xs = x.data, *ys = y.data;
	double want = 0;
	for (int i = 0; i < 5; i++) {
		double e = 1.5 * xs[2 * i] - 0.5 * xs[2 * i + 1] - ys[i];
		want += e * e / 5;
	}
	rt_metrics m;
	char err[256] = "";
	CU_ASSERT_EQUAL_FATAL(rt_evaluate(s, &x, &y, &m, err, sizeof err), 0);
	CU_ASSERT(m.steps == 3 && m.examples == 5);
	CU_ASSERT_DOUBLE_EQUAL(m.loss, want, 1e-6 * want);
	rt_session_free(s);
}

static void test_train_epoch_loss_decreases(void)
{
	rt_session *s = rt_session_new(&lin_prog);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	rt_session_init(s, 4);
	rt_set_hyper(s, "lr", 0.5f);
	rt_tensor x, y;
	lin_data(101, &x, &y);
	rt_rng rng;
	rt_rng_seed(&rng, 4);
	rt_metrics m0, m, e0, e;
	char err[256] = "";
	CU_ASSERT_EQUAL_FATAL(rt_evaluate(s, &x, &y, &e0, err, sizeof err), 0);
	CU_ASSERT(e0.steps == 51 && e0.examples == 101 && isnan(e0.accuracy));
	CU_ASSERT_EQUAL(s->step, 0);
	CU_ASSERT_EQUAL(
	    rt_train_epoch(s, &x, &y, 0, &rng, NULL, NULL, &m0, err, sizeof err), 0);
	for (int k = 0; k < 30; k++)
		CU_ASSERT_EQUAL(
		    rt_train_epoch(s, &x, &y, 0, &rng, NULL, NULL, &m, err, sizeof err),
		    0);
	CU_ASSERT(m.loss < 0.1 * m0.loss);
	CU_ASSERT_EQUAL_FATAL(rt_evaluate(s, &x, &y, &e, err, sizeof err), 0);
	CU_ASSERT(e.loss < 0.01 * e0.loss);
	CU_ASSERT(fabsf(s->params[0] - 2) < 0.2f);
	rt_session_free(s);
}

static void test_train_epoch_stops_on_nan_loss(void)
{
	rt_session *s = rt_session_new(&lin_prog);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	rt_session_init(s, 1);
	rt_set_hyper(s, "lr", NAN); /* the first update makes w nan */
	rt_tensor x, y;
	lin_data(5, &x, &y);
	rt_metrics m;
	char err[256] = "";
	nlog = 0;
	CU_ASSERT_EQUAL(
	    rt_train_epoch(s, &x, &y, 0, NULL, NULL, NULL, &m, err, sizeof err), -1);
	CU_ASSERT_STRING_EQUAL(err, "loss is nan at step 2 of 3 in the epoch");
	CU_ASSERT(nlog == 2 && m.steps == 2 && m.examples == 2);
	rt_session_free(s);
}

static void test_train_epoch_rejects_shape_mismatch(void)
{
	rt_session *s = rt_session_new(&lin_prog);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	rt_session_init(s, 1);
	float data[4 * 3] = {0}, lab[4] = {0};
	rt_tensor x = {RT_F32, 4, 1, {3}, 3, data}, y = {RT_F32, 4, 0, {0}, 1, lab};
	char err[256] = "";
	CU_ASSERT_EQUAL(
	    rt_train_epoch(s, &x, &y, 0, NULL, NULL, NULL, NULL, err, sizeof err), -1);
	CU_ASSERT_STRING_EQUAL(
	    err,
	    "x holds examples of shape [3] f32, the program's input 'x' takes [2] f32");
	x.stride = 2;
	x.dims[0] = 2;
	y.dtype = RT_I32;
	CU_ASSERT_EQUAL(rt_evaluate(s, &x, &y, NULL, err, sizeof err), -1);
	CU_ASSERT_STRING_EQUAL(
	    err,
	    "y holds examples of shape [] i32, the program's input 'y' takes [] f32");
	y.dtype = RT_F32;
	y.n = 3;
	CU_ASSERT_EQUAL(rt_evaluate(s, &x, &y, NULL, err, sizeof err), -1);
	CU_ASSERT_STRING_EQUAL(err, "x has 4 examples but y has 3");
	rt_session_free(s);
}

/* A classifier whose scores are its input: accuracy = how often argmax(x) == label. */
static int id_evaluate(void *const *bufs)
{
	memcpy(bufs[RT_IO0 + 4], bufs[RT_IO0], 3 * 3 * sizeof(float));
	*(float *)bufs[RT_IO0 + 3] = 1.0f;
	return 0;
}

/* The runtime's entry points take NULL for any pointer they need and say which, where
 * an ahead-of-time program has nothing else to check them (they crashed). */
static void test_runtime_refuses_null_pointers(void)
{
	char err[256];
	rt_tensor t = {0};
	rt_st_file f = {0};
	rt_trainer_opts o = {0};
	CU_ASSERT_PTR_NULL(rt_session_new(NULL));
	rt_session_init(NULL, 1);
	CU_ASSERT_EQUAL(rt_set_hyper(NULL, "lr", 1), -1);
	CU_ASSERT_EQUAL(rt_session_feed(NULL, 0, &t, err, sizeof err), -1);
	CU_ASSERT_EQUAL(
	    rt_train_epoch(NULL, &t, &t, 0, NULL, NULL, NULL, NULL, err, sizeof err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "the session is NULL"));
	CU_ASSERT_EQUAL(rt_evaluate(NULL, &t, &t, NULL, err, sizeof err), -1);
	CU_ASSERT_EQUAL(rt_predict(NULL, &t, NULL, err, sizeof err), -1);
	CU_ASSERT_PTR_NULL(rt_trainer_new(NULL, &t, &t, &o, err, sizeof err));
	CU_ASSERT_EQUAL(rt_trainer_run(NULL, 0, NULL, NULL, NULL, err, sizeof err), -1);
	CU_ASSERT_EQUAL(rt_load_params(NULL, &f, err, sizeof err), -1);
	CU_ASSERT_EQUAL(rt_load_inputs(NULL, &f, err, sizeof err), -1);
	CU_ASSERT_EQUAL(rt_save_params(NULL, "x", 0, NULL, NULL, err, sizeof err), -1);
	CU_ASSERT_EQUAL(rt_trainer_save(NULL, "x", NULL, NULL, 0, err, sizeof err), -1);
	CU_ASSERT_EQUAL(rt_trainer_load(NULL, &f, err, sizeof err), -1);
	CU_ASSERT_EQUAL(rt_st_load(NULL, &f, err, sizeof err), -1);
	CU_ASSERT_EQUAL(rt_npy_load(NULL, 0, &t, err, sizeof err), -1);
	CU_ASSERT_EQUAL(rt_idx_load(NULL, 1, 0, &t, err, sizeof err), -1);
	CU_ASSERT_EQUAL(rt_csv_load(NULL, NULL, &t, NULL, err, sizeof err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "rt_csv_load: the path is NULL"));
	CU_ASSERT_EQUAL(rt_csv_load("x.csv", NULL, &t, NULL, err, sizeof err), -1);
	CU_ASSERT_PTR_NULL(rt_st_find(NULL, "w"));
	CU_ASSERT_PTR_NULL(rt_st_meta(NULL, "step"));
	CU_ASSERT_EQUAL(rt_npy_save(NULL, RT_F32, 0, NULL, &t, err, sizeof err), -1);
	CU_ASSERT_EQUAL(rt_write_atomic(NULL, NULL, NULL, 0, err, sizeof err), -1);
}

static void test_evaluate_computes_accuracy(void)
{
	static const rt_io io[] = {
	    {"x", RT_IO_INPUT, RT_F32, 2, {3, 3}, 9, 0},
	    {"label", RT_IO_INPUT, RT_I32, 1, {3}, 3, 3}, /* of 3 classes */
	    {"weight", RT_IO_INPUT, RT_F32, 1, {3}, 3, 0},
	    {"loss", RT_IO_OUTPUT, RT_F32, 0, {0}, 1, 0},
	    {"output", RT_IO_OUTPUT, RT_F32, 2, {3, 3}, 9, 0},
	};
	rt_program p = {.batch = 3,
	                .nio = 5,
	                .io = io,
	                .io_x = 0,
	                .io_y = 1,
	                .io_weight = 2,
	                .io_loss = 3,
	                .io_output = 4,
	                .evaluate = id_evaluate};
	/* 4 examples: argmax 0, 2, 1, 1; labels 0, 2, 0, 1 -> 3 of 4 */
	float xs[] = {9, 1, 1, 0, 1, 5, 0, 3, 2, 1, 2, 0};
	int32_t ys[] = {0, 2, 0, 1};
	rt_tensor x = {RT_F32, 4, 1, {3}, 3, xs}, y = {RT_I32, 4, 0, {0}, 1, ys};
	rt_session *s = rt_session_new(&p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	rt_metrics m;
	char err[256] = "";
	CU_ASSERT_EQUAL_FATAL(rt_evaluate(s, &x, &y, &m, err, sizeof err), 0);
	CU_ASSERT_DOUBLE_EQUAL(m.accuracy, 0.75, 1e-12);
	CU_ASSERT_DOUBLE_EQUAL(m.loss, 1.0, 1e-12);
	CU_ASSERT(m.steps == 2 && m.examples == 4);
	/* labels outside the classes (rt_io.limit) are refused, naming the example */
	ys[3] = 3;
	CU_ASSERT_EQUAL(rt_evaluate(s, &x, &y, &m, err, sizeof err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "y: example 3 holds 3, outside 0 to 2"));
	ys[3] = -1;
	CU_ASSERT_EQUAL(rt_evaluate(s, &x, &y, &m, err, sizeof err), -1);
	ys[3] = 1;
	/* a program without train_step cannot train */
	CU_ASSERT_EQUAL(
	    rt_train_epoch(s, &x, &y, 0, NULL, NULL, NULL, &m, err, sizeof err), -1);
	CU_ASSERT_STRING_EQUAL(err, "the program has no train_step function");
	rt_session_free(s);
}

static void test_alloc_is_aligned_zeroed_and_overflow_safe(void)
{
	unsigned char *p = rt_alloc(100);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL((uintptr_t)p % RT_ALIGN, 0);
	int nonzero = 0;
	for (int i = 0; i < 100; i++)
		nonzero += p[i] != 0;
	CU_ASSERT_EQUAL(nonzero, 0);
	rt_free(p);
	p = rt_alloc(0);
	CU_ASSERT_PTR_NOT_NULL(p);
	rt_free(p);
	CU_ASSERT_PTR_NULL(rt_alloc(SIZE_MAX));
	CU_ASSERT_PTR_NULL(rt_alloc(SIZE_MAX - 10));
	rt_free(NULL);
}

/* A kernel for rt_parallel_for that counts how often each element is visited, and
 * notes the parts' boundaries. */
static int visits[1000];
static int64_t starts[RT_MAX_THREADS + 1];
static int nstarts;
static pthread_mutex_t starts_mu = PTHREAD_MUTEX_INITIALIZER;

static void count_visits(void *const *bufs, int64_t lo, int64_t hi)
{
	(void)bufs;
	for (int64_t i = lo; i < hi; i++)
		__atomic_add_fetch(&visits[i], 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&starts_mu);
	if (nstarts <= RT_MAX_THREADS)
		starts[nstarts++] = lo;
	pthread_mutex_unlock(&starts_mu);
}

static void test_parallel_for_visits_each_element_once_on_grain_boundaries(void)
{
	static const int64_t ns[] = {0, 1, 7, 256, 257, 999, 1000};
	static const int64_t grains[] = {1, 16, 256};
	for (int t = 1; t <= 4; t++) {
		CU_ASSERT_EQUAL_FATAL(rt_set_threads(t), 0);
		CU_ASSERT_EQUAL(rt_threads(), t);
		for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
			for (size_t b = 0; b < sizeof grains / sizeof *grains; b++) {
				memset(visits, 0, sizeof visits);
				nstarts = 0;
				for (int rep = 0; rep < 3; rep++) /* the pool, reused */
					rt_parallel_for(count_visits, NULL, ns[a],
					                grains[b]);
				int once = 1;
				for (int64_t i = 0; i < ns[a]; i++)
					once &= visits[i] == 3;
				CU_ASSERT(once);
				for (int k = 0; k < nstarts; k++)
					CU_ASSERT(starts[k] % grains[b] == 0);
				/* at most one part per thread, and no part without work
				 */
				CU_ASSERT(nstarts <= 3 * t);
			}
	}
	CU_ASSERT_EQUAL(rt_set_threads(0), -1);
	CU_ASSERT_EQUAL(rt_set_threads(RT_MAX_THREADS + 1), -1);
	CU_ASSERT_EQUAL(rt_threads(), 4); /* a refused count changes nothing */
	CU_ASSERT_EQUAL(rt_set_threads(1), 0);
}

/* Two threads of a program running compiled code at once share one pool: the call
 * that finds it busy runs on its own thread, and both finish every element. */
static int hits[2][4096];

static void add_one(void *const *bufs, int64_t lo, int64_t hi)
{
	int *h = bufs[0];
	for (int64_t i = lo; i < hi; i++)
		h[i]++;
}

static void *caller(void *arg)
{
	void *bufs[1] = {arg};
	for (int r = 0; r < 300; r++)
		rt_parallel_for(add_one, bufs, 4096, 64);
	return NULL;
}

static void test_parallel_for_from_two_program_threads(void)
{
	CU_ASSERT_EQUAL_FATAL(rt_set_threads(2), 0);
	memset(hits, 0, sizeof hits);
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		CU_ASSERT_FATAL(pthread_create(&t[i], NULL, caller, hits[i]) == 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	int all = 1;
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 4096; j++)
			all &= hits[i][j] == 300;
	CU_ASSERT(all);
	CU_ASSERT_EQUAL(rt_set_threads(1), 0);
}

void suite_runtime(void)
{
	static CU_TestInfo tests[] = {
	    {"alloc_is_aligned_zeroed_and_overflow_safe",
	     test_alloc_is_aligned_zeroed_and_overflow_safe},
	    {"rng_same_seed_same_stream", test_rng_same_seed_same_stream},
	    {"rng_uniform_in_unit_interval", test_rng_uniform_in_unit_interval},
	    {"rng_below_is_uniform", test_rng_below_is_uniform},
	    {"shuffle_is_a_deterministic_permutation",
	     test_shuffle_is_a_deterministic_permutation},
	    {"init_params_bounds_per_scheme", test_init_params_bounds_per_scheme},
	    {"init_params_deterministic_per_seed",
	     test_init_params_deterministic_per_seed},
	    {"init_params_constant_and_normal_use_value",
	     test_init_params_constant_and_normal_use_value},
	    {"idx_loads_images_plain_and_gzipped",
	     test_idx_loads_images_plain_and_gzipped},
	    {"idx_loads_labels_and_rank1_values", test_idx_loads_labels_and_rank1_values},
	    {"idx_rejects_bad_files", test_idx_rejects_bad_files},
	    {"idx_rejects_cut_gzip_stream", test_idx_rejects_cut_gzip_stream},
	    {"idx_loads_fashion_mnist_test_set", test_idx_loads_fashion_mnist_test_set},
	    {"gather_copies_rows_and_zeroes_padding",
	     test_gather_copies_rows_and_zeroes_padding},
	    {"argmax_rows_first_of_ties", test_argmax_rows_first_of_ties},
	    {"train_epoch_pads_final_batch_with_zero_weight",
	     test_train_epoch_pads_final_batch_with_zero_weight},
	    {"session_feed_refuses_other_slots", test_session_feed_refuses_other_slots},
	    {"evaluate_loss_is_the_mean_over_examples",
	     test_evaluate_loss_is_the_mean_over_examples},
	    {"train_epoch_loss_decreases", test_train_epoch_loss_decreases},
	    {"train_epoch_stops_on_nan_loss", test_train_epoch_stops_on_nan_loss},
	    {"train_epoch_rejects_shape_mismatch",
	     test_train_epoch_rejects_shape_mismatch},
	    {"evaluate_computes_accuracy", test_evaluate_computes_accuracy},
	    {"runtime_refuses_null_pointers", test_runtime_refuses_null_pointers},
	    {"parallel_for_visits_each_element_once_on_grain_boundaries",
	     test_parallel_for_visits_each_element_once_on_grain_boundaries},
	    {"parallel_for_from_two_program_threads",
	     test_parallel_for_from_two_program_threads},
	    CU_TEST_INFO_NULL,
	};
	add_suite("runtime", tests);
}
