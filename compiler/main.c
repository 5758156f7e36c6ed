/* The `descent` command line.
 *
 *   descent train MODEL.yaml [--epochs N] [--batch B] [--seed S] [--lr X]
 *                            [--train-limit N] [--test-limit N] [--report FILE.json]
 *   descent ir MODEL.yaml [--fn NAME] [--batch B]
 *
 * Only this file decides to exit; the library reports diagnostics and returns.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dc.h"

typedef struct Opts {
	const char *model, *report, *fn, *params, *inputs, *out;
	int64_t epochs, batch, train_limit, test_limit, steps;
	int64_t seed;
	double lr;
	int opt_level;
} Opts;

static void usage(FILE *f)
{
	fprintf(f, "usage: descent train MODEL.yaml [--epochs N] [--batch B] [--seed S] "
	           "[--lr X]\n"
	           "                     [--train-limit N] [--test-limit N] [--report "
	           "FILE.json] [-O0..3]\n"
	           "       descent grad MODEL.yaml [--params P.safetensors] [--inputs B.safetensors]\n"
	           "                    --out G.safetensors [--seed S]\n"
	           "       descent ir MODEL.yaml [--fn "
	           "forward|evaluate|grad|step|train_step|all|llvm]\n"
	           "                     [--batch B]\n");
}

static int parse_int(const char *flag, const char *s, int64_t min, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || end == s || v < min) {
		fprintf(stderr, "descent: error: %s takes an integer >= %lld, got '%s'\n",
		        flag, (long long)min, s);
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_args(int argc, char **argv, Opts *o)
{
	memset(o, 0, sizeof *o);
	o->epochs = o->batch = o->seed = o->steps = -1;
	o->opt_level = 3;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		int64_t *iv = !strcmp(a, "--epochs")        ? &o->epochs
		              : !strcmp(a, "--batch")       ? &o->batch
		              : !strcmp(a, "--seed")        ? &o->seed
		              : !strcmp(a, "--steps")       ? &o->steps
		              : !strcmp(a, "--train-limit") ? &o->train_limit
		              : !strcmp(a, "--test-limit")  ? &o->test_limit
		                                            : NULL;
		if (!strncmp(a, "-O", 2) && a[2] >= '0' && a[2] <= '3' && !a[3]) {
			o->opt_level = a[2] - '0';
			continue;
		}
		const char **sv = !strcmp(a, "--report")   ? &o->report
		                  : !strcmp(a, "--fn")     ? &o->fn
		                  : !strcmp(a, "--params") ? &o->params
		                  : !strcmp(a, "--inputs") ? &o->inputs
		                  : !strcmp(a, "--out")    ? &o->out
		                                           : NULL;
		if ((iv || sv || !strcmp(a, "--lr")) && !v) {
			fprintf(stderr, "descent: error: %s needs a value\n", a);
			return -1;
		}
		if (iv) {
			if (parse_int(a, v, !strcmp(a, "--batch") ? 1 : 0, iv) < 0)
				return -1;
			i++;
		} else if (sv) {
			*sv = argv[++i];
		} else if (!strcmp(a, "--lr")) {
			char *end;
			o->lr = strtod(v, &end);
			if (*end || !(o->lr > 0) || !isfinite(o->lr)) {
				fprintf(stderr,
				        "descent: error: --lr takes a positive number, "
				        "got '%s'\n",
				        v);
				return -1;
			}
			i++;
		} else if (a[0] == '-') {
			fprintf(stderr, "descent: error: unknown option '%s'\n", a);
			usage(stderr);
			return -1;
		} else if (!o->model) {
			o->model = a;
		} else {
			fprintf(stderr, "descent: error: unexpected argument '%s'\n", a);
			return -1;
		}
	}
	if (!o->model) {
		usage(stderr);
		return -1;
	}
	return 0;
}

/* ---- progress ---- */

typedef struct Progress {
	int tty;
	int64_t epoch, epochs;
	double t0;
} Progress;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static void progress(void *ud, int64_t step, int64_t nsteps, double loss)
{
	Progress *p = ud;
	if (!p->tty || (step % 16 && step != nsteps))
		return;
	double el = now() - p->t0, rate = step / (el > 0 ? el : 1e-9);
	int w = 30, done = (int)(w * step / nsteps);
	char bar[64];
	for (int i = 0; i < w; i++)
		bar[i] = i < done ? '=' : i == done ? '>' : ' ';
	bar[w] = 0;
	double eta = (nsteps - step) / (rate > 0 ? rate : 1);
	fprintf(stderr,
	        "\repoch %lld/%lld [%s] %lld/%lld  loss %.4f  %.0f steps/s  ETA %ds ",
	        (long long)p->epoch, (long long)p->epochs, bar, (long long)step,
	        (long long)nsteps, loss, rate, (int)ceil(eta));
	if (step == nsteps)
		fprintf(stderr, "\r%*s\r", 100, "");
}

/* ---- data ---- */

static int load_split(const Model *m, const DataSource *src, const char *split,
                      rt_tensor *x, rt_tensor *y)
{
	char err[512];
	const DataSource *sx = &src[m->x], *sy = &src[m->y];
	if (!sx->path || !sy->path) {
		fprintf(stderr, "%s: error: data.%s needs a source for '%s' and '%s'\n",
		        m->file, split, m->inputs[m->x].name, m->inputs[m->y].name);
		return -1;
	}
	if (rt_idx_load(sx->path, sx->scale, 0, x, err, sizeof err) < 0 ||
	    rt_idx_load(sy->path, sy->scale, m->inputs[m->y].dt == DT_I32, y, err,
	                sizeof err) < 0) {
		fprintf(stderr, "descent: error: %s\n", err);
		rt_tensor_free(x);
		return -1;
	}
	return 0;
}

/* ---- report ---- */

static int write_report(const char *path, const Model *m, const rt_metrics *test,
                        double train_s, double steps_s, double compile_s,
                        double train_loss)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		fprintf(stderr, "descent: error: cannot write %s: %s\n", tmp,
		        strerror(errno));
		return -1;
	}
	fprintf(f,
	        "{\n  \"model\": \"%s\",\n  \"test_accuracy\": %.6f,\n  \"test_loss\": "
	        "%.6f,\n"
	        "  \"train_loss\": %.6f,\n  \"train_seconds\": %.3f,\n  "
	        "\"steps_per_second\": %.1f,\n"
	        "  \"compile_seconds\": %.4f\n}\n",
	        m->name, isnan(test->accuracy) ? 0 : test->accuracy, test->loss,
	        train_loss, train_s, steps_s, compile_s);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		fprintf(stderr, "descent: error: cannot write %s: %s\n", path,
		        strerror(errno));
		remove(tmp);
		return -1;
	}
	return 0;
}

/* ---- commands ---- */

static int train_loop(const Opts *o, const Model *m, Compiled *c)
{
	rt_tensor xtr = {0}, ytr = {0}, xte = {0}, yte = {0};
	rt_session *s = NULL;
	int status = 1;
	char err[512];
	if (load_split(m, m->train, "train", &xtr, &ytr) < 0 ||
	    load_split(m, m->test, "test", &xte, &yte) < 0)
		goto done;
	if (o->test_limit > 0 && o->test_limit < xte.n)
		xte.n = yte.n = o->test_limit;
	s = rt_session_new(&c->prog);
	if (!s) {
		fprintf(stderr,
		        "descent: error: out of memory for the training session\n");
		goto done;
	}
	rt_session_init(s, m->seed);
	if (o->lr > 0)
		rt_set_hyper(s, "lr", (float)o->lr);
	rt_rng rng;
	rt_rng_seed(&rng, m->seed ^ 0x5eedda7aULL);
	Progress pr = {isatty(2), 0, m->epochs, 0};
	double train_s = 0, train_loss = NAN;
	int64_t steps = 0;
	rt_metrics te = {0};
	te.accuracy = NAN;
	printf("%s: %lld parameters, batch %lld, compiled in %.3f s\n", m->name,
	       (long long)c->prog.nparams, (long long)c->prog.batch, c->compile_seconds);
	for (int64_t e = 1; e <= m->epochs; e++) {
		rt_metrics tr;
		pr.epoch = e;
		pr.t0 = now();
		if (rt_train_epoch(s, &xtr, &ytr, o->train_limit, &rng, progress, &pr,
		                   &tr, err, sizeof err) < 0) {
			fprintf(stderr, "%s: error: epoch %lld: %s\n", m->file,
			        (long long)e, err);
			goto done;
		}
		if (rt_evaluate(s, &xte, &yte, &te, err, sizeof err) < 0) {
			fprintf(stderr, "%s: error: evaluating: %s\n", m->file, err);
			goto done;
		}
		train_s += tr.seconds;
		steps += tr.steps;
		train_loss = tr.loss;
		printf("epoch %lld/%lld  train loss %.4f  test loss %.4f  test acc %.4f  "
		       "%.0f steps/s  %.1f s\n",
		       (long long)e, (long long)m->epochs, tr.loss, te.loss, te.accuracy,
		       tr.steps / tr.seconds, train_s);
		fflush(stdout);
	}
	if (m->epochs == 0 && rt_evaluate(s, &xte, &yte, &te, err, sizeof err) < 0) {
		fprintf(stderr, "%s: error: evaluating: %s\n", m->file, err);
		goto done;
	}
	printf("final test accuracy %.4f (loss %.4f) after %.1f s of training\n",
	       te.accuracy, te.loss, train_s);
	status = 0;
	if (o->report &&
	    write_report(o->report, m, &te, train_s, train_s > 0 ? steps / train_s : 0,
	                 c->compile_seconds, train_loss) < 0)
		status = 1;
done:
	rt_session_free(s);
	rt_tensor_free(&xtr);
	rt_tensor_free(&ytr);
	rt_tensor_free(&xte);
	rt_tensor_free(&yte);
	return status;
}

/* A model without data (a function of its parameters): train_step, steps times. */
static int train_steps(const Opts *o, const Model *m, Compiled *c)
{
	int64_t steps = o->steps >= 0 ? o->steps : m->steps;
	rt_session *s = rt_session_new(&c->prog);
	if (!s) {
		fprintf(stderr, "descent: error: out of memory for the training session\n");
		return 1;
	}
	rt_session_init(s, m->seed);
	if (o->lr > 0)
		rt_set_hyper(s, "lr", (float)o->lr);
	float *loss = s->io[c->prog.io_loss];
	double t0 = now();
	int status = 0;
	for (int64_t k = 1; k <= steps; k++) {
		c->prog.train_step(s->bufs);
		if (!isfinite(*loss)) {
			fprintf(stderr, "%s: error: the loss is %f at step %lld\n", m->file, *loss,
			        (long long)k);
			status = 1;
			break;
		}
		if (k == steps || k % (steps / 10 ? steps / 10 : 1) == 0)
			printf("step %lld/%lld  loss %.6g\n", (long long)k, (long long)steps, *loss);
	}
	c->prog.evaluate(s->bufs);
	printf("final loss %.6g after %lld steps in %.3f s\n", *loss, (long long)steps, now() - t0);
	for (int i = 0; i < c->prog.nparam; i++) {
		const rt_param *p = &c->prog.params[i];
		printf("%s =", p->name);
		for (int64_t j = 0; j < p->numel && j < 8; j++)
			printf(" %.6g", s->params[p->offset + j]);
		printf("%s\n", p->numel > 8 ? " ..." : "");
	}
	rt_session_free(s);
	return status;
}

static int cmd_train(const Opts *o, Diags *d, Arena *A)
{
	Model *m = model_load(A, d, o->model);
	if (!m)
		return 1;
	if (o->epochs >= 0)
		m->epochs = o->epochs;
	if (o->batch > 0)
		m->batch = o->batch;
	if (o->seed >= 0)
		m->seed = (uint64_t)o->seed;
	CodegenOpts co = {o->opt_level, 0};
	Compiled *c = compile_model(d, m, m->batch, &co);
	if (!c)
		return 1;
	int status = m->ninputs ? train_loop(o, m, c) : train_steps(o, m, c);
	compiled_free(c);
	return status;
}

/* The batch size of an inputs file: the first dim of the network's input in it. */
static int64_t file_batch(const Model *m, const rt_st_file *f)
{
	for (int i = 0; i < m->ninputs; i++) {
		const rt_st_tensor *t = rt_st_find(f, m->inputs[i].name);
		if (t && t->rank >= 1)
			return t->shape[0];
	}
	return 0;
}

/* Loss and gradients at given parameters and inputs, as safetensors under the
 * parameters' names: what another framework's gradients can be compared with. */
static int cmd_grad(const Opts *o, Diags *d, Arena *A)
{
	char err[2048];
	rt_st_file pf = {0}, xf = {0};
	rt_session *s = NULL;
	Compiled *c = NULL;
	int status = 1;
	Model *m = model_load(A, d, o->model);
	if (!m)
		return 1;
	if (!o->out || (m->ninputs && !o->inputs)) {
		fprintf(stderr, "descent: error: grad needs --out%s\n", m->ninputs ? " and --inputs" : "");
		return 2;
	}
	if ((o->inputs && rt_st_load(o->inputs, &xf, err, sizeof err) < 0) ||
	    (o->params && rt_st_load(o->params, &pf, err, sizeof err) < 0)) {
		fprintf(stderr, "descent: error: %s\n", err);
		goto done;
	}
	int64_t batch = m->ninputs ? file_batch(m, &xf) : 1;
	if (m->ninputs && batch < 1) {
		fprintf(stderr, "descent: error: %s: no tensor for any of the model's inputs\n", o->inputs);
		goto done;
	}
	CodegenOpts co = {o->opt_level, 0};
	if (!(c = compile_model(d, m, batch, &co)) || !(s = rt_session_new(&c->prog)))
		goto done;
	rt_session_init(s, o->seed >= 0 ? (uint64_t)o->seed : m->seed);
	const char *bad = o->params && rt_load_params(s, &pf, err, sizeof err) < 0   ? o->params
	                  : o->inputs && rt_load_inputs(s, &xf, err, sizeof err) < 0 ? o->inputs
	                                                                              : NULL;
	if (bad) {
		fprintf(stderr, "descent: error: %s: %s\n", bad, err);
		goto done;
	}
	c->prog.grad(s->bufs);
	const float *loss = s->io[c->prog.io_loss];
	if (rt_save_params(s, o->out, 1, "loss", loss, err, sizeof err) < 0) {
		fprintf(stderr, "descent: error: %s\n", err);
		goto done;
	}
	printf("loss %.9g; gradients of %d parameters written to %s\n", *loss, c->prog.nparam, o->out);
	status = 0;
done:
	rt_session_free(s);
	compiled_free(c);
	rt_st_free(&pf);
	rt_st_free(&xf);
	return status;
}

static int cmd_ir(const Opts *o, Diags *d, Arena *A)
{
	Model *m = model_load(A, d, o->model);
	if (!m)
		return 1;
	Graph *g = lower_model(A, d, m, o->batch > 0 ? o->batch : m->batch);
	if (!g)
		return 1;
	const char *fn = o->fn ? o->fn : "grad";
	if (!strcmp(fn, "llvm")) { /* the optimized LLVM IR of every function */
		CodegenOpts co = {o->opt_level, 0};
		ObjCode obj;
		int64_t nwork;
		char *text = NULL;
		if (cg_compile(g, &co, &obj, &nwork, &text) < 0)
			return 1;
		fputs(text, stdout);
		free(text);
		objcode_free(&obj);
		return 0;
	}
	if (!strcmp(fn, "all")) {
		dump_graph(stdout, g, -1);
		return 0;
	}
	for (int k = 0; k < FN_COUNT; k++)
		if (!strcmp(fn, fn_names[k])) {
			dump_graph(stdout, g, k);
			return 0;
		}
	fprintf(stderr,
	        "descent: error: unknown function '%s' (forward, evaluate, grad, step, "
	        "train_step, all)\n",
	        fn);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	Opts o;
	int (*cmd)(const Opts *, Diags *, Arena *) = !strcmp(argv[1], "train")  ? cmd_train
	                                             : !strcmp(argv[1], "grad") ? cmd_grad
	                                             : !strcmp(argv[1], "ir")   ? cmd_ir
	                                                                        : NULL;
	if (!cmd) {
		fprintf(stderr, "descent: error: unknown command '%s'\n", argv[1]);
		usage(stderr);
		return 2;
	}
	if (parse_args(argc, argv, &o) < 0)
		return 2;
	Diags d = {0};
	Arena *A = arena_new();
	int status = cmd(&o, &d, A);
	diag_print(&d, stderr);
	if (d.nerr)
		status = 1;
	diags_free(&d);
	arena_free(A);
	return status;
}
