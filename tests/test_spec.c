/* Tests of the front end: YAML -> Spec tree (spec.c), Spec -> Model (model.c) and the
 * diagnostics and helpers they rest on (util.c). A valid model must come out with every
 * field and default right: sequential layers and graph nodes as named calls with their
 * settings and locations, the loss as an expression, free parameters; every node must
 * know its line and column; and each table of broken models asserts, for every entry,
 * that the model is rejected with an error whose text contains the expected words at
 * the expected line:col. Checks that need the values' types and shapes (the loss
 * target) happen when the model is lowered, so those cases lower it at batch 4. Models
 * are parsed from strings as "t.yaml"; the loading tests write real files into a
 * temporary directory. */
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

static void parse(Parsed *p, const char *yaml) { parse_as(p, "t.yaml", yaml); }

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

/* Cases that load and fail when lowered (at batch 4): the checks that need the values'
 * shapes and types. The error must still point into t.yaml. */
static int check_lowered(const Case *c)
{
	Parsed p;
	parse(&p, c->yaml);
	Graph *g = p.m ? lower_model(p.A, &p.d, p.m, 4) : NULL;
	int ok = p.m && !g && p.d.nerr > 0 && has_error(&p.d, c->msg, c->line, c->col);
	if (!ok) {
		fprintf(stderr, "\n--- expected %d:%d when lowered: %s\n%s--- got%s:\n",
		        c->line, c->col, c->msg, c->yaml, p.m ? "" : " (not loaded)");
		diag_print(&p.d, stderr);
	}
	done(&p);
	return ok;
}

#define RUN_LOWERED(cases)                                                               \
	for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++)                  \
	CU_ASSERT(check_lowered(&cases[i]))

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

/* The value of keyword argument name of call e, NULL if it has none. */
static const Expr *kwarg(const Expr *e, const char *name)
{
	for (int i = 0; i < e->nkw; i++)
		if (!strcmp(e->kwnames[i], name))
			return e->kwargs[i];
	return NULL;
}

static int kw_num(const Expr *e, const char *name, double v)
{
	const Expr *k = kwarg(e, name);
	return k && k->kind == EX_NUM && k->num == v;
}

static int kw_name(const Expr *e, const char *name, const char *v)
{
	const Expr *k = kwarg(e, name);
	return k && k->kind == EX_NAME && !strcmp(k->name, v);
}

/* e is the call fn(arg0, ...) whose first argument is the name arg0. */
static int is_call(const Expr *e, const char *fn, int nargs, const char *arg0)
{
	return e && e->kind == EX_CALL && !strcmp(e->name, fn) && e->nargs == nargs &&
	       (!arg0 ||
	        (e->args[0]->kind == EX_NAME && !strcmp(e->args[0]->name, arg0)));
}

static int at(SrcLoc loc, int line, int col)
{
	return loc.line == line && loc.col == col;
}

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
	CU_ASSERT_EQUAL(m->nparams, 0);

	/* each layer is a call on the one before it, the first on the network's input */
	CU_ASSERT_EQUAL_FATAL(m->ndefs, 4);
	Def *D = m->defs;
	CU_ASSERT_STRING_EQUAL(D[0].name, "fc1");
	CU_ASSERT(is_call(D[0].e, "dense", 1, "image"));
	CU_ASSERT(D[0].e->nkw == 2 && kw_num(D[0].e, "units", 256) &&
	          kw_name(D[0].e, "activation", "relu"));
	CU_ASSERT(at(D[0].loc, 6, 5) && at(D[0].e->loc, 6, 5));
	CU_ASSERT(at(kwarg(D[0].e, "units")->loc, 6, 20));
	CU_ASSERT_STRING_EQUAL(expr_str(p.A, D[0].e),
	                       "dense(image, units=256, activation=relu)");
	/* 'name' names the layer and is no setting of it */
	CU_ASSERT_STRING_EQUAL(D[1].name, "hidden");
	CU_ASSERT(is_call(D[1].e, "dense", 1, "fc1"));
	CU_ASSERT(D[1].e->nkw == 3 && kw_num(D[1].e, "units", 128) &&
	          kw_name(D[1].e, "bias", "false") && kw_name(D[1].e, "init", "torch"));
	CU_ASSERT_PTR_NULL(kwarg(D[1].e, "name"));
	/* an activation is a layer too, counted under its own name */
	CU_ASSERT_STRING_EQUAL(D[2].name, "relu1");
	CU_ASSERT(is_call(D[2].e, "relu", 1, "hidden") && D[2].e->nkw == 0);
	CU_ASSERT(at(D[2].loc, 8, 5) && at(D[2].e->loc, 8, 5));
	/* a named layer takes no number: the next dense layer is fc2 */
	CU_ASSERT_STRING_EQUAL(D[3].name, "fc2");
	CU_ASSERT(is_call(D[3].e, "dense", 1, "relu1") && kw_num(D[3].e, "units", 10));
	CU_ASSERT_STRING_EQUAL(m->output, "fc2");

	/* the loss mapping is the call softmax_cross_entropy(output, label) */
	const Expr *l = m->loss;
	CU_ASSERT_FATAL(is_call(l, "softmax_cross_entropy", 2, "output"));
	CU_ASSERT(l->args[1]->kind == EX_NAME && !strcmp(l->args[1]->name, "label"));
	CU_ASSERT(at(l->loc, 10, 14) && at(l->args[1]->loc, 10, 45) && l->nkw == 0);
	CU_ASSERT(at(m->loss_loc, 10, 7));
	CU_ASSERT_EQUAL(m->opt, OPT_SGD);
	CU_ASSERT_DOUBLE_EQUAL(m->lr, 0.1, 1e-15);
	CU_ASSERT_DOUBLE_EQUAL(m->momentum, 0.9, 1e-15);
	CU_ASSERT(m->batch == 64 && m->epochs == 5 && m->seed == 7 && m->steps == 0);

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
	CU_ASSERT(m->x == 0 && m->y == 1);
	/* 'loss: mse' takes the input the network does not */
	CU_ASSERT_FATAL(is_call(m->loss, "mse", 2, "output"));
	CU_ASSERT_STRING_EQUAL(m->loss->args[1]->name, "target");
	CU_ASSERT(at(m->loss->loc, 5, 7));
	CU_ASSERT(m->inputs[0].rank == 3 && m->inputs[0].dims[2] == 3);
	CU_ASSERT_DOUBLE_EQUAL(m->lr, 0.01, 0);
	CU_ASSERT_DOUBLE_EQUAL(m->momentum, 0, 0);
	CU_ASSERT(m->batch == 32 && m->epochs == 1 && m->seed == 0);
	CU_ASSERT_EQUAL_FATAL(m->ndefs, 3);
	CU_ASSERT(is_call(m->defs[0].e, "dense", 1, "pixels") && m->defs[0].e->nkw == 2);
	CU_ASSERT(is_call(m->defs[1].e, "sigmoid", 1, "fc1"));
	CU_ASSERT(is_call(m->defs[2].e, "softmax", 1, "sigmoid1"));
	CU_ASSERT_STRING_EQUAL(m->defs[2].name, "softmax1");
	/* in a flow list the layer is its mapping, the call its key */
	CU_ASSERT(at(m->defs[0].loc, 4, 10) && at(m->defs[0].e->loc, 4, 11));
	CU_ASSERT(at(m->defs[1].loc, 4, 49));
	CU_ASSERT_STRING_EQUAL(m->output, "softmax1");
	CU_ASSERT(!m->has_train && m->has_test);
	CU_ASSERT_STRING_EQUAL(m->test[0].path, "dir/sub/p.idx");
	CU_ASSERT_STRING_EQUAL(m->test[1].path, "dir/sub/../t.idx");
	CU_ASSERT_DOUBLE_EQUAL(m->test[1].scale, 0.25, 0);
	done(&p);

	/* the target may come first; the network then takes the other input */
	parse(&p,
	      "inputs: {y: {shape: [batch], dtype: i32}, x: {shape: [batch, 4]}}\n"
	      "layers: [{dense: {units: 3}}, relu, {dense: {units: 2}}, softmax]\n" LOSS
	      "train: {seed: 9223372036854775807, epochs: 0, steps: 12}\n");
	CU_ASSERT_FATAL(p.m != NULL);
	CU_ASSERT(p.m->x == 1 && p.m->y == 0);
	CU_ASSERT_EQUAL_FATAL(p.m->ndefs, 4);
	CU_ASSERT(is_call(p.m->defs[0].e, "dense", 1, "x"));
	CU_ASSERT_STRING_EQUAL(p.m->defs[2].name, "fc2");
	CU_ASSERT(is_call(p.m->defs[2].e, "dense", 1, "relu1"));
	CU_ASSERT_STRING_EQUAL(p.m->name, "t");
	CU_ASSERT(p.m->seed == 9223372036854775807u && p.m->epochs == 0 &&
	          p.m->steps == 12);
	done(&p);

	/* settings of the loss mapping become keywords of the call; l2 adds a penalty */
	parse(&p, IN LAYERS "loss: {type: softmax_cross_entropy, target: y, "
	                    "label_smoothing: 0.1, l2: 1e-4}\n");
	CU_ASSERT_FATAL(p.m != NULL);
	const Expr *l = p.m->loss;
	CU_ASSERT_FATAL(l->kind == EX_BIN && l->op == '+');
	CU_ASSERT(is_call(l->args[0], "softmax_cross_entropy", 2, "output"));
	CU_ASSERT(kw_num(l->args[0], "label_smoothing", 0.1) && l->args[0]->nkw == 1);
	CU_ASSERT_STRING_EQUAL(expr_str(p.A, l),
	                       "softmax_cross_entropy(output, y, label_smoothing=0.1) + "
	                       "0.0001 * l2()");
	CU_ASSERT(at(l->args[1]->loc, 3, 74));
	done(&p);
}

/* The graph form: named nodes, each an expression over inputs and earlier nodes. */
static void test_model_nodes_form(void)
{
	Parsed p;
	parse(&p,
	      "inputs:\n"
	      "  image: {shape: [batch, 784]}\n"
	      "  label: {shape: [batch], dtype: i32}\n"
	      "nodes:\n"
	      "  h1: \"dense(image, units=128, activation=relu)\"\n"
	      "  h2: dense(h1, units=128)\n"
	      "  h3: \"relu(h1 + h2)\"\n"
	      "  logits: \"dense(h3, units=10)\"\n"
	      "  probs: softmax(logits)\n"
	      "output: logits\n"
	      "loss: \"softmax_cross_entropy(logits, label, label_smoothing=0.1)\"\n");
	Model *m = p.m;
	CU_ASSERT_EQUAL(p.d.n, 0);
	CU_ASSERT_FATAL(m != NULL);
	CU_ASSERT(m->x == 0 && m->y == 1);
	CU_ASSERT_EQUAL_FATAL(m->ndefs, 5);
	const char *names[] = {"h1", "h2", "h3", "logits", "probs"};
	for (int i = 0; i < 5; i++) {
		CU_ASSERT_STRING_EQUAL(m->defs[i].name, names[i]);
		CU_ASSERT(at(m->defs[i].loc, 5 + i, 3));
	}
	/* a quoted expression starts after its quote */
	CU_ASSERT(is_call(m->defs[0].e, "dense", 1, "image") &&
	          at(m->defs[0].e->loc, 5, 8));
	CU_ASSERT(kw_num(m->defs[0].e, "units", 128) &&
	          kw_name(m->defs[0].e, "activation", "relu"));
	CU_ASSERT(is_call(m->defs[1].e, "dense", 1, "h1") && at(m->defs[1].e->loc, 6, 7));
	const Expr *h3 = m->defs[2].e;
	CU_ASSERT_FATAL(is_call(h3, "relu", 1, NULL));
	CU_ASSERT(h3->args[0]->kind == EX_BIN && h3->args[0]->op == '+');
	CU_ASSERT(at(h3->args[0]->loc, 7, 13));
	CU_ASSERT_STRING_EQUAL(m->output, "logits");
	CU_ASSERT(is_call(m->loss, "softmax_cross_entropy", 2, "logits"));
	CU_ASSERT(kw_num(m->loss, "label_smoothing", 0.1) && at(m->loss->loc, 11, 8));
	done(&p);

	/* 'input' names the network's input when the loss does not tell */
	parse(&p, "inputs: {a: {shape: [batch, 1]}, b: {shape: [batch, 2]}}\n"
	          "input: b\n"
	          "layers: [{dense: {units: 1}}]\n"
	          "loss: \"mean((output - a)^2)\"\n");
	CU_ASSERT_FATAL(p.m != NULL);
	CU_ASSERT(p.m->x == 1 && p.m->y == 0);
	CU_ASSERT(is_call(p.m->defs[0].e, "dense", 1, "b"));
	done(&p);
}

/* A model without data: free parameters and a loss expression. */
static void test_model_params_and_loss_expression(void)
{
	Parsed p;
	parse(&p, "params:\n"
	          "  x: {init: -1.5}\n"
	          "  y: {init: 2, trainable: false}\n"
	          "  w: {shape: [3, 2], init: normal}\n"
	          "  z: {shape: [4]}\n"
	          "loss: \"(1 - x)^2 + 100*(y - x^2)^2 + sum(w^2) + sum(z)\"\n"
	          "optimizer: {type: adam, lr: 0.01}\n"
	          "train: {steps: 20000}\n");
	Model *m = p.m;
	CU_ASSERT_EQUAL(p.d.n, 0);
	CU_ASSERT_FATAL(m != NULL);
	CU_ASSERT(m->ninputs == 0 && m->x == -1 && m->y == -1);
	CU_ASSERT(m->ndefs == 0 && m->output == NULL);
	CU_ASSERT_EQUAL_FATAL(m->nparams, 4);
	ParamDecl *P = m->params;
	CU_ASSERT_STRING_EQUAL(P[0].name, "x");
	CU_ASSERT(P[0].rank == 0 && P[0].init == RT_INIT_CONSTANT && P[0].value == -1.5);
	CU_ASSERT(P[0].trainable && at(P[0].loc, 2, 3));
	CU_ASSERT(P[1].init == RT_INIT_CONSTANT && P[1].value == 2 && !P[1].trainable);
	CU_ASSERT(P[2].rank == 2 && P[2].dims[0] == 3 && P[2].dims[1] == 2);
	CU_ASSERT(P[2].init == RT_INIT_NORMAL && P[2].value == 1 && P[2].trainable);
	/* no init: zeros */
	CU_ASSERT(P[3].rank == 1 && P[3].dims[0] == 4 && P[3].init == RT_INIT_ZEROS);
	/* a binary node is where its left operand is: inside the parenthesis */
	CU_ASSERT(m->loss->kind == EX_BIN && m->loss->op == '+' &&
	          at(m->loss->loc, 6, 9));
	CU_ASSERT_STRING_EQUAL(expr_str(p.A, m->loss),
	                       "(1 - x)^2 + 100 * (y - x^2)^2 + sum(w^2) + sum(z)");
	CU_ASSERT(m->opt == OPT_ADAM && m->steps == 20000);
	CU_ASSERT_DOUBLE_EQUAL(m->lr, 0.01, 0);
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
	    {"inputs:\n\t- x\n", "a tab character; YAML indents with spaces only", 2, 1},
	    {"a: 1\nb: *nope\n", "unknown YAML alias '*nope'", 2, 4},
	    {"a: \x01\n", "control characters are not allowed", 1, 4},
	    {"? [x, y]\n: 1\n", "a mapping key must be a scalar, found a list", 1, 3},
	    {OK "train: {batch: 4}\ntrain: {batch: 8}\n",
	     "duplicate key 'train' (first at line 4)", 5, 1},
	    {OK "train: {batch: 4, seed: 1, batch: 8}\n",
	     "duplicate key 'batch' (first at line 4)", 4, 28},
	    /* where the file does something descent does not: said there, not later
	     * at an alias's target or never */
	    {"a: &x {b: 1}\nc: {<<: *x, d: 2}\n", "merge keys ('<<') are not supported",
	     2, 5},
	    {OK "---\nfoo: 1\n", "a second YAML document; a model file holds one", 4, 1},
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
	     "unknown function or layer 'reul'; did you mean 'relu'?", 2, 31},
	    {IN "layers:\n  - dens: {units: 3}\n" LOSS,
	     "unknown function or layer 'dens'; did you mean 'dense'?", 3, 5},
	    {IN "layers: [swish]\n" LOSS, "unknown function or layer 'swish'", 2, 10},
	    {IN LAYERS "loss: {type: softmax_crossentropy, target: y}\n",
	     "unknown function or layer 'softmax_crossentropy'; did you mean "
	     "'softmax_cross_entropy'?",
	     3, 14},
	    {IN "nodes: {h: \"Dense(x, units=3)\"}\n" LOSS,
	     "unknown function or layer 'Dense'; did you mean 'dense'?", 2, 13},
	};
	RUN(cases);
}

static void test_spec_rejects_unknown_names_with_suggestion(void)
{
	static const Case cases[] = {
	    {IN "layers: [{dense: {units: 3, activation: rleu}}]\n" LOSS,
	     "unknown activation 'rleu'; did you mean 'relu'?", 2, 41},
	    {IN "layers: [{dense: {units: 3, activation: swish}}]\n" LOSS,
	     "'activation' must be one of: none, relu, sigmoid, tanh, softmax", 2, 41},
	    /* at the value: a call's keywords keep no location of their own */
	    {IN "layers: [{dense: {unit: 3}}]\n" LOSS,
	     "unknown setting 'unit' for dense; did you mean 'units'?", 2, 19},
	    {OK "optimiser: {lr: 0.1}\n",
	     "unknown key 'optimiser' in model; did you mean 'optimizer'?", 4, 1},
	    {OK "optimizer: {type: lbfgs}\n",
	     "unknown optimizer 'lbfgs'; expected one of: sgd, adam, adamw, rmsprop, "
	     "adagrad",
	     4, 19},
	    {OK "optimizer: {type: adam, momentum: 0.9}\n",
	     "'momentum' is a setting of sgd and rmsprop; adam has none", 4, 25},
	    {OK "optimizer: {type: sgd, betas: [0.9, 0.99]}\n",
	     "'betas' is a setting of adam and adamw; sgd has none", 4, 24},
	    {OK "optimizer: {type: adam, betas: [0.9]}\n",
	     "'betas' takes two numbers, [beta1, beta2], got 1", 4, 32},
	    {OK "optimizer: {type: adam, betas: [0.9, 1]}\n",
	     "each of 'betas' must be less than 1, got '1'", 4, 38},
	    {OK "optimizer: {type: adam, eps: -1}\n",
	     "'eps' must be a number from 0 to 1, got '-1'", 4, 30},
	    {"inputs: {x: {shape: [batch, 4], dtype: f64}, y: {shape: [batch]}}\n" LAYERS
	         LOSS,
	     "unknown dtype 'f64'; expected one of: f32, i32", 1, 40},
	    {"target: z\n" OK, "unknown target 'z'; expected one of: x, y", 1, 9},
	    {"target: x\n" OK, "the loss's target 'y' is not the model's target 'x'", 4,
	     45},
	    {IN LAYERS "loss: {type: mse, target: y}\n"
	               "data: {train: {x: {idx: a}, yy: {idx: b}}}\n",
	     "unknown key 'yy' in data.train; did you mean 'y'?", 4, 29},
	    {IN "layers: [{dense: {units: 3, init: he}}]\n" LOSS,
	     "'init' must be one of: kaiming_uniform, xavier_uniform, torch, zeros, ones",
	     2, 35},
	    {IN LAYERS "loss: {type: softmax_cross_entropy, target: y, reduction: avg}\n",
	     "'reduction' must be one of: mean, sum", 3, 59},
	    {IN LAYERS "loss: {type: softmax_cross_entropy, target: y, delta: 1}\n",
	     "softmax_cross_entropy has no setting 'delta'", 3, 48},
	    {IN LAYERS "loss: {type: softmax_cross_entropy, target: y, weight: 1}\n",
	     "unknown key 'weight' in loss", 3, 48},
	    {"inputs: {x: {shape: [batch, 4]}, z: {shape: [batch]}, y: {shape: [batch], "
	     "dtype: i32}}\ninput: xx\n" LAYERS LOSS,
	     "unknown input 'xx'; did you mean 'x'?", 2, 8},
	};
	RUN(cases);
}

static void test_spec_rejects_missing_keys_and_wrong_types(void)
{
	static const Case cases[] = {
	    {IN LAYERS, "missing key 'loss' in model", 1, 1},
	    {IN "layers: []\n" LOSS, "the model has no layers", 2, 9},
	    {IN "layers: [{dense: {activation: relu}}]\n" LOSS, "dense needs 'units'", 2,
	     11},
	    {IN LAYERS "loss: {target: y}\n", "missing key 'type' in loss", 3, 7},
	    {OK "data: {train: {x: {idx: a}}}\n", "missing key 'y' in data.train", 4, 15},
	    {OK "optimizer: [sgd]\n", "expected a mapping for 'optimizer', found a list",
	     4, 12},
	    {"inputs: [x, y]\n" LAYERS LOSS,
	     "expected a mapping for 'inputs', found a list", 1, 9},
	    {IN "layers: {dense: {units: 3}}\n" LOSS,
	     "expected a list for 'layers', found a mapping", 2, 9},
	    {IN "layers: [{dense: {units: 3, bias: maybe}}]\n" LOSS,
	     "'bias' must be one of: false, true", 2, 35},
	    {OK "name: [a]\n", "expected a string for 'name', found a list", 4, 7},
	    {IN "layers: [dense]\n" LOSS, "dense needs 'units'", 2, 10},
	    {IN "layers: [{dense: 3}]\n" LOSS, "expected a mapping for layer 'dense'", 2,
	     18},
	    {IN "layers:\n  - dense: {units: 3}\n    relu:\n" LOSS,
	     "a layer is a name like 'relu' or a mapping with one key", 3, 5},
	    {IN "layers: [[relu]]\n" LOSS,
	     "a layer is a name like 'relu' or a mapping with one key, like 'dense: "
	     "{units: 10}'; found a list",
	     2, 10},
	    {IN "layers: [{dense: {units: 3}}, {relu: {x: 1}}]\n" LOSS,
	     "relu has no setting 'x'; it takes none", 2, 39},
	    {IN "layers: [{dense: {units: 3}}, {add: {with: {a: 1}}}]\n" LOSS,
	     "expected a string for 'with', found a mapping", 2, 44},
	    {IN "layers: [{dense: {units: 3}}, {dense: {units: 3, name: fc1}}]\n" LOSS,
	     "the name 'fc1' is already used at line 2", 2, 31},
	    {IN "layers: [{dense: {units: 3, name: fc.1}}]\n" LOSS,
	     "layer name 'fc.1' must start with a letter", 2, 35},
	    {IN "layers: [{dense: {units: 3, name: y}}]\n" LOSS,
	     "the name 'y' is already an input", 2, 10},
	    {IN LAYERS "loss: [mse]\n", "expected a scalar for 'loss', found a list", 3,
	     7},
	    {IN LAYERS "loss: \"softmax_cross_entropy(output)\"\n",
	     "softmax_cross_entropy takes 2 values, got 1", 3, 8},
	    {IN LAYERS "loss: \"\"\n", "empty expression", 3, 8},
	    {OK "input: [x]\n", "expected a string for 'input', found a list", 4, 8},
	};
	RUN(cases);
}

static void test_spec_rejects_bad_numbers_quoting_them(void)
{
	static const Case cases[] = {
	    {IN "layers: [{dense: {units: -3}}]\n" LOSS,
	     "'units' must be an integer from 1 to 1073741824, got '-3'", 2, 26},
	    {IN "layers: [{dense: {units: 0}}]\n" LOSS, "got '0'", 2, 26},
	    {IN "layers: [{dense: {units: 2.5}}]\n" LOSS,
	     "'units' must be an integer from 1 to 1073741824, got '2.5'", 2, 26},
	    {IN "layers: [{dense: {units: 1073741825}}]\n" LOSS, "got '1073741825'", 2,
	     26},
	    {IN "layers: [{dense: {units: 1e400}}]\n" LOSS,
	     "number '1e400' is out of range", 2, 26},
	    {IN "layers: [{dense: {units: .nan}}]\n" LOSS,
	     "'units' must be an integer from 1 to 1073741824, got '.nan'", 2, 26},
	    {IN "layers: [{dense: {units: 99999999999999999999}}]\n" LOSS,
	     "'units' must be an integer from 1 to 1073741824, got "
	     "'99999999999999999999'",
	     2, 26},
	    {IN "layers: [{dense: {units: 4294967296}}]\n" LOSS, "got '4294967296'", 2,
	     26},
	    {IN "layers: [{dense: {units: [3]}}]\n" LOSS, "got '[3]'", 2, 26},
	    {IN "layers: [{dense: {units: x}}]\n" LOSS, "got 'x'", 2, 26},
	    /* a quoted number is a string (it said got ''3'') */
	    {IN "layers: [{dense: {units: '3'}}]\n" LOSS,
	     "'units' must be an integer from 1 to 1073741824, got the string '3' (a "
	     "number goes without quotes)",
	     2, 26},
	    {IN "layers: [{dense: {units: {n: 3}}}]\n" LOSS,
	     "expected a value or an expression, found a mapping", 2, 26},
	    {IN LAYERS "loss: {type: softmax_cross_entropy, target: y, l2: -1}\n",
	     "'l2' must be a number from 0 to 1000000, got '-1'", 3, 52},
	    {IN LAYERS
	     "loss: {type: softmax_cross_entropy, target: y, label_smoothing: 2}\n",
	     "'label_smoothing' must be a number from 0 to 1, got '2'", 3, 65},
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
	    {OK "train: {steps: -1}\n", "'steps' must be an integer from 0", 4, 16},
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
	     "input 'x' has more than 4294967296 elements per example", 1, 21},
	    {"inputs: {x: {shape: [batch, 4]}, loss: {shape: [batch], dtype: "
	     "i32}}\n" LAYERS "loss: {type: softmax_cross_entropy, target: loss}\n",
	     "input name 'loss' is reserved", 1, 34},
	    {"inputs: {x: {shape: [batch, 4], dtyp: f32}, y: {shape: [batch], dtype: "
	     "i32}}\n" LAYERS LOSS,
	     "unknown key 'dtyp' in input 'x'; did you mean 'dtype'?", 1, 33},
	    {"inputs: {}\n" LAYERS LOSS, "the model has no inputs", 1, 9},
	    {"inputs: {1x: {shape: [batch, 4]}, y: {shape: [batch], dtype: i32}}\n" LAYERS
	         LOSS,
	     "input name '1x' must start with a letter", 1, 10},
	};
	RUN(cases);
}

/* The loss's target and the values it compares are checked when the model is lowered:
 * only then are their types and shapes known. */
static void test_spec_rejects_bad_loss_target(void)
{
	const char *labels = "inputs:\n"
	                     "  image: {shape: [batch, 4]}\n"
	                     "  label: {shape: [batch], dtype: i32}\n" LAYERS;
	char buf[8][512];
	const char *loss[] = {
	    "loss: {type: softmax_cross_entropy, target: lable}\n",
	    "loss: {type: mse, target: label}\n",
	    "loss: {type: mse}\n",
	    "loss: \"softmax_cross_entropy(output, labl)\"\n",
	};
	for (int i = 0; i < 4; i++)
		snprintf(buf[i], sizeof buf[i], "%s%s", labels, loss[i]);
	const Case lowered[] = {
	    {buf[0], "unknown name 'lable'; did you mean 'label'?", 5, 45},
	    {buf[1], "mse needs a floating-point target (dtype f32)", 5, 14},
	    /* the short forms take the input that the network does not */
	    {buf[2], "mse needs a floating-point target (dtype f32)", 5, 14},
	    {buf[3], "unknown name 'labl'; did you mean 'label'?", 5, 38},
	    {IN LAYERS "loss: {type: softmax_cross_entropy, target: q}\n",
	     "unknown name 'q'", 3, 45},
	    {"inputs: {x: {shape: [batch, 4]}, y: {shape: [batch]}}\n" LAYERS LOSS,
	     "softmax_cross_entropy: the prediction has shape [4, 3] but the target has "
	     "[4]",
	     3, 14},
	    {"inputs: {x: {shape: [batch, 4]}, y: {shape: [batch, 2]}}\n" LAYERS
	     "loss: mse\n",
	     "mse: the prediction has shape [4, 3] but the target has [4, 2]", 3, 7},
	    {"inputs: {x: {shape: [batch, 4]}, y: {shape: [batch, 3], dtype: "
	     "i32}}\n" LAYERS LOSS,
	     "softmax_cross_entropy: class indices of shape [4, 3] do not fit scores [4, "
	     "3]",
	     3, 14},
	    {IN "layers: [{dense: {units: 1}}]\n" LOSS,
	     "softmax_cross_entropy needs scores for at least 2 classes on the last "
	     "axis, got "
	     "[4, 1]",
	     3, 14},
	};
	RUN_LOWERED(lowered);
	static const Case cases[] = {
	    {"inputs: {x: {shape: [batch, 4]}, z: {shape: [batch]}, y: {shape: [batch], "
	     "dtype: i32}}\n" LAYERS "loss: softmax_cross_entropy\n",
	     "name the loss target: 'loss: {type: ..., target: INPUT}'", 3, 7},
	    {IN LAYERS "loss: [mse]\n", "expected a scalar for 'loss', found a list", 3,
	     7},
	    {IN LAYERS "loss: {type: [mse], target: y}\n",
	     "expected a scalar for 'loss type', found a list", 3, 14},
	    {IN LAYERS "loss: \"softmax_cross_entropy(output, y\"\n",
	     "expected ')' to close '(' opened at col 29", 3, 39},
	};
	RUN(cases);
}

/* params: free parameters with a shape (none: a single number), an init scheme or a
 * constant, and whether training changes them. */
static void test_spec_rejects_bad_params(void)
{
#define P(text) "params:\n  " text "\nloss: \"sum(x^2)\"\n"
	static const Case cases[] = {
	    {P("x: {init: gaussian}"),
	     "unknown init 'gaussian'; expected one of: kaiming_uniform, xavier_uniform, "
	     "torch, zeros, ones, normal",
	     2, 13},
	    {P("x: {init: nromal}"), "unknown init 'nromal'; did you mean 'normal'?", 2,
	     13},
	    {P("x: {init: 1/0}"),
	     "'init' must be a number from -1e+30 to 1e+30, got '1/0'", 2, 13},
	    /* a quoted number is a name, and no scheme's */
	    {P("x: {init: \"-1\"}"), "unknown init '-1'", 2, 13},
	    {P("x: {init: [1, 2]}"),
	     "'init' must be one of: kaiming_uniform, xavier_uniform, torch, zeros, "
	     "ones, normal; found a list",
	     2, 13},
	    {P("x: {shape: [2, 0]}"),
	     "'shape' must be an integer from 1 to 2147483648, got '0'", 2, 18},
	    {P("x: {shape: [2, -1]}"), "got '-1'", 2, 18},
	    {P("x: {shape: [batch, 2]}"), "'shape' must be an integer from 1", 2, 15},
	    {P("x: {shape: 3}"), "expected a list for 'shape', found '3'", 2, 14},
	    {P("x: {shape: [1, 1, 1, 1, 1, 1, 1]}"),
	     "parameter 'x' has 7 dimensions; at most 6", 2, 14},
	    {P("x: {shape: [2], trainable: maybe}"),
	     "'trainable' must be true or false, got 'maybe'", 2, 30},
	    {P("x: {shap: [2]}"),
	     "unknown key 'shap' in parameter 'x'; did you mean 'shape'?", 2, 7},
	    {P("x.y: {shape: [2]}"),
	     "parameter name 'x.y' must start with a letter or '_' and have only "
	     "letters, "
	     "digits and '_'",
	     2, 3},
	    {P("x: 3"), "expected a mapping for parameter 'x', found '3'", 2, 6},
	    {"params: [x]\nloss: \"sum(x^2)\"\n",
	     "expected a mapping for 'params', found a list", 1, 9},
	    {"params:\n  x: {shape: [3]}\nloss: \"sum(x^2\"\n",
	     "expected ')' to close '(' opened at col 11", 3, 15},
	};
#undef P
	RUN(cases);
}

/* nodes: named expressions. Expressions are parsed where they stand in the YAML text,
 * so a syntax error points at its own column, quoted or not. */
static void test_spec_rejects_bad_nodes(void)
{
#define IMG                                                                              \
	"inputs:\n  image: {shape: [batch, 4]}\n  label: {shape: [batch], dtype: i32}\n"
#define SCE "loss: \"softmax_cross_entropy(out, label)\"\n"
	static const Case cases[] = {
	    {IMG "nodes:\n  h1: \"dense(image, units=8)\"\n  out: \"dense(h1 + , "
	         "units=3)\"\n" SCE,
	     "expected an expression after '+', found ','", 6, 20},
	    {IMG "nodes:\n  h1: dense(image, units=8)\n  out: dense(h1 units=3)\n" SCE,
	     "expected ',' or ')' in the arguments of 'dense', found 'units'", 6, 17},
	    {IMG "nodes:\n  out: 'dense(image, units=3'\n" SCE,
	     "expected ')' to close '(' opened at col 14", 5, 29},
	    {IMG "nodes:\n  out: \"dense(image, units=3) $\"\n" SCE,
	     "unexpected character '$' in expression", 5, 31},
	    {IMG "nodes:\n  out: \"dense(image, unit=3)\"\n" SCE,
	     "unknown setting 'unit' for dense; did you mean 'units'?", 5, 22},
	    {IMG "nodes:\n  out: \"dense(image, units=3, units=4)\"\n" SCE,
	     "duplicate keyword argument 'units' in the call of 'dense'", 5, 31},
	    {IMG "nodes:\n  out: \"dense(image, units=3, activation=rleu)\"\n" SCE,
	     "unknown activation 'rleu'; did you mean 'relu'?", 5, 42},
	    {IMG "nodes:\n  h: \"dense(image, units=3)\"\n  out: \"relu(h) + "
	         "sigmod(h)\"\n" SCE,
	     "unknown function or layer 'sigmod'; did you mean 'sigmoid'?", 6, 19},
	    {IMG "layers: [{dense: {units: 3}}]\nnodes:\n  out: \"dense(image, "
	         "units=3)\"\n" SCE,
	     "a model has either 'layers' (a sequence) or 'nodes' (a graph)", 4, 9},
	    {IMG "nodes:\n  out: \"dense(image, units=8)\"\n  out: \"dense(image, "
	         "units=3)\"\n" SCE,
	     "duplicate key 'out' (first at line 5)", 6, 3},
	    {IMG
	     "nodes:\n  image: \"dense(image, units=3)\"\n  out: \"relu(image)\"\n" SCE,
	     "the name 'image' is already an input", 5, 3},
	    {IMG "params:\n  w: {shape: [3]}\nnodes:\n  w: \"dense(image, units=3)\"\n"
	         "  out: \"w\"\n" SCE,
	     "the name 'w' is already a parameter", 7, 3},
	    {IMG "params:\n  image: {shape: [3]}\nnodes:\n  out: \"dense(image, "
	         "units=3)\"\n" SCE,
	     "the name 'image' is already an input", 5, 3},
	    {IMG "nodes:\n  2x: \"dense(image, units=3)\"\n  out: \"relu(2x)\"\n" SCE,
	     "node name '2x' must start with a letter", 5, 3},
	    {IMG "nodes:\n  out: {dense: {units: 3}}\n" SCE,
	     "expected a value or an expression, found a mapping", 5, 8},
	    {IMG "nodes: [\"dense(image, units=3)\"]\n" SCE,
	     "expected a mapping for 'nodes', found a list", 4, 8},
	    {IMG "nodes:\n  out: \"\"\n" SCE, "empty expression", 5, 9},
	    {IMG "nodes:\n  out: \"dense(image, units=3)\"\noutput: [out]\n" SCE,
	     "expected a string for 'output', found a list", 6, 9},
	};
#undef IMG
#undef SCE
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

/* A model of two inputs without a loss is one error, the missing loss: not also "the
 * layers need an input", which the loss would have told. */
static void test_spec_a_model_without_loss_is_one_error(void)
{
	Parsed p;
	parse(&p, "inputs: {x: {shape: [batch, 4]}, y: {shape: [batch], dtype: i32}}\n"
	          "layers: [{dense: {units: 3}}]\n");
	CU_ASSERT_PTR_NULL(p.m);
	CU_ASSERT_EQUAL(p.d.nerr, 1);
	CU_ASSERT(has_error(&p.d, "missing key 'loss' in model", 1, 1));
	done(&p);
	/* nor is a key unknown to the loss (it was said again as the loss's setting),
	 * nor a misspelt key that is also missing (said again as missing) */
	static const Case one[] = {
	    {IN LAYERS
	     "loss: {type: softmax_cross_entropy, target: y, from_logits: true}\n",
	     "unknown key 'from_logits' in loss", 3, 48},
	    {OK "train:\n  epochs: 3\n  schedule: {type: cosine, t_max: 3}\n",
	     "unknown key 't_max' in schedule (cosine); did you mean 'T_max'?", 6, 28},
	    /* PyTorch's names get descent's; an unknown layer is said to be one (it
	     * was "expected a mapping for layer 'foo'") */
	    {IN "layers:\n  - Linear: {units: 3}\n" LOSS,
	     "unknown function or layer 'Linear'; did you mean 'dense'?", 3, 5},
	    {IN "layers:\n  - foo: relu\n  - dense: {units: 3}\n" LOSS,
	     "unknown function or layer 'foo'", 3, 5},
	    {IN LAYERS "loss: {type: BCEWithLogitsLoss, target: y}\n",
	     "did you mean 'binary_cross_entropy_with_logits'?", 3, 14},
	    /* a layer's settings not indented under it: said at the setting */
	    {IN "layers:\n  - dense:\n    units: 3\n" LOSS,
	     "'units' is a setting of the layer 'dense' above it: indent it under "
	     "'dense:'",
	     4, 5},
	    /* (3,3) in a {...} mapping: the comma cuts it, and the rest, '3)', made
	     * a second error */
	    {IN "layers: [{dense: {units: (3,3)}}]\n" LOSS,
	     "expected ')' to close '(' opened at col 26", 2, 28},
	    /* {units:10} is a key without a value (it was "empty expression" at the
	     * brace) */
	    {IN "layers: [{dense: {units:10}}]\n" LOSS,
	     "'units:10' has no value; YAML needs a space after a colon", 2, 19},
	};
	for (size_t i = 0; i < sizeof one / sizeof *one; i++) {
		parse(&p, one[i].yaml);
		CU_ASSERT(p.m == NULL && p.d.nerr == 1 &&
		          has_error(&p.d, one[i].msg, one[i].line, one[i].col));
		if (p.d.nerr != 1)
			diag_print(&p.d, stderr);
		done(&p);
	}
}

static void test_spec_collects_errors_from_every_section(void)
{
	Parsed p;
	parse(&p, IN "layers: [{dense: {units: 3}}]\n" LOSS
	             "optimizer: {type: adam, lr: 0, momentum: 0.5}\n"
	             "train: {batch: 0, epochs: -1}\n");
	CU_ASSERT(p.m == NULL);
	CU_ASSERT_EQUAL(p.d.nerr, 4);
	CU_ASSERT(has_error(&p.d, "'lr' must be greater than 0", 4, 29));
	CU_ASSERT(has_error(&p.d, "'momentum' is a setting of sgd", 4, 32));
	CU_ASSERT(has_error(&p.d, "'batch'", 5, 16));
	CU_ASSERT(has_error(&p.d, "'epochs'", 5, 27));
	done(&p);

	/* every call is checked, each error at its own value */
	parse(&p,
	      IN "layers: [{dense: {units: 0}}, {dense: {units: 3, activation: relux}}]\n"
	         "loss: {type: softmax_cross_entropy, target: y, reduction: avg}\n");
	CU_ASSERT(p.m == NULL);
	CU_ASSERT_EQUAL(p.d.nerr, 3);
	CU_ASSERT(has_error(&p.d, "'units'", 2, 26));
	CU_ASSERT(has_error(&p.d, "did you mean 'relu'?", 2, 62));
	CU_ASSERT(has_error(&p.d, "'reduction'", 3, 59));
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
	/* a terminal's escapes and bytes that are not UTF-8 show as '?', UTF-8 as it
	 * is: the line as it reads, and the terminal as it was */
	const char *raw = "x: \033[2J\xff\xc3\xa9 z\xc2\x9b\n";
	diag_source(&d, "e.yaml", raw, strlen(raw));
	error_at(&d, ((SrcLoc){"e.yaml", 1, 13}), "here");
	CU_ASSERT_STRING_EQUAL(print_to_string(&d), "e.yaml:1:13: error: here\n"
	                                            "x: ?[2J?\xc3\xa9 z?\n"
	                                            "            ^\n");
	diags_free(&d);
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
	    {"model_nodes_form", test_model_nodes_form},
	    {"model_params_and_loss_expression", test_model_params_and_loss_expression},
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
	    {"spec_rejects_bad_params", test_spec_rejects_bad_params},
	    {"spec_rejects_bad_nodes", test_spec_rejects_bad_nodes},
	    {"spec_rejects_alias_bomb_fast", test_spec_rejects_alias_bomb_fast},
	    {"spec_rejects_deep_nesting", test_spec_rejects_deep_nesting},
	    {"spec_a_model_without_loss_is_one_error",
	     test_spec_a_model_without_loss_is_one_error},
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
