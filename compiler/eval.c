/* The reference interpreter: evaluates IR in float64, one plain loop nest per op,
 * eval_<name> expanded into a table from ops.h.
 *
 * It is deliberately simple and slow: it exists to check everything else. The gradient
 * tests compare the backward graph it evaluates with central finite differences of the
 * forward graph, and the differential tests compare JIT-compiled code against it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dc.h"

typedef struct Ev {
	Graph *g;
	const EvalEnv *env;
	double **val; /* by node id */
} Ev;

#define EVAL(name) static void eval_##name(Ev *e, Node *n, double *out)
#define IN(i) e->val[n->in[i]->id]

/* Offset into a tensor of shape `in` for flat index i of the broadcast shape `out`. */
static int64_t bcast_off(const Shape *in, const Shape *out, int64_t i)
{
	int64_t off = 0, stride = 1;
	for (int k = out->rank - 1, j = in->rank - 1; k >= 0; k--, j--) {
		int64_t c = i % out->d[k];
		i /= out->d[k];
		if (j >= 0) {
			if (in->d[j] != 1)
				off += c * stride;
			stride *= in->d[j];
		}
	}
	return off;
}

static void copy_leaf(Node *n, double *out, const double *src)
{
	check(src);
	memcpy(out, src, (size_t)shape_numel(&n->sh) * sizeof *out);
}

EVAL(input)
{
	copy_leaf(n, out, e->env->io[n->a[0]]);
}
EVAL(param)
{
	copy_leaf(n, out, e->env->params + e->g->params[n->a[0]].off);
}
EVAL(state)
{
	copy_leaf(n, out, e->env->states + e->g->states[n->a[0]].off);
}
EVAL(gradbuf)
{
	copy_leaf(n, out, e->env->grads + e->g->params[n->a[0]].off);
}
EVAL(hyper)
{
	out[0] = e->env->hyper[n->a[0]];
}

EVAL(const)
{
	(void)e;
	for (int64_t i = 0, k = shape_numel(&n->sh); i < k; i++)
		out[i] = n->f;
}

#define EW1(name, expr)                                                                  \
	EVAL(name)                                                                       \
	{                                                                                \
		const double *x = IN(0);                                                 \
		for (int64_t i = 0, k = shape_numel(&n->sh); i < k; i++) {               \
			double a = x[i];                                                 \
			out[i] = (expr);                                                 \
		}                                                                        \
	}
EW1(neg, -a)
EW1(exp, exp(a))
EW1(log, log(a))
EW1(sqrt, sqrt(a))
EW1(relu, a > 0 ? a : 0)
EW1(sigmoid, 1 / (1 + exp(-a)))
EW1(tanh, tanh(a))
EW1(step, a > 0 ? 1 : 0)

#define EW2(name, expr)                                                                  \
	EVAL(name)                                                                       \
	{                                                                                \
		const Shape *sa = &n->in[0]->sh, *sb = &n->in[1]->sh;                    \
		for (int64_t i = 0, k = shape_numel(&n->sh); i < k; i++) {               \
			double a = IN(0)[bcast_off(sa, &n->sh, i)];                      \
			double b = IN(1)[bcast_off(sb, &n->sh, i)];                      \
			out[i] = (expr);                                                 \
		}                                                                        \
	}
EW2(add, a + b)
EW2(sub, a - b)
EW2(mul, a *b)
EW2(div, a / b)

EVAL(sum)
{
	const Shape *in = &n->in[0]->sh;
	memset(out, 0, (size_t)shape_numel(&n->sh) * sizeof *out);
	/* every input element adds into the output element it reduces to */
	for (int64_t i = 0, k = shape_numel(in); i < k; i++) {
		int64_t o = 0, rest = i, stride = 1;
		for (int d = in->rank - 1; d >= 0; d--) {
			int64_t c = rest % in->d[d];
			rest /= in->d[d];
			if (!(n->a[0] >> d & 1))
				o += c * stride;
			stride *= n->sh.d[d];
		}
		out[o] += IN(0)[i];
	}
}

EVAL(broadcast)
{
	for (int64_t i = 0, k = shape_numel(&n->sh); i < k; i++)
		out[i] = IN(0)[bcast_off(&n->in[0]->sh, &n->sh, i)];
}

EVAL(reshape)
{
	memcpy(out, IN(0), (size_t)shape_numel(&n->sh) * sizeof *out);
}

EVAL(matmul)
{
	const Shape *sa = &n->in[0]->sh, *sb = &n->in[1]->sh;
	int ta = n->a[0], tb = n->a[1];
	int64_t M = n->sh.d[0], N = n->sh.d[1], K = ta ? sa->d[0] : sa->d[1];
	const double *A = IN(0), *B = IN(1);
	for (int64_t i = 0; i < M; i++)
		for (int64_t j = 0; j < N; j++) {
			double s = 0;
			for (int64_t k = 0; k < K; k++)
				s += (ta ? A[k * sa->d[1] + i] : A[i * K + k]) *
				     (tb ? B[j * sb->d[1] + k] : B[k * N + j]);
			out[i * N + j] = s;
		}
}

EVAL(logsoftmax)
{
	int64_t C = n->sh.d[n->sh.rank - 1], rows = shape_numel(&n->sh) / C;
	for (int64_t r = 0; r < rows; r++) {
		const double *x = IN(0) + r * C;
		double m = -INFINITY, s = 0;
		for (int64_t c = 0; c < C; c++)
			m = fmax(m, x[c]);
		for (int64_t c = 0; c < C; c++)
			s += exp(x[c] - m);
		for (int64_t c = 0; c < C; c++)
			out[r * C + c] = x[c] - m - log(s);
	}
}

EVAL(onehot)
{
	int64_t C = n->a[0], rows = shape_numel(&n->sh) / C;
	for (int64_t r = 0; r < rows; r++)
		for (int64_t c = 0; c < C; c++)
			out[r * C + c] = (int64_t)IN(0)[r] == c;
}

static void (*const eval_fns[OP_COUNT])(Ev *, Node *, double *) = {
#define OP(E, name, nin, flags) [OP_##E] = eval_##name,
#include "ops.h"
#undef OP
};

static void eval_rec(Ev *e, Node *n)
{
	if (e->val[n->id])
		return;
	for (int i = 0; i < n->nin; i++)
		eval_rec(e, n->in[i]);
	double *out =
	    malloc((size_t)(shape_numel(&n->sh) ? shape_numel(&n->sh) : 1) * sizeof *out);
	if (!out)
		die("out of memory");
	eval_fns[n->op](e, n, out);
	e->val[n->id] = out;
}

double *eval_node(Graph *g, Node *node, const EvalEnv *env)
{
	Ev e = {g, env, calloc(g->n, sizeof(double *))};
	if (!e.val)
		die("out of memory");
	eval_rec(&e, node);
	double *res = e.val[node->id];
	for (int i = 0; i < g->n; i++)
		if (i != node->id)
			free(e.val[i]);
	free(e.val);
	return res;
}
