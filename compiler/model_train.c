/* A model file's train: and data: sections, for model.c's model_from_spec: the
 * training loop's settings (batch, epochs, steps, seed, the learning-rate schedule and
 * its warm-up, the validation split, gradient accumulation, early stopping, checkpoints)
 * and where each input's training and test values come from (IDX, .npy or CSV files,
 * relative to the model file). Like the rest of model.c, each function reports what is
 * wrong at the YAML node and goes on.
 *
 *   train: {batch: 64, epochs: 5, seed: 0, schedule: {type: cosine, T_max: 5}}
 *   data: {train: {image: {idx: x.gz, scale: 1/255}, label: {idx: y.gz}}}
 */
#include <string.h>

#include "model.h"

static const char *const train_keys[] = {
    "batch",  "epochs",           "steps",          "seed",       "schedule",
    "warmup", "validation_split", "early_stopping", "accumulate", "checkpoint",
    NULL};
static const char *const data_keys[] = {"train", "test", NULL};
static const char *const source_keys[] = {"idx", "npy", "scale", NULL};
static const char *const csv_keys[] = {"csv",    "label", "delimiter",
                                       "header", "scale", NULL};

/* ---------------- train ---------------- */

/* torch.optim.lr_scheduler's schedules and the settings each has (besides type). */
static const char *const sched_names[] = {"constant", "step", "exponential", "cosine",
                                          "reduce_on_plateau"}; /* rt_lr_kind */
static const char *const *const sched_keys[] = {
    (const char *const[]){"type", NULL},
    (const char *const[]){"type", "interval", "step_size", "gamma", NULL},
    (const char *const[]){"type", "interval", "gamma", NULL},
    (const char *const[]){"type", "interval", "T_max", "eta_min", NULL},
    (const char *const[]){"type", "monitor", "mode", "factor", "patience", "threshold",
                          "threshold_mode", "cooldown", "min_lr", "eps", NULL}};
static const char *const monitor_names[] = {
    "auto", "train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy"};
static const char *const mode_names[] = {"auto", "min", "max"};
static const char *const interval_names[] = {"epoch", "step"};
static const char *const threshold_modes[] = {"rel", "abs"};
static const char *const warmup_keys[] = {"epochs", "steps", "start_factor", NULL};
static const char *const early_keys[] = {"monitor", "patience", "min_delta", "mode",
                                         NULL};
static const char *const checkpoint_keys[] = {"every", NULL};

static void parse_monitor(Ctx *c, const Spec *map, Monitor *mon, int *mode, SrcLoc *loc)
{
	const Spec *v;
	int k;
	if ((v = spec_get(map, "monitor")) &&
	    !spec_enum(c->d, v, "monitor", monitor_names, N(monitor_names), &k)) {
		*mon = (Monitor)k;
		*loc = v->loc;
	}
	if ((v = spec_get(map, "mode")) &&
	    !spec_enum(c->d, v, "mode", mode_names, N(mode_names), &k))
		*mode = k;
}

/* schedule: {type: cosine, T_max: 10, eta_min: 0, interval: epoch} */
static void parse_schedule(Ctx *c, const Spec *s, TrainCfg *tc)
{
	rt_schedule *r = &tc->sched;
	const Spec *v, *type;
	int k = 0;
	tc->sched_loc = s->loc;
	if (spec_expect(c->d, s, SPEC_MAP, "schedule") ||
	    !(type = spec_need(c->d, s, "type", "schedule")) ||
	    spec_enum(c->d, type, "schedule type", sched_names, N(sched_names), &k))
		return;
	rt_schedule_defaults(r, (rt_lr_kind)k, 0);
	spec_keys(c->d, s, arena_printf(c->A, "schedule (%s)", sched_names[k]),
	          sched_keys[k]);
	const char *required = k == RT_LR_STEP          ? "step_size"
	                       : k == RT_LR_EXPONENTIAL ? "gamma"
	                       : k == RT_LR_COSINE      ? "T_max"
	                                                : NULL;
	if (required)
		spec_need(c->d, s, required,
		          arena_printf(c->A, "schedule (%s)", sched_names[k]));
	int i;
	if ((v = spec_get(s, "interval")) &&
	    !spec_enum(c->d, v, "interval", interval_names, N(interval_names), &i))
		r->per_step = i;
	if ((v = spec_get(s, "step_size")))
		spec_int(c->d, v, "step_size", 1, INT64_C(1) << 40, &r->step_size);
	if ((v = spec_get(s, "T_max")))
		spec_int(c->d, v, "T_max", 1, INT64_C(1) << 40, &r->T_max);
	if ((v = spec_get(s, "gamma")))
		num_pos(c, v, "gamma", 1e6, &r->gamma);
	if ((v = spec_get(s, "eta_min")))
		spec_num(c->d, v, "eta_min", 0, 1e6, &r->eta_min);
	if ((v = spec_get(s, "factor")) &&
	    !spec_num(c->d, v, "factor", 0, 1, &r->factor) && r->factor >= 1)
		error_at(c->d, v->loc, "'factor' must be less than 1, got '%s'", v->str);
	if ((v = spec_get(s, "patience")))
		spec_int(c->d, v, "patience", 0, INT64_C(1) << 40, &r->patience);
	if ((v = spec_get(s, "cooldown")))
		spec_int(c->d, v, "cooldown", 0, INT64_C(1) << 40, &r->cooldown);
	if ((v = spec_get(s, "threshold")))
		spec_num(c->d, v, "threshold", 0, 1e9, &r->threshold);
	if ((v = spec_get(s, "threshold_mode")) &&
	    !spec_enum(c->d, v, "threshold_mode", threshold_modes, N(threshold_modes),
	               &i))
		r->threshold_abs = i;
	if ((v = spec_get(s, "min_lr")))
		spec_num(c->d, v, "min_lr", 0, 1e6, &r->min_lr);
	if ((v = spec_get(s, "eps")))
		spec_num(c->d, v, "eps", 0, 1, &r->eps);
	parse_monitor(c, s, &tc->sched_monitor, &tc->sched_mode, &tc->sched_loc);
}

/* warmup: {epochs: 1, start_factor: 0.1} or {steps: 500} */
static void parse_warmup(Ctx *c, const Spec *s, TrainCfg *tc)
{
	rt_schedule *r = &tc->sched;
	const Spec *v, *e = NULL, *st = NULL;
	if (!keys_ok(c, s, "warmup", warmup_keys))
		return;
	if ((e = spec_get(s, "epochs")))
		spec_int(c->d, e, "epochs", 1, 1000000, &r->warmup_epochs);
	if ((st = spec_get(s, "steps")))
		spec_int(c->d, st, "steps", 1, INT64_C(1) << 40, &r->warmup_steps);
	if (e && st)
		error_at(c->d, key_of(s, "steps")->loc,
		         "give the warm-up's length in 'epochs' or in 'steps', not both");
	else if (!e && !st)
		error_at(c->d, s->loc,
		         "the warm-up needs its length: 'epochs' or 'steps'");
	if ((v = spec_get(s, "start_factor")) &&
	    !spec_num(c->d, v, "start_factor", 0, 1, &r->start_factor) &&
	    r->start_factor <= 0)
		error_at(c->d, v->loc, "'start_factor' must be greater than 0, got '%s'",
		         v->str);
}

/* early_stopping: {monitor: val_loss, patience: 3, min_delta: 0, mode: auto} */
static void parse_early(Ctx *c, const Spec *s, TrainCfg *tc)
{
	const Spec *v;
	tc->early = 1;
	tc->es_patience = 3;
	tc->es_loc = s->loc;
	if (!keys_ok(c, s, "early_stopping", early_keys))
		return;
	if ((v = spec_get(s, "patience")))
		spec_int(c->d, v, "patience", 0, INT64_C(1) << 40, &tc->es_patience);
	if ((v = spec_get(s, "min_delta")))
		spec_num(c->d, v, "min_delta", 0, 1e9, &tc->es_min_delta);
	parse_monitor(c, s, &tc->es_monitor, &tc->es_mode, &tc->es_loc);
}

void parse_train(Ctx *c, const Spec *s)
{
	Model *m = c->m;
	TrainCfg *tc = &m->tc;
	const Spec *v;
	int64_t seed;
	if (!keys_ok(c, s, "train", train_keys))
		return;
	if ((v = spec_get(s, "batch")))
		spec_int(c->d, v, "batch", 1, 1 << 20, &m->batch);
	if ((v = spec_get(s, "epochs")))
		spec_int(c->d, v, "epochs", 0, 1000000, &m->epochs);
	if ((v = spec_get(s, "steps"))) {
		spec_int(c->d, v, "steps", 0, INT64_C(1) << 40, &m->steps);
		tc->steps_set = 1;
		tc->steps_loc = key_of(s, "steps")->loc;
	}
	if ((v = spec_get(s, "seed")) && !spec_int(c->d, v, "seed", 0, INT64_MAX, &seed))
		m->seed = (uint64_t)seed;
	rt_schedule_defaults(&tc->sched, RT_LR_CONSTANT, 0);
	if ((v = spec_get(s, "schedule"))) {
		parse_schedule(c, v, tc);
		tc->sched_set = 1;
	}
	if ((v = spec_get(s, "warmup"))) {
		parse_warmup(c, v, tc);
		tc->sched_set = 1;
	}
	if ((v = spec_get(s, "validation_split"))) {
		tc->split_loc = v->loc;
		if (!spec_num(c->d, v, "validation_split", 0, 1, &tc->validation_split) &&
		    (tc->validation_split <= 0 || tc->validation_split >= 1))
			error_at(c->d, v->loc,
			         "'validation_split' is the fraction of the training set "
			         "to hold out, "
			         "between 0 and 1; got '%s'",
			         v->str);
	}
	if ((v = spec_get(s, "accumulate")))
		spec_int(c->d, v, "accumulate", 1, 1 << 16, &tc->accumulate);
	if ((v = spec_get(s, "early_stopping")))
		parse_early(c, v, tc);
	if ((v = spec_get(s, "checkpoint")) &&
	    keys_ok(c, v, "checkpoint", checkpoint_keys) && (v = spec_get(v, "every")))
		spec_int(c->d, v, "every", 1, 1000000, &tc->ckpt_every);
}

/* ---------------- data ---------------- */

static const char *resolve(Ctx *c, const char *path)
{
	size_t n = strlen(c->dir);
	if (path[0] == '/' || !n)
		return arena_strdup(c->A, path);
	return arena_printf(c->A, "%s%s%s", c->dir, c->dir[n - 1] == '/' ? "" : "/",
	                    path);
}

/* {idx: path, scale: 1/255} or {npy: path}: one input's values. */
static void parse_source(Ctx *c, const Spec *s, const ModelInput *in, DataSource *ds,
                         const char *what)
{
	const Spec *v, *idx, *npy;
	const char *path;
	ds->loc = s->loc;
	if (!keys_ok(c, s, what, source_keys))
		return;
	idx = spec_get(s, "idx");
	npy = spec_get(s, "npy");
	if (idx && npy)
		error_at(c->d, key_of(s, "npy")->loc,
		         "%s has both 'idx' and 'npy'; give one file", what);
	else if (!idx && !npy)
		error_at(c->d, s->loc,
		         "%s needs a file: 'idx: PATH' (IDX, .gz or not) or 'npy: PATH'",
		         what);
	if ((v = idx ? idx : npy) && !spec_str(c->d, v, idx ? "idx" : "npy", &path)) {
		ds->kind = idx ? SRC_IDX : SRC_NPY;
		ds->path = resolve(c, path);
		ds->loc = v->loc;
	}
	if ((v = spec_get(s, "scale"))) {
		if (in->dt != DT_F32)
			error_at(c->d, key_of(s, "scale")->loc,
			         "'scale' applies to f32 inputs; '%s' is %s", in->name,
			         dtype_names[in->dt]);
		else
			num_pos(c, v, "scale", 1e9, &ds->scale);
	}
}

/* {csv: path, label: column, delimiter: ',', header: true, scale: 1}: one file holding
 * the network's input (every other column) and the loss target (the label column). */
static void parse_csv(Ctx *c, const Spec *s, DataSource *ds, const char *what)
{
	Model *m = c->m;
	const Spec *v;
	DataSource d = {
	    .kind = SRC_CSV, .scale = 1, .loc = s->loc, .delimiter = ',', .header = 1};
	if (!keys_ok(c, s, what, csv_keys))
		return;
	int own = m->ninputs == 1 && m->x == 0 && m->y == 0; /* its own target */
	if (!own && (m->x < 0 || m->y < 0 || m->ninputs != 2)) {
		error_at(
		    c->d, s->loc,
		    "a CSV data set feeds the network's input and the loss target, or "
		    "the one input of a model of one; this model has %d inputs",
		    m->ninputs);
		return;
	}
	if ((v = spec_get(s, "csv")) && !spec_str(c->d, v, "csv", &d.path)) {
		d.path = resolve(c, d.path);
		d.loc = v->loc;
	}
	if (own && (v = spec_get(s, "label")))
		error_at(c->d, key_of(s, "label")->loc,
		         "a model of one input ('%s') takes its CSV's columns alone: no "
		         "label",
		         m->inputs[0].name);
	else if (!own && (v = spec_need(c->d, s, "label", what)) &&
	         spec_expect(c->d, v, SPEC_SCALAR, "label") == 0)
		d.label = v->str;
	if ((v = spec_get(s, "delimiter")) &&
	    !spec_expect(c->d, v, SPEC_SCALAR, "delimiter")) {
		if (!strcmp(v->str, "\\t") || !strcmp(v->str, "tab"))
			d.delimiter = '\t';
		else if (strlen(v->str) == 1 && v->str[0] != '"' && v->str[0] != '\n')
			d.delimiter = v->str[0];
		else
			error_at(c->d, v->loc,
			         "'delimiter' is one character (or 'tab'), got '%s'",
			         v->str);
	}
	if ((v = spec_get(s, "header")))
		spec_bool(c->d, v, "header", &d.header);
	if ((v = spec_get(s, "scale"))) {
		if (m->inputs[m->x].dt != DT_F32)
			error_at(c->d, key_of(s, "scale")->loc,
			         "'scale' applies to f32 inputs; '%s' is %s",
			         m->inputs[m->x].name, dtype_names[m->inputs[m->x].dt]);
		else
			num_pos(c, v, "scale", 1e9, &d.scale);
	}
	ds[m->x] = ds[m->y] = d;
}

/* One data set: every input must have a source, or one CSV file feeds them. */
static DataSource *parse_set(Ctx *c, const Spec *s, const char *what)
{
	Model *m = c->m;
	DataSource *ds = arena_alloc(c->A, (size_t)m->ninputs * sizeof *ds);
	for (int i = 0; i < m->ninputs; i++)
		ds[i].scale = 1;
	if (s->kind == SPEC_MAP && spec_get(s, "csv")) {
		parse_csv(c, s, ds, what);
		return ds;
	}
	if (!keys_ok(c, s, what, c->names))
		return ds;
	for (int i = 0; i < m->ninputs; i++) {
		const Spec *v = spec_need(c->d, s, m->inputs[i].name, what);
		if (v)
			parse_source(
			    c, v, &m->inputs[i], &ds[i],
			    arena_printf(c->A, "%s.%s", what, m->inputs[i].name));
	}
	return ds;
}

void parse_data(Ctx *c, const Spec *s)
{
	Model *m = c->m;
	const Spec *v;
	if (!keys_ok(c, s, "data", data_keys) || !c->inputs_ok)
		return;
	if (!m->ninputs) { /* and c->names is NULL */
		error_at(c->d, s->loc,
		         "'data' feeds the model's inputs, and this model has none");
		return;
	}
	if ((v = spec_get(s, "train"))) {
		m->train = parse_set(c, v, "data.train");
		m->has_train = 1;
	}
	if ((v = spec_get(s, "test"))) {
		m->test = parse_set(c, v, "data.test");
		m->has_test = 1;
	}
}
