/* Models end to end: every file in models/ compiles and trains a step; the example
 * models do what they are for (Rosenbrock converges, the residual MLP and LeNet
 * learn); losses are stable at extreme logits; where() keeps the untaken branch's
 * gradient at 0; gradients of gradients match closed forms; frozen parameters stay;
 * dropout and batch norm behave differently in training and evaluation. */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dc.h"
#include "tests.h"

#define FASHION "/usr/share/datasets/fashion-mnist/"

typedef struct Run {
	Arena *A;
	Diags d;
	Model *m;
	Compiled *c;
	rt_session *s;
} Run;

/* Compiles a model from a file (path) or from YAML text; batch 0 keeps the model's. */
static int start(Run *r, const char *path, const char *text, int64_t batch)
{
	memset(r, 0, sizeof *r);
	r->A = arena_new();
	if (path) {
		r->m = model_load(r->A, &r->d, path);
	} else {
		Spec *sp = spec_parse(r->A, &r->d, "t.yaml", text, strlen(text));
		r->m = sp ? model_from_spec(r->A, &r->d, sp, "t.yaml") : NULL;
	}
	CodegenOpts o = {.opt_level = 2};
	r->c = r->m ? compile_model(&r->d, r->m, batch ? batch : r->m->batch, &o) : NULL;
	if (!r->c) {
		diag_print(&r->d, stderr);
		return -1;
	}
	r->s = rt_session_new(&r->c->prog);
	rt_session_init(r->s, 1);
	return 0;
}

static void finish(Run *r)
{
	rt_session_free(r->s);
	compiled_free(r->c);
	diags_free(&r->d);
	arena_free(r->A);
}

static float *param(Run *r, const char *name)
{
	for (int i = 0; i < r->c->prog.nparam; i++)
		if (!strcmp(r->c->prog.params[i].name, name))
			return r->s->params + r->c->prog.params[i].offset;
	CU_FAIL("no such parameter");
	return r->s->params;
}

static float *grad(Run *r, const char *name)
{
	return r->s->grads + (param(r, name) - r->s->params);
}

static float loss(Run *r) { return *(float *)r->s->io[r->c->prog.io_loss]; }

/* Each model of the list compiles and takes a training step, which moves its
 * parameters and gives a finite loss; how many there were. */
static int every_model_trains_a_step(const char *const *models)
{
	int seen = 0;
	for (; models[seen]; seen++) {
		const char *path = models[seen];
		Run r;
		CU_ASSERT_FATAL(start(&r, path, NULL, 8) == 0);
		rt_rng rng;
		rt_rng_seed(&rng, 3);
		random_inputs(r.s, &rng);
		float *before = malloc((size_t)r.c->prog.nparams * sizeof *before);
		memcpy(before, r.s->params, (size_t)r.c->prog.nparams * sizeof *before);
		r.c->prog.train_step(r.s->bufs);
		CU_ASSERT(isfinite(loss(&r)));
		CU_ASSERT(memcmp(before, r.s->params,
		                 (size_t)r.c->prog.nparams * sizeof *before) != 0);
		free(before);
		finish(&r);
	}
	return seen;
}

static void test_models_every_model_compiles_and_trains_a_step(void)
{
	CU_ASSERT(every_model_trains_a_step(model_files()) >= 4);
}

/* The benchmark models (bench/run.sh) and the survey's (bench/survey.sh), which no
 * other test reads, stay valid models. */
static void test_models_benchmark_and_survey_models_train_a_step(void)
{
	static char paths[32][4096];
	const char *list[33];
	CU_ASSERT(yaml_files("bench", paths, list, 32) == 3);
	CU_ASSERT(every_model_trains_a_step(list) == 3);
	CU_ASSERT(yaml_files("bench/survey", paths, list, 32) >= 7);
	CU_ASSERT(every_model_trains_a_step(list) >= 7);
}

static void test_models_rosenbrock_converges_to_one_one(void)
{
	Run r;
	CU_ASSERT_FATAL(start(&r, src_path("models/rosenbrock.yaml"), NULL, 0) == 0);
	for (int64_t k = 0; k < r.m->steps; k++)
		r.c->prog.train_step(r.s->bufs);
	float x = *param(&r, "x"), y = *param(&r, "y");
	CU_ASSERT(fabsf(x - 1) < 1e-3f && fabsf(y - 1) < 1e-3f);
	finish(&r);
}

static int load_fashion(rt_tensor *xtr, rt_tensor *ytr, rt_tensor *xte, rt_tensor *yte)
{
	char err[512];
	if (rt_idx_load(FASHION "train-images-idx3-ubyte.gz", 1 / 255.0, 0, xtr, err,
	                sizeof err) ||
	    rt_idx_load(FASHION "train-labels-idx1-ubyte.gz", 1, 1, ytr, err,
	                sizeof err) ||
	    rt_idx_load(FASHION "t10k-images-idx3-ubyte.gz", 1 / 255.0, 0, xte, err,
	                sizeof err) ||
	    rt_idx_load(FASHION "t10k-labels-idx1-ubyte.gz", 1, 1, yte, err,
	                sizeof err)) {
		fprintf(stderr, "\n%s\n", err);
		return -1;
	}
	xte->n = yte->n = 2000;
	return 0;
}

/* One epoch over the first `limit` training images; the test accuracy it reaches. */
static double short_run(const char *model, int64_t limit)
{
	Run r;
	rt_tensor xtr, ytr, xte, yte;
	if (start(&r, src_path(model), NULL, 0) < 0 ||
	    load_fashion(&xtr, &ytr, &xte, &yte) < 0)
		return 0;
	rt_rng rng;
	rt_rng_seed(&rng, 1);
	rt_metrics tr, te;
	char err[512];
	double acc = 0;
	if (rt_train_epoch(r.s, &xtr, &ytr, limit, &rng, NULL, NULL, &tr, err,
	                   sizeof err) == 0 &&
	    rt_evaluate(r.s, &xte, &yte, &te, err, sizeof err) == 0)
		acc = te.accuracy;
	printf("\n  %s: test accuracy %.4f after %lld examples ", model, acc,
	       (long long)limit);
	rt_tensor_free(&xtr), rt_tensor_free(&ytr), rt_tensor_free(&xte),
	    rt_tensor_free(&yte);
	finish(&r);
	return acc;
}

static void test_models_residual_mlp_learns(void)
{
	CU_ASSERT(short_run("models/residual_mlp.yaml", 10000) > 0.75);
}

static void test_models_lenet_learns(void)
{
	CU_ASSERT(short_run("models/fashion_lenet.yaml", 6000) > 0.65);
}

/* logits [1000, 0, -1000]: a finite loss and the exact gradient softmax - target */
static void test_models_cross_entropy_is_stable_at_extreme_logits(void)
{
	const char *forms[] = {"softmax_cross_entropy(z, t)",
	                       "sum(-log(softmax(z)) * t)"};
	for (int f = 0; f < 2; f++) {
		char text[512];
		snprintf(
		    text, sizeof text,
		    "params: {z: {shape: [1, 3]}, t: {shape: [1, 3], trainable: false}}\n"
		    "loss: \"%s\"\n",
		    forms[f]);
		Run r;
		CU_ASSERT_FATAL(start(&r, NULL, text, 0) == 0);
		float *z = param(&r, "z"), *t = param(&r, "t");
		z[0] = 1000, z[1] = 0, z[2] = -1000;
		t[0] = 0, t[1] = 1, t[2] = 0;
		r.c->prog.grad(r.s->bufs);
		float *g = grad(&r, "z");
		CU_ASSERT_DOUBLE_EQUAL(loss(&r), 1000, 1e-3);
		CU_ASSERT(g[0] == 1 && g[1] == -1 && g[2] == 0);
		finish(&r);
	}
}

/* where(x > 0, sqrt(x), 0) at x = 0: the sqrt branch is not taken, its gradient 0 */
static void test_models_where_keeps_untaken_branch_gradient_finite(void)
{
	const char *forms[] = {
	    "sum(where(x > 0, sqrt(x), 0))", "sum(where(x > 0, log(x), 0))",
	    "sum(where(x > 0, x^0.5, 0))", "sum(where(x > 0, 1 / x, 0))"};
	double want4[] = {0.25, 0.25, 0.25, -1.0 / 16};
	for (int f = 0; f < 4; f++) {
		char text[512];
		snprintf(text, sizeof text, "params: {x: {shape: [2]}}\nloss: \"%s\"\n",
		         forms[f]);
		Run r;
		CU_ASSERT_FATAL(start(&r, NULL, text, 0) == 0);
		float *x = param(&r, "x");
		x[0] = 0, x[1] = 4;
		r.c->prog.grad(r.s->bufs);
		float *g = grad(&r, "x");
		CU_ASSERT_EQUAL(g[0], 0);
		CU_ASSERT_DOUBLE_EQUAL(g[1], want4[f], 1e-6);
		finish(&r);
	}
}

/* Ties, as PyTorch: max over an axis shares dy among the elements equal to the maximum
 * (torch.amax; every tie got all of it), elementwise max and min give half to each
 * side of a tie (torch.maximum, torch.minimum; x got all of it). */
static void test_models_max_and_min_share_ties_as_torch_does(void)
{
	static const struct {
		const char *loss;
		float dx[8], dy[8];
	} cases[] = {
	    {"sum(max(x, axis=1))", {0, .5f, .5f, 0, .25f, .25f, .25f, .25f}, {0}},
	    {"sum(min(x, axis=1))", {0, 0, 0, 1, .25f, .25f, .25f, .25f}, {0}},
	    {"max(x)", {0, .5f, .5f, 0, 0, 0, 0, 0}, {0}},
	    {"sum(max(x, y))",
	     {.5f, 1, .5f, 0, .5f, .5f, 1, 1},
	     {.5f, 0, .5f, 1, .5f, .5f, 0, 0}},
	    {"sum(min(x, y))",
	     {.5f, 0, .5f, 1, .5f, .5f, 0, 0},
	     {.5f, 1, .5f, 0, .5f, .5f, 1, 1}},
	};
	static const float xv[8] = {1, 3, 3, 0, 2, 2, 2, 2},
	                   yv[8] = {1, 0, 3, 5, 2, 2, 0, 0};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		char text[512];
		snprintf(text, sizeof text,
		         "params: {x: {shape: [2, 4]}, y: {shape: [2, 4]}}\n"
		         "loss: \"%s + 0 * sum(y)\"\n",
		         cases[c].loss);
		Run r;
		CU_ASSERT_FATAL(start(&r, NULL, text, 0) == 0);
		memcpy(param(&r, "x"), xv, sizeof xv);
		memcpy(param(&r, "y"), yv, sizeof yv);
		r.c->prog.grad(r.s->bufs);
		for (int i = 0; i < 8; i++) {
			CU_ASSERT_EQUAL(grad(&r, "x")[i], cases[c].dx[i]);
			CU_ASSERT_EQUAL(grad(&r, "y")[i], cases[c].dy[i]);
		}
		finish(&r);
	}
	/* the side that loses gets an exact 0, even of an infinite dy (not inf * 0) */
	Run r;
	CU_ASSERT_FATAL(start(&r, NULL,
	                      "params: {x: {init: 0}, y: {init: -1}}\n"
	                      "loss: \"sqrt(max(x, y))\"\n",
	                      0) == 0);
	r.c->prog.grad(r.s->bufs);
	CU_ASSERT(isinf(*grad(&r, "x")));
	CU_ASSERT_EQUAL(*grad(&r, "y"), 0);
	finish(&r);
}

/* The batch is a property of where a value comes from, not of its size: a parameter
 * [4, 6] reshaped to [-1] is 24 values at batch 4 as at batch 5 (it kept 4 rows of 6
 * at batch 4: max over them gave 123, not 23). */
static void test_models_a_parameter_of_the_batch_size_is_not_batched(void)
{
	const char *text = "inputs: {c: {shape: [batch, 1]}}\n"
	                   "params: {W: {shape: [4, 6]}}\n"
	                   "nodes: {v: \"reshape(W, shape=[-1])\"}\n"
	                   "loss: \"sum(max(v, axis=0)) + 0 * sum(c)\"\n";
	for (int64_t b = 4; b <= 5; b++) {
		Run r;
		CU_ASSERT_FATAL(start(&r, NULL, text, b) == 0);
		for (int i = 0; i < 24; i++)
			param(&r, "W")[i] = (float)i;
		r.c->prog.grad(r.s->bufs);
		CU_ASSERT_EQUAL(loss(&r), 23);
		CU_ASSERT_EQUAL(grad(&r, "W")[23], 1);
		CU_ASSERT_EQUAL(grad(&r, "W")[5], 0);
		finish(&r);
	}
}

/* Reductions over the batch in a loss expression leave out the padding rows of a last
 * partial batch, as the built-in losses do: each model's mean loss over 5 examples is
 * the same at batch 3, 4 (a batch of 1 and 3 padding rows), 5 and 6, and
 * mean((fc - t)^2) is mse's. */
static void test_models_batch_reductions_leave_out_padding(void)
{
	float xv[5 * 3], tv[5 * 2], xs[5 * 6];
	for (int i = 0; i < 15; i++)
		xv[i] = (float)((i * 7) % 5) - 1.5f;
	for (int i = 0; i < 10; i++)
		tv[i] = (float)((i * 3) % 4) - 1;
	for (int i = 0; i < 30; i++)
		xs[i] = (float)((i * 5) % 7) - 3;
	rt_tensor x = {RT_F32, 5, 1, {3}, 3, xv}, t = {RT_F32, 5, 1, {2}, 2, tv},
	          x3 = {RT_F32, 5, 2, {2, 3}, 6, xs};
	static const struct {
		const char *yaml;
		int rank3; /* x is [batch, 2, 3] */
	} models[] = {
	    {"nodes: {fc: \"dense(x, units=2)\"}\nloss: \"mean((fc - t)^2)\"\n", 0},
	    {"nodes: {fc: \"dense(x, units=2)\"}\nloss: \"mse(fc, t)\"\n", 0},
	    /* dense on [batch, 2, 3] computes on [batch * 2, 3] and comes back: still
	     * per example (reshape and the masked mean), as a transpose and back is */
	    {"nodes: {h: \"dense(x, units=3)\", f: \"reshape(h, shape=[-1])\"}\n"
	     "loss: \"softmax_cross_entropy(dense(f, units=2), transpose(transpose(t) * "
	     "2))\"\n",
	     1},
	    /* the batch follows the data through the ops, not the size: W * mean(x) is
	     * [4, 3] at batch 4 without being 4 examples (its rows 2 and 3 were dropped
	     * as padding); a mean over a batch moved to axis 1, a loss of transposed
	     * values and a dense on time-major [3, batch, 1] still leave out padding */
	    {"params: {W: {shape: [4, 3], init: normal}}\n"
	     "loss: \"mean(t) + sum(W * mean(x)) + mean(transpose(x)) + "
	     "mse(transpose(t), transpose(2 * t)) + mean(dense(transpose(reshape(x, "
	     "shape=[3, 1]), perm=[1, 0, 2]), units=2)^2)\"\n",
	     0},
	};
	double first = 0;
	for (size_t k = 0; k < sizeof models / sizeof *models; k++) {
		double l[5];
		for (int64_t b = 3; b <= 7; b++) {
			char text[1024];
			snprintf(text, sizeof text,
			         "inputs: {x: {shape: [batch, %s]}, t: {shape: [batch, "
			         "2]}}\n%s",
			         models[k].rank3 ? "2, 3" : "3", models[k].yaml);
			Run r; /* (7 is batch 1: several axes hold the batch's digit) */
			CU_ASSERT_FATAL(start(&r, NULL, text, b == 7 ? 1 : b) == 0);
			rt_metrics m;
			char err[256];
			CU_ASSERT_FATAL(rt_evaluate(r.s, models[k].rank3 ? &x3 : &x, &t,
			                            &m, err, sizeof err) == 0);
			l[b - 3] = m.loss;
			finish(&r);
		}
		CU_ASSERT(fabs(l[0]) > 0.1);
		for (int i = 1; i < 5; i++)
			CU_ASSERT_DOUBLE_EQUAL(l[i], l[0], 1e-6 * fabs(l[0]));
		if (k == 0) /* and the expression is mse */
			first = l[0];
		else if (k == 1)
			CU_ASSERT_DOUBLE_EQUAL(l[0], first, 1e-6 * first);
	}
	/* in a training step: 2 rows at batch 2 give the loss those rows at batch 3
	 * with a padding row of zeros (log 0 there) give: a product that sums over
	 * the batch, a batch norm over a batch merged into axis 0 (time-major), a
	 * loss infinite on the padding row (no 0 * inf) */
	static const char *const steps[] = {
	    "sum(matmul(transpose(log(x)), log(x)) * (1 + c))",
	    "mean(batch_norm(reshape(transpose(reshape(x, shape=[3, 1]), perm=[1, 0, "
	    "2]), "
	    "shape=[-1, 1]))^2) * (1 + c) + mse(log(x), x)",
	};
	for (size_t k = 0; k < sizeof steps / sizeof *steps; k++) {
		double lx[2];
		for (int64_t b = 2; b <= 3; b++) {
			char text[512];
			snprintf(
			    text, sizeof text,
			    "inputs: {x: {shape: [batch, 3]}}\nparams: {c: {init: 0}}\n"
			    "loss: \"%s\"\n",
			    steps[k]);
			Run r;
			CU_ASSERT_FATAL(start(&r, NULL, text, b) == 0);
			const rt_program *p = &r.c->prog;
			float *xi = r.s->io[p->io_x], *wi = r.s->io[p->io_weight];
			for (int i = 0; i < 9; i++)
				xi[i] = i < 6 ? (float)(i + 2) : 0;
			if (b == 3)
				wi[2] = 0;
			p->grad(r.s->bufs);
			lx[b - 2] = loss(&r);
			finish(&r);
		}
		CU_ASSERT(fabs(lx[0]) > 0.1);
		CU_ASSERT_DOUBLE_EQUAL(lx[0], lx[1], 1e-5 * fabs(lx[0]));
	}
}

/* A product with a constant matrix: grad(f, p) of an f linear in p is one (it had no
 * buffer, and codegen stopped with an internal error). c = grad(sum(3 p), p) is 3s:
 * q c sums q's rows, c q its columns, c r^T r's rows. */
static void test_models_products_with_a_constant_matrix(void)
{
	Run r;
	CU_ASSERT_FATAL(
	    start(&r, NULL,
	          "params: {p: {shape: [2, 2]}, q: {shape: [2, 2]}, r: {shape: "
	          "[3, 2]}, w: {shape: [2]}, v: {shape: [2]}}\n"
	          "nodes: {c: \"grad(sum(3 * p), p)\"}\n"
	          "loss: \"sum(matmul(q, c) * w) + sum(matmul(c, q) * v) + "
	          "sum(matmul(c, transpose(r)))\"\n",
	          0) == 0);
	const float qv[4] = {1, 2, 3, 4}, rv[6] = {1, 2, 3, 4, 5, 6}, wv[2] = {1, 10},
	            vv[2] = {100, 1000};
	memcpy(param(&r, "q"), qv, sizeof qv);
	memcpy(param(&r, "r"), rv, sizeof rv);
	memcpy(param(&r, "w"), wv, sizeof wv);
	memcpy(param(&r, "v"), vv, sizeof vv);
	r.c->prog.grad(r.s->bufs);
	/* q c = 3 [3 3; 7 7]: 30 + 300; c q = 3 [4 6; 4 6]: 2400 + 36000; c r^T: 3 [3 7
	 * 11; 3 7 11] sums to 126 */
	CU_ASSERT_DOUBLE_EQUAL(loss(&r), 330 + 38400 + 126, 1e-3);
	CU_ASSERT_DOUBLE_EQUAL(grad(&r, "q")[0], 3 * 11 + 2 * 3 * 100, 1e-3);
	finish(&r);
}

/* pow at a base of 0, as torch's pow_backward: x^0 gives x nothing (0 * 0^-1 was
 * NaN); x^u gives u nothing where x = 0 and u >= 0 (log 0 * 0 was NaN), and 0^u with
 * u < 1 is still infinitely steep in x. Elsewhere u x^(u-1) and log(x) x^u. */
static void test_models_pow_at_zero_follows_torch(void)
{
	static const float xv[4] = {0, 0, 2, 0.5f}, uv[4] = {2, 0.5f, 1.5f, 3};
	Run r;
	CU_ASSERT_FATAL(start(&r, NULL,
	                      "params: {x: {shape: [4]}, u: {shape: [4]}}\n"
	                      "loss: \"sum(pow(x, u)) + sum(x ^ 0)\"\n",
	                      0) == 0);
	memcpy(param(&r, "x"), xv, sizeof xv);
	memcpy(param(&r, "u"), uv, sizeof uv);
	r.c->prog.grad(r.s->bufs);
	const float *dx = grad(&r, "x"), *du = grad(&r, "u");
	CU_ASSERT_EQUAL(dx[0], 0);
	CU_ASSERT(isinf(dx[1]) && dx[1] > 0);
	CU_ASSERT_DOUBLE_EQUAL(dx[2], 1.5 * sqrt(2.0), 1e-5);
	CU_ASSERT_DOUBLE_EQUAL(dx[3], 3 * 0.25, 1e-6);
	CU_ASSERT_EQUAL(du[0], 0);
	CU_ASSERT_EQUAL(du[1], 0);
	CU_ASSERT_DOUBLE_EQUAL(du[2], log(2.0) * pow(2.0, 1.5), 1e-5);
	CU_ASSERT_DOUBLE_EQUAL(du[3], log(0.5) * 0.125, 1e-6);
	finish(&r);
	/* x^-2 at 0 is -inf, -2 0^-3 (once NaN: 0 * -inf in the product rule of the
	 * fold 1 / (x x)), and 0 on a where branch not taken (NaN with (1/x)^2) */
	CU_ASSERT_FATAL(start(&r, NULL,
	                      "params: {x: {shape: [2]}, z: {shape: [1]}}\n"
	                      "loss: \"sum(x ^ -2) + sum(x ^ 3) + "
	                      "sum(where(z > 0, z ^ -2, 0))\"\n",
	                      0) == 0);
	param(&r, "x")[1] = 2;
	r.c->prog.grad(r.s->bufs);
	dx = grad(&r, "x");
	CU_ASSERT(isinf(dx[0]) && dx[0] < 0);
	CU_ASSERT_DOUBLE_EQUAL(dx[1], -2 / 8.0 + 3 * 4, 1e-5);
	CU_ASSERT_EQUAL(grad(&r, "z")[0], 0);
	finish(&r);
}

/* f = x0^2 x1: grad f = [2 x0 x1, x0^2], Hessian [[2 x1, 2 x0], [2 x0, 0]].
 * A gradient-norm penalty L = f + |grad f|^2 / 2 has dL/dx = grad f + H grad f. */
static void test_models_gradient_penalty_matches_hessian(void)
{
	Run r;
	CU_ASSERT_FATAL(start(&r, NULL,
	                      "params: {x0: {init: 0.7}, x1: {init: -1.3}}\n"
	                      "nodes: {f: \"x0^2 * x1\"}\n"
	                      "loss: \"f + 0.5 * (grad(f, x0)^2 + grad(f, x1)^2)\"\n",
	                      0) == 0);
	r.c->prog.grad(r.s->bufs);
	double x0 = 0.7, x1 = -1.3, g0 = 2 * x0 * x1, g1 = x0 * x0;
	double want0 = g0 + 2 * x1 * g0 + 2 * x0 * g1, want1 = g1 + 2 * x0 * g0;
	CU_ASSERT_DOUBLE_EQUAL(*grad(&r, "x0"), want0, 1e-5);
	CU_ASSERT_DOUBLE_EQUAL(*grad(&r, "x1"), want1, 1e-5);
	finish(&r);
}

/* A Hessian-vector product: d/dx (grad f . v) = H v, here for f = sum(x^3) / 3 + x0 x1 */
static void test_models_hessian_vector_product(void)
{
	Run r;
	CU_ASSERT_FATAL(
	    start(&r, NULL,
	          "params: {x: {shape: [2]}, v: {shape: [2], trainable: false}}\n"
	          "nodes: {f: \"sum(x^3) / 3 + sum(x) ^ 2 / 2\"}\n"
	          "loss: \"sum(grad(f, x) * v)\"\n",
	          0) == 0);
	float *x = param(&r, "x"), *v = param(&r, "v");
	x[0] = 0.5f, x[1] = -2, v[0] = 1.5f, v[1] = 0.25f;
	r.c->prog.grad(r.s->bufs);
	/* H = diag(2x) + [[1, 1], [1, 1]] */
	double h0 = (2 * 0.5 + 1) * 1.5 + 1 * 0.25, h1 = 1 * 1.5 + (2 * -2.0 + 1) * 0.25;
	CU_ASSERT_DOUBLE_EQUAL(grad(&r, "x")[0], h0, 1e-5);
	CU_ASSERT_DOUBLE_EQUAL(grad(&r, "x")[1], h1, 1e-5);
	finish(&r);
}

static void test_models_frozen_parameters_do_not_move(void)
{
	Run r;
	CU_ASSERT_FATAL(
	    start(&r, NULL,
	          "params: {a: {init: 2}, b: {init: 3, trainable: false}}\n"
	          "loss: \"(a * b - 1)^2\"\noptimizer: {type: sgd, lr: 0.01}\n",
	          0) == 0);
	r.c->prog.train_step(r.s->bufs);
	CU_ASSERT_EQUAL(*param(&r, "b"), 3);
	CU_ASSERT(*param(&r, "a") != 2);
	finish(&r);
}

static void test_models_path_through_argmax_is_an_error(void)
{
	Arena *A = arena_new();
	Diags d = {0};
	const char *text = "inputs: {x: {shape: [batch, 4]}, y: {shape: [batch, 3]}}\n"
	                   "layers: [{dense: {units: 3}}]\n"
	                   "loss: \"sum(one_hot(argmax(output), num_classes=3) * y)\"\n";
	Spec *sp = spec_parse(A, &d, "t.yaml", text, strlen(text));
	Model *m = model_from_spec(A, &d, sp, "t.yaml");
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_PTR_NULL(lower_model(A, &d, m, 4));
	CU_ASSERT_EQUAL_FATAL(d.n, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(d.v[0].msg, "fc1.weight"));
	CU_ASSERT_PTR_NOT_NULL(strstr(d.v[0].msg, "no derivative"));
	CU_ASSERT_EQUAL(d.v[0].loc.line, 3);
	diags_free(&d);
	arena_free(A);
}

/* A parameter that reaches the loss through argmax and also another way gets that
 * way's gradient, as in PyTorch, where argmax's output has none: the same gradients
 * as without the argmax term, which lowered to an error before. */
static void test_models_argmax_beside_another_path_adds_nothing(void)
{
	const char *head = "inputs: {x: {shape: [batch, 4]}, y: {shape: [batch, 3]}}\n"
	                   "layers: [{dense: {units: 3}}]\n";
	char with[512], without[512];
	snprintf(with, sizeof with,
	         "%sloss: \"sum(output * output) + sum(one_hot(argmax(output), "
	         "num_classes=3) * y)\"\n",
	         head);
	snprintf(without, sizeof without, "%sloss: \"sum(output * output)\"\n", head);
	Run a, b;
	CU_ASSERT_FATAL(start(&a, NULL, with, 4) == 0);
	CU_ASSERT_FATAL(start(&b, NULL, without, 4) == 0);
	Run *r[2] = {&a, &b};
	for (int k = 0; k < 2; k++) {
		rt_rng rng;
		rt_rng_seed(&rng, 5);
		random_inputs(r[k]->s, &rng);
		r[k]->c->prog.grad(r[k]->s->bufs);
	}
	const char *names[] = {"fc1.weight", "fc1.bias"};
	for (int n = 0; n < 2; n++) {
		float *ga = grad(&a, names[n]), *gb = grad(&b, names[n]);
		int64_t len = n ? 3 : 12;
		int nonzero = 0;
		for (int64_t i = 0; i < len; i++) {
			CU_ASSERT_EQUAL(ga[i], gb[i]);
			nonzero |= ga[i] != 0;
		}
		CU_ASSERT(nonzero);
	}
	finish(&a);
	finish(&b);
}

/* Dropout draws a new mask every training step and is off in evaluation; batch norm
 * updates its running statistics in training and uses them in evaluation. */
static void test_models_dropout_and_batch_norm_modes(void)
{
	Run r;
	CU_ASSERT_FATAL(
	    start(&r, NULL,
	          "inputs: {x: {shape: [batch, 6]}, y: {shape: [batch], dtype: i32}}\n"
	          "layers: [{dense: {units: 5}}, batch_norm, {dropout: {p: 0.5}}, "
	          "{dense: {units: 3}}]\n"
	          "loss: softmax_cross_entropy\noptimizer: {type: sgd, lr: 1e-30}\n",
	          4) == 0);
	rt_rng rng;
	rt_rng_seed(&rng, 2);
	random_inputs(r.s, &rng);
	float l[2], e[2];
	for (int k = 0; k < 2; k++) {
		r.c->prog.train_step(r.s->bufs);
		l[k] = loss(&r);
		r.c->prog.evaluate(r.s->bufs);
		e[k] = loss(&r);
	}
	CU_ASSERT(l[0] != l[1]); /* new masks, the same parameters (lr 1e-30) */
	CU_ASSERT(param(&r, "bn1.running_mean")[0] != 0);
	CU_ASSERT_EQUAL(*param(&r, "bn1.num_batches_tracked"), 2);
	/* evaluation uses running statistics, which moved between the two */
	CU_ASSERT(e[0] != e[1]);
	float before = e[1];
	r.c->prog.evaluate(r.s->bufs);
	CU_ASSERT_EQUAL(loss(&r), before); /* and is deterministic */
	finish(&r);
}

/* grad is PyTorch's training-mode forward and backward: it advances batch norm's
 * running statistics and dropout's masks as train_step does, so that grad then step
 * is train_step (a C API or ahead-of-time program's loop, and each micro-batch of an
 * accumulated step). */
static void test_models_grad_then_step_is_train_step(void)
{
	static const char *model =
	    "inputs: {x: {shape: [batch, 6]}, y: {shape: [batch], dtype: i32}}\n"
	    "layers: [{dense: {units: 5}}, batch_norm, {dropout: {p: 0.5}}, "
	    "{dense: {units: 3}}]\n"
	    "loss: softmax_cross_entropy\n"
	    "optimizer: {type: sgd, lr: 0.1, momentum: 0.9}\n";
	Run r[2];
	for (int k = 0; k < 2; k++) {
		CU_ASSERT_FATAL(start(&r[k], NULL, model, 4) == 0);
		rt_rng rng;
		rt_rng_seed(&rng, 2);
		random_inputs(r[k].s, &rng);
	}
	const rt_program *p = &r[0].c->prog;
	for (int step = 0; step < 3; step++) {
		CU_ASSERT_EQUAL(p->train_step(r[0].s->bufs), 0);
		CU_ASSERT_EQUAL(p->grad(r[1].s->bufs), 0);
		CU_ASSERT_EQUAL(p->step(r[1].s->bufs), 0);
	}
	CU_ASSERT(param(&r[1], "bn1.running_mean")[0] != 0);
	CU_ASSERT_EQUAL(*param(&r[1], "bn1.num_batches_tracked"), 3);
	for (int64_t i = 0; i < p->nparams; i++)
		CU_ASSERT(fabsf(r[0].s->params[i] - r[1].s->params[i]) <=
		          1e-5f * (1 + fabsf(r[0].s->params[i])));
	for (int64_t i = 0; i < p->nstate; i++)
		CU_ASSERT(fabsf(r[0].s->state[i] - r[1].s->state[i]) <=
		          1e-5f * (1 + fabsf(r[0].s->state[i])));
	/* a forward pass whose running variance overflows (an input of 1e25: the squares
	 * of what fc1 makes of it are above FLT_MAX) writes nothing back, and says so;
	 * its loss is as computed */
	float mean = param(&r[1], "bn1.running_mean")[0];
	((float *)r[1].s->io[p->io_x])[0] = 1e25f;
	CU_ASSERT_EQUAL(p->grad(r[1].s->bufs), 1);
	CU_ASSERT(isfinite(loss(&r[1])));
	CU_ASSERT_EQUAL(param(&r[1], "bn1.running_mean")[0], mean);
	CU_ASSERT_EQUAL(*param(&r[1], "bn1.num_batches_tracked"), 3);
	finish(&r[0]);
	finish(&r[1]);
}

/* Dropout's masks follow the session's seed (rt_session_init), as PyTorch's follow
 * torch.manual_seed, with all its 64 bits: seeds s and s + 2^24 differ (the "seed"
 * hyper holds 2^24 values). */
static void test_models_dropout_masks_follow_the_session_seed(void)
{
	static const char *model =
	    "inputs: {x: {shape: [batch, 6]}, y: {shape: [batch], dtype: i32}}\n"
	    "layers: [{dense: {units: 32}}, {dropout: {p: 0.5}}, {dense: {units: 3}}]\n"
	    "loss: softmax_cross_entropy\noptimizer: {type: sgd, lr: 0.1}\n";
	const uint64_t seeds[] = {1, 1 + (1ull << 24), 1};
	float g[3][32 * 6];
	Run r[3];
	for (int k = 0; k < 3; k++) {
		CU_ASSERT_FATAL(start(&r[k], NULL, model, 4) == 0);
		rt_session_init(r[k].s, seeds[k]);
		if (k) /* the same parameters: only the masks may differ */
			memcpy(r[k].s->params, r[0].s->params,
			       (size_t)r[0].c->prog.nparams * sizeof(float));
		rt_rng rng;
		rt_rng_seed(&rng, 2);
		random_inputs(r[k].s, &rng);
		CU_ASSERT_EQUAL(r[k].c->prog.grad(r[k].s->bufs), 0);
		memcpy(g[k], grad(&r[k], "fc1.weight"), sizeof g[k]);
	}
	CU_ASSERT(memcmp(g[0], g[1], sizeof g[0]) != 0);
	CU_ASSERT(memcmp(g[0], g[2], sizeof g[0]) == 0);
	for (int k = 0; k < 3; k++)
		finish(&r[k]);
}

void suite_models(void)
{
	static CU_TestInfo tests[] = {
	    {"test_models_every_model_compiles_and_trains_a_step",
	     test_models_every_model_compiles_and_trains_a_step},
	    {"test_models_benchmark_and_survey_models_train_a_step",
	     test_models_benchmark_and_survey_models_train_a_step},
	    {"test_models_rosenbrock_converges_to_one_one",
	     test_models_rosenbrock_converges_to_one_one},
	    {"test_models_residual_mlp_learns", test_models_residual_mlp_learns},
	    {"test_models_grad_then_step_is_train_step",
	     test_models_grad_then_step_is_train_step},
	    {"test_models_dropout_masks_follow_the_session_seed",
	     test_models_dropout_masks_follow_the_session_seed},
	    {"test_models_lenet_learns", test_models_lenet_learns},
	    {"test_models_pow_at_zero_follows_torch",
	     test_models_pow_at_zero_follows_torch},
	    {"test_models_products_with_a_constant_matrix",
	     test_models_products_with_a_constant_matrix},
	    {"test_models_a_parameter_of_the_batch_size_is_not_batched",
	     test_models_a_parameter_of_the_batch_size_is_not_batched},
	    {"test_models_batch_reductions_leave_out_padding",
	     test_models_batch_reductions_leave_out_padding},
	    {"test_models_max_and_min_share_ties_as_torch_does",
	     test_models_max_and_min_share_ties_as_torch_does},
	    {"test_models_argmax_beside_another_path_adds_nothing",
	     test_models_argmax_beside_another_path_adds_nothing},
	    {"test_models_cross_entropy_is_stable_at_extreme_logits",
	     test_models_cross_entropy_is_stable_at_extreme_logits},
	    {"test_models_where_keeps_untaken_branch_gradient_finite",
	     test_models_where_keeps_untaken_branch_gradient_finite},
	    {"test_models_gradient_penalty_matches_hessian",
	     test_models_gradient_penalty_matches_hessian},
	    {"test_models_hessian_vector_product", test_models_hessian_vector_product},
	    {"test_models_frozen_parameters_do_not_move",
	     test_models_frozen_parameters_do_not_move},
	    {"test_models_path_through_argmax_is_an_error",
	     test_models_path_through_argmax_is_an_error},
	    {"test_models_dropout_and_batch_norm_modes",
	     test_models_dropout_and_batch_norm_modes},
	    CU_TEST_INFO_NULL,
	};
	add_suite("models", tests);
}
