/* Spec tree -> Model: the typed, validated description of a network.
 *
 * A model file names its inputs (the batch dimension first), a sequential list of
 * layers, the loss and which input is its target, the optimizer, the training loop's
 * settings and where the data is:
 *
 *   inputs: {image: {shape: [batch, 784]}, label: {shape: [batch], dtype: i32}}
 *   layers: [{dense: {units: 256, activation: relu}}, {dense: {units: 10}}]
 *   loss: {type: softmax_cross_entropy, target: label}
 *   optimizer: {type: sgd, lr: 0.1, momentum: 0.9}
 *   train: {batch: 64, epochs: 5, seed: 0}
 *   data: {train: {image: {idx: x.gz, scale: 1/255}, label: {idx: y.gz}}}
 *
 * The graph form (nodes: {name: expression}) may list its nodes in any order: they are
 * sorted so that each comes after the nodes it uses, and a cycle is an error.
 *
 * Each section is read by one function that reports what is wrong at the YAML node
 * and goes on, so that one run shows every independent mistake; the model is returned
 * only if there were none. Defaults are filled in here, so later stages never look at
 * the YAML again; they only keep the locations, to point back into it.
 *
 * The train: and data: sections are read in model_train.c; model.h is what the two
 * files share.
 */
#include <ctype.h>
#include <string.h>

#include "model.h"

static const char *const top_keys[] = {"name",   "inputs", "params", "input", "target",
                                       "layers", "nodes",  "output", "loss",  "optimizer",
                                       "train",  "data",   NULL};
static const char *const input_keys[] = {"shape", "dtype", NULL};

const char *const dtype_names[2] = {"f32", "i32"}; /* DType */
const char *const opt_names[] = {"sgd", "adam", "adamw", "rmsprop",
                                 "adagrad"}; /* OptKind */
static const char *const init_names[] = {"kaiming_uniform", "xavier_uniform", "torch",
                                         "zeros",           "ones",           "normal"};
static const rt_init init_vals[] = {
    RT_INIT_KAIMING_UNIFORM, RT_INIT_XAVIER_UNIFORM, RT_INIT_TORCH_LINEAR,
    RT_INIT_ZEROS,           RT_INIT_ONES,           RT_INIT_NORMAL};

/* io slot names the compiler adds next to the inputs */
static const char *const reserved[] = {"loss", "output", "weight"};

/* Checks map's keys; 0 if it is not a mapping at all, so its contents cannot be read.
 * Unknown keys are reported but the known ones are still worth reading. */
int keys_ok(Ctx *c, const Spec *map, const char *what, const char *const *allowed)
{
	if (spec_expect(c->d, map, SPEC_MAP, what))
		return 0;
	spec_keys(c->d, map, what, allowed);
	return 1;
}

const Spec *key_of(const Spec *map, const char *key)
{
	for (int i = 0; i < map->n; i++)
		if (map->keys[i]->kind == SPEC_SCALAR && !strcmp(map->keys[i]->str, key))
			return map->keys[i];
	return NULL;
}

/* A number in (0, max]. */
int num_pos(Ctx *c, const Spec *s, const char *what, double max, double *out)
{
	double v;
	if (spec_num(c->d, s, what, 0, max, &v))
		return -1;
	if (v <= 0) {
		error_at(c->d, s->loc, "'%s' must be greater than 0, got '%s'", what,
		         s->str);
		return -1;
	}
	*out = v;
	return 0;
}

/* Names become parameter and io names ("fc1.weight") and C identifiers in headers. */
static int check_ident(Ctx *c, const Spec *s, const char *what)
{
	const char *p = s->str;
	int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_';
	for (; ok && *p; p++)
		ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
		     (*p >= '0' && *p <= '9');
	if (ok)
		return 0;
	error_at(
	    c->d, s->loc,
	    "%s name '%s' must start with a letter or '_' and have only letters, digits "
	    "and '_'",
	    what, s->str);
	return -1;
}

/* ---------------- inputs ---------------- */

static void parse_shape(Ctx *c, ModelInput *in, const Spec *sh)
{
	char buf[80];
	if (spec_expect(c->d, sh, SPEC_SEQ, "shape"))
		return;
	const Spec *b = sh->n ? sh->items[0] : sh;
	if (!sh->n || b->kind != SPEC_SCALAR || b->quoted || strcmp(b->str, "batch")) {
		error_at(c->d, b->loc,
		         "the first dimension of input '%s' must be 'batch', found %s",
		         in->name, sh->n ? spec_describe(b, buf, sizeof buf) : "nothing");
		return;
	}
	if (sh->n > MAXRANK) {
		error_at(c->d, sh->items[MAXRANK]->loc,
		         "input '%s' has %d dimensions; at most %d are supported",
		         in->name, sh->n, MAXRANK);
		return;
	}
	/* one example within the limit of one value; times the batch, lowering checks */
	int64_t numel = 1;
	int ok = 1;
	for (int i = 1; i < sh->n; i++) {
		const char *what = arena_printf(c->A, "%s.shape[%d]", in->name, i);
		if (spec_int(c->d, sh->items[i], what, 1, INT64_C(1) << 31, &in->dims[i]))
			ok = 0;
		else
			numel = mul_sat(numel, in->dims[i]);
	}
	if (ok && numel > MAX_ELEMS) {
		error_at(c->d, sh->loc,
		         "input '%s' has more than %lld elements per example (16 GiB), "
		         "the limit for one value",
		         in->name, (long long)MAX_ELEMS);
		ok = 0;
	}
	if (ok) {
		in->rank = sh->n;
		in->dims[0] = -1;
	}
}

static void parse_input(Ctx *c, const Spec *key, const Spec *val, ModelInput *in)
{
	in->name = key->str;
	in->loc = key->loc;
	in->dt = DT_F32;
	if (!check_ident(c, key, "input")) {
		for (int i = 0; i < N(reserved); i++)
			if (!strcmp(key->str, reserved[i]))
				error_at(c->d, key->loc,
				         "input name '%s' is reserved for an output",
				         key->str);
	}
	const char *what = arena_printf(c->A, "input '%s'", in->name);
	if (!keys_ok(c, val, what, input_keys))
		return;
	const Spec *s = spec_get(val, "dtype");
	int k;
	if (s && !spec_enum(c->d, s, "dtype", dtype_names, N(dtype_names), &k))
		in->dt = (DType)k;
	if ((s = spec_need(c->d, val, "shape", what)))
		parse_shape(c, in, s);
}

static void parse_inputs(Ctx *c, const Spec *s)
{
	int nerr = c->d->nerr;
	c->inputs_loc = s->loc;
	if (spec_expect(c->d, s, SPEC_MAP, "inputs"))
		return;
	if (!s->n) {
		error_at(c->d, s->loc, "the model has no inputs");
		return;
	}
	Model *m = c->m;
	m->ninputs = s->n;
	m->inputs = arena_alloc(c->A, (size_t)s->n * sizeof *m->inputs);
	c->names = arena_alloc(c->A, (size_t)(s->n + 1) * sizeof *c->names);
	for (int i = 0; i < s->n; i++) {
		parse_input(c, s->keys[i], s->items[i], &m->inputs[i]);
		c->names[i] = m->inputs[i].name;
	}
	c->inputs_ok = c->d->nerr == nerr;
}

/* ---------------- params ---------------- */

static const char *const param_keys[] = {"shape", "init", "trainable", NULL};

static void parse_param(Ctx *c, const Spec *key, const Spec *val, ParamDecl *p)
{
	p->name = key->str;
	p->loc = key->loc;
	p->trainable = 1;
	p->init = RT_INIT_ZEROS;
	check_ident(c, key, "parameter");
	const char *what = arena_printf(c->A, "parameter '%s'", p->name);
	if (!keys_ok(c, val, what, param_keys))
		return;
	const Spec *v;
	if ((v = spec_get(val, "shape")) && !spec_expect(c->d, v, SPEC_SEQ, "shape")) {
		if (v->n > MAXRANK)
			error_at(c->d, v->loc,
			         "parameter '%s' has %d dimensions; at most %d", p->name,
			         v->n, MAXRANK);
		int64_t numel = 1;
		int ok = 1;
		for (int i = 0; i < v->n && i < MAXRANK; i++) {
			ok &= !spec_int(c->d, v->items[i], "shape", 1, INT64_C(1) << 31,
			                &p->dims[i]);
			numel = mul_sat(numel, p->dims[i]);
		}
		if (ok && numel > MAX_ELEMS)
			error_at(c->d, v->loc,
			         "parameter '%s' has more than %lld elements (16 GiB), "
			         "the limit for one value",
			         p->name, (long long)MAX_ELEMS);
		p->rank = v->n < MAXRANK ? v->n : MAXRANK;
	}
	if ((v = spec_get(val, "init"))) {
		int k;
		if (v->kind == SPEC_SCALAR && !v->quoted && v->str[0] &&
		    strchr("-+.0123456789", v->str[0])) {
			if (!spec_num(c->d, v, "init", -1e30, 1e30, &p->value))
				p->init = RT_INIT_CONSTANT;
		} else if (!spec_enum(c->d, v, "init", init_names, N(init_names), &k)) {
			p->init = init_vals[k];
			p->value = 1; /* normal's std, torch.randn's */
		}
	}
	if ((v = spec_get(val, "trainable")))
		spec_bool(c->d, v, "trainable", &p->trainable);
}

static void parse_params(Ctx *c, const Spec *s)
{
	Model *m = c->m;
	if (spec_expect(c->d, s, SPEC_MAP, "params"))
		return;
	m->nparams = s->n;
	m->params = arena_alloc(c->A, (size_t)(s->n + 1) * sizeof *m->params);
	for (int i = 0; i < s->n; i++)
		parse_param(c, s->keys[i], s->items[i], &m->params[i]);
}

/* ---------------- layers and nodes ---------------- */

static Expr *name_expr(Ctx *c, const char *name, SrcLoc loc)
{
	Expr *e = arena_alloc(c->A, sizeof *e);
	e->kind = EX_NAME;
	e->name = name;
	e->loc = loc;
	return e;
}

static Def *new_def(Ctx *c, const char *name, SrcLoc loc, const Expr *e)
{
	Model *m = c->m;
	Def *d = &m->defs[m->ndefs++];
	d->name = name;
	d->loc = loc;
	d->e = e;
	return d;
}

/* The positional values of a sequential layer: the previous layer's output, then
 * what 'with' names (the other branch of add or concat). */
static int layer_args(Ctx *c, const Spec *with, const char *prev, SrcLoc at, Expr ***out)
{
	int n = 1 + (with ? (with->kind == SPEC_SEQ ? with->n : 1) : 0);
	Expr **args = arena_alloc(c->A, (size_t)n * sizeof *args);
	args[0] = name_expr(c, prev, at);
	for (int i = 1; i < n; i++) {
		const Spec *w = with->kind == SPEC_SEQ ? with->items[i - 1] : with;
		const char *nm = "?";
		spec_str(c->d, w, "with", &nm);
		args[i] = name_expr(c, nm, w->loc);
	}
	*out = args;
	return n;
}

/* "- relu" or "- conv2d: {out_channels: 6, kernel_size: 5}" as the call
 * conv2d(prev, out_channels=6, kernel_size=5); 'name' names it, 'with' adds values. */
/* A layer's setting: a quoted scalar is text (padding: "same"), not an expression.
 * prev: the value before it in its mapping, or NULL. */
static Expr *setting(Ctx *c, const Spec *key, const Spec *v, const Spec *prev)
{
	if (v->kind == SPEC_SCALAR && !v->quoted && !v->str[0] && prev &&
	    !isalpha((unsigned char)key->str[0]) && key->str[0] != '_') {
		/* the rest of a value a comma cut ({kernel_size: (3,3)} made the key
		 * "3)"): one error, said in the value before it */
		for (int i = 0; i < c->d->n; i++)
			if (c->d->v[i].sev == SEV_ERROR &&
			    c->d->v[i].loc.line == key->loc.line &&
			    prev->loc.line == key->loc.line &&
			    c->d->v[i].loc.col >= prev->loc.col &&
			    c->d->v[i].loc.col < key->loc.col)
				return NULL;
	}
	if (v->kind == SPEC_SCALAR && !v->quoted && !v->str[0]) {
		/* ({units:10} is the key "units:10", without a value: "empty expression"
		 * at the brace) */
		error_at(c->d, key->loc, "'%s' has no value%s", key->str,
		         strchr(key->str, ':')
		             ? "; YAML needs a space after a colon ('units: 10', not "
		               "'units:10')"
		             : "");
		return NULL;
	}
	if (v->kind == SPEC_SCALAR && v->quoted)
		return name_expr(c, v->str, v->loc);
	return expr_from_spec(c->A, c->d, v);
}

/* Automatic layer names count per prefix, as PyTorch users write them: fc1, fc2, conv1.
 */
static const char *auto_name(Ctx *c, const char *prefix)
{
	for (int i = 0; i < c->nprefix; i++)
		if (!strcmp(c->prefix[i], prefix))
			return arena_printf(c->A, "%s%d", prefix, ++c->count[i]);
	if (c->nprefix < 64) {
		c->prefix[c->nprefix] = prefix;
		c->count[c->nprefix++] = 1;
	}
	return arena_printf(c->A, "%s1", prefix);
}

static void parse_layer(Ctx *c, const Spec *item, const char **prev)
{
	const Spec *kind = item, *val = NULL;
	if (item->kind == SPEC_MAP && item->n == 1) {
		kind = item->keys[0];
		val = item->items[0];
	} else if (item->kind == SPEC_MAP && item->n > 1 &&
	           item->keys[0]->kind == SPEC_SCALAR &&
	           item->items[0]->kind == SPEC_SCALAR && !item->items[0]->quoted &&
	           !item->items[0]->str[0] && fun_lookup(item->keys[0]->str)) {
		/* "- dense:" with "units: 3" under it at the key's column, not further */
		error_at(c->d, item->keys[1]->loc,
		         "'%s' is a setting of the layer '%s' above it: indent it under "
		         "'%s:'",
		         item->keys[1]->str, item->keys[0]->str, item->keys[0]->str);
		return;
	} else if (item->kind != SPEC_SCALAR || item->quoted) {
		char buf[80];
		error_at(c->d, item->loc,
		         "a layer is a name like 'relu' or a mapping with one key, like "
		         "'dense: {units: 10}'; found %s",
		         item->kind == SPEC_MAP
		             ? arena_printf(c->A, "a mapping with %d keys", item->n)
		             : spec_describe(item, buf, sizeof buf));
		return;
	}
	if (val && val->kind == SPEC_SCALAR && !val->quoted && !val->str[0])
		val = NULL;                  /* "- relu:" */
	if (val && !fun_lookup(kind->str)) { /* ("- foo: relu" was a mapping missing) */
		fun_unknown(c->d, kind->str, kind->loc);
		return;
	}
	if (val &&
	    spec_expect(c->d, val, SPEC_MAP, arena_printf(c->A, "layer '%s'", kind->str)))
		return;
	Expr *call = arena_alloc(c->A, sizeof *call);
	call->kind = EX_CALL;
	call->name = kind->str;
	call->loc = kind->loc;
	const Spec *nm = val ? spec_get(val, "name") : NULL;
	call->nargs = layer_args(c, val ? spec_get(val, "with") : NULL, *prev, kind->loc,
	                         &call->args);
	int nkw = 0, bad = 0;
	call->kwnames =
	    arena_alloc(c->A, (size_t)(val ? val->n : 0) * sizeof *call->kwnames + 1);
	call->kwargs =
	    arena_alloc(c->A, (size_t)(val ? val->n : 0) * sizeof *call->kwargs + 1);
	call->kwlocs =
	    arena_alloc(c->A, (size_t)(val ? val->n : 0) * sizeof *call->kwlocs + 1);
	for (int i = 0; val && i < val->n; i++) {
		const char *k = val->keys[i]->str;
		if (!strcmp(k, "name") || !strcmp(k, "with"))
			continue;
		Expr *v =
		    setting(c, val->keys[i], val->items[i], i ? val->items[i - 1] : NULL);
		if (!v) {
			bad = 1;
			continue;
		}
		call->kwlocs[nkw] = val->keys[i]->loc;
		call->kwnames[nkw] = k;
		call->kwargs[nkw++] = v;
	}
	call->nkw = nkw;
	const Fun *f = fun_lookup(kind->str);
	const char *name = NULL;
	if (nm && !spec_str(c->d, nm, "name", &name))
		check_ident(c, nm, "layer");
	if (!name)
		name = auto_name(c, f && f->prefix ? f->prefix : kind->str);
	/* a setting already reported: checking the call would only add "needs 'units'" */
	new_def(c, name, item->loc, bad ? NULL : call);
	*prev = name;
}

static void parse_layers(Ctx *c, const Spec *s)
{
	Model *m = c->m;
	if (spec_expect(c->d, s, SPEC_SEQ, "layers"))
		return;
	if (!s->n)
		error_at(c->d, s->loc, "the model has no layers");
	m->defs = arena_alloc(c->A, (size_t)(s->n + 1) * sizeof *m->defs);
	const char *prev = c->net_input ? c->net_input : "?";
	/* (of two inputs, the loss tells which the network takes: without one, its
	 * absence is the error) */
	if (!c->net_input && c->inputs_ok && !(c->no_loss && m->ninputs == 2))
		error_at(c->d, s->loc,
		         m->ninputs
		             ? "the layers need an input: name it with 'input: NAME'"
		             : "the layers need an input, and the model has none");
	for (int i = 0; i < s->n; i++)
		parse_layer(c, s->items[i], &prev);
}

/* nodes: {h1: "dense(image, units=128)", out: "relu(h1 + h2)"} */
static void parse_nodes(Ctx *c, const Spec *s)
{
	Model *m = c->m;
	if (spec_expect(c->d, s, SPEC_MAP, "nodes"))
		return;
	m->defs = arena_alloc(c->A, (size_t)(s->n + 1) * sizeof *m->defs);
	for (int i = 0; i < s->n; i++) {
		check_ident(c, s->keys[i], "node");
		/* a broken expression keeps its node's name: uses of it are known */
		new_def(c, s->keys[i]->str, s->keys[i]->loc,
		        expr_from_spec(c->A, c->d, s->items[i]));
	}
}

/* ---- the graph form in any order ---- */

typedef struct Sorter {
	Ctx *c;
	int *slot, cap; /* open addressing: def index + 1 by name, 0 empty */
	int **deps, *ndeps;
} Sorter;

static uint32_t name_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

/* The def named by the first n bytes of s, or -1. */
static int def_named(const Sorter *st, const char *s, size_t n)
{
	const Def *defs = st->c->m->defs;
	for (uint32_t k = name_hash(s, n) & (uint32_t)(st->cap - 1); st->slot[k];
	     k = (k + 1) & (uint32_t)(st->cap - 1)) {
		const char *nm = defs[st->slot[k] - 1].name;
		if (!strncmp(nm, s, n) && !nm[n])
			return st->slot[k] - 1;
	}
	return -1;
}

/* The def a name refers to: a node ("h1"), or the node that made a parameter
 * ("fc1.weight", "h_2.bias" for the second layer of node h). */
static int def_of_name(const Sorter *st, const char *name)
{
	const char *dot = strchr(name, '.');
	if (!dot)
		return def_named(st, name, strlen(name));
	size_t n = (size_t)(dot - name);
	int k = def_named(st, name, n);
	for (size_t u = n; k < 0 && u >= 2 && name[u - 1] >= '0' && name[u - 1] <= '9';
	     u--)
		if (name[u - 2] == '_')
			k = def_named(st, name, u - 2);
	return k;
}

/* The defs an expression uses: names among its values, not its settings (units=..). */
static void collect_deps(Sorter *st, int i, const Expr *e, int *cap)
{
	if (!e)
		return;
	int k = e->kind == EX_NAME ? def_of_name(st, e->name) : -1;
	if (k >= 0) {
		if (st->ndeps[i] == *cap) {
			int *nd = arena_alloc(st->c->A,
			                      (size_t)(*cap ? 2 * *cap : 4) * sizeof *nd);
			if (st->ndeps[i])
				memcpy(nd, st->deps[i],
				       (size_t)st->ndeps[i] * sizeof *nd);
			st->deps[i] = nd;
			*cap = *cap ? 2 * *cap : 4;
		}
		st->deps[i][st->ndeps[i]++] = k;
	}
	for (int a = 0; a < e->nargs; a++)
		collect_deps(st, i, e->args[a], cap);
}

/* "h1 -> h2 -> h3 -> h1": the cycle in the order values flow, from its first node in
 * the file, reported there. path[0..n) are defs each using the next, the last using
 * path[0]. */
static void report_cycle(Ctx *c, const int *path, int n)
{
	int first = 0;
	for (int i = 1; i < n; i++)
		if (path[i] < path[first])
			first = i;
	const Def *defs = c->m->defs;
	char *s = arena_strdup(c->A, defs[path[first]].name);
	/* values flow against uses: path[i] flows into path[i - 1] */
	for (int k = 1; k <= n; k++)
		s = arena_printf(c->A, "%s -> %s", s,
		                 defs[path[((first - k) % n + n) % n]].name);
	error_at(c->d, defs[path[first]].loc, "the nodes form a cycle: %s", s);
}

/* Orders the graph form's defs so that each comes after the defs it uses, keeping the
 * file's order where it is free (a depth-first walk in file order, emitting what a def
 * uses before it); a cycle is an error. Iterative: chains may be long. */
static void sort_defs(Ctx *c)
{
	Model *m = c->m;
	int n = m->ndefs;
	if (n < 1)
		return;
	Sorter st = {.c = c, .cap = 16};
	while (st.cap < 2 * n)
		st.cap *= 2;
	st.slot = arena_alloc(c->A, (size_t)st.cap * sizeof *st.slot);
	for (int i = 0; i < n; i++) {
		uint32_t k = name_hash(m->defs[i].name, strlen(m->defs[i].name)) &
		             (uint32_t)(st.cap - 1);
		while (st.slot[k])
			k = (k + 1) & (uint32_t)(st.cap - 1);
		st.slot[k] = i + 1;
	}
	st.deps = arena_alloc(c->A, (size_t)n * sizeof *st.deps);
	st.ndeps = arena_alloc(c->A, (size_t)n * sizeof *st.ndeps);
	for (int i = 0; i < n; i++) {
		int cap = 0;
		collect_deps(&st, i, m->defs[i].e, &cap);
	}
	char *state = arena_alloc(c->A, (size_t)n); /* 0 new, 1 on the path, 2 done */
	int *path = arena_alloc(c->A, (size_t)n * sizeof *path);
	int *next = arena_alloc(c->A, (size_t)n * sizeof *next); /* next dep to visit */
	Def *out = arena_alloc(c->A, (size_t)(n + 1) * sizeof *out);
	int nout = 0;
	for (int root = 0; root < n; root++) {
		if (state[root])
			continue;
		int top = 0;
		path[top++] = root;
		state[root] = 1;
		next[root] = 0;
		while (top) {
			int i = path[top - 1];
			if (next[i] == st.ndeps[i]) {
				state[i] = 2;
				out[nout++] = m->defs[i];
				top--;
				continue;
			}
			int j = st.deps[i][next[i]++];
			if (state[j] == 1) {
				int from = top - 1;
				while (path[from] != j)
					from--;
				report_cycle(c, path + from, top - from);
				return;
			}
			if (!state[j]) {
				state[j] = 1;
				next[j] = 0;
				path[top++] = j;
			}
		}
	}
	memcpy(m->defs, out, (size_t)n * sizeof *out);
}

/* Node names are unique and differ from inputs and parameters. */
static void check_def_names(Ctx *c)
{
	Model *m = c->m;
	/* a parameter of an input's name took its place everywhere */
	for (int i = 0; i < m->nparams; i++)
		for (int j = 0; j < m->ninputs; j++)
			if (!strcmp(m->inputs[j].name, m->params[i].name))
				error_at(c->d, m->params[i].loc,
				         "the name '%s' is already an input",
				         m->params[i].name);
	for (int i = 0; i < m->ndefs; i++) {
		const Def *d = &m->defs[i];
		for (int j = 0; j < i; j++)
			if (!strcmp(m->defs[j].name, d->name))
				error_at(c->d, d->loc,
				         "the name '%s' is already used at line %d",
				         d->name, m->defs[j].loc.line);
		for (int j = 0; j < m->ninputs; j++)
			if (!strcmp(m->inputs[j].name, d->name))
				error_at(c->d, d->loc,
				         "the name '%s' is already an input", d->name);
		for (int j = 0; j < m->nparams; j++)
			if (!strcmp(m->params[j].name, d->name))
				error_at(c->d, d->loc,
				         "the name '%s' is already a parameter", d->name);
	}
}

/* ---------------- loss ---------------- */

static const char *const loss_keys[] = {"type",  "target", "reduction", "label_smoothing",
                                        "delta", "l2",     NULL};

static int input_index(const Model *m, const char *name)
{
	for (int i = 0; i < m->ninputs; i++)
		if (!strcmp(m->inputs[i].name, name))
			return i;
	return -1;
}

/* The loss target of the short forms: the one input that is not the network's. */
static const char *default_target(Ctx *c, SrcLoc at)
{
	Model *m = c->m;
	if (m->y >= 0) /* 'target:' */
		return m->inputs[m->y].name;
	for (int i = 0; i < m->ninputs; i++)
		if (!c->net_input || strcmp(m->inputs[i].name, c->net_input))
			if (m->ninputs == 2 || (m->ninputs == 1 && !c->net_input))
				return m->inputs[i].name;
	error_at(c->d, at, "name the loss target: 'loss: {type: ..., target: INPUT}'");
	return NULL;
}

static Expr *loss_call(Ctx *c, const char *type, SrcLoc at, const char *target,
                       SrcLoc tloc)
{
	Expr *call = arena_alloc(c->A, sizeof *call);
	call->kind = EX_CALL;
	call->name = type;
	call->loc = at;
	call->nargs = 2;
	call->args = arena_alloc(c->A, 2 * sizeof *call->args);
	call->args[0] = name_expr(c, "output", at);
	call->args[1] = name_expr(c, target, tloc);
	call->kwnames = arena_alloc(c->A, 8 * sizeof *call->kwnames);
	call->kwargs = arena_alloc(c->A, 8 * sizeof *call->kwargs);
	call->kwlocs = arena_alloc(c->A, 8 * sizeof *call->kwlocs);
	return call;
}

/* {type: softmax_cross_entropy, target: label, l2: 1e-4, ...} as the expression
 * softmax_cross_entropy(output, label, ...) + 1e-4 * l2() */
static Expr *loss_mapping(Ctx *c, const Spec *s)
{
	if (!keys_ok(c, s, "loss", loss_keys))
		return NULL;
	const Spec *type = spec_need(c->d, s, "type", "loss"), *t = spec_get(s, "target");
	const char *target = t ? NULL : default_target(c, s->loc);
	if (t)
		spec_str(c->d, t, "target", &target);
	if (!type || !target || spec_expect(c->d, type, SPEC_SCALAR, "loss type"))
		return NULL;
	Expr *call = loss_call(c, type->str, type->loc, target, t ? t->loc : s->loc);
	for (int i = 0; i < s->n; i++) {
		const char *k = s->keys[i]->str;
		int known = 0; /* (an unknown key, said by keys_ok, was said again) */
		for (int j = 0; loss_keys[j]; j++)
			known |= !strcmp(k, loss_keys[j]);
		if (!known || !strcmp(k, "type") || !strcmp(k, "target") ||
		    !strcmp(k, "l2"))
			continue;
		Expr *v = setting(c, s->keys[i], s->items[i], i ? s->items[i - 1] : NULL);
		if (v) {
			call->kwlocs[call->nkw] = s->keys[i]->loc;
			call->kwnames[call->nkw] = k, call->kwargs[call->nkw++] = v;
		}
	}
	const Spec *l2 = spec_get(s, "l2");
	double w;
	if (!l2 || spec_num(c->d, l2, "l2", 0, 1e6, &w))
		return call;
	Expr *pen = arena_alloc(c->A, sizeof *pen), *num = arena_alloc(c->A, sizeof *num);
	Expr *sum = arena_alloc(c->A, sizeof *sum), *l2c = arena_alloc(c->A, sizeof *l2c);
	*num = (Expr){.kind = EX_NUM, .loc = l2->loc, .num = w};
	*l2c = (Expr){.kind = EX_CALL, .loc = l2->loc, .name = "l2"};
	Expr **pa = arena_alloc(c->A, 2 * sizeof *pa),
	     **sa = arena_alloc(c->A, 2 * sizeof *sa);
	pa[0] = num, pa[1] = l2c, sa[0] = call, sa[1] = pen;
	*pen = (Expr){.kind = EX_BIN, .loc = l2->loc, .op = '*', .args = pa, .nargs = 2};
	*sum =
	    (Expr){.kind = EX_BIN, .loc = call->loc, .op = '+', .args = sa, .nargs = 2};
	return sum;
}

/* The inputs the loss expression e names that the network does not take: the first
 * into *first, and the first that is a loss's target argument (softmax_cross_entropy(h,
 * y)'s y) into *arg. Names only, not through the nodes they name (which lead into the
 * network: an embedding's indices are no target). */
static int other_input(Ctx *c, const Expr *e) /* the input e names, not the network's */
{
	int k = e->kind == EX_NAME ? input_index(c->m, e->name) : -1;
	return k >= 0 && c->net_input && !strcmp(c->net_input, e->name) ? -1 : k;
}

static void find_target(Ctx *c, const Expr *e, int *first, int *arg)
{
	int k = other_input(c, e);
	if (*first < 0)
		*first = k;
	if (*arg < 0 && e->kind == EX_CALL && e->nargs >= 2 && fun_lookup(e->name) &&
	    (fun_lookup(e->name)->flags & FUN_LOSS))
		*arg = other_input(c, e->args[1]);
	for (int a = 0; a < e->nargs; a++)
		find_target(c, e->args[a], first, arg);
}

static void parse_loss(Ctx *c, const Spec *s)
{
	Model *m = c->m;
	m->loss_loc = s->loc;
	if (s->kind == SPEC_MAP) {
		m->loss = loss_mapping(c, s);
	} else if (!spec_expect(c->d, s, SPEC_SCALAR, "loss")) {
		Expr *e = expr_from_spec(c->A, c->d, s);
		/* the short form 'loss: mse' */
		if (e && e->kind == EX_NAME && fun_lookup(e->name) &&
		    (fun_lookup(e->name)->flags & FUN_LOSS)) {
			const char *t = default_target(c, s->loc);
			e = t ? loss_call(c, e->name, e->loc, t, s->loc) : NULL;
		}
		m->loss = e;
	}
	/* The target: 'target:' names it; else a loss's target argument the loss names
	 * (-sum(w * nll(h, y)) / sum(w): y), else the first input it names that the
	 * network does not take. Else the network's input is its own target (an
	 * autoencoder's mse(out, image), an unsupervised loss, a loss that reaches its
	 * inputs through nodes): data feed every input anyway; the target decides what
	 * --data-y stands for and whether accuracy is measured. */
	if (m->loss && m->y < 0) {
		int first = -1, arg = -1;
		find_target(c, m->loss, &first, &arg);
		m->y = arg >= 0 ? arg : first >= 0 ? first : m->x;
	}
}

/* ---------------- optimizer ---------------- */

/* torch.optim's defaults for optimizer k; sgd's lr, which torch 1.13 requires (torch 2:
 * 1e-3), is Keras' 0.01. */
static void opt_defaults(Model *m, OptKind k)
{
	m->opt = k;
	m->lr = k == OPT_SGD ? 0.01 : k == OPT_ADAM || k == OPT_ADAMW ? 1e-3 : 1e-2;
	m->momentum = m->dampening = 0;
	m->weight_decay = k == OPT_ADAMW ? 1e-2 : 0;
	m->beta1 = 0.9, m->beta2 = 0.999;
	m->eps = k == OPT_ADAGRAD ? 1e-10 : 1e-8;
	m->alpha = 0.99;
	m->lr_decay = m->initial_accumulator_value = 0;
	m->nesterov = m->amsgrad = m->centered = 0;
	m->max_norm = m->clip_value = 0;
}

#define OB(k) (1u << (k))
#define ALL_OPT                                                                          \
	(OB(OPT_SGD) | OB(OPT_ADAM) | OB(OPT_ADAMW) | OB(OPT_RMSPROP) | OB(OPT_ADAGRAD))

/* Every key of the optimizer mapping: the optimizers that have it, and how it is read.
 * Ranges are torch.optim's checks, except that lr must be > 0, momentum < 1 and
 * alpha, dampening at most 1; the clipping settings must be > 0. */
static const struct OptSetting {
	const char *key;
	unsigned in; /* OB(OptKind) of the optimizers that have it */
	char kind;   /* 'n': a number in [lo, hi]; 'b': a boolean; 0: read by hand */
	size_t off;  /* the Model field: double for 'n', int for 'b' */
	double lo, hi;
	char open; /* '>': lo is excluded, '<': hi is */
} opt_settings[] = {
    {"type", ALL_OPT, 0, 0, 0, 0, 0},
    {"lr", ALL_OPT, 0, offsetof(Model, lr), 0, 1e6, '>'},
    {"learning_rate", ALL_OPT, 0, offsetof(Model, lr), 0, 1e6, '>'},
    {"momentum", OB(OPT_SGD) | OB(OPT_RMSPROP), 'n', offsetof(Model, momentum), 0, 1,
     '<'},
    {"dampening", OB(OPT_SGD), 'n', offsetof(Model, dampening), 0, 1, 0},
    {"nesterov", OB(OPT_SGD), 'b', offsetof(Model, nesterov), 0, 0, 0},
    {"weight_decay", ALL_OPT, 'n', offsetof(Model, weight_decay), 0, 1e6, 0},
    {"betas", OB(OPT_ADAM) | OB(OPT_ADAMW), 0, 0, 0, 0, 0},
    {"eps", ALL_OPT & ~OB(OPT_SGD), 'n', offsetof(Model, eps), 0, 1, 0},
    {"amsgrad", OB(OPT_ADAM) | OB(OPT_ADAMW), 'b', offsetof(Model, amsgrad), 0, 0, 0},
    {"alpha", OB(OPT_RMSPROP), 'n', offsetof(Model, alpha), 0, 1, 0},
    {"centered", OB(OPT_RMSPROP), 'b', offsetof(Model, centered), 0, 0, 0},
    {"lr_decay", OB(OPT_ADAGRAD), 'n', offsetof(Model, lr_decay), 0, 1e6, 0},
    {"initial_accumulator_value", OB(OPT_ADAGRAD), 'n',
     offsetof(Model, initial_accumulator_value), 0, 1e6, 0},
    {"clip_grad_norm", ALL_OPT, 'n', offsetof(Model, max_norm), 0, 1e6, '>'},
    {"clip_grad_value", ALL_OPT, 'n', offsetof(Model, clip_value), 0, 1e6, '>'},
};

enum { LR_SETTING = 1 }; /* opt_settings' row of lr */

int hyper_range(const char *name, double *lo, double *hi, char *open)
{
	static const char *const alias[][2] = {{"beta1", "betas"},
	                                       {"beta2", "betas"},
	                                       {"max_norm", "clip_grad_norm"},
	                                       {"clip_value", "clip_grad_value"}};
	const char *key = name;
	for (int i = 0; i < N(alias); i++)
		key = strcmp(name, alias[i][0]) ? key : alias[i][1];
	if (!strcmp(key, "betas")) { /* parse_betas */
		*lo = 0, *hi = 1, *open = '<';
		return 1;
	}
	for (int i = 0; i < N(opt_settings); i++)
		if (!strcmp(key, opt_settings[i].key) && strcmp(key, "type")) {
			const struct OptSetting *t = &opt_settings[i];
			*lo = t->lo, *hi = t->hi, *open = i == LR_SETTING ? 0 : t->open;
			return 1;
		}
	return 0;
}

/* " (1 as a 32-bit float)" when x is not exactly a float, which hyperparameters are */
static const char *as_float(Ctx *c, double x)
{
	float f = (float)x;
	return (double)f == x ? "" : arena_printf(c->A, " (%g as a 32-bit float)", f);
}

/* A number in the setting's range, into its field. An open end is checked on the
 * float the step will use: 0.99999999 is 1 there. */
static void opt_num(Ctx *c, const struct OptSetting *t, const Spec *v, const char *what)
{
	double x;
	if (spec_num(c->d, v, what, t->lo, t->hi, &x))
		return;
	if (t->open == '>' && (float)x <= t->lo)
		error_at(c->d, v->loc, "'%s' must be greater than %g, got '%s'%s", what,
		         t->lo, v->str, as_float(c, x));
	else if (t->open == '<' && (float)x >= t->hi)
		error_at(c->d, v->loc, "'%s' must be less than %g, got '%s'%s", what,
		         t->hi, v->str, as_float(c, x));
	else
		*(double *)((char *)c->m + t->off) = x;
}

/* betas: [beta1, beta2], each in [0, 1) as a float (beta1 = 1 would divide by 1 - 1^t).
 */
static void parse_betas(Ctx *c, const Spec *v)
{
	Model *m = c->m;
	if (spec_expect(c->d, v, SPEC_SEQ, "betas"))
		return;
	if (v->n != 2) {
		error_at(c->d, v->loc,
		         "'betas' takes two numbers, [beta1, beta2], got %d", v->n);
		return;
	}
	double *b[2] = {&m->beta1, &m->beta2};
	for (int i = 0; i < 2; i++)
		if (!spec_num(c->d, v->items[i], "betas", 0, 1, b[i]) &&
		    (float)*b[i] >= 1)
			error_at(c->d, v->items[i]->loc,
			         "each of 'betas' must be less than 1, got '%s'%s",
			         v->items[i]->str, as_float(c, *b[i]));
}

/* "sgd", "sgd and rmsprop", "adam, adamw, rmsprop and adagrad" */
static const char *opt_owners(Ctx *c, unsigned in)
{
	const char *s = "";
	int n = 0, left = __builtin_popcount(in);
	for (int k = 0; k < N(opt_names); k++)
		if (in & OB(k)) {
			left--;
			s = arena_printf(c->A, "%s%s%s", s,
			                 !n++   ? ""
			                 : left ? ", "
			                        : " and ",
			                 opt_names[k]);
		}
	return s;
}

/* lr or learning_rate: the same setting, given once. */
static void parse_lr(Ctx *c, const Spec *s)
{
	const Spec *lr = spec_get(s, "lr"), *lr2 = spec_get(s, "learning_rate");
	if (lr && lr2) {
		const Spec *k1 = key_of(s, "lr"), *k2 = key_of(s, "learning_rate");
		const Spec *later =
		    k1->loc.line > k2->loc.line ||
		            (k1->loc.line == k2->loc.line && k1->loc.col > k2->loc.col)
		        ? k1
		        : k2;
		error_at(c->d, later->loc,
		         "'lr' and 'learning_rate' are the same setting; give one");
	} else if (lr || lr2) {
		opt_num(c, &opt_settings[LR_SETTING], lr ? lr : lr2,
		        lr ? "lr" : "learning_rate");
	}
}

/* optimizer: a name (sgd) or {type: adam, lr: 1e-3, ...}, settings per type. */
static void parse_optimizer(Ctx *c, const Spec *s)
{
	Model *m = c->m;
	m->opt_loc = s->loc;
	const Spec *type = s, *v;
	const char *keys[N(opt_settings) + 1];
	int k, nerr = c->d->nerr, type_ok = 1;
	for (int i = 0; i < N(opt_settings); i++)
		keys[i] = opt_settings[i].key;
	keys[N(opt_settings)] = NULL;
	if (s->kind == SPEC_SEQ) {
		spec_expect(c->d, s, SPEC_MAP, "optimizer");
		return;
	}
	if (s->kind == SPEC_MAP) {
		if (!keys_ok(c, s, "optimizer", keys))
			return;
		type = spec_get(s, "type");
	}
	if (type && spec_enum(c->d, type, "optimizer", opt_names, N(opt_names), &k))
		type_ok = 0; /* so whose settings the others are is unknown */
	else if (type)
		opt_defaults(m, (OptKind)k);
	if (s->kind != SPEC_MAP)
		return;
	parse_lr(c, s);
	for (int i = 0; i < N(opt_settings); i++) {
		const struct OptSetting *t = &opt_settings[i];
		if (!(v = spec_get(s, t->key)))
			continue;
		if (!(t->in & OB(m->opt))) {
			if (type_ok)
				error_at(c->d, key_of(s, t->key)->loc,
				         "'%s' is a setting of %s; %s has none", t->key,
				         opt_owners(c, t->in), opt_names[m->opt]);
		} else if (t->kind == 'n') {
			opt_num(c, t, v, t->key);
		} else if (t->kind == 'b') {
			spec_bool(c->d, v, t->key, (int *)((char *)m + t->off));
		} else if (!strcmp(t->key, "betas")) {
			parse_betas(c, v);
		}
	}
	if (m->nesterov && c->d->nerr == nerr && (m->momentum <= 0 || m->dampening != 0))
		error_at(
		    c->d, spec_get(s, "nesterov")->loc,
		    "nesterov momentum needs 'momentum' greater than 0 and 'dampening' "
		    "0, got momentum %g and dampening %g",
		    m->momentum, m->dampening);
}

/* ---------------- the model ---------------- */

/* "models/fashion_mlp.yaml" -> dir "models", name "fashion_mlp" */
static void split_path(Ctx *c, const char *file)
{
	if (!file) {
		c->dir = "";
		c->m->name = "model";
		return;
	}
	const char *slash = strrchr(file, '/');
	const char *base = slash ? slash + 1 : file;
	const char *dot = strrchr(base, '.');
	c->dir = slash
	             ? arena_strndup(c->A, file, (size_t)(slash - file + (slash == file)))
	             : "";
	c->m->name = arena_strndup(
	    c->A, base, dot && dot > base ? (size_t)(dot - base) : strlen(base));
}

/* The network's input: 'input:' names it; otherwise the one input the loss target
 * leaves (decided once the loss is read, when there are two). */
/* The inputs an expression names, as a bit mask. */
static uint64_t inputs_named(const Model *m, const Expr *e)
{
	uint64_t mask = 0;
	if (e->kind == EX_NAME) {
		int k = input_index(m, e->name);
		if (k >= 0 && k < 64)
			mask |= UINT64_C(1) << k;
	}
	for (int i = 0; i < e->nargs; i++)
		mask |= inputs_named(m, e->args[i]);
	return mask;
}

/* The network's input: 'input:' names it; one input is it; of two, it is the one the
 * loss does not take as its target (the mapping's target, the input a loss expression
 * names, or the second for the short form 'loss: mse'). */
static void network_input(Ctx *c, const Spec *root)
{
	Model *m = c->m;
	const Spec *s = spec_get(root, "input"), *l = spec_get(root, "loss");
	c->no_loss = !l;
	if (s && !spec_str(c->d, s, "input", &c->net_input)) {
		if (c->inputs_ok && (m->x = input_index(m, c->net_input)) < 0)
			spec_enum(c->d, s, "input", c->names, m->ninputs, &m->x);
	} else if (m->ninputs == 1) {
		c->net_input = m->inputs[0].name;
	} else if (m->ninputs == 2 && l) {
		const Spec *t = l->kind == SPEC_MAP ? spec_get(l, "target") : NULL,
		           *top = spec_get(root, "target");
		int y = t && t->kind == SPEC_SCALAR ? input_index(m, t->str) : 1;
		/* 'target:' stands for the loss's own where it has none to name: a
		 * mapping without one, the short form 'loss: mse' */
		int named = l->kind == SPEC_MAP
		                ? !t
		                : l->kind == SPEC_SCALAR && l->str &&
		                      fun_lookup(l->str) &&
		                      (fun_lookup(l->str)->flags & FUN_LOSS);
		if (named && top && top->kind == SPEC_SCALAR &&
		    input_index(m, top->str) >= 0)
			y = input_index(m, top->str);
		else if (l->kind == SPEC_SCALAR) { /* an expression: the input it names */
			Diags quiet = {0};
			Arena *A = arena_new();
			Expr *e = expr_from_spec(A, &quiet, l);
			uint64_t named = e ? inputs_named(m, e) : 0;
			if (named == 1 || named == 2)
				y = named == 1 ? 0 : 1;
			arena_free(A);
			diags_free(&quiet);
		}
		c->net_input = m->inputs[y == 0 ? 1 : 0].name;
	}
	if (c->net_input && m->x < 0)
		m->x = input_index(m, c->net_input);
}

static void check_calls(Ctx *c)
{
	Model *m = c->m;
	for (int i = 0; i < m->ndefs; i++)
		fun_check(c->d, m->defs[i].e);
	if (m->loss)
		fun_check(c->d, m->loss);
}

Model *model_from_spec(Arena *A, Diags *d, const Spec *root, const char *file)
{
	int nerr = d->nerr;
	Model *m = arena_alloc(A, sizeof *m);
	Ctx c = {.A = A, .d = d, .m = m};
	m->file = file ? arena_strdup(A, file) : NULL;
	m->x = m->y = -1;
	opt_defaults(m, OPT_SGD);
	m->batch = 32;
	m->epochs = 1;
	split_path(&c, file);
	if (!root || spec_expect(d, root, SPEC_MAP, "model"))
		return NULL;
	m->opt_loc = root->loc;
	spec_keys(d, root, "model", top_keys);
	const Spec *s;
	if ((s = spec_get(root, "name")))
		spec_str(d, s, "name", &m->name);
	if ((s = spec_get(root, "inputs")))
		parse_inputs(&c, s);
	else
		c.inputs_ok = 1;
	if ((s = spec_get(root, "params")))
		parse_params(&c, s);
	network_input(&c, root);
	if ((s = spec_get(root, "layers")) && spec_get(root, "nodes"))
		error_at(d, s->loc,
		         "a model has either 'layers' (a sequence) or 'nodes' (a graph)");
	else if (s)
		parse_layers(&c, s);
	else if ((s = spec_get(root, "nodes")))
		parse_nodes(&c, s);
	int named = d->nerr;
	check_def_names(&c);
	if (spec_get(root, "nodes") && !spec_get(root, "layers") && d->nerr == named)
		sort_defs(&c); /* names that clash would make false cycles */
	if ((s = spec_get(root, "output")) && !spec_str(d, s, "output", &m->output))
		m->output_loc = s->loc;
	else if (m->ndefs)
		m->output = m->defs[m->ndefs - 1].name,
		m->output_loc = m->defs[m->ndefs - 1].loc;
	const char *target = NULL;
	const Spec *ts = spec_get(root, "target"), *lt;
	if (ts && !spec_str(d, ts, "target", &target) && c.inputs_ok &&
	    (m->y = input_index(m, target)) < 0)
		spec_enum(d, ts, "target", c.names, m->ninputs, &m->y);
	if ((s = spec_need(d, root, "loss", "model")))
		parse_loss(&c, s);
	if (target && s && s->kind == SPEC_MAP && (lt = spec_get(s, "target")) &&
	    lt->kind == SPEC_SCALAR && strcmp(lt->str, target))
		error_at(d, lt->loc,
		         "the loss's target '%s' is not the model's target '%s'", lt->str,
		         target);
	if ((s = spec_get(root, "optimizer")))
		parse_optimizer(&c, s);
	if ((s = spec_get(root, "train")))
		parse_train(&c, s);
	if ((s = spec_get(root, "data")))
		parse_data(&c, s);
	check_calls(&c);
	return d->nerr > nerr ? NULL : m;
}

Model *model_load(Arena *A, Diags *d, const char *path)
{
	Spec *root = spec_load(A, d, path);
	return root ? model_from_spec(A, d, root, path) : NULL;
}
