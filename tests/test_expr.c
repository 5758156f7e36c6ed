/* Expressions in model files (expr.c): precedence and associativity, shown as the
 * shape of the tree (an s-expression) and as normalized text that parses back to the
 * same tree; calls, lists, names and numbers; the location of every inner node; a table
 * of broken expressions, each rejected with one error whose text and line:col are
 * asserted; the limits; expressions taken from a parsed YAML file; and a random-input
 * loop that must always give a tree or exactly one error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc.h"
#include "tests.h"

/* ---- helpers ---- */

typedef struct T {
	Arena *A;
	Diags d;
} T;

static void begin(T *t)
{
	t->A = arena_new();
	t->d = (Diags){0};
}

static void end(T *t)
{
	diags_free(&t->d);
	arena_free(t->A);
}

static Expr *parse_at(T *t, const char *text, int line, int col)
{
	return expr_parse(t->A, &t->d, text, (SrcLoc){"t.yaml", line, col});
}

static Expr *parse(T *t, const char *text) { return parse_at(t, text, 1, 1); }

static const char *op_name(int op)
{
	switch (op) {
	case '+':
		return "+";
	case '-':
		return "-";
	case '*':
		return "*";
	case '/':
		return "/";
	case '^':
		return "^";
	case '<':
		return "<";
	case '>':
		return ">";
	case 'l':
		return "<=";
	case 'g':
		return ">=";
	case '=':
		return "==";
	default:
		return "?";
	}
}

typedef struct Sx {
	char buf[8192];
	size_t n;
} Sx;

static void sx_add(Sx *s, const char *a, const char *b)
{
	int k = snprintf(s->buf + s->n, sizeof s->buf - s->n, "%s%s", a, b);
	s->n += (size_t)k < sizeof s->buf - s->n ? (size_t)k : sizeof s->buf - s->n - 1;
}

/* The tree as an s-expression: "(+ (* a b) c)", "(neg x)", "(call f x k=1)", "[a b]". */
static void sx_put(Sx *s, const Expr *e)
{
	char num[32];
	switch (e->kind) {
	case EX_NUM:
		snprintf(num, sizeof num, "%g", e->num);
		sx_add(s, num, "");
		return;
	case EX_NAME:
		sx_add(s, e->name, "");
		return;
	case EX_NEG:
		sx_add(s, "(neg", "");
		break;
	case EX_BIN:
		sx_add(s, "(", op_name(e->op));
		break;
	case EX_CALL:
		sx_add(s, "(call ", e->name);
		break;
	case EX_LIST:
		sx_add(s, "[", "");
		break;
	}
	for (int i = 0; i < e->nargs; i++) {
		sx_add(s, i || e->kind != EX_LIST ? " " : "", "");
		sx_put(s, e->args[i]);
	}
	for (int i = 0; i < e->nkw; i++) {
		sx_add(s, " ", e->kwnames[i]);
		sx_add(s, "=", "");
		sx_put(s, e->kwargs[i]);
	}
	sx_add(s, e->kind == EX_LIST ? "]" : ")", "");
}

static const char *sx(const Expr *e)
{
	static Sx s;
	s.n = 0;
	s.buf[0] = 0;
	if (e)
		sx_put(&s, e);
	else
		sx_add(&s, "NULL", "");
	return s.buf;
}

static int same(const Expr *a, const Expr *b)
{
	if (a->kind != b->kind || a->nargs != b->nargs || a->nkw != b->nkw)
		return 0;
	if (a->kind == EX_NUM && (a->num != b->num || signbit(a->num) != signbit(b->num)))
		return 0;
	if ((a->kind == EX_NAME || a->kind == EX_CALL) && strcmp(a->name, b->name))
		return 0;
	if (a->kind == EX_BIN && a->op != b->op)
		return 0;
	for (int i = 0; i < a->nargs; i++)
		if (!same(a->args[i], b->args[i]))
			return 0;
	for (int i = 0; i < a->nkw; i++)
		if (strcmp(a->kwnames[i], b->kwnames[i]) ||
		    !same(a->kwargs[i], b->kwargs[i]))
			return 0;
	return 1;
}

/* e printed and parsed again gives the same tree and the same text. */
static int round_trips(T *t, const Expr *e)
{
	const char *s = expr_str(t->A, e);
	int nerr = t->d.nerr;
	Expr *again = parse(t, s);
	int ok = again && t->d.nerr == nerr && same(e, again) &&
	         !strcmp(expr_str(t->A, again), s);
	if (!ok)
		fprintf(stderr, "\n'%s' does not round-trip: %s\n", s, sx(again));
	return ok;
}

/* text parses to the tree `tree` and prints as `str` (NULL: as text itself). */
static int parses_to(const char *text, const char *tree, const char *str)
{
	T t;
	begin(&t);
	Expr *e = parse(&t, text);
	int ok = e && t.d.n == 0 && !strcmp(sx(e), tree);
	if (!ok)
		fprintf(stderr, "\n'%s': want %s, got %s\n", text, tree, sx(e));
	if (e) {
		const char *s = expr_str(t.A, e);
		if (strcmp(s, str ? str : text)) {
			fprintf(stderr, "\n'%s' prints as '%s', want '%s'\n", text, s,
			        str ? str : text);
			ok = 0;
		}
		ok = ok && round_trips(&t, e);
	}
	end(&t);
	return ok;
}

/* ---- precedence and associativity ---- */

static void test_expr_precedence_and_associativity(void)
{
	CU_ASSERT(parses_to("-x^2", "(neg (^ x 2))", NULL));
	CU_ASSERT(parses_to("-2^2", "(neg (^ 2 2))", NULL));
	CU_ASSERT(parses_to("2^3^2", "(^ 2 (^ 3 2))", NULL));
	CU_ASSERT(parses_to("(2^3)^2", "(^ (^ 2 3) 2)", NULL));
	CU_ASSERT(parses_to("2 ^ -1", "(^ 2 -1)", "2^-1"));
	CU_ASSERT(parses_to("x ** 2 ** y", "(^ x (^ 2 y))", "x^2^y"));
	CU_ASSERT(parses_to("a^-b^c", "(^ a (neg (^ b c)))", NULL));
	CU_ASSERT(parses_to("a - b - c", "(- (- a b) c)", NULL));
	CU_ASSERT(parses_to("a - (b - c)", "(- a (- b c))", NULL));
	CU_ASSERT(parses_to("a / b / c", "(/ (/ a b) c)", NULL));
	CU_ASSERT(parses_to("a / (b * c)", "(/ a (* b c))", NULL));
	CU_ASSERT(parses_to("a * b + c", "(+ (* a b) c)", NULL));
	CU_ASSERT(parses_to("a + b * c", "(+ a (* b c))", NULL));
	CU_ASSERT(parses_to("(a + b) * c", "(* (+ a b) c)", NULL));
	CU_ASSERT(parses_to("-(a + b)", "(neg (+ a b))", NULL));
	CU_ASSERT(parses_to("-a * b", "(* (neg a) b)", NULL));
	CU_ASSERT(parses_to("a * -b", "(* a (neg b))", NULL));
	CU_ASSERT(parses_to("a - -2", "(- a -2)", NULL));
	CU_ASSERT(parses_to("- - x", "(neg (neg x))", "--x"));
	CU_ASSERT(parses_to("+x", "x", "x"));
	CU_ASSERT(parses_to("(-x)^2", "(^ (neg x) 2)", NULL));
	CU_ASSERT(parses_to("(-2)^2", "(^ -2 2)", NULL));
	CU_ASSERT(parses_to("a < b + 1", "(< a (+ b 1))", NULL));
	CU_ASSERT(parses_to("a+1 >= b*2", "(>= (+ a 1) (* b 2))", "a + 1 >= b * 2"));
	CU_ASSERT(parses_to("a <= b", "(<= a b)", NULL));
	CU_ASSERT(parses_to("a == b", "(== a b)", NULL));
	CU_ASSERT(parses_to("a > b", "(> a b)", NULL));
	CU_ASSERT(parses_to("(a < b) == c", "(== (< a b) c)", NULL));
	CU_ASSERT(parses_to("((a))", "a", "a"));
	CU_ASSERT(parses_to("(1 - x)^2 + 100*(y - x^2)^2",
	                    "(+ (^ (- 1 x) 2) (* 100 (^ (- y (^ x 2)) 2)))",
	                    "(1 - x)^2 + 100 * (y - x^2)^2"));
}

static void test_expr_ops_are_stored_as_documented(void)
{
	static const struct {
		const char *text;
		int op;
	} cases[] = {{"a+b", '+'},  {"a-b", '-'},  {"a*b", '*'}, {"a/b", '/'},
	             {"a^b", '^'},  {"a**b", '^'}, {"a<b", '<'}, {"a>b", '>'},
	             {"a<=b", 'l'}, {"a>=b", 'g'}, {"a==b", '='}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		T t;
		begin(&t);
		Expr *e = parse(&t, cases[i].text);
		CU_ASSERT_FATAL(e != NULL);
		CU_ASSERT_EQUAL(e->kind, EX_BIN);
		CU_ASSERT_EQUAL(e->op, cases[i].op);
		CU_ASSERT_EQUAL(e->nargs, 2);
		end(&t);
	}
}

/* ---- calls, lists, names, numbers ---- */

static void test_expr_calls_with_keyword_arguments(void)
{
	T t;
	begin(&t);
	Expr *e = parse(&t, "dense(image, units=128, activation=relu)");
	CU_ASSERT_FATAL(e != NULL);
	CU_ASSERT_EQUAL(e->kind, EX_CALL);
	CU_ASSERT_STRING_EQUAL(e->name, "dense");
	CU_ASSERT_EQUAL_FATAL(e->nargs, 1);
	CU_ASSERT(e->args[0]->kind == EX_NAME && !strcmp(e->args[0]->name, "image"));
	CU_ASSERT_EQUAL_FATAL(e->nkw, 2);
	CU_ASSERT_STRING_EQUAL(e->kwnames[0], "units");
	CU_ASSERT(e->kwargs[0]->kind == EX_NUM && e->kwargs[0]->num == 128);
	CU_ASSERT_STRING_EQUAL(e->kwnames[1], "activation");
	CU_ASSERT_STRING_EQUAL(e->kwargs[1]->name, "relu");
	CU_ASSERT_STRING_EQUAL(expr_str(t.A, e),
	                       "dense(image, units=128, activation=relu)");
	end(&t);

	CU_ASSERT(parses_to("relu(h1+h2)", "(call relu (+ h1 h2))", "relu(h1 + h2)"));
	CU_ASSERT(parses_to("f()", "(call f)", NULL));
	CU_ASSERT(parses_to("f(k=1)", "(call f k=1)", NULL));
	CU_ASSERT(parses_to("f(a, b,)", "(call f a b)", "f(a, b)"));
	CU_ASSERT(parses_to("f(x, axis = -1)", "(call f x axis=-1)", "f(x, axis=-1)"));
	CU_ASSERT(parses_to("f(a == b, k=c <= d)", "(call f (== a b) k=(<= c d))", NULL));
	CU_ASSERT(parses_to("conv(x, kernel=[3, 3], padding='same', stride=(2, 2))",
	                    "(call conv x kernel=[3 3] padding=same stride=[2 2])",
	                    "conv(x, kernel=[3, 3], padding=same, stride=[2, 2])"));
	CU_ASSERT(
	    parses_to("f(g(x), h(y, k=2))", "(call f (call g x) (call h y k=2))", NULL));
	CU_ASSERT(parses_to("relu (x)", "(call relu x)", "relu(x)"));
}

static void test_expr_lists_and_tuples(void)
{
	CU_ASSERT(parses_to("[5,5]", "[5 5]", "[5, 5]"));
	CU_ASSERT(parses_to("(5, 5)", "[5 5]", "[5, 5]"));
	CU_ASSERT(parses_to("[]", "[]", NULL));
	CU_ASSERT(parses_to("(a,)", "[a]", "[a]"));
	CU_ASSERT(parses_to("[a + 1, [b], []]", "[(+ a 1) [b] []]", NULL));
	CU_ASSERT(parses_to("(a)", "a", "a"));
	CU_ASSERT(parses_to("[1, 2,]", "[1 2]", "[1, 2]"));
}

static void test_expr_names_dotted_and_quoted(void)
{
	CU_ASSERT(parses_to("fc1.weight * 2", "(* fc1.weight 2)", NULL));
	CU_ASSERT(parses_to("bn1.running_mean", "bn1.running_mean", NULL));
	CU_ASSERT(parses_to("layers.0.bias", "layers.0.bias", NULL));
	CU_ASSERT(parses_to("_x9", "_x9", NULL));
	CU_ASSERT(parses_to("'same'", "same", "same"));
	CU_ASSERT(parses_to("\"same\"", "same", "same"));
	CU_ASSERT(parses_to("'two words'", "two words", NULL));
	CU_ASSERT(parses_to("\"it's\"", "it's", NULL));
	CU_ASSERT(parses_to("'3x'", "3x", NULL));

	T t;
	begin(&t);
	Expr *a = parse(&t, "f(padding='same')"), *b = parse(&t, "f(padding=same)");
	CU_ASSERT_FATAL(a && b);
	CU_ASSERT(same(a, b));
	CU_ASSERT_EQUAL(a->kwargs[0]->kind, EX_NAME);
	end(&t);
}

static void test_expr_numbers(void)
{
	static const struct {
		const char *text;
		double v;
		const char *str;
	} cases[] = {
	    {"3", 3, "3"},
	    {"0.5", 0.5, "0.5"},
	    {".5", 0.5, "0.5"},
	    {"1e-4", 1e-4, "0.0001"},
	    {"2.5E+3", 2500, "2500"},
	    {"1.", 1, "1"},
	    {"007", 7, "7"},
	    {"-3", -3, "-3"},
	    {"0.1", 0.1, "0.1"},
	    {"1e300", 1e300, "1e+300"},
	    {"0.30000000000000004", 0.30000000000000004, "0.30000000000000004"},
	    {"-0", -0.0, "-0"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		T t;
		begin(&t);
		Expr *e = parse(&t, cases[i].text);
		CU_ASSERT_FATAL(e != NULL);
		CU_ASSERT_EQUAL(e->kind, EX_NUM);
		CU_ASSERT(e->num == cases[i].v);
		CU_ASSERT_STRING_EQUAL(expr_str(t.A, e), cases[i].str);
		CU_ASSERT(round_trips(&t, e));
		end(&t);
	}
	T t;
	begin(&t);
	Expr third = {.kind = EX_NUM, .num = 1.0 / 3}; /* needs all 17 digits */
	CU_ASSERT_EQUAL(strtod(expr_str(t.A, &third), NULL), 1.0 / 3);
	end(&t);
}

/* ---- locations ---- */

static int at(const Expr *e, int line, int col)
{
	int ok = e && e->loc.line == line && e->loc.col == col && e->loc.file &&
	         !strcmp(e->loc.file, "t.yaml");
	if (!ok && e)
		fprintf(stderr, "\n%s at %d:%d, want %d:%d\n", sx(e), e->loc.line,
		        e->loc.col, line, col);
	return ok;
}

static void test_expr_locations_of_inner_nodes(void)
{
	T t;
	begin(&t);
	/* col 10: dense, 16: x, 25: 128, 30: +, 32: w.b */
	Expr *e = parse_at(&t, "dense(x, units=128) + w.b", 3, 10);
	CU_ASSERT_FATAL(e != NULL);
	CU_ASSERT(at(e, 3, 10));
	CU_ASSERT(at(e->args[0], 3, 10));
	CU_ASSERT(at(e->args[0]->args[0], 3, 16));
	CU_ASSERT(at(e->args[0]->kwargs[0], 3, 25));
	CU_ASSERT(at(e->args[1], 3, 32));

	/* col 10: -, 11: (, 12: a, 16: [, 17: -, 21: (, 25: q */
	e = parse_at(&t, "-(a * [-1, (p, q)])", 3, 10);
	CU_ASSERT_FATAL(e != NULL && e->kind == EX_NEG);
	CU_ASSERT(at(e, 3, 10));
	Expr *mul = e->args[0];
	CU_ASSERT(at(mul, 3, 12)); /* a binary node: at its left operand */
	CU_ASSERT(at(mul->args[1], 3, 16));
	CU_ASSERT(at(mul->args[1]->args[0], 3, 17)); /* -1, from its minus sign */
	CU_ASSERT(at(mul->args[1]->args[1], 3, 21));
	CU_ASSERT(at(mul->args[1]->args[1]->args[1], 3, 25));

	/* a newline in the text starts a new line at col 1 */
	e = parse_at(&t, "a +\n  f(\tb)", 3, 10);
	CU_ASSERT_FATAL(e != NULL);
	CU_ASSERT(at(e->args[0], 3, 10));
	CU_ASSERT(at(e->args[1], 4, 3));
	CU_ASSERT(at(e->args[1]->args[0], 4, 6));
	CU_ASSERT_EQUAL(t.d.n, 0);
	end(&t);
}

/* ---- errors ---- */

typedef struct Case {
	const char *text;
	const char *msg;
	int line, col;
} Case;

/* text is rejected with exactly one error containing msg at line:col (from 1:1). */
static int rejects(const Case *c)
{
	T t;
	begin(&t);
	Expr *e = parse(&t, c->text);
	const Diag *g = t.d.n ? &t.d.v[0] : NULL;
	int ok = !e && t.d.n == 1 && t.d.nerr == 1 && strstr(g->msg, c->msg) &&
	         g->loc.line == c->line && g->loc.col == c->col && g->loc.file &&
	         !strcmp(g->loc.file, "t.yaml");
	if (!ok) {
		fprintf(stderr,
		        "\n--- '%s': expected %d:%d: %s\n--- got %s, %d errors:\n",
		        c->text, c->line, c->col, c->msg, sx(e), t.d.n);
		diag_print(&t.d, stderr);
	}
	end(&t);
	return ok;
}

static void test_expr_errors_name_what_was_expected_and_where(void)
{
	static const Case cases[] = {
	    {"", "empty expression", 1, 1},
	    {"  \n ", "empty expression", 1, 1},
	    {"a $ b", "unexpected character '$' in expression", 1, 3},
	    {"a ! b", "unexpected character '!' in expression", 1, 3},
	    {"x\xc3\xa9", "unexpected byte 0xc3 in expression", 1, 2},
	    {"a +", "expected an expression after '+', found the end of the expression",
	     1, 4},
	    {"2 * * 3", "expected an expression after '*', found '*'", 1, 5},
	    {"a\n  + )", "expected an expression after '+', found ')'", 2, 5},
	    {")", "expected an expression, found ')'", 1, 1},
	    {"f(x,, y)", "expected an expression after ',', found ','", 1, 5},
	    {"f(k=)", "expected an expression after '=', found ')'", 1, 5},
	    {"relu(h1", "expected ')' to close '(' opened at col 5", 1, 8},
	    {"relu(\n  h1 + h2", "expected ')' to close '(' opened at line 1, col 5", 2,
	     10},
	    {"dense(x units=128)",
	     "expected ',' or ')' in the arguments of 'dense', found 'units'", 1, 9},
	    {"f(1=2)", "expected ',' or ')' in the arguments of 'f', found '='", 1, 4},
	    {"[1, 2", "expected ']' to close '[' opened at col 1", 1, 6},
	    {"[1 2]", "expected ',' or ']' in the list opened at col 1, found '2'", 1, 4},
	    {"[a=1]", "expected ',' or ']' in the list opened at col 1, found '='", 1, 3},
	    {"(a, b c)", "expected ',' or ')' in the tuple opened at col 1, found 'c'", 1,
	     7},
	    {"(a b)", "expected ')' to close '(' opened at col 1, found 'b'", 1, 4},
	    {"(a", "expected ')' to close '(' opened at col 1, found the end", 1, 3},
	    {"()", "'()' is not an expression", 1, 1},
	    {"a b", "unexpected 'b' after the end of the expression", 1, 3},
	    {"[1, 2]]", "unexpected ']' after the end of the expression", 1, 7},
	    {"f(x)(y)", "unexpected '(' after the end of the expression", 1, 5},
	    {"a = b",
	     "unexpected '=' after the end of the expression (did you mean '=='?)", 1, 3},
	    {"a 'b'", "unexpected 'b' after the end", 1, 3},
	    {"1e400", "number '1e400' is out of range (beyond 1.8e308, a double's)", 1,
	     1},
	    {"-1e400", "number '1e400' is out of range", 1, 2},
	    {"0x10", "malformed number '0x10'", 1, 1},
	    {"1.2.3", "malformed number '1.2.3'", 1, 1},
	    {"2e", "malformed number '2e'", 1, 1},
	    {"2e+ 1", "malformed number '2e'", 1, 1},
	    {"128units", "malformed number '128units'", 1, 1},
	    {"a < b < c", "comparisons do not chain", 1, 7},
	    {"a == b >= c", "comparisons do not chain", 1, 8},
	    {"f(units=1, x)",
	     "positional argument after keyword arguments in the call "
	     "of 'f'",
	     1, 12},
	    {"dense(x, units=1, units=2)",
	     "duplicate keyword argument 'units' in the call of 'dense'", 1, 19},
	    {"'same", "unterminated string: no closing '", 1, 1},
	    {"f(\"a)", "unterminated string: no closing \"", 1, 3},
	    {"fc1.", "expected a name after '.' in 'fc1.'", 1, 4},
	    {"fc1..w", "expected a name after '.' in 'fc1.'", 1, 4},
	    {"fc1.weight(x)", "only a plain name can be called, not 'fc1.weight'", 1, 1},
	    {"f(a.b=1)", "a keyword argument's name cannot be dotted: 'a.b'", 1, 3},
	    {".", "unexpected character '.' in expression", 1, 1},
	    {"a & b", "unexpected character '&'", 1, 3},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		CU_ASSERT(rejects(&cases[i]));
}

static void test_expr_errors_point_into_the_yaml_line(void)
{
	T t;
	begin(&t);
	CU_ASSERT_PTR_NULL(parse_at(&t, "relu(h1 +)", 7, 9));
	CU_ASSERT_EQUAL_FATAL(t.d.n, 1);
	CU_ASSERT(t.d.v[0].loc.line == 7 && t.d.v[0].loc.col == 18);
	end(&t);
}

static char *repeat(const char *prefix, int n, const char *middle, const char *suffix)
{
	size_t lp = strlen(prefix), ls = strlen(suffix), lm = strlen(middle);
	char *s = malloc((size_t)n * (lp + ls) + lm + 1), *p = s;
	for (int i = 0; i < n; i++, p += lp)
		memcpy(p, prefix, lp);
	memcpy(p, middle, lm);
	p += lm;
	for (int i = 0; i < n; i++, p += ls)
		memcpy(p, suffix, ls);
	*p = 0;
	return s;
}

/* 64 levels of prefix parse; 65 are an error at the 65th prefix, whose character at
 * offset off opens the level. */
static void check_depth(const char *prefix, int off, const char *middle,
                        const char *suffix)
{
	char *ok = repeat(prefix, 64, middle, suffix);
	char *deep = repeat(prefix, 65, middle, suffix);
	char msg[] = "expression nested deeper than 64 levels";
	Case c = {deep, msg, 1, 64 * (int)strlen(prefix) + off + 1};
	T t;
	begin(&t);
	Expr *e = parse(&t, ok);
	CU_ASSERT(e != NULL && t.d.n == 0);
	if (e)
		CU_ASSERT(round_trips(&t, e));
	end(&t);
	CU_ASSERT(rejects(&c));
	free(ok);
	free(deep);
}

static void test_expr_depth_limit(void)
{
	check_depth("(", 0, "x", ")");
	check_depth("[", 0, "x", "]");
	check_depth("f(", 1, "x", ")");
	check_depth("-", 0, "x", "");
	check_depth("2^", 1, "x", "");
	check_depth("(a, ", 0, "x", ")");
	check_depth("f(k=", 1, "x", ")");
}

static void test_expr_length_and_height_limits(void)
{
	/* 1000 terms make a tree of height 1000; 1001 are too many */
	char *ok = repeat("a+", 999, "a", ""), *tall = repeat("a+", 1000, "a", "");
	T t;
	begin(&t);
	CU_ASSERT_PTR_NOT_NULL(parse(&t, ok));
	CU_ASSERT_EQUAL(t.d.n, 0);
	end(&t);
	Case c = {tall, "expression has more than 1000 levels of operations", 1, 2000};
	CU_ASSERT(rejects(&c));
	free(ok);
	free(tall);

	char *big = repeat(" ", 64 * 1024 + 1, "", "");
	big[0] = 'x';
	Case c2 = {big, "expression is longer than 64 KiB", 1, 1};
	CU_ASSERT(rejects(&c2));
	big[64 * 1024] = 0; /* exactly 64 KiB is fine */
	begin(&t);
	CU_ASSERT_PTR_NOT_NULL(parse(&t, big));
	end(&t);
	free(big);

	/* the worst case within the limit: no crash, one error */
	char *minus = repeat("-", 64 * 1024, "", "");
	Case c3 = {minus, "nested deeper than 64 levels", 1, 65};
	CU_ASSERT(rejects(&c3));
	free(minus);
}

/* ---- from YAML ---- */

static void test_expr_from_spec_scalars_and_lists(void)
{
	static const char yaml[] = "nodes:\n"
	                           "  h1: dense(image, units=128, activation=relu)\n"
	                           "  out: \"relu(h1 + h2)\"\n"
	                           "  k: [5, 5]\n"
	                           "  pad: 'same'\n"
	                           "  m: {a: 1}\n"
	                           "  bad: \"relu(h1 +)\"\n"
	                           "  lr: 0.5\n"
	                           "  deep: [1, [x, {a: 2}]]\n"
	                           "  e:\n";
	T t;
	begin(&t);
	Spec *root = spec_parse(t.A, &t.d, "t.yaml", yaml, strlen(yaml));
	CU_ASSERT_FATAL(root != NULL);
	Spec *nodes = spec_get(root, "nodes");
	CU_ASSERT_FATAL(nodes != NULL);

	Expr *e = expr_from_spec(t.A, &t.d, spec_get(nodes, "h1"));
	CU_ASSERT(e && e->kind == EX_CALL && at(e, 2, 7) && at(e->args[0], 2, 13));
	e = expr_from_spec(t.A, &t.d, spec_get(nodes, "out"));
	CU_ASSERT_FATAL(e != NULL);
	CU_ASSERT_STRING_EQUAL(expr_str(t.A, e), "relu(h1 + h2)");
	CU_ASSERT(at(e, 3, 9) && at(e->args[0]->args[0], 3, 14));
	e = expr_from_spec(t.A, &t.d, spec_get(nodes, "k"));
	CU_ASSERT_FATAL(e != NULL);
	CU_ASSERT_STRING_EQUAL(sx(e), "[5 5]");
	CU_ASSERT(at(e, 4, 6) && at(e->args[0], 4, 7) && at(e->args[1], 4, 10));
	e = expr_from_spec(t.A, &t.d, spec_get(nodes, "pad"));
	CU_ASSERT(e && e->kind == EX_NAME && !strcmp(e->name, "same") && at(e, 5, 9));
	e = expr_from_spec(t.A, &t.d, spec_get(nodes, "lr"));
	CU_ASSERT(e && e->kind == EX_NUM && e->num == 0.5);
	CU_ASSERT_EQUAL(t.d.n, 0);

	static const struct {
		const char *key, *msg;
		int line, col;
	} bad[] = {
	    {"m", "expected a value or an expression, found a mapping", 6, 6},
	    {"bad", "expected an expression after '+', found ')'", 7, 18},
	    {"deep", "expected a value or an expression, found a mapping", 9, 17},
	    {"e", "empty expression", 10, 5},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int n = t.d.n;
		CU_ASSERT_PTR_NULL(
		    expr_from_spec(t.A, &t.d, spec_get(nodes, bad[i].key)));
		CU_ASSERT_EQUAL_FATAL(t.d.n, n + 1);
		Diag *g = &t.d.v[n];
		CU_ASSERT_PTR_NOT_NULL(strstr(g->msg, bad[i].msg));
		if (g->loc.line != bad[i].line || g->loc.col != bad[i].col)
			fprintf(stderr, "\n%s: %d:%d %s\n", bad[i].key, g->loc.line,
			        g->loc.col, g->msg);
		CU_ASSERT(g->loc.line == bad[i].line && g->loc.col == bad[i].col);
	}
	end(&t);
}

/* ---- random input ---- */

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void test_expr_random_text_gives_a_tree_or_one_error(void)
{
	static const char *const pieces[] = {
	    "a",    "b1", "fc1.w", "f",     "relu",     "0",  "1",   "2.5", ".5",
	    "1e-4", "e",  "1e",    "9e999", "+",        "-",  "*",   "/",   "^",
	    "**",   "<",  ">",     "<=",    ">=",       "==", "=",   "(",   ")",
	    "[",    "]",  ",",     ".",     "'",        "\"", "'s'", " ",   "\n",
	    "\t",   "$",  "x=",    "k=1",   "\xc3\xa9",
	};
	int npieces = sizeof pieces / sizeof pieces[0];
	uint64_t seed = 0x9e3779b97f4a7c15u;
	int trees = 0, errors = 0, bad = 0;
	for (int iter = 0; iter < 20000; iter++) {
		char text[256] = "";
		int n = (int)(rng_next(&seed) % 16);
		for (int i = 0; i < n; i++)
			strcat(text, pieces[rng_next(&seed) % (uint64_t)npieces]);
		T t;
		begin(&t);
		Expr *e = parse(&t, text);
		if (e && t.d.n == 0) {
			trees++;
			if (!round_trips(&t, e))
				bad++;
		} else if (!e && t.d.n == 1 && t.d.nerr == 1) {
			errors++;
		} else {
			fprintf(stderr, "\n'%s': tree %s with %d diagnostics\n", text,
			        sx(e), t.d.n);
			bad++;
		}
		end(&t);
	}
	CU_ASSERT_EQUAL(bad, 0);
	/* the generator reaches both outcomes */
	CU_ASSERT(trees > 100 && errors > 100);
}

/* A random tree of the shapes the parser makes (no minus sign over a number: that is
 * folded into the number). */
static Expr *random_tree(Arena *A, uint64_t *seed, int depth)
{
	static const char *const names[] = {"a", "fc1.w", "two words", "it's", "_"};
	static const int ops[] = {'+', '-', '*', '/', '^', '<', '>', 'l', 'g', '='};
	static const double nums[] = {0, 1, -2, 0.1, 1e-4, -1e300, 1.0 / 3};
	Expr *e = arena_alloc(A, sizeof *e);
	int k = depth > 4 ? (int)(rng_next(seed) % 2) : (int)(rng_next(seed) % 6);
	e->kind = (ExprKind)k;
	e->num = nums[rng_next(seed) % 7];
	e->name = k == EX_CALL ? "f" : names[rng_next(seed) % 5];
	e->op = ops[rng_next(seed) % 10];
	e->nargs = k == EX_BIN    ? 2
	           : k == EX_NEG  ? 1
	           : k >= EX_CALL ? (int)(rng_next(seed) % 3)
	                          : 0;
	e->nkw = k == EX_CALL ? (int)(rng_next(seed) % 2) : 0;
	e->args = arena_alloc(A, 2 * sizeof *e->args);
	for (int i = 0; i < e->nargs; i++) {
		do
			e->args[i] = random_tree(A, seed, depth + 1);
		while (k == EX_NEG && e->args[i]->kind == EX_NUM);
	}
	static const char *kwnames[] = {"k"};
	Expr **kwargs = arena_alloc(A, sizeof *kwargs);
	if (e->nkw)
		kwargs[0] = random_tree(A, seed, depth + 1);
	e->kwnames = kwnames;
	e->kwargs = kwargs;
	return e;
}

static void test_expr_random_trees_print_as_text_that_parses_back(void)
{
	uint64_t seed = 12345;
	int bad = 0;
	for (int iter = 0; iter < 5000; iter++) {
		T t;
		begin(&t);
		Expr *e = random_tree(t.A, &seed, 0);
		bad += !round_trips(&t, e);
		end(&t);
	}
	CU_ASSERT_EQUAL(bad, 0);
}

void suite_expr(void)
{
	static CU_TestInfo tests[] = {
	    {"test_expr_precedence_and_associativity",
	     test_expr_precedence_and_associativity},
	    {"test_expr_ops_are_stored_as_documented",
	     test_expr_ops_are_stored_as_documented},
	    {"test_expr_calls_with_keyword_arguments",
	     test_expr_calls_with_keyword_arguments},
	    {"test_expr_lists_and_tuples", test_expr_lists_and_tuples},
	    {"test_expr_names_dotted_and_quoted", test_expr_names_dotted_and_quoted},
	    {"test_expr_numbers", test_expr_numbers},
	    {"test_expr_locations_of_inner_nodes", test_expr_locations_of_inner_nodes},
	    {"test_expr_errors_name_what_was_expected_and_where",
	     test_expr_errors_name_what_was_expected_and_where},
	    {"test_expr_errors_point_into_the_yaml_line",
	     test_expr_errors_point_into_the_yaml_line},
	    {"test_expr_depth_limit", test_expr_depth_limit},
	    {"test_expr_length_and_height_limits", test_expr_length_and_height_limits},
	    {"test_expr_from_spec_scalars_and_lists",
	     test_expr_from_spec_scalars_and_lists},
	    {"test_expr_random_text_gives_a_tree_or_one_error",
	     test_expr_random_text_gives_a_tree_or_one_error},
	    {"test_expr_random_trees_print_as_text_that_parses_back",
	     test_expr_random_trees_print_as_text_that_parses_back},
	    CU_TEST_INFO_NULL,
	};
	add_suite("expr", tests);
}
