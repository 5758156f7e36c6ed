/* Ahead of time: a model compiled to a file users ship without LLVM.
 *
 * The object holds the same five entry points as the JIT's (forward, evaluate, grad,
 * step, train_step), named <prefix><function>, for any target LLVM knows (x86-64,
 * aarch64, ...). The header is plain C: the sizes as constants, the entry points'
 * prototypes, the parameter, state and io tables, and an rt_program that ties them
 * together, so a program that includes it and links the object with the runtime
 * library alone can train (rt_session_new(&<prefix>program), rt_train_epoch, ...).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dc.h"

/* A growing text buffer. */
typedef struct Text {
	char *s;
	size_t n, cap;
} Text;

__attribute__((format(printf, 2, 3))) static void put(Text *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (t->n + (size_t)k + 1 > t->cap) {
		t->cap = (t->n + (size_t)k + 1) * 2;
		t->s = realloc(t->s, t->cap);
		if (!t->s)
			die("out of memory");
	}
	va_start(ap, fmt);
	vsnprintf(t->s + t->n, (size_t)k + 1, fmt, ap);
	va_end(ap);
	t->n += (size_t)k;
}

static const char *init_name(rt_init i)
{
	static const char *const names[] = {
	    "RT_INIT_ZEROS",          "RT_INIT_ONES",         "RT_INIT_KAIMING_UNIFORM",
	    "RT_INIT_XAVIER_UNIFORM", "RT_INIT_TORCH_LINEAR", "RT_INIT_CONSTANT",
	    "RT_INIT_NORMAL"};
	return names[i];
}

static void shape_init(Text *t, int rank, const int64_t *shape)
{
	put(t, "{");
	for (int i = 0; i < rank; i++)
		put(t, "%s%lld", i ? ", " : "", (long long)shape[i]);
	put(t, "}");
}

static void tables(Text *t, const char *P, const rt_program *p)
{
	put(t, "static const rt_param %sparams[] = {\n", P);
	for (int i = 0; i < p->nparam; i++) {
		const rt_param *q = &p->params[i];
		put(t, "\t{.name = \"%s\", .rank = %d, .shape = ", q->name, q->rank);
		shape_init(t, q->rank, q->shape);
		put(t,
		    ", .offset = %lld, .numel = %lld, .init = %s, .value = %.17g, "
		    ".fan_in = %lld, "
		    ".fan_out = %lld, .trainable = %d},\n",
		    (long long)q->offset, (long long)q->numel, init_name(q->init),
		    q->value, (long long)q->fan_in, (long long)q->fan_out, q->trainable);
	}
	put(t, "\t{0}};\n\nstatic const rt_state %sstates[] = {\n", P);
	for (int i = 0; i < p->nstates; i++) {
		const rt_state *q = &p->states[i];
		put(t,
		    "\t{.name = \"%s\", .offset = %lld, .numel = %lld, .rank = %d, "
		    ".shape = ",
		    q->name, (long long)q->offset, (long long)q->numel, q->rank);
		shape_init(t, q->rank, q->shape);
		put(t, "},\n");
	}
	put(t, "\t{0}};\n\nstatic const rt_io %sio[] = {\n", P);
	for (int i = 0; i < p->nio; i++) {
		const rt_io *q = &p->io[i];
		put(t,
		    "\t{.name = \"%s\", .kind = %s, .dtype = %s, .rank = %d, .shape = ",
		    q->name, q->kind == RT_IO_INPUT ? "RT_IO_INPUT" : "RT_IO_OUTPUT",
		    q->dtype == RT_I32 ? "RT_I32" : "RT_F32", q->rank);
		shape_init(t, q->rank, q->shape);
		put(t, ", .numel = %lld},\n", (long long)q->numel);
	}
	put(t, "\t{0}};\n\nstatic const char *const %shyper_names[] = {", P);
	for (int i = 0; i < p->nhyper; i++)
		put(t, "\"%s\", ", p->hyper_names[i]);
	put(t, "0};\nstatic const float %shyper_init[] = {", P);
	for (int i = 0; i < p->nhyper; i++)
		put(t, "%.9g, ", (double)p->hyper_init[i]);
	put(t, "0};\n\n");
}

static void header(Text *t, const char *P, const char *guard, const Model *m,
                   const rt_program *p)
{
	put(t,
	    "/* %s: compiled by descent from %s. Link with the object and "
	    "libdescent_rt.a (and -pthread).\n"
	    " * Large loops run on the runtime's thread pool: rt_set_threads(n) before a "
	    "step, 1 by default;\n"
	    " * results are the same for any n. On x86 a step runs with denormals "
	    "flushed "
	    "to zero and\n"
	    " * restores the caller's MXCSR. */\n",
	    m->name, m->file ? m->file : "a model");
	put(t, "#ifndef %s\n#define %s\n\n#include <descent/runtime.h>\n\n", guard,
	    guard);
	char up[256];
	size_t k = 0;
	for (; P[k] && k < sizeof up - 1; k++)
		up[k] = (char)toupper((unsigned char)P[k]);
	up[k] = 0;
	put(t,
	    "#define %sBATCH %lld\n#define %sPARAM_FLOATS %lld /* parameters and "
	    "gradients */\n",
	    up, (long long)p->batch, up, (long long)p->nparams);
	put(t,
	    "#define %sSTATE_FLOATS %lld /* optimizer state */\n#define %sWORK_FLOATS "
	    "%lld /* workspace */\n",
	    up, (long long)p->nstate, up, (long long)p->nwork);
	put(t, "#define %sNPARAM %d\n#define %sNIO %d\n\n", up, p->nparam, up, p->nio);
	rt_fn fns[FN_COUNT] = {p->forward, p->evaluate, p->grad, p->step, p->train_step};
	for (int f = 0; f < FN_COUNT; f++)
		if (fns[f])
			put(t, "int %s%s(void *const *bufs);\n", P, fn_names[f]);
	put(t, "\n");
	tables(t, P, p);
	put(t, "static const rt_program %sprogram = {\n", P);
	put(t, "\t.batch = %lld, .nparams = %lld, .nstate = %lld, .nwork = %lld,\n",
	    (long long)p->batch, (long long)p->nparams, (long long)p->nstate,
	    (long long)p->nwork);
	put(t,
	    "\t.nhyper = %d, .hyper_names = %shyper_names, .hyper_init = %shyper_init,\n",
	    p->nhyper, P, P);
	put(t, "\t.nparam = %d, .params = %sparams, .nstates = %d, .states = %sstates,\n",
	    p->nparam, P, p->nstates, P);
	put(t, "\t.nio = %d, .io = %sio,\n", p->nio, P);
	put(t,
	    "\t.io_x = %d, .io_y = %d, .io_weight = %d, .io_loss = %d, .io_output = "
	    "%d,\n",
	    p->io_x, p->io_y, p->io_weight, p->io_loss, p->io_output);
	put(t, "\t.graph_hash = 0x%016llxull,\n", (unsigned long long)p->graph_hash);
	for (int f = 0; f < FN_COUNT; f++)
		put(t, "\t.%s = %s%s%s,\n", fn_names[f], fns[f] ? P : "",
		    fns[f] ? fn_names[f] : "0", "");
	put(t, "};\n\n#endif\n");
}

static int write_file(Diags *d, const char *path, const void *data, size_t size)
{
	char err[512];
	const void *parts[1] = {data};
	if (rt_write_atomic(path, parts, &size, 1, err, sizeof err) < 0) {
		error_at(d, (SrcLoc){0}, "%s", err);
		return -1;
	}
	return 0;
}

/* A shared library: the object, linked by the system's C compiler. */
static int write_shared(Diags *d, const char *path, const ObjCode *obj)
{
	char tmp[] = "/tmp/descent-XXXXXX.o", cmd[8192];
	int fd = mkstemps(tmp, 2);
	if (fd < 0 || write(fd, obj->data, obj->size) != (ssize_t)obj->size) {
		error_at(d, (SrcLoc){0}, "cannot write a temporary object file");
		if (fd >= 0)
			close(fd), unlink(tmp);
		return -1;
	}
	close(fd);
	snprintf(cmd, sizeof cmd, "cc -shared -o '%s' '%s' -lm", path, tmp);
	int rc = system(cmd);
	unlink(tmp);
	if (rc != 0) {
		error_at(d, (SrcLoc){0}, "linking %s with 'cc -shared' failed", path);
		return -1;
	}
	return 0;
}

int aot_compile(Diags *d, const Model *m, int64_t batch, const AotOpts *o)
{
	Arena *A = arena_new();
	int status = -1;
	ObjCode obj = {0};
	int64_t nwork = 0;
	Graph *g = lower_model(A, d, m, batch);
	char *P = arena_printf(A, "%s",
	                       o->prefix ? o->prefix : arena_printf(A, "%s_", m->name));
	for (char *c = P; *c; c++) /* a C identifier */
		if (!isalnum((unsigned char)*c))
			*c = '_';
	CodegenOpts co = {.opt_level = o->opt_level,
	                  .prefix = P,
	                  .triple = o->triple,
	                  .cpu = o->cpu,
	                  .features = o->features,
	                  .emit = o->emit == AOT_SHARED ? EMIT_OBJ : (EmitKind)o->emit};
	if (!g || cg_compile(g, &co, &obj, &nwork, NULL) < 0)
		goto done;
	if (o->emit == AOT_SHARED ? write_shared(d, o->out, &obj)
	                          : write_file(d, o->out, obj.data, obj.size))
		goto done;
	if (o->header) {
		rt_program p = {0};
		program_describe(g, batch, nwork, &p);
		p.forward =
		    g->fns[FN_FORWARD].defined ? (rt_fn)1 : NULL; /* which exist */
		p.evaluate = g->fns[FN_EVALUATE].defined ? (rt_fn)1 : NULL;
		p.grad = g->fns[FN_GRAD].defined ? (rt_fn)1 : NULL;
		p.step = g->fns[FN_STEP].defined ? (rt_fn)1 : NULL;
		p.train_step = g->fns[FN_TRAIN_STEP].defined ? (rt_fn)1 : NULL;
		Text t = {0};
		char guard[256];
		snprintf(guard, sizeof guard, "DESCENT_%sH", P);
		for (char *c = guard; *c; c++)
			*c = isalnum((unsigned char)*c) ? (char)toupper((unsigned char)*c)
			                                : '_';
		header(&t, P, guard, m, &p);
		int bad = write_file(d, o->header, t.s, t.n);
		free(t.s);
		if (bad)
			goto done;
	}
	status = 0;
done:
	objcode_free(&obj);
	arena_free(A);
	return status;
}
