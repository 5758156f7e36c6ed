/* CSV files of numbers, one example per row. The whole file is read into memory and
 * tokenized twice by the same reader: the first pass takes the header's names, counts
 * the rows and checks that every row has as many fields as the first, so the second
 * can fill outputs allocated at their exact size, converting each field with strtod
 * (so in the LC_NUMERIC locale: "1.5" unless the program has changed it from "C").
 * The reader follows RFC 4180 and what spreadsheets write: \n, \r\n or \r line ends,
 * blank lines skipped, a UTF-8 byte order mark, fields in double quotes (which may hold
 * delimiters, line ends and "" for a quote), and spaces around fields ignored. Errors
 * name the row by its line number in the file (where its record begins) and the column
 * by its 1-based field number and, when there is a header, its name. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "descent/runtime.h"
#include "mem.h"

typedef struct Csv {
	const char *path;
	char *err;
	size_t errlen;
	const char *b; /* the file */
	size_t n, p;
	char delim;
	long long line; /* of position p, 1-based */
	char *f;        /* the current field, decoded, NUL-terminated */
	size_t flen, fcap;
	char **names; /* the header's, or NULL */
	int ncols;
} Csv;

/* "row 7, column 3 ('petal_width'): ..." */
static int field_fail(Csv *c, long long row, int col, const char *fmt, ...)
{
	char msg[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (c->names && col <= c->ncols)
		return rt_fail(c->err, c->errlen, c->path,
		               "row %lld, column %d ('%s'): %s", row, col,
		               c->names[col - 1], msg);
	return rt_fail(c->err, c->errlen, c->path, "row %lld, column %d: %s", row, col,
	               msg);
}

static int is_space(const Csv *c, char ch)
{
	return (ch == ' ' || ch == '\t') && ch != c->delim;
}

static int is_eol(char ch) { return ch == '\n' || ch == '\r'; }

/* Past one line end at p: \n, \r\n or \r. */
static void skip_eol(Csv *c)
{
	if (c->b[c->p++] == '\r' && c->p < c->n && c->b[c->p] == '\n')
		c->p++;
	c->line++;
}

static int append(Csv *c, const char *s, size_t n)
{
	if (c->flen + n + 1 > c->fcap) {
		size_t cap = c->fcap ? c->fcap : 64;
		while (cap < c->flen + n + 1)
			cap *= 2;
		char *q = rt_realloc(c->f, cap);
		if (!q)
			return rt_fail(c->err, c->errlen, c->path, "out of memory");
		c->f = q;
		c->fcap = cap;
	}
	memcpy(c->f + c->flen, s, n);
	c->flen += n;
	c->f[c->flen] = 0;
	return 0;
}

/* Skips blank lines; 1 if a record starts at p, 0 at the end of the file. */
static int begin_record(Csv *c)
{
	for (;;) {
		size_t q = c->p;
		while (q < c->n && is_space(c, c->b[q]))
			q++;
		if (q >= c->n) {
			c->p = q;
			return 0;
		}
		if (!is_eol(c->b[q]))
			return 1;
		c->p = q;
		skip_eol(c);
	}
}

/* A quoted field from its opening quote: "" is a quote, line ends are kept. */
static int read_quoted(Csv *c, long long row, int col)
{
	long long open = c->line;
	c->p++;
	for (;;) {
		if (c->p >= c->n)
			return field_fail(
			    c, row, col,
			    "quoted field is never closed (it opens on line "
			    "%lld)",
			    open);
		char ch = c->b[c->p];
		if (ch == '"' && c->p + 1 < c->n && c->b[c->p + 1] == '"') {
			c->p++;
		} else if (ch == '"') {
			c->p++;
			break;
		} else if (ch == '\n' ||
		           (ch == '\r' && (c->p + 1 >= c->n || c->b[c->p + 1] != '\n')))
			c->line++;
		if (append(c, &c->b[c->p++], 1))
			return -1;
	}
	while (c->p < c->n && is_space(c, c->b[c->p]))
		c->p++;
	if (c->p < c->n && c->b[c->p] != c->delim && !is_eol(c->b[c->p]))
		return field_fail(c, row, col, "unexpected '%c' after the closing quote",
		                  c->b[c->p]);
	return 0;
}

/* The next field of the record that began on line row into c->f, trimmed of spaces;
 * *last = 1 when it ends the record (its line end is consumed). */
static int read_field(Csv *c, long long row, int col, int *last)
{
	c->flen = 0;
	if (append(c, "", 0))
		return -1;
	while (c->p < c->n && is_space(c, c->b[c->p]))
		c->p++;
	if (c->p < c->n && c->b[c->p] == '"') {
		if (read_quoted(c, row, col))
			return -1;
	} else {
		size_t s = c->p, e;
		while (c->p < c->n && c->b[c->p] != c->delim && !is_eol(c->b[c->p]))
			c->p++;
		for (e = c->p; e > s && is_space(c, c->b[e - 1]);)
			e--;
		if (append(c, c->b + s, e - s))
			return -1;
	}
	*last = c->p >= c->n || c->b[c->p] != c->delim;
	if (!*last)
		c->p++;
	else if (c->p < c->n)
		skip_eol(c);
	return 0;
}

/* Pass 1: the header's names, the number of columns and of records (header too). */
static int scan(Csv *c, int header, long long *records)
{
	long long first = 0;
	*records = 0;
	int cap = 0;
	while (begin_record(c)) {
		long long row = c->line;
		int k = 0, last = 0;
		while (!last) {
			if (k == INT_MAX - 1)
				return field_fail(c, row, k, "too many fields");
			if (read_field(c, row, k + 1, &last))
				return -1;
			if (header && *records == 0) {
				if (k == cap) {
					cap = cap ? cap * 2 : 16;
					char **q =
					    rt_realloc(c->names, (size_t)cap * sizeof *q);
					if (!q)
						return rt_fail(c->err, c->errlen, c->path,
						               "out of memory");
					c->names = q;
				}
				c->names[k] = rt_alloc(c->flen + 1);
				if (!c->names[k])
					return rt_fail(c->err, c->errlen, c->path,
					               "out of memory");
				memcpy(c->names[k], c->f, c->flen + 1);
				c->ncols = k + 1;
			}
			k++;
		}
		if (*records == 0) {
			c->ncols = k;
			first = row;
		} else if (k != c->ncols) {
			if (header)
				return rt_fail(
				    c->err, c->errlen, c->path,
				    "row %lld has %d fields, the header has %d", row, k,
				    c->ncols);
			return rt_fail(
			    c->err, c->errlen, c->path,
			    "row %lld has %d fields, the first row (line %lld) has "
			    "%d",
			    row, k, first, c->ncols);
		}
		(*records)++;
	}
	return 0;
}

/* The label column: a header name, else a 0-based index; -1 for none. */
static int find_label(Csv *c, const char *label, int *col)
{
	*col = -1;
	if (!label)
		return 0;
	for (int i = 0; c->names && i < c->ncols; i++)
		if (!strcmp(c->names[i], label)) {
			if (*col >= 0)
				return rt_fail(
				    c->err, c->errlen, c->path,
				    "label column '%s' appears twice in the header "
				    "(columns %d and %d)",
				    label, *col + 1, i + 1);
			*col = i;
		}
	size_t digits = strspn(label, "0123456789");
	if (*col < 0 && label[0] && !label[digits] && digits < 10) {
		*col = atoi(label);
		if (*col >= c->ncols)
			return rt_fail(c->err, c->errlen, c->path,
			               "label column %s is out of range: the file has %d "
			               "columns (0 to %d)",
			               label, c->ncols, c->ncols - 1);
	}
	if (*col < 0 && !c->names)
		return rt_fail(
		    c->err, c->errlen, c->path,
		    "label column '%s' is not a column index, and the file has no "
		    "header to look it up in",
		    label);
	if (*col < 0) {
		char list[512];
		size_t k = 0;
		for (int i = 0; i < c->ncols && k < sizeof list; i++)
			k += (size_t)snprintf(list + k, sizeof list - k, "%s'%s'",
			                      i ? ", " : "", c->names[i]);
		return rt_fail(c->err, c->errlen, c->path,
		               "unknown label column '%s'; the header has %s", label,
		               list);
	}
	if (c->ncols == 1)
		return rt_fail(c->err, c->errlen, c->path,
		               "no feature columns: the only column is the label");
	return 0;
}

/* The current field as a finite number (a quoted one trimmed of spaces first). */
static int number(Csv *c, long long row, int col, double *v)
{
	char *s = c->f, *e = c->f + c->flen, *end;
	while (*s == ' ' || *s == '\t')
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*e = 0;
	memmove(c->f, s, (size_t)(e - s) + 1);
	e -= s - c->f;
	s = c->f;
	if (s == e)
		return field_fail(c, row, col, "empty field, expected a number");
	if (memchr(s, 0, (size_t)(e - s)))
		return field_fail(c, row, col, "the field holds a NUL byte");
	errno = 0;
	*v = strtod(s, &end);
	/* decimal only: strtod also reads C's hex floats, 0x10 as 16 */
	if (end != e || strpbrk(s, "xX"))
		return field_fail(c, row, col, "'%.60s' is not a number", s);
	if (isnan(*v) || (isinf(*v) && errno != ERANGE))
		return field_fail(c, row, col,
		                  "'%.60s' is not a finite number (nan and inf are not "
		                  "allowed)",
		                  s);
	if (isinf(*v))
		return field_fail(c, row, col, "'%.60s' is out of range", s);
	return 0;
}

static int to_float(Csv *c, long long row, int col, double v, float *out)
{
	if (fabs(v) > FLT_MAX)
		return field_fail(c, row, col, "'%.60s' is out of range for float32",
		                  c->f);
	*out = (float)v;
	return 0;
}

/* Pass 2: every field of the data rows into x and y. */
static int fill(Csv *c, int header, int lab, double scale, int classes, rt_tensor *x,
                rt_tensor *y)
{
	int64_t r = -header;
	while (begin_record(c)) {
		long long row = c->line;
		float *xr = r >= 0 ? (float *)x->data + r * x->stride : NULL;
		int last = 0;
		for (int k = 0, j = 0; !last; k++) {
			double v = 0;
			if (read_field(c, row, k + 1, &last))
				return -1;
			if (r < 0)
				continue;
			if (number(c, row, k + 1, &v))
				return -1;
			if (k != lab) {
				if (to_float(c, row, k + 1, v * scale, &xr[j++]))
					return -1;
			} else if (!classes) {
				if (to_float(c, row, k + 1, v, (float *)y->data + r))
					return -1;
			} else if (v != floor(v))
				return field_fail(
				    c, row, k + 1,
				    "label %s is not an integer (the labels are "
				    "classes)",
				    c->f);
			else if (v < INT32_MIN || v > INT32_MAX)
				return field_fail(c, row, k + 1,
				                  "label %s does not fit in int32", c->f);
			else
				((int32_t *)y->data)[r] = (int32_t)v;
		}
		r++;
	}
	return 0;
}

static int read_all(const char *path, char **buf, size_t *n, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return rt_fail(err, errlen, path, "cannot open: %s", strerror(errno));
	struct stat st;
	int rc = -1;
	if (fstat(fileno(fp), &st) || !S_ISREG(st.st_mode))
		rt_fail(err, errlen, path, "not a regular file");
	else if ((uint64_t)st.st_size >= SIZE_MAX)
		rt_fail(err, errlen, path, "file is too large for this machine");
	else if (!(*buf = rt_alloc((size_t)st.st_size + 1)))
		rt_fail(err, errlen, path, "out of memory (%lld bytes)",
		        (long long)st.st_size);
	else if (fread(*buf, 1, (size_t)st.st_size, fp) != (size_t)st.st_size)
		rt_fail(err, errlen, path, "read error: %s",
		        ferror(fp) ? strerror(errno)
		                   : "the file shrank while being read");
	else {
		*n = (size_t)st.st_size;
		rc = 0;
	}
	fclose(fp);
	return rc;
}

int rt_csv_load(const char *path, const rt_csv_opts *o, rt_tensor *x, rt_tensor *y,
                char *err, size_t errlen)
{
	if (!path || !x || !y)
		return rt_error(err, errlen, "rt_csv_load: %s is NULL",
		                !path ? "the path"
		                : !x  ? "x"
		                      : "y");
	static const rt_csv_opts defaults;
	memset(x, 0, sizeof *x);
	memset(y, 0, sizeof *y);
	if (!o)
		o = &defaults;
	char delim = o->delimiter ? o->delimiter : ',';
	if (delim == '"' || is_eol(delim))
		return rt_fail(err, errlen, path,
		               "invalid delimiter (a quote or line end)");
	char *buf = NULL;
	size_t n = 0;
	if (read_all(path, &buf, &n, err, errlen))
		return -1;
	size_t bom = n >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3) ? 3 : 0;
	Csv c = {path, err, errlen, buf, n, bom, delim, 1, NULL, 0, 0, NULL, 0};
	int header = o->header != 0, rc = -1, lab;
	long long records;
	if (scan(&c, header, &records))
		goto done;
	if (records == 0) {
		rt_fail(err, errlen, path, "empty file (no rows)");
		goto done;
	}
	if (records == header) {
		rt_fail(err, errlen, path, "the file has a header but no data rows");
		goto done;
	}
	if (find_label(&c, o->label, &lab))
		goto done;
	int64_t rows = records - header, nf = c.ncols - (lab >= 0);
	if ((uint64_t)rows > SIZE_MAX / 4 / (uint64_t)nf) {
		rt_fail(err, errlen, path, "too large for this machine");
		goto done;
	}
	*x = (rt_tensor){RT_F32, rows, 1, {nf}, nf, rt_alloc((size_t)(rows * nf) * 4)};
	if (lab >= 0)
		*y = (rt_tensor){o->labels_are_classes ? RT_I32 : RT_F32,
		                 rows,
		                 0,
		                 {0},
		                 1,
		                 rt_alloc((size_t)rows * 4)};
	if (!x->data || (lab >= 0 && !y->data)) {
		rt_fail(err, errlen, path, "out of memory");
		goto done;
	}
	c.p = bom;
	c.line = 1;
	rc =
	    fill(&c, header, lab, o->scale ? o->scale : 1.0, o->labels_are_classes, x, y);
done:
	if (rc) {
		rt_tensor_free(x);
		rt_tensor_free(y);
	}
	for (int i = 0; c.names && i < c.ncols; i++)
		rt_free(c.names[i]);
	rt_free(c.names);
	rt_free(c.f);
	rt_free(buf);
	return rc;
}
