/* Training sessions: one allocation of every buffer a compiled program reads or writes
 * (parameters, gradients, optimizer state, workspace, hyper values and one buffer per io
 * slot), wired into the pointer array that every rt_fn receives. The loops here feed it
 * minibatches: rt_gather copies the chosen examples into the x and y slots and zero-pads
 * a final partial batch, and the weight slot gets 1 for real rows and 0 for padding
 * so that the compiled, weighted loss is the mean over real rows whatever the batch's
 * fill. The epoch's mean loss weights each step's loss by its count, which makes it the
 * exact mean over the examples. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "descent/runtime.h"
#include "mem.h"
#include "session.h"

/* 4-byte elements: both rt_dtypes are that wide. */
static void *elems(int64_t n)
{
	if (n < 0 || (uint64_t)n > SIZE_MAX / 4)
		return NULL;
	return rt_alloc((size_t)n * 4);
}

rt_session *rt_session_new(const rt_program *prog)
{
	if (!prog)
		return NULL;
	if (prog->nio < 0 || (size_t)prog->nio > SIZE_MAX / sizeof(void *) - RT_IO0)
		return NULL;
	rt_session *s = rt_alloc(sizeof *s);
	if (!s)
		return NULL;
	s->prog = prog;
	s->params = elems(prog->nparams);
	s->grads = elems(prog->nparams);
	s->state = elems(prog->nstate);
	s->work = elems(prog->nwork);
	s->hyper = elems(prog->nhyper);
	s->bufs = rt_alloc((RT_IO0 + (size_t)prog->nio) * sizeof(void *));
	if (!s->params || !s->grads || !s->state || !s->work || !s->hyper || !s->bufs)
		goto oom;
	for (int i = 0; i < prog->nhyper && prog->hyper_init; i++)
		s->hyper[i] = prog->hyper_init[i];
	s->io = s->bufs + RT_IO0;
	s->bufs[RT_PARAMS] = s->params;
	s->bufs[RT_GRADS] = s->grads;
	s->bufs[RT_STATE] = s->state;
	s->bufs[RT_WORK] = s->work;
	s->bufs[RT_HYPER] = s->hyper;
	for (int i = 0; i < prog->nio; i++)
		if (!(s->io[i] = elems(prog->io[i].numel)))
			goto oom;
	if (prog->io_weight >= 0) /* every row counts until told otherwise */
		for (int64_t i = 0; i < prog->io[prog->io_weight].numel; i++)
			((float *)s->io[prog->io_weight])[i] = 1;
	return s;
oom:
	rt_session_free(s);
	return NULL;
}

void rt_session_free(rt_session *s)
{
	if (!s)
		return;
	if (s->io)
		for (int i = 0; i < s->prog->nio; i++)
			rt_free(s->io[i]);
	rt_free(s->bufs);
	rt_free(s->params);
	rt_free(s->grads);
	rt_free(s->state);
	rt_free(s->work);
	rt_free(s->hyper);
	rt_free(s);
}

void rt_session_init(rt_session *s, uint64_t seed)
{
	if (!s)
		return;
	const rt_program *p = s->prog;
	rt_rng rng;
	rt_rng_seed(&rng, seed);
	memset(s->params, 0, (size_t)p->nparams * 4);
	rt_init_params(p, s->params, &rng);
	memset(s->grads, 0, (size_t)p->nparams * 4);
	memset(s->state, 0, (size_t)p->nstate * 4);
	s->step = 0;
	for (int i = 0; i < p->nhyper; i++) /* dropout's masks follow the seed too */
		if (!strcmp(p->hyper_names[i], "seed"))
			s->hyper[i] = rt_dropout_seed(seed);
}

int rt_set_hyper(rt_session *s, const char *name, double v)
{
	if (!s || !name)
		return -1;
	if (!strcmp(name, "seed") && !rt_is_dropout_seed(v))
		return -1; /* (a checkpoint of another could not be loaded) */
	int rc = -1;
	if (!strncmp(name, "1-", 2)) /* set with its hyper */
		return -1;
	for (int i = 0; i < s->prog->nhyper; i++) {
		const char *h = s->prog->hyper_names[i];
		if (!strcmp(h, name))
			s->hyper[i] = (float)v, rc = 0;
		else if (!strncmp(h, "1-", 2) && !strcmp(h + 2, name))
			s->hyper[i] = (float)(1 - v);
	}
	return rc;
}

static const char *dtype_name(rt_dtype t) { return t == RT_I32 ? "i32" : "f32"; }

static char *shape_str(char *buf, size_t len, int rank, const int64_t *dims, rt_dtype t)
{
	size_t k = (size_t)snprintf(buf, len, "[");
	for (int i = 0; i < rank && k < len; i++)
		k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? ", " : "",
		                      (long long)dims[i]);
	if (k < len)
		snprintf(buf + k, len - k, "] %s", dtype_name(t));
	return buf;
}

/* Does dataset t fit io slot `slot` (less its batch dim)? */
static int check_slot(const rt_program *p, int slot, const rt_tensor *t, const char *what,
                      char *err, size_t errlen)
{
	const rt_io *io = &p->io[slot];
	if (t->dtype == io->dtype && io->numel == t->stride * p->batch) {
		/* integers in range of what they index, each example's */
		const int32_t *v = t->data;
		for (int64_t i = 0; io->limit > 0 && i < t->n * t->stride; i++)
			if (v[i] < 0 || v[i] >= io->limit)
				return rt_error(
				    err, errlen,
				    "%s: example %lld holds %d, outside 0 to %lld, the "
				    "classes or rows the program's input '%s' indexes",
				    what, (long long)(i / t->stride), (int)v[i],
				    (long long)io->limit - 1, io->name);
		return 0;
	}
	char a[128], b[128];
	return rt_error(
	    err, errlen,
	    "%s holds examples of shape %s, the program's input '%s' takes %s", what,
	    shape_str(a, sizeof a, t->rank, t->dims, t->dtype), io->name,
	    shape_str(b, sizeof b, io->rank - 1, io->shape + 1, io->dtype));
}

/* Do the feeds fit their slots, and hold as many examples as x? */
static int check_feeds(const rt_session *s, const rt_tensor *x, char *err, size_t errlen)
{
	const rt_feeds *f = &s->feeds;
	for (int i = 0; i < f->n; i++) {
		const char *name = s->prog->io[f->slot[i]].name;
		if (f->t[i]->n != x->n)
			return rt_error(
			    err, errlen,
			    "x has %lld examples but the data fed to '%s' has %lld",
			    (long long)x->n, name, (long long)f->t[i]->n);
		if (check_slot(s->prog, f->slot[i], f->t[i], name, err, errlen))
			return -1;
	}
	return 0;
}

int rt_session_feed(rt_session *s, int slot, const rt_tensor *t, char *err, size_t errlen)
{
	if (!s)
		return rt_error(err, errlen, "rt_session_feed: no session (NULL)");
	const rt_program *p = s->prog;
	rt_feeds *f = &s->feeds;
	if (slot == -1) {
		f->n = 0;
		return 0;
	}
	if (slot < 0 || slot >= p->nio || p->io[slot].kind != RT_IO_INPUT ||
	    slot == p->io_x || slot == p->io_y || slot == p->io_weight || !t)
		return rt_error(err, errlen,
		                "io slot %d is not an input fed besides x and y", slot);
	if (check_slot(p, slot, t, p->io[slot].name, err, errlen))
		return -1;
	int i = 0;
	while (i < f->n && f->slot[i] != slot)
		i++;
	if (i == RT_MAX_FEEDS)
		return rt_error(err, errlen, "more than %d inputs fed besides x and y",
		                RT_MAX_FEEDS);
	f->slot[i] = slot, f->t[i] = t;
	f->n += i == f->n;
	return 0;
}

int session_check(const rt_session *s, rt_fn fn, const char *fname, const rt_tensor *x,
                  const rt_tensor *y, char *err, size_t errlen)
{
	const rt_program *p = s->prog;
	if (!fn)
		return rt_error(err, errlen, "the program has no %s function", fname);
	const int slots[] = {p->io_x, p->io_y, p->io_weight, p->io_loss};
	const char *names[] = {"input", "label", "weight", "loss"};
	for (int i = 0; i < 4; i++)
		if (slots[i] < 0 || slots[i] >= p->nio)
			return rt_error(err, errlen, "the program has no %s io slot",
			                names[i]);
	if (p->batch < 1)
		return rt_error(err, errlen, "the program's batch size is %lld",
		                (long long)p->batch);
	const rt_io *w = &p->io[p->io_weight], *l = &p->io[p->io_loss];
	if (w->dtype != RT_F32 || w->numel != p->batch || l->dtype != RT_F32 ||
	    l->numel < 1)
		return rt_error(err, errlen,
		                "the program's weight or loss slot has the wrong size");
	if (x->n != y->n)
		return rt_error(err, errlen, "x has %lld examples but y has %lld",
		                (long long)x->n, (long long)y->n);
	if (check_slot(p, p->io_x, x, "x", err, errlen) ||
	    check_slot(p, p->io_y, y, "y", err, errlen))
		return -1;
	return check_feeds(s, x, err, errlen);
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Number of classes when the output is a [batch, C > 1] score matrix and y holds
 * labels, else 0. */
static int64_t classes(const rt_program *p, const rt_tensor *y)
{
	if (p->io_output < 0 || p->io_output >= p->nio || y->dtype != RT_I32 ||
	    y->stride != 1)
		return 0;
	const rt_io *o = &p->io[p->io_output];
	if (o->dtype != RT_F32 || o->rank != 2 || o->shape[0] != p->batch ||
	    o->shape[1] < 2)
		return 0;
	return o->shape[1];
}

void session_fill(rt_session *s, const rt_tensor *x, const rt_tensor *y,
                  const rt_feeds *f, const int64_t *idx, int64_t count)
{
	const rt_program *p = s->prog;
	float *w = p->io_weight >= 0 ? s->io[p->io_weight] : NULL;
	rt_gather(x, idx, count, p->batch, s->io[p->io_x]);
	if (y)
		rt_gather(y, idx, count, p->batch, s->io[p->io_y]);
	for (int i = 0; i < f->n; i++)
		rt_gather(f->t[i], idx, count, p->batch, s->io[f->slot[i]]);
	for (int64_t i = 0; w && i < p->batch; i++)
		w[i] = i < count ? 1.0f : 0.0f;
}

/* Runs fn over examples order[0..n) in batches; train: count steps, stop on a loss that
 * is not finite; nclass > 0: count correct argmaxes. */
static int run(rt_session *s, rt_fn fn, int train, const rt_tensor *x, const rt_tensor *y,
               const int64_t *order, int64_t n, int64_t nclass, rt_progress_fn cb,
               void *ud, rt_metrics *m, char *err, size_t errlen)
{
	const rt_program *p = s->prog;
	int64_t B = p->batch, nsteps = (n + B - 1) / B, steps = 0, correct = 0, done = 0;
	const float *loss = s->io[p->io_loss];
	int32_t *pred = nclass ? elems(B) : NULL;
	if (nclass && !pred)
		return rt_error(err, errlen, "out of memory");
	double t0 = now(), sum = 0;
	int rc = 0;
	for (int64_t k = 0; k < nsteps; k++) {
		int64_t count = n - done < B ? n - done : B;
		session_fill(s, x, y, &s->feeds, order + done, count);
		/* the next batch's rows are at random places in the data set: fetched
		 * while this step computes, they are in cache when gathered */
		if (k + 1 < nsteps)
			rt_prefetch_rows(x, order + done + count,
			                 n - done - count < B ? n - done - count : B);
		int refused = fn(s->bufs);
		steps++;
		if (train && refused) { /* (the loss then reads NaN) */
			rc = rt_error(
			    err, errlen,
			    "step %lld of %lld in the epoch was not taken: the loss "
			    "or an updated value is not finite, or a parameter's "
			    "step is above 2^100",
			    (long long)k + 1, (long long)nsteps);
			break;
		}
		if (train)
			s->step++;
		if (train && !isfinite(*loss)) {
			rc = rt_error(err, errlen,
			              "loss is %s at step %lld of %lld in the epoch",
			              isnan(*loss) ? "nan"
			              : *loss > 0  ? "inf"
			                           : "-inf",
			              (long long)k + 1, (long long)nsteps);
			break;
		}
		sum += (double)*loss * (double)count;
		if (nclass) {
			const int32_t *lab = y->data;
			rt_argmax_rows(s->io[p->io_output], count, nclass, pred);
			for (int64_t i = 0; i < count; i++)
				correct += pred[i] == lab[order[done + i]];
		}
		done += count;
		if (cb)
			cb(ud, k + 1, nsteps, sum / (double)done);
	}
	rt_free(pred);
	m->loss = done ? sum / (double)done : NAN;
	m->accuracy = nclass && done ? (double)correct / (double)done : NAN;
	m->examples = done;
	m->steps = steps;
	m->seconds = now() - t0;
	return rc;
}

/* order[i] = i for i < n; NULL when out of memory or n is absurd. */
static int64_t *identity(int64_t n)
{
	if (n < 0 || (uint64_t)n > SIZE_MAX / sizeof(int64_t))
		return NULL;
	int64_t *o = rt_alloc((size_t)n * sizeof *o);
	for (int64_t i = 0; o && i < n; i++)
		o[i] = i;
	return o;
}

int rt_train_epoch(rt_session *s, const rt_tensor *x, const rt_tensor *y, int64_t limit,
                   rt_rng *rng, rt_progress_fn cb, void *ud, rt_metrics *m, char *err,
                   size_t errlen)
{
	if (!s || !x || !y)
		return rt_error(err, errlen, "rt_train_epoch: %s is NULL",
		                !s   ? "the session"
		                : !x ? "x"
		                     : "y");
	rt_metrics dummy;
	if (!m)
		m = &dummy;
	memset(m, 0, sizeof *m);
	if (session_check(s, s->prog->train_step, "train_step", x, y, err, errlen))
		return -1;
	int64_t n = limit > 0 && limit < x->n ? limit : x->n;
	if (n < 1)
		return rt_error(err, errlen, "no examples to train on");
	int64_t *order = identity(n);
	if (!order)
		return rt_error(err, errlen, "out of memory");
	if (rng)
		rt_shuffle(rng, order, n);
	int rc =
	    run(s, s->prog->train_step, 1, x, y, order, n, 0, cb, ud, m, err, errlen);
	rt_free(order);
	return rc;
}

int rt_evaluate(rt_session *s, const rt_tensor *x, const rt_tensor *y, rt_metrics *m,
                char *err, size_t errlen)
{
	if (!s || !x || !y)
		return rt_error(err, errlen, "rt_evaluate: %s is NULL",
		                !s   ? "the session"
		                : !x ? "x"
		                     : "y");
	rt_metrics dummy;
	if (!m)
		m = &dummy;
	memset(m, 0, sizeof *m);
	if (session_check(s, s->prog->evaluate, "evaluate", x, y, err, errlen))
		return -1;
	if (x->n < 1)
		return rt_error(err, errlen, "no examples to evaluate");
	int64_t *order = identity(x->n);
	if (!order)
		return rt_error(err, errlen, "out of memory");
	int rc = run(s, s->prog->evaluate, 0, x, y, order, x->n, classes(s->prog, y),
	             NULL, NULL, m, err, errlen);
	rt_free(order);
	return rc;
}

int rt_predict(rt_session *s, const rt_tensor *x, float *out, char *err, size_t errlen)
{
	if (!s || !x || !out)
		return rt_error(err, errlen, "rt_predict: %s is NULL",
		                !s   ? "the session"
		                : !x ? "x"
		                     : "out");
	const rt_program *p = s->prog;
	if (!p->forward)
		return rt_error(err, errlen, "the program has no forward function");
	if (p->io_x < 0 || p->io_output < 0 || p->batch < 1)
		return rt_error(err, errlen,
		                "the program has no input or no output slot");
	if (check_slot(p, p->io_x, x, "x", err, errlen) || check_feeds(s, x, err, errlen))
		return -1;
	if (x->n < 1)
		return rt_error(err, errlen, "no examples to predict");
	int64_t B = p->batch, row = p->io[p->io_output].numel / B;
	int64_t *order = identity(x->n);
	if (!order)
		return rt_error(err, errlen, "out of memory");
	for (int64_t done = 0; done < x->n; done += B) {
		int64_t count = x->n - done < B ? x->n - done : B;
		session_fill(s, x, NULL, &s->feeds, order + done, count);
		p->forward(s->bufs);
		memcpy(out + done * row, s->io[p->io_output],
		       (size_t)(count * row) * sizeof *out);
	}
	rt_free(order);
	return 0;
}
