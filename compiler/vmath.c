/* exp, log, erf, tanh, sigmoid and softplus written as LLVM IR on a float or on a
 * vector of floats, sin and cos on a vector: range reduction and a polynomial, no call.
 * A call to libm (erff) or to an intrinsic that LLVM turns into one per lane
 * (llvm.exp.v16f32: sixteen expf) kept a loop scalar, or took 5 ns an element: a
 * 512-wide tanh layer's forward loop spent 0.31 ms a step of the 128-batch MLP, the
 * erf form of gelu's 0.5 ms. These are vector code, and fuse into the loops of other
 * pointwise ops and into the epilogues of products (plan.c says which).
 *
 * Accuracy, against the float64 value (tests/test_vmath.c, which allows 2 ulp for exp,
 * log, sin and cos, 4 for the others): exp 0.82 ulp at most over its inputs, log 0.73
 * (Cephes' expf and logf), tanh 0.82 (Cephes' tanhf), erf 1.96, sigmoid 1.78,
 * softplus 1.72; sin and cos 1.53 with a fused multiply-add, 1.56 without, over every
 * float up to 8192 (beyond, libm's). Special values as C99's: exp(-inf) = 0,
 * exp(>88.73) = inf, log(0) = -inf, log(<0) = NaN, erf(+-inf) = +-1, sin(+-inf) =
 * NaN, -0 stays -0 (erf, tanh, sin), NaN in gives NaN out.
 *
 * The polynomials use llvm.fmuladd (a fused multiply-add where the target has one).
 * Nothing here has fast-math flags: exp's rounding by adding 1.5 * 2^23 must not be
 * reassociated away, nor sin's and cos's rounding error be taken as 0. */
#include <math.h>

#include "cg.h"

/* the vector width of x's type, 0 for a float */
static unsigned lanes_of(LLVMValueRef x)
{
	LLVMTypeRef t = LLVMTypeOf(x);
	return LLVMGetTypeKind(t) == LLVMVectorTypeKind ? LLVMGetVectorSize(t) : 0;
}

/* the constant c, or c in every lane of a vector as wide as x */
static LLVMValueRef like(CG *cg, LLVMValueRef x, LLVMValueRef c)
{
	unsigned n = lanes_of(x);
	return n ? cg_splat(cg, c, (int)n) : c;
}

/* the float v, or the int32 v, with x's shape */
static LLVMValueRef kf(CG *cg, LLVMValueRef x, double v)
{
	return like(cg, x, LLVMConstReal(cg->f32, v));
}

static LLVMValueRef ki(CG *cg, LLVMValueRef x, int32_t v)
{
	return like(cg, x, LLVMConstInt(cg->i32, (unsigned long long)(int64_t)v, 1));
}

static LLVMTypeRef int_type(CG *cg, LLVMValueRef x)
{
	unsigned n = lanes_of(x);
	return n ? LLVMVectorType(cg->i32, n) : cg->i32;
}

static LLVMValueRef bits(CG *cg, LLVMValueRef x)
{
	return LLVMBuildBitCast(B, x, int_type(cg, x), "");
}

static LLVMValueRef from_bits(CG *cg, LLVMValueRef i)
{
	unsigned n = lanes_of(i);
	return LLVMBuildBitCast(B, i, n ? LLVMVectorType(cg->f32, n) : cg->f32, "");
}

static LLVMValueRef add(CG *cg, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildFAdd(B, a, b, "");
}

static LLVMValueRef sub(CG *cg, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildFSub(B, a, b, "");
}

static LLVMValueRef mul(CG *cg, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildFMul(B, a, b, "");
}

static LLVMValueRef cmp(CG *cg, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildFCmp(B, p, a, b, "");
}

static LLVMValueRef sel(CG *cg, LLVMValueRef c, LLVMValueRef a, LLVMValueRef b)
{
	return LLVMBuildSelect(B, c, a, b, "");
}

/* the intrinsic fn ("llvm.sin") of nargs floats, or of vectors as wide as args[0] */
static LLVMValueRef intrinsic(CG *cg, const char *fn, LLVMValueRef *args, int nargs)
{
	unsigned n = lanes_of(args[0]);
	char name[32];
	if (n)
		snprintf(name, sizeof name, "%s.v%uf32", fn, n);
	else
		snprintf(name, sizeof name, "%s.f32", fn);
	LLVMTypeRef t = LLVMTypeOf(args[0]), params[3] = {t, t, t};
	return cg_call_as(cg, name, t, params, nargs, args);
}

/* a b + c */
static LLVMValueRef fmuladd(CG *cg, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c)
{
	LLVMValueRef args[3] = {a, b, c};
	return intrinsic(cg, "llvm.fmuladd", args, 3);
}

/* c[0] t^(n-1) + ... + c[n-1], by Horner's rule */
static LLVMValueRef poly(CG *cg, LLVMValueRef t, const double *c, int n)
{
	LLVMValueRef p = kf(cg, t, c[0]);
	for (int i = 1; i < n; i++)
		p = fmuladd(cg, p, t, kf(cg, t, c[i]));
	return p;
}

static LLVMValueRef vabs(CG *cg, LLVMValueRef x)
{
	return from_bits(cg, LLVMBuildAnd(B, bits(cg, x), ki(cg, x, 0x7fffffff), ""));
}

/* |m| with x's sign */
static LLVMValueRef copysign_of(CG *cg, LLVMValueRef m, LLVMValueRef x)
{
	LLVMValueRef s = LLVMBuildAnd(B, bits(cg, x), ki(cg, x, INT32_MIN), "");
	return from_bits(cg, LLVMBuildOr(B, bits(cg, m), s, ""));
}

/* e^x = 2^n e^r, n = round(x / ln 2), r = x - n ln 2 in [-ln 2 / 2, ln 2 / 2] (ln 2 in
 * two parts, the first exact times any n here); e^r = 1 + r + r^2 P(r). x is first
 * held to [-150, 150], where e^x is 0 or inf in float anyway (NaN passes: both
 * compares are false); 2^n is applied as two factors, each a normal float, so that
 * the result underflows to a subnormal or overflows to inf with a single rounding. */
LLVMValueRef vm_exp(CG *cg, LLVMValueRef x)
{
	/* a single value once a step (Adam's beta^t): a call is less code to compile */
	if (cg->single && !lanes_of(x))
		return cg_call(cg, "llvm.exp.f32", 1, &x);
	static const double P[] = {1.9875691500E-4, 1.3981999507E-3, 8.3334519073E-3,
	                           4.1665795894E-2, 1.6666665459E-1, 5.0000001201E-1};
	LLVMValueRef hi = kf(cg, x, 150), lo = kf(cg, x, -150);
	x = sel(cg, cmp(cg, LLVMRealOGT, x, hi), hi, x);
	x = sel(cg, cmp(cg, LLVMRealOLT, x, lo), lo, x);
	/* n in t's low bits: adding 1.5 * 2^23 rounds to an integer */
	LLVMValueRef magic = kf(cg, x, 12582912.0),
	             t = fmuladd(cg, x, kf(cg, x, M_LOG2E), magic), n = sub(cg, t, magic);
	LLVMValueRef r = fmuladd(cg, n, kf(cg, x, -0.693359375), x);
	r = fmuladd(cg, n, kf(cg, x, 2.12194440e-4), r);
	LLVMValueRef y =
	    add(cg, fmuladd(cg, poly(cg, r, P, 6), mul(cg, r, r), r), kf(cg, x, 1));
	LLVMValueRef ni = LLVMBuildSub(B, bits(cg, t), bits(cg, magic), ""),
	             h = LLVMBuildAShr(B, ni, ki(cg, x, 1), ""),
	             e1 = LLVMBuildShl(B, LLVMBuildAdd(B, h, ki(cg, x, 127), ""),
	                               ki(cg, x, 23), ""),
	             e2 = LLVMBuildShl(
	                 B,
	                 LLVMBuildAdd(B, LLVMBuildSub(B, ni, h, ""), ki(cg, x, 127), ""),
	                 ki(cg, x, 23), "");
	return mul(cg, mul(cg, y, from_bits(cg, e1)), from_bits(cg, e2));
}

/* log x = e ln 2 + log m, x = 2^e m with m in [sqrt(1/2), sqrt 2) (a subnormal x
 * scaled by 2^23 first); log(1 + f) = f - f^2 / 2 + f^3 P(f), ln 2 in two parts. */
LLVMValueRef vm_log(CG *cg, LLVMValueRef x)
{
	if (cg->single && !lanes_of(x))
		return cg_call(cg, "llvm.log.f32", 1, &x);
	static const double P[] = {7.0376836292E-2,  -1.1514610310E-1, 1.1676998740E-1,
	                           -1.2420140846E-1, 1.4249322787E-1,  -1.6668057665E-1,
	                           2.0000714765E-1,  -2.4999993993E-1, 3.3333331174E-1};
	LLVMValueRef sub_normal = cmp(cg, LLVMRealOLT, x, kf(cg, x, 0x1p-126));
	LLVMValueRef xs = sel(cg, sub_normal, mul(cg, x, kf(cg, x, 0x1p23)), x);
	LLVMValueRef b = bits(cg, xs);
	LLVMValueRef e = LLVMBuildSIToFP(
	    B,
	    LLVMBuildSub(B, LLVMBuildLShr(B, b, ki(cg, x, 23), ""), ki(cg, x, 126), ""),
	    LLVMTypeOf(x), "");
	e = sub(cg, e, sel(cg, sub_normal, kf(cg, x, 23), kf(cg, x, 0)));
	/* m in [1/2, 1) */
	LLVMValueRef m =
	    from_bits(cg, LLVMBuildOr(B, LLVMBuildAnd(B, b, ki(cg, x, 0x007fffff), ""),
	                              ki(cg, x, 0x3f000000), ""));
	LLVMValueRef small = cmp(cg, LLVMRealOLT, m, kf(cg, x, M_SQRT1_2));
	e = sub(cg, e, sel(cg, small, kf(cg, x, 1), kf(cg, x, 0)));
	LLVMValueRef f = sub(cg, sel(cg, small, add(cg, m, m), m), kf(cg, x, 1)),
	             z = mul(cg, f, f);
	LLVMValueRef y = mul(cg, mul(cg, poly(cg, f, P, 9), f), z);
	y = fmuladd(cg, e, kf(cg, x, -2.12194440e-4), y);
	y = fmuladd(cg, z, kf(cg, x, -0.5), y);
	LLVMValueRef r = fmuladd(cg, e, kf(cg, x, 0.693359375), add(cg, f, y));
	/* inf stays inf; 0 gives -inf; below 0 and NaN give NaN */
	LLVMValueRef inf = kf(cg, x, INFINITY);
	r = sel(cg, cmp(cg, LLVMRealOEQ, x, inf), inf, r);
	LLVMValueRef other = sel(cg, cmp(cg, LLVMRealOEQ, x, kf(cg, x, 0)),
	                         kf(cg, x, -INFINITY), kf(cg, x, NAN));
	return sel(cg, cmp(cg, LLVMRealOGT, x, kf(cg, x, 0)), r, other);
}

/* erf x: x P(x^2) for |x| < 1; else 1 - e^-x^2 R(1/|x|) with |x| held to [1, 4], the
 * sign of x (erf 4 is 1 in float). P and R fit here for the relative error of erf
 * and of erfc e^x^2: 1.2e-9 and 2e-9. */
LLVMValueRef vm_erf(CG *cg, LLVMValueRef x)
{
	static const double P[] = {7.853846909711137e-05, -0.0008010189048945904,
	                           0.00518832728266716,   -0.026853810995817184,
	                           0.1128358542919159,    -0.3761262595653534,
	                           1.1283791065216064},
	                    R[] = {0.030716052278876305, -0.17972426116466522,
	                           0.43826767802238464,  -0.5369860529899597,
	                           0.23836581408977509,  0.2303774356842041,
	                           -0.3758567273616791,  0.02053440921008587,
	                           0.5617681741714478,   0.00012106820940971375};
	LLVMValueRef a = vabs(cg, x), one = kf(cg, x, 1), four = kf(cg, x, 4);
	LLVMValueRef near = mul(cg, x, poly(cg, mul(cg, x, x), P, 7));
	LLVMValueRef c = sel(cg, cmp(cg, LLVMRealOLT, a, one), one, a);
	c = sel(cg, cmp(cg, LLVMRealOGT, c, four), four, c);
	LLVMValueRef e = vm_exp(cg, LLVMBuildFNeg(B, mul(cg, c, c), "")),
	             far = sub(cg, one,
	                       mul(cg, e, poly(cg, LLVMBuildFDiv(B, one, c, ""), R, 10)));
	return sel(cg, cmp(cg, LLVMRealOLT, a, one), near, copysign_of(cg, far, x));
}

/* tanh x: x + x^3 P(x^2) for |x| < 0.625; else 1 - 2 / (e^2|x| + 1) with the sign
 * of x, exactly 1 once e^2|x| overflows (Cephes' tanhf). */
LLVMValueRef vm_tanh(CG *cg, LLVMValueRef x)
{
	static const double P[] = {-5.70498872745E-3, 2.06390887954E-2, -5.37397155531E-2,
	                           1.33314422036E-1, -3.33332819422E-1};
	LLVMValueRef a = vabs(cg, x), z = mul(cg, x, x), one = kf(cg, x, 1);
	LLVMValueRef near = fmuladd(cg, mul(cg, poly(cg, z, P, 5), z), x, x);
	LLVMValueRef e = vm_exp(cg, add(cg, a, a)),
	             far = sub(cg, one,
	                       LLVMBuildFDiv(B, kf(cg, x, 2), add(cg, e, one), ""));
	/* the sign of x on both: near is +0 at x = -0 */
	return copysign_of(
	    cg, sel(cg, cmp(cg, LLVMRealOLT, a, kf(cg, x, 0.625)), near, far), x);
}

/* 1 / (1 + e^-x): exactly 0 and 1 at large |x| */
LLVMValueRef vm_sigmoid(CG *cg, LLVMValueRef x)
{
	LLVMValueRef one = kf(cg, x, 1);
	return LLVMBuildFDiv(B, one, add(cg, one, vm_exp(cg, LLVMBuildFNeg(B, x, ""))),
	                     "");
}

/* max(x, 0) + log(1 + e^-|x|), no overflow at large x; log(1 + u) as u log(w) / (w -
 * 1), w = 1 + u rounded (u when w is 1), accurate where u is below float's epsilon */
LLVMValueRef vm_softplus(CG *cg, LLVMValueRef x)
{
	LLVMValueRef zero = kf(cg, x, 0), one = kf(cg, x, 1);
	LLVMValueRef u = vm_exp(cg, LLVMBuildFNeg(B, vabs(cg, x), "")),
	             w = add(cg, one, u);
	LLVMValueRef l = LLVMBuildFDiv(B, mul(cg, u, vm_log(cg, w)), sub(cg, w, one), "");
	l = sel(cg, cmp(cg, LLVMRealOEQ, w, one), u, l);
	return add(cg, sel(cg, cmp(cg, LLVMRealOGT, x, zero), x, zero), l);
}

/* y, but libm's fn(x) in the lanes where far is set: a branch, taken only when some
 * lane of x needs it, to a call for each lane */
static LLVMValueRef beyond(CG *cg, LLVMValueRef far, LLVMValueRef x, LLVMValueRef y,
                           const char *fn)
{
	LLVMTypeRef mask = LLVMIntTypeInContext(cg->ctx, lanes_of(x));
	LLVMValueRef any = LLVMBuildICmp(B, LLVMIntNE, LLVMBuildBitCast(B, far, mask, ""),
	                                 LLVMConstNull(mask), "");
	LLVMBasicBlockRef from = LLVMGetInsertBlock(B),
	                  slow = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "libm"),
	                  join = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "");
	LLVMBuildCondBr(B, any, slow, join);
	LLVMPositionBuilderAtEnd(B, slow);
	LLVMValueRef z = sel(cg, far, intrinsic(cg, fn, &x, 1), y);
	LLVMBuildBr(B, join);
	LLVMPositionBuilderAtEnd(B, join);
	LLVMValueRef phi = LLVMBuildPhi(B, LLVMTypeOf(y), ""), vals[2] = {y, z};
	LLVMBasicBlockRef froms[2] = {from, slow};
	LLVMAddIncoming(phi, vals, froms, 2);
	return phi;
}

/* sin x, or cos x (cosine set), on a vector. n = round(|x| 2/pi) and r = |x| - n pi/2,
 * in [-pi/4, pi/4]; then, by q = n (n + 1 for cos) mod 4: sin r, cos r, -sin r, -cos r
 * (Cephes' polynomials for sinf and cosf), and for sin the sign of x. pi/2 is in four
 * parts, the first three of 8, 11 and 11 bits, so that n times each is exact for n <
 * 2^13, with or without a fused multiply-add: r is exact to 2^-34 where x is near a
 * multiple of pi/2 and sin or cos near 0. r is rounded once: the third part's
 * subtraction keeps its rounding error (Fast2Sum, or exact where that subtraction is)
 * to go in with the fourth. (Rounded twice, r cost up to 0.8 ulp more.) Beyond |x| =
 * 8192, and at inf, lanes take libm's value. */
static LLVMValueRef sin_cos(CG *cg, LLVMValueRef x, int cosine)
{
	static const double S[] = {-1.9515295891E-4, 8.3321608736E-3, -1.6666654611E-1},
	                    C[] = {2.443315711809948E-5, -1.388731625493765E-3,
	                           4.166664568298827E-2};
	LLVMValueRef a = vabs(cg, x), magic = kf(cg, x, 12582912.0);
	LLVMValueRef t = fmuladd(cg, a, kf(cg, x, M_2_PI), magic), n = sub(cg, t, magic);
	LLVMValueRef r = fmuladd(cg, n, kf(cg, x, -0x1.92p0), a);
	r = fmuladd(cg, n, kf(cg, x, -0x1.fb4p-12), r);
	LLVMValueRef p3 = kf(cg, x, -0x1.444p-24), r3 = fmuladd(cg, n, p3, r),
	             e3 = fmuladd(cg, n, p3, sub(cg, r, r3));
	r = add(cg, r3, fmuladd(cg, n, kf(cg, x, -0x1.68c234p-39), e3));
	LLVMValueRef z = mul(cg, r, r),
	             s = fmuladd(cg, mul(cg, r, z), poly(cg, z, S, 3), r),
	             w = fmuladd(cg, z, kf(cg, x, -0.5),
	                         mul(cg, mul(cg, z, z), poly(cg, z, C, 3))),
	             c = add(cg, kf(cg, x, 1), w);
	/* q in t's low bits, as n is; its bit 1 is the sign */
	LLVMValueRef q = LLVMBuildSub(B, bits(cg, t), bits(cg, magic), "");
	q = LLVMBuildAdd(B, q, ki(cg, x, cosine), "");
	LLVMValueRef odd = LLVMBuildICmp(
	    B, LLVMIntNE, LLVMBuildAnd(B, q, ki(cg, x, 1), ""), ki(cg, x, 0), "");
	LLVMValueRef sign = LLVMBuildAnd(B, LLVMBuildShl(B, q, ki(cg, x, 30), ""),
	                                 ki(cg, x, INT32_MIN), "");
	if (!cosine)
		sign = LLVMBuildXor(
		    B, sign, LLVMBuildAnd(B, bits(cg, x), ki(cg, x, INT32_MIN), ""), "");
	LLVMValueRef y =
	    from_bits(cg, LLVMBuildXor(B, bits(cg, sel(cg, odd, c, s)), sign, ""));
	return beyond(cg, cmp(cg, LLVMRealOGT, a, kf(cg, x, 8192)), x, y,
	              cosine ? "llvm.cos" : "llvm.sin");
}

/* One float at a time, sin and cos call libm: LLVM's loop vectorizer, which makes
 * vectors of such a loop, would make the branch a select and call libm on every lane
 * anyway. */
LLVMValueRef vm_sin(CG *cg, LLVMValueRef x)
{
	return lanes_of(x) ? sin_cos(cg, x, 0) : intrinsic(cg, "llvm.sin", &x, 1);
}

LLVMValueRef vm_cos(CG *cg, LLVMValueRef x)
{
	return lanes_of(x) ? sin_cos(cg, x, 1) : intrinsic(cg, "llvm.cos", &x, 1);
}
