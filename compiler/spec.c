/* YAML text -> Spec tree, and typed access to it.
 *
 * libyaml's event parser drives a recursive descent that builds a tree of scalars,
 * lists and mappings in the arena; every node keeps the file, line and column it
 * starts at (libyaml counts from 0, we count from 1). Anchors are remembered in a small
 * hash table and an alias shares the anchored node, so the tree is a DAG. Hostile input
 * is bounded: the file size, the nesting depth, and the number of nodes counting every
 * alias expansion (a "billion laughs" file is rejected after reading its first few
 * lines). Only the first document is read; mapping keys must be scalars and unique.
 *
 * The accessors below check a node against what a model needs (an integer in a range,
 * one of a few names, a mapping with known keys) and on failure record an error at the
 * offending node that quotes what was found.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "dc.h"

enum { MAX_NODES = 100000, MAX_DEPTH = 64, MAX_FILE = 16 << 20 };

typedef struct Anchor {
	const char *name;
	Spec *node;
	int64_t size; /* nodes in the subtree, aliases expanded */
} Anchor;

typedef struct Parser {
	Arena *A;
	Diags *d;
	const char *file;
	const char *text;
	size_t len;
	yaml_parser_t yp;
	Anchor *anchors; /* open addressing; cap is a power of two */
	size_t nanchors, cap;
	int64_t nodes; /* so far, aliases expanded */
	int depth, aliased;
	size_t *lines, nlines; /* each line's first byte in text, made when needed */
} Parser;

typedef struct Vec {
	Spec **v;
	int n, cap;
} Vec;

static void push(Arena *A, Vec *v, Spec *s)
{
	if (v->n == v->cap) {
		int cap = v->cap ? 2 * v->cap : 8;
		Spec **nv = arena_alloc(A, (size_t)cap * sizeof *nv);
		if (v->n)
			memcpy(nv, v->v, (size_t)v->n * sizeof *nv);
		v->v = nv;
		v->cap = cap;
	}
	v->v[v->n++] = s;
}

static SrcLoc loc_of(Parser *p, yaml_mark_t m)
{
	return (SrcLoc){p->file, (int)m.line + 1, (int)m.column + 1};
}

/* Reader errors carry a byte offset instead of a mark. */
static SrcLoc loc_of_offset(Parser *p, size_t off)
{
	SrcLoc loc = {p->file, 1, 1};
	for (size_t i = 0; i < off && i < p->len; i++) {
		if (p->text[i] == '\n') {
			loc.line++;
			loc.col = 1;
		} else if (((unsigned char)p->text[i] & 0xc0) != 0x80) {
			loc.col++;
		}
	}
	return loc;
}

/* The byte at a mark (libyaml counts lines and characters), or 0. */
static char char_at(const Parser *p, yaml_mark_t m)
{
	size_t i = 0;
	for (size_t line = 0; line < m.line && i < p->len; i++)
		line += p->text[i] == '\n';
	for (size_t col = 0; i < p->len && p->text[i] != '\n'; i++) {
		if (((unsigned char)p->text[i] & 0xc0) == 0x80)
			continue;
		if (col++ == m.column)
			return p->text[i];
	}
	return 0;
}

static void yaml_error(Parser *p)
{
	yaml_parser_t *y = &p->yp;
	const char *problem = y->problem ? y->problem : "invalid YAML";
	if (y->error == YAML_MEMORY_ERROR)
		die("out of memory in libyaml");
	if (y->error == YAML_READER_ERROR) {
		SrcLoc loc = loc_of_offset(p, y->problem_offset);
		if (y->problem_value >= 0)
			error_at(p->d, loc, "%s (byte 0x%02x)", problem,
			         y->problem_value);
		else
			error_at(p->d, loc, "%s", problem);
		return;
	}
	SrcLoc loc = loc_of(p, y->problem_mark);
	if (char_at(p, y->problem_mark) == '\t') {
		error_at(p->d, loc, "a tab character; YAML indents with spaces only");
		return;
	}
	if (y->context)
		error_at(p->d, loc, "%s (%s at line %d)", problem, y->context,
		         (int)y->context_mark.line + 1);
	else
		error_at(p->d, loc, "%s", problem);
}

static int next(Parser *p, yaml_event_t *ev)
{
	if (yaml_parser_parse(&p->yp, ev))
		return 1;
	yaml_error(p);
	return 0;
}

/* ---------------- anchors ---------------- */

static uint64_t hash(const char *s)
{
	uint64_t h = 14695981039346656037u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

static Anchor *anchor_slot(Anchor *tab, size_t cap, const char *name)
{
	for (size_t i = hash(name) & (cap - 1);; i = (i + 1) & (cap - 1))
		if (!tab[i].name || !strcmp(tab[i].name, name))
			return &tab[i];
}

static Anchor *anchor_get(Parser *p, const char *name)
{
	if (!p->cap)
		return NULL;
	Anchor *a = anchor_slot(p->anchors, p->cap, name);
	return a->name ? a : NULL;
}

/* A later anchor of the same name replaces the earlier one, as YAML says. */
static void anchor_put(Parser *p, const char *name, Spec *node, int64_t size)
{
	if (2 * (p->nanchors + 1) > p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 16;
		Anchor *tab = arena_alloc(p->A, cap * sizeof *tab);
		for (size_t i = 0; i < p->cap; i++)
			if (p->anchors[i].name)
				*anchor_slot(tab, cap, p->anchors[i].name) =
				    p->anchors[i];
		p->anchors = tab;
		p->cap = cap;
	}
	Anchor *a = anchor_slot(p->anchors, p->cap, name);
	if (!a->name) {
		a->name = arena_strdup(p->A, name);
		p->nanchors++;
	}
	a->node = node;
	a->size = size;
}

/* ---------------- the tree ---------------- */

static int over_budget(Parser *p, yaml_mark_t m)
{
	if (p->nodes <= MAX_NODES)
		return 0;
	if (p->aliased)
		error_at(p->d, loc_of(p, m), "YAML aliases expand to more than %d nodes",
		         MAX_NODES);
	else
		error_at(p->d, loc_of(p, m), "YAML document has more than %d nodes",
		         MAX_NODES);
	return 1;
}

static Spec *new_node(Parser *p, SpecKind kind, yaml_mark_t m)
{
	p->nodes++;
	if (over_budget(p, m))
		return NULL;
	Spec *s = arena_alloc(p->A, sizeof *s);
	s->kind = kind;
	s->loc = loc_of(p, m);
	return s;
}

static Spec *node(Parser *p, yaml_event_t *ev, int64_t *size);

static Spec *alias(Parser *p, yaml_event_t *ev, int64_t *size)
{
	const char *name = (const char *)ev->data.alias.anchor;
	Anchor *a = anchor_get(p, name);
	if (!a) {
		error_at(p->d, loc_of(p, ev->start_mark), "unknown YAML alias '*%s'",
		         name);
		return NULL;
	}
	p->aliased = 1;
	p->nodes += a->size;
	if (over_budget(p, ev->start_mark))
		return NULL;
	*size = a->size;
	return a->node;
}

static int blank(int c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* The byte of text at a mark: libyaml counts lines and characters (its index too,
 * so not bytes when something before is UTF-8), and not a byte-order mark. */
static size_t byte_at(Parser *p, yaml_mark_t m)
{
	if (!p->lines) {
		size_t n = 1;
		for (size_t i = 0; i < p->len; i++)
			n += p->text[i] == '\n';
		p->lines = arena_alloc(p->A, n * sizeof *p->lines);
		p->lines[0] = p->len >= 3 && !memcmp(p->text, "\xef\xbb\xbf", 3) ? 3 : 0;
		for (size_t i = 0, k = 1; i < p->len; i++)
			if (p->text[i] == '\n')
				p->lines[k++] = i + 1;
		p->nlines = n;
	}
	if (m.line >= p->nlines)
		return p->len;
	size_t i = p->lines[m.line];
	for (size_t col = 0; i < p->len && p->text[i] != '\n'; i++) {
		if (((unsigned char)p->text[i] & 0xc0) == 0x80)
			continue;
		if (col++ == m.column)
			return i;
	}
	return i;
}

/* Spec.pos for a scalar: each character of its value found in the file, in order,
 * from its start mark. A non-blank character is the next one like it (past quotes,
 * indentation, a block's header line, a tag); an escape (\t, \x41) is the value's
 * character at its backslash; a blank is where the file is, as folded lines and
 * indentation collapse. */
static const int *scalar_pos(Parser *p, yaml_event_t *ev)
{
	const char *v = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length, j = byte_at(p, ev->start_mark),
	       end = byte_at(p, ev->end_mark);
	yaml_scalar_style_t st = ev->data.scalar.style;
	int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
	int *pos = arena_alloc(p->A, (2 * n + 2) * sizeof *pos);
	const char *s = p->text;
#define ADV()                                                                            \
	do {                                                                             \
		if (s[j] == '\n')                                                        \
			line++, col = 1;                                                 \
		else if (((unsigned char)s[j] & 0xc0) != 0x80)                           \
			col++;                                                           \
		j++;                                                                     \
	} while (0)
	/* a tag and an anchor, in either order, each then blanks */
	for (int k = 0; k < 2 && j < end && (s[j] == '!' || s[j] == '&'); k++) {
		while (j < end && !blank(s[j]))
			ADV();
		while (j < end && blank(s[j]))
			ADV();
	}
	if (st == YAML_LITERAL_SCALAR_STYLE || st == YAML_FOLDED_SCALAR_STYLE)
		while (j < end && s[j] != '\n') /* the header: | or >, a comment */
			ADV();
	else
		while (j < end && (s[j] == ' ' || s[j] == '\t'))
			ADV();
	if (j < end && (st == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
	                st == YAML_DOUBLE_QUOTED_SCALAR_STYLE))
		ADV();
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)v[i];
		if (st == YAML_DOUBLE_QUOTED_SCALAR_STYLE && !blank(c))
			while (j < end && blank(s[j])) /* folded: an escape may follow */
				ADV();
		if (st == YAML_DOUBLE_QUOTED_SCALAR_STYLE && j < end && s[j] == '\\') {
			if (j + 1 < end && (s[j + 1] == '\n' || s[j + 1] == '\r')) {
				ADV(); /* an escaped line break: no character */
				while (j < end && blank(s[j]))
					ADV();
				continue;
			}
			pos[2 * i] = line, pos[2 * i + 1] = col;
			char e = j + 1 < end ? s[j + 1] : 0;
			int k = e == 'x' ? 4 : e == 'u' ? 6 : e == 'U' ? 10 : 2;
			for (int m = 0; m < k && j < end; m++)
				ADV();
			/* (an escape's UTF-8 bytes: one character) */
			for (i++; i < n && ((unsigned char)v[i] & 0xc0) == 0x80; i++)
				pos[2 * i] = line, pos[2 * i + 1] = col;
			continue;
		}
		if (!blank(c)) {
			while (j < end && s[j] != (char)c)
				ADV();
		}
		pos[2 * i] = line, pos[2 * i + 1] = col;
		if (j < end && (!blank(c) || blank(s[j])))
			ADV();
		i++;
	}
#undef ADV
	pos[2 * n] = line, pos[2 * n + 1] = col;
	return pos;
}

static Spec *scalar(Parser *p, yaml_event_t *ev)
{
	Spec *s = new_node(p, SPEC_SCALAR, ev->start_mark);
	if (!s)
		return NULL;
	const char *tag = (const char *)ev->data.scalar.tag;
	s->str = arena_strndup(p->A, (const char *)ev->data.scalar.value,
	                       ev->data.scalar.length);
	s->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
	            (tag && !strcmp(tag, YAML_STR_TAG));
	/* a plain scalar on one line, without tag or anchor, is its start plus i
	 * columns */
	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || tag ||
	    ev->data.scalar.anchor || ev->end_mark.line != ev->start_mark.line)
		s->pos = scalar_pos(p, ev);
	return s;
}

static int enter(Parser *p, yaml_mark_t m)
{
	if (++p->depth <= MAX_DEPTH)
		return 1;
	error_at(p->d, loc_of(p, m), "YAML nesting is deeper than %d levels", MAX_DEPTH);
	return 0;
}

/* Reads the events up to the end of a list or mapping into v; NULL on a fatal error. */
static int items(Parser *p, yaml_event_type_t end, Vec *v, int64_t *size)
{
	for (;;) {
		yaml_event_t ev;
		if (!next(p, &ev))
			return 0;
		if (ev.type == end) {
			yaml_event_delete(&ev);
			return 1;
		}
		int64_t n;
		Spec *item = node(p, &ev, &n);
		yaml_event_delete(&ev);
		if (!item)
			return 0;
		push(p->A, v, item);
		*size += n;
	}
}

typedef struct KeyRef {
	const char *str;
	int i;
} KeyRef;

static int keyref_cmp(const void *a, const void *b)
{
	const KeyRef *x = a, *y = b;
	int c = strcmp(x->str, y->str);
	return c ? c : x->i - y->i;
}

/* Reports every repeated key at its second and later occurrences, in source order.
 * Sorting keeps a mapping with many keys from costing n^2 comparisons. */
static void check_dups(Parser *p, Spec *map)
{
	KeyRef *r = arena_alloc(p->A, (size_t)map->n * sizeof *r);
	int *first = arena_alloc(p->A, (size_t)map->n * sizeof *first);
	int n = 0;
	for (int i = 0; i < map->n; i++) {
		first[i] = -1;
		if (map->keys[i]->kind == SPEC_SCALAR)
			r[n++] = (KeyRef){map->keys[i]->str, i};
	}
	qsort(r, (size_t)n, sizeof *r, keyref_cmp);
	for (int i = 1, g = 0; i < n; i++) {
		if (strcmp(r[i].str, r[g].str))
			g = i;
		else
			first[r[i].i] = r[g].i;
	}
	for (int i = 0; i < map->n; i++)
		if (first[i] >= 0)
			error_at(p->d, map->keys[i]->loc,
			         "duplicate key '%s' (first at line %d)",
			         map->keys[i]->str, map->keys[first[i]]->loc.line);
}

static Spec *collection(Parser *p, yaml_event_t *ev, SpecKind kind, int64_t *size)
{
	Spec *s = new_node(p, kind, ev->start_mark);
	if (!s || !enter(p, ev->start_mark))
		return NULL;
	Vec v = {0};
	if (!items(p, kind == SPEC_SEQ ? YAML_SEQUENCE_END_EVENT : YAML_MAPPING_END_EVENT,
	           &v, size))
		return NULL;
	p->depth--;
	if (kind == SPEC_SEQ) {
		s->n = v.n;
		s->items = v.v;
		return s;
	}
	/* libyaml gives keys and values alternately, an empty scalar for a missing value
	 */
	s->n = v.n / 2;
	s->keys = arena_alloc(p->A, (size_t)s->n * sizeof *s->keys);
	s->items = arena_alloc(p->A, (size_t)s->n * sizeof *s->items);
	for (int i = 0; i < s->n; i++) {
		s->keys[i] = v.v[2 * i];
		s->items[i] = v.v[2 * i + 1];
		if (s->keys[i]->kind != SPEC_SCALAR)
			error_at(p->d, s->keys[i]->loc,
			         "a mapping key must be a scalar, found a %s",
			         spec_kind_name(s->keys[i]->kind));
		else if (!s->keys[i]->quoted && !strcmp(s->keys[i]->str, "<<"))
			error_at(
			    p->d, s->keys[i]->loc,
			    "merge keys ('<<') are not supported; write the keys out "
			    "(an alias '*name' repeats a whole value)");
	}
	check_dups(p, s);
	return s;
}

static Spec *node(Parser *p, yaml_event_t *ev, int64_t *size)
{
	const yaml_char_t *anchor;
	Spec *s;
	*size = 1;
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		return alias(p, ev, size);
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		s = scalar(p, ev);
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		s = collection(p, ev, SPEC_SEQ, size);
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		s = collection(p, ev, SPEC_MAP, size);
		break;
	default:
		die("libyaml gave event %d where a node should start", ev->type);
	}
	/* registered only once complete, so a node cannot contain an alias to itself */
	if (s && anchor)
		anchor_put(p, (const char *)anchor, s, *size);
	return s;
}

/* The root of the stream's one document. */
static Spec *document(Parser *p)
{
	yaml_event_t ev;
	SrcLoc whole = {p->file, 0, 0};
	if (!next(p, &ev)) /* stream start */
		return NULL;
	yaml_event_delete(&ev);
	if (!next(p, &ev))
		return NULL;
	int empty = ev.type != YAML_DOCUMENT_START_EVENT;
	yaml_event_delete(&ev);
	if (empty) {
		error_at(p->d, whole, "empty model file");
		return NULL;
	}
	if (!next(p, &ev))
		return NULL;
	int64_t size;
	Spec *root = node(p, &ev, &size);
	yaml_event_delete(&ev);
	if (!root || !next(p, &ev)) /* document end: errors in trailing text */
		return NULL;
	yaml_event_delete(&ev);
	if (!next(p, &ev)) /* stream end, or another document that was ignored */
		return NULL;
	if (ev.type == YAML_DOCUMENT_START_EVENT)
		error_at(p->d, loc_of(p, ev.start_mark),
		         "a second YAML document; a model file holds one");
	yaml_event_delete(&ev);
	if (root->kind == SPEC_SCALAR && !root->quoted && !root->str[0]) {
		error_at(p->d, whole, "empty model file");
		return NULL;
	}
	return root;
}

Spec *spec_parse(Arena *A, Diags *d, const char *file, const char *text, size_t len)
{
	int nerr = d->nerr;
	diag_source(d, file, text, len);
	if (len > MAX_FILE) {
		error_at(d, (SrcLoc){file, 0, 0}, "model file is larger than %d MiB",
		         MAX_FILE >> 20);
		return NULL;
	}
	Parser p = {.A = A, .d = d, .text = text, .len = len};
	p.file = file ? arena_strdup(A, file) : NULL;
	if (!yaml_parser_initialize(&p.yp))
		die("out of memory in libyaml");
	yaml_parser_set_input_string(&p.yp, (const unsigned char *)text, len);
	Spec *root = document(&p);
	yaml_parser_delete(&p.yp);
	return d->nerr > nerr ? NULL : root;
}

Spec *spec_load(Arena *A, Diags *d, const char *path)
{
	SrcLoc loc = {path, 0, 0};
	FILE *f = fopen(path, "rb");
	if (!f) {
		error_at(d, loc, "cannot open model file: %s", strerror(errno));
		return NULL;
	}
	/* read at most one byte past the limit, in a buffer that doubles */
	size_t cap = 64 * 1024, len = 0, n;
	char *buf = arena_alloc(A, cap);
	do {
		if (len == cap) {
			size_t ncap = 2 * cap < (size_t)MAX_FILE + 1
			                  ? 2 * cap
			                  : (size_t)MAX_FILE + 1;
			char *nb = arena_alloc(A, ncap);
			memcpy(nb, buf, len);
			buf = nb;
			cap = ncap;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0 && len <= (size_t)MAX_FILE);
	int err = ferror(f) ? errno : 0;
	fclose(f);
	if (err) {
		error_at(d, loc, "cannot read model file: %s", strerror(err));
		return NULL;
	}
	if (len > (size_t)MAX_FILE) {
		error_at(d, loc, "model file is larger than %d MiB", MAX_FILE >> 20);
		return NULL;
	}
	return spec_parse(A, d, path, buf, len);
}

/* ---------------- typed access ---------------- */

const char *spec_kind_name(SpecKind k)
{
	return k == SPEC_SCALAR ? "scalar" : k == SPEC_SEQ ? "list" : "mapping";
}

const char *spec_describe(const Spec *s, char *buf, size_t len)
{
	if (!s || (s->kind == SPEC_SCALAR && !s->quoted && !s->str[0]))
		return "nothing";
	if (s->kind != SPEC_SCALAR) {
		snprintf(buf, len, "a %s", spec_kind_name(s->kind));
		return buf;
	}
	char text[48];
	size_t n = 0;
	for (const char *c = s->str; *c && n < sizeof text - 1; c++)
		text[n++] = (unsigned char)*c < ' ' ? ' ' : *c;
	text[n] = 0;
	if (s->str[n] && n >= 3) /* cut short: the loop stopped at the buffer's end */
		memcpy(text + n - 3, "...", 4);
	snprintf(buf, len, s->quoted ? "the string \"%s\"" : "'%s'", text);
	return buf;
}

Spec *spec_get(const Spec *map, const char *key)
{
	if (!map || map->kind != SPEC_MAP)
		return NULL;
	for (int i = 0; i < map->n; i++)
		if (map->keys[i]->kind == SPEC_SCALAR && !strcmp(map->keys[i]->str, key))
			return map->items[i];
	return NULL;
}

int spec_expect(Diags *d, const Spec *s, SpecKind kind, const char *what)
{
	check(s);
	if (s->kind == kind)
		return 0;
	char buf[80];
	/* what is a key ('inputs') or a description that quotes its own name (input
	 * 'x'), not to be quoted again */
	int q = !strchr(what, '\'');
	error_at(d, s->loc, "expected a %s for %s%s%s, found %s", spec_kind_name(kind),
	         q ? "'" : "", what, q ? "'" : "", spec_describe(s, buf, sizeof buf));
	return -1;
}

/* Plain decimal integer text, optionally signed; 0 if not one or out of int64. */
static int parse_int(const char *s, int64_t *out)
{
	const char *p = s + (*s == '-' || *s == '+');
	if (!*p)
		return 0;
	for (const char *c = p; *c; c++)
		if (*c < '0' || *c > '9')
			return 0;
	errno = 0;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (errno || *end)
		return 0;
	*out = v;
	return 1;
}

int spec_int(Diags *d, const Spec *s, const char *what, int64_t min, int64_t max,
             int64_t *out)
{
	check(s);
	int64_t v;
	if (s->kind == SPEC_SCALAR && !s->quoted && parse_int(s->str, &v) && v >= min &&
	    v <= max) {
		*out = v;
		return 0;
	}
	char buf[80];
	error_at(d, s->loc, "'%s' must be an integer from %lld to %lld, got %s", what,
	         (long long)min, (long long)max, spec_describe(s, buf, sizeof buf));
	return -1;
}

/* A finite decimal in [n, end): digits with an optional point and exponent. No inf,
 * nan, hex floats or anything else strtod would also take. */
static int parse_dec(const char *s, const char *end, double *out)
{
	while (s < end && *s == ' ')
		s++;
	while (end > s && end[-1] == ' ')
		end--;
	const char *p = s + (s < end && (*s == '-' || *s == '+'));
	int digits = 0;
	for (; p < end && *p >= '0' && *p <= '9'; p++)
		digits++;
	if (p < end && *p == '.')
		for (p++; p < end && *p >= '0' && *p <= '9'; p++)
			digits++;
	if (!digits)
		return 0;
	if (p < end && (*p == 'e' || *p == 'E')) {
		p += 1 + (p + 1 < end && (p[1] == '-' || p[1] == '+'));
		if (p >= end || *p < '0' || *p > '9')
			return 0;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p != end || end - s > 64)
		return 0;
	char tmp[72];
	memcpy(tmp, s, (size_t)(end - s));
	tmp[end - s] = 0;
	*out = strtod(tmp, NULL);
	return isfinite(*out);
}

static int parse_num(const char *s, double *out)
{
	const char *slash = strchr(s, '/');
	const char *end = s + strlen(s);
	if (!slash)
		return parse_dec(s, end, out);
	double a, b;
	if (!parse_dec(s, slash, &a) || !parse_dec(slash + 1, end, &b) || b == 0)
		return 0;
	*out = a / b;
	return isfinite(*out);
}

int spec_num(Diags *d, const Spec *s, const char *what, double min, double max,
             double *out)
{
	check(s);
	double v;
	if (s->kind == SPEC_SCALAR && !s->quoted && parse_num(s->str, &v) && v >= min &&
	    v <= max) {
		*out = v;
		return 0;
	}
	char buf[80];
	error_at(d, s->loc, "'%s' must be a number from %.15g to %.15g, got %s", what,
	         min, max, spec_describe(s, buf, sizeof buf));
	return -1;
}

static int eq_nocase(const char *a, const char *b)
{
	for (; *a && tolower((unsigned char)*a) == *b; a++, b++)
		;
	return !*a && !*b;
}

int bool_word(const char *s)
{
	return eq_nocase(s, "true") || eq_nocase(s, "yes")   ? 1
	       : eq_nocase(s, "false") || eq_nocase(s, "no") ? 0
	                                                     : -1;
}

int spec_bool(Diags *d, const Spec *s, const char *what, int *out)
{
	check(s);
	if (s->kind == SPEC_SCALAR && !s->quoted && bool_word(s->str) >= 0) {
		*out = bool_word(s->str);
		return 0;
	}
	char buf[80];
	error_at(d, s->loc, "'%s' must be true or false, got %s", what,
	         spec_describe(s, buf, sizeof buf));
	return -1;
}

int spec_str(Diags *d, const Spec *s, const char *what, const char **out)
{
	check(s);
	if (s->kind == SPEC_SCALAR && (s->quoted || s->str[0])) {
		*out = s->str;
		return 0;
	}
	char buf[80];
	error_at(d, s->loc, "expected a string for '%s', found %s", what,
	         spec_describe(s, buf, sizeof buf));
	return -1;
}

/* "a, b, c", cut short with "..." if it does not fit. */
static char *join(char *buf, size_t len, const char *const *names, int n)
{
	size_t used = 0;
	buf[0] = 0;
	for (int i = 0; i < n && used < len; i++) {
		int k = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", names[i]);
		used += (size_t)k;
	}
	if (used >= len && len > 4)
		memcpy(buf + len - 4, "...", 4);
	return buf;
}

int spec_enum(Diags *d, const Spec *s, const char *what, const char *const *names, int n,
              int *out)
{
	check(s);
	char list[256], buf[80];
	if (s->kind != SPEC_SCALAR || (!s->quoted && !s->str[0])) {
		error_at(d, s->loc, "'%s' must be one of: %s; found %s", what,
		         join(list, sizeof list, names, n),
		         spec_describe(s, buf, sizeof buf));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (!strcmp(s->str, names[i])) {
			*out = i;
			return 0;
		}
	}
	const char *guess = did_you_mean(s->str, names, n);
	if (guess)
		error_at(d, s->loc, "unknown %s '%s'; did you mean '%s'?", what, s->str,
		         guess);
	else
		error_at(d, s->loc, "unknown %s '%s'; expected one of: %s", what, s->str,
		         join(list, sizeof list, names, n));
	return -1;
}

static void unknown_key(Diags *d, const Spec *key, const char *what,
                        const char *const *allowed, int n)
{
	const char *guess = did_you_mean(key->str, allowed, n);
	char list[256];
	if (guess)
		error_at(d, key->loc, "unknown key '%s' in %s; did you mean '%s'?",
		         key->str, what, guess);
	else
		error_at(d, key->loc, "unknown key '%s' in %s; expected one of: %s",
		         key->str, what, join(list, sizeof list, allowed, n));
}

int spec_keys(Diags *d, const Spec *map, const char *what, const char *const *allowed)
{
	if (spec_expect(d, map, SPEC_MAP, what))
		return -1;
	int n = 0, nerr = d->nerr;
	while (allowed[n])
		n++;
	for (int i = 0; i < map->n; i++) {
		const Spec *key = map->keys[i];
		if (key->kind != SPEC_SCALAR) {
			error_at(d, key->loc,
			         "a mapping key must be a scalar, found a %s",
			         spec_kind_name(key->kind));
			continue;
		}
		int j = 0;
		while (j < n && strcmp(key->str, allowed[j]))
			j++;
		if (j == n) {
			unknown_key(d, key, what, allowed, n);
			continue;
		}
		/* the parser rejects duplicates already; this is for trees built by hand
		 */
		for (int k = 0; k < i; k++) {
			if (map->keys[k]->kind == SPEC_SCALAR &&
			    !strcmp(map->keys[k]->str, key->str)) {
				error_at(d, key->loc,
				         "duplicate key '%s' (first at line %d)",
				         key->str, map->keys[k]->loc.line);
				break;
			}
		}
	}
	return d->nerr > nerr ? -1 : 0;
}

Spec *spec_need(Diags *d, const Spec *map, const char *key, const char *what)
{
	if (spec_expect(d, map, SPEC_MAP, what))
		return NULL;
	Spec *v = spec_get(map, key);
	if (v)
		return v;
	/* a key said to be unknown, with this one as its suggestion ('t_max' for
	 * 'T_max'), is the one mistake: not said again as a missing key */
	char said[160];
	snprintf(said, sizeof said, "did you mean '%s'?", key);
	for (int i = 0; i < map->n; i++) {
		const Spec *k = map->keys[i];
		if (k->kind != SPEC_SCALAR || did_you_mean(k->str, &key, 1) != key)
			continue;
		for (int j = 0; j < d->n; j++)
			if (d->v[j].sev == SEV_ERROR && strstr(d->v[j].msg, said) &&
			    d->v[j].loc.line == k->loc.line &&
			    d->v[j].loc.col == k->loc.col &&
			    (d->v[j].loc.file == k->loc.file ||
			     (d->v[j].loc.file && k->loc.file &&
			      !strcmp(d->v[j].loc.file, k->loc.file))))
				return NULL;
	}
	error_at(d, map->loc, "missing key '%s' in %s", key, what);
	return NULL;
}
