/* Lowering: Model -> Graph at a fixed batch size.
 *
 * Layers become primitive ops (a dense layer is matmul + add + activation, with the
 * weight in PyTorch's [out, in] layout), the loss becomes a per-example loss weighted by
 * the `weight` input (1/count for real rows, 0 for the padding of a final partial batch,
 * so the loss is the mean over real examples), autodiff adds the backward graph, and the
 * optimizer its update. The functions:
 *
 *   forward     x -> output
 *   evaluate    x, y, weight -> loss, output
 *   grad        x, y, weight -> loss, d(loss)/d(param) into the gradient buffer
 *   step        gradient buffer -> updated parameters and optimizer state
 *   train_step  grad and step from one joint graph
 */
#include "dc.h"

typedef struct Net {
	Node *out; /* the network's output (predictions) */
	Node
	    *logits; /* what a softmax cross-entropy takes: the output before a softmax */
} Net;

static Node *activate(Graph *g, Act act, Node *h)
{
	switch (act) {
	case ACT_NONE:
		return h;
	case ACT_RELU:
		return ir_unary(g, OP_RELU, h);
	case ACT_SIGMOID:
		return ir_unary(g, OP_SIGMOID, h);
	case ACT_TANH:
		return ir_unary(g, OP_TANH, h);
	case ACT_SOFTMAX:
		return ir_unary(g, OP_EXP, ir_logsoftmax(g, h));
	}
	return NULL;
}

static Node *dense(Graph *g, const Layer *l, Node *h)
{
	int64_t in = h->sh.d[1];
	Shape ws = {2, {l->units, in}};
	int w = ir_add_param(g, arena_printf(g->A, "%s.weight", l->name), ws, l->init, in,
	                     l->units, l->loc);
	h = ir_matmul(g, h, ir_param(g, w), 0, 1);
	if (l->bias) {
		int b = ir_add_param(g, arena_printf(g->A, "%s.bias", l->name),
		                     (Shape){1, {l->units}}, RT_INIT_TORCH_LINEAR, in,
		                     l->units, l->loc);
		h = ir_add(g, h, ir_param(g, b));
	}
	return h;
}

static Net forward(Graph *g, const Model *m)
{
	Node *h = ir_input(g, g->io_x), *logits = NULL;
	if (h->sh.rank != 2) { /* flatten to [batch, features] */
		int64_t b = h->sh.d[0];
		h = ir_reshape(g, h, (Shape){2, {b, shape_numel(&h->sh) / b}});
	}
	for (int i = 0; i < m->nlayers && h; i++) {
		const Layer *l = &m->layers[i];
		g->cur_loc = l->loc;
		g->cur_label = l->name;
		if (l->kind == LAYER_DENSE)
			h = dense(g, l, h);
		logits = h;
		h = activate(g, l->act, h);
	}
	g->cur_label = NULL;
	/* softmax cross-entropy takes the logits: a trailing softmax is its own business
	 */
	int last_softmax = m->nlayers && m->layers[m->nlayers - 1].act == ACT_SOFTMAX;
	return (Net){h, last_softmax ? logits : h};
}

/* Per-example loss, shape [batch]. */
static Node *example_loss(Graph *g, const Model *m, Net net)
{
	Node *y = ir_input(g, g->io_y);
	g->cur_loc = m->loss_loc;
	if (!net.out)
		return NULL;
	if (m->loss == LOSS_SOFTMAX_XENT) {
		/* -sum_c onehot(y)_c * log_softmax(logits)_c */
		Node *ls = ir_logsoftmax(g, net.logits);
		if (!ls)
			return NULL;
		if (ls->sh.rank != 2) {
			error_at(g->diags, m->loss_loc,
			         "softmax_cross_entropy needs [batch, classes] scores");
			return NULL;
		}
		Node *oh = ir_onehot(g, y, ls->sh.d[1]);
		return ir_neg(g, ir_sum(g, ir_mul(g, oh, ls), 2, 0));
	}
	/* mse: mean over the features of (out - y)^2 */
	Node *out = net.out;
	if (y && shape_numel(&y->sh) == shape_numel(&out->sh) &&
	    !shape_eq(&y->sh, &out->sh))
		y = ir_reshape(g, y, out->sh);
	if (!y || !shape_eq(&y->sh, &out->sh)) {
		char a[128], b[128];
		error_at(
		    g->diags, m->loss_loc,
		    "mse: the network's output has shape %s but the target '%s' has %s",
		    shape_str(&out->sh, a, sizeof a), g->ios[g->io_y].name,
		    y ? shape_str(&y->sh, b, sizeof b) : "none");
		return NULL;
	}
	Node *d = ir_sub(g, out, y);
	if (!d)
		return NULL;
	uint32_t feat = ((1u << d->sh.rank) - 1) & ~1u;
	Node *sq = ir_mul(g, d, d);
	return feat ? ir_mean(g, sq, feat, 0) : sq;
}

static void add_ios(Graph *g, const Model *m, int64_t batch)
{
	for (int k = 0; k < 2; k++) {
		const ModelInput *in = &m->inputs[k ? m->y : m->x];
		Shape s = shape_of(in->rank, in->dims);
		s.d[0] = batch;
		int slot = ir_add_io(g, in->name, RT_IO_INPUT, in->dt, s, in->loc);
		*(k ? &g->io_y : &g->io_x) = slot;
	}
	g->io_weight =
	    ir_add_io(g, "weight", RT_IO_INPUT, DT_F32, (Shape){1, {batch}}, m->loss_loc);
}

Graph *lower_model(Arena *A, Diags *d, const Model *m, int64_t batch)
{
	Graph *g = ir_new(A, d);
	add_ios(g, m, batch);
	Net net = forward(g, m);
	Node *per = example_loss(g, m, net);
	Node *loss = ir_sum_all(g, ir_mul(g, per, ir_input(g, g->io_weight)));
	if (!loss || d->nerr)
		return NULL;
	g->io_output =
	    ir_add_io(g, "output", RT_IO_OUTPUT, DT_F32, net.out->sh, m->loss_loc);
	g->io_loss =
	    ir_add_io(g, "loss", RT_IO_OUTPUT, DT_F32, (Shape){0, {0}}, m->loss_loc);
	ir_fn_out(g, FN_FORWARD, net.out, DEST_IO, g->io_output);
	ir_fn_out(g, FN_EVALUATE, net.out, DEST_IO, g->io_output);
	ir_fn_out(g, FN_EVALUATE, loss, DEST_IO, g->io_loss);

	Optim *opt = optim_setup(g, m);
	Node **wrt = arena_alloc(A, (size_t)(g->nparams + 1) * sizeof *wrt);
	Node **grads = arena_alloc(A, (size_t)(g->nparams + 1) * sizeof *grads);
	for (int i = 0; i < g->nparams; i++)
		wrt[i] = ir_param(g, i);
	if (ad_backward(g, loss, wrt, g->nparams, grads) < 0)
		return NULL;
	ir_fn_out(g, FN_GRAD, loss, DEST_IO, g->io_loss);
	for (int i = 0; i < g->nparams; i++) {
		/* a parameter the loss does not reach has gradient 0 */
		Node *gi = grads[i] ? grads[i] : ir_const(g, 0, g->params[i].sh);
		ir_fn_out(g, FN_GRAD, gi, DEST_GRAD, i);
	}
	ir_fn_out(g, FN_TRAIN_STEP, loss, DEST_IO, g->io_loss);
	optim_update(g, opt, grads, FN_TRAIN_STEP);

	Node **gbuf = arena_alloc(A, (size_t)(g->nparams + 1) * sizeof *gbuf);
	for (int i = 0; i < g->nparams; i++)
		gbuf[i] = ir_gradbuf(g, i);
	optim_update(g, opt, gbuf, FN_STEP);
	return d->nerr ? NULL : g;
}
