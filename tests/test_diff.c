/* Differential testing: for every model in models/, the JIT's forward values, loss,
 * gradients and optimizer update, compiled at -O0 and at -O3, match the float64
 * reference interpreter (eval.c) evaluating the same graph on the same values. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dc.h"
#include "tests.h"

static Node *out_node(Graph *g, FnKind fn, DestKind kind, int index)
{
	for (int i = 0; i < g->fns[fn].nouts; i++)
		if (g->fns[fn].outs[i].kind == kind && g->fns[fn].outs[i].index == index)
			return g->fns[fn].outs[i].node;
	return NULL;
}

/* Compares n values of the JIT (float32) against the interpreter's (float64): each
 * within tol of its own size plus the tensor's, the largest |value| but at least 1e-3
 * (a gradient that is 0 in exact arithmetic comes out of float sums as 1e-8) and at
 * most 1. It was tol (1 + |value|), an absolute 2e-3 for gradients, which half of a
 * layer's weight gradient stay under whatever their values. */
static int agree(const char *what, const char *model, int level, const float *jit,
                 const double *ref, int64_t n, double tol)
{
	double scale = 0;
	for (int64_t i = 0; i < n; i++)
		scale = fmax(scale, fabs(ref[i]));
	scale = fmin(fmax(scale, 1e-3), 1);
	for (int64_t i = 0; i < n; i++)
		if (!(fabs(jit[i] - ref[i]) <= tol * (fabs(ref[i]) + scale))) {
			fprintf(stderr, "\n%s -O%d: %s[%lld]: jit %g, reference %g\n",
			        model, level, what, (long long)i, jit[i], ref[i]);
			return 0;
		}
	return 1;
}

/* A session of p: parameters initialized from init_seed, random inputs from
 * input_seed. */
static rt_session *session_with_inputs(const rt_program *p, uint64_t init_seed,
                                       uint64_t input_seed)
{
	rt_session *s = rt_session_new(p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	rt_session_init(s, init_seed);
	rt_rng rng;
	rt_rng_seed(&rng, input_seed);
	random_inputs(s, &rng);
	return s;
}

/* path's model at batch size batch, for the target cpu with features (NULL: the host) */
static void check_model_at(const char *path, const char *name, int level, const char *cpu,
                           const char *features, int64_t batch)
{
	Arena *A = arena_new();
	Diags d = {0};
	CodegenOpts o = {
	    .opt_level = level, .cpu = cpu, .features = features, .check_dedupe = 1};
	Compiled *c = compile_path(A, &d, path, batch, &o, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	const rt_program *p = &c->prog;
	rt_session *s = session_with_inputs(p, 11, 5);
	/* the same values in float64 */
	double *params = malloc((size_t)(p->nparams + 1) * sizeof *params);
	double *state = malloc((size_t)(p->nstate + 1) * sizeof *state),
	       *hyper = malloc(16 * sizeof *hyper);
	for (int64_t i = 0; i < p->nparams; i++)
		params[i] = s->params[i];
	for (int64_t i = 0; i < p->nstate; i++)
		state[i] = s->state[i];
	for (int i = 0; i < p->nhyper && i < 16; i++)
		hyper[i] = s->hyper[i];
	const double *io[16] = {0};
	double *iov[16] = {0};
	for (int k = 0; k < p->nio && k < 16; k++) {
		iov[k] = calloc((size_t)p->io[k].numel + 1, sizeof(double));
		for (int64_t i = 0; p->io[k].kind == RT_IO_INPUT && i < p->io[k].numel;
		     i++)
			iov[k][i] = p->io[k].dtype == RT_I32 ? ((int32_t *)s->io[k])[i]
			                                     : ((float *)s->io[k])[i];
		io[k] = iov[k];
	}
	EvalEnv env = {params, state, NULL, hyper, io, NULL, 0};
	Graph *g = c->g;
	int ok = 1;
	if (p->grad) { /* loss and gradients */
		p->grad(s->bufs);
		double *loss =
		    eval_node(g, out_node(g, FN_GRAD, DEST_IO, p->io_loss), &env);
		ok &= agree("loss", name, level, s->io[p->io_loss], loss, 1, 1e-4);
		free(loss);
		for (int i = 0; i < p->nparam && ok; i++) {
			Node *gn = out_node(g, FN_GRAD, DEST_GRAD, i);
			double *want = eval_node(g, gn, &env);
			ok &= agree(p->params[i].name, name, level,
			            s->grads + p->params[i].offset, want,
			            p->params[i].numel, 2e-3);
			free(want);
		}
		/* grad's forward wrote back batch norm's running statistics and dropout's
		 * counter: what follows starts from them */
		for (int64_t i = 0; i < p->nparams; i++)
			params[i] = s->params[i];
		for (int64_t i = 0; i < p->nstate; i++)
			state[i] = s->state[i];
	}
	if (p->forward && p->io_output >= 0 && ok) { /* forward values */
		p->forward(s->bufs);
		double *want =
		    eval_node(g, out_node(g, FN_FORWARD, DEST_IO, p->io_output), &env);
		ok &= agree("output", name, level, s->io[p->io_output], want,
		            p->io[p->io_output].numel, 1e-4);
		free(want);
	}
	if (ok) { /* the fused step: updated parameters */
		double **want = calloc((size_t)p->nparam + 1, sizeof *want);
		for (int i = 0; i < p->nparam; i++) {
			Node *u = out_node(g, FN_TRAIN_STEP, DEST_PARAM, i);
			want[i] = u ? eval_node(g, u, &env) : NULL;
		}
		p->train_step(s->bufs);
		for (int i = 0; i < p->nparam && ok; i++)
			if (want[i])
				ok &= agree(p->params[i].name, name, level,
				            s->params + p->params[i].offset, want[i],
				            p->params[i].numel, 1e-4);
		for (int i = 0; i < p->nparam; i++)
			free(want[i]);
		free(want);
	}
	for (int i = 0; i < p->nstates && ok; i++) { /* and the new optimizer state */
		Node *u = out_node(g, FN_TRAIN_STEP, DEST_STATE, i);
		double *want = u ? eval_node(g, u, &env) : NULL;
		if (want)
			ok &= agree(p->states[i].name, name, level,
			            s->state + p->states[i].offset, want,
			            p->states[i].numel, 1e-4);
		free(want);
	}
	CU_ASSERT(ok);
	for (int k = 0; k < 16; k++)
		free(iov[k]);
	free(params), free(state), free(hyper);
	rt_session_free(s);
	compiled_free(c);
	diags_free(&d);
	arena_free(A);
}

static void check_model(const char *path, const char *name, int level, const char *cpu,
                        const char *features)
{
	check_model_at(path, name, level, cpu, features, 2);
}

static void test_diff_every_model_matches_the_reference_at_O0_and_O3(void)
{
	const char *const *models = model_files();
	int seen = 0;
	for (; models[seen]; seen++) {
		const char *name = strrchr(models[seen], '/') + 1;
		check_model(models[seen], name, 0, NULL, NULL);
		check_model(models[seen], name, 3, NULL, NULL);
	}
	CU_ASSERT(seen >= 4);
}

/* Three training steps of a model at its own batch size on n threads: the loss,
 * parameters and state after them. */
typedef struct Run {
	float loss;
	float *params, *state;
} Run;

static Run run_steps(const Compiled *c, int threads)
{
	const rt_program *p = &c->prog;
	CU_ASSERT_EQUAL(rt_set_threads(threads), 0);
	rt_session *s = session_with_inputs(p, 3, 9);
#if defined(__x86_64__)
	unsigned before = __builtin_ia32_stmxcsr();
#endif
	for (int i = 0; i < 3; i++)
		p->train_step(s->bufs);
#if defined(__x86_64__)
	/* compiled code flushes denormals while it runs, and gives the caller's floating-
	 * point state back */
	CU_ASSERT_EQUAL(__builtin_ia32_stmxcsr(), before);
	volatile float tiny = 1e-30f;
	CU_ASSERT(tiny * 1e-10f > 0); /* a denormal here, not 0 */
#endif
	Run r = {((float *)s->io[p->io_loss])[0],
	         malloc((size_t)p->nparams * sizeof(float) + 1),
	         malloc((size_t)p->nstate * sizeof(float) + 1)};
	memcpy(r.params, s->params, (size_t)p->nparams * sizeof(float));
	memcpy(r.state, s->state, (size_t)p->nstate * sizeof(float));
	rt_session_free(s);
	rt_set_threads(1);
	return r;
}

static int same_run(const rt_program *p, Run a, Run b)
{
	return !memcmp(&a.loss, &b.loss, sizeof a.loss) &&
	       !memcmp(a.params, b.params, (size_t)p->nparams * sizeof(float)) &&
	       !memcmp(a.state, b.state, (size_t)p->nstate * sizeof(float));
}

/* Whether path's model at batch size batch (its own when 0) gives the bits on 2 and 3
 * threads that it gives on 1, run after run; *parallel counts those that share loops. */
static int threads_agree(const char *path, int64_t batch, int *parallel)
{
	Arena *A = arena_new();
	Diags d = {0};
	CodegenOpts o = {.opt_level = 2};
	Compiled *c = compile_path(A, &d, path, batch, &o, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	ObjCode ir;
	int64_t nwork;
	CodegenOpts lo = {.opt_level = 0, .emit = EMIT_LLVM};
	CU_ASSERT_FATAL(cg_compile(c->g, &lo, &ir, &nwork, NULL) == 0);
	*parallel += strstr(ir.data, "call void @rt_parallel_for") != NULL;
	objcode_free(&ir);
	Run one = run_steps(c, 1), two = run_steps(c, 2), again = run_steps(c, 2),
	    three = run_steps(c, 3);
	int same = same_run(&c->prog, one, two) && same_run(&c->prog, two, again) &&
	           same_run(&c->prog, one, three);
	if (!same)
		fprintf(stderr, "\n%s: results differ across thread counts\n", path);
	Run all[4] = {one, two, again, three};
	for (int i = 0; i < 4; i++)
		free(all[i].params), free(all[i].state);
	compiled_free(c);
	diags_free(&d);
	arena_free(A);
	return same;
}

/* threads_agree for a model given as YAML text, which must share loops between
 * threads (or the test would prove nothing) */
static int yaml_threads_agree(const char *name, const char *yaml, int64_t batch)
{
	char dir[] = "/tmp/descent-diff-XXXXXX", path[64];
	temp_file(dir, path, sizeof path, name, yaml);
	int parallel = 0, same = threads_agree(path, batch, &parallel);
	CU_ASSERT(parallel == 1);
	remove(path);
	rmdir(dir);
	return same;
}

/* The JIT optimizes its module in one part on one core and in two on more (compile.c):
 * a model's code must not depend on which part a kernel lands in. Small convolutions,
 * whose filter gradients are loops left to LLVM's vectorizer, next to products and
 * patch copies for the whole pipeline: their gradients, and the parameters after a few
 * steps, are the same bits either way. */
static void test_diff_one_part_or_two_give_identical_results(void)
{
	char dir[] = "/tmp/descent-diff-XXXXXX", path[64];
	temp_file(dir, path, sizeof path, "parts.yaml",
	          "name: parts\n"
	          "inputs:\n"
	          "  image: {shape: [batch, 3, 5, 5]}\n"
	          "  label: {shape: [batch], dtype: i32}\n"
	          "nodes:\n"
	          "  a: \"conv2d(image, out_channels=4, kernel_size=3)\"\n"
	          "  b: \"conv2d(image, out_channels=5, kernel_size=3, padding=1)\"\n"
	          "  c: \"conv2d(image, out_channels=3, kernel_size=[1, 5])\"\n"
	          "  d: \"conv2d(image, out_channels=2, kernel_size=1, padding=0)\"\n"
	          "  o: \"dense(flatten(relu(a)), units=5) + dense(flatten(relu(b)), "
	          "units=5) + dense(flatten(c), units=5) + dense(flatten(d), units=5)\"\n"
	          "loss: \"softmax_cross_entropy(o, label)\"\n"
	          "optimizer: {type: sgd, lr: 0.01}\n");
	float *grads[2] = {NULL, NULL};
	Run runs[2];
	Compiled *c[2];
	Arena *A = arena_new();
	Diags d = {0};
	for (int k = 0; k < 2; k++) {
		CodegenOpts o = {.opt_level = 3, .shards = k + 1, .check_dedupe = 1};
		c[k] = compile_path(A, &d, path, 64, &o, NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(c[k]);
		const rt_program *p = &c[k]->prog;
		rt_session *s = session_with_inputs(p, 3, 9);
		p->grad(s->bufs);
		grads[k] = malloc((size_t)p->nparams * sizeof(float));
		CU_ASSERT_PTR_NOT_NULL_FATAL(grads[k]);
		memcpy(grads[k], s->grads, (size_t)p->nparams * sizeof(float));
		rt_session_free(s);
		runs[k] = run_steps(c[k], 1);
	}
	const rt_program *p = &c[0]->prog;
	CU_ASSERT(!memcmp(grads[0], grads[1], (size_t)p->nparams * sizeof(float)));
	CU_ASSERT(same_run(p, runs[0], runs[1]));
	for (int k = 0; k < 2; k++) {
		free(grads[k]), free(runs[k].params), free(runs[k].state);
		compiled_free(c[k]);
	}
	diags_free(&d);
	arena_free(A);
	remove(path);
	rmdir(dir);
}

/* descent bench --profile compiles train_step to read the clock between its parts: the
 * bits it computes are the same, each node of its plan and each update group's check
 * and write is a part, and the parts' nanoseconds add up to no more than the call's. */
static void test_diff_profiling_changes_nothing_but_time(void)
{
	Arena *A = arena_new();
	Diags d = {0};
	const char *path = src_path("models/fashion_mlp.yaml");
	CodegenOpts o = {.opt_level = 2}, po = {.opt_level = 2, .profile = 1};
	Compiled *c = compile_path(A, &d, path, 16, &o, NULL),
	         *pc = compile_path(A, &d, path, 16, &po, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pc);
	Run a = run_steps(c, 1), b = run_steps(pc, 1);
	CU_ASSERT(same_run(&c->prog, a, b));
	free(a.params), free(a.state), free(b.params), free(b.state);
	Graph *g = pc->g;
	Plan *p = plan_fn(g, FN_TRAIN_STEP);
	int count[PART_COPY + 1] = {0};
	for (int i = 0; i < g->nprof; i++)
		count[g->prof[i].kind]++;
	CU_ASSERT(p->ngroups >= 2 && count[PART_NODE] == p->n);
	CU_ASSERT(count[PART_CHECK] == p->ngroups && count[PART_WRITE] == p->ngroups);
	/* the outputs' copies: before the update phase, and its updates not made in
	 * place after it */
	CU_ASSERT(count[PART_TEST] == 1 && count[PART_COPY] <= 2);
	const rt_program *pp = &pc->prog;
	rt_session *s = session_with_inputs(pp, 3, 9);
	const float *t = pc->g->io_profile >= 0 ? s->io[pc->g->io_profile] : NULL;
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	int64_t t0 = rt_ticks();
	pp->train_step(s->bufs);
	int64_t t1 = rt_ticks();
	double sum = 0;
	for (int k = 0; k < g->nprof; k++) {
		CU_ASSERT(t[k] >= 0);
		sum += t[k];
	}
	CU_ASSERT(sum > 0 && sum <= (double)(t1 - t0));
	rt_session_free(s);
	compiled_free(c), compiled_free(pc);
	diags_free(&d);
	arena_free(A);
}

/* A weight too large for half of L2 (340 x 784 floats) takes the dot-product tile that
 * keeps B's rows in registers (dot_tile, kernels.c), which no model in models/ does;
 * batch 7 and 340 columns leave rows and columns over for the smaller tiles, and its
 * gradient, shared between threads by rows, 4 rows over. */
static const char wide_yaml[] = "name: wide\n"
                                "inputs:\n"
                                "  image: {shape: [batch, 784]}\n"
                                "  label: {shape: [batch], dtype: i32}\n"
                                "layers:\n"
                                "  - dense: {name: fc1, units: 340, activation: relu}\n"
                                "  - dense: {name: fc2, units: 10}\n"
                                "loss: {type: softmax_cross_entropy, target: label}\n"
                                "optimizer: {type: sgd, lr: 0.01, momentum: 0.9}\n";

/* A model compiled at batch from a file in a temporary directory, and a session of it
 * with random inputs that has taken one step (SGD's momentum applies from the next):
 * any YAML (model_begin), or two dense layers, in -> units, relu -> 10, with an
 * optimizer (two_begin). */
typedef struct Two {
	char dir[32], path[64];
	Arena *A;
	Diags d;
	Compiled *c;
	const rt_program *p;
	rt_session *s;
} Two;

/* The model given as YAML text. */
static void model_begin(Two *t, const char *yaml, int64_t batch)
{
	memset(t, 0, sizeof *t);
	strcpy(t->dir, "/tmp/descent-diff-XXXXXX");
	temp_file(t->dir, t->path, sizeof t->path, "model.yaml", yaml);
	t->A = arena_new();
	CodegenOpts o = {.opt_level = 2};
	t->c = compile_path(t->A, &t->d, t->path, batch, &o, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t->c);
	t->p = &t->c->prog;
	t->s = session_with_inputs(t->p, 4, 2);
	t->p->train_step(t->s->bufs);
}

static void two_begin(Two *t, int in, int units, const char *optimizer, int64_t batch)
{
	char yaml[1024];
	snprintf(yaml, sizeof yaml,
	         "name: two\n"
	         "inputs:\n"
	         "  image: {shape: [batch, %d]}\n"
	         "  label: {shape: [batch], dtype: i32}\n"
	         "layers:\n"
	         "  - dense: {name: fc1, units: %d, activation: relu}\n"
	         "  - dense: {name: fc2, units: 10}\n"
	         "loss: {type: softmax_cross_entropy, target: label}\n"
	         "optimizer: %s\n",
	         in, units, optimizer);
	model_begin(t, yaml, batch);
}

static void two_end(Two *t)
{
	rt_session_free(t->s);
	compiled_free(t->c);
	diags_free(&t->d);
	arena_free(t->A);
	remove(t->path);
	rmdir(t->dir);
}

/* One step: whether it was refused, writing no parameter or state and a NaN loss (1),
 * taken (0), or neither (-1). */
static int refused(const rt_program *p, rt_session *s)
{
	size_t np = (size_t)p->nparams * sizeof(float),
	       ns = (size_t)p->nstate * sizeof(float);
	float *params = malloc(np + 4), *state = malloc(ns + 4);
	CU_ASSERT_PTR_NOT_NULL_FATAL(params && state);
	memcpy(params, s->params, np);
	memcpy(state, s->state, ns);
	p->train_step(s->bufs);
	int same = !memcmp(params, s->params, np) && !memcmp(state, s->state, ns),
	    nan = isnan(((float *)s->io[p->io_loss])[0]) != 0;
	free(params), free(state);
	return same && nan ? 1 : !same && !nan ? 0 : -1;
}

/* The state tensor of that name (NULL: none). */
static const rt_state *state_named(const rt_program *p, const char *name)
{
	for (int i = 0; i < p->nstates; i++)
		if (!strcmp(p->states[i].name, name))
			return &p->states[i];
	return NULL;
}

/* The 300-256 MLP with optimizer opt (fc1.weight, 76800 elements: a large update
 * group), and its state tensor name */
static const rt_state *two_with_state(Two *t, const char *opt, const char *name)
{
	two_begin(t, 300, 256, opt, 4);
	const rt_state *st = state_named(t->p, name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	return st;
}

/* With the hyperparameter name at bad, a step is refused; at good, taken; and the
 * optimizer's state stays finite. */
static void refused_then_taken(const rt_program *p, rt_session *s, const char *name,
                               double bad, double good)
{
	const double v[2] = {bad, good};
	for (int k = 0; k < 2; k++) {
		CU_ASSERT_EQUAL(rt_set_hyper(s, name, v[k]), 0);
		CU_ASSERT_EQUAL(refused(p, s), k == 0);
		for (int64_t i = 0; i < p->nstate; i++)
			CU_ASSERT_FATAL(isfinite(s->state[i]));
	}
}

/* With weight decay not 0, the check of a large weight's update (the loop version that
 * reads the weight, codegen.c's nest_by_hypers) sees a weight that weight decay makes
 * overflow. An element of fc1.weight (76800 of them) of 3e38, where the input is 0 so
 * that the loss and gradients stay finite: with weight_decay 10 the step is refused,
 * with 1e-9 it is taken. */
static void test_diff_weight_decay_is_checked_on_large_weights(void)
{
	Two t;
	two_begin(&t, 300, 256, "{type: sgd, lr: 0.01, momentum: 0.9}", 4);
	const rt_program *p = t.p;
	rt_session *s = t.s;
	const rt_param *w = &p->params[0];
	CU_ASSERT_FATAL(!strcmp(w->name, "fc1.weight") && w->numel == 256 * 300);
	for (int b = 0; b < 4; b++)
		((float *)s->io[p->io_x])[b * 300 + 5] = 0;
	s->params[w->offset + 5] = 3e38f; /* row 0, column 5 */
	refused_then_taken(p, s, "weight_decay", 10, 1e-9);
	two_end(&t);
}

/* SGD's step d = lr x, x the new momentum buffer, is checked from x and lr alone in a
 * large group (codegen.c's Quot, d = k x), and so is the buffer itself: |x| within a
 * bound from lr tells both. One element of fc1.weight's buffer (76800 elements), after
 * a first step: infinite, the step is refused even with lr 0 (0 * inf is NaN) or 1e-35;
 * 3e38, taken with those, its step within the bound; 1e30, a step of 9e29 at lr 1,
 * taken, and of 1.8e30 at lr 2, above 2^100, refused. */
static void test_diff_sgd_steps_are_checked_from_the_buffer(void)
{
	Two t;
	const rt_state *buf = two_with_state(&t, "{type: sgd, lr: 0.01, momentum: 0.9}",
	                                     "fc1.weight.momentum_buffer");
	const rt_program *p = t.p;
	rt_session *s = t.s;
	CU_ASSERT_FATAL(buf->numel == 256 * 300);
	size_t np = (size_t)p->nparams * sizeof(float),
	       ns = (size_t)p->nstate * sizeof(float);
	float *params = malloc(np), *state = malloc(ns);
	CU_ASSERT_PTR_NOT_NULL_FATAL(params && state);
	memcpy(params, s->params, np);
	memcpy(state, s->state, ns);
	const struct {
		float value;
		double lr;
		int refused;
	} cases[] = {{INFINITY, 0, 1},  {INFINITY, 1e-35, 1}, {3e38f, 0, 0},
	             {3e38f, 1e-35, 0}, {1e30f, 1, 0},        {1e30f, 2, 1}};
	for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
		memcpy(s->params, params, np);
		memcpy(s->state, state, ns);
		s->state[buf->offset + 4321] = cases[k].value;
		CU_ASSERT_EQUAL(rt_set_hyper(s, "lr", cases[k].lr), 0);
		int r = refused(p, s);
		if (r != cases[k].refused)
			fprintf(stderr, "\nbuffer %g, lr %g: %d\n", cases[k].value,
			        cases[k].lr, r);
		CU_ASSERT_EQUAL(r, cases[k].refused);
	}
	free(params), free(state);
	two_end(&t);
}

/* Adam's step d = k m / (s1 sqrt(v) + eps) is checked from m and the single values alone
 * while they show it within bounds (codegen.c's Quot), and computed and tested where they
 * do not: an element of exp_avg_sq set to -1 (no step makes one, but a program may write
 * it) makes its d NaN, and the step is refused; so is a learning rate of 1e31, whose
 * steps pass the bound, where 1e-3 is taken. In a large group (fc1.weight's 76800
 * elements) and, checked as before, a small one (fc2.bias's 10). */
static void test_diff_adam_steps_are_checked_without_dividing(void)
{
	Two t;
	two_begin(&t, 300, 256, "{type: adam, lr: 0.001}", 4);
	const rt_program *p = t.p;
	rt_session *s = t.s;
	const char *const names[] = {"fc1.weight.exp_avg_sq", "fc2.bias.exp_avg_sq"};
	for (int k = 0; k < 2; k++) {
		const rt_state *v = state_named(p, names[k]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(v);
		float old = s->state[v->offset + 3];
		s->state[v->offset + 3] = -1;
		CU_ASSERT_EQUAL(refused(p, s), 1);
		s->state[v->offset + 3] = old;
	}
	CU_ASSERT_EQUAL(refused(p, s), 0);
	refused_then_taken(p, s, "lr", 1e31, 1e-3);
	for (int64_t i = 0; i < p->nparams; i++)
		CU_ASSERT_FATAL(isfinite(s->params[i]));
	two_end(&t);
}

/* Adam's bound on |m| is 2^99 eps / |k|, taken as FLT_MAX when it is larger: computed
 * as 2^99 eps first, it was infinite for eps 2^31 whatever k, and let through the
 * infinite step of an exp_avg of 1e30 at lr 1e30 (found by a review); at lr 1e-3 that
 * step is 4e17, taken. fc1.weight's 76800 elements, a large group. */
static void test_diff_adam_bound_with_a_large_eps(void)
{
	Two t;
	const rt_state *m =
	    two_with_state(&t, "{type: adam, lr: 0.001}", "fc1.weight.exp_avg");
	const rt_program *p = t.p;
	rt_session *s = t.s;
	CU_ASSERT_EQUAL(rt_set_hyper(s, "eps", 0x1p31), 0);
	s->state[m->offset + 4321] = 1e30f;
	refused_then_taken(p, s, "lr", 1e30, 1e-3);
	for (int64_t i = 0; i < p->nparams; i++)
		CU_ASSERT_FATAL(isfinite(s->params[i]));
	two_end(&t);
}

/* The bound behind Adam's check without dividing holds only where k x / den is finite
 * as computed: a model whose one parameter (a weight of 70000, no bias) is the large
 * group, so that no other group's check refuses for it, with zero inputs (zero
 * gradients). beta1 = 1 makes k = lr / (1 - beta1^t) infinite, and with exp_avg 0 the
 * step inf * 0 is NaN: refused, where beta1 0.9 is taken. exp_avg 1e31 over
 * exp_avg_sq 0 (+ eps) overflows before k = 1e-11 scales it down: refused, and taken
 * again once exp_avg is 0. */
static void test_diff_adam_check_refuses_what_dividing_would(void)
{
	Two t;
	model_begin(&t,
	            "name: one\n"
	            "inputs:\n"
	            "  image: {shape: [batch, 7000]}\n"
	            "  label: {shape: [batch], dtype: i32}\n"
	            "layers:\n"
	            "  - dense: {units: 10, bias: false}\n"
	            "loss: {type: softmax_cross_entropy, target: label}\n"
	            "optimizer: {type: adam, lr: 0.001}\n",
	            2);
	const rt_program *p = t.p;
	rt_session *s = t.s;
	CU_ASSERT_FATAL(p->nparam == 1 && p->params[0].numel == 70000);
	const rt_state *m = NULL;
	for (int i = 0; i < p->nstates; i++)
		m = strstr(p->states[i].name, ".exp_avg") &&
		            !strstr(p->states[i].name, "exp_avg_sq")
		        ? &p->states[i]
		        : m;
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	memset((float *)s->io[p->io_x], 0, 2 * 7000 * sizeof(float));
	memset(s->state + m->offset, 0, (size_t)m->numel * sizeof(float));
	refused_then_taken(p, s, "beta1", 1, 0.9);
	CU_ASSERT_EQUAL(rt_set_hyper(s, "lr", 1e-11), 0);
	s->state[m->offset + 7] = 1e31f;
	for (int i = 0; i < p->nstates; i++) /* its exp_avg_sq 0 */
		if (strstr(p->states[i].name, "exp_avg_sq"))
			s->state[p->states[i].offset + 7] = 0;
	CU_ASSERT_EQUAL(refused(p, s), 1);
	s->state[m->offset + 7] = 0;
	CU_ASSERT_EQUAL(refused(p, s), 0);
	for (int64_t i = 0; i < p->nparams; i++)
		CU_ASSERT_FATAL(isfinite(s->params[i]));
	two_end(&t);
}

/* Kernels share their loops between threads, each element computed by one thread in a
 * fixed order: 2 and 3 threads give the bits 1 thread gives, run after run. */
static void test_diff_threads_give_identical_results(void)
{
	const char *const *models = model_files();
	int parallel = 0;
	for (int k = 0; models[k]; k++)
		CU_ASSERT(threads_agree(models[k], 0, &parallel));
	CU_ASSERT(parallel >= 2); /* the Fashion MLPs and LeNet do share loops */
	CU_ASSERT(yaml_threads_agree("wide.yaml", wide_yaml, 7));
	/* a weight of 37 x 4099: the update's vectors, shared between threads, leave
	 * elements over in the last part at any width */
	CU_ASSERT(
	    yaml_threads_agree("tail.yaml",
	                       "name: tail\n"
	                       "inputs:\n"
	                       "  image: {shape: [batch, 37]}\n"
	                       "  label: {shape: [batch], dtype: i32}\n"
	                       "layers:\n"
	                       "  - dense: {name: fc1, units: 4099, activation: relu}\n"
	                       "  - dense: {name: fc2, units: 10}\n"
	                       "loss: {type: softmax_cross_entropy, target: label}\n"
	                       "optimizer: {type: adam, lr: 0.01}\n",
	                       5));
}

/* The matrix kernels' tiles follow the target's vector registers: the AVX2 (8 floats,
 * 16 registers) and SSE (4 floats) shapes, run here on x86, compute the same values. */
static void test_diff_tiles_for_avx2_and_sse_match_the_reference(void)
{
#if defined(__x86_64__)
	const char *const *models = model_files();
	for (int k = 0; models[k]; k++) {
		const char *name = strrchr(models[k], '/') + 1;
		check_model(models[k], name, 2, "haswell", "+avx2,+fma,+avx,+sse4.2");
		check_model(models[k], name, 2, "x86-64", "+sse2");
	}
#endif
}

/* A model given as YAML text, at batch size batch: on the host's tiles at -O3 and, on
 * x86, AVX2's at -O2. */
static void check_yaml(const char *name, const char *yaml, int64_t batch)
{
	char dir[] = "/tmp/descent-diff-XXXXXX", path[64];
	temp_file(dir, path, sizeof path, name, yaml);
	check_model_at(path, name, 3, NULL, NULL, batch);
#if defined(__x86_64__)
	check_model_at(path, name, 2, "haswell", "+avx2,+fma,+avx,+sse4.2", batch);
#endif
	remove(path);
	rmdir(dir);
}

/* The end of the convolution tests' models: a dense layer of 10 classes, their loss
 * and SGD with momentum */
#define CONV_TAIL                                                                        \
	"  - flatten\n"                                                                  \
	"  - dense: {units: 10}\n"                                                       \
	"loss: {type: softmax_cross_entropy, target: label}\n"                           \
	"optimizer: {type: sgd, lr: 0.01, momentum: 0.9}\n"

/* A model checked against the reference (check_yaml) at batch, then begun (model_begin),
 * and the same bits on 1, 2 and 3 threads at threads_batch (*shared counts it if its
 * loops are shared between them). */
static void checked_begin(Two *t, const char *name, const char *yaml, int64_t batch,
                          int64_t threads_batch, int *shared)
{
	check_yaml(name, yaml, batch);
	model_begin(t, yaml, batch);
	CU_ASSERT(threads_agree(t->path, threads_batch, shared));
}

/* A model of convs depthwise convolutions (at batch 3), checked against the reference
 * and on 1, 2 and 3 threads at threads_batch: each of them, its data and its filter
 * gradient run depthwise (conv_depthwise), none through a padded copy as well, and
 * dx_epilogues data gradients compute the node after them (an activation's gradient)
 * in their rows (Plan.epi). Whether its loops are shared between threads. */
static int depthwise_model(const char *name, const char *yaml, int64_t threads_batch,
                           int convs, int dx_epilogues)
{
	Two t;
	int shared = 0, depthwise = 0, dx = 0;
	checked_begin(&t, name, yaml, 3, threads_batch, &shared);
	Plan *p = plan_fn(t.c->g, FN_TRAIN_STEP);
	for (int i = 0; i < t.c->g->n; i++) {
		Node *n = t.c->g->nodes[i];
		if (n->op == OP_CONV2D || n->op == OP_CONV2D_BWD_DATA ||
		    n->op == OP_CONV2D_BWD_FILTER) {
			ConvFlat f;
			depthwise += conv_depthwise(n);
			dx += n->op == OP_CONV2D_BWD_DATA && p->epi[i] != NULL;
			CU_ASSERT(!conv_depthwise(n) || !conv_flat(n, &f));
		}
	}
	CU_ASSERT_EQUAL(depthwise, 3 * convs);
	CU_ASSERT_EQUAL(dx, dx_epilogues);
	two_end(&t);
	return shared;
}

/* The wide model above against the reference. */
static void test_diff_wide_layers_match_the_reference(void)
{
	check_yaml("wide.yaml", wide_yaml, 7);
}

/* Dense layers whose widths leave columns after the last whole tile of dot products
 * (25 and 7: one past tiles of 3, the host's; one past tiles of 2, AVX2's), the
 * last tile running past the last column with a bias and relu on its masked stores,
 * at a batch that leaves rows after the last whole tile. */
static void test_diff_odd_widths_match_the_reference(void)
{
	check_yaml("odd.yaml",
	           "name: odd\n"
	           "inputs:\n"
	           "  image: {shape: [batch, 40]}\n"
	           "  label: {shape: [batch], dtype: i32}\n"
	           "layers:\n"
	           "  - dense: {units: 25, activation: relu}\n"
	           "  - dense: {units: 7}\n"
	           "loss: {type: softmax_cross_entropy, target: label}\n"
	           "optimizer: {type: adam, lr: 0.01}\n",
	           9);
}

/* The extent that the LLVM IR ir hands the thread pool for the kernel named kernel
 * ("@forward.0.matmul"), or -1 when no rt_parallel_for call runs it. */
static long pool_extent(const char *ir, const char *kernel)
{
	char par[96];
	snprintf(par, sizeof par, "%s.parallel", kernel);
	for (const char *l = strstr(ir, "@rt_parallel_for("); l;
	     l = strstr(l + 1, "@rt_parallel_for(")) {
		const char *end = strchr(l, '\n'), *k = strstr(l, par);
		end = end ? end : l + strlen(l);
		if (!k || k > end)
			continue;
		long v[2] = {-1, -1}; /* the call's last two i64: the extent, the grain */
		for (const char *i = strstr(k, "i64 "); i && i < end;
		     i = strstr(i + 4, "i64 "))
			v[0] = v[1], v[1] = strtol(i + 4, NULL, 10);
		return v[0];
	}
	return -1;
}

/* The LLVM IR, unoptimized, of path's model at batch size batch (malloc'd), and how
 * many of its nodes are products computed by halves of k (matmul_halves). */
static char *model_ir(const char *path, int64_t batch, int *halves)
{
	Arena *A = arena_new();
	Diags d = {0};
	Compiled *c =
	    compile_path(A, &d, path, batch, &(CodegenOpts){.opt_level = 2}, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	*halves = 0;
	for (int i = 0; i < c->g->n; i++)
		*halves += matmul_halves(c->g->nodes[i]);
	ObjCode ir;
	int64_t nwork;
	CodegenOpts lo = {.opt_level = 0, .emit = EMIT_LLVM};
	CU_ASSERT_FATAL(cg_compile(c->g, &lo, &ir, &nwork, NULL) == 0);
	char *text = strndup(ir.data, ir.size);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	objcode_free(&ir);
	compiled_free(c);
	diags_free(&d);
	arena_free(A);
	return text;
}

/* The model yaml (written to a temporary file named name) at batch size batch,
 * checked against the reference; then its IR and products by halves (model_ir). */
static char *checked_model_ir(const char *name, const char *yaml, int64_t batch,
                              int *halves)
{
	check_yaml(name, yaml, batch);
	char dir[] = "/tmp/descent-diff-XXXXXX", path[64];
	temp_file(dir, path, sizeof path, name, yaml);
	char *text = model_ir(path, batch, halves);
	remove(path);
	rmdir(dir);
	return text;
}

/* checked_model_ir, and the same bits on 1, 2 and 3 threads with its loops shared
 * between them */
static char *shared_model_ir(const char *name, const char *yaml, int64_t batch,
                             int *halves)
{
	char *text = checked_model_ir(name, yaml, batch, halves);
	CU_ASSERT(yaml_threads_agree(name, yaml, batch));
	return text;
}

/* A dense layer's input gradient dy W as two products over the halves of W's rows
 * (matmul_halves, dc.h): W of 70 rows by 100 columns (6 vectors and 4 floats), at a
 * batch that leaves rows after the last whole tile; against the reference on the host's
 * tiles and AVX2's, and the same bits on 1, 2 and 3 threads (with 3, the second thread's
 * part ends one half's columns and starts the other's). */
static void test_diff_input_gradients_in_halves_match_the_reference(void)
{
	const char *yaml = "name: halves\n"
	                   "inputs:\n"
	                   "  image: {shape: [batch, 50]}\n"
	                   "  label: {shape: [batch], dtype: i32}\n"
	                   "layers:\n"
	                   "  - dense: {units: 100, activation: relu}\n"
	                   "  - dense: {units: 70, activation: relu}\n"
	                   "  - dense: {units: 10}\n"
	                   "loss: {type: softmax_cross_entropy, target: label}\n"
	                   "optimizer: {type: sgd, lr: 0.1, momentum: 0.9}\n";
	int halves;
	char *text = shared_model_ir("halves.yaml", yaml, 9, &halves);
	CU_ASSERT(halves > 0); /* fc2's (fc3's W has 10 rows) */
	/* the halves' products (126K flops) go to the thread pool; their sum (900
	 * adds) is called directly: the pool decides on the kernel's work, not the
	 * node's */
	const char *sum = strstr(text, "sum_halves(");
	CU_ASSERT_PTR_NOT_NULL(sum);
	CU_ASSERT_PTR_NULL(strstr(text, "sum_halves.parallel"));
	if (sum) { /* the kernel before it, the products: entry.K-1.matmul */
		const char *at = sum;
		while (at > text && at[-1] != '@')
			at--;
		char entry[32], want[96];
		long k = 0;
		CU_ASSERT_EQUAL_FATAL(sscanf(at, "%31[a-z_].%ld.", entry, &k), 2);
		snprintf(want, sizeof want, "@%s.%ld.matmul", entry, k - 1);
		CU_ASSERT(pool_extent(text, want) > 0);
	}
	free(text);
}

/* An output layer's product, [128, 10], whose rows are narrower than two vectors, is
 * shared between threads by rows (16 or more units), not by columns (10 at most): by
 * columns, both threads wrote every cache line of it. The same bits on 1, 2 and 3
 * threads, and the reference's. */
static void test_diff_narrow_products_are_shared_by_rows(void)
{
	const char *yaml = "name: narrow\n"
	                   "inputs:\n"
	                   "  image: {shape: [batch, 64]}\n"
	                   "  label: {shape: [batch], dtype: i32}\n"
	                   "layers:\n"
	                   "  - dense: {units: 10}\n"
	                   "loss: {type: softmax_cross_entropy, target: label}\n"
	                   "optimizer: {type: sgd, lr: 0.1, momentum: 0.9}\n";
	int halves;
	char *text = shared_model_ir("narrow.yaml", yaml, 128, &halves);
	CU_ASSERT(pool_extent(text, "@forward.0.matmul") >= 16);
	free(text);
}

/* Transposes that stay copies (matmul takes the others as flags, fold.c), walked in
 * blocks: a 4-D one that moves the rows' axis (20 x 35, blocks past both ends), and a
 * 300 x 130 matrix and its gradient, shared between threads by blocks; the same bits on
 * 1, 2 and 3 threads, and the reference's. */
static void test_diff_transposes_match_the_reference(void)
{
	const char *yaml = "name: transposes\n"
	                   "inputs:\n"
	                   "  image: {shape: [batch, 3, 20, 35]}\n"
	                   "  label: {shape: [batch], dtype: i32}\n"
	                   "params:\n"
	                   "  U: {shape: [130, 300], init: normal}\n"
	                   "  V: {shape: [300, 130], init: normal}\n"
	                   "nodes:\n"
	                   "  a: \"transpose(image, perm=[0, 3, 1, 2])\"\n"
	                   "  d: \"dense(reshape(a, shape=[2100]), units=10)\"\n"
	                   "  out: \"d + sum(transpose(U) * V) / 1000\"\n"
	                   "loss: \"softmax_cross_entropy(out, label)\"\n"
	                   "optimizer: {type: sgd, lr: 0.1, momentum: 0.9}\n";
	int halves;
	char *text = shared_model_ir("transposes.yaml", yaml, 5, &halves);
	/* U's in 19 blocks of rows: the only transpose the forward pass shares */
	long blocks = -1;
	for (int k = 0; k < 8; k++) {
		char name[32];
		snprintf(name, sizeof name, "@forward.%d.transpose", k);
		long e = pool_extent(text, name);
		blocks = e > blocks ? e : blocks;
	}
	CU_ASSERT_EQUAL(blocks, 19);
	free(text);
}

/* Whether the forward pass in text (LLVM IR) has a kernel named for op
 * ("@forward.3.tanh"): op has a loop of its own, not a product's epilogue. */
static int own_kernel(const char *text, const char *op)
{
	const char *def = "define internal void @forward.", *at = text;
	size_t len = strlen(op);
	while ((at = strstr(at, def))) {
		const char *end = strchr(at, '(');
		if (end && end - at > (ptrdiff_t)len && end[-(ptrdiff_t)len - 1] == '.' &&
		    !strncmp(end - len, op, len))
			return 1;
		at++;
	}
	fprintf(stderr, "\nno kernel of its own for %s\n", op);
	return 0;
}

/* Activations computed by polynomials (vmath.c) after dense layers, against the
 * reference on the host's vectors and AVX2's; tanh, sigmoid and softplus are loops of
 * their own, not in the epilogue of the forward product's dot-product tiles, which
 * would compute them once per row of a tile (plan.c). */
static void test_diff_polynomial_activations_match_the_reference(void)
{
	const char *yaml = "name: acts\n"
	                   "inputs:\n"
	                   "  image: {shape: [batch, 50]}\n"
	                   "  label: {shape: [batch], dtype: i32}\n"
	                   "layers:\n"
	                   "  - dense: {units: 40, activation: tanh}\n"
	                   "  - dense: {units: 33, activation: gelu}\n"
	                   "  - dense: {units: 24, activation: silu}\n"
	                   "  - dense: {units: 20, activation: sigmoid}\n"
	                   "  - dense: {units: 18, activation: softplus}\n"
	                   "  - dense: {units: 10, activation: log_softmax}\n"
	                   "loss: {type: nll, target: label}\n"
	                   "optimizer: {type: adam, lr: 0.01}\n";
	int halves;
	char *text = checked_model_ir("acts.yaml", yaml, 9, &halves);
	const char *own[] = {"tanh", "sigmoid", "softplus"};
	for (int k = 0; k < 3; k++)
		CU_ASSERT(own_kernel(text, own[k]));
	free(text);
}

/* sin and cos (vmath.c, vector code with a branch to libm) wherever they land: a
 * convolution's epilogue in the forward pass, a loop of its own after a product x W
 * (not in the product's tiles, which would repeat the branch for each vector, plan.c)
 * and after a dense layer, a sum's loop, each other's loops in the gradients;
 * arguments up to 40, many quadrants. */
static void test_diff_sin_and_cos_match_the_reference(void)
{
	const char *yaml = "name: trig\n"
	                   "inputs:\n"
	                   "  image: {shape: [batch, 2, 6, 7]}\n"
	                   "  x: {shape: [batch, 20]}\n"
	                   "  label: {shape: [batch], dtype: i32}\n"
	                   "params:\n"
	                   "  W: {shape: [20, 12], init: normal}\n"
	                   "nodes:\n"
	                   "  c: \"cos(conv2d(image, out_channels=3, kernel_size=3))\"\n"
	                   "  m: \"sin(matmul(40 * x, W))\"\n"
	                   "  h: \"dense(x, units=12)\"\n"
	                   "  s: \"sin(8 * h) * cos(h)\"\n"
	                   "  out: \"dense(flatten(c), units=5) + dense(m, units=5) + "
	                   "dense(s, units=5) + sum(sin(40 * x)) / 100\"\n"
	                   "loss: \"softmax_cross_entropy(out, label)\"\n"
	                   "optimizer: {type: sgd, lr: 0.1}\n";
	int halves;
	char *text = checked_model_ir("trig.yaml", yaml, 9, &halves);
	CU_ASSERT(own_kernel(text, "sin"));
	free(text);
}

/* Reductions with the pointwise node they sum computed in their loop (plan.c): batch
 * norm's over a convolution's batch, height and width and over a dense layer's batch
 * (the last axis kept), layer norm's over the last axis, a squared error's over all. */
static void test_diff_fused_reductions_match_the_reference(void)
{
	check_yaml("norms.yaml",
	           "name: norms\n"
	           "inputs:\n"
	           "  image: {shape: [batch, 3, 9, 11]}\n"
	           "  target: {shape: [batch, 7]}\n"
	           "nodes:\n"
	           "  c: \"conv2d(image, out_channels=5, kernel_size=3, bias=false)\"\n"
	           "  b: \"relu(batch_norm(c))\"\n"
	           "  d: \"dense(flatten(b), units=20)\"\n"
	           "  e: \"layer_norm(batch_norm(d))\"\n"
	           "  out: \"dense(e, units=7)\"\n"
	           "loss: \"mean((out - target) ^ 2) + 0.1 * max(abs(out))\"\n"
	           "optimizer: {type: sgd, lr: 0.01, momentum: 0.9}\n",
	           6);
}

/* The pool tests' image, its 1 x 1 convolution h, h's 3 x 3 max pool at stride 1 */
#define POOLS_INPUT                                                                      \
	"inputs:\n"                                                                      \
	"  image: {shape: [batch, 2, 9, 37]}\n"                                          \
	"  label: {shape: [batch], dtype: i32}\n"                                        \
	"nodes:\n"                                                                       \
	"  h: \"conv2d(image, out_channels=2, kernel_size=1)\"\n"                        \
	"  a: \"max_pool2d(h, kernel_size=3, stride=1, padding=1)\"\n"

static const char pools_yaml[] =
    "name: pools\n" POOLS_INPUT "  b: \"max_pool2d(a, kernel_size=2, stride=1)\"\n"
    "  c: \"max_pool2d(b, kernel_size=3, stride=2, padding=1)\"\n"
    "  d: \"max_pool2d(h, kernel_size=3, stride=3)\"\n"
    "  e: \"avg_pool2d(h, kernel_size=3, stride=1, padding=1)\"\n"
    "  f: \"avg_pool2d(e, kernel_size=2, stride=1)\"\n"
    "  g: \"max_pool2d(h, kernel_size=4, stride=2, padding=2)\"\n"
    "  k: \"max_pool2d(h, kernel_size=2, stride=2, padding=1)\"\n"
    "  out: \"dense(flatten(c), units=5) + dense(flatten(d), units=5) + "
    "dense(flatten(f), units=5) + dense(flatten(g), units=5) + "
    "dense(flatten(k), units=5)\"\n"
    "loss: \"softmax_cross_entropy(out, label)\"\n"
    "optimizer: {type: sgd, lr: 0.1}\n";

/* Pools after a 1 x 1 convolution (so that their gradients are computed). Max pooling
 * whose windows overlap or pad, on vectors of windows along a row
 * (pool_max_vec): stride 1 (3 x 3 and 2 x 2) and 2 with padding (3 x 3; 4 x 4, whose
 * taps 2 and 3 take the pair of loads taps 0 and 1 did not; 2 x 2), its scatter adding
 * at maxima windows share, rows of 37 (two vectors and a part on the host, five on
 * AVX2's), against the reference; 3 x 3 windows that tile the image, scalar; average
 * pooling at stride 1, with and without padding, whose gradient gathers (avg_bwd_vec). */
static void test_diff_max_pools_match_the_reference(void)
{
	check_yaml("pools.yaml", pools_yaml, 3);
	/* the scatter zeroes each plane of its output as its thread reaches it */
	CU_ASSERT(yaml_threads_agree("pools.yaml", pools_yaml, 64));
}

/* A gradient penalty through max pools: the penalty's gradient gathers values other
 * than the pooled ones at each window's maximum (poolmax_gather of two inputs), on
 * vectors of windows at stride 1 and 2, against the reference. */
static void test_diff_max_pool_penalties_match_the_reference(void)
{
	check_yaml("penalty.yaml",
	           "name: penalty\n" POOLS_INPUT
	           "  c: \"max_pool2d(a, kernel_size=3, stride=2, padding=1)\"\n"
	           "  out: \"dense(flatten(c), units=5)\"\n"
	           "loss: \"softmax_cross_entropy(out, label) + "
	           "0.01 * sum(grad(sum(c * c), h.weight) ^ 2)\"\n"
	           "optimizer: {type: sgd, lr: 0.1}\n",
	           3);
}

/* Max pools whose windows hold -inf (every tap, in some) and NaN (a first tap, in some),
 * at stride 1 and 2 with padding: pool_max_vec's fast taps disagree with the exact
 * rule there, and those vectors must take the exact one. The output keeps a window's
 * NaN as 5 and its -inf as -3, so that the loss is finite; the fast rule alone gives
 * those windows a later tap's value. */
static void test_diff_max_pools_of_infinities_and_nans_match_the_reference(void)
{
	check_yaml(
	    "odd_pools.yaml",
	    "name: odd_pools\n"
	    "inputs:\n"
	    "  image: {shape: [batch, 2, 9, 37]}\n"
	    "  label: {shape: [batch], dtype: i32}\n"
	    "nodes:\n"
	    "  h: \"conv2d(image, out_channels=2, kernel_size=1)\"\n"
	    "  n: \"where(h > 1.2, h, log(min(image) * 0))\"\n"
	    "  m: \"where(h > -1.2, n, sqrt(min(image) * 0 - 1))\"\n"
	    "  a: \"max_pool2d(m, kernel_size=3, stride=2, padding=1)\"\n"
	    "  b: \"max_pool2d(m, kernel_size=3, stride=1, padding=1)\"\n"
	    "  fa: \"where(a == a, where(a > -1e30, a, -3), 5)\"\n"
	    "  fb: \"where(b == b, where(b > -1e30, b, -3), 5)\"\n"
	    "  out: \"dense(flatten(fa), units=5) + dense(flatten(fb), units=5)\"\n"
	    "loss: \"softmax_cross_entropy(out, label)\"\n"
	    "optimizer: {type: sgd, lr: 0.1}\n",
	    3);
}

/* Pointwise loops written on vectors: along rows (48 columns: 3 vectors of 16, 6 of 8)
 * with a value per row broadcast to every lane ([batch, 1]), rows of a [batch, 3, 16]
 * with values per row and per column ([batch, 3, 1], [batch, 1, 16]), flat ones with a
 * count that leaves elements after the last whole vector (the 10 biases at any width,
 * the 40 at 16), and the update's check and write. */
static void test_diff_vector_loops_match_the_reference(void)
{
	check_yaml("rows.yaml",
	           "name: rows\n"
	           "inputs:\n"
	           "  image: {shape: [batch, 784]}\n"
	           "  label: {shape: [batch], dtype: i32}\n"
	           "nodes:\n"
	           "  h: \"dense(image, units=48)\"\n"
	           "  s: \"sum(h * h, axis=1, keepdims=true)\"\n"
	           "  m: \"max(h, axis=1, keepdims=true)\"\n"
	           "  c: \"h / (s + 1) - m * relu(h) + abs(h) * sqrt(s)\"\n"
	           "  r: \"reshape(c, shape=[3, 16])\"\n"
	           "  t: \"r * sum(r, axis=2, keepdims=true) - max(r, axis=1, "
	           "keepdims=true)\"\n"
	           "  f: \"reshape(t, shape=[48])\"\n"
	           "  d: \"dense(f, units=40, activation=relu)\"\n"
	           "  out: \"dense(d, units=10)\"\n"
	           "loss: \"softmax_cross_entropy(out, label)\"\n"
	           "optimizer: {type: adam, lr: 0.01}\n",
	           5);
}

/* Convolutions of stride 1 run as implicit products over padded images (conv_flat),
 * others through patches (im2col), whose data gradient gathers each row of the image
 * from the patches' gradients when the stride is 1 (col2im_rows: rows of 19 take two
 * vectors; padding wider than the kernel's span keeps a data gradient there): all of
 * them, with uneven padding, dilation and groups, every data gradient needed (a 1x1
 * convolution first), at a batch that leaves lanes of one image and of two. */
static void test_diff_convolutions_match_the_reference(void)
{
	check_yaml(
	    "convs.yaml",
	    "name: convs\n"
	    "inputs:\n"
	    "  image: {shape: [batch, 4, 17, 19]}\n"
	    "  label: {shape: [batch], dtype: i32}\n"
	    "layers:\n"
	    "  - conv2d: {out_channels: 4, kernel_size: 1}\n"
	    "  - conv2d: {out_channels: 6, kernel_size: [3, 4], padding: [2, 1, 0, 3],\n"
	    "             dilation: [2, 1], groups: 2, activation: relu}\n"
	    "  - conv2d: {out_channels: 4, kernel_size: 3, padding: same, groups: 2,\n"
	    "             activation: tanh}\n"
	    "  - conv2d: {out_channels: 3, kernel_size: [3, 5], dilation: [1, 2]}\n"
	    "  - conv2d: {out_channels: 3, kernel_size: 3, padding: [3, 0, 1, 3]}\n"
	    "  - conv2d: {out_channels: 5, kernel_size: 3, stride: 2, padding: "
	    "1}\n" CONV_TAIL,
	    11);
}

/* Convolutions at stride 2 along rows copy their patches (im2col) and add them back
 * (col2im) two vectors of a row at a time, its even lanes (kernels.c, stride2_run):
 * rows of 35 and 17 outputs (vectors and a part, on the host's and AVX2's), runs that
 * padding shortens at either end, a dilated tap, stride 2 along rows only, and every
 * gradient through them, against the reference. */
static void test_diff_stride2_convolutions_match_the_reference(void)
{
	check_yaml(
	    "stride2.yaml",
	    "name: stride2\n"
	    "inputs:\n"
	    "  image: {shape: [batch, 3, 9, 70]}\n"
	    "  label: {shape: [batch], dtype: i32}\n"
	    "layers:\n"
	    "  - conv2d: {out_channels: 4, kernel_size: 1}\n"
	    "  - conv2d: {out_channels: 5, kernel_size: 3, stride: 2, padding: 1,\n"
	    "             activation: relu}\n"
	    "  - conv2d: {out_channels: 4, kernel_size: [2, 3], stride: [1, 2],\n"
	    "             dilation: [1, 2], padding: [0, 1, 2, 1]}\n" CONV_TAIL,
	    5);
}

/* Convolutions at stride 2 along an axis where their taps land on both phases run as
 * implicit products too (conv_flat): each padded image is split into phase planes of
 * its even and odd rows and columns (pad_image, a row's two phases each a run of
 * stride2_run), where every tap is a run of one plane. Stride 2 both ways with relu in
 * the copy out (runs of 19 and 20: a vector and a part, on the host's and AVX2's),
 * along rows alone with groups and uneven padding, along columns alone dilated by 3
 * with padding that starts each phase's run inside its row; every data gradient
 * needed (a 1 x 1 convolution first). Against the reference, the same bits on 1, 2 and
 * 3 threads, and each of them and its filter gradient implicit. */
static void test_diff_stride2_implicit_convolutions_match_the_reference(void)
{
	const char *yaml =
	    "name: phases\n"
	    "inputs:\n"
	    "  image: {shape: [batch, 3, 13, 38]}\n"
	    "  label: {shape: [batch], dtype: i32}\n"
	    "layers:\n"
	    "  - conv2d: {out_channels: 4, kernel_size: 1}\n"
	    "  - conv2d: {out_channels: 4, kernel_size: 3, stride: 2, padding: 1,\n"
	    "             activation: relu}\n"
	    "  - conv2d: {out_channels: 6, kernel_size: [3, 2], stride: [2, 1],\n"
	    "             padding: [0, 1, 2, 0], groups: 2}\n"
	    "  - conv2d: {out_channels: 4, kernel_size: [2, 3], stride: [1, 2],\n"
	    "             dilation: [1, 3], padding: [1, 0, 3, 2]}\n" CONV_TAIL;
	Two t;
	int shared = 0, flat = 0;
	checked_begin(&t, "phases.yaml", yaml, 3, 5, &shared);
	for (int i = 0; i < t.c->g->n; i++) {
		Node *n = t.c->g->nodes[i];
		ConvFlat f;
		if ((n->op == OP_CONV2D || n->op == OP_CONV2D_BWD_FILTER) &&
		    conv_flat(n, &f) && f.sh * f.sw > 1)
			flat++;
	}
	CU_ASSERT_EQUAL(flat, 6);
	two_end(&t);
}

/* Filter gradients of implicit convolutions read dy in place, a row at a time, where
 * its rows on vectors take no more products than its copy on rows of Ws would
 * (conv_dy_rows): rows of 32 at stride 2 with groups and relu, rows of 28 (whole
 * vectors and a masked part, on the host's and AVX2's), and rows of 6, shorter than a
 * vector (AVX2's: only the masked part). Against the reference, the same bits on 1, 2
 * and 3 threads, and each of them read in place. */
static void test_diff_filter_gradients_read_dy_in_place(void)
{
	const char *yaml[2] = {
	    "name: dyrows\n"
	    "inputs:\n"
	    "  image: {shape: [batch, 3, 6, 64]}\n"
	    "  label: {shape: [batch], dtype: i32}\n"
	    "layers:\n"
	    "  - conv2d: {out_channels: 4, kernel_size: 1}\n"
	    "  - conv2d: {out_channels: 4, kernel_size: 3, stride: 2, padding: 1,\n"
	    "             groups: 2, activation: relu}\n"
	    "  - conv2d: {out_channels: 3, kernel_size: [3, 9], padding: [1, 1, 2, "
	    "2]}\n" CONV_TAIL,
	    "name: dyrows6\n"
	    "inputs:\n"
	    "  image: {shape: [batch, 2, 5, 9]}\n"
	    "  label: {shape: [batch], dtype: i32}\n"
	    "layers:\n"
	    "  - conv2d: {out_channels: 3, kernel_size: [3, 4], activation: "
	    "tanh}\n" CONV_TAIL};
	int want[2][2] = {{2, 2}, {0, 1}}; /* in place at 16 lanes, at 8 */
	for (int k = 0; k < 2; k++) {
		Two t;
		int shared = 0, rows[2] = {0, 0};
		checked_begin(&t, "dyrows.yaml", yaml[k], 3, 5, &shared);
		for (int i = 0; i < t.c->g->n; i++)
			for (int v = 0; v < 2; v++)
				rows[v] += conv_dy_rows(t.c->g->nodes[i], v ? 8 : 16);
		CU_ASSERT_EQUAL(rows[0], want[k][0]);
		CU_ASSERT_EQUAL(rows[1], want[k][1]);
		two_end(&t);
	}
}

/* Filter gradients whose lanes hold fewer images at once than they take (conv_chunk):
 * the space a lane writes its padded images into is reused chunk after chunk, its
 * padding zeroed once. 64 channels make each image a chunk of its own; at batch 16, 2
 * images a lane: stride 1 and stride 2 reading dy in place, and stride 1 with dy copied
 * after each padded image (rows of 38 outputs). Against the reference, and the same
 * bits on 1, 2 and 3 threads. */
static void test_diff_filter_gradients_in_chunks_match_the_reference(void)
{
	const char *yaml =
	    "name: chunks\n"
	    "inputs:\n"
	    "  image: {shape: [batch, 64, 32, 32]}\n"
	    "  wide: {shape: [batch, 64, 40, 40]}\n"
	    "  label: {shape: [batch], dtype: i32}\n"
	    "nodes:\n"
	    "  a: \"conv2d(image, out_channels=1, kernel_size=3, padding=1)\"\n"
	    "  b: \"conv2d(image, out_channels=1, kernel_size=3, stride=2, padding=1)\"\n"
	    "  c: \"conv2d(wide, out_channels=1, kernel_size=3)\"\n"
	    "  out: \"dense(flatten(a), units=4) + dense(flatten(b), units=4) + "
	    "dense(flatten(c), units=4)\"\n"
	    "loss: \"softmax_cross_entropy(out, label)\"\n"
	    "optimizer: {type: sgd, lr: 0.1}\n";
	Two t;
	int shared = 0, n = 0, rows = 0;
	checked_begin(&t, "chunks.yaml", yaml, 16, 16, &shared);
	for (int i = 0; i < t.c->g->n; i++) {
		Node *f = t.c->g->nodes[i];
		ConvFlat cf;
		if (f->op != OP_CONV2D_BWD_FILTER || !conv_flat(f, &cf))
			continue;
		CU_ASSERT_EQUAL(conv_chunk(cf.xs + cf.ys, 16, CONV_LANES), 1);
		rows += conv_dy_rows(f, 16);
		n++;
	}
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT_EQUAL(rows, 2);
	two_end(&t);
}

/* Implicit convolutions whose rows are whole vectors write their output, and their
 * data gradients dx, in place from the product's tiles (kernels.c, Gemm.bw), C's
 * columns mapped to rows of the padded width: with bias and relu in the tiles (20
 * channels: tiles of 8 rows and one of 4; 80 positions: a tile of 3 vectors and two of
 * 1), with no epilogue, and, through the padded rows as before, with an epilogue that
 * reads a value per row (not of the image's positions as one axis). Against the
 * reference on the host's vectors and AVX2's, the same bits on 1, 2 and 3 threads. */
static void test_diff_implicit_convolutions_write_in_place(void)
{
	const char *yaml =
	    "name: inplace\n"
	    "inputs:\n"
	    "  image: {shape: [batch, 3, 5, 16]}\n"
	    "  label: {shape: [batch], dtype: i32}\n"
	    "params:\n"
	    "  t: {shape: [1, 1, 5, 1], init: normal}\n"
	    "nodes:\n"
	    "  a: \"relu(conv2d(image, out_channels=20, kernel_size=3, padding=1))\"\n"
	    "  b: \"conv2d(a, out_channels=4, kernel_size=3, padding=1, bias=false)\"\n"
	    "  c: \"conv2d(b, out_channels=4, kernel_size=3, padding=1, bias=false) + "
	    "t\"\n"
	    "  out: \"dense(flatten(b + c), units=10)\"\n"
	    "loss: \"softmax_cross_entropy(out, label)\"\n"
	    "optimizer: {type: sgd, lr: 0.01, momentum: 0.9}\n";
	Two t;
	int shared = 0, flat = 0, fused[2] = {0, 0};
	checked_begin(&t, "inplace.yaml", yaml, 3, 5, &shared);
	Plan *p = plan_fn(t.c->g, FN_TRAIN_STEP);
	for (int i = 0; i < t.c->g->n; i++) {
		Node *n = t.c->g->nodes[i];
		ConvFlat f;
		if (n->op != OP_CONV2D || !conv_flat(n, &f))
			continue;
		flat++;
		if (p->epi[i])
			fused[plan_planes_flat(p, p->epi[i], n)]++;
	}
	CU_ASSERT_EQUAL(flat, 3);
	CU_ASSERT_EQUAL(fused[0], 1); /* c's, + t, through the padded rows */
	CU_ASSERT_EQUAL(fused[1], 1); /* a's, in the tiles */
	two_end(&t);
}

/* Concatenations are pads summed (layers.c), their gradients slices; both are loads at
 * shifted indices in their user's loop (plan.c): parts of 20, 28 and 20 columns (lanes
 * of a vector on both sides of a part's edge, masked), along the batch (whole rows
 * outside), along a 4-D image's channels, a part used twice, and the gradients' slices
 * into the activations' gradients. Against the reference on the host's vectors and
 * AVX2's, with no pad or slice left to store in train_step. */
static void test_diff_concatenations_match_the_reference(void)
{
	const char *yaml =
	    "name: concats\n"
	    "inputs:\n"
	    "  x: {shape: [batch, 20]}\n"
	    "  image: {shape: [batch, 2, 5, 7]}\n"
	    "  label: {shape: [batch], dtype: i32}\n"
	    "nodes:\n"
	    "  a: \"dense(x, units=20, activation=relu)\"\n"
	    "  b: \"dense(x, units=28, activation=tanh)\"\n"
	    "  c: \"concat(a, b, x, axis=1)\"\n"
	    "  e: \"concat(c, c * c, axis=0)\"\n"
	    "  h: \"conv2d(image, out_channels=3, kernel_size=3, "
	    "padding=1, activation=relu)\"\n"
	    "  k: \"concat(image, h, axis=1)\"\n"
	    "  out: \"dense(relu(c), units=10) + dense(flatten(k), units=10) "
	    "+ sum(e * e) / 1000\"\n"
	    "loss: \"softmax_cross_entropy(out, label)\"\n"
	    "optimizer: {type: sgd, lr: 0.1, momentum: 0.9}\n";
	check_yaml("concats.yaml", yaml, 6);
	/* along an axis before the last, rows of whole vectors (16 floats, 8 on AVX2);
	 * and a constant's part (grad(sum(a), a) is ones) */
	check_yaml("concats16.yaml",
	           "name: concats16\n"
	           "inputs: {x: {shape: [batch, 4, 32]}, y: {shape: [batch, 2, 32]}}\n"
	           "params: {a: {shape: [1, 16]}}\n"
	           "nodes:\n"
	           "  h: \"dense(concat(x, y, axis=1), units=3)\"\n"
	           "  g: \"concat(grad(sum(a), a), a * a, axis=0)\"\n"
	           "loss: \"mean(h ^ 2) + sum(exp(g))\"\n"
	           "optimizer: {type: sgd, lr: 0.1}\n",
	           6);
	Two t;
	model_begin(&t, yaml, 6);
	Plan *p = plan_fn(t.c->g, FN_TRAIN_STEP);
	int windows = 0, fused = 0;
	for (int i = 0; i < t.c->g->n; i++) {
		Node *n = t.c->g->nodes[i];
		if (p->live[i] && (n->op == OP_PAD || n->op == OP_SLICE))
			windows++, fused += p->inl[i];
	}
	CU_ASSERT(windows >= 10);
	CU_ASSERT_EQUAL(fused, windows);
	for (int k = 0; k < p->n; k++)
		CU_ASSERT(p->order[k]->op != OP_PAD && p->order[k]->op != OP_SLICE);
	two_end(&t);
}

/* A loop reads at most MAX_READS values (plan.c), where one kernel could take 64:
 * the loss's sum of 70 parameters is cut into loops of fewer, and the updates of 70
 * scalar parameters, one group through clip_grad_norm's scale, become a group each,
 * the scale stored before them (each used to be an internal error); so each keeps
 * its update check (a step above 2^100 refused). A group under the limit stays whole:
 * its members read nothing, being computed in its loop (8 parameters, one group). */
/* head, item (a format of i, once or twice) for i in 0..n-1 joined by sep, then
 * tail: a model of many parameters */
static const char *joined(char *buf, size_t len, const char *head, const char *item,
                          int n, const char *sep, const char *tail)
{
	size_t k = (size_t)snprintf(buf, len, "%s", head);
	for (int i = 0; i < n && k < len; i++)
		k += (size_t)snprintf(buf + k, len - k, "%s", i ? sep : ""),
		    k += (size_t)snprintf(buf + k, len - k, item, i, i);
	if (k < len)
		snprintf(buf + k, len - k, "%s", tail);
	return buf;
}

static void test_diff_loops_reading_many_values_match_the_reference(void)
{
	char params[2048], loss[2048], yaml[4096];
	snprintf(yaml, sizeof yaml,
	         "name: many\nparams: {%s}\nloss: \"%s\"\n"
	         "optimizer: {type: sgd, lr: 0.1, momentum: 0.9, clip_grad_norm: 1.0}\n",
	         joined(params, sizeof params, "", "p%d: {init: 0.%d}", 70, ", ", ""),
	         joined(loss, sizeof loss, "", "(p%d - 1)^2", 70, " + ", ""));
	check_yaml("many.yaml", yaml, 1);
	Two t;
	model_begin(&t, yaml, 1);
	CU_ASSERT(plan_fn(t.c->g, FN_TRAIN_STEP)->ngroups >= 70);
	two_end(&t);
	snprintf(yaml, sizeof yaml,
	         "name: few\nparams: {%s}\nloss: \"%s\"\n"
	         "optimizer: {type: sgd, lr: 0.1, momentum: 0.9, clip_grad_norm: 1}\n",
	         joined(params, sizeof params, "", "p%d: {init: 0}", 8, ", ", ""),
	         joined(loss, sizeof loss, "", "p%d", 8, " + ", ""));
	model_begin(&t, yaml, 1);
	CU_ASSERT_EQUAL(plan_fn(t.c->g, FN_TRAIN_STEP)->ngroups, 1);
	two_end(&t);
	/* a call of 70 values (the parts of a concat; once cut at 64) */
	snprintf(
	    yaml, sizeof yaml,
	    "name: cat70\nparams: {%s}\nloss: \"%s\"\n"
	    "optimizer: {type: sgd, lr: 0.1}\n",
	    joined(params, sizeof params, "", "q%d: {shape: [1, 3]}", 70, ", ", ""),
	    joined(loss, sizeof loss, "sum(concat(", "q%d", 70, ", ", ", axis=1) ^ 2)"));
	check_yaml("cat70.yaml", yaml, 1);
}

/* 1 x 1 convolutions of stride 1 without padding (conv_pointwise) read their images
 * and write their results in place: with bias and relu in the products' epilogue (b),
 * in groups, with an epilogue that reads a row of the image's width and so keeps its own
 * loop (c), dilated (d); 60 positions (a masked vector after three whole ones), every
 * data gradient needed, 5 images in lanes of one and two. Against the reference on the
 * host's vectors and AVX2's. */
static void test_diff_pointwise_convolutions_match_the_reference(void)
{
	const char *yaml =
	    "name: pointwise\n"
	    "inputs:\n"
	    "  image: {shape: [batch, 4, 6, 10]}\n"
	    "  label: {shape: [batch], dtype: i32}\n"
	    "params:\n"
	    "  row: {shape: [10], init: normal}\n"
	    "nodes:\n"
	    "  a: \"conv2d(image, out_channels=6, kernel_size=3, padding=1)\"\n"
	    "  b: \"conv2d(a, out_channels=8, kernel_size=1, activation=relu)\"\n"
	    "  c: \"conv2d(b, out_channels=4, kernel_size=1, groups=2, bias=false) + "
	    "row\"\n"
	    "  d: \"conv2d(c, out_channels=3, kernel_size=1, dilation=2)\"\n"
	    "  out: \"dense(flatten(d), units=5)\"\n"
	    "loss: \"softmax_cross_entropy(out, label)\"\n"
	    "optimizer: {type: sgd, lr: 0.1, momentum: 0.9}\n";
	check_yaml("pointwise.yaml", yaml, 5);
	Two t;
	model_begin(&t, yaml, 5);
	Plan *p = plan_fn(t.c->g, FN_FORWARD);
	int convs = 0, epis = 0;
	for (int i = 0; i < t.c->g->n; i++) {
		Node *n = t.c->g->nodes[i];
		if (!p->live[i] || n->op != OP_CONV2D || !conv_pointwise(n))
			continue;
		convs++;
		/* b's bias and relu, d's bias; not c's row */
		epis += p->epi[i] != NULL;
	}
	CU_ASSERT_EQUAL(convs, 3);
	CU_ASSERT_EQUAL(epis, 2);
	two_end(&t);
}

/* Sums and maxima over the batch axis of 256K elements or more run in parts, each
 * folded into partials of its own, then folded in order (reduce_parts): a convolution's
 * bias gradient (over batch, height and width), a max over the batch, and a sum of a
 * fused square over all axes, 37 images in parts of 4 and 5. Against the reference, and
 * the same bits on 1, 2 and 3 threads. */
static void test_diff_reductions_over_the_batch_run_in_parts(void)
{
	const char *yaml = "name: parts\n"
	                   "inputs:\n"
	                   "  image: {shape: [batch, 3, 40, 40]}\n"
	                   "  label: {shape: [batch], dtype: i32}\n"
	                   "nodes:\n"
	                   "  c: \"conv2d(image, out_channels=8, kernel_size=3, "
	                   "activation=relu)\"\n"
	                   "  m: \"max(c, axis=0, keepdims=true)\"\n"
	                   "  out: \"dense(flatten(c - m), units=10)\"\n"
	                   "loss: \"softmax_cross_entropy(out, label) + "
	                   "sum((c - 1) ^ 2) / 1000000\"\n"
	                   "optimizer: {type: sgd, lr: 0.01, momentum: 0.9}\n";
	Two t;
	int shared = 0;
	checked_begin(&t, "parts.yaml", yaml, 37, 37, &shared);
	Plan *p = plan_fn(t.c->g, FN_TRAIN_STEP);
	int sums = 0, maxes = 0;
	for (int i = 0; i < t.c->g->n; i++) {
		Node *n = t.c->g->nodes[i];
		if (p->live[i] && reduce_parts(n) == 8)
			sums += n->op == OP_SUM, maxes += n->op == OP_RMAX;
	}
	CU_ASSERT(sums >= 2); /* c's bias, the square's sum */
	CU_ASSERT_EQUAL(maxes, 1);
	two_end(&t);
}

/* Gathers (an embedding's rows), their gradient's scatter (repeated indices, the
 * threads sharing columns), one-hot, argmax and dropout masks share their loops between
 * threads: against the reference, the same bits on 1, 2 and 3 threads, and each of
 * them handed to the pool. */
static void test_diff_gathers_and_masks_are_shared_between_threads(void)
{
	const char *yaml =
	    "name: tokens\n"
	    "inputs:\n"
	    "  tokens: {shape: [batch, 64], dtype: i32}\n"
	    "  label: {shape: [batch], dtype: i32}\n"
	    "nodes:\n"
	    "  e: \"embedding(tokens, num_embeddings=300, embedding_dim=40)\"\n"
	    "  h: \"dropout(dense(flatten(e), units=600, activation=relu), "
	    "p=0.5)\"\n"
	    "  out: \"dense(h, units=1000)\"\n"
	    "loss: \"softmax_cross_entropy(out, label) + "
	    "sum(one_hot(argmax(out), num_classes=1000) * out) / 1000\"\n"
	    "optimizer: {type: sgd, lr: 0.01}\n";
	int halves;
	char *text = shared_model_ir("tokens.yaml", yaml, 37, &halves);
	const char *kinds[] = {"gather", "scatter_add", "onehot", "argmax", "dropmask"};
	for (int k = 0; k < 5; k++) {
		char par[48];
		snprintf(par, sizeof par, ".%s.parallel", kinds[k]);
		int shared = 0;
		for (const char *l = strstr(text, "@rt_parallel_for("); l && !shared;
		     l = strstr(l + 1, "@rt_parallel_for(")) {
			const char *end = strchr(l, '\n'), *at = strstr(l, par);
			shared = at && (!end || at < end);
		}
		CU_ASSERT(shared);
		if (!shared)
			fprintf(stderr, "\n%s runs on one thread\n", kinds[k]);
	}
	free(text);
}

/* A node recomputed in each loop that reads it (plan.c, recomputed) when the update
 * phase is one of them: a * 3 is read by the forward product and by b's update, and a
 * is written in place before b's update runs. Stored instead, the update reads it as
 * computed from the old a. Against the reference (it failed with a * 3 recomputed). */
static void test_diff_updates_read_values_of_the_old_parameters(void)
{
	check_yaml("olda.yaml",
	           "name: olda\n"
	           "params:\n"
	           "  a: {shape: [64, 64], init: normal}\n"
	           "  b: {shape: [64, 64], init: normal}\n"
	           "  c: {shape: [64, 4], init: normal}\n"
	           "loss: \"mean(matmul((b * b) * (a * 3), c))\"\n"
	           "optimizer: {type: sgd, lr: 0.1}\n",
	           1);
}

/* Whether n reads m, directly or through the nodes computed in its loop (Plan.inl). */
static int loop_reads_node(const Plan *p, const Node *n, const Node *m)
{
	for (int k = 0; k < n->nin; k++)
		if (n->in[k] == m ||
		    (p->inl[n->in[k]->id] && loop_reads_node(p, n->in[k], m)))
			return 1;
	return 0;
}

/* A pointwise loop that reads a value of its size last, at the element it writes, and
 * no other, writes its values over that value (plan.c, in_place): leaky relu's and
 * elu's gradients, reading the values their masks are recomputed from (recomputed).
 * Against the reference, the same bits on 1, 2 and 3 threads, and values that took the
 * span of a value their loop reads in train_step. */
static void test_diff_pointwise_loops_write_in_place(void)
{
	const char *yaml = "name: inplace\n"
	                   "inputs:\n"
	                   "  x: {shape: [batch, 515]}\n"
	                   "params:\n"
	                   "  w: {shape: [515], init: normal}\n"
	                   "  b: {shape: [515], init: normal}\n"
	                   "nodes:\n"
	                   "  h: \"leaky_relu(x * w + b, negative_slope=0.1)\"\n"
	                   "  e: \"elu(h * w - b)\"\n"
	                   "  g: \"gelu(e * w)\"\n"
	                   "loss: \"mean(g * g) + mean(h * e)\"\n"
	                   "optimizer: {type: sgd, lr: 0.01}\n";
	int halves;
	char *text = shared_model_ir("inplace.yaml", yaml, 37, &halves);
	free(text);
	Two t;
	model_begin(&t, yaml, 37);
	Plan *p = plan_fn(t.c->g, FN_TRAIN_STEP);
	int in_place = 0;
	for (int k = 0; k < p->n; k++)
		for (int j = 0; j < k; j++) {
			Node *n = p->order[k], *m = p->order[j];
			in_place += p->buf[m->id].kind == BUF_WORK &&
			            p->buf[m->id].off == p->buf[n->id].off &&
			            loop_reads_node(p, n, m);
		}
	CU_ASSERT(in_place >= 2);
	two_end(&t);
}

/* Depthwise convolutions of stride 1 (conv_depthwise) run on the images directly, a
 * vector of a row at a time, lanes outside the image masked: 3 x 3 with padding and
 * relu in the loop, 5 x 5 dilated, [3, 4] with uneven padding, 3 x 3 without; rows of
 * 19 (a vector and a part) and 21 (after the valid one); every data gradient needed (a
 * 1 x 1 convolution first), two of them computing relu's and tanh's gradients in their
 * rows. Against the reference on the host's vectors and AVX2's,
 * the same bits on 1, 2 and 3 threads, and none of them through patches or padded
 * copies (no scratch). */
static void test_diff_depthwise_convolutions_match_the_reference(void)
{
	const char *yaml =
	    "name: depthwise\n"
	    "inputs:\n"
	    "  image: {shape: [batch, 3, 17, 19]}\n"
	    "  label: {shape: [batch], dtype: i32}\n"
	    "layers:\n"
	    "  - conv2d: {out_channels: 5, kernel_size: 1}\n"
	    "  - conv2d: {out_channels: 5, kernel_size: 3, padding: 1, groups: 5,\n"
	    "             activation: relu}\n"
	    "  - conv2d: {out_channels: 5, kernel_size: 5, padding: 4, dilation: 2,\n"
	    "             groups: 5}\n"
	    "  - conv2d: {out_channels: 5, kernel_size: [3, 4], padding: [2, 1, 0, 3],\n"
	    "             groups: 5, activation: tanh}\n"
	    "  - conv2d: {out_channels: 5, kernel_size: 3, groups: 5}\n" CONV_TAIL;
	depthwise_model("depthwise.yaml", yaml, 3, 4, 2);
}

/* Depthwise convolutions at stride 2 run on the images too (conv_depthwise): the
 * forward pass and the filter gradient take every other lane of a pair of loads along
 * a row, the data gradient every other lane of a row of dy spread out, and rows at
 * stride 2 where it divides. Stride 2 both ways and along rows or columns alone,
 * padded, dilated, on rows of 70, 35 and 17 (vectors and a part, on the host's and
 * AVX2's), against the reference, the same bits on 1, 2 and 3 threads, and all of
 * them depthwise. */
static void test_diff_stride2_depthwise_convolutions_match_the_reference(void)
{
	const char *yaml =
	    "name: depthwise2\n"
	    "inputs:\n"
	    "  image: {shape: [batch, 3, 9, 70]}\n"
	    "  label: {shape: [batch], dtype: i32}\n"
	    "layers:\n"
	    "  - conv2d: {out_channels: 4, kernel_size: 1}\n"
	    "  - conv2d: {out_channels: 4, kernel_size: 3, stride: 2, padding: 1, "
	    "groups: 4,\n"
	    "             activation: relu}\n"
	    "  - conv2d: {out_channels: 4, kernel_size: [2, 3], stride: [1, 2],\n"
	    "             padding: [0, 1, 2, 1], dilation: [1, 2], groups: 4}\n"
	    "  - conv2d: {out_channels: 4, kernel_size: 3, stride: [2, 1], padding: 1,\n"
	    "             groups: 4}\n" CONV_TAIL;
	CU_ASSERT(depthwise_model("depthwise2.yaml", yaml, 16, 3, 1) == 1);
}

/* A depthwise filter gradient runs its channels in blocks of planes (dw_filter): 7
 * channels of 32 x 33 planes are blocks of 3, 3 and 1. Against the reference, and the
 * same bits on 1, 2 and 3 threads, which share the blocks. */
static void test_diff_depthwise_filter_gradients_in_blocks_match_the_reference(void)
{
	const char *yaml = "name: dwblocks\n"
	                   "inputs:\n"
	                   "  image: {shape: [batch, 2, 32, 33]}\n"
	                   "  label: {shape: [batch], dtype: i32}\n"
	                   "layers:\n"
	                   "  - conv2d: {out_channels: 7, kernel_size: 1}\n"
	                   "  - conv2d: {out_channels: 7, kernel_size: 3, padding: 1, "
	                   "groups: 7}\n" CONV_TAIL;
	depthwise_model("dwblocks.yaml", yaml, 4, 1, 0);
}

/* A step whose new values are not all finite, though the loss and every gradient are,
 * writes nothing: a huge momentum buffer on one tensor alone overflows only its own
 * update group's check, and so does one huge value anywhere in a vector (lane 5, the
 * last lane, a middle one) or in the elements after the last whole vector (the 10
 * biases at any width, the 40 at 16). A parameter's step larger than 2^100 is refused
 * too, and one below it taken. */
static void test_diff_a_step_that_overflows_writes_nothing(void)
{
	Two t;
	two_begin(&t, 20, 40, "{type: sgd, lr: 0.1, momentum: 0.9}", 9);
	const rt_program *p = t.p;
	rt_session *s = t.s;
	CU_ASSERT(isfinite(((float *)s->io[p->io_loss])[0]));
	CU_ASSERT_EQUAL(rt_set_hyper(s, "lr", 10), 0);
	size_t ns = (size_t)p->nstate * sizeof(float);
	float *good = malloc(ns);
	memcpy(good, s->state, ns);
	int refusals = 0, tried = 0;
	for (int k = 0; k < p->nstates; k++) {
		const rt_state *st = &p->states[k];
		if (st->numel == 1)
			continue;
		int64_t at[4] = {-1, 5, st->numel / 2 + 3, st->numel - 1};
		for (int j = 0; j < 4; j++) { /* all of them, then one at a time */
			for (int64_t i = 0; i < st->numel; i++)
				if (j == 0 || i == at[j])
					s->state[st->offset + i] = 3e38f;
			int r = refused(p, s);
			if (r != 1)
				fprintf(stderr, "\n%s[%lld]: the step was taken\n",
				        st->name, (long long)at[j]);
			refusals += r == 1, tried++;
			memcpy(s->state, good, ns);
		}
	}
	CU_ASSERT_EQUAL(tried, 16);
	CU_ASSERT_EQUAL(refusals, tried);
	/* and with finite values the same step is taken */
	CU_ASSERT_EQUAL(refused(p, s), 0);
	/* a parameter's own new value p - d is checked on its step d, which must be at
	 * most 2^100 (1.27e30): with a momentum of 1 in one place, lr 1e31 makes a step
	 * of about 9e30 there, refused though p - d would be finite; lr 1e29 is taken */
	const double lrs[2] = {1e31, 1e29};
	for (int k = 0; k < 2; k++) {
		CU_ASSERT_EQUAL(rt_set_hyper(s, "lr", lrs[k]), 0);
		s->state[p->states[0].numel > 1 ? p->states[0].offset
		                                : p->states[1].offset] = 1;
		CU_ASSERT_EQUAL(refused(p, s), k == 0);
		for (int64_t i = 0; i < p->nparams; i++)
			CU_ASSERT_FATAL(isfinite(s->params[i]));
	}
	free(good);
	two_end(&t);
}

void suite_diff(void)
{
	static CU_TestInfo tests[] = {
	    {"test_diff_tiles_for_avx2_and_sse_match_the_reference",
	     test_diff_tiles_for_avx2_and_sse_match_the_reference},
	    {"test_diff_wide_layers_match_the_reference",
	     test_diff_wide_layers_match_the_reference},
	    {"test_diff_one_part_or_two_give_identical_results",
	     test_diff_one_part_or_two_give_identical_results},
	    {"test_diff_profiling_changes_nothing_but_time",
	     test_diff_profiling_changes_nothing_but_time},
	    {"test_diff_odd_widths_match_the_reference",
	     test_diff_odd_widths_match_the_reference},
	    {"test_diff_narrow_products_are_shared_by_rows",
	     test_diff_narrow_products_are_shared_by_rows},
	    {"test_diff_input_gradients_in_halves_match_the_reference",
	     test_diff_input_gradients_in_halves_match_the_reference},
	    {"test_diff_transposes_match_the_reference",
	     test_diff_transposes_match_the_reference},
	    {"test_diff_polynomial_activations_match_the_reference",
	     test_diff_polynomial_activations_match_the_reference},
	    {"test_diff_sin_and_cos_match_the_reference",
	     test_diff_sin_and_cos_match_the_reference},
	    {"test_diff_fused_reductions_match_the_reference",
	     test_diff_fused_reductions_match_the_reference},
	    {"test_diff_loops_reading_many_values_match_the_reference",
	     test_diff_loops_reading_many_values_match_the_reference},
	    {"test_diff_concatenations_match_the_reference",
	     test_diff_concatenations_match_the_reference},
	    {"test_diff_pointwise_convolutions_match_the_reference",
	     test_diff_pointwise_convolutions_match_the_reference},
	    {"test_diff_reductions_over_the_batch_run_in_parts",
	     test_diff_reductions_over_the_batch_run_in_parts},
	    {"test_diff_gathers_and_masks_are_shared_between_threads",
	     test_diff_gathers_and_masks_are_shared_between_threads},
	    {"test_diff_pointwise_loops_write_in_place",
	     test_diff_pointwise_loops_write_in_place},
	    {"test_diff_updates_read_values_of_the_old_parameters",
	     test_diff_updates_read_values_of_the_old_parameters},
	    {"test_diff_depthwise_convolutions_match_the_reference",
	     test_diff_depthwise_convolutions_match_the_reference},
	    {"test_diff_stride2_depthwise_convolutions_match_the_reference",
	     test_diff_stride2_depthwise_convolutions_match_the_reference},
	    {"test_diff_depthwise_filter_gradients_in_blocks_match_the_reference",
	     test_diff_depthwise_filter_gradients_in_blocks_match_the_reference},
	    {"test_diff_max_pools_match_the_reference",
	     test_diff_max_pools_match_the_reference},
	    {"test_diff_vector_loops_match_the_reference",
	     test_diff_vector_loops_match_the_reference},
	    {"test_diff_convolutions_match_the_reference",
	     test_diff_convolutions_match_the_reference},
	    {"test_diff_stride2_convolutions_match_the_reference",
	     test_diff_stride2_convolutions_match_the_reference},
	    {"test_diff_stride2_implicit_convolutions_match_the_reference",
	     test_diff_stride2_implicit_convolutions_match_the_reference},
	    {"test_diff_filter_gradients_read_dy_in_place",
	     test_diff_filter_gradients_read_dy_in_place},
	    {"test_diff_filter_gradients_in_chunks_match_the_reference",
	     test_diff_filter_gradients_in_chunks_match_the_reference},
	    {"test_diff_implicit_convolutions_write_in_place",
	     test_diff_implicit_convolutions_write_in_place},
	    {"test_diff_max_pool_penalties_match_the_reference",
	     test_diff_max_pool_penalties_match_the_reference},
	    {"test_diff_max_pools_of_infinities_and_nans_match_the_reference",
	     test_diff_max_pools_of_infinities_and_nans_match_the_reference},
	    {"test_diff_a_step_that_overflows_writes_nothing",
	     test_diff_a_step_that_overflows_writes_nothing},
	    {"test_diff_weight_decay_is_checked_on_large_weights",
	     test_diff_weight_decay_is_checked_on_large_weights},
	    {"test_diff_sgd_steps_are_checked_from_the_buffer",
	     test_diff_sgd_steps_are_checked_from_the_buffer},
	    {"test_diff_adam_bound_with_a_large_eps",
	     test_diff_adam_bound_with_a_large_eps},
	    {"test_diff_adam_steps_are_checked_without_dividing",
	     test_diff_adam_steps_are_checked_without_dividing},
	    {"test_diff_adam_check_refuses_what_dividing_would",
	     test_diff_adam_check_refuses_what_dividing_would},
	    {"test_diff_threads_give_identical_results",
	     test_diff_threads_give_identical_results},
	    {"test_diff_every_model_matches_the_reference_at_O0_and_O3",
	     test_diff_every_model_matches_the_reference_at_O0_and_O3},
	    CU_TEST_INFO_NULL,
	};
	add_suite("diff", tests);
}
