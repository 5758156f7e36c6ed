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

#include <llvm-c/Core.h>
#include <llvm-c/ErrorHandling.h>
#include <llvm-c/TargetMachine.h>

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

/* {d0, d1, ...}, or {0} for a scalar (ISO C has no empty braces) */
static void shape_init(Text *t, int rank, const int64_t *shape)
{
	put(t, "{");
	for (int i = 0; i < rank; i++)
		put(t, "%s%lld", i ? ", " : "", (long long)shape[i]);
	put(t, rank ? "}" : "0}");
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
		put(t, ", .numel = %lld, .limit = %lld},\n", (long long)q->numel,
		    (long long)q->limit);
	}
	put(t, "\t{0}};\n\nstatic const char *const %shyper_names[] = {", P);
	for (int i = 0; i < p->nhyper; i++)
		put(t, "\"%s\", ", p->hyper_names[i]);
	put(t, "0};\nstatic const float %shyper_init[] = {", P);
	for (int i = 0; i < p->nhyper; i++)
		put(t, "%.9g, ", (double)p->hyper_init[i]);
	put(t, "0};\n\n");
}

/* s for a C comment (a model's name or path): a star and a slash in it would end it,
 * and a slash and a star draw a warning */
static char *comment_safe(Arena *A, const char *s)
{
	char *safe = arena_alloc(A, 2 * strlen(s) + 1), *w = safe;
	for (const char *c = s; *c; c++)
		if (((*w++ = *c) == '*' && c[1] == '/') || (*c == '/' && c[1] == '*'))
			*w++ = ' ';
	*w = 0;
	return safe;
}

static void header(Text *t, Arena *A, const char *P, const char *guard, const Model *m,
                   const rt_program *p, const AotOpts *o)
{
	char up[256]; /* the macros' prefix */
	size_t k = 0;
	for (; P[k] && k < sizeof up - 1; k++)
		up[k] = (char)toupper((unsigned char)P[k]);
	up[k] = 0;
	put(t,
	    "/* %s: compiled by descent from %s. Link with the object and "
	    "libdescent_rt.a\n"
	    " * (and -pthread -lz -lm).\n",
	    comment_safe(A, m->name), comment_safe(A, m->file ? m->file : "a model"));
	if (!o->triple && !o->cpu) {
		char *cpu = LLVMGetHostCPUName();
		put(t,
		    " * Compiled for the CPU it was compiled on (%s), with all its "
		    "instructions: on a CPU\n"
		    " * without them it stops at an illegal instruction. For other "
		    "machines, compile with\n"
		    " * --cpu (x86-64-v3: AVX2, x86-64-v2, x86-64) or --target.\n",
		    comment_safe(A, cpu));
		LLVMDisposeMessage(cpu);
	} else {
		put(t, " * Compiled for %s%s%s.\n",
		    o->triple ? comment_safe(A, o->triple) : "this host's triple",
		    o->cpu ? ", CPU " : "", o->cpu ? comment_safe(A, o->cpu) : "");
	}
	put(t,
	    " * Large loops run on the runtime's thread pool: rt_set_threads(n) before a "
	    "step, 1 by default;\n"
	    " * results are the same for any n. On x86 a step runs with denormals "
	    "flushed to zero and\n"
	    " * restores the caller's MXCSR. grad is a training-mode forward and "
	    "backward: like\n"
	    " * train_step, it advances batch norm's running statistics and dropout's "
	    "masks.\n"
	    " *\n"
	    " * The simplest use: rt_session *s = rt_session_new(&%sprogram); "
	    "rt_session_init(s, seed);\n"
	    " * then rt_train_epoch, rt_evaluate, rt_predict, or the rt_trainer "
	    "(descent/runtime.h).\n"
	    " * Calling the entry points directly: bufs is RT_IO0 + %sNIO pointers, "
	    "the floats of\n"
	    " * the parameters and of the gradients (%sPARAM_FLOATS each), the "
	    "optimizer state\n"
	    " * (%sSTATE_FLOATS), the workspace (%sWORK_FLOATS), the hyperparameters "
	    "(%shyper_init's\n"
	    " * values), then one per io slot of %sio, in order. The \"weight\" input "
	    "holds 1 for\n"
	    " * each row of the batch that counts and 0 for padding (weights all 0 "
	    "give a NaN loss);\n"
	    " * the \"seed\" hyper draws dropout's masks (rt_dropout_seed). */\n",
	    P, up, up, up, up, P, P);
	put(t, "#ifndef %s\n#define %s\n\n#include <descent/runtime.h>\n\n", guard,
	    guard);
	/* the macros are upper case: another model's of prefix NET_ for net_ would
	 * redefine them, a warning, and size buffers wrong */
	put(t,
	    "#ifdef %sBATCH\n#error \"%sBATCH is defined: another descent header has "
	    "the macros of this prefix; compile one of the models with another "
	    "--prefix\"\n#endif\n",
	    up, up);
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
	put(t, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n");
	for (int f = 0; f < FN_COUNT; f++)
		if (fns[f])
			put(t, "int %s%s(void *const *bufs);\n", P, fn_names[f]);
	put(t, "#ifdef __cplusplus\n}\n#endif\n\n");
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
	static const char *const kinds[] = {"RT_LOSS_MEAN", "RT_LOSS_SUM",
	                                    "RT_LOSS_OTHER"};
	put(t, "\t.loss_kind = %s,\n", kinds[p->loss_kind]);
	/* in the struct's order: C++ (20) wants designators so */
	for (int f = 0; f < FN_COUNT; f++)
		put(t, "\t.%s = %s%s,\n", fn_names[f], fns[f] ? P : "",
		    fns[f] ? fn_names[f] : "0");
	put(t, "\t.graph_hash = 0x%016llxull,\n", (unsigned long long)p->graph_hash);
	put(t, "};\n\n#endif\n");
}

/* A shared library: the object, linked by the system's C compiler (run without a
 * shell) into a temporary file, then written to path whole (rt_write_atomic). */
static int link_shared(Diags *d, const char *path, const ObjCode *obj, char **data,
                       size_t *size)
{
	char o[] = "/tmp/descent-XXXXXX.o", so[] = "/tmp/descent-XXXXXX.so";
	int fd = mkstemps(o, 2), fs = mkstemps(so, 3), rc = -1;
	if (fs >= 0)
		close(fs);
	if (fd < 0 || fs < 0 || write(fd, obj->data, obj->size) != (ssize_t)obj->size) {
		error_at(d, (SrcLoc){0}, "cannot write a temporary object file");
		goto done;
	}
	char *argv[] = {"cc", "-shared", "-o", so, o, "-lm", NULL};
	if (run_program(argv) != 0) {
		error_at(d, (SrcLoc){0}, "linking %s with 'cc -shared' failed", path);
		goto done;
	}
	if (!(*data = read_whole(so, size)))
		error_at(d, (SrcLoc){0}, "cannot read the linked library %s", so);
	else
		rc = 0;
done:
	if (fd >= 0)
		close(fd), unlink(o);
	if (fs >= 0)
		unlink(so);
	return rc;
}

/* Whether a file can be written at path: its directory takes files, and path is not
 * a directory (checked before anything is written, so that a header that cannot be
 * written does not leave a new object beside an old header). */
static int writable(Diags *d, const char *path)
{
	char buf[4200];
	const char *why = cannot_write(path, 0, buf, sizeof buf);
	if (why)
		error_at(d, (SrcLoc){0}, "%s: %s", path, why);
	return !why;
}

/* LLVM's fatal errors for a CPU or target it does not take (an x86-64 target with
 * --cpu pentium99 has no 64-bit subtarget): said as an error, and exit status 1, not
 * an abort (LLVM aborts when the handler returns). Nothing has been written yet. */
static void llvm_fatal(const char *reason)
{
	fprintf(stderr,
	        "descent: error: LLVM cannot compile for this target: %s (check "
	        "--target and --cpu)\n",
	        reason);
	fflush(stderr);
	_exit(1);
}

int aot_compile(Diags *d, const Model *m, int64_t batch, const AotOpts *o)
{
	Arena *A = arena_new();
	int status = -1;
	ObjCode obj = {0};
	Text t = {0};
	int64_t nwork = 0;
	/* the names' prefix: letters, digits and _, starting with a letter (a leading _
	 * is the C library's), and none of the runtime's. One from the model's name has
	 * its other characters made _ and an m before a bad start; --prefix is taken as
	 * given or refused, so that two prefixes never become one. */
	char *P = arena_printf(A, "%s",
	                       o->prefix ? o->prefix : arena_printf(A, "%s_", m->name));
	int bad = 0;
	for (char *c = P; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '_')
			bad = 1, *c = '_';
	if (!o->prefix && (!isalpha((unsigned char)P[0]) || !strncmp(P, "rt_", 3) ||
	                   !strncmp(P, "dc_", 3) || !strncmp(P, "RT_", 3) ||
	                   !strncmp(P, "DC_", 3))) /* a name like 3layer or rt_net */
		P = arena_printf(A, "m%s", P);
	if ((o->prefix && bad) || strlen(P) > 200 || !isalpha((unsigned char)P[0]) ||
	    !strncmp(P, "rt_", 3) || !strncmp(P, "dc_", 3) || !strncmp(P, "RT_", 3) ||
	    !strncmp(P, "DC_", 3)) {
		error_at(
		    d, (SrcLoc){0},
		    "--prefix '%s': the names need a prefix of letters, digits and _ "
		    "that starts with a letter, is not the runtime's (rt_, dc_) and "
		    "has at most 200 characters%s",
		    o->prefix ? o->prefix : P,
		    o->prefix ? "" : " (this one is made of the model's name: give one)");
		goto done;
	}
	if (!writable(d, o->out) || (o->header && !writable(d, o->header)))
		goto done;
	Graph *g = lower_model(A, d, m, batch);
	CodegenOpts co = {.opt_level = o->opt_level,
	                  .prefix = P,
	                  .triple = o->triple,
	                  .cpu = o->cpu,
	                  .features = o->features,
	                  .emit = o->emit == AOT_SHARED ? EMIT_OBJ : (EmitKind)o->emit};
	if (o->cpu || o->triple || o->features)
		LLVMInstallFatalErrorHandler(llvm_fatal);
	int compiled = g && cg_compile(g, &co, &obj, &nwork, NULL) == 0;
	LLVMResetFatalErrorHandler();
	if (!compiled)
		goto done;
	if (o->header) { /* made before anything is written */
		rt_program p = {0};
		program_describe(g, batch, nwork, &p);
		p.forward =
		    g->fns[FN_FORWARD].defined ? (rt_fn)1 : NULL; /* which exist */
		p.evaluate = g->fns[FN_EVALUATE].defined ? (rt_fn)1 : NULL;
		p.grad = g->fns[FN_GRAD].defined ? (rt_fn)1 : NULL;
		p.step = g->fns[FN_STEP].defined ? (rt_fn)1 : NULL;
		p.train_step = g->fns[FN_TRAIN_STEP].defined ? (rt_fn)1 : NULL;
		/* DESCENT_MODEL_<P>H, P as it is: not runtime.h's or descent.h's guard,
		 * nor that of a header of prefix NET_ for net_ (the second one was
		 * skipped, and its names undeclared) */
		char *guard = arena_printf(A, "DESCENT_MODEL_%sH", P);
		header(&t, A, P, guard, m, &p, o);
	}
	/* the object (or library) and the header written together: both or neither */
	char *lib = NULL, err[1024];
	size_t nlib = 0;
	if (o->emit == AOT_SHARED && link_shared(d, o->out, &obj, &lib, &nlib))
		goto done;
	const void *body[1] = {lib ? (const void *)lib : obj.data}, *head[1] = {t.s};
	size_t nbody = lib ? nlib : obj.size;
	rt_output outs[2] = {{o->out, body, &nbody, 1}, {o->header, head, &t.n, 1}};
	if (rt_write_atomic_all(outs, o->header ? 2 : 1, err, sizeof err) < 0) {
		error_at(d, (SrcLoc){0}, "%s", err);
		free(lib);
		goto done;
	}
	free(lib);
	status = 0;
done:
	free(t.s);
	objcode_free(&obj);
	arena_free(A);
	return status;
}
