/* The `descent` command line, training side: train (data loading, the progress bar,
 * validation and early stopping, checkpoints and resuming, the JSON report), then eval,
 * predict and plot, which use what training wrote. main.c parses the options and calls
 * these; see cli.h.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* ---- progress ---- */

typedef struct Progress {
	int tty;
	int64_t epoch, epochs;
	int64_t base; /* steps of the epoch done before this run (a resumed epoch) */
	double t0, last;
} Progress;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

/* A bar redrawn in place on a terminal; elsewhere (a log file, a pipe) a plain line every
 * 30 seconds, so long epochs still show they are alive. */
static void progress(void *ud, int64_t step, int64_t nsteps, double loss)
{
	Progress *p = ud;
	double t = now(), el = t - p->t0, rate = (step - p->base) / (el > 0 ? el : 1e-9);
	double eta = (nsteps - step) / (rate > 0 ? rate : 1);
	if (!p->tty) {
		if (t - p->last >= 30 && step < nsteps) {
			fprintf(stderr,
			        "epoch %lld/%lld  step %lld/%lld  loss %.4f  %.0f "
			        "steps/s  ETA %ds\n",
			        (long long)p->epoch, (long long)p->epochs,
			        (long long)step, (long long)nsteps, loss, rate,
			        (int)ceil(eta));
			p->last = t;
		}
		return;
	}
	if (step % 16 && step != nsteps)
		return;
	int w = 30, done = (int)(w * step / nsteps);
	char bar[64];
	for (int i = 0; i < w; i++)
		bar[i] = i < done ? '=' : i == done ? '>' : ' ';
	bar[w] = 0;
	fprintf(stderr,
	        "\repoch %lld/%lld [%s] %lld/%lld  loss %.4f  %.0f steps/s  ETA %ds ",
	        (long long)p->epoch, (long long)p->epochs, bar, (long long)step,
	        (long long)nsteps, loss, rate, (int)ceil(eta));
	if (step == nsteps)
		fprintf(stderr, "\r%*s\r", 100, "");
}

/* ---- data ---- */

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

static void scale_values(rt_tensor *t, double scale)
{
	if (t->dtype != RT_F32 || scale == 1 || scale == 0)
		return;
	float *v = t->data;
	for (int64_t i = 0; i < t->n * t->stride; i++)
		v[i] = (float)(v[i] * scale);
}

/* One input's values from an IDX or .npy file; labels for an i32 input. */
static int load_file(SrcKind kind, const char *path, double scale, int labels,
                     rt_tensor *t, char *err, size_t errlen)
{
	if (kind == SRC_NPY) {
		if (rt_npy_load(path, labels, t, err, errlen) < 0)
			return -1;
		scale_values(t, scale);
		return 0;
	}
	return rt_idx_load(path, scale, labels, t, err, errlen);
}

/* Does the first line of a CSV file hold names rather than numbers? When one of its
 * fields is the label column's name, or most of its fields (of its first 64 KB) are not
 * numbers ("1h" is not): a data row with a bad cell is then read as data, and the
 * reader names the cell, where taking any word for a header dropped that row without a
 * word. A header of numbers alone (pandas' 0, 1, ...) is data. */
static int csv_has_header(const char *path, char delim, const char *label)
{
	FILE *f = fopen(path, "r");
	static char line[1 << 16];
	int words = 0, fields = 0, named = 0;
	/* (a label given as a column index is no name: "3" is in many a data row) */
	size_t nl = label && label[strspn(label, "0123456789")] ? strlen(label) : 0;
	if (f && fgets(line, sizeof line, f)) {
		for (char *p = line, *end; *p; p = *end ? end + 1 : end) {
			while (*p == ' ' || *p == '"' || (unsigned char)*p >= 0x80)
				p++;
			char *num;
			strtod(p, &num);
			for (end = p;
			     *end && *end != delim && *end != '\n' && *end != '\r'; end++)
				;
			char *last =
			    end; /* the field less its closing quote and spaces */
			while (last > p && (last[-1] == ' ' || last[-1] == '"'))
				last--;
			named |= nl && (size_t)(last - p) == nl && !strncmp(p, label, nl);
			words += num != last && last > p;
			fields++;
			while (*end && *end != delim)
				end++;
		}
	}
	if (f)
		fclose(f);
	return named || 2 * words > fields;
}

static int load_csv(const char *path, const char *label, char delim, int header,
                    double scale, int classes, rt_tensor *x, rt_tensor *y, char *err,
                    size_t errlen)
{
	rt_csv_opts co = {delim, header, label, scale, classes};
	rt_tensor dummy = {0};
	int rc = rt_csv_load(path, &co, x, y ? y : &dummy, err, errlen);
	rt_tensor_free(&dummy);
	return rc;
}

/* Integers of input k of the model below limit and not negative, else an error at the
 * data's place in the model (src) or naming the file (path): labels (of classes) or
 * indices (of a table's rows). */
static int ints_fit(const Model *m, const DataSource *src, int k, const char *split,
                    const rt_tensor *t, const char *path, int64_t limit, int labels)
{
	const int32_t *v = t->data;
	for (int64_t i = 0; limit >= 0 && i < t->n * t->stride; i++) {
		if (v[i] >= 0 && v[i] < limit)
			continue;
		if (src)
			fprintf(stderr, "%s:%d:%d: error: data.%s: ", m->file,
			        src[k].loc.line, src[k].loc.col, split);
		else
			fprintf(stderr, "descent: error: ");
		fprintf(stderr,
		        labels ? "%s: label %d of example %lld is not one of the %lld "
		                 "classes of the output (0 to %lld)\n"
		               : "%s: index %d in example %lld is outside the %lld rows "
		                 "of the table it indexes (0 to %lld)\n",
		        src ? src[k].path : path, v[i], (long long)(i / t->stride),
		        (long long)limit, (long long)limit - 1);
		return 0;
	}
	return 1;
}

/* Class labels (integers, [batch, C] scores) name one of the C classes. */
static int labels_fit(const Model *m, const rt_program *p, const DataSource *src,
                      const char *split, const rt_tensor *y, const char *path)
{
	if (p->io_output < 0 || p->io[p->io_output].rank != 2 || y->dtype != RT_I32 ||
	    y->stride != 1)
		return 1;
	return ints_fit(m, src, m->y, split, y, path, p->io[p->io_output].shape[1], 1);
}

/* Integer inputs (embedding indices) name rows of the tables they index
 * (ir_index_limit); else an error, as for labels. */
static int indices_fit(const Model *m, const Compiled *c, const DataSource *src,
                       const char *split, int k, const rt_tensor *t, const char *path)
{
	if (k < 0 || t->dtype != RT_I32)
		return 1;
	return ints_fit(m, src, k, split, t, path, ir_index_limit(c->g, k), 0);
}

/* A split's other inputs, fed with x and y (rt_session_feed): model input k[i] (its
 * io slot too) from t[i] */
typedef struct Extra {
	int n, k[RT_MAX_FEEDS];
	rt_tensor t[RT_MAX_FEEDS];
} Extra;

/* The integers of x (the network's input) and of the other inputs e (may be NULL), as
 * indices_fit */
static int inputs_fit(const Model *m, const Compiled *c, const DataSource *src,
                      const char *split, const rt_tensor *x, const Extra *e,
                      const char *path)
{
	if (!indices_fit(m, c, src, split, m->x, x, path))
		return 0;
	for (int i = 0; e && i < e->n; i++)
		if (!indices_fit(m, c, src, split, e->k[i], &e->t[i], NULL))
			return 0;
	return 1;
}

/* Whether two shapes of as many values lay them out differently. Walked together, the
 * axes fall into the fewest runs of equal products; where a run has more than one
 * axis on both sides ([8, 8, 3] against [3, 8, 8], [10, 6] against [6, 10]), the
 * values are in another order. Merging or splitting axes ([28, 28] into [784],
 * [3, 1024] into [3, 32, 32]) and axes of 1 keep the order. */
static int other_layout(const Shape *a, const Shape *b)
{
	int i = 0, j = 0;
	while (i < a->rank && j < b->rank) {
		int64_t pa = a->d[i++], pb = b->d[j++];
		int na = 1, nb = 1;
		while (pa != pb && i <= a->rank && j <= b->rank) {
			if (pa < pb && i < a->rank)
				pa *= a->d[i++], na++;
			else if (pb < pa && j < b->rank)
				pb *= b->d[j++], nb++;
			else
				return 1; /* (not as many values) */
		}
		if ((na > 1 && nb > 1) || pa != pb)
			return 1;
	}
	return 0;
}

/* A data file's examples hold as many values as the input they feed (a [batch] target
 * fits [batch, 1], [28, 28] images a [batch, 784] input), in the same layout: channels
 * last images, [8, 8, 3], were read as a [3, 8, 8] input's, scrambled. If not, an
 * error at the file's place in the model. */
static int example_fits(const Model *m, const char *split, int k, const DataSource *src,
                        const rt_tensor *t)
{
	const ModelInput *in = &m->inputs[k];
	Shape want = {in->rank - 1, {0}}, got = shape_of(t->rank, t->dims);
	for (int i = 1; i < in->rank; i++)
		want.d[i - 1] = in->dims[i];
	int count = shape_numel(&want) == t->stride;
	if (count && !other_layout(&want, &got))
		return 1;
	char a[128], b[128], at[1200];
	if (src) /* (no src: a command line's file, of no place in the model) */
		snprintf(at, sizeof at, "%s:%d:%d: error: data.%s: %s", m->file,
		         src->loc.line, src->loc.col, split, src->path);
	else
		snprintf(at, sizeof at, "descent: error: %s", split);
	fprintf(stderr, "%s holds examples of shape %s; input '%s' takes %s%s\n", at,
	        shape_str(&got, a, sizeof a), in->name, shape_str(&want, b, sizeof b),
	        !count ? ""
	        : got.rank == 3 && want.rank == 3 && got.d[2] == want.d[0]
	            ? ": the same values in another order (channels last? images are "
	              "[channels, height, width], as PyTorch's; np.transpose(x, (0, 3, "
	              "1, 2)) makes them so)"
	            : ": the same values in another order (np.transpose the file's axes "
	              "into the input's)");
	return 0;
}

/* Files named on the command line feed the network's input and, but for predict, the
 * loss's target: another input that fn reads would stay 0 (the test set, data: {test:
 * ...}, feeds every input). Else an error. */
static int fed(const Model *m, const Compiled *c, FnKind fn, int target)
{
	for (int k = 0; k < m->ninputs; k++)
		if (k != m->x && (!target || k != m->y) && ir_fn_reads(c->g, fn, k)) {
			fprintf(
			    stderr,
			    "%s: error: input '%s' would never be fed: %s feed%s the "
			    "network's input '%s'%s%s%s alone (the test set feeds every "
			    "input to eval)\n",
			    m->file, m->inputs[k].name,
			    target ? "--data-x and --data-y" : "--input",
			    target ? "" : "s", m->inputs[m->x].name,
			    target ? " and the loss's target '" : "",
			    target ? m->inputs[m->y].name : "", target ? "'" : "");
			return 0;
		}
	return 1;
}

/* A model of more than two inputs that does not say which the network takes */
static int unnamed_input(const Model *m)
{
	if (m->x >= 0 || m->ninputs <= 2)
		return 0;
	fprintf(stderr,
	        "%s: error: the model has %d inputs and does not name the network's "
	        "('input: NAME')\n",
	        m->file, m->ninputs);
	return 1;
}

/* A split's tensors, freed: x, y (which may be x itself, an autoencoder's target),
 * the other inputs */
static void free_split(rt_tensor *x, rt_tensor *y, Extra *e)
{
	if (y->data == x->data)
		memset(y, 0, sizeof *y);
	else
		rt_tensor_free(y);
	rt_tensor_free(x);
	for (int i = 0; i < e->n; i++)
		rt_tensor_free(&e->t[i]);
	e->n = 0;
}

/* A split cut to its first n examples (--test-limit) */
static void limit_split(rt_tensor *x, rt_tensor *y, Extra *e, int64_t n)
{
	if (n <= 0 || n >= x->n)
		return;
	x->n = y->n = n;
	for (int i = 0; i < e->n; i++)
		e->t[i].n = n;
}

/* The session's feeds: e's tensors, or none */
static int feed_extra(rt_session *s, const Extra *e)
{
	char err[1024];
	rt_session_feed(s, -1, NULL, NULL, 0);
	for (int i = 0; e && i < e->n; i++)
		if (rt_session_feed(s, e->k[i], &e->t[i], err, sizeof err) < 0) {
			fprintf(stderr, "descent: error: %s\n", err);
			return -1;
		}
	return 0;
}

/* The inputs besides x and y, from their sources (.npy or IDX), as many examples as x
 * holds; else an error at the source's place. */
static int load_extra(const Model *m, const DataSource *src, const char *split,
                      const rt_tensor *x, Extra *e)
{
	char err[1024];
	e->n = 0;
	for (int k = 0; k < m->ninputs; k++) {
		if (k == m->x || k == m->y)
			continue;
		const DataSource *sk = &src[k];
		rt_tensor *t = &e->t[e->n];
		if (e->n == RT_MAX_FEEDS) {
			fprintf(
			    stderr,
			    "%s: error: data.%s: data feed at most %d inputs besides the "
			    "network's and the target\n",
			    m->file, split, RT_MAX_FEEDS);
			return -1;
		}
		if (!sk->path || sk->kind == SRC_CSV) { /* (a CSV is refused when read) */
			fprintf(stderr, "%s: error: data.%s needs a source for '%s'\n",
			        m->file, split, m->inputs[k].name);
			return -1;
		}
		if (load_file(sk->kind, sk->path, sk->scale, m->inputs[k].dt == DT_I32, t,
		              err, sizeof err) < 0) {
			fprintf(stderr, "descent: error: %s\n", err);
			return -1;
		}
		e->k[e->n++] = k;
		if (!example_fits(m, split, k, sk, t))
			return -1;
		if (t->n != x->n) {
			fprintf(
			    stderr,
			    "%s:%d:%d: error: data.%s: %s has %lld examples but %s has "
			    "%lld\n",
			    m->file, sk->loc.line, sk->loc.col, split, sk->path,
			    (long long)t->n, src[m->x].path, (long long)x->n);
			return -1;
		}
	}
	return 0;
}

static int load_split(const Model *m, const DataSource *src, const char *split,
                      rt_tensor *x, rt_tensor *y, Extra *e)
{
	char err[1024];
	if (unnamed_input(m))
		return -1;
	/* a model of one or two inputs has its network's; every loss, its target
	 * (model.c: the network's input at the last) */
	check(m->x >= 0 && m->y >= 0);
	const DataSource *sx = &src[m->x], *sy = &src[m->y];
	int labels = m->inputs[m->y].dt == DT_I32, own = m->x == m->y,
	    ints = m->inputs[m->x].dt == DT_I32; /* (embedding indices) */
	if (!sx->path || !sy->path) {
		fprintf(stderr, "%s: error: data.%s needs a source for '%s' and '%s'\n",
		        m->file, split, m->inputs[m->x].name, m->inputs[m->y].name);
		return -1;
	}
	int rc =
	    sx->kind == SRC_CSV
	        ? load_csv(sx->path, sx->label, sx->delimiter, sx->header, sx->scale,
	                   labels, x, own ? NULL : y, err, sizeof err)
	    : load_file(sx->kind, sx->path, sx->scale, ints, x, err, sizeof err) < 0 ||
	            (!own &&
	             load_file(sy->kind, sy->path, sy->scale, labels, y, err, sizeof err))
	        ? -1
	        : 0;
	if (rc == 0 && own) /* an autoencoder: the input is the target */
		*y = *x;
	if (rc == 0 && (!example_fits(m, split, m->x, sx, x) ||
	                !example_fits(m, split, m->y, sy, y)))
		rc = -1;
	else if (rc == 0 && x->n != y->n) { /* two files that do not belong together */
		fprintf(stderr,
		        "%s:%d:%d: error: data.%s: %s has %lld %s but %s has %lld %s\n",
		        m->file, sy->loc.line, sy->loc.col, split, sx->path,
		        (long long)x->n, x->rank >= 2 ? "images" : "examples", sy->path,
		        (long long)y->n, labels ? "labels" : "targets");
		rc = -1;
	} else if (rc < 0) {
		fprintf(stderr, "descent: error: %s\n", err);
	}
	if (rc == 0 && load_extra(m, src, split, x, e) < 0)
		rc = -1;
	if (rc < 0) {
		free_split(x, y, e);
		return -1;
	}
	return 0;
}

/* Data named on the command line: x from an IDX, .npy or CSV file (the model's scale
 * for its input applies), y (when wanted) from an IDX or .npy file, or from the CSV's
 * column named by --label; with y NULL, a --label column is left out of x. */
static int load_cli_data(const Model *m, const char *xpath, const char *ypath,
                         const char *label, rt_tensor *x, rt_tensor *y)
{
	char err[1024];
	int labels = m->y >= 0 && m->inputs[m->y].dt == DT_I32;
	const DataSource *ds = m->has_test ? m->test : m->has_train ? m->train : NULL;
	double scale = ds && m->x >= 0 ? ds[m->x].scale : 1;
	int rc;
	if (y && m->x >= 0 && m->x == m->y) { /* an autoencoder: x is its own target */
		if (ypath) {
			fprintf(stderr,
			        "descent: error: --data-y %s: the target of %s is its "
			        "network's input '%s', from --data-x\n",
			        ypath, m->file, m->inputs[m->x].name);
			return -1;
		}
		if (load_cli_data(m, xpath, NULL, label, x, NULL) < 0)
			return -1;
		*y = *x;
		return 0;
	}
	if (ypath && (has_suffix(xpath, ".csv") || has_suffix(ypath, ".csv"))) {
		fprintf(
		    stderr,
		    "descent: error: --data-y %s: with a CSV, the labels are a column "
		    "of the --data-x file, named with --label\n",
		    ypath);
		return -1;
	}
	if (label && !has_suffix(xpath, ".csv"))
		fprintf(stderr,
		        "descent: warning: --label %s: %s is not a CSV file, and --label "
		        "names a CSV's column\n",
		        label, xpath);
	if (has_suffix(xpath, ".csv")) {
		if (y && !label) {
			fprintf(
			    stderr,
			    "descent: error: %s: name its label column with --label\n",
			    xpath);
			return -1;
		}
		rc = load_csv(xpath, label, ',', csv_has_header(xpath, ',', label), scale,
		              labels, x, y, err, sizeof err);
	} else {
		SrcKind k = has_suffix(xpath, ".npy") ? SRC_NPY : SRC_IDX;
		rc = load_file(k, xpath, scale, m->x >= 0 && m->inputs[m->x].dt == DT_I32,
		               x, err, sizeof err);
		if (!rc && y && !ypath) {
			rt_tensor_free(x);
			fprintf(
			    stderr,
			    "descent: error: --data-x needs --data-y with the labels\n");
			return -1;
		}
		if (!rc && y)
			rc = load_file(has_suffix(ypath, ".npy") ? SRC_NPY : SRC_IDX,
			               ypath, 1, labels, y, err, sizeof err);
		if (!rc && y && x->n != y->n) {
			snprintf(err, sizeof err, "%s has %lld %s but %s has %lld %s",
			         xpath, (long long)x->n,
			         x->rank >= 2 ? "images" : "examples", ypath,
			         (long long)y->n, labels ? "labels" : "targets");
			rt_tensor_free(y);
			rc = -1;
		}
	}
	if (rc < 0)
		fprintf(stderr, "descent: error: %s\n", err);
	/* the network's input in its layout, as the model's own files (a count that
	 * differs is said where the examples are fed) */
	Shape want = {0, {0}};
	for (int i = 1; rc == 0 && m->x >= 0 && i < m->inputs[m->x].rank; i++)
		want.d[want.rank++] = m->inputs[m->x].dims[i];
	if (rc == 0 && m->x >= 0 && shape_numel(&want) == x->stride &&
	    !example_fits(m, xpath, m->x, NULL, x))
		rc = -1;
	if (rc < 0) {
		rt_tensor_free(x);
		if (y && y != x)
			rt_tensor_free(y);
	}
	return rc;
}

/* ---- report ---- */

/* A JSON number, or null for NaN and the infinities, which JSON has not. */
static void json_num(FILE *f, const char *key, const char *fmt, double v, int last)
{
	fprintf(f, "  \"%s\": ", key);
	if (isfinite(v))
		fprintf(f, fmt, v);
	else
		fputs("null", f);
	fputs(last ? "\n" : ",\n", f);
}

/* The run's figures as JSON; a metric it has not (no test set) is null. Written
 * whole or not at all (rt_write_atomic). */
static int write_report(const char *path, const Model *m, const rt_metrics *test,
                        double train_s, double steps_s, double compile_s,
                        double train_loss)
{
	char *text = NULL, err[1024];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f) {
		fprintf(stderr, "descent: error: %s: out of memory\n", path);
		return -1;
	}
	fputs("{\n  \"model\": \"", f);
	for (const char *c = m->name; *c; c++) /* escaped, as JSON strings are */
		if (*c == '"' || *c == '\\')
			fprintf(f, "\\%c", *c);
		else if ((unsigned char)*c < 0x20)
			fprintf(f, "\\u%04x", (unsigned char)*c);
		else
			fputc(*c, f);
	fputs("\",\n", f);
	json_num(f, "test_accuracy", "%.6f", test->accuracy, 0);
	json_num(f, "test_loss", "%.6f", test->loss, 0);
	json_num(f, "train_loss", "%.6f", train_loss, 0);
	json_num(f, "train_seconds", "%.3f", train_s, 0);
	json_num(f, "steps_per_second", "%.1f", steps_s, 0);
	json_num(f, "compile_seconds", "%.4f", compile_s, 1);
	fputs("}\n", f);
	int rc = fclose(f) ? -1 : 0;
	const void *parts[1] = {text};
	if (rc == 0 && rt_write_atomic(path, parts, &len, 1, err, sizeof err) < 0) {
		fprintf(stderr, "descent: error: %s\n", err);
		rc = -1;
	} else if (rc) {
		fprintf(stderr, "descent: error: %s: out of memory\n", path);
	}
	free(text);
	return rc;
}

/* ---- training over data ---- */

static const char *const monitor_names[] = {
    "auto", "train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy"};
static const int monitor_col[] = {LOG_TRAIN_LOSS, LOG_TRAIN_LOSS, LOG_VAL_LOSS,
                                  LOG_VAL_ACC,    LOG_TEST_LOSS,  LOG_TEST_ACC};

/* One `descent train` of a model with data. */
typedef struct Run {
	const Opts *o;
	const Model *m;
	Compiled *c;
	Diags *d;
	rt_tensor xtr, ytr, xte, yte;
	rt_tensor xval, yval; /* views of the training set's last examples */
	Extra etr, ete, evl;  /* the other inputs of each (evl: views too) */
	int64_t ntrain;       /* examples trained on: those before the validation split */
	int has_val, has_test, classifier;
	Monitor sched_mon, es_mon;
	rt_session *s;
	rt_trainer *t;
	TrainLog log;
	int64_t every;        /* epochs between checkpoints, 0: none */
	char last_ckpt[4096]; /* the newest checkpoint written or resumed from; "" if none
	                       */
} Run;

static rt_tensor view(const rt_tensor *t, int64_t from, int64_t n)
{
	rt_tensor v = *t;
	v.data = (char *)t->data + from * t->stride * 4; /* both dtypes are 4 bytes */
	v.n = n;
	return v;
}

/* The training set (less the validation split at its end), the test set. */
static int run_data(Run *r)
{
	const Model *m = r->m;
	const Opts *o = r->o;
	if (!m->has_train) {
		fprintf(
		    stderr,
		    "%s: error: the model has no training data (data: {train: ...})\n",
		    m->file);
		return -1;
	}
	if (load_split(m, m->train, "train", &r->xtr, &r->ytr, &r->etr) < 0 ||
	    (m->has_test &&
	     load_split(m, m->test, "test", &r->xte, &r->yte, &r->ete) < 0))
		return -1;
	r->has_test = m->has_test;
	if (o->test_limit > 0 && !r->has_test)
		fprintf(stderr,
		        "%s: warning: --test-limit: the model has no test set (data: "
		        "{test: ...})\n",
		        m->file);
	limit_split(&r->xte, &r->yte, &r->ete, o->test_limit);
	int64_t n =
	    o->train_limit > 0 && o->train_limit < r->xtr.n ? o->train_limit : r->xtr.n;
	double split = o->val_split >= 0 ? o->val_split : m->tc.validation_split;
	r->ntrain = n;
	if (split > 0) { /* as Keras: the last fraction, before any shuffling */
		r->ntrain = (int64_t)((double)n * (1 - split));
		if (r->ntrain < 1 || r->ntrain >= n) {
			fprintf(stderr,
			        "%s: error: a validation split of %g of %lld examples "
			        "leaves %lld to "
			        "train on and %lld to validate on\n",
			        m->file, split, (long long)n, (long long)r->ntrain,
			        (long long)(n - r->ntrain));
			return -1;
		}
		r->xval = view(&r->xtr, r->ntrain, n - r->ntrain);
		r->yval = view(&r->ytr, r->ntrain, n - r->ntrain);
		r->evl = r->etr;
		for (int i = 0; i < r->etr.n; i++)
			r->evl.t[i] = view(&r->etr.t[i], r->ntrain, n - r->ntrain);
		r->has_val = 1;
	}
	const rt_program *p = &r->c->prog;
	r->classifier = p->io_output >= 0 && p->io[p->io_output].rank == 2 &&
	                p->io[p->io_output].shape[1] > 1 &&
	                p->io[p->io_y].dtype == RT_I32;
	if (!labels_fit(m, p, m->train, "train", &r->ytr, NULL) ||
	    (r->has_test && !labels_fit(m, p, m->test, "test", &r->yte, NULL)) ||
	    !inputs_fit(m, r->c, m->train, "train", &r->xtr, &r->etr, NULL) ||
	    (r->has_test &&
	     !inputs_fit(m, r->c, m->test, "test", &r->xte, &r->ete, NULL)))
		return -1;
	return 0;
}

/* The metric a monitor stands for, checked against what this run measures. */
static int pick_monitor(Run *r, Monitor mon, SrcLoc loc, const char *who, Monitor *out)
{
	if (mon == MON_AUTO)
		mon = r->has_val    ? MON_VAL_LOSS
		      : r->has_test ? MON_TEST_LOSS
		                    : MON_TRAIN_LOSS;
	const char *why =
	    (mon == MON_VAL_LOSS || mon == MON_VAL_ACCURACY) && !r->has_val
	        ? "there is no validation split (train: {validation_split: 0.1})"
	    : (mon == MON_TEST_LOSS || mon == MON_TEST_ACCURACY) && !r->has_test
	        ? "there is no test set (data: {test: ...})"
	    : (mon == MON_VAL_ACCURACY || mon == MON_TEST_ACCURACY) && !r->classifier
	        ? "accuracy is measured for classifiers only (integer labels, [batch, C] "
	          "scores)"
	        : NULL;
	if (why) {
		error_at(r->d, loc, "%s monitors %s, but %s", who, monitor_names[mon],
		         why);
		return -1;
	}
	*out = mon;
	return 0;
}

static int max_mode(int mode, Monitor mon)
{
	return mode ? mode == 2 : mon == MON_VAL_ACCURACY || mon == MON_TEST_ACCURACY;
}

static int run_resume(Run *r)
{
	char err[4096];
	rt_st_file f;
	const char *path = r->o->resume;
	if (rt_st_load(path, &f, err, sizeof err) < 0) {
		fprintf(stderr, "descent: error: %s\n", err);
		return -1;
	}
	int rc = rt_trainer_load(r->t, &f, err, sizeof err);
	/* Adam's state into AdamW: the same tensors, another update (it went unsaid) */
	const char *was = rt_st_meta(&f, "optimizer");
	if (rc == 0 && was && strcmp(was, opt_names[r->m->opt]))
		fprintf(stderr,
		        "descent: warning: %s was saved by a run of %s; this model "
		        "trains with %s, from that state\n",
		        path, was, opt_names[r->m->opt]);
	rt_st_free(&f);
	if (rc < 0) {
		fprintf(stderr, "descent: error: %s: %s\n", path, err);
		return -1;
	}
	snprintf(r->last_ckpt, sizeof r->last_ckpt, "%s", path);
	printf("resumed from %s: epoch %lld, step %llu, %lld of %lld examples into epoch "
	       "%lld\n",
	       path, (long long)r->t->epoch, (unsigned long long)r->s->step,
	       (long long)r->t->pos, (long long)r->t->n, (long long)r->t->epoch + 1);
	/* the log goes on from the checkpoint's epoch: rows after it are redone */
	TrainLog old = {0};
	if (r->o->log && access(r->o->log, F_OK) == 0) {
		if (log_read(r->o->log, &old, err, sizeof err) < 0) {
			fprintf(stderr, "descent: error: %s\n", err);
			return -1;
		}
		for (int i = 0; i < old.n; i++)
			if (old.rows[i].v[LOG_EPOCH] <= (double)r->t->epoch)
				log_add(&r->log, &old.rows[i]);
		log_free(&old);
	}
	return 0;
}

/* The session, the schedule, the trainer, early stopping; then --resume. */
static int run_setup(Run *r)
{
	const Model *m = r->m;
	const Opts *o = r->o;
	const TrainCfg *tc = &m->tc;
	char err[1024];
	if (!(r->s = rt_session_new(&r->c->prog))) {
		fprintf(stderr,
		        "descent: error: out of memory for the training session\n");
		return -1;
	}
	rt_session_init(r->s, m->seed);
	rt_trainer_opts to = {
	    .limit = r->ntrain, .shuffle = 1, .seed = m->seed ^ 0x5eedda7aULL};
	to.accumulate = o->accumulate > 0 ? o->accumulate : tc->accumulate;
	to.sched = tc->sched;
	if (!tc->sched_set)
		rt_schedule_defaults(&to.sched, RT_LR_CONSTANT, 0);
	to.sched.base_lr = o->lr > 0 ? o->lr : m->lr;
	if (to.sched.kind == RT_LR_PLATEAU) {
		if (pick_monitor(r, tc->sched_monitor, tc->sched_loc, "reduce_on_plateau",
		                 &r->sched_mon) < 0)
			return -1;
		to.sched.mode_max = max_mode(tc->sched_mode, r->sched_mon);
	}
	if (tc->early &&
	    pick_monitor(r, tc->es_monitor, tc->es_loc, "early_stopping", &r->es_mon) < 0)
		return -1;
	if (to.accumulate > 1 && r->c->prog.loss_kind == RT_LOSS_OTHER) {
		error_at(
		    r->d, m->loss_loc,
		    "accumulate (%lld micro-batches a step) needs a loss that is a "
		    "mean or a sum over the examples, which it splits; this one is "
		    "neither (a ratio of sums over the batch as sum(w * l) / sum(w), "
		    "a function of a mean, or a sum with a penalty beside it): train "
		    "on batches of %lld instead",
		    (long long)to.accumulate,
		    (long long)(to.accumulate * r->c->prog.batch));
		return -1;
	}
	if (feed_extra(r->s, &r->etr) < 0)
		return -1;
	if (!(r->t = rt_trainer_new(r->s, &r->xtr, &r->ytr, &to, err, sizeof err))) {
		fprintf(stderr, "%s: error: %s\n", m->file, err);
		return -1;
	}
	if (tc->early) {
		r->t->es_on = 1;
		rt_early_stop_init(&r->t->es, max_mode(tc->es_mode, r->es_mon),
		                   tc->es_min_delta, tc->es_patience);
	}
	r->every = o->ckpt_every > 0    ? o->ckpt_every
	           : tc->ckpt_every > 0 ? tc->ckpt_every
	                                : 1;
	if (!o->ckpt_dir) {
		r->every = 0;
		if (tc->ckpt_every > 0)
			fprintf(stderr,
			        "%s: note: checkpoint.every: no --checkpoint-dir, none "
			        "saved\n",
			        m->file);
	}
	return o->resume ? run_resume(r) : 0;
}

/* DIR/name.safetensors, crash-safely; remembered as the last good one if `keep`. */
static int save_ckpt(Run *r, const char *name, int keep)
{
	char path[4096], err[1024];
	const char *keys[] = {"optimizer", "model"},
	           *vals[] = {opt_names[r->m->opt], r->m->name};
	if (mkdir(r->o->ckpt_dir, 0777) < 0 && errno != EEXIST) {
		fprintf(stderr, "descent: error: cannot make %s: %s\n", r->o->ckpt_dir,
		        strerror(errno));
		return -1;
	}
	snprintf(path, sizeof path, "%s/%s.safetensors", r->o->ckpt_dir, name);
	if (rt_trainer_save(r->t, path, keys, vals, 2, err, sizeof err) < 0) {
		fprintf(stderr, "descent: error: %s\n", err);
		return -1;
	}
	if (keep)
		snprintf(r->last_ckpt, sizeof r->last_ckpt, "%s", path);
	return 0;
}

/* --log and --plot, rewritten whole (crash-safely) after every epoch. */
static int write_outputs(Run *r)
{
	char err[1024];
	const char *paths[2] = {r->o->log, r->o->plot};
	for (int k = 0; k < 2; k++) {
		if (!paths[k])
			continue;
		size_t len;
		char *text =
		    k ? log_svg(&r->log, r->m->name, &len) : log_csv(&r->log, &len);
		const void *parts[] = {text};
		int rc = rt_write_atomic(paths[k], parts, &len, 1, err, sizeof err);
		free(text);
		if (rc < 0) {
			fprintf(stderr, "descent: error: %s\n", err);
			return -1;
		}
	}
	return 0;
}

static int evaluate_into(Run *r, const rt_tensor *x, const rt_tensor *y, const Extra *e,
                         LogRow *row, int lcol, int acol)
{
	char err[1024];
	rt_metrics mm;
	if (feed_extra(r->s, e) < 0)
		return -1;
	if (rt_evaluate(r->s, x, y, &mm, err, sizeof err) < 0) {
		fprintf(stderr, "%s: error: evaluating: %s\n", r->m->file, err);
		return -1;
	}
	row->v[lcol] = mm.loss;
	row->v[acol] = mm.accuracy;
	return 0;
}

/* A figure as printed: a NaN with its sign bit set printed as "-nan" */
static double as_shown(double v) { return isnan(v) ? fabs(v) : v; }

static void print_epoch(const Run *r, const LogRow *row, const rt_metrics *tr)
{
	static const struct {
		int col;
		const char *name;
	} shown[] = {{LOG_TRAIN_LOSS, "train loss"},
	             {LOG_VAL_LOSS, "val loss"},
	             {LOG_VAL_ACC, "val acc"},
	             {LOG_TEST_LOSS, "test loss"},
	             {LOG_TEST_ACC, "test acc"}};
	/* a split's loss is shown if it has the split, NaN too (a NaN loss was left out
	 * as if there were no such split); accuracy, NaN for a model without one, not */
	int has[] = {1, r->has_val, 0, r->has_test, 0};
	printf("epoch %lld/%lld ", (long long)row->v[LOG_EPOCH], (long long)r->m->epochs);
	for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++)
		if (has[i] || !isnan(row->v[shown[i].col]))
			printf(" %s %.4f", shown[i].name, as_shown(row->v[shown[i].col]));
	printf("  lr %.3g  %.0f steps/s  %.1f s\n", row->v[LOG_LR],
	       tr->seconds > 0 ? tr->steps / tr->seconds : 0, row->v[LOG_SECONDS]);
	fflush(stdout);
}

/* After an epoch: evaluate, log, step the plateau schedule and early stopping, save a
 * checkpoint when due. *stop is set when early stopping says so. */
static int epoch_end(Run *r, const rt_metrics *tr, int last, int *stop)
{
	rt_trainer *t = r->t;
	LogRow row;
	for (int i = 0; i < LOG_NCOLS; i++)
		row.v[i] = NAN;
	row.v[LOG_EPOCH] = (double)t->epoch;
	row.v[LOG_STEP] = (double)r->s->step;
	row.v[LOG_LR] = t->lr;
	row.v[LOG_TRAIN_LOSS] = tr->loss;
	row.v[LOG_SECONDS] = t->seconds;
	if ((r->has_val && evaluate_into(r, &r->xval, &r->yval, &r->evl, &row,
	                                 LOG_VAL_LOSS, LOG_VAL_ACC)) ||
	    (r->has_test && evaluate_into(r, &r->xte, &r->yte, &r->ete, &row,
	                                  LOG_TEST_LOSS, LOG_TEST_ACC)))
		return -1;
	print_epoch(r, &row, tr);
	if (t->o.sched.kind == RT_LR_PLATEAU &&
	    rt_schedule_epoch_end(&t->o.sched, &t->lrs, row.v[monitor_col[r->sched_mon]]))
		printf("reduce_on_plateau: %s has not improved for %lld epochs; lr -> "
		       "%.3g\n",
		       monitor_names[r->sched_mon], (long long)t->o.sched.patience + 1,
		       t->lrs.lr);
	if (t->es_on && rt_early_stop_update(&t->es, row.v[monitor_col[r->es_mon]])) {
		printf("early stopping: %s has not improved on %.4g for %lld epochs\n",
		       monitor_names[r->es_mon], t->es.best, (long long)t->es.wait);
		*stop = 1;
	}
	log_add(&r->log, &row);
	if (write_outputs(r) < 0)
		return -1;
	if (r->every && t->epoch % r->every == 0) {
		char name[64];
		snprintf(name, sizeof name, "epoch-%lld", (long long)t->epoch);
		if (save_ckpt(r, name, 1) < 0)
			return -1;
	}
	int due = r->every && t->epoch % r->every == 0;
	if (r->every && (due || last || *stop) && save_ckpt(r, "last", !due) < 0)
		return -1;
	return 0;
}

/* Stopped by --max-steps inside an epoch: a checkpoint to resume from. */
static int stopped_inside(Run *r)
{
	char name[64];
	printf(
	    "stopped at step %llu (--max-steps), %lld of %lld examples into epoch %lld\n",
	    (unsigned long long)r->s->step, (long long)r->t->pos, (long long)r->t->n,
	    (long long)r->t->epoch + 1);
	if (!r->o->ckpt_dir) { /* (-o, if given, is written at the end) */
		printf("no --checkpoint-dir: no checkpoint saved to resume from\n");
		return 0;
	}
	snprintf(name, sizeof name, "step-%llu", (unsigned long long)r->s->step);
	if (save_ckpt(r, name, 1) < 0 || save_ckpt(r, "last", 0) < 0)
		return -1;
	printf("checkpoint %s\n", r->last_ckpt);
	return 0;
}

/* --check-numerics: the first op whose output had a NaN or an Inf, with its YAML line,
 * its shape and the counts; 0 if the step did not stop on one. */
static int numerics_report(Compiled *c, rt_session *s)
{
	int k = c->g->io_numerics;
	const float *v = k >= 0 ? s->io[k] : NULL;
	if (!v || v[3] != 1)
		return 0;
	Node *n = c->g->nodes[(int)v[0]];
	char sh[128];
	fprintf(stderr,
	        "%s:%d:%d: error: check-numerics: %s (%%%d%s%s%s) produced %.0f "
	        "NaN and "
	        "%.0f Inf values of %lld, shape %s, at step %llu\n",
	        n->loc.file ? n->loc.file : "descent", n->loc.line, n->loc.col,
	        opinfo[n->op].name, n->id, n->label ? ", " : "", n->label ? n->label : "",
	        n->rule ? ", in the backward pass" : "", v[1], v[2],
	        (long long)shape_numel(&n->sh), shape_str(&n->sh, sh, sizeof sh),
	        (unsigned long long)s->step + 1);
	return 1;
}

/* A resumed run that ended no epoch still writes its log and plot: the rows up to
 * its checkpoint's epoch (the file kept the abandoned rows after them, and a run
 * resumed after its last epoch wrote none). */
static int resumed_log(Run *r, int wrote)
{
	return r->o->resume && !wrote ? write_outputs(r) : 0;
}

static int run_epochs(Run *r)
{
	const Model *m = r->m;
	rt_trainer *t = r->t;
	char err[1024];
	int64_t max = r->o->max_steps > 0 ? r->o->max_steps : 0;
	Progress pr = {isatty(2), 0, m->epochs, 0, 0, 0};
	/* a run resumed where early stopping had stopped it trains no more */
	int stop = t->es_on && t->pos == 0 && t->epoch > 0 && t->es.wait > 0 &&
	           t->es.wait >= t->es.patience; /* (a stop has waited an epoch) */
	if (stop)
		printf(
		    "early stopping: the run had stopped after epoch %lld (%lld epochs "
		    "without improvement)\n",
		    (long long)t->epoch, (long long)t->es.wait);
	int wrote = 0; /* the log and plot, at an epoch's end */
	while (t->epoch < m->epochs && !stop) {
		rt_metrics tr;
		pr.epoch = t->epoch + 1;
		pr.base = t->pos / (r->c->prog.batch * t->o.accumulate);
		pr.t0 = pr.last = now();
		int rc = rt_trainer_run(t, max, progress, &pr, &tr, err, sizeof err);
		if (rc < 0 && numerics_report(r->c, r->s)) {
			return -1;
		} else if (rc < 0) {
			fprintf(
			    stderr, "%s: error: training diverged: %s; %s%s\n", m->file,
			    err, r->last_ckpt[0] ? "the last good checkpoint is " : "",
			    r->last_ckpt[0] ? r->last_ckpt : "no checkpoint was saved");
			return -1;
		}
		if (rc == 0)
			return resumed_log(r, wrote) < 0 ? -1 : stopped_inside(r);
		int last = t->epoch == m->epochs || (max && (int64_t)r->s->step >= max);
		if (epoch_end(r, &tr, last, &stop) < 0)
			return -1;
		wrote = 1;
		if (max && (int64_t)r->s->step >= max && t->epoch < m->epochs) {
			printf("stopped at step %llu (--max-steps), at the end of epoch "
			       "%lld\n",
			       (unsigned long long)r->s->step, (long long)t->epoch);
			break;
		}
	}
	return resumed_log(r, wrote);
}

/* train -o: the trained parameters under their names, as eval and predict take them
 * (--params), written when the training has run to its end */
static int save_trained(const Opts *o, const rt_session *s)
{
	char err[1024];
	if (!o->out)
		return 0;
	if (rt_save_params(s, o->out, 0, NULL, NULL, err, sizeof err) < 0) {
		fprintf(stderr, "descent: error: %s\n", err);
		return -1;
	}
	printf("parameters written to %s\n", o->out);
	return 0;
}

/* Outputs in a --checkpoint-dir not there yet (main.c lets them through): it is made
 * for them, once every check has passed */
static int outputs_dir(const Opts *o)
{
	const char *in_ckpt[] = {o->out, o->report, o->log, o->plot};
	for (size_t i = 0; i < 4 && o->ckpt_dir; i++)
		if (in_ckpt[i] && path_in_dir(in_ckpt[i], o->ckpt_dir) &&
		    mkdir(o->ckpt_dir, 0777) < 0 && errno != EEXIST) {
			fprintf(stderr, "descent: error: cannot make %s: %s\n",
			        o->ckpt_dir, strerror(errno));
			return -1;
		}
	return 0;
}

static int train_loop(const Opts *o, Diags *d, const Model *m, Compiled *c)
{
	Run r = {.o = o, .m = m, .c = c, .d = d};
	int status = 1;
	if (run_data(&r) < 0 || run_setup(&r) < 0)
		goto done;
	if (outputs_dir(o) < 0) /* (once the data and setup passed their checks) */
		goto done;

	/* parameters counted as torch's numel() (prog.nparams is the blob's floats, each
	 * tensor aligned: 16 for one scalar); buffers and frozen ones said apart */
	int64_t nparam = 0, fixed = 0;
	for (int i = 0; i < c->prog.nparam; i++) {
		nparam += c->prog.params[i].numel;
		fixed += c->prog.params[i].trainable ? 0 : c->prog.params[i].numel;
	}
	printf(
	    "%s: %lld parameter%s%s, batch %lld, %lld training examples%s, compiled in "
	    "%.3f s, %d thread%s\n",
	    m->name, (long long)nparam, nparam == 1 ? "" : "s",
	    fixed ? arena_printf(c->A, " (%lld not trained)", (long long)fixed) : "",
	    (long long)c->prog.batch, (long long)r.ntrain,
	    r.has_val ? arena_printf(c->A, " (+%lld for validation)", (long long)r.xval.n)
	              : "",
	    c->compile_seconds, rt_threads(), rt_threads() > 1 ? "s" : "");
	fflush(stdout);
	if (run_epochs(&r) < 0)
		goto done;
	rt_metrics te = {.loss = NAN, .accuracy = NAN};
	char err[1024];
	if (r.has_test && feed_extra(r.s, &r.ete) < 0)
		goto done;
	if (r.has_test && rt_evaluate(r.s, &r.xte, &r.yte, &te, err, sizeof err) < 0) {
		fprintf(stderr, "%s: error: evaluating: %s\n", m->file, err);
		goto done;
	}
	/* the last epoch's, or that of the part of one a --max-steps stop trained: the
	 * parameters the test figures are of */
	double train_loss = r.t->pos > 0 ? r.t->loss_sum / (double)r.t->pos
	                    : r.log.n    ? r.log.rows[r.log.n - 1].v[LOG_TRAIN_LOSS]
	                                 : NAN;
	if (r.has_test && !isnan(te.accuracy))
		printf("final test accuracy %.4f (loss %.4f) after %.1f s of training\n",
		       te.accuracy, as_shown(te.loss), r.t->seconds);
	else if (r.has_test) /* not a classifier */
		printf("final test loss %.4f after %.1f s of training\n",
		       as_shown(te.loss), r.t->seconds);
	else if (r.log.n)
		printf("final train loss %.4f after %.1f s of training\n", train_loss,
		       r.t->seconds);
	if (save_trained(o, r.s) < 0)
		goto done;
	status = 0;
	if (o->report &&
	    write_report(o->report, m, &te, r.t->seconds,
	                 r.t->seconds > 0 ? (double)r.s->step / r.t->seconds : 0,
	                 c->compile_seconds, train_loss) < 0)
		status = 1;
done:
	log_free(&r.log);
	rt_trainer_free(r.t);
	rt_session_free(r.s);
	free_split(&r.xtr, &r.ytr, &r.etr);
	free_split(&r.xte, &r.yte, &r.ete);
	return status;
}

/* A model without data (a function of its parameters): train_step, steps times. */
static int train_steps(const Opts *o, Diags *d, const Model *m, Compiled *c)
{
	int64_t steps = o->steps >= 0 ? o->steps : m->steps;
	if (o->max_steps > 0 && o->max_steps < steps)
		steps = o->max_steps;
	const TrainCfg *tc = &m->tc;
	/* no data, no epochs: each step is one, as a loop calling scheduler.step()
	 * after each optimizer.step() counts them; nothing to monitor */
	if (tc->sched.kind == RT_LR_PLATEAU || tc->early) {
		error_at(d, tc->early ? tc->es_loc : tc->sched_loc,
		         "%s monitors a loss over data; this model has no inputs",
		         tc->early ? "early_stopping" : "reduce_on_plateau");
		return 1;
	}
	if (outputs_dir(o) < 0)
		return 1;
	rt_schedule sched = tc->sched;
	if (!tc->sched_set)
		rt_schedule_defaults(&sched, RT_LR_CONSTANT, 0);
	sched.base_lr = o->lr > 0 ? o->lr : m->lr;
	rt_lr_state lrs;
	rt_lr_state_init(&sched, &lrs);
	rt_session *s = rt_session_new(&c->prog);
	if (!s) {
		fprintf(stderr,
		        "descent: error: out of memory for the training session\n");
		return 1;
	}
	rt_session_init(s, m->seed);
	int lr = 0; /* the hyper the schedule sets, found once: steps are short here */
	while (lr < c->prog.nhyper && strcmp(c->prog.hyper_names[lr], "lr"))
		lr++;
	check(lr < c->prog.nhyper); /* every optimizer has one (optim.c) */
	float *loss = s->io[c->prog.io_loss];
	double t0 = now();
	int status = 0;
	int64_t done = 0;
	for (int64_t k = 1; k <= steps; k++) {
		s->hyper[lr] = (float)rt_schedule_lr(&sched, &lrs, k - 1, 1);
		int refused = c->prog.train_step(s->bufs);
		if (refused || !isfinite(*loss)) {
			if (!numerics_report(c, s))
				fprintf(
				    stderr,
				    "%s: error: step %lld was not taken: the loss or an "
				    "updated value is not finite, or a parameter's step "
				    "is "
				    "above 2^100\n",
				    m->file, (long long)k);
			status = 1;
			break;
		}
		done = k;
		if (k == steps || k % (steps / 10 ? steps / 10 : 1) == 0)
			printf("step %lld/%lld  loss %.6g\n", (long long)k,
			       (long long)steps, *loss);
	}
	c->prog.evaluate(s->bufs);
	printf("final loss %.6g after %lld steps in %.3f s\n", *loss, (long long)done,
	       now() - t0);
	for (int i = 0; i < c->prog.nparam; i++) {
		const rt_param *p = &c->prog.params[i];
		printf("%s =", p->name);
		for (int64_t j = 0; j < p->numel && j < 8; j++)
			printf(" %.6g", s->params[p->offset + j]);
		printf("%s\n", p->numel > 8 ? " ..." : "");
	}
	if (!status && save_trained(o, s) < 0)
		status = 1;
	rt_session_free(s);
	return status;
}

/* An output of the run that is one of the model's data files (the options' own clashes
 * are main.c's) */
static int overwrites_data(const Model *m, const char *opt, const char *path)
{
	for (int k = 0; k < 2 && path; k++) {
		const DataSource *ds = k ? m->test : m->train;
		if (!(k ? m->has_test : m->has_train))
			continue;
		for (int i = 0; i < m->ninputs; i++)
			if (ds[i].path && same_file(path, ds[i].path)) {
				fprintf(
				    stderr,
				    "descent: error: %s %s would overwrite the %s data "
				    "%s\n",
				    opt, path, k ? "test" : "training", ds[i].path);
				return 1;
			}
	}
	return 0;
}

/* An output (opt path) naming a checkpoint the run writes in --checkpoint-dir (last,
 * epoch-N, step-N), which would replace it, or be replaced (train -o c/last.safetensors
 * left a file of parameters alone where --resume looks) */
static int among_checkpoints(const Opts *o, const char *opt, const char *path)
{
	if (!path || !o->ckpt_dir)
		return 0;
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path,
	           *num = !strncmp(base, "epoch-", 6)  ? base + 6
	                  : !strncmp(base, "step-", 5) ? base + 5
	                                               : NULL;
	size_t k = num ? strspn(num, "0123456789") : 0;
	if (!(!strcmp(base, "last.safetensors") ||
	      (k && (num[0] != '0' || k == 1) && !strcmp(num + k, ".safetensors"))) ||
	    !path_in_dir(path, o->ckpt_dir))
		return 0;
	fprintf(stderr,
	        "descent: error: %s %s is a checkpoint the run writes in "
	        "--checkpoint-dir %s; name it otherwise\n",
	        opt, path, o->ckpt_dir);
	return 1;
}

int cmd_train(const Opts *o, Diags *d, Arena *A)
{
	Model *m = model_load(A, d, o->model);
	if (!m)
		return 1;
	if (m->ninputs && o->ckpt_every > 0 && !o->ckpt_dir) {
		fprintf(stderr,
		        "descent: error: --checkpoint-every needs --checkpoint-dir\n");
		return 1;
	}
	if (o->out && !has_suffix(o->out, ".safetensors")) {
		fprintf(stderr,
		        "descent: error: -o %s: train writes the trained parameters as "
		        "FILE.safetensors\n",
		        o->out);
		return 1;
	}
	if ((m->ninputs && (among_checkpoints(o, "-o", o->out) ||
	                    among_checkpoints(o, "--report", o->report) ||
	                    among_checkpoints(o, "--log", o->log) ||
	                    among_checkpoints(o, "--plot", o->plot))) ||
	    overwrites_data(m, "-o", o->out) ||
	    overwrites_data(m, "--report", o->report) ||
	    overwrites_data(m, "--log", o->log) || overwrites_data(m, "--plot", o->plot))
		return 1;
	if (o->epochs >= 0)
		m->epochs = o->epochs;
	if (o->batch > 0)
		m->batch = o->batch;
	if (o->seed >= 0)
		m->seed = (uint64_t)o->seed;
	CodegenOpts co = {.opt_level = o->opt_level, .check_numerics = o->check_numerics};
	Compiled *c = compile_model(d, m, m->batch, &co);
	if (!c)
		return 1;
	diag_flush(d, stderr); /* the model's warnings, before training */
	/* the options of the other kind of run: said, not silently ignored */
	const struct {
		int given;
		const char *name;
	} data_only[] = {{o->report != NULL, "--report"},
	                 {o->log != NULL, "--log"},
	                 {o->plot != NULL, "--plot"},
	                 {o->ckpt_dir != NULL, "--checkpoint-dir"},
	                 {o->resume != NULL, "--resume"},
	                 {o->epochs >= 0, "--epochs"},
	                 {o->batch > 0, "--batch"},
	                 {o->val_split >= 0, "--validation-split"},
	                 {o->accumulate > 0, "--accumulate"},
	                 {o->ckpt_every > 0, "--checkpoint-every"},
	                 {o->train_limit > 0, "--train-limit"},
	                 {o->test_limit > 0, "--test-limit"}};
	char unused[512] = "";
	for (size_t i = 0; i < sizeof data_only / sizeof *data_only && !m->ninputs; i++)
		if (data_only[i].given)
			snprintf(unused + strlen(unused), sizeof unused - strlen(unused),
			         "%s%s", unused[0] ? ", " : "", data_only[i].name);
	if (unused[0])
		fprintf(
		    stderr,
		    "descent: warning: %s has no inputs: it trains for its steps "
		    "(--steps, --max-steps) and prints its loss; %s %s for models with "
		    "data\n",
		    m->file, unused, strchr(unused, ',') ? "are" : "is");
	if (m->ninputs && (o->steps >= 0 || m->tc.steps_set)) {
		if (o->steps >= 0)
			fprintf(
			    stderr,
			    "descent: error: --steps is for models without data; this "
			    "one "
			    "trains for epochs (--epochs; --max-steps stops it early)\n");
		else
			error_at(
			    d, m->tc.steps_loc,
			    "'steps' is for models without data; this one trains for "
			    "'epochs' (--max-steps stops a run early)");
		compiled_free(c);
		return 1;
	}
	int status = m->ninputs ? train_loop(o, d, m, c) : train_steps(o, d, m, c);
	compiled_free(c);
	return status;
}

/* ---- eval, predict, plot ---- */

/* --params: a checkpoint, or a file of parameters alone, for eval and predict. */
static int load_params_file(const Opts *o, rt_st_file *f)
{
	char err[4096];
	memset(f, 0, sizeof *f);
	if (!o->params) {
		fprintf(stderr, "descent: error: %s needs --params CKPT.safetensors\n",
		        o->model);
		return -1;
	}
	if (rt_st_load(o->params, f, err, sizeof err) < 0) {
		fprintf(stderr, "descent: error: %s\n", err);
		return -1;
	}
	return 0;
}

/* A session of the model's program with the parameters of f (freed here). */
static rt_session *session_with_params(const Opts *o, const Model *m, Compiled *c,
                                       rt_st_file *fp)
{
	char err[4096];
	rt_st_file f = *fp;
	memset(fp, 0, sizeof *fp);
	rt_session *s = rt_session_new(&c->prog);
	if (!s) {
		fprintf(stderr, "descent: error: out of memory for the session\n");
	} else {
		rt_session_init(s, m->seed);
		if (rt_load_params(s, &f, err, sizeof err) < 0) {
			fprintf(stderr, "descent: error: %s: %s\n", o->params, err);
			rt_session_free(s);
			s = NULL;
		}
	}
	rt_st_free(&f);
	return s;
}

/* The model compiled with just the entry point fn, which the command runs. */
static Compiled *compile_for_use(const Opts *o, Diags *d, Model *m, FnKind fn)
{
	if (o->batch > 0)
		m->batch = o->batch;
	CodegenOpts co = {.opt_level = o->opt_level,
	                  .check_numerics = o->check_numerics,
	                  .fns = 1u << fn};
	return compile_model(d, m, m->batch, &co);
}

/* Loss and accuracy of a checkpoint on the test set or on --data-x/--data-y. */
int cmd_eval(const Opts *o, Diags *d, Arena *A)
{
	Model *m = model_load(A, d, o->model);
	if (!m)
		return 1;
	if (unnamed_input(m))
		return 1;
	if (!m->ninputs || m->x < 0 || m->y < 0) {
		fprintf(
		    stderr,
		    "descent: error: %s: eval needs a model with inputs and a target\n",
		    o->model);
		return 1;
	}
	rt_tensor x = {0}, y = {0};
	rt_st_file f = {0};
	int status = 1;
	char err[1024];
	Compiled *c = NULL;
	rt_session *s = NULL;
	const char *what = o->data_x ? o->data_x : "the test set";
	if (!o->data_x && (o->data_y || o->label)) {
		fprintf(stderr, "descent: error: %s needs --data-x\n",
		        o->data_y ? "--data-y" : "--label");
		return 1;
	}
	if (!o->data_x && !m->has_test) {
		fprintf(stderr,
		        "%s: error: no test set (data: {test: ...}); give --data-x\n",
		        m->file);
		return 1;
	}
	Extra e = {0}; /* the other inputs of the test set */
	if (o->data_x ? load_cli_data(m, o->data_x, o->data_y, o->label, &x, &y) < 0
	              : load_split(m, m->test, "test", &x, &y, &e) < 0)
		return 1;
	limit_split(&x, &y, &e, o->test_limit);
	if (load_params_file(o, &f) < 0)
		goto done;
	if (!(c = compile_for_use(o, d, m, FN_EVALUATE)) ||
	    (o->data_x && !fed(m, c, FN_EVALUATE, 1)) ||
	    !(s = session_with_params(o, m, c, &f)) || feed_extra(s, &e) < 0)
		goto done;
	rt_metrics mm;
	if (!labels_fit(m, &c->prog, o->data_x ? NULL : m->test, "test", &y,
	                o->data_y ? o->data_y : o->data_x) ||
	    !inputs_fit(m, c, o->data_x ? NULL : m->test, "test", &x, &e, o->data_x))
		goto done;
	if (rt_evaluate(s, &x, &y, &mm, err, sizeof err) < 0) {
		fprintf(stderr, "descent: error: %s: %s\n", what, err);
		goto done;
	}
	printf("%s: %lld examples  loss %.6f", what, (long long)mm.examples, mm.loss);
	if (!isnan(mm.accuracy))
		printf("  accuracy %.4f", mm.accuracy);
	printf("\n");
	status = 0;
done:
	rt_st_free(&f);
	rt_session_free(s);
	compiled_free(c);
	free_split(&x, &y, &e);
	return status;
}

/* The network's output rows as CSV: output_0..output_{C-1}, and for classifiers the
 * argmax as "class". */
static int write_predictions_csv(const char *path, const float *out, int64_t n,
                                 int64_t row, int classifier, char *err, size_t errlen)
{
	size_t cap = 64 + (size_t)(n + 1) * (size_t)(row + 1) * 18, len = 0;
	char *b = malloc(cap);
	if (!b) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int64_t j = 0; j < row; j++)
		len += (size_t)snprintf(b + len, cap - len, "%soutput_%lld", j ? "," : "",
		                        (long long)j);
	len += (size_t)snprintf(b + len, cap - len, "%s\n", classifier ? ",class" : "");
	int32_t k;
	for (int64_t i = 0; i < n; i++) {
		for (int64_t j = 0; j < row; j++)
			len += (size_t)snprintf(b + len, cap - len, "%s%.9g",
			                        j ? "," : "", out[i * row + j]);
		if (classifier) {
			rt_argmax_rows(out + i * row, 1, row, &k);
			len += (size_t)snprintf(b + len, cap - len, ",%d", k);
		}
		len += (size_t)snprintf(b + len, cap - len, "\n");
	}
	const void *parts[] = {b};
	int rc = rt_write_atomic(path, parts, &len, 1, err, errlen);
	free(b);
	return rc;
}

/* The network's outputs for the rows of --input, to -o as .npy or .csv. */
int cmd_predict(const Opts *o, Diags *d, Arena *A)
{
	if (!o->input || !o->out) {
		fprintf(
		    stderr,
		    "descent: error: predict needs --input FILE and -o OUT(.npy|.csv)\n");
		return 2;
	}
	if (!has_suffix(o->out, ".npy") && !has_suffix(o->out, ".csv")) {
		fprintf(
		    stderr,
		    "descent: error: -o %s: predictions are written as .npy or .csv\n",
		    o->out);
		return 2;
	}
	Model *m = model_load(A, d, o->model);
	if (!m)
		return 1;
	rt_tensor x = {0};
	rt_st_file f = {0};
	int status = 1;
	char err[1024];
	float *out = NULL;
	Compiled *c = NULL;
	rt_session *s = NULL;
	if (unnamed_input(m))
		return 1;
	if (m->x < 0) {
		fprintf(stderr, "%s: error: the model has no input to predict from\n",
		        m->file);
		return 1;
	}
	if (load_cli_data(m, o->input, NULL, o->label, &x, NULL) < 0)
		return 1;
	if (load_params_file(o, &f) < 0)
		goto done;
	if (!(c = compile_for_use(o, d, m, FN_FORWARD)) || !fed(m, c, FN_FORWARD, 0) ||
	    !(s = session_with_params(o, m, c, &f)) ||
	    !inputs_fit(m, c, NULL, NULL, &x, NULL, o->input))
		goto done;
	const rt_program *p = &c->prog;
	if (p->io_output < 0) {
		fprintf(stderr, "descent: error: the model has no output to predict\n");
		goto done;
	}
	const rt_io *io = &p->io[p->io_output];
	int64_t row = io->numel / p->batch;
	if (!(out = malloc((size_t)(x.n * row) * sizeof *out + 1))) {
		fprintf(stderr, "descent: error: out of memory\n");
		goto done;
	}
	if (rt_predict(s, &x, out, err, sizeof err) < 0) {
		fprintf(stderr, "descent: error: %s: %s\n", o->input, err);
		goto done;
	}
	/* written as they are (the file says nan), but not silently: such a row's
	 * class is whatever argmax makes of its NaNs */
	int64_t bad = 0, first = -1;
	for (int64_t i = 0; i < x.n; i++)
		for (int64_t j = 0; j < row; j++)
			if (!isfinite(out[i * row + j])) {
				bad++;
				first = first < 0 ? i : first;
				break;
			}
	if (bad)
		fprintf(
		    stderr,
		    "descent: warning: %s: %lld of %lld rows give outputs that are not "
		    "finite (the first: row %lld, counted from 1); are their inputs "
		    "finite?\n",
		    o->input, (long long)bad, (long long)x.n, (long long)first + 1);
	int classifier =
	    io->rank == 2 && row > 1 && m->y >= 0 && m->inputs[m->y].dt == DT_I32;
	int64_t shape[RT_MAXRANK + 1] = {x.n};
	for (int i = 1; i < io->rank; i++)
		shape[i] = io->shape[i];
	int rc = has_suffix(o->out, ".npy")
	             ? rt_npy_save(o->out, RT_F32, io->rank > 0 ? io->rank : 1, shape,
	                           out, err, sizeof err)
	             : write_predictions_csv(o->out, out, x.n, row, classifier, err,
	                                     sizeof err);
	if (rc < 0) {
		fprintf(stderr, "descent: error: %s\n", err);
		goto done;
	}
	printf("%lld predictions of %lld value%s each written to %s\n", (long long)x.n,
	       (long long)row, row == 1 ? "" : "s", o->out);
	status = 0;
done:
	rt_st_free(&f);
	free(out);
	rt_session_free(s);
	compiled_free(c);
	rt_tensor_free(&x);
	return status;
}

/* descent plot LOG.csv -o PLOT.svg: the loss and accuracy curves of a --log file. */
int cmd_plot(const Opts *o, Diags *d, Arena *A)
{
	(void)d;
	(void)A;
	char err[1024];
	TrainLog l;
	if (!o->out) {
		fprintf(stderr, "descent: error: plot needs -o FILE.svg\n");
		return 2;
	}
	if (svg_path("-o", o->out) < 0)
		return 2;
	if (log_read(o->model, &l, err, sizeof err) < 0) {
		fprintf(stderr, "descent: error: %s\n", err);
		return 1;
	}
	if (!l.n) {
		fprintf(stderr, "descent: error: %s: no rows to plot, only a header\n",
		        o->model);
		log_free(&l);
		return 1;
	}
	const char *base = strrchr(o->model, '/') ? strrchr(o->model, '/') + 1 : o->model;
	size_t len;
	char *svg = log_svg(&l, base, &len);
	const void *parts[] = {svg};
	int rc = rt_write_atomic(o->out, parts, &len, 1, err, sizeof err);
	free(svg);
	if (rc < 0)
		fprintf(stderr, "descent: error: %s\n", err);
	else
		printf("%d epoch%s plotted to %s\n", l.n, l.n == 1 ? "" : "s", o->out);
	log_free(&l);
	return rc < 0;
}
