/* Ahead-of-time compilation and the C API, the way users build with them.
 *
 * build/descent compiles the MLP to an object and a header; cc links a program from
 * the object and the static runtime alone (no LLVM on the link line); that program's
 * parameters after 20 steps must equal, bit for bit, those of the same 20 steps run
 * through the JIT with the same seed and flags. Objects for another architecture and
 * the other output kinds are checked too, and the C API's errors.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dc.h"
#include "descent/descent.h"
#include "tests.h"

#define FASHION "/usr/share/datasets/fashion-mnist/"

static char dir[64];

static int sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	int rc = system(cmd);
	if (rc)
		fprintf(stderr, "\n`%s` failed (%d)\n", cmd, rc);
	return rc;
}

/* the suite's directory and what its tests left there, when the runner exits */
static void remove_dir(void)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

static const char *tmp(const char *name)
{
	static char buf[4][512];
	static int k;
	if (!dir[0]) {
		strcpy(dir, "/tmp/descent-aot-XXXXXX");
		if (!mkdtemp(dir))
			return "/nonexistent";
		atexit(remove_dir);
	}
	char *b = buf[k++ % 4];
	snprintf(b, sizeof buf[0], "%s/%s", dir, name);
	return b;
}

/* tmp(name) in buf, of 512, which outlives tmp's few buffers */
static char *kept(char *buf, const char *name)
{
	snprintf(buf, 512, "%s", tmp(name));
	return buf;
}

/* The JIT's parameters after the same 20 steps the AOT program takes. */
static void jit_reference(rt_st_file *aot)
{
	dc_context *ctx = dc_context_new();
	dc_model *m;
	dc_options o = {.batch = 16, .opt_level = 2};
	CU_ASSERT_FATAL(
	    dc_compile_file(ctx, src_path("models/fashion_mlp.yaml"), &o, &m) == DC_OK);
	rt_session *s = rt_session_new(dc_model_program(m));
	const rt_program *p = s->prog;
	rt_session_init(s, 7);
	char err[512];
	rt_tensor x, y;
	CU_ASSERT_FATAL(rt_idx_load(FASHION "train-images-idx3-ubyte.gz", 1 / 255.0, 0,
	                            &x, err, sizeof err) == 0);
	CU_ASSERT_FATAL(rt_idx_load(FASHION "train-labels-idx1-ubyte.gz", 1, 1, &y, err,
	                            sizeof err) == 0);
	int64_t idx[16];
	for (int i = 0; i < 16; i++)
		((float *)s->io[p->io_weight])[i] = 1;
	for (int k = 0; k < 20; k++) {
		for (int64_t i = 0; i < 16; i++)
			idx[i] = k * 16 + i;
		rt_gather(&x, idx, 16, 16, s->io[p->io_x]);
		rt_gather(&y, idx, 16, 16, s->io[p->io_y]);
		p->train_step(s->bufs);
	}
	int same = 1;
	for (int i = 0; i < p->nparam; i++) {
		const rt_st_tensor *t = rt_st_find(aot, p->params[i].name);
		CU_ASSERT_PTR_NOT_NULL_FATAL(t);
		CU_ASSERT_EQUAL_FATAL(t->nbytes, (size_t)p->params[i].numel * 4);
		same &= !memcmp(t->data, s->params + p->params[i].offset, t->nbytes);
	}
	CU_ASSERT(same);
	rt_tensor_free(&x), rt_tensor_free(&y);
	rt_session_free(s);
	dc_model_free(m);
	dc_context_free(ctx);
}

static void test_aot_object_links_without_llvm_and_matches_the_jit(void)
{
	CU_ASSERT_FATAL(sh("%s/descent compile %s -o %s --header %s --prefix model_ "
	                   "--batch 16 -O2 >/dev/null",
	                   DESCENT_BINARY_DIR, src_path("models/fashion_mlp.yaml"),
	                   tmp("mlp.o"), tmp("mlp.h")) == 0);
	/* the runtime library and libz, libm: nothing of LLVM (plus the sanitizers'
	 * runtime when the library is sanitized) */
	CU_ASSERT_FATAL(sh("cc -O2 -I%s -I%s %s %s %s/libdescent_rt.a -lz -lm %s -o %s",
	                   src_path("include"), dir, src_path("examples/aot_train.c"),
	                   tmp("mlp.o"), DESCENT_BINARY_DIR, DESCENT_SAN_LINK,
	                   tmp("aot_train")) == 0);
	CU_ASSERT_FATAL(sh("%s %strain-images-idx3-ubyte.gz %strain-labels-idx1-ubyte.gz "
	                   "20 %s >/dev/null",
	                   tmp("aot_train"), FASHION, FASHION,
	                   tmp("params.safetensors")) == 0);
	CU_ASSERT(sh("! nm %s | grep -qi llvm", tmp("aot_train")) == 0);
	rt_st_file f;
	char err[512];
	CU_ASSERT_FATAL(rt_st_load(tmp("params.safetensors"), &f, err, sizeof err) == 0);
	jit_reference(&f);
	rt_st_free(&f);
}

/* ELF e_machine of a file: 62 x86-64, 183 aarch64. */
static int elf_machine(const char *path)
{
	unsigned char h[20] = {0};
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	size_t n = fread(h, 1, sizeof h, f);
	fclose(f);
	return n == sizeof h && !memcmp(h, "\177ELF", 4) ? h[18] | h[19] << 8 : -1;
}

static int file_has(const char *path, const char *text)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "grep -q '%s' %s", text, path);
	return system(cmd) == 0;
}

static void test_aot_cross_compiles_and_emits_every_kind(void)
{
	const char *model = src_path("models/fashion_mlp.yaml");
	CU_ASSERT_FATAL(
	    sh("%s/descent compile %s -o %s --target aarch64-linux-gnu >/dev/null",
	       DESCENT_BINARY_DIR, model, tmp("arm.o")) == 0);
	CU_ASSERT_EQUAL(elf_machine(tmp("arm.o")), 183);
	CU_ASSERT_FATAL(sh("%s/descent compile %s -o %s >/dev/null", DESCENT_BINARY_DIR,
	                   model, tmp("x86.o")) == 0);
	CU_ASSERT_EQUAL(elf_machine(tmp("x86.o")), 62);
	CU_ASSERT(sh("%s/descent compile %s -o %s --emit asm >/dev/null",
	             DESCENT_BINARY_DIR, model, tmp("m.s")) == 0);
	CU_ASSERT(file_has(tmp("m.s"), "fashion_mlp_train_step:"));
	CU_ASSERT(sh("%s/descent compile %s -o %s --emit llvm >/dev/null",
	             DESCENT_BINARY_DIR, model, tmp("m.ll")) == 0);
	CU_ASSERT(file_has(tmp("m.ll"), "define i32 @fashion_mlp_grad"));
	CU_ASSERT(sh("%s/descent compile %s -o %s --emit bc >/dev/null",
	             DESCENT_BINARY_DIR, model, tmp("m.bc")) == 0);
	CU_ASSERT(sh("head -c 2 %s | grep -q BC", tmp("m.bc")) == 0);
	CU_ASSERT(sh("%s/descent compile %s -o %s --emit shared >/dev/null",
	             DESCENT_BINARY_DIR, model, tmp("m.so")) == 0);
	CU_ASSERT(sh("nm -D %s | grep -q fashion_mlp_train_step", tmp("m.so")) == 0);
	/* an unknown target is an error, and nothing is written */
	CU_ASSERT(sh("%s/descent compile %s -o %s --target nosuch-cpu-none 2>/dev/null",
	             DESCENT_BINARY_DIR, model, tmp("bad.o")) != 0);
	CU_ASSERT(access(tmp("bad.o"), F_OK) != 0);
	/* so is a CPU LLVM does not know, said once (LLVM warned ten times and went on
	 * with a generic one); --cpu native is this machine's */
	CU_ASSERT(sh("%s/descent compile %s -o %s --cpu nosuchcpu 2>%s; test $? = 1",
	             DESCENT_BINARY_DIR, model, tmp("bad.o"), tmp("cpu.err")) == 0);
	CU_ASSERT(access(tmp("bad.o"), F_OK) != 0);
	CU_ASSERT(sh("test $(wc -l < %s) = 1 && grep -q \"'nosuchcpu': LLVM knows no "
	             "such processor\" %s",
	             tmp("cpu.err"), tmp("cpu.err")) == 0);
	CU_ASSERT(sh("%s/descent compile %s -o %s --cpu native >/dev/null",
	             DESCENT_BINARY_DIR, model, tmp("native.o")) == 0);
	/* native is this machine's: not another target's; an empty --cpu is none */
	CU_ASSERT(
	    sh("%s/descent compile %s -o %s --target aarch64-linux-gnu --cpu native "
	       "2>&1 | grep -q 'native is this machine'",
	       DESCENT_BINARY_DIR, model, tmp("bad.o")) == 0);
	CU_ASSERT(sh("%s/descent compile %s -o %s --cpu '' 2>&1 | grep -q 'takes a "
	             "processor'",
	             DESCENT_BINARY_DIR, model, tmp("bad.o")) == 0);
	CU_ASSERT(access(tmp("bad.o"), F_OK) != 0);
	/* so is a CPU LLVM does not know (it aborted), with exit status 1 */
	CU_ASSERT(
	    sh("%s/descent compile %s -o %s --cpu pentium99 >/dev/null 2>&1; test $? "
	       "= 1",
	       DESCENT_BINARY_DIR, model, tmp("bad.o")) == 0);
	CU_ASSERT(access(tmp("bad.o"), F_OK) != 0);
	/* a header that cannot be written: no object either */
	CU_ASSERT(sh("%s/descent compile %s -o %s --header %s 2>/dev/null",
	             DESCENT_BINARY_DIR, model, tmp("bad.o"), tmp("nodir/bad.h")) != 0);
	CU_ASSERT(access(tmp("bad.o"), F_OK) != 0);
	/* prefixes that do not start a C name, or are the runtime's */
	CU_ASSERT(sh("%s/descent compile %s -o %s --prefix 9 2>/dev/null",
	             DESCENT_BINARY_DIR, model, tmp("bad.o")) != 0);
	CU_ASSERT(sh("%s/descent compile %s -o %s --prefix rt_ 2>/dev/null",
	             DESCENT_BINARY_DIR, model, tmp("bad.o")) != 0);
	/* nor are others' characters (a-b and a b were both a_b) or a leading _ (the C
	 * library's) */
	CU_ASSERT(sh("%s/descent compile %s -o %s --prefix a-b 2>/dev/null",
	             DESCENT_BINARY_DIR, model, tmp("bad.o")) != 0);
	CU_ASSERT(sh("%s/descent compile %s -o %s --prefix _x 2>/dev/null",
	             DESCENT_BINARY_DIR, model, tmp("bad.o")) != 0);
	/* the linker runs without a shell: a quote in the name is a name */
	CU_ASSERT(sh("%s/descent compile %s -o \"%s\" --emit shared >/dev/null",
	             DESCENT_BINARY_DIR, model, tmp("it's.so")) == 0);
	CU_ASSERT(access(tmp("it's.so"), F_OK) == 0);
	/* the header is ISO C (no empty braces: -pedantic) and C++ (designators in
	 * order, extern "C" prototypes), with a scalar's shape (the step count) */
	const char *h = tmp("adam.h");
	CU_ASSERT_FATAL(sh("%s/descent compile %s -o %s --header %s >/dev/null",
	                   DESCENT_BINARY_DIR, model, tmp("adam.o"), h) == 0);
	CU_ASSERT(file_has(h, ".shape = {0}"));
	CU_ASSERT(file_has(h, "Compiled for the CPU it was compiled on"));
	CU_ASSERT(file_has(h, ".limit = 10}")); /* the labels' classes */
	CU_ASSERT(sh("printf '#include \"%s\"\\nint main(void) { return "
	             "!fashion_mlp_program.train_step; }\\n' > %s",
	             h, tmp("h.c")) == 0);
	CU_ASSERT(sh("cc -std=c99 -Wall -Wextra -pedantic -Werror -I%s -c %s -o %s",
	             src_path("include"), tmp("h.c"), tmp("h_c.o")) == 0);
	if (sh("command -v c++ >/dev/null") == 0) {
		char cpp[512], obj[512], exe[512]; /* (tmp's buffers are few) */
		kept(cpp, "h.cpp"), kept(obj, "adam.o"), kept(exe, "h_cpp");
		CU_ASSERT(
		    sh("cp %s %s && c++ -std=c++20 -Wall -I%s %s %s %s/libdescent_rt.a "
		       "-lm -lpthread %s -o %s && %s",
		       tmp("h.c"), cpp, src_path("include"), cpp, obj, DESCENT_BINARY_DIR,
		       DESCENT_SAN_LINK, exe, exe) == 0);
	}
	/* a model's name ends no comment in it: the header declares nothing of it */
	char yaml[512], eh[512], ec[512];
	kept(yaml, "evil.yaml"), kept(eh, "evil.h"), kept(ec, "e.c");
	CU_ASSERT(
	    sh("printf 'name: \"x */ int injected = 1; /* y\"\\nparams: {a: {shape: "
	       "[3]}}\\nloss: \"sum(a^2)\"\\n' > %s",
	       yaml) == 0);
	CU_ASSERT(sh("%s/descent compile %s -o %s --header %s --prefix ev_ >/dev/null",
	             DESCENT_BINARY_DIR, yaml, tmp("evil.o"), eh) == 0);
	CU_ASSERT(sh("printf '#include \"%s\"\\nint injected = 2;\\nint main(void) { "
	             "return !ev_program.grad; }\\n' > %s",
	             eh, ec) == 0);
	CU_ASSERT(sh("cc -std=c99 -Wall -Werror -I%s -c %s -o %s", src_path("include"),
	             ec, tmp("e.o")) == 0);
	/* the headers of prefixes ev_ and EV_ share their macros: an #error, not one
	 * model's sizes for the other's */
	char EH[512];
	kept(EH, "EV.h");
	CU_ASSERT(sh("%s/descent compile %s -o %s --header %s --prefix EV_ >/dev/null",
	             DESCENT_BINARY_DIR, yaml, tmp("EV.o"), EH) == 0);
	CU_ASSERT(sh("printf '#include \"%s\"\\n#include \"%s\"\\n' > %s", eh, EH, ec) ==
	          0);
	CU_ASSERT(sh("cc -I%s -c %s -o %s 2>&1 | grep -q 'EV_BATCH is defined'",
	             src_path("include"), ec, tmp("e.o")) == 0);
}

static void test_api_reports_model_errors_as_diagnostics(void)
{
	dc_context *ctx = dc_context_new();
	dc_model *m = (dc_model *)1;
	dc_status st = dc_compile_string(
	    ctx,
	    "inputs: {x: {shape: [batch, 4]}, y: {shape: [batch], dtype: i32}}\n"
	    "layers: [{dense: {units: 3, activation: rleu}}]\n"
	    "loss: softmax_cross_entropy\n",
	    "m.yaml", NULL, &m);
	CU_ASSERT_EQUAL(st, DC_ERR_MODEL);
	CU_ASSERT_PTR_NULL(m);
	CU_ASSERT_EQUAL_FATAL(dc_diag_count(ctx), 1);
	const dc_diag *d = dc_diag_get(ctx, 0);
	CU_ASSERT_EQUAL(d->severity, DC_ERROR);
	CU_ASSERT_STRING_EQUAL(d->file, "m.yaml");
	CU_ASSERT(d->line == 2 && d->column == 41);
	CU_ASSERT_PTR_NOT_NULL(strstr(d->message, "did you mean 'relu'"));
	dc_context_free(ctx);
}

/* A session of a classifier of 4 features into 3 classes, batch 2, with these layers */
static dc_session *api_session(dc_context *ctx, const char *layers, dc_model **m)
{
	char yaml[512];
	snprintf(yaml, sizeof yaml,
	         "inputs: {x: {shape: [batch, 4]}, y: {shape: [batch], dtype: i32}}\n"
	         "layers: %s\nloss: softmax_cross_entropy\n",
	         layers);
	dc_session *s = NULL;
	CU_ASSERT_FATAL(
	    dc_compile_string(ctx, yaml, NULL, &(dc_options){.batch = 2}, m) == DC_OK);
	CU_ASSERT_FATAL(dc_session_new(*m, 1, &s) == DC_OK);
	return s;
}

static void test_api_checks_names_sizes_and_values(void)
{
	dc_context *ctx = dc_context_new();
	dc_model *m;
	dc_session *s = api_session(ctx, "[{dense: {units: 3}}]", &m);
	float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, w[12], loss;
	int32_t y[2] = {0, 2};
	CU_ASSERT_EQUAL(dc_set_input(s, "x", x, sizeof x), DC_OK);
	CU_ASSERT_EQUAL(dc_set_input(s, "x", x, 4), DC_ERR_ARG);
	CU_ASSERT_PTR_NOT_NULL(strstr(dc_session_error(s), "takes 32 bytes"));
	CU_ASSERT_EQUAL(dc_set_input(s, "z", x, sizeof x), DC_ERR_ARG);
	CU_ASSERT_EQUAL(dc_set_input(s, "y", y, sizeof y), DC_OK);
	CU_ASSERT_EQUAL(dc_get_param(s, "fc1.weight", w, 12), DC_OK);
	CU_ASSERT_EQUAL(dc_get_param(s, "fc1.weight", w, 11), DC_ERR_ARG);
	CU_ASSERT_EQUAL(dc_train_step(s, &loss), DC_OK);
	float nan[12];
	for (int i = 0; i < 12; i++)
		nan[i] = i == 5 ? 0.0f / 0.0f : 0;
	CU_ASSERT_EQUAL(dc_set_param(s, "fc1.weight", nan, 12), DC_ERR_ARG);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(dc_session_error(s), "'fc1.weight'[5] is not finite"));
	CU_ASSERT_EQUAL(dc_set_hyper(s, "lr", 0.5f), DC_OK);
	CU_ASSERT_EQUAL(dc_set_hyper(s, "nosuch", 0.5f), DC_ERR_ARG);
	/* the model file's ranges */
	CU_ASSERT_EQUAL(dc_set_hyper(s, "lr", -1), DC_ERR_ARG);
	CU_ASSERT_PTR_NOT_NULL(strstr(dc_session_error(s), "'lr' must be at least 0"));
	CU_ASSERT_EQUAL(dc_set_hyper(s, "lr", 1e30f), DC_ERR_ARG);
	CU_ASSERT_EQUAL(dc_set_hyper(s, "lr", 0), DC_OK);
	/* the range holds for the float stored (0.99999999 is 1.0f, no momentum below
	 * 1), and 1 - momentum's kin are set with it */
	dc_model *m2;
	dc_session *s2 = api_session(
	    ctx, "[{dense: {units: 3}}]\noptimizer: {type: sgd, lr: 0.1, momentum: 0.5}",
	    &m2);
	CU_ASSERT_EQUAL(dc_set_hyper(s2, "momentum", 0.99999999), DC_ERR_ARG);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(dc_session_error(s2), "got 0.99999999 (as a float)"));
	CU_ASSERT_EQUAL(dc_set_hyper(s2, "momentum", 0.9999999), DC_OK);
	CU_ASSERT_EQUAL(dc_set_hyper(s2, "1-dampening", 0.5), DC_ERR_ARG);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(dc_session_error(s2), "'1-dampening' is set with 'dampening'"));
	dc_session_free(s2);
	dc_model_free(m2);
	/* dropout's seed: a whole number below RT_DROPOUT_SEEDS (a checkpoint of another
	 * could not be loaded back) */
	s2 = api_session(ctx, "[{dense: {units: 3}}, {dropout: {p: 0.5}}]", &m2);
	const double bad_seeds[] = {0.5, -3, RT_DROPOUT_SEEDS};
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(dc_set_hyper(s2, "seed", bad_seeds[i]), DC_ERR_ARG);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(dc_session_error(s2), "'seed' (dropout's) must be"));
	CU_ASSERT_EQUAL(dc_set_hyper(s2, "seed", 12345), DC_OK);
	CU_ASSERT_EQUAL(rt_set_hyper(dc_session_runtime(s2), "seed", 0.5), -1);
	for (uint64_t seed = 0; seed < 100000; seed++) {
		float v = rt_dropout_seed(seed);
		if (!(v >= 0 && v < RT_DROPOUT_SEEDS && v == floorf(v))) {
			CU_FAIL("rt_dropout_seed out of its range");
			break;
		}
	}
	dc_session_free(s2);
	dc_model_free(m2);
	/* a huge learning rate (through the runtime, which takes any): the loss blows
	 * up and the parameters stay finite */
	CU_ASSERT_EQUAL(rt_set_hyper(dc_session_runtime(s), "lr", 1e30f), 0);
	for (int k = 0; k < 5; k++)
		dc_train_step(s, &loss);
	CU_ASSERT_EQUAL(dc_get_param(s, "fc1.weight", w, 12), DC_OK);
	for (int i = 0; i < 12; i++)
		CU_ASSERT(w[i] == w[i] && w[i] - w[i] == 0);
	CU_ASSERT_EQUAL(dc_save_params(s, tmp("api.safetensors")), DC_OK);
	CU_ASSERT_EQUAL(dc_load_params(s, tmp("api.safetensors")), DC_OK);
	CU_ASSERT_EQUAL(dc_load_params(s, tmp("nosuch.safetensors")), DC_ERR_IO);
	dc_session_free(s);
	dc_model_free(m);
	dc_context_free(ctx);
}

/* A diagnostic handed out stays valid while more come, until dc_diag_clear (the
 * views were one array, reallocated as it grew: ASan saw the first pointer freed).
 * Errors in the model are DC_ERR_MODEL, a file it cannot read DC_ERR_IO. */
static void test_api_diagnostics_stay_and_say_where_the_error_is(void)
{
	dc_context *ctx = dc_context_new();
	dc_model *m = NULL;
	const char *bad = "inputs: {x: {shape: [batch, 4]}}\nloss: \"sum(x @ x)\"\n";
	CU_ASSERT_EQUAL(dc_compile_string(ctx, bad, "a.yaml", NULL, &m), DC_ERR_MODEL);
	CU_ASSERT_FATAL(dc_diag_count(ctx) >= 1);
	const dc_diag *first = dc_diag_get(ctx, 0);
	char text[256];
	snprintf(text, sizeof text, "%s", first->message);
	CU_ASSERT_EQUAL(dc_compile_string(ctx, bad, "b.yaml", NULL, &m), DC_ERR_MODEL);
	CU_ASSERT_PTR_NOT_NULL(dc_diag_get(ctx, dc_diag_count(ctx) - 1));
	CU_ASSERT_STRING_EQUAL(first->message, text);
	CU_ASSERT_STRING_EQUAL(first->file, "a.yaml");
	CU_ASSERT_EQUAL(dc_compile_file(ctx, tmp("nosuch.yaml"), NULL, &m), DC_ERR_IO);
	const char *good =
	    "inputs: {x: {shape: [batch, 4]}, y: {shape: [batch], dtype: i32}}\n"
	    "layers: [{dense: {units: 3}}]\nloss: softmax_cross_entropy\n";
	CU_ASSERT_EQUAL(
	    dc_compile_string(ctx, good, NULL, &(dc_options){.opt_level = -7}, &m),
	    DC_ERR_ARG);
	dc_context_free(ctx);
}

/* Integer inputs are checked against what they index; relu passes NaN on, as
 * PyTorch's does; a step that dc_step refuses is reported, and one dc_step takes is
 * not blamed on an older loss; parameters that could not be loaded back are not
 * saved, and a save keeps the file's permissions and writes through a link. */
static void test_api_reports_refused_steps_and_bad_values(void)
{
	dc_context *ctx = dc_context_new();
	dc_model *m;
	dc_session *s = api_session(
	    ctx, "[{dense: {units: 3, activation: relu}}, {dense: {units: 3}}]", &m);
	float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, b[3], b2[3], loss;
	int32_t y[2] = {0, 3};
	CU_ASSERT_EQUAL(dc_set_input(s, "y", y, sizeof y), DC_ERR_ARG);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(dc_session_error(s), "'y'[1] is 3, outside 0 to 2"));
	y[1] = -1;
	CU_ASSERT_EQUAL(dc_set_input(s, "y", y, sizeof y), DC_ERR_ARG);
	y[1] = 2;
	CU_ASSERT_EQUAL(dc_set_input(s, "y", y, sizeof y), DC_OK);
	CU_ASSERT_EQUAL(dc_set_input(s, "x", NULL, sizeof x), DC_ERR_ARG);
	CU_ASSERT_PTR_NOT_NULL(strstr(dc_session_error(s), "NULL"));
	x[2] = NAN;
	CU_ASSERT_EQUAL(dc_set_input(s, "x", x, sizeof x), DC_OK);
	CU_ASSERT_EQUAL(dc_evaluate(s, &loss), DC_ERR_NUMERIC);
	CU_ASSERT(isnan(loss));
	CU_ASSERT_PTR_NOT_NULL(strstr(dc_session_error(s), "the loss is nan"));
	x[2] = 3;
	CU_ASSERT_EQUAL(dc_set_input(s, "x", x, sizeof x), DC_OK);
	/* dc_step from an infinite gradient: refused, nothing written */
	CU_ASSERT_EQUAL(dc_grad(s, &loss), DC_OK);
	float *grads = dc_session_runtime(s)->grads;
	grads[dc_model_program(m)->params[1].offset] = INFINITY; /* fc1.bias[0] */
	CU_ASSERT_EQUAL(dc_get_param(s, "fc1.bias", b, 3), DC_OK);
	CU_ASSERT_EQUAL(dc_step(s), DC_ERR_NUMERIC);
	CU_ASSERT_PTR_NOT_NULL(strstr(dc_session_error(s), "step: no step taken"));
	CU_ASSERT_EQUAL(dc_get_param(s, "fc1.bias", b2, 3), DC_OK);
	CU_ASSERT(memcmp(b, b2, sizeof b) == 0);
	/* a non-finite loss from dc_evaluate does not make the next dc_step fail */
	CU_ASSERT_EQUAL(dc_grad(s, &loss), DC_OK);
	x[0] = INFINITY;
	CU_ASSERT_EQUAL(dc_set_input(s, "x", x, sizeof x), DC_OK);
	CU_ASSERT_EQUAL(dc_evaluate(s, &loss), DC_ERR_NUMERIC);
	CU_ASSERT_EQUAL(dc_step(s), DC_OK);
	CU_ASSERT_EQUAL(dc_get_param(s, "fc1.bias", b2, 3), DC_OK);
	CU_ASSERT(memcmp(b, b2, sizeof b) != 0);
	/* train_step refused (the infinite input): reported as such */
	CU_ASSERT_EQUAL(dc_train_step(s, &loss), DC_ERR_NUMERIC);
	CU_ASSERT_PTR_NOT_NULL(strstr(dc_session_error(s), "train_step: no step taken"));
	/* saving: permissions kept, links followed, infinite parameters refused */
	const char *path = tmp("keep.safetensors"), *link = tmp("link.safetensors");
	CU_ASSERT_EQUAL(dc_save_params(s, path), DC_OK);
	CU_ASSERT(chmod(path, 0600) == 0 && symlink(path, link) == 0);
	CU_ASSERT_EQUAL(dc_save_params(s, link), DC_OK);
	struct stat st;
	CU_ASSERT(lstat(link, &st) == 0 && S_ISLNK(st.st_mode));
	CU_ASSERT(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	float *params = dc_session_runtime(s)->params;
	params[0] = INFINITY;
	CU_ASSERT_EQUAL(dc_save_params(s, path), DC_ERR_IO);
	CU_ASSERT_PTR_NOT_NULL(strstr(dc_session_error(s), "fc1.weight[0] is inf"));
	CU_ASSERT_EQUAL(dc_load_params(s, path), DC_OK); /* the last good file */
	CU_ASSERT(isfinite(params[0]));
	dc_session_free(s);
	dc_model_free(m);
	dc_context_free(ctx);
}

/* A torch state_dict loads: its batch norm's num_batches_tracked is int64 there */
static void test_api_loads_integer_buffers_from_torch(void)
{
	dc_context *ctx = dc_context_new();
	dc_model *m;
	dc_session *s = api_session(ctx, "[{dense: {units: 3}}, batch_norm]", &m);
	const char *path = tmp("bn.safetensors");
	CU_ASSERT_FATAL(dc_save_params(s, path) == DC_OK);
	rt_st_file f;
	char err[512];
	CU_ASSERT_FATAL(rt_st_load(path, &f, err, sizeof err) == 0);
	rt_st_tensor t[16];
	int n = 0;
	static const int64_t seven = 7;
	for (int i = 0; i < f.n && n < 16; i++, n++) {
		t[n] = f.t[i];
		if (!strcmp(t[n].name, "bn1.num_batches_tracked"))
			t[n].dtype = RT_ST_I64, t[n].data = &seven, t[n].nbytes = 8;
	}
	const char *torch = tmp("torch.safetensors");
	CU_ASSERT_FATAL(rt_st_save(torch, t, n, NULL, NULL, 0, err, sizeof err) == 0);
	rt_st_free(&f);
	CU_ASSERT_EQUAL(dc_load_params(s, torch), DC_OK);
	float v = 0;
	CU_ASSERT_EQUAL(dc_get_param(s, "bn1.num_batches_tracked", &v, 1), DC_OK);
	CU_ASSERT_EQUAL(v, 7);
	dc_session_free(s);
	dc_model_free(m);
	dc_context_free(ctx);
}

/* dc_options.entry_points compiles only the entry points asked for: the others are
 * NULL and their calls say so; train_step computes the bits it computes compiled with
 * every entry point; bits past DC_TRAIN_STEP are refused. */
static void test_api_compiles_only_the_entry_points_asked_for(void)
{
	const char *yaml =
	    "inputs: {x: {shape: [batch, 4]}, y: {shape: [batch], dtype: i32}}\n"
	    "layers: [{dense: {units: 5, activation: relu}}, {dense: {units: 3}}]\n"
	    "loss: softmax_cross_entropy\noptimizer: {type: adam, lr: 0.01}\n";
	dc_context *ctx = dc_context_new();
	dc_model *m[2];
	dc_session *s[2];
	float w[2][20], loss;
	const unsigned ask[2] = {0, DC_TRAIN_STEP | DC_EVALUATE};
	for (int k = 0; k < 2; k++) {
		dc_options o = {.batch = 2, .entry_points = ask[k]};
		CU_ASSERT_FATAL(dc_compile_string(ctx, yaml, NULL, &o, &m[k]) == DC_OK);
		CU_ASSERT_FATAL(dc_session_new(m[k], 7, &s[k]) == DC_OK);
		float x[8] = {1, -2, 3, 4, 0.5f, 6, -7, 8};
		int32_t y[2] = {0, 2};
		CU_ASSERT_EQUAL(dc_set_input(s[k], "x", x, sizeof x), DC_OK);
		CU_ASSERT_EQUAL(dc_set_input(s[k], "y", y, sizeof y), DC_OK);
		for (int i = 0; i < 3; i++)
			CU_ASSERT_EQUAL(dc_train_step(s[k], &loss), DC_OK);
		CU_ASSERT_EQUAL(dc_evaluate(s[k], &loss), DC_OK);
		CU_ASSERT_EQUAL(dc_get_param(s[k], "fc1.weight", w[k], 20), DC_OK);
	}
	CU_ASSERT(memcmp(w[0], w[1], sizeof w[0]) == 0);
	const rt_program *p = dc_model_program(m[1]);
	CU_ASSERT(p->train_step && p->evaluate && !p->forward && !p->grad && !p->step);
	CU_ASSERT_EQUAL(dc_forward(s[1]), DC_ERR_UNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(dc_session_error(s[1]), "forward was not compiled"));
	CU_ASSERT_EQUAL(dc_grad(s[1], &loss), DC_ERR_UNSUPPORTED);
	for (int k = 0; k < 2; k++) {
		dc_session_free(s[k]);
		dc_model_free(m[k]);
	}
	dc_model *bad;
	CU_ASSERT_EQUAL(dc_compile_string(ctx, yaml, NULL,
	                                  &(dc_options){.batch = 2, .entry_points = 64},
	                                  &bad),
	                DC_ERR_ARG);
	dc_context_free(ctx);
}

void suite_aot(void)
{
	static CU_TestInfo tests[] = {
	    {"test_aot_object_links_without_llvm_and_matches_the_jit",
	     test_aot_object_links_without_llvm_and_matches_the_jit},
	    {"test_aot_cross_compiles_and_emits_every_kind",
	     test_aot_cross_compiles_and_emits_every_kind},
	    {"test_api_reports_model_errors_as_diagnostics",
	     test_api_reports_model_errors_as_diagnostics},
	    {"test_api_checks_names_sizes_and_values",
	     test_api_checks_names_sizes_and_values},
	    {"test_api_diagnostics_stay_and_say_where_the_error_is",
	     test_api_diagnostics_stay_and_say_where_the_error_is},
	    {"test_api_reports_refused_steps_and_bad_values",
	     test_api_reports_refused_steps_and_bad_values},
	    {"test_api_loads_integer_buffers_from_torch",
	     test_api_loads_integer_buffers_from_torch},
	    {"test_api_compiles_only_the_entry_points_asked_for",
	     test_api_compiles_only_the_entry_points_asked_for},
	    CU_TEST_INFO_NULL,
	};
	add_suite("aot", tests);
}
