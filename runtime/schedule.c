/* Learning-rate schedules and early stopping, as pure functions of a small state.
 *
 * The formulas are torch.optim.lr_scheduler's closed forms (StepLR, ExponentialLR,
 * CosineAnnealingLR, ReduceLROnPlateau), computed in double precision. A schedule
 * counts t in epochs or in optimizer steps; a linear warm-up (LinearLR from
 * start_factor to 1) may come first, after which the main schedule starts from its
 * own t = 0, as SequentialLR chains the two. The rate is a function of the number of
 * steps taken and the steps per epoch, plus ReduceLROnPlateau's counters, so a
 * checkpoint holding those resumes the schedule exactly. Early stopping follows
 * Keras' EarlyStopping (and Lightning's): min_delta is the improvement that counts,
 * patience the epochs without one before stopping. */
#include <math.h>
#include <string.h>

#include "descent/runtime.h"

#define PI 3.14159265358979323846

void rt_schedule_defaults(rt_schedule *s, rt_lr_kind kind, double base_lr)
{
	memset(s, 0, sizeof *s);
	s->kind = kind;
	s->base_lr = base_lr;
	s->step_size = 1;
	s->gamma = 0.1;
	s->T_max = 1;
	s->factor = 0.1;
	s->patience = 10;
	s->threshold = 1e-4;
	s->eps = 1e-8;
	s->start_factor = 1.0 / 3.0;
}

void rt_lr_state_init(const rt_schedule *s, rt_lr_state *st)
{
	st->lr = s->base_lr;
	st->best = s->mode_max ? -INFINITY : INFINITY;
	st->bad_epochs = st->cooldown_left = 0;
}

/* The main schedule at its own t >= 0. */
static double main_lr(const rt_schedule *s, const rt_lr_state *st, int64_t t)
{
	switch (s->kind) {
	case RT_LR_STEP:
		return s->base_lr *
		       pow(s->gamma, (double)(t / (s->step_size > 0 ? s->step_size : 1)));
	case RT_LR_EXPONENTIAL:
		return s->base_lr * pow(s->gamma, (double)t);
	case RT_LR_COSINE: {
		double T = (double)(s->T_max > 0 ? s->T_max : 1);
		return s->eta_min +
		       (s->base_lr - s->eta_min) * (1 + cos(PI * (double)t / T)) / 2;
	}
	case RT_LR_PLATEAU:
		return st->lr;
	case RT_LR_CONSTANT:
	default:
		return s->base_lr;
	}
}

double rt_schedule_lr(const rt_schedule *s, const rt_lr_state *st, int64_t step,
                      int64_t steps_per_epoch)
{
	int64_t P = steps_per_epoch > 0 ? steps_per_epoch : 1;
	int64_t W = s->warmup_steps > 0 ? s->warmup_steps : s->warmup_epochs * P;
	if (step < 0)
		step = 0;
	if (W > 0 && step < W) {
		double f =
		    s->start_factor + (1 - s->start_factor) * (double)step / (double)W;
		return main_lr(s, st, 0) * f;
	}
	int64_t t = step - (W > 0 ? W : 0);
	return main_lr(s, st, s->per_step ? t : t / P);
}

static int better(int mode_max, int abs_mode, double threshold, double a, double best)
{
	if (mode_max)
		return abs_mode ? a > best + threshold : a > best * (1 + threshold);
	return abs_mode ? a < best - threshold : a < best * (1 - threshold);
}

int rt_schedule_epoch_end(const rt_schedule *s, rt_lr_state *st, double metric)
{
	if (s->kind != RT_LR_PLATEAU)
		return 0;
	if (better(s->mode_max, s->threshold_abs, s->threshold, metric, st->best)) {
		st->best = metric;
		st->bad_epochs = 0;
	} else {
		st->bad_epochs += st->bad_epochs < INT64_MAX; /* (a checkpoint's: any) */
	}
	if (st->cooldown_left > 0) { /* bad epochs in cooldown do not count */
		st->cooldown_left--;
		st->bad_epochs = 0;
	}
	if (st->bad_epochs <= s->patience)
		return 0;
	double lr = st->lr * s->factor > s->min_lr ? st->lr * s->factor : s->min_lr;
	int reduced = st->lr - lr > s->eps;
	if (reduced)
		st->lr = lr;
	st->cooldown_left = s->cooldown;
	st->bad_epochs = 0;
	return reduced;
}

void rt_early_stop_init(rt_early_stop *e, int mode_max, double min_delta,
                        int64_t patience)
{
	e->mode_max = mode_max;
	e->min_delta = fabs(min_delta);
	e->patience = patience;
	e->best = mode_max ? -INFINITY : INFINITY;
	e->wait = 0;
}

int rt_early_stop_update(rt_early_stop *e, double metric)
{
	int improved =
	    isfinite(metric) && (e->mode_max ? metric - e->min_delta > e->best
	                                     : metric + e->min_delta < e->best);
	if (improved) {
		e->best = metric;
		e->wait = 0;
		return 0;
	}
	e->wait += e->wait < INT64_MAX; /* (a checkpoint's count may be any) */
	return e->wait >= e->patience;
}
