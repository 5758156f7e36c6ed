/* The training log: one row of metrics per epoch, as CSV text (what `--log` writes and
 * `descent plot` reads) and as an SVG chart of the loss and accuracy curves.
 *
 * The CSV has a fixed header (log_columns); a metric that was not measured is an empty
 * field. Reading finds the columns by name, so a file with extra or reordered columns
 * still plots. The SVG is self-contained (no scripts, no external fonts or styles): one
 * panel of loss curves and, when any accuracy was measured, one of accuracy curves,
 * each with axes, ticks at 1-2-5 steps, grid lines, axis labels and a legend. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dc.h"

const char *const log_columns[LOG_NCOLS] = {"epoch",      "step",          "lr",
                                            "train_loss", "val_loss",      "val_accuracy",
                                            "test_loss",  "test_accuracy", "seconds"};

void log_add(TrainLog *l, const LogRow *r)
{
	if (l->n == l->cap) {
		int cap = l->cap ? 2 * l->cap : 16;
		LogRow *v = realloc(l->rows, (size_t)cap * sizeof *v);
		if (!v)
			die("out of memory");
		l->rows = v, l->cap = cap;
	}
	l->rows[l->n++] = *r;
}

void log_free(TrainLog *l)
{
	free(l->rows);
	memset(l, 0, sizeof *l);
}

/* A growing string. */
typedef struct Str {
	char *s;
	size_t n, cap;
} Str;

__attribute__((format(printf, 2, 3))) static void put(Str *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0,
		                  fmt, ap);
		va_end(ap);
		if (k < 0)
			die("vsnprintf failed");
		if (b->s && b->n + (size_t)k < b->cap) {
			b->n += (size_t)k;
			return;
		}
		size_t cap = b->cap ? 2 * b->cap : 4096;
		while (cap < b->n + (size_t)k + 1)
			cap *= 2;
		char *s = realloc(b->s, cap);
		if (!s)
			die("out of memory");
		b->s = s, b->cap = cap;
	}
}

char *log_csv(const TrainLog *l, size_t *len)
{
	Str b = {0};
	for (int c = 0; c < LOG_NCOLS; c++)
		put(&b, "%s%s", c ? "," : "", log_columns[c]);
	put(&b, "\n");
	for (int i = 0; i < l->n; i++) {
		for (int c = 0; c < LOG_NCOLS; c++) {
			double v = l->rows[i].v[c];
			if (c)
				put(&b, ",");
			if (isnan(v))
				continue;
			if (c == LOG_EPOCH || c == LOG_STEP)
				put(&b, "%.0f", v);
			else if (c == LOG_SECONDS)
				put(&b, "%.3f", v);
			else
				put(&b, "%.9g", v);
		}
		put(&b, "\n");
	}
	*len = b.n;
	return b.s;
}

/* Splits line at commas in place; returns the number of fields (at most max). */
static int split(char *line, char **f, int max)
{
	int n = 0;
	for (char *p = line; n < max;) {
		f[n++] = p;
		char *c = strchr(p, ',');
		if (!c)
			break;
		*c = 0;
		p = c + 1;
	}
	for (int i = 0; i < n; i++) { /* trim spaces and line ends */
		while (*f[i] == ' ')
			f[i]++;
		size_t k = strlen(f[i]);
		while (k && strchr(" \r\n", f[i][k - 1]))
			f[i][--k] = 0;
	}
	return n;
}

/* A value the plot draws: finite, and small enough that the differences of two such
 * values are too (a hand-made log's 1e308 would make the scale infinite and the
 * coordinates NaN). A loss or accuracy that is not leaves a gap in its curve, as inf
 * does; an epoch that is not is an error. */
static int plottable(double v) { return fabs(v) <= 1e300; }

int log_read(const char *path, TrainLog *l, char *err, size_t errlen)
{
	memset(l, 0, sizeof *l);
	FILE *f = fopen(path, "r");
	struct stat st;
	if (!f || (!fstat(fileno(f), &st) && S_ISDIR(st.st_mode))) {
		snprintf(err, errlen, "%s: cannot open: %s", path,
		         f ? "it is a directory" : strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	char line[4096], head[4096], *fld[64]; /* the header's fields stay in head */
	int col[64], nf, lineno = 1, rc = -1;
	if (!fgets(head, sizeof head, f)) {
		snprintf(err, errlen, "%s: empty file, expected a header line", path);
		goto done;
	}
	nf = split(head, fld, 64);
	int have_epoch = 0;
	for (int i = 0; i < nf; i++) {
		col[i] = -1;
		for (int c = 0; c < LOG_NCOLS; c++)
			if (!strcmp(fld[i], log_columns[c]))
				col[i] = c;
		have_epoch |= col[i] == LOG_EPOCH;
	}
	if (!have_epoch) {
		snprintf(err, errlen,
		         "%s:1: no 'epoch' column; is this a log written by --log?",
		         path);
		goto done;
	}
	while (fgets(line, sizeof line, f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			snprintf(err, errlen, "%s:%d: line longer than %zu bytes", path,
			         lineno, sizeof line - 2);
			log_free(l);
			goto done;
		}
		if (strspn(line, " \r\n") == strlen(line))
			continue;
		char *v[64];
		int n = split(line, v, 64);
		LogRow r;
		for (int c = 0; c < LOG_NCOLS; c++)
			r.v[c] = NAN;
		for (int i = 0; i < n && i < nf; i++) {
			if (col[i] < 0 || !v[i][0])
				continue;
			char *end;
			r.v[col[i]] = strtod(v[i], &end);
			/* (a loss may be inf, as --log writes it; an epoch may not) */
			if (*end || (col[i] == LOG_EPOCH && !plottable(r.v[col[i]]))) {
				snprintf(err, errlen, "%s:%d: column %d (%s): '%s' is %s",
				         path, lineno, i + 1, fld[i], v[i],
				         *end                 ? "not a number"
				         : isinf(r.v[col[i]]) ? "not a finite number"
				                              : "too large to plot");
				log_free(l);
				goto done;
			}
		}
		if (isnan(r.v[LOG_EPOCH])) {
			snprintf(err, errlen, "%s:%d: the row has no epoch", path,
			         lineno);
			log_free(l);
			goto done;
		}
		log_add(l, &r);
	}
	rc = 0;
done:
	fclose(f);
	return rc;
}

/* ---- the SVG ---- */

/* Ticks at a 1-2-5 step covering [lo, hi], about n of them. */
typedef struct Axis {
	double lo, hi, step;
	int decimals;
} Axis;

/* A tick's label: its axis's decimals, or 3 digits and an exponent beyond 1e6 or below
 * 1e-4 (a loss of 2e29 had a label of 30 digits); buf holds 64 */
static const char *tick(char *buf, double t, const Axis *a)
{
	if (fabs(t) < a->step * 1e-9)
		t = 0;
	if (t != 0 && (fabs(t) >= 1e6 || fabs(t) < 1e-4)) {
		/* as many digits as tell the ticks apart: 2.3455e9 to 2.3496e9 */
		int digits = 1 + (int)ceil(log10(fabs(t) / a->step) - 1e-9);
		snprintf(buf, 64, "%.*g", digits < 3 ? 3 : digits > 12 ? 12 : digits, t);
	} else
		snprintf(buf, 64, "%.*f", a->decimals, t);
	return buf;
}

static Axis nice_axis(double lo, double hi, int n, int integer)
{
	if (!(hi > lo)) {
		double d = lo == 0 ? 1 : fabs(lo) * 0.1;
		lo -= d, hi += d;
	}
	double raw = (hi - lo) / n, mag = pow(10, floor(log10(raw))), f = raw / mag;
	double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
	if (integer && step < 1)
		step = 1;
	Axis a = {floor(lo / step) * step, ceil(hi / step) * step, step, 0};
	a.decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
	return a;
}

typedef struct Panel {
	double x, y, w, h; /* the plot area, in pixels */
	Axis ax, ay;
} Panel;

static double px(const Panel *p, double v)
{
	return p->x + (v - p->ax.lo) / (p->ax.hi - p->ax.lo) * p->w;
}

static double py(const Panel *p, double v)
{
	return p->y + p->h - (v - p->ay.lo) / (p->ay.hi - p->ay.lo) * p->h;
}

static void esc(Str *b, const char *s)
{
	for (; *s; s++)
		if (*s == '&')
			put(b, "&amp;");
		else if (*s == '<')
			put(b, "&lt;");
		else if (*s == '>')
			put(b, "&gt;");
		else if (*s == '"')
			put(b, "&quot;");
		else
			put(b, "%c", *s);
}

static const struct {
	int col;
	const char *label, *color;
} series[] = {
    {LOG_TRAIN_LOSS, "train loss", "#1f77b4"},
    {LOG_VAL_LOSS, "validation loss", "#ff7f0e"},
    {LOG_TEST_LOSS, "test loss", "#2ca02c"},
    {LOG_VAL_ACC, "validation accuracy", "#ff7f0e"},
    {LOG_TEST_ACC, "test accuracy", "#2ca02c"},
};
#define NSERIES ((int)(sizeof series / sizeof series[0]))

static int has(const TrainLog *l, int col)
{
	for (int i = 0; i < l->n; i++)
		if (plottable(l->rows[i].v[col]))
			return 1;
	return 0;
}

/* The ticks of an axis from first in steps of step up to hi: how many, none when the
 * step does not move a double that far (a range of 1e17 in steps of 1e16 would take
 * forever, as would an infinite one); at most 100. */
static int nticks(double first, double hi, double step)
{
	double n = (hi + step * 1e-6 - first) / step;
	if (!(step > 0) || !(n >= 0) || n > 100 || first + step == first ||
	    hi + step == hi)
		return 0;
	return (int)n + 1;
}

/* Axes, grid, ticks and labels of one panel. */
static void frame(Str *b, const Panel *p, const char *title, const char *ylabel)
{
	char lab[64];
	put(b, "<g font-size=\"11\" fill=\"#333\">\n");
	int ny = nticks(p->ay.lo, p->ay.hi, p->ay.step);
	for (int i = 0; i < ny; i++) {
		double t = p->ay.lo + i * p->ay.step;
		double y = py(p, t);
		put(b,
		    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
		    "stroke=\"#e5e5e5\"/>\n",
		    p->x, y, p->x + p->w, y);
		put(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
		    p->x - 6, y + 4, tick(lab, t, &p->ay));
	}
	double x0 = ceil(p->ax.lo / p->ax.step - 1e-9) * p->ax.step;
	int nx = nticks(x0, p->ax.hi, p->ax.step);
	for (int i = 0; i < nx; i++) {
		double t = x0 + i * p->ax.step;
		double x = px(p, t);
		put(b,
		    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
		    "stroke=\"#e5e5e5\"/>\n",
		    x, p->y, x, p->y + p->h);
		put(b,
		    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
		    "stroke=\"#333\"/>\n",
		    x, p->y + p->h, x, p->y + p->h + 5);
		put(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
		    x, p->y + p->h + 18, tick(lab, t, &p->ax));
	}
	put(b,
	    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
	    "stroke=\"#333\"/>\n",
	    p->x, p->y, p->w, p->h);
	put(b,
	    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
	    "font-size=\"13\">epoch</text>\n",
	    p->x + p->w / 2, p->y + p->h + 38);
	put(b,
	    "<text transform=\"translate(%.1f %.1f) rotate(-90)\" text-anchor=\"middle\" "
	    "font-size=\"13\">%s</text>\n",
	    p->x - 48, p->y + p->h / 2, ylabel);
	put(b,
	    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"14\" "
	    "font-weight=\"bold\">%s</text>\n",
	    p->x + p->w / 2, p->y - 10, title);
	put(b, "</g>\n");
}

/* The curves of the series [from, to) that have values, and their legend in the upper
 * (or lower) right corner, where falling losses (rising accuracies) leave room. */
static void curves(Str *b, const Panel *p, const TrainLog *l, int from, int to, int lower)
{
	int k = 0;
	for (int s = from; s < to; s++) {
		int c = series[s].col;
		if (!has(l, c))
			continue;
		put(b, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\" d=\"",
		    series[s].color);
		int pen = 0;
		for (int i = 0; i < l->n; i++) {
			double v = l->rows[i].v[c];
			if (!plottable(v)) {
				pen = 0;
				continue;
			}
			put(b, "%s%.1f %.1f ", pen ? "L" : "M",
			    px(p, l->rows[i].v[LOG_EPOCH]), py(p, v));
			pen = 1;
		}
		put(b, "\"/>\n");
		for (int i = 0; i < l->n; i++)
			if (plottable(l->rows[i].v[c]))
				put(b,
				    "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" "
				    "fill=\"%s\"/>\n",
				    px(p, l->rows[i].v[LOG_EPOCH]),
				    py(p, l->rows[i].v[c]), series[s].color);
		k++;
	}
	double w = 150, h = 8 + 18.0 * k, x = p->x + p->w - w - 8;
	double y = lower ? p->y + p->h - h - 8 : p->y + 8;
	put(b,
	    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"white\" "
	    "fill-opacity=\"0.85\" stroke=\"#bbb\"/>\n",
	    x, y, w, h);
	k = 0;
	for (int s = from; s < to; s++) {
		if (!has(l, series[s].col))
			continue;
		double yy = y + 16 + 18.0 * k++;
		put(b,
		    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
		    "stroke-width=\"2\"/>\n",
		    x + 8, yy - 4, x + 30, yy - 4, series[s].color);
		put(b,
		    "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" "
		    "fill=\"#333\">%s</text>\n",
		    x + 36, yy, series[s].label);
	}
}

/* The y range of series [from, to), and the x range of the epochs. */
static void ranges(const TrainLog *l, int from, int to, double *lo, double *hi)
{
	*lo = INFINITY, *hi = -INFINITY;
	for (int s = from; s < to; s++)
		for (int i = 0; i < l->n; i++) {
			double v = l->rows[i].v[series[s].col];
			if (plottable(v))
				*lo = v < *lo ? v : *lo, *hi = v > *hi ? v : *hi;
		}
	if (!isfinite(*lo))
		*lo = 0, *hi = 1;
}

char *log_svg(const TrainLog *l, const char *title, size_t *len)
{
	int acc = has(l, LOG_VAL_ACC) || has(l, LOG_TEST_ACC);
	double pw = 420, ph = 300, W = acc ? 2 * pw + 200 : pw + 110, H = ph + 130;
	Str b = {0};
	put(&b,
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
	    "viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Helvetica, Arial, "
	    "sans-serif\">\n"
	    "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
	    "<text x=\"%.1f\" y=\"24\" text-anchor=\"middle\" font-size=\"16\" "
	    "font-weight=\"bold\" fill=\"#111\">",
	    W, H, W, H, W / 2);
	esc(&b, title);
	put(&b, "</text>\n");
	double e0 = INFINITY, e1 = -INFINITY;
	for (int i = 0; i < l->n; i++) {
		double e = l->rows[i].v[LOG_EPOCH];
		e0 = e < e0 ? e : e0, e1 = e > e1 ? e : e1;
	}
	if (!l->n)
		e0 = 0, e1 = 1;
	Axis ax = nice_axis(e0, e1, 8, 1);
	if (e0 == e1)
		ax = (Axis){e0 - 0.5, e1 + 0.5, 1, 0};
	else /* the first and last points off the frame */
		ax.lo = e0 - (e1 - e0) * 0.04, ax.hi = e1 + (e1 - e0) * 0.04;
	double lo, hi;
	ranges(l, 0, 3, &lo, &hi);
	double pad = (hi - lo) * 0.05;
	Panel loss = {80, 70, pw, ph, ax, nice_axis(lo - pad, hi + pad, 6, 0)};
	if (loss.ay.lo < 0 && lo >= 0)
		loss.ay.lo = 0;
	frame(&b, &loss, "Loss", "loss");
	curves(&b, &loss, l, 0, 3, 0);
	if (acc) {
		ranges(l, 3, 5, &lo, &hi);
		pad = (hi - lo) * 0.05;
		Panel ap = {80 + pw + 80, 70, pw,
		            ph,           ax, nice_axis(lo - pad, hi + pad, 6, 0)};
		if (ap.ay.hi > 1 && hi <= 1)
			ap.ay.hi = 1;
		if (ap.ay.lo < 0 && lo >= 0)
			ap.ay.lo = 0;
		frame(&b, &ap, "Accuracy", "accuracy");
		curves(&b, &ap, l, 3, 5, 1);
	}
	put(&b, "</svg>\n");
	*len = b.n;
	return b.s;
}
