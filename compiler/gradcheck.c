/* descent gradcheck: the user's own model's compiled gradients against finite
 * differences.
 *
 * The model is compiled as for training and its grad function run once on a random
 * batch: inputs uniform in [0, 1), integer inputs (class labels, embedding indices)
 * below the smallest bound the graph puts on them, every row real. For each trainable
 * parameter p, a random unit direction u (seeded) turns the float32 gradient g into one
 * number, g.u, the directional derivative the code claims; the float64 reference
 * interpreter (eval.c) evaluates the same graph's training loss at p + h u and p - h u,
 * and the central difference (L+ - L-) / 2h is the directional derivative the math
 * says. The step h is 1e-4 times the parameter's norm (at least 1e-4), so it is small
 * against the parameter and large against float64 rounding. One direction per parameter
 * checks every element of its gradient at once, with the cost of two evaluations.
 *
 * The relative error is |g.u - fd| / max(|g.u|, |fd|, floor); float32 code on a healthy
 * model stays near 1e-5. The floor is 1e-3 of the largest |g.u| of the model (1e-6 at
 * least): a gradient that is 0 in exact arithmetic (a bias before a batch norm) comes
 * out of float32 sums as rounding noise, some 1e-7 of the terms that cancel, and is
 * no failure; a wrong one still is, unless it is off by less than 1e-6 of the
 * model's largest (at the default tolerance). Past the tolerance, the difference is taken
 * again with smaller steps (relu and max pooling make kinks that a step can cross); the
 * line says so when a smaller step was the one that agreed. A failure at a point where
 * some relu or abs input is itself on its kink says that too: no step agrees there. The
 * report has one line per parameter and the worst error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc.h"

/* A standard normal draw (Box-Muller), for directions uniform on the sphere. */
static double normal(rt_rng *r)
{
	double u1 = rt_rng_uniform(r), u2 = rt_rng_uniform(r);
	return sqrt(-2 * log(1 - u1)) * cos(2 * M_PI * u2);
}

/* The exclusive bound on an integer io slot's values (ir_index_limit); 2 if none. */
static int64_t int_bound(Graph *g, int io)
{
	int64_t limit = ir_index_limit(g, io);
	return limit > 0 ? limit : 2;
}

/* Random inputs into the session and their float64 copies for the interpreter. */
static void random_inputs(Graph *g, rt_session *s, rt_rng *rng, double **io)
{
	const rt_program *p = s->prog;
	for (int k = 0; k < p->nio; k++) {
		const rt_io *t = &p->io[k];
		if (t->kind != RT_IO_INPUT)
			continue;
		int64_t bound = t->dtype == RT_I32 ? int_bound(g, k) : 0;
		io[k] = malloc((size_t)t->numel * sizeof **io + 1);
		check(io[k]);
		for (int64_t i = 0; i < t->numel; i++) {
			if (t->dtype == RT_I32) {
				int32_t v = (int32_t)rt_rng_below(rng, (uint64_t)bound);
				((int32_t *)s->io[k])[i] = v;
				io[k][i] = v;
			} else {
				float v =
				    k == p->io_weight ? 1.0f : (float)rt_rng_uniform(rng);
				((float *)s->io[k])[i] = v;
				io[k][i] = v;
			}
		}
	}
}

static double *to_double(const float *v, int64_t n)
{
	double *d = malloc((size_t)n * sizeof *d + 1);
	check(d);
	for (int64_t i = 0; i < n; i++)
		d[i] = v[i];
	return d;
}

/* The training loss the grad function computes: the graph node the interpreter runs. */
static Node *loss_node(Graph *g)
{
	const Fn *f = &g->fns[FN_GRAD];
	for (int i = 0; i < f->nouts; i++)
		if (f->outs[i].kind == DEST_IO && f->outs[i].index == g->io_loss)
			return f->outs[i].node;
	die("the grad function has no loss output");
}

static double loss_at(Graph *g, Node *loss, const EvalEnv *env)
{
	double *v = eval_node(g, loss, env), l = v[0];
	free(v);
	return l;
}

/* Inputs of the model's own relu and abs nodes that sit on their kink at this point,
 * within float32 rounding of 0 (1e-6 of the tensor's largest). There the float32 code
 * and the float64 reference can take different sides, the derivative is one-sided, and
 * a central difference averages the two sides: no step size agrees. */
static int64_t at_kinks(Graph *g, const EvalEnv *env)
{
	int64_t count = 0;
	for (int i = 0; i < g->n; i++) {
		Node *n = g->nodes[i];
		if ((n->op != OP_RELU && n->op != OP_ABS) || n->rule)
			continue;
		int64_t m = shape_numel(&n->in[0]->sh);
		double *z = eval_node(g, n->in[0], env), big = 0;
		for (int64_t k = 0; k < m; k++)
			big = fmax(big, fabs(z[k]));
		for (int64_t k = 0; k < m; k++)
			count += fabs(z[k]) <= 1e-6 * big;
		free(z);
	}
	return count;
}

/* A random unit direction u for parameter t (malloc'd), and g.u. */
static double *direction(const float *grads, const Tensor *t, rt_rng *rng, double *gu)
{
	int64_t n = shape_numel(&t->sh);
	double *u = malloc((size_t)n * sizeof *u + 1), norm = 0;
	check(u);
	for (int64_t i = 0; i < n; i++) {
		u[i] = normal(rng);
		norm += u[i] * u[i];
	}
	norm = sqrt(norm);
	*gu = 0;
	for (int64_t i = 0; i < n; i++) {
		u[i] /= norm;
		*gu += (double)grads[t->off + i] * u[i];
	}
	return u;
}

/* One parameter: the central difference along u; returns the relative error of gu. */
static double check_param(Graph *g, Node *loss, EvalEnv *env, double *params,
                          const Tensor *t, const double *u, double gu, double floor,
                          double tol, double *fd, int *shrunk)
{
	int64_t n = shape_numel(&t->sh);
	double *p = params + t->off, pnorm = 0;
	for (int64_t i = 0; i < n; i++)
		pnorm += p[i] * p[i];
	double h = 1e-4 * fmax(1, sqrt(pnorm)), best = INFINITY;
	double *p0 = malloc((size_t)n * sizeof *p0 + 1);
	check(p0);
	memcpy(p0, p, (size_t)n * sizeof *p0);
	/* relu and max pooling put kinks in the loss: a step across one is not a
	 * derivative, and the more units a batch has, the likelier. A difference past
	 * tol is taken again with steps 10 and 100 times smaller, which cross fewer; a
	 * wrong gradient stays wrong at every step. */
	for (int shrink = 0; shrink < 3 && !(best <= tol); shrink++, h /= 10) {
		double l[2];
		for (int side = 0; side < 2; side++) {
			for (int64_t i = 0; i < n; i++)
				p[i] = p0[i] + (side ? -h : h) * u[i];
			l[side] = loss_at(g, loss, env);
		}
		double d = (l[0] - l[1]) / (2 * h),
		       rel = fabs(gu - d) / fmax(fmax(fabs(gu), fabs(d)), floor);
		if (!(rel >= best))
			best = rel, *fd = d, *shrunk = shrink;
	}
	memcpy(p, p0, (size_t)n * sizeof *p0);
	free(p0);
	return best;
}

int gradcheck(Diags *d, const Model *m, const GradcheckOpts *o, FILE *out)
{
	char err[2048], sh[160];
	int64_t batch = o->batch > 0 ? o->batch : m->batch;
	double tol = o->tolerance > 0 ? o->tolerance : 1e-3;
	CodegenOpts co = {.opt_level = o->opt_level, .fns = 1u << FN_GRAD};
	Compiled *c = compile_model(d, m, batch, &co);
	if (!c)
		return -1;
	const rt_program *p = &c->prog;
	Graph *g = c->g;
	rt_session *s = rt_session_new(p);
	rt_st_file f = {0};
	double **io = calloc((size_t)p->nio + 1, sizeof *io), *params = NULL;
	int status = -1;
	if (!s || !io) {
		error_at(d, (SrcLoc){m->file, 0, 0}, "out of memory for the session");
		goto done;
	}
	rt_session_init(s, o->seed);
	if (o->params && rt_st_load(o->params, &f, err, sizeof err) < 0) {
		error_at(d, (SrcLoc){0}, "%s", err); /* it names the file */
		goto done;
	}
	if (o->params && rt_load_params(s, &f, err, sizeof err) < 0) {
		error_at(d, (SrcLoc){o->params, 0, 0}, "%s", err);
		goto done;
	}
	rt_rng rng;
	rt_rng_seed(&rng, o->seed ^ 0x9c4ec4ecULL);
	random_inputs(g, s, &rng, io);
	/* the point grad starts from: its forward writes back batch norm's running
	 * statistics and dropout's counter */
	params = to_double(s->params, p->nparams);
	double *states = to_double(s->state, p->nstate),
	       *hyper = to_double(s->hyper, p->nhyper);
	p->grad(s->bufs);
	/* stop_gradient's values are held at this point: the gradient treats them as
	 * constants, and so do the differences (else stop_gradient(w) * x failed) */
	double **held = calloc((size_t)g->n + 1, sizeof *held);
	check(held);
	EvalEnv env = {.params = params,
	               .states = states,
	               .hyper = hyper,
	               .io = (const double *const *)io,
	               .held = held,
	               .hold = 1};
	Node *loss = loss_node(g);
	double l0 = loss_at(g, loss, &env);
	env.hold = 0;
	fprintf(
	    out,
	    "%s: batch %lld, seed %llu: loss %.6g (compiled, float32) %.6g (interpreted, "
	    "float64)\n",
	    m->name, (long long)(m->ninputs ? batch : 0), (unsigned long long)o->seed,
	    *(const float *)s->io[p->io_loss], l0);
	if (!isfinite(l0)) {
		error_at(d, m->loss_loc,
		         "the loss is %s at this point (seed %llu%s): no derivative to "
		         "check there; try another --seed or --params",
		         isnan(l0) ? "nan" : "infinite", (unsigned long long)o->seed,
		         o->params ? ", --params" : "");
		free(states);
		free(hyper);
		goto held_done;
	}
	fprintf(out, "%-28s %-16s %14s %14s %10s\n", "parameter", "shape", "compiled g.u",
	        "central diff", "rel error");
	double worst = -1, floor = 1e-6;
	const char *worst_name = "";
	int bad = 0;
	int64_t kinks = -1; /* counted at the first failure */
	char why[96] = "";
	double **dirs = calloc((size_t)g->nparams + 1, sizeof *dirs),
	       *gus = calloc((size_t)g->nparams + 1, sizeof *gus);
	check(dirs);
	check(gus);
	for (int i = 0; i < g->nparams; i++) /* every g.u first: the floor */
		if (g->params[i].trainable) {
			dirs[i] = direction(s->grads, &g->params[i], &rng, &gus[i]);
			floor = fmax(floor, 1e-3 * fabs(gus[i]));
		}
	for (int i = 0; i < g->nparams; i++) {
		const Tensor *t = &g->params[i];
		if (!t->trainable)
			continue;
		double gu = gus[i], fd = 0;
		int shrunk = 0;
		double rel = check_param(g, loss, &env, params, t, dirs[i], gu, floor,
		                         tol, &fd, &shrunk);
		free(dirs[i]);
		bad += !(rel <= tol);
		if (!(rel <= tol) && kinks < 0) {
			kinks = at_kinks(g, &env);
			if (kinks)
				snprintf(why, sizeof why,
				         "  (%lld relu or abs input%s on the kink: try "
				         "another "
				         "--seed)",
				         (long long)kinks, kinks == 1 ? "" : "s");
		}
		fprintf(out, "%-28s %-16s %14.6e %14.6e %10.2e%s%s\n", t->name,
		        shape_str(&t->sh, sh, sizeof sh), gu, fd, rel,
		        rel <= tol ? "" : "  FAIL",
		        !(rel <= tol) ? why
		        : shrunk == 1 ? "  (step h/10: kinks)"
		        : shrunk == 2 ? "  (step h/100: kinks)"
		                      : "");
		if (!(rel <= worst)) {
			worst = rel;
			worst_name = t->name;
		}
	}
	free(dirs);
	free(gus);
	free(states);
	free(hyper);
	if (worst < 0) {
		fprintf(out, "no trainable parameters to check\n");
		status = 0;
		goto held_done;
	}
	fprintf(out, "worst relative error %.2e (%s)", worst, worst_name);
	if (bad)
		fprintf(out, "; %d parameter%s past the tolerance %.0e", bad,
		        bad == 1 ? "" : "s", tol);
	fprintf(out, "\n");
	status = bad ? 1 : 0;
held_done:
	for (int k = 0; k < g->n; k++)
		free(held[k]);
	free(held);
done:
	for (int k = 0; io && k < p->nio; k++)
		free(io[k]);
	free(io);
	free(params);
	rt_st_free(&f);
	rt_session_free(s);
	compiled_free(c);
	return status;
}
