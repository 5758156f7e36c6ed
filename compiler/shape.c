/* Shape inference: one function per op, shape_<name>, expanded into a table from ops.h.
 *
 * Each sets n->sh and n->dt from the node's inputs and attributes, or records an error at
 * the node's source location naming the shapes involved and returns -1. Ops whose shape
 * is given by the builder (CONST, BROADCAST, RESHAPE) only check it.
 */
#include <string.h>

#include "dc.h"

#define SHAPE(name) static int infer_##name(Graph *g, Node *n)

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
	/* the function the user called (where, not select; mean, not sum), or the op:
	 * an operator's (-, *) */
	const char *sym = n->op == OP_NEG || n->op == OP_SUB ? "'-'"
	                  : n->op == OP_ADD                  ? "'+'"
	                  : n->op == OP_MUL                  ? "'*'"
	                  : n->op == OP_DIV                  ? "'/'"
	                  : n->op == OP_POW                  ? "'^'"
	                  : n->op == OP_GT                   ? "'>' (or '<')"
	                  : n->op == OP_GE                   ? "'>=' (or '<=')"
	                  : n->op == OP_EQ                   ? "'=='"
	                                                     : opinfo[n->op].name;
	error_at(g->diags, n->loc, "%s expects floating-point values, got integers",
	         g->cur_fn ? g->cur_fn : sym);
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

SHAPE(neg) { return unary(g, n); }
SHAPE(exp) { return unary(g, n); }
SHAPE(log) { return unary(g, n); }
SHAPE(sqrt) { return unary(g, n); }
SHAPE(abs) { return unary(g, n); }
SHAPE(sin) { return unary(g, n); }
SHAPE(cos) { return unary(g, n); }
SHAPE(tanh) { return unary(g, n); }
SHAPE(sigmoid) { return unary(g, n); }
SHAPE(softplus) { return unary(g, n); }
SHAPE(erf) { return unary(g, n); }
SHAPE(relu) { return unary(g, n); }
SHAPE(step) { return unary(g, n); }
SHAPE(stopgrad) { return unary(g, n); }

/* Where an operand comes from, when that is another place than the node itself:
 * "input 'x'", "parameter 'w'", "'h1' (line 7)"; "" otherwise. */
static const char *origin(Graph *g, const Node *n, const Node *x)
{
	if (x->op == OP_INPUT)
		return arena_printf(g->A, "input '%s'", g->ios[x->a[0]].name);
	if (x->op == OP_PARAM)
		return arena_printf(g->A, "parameter '%s'", g->params[x->a[0]].name);
	if (!x->label || x->loc.line <= 0 || x->fwd ||
	    (n->label && !strcmp(x->label, n->label) && x->loc.line == n->loc.line))
		return "";
	return arena_printf(g->A, "'%s' (line %d)", x->label, x->loc.line);
}

static int binary(Graph *g, Node *n)
{
	if (need_f32(g, n, n->in[0]) < 0 || need_f32(g, n, n->in[1]) < 0)
		return -1;
	if (shape_bcast(&n->in[0]->sh, &n->in[1]->sh, &n->sh) == 0)
		return 0;
	char sa[128], sb[128];
	const Shape *a = &n->in[0]->sh, *b = &n->in[1]->sh;
	const char *oa = origin(g, n, n->in[0]), *ob = origin(g, n, n->in[1]);
	shape_str(a, sa, sizeof sa);
	shape_str(b, sb, sizeof sb);
	if (!*oa && !*ob)
		error_at(g->diags, n->loc, "shapes %s and %s do not broadcast", sa, sb);
	else
		error_at(g->diags, n->loc,
		         "shapes %s and %s do not broadcast: %s is %s, %s is %s", sa, sb,
		         sa, *oa ? oa : "made here", sb, *ob ? ob : "made here");
	return -1;
}

SHAPE(add) { return binary(g, n); }
SHAPE(sub) { return binary(g, n); }
SHAPE(mul) { return binary(g, n); }
SHAPE(mul0) { return binary(g, n); }
SHAPE(div) { return binary(g, n); }
SHAPE(pow) { return binary(g, n); }
SHAPE(max) { return binary(g, n); }
SHAPE(min) { return binary(g, n); }
SHAPE(gt) { return binary(g, n); }
SHAPE(ge) { return binary(g, n); }
SHAPE(eq) { return binary(g, n); }

SHAPE(select)
{
	Shape ab;
	for (int i = 0; i < 3; i++)
		if (need_f32(g, n, n->in[i]) < 0)
			return -1;
	if (shape_bcast(&n->in[1]->sh, &n->in[2]->sh, &ab) < 0)
		return fail(g, n, "where: shapes %s and %s do not broadcast",
		            &n->in[1]->sh, &n->in[2]->sh);
	if (shape_bcast(&n->in[0]->sh, &ab, &n->sh) < 0)
		return fail(g, n,
		            "where: the condition's shape %s does not broadcast to %s",
		            &n->in[0]->sh, &ab);
	return 0;
}

static int infer_sum(Graph *g, Node *n);
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

SHAPE(rmax) { return infer_sum(g, n); }

SHAPE(broadcast)
{
	Shape out;
	if (shape_bcast(&n->in[0]->sh, &n->sh, &out) < 0 || !shape_eq(&out, &n->sh))
		return fail(g, n, "cannot broadcast %s to %s", &n->in[0]->sh, &n->sh);
	return need_f32(g, n, n->in[0]);
}

SHAPE(transpose)
{
	(void)g;
	const Shape *x = &n->in[0]->sh;
	int seen = 0;
	n->sh.rank = x->rank;
	for (int i = 0; i < x->rank; i++) {
		int64_t p = n->a[i];
		check(p >= 0 && p < x->rank && !(seen >> p & 1));
		seen |= 1 << p;
		n->sh.d[i] = x->d[p];
	}
	n->dt = n->in[0]->dt;
	return 0;
}

/* SLICE and PAD: the small shape plus the offsets fits inside the big one. */
static int window(Graph *g, Node *n, const Shape *small, const Shape *big)
{
	if (small->rank != big->rank)
		return fail(g, n, "cannot take a window %s of %s", small, big);
	for (int i = 0; i < big->rank; i++)
		if (n->a[i] < 0 || n->a[i] + small->d[i] > big->d[i])
			return fail(g, n, "window %s does not fit in %s", small, big);
	n->dt = n->in[0]->dt;
	return 0;
}

SHAPE(slice) { return window(g, n, &n->sh, &n->in[0]->sh); }
SHAPE(pad) { return window(g, n, &n->in[0]->sh, &n->sh); }

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
	if (ka != kb) /* the shapes as the product takes them, its flags applied */
		return fail(
		    g, n,
		    "matmul: %s times %s: the first's columns are not the second's "
		    "rows",
		    &(Shape){2, {m, ka}}, &(Shape){2, {kb, nn}});
	n->sh = (Shape){2, {m, nn}};
	return need_f32(g, n, n->in[0]) | need_f32(g, n, n->in[1]);
}

/* Output size of a convolution or pooling window along one axis; < 1 is an error. */
static int64_t out_dim(int64_t in, int64_t k, int64_t s, int64_t p0, int64_t p1,
                       int64_t d)
{
	int64_t span = d * (k - 1) + 1, padded = in + p0 + p1;
	return padded < span ? 0 : (padded - span) / s + 1;
}

static int conv_out(Graph *g, Node *n, const Shape *x, const Shape *w, Shape *y)
{
	ConvP p = convp_of(n);
	if (x->rank != 4 || w->rank != 4)
		return fail(g, n,
		            "conv2d needs an NCHW input and an [O, C, KH, KW] weight, "
		            "got %s and %s",
		            x, w);
	if (p.groups < 1 || x->d[1] % p.groups || w->d[0] % p.groups ||
	    w->d[1] * p.groups != x->d[1])
		return fail(
		    g, n,
		    "conv2d: input %s and weight %s do not match the channels and groups",
		    x, w);
	*y = (Shape){
	    4,
	    {x->d[0], w->d[0],
	     out_dim(x->d[2], w->d[2], p.stride[0], p.pad[0], p.pad[1], p.dil[0]),
	     out_dim(x->d[3], w->d[3], p.stride[1], p.pad[2], p.pad[3], p.dil[1])}};
	/* the extents that were compared: the dilated kernel's, the padded input's */
	Shape span = {2, {p.dil[0] * (w->d[2] - 1) + 1, p.dil[1] * (w->d[3] - 1) + 1}},
	      padded = {2,
	                {x->d[2] + p.pad[0] + p.pad[1], x->d[3] + p.pad[2] + p.pad[3]}};
	if (y->d[2] < 1 || y->d[3] < 1)
		return fail(g, n,
		            "conv2d: the kernel spans %s (with its dilation), more than "
		            "the padded input's %s",
		            &span, &padded);
	return 0;
}

SHAPE(conv2d) { return conv_out(g, n, &n->in[0]->sh, &n->in[1]->sh, &n->sh); }

SHAPE(conv2d_bwd_data)
{
	Shape y;
	if (conv_out(g, n, &n->sh, &n->in[1]->sh, &y) < 0)
		return -1;
	if (!shape_eq(&y, &n->in[0]->sh))
		return fail(g, n,
		            "conv2d backward: gradient %s does not match the output %s",
		            &n->in[0]->sh, &y);
	return 0;
}

SHAPE(conv2d_bwd_filter)
{
	Shape y;
	if (conv_out(g, n, &n->in[0]->sh, &n->sh, &y) < 0)
		return -1;
	if (!shape_eq(&y, &n->in[1]->sh))
		return fail(g, n,
		            "conv2d backward: gradient %s does not match the output %s",
		            &n->in[1]->sh, &y);
	return 0;
}

static int pool_out(Graph *g, Node *n, const Shape *x, Shape *y)
{
	PoolP p = poolp_of(n);
	if (x->rank != 4)
		return fail(g, n, "pooling needs an NCHW input, got %s", x, NULL);
	*y = (Shape){4,
	             {x->d[0], x->d[1],
	              out_dim(x->d[2], p.k[0], p.stride[0], p.pad[0], p.pad[1], 1),
	              out_dim(x->d[3], p.k[1], p.stride[1], p.pad[2], p.pad[3], 1)}};
	Shape win = {2, {p.k[0], p.k[1]}},
	      padded = {2,
	                {x->d[2] + p.pad[0] + p.pad[1], x->d[3] + p.pad[2] + p.pad[3]}};
	if (y->d[2] < 1 || y->d[3] < 1)
		return fail(g, n,
		            "pooling: the window %s is larger than the padded input's %s",
		            &win, &padded);
	return 0;
}

SHAPE(poolmax_gather)
{
	if (!shape_eq(&n->in[0]->sh, &n->in[1]->sh))
		return fail(g, n, "max pooling: %s and %s differ", &n->in[0]->sh,
		            &n->in[1]->sh);
	return pool_out(g, n, &n->in[0]->sh, &n->sh);
}

SHAPE(poolmax_scatter)
{
	Shape y;
	if (pool_out(g, n, &n->in[0]->sh, &y) < 0)
		return -1;
	if (!shape_eq(&y, &n->in[1]->sh))
		return fail(g, n, "max pooling backward: gradient %s does not match %s",
		            &n->in[1]->sh, &y);
	return 0;
}

SHAPE(avgpool) { return pool_out(g, n, &n->in[0]->sh, &n->sh); }

SHAPE(avgpool_bwd)
{
	Shape y;
	if (pool_out(g, n, &n->sh, &y) < 0)
		return -1;
	if (!shape_eq(&y, &n->in[0]->sh))
		return fail(g, n,
		            "average pooling backward: gradient %s does not match %s",
		            &n->in[0]->sh, &y);
	return 0;
}

SHAPE(gather)
{
	const Shape *t = &n->in[0]->sh, *i = &n->in[1]->sh;
	if (n->in[1]->dt != DT_I32) {
		error_at(g->diags, n->loc,
		         "embedding indices must be integers (dtype i32)");
		return -1;
	}
	if (t->rank < 1 || i->rank + t->rank - 1 > MAXRANK)
		return fail(g, n, "cannot gather rows of %s with indices %s", t, i);
	n->sh = *i;
	for (int k = 1; k < t->rank; k++)
		n->sh.d[n->sh.rank++] = t->d[k];
	return need_f32(g, n, n->in[0]);
}

SHAPE(scatter_add)
{
	const Shape *i = &n->in[0]->sh, *dy = &n->in[1]->sh;
	Shape want = *i;
	for (int k = 1; k < n->sh.rank; k++)
		want.d[want.rank++] = n->sh.d[k];
	if (n->in[0]->dt != DT_I32 || !shape_eq(&want, dy))
		return fail(g, n, "scatter: gradient %s does not match the indices %s",
		            dy, i);
	return 0;
}

SHAPE(argmax)
{
	const Shape *x = &n->in[0]->sh;
	if (x->rank < 1)
		return fail(g, n, "argmax needs at least one axis, got a scalar %s", x,
		            NULL);
	n->sh = *x;
	n->sh.rank--;
	n->dt = DT_I32;
	return n->in[0]->dt == DT_F32 ? 0 : need_f32(g, n, n->in[0]);
}

SHAPE(dropmask)
{
	(void)g;
	check(n->in[0]->sh.rank == 0 && n->in[1]->sh.rank == 0);
	return 0;
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
#define OP(E, name, nin, flags) [OP_##E] = infer_##name,
#include "ops.h"
#undef OP
};

int shape_infer(Graph *g, Node *n)
{
	n->dt = DT_F32;
	return shape_fns[n->op](g, n);
}
