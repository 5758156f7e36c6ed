/* The optimizer: what to do with the gradients. Backpropagation (autodiff.c) only
 * computes d(loss)/d(param); this file builds, as ordinary IR, the update an optimizer
 * makes from them, so the update is generated code compiled with the rest.
 *
 * Formulas follow torch.optim. Hyperparameters are run-time scalars (RT_HYPER), so a
 * learning-rate schedule never needs a recompile.
 *
 *   sgd with momentum:  b = momentum * b + g;  p = p - lr * b
 *                       (b starts at 0, so the first step sets b = g, as torch does)
 *   sgd without:        p = p - lr * g
 *   adam:               t = t + 1
 *                       m = beta1 * m + (1 - beta1) * g
 *                       v = beta2 * v + (1 - beta2) * g^2
 *                       p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) +
 * eps) (t is one float in the state, exact up to 2^24 steps)
 */
#include "dc.h"

struct Optim {
	const Model *m;
	int lr, momentum, beta1, beta2, eps; /* hyper indices, -1 if unused */
	int *buf;  /* per parameter: sgd's momentum buffer or adam's exp_avg, or -1 */
	int *buf2; /* per parameter: adam's exp_avg_sq, or -1 */
	int t;     /* adam: the step count's state index */
};

static int per_param_state(Graph *g, int i, const char *what)
{
	if (!g->params[i].trainable)
		return -1;
	return ir_add_state(g, arena_printf(g->A, "%s.%s", g->params[i].name, what),
	                    g->params[i].sh);
}

Optim *optim_setup(Graph *g, const Model *m)
{
	Optim *o = arena_alloc(g->A, sizeof *o);
	o->m = m;
	o->lr = ir_add_hyper(g, "lr", m->lr);
	o->momentum = o->beta1 = o->beta2 = o->eps = o->t = -1;
	if (m->opt == OPT_SGD && m->momentum != 0)
		o->momentum = ir_add_hyper(g, "momentum", m->momentum);
	if (m->opt == OPT_ADAM) {
		o->beta1 = ir_add_hyper(g, "beta1", m->beta1);
		o->beta2 = ir_add_hyper(g, "beta2", m->beta2);
		o->eps = ir_add_hyper(g, "eps", m->eps);
		o->t = ir_add_state(g, "step", (Shape){0, {0}});
	}
	o->buf = arena_alloc(g->A, (size_t)(g->nparams + 1) * sizeof *o->buf);
	o->buf2 = arena_alloc(g->A, (size_t)(g->nparams + 1) * sizeof *o->buf2);
	for (int i = 0; i < g->nparams; i++) {
		o->buf[i] = o->buf2[i] = -1;
		if (o->momentum >= 0)
			o->buf[i] = per_param_state(g, i, "momentum_buffer");
		if (m->opt == OPT_ADAM) {
			o->buf[i] = per_param_state(g, i, "exp_avg");
			o->buf2[i] = per_param_state(g, i, "exp_avg_sq");
		}
	}
	return o;
}

/* a * x + b * y */
static Node *lerp(Graph *g, Node *a, Node *x, Node *b, Node *y)
{
	return ir_add(g, ir_mul(g, a, x), ir_mul(g, b, y));
}

static void sgd(Graph *g, Optim *o, int i, Node *grad, FnKind fn)
{
	Node *dir = grad;
	if (o->buf[i] >= 0) {
		dir = ir_add(
		    g, ir_mul(g, ir_hyper(g, o->momentum), ir_state(g, o->buf[i])), grad);
		ir_fn_out(g, fn, dir, DEST_STATE, o->buf[i]);
	}
	ir_fn_out(g, fn, ir_sub(g, ir_param(g, i), ir_mul(g, ir_hyper(g, o->lr), dir)),
	          DEST_PARAM, i);
}

/* Adam's scalars, shared by every parameter's update in one function. */
typedef struct AdamScalars {
	Node *b1, *b2, *c1, *c2; /* beta1, beta2, 1 - beta1, 1 - beta2 */
	Node *step_size;         /* lr / (1 - beta1^t) */
	Node *rbc2;              /* 1 / sqrt(1 - beta2^t) */
	Node *eps;
} AdamScalars;

static AdamScalars adam_scalars(Graph *g, Optim *o, FnKind fn)
{
	AdamScalars a;
	Node *one = ir_scalar(g, 1);
	Node *t = ir_add(g, ir_state(g, o->t), one);
	ir_fn_out(g, fn, t, DEST_STATE, o->t);
	a.b1 = ir_hyper(g, o->beta1);
	a.b2 = ir_hyper(g, o->beta2);
	a.c1 = ir_sub(g, one, a.b1);
	a.c2 = ir_sub(g, one, a.b2);
	/* beta^t = exp(t log beta) */
	Node *bc1 =
	    ir_sub(g, one, ir_unary(g, OP_EXP, ir_mul(g, t, ir_unary(g, OP_LOG, a.b1))));
	Node *bc2 =
	    ir_sub(g, one, ir_unary(g, OP_EXP, ir_mul(g, t, ir_unary(g, OP_LOG, a.b2))));
	a.step_size = ir_div(g, ir_hyper(g, o->lr), bc1);
	a.rbc2 = ir_div(g, one, ir_unary(g, OP_SQRT, bc2));
	a.eps = ir_hyper(g, o->eps);
	return a;
}

static void adam(Graph *g, Optim *o, const AdamScalars *a, int i, Node *grad, FnKind fn)
{
	Node *m = lerp(g, a->b1, ir_state(g, o->buf[i]), a->c1, grad);
	Node *v = lerp(g, a->b2, ir_state(g, o->buf2[i]), a->c2, ir_mul(g, grad, grad));
	ir_fn_out(g, fn, m, DEST_STATE, o->buf[i]);
	ir_fn_out(g, fn, v, DEST_STATE, o->buf2[i]);
	Node *denom = ir_add(g, ir_mul(g, ir_unary(g, OP_SQRT, v), a->rbc2), a->eps);
	Node *upd = ir_mul(g, a->step_size, ir_div(g, m, denom));
	ir_fn_out(g, fn, ir_sub(g, ir_param(g, i), upd), DEST_PARAM, i);
}

void optim_update(Graph *g, Optim *o, Node *const *grads, FnKind fn)
{
	g->cur_loc = o->m->opt_loc;
	g->cur_rule = NULL;
	g->cur_label = NULL;
	ir_fn_out(g, fn, NULL, DEST_PARAM, 0); /* defined even with nothing to train */
	AdamScalars a = {0};
	if (o->m->opt == OPT_ADAM)
		a = adam_scalars(g, o, fn);
	for (int i = 0; i < g->nparams; i++) {
		if (!grads[i] || !g->params[i].trainable)
			continue;
		g->cur_label = g->params[i].name;
		if (o->m->opt == OPT_ADAM)
			adam(g, o, &a, i, grads[i], fn);
		else
			sgd(g, o, i, grads[i], fn);
	}
	g->cur_label = NULL;
}
