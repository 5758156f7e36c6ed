/* Tests of the function table (layers.c) and of lowering a model into the graph
 * (lower.c). Valid models must come out with the parameters PyTorch would have (names
 * after the node that holds them, layouts, init schemes, buffers that do not train) and
 * with a loss that the reference interpreter evaluates to the right number, the mean
 * over the real rows of a batch. Two tables of broken models: calls that break their
 * signature are rejected when the model is loaded, and problems that need the values'
 * shapes and types when it is lowered (at batch 4); every case asserts the message and
 * its line:col in t.yaml. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc.h"
#include "tests.h"

/* ---- helpers ---- */

typedef struct Lowered {
	Arena *A;
	Diags d;
	Model *m;
	Graph *g;
} Lowered;

/* Parses yaml as t.yaml and, if it loads, lowers it at batch 4. */
static void lower_text(Lowered *l, const char *yaml)
{
	l->A = arena_new();
	l->d = (Diags){0};
	Spec *root = spec_parse(l->A, &l->d, "t.yaml", yaml, strlen(yaml));
	l->m = root ? model_from_spec(l->A, &l->d, root, "t.yaml") : NULL;
	l->g = l->m ? lower_model(l->A, &l->d, l->m, 4) : NULL;
}

static void done(Lowered *l)
{
	diags_free(&l->d);
	arena_free(l->A);
}

/* A model of the given inputs and a loss expression made from fmt and arg, lowered
 * (lower_text); the test fails at once if it does not lower. */
static void lower_loss(Lowered *l, const char *inputs, const char *fmt, const char *arg)
{
	char loss[256], yaml[512];
	snprintf(loss, sizeof loss, fmt, arg);
	snprintf(yaml, sizeof yaml, "inputs: {%s}\nloss: \"%s\"\n", inputs, loss);
	lower_text(l, yaml);
	CU_ASSERT_FATAL(l->g != NULL);
}

static const Tensor *param(const Graph *g, const char *name)
{
	for (int i = 0; i < g->nparams; i++)
		if (!strcmp(g->params[i].name, name))
			return &g->params[i];
	return NULL;
}

/* The parameter exists with this shape, init scheme and trainable flag. */
static int has_param(const Graph *g, const char *name, Shape sh, rt_init init,
                     int trainable)
{
	const Tensor *t = param(g, name);
	if (!t)
		fprintf(stderr, "\nno parameter %s\n", name);
	return t && shape_eq(&t->sh, &sh) && t->init == init && t->trainable == trainable;
}

#define SH(...)                                                                          \
	((Shape){sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), {__VA_ARGS__}})
#define SCALAR ((Shape){0, {0}})

/* An expected diagnostic: an error containing msg at line:col of t.yaml. */
typedef struct Case {
	const char *yaml;
	const char *msg;
	int line, col;
} Case;

/* lowered: the model must load and fail to lower; otherwise it must fail to load. */
static int check_case(const Case *c, int lowered)
{
	Lowered l;
	lower_text(&l, c->yaml);
	int stage_ok = lowered ? l.m != NULL : l.m == NULL;
	int ok =
	    stage_ok && !l.g && l.d.nerr == 1 && has_error(&l.d, c->msg, c->line, c->col);
	if (!ok) {
		fprintf(stderr, "\n--- expected %d:%d %s: %s\n%s--- got:\n", c->line,
		        c->col, lowered ? "when lowered" : "when loaded", c->msg,
		        c->yaml);
		diag_print(&l.d, stderr);
	}
	done(&l);
	return ok;
}

#define RUN(cases, lowered)                                                              \
	for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++)                  \
	CU_ASSERT(check_case(&cases[i], lowered))

/* The value of the loss that fn computes (FN_EVALUATE: evaluation's; FN_GRAD:
 * training's, with batch statistics), by the reference interpreter, with every
 * parameter at its constant init (0 for other schemes). */
static double eval_loss_of(Graph *g, const double *const *io, FnKind fn)
{
	double *params = calloc((size_t)g->param_floats + 1, sizeof *params);
	for (int i = 0; i < g->nparams; i++)
		for (int64_t k = 0; k < shape_numel(&g->params[i].sh); k++)
			params[g->params[i].off + k] =
			    g->params[i].init == RT_INIT_CONSTANT ? g->params[i].value
			    : g->params[i].init == RT_INIT_ONES   ? 1
			                                          : 0;
	double *state = calloc((size_t)g->state_floats + 1, sizeof *state);
	EvalEnv env = {.params = params, .states = state, .io = io};
	double v = NAN;
	const Fn *f = &g->fns[fn];
	for (int i = 0; i < f->nouts; i++)
		if (f->outs[i].kind == DEST_IO && f->outs[i].index == g->io_loss) {
			double *r = eval_node(g, f->outs[i].node, &env);
			v = r[0];
			free(r);
		}
	free(params);
	free(state);
	return v;
}

static double eval_loss(Graph *g, const double *const *io)
{
	return eval_loss_of(g, io, FN_EVALUATE);
}

/* ---- valid models ---- */

#define IMG                                                                              \
	"inputs:\n  image: {shape: [batch, 4]}\n  label: {shape: [batch], dtype: i32}\n"
#define SCE "loss: {type: softmax_cross_entropy, target: label}\n"

static void test_layers_dense_parameters_follow_pytorch(void)
{
	Lowered l;
	lower_text(&l,
	           IMG "layers:\n"
	               "  - dense: {units: 8, activation: relu}\n"
	               "  - dense: {units: 6, name: hidden, bias: false, init: zeros}\n"
	               "  - dense: {units: 3, trainable: false}\n" SCE);
	Graph *g = l.g;
	CU_ASSERT_EQUAL(l.d.n, 0);
	CU_ASSERT_FATAL(g != NULL);
	/* weights are [out, in], PyTorch's nn.Linear init whatever the activation */
	CU_ASSERT(has_param(g, "fc1.weight", SH(8, 4), RT_INIT_TORCH_LINEAR, 1));
	CU_ASSERT(has_param(g, "fc1.bias", SH(8), RT_INIT_TORCH_LINEAR, 1));
	CU_ASSERT(has_param(g, "hidden.weight", SH(6, 8), RT_INIT_ZEROS, 1));
	CU_ASSERT_PTR_NULL(param(g, "hidden.bias"));
	CU_ASSERT(has_param(g, "fc2.weight", SH(3, 6), RT_INIT_TORCH_LINEAR, 0));
	CU_ASSERT(has_param(g, "fc2.bias", SH(3), RT_INIT_TORCH_LINEAR, 0));
	CU_ASSERT_EQUAL(g->nparams, 5);
	const Tensor *w = param(g, "fc1.weight");
	CU_ASSERT(w->fan_in == 4 && w->fan_out == 8 && w->loc.line == 5 &&
	          w->loc.col == 5);
	/* the io slots: the inputs, the padding weights, the loss and the output */
	CU_ASSERT_EQUAL_FATAL(g->nios, 5);
	CU_ASSERT(!strcmp(g->ios[g->io_x].name, "image") &&
	          !strcmp(g->ios[g->io_y].name, "label"));
	CU_ASSERT(shape_eq(&g->ios[g->io_x].sh, &SH(4, 4)));
	CU_ASSERT(!strcmp(g->ios[g->io_weight].name, "weight") &&
	          shape_eq(&g->ios[g->io_weight].sh, &SH(4)));
	CU_ASSERT(shape_eq(&g->ios[g->io_loss].sh, &SCALAR));
	CU_ASSERT(shape_eq(&g->ios[g->io_output].sh, &SH(4, 3)));
	for (int k = 0; k < FN_COUNT; k++)
		CU_ASSERT(g->fns[k].nouts > 0);
	done(&l);
}

static void test_layers_conv_and_norm_parameters(void)
{
	Lowered l;
	lower_text(
	    &l, "inputs:\n"
	        "  image: {shape: [batch, 1, 12, 12]}\n"
	        "  label: {shape: [batch], dtype: i32}\n"
	        "layers:\n"
	        "  - conv2d: {out_channels: 6, kernel_size: [5, 3], padding: same}\n"
	        "  - batch_norm\n"
	        "  - relu\n"
	        "  - max_pool2d: {kernel_size: 2}\n"
	        "  - conv2d: {out_channels: 4, kernel_size: 3, groups: 2, bias: false}\n"
	        "  - global_avg_pool\n"
	        "  - dropout: {p: 0.25}\n"
	        "  - layer_norm\n"
	        "  - dense: {units: 3}\n" SCE);
	Graph *g = l.g;
	CU_ASSERT_EQUAL(l.d.n, 0);
	CU_ASSERT_FATAL(g != NULL);
	CU_ASSERT(has_param(g, "conv1.weight", SH(6, 1, 5, 3), RT_INIT_TORCH_LINEAR, 1));
	CU_ASSERT(has_param(g, "conv1.bias", SH(6), RT_INIT_TORCH_LINEAR, 1));
	CU_ASSERT_EQUAL(param(g, "conv1.weight")->fan_in, 15);
	/* batch norm keeps its running statistics as parameters that do not train */
	CU_ASSERT(has_param(g, "bn1.weight", SH(6), RT_INIT_ONES, 1));
	CU_ASSERT(has_param(g, "bn1.bias", SH(6), RT_INIT_ZEROS, 1));
	CU_ASSERT(has_param(g, "bn1.running_mean", SH(6), RT_INIT_ZEROS, 0));
	CU_ASSERT(has_param(g, "bn1.running_var", SH(6), RT_INIT_ONES, 0));
	CU_ASSERT(has_param(g, "bn1.num_batches_tracked", SCALAR, RT_INIT_ZEROS, 0));
	/* grouped: each output channel sees in/groups channels */
	CU_ASSERT(has_param(g, "conv2.weight", SH(4, 3, 3, 3), RT_INIT_TORCH_LINEAR, 1));
	/* torch's fans: in/groups kh kw in, out kh kw out (groups or not) */
	CU_ASSERT(param(g, "conv2.weight")->fan_in == 27 &&
	          param(g, "conv2.weight")->fan_out == 36);
	CU_ASSERT_PTR_NULL(param(g, "conv2.bias"));
	CU_ASSERT(has_param(g, "ln1.weight", SH(4), RT_INIT_ONES, 1));
	CU_ASSERT(has_param(g, "fc1.weight", SH(3, 4), RT_INIT_TORCH_LINEAR, 1));
	CU_ASSERT(shape_eq(&g->ios[g->io_output].sh, &SH(4, 3)));
	/* dropout draws its masks from a step counter that train_step advances */
	int counter = 0;
	for (int i = 0; i < g->nstates; i++)
		counter += !strcmp(g->states[i].name, "dropout_step");
	CU_ASSERT_EQUAL(counter, 1);
	done(&l);
}

/* Parameters live in the node that makes them: a second layer in one node is <node>_2;
 * embedding tables draw from N(0, 1). */
static void test_layers_nodes_name_their_parameters(void)
{
	Lowered l;
	lower_text(
	    &l, "inputs:\n"
	        "  tokens: {shape: [batch, 5], dtype: i32}\n"
	        "  y: {shape: [batch, 2]}\n"
	        "nodes:\n"
	        "  e: \"embedding(tokens, num_embeddings=10, embedding_dim=3)\"\n"
	        "  h: \"dense(dense(flatten(e), units=8, activation=relu), units=2)\"\n"
	        "loss: \"mse(h, y) + 0.5 * sum(h.weight^2) + l2()\"\n");
	Graph *g = l.g;
	CU_ASSERT_EQUAL(l.d.n, 0);
	CU_ASSERT_FATAL(g != NULL);
	CU_ASSERT(has_param(g, "e.weight", SH(10, 3), RT_INIT_NORMAL, 1));
	CU_ASSERT_DOUBLE_EQUAL(param(g, "e.weight")->value, 1, 0);
	CU_ASSERT(has_param(g, "h.weight", SH(8, 15), RT_INIT_TORCH_LINEAR, 1));
	CU_ASSERT(has_param(g, "h_2.weight", SH(2, 8), RT_INIT_TORCH_LINEAR, 1));
	CU_ASSERT(has_param(g, "h_2.bias", SH(2), RT_INIT_TORCH_LINEAR, 1));
	CU_ASSERT_EQUAL(g->io_x, 0);
	CU_ASSERT_EQUAL(g->io_y, 1);
	done(&l);
}

/* l2() sums the squares of products' weights (2 axes or more), not of a batch norm's
 * or layer norm's scale, which it pulled toward 0 */
static void test_layers_l2_leaves_norm_scales_out(void)
{
	Lowered l;
	lower_text(&l, "inputs:\n  x: {shape: [batch, 3]}\n  y: {shape: [batch, 2]}\n"
	               "layers:\n  - batch_norm: {name: bn}\n"
	               "  - dense: {name: fc, units: 2, bias: false, init: ones}\n"
	               "  - layer_norm: {name: ln}\n"
	               "loss: \"l2()\"\n");
	CU_ASSERT_EQUAL(l.d.nerr, 0);
	CU_ASSERT_FATAL(l.g != NULL);
	CU_ASSERT(has_param(l.g, "bn.weight", SH(3), RT_INIT_ONES, 1));
	CU_ASSERT_DOUBLE_EQUAL(eval_loss(l.g, NULL), 6, 1e-12); /* fc.weight's 6 ones */
	done(&l);
}

/* A free parameter's fan-based init takes torch's fans from its shape: [out, in, k...]
 * has in k... in and out k... out (they were 1 and 1: kaiming_uniform's bound on a
 * [256, 784] weight was sqrt(6), torch's sqrt(6 / 784)) */
static void test_layers_free_parameters_take_fans_from_their_shape(void)
{
	Lowered l;
	lower_text(&l, "params:\n"
	               "  w: {shape: [256, 784], init: kaiming_uniform}\n"
	               "  k: {shape: [16, 2, 3, 3], init: xavier_uniform}\n"
	               "  b: {shape: [5], init: kaiming_uniform}\n"
	               "loss: \"sum(w^2) + sum(k^2) + sum(b^2)\"\n");
	CU_ASSERT_FATAL(l.g != NULL);
	CU_ASSERT(param(l.g, "w")->fan_in == 784 && param(l.g, "w")->fan_out == 256);
	CU_ASSERT(param(l.g, "k")->fan_in == 18 && param(l.g, "k")->fan_out == 144);
	CU_ASSERT(param(l.g, "b")->fan_in == 1 && param(l.g, "b")->fan_out == 1);
	done(&l);
}

/* The graph form in any order: each node is lowered after the nodes (and the layers'
 * parameters, h.weight) it uses; where nothing depends, the file's order is kept, and
 * with it the order of the parameters in the blob. */
static void test_layers_nodes_in_any_order(void)
{
	Lowered l;
	lower_text(&l, "inputs:\n"
	               "  x: {shape: [batch, 4]}\n"
	               "  y: {shape: [batch], dtype: i32}\n"
	               "nodes:\n"
	               "  out: \"dense(a + b, units=3)\"\n"
	               "  b: \"relu(a) * sum(h.weight) + h\"\n"
	               "  a: \"dense(x, units=5)\"\n"
	               "  h: \"dense(x, units=5)\"\n"
	               "output: out\n"
	               "loss: \"softmax_cross_entropy(out, y)\"\n");
	CU_ASSERT_FATAL(l.g != NULL);
	static const char *const order[] = {"a", "h", "b", "out"};
	for (int i = 0; i < 4; i++)
		CU_ASSERT_STRING_EQUAL(l.m->defs[i].name, order[i]);
	CU_ASSERT_STRING_EQUAL(l.g->params[0].name, "a.weight");
	CU_ASSERT_STRING_EQUAL(l.g->params[2].name, "h.weight");
	CU_ASSERT_STRING_EQUAL(l.g->params[4].name, "out.weight");
	CU_ASSERT_EQUAL(l.d.n, 0);
	if (l.d.n)
		diag_print(&l.d, stderr);
	done(&l);
	/* without 'output:', the output is the node that comes last once sorted */
	lower_text(&l, "inputs:\n"
	               "  x: {shape: [batch, 4]}\n"
	               "  y: {shape: [batch], dtype: i32}\n"
	               "nodes:\n"
	               "  out: \"dense(h, units=3)\"\n"
	               "  h: \"relu(x)\"\n"
	               "loss: \"softmax_cross_entropy(output, y)\"\n");
	CU_ASSERT_FATAL(l.g != NULL);
	CU_ASSERT_STRING_EQUAL(l.m->output, "out");
	done(&l);
}

/* A cycle is one error, at the cycle's first node in the file, naming its path in the
 * order values flow. */
static void test_layers_node_cycles_are_errors(void)
{
	static const Case cases[] = {
	    {"inputs:\n  x: {shape: [batch, 4]}\n  y: {shape: [batch], dtype: i32}\n"
	     "nodes:\n  out: \"dense(h3, units=3)\"\n  h1: \"relu(h3 + x)\"\n"
	     "  h2: \"relu(h1)\"\n  h3: \"relu(h2)\"\nloss: \"softmax_cross_entropy(out, "
	     "y)\"\n",
	     "the nodes form a cycle: h1 -> h2 -> h3 -> h1", 6, 3},
	    {"inputs:\n  x: {shape: [batch, 4]}\n  y: {shape: [batch], dtype: i32}\n"
	     "nodes:\n  h: \"relu(h)\"\nloss: \"softmax_cross_entropy(h, y)\"\n",
	     "the nodes form a cycle: h -> h", 5, 3},
	    /* through a parameter of the node: h.weight is made by h */
	    {"inputs:\n  x: {shape: [batch, 4]}\n  y: {shape: [batch], dtype: i32}\n"
	     "nodes:\n  h: \"dense(x, units=4) * sum(g)\"\n  g: \"h.weight\"\n"
	     "loss: \"softmax_cross_entropy(h, y)\"\n",
	     "the nodes form a cycle: h -> g -> h", 5, 3},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		Lowered l;
		lower_text(&l, cases[i].yaml);
		CU_ASSERT(l.m == NULL && l.d.n == 1 &&
		          has_error(&l.d, cases[i].msg, cases[i].line, cases[i].col));
		if (l.d.n != 1 ||
		    !has_error(&l.d, cases[i].msg, cases[i].line, cases[i].col))
			diag_print(&l.d, stderr);
		done(&l);
	}
}

/* Warnings, which do not stop the model: an input nothing uses, a node whose value
 * nothing uses, a trainable parameter the loss does not depend on (at its layer). */
static void test_layers_warn_about_what_is_never_used(void)
{
	Lowered l;
	lower_text(&l, "inputs:\n"
	               "  x: {shape: [batch, 4]}\n"
	               "  y: {shape: [batch], dtype: i32}\n"
	               "  extra: {shape: [batch, 2]}\n"
	               "input: x\n"
	               "nodes:\n"
	               "  h1: \"dense(x, units=3)\"\n"
	               "  h3: \"dense(x, units=3, bias=false)\"\n"
	               "  out: \"h1 + stop_gradient(h3)\"\n"
	               "  dead: \"relu(h1)\"\n"
	               "output: out\n"
	               "loss: \"softmax_cross_entropy(out, y)\"\n");
	CU_ASSERT_FATAL(l.g != NULL);
	CU_ASSERT_EQUAL(l.d.nerr, 0);
	CU_ASSERT_EQUAL(l.d.n, 3);
	static const struct {
		const char *msg;
		int line, col;
	} want[] = {
	    {"input 'extra' is never used", 4, 3},
	    {"the value of node 'dead' is never used", 10, 3},
	    {"parameter 'h3.weight' does not affect the loss; it will not be trained", 8,
	     8},
	};
	for (int k = 0; k < 3; k++) {
		int found = 0;
		for (int i = 0; i < l.d.n; i++)
			found |= l.d.v[i].sev == SEV_WARNING &&
			         !strcmp(l.d.v[i].msg, want[k].msg) &&
			         l.d.v[i].loc.line == want[k].line &&
			         l.d.v[i].loc.col == want[k].col;
		CU_ASSERT(found);
	}
	if (l.d.n != 3)
		diag_print(&l.d, stderr);
	done(&l);
	/* an unused node of two dense layers is one warning, not one more for each of
	 * their parameters; another node's on the same line are still said */
	lower_text(&l,
	           "inputs: {x: {shape: [batch, 3]}, y: {shape: [batch], dtype: i32}}\n"
	           "nodes: {dead: \"dense(dense(x, units=4), units=2)\", h: \"dense(x, "
	           "units=3)\", out: \"dense(x, units=3) + stop_gradient(h)\"}\n"
	           "output: out\nloss: softmax_cross_entropy\n");
	CU_ASSERT_FATAL(l.g != NULL);
	CU_ASSERT(l.d.n == 3 && strstr(l.d.v[0].msg, "node 'dead' is never used"));
	for (int i = 1; i < l.d.n; i++)
		CU_ASSERT(strstr(l.d.v[i].msg, "parameter 'h.") != NULL);
	done(&l);
	/* a node grad() is taken of is used, though 3 w^2 does not read w^3's node; a
	 * gradient nothing uses is not (the last node, g, is the output) */
	lower_text(&l, "params: {w: {init: 2}}\nnodes:\n"
	               "  b: \"sin(w)\"\n  unused: \"grad(b, w)\"\n"
	               "  a: \"w * w * w\"\n  g: \"grad(a, w)\"\nloss: \"g * g\"\n");
	CU_ASSERT_FATAL(l.g != NULL);
	CU_ASSERT_EQUAL(l.d.n, 1);
	CU_ASSERT(l.d.n >= 1 && l.d.v[0].sev == SEV_WARNING &&
	          !strcmp(l.d.v[0].msg, "the value of node 'unused' is never used") &&
	          l.d.v[0].loc.line == 4);
	if (l.d.n != 1)
		diag_print(&l.d, stderr);
	done(&l);
}

/* Rosenbrock's function from (-1.5, 2): (1 + 1.5)^2 + 100 (2 - 2.25)^2 = 12.5. */
static void test_layers_free_parameters_and_loss_value(void)
{
	Lowered l;
	lower_text(&l, "params:\n"
	               "  x: {init: -1.5}\n"
	               "  y: {init: 2}\n"
	               "  s: {shape: [3], init: 0.5, trainable: false}\n"
	               "loss: \"(1 - x)^2 + 100*(y - x^2)^2 + sum(s) - 1.5\"\n");
	Graph *g = l.g;
	CU_ASSERT_EQUAL(l.d.n, 0);
	CU_ASSERT_FATAL(g != NULL);
	CU_ASSERT(has_param(g, "x", SCALAR, RT_INIT_CONSTANT, 1));
	CU_ASSERT_DOUBLE_EQUAL(param(g, "x")->value, -1.5, 0);
	CU_ASSERT(has_param(g, "s", SH(3), RT_INIT_CONSTANT, 0));
	/* no data: no inputs, no padding weights, no output; only the loss */
	CU_ASSERT(g->nios == 1 && g->io_loss == 0);
	CU_ASSERT_DOUBLE_EQUAL(eval_loss(g, NULL), 12.5, 1e-12);
	done(&l);
}

/* A sigmoid right before binary_cross_entropy_with_logits is seen through (Keras'
 * sigmoid output with its binary cross-entropy had the sigmoid applied twice): the loss
 * of sigmoid(x) is that of the logits x. nll after a softmax is a warning, and so is a
 * batch norm momentum of Keras' meaning. */
static void test_layers_losses_and_norms_as_keras_and_torch_users_mean(void)
{
	const double x[] = {1, 2, -3, 100}, y[] = {1, 0, 1, 0}, w[] = {1, 1, 1, 0};
	double want = 0;
	for (int i = 0; i < 3; i++)
		want += log1p(exp(x[i])) - x[i] * y[i];
	want /= 3;
	for (int k = 0; k < 2; k++) {
		char yaml[512];
		snprintf(yaml, sizeof yaml,
		         "inputs: {x: {shape: [batch, 1]}, y: {shape: [batch, 1]}}\n"
		         "nodes: {out: \"%s\"}\n"
		         "loss: binary_cross_entropy_with_logits\n",
		         k ? "sigmoid(x)" : "x");
		Lowered l;
		lower_text(&l, yaml);
		CU_ASSERT_FATAL(l.g != NULL);
		const double *io[] = {x, y, w};
		CU_ASSERT_EQUAL_FATAL(l.g->io_weight, 2);
		CU_ASSERT_DOUBLE_EQUAL(eval_loss(l.g, io), want, 1e-12);
		done(&l);
	}
	Lowered l;
	lower_text(&l,
	           "inputs: {x: {shape: [batch, 3]}, y: {shape: [batch], dtype: i32}}\n"
	           "layers: [{dense: {units: 3, activation: softmax}}]\nloss: nll\n");
	CU_ASSERT_FATAL(l.g != NULL);
	CU_ASSERT(l.d.n == 1 && l.d.v[0].sev == SEV_WARNING &&
	          strstr(l.d.v[0].msg, "nll takes log-probabilities, and its input is a "
	                               "softmax's probabilities") != NULL);
	done(&l);
	/* Keras' batch norm momentum, 0.99, means PyTorch's 0.01: a warning, once */
	lower_text(&l,
	           "inputs: {x: {shape: [batch, 3]}, y: {shape: [batch], dtype: i32}}\n"
	           "layers:\n  - batch_norm: {momentum: 0.99}\n  - dense: {units: 3}\n"
	           "loss: softmax_cross_entropy\n");
	CU_ASSERT_FATAL(l.g != NULL);
	CU_ASSERT(l.d.n == 1 && l.d.v[0].sev == SEV_WARNING && l.d.v[0].loc.line == 3 &&
	          strstr(l.d.v[0].msg, "(Keras' momentum 0.99 is PyTorch's 0.01)") !=
	              NULL);
	done(&l);
	/* images channels last: 28 channels of 28 x 1 images, a warning at the conv */
	lower_text(&l,
	           "inputs: {x: {shape: [batch, 28, 28, 1]}, y: {shape: [batch], "
	           "dtype: i32}}\nlayers:\n"
	           "  - conv2d: {out_channels: 4, kernel_size: 3, padding: same}\n"
	           "  - flatten\n  - dense: {units: 3}\nloss: softmax_cross_entropy\n");
	CU_ASSERT_FATAL(l.g != NULL);
	CU_ASSERT(l.d.n == 1 && l.d.v[0].sev == SEV_WARNING && l.d.v[0].loc.line == 3 &&
	          strstr(l.d.v[0].msg, "28, 28, 1] is 28 channels of 28 x 1 "
	                               "images (channels last?)") != NULL);
	if (l.d.n != 1)
		diag_print(&l.d, stderr);
	done(&l);
	/* not on a feature map the network made, nor under a [k, 1] kernel (a 1-D
	 * convolution), nor on Keras' Reshape((-1, 6)), [batch, 1, 6] */
	lower_text(&l, "inputs: {x: {shape: [batch, 1, 64, 16]}, y: {shape: [batch], "
	               "dtype: i32}}\nlayers:\n"
	               "  - conv2d: {out_channels: 32, kernel_size: 3, padding: same}\n"
	               "  - max_pool2d: {kernel_size: 4}\n"
	               "  - conv2d: {out_channels: 8, kernel_size: 3, padding: same}\n"
	               "  - flatten\n  - dense: {units: 6}\n"
	               "  - reshape: {shape: [-1, 6]}\n  - flatten\n"
	               "loss: softmax_cross_entropy\n");
	CU_ASSERT(l.g != NULL && l.d.n == 0);
	done(&l);
	/* a boolean as Python writes it, bias: False, or as YAML's other settings take
	 * it, bias: no */
	for (int k = 0; k < 2; k++) {
		char yaml[256];
		snprintf(
		    yaml, sizeof yaml,
		    "inputs: {x: {shape: [batch, 3]}, y: {shape: [batch], dtype: i32}}\n"
		    "layers:\n  - dense: {name: fc, units: 3, bias: %s}\n"
		    "loss: softmax_cross_entropy\n",
		    k ? "no" : "False");
		lower_text(&l, yaml);
		CU_ASSERT_FATAL(l.g != NULL);
		CU_ASSERT(l.d.n == 0 && l.g->nparams == 1 &&
		          !strcmp(l.g->params[0].name, "fc.weight"));
		done(&l);
	}
	lower_text(&l,
	           "inputs: {x: {shape: [batch, 16, 100, 1]}, y: {shape: [batch], "
	           "dtype: i32}}\nlayers:\n"
	           "  - conv2d: {out_channels: 4, kernel_size: [5, 1]}\n"
	           "  - flatten\n  - dense: {units: 3}\nloss: softmax_cross_entropy\n");
	CU_ASSERT(l.g != NULL && l.d.n == 0);
	done(&l);
}

/* The weight slot holds 1 for real rows and 0 for padding: the loss is the mean over
 * the real rows (or their sum), whatever is in the padding. */
static void test_layers_loss_is_mean_over_real_rows(void)
{
	const char *forms[] = {"loss: mse\n", "loss: {type: mse, reduction: sum}\n",
	                       "loss: \"huber(output, y, delta=2)\"\n"};
	/* huber: 0.5 d^2 within delta, delta (|d| - delta / 2) beyond: (0.5 + 2 + 4) / 3
	 */
	const double want[] = {14.0 / 3, 14, 6.5 / 3};
	for (int k = 0; k < 3; k++) {
		char yaml[512];
		snprintf(yaml, sizeof yaml,
		         "inputs: {x: {shape: [batch, 1]}, y: {shape: [batch, 1]}}\n"
		         "nodes: {out: \"x\"}\n%s",
		         forms[k]);
		Lowered l;
		lower_text(&l, yaml);
		CU_ASSERT_FATAL(l.g != NULL);
		const double x[] = {1, 2, 3, 100}, y[] = {0, 0, 0, 0}, w[] = {1, 1, 1, 0};
		const double *io[] = {x, y, w};
		CU_ASSERT_EQUAL_FATAL(l.g->io_weight, 2);
		CU_ASSERT_DOUBLE_EQUAL(eval_loss(l.g, io), want[k], 1e-12);
		done(&l);
	}
}

/* Nodes of op reachable from n (each counted once: seen holds the ids met). */
static int reachable(const Node *n, Op op, char *seen)
{
	if (seen[n->id])
		return 0;
	seen[n->id] = 1;
	int k = n->op == op;
	for (int i = 0; i < n->nin; i++)
		k += reachable(n->in[i], op, seen);
	return k;
}

/* Nodes of op that the evaluation's outputs depend on. */
static int ops_left(Graph *g, Op op)
{
	const Fn *f = &g->fns[FN_EVALUATE];
	char *seen = calloc((size_t)g->n, 1);
	int left = 0;
	for (int i = 0; i < f->nouts; i++)
		left += reachable(f->outs[i].node, op, seen);
	free(seen);
	return left;
}

/* A matrix transposed into a matmul becomes the product's flag, a transpose of a
 * transpose one transpose or none (fold.c): the loss keeps its value, and only a
 * transpose of the product itself is left to copy. */
static void test_layers_transposes_fold_into_matmul(void)
{
	static const struct {
		const char *expr;
		int ta, tb,
		    tc; /* the product of a^T if ta, b^T if tb; transposed if tc */
		int transposes; /* left in the graph */
	} cases[] = {
	    {"matmul(transpose(a), b)", 1, 0, 0, 0},
	    {"matmul(a, transpose(b))", 0, 1, 0, 0},
	    {"matmul(transpose(a), transpose(b))", 1, 1, 0, 0},
	    {"matmul(transpose(transpose(a)), b)", 0, 0, 0, 0},
	    {"transpose(transpose(transpose(matmul(a, b))))", 0, 0, 1, 1},
	};
	/* 4 x 4 inputs (batch 4), so that a wrong flag is a wrong value, not a shape
	 * error */
	double a[16], b[16], c[16], w[4] = {1, 1, 1, 1};
	for (int k = 0; k < 16; k++)
		a[k] = k % 5 - 2, b[k] = (k * 7) % 11 - 5, c[k] = (k * 3) % 7 - 1;
	for (int t = 0; t < (int)(sizeof cases / sizeof cases[0]); t++) {
		double want = 0;
		for (int i = 0; i < 4; i++)
			for (int j = 0; j < 4; j++) {
				double p = 0; /* (op(a) op(b))[i, j] */
				for (int k = 0; k < 4; k++)
					p += (cases[t].ta ? a[k * 4 + i] : a[i * 4 + k]) *
					     (cases[t].tb ? b[j * 4 + k] : b[k * 4 + j]);
				want += p * (cases[t].tc ? c[j * 4 + i] : c[i * 4 + j]);
			}
		Lowered l;
		lower_loss(&l,
		           "a: {shape: [batch, 4]}, b: {shape: [batch, 4]}, "
		           "c: {shape: [batch, 4]}",
		           "sum(%s * c)", cases[t].expr);
		const double *io[] = {a, b, c, w};
		CU_ASSERT_DOUBLE_EQUAL(eval_loss(l.g, io), want, 1e-9);
		int left = ops_left(l.g, OP_TRANSPOSE);
		CU_ASSERT_EQUAL(left, cases[t].transposes);
		if (left != cases[t].transposes)
			fprintf(stderr, "\n%s: %d transposes left\n", cases[t].expr,
			        left);
		done(&l);
	}
}

/* Powers by the constants fold.c rewrites are products, square roots and divisions:
 * no pow left, and the loss's value on inputs in (0.5, 4). (Not -2: see fold_pow.) */
static void test_layers_powers_fold_into_products(void)
{
	/* (a literal that rounds to float's largest is one: numpy's -3.4028235e38) */
	Lowered big;
	lower_loss(&big, "x: {shape: [batch, 1]}", "sum(max(x, %s))", "-3.4028235e38");
	done(&big);
	static const double exps[] = {2, 3, 4, 0.5, -1, -0.5};
	double x[4] = {0.5, 1.5, 2.25, 4}, w[4] = {1, 1, 1, 1};
	for (int t = 0; t < (int)(sizeof exps / sizeof exps[0]); t++) {
		char e[32];
		snprintf(e, sizeof e, "%g", exps[t]);
		Lowered l;
		lower_loss(&l, "x: {shape: [batch, 1]}", "sum(x ^ %s)", e);
		double want = 0;
		for (int i = 0; i < 4; i++)
			want += pow(x[i], exps[t]);
		const double *io[] = {x, w};
		CU_ASSERT_DOUBLE_EQUAL(eval_loss(l.g, io), want, 1e-12);
		CU_ASSERT_EQUAL(ops_left(l.g, OP_POW), 0);
		done(&l);
	}
}

/* batch_norm in training and layer_norm, against their definitions computed here:
 * (x - mean) / sqrt(var + eps) over the batch (per feature) and over the features (per
 * row), biased variance, weight 1 and bias 0; the loss weighs each output by c. */
static void test_layers_normalization_values(void)
{
	double x[8] = {1, -2, 3, 5, -4, 0.5, 2, 7}, c[8] = {1, 2, -1, 3, 0.5, -2, 1, 1},
	       w[4] = {1, 1, 1, 1};
	const char *fn[] = {"batch_norm", "layer_norm"};
	for (int k = 0; k < 2; k++) {
		Lowered l;
		lower_loss(&l, "x: {shape: [batch, 2]}, c: {shape: [batch, 2]}",
		           "sum(%s(x, eps=0.5) * c)", fn[k]);
		double want = 0;
		for (int i = 0; i < 4; i++)
			for (int j = 0; j < 2; j++) {
				double m = 0,
				       v = 0; /* over the batch (k = 0) or the row */
				for (int t = 0; t < (k ? 2 : 4); t++)
					m += (k ? x[i * 2 + t] : x[t * 2 + j]) /
					     (k ? 2 : 4);
				for (int t = 0; t < (k ? 2 : 4); t++) {
					double e = (k ? x[i * 2 + t] : x[t * 2 + j]) - m;
					v += e * e / (k ? 2 : 4);
				}
				want += (x[i * 2 + j] - m) / sqrt(v + 0.5) * c[i * 2 + j];
			}
		const double *io[] = {x, c, w};
		CU_ASSERT_DOUBLE_EQUAL(eval_loss_of(l.g, io, FN_GRAD), want, 1e-12);
		done(&l);
	}
}

/* ---- calls that break their signature: rejected when the model is loaded ---- */

#define CONV(settings)                                                                   \
	"inputs:\n  image: {shape: [batch, 1, 8, 8]}\n  label: {shape: [batch], dtype: " \
	"i32}\n"                                                                         \
	"layers:\n  - " settings "\n  - flatten\n  - dense: {units: 3}\n" SCE
#define NODE(text)                                                                       \
	IMG "nodes:\n  h: \"" text "\"\n  out: \"dense(image, units=3)\"\n"              \
	    "loss: \"softmax_cross_entropy(out, label)\"\n"

static void test_layers_reject_bad_calls(void)
{
	static const Case cases[] = {
	    {CONV("conv2d: {out_channels: 6}"), "conv2d needs 'kernel_size'", 5, 5},
	    {CONV("conv2d: {kernel_size: 3}"), "conv2d needs 'out_channels'", 5, 5},
	    {CONV("conv2d: {out_channels: 6, kernel_size: 5, padding: [1, 2, 3]}"),
	     "'padding' takes 1, 2 ([h, w]) or 4 ([top, bottom, left, right]) integers, "
	     "got 3",
	     5, 56},
	    {CONV("conv2d: {out_channels: 6, kernel_size: 5, padding: full}"),
	     "'padding' must be an integer, a list of 2 or 4, same or valid, got 'full'",
	     5, 56},
	    {CONV("conv2d: {out_channels: 6, kernel_size: [5, 5, 5]}"),
	     "'kernel_size' takes an integer or a list of 1 to 2 of them, got 3", 5, 44},
	    {CONV("conv2d: {out_channels: 6, kernel_size: 5, activation: rleu}"),
	     "unknown activation 'rleu'; did you mean 'relu'?", 5, 59},
	    {CONV("conv2d: {out_channels: 6, kernel_size: 5, stride: 0}"),
	     "'stride' must be an integer from 1 to 65536, got '0'", 5, 55},
	    {CONV("conv2d: {out_channels: 6, kernel_size: 5, strides: 2}"),
	     "unknown setting 'strides' for conv2d; did you mean 'stride'?", 5, 47},
	    {CONV("dropout: {p: 1.5}"),
	     "'p' must be a number from 0 to 0.999999, got '1.5'", 5, 18},
	    {CONV("dropout: {rate: 0.5}"),
	     "dropout has no setting 'rate'; its name here is 'p'", 5, 15},
	    {CONV("max_pool2d: {size: 2}"),
	     "max_pool2d has no setting 'size'; its settings: kernel_size, stride, "
	     "padding",
	     5, 18},
	    {CONV("conv2d: {in_channels: 1, out_channels: 6, kernel_size: 5}"),
	     "conv2d has no 'in_channels': it takes its input's size from the input's "
	     "shape",
	     5, 14},
	    {CONV("dense: {out_features: 6}"),
	     "dense has no setting 'out_features'; its name here is 'units'", 5, 13},
	    {CONV("max_pool2d"), "max_pool2d needs 'kernel_size'", 5, 5},
	    {CONV("avg_pool2d: {kernel_size: 0}"),
	     "'kernel_size' must be an integer from 1 to 65536, got '0'", 5, 31},
	    {CONV("batch_norm: {momentum: 2}"),
	     "'momentum' must be a number from 0 to 1, got '2'", 5, 28},
	    {CONV("batch_norm: {eps: 0}"),
	     "'eps' must be a number from 1e-12 to 1, got '0'", 5, 23},
	    {CONV("embedding: {num_embeddings: 10}"), "embedding needs 'embedding_dim'",
	     5, 5},
	    {CONV("layer_norm: {eps: x}"),
	     "'eps' must be a number from 1e-12 to 1, got 'x'", 5, 23},
	    {NODE("leaky_relu(image, negative_slope=2)"),
	     "'negative_slope' must be a number from 0 to 1, got '2'", 5, 40},
	    {NODE("gelu(image, approximate=fast)"),
	     "'approximate' must be one of: none, tanh", 5, 31},
	    {NODE("reshape(image, shape=[-1, -1])"),
	     "'shape' must be a positive integer or one -1, got '-1'", 5, 33},
	    {NODE("sum(image, axis=7)"),
	     "'axis' must be an integer from -6 to 5, got '7'", 5, 23},
	    {NODE("max(image, keepdims=maybe)"), "'keepdims' must be one of: false, true",
	     5, 27},
	    {NODE("transpose(image, perm=3)"),
	     "'perm' must be a list of at most 6 integers, got '3'", 5, 29},
	    {NODE("one_hot(label)"), "one_hot needs 'num_classes'", 5, 7},
	    {NODE("exp(image, image)"), "exp takes 1 value, got 2", 5, 7},
	    {NODE("one_hot(label, 10)"),
	     "one_hot takes 1 value, got 2; settings go by name, as in one_hot(..., "
	     "num_classes=...)",
	     5, 7},
	    {NODE("sum(image, 1)"),
	     "sum takes 1 value, got 2; settings go by name, as in sum(..., axis=...)", 5,
	     7},
	    {NODE("where(image, image)"), "where takes 3 values, got 2", 5, 7},
	    {NODE("concat()"), "concat takes 1 or more values, got 0", 5, 7},
	    {NODE("add(image)"), "add takes 2 or more values, got 1", 5, 7},

	    {NODE("softmax_cross_entropy(image, label, label_smoothing=-1)"),
	     "'label_smoothing' must be a number from 0 to 1, got '-1'", 5, 59},
	    {IMG "nodes:\n  out: \"dense(image, units=3)\"\nloss: \"grad(out)\"\n",
	     "grad takes 2 values, got 1", 6, 8},
	    {IMG "nodes:\n  out: \"dense(image, units=3)\"\n"
	         "loss: \"mse(out, label, reduction=mean, reduction=sum)\"\n",
	     "duplicate keyword argument 'reduction' in the call of 'mse'", 6, 40},
	};
	RUN(cases, 0);
}

/* ---- problems with shapes and types: found when the model is lowered ---- */

#define FLAT                                                                             \
	"inputs:\n  image: {shape: [batch, 784]}\n  label: {shape: [batch], dtype: "     \
	"i32}\n"
#define GRID(node)                                                                       \
	FLAT "nodes:\n  g: \"reshape(image, shape=[1, 28, 28])\"\n  h: \"" node "\"\n"   \
	     "  out: \"dense(flatten(h), units=10)\"\n"                                  \
	     "loss: \"softmax_cross_entropy(out, label)\"\n"
#define FNODE(node)                                                                      \
	FLAT "nodes:\n  h: \"" node "\"\n  out: \"dense(image, units=10)\"\n"            \
	     "loss: \"softmax_cross_entropy(out, label)\"\n"

static void test_layers_lowering_reports_shapes_and_types(void)
{
	static const Case cases[] = {
	    {NODE("image * 1e39"), "'1e39' is beyond a 32-bit float's range", 5, 15},
	    {NODE("mean(label)"), "mean expects floating-point values, got integers", 5,
	     7},
	    {NODE("label * 2"), "'*' expects floating-point values, got integers", 5, 7},
	    {NODE("image + 1e-50"), "'1e-50' is below a 32-bit float's range", 5, 15},
	    {FLAT "layers:\n  - conv2d: {out_channels: 6, kernel_size: 5}\n" SCE,
	     "conv2d needs a [batch, channels, height, width] value, got [4, 784]; give "
	     "the "
	     "input that shape or reshape it",
	     5, 5},
	    {FLAT
	     "layers:\n  - dense: {units: 8}\n  - max_pool2d: {kernel_size: 2}\n" SCE,
	     "max_pool2d needs a [batch, channels, height, width] value, got [4, 8]", 6,
	     5},
	    {FLAT "layers:\n  - global_avg_pool\n" SCE,
	     "global_avg_pool needs a [batch, channels, height, width] value, got [4, "
	     "784]",
	     5, 5},
	    {FLAT
	     "layers:\n  - reshape: {shape: [1, 27, 27]}\n  - dense: {units: 10}\n" SCE,
	     "reshape: [4, 784] has 3136 elements, which do not fit [4, 1, 27, 27]", 5,
	     5},
	    {FNODE("reshape(image, shape=[-1, 5])"),
	     "reshape: [4, 784] has 3136 elements, which do not fit [4, -1, 5]", 5, 7},
	    {FNODE("reshape(image, shape=[3, 3, 3, 3, 3, 3])"),
	     "reshape: 7 axes with the batch; at most 6 are supported", 5, 7},
	    {GRID("conv2d(g, out_channels=6, kernel_size=3, groups=4)"),
	     "conv2d: 1 input and 6 output channels do not split into 4 groups", 6, 7},
	    {GRID("conv2d(g, out_channels=6, kernel_size=29)"),
	     "conv2d: the kernel spans [29, 29] (with its dilation), more than the "
	     "padded input's [28, 28]",
	     6, 7},
	    {GRID("conv2d(g, out_channels=6, kernel_size=3, dilation=15, padding=1)"),
	     "conv2d: the kernel spans [31, 31] (with its dilation), more than the "
	     "padded input's [30, 30]",
	     6, 7},
	    {GRID("max_pool2d(g, kernel_size=2, padding=2)"),
	     "max_pool2d: padding 2 is more than half the kernel 2", 6, 7},
	    {FNODE("embedding(image, num_embeddings=10, embedding_dim=4)"),
	     "embedding takes integer indices (an input with dtype: i32)", 5, 7},
	    {FNODE("batch_norm(reshape(image, shape=[28, 28]))"),
	     "batch_norm needs [batch, features] or [batch, channels, h, w]", 5, 7},
	    {FNODE("transpose(image, perm=[0, 1, 2])"),
	     "transpose: 'perm' has 3 axes, the value has 2", 5, 7},
	    {FNODE("transpose(image, perm=[0, 0])"),
	     "transpose: 'perm' is not a permutation of 0..1", 5, 7},
	    /* a transpose of a 3-D value is not matmul's flag (fold.c); a transposed
	     * matrix with a 3-D value is not rewritten either (reported once) */
	    {GRID("matmul(transpose(g), image)"),
	     "matmul needs two matrices, got [28, 28, 1, 4] and [4, 784]", 6, 7},
	    {GRID("matmul(g, transpose(image))"),
	     "matmul needs two matrices, got [4, 1, 28, 28] and [784, 4]", 6, 7},
	    {FNODE("sum(image, axis=3)"),
	     "axis 3 is out of range for a value with 2 axes", 5, 7},
	    {FNODE("concat(image, reshape(image, shape=[28, 28]), axis=1)"),
	     "concat: [4, 784] and [4, 28, 28] differ beyond axis 1", 5, 7},
	    {FLAT
	     "layers: [{dense: {units: 3, name: a}}, {dense: {units: 4}}, {add: {with: "
	     "a}}]\n" SCE,
	     "shapes [4, 4] and [4, 3] do not broadcast", 4, 62},
	    {FNODE("image + [1, 2]"), "a list is not a value here", 5, 15},
	    {"params:\n  x: {init: 1}\nnodes:\n  h: \"dense(x, units=3)\"\nloss: "
	     "\"sum(h)\"\n",
	     "dense needs a vector of features, got a single number", 4, 7},
	    {"params:\n  x: {shape: [3]}\n  y: {shape: [2]}\nloss: \"sum(x * y)\"\n",
	     "shapes [3] and [2] do not broadcast", 4, 12},
	    /* names are looked up in order: inputs, parameters, earlier nodes */
	    {FLAT
	     "nodes:\n  h1: \"dense(image, units=8)\"\n  out: \"dense(h2, units=10)\"\n"
	     "loss: \"softmax_cross_entropy(out, label)\"\n",
	     "unknown name 'h2'; did you mean 'h1'?", 6, 15},
	    {FLAT
	     "nodes:\n  h1: \"dense(imag, units=8)\"\n  out: \"dense(h1, units=10)\"\n"
	     "loss: \"softmax_cross_entropy(out, label)\"\n",
	     "unknown name 'imag'; did you mean 'image'?", 5, 14},
	    /* nodes may come in any order: a name defined later is found, and suggested
	     */
	    {FLAT "nodes:\n  out: \"dense(latr, units=10)\"\n  later: \"relu(image)\"\n"
	          "loss: \"softmax_cross_entropy(out, label)\"\n",
	     "unknown name 'latr'; did you mean 'later'?", 5, 15},
	    {FLAT "layers: [{dense: {units: 3, name: a}}, {add: {with: b}}]\n" SCE,
	     "unknown name 'b'", 4, 53},
	    /* PyTorch's view(-1, 1, 28, 28): the shape is per example */
	    {FLAT "layers:\n  - reshape: {shape: [-1, 1, 28, 28]}\n  - flatten\n"
	          "  - dense: {units: 3}\n" SCE,
	     "a -1 first (PyTorch's view(-1, ...)) is an axis of 1 here", 5, 5},
	    /* a flatten forgotten: said at the loss, with the likely cause */
	    {FLAT "layers:\n  - reshape: {shape: [1, 28, 28]}\n"
	          "  - conv2d: {out_channels: 2, kernel_size: 3}\n"
	          "  - dense: {units: 3}\n" SCE,
	     "do not fit scores [4, 2, 26, 3] (a flatten missing before the last dense "
	     "layer, which",
	     8, 14},
	    /* a loss by PyTorch's name: descent's */
	    {FLAT "layers: [{dense: {units: 3}}]\nloss: CrossEntropyLoss\n",
	     "unknown name 'CrossEntropyLoss'; descent calls it 'softmax_cross_entropy'",
	     5, 7},
	    {"params:\n  x: {shape: [3]}\nloss: \"sum(x) + x.y\"\n", "unknown name 'x.y'",
	     3, 17},
	    /* the loss */
	    {FLAT "layers: [{dense: {units: 10}}]\nloss: \"output\"\n",
	     "the loss must be a single number, got shape [4, 10]; reduce it with sum() "
	     "or "
	     "mean()",
	     5, 8},
	    {FLAT "layers: [{dense: {units: 10}}]\nloss: \"sum(output, axis=1)\"\n",
	     "the loss must be a single number, got shape [4]", 5, 8},
	    {"params:\n  x: {shape: [3]}\nloss: \"x^2\"\n",
	     "the loss must be a single number, got shape [3]", 3, 8},
	    {"inputs:\n  image: {shape: [batch, 784]}\n  label: {shape: [batch]}\n"
	     "layers: [{dense: {units: 10}}]\n" SCE,
	     "softmax_cross_entropy: the prediction has shape [4, 10] but the target has "
	     "[4]",
	     5, 14},
	    {FLAT "layers: [{dense: {units: 10}}]\nloss: \"nll(9, label)\"\n",
	     "nll needs scores with a last axis of classes, got a single number", 5, 8},
	    {FLAT "layers: [{dense: {units: 10}}]\nloss: \"l1(output, label)\"\n",
	     "l1 needs a floating-point target (dtype f32)", 5, 8},
	    {FLAT "layers: [{dense: {units: 10}}]\nloss: \"sum(argmax(output))\"\n",
	     "sum expects floating-point values, got integers", 5, 8},
	    /* grad(f, p): a number's gradient with respect to a parameter */
	    {"params:\n  x: {init: 1}\nloss: \"x^2 + grad(x^2, 2*x)\"\n",
	     "grad: '2 * x' is not a parameter", 3, 24},
	    {"params:\n  x: {init: 1}\nloss: \"x^2 + grad(x^2, z)\"\n",
	     "unknown name 'z'", 3, 24},
	    {FLAT "layers: [{dense: {units: 10}}]\n"
	          "loss: \"softmax_cross_entropy(output, label) + sum(grad(output, "
	          "fc1.weight))\"\n",
	     "grad: the function must be a single number, got shape [4, 10]", 5, 51},
	};
	RUN(cases, 1);
}

void suite_layers(void)
{
	static CU_TestInfo tests[] = {
	    {"layers_dense_parameters_follow_pytorch",
	     test_layers_dense_parameters_follow_pytorch},
	    {"layers_conv_and_norm_parameters", test_layers_conv_and_norm_parameters},
	    {"layers_nodes_name_their_parameters",
	     test_layers_nodes_name_their_parameters},
	    {"layers_free_parameters_take_fans_from_their_shape",
	     test_layers_free_parameters_take_fans_from_their_shape},
	    {"layers_l2_leaves_norm_scales_out", test_layers_l2_leaves_norm_scales_out},
	    {"layers_losses_and_norms_as_keras_and_torch_users_mean",
	     test_layers_losses_and_norms_as_keras_and_torch_users_mean},
	    {"layers_nodes_in_any_order", test_layers_nodes_in_any_order},
	    {"layers_node_cycles_are_errors", test_layers_node_cycles_are_errors},
	    {"layers_warn_about_what_is_never_used",
	     test_layers_warn_about_what_is_never_used},
	    {"layers_free_parameters_and_loss_value",
	     test_layers_free_parameters_and_loss_value},
	    {"layers_loss_is_mean_over_real_rows",
	     test_layers_loss_is_mean_over_real_rows},
	    {"layers_transposes_fold_into_matmul",
	     test_layers_transposes_fold_into_matmul},
	    {"layers_powers_fold_into_products", test_layers_powers_fold_into_products},
	    {"layers_normalization_values", test_layers_normalization_values},
	    {"layers_reject_bad_calls", test_layers_reject_bad_calls},
	    {"layers_lowering_reports_shapes_and_types",
	     test_layers_lowering_reports_shapes_and_types},
	    CU_TEST_INFO_NULL,
	};
	add_suite("layers", tests);
}
