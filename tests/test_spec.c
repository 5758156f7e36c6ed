/* Tests of the front end: YAML -> Spec tree (spec.c), Spec -> Model (model.c) and the
 * diagnostics and helpers they rest on (util.c). A valid model must come out with every
 * field and default right; every node must know its line and column; and each table of
 * broken models asserts, for every entry, that the model is rejected with an error
 * whose text contains the expected words at the expected line:col. Models are parsed
 * from strings as "t.yaml"; the loading tests write real files into a temporary
 * directory. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dc.h"
#include "tests.h"

/* ---- helpers ---- */

typedef struct Parsed {
	Arena *A;
	Diags d;
	Spec *root;
	Model *m;
} Parsed;

static void parse_as(Parsed *p, const char *file, const char *yaml)
{
	p->A = arena_new();
	p->d = (Diags){0};
	p->root = spec_parse(p->A, &p->d, file, yaml, strlen(yaml));
	p->m = p->root ? model_from_spec(p->A, &p->d, p->root, file) : NULL;
}

static void parse(Parsed *p, const char *yaml)
{
	parse_as(p, "t.yaml", yaml);
}

/* Only the Spec tree, no model. */
static void parse_spec(Parsed *p, const char *yaml)
{
	p->A = arena_new();
	p->d = (Diags){0};
	p->root = spec_parse(p->A, &p->d, "t.yaml", yaml, strlen(yaml));
	p->m = NULL;
}

static void done(Parsed *p)
{
	diags_free(&p->d);
	arena_free(p->A);
}

/* An expected diagnostic: an error containing msg at line:col of t.yaml. */
typedef struct Case {
	const char *yaml;
	const char *msg;
	int line, col;
} Case;

static int has_error(const Diags *d, const char *msg, int line, int col)
{
	for (int i = 0; i < d->n; i++) {
		const Diag *g = &d->v[i];
		if (g->sev == SEV_ERROR && strstr(g->msg, msg) && g->loc.line == line &&
		    g->loc.col == col && g->loc.file && !strcmp(g->loc.file, "t.yaml"))
			return 1;
	}
	return 0;
}

static int check_case(const Case *c)
{
	Parsed p;
	parse(&p, c->yaml);
	int ok = !p.m && p.d.nerr > 0 && has_error(&p.d, c->msg, c->line, c->col);
	if (!ok) {
		fprintf(stderr, "\n--- expected %d:%d: %s\n%s--- got:\n", c->line, c->col,
		        c->msg, c->yaml);
		diag_print(&p.d, stderr);
	}
	done(&p);
	return ok;
}

static void run_cases(const Case *cs, int n)
{
	for (int i = 0; i < n; i++)
		CU_ASSERT(check_case(&cs[i]));
}

#define RUN(cases) run_cases(cases, (int)(sizeof cases / sizeof cases[0]))

/* A minimal valid model, one line per section, to break one line at a time. */
#define IN "inputs: {x: {shape: [batch, 4]}, y: {shape: [batch], dtype: i32}}\n"
#define LAYERS "layers: [{dense: {units: 3}}]\n"
#define LOSS "loss: {type: softmax_cross_entropy, target: y}\n"
#define OK IN LAYERS LOSS

static const char fashion[] =
    "name: fashion_mlp\n"
    "inputs:\n"
    "  image: {shape: [batch, 784]}\n"
    "  label: {shape: [batch], dtype: i32}\n"
    "layers:\n"
    "  - dense: {units: 256, activation: relu}\n"
    "  - dense: {units: 128, name: hidden, bias: false, init: torch}\n"
    "  - relu\n"
    "  - dense: {units: 10}\n"
    "loss: {type: softmax_cross_entropy, target: label}\n"
    "optimizer: {type: sgd, learning_rate: 0.1, momentum: 0.9}\n"
    "train: {batch: 64, epochs: 5, seed: 7}\n"
    "data:\n"
    "  train: {image: {idx: /data/train-images.gz, scale: 1/255}, label: {idx: "
    "train-labels.gz}}\n";

/* ---- valid models ---- */

static void test_model_valid_fills_every_field(void)
{
	Parsed p;
	parse_as(&p, "models/fashion.yaml", fashion);
	Model *m = p.m;
	CU_ASSERT_EQUAL(p.d.n, 0);
	CU_ASSERT_FATAL(m != NULL);
	CU_ASSERT_STRING_EQUAL(m->file, "models/fashion.yaml");
	CU_ASSERT_STRING_EQUAL(m->name, "fashion_mlp");
	CU_ASSERT_EQUAL_FATAL(m->ninputs, 2);
	CU_ASSERT_STRING_EQUAL(m->inputs[0].name, "image");
	CU_ASSERT_EQUAL(m->inputs[0].dt, DT_F32);
	CU_ASSERT_EQUAL(m->inputs[0].rank, 2);
	CU_ASSERT_EQUAL(m->inputs[0].dims[0], -1);
	CU_ASSERT_EQUAL(m->inputs[0].dims[1], 784);
	CU_ASSERT_EQUAL(m->inputs[0].loc.line, 3);
	CU_ASSERT_EQUAL(m->inputs[0].loc.col, 3);
	CU_ASSERT_EQUAL(m->inputs[1].dt, DT_I32);
	CU_ASSERT_EQUAL(m->inputs[1].rank, 1);
	CU_ASSERT_EQUAL(m->x, 0);
	CU_ASSERT_EQUAL(m->y, 1);

	CU_ASSERT_EQUAL_FATAL(m->nlayers, 4);
	Layer *L = m->layers;
	CU_ASSERT(L[0].kind == LAYER_DENSE && L[0].units == 256 && L[0].act == ACT_RELU);
	CU_ASSERT_STRING_EQUAL(L[0].name, "fc1");
	CU_ASSERT(L[0].bias && L[0].init == RT_INIT_KAIMING_UNIFORM);
	CU_ASSERT(L[0].loc.line == 6 && L[0].loc.col == 5);
	CU_ASSERT_STRING_EQUAL(L[1].name, "hidden");
	CU_ASSERT(!L[1].bias && L[1].init == RT_INIT_TORCH_LINEAR &&
	          L[1].act == ACT_NONE);
	CU_ASSERT(L[2].kind == LAYER_ACT && L[2].act == ACT_RELU);
	CU_ASSERT(L[2].loc.line == 8 && L[2].loc.col == 5);
	/* dense layers are counted for default names, activations are not */
	CU_ASSERT_STRING_EQUAL(L[3].name, "fc3");
	CU_ASSERT(L[3].units == 10 && L[3].init == RT_INIT_XAVIER_UNIFORM);

	CU_ASSERT_EQUAL(m->loss, LOSS_SOFTMAX_XENT);
	CU_ASSERT(m->loss_loc.line == 10 && m->loss_loc.col == 7);
	CU_ASSERT_EQUAL(m->opt, OPT_SGD);
	CU_ASSERT_DOUBLE_EQUAL(m->lr, 0.1, 1e-15);
	CU_ASSERT_DOUBLE_EQUAL(m->momentum, 0.9, 1e-15);
	CU_ASSERT(m->batch == 64 && m->epochs == 5 && m->seed == 7);

	CU_ASSERT(m->has_train && !m->has_test && m->test == NULL);
	CU_ASSERT_STRING_EQUAL(m->train[0].path, "/data/train-images.gz");
	CU_ASSERT_DOUBLE_EQUAL(m->train[0].scale, 1.0 / 255, 1e-15);
	/* relative to the model file's directory */
	CU_ASSERT_STRING_EQUAL(m->train[1].path, "models/train-labels.gz");
	CU_ASSERT_DOUBLE_EQUAL(m->train[1].scale, 1.0, 0);
	CU_ASSERT_EQUAL(m->train[1].loc.line, 14);
	done(&p);
}

static void test_model_defaults_and_short_forms(void)
{
	Parsed p;
	parse_as(&p, "dir/sub/my.model.yaml",
	         "inputs:\n"
	         "  pixels: {shape: [batch, 2, 3]}\n"
	         "  target: {shape: [batch, 4]}\n"
	         "layers: [{dense: {units: 4, activation: tanh}}, sigmoid, softmax]\n"
	         "loss: mse\n"
	         "optimizer: sgd\n"
	         "data: {test: {pixels: {idx: p.idx}, target: {idx: ../t.idx, scale: "
	         "2.5e-1}}}\n");
	Model *m = p.m;
	CU_ASSERT_FATAL(m != NULL);
	CU_ASSERT_STRING_EQUAL(m->name, "my.model");
	CU_ASSERT(m->x == 0 && m->y == 1 && m->loss == LOSS_MSE);
	CU_ASSERT(m->inputs[0].rank == 3 && m->inputs[0].dims[2] == 3);
	CU_ASSERT_DOUBLE_EQUAL(m->lr, 0.01, 0);
	CU_ASSERT_DOUBLE_EQUAL(m->momentum, 0, 0);
	CU_ASSERT(m->batch == 32 && m->epochs == 1 && m->seed == 0);
	CU_ASSERT(m->layers[0].init == RT_INIT_XAVIER_UNIFORM && m->layers[0].bias);
	CU_ASSERT(m->layers[2].kind == LAYER_ACT && m->layers[2].act == ACT_SOFTMAX);
	CU_ASSERT(!m->has_train && m->has_test);
	CU_ASSERT_STRING_EQUAL(m->test[0].path, "dir/sub/p.idx");
	CU_ASSERT_STRING_EQUAL(m->test[1].path, "dir/sub/../t.idx");
	CU_ASSERT_DOUBLE_EQUAL(m->test[1].scale, 0.25, 0);
	done(&p);

	/* the target may come first; a bare relu after a dense layer picks He init */
	parse(&p,
	      "inputs: {y: {shape: [batch], dtype: i32}, x: {shape: [batch, 4]}}\n"
	      "layers: [{dense: {units: 3}}, relu, {dense: {units: 2}}, softmax]\n" LOSS
	      "train: {seed: 9223372036854775807, epochs: 0}\n");
	CU_ASSERT_FATAL(p.m != NULL);
	CU_ASSERT(p.m->x == 1 && p.m->y == 0);
	CU_ASSERT_EQUAL(p.m->layers[0].init, RT_INIT_KAIMING_UNIFORM);
	CU_ASSERT_EQUAL(p.m->layers[2].init, RT_INIT_XAVIER_UNIFORM);
	CU_ASSERT_STRING_EQUAL(p.m->name, "t");
	CU_ASSERT(p.m->seed == 9223372036854775807u && p.m->epochs == 0);
	done(&p);
}

/* ---- the Spec tree ---- */

static void test_spec_nodes_know_line_and_column(void)
{
	const char *yaml = "a: 1\n"
	                   "b:\n"
	                   "  - x\n"
	                   "  - 'q'\n"
	                   "c: {d: [7, 8]}\n";
	Parsed p;
	parse_spec(&p, yaml);
	Spec *r = p.root;
	CU_ASSERT_EQUAL(p.d.n, 0);
	CU_ASSERT_FATAL(r != NULL && r->kind == SPEC_MAP && r->n == 3);
	CU_ASSERT(r->loc.line == 1 && r->loc.col == 1);
	CU_ASSERT(r->keys[1]->loc.line == 2 && r->keys[1]->loc.col == 1);
	Spec *b = spec_get(r, "b");
	CU_ASSERT_FATAL(b && b->kind == SPEC_SEQ && b->n == 2);
	CU_ASSERT(b->loc.line == 3 && b->loc.col == 3);
	CU_ASSERT(b->items[0]->loc.line == 3 && b->items[0]->loc.col == 5);
	CU_ASSERT(!b->items[0]->quoted && b->items[1]->quoted);
	CU_ASSERT_STRING_EQUAL(b->items[1]->str, "q");
	Spec *c = spec_get(r, "c"), *d = spec_get(c, "d");
	CU_ASSERT(c->loc.line == 5 && c->loc.col == 4);
	CU_ASSERT_FATAL(d && d->kind == SPEC_SEQ && d->n == 2);
	CU_ASSERT(d->items[1]->loc.line == 5 && d->items[1]->loc.col == 12);
	CU_ASSERT_STRING_EQUAL(d->loc.file, "t.yaml");
	CU_ASSERT_PTR_NULL(spec_get(r, "zz"));
	CU_ASSERT_PTR_NULL(spec_get(b, "x"));
	done(&p);
}

static void test_spec_alias_shares_the_anchored_node(void)
{
	Parsed p;
	parse_spec(&p, "base: &d {units: 5}\n"
	               "one: *d\n"
	               "s: !!str 12\n"
	               "empty:\n");
	CU_ASSERT_FATAL(p.root != NULL && p.d.n == 0);
	CU_ASSERT_PTR_EQUAL(spec_get(p.root, "base"), spec_get(p.root, "one"));
	CU_ASSERT(spec_get(p.root, "s")->quoted);
	Spec *e = spec_get(p.root, "empty");
	CU_ASSERT(e->kind == SPEC_SCALAR && !e->quoted && !e->str[0]);
	done(&p);

	parse(&p, IN "common: &fc {units: 3, activation: relu}\n"
	             "layers: [{dense: *fc}, {dense: *fc}]\n" LOSS);
	/* 'common' is not a model key: rejected, but the aliases themselves are fine */
	CU_ASSERT(p.m == NULL && p.d.nerr == 1);
	CU_ASSERT(has_error(&p.d, "unknown key 'common' in model", 2, 1));
	done(&p);
}

static void test_spec_accessors_check_values(void)
{
	Parsed p;
	parse_spec(&p,
	           "i: +42\nf: 1/255\ng: -2.5E-3\nh: 1/0\nb: No\ne: tanh\nq: \"7\"\n");
	CU_ASSERT_FATAL(p.root != NULL);
	Diags *d = &p.d;
	int64_t i;
	double f;
	int b, k;
	static const char *const acts[] = {"relu", "tanh"};
	CU_ASSERT(spec_int(d, spec_get(p.root, "i"), "i", 0, 100, &i) == 0 && i == 42);
	CU_ASSERT(spec_num(d, spec_get(p.root, "f"), "f", 0, 1, &f) == 0);
	CU_ASSERT_DOUBLE_EQUAL(f, 1.0 / 255, 1e-17);
	CU_ASSERT(spec_num(d, spec_get(p.root, "g"), "g", -1, 1, &f) == 0 &&
	          f == -2.5e-3);
	CU_ASSERT(spec_bool(d, spec_get(p.root, "b"), "b", &b) == 0 && b == 0);
	CU_ASSERT(spec_enum(d, spec_get(p.root, "e"), "activation", acts, 2, &k) == 0 &&
	          k == 1);
	CU_ASSERT_EQUAL(d->nerr, 0);
	CU_ASSERT_EQUAL(spec_num(d, spec_get(p.root, "h"), "h", 0, 1, &f), -1);
	CU_ASSERT(has_error(d, "'h' must be a number from 0 to 1, got '1/0'", 4, 4));
	/* a quoted number is a string */
	CU_ASSERT_EQUAL(spec_num(d, spec_get(p.root, "q"), "q", 0, 10, &f), -1);
	CU_ASSERT(has_error(d, "got the string \"7\"", 7, 4));
	CU_ASSERT_EQUAL(spec_expect(d, p.root, SPEC_SEQ, "top"), -1);
	CU_ASSERT(has_error(d, "expected a list for 'top', found a mapping", 1, 1));
	CU_ASSERT_EQUAL(d->nerr, 3);
	CU_ASSERT_STRING_EQUAL(spec_kind_name(SPEC_MAP), "mapping");
	done(&p);
}

/* ---- broken models: every case must fail with this message at this line:col ---- */

static void test_spec_reports_bad_yaml_at_the_problem(void)
{
	static const Case cases[] = {
	    {"inputs:\n  x: {shape: [batch, 4]}\n  y: a: b\n",
	     "mapping values are not allowed in this context", 3, 7},
	    {"a: [1, 2\n", "did not find expected ',' or ']'", 2, 1},
	    {"inputs:\n\t- x\n", "found character that cannot start any token", 2, 1},
	    {"a: 1\nb: *nope\n", "unknown YAML alias '*nope'", 2, 4},
	    {"a: \x01\n", "control characters are not allowed", 1, 4},
	    {"? [x, y]\n: 1\n", "a mapping key must be a scalar, found a list", 1, 3},
	    {OK "train: {batch: 4}\ntrain: {batch: 8}\n",
	     "duplicate key 'train' (first at line 4)", 5, 1},
	    {OK "train: {batch: 4, seed: 1, batch: 8}\n",
	     "duplicate key 'batch' (first at line 4)", 4, 28},
	};
	RUN(cases);
}

static void test_spec_rejects_empty_file(void)
{
	const char *texts[] = {"", "# only a comment\n", "---\n", "\n\n"};
	for (int i = 0; i < 4; i++) {
		Parsed p;
		parse(&p, texts[i]);
		CU_ASSERT(p.root == NULL && p.d.nerr == 1);
		CU_ASSERT(p.d.n == 1 && strstr(p.d.v[0].msg, "empty model file"));
		CU_ASSERT(p.d.n == 1 && p.d.v[0].loc.line == 0);
		done(&p);
	}
}

static void test_spec_rejects_unknown_layer_with_suggestion(void)
{
	static const Case cases[] = {
	    {IN "layers: [{dense: {units: 3}}, reul]\n" LOSS,
	     "unknown layer 'reul'; did you mean 'relu'?", 2, 31},
	    {IN "layers:\n  - dens: {units: 3}\n" LOSS,
	     "unknown layer 'dens'; did you mean 'dense'?", 3, 5},
	    {IN "layers: [conv2d]\n" LOSS,
	     "unknown layer 'conv2d'; expected one of: dense, relu, sigmoid, tanh, "
	     "softmax",
	     2, 10},
	};
	RUN(cases);
}

static void test_spec_rejects_unknown_names_with_suggestion(void)
{
	static const Case cases[] = {
	    {IN "layers: [{dense: {units: 3, activation: rleu}}]\n" LOSS,
	     "unknown activation 'rleu'; did you mean 'relu'?", 2, 41},
	    {IN "layers: [{dense: {units: 3, activation: swish}}]\n" LOSS,
	     "unknown activation 'swish'; expected one of: none, relu, sigmoid, tanh, "
	     "softmax",
	     2, 41},
	    {IN "layers: [{dense: {unit: 3}}]\n" LOSS,
	     "unknown key 'unit' in dense layer; did you mean 'units'?", 2, 19},
	    {OK "optimiser: {lr: 0.1}\n",
	     "unknown key 'optimiser' in model; did you mean 'optimizer'?", 4, 1},
	    {IN LAYERS "loss: {type: softmax_crossentropy, target: y}\n",
	     "unknown loss 'softmax_crossentropy'; did you mean 'softmax_cross_entropy'?",
	     3, 14},
	    {OK "optimizer: {type: adagrad}\n",
	     "unknown optimizer 'adagrad'; expected one of: sgd, adam", 4, 19},
	    {OK "optimizer: {type: adam, momentum: 0.9}\n",
	     "'momentum' is a setting of sgd; adam has none", 4, 25},
	    {OK "optimizer: {type: sgd, betas: [0.9, 0.99]}\n",
	     "'betas' is a setting of adam; sgd has none", 4, 24},
	    {OK "optimizer: {type: adam, betas: [0.9]}\n",
	     "'betas' takes two numbers, [beta1, beta2], got 1", 4, 32},
	    {OK "optimizer: {type: adam, betas: [0.9, 1]}\n",
	     "each of 'betas' must be less than 1, got '1'", 4, 38},
	    {OK "optimizer: {type: adam, eps: 0}\n",
	     "'eps' must be greater than 0, got '0'", 4, 30},
	    {"inputs: {x: {shape: [batch, 4], dtype: f64}, y: {shape: [batch]}}\n" LAYERS
	         LOSS,
	     "unknown dtype 'f64'", 1, 40},
	    {IN LAYERS "loss: {type: mse, target: y}\n"
	               "data: {train: {x: {idx: a}, yy: {idx: b}}}\n",
	     "unknown key 'yy' in data.train; did you mean 'y'?", 4, 29},
	    {IN "layers: [{dense: {units: 3, init: he}}]\n" LOSS, "unknown init 'he'", 2,
	     35},
	};
	RUN(cases);
}

static void test_spec_rejects_missing_keys_and_wrong_types(void)
{
	static const Case cases[] = {
	    {LAYERS LOSS, "missing key 'inputs' in model", 1, 1},
	    {IN LOSS, "missing key 'layers' in model", 1, 1},
	    {IN "layers: [{dense: {activation: relu}}]\n" LOSS,
	     "missing key 'units' in dense layer", 2, 18},
	    {IN LAYERS "loss: {type: mse}\n", "missing key 'target' in loss", 3, 7},
	    {OK "data: {train: {x: {idx: a}}}\n", "missing key 'y' in data.train", 4, 15},
	    {OK "optimizer: [sgd]\n", "expected a mapping for 'optimizer', found a list",
	     4, 12},
	    {"inputs: [x, y]\n" LAYERS LOSS,
	     "expected a mapping for 'inputs', found a list", 1, 9},
	    {IN "layers: {dense: {units: 3}}\n" LOSS,
	     "expected a list for 'layers', found a mapping", 2, 9},
	    {IN "layers: [{dense: {units: 3, bias: maybe}}]\n" LOSS,
	     "'bias' must be true or false, got 'maybe'", 2, 35},
	    {OK "name: [a]\n", "expected a string for 'name', found a list", 4, 7},
	    {IN "layers: [dense]\n" LOSS, "a dense layer needs settings", 2, 10},
	    {IN "layers:\n  - dense: {units: 3}\n    relu:\n" LOSS,
	     "a layer is a name like 'relu' or a mapping with one key", 3, 5},
	    {IN "layers: [{dense: {units: 3}}, {relu: {x: 1}}]\n" LOSS,
	     "layer 'relu' takes no settings", 2, 38},
	    {IN "layers: [relu]\n" LOSS, "the model has no dense layer", 2, 9},
	    {IN "layers: [{dense: {units: 3}}, {dense: {units: 3, name: fc1}}]\n" LOSS,
	     "layer name 'fc1' is already used at line 2", 2, 31},
	    {IN "layers: [{dense: {units: 3, name: fc.1}}]\n" LOSS,
	     "layer name 'fc.1' must start with a letter", 2, 35},
	};
	RUN(cases);
}

static void test_spec_rejects_bad_numbers_quoting_them(void)
{
	static const Case cases[] = {
	    {IN "layers: [{dense: {units: -3}}]\n" LOSS,
	     "'units' must be an integer from 1 to 2147483648, got '-3'", 2, 26},
	    {IN "layers: [{dense: {units: 0}}]\n" LOSS, "got '0'", 2, 26},
	    {IN "layers: [{dense: {units: 2.5}}]\n" LOSS, "'units' must be an integer", 2,
	     26},
	    {IN "layers: [{dense: {units: 1e400}}]\n" LOSS, "got '1e400'", 2, 26},
	    {IN "layers: [{dense: {units: .nan}}]\n" LOSS, "got '.nan'", 2, 26},
	    {IN "layers: [{dense: {units: 99999999999999999999}}]\n" LOSS,
	     "got '99999999999999999999'", 2, 26},
	    {IN "layers: [{dense: {units: 4294967296}}]\n" LOSS, "got '4294967296'", 2,
	     26},
	    {OK "train: {batch: -3}\n",
	     "'batch' must be an integer from 1 to 1048576, got '-3'", 4, 16},
	    {OK "train: {batch: 0}\n",
	     "'batch' must be an integer from 1 to 1048576, got '0'", 4, 16},
	    {OK "train: {batch: 2.5}\n", "got '2.5'", 4, 16},
	    {OK "train: {batch: 1e3}\n", "got '1e3'", 4, 16},
	    {OK "train: {batch: .nan}\n", "got '.nan'", 4, 16},
	    {OK "train: {batch: 99999999999999999999}\n", "got '99999999999999999999'", 4,
	     16},
	    {OK "train: {batch: \"64\"}\n", "got the string \"64\"", 4, 16},
	    {OK "train: {epochs: }\n",
	     "'epochs' must be an integer from 0 to 1000000, got nothing", 4, 17},
	    {OK "optimizer: {lr: -3}\n",
	     "'lr' must be a number from 0 to 1000000, got '-3'", 4, 17},
	    {OK "optimizer: {lr: 0}\n", "'lr' must be greater than 0, got '0'", 4, 17},
	    {OK "optimizer: {lr: 1e400}\n", "got '1e400'", 4, 17},
	    {OK "optimizer: {lr: .nan}\n", "got '.nan'", 4, 17},
	    {OK "optimizer: {lr: .inf}\n", "got '.inf'", 4, 17},
	    {OK "optimizer: {lr: 99999999999999999999}\n", "got '99999999999999999999'",
	     4, 17},
	    {OK "optimizer: {lr: 1/0}\n", "got '1/0'", 4, 17},
	    {OK "optimizer: {lr: 0x10}\n", "got '0x10'", 4, 17},
	    {OK "optimizer: {learning_rate: 2.5x}\n", "'learning_rate' must be a number",
	     4, 28},
	    {OK "optimizer: {lr: 0.1, learning_rate: 0.1}\n",
	     "'lr' and 'learning_rate' are the same setting", 4, 22},
	    {OK "optimizer: {lr: 0.1, momentum: 1}\n",
	     "'momentum' must be less than 1, got '1'", 4, 32},
	    {OK "optimizer: {lr: 0.1, momentum: -0.5}\n",
	     "'momentum' must be a number from 0 to 1", 4, 32},
	    {OK "train: {seed: -1}\n",
	     "'seed' must be an integer from 0 to 9223372036854775807", 4, 15},
	    {OK "data: {train: {x: {idx: a, scale: 0}, y: {idx: b}}}\n",
	     "'scale' must be greater than 0", 4, 35},
	    {OK "data: {train: {x: {idx: a}, y: {idx: b, scale: 2}}}\n",
	     "'scale' applies to f32 inputs; 'y' is i32", 4, 41},
	};
	RUN(cases);
}

static void test_spec_rejects_bad_inputs(void)
{
	static const Case cases[] = {
	    {"inputs: {x: {shape: [4, batch]}, y: {shape: [batch], dtype: i32}}\n" LAYERS
	         LOSS,
	     "the first dimension of input 'x' must be 'batch', found '4'", 1, 22},
	    {"inputs: {x: {shape: []}, y: {shape: [batch], dtype: i32}}\n" LAYERS LOSS,
	     "the first dimension of input 'x' must be 'batch', found nothing", 1, 21},
	    {"inputs: {x: {shape: [batch, batch]}, y: {shape: [batch], dtype: "
	     "i32}}\n" LAYERS LOSS,
	     "'x.shape[1]' must be an integer from 1 to 2147483648, got 'batch'", 1, 29},
	    {"inputs: {x: {shape: [batch, 1, 1, 1, 1, 1, 1]}, y: {shape: [batch], dtype: "
	     "i32}}\n" LAYERS LOSS,
	     "input 'x' has 7 dimensions; at most 6 are supported", 1, 44},
	    {"inputs: {x: {shape: [batch, 65536, 65536, 65536]}, y: {shape: [batch], "
	     "dtype: i32}}\n" LAYERS LOSS,
	     "input 'x' has too many elements per example", 1, 21},
	    {"inputs: {x: {shape: [batch, 4]}, loss: {shape: [batch], dtype: "
	     "i32}}\n" LAYERS "loss: {type: softmax_cross_entropy, target: loss}\n",
	     "input name 'loss' is reserved", 1, 34},
	    {"inputs: {x: {shape: [batch, 4], dtyp: f32}, y: {shape: [batch], dtype: "
	     "i32}}\n" LAYERS LOSS,
	     "unknown key 'dtyp' in input 'x'; did you mean 'dtype'?", 1, 33},
	    {"inputs: {}\n" LAYERS LOSS, "the model has no inputs", 1, 9},
	};
	RUN(cases);
}

static void test_spec_rejects_bad_loss_target(void)
{
	const char *labels = "inputs:\n"
	                     "  image: {shape: [batch, 4]}\n"
	                     "  label: {shape: [batch], dtype: i32}\n" LAYERS;
	char buf[8][512];
	const char *loss[] = {
	    "loss: {type: softmax_cross_entropy, target: lable}\n",
	    "loss: {type: mse, target: label}\n",
	    "loss: {type: softmax_cross_entropy, target: image}\n",
	};
	for (int i = 0; i < 3; i++)
		snprintf(buf[i], sizeof buf[i], "%s%s", labels, loss[i]);
	Case cases[] = {
	    {buf[0], "unknown input 'lable'; did you mean 'label'?", 5, 45},
	    {buf[1], "mse needs an f32 target; input 'label' is i32", 5, 27},
	    {buf[2],
	     "softmax_cross_entropy needs an i32 target of shape [batch] (class "
	     "indices); "
	     "input 'image' is f32 with shape [batch, 4]",
	     5, 45},
	    {IN LAYERS "loss: {type: softmax_cross_entropy, target: q}\n",
	     "unknown input 'q'; expected one of: x, y", 3, 45},
	    {"inputs: {x: {shape: [batch, 4], dtype: i32}, y: {shape: [batch], dtype: "
	     "i32}}\n" LAYERS LOSS,
	     "the network's input 'x' must be f32, not i32", 1, 10},
	    {"inputs: {y: {shape: [batch], dtype: i32}}\n" LAYERS LOSS,
	     "the model's only input 'y' is the loss target", 1, 9},
	    {"inputs: {x: {shape: [batch, 4]}, z: {shape: [batch]}, y: {shape: [batch], "
	     "dtype: "
	     "i32}}\n" LAYERS LOSS,
	     "the model has 3 inputs; it needs exactly two", 1, 9},
	    {"inputs: {x: {shape: [batch, 4]}, z: {shape: [batch]}, y: {shape: [batch], "
	     "dtype: "
	     "i32}}\n" LAYERS "loss: softmax_cross_entropy\n",
	     "the short form 'loss: softmax_cross_entropy' needs exactly two inputs", 3,
	     7},
	    {IN LAYERS "loss: [mse]\n", "expected a mapping for 'loss', found a list", 3,
	     7},
	};
	RUN(cases);
}

/* A "billion laughs" in ~330 bytes: nine levels of ten aliases each. */
static void test_spec_rejects_alias_bomb_fast(void)
{
	char yaml[512];
	size_t n = (size_t)snprintf(yaml, sizeof yaml, "a: &a [x,x,x,x,x,x,x,x,x,x]\n");
	for (char c = 'b'; c <= 'i'; c++)
		n += (size_t)snprintf(
		    yaml + n, sizeof yaml - n,
		    "%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n", c, c, c - 1,
		    c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
	CU_ASSERT(n < 400);
	clock_t t0 = clock();
	Case c = {yaml, "YAML aliases expand to more than 100000 nodes", 5, 29};
	CU_ASSERT(check_case(&c));
	CU_ASSERT((double)(clock() - t0) / CLOCKS_PER_SEC < 0.5);

	/* an alias inside its own anchor's node is not yet defined: no cycles */
	Case self = {"a: &a [1, *a]\n", "unknown YAML alias '*a'", 1, 11};
	CU_ASSERT(check_case(&self));
}

static void test_spec_rejects_deep_nesting(void)
{
	char yaml[300];
	int n = snprintf(yaml, sizeof yaml, "a: ");
	for (int i = 0; i < 100; i++)
		yaml[n++] = '[';
	for (int i = 0; i < 100; i++)
		yaml[n++] = ']';
	yaml[n++] = '\n';
	yaml[n] = 0;
	/* the root mapping is level 1, so the 64th '[' (column 3 + 64) is level 65 */
	Case c = {yaml, "YAML nesting is deeper than 64 levels", 1, 67};
	CU_ASSERT(check_case(&c));

	/* 63 levels of lists under the root are fine */
	n = snprintf(yaml, sizeof yaml, "a: ");
	for (int i = 0; i < 63; i++)
		yaml[n++] = '[';
	for (int i = 0; i < 63; i++)
		yaml[n++] = ']';
	yaml[n] = 0;
	Parsed p;
	parse(&p, yaml);
	CU_ASSERT(p.root != NULL);
	done(&p);
}

static void test_spec_collects_errors_from_every_section(void)
{
	Parsed p;
	parse(
	    &p, IN
	    "layers: [{dense: {units: 0}}, {dense: {units: 3, activation: relux}}]\n" LOSS
	    "train: {batch: 0, epochs: -1}\n");
	CU_ASSERT(p.m == NULL);
	CU_ASSERT_EQUAL(p.d.nerr, 4);
	CU_ASSERT(has_error(&p.d, "'units'", 2, 26));
	CU_ASSERT(has_error(&p.d, "did you mean 'relu'?", 2, 62));
	CU_ASSERT(has_error(&p.d, "'batch'", 4, 16));
	CU_ASSERT(has_error(&p.d, "'epochs'", 4, 27));
	done(&p);
}

/* ---- loading files ---- */

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CU_ASSERT_FATAL(f != NULL);
	fputs(text, f);
	fclose(f);
}

static void test_model_load_reads_files_and_reports_io_errors(void)
{
	char dir[] = "/tmp/descent_spec_XXXXXX";
	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
	char path[256], big[256];
	snprintf(path, sizeof path, "%s/fashion_mlp.yaml", dir);
	write_file(path, fashion + strlen("name: fashion_mlp\n"));
	Arena *A = arena_new();
	Diags d = {0};
	Model *m = model_load(A, &d, path);
	CU_ASSERT_FATAL(m != NULL);
	CU_ASSERT_STRING_EQUAL(m->name, "fashion_mlp");
	char want[300];
	snprintf(want, sizeof want, "%s/train-labels.gz", dir);
	CU_ASSERT_STRING_EQUAL(m->train[1].path, want);

	CU_ASSERT_PTR_NULL(model_load(A, &d, "/nonexistent/m.yaml"));
	CU_ASSERT(d.n == 1 && strstr(d.v[0].msg, "cannot open model file"));
	CU_ASSERT_STRING_EQUAL(d.v[0].loc.file, "/nonexistent/m.yaml");

	/* a sparse file of 17 MiB: refused without parsing */
	snprintf(big, sizeof big, "%s/big.yaml", dir);
	FILE *f = fopen(big, "w");
	CU_ASSERT_FATAL(f != NULL);
	CU_ASSERT(ftruncate(fileno(f), 17 << 20) == 0);
	fclose(f);
	CU_ASSERT_PTR_NULL(spec_load(A, &d, big));
	CU_ASSERT(d.n == 2 && strstr(d.v[1].msg, "larger than 16 MiB"));
	arena_free(A);

	/* the diagnostics outlive the arena, file names and all */
	char buf[512];
	diag_format(&d, &d.v[1], buf, sizeof buf);
	CU_ASSERT(strstr(buf, "big.yaml: error: model file is larger than 16 MiB") !=
	          NULL);
	diags_free(&d);
	remove(path);
	remove(big);
	rmdir(dir);
}

/* ---- diagnostics and helpers (util.c) ---- */

static char *print_to_string(const Diags *d)
{
	static char out[4096];
	FILE *f = tmpfile();
	CU_ASSERT_FATAL(f != NULL);
	diag_print(d, f);
	rewind(f);
	size_t n = fread(out, 1, sizeof out - 1, f);
	out[n] = 0;
	fclose(f);
	return out;
}

static void test_diag_print_shows_source_line_and_caret(void)
{
	Diags d = {0};
	const char *text = "a: 1\n\tb: [x, yy]\nc: 3\n";
	diag_source(&d, "m.yaml", text, strlen(text));
	error_at(&d, ((SrcLoc){"m.yaml", 2, 9}), "bad '%s'", "yy");
	warn_at(&d, ((SrcLoc){"m.yaml", 3, 0}), "just a line");
	diag_add(&d, SEV_NOTE, (SrcLoc){"m.yaml", 0, 0}, "whole file");
	error_at(&d, ((SrcLoc){NULL, 0, 0}), "no file");
	CU_ASSERT_EQUAL(d.nerr, 2);
	CU_ASSERT_STRING_EQUAL(print_to_string(&d), "m.yaml:2:9: error: bad 'yy'\n"
	                                            "\tb: [x, yy]\n"
	                                            "\t       ^\n"
	                                            "m.yaml:3: warning: just a line\n"
	                                            "c: 3\n"
	                                            "m.yaml: note: whole file\n"
	                                            "descent: error: no file\n");
	char buf[32];
	diag_format(&d, &d.v[0], buf, sizeof buf);
	CU_ASSERT_STRING_EQUAL(buf, "m.yaml:2:9: error: bad 'yy'");
	diags_free(&d);
	CU_ASSERT(d.n == 0 && d.v == NULL);
}

static void test_util_did_you_mean_needs_a_close_candidate(void)
{
	static const char *const names[] = {"relu", "sigmoid", "tanh", "softmax",
	                                    "units"};
	CU_ASSERT_STRING_EQUAL(did_you_mean("rleu", names, 5), "relu");
	CU_ASSERT_STRING_EQUAL(did_you_mean("ReLU", names, 5), "relu");
	CU_ASSERT_STRING_EQUAL(did_you_mean("unit", names, 5), "units");
	CU_ASSERT_STRING_EQUAL(did_you_mean("sigmod", names, 5), "sigmoid");
	CU_ASSERT_STRING_EQUAL(did_you_mean("softmx", names, 5), "softmax");
	CU_ASSERT_STRING_EQUAL(did_you_mean("gelu", names, 5), "relu");
	CU_ASSERT_PTR_NULL(did_you_mean("swish", names, 5));
	/* replacing every letter is no suggestion */
	static const char *const xy[] = {"x", "y"};
	CU_ASSERT_PTR_NULL(did_you_mean("q", xy, 2));
	CU_ASSERT_STRING_EQUAL(did_you_mean("X", xy, 2), "x");
	CU_ASSERT_PTR_NULL(did_you_mean("xyz", names, 5));
	CU_ASSERT_PTR_NULL(did_you_mean("", names, 5));
	CU_ASSERT_PTR_NULL(did_you_mean("relu", names, 0));
}

static void test_util_arena_and_checked_multiply(void)
{
	Arena *A = arena_new();
	for (int i = 1; i < 2000; i += 37) {
		unsigned char *p = arena_alloc(A, (size_t)i * 7);
		CU_ASSERT((uintptr_t)p % 16 == 0);
		int zero = 1;
		for (int j = 0; j < i * 7; j++)
			zero &= p[j] == 0;
		CU_ASSERT(zero);
		memset(p, 0xab, (size_t)i * 7);
	}
	unsigned char *big = arena_alloc(A, 1 << 20);
	CU_ASSERT(big[0] == 0 && big[(1 << 20) - 1] == 0);
	CU_ASSERT_STRING_EQUAL(arena_strndup(A, "abcdef", 3), "abc");
	CU_ASSERT_STRING_EQUAL(arena_printf(A, "%s.%d", "fc", 12), "fc.12");
	arena_free(A);

	int64_t r;
	CU_ASSERT(mul_ok(1 << 20, 1 << 20, &r) && r == (INT64_C(1) << 40));
	CU_ASSERT(mul_ok(0, INT64_MAX, &r) && r == 0);
	CU_ASSERT(!mul_ok(INT64_C(1) << 32, INT64_C(1) << 31, &r));
	CU_ASSERT(!mul_ok(-1, 2, &r));
}

void suite_spec(void)
{
	static CU_TestInfo tests[] = {
	    {"model_valid_fills_every_field", test_model_valid_fills_every_field},
	    {"model_defaults_and_short_forms", test_model_defaults_and_short_forms},
	    {"spec_nodes_know_line_and_column", test_spec_nodes_know_line_and_column},
	    {"spec_alias_shares_the_anchored_node",
	     test_spec_alias_shares_the_anchored_node},
	    {"spec_accessors_check_values", test_spec_accessors_check_values},
	    {"spec_reports_bad_yaml_at_the_problem",
	     test_spec_reports_bad_yaml_at_the_problem},
	    {"spec_rejects_empty_file", test_spec_rejects_empty_file},
	    {"spec_rejects_unknown_layer_with_suggestion",
	     test_spec_rejects_unknown_layer_with_suggestion},
	    {"spec_rejects_unknown_names_with_suggestion",
	     test_spec_rejects_unknown_names_with_suggestion},
	    {"spec_rejects_missing_keys_and_wrong_types",
	     test_spec_rejects_missing_keys_and_wrong_types},
	    {"spec_rejects_bad_numbers_quoting_them",
	     test_spec_rejects_bad_numbers_quoting_them},
	    {"spec_rejects_bad_inputs", test_spec_rejects_bad_inputs},
	    {"spec_rejects_bad_loss_target", test_spec_rejects_bad_loss_target},
	    {"spec_rejects_alias_bomb_fast", test_spec_rejects_alias_bomb_fast},
	    {"spec_rejects_deep_nesting", test_spec_rejects_deep_nesting},
	    {"spec_collects_errors_from_every_section",
	     test_spec_collects_errors_from_every_section},
	    {"model_load_reads_files_and_reports_io_errors",
	     test_model_load_reads_files_and_reports_io_errors},
	    {"diag_print_shows_source_line_and_caret",
	     test_diag_print_shows_source_line_and_caret},
	    {"util_did_you_mean_needs_a_close_candidate",
	     test_util_did_you_mean_needs_a_close_candidate},
	    {"util_arena_and_checked_multiply", test_util_arena_and_checked_multiply},
	    CU_TEST_INFO_NULL,
	};
	add_suite("spec", tests);
}
