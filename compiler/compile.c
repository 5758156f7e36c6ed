/* The pipeline behind one call: Model -> Graph -> object code -> JIT -> rt_program.
 *
 * The rt_program it fills is the same description an ahead-of-time header gives, so
 * everything downstream (the runtime's training loop, the CLI, the tests) is indifferent
 * to how the code was compiled.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dc.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static void copy_shape(const Shape *s, int *rank, int64_t *dims)
{
	*rank = s->rank;
	for (int i = 0; i < s->rank; i++)
		dims[i] = s->d[i];
}

/* FNV-1a, 64 bits, over bytes and over 0-terminated strings (the 0 included, so that
 * "ab" "c" and "a" "bc" differ). */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

static uint64_t fnv_tensor(uint64_t h, const char *name, DType dt, const Shape *sh,
                           int from)
{
	h = fnv(h, name, strlen(name) + 1);
	int64_t v[MAXRANK + 2] = {dt, sh->rank - from};
	for (int i = from; i < sh->rank; i++)
		v[2 + i - from] = sh->d[i];
	return fnv(h, v, (size_t)(2 + sh->rank - from) * sizeof v[0]);
}

/* What a checkpoint must agree with: every parameter, state tensor, hyper value and io
 * slot by name, dtype and shape (io slots less their batch dim, so a checkpoint outlives
 * a change of batch size). */
static uint64_t graph_hash(const Graph *g)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (int i = 0; i < g->nparams; i++)
		h = fnv_tensor(h, g->params[i].name, g->params[i].dt, &g->params[i].sh,
		               0);
	h = fnv(h, "/", 2);
	for (int i = 0; i < g->nstates; i++)
		h = fnv_tensor(h, g->states[i].name, g->states[i].dt, &g->states[i].sh,
		               0);
	h = fnv(h, "/", 2);
	for (int i = 0; i < g->nhypers; i++) /* (a "1-" hyper follows from another) */
		if (strncmp(g->hypers[i], "1-", 2))
			h = fnv(h, g->hypers[i], strlen(g->hypers[i]) + 1);
	h = fnv(h, "/", 2);
	for (int i = 0; i < g->nios; i++)
		h = fnv_tensor(h, g->ios[i].name, g->ios[i].dt, &g->ios[i].sh,
		               g->ios[i].sh.rank > 0);
	return h;
}

void program_describe(Graph *g, int64_t batch, int64_t nwork, rt_program *p)
{
	rt_param *params = arena_alloc(g->A, (size_t)(g->nparams + 1) * sizeof *params);
	rt_state *states = arena_alloc(g->A, (size_t)(g->nstates + 1) * sizeof *states);
	rt_io *ios = arena_alloc(g->A, (size_t)(g->nios + 1) * sizeof *ios);
	p->batch = batch;
	p->nparams = g->param_floats;
	p->nstate = g->state_floats;
	p->nwork = nwork;
	for (int i = 0; i < g->nparams; i++) {
		Tensor *t = &g->params[i];
		rt_param *q = &params[i];
		q->name = t->name;
		copy_shape(&t->sh, &q->rank, q->shape);
		q->offset = t->off;
		q->numel = shape_numel(&t->sh);
		q->init = t->init;
		q->value = t->value;
		q->fan_in = t->fan_in;
		q->fan_out = t->fan_out;
		q->trainable = t->trainable;
	}
	for (int i = 0; i < g->nstates; i++) {
		states[i] = (rt_state){.name = g->states[i].name,
		                       .offset = g->states[i].off,
		                       .numel = shape_numel(&g->states[i].sh)};
		copy_shape(&g->states[i].sh, &states[i].rank, states[i].shape);
	}
	for (int i = 0; i < g->nios; i++) {
		Tensor *t = &g->ios[i];
		rt_io *q = &ios[i];
		q->name = t->name;
		q->kind = t->iokind;
		q->dtype = t->dt == DT_I32 ? RT_I32 : RT_F32;
		copy_shape(&t->sh, &q->rank, q->shape);
		q->numel = shape_numel(&t->sh);
		q->limit = t->dt == DT_I32 && ir_index_limit(g, i) > 0
		               ? ir_index_limit(g, i)
		               : 0;
	}
	float *hinit = arena_alloc(g->A, (size_t)(g->nhypers + 1) * sizeof *hinit);
	for (int i = 0; i < g->nhypers; i++)
		hinit[i] = (float)g->hyper_init[i];
	p->nhyper = g->nhypers;
	p->hyper_names = g->hypers;
	p->hyper_init = hinit;
	p->nparam = g->nparams;
	p->params = params;
	p->nstates = g->nstates;
	p->states = states;
	p->nio = g->nios;
	p->io = ios;
	p->io_x = g->io_x;
	p->io_y = g->io_y;
	p->io_weight = g->io_weight;
	p->io_loss = g->io_loss;
	p->loss_kind = g->loss_kind;
	p->io_output = g->io_output;
	p->graph_hash = graph_hash(g);
}

/* ---- the object cache ----
 *
 * Compiled objects are kept on disk, under $DESCENT_CACHE or $XDG_CACHE_HOME/descent or
 * ~/.cache/descent, named by a hash of everything that decides the code: the graph of
 * every function as text, the code generation options, the host CPU and its features,
 * and the program doing the compiling (its size and time, so a rebuilt descent never
 * reads an older one's objects). A second run of the same model skips LLVM. Set
 * DESCENT_CACHE=off to disable it. A cache that cannot be read or written is ignored. */

static uint64_t cache_key(Graph *g, const CodegenOpts *o)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return 0;
	for (int k = 0; k < FN_COUNT; k++)
		if (g->fns[k].defined)
			dump_graph(f, g, k);
	for (int i = 0; i < g->nparams; i++)
		fprintf(f, "%s %lld %d\n", g->params[i].name, (long long)g->params[i].off,
		        g->params[i].trainable);
	fprintf(f, "%d %d %u %s %s %s %s\n", o->opt_level, o->check_numerics, o->fns,
	        host_cpu_text(), o->triple ? o->triple : "", o->cpu ? o->cpu : "",
	        o->features ? o->features : "");
	struct stat st;
	if (stat("/proc/self/exe", &st) == 0)
		fprintf(f, "%lld %lld\n", (long long)st.st_size, (long long)st.st_mtime);
	fclose(f);
	uint64_t h = fnv(1469598103934665603ull, text, len);
	free(text);
	return h;
}

static const char *cache_dir(char *buf, size_t len)
{
	const char *env = getenv("DESCENT_CACHE"), *xdg = getenv("XDG_CACHE_HOME"),
	           *home = getenv("HOME");
	if (env && !strcmp(env, "off"))
		return NULL;
	if (env && *env)
		snprintf(buf, len, "%s", env);
	else if (xdg && *xdg)
		snprintf(buf, len, "%s/descent", xdg);
	else if (home && *home)
		snprintf(buf, len, "%s/.cache/descent", home);
	else
		return NULL;
	return buf;
}

/* The cached object (its parts) and workspace size for key, or 0. The file: nwork,
 * the number of parts and their sizes (int64 each), then the parts. */
static int cache_read(uint64_t key, ObjCode *obj, int64_t *nwork)
{
	char dir[3072], path[4096];
	if (!key || !cache_dir(dir, sizeof dir))
		return 0;
	snprintf(path, sizeof path, "%s/%016llx.o", dir, (unsigned long long)key);
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;
	int64_t n = 0, size[MAXSHARDS] = {0};
	int ok = fread(nwork, sizeof *nwork, 1, f) == 1 &&
	         fread(&n, sizeof n, 1, f) == 1 && n >= 1 && n <= MAXSHARDS &&
	         fread(size, sizeof *size, (size_t)n, f) == (size_t)n;
	for (int i = 0; ok && i < n; i++) {
		void *data =
		    size[i] > 0 && size[i] < (1ll << 32) ? malloc((size_t)size[i]) : NULL;
		ok = data && fread(data, 1, (size_t)size[i], f) == (size_t)size[i];
		if (i == 0)
			obj->data = data, obj->size = (size_t)size[i];
		else
			obj->more[i - 1] = data, obj->more_size[i - 1] = (size_t)size[i];
	}
	fclose(f);
	if (!ok)
		objcode_free(obj);
	return ok;
}

static void cache_write(uint64_t key, const ObjCode *obj, int64_t nwork)
{
	char dir[3072], path[4096], err[256];
	if (!key || !cache_dir(dir, sizeof dir))
		return;
	for (char *p = dir + 1; *p; p++) /* mkdir -p */
		if (*p == '/') {
			*p = 0;
			mkdir(dir, 0755);
			*p = '/';
		}
	mkdir(dir, 0755);
	snprintf(path, sizeof path, "%s/%016llx.o", dir, (unsigned long long)key);
	int64_t n = 1, size[MAXSHARDS] = {(int64_t)obj->size};
	const void *parts[3 + MAXSHARDS] = {&nwork, &n, size, obj->data};
	size_t sizes[3 + MAXSHARDS] = {sizeof nwork, sizeof n, 0, obj->size};
	for (int i = 0; i < MAXSHARDS - 1 && obj->more[i]; i++, n++) {
		size[n] = (int64_t)obj->more_size[i];
		parts[3 + n] = obj->more[i], sizes[3 + n] = obj->more_size[i];
	}
	sizes[2] = (size_t)n * sizeof *size;
	rt_write_atomic(path, parts, sizes, 3 + (int)n, err,
	                sizeof err); /* a failure only costs time */
}

/* Shards for the JIT's compile: one per core this process may use, up to 2 (past
 * that, the parts get small and the split costs more than it saves). */
static int shards(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n >= 2 ? 2 : 1;
}

Compiled *compile_model(Diags *d, const Model *m, int64_t batch, const CodegenOpts *o)
{
	return compile_model_at(d, m, batch, o, NULL);
}

Compiled *compile_model_at(Diags *d, const Model *m, int64_t batch, const CodegenOpts *o,
                           int *in_model)
{
	double t0 = now();
	Compiled *c = calloc(1, sizeof *c);
	if (!c)
		die("out of memory");
	c->A = arena_new();
	ObjCode obj = {0};
	int64_t nwork = 0;
	rt_fn fns[FN_COUNT] = {0};
	c->g = lower_model(c->A, d, m, batch);
	if (in_model)
		*in_model = !c->g;
	if (!c->g)
		goto fail;
	c->stage_seconds[STAGE_GRAPH] = now() - t0;
	if (o->check_numerics)
		c->g->io_numerics = ir_add_io(c->g, "numerics", RT_IO_OUTPUT, DT_F32,
		                              (Shape){1, {4}}, (SrcLoc){0});
	if (o->profile) /* a float per part: at most a node's, an update group's two */
		c->g->io_profile =
		    ir_add_io(c->g, "profile", RT_IO_OUTPUT, DT_F32,
		              (Shape){1, {3 * (int64_t)c->g->n + 4}}, (SrcLoc){0});
	/* a check compiles, and so does profiling, which needs codegen's Graph.prof (key
	 * 0: no cache) */
	uint64_t key = o->check_dedupe || o->profile ? 0 : cache_key(c->g, o);
	if (!cache_read(key, &obj, &nwork)) {
		CodegenOpts so = *o;
		so.shards = o->shards ? o->shards : shards();
		so.seconds = &c->stage_seconds[STAGE_IR];
		if (cg_compile(c->g, &so, &obj, &nwork, NULL) < 0)
			goto fail;
		cache_write(key, &obj, nwork);
	}
	double tj = now();
	c->jit = jit_load(d, &obj, fns);
	c->stage_seconds[STAGE_JIT] = now() - tj;
	objcode_free(&obj);
	if (!c->jit)
		goto fail;
	program_describe(c->g, batch, nwork, &c->prog);
	c->prog.forward = fns[FN_FORWARD];
	c->prog.evaluate = fns[FN_EVALUATE];
	c->prog.grad = fns[FN_GRAD];
	c->prog.step = fns[FN_STEP];
	c->prog.train_step = fns[FN_TRAIN_STEP];
	c->compile_seconds = now() - t0;
	return c;
fail:
	compiled_free(c);
	return NULL;
}

void compiled_free(Compiled *c)
{
	if (!c)
		return;
	jit_free(c->jit);
	arena_free(c->A);
	free(c);
}
