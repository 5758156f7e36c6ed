/* descent bench: how fast a compiled model trains on this machine.
 *
 * Compiles the model, fills its inputs with random values (class labels in range),
 * warms up, then times train_step: steps per second, milliseconds per step, GFLOP/s
 * (FLOPs counted from the graph, see inspect.c) and the share of the machine's FMA peak,
 * measured on the spot with JIT-compiled FMA chains. Compile time and workspace bytes
 * come with it. With --profile, then where a step's time goes, part by part (ProfPart,
 * dc.h). A benchmark, not a test: compare ratios measured in the same run.
 */
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dc.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void random_inputs(rt_session *s, uint64_t seed)
{
	const rt_program *p = s->prog;
	rt_rng rng;
	rt_rng_seed(&rng, seed);
	for (int k = 0; k < p->nio; k++) {
		const rt_io *io = &p->io[k];
		/* integers below what they index (labels, an embedding's rows) */
		uint64_t below = io->limit > 0 ? (uint64_t)io->limit : 2;
		for (int64_t i = 0; io->kind == RT_IO_INPUT && i < io->numel; i++)
			if (io->dtype == RT_I32)
				((int32_t *)s->io[k])[i] =
				    (int32_t)rt_rng_below(&rng, below);
			else
				((float *)s->io[k])[i] =
				    k == p->io_weight ? 1.0f
				                      : (float)rt_rng_uniform(&rng);
	}
}

/* The model compiled (profiling itself, or not), and a session of it with random
 * inputs; NULL after an error. Only train_step, which is all a bench runs, as a
 * training driver asks with dc_options.entry_points. */
static Compiled *compile_for_bench(Diags *d, const Model *m, int64_t batch,
                                   const BenchOpts *o, int profile, rt_session **s)
{
	CodegenOpts co = {
	    .opt_level = o->opt_level, .profile = profile, .fns = 1u << FN_TRAIN_STEP};
	Compiled *c = compile_model(d, m, batch, &co);
	*s = c ? rt_session_new(&c->prog) : NULL;
	if (!*s) {
		if (c) /* (bench said nothing and failed) */
			error_at(d, (SrcLoc){m->file, 0, 0},
			         "out of memory for the session (batch %lld)",
			         (long long)batch);
		compiled_free(c);
		return NULL;
	}
	rt_session_init(*s, 1);
	random_inputs(*s, 2);
	return c;
}

/* Appends to buf (len bytes, k of them used), cutting what does not fit. */
static int add(char *buf, size_t len, int k, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + k, len - (size_t)k, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)(k + n) >= len ? (int)len - 1 : k + n;
}

/* What a part of the step computes, and where it comes from. */
static void describe(char *buf, size_t len, const ProfPart *p)
{
	char sh[64];
	int k = 0;
	buf[0] = 0;
	switch (p->kind) {
	case PART_NODE:
		k = add(buf, len, k, "%s %s", opinfo[p->node->op].name,
		        shape_str(&p->node->sh, sh, sizeof sh));
		if (p->epi)
			k = add(buf, len, k, " + %s", opinfo[p->epi->op].name);
		if (p->node->label)
			k = add(buf, len, k, ", %s", p->node->label);
		if (p->node->rule)
			k = add(buf, len, k, ", gradient (%s rule)", p->node->rule);
		if (p->node->loc.file)
			k = add(buf, len, k, ", %s:%d:%d", p->node->loc.file,
			        p->node->loc.line, p->node->loc.col);
		break;
	case PART_CHECK:
	case PART_WRITE:
		k = add(buf, len, k, "optimizer, %s %s",
		        p->kind == PART_CHECK ? "checks the new" : "writes", p->params);
		break;
	case PART_TEST:
		k = add(buf, len, k, "optimizer, are the loss and new values finite");
		break;
	case PART_COPY:
		k = add(buf, len, k, "outputs copied out");
		break;
	}
	if (p->kernel[0])
		add(buf, len, k, "  [%s%s]", p->kernel,
		    p->threads && rt_threads() > 1 ? ", threads" : "");
}

static const double *by_time; /* for qsort */
static int slower(const void *a, const void *b)
{
	double x = by_time[*(const int *)a], y = by_time[*(const int *)b];
	return x < y ? 1 : x > y ? -1 : *(const int *)a - *(const int *)b;
}

/* Whether node n is the optimizer's (made for the model's optimizer: entry). */
static int optimizer_node(const Model *m, const Node *n)
{
	return n->loc.line == m->opt_loc.line && n->loc.col == m->opt_loc.col &&
	       n->loc.file == m->opt_loc.file;
}

/* The parts' shares summed by phase (forward, gradients, optimizer) and by layer (the
 * layer's nodes, forward and gradient; the optimizer's parts apart). */
static void summary(FILE *out, const Model *m, const ProfPart *parts, const double *sum,
                    int np, double all)
{
	enum { MAXL = 64 };
	const char *name[MAXL + 1];
	double phase[4] = {0}, layer[MAXL + 1] = {0};
	int nl = 0;
	for (int k = 0; k < np; k++) {
		const ProfPart *p = &parts[k];
		int opt = p->kind == PART_NODE ? optimizer_node(m, p->node)
		                               : p->kind != PART_COPY;
		int ph = opt ? 2 : p->kind == PART_COPY ? 3 : p->node->rule ? 1 : 0;
		phase[ph] += sum[k];
		const char *l = opt                    ? "optimizer"
		                : p->kind == PART_COPY ? "output copies"
		                : p->node->label       ? p->node->label
		                                       : "outside layers";
		int i = 0;
		while (i < nl && strcmp(name[i], l))
			i++;
		if (i == nl && nl < MAXL)
			name[nl++] = l;
		layer[i < nl ? i : MAXL] += sum[k];
	}
	fprintf(out,
	        "  by phase: forward %.1f%%, gradients %.1f%%, optimizer %.1f%%, "
	        "output copies %.1f%%\n",
	        100 * phase[0] / all, 100 * phase[1] / all, 100 * phase[2] / all,
	        100 * phase[3] / all);
	fprintf(out, "  by layer:");
	double rest = layer[MAXL];
	for (int shown = 0; shown < nl; shown++) { /* largest first, down to 0.1% */
		int top = -1;
		for (int i = 0; i < nl; i++)
			if (layer[i] >= 0 && (top < 0 || layer[i] > layer[top]))
				top = i;
		if (layer[top] < 0.001 * all)
			rest += layer[top];
		else
			fprintf(out, "%s %s %.1f%%", shown ? "," : "", name[top],
			        100 * layer[top] / all);
		layer[top] = -1;
	}
	if (rest >= 0.0005 * all)
		fprintf(out, ", the rest %.1f%%", 100 * rest / all);
	fputc('\n', out);
}

/* --profile: n more steps compiled to time their parts (ProfPart): the largest parts,
 * each with its share of the step, and what it computes. */
static int profile(Diags *d, const Model *m, int64_t batch, const BenchOpts *o, int64_t n,
                   FILE *out)
{
	rt_session *s;
	Compiled *c = compile_for_bench(d, m, batch, o, 1, &s);
	if (!c)
		return -1;
	const rt_program *p = &c->prog;
	const float *t = c->g->io_profile >= 0 ? s->io[c->g->io_profile] : NULL;
	int np = c->g->nprof;
	double *sum = calloc((size_t)np + 1, sizeof *sum), all = 0;
	int *order = calloc((size_t)np + 1, sizeof *order);
	if (!t || !sum || !order)
		die("out of memory");
	for (int i = 0; i < 5; i++) /* warm up */
		p->train_step(s->bufs);
	double t0 = now();
	for (int64_t i = 0; i < n; i++) {
		p->train_step(s->bufs);
		for (int k = 0; k < np; k++)
			sum[k] += t[k];
	}
	double secs = now() - t0;
	for (int k = 0; k < np; k++)
		all += sum[k], order[k] = k;
	by_time = sum;
	qsort(order, (size_t)np, sizeof *order, slower);
	/* times per step in ms, or in us for a step under a millisecond */
	double step = all / (double)n * 1e-9, unit = step < 1e-3 ? 1e-6 : 1e-3;
	fprintf(out,
	        "  where a step's time goes (--profile: %lld more steps, %.3f ms/step "
	        "with the clock read between parts):\n"
	        "     %s/step   share  GFLOP/s  part\n",
	        (long long)n, secs / (double)n * 1e3, unit < 1e-3 ? "us" : "ms");
	int shown = 0;
	double rest = 0;
	for (int i = 0; i < np; i++) {
		const ProfPart *pp = &c->g->prof[order[i]];
		double secs_one = sum[order[i]] / (double)n * 1e-9,
		       share = all > 0 ? sum[order[i]] / all : 0;
		if (shown >= 12 || share < 0.005) {
			rest += secs_one;
			continue;
		}
		char what[512], gf[16] = "";
		describe(what, sizeof what, pp);
		double fl =
		    pp->kind == PART_NODE
		        ? node_flops(pp->node) + (pp->epi ? node_flops(pp->epi) : 0)
		        : 0;
		if (fl > 0 && secs_one > 0)
			snprintf(gf, sizeof gf, "%.1f", fl / secs_one / 1e9);
		fprintf(out, "  %10.3f  %5.1f%%  %7s  %s\n", secs_one / unit, 100 * share,
		        gf, what);
		shown++;
	}
	if (shown < np)
		fprintf(out, "  %10.3f  %5.1f%%           %d more parts\n", rest / unit,
		        step > 0 ? 100 * rest / step : 0, np - shown);
	if (all > 0)
		summary(out, m, c->g->prof, sum, np, all);
	free(sum), free(order);
	rt_session_free(s);
	compiled_free(c);
	return 0;
}

int bench_run(Diags *d, const Model *m, const BenchOpts *o, FILE *out)
{
	int threads = o->threads > 0 ? o->threads : 1;
	if (rt_set_threads(threads) < 0) {
		error_at(d, (SrcLoc){0}, "--threads %d: must be 1 to %d", o->threads,
		         RT_MAX_THREADS);
		return -1;
	}
	int64_t batch = o->batch > 0 ? o->batch : m->batch;
	rt_session *s;
	Compiled *c = compile_for_bench(d, m, batch, o, 0, &s);
	if (!c)
		return -1;
	double flops = fn_flops(c->g, FN_TRAIN_STEP);
	rt_fn step = c->prog.train_step;
	for (int i = 0; i < 20; i++) /* warm up */
		step(s->bufs);
	int64_t n = o->steps;
	if (n <= 0) { /* about 2 seconds */
		double t0 = now();
		for (int i = 0; i < 20; i++)
			step(s->bufs);
		double per = (now() - t0) / 20;
		n = per > 0 ? (int64_t)(2.0 / per) : 1000;
		n = n < 20 ? 20 : n;
	}
	double t0 = now();
	for (int64_t i = 0; i < n; i++)
		step(s->bufs);
	/* the peak of the cores the step runs on: one core's, measured, times the threads
	 * or the cores this process may use, the fewer (8 threads on 2 cores said 8
	 * cores' peak) */
	int cores = threads;
	cpu_set_t set;
	if (!sched_getaffinity(0, sizeof set, &set) && CPU_COUNT(&set) < threads)
		cores = CPU_COUNT(&set);
	double secs = now() - t0,
	       peak = (o->peak > 0 ? o->peak : cg_measure_peak(d)) * (double)cores;
	double gf = flops * (double)n / secs / 1e9;
	char on[64] = "";
	if (cores < threads)
		snprintf(on, sizeof on, " on %d core%s", cores, cores > 1 ? "s" : "");
	char of[64] = "no data"; /* (a model without inputs said batch 32) */
	if (m->ninputs)
		snprintf(of, sizeof of, "batch %lld", (long long)batch);
	fprintf(out, "%s: %s, %d thread%s%s, %lld steps\n", m->name, of, threads,
	        threads > 1 ? "s" : "", on, (long long)n);
	fprintf(
	    out,
	    "  %.1f steps/s, %.3f ms/step, %.1f GFLOP/s (%.1f%% of %.0f GFLOP/s peak), "
	    "%.1f MFLOP/step\n",
	    (double)n / secs, secs / (double)n * 1e3, gf, peak > 0 ? 100 * gf / peak : 0,
	    peak, flops / 1e6);
	fprintf(out,
	        "  compile %.3f s (train_step alone), workspace %lld bytes, parameters "
	        "%lld bytes, state %lld bytes\n",
	        c->compile_seconds, (long long)c->prog.nwork * 4,
	        (long long)c->prog.nparams * 4, (long long)c->prog.nstate * 4);
	const double *st = c->stage_seconds;
	if (st[STAGE_CODEGEN] > 0)
		fprintf(out,
		        "  compile stages: graph %.1f ms, LLVM IR %.1f ms, optimizer "
		        "%.1f ms, "
		        "code generator %.1f ms, JIT link %.1f ms\n",
		        st[STAGE_GRAPH] * 1e3, st[STAGE_IR] * 1e3, st[STAGE_OPT] * 1e3,
		        st[STAGE_CODEGEN] * 1e3, st[STAGE_JIT] * 1e3);
	else
		fprintf(out,
		        "  compile stages: graph %.1f ms, object from the cache, "
		        "JIT link %.1f ms\n",
		        st[STAGE_GRAPH] * 1e3, st[STAGE_JIT] * 1e3);
	rt_session_free(s);
	compiled_free(c);
	int status = o->profile ? profile(d, m, batch, o, n, out) : 0;
	rt_set_threads(1);
	return status;
}
