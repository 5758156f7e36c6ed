/* Shape inference: one function per op, shape_<name>, expanded into a table from ops.h.
 *
 * Each sets n->sh and n->dt from the node's inputs and attributes, or records an error at
 * the node's source location naming the shapes involved and returns -1. Ops whose shape
 * is given by the builder (CONST, BROADCAST, RESHAPE) only check it.
 */
#include "dc.h"

#define SHAPE(name) static int shape_##name(Graph *g, Node *n)

static int fail(Graph *g, Node *n, const char *fmt, const Shape *a, const Shape *b)
{
	char sa[128], sb[128];
	error_at(g->diags, n->loc, fmt, shape_str(a, sa, sizeof sa),
	         b ? shape_str(b, sb, sizeof sb) : "");
	return -1;
}

int shape_bcast(const Shape *a, const Shape *b, Shape *out)
{
	int r = a->rank > b->rank ? a->rank : b->rank;
	out->rank = r;
	for (int i = 0; i < r; i++) {
		int ia = i - (r - a->rank), ib = i - (r - b->rank);
		int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
		if (da != db && da != 1 && db != 1)
			return -1;
		out->d[i] = da == 1 ? db : da;
	}
	return 0;
}

static int need_f32(Graph *g, Node *n, Node *x)
{
	if (x->dt == DT_F32)
		return 0;
	error_at(g->diags, n->loc, "%s expects floating-point values, got integers",
	         opinfo[n->op].name);
	return -1;
}

SHAPE(input)
{
	n->sh = g->ios[n->a[0]].sh;
	n->dt = g->ios[n->a[0]].dt;
	return 0;
}

SHAPE(param)
{
	n->sh = g->params[n->a[0]].sh;
	return 0;
}

SHAPE(state)
{
	n->sh = g->states[n->a[0]].sh;
	return 0;
}

SHAPE(gradbuf)
{
	n->sh = g->params[n->a[0]].sh;
	return 0;
}

SHAPE(hyper)
{
	(void)g;
	n->sh.rank = 0;
	return 0;
}

SHAPE(const)
{
	(void)g;
	(void)n;
	return 0;
}

static int unary(Graph *g, Node *n)
{
	n->sh = n->in[0]->sh;
	return need_f32(g, n, n->in[0]);
}

SHAPE(neg)
{
	return unary(g, n);
}
SHAPE(exp)
{
	return unary(g, n);
}
SHAPE(log)
{
	return unary(g, n);
}
SHAPE(sqrt)
{
	return unary(g, n);
}
SHAPE(relu)
{
	return unary(g, n);
}
SHAPE(sigmoid)
{
	return unary(g, n);
}
SHAPE(tanh)
{
	return unary(g, n);
}
SHAPE(step)
{
	return unary(g, n);
}

static int binary(Graph *g, Node *n)
{
	if (need_f32(g, n, n->in[0]) < 0 || need_f32(g, n, n->in[1]) < 0)
		return -1;
	if (shape_bcast(&n->in[0]->sh, &n->in[1]->sh, &n->sh) < 0)
		return fail(g, n, "shapes %s and %s do not broadcast", &n->in[0]->sh,
		            &n->in[1]->sh);
	return 0;
}

SHAPE(add)
{
	return binary(g, n);
}
SHAPE(sub)
{
	return binary(g, n);
}
SHAPE(mul)
{
	return binary(g, n);
}
SHAPE(div)
{
	return binary(g, n);
}

SHAPE(sum)
{
	Node *x = n->in[0];
	if (n->a[0] >> x->sh.rank)
		die("sum over an axis the input does not have (node of rank %d)",
		    x->sh.rank);
	n->sh = x->sh;
	for (int i = 0; i < x->sh.rank; i++)
		if (n->a[0] >> i & 1)
			n->sh.d[i] = 1;
	return need_f32(g, n, x);
}

SHAPE(broadcast)
{
	Shape out;
	if (shape_bcast(&n->in[0]->sh, &n->sh, &out) < 0 || !shape_eq(&out, &n->sh))
		return fail(g, n, "cannot broadcast %s to %s", &n->in[0]->sh, &n->sh);
	return need_f32(g, n, n->in[0]);
}

SHAPE(reshape)
{
	n->dt = n->in[0]->dt;
	if (shape_numel(&n->sh) != shape_numel(&n->in[0]->sh))
		return fail(g, n, "cannot reshape %s to %s: sizes differ", &n->in[0]->sh,
		            &n->sh);
	return 0;
}

SHAPE(matmul)
{
	const Shape *a = &n->in[0]->sh, *b = &n->in[1]->sh;
	if (a->rank != 2 || b->rank != 2)
		return fail(g, n, "matmul needs two matrices, got %s and %s", a, b);
	int64_t m = a->d[n->a[0] ? 1 : 0], ka = a->d[n->a[0] ? 0 : 1];
	int64_t kb = b->d[n->a[1] ? 1 : 0], nn = b->d[n->a[1] ? 0 : 1];
	if (ka != kb)
		return fail(g, n,
		            "matmul: the input has shape %s but the weight expects %s", a,
		            b);
	n->sh = (Shape){2, {m, nn}};
	return need_f32(g, n, n->in[0]) | need_f32(g, n, n->in[1]);
}

SHAPE(logsoftmax)
{
	if (n->in[0]->sh.rank < 1)
		return fail(g, n, "log_softmax needs at least one axis, got a scalar %s",
		            &n->in[0]->sh, NULL);
	return unary(g, n);
}

SHAPE(onehot)
{
	Node *x = n->in[0];
	if (x->dt != DT_I32) {
		error_at(g->diags, n->loc, "class labels must be integers (dtype i32)");
		return -1;
	}
	if (x->sh.rank >= MAXRANK)
		return fail(g, n, "labels of shape %s have too many axes", &x->sh, NULL);
	n->sh = x->sh;
	n->sh.d[n->sh.rank++] = n->a[0];
	return 0;
}

static int (*const shape_fns[OP_COUNT])(Graph *, Node *) = {
#define OP(E, name, nin, flags) [OP_##E] = shape_##name,
#include "ops.h"
#undef OP
};

int shape_infer(Graph *g, Node *n)
{
	n->dt = DT_F32;
	return shape_fns[n->op](g, n);
}
