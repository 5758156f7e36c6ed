/* Named tensors in and out of a session, through safetensors files: parameters (the
 * PyTorch state_dict's names and layouts, so the same file loads into load_state_dict),
 * their gradients, and a batch of inputs by io-slot name.
 *
 * Loading checks the whole file against the program before it copies anything: a
 * mismatch lists every missing, unexpected and mis-shaped tensor, so that loading into
 * a different model says how it differs.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "descent/runtime.h"
#include "mem.h"

static int same_shape(const rt_st_tensor *t, int rank, const int64_t *shape)
{
	if (t->rank != rank)
		return 0;
	for (int i = 0; i < rank; i++)
		if (t->shape[i] != shape[i])
			return 0;
	return 1;
}

static int float_dtype(rt_st_dtype d) { return d == RT_ST_F32 || d == RT_ST_F64; }

static int int_dtype(rt_st_dtype d)
{
	return d == RT_ST_I32 || d == RT_ST_I64 || d == RT_ST_U8 || d == RT_ST_I8 ||
	       d == RT_ST_I16;
}

/* Element i of t as a double. */
static double element(const rt_st_tensor *t, int64_t i)
{
	const unsigned char *p = t->data;
	switch (t->dtype) {
	case RT_ST_F32: {
		float v;
		memcpy(&v, p + 4 * i, 4);
		return v;
	}
	case RT_ST_F64: {
		double v;
		memcpy(&v, p + 8 * i, 8);
		return v;
	}
	case RT_ST_I32: {
		int32_t v;
		memcpy(&v, p + 4 * i, 4);
		return v;
	}
	case RT_ST_I64: {
		int64_t v;
		memcpy(&v, p + 8 * i, 8);
		return (double)v;
	}
	case RT_ST_I16: {
		int16_t v;
		memcpy(&v, p + 2 * i, 2);
		return v;
	}
	case RT_ST_I8:
		return (signed char)p[i];
	case RT_ST_U8:
		return p[i];
	default:
		return 0;
	}
}

int rt_load_params(rt_session *s, const rt_st_file *f, char *err, size_t errlen)
{
	if (!s || !f)
		return rt_error(err, errlen, "rt_load_params: %s is NULL",
		                !s ? "the session" : "the file");
	const rt_program *p = s->prog;
	int nmissing = 0, nshape = 0, nextra = 0, nnonfinite = 0;
	char miss[1024] = "", shp[1024] = "", extra[1024] = "", bad[512] = "";
	for (int i = 0; i < p->nparam; i++) {
		const rt_param *q = &p->params[i];
		const rt_st_tensor *t = rt_st_find(f, q->name);
		char a[96], b[96];
		if (!t) {
			rt_append(miss, sizeof miss, "%s%s", nmissing++ ? ", " : "",
			          q->name);
		} else if (!same_shape(t, q->rank, q->shape) ||
		           !(float_dtype(t->dtype) || int_dtype(t->dtype))) {
			/* (integers too: torch keeps a batch norm's num_batches_tracked
			 * as int64) */
			rt_shape_text(a, sizeof a, t->rank, t->shape);
			rt_shape_text(b, sizeof b, q->rank, q->shape);
			rt_append(shp, sizeof shp, "%s%s (file: %s%s, model: %s)",
			          nshape++ ? ", " : "", q->name, a,
			          float_dtype(t->dtype) || int_dtype(t->dtype)
			              ? ""
			              : " not numbers",
			          b);
		} else {
			for (int64_t k = 0; k < q->numel; k++) {
				double v = element(t, k); /* a float: F64's too */
				if (v != v || v - v != 0 || fabs(v) > FLT_MAX) {
					rt_append(bad, sizeof bad, "%s%s",
					          nnonfinite++ ? ", " : "", q->name);
					break;
				}
			}
		}
	}
	for (int i = 0; i < f->n; i++) {
		int known = 0;
		for (int k = 0; k < p->nparam && !known; k++)
			known = !strcmp(p->params[k].name, f->t[i].name);
		if (!known &&
		    strncmp(f->t[i].name, "optimizer.", 10)) /* a checkpoint's state */
			rt_append(extra, sizeof extra, "%s%s", nextra++ ? ", " : "",
			          f->t[i].name);
	}
	if (nmissing || nshape || nextra || nnonfinite) {
		snprintf(err, errlen, "the parameters do not fit this model:");
		if (nmissing)
			rt_append(err, errlen, " missing %d: %s;", nmissing, miss);
		if (nextra)
			rt_append(err, errlen, " unexpected %d: %s;", nextra, extra);
		if (nshape)
			rt_append(err, errlen, " mis-shaped %d: %s;", nshape, shp);
		if (nnonfinite)
			rt_append(err, errlen, " not finite as 32-bit floats: %s;", bad);
		err[strlen(err) - 1] = 0;
		return -1;
	}
	for (int i = 0; i < p->nparam; i++) {
		const rt_param *q = &p->params[i];
		const rt_st_tensor *t = rt_st_find(f, q->name);
		for (int64_t k = 0; k < q->numel; k++)
			s->params[q->offset + k] = (float)element(t, k);
	}
	return 0;
}

int rt_load_inputs(rt_session *s, const rt_st_file *f, char *err, size_t errlen)
{
	if (!s || !f)
		return rt_error(err, errlen, "rt_load_inputs: %s is NULL",
		                !s ? "the session" : "the file");
	const rt_program *p = s->prog;
	for (int i = 0; i < f->n; i++) { /* a tensor no input takes: a misspelt name */
		int k = 0;
		while (k < p->nio && (p->io[k].kind != RT_IO_INPUT ||
		                      strcmp(p->io[k].name, f->t[i].name)))
			k++;
		if (k == p->nio) {
			snprintf(err, errlen, "tensor '%s' is none of the model's inputs",
			         f->t[i].name);
			int n = 0;
			for (int j = 0; j < p->nio; j++)
				if (p->io[j].kind == RT_IO_INPUT)
					rt_append(err, errlen, "%s'%s'",
					          n++ ? ", " : " (", p->io[j].name);
			rt_append(err, errlen, "%s", n ? ")" : ": it has none");
			return -1;
		}
	}
	for (int k = 0; k < p->nio; k++) {
		const rt_io *io = &p->io[k];
		if (io->kind != RT_IO_INPUT)
			continue;
		const rt_st_tensor *t = rt_st_find(f, io->name);
		char a[96], b[96];
		if (!t && k == p->io_weight) { /* every row counts */
			for (int64_t i = 0; i < io->numel; i++)
				((float *)s->io[k])[i] = 1;
			continue;
		}
		if (!t) {
			snprintf(err, errlen,
			         "no tensor '%s' for the model's input of that name",
			         io->name);
			return -1;
		}
		int ok =
		    io->dtype == RT_I32 ? int_dtype(t->dtype) : float_dtype(t->dtype);
		if (!same_shape(t, io->rank, io->shape) || !ok) {
			rt_shape_text(a, sizeof a, t->rank, t->shape);
			rt_shape_text(b, sizeof b, io->rank, io->shape);
			snprintf(err, errlen,
			         "tensor '%s' is %s%s; the model's input takes %s %s",
			         io->name, ok ? "" : "of the wrong type, ", a,
			         io->dtype == RT_I32 ? "integers" : "floats", b);
			return -1;
		}
		for (int64_t i = 0; i < io->numel; i++) {
			double v = element(t, i);
			if (io->dtype == RT_I32 && !(v >= INT32_MIN && v <= INT32_MAX)) {
				snprintf(
				    err, errlen,
				    "tensor '%s': element %lld, %.17g, is outside the "
				    "32-bit integers the model's input takes",
				    io->name, (long long)i, v);
				return -1;
			}
			if (io->dtype != RT_I32 && !(fabs(v) <= FLT_MAX)) {
				snprintf(err, errlen,
				         "tensor '%s': element %lld is %g, not a finite "
				         "32-bit float",
				         io->name, (long long)i, v);
				return -1;
			}
			if (io->dtype == RT_I32)
				((int32_t *)s->io[k])[i] = (int32_t)v;
			else
				((float *)s->io[k])[i] = (float)v;
		}
	}
	return 0;
}

int rt_save_params(const rt_session *s, const char *path, int grads,
                   const char *extra_name, const float *extra, char *err, size_t errlen)
{
	if (!s || !path)
		return rt_error(err, errlen, "rt_save_params: %s is NULL",
		                !s ? "the session" : "the path");
	const rt_program *p = s->prog;
	/* parameters that rt_load_params would refuse are not written (gradients may
	 * be anything: they are what descent grad reports) */
	for (int i = 0; i < p->nparam && !grads; i++)
		for (int64_t k = 0; k < p->params[i].numel; k++) {
			float v = s->params[p->params[i].offset + k];
			if (!isfinite(v)) {
				snprintf(
				    err, errlen,
				    "%s[%lld] is %s: the parameters were not saved (they "
				    "could not be loaded back)",
				    p->params[i].name, (long long)k,
				    isnan(v) ? "nan"
				    : v > 0  ? "inf"
				             : "-inf");
				return -1;
			}
		}
	rt_st_tensor *t = rt_alloc((size_t)(p->nparam + 1) * sizeof *t);
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int n = 0;
	if (extra_name)
		t[n++] = (rt_st_tensor){extra_name, RT_ST_F32, 0, {0}, extra, 4};
	for (int i = 0; i < p->nparam; i++) {
		const rt_param *q = &p->params[i];
		if (grads && !q->trainable)
			continue;
		rt_st_tensor *x = &t[n++];
		x->name = q->name;
		x->dtype = RT_ST_F32;
		x->rank = q->rank;
		memcpy(x->shape, q->shape, sizeof x->shape);
		x->data = (grads ? s->grads : s->params) + q->offset;
		x->nbytes = (size_t)q->numel * 4;
	}
	int status = rt_st_save(path, t, n, NULL, NULL, 0, err, errlen);
	rt_free(t);
	return status;
}
