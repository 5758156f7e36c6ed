/* libFuzzer harness for the runtime's data loaders. The first byte of an input picks
 * the loader and its options, the rest is the file, written to a temporary file (in
 * /dev/shm when there is one) and loaded:
 *
 *   bits 0-1  0 safetensors, 1 .npy, 2 CSV, 3 IDX
 *   .npy      bit 2: as labels
 *   IDX       bit 2: as labels; bit 3: the rest is gzipped first, so that the fuzzer's
 *             mutations reach the inflated data (a raw gzip file works too)
 *   CSV       bit 2: header; bit 3: labels are classes; bits 4-5: label column none,
 *             "0", "1", "y"; bits 6-7: delimiter ',' ';' '\t' ' '
 *
 * Every load must end in 0 with a consistent result or -1 with a message, without a
 * crash, a leak or undefined behaviour. What loads is checked and, for safetensors and
 * .npy, saved, loaded again and compared bit for bit.
 *
 *   build-fuzz/tests/fuzz/fuzz_data tests/fuzz/corpus/fuzz_data
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "descent/runtime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char in_path[256], out_path[256];
static volatile unsigned sink; /* reads of every loaded byte go here */

static void fail(const char *what, const char *err)
{
	fprintf(stderr, "fuzz_data: %s%s%s\n", what, err ? ": " : "", err ? err : "");
	abort();
}

static void cleanup(void)
{
	unlink(in_path);
	unlink(out_path);
}

static void setup(void)
{
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(in_path, sizeof in_path, "%s/fuzz-data-%ld.in", dir, (long)getpid());
	snprintf(out_path, sizeof out_path, "%s/fuzz-data-%ld.out", dir, (long)getpid());
	atexit(cleanup);
}

static void write_file(const char *path, const void *p, size_t n, int gz)
{
	if (gz) {
		gzFile g = gzopen(path, "wb");
		if (!g || (n && gzwrite(g, p, (unsigned)n) != (int)n) ||
		    gzclose(g) != Z_OK)
			fail("cannot write the gzipped input", path);
		return;
	}
	FILE *f = fopen(path, "wb");
	if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f))
		fail("cannot write the input", path);
}

/* A loaded tensor is what its fields say: n examples of stride elements. */
static void check_tensor(const rt_tensor *t)
{
	int64_t stride = 1;
	for (int i = 0; i < t->rank; i++)
		stride *= t->dims[i];
	if (t->n < 1 || t->rank < 0 || t->rank > RT_MAXRANK || stride != t->stride ||
	    !t->data)
		fail("inconsistent tensor", NULL);
	/* touch every element: ASan sees a buffer shorter than it says */
	for (int64_t i = 0; i < t->n * t->stride; i++)
		sink += ((const uint32_t *)t->data)[i];
}

static void fuzz_st(void)
{
	rt_st_file f, g;
	char err[512];
	if (rt_st_load(in_path, &f, err, sizeof err))
		return;
	for (int i = 0; i < f.n; i++) {
		if (rt_st_find(&f, f.t[i].name) != &f.t[i])
			fail("rt_st_find does not find a loaded tensor", f.t[i].name);
		for (size_t k = 0; k < f.t[i].nbytes; k++)
			sink += ((const unsigned char *)f.t[i].data)[k];
	}
	for (int i = 0; i < f.nmeta; i++)
		if (!rt_st_meta(&f, f.meta_keys[i]))
			fail("rt_st_meta does not find a loaded key", f.meta_keys[i]);
	/* the same tensors and metadata written back read back the same */
	if (rt_st_save(out_path, f.t, f.n, f.meta_keys, f.meta_vals, f.nmeta, err,
	               sizeof err))
		fail("a loaded file does not save", err);
	if (rt_st_load(out_path, &g, err, sizeof err))
		fail("a saved file does not load", err);
	if (g.n != f.n || g.nmeta != f.nmeta)
		fail("saved and loaded again, the counts differ", NULL);
	for (int i = 0; i < f.n; i++) {
		const rt_st_tensor *a = &f.t[i], *b = &g.t[i];
		if (strcmp(a->name, b->name) || a->dtype != b->dtype ||
		    a->rank != b->rank ||
		    memcmp(a->shape, b->shape, (size_t)a->rank * sizeof a->shape[0]) ||
		    a->nbytes != b->nbytes ||
		    (a->nbytes && memcmp(a->data, b->data, a->nbytes)))
			fail("saved and loaded again, a tensor differs", a->name);
	}
	for (int i = 0; i < f.nmeta; i++)
		if (strcmp(f.meta_keys[i], g.meta_keys[i]) ||
		    strcmp(f.meta_vals[i], g.meta_vals[i]))
			fail("saved and loaded again, the metadata differs",
			     f.meta_keys[i]);
	rt_st_free(&g);
	rt_st_free(&f);
}

static void fuzz_npy(int as_labels)
{
	rt_tensor t, u;
	char err[512];
	if (rt_npy_load(in_path, as_labels, &t, err, sizeof err))
		return;
	check_tensor(&t);
	int64_t shape[RT_MAXRANK + 1] = {t.n};
	memcpy(shape + 1, t.dims, (size_t)t.rank * sizeof t.dims[0]);
	if (rt_npy_save(out_path, t.dtype, t.rank + 1, shape, t.data, err, sizeof err))
		fail("a loaded .npy does not save", err);
	if (rt_npy_load(out_path, as_labels, &u, err, sizeof err))
		fail("a saved .npy does not load", err);
	if (u.dtype != t.dtype || u.n != t.n || u.rank != t.rank ||
	    memcmp(u.dims, t.dims, sizeof t.dims) || u.stride != t.stride ||
	    memcmp(u.data, t.data, (size_t)(t.n * t.stride) * 4))
		fail("saved and loaded again, the .npy differs", NULL);
	rt_tensor_free(&u);
	rt_tensor_free(&t);
}

static void fuzz_csv(unsigned sel)
{
	static const char *const labels[] = {NULL, "0", "1", "y"};
	static const char delims[] = {',', ';', '\t', ' '};
	rt_csv_opts o = {.delimiter = delims[sel >> 6 & 3],
	                 .header = sel >> 2 & 1,
	                 .labels_are_classes = sel >> 3 & 1,
	                 .label = labels[sel >> 4 & 3]};
	rt_tensor x, y;
	char err[512];
	if (rt_csv_load(in_path, &o, &x, &y, err, sizeof err))
		return;
	check_tensor(&x);
	if (o.label) {
		check_tensor(&y);
		if (y.n != x.n)
			fail("CSV: x and y differ in length", NULL);
	} else if (y.data)
		fail("CSV: labels without a label column", NULL);
	rt_tensor_free(&x);
	rt_tensor_free(&y);
}

static void fuzz_idx(unsigned sel)
{
	rt_tensor t;
	char err[512];
	if (rt_idx_load(in_path, 1.0 / 255, sel >> 2 & 1, &t, err, sizeof err))
		return;
	check_tensor(&t);
	rt_tensor_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!in_path[0])
		setup();
	if (size < 1)
		return 0;
	unsigned sel = data[0];
	write_file(in_path, data + 1, size - 1, (sel & 3) == 3 && (sel >> 3 & 1));
	switch (sel & 3) {
	case 0:
		fuzz_st();
		break;
	case 1:
		fuzz_npy(sel >> 2 & 1);
		break;
	case 2:
		fuzz_csv(sel);
		break;
	default:
		fuzz_idx(sel);
	}
	return 0;
}
