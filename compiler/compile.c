/* The pipeline behind one call: Model -> Graph -> object code -> JIT -> rt_program.
 *
 * The rt_program it fills is the same description an ahead-of-time header gives, so
 * everything downstream (the runtime's training loop, the CLI, the tests) is indifferent
 * to how the code was compiled.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Fills c->prog's tables from the graph. */
static void describe(Compiled *c, int64_t batch, int64_t nwork)
{
	Graph *g = c->g;
	rt_program *p = &c->prog;
	p->batch = batch;
	p->nparams = g->param_floats;
	p->nstate = g->state_floats;
	p->nwork = nwork;
	c->params = arena_alloc(c->A, (size_t)(g->nparams + 1) * sizeof *c->params);
	for (int i = 0; i < g->nparams; i++) {
		Tensor *t = &g->params[i];
		rt_param *q = &c->params[i];
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
	c->states = arena_alloc(c->A, (size_t)(g->nstates + 1) * sizeof *c->states);
	for (int i = 0; i < g->nstates; i++)
		c->states[i] = (rt_state){g->states[i].name, g->states[i].off,
		                          shape_numel(&g->states[i].sh)};
	c->ios = arena_alloc(c->A, (size_t)(g->nios + 1) * sizeof *c->ios);
	for (int i = 0; i < g->nios; i++) {
		Tensor *t = &g->ios[i];
		rt_io *q = &c->ios[i];
		q->name = t->name;
		q->kind = t->iokind;
		q->dtype = t->dt == DT_I32 ? RT_I32 : RT_F32;
		copy_shape(&t->sh, &q->rank, q->shape);
		q->numel = shape_numel(&t->sh);
	}
	float *hinit = arena_alloc(c->A, (size_t)(g->nhypers + 1) * sizeof *hinit);
	for (int i = 0; i < g->nhypers; i++)
		hinit[i] = (float)g->hyper_init[i];
	p->nhyper = g->nhypers;
	p->hyper_names = g->hypers;
	p->hyper_init = hinit;
	p->nparam = g->nparams;
	p->params = c->params;
	p->nstates = g->nstates;
	p->states = c->states;
	p->nio = g->nios;
	p->io = c->ios;
	p->io_x = g->io_x;
	p->io_y = g->io_y;
	p->io_weight = g->io_weight;
	p->io_loss = g->io_loss;
	p->io_output = g->io_output;
}

Compiled *compile_model(Diags *d, const Model *m, int64_t batch, const CodegenOpts *o)
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
	if (!c->g)
		goto fail;
	if (cg_compile(c->g, o, &obj, &nwork, NULL) < 0)
		goto fail;
	c->jit = jit_load(d, &obj, fns);
	objcode_free(&obj);
	if (!c->jit)
		goto fail;
	describe(c, batch, nwork);
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
