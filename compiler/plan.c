/* Buffer planning: for one function, which nodes to compute and where each one lives.
 *
 * Requires: a graph whose function fn has its outputs. Leaves live in the buffers they
 * name (parameters, gradients, optimizer state, hyperparameters, io slots); constants
 * live nowhere (codegen inlines them, also through views); views (OPF_VIEW) share their
 * input's buffer; every other node gets its own span of the workspace, 64-byte aligned.
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

Plan *plan_fn(Graph *g, FnKind fn)
{
	Plan *p = arena_alloc(g->A, sizeof *p);
	p->fn = fn;
	p->buf = arena_alloc(g->A, (size_t)g->n * sizeof *p->buf);
	p->order = arena_alloc(g->A, (size_t)g->n * sizeof *p->order);
	char *live = p->live = arena_alloc(g->A, (size_t)g->n);
	for (int i = 0; i < g->fns[fn].nouts; i++)
		mark_live(g->fns[fn].outs[i].node, live);
	for (int i = 0; i < g->n; i++) {
		Node *n = g->nodes[i];
		if (!live[i])
			continue;
		if (opinfo[n->op].flags & OPF_LEAF) {
			p->buf[i] = leaf_buf(g, n);
			continue;
		}
		if (opinfo[n->op].flags & OPF_VIEW) {
			p->buf[i] = p->buf[n->in[0]->id];
			continue;
		}
		p->buf[i] = (Buf){BUF_WORK, p->nwork};
		p->nwork += (shape_numel(&n->sh) + 15) & ~(int64_t)15;
		p->order[p->n++] = n;
	}
	return p;
}
