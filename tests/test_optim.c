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
	CodegenOpts o = {.opt_level = 2};
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

/* The reference: torch.optim's algorithms (and torch.nn.utils' clipping) written out
 * in float64, one element at a time, state zero or None before the first step. */
typedef enum { SGD, ADAM, ADAMW, RMSPROP, ADAGRAD } Kind;
typedef struct Hp {
	Kind kind;
	double lr, momentum, dampening, weight_decay, beta1, beta2, eps, alpha, lr_decay,
	    initial_accumulator_value, max_norm, clip_value;
	int nesterov, amsgrad, centered;
} Hp;

typedef struct Ref {
	int64_t n;
	double *w, *buf, *m, *v, *vmax, *ga; /* per element */
	int t;                               /* steps taken */
} Ref;

static void ref_clip(const Hp *h, double *g, int64_t n)
{
	if (h->clip_value > 0)
		for (int64_t i = 0; i < n; i++)
			g[i] = fmin(fmax(g[i], -h->clip_value), h->clip_value);
	if (h->max_norm > 0) {
		double sq = 0;
		for (int64_t i = 0; i < n; i++)
			sq += g[i] * g[i];
		double coef = fmin(1, h->max_norm / (sqrt(sq) + 1e-6));
		for (int64_t i = 0; i < n; i++)
			g[i] *= coef;
	}
}

static void ref_step(const Hp *h, Ref *s, double *g)
{
	ref_clip(h, g, s->n);
	int t = ++s->t;
	for (int64_t i = 0; i < s->n; i++) {
		double *w = &s->w[i], gi = g[i];
		if (h->kind == ADAMW)
			*w *= 1 - h->lr * h->weight_decay;
		else
			gi += h->weight_decay * *w;
		switch (h->kind) {
		case SGD:
			if (h->momentum != 0) {
				double *b = &s->buf[i];
				*b = t == 1 ? gi
				            : h->momentum * *b + (1 - h->dampening) * gi;
				gi = h->nesterov ? gi + h->momentum * *b : *b;
			}
			*w -= h->lr * gi;
			break;
		case ADAM:
		case ADAMW: {
			double *m = &s->m[i], *v = &s->v[i];
			*m = h->beta1 * *m + (1 - h->beta1) * gi;
			*v = h->beta2 * *v + (1 - h->beta2) * gi * gi;
			double vv = *v;
			if (h->amsgrad)
				vv = s->vmax[i] = fmax(s->vmax[i], *v);
			double bc1 = 1 - pow(h->beta1, t), bc2 = 1 - pow(h->beta2, t);
			*w -= h->lr / bc1 * *m / (sqrt(vv) / sqrt(bc2) + h->eps);
			break;
		}
		case RMSPROP: {
			double *v = &s->v[i];
			*v = h->alpha * *v + (1 - h->alpha) * gi * gi;
			double avg = *v;
			if (h->centered) {
				s->ga[i] = h->alpha * s->ga[i] + (1 - h->alpha) * gi;
				avg -= s->ga[i] * s->ga[i];
			}
			double d = gi / (sqrt(avg) + h->eps);
			if (h->momentum > 0)
				d = s->buf[i] = h->momentum * s->buf[i] + d;
			*w -= h->lr * d;
			break;
		}
		case ADAGRAD: {
			double *sum = &s->v[i];
			if (t == 1)
				*sum = h->initial_accumulator_value;
			double clr = h->lr / (1 + (t - 1) * h->lr_decay);
			*sum += gi * gi;
			*w -= clr * gi / (sqrt(*sum) + h->eps);
			break;
		}
		}
	}
}

/* 10 steps of the compiled `step` on fixed gradients against the reference; returns
 * the largest difference in the parameters. */
static double steps_error(const char *optimizer, const Hp *h)
{
	Run r;
	if (start(&r, optimizer))
		return INFINITY;
	const rt_program *p = &r.c->prog;
	int64_t n = p->nparams;
	Ref s = {.n = n};
	double **arrays[] = {&s.w, &s.buf, &s.m, &s.v, &s.vmax, &s.ga};
	for (int a = 0; a < 6; a++)
		*arrays[a] = calloc((size_t)n, sizeof(double));
	double *g = calloc((size_t)n, sizeof *g);
	for (int64_t i = 0; i < n; i++)
		s.w[i] = r.s->params[i];
	for (int k = 0; k < 10; k++) {
		/* gradients of the parameters; the padding between them stays 0 */
		for (int q = 0; q < p->nparam; q++)
			for (int64_t j = 0; j < p->params[q].numel; j++)
				r.s->grads[p->params[q].offset + j] =
				    (float)grad_at(k, p->params[q].offset + j);
		for (int64_t i = 0; i < n; i++)
			g[i] = r.s->grads[i];
		ref_step(h, &s, g);
		p->step(r.s->bufs);
	}
	double err = max_error(p, r.s->params, s.w);
	if (!(err < 1e-5))
		fprintf(stderr, "\n%s: max error %g\n", optimizer, err);
	for (int a = 0; a < 6; a++)
		free(*arrays[a]);
	free(g);
	finish(&r);
	return err;
}

static void test_optim_sgd_momentum_matches_torch_formula(void)
{
	Hp h = {.kind = SGD, .lr = 0.1, .momentum = 0.9};
	CU_ASSERT(steps_error("{type: sgd, lr: 0.1, momentum: 0.9}", &h) < 1e-5);
}

static void test_optim_sgd_dampening_leaves_the_first_step_undamped(void)
{
	Hp h = {.kind = SGD, .lr = 0.1, .momentum = 0.9, .dampening = 0.5};
	CU_ASSERT(steps_error("{type: sgd, lr: 0.1, momentum: 0.9, dampening: 0.5}", &h) <
	          1e-5);
}

static void test_optim_sgd_nesterov_matches_torch_formula(void)
{
	Hp h = {.kind = SGD, .lr = 0.05, .momentum = 0.8, .nesterov = 1};
	CU_ASSERT(steps_error("{type: sgd, lr: 0.05, momentum: 0.8, nesterov: true}",
	                      &h) < 1e-5);
}

static void test_optim_sgd_weight_decay_is_added_to_the_gradient(void)
{
	Hp h = {.kind = SGD, .lr = 0.1, .weight_decay = 0.3};
	CU_ASSERT(steps_error("{type: sgd, lr: 0.1, weight_decay: 0.3}", &h) < 1e-5);
	Hp hm = {.kind = SGD, .lr = 0.1, .momentum = 0.5, .weight_decay = 0.3};
	CU_ASSERT(steps_error("{type: sgd, lr: 0.1, momentum: 0.5, weight_decay: 0.3}",
	                      &hm) < 1e-5);
}

static void test_optim_adam_matches_torch_formula(void)
{
	Hp h = {.kind = ADAM, .lr = 0.01, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6};
	CU_ASSERT(steps_error("{type: adam, lr: 0.01, betas: [0.8, 0.99], eps: 1e-6}",
	                      &h) < 1e-5);
}

static void test_optim_adam_amsgrad_and_l2_weight_decay(void)
{
	/* beta2 small enough for v to fall below its maximum within 10 steps */
	Hp h = {.kind = ADAM,
	        .lr = 0.01,
	        .beta1 = 0.9,
	        .beta2 = 0.8,
	        .eps = 1e-8,
	        .weight_decay = 0.1,
	        .amsgrad = 1};
	CU_ASSERT(
	    steps_error("{type: adam, lr: 0.01, betas: [0.9, 0.8], weight_decay: 0.1, "
	                "amsgrad: true}",
	                &h) < 1e-5);
}

static void test_optim_adamw_decouples_weight_decay(void)
{
	/* torch.optim.AdamW's defaults but lr, weight_decay 1e-2 included */
	Hp h = {.kind = ADAMW,
	        .lr = 0.05,
	        .beta1 = 0.9,
	        .beta2 = 0.999,
	        .eps = 1e-8,
	        .weight_decay = 1e-2};
	CU_ASSERT(steps_error("{type: adamw, lr: 0.05}", &h) < 1e-5);
	Hp h2 = {.kind = ADAMW,
	         .lr = 0.05,
	         .beta1 = 0.5,
	         .beta2 = 0.9,
	         .eps = 1e-8,
	         .weight_decay = 0.5,
	         .amsgrad = 1};
	CU_ASSERT(
	    steps_error("{type: adamw, lr: 0.05, betas: [0.5, 0.9], weight_decay: 0.5, "
	                "amsgrad: true}",
	                &h2) < 1e-5);
}

static void test_optim_rmsprop_matches_torch_formula(void)
{
	Hp h = {.kind = RMSPROP, .lr = 1e-2, .alpha = 0.99, .eps = 1e-8};
	CU_ASSERT(steps_error("rmsprop", &h) < 1e-5);
}

static void test_optim_rmsprop_centered_with_momentum(void)
{
	Hp h = {.kind = RMSPROP,
	        .lr = 0.01,
	        .alpha = 0.9,
	        .eps = 1e-6,
	        .momentum = 0.7,
	        .weight_decay = 0.05,
	        .centered = 1};
	CU_ASSERT(
	    steps_error("{type: rmsprop, lr: 0.01, alpha: 0.9, eps: 1e-6, momentum: "
	                "0.7, weight_decay: 0.05, centered: true}",
	                &h) < 1e-5);
}

static void test_optim_adagrad_with_lr_decay_and_initial_accumulator(void)
{
	Hp h = {.kind = ADAGRAD, .lr = 0.1, .eps = 1e-10};
	CU_ASSERT(steps_error("{type: adagrad, lr: 0.1}", &h) < 1e-5);
	Hp h2 = {.kind = ADAGRAD,
	         .lr = 0.1,
	         .eps = 1e-10,
	         .lr_decay = 0.2,
	         .initial_accumulator_value = 0.5,
	         .weight_decay = 0.01};
	CU_ASSERT(steps_error("{type: adagrad, lr: 0.1, lr_decay: 0.2, "
	                      "initial_accumulator_value: 0.5, weight_decay: 0.01}",
	                      &h2) < 1e-5);
}

static void test_optim_clip_grad_norm_scales_every_gradient(void)
{
	/* the gradients' norm is about 2: clipped to 0.5 */
	Hp h = {.kind = SGD, .lr = 0.1, .momentum = 0.9, .max_norm = 0.5};
	CU_ASSERT(steps_error("{type: sgd, lr: 0.1, momentum: 0.9, clip_grad_norm: 0.5}",
	                      &h) < 1e-5);
	/* larger than the norm: no change */
	Hp h2 = {.kind = SGD, .lr = 0.1, .max_norm = 100};
	CU_ASSERT(steps_error("{type: sgd, lr: 0.1, clip_grad_norm: 100}", &h2) < 1e-5);
}

static void test_optim_clip_grad_value_clamps_each_gradient(void)
{
	Hp h = {.kind = ADAM,
	        .lr = 0.01,
	        .beta1 = 0.9,
	        .beta2 = 0.999,
	        .eps = 1e-8,
	        .clip_value = 0.3};
	CU_ASSERT(steps_error("{type: adam, lr: 0.01, clip_grad_value: 0.3}", &h) < 1e-5);
	/* both: the values are clamped first, then the norm is taken */
	Hp h2 = {.kind = SGD, .lr = 0.1, .clip_value = 0.6, .max_norm = 0.8};
	CU_ASSERT(
	    steps_error("{type: sgd, lr: 0.1, clip_grad_norm: 0.8, clip_grad_value: 0.6}",
	                &h2) < 1e-5);
}

/* The run-time scalars and the state tensors carry torch's names. */
static void test_optim_hypers_and_state_have_torch_names(void)
{
	Run r;
	CU_ASSERT_FATAL(start(&r, "{type: adam, amsgrad: true, clip_grad_norm: 1}") == 0);
	const rt_program *p = &r.c->prog;
	/* 1 - beta as torch computes it, in double and then rounded: 0.001f, not
	 * 1 - 0.999f (0.00099998713) */
	static const char *const hyper[] = {"lr",    "weight_decay", "beta1", "1-beta1",
	                                    "beta2", "1-beta2",      "eps",   "max_norm"};
	static const float init[] = {1e-3f, 0, 0.9f, 0.1f, 0.999f, 0.001f, 1e-8f, 1};
	CU_ASSERT_EQUAL_FATAL(p->nhyper, 8);
	for (int i = 0; i < 8; i++) {
		CU_ASSERT_STRING_EQUAL(p->hyper_names[i], hyper[i]);
		CU_ASSERT_EQUAL(p->hyper_init[i], init[i]);
	}
	/* set with beta2, from the double; not by its own name */
	CU_ASSERT_EQUAL(rt_set_hyper(r.s, "beta2", 0.9999), 0);
	CU_ASSERT_EQUAL(r.s->hyper[4], 0.9999f);
	CU_ASSERT_EQUAL(r.s->hyper[5], 1e-4f);
	CU_ASSERT_EQUAL(rt_set_hyper(r.s, "1-beta2", 0.5), -1);
	CU_ASSERT_EQUAL(r.s->hyper[5], 1e-4f);
	/* so the first step's second moment is 1e-4f g^2, torch's (unclipped; 1 -
	 * 0.9999f would be 1.7e-4 off) */
	CU_ASSERT_EQUAL(rt_set_hyper(r.s, "max_norm", 1e30), 0);
	for (int64_t i = 0; i < p->nparams; i++)
		r.s->grads[i] = (float)grad_at(0, i);
	p->step(r.s->bufs);
	const rt_state *v = &p->states[2];
	CU_ASSERT_STRING_EQUAL_FATAL(v->name, "fc1.weight.exp_avg_sq");
	for (int64_t i = 0; i < v->numel; i++) {
		float g = (float)grad_at(0, i);
		CU_ASSERT_DOUBLE_EQUAL(r.s->state[v->offset + i], 1e-4f * (g * g),
		                       2e-7 * 1e-4 * g * g);
	}
	rt_session_init(r.s, 4);
	static const char *const state[] = {"step",
	                                    "fc1.weight.exp_avg",
	                                    "fc1.weight.exp_avg_sq",
	                                    "fc1.weight.max_exp_avg_sq",
	                                    "fc1.bias.exp_avg",
	                                    "fc1.bias.exp_avg_sq",
	                                    "fc1.bias.max_exp_avg_sq"};
	CU_ASSERT_EQUAL_FATAL(p->nstates, 7);
	for (int i = 0; i < 7; i++)
		CU_ASSERT_STRING_EQUAL(p->states[i].name, state[i]);
	/* the step count advances with every step */
	p->step(r.s->bufs);
	p->step(r.s->bufs);
	CU_ASSERT_EQUAL(r.s->state[p->states[0].offset], 2.0f);
	finish(&r);

	CU_ASSERT_FATAL(start(&r, "{type: rmsprop, momentum: 0.5, centered: true}") == 0);
	p = &r.c->prog;
	CU_ASSERT_EQUAL(p->nhyper,
	                6); /* lr, momentum, weight_decay, eps, alpha, 1-alpha */
	CU_ASSERT_EQUAL(rt_set_hyper(r.s, "alpha", 0.9f), 0);
	CU_ASSERT_EQUAL(rt_set_hyper(r.s, "momentum", 0.9f), 0);
	CU_ASSERT_EQUAL_FATAL(p->nstates, 6);
	CU_ASSERT_STRING_EQUAL(p->states[0].name, "fc1.weight.momentum_buffer");
	CU_ASSERT_STRING_EQUAL(p->states[1].name, "fc1.weight.square_avg");
	CU_ASSERT_STRING_EQUAL(p->states[2].name, "fc1.weight.grad_avg");
	finish(&r);

	/* sgd without momentum keeps no state and has no momentum to set */
	CU_ASSERT_FATAL(start(&r, "sgd") == 0);
	CU_ASSERT_EQUAL(r.c->prog.nstates, 0);
	CU_ASSERT_EQUAL(rt_set_hyper(r.s, "momentum", 0.9f), -1);
	CU_ASSERT_EQUAL(rt_set_hyper(r.s, "weight_decay", 0.1f), 0);
	finish(&r);

	CU_ASSERT_FATAL(start(&r, "{type: adagrad, clip_grad_value: 2}") == 0);
	p = &r.c->prog;
	CU_ASSERT_EQUAL_FATAL(p->nstates, 3);
	CU_ASSERT_STRING_EQUAL(p->states[0].name, "step");
	CU_ASSERT_STRING_EQUAL(p->states[1].name, "fc1.weight.sum");
	CU_ASSERT_EQUAL(rt_set_hyper(r.s, "lr_decay", 0.5f), 0);
	CU_ASSERT_EQUAL(rt_set_hyper(r.s, "clip_value", 1), 0);
	finish(&r);
}

/* Each optimizer's defaults are torch.optim's. */
static void test_optim_defaults_per_type(void)
{
	static const struct {
		const char *opt;
		double lr, weight_decay, eps;
	} cases[] = {{"sgd", 0.01, 0, 1e-8},
	             {"adam", 1e-3, 0, 1e-8},
	             {"adamw", 1e-3, 1e-2, 1e-8},
	             {"rmsprop", 1e-2, 0, 1e-8},
	             {"adagrad", 1e-2, 0, 1e-10}};
	for (int i = 0; i < 5; i++) {
		Arena *A = arena_new();
		Diags d = {0};
		const char *text = model_text(cases[i].opt);
		Spec *sp = spec_parse(A, &d, "t.yaml", text, strlen(text));
		Model *m = model_from_spec(A, &d, sp, "t.yaml");
		CU_ASSERT_PTR_NOT_NULL_FATAL(m);
		CU_ASSERT_EQUAL(m->opt, (OptKind)i);
		CU_ASSERT_DOUBLE_EQUAL(m->lr, cases[i].lr, 0);
		CU_ASSERT_DOUBLE_EQUAL(m->weight_decay, cases[i].weight_decay, 0);
		CU_ASSERT_DOUBLE_EQUAL(m->eps, cases[i].eps, 0);
		CU_ASSERT(m->beta1 == 0.9 && m->beta2 == 0.999 && m->alpha == 0.99);
		CU_ASSERT(m->momentum == 0 && m->dampening == 0 && m->lr_decay == 0 &&
		          m->initial_accumulator_value == 0 && !m->nesterov &&
		          !m->amsgrad && !m->centered && m->max_norm == 0 &&
		          m->clip_value == 0);
		diags_free(&d);
		arena_free(A);
	}
}

/* Errors in the optimizer section, at the key or value (the section is on line 7,
 * its value starting at column 12). */
static void test_optim_settings_errors_point_at_the_value(void)
{
	static const struct {
		const char *opt, *msg;
		int col;
	} cases[] = {
	    {"{type: adam, momentum: 0.9}",
	     "'momentum' is a setting of sgd and rmsprop; adam has none", 25},
	    {"{type: rmsprop, betas: [0.9, 0.99]}",
	     "'betas' is a setting of adam and adamw; rmsprop has none", 28},
	    {"{type: sgd, eps: 1e-8}",
	     "'eps' is a setting of adam, adamw, rmsprop and adagrad; sgd has none", 24},
	    {"{type: adagrad, amsgrad: true}",
	     "'amsgrad' is a setting of adam and adamw; adagrad has none", 28},
	    {"{type: adamw, nesterov: true}",
	     "'nesterov' is a setting of sgd; adamw has none", 26},
	    {"{type: adam, centered: true}",
	     "'centered' is a setting of rmsprop; adam has none", 25},
	    {"{type: rmsprop, lr_decay: 0.1}",
	     "'lr_decay' is a setting of adagrad; rmsprop has none", 28},
	    {"{type: rmsprop, centred: true}",
	     "unknown key 'centred' in optimizer; did you mean 'centered'?", 28},
	    {"{type: sgd, momentun: 0.9}",
	     "unknown key 'momentun' in optimizer; did you mean 'momentum'?", 24},
	    {"{type: lbfgs}",
	     "unknown optimizer 'lbfgs'; expected one of: sgd, adam, adamw, rmsprop, "
	     "adagrad",
	     19},
	    {"{type: adam, weight_decay: -0.1}",
	     "'weight_decay' must be a number from 0 to 1000000, got '-0.1'", 39},
	    {"{type: adamw, eps: -1e-8}",
	     "'eps' must be a number from 0 to 1, got '-1e-8'", 31},
	    {"{type: adam, betas: [0.9, 1]}",
	     "each of 'betas' must be less than 1, got '1'", 38},
	    {"{type: adam, betas: [-0.1, 0.9]}",
	     "'betas' must be a number from 0 to 1, got '-0.1'", 33},
	    {"{type: rmsprop, alpha: 1.5}",
	     "'alpha' must be a number from 0 to 1, got '1.5'", 35},
	    {"{type: rmsprop, momentum: -0.5}",
	     "'momentum' must be a number from 0 to 1, got '-0.5'", 38},
	    {"{type: sgd, dampening: 2}",
	     "'dampening' must be a number from 0 to 1, got '2'", 35},
	    {"{type: adagrad, lr_decay: -1}",
	     "'lr_decay' must be a number from 0 to 1000000, got '-1'", 38},
	    {"{type: adagrad, initial_accumulator_value: -0.1}",
	     "'initial_accumulator_value' must be a number from 0 to 1000000, got '-0.1'",
	     55},
	    {"{type: adam, amsgrad: maybe}",
	     "'amsgrad' must be true or false, got 'maybe'", 34},
	    {"{clip_grad_norm: 0}", "'clip_grad_norm' must be greater than 0, got '0'",
	     29},
	    {"{clip_grad_value: -1}",
	     "'clip_grad_value' must be a number from 0 to 1000000, got '-1'", 30},
	    {"{type: sgd, lr: 0}", "'lr' must be greater than 0, got '0'", 28},
	    {"{type: sgd, nesterov: true}",
	     "nesterov momentum needs 'momentum' greater than 0 and 'dampening' 0, got "
	     "momentum 0 and dampening 0",
	     34},
	    {"{type: sgd, momentum: 0.9, dampening: 0.1, nesterov: true}",
	     "got momentum 0.9 and dampening 0.1", 65},
	};
	for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
		Arena *A = arena_new();
		Diags d = {0};
		const char *text = model_text(cases[i].opt);
		Spec *sp = spec_parse(A, &d, "t.yaml", text, strlen(text));
		Model *m = sp ? model_from_spec(A, &d, sp, "t.yaml") : NULL;
		int found = 0;
		for (int k = 0; k < d.n; k++)
			found |= d.v[k].sev == SEV_ERROR &&
			         strstr(d.v[k].msg, cases[i].msg) &&
			         d.v[k].loc.line == 7 && d.v[k].loc.col == cases[i].col;
		if (m || !found) {
			fprintf(stderr, "\n--- expected 7:%d: %s\n--- got:\n",
			        cases[i].col, cases[i].msg);
			diag_print(&d, stderr);
		}
		CU_ASSERT(!m && found);
		diags_free(&d);
		arena_free(A);
	}
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
	/* momentum set to 0 at run time: plain steps, whatever the dampening, and the
	 * buffer kept, as torch.optim.SGD's test of momentum != 0 at every step does */
	CU_ASSERT_FATAL(
	    start(&r, "{type: sgd, lr: 0.5, momentum: 0.9, dampening: 0.5}") == 0);
	p = &r.c->prog;
	for (int64_t i = 0; i < p->nparams; i++)
		r.s->grads[i] = 1;
	p->step(r.s->bufs); /* buffer 1 (the first step's is the gradient) */
	CU_ASSERT_EQUAL(rt_set_hyper(r.s, "momentum", 0), 0);
	before = r.s->params[0];
	int b = 0; /* fc1.weight's buffer */
	while (b < p->nstates && !strstr(p->states[b].name, "momentum_buffer"))
		b++;
	CU_ASSERT_FATAL(b < p->nstates);
	float buf = r.s->state[p->states[b].offset];
	CU_ASSERT_EQUAL(buf, 1);
	p->step(r.s->bufs);
	CU_ASSERT_DOUBLE_EQUAL(r.s->params[0], before - 0.5, 1e-6);
	CU_ASSERT_EQUAL(r.s->state[p->states[b].offset], buf);
	finish(&r);
}

void suite_optim(void)
{
	static CU_TestInfo tests[] = {
	    {"test_optim_sgd_momentum_matches_torch_formula",
	     test_optim_sgd_momentum_matches_torch_formula},
	    {"test_optim_sgd_dampening_leaves_the_first_step_undamped",
	     test_optim_sgd_dampening_leaves_the_first_step_undamped},
	    {"test_optim_sgd_nesterov_matches_torch_formula",
	     test_optim_sgd_nesterov_matches_torch_formula},
	    {"test_optim_sgd_weight_decay_is_added_to_the_gradient",
	     test_optim_sgd_weight_decay_is_added_to_the_gradient},
	    {"test_optim_adam_matches_torch_formula",
	     test_optim_adam_matches_torch_formula},
	    {"test_optim_adam_amsgrad_and_l2_weight_decay",
	     test_optim_adam_amsgrad_and_l2_weight_decay},
	    {"test_optim_adamw_decouples_weight_decay",
	     test_optim_adamw_decouples_weight_decay},
	    {"test_optim_rmsprop_matches_torch_formula",
	     test_optim_rmsprop_matches_torch_formula},
	    {"test_optim_rmsprop_centered_with_momentum",
	     test_optim_rmsprop_centered_with_momentum},
	    {"test_optim_adagrad_with_lr_decay_and_initial_accumulator",
	     test_optim_adagrad_with_lr_decay_and_initial_accumulator},
	    {"test_optim_clip_grad_norm_scales_every_gradient",
	     test_optim_clip_grad_norm_scales_every_gradient},
	    {"test_optim_clip_grad_value_clamps_each_gradient",
	     test_optim_clip_grad_value_clamps_each_gradient},
	    {"test_optim_hypers_and_state_have_torch_names",
	     test_optim_hypers_and_state_have_torch_names},
	    {"test_optim_defaults_per_type", test_optim_defaults_per_type},
	    {"test_optim_settings_errors_point_at_the_value",
	     test_optim_settings_errors_point_at_the_value},
	    {"test_optim_learning_rate_is_a_runtime_value",
	     test_optim_learning_rate_is_a_runtime_value},
	    CU_TEST_INFO_NULL,
	};
	add_suite("optim", tests);
}
