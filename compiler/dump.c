/* The IR as text: one node a line, with its shape, where in the YAML it came from and,
 * for backward nodes, which forward node's chain-rule rule made it.
 *
 *   %12 = matmul %0, %3 (T2)        f32[64, 256]   fc1  models/fashion_mlp.yaml:9:5
 *   %40 = mul %38, %39              f32[64, 256]   fc1  models/fashion_mlp.yaml:9:5  grad
 * relu %14
 */
#include <string.h>

#include "dc.h"

static const char *dtname(DType t) { return t == DT_I32 ? "i32" : "f32"; }

/* " name=a,b,c" */
static int ints(char *buf, size_t len, const char *name, const int64_t *v, int n)
{
	int k = snprintf(buf, len, "%s", name);
	for (int i = 0; i < n && k < (int)len; i++)
		k += snprintf(buf + k, len - (size_t)k, "%s%lld", i ? "," : "",
		              (long long)v[i]);
	return k;
}

int dump_attrs(char *buf, size_t len, Graph *g, Node *n)
{
	switch (n->op) {
	case OP_INPUT:
		return snprintf(buf, len, " %s", g->ios[n->a[0]].name);
	case OP_PARAM:
	case OP_GRADBUF:
		return snprintf(buf, len, " %s", g->params[n->a[0]].name);
	case OP_STATE:
		return snprintf(buf, len, " %s", g->states[n->a[0]].name);
	case OP_HYPER:
		return snprintf(buf, len, " %s", g->hypers[n->a[0]]);
	case OP_CONST: { /* (exact: the object cache's key is this text) */
		char s[32];
		return snprintf(buf, len, " %s", num_text(s, sizeof s, n->f));
	}
	case OP_SUM:
	case OP_RMAX: {
		int k = snprintf(buf, len, " axes="), first = 1;
		for (int i = 0; i < n->in[0]->sh.rank && k < (int)len; i++)
			if (n->a[0] >> i & 1)
				k += snprintf(buf + k, len - (size_t)k, "%s%d",
				              first ? "" : ",", i),
				    first = 0;
		return k;
	}
	case OP_MATMUL:
		return snprintf(buf, len, "%s%s", n->a[0] ? " T1" : "",
		                n->a[1] ? " T2" : "");
	case OP_TRANSPOSE:
		return ints(buf, len, " perm=", n->a, n->sh.rank);
	case OP_SLICE:
	case OP_PAD: /* (where the input starts in the output, or is cut) */
		return ints(buf, len, n->op == OP_PAD ? " before=" : " start=", n->a,
		            n->sh.rank);
	case OP_CONV2D:
	case OP_CONV2D_BWD_DATA:
	case OP_CONV2D_BWD_FILTER: { /* what is not the default */
		int k = 0;
		if (n->a[0] != 1 || n->a[1] != 1)
			k += ints(buf + k, len - (size_t)k, " stride=", n->a, 2);
		if (n->a[2] || n->a[3] || n->a[4] || n->a[5])
			k += ints(buf + k, len - (size_t)k, " pad=", n->a + 2, 4);
		if (n->a[6] != 1 || n->a[7] != 1)
			k += ints(buf + k, len - (size_t)k, " dilation=", n->a + 6, 2);
		if (n->a[8] != 1)
			k += snprintf(buf + k, len - (size_t)k, " groups=%lld",
			              (long long)n->a[8]);
		return k;
	}
	case OP_POOLMAX_GATHER:
	case OP_POOLMAX_SCATTER:
	case OP_AVGPOOL:
	case OP_AVGPOOL_BWD: {
		int k = ints(buf, len, " kernel=", n->a, 2);
		k += ints(buf + k, len - (size_t)k, " stride=", n->a + 2, 2);
		if (n->a[4] || n->a[5] || n->a[6] || n->a[7])
			k += ints(buf + k, len - (size_t)k, " pad=", n->a + 4, 4);
		return k;
	}
	case OP_DROPMASK: {
		char s[32];
		return snprintf(buf, len, " p=%s", num_text(s, sizeof s, n->f));
	}
	default:
		return 0;
	}
}

void dump_node(FILE *f, Graph *g, Node *n)
{
	char lhs[256], sh[128];
	int k = snprintf(lhs, sizeof lhs, "%%%d = %s", n->id, opinfo[n->op].name);
	for (int i = 0; i < n->nin; i++)
		k += snprintf(lhs + k, sizeof lhs - k, "%s%%%d", i ? ", " : " ",
		              n->in[i]->id);
	dump_attrs(lhs + k, sizeof lhs - k, g, n);
	fprintf(f, "  %-36s %s%-14s", lhs, dtname(n->dt),
	        shape_str(&n->sh, sh, sizeof sh));
	if (n->label)
		fprintf(f, " %s", n->label);
	if (n->loc.file)
		fprintf(f, " %s:%d:%d", n->loc.file, n->loc.line, n->loc.col);
	if (n->fwd)
		fprintf(f, "  grad %s %%%d", n->rule, n->fwd->id);
	else if (n->rule)
		fprintf(f, "  grad %s", n->rule);
	fputc('\n', f);
}

static const char *const dest_names[] = {"param", "grad", "state", "io"};

static const char *dest_name(Graph *g, const Out *o)
{
	switch (o->kind) {
	case DEST_PARAM:
	case DEST_GRAD:
		return g->params[o->index].name;
	case DEST_STATE:
		return g->states[o->index].name;
	case DEST_IO:
		return g->ios[o->index].name;
	}
	return "?";
}

void dump_set(FILE *f, Graph *g, const char *live)
{
	for (int i = 0; i < g->n; i++)
		if (live[i])
			dump_node(f, g, g->nodes[i]);
}

const char *dump_out(Graph *g, const Out *o, char *buf, size_t len)
{
	snprintf(buf, len, "%s %s", dest_names[o->kind], dest_name(g, o));
	return buf;
}

void dump_graph(FILE *f, Graph *g, int only_fn)
{
	char *live;
	if (only_fn < 0) {
		live = arena_alloc(g->A, (size_t)g->n + 1);
		memset(live, 1, (size_t)g->n);
	} else {
		live = plan_fn(g, only_fn)->live;
		fprintf(f, "fn %s:\n", fn_names[only_fn]);
	}
	for (int i = 0; i < g->n; i++)
		if (live[i])
			dump_node(f, g, g->nodes[i]);
	if (only_fn >= 0) {
		Fn *fn = &g->fns[only_fn];
		for (int i = 0; i < fn->nouts; i++)
			fprintf(f, "  -> %s %s = %%%d\n", dest_names[fn->outs[i].kind],
			        dest_name(g, &fn->outs[i]), fn->outs[i].node->id);
	}
}
