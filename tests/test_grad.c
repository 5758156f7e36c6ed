/* The gradient test, table-driven over every row of the op table (ops.h).
 *
 * For each op it builds loss = sum(op(params...) * R) with random shapes of rank 0-4 and
 * a random R, derives the backward graph with ad_backward, and checks:
 *   - float64: the backward graph, run by the reference interpreter, against central
 *     finite differences of the forward graph (points kept away from kinks);
 *   - float32: the same gradients from JIT-compiled code against the float64 ones.
 * An op row with no case here fails the test: a new op cannot skip its gradient check.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dc.h"
#include "tests.h"

static rt_rng rng;

static double urand(double lo, double hi)
{
	return lo + (hi - lo) * rt_rng_uniform(&rng);
}

static Shape rand_shape(int minrank, int maxrank)
{
	Shape s = {minrank + (int)rt_rng_below(&rng, maxrank - minrank + 1), {0}};
	for (int i = 0; i < s.rank; i++)
		s.d[i] = 1 + (int64_t)rt_rng_below(&rng, 3);
	return s;
}

/* s with some axes set to 1 and maybe leading axes dropped: broadcasts back to s */
static Shape squeeze_some(Shape s)
{
	for (int i = 0; i < s.rank; i++)
		if (rt_rng_below(&rng, 2))
			s.d[i] = 1;
	int drop = s.rank ? (int)rt_rng_below(&rng, s.rank + 1) : 0;
	Shape t = {s.rank - drop, {0}};
	for (int i = 0; i < t.rank; i++)
		t.d[i] = s.d[i + drop];
	return t;
}

/* Where an op's inputs must be drawn from. */
typedef enum { ANY, POSITIVE, AWAY0 } Domain;

/* One random instance of an op: its parameters (what the gradient is checked for) and
 * its io slots (integer indices, then R, then the outputs), with their values. */
typedef struct Case {
	Graph *g;
	int np;
	Domain dom[MAXIN];
	double *io[8]; /* values of io slot k, float64 */
	Node *out;     /* op under test */
} Case;

static Node *param(Case *c, Shape s, Domain dom)
{
	char name[16];
	snprintf(name, sizeof name, "p%d", c->np);
	c->dom[c->np++] = dom;
	return ir_param(c->g,
	                ir_add_param(c->g, name, s, RT_INIT_ZEROS, 1, 1, (SrcLoc){0}));
}

/* An io slot of integers in [lo, hi). */
static Node *indices(Case *c, Shape s, int64_t lo, int64_t hi)
{
	int k = ir_add_io(c->g, "idx", RT_IO_INPUT, DT_I32, s, (SrcLoc){0});
	c->io[k] = malloc((size_t)(shape_numel(&s) + 1) * sizeof(double));
	for (int64_t i = 0; i < shape_numel(&s); i++)
		c->io[k][i] =
		    (double)(lo + (int64_t)rt_rng_below(&rng, (uint64_t)(hi - lo)));
	return ir_input(c->g, k);
}

static int64_t r1(int64_t lo, int64_t hi) /* in [lo, hi] */
{
	return lo + (int64_t)rt_rng_below(&rng, (uint64_t)(hi - lo + 1));
}

static ConvP rand_convp(void)
{
	ConvP p = {{r1(1, 2), r1(1, 2)},
	           {r1(0, 1), r1(0, 1), r1(0, 1), r1(0, 1)},
	           {r1(1, 2), r1(1, 2)},
	           r1(1, 2)};
	return p;
}

/* x and w shapes for a convolution whose output is at least 1x1 */
static void conv_shapes(const ConvP *p, Shape *xs, Shape *ws)
{
	int64_t k[2] = {r1(1, 3), r1(1, 3)};
	*ws = (Shape){4, {p->groups * r1(1, 2), r1(1, 2), k[0], k[1]}};
	*xs = (Shape){4,
	              {r1(1, 2), ws->d[1] * p->groups, p->dil[0] * (k[0] - 1) + r1(1, 4),
	               p->dil[1] * (k[1] - 1) + r1(1, 4)}};
}

static PoolP rand_poolp(Shape *xs)
{
	PoolP p = {{r1(1, 3), r1(1, 3)}, {r1(1, 2), r1(1, 2)}, {0}};
	for (int i = 0; i < 4; i++)
		p.pad[i] = r1(0, p.k[i / 2] / 2);
	*xs = (Shape){4, {r1(1, 2), r1(1, 2), p.k[0] + r1(0, 3), p.k[1] + r1(0, 3)}};
	return p;
}

static Node *build_elemwise(Case *c, Op op)
{
	Graph *g = c->g;
	int fl = opinfo[op].flags;
	if (opinfo[op].nin == 1) {
		Domain d = fl & OPF_POSITIVE ? POSITIVE : fl & OPF_KINK ? AWAY0 : ANY;
		return ir_unary(g, op, param(c, rand_shape(0, 4), d));
	}
	Shape s = rand_shape(0, 4), t = squeeze_some(s);
	if (op == OP_SELECT) {
		Node *cond = param(c, t, AWAY0);
		return ir_select(g, cond, param(c, s, ANY),
		                 param(c, squeeze_some(s), ANY));
	}
	int swap = rt_rng_below(&rng, 2) && op != OP_DIV;
	Domain da = op == OP_POW ? POSITIVE : ANY, db = op == OP_DIV ? AWAY0 : ANY;
	Node *a = param(c, swap ? t : s, da), *b = param(c, swap ? s : t, db);
	return ir_binary(g, op, a, b);
}

static Node *build_layout(Case *c, Op op)
{
	Graph *g = c->g;
	Shape s = rand_shape(1, 4), t = s;
	int64_t start[MAXRANK] = {0};
	for (int i = 0; i < s.rank; i++) {
		t.d[i] = r1(1, s.d[i]);
		start[i] = r1(0, s.d[i] - t.d[i]);
	}
	if (op == OP_SLICE)
		return ir_slice(g, param(c, s, ANY), start, t);
	if (op == OP_PAD)
		return ir_pad(g, param(c, t, ANY), start, s);
	int perm[MAXRANK];
	for (int i = 0; i < s.rank; i++)
		perm[i] = i;
	for (int i = s.rank - 1; i > 0; i--) {
		int j = (int)rt_rng_below(&rng, (uint64_t)i + 1), tmp = perm[i];
		perm[i] = perm[j], perm[j] = tmp;
	}
	if (s.rank > 1 && perm[0] == 0 && perm[1] == 1) /* not the identity */
		perm[0] = 1, perm[1] = 0;
	return ir_transpose(g, param(c, s, ANY), perm);
}

static Node *build_nn(Case *c, Op op)
{
	Graph *g = c->g;
	ConvP cp = rand_convp();
	Shape xs, ws;
	conv_shapes(&cp, &xs, &ws);
	Node *x, *w;
	switch (op) {
	case OP_CONV2D:
		x = param(c, xs, ANY);
		return ir_conv2d(g, x, param(c, ws, ANY), &cp);
	case OP_CONV2D_BWD_DATA:
	case OP_CONV2D_BWD_FILTER: {
		Node *probe = ir_conv2d(g, ir_const(g, 0, xs), ir_const(g, 0, ws), &cp);
		Node *dy = param(c, probe->sh, ANY);
		if (op == OP_CONV2D_BWD_DATA)
			return ir_conv2d_bwd_data(g, dy, param(c, ws, ANY), &cp, xs);
		return ir_conv2d_bwd_filter(g, param(c, xs, ANY), dy, &cp, ws);
	}
	default:
		break;
	}
	PoolP pp = rand_poolp(&xs);
	switch (op) {
	case OP_POOLMAX_GATHER:
		x = param(c, xs, ANY);
		return ir_poolmax(g, 0, x, param(c, xs, ANY), &pp);
	case OP_POOLMAX_SCATTER:
		x = param(c, xs, ANY);
		return ir_poolmax(g, 1, x, param(c, ir_poolmax(g, 0, x, x, &pp)->sh, ANY),
		                  &pp);
	case OP_AVGPOOL:
		return ir_avgpool(g, param(c, xs, ANY), &pp);
	case OP_AVGPOOL_BWD:
		return ir_avgpool_bwd(
		    g, param(c, ir_avgpool(g, ir_const(g, 0, xs), &pp)->sh, ANY), &pp,
		    xs);
	case OP_GATHER: { /* -1 and V are out of range: rows of zeros */
		Shape ts = rand_shape(1, 3);
		w = param(c, ts, ANY);
		return ir_gather(g, w, indices(c, rand_shape(0, 2), -1, ts.d[0] + 1));
	}
	case OP_SCATTER_ADD: {
		Shape ts = rand_shape(1, 3), is = rand_shape(0, 2), dys = is;
		for (int i = 1; i < ts.rank; i++)
			dys.d[dys.rank++] = ts.d[i];
		Node *idx = indices(c, is, -1, ts.d[0] + 1);
		return ir_scatter_add(g, idx, param(c, dys, ANY), ts);
	}
	case OP_DROPMASK:
		return ir_dropmask(g, param(c, (Shape){0, {0}}, POSITIVE),
		                   param(c, (Shape){0, {0}}, POSITIVE), 0.3,
		                   rand_shape(1, 3));
	default:
		return NULL;
	}
}

/* Builds the op under test on fresh parameters; 0 if the test knows no case for op. */
static int build(Case *c, Op op)
{
	Graph *g = c->g;
	int64_t attrs[NATTR] = {0};
	Node *x;
	if (opinfo[op].flags & OPF_ELEMWISE) {
		c->out = build_elemwise(c, op);
		return 1;
	}
	switch (op) {
	case OP_SUM:
	case OP_RMAX:
		x = param(c, rand_shape(1, 4), ANY);
		attrs[0] = 1 + rt_rng_below(&rng, (1u << x->sh.rank) - 1);
		c->out = ir_node(g, op, 1, &x, attrs, 0);
		return 1;
	case OP_BROADCAST: { /* an extra leading axis, and maybe some size-1 axes */
		Shape s = rand_shape(0, 3), big = {s.rank + 1, {2}};
		for (int i = 0; i < s.rank; i++)
			big.d[i + 1] = s.d[i];
		c->out = ir_broadcast(g, param(c, squeeze_some(s), ANY), big);
		return 1;
	}
	case OP_RESHAPE: {
		Shape s = rand_shape(1, 4);
		c->out =
		    ir_reshape(g, param(c, s, ANY), (Shape){2, {shape_numel(&s), 1}});
		return 1;
	}
	case OP_TRANSPOSE:
	case OP_SLICE:
	case OP_PAD:
		c->out = build_layout(c, op);
		return 1;
	case OP_MATMUL: {
		int ta = rt_rng_below(&rng, 2), tb = rt_rng_below(&rng, 2);
		int64_t M = r1(1, 4), K = r1(1, 4), N = r1(1, 4);
		Node *a = param(c, ta ? (Shape){2, {K, M}} : (Shape){2, {M, K}}, ANY);
		Node *b = param(c, tb ? (Shape){2, {N, K}} : (Shape){2, {K, N}}, ANY);
		c->out = ir_matmul(g, a, b, ta, tb);
		return 1;
	}
	case OP_LOGSOFTMAX:
		c->out = ir_logsoftmax(g, param(c, rand_shape(1, 4), ANY));
		return 1;
	default:
		c->out = build_nn(c, op);
		return c->out != NULL;
	}
}

static double draw(Domain d)
{
	double v = urand(-1, 1);
	if (d == POSITIVE)
		return urand(0.5, 2);
	if (d == AWAY0)
		return (v < 0 ? -1 : 1) * urand(0.2, 1.5);
	return v;
}

/* loss = sum(out * R), R a random io slot; the op's output is also written to an io
 * slot by FN_FORWARD, so the JIT's forward values can be checked too. */
static Node *make_loss(Case *c)
{
	Graph *g = c->g;
	int io = ir_add_io(g, "R", RT_IO_INPUT, DT_F32, c->out->sh, (SrcLoc){0});
	int64_t n = shape_numel(&c->out->sh);
	c->io[io] = malloc((size_t)(n + 1) * sizeof(double));
	for (int64_t i = 0; i < n; i++)
		c->io[io][i] = urand(-1, 1);
	int y = ir_add_io(g, "Y", RT_IO_OUTPUT, DT_F32, c->out->sh, (SrcLoc){0});
	ir_fn_out(g, FN_FORWARD, c->out, DEST_IO, y);
	return ir_sum_all(g, ir_mul(g, c->out, ir_input(g, io)));
}

static double eval_scalar(Graph *g, Node *n, const EvalEnv *env)
{
	double *v = eval_node(g, n, env);
	double r = v[0];
	free(v);
	return r;
}

static int close_enough(double a, double b, double tol)
{
	return fabs(a - b) <= tol * (1 + fabs(b));
}

/* The graph's FN_FORWARD and FN_GRAD through the JIT in float32, against the float64
 * interpreter's values. */
static void check_f32(Case *c, const double *params, double *const *want,
                      const char *opname)
{
	Graph *g = c->g;
	int64_t nwork = 0;
	rt_fn fns[FN_COUNT];
	Jit *j = jit_graph(g, &(CodegenOpts){.opt_level = 2}, fns, &nwork);
	CU_ASSERT_FATAL(fns[FN_GRAD] && fns[FN_FORWARD]);
	float *p = rt_alloc(g->param_floats * 4 + 64),
	      *gr = rt_alloc(g->param_floats * 4 + 64);
	float *w = rt_alloc(nwork * 4 + 64);
	void *bufs[RT_IO0 + 8] = {p, gr, NULL, w, NULL};
	for (int64_t i = 0; i < g->param_floats; i++)
		p[i] = (float)params[i];
	for (int k = 0; k < g->nios; k++) {
		int64_t n = shape_numel(&g->ios[k].sh);
		bufs[RT_IO0 + k] = rt_alloc((size_t)n * 4 + 64);
		for (int64_t i = 0; c->io[k] && i < n; i++)
			if (g->ios[k].dt == DT_I32)
				((int32_t *)bufs[RT_IO0 + k])[i] = (int32_t)c->io[k][i];
			else
				((float *)bufs[RT_IO0 + k])[i] = (float)c->io[k][i];
	}
	fns[FN_GRAD](bufs);
	fns[FN_FORWARD](bufs);
	const double *ios[8];
	for (int k = 0; k < 8; k++)
		ios[k] = c->io[k];
	EvalEnv env = {params, NULL, NULL, NULL, ios, NULL, 0};
	double *y = eval_node(g, c->out, &env);
	float *yj = bufs[RT_IO0 + g->nios - 2];
	for (int64_t i = 0; i < shape_numel(&c->out->sh); i++)
		if (!close_enough(yj[i], y[i], 1e-4)) {
			fprintf(stderr, "\n%s f32 forward [%lld]: jit %g, float64 %g\n",
			        opname, (long long)i, yj[i], y[i]);
			CU_FAIL("float32 JIT forward differs from float64");
			break;
		}
	for (int k = 0; k < g->nparams; k++)
		for (int64_t i = 0; i < shape_numel(&g->params[k].sh); i++)
			if (!close_enough(gr[g->params[k].off + i], want[k][i], 1e-3)) {
				fprintf(stderr,
				        "\n%s f32: param %d[%lld]: jit %g, float64 %g\n",
				        opname, k, (long long)i, gr[g->params[k].off + i],
				        want[k][i]);
				CU_FAIL("float32 JIT gradient differs from float64");
				k = g->nparams;
				break;
			}
	free(y);
	for (int k = 0; k < g->nios; k++)
		rt_free(bufs[RT_IO0 + k]);
	rt_free(p), rt_free(gr), rt_free(w);
	jit_free(j);
}

/* Central differences of the loss for every element of parameter k, against want. */
static void check_fd(Case *c, Node *loss, double *params, const EvalEnv *env, int k,
                     const double *want, Op op)
{
	const Tensor *t = &c->g->params[k];
	for (int64_t i = 0; i < shape_numel(&t->sh); i++) {
		double *x = &params[t->off + i], x0 = *x, h = 1e-6;
		*x = x0 + h;
		double lp = eval_scalar(c->g, loss, env);
		*x = x0 - h;
		double lm = eval_scalar(c->g, loss, env);
		*x = x0;
		/* ops that cut the gradient on purpose must give exactly 0 */
		double fd = opinfo[op].flags & OPF_CUT ? 0 : (lp - lm) / (2 * h);
		if (!close_enough(want[i], fd, 1e-6)) {
			fprintf(stderr,
			        "\n%s: param %d[%lld]: rule %.10g, finite differences "
			        "%.10g\n",
			        opinfo[op].name, k, (long long)i, want[i], fd);
			CU_FAIL("gradient rule differs from finite differences");
			return;
		}
	}
}

/* One random instance of op: float64 finite differences, then the float32 JIT. */
static void check_op(Op op)
{
	Arena *A = arena_new();
	Diags d = {0};
	Case c = {ir_new(A, &d), 0, {0}, {0}, NULL};
	if (!build(&c, op)) {
		fprintf(stderr, "\nno gradient test case for op '%s'\n", opinfo[op].name);
		CU_FAIL("an op row has no gradient test case");
		goto done;
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(c.out);
	double *params = calloc(c.g->param_floats + 1, sizeof *params);
	Node *loss = make_loss(&c);
	for (int k = 0; k < c.g->nparams; k++)
		for (int64_t i = 0; i < shape_numel(&c.g->params[k].sh); i++)
			params[c.g->params[k].off + i] = draw(c.dom[k]);
	Node *wrt[MAXIN], *grads[MAXIN];
	for (int k = 0; k < c.g->nparams; k++)
		wrt[k] = ir_param(c.g, k);
	CU_ASSERT_FATAL(ad_backward(c.g, loss, wrt, c.g->nparams, grads) == 0);
	const double *ios[8];
	for (int k = 0; k < 8; k++)
		ios[k] = c.io[k];
	EvalEnv env = {params, NULL, NULL, NULL, ios, NULL, 0};
	double *want[MAXIN];
	int lio =
	    ir_add_io(c.g, "loss", RT_IO_OUTPUT, DT_F32, (Shape){0, {0}}, (SrcLoc){0});
	ir_fn_out(c.g, FN_GRAD, loss, DEST_IO, lio);
	for (int k = 0; k < c.g->nparams; k++) {
		Node *gk = grads[k] ? grads[k] : ir_const(c.g, 0, c.g->params[k].sh);
		ir_fn_out(c.g, FN_GRAD, gk, DEST_GRAD, k);
		want[k] = eval_node(c.g, gk, &env);
		check_fd(&c, loss, params, &env, k, want[k], op);
	}
	check_f32(&c, params, want, opinfo[op].name);
	for (int k = 0; k < c.g->nparams; k++)
		free(want[k]);
	free(params);
done:
	for (int k = 0; k < 8; k++)
		free(c.io[k]);
	CU_ASSERT_EQUAL(d.nerr, 0);
	diags_free(&d);
	arena_free(A);
}

static void test_grad_every_op_matches_finite_differences(void)
{
	rt_rng_seed(&rng, 12345);
	for (int op = 0; op < OP_COUNT; op++) {
		if (opinfo[op].flags & (OPF_LEAF | OPF_NODIFF))
			continue;
		for (int trial = 0; trial < 12; trial++)
			check_op(op);
	}
}

/* A parameter that reaches the loss only through an op without a derivative is an
 * error at that op's YAML location, naming the op and the parameter. */
static void test_grad_rejects_path_through_nondifferentiable_op(void)
{
	for (int op = 0; op < OP_COUNT; op++) {
		if (!(opinfo[op].flags & OPF_NODIFF))
			continue;
		if (op == OP_ONEHOT)
			continue; /* takes integers: a parameter cannot reach it */
		Arena *A = arena_new();
		Diags d = {0};
		Graph *g = ir_new(A, &d);
		g->cur_loc = (SrcLoc){"m.yaml", 7, 3};
		Node *p = ir_param(g, ir_add_param(g, "fc1.weight", (Shape){1, {3}},
		                                   RT_INIT_ZEROS, 1, 1, g->cur_loc));
		Node *x = ir_unary(g, op, p);
		Node *loss = ir_sum_all(g, x), *grad;
		CU_ASSERT_EQUAL(ad_backward(g, loss, &p, 1, &grad), -1);
		CU_ASSERT_EQUAL_FATAL(d.n, 1);
		CU_ASSERT_EQUAL(d.v[0].loc.line, 7);
		CU_ASSERT_PTR_NOT_NULL(strstr(d.v[0].msg, opinfo[op].name));
		CU_ASSERT_PTR_NOT_NULL(strstr(d.v[0].msg, "fc1.weight"));
		diags_free(&d);
		arena_free(A);
	}
}

/* The backward graph is ordinary IR: differentiating it again gives the Hessian.
 * f(x) = sum(x^3): H = diag(6x), so d/dx sum(grad * v) = 6 x v. */
static void test_grad_backward_graph_differentiates_again(void)
{
	Arena *A = arena_new();
	Diags d = {0};
	Graph *g = ir_new(A, &d);
	Node *x = ir_param(
	    g, ir_add_param(g, "x", (Shape){1, {4}}, RT_INIT_ZEROS, 1, 1, (SrcLoc){0}));
	Node *f = ir_sum_all(g, ir_mul(g, ir_mul(g, x, x), x)), *gx, *hv;
	CU_ASSERT_FATAL(ad_backward(g, f, &x, 1, &gx) == 0);
	double v[4] = {1, -2, 0.5, 3}, xs[16] = {0.3, -1.2, 2.0, 0.7};
	int io = ir_add_io(g, "v", RT_IO_INPUT, DT_F32, x->sh, (SrcLoc){0});
	Node *gv = ir_sum_all(g, ir_mul(g, gx, ir_input(g, io)));
	CU_ASSERT_FATAL(ad_backward(g, gv, &x, 1, &hv) == 0);
	const double *ios[1] = {v};
	EvalEnv env = {xs, NULL, NULL, NULL, ios, NULL, 0};
	double *r = eval_node(g, hv, &env);
	for (int i = 0; i < 4; i++)
		CU_ASSERT_DOUBLE_EQUAL(r[i], 6 * xs[i] * v[i], 1e-12);
	free(r);
	diags_free(&d);
	arena_free(A);
}

void suite_grad(void)
{
	static CU_TestInfo tests[] = {
	    {"test_grad_every_op_matches_finite_differences",
	     test_grad_every_op_matches_finite_differences},
	    {"test_grad_rejects_path_through_nondifferentiable_op",
	     test_grad_rejects_path_through_nondifferentiable_op},
	    {"test_grad_backward_graph_differentiates_again",
	     test_grad_backward_graph_differentiates_again},
	    CU_TEST_INFO_NULL,
	};
	add_suite("grad", tests);
}
