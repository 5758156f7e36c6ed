/* Rewrites at build time: every builder asks fold() first, so simplifications and
 * stability rewrites apply to the forward graph, the backward graph and any graph built
 * from those, with no separate pass and no change to the topological order (a rewrite
 * only ever returns existing nodes or builds new ones from them).
 *
 *   algebra      x + 0, x - 0, x * 1, x / 1, x ^ 1 -> x;  -(-x) -> x
 *   powers       x ^ 2, 3, 4 -> products;  x ^ 0.5 -> sqrt x;  x ^ -1, -2, -0.5 ->
 *                1 / those (pow at -0 and -inf aside: sqrt(-0) is -0, sqrt(-inf) NaN)
 *   constants    an op on scalar constants is a constant
 *   stability    log(exp x) -> x                  (so log(softmax x) -> log_softmax x)
 *                log(1 + exp x) -> softplus x
 *                log(sigmoid x) -> -softplus(-x)
 *   pooling      scatter(x, g) * step x -> scatter(x, g * step(maxpool x))
 *                                        (a relu's mask on a max pool's gradient)
 *   layout       matmul(transpose a, b) -> matmul a, b with a's flag flipped (and b's
 *                                        likewise): the kernels read either layout
 *                transpose(transpose x) -> one transpose, or x
 *
 * A rewrite only applies when the result has the shape the node would have had.
 */
#include <math.h>

#include "dc.h"

static int is_const(const Node *n, double v)
{
	while (n->op == OP_RESHAPE || n->op == OP_BROADCAST)
		n = n->in[0];
	return n->op == OP_CONST && n->f == v;
}

static int scalar_const(const Node *n) { return n->op == OP_CONST && n->sh.rank == 0; }

/* x stands for the node being built only if it already has the result's shape. */
static Node *same(Node *x, Node *a, Node *b)
{
	Shape out;
	if (shape_bcast(&a->sh, &b->sh, &out) < 0 || !shape_eq(&out, &x->sh))
		return NULL;
	return x;
}

static double fold_value(Op op, double a, double b)
{
	switch (op) {
	case OP_NEG:
		return -a;
	case OP_EXP:
		return exp(a);
	case OP_SQRT:
		return sqrt(a);
	case OP_LOG:
		return log(a);
	case OP_ADD:
		return a + b;
	case OP_SUB:
		return a - b;
	case OP_MUL:
		return a * b;
	case OP_DIV:
		return a / b;
	case OP_POW:
		return pow(a, b);
	default:
		return NAN;
	}
}

static Node *fold_log(Graph *g, Node *x)
{
	if (x->op == OP_EXP)
		return x->in[0];
	if (x->op == OP_SIGMOID)
		return ir_neg(g, ir_unary(g, OP_SOFTPLUS, ir_neg(g, x->in[0])));
	if (x->op == OP_ADD)
		for (int i = 0; i < 2; i++) {
			Node *one = x->in[i], *e = x->in[1 - i];
			if (is_const(one, 1) && e->op == OP_EXP &&
			    shape_eq(&e->sh, &x->sh))
				return ir_unary(g, OP_SOFTPLUS, e->in[0]);
		}
	return NULL;
}

/* scatter(x, g) * (x > 0) -> scatter(x, g * (maxpool x > 0)): the scatter is 0 but at
 * each window's maximum, where x is the pooled value. A relu before a max pool masks
 * the pool's gradient this way: the mask then goes over the pooled values, 4 times
 * fewer for 2 x 2 windows, before the scatter instead of after it. */
static Node *fold_pool_mask(Graph *g, Node *a, Node *b)
{
	if (a->op == OP_STEP) {
		Node *t = a;
		a = b, b = t;
	}
	if (a->op != OP_POOLMAX_SCATTER || b->op != OP_STEP || b->in[0] != a->in[0] ||
	    !shape_eq(&a->sh, &b->sh))
		return NULL;
	PoolP p = poolp_of(a);
	Node *x = a->in[0], *pooled = ir_poolmax(g, 0, x, x, &p);
	Node *masked = ir_mul(g, a->in[1], ir_unary(g, OP_STEP, pooled));
	/* the mask is the relu's rule's, the scatter still the pool's gradient: a's
	 * place, rule and layer, for the IR and the profile */
	Stamp old = ir_stamp(g, (Stamp){a->loc, a->fwd, a->rule, a->label});
	Node *r = ir_poolmax(g, 1, x, masked, &p);
	ir_stamp(g, old);
	return r;
}

/* x ^ c for the constants c whose power is a product, a square root or a division:
 * vector instructions, where pow is a call into libm for each element */
static Node *fold_pow(Graph *g, Node *x, Node *c)
{
	if (is_const(c, 1))
		return x;
	if (is_const(c, 2))
		return ir_mul(g, x, x);
	if (is_const(c, 3))
		return ir_mul(g, x, ir_mul(g, x, x));
	if (is_const(c, 4))
		return ir_mul(g, ir_mul(g, x, x), ir_mul(g, x, x));
	if (is_const(c, 0.5))
		return ir_unary(g, OP_SQRT, x);
	if (is_const(c, -1))
		return ir_div(g, ir_scalar(g, 1), x);
	/* not -2: as 1 / (x x) its gradient at 0 was NaN (the product rule's 0 times
	 * -inf), as (1/x)^2 it was NaN on a where branch not taken (0 times 1/0); pow's
	 * own rule gives torch's -inf, and 0 there */
	if (is_const(c, -0.5))
		return ir_div(g, ir_scalar(g, 1), ir_unary(g, OP_SQRT, x));
	return NULL;
}

static Node *fold_binary(Graph *g, Op op, Node *a, Node *b)
{
	switch (op) {
	case OP_ADD:
		if (is_const(b, 0))
			return same(a, a, b);
		if (is_const(a, 0))
			return same(b, a, b);
		return NULL;
	case OP_SUB:
		return is_const(b, 0) ? same(a, a, b) : NULL;
	case OP_MUL:
		if (is_const(b, 1))
			return same(a, a, b);
		if (is_const(a, 1))
			return same(b, a, b);
		return fold_pool_mask(g, a, b);
	case OP_DIV:
		return is_const(b, 1) ? same(a, a, b) : NULL;
	case OP_POW:
		return same(a, a, b) ? fold_pow(g, a, b) : NULL;
	default:
		return NULL;
	}
}

/* A product with a constant matrix (grad(f, p) of an f that does not depend on p is
 * one, of zeros), which the kernels cannot read, having no buffer: with c filled with
 * v, x c sums x's rows (v times the sum over k of x[i, k], every column alike) and c x
 * its columns. */
static Node *fold_const_product(Graph *g, Node **in, const int64_t *attrs)
{
	int c = in[1]->op == OP_CONST; /* the constant operand */
	Node *x = in[1 - c];
	if (x->sh.rank != 2 || in[c]->sh.rank != 2)
		return NULL; /* the node reports the shape error */
	int tx = (int)attrs[1 - c], tc = (int)attrs[c];
	int64_t k = x->sh.d[c ? (tx ? 0 : 1) : (tx ? 1 : 0)],
	        kc = in[c]->sh.d[c ? (tc ? 1 : 0) : (tc ? 0 : 1)],
	        other = in[c]->sh.d[c ? (tc ? 0 : 1) : (tc ? 1 : 0)];
	if (k != kc)
		return NULL;
	/* x's sums over k, as a column (x c) or a row (c x) */
	int axis = c ? (tx ? 0 : 1) : (tx ? 1 : 0);
	Node *s = ir_sum(g, x, 1u << axis, 1);
	if ((c && axis == 0) || (!c && axis == 1)) {
		int perm[2] = {1, 0};
		s = ir_transpose(g, s, perm);
	}
	s = ir_mul(g, s, ir_scalar(g, in[c]->f));
	Shape out = c ? (Shape){2, {s->sh.d[0], other}} : (Shape){2, {other, s->sh.d[1]}};
	return ir_broadcast(g, s, out);
}

/* A matrix transposed, as matmul's flag instead of a copy; a transpose of a
 * transpose, composed (ir_transpose drops an identity). */
static Node *fold_layout(Graph *g, Op op, Node **in, const int64_t *attrs)
{
	if (op == OP_TRANSPOSE && in[0]->op == OP_TRANSPOSE) {
		int perm[MAXRANK];
		for (int i = 0; i < in[0]->sh.rank; i++)
			perm[i] = (int)in[0]->a[attrs[i]];
		return ir_transpose(g, in[0]->in[0], perm);
	}
	if (op != OP_MATMUL)
		return NULL;
	if (in[0]->op == OP_CONST || in[1]->op == OP_CONST)
		return fold_const_product(g, in, attrs);
	Node *x[2];
	int t[2], any = 0;
	/* a 2-D transpose swaps the axes (others are matmul's shape error) */
	for (int i = 0; i < 2; i++) {
		int tr = in[i]->op == OP_TRANSPOSE && in[i]->sh.rank == 2;
		x[i] = tr ? in[i]->in[0] : in[i];
		t[i] = (int)attrs[i] ^ tr;
		any |= tr;
	}
	/* only a product that is well formed: a rewrite that failed would report the
	 * shape error that the node itself then reports again */
	if (!any || x[0]->sh.rank != 2 || x[1]->sh.rank != 2 ||
	    x[0]->sh.d[t[0] ? 0 : 1] != x[1]->sh.d[t[1] ? 1 : 0])
		return NULL;
	return ir_matmul(g, x[0], x[1], t[0], t[1]);
}

Node *fold(Graph *g, Op op, Node **in, const int64_t *attrs, double f, const Shape *sh)
{
	(void)f, (void)sh;
	if ((op == OP_MATMUL || op == OP_TRANSPOSE) && attrs)
		return fold_layout(g, op, in, attrs);
	int fl = opinfo[op].flags;
	if (!(fl & OPF_ELEMWISE))
		return NULL;
	int nin = opinfo[op].nin;
	if (nin == 1 && scalar_const(in[0]) && !isnan(fold_value(op, in[0]->f, 0)))
		return ir_scalar(g, fold_value(op, in[0]->f, 0));
	if (nin == 2 && scalar_const(in[0]) && scalar_const(in[1]) &&
	    !isnan(fold_value(op, in[0]->f, in[1]->f)))
		return ir_scalar(g, fold_value(op, in[0]->f, in[1]->f));
	if (op == OP_NEG && in[0]->op == OP_NEG)
		return in[0]->in[0];
	if (op == OP_LOG)
		return fold_log(g, in[0]);
	if (nin == 2)
		return fold_binary(g, op, in[0], in[1]);
	return NULL;
}
