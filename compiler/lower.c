/* Lowering: Model -> Graph at a fixed batch size.
 *
 * The model's nodes (sequential layers or the graph form, both calls and expressions,
 * see model.c) are evaluated in order in a scope of names: inputs, free parameters,
 * nodes so far. Calls go through the function table (layers.c), which builds primitive
 * ops. The loss is one more expression; loss functions reduce over the batch with the
 * `weight` input (1 for real rows, 0 for the padding of a final partial batch), so the
 * loss is the mean over real examples.
 *
 * A model whose layers behave differently in training (dropout, batch norm) is lowered
 * twice into the same graph, sharing parameters: a training graph for grad and
 * train_step, an evaluation graph for forward and evaluate. Then autodiff adds the
 * backward graph and the optimizer its update:
 *
 *   forward     inputs -> output
 *   evaluate    inputs, target, weight -> loss, output
 *   grad        inputs, target, weight -> loss, d(loss)/d(param) into the gradient buffer
 *   step        gradient buffer -> updated parameters and optimizer state
 *   train_step  grad and step from one joint graph, plus running statistics
 *
 * Last, what the graph shows about the model: warnings for inputs and nodes neither the
 * loss nor the output is computed from and for trainable parameters the loss does not
 * depend on, and an error when the memory it needs is past MAX_BYTES.
 */
#include <ctype.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "dc.h"

static void bind(Lower *L, const char *name, Node *v)
{
	if (L->n == L->cap) {
		int cap = L->cap ? 2 * L->cap : 32;
		const char **nn = arena_alloc(L->g->A, (size_t)cap * sizeof *nn);
		Node **nv = arena_alloc(L->g->A, (size_t)cap * sizeof *nv);
		if (L->n) {
			memcpy(nn, L->names, (size_t)L->n * sizeof *nn);
			memcpy(nv, L->vals, (size_t)L->n * sizeof *nv);
		}
		L->names = nn, L->vals = nv, L->cap = cap;
	}
	L->names[L->n] = name;
	L->vals[L->n++] = v;
}

static int find_param(Graph *g, const char *name)
{
	for (int i = 0; i < g->nparams; i++)
		if (!strcmp(g->params[i].name, name))
			return i;
	return -1;
}

Node *lower_param(Lower *L, const char *suffix, Shape sh, rt_init init, double value,
                  int64_t fan_in, int64_t fan_out, int trainable, SrcLoc loc)
{
	Graph *g = L->g;
	const char *name =
	    L->nlayers > 1 ? arena_printf(g->A, "%s_%d.%s", L->def, L->nlayers, suffix)
	                   : arena_printf(g->A, "%s.%s", L->def, suffix);
	int k = find_param(g, name);
	if (k < 0) { /* the first lowering makes it, the second finds it */
		k = ir_add_param(g, name, sh, init, fan_in, fan_out, loc);
		g->params[k].value = value;
		g->params[k].trainable = trainable;
	}
	return ir_param(g, k);
}

void lower_update(Lower *L, Node *param, Node *value)
{
	if (L->nupdates == L->capupdates) {
		int cap = L->capupdates ? 2 * L->capupdates : 8;
		struct Update *u = arena_alloc(L->g->A, (size_t)cap * sizeof *u);
		if (L->nupdates)
			memcpy(u, L->updates, (size_t)L->nupdates * sizeof *u);
		L->updates = u, L->capupdates = cap;
	}
	L->updates[L->nupdates++] = (struct Update){value, (int)param->a[0]};
}

void lower_differentiated(Lower *L, Node *f)
{
	if (L->ndiff == L->capdiff) {
		int cap = L->capdiff ? 2 * L->capdiff : 8;
		Node **v = arena_alloc(L->g->A, (size_t)cap * sizeof *v);
		if (L->ndiff)
			memcpy(v, L->differentiated, (size_t)L->ndiff * sizeof *v);
		L->differentiated = v, L->capdiff = cap;
	}
	L->differentiated[L->ndiff++] = f;
}

static int find_name(const char *const *v, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(v[i], name))
			return i;
	return -1;
}

Node *lower_seed(Lower *L)
{
	Graph *g = L->g;
	int k = find_name(g->hypers, g->nhypers, "seed");
	return ir_hyper(g, k >= 0 ? k
	                          : ir_add_hyper(g, "seed", rt_dropout_seed(L->m->seed)));
}

/* The step counter that draws fresh dropout masks every step: one float in the state,
 * exact up to 2^24 steps; train_step increments it. Its place is the first dropout
 * layer's (the increment's line in the IR). */
Node *lower_counter(Lower *L)
{
	Graph *g = L->g;
	for (int i = 0; i < g->nstates; i++)
		if (!strcmp(g->states[i].name, "dropout_step"))
			return ir_state(g, i);
	int k = ir_add_state(g, "dropout_step", (Shape){0, {0}});
	g->states[k].loc = g->cur_loc;
	return ir_state(g, k);
}

/* ---- expressions ---- */

static Node *lookup(Lower *L, const Expr *e)
{
	for (int i = L->n - 1; i >= 0; i--)
		if (!strcmp(L->names[i], e->name))
			return L->vals[i];
	int k = find_param(L->g, e->name); /* a layer's parameter: fc1.weight */
	if (k >= 0)
		return ir_param(L->g, k);
	if (!strcmp(e->name, "output") && !L->m->output) {
		error_at(L->d, e->loc,
		         "the loss takes the network's output, but the model has no "
		         "layers or nodes to make one");
		return NULL;
	}
	/* the candidates: every name of the model, those not yet in scope too */
	const Model *m = L->m;
	const char **cands =
	    arena_alloc(L->g->A, (size_t)(L->n + m->ndefs + 1) * sizeof *cands);
	if (L->n)
		memcpy(cands, L->names, (size_t)L->n * sizeof *cands);
	for (int i = 0; i < m->ndefs; i++)
		cands[L->n + i] = m->defs[i].name;
	const char *near = did_you_mean(e->name, cands, L->n + m->ndefs),
	           *fun = fun_alias(e->name); /* (loss: CrossEntropyLoss) */
	if (near) /* (a name of the model's first: 'fc' may be 'fc1', not 'dense') */
		error_at(L->d, e->loc, "unknown name '%s'; did you mean '%s'?", e->name,
		         near);
	else if (fun)
		error_at(L->d, e->loc, "unknown name '%s'; descent calls it '%s'",
		         e->name, fun);
	else
		error_at(L->d, e->loc, "unknown name '%s'", e->name);
	return NULL;
}

static Node *binary(Lower *L, const Expr *e)
{
	Node *a = lower_expr(L, e->args[0]), *b = lower_expr(L, e->args[1]);
	Graph *g = L->g;
	g->cur_loc = e->loc;
	if (!a || !b)
		return NULL;
	switch (e->op) {
	case '+':
		return ir_add(g, a, b);
	case '-':
		return ir_sub(g, a, b);
	case '*':
		return ir_mul(g, a, b);
	case '/':
		return ir_div(g, a, b);
	case '^':
		return ir_binary(g, OP_POW, a, b);
	case '>':
		return ir_binary(g, OP_GT, a, b);
	case '<':
		return ir_binary(g, OP_GT, b, a);
	case 'g':
		return ir_binary(g, OP_GE, a, b);
	case 'l':
		return ir_binary(g, OP_GE, b, a);
	default:
		return ir_binary(g, OP_EQ, a, b);
	}
}

static Node *call(Lower *L, const Expr *e)
{
	const Fun *f = fun_lookup(e->name);
	KwVal kw[MAXKW];
	if (!f || fun_args(L->d, f, e, kw) < 0) {
		if (!f)
			fun_check(L->d, e);
		return NULL;
	}
	int na = e->nargs, ok = 1; /* (concat takes any number) */
	Node **args = arena_alloc(L->g->A, (size_t)(na + 1) * sizeof *args);
	for (int i = 0; i < na && !(f->flags & FUN_RAW); i++)
		ok &= (args[i] = lower_expr(L, e->args[i])) != NULL;
	if (!ok)
		return NULL;
	L->g->cur_loc = e->loc;
	if (f->flags & FUN_LAYER)
		L->nlayers++;
	const char *was = L->g->cur_fn; /* (errors name what the user wrote) */
	L->g->cur_fn = e->name;
	Node *n = f->build(L, e, args, na, kw);
	L->g->cur_fn = was;
	return n;
}

Node *lower_expr(Lower *L, const Expr *e)
{
	Graph *g = L->g;
	g->cur_loc = e->loc;
	switch (e->kind) {
	case EX_NUM:
		if (!isfinite(e->num)) {
			error_at(L->d, e->loc, "'%s' is not a finite number",
			         e->text ? e->text : "?");
			return NULL;
		}
		/* a value of the graph is a float: 1e39 would be inf, 1e-50 0 (and values
		 * below FLT_MIN are flushed to 0 as the steps run) */
		if (isinf((float)e->num) || (e->num != 0 && fabs(e->num) < FLT_MIN)) {
			error_at(
			    L->d, e->loc,
			    "'%s' is %s a 32-bit float's range (%g to %g), which the "
			    "model computes in",
			    e->text ? e->text : "?",
			    isinf((float)e->num) ? "beyond" : "below", (double)FLT_MIN,
			    (double)FLT_MAX);
			return NULL;
		}
		return ir_scalar(g, e->num);
	case EX_NAME:
		return lookup(L, e);
	case EX_NEG: {
		Node *x = lower_expr(L, e->args[0]);
		g->cur_loc = e->loc;
		return ir_neg(g, x);
	}
	case EX_BIN:
		return binary(L, e);
	case EX_CALL:
		return call(L, e);
	case EX_LIST:
		error_at(L->d, e->loc, "a list is not a value here");
		return NULL;
	}
	return NULL;
}

/* ---- the model ---- */

static void add_ios(Graph *g, const Model *m, int64_t batch)
{
	for (int k = 0; k < m->ninputs; k++) {
		const ModelInput *in = &m->inputs[k];
		Shape s = shape_of(in->rank, in->dims);
		s.d[0] = batch;
		ir_add_io(g, in->name, RT_IO_INPUT, in->dt, s, in->loc);
	}
	g->io_x = m->x;
	g->io_y = m->y;
	if (m->ninputs)
		g->io_weight = ir_add_io(g, "weight", RT_IO_INPUT, DT_F32,
		                         (Shape){1, {batch}}, m->loss_loc);
}

/* The model's values in one mode; returns the loss, *out the output (NULL if none). */
static Node *lower_once(Lower *L, Node **out)
{
	const Model *m = L->m;
	Graph *g = L->g;
	L->n = 0;
	for (int k = 0; k < m->ninputs; k++)
		bind(L, m->inputs[k].name, ir_input(g, k));
	for (int k = 0; k < m->nparams; k++) {
		const ParamDecl *p = &m->params[k];
		int i = find_param(g, p->name);
		if (i < 0) {
			/* the fans of torch's fan-based inits: [out, in, k...] gives in
			 * k... and out k... (1 and 1 for fewer than 2 dimensions) */
			int64_t fan_in = 1, fan_out = 1;
			if (p->rank >= 2) {
				fan_in = p->dims[1], fan_out = p->dims[0];
				for (int d = 2; d < p->rank; d++)
					fan_in = mul_sat(fan_in, p->dims[d]),
					fan_out = mul_sat(fan_out, p->dims[d]);
			}
			i = ir_add_param(g, p->name, shape_of(p->rank, p->dims), p->init,
			                 fan_in, fan_out, p->loc);
			g->params[i].value = p->value;
			g->params[i].trainable = p->trainable;
		}
		bind(L, p->name, ir_param(g, i));
	}
	for (int i = 0; i < m->ndefs; i++) {
		const Def *d = &m->defs[i];
		L->def = d->name;
		L->nlayers = 0;
		g->cur_label = d->name;
		Node *v = lower_expr(L, d->e);
		if (!v)
			return NULL;
		bind(L, d->name, v);
	}
	g->cur_label = NULL;
	*out = NULL;
	if (m->output) {
		Expr e = {.kind = EX_NAME, .name = m->output, .loc = m->output_loc};
		if (!(*out = lookup(L, &e)))
			return NULL;
		bind(L, "output", *out);
	}
	L->def = "loss";
	Node *loss = lower_expr(L, m->loss);
	char s[128];
	if (loss && loss->sh.rank != 0) {
		error_at(L->d, m->loss->loc,
		         "the loss must be a single number, got shape %s; "
		         "reduce it with sum() or mean()",
		         shape_str(&loss->sh, s, sizeof s));
		return NULL;
	}
	return loss;
}

static void functions(Graph *g, Lower *L, Node *loss, Node *out, Node *eloss, Node *eout)
{
	const Model *m = L->m;
	if (eout) {
		g->io_output =
		    ir_add_io(g, "output", RT_IO_OUTPUT, DT_F32, eout->sh, m->loss_loc);
		ir_fn_out(g, FN_FORWARD, eout, DEST_IO, g->io_output);
		ir_fn_out(g, FN_EVALUATE, eout, DEST_IO, g->io_output);
	}
	(void)out;
	g->io_loss =
	    ir_add_io(g, "loss", RT_IO_OUTPUT, DT_F32, (Shape){0, {0}}, m->loss_loc);
	ir_fn_out(g, FN_EVALUATE, eloss, DEST_IO, g->io_loss);
	ir_fn_out(g, FN_GRAD, loss, DEST_IO, g->io_loss);
	ir_fn_out(g, FN_TRAIN_STEP, loss, DEST_IO, g->io_loss);
}

/* Whether parameter `name` was made by a node said to be never used ("dead.weight",
 * "dead_2.weight": node 'dead', its second layer): its parameters then go unsaid (one
 * unused dense node gave three warnings) */
static int made_by_unused(const Lower *L, const char *name)
{
	for (int i = 0; L->unused && i < L->m->ndefs; i++) {
		const char *def = L->m->defs[i].name, *r = name + strlen(def);
		if (!L->unused[i] || strncmp(name, def, strlen(def)))
			continue;
		if (*r == '_' && isdigit((unsigned char)r[1]))
			for (r++; isdigit((unsigned char)*r); r++)
				;
		if (*r == '.')
			return 1;
	}
	return 0;
}

/* Gradients of the trainable parameters (the rest are constants to autodiff), the
 * update that uses them, and what else a training step writes back. */
static int training(Graph *g, Lower *L, Node *loss)
{
	Arena *A = g->A;
	Optim *opt = optim_setup(g, L->m);
	Node **wrt = arena_alloc(A, (size_t)(g->nparams + 1) * sizeof *wrt);
	Node **grads = arena_alloc(A, (size_t)(g->nparams + 1) * sizeof *grads);
	int *which = arena_alloc(A, (size_t)(g->nparams + 1) * sizeof *which), nw = 0;
	for (int i = 0; i < g->nparams; i++)
		if (g->params[i].trainable)
			which[nw] = i, wrt[nw++] = ir_param(g, i);
	Node **got = arena_alloc(A, (size_t)(nw + 1) * sizeof *got);
	if (ad_backward(g, loss, wrt, nw, got) < 0)
		return -1;
	for (int k = 0; k < nw; k++) {
		grads[which[k]] = got[k];
		if (!got[k] && !made_by_unused(L, g->params[which[k]].name))
			warn_at(L->d, g->params[which[k]].loc,
			        "parameter '%s' does not affect the loss; it will not be "
			        "trained",
			        g->params[which[k]].name);
	}
	for (int i = 0; i < g->nparams; i++) {
		/* a parameter the loss does not reach has gradient 0 */
		Node *gi = grads[i] ? grads[i] : ir_const(g, 0, g->params[i].sh);
		ir_fn_out(g, FN_GRAD, gi, DEST_GRAD, i);
	}
	optim_update(g, opt, grads, FN_TRAIN_STEP);
	/* what a forward pass in training mode writes back, as PyTorch's model.train()
	 * forward does: batch norm's running statistics and dropout's counter (fresh
	 * masks next time). grad's forward is that pass too, so that grad then step is
	 * train_step, and each micro-batch of an accumulated step counts as a forward. */
	static const FnKind forwards[] = {FN_GRAD, FN_TRAIN_STEP};
	for (int f = 0; f < 2; f++) {
		for (int i = 0; i < L->nupdates; i++)
			ir_fn_out(g, forwards[f], L->updates[i].value, DEST_PARAM,
			          L->updates[i].param);
		for (int i = 0; i < g->nstates; i++)
			if (!strcmp(g->states[i].name, "dropout_step") &&
			    (g->cur_loc = g->states[i].loc, 1))
				ir_fn_out(g, forwards[f],
				          ir_add(g, ir_state(g, i), ir_scalar(g, 1)),
				          DEST_STATE, i);
	}
	Node **gbuf = arena_alloc(A, (size_t)(g->nparams + 1) * sizeof *gbuf);
	for (int i = 0; i < g->nparams; i++)
		gbuf[i] = g->params[i].trainable ? ir_gradbuf(g, i) : NULL;
	optim_update(g, opt, gbuf, FN_STEP);
	return 0;
}

/* Inputs and nodes that neither the loss nor the output is computed from, in either
 * mode (L, E: the lowerings; their scopes hold inputs, parameters, then the nodes). A
 * function grad() was taken of counts as used, as the source reads it, though its
 * gradient's graph need not read its node (grad(w * w * w, w) is 3 w^2). */
static void warn_unused(Graph *g, Lower *L, const Lower *E, Node *const *roots,
                        int nroots)
{
	const Model *m = L->m;
	L->unused = arena_alloc(g->A, (size_t)m->ndefs + 1);
	char *seen = arena_alloc(g->A, (size_t)g->n + 1);
	for (int i = 0; i < nroots; i++)
		if (roots[i])
			seen[roots[i]->id] = 1;
	for (const Lower *l = L; l; l = l == L ? E : NULL)
		for (int i = 0; i < l->ndiff; i++)
			seen[l->differentiated[i]->id] = 1;
	for (int i = g->n - 1; i >= 0; i--) /* creation order is topological */
		for (int k = 0; seen[i] && k < g->nodes[i]->nin; k++)
			seen[g->nodes[i]->in[k]->id] = 1;
	for (int k = 0; k < m->ninputs; k++)
		if (!seen[L->vals[k]->id] && (!E || !seen[E->vals[k]->id]))
			warn_at(L->d, m->inputs[k].loc, "input '%s' is never used",
			        m->inputs[k].name);
	int base = m->ninputs + m->nparams;
	for (int i = 0; i < m->ndefs; i++) {
		const Def *df = &m->defs[i];
		Node *v = L->vals[base + i], *ev = E ? E->vals[base + i] : NULL;
		if (!seen[v->id] && (!ev || !seen[ev->id]) &&
		    (!m->output || strcmp(m->output, df->name))) {
			warn_at(L->d, df->loc, "the value of node '%s' is never used",
			        df->name);
			L->unused[i] = 1;
		}
	}
}

/* Parameters and their gradients, optimizer state, io slots and the largest function's
 * workspace must fit in MAX_BYTES; past it, the error names the largest tensor. Every
 * value is at most MAX_ELEMS (graph.c), so the sums do not overflow. */
static int check_memory(Graph *g, Diags *d, const Model *m)
{
	int64_t fixed = 2 * g->param_floats + g->state_floats, bound = 0;
	for (int i = 0; i < g->nios; i++)
		fixed += shape_numel(&g->ios[i].sh);
	for (int i = 0; i < g->n && bound <= MAX_BYTES;
	     i++) /* all in the workspace at once */
		if (!(opinfo[g->nodes[i]->op].flags & (OPF_LEAF | OPF_VIEW)))
			bound += shape_numel(&g->nodes[i]->sh);
	if ((fixed + bound) * 4 <= MAX_BYTES)
		return 0;
	Plan *worst = NULL;
	for (int f = 0; f < FN_COUNT; f++) {
		Plan *p = g->fns[f].defined ? plan_fn(g, (FnKind)f) : NULL;
		if (p && (!worst || p->nwork > worst->nwork))
			worst = p;
	}
	int64_t total = fixed + (worst ? worst->nwork : 0);
	if (total * 4 <= MAX_BYTES)
		return 0;
	const Tensor *bp = NULL;
	const Node *bn = NULL;
	for (int i = 0; i < g->nparams; i++)
		if (!bp || shape_numel(&g->params[i].sh) > shape_numel(&bp->sh))
			bp = &g->params[i];
	for (int k = 0; worst && k < worst->n; k++)
		if (!bn || shape_numel(&worst->order[k]->sh) > shape_numel(&bn->sh))
			bn = worst->order[k];
	char s[160];
	int node = bn && (!bp || shape_numel(&bn->sh) > shape_numel(&bp->sh));
	const Shape *sh = node ? &bn->sh : &bp->sh;
	SrcLoc at = node ? bn->loc : bp->loc;
	if (!at.file)
		at = (SrcLoc){m->file, 0, 0};
	error_at(
	    d, at,
	    "the model needs %.1f GiB for its parameters, gradients, optimizer state and "
	    "workspace, more than the limit of %lld GiB; the largest tensor is %s%s%s %s "
	    "(%.1f GiB)",
	    (double)total * 4 / (1 << 30), (long long)(MAX_BYTES >> 30),
	    node ? (bn->label ? "the value of '" : "a value") : "parameter '",
	    node ? (bn->label ? bn->label : "") : bp->name, node && !bn->label ? "" : "'",
	    shape_str(sh, s, sizeof s), (double)shape_numel(sh) * 4 / (1 << 30));
	return -1;
}

/* ---- how the loss adds up over a batch ----
 * An accumulated step (train: accumulate) sums the gradients of its micro-batches'
 * losses, each weighted to make the gradient of the whole batch's loss. That weight
 * is the micro-batch's share of the examples when the loss is a mean over them (plus
 * terms no example changes, a penalty on the weights), and 1 when it is a sum over
 * them; a loss of another form (a ratio of two sums over the batch, as in sum(w l) /
 * sum(w)) has no such weights. */
enum { K_FREE, K_MASK, K_SUM, K_MEAN, K_OTHER };

/* the weight input's values, through views (reshape, broadcast) */
static int is_mask(const Graph *g, const Node *n)
{
	while (n->op == OP_RESHAPE || n->op == OP_BROADCAST)
		n = n->in[0];
	return n->op == OP_INPUT && n->a[0] == g->io_weight;
}

static int batch_kind_of(const Graph *g, const Node *n, char *memo);

/* What n is over the batch: free of it (reads no input), of the weight input alone
 * (the count of real rows), a sum over its real rows of what each example gives (the
 * masked reductions of layers.c: sum(select(m, x m, 0))), a mean (such a sum over the
 * count), linear combinations of those with free terms, or other. */
static int batch_kind(const Graph *g, const Node *n, char *memo)
{
	if (!memo[n->id])
		memo[n->id] = (char)(1 + batch_kind_of(g, n, memo));
	return memo[n->id] - 1;
}

static int batch_kind_of(const Graph *g, const Node *n, char *memo)
{
	if (n->op == OP_INPUT)
		return n->a[0] == g->io_weight ? K_MASK : K_OTHER;
	if (opinfo[n->op].flags & OPF_LEAF)
		return K_FREE;
	if (n->op == OP_SUM && n->in[0]->op == OP_SELECT && is_mask(g, n->in[0]->in[0]) &&
	    n->in[0]->in[1]->op == OP_MUL && is_mask(g, n->in[0]->in[1]->in[1]))
		return K_SUM;
	int k[MAXIN] = {K_FREE, K_FREE, K_FREE}, free_or_mask = 1;
	for (int i = 0; i < n->nin; i++) {
		k[i] = batch_kind(g, n->in[i], memo);
		free_or_mask &= k[i] == K_FREE || k[i] == K_MASK;
	}
	if (free_or_mask)
		return k[0] == K_MASK || k[1] == K_MASK || k[2] == K_MASK ? K_MASK
		                                                          : K_FREE;
	switch (n->op) {
	case OP_RESHAPE: /* linear in their one input: sum(mean(l, axis=0)) is a mean */
	case OP_BROADCAST:
	case OP_NEG:
	case OP_SUM:
		return k[0];
	case OP_ADD:
	case OP_SUB:
		if (k[0] == k[1] || k[1] == K_FREE)
			return k[0] == K_SUM && k[1] == K_FREE ? K_OTHER : k[0];
		return k[0] == K_FREE && k[1] == K_MEAN ? K_MEAN : K_OTHER;
	case OP_MUL:
		return k[0] == K_FREE ? k[1] : k[1] == K_FREE ? k[0] : K_OTHER;
	case OP_DIV:
		return k[1] == K_FREE                    ? k[0]
		       : k[0] == K_SUM && k[1] == K_MASK ? K_MEAN
		                                         : K_OTHER;
	default:
		return K_OTHER;
	}
}

static rt_loss_kind loss_kind(Graph *g, const Node *loss)
{
	char *memo = arena_alloc(g->A, (size_t)g->n); /* (each node once: DAGs share) */
	switch (batch_kind(g, loss, memo)) {
	case K_MEAN:
	case K_FREE: /* (the same for every micro-batch: their shares add to 1) */
		return RT_LOSS_MEAN;
	case K_SUM:
		return RT_LOSS_SUM;
	default:
		return RT_LOSS_OTHER;
	}
}

Graph *lower_model(Arena *A, Diags *d, const Model *m, int64_t batch)
{
	Graph *g = ir_new(A, d);
	Lower L = {.g = g, .d = d, .m = m, .train = 1, .batch = m->ninputs ? batch : 0};
	if (m->ninputs && (batch < 1 || batch > MAX_BATCH)) {
		error_at(d, (SrcLoc){m->file, 0, 0},
		         "batch size %lld is out of range: it must be from 1 to %lld",
		         (long long)batch, (long long)MAX_BATCH);
		return NULL;
	}
	add_ios(g, m, batch);
	if (g->io_weight >= 0)
		L.mask = ir_input(g, g->io_weight);
	Node *out, *eout, *loss = lower_once(&L, &out);
	if (!loss || d->nerr)
		return NULL;
	Node *eloss = loss;
	eout = out;
	Lower E = {0};
	if (L.mode_dependent) { /* the evaluation graph: dropout off, running statistics
		                 */
		E = L;
		E.train = 0;
		E.nupdates = 0;
		E.updates = NULL;
		E.capupdates = 0;
		E.differentiated = NULL, E.ndiff = E.capdiff = 0;
		E.names = NULL, E.vals = NULL, E.n = E.cap = 0;
		if (!(eloss = lower_once(&E, &eout)))
			return NULL;
	}
	functions(g, &L, loss, out, eloss, eout);
	g->loss_kind = loss_kind(g, loss);
	Node *roots[] = {loss, out, eloss, eout};
	warn_unused(g, &L, L.mode_dependent ? &E : NULL, roots, 4);
	if (training(g, &L, loss) < 0 || d->nerr || check_memory(g, d, m) < 0)
		return NULL;
	return g;
}
