/* The vector math of vmath.c, compiled (on the host's vectors, AVX2's and SSE2's, and
 * one element at a time past the last whole vector) against libm in float64: exp,
 * log, sin and cos within 2 ulp, erf, tanh, sigmoid and softplus within 4; special
 * values as C99 gives them, zeros with their sign, subnormals flushed on x86. Inputs:
 * the edges of each function's ranges (subnormals, overflow, the polynomials'
 * boundaries, sin's and cos's bound past which they call libm), a log-spaced sweep of
 * both signs from 1e-8 to 200 and one from 200 to 1e7, a uniform one over [-12, 12]
 * and one over [-8192, 8192], and the floats on either side of each multiple of pi/2
 * up to 8192, where sin or cos is near 0 and only an exact reduction keeps it within
 * 2 ulp. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "dc.h"
#include "tests.h"

static const Op fns[] = {OP_EXP,     OP_LOG,      OP_ERF, OP_TANH,
                         OP_SIGMOID, OP_SOFTPLUS, OP_SIN, OP_COS};
enum { NF = sizeof fns / sizeof fns[0] };

static double ref(Op op, double x)
{
	switch (op) {
	case OP_EXP:
		return exp(x);
	case OP_LOG:
		return log(x);
	case OP_ERF:
		return erf(x);
	case OP_TANH:
		return tanh(x);
	case OP_SIGMOID:
		return 1 / (1 + exp(-x));
	case OP_SIN:
		return sin(x);
	case OP_COS:
		return cos(x);
	default: /* softplus */
		return fmax(x, 0) + log1p(exp(-fabs(x)));
	}
}

/* |y - want| in units of float's spacing at want (the smallest subnormal's below) */
static double ulps(float y, double want)
{
	float w = (float)fabs(want);
	double ulp = isinf(w) ? ldexp(1, 104) : nextafterf(w, INFINITY) - w;
	return fabs(y - want) / fmax(ulp, 0x1p-149);
}

/* Entry points on x86 run with subnormals read as 0 and flushed to 0 (codegen.c) */
#if defined(__x86_64__)
enum { FLUSH = 1 };
#else
enum { FLUSH = 0 };
#endif

static int agrees(Op op, float x, float y)
{
	if (FLUSH && fabsf(x) < FLT_MIN)
		x = copysignf(0, x);
	double want = ref(op, x);
	if (want == 0 && y == 0)
		return !signbit(want) == !signbit(y);
	if (FLUSH && fabs(want) < FLT_MIN) /* 0, or FLT_MIN rounded up to */
		return fabsf(y) <= FLT_MIN;
	if (isnan(want) || isnan(y) || isinf(want) || isinf(y))
		return (isnan(want) && isnan(y)) || (float)want == y;
	int two = op == OP_EXP || op == OP_LOG || op == OP_SIN || op == OP_COS;
	return ulps(y, want) <= (two ? 2 : 4);
}

static int inputs(float *x, int cap)
{
	static const float edge[] = {
	    0.0f,        -0.0f,       INFINITY,   -INFINITY,   NAN,         FLT_MIN,
	    -FLT_MIN,    1e-40f,      -1e-40f,    0x1p-149f,   FLT_MAX,     -FLT_MAX,
	    88.72f,      88.73f,      89.0f,      -87.3f,      -103.0f,     -103.97f,
	    -104.0f,     -150.0f,     151.0f,     1.0f,        -1.0f,       0.99999994f,
	    1.0000001f,  4.0f,        -4.0f,      3.9f,        0.625f,      -0.625f,
	    0.62499994f, 0.70710677f, 0.7071068f, 1.4142135f,  2.0f,        0.5f,
	    17.0f,       -17.0f,      30.0f,      -30.0f,      0.78539816f, 0.7853982f,
	    8191.999f,   8192.0f,     8192.0005f, -8192.0005f, 1e4f,        -12345.6f,
	    1e6f,        3e7f,        1e20f,      -1e30f,      2830.0586f,  1252.447f,
	    2735.8171f,  2147.7925f,  4505.169f,  2228.8975f};
	int n = 0;
	for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
		x[n++] = edge[i];
	for (int i = 0; i <= 1200 && n + 2 <= cap; i++) { /* 1e-8 .. 200, both signs */
		float v = (float)pow(10, -8 + i * (log10(200) + 8) / 1200);
		x[n++] = v, x[n++] = -v;
	}
	for (int i = 1; i <= 400 && n + 2 <= cap; i++) { /* 200 .. 1e7 */
		float v = (float)(200 * pow(5e4, i / 400.0));
		x[n++] = v, x[n++] = -v;
	}
	for (int i = 0; i <= 2400 && n < cap; i++)
		x[n++] = -12.0f + 24.0f * (float)i / 2400;
	for (int i = 0; i <= 4000 && n < cap; i++)
		x[n++] = -8192.0f + 16384.0f * (float)i / 4000;
	for (int k = 1; k * M_PI_2 < 8192 && n + 2 <= cap; k++) {
		float v = (float)(k * M_PI_2), sign = k % 2 ? 1 : -1;
		x[n++] = sign * v;
		x[n++] = sign * nextafterf(v, v < k * M_PI_2 ? INFINITY : 0);
	}
	return n;
}

/* Every function on x[0..n) compiled for cpu (NULL: the host); the number of results
 * that disagree, each printed. */
static int check_target(const float *x, int n, const char *cpu, const char *features)
{
	Arena *A = arena_new();
	Diags d = {0};
	Graph *g = ir_new(A, &d);
	int in = ir_add_io(g, "x", RT_IO_INPUT, DT_F32, (Shape){1, {n}}, (SrcLoc){0});
	int out[NF];
	for (int f = 0; f < NF; f++) {
		out[f] = ir_add_io(g, opinfo[fns[f]].name, RT_IO_OUTPUT, DT_F32,
		                   (Shape){1, {n}}, (SrcLoc){0});
		ir_fn_out(g, FN_FORWARD, ir_unary(g, fns[f], ir_input(g, in)), DEST_IO,
		          out[f]);
	}
	CodegenOpts o = {.opt_level = 2, .cpu = cpu, .features = features};
	int64_t nwork = 0;
	rt_fn entry[FN_COUNT];
	Jit *j = jit_graph(g, &o, entry, &nwork);
	CU_ASSERT_FATAL(entry[FN_FORWARD] != NULL);
	float *w = rt_alloc((size_t)nwork * 4 + 64);
	void *bufs[RT_IO0 + 1 + NF] = {NULL, NULL, NULL, w, NULL};
	for (int k = 0; k < g->nios; k++)
		bufs[RT_IO0 + k] = rt_alloc((size_t)n * 4 + 64);
	for (int i = 0; i < n; i++)
		((float *)bufs[RT_IO0 + in])[i] = x[i];
	entry[FN_FORWARD](bufs);
	int bad = 0;
	for (int f = 0; f < NF; f++)
		for (int i = 0; i < n; i++) {
			float y = ((float *)bufs[RT_IO0 + out[f]])[i];
			if (!agrees(fns[f], x[i], y) && bad++ < 20)
				fprintf(stderr, "\n%s %s(%.9g) = %.9g, float64 %.9g",
				        cpu ? cpu : "host", opinfo[fns[f]].name, x[i], y,
				        ref(fns[f], x[i]));
		}
	for (int k = 0; k < g->nios; k++)
		rt_free(bufs[RT_IO0 + k]);
	rt_free(w);
	jit_free(j);
	CU_ASSERT_EQUAL(d.nerr, 0);
	diags_free(&d);
	arena_free(A);
	return bad;
}

static void test_vmath_matches_libm(void)
{
	static float x[32768];
	int n = inputs(x, 32768);
	CU_ASSERT(n % 16 != 0); /* elements past the last whole vector, too */
	CU_ASSERT_EQUAL(check_target(x, n, NULL, NULL), 0);
#if defined(__x86_64__)
	CU_ASSERT_EQUAL(check_target(x, n, "haswell", "+avx2,+fma,+avx,+sse4.2"), 0);
	CU_ASSERT_EQUAL(check_target(x, n, "x86-64", "+sse2"), 0);
#endif
}

void suite_vmath(void)
{
	static CU_TestInfo tests[] = {
	    {"vmath_matches_libm", test_vmath_matches_libm},
	    CU_TEST_INFO_NULL,
	};
	add_suite("vmath", tests);
}
