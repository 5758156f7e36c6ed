/* The compiled optimizers against torch.optim's update formulas, computed here
 * independently in float64: 10 steps of the generated `step` function on fixed
 * gradients must land where the formulas say. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dc.h"
#include "tests.h"

static const char *model_text(const char *optimizer)
{
	static char buf[1024];
	snprintf(buf, sizeof buf,
	         "inputs:\n  x: {shape: [batch, 3]}\n  y: {shape: [batch], dtype: i32}\n"
	         "layers:\n  - dense: {units: 2}\nloss: "
	         "softmax_cross_entropy\noptimizer: %s\n",
	         optimizer);
	return buf;
}

typedef struct Run {
	Arena *A;
	Diags d;
	Compiled *c;
	rt_session *s;
} Run;

static int start(Run *r, const char *optimizer)
{
	memset(r, 0, sizeof *r);
	r->A = arena_new();
	const char *text = model_text(optimizer);
	Spec *sp = spec_parse(r->A, &r->d, "t.yaml", text, strlen(text));
	Model *m = sp ? model_from_spec(r->A, &r->d, sp, "t.yaml") : NULL;
	CodegenOpts o = {2, 0};
	r->c = m ? compile_model(&r->d, m, 1, &o) : NULL;
	if (!r->c) {
		diag_print(&r->d, stderr);
		return -1;
	}
	r->s = rt_session_new(&r->c->prog);
	rt_session_init(r->s, 4);
	return 0;
}

static void finish(Run *r)
{
	rt_session_free(r->s);
	compiled_free(r->c);
	diags_free(&r->d);
	arena_free(r->A);
}

/* Largest difference over the parameters' elements (not the padding between them). */
static double max_error(const rt_program *p, const float *got, const double *want)
{
	double err = 0;
	for (int k = 0; k < p->nparam; k++)
		for (int64_t i = p->params[k].offset;
		     i < p->params[k].offset + p->params[k].numel; i++)
			err = fmax(err, fabs(got[i] - want[i]));
	return err;
}

/* gradient of step k for element i: varied signs and sizes */
static double grad_at(int k, int64_t i)
{
	return sin(1.3 * (double)i + 0.7 * k) * (1 + 0.1 * k);
}

static void test_optim_sgd_momentum_matches_torch_formula(void)
{
	Run r;
	CU_ASSERT_FATAL(start(&r, "{type: sgd, lr: 0.1, momentum: 0.9}") == 0);
	const rt_program *p = &r.c->prog;
	int64_t n = p->nparams;
	double *w = calloc(n, sizeof *w), *b = calloc(n, sizeof *b);
	for (int64_t i = 0; i < n; i++)
		w[i] = r.s->params[i];
	for (int k = 0; k < 10; k++) {
		for (int64_t i = 0; i < n; i++) {
			r.s->grads[i] = (float)grad_at(k, i);
			double g = r.s->grads[i];
			b[i] = k == 0 ? g
			              : 0.9 * b[i] +
			                    g; /* torch: buf = g on the first step */
			w[i] -= 0.1 * b[i];
		}
		p->step(r.s->bufs);
	}
	double err = max_error(p, r.s->params, w);
	if (err >= 1e-5)
		fprintf(stderr, "\nmax error %g\n", err);
	CU_ASSERT(err < 1e-5);
	free(w), free(b);
	finish(&r);
}

static void test_optim_adam_matches_torch_formula(void)
{
	Run r;
	CU_ASSERT_FATAL(
	    start(&r, "{type: adam, lr: 0.01, betas: [0.8, 0.99], eps: 1e-6}") == 0);
	const rt_program *p = &r.c->prog;
	int64_t n = p->nparams;
	double *w = calloc(n, sizeof *w), *m = calloc(n, sizeof *m),
	       *v = calloc(n, sizeof *v);
	for (int64_t i = 0; i < n; i++)
		w[i] = r.s->params[i];
	for (int k = 0; k < 10; k++) {
		int t = k + 1;
		for (int64_t i = 0; i < n; i++) {
			r.s->grads[i] = (float)grad_at(k, i);
			double g = r.s->grads[i];
			m[i] = 0.8 * m[i] + 0.2 * g;
			v[i] = 0.99 * v[i] + 0.01 * g * g;
			double bc1 = 1 - pow(0.8, t), bc2 = 1 - pow(0.99, t);
			w[i] -= 0.01 / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + 1e-6);
		}
		p->step(r.s->bufs);
	}
	double err = max_error(p, r.s->params, w);
	if (err >= 1e-5)
		fprintf(stderr, "\nmax error %g\n", err);
	CU_ASSERT(err < 1e-5);
	/* the step counter lives in the optimizer state */
	for (int i = 0; i < p->nstates; i++)
		if (!strcmp(p->states[i].name, "step"))
			CU_ASSERT_EQUAL(r.s->state[p->states[i].offset], 10.0f);
	free(w), free(m), free(v);
	finish(&r);
}

/* Changing a hyperparameter at run time needs no recompile: lr = 0 freezes. */
static void test_optim_learning_rate_is_a_runtime_value(void)
{
	Run r;
	CU_ASSERT_FATAL(start(&r, "{type: sgd, lr: 0.5}") == 0);
	const rt_program *p = &r.c->prog;
	CU_ASSERT_EQUAL(rt_set_hyper(r.s, "lr", 0), 0);
	float before = r.s->params[0];
	for (int64_t i = 0; i < p->nparams; i++)
		r.s->grads[i] = 1;
	p->step(r.s->bufs);
	CU_ASSERT_EQUAL(r.s->params[0], before);
	CU_ASSERT_EQUAL(rt_set_hyper(r.s, "lr", 0.25f), 0);
	p->step(r.s->bufs);
	CU_ASSERT_DOUBLE_EQUAL(r.s->params[0], before - 0.25, 1e-6);
	finish(&r);
}

void suite_optim(void)
{
	static CU_TestInfo tests[] = {
	    {"test_optim_sgd_momentum_matches_torch_formula",
	     test_optim_sgd_momentum_matches_torch_formula},
	    {"test_optim_adam_matches_torch_formula",
	     test_optim_adam_matches_torch_formula},
	    {"test_optim_learning_rate_is_a_runtime_value",
	     test_optim_learning_rate_is_a_runtime_value},
	    CU_TEST_INFO_NULL,
	};
	add_suite("optim", tests);
}
