/* Reverse-mode automatic differentiation: the backward graph as ordinary IR.
 *
 * ad_backward walks the forward graph from the loss back to the parameters in reverse
 * creation (topological) order. For each node that carries a gradient it calls the op's
 * rule (grad.c), stamping the nodes the rule builds with the forward node, the rule's
 * name and the forward node's YAML location. Rules hand back contributions through
 * ad_accum; this driver alone sums a contribution back to its input's shape where the op
 * broadcast (un-broadcasting) and adds up contributions from several consumers. The
 * result is plain IR: it can be printed, optimized and differentiated again.
 */
#include <stdlib.h>
#include <string.h>

#include "dc.h"

struct Grad {
	Graph *g;
	int n0;      /* nodes that existed before the backward pass */
	Node **adj;  /* adj[id]: d(loss)/d(node), NULL while zero */
	char *needs; /* needs[id]: some wrt node depends on it */
	char *reach; /* reach[id]: the loss depends on it */
};

Graph *ad_graph(Grad *gr) { return gr->g; }

/* Sums dx over the axes where x was broadcast, so the result has x's shape. */
static Node *unbroadcast(Graph *g, Node *dx, const Shape *to)
{
	if (!dx || shape_eq(&dx->sh, to))
		return dx;
	int lead = dx->sh.rank - to->rank;
	check(lead >= 0);
	uint32_t axes = 0;
	for (int i = 0; i < dx->sh.rank; i++)
		if (i < lead || (to->d[i - lead] == 1 && dx->sh.d[i] != 1))
			axes |= 1u << i;
	return ir_reshape(g, ir_sum(g, dx, axes, 1), *to);
}

void ad_accum(Grad *gr, Node *n, int i, Node *dx)
{
	Node *x = n->in[i];
	if (!dx || !gr->needs[x->id])
		return;
	dx = unbroadcast(gr->g, dx, &x->sh);
	if (!gr->adj[x->id]) {
		gr->adj[x->id] = dx;
		return;
	}
	/* the sum of x's users' gradients: no one rule's, but x's own, at x's place */
	Stamp old = ir_stamp(gr->g, (Stamp){x->loc, x, "sum of uses", x->label});
	gr->adj[x->id] = ir_add(gr->g, gr->adj[x->id], dx);
	ir_stamp(gr->g, old);
}

static void mark(Grad *gr, Node *loss, Node *const *wrt, int nwrt)
{
	for (int k = 0; k < nwrt; k++)
		gr->needs[wrt[k]->id] = 1;
	for (int i = 0; i < gr->n0; i++) {
		Node *n = gr->g->nodes[i];
		for (int j = 0; j < n->nin; j++)
			gr->needs[i] |= gr->needs[n->in[j]->id];
	}
	gr->reach[loss->id] = 1;
	for (int i = loss->id; i >= 0; i--) {
		Node *n = gr->g->nodes[i];
		if (gr->reach[i])
			for (int j = 0; j < n->nin; j++)
				gr->reach[n->in[j]->id] = 1;
	}
}

/* Whether n depends on w (seen: ids already visited). */
static int depends(const Node *n, const Node *w, char *seen)
{
	if (n == w)
		return 1;
	if (n->id < w->id || seen[n->id])
		return 0;
	seen[n->id] = 1;
	for (int i = 0; i < n->nin; i++)
		if (depends(n->in[i], w, seen))
			return 1;
	return 0;
}

/* A parameter with no gradient that reaches the loss through an op with none
 * (argmax, one_hot) reaches it only that way: an error naming both. A parameter that
 * also reaches it another way gets that way's gradient, as in PyTorch. */
static int only_through_cuts(Grad *gr, Node **cuts, int ncuts, Node *const *wrt, int nwrt,
                             Node **out)
{
	char *seen = calloc((size_t)gr->g->n, 1);
	if (!seen)
		die("out of memory");
	for (int k = 0; k < nwrt; k++)
		for (int c = 0; !out[k] && c < ncuts; c++) {
			memset(seen, 0, (size_t)gr->g->n);
			if (!depends(cuts[c], wrt[k], seen))
				continue;
			error_at(
			    gr->g->diags, cuts[c]->loc,
			    "the loss depends on '%s' only through '%s', which has no "
			    "derivative",
			    wrt[k]->op == OP_PARAM ? gr->g->params[wrt[k]->a[0]].name
			                           : "a parameter",
			    cuts[c]->op == OP_ONEHOT
			        ? "one_hot" /* as the model calls it */
			        : opinfo[cuts[c]->op].name);
			free(seen);
			return -1;
		}
	free(seen);
	return 0;
}

int ad_backward(Graph *g, Node *loss, Node *const *wrt, int nwrt, Node **out)
{
	check(loss->sh.rank == 0);
	Grad gr = {g, g->n, NULL, NULL, NULL};
	gr.adj = calloc(g->n, sizeof *gr.adj);
	gr.needs = calloc(g->n, 1);
	gr.reach = calloc(g->n, 1);
	if (!gr.adj || !gr.needs || !gr.reach)
		die("out of memory");
	mark(&gr, loss, wrt, nwrt);
	/* restored after: grad() inside an expression is differentiated while that
	 * expression's own nodes are being made */
	Stamp saved = ir_stamp(g, (Stamp){loss->loc, g->cur_fwd, "seed", g->cur_label});
	int status = 0;

	gr.adj[loss->id] = ir_scalar(g, 1.0);
	Node *cuts[8]; /* ops with no derivative that a parameter reaches the loss by */
	int ncuts = 0;
	for (int i = loss->id; i >= 0 && status == 0; i--) {
		Node *n = g->nodes[i], *dy = gr.adj[i];
		if (!dy || !gr.needs[i] || !gr.reach[i] ||
		    (opinfo[n->op].flags & OPF_LEAF))
			continue;
		if (opinfo[n->op].flags & OPF_NODIFF) {
			if (ncuts < 8)
				cuts[ncuts++] = n;
			continue;
		}
		ir_stamp(g, (Stamp){n->loc, n, opinfo[n->op].name, n->label});
		grad_rules[n->op](&gr, n, dy);
		if (g->diags->nerr)
			status = -1;
	}
	for (int k = 0; k < nwrt; k++)
		out[k] = gr.adj[wrt[k]->id];
	if (status == 0)
		status = only_through_cuts(&gr, cuts, ncuts, wrt, nwrt, out);
	ir_stamp(g, saved);
	free(gr.adj);
	free(gr.needs);
	free(gr.reach);
	return status;
}
