/* Inspection: what descent made of a model, at any stage, as text or Graphviz.
 *
 *   spec        the model as read: inputs, parameters, nodes as expressions, the loss
 *   graph       the forward graph and the loss (the evaluate function)
 *   backward    forward and backward (grad): every backward node names the forward node
 *               and the chain-rule rule that made it, and its YAML line
 *   optimized   the whole training step (train_step), after build-time folding and CSE
 *   kernels     the loop nests of train_step in order, with the buffer each writes
 *   llvm, asm   the optimized LLVM IR, the host's assembly
 *
 * --grad P keeps only the slice that computes P's gradient: the chain rule's path from
 * the loss back to P. --stats adds op counts, FLOPs per step, bytes and timings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dc.h"

const char *const stage_names[] = {"spec",    "graph", "backward", "optimized",
                                   "kernels", "llvm",  "asm"};

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void print_spec(FILE *f, const Model *m, Arena *A)
{
	fprintf(f, "model %s\n", m->name);
	for (int i = 0; i < m->ninputs; i++) {
		const ModelInput *in = &m->inputs[i];
		fprintf(f, "  input %s %s[batch", in->name,
		        in->dt == DT_I32 ? "i32" : "f32");
		for (int k = 1; k < in->rank; k++)
			fprintf(f, ", %lld", (long long)in->dims[k]);
		fprintf(f, "]  %s:%d:%d\n", in->loc.file, in->loc.line, in->loc.col);
	}
	for (int i = 0; i < m->nparams; i++)
		fprintf(f, "  param %s%s  %s:%d:%d\n", m->params[i].name,
		        m->params[i].trainable ? "" : " (frozen)", m->params[i].loc.file,
		        m->params[i].loc.line, m->params[i].loc.col);
	for (int i = 0; i < m->ndefs; i++)
		fprintf(f, "  %s = %s  %s:%d:%d\n", m->defs[i].name,
		        expr_str(A, m->defs[i].e), m->defs[i].loc.file,
		        m->defs[i].loc.line, m->defs[i].loc.col);
	if (m->output)
		fprintf(f, "  output = %s\n", m->output);
	fprintf(f, "  loss = %s\n", expr_str(A, m->loss));
}

static void mark(const Node *n, char *live)
{
	if (live[n->id])
		return;
	live[n->id] = 1;
	for (int i = 0; i < n->nin; i++)
		mark(n->in[i], live);
}

/* The gradient output of parameter name in the grad function, or NULL. */
static Node *grad_of(Graph *g, const char *name)
{
	const Fn *fn = &g->fns[FN_GRAD];
	for (int i = 0; i < fn->nouts; i++)
		if (fn->outs[i].kind == DEST_GRAD &&
		    !strcmp(g->params[fn->outs[i].index].name, name))
			return fn->outs[i].node;
	return NULL;
}

/* ---- Graphviz ---- */

/* text in a DOT string: quotes and backslashes escaped */
static void dot_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
}

/* Each node with what the text form says of it: op and attributes (a constant's
 * value, a state's or hyperparameter's name, T1/T2), shape, layer and file:line:col,
 * and a backward node's rule. A constant is drawn at each of its users, not as one
 * node with an edge to every layer, which made dot's layout of a 20-layer model take
 * minutes. */
static void dot(FILE *f, Graph *g, const char *live, const Fn *fn)
{
	char sh[128], at[256], what[256];
	int nlive = 0;
	char *used = calloc((size_t)g->n + 1, 1); /* a live node reads it */
	if (!used)
		die("out of memory");
	for (int i = 0; i < g->n; i++) {
		nlive += live[i] != 0;
		for (int k = 0; live[i] && k < g->nodes[i]->nin; k++)
			used[g->nodes[i]->in[k]->id] = 1;
	}
	fprintf(f, "digraph descent {\n  rankdir=TB;\n  node [shape=box, "
	           "fontname=\"monospace\", fontsize=10];\n");
	/* past a few hundred nodes, dot's crossing minimization and spline routing
	 * take minutes (a 20-layer MLP's 499: over 5 minutes; 0.4 s so) */
	if (nlive > 200)
		fprintf(f, "  splines=false; mclimit=0.1; nslimit=1; nslimit1=1; "
		           "searchsize=5;\n");
	for (int i = 0; i < g->n; i++) {
		Node *n = g->nodes[i];
		if (!live[i] || (n->op == OP_CONST && used[i])) /* (drawn at its users) */
			continue;
		const char *color = opinfo[n->op].flags & OPF_LEAF ? "#e8e8e8"
		                    : n->rule                      ? "#ffd8b0"
		                                                   : "#cfe2ff";
		at[0] = 0; /* (ops without attributes write nothing) */
		dump_attrs(at, sizeof at, g, n);
		fprintf(f, "  n%d [label=\"%%%d %s", n->id, n->id, opinfo[n->op].name);
		dot_text(f, at);
		fprintf(f, "\\n%s %s", n->dt == DT_I32 ? "i32" : "f32",
		        shape_str(&n->sh, sh, sizeof sh));
		if (n->label || n->loc.file) {
			fprintf(f, "\\n");
			if (n->label) {
				dot_text(f, n->label);
				fputc(' ', f);
			}
			if (n->loc.file) {
				dot_text(f, n->loc.file);
				fprintf(f, ":%d:%d", n->loc.line, n->loc.col);
			}
		}
		if (n->fwd)
			fprintf(f, "\\ngrad %s of %%%d", n->rule, n->fwd->id);
		else if (n->rule)
			fprintf(f, "\\ngrad %s", n->rule);
		/* what the function writes (the loss, a gradient, a new value): in a
		 * double box, named */
		int out = 0;
		for (int k = 0; k < fn->nouts; k++)
			if (fn->outs[k].node == n) {
				fprintf(f, "\\n-> ");
				dot_text(f, dump_out(g, &fn->outs[k], what, sizeof what));
				out = 1;
			}
		fprintf(f, "\", style=filled, fillcolor=\"%s\"%s];\n", color,
		        out ? ", peripheries=2, penwidth=1.5" : "");
		/* operands numbered where their order matters (a - b, a / b, a matmul,
		 * a select's condition) */
		for (int k = 0; k < n->nin; k++) {
			char lab[32] = "";
			if (n->nin > 1)
				snprintf(lab, sizeof lab, " [label=\"%d\"]", k + 1);
			if (n->in[k]->op == OP_CONST)
				fprintf(f,
				        "  c%d_%d [label=\"%g\", shape=plaintext];\n  "
				        "c%d_%d -> n%d%s;\n",
				        n->id, k, n->in[k]->f, n->id, k, n->id, lab);
			else
				fprintf(f, "  n%d -> n%d%s;\n", n->in[k]->id, n->id, lab);
		}
	}
	free(used);
	fprintf(f, "}\n");
}

/* ---- kernels ---- */

static const char *const buf_names[] = {"none",  "params", "grads", "state",
                                        "hyper", "io",     "work"};

static void nest_line(FILE *f, const Plan *p, Node *n, const char *mark)
{
	char sh[128];
	fprintf(f, "  %s%-*s %%%-4d %-16s -> work+%lld", mark, 18 - (int)strlen(mark),
	        opinfo[n->op].name, n->id, shape_str(&n->sh, sh, sizeof sh),
	        (long long)p->buf[n->id].off);
	for (int k = 0; k < n->nin; k++) {
		Buf b = p->buf[n->in[k]->id];
		fprintf(f, "%s %%%d@%s+%lld", k ? "," : "  reads", n->in[k]->id,
		        buf_names[b.kind], (long long)b.off);
	}
	fputc('\n', f);
}

static void kernels(FILE *f, Graph *g, int fn)
{
	Plan *p = plan_fn(g, fn);
	fprintf(f, "fn %s: %d loop nests, workspace %lld floats (%lld bytes)\n",
	        fn_names[fn], p->n, (long long)p->nwork, (long long)p->nwork * 4);
	for (int i = 0; i < p->n; i++) {
		Node *n = p->order[i];
		nest_line(f, p, n, "");
		if (p->epi[n->id]) /* computed in n's loop (Plan) */
			nest_line(f, p, p->epi[n->id], "+ ");
	}
	for (int gi = 0; gi < p->ngroups; gi++) {
		fprintf(f, "  update group %d (checked, then written in place):", gi);
		for (int i = 0; i < p->nlate; i++)
			if (p->group[p->late[i]->id] == gi)
				fprintf(f, " %s %%%d", opinfo[p->late[i]->op].name,
				        p->late[i]->id);
		fputc('\n', f);
	}
}

/* ---- statistics ---- */

/* Floating-point operations of one node (multiply-adds count 2). */
double node_flops(const Node *n)
{
	double out = (double)shape_numel(&n->sh);
	switch (n->op) {
	case OP_MATMUL:
		return 2 * out * (double)n->in[0]->sh.d[n->a[0] ? 0 : 1];
	case OP_CONV2D:
		return 2 * out * (double)(shape_numel(&n->in[1]->sh) / n->in[1]->sh.d[0]);
	case OP_CONV2D_BWD_DATA: /* as many as the forward convolution */
		return 2 * (double)shape_numel(&n->in[0]->sh) *
		       (double)(shape_numel(&n->in[1]->sh) / n->in[1]->sh.d[0]);
	case OP_CONV2D_BWD_FILTER:
		return 2 * (double)shape_numel(&n->in[1]->sh) *
		       (double)(shape_numel(&n->sh) / n->sh.d[0]);
	case OP_SUM:
	case OP_RMAX:
	case OP_LOGSOFTMAX:
		return (double)shape_numel(&n->in[0]->sh) *
		       (n->op == OP_LOGSOFTMAX ? 4 : 1);
	default:
		return opinfo[n->op].flags & OPF_ELEMWISE ? out : 0;
	}
}

/* Every node the function computes, wherever its loop is: fused into another's or
 * not, the work is the same. */
static double plan_flops(const Graph *g, const Plan *p)
{
	double fl = 0;
	for (int i = 0; i < g->n; i++)
		if (p->live[i])
			fl += node_flops(g->nodes[i]);
	return fl;
}

double fn_flops(Graph *g, FnKind fn) { return plan_flops(g, plan_fn(g, fn)); }

static void stats(FILE *f, Graph *g, const double *t)
{
	fprintf(f, "stats:\n");
	/* values, and the blobs' bytes as descent bench reports them (each tensor
	 * padded to 16 floats), for parameters and state alike */
	int64_t pf = 0, sf = 0;
	for (int i = 0; i < g->nparams; i++)
		pf += shape_numel(&g->params[i].sh);
	for (int i = 0; i < g->nstates; i++)
		sf += shape_numel(&g->states[i].sh);
	fprintf(f,
	        "  parameters   %lld values in %d tensors, %lld bytes (+ as many for "
	        "gradients)\n",
	        (long long)pf, g->nparams, (long long)g->param_floats * 4);
	fprintf(f, "  state        %lld values in %d tensors, %lld bytes (optimizer)\n",
	        (long long)sf, g->nstates, (long long)g->state_floats * 4);
	for (int k = 0; k < FN_COUNT; k++) {
		if (!g->fns[k].defined)
			continue;
		Plan *p = plan_fn(g, k);
		int count[OP_COUNT] = {0};
		double fl = plan_flops(g, p);
		for (int i = 0; i < p->n; i++) {
			Node *n = p->order[i], *e = p->epi[n->id];
			count[n->op]++;
			if (e) /* computed in n's loop */
				count[e->op]++;
		}
		fprintf(
		    f,
		    "  %-11s  %.4g MFLOP per call, %d loop nests, workspace %lld bytes:",
		    fn_names[k], fl / 1e6, p->n, (long long)p->nwork * 4);
		for (int op = 0; op < OP_COUNT; op++)
			if (count[op])
				fprintf(f, " %s %d", opinfo[op].name, count[op]);
		fputc('\n', f);
	}
	fprintf(f,
	        "  compile      lower+autodiff %.3f s, LLVM IR %.3f s, optimize %.3f s, "
	        "emit %.3f s\n",
	        t[0], t[1], t[2], t[3]);
}

static int codegen_text(Graph *g, const InspectOpts *o, FILE *out, double *t)
{
	EmitKind k = o->stage == ST_ASM    ? EMIT_ASM
	             : o->stage == ST_LLVM ? EMIT_LLVM
	                                   : EMIT_OBJ;
	CodegenOpts co = {.opt_level = o->opt_level, .emit = k, .seconds = t};
	ObjCode obj;
	int64_t nwork;
	if (cg_compile(g, &co, &obj, &nwork, NULL) < 0)
		return -1;
	if (o->stage == ST_LLVM || o->stage == ST_ASM)
		fwrite(obj.data, 1, obj.size, out);
	objcode_free(&obj);
	return 0;
}

int inspect(Diags *d, const Model *m, const InspectOpts *o, FILE *out)
{
	Arena *A = arena_new();
	int status = -1;
	double t[4] = {0}, t0 = now();
	if (o->stage == ST_SPEC) {
		print_spec(out, m, A);
		arena_free(A);
		return 0;
	}
	Graph *g = lower_model(A, d, m, o->batch > 0 ? o->batch : m->batch);
	t[0] = now() - t0;
	if (!g)
		goto done;
	static const FnKind stage_fn[] = {FN_EVALUATE, FN_EVALUATE, FN_GRAD,
	                                  FN_TRAIN_STEP, FN_TRAIN_STEP};
	int fn = o->fn >= 0               ? o->fn
	         : o->stage <= ST_KERNELS ? (int)stage_fn[o->stage]
	                                  : FN_TRAIN_STEP;
	if (o->fn >= 0 && o->stage >= ST_LLVM) {
		error_at(
		    d, (SrcLoc){m->file, 0, 0},
		    "--fn picks a function of the graph stages; llvm and asm show the "
		    "whole module (its functions are named %s, %s.0.matmul, ...)",
		    fn_names[fn], fn_names[fn]);
		goto done;
	}
	if (!g->fns[fn].defined && (o->fn >= 0 || o->stage < ST_LLVM)) {
		error_at(d, (SrcLoc){m->file, 0, 0}, "the model has no %s function",
		         fn_names[fn]);
		goto done;
	}
	if (o->stage >= ST_LLVM || o->stats)
		if (codegen_text(g, o, out, t + 1) < 0)
			goto done;
	char *live = plan_fn(g, fn)->live;
	if (o->grad_param) {
		Node *gn = grad_of(g, o->grad_param);
		if (!gn) {
			const char **names =
			    arena_alloc(A, (size_t)(g->nparams + 1) * sizeof *names);
			for (int i = 0; i < g->nparams; i++)
				names[i] = g->params[i].name;
			const char *near = did_you_mean(o->grad_param, names, g->nparams);
			error_at(d, (SrcLoc){m->file, 0, 0},
			         "no trainable parameter '%s'%s%s%s", o->grad_param,
			         near ? "; did you mean '" : "", near ? near : "",
			         near ? "'?" : "");
			goto done;
		}
		int k = 0;
		while (k < g->nparams && strcmp(g->params[k].name, o->grad_param))
			k++;
		if (k < g->nparams && !g->params[k].trainable) {
			error_at(
			    d, (SrcLoc){m->file, 0, 0},
			    "'%s' is not trained (a buffer such as batch norm's running "
			    "statistics, or trainable: false): it has no gradient",
			    o->grad_param);
			goto done;
		}
		live = arena_alloc(A, (size_t)g->n);
		mark(gn, live);
	}
	if (o->stage < ST_LLVM && o->dot)
		dot(out, g, live, &g->fns[o->grad_param ? FN_GRAD : fn]);
	else if (o->stage == ST_KERNELS)
		kernels(out, g, fn);
	else if (o->stage < ST_LLVM && o->grad_param) {
		fprintf(out, "the chain rule from the loss back to %s:\n", o->grad_param);
		dump_set(out, g, live);
		fprintf(out, "  -> grad %s = %%%d\n", o->grad_param,
		        grad_of(g, o->grad_param)->id);
	} else if (o->stage < ST_LLVM)
		dump_graph(out, g, fn);
	if (o->stats) /* (to stderr beside DOT, which they would break) */
		stats(o->dot ? stderr : out, g, t);
	status = 0;
done:
	arena_free(A);
	return status;
}
