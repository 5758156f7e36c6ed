/* The pipeline behind one call: Model -> Graph -> object code -> JIT -> rt_program.
 *
 * The rt_program it fills is the same description an ahead-of-time header gives, so
 * everything downstream (the runtime's training loop, the CLI, the tests) is indifferent
 * to how the code was compiled.
 */
#ifndef _GNU_SOURCE /* (LLVM's flags have it) dl_iterate_phdr */
#define _GNU_SOURCE
#endif
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
#define FNV_BASIS 0xcbf29ce484222325ull

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
	uint64_t h = FNV_BASIS;
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
 * every function as text and every node's fields as they are (constants exactly), the
 * code generation options, LLVM's version, the host CPU and its features, and the
 * compiler doing the compiling (the build ID of the program or library holding this
 * code, or a hash of its file), so a rebuilt descent never reads an older one's objects.
 * A second run of the same model skips LLVM. DESCENT_CACHE=off disables it.
 *
 * An entry is a header (magic, the key, a second hash of the same text, a hash of the
 * payload) and the payload: nwork, the number of parts and their sizes (int64 each),
 * then the parts. An entry that is not a regular file or does not check out in every
 * one of those is ignored and compiled again, as is a cache that cannot be read or
 * written: the cache only saves time. */

#define CACHE_MAGIC "descent\2"
#define FNV_BASIS2 0x6c62272e07bb0142ull /* the second hash's start */

typedef struct {
	uint64_t key, check;
} CacheKey;

/* What names the code that compiles: the GNU build ID of the loaded object holding this
 * code (the program, or a library descent is linked into), or a hash of that object's
 * file where it has none; and likewise LLVM's shared library, whose code generator a
 * distribution's update changes under the same version string. */
typedef struct Ident {
	int llvm;    /* 0: the object holding this code; 1: libLLVM */
	uint64_t id; /* its build ID's hash, or its file's */
	char path[4096];
} Ident;

static uint64_t build_id(struct dl_phdr_info *info)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr),
		           *end = p + ph->p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
			const char *name = p + sizeof *nh,
			           *desc = name + ((nh->n_namesz + 3) & ~3u);
			if (desc + nh->n_descsz > end)
				break;
			if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
			    !memcmp(name, "GNU", 4) && nh->n_descsz > 0)
				return fnv(FNV_BASIS, desc, nh->n_descsz);
			p = desc + ((nh->n_descsz + 3) & ~3u);
		}
	}
	return 0;
}

static int find_object(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	Ident *x = data;
	const char *name = info->dlpi_name ? info->dlpi_name : "";
	int holds = 0;
	if (x->llvm) {
		const char *base = strrchr(name, '/');
		holds = !strncmp(base ? base + 1 : name, "libLLVM", 7);
	} else {
		uintptr_t here = (uintptr_t)&find_object;
		for (int i = 0; i < info->dlpi_phnum; i++) {
			const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
			uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
			holds |= ph->p_type == PT_LOAD && here >= lo &&
			         here < lo + ph->p_memsz;
		}
	}
	if (!holds)
		return 0;
	x->id = build_id(info); /* the main program's name is "" */
	snprintf(x->path, sizeof x->path, "%s", *name ? name : "/proc/self/exe");
	return 1;
}

static uint64_t object_id(int llvm)
{
	Ident x = {.llvm = llvm};
	if (!dl_iterate_phdr(find_object, &x))
		return 0; /* (LLVM linked statically: its code is in ours) */
	if (!x.id) {      /* no build ID: the file's bytes */
		size_t len;
		char *bytes = read_whole(x.path, &len);
		if (bytes)
			x.id = fnv(FNV_BASIS, bytes, len);
		free(bytes);
	}
	return x.id;
}

static uint64_t the_compiler_id;

static void find_compiler_id(void)
{
	uint64_t ours = object_id(0);
	the_compiler_id = ours ? ours ^ object_id(1) * 0x9e3779b97f4a7c15ull : 0;
}

static uint64_t compiler_id(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, find_compiler_id);
	return the_compiler_id;
}

static CacheKey cache_key(Graph *g, const CodegenOpts *o)
{
	CacheKey k = {0, 0};
	uint64_t id = compiler_id();
	char *text = NULL;
	size_t len = 0;
	FILE *f = id ? open_memstream(&text, &len) : NULL;
	if (!f)
		return k;
	for (int i = 0; i < FN_COUNT; i++)
		if (g->fns[i].defined)
			dump_graph(f, g, i);
	for (int i = 0; i < g->n; i++) { /* what the text may not say */
		const Node *n = g->nodes[i];
		fprintf(f, "%d %d %d %d %a", n->op, n->dt, n->sh.rank, n->nin, n->f);
		for (int j = 0; j < n->sh.rank; j++)
			fprintf(f, " %lld", (long long)n->sh.d[j]);
		for (int j = 0; j < n->nin; j++)
			fprintf(f, " %%%d", n->in[j]->id);
		for (int j = 0; j < NATTR; j++)
			fprintf(f, " %lld", (long long)n->a[j]);
		fputc('\n', f);
	}
	for (int i = 0; i < g->nparams; i++)
		fprintf(f, "%s %lld %d\n", g->params[i].name, (long long)g->params[i].off,
		        g->params[i].trainable);
	fprintf(f, "%d %d %u %s %s %s %s %016llx\n", o->opt_level, o->check_numerics,
	        o->fns, host_cpu_text(), o->triple ? o->triple : "", o->cpu ? o->cpu : "",
	        o->features ? o->features : "", (unsigned long long)id);
	fclose(f);
	k.key = fnv(FNV_BASIS, text, len);
	k.check = fnv(FNV_BASIS2, text, len);
	free(text);
	return k;
}

static const char *cache_dir(char *buf, size_t len)
{
	const char *env = getenv("DESCENT_CACHE"), *xdg = getenv("XDG_CACHE_HOME"),
	           *home = getenv("HOME");
	static const char *const off[] = {"off", "0", "no", "false", "none"},
	                         *on[] = {"on", "1", "yes", "true"}; /* the default */
	for (size_t i = 0; env && i < sizeof off / sizeof *off; i++)
		if (!strcasecmp(env, off[i]))
			return NULL;
	for (size_t i = 0; env && i < sizeof on / sizeof *on; i++)
		if (!strcasecmp(env, on[i]))
			env = NULL;
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

static void cache_path(char *path, size_t len, const char *dir, CacheKey k)
{
	snprintf(path, len, "%s/%016llx.o", dir, (unsigned long long)k.key);
}

/* The whole of a regular file, at most 1 GiB (a FIFO would block, a device never
 * end), or NULL. */
static char *read_regular(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	char *buf = NULL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    st.st_size < (1 << 30) && (buf = malloc((size_t)st.st_size))) {
		size_t got = 0;
		ssize_t r;
		while (got < (size_t)st.st_size &&
		       (r = read(fd, buf + got, (size_t)st.st_size - got)) > 0)
			got += (size_t)r;
		if (got != (size_t)st.st_size)
			free(buf), buf = NULL;
		*len = got;
	}
	close(fd);
	return buf;
}

/* The cached object (its parts) and workspace size for k, or 0. */
static int cache_read(CacheKey k, ObjCode *obj, int64_t *nwork)
{
	char dir[3072], path[4096];
	if (!k.key || !cache_dir(dir, sizeof dir))
		return 0;
	cache_path(path, sizeof path, dir, k);
	size_t len = 0;
	char *buf = read_regular(path, &len);
	uint64_t head[3];
	enum { HEAD = 8 + sizeof head };
	int ok = buf && len >= HEAD + 2 * sizeof(int64_t) && !memcmp(buf, CACHE_MAGIC, 8);
	if (ok) {
		memcpy(head, buf + 8, sizeof head);
		ok = head[0] == k.key && head[1] == k.check &&
		     head[2] == fnv(FNV_BASIS, buf + HEAD, len - HEAD);
	}
	const char *p = ok ? buf + HEAD : NULL, *end = ok ? buf + len : NULL;
	int64_t n = 0, size[MAXSHARDS] = {0};
	if (ok) {
		memcpy(nwork, p, sizeof *nwork), p += sizeof *nwork;
		memcpy(&n, p, sizeof n), p += sizeof n;
		ok = *nwork >= 0 && n >= 1 && n <= MAXSHARDS &&
		     (size_t)(end - p) >= (size_t)n * sizeof *size;
	}
	if (ok) {
		memcpy(size, p, (size_t)n * sizeof *size), p += (size_t)n * sizeof *size;
		int64_t total = 0;
		for (int i = 0; ok && i < n; i++)
			ok = size[i] > 0 && size[i] <= end - p - total &&
			     (total += size[i], 1);
		ok = ok && total == end - p;
	}
	for (int i = 0; ok && i < n; i++) {
		void *data = malloc((size_t)size[i]);
		ok = data != NULL;
		if (data)
			memcpy(data, p, (size_t)size[i]), p += size[i];
		if (i == 0)
			obj->data = data, obj->size = (size_t)size[i];
		else
			obj->more[i - 1] = data, obj->more_size[i - 1] = (size_t)size[i];
	}
	free(buf);
	if (!ok)
		objcode_free(obj);
	return ok;
}

static void cache_write(CacheKey k, const ObjCode *obj, int64_t nwork)
{
	char dir[3072], path[4096], err[256];
	if (!k.key || !cache_dir(dir, sizeof dir))
		return;
	for (char *p = dir + 1; *p; p++) /* mkdir -p */
		if (*p == '/') {
			*p = 0;
			mkdir(dir, 0755);
			*p = '/';
		}
	mkdir(dir, 0755);
	cache_path(path, sizeof path, dir, k);
	struct stat st; /* something else at the path (a FIFO) is left alone */
	if (!lstat(path, &st) && !S_ISREG(st.st_mode))
		return;
	int64_t n = 1, size[MAXSHARDS] = {(int64_t)obj->size};
	uint64_t head[3] = {k.key, k.check, 0};
	const void *parts[5 + MAXSHARDS] = {CACHE_MAGIC, head, &nwork,
	                                    &n,          size, obj->data};
	size_t sizes[5 + MAXSHARDS] = {8,        sizeof head, sizeof nwork,
	                               sizeof n, 0,           obj->size};
	for (int i = 0; i < MAXSHARDS - 1 && obj->more[i]; i++, n++) {
		size[n] = (int64_t)obj->more_size[i];
		parts[5 + n] = obj->more[i], sizes[5 + n] = obj->more_size[i];
	}
	sizes[4] = (size_t)n * sizeof *size;
	uint64_t h = FNV_BASIS; /* the payload's hash, over its parts in order */
	for (int i = 2; i < 5 + n; i++)
		h = fnv(h, parts[i], sizes[i]);
	head[2] = h;
	rt_write_atomic(path, parts, sizes, 5 + (int)n, err,
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
	CacheKey key =
	    o->check_dedupe || o->profile ? (CacheKey){0, 0} : cache_key(c->g, o);
	if (cache_read(key, &obj, &nwork)) { /* what the JIT refuses: compiled again */
		Diags quiet = {0};
		double tj = now();
		c->jit = jit_load(&quiet, &obj, fns);
		for (int k = 0; c->jit && k < FN_COUNT; k++) /* (linked when looked up) */
			if (c->g->fns[k].defined && (!o->fns || o->fns >> k & 1) &&
			    !fns[k])
				jit_free(c->jit), c->jit = NULL;
		c->stage_seconds[STAGE_JIT] = now() - tj;
		diags_free(&quiet);
		objcode_free(&obj);
	}
	if (!c->jit) {
		CodegenOpts so = *o;
		so.shards = o->shards ? o->shards : shards();
		so.seconds = &c->stage_seconds[STAGE_IR];
		if (cg_compile(c->g, &so, &obj, &nwork, NULL) < 0)
			goto fail;
		cache_write(key, &obj, nwork);
		double tj = now();
		c->jit = jit_load(d, &obj, fns);
		c->stage_seconds[STAGE_JIT] = now() - tj;
		objcode_free(&obj);
		if (!c->jit)
			goto fail;
	}
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
