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

EVAL(input) { copy_leaf(n, out, e->env->io[n->a[0]]); }
EVAL(param) { copy_leaf(n, out, e->env->params + e->g->params[n->a[0]].off); }
EVAL(state) { copy_leaf(n, out, e->env->states + e->g->states[n->a[0]].off); }
EVAL(gradbuf) { copy_leaf(n, out, e->env->grads + e->g->params[n->a[0]].off); }
EVAL(hyper) { out[0] = e->env->hyper[n->a[0]]; }

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
EW1(abs, fabs(a))
EW1(sin, sin(a))
EW1(cos, cos(a))
EW1(relu, a < 0 ? 0 : a) /* NaN stays NaN, as in PyTorch */
EW1(sigmoid, 1 / (1 + exp(-a)))
EW1(softplus, fmax(a, 0) + log1p(exp(-fabs(a))))
EW1(erf, erf(a))
EW1(tanh, tanh(a))
EW1(step, a > 0 ? 1 : 0)
EW1(stopgrad, a)

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
EW2(mul0, a == 0 ? 0 : a * b)
EW2(pow, pow(a, b))
EW2(max, a >= b ? a : b)
EW2(min, b >= a ? a : b)
EW2(gt, a > b)
EW2(ge, a >= b)
EW2(eq, a == b)

EVAL(select)
{
	for (int64_t i = 0, k = shape_numel(&n->sh); i < k; i++) {
		int pick = IN(0)[bcast_off(&n->in[0]->sh, &n->sh, i)] != 0 ? 1 : 2;
		out[i] = IN(pick)[bcast_off(&n->in[pick]->sh, &n->sh, i)];
	}
}

/* Every input element folds into the output element it reduces to. */
static void reduce(Ev *e, Node *n, double *out, int max)
{
	const Shape *in = &n->in[0]->sh;
	for (int64_t i = 0, k = shape_numel(&n->sh); i < k; i++)
		out[i] = max ? -INFINITY : 0;
	for (int64_t i = 0, k = shape_numel(in); i < k; i++) {
		int64_t o = 0, rest = i, stride = 1;
		for (int d = in->rank - 1; d >= 0; d--) {
			int64_t c = rest % in->d[d];
			rest /= in->d[d];
			if (!(n->a[0] >> d & 1))
				o += c * stride;
			stride *= n->sh.d[d];
		}
		double v = IN(0)[i];
		out[o] = max ? fmax(out[o], v) : out[o] + v;
	}
}

EVAL(sum) { reduce(e, n, out, 0); }
EVAL(rmax) { reduce(e, n, out, 1); }

EVAL(broadcast)
{
	for (int64_t i = 0, k = shape_numel(&n->sh); i < k; i++)
		out[i] = IN(0)[bcast_off(&n->in[0]->sh, &n->sh, i)];
}

EVAL(reshape) { memcpy(out, IN(0), (size_t)shape_numel(&n->sh) * sizeof *out); }

/* Row-major strides of a shape. */
static void strides(const Shape *s, int64_t *st)
{
	int64_t k = 1;
	for (int i = s->rank - 1; i >= 0; i--)
		st[i] = k, k *= s->d[i];
}

/* Flat index i of shape s as coordinates. */
static void coords(const Shape *s, int64_t i, int64_t *c)
{
	for (int d = s->rank - 1; d >= 0; d--)
		c[d] = i % s->d[d], i /= s->d[d];
}

EVAL(transpose)
{
	int64_t st[MAXRANK], c[MAXRANK];
	strides(&n->in[0]->sh, st);
	for (int64_t i = 0, k = shape_numel(&n->sh); i < k; i++) {
		coords(&n->sh, i, c);
		int64_t off = 0;
		for (int d = 0; d < n->sh.rank; d++)
			off += c[d] * st[n->a[d]];
		out[i] = IN(0)[off];
	}
}

/* out (small) = in (big) at offsets a[], or the reverse for pad */
static void window(Ev *e, Node *n, double *out, int pad)
{
	const Shape *big = pad ? &n->sh : &n->in[0]->sh,
	            *small = pad ? &n->in[0]->sh : &n->sh;
	int64_t st[MAXRANK], c[MAXRANK];
	strides(big, st);
	if (pad)
		memset(out, 0, (size_t)shape_numel(big) * sizeof *out);
	for (int64_t i = 0, k = shape_numel(small); i < k; i++) {
		coords(small, i, c);
		int64_t off = 0;
		for (int d = 0; d < small->rank; d++)
			off += (c[d] + n->a[d]) * st[d];
		if (pad)
			out[off] = IN(0)[i];
		else
			out[i] = IN(0)[off];
	}
}

EVAL(slice) { window(e, n, out, 0); }
EVAL(pad) { window(e, n, out, 1); }

/* Offset of element (b, c, h, w) of an NCHW shape. */
static int64_t at4(const Shape *s, int64_t b, int64_t c, int64_t h, int64_t w)
{
	return ((b * s->d[1] + c) * s->d[2] + h) * s->d[3] + w;
}

/* The convolution loop nest, once for all three ops: for every output position and
 * every kernel tap inside the input, combine the x (input), w (weight) and y (output)
 * elements by mode: 0 y += x w, 1 x += y w, 2 w += x y. */
static void conv_loops(const Node *n, const Shape *xs, const Shape *ws, const Shape *ys,
                       double *x, double *w, double *y, int mode)
{
	ConvP p = convp_of(n);
	int64_t Cg = ws->d[1], Og = ws->d[0] / p.groups;
	for (int64_t b = 0; b < ys->d[0]; b++)
		for (int64_t o = 0; o < ws->d[0]; o++)
			for (int64_t c = 0; c < Cg; c++)
				for (int64_t kh = 0; kh < ws->d[2]; kh++)
					for (int64_t kw = 0; kw < ws->d[3]; kw++)
						for (int64_t oh = 0; oh < ys->d[2]; oh++)
							for (int64_t ow = 0;
							     ow < ys->d[3]; ow++) {
								int64_t ih =
								    oh * p.stride[0] -
								    p.pad[0] +
								    kh * p.dil[0];
								int64_t iw =
								    ow * p.stride[1] -
								    p.pad[2] +
								    kw * p.dil[1];
								if (ih < 0 ||
								    ih >= xs->d[2] ||
								    iw < 0 ||
								    iw >= xs->d[3])
									continue;
								double *xp = &x[at4(
								    xs, b,
								    o / Og * Cg + c, ih,
								    iw)];
								double *wp = &w[at4(
								    ws, o, c, kh, kw)];
								double *yp = &y[at4(
								    ys, b, o, oh, ow)];
								if (mode == 0)
									*yp += *xp * *wp;
								else if (mode == 1)
									*xp += *yp * *wp;
								else
									*wp += *xp * *yp;
							}
}

static void zero(Node *n, double *out)
{
	memset(out, 0, (size_t)shape_numel(&n->sh) * sizeof *out);
}

EVAL(conv2d)
{
	zero(n, out);
	conv_loops(n, &n->in[0]->sh, &n->in[1]->sh, &n->sh, IN(0), IN(1), out, 0);
}

EVAL(conv2d_bwd_data)
{
	zero(n, out);
	conv_loops(n, &n->sh, &n->in[1]->sh, &n->in[0]->sh, out, IN(1), IN(0), 1);
}

EVAL(conv2d_bwd_filter)
{
	zero(n, out);
	conv_loops(n, &n->in[0]->sh, &n->sh, &n->in[1]->sh, IN(0), out, IN(1), 2);
}

/* The flat input index of the maximum on sel of pooling window (b, c, oh, ow), or -1
 * if the window holds only padding; the first maximum wins ties. */
static int64_t window_max(const Node *n, const Shape *xs, const double *sel, int64_t b,
                          int64_t c, int64_t oh, int64_t ow)
{
	PoolP p = poolp_of(n);
	int64_t best = -1;
	for (int64_t kh = 0; kh < p.k[0]; kh++)
		for (int64_t kw = 0; kw < p.k[1]; kw++) {
			int64_t ih = oh * p.stride[0] - p.pad[0] + kh;
			int64_t iw = ow * p.stride[1] - p.pad[2] + kw;
			if (ih < 0 || ih >= xs->d[2] || iw < 0 || iw >= xs->d[3])
				continue;
			int64_t i = at4(xs, b, c, ih, iw);
			if (best < 0 || sel[i] > sel[best])
				best = i;
		}
	return best;
}

/* gather: out[o] = v[argmax]; scatter: out[argmax] += v[o] */
static void poolmax(Ev *e, Node *n, double *out, int scatter)
{
	const Shape *xs = &n->in[0]->sh, *ys = scatter ? &n->in[1]->sh : &n->sh;
	if (scatter)
		zero(n, out);
	int64_t o = 0;
	for (int64_t b = 0; b < ys->d[0]; b++)
		for (int64_t c = 0; c < ys->d[1]; c++)
			for (int64_t oh = 0; oh < ys->d[2]; oh++)
				for (int64_t ow = 0; ow < ys->d[3]; ow++, o++) {
					int64_t i =
					    window_max(n, xs, IN(0), b, c, oh, ow);
					if (scatter && i >= 0)
						out[i] += IN(1)[o];
					else if (!scatter)
						out[o] = i >= 0 ? IN(1)[i] : 0;
				}
}

EVAL(poolmax_gather) { poolmax(e, n, out, 0); }
EVAL(poolmax_scatter) { poolmax(e, n, out, 1); }

/* forward: y = mean of the window of x; backward: x += y / window size over it */
static void avgpool(const Node *n, const Shape *xs, const Shape *ys, double *x, double *y,
                    int bwd)
{
	PoolP p = poolp_of(n);
	double scale = 1.0 / (double)(p.k[0] * p.k[1]);
	int64_t o = 0;
	for (int64_t b = 0; b < ys->d[0]; b++)
		for (int64_t c = 0; c < ys->d[1]; c++)
			for (int64_t oh = 0; oh < ys->d[2]; oh++)
				for (int64_t ow = 0; ow < ys->d[3]; ow++, o++)
					for (int64_t kh = 0; kh < p.k[0]; kh++)
						for (int64_t kw = 0; kw < p.k[1]; kw++) {
							int64_t ih = oh * p.stride[0] -
							             p.pad[0] + kh;
							int64_t iw = ow * p.stride[1] -
							             p.pad[2] + kw;
							if (ih < 0 || ih >= xs->d[2] ||
							    iw < 0 || iw >= xs->d[3])
								continue;
							if (bwd)
								x[at4(xs, b, c, ih,
								      iw)] +=
								    y[o] * scale;
							else
								y[o] += x[at4(xs, b, c,
								              ih, iw)] *
								        scale;
						}
}

EVAL(avgpool)
{
	zero(n, out);
	avgpool(n, &n->in[0]->sh, &n->sh, IN(0), out, 0);
}

EVAL(avgpool_bwd)
{
	zero(n, out);
	avgpool(n, &n->sh, &n->in[0]->sh, out, IN(0), 1);
}

/* Rows of the table; an index out of range gives a row of zeros. */
EVAL(gather)
{
	const Shape *t = &n->in[0]->sh;
	int64_t rows = shape_numel(&n->in[1]->sh), row = shape_numel(t) / t->d[0];
	for (int64_t r = 0; r < rows; r++) {
		int64_t k = (int64_t)IN(1)[r];
		for (int64_t j = 0; j < row; j++)
			out[r * row + j] = k >= 0 && k < t->d[0] ? IN(0)[k * row + j] : 0;
	}
}

EVAL(scatter_add)
{
	int64_t rows = shape_numel(&n->in[0]->sh), row = shape_numel(&n->sh) / n->sh.d[0];
	zero(n, out);
	for (int64_t r = 0; r < rows; r++) {
		int64_t k = (int64_t)IN(0)[r];
		if (k >= 0 && k < n->sh.d[0])
			for (int64_t j = 0; j < row; j++)
				out[k * row + j] += IN(1)[r * row + j];
	}
}

EVAL(argmax)
{
	int64_t C = n->in[0]->sh.d[n->in[0]->sh.rank - 1], rows = shape_numel(&n->sh);
	for (int64_t r = 0; r < rows; r++) {
		int64_t best = 0;
		for (int64_t c = 1; c < C; c++)
			if (IN(0)[r * C + c] > IN(0)[r * C + best])
				best = c;
		out[r] = (double)best;
	}
}

EVAL(dropmask)
{
	uint64_t seed = (uint64_t)IN(0)[0], counter = (uint64_t)IN(1)[0];
	uint32_t thresh = dropout_threshold(n->f);
	for (int64_t i = 0, k = shape_numel(&n->sh); i < k; i++)
		out[i] = dropout_hash(seed, counter, (uint64_t)i) >= thresh
		             ? 1 / (1 - n->f)
		             : 0;
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
	size_t bytes =
	    (size_t)(shape_numel(&n->sh) ? shape_numel(&n->sh) : 1) * sizeof(double);
	double **held = n->op == OP_STOPGRAD ? e->env->held : NULL, *out = malloc(bytes);
	if (!out)
		die("out of memory");
	if (held && held[n->id] && !e->env->hold) {
		memcpy(out, held[n->id], bytes);
		e->val[n->id] = out;
		return;
	}
	for (int i = 0; i < n->nin; i++)
		eval_rec(e, n->in[i]);
	eval_fns[n->op](e, n, out);
	e->val[n->id] = out;
	if (held && e->env->hold && !held[n->id]) {
		if (!(held[n->id] = malloc(bytes)))
			die("out of memory");
		memcpy(held[n->id], out, bytes);
	}
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
