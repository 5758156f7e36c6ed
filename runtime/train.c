/* The resumable training loop and its checkpoints.
 *
 * A trainer walks epochs of shuffled minibatches through a session. Its position is
 * small and explicit: the global step count (in the session), the epochs done, the
 * examples done in the current epoch, and the shuffling rng as it was before the
 * current epoch's shuffle, so the permutation can be drawn again. The rate of every
 * step comes from the schedule (schedule.c) and is written to the "lr" hyper value, so
 * a schedule never recompiles anything.
 *
 * Steps are the fused train_step, whose generated code writes nothing when the loss or
 * an updated value is not finite; the loop stops at such a step. As a fallback for
 * programs without that guard, the parameters and state are copied when a run starts
 * and put back if a non-finite value got into them. With gradient accumulation, grad
 * runs on each micro-batch, the weighted sum of the gradients is checked, and only then
 * does step apply it.
 *
 * Checkpoints are safetensors files holding the parameters, the state tensors
 * ("optimizer." + name) and the position in __metadata__, all checked on loading
 * before anything is restored. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "descent/runtime.h"
#include "mem.h"
#include "session.h"

#define FORMAT "descent-checkpoint-1"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *floats(int64_t n)
{
	if (n < 0 || (uint64_t)n > SIZE_MAX / sizeof(float))
		return NULL;
	return rt_alloc((size_t)n * sizeof(float));
}

/* Index of the first non-finite value of v[0..n), or -1. The exponent test on the bits
 * vectorizes, so the scan costs about what reading the values does. */
static int64_t first_nonfinite(const float *v, int64_t n)
{
	const int64_t chunk = 4096;
	for (int64_t i = 0; i < n; i += chunk) {
		int64_t e = n - i < chunk ? n : i + chunk;
		uint32_t bad = 0, u;
		for (int64_t k = i; k < e; k++) {
			memcpy(&u, v + k, 4);
			bad |= (u & 0x7f800000u) == 0x7f800000u;
		}
		if (bad)
			for (int64_t k = i; k < e; k++)
				if (!isfinite(v[k]))
					return k;
	}
	return -1;
}

/* The name of the parameter or state tensor holding offset k of the blob. */
static const char *param_at(const rt_program *p, int64_t k)
{
	for (int i = 0; i < p->nparam; i++)
		if (k >= p->params[i].offset &&
		    k < p->params[i].offset + p->params[i].numel)
			return p->params[i].name;
	return "?";
}

static const char *state_at(const rt_program *p, int64_t k)
{
	for (int i = 0; i < p->nstates; i++)
		if (k >= p->states[i].offset &&
		    k < p->states[i].offset + p->states[i].numel)
			return p->states[i].name;
	return "?";
}

static int hyper_index(const rt_program *p, const char *name)
{
	for (int i = 0; i < p->nhyper; i++)
		if (!strcmp(p->hyper_names[i], name))
			return i;
	return -1;
}

rt_trainer *rt_trainer_new(rt_session *s, const rt_tensor *x, const rt_tensor *y,
                           const rt_trainer_opts *o, char *err, size_t errlen)
{
	if (!s || !x || !y || !o) {
		rt_error(err, errlen, "rt_trainer_new: %s is NULL",
		         !s   ? "the session"
		         : !x ? "x"
		         : !y ? "y"
		              : "the options");
		return NULL;
	}
	const rt_program *p = s->prog;
	int64_t k = o->accumulate > 1 ? o->accumulate : 1;
	if (k > 1 ? session_check(s, p->grad, "grad", x, y, err, errlen) ||
	                session_check(s, p->step, "step", x, y, err, errlen)
	          : session_check(s, p->train_step, "train_step", x, y, err, errlen))
		return NULL;
	if (k > 1 && p->loss_kind == RT_LOSS_OTHER) {
		rt_error(err, errlen,
		         "accumulating gradients over micro-batches needs a loss that is "
		         "a mean or a sum over the examples; this model's is neither "
		         "(a ratio of sums over the batch as sum(w * l) / sum(w), a "
		         "function of a mean, or a sum with a penalty beside it)");
		return NULL;
	}
	int64_t n = o->limit > 0 && o->limit < x->n ? o->limit : x->n;
	if (n < 1) {
		rt_error(err, errlen, "no examples to train on");
		return NULL;
	}
	rt_trainer *t = rt_alloc(sizeof *t);
	if (!t) {
		rt_error(err, errlen, "out of memory");
		return NULL;
	}
	t->s = s;
	t->x = x;
	t->y = y;
	t->feeds = s->feeds;
	t->o = *o;
	t->o.accumulate = k;
	t->n = n;
	int64_t batches = (n + p->batch - 1) / p->batch;
	t->steps_per_epoch = (batches + k - 1) / k;
	t->order =
	    (uint64_t)n <= SIZE_MAX / sizeof(int64_t) ? rt_alloc((size_t)n * 8) : NULL;
	if (!o->unguarded)
		t->snap = floats(p->nparams + p->nstate);
	int64_t fixed = 1; /* forward_state's floats */
	for (int i = 0; i < p->nparam; i++)
		fixed += p->params[i].trainable ? 0 : p->params[i].numel;
	if (k > 1)
		t->acc = floats(p->nparams), t->fwd = floats(fixed);
	if (!t->order || (!o->unguarded && !t->snap) || (k > 1 && (!t->acc || !t->fwd))) {
		rt_trainer_free(t);
		rt_error(err, errlen, "out of memory");
		return NULL;
	}
	rt_rng_seed(&t->rng, o->seed);
	rt_lr_state_init(&t->o.sched, &t->lrs);
	rt_early_stop_init(&t->es, 0, 0, 0);
	t->dropout_off = -1;
	for (int i = 0; i < p->nstates; i++)
		if (!strcmp(p->states[i].name, "dropout_step"))
			t->dropout_off = p->states[i].offset;
	t->lr =
	    rt_schedule_lr(&t->o.sched, &t->lrs, (int64_t)s->step, t->steps_per_epoch);
	return t;
}

void rt_trainer_free(rt_trainer *t)
{
	if (!t)
		return;
	rt_free(t->order);
	rt_free(t->snap);
	rt_free(t->acc);
	rt_free(t->fwd);
	rt_free(t);
}

/* This epoch's order: the identity, shuffled from a copy of the epoch's rng. */
static void draw_order(rt_trainer *t)
{
	if (t->shuffled)
		return;
	for (int64_t i = 0; i < t->n; i++)
		t->order[i] = i;
	t->rng_next = t->rng;
	if (t->o.shuffle)
		rt_shuffle(&t->rng_next, t->order, t->n);
	t->shuffled = 1;
}

static const char *nonfinite_name(double v)
{
	return isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
}

/* Where a failing step was, for messages: "step 17 (epoch 2, step 5 of 8 in the epoch)".
 */
static void where(const rt_trainer *t, char *buf, size_t len)
{
	int64_t B = t->s->prog->batch * t->o.accumulate;
	snprintf(buf, len, "step %lld (epoch %lld, step %lld of %lld in the epoch)",
	         (long long)t->s->step + 1, (long long)t->epoch + 1,
	         (long long)(t->pos / B) + 1, (long long)t->steps_per_epoch);
}

/* Puts back the parameters, state and position this rt_trainer_run started from. */
static void roll_back(rt_trainer *t)
{
	rt_session *s = t->s;
	const rt_program *p = s->prog;
	memcpy(s->params, t->snap, (size_t)p->nparams * sizeof(float));
	memcpy(s->state, t->snap + p->nparams, (size_t)p->nstate * sizeof(float));
	s->step = t->snap_step;
	t->pos = t->snap_pos;
	t->loss_sum = t->snap_loss;
}

static void take_snapshot(rt_trainer *t)
{
	rt_session *s = t->s;
	const rt_program *p = s->prog;
	if (!t->snap)
		return;
	memcpy(t->snap, s->params, (size_t)p->nparams * sizeof(float));
	memcpy(t->snap + p->nparams, s->state, (size_t)p->nstate * sizeof(float));
	t->snap_step = s->step;
	t->snap_pos = t->pos;
	t->snap_loss = t->loss_sum;
}

/* The rows of the batch from example order[at] on, asked of the cache while a step
 * computes: they are at random places in the data set, and the next gather finds them
 * there (as session.c's run does for evaluation). */
static void prefetch_next(rt_trainer *t, int64_t at)
{
	int64_t left = t->n - at, B = t->s->prog->batch;
	if (left > 0)
		rt_prefetch_rows(t->x, t->order + at, left < B ? left : B);
}

/* One fused step on examples order[pos, pos + count); the loss through *loss. Generated
 * steps write no parameter or state when the loss or an updated value is not finite,
 * and say so with a NaN loss: the session is then as before the step. A program
 * without that guard may have written non-finite values: they are rolled back to the
 * run's snapshot. */
static int fused_step(rt_trainer *t, int64_t count, double *loss, char *err,
                      size_t errlen)
{
	rt_session *s = t->s;
	const rt_program *p = s->prog;
	session_fill(s, t->x, t->y, &t->feeds, t->order + t->pos, count);
	prefetch_next(t, t->pos + count);
	int refused = p->train_step(s->bufs);
	*loss = *(const float *)s->io[p->io_loss];
	if (!t->snap || (!refused && isfinite(*loss)))
		return 0;
	char at[160];
	where(t, at, sizeof at);
	t->bad_step = (int64_t)s->step + 1;
	if (refused || (first_nonfinite(s->params, p->nparams) < 0 &&
	                first_nonfinite(s->state, p->nstate) < 0))
		return rt_error(
		    err, errlen,
		    "the loss or an updated value is not finite at %s, or a "
		    "parameter's step is above 2^100; the step was not taken: "
		    "the parameters and optimizer state are those before it",
		    at);
	roll_back(t);
	return rt_error(
	    err, errlen,
	    "the loss is %s at %s; the parameters and optimizer state are rolled back "
	    "to step %llu",
	    nonfinite_name(*loss), at, (unsigned long long)s->step);
}

/* What grad's forward pass writes back: the parameters that are not trained (batch
 * norm's running statistics) and dropout's counter. An accumulated step keeps them
 * (keep = 1) to put them back (keep = 0) when it is not taken. */
static void forward_state(rt_trainer *t, int keep)
{
	rt_session *s = t->s;
	const rt_program *p = s->prog;
	float *k = t->fwd;
	for (int i = 0; i < p->nparam; i++)
		if (!p->params[i].trainable) {
			float *v = s->params + p->params[i].offset;
			size_t n = (size_t)p->params[i].numel * sizeof(float);
			memcpy(keep ? k : v, keep ? v : k, n);
			k += p->params[i].numel;
		}
	if (t->dropout_off >= 0 && keep)
		*k = s->state[t->dropout_off];
	else if (t->dropout_off >= 0)
		s->state[t->dropout_off] = *k;
}

/* One accumulated step: grad on each micro-batch of examples order[pos, pos + count),
 * gradients summed with weight count_j / count, checked, then step. */
static int accum_step(rt_trainer *t, int64_t count, double *loss, char *err,
                      size_t errlen)
{
	rt_session *s = t->s;
	const rt_program *p = s->prog;
	int64_t B = p->batch;
	forward_state(t, 1);
	double sum = 0;
	char at[160];
	memset(t->acc, 0, (size_t)p->nparams * sizeof(float));
	for (int64_t done = 0; done < count; done += B) {
		int64_t c = count - done < B ? count - done : B;
		session_fill(s, t->x, t->y, &t->feeds, t->order + t->pos + done, c);
		prefetch_next(t, t->pos + done + c);
		int refused = p->grad(s->bufs);
		double l = *(const float *)s->io[p->io_loss];
		if ((refused || !isfinite(l)) && t->snap) {
			forward_state(t, 0);
			where(t, at, sizeof at);
			t->bad_step = (int64_t)s->step + 1;
			*loss = l;
			if (isfinite(l))
				return rt_error(
				    err, errlen,
				    "a running statistic (batch norm's) is not "
				    "finite at %s (micro-batch %lld); the step "
				    "was not taken",
				    at, (long long)(done / B) + 1);
			return rt_error(
			    err, errlen,
			    "the loss is %s at %s (micro-batch %lld); the step "
			    "was not taken",
			    nonfinite_name(l), at, (long long)(done / B) + 1);
		}
		/* the gradient of the whole batch's loss: of a mean over its examples,
		 * the micro-batches' by their share of them; of a sum, their sum */
		int sums = p->loss_kind == RT_LOSS_SUM;
		float w = sums ? 1 : (float)((double)c / (double)count);
		for (int64_t i = 0; i < p->nparams; i++)
			t->acc[i] += w * s->grads[i];
		sum += sums ? l : l * (double)c / (double)count;
	}
	*loss = sum;
	int64_t bad = t->snap ? first_nonfinite(t->acc, p->nparams) : -1;
	if (bad >= 0) {
		forward_state(t, 0);
		where(t, at, sizeof at);
		t->bad_step = (int64_t)s->step + 1;
		return rt_error(
		    err, errlen,
		    "the gradient of %s is not finite at %s; the step was not taken",
		    param_at(p, bad), at);
	}
	memcpy(s->grads, t->acc, (size_t)p->nparams * sizeof(float));
	if (p->step(s->bufs)) {
		forward_state(t, 0);
		where(t, at, sizeof at);
		t->bad_step = (int64_t)s->step + 1;
		return rt_error(err, errlen,
		                "an updated value is not finite at %s, or a parameter's "
		                "step is above 2^100; the step was not taken",
		                at);
	}
	if (t->snap && (bad = first_nonfinite(s->params, p->nparams)) >= 0) {
		where(t, at, sizeof at);
		t->bad_step = (int64_t)s->step + 1;
		roll_back(t);
		return rt_error(err, errlen,
		                "the update at %s made %s not finite; the parameters and "
		                "optimizer state "
		                "are rolled back to step %llu",
		                at, param_at(p, bad), (unsigned long long)s->step);
	}
	return 0;
}

int rt_trainer_run(rt_trainer *t, int64_t max_steps, rt_progress_fn cb, void *ud,
                   rt_metrics *m, char *err, size_t errlen)
{
	if (!t)
		return rt_error(err, errlen, "rt_trainer_run: no trainer (NULL)");
	rt_session *s = t->s;
	const rt_program *p = s->prog;
	rt_metrics dummy;
	if (!m)
		m = &dummy;
	memset(m, 0, sizeof *m);
	m->accuracy = NAN;
	int lr_k = hyper_index(p, "lr");
	int64_t group = p->batch * t->o.accumulate, steps = 0;
	double t0 = now();
	int rc = 1;
	draw_order(t);
	take_snapshot(t);
	while (t->pos < t->n) {
		if (max_steps > 0 && (int64_t)s->step >= max_steps) {
			rc = 0;
			break;
		}
		t->lr = rt_schedule_lr(&t->o.sched, &t->lrs, (int64_t)s->step,
		                       t->steps_per_epoch);
		if (lr_k >= 0)
			s->hyper[lr_k] = (float)t->lr;
		int64_t count = t->n - t->pos < group ? t->n - t->pos : group;
		double loss;
		if ((t->acc ? accum_step(t, count, &loss, err, errlen)
		            : fused_step(t, count, &loss, err, errlen)) < 0) {
			rc = -1;
			break;
		}
		s->step++;
		steps++;
		t->pos += count;
		t->loss_sum += loss * (double)count;
		if (cb)
			cb(ud, (t->pos + group - 1) / group, t->steps_per_epoch,
			   t->loss_sum / (double)t->pos);
	}
	int64_t bad;
	if (rc >= 0 && t->snap && (bad = first_nonfinite(s->state, p->nstate)) >= 0) {
		/* rare: finite parameters, but a state value overflowed (Adam's
		 * exp_avg_sq) */
		t->bad_step = (int64_t)s->step;
		uint64_t at = s->step;
		roll_back(t);
		rc = rt_error(
		    err, errlen,
		    "the optimizer state %s is not finite after step %llu (epoch "
		    "%lld); the "
		    "parameters and optimizer state are rolled back to step %llu",
		    state_at(p, bad), (unsigned long long)at, (long long)t->epoch + 1,
		    (unsigned long long)s->step);
	}
	m->loss = t->pos ? t->loss_sum / (double)t->pos : NAN;
	m->examples = t->pos;
	m->steps = steps;
	m->seconds = now() - t0;
	t->seconds += m->seconds;
	if (rc == 1) { /* the epoch is over: the next one draws a new order */
		t->epoch++;
		t->pos = 0;
		t->loss_sum = 0;
		t->rng = t->rng_next;
		t->shuffled = 0;
	}
	return rc;
}

/* ---- checkpoints ---- */

static const char *const kind_names[] = {"constant", "step", "exponential", "cosine",
                                         "reduce_on_plateau"};

/* The metadata a checkpoint holds besides the caller's: key and value texts. */
typedef struct Meta {
	char keys[24][32], vals[24][96];
	int n;
} Meta;

static void meta_add(Meta *m, const char *key, const char *fmt, ...)
{
	if (m->n >= 24)
		return;
	snprintf(m->keys[m->n], sizeof m->keys[0], "%s", key);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->vals[m->n], sizeof m->vals[0], fmt, ap);
	va_end(ap);
	m->n++;
}

/* The state tensor's shape; a state without one (an older table) is flat. */
static int state_shape(const rt_state *q, int64_t *shape)
{
	if (q->rank == 0 && q->numel != 1) {
		shape[0] = q->numel;
		return 1;
	}
	memcpy(shape, q->shape, sizeof q->shape);
	return q->rank;
}

int rt_trainer_save(const rt_trainer *t, const char *path, const char *const *keys,
                    const char *const *vals, int nextra, char *err, size_t errlen)
{
	if (!t || !path)
		return rt_error(err, errlen, "rt_trainer_save: %s is NULL",
		                !t ? "the trainer" : "the path");
	const rt_session *s = t->s;
	const rt_program *p = s->prog;
	int64_t bp = first_nonfinite(s->params, p->nparams);
	int64_t bs = first_nonfinite(s->state, p->nstate);
	if (bp >= 0 || bs >= 0)
		return rt_error(err, errlen,
		                "%s: not written: %s%s holds a value that is not finite",
		                path, bp >= 0 ? "" : "the optimizer state ",
		                bp >= 0 ? param_at(p, bp) : state_at(p, bs));
	int n = p->nparam + p->nstates, status = -1;
	rt_st_tensor *ts = rt_alloc((size_t)(n + 1) * sizeof *ts);
	char **names = rt_alloc((size_t)(p->nstates + 1) * sizeof *names);
	Meta *m = rt_alloc(sizeof *m);
	const char **mk = rt_alloc((size_t)(24 + nextra) * sizeof *mk);
	const char **mv = rt_alloc((size_t)(24 + nextra) * sizeof *mv);
	if (!ts || !names || !m || !mk || !mv) {
		rt_error(err, errlen, "out of memory");
		goto done;
	}
	for (int i = 0; i < p->nparam; i++) {
		const rt_param *q = &p->params[i];
		ts[i] = (rt_st_tensor){q->name,
		                       RT_ST_F32,
		                       q->rank,
		                       {0},
		                       s->params + q->offset,
		                       (size_t)q->numel * 4};
		memcpy(ts[i].shape, q->shape, sizeof q->shape);
	}
	for (int i = 0; i < p->nstates; i++) {
		const rt_state *q = &p->states[i];
		size_t len = strlen(q->name) + 11;
		if (!(names[i] = rt_alloc(len))) {
			rt_error(err, errlen, "out of memory");
			goto done;
		}
		snprintf(names[i], len, "optimizer.%s", q->name);
		rt_st_tensor *x = &ts[p->nparam + i];
		*x = (rt_st_tensor){names[i],
		                    RT_ST_F32,
		                    0,
		                    {0},
		                    s->state + q->offset,
		                    (size_t)q->numel * 4};
		x->rank = state_shape(q, x->shape);
	}
	const rt_rng *r = &t->rng;
	meta_add(m, "format", FORMAT);
	meta_add(m, "graph_hash", "%016" PRIx64, p->graph_hash);
	meta_add(m, "step", "%" PRIu64, s->step);
	meta_add(m, "epoch", "%lld", (long long)t->epoch);
	meta_add(m, "epoch_position", "%lld", (long long)t->pos);
	meta_add(m, "examples_per_epoch", "%lld", (long long)t->n);
	meta_add(m, "batch", "%lld", (long long)p->batch);
	meta_add(m, "accumulate", "%lld", (long long)t->o.accumulate);
	meta_add(m, "shuffle", "%d", t->o.shuffle);
	meta_add(m, "rng", "%016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64,
	         r->s[0], r->s[1], r->s[2], r->s[3]);
	meta_add(m, "lr", "%.17g", t->lr);
	meta_add(m, "schedule", "%s", kind_names[t->o.sched.kind]);
	meta_add(m, "schedule.lr", "%.17g", t->lrs.lr);
	meta_add(m, "schedule.best", "%.17g", t->lrs.best);
	meta_add(m, "schedule.bad_epochs", "%lld", (long long)t->lrs.bad_epochs);
	meta_add(m, "schedule.cooldown_left", "%lld", (long long)t->lrs.cooldown_left);
	meta_add(m, "epoch_loss_sum", "%.17g", t->loss_sum);
	meta_add(m, "seconds", "%.17g", t->seconds);
	int seed_k = hyper_index(p, "seed"); /* dropout's: the masks go on as they were */
	if (seed_k >= 0)
		meta_add(m, "dropout_seed", "%.9g", (double)s->hyper[seed_k]);
	if (t->es_on) {
		meta_add(m, "early_stopping.best", "%.17g", t->es.best);
		meta_add(m, "early_stopping.wait", "%lld", (long long)t->es.wait);
	}
	int nm = 0;
	for (int i = 0; i < m->n; i++)
		mk[nm] = m->keys[i], mv[nm++] = m->vals[i];
	for (int i = 0; i < nextra; i++)
		mk[nm] = keys[i], mv[nm++] = vals[i];
	status = rt_st_save(path, ts, n, mk, mv, nm, err, errlen);
done:
	for (int i = 0; names && i < p->nstates; i++)
		rt_free(names[i]);
	rt_free(names);
	rt_free(ts);
	rt_free(m);
	rt_free(mk);
	rt_free(mv);
	return status;
}

/* The lists of what does not fit, built while checking. */
typedef struct Misfit {
	char miss[1024], shape[1024], extra[1024], bad[512], range[512];
	int nmiss, nshape, nextra, nbad, nrange, oom;
} Misfit;

static int ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), k = strlen(tail);
	return n >= k && !strcmp(s + n - k, tail);
}

/* What a tensor of torch's name cannot hold, or NULL: the step count and dropout's
 * are whole numbers (floats, exact up to 2^24), and second moments, sums of squares
 * and batch norm's running variance are not negative (sqrt of them is taken; a
 * negative variance made every evaluation NaN) */
static const char *out_of_range(const char *name, const float *v, int64_t n)
{
	int count =
	    !strcmp(name, "optimizer.step") || !strcmp(name, "optimizer.dropout_step");
	int state = !strncmp(name, "optimizer.", 10); /* (a parameter may be "a.sum") */
	int squares = state
	                  ? ends_with(name, ".exp_avg_sq") ||
	                        ends_with(name, ".square_avg") || ends_with(name, ".sum")
	                  : ends_with(name, ".running_var");
	for (int64_t i = 0; i < n; i++) {
		if (count && !(v[i] >= 0 && v[i] <= 0x1p24f && v[i] == floorf(v[i])))
			return "not a step count";
		if (squares && v[i] < 0)
			return "negative";
	}
	return NULL;
}

static void check_tensor(const rt_st_file *f, const char *name, int rank,
                         const int64_t *shape, Misfit *x)
{
	const rt_st_tensor *t = rt_st_find(f, name);
	if (!t) {
		rt_append(x->miss, sizeof x->miss, "%s%s", x->nmiss++ ? ", " : "", name);
		return;
	}
	int same = t->rank == rank && t->dtype == RT_ST_F32;
	for (int i = 0; same && i < rank; i++)
		same = t->shape[i] == shape[i];
	if (!same) {
		char a[96], b[96];
		rt_shape_text(a, sizeof a, t->rank, t->shape);
		rt_shape_text(b, sizeof b, rank, shape);
		rt_append(x->shape, sizeof x->shape, "%s%s (file: %s%s, model: %s)",
		          x->nshape++ ? ", " : "", name, a,
		          t->dtype == RT_ST_F32 ? "" : " not F32", b);
		return;
	}
	int64_t numel = (int64_t)(t->nbytes / 4);
	float *v = floats(numel); /* an aligned copy: the file's data may not be */
	if (!v) {
		x->oom = 1;
		return;
	}
	memcpy(v, t->data, t->nbytes);
	const char *why;
	if (first_nonfinite(v, numel) >= 0)
		rt_append(x->bad, sizeof x->bad, "%s%s", x->nbad++ ? ", " : "", name);
	else if ((why = out_of_range(name, v, numel)))
		rt_append(x->range, sizeof x->range, "%s%s (%s)", x->nrange++ ? ", " : "",
		          name, why);
	rt_free(v);
}

/* Every tensor of the file is a parameter or "optimizer." + a state name. */
static int known(const rt_program *p, const char *name)
{
	for (int i = 0; i < p->nparam; i++)
		if (!strcmp(p->params[i].name, name))
			return 1;
	if (strncmp(name, "optimizer.", 10))
		return 0;
	for (int i = 0; i < p->nstates; i++)
		if (!strcmp(p->states[i].name, name + 10))
			return 1;
	return 0;
}

static int check_tensors(const rt_program *p, const rt_st_file *f, char *err,
                         size_t errlen)
{
	Misfit *x = rt_alloc(sizeof *x);
	if (!x)
		return rt_error(err, errlen, "out of memory");
	char name[512];
	int64_t shape[RT_MAXRANK];
	for (int i = 0; i < p->nparam; i++)
		check_tensor(f, p->params[i].name, p->params[i].rank, p->params[i].shape,
		             x);
	for (int i = 0; i < p->nstates; i++) {
		snprintf(name, sizeof name, "optimizer.%s", p->states[i].name);
		int rank = state_shape(&p->states[i], shape);
		check_tensor(f, name, rank, shape, x);
	}
	for (int i = 0; i < f->n; i++)
		if (!known(p, f->t[i].name))
			rt_append(x->extra, sizeof x->extra, "%s%s",
			          x->nextra++ ? ", " : "", f->t[i].name);
	int rc = 0;
	if (x->oom) {
		rc = rt_error(err, errlen, "out of memory");
	} else if (x->nmiss || x->nshape || x->nextra || x->nbad || x->nrange) {
		snprintf(err, errlen, "the checkpoint does not fit this model:");
		if (x->nmiss)
			rt_append(err, errlen, " missing %d: %s;", x->nmiss, x->miss);
		if (x->nextra)
			rt_append(err, errlen, " unexpected %d: %s;", x->nextra,
			          x->extra);
		if (x->nshape)
			rt_append(err, errlen, " mis-shaped %d: %s;", x->nshape,
			          x->shape);
		if (x->nbad)
			rt_append(err, errlen, " not finite: %s;", x->bad);
		if (x->nrange)
			rt_append(err, errlen, " out of range: %s;", x->range);
		err[strlen(err) - 1] = 0;
		rc = -1;
	}
	rt_free(x);
	return rc;
}

/* Metadata values, parsed strictly: a missing or malformed key is an error. */
typedef struct Reader {
	const rt_st_file *f;
	char *err;
	size_t errlen;
	int bad;
} Reader;

static const char *need(Reader *r, const char *key)
{
	const char *v = rt_st_meta(r->f, key);
	if (!v && !r->bad++)
		rt_error(r->err, r->errlen, "the checkpoint's metadata has no '%s'", key);
	return v;
}

static int64_t get_int(Reader *r, const char *key)
{
	const char *v = need(r, key);
	char *end;
	errno = 0;
	long long x = v ? strtoll(v, &end, 10) : 0;
	if (v && (*end || end == v || x < 0 || errno == ERANGE) && !r->bad++)
		rt_error(r->err, r->errlen, "the checkpoint's '%s' is '%s', not a count",
		         key, v);
	return x;
}

/* The generator's state as saved: four words of 1 to 16 hex digits, one space apart,
 * not all zero (xoshiro's fixed point: every draw 0, and rt_rng_below's rejection
 * loop waited for another forever) */
static int parse_rng(const char *s, rt_rng *rng)
{
	uint64_t any = 0;
	for (int i = 0; i < 4; i++) {
		if (i && *s++ != ' ')
			return 0;
		int n = 0;
		uint64_t v = 0;
		for (; isxdigit((unsigned char)*s) && n < 16; s++, n++)
			v = v << 4 |
			    (uint64_t)(isdigit((unsigned char)*s)
			                   ? *s - '0'
			                   : (tolower((unsigned char)*s) - 'a' + 10));
		if (!n)
			return 0;
		rng->s[i] = v;
		any |= v;
	}
	return !*s && any;
}

/* A number of the metadata: never NaN; finite unless inf is set; at least 0 when
 * nonneg is (a learning rate, seconds) */
static double get_num(Reader *r, const char *key, int inf, int nonneg)
{
	const char *v = need(r, key);
	char *end;
	double x = v ? strtod(v, &end) : 0;
	if (v &&
	    (*end || end == v || isnan(x) || (!inf && isinf(x)) || (nonneg && x < 0)) &&
	    !r->bad++)
		rt_error(r->err, r->errlen,
		         "the checkpoint's '%s' is '%s', not a %snumber", key, v,
		         nonneg ? "non-negative finite "
		         : inf  ? ""
		                : "finite ");
	return x;
}

int rt_trainer_load(rt_trainer *t, const rt_st_file *f, char *err, size_t errlen)
{
	if (!t || !f)
		return rt_error(err, errlen, "rt_trainer_load: %s is NULL",
		                !t ? "the trainer" : "the file");
	rt_session *s = t->s;
	const rt_program *p = s->prog;
	Reader r = {f, err, errlen, 0};
	const char *fmt = rt_st_meta(f, "format");
	if (!fmt || strcmp(fmt, FORMAT))
		return rt_error(
		    err, errlen,
		    "not a descent checkpoint (its metadata has no format \"" FORMAT
		    "\")");
	const char *h = need(&r, "graph_hash");
	char want[17];
	snprintf(want, sizeof want, "%016" PRIx64, p->graph_hash);
	char why[256] = "";
	if (h && p->graph_hash && strcmp(h, want))
		snprintf(why, sizeof why,
		         "the checkpoint is of another model (graph hash %s; this "
		         "model's is %s)",
		         h, want);
	if (check_tensors(p, f, err, errlen) < 0) {
		if (why[0]) { /* both: the hash first, then how the tensors differ */
			char more[2048];
			snprintf(more, sizeof more, "%s", err);
			snprintf(err, errlen, "%s; %s", why, more);
		}
		return -1;
	}
	if (why[0])
		return rt_error(err, errlen, "%s", why);
	uint64_t step = (uint64_t)get_int(&r, "step");
	int64_t epoch = get_int(&r, "epoch"), at = get_int(&r, "epoch_position");
	int64_t n = get_int(&r, "examples_per_epoch"), batch = get_int(&r, "batch");
	int64_t k = get_int(&r, "accumulate"), shuffle = get_int(&r, "shuffle");
	double lr = get_num(&r, "lr", 0, 1), slr = get_num(&r, "schedule.lr", 0, 1);
	double best = get_num(&r, "schedule.best", 1, 0);
	int64_t bad = get_int(&r, "schedule.bad_epochs");
	int64_t cool = get_int(&r, "schedule.cooldown_left");
	double loss_sum = get_num(&r, "epoch_loss_sum", 0, 0),
	       secs = get_num(&r, "seconds", 0, 1);
	const char *rs = need(&r, "rng");
	rt_rng rng = {{0}};
	if (rs && !parse_rng(rs, &rng) && !r.bad++)
		rt_error(err, errlen,
		         "the checkpoint's 'rng' is '%s', not four hex words of a state "
		         "that is not all zero",
		         rs);
	if (shuffle > 1 && !r.bad++)
		rt_error(err, errlen, "the checkpoint's 'shuffle' is %lld, not 0 or 1",
		         (long long)shuffle);
	if (r.bad)
		return -1;
	if (batch != p->batch || k != t->o.accumulate || n != t->n ||
	    shuffle != t->o.shuffle)
		return rt_error(
		    err, errlen,
		    "the checkpoint was made with batch %lld, accumulate %lld, "
		    "%lld examples "
		    "per epoch%s; this run has batch %lld, accumulate %lld, %lld "
		    "examples%s: "
		    "it cannot continue that run exactly",
		    (long long)batch, (long long)k, (long long)n,
		    shuffle ? "" : ", unshuffled", (long long)p->batch,
		    (long long)t->o.accumulate, (long long)t->n,
		    t->o.shuffle ? "" : ", unshuffled");
	if (at < 0 || at >= n || (at && at % (batch * k)))
		return rt_error(
		    err, errlen,
		    "the checkpoint's epoch_position %lld is not a step boundary "
		    "of an epoch of %lld examples",
		    (long long)at, (long long)n);
	int seed_k = hyper_index(p, "seed");
	double dseed = seed_k >= 0 ? s->hyper[seed_k] : 0;
	if (seed_k >= 0 && rt_st_meta(f, "dropout_seed")) { /* (older ones lack it) */
		dseed = get_num(&r, "dropout_seed", 0, 1);
		if (!r.bad && (dseed != floor(dseed) || dseed >= 0x1p24))
			return rt_error(err, errlen,
			                "the checkpoint's 'dropout_seed' is %.9g, not a "
			                "whole number below 2^24",
			                dseed);
		if (r.bad)
			return -1;
	}
	double es_best = t->es.best;
	int64_t es_wait = t->es.wait;
	if (t->es_on && rt_st_meta(f, "early_stopping.best")) {
		es_best = get_num(&r, "early_stopping.best", 1, 0);
		es_wait = get_int(&r, "early_stopping.wait");
		if (r.bad)
			return -1;
	}
	/* all checked: restore */
	for (int i = 0; i < p->nparam; i++)
		memcpy(s->params + p->params[i].offset,
		       rt_st_find(f, p->params[i].name)->data,
		       (size_t)p->params[i].numel * 4);
	char name[512];
	for (int i = 0; i < p->nstates; i++) {
		snprintf(name, sizeof name, "optimizer.%s", p->states[i].name);
		memcpy(s->state + p->states[i].offset, rt_st_find(f, name)->data,
		       (size_t)p->states[i].numel * 4);
	}
	s->step = step;
	if (seed_k >= 0)
		s->hyper[seed_k] = (float)dseed;
	t->epoch = epoch;
	t->pos = at;
	t->rng = rng;
	t->shuffled = 0;
	t->lr = lr;
	t->lrs.lr = slr;
	t->lrs.best = best;
	t->lrs.bad_epochs = bad;
	t->lrs.cooldown_left = cool;
	t->loss_sum = loss_sum;
	t->seconds = secs;
	t->es.best = es_best;
	t->es.wait = es_wait;
	return 0;
}
