/* descent bench: how fast a compiled model trains on this machine.
 *
 * Compiles the model, fills its inputs with random values (class labels in range),
 * warms up, then times train_step: steps per second, milliseconds per step, GFLOP/s
 * (FLOPs counted from the graph, see inspect.c) and the share of the machine's FMA peak,
 * measured on the spot with JIT-compiled FMA chains. Compile time and workspace bytes
 * come with it. A benchmark, not a test: compare ratios measured in the same run.
 */
#include <stdio.h>
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
	int64_t classes = p->io_output >= 0
	                      ? p->io[p->io_output].shape[p->io[p->io_output].rank - 1]
	                      : 2;
	for (int k = 0; k < p->nio; k++) {
		const rt_io *io = &p->io[k];
		for (int64_t i = 0; io->kind == RT_IO_INPUT && i < io->numel; i++)
			if (io->dtype == RT_I32)
				((int32_t *)s->io[k])[i] =
				    (int32_t)rt_rng_below(&rng, (uint64_t)classes);
			else
				((float *)s->io[k])[i] =
				    k == p->io_weight ? 1.0f
				                      : (float)rt_rng_uniform(&rng);
	}
}

int bench_run(Diags *d, const Model *m, const BenchOpts *o, FILE *out)
{
	int threads = o->threads > 0 ? o->threads : 1;
	if (rt_set_threads(threads) < 0) {
		error_at(d, (SrcLoc){0}, "--threads %d: must be 1 to %d", o->threads,
		         RT_MAX_THREADS);
		return -1;
	}
	CodegenOpts co = {.opt_level = o->opt_level};
	int64_t batch = o->batch > 0 ? o->batch : m->batch;
	Compiled *c = compile_model(d, m, batch, &co);
	rt_session *s = c ? rt_session_new(&c->prog) : NULL;
	if (!s) {
		compiled_free(c);
		return -1;
	}
	rt_session_init(s, 1);
	random_inputs(s, 2);
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
	double secs = now() - t0, peak = o->peak > 0 ? o->peak : cg_measure_peak(d);
	double gf = flops * (double)n / secs / 1e9;
	fprintf(out, "%s: batch %lld, %d thread%s, %lld steps\n", m->name,
	        (long long)batch, threads, threads > 1 ? "s" : "", (long long)n);
	fprintf(
	    out,
	    "  %.1f steps/s, %.3f ms/step, %.1f GFLOP/s (%.1f%% of %.0f GFLOP/s peak), "
	    "%.1f MFLOP/step\n",
	    (double)n / secs, secs / (double)n * 1e3, gf, peak > 0 ? 100 * gf / peak : 0,
	    peak, flops / 1e6);
	fprintf(out,
	        "  compile %.3f s, workspace %lld bytes, parameters %lld bytes, state "
	        "%lld bytes\n",
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
	rt_set_threads(1);
	return 0;
}
