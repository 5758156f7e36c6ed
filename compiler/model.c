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
 * Each section is read by one function that reports what is wrong at the YAML node
 * and goes on, so that one run shows every independent mistake; the model is returned
 * only if there were none. Defaults are filled in here, so later stages never look at
 * the YAML again; they only keep the locations, to point back into it.
 */
#include <string.h>

#include "dc.h"

typedef struct Ctx {
	Arena *A;
	Diags *d;
	Model *m;
	const char *dir;    /* of the model file, "" if none: data paths are relative */
	const char **names; /* input names, NULL-terminated */
	int inputs_ok;      /* no error in the inputs section */
	SrcLoc inputs_loc;
} Ctx;

static const char *const top_keys[] = {"name",      "inputs", "layers", "loss",
                                       "optimizer", "train",  "data",   NULL};
static const char *const input_keys[] = {"shape", "dtype", NULL};
static const char *const dense_keys[] = {"name", "units", "activation",
                                         "bias", "init",  NULL};
static const char *const loss_keys[] = {"type", "target", NULL};
static const char *const opt_keys[] = {"type", "lr", "learning_rate", "momentum", "betas",
                                       "eps",  NULL};
static const char *const train_keys[] = {"batch", "epochs", "seed", NULL};
static const char *const data_keys[] = {"train", "test", NULL};
static const char *const source_keys[] = {"idx", "scale", NULL};

static const char *const dtype_names[] = {"f32", "i32"}; /* DType */
static const char *const act_names[] = {"none", "relu", "sigmoid", "tanh",
                                        "softmax"}; /* Act */
/* a layer item's kind; the activations are at their Act index */
static const char *const layer_names[] = {"dense", "relu", "sigmoid", "tanh", "softmax"};
static const char *const loss_names[] = {"softmax_cross_entropy", "mse"}; /* LossKind */
static const char *const opt_names[] = {"sgd", "adam"};                   /* OptKind */
static const char *const init_names[] = {"kaiming_uniform", "xavier_uniform", "torch",
                                         "zeros"};
static const rt_init init_vals[] = {RT_INIT_KAIMING_UNIFORM, RT_INIT_XAVIER_UNIFORM,
                                    RT_INIT_TORCH_LINEAR, RT_INIT_ZEROS};

/* io slot names the compiler adds next to the inputs */
static const char *const reserved[] = {"loss", "output", "weight"};

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Checks map's keys; 0 if it is not a mapping at all, so its contents cannot be read.
 * Unknown keys are reported but the known ones are still worth reading. */
static int keys_ok(Ctx *c, const Spec *map, const char *what, const char *const *allowed)
{
	if (spec_expect(c->d, map, SPEC_MAP, what))
		return 0;
	spec_keys(c->d, map, what, allowed);
	return 1;
}

static const Spec *key_of(const Spec *map, const char *key)
{
	for (int i = 0; i < map->n; i++)
		if (map->keys[i]->kind == SPEC_SCALAR && !strcmp(map->keys[i]->str, key))
			return map->keys[i];
	return NULL;
}

/* A number in (0, max]. */
static int num_pos(Ctx *c, const Spec *s, const char *what, double max, double *out)
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

/* "[batch, 28, 28]" */
static const char *shape_text(Ctx *c, const ModelInput *in)
{
	char buf[160];
	size_t n = (size_t)snprintf(buf, sizeof buf, "[batch");
	for (int i = 1; i < in->rank && n < sizeof buf; i++)
		n += (size_t)snprintf(buf + n, sizeof buf - n, ", %lld",
		                      (long long)in->dims[i]);
	if (n < sizeof buf)
		snprintf(buf + n, sizeof buf - n, "]");
	return arena_strdup(c->A, buf);
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
	/* every product of dims with a batch size must fit an int64 */
	int64_t numel = INT64_C(1) << 20;
	int ok = 1;
	for (int i = 1; i < sh->n; i++) {
		const char *what = arena_printf(c->A, "%s.shape[%d]", in->name, i);
		if (spec_int(c->d, sh->items[i], what, 1, INT64_C(1) << 31, &in->dims[i]))
			ok = 0;
		else if (ok && !mul_ok(numel, in->dims[i], &numel)) {
			error_at(c->d, sh->loc,
			         "input '%s' has too many elements per example",
			         in->name);
			ok = 0;
		}
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

/* ---------------- layers ---------------- */

static void parse_dense(Ctx *c, const Spec *val, Layer *L, int ndense, int *init_set)
{
	L->kind = LAYER_DENSE;
	L->name = arena_printf(c->A, "fc%d", ndense);
	L->bias = 1;
	if (!keys_ok(c, val, "dense layer", dense_keys))
		return;
	const Spec *s;
	int k;
	if ((s = spec_get(val, "name")) && !spec_str(c->d, s, "name", &L->name))
		check_ident(c, s, "layer");
	if ((s = spec_need(c->d, val, "units", "dense layer")))
		spec_int(c->d, s, "units", 1, INT64_C(1) << 31, &L->units);
	if ((s = spec_get(val, "activation")) &&
	    !spec_enum(c->d, s, "activation", act_names, N(act_names), &k))
		L->act = (Act)k;
	if ((s = spec_get(val, "bias")))
		spec_bool(c->d, s, "bias", &L->bias);
	if ((s = spec_get(val, "init")) &&
	    !spec_enum(c->d, s, "init", init_names, N(init_names), &k)) {
		L->init = init_vals[k];
		*init_set = 1;
	}
}

/* An item is a bare activation ("- relu") or a mapping with one key, the kind. */
static void parse_layer(Ctx *c, const Spec *item, Layer *L, int *ndense, int *init_set)
{
	L->loc = item->loc;
	const Spec *kind = item, *val = NULL;
	if (item->kind == SPEC_MAP && item->n == 1) {
		kind = item->keys[0];
		val = item->items[0];
	} else if (item->kind != SPEC_SCALAR) {
		char buf[80];
		error_at(c->d, item->loc,
		         "a layer is a name like 'relu' or a mapping with one key, like "
		         "'dense: "
		         "{units: 10}'; found %s",
		         item->kind == SPEC_MAP
		             ? arena_printf(c->A, "a mapping with %d keys", item->n)
		             : spec_describe(item, buf, sizeof buf));
		return;
	}
	int k;
	if (spec_enum(c->d, kind, "layer", layer_names, N(layer_names), &k))
		return;
	if (k == 0 && !val) {
		++*ndense;
		error_at(c->d, item->loc,
		         "a dense layer needs settings, like 'dense: {units: 10}'");
	} else if (k == 0) {
		parse_dense(c, val, L, ++*ndense, init_set);
	} else if (val && (val->kind != SPEC_SCALAR || val->quoted || val->str[0])) {
		error_at(c->d, val->loc,
		         "layer '%s' takes no settings; write it as '- %s'",
		         layer_names[k], layer_names[k]);
	} else {
		L->kind = LAYER_ACT;
		L->act = (Act)k;
		L->name = layer_names[k];
	}
}

/* Defaults that depend on neighbours, and names that must be unique. */
static void finish_layers(Ctx *c, const int *init_set)
{
	Model *m = c->m;
	for (int i = 0; i < m->nlayers; i++) {
		Layer *L = &m->layers[i];
		if (L->kind != LAYER_DENSE ||
		    !L->name) /* !name: the item was not understood */
			continue;
		/* He initialisation when a ReLU follows, in the layer or right after it
		 */
		int relu = L->act == ACT_RELU ||
		           (i + 1 < m->nlayers && m->layers[i + 1].kind == LAYER_ACT &&
		            m->layers[i + 1].act == ACT_RELU);
		if (!init_set[i])
			L->init = relu ? RT_INIT_KAIMING_UNIFORM : RT_INIT_XAVIER_UNIFORM;
		for (int j = 0; j < i; j++) {
			const Layer *P = &m->layers[j];
			if (P->kind == LAYER_DENSE && P->name &&
			    !strcmp(P->name, L->name)) {
				error_at(c->d, L->loc,
				         "layer name '%s' is already used at line %d",
				         L->name, m->layers[j].loc.line);
				break;
			}
		}
	}
}

static void parse_layers(Ctx *c, const Spec *s)
{
	Model *m = c->m;
	if (spec_expect(c->d, s, SPEC_SEQ, "layers"))
		return;
	m->nlayers = s->n;
	m->layers = arena_alloc(c->A, (size_t)s->n * sizeof *m->layers);
	int *init_set = arena_alloc(c->A, (size_t)s->n * sizeof *init_set);
	int ndense = 0, nerr = c->d->nerr;
	for (int i = 0; i < s->n; i++)
		parse_layer(c, s->items[i], &m->layers[i], &ndense, &init_set[i]);
	finish_layers(c, init_set);
	if (!ndense && c->d->nerr == nerr) /* a misspelt layer said enough already */
		error_at(c->d, s->loc,
		         "the model has no dense layer, so nothing to train");
}

/* ---------------- loss ---------------- */

/* The target's type must suit the loss, and the one other input is the network's. */
static void check_target(Ctx *c, SrcLoc at)
{
	Model *m = c->m;
	const ModelInput *y = &m->inputs[m->y];
	if (m->loss == LOSS_SOFTMAX_XENT && (y->dt != DT_I32 || y->rank != 1))
		error_at(
		    c->d, at,
		    "softmax_cross_entropy needs an i32 target of shape [batch] (class "
		    "indices); input '%s' is %s with shape %s",
		    y->name, dtype_names[y->dt], shape_text(c, y));
	if (m->loss == LOSS_MSE && y->dt != DT_F32)
		error_at(c->d, at, "mse needs an f32 target; input '%s' is %s", y->name,
		         dtype_names[y->dt]);
	if (m->ninputs == 1) {
		error_at(c->d, c->inputs_loc,
		         "the model's only input '%s' is the loss target; the network "
		         "needs an "
		         "input of its own",
		         y->name);
		return;
	}
	if (m->ninputs > 2) {
		error_at(c->d, c->inputs_loc,
		         "the model has %d inputs; it needs exactly two, the network's "
		         "input and the "
		         "loss target '%s'",
		         m->ninputs, y->name);
		return;
	}
	m->x = 1 - m->y;
	const ModelInput *x = &m->inputs[m->x];
	if (x->dt != DT_F32)
		error_at(c->d, x->loc, "the network's input '%s' must be f32, not %s",
		         x->name, dtype_names[x->dt]);
}

static void parse_loss(Ctx *c, const Spec *s)
{
	Model *m = c->m;
	m->loss_loc = s->loc;
	const Spec *type = s, *target = NULL;
	if (s->kind == SPEC_SEQ) {
		spec_expect(c->d, s, SPEC_MAP, "loss");
		return;
	}
	if (s->kind == SPEC_MAP) {
		if (!keys_ok(c, s, "loss", loss_keys))
			return;
		type = spec_need(c->d, s, "type", "loss");
		target = spec_need(c->d, s, "target", "loss");
	}
	int k = -1;
	if (type && spec_enum(c->d, type, "loss", loss_names, N(loss_names), &k))
		k = -1;
	if (k >= 0)
		m->loss = (LossKind)k;
	if (!c->inputs_ok || (s->kind == SPEC_MAP && !target))
		return;
	if (target) {
		if (spec_enum(c->d, target, "input", c->names, m->ninputs, &m->y) ||
		    k < 0)
			return;
	} else if (k < 0) {
		return;
	} else if (m->ninputs == 2) {
		m->y = 1;
	} else {
		error_at(
		    c->d, s->loc,
		    "the short form 'loss: %s' needs exactly two inputs, the network's "
		    "and the "
		    "target; with %d, name the target: 'loss: {type: %s, target: ...}'",
		    loss_names[k], m->ninputs, loss_names[k]);
		return;
	}
	check_target(c, target ? target->loc : s->loc);
}

/* ---------------- optimizer, train ---------------- */

/* betas: [beta1, beta2], each in [0, 1); eps > 0. Only adam has them. */
static void parse_adam(Ctx *c, const Spec *s)
{
	Model *m = c->m;
	const Spec *v;
	for (int i = 0; i < 2; i++) {
		const char *key = i ? "eps" : "betas";
		if (spec_get(s, key) && m->opt != OPT_ADAM)
			error_at(c->d, key_of(s, key)->loc,
			         "'%s' is a setting of adam; %s has none", key,
			         opt_names[m->opt]);
	}
	if (m->opt != OPT_ADAM)
		return;
	if ((v = spec_get(s, "betas")) && !spec_expect(c->d, v, SPEC_SEQ, "betas")) {
		if (v->n != 2) {
			error_at(c->d, v->loc,
			         "'betas' takes two numbers, [beta1, beta2], got %d",
			         v->n);
			return;
		}
		double *b[2] = {&m->beta1, &m->beta2};
		for (int i = 0; i < 2; i++)
			if (!spec_num(c->d, v->items[i], "betas", 0, 1, b[i]) &&
			    *b[i] >= 1)
				error_at(c->d, v->items[i]->loc,
				         "each of 'betas' must be less than 1, got '%s'",
				         v->items[i]->str);
	}
	if ((v = spec_get(s, "eps")))
		num_pos(c, v, "eps", 1, &m->eps);
}

static void parse_optimizer(Ctx *c, const Spec *s)
{
	Model *m = c->m;
	m->opt_loc = s->loc;
	const Spec *type = s, *v;
	int k;
	if (s->kind == SPEC_SEQ) {
		spec_expect(c->d, s, SPEC_MAP, "optimizer");
		return;
	}
	if (s->kind == SPEC_MAP) {
		if (!keys_ok(c, s, "optimizer", opt_keys))
			return;
		type = spec_get(s, "type");
	}
	if (type && !spec_enum(c->d, type, "optimizer", opt_names, N(opt_names), &k))
		m->opt = (OptKind)k;
	if (m->opt == OPT_ADAM) /* torch.optim.Adam's defaults */
		m->lr = 1e-3, m->beta1 = 0.9, m->beta2 = 0.999, m->eps = 1e-8;
	if (s->kind != SPEC_MAP)
		return;
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
		num_pos(c, lr ? lr : lr2, lr ? "lr" : "learning_rate", 1e6, &m->lr);
	}
	if ((v = spec_get(s, "momentum")) && m->opt != OPT_SGD)
		error_at(c->d, key_of(s, "momentum")->loc,
		         "'momentum' is a setting of sgd; %s has none",
		         opt_names[m->opt]);
	else if (v && !spec_num(c->d, v, "momentum", 0, 1, &m->momentum) &&
	         m->momentum >= 1)
		error_at(c->d, v->loc, "'momentum' must be less than 1, got '%s'",
		         v->str);
	parse_adam(c, s);
}

static void parse_train(Ctx *c, const Spec *s)
{
	Model *m = c->m;
	const Spec *v;
	int64_t seed;
	if (!keys_ok(c, s, "train", train_keys))
		return;
	if ((v = spec_get(s, "batch")))
		spec_int(c->d, v, "batch", 1, 1 << 20, &m->batch);
	if ((v = spec_get(s, "epochs")))
		spec_int(c->d, v, "epochs", 0, 1000000, &m->epochs);
	if ((v = spec_get(s, "seed")) && !spec_int(c->d, v, "seed", 0, INT64_MAX, &seed))
		m->seed = (uint64_t)seed;
}

/* ---------------- data ---------------- */

static const char *resolve(Ctx *c, const char *path)
{
	size_t n = strlen(c->dir);
	if (path[0] == '/' || !n)
		return arena_strdup(c->A, path);
	return arena_printf(c->A, "%s%s%s", c->dir, c->dir[n - 1] == '/' ? "" : "/",
	                    path);
}

static void parse_source(Ctx *c, const Spec *s, const ModelInput *in, DataSource *ds,
                         const char *what)
{
	const Spec *v;
	const char *path;
	ds->loc = s->loc;
	if (!keys_ok(c, s, what, source_keys))
		return;
	if ((v = spec_need(c->d, s, "idx", what)) && !spec_str(c->d, v, "idx", &path)) {
		ds->path = resolve(c, path);
		ds->loc = v->loc;
	}
	if ((v = spec_get(s, "scale"))) {
		if (in->dt != DT_F32)
			error_at(c->d, key_of(s, "scale")->loc,
			         "'scale' applies to f32 inputs; '%s' is %s", in->name,
			         dtype_names[in->dt]);
		else
			num_pos(c, v, "scale", 1e9, &ds->scale);
	}
}

/* One data set: every input must have a source. */
static DataSource *parse_set(Ctx *c, const Spec *s, const char *what)
{
	Model *m = c->m;
	DataSource *ds = arena_alloc(c->A, (size_t)m->ninputs * sizeof *ds);
	for (int i = 0; i < m->ninputs; i++)
		ds[i].scale = 1;
	if (!keys_ok(c, s, what, c->names))
		return ds;
	for (int i = 0; i < m->ninputs; i++) {
		const Spec *v = spec_need(c->d, s, m->inputs[i].name, what);
		if (v)
			parse_source(
			    c, v, &m->inputs[i], &ds[i],
			    arena_printf(c->A, "%s.%s", what, m->inputs[i].name));
	}
	return ds;
}

static void parse_data(Ctx *c, const Spec *s)
{
	Model *m = c->m;
	const Spec *v;
	if (!keys_ok(c, s, "data", data_keys) || !c->inputs_ok)
		return;
	if ((v = spec_get(s, "train"))) {
		m->train = parse_set(c, v, "data.train");
		m->has_train = 1;
	}
	if ((v = spec_get(s, "test"))) {
		m->test = parse_set(c, v, "data.test");
		m->has_test = 1;
	}
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

Model *model_from_spec(Arena *A, Diags *d, const Spec *root, const char *file)
{
	int nerr = d->nerr;
	Model *m = arena_alloc(A, sizeof *m);
	Ctx c = {.A = A, .d = d, .m = m};
	m->file = file ? arena_strdup(A, file) : NULL;
	m->x = m->y = -1;
	m->opt = OPT_SGD;
	m->lr = 0.01;
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
	if ((s = spec_need(d, root, "inputs", "model")))
		parse_inputs(&c, s);
	if ((s = spec_need(d, root, "layers", "model")))
		parse_layers(&c, s);
	if ((s = spec_need(d, root, "loss", "model")))
		parse_loss(&c, s);
	if ((s = spec_get(root, "optimizer")))
		parse_optimizer(&c, s);
	if ((s = spec_get(root, "train")))
		parse_train(&c, s);
	if ((s = spec_get(root, "data")))
		parse_data(&c, s);
	return d->nerr > nerr ? NULL : m;
}

Model *model_load(Arena *A, Diags *d, const char *path)
{
	Spec *root = spec_load(A, d, path);
	return root ? model_from_spec(A, d, root, path) : NULL;
}
