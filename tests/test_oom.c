/* Out of memory: each runtime entry point that allocates runs under an allocator
 * (rt_set_allocator) that fails its Nth request, for N = 1, 2, ... until a run needs
 * no more requests than were allowed, the way Lua's test build drives its error paths.
 * Every run with a failure must report it (NULL, or -1 with "out of memory" in the
 * message), crash nothing and leave no block of its own allocated: the allocator
 * counts live blocks. The last run, with nothing failing, must succeed; what it made
 * is freed under the same allocator. The program is hand-written (no compiler, no
 * JIT): a linear layer whose entry points do nothing. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "descent/runtime.h"
#include "tests.h"

/* ---- the failing allocator ---- */

typedef struct Counter {
	long fail_at; /* the request that fails, 1-based; 0: none */
	long calls, live;
} Counter;

static void *count_alloc(size_t bytes, void *ud)
{
	Counter *c = ud;
	if (++c->calls == c->fail_at)
		return NULL;
	void *p = malloc(bytes);
	c->live += p != NULL;
	return p;
}

static void count_release(void *p, void *ud)
{
	Counter *c = ud;
	c->live--;
	free(p);
}

/* What one entry point does: 0 on success (its result kept in ctx), -1 on failure with
 * a message in err (or none, for entry points without one: err stays empty). */
typedef struct Case {
	const char *name;
	int (*run)(void *ctx, char *err, size_t errlen);
	void (*undo)(void *ctx); /* frees what a successful run made; may be NULL */
	int has_message;
} Case;

/* Runs c with the 1st, 2nd, ... allocation failing; returns the number of allocations
 * a successful run makes. */
static long each_failure(const Case *c, void *ctx)
{
	for (long n = 1;; n++) {
		Counter k = {.fail_at = n};
		char err[1024] = "";
		rt_set_allocator(count_alloc, count_release, &k);
		int rc = c->run(ctx, err, sizeof err);
		if (rc == 0 && c->undo)
			c->undo(ctx);
		rt_set_allocator(NULL, NULL, NULL);
		if (k.live) {
			fprintf(stderr, "%s, allocation %ld failing: %ld blocks leaked\n",
			        c->name, n, k.live);
			CU_FAIL("blocks leaked");
		}
		if (k.calls < n) { /* nothing failed */
			if (rc)
				fprintf(stderr, "%s: fails with no failure: %s\n",
				        c->name, err);
			CU_ASSERT_EQUAL(rc, 0);
			if (getenv("OOM_VERBOSE"))
				fprintf(stderr, "%s: %ld allocations\n", c->name,
				        k.calls);
			return k.calls;
		}
		if (rc == 0 || (c->has_message && !strstr(err, "out of memory"))) {
			fprintf(stderr,
			        "%s, allocation %ld of %ld failing: rc %d, '%s'\n",
			        c->name, n, k.calls, rc, err);
			CU_FAIL(
			    "an allocation failure was not reported as out of memory");
		}
		if (n > 10000) {
			CU_FAIL("more than 10000 allocations");
			return n;
		}
	}
}

/* ---- files ---- */

static char dir[64];

static const char *path(const char *name)
{
	static char buf[8][512];
	static int k;
	char *b = buf[k++ % 8];
	snprintf(b, sizeof buf[0], "%s/%s", dir, name);
	return b;
}

static void write_bytes(const char *name, const void *p, size_t n, int gz)
{
	if (gz) {
		gzFile g = gzopen(path(name), "wb");
		CU_ASSERT_FATAL(g != NULL);
		CU_ASSERT_EQUAL(gzwrite(g, p, (unsigned)n), (int)n);
		CU_ASSERT_EQUAL(gzclose(g), Z_OK);
		return;
	}
	FILE *f = fopen(path(name), "wb");
	CU_ASSERT_FATAL(f != NULL);
	CU_ASSERT_EQUAL(fwrite(p, 1, n, f), n);
	CU_ASSERT_EQUAL(fclose(f), 0);
}

static void make_dir(void)
{
	snprintf(dir, sizeof dir, "/tmp/descent-oom-XXXXXX");
	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
}

/* Removes the directory; every file in it must be one of the test's (no temporary file
 * of a failed write is left behind). */
static void remove_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.') {
			if (strstr(e->d_name, ".tmp-")) {
				fprintf(stderr, "left behind: %s\n", e->d_name);
				CU_FAIL("a failed write left its temporary file");
			}
			unlink(path(e->d_name));
		}
	if (d)
		closedir(d);
	rmdir(dir);
}

/* ---- loaders ---- */

typedef struct Load {
	const char *file;
	int as_labels;
	rt_csv_opts csv;
	rt_tensor x, y;
	rt_st_file st;
} Load;

static int run_idx(void *ctx, char *err, size_t errlen)
{
	Load *l = ctx;
	return rt_idx_load(path(l->file), 1.0 / 255, l->as_labels, &l->x, err, errlen);
}

static int run_npy(void *ctx, char *err, size_t errlen)
{
	Load *l = ctx;
	return rt_npy_load(path(l->file), l->as_labels, &l->x, err, errlen);
}

static int run_csv(void *ctx, char *err, size_t errlen)
{
	Load *l = ctx;
	return rt_csv_load(path(l->file), &l->csv, &l->x, &l->y, err, errlen);
}

static int run_st(void *ctx, char *err, size_t errlen)
{
	Load *l = ctx;
	return rt_st_load(path(l->file), &l->st, err, errlen);
}

static void free_tensors(void *ctx)
{
	Load *l = ctx;
	rt_tensor_free(&l->x);
	rt_tensor_free(&l->y);
}

static void free_st(void *ctx)
{
	Load *l = ctx;
	CU_ASSERT_EQUAL(l->st.n, 3);
	rt_st_free(&l->st);
}

static void test_oom_idx_load(void)
{
	make_dir();
	unsigned char b[4 + 12 + 24] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4};
	for (int i = 16; i < (int)sizeof b; i++)
		b[i] = (unsigned char)i;
	write_bytes("img", b, sizeof b, 0);
	write_bytes("img.gz", b, sizeof b, 1);
	Load l = {.file = "img"};
	Case c = {"rt_idx_load", run_idx, free_tensors, 1};
	CU_ASSERT(each_failure(&c, &l) >= 1);
	l.file = "img.gz";
	c.name = "rt_idx_load (gzipped)";
	CU_ASSERT(each_failure(&c, &l) >=
	          3); /* the reader, zlib's state and window, data */
	remove_dir();
}

static void test_oom_npy_load(void)
{
	make_dir();
	char h[128];
	int k = snprintf(h, sizeof h,
	                 "\x93NUMPY\x01%c%c%c{'descr': '<f8', 'fortran_order': "
	                 "False, 'shape': (2, 3), }",
	                 0, 0, 0);
	while ((k + 1) % 64)
		h[k++] = ' ';
	h[k++] = '\n';
	h[8] = (char)(k - 10);
	double v[6] = {1, 2, 3, 4, 5, 6};
	unsigned char file[256];
	memcpy(file, h, (size_t)k);
	memcpy(file + k, v, sizeof v);
	write_bytes("x.npy", file, (size_t)k + sizeof v, 0);
	Load l = {.file = "x.npy"};
	Case c = {"rt_npy_load", run_npy, free_tensors, 1};
	CU_ASSERT(each_failure(&c, &l) >= 2); /* the header's text, the data */
	remove_dir();
}

static void test_oom_csv_load(void)
{
	make_dir();
	/* a long field and many header names make the reader grow its buffers */
	static char text[32768];
	int k = 0;
	for (int i = 0; i < 40; i++)
		k += snprintf(text + k, sizeof text - (size_t)k, "%sfeature_%d",
		              i ? "," : "", i);
	k += snprintf(text + k, sizeof text - (size_t)k, ",label\n");
	for (int r = 0; r < 3; r++) {
		for (int i = 0; i < 40; i++)
			k += snprintf(
			    text + k, sizeof text - (size_t)k,
			    "%s\"%d.000000000000000000000000000000000000000000000000000"
			    "000000000000000000000000000000000000000001\"",
			    i ? "," : "", r + i);
		k += snprintf(text + k, sizeof text - (size_t)k, ",%d\n", r);
	}
	write_bytes("d.csv", text, (size_t)k, 0);
	Load l = {.file = "d.csv",
	          .csv = {.header = 1, .label = "label", .labels_are_classes = 1}};
	Case c = {"rt_csv_load", run_csv, free_tensors, 1};
	CU_ASSERT(each_failure(&c, &l) >= 5);
	remove_dir();
}

/* ---- safetensors ---- */

static float wdata[6] = {1, 2, 3, 4, 5, 6}, bdata[2] = {7, 8};
static const int32_t step = 3;
static const rt_st_tensor st_tensors[] = {
    {"fc1.weight", RT_ST_F32, 2, {2, 3}, wdata, sizeof wdata},
    {"fc1.bias", RT_ST_F32, 1, {2}, bdata, sizeof bdata},
    {"optimizer.step", RT_ST_I32, 0, {0}, &step, sizeof step},
};
static const char *const meta_keys[] = {"format", "note"};
static const char *const meta_vals[] = {"pt", "\"quoted\"\n"};

static int run_st_save(void *ctx, char *err, size_t errlen)
{
	(void)ctx;
	return rt_st_save(path("s.safetensors"), st_tensors, 3, meta_keys, meta_vals, 2,
	                  err, errlen);
}

static void test_oom_st_save_and_load(void)
{
	make_dir();
	Case save = {"rt_st_save", run_st_save, NULL, 1};
	CU_ASSERT(each_failure(&save, NULL) >= 3);
	Load l = {.file = "s.safetensors"};
	Case load = {"rt_st_load", run_st, free_st, 1};
	CU_ASSERT(each_failure(&load, &l) >= 4);
	remove_dir();
}

/* ---- sessions and the training loop ---- */

enum { B = 4, NIN = 3, NOUT = 2 };

static int nothing(void *const *bufs) { return (void)bufs, 0; }

static const rt_param lin_params[] = {
    {"fc.weight", 2, {NOUT, NIN}, 0, NOUT *NIN, RT_INIT_KAIMING_UNIFORM, 0, NIN, NOUT, 1},
    {"fc.bias", 1, {NOUT}, NOUT *NIN, NOUT, RT_INIT_ZEROS, 0, NIN, NOUT, 1}};
static const rt_state lin_states[] = {
    {"fc.weight.momentum_buffer", 0, NOUT *NIN, 2, {NOUT, NIN}},
    {"fc.bias.momentum_buffer", NOUT *NIN, NOUT, 1, {NOUT}}};
static const char *const lin_hypers[] = {"lr", "momentum"};
static const float lin_hyper_init[] = {0.1f, 0.9f};
static const rt_io lin_io[] = {
    {"x", RT_IO_INPUT, RT_F32, 2, {B, NIN}, B *NIN, 0},
    {"y", RT_IO_INPUT, RT_I32, 1, {B}, B, 0},
    {"weight", RT_IO_INPUT, RT_F32, 1, {B}, B, 0},
    {"loss", RT_IO_OUTPUT, RT_F32, 0, {0}, 1, 0},
    {"output", RT_IO_OUTPUT, RT_F32, 2, {B, NOUT}, B *NOUT, 0}};
static const rt_program lin_prog = {.batch = B,
                                    .nparams = NOUT * NIN + NOUT,
                                    .nstate = NOUT * NIN + NOUT,
                                    .nwork = 16,
                                    .nhyper = 2,
                                    .hyper_names = lin_hypers,
                                    .hyper_init = lin_hyper_init,
                                    .nparam = 2,
                                    .params = lin_params,
                                    .nstates = 2,
                                    .states = lin_states,
                                    .nio = 5,
                                    .io = lin_io,
                                    .io_x = 0,
                                    .io_y = 1,
                                    .io_weight = 2,
                                    .io_loss = 3,
                                    .io_output = 4,
                                    .forward = nothing,
                                    .evaluate = nothing,
                                    .grad = nothing,
                                    .step = nothing,
                                    .train_step = nothing,
                                    .graph_hash = 0x1234};

typedef struct Train {
	rt_session *s;
	rt_trainer *t;
	rt_trainer_opts o;
	rt_tensor x, y;
	rt_st_file ckpt;
} Train;

static int run_session(void *ctx, char *err, size_t errlen)
{
	(void)err, (void)errlen;
	Train *tr = ctx;
	return (tr->s = rt_session_new(&lin_prog)) ? 0 : -1;
}

static void free_session(void *ctx)
{
	Train *tr = ctx;
	rt_session_free(tr->s);
	tr->s = NULL;
}

static int run_trainer(void *ctx, char *err, size_t errlen)
{
	Train *tr = ctx;
	return (tr->t = rt_trainer_new(tr->s, &tr->x, &tr->y, &tr->o, err, errlen)) ? 0
	                                                                            : -1;
}

static void free_trainer(void *ctx)
{
	Train *tr = ctx;
	rt_trainer_free(tr->t);
	tr->t = NULL;
}

static int run_trainer_save(void *ctx, char *err, size_t errlen)
{
	Train *tr = ctx;
	const char *k[] = {"optimizer"}, *v[] = {"sgd"};
	return rt_trainer_save(tr->t, path("ckpt.safetensors"), k, v, 1, err, errlen);
}

static int run_trainer_load(void *ctx, char *err, size_t errlen)
{
	Train *tr = ctx;
	return rt_trainer_load(tr->t, &tr->ckpt, err, errlen);
}

static int run_evaluate(void *ctx, char *err, size_t errlen)
{
	Train *tr = ctx;
	rt_metrics m;
	return rt_evaluate(tr->s, &tr->x, &tr->y, &m, err, errlen);
}

static int run_epoch(void *ctx, char *err, size_t errlen)
{
	Train *tr = ctx;
	rt_metrics m;
	return rt_train_epoch(tr->s, &tr->x, &tr->y, 0, NULL, NULL, NULL, &m, err,
	                      errlen);
}

static int run_predict(void *ctx, char *err, size_t errlen)
{
	Train *tr = ctx;
	float out[10 * NOUT];
	return rt_predict(tr->s, &tr->x, out, err, errlen);
}

static int run_save_params(void *ctx, char *err, size_t errlen)
{
	Train *tr = ctx;
	return rt_save_params(tr->s, path("p.safetensors"), 0, NULL, NULL, err, errlen);
}

static void lin_data(Train *tr)
{
	tr->x =
	    (rt_tensor){RT_F32, 10, 1, {NIN}, NIN, rt_alloc(10 * NIN * sizeof(float))};
	tr->y = (rt_tensor){RT_I32, 10, 0, {0}, 1, rt_alloc(10 * sizeof(int32_t))};
	CU_ASSERT_FATAL(tr->x.data && tr->y.data);
	for (int i = 0; i < 10; i++)
		((int32_t *)tr->y.data)[i] = i % NOUT;
}

static void test_oom_session_new(void)
{
	Train tr = {0};
	Case c = {"rt_session_new", run_session, free_session, 0};
	/* the session, five blobs, the buffer table and one buffer per io slot */
	CU_ASSERT_EQUAL(each_failure(&c, &tr), 1 + 5 + 1 + 5);
}

static void test_oom_trainer_new(void)
{
	Train tr = {0};
	lin_data(&tr);
	tr.s = rt_session_new(&lin_prog);
	CU_ASSERT_FATAL(tr.s != NULL);
	rt_session_init(tr.s, 1);
	Case c = {"rt_trainer_new", run_trainer, free_trainer, 1};
	tr.o = (rt_trainer_opts){.shuffle = 1, .seed = 5};
	rt_schedule_defaults(&tr.o.sched, RT_LR_CONSTANT, 0.1);
	CU_ASSERT(each_failure(&c, &tr) >= 2); /* the trainer, the order, the snapshot */
	c.name = "rt_trainer_new (accumulating)";
	tr.o.accumulate = 2;
	CU_ASSERT(each_failure(&c, &tr) >= 3);
	c.name = "rt_trainer_new (unguarded)";
	tr.o.accumulate = 0;
	tr.o.unguarded = 1;
	CU_ASSERT(each_failure(&c, &tr) >= 2);
	rt_session_free(tr.s);
	rt_tensor_free(&tr.x);
	rt_tensor_free(&tr.y);
}

static void test_oom_checkpoints_and_loops(void)
{
	make_dir();
	Train tr = {0};
	char err[512];
	lin_data(&tr);
	tr.s = rt_session_new(&lin_prog);
	CU_ASSERT_FATAL(tr.s != NULL);
	rt_session_init(tr.s, 1);
	tr.o = (rt_trainer_opts){.shuffle = 1, .seed = 5};
	rt_schedule_defaults(&tr.o.sched, RT_LR_CONSTANT, 0.1);
	tr.t = rt_trainer_new(tr.s, &tr.x, &tr.y, &tr.o, err, sizeof err);
	CU_ASSERT_FATAL(tr.t != NULL);
	const Case cases[] = {
	    {"rt_trainer_save", run_trainer_save, NULL, 1},
	    {"rt_evaluate", run_evaluate, NULL, 1},
	    {"rt_train_epoch", run_epoch, NULL, 1},
	    {"rt_predict", run_predict, NULL, 1},
	    {"rt_save_params", run_save_params, NULL, 1},
	};
	for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++)
		CU_ASSERT(each_failure(&cases[i], &tr) >= 1);
	CU_ASSERT_FATAL(rt_st_load(path("ckpt.safetensors"), &tr.ckpt, err, sizeof err) ==
	                0);
	Case load = {"rt_trainer_load", run_trainer_load, NULL, 1};
	each_failure(&load, &tr);
	rt_st_free(&tr.ckpt);
	rt_trainer_free(tr.t);
	rt_session_free(tr.s);
	rt_tensor_free(&tr.x);
	rt_tensor_free(&tr.y);
	remove_dir();
}

/* Blocks remember their allocator: one made by the counting allocator and freed after
 * the default is back goes to the counting allocator's release, and the other way. */
static void test_oom_blocks_go_back_to_their_allocator(void)
{
	Counter k = {0};
	void *mine = rt_alloc(100);
	rt_set_allocator(count_alloc, count_release, &k);
	void *p = rt_alloc(1000);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_EQUAL((uintptr_t)p % RT_ALIGN, 0);
	CU_ASSERT(k.calls == 1 && k.live == 1);
	rt_free(mine); /* malloc's, freed by free */
	CU_ASSERT_EQUAL(k.live, 1);
	rt_set_allocator(NULL, NULL, NULL);
	rt_free(p);
	CU_ASSERT_EQUAL(k.live, 0);
	/* every request fails: NULL, and nothing counted */
	k = (Counter){.fail_at = 1};
	rt_set_allocator(count_alloc, count_release, &k);
	CU_ASSERT_PTR_NULL(rt_alloc(10));
	rt_set_allocator(NULL, NULL, NULL);
	CU_ASSERT_EQUAL(k.live, 0);
}

void suite_oom(void)
{
	static CU_TestInfo tests[] = {
	    {"oom_blocks_go_back_to_their_allocator",
	     test_oom_blocks_go_back_to_their_allocator},
	    {"oom_idx_load", test_oom_idx_load},
	    {"oom_npy_load", test_oom_npy_load},
	    {"oom_csv_load", test_oom_csv_load},
	    {"oom_st_save_and_load", test_oom_st_save_and_load},
	    {"oom_session_new", test_oom_session_new},
	    {"oom_trainer_new", test_oom_trainer_new},
	    {"oom_checkpoints_and_loops", test_oom_checkpoints_and_loops},
	    CU_TEST_INFO_NULL};
	add_suite("oom", tests);
}
