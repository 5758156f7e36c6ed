/* Expressions in model files: text -> Expr tree, and back to normalized text.
 *
 * A hand-written lexer and a recursive-descent parser that climbs precedence levels,
 * lowest first:
 *
 *   expr    := sum [cmp sum]               cmp: < > <= >= ==  (no chains: a < b < c)
 *   sum     := term {(+ | -) term}         left associative
 *   term    := unary {(* | /) unary}       left associative
 *   unary   := (- | +) unary | power       -x^2 is -(x^2)
 *   power   := atom [(^ | **) unary]       right associative: 2^3^2 is 2^(3^2); 2^-1
 *   atom    := number | name | name '(' args ')' | 'string' | "string"
 *            | '(' expr ')' | '(' expr ',' [items] ')' | '[' [items] ']'
 *   args    := positional arguments, then key=value ones; a trailing comma is allowed
 *
 * Numbers are decimal with an optional exponent (3, .5, 1e-4), never hex or inf. Names
 * are identifiers, optionally dotted (fc1.weight, layers.0.bias); a quoted string is a
 * name too, so padding='same' and padding=same are alike. A tuple (a, b) is a list. A
 * minus sign directly before a number is folded into it: "-1" is EX_NUM -1, which is
 * what an attribute such as axis=-1 wants; -(2^2) stays EX_NEG.
 *
 * Every node keeps the location of its first character (a binary node: that of its
 * left operand); the lexer counts lines and byte columns from where the text starts in
 * the YAML file. The first error is reported and parsing stops: every parse function
 * returns NULL after it. Hostile text is bounded: its length, the nesting of brackets
 * and unary operators, and the height of the tree (so that passes that recurse over it
 * stay shallow).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dc.h"

enum { MAX_TEXT = 64 * 1024, MAX_DEPTH = 64, MAX_HEIGHT = 1000, SNIP = 40 };

/* Token kinds: a one-character token is its character; the others are these. */
enum { T_NONE, T_EOF = 256, T_NUM, T_NAME, T_STR, T_LE, T_GE, T_EQ, T_POW, T_BAD };

typedef struct Tok {
	int kind;
	const char *s; /* the token's text, quotes included */
	int len;
	SrcLoc loc;
	double num; /* T_NUM */
} Tok;

typedef struct Parser {
	Arena *A;
	Diags *d;
	const char *p; /* next character to lex */
	SrcLoc at;     /* its location */
	const char *text;
	const int *pos; /* Spec.pos: each character's place, if set */
	Tok tok, prev;  /* the current token and the one before it */
	int depth;      /* open brackets and operators that recurse */
	int failed;
} Parser;

/* Positional and keyword arguments, or list items, while they are collected. */
typedef struct Items {
	Expr **pos;
	int npos, cappos;
	const char **kwn;
	Expr **kwv;
	SrcLoc *kwl;
	int nkw, capkwn, capkwv;
	int h; /* height of the tallest */
} Items;

/* Only the first error is recorded: the parser unwinds after it. */
__attribute__((format(printf, 3, 4))) static void err(Parser *p, SrcLoc loc,
                                                      const char *fmt, ...)
{
	if (p->failed)
		return;
	p->failed = 1;
	va_list ap;
	va_start(ap, fmt);
	diag_vadd(p->d, SEV_ERROR, loc, fmt, ap);
	va_end(ap);
}

/* Text quoted from the input, cut short if long. */
static const char *snip(Parser *p, const char *s, int len)
{
	if (len > SNIP)
		return arena_printf(p->A, "%.*s...", SNIP - 3, s);
	return arena_printf(p->A, "%.*s", len, s);
}

static const char *describe(Parser *p, const Tok *t)
{
	if (t->kind == T_EOF)
		return "the end of the expression";
	if (t->kind == T_STR) /* its quotes are part of its text */
		return snip(p, t->s, t->len);
	return arena_printf(p->A, "'%s'", snip(p, t->s, t->len));
}

/* "col 7", or "line 3, col 7" when that is not the line of `from`. */
static const char *where(Parser *p, SrcLoc loc, SrcLoc from)
{
	if (loc.line == from.line)
		return arena_printf(p->A, "col %d", loc.col);
	return arena_printf(p->A, "line %d, col %d", loc.line, loc.col);
}

/* ---------------- lexer ---------------- */

static int is_digit(int c) { return c >= '0' && c <= '9'; }

static int is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_ident(int c) { return is_alpha(c) || is_digit(c); }

static void step(Parser *p)
{
	if (p->pos) {
		size_t k = (size_t)(p->p + 1 - p->text);
		p->at.line = p->pos[2 * k], p->at.col = p->pos[2 * k + 1];
		p->p++;
		return;
	}
	if (*p->p == '\n') {
		p->at.line++;
		p->at.col = 1;
	} else {
		p->at.col++;
	}
	p->p++;
}

static void lex_number(Parser *p, Tok *t)
{
	int bad = 0;
	while (is_digit(*p->p))
		step(p);
	if (*p->p == '.')
		for (step(p); is_digit(*p->p);)
			step(p);
	if (*p->p == 'e' || *p->p == 'E') {
		const char *q = p->p + 1;
		q += *q == '+' || *q == '-';
		bad = !is_digit(*q);
		while (!bad && p->p < q)
			step(p);
		while (!bad && is_digit(*p->p))
			step(p);
	}
	if (bad || is_ident(*p->p) || *p->p == '.') {
		while (is_ident(*p->p) || *p->p == '.')
			step(p);
		err(p, t->loc, "malformed number '%s'",
		    snip(p, t->s, (int)(p->p - t->s)));
		t->kind = T_BAD;
		return;
	}
	char *text = arena_strndup(p->A, t->s, (size_t)(p->p - t->s));
	t->num = strtod(text, NULL);
	t->kind = T_NUM;
	if (isinf(t->num)) {
		err(p, t->loc, "number '%s' is out of range (beyond 1.8e308, a double's)",
		    snip(p, text, (int)strlen(text)));
		t->kind = T_BAD;
	}
}

static void lex_name(Parser *p, Tok *t)
{
	while (is_ident(*p->p))
		step(p);
	while (*p->p == '.') {
		if (!is_ident(p->p[1])) {
			err(p, p->at, "expected a name after '.' in '%s'",
			    snip(p, t->s, (int)(p->p + 1 - t->s)));
			step(p);
			t->kind = T_BAD;
			return;
		}
		for (step(p); is_ident(*p->p);)
			step(p);
	}
	t->kind = T_NAME;
}

static void lex_string(Parser *p, Tok *t)
{
	char quote = *p->p;
	for (step(p); *p->p && *p->p != quote;)
		step(p);
	if (!*p->p) {
		err(p, t->loc, "unterminated string: no closing %c", quote);
		t->kind = T_BAD;
		return;
	}
	step(p);
	t->kind = T_STR;
}

/* An operator or bracket; two-character ones first. */
static void lex_punct(Parser *p, Tok *t)
{
	static const struct {
		char s[3];
		int kind;
	} two[] = {{"**", T_POW}, {"<=", T_LE}, {">=", T_GE}, {"==", T_EQ}};
	for (size_t i = 0; i < sizeof two / sizeof two[0]; i++) {
		if (p->p[0] == two[i].s[0] && p->p[1] == two[i].s[1]) {
			step(p);
			step(p);
			t->kind = two[i].kind;
			return;
		}
	}
	int c = (unsigned char)*p->p;
	step(p);
	if (c == '^') {
		t->kind = T_POW;
	} else if (c && strchr("()[],=+-*/<>", c)) {
		t->kind = c;
	} else {
		if (c > ' ' && c < 127)
			err(p, t->loc, "unexpected character '%c' in expression", c);
		else
			err(p, t->loc, "unexpected byte 0x%02x in expression", c);
		t->kind = T_BAD;
	}
}

/* Moves to the next token. */
static void next(Parser *p)
{
	p->prev = p->tok;
	while (*p->p == ' ' || *p->p == '\t' || *p->p == '\n' || *p->p == '\r')
		step(p);
	Tok t = {.s = p->p, .loc = p->at};
	char c = *p->p;
	if (!c)
		t.kind = T_EOF;
	else if (is_digit(c) || (c == '.' && is_digit(p->p[1])))
		lex_number(p, &t);
	else if (is_alpha(c))
		lex_name(p, &t);
	else if (c == '\'' || c == '"')
		lex_string(p, &t);
	else
		lex_punct(p, &t);
	t.len = (int)(p->p - t.s);
	p->tok = t;
}

/* Whether the current token is the name of a keyword argument: name '=' (not '=='). */
static int at_keyword(Parser *p)
{
	if (p->tok.kind != T_NAME)
		return 0;
	const char *q = p->p;
	while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
		q++;
	return q[0] == '=' && q[1] != '=';
}

/* ---------------- parser ---------------- */

static Expr *expr(Parser *p, int *h);
static Expr *unary(Parser *p, int *h);

static Expr *node(Parser *p, ExprKind kind, SrcLoc loc)
{
	Expr *e = arena_alloc(p->A, sizeof *e);
	e->kind = kind;
	e->loc = loc;
	return e;
}

/* Counts one more level of nesting opened at loc; 0 past the limit. */
static int enter(Parser *p, SrcLoc loc)
{
	if (++p->depth <= MAX_DEPTH)
		return 1;
	err(p, loc, "expression nested deeper than %d levels", MAX_DEPTH);
	return 0;
}

/* Sets *h, the height of a node whose tallest child has height hchild. */
static int grow_height(Parser *p, int *h, int hchild, SrcLoc loc)
{
	*h = hchild + 1;
	if (*h <= MAX_HEIGHT)
		return 1;
	err(p, loc, "expression has more than %d levels of operations; split it up",
	    MAX_HEIGHT);
	return 0;
}

static void *grow(Arena *A, void *v, int n, int *cap, size_t size)
{
	if (n < *cap)
		return v;
	*cap = *cap ? 2 * *cap : 4;
	void *nv = arena_alloc(A, (size_t)*cap * size);
	if (n)
		memcpy(nv, v, (size_t)n * size);
	return nv;
}

static Expr *binary(Parser *p, int op, const Tok *optok, Expr *l, int *h, Expr *r, int hr)
{
	if (!grow_height(p, h, *h > hr ? *h : hr, optok->loc))
		return NULL;
	Expr *e = node(p, EX_BIN, l->loc);
	e->op = op;
	e->args = arena_alloc(p->A, 2 * sizeof *e->args);
	e->args[0] = l;
	e->args[1] = r;
	e->nargs = 2;
	return e;
}

static void expected_expr(Parser *p)
{
	if (p->prev.kind == T_NONE)
		err(p, p->tok.loc, "expected an expression, found %s",
		    describe(p, &p->tok));
	else
		err(p, p->tok.loc, "expected an expression after '%s', found %s",
		    snip(p, p->prev.s, p->prev.len), describe(p, &p->tok));
}

/* The error for a missing separator or closing bracket of the items opened by open. */
static int unclosed(Parser *p, int close, const Tok *open, const char *callee)
{
	const char *at = where(p, open->loc, p->tok.loc);
	const char *found = describe(p, &p->tok);
	if (p->tok.kind == T_EOF)
		err(p, p->tok.loc, "expected '%c' to close '%c' opened at %s", close,
		    *open->s, at);
	else if (callee)
		err(p, p->tok.loc,
		    "expected ',' or ')' in the arguments of '%s', found %s", callee,
		    found);
	else if (close == ']')
		err(p, p->tok.loc,
		    "expected ',' or ']' in the list opened at %s, found %s", at, found);
	else
		err(p, p->tok.loc,
		    "expected ',' or ')' in the tuple opened at %s, found %s", at, found);
	return 0;
}

static int keyword(Parser *p, Items *it, const char *callee)
{
	Tok name = p->tok;
	const char *s = snip(p, name.s, name.len);
	if (memchr(name.s, '.', (size_t)name.len)) {
		err(p, name.loc, "a keyword argument's name cannot be dotted: '%s'", s);
		return 0;
	}
	for (int i = 0; i < it->nkw; i++) {
		if ((int)strlen(it->kwn[i]) == name.len &&
		    !memcmp(it->kwn[i], name.s, (size_t)name.len)) {
			err(p, name.loc,
			    "duplicate keyword argument '%s' in the call of '%s'", s,
			    callee);
			return 0;
		}
	}
	next(p); /* the name */
	next(p); /* '=' */
	int h;
	Expr *v = expr(p, &h);
	if (!v)
		return 0;
	int cap = it->capkwv;
	it->kwn = grow(p->A, it->kwn, it->nkw, &it->capkwn, sizeof *it->kwn);
	it->kwv = grow(p->A, it->kwv, it->nkw, &it->capkwv, sizeof *it->kwv);
	it->kwl = grow(p->A, it->kwl, it->nkw, &cap, sizeof *it->kwl);
	it->kwl[it->nkw] = name.loc;
	it->kwn[it->nkw] = arena_strndup(p->A, name.s, (size_t)name.len);
	it->kwv[it->nkw++] = v;
	it->h = h > it->h ? h : it->h;
	return 1;
}

/* One argument of a call (callee set) or one item of a list or tuple. */
static int item(Parser *p, Items *it, const char *callee)
{
	if (callee && at_keyword(p))
		return keyword(p, it, callee);
	if (callee && it->nkw) {
		err(p, p->tok.loc,
		    "positional argument after keyword arguments in the call of '%s'",
		    callee);
		return 0;
	}
	int h;
	Expr *e = expr(p, &h);
	if (!e)
		return 0;
	it->pos = grow(p->A, it->pos, it->npos, &it->cappos, sizeof *it->pos);
	it->pos[it->npos++] = e;
	it->h = h > it->h ? h : it->h;
	return 1;
}

/* Items up to the bracket `close`, which it consumes. */
static int items(Parser *p, Items *it, int close, const Tok *open, const char *callee)
{
	while (p->tok.kind != close) {
		if (p->tok.kind == T_EOF)
			return unclosed(p, close, open, callee);
		if (!item(p, it, callee))
			return 0;
		if (p->tok.kind == ',')
			next(p);
		else if (p->tok.kind != close)
			return unclosed(p, close, open, callee);
	}
	next(p);
	return 1;
}

/* A call, list or tuple from its items. */
static Expr *collect(Parser *p, ExprKind kind, SrcLoc loc, Items *it, int *h)
{
	if (!grow_height(p, h, it->h, loc))
		return NULL;
	Expr *e = node(p, kind, loc);
	e->args = it->pos;
	e->nargs = it->npos;
	e->kwnames = it->kwn;
	e->kwargs = it->kwv;
	e->kwlocs = it->kwl;
	e->nkw = it->nkw;
	return e;
}

static Expr *call(Parser *p, const Tok *name, int *h)
{
	const char *callee = snip(p, name->s, name->len);
	if (memchr(name->s, '.', (size_t)name->len)) {
		err(p, name->loc, "only a plain name can be called, not '%s'", callee);
		return NULL;
	}
	Tok open = p->tok;
	Items it = {0};
	if (!enter(p, open.loc))
		return NULL;
	next(p);
	if (!items(p, &it, ')', &open, callee))
		return NULL;
	p->depth--;
	Expr *e = collect(p, EX_CALL, name->loc, &it, h);
	if (e)
		e->name = arena_strndup(p->A, name->s, (size_t)name->len);
	return e;
}

/* '(' expr ')' is grouping; with a comma at the top it is a tuple. */
static Expr *paren(Parser *p, int *h)
{
	Tok open = p->tok;
	if (!enter(p, open.loc))
		return NULL;
	next(p);
	if (p->tok.kind == ')') {
		err(p, open.loc, "'()' is not an expression; an empty list is []");
		return NULL;
	}
	Items it = {0};
	if (!item(p, &it, NULL))
		return NULL;
	if (p->tok.kind == ')') {
		next(p);
		p->depth--;
		*h = it.h;
		return it.pos[0];
	}
	if (p->tok.kind != ',') {
		err(p, p->tok.loc, "expected ')' to close '(' opened at %s, found %s",
		    where(p, open.loc, p->tok.loc), describe(p, &p->tok));
		return NULL;
	}
	next(p);
	if (!items(p, &it, ')', &open, NULL))
		return NULL;
	p->depth--;
	return collect(p, EX_LIST, open.loc, &it, h);
}

static Expr *list(Parser *p, int *h)
{
	Tok open = p->tok;
	Items it = {0};
	if (!enter(p, open.loc))
		return NULL;
	next(p);
	if (!items(p, &it, ']', &open, NULL))
		return NULL;
	p->depth--;
	return collect(p, EX_LIST, open.loc, &it, h);
}

static Expr *atom(Parser *p, int *h)
{
	Tok t = p->tok;
	Expr *e;
	*h = 1;
	switch (t.kind) {
	case T_NUM:
		next(p);
		e = node(p, EX_NUM, t.loc);
		e->num = t.num;
		e->text = arena_strndup(p->A, t.s, (size_t)t.len);
		return e;
	case T_NAME:
		next(p);
		if (p->tok.kind == '(')
			return call(p, &t, h);
		e = node(p, EX_NAME, t.loc);
		e->name = arena_strndup(p->A, t.s, (size_t)t.len);
		return e;
	case T_STR:
		next(p);
		e = node(p, EX_NAME, t.loc);
		e->name = arena_strndup(p->A, t.s + 1, (size_t)t.len - 2);
		return e;
	case '(':
		return paren(p, h);
	case '[':
		return list(p, h);
	default:
		expected_expr(p);
		return NULL;
	}
}

static Expr *power(Parser *p, int *h)
{
	Expr *base = atom(p, h);
	if (!base || p->tok.kind != T_POW)
		return base;
	Tok op = p->tok;
	if (!enter(p, op.loc))
		return NULL;
	next(p);
	int hr;
	Expr *ex = unary(p, &hr);
	if (!ex)
		return NULL;
	p->depth--;
	return binary(p, '^', &op, base, h, ex, hr);
}

static Expr *unary(Parser *p, int *h)
{
	Tok op = p->tok;
	if (op.kind != '-' && op.kind != '+')
		return power(p, h);
	if (!enter(p, op.loc))
		return NULL;
	next(p);
	Expr *x = unary(p, h);
	if (!x)
		return NULL;
	p->depth--;
	if (op.kind == '+')
		return x;
	if (x->kind == EX_NUM) {
		x->num = -x->num;
		x->text = arena_printf(p->A, "-%s", x->text);
		x->loc = op.loc;
		return x;
	}
	if (!grow_height(p, h, *h, op.loc))
		return NULL;
	Expr *e = node(p, EX_NEG, op.loc);
	e->args = arena_alloc(p->A, sizeof *e->args);
	e->args[0] = x;
	e->nargs = 1;
	return e;
}

/* Binary precedence levels, lowest first. */
enum { L_CMP, L_ADD, L_MUL, L_UNARY };

/* The EX_BIN op of token t at level, or 0 if it is no operator of that level. */
static int binop(const Tok *t, int level)
{
	int k = t->kind;
	switch (level) {
	case L_CMP:
		return k == '<' || k == '>' ? k
		       : k == T_LE          ? 'l'
		       : k == T_GE          ? 'g'
		       : k == T_EQ          ? '='
		                            : 0;
	case L_ADD:
		return k == '+' || k == '-' ? k : 0;
	default:
		return k == '*' || k == '/' ? k : 0;
	}
}

/* The operators of one level and the levels above it. */
static Expr *level(Parser *p, int lv, int *h)
{
	if (lv == L_UNARY)
		return unary(p, h);
	Expr *l = level(p, lv + 1, h);
	int op;
	while (l && (op = binop(&p->tok, lv))) {
		Tok optok = p->tok;
		next(p);
		int hr;
		Expr *r = level(p, lv + 1, &hr);
		if (!r)
			return NULL;
		l = binary(p, op, &optok, l, h, r, hr);
		if (l && lv == L_CMP && binop(&p->tok, L_CMP)) {
			err(p, p->tok.loc,
			    "comparisons do not chain: put parentheses "
			    "around one of them");
			return NULL;
		}
	}
	return l;
}

static Expr *expr(Parser *p, int *h) { return level(p, L_CMP, h); }

Expr *expr_parse(Arena *A, Diags *d, const char *text, SrcLoc at)
{
	return expr_parse_at(A, d, text, at, NULL);
}

Expr *expr_parse_at(Arena *A, Diags *d, const char *text, SrcLoc at, const int *pos)
{
	check(text);
	if (pos)
		at.line = pos[0], at.col = pos[1];
	if (strlen(text) > MAX_TEXT) {
		error_at(d, at, "expression is longer than %d KiB", MAX_TEXT / 1024);
		return NULL;
	}
	Parser p = {.A = A, .d = d, .p = text, .at = at, .text = text, .pos = pos};
	next(&p);
	if (p.tok.kind == T_EOF) {
		err(&p, at, "empty expression");
		return NULL;
	}
	int h;
	Expr *e = expr(&p, &h);
	if (e && p.tok.kind != T_EOF)
		err(&p, p.tok.loc, "unexpected %s after the end of the expression%s",
		    describe(&p, &p.tok),
		    p.tok.kind == '=' ? " (did you mean '=='?)" : "");
	return p.failed ? NULL : e;
}

/* YAML's not-a-number and infinities (.nan, -.inf, .Inf, ...): NAN or +-INFINITY; 0 for
 * any other text. */
static double yaml_special(const char *s)
{
	static const char *const names[] = {".nan", ".NaN", ".NAN",
	                                    ".inf", ".Inf", ".INF"};
	int sign = *s == '-' ? -1 : 1;
	s += *s == '-' || *s == '+';
	for (int i = 0; i < 6; i++)
		if (!strcmp(s, names[i]))
			return i < 3 ? (double)NAN : sign * (double)INFINITY;
	return 0;
}

Expr *expr_from_spec(Arena *A, Diags *d, const Spec *s)
{
	check(s);
	if (s->kind == SPEC_MAP) {
		error_at(d, s->loc, "expected a value or an expression, found a mapping");
		return NULL;
	}
	if (s->kind == SPEC_SCALAR) {
		SrcLoc at = s->loc;
		at.col += s->quoted; /* the text starts after the quote (else s->pos) */
		double special = s->quoted ? 0 : yaml_special(s->str);
		if (special != 0) {
			Expr *e = arena_alloc(A, sizeof *e);
			*e = (Expr){.kind = EX_NUM,
			            .loc = s->loc,
			            .num = special,
			            .text = s->str};
			return e;
		}
		return expr_parse_at(A, d, s->str, at, s->pos);
	}
	Expr *e = arena_alloc(A, sizeof *e);
	e->kind = EX_LIST;
	e->loc = s->loc;
	e->nargs = s->n;
	e->args = arena_alloc(A, (size_t)s->n * sizeof *e->args);
	for (int i = 0; i < s->n; i++)
		if (!(e->args[i] = expr_from_spec(A, d, s->items[i])))
			return NULL;
	return e;
}

/* ---------------- printing ---------------- */

typedef struct Text {
	Arena *A;
	char *s;
	size_t n, cap;
} Text;

static void put(Text *b, const char *s)
{
	size_t n = strlen(s);
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 64;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *ns = arena_alloc(b->A, cap);
		if (b->n)
			memcpy(ns, b->s, b->n);
		b->s = ns;
		b->cap = cap;
	}
	memcpy(b->s + b->n, s, n + 1);
	b->n += n;
}

/* Precedence of what an expression prints as, for parentheses. */
enum { P_CMP = 1, P_ADD, P_MUL, P_UNARY, P_POW, P_ATOM };

static int prec(const Expr *e)
{
	switch (e->kind) {
	case EX_NUM:
		return signbit(e->num) ? P_UNARY : P_ATOM;
	case EX_NEG:
		return P_UNARY;
	case EX_BIN:
		return e->op == '+' || e->op == '-'   ? P_ADD
		       : e->op == '*' || e->op == '/' ? P_MUL
		       : e->op == '^'                 ? P_POW
		                                      : P_CMP;
	default:
		return P_ATOM;
	}
}

static void put_num(Text *b, double v)
{
	char s[32];
	put(b, num_text(s, sizeof s, v));
}

/* Whether the lexer reads s back as one name, so that it needs no quotes. */
static int plain_name(const char *s)
{
	if (!is_alpha(*s))
		return 0;
	for (s++; *s; s++)
		if (!is_ident(*s) && !(*s == '.' && is_ident(s[1])))
			return 0;
	return 1;
}

static void put_name(Text *b, const char *s)
{
	const char *q = strchr(s, '\'') ? "\"" : "'";
	if (plain_name(s)) {
		put(b, s);
		return;
	}
	put(b, q);
	put(b, s);
	put(b, q);
}

static void print(Text *b, const Expr *e, int min);

static void print_items(Text *b, const Expr *e, const char *open, const char *close)
{
	put(b, open);
	for (int i = 0; i < e->nargs; i++) {
		put(b, i ? ", " : "");
		print(b, e->args[i], P_CMP);
	}
	for (int i = 0; i < e->nkw; i++) {
		put(b, i || e->nargs ? ", " : "");
		put(b, e->kwnames[i]);
		put(b, "=");
		print(b, e->kwargs[i], P_CMP);
	}
	put(b, close);
}

static void print_bin(Text *b, const Expr *e)
{
	static const char *const names[] = {
	    ['+'] = " + ", ['-'] = " - ", ['*'] = " * ",  ['/'] = " / ",  ['^'] = "^",
	    ['<'] = " < ", ['>'] = " > ", ['l'] = " <= ", ['g'] = " >= ", ['='] = " == "};
	int p = prec(e);
	/* left associative: the right operand binds tighter; ^ is the other way round,
	 * and its exponent may be a unary minus */
	int lmin = p == P_POW ? P_ATOM : p == P_CMP ? P_ADD : p;
	int rmin = p == P_POW ? P_UNARY : p + 1;
	check(e->op > 0 && e->op < (int)(sizeof names / sizeof names[0]) && names[e->op]);
	print(b, e->args[0], lmin);
	put(b, names[e->op]);
	print(b, e->args[1], rmin);
}

static void print(Text *b, const Expr *e, int min)
{
	int paren = prec(e) < min;
	put(b, paren ? "(" : "");
	switch (e->kind) {
	case EX_NUM:
		put_num(b, e->num);
		break;
	case EX_NAME:
		put_name(b, e->name);
		break;
	case EX_CALL:
		put(b, e->name);
		print_items(b, e, "(", ")");
		break;
	case EX_BIN:
		print_bin(b, e);
		break;
	case EX_NEG:
		put(b, "-");
		print(b, e->args[0], P_UNARY);
		break;
	case EX_LIST:
		print_items(b, e, "[", "]");
		break;
	}
	put(b, paren ? ")" : "");
}

char *expr_str(Arena *A, const Expr *e)
{
	check(e);
	Text b = {.A = A};
	put(&b, "");
	print(&b, e, P_CMP);
	return b.s;
}
