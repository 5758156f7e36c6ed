/* The public C API (include/descent/descent.h): handles over the compiler's pipeline
 * (compile.c) and the runtime's sessions. It keeps diagnostics as structured values in
 * the context, checks every argument, and never prints or exits.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dc.h"
#include "descent/descent.h"

struct dc_context {
	Diags diags;
	/* diags as dc_diag, each made when first asked for and kept until cleared: a
	 * pointer handed out stays valid as more diagnostics come */
	dc_diag **view;
	int nview, capview;
};

struct dc_model {
	dc_context *ctx;
	Arena *A; /* the model description */
	Compiled *c;
	unsigned entry_points; /* dc_options': 0, every one */
};

_Static_assert(DC_FORWARD == 1 << FN_FORWARD && DC_EVALUATE == 1 << FN_EVALUATE &&
                   DC_GRAD == 1 << FN_GRAD && DC_STEP == 1 << FN_STEP &&
                   DC_TRAIN_STEP == 1 << FN_TRAIN_STEP && FN_COUNT == 5,
               "dc_options.entry_points are FnKind bits");

struct dc_session {
	dc_model *m;
	rt_session *rt;
	char error[512];
};

const char *dc_status_str(dc_status s)
{
	static const char *const names[] = {
	    "ok",        "error in the model", "compilation failed", "bad argument",
	    "i/o error", "out of memory",      "loss is not finite", "not supported"};
	return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "unknown status";
}

dc_context *dc_context_new(void) { return calloc(1, sizeof(dc_context)); }

void dc_context_free(dc_context *ctx)
{
	if (!ctx)
		return;
	dc_diag_clear(ctx);
	free(ctx->view);
	free(ctx);
}

int dc_diag_count(const dc_context *ctx) { return ctx ? ctx->diags.n : 0; }

const dc_diag *dc_diag_get(const dc_context *ctx, int i)
{
	dc_context *c = (dc_context *)ctx;
	if (!c || i < 0 || i >= c->diags.n)
		return NULL;
	if (c->capview < c->diags.n) {
		dc_diag **v = realloc(c->view, (size_t)c->diags.n * sizeof *v);
		if (!v)
			return NULL;
		c->view = v;
		c->capview = c->diags.n;
	}
	for (; c->nview <= i; c->nview++)
		c->view[c->nview] = NULL;
	if (!c->view[i]) {
		const Diag *d = &c->diags.v[i];
		if (!(c->view[i] = malloc(sizeof *c->view[i])))
			return NULL;
		*c->view[i] = (dc_diag){(dc_severity)d->sev, d->loc.file, d->loc.line,
		                        d->loc.col, d->msg};
	}
	return c->view[i];
}

void dc_diag_clear(dc_context *ctx)
{
	if (!ctx)
		return;
	diags_free(&ctx->diags);
	memset(&ctx->diags, 0, sizeof ctx->diags);
	for (int i = 0; i < ctx->nview; i++)
		free(ctx->view[i]);
	ctx->nview = 0;
}

static dc_status check_options(dc_context *ctx, const dc_options *o, int64_t *batch,
                               int *level)
{
	dc_options def = {0}; /* every field's default */
	if (!o)
		o = &def;
	if (o->batch < 0 || o->batch > (1 << 20) || o->opt_level < -1 ||
	    o->opt_level > 3 || o->threads < 0) {
		error_at(&ctx->diags, (SrcLoc){0},
		         "invalid options: batch %lld, opt_level %d, threads %d",
		         (long long)o->batch, o->opt_level, o->threads);
		return DC_ERR_ARG;
	}
	if (o->entry_points >= 1u << FN_COUNT) {
		error_at(
		    &ctx->diags, (SrcLoc){0},
		    "invalid options: entry_points %#x (DC_FORWARD to DC_TRAIN_STEP)",
		    o->entry_points);
		return DC_ERR_ARG;
	}
	if (o->dtype_bits && o->dtype_bits != 32) {
		error_at(&ctx->diags, (SrcLoc){0},
		         "float64 models are not supported yet");
		return DC_ERR_UNSUPPORTED;
	}
	if (o->threads > 0 && rt_set_threads(o->threads) < 0) {
		error_at(
		    &ctx->diags, (SrcLoc){0},
		    "threads %d: the runtime takes 1 to %d (or could not start them)",
		    o->threads, RT_MAX_THREADS);
		return DC_ERR_ARG;
	}
	*batch = o->batch;
	*level = o->opt_level == 0 ? 3 : o->opt_level < 0 ? 0 : o->opt_level;
	return DC_OK;
}

static dc_status finish_compile(dc_context *ctx, Arena *A, Model *m, const dc_options *o,
                                dc_model **out)
{
	int64_t batch;
	int level;
	dc_status st = check_options(ctx, o, &batch, &level);
	if (!m || st != DC_OK) {
		arena_free(A);
		return m ? st : DC_ERR_MODEL;
	}
	CodegenOpts co = {.opt_level = level, .fns = o ? o->entry_points : 0};
	int in_model = 0;
	Compiled *c =
	    compile_model_at(&ctx->diags, m, batch ? batch : m->batch, &co, &in_model);
	dc_model *dm = c ? calloc(1, sizeof *dm) : NULL;
	if (!dm) {
		compiled_free(c);
		arena_free(A);
		return c ? DC_ERR_NOMEM : in_model ? DC_ERR_MODEL : DC_ERR_COMPILE;
	}
	*dm = (dc_model){ctx, A, c, co.fns};
	*out = dm;
	return DC_OK;
}

dc_status dc_compile_file(dc_context *ctx, const char *path, const dc_options *o,
                          dc_model **out)
{
	if (!ctx || !path || !out)
		return DC_ERR_ARG;
	*out = NULL;
	Arena *A = arena_new();
	Model *m = model_load(A, &ctx->diags, path);
	struct stat st;
	if (!m && (stat(path, &st) != 0 || S_ISDIR(st.st_mode) || access(path, R_OK))) {
		arena_free(A); /* not a file it could read (diagnosed) */
		return DC_ERR_IO;
	}
	return finish_compile(ctx, A, m, o, out);
}

dc_status dc_compile_string(dc_context *ctx, const char *yaml, const char *name,
                            const dc_options *o, dc_model **out)
{
	if (!ctx || !yaml || !out)
		return DC_ERR_ARG;
	*out = NULL;
	Arena *A = arena_new();
	const char *file = name ? name : "<string>";
	Spec *s = spec_parse(A, &ctx->diags, file, yaml, strlen(yaml));
	return finish_compile(ctx, A, s ? model_from_spec(A, &ctx->diags, s, file) : NULL,
	                      o, out);
}

void dc_model_free(dc_model *m)
{
	if (!m)
		return;
	compiled_free(m->c);
	arena_free(m->A);
	free(m);
}

const rt_program *dc_model_program(const dc_model *m) { return m ? &m->c->prog : NULL; }

double dc_model_compile_seconds(const dc_model *m)
{
	return m ? m->c->compile_seconds : 0;
}

dc_status dc_session_new(dc_model *m, uint64_t seed, dc_session **out)
{
	if (!m || !out)
		return DC_ERR_ARG;
	dc_session *s = calloc(1, sizeof *s);
	if (!s || !(s->rt = rt_session_new(&m->c->prog))) {
		free(s);
		return DC_ERR_NOMEM;
	}
	s->m = m;
	rt_session_init(s->rt, seed);
	*out = s;
	return DC_OK;
}

void dc_session_free(dc_session *s)
{
	if (!s)
		return;
	rt_session_free(s->rt);
	free(s);
}

rt_session *dc_session_runtime(dc_session *s) { return s ? s->rt : NULL; }

const char *dc_session_error(const dc_session *s) { return s ? s->error : ""; }

static dc_status fail(dc_session *s, dc_status st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->error, sizeof s->error, fmt, ap);
	va_end(ap);
	return st;
}

static int io_slot(const rt_program *p, const char *name)
{
	for (int i = 0; name && i < p->nio; i++)
		if (!strcmp(p->io[i].name, name))
			return i;
	return -1;
}

static dc_status io_copy(dc_session *s, const char *name, void *data, size_t bytes,
                         int in)
{
	if (!s)
		return DC_ERR_ARG;
	if (!data)
		return fail(s, DC_ERR_ARG, "'%s': the data pointer is NULL",
		            name ? name : "(null)");
	const rt_program *p = &s->m->c->prog;
	int k = io_slot(p, name);
	if (k < 0 || p->io[k].kind != (in ? RT_IO_INPUT : RT_IO_OUTPUT))
		return fail(s, DC_ERR_ARG, "the model has no %s named '%s'",
		            in ? "input" : "output", name ? name : "(null)");
	size_t want = (size_t)p->io[k].numel * 4;
	if (bytes != want)
		return fail(s, DC_ERR_ARG, "'%s' takes %zu bytes (%lld values), got %zu",
		            name, want, (long long)p->io[k].numel, bytes);
	/* integers index: labels name one of the classes, indices a row of a table */
	int64_t limit = in ? p->io[k].limit : 0; /* (rt_io.limit) */
	for (int64_t i = 0; limit > 0 && i < p->io[k].numel; i++) {
		int32_t v = ((const int32_t *)data)[i];
		if (v < 0 || v >= limit)
			return fail(s, DC_ERR_ARG,
			            "'%s'[%lld] is %d, outside 0 to %lld: the classes or "
			            "rows it indexes",
			            name, (long long)i, (int)v, (long long)limit - 1);
	}
	if (in)
		memcpy(s->rt->io[k], data, bytes);
	else
		memcpy(data, s->rt->io[k], bytes);
	return DC_OK;
}

dc_status dc_set_input(dc_session *s, const char *name, const void *data, size_t bytes)
{
	return io_copy(s, name, (void *)data, bytes, 1);
}

dc_status dc_get_output(dc_session *s, const char *name, void *data, size_t bytes)
{
	return io_copy(s, name, data, bytes, 0);
}

/* "nan", "inf" or "-inf": printf's "-nan" says nothing more */
static const char *nonfinite(float x)
{
	return isnan(x) ? "nan" : x > 0 ? "inf" : "-inf";
}

/* Runs an entry point: a step it refused (rt_fn) is an error, and so is a loss that is
 * not finite from one that computes it (the step reads none). */
static dc_status run(dc_session *s, rt_fn fn, unsigned bit, const char *what, float *loss)
{
	if (!s)
		return DC_ERR_ARG;
	if (!fn && s->m->entry_points && !(s->m->entry_points & bit))
		return fail(s, DC_ERR_UNSUPPORTED,
		            "%s was not compiled (dc_options.entry_points)", what);
	if (!fn)
		return fail(s, DC_ERR_UNSUPPORTED, "the model has no %s function", what);
	const rt_program *p = &s->m->c->prog;
	int refused = fn(s->rt->bufs) != 0;
	int has_loss = p->io_loss >= 0 && fn != p->forward && fn != p->step;
	float l = has_loss ? *(float *)s->rt->io[p->io_loss] : 0;
	if (loss)
		*loss = l;
	if (refused && fn == p->grad)
		return fail(s, DC_ERR_NUMERIC,
		            "grad: nothing written back: the loss (%g) or a running "
		            "statistic (batch norm's) is not finite; the gradients are "
		            "written as they are",
		            (double)l);
	if (refused)
		return fail(
		    s, DC_ERR_NUMERIC,
		    "%s: no step taken, parameters and optimizer state unchanged: "
		    "the loss, a gradient or a new parameter or state value is not "
		    "finite, or a parameter's step is above 2^100",
		    what);
	if (has_loss && !isfinite(l))
		return fail(s, DC_ERR_NUMERIC, "%s: the loss is %s", what, nonfinite(l));
	s->rt->step += fn == p->train_step;
	return DC_OK;
}

/* The fused step: generated code writes no parameter or state when the loss or an
 * updated value is not finite (the loss then reads NaN), so nothing non-finite stays. */
dc_status dc_train_step(dc_session *s, float *loss)
{
	return s ? run(s, s->m->c->prog.train_step, DC_TRAIN_STEP, "train_step", loss)
	         : DC_ERR_ARG;
}

dc_status dc_grad(dc_session *s, float *loss)
{
	return s ? run(s, s->m->c->prog.grad, DC_GRAD, "grad", loss) : DC_ERR_ARG;
}

dc_status dc_step(dc_session *s)
{
	return s ? run(s, s->m->c->prog.step, DC_STEP, "step", NULL) : DC_ERR_ARG;
}

dc_status dc_forward(dc_session *s)
{
	return s ? run(s, s->m->c->prog.forward, DC_FORWARD, "forward", NULL)
	         : DC_ERR_ARG;
}

dc_status dc_evaluate(dc_session *s, float *loss)
{
	return s ? run(s, s->m->c->prog.evaluate, DC_EVALUATE, "evaluate", loss)
	         : DC_ERR_ARG;
}

static const rt_param *param_of(dc_session *s, const char *name, size_t count,
                                dc_status *st)
{
	const rt_program *p = &s->m->c->prog;
	for (int i = 0; name && i < p->nparam; i++)
		if (!strcmp(p->params[i].name, name)) {
			if ((size_t)p->params[i].numel == count)
				return &p->params[i];
			*st = fail(s, DC_ERR_ARG, "'%s' has %lld values, not %zu", name,
			           (long long)p->params[i].numel, count);
			return NULL;
		}
	*st = fail(s, DC_ERR_ARG, "the model has no parameter '%s'",
	           name ? name : "(null)");
	return NULL;
}

static dc_status param_copy(dc_session *s, const char *name, float *data, size_t count,
                            int what)
{
	if (!s)
		return DC_ERR_ARG;
	if (!data)
		return fail(s, DC_ERR_ARG, "'%s': the data pointer is NULL",
		            name ? name : "(null)");
	dc_status st = DC_OK;
	const rt_param *q = param_of(s, name, count, &st);
	if (!q)
		return st;
	float *buf = (what == 2 ? s->rt->grads : s->rt->params) + q->offset;
	if (what == 1) {
		for (size_t i = 0; i < count; i++)
			if (!isfinite(data[i]))
				return fail(s, DC_ERR_ARG, "'%s'[%zu] is not finite (%s)",
				            name, i, nonfinite(data[i]));
		memcpy(buf, data, count * sizeof *data);
	} else {
		memcpy(data, buf, count * sizeof *data);
	}
	return DC_OK;
}

dc_status dc_get_param(dc_session *s, const char *name, float *data, size_t count)
{
	return param_copy(s, name, data, count, 0);
}

dc_status dc_set_param(dc_session *s, const char *name, const float *data, size_t count)
{
	return param_copy(s, name, (float *)data, count, 1);
}

dc_status dc_get_grad(dc_session *s, const char *name, float *data, size_t count)
{
	return param_copy(s, name, data, count, 2);
}

dc_status dc_set_hyper(dc_session *s, const char *name, double value)
{
	if (!s)
		return DC_ERR_ARG;
	if (!name)
		return fail(s, DC_ERR_ARG, "the hyperparameter's name is NULL");
	double lo, hi;
	char open = 0;
	const rt_program *p = &s->m->c->prog;
	int k = 0;
	while (k < p->nhyper && strcmp(p->hyper_names[k], name))
		k++;
	if (k == p->nhyper)
		return fail(s, DC_ERR_ARG, "the model has no hyperparameter '%s'", name);
	if (!strncmp(name, "1-", 2))
		return fail(s, DC_ERR_ARG, "'%s' is set with '%s'", name, name + 2);
	if (!(fabs(value) <= FLT_MAX)) /* (a float, once set; the cast is UB past it) */
		return fail(s, DC_ERR_ARG, "'%s' must be finite, got %s", name,
		            isnan(value)   ? "nan"
		            : isinf(value) ? nonfinite((float)value)
		                           : "a value beyond float's range");
	if (!strcmp(name, "seed") && !rt_is_dropout_seed(value))
		return fail(s, DC_ERR_ARG,
		            "'seed' (dropout's) must be a whole number from 0 to %d, got "
		            "%.9g; rt_dropout_seed makes one of any 64-bit seed",
		            RT_DROPOUT_SEEDS - 1, value);
	/* the range holds for the float stored: 0.99999999 is 1.0f, 1e-46 is 0 */
	double v = (float)value;
	if (hyper_range(name, &lo, &hi, &open) &&
	    (v < lo || v > hi || (open == '>' && v == lo) || (open == '<' && v == hi)))
		return fail(s, DC_ERR_ARG, "'%s' must be %s %g and %s %g, got %.9g%s",
		            name, open == '>' ? "above" : "at least", lo,
		            open == '<' ? "below" : "at most", hi, value,
		            v != value ? " (as a float)" : "");
	rt_set_hyper(s->rt, name, value);
	return DC_OK;
}

dc_status dc_save_params(dc_session *s, const char *path)
{
	if (!s)
		return DC_ERR_ARG;
	if (!path)
		return fail(s, DC_ERR_ARG, "the path is NULL");
	if (rt_save_params(s->rt, path, 0, NULL, NULL, s->error, sizeof s->error) < 0)
		return DC_ERR_IO;
	return DC_OK;
}

dc_status dc_load_params(dc_session *s, const char *path)
{
	if (!s)
		return DC_ERR_ARG;
	if (!path)
		return fail(s, DC_ERR_ARG, "the path is NULL");
	rt_st_file f;
	if (rt_st_load(path, &f, s->error, sizeof s->error) < 0)
		return DC_ERR_IO;
	int bad = rt_load_params(s->rt, &f, s->error, sizeof s->error);
	rt_st_free(&f);
	return bad ? DC_ERR_ARG : DC_OK;
}
