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

typedef struct Case {
	Graph *g;
	int np;
	Domain dom[MAXIN];
	Node *out; /* op under test */
} Case;

static Node *param(Case *c, Shape s, Domain dom)
{
	char name[16];
	snprintf(name, sizeof name, "p%d", c->np);
	c->dom[c->np++] = dom;
	return ir_param(c->g,
	                ir_add_param(c->g, name, s, RT_INIT_ZEROS, 1, 1, (SrcLoc){0}));
}

/* Builds the op under test on fresh parameters; 0 if the test knows no case for op. */
static int build(Case *c, Op op)
{
	Graph *g = c->g;
	int fl = opinfo[op].flags;
	if (fl & OPF_ELEMWISE && opinfo[op].nin == 1) {
		Domain d = op == OP_LOG || op == OP_SQRT ? POSITIVE
		           : fl & OPF_KINK               ? AWAY0
		                                         : ANY;
		c->out = ir_unary(g, op, param(c, rand_shape(0, 4), d));
		return 1;
	}
	if (fl & OPF_ELEMWISE) {
		Shape s = rand_shape(0, 4), t = squeeze_some(s);
		int swap = rt_rng_below(&rng, 2) && op != OP_DIV;
		Node *a = param(c, swap ? t : s, ANY),
		     *b = param(c, swap ? s : t, op == OP_DIV ? AWAY0 : ANY);
		c->out = ir_binary(g, op, a, b);
		return 1;
	}
	int64_t attrs[4] = {0};
	Node *x;
	switch (op) {
	case OP_SUM:
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
		x = param(c, s, ANY);
		c->out = ir_reshape(g, x, (Shape){2, {shape_numel(&s), 1}});
		return 1;
	}
	case OP_MATMUL: {
		int ta = rt_rng_below(&rng, 2), tb = rt_rng_below(&rng, 2);
		int64_t M = 1 + rt_rng_below(&rng, 4), K = 1 + rt_rng_below(&rng, 4),
		        N = 1 + rt_rng_below(&rng, 4);
		Node *a = param(c, ta ? (Shape){2, {K, M}} : (Shape){2, {M, K}}, ANY);
		Node *b = param(c, tb ? (Shape){2, {N, K}} : (Shape){2, {K, N}}, ANY);
		c->out = ir_matmul(g, a, b, ta, tb);
		return 1;
	}
	case OP_LOGSOFTMAX:
		c->out = ir_logsoftmax(g, param(c, rand_shape(1, 4), ANY));
		return 1;
	default:
		return 0;
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

/* loss = sum(out * R): R is io slot 0. */
static Node *make_loss(Case *c, double **R)
{
	Graph *g = c->g;
	int io = ir_add_io(g, "R", RT_IO_INPUT, DT_F32, c->out->sh, (SrcLoc){0});
	int64_t n = shape_numel(&c->out->sh);
	*R = malloc((size_t)n * sizeof **R);
	for (int64_t i = 0; i < n; i++)
		(*R)[i] = urand(-1, 1);
	return ir_sum_all(g, ir_mul(g, c->out, ir_input(g, io)));
}

static double eval_scalar(Graph *g, Node *n, const EvalEnv *env)
{
	double *v = eval_node(g, n, env);
	double r = v[0];
	free(v);
	return r;
}

/* Runs the graph's FN_GRAD through the JIT in float32 and compares with want. */
static void check_f32(Graph *g, const double *params, const double *R,
                      double *const *want, const char *opname)
{
	Diags d = {0};
	CodegenOpts o = {2, 0};
	ObjCode obj;
	int64_t nwork = 0;
	rt_fn fns[FN_COUNT];
	CU_ASSERT_FATAL(cg_compile(g, &o, &obj, &nwork, NULL) == 0);
	Jit *j = jit_load(&d, &obj, fns);
	objcode_free(&obj);
	CU_ASSERT_FATAL(j && fns[FN_GRAD]);
	int64_t nr = shape_numel(&g->ios[0].sh);
	float *p = rt_alloc(g->param_floats * 4 + 64),
	      *gr = rt_alloc(g->param_floats * 4 + 64);
	float *w = rt_alloc(nwork * 4 + 64), *r = rt_alloc(nr * 4 + 64), loss = 0;
	for (int64_t i = 0; i < g->param_floats; i++)
		p[i] = (float)params[i];
	for (int64_t i = 0; i < nr; i++)
		r[i] = (float)R[i];
	void *bufs[RT_IO0 + 2] = {p, gr, NULL, w, NULL, r, &loss};
	fns[FN_GRAD](bufs);
	for (int k = 0; k < g->nparams; k++)
		for (int64_t i = 0; i < shape_numel(&g->params[k].sh); i++) {
			double a = gr[g->params[k].off + i], b = want[k][i];
			if (fabs(a - b) > 1e-3 * (1 + fabs(b))) {
				fprintf(stderr,
				        "\n%s f32: param %d[%lld]: jit %g, float64 %g\n",
				        opname, k, (long long)i, a, b);
				CU_FAIL("float32 JIT gradient differs from float64");
				k = g->nparams;
				break;
			}
		}
	rt_free(p), rt_free(gr), rt_free(w), rt_free(r);
	jit_free(j);
	diags_free(&d);
}

/* One random instance of op: float64 finite differences, then the float32 JIT. */
static void check_op(Op op)
{
	Arena *A = arena_new();
	Diags d = {0};
	Case c = {ir_new(A, &d), 0, {0}, NULL};
	if (!build(&c, op)) {
		fprintf(stderr, "\nno gradient test case for op '%s'\n", opinfo[op].name);
		CU_FAIL("an op row has no gradient test case");
		goto done;
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(c.out);
	double *R, *params = calloc(c.g->param_floats + 1, sizeof *params);
	Node *loss = make_loss(&c, &R);
	for (int k = 0; k < c.g->nparams; k++)
		for (int64_t i = 0; i < shape_numel(&c.g->params[k].sh); i++)
			params[c.g->params[k].off + i] = draw(c.dom[k]);
	Node *wrt[MAXIN], *grads[MAXIN];
	for (int k = 0; k < c.g->nparams; k++)
		wrt[k] = ir_param(c.g, k);
	CU_ASSERT_FATAL(ad_backward(c.g, loss, wrt, c.g->nparams, grads) == 0);
	const double *io[1] = {R};
	EvalEnv env = {params, NULL, NULL, NULL, io};
	double *want[MAXIN];
	ir_fn_out(
	    c.g, FN_GRAD, loss, DEST_IO,
	    ir_add_io(c.g, "loss", RT_IO_OUTPUT, DT_F32, (Shape){0, {0}}, (SrcLoc){0}));
	for (int k = 0; k < c.g->nparams; k++) {
		int64_t n = shape_numel(&c.g->params[k].sh);
		Node *gk = grads[k] ? grads[k] : ir_const(c.g, 0, c.g->params[k].sh);
		ir_fn_out(c.g, FN_GRAD, gk, DEST_GRAD, k);
		want[k] = eval_node(c.g, gk, &env);
		for (int64_t i = 0; i < n; i++) {
			double *x = &params[c.g->params[k].off + i], x0 = *x, h = 1e-6;
			*x = x0 + h;
			double lp = eval_scalar(c.g, loss, &env);
			*x = x0 - h;
			double lm = eval_scalar(c.g, loss, &env);
			*x = x0;
			double fd = (lp - lm) / (2 * h);
			if (fabs(fd - want[k][i]) > 1e-6 * (1 + fabs(fd))) {
				fprintf(stderr,
				        "\n%s: param %d[%lld]: rule %.10g, finite "
				        "differences %.10g\n",
				        opinfo[op].name, k, (long long)i, want[k][i], fd);
				CU_FAIL("gradient rule differs from finite differences");
				break;
			}
		}
	}
	check_f32(c.g, params, R, want, opinfo[op].name);
	for (int k = 0; k < c.g->nparams; k++)
		free(want[k]);
	free(R);
	free(params);
done:
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
	EvalEnv env = {xs, NULL, NULL, NULL, ios};
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
