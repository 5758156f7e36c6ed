/* Buffer planning: for one function, which nodes to compute and where each one lives.
 *
 * Requires: a graph whose function fn has its outputs. Leaves live in the buffers they
 * name (parameters, gradients, optimizer state, hyperparameters, io slots); constants
 * live nowhere (codegen inlines them, also through views); views (OPF_VIEW) share their
 * input's buffer. A pointwise node used once by a pointwise node of its shape is fused:
 * computed in its user's loop, never stored; so is a pad or slice of a stored node.
 * Pointwise nodes that only feed new parameters and optimizer state form the update phase
 * (see Plan in dc.h): computed at the end, never stored. Every other node gets a span of
 * the workspace, 64-byte aligned, reused once the last loop reading it has run.
 */
#include <string.h>

#include "dc.h"

static void mark_live(Node *n, char *live)
{
	if (live[n->id])
		return;
	live[n->id] = 1;
	for (int i = 0; i < n->nin; i++)
		mark_live(n->in[i], live);
}

static Buf leaf_buf(Graph *g, Node *n)
{
	switch (n->op) {
	case OP_PARAM:
		return (Buf){BUF_PARAM, g->params[n->a[0]].off};
	case OP_GRADBUF:
		return (Buf){BUF_GRAD, g->params[n->a[0]].off};
	case OP_STATE:
		return (Buf){BUF_STATE, g->states[n->a[0]].off};
	case OP_HYPER:
		return (Buf){BUF_HYPER, n->a[0]};
	case OP_INPUT:
		return (Buf){BUF_IO, n->a[0]};
	case OP_CONST:
		return (Buf){BUF_NONE, 0};
	default:
		die("leaf op %s has no buffer", opinfo[n->op].name);
	}
}

/* Pointwise ops compute element i from element i (with broadcasting) of their inputs:
 * a chain of them can run as one loop. */
static int pointwise(const Node *n)
{
	return (opinfo[n->op].flags & OPF_ELEMWISE) || n->op == OP_BROADCAST;
}

/* A pad or a slice (OPF_WINDOW): each element is one of its input's, or (pad) 0.
 * Fused into a pointwise user, it is a load at shifted indices: concat, a pad of each
 * part and their sum, becomes one pass instead of three. */
static int window(const Node *n) { return (opinfo[n->op].flags & OPF_WINDOW) != 0; }

/* The node that owns the memory n's values are in (views share their input's). */
static Node *owner(Node *n)
{
	while (opinfo[n->op].flags & OPF_VIEW)
		n = n->in[0];
	return n;
}

static int poly(const Node *n) { return (opinfo[n->op].flags & OPF_POLY) != 0; }

/* Whether n, used several times, is computed again in each of its users' loops
 * (fuse): one vector op, not a polynomial (exp, tanh...), on one input of n's size,
 * stored, and values broadcast into it (batch norm's x - mean). Each user then reads that
 * input where it would have read n, and n costs no pass and no write of its own. */
static int recomputed(const Plan *p, const Node *n)
{
	int64_t size = shape_numel(&n->sh);
	int big = 0;
	for (int k = 0; k < n->nin; k++) {
		int64_t m = shape_numel(&n->in[k]->sh);
		if (p->inl[n->in[k]->id] || (m != size && 4 * m > size))
			return 0;
		big += m == size;
	}
	return big == 1 && (opinfo[n->op].flags & OPF_ELEMWISE) &&
	       (opinfo[n->op].flags & OPF_VECTOR) && !poly(n);
}

/* Whether a pointwise n can be computed in the loop of its user u: a pointwise node of
 * n's shape, or a reduction */
static int fuses_into(const Node *n, const Node *u)
{
	return (pointwise(u) && shape_eq(&n->sh, &u->sh)) || u->op == OP_SUM ||
	       u->op == OP_RMAX;
}

/* Fusion: a pointwise node used once, by a pointwise node of its own shape or by a
 * reduction, is computed inside its user's loop and never stored (batch norm's
 * (x - mean)^2 inside the sum that makes the variance, say). So is a window used once
 * by a pointwise node of its shape: its input is stored (only pointwise nodes fuse
 * into their users), which the window's loads read. And so is a node that recomputed()
 * tells, used by several such users: in each of their loops. */
static void fuse(Graph *g, FnKind fn, Plan *p, int *nuse, Node **user)
{
	const Fn *f = &g->fns[fn];
	for (int i = 0; i < f->nouts; i++)
		nuse[f->outs[i].node->id] += 2; /* an output is stored */
	for (int i = 0; i < g->n; i++) {
		Node *n = g->nodes[i];
		if (!p->live[i])
			continue;
		for (int k = 0; k < n->nin; k++) {
			nuse[n->in[k]->id]++;
			user[n->in[k]->id] = n;
		}
	}
	for (int i = 0; i < g->n; i++) {
		Node *n = g->nodes[i], *u = user[i];
		int into = nuse[i] == 1 && fuses_into(n, u);
		int win =
		    window(n) && nuse[i] == 1 && pointwise(u) && shape_eq(&n->sh, &u->sh);
		p->inl[i] = !g->no_fusion && p->live[i] && n->dt == DT_F32 &&
		            ((into && pointwise(n)) || win);
	}
	for (int i = 0; i < g->n && !g->no_fusion; i++) {
		Node *n = g->nodes[i];
		if (!p->live[i] || p->inl[i] || nuse[i] < 2 || n->dt != DT_F32 ||
		    !recomputed(p, n))
			continue;
		int users = 0, ok = 1; /* (an output's 2 uses have no user: not all) */
		for (int j = i + 1; j < g->n && ok; j++)
			for (int k = 0; p->live[j] && k < g->nodes[j]->nin; k++) {
				Node *u = g->nodes[j];
				if (u->in[k] != n)
					continue;
				users++;
				ok &= fuses_into(n, u);
			}
		p->inl[i] = ok && users == nuse[i];
	}
}

/* Whether the values n reads, through the nodes fused into it, are c's, leaves' and
 * those of nodes stored before c (node ids are in order: computed before it). */
static int reads_only(const Plan *p, Node *n, Node *c, int top)
{
	if (n == c)
		return 1;
	if (!top && !p->inl[n->id])
		return (opinfo[owner(n)->op].flags & OPF_LEAF) || owner(n)->id < c->id;
	for (int k = 0; k < n->nin; k++)
		if (!reads_only(p, n->in[k], c, 0))
			return 0;
	return 1;
}

int plan_vector_ok(const Plan *p, const Node *n, int computed)
{
	if (n->dt != DT_F32)
		return 0;
	if (!computed && !p->inl[n->id] && p->group[n->id] < 0)
		return 1; /* loaded */
	if (window(n))
		return 1; /* its input loaded, lanes outside a pad masked */
	if (!(opinfo[n->op].flags & OPF_VECTOR))
		return 0;
	for (int k = 0; k < n->nin; k++)
		if (!plan_vector_ok(p, n->in[k], 0))
			return 0;
	return 1;
}

static int branches(const Node *n) { return (opinfo[n->op].flags & OPF_BRANCH) != 0; }

/* Whether r, or a node fused into it (not c), is one that is() tells. */
static int fused_has(const Plan *p, const Node *r, const Node *c, int top,
                     int (*is)(const Node *))
{
	if (r == c || (!top && !p->inl[r->id]))
		return 0;
	if (is(r))
		return 1;
	for (int k = 0; k < r->nin; k++)
		if (fused_has(p, r->in[k], c, 0, is))
			return 1;
	return 0;
}

/* Whether every stored node r reads through the nodes fused into it (c aside) has
 * c's last two axes there, or 1 x 1: a pointwise convolution's products take each
 * image's positions as one flat axis, and so does their epilogue. */
static int planes_flat(const Plan *p, const Node *r, const Node *c, int top)
{
	if (r == c)
		return 1;
	if (top || p->inl[r->id]) {
		for (int k = 0; k < r->nin; k++)
			if (!planes_flat(p, r->in[k], c, 0))
				return 0;
		return 1;
	}
	int k = r->sh.rank;
	int64_t h = k >= 2 ? r->sh.d[k - 2] : 1, w = k >= 1 ? r->sh.d[k - 1] : 1;
	return (h == 1 && w == 1) || (h == c->sh.d[2] && w == c->sh.d[3]);
}

int plan_planes_flat(const Plan *p, const Node *r, const Node *c)
{
	return planes_flat(p, r, c, 1);
}

/* Epilogues: a convolution computed as an implicit product (conv_flat) copies its
 * values out of the scratch anyway, a depthwise one (conv_depthwise) and its data
 * gradient hold a row's in registers, and a matrix product (or a pointwise convolution's,
 * conv_pointwise) holds its tiles in registers before storing them: either computes there
 * the pointwise node that is its only user (through fused nodes: a bias and an
 * activation, or an activation's gradient) if that node is of its shape and reads nothing
 * but it, leaves and nodes stored before it. Both compute it on vectors (the
 * convolution's copy, on each row of its output), so its ops must allow that.
 *
 * But not a polynomial (tanh, say) after A B^T (a dense layer's forward product):
 * its dot-product tiles (kernels.c, store_sums) hold a row's few columns in some
 * lanes of a vector, and compute the epilogue on the whole vector for each of the
 * tile's rows, four times the work. Its own loop on full vectors made the 512-wide
 * MLP with tanh 7.8% faster at batch 128. Nor sin or cos after any product's tiles,
 * which would write out their branch to libm (vmath.c) for each of a tile's vectors:
 * with cos in the tiles of its gradients' products, a 512-wide MLP with sin and cos
 * took 1.32x the instructions to compile, and no less time a step. Nor a fused
 * window, whose loads need the indices of a pointwise loop nest. Nor after an implicit
 * data gradient's tiles: relu's gradient there, reading the activation from memory as
 * each vector is stored, made a ResNet block's 64-channel data gradient 11.5 ms
 * against 10.9 and 0.3 for the two apart (a depthwise one's, 1.10 ms against 1.50). */
static void epilogues(Graph *g, Plan *p, const int *nuse, Node **user)
{
	ConvFlat f;
	for (int i = 0; i < g->n; i++) {
		Node *n = g->nodes[i], *r = user[i];
		int conv =
		        (n->op == OP_CONV2D && (conv_flat(n, &f) || conv_depthwise(n))) ||
		        (n->op == OP_CONV2D_BWD_DATA && conv_depthwise(n)),
		    pw = n->op == OP_CONV2D && conv_pointwise(n);
		if (g->no_fusion || !p->live[i] || (!conv && !pw && n->op != OP_MATMUL) ||
		    nuse[i] != 1)
			continue;
		/* (not through a node recomputed by several users: n's values are
		 * read by the others) */
		while (r && p->inl[r->id] && p->group[r->id] < 0 && nuse[r->id] == 1)
			r = user[r->id];
		if (r && pointwise(r) && !p->inl[r->id] && p->group[r->id] < 0 &&
		    r->dt == DT_F32 && shape_eq(&r->sh, &n->sh) &&
		    reads_only(p, r, n, 1) && plan_vector_ok(p, r, 1) &&
		    !fused_has(p, r, n, 1, window) && (!pw || planes_flat(p, r, n, 1)) &&
		    (conv || pw || !n->a[1] || n->a[0] || !fused_has(p, r, n, 1, poly)) &&
		    (conv || !fused_has(p, r, n, 1, branches)))
			p->epi[i] = r;
	}
}

static int find(int *up, int i)
{
	while (up[i] != i)
		i = up[i] = up[up[i]];
	return i;
}

/* The leaf node an output overwrites (the old parameter or state), if live here. */
static Node *overwritten(Graph *g, const Plan *p, const Out *o)
{
	int op = o->kind == DEST_PARAM   ? (int)OP_PARAM
	         : o->kind == DEST_STATE ? (int)OP_STATE
	                                 : -1;
	for (int i = 0; op >= 0 && i < g->n; i++)
		if (p->live[i] && (int)g->nodes[i]->op == op &&
		    g->nodes[i]->a[0] == o->index)
			return g->nodes[i];
	return NULL;
}

/* The stored values a loop reads, at most MAX_READS distinct: a kernel's operands
 * (MAXSLOTS, codegen), less room for what it writes and its scratch. */
enum { MAX_READS = 48 };

/* The distinct stored values (constants aside) that n reads through the nodes fused
 * into it, each counted once per mark. */
static int reads(const Plan *p, Node *n, int top, int *seen, int mark)
{
	if (!top && !p->inl[n->id]) {
		Node *o = owner(n);
		if (o->op == OP_CONST || seen[o->id] == mark)
			return 0;
		seen[o->id] = mark;
		return 1;
	}
	int c = 0;
	for (int k = 0; k < n->nin; k++)
		c += reads(p, n->in[k], 0, seen, mark);
	return c;
}

/* The update phase (see Plan). A node joins it when it is pointwise and float, and
 * each of its users is in it with the same shape, or it is a new parameter or state
 * value. Groups join nodes with the inputs of their shape in the phase and the
 * parameters and state of their shape they read. An output whose old value another
 * group reads (a step counter every update broadcasts) stays out of the phase, and is
 * copied out at the end as before. */
static void updates(Graph *g, FnKind fn, Plan *p)
{
	const Fn *f = &g->fns[fn];
	int *up = arena_alloc(g->A, (size_t)g->n * sizeof *up);
	char *ok = arena_alloc(g->A, (size_t)g->n),
	     *ban = arena_alloc(g->A, (size_t)g->n);
	int *seen = arena_alloc(g->A, (size_t)g->n * sizeof *seen), mark = 0;
	char *cut = arena_alloc(g->A, (size_t)g->n),
	     *out = arena_alloc(g->A, (size_t)g->n);
	for (int i = 0; i < f->nouts; i++)
		out[f->outs[i].node->id] = 1;
	for (int i = 0; i < g->n; i++)
		p->group[i] = -1;
	if (g->no_fusion)
		return;
	for (int changed = 1; changed;) {
		changed = 0;
		for (int i = 0; i < g->n; i++)
			ok[i] = !cut[i], up[i] = i;
		for (int i = 0; i < f->nouts; i++) {
			int id = f->outs[i].node->id;
			ok[id] &= !ban[id] && (f->outs[i].kind == DEST_PARAM ||
			                       f->outs[i].kind == DEST_STATE);
		}
		for (int i = g->n - 1; i >= 0; i--) { /* users come after their inputs */
			Node *n = g->nodes[i];
			p->group[i] = -1;
			if (!p->live[i])
				continue;
			int in = ok[i] && pointwise(n) && n->dt == DT_F32;
			p->group[i] = in ? i : -1;
			for (int k = 0; k < n->nin; k++) {
				Node *x = n->in[k];
				if (!in || !shape_eq(&x->sh, &n->sh))
					ok[x->id] = 0;
				if (in && shape_eq(&x->sh, &n->sh) &&
				    (x->op == OP_PARAM || x->op == OP_STATE ||
				     pointwise(x)))
					up[find(up, x->id)] = find(up, i);
			}
		}
		for (int i = 0; i < f->nouts; i++) {
			const Out *o = &f->outs[i];
			Node *n = o->node, *old = overwritten(g, p, o);
			if (p->group[n->id] < 0 || !old)
				continue;
			int bad = find(up, old->id) != find(up, n->id) ||
			          !shape_eq(&old->sh, &n->sh);
			for (int j = old->id + 1; j < g->n && !bad; j++)
				for (int k = 0; k < g->nodes[j]->nin; k++)
					bad |= p->group[j] >= 0 &&
					       g->nodes[j]->in[k] == old &&
					       find(up, j) != find(up, n->id);
			if (bad)
				ban[n->id] = 1, changed = 1;
		}
		/* a group's loop reads at most MAX_READS values (its members, computed
		 * in it, read none). One that would read more (the updates of 64 scalar
		 * parameters joined by clip_grad_norm's scale, a node in the group) has
		 * its nodes that are not updates stored before the phase, which parts
		 * it into groups of each parameter's own; one without such nodes has
		 * its updates computed apart and copied */
		for (int r = 0; r < g->n && !changed; r++) {
			if (p->group[r] < 0 || find(up, r) != r)
				continue;
			int n = 0, inner = 0;
			mark++;
			for (int j = 0; j < g->n; j++)
				if (p->group[j] >= 0 && find(up, j) == r)
					seen[j] = mark;
			for (int j = 0; j < g->n; j++)
				if (p->group[j] >= 0 && find(up, j) == r)
					n += reads(p, g->nodes[j], 1, seen, mark);
			for (int j = 0; n > MAX_READS && j < g->n; j++)
				if (p->group[j] >= 0 && find(up, j) == r && !out[j])
					cut[j] = 1, inner = changed = 1;
			for (int i = 0; n > MAX_READS && !inner && i < f->nouts; i++)
				if (p->group[f->outs[i].node->id] >= 0 &&
				    find(up, f->outs[i].node->id) == r)
					ban[f->outs[i].node->id] = 1, changed = 1;
		}
	}
	/* number the groups, list the nodes */
	int *num = arena_alloc(g->A, (size_t)g->n * sizeof *num);
	for (int i = 0; i < g->n; i++)
		num[i] = -1;
	p->late = arena_alloc(g->A, (size_t)g->n * sizeof *p->late);
	for (int i = 0; i < g->n; i++) {
		if (p->group[i] < 0)
			continue;
		int r = find(up, i);
		if (num[r] < 0)
			num[r] = p->ngroups++;
		p->group[i] = num[r];
		p->late[p->nlate++] = g->nodes[i];
	}
}

/* Sums over the batch of fewer elements stay one loop: the 512-wide MLP's three bias
 * gradients (64K elements each) in parts took 5.6% more instructions to compile its
 * train_step, for a step no faster. */
enum { PARTS_MIN = 1 << 18 };
int reduce_parts(const Node *n)
{
	if ((n->op != OP_SUM && n->op != OP_RMAX) || !(n->a[0] & 1))
		return 0;
	const Shape *x = &n->in[0]->sh;
	int64_t parts = x->d[0] / 4 < 8 ? x->d[0] / 4 : 8; /* 4 rows or more each */
	return x->rank >= 2 && shape_numel(x) >= PARTS_MIN && parts >= 2 ? (int)parts : 0;
}

/* Floats of workspace a node needs: its values, 64-byte aligned, plus scratch for its
 * kernel: a matmul's transposed operand or its halves' products, a convolution's
 * patches (im2col), a reduction's partials. */
static int64_t footprint(const Plan *p, const Node *n)
{
	/* a node whose epilogue is computed in its loop keeps no values of its own */
	int64_t size = p->epi[n->id] ? 0 : (shape_numel(&n->sh) + 15) & ~(int64_t)15;
	if (n->op == OP_MATMUL && n->a[1] && (n->a[0] || n->in[0]->sh.d[1] < 16))
		size += (shape_numel(&n->in[1]->sh) + 15) & ~(int64_t)15;
	if (matmul_halves(n)) /* the two halves' products */
		size += 2 * ((shape_numel(&n->sh) + 15) & ~(int64_t)15);
	size += reduce_parts(n) * shape_numel(&n->sh); /* the parts' partials */
	if ((n->op == OP_CONV2D || n->op == OP_CONV2D_BWD_DATA ||
	     n->op == OP_CONV2D_BWD_FILTER) &&
	    !conv_depthwise(n)) { /* (which needs no scratch) */
		/* im2col: C*KH*KW rows of OH*OW positions, or a padded image and its
		 * output (conv_flat), for one image per lane (for a chunk of images
		 * per lane for the filter gradient, see kernels.c, which also sums
		 * each lane's images apart) */
		const Shape *x = n->op == OP_CONV2D_BWD_DATA ? &n->sh : &n->in[0]->sh;
		const Shape *w = n->op == OP_CONV2D_BWD_FILTER ? &n->sh : &n->in[1]->sh;
		const Shape *y = n->op == OP_CONV2D            ? &n->sh
		                 : n->op == OP_CONV2D_BWD_DATA ? &n->in[0]->sh
		                                               : &n->in[1]->sh;
		int64_t lanes = x->d[0] < CONV_LANES ? x->d[0] : CONV_LANES;
		ConvFlat f;
		int64_t per = conv_pointwise(n) ? 0 /* the image is its patches */
		              : conv_flat(n, &f)
		                  ? f.xs + f.ys /* padded image, output */
		                  : x->d[1] * w->d[2] * w->d[3] * y->d[2] * y->d[3];
		size +=
		    per * lanes *
		    (n->op == OP_CONV2D_BWD_FILTER ? conv_chunk(per, x->d[0], lanes) : 1);
		if (n->op == OP_CONV2D_BWD_FILTER) /* and each lane's partial dW */
			size += lanes * shape_numel(&n->sh);
		if (n->op == OP_CONV2D_BWD_DATA && conv_flat(n, &f)) /* w, transposed */
			size += (shape_numel(w) + 15) & ~(int64_t)15;
	}
	return size;
}

/* First-fit allocation of workspace spans, freed after their last reader's loop. */
typedef struct Span {
	int64_t off, size;
} Span;

static int64_t take(Span *free, int *nfree, int64_t size, int64_t *top)
{
	for (int i = 0; i < *nfree; i++)
		if (free[i].size >= size) {
			int64_t off = free[i].off;
			free[i].off += size, free[i].size -= size;
			if (!free[i].size)
				free[i] = free[--*nfree];
			return off;
		}
	int64_t off = *top;
	*top += size;
	return off;
}

static void give(Span *free, int *nfree, int64_t off, int64_t size)
{
	for (int i = 0; i < *nfree; i++) { /* merge with a neighbour */
		if (free[i].off + free[i].size == off) {
			free[i].size += size;
			return;
		}
		if (off + size == free[i].off) {
			free[i].off = off, free[i].size += size;
			return;
		}
	}
	free[(*nfree)++] = (Span){off, size};
}

/* Marks the stored nodes that r, a pointwise node of a loop of count elements, reads
 * through the nodes fused into it: 1 where it reads the element it writes (as many
 * elements: the same flat index), 2 where it reads others (a broadcast, or a window's
 * input at shifted indices). */
static void loop_reads(const Plan *p, const Node *r, int64_t count, char *how)
{
	for (int k = 0; k < r->nin; k++) {
		Node *x = r->in[k], *o = owner(x);
		if (p->inl[x->id] && pointwise(x)) {
			loop_reads(p, x, count, how);
		} else if (p->inl[x->id]) {
			how[owner(x->in[0])->id] = 2;
		} else if (!(opinfo[o->op].flags & OPF_LEAF)) {
			int same = shape_numel(&x->sh) == count;
			how[o->id] = how[o->id] == 2 || !same ? 2 : 1;
		}
	}
}

/* The stored node whose span a pointwise node n can take (in place), or NULL: one its
 * loop reads last, only at the element it writes, of n's footprint. The loop reads
 * each element before it writes it, and no other. A pass writes where the one before
 * read, in cache. Not for spans under 16 KB, in cache anyway. (The first-fit placement
 * of the rest can come out smaller, a conv + batch norm model's workspace 6.8 MB
 * instead of 8.8, or larger, LeNet's 7.7 instead of 6.6.) */
enum { IN_PLACE_MIN = 1 << 12 };
static Node *in_place(Graph *g, const Plan *p, Node *n, int k, const int *last, char *how)
{
	if (!pointwise(n) || p->epi[n->id] || g->no_fusion ||
	    footprint(p, n) < IN_PLACE_MIN)
		return NULL;
	memset(how, 0, (size_t)g->n);
	loop_reads(p, n, shape_numel(&n->sh), how);
	for (int i = 0; i < g->n; i++)
		if (how[i] == 1 && last[i] == k && p->buf[i].kind == BUF_WORK &&
		    footprint(p, g->nodes[i]) == footprint(p, n))
			return g->nodes[i];
	return NULL;
}

/* Workspace by liveness: a node's span is reused once the last loop reading it (directly,
 * through a view, or through a fused user) has run. Outputs live to the end. A pointwise
 * node may take the span of an input it reads last (in_place). */
static void assign(Graph *g, FnKind fn, Plan *p)
{
	int *pos = arena_alloc(g->A, (size_t)g->n * sizeof *pos),
	    *last = arena_alloc(g->A, (size_t)g->n * sizeof *last);
	for (int k = 0; k < p->n; k++) {
		pos[p->order[k]->id] = k;
		if (p->epi[p->order[k]->id])
			pos[p->epi[p->order[k]->id]->id] = k;
	}
	/* where each node's values are computed: its loop's position in the order,
	 * the end for the update phase, or, fused, the last of its users' (users come
	 * after their inputs) */
	int *at = arena_alloc(g->A, (size_t)g->n * sizeof *at);
	for (int i = 0; i < g->n; i++)
		last[i] = -1, at[i] = -1;
	for (int i = g->n - 1; i >= 0; i--) {
		Node *n = g->nodes[i];
		if (!p->live[i] || (opinfo[n->op].flags & OPF_LEAF))
			continue;
		if (p->group[i] >= 0)
			at[i] = p->n;
		else if (opinfo[n->op].flags & OPF_VIEW)
			at[i] = -1;
		else if (!p->inl[i])
			at[i] = pos[i];
		for (int k = 0; k < n->nin && at[i] >= 0; k++) {
			Node *x = n->in[k], *o = owner(x);
			last[o->id] = last[o->id] > at[i] ? last[o->id] : at[i];
			if (p->inl[x->id] && p->group[x->id] < 0 && at[x->id] < at[i])
				at[x->id] = at[i];
		}
	}
	for (int i = 0; i < g->fns[fn].nouts; i++)
		last[owner(g->fns[fn].outs[i].node)->id] = p->n;
	if (p->ngroups) /* the update phase's check flag, at the end */
		p->flag_off = p->nwork, p->nwork += 16;
	Span *free = arena_alloc(g->A, (size_t)(p->n + 1) * 2 * sizeof *free);
	int nfree = 0;
	char *how = arena_alloc(g->A, (size_t)g->n);
	for (int k = 0; k < p->n; k++) {
		Node *n = p->order[k], *e = p->epi[n->id],
		     *x = in_place(g, p, n, k, last, how);
		if (x) /* x's span is n's now, given back after n's last reader */
			p->buf[n->id] = p->buf[x->id], last[x->id] = -1;
		else
			p->buf[n->id] = (Buf){
			    BUF_WORK, take(free, &nfree, footprint(p, n), &p->nwork)};
		if (e)
			p->buf[e->id] = (Buf){
			    BUF_WORK, take(free, &nfree, footprint(p, e), &p->nwork)};
		for (int j = 0; j <= k; j++) { /* spans whose last reader was loop k */
			Node *m = p->order[j], *me = p->epi[m->id];
			if (last[m->id] == k)
				give(free, &nfree, p->buf[m->id].off, footprint(p, m));
			if (me && last[me->id] == k)
				give(free, &nfree, p->buf[me->id].off, footprint(p, me));
		}
	}
}

/* A loop that would read more than MAX_READS values (70 parameters summed;
 * clip_grad_norm's sum of the norms of 64 gradients) stores nodes fused into it. In
 * one pass from the inputs up: a node's count is what its fused inputs count and 1 for
 * each stored one (a value read twice counts twice: more than it reads, never less),
 * and a node over the limit stores its fused input of the largest count until it is
 * not, so every loop is within it and a chain of n sums is about n / MAX_READS loops.
 * (Linear: walking each tree from its root, for each node cut, was cubic in a long
 * chain of fused products, a tanh chain's gradient.) */
static void limit_reads(Graph *g, Plan *p)
{
	int *cnt = arena_alloc(g->A, (size_t)g->n * sizeof *cnt);
	for (int i = 0; i < g->n; i++) {
		Node *n = g->nodes[i];
		if (!p->live[i] || (opinfo[n->op].flags & OPF_LEAF))
			continue;
		int c = 0;
		for (int k = 0; k < n->nin; k++) {
			Node *x = n->in[k];
			c += p->inl[x->id] ? cnt[x->id] : owner(x)->op != OP_CONST;
		}
		while (c > MAX_READS) {
			Node *best = NULL;
			for (int k = 0; k < n->nin; k++) {
				Node *x = n->in[k];
				if (p->inl[x->id] &&
				    (!best || cnt[x->id] > cnt[best->id]))
					best = x;
			}
			if (!best || cnt[best->id] <= 1)
				break; /* (no op has that many inputs of its own) */
			p->inl[best->id] = 0;
			c -= cnt[best->id] - 1;
		}
		cnt[i] = c;
	}
}

Plan *plan_fn(Graph *g, FnKind fn)
{
	Plan *p = arena_alloc(g->A, sizeof *p);
	p->fn = fn;
	p->buf = arena_alloc(g->A, (size_t)g->n * sizeof *p->buf);
	p->order = arena_alloc(g->A, (size_t)g->n * sizeof *p->order);
	p->inl = arena_alloc(g->A, (size_t)g->n);
	char *live = p->live = arena_alloc(g->A, (size_t)g->n);
	for (int i = 0; i < g->fns[fn].nouts; i++)
		mark_live(g->fns[fn].outs[i].node, live);
	int *nuse = arena_alloc(g->A, (size_t)g->n * sizeof *nuse);
	Node **user = arena_alloc(g->A, (size_t)g->n * sizeof *user);
	fuse(g, fn, p, nuse, user);
	p->group = arena_alloc(g->A, (size_t)g->n * sizeof *p->group);
	updates(g, fn, p);
	for (int i = 0; i < g->n; i++) /* the update phase's nests are flat */
		if (p->inl[i] && window(g->nodes[i]) && p->group[user[i]->id] >= 0)
			p->inl[i] = 0;
	/* A node recomputed by several loops (fuse) is stored after all when the update
	 * phase, outside it, is one of them: the phase writes parameters in place, one
	 * group after another, and a group would compute it from another's new values */
	for (int j = 0; j < g->n; j++)
		for (int k = 0; p->live[j] && p->group[j] >= 0 && k < g->nodes[j]->nin;
		     k++) {
			Node *x = g->nodes[j]->in[k];
			if (p->inl[x->id] && p->group[x->id] < 0 && nuse[x->id] > 1)
				p->inl[x->id] = 0;
		}
	limit_reads(g, p);
	p->epi = arena_alloc(g->A, (size_t)g->n * sizeof *p->epi);
	epilogues(g, p, nuse, user);
	char *made = arena_alloc(g->A, (size_t)g->n); /* in another node's loop */
	for (int i = 0; i < g->n; i++)
		if (p->epi[i])
			made[p->epi[i]->id] = 1;
	for (int i = 0; i < g->n; i++) {
		Node *n = g->nodes[i];
		if (!live[i] || p->group[i] >= 0 || made[i])
			continue;
		if (opinfo[n->op].flags & OPF_LEAF)
			p->buf[i] = leaf_buf(g, n);
		else if (opinfo[n->op].flags & OPF_VIEW)
			p->buf[i] = p->buf[n->in[0]->id];
		else if (!p->inl[i])
			p->order[p->n++] = n;
	}
	assign(g, fn, p);
	for (int i = 0; i < g->n; i++) /* views of computed nodes, now placed */
		if (live[i] && (opinfo[g->nodes[i]->op].flags & OPF_VIEW))
			p->buf[i] = p->buf[owner(g->nodes[i])->id];
	return p;
}
