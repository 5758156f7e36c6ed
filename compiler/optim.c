/* The optimizer: what to do with the gradients. Backpropagation (autodiff.c) only
 * computes d(loss)/d(param); this file builds, as ordinary IR, the update an optimizer
 * makes from them, so the update is generated code compiled with the rest.
 *
 * Names, defaults (model.c) and formulas follow torch.optim; p is a parameter, g its
 * gradient, t the step count after this step (t = 1 on the first step).
 *
 *   clip_grad_value  g = clamp(g, -clip_value, clip_value)        then, if both,
 *   clip_grad_norm   n = sqrt(sum of g^2 over every trainable parameter)
 *                    g = g * min(1, max_norm / (n + 1e-6))
 *                    (torch.nn.utils.clip_grad_value_ and clip_grad_norm_, norm 2)
 *   weight decay     g = g + weight_decay * p      (all but adamw, after clipping,
 *                                                  while weight_decay is not 0)
 *
 *   sgd       with momentum: b = g on the first step (undamped, torch's clone),
 *                               else b = momentum * b + (1 - dampening) * g
 *                            d = nesterov ? g + momentum * b : b
 *             without:       d = g
 *             p = p - lr * d
 *   adam      m = beta1 * m + (1 - beta1) * g
 *             v = beta2 * v + (1 - beta2) * g^2
 *             amsgrad: vmax = max(vmax, v), used for v below
 *             p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *   adamw     p = p * (1 - lr * weight_decay), then adam without weight decay
 *   rmsprop   v = alpha * v + (1 - alpha) * g^2
 *             centered: ga = alpha * ga + (1 - alpha) * g;  v' = v - ga^2, else v' = v
 *             d = g / (sqrt(v') + eps)
 *             with momentum: b = momentum * b + d;  p = p - lr * b   (b starts at 0)
 *             without:       p = p - lr * d
 *   adagrad   s = s + g^2   (s starts at initial_accumulator_value)
 *             p = p - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)
 *
 * Every setting above but initial_accumulator_value is a run-time scalar (RT_HYPER)
 * under torch's name ("lr", "momentum", "dampening", "weight_decay", "beta1", "beta2",
 * "eps", "alpha", "lr_decay", "max_norm", "clip_value"), so a schedule never needs a
 * recompile. 1 - dampening, 1 - beta1, 1 - beta2 and 1 - alpha are scalars of their
 * own ("1-beta2"), set with theirs from the double (rt_set_hyper), as torch computes
 * them in Python; the bias corrections 1 - beta^t are computed from them. What decides
 * which state exists is fixed at compile time: nesterov, amsgrad, centered, momentum 0 or
 * not (without momentum there is no "momentum" or "dampening" to set), the clipping
 * settings given or not, and initial_accumulator_value. State tensors carry torch's state
 * dict keys: "<param>.momentum_buffer", ".exp_avg", ".exp_avg_sq", ".max_exp_avg_sq",
 * ".square_avg", ".grad_avg", ".sum", and one step count "step" (adam, adamw,
 * adagrad, and sgd with momentum, whose first step differs). State starts at zero, so
 * the first step is told apart by step = 0: sgd's b = g and adagrad's s =
 * initial_accumulator_value then. The step count is one float, exact up to 2^24.
 */
#include "dc.h"

/* Run-time scalars, by torch.optim's names. */
typedef enum {
	H_LR,
	H_MOMENTUM,
	H_DAMPENING,
	H_WEIGHT_DECAY,
	H_BETA1,
	H_BETA2,
	H_EPS,
	H_ALPHA,
	H_LR_DECAY,
	H_MAX_NORM,
	H_CLIP_VALUE,
	NHYPER
} Hyper;
static const char *const hyper_names[NHYPER] = {
    "lr",  "momentum", "dampening", "weight_decay", "beta1",     "beta2",
    "eps", "alpha",    "lr_decay",  "max_norm",     "clip_value"};

/* State tensors kept per trainable parameter, by torch's state dict keys. */
typedef enum {
	S_MOMENTUM_BUFFER,
	S_EXP_AVG,
	S_EXP_AVG_SQ,
	S_MAX_EXP_AVG_SQ,
	S_SQUARE_AVG,
	S_GRAD_AVG,
	S_SUM,
	NSLOT
} Slot;
static const char *const slot_names[NSLOT] = {
    "momentum_buffer", "exp_avg",  "exp_avg_sq", "max_exp_avg_sq",
    "square_avg",      "grad_avg", "sum"};

#define B(x) (1u << (x))

struct Optim {
	const Model *m;
	int hyper[NHYPER]; /* index among the graph's hypers; -1: the update has none */
	int comp[NHYPER];  /* of "1-<name>", 1 - the hyper (hy1); -1: none */
	int *
	    slot[NSLOT]; /* per parameter: state index, -1 if none; NULL: no such state */
	int step;        /* state index of the step count, -1 if none */
};

Optim *optim_setup(Graph *g, const Model *m)
{
	Optim *o = arena_alloc(g->A, sizeof *o);
	o->m = m;
	unsigned hs = B(H_LR) | B(H_WEIGHT_DECAY), ss = 0;
	int step = 1;
	switch (m->opt) {
	case OPT_SGD:
		if (m->momentum > 0)
			hs |= B(H_MOMENTUM) | B(H_DAMPENING), ss |= B(S_MOMENTUM_BUFFER);
		step = m->momentum > 0;
		break;
	case OPT_ADAM:
	case OPT_ADAMW:
		hs |= B(H_BETA1) | B(H_BETA2) | B(H_EPS);
		ss |= B(S_EXP_AVG) | B(S_EXP_AVG_SQ) |
		      (m->amsgrad ? B(S_MAX_EXP_AVG_SQ) : 0);
		break;
	case OPT_RMSPROP:
		hs |= B(H_ALPHA) | B(H_EPS) | (m->momentum > 0 ? B(H_MOMENTUM) : 0);
		ss |= B(S_SQUARE_AVG) | (m->centered ? B(S_GRAD_AVG) : 0) |
		      (m->momentum > 0 ? B(S_MOMENTUM_BUFFER) : 0);
		step = 0;
		break;
	case OPT_ADAGRAD:
		hs |= B(H_LR_DECAY) | B(H_EPS);
		ss |= B(S_SUM);
		break;
	}
	if (m->clip_value > 0)
		hs |= B(H_CLIP_VALUE);
	if (m->max_norm > 0)
		hs |= B(H_MAX_NORM);
	const double init[NHYPER] = {
	    m->lr,  m->momentum, m->dampening, m->weight_decay, m->beta1,     m->beta2,
	    m->eps, m->alpha,    m->lr_decay,  m->max_norm,     m->clip_value};
	/* 1 - beta is a hyper of its own, computed in double where beta is set (the
	 * runtime's rt_set_hyper), as torch computes it in Python before one rounding to
	 * float: 1 - (float)0.999 is 0.00099998713, 1.3e-5 off torch's (float)0.001 */
	const unsigned comps = B(H_DAMPENING) | B(H_BETA1) | B(H_BETA2) | B(H_ALPHA);
	for (int h = 0; h < NHYPER; h++) {
		o->hyper[h] = hs & B(h) ? ir_add_hyper(g, hyper_names[h], init[h]) : -1;
		o->comp[h] =
		    hs & comps & B(h)
		        ? ir_add_hyper(g, arena_printf(g->A, "1-%s", hyper_names[h]),
		                       1 - init[h])
		        : -1;
	}
	o->step = step ? ir_add_state(g, "step", (Shape){0, {0}}) : -1;
	for (int s = 0; s < NSLOT; s++)
		if (ss & B(s))
			o->slot[s] =
			    arena_alloc(g->A, (size_t)(g->nparams + 1) * sizeof(int));
	for (int i = 0; i < g->nparams; i++)
		for (int s = 0; s < NSLOT; s++) {
			if (!o->slot[s])
				continue;
			o->slot[s][i] = -1;
			if (g->params[i].trainable)
				o->slot[s][i] = ir_add_state(
				    g,
				    arena_printf(g->A, "%s.%s", g->params[i].name,
				                 slot_names[s]),
				    g->params[i].sh);
		}
	return o;
}

/* One function's update under construction. Scalars derived from hypers (1 - beta1,
 * the bias corrections) are built once per parameter but are one node: build-time CSE
 * merges identical nodes. */
typedef struct Upd {
	Graph *g;
	const Optim *o;
	FnKind fn;
	Node *t0, *t; /* step count before and after this step; NULL without one */
	int i;        /* the parameter being updated */
} Upd;

static Node *hy(const Upd *u, Hyper h)
{
	check(u->o->hyper[h] >= 0);
	return ir_hyper(u->g, u->o->hyper[h]);
}

/* 1 - the hyper h, set with it (optim_setup) */
static Node *hy1(const Upd *u, Hyper h)
{
	check(u->o->comp[h] >= 0);
	return ir_hyper(u->g, u->o->comp[h]);
}

static Node *one(const Upd *u) { return ir_scalar(u->g, 1); }

/* This parameter's state s before the step; put() writes its new value. */
static Node *old(const Upd *u, Slot s) { return ir_state(u->g, u->o->slot[s][u->i]); }

static Node *put(const Upd *u, Slot s, Node *v)
{
	ir_fn_out(u->g, u->fn, v, DEST_STATE, u->o->slot[s][u->i]);
	return v;
}

/* a * x + b * y */
static Node *lerp(Graph *g, Node *a, Node *x, Node *b, Node *y)
{
	return ir_add(g, ir_mul(g, a, x), ir_mul(g, b, y));
}

/* The bias correction 1 - beta^t from c = 1 - beta (hy1), to a few ulps where
 * 1 - exp(t log beta) lost digits to cancellation: -expm1(t log1p(-c)), with Kahan's
 * log1p(x) = log(1 + x) x / ((1 + x) - 1) and, while beta^t = u > 1/2,
 * expm1(y) = (u - 1) y / log u (each x, or y, where its denominator is 0); for
 * u <= 1/2, 1 - u loses nothing. */
static Node *bias_correction(const Upd *u, Hyper h)
{
	Graph *g = u->g;
	Node *zero = ir_scalar(g, 0), *half = ir_scalar(g, 0.5);
	Node *x = ir_neg(g, hy1(u, h)), *w = ir_add(g, one(u), x),
	     *wm1 = ir_sub(g, w, one(u));
	Node *w0 = ir_binary(g, OP_EQ, wm1, zero);
	Node *log1p = ir_select(g, w0, x,
	                        ir_div(g, ir_mul(g, ir_unary(g, OP_LOG, w), x),
	                               ir_select(g, w0, one(u), wm1)));
	Node *y = ir_mul(g, u->t, log1p), *pw = ir_unary(g, OP_EXP, y);
	Node *near = ir_mul(g, ir_binary(g, OP_GT, pw, half),
	                    ir_binary(g, OP_GT, one(u), pw)); /* 1/2 < u < 1 */
	Node *safe = ir_select(g, near, pw, half);
	Node *kahan =
	    ir_div(g, ir_mul(g, ir_sub(g, one(u), pw), y), ir_unary(g, OP_LOG, safe));
	return ir_select(g, near, kahan,
	                 ir_select(g, ir_binary(g, OP_EQ, pw, one(u)), ir_neg(g, y),
	                           ir_sub(g, one(u), pw)));
}

/* Each returns the parameter's new value from p and the gradient. */
static Node *sgd(const Upd *u, Node *p, Node *grad)
{
	Graph *g = u->g;
	Node *d = grad;
	if (u->o->slot[S_MOMENTUM_BUFFER]) {
		Node *mom = hy(u, H_MOMENTUM);
		Node *later =
		    lerp(g, mom, old(u, S_MOMENTUM_BUFFER), hy1(u, H_DAMPENING), grad);
		/* torch.optim.SGD tests momentum != 0 at every step: set to 0 at run
		 * time, it takes plain steps and leaves the buffer as it is (whatever the
		 * dampening) */
		Node *b = put(u, S_MOMENTUM_BUFFER,
		              ir_select(g, mom, ir_select(g, u->t0, later, grad),
		                        old(u, S_MOMENTUM_BUFFER)));
		d = ir_select(g, mom,
		              u->o->m->nesterov ? ir_add(g, grad, ir_mul(g, mom, b)) : b,
		              grad);
	}
	return ir_sub(g, p, ir_mul(g, hy(u, H_LR), d));
}

static Node *adam(const Upd *u, Node *p, Node *grad)
{
	Graph *g = u->g;
	Node *b1 = hy(u, H_BETA1), *b2 = hy(u, H_BETA2);
	Node *m =
	    put(u, S_EXP_AVG, lerp(g, b1, old(u, S_EXP_AVG), hy1(u, H_BETA1), grad));
	Node *v = put(
	    u, S_EXP_AVG_SQ,
	    lerp(g, b2, old(u, S_EXP_AVG_SQ), hy1(u, H_BETA2), ir_mul(g, grad, grad)));
	if (u->o->slot[S_MAX_EXP_AVG_SQ])
		v = put(u, S_MAX_EXP_AVG_SQ,
		        ir_binary(g, OP_MAX, old(u, S_MAX_EXP_AVG_SQ), v));
	Node *step_size = ir_div(g, hy(u, H_LR), bias_correction(u, H_BETA1));
	Node *rbc2 = ir_div(g, one(u), ir_unary(g, OP_SQRT, bias_correction(u, H_BETA2)));
	Node *denom = ir_add(g, ir_mul(g, ir_unary(g, OP_SQRT, v), rbc2), hy(u, H_EPS));
	return ir_sub(g, p, ir_mul(g, step_size, ir_div(g, m, denom)));
}

static Node *rmsprop(const Upd *u, Node *p, Node *grad)
{
	Graph *g = u->g;
	Node *a = hy(u, H_ALPHA), *c = hy1(u, H_ALPHA);
	Node *v = put(u, S_SQUARE_AVG,
	              lerp(g, a, old(u, S_SQUARE_AVG), c, ir_mul(g, grad, grad)));
	if (u->o->slot[S_GRAD_AVG]) {
		Node *ga = put(u, S_GRAD_AVG, lerp(g, a, old(u, S_GRAD_AVG), c, grad));
		v = ir_sub(g, v, ir_mul(g, ga, ga));
	}
	Node *d = ir_div(g, grad, ir_add(g, ir_unary(g, OP_SQRT, v), hy(u, H_EPS)));
	if (u->o->slot[S_MOMENTUM_BUFFER])
		d = put(u, S_MOMENTUM_BUFFER,
		        ir_add(g, ir_mul(g, hy(u, H_MOMENTUM), old(u, S_MOMENTUM_BUFFER)),
		               d));
	return ir_sub(g, p, ir_mul(g, hy(u, H_LR), d));
}

static Node *adagrad(const Upd *u, Node *p, Node *grad)
{
	Graph *g = u->g;
	double init = u->o->m->initial_accumulator_value;
	Node *s = old(u, S_SUM);
	if (init != 0)
		s = ir_select(g, u->t0, s, ir_scalar(g, init));
	s = put(u, S_SUM, ir_add(g, s, ir_mul(g, grad, grad)));
	Node *decay = ir_mul(g, ir_sub(g, u->t, one(u)), hy(u, H_LR_DECAY));
	Node *clr = ir_div(g, hy(u, H_LR), ir_add(g, one(u), decay));
	Node *std = ir_add(g, ir_unary(g, OP_SQRT, s), hy(u, H_EPS));
	return ir_sub(g, p, ir_mul(g, clr, ir_div(g, grad, std)));
}

/* Gradient clipping over every trainable parameter's gradient, in place in grads. */
static void clip(const Upd *u, Node **grads)
{
	Graph *g = u->g;
	int n = g->nparams;
	if (u->o->hyper[H_CLIP_VALUE] >= 0) {
		Node *hi = hy(u, H_CLIP_VALUE), *lo = ir_neg(g, hi);
		for (int i = 0; i < n; i++)
			if (grads[i])
				grads[i] = ir_binary(
				    g, OP_MIN, ir_binary(g, OP_MAX, grads[i], lo), hi);
	}
	if (u->o->hyper[H_MAX_NORM] >= 0) {
		Node *sq = NULL;
		for (int i = 0; i < n; i++)
			if (grads[i]) {
				Node *s = ir_sum_all(g, ir_mul(g, grads[i], grads[i]));
				sq = sq ? ir_add(g, sq, s) : s;
			}
		if (!sq)
			return;
		Node *norm = ir_add(g, ir_unary(g, OP_SQRT, sq), ir_scalar(g, 1e-6));
		Node *scale =
		    ir_binary(g, OP_MIN, one(u), ir_div(g, hy(u, H_MAX_NORM), norm));
		for (int i = 0; i < n; i++)
			if (grads[i])
				grads[i] = ir_mul(g, grads[i], scale);
	}
}

void optim_update(Graph *g, Optim *o, Node *const *grads, FnKind fn)
{
	const Model *m = o->m;
	g->cur_loc = m->opt_loc;
	g->cur_rule = NULL;
	g->cur_label = NULL;
	ir_fn_out(g, fn, NULL, DEST_PARAM, 0); /* defined even with nothing to train */
	Upd u = {g, o, fn, NULL, NULL, 0};
	if (o->step >= 0) {
		u.t0 = ir_state(g, o->step);
		u.t = ir_add(g, u.t0, one(&u));
		ir_fn_out(g, fn, u.t, DEST_STATE, o->step);
	}
	Node **gr = arena_alloc(g->A, (size_t)(g->nparams + 1) * sizeof *gr);
	for (int i = 0; i < g->nparams; i++)
		gr[i] = g->params[i].trainable ? grads[i] : NULL;
	clip(&u, gr);
	for (int i = 0; i < g->nparams; i++) {
		if (!gr[i])
			continue;
		g->cur_label = g->params[i].name;
		u.i = i;
		Node *p = ir_param(g, i), *wd = hy(&u, H_WEIGHT_DECAY), *grad = gr[i],
		     *np;
		/* torch's "if weight_decay != 0" (adamw's multiplies by 1 either way): a
		 * select the check of the update decides before its loop (codegen.c) */
		if (m->opt == OPT_ADAMW)
			p = ir_mul(g, p, ir_sub(g, one(&u), ir_mul(g, hy(&u, H_LR), wd)));
		else
			grad = ir_select(g, wd, ir_add(g, grad, ir_mul(g, wd, p)), grad);
		switch (m->opt) {
		case OPT_SGD:
			np = sgd(&u, p, grad);
			break;
		case OPT_ADAM:
		case OPT_ADAMW:
			np = adam(&u, p, grad);
			break;
		case OPT_RMSPROP:
			np = rmsprop(&u, p, grad);
			break;
		case OPT_ADAGRAD:
			np = adagrad(&u, p, grad);
			break;
		default:
			die("optimizer %d", (int)m->opt);
		}
		ir_fn_out(g, fn, np, DEST_PARAM, i);
	}
	g->cur_label = NULL;
}
