/* The `descent` command line, tools: grad (loss and gradients at given parameters),
 * compile (ahead of time), gradcheck (against finite differences), bench and ir (any
 * stage as text or Graphviz). main.c parses the options and calls these; see cli.h.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"

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
int cmd_grad(const Opts *o, Diags *d, Arena *A)
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
		fprintf(stderr, "descent: error: grad needs %s\n",
		        !o->out && m->ninputs && !o->inputs ? "--out and --inputs"
		        : !o->out                           ? "--out"
		                  : "--inputs (the model has data)");
		return 2;
	}
	if (!can_write("--out", o->out, 0)) /* before the work, as every output is */
		return 1;
	if ((o->inputs && rt_st_load(o->inputs, &xf, err, sizeof err) < 0) ||
	    (o->params && rt_st_load(o->params, &pf, err, sizeof err) < 0)) {
		fprintf(stderr, "descent: error: %s\n", err);
		goto done;
	}
	int64_t batch = m->ninputs ? file_batch(m, &xf) : 1;
	if (m->ninputs && batch < 1) {
		fprintf(stderr,
		        "descent: error: %s: no tensor for any of the model's inputs\n",
		        o->inputs);
		goto done;
	}
	CodegenOpts co = {.opt_level = o->opt_level, .fns = 1u << FN_GRAD};
	if (!(c = compile_model(d, m, batch, &co)) || !(s = rt_session_new(&c->prog)))
		goto done;
	rt_session_init(s, o->seed >= 0 ? (uint64_t)o->seed : m->seed);
	const char *bad =
	    o->params && rt_load_params(s, &pf, err, sizeof err) < 0   ? o->params
	    : o->inputs && rt_load_inputs(s, &xf, err, sizeof err) < 0 ? o->inputs
	                                                               : NULL;
	if (bad) {
		fprintf(stderr, "descent: error: %s: %s\n", bad, err);
		goto done;
	}
	for (int k = 0; k < c->prog.nio; k++) { /* labels and indices in range */
		const rt_io *io = &c->prog.io[k];
		int64_t limit = io->limit; /* (0: none) */
		const int32_t *v = s->io[k];
		for (int64_t i = 0; limit > 0 && i < io->numel; i++)
			if (v[i] < 0 || v[i] >= limit) {
				fprintf(
				    stderr,
				    "descent: error: %s: tensor '%s': element %lld, %d, "
				    "is "
				    "outside 0 to %lld, the classes or rows it indexes\n",
				    o->inputs, io->name, (long long)i, (int)v[i],
				    (long long)limit - 1);
				goto done;
			}
	}
	if (c->prog.grad(s->bufs)) /* (the session's write-backs are not saved) */
		fprintf(stderr,
		        "descent: warning: a running statistic (batch norm's) of this "
		        "forward pass is not finite\n");
	const float *loss = s->io[c->prog.io_loss];
	if (rt_save_params(s, o->out, 1, "loss", loss, err, sizeof err) < 0) {
		fprintf(stderr, "descent: error: %s\n", err);
		goto done;
	}
	printf("loss %.9g; gradients of %d parameters written to %s\n", *loss,
	       c->prog.nparam, o->out);
	status = 0;
done:
	rt_session_free(s);
	compiled_free(c);
	rt_st_free(&pf);
	rt_st_free(&xf);
	return status;
}

/* Ahead of time: an object (or assembly, LLVM IR, bitcode, a shared library) and a C
 * header, for a program that links the runtime alone. */
int cmd_compile(const Opts *o, Diags *d, Arena *A)
{
	static const char *const emits[] = {"obj", "asm", "llvm", "bc", "shared"};
	int emit = 0;
	while (o->emit && emit < 5 && strcmp(o->emit, emits[emit]))
		emit++;
	if (o->target && !o->target[0]) {
		fprintf(stderr, "descent: error: --target takes a triple "
		                "(x86_64-linux-gnu, aarch64-linux-gnu...), got ''\n");
		return 2;
	}
	if (emit == 5 || !o->out) {
		fprintf(stderr, "descent: error: %s\n",
		        !o->out ? "compile needs -o FILE"
		                : "--emit takes obj, asm, llvm, bc or shared");
		return 2;
	}
	Model *m = model_load(A, d, o->model);
	if (!m)
		return 1;
	AotOpts ao = {o->out, o->header, o->prefix,     o->target,
	              o->cpu, NULL,      (AotEmit)emit, o->opt_level};
	if (aot_compile(d, m, o->batch > 0 ? o->batch : m->batch, &ao) < 0)
		return 1;
	printf("wrote %s%s%s\n", o->out, o->header ? " and " : "",
	       o->header ? o->header : "");
	return 0;
}

/* The model's compiled gradients against float64 central differences (gradcheck.c):
 * one line per parameter; status 1 when one is past --tolerance. */
int cmd_gradcheck(const Opts *o, Diags *d, Arena *A)
{
	Model *m = model_load(A, d, o->model);
	if (!m)
		return 1;
	GradcheckOpts go = {o->batch > 0 ? o->batch : 0,
	                    o->seed >= 0 ? (uint64_t)o->seed : m->seed, o->params,
	                    o->tolerance, o->opt_level};
	int rc = gradcheck(d, m, &go, stdout);
	return rc < 0 ? 1 : rc;
}

/* A picture of the graph: Graphviz's dot renders the DOT text in dot_path to SVG (or
 * PNG, PDF), run without a shell, into a temporary file, and then into out through
 * rt_write_atomic: a failing dot leaves out as it was. */
static int render(const char *dot_path, const char *out)
{
	const char *ext = path_ext(out); /* (cmd_ir checked it: .svg, .png or .pdf) */
	char pic[] = "/tmp/descent-pic-XXXXXX", fmt[16], err[512];
	int fd = mkstemp(pic);
	if (fd < 0) {
		fprintf(stderr, "descent: error: cannot write a temporary file: %s\n",
		        strerror(errno));
		return 1;
	}
	close(fd);
	snprintf(fmt, sizeof fmt, "-T%s", ext + 1);
	for (char *c = fmt + 2; *c; c++) /* (.SVG is svg) */
		*c = (char)tolower((unsigned char)*c);
	char *argv[] = {"dot", fmt, (char *)dot_path, "-o", pic, NULL};
	int ran = run_program(argv), rc = 1;
	if (ran == 1) {
		fprintf(
		    stderr,
		    "descent: error: rendering %s needs Graphviz's dot: apt-get install "
		    "graphviz (or write DOT text with --format dot -o FILE.dot)\n",
		    out);
	} else if (ran != 0) {
		fprintf(stderr, "descent: error: dot could not render %s\n", out);
	} else {
		size_t len = 0;
		char *data = read_whole(pic, &len);
		const void *parts[1] = {data};
		if (!data)
			fprintf(stderr, "descent: error: cannot read dot's picture %s\n",
			        pic);
		else if (rt_write_atomic(out, parts, &len, 1, err, sizeof err) < 0)
			fprintf(stderr, "descent: error: %s\n", err);
		else
			rc = 0;
		free(data);
	}
	unlink(pic);
	return rc;
}

/* descent bench: steps/s, GFLOP/s and the share of the FMA peak for train_step. */
int cmd_bench(const Opts *o, Diags *d, Arena *A)
{
	Model *m = model_load(A, d, o->model);
	if (!m)
		return 1;
	if (!m->ninputs &&
	    o->batch > 0) /* (it was taken, and printed, as if it meant one) */
		fprintf(stderr,
		        "descent: warning: %s has no inputs: --batch is for models with "
		        "data\n",
		        m->file);
	BenchOpts bo = {o->batch > 0 ? o->batch : 0,
	                o->steps > 0 ? o->steps : 0,
	                o->threads > 0 ? (int)o->threads : 1,
	                o->opt_level,
	                0,
	                o->profile};
	return bench_run(d, m, &bo, stdout) < 0;
}

/* descent ir: text or Graphviz of any stage, to stdout or -o FILE (.svg/.png/.pdf are
 * rendered with Graphviz). */
int cmd_ir(const Opts *o, Diags *d, Arena *A)
{
	InspectOpts io = {ST_BACKWARD, -1, o->grad, 0, o->stats, o->opt_level, o->batch};
	/* -o's extension, in any case: .txt text, .dot DOT, .svg .png .pdf a picture
	 * (DOT rendered); another: --format's. One that --format contradicts is an
	 * error. */
	const char *ext = o->out ? path_ext(o->out) : NULL;
	static const char *const exts[] = {".txt", ".dot", ".svg", ".png", ".pdf"};
	int kind = -1; /* index in exts */
	for (int k = 0; ext && k < 5; k++)
		if (!strcasecmp(ext, exts[k]))
			kind = k;
	if (o->format && strcmp(o->format, "dot") && strcmp(o->format, "text")) {
		fprintf(stderr, "descent: error: --format takes text or dot, not '%s'\n",
		        o->format);
		return 2;
	}
	/* pictures it cannot draw (out.jpg got text); any other name is text (m.ll,
	 * m.s of the llvm and asm stages) */
	static const char *const other[] = {".jpg",  ".jpeg", ".gif", ".bmp", ".tif",
	                                    ".tiff", ".webp", ".eps", ".ps"};
	for (int k = 0; ext && kind < 0 && k < (int)(sizeof other / sizeof *other); k++)
		if (!strcasecmp(ext, other[k])) {
			fprintf(
			    stderr,
			    "descent: error: -o %s: ir draws .svg, .png or .pdf (with "
			    "Graphviz), or writes DOT (.dot) or text\n",
			    o->out);
			return 2;
		}
	int picture = kind >= 2, want_dot = o->format && !strcmp(o->format, "dot");
	if (o->format && kind >= 0 && want_dot != (kind >= 1)) {
		fprintf(stderr, "descent: error: --format %s, but -o %s is %s\n",
		        o->format, o->out, kind ? "a picture or DOT" : "text");
		return 2;
	}
	io.dot = picture || want_dot || kind == 1;
	if (o->grad && o->stage && strcmp(o->stage, "graph") &&
	    strcmp(o->stage, "backward") && strcmp(o->stage, "optimized")) {
		fprintf(stderr,
		        "descent: error: --grad slices the graph stages (graph, "
		        "backward, optimized), not %s\n",
		        o->stage);
		return 2;
	}
	if (o->grad && o->fn) {
		fprintf(stderr, "descent: error: --grad shows grad's chain rule to a "
		                "parameter; --fn picks a whole function: one or the "
		                "other\n");
		return 2;
	}
	if (o->stats && o->stage && !strcmp(o->stage, "spec")) {
		fprintf(stderr, "descent: error: --stats counts the compiled model's "
		                "ops; the spec stage compiles nothing\n");
		return 2;
	}
	if (o->stage) {
		int k = 0;
		while (k < 7 && strcmp(o->stage, stage_names[k]))
			k++;
		if (k == 7) {
			fprintf(
			    stderr,
			    "descent: error: unknown stage '%s' (spec, graph, backward, "
			    "optimized, kernels, llvm, asm)\n",
			    o->stage);
			return 2;
		}
		io.stage = (Stage)k;
	}
	if (io.dot && (io.stage == ST_SPEC || io.stage >= ST_LLVM)) {
		fprintf(
		    stderr,
		    "descent: error: DOT (--format dot, -o .dot/.svg/.png/.pdf) draws "
		    "the graph stages (graph, backward, optimized, kernels), not %s\n",
		    o->stage);
		return 2;
	}
	for (int k = 0; o->fn && k <= FN_COUNT; k++) {
		if (k == FN_COUNT) {
			fprintf(stderr,
			        "descent: error: unknown function '%s' (forward, "
			        "evaluate, grad, "
			        "step, train_step)\n",
			        o->fn);
			return 2;
		}
		if (!strcmp(o->fn, fn_names[k])) {
			io.fn = k;
			break;
		}
	}
	Model *m = model_load(A, d, o->model);
	if (!m)
		return 1;
	/* into memory first: an existing -o file is replaced only once it is all
	 * there (rt_write_atomic), and a picture's DOT text goes to dot in a file */
	char *text = NULL, err[512];
	size_t len = 0;
	FILE *f = o->out ? open_memstream(&text, &len) : stdout;
	if (!f) {
		fprintf(stderr, "descent: error: out of memory\n");
		return 1;
	}
	int bad = inspect(d, m, &io, f) < 0;
	if (o->out && fclose(f) != 0)
		bad = 1;
	if (!bad && o->out && picture) {
		char tmp[] = "/tmp/descent-ir-XXXXXX";
		int fd = mkstemp(tmp);
		FILE *t = fd >= 0 ? fdopen(fd, "w") : NULL;
		int ok = t && fwrite(text, 1, len, t) == len;
		if (t)
			ok &= fclose(t) == 0;
		else if (fd >= 0)
			close(fd);
		if (!ok) {
			fprintf(stderr,
			        "descent: error: cannot write a temporary file\n");
			bad = 1;
		} else {
			bad = render(tmp, o->out);
		}
		if (fd >= 0)
			unlink(tmp);
	} else if (!bad && o->out) {
		const void *parts[1] = {text};
		if (rt_write_atomic(o->out, parts, &len, 1, err, sizeof err) < 0) {
			fprintf(stderr, "descent: error: %s\n", err);
			bad = 1;
		}
	}
	free(text);
	return bad;
}
