/* What a model file can call: layers, activations, math and losses, one table row each
 * with its signature (positional arguments, typed keyword arguments) and its builder.
 *
 * A sequential layer `- conv2d: {out_channels: 6, kernel_size: 5}` and the expression
 * `conv2d(x, out_channels=6, kernel_size=5)` are the same call: model.c turns the first
 * into the second, calls.c's fun_args checks either against the row (arity, names with
 * "did you mean", types, ranges, each error at its YAML line and column), and the
 * builder gets typed values. Builders lower to primitive ops; layers name their
 * parameters after the node that holds them, with PyTorch's names and layouts
 * (fc1.weight is [out, in], conv weights are [out, in/groups, kh, kw], batch norm keeps
 * running_mean/var).
 * Losses return per-example values reduced over the batch with the padding mask.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dc.h"

#define BUILD(name)                                                                      \
	static Node *build_##name(Lower *L, const Expr *call, Node **a, int na,          \
	                          const KwVal *kw)
#define G L->g
#define UNUSED (void)L, (void)call, (void)a, (void)na, (void)kw

static const char *const act_names[] = {"none",    "relu",        "sigmoid",    "tanh",
                                        "softmax", "log_softmax", "leaky_relu", "elu",
                                        "gelu",    "silu",        "softplus",   NULL};
static const char *const init_names[] = {"kaiming_uniform", "xavier_uniform", "torch",
                                         "zeros",           "ones",           NULL};
static const rt_init init_vals[] = {RT_INIT_KAIMING_UNIFORM, RT_INIT_XAVIER_UNIFORM,
                                    RT_INIT_TORCH_LINEAR, RT_INIT_ZEROS, RT_INIT_ONES};
static const char *const reduction_names[] = {"mean", "sum", NULL};
static const char *const gelu_names[] = {"none", "tanh", NULL};
static const char *const bool_names[] = {"false", "true", NULL};

static Node *scalar(Lower *L, double v) { return ir_scalar(G, v); }

static Node *gt0(Lower *L, Node *x) { return ir_binary(G, OP_GT, x, scalar(L, 0)); }

static int error(Lower *L, const Expr *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_vadd(L->d, SEV_ERROR, e->loc, fmt, ap);
	va_end(ap);
	return -1;
}

/* Layers compute on floats; an integer input (labels, indices) is a mistake. */
static int need_float(Lower *L, const Expr *call, Node *x)
{
	if (x->dt == DT_F32)
		return 0;
	return error(
	    L, call,
	    "%s takes floating-point values; its input holds integers (dtype i32)",
	    call->name);
}

static double kwf(const KwVal *kw, int i, double def)
{
	return kw[i].set ? kw[i].f : def;
}

/* ---- activations ---- */

static Node *activation(Lower *L, int act, Node *x)
{
	switch (act) {
	case 1:
		return ir_unary(G, OP_RELU, x);
	case 2:
		return ir_unary(G, OP_SIGMOID, x);
	case 3:
		return ir_unary(G, OP_TANH, x);
	case 4:
		return ir_unary(G, OP_EXP, ir_logsoftmax(G, x));
	case 5:
		return ir_logsoftmax(G, x);
	case 6: /* leaky_relu, slope 0.01 */
		return ir_select(G, gt0(L, x), x, ir_mul(G, x, scalar(L, 0.01)));
	case 7: /* elu, alpha 1 */
		return ir_select(G, gt0(L, x), x,
		                 ir_sub(G, ir_unary(G, OP_EXP, x), scalar(L, 1)));
	case 8: /* gelu, erf form */
		return ir_mul(
		    G, ir_mul(G, x, scalar(L, 0.5)),
		    ir_add(G, scalar(L, 1),
		           ir_unary(G, OP_ERF, ir_mul(G, x, scalar(L, M_SQRT1_2)))));
	case 9: /* silu */
		return ir_mul(G, x, ir_unary(G, OP_SIGMOID, x));
	case 10:
		return ir_unary(G, OP_SOFTPLUS, x);
	default:
		return x;
	}
}

#define ACT(name, k)                                                                     \
	BUILD(name)                                                                      \
	{                                                                                \
		UNUSED;                                                                  \
		return activation(L, k, a[0]);                                           \
	}
ACT(relu, 1)
ACT(sigmoid, 2)
ACT(tanh, 3)
ACT(softmax, 4)
ACT(log_softmax, 5)
ACT(silu, 9)
ACT(softplus, 10)

/* where(x > 0, x, slope * x) */
BUILD(leaky_relu)
{
	UNUSED;
	return ir_select(G, gt0(L, a[0]), a[0],
	                 ir_mul(G, a[0], scalar(L, kwf(kw, 0, 0.01))));
}

/* where(x > 0, x, alpha * (e^x - 1)) */
BUILD(elu)
{
	UNUSED;
	Node *neg = ir_mul(G, scalar(L, kwf(kw, 0, 1)),
	                   ir_sub(G, ir_unary(G, OP_EXP, a[0]), scalar(L, 1)));
	return ir_select(G, gt0(L, a[0]), a[0], neg);
}

/* x/2 (1 + erf(x / sqrt 2)), or with approximate=tanh:
 * x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
BUILD(gelu)
{
	UNUSED;
	Node *x = a[0];
	if (!kw[0].set || kw[0].e == 0)
		return activation(L, 8, x);
	Node *inner =
	    ir_add(G, x, ir_mul(G, scalar(L, 0.044715), ir_mul(G, x, ir_mul(G, x, x))));
	Node *t = ir_unary(G, OP_TANH, ir_mul(G, scalar(L, 0.7978845608028654), inner));
	return ir_mul(G, ir_mul(G, x, scalar(L, 0.5)), ir_add(G, scalar(L, 1), t));
}

/* ---- math ---- */

#define UNARY(name, op)                                                                  \
	BUILD(name)                                                                      \
	{                                                                                \
		UNUSED;                                                                  \
		return ir_unary(G, op, a[0]);                                            \
	}
UNARY(exp, OP_EXP)
UNARY(log, OP_LOG)
UNARY(sqrt, OP_SQRT)
UNARY(abs, OP_ABS)
UNARY(sin, OP_SIN)
UNARY(cos, OP_COS)
UNARY(erf, OP_ERF)
UNARY(stop_gradient, OP_STOPGRAD)

BUILD(pow)
{
	UNUSED;
	return ir_binary(G, OP_POW, a[0], a[1]);
}

BUILD(where)
{
	UNUSED;
	return ir_select(G, a[0], a[1], a[2]);
}

static int batch_axis(Lower *L, const Node *x, int64_t *inner);
static Node *mask_along(Lower *L, const Node *x, int axis, int64_t *k);

/* matmul(a, b): a product that sums over the batch (matmul(transpose(x), x)) weights
 * its rows as a sum over the batch does, the padding rows left out */
BUILD(matmul)
{
	UNUSED;
	Node *x[2] = {a[0], a[1]};
	int weighted = 0;
	for (int i = 0; i < 2 && x[0] && x[1]; i++) {
		int64_t k;
		int axis = i ? 0 : x[0]->sh.rank - 1; /* the axis summed over */
		/* a transposed operand is weighted before its transpose, which then
		 * stays a flag of the product (fold.c), not a copy */
		int tr = x[i]->op == OP_TRANSPOSE && x[i]->sh.rank == 2;
		Node *v = tr ? x[i]->in[0] : x[i],
		     *m = mask_along(L, v, tr ? 1 - axis : axis, &k);
		if (m) { /* the weights once; both operands' padding rows zero, so that
			  * an infinite one is no 0 * inf */
			v = ir_select(G, m, weighted++ ? v : ir_mul(G, v, m),
			              scalar(L, 0));
			x[i] = tr ? ir_transpose(G, v, (int[]){1, 0}) : v;
		}
	}
	return ir_matmul(G, x[0], x[1], 0, 0);
}

/* Axes from an `axis` keyword (an integer or a list, negative from the end), or all. */
static uint32_t axes_of(Lower *L, const Expr *call, const KwVal *k, int rank, int *bad)
{
	if (!k->set)
		return (1u << rank) - 1;
	uint32_t m = 0;
	for (int i = 0; i < k->n; i++) {
		int64_t ax = k->i[i] < 0 ? k->i[i] + rank : k->i[i];
		if (ax < 0 || ax >= rank) {
			*bad = error(L, call,
			             "axis %lld is out of range for a value with %d axes",
			             (long long)k->i[i], rank);
			return 0;
		}
		m |= 1u << ax;
	}
	return m;
}

/* max(a, b) elementwise, max(x) or max(x, axis=...) a reduction; likewise min, sum, mean;
 * over the batch, of the real rows alone */
static Node *reduce_call(Lower *L, const Expr *call, Node **a, int na, const KwVal *kw,
                         int kind)
{
	if (!a[0])
		return NULL;
	if (na == 2) {
		if (kind >= 2)
			return error(L, call, "%s takes one value; to add two, use +",
			             call->name),
			       NULL;
		return ir_binary(G, kind ? OP_MIN : OP_MAX, a[0], a[1]);
	}
	int bad = 0;
	uint32_t axes = axes_of(L, call, &kw[0], a[0]->sh.rank, &bad);
	int keep = kw[1].set && kw[1].f != 0;
	if (bad)
		return NULL;
	/* over the batch, wherever it is (batch_axis): rows weighted as the losses
	 * weight them (reduce_loss), the padding rows of a last partial batch (weight 0)
	 * left out by a select, not a product, as a padding row's value may be
	 * infinite; max and min take the rows of weight not 0 */
	Node *x = a[0], *m = NULL;
	int64_t k = 1, inner;
	int bax = batch_axis(L, x, &inner);
	if (bax >= 0 && axes >> bax & 1)
		m = mask_along(L, x, bax, &k);
	if (m)
		x = ir_select(G, m, kind >= 2 ? ir_mul(G, x, m) : x,
		              scalar(L, kind == 0   ? -INFINITY
		                        : kind == 1 ? INFINITY
		                                    : 0));
	switch (kind) {
	case 0:
		return ir_rmax(G, x, axes, keep);
	case 1:
		return ir_neg(G, ir_rmax(G, ir_neg(G, x), axes, keep));
	case 2:
		return ir_sum(G, x, axes, keep);
	}
	if (!m)
		return ir_mean(G, x, axes, keep);
	double per = (double)k; /* the reduced elements of an example */
	for (int i = 0; i < x->sh.rank; i++)
		if (axes >> i & 1 && i != bax)
			per *= (double)x->sh.d[i];
	return ir_div(G, ir_sum(G, x, axes, keep),
	              ir_mul(G, ir_sum_all(G, L->mask), scalar(L, per)));
}

BUILD(max) { return reduce_call(L, call, a, na, kw, 0); }
BUILD(min) { return reduce_call(L, call, a, na, kw, 1); }
BUILD(sum) { return reduce_call(L, call, a, na, kw, 2); }
BUILD(mean) { return reduce_call(L, call, a, na, kw, 3); }

BUILD(transpose)
{
	UNUSED;
	Node *x = a[0];
	int perm[MAXRANK];
	if (!x)
		return NULL;
	if (kw[0].set && kw[0].n != x->sh.rank)
		return error(L, call, "transpose: 'perm' has %d axes, the value has %d",
		             kw[0].n, x->sh.rank),
		       NULL;
	for (int i = 0; i < x->sh.rank; i++) {
		perm[i] = kw[0].set ? (int)kw[0].i[i] : x->sh.rank - 1 - i;
		int bad = perm[i] < 0 || perm[i] >= x->sh.rank;
		for (int j = 0; j < i; j++)
			bad |= perm[j] == perm[i];
		if (bad)
			return error(L, call,
			             "transpose: 'perm' is not a permutation of 0..%d",
			             x->sh.rank - 1),
			       NULL;
	}
	return ir_transpose(G, x, perm);
}

BUILD(argmax)
{
	UNUSED;
	return ir_argmax(G, a[0]);
}

BUILD(one_hot)
{
	UNUSED;
	return ir_onehot(G, a[0], (int64_t)kw[0].f);
}

/* ---- shapes ---- */

/* Where x carries the batch: the axis (-1: none), and in *inner the stride of the batch
 * within that axis: the axis is outer * B * inner long, its index o B inner + b inner
 * + i for example b (dense on [B, T, n] computes on [B*T, n]: inner T; on [T, B, n],
 * on [T*B, n]: outer T). It follows the batch from the io slots through each op, so
 * that a parameter [4, 6] is no batch at batch 4 (reshape(W, shape=[-1]) kept 4 rows
 * of 6 and gave another loss at batch 5), nor x^T x, nor a gradient penalty's or an
 * embedding's gradients, while transposes and reshapes move it. A value with the batch
 * on two axes (x x^T) keeps the first's. Memoized by node id: L->bat[id] is 0 not
 * known, 1 none, else 2 + the axis; L->binner[id] the stride. */
static int batch_axis(Lower *L, const Node *x, int64_t *inner)
{
	*inner = 1;
	if (!L->batch)
		return -1;
	if (x->id >= L->nbat) {
		int n = L->g->n + 64;
		signed char *b = arena_alloc(L->g->A, (size_t)n);
		int64_t *in = arena_alloc(L->g->A, (size_t)n * sizeof *in);
		if (L->nbat) {
			memcpy(b, L->bat, (size_t)L->nbat);
			memcpy(in, L->binner, (size_t)L->nbat * sizeof *in);
		}
		L->bat = b, L->binner = in, L->nbat = n;
	}
	if (L->bat[x->id]) {
		*inner = L->binner[x->id];
		return L->bat[x->id] - 2;
	}
	const Shape *o = &x->sh;
	int64_t B = L->batch, pi = 1;
	int ax = -1;
	if (x->op == OP_INPUT) {
		if (o->rank >= 1 && o->d[0] == B)
			ax = 0;
	} else if (x->nin > 0 && x->op != OP_SCATTER_ADD &&
	           x->op != OP_CONV2D_BWD_FILTER) {
		int b[MAXIN];
		int64_t n[MAXIN];
		for (int i = 0; i < x->nin; i++)
			b[i] = batch_axis(L, x->in[i], &n[i]);
		const Shape *in = &x->in[0]->sh;
		switch (x->op) {
		case OP_SUM: /* reduced axes are kept, as 1 */
		case OP_RMAX:
			if (b[0] >= 0 && !(x->a[0] >> b[0] & 1))
				ax = b[0], pi = n[0];
			break;
		case OP_TRANSPOSE: /* out axis i is input axis a[i] */
			for (int i = 0; i < o->rank && b[0] >= 0; i++)
				if (x->a[i] == b[0])
					ax = i, pi = n[0];
			break;
		case OP_MATMUL: /* the rows of the first operand, the columns of the
		                   second */
			if (b[0] >= 0 && b[0] == (x->a[0] ? 1 : 0))
				ax = 0, pi = n[0];
			else if (b[1] >= 0 && b[1] == (x->a[1] ? 0 : 1))
				ax = 1, pi = n[1];
			break;
		case OP_RESHAPE: {
			/* row-major, the batch is a digit of the flat index, of stride
			 * sb and B values: on the out axis j of stride sj and nj values
			 * that holds that digit whole (sj divides sb, sb B divides sj nj)
			 */
			if (b[0] < 0)
				break;
			int64_t sb = n[0], sj = shape_numel(o);
			for (int i = b[0] + 1; i < in->rank; i++)
				sb *= in->d[i];
			/* outermost first: at batch 1 several axes hold the digit, and
			 * [1, 2, 3] -> [2, 3] -> [1, 2, 3] keeps it on axis 0 */
			for (int j = 0; j < o->rank && ax < 0; j++) {
				sj /= o->d[j] ? o->d[j] : 1;
				if (sb % sj == 0 && (sj * o->d[j]) % (sb * B) == 0)
					ax = j, pi = sb / sj;
			}
			break;
		}
		default: /* elementwise and broadcast operands align on the right; other
		          * ops keep their first axes (conv, pooling, gather by index...)
		          */
			for (int i = 0; i < x->nin && ax < 0; i++) {
				if (b[i] < 0)
					continue;
				int shift = (opinfo[x->op].flags & OPF_ELEMWISE) ||
				                    x->op == OP_BROADCAST
				                ? o->rank - x->in[i]->sh.rank
				                : 0;
				int j = b[i] + shift;
				if (j < o->rank && o->d[j] == x->in[i]->sh.d[b[i]])
					ax = j, pi = n[i];
			}
		}
	}
	L->bat[x->id] = (signed char)(ax + 2);
	L->binner[x->id] = pi;
	*inner = pi;
	return ax;
}

/* Whether x carries the batch itself on axis 0 (batch_axis) */
static int batched(Lower *L, const Node *x)
{
	int64_t inner;
	return batch_axis(L, x, &inner) == 0 && x->sh.d[0] == L->batch;
}

/* reshape(x, shape=[...]): for a batched value the shape is per example, like
 * Keras's Reshape; -1 stands for what is left. */
BUILD(reshape)
{
	UNUSED;
	Node *x = a[0];
	if (!x)
		return NULL;
	int lead = batched(L, x);
	Shape to = {lead, {x->sh.d[0]}};
	int64_t known = lead ? x->sh.d[0] : 1, hole = -1;
	if (kw[0].n + lead > MAXRANK)
		return error(L, call, "reshape: %d axes%s; at most %d are supported",
		             kw[0].n + lead, lead ? " with the batch" : "", MAXRANK),
		       NULL;
	for (int i = 0; i < kw[0].n; i++) {
		int64_t d = kw[0].i[i];
		if (d == -1)
			hole = to.rank;
		else
			known = mul_sat(known, d); /* past any value's size: no fit */
		to.d[to.rank++] = d;
	}
	int64_t total = shape_numel(&x->sh);
	if (hole >= 0 && known > 0 && total % known == 0)
		to.d[hole] = total / known, known = total;
	char s1[128], s2[128];
	/* view(-1, 1, 28, 28), making 5 axes no layer takes (Keras' Reshape((-1, 6)),
	 * [batch, 1, 6], is fine) */
	if (lead && hole == lead && kw[0].n > 1 && to.d[hole] == 1 && to.rank > 4)
		return error(L, call,
		             "reshape: the shape is per example, the batch axis kept "
		             "first: a -1 first (PyTorch's view(-1, ...)) is an axis of "
		             "1 here, "
		             "making %s; leave it out",
		             shape_str(&to, s2, sizeof s2)),
		       NULL;
	if (known != total)
		return error(L, call,
		             "reshape: %s has %lld elements, which do not fit %s",
		             shape_str(&x->sh, s1, sizeof s1), (long long)total,
		             shape_str(&to, s2, sizeof s2)),
		       NULL;
	return ir_reshape(G, x, to);
}

/* [batch, everything else] */
BUILD(flatten)
{
	UNUSED;
	Node *x = a[0];
	if (!x || x->sh.rank < 2)
		return x;
	return ir_reshape(G, x,
	                  (Shape){2, {x->sh.d[0], shape_numel(&x->sh) / x->sh.d[0]}});
}

/* concat(a, b, ..., axis=1): each part padded into place, then added. */
BUILD(concat)
{
	UNUSED;
	for (int i = 0; i < na; i++)
		if (!a[i])
			return NULL;
	int rank = a[0]->sh.rank;
	int64_t ax = kw[0].set ? kw[0].i[0] : 1;
	if (ax < 0)
		ax += rank;
	if (ax < 0 || ax >= rank)
		return error(L, call, "concat: axis %lld is out of range for %d axes",
		             (long long)kw[0].i[0], rank),
		       NULL;
	Shape out = a[0]->sh;
	out.d[ax] = 0;
	for (int i = 0; i < na; i++) {
		char s1[128], s2[128];
		Shape s = a[i]->sh;
		s.d[ax] = a[0]->sh.d[ax];
		if (!shape_eq(&s, &a[0]->sh))
			return error(L, call, "concat: %s and %s differ beyond axis %lld",
			             shape_str(&a[0]->sh, s1, sizeof s1),
			             shape_str(&a[i]->sh, s2, sizeof s2), (long long)ax),
			       NULL;
		out.d[ax] += a[i]->sh.d[ax];
	}
	Node *sum = NULL;
	int64_t at[MAXRANK] = {0};
	for (int i = 0; i < na; i++) {
		Node *p = ir_pad(G, a[i], at, out);
		sum = sum ? ir_add(G, sum, p) : p;
		at[ax] += a[i]->sh.d[ax];
	}
	return sum;
}

BUILD(add)
{
	UNUSED;
	Node *s = a[0];
	for (int i = 1; i < na; i++)
		s = ir_add(G, s, a[i]);
	return s;
}

/* ---- layers ---- */

static rt_init init_of(const KwVal *k, rt_init def)
{
	return k->set ? init_vals[k->e] : def;
}

static Node *bias_act(Lower *L, Node *y, Node *b, const KwVal *act)
{
	if (b)
		y = ir_add(G, y, b);
	return activation(L, act->set ? act->e : 0, y);
}

/* y = x W^T + b over the last axis, W: [units, in] */
BUILD(dense)
{
	UNUSED;
	Node *x = a[0];
	if (!x)
		return NULL;
	if (x->sh.rank < 1)
		return error(L, call,
		             "dense needs a vector of features, got a single number"),
		       NULL;
	if (need_float(L, call, x))
		return NULL;
	int64_t in = x->sh.d[x->sh.rank - 1], units = (int64_t)kw[0].f;
	int train = !kw[4].set || kw[4].f != 0;
	/* nn.Linear's init whatever the activation, as in PyTorch (He's for relu was
	 * ours: the same model trained from another start than torch's) */
	rt_init init = init_of(&kw[3], RT_INIT_TORCH_LINEAR);
	Node *w = lower_param(L, "weight", (Shape){2, {units, in}}, init, 0, in, units,
	                      train, call->loc);
	Node *b = !kw[2].set || kw[2].f != 0
	              ? lower_param(L, "bias", (Shape){1, {units}}, RT_INIT_TORCH_LINEAR,
	                            0, in, units, train, call->loc)
	              : NULL;
	Shape outs = x->sh;
	outs.d[outs.rank - 1] = units;
	Node *x2 = ir_reshape(G, x, (Shape){2, {shape_numel(&x->sh) / in, in}});
	Node *y = ir_reshape(G, ir_matmul(G, x2, w, 0, 1), outs);
	return bias_act(L, y, b, &kw[1]);
}

static int need_nchw(Lower *L, const Expr *call, Node *x)
{
	if (need_float(L, call, x))
		return -1;
	char s[128];
	if (x->sh.rank == 4)
		return 0;
	return error(L, call,
	             "%s needs a [batch, channels, height, width] value, got %s; "
	             "give the input that shape or reshape it",
	             call->name, shape_str(&x->sh, s, sizeof s));
}

/* an integer or a pair, as a pair */
static void pair(const KwVal *k, int64_t def, int64_t *out)
{
	out[0] = k->set ? k->i[0] : def;
	out[1] = k->set ? k->i[k->n > 1] : def;
}

/* Padding from an integer, [h, w], [top, bottom, left, right], valid, or same (TF's
 * rule: the output has ceil(in / stride) positions, any odd pixel at the end). */
static void padding(const KwVal *k, const Shape *xs, const int64_t *kern,
                    const int64_t *st, const int64_t *dil, int64_t *pad)
{
	memset(pad, 0, 4 * sizeof *pad);
	if (!k->set || k->e == 2)
		return;
	if (k->e == 1) {
		for (int i = 0; i < 2; i++) {
			int64_t in = xs->d[2 + i], out = (in + st[i] - 1) / st[i];
			int64_t total =
			    (out - 1) * st[i] + dil[i] * (kern[i] - 1) + 1 - in;
			total = total > 0 ? total : 0;
			pad[2 * i] = total / 2, pad[2 * i + 1] = total - total / 2;
		}
		return;
	}
	for (int i = 0; i < 4; i++)
		pad[i] = k->n == 4 ? k->i[i] : k->n == 2 ? k->i[i / 2] : k->i[0];
}

BUILD(conv2d)
{
	UNUSED;
	Node *x = a[0];
	if (!x || need_nchw(L, call, x))
		return NULL;
	ConvP p;
	int64_t kern[2], out = (int64_t)kw[0].f, C = x->sh.d[1];
	pair(&kw[1], 1, kern);
	/* the model's input, or a reshape of it (a feature map the network made is
	 * channels first), read by a kernel wider than 1 (a 1-D convolution's [k, 1]) */
	const Node *src = x->op == OP_RESHAPE ? x->in[0] : x;
	if (L->train && src->op == OP_INPUT && x->sh.d[3] <= 4 && C >= 8 &&
	    x->sh.d[2] >= 8 && kern[1] != 1) {
		char s[128]; /* ([batch, 28, 28, 1] trained as 28 channels of 28 x 1) */
		diag_add(
		    L->d, SEV_WARNING, call->loc,
		    "conv2d takes [batch, channels, height, width], as PyTorch's: its "
		    "input %s is %lld channels of %lld x %lld images (channels last?)",
		    shape_str(&x->sh, s, sizeof s), (long long)C, (long long)x->sh.d[2],
		    (long long)x->sh.d[3]);
	}
	pair(&kw[2], 1, p.stride);
	pair(&kw[4], 1, p.dil);
	padding(&kw[3], &x->sh, kern, p.stride, p.dil, p.pad);
	p.groups = kw[5].set ? (int64_t)kw[5].f : 1;
	if (C % p.groups || out % p.groups)
		return error(L, call,
		             "conv2d: %lld input and %lld output channels do not split "
		             "into %lld groups",
		             (long long)C, (long long)out, (long long)p.groups),
		       NULL;
	int train = !kw[9].set || kw[9].f != 0;
	int64_t area = mul_sat(kern[0], kern[1]);
	int64_t fan_in = mul_sat(C / p.groups, area),
	        fan_out = mul_sat(out, area); /* torch's: out kh kw, groups or not */
	Shape ws = {4, {out, C / p.groups, kern[0], kern[1]}};
	Node *w = lower_param(L, "weight", ws, init_of(&kw[8], RT_INIT_TORCH_LINEAR), 0,
	                      fan_in, fan_out, train, call->loc);
	Node *b = !kw[6].set || kw[6].f != 0
	              ? lower_param(L, "bias", (Shape){1, {out}}, RT_INIT_TORCH_LINEAR, 0,
	                            fan_in, fan_out, train, call->loc)
	              : NULL;
	Node *y = ir_conv2d(G, x, w, &p);
	if (b)
		b = ir_reshape(G, b, (Shape){3, {out, 1, 1}});
	return bias_act(L, y, b, &kw[7]);
}

static int pool_geometry(Lower *L, const Expr *call, Node *x, const KwVal *kw, PoolP *p)
{
	if (need_nchw(L, call, x))
		return -1;
	int64_t one[2] = {1, 1};
	pair(&kw[0], 1, p->k);
	pair(&kw[1], 0, p->stride);
	if (!kw[1].set)
		p->stride[0] = p->k[0],
		p->stride[1] = p->k[1]; /* PyTorch: stride = kernel */
	padding(&kw[2], &x->sh, p->k, p->stride, one, p->pad);
	for (int i = 0; i < 4; i++)
		if (p->pad[i] * 2 > p->k[i / 2])
			return error(
			    L, call, "%s: padding %lld is more than half the kernel %lld",
			    call->name, (long long)p->pad[i], (long long)p->k[i / 2]);
	return 0;
}

BUILD(max_pool2d)
{
	UNUSED;
	PoolP p;
	if (!a[0] || pool_geometry(L, call, a[0], kw, &p) < 0)
		return NULL;
	return ir_poolmax(G, 0, a[0], a[0], &p);
}

BUILD(avg_pool2d)
{
	UNUSED;
	PoolP p;
	if (!a[0] || pool_geometry(L, call, a[0], kw, &p) < 0)
		return NULL;
	return ir_avgpool(G, a[0], &p);
}

/* the mean over height and width: [batch, channels] */
BUILD(global_avg_pool)
{
	UNUSED;
	if (!a[0] || need_nchw(L, call, a[0]))
		return NULL;
	return ir_mean(G, a[0], 0xc, 0);
}

/* Training: x * mask / (1 - p) with a fresh mask every step; evaluation: x. */
BUILD(dropout)
{
	UNUSED;
	Node *x = a[0];
	double p = kwf(kw, 0, 0.5);
	L->mode_dependent = 1;
	if (!x || !L->train || p == 0)
		return x;
	/* each dropout layer hashes its own seed, so their masks differ */
	Node *seed = ir_add(G, lower_seed(L), scalar(L, 4096.0 * ++L->ndropout));
	return ir_mul(G, x, ir_dropmask(G, seed, lower_counter(L), p, x->sh));
}

/* The rows' weights shaped to broadcast against x on axis, when x carries the batch
 * there (batch_axis), each repeated as the axis holds it (outer times, inner times
 * each); *k the values an example has on the axis (outer inner); else NULL. */
static Node *mask_along(Lower *L, const Node *x, int axis, int64_t *k)
{
	int64_t inner;
	*k = 1;
	if (!L->mask || x->dt != DT_F32 || axis < 0 || batch_axis(L, x, &inner) != axis)
		return NULL;
	int64_t B = L->batch, size = x->sh.d[axis], outer = size / (B * inner);
	Node *m = L->mask;
	*k = outer * inner;
	if (*k > 1)
		m = ir_reshape(G,
		               ir_broadcast(G, ir_reshape(G, m, (Shape){3, {1, B, 1}}),
		                            (Shape){3, {outer, B, inner}}),
		               (Shape){1, {size}});
	Shape s = {x->sh.rank, {0}};
	for (int i = 0; i < s.rank; i++)
		s.d[i] = i == axis ? size : 1;
	return ir_reshape(G, m, s);
}

/* 1 / sqrt(var + eps): a value per channel or row, so that normalizing is a full-size
 * multiply rather than a division */
static Node *rsqrt_eps(Lower *L, Node *var, double eps)
{
	return ir_div(G, scalar(L, 1),
	              ir_unary(G, OP_SQRT, ir_add(G, var, scalar(L, eps))));
}

/* Mean and (biased) variance over the axes, counting only real rows. */
static void moments(Lower *L, Node *x, uint32_t axes, Node **mean, Node **var,
                    Node **count)
{
	/* the batch on axis 0, alone or merged there (dense's [B*T, n], time-major
	 * [T*B, n]): k values an example */
	int64_t k = 1;
	Node *m = mask_along(L, x, 0, &k);
	int64_t per = 1;
	for (int i = 0; i < x->sh.rank; i++)
		if (axes >> i & 1 && !(i == 0 && m))
			per *= x->sh.d[i];
	Node *cnt = m ? ir_mul(G, ir_sum_all(G, L->mask), scalar(L, (double)(per * k)))
	              : scalar(L, (double)per);
	/* selects: a padding row's value may be infinite */
	Node *zero = scalar(L, 0), *xm = m ? ir_select(G, m, ir_mul(G, x, m), zero) : x;
	*mean = ir_div(G, ir_sum(G, xm, axes, 1), cnt);
	Node *d = ir_sub(G, x, *mean);
	Node *d2 = ir_mul(G, d, d);
	*var = ir_div(
	    G, ir_sum(G, m ? ir_select(G, m, ir_mul(G, d2, m), zero) : d2, axes, 1), cnt);
	*count = cnt;
}

/* Batch statistics in training (and running statistics updated, PyTorch's momentum
 * and unbiased running variance), running statistics in evaluation. Over the batch
 * for [batch, features], over batch, height and width for NCHW. */
BUILD(batch_norm)
{
	UNUSED;
	Node *x = a[0];
	if (!x)
		return NULL;
	if (x->sh.rank != 2 && x->sh.rank != 4)
		return error(L, call,
		             "batch_norm needs [batch, features] or [batch, channels, h, "
		             "w]"),
		       NULL;
	L->mode_dependent = 1;
	int64_t C = x->sh.d[1];
	double mom = kwf(kw, 0, 0.1), eps = kwf(kw, 1, 1e-5);
	if (L->train && kw[0].set && mom > 0.5) /* (once: the evaluation lowering too) */
		diag_add(
		    L->d, SEV_WARNING, kw[0].loc,
		    "batch_norm's momentum is PyTorch's, the new batch's weight: %g "
		    "keeps %g of the running statistics each step (Keras' momentum %g "
		    "is PyTorch's %g)",
		    mom, 1 - mom, mom, 1 - mom);
	Shape cs = {1, {C}},
	      bs = x->sh.rank == 4 ? (Shape){3, {C, 1, 1}} : (Shape){1, {C}};
	uint32_t axes = x->sh.rank == 4 ? 0xd : 0x1;
	Node *w = lower_param(L, "weight", cs, RT_INIT_ONES, 0, C, C, 1, call->loc);
	Node *b = lower_param(L, "bias", cs, RT_INIT_ZEROS, 0, C, C, 1, call->loc);
	Node *rm =
	    lower_param(L, "running_mean", cs, RT_INIT_ZEROS, 0, C, C, 0, call->loc);
	Node *rv = lower_param(L, "running_var", cs, RT_INIT_ONES, 0, C, C, 0, call->loc);
	Node *nb = lower_param(L, "num_batches_tracked", (Shape){0, {0}}, RT_INIT_ZEROS,
	                       0, 1, 1, 0, call->loc);
	Node *mean, *var;
	if (L->train) {
		Node *cnt;
		moments(L, x, axes, &mean, &var, &cnt);
		Node *m1 = ir_reshape(G, mean, cs),
		     *unbiased = ir_reshape(
		         G,
		         ir_div(G, ir_mul(G, var, cnt),
		                ir_binary(G, OP_MAX, ir_sub(G, cnt, scalar(L, 1)),
		                          scalar(L, 1))),
		         cs);
		Node *keep = scalar(L, 1 - mom), *take = scalar(L, mom);
		lower_update(L, rm,
		             ir_add(G, ir_mul(G, keep, rm),
		                    ir_mul(G, take, ir_unary(G, OP_STOPGRAD, m1))));
		lower_update(L, rv,
		             ir_add(G, ir_mul(G, keep, rv),
		                    ir_mul(G, take, ir_unary(G, OP_STOPGRAD, unbiased))));
		lower_update(L, nb, ir_add(G, nb, scalar(L, 1)));
	} else {
		mean = ir_reshape(G, rm, bs);
		var = ir_reshape(G, rv, bs);
	}
	/* (x - mean) times a scale per channel, w / sqrt(var + eps), as PyTorch's CPU
	 * kernel computes it: a division of the full-size x - mean, then a product
	 * with w, and their gradients, took 12% longer a step over a 3 x 3
	 * convolution's [64, 32, 16, 16] output */
	Node *scale = ir_mul(G, rsqrt_eps(L, var, eps), ir_reshape(G, w, bs));
	return ir_add(G, ir_mul(G, ir_sub(G, x, mean), scale), ir_reshape(G, b, bs));
}

/* Normalizes over the last axis, with weight and bias of its size. */
BUILD(layer_norm)
{
	UNUSED;
	Node *x = a[0];
	if (!x)
		return NULL;
	if (x->sh.rank < 1)
		return error(L, call, "layer_norm needs at least one axis"), NULL;
	int64_t F = x->sh.d[x->sh.rank - 1];
	uint32_t last = 1u << (x->sh.rank - 1);
	Node *w = lower_param(L, "weight", (Shape){1, {F}}, RT_INIT_ONES, 0, F, F, 1,
	                      call->loc);
	Node *b =
	    lower_param(L, "bias", (Shape){1, {F}}, RT_INIT_ZEROS, 0, F, F, 1, call->loc);
	Node *mean = ir_mean(G, x, last, 1), *d = ir_sub(G, x, mean);
	Node *var = ir_mean(G, ir_mul(G, d, d), last, 1);
	Node *xhat = ir_mul(G, d, rsqrt_eps(L, var, kwf(kw, 0, 1e-5)));
	return ir_add(G, ir_mul(G, xhat, w), b);
}

/* Rows of a [num_embeddings, embedding_dim] table, N(0, 1) like PyTorch's. */
BUILD(embedding)
{
	UNUSED;
	Node *idx = a[0];
	if (!idx)
		return NULL;
	if (idx->dt != DT_I32)
		return error(
		           L, call,
		           "embedding takes integer indices (an input with dtype: i32)"),
		       NULL;
	int64_t V = (int64_t)kw[0].f, D = (int64_t)kw[1].f;
	Node *w = lower_param(L, "weight", (Shape){2, {V, D}}, RT_INIT_NORMAL, 1, V, D, 1,
	                      call->loc);
	return ir_gather(G, w, idx);
}

/* ---- losses ---- */

/* Per-example losses (shape [batch, ...]) to one number: the mean (or sum) over the
 * real rows and, for the mean, over the other axes, as PyTorch's reduction='mean'. */
static Node *reduce_loss(Lower *L, const KwVal *red, Node *l)
{
	if (!l)
		return NULL;
	int sum = red->set && red->e == 1;
	int64_t k, inner; /* the batch wherever it is (mse(transpose(h), transpose(t))) */
	Node *m = mask_along(L, l, batch_axis(L, l, &inner), &k);
	if (!m)
		return sum ? ir_sum_all(G, l) : ir_mean(G, l, (1u << l->sh.rank) - 1, 0);
	/* a select: a padding row's loss may be infinite (log of a zero row) */
	Node *total = ir_sum_all(G, ir_select(G, m, ir_mul(G, l, m), scalar(L, 0)));
	if (sum)
		return total;
	double per = (double)(shape_numel(&l->sh) / L->batch);
	return ir_div(G, total, ir_mul(G, ir_sum_all(G, L->mask), scalar(L, per)));
}

static int same_shape(Lower *L, const Expr *call, Node *p, Node *t)
{
	char s1[128], s2[128];
	if (shape_eq(&p->sh, &t->sh))
		return 0;
	return error(L, call, "%s: the prediction has shape %s but the target has %s",
	             call->name, shape_str(&p->sh, s1, sizeof s1),
	             shape_str(&t->sh, s2, sizeof s2));
}

/* Prediction and target as floats of one shape (a [batch] target fits [batch, 1]). */
static int pred_target(Lower *L, const Expr *call, Node **a)
{
	if (!a[0] || !a[1])
		return -1;
	if (a[1]->dt != DT_F32)
		return error(L, call, "%s needs a floating-point target (dtype f32)",
		             call->name);
	if (!shape_eq(&a[0]->sh, &a[1]->sh) &&
	    shape_numel(&a[0]->sh) == shape_numel(&a[1]->sh))
		a[1] = ir_reshape(G, a[1], a[0]->sh);
	return same_shape(L, call, a[0], a[1]);
}

BUILD(mse)
{
	UNUSED;
	if (pred_target(L, call, a) < 0)
		return NULL;
	Node *d = ir_sub(G, a[0], a[1]);
	return reduce_loss(L, &kw[0], ir_mul(G, d, d));
}

BUILD(l1)
{
	UNUSED;
	if (pred_target(L, call, a) < 0)
		return NULL;
	return reduce_loss(L, &kw[0], ir_unary(G, OP_ABS, ir_sub(G, a[0], a[1])));
}

/* 0.5 d^2 where |d| < delta, else delta (|d| - delta / 2) */
BUILD(huber)
{
	UNUSED;
	if (pred_target(L, call, a) < 0)
		return NULL;
	double delta = kwf(kw, 1, 1.0);
	Node *d = ir_sub(G, a[0], a[1]), *ad = ir_unary(G, OP_ABS, d);
	Node *quad = ir_mul(G, scalar(L, 0.5), ir_mul(G, d, d));
	Node *lin = ir_mul(G, scalar(L, delta), ir_sub(G, ad, scalar(L, delta / 2)));
	return reduce_loss(
	    L, &kw[0],
	    ir_select(G, ir_binary(G, OP_GT, scalar(L, delta), ad), quad, lin));
}

/* The log-probabilities a cross-entropy takes: log_softmax of the logits. A softmax
 * layer right before the loss is seen through (as Keras does), so its output's
 * log-probabilities come from the logits, stably. */
static Node *log_probs(Lower *L, Node *x)
{
	if (x->op == OP_EXP && x->in[0]->op == OP_LOGSOFTMAX)
		return x->in[0];
	return ir_logsoftmax(G, x);
}

/* Targets as a distribution [batch, C]: class indices one-hot, or probabilities as
 * given; label smoothing mixes in the uniform distribution. */
static Node *target_dist(Lower *L, const Expr *call, Node *logits, Node *t, double smooth)
{
	char s1[128], s2[128];
	if (logits->sh.rank < 1) /* (fuzz_model: nll(9, t)) */
		return error(L, call,
		             "%s needs scores with a last axis of classes, got a single "
		             "number",
		             call->name),
		       NULL;
	int64_t C = logits->sh.d[logits->sh.rank - 1];
	Shape rows = logits->sh;
	rows.rank--;
	if (t->dt == DT_I32) {
		if (!shape_eq(&t->sh, &rows))
			return error(
			           L, call,
			           "%s: class indices of shape %s do not fit scores %s%s",
			           call->name, shape_str(&t->sh, s1, sizeof s1),
			           shape_str(&logits->sh, s2, sizeof s2),
			           t->sh.rank == 1 && logits->sh.rank > 2
			               ? " (a flatten missing before the last dense "
			                 "layer, "
			                 "which acts on the last axis as "
			                 "torch.nn.Linear? or a "
			                 "target declared without the scores' middle "
			                 "axes?)"
			               : ""),
			       NULL;
		t = ir_onehot(G, t, C);
	} else if (same_shape(L, call, logits, t) < 0) {
		return NULL;
	}
	if (smooth > 0)
		t = ir_add(G, ir_mul(G, t, scalar(L, 1 - smooth)),
		           scalar(L, smooth / (double)C));
	return t;
}

/* -sum_c target_c log_softmax(logits)_c, per example */
BUILD(softmax_cross_entropy)
{
	UNUSED;
	if (!a[0] || !a[1])
		return NULL;
	char s[128];
	if (a[0]->sh.rank < 1 || a[0]->sh.d[a[0]->sh.rank - 1] < 2)
		return error(L, call,
		             "%s needs scores for at least 2 classes on the last axis, "
		             "got %s",
		             call->name, shape_str(&a[0]->sh, s, sizeof s)),
		       NULL;
	Node *t = target_dist(L, call, a[0], a[1], kwf(kw, 1, 0));
	if (!t)
		return NULL;
	uint32_t last = 1u << (a[0]->sh.rank - 1);
	Node *per = ir_neg(G, ir_sum(G, ir_mul(G, t, log_probs(L, a[0])), last, 0));
	return reduce_loss(L, &kw[0], per);
}

/* -sum_c target_c x_c: x already holds log-probabilities (a softmax's probabilities,
 * PyTorch's softmax-then-NLLLoss slip, trained to a loss below 0 without a word) */
BUILD(nll)
{
	UNUSED;
	if (!a[0] || !a[1])
		return NULL;
	if (a[0]->op == OP_EXP && a[0]->in[0]->op == OP_LOGSOFTMAX)
		diag_add(
		    L->d, SEV_WARNING, call->loc,
		    "nll takes log-probabilities, and its input is a softmax's "
		    "probabilities: use log_softmax, or softmax_cross_entropy on the "
		    "scores");
	Node *t = target_dist(L, call, a[0], a[1], 0);
	if (!t)
		return NULL;
	uint32_t last = 1u << (a[0]->sh.rank - 1);
	return reduce_loss(L, &kw[0], ir_neg(G, ir_sum(G, ir_mul(G, t, a[0]), last, 0)));
}

/* softplus(x) - x t: log(1 + e^x) computed without overflow. A sigmoid layer right
 * before it is seen through, as a softmax is before a cross-entropy (and as Keras'
 * binary_crossentropy does): Keras' Dense(1, activation='sigmoid') with its loss had
 * the sigmoid applied twice. */
BUILD(binary_cross_entropy_with_logits)
{
	UNUSED;
	if (pred_target(L, call, a) < 0)
		return NULL;
	Node *x = a[0]->op == OP_SIGMOID ? a[0]->in[0] : a[0];
	Node *l = ir_sub(G, ir_unary(G, OP_SOFTPLUS, x), ir_mul(G, x, a[1]));
	return reduce_loss(L, &kw[0], l);
}

/* sum of squares of the given values, or of every trainable weight of a product
 * (dense, conv2d, embedding: ".weight" of 2 axes or more, Keras' kernels), not of a
 * normalization's scale (batch_norm's and layer_norm's ".weight" of one axis, which the
 * penalty pulled toward 0) */
BUILD(l2)
{
	UNUSED;
	Node *s = NULL;
	for (int i = 0; i < na; i++)
		s = s ? ir_add(G, s, ir_sum_all(G, ir_mul(G, a[i], a[i])))
		      : ir_sum_all(G, ir_mul(G, a[i], a[i]));
	for (int i = 0; !na && i < G->nparams; i++) {
		const char *nm = G->params[i].name, *dot = strrchr(nm, '.');
		if (!G->params[i].trainable || !dot || strcmp(dot, ".weight") ||
		    G->params[i].sh.rank < 2)
			continue;
		Node *p = ir_param(G, i), *q = ir_sum_all(G, ir_mul(G, p, p));
		s = s ? ir_add(G, s, q) : q;
	}
	return s ? s : scalar(L, 0);
}

/* grad(f, p): d f / d p as a value, so a loss can hold gradients (a gradient penalty,
 * a Hessian-vector product); the backward graph is differentiated again. */
BUILD(grad)
{
	UNUSED;
	Node *f = lower_expr(L, &*((const Expr *)call->args[0]));
	Node *p = lower_expr(L, call->args[1]);
	if (!f || !p)
		return NULL;
	char s[128];
	if (f->sh.rank != 0)
		return error(L, call,
		             "grad: the function must be a single number, got shape %s",
		             shape_str(&f->sh, s, sizeof s)),
		       NULL;
	if (p->op != OP_PARAM)
		return error(L, call->args[1], "grad: '%s' is not a parameter",
		             expr_str(G->A, call->args[1])),
		       NULL;
	lower_differentiated(L, f);
	Node *out;
	if (ad_backward(G, f, &p, 1, &out) < 0)
		return NULL;
	return out ? out : ir_const(G, 0, p->sh);
}

/* ---- the table ---- */

#define KW_INT(n, lo, hi)                                                                \
	{                                                                                \
		n, K_INT, lo, hi, NULL, 0                                                \
	}
#define KW_NEED(n, lo, hi)                                                               \
	{                                                                                \
		n, K_INT, lo, hi, NULL, 1                                                \
	}
#define KW_NUM(n, lo, hi)                                                                \
	{                                                                                \
		n, K_NUM, lo, hi, NULL, 0                                                \
	}
#define KW_BOOL(n)                                                                       \
	{                                                                                \
		n, K_BOOL, 0, 0, bool_names, 0                                           \
	}
#define KW_ENUM(n, names)                                                                \
	{                                                                                \
		n, K_ENUM, 0, 0, names, 0                                                \
	}
#define KW_INTS(n, lo, hi)                                                               \
	{                                                                                \
		n, K_INTS, lo, hi, NULL, 0                                               \
	}
#define KW_PAIR(n, req)                                                                  \
	{                                                                                \
		n, K_PAIR, 1, 1 << 16, NULL, req                                         \
	}
#define KW_PAD(n)                                                                        \
	{                                                                                \
		n, K_PADDING, 0, 1 << 20, NULL, 0                                        \
	}
#define BIG (1 << 30)
#define RED KW_ENUM("reduction", reduction_names)

static const Fun funs[] = {
    /* activations */
    {"relu", 1, 1, {{0}}, build_relu, 0, NULL},
    {"sigmoid", 1, 1, {{0}}, build_sigmoid, 0, NULL},
    {"tanh", 1, 1, {{0}}, build_tanh, 0, NULL},
    {"softmax", 1, 1, {{0}}, build_softmax, 0, NULL},
    {"log_softmax", 1, 1, {{0}}, build_log_softmax, 0, NULL},
    {"leaky_relu", 1, 1, {KW_NUM("negative_slope", 0, 1)}, build_leaky_relu, 0, NULL},
    {"elu", 1, 1, {KW_NUM("alpha", 0, 1e6)}, build_elu, 0, NULL},
    {"gelu", 1, 1, {KW_ENUM("approximate", gelu_names)}, build_gelu, 0, NULL},
    {"silu", 1, 1, {{0}}, build_silu, 0, NULL},
    {"softplus", 1, 1, {{0}}, build_softplus, 0, NULL},
    /* math */
    {"exp", 1, 1, {{0}}, build_exp, 0, NULL},
    {"log", 1, 1, {{0}}, build_log, 0, NULL},
    {"sqrt", 1, 1, {{0}}, build_sqrt, 0, NULL},
    {"abs", 1, 1, {{0}}, build_abs, 0, NULL},
    {"sin", 1, 1, {{0}}, build_sin, 0, NULL},
    {"cos", 1, 1, {{0}}, build_cos, 0, NULL},
    {"erf", 1, 1, {{0}}, build_erf, 0, NULL},
    {"pow", 2, 2, {{0}}, build_pow, 0, NULL},
    {"where", 3, 3, {{0}}, build_where, 0, NULL},
    {"matmul", 2, 2, {{0}}, build_matmul, 0, NULL},
    {"max",
     1,
     2,
     {KW_INTS("axis", -MAXRANK, MAXRANK - 1), KW_BOOL("keepdims")},
     build_max,
     0,
     NULL},
    {"min",
     1,
     2,
     {KW_INTS("axis", -MAXRANK, MAXRANK - 1), KW_BOOL("keepdims")},
     build_min,
     0,
     NULL},
    {"sum",
     1,
     1,
     {KW_INTS("axis", -MAXRANK, MAXRANK - 1), KW_BOOL("keepdims")},
     build_sum,
     0,
     NULL},
    {"mean",
     1,
     1,
     {KW_INTS("axis", -MAXRANK, MAXRANK - 1), KW_BOOL("keepdims")},
     build_mean,
     0,
     NULL},
    {"transpose",
     1,
     1,
     {{"perm", K_SHAPE, 0, MAXRANK - 1, NULL, 0}},
     build_transpose,
     0,
     NULL},
    {"stop_gradient", 1, 1, {{0}}, build_stop_gradient, 0, NULL},
    {"argmax", 1, 1, {{0}}, build_argmax, 0, NULL},
    {"one_hot", 1, 1, {KW_NEED("num_classes", 1, BIG)}, build_one_hot, 0, NULL},
    {"grad", 2, 2, {{0}}, build_grad, FUN_RAW, NULL},
    /* shapes */
    {"reshape", 1, 1, {{"shape", K_SHAPE, -1, BIG, NULL, 1}}, build_reshape, 0, NULL},
    {"flatten", 1, 1, {{0}}, build_flatten, 0, NULL},
    {"concat", 1, -1, {KW_INTS("axis", -MAXRANK, MAXRANK - 1)}, build_concat, 0, NULL},
    {"add", 2, -1, {{0}}, build_add, 0, NULL}, /* (- add without with: was x) */
    /* layers */
    {"dense",
     1,
     1,
     {KW_NEED("units", 1, BIG), KW_ENUM("activation", act_names), KW_BOOL("bias"),
      KW_ENUM("init", init_names), KW_BOOL("trainable")},
     build_dense,
     FUN_LAYER,
     "fc"},
    {"conv2d",
     1,
     1,
     {KW_NEED("out_channels", 1, BIG), KW_PAIR("kernel_size", 1), KW_PAIR("stride", 0),
      KW_PAD("padding"), KW_PAIR("dilation", 0), KW_INT("groups", 1, BIG),
      KW_BOOL("bias"), KW_ENUM("activation", act_names), KW_ENUM("init", init_names),
      KW_BOOL("trainable")},
     build_conv2d,
     FUN_LAYER,
     "conv"},
    {"max_pool2d",
     1,
     1,
     {KW_PAIR("kernel_size", 1), KW_PAIR("stride", 0), KW_PAD("padding")},
     build_max_pool2d,
     0,
     "pool"},
    {"avg_pool2d",
     1,
     1,
     {KW_PAIR("kernel_size", 1), KW_PAIR("stride", 0), KW_PAD("padding")},
     build_avg_pool2d,
     0,
     "pool"},
    {"global_avg_pool", 1, 1, {{0}}, build_global_avg_pool, 0, "pool"},
    {"dropout", 1, 1, {KW_NUM("p", 0, 0.999999)}, build_dropout, 0, "dropout"},
    {"batch_norm",
     1,
     1,
     {KW_NUM("momentum", 0, 1), KW_NUM("eps", 1e-12, 1)},
     build_batch_norm,
     FUN_LAYER,
     "bn"},
    {"layer_norm", 1, 1, {KW_NUM("eps", 1e-12, 1)}, build_layer_norm, FUN_LAYER, "ln"},
    {"embedding",
     1,
     1,
     {KW_NEED("num_embeddings", 1, BIG), KW_NEED("embedding_dim", 1, BIG)},
     build_embedding,
     FUN_LAYER,
     "emb"},
    /* losses */
    {"mse", 2, 2, {RED}, build_mse, FUN_LOSS, NULL},
    {"l1", 2, 2, {RED}, build_l1, FUN_LOSS, NULL},
    {"huber", 2, 2, {RED, KW_NUM("delta", 1e-12, 1e12)}, build_huber, FUN_LOSS, NULL},
    {"softmax_cross_entropy",
     2,
     2,
     {RED, KW_NUM("label_smoothing", 0, 1)},
     build_softmax_cross_entropy,
     FUN_LOSS,
     NULL},
    {"binary_cross_entropy_with_logits",
     2,
     2,
     {RED},
     build_binary_cross_entropy_with_logits,
     FUN_LOSS,
     NULL},
    {"nll", 2, 2, {RED}, build_nll, FUN_LOSS, NULL},
    {"l2", 0, -1, {{0}}, build_l2, 0, NULL},
};

#define NFUNS ((int)(sizeof funs / sizeof funs[0]))

const Fun *fun_lookup(const char *name)
{
	for (int i = 0; i < NFUNS; i++)
		if (!strcmp(funs[i].name, name))
			return &funs[i];
	return NULL;
}

const char *const *fun_names(int *n)
{
	static const char *names[NFUNS];
	for (int i = 0; i < NFUNS; i++)
		names[i] = funs[i].name;
	*n = NFUNS;
	return names;
}
