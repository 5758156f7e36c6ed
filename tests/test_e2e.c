/* End to end: YAML model -> JIT -> gradients and training on real data.
 *
 * The JIT's float32 gradients for the Fashion-MNIST MLP are compared with central finite
 * differences of the same graph in float64 (reference interpreter), and the MLP trained
 * for one epoch on a subset of Fashion-MNIST must classify the test images well above
 * chance.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dc.h"
#include "tests.h"

#define FASHION "/usr/share/datasets/fashion-mnist/"

static Compiled *compile_file(const char *rel, int64_t batch, Arena *A, Diags *d,
                              Model **mp)
{
	CodegenOpts o = {.opt_level = 3};
	return compile_path(A, d, src_path(rel), batch, &o, mp);
}

static Node *fn_output(Graph *g, FnKind fn, DestKind kind, int index)
{
	for (int i = 0; i < g->fns[fn].nouts; i++)
		if (g->fns[fn].outs[i].kind == kind && g->fns[fn].outs[i].index == index)
			return g->fns[fn].outs[i].node;
	return NULL;
}

static void test_e2e_mlp_jit_gradients_match_finite_differences(void)
{
	Arena *A = arena_new();
	Diags d = {0};
	Model *m;
	Compiled *c = compile_file("models/fashion_mlp.yaml", 4, A, &d, &m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	const rt_program *p = &c->prog;
	rt_session *s = rt_session_new(p);
	rt_session_init(s, 7);
	rt_rng rng;
	rt_rng_seed(&rng, 99);
	float *x = s->io[p->io_x], *w = s->io[p->io_weight];
	int32_t *y = s->io[p->io_y];
	for (int64_t i = 0; i < p->io[p->io_x].numel; i++)
		x[i] = (float)rt_rng_uniform(&rng);
	for (int i = 0; i < 4; i++)
		y[i] = (int32_t)rt_rng_below(&rng, 10), w[i] = 0.25f;
	p->grad(s->bufs);

	/* the same graph in float64, from the same float32 values */
	Graph *g = c->g;
	double *params = malloc(p->nparams * sizeof *params), *io[3];
	for (int64_t i = 0; i < p->nparams; i++)
		params[i] = s->params[i];
	int slots[3] = {p->io_x, p->io_y, p->io_weight};
	const double *ios[16] = {0};
	for (int k = 0; k < 3; k++) {
		const rt_io *q = &p->io[slots[k]];
		io[k] = malloc(q->numel * sizeof *io[k]);
		for (int64_t i = 0; i < q->numel; i++)
			io[k][i] = q->dtype == RT_I32 ? ((int32_t *)s->io[slots[k]])[i]
			                              : ((float *)s->io[slots[k]])[i];
		ios[slots[k]] = io[k];
	}
	EvalEnv env = {params, NULL, NULL, NULL, ios, NULL, 0};
	Node *loss = fn_output(g, FN_GRAD, DEST_IO, p->io_loss);
	CU_ASSERT_PTR_NOT_NULL_FATAL(loss);
	int bad = 0, checked = 0;
	for (int k = 0; k < p->nparam; k++)
		for (int t = 0; t < 12; t++) {
			int64_t i = p->params[k].offset +
			            (int64_t)rt_rng_below(&rng, p->params[k].numel);
			double x0 = params[i], h = 1e-4;
			params[i] = x0 + h;
			double *lp = eval_node(g, loss, &env);
			params[i] = x0 - h;
			double *lm = eval_node(g, loss, &env);
			params[i] = x0;
			double fd = (lp[0] - lm[0]) / (2 * h), jit = s->grads[i];
			free(lp), free(lm);
			checked++;
			if (fabs(fd - jit) > 2e-3 * fabs(fd) + 1e-5) {
				fprintf(stderr,
				        "\n%s[%lld]: jit %g, finite differences %g\n",
				        p->params[k].name,
				        (long long)(i - p->params[k].offset), jit, fd);
				bad++;
			}
		}
	CU_ASSERT_EQUAL(checked, 48);
	CU_ASSERT_EQUAL(bad, 0);
	for (int k = 0; k < 3; k++)
		free(io[k]);
	free(params);
	rt_session_free(s);
	compiled_free(c);
	diags_free(&d);
	arena_free(A);
}

static void test_e2e_mlp_learns_fashion_mnist_subset(void)
{
	Arena *A = arena_new();
	Diags d = {0};
	Model *m;
	Compiled *c = compile_file("models/fashion_mlp.yaml", 0, A, &d, &m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char err[512];
	rt_tensor xtr, ytr, xte, yte;
	CU_ASSERT_FATAL(rt_idx_load(FASHION "train-images-idx3-ubyte.gz", 1 / 255.0, 0,
	                            &xtr, err, sizeof err) == 0);
	CU_ASSERT_FATAL(rt_idx_load(FASHION "train-labels-idx1-ubyte.gz", 1, 1, &ytr, err,
	                            sizeof err) == 0);
	CU_ASSERT_FATAL(rt_idx_load(FASHION "t10k-images-idx3-ubyte.gz", 1 / 255.0, 0,
	                            &xte, err, sizeof err) == 0);
	CU_ASSERT_FATAL(rt_idx_load(FASHION "t10k-labels-idx1-ubyte.gz", 1, 1, &yte, err,
	                            sizeof err) == 0);
	xte.n = yte.n = 2000;
	rt_session *s = rt_session_new(&c->prog);
	rt_session_init(s, 1);
	rt_rng rng;
	rt_rng_seed(&rng, 1);
	rt_metrics before, tr, after;
	CU_ASSERT_FATAL(rt_evaluate(s, &xte, &yte, &before, err, sizeof err) == 0);
	/* 10000 examples: 157 steps, the last one a partial batch of 16 */
	CU_ASSERT_FATAL(rt_train_epoch(s, &xtr, &ytr, 10000, &rng, NULL, NULL, &tr, err,
	                               sizeof err) == 0);
	CU_ASSERT_EQUAL(tr.steps, 157);
	CU_ASSERT_EQUAL(tr.examples, 10000);
	CU_ASSERT_FATAL(rt_evaluate(s, &xte, &yte, &after, err, sizeof err) == 0);
	printf("\n  test accuracy %.4f -> %.4f, loss %.3f -> %.3f ", before.accuracy,
	       after.accuracy, before.loss, after.loss);
	CU_ASSERT(before.accuracy < 0.3);
	CU_ASSERT(after.accuracy > 0.78);
	CU_ASSERT(after.loss < before.loss / 3);
	rt_session_free(s);
	rt_tensor_free(&xtr), rt_tensor_free(&ytr), rt_tensor_free(&xte),
	    rt_tensor_free(&yte);
	compiled_free(c);
	diags_free(&d);
	arena_free(A);
}

/* The fused train_step and grad followed by step are two compilations of the same
 * update: their parameters must agree after a few steps. */
static void test_e2e_train_step_equals_grad_then_step(void)
{
	Arena *A = arena_new();
	Diags d = {0};
	Model *m;
	Compiled *c = compile_file("models/fashion_mlp.yaml", 8, A, &d, &m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	const rt_program *p = &c->prog;
	rt_session *s1 = rt_session_new(p), *s2 = rt_session_new(p);
	rt_session_init(s1, 3);
	rt_session_init(s2, 3);
	rt_rng rng;
	rt_rng_seed(&rng, 5);
	for (int step = 0; step < 3; step++) {
		for (int64_t i = 0; i < p->io[p->io_x].numel; i++)
			((float *)s1->io[p->io_x])[i] = ((float *)s2->io[p->io_x])[i] =
			    (float)rt_rng_uniform(&rng);
		for (int i = 0; i < 8; i++) {
			((int32_t *)s1->io[p->io_y])[i] =
			    ((int32_t *)s2->io[p->io_y])[i] =
			        (int32_t)rt_rng_below(&rng, 10);
			((float *)s1->io[p->io_weight])[i] =
			    ((float *)s2->io[p->io_weight])[i] = 0.125f;
		}
		p->train_step(s1->bufs);
		p->grad(s2->bufs);
		p->step(s2->bufs);
	}
	double maxdiff = 0, maxabs = 0;
	for (int64_t i = 0; i < p->nparams; i++) {
		maxdiff = fmax(maxdiff, fabs(s1->params[i] - s2->params[i]));
		maxabs = fmax(maxabs, fabs(s1->params[i]));
	}
	CU_ASSERT(maxabs > 0);
	CU_ASSERT(maxdiff <= 1e-5 * maxabs);
	rt_session_free(s1);
	rt_session_free(s2);
	compiled_free(c);
	diags_free(&d);
	arena_free(A);
}

void suite_e2e(void)
{
	static CU_TestInfo tests[] = {
	    {"test_e2e_mlp_jit_gradients_match_finite_differences",
	     test_e2e_mlp_jit_gradients_match_finite_differences},
	    {"test_e2e_train_step_equals_grad_then_step",
	     test_e2e_train_step_equals_grad_then_step},
	    {"test_e2e_mlp_learns_fashion_mnist_subset",
	     test_e2e_mlp_learns_fashion_mnist_subset},
	    CU_TEST_INFO_NULL,
	};
	add_suite("e2e", tests);
}
