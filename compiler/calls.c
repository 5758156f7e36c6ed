/* Checking calls against their signatures: fun_args checks one call, written as a YAML
 * layer or in an expression, against its row of layers.c's table (found with
 * fun_lookup): the number of values, each setting's name (with "did you mean"), type
 * and range, and the required settings; each error is at its YAML line and column, and
 * what the number looked like in the file. It hands the builder typed values (KwVal).
 * fun_check does it for every call in an expression.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dc.h"

/* What the user wrote: a number as its source text (99999999999999999999, not 1e+20). */
static const char *quote(Arena *A, const Expr *e)
{
	if (e->kind == EX_NUM && e->text)
		return e->text;
	if (e->kind == EX_NEG && e->args[0]->kind == EX_NUM && e->args[0]->text)
		return arena_printf(A, "-%s", e->args[0]->text);
	return expr_str(A, e);
}

/* A number written as a literal, possibly negative. */
static int literal(const Expr *e, double *v)
{
	if (e->kind == EX_NUM) {
		*v = e->num;
		return 0;
	}
	if (e->kind == EX_NEG && e->args[0]->kind == EX_NUM) {
		*v = -e->args[0]->num;
		return 0;
	}
	return -1;
}

static int bad_value(Diags *d, Arena *A, const Kw *k, const Expr *e, const char *what)
{
	/* units: '3', a string (it said got ''3''): digits, sign, point, exponent */
	int decimal = e->kind == EX_NAME && e->name[0] &&
	              strspn(e->name, "0123456789+-.eE") == strlen(e->name) &&
	              strpbrk(e->name, "0123456789");
	if (decimal) {
		error_at(d, e->loc,
		         "'%s' must be %s, got the string '%s' (a number goes without "
		         "quotes)",
		         k->name, what, e->name);
		return -1;
	}
	error_at(d, e->loc, "'%s' must be %s, got '%s'", k->name, what, quote(A, e));
	return -1;
}

static int one_int(Diags *d, Arena *A, const Kw *k, const Expr *e, int64_t *out)
{
	double v;
	if (literal(e, &v) || v != floor(v) || v < k->lo || v > k->hi) {
		char what[96];
		snprintf(what, sizeof what, "an integer from %.0f to %.0f", k->lo, k->hi);
		return bad_value(d, A, k, e, what);
	}
	*out = (int64_t)v;
	return 0;
}

/* An integer or a list of them, at most max. */
static int ints(Diags *d, Arena *A, const Kw *k, const Expr *e, int max, KwVal *v)
{
	if (e->kind != EX_LIST) {
		v->n = 1;
		return one_int(d, A, k, e, &v->i[0]);
	}
	if (e->nargs < 1 || e->nargs > max) {
		error_at(d, e->loc,
		         "'%s' takes an integer or a list of 1 to %d of them, got %d",
		         k->name, max, e->nargs);
		return -1;
	}
	v->n = e->nargs;
	for (int i = 0; i < e->nargs; i++)
		if (one_int(d, A, k, e->args[i], &v->i[i]))
			return -1;
	return 0;
}

static int enum_value(Diags *d, const Kw *k, const Expr *e, KwVal *v)
{
	int n = 0;
	while (k->names[n])
		n++;
	const char *s = e->kind == EX_NAME ? e->name : NULL;
	if (s && k->type == K_BOOL && bool_word(s) >= 0) { /* (names: false, true) */
		v->e = bool_word(s);
		v->f = v->e;
		return 0;
	}
	for (int i = 0; s && i < n; i++)
		if (!strcmp(s, k->names[i])) {
			v->e = i;
			v->f = i;
			return 0;
		}
	const char *near = s ? did_you_mean(s, k->names, n) : NULL;
	if (near) {
		error_at(d, e->loc, "unknown %s '%s'; did you mean '%s'?", k->name, s,
		         near);
		return -1;
	}
	char list[256] = "";
	for (int i = 0; i < n; i++)
		snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
		         i ? ", " : "", k->names[i]);
	error_at(d, e->loc, "'%s' must be one of: %s", k->name, list);
	return -1;
}

static int padding_value(Diags *d, Arena *A, const Kw *k, const Expr *e, KwVal *v)
{
	if (e->kind == EX_NAME &&
	    (!strcmp(e->name, "same") || !strcmp(e->name, "valid"))) {
		v->e = e->name[0] == 's' ? 1 : 2;
		return 0;
	}
	if (e->kind == EX_NAME)
		return bad_value(d, A, k, e,
		                 "an integer, a list of 2 or 4, same or valid");
	if (ints(d, A, k, e, 4, v))
		return -1;
	if (v->n == 3) {
		error_at(d, e->loc,
		         "'%s' takes 1, 2 ([h, w]) or 4 ([top, bottom, left, right]) "
		         "integers, got 3",
		         k->name);
		return -1;
	}
	return 0;
}

static int shape_value(Diags *d, Arena *A, const Kw *k, const Expr *e, KwVal *v)
{
	if (e->kind != EX_LIST || e->nargs > MAXRANK)
		return bad_value(d, A, k, e, "a list of at most 6 integers");
	int holes = 0;
	v->n = e->nargs;
	for (int i = 0; i < e->nargs; i++) {
		double x;
		const Expr *it = e->args[i];
		if (literal(it, &x) || x != floor(x) || x > k->hi ||
		    (x < 1 && x != k->lo) || (x == -1 && holes++))
			return bad_value(d, A, k, it,
			                 k->lo < 0 ? "a positive integer or one -1"
			                           : "an integer in range");
		v->i[i] = (int64_t)x;
	}
	return 0;
}

static int kw_value(Diags *d, Arena *A, const Kw *k, const Expr *e, KwVal *v)
{
	v->set = 1;
	v->loc = e->loc;
	switch (k->type) {
	case K_INT:
		if (one_int(d, A, k, e, &v->i[0]))
			return -1;
		v->f = (double)v->i[0];
		v->n = 1;
		return 0;
	case K_NUM:
		if (literal(e, &v->f) || !isfinite(v->f) || v->f < k->lo ||
		    v->f > k->hi) {
			char what[96];
			snprintf(what, sizeof what, "a number from %g to %g", k->lo,
			         k->hi);
			return bad_value(d, A, k, e, what);
		}
		return 0;
	case K_BOOL:
	case K_ENUM:
		return enum_value(d, k, e, v);
	case K_INTS:
		return ints(d, A, k, e, MAXRANK, v);
	case K_PAIR:
		return ints(d, A, k, e, 2, v);
	case K_PADDING:
		return padding_value(d, A, k, e, v);
	case K_SHAPE:
		return shape_value(d, A, k, e, v);
	}
	return -1;
}

/* PyTorch's and Keras' names of settings that descent names otherwise: the one of
 * names[] that name means, or NULL */
static const char *alias_of(const char *name, const char *const *names, int n)
{
	static const char *const alias[][2] = {{"out_features", "units"},
	                                       {"filters", "out_channels"},
	                                       {"pool_size", "kernel_size"},
	                                       {"epsilon", "eps"},
	                                       {"rate", "p"},
	                                       {"alpha", "negative_slope"},
	                                       {"use_bias", "bias"},
	                                       {"dim", "axis"}};
	for (size_t i = 0; i < sizeof alias / sizeof *alias; i++)
		for (int k = 0; k < n; k++)
			if (!strcmp(name, alias[i][0]) && !strcmp(names[k], alias[i][1]))
				return names[k];
	return NULL;
}

int fun_args(Diags *d, const Fun *f, const Expr *call, KwVal *kw)
{
	KwVal scratch[MAXKW];
	Arena *A = arena_new();
	int status = 0, nkw = 0;
	const char *names[MAXKW];
	kw = kw ? kw : scratch;
	memset(kw, 0, MAXKW * sizeof *kw);
	while (nkw < MAXKW && f->kw[nkw].name)
		names[nkw] = f->kw[nkw].name, nkw++;
	if (call->nargs < f->minargs || (f->maxargs >= 0 && call->nargs > f->maxargs)) {
		/* one_hot(label, 10), as torch's positional arguments: name a setting */
		int k = 0;
		while (k < nkw && !f->kw[k].required)
			k++;
		const char *hint =
		    call->nargs > f->minargs && nkw
		        ? arena_printf(A, "; settings go by name, as in %s(..., %s=...)",
		                       f->name, names[k < nkw ? k : 0])
		        : "";
		if (f->minargs == f->maxargs)
			error_at(d, call->loc, "%s takes %d value%s, got %d%s", f->name,
			         f->minargs, f->minargs == 1 ? "" : "s", call->nargs,
			         hint);
		else
			error_at(d, call->loc, "%s takes %d%s value%s, got %d%s", f->name,
			         f->minargs,
			         f->maxargs < 0 ? " or more"
			                        : arena_printf(A, " to %d", f->maxargs),
			         f->maxargs == 1 ? "" : "s", call->nargs, hint);
		status = -1;
	}
	for (int i = 0; i < call->nkw; i++) {
		int k = 0;
		while (k < nkw && strcmp(names[k], call->kwnames[i]))
			k++;
		if (k < nkw) {
			status |= kw_value(d, A, &f->kw[k], call->kwargs[i], &kw[k]);
			continue;
		}
		const char *kn = call->kwnames[i], *near = did_you_mean(kn, names, nkw),
		           *ours = alias_of(kn, names, nkw);
		SrcLoc at = call->kwlocs ? call->kwlocs[i] : call->kwargs[i]->loc;
		if (!strcmp(kn, "in_channels") || !strcmp(kn, "in_features"))
			error_at(
			    d, at,
			    "%s has no '%s': it takes its input's size from the input's "
			    "shape",
			    f->name, kn);
		else if (ours)
			error_at(d, at, "%s has no setting '%s'; its name here is '%s'",
			         f->name, kn, ours);
		else if (near)
			error_at(d, at, "unknown setting '%s' for %s; did you mean '%s'?",
			         kn, f->name, near);
		else if (!nkw)
			error_at(d, at, "%s has no setting '%s'; it takes none", f->name,
			         kn);
		else {
			char list[256] = "";
			for (int k = 0; k < nkw; k++)
				snprintf(list + strlen(list), sizeof list - strlen(list),
				         "%s%s", k ? ", " : "", names[k]);
			error_at(d, at, "%s has no setting '%s'; its settings: %s",
			         f->name, kn, list);
		}
		status = -1;
	}
	for (int k = 0; k < nkw; k++)
		if (f->kw[k].required && !kw[k].set && status == 0) {
			error_at(d, call->loc, "%s needs '%s'", f->name, f->kw[k].name);
			status = -1;
		}
	arena_free(A);
	return status;
}

/* The function descent names what PyTorch or Keras call name (CrossEntropyLoss,
 * Linear, BatchNorm2d, binary_crossentropy: the case aside), or NULL */
const char *fun_alias(const char *name)
{
	static const char *const torch[][2] = {
	    {"linear", "dense"},
	    {"fc", "dense"},
	    {"crossentropyloss", "softmax_cross_entropy"},
	    {"cross_entropy", "softmax_cross_entropy"},
	    {"categorical_crossentropy", "softmax_cross_entropy"},
	    {"sparse_categorical_crossentropy", "softmax_cross_entropy"},
	    {"mseloss", "mse"},
	    {"mse_loss", "mse"},
	    {"mean_squared_error", "mse"},
	    {"l1loss", "l1"},
	    {"l1_loss", "l1"},
	    {"mean_absolute_error", "l1"},
	    {"huberloss", "huber"},
	    {"huber_loss", "huber"},
	    {"nllloss", "nll"},
	    {"nll_loss", "nll"},
	    {"bcewithlogitsloss", "binary_cross_entropy_with_logits"},
	    {"binary_crossentropy", "binary_cross_entropy_with_logits"},
	    {"binary_cross_entropy", "binary_cross_entropy_with_logits"},
	    {"maxpool2d", "max_pool2d"},
	    {"maxpooling2d", "max_pool2d"},
	    {"avgpool2d", "avg_pool2d"},
	    {"averagepooling2d", "avg_pool2d"},
	    {"batchnorm1d", "batch_norm"},
	    {"batchnorm2d", "batch_norm"},
	    {"batchnormalization", "batch_norm"},
	    {"layernorm", "layer_norm"},
	    {"layernormalization", "layer_norm"}};
	for (size_t i = 0; i < sizeof torch / sizeof *torch; i++)
		if (!strcasecmp(name, torch[i][0]))
			return torch[i][1];
	return NULL;
}

void fun_unknown(Diags *d, const char *name, SrcLoc at)
{
	int n;
	const char *const *names = fun_names(&n);
	const char *near = fun_alias(name);
	near = near ? near : did_you_mean(name, names, n);
	if (near)
		error_at(d, at, "unknown function or layer '%s'; did you mean '%s'?",
		         name, near);
	else
		error_at(d, at, "unknown function or layer '%s'", name);
}

int fun_check(Diags *d, const Expr *e)
{
	if (!e)
		return -1;
	int status = 0;
	if (e->kind == EX_CALL) {
		const Fun *f = fun_lookup(e->name);
		if (!f) {
			fun_unknown(d, e->name, e->loc);
			status = -1;
		} else {
			status = fun_args(d, f, e, NULL);
		}
	}
	for (int i = 0; i < e->nargs; i++)
		status |= fun_check(d, e->args[i]);
	return status ? -1 : 0;
}
