/* The graph IR: a dataflow graph of primitive tensor ops with static shapes.
 *
 * Nodes live in the graph's arena and are appended in creation order, which is always a
 * topological order (a builder can only use nodes that exist). Every builder goes through
 * ir_node, which stamps the node with the graph's current provenance (YAML location,
 * and for backward nodes the forward node and rule that made it) and infers its shape.
 * Parameters, optimizer state and io slots are tables beside the nodes; a function
 * (forward, grad, step, ...) is just a list of outputs and where they are stored.
 */
#include <stdlib.h>
#include <string.h>

#include "dc.h"

const OpInfo opinfo[OP_COUNT] = {
#define OP(E, name, nin, flags) [OP_##E] = {#name, nin, flags},
#include "ops.h"
#undef OP
};

const char *const fn_names[FN_COUNT] = {"forward", "evaluate", "grad", "step",
                                        "train_step"};

int op_lookup(const char *name)
{
	for (int i = 0; i < OP_COUNT; i++)
		if (!strcmp(opinfo[i].name, name))
			return i;
	return -1;
}

Graph *ir_new(Arena *A, Diags *d)
{
	Graph *g = arena_alloc(A, sizeof *g);
	g->A = A;
	g->diags = d;
	g->io_x = g->io_y = g->io_weight = g->io_loss = g->io_output = -1;
	g->io_numerics = g->io_profile = -1;
	return g;
}

/* Grows an arena-backed array to hold one more element. */
static void *grow(Arena *A, void *v, int n, int *cap, size_t elem)
{
	if (n < *cap)
		return v;
	int ncap = *cap ? *cap * 2 : 16;
	void *nv = arena_alloc(A, (size_t)ncap * elem);
	if (n)
		memcpy(nv, v, (size_t)n * elem);
	*cap = ncap;
	return nv;
}

/* Saturates at INT64_MAX, past MAX_ELEMS: builders check every node against it. */
int64_t shape_numel(const Shape *s)
{
	int64_t n = 1;
	for (int i = 0; i < s->rank; i++)
		n = mul_sat(n, s->d[i]);
	return n;
}

/* Floats a table entry takes in its blob, 64-byte aligned; 0 past the limit (its leaf
 * node reports it). */
static int64_t blob_floats(const Shape *sh)
{
	int64_t n = shape_numel(sh);
	return n > MAX_ELEMS ? 0 : (n + 15) & ~(int64_t)15;
}

int shape_eq(const Shape *a, const Shape *b)
{
	if (a->rank != b->rank)
		return 0;
	for (int i = 0; i < a->rank; i++)
		if (a->d[i] != b->d[i])
			return 0;
	return 1;
}

Shape shape_of(int rank, const int64_t *d)
{
	Shape s = {rank, {0}};
	for (int i = 0; i < rank; i++)
		s.d[i] = d[i];
	return s;
}

char *shape_str(const Shape *s, char *buf, size_t len)
{
	size_t k = 0;
	k += snprintf(buf + k, len - k, "[");
	for (int i = 0; i < s->rank && k < len; i++)
		k += snprintf(buf + k, len - k, "%s%lld", i ? ", " : "",
		              (long long)s->d[i]);
	if (k < len)
		snprintf(buf + k, len - k, "]");
	return buf;
}

static Tensor *new_tensor(Graph *g, Tensor **v, int *n, int *cap, const char *name)
{
	*v = grow(g->A, *v, *n, cap, sizeof **v);
	Tensor *t = &(*v)[(*n)++];
	memset(t, 0, sizeof *t);
	t->name = arena_strdup(g->A, name);
	return t;
}

int ir_add_param(Graph *g, const char *name, Shape sh, rt_init init, int64_t fan_in,
                 int64_t fan_out, SrcLoc loc)
{
	Tensor *t = new_tensor(g, &g->params, &g->nparams, &g->capparams, name);
	t->loc = loc;
	t->dt = DT_F32;
	t->sh = sh;
	t->off = g->param_floats;
	t->init = init;
	t->fan_in = fan_in;
	t->fan_out = fan_out;
	t->trainable = 1;
	/* every tensor starts on a 64-byte boundary of the blob */
	g->param_floats += blob_floats(&sh);
	return g->nparams - 1;
}

int ir_add_state(Graph *g, const char *name, Shape sh)
{
	Tensor *t = new_tensor(g, &g->states, &g->nstates, &g->capstates, name);
	t->dt = DT_F32;
	t->sh = sh;
	t->off = g->state_floats;
	g->state_floats += blob_floats(&sh);
	return g->nstates - 1;
}

int ir_add_io(Graph *g, const char *name, rt_iokind kind, DType dt, Shape sh, SrcLoc loc)
{
	Tensor *t = new_tensor(g, &g->ios, &g->nios, &g->capios, name);
	t->loc = loc;
	t->dt = dt;
	t->sh = sh;
	t->iokind = kind;
	t->off = g->nios - 1;
	return g->nios - 1;
}

int ir_add_hyper(Graph *g, const char *name, double init)
{
	int cap = g->caphypers;
	g->hypers = grow(g->A, g->hypers, g->nhypers, &g->caphypers, sizeof *g->hypers);
	g->hyper_init =
	    grow(g->A, g->hyper_init, g->nhypers, &cap, sizeof *g->hyper_init);
	g->hyper_init[g->nhypers] = init;
	g->hypers[g->nhypers++] = arena_strdup(g->A, name);
	return g->nhypers - 1;
}

void ir_fn_out(Graph *g, FnKind fn, Node *node, DestKind kind, int index)
{
	Fn *f = &g->fns[fn];
	f->defined = 1;
	if (!node)
		return;
	f->outs = grow(g->A, f->outs, f->nouts, &f->cap, sizeof *f->outs);
	f->outs[f->nouts++] = (Out){node, kind, index};
}

/* Build-time common subexpression elimination: a node identical to one that exists
 * (same op, inputs, attributes and shape) is that node. */
static uint64_t node_hash(Op op, int nin, Node **in, const int64_t *a, double f)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)op;
#define MIX(v) (h = (h ^ (uint64_t)(v)) * 1099511628211ull)
	for (int i = 0; i < nin; i++)
		MIX(in[i]->id);
	for (int i = 0; i < NATTR; i++) /* none given are zeros, as in the node */
		MIX(a ? a[i] : 0);
	uint64_t fb;
	memcpy(&fb, &f, sizeof fb);
	MIX(fb);
#undef MIX
	return h;
}

static int same_node(const Node *n, Op op, int nin, Node **in, const int64_t *a, double f,
                     const Shape *sh)
{
	static const int64_t zero[NATTR];
	if (n->op != op || n->f != f || memcmp(n->a, a ? a : zero, sizeof n->a))
		return 0;
	for (int i = 0; i < nin; i++)
		if (n->in[i] != in[i])
			return 0;
	return !sh || shape_eq(&n->sh, sh);
}

static Node **cse_slot(Graph *g, Op op, int nin, Node **in, const int64_t *a, double f,
                       const Shape *sh)
{
	if (2 * (g->n + 1) > g->cse_cap) { /* grow and rehash */
		int cap = g->cse_cap ? 2 * g->cse_cap : 256;
		Node **t = arena_alloc(g->A, (size_t)cap * sizeof *t);
		for (int i = 0; i < g->n; i++) {
			Node *n = g->nodes[i];
			uint64_t h = node_hash(n->op, n->nin, n->in, n->a, n->f);
			int k = (int)(h & (uint64_t)(cap - 1));
			while (t[k])
				k = (k + 1) & (cap - 1);
			t[k] = n;
		}
		g->cse = t, g->cse_cap = cap;
	}
	/* the shape is compared only where the builder gives it; else the inputs fix it
	 */
	int k = (int)(node_hash(op, nin, in, a, f) & (uint64_t)(g->cse_cap - 1));
	while (g->cse[k] && !same_node(g->cse[k], op, nin, in, a, f, sh))
		k = (k + 1) & (g->cse_cap - 1);
	return &g->cse[k];
}

/* Ops whose result shape is given rather than inferred (CONST, BROADCAST, RESHAPE) pass
 * it in sh; their shape functions check it. */
/* One value may hold at most MAX_ELEMS elements: sizes from the model file (dims,
 * units, batch) are checked where they are used, whatever their products. */
static int too_big(Graph *g, const Node *n)
{
	if (shape_numel(&n->sh) <= MAX_ELEMS)
		return 0;
	char s[160];
	const char *what = n->op == OP_PARAM   ? g->params[n->a[0]].name
	                   : n->op == OP_INPUT ? g->ios[n->a[0]].name
	                                       : n->label;
	error_at(g->diags, n->loc,
	         "%s%s%s has shape %s: more than %lld elements (16 GiB), the limit for "
	         "one value",
	         n->op == OP_PARAM   ? "parameter '"
	         : n->op == OP_INPUT ? "input '"
	         : what              ? "the value of '"
	                             : "a value",
	         what ? what : "", what ? "'" : "", shape_str(&n->sh, s, sizeof s),
	         (long long)MAX_ELEMS);
	return 1;
}

static Node *make(Graph *g, Op op, int nin, Node **in, const int64_t *attrs, double f,
                  const Shape *sh)
{
	check(nin == opinfo[op].nin);
	for (int i = 0; i < nin; i++)
		if (!in[i])
			return NULL;
	Node *folded = fold(g, op, in, attrs, f, sh);
	if (folded)
		return folded;
	Node **slot = cse_slot(g, op, nin, in, attrs, f, sh);
	if (*slot)
		return *slot;
	Node *n = arena_alloc(g->A, sizeof *n);
	n->op = op;
	n->nin = nin;
	for (int i = 0; i < nin; i++)
		n->in[i] = in[i];
	if (attrs)
		memcpy(n->a, attrs, sizeof n->a);
	n->f = f;
	n->loc = g->cur_loc;
	n->fwd = g->cur_fwd;
	n->rule = g->cur_rule;
	n->label = g->cur_label;
	if (sh)
		n->sh = *sh;
	if (shape_infer(g, n) < 0 || too_big(g, n))
		return NULL;
	n->id = g->n;
	g->nodes = grow(g->A, g->nodes, g->n, &g->cap, sizeof *g->nodes);
	g->nodes[g->n++] = n;
	*slot = n;
	return n;
}

Stamp ir_stamp(Graph *g, Stamp s)
{
	Stamp old = {g->cur_loc, g->cur_fwd, g->cur_rule, g->cur_label};
	g->cur_loc = s.loc, g->cur_fwd = s.fwd, g->cur_rule = s.rule,
	g->cur_label = s.label;
	return old;
}

Node *ir_node(Graph *g, Op op, int nin, Node **in, const int64_t *attrs, double f)
{
	return make(g, op, nin, in, attrs, f, NULL);
}

Node *ir_node_sh(Graph *g, Op op, int nin, Node **in, const int64_t *attrs, double f,
                 Shape sh)
{
	return make(g, op, nin, in, attrs, f, &sh);
}

/* A leaf reading table entry `index`; it carries the entry's own YAML location. */
static Node *leaf(Graph *g, Op op, int64_t index, const Tensor *t)
{
	int64_t a[NATTR] = {index};
	SrcLoc at = g->cur_loc;
	if (t && t->loc.file)
		g->cur_loc = t->loc;
	Node *n = ir_node(g, op, 0, NULL, a, 0);
	g->cur_loc = at;
	return n;
}

Node *ir_param(Graph *g, int i)
{
	if (!g->params[i].node)
		g->params[i].node = leaf(g, OP_PARAM, i, &g->params[i]);
	return g->params[i].node;
}

Node *ir_state(Graph *g, int i)
{
	if (!g->states[i].node)
		g->states[i].node = leaf(g, OP_STATE, i, &g->states[i]);
	return g->states[i].node;
}

Node *ir_input(Graph *g, int i)
{
	if (!g->ios[i].node)
		g->ios[i].node = leaf(g, OP_INPUT, i, &g->ios[i]);
	return g->ios[i].node;
}

int64_t ir_index_limit(const Graph *g, int i)
{
	int64_t limit = -1;
	for (int k = 0; k < g->n; k++) {
		const Node *n = g->nodes[k], *x = NULL;
		int64_t m = 0;
		if (n->op == OP_ONEHOT)
			x = n->in[0], m = n->a[0];
		else if (n->op == OP_GATHER)
			x = n->in[1], m = n->in[0]->sh.d[0];
		while (x && (opinfo[x->op].flags & OPF_VIEW))
			x = x->in[0];
		if (x && x->op == OP_INPUT && x->a[0] == i && (limit < 0 || m < limit))
			limit = m;
	}
	return limit;
}

static int reaches(const Node *n, int io, char *seen)
{
	if (seen[n->id])
		return 0;
	seen[n->id] = 1;
	if (n->op == OP_INPUT)
		return n->a[0] == io;
	for (int k = 0; k < n->nin; k++)
		if (reaches(n->in[k], io, seen))
			return 1;
	return 0;
}

int ir_fn_reads(const Graph *g, FnKind fn, int io)
{
	char *seen = calloc((size_t)g->n + 1, 1);
	if (!seen)
		die("out of memory");
	int r = 0;
	for (int i = 0; i < g->fns[fn].nouts && !r; i++)
		r = reaches(g->fns[fn].outs[i].node, io, seen);
	free(seen);
	return r;
}

Node *ir_gradbuf(Graph *g, int i) { return leaf(g, OP_GRADBUF, i, &g->params[i]); }

Node *ir_hyper(Graph *g, int i) { return leaf(g, OP_HYPER, i, NULL); }

Node *ir_const(Graph *g, double v, Shape sh)
{
	return make(g, OP_CONST, 0, NULL, NULL, v, &sh);
}

Node *ir_scalar(Graph *g, double v) { return ir_const(g, v, (Shape){0, {0}}); }

Node *ir_unary(Graph *g, Op op, Node *x) { return ir_node(g, op, 1, &x, NULL, 0); }

Node *ir_binary(Graph *g, Op op, Node *x, Node *y)
{
	Node *in[2] = {x, y};
	return ir_node(g, op, 2, in, NULL, 0);
}

Node *ir_neg(Graph *g, Node *x) { return ir_unary(g, OP_NEG, x); }

Node *ir_add(Graph *g, Node *x, Node *y) { return ir_binary(g, OP_ADD, x, y); }

Node *ir_sub(Graph *g, Node *x, Node *y) { return ir_binary(g, OP_SUB, x, y); }

Node *ir_mul(Graph *g, Node *x, Node *y) { return ir_binary(g, OP_MUL, x, y); }

Node *ir_div(Graph *g, Node *x, Node *y) { return ir_binary(g, OP_DIV, x, y); }

/* SUM and RMAX keep reduced axes as size 1; without keepdims a reshape drops them. */
static Node *reduce(Graph *g, Op op, Node *x, uint32_t axes, int keepdims)
{
	if (!x)
		return NULL;
	if (!axes)
		return x;
	int64_t a[NATTR] = {axes};
	Node *s = ir_node(g, op, 1, &x, a, 0);
	if (!s || keepdims)
		return s;
	Shape to = {0, {0}};
	for (int i = 0; i < x->sh.rank; i++)
		if (!(axes >> i & 1))
			to.d[to.rank++] = x->sh.d[i];
	return ir_reshape(g, s, to);
}

Node *ir_sum(Graph *g, Node *x, uint32_t axes, int keepdims)
{
	return reduce(g, OP_SUM, x, axes, keepdims);
}

Node *ir_rmax(Graph *g, Node *x, uint32_t axes, int keepdims)
{
	return reduce(g, OP_RMAX, x, axes, keepdims);
}

Node *ir_sum_all(Graph *g, Node *x)
{
	if (!x)
		return NULL;
	return ir_sum(g, x, (1u << x->sh.rank) - 1, 0);
}

Node *ir_mean(Graph *g, Node *x, uint32_t axes, int keepdims)
{
	if (!x)
		return NULL;
	int64_t count = 1;
	for (int i = 0; i < x->sh.rank; i++)
		if (axes >> i & 1)
			count *= x->sh.d[i];
	return ir_mul(g, ir_sum(g, x, axes, keepdims), ir_scalar(g, 1.0 / (double)count));
}

Node *ir_broadcast(Graph *g, Node *x, Shape to)
{
	if (!x)
		return NULL;
	if (shape_eq(&x->sh, &to))
		return x;
	return make(g, OP_BROADCAST, 1, &x, NULL, 0, &to);
}

Node *ir_reshape(Graph *g, Node *x, Shape to)
{
	if (!x)
		return NULL;
	if (shape_eq(&x->sh, &to))
		return x;
	return make(g, OP_RESHAPE, 1, &x, NULL, 0, &to);
}

Node *ir_matmul(Graph *g, Node *x, Node *y, int tx, int ty)
{
	Node *in[2] = {x, y};
	int64_t a[NATTR] = {tx, ty};
	return ir_node(g, OP_MATMUL, 2, in, a, 0);
}

Node *ir_logsoftmax(Graph *g, Node *x) { return ir_unary(g, OP_LOGSOFTMAX, x); }

Node *ir_onehot(Graph *g, Node *labels, int64_t classes)
{
	int64_t a[NATTR] = {classes};
	return ir_node(g, OP_ONEHOT, 1, &labels, a, 0);
}

Node *ir_select(Graph *g, Node *cond, Node *a, Node *b)
{
	Node *in[3] = {cond, a, b};
	return ir_node(g, OP_SELECT, 3, in, NULL, 0);
}

Node *ir_transpose(Graph *g, Node *x, const int *perm)
{
	if (!x)
		return NULL;
	int64_t a[NATTR] = {0};
	int ident = 1;
	for (int i = 0; i < x->sh.rank; i++) {
		a[i] = perm[i];
		ident &= perm[i] == i;
	}
	return ident ? x : ir_node(g, OP_TRANSPOSE, 1, &x, a, 0);
}

static Node *window(Graph *g, Op op, Node *x, const int64_t *v, Shape to)
{
	if (!x)
		return NULL;
	if (shape_eq(&x->sh, &to))
		return x;
	int64_t a[NATTR] = {0};
	for (int i = 0; i < to.rank; i++)
		a[i] = v[i];
	return make(g, op, 1, &x, a, 0, &to);
}

Node *ir_slice(Graph *g, Node *x, const int64_t *start, Shape to)
{
	return window(g, OP_SLICE, x, start, to);
}

Node *ir_pad(Graph *g, Node *x, const int64_t *before, Shape to)
{
	return window(g, OP_PAD, x, before, to);
}

static void conv_attrs(int64_t *a, const ConvP *p)
{
	a[0] = p->stride[0], a[1] = p->stride[1];
	for (int i = 0; i < 4; i++)
		a[2 + i] = p->pad[i];
	a[6] = p->dil[0], a[7] = p->dil[1], a[8] = p->groups;
}

ConvP convp_of(const Node *n)
{
	ConvP p = {{n->a[0], n->a[1]},
	           {n->a[2], n->a[3], n->a[4], n->a[5]},
	           {n->a[6], n->a[7]},
	           n->a[8]};
	return p;
}

int matmul_halves(const Node *n)
{
	if (n->op != OP_MATMUL || n->a[0] || n->a[1] || n->in[1]->op != OP_PARAM)
		return 0;
	int64_t K = n->in[0]->sh.d[1];
	return K >= 64 && K % 2 == 0 && n->sh.d[0] <= K;
}

int conv_pointwise(const Node *n)
{
	const Node *w = n->op == OP_CONV2D_BWD_FILTER ? n : n->in[1];
	ConvP p = convp_of(n);
	return w->sh.d[2] == 1 && w->sh.d[3] == 1 && p.stride[0] == 1 &&
	       p.stride[1] == 1 && !p.pad[0] && !p.pad[1] && !p.pad[2] && !p.pad[3];
}

int conv_depthwise(const Node *n)
{
	const Node *x = n->op == OP_CONV2D_BWD_DATA ? n : n->in[0],
	           *w = n->op == OP_CONV2D_BWD_FILTER ? n : n->in[1];
	ConvP p = convp_of(n);
	return p.groups == x->sh.d[1] && w->sh.d[0] == x->sh.d[1] && p.groups > 1 &&
	       p.stride[0] <= 2 && p.stride[1] <= 2 && w->sh.d[2] * w->sh.d[3] <= 49;
}

int64_t conv_flat_tap(const ConvFlat *f, int64_t rh, int64_t rw)
{
	return (rh % f->sh * f->sw + rw % f->sw) * f->Hs * f->Ws + rh / f->sh * f->Ws +
	       rw / f->sw;
}

int conv_flat(const Node *n, ConvFlat *f)
{
	Node *xn, *wn, *yn; /* the nodes in the roles of input, weight and output */
	switch (n->op) {
	case OP_CONV2D:
		xn = n->in[0], wn = n->in[1], yn = (Node *)n;
		break;
	case OP_CONV2D_BWD_DATA:
		xn = (Node *)n, wn = n->in[1], yn = n->in[0];
		break;
	case OP_CONV2D_BWD_FILTER:
		xn = n->in[0], wn = (Node *)n, yn = n->in[1];
		break;
	default:
		return 0;
	}
	const Shape *x = &xn->sh, *w = &wn->sh, *y = &yn->sh;
	ConvP p = convp_of(n);
	int64_t span[2] = {(w->d[2] - 1) * p.dil[0], (w->d[3] - 1) * p.dil[1]};
	const Shape *out = n->op == OP_CONV2D_BWD_DATA ? x : y; /* the product's */
	if (n->op == OP_CONV2D_BWD_DATA) { /* dy padded by span - pad, no side < 0 */
		for (int i = 0; i < 4; i++)
			if (p.pad[i] > span[i / 2])
				return 0;
		*f = (ConvFlat){.ch = y->d[1],
		                .h = y->d[2],
		                .w = y->d[3],
		                .Hp = x->d[2] + span[0],
		                .Wp = x->d[3] + span[1],
		                .top = span[0] - p.pad[0],
		                .left = span[1] - p.pad[2]};
	} else {
		*f = (ConvFlat){.ch = x->d[1],
		                .h = x->d[2],
		                .w = x->d[3],
		                .Hp = x->d[2] + p.pad[0] + p.pad[1],
		                .Wp = x->d[3] + p.pad[2] + p.pad[3],
		                .top = p.pad[0],
		                .left = p.pad[2]};
	}
	/* phase planes along an axis of stride 2 (the data gradient's are of stride 1) */
	int bwd = n->op == OP_CONV2D_BWD_DATA;
	f->sh = bwd ? 1 : p.stride[0], f->sw = bwd ? 1 : p.stride[1];
	f->Hs = (f->Hp + f->sh - 1) / f->sh, f->Ws = (f->Wp + f->sw - 1) / f->sw;
	f->cs = f->sh * f->sw * f->Hs * f->Ws;
	int64_t pos = out->d[2] * f->Ws, reach = 0; /* reach: the farthest tap's offset */
	for (int64_t kh = 0; kh < w->d[2]; kh++)
		for (int64_t kw = 0; kw < w->d[3]; kw++) {
			int64_t off = conv_flat_tap(f, kh * p.dil[0], kw * p.dil[1]);
			reach = off > reach ? off : reach;
		}
	f->pc = bwd ? pos : (pos + 15) & ~(int64_t)15;
	int64_t xs = (f->ch - 1) * f->cs + reach + f->pc;
	f->xs = ((xs > f->ch * f->cs ? xs : f->ch * f->cs) + 15) & ~(int64_t)15;
	f->ys = (out->d[1] * f->pc + 15) & ~(int64_t)15;
	/* stride 2 along an axis where some tap lands on an odd offset (the other phase
	 * would be copied for nothing) */
	int phases = 1;
	for (int i = 0; i < 2; i++)
		if (p.stride[i] == 2)
			phases &= !bwd && p.dil[i] % 2 && w->d[2 + i] > 1;
		else
			phases &= p.stride[i] == 1;
	/* positions computed, per channel, against the convolution's own (the padding
	 * around a small image costs more products than the patches it saves: LeNet's
	 * second data gradient, at 2.5 times, ran 3.5% slower) */
	return phases && pos >= 16 && 2 * pos <= 3 * y->d[2] * y->d[3] &&
	       !conv_pointwise(n) && !conv_depthwise(n);
}

int64_t conv_chunk(int64_t per, int64_t batch, int64_t lanes)
{
	int64_t most = (batch + lanes - 1) / lanes,
	        fit = per ? (512 << 10) / (per * 4) : most;
	fit = fit < 1 ? 1 : fit;
	return fit < most ? fit : most;
}

int conv_dy_rows(const Node *n, int vw)
{
	ConvFlat f;
	if (n->op != OP_CONV2D_BWD_FILTER || !conv_flat(n, &f))
		return 0;
	const Shape *y = &n->in[1]->sh;
	return f.pc >= y->d[2] * ((y->d[3] + vw - 1) / vw * vw);
}

Node *ir_conv2d(Graph *g, Node *x, Node *w, const ConvP *p)
{
	Node *in[2] = {x, w};
	int64_t a[NATTR] = {0};
	conv_attrs(a, p);
	return ir_node(g, OP_CONV2D, 2, in, a, 0);
}

Node *ir_conv2d_bwd_data(Graph *g, Node *dy, Node *w, const ConvP *p, Shape xs)
{
	Node *in[2] = {dy, w};
	int64_t a[NATTR] = {0};
	conv_attrs(a, p);
	return make(g, OP_CONV2D_BWD_DATA, 2, in, a, 0, &xs);
}

Node *ir_conv2d_bwd_filter(Graph *g, Node *x, Node *dy, const ConvP *p, Shape ws)
{
	Node *in[2] = {x, dy};
	int64_t a[NATTR] = {0};
	conv_attrs(a, p);
	return make(g, OP_CONV2D_BWD_FILTER, 2, in, a, 0, &ws);
}

static void pool_attrs(int64_t *a, const PoolP *p)
{
	a[0] = p->k[0], a[1] = p->k[1], a[2] = p->stride[0], a[3] = p->stride[1];
	for (int i = 0; i < 4; i++)
		a[4 + i] = p->pad[i];
}

PoolP poolp_of(const Node *n)
{
	PoolP p = {
	    {n->a[0], n->a[1]}, {n->a[2], n->a[3]}, {n->a[4], n->a[5], n->a[6], n->a[7]}};
	return p;
}

Node *ir_poolmax(Graph *g, int scatter, Node *sel, Node *v, const PoolP *p)
{
	Node *in[2] = {sel, v};
	int64_t a[NATTR] = {0};
	pool_attrs(a, p);
	if (!scatter)
		return ir_node(g, OP_POOLMAX_GATHER, 2, in, a, 0);
	return sel ? make(g, OP_POOLMAX_SCATTER, 2, in, a, 0, &sel->sh) : NULL;
}

Node *ir_avgpool(Graph *g, Node *x, const PoolP *p)
{
	int64_t a[NATTR] = {0};
	pool_attrs(a, p);
	return ir_node(g, OP_AVGPOOL, 1, &x, a, 0);
}

Node *ir_avgpool_bwd(Graph *g, Node *dy, const PoolP *p, Shape xs)
{
	int64_t a[NATTR] = {0};
	pool_attrs(a, p);
	return make(g, OP_AVGPOOL_BWD, 1, &dy, a, 0, &xs);
}

Node *ir_gather(Graph *g, Node *table, Node *idx)
{
	Node *in[2] = {table, idx};
	return ir_node(g, OP_GATHER, 2, in, NULL, 0);
}

Node *ir_scatter_add(Graph *g, Node *idx, Node *dy, Shape table)
{
	Node *in[2] = {idx, dy};
	return make(g, OP_SCATTER_ADD, 2, in, NULL, 0, &table);
}

Node *ir_argmax(Graph *g, Node *x) { return ir_unary(g, OP_ARGMAX, x); }

Node *ir_dropmask(Graph *g, Node *seed, Node *counter, double p, Shape sh)
{
	Node *in[2] = {seed, counter};
	return make(g, OP_DROPMASK, 2, in, NULL, p, &sh);
}
