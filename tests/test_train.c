/* The training loop users rely on: learning-rate schedules against torch's formulas,
 * early stopping, gradient accumulation against one big batch, checkpoints (a round
 * trip, and a table of corrupted files each refused with its message), an exact resume
 * in a new process, divergence, the CSV log and its SVG plot, eval and predict, and the
 * CSV and .npy data sources. Small models on a synthetic data set written into a
 * temporary directory keep the suite fast. */
#define _POSIX_C_SOURCE 200809L
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dc.h"
#include "tests.h"

static char dir[64]; /* the suite's temporary directory */

static const char *in_dir(const char *name)
{
	static char buf[8][512];
	static int k;
	char *b = buf[k++ % 8];
	snprintf(b, sizeof buf[0], "%s/%s", dir, name);
	return b;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CU_ASSERT_FATAL(f != NULL);
	fputs(text, f);
	fclose(f);
}

static char *read_text(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *s = malloc((size_t)n + 1);
	size_t got = fread(s, 1, (size_t)n, f);
	s[got] = 0;
	fclose(f);
	if (len)
		*len = got;
	return s;
}

/* `descent ARGS` run from the suite's directory; its exit code, and what it printed. */
static int descent(const char *args, char *out, size_t len)
{
	char line[8192];
	snprintf(line, sizeof line, "cd %s && %s/descent %s 2>&1", dir,
	         DESCENT_BINARY_DIR, args);
	return shell(line, out, len);
}

/* ---- the data: 120 examples of 6 features, 3 classes a linear map separates ---- */

#define NEX 120
#define NFEAT 6

static int make_data(void)
{
	rt_rng r;
	rt_rng_seed(&r, 11);
	static float x[NEX * NFEAT];
	static int32_t y[NEX];
	static const float w[3][NFEAT] = {{1, -1, 0.5f, 0, 0.2f, -0.3f},
	                                  {-0.5f, 1, 0, 1, -0.4f, 0},
	                                  {0, 0.3f, -1, -0.6f, 1, 0.5f}};
	char *csv = malloc(NEX * 128 + 64), *p = csv;
	p += sprintf(p, "f0,f1,f2,f3,f4,f5,label\n");
	for (int i = 0; i < NEX; i++) {
		float best = -1e9f;
		for (int j = 0; j < NFEAT; j++)
			x[i * NFEAT + j] = (float)(2 * rt_rng_uniform(&r) - 1);
		for (int c = 0; c < 3; c++) {
			float s = 0;
			for (int j = 0; j < NFEAT; j++)
				s += w[c][j] * x[i * NFEAT + j];
			if (s > best)
				best = s, y[i] = c;
		}
		for (int j = 0; j < NFEAT; j++)
			p += sprintf(p, "%.6f,", x[i * NFEAT + j]);
		p += sprintf(p, "%d\n", y[i]);
	}
	char err[512];
	int64_t xs[2] = {NEX, NFEAT}, ys[1] = {NEX};
	FILE *f = fopen(in_dir("train.csv"), "w");
	int ok = f && fputs(csv, f) >= 0;
	if (f)
		fclose(f);
	free(csv);
	return ok && !rt_npy_save(in_dir("x.npy"), RT_F32, 2, xs, x, err, sizeof err) &&
	               !rt_npy_save(in_dir("y.npy"), RT_I32, 1, ys, y, err, sizeof err)
	           ? 0
	           : -1;
}

#define TINY_HEAD                                                                        \
	"name: tiny\n"                                                                   \
	"inputs:\n  x: {shape: [batch, 6]}\n  y: {shape: [batch], dtype: i32}\n"         \
	"layers:\n"                                                                      \
	"  - dense: {name: fc1, units: 16, activation: relu}\n"                          \
	"  - dropout: {p: 0.1}\n"                                                        \
	"  - dense: {name: fc2, units: 3}\n"                                             \
	"loss: {type: softmax_cross_entropy, target: y}\n"
#define NPY_DATA                                                                         \
	"data:\n"                                                                        \
	"  train: {x: {npy: x.npy}, y: {npy: y.npy}}\n"                                  \
	"  test: {x: {npy: x.npy}, y: {npy: y.npy}}\n"

/* The resume test's model: adam, a warm-up then a cosine, a validation split, dropout. */
static const char *tiny_yaml =
    TINY_HEAD "optimizer: {type: adam, lr: 0.01}\n"
              "train:\n  batch: 8\n  epochs: 3\n  seed: 3\n  validation_split: 0.2\n"
              "  schedule: {type: cosine, T_max: 3}\n"
              "  warmup: {steps: 5, start_factor: 0.1}\n" NPY_DATA;

static Compiled *compile_yaml(const char *name, const char *yaml, int64_t batch, Arena *A,
                              Diags *d, Model **mp)
{
	write_text(in_dir(name), yaml);
	Model *m = model_load(A, d, in_dir(name));
	if (!m) {
		diag_print(d, stderr);
		return NULL;
	}
	*mp = m;
	CodegenOpts o = {.opt_level = 1};
	Compiled *c = compile_model(d, m, batch ? batch : m->batch, &o);
	if (!c)
		diag_print(d, stderr);
	return c;
}

static int setup(void)
{
	strcpy(dir, "/tmp/descent_train_XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	return make_data();
}

static int cleanup(void)
{
	char cmd[128];
	if (getenv("DESCENT_KEEP_TMP")) /* to look at what the tests wrote */
		return 0;
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- schedules: torch's formulas, written as torch computes them (recursively) ---- */

static int close_rel(double a, double b)
{
	return fabs(a - b) <= 1e-12 * fmax(fabs(a), fabs(b)) + 1e-300;
}

static void test_train_schedules_match_torch_formulas(void)
{
	rt_schedule s;
	rt_lr_state st;
	const int64_t P = 7; /* steps per epoch */
	/* StepLR(step_size=3, gamma=0.1), stepped per epoch: constant inside an epoch */
	rt_schedule_defaults(&s, RT_LR_STEP, 0.1);
	s.step_size = 3;
	rt_lr_state_init(&s, &st);
	double lr = 0.1;
	for (int e = 0; e < 20; e++) {
		if (e > 0 && e % 3 == 0)
			lr *= 0.1;
		for (int k = 0; k < P; k++)
			CU_ASSERT(close_rel(rt_schedule_lr(&s, &st, e * P + k, P), lr));
	}
	/* ExponentialLR(gamma=0.9) per step */
	rt_schedule_defaults(&s, RT_LR_EXPONENTIAL, 0.05);
	s.gamma = 0.9;
	s.per_step = 1;
	lr = 0.05;
	for (int t = 0; t < 50; t++, lr *= 0.9)
		CU_ASSERT(close_rel(rt_schedule_lr(&s, &st, t, P), lr));
	/* CosineAnnealingLR(T_max=10, eta_min=1e-3), torch's recursive form, past T_max
	 */
	rt_schedule_defaults(&s, RT_LR_COSINE, 0.1);
	s.T_max = 10;
	s.eta_min = 1e-3;
	lr = 0.1;
	const double pi = 3.14159265358979323846, T = 10, base = 0.1, emin = 1e-3;
	for (int t = 0; t < 35; t++) {
		if (t > 0 && (t - 1 - 10) % 20 == 0)
			lr = lr + (base - emin) * (1 - cos(pi / T)) / 2;
		else if (t > 0)
			lr = (1 + cos(pi * t / T)) / (1 + cos(pi * (t - 1) / T)) *
			         (lr - emin) +
			     emin;
		double got = rt_schedule_lr(&s, &st, t * P, P);
		CU_ASSERT(fabs(got - lr) < 1e-12);
	}
	/* LinearLR(start_factor=0.1, total_iters=12) then CosineAnnealingLR(T_max=30) per
	 * step, as SequentialLR(milestones=[12]) chains them */
	rt_schedule_defaults(&s, RT_LR_COSINE, 0.2);
	s.T_max = 30;
	s.per_step = 1;
	s.warmup_steps = 12;
	s.start_factor = 0.1;
	lr = 0.2 * 0.1;
	for (int t = 0; t < 12; t++) {
		if (t > 0) /* torch's LinearLR.get_lr */
			lr *= 1 + 0.9 / (12 * 0.1 + (t - 1) * 0.9);
		CU_ASSERT(close_rel(rt_schedule_lr(&s, &st, t, P), lr));
	}
	for (int t = 12; t < 60; t++)
		CU_ASSERT(fabs(rt_schedule_lr(&s, &st, t, P) -
		               0.2 * (1 + cos(pi * (t - 12) / 30)) / 2) < 1e-12);
	/* warm-up in epochs is warm-up in steps: epochs * steps per epoch */
	s.warmup_steps = 0;
	s.warmup_epochs = 2;
	CU_ASSERT(close_rel(rt_schedule_lr(&s, &st, 7, P), 0.2 * (0.1 + 0.9 * 7 / 14.0)));
	CU_ASSERT(close_rel(rt_schedule_lr(&s, &st, 14, P), 0.2));
}

/* ReduceLROnPlateau(mode=min, factor=0.5, patience=2, cooldown=1), worked by hand from
 * torch's step(): a reduction after patience + 1 bad epochs, cooldown epochs ignored. */
static void test_train_plateau_follows_torch(void)
{
	rt_schedule s;
	rt_lr_state st;
	rt_schedule_defaults(&s, RT_LR_PLATEAU, 1.0);
	CU_ASSERT_EQUAL(s.patience, 10); /* torch's defaults */
	CU_ASSERT(s.factor == 0.1 && s.threshold == 1e-4 && s.cooldown == 0 &&
	          s.min_lr == 0);
	s.factor = 0.5;
	s.patience = 2;
	s.cooldown = 1;
	rt_lr_state_init(&s, &st);
	const double metric[] = {1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85};
	const double want[] = {1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25};
	for (int e = 0; e < 10; e++) {
		rt_schedule_epoch_end(&s, &st, metric[e]);
		CU_ASSERT_DOUBLE_EQUAL(rt_schedule_lr(&s, &st, 100, 10), want[e], 1e-15);
	}
	/* 0.9 -> 0.89995 is not better than 0.9 by the relative threshold 1e-4 */
	rt_lr_state_init(&s, &st);
	rt_schedule_epoch_end(&s, &st, 0.9);
	rt_schedule_epoch_end(&s, &st, 0.89995);
	CU_ASSERT_EQUAL(st.bad_epochs, 1);
	/* min_lr bounds it; mode max with an absolute threshold */
	s.min_lr = 0.3;
	s.mode_max = 1;
	s.threshold_abs = 1;
	s.threshold = 0.1;
	s.cooldown = 0;
	rt_lr_state_init(&s, &st);
	const double acc[] = {0.5, 0.55, 0.59, 0.6, 0.61, 0.62, 0.63, 0.64, 0.65};
	for (int e = 0; e < 9; e++)
		rt_schedule_epoch_end(&s, &st, acc[e]);
	/* best 0.5 until 0.61 (> 0.5 + 0.1): epochs 2-4 bad -> 0.5; then 0.62..0.65 bad
	 * for 4 epochs -> max(0.25, 0.3) */
	CU_ASSERT_DOUBLE_EQUAL(st.lr, 0.3, 1e-15);
	CU_ASSERT_DOUBLE_EQUAL(st.best, 0.61, 1e-15);
}

static void test_train_early_stopping_counts_epochs_without_improvement(void)
{
	rt_early_stop e;
	rt_early_stop_init(&e, 0, 0.01, 2);
	CU_ASSERT_FALSE(rt_early_stop_update(&e, 1.0));
	CU_ASSERT_FALSE(
	    rt_early_stop_update(&e, 0.995));            /* less than min_delta: wait 1 */
	CU_ASSERT_FALSE(rt_early_stop_update(&e, 0.98)); /* improves on 1.0 by 0.02 */
	CU_ASSERT_DOUBLE_EQUAL(e.best, 0.98, 0);
	CU_ASSERT_FALSE(rt_early_stop_update(&e, 0.975));
	CU_ASSERT_TRUE(
	    rt_early_stop_update(&e, NAN)); /* not finite: never an improvement */
	rt_early_stop_init(&e, 1, 0, 1);    /* max mode, accuracy */
	CU_ASSERT_FALSE(rt_early_stop_update(&e, 0.5));
	CU_ASSERT_FALSE(rt_early_stop_update(&e, 0.6));
	CU_ASSERT_TRUE(rt_early_stop_update(&e, 0.6));
}

/* In the CLI: min_delta larger than any improvement stops after 1 + patience epochs. */
static void test_train_early_stopping_stops_the_run(void)
{
	char out[16384];
	write_text(in_dir("es.yaml"), TINY_HEAD
	           "optimizer: {type: adam, lr: 0.01}\n"
	           "train:\n  batch: 16\n  epochs: 10\n  validation_split: 0.25\n"
	           "  early_stopping: {monitor: val_loss, patience: 2, min_delta: "
	           "5}\n" NPY_DATA);
	int rc = descent("train es.yaml -O1 --log es.csv --checkpoint-dir esc", out,
	                 sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "early stopping: val_loss has not improved"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "epoch 3/10"));
	CU_ASSERT_PTR_NULL(strstr(out, "epoch 4/10"));
	/* resumed where it stopped, it trains no more (it went on for patience more
	 * epochs, the stop not in the checkpoint) */
	rc = descent(
	    "train es.yaml -O1 --checkpoint-dir esc --resume esc/last.safetensors", out,
	    sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(out, "early stopping: the run had stopped after epoch 3"));
	CU_ASSERT_PTR_NULL(strstr(out, "epoch 4/10"));
	/* with patience 0, a run stopped by --max-steps after an improving epoch goes on
	 * when resumed (its wait is 0, not a stop) */
	write_text(in_dir("es0.yaml"), TINY_HEAD
	           "optimizer: {type: adam, lr: 0.01}\n"
	           "train:\n  batch: 16\n  epochs: 3\n  validation_split: 0.25\n"
	           "  early_stopping: {monitor: val_loss, patience: 0}\n" NPY_DATA);
	rc = descent("train es0.yaml -O1 --checkpoint-dir es0 --max-steps 6", out,
	             sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	rc = descent(
	    "train es0.yaml -O1 --checkpoint-dir es0 --resume es0/last.safetensors", out,
	    sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "epoch 2/3"));
	/* a monitor of something the run does not measure is a located error */
	write_text(in_dir("es2.yaml"), TINY_HEAD
	           "train:\n  early_stopping: {monitor: val_accuracy}\n" NPY_DATA);
	rc = descent("train es2.yaml", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out,
	                              "es2.yaml:11:29: error: early_stopping monitors "
	                              "val_accuracy, but there is no validation split"));
}

/* ---- accumulation ---- */

static void fill_data(rt_tensor *x, rt_tensor *y, int64_t n)
{
	rt_rng r;
	rt_rng_seed(&r, 5);
	*x = (rt_tensor){RT_F32, n, 1, {5}, 5, rt_alloc((size_t)n * 5 * 4)};
	*y = (rt_tensor){RT_I32, n, 0, {0}, 1, rt_alloc((size_t)n * 4)};
	for (int64_t i = 0; i < n * 5; i++)
		((float *)x->data)[i] = (float)(2 * rt_rng_uniform(&r) - 1);
	for (int64_t i = 0; i < n; i++)
		((int32_t *)y->data)[i] = (int32_t)rt_rng_below(&r, 3);
}

/* k micro-batches of b examples make the same update as one batch of k*b (a model
 * without batch statistics), a final partial group included, for a loss that is a
 * mean over the examples (with a penalty on the weights), or a sum. */
static void accumulation_equals_one_big_batch(const char *loss)
{
	char yaml[1024];
	snprintf(yaml, sizeof yaml,
	         "inputs: {x: {shape: [batch, 5]}, y: {shape: [batch], dtype: i32}}\n"
	         "nodes:\n"
	         "  h: \"dense(x, units=7, activation=tanh)\"\n"
	         "  out: \"dense(h, units=3)\"\n"
	         "loss: \"%s\"\n"
	         "optimizer: {type: sgd, lr: 0.5, momentum: 0.9}\n",
	         loss);
	Arena *A = arena_new();
	Diags d = {0};
	Model *m;
	Compiled *small = compile_yaml("acc.yaml", yaml, 4, A, &d, &m);
	Compiled *big = compile_yaml("acc.yaml", yaml, 12, A, &d, &m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(small);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	rt_tensor x, y;
	fill_data(&x, &y, 24);
	const int64_t sizes[] = {24, 22};
	for (int k = 0; k < 2; k++) {
		rt_session *s1 = rt_session_new(&small->prog),
		           *s2 = rt_session_new(&big->prog);
		rt_session_init(s1, 9);
		rt_session_init(s2, 9);
		rt_trainer_opts o1 = {.limit = sizes[k], .accumulate = 3},
		                o2 = {.limit = sizes[k]};
		rt_schedule_defaults(&o1.sched, RT_LR_CONSTANT, 0.5);
		o2.sched = o1.sched;
		char err[512];
		rt_trainer *t1 = rt_trainer_new(s1, &x, &y, &o1, err, sizeof err);
		rt_trainer *t2 = rt_trainer_new(s2, &x, &y, &o2, err, sizeof err);
		CU_ASSERT_PTR_NOT_NULL_FATAL(t1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(t2);
		CU_ASSERT_EQUAL(t1->steps_per_epoch, 2);
		rt_metrics m1, m2;
		for (int e = 0; e < 2; e++) {
			CU_ASSERT_EQUAL(
			    rt_trainer_run(t1, 0, NULL, NULL, &m1, err, sizeof err), 1);
			CU_ASSERT_EQUAL(
			    rt_trainer_run(t2, 0, NULL, NULL, &m2, err, sizeof err), 1);
			CU_ASSERT(fabs(m1.loss - m2.loss) < 1e-5);
		}
		CU_ASSERT_EQUAL(s1->step, 4);
		double worst = 0;
		for (int64_t i = 0; i < small->prog.nparams; i++)
			worst = fmax(worst, fabs(s1->params[i] - s2->params[i]));
		for (int64_t i = 0; i < small->prog.nstate; i++)
			worst = fmax(worst, fabs(s1->state[i] - s2->state[i]));
		CU_ASSERT(worst < 1e-5);
		if (worst >= 1e-5)
			fprintf(stderr, "\n  n=%lld: largest difference %g\n",
			        (long long)sizes[k], worst);
		rt_trainer_free(t1);
		rt_trainer_free(t2);
		rt_session_free(s1);
		rt_session_free(s2);
	}
	rt_tensor_free(&x);
	rt_tensor_free(&y);
	compiled_free(small);
	compiled_free(big);
	diags_free(&d);
	arena_free(A);
}

static void test_train_accumulation_equals_one_big_batch(void)
{
	accumulation_equals_one_big_batch("softmax_cross_entropy(out, y)");
	accumulation_equals_one_big_batch(
	    "softmax_cross_entropy(out, y) + 0.01 * sum(h.weight ^ 2)");
	accumulation_equals_one_big_batch(
	    "sum(-sum(one_hot(y, num_classes=3) * log_softmax(out), "
	    "axis=1))");
}

/* How the loss adds up over a batch (rt_loss_kind), which an accumulated step's weights
 * follow; a loss that is neither a mean nor a sum over the examples cannot accumulate. */
static void test_train_loss_kinds(void)
{
	static const struct {
		const char *loss;
		rt_loss_kind kind;
	} cases[] = {
	    {"softmax_cross_entropy(out, y)", RT_LOSS_MEAN},
	    {"{type: mse, target: t}", RT_LOSS_MEAN},
	    {"{type: mse, target: t, reduction: sum}", RT_LOSS_SUM},
	    {"\"2 * mean((out - t)^2) - mean(out) + sum(out.bias^2)\"", RT_LOSS_MEAN},
	    {"\"sum((out - t)^2) / 4\"", RT_LOSS_SUM},
	    {"\"sum((out - t)^2) + sum(out.bias^2)\"", RT_LOSS_OTHER},
	    {"\"sum(w * (out - t)^2) / sum(w)\"", RT_LOSS_OTHER},
	    {"\"mean((out - t)^2)^2\"", RT_LOSS_OTHER},
	    {"\"mean(out) * mean(t)\"", RT_LOSS_OTHER},
	    {"\"sqrt(mean((out - t)^2))\"", RT_LOSS_OTHER},
	    {"\"sum(mean((out - t)^2, axis=0))\"", RT_LOSS_MEAN},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char yaml[1024];
		snprintf(yaml, sizeof yaml,
		         "inputs: {x: {shape: [batch, 5]}, y: {shape: [batch], dtype: "
		         "i32}, t: {shape: [batch, 3]}, w: {shape: [batch, 1]}}\n"
		         "input: x\ntarget: t\n"
		         "nodes:\n  out: \"dense(x, units=3)\"\n"
		         "loss: %s\noptimizer: {type: sgd, lr: 0.1}\n",
		         cases[i].loss);
		Arena *A = arena_new();
		Diags d = {0};
		Model *m;
		Compiled *c = compile_yaml("kind.yaml", yaml, 4, A, &d, &m);
		CU_ASSERT_PTR_NOT_NULL_FATAL(c);
		CU_ASSERT_EQUAL(c->prog.loss_kind, cases[i].kind);
		if (c->prog.loss_kind != cases[i].kind)
			fprintf(stderr, "\n  %s: kind %d\n", cases[i].loss,
			        (int)c->prog.loss_kind);
		compiled_free(c);
		diags_free(&d);
		arena_free(A);
	}
	char out[4096];
	write_text(in_dir("ratio.yaml"),
	           "name: ratio\ninputs:\n  x: {shape: [batch, 6]}\n"
	           "  y: {shape: [batch], dtype: i32}\n"
	           "nodes:\n  h: \"dense(x, units=3)\"\n"
	           "loss: \"-sum(one_hot(y, num_classes=3) * log_softmax(h)) / "
	           "sum(one_hot(y, num_classes=3))\"\n"
	           "optimizer: {type: sgd, lr: 0.1}\n" NPY_DATA);
	CU_ASSERT_EQUAL(descent("train ratio.yaml --accumulate 2", out, sizeof out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "error: accumulate (2 micro-batches a step) "
	                                   "needs a loss that is a mean or a sum"));
}

/* ---- checkpoints ---- */

typedef struct Tiny {
	Arena *A;
	Diags d;
	Model *m;
	Compiled *c;
	rt_tensor x, y;
} Tiny;

static rt_trainer *tiny_trainer(Tiny *k, rt_session **sp, uint64_t init_seed)
{
	char err[512];
	rt_session *s = rt_session_new(&k->c->prog);
	rt_session_init(s, init_seed);
	rt_trainer_opts o = {.shuffle = 1, .seed = 77};
	rt_schedule_defaults(&o.sched, RT_LR_COSINE, 0.01);
	o.sched.T_max = 3;
	o.sched.warmup_steps = 4;
	rt_trainer *t = rt_trainer_new(s, &k->x, &k->y, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL(t);
	*sp = s;
	return t;
}

static int tiny_open(Tiny *k)
{
	char err[512];
	memset(k, 0, sizeof *k);
	k->A = arena_new();
	k->c = compile_yaml("tiny.yaml", tiny_yaml, 0, k->A, &k->d, &k->m);
	if (!k->c)
		return -1;
	if (rt_npy_load(in_dir("x.npy"), 0, &k->x, err, sizeof err) ||
	    rt_npy_load(in_dir("y.npy"), 1, &k->y, err, sizeof err))
		return -1;
	return 0;
}

static void tiny_close(Tiny *k)
{
	rt_tensor_free(&k->x);
	rt_tensor_free(&k->y);
	compiled_free(k->c);
	diags_free(&k->d);
	arena_free(k->A);
}

static void test_train_checkpoint_round_trip_resumes_exactly(void)
{
	Tiny k;
	CU_ASSERT_FATAL(tiny_open(&k) == 0);
	const rt_program *p = &k.c->prog;
	char err[2048];
	rt_session *s1, *s2;
	rt_trainer *t1 = tiny_trainer(&k, &s1, 1), *t2 = tiny_trainer(&k, &s2, 2);
	CU_ASSERT_EQUAL(rt_trainer_run(t1, 0, NULL, NULL, NULL, err, sizeof err), 1);
	CU_ASSERT_EQUAL(rt_trainer_run(t1, 20, NULL, NULL, NULL, err, sizeof err), 0);
	CU_ASSERT_EQUAL(t1->pos, 5 * 8);
	const char *keys[] = {"optimizer"}, *vals[] = {"adam"};
	CU_ASSERT_EQUAL_FATAL(
	    rt_trainer_save(t1, in_dir("rt.safetensors"), keys, vals, 1, err, sizeof err),
	    0);
	rt_st_file f;
	CU_ASSERT_EQUAL_FATAL(rt_st_load(in_dir("rt.safetensors"), &f, err, sizeof err),
	                      0);
	CU_ASSERT_PTR_NOT_NULL(rt_st_find(&f, "fc1.weight"));
	CU_ASSERT_PTR_NOT_NULL(rt_st_find(&f, "optimizer.fc1.weight.exp_avg"));
	CU_ASSERT_PTR_NOT_NULL(rt_st_find(&f, "optimizer.dropout_step"));
	CU_ASSERT_STRING_EQUAL(rt_st_meta(&f, "optimizer"), "adam");
	CU_ASSERT_STRING_EQUAL(rt_st_meta(&f, "step"), "20");
	CU_ASSERT_STRING_EQUAL(rt_st_meta(&f, "epoch_position"), "40");
	int rc = rt_trainer_load(t2, &f, err, sizeof err);
	if (rc)
		fprintf(stderr, "\n  %s\n", err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	rt_st_free(&f);
	CU_ASSERT(!memcmp(s1->params, s2->params, (size_t)p->nparams * 4));
	CU_ASSERT(!memcmp(s1->state, s2->state, (size_t)p->nstate * 4));
	CU_ASSERT(!memcmp(&t1->rng, &t2->rng, sizeof t1->rng));
	CU_ASSERT(s2->step == 20 && t2->epoch == 1 && t2->pos == 40);
	/* both go on the same way: the same order, rates and dropout masks */
	CU_ASSERT_EQUAL(rt_trainer_run(t1, 0, NULL, NULL, NULL, err, sizeof err), 1);
	CU_ASSERT_EQUAL(rt_trainer_run(t2, 0, NULL, NULL, NULL, err, sizeof err), 1);
	CU_ASSERT(!memcmp(s1->params, s2->params, (size_t)p->nparams * 4));
	CU_ASSERT(!memcmp(s1->state, s2->state, (size_t)p->nstate * 4));
	CU_ASSERT_EQUAL(t1->loss_sum, t2->loss_sum);
	rt_trainer_free(t1);
	rt_trainer_free(t2);
	rt_session_free(s1);
	rt_session_free(s2);
	tiny_close(&k);
}

/* A variant of a good checkpoint: which tensor to change, and how. */
typedef enum {
	C_HASH,
	C_DROP,
	C_SHAPE,
	C_NAN,
	C_EXTRA,
	C_BATCH,
	C_TRUNCATE,
	C_PARAMS,
	C_LR,      /* lr -5 */
	C_SECONDS, /* seconds inf */
	C_STEP,    /* a step past int64 */
	C_RNG0,    /* the generator's all-zero state (its draws were 0 forever) */
	C_RNGX,    /* four words and more */
	C_SHUFFLE, /* shuffle 7 */
	C_STATE    /* a step count of 2.5, a negative second moment */
} Corrupt;

static void write_variant(Corrupt how, const char *from, const char *to)
{
	char err[1024];
	if (how == C_TRUNCATE) {
		size_t n = 0;
		char *b = read_text(from, &n);
		FILE *f = fopen(to, "wb");
		fwrite(b, 1, n / 2, f);
		fclose(f);
		free(b);
		return;
	}
	rt_st_file f;
	CU_ASSERT_FATAL(rt_st_load(from, &f, err, sizeof err) == 0);
	rt_st_tensor t[64];
	const char *mk[64], *mv[64];
	int n = 0, nm = 0;
	float nan_data[16 * 6], half_step = 2.5f;
	for (int i = 0; i < f.n; i++) {
		t[n] = f.t[i];
		if (how == C_DROP && !strcmp(t[n].name, "optimizer.fc1.weight.exp_avg"))
			continue;
		if (how == C_PARAMS && !strncmp(t[n].name, "optimizer.", 10))
			continue;
		if (how == C_SHAPE && !strcmp(t[n].name, "fc2.bias"))
			t[n].shape[0] = 2, t[n].nbytes = 8;
		if (how == C_NAN && !strcmp(t[n].name, "fc1.weight")) {
			memcpy(nan_data, t[n].data, sizeof nan_data);
			nan_data[17] = NAN;
			t[n].data = nan_data;
		}
		if (how == C_STATE && (!strcmp(t[n].name, "optimizer.step") ||
		                       !strcmp(t[n].name, "optimizer.dropout_step")))
			t[n].data = &half_step;
		if (how == C_STATE &&
		    !strcmp(t[n].name, "optimizer.fc1.weight.exp_avg_sq")) {
			memcpy(nan_data, t[n].data, sizeof nan_data);
			nan_data[5] = -1;
			t[n].data = nan_data;
		}
		n++;
	}
	if (how == C_EXTRA)
		t[n++] = (rt_st_tensor){"fc3.weight", RT_ST_F32, 1, {2}, nan_data, 8};
	for (int i = 0; i < f.nmeta && how != C_PARAMS; i++) {
		const char *key = f.meta_keys[i];
		mk[nm] = key;
		mv[nm++] =
		    how == C_HASH && !strcmp(key, "graph_hash")   ? "0123456789abcdef"
		    : how == C_BATCH && !strcmp(key, "batch")     ? "16"
		    : how == C_LR && !strcmp(key, "lr")           ? "-5"
		    : how == C_SECONDS && !strcmp(key, "seconds") ? "inf"
		    : how == C_STEP && !strcmp(key, "step") ? "99999999999999999999999"
		    : how == C_RNG0 && !strcmp(key, "rng")  ? "0 0 0 0"
		    : how == C_RNGX && !strcmp(key, "rng")  ? "1 2 3 4 garbage"
		    : how == C_SHUFFLE && !strcmp(key, "shuffle") ? "7"
		                                                  : f.meta_vals[i];
	}
	CU_ASSERT_FATAL(rt_st_save(to, t, n, mk, mv, nm, err, sizeof err) == 0);
	rt_st_free(&f);
}

static void test_train_corrupted_checkpoints_are_refused(void)
{
	static const struct {
		Corrupt how;
		const char *want;
	} cases[] = {
	    {C_HASH,
	     "the checkpoint is of another model (graph hash 0123456789abcdef; this "
	     "model's is "},
	    {C_DROP, "the checkpoint does not fit this model: missing 1: "
	             "optimizer.fc1.weight.exp_avg"},
	    {C_SHAPE, "mis-shaped 1: fc2.bias (file: [2], model: [3])"},
	    {C_NAN, "not finite: fc1.weight"},
	    {C_EXTRA, "unexpected 1: fc3.weight"},
	    {C_BATCH, "the checkpoint was made with batch 16"},
	    {C_TRUNCATE, "bad.safetensors: "},
	    {C_PARAMS, "not a descent checkpoint"},
	    {C_LR, "the checkpoint's 'lr' is '-5', not a non-negative finite number"},
	    {C_SECONDS, "'seconds' is 'inf', not a non-negative finite number"},
	    {C_STEP, "the checkpoint's 'step' is '99999999999999999999999', not a count"},
	    {C_RNG0, "the checkpoint's 'rng' is '0 0 0 0', not four hex words of a state "
	             "that is not all zero"},
	    {C_RNGX, "the checkpoint's 'rng' is '1 2 3 4 garbage'"},
	    {C_SHUFFLE, "the checkpoint's 'shuffle' is 7, not 0 or 1"},
	    {C_STATE, "out of range: optimizer.dropout_step (not a step count), "
	              "optimizer.step (not a step count), "
	              "optimizer.fc1.weight.exp_avg_sq (negative)"},
	};
	Tiny k;
	CU_ASSERT_FATAL(tiny_open(&k) == 0);
	char err[4096];
	rt_session *s;
	rt_trainer *t = tiny_trainer(&k, &s, 1);
	CU_ASSERT_EQUAL(rt_trainer_run(t, 3, NULL, NULL, NULL, err, sizeof err), 0);
	CU_ASSERT_FATAL(rt_trainer_save(t, in_dir("good.safetensors"), NULL, NULL, 0, err,
	                                sizeof err) == 0);
	rt_session *s2;
	rt_trainer *t2 = tiny_trainer(&k, &s2, 5);
	size_t np = (size_t)k.c->prog.nparams * 4;
	float *before = malloc(np);
	memcpy(before, s2->params, np);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		write_variant(cases[i].how, in_dir("good.safetensors"),
		              in_dir("bad.safetensors"));
		rt_st_file f;
		int rc = rt_st_load(in_dir("bad.safetensors"), &f, err, sizeof err);
		if (rc == 0) {
			rc = rt_trainer_load(t2, &f, err, sizeof err);
			rt_st_free(&f);
		}
		CU_ASSERT_EQUAL(rc, -1);
		if (!strstr(err, cases[i].want))
			fprintf(stderr, "\n  case %zu: want '%s'\n  got '%s'\n", i,
			        cases[i].want, err);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].want));
		CU_ASSERT(!memcmp(before, s2->params, np)); /* nothing restored */
		CU_ASSERT_EQUAL(s2->step, 0);
	}
	/* and a checkpoint is never written with a value that is not finite */
	s->params[3] = INFINITY;
	CU_ASSERT_EQUAL(
	    rt_trainer_save(t, in_dir("inf.safetensors"), NULL, NULL, 0, err, sizeof err),
	    -1);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(err, "not written: fc1.weight holds a value that is not finite"));
	CU_ASSERT(access(in_dir("inf.safetensors"), F_OK) != 0);
	free(before);
	rt_trainer_free(t);
	rt_trainer_free(t2);
	rt_session_free(s);
	rt_session_free(s2);
	tiny_close(&k);
}

/* ---- the CLI: resume, divergence, log, plot, eval, predict ---- */

/* The tensors and metadata of two checkpoints, the run's wall-clock time aside. */
static int same_checkpoints(const char *a, const char *b)
{
	char err[1024];
	rt_st_file f, g;
	if (rt_st_load(a, &f, err, sizeof err) || rt_st_load(b, &g, err, sizeof err)) {
		fprintf(stderr, "\n  %s\n", err);
		return 0;
	}
	int same = f.n == g.n && f.nmeta == g.nmeta && f.n > 0;
	for (int i = 0; same && i < f.n; i++) {
		const rt_st_tensor *u = rt_st_find(&g, f.t[i].name);
		same = u && u->nbytes == f.t[i].nbytes &&
		       !memcmp(u->data, f.t[i].data, u->nbytes);
		if (!same)
			fprintf(stderr, "\n  tensor %s differs\n", f.t[i].name);
	}
	for (int i = 0; same && i < f.nmeta; i++) {
		const char *v = rt_st_meta(&g, f.meta_keys[i]);
		same = v &&
		       (!strcmp(f.meta_keys[i], "seconds") || !strcmp(v, f.meta_vals[i]));
		if (!same)
			fprintf(stderr, "\n  metadata %s differs\n", f.meta_keys[i]);
	}
	rt_st_free(&f);
	rt_st_free(&g);
	return same;
}

/* A checkpoint whose batch norm running variance is negative is refused (it loaded,
 * and every evaluation was NaN). */
static void test_train_resume_refuses_a_negative_running_variance(void)
{
	char out[16384], err[1024];
	write_text(
	    in_dir("bn.yaml"),
	    "name: bn\ninputs:\n  x: {shape: [batch, 6]}\n"
	    "  y: {shape: [batch], dtype: i32}\nlayers:\n"
	    "  - dense: {name: fc1, units: 4}\n  - batch_norm: {name: bn1}\n"
	    "  - dense: {name: fc2, units: 3}\n"
	    "loss: {type: softmax_cross_entropy, target: y}\n"
	    "optimizer: {type: sgd, lr: 0.1}\ntrain: {batch: 8, epochs: 1}\n" NPY_DATA);
	CU_ASSERT_EQUAL_FATAL(
	    descent("train bn.yaml -O1 --checkpoint-dir bnc", out, sizeof out), 0);
	rt_st_file f;
	CU_ASSERT_FATAL(rt_st_load(in_dir("bnc/last.safetensors"), &f, err, sizeof err) ==
	                0);
	rt_st_tensor t[64];
	const char *mk[64], *mv[64];
	float var[4] = {1, -0.5f, 1, 1};
	CU_ASSERT_FATAL(f.n <= 64 && f.nmeta <= 64);
	for (int i = 0; i < f.n; i++) {
		t[i] = f.t[i];
		if (!strcmp(t[i].name, "bn1.running_var"))
			t[i].data = var;
	}
	for (int i = 0; i < f.nmeta; i++)
		mk[i] = f.meta_keys[i], mv[i] = f.meta_vals[i];
	CU_ASSERT_FATAL(rt_st_save(in_dir("bnc/bad.safetensors"), t, f.n, mk, mv, f.nmeta,
	                           err, sizeof err) == 0);
	rt_st_free(&f);
	CU_ASSERT_EQUAL(
	    descent("train bn.yaml -O1 --epochs 2 --resume bnc/bad.safetensors", out,
	            sizeof out),
	    1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "out of range: bn1.running_var (negative)"));
}

/* N steps in one process == K steps, then a resume in a new process, then N - K. */
static void test_train_resume_in_a_new_process_is_bitwise_identical(void)
{
	char out[16384];
	int rc =
	    descent("train tiny.yaml -O1 --max-steps 17 --checkpoint-dir a --log a.csv "
	            "--report a.json",
	            out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(out, "stopped at step 17 (--max-steps), 40 of 96 examples "
	                "into epoch 2"));
	rc = descent("train tiny.yaml -O1 --resume a/last.safetensors --checkpoint-dir b "
	             "--log a.csv",
	             out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(out, "resumed from a/last.safetensors: epoch 1, step 17"));
	rc = descent("train tiny.yaml -O1 --checkpoint-dir c --log c.csv", out,
	             sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT(
	    same_checkpoints(in_dir("b/last.safetensors"), in_dir("c/last.safetensors")));
	CU_ASSERT(same_checkpoints(in_dir("b/epoch-3.safetensors"),
	                           in_dir("c/epoch-3.safetensors")));
	/* and the logs agree but for the seconds */
	TrainLog la, lc;
	char err[512];
	CU_ASSERT_FATAL(log_read(in_dir("a.csv"), &la, err, sizeof err) == 0);
	CU_ASSERT_FATAL(log_read(in_dir("c.csv"), &lc, err, sizeof err) == 0);
	CU_ASSERT_EQUAL(la.n, 3);
	CU_ASSERT_EQUAL(lc.n, 3);
	/* the stopped run's report: the train loss of the 5 steps of epoch 2 it took,
	 * not epoch 1's (the log's last row then) */
	char *json = read_text(in_dir("a.json"), NULL), *tl;
	CU_ASSERT_PTR_NOT_NULL_FATAL(json);
	CU_ASSERT_PTR_NOT_NULL_FATAL(tl = strstr(json, "\"train_loss\": "));
	double loss17 = strtod(tl + strlen("\"train_loss\": "), NULL);
	CU_ASSERT(isfinite(loss17) && loss17 > 0);
	CU_ASSERT(fabs(loss17 - la.rows[0].v[LOG_TRAIN_LOSS]) > 1e-6);
	free(json);
	for (int i = 0; i < la.n && i < lc.n; i++)
		for (int j = 0; j < LOG_SECONDS; j++)
			CU_ASSERT(la.rows[i].v[j] == lc.rows[i].v[j] ||
			          (isnan(la.rows[i].v[j]) && isnan(lc.rows[i].v[j])));
	log_free(&la);
	/* a resumed run that ends no epoch writes its log too: the rows up to its
	 * checkpoint's epoch (the abandoned epochs 2 and 3 stayed in the file), and
	 * one resumed after its last epoch writes its log and plot (it wrote none) */
	char *text = read_text(in_dir("c.csv"), NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	write_text(in_dir("d.csv"), text);
	free(text);
	rc = descent("train tiny.yaml -O1 --resume c/epoch-1.safetensors --max-steps 14 "
	             "--log d.csv",
	             out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_FATAL(log_read(in_dir("d.csv"), &la, err, sizeof err) == 0);
	CU_ASSERT_EQUAL(la.n, 1);
	CU_ASSERT(la.n >= 1 &&
	          la.rows[0].v[LOG_TRAIN_LOSS] == lc.rows[0].v[LOG_TRAIN_LOSS]);
	log_free(&la);
	log_free(&lc);
	rc = descent("train tiny.yaml -O1 --resume c/last.safetensors --log e.csv --plot "
	             "e.svg",
	             out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT(access(in_dir("e.csv"), F_OK) == 0 &&
	          access(in_dir("e.svg"), F_OK) == 0);
	/* Adam's checkpoint into AdamW, whose state has the same names: taken, and said
	 */
	write_text(in_dir("tinyw.yaml"),
	           TINY_HEAD "optimizer: {type: adamw, lr: 0.01}\n"
	                     "train:\n  batch: 8\n  epochs: 3\n  seed: 3\n"
	                     "  validation_split: 0.2\n" NPY_DATA);
	rc = descent("train tinyw.yaml -O1 --resume c/epoch-2.safetensors", out,
	             sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out,
	                              "warning: c/epoch-2.safetensors was saved by a "
	                              "run of adam; this model trains with adamw"));
	/* resuming another model's checkpoint is refused */
	write_text(in_dir("other.yaml"),
	           TINY_HEAD "optimizer: {type: sgd, lr: 0.1, momentum: 0.9}\n"
	                     "train: {batch: 8, validation_split: 0.2}\n" NPY_DATA);
	rc = descent("train other.yaml -O1 --resume c/last.safetensors", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(out, "c/last.safetensors: the checkpoint is of another model"));
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(out, "missing 4: optimizer.fc1.weight.momentum_buffer"));
}

/* The epoch line shows a test loss that is NaN (a sqrt of a negative test input), as
 * "nan": it was left out as if the model had no test set. The parameters are counted
 * as torch's numel() counts them: 1, not the blob's 16 floats. */
static void test_train_shows_a_nan_test_loss_and_counts_parameters(void)
{
	char out[16384], err[512];
	float x[16], t[16], xt[8];
	for (int i = 0; i < 16; i++)
		x[i] = (float)i + 1, t[i] = 1, xt[i % 8] = (float)(i % 8) + 1;
	xt[3] = -1;
	int64_t s16[2] = {16, 1}, s8[2] = {8, 1};
	CU_ASSERT_FATAL(
	    !rt_npy_save(in_dir("nx.npy"), RT_F32, 2, s16, x, err, sizeof err) &&
	    !rt_npy_save(in_dir("nt.npy"), RT_F32, 2, s16, t, err, sizeof err) &&
	    !rt_npy_save(in_dir("nxt.npy"), RT_F32, 2, s8, xt, err, sizeof err) &&
	    !rt_npy_save(in_dir("ntt.npy"), RT_F32, 2, s8, t, err, sizeof err));
	write_text(in_dir("nan.yaml"),
	           "name: nan\ninputs: {x: {shape: [batch, 1]}, t: {shape: [batch, 1]}}\n"
	           "params: {w: {shape: [1], init: 0.5}}\n"
	           "nodes:\n  out: \"sqrt(x) * w\"\noutput: out\n"
	           "loss: {type: mse, target: t}\n"
	           "optimizer: {type: sgd, lr: 0.001}\ntrain: {batch: 4, epochs: 1}\n"
	           "data:\n  train: {x: {npy: nx.npy}, t: {npy: nt.npy}}\n"
	           "  test: {x: {npy: nxt.npy}, t: {npy: ntt.npy}}\n");
	CU_ASSERT_EQUAL(descent("train nan.yaml -O1", out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "nan: 1 parameter, batch 4"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, " test loss nan  lr 0.001"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "final test loss nan after"));
}

/* Images channels last, [8, 8, 3] an example, into a [3, 8, 8] input: the same number
 * of values, read in another order without a word (a scrambled image); now an error
 * at the file, in train as in predict. A flattening or a split of axes keeps the
 * order and is taken: [8, 8, 3] into [192], [3, 64] into [3, 8, 8]. */
static void test_train_refuses_images_in_another_layout(void)
{
	char out[16384], err[512];
	static float img[16 * 8 * 8 * 3];
	int32_t lab[16] = {0};
	int64_t si[4] = {16, 8, 8, 3}, sc[3] = {16, 3, 64}, sl[1] = {16};
	CU_ASSERT_FATAL(
	    !rt_npy_save(in_dir("nhwc.npy"), RT_F32, 4, si, img, err, sizeof err) &&
	    !rt_npy_save(in_dir("c64.npy"), RT_F32, 3, sc, img, err, sizeof err) &&
	    !rt_npy_save(in_dir("lab.npy"), RT_I32, 1, sl, lab, err, sizeof err));
	static const struct {
		const char *file, *shape;
		int ok;
	} cases[] = {{"nhwc", "3, 8, 8", 0}, {"nhwc", "192", 1}, {"c64", "3, 8, 8", 1}};
	for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
		char yaml[1024];
		snprintf(yaml, sizeof yaml,
		         "name: img\ninputs:\n  x: {shape: [batch, %s]}\n"
		         "  y: {shape: [batch], dtype: i32}\nlayers:\n  - flatten\n"
		         "  - dense: {units: 2}\nloss: softmax_cross_entropy\n"
		         "train: {batch: 4, epochs: 1}\n"
		         "data:\n  train: {x: {npy: %s.npy}, y: {npy: lab.npy}}\n",
		         cases[k].shape, cases[k].file);
		write_text(in_dir("img.yaml"), yaml);
		int rc =
		    descent("train img.yaml -O1 -o img.safetensors", out, sizeof out);
		CU_ASSERT_EQUAL(rc, !cases[k].ok);
		CU_ASSERT(
		    (strstr(out,
		            "img.yaml:11:20: error: data.train: nhwc.npy holds "
		            "examples of shape [8, 8, 3]; input 'x' takes [3, 8, 8]: "
		            "the same values in another order (channels last?") !=
		     NULL) == !cases[k].ok);
	}
	/* the last model trained: predict refuses the channels-last file too */
	CU_ASSERT_EQUAL(descent("predict img.yaml --params img.safetensors --input "
	                        "nhwc.npy -o p.csv",
	                        out, sizeof out),
	                1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out,
	                              "error: nhwc.npy holds examples of shape [8, 8, "
	                              "3]; input 'x' takes [3, 8, 8]"));
}

/* SGD at lr 1000 from epoch 2 on (a step schedule): the loss overflows there. */
static void test_train_divergence_stops_with_finite_parameters(void)
{
	char out[16384];
	write_text(
	    in_dir("div.yaml"),
	    "inputs: {x: {shape: [batch, 6]}, t: {shape: [batch, 1]}}\n"
	    "layers: [{dense: {name: fc1, units: 1}}]\n"
	    "loss: {type: mse, target: t}\n"
	    "optimizer: {type: sgd, lr: 0.001}\n"
	    "train:\n  batch: 4\n  epochs: 3\n  schedule: {type: step, step_size: 1, "
	    "gamma: 1000000}\n"
	    "data: {train: {x: {npy: x.npy}, t: {npy: t.npy}}}\n");
	static float t[NEX];
	for (int i = 0; i < NEX; i++)
		t[i] = (float)(i % 7) - 3;
	int64_t shape[2] = {NEX, 1};
	char err[512];
	CU_ASSERT_FATAL(
	    rt_npy_save(in_dir("t.npy"), RT_F32, 2, shape, t, err, sizeof err) == 0);
	int rc = descent("train div.yaml -O1 --checkpoint-dir div", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 1);
	if (!strstr(out, "the step was not taken"))
		fprintf(stderr, "\n%s", out);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(out, "training diverged: the loss or an updated value is "
	                "not finite at step "));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "(epoch 2, step "));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "the step was not taken"));
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(out, "the last good checkpoint is div/epoch-1.safetensors"));
	/* in process: the session keeps finite values */
	Arena *A = arena_new();
	Diags d = {0};
	Model *m;
	char *yaml = read_text(in_dir("div.yaml"), NULL);
	Compiled *c = compile_yaml("div2.yaml", yaml, 0, A, &d, &m);
	free(yaml);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	rt_tensor x, y;
	CU_ASSERT_FATAL(rt_npy_load(in_dir("x.npy"), 0, &x, err, sizeof err) == 0);
	CU_ASSERT_FATAL(rt_npy_load(in_dir("t.npy"), 0, &y, err, sizeof err) == 0);
	rt_session *s = rt_session_new(&c->prog);
	rt_session_init(s, 1);
	rt_trainer_opts o = {.shuffle = 1};
	rt_schedule_defaults(&o.sched, RT_LR_CONSTANT, 1e4);
	rt_trainer *tr = rt_trainer_new(s, &x, &y, &o, err, sizeof err);
	CU_ASSERT_EQUAL(rt_trainer_run(tr, 0, NULL, NULL, NULL, err, sizeof err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "(epoch 1, step "));
	CU_ASSERT(tr->bad_step > 1);
	int finite = 1;
	for (int64_t i = 0; i < c->prog.nparams; i++)
		finite &= isfinite(s->params[i]);
	for (int64_t i = 0; i < c->prog.nstate; i++)
		finite &= isfinite(s->state[i]);
	CU_ASSERT(finite);
	rt_trainer_free(tr);
	rt_session_free(s);
	rt_tensor_free(&x);
	rt_tensor_free(&y);
	compiled_free(c);
	diags_free(&d);
	arena_free(A);
}

/* A hand-written program without the generated guard: its third step writes NaN into
 * the parameter. The trainer puts back the values the run started from. */
static int calls;
static int nan_step(void *const *bufs)
{
	float *p = bufs[RT_PARAMS], *loss = bufs[RT_IO0 + 3];
	p[0] = ++calls == 3 ? NAN : p[0] + 1;
	*loss = p[0];
	return 0;
}

static void test_train_rolls_back_a_program_without_a_guard(void)
{
	static const rt_param param = {"w", 1, {1}, 0, 1, RT_INIT_ZEROS, 0, 1, 1, 1};
	static const rt_io io[] = {{"x", RT_IO_INPUT, RT_F32, 2, {1, 1}, 1, 0},
	                           {"y", RT_IO_INPUT, RT_F32, 2, {1, 1}, 1, 0},
	                           {"weight", RT_IO_INPUT, RT_F32, 1, {1}, 1, 0},
	                           {"loss", RT_IO_OUTPUT, RT_F32, 0, {0}, 1, 0}};
	static const char *const hyper[] = {"lr"};
	static const float hinit[] = {0.1f};
	rt_program p = {.batch = 1,
	                .nparams = 1,
	                .nhyper = 1,
	                .hyper_names = hyper,
	                .hyper_init = hinit,
	                .nparam = 1,
	                .params = &param,
	                .nio = 4,
	                .io = io,
	                .io_x = 0,
	                .io_y = 1,
	                .io_weight = 2,
	                .io_loss = 3,
	                .io_output = -1,
	                .train_step = nan_step};
	float xv[4] = {1, 2, 3, 4};
	rt_tensor x = {RT_F32, 4, 1, {1}, 1, xv}, y = x;
	rt_session *s = rt_session_new(&p);
	rt_session_init(s, 1);
	rt_trainer_opts o = {0};
	rt_schedule_defaults(&o.sched, RT_LR_CONSTANT, 0.1);
	char err[512];
	rt_trainer *t = rt_trainer_new(s, &x, &y, &o, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	calls = 0;
	CU_ASSERT_EQUAL(rt_trainer_run(t, 0, NULL, NULL, NULL, err, sizeof err), -1);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(err, "the loss is nan at step 3 (epoch 1, step 3 of 4 in "
	                "the epoch); the parameters and optimizer state are "
	                "rolled back to step 0"));
	CU_ASSERT_EQUAL(s->params[0], 0);
	CU_ASSERT_EQUAL(s->step, 0);
	CU_ASSERT_EQUAL(t->pos, 0);
	rt_trainer_free(t);
	rt_session_free(s);
}

static int count(const char *s, const char *what)
{
	int n = 0;
	for (; (s = strstr(s, what)); s++)
		n++;
	return n;
}

static void test_train_log_and_plot(void)
{
	char out[16384];
	/* c.csv: written by the resume test's uninterrupted run */
	char *csv = read_text(in_dir("c.csv"), NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(csv);
	const char *head = "epoch,step,lr,train_loss,val_loss,val_accuracy,test_loss,"
	                   "test_accuracy,seconds\n1,12,0.01,";
	CU_ASSERT(!strncmp(csv, head, strlen(head)));
	CU_ASSERT_EQUAL(count(csv, "\n"), 4);
	CU_ASSERT_PTR_NOT_NULL(strstr(csv, "\n3,36,"));
	free(csv);
	/* ticks of large values in 3 digits and an exponent (2e29 had 30 digits); a log
	 * of a header alone has nothing to plot */
	write_text(in_dir("big.csv"),
	           "epoch,step,lr,train_loss,val_loss,val_accuracy,test_loss,"
	           "test_accuracy,seconds\n1,10,0.1,2e29,,,,,1\n2,20,0.1,1e29,,,,,2\n");
	CU_ASSERT_EQUAL(descent("plot big.csv -o big.svg", out, sizeof out), 0);
	char *big = read_text(in_dir("big.svg"), NULL);
	CU_ASSERT(big && strstr(big, ">1e+29</text>") && !strstr(big, "00000000</text>"));
	free(big);
	write_text(
	    in_dir("near.csv"),
	    "epoch,step,lr,train_loss,val_loss,val_accuracy,test_loss,"
	    "test_accuracy,seconds\n1,10,0.1,2.3455e9,,,,,1\n2,20,0.1,2.3496e9,,,,,"
	    "2\n");
	CU_ASSERT_EQUAL(descent("plot near.csv -o near.svg", out, sizeof out), 0);
	big = read_text(in_dir("near.svg"), NULL); /* ticks apart: 2.346e+09, ... */
	CU_ASSERT(big && strstr(big, ">2.346e+09</text>") &&
	          strstr(big, ">2.348e+09</text>"));
	free(big);
	write_text(in_dir("head.csv"), "epoch,step,lr,train_loss\n");
	CU_ASSERT_EQUAL(descent("plot head.csv -o head.svg", out, sizeof out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "no rows to plot"));
	/* a plot is SVG: another extension is refused, not given SVG bytes */
	CU_ASSERT_EQUAL(descent("plot c.csv -o c.png", out, sizeof out), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "-o c.png: plots are SVG"));
	int rc = descent("plot c.csv -o c.svg", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "3 epochs plotted to c.svg"));
	char *svg = read_text(in_dir("c.svg"), NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(svg);
	CU_ASSERT_PTR_NOT_NULL(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(svg, "</svg>\n"));
	CU_ASSERT_EQUAL(count(svg, "<path"), 5); /* 3 losses, 2 accuracies */
	CU_ASSERT_EQUAL(count(svg, "<text"), count(svg, "</text>"));
	CU_ASSERT_EQUAL(count(svg, "<"), count(svg, ">"));
	const char *labels[] = {">Loss<",       ">Accuracy<",        ">epoch<",
	                        ">train loss<", ">validation loss<", ">test accuracy<",
	                        ">c.csv<"};
	for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
		CU_ASSERT_PTR_NOT_NULL(strstr(svg, labels[i]));
	free(svg);
	/* --plot during training; a log that is not one */
	rc = descent("train tiny.yaml -O1 --epochs 1 --plot p.svg", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT(access(in_dir("p.svg"), F_OK) == 0);
	rc = descent("plot x.npy -o q.svg", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 1);
	/* epochs a tick's step cannot move (the tick loop never ended), an infinite
	 * one, and a header's name in the message */
	write_text(in_dir("far.csv"), "epoch,train_loss\n1e17,1\n100000000000000016,2\n");
	CU_ASSERT_EQUAL(descent("plot far.csv -o far.svg", out, sizeof out), 0);
	write_text(in_dir("inf.csv"), "epoch,train_loss\ninf,1\n");
	CU_ASSERT_EQUAL(descent("plot inf.csv -o inf.svg", out, sizeof out), 1);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(out, "inf.csv:2: column 1 (epoch): 'inf' is not a finite number"));
	/* values whose differences overflow: no NaN coordinates */
	write_text(in_dir("huge.csv"),
	           "epoch,train_loss,test_loss\n1,1e308,1\n2,-1e308,1e300\n3,1,-1e300\n");
	CU_ASSERT_EQUAL(descent("plot huge.csv -o huge.svg", out, sizeof out), 0);
	svg = read_text(in_dir("huge.svg"), NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(svg);
	CU_ASSERT_PTR_NULL(strstr(svg, "nan"));
	CU_ASSERT_PTR_NULL(strstr(svg, "inf"));
	CU_ASSERT_EQUAL(count(svg, "<circle"), 4); /* 1e308s are gaps */
	free(svg);
	write_text(in_dir("hugeepoch.csv"), "epoch,train_loss\n1,1\n1e308,1\n");
	CU_ASSERT_EQUAL(descent("plot hugeepoch.csv -o he.svg", out, sizeof out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(
	    out, "hugeepoch.csv:3: column 1 (epoch): '1e308' is too large to plot"));
	/* an infinite loss, as --log writes one: plotted (without it) */
	write_text(in_dir("infloss.csv"),
	           "epoch,train_loss,test_loss\n1,1,inf\n2,0.5,1\n");
	CU_ASSERT_EQUAL(descent("plot infloss.csv -o il.svg", out, sizeof out), 0);
	/* a checkpoint directory named with a slash, not there yet */
	rc = descent("train tiny.yaml -O1 --epochs 1 --checkpoint-dir slash/", out,
	             sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT(access(in_dir("slash/last.safetensors"), F_OK) == 0);
	/* outputs in a checkpoint directory not there yet: it is made for them */
	rc = descent("train tiny.yaml -O1 --epochs 1 --checkpoint-dir fresh -o "
	             "fresh/final.safetensors --log fresh/log.csv",
	             out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT(access(in_dir("fresh/final.safetensors"), F_OK) == 0 &&
	          access(in_dir("fresh/log.csv"), F_OK) == 0 &&
	          access(in_dir("fresh/last.safetensors"), F_OK) == 0);
	/* however the two are spelled; not made when the run stops on an error; and a
	 * ".." there goes through a directory that is not: refused first */
	write_text(in_dir("baddata.yaml"),
	           TINY_HEAD "data: {train: {x: {npy: x.npy}, y: {npy: x.npy}}}\n");
	static const struct {
		const char *args;
		int rc;
		const char *said, *there; /* what must exist after, or not (rc != 0) */
	} fresh[] = {
	    {"train tiny.yaml -O1 --epochs 1 --checkpoint-dir ./fresh2 -o "
	     "fresh2/final.safetensors",
	     0, "parameters written", "fresh2/final.safetensors"},
	    {"train baddata.yaml -O1 --epochs 1 --checkpoint-dir fresh3 -o "
	     "fresh3/final.safetensors",
	     1, "x.npy", "fresh3"},
	    {"train tiny.yaml -O1 --epochs 1 --checkpoint-dir fresh4 -o "
	     "fresh4/sub/../final.safetensors",
	     2, "cannot write there", "fresh4"},
	};
	for (size_t i = 0; i < sizeof fresh / sizeof *fresh; i++) {
		CU_ASSERT_EQUAL(descent(fresh[i].args, out, sizeof out), fresh[i].rc);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, fresh[i].said));
		CU_ASSERT_EQUAL(access(in_dir(fresh[i].there), F_OK) == 0,
		                fresh[i].rc == 0);
	}
	/* outputs that cannot be written, or would overwrite what the run reads or
	 * writes: said before training (no epoch), the files kept */
	static const struct {
		const char *args;
		int rc;
		const char *said;
	} outs[] = {
	    {"train tiny.yaml -O1 --epochs 1 --log nodir/l.csv", 2,
	     "--log nodir/l.csv: cannot write there"},
	    {"plot l.csv -o nodir/p.svg", 2, "-o/--out nodir/p.svg: cannot write there"},
	    {"train tiny.yaml -O1 --epochs 1 --log x.npy", 1,
	     "--log x.npy would overwrite the training data x.npy"},
	    {"train tiny.yaml -O1 --epochs 1 --report ./tiny.yaml", 2,
	     "--report ./tiny.yaml would overwrite tiny.yaml, which this command reads"},
	    {"compile tiny.yaml -o t.o --header t.o", 2,
	     "-o/--out t.o and --header t.o are the same file"},
	    {"train tiny.yaml -O1 --epochs 1 --report r.json --log ./r.json", 2,
	     "--report r.json and --log ./r.json are the same file"},
	    {"train tiny.yaml -O1 --epochs 1 --checkpoint-dir c -o ./c/last.safetensors",
	     1, "-o ./c/last.safetensors is a checkpoint the run writes in"},
	    {"train tiny.yaml -O1 --epochs 1 --checkpoint-dir c -o c/epoch-2.safetensors",
	     1, "-o c/epoch-2.safetensors is a checkpoint the run writes in"},
	    {"train tiny.yaml -O1 --epochs 1 -o ''", 2, "-o/--out : an empty path"},
	    {"train tiny.yaml -O1 --epochs 1 --log ''", 2, "--log : an empty path"},
	    {"train tiny.yaml -O1 --epochs 1 --checkpoint-dir c --log "
	     "c/step-3.safetensors",
	     1, "--log c/step-3.safetensors is a checkpoint the run writes in"},
	    {"train tiny.yaml -O1 --epochs 1 -o p.csv", 1,
	     "-o p.csv: train writes the trained parameters as FILE.safetensors"},
	    {"train tiny.yaml -O1 --epochs 1 --checkpoint-every 2", 1,
	     "--checkpoint-every needs --checkpoint-dir"},
	    {"eval tiny.yaml -O1 --params c/last.safetensors --data-y y.npy", 1,
	     "--data-y needs --data-x"},
	};
	size_t before = 0, after = 0;
	free(read_text(in_dir("x.npy"), &before));
	for (size_t i = 0; i < sizeof outs / sizeof *outs; i++) {
		CU_ASSERT_EQUAL(descent(outs[i].args, out, sizeof out), outs[i].rc);
		if (!strstr(out, outs[i].said))
			fprintf(stderr, "\n  %s\n  want '%s'\n  got: %s", outs[i].args,
			        outs[i].said, out);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, outs[i].said));
		CU_ASSERT_PTR_NULL(strstr(out, "epoch 1"));
	}
	free(read_text(in_dir("x.npy"), &after));
	CU_ASSERT(before > 0 && after == before);
	/* a descriptor's path (as /dev/stderr, through a link of the test's own) takes
	 * them all, written where it leads (the pipe the output is read from), the
	 * link kept */
	CU_ASSERT_FATAL(symlink("/proc/self/fd/2", in_dir("se")) == 0);
	rc =
	    descent("train tiny.yaml -O1 --epochs 1 --log se --plot se", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "epoch,step,lr,train_loss"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "<svg xmlns"));
	struct stat st;
	CU_ASSERT(lstat(in_dir("se"), &st) == 0 && S_ISLNK(st.st_mode));
	/* the report is JSON: no NaN (no training: no train loss) */
	rc = descent("train tiny.yaml -O1 --epochs 0 --report r0.json", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	char *json = read_text(in_dir("r0.json"), NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(json);
	CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"train_loss\": null,"));
	CU_ASSERT_PTR_NULL(strstr(json, "nan"));
	free(json);
}

static void test_train_eval_and_predict(void)
{
	char out[16384];
	int rc =
	    descent("eval tiny.yaml -O1 --params c/last.safetensors", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "the test set: 120 examples  loss "));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "accuracy "));
	rc = descent("eval tiny.yaml -O1 --params c/last.safetensors --data-x train.csv "
	             "--label label",
	             out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "train.csv: 120 examples"));
	/* a --label that names nothing: said, not silently ignored */
	rc = descent("eval tiny.yaml -O1 --params c/last.safetensors --data-x x.npy "
	             "--data-y y.npy --label label",
	             out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "warning: --label label: x.npy is not a CSV "
	                                   "file, and --label names a CSV's column"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "x.npy: 120 examples"));
	rc = descent(
	    "predict tiny.yaml -O1 --params c/last.safetensors --input x.npy -o p.npy",
	    out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	rt_tensor p = {0};
	char err[512];
	CU_ASSERT_FATAL(rt_npy_load(in_dir("p.npy"), 0, &p, err, sizeof err) == 0);
	CU_ASSERT(p.n == NEX && p.rank == 1 && p.dims[0] == 3);
	rc = descent(
	    "predict tiny.yaml -O1 --params c/last.safetensors --input train.csv --label "
	    "label -o p.csv",
	    out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	char *csv = read_text(in_dir("p.csv"), NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(csv);
	CU_ASSERT(!strncmp(csv, "output_0,output_1,output_2,class\n", 33));
	CU_ASSERT_EQUAL(count(csv, "\n"), NEX + 1);
	/* the class column is the argmax of the row, and the CSV's rows are p.npy's */
	const char *row = strchr(csv, '\n') + 1;
	float v[3];
	int cls;
	CU_ASSERT(sscanf(row, "%f,%f,%f,%d", &v[0], &v[1], &v[2], &cls) == 4);
	int32_t want;
	rt_argmax_rows(p.data, 1, 3, &want);
	CU_ASSERT_EQUAL(cls, want);
	CU_ASSERT(fabs(v[0] - ((float *)p.data)[0]) < 1e-6);
	free(csv);
	rt_tensor_free(&p);
	/* a first row with one bad cell is data with an error, not a header (which
	 * dropped the row); a row of names is a header */
	write_text(in_dir("typo.csv"), "1,2,3,x,5,6\n1,2,3,4,5,6\n");
	rc = descent("predict tiny.yaml -O1 --params c/last.safetensors --input typo.csv "
	             "-o t.csv",
	             out, sizeof out);
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "row 1, column 4: 'x' is not a number"));
	/* a header of numbers (pandas' default names) with the label's name in it */
	char *train = read_text(in_dir("train.csv"), NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(train);
	FILE *nh = fopen(in_dir("numhdr.csv"), "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(nh);
	fprintf(nh, "0,1,2,3,4,5,label\n%s", strchr(train, '\n') + 1);
	fclose(nh);
	free(train);
	rc = descent("eval tiny.yaml -O1 --params c/last.safetensors --data-x numhdr.csv "
	             "--label label",
	             out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "numhdr.csv: 120 examples"));
	write_text(in_dir("named.csv"), "a,b,c,d,e,f\n1,2,3,4,5,6\n");
	rc =
	    descent("predict tiny.yaml -O1 --params c/last.safetensors --input named.csv "
	            "-o t.csv",
	            out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "1 prediction"));
	/* inputs that are not finite are refused, as CSV's nan is (and nothing is
	 * written); finite inputs whose outputs overflow are predicted, and said */
	static const struct {
		const char *file;
		float v;
		int rc;
		const char *said;
	} odd[] = {{"nan.npy", NAN, 1,
	            "nan.npy: element 7 (row 1) is nan; the data must be finite"},
	           {"big.npy", FLT_MAX, 0,
	            "warning: big.npy: 1 of 3 rows give outputs that are not finite (the "
	            "first: row 2, counted from 1)"}};
	for (int i = 0; i < 2; i++) {
		float nx[3][NFEAT] = {{1}, {1}, {1}};
		for (int j = 0; j < NFEAT; j++)
			if (i || j == 1)
				nx[1][j] = odd[i].v;
		int64_t ns[2] = {3, NFEAT};
		CU_ASSERT_FATAL(rt_npy_save(in_dir(odd[i].file), RT_F32, 2, ns, nx, err,
		                            sizeof err) == 0);
		char cmd[256];
		snprintf(
		    cmd, sizeof cmd,
		    "predict tiny.yaml -O1 --params c/last.safetensors --input %s -o "
		    "n.csv",
		    odd[i].file);
		CU_ASSERT_EQUAL(descent(cmd, out, sizeof out), odd[i].rc);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, odd[i].said));
		CU_ASSERT_EQUAL(access(in_dir("n.csv"), F_OK) == 0, odd[i].rc == 0);
	}
	/* an autoencoder (a model of one input, its own target: it read the data sources
	 * at index -1, then was refused) trains; -o writes its parameters, and eval's
	 * loss is mean((x W^T + b - x)^2) computed here from them, with x as the target
	 */
	write_text(in_dir("ae.yaml"),
	           "inputs: {x: {shape: [batch, 6]}}\n"
	           "nodes: {h: \"dense(x, units=6)\"}\nloss: \"mean((h - x)^2)\"\n"
	           "optimizer: {type: adam, lr: 0.01}\n"
	           "data: {train: {x: {npy: x.npy}}}\n");
	rc = descent("train ae.yaml -O1 --epochs 3 -o ae.safetensors --test-limit 5", out,
	             sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(out, "warning: --test-limit: the model has no test set"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "parameters written to ae.safetensors"));
	rc = descent("eval ae.yaml -O1 --params ae.safetensors --data-x x.npy", out,
	             sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	const char *said = strstr(out, "loss ");
	double eval_loss = said ? atof(said + 5) : NAN;
	rt_st_file f;
	rt_tensor x;
	CU_ASSERT_FATAL(rt_st_load(in_dir("ae.safetensors"), &f, err, sizeof err) == 0);
	CU_ASSERT_FATAL(rt_npy_load(in_dir("x.npy"), 0, &x, err, sizeof err) == 0);
	const rt_st_tensor *W = rt_st_find(&f, "h.weight"), *b = rt_st_find(&f, "h.bias");
	CU_ASSERT_FATAL(W && b && x.stride == 6);
	double sum = 0;
	for (int64_t i = 0; i < x.n; i++)
		for (int o = 0; o < 6; o++) {
			const float *xi = (const float *)x.data + i * 6;
			double h = ((const float *)b->data)[o];
			for (int k = 0; k < 6; k++)
				h += (double)((const float *)W->data)[o * 6 + k] * xi[k];
			sum += (h - xi[o]) * (h - xi[o]);
		}
	double mean = sum / (double)(x.n * 6);
	CU_ASSERT(fabs(eval_loss - mean) <= 1e-5 * mean + 1e-6);
	rt_st_free(&f);
	rt_tensor_free(&x);
	/* from a CSV of the input's columns alone, which a label would contradict */
	write_text(in_dir("aecsv.yaml"),
	           "inputs: {x: {shape: [batch, 6]}}\n"
	           "nodes: {h: \"dense(x, units=6)\"}\nloss: \"mean((h - x)^2)\"\n"
	           "data: {train: {csv: ae.csv}}\n");
	FILE *ac = fopen(in_dir("ae.csv"), "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(ac);
	fprintf(ac, "a,b,c,d,e,f\n");
	for (int i = 0; i < 40; i++)
		fprintf(ac, "%d,%d,%d,%d,%d,%d\n", i % 3, i % 5, i % 7, 1, 0, i % 2);
	fclose(ac);
	rc = descent("train aecsv.yaml -O1 --epochs 1", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "40 training examples"));
	write_text(in_dir("aecsv.yaml"),
	           "inputs: {x: {shape: [batch, 6]}}\n"
	           "nodes: {h: \"dense(x, units=6)\"}\nloss: \"mean((h - x)^2)\"\n"
	           "data: {train: {csv: ae.csv, label: a}}\n");
	rc = descent("train aecsv.yaml -O1 --epochs 1", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "aecsv.yaml:4:29: error: a model of one input "
	                                   "('x') takes its CSV's columns alone: no "
	                                   "label"));
	/* its target is its input: no --data-y; a loss without a target (mean(h^2))
	 * trains from the input's data too */
	rc = descent(
	    "eval ae.yaml -O1 --params ae.safetensors --data-x x.npy --data-y y.npy", out,
	    sizeof out);
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out,
	                              "the target of ae.yaml is its network's input 'x', "
	                              "from --data-x"));
	/* models whose target is their network's input train from its data and every
	 * other input's: a loss without a target (mean(h^2)); an autoencoder with an
	 * embedding's indices beside its input (the indices, the first other input a
	 * node reaches, had made it a classifier of them) */
	static const struct {
		const char *yaml, *said;
	} own[] = {
	    {"inputs: {x: {shape: [batch, 6]}}\n"
	     "nodes: {h: \"dense(x, units=6)\"}\nloss: \"mean(h^2)\"\n"
	     "data: {train: {x: {npy: x.npy}}}\n",
	     "final train loss"},
	    {"input: x\ninputs: {x: {shape: [batch, 6]}, c: {shape: [batch], "
	     "dtype: i32}}\n"
	     "nodes: {e: \"embedding(c, num_embeddings=3, embedding_dim=6)\", "
	     "out: \"dense(x + e, units=6)\"}\nloss: \"mse(out, x)\"\n"
	     "data:\n  train: {x: {npy: x.npy}, c: {npy: y.npy}}\n"
	     "  test: {x: {npy: x.npy}, c: {npy: y.npy}}\n",
	     "final test loss"},
	};
	for (size_t i = 0; i < sizeof own / sizeof *own; i++) {
		write_text(in_dir("own.yaml"), own[i].yaml);
		rc = descent("train own.yaml -O1 --epochs 1", out, sizeof out);
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, own[i].said));
		CU_ASSERT_PTR_NULL(strstr(out, "accuracy"));
	}
	/* a third input: data feed it too (rt_session_feed), in training and in eval
	 * of the test set; predict, fed from --input alone, refuses a network that reads
	 * it, and runs one whose loss alone reads it */
	static const char three_head[] =
	    "input: x\ninputs: {x: {shape: [batch, 6]}, z: {shape: [batch, 6]}, "
	    "y: {shape: [batch], dtype: i32}}\n"
	    "data: {train: {x: {npy: x.npy}, z: {npy: x.npy}, y: {npy: y.npy}}}\n";
	static const struct {
		const char *net; /* nodes and loss */
		int predict_rc;
		const char *predict_said;
	} three[] = {
	    {"nodes: {h: \"dense(x + z, units=3)\"}\n"
	     "loss: \"softmax_cross_entropy(h, y)\"\n",
	     1,
	     "three.yaml: error: input 'z' would never be fed: --input feeds the "
	     "network's input 'x' alone"},
	    {"nodes: {fc1: \"dense(x, units=16, activation=relu)\", "
	     "fc2: \"dense(fc1, units=3)\"}\n"
	     "loss: \"softmax_cross_entropy(fc2, y) + 0 * sum(z)\"\n",
	     0, "predictions"},
	};
	char yaml[1024];
	for (int i = 0; i < 2; i++) {
		snprintf(yaml, sizeof yaml, "%s%s", three_head, three[i].net);
		write_text(in_dir("three.yaml"), yaml);
		rc = descent("train three.yaml -O1 --epochs 1", out, sizeof out);
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "120 training examples"));
		rc = descent("predict three.yaml -O1 --params c/last.safetensors --input "
		             "x.npy -o t3.csv",
		             out, sizeof out);
		CU_ASSERT_EQUAL(rc, three[i].predict_rc);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, three[i].predict_said));
		CU_ASSERT_EQUAL(access(in_dir("t3.csv"), F_OK) == 0,
		                three[i].predict_rc == 0);
	}
	/* a per-example weight as an input of its own: eval's loss on the test set is
	 * the mean over batches of 10 of sum(w (fc - t)^2) / sum(w), computed here from
	 * the saved parameters with half the weights 0 (not fed, w would be 0 and the
	 * loss NaN) */
	float tx[40][6], tt[40], tw[40];
	for (int i = 0; i < 40; i++) {
		tt[i] = 0, tw[i] = (float)(i % 2);
		for (int j = 0; j < 6; j++)
			tx[i][j] = (float)((i * 7 + j * 3) % 11) / 11,
			tt[i] += (float)j * tx[i][j];
	}
	int64_t s6[2] = {40, 6}, s1[2] = {40, 1};
	CU_ASSERT_FATAL(
	    !rt_npy_save(in_dir("wx.npy"), RT_F32, 2, s6, tx, err, sizeof err) &&
	    !rt_npy_save(in_dir("wt.npy"), RT_F32, 2, s1, tt, err, sizeof err) &&
	    !rt_npy_save(in_dir("ww.npy"), RT_F32, 2, s1, tw, err, sizeof err));
	write_text(
	    in_dir("w.yaml"),
	    "input: x\n"
	    "inputs: {x: {shape: [batch, 6]}, t: {shape: [batch, 1]}, "
	    "w: {shape: [batch, 1]}}\n"
	    "nodes: {fc: \"dense(x, units=1)\"}\n"
	    "loss: \"sum(w * (fc - t)^2) / sum(w)\"\n"
	    "optimizer: {type: adam, lr: 0.05}\ntrain: {batch: 10, epochs: 5}\n"
	    "data:\n  train: {x: {npy: wx.npy}, t: {npy: wt.npy}, w: {npy: ww.npy}}\n"
	    "  test: {x: {npy: wx.npy}, t: {npy: wt.npy}, w: {npy: ww.npy}}\n");
	rc = descent("train w.yaml -O1 -o w.safetensors", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	rc = descent("eval w.yaml -O1 --params w.safetensors", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	const char *wsaid = strstr(out, "loss ");
	double wloss = wsaid ? atof(wsaid + 5) : NAN, wmean = 0;
	rt_st_file wf;
	CU_ASSERT_FATAL(rt_st_load(in_dir("w.safetensors"), &wf, err, sizeof err) == 0);
	const float *fw = rt_st_find(&wf, "fc.weight")->data,
	            *fb = rt_st_find(&wf, "fc.bias")->data;
	for (int b0 = 0; b0 < 40; b0 += 10) {
		double num = 0, den = 0;
		for (int i = b0; i < b0 + 10; i++) {
			double fc = fb[0];
			for (int j = 0; j < 6; j++)
				fc += (double)fw[j] * tx[i][j];
			num += tw[i] * (fc - tt[i]) * (fc - tt[i]), den += tw[i];
		}
		wmean += num / den / 4;
	}
	CU_ASSERT(fabs(wloss - wmean) <= 1e-5 * wmean + 1e-6);
	rt_st_free(&wf);
	/* 'target:' with the short form 'loss: mse' in a model of two inputs: the other
	 * is the network's (it took the first, the target, as both) */
	write_text(in_dir("st.yaml"),
	           "inputs: {t: {shape: [batch, 1]}, x: {shape: [batch, 6]}}\n"
	           "target: t\nlayers: [{dense: {units: 1}}]\nloss: mse\n");
	rc = descent("compile st.yaml -o st.o --header st.h", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	char *sth = read_text(in_dir("st.h"), NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sth);
	CU_ASSERT_PTR_NOT_NULL(strstr(sth, ".io_x = 1, .io_y = 0"));
	free(sth);
	/* its target: the first input its loss names (w), or the one 'target:' names;
	 * --data-y stands for it */
	for (int named = 0; named < 2; named++) {
		char *wy = read_text(in_dir("w.yaml"), NULL), wyaml[1024];
		CU_ASSERT_PTR_NOT_NULL_FATAL(wy);
		snprintf(wyaml, sizeof wyaml, "%s%s", named ? "target: t\n" : "", wy);
		free(wy);
		write_text(in_dir("wn.yaml"), wyaml);
		rc = descent("eval wn.yaml -O1 --params w.safetensors --data-x wx.npy "
		             "--data-y wt.npy",
		             out, sizeof out);
		CU_ASSERT_EQUAL(rc, 1);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, named
		                                       ? "the loss's target 't' alone"
		                                       : "the loss's target 'w' alone"));
	}
	/* without 'input:', which one the network takes is not said */
	write_text(in_dir("three.yaml"), yaml + strlen("input: x\n"));
	rc = descent("eval three.yaml -O1 --params c/last.safetensors", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out,
	                              "three.yaml: error: the model has 3 inputs and "
	                              "does not name the network's"));
	/* an option the command does not read is an error, not ignored */
	rc = descent("eval ae.yaml --params ae.safetensors --epochs 3", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 2);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(out, "eval takes no --epochs; its options: --params"));
	/* a command without its file says which it needs */
	rc = descent("eval --params ae.safetensors", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "eval needs a model file (MODEL.yaml)"));
	/* a parameters file of another model */
	rc = descent("eval es.yaml --params nothing.safetensors", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "nothing.safetensors"));
}

/* ---- data sources ---- */

static void test_train_csv_and_npy_sources(void)
{
	char out[16384];
	write_text(in_dir("csv.yaml"),
	           TINY_HEAD "optimizer: {type: adam, lr: 0.02}\n"
	                     "train: {batch: 16, epochs: 2}\n"
	                     "data:\n  train: {csv: train.csv, label: label}\n"
	                     "  test: {x: {npy: x.npy}, y: {npy: y.npy}}\n");
	int rc = descent("train csv.yaml -O1", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "120 training examples"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "final test accuracy"));
	/* a bad cell: the loader names file, row and column */
	char *csv = read_text(in_dir("train.csv"), NULL);
	char *p = strstr(csv, "\n") + 1;
	p = strstr(p, "\n") + 1; /* row 3 of the file */
	memcpy(p, "abc", 3);
	write_text(in_dir("bad.csv"), csv);
	free(csv);
	write_text(in_dir("badcsv.yaml"),
	           TINY_HEAD "data: {train: {csv: bad.csv, label: label}}\n");
	rc = descent("train badcsv.yaml -O1", out, sizeof out);
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "bad.csv"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "row 3") ? strstr(out, "row 3")
	                                            : strstr(out, ":3"));
	/* mistakes in the train and data sections are located errors */
	static const struct {
		const char *yaml, *want;
	} bad[] = {
	    {"train: {schedule: {type: cosine}}\n", "missing key 'T_max'"},
	    {"train: {schedule: {type: cosine, T_max: 3, gamma: 0.5}}\n", "'gamma'"},
	    {"train: {schedule: {type: linear}}\n", "linear"},
	    {"train: {warmup: {start_factor: 0.1}}\n", "the warm-up needs its length"},
	    {"train: {validation_split: 1.5}\n", "validation_split"},
	    {"data: {train: {x: {npy: a.npy, idx: b}, y: {npy: y.npy}}}\n",
	     "has both 'idx' and 'npy'"},
	    {"data: {train: {csv: a.csv}}\n", "missing key 'label'"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char yaml[2048];
		snprintf(yaml, sizeof yaml, TINY_HEAD "%s", bad[i].yaml);
		write_text(in_dir("bad.yaml"), yaml);
		rc = descent("train bad.yaml", out, sizeof out);
		CU_ASSERT_EQUAL(rc, 1);
		if (!strstr(out, bad[i].want))
			fprintf(stderr, "\n  want '%s'\n  got: %s", bad[i].want, out);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, bad[i].want));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "bad.yaml:10:"));
	}
}

static void test_train_accumulate_in_the_cli(void)
{
	char out[16384];
	int rc = descent("train tiny.yaml -O1 --epochs 1 --accumulate 3 --log acc.csv",
	                 out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	char *csv = read_text(in_dir("acc.csv"), NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(csv);
	CU_ASSERT_PTR_NOT_NULL(strstr(csv, "\n1,4,")); /* 12 micro-batches, 4 steps */
	free(csv);
}

void suite_train(void)
{
	static CU_TestInfo tests[] = {
	    {"test_train_schedules_match_torch_formulas",
	     test_train_schedules_match_torch_formulas},
	    {"test_train_plateau_follows_torch", test_train_plateau_follows_torch},
	    {"test_train_early_stopping_counts_epochs_without_improvement",
	     test_train_early_stopping_counts_epochs_without_improvement},
	    {"test_train_early_stopping_stops_the_run",
	     test_train_early_stopping_stops_the_run},
	    {"test_train_accumulation_equals_one_big_batch",
	     test_train_accumulation_equals_one_big_batch},
	    {"test_train_loss_kinds", test_train_loss_kinds},
	    {"test_train_checkpoint_round_trip_resumes_exactly",
	     test_train_checkpoint_round_trip_resumes_exactly},
	    {"test_train_corrupted_checkpoints_are_refused",
	     test_train_corrupted_checkpoints_are_refused},
	    {"test_train_refuses_images_in_another_layout",
	     test_train_refuses_images_in_another_layout},
	    {"test_train_shows_a_nan_test_loss_and_counts_parameters",
	     test_train_shows_a_nan_test_loss_and_counts_parameters},
	    {"test_train_resume_refuses_a_negative_running_variance",
	     test_train_resume_refuses_a_negative_running_variance},
	    {"test_train_resume_in_a_new_process_is_bitwise_identical",
	     test_train_resume_in_a_new_process_is_bitwise_identical},
	    {"test_train_divergence_stops_with_finite_parameters",
	     test_train_divergence_stops_with_finite_parameters},
	    {"test_train_rolls_back_a_program_without_a_guard",
	     test_train_rolls_back_a_program_without_a_guard},
	    {"test_train_log_and_plot", test_train_log_and_plot},
	    {"test_train_eval_and_predict", test_train_eval_and_predict},
	    {"test_train_csv_and_npy_sources", test_train_csv_and_npy_sources},
	    {"test_train_accumulate_in_the_cli", test_train_accumulate_in_the_cli},
	    CU_TEST_INFO_NULL,
	};
	CU_pSuite s = CU_add_suite("train", setup, cleanup);
	for (CU_TestInfo *t = tests; s && t->pName; t++)
		CU_add_test(s, t->pName, t->pTestFunc);
}
