/* Loop nests for every op that is not elementwise: reductions, matmul, softmax, layout
 * (transpose, slice, pad), convolution and pooling with their backward ops, gather and
 * scatter, argmax, one-hot and dropout masks. Each is the plain loop nest of its
 * definition (ops.h), written so that LLVM can vectorize the innermost loop: contiguous
 * along the last axis, bounds hoisted out of it, accumulators in registers.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cg.h"

#define EMIT(name) void emit_##name(CG *cg, Node *n)

static LLVMValueRef cg_call1(CG *cg, const char *name, LLVMValueRef x)
{
	return cg_call(cg, name, 1, &x);
}

/* a + b, or b if b > a and a otherwise (a maximum keeps the first of equals) */
static LLVMValueRef fold_in(CG *cg, int max, LLVMValueRef a, LLVMValueRef b)
{
	return max ? LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, b, a, ""), b, a, "")
	           : cg_fast(LLVMBuildFAdd(B, a, b, ""));
}

static LLVMValueRef gep(CG *cg, LLVMValueRef base, LLVMValueRef off);
static LLVMValueRef fload(CG *cg, LLVMValueRef base, LLVMValueRef off);
static LLVMValueRef scratch(CG *cg, Node *n);

/* Reduction over axes: out[o] = fold of in[i] over every input element, where o drops
 * the reduced axes' indices. The reduced axes at the end of the shape (a bias gradient's
 * H and W) are one contiguous run of x per output element, folded in a register.
 * When the first axis is kept (a sum per row), the threads share the rows. When it is
 * reduced (a bias gradient's sum over the batch) and the sum is large, its rows are
 * cut into reduce_parts(n) parts, each folded into a partial of its own in the node's
 * scratch by whichever thread takes it; a second kernel folds the partials in part
 * order: the same bits for any number of threads. */
static void reduce(CG *cg, Node *n, int max)
{
	Node *x = n->in[0];
	Loop l[MAXRANK], lp;
	LLVMValueRef init = cg_f32(cg, max ? -INFINITY : 0);
	/* x fused into this loop (plan.c): computed from the indices of all its axes,
	 * so the run folded in a register is its last axis only */
	int fused = cg_fused(cg, x), rank = x->sh.rank, outer = rank;
	int64_t run = 1, parts = reduce_parts(n), per = shape_numel(&n->sh) / n->sh.d[0];
	while (outer > 0 && (n->a[0] >> (outer - 1) & 1) && (!fused || outer == rank))
		run *= x->sh.d[--outer];
	if (parts && !outer) /* the rows, apart */
		outer = 1, run /= x->sh.d[0];
	int par = outer > 0 && !(n->a[0] & 1);
	LLVMValueRef dst = cg_node_ptr(cg, n), part = NULL, rlo = NULL, rhi = NULL;
	if (parts) { /* part p: rows [p d0 / parts, (p + 1) d0 / parts) */
		part = cg_par_loop(cg, &lp, parts, 1);
		dst = gep(cg, scratch(cg, n), cg_mul(cg, part, cg_i64(cg, per)));
		rlo = LLVMBuildUDiv(B, cg_mul(cg, part, cg_i64(cg, x->sh.d[0])),
		                    cg_i64(cg, parts), "");
		rhi = LLVMBuildUDiv(
		    B,
		    cg_mul(cg, cg_add(cg, part, cg_i64(cg, 1)), cg_i64(cg, x->sh.d[0])),
		    cg_i64(cg, parts), "");
	}
	if (!par) {
		Loop z;
		LLVMValueRef i = cg_loop(cg, &z, per);
		LLVMBuildStore(B, init, gep(cg, dst, i));
		cg_loop_end(cg, &z);
	}
	LLVMValueRef in = cg_i64(cg, 0), out = cg_i64(cg, 0), idx[MAXRANK];
	for (int d = 0; d < outer; d++) {
		LLVMValueRef i = idx[d] =
		    d == 0 && par     ? cg_par_loop(cg, &l[d], x->sh.d[d], 1)
		    : d == 0 && parts ? cg_loop_range(cg, &l[d], rlo, rhi)
		                      : cg_loop(cg, &l[d], x->sh.d[d]);
		if (d == 0 && par) { /* the threads start their rows' sums */
			Loop z;
			LLVMValueRef k = cg_loop(cg, &z, per);
			LLVMBuildStore(
			    B, init,
			    gep(cg, dst, cg_add(cg, cg_mul(cg, i, cg_i64(cg, per)), k)));
			cg_loop_end(cg, &z);
		}
		in = cg_add(cg, cg_mul(cg, in, cg_i64(cg, x->sh.d[d])), i);
		out = cg_mul(cg, out, cg_i64(cg, n->sh.d[d]));
		if (!(n->a[0] >> d & 1))
			out = cg_add(cg, out, i);
	}
	in = cg_mul(cg, in, cg_i64(cg, run));
	Loop lr;
	LLVMBasicBlockRef pre = LLVMGetInsertBlock(B);
	LLVMValueRef r = cg_loop(cg, &lr, run);
	LLVMValueRef acc = cg_acc_begin(cg, pre, init), v;
	if (fused) {
		if (outer < rank)
			idx[rank - 1] = r;
		v = cg_value(cg, x, &x->sh, idx);
	} else {
		v = cg_load(cg, x, cg_add(cg, in, r));
	}
	LLVMValueRef next = fold_in(cg, max, acc, v);
	cg_acc_next(cg, acc, next);
	cg_loop_end(cg, &lr);
	LLVMBuildStore(B, fold_in(cg, max, fload(cg, dst, out), next), gep(cg, dst, out));
	for (int d = outer - 1; d >= 0; d--)
		cg_loop_end(cg, &l[d]);
	if (!parts)
		return;
	cg_loop_end(cg, &lp);
	cg_next_kernel(cg); /* the partials, folded in part order */
	cg_kernel_work(cg, 4 * parts * per);
	Loop le;
	LLVMValueRef e = cg_par_loop(cg, &le, per, 256), p0 = scratch(cg, n), sum = NULL;
	for (int64_t k = 0; k < parts; k++) {
		LLVMValueRef pv = fload(cg, p0, cg_add(cg, e, cg_i64(cg, k * per)));
		sum = sum ? fold_in(cg, max, sum, pv) : pv;
	}
	cg_store(cg, n, e, sum);
	cg_loop_end(cg, &le);
}

EMIT(sum) { reduce(cg, n, 0); }
EMIT(rmax) { reduce(cg, n, 1); }

/* ---- matrix multiplication ----
 *
 * C[M,N] = op(A) op(B), computed by register-blocked micro-kernels: a tile of MR rows by
 * NV vectors of VW columns of C stays in registers while k runs over the whole inner
 * dimension, each step loading NV vectors of a row of B, broadcasting MR elements of A
 * and doing MR*NV fused multiply-adds. B is read along its rows; a transposed B (the
 * weight of a dense layer, [out, in]) is first transposed into the node's scratch space
 * (see plan.c). Rows and columns that do not fill a tile go to smaller tiles, and the
 * last columns to a plain loop. */

/* The tile shape is the target's (cg->tile, codegen.c): vectors of VW floats, MR x NV
 * vectors of accumulators for the broadcast kernel, DR x DC for the dot products. */
enum { MAX_VW = 16, MAX_MR = 8, MAX_NV = 3, MAX_DR = 8, MAX_DC = 6, L2_BYTES = 2 << 20 };
/* Software prefetch, PF_ROWS rows of k ahead, of the rows of B (and of a transposed A)
 * when they are further apart than the hardware prefetchers follow (PF_STRIDE bytes) and
 * a tile's panel of B outgrows L1 (PF_PANEL bytes): 7% faster steps on the 512-wide MLP,
 * where B is a 512 x 512 weight; 16 rows ahead was slower than 8. */
enum { PF_STRIDE = 1024, PF_ROWS = 8, PF_PANEL = 16 << 10 };
#define VW ((int64_t)cg->tile.vw)
#define MR ((int)cg->tile.mr)
#define NV ((int)cg->tile.nv)
#define DR ((int)cg->tile.dr)
#define DC ((int)cg->tile.dc)

/* One matrix product on raw pointers: C[M, N] (row stride ldc) = op(A) B, or += with
 * acc. op(A)[i, k] is A[i * lda + k], or A[k * lda + i] when ta; B is [K, N] with row
 * stride ldb, or, for the dot-product kernel, [N, K] with row stride ldb. */
typedef struct Gemm {
	LLVMValueRef pa, pb, pc;
	int ta, acc;
	int64_t M, N, K, lda, ldb, ldc;
	LLVMTypeRef vt;    /* <VW x float> */
	LLVMValueRef mask; /* when set, vectors of C and B hold only its first lanes */
	/* dot-product kernel: k runs over nseg segments of K (1 if 0; segs of them when
	 * set, a run-time count >= 1), segment s of A's rows at s * sega, of B's at s *
	 * segb (a sum over images, for a filter gradient) */
	int64_t nseg, sega, segb;
	LLVMValueRef segs;
	/* when rows > 1, each segment is rows runs of K, A's rowa apart and B's rowb (a
	 * filter gradient's rows of dy and of the padded image, conv_flat) */
	int64_t rows, rowa, rowb;
	LLVMValueRef mask_end; /* when set, tiles mask the lanes at or past this column */
	/* when set, only the column units [clo, chi) of cw columns each: one thread's
	 * part (columns, so that each thread reads its own part of B, a weight matrix) */
	LLVMValueRef clo, chi;
	int64_t cw;
	/* when set (broadcast kernel), only the row units [rlo, rhi) of MR rows each, the
	 * rows left over being the last unit: one thread's part by rows instead */
	LLVMValueRef rlo, rhi;
	/* when set, B's row r starts at pb + boff[r] (i64 offsets), not r * ldb: the
	 * taps of an implicit convolution (conv_flat) */
	LLVMValueRef boff;
	/* when set (broadcast kernel, a multiple of VW), C's columns are rows of bw
	 * positions, and B's are rows of bws: column j of C is B's j + (j / bw) (bws -
	 * bw), an implicit convolution's output written in place */
	int64_t bw, bws;
	/* when set (not with acc), C holds epi's values, computed from the product
	 * node epin's (Plan.epi) as each vector of them is stored */
	Node *epi, *epin;
	/* when set, epin is a pointwise convolution and C image eimg's channels echan..
	 * of it: C's row r is channel echan + r, its columns the image's positions */
	LLVMValueRef eimg, echan;
} Gemm;

/* Columns j0, j0 + width, ... (nj of them), less those outside the thread's part: the
 * loop giving the first column of each. A narrower tile after the wide ones belongs
 * to the unit of the wide tile it completes. */
static LLVMValueRef col_units(CG *cg, const Gemm *g, Loop *l, int64_t j0, int64_t nj,
                              int64_t width)
{
	if (!g->clo)
		return cg_add(cg, cg_i64(cg, j0),
		              cg_mul(cg, cg_loop(cg, l, nj), cg_i64(cg, width)));
	int64_t u0 = j0 / g->cw;
	LLVMValueRef lo = cg_max(cg, g->clo, cg_i64(cg, u0)),
	             hi = cg_min(cg, g->chi, cg_i64(cg, u0 + nj));
	LLVMValueRef u = cg_loop_range(cg, l, lo, hi);
	return cg_add(
	    cg, cg_i64(cg, j0),
	    cg_mul(cg, LLVMBuildSub(B, u, cg_i64(cg, u0), ""), cg_i64(cg, width)));
}

/* The row blocks [b0, b0 + nb) of rb rows, less those outside the thread's part: a loop
 * over block indices, giving the first row of each. */
static LLVMValueRef row_blocks(CG *cg, const Gemm *g, Loop *l, int64_t b0, int64_t nb,
                               int64_t rb)
{
	if (!g->rlo)
		return cg_add(cg, cg_i64(cg, b0 * rb),
		              cg_mul(cg, cg_loop(cg, l, nb), cg_i64(cg, rb)));
	if (rb != MR) /* the units are the broadcast kernel's MR rows */
		die("internal error: a row part in blocks of %lld rows", (long long)rb);
	LLVMValueRef lo = cg_max(cg, g->rlo, cg_i64(cg, b0)),
	             hi = cg_min(cg, g->rhi, cg_i64(cg, b0 + nb));
	return cg_mul(cg, cg_loop_range(cg, l, lo, hi), cg_i64(cg, rb));
}

static LLVMValueRef gep(CG *cg, LLVMValueRef base, LLVMValueRef off)
{
	return LLVMBuildGEP2(B, cg->f32, base, &off, 1, "");
}

static LLVMValueRef fload(CG *cg, LLVMValueRef base, LLVMValueRef off)
{
	return LLVMBuildLoad2(B, cg->f32, gep(cg, base, off), "");
}

/* The offset of B's row r. */
static LLVMValueRef b_row(CG *cg, const Gemm *g, LLVMValueRef r)
{
	if (!g->boff)
		return cg_mul(cg, r, cg_i64(cg, g->ldb));
	/* the table is an array: as i64 * for typed pointers (LLVM 14) */
	LLVMValueRef t =
	    LLVMBuildPointerCast(B, g->boff, LLVMPointerType(cg->i64, 0), "");
	return LLVMBuildLoad2(B, cg->i64, LLVMBuildGEP2(B, cg->i64, t, &r, 1, ""), "");
}

static LLVMValueRef a_elem(CG *cg, const Gemm *g, LLVMValueRef i, LLVMValueRef k)
{
	LLVMValueRef off = g->ta ? cg_add(cg, cg_mul(cg, k, cg_i64(cg, g->lda)), i)
	                         : cg_add(cg, cg_mul(cg, i, cg_i64(cg, g->lda)), k);
	return fload(cg, g->pa, off);
}

/* <VW x i1> with the first n lanes set. */
static LLVMValueRef lanes(CG *cg, int64_t n)
{
	LLVMValueRef bits[MAX_VW];
	LLVMTypeRef i1 = LLVMInt1TypeInContext(cg->ctx);
	for (int i = 0; i < VW; i++)
		bits[i] = LLVMConstInt(i1, i < n, 0);
	return LLVMConstVector(bits, VW);
}

/* <VW x i1>: lanes l with at[l] < n */
static LLVMValueRef lanes_where(CG *cg, const int64_t *at, LLVMValueRef n)
{
	LLVMValueRef c[MAX_VW];
	for (int l = 0; l < VW; l++)
		c[l] = cg_i64(cg, at[l]);
	return LLVMBuildICmp(B, LLVMIntSLT, LLVMConstVector(c, (unsigned)VW),
	                     cg_splat(cg, n, (int)VW), "");
}

/* <VW x i1>: lanes l < n (n may be negative or past VW) */
static LLVMValueRef lanes_below(CG *cg, LLVMValueRef n)
{
	int64_t iota[MAX_VW];
	for (int l = 0; l < VW; l++)
		iota[l] = l;
	return lanes_where(cg, iota, n);
}

/* Lane l of the result is lane idx[l] of a, or of b when idx[l] >= VW. */
static LLVMValueRef shuffle(CG *cg, LLVMValueRef a, LLVMValueRef b, const int *idx)
{
	LLVMValueRef c[MAX_VW];
	for (int l = 0; l < VW; l++)
		c[l] = LLVMConstInt(cg->i32, (unsigned)idx[l], 0);
	return LLVMBuildShuffleVector(B, a, b, LLVMConstVector(c, (unsigned)VW), "");
}

static LLVMValueRef masked(CG *cg, const Gemm *g, LLVMValueRef mask, LLVMValueRef p,
                           LLVMValueRef v)
{
	return cg_masked(cg, g->vt, mask, p, v);
}

static LLVMValueRef vload(CG *cg, const Gemm *g, LLVMValueRef p)
{
	if (g->mask)
		return masked(cg, g, g->mask, p, NULL);
	LLVMValueRef v = LLVMBuildLoad2(
	    B, g->vt, LLVMBuildPointerCast(B, p, LLVMPointerType(g->vt, 0), ""), "");
	LLVMSetAlignment(v, 4);
	return v;
}

/* The epilogue e (Plan.epi) of node n's vector v of values at idx, the lanes in mask
 * (if set) */
static LLVMValueRef epilogue_vec(CG *cg, Node *e, Node *n, LLVMValueRef v,
                                 LLVMValueRef *idx, LLVMValueRef mask)
{
	cg->vw = (int)VW, cg->vmask = mask;
	v = cg_epilogue(cg, e, n, v, idx);
	cg->vw = 0, cg->vmask = NULL;
	return v;
}

/* v, the product's values at row and columns col.. (the lanes in mask, if set), as C
 * holds them: through the epilogue, if any, computed on the vector */
static LLVMValueRef epilogue(CG *cg, const Gemm *g, LLVMValueRef v, LLVMValueRef row,
                             LLVMValueRef col, LLVMValueRef mask)
{
	if (!g->epi)
		return v;
	LLVMValueRef idx[4] = {row, col};
	if (g->eimg) /* positions (oh, ow) as one flat axis: plan.c checks that
	              * epi's inputs allow it */
		idx[0] = g->eimg, idx[1] = cg_add(cg, g->echan, row),
		idx[2] = cg_i64(cg, 0), idx[3] = col;
	return epilogue_vec(cg, g->epi, g->epin, v, idx, mask);
}

static void vstore(CG *cg, const Gemm *g, LLVMValueRef v, LLVMValueRef p)
{
	if (g->acc)
		v = LLVMBuildFAdd(B, vload(cg, g, p), v, "");
	if (g->mask) {
		masked(cg, g, g->mask, p, v);
		return;
	}
	LLVMValueRef st = LLVMBuildStore(
	    B, v, LLVMBuildPointerCast(B, p, LLVMPointerType(g->vt, 0), ""));
	LLVMSetAlignment(st, 4);
}

static void sstore(CG *cg, const Gemm *g, LLVMValueRef v, LLVMValueRef off)
{
	LLVMValueRef p = gep(cg, g->pc, off);
	if (g->acc)
		v = LLVMBuildFAdd(B, LLVMBuildLoad2(B, cg->f32, p, ""), v, "");
	LLVMBuildStore(B, v, p);
}

static LLVMValueRef vfma(CG *cg, const Gemm *g, LLVMValueRef a, LLVMValueRef b,
                         LLVMValueRef c)
{
	LLVMTypeRef args[3] = {g->vt, g->vt, g->vt};
	char name[40];
	snprintf(name, sizeof name, "llvm.fmuladd.v%df32", (int)VW);
	LLVMValueRef v[3] = {a, b, c};
	return cg_call_as(cg, name, g->vt, args, 3, v);
}

/* Tiles of mr rows x nv vectors over rows [i0, i0 + mr * ni) and columns [j0, j0 +
 * nv * VW * nj): the accumulators stay in registers over the whole of k. */
static void tiles(CG *cg, const Gemm *g, int64_t i0, int64_t ni, int mr, LLVMValueRef j0,
                  LLVMValueRef nj, int nv)
{
	if (ni <= 0)
		return;
	Loop li, lj, lk;
	LLVMValueRef i = row_blocks(cg, g, &li, i0 / MR, ni, MR);
	LLVMValueRef j = cg_add(
	    cg, j0,
	    cg_mul(cg, cg_loop_range(cg, &lj, cg_i64(cg, 0), nj), cg_i64(cg, nv * VW)));
	Gemm gm;
	if (g->mask_end) { /* lanes j + l < mask_end */
		gm = *g;
		gm.mask = lanes_below(cg, LLVMBuildSub(B, g->mask_end, j, ""));
		g = &gm;
	}
	LLVMValueRef bcol[MAX_NV]; /* B's column of each vector */
	for (int v = 0; v < nv; v++) {
		bcol[v] = cg_add(cg, j, cg_i64(cg, v * VW));
		if (g->bw)
			bcol[v] = cg_add(
			    cg, bcol[v],
			    cg_mul(cg, LLVMBuildUDiv(B, bcol[v], cg_i64(cg, g->bw), ""),
			           cg_i64(cg, g->bws - g->bw)));
	}
	LLVMBasicBlockRef pre = LLVMGetInsertBlock(B);
	cg->as_written = 1; /* the k loop: vector code already */
	LLVMValueRef k = cg_loop(cg, &lk, g->K), acc[MAX_MR][MAX_NV],
	             next[MAX_MR][MAX_NV], bv[MAX_NV];
	for (int r = 0; r < mr; r++)
		for (int v = 0; v < nv; v++)
			acc[r][v] = cg_acc_begin(cg, pre, LLVMConstNull(g->vt));
	LLVMValueRef bk = b_row(cg, g, k), brow = cg_add(cg, bk, j);
	for (int v = 0; v < nv; v++)
		bv[v] = vload(cg, g, gep(cg, g->pb, cg_add(cg, bk, bcol[v])));
	/* B's rows too far apart for the hardware to prefetch, and the panel of them a
	 * tile reads too large to stay in L1 for the next rows of A */
	int pf = g->K * nv * VW * 4 > PF_PANEL;
	if (pf && !g->boff && g->ldb * 4 > PF_STRIDE)
		for (int v = 0; v < nv; v++)
			cg_prefetch(
			    cg,
			    gep(cg, g->pb,
			        cg_add(cg, brow, cg_i64(cg, PF_ROWS * g->ldb + v * VW))));
	if (pf && g->ta && g->lda * 4 > PF_STRIDE)
		cg_prefetch(cg, gep(cg, g->pa,
		                    cg_add(cg,
		                           cg_mul(cg, cg_add(cg, k, cg_i64(cg, PF_ROWS)),
		                                  cg_i64(cg, g->lda)),
		                           i)));
	for (int r = 0; r < mr; r++) {
		LLVMValueRef a =
		    cg_splat(cg, a_elem(cg, g, cg_add(cg, i, cg_i64(cg, r)), k), (int)VW);
		for (int v = 0; v < nv; v++)
			next[r][v] = vfma(cg, g, a, bv[v], acc[r][v]);
	}
	for (int r = 0; r < mr; r++)
		for (int v = 0; v < nv; v++)
			cg_acc_next(cg, acc[r][v], next[r][v]);
	cg_loop_end(cg, &lk);
	cg->as_written = 0;
	for (int r = 0; r < mr; r++) {
		LLVMValueRef ri = cg_add(cg, i, cg_i64(cg, r)),
		             row = cg_mul(cg, ri, cg_i64(cg, g->ldc));
		for (int v = 0; v < nv; v++) {
			LLVMValueRef col = cg_add(cg, j, cg_i64(cg, v * VW));
			vstore(cg, g, epilogue(cg, g, next[r][v], ri, col, g->mask),
			       gep(cg, g->pc, cg_add(cg, row, col)));
		}
	}
	cg_loop_end(cg, &lj);
	cg_loop_end(cg, &li);
}

/* C = op(A) B with B [K, N]: tiles of MR rows by NV vectors, then one narrower tile for
 * the columns left, then a masked vector for the last N % VW; the rows left over take
 * tiles of their own height. */
static void gemm(CG *cg, const Gemm *g)
{
	int64_t ni = g->M / MR, mr = g->M % MR;
	/* the columns [c0, c1) to compute: all, or this thread's units of VW */
	LLVMValueRef c0 = cg_i64(cg, 0), c1 = cg_i64(cg, g->N);
	if (g->clo)
		c0 = cg_mul(cg, g->clo, cg_i64(cg, VW)),
		c1 = cg_min(cg, cg_mul(cg, g->chi, cg_i64(cg, VW)), c1);
	LLVMValueRef w = cg_i64(cg, NV * VW),
	             nj = LLVMBuildUDiv(B, LLVMBuildSub(B, c1, c0, ""), w, "");
	tiles(cg, g, 0, ni, MR, c0, nj, NV);
	if (mr)
		tiles(cg, g, ni * MR, 1, (int)mr, c0, nj, NV);
	/* the columns left (fewer than NV vectors): one vector at a time, the last one
	 * masked; the mask is all ones for the others */
	LLVMValueRef j = cg_add(cg, c0, cg_mul(cg, nj, w));
	LLVMValueRef nv =
	    LLVMBuildUDiv(B, cg_add(cg, LLVMBuildSub(B, c1, j, ""), cg_i64(cg, VW - 1)),
	                  cg_i64(cg, VW), "");
	Gemm m = *g;
	m.mask_end = c1;
	tiles(cg, &m, 0, ni, MR, j, nv, 1);
	if (mr)
		tiles(cg, &m, ni * MR, 1, (int)mr, j, nv, 1);
}

/* Stores the lane sums of v[0..mr*nc), a tile's accumulators (row-major), to C's
 * rows i.. and columns j.. (only the first ncols of them when set): pairwise, two
 * vectors of m sums spread over L lanes each become one of 2m sums over L/2 lanes (two
 * shuffles and an add), until each lane of a vector holds one sum, in the tile's order;
 * then one masked store per row part. Half the shuffles and a quarter of the adds of
 * reducing each vector alone. */
static void store_sums(CG *cg, const Gemm *g, LLVMValueRef *v, int mr, int nc,
                       LLVMValueRef i, LLVMValueRef j, LLVMValueRef ncols)
{
	enum { MAXV = MAX_DR * MAX_DC };
	int n = mr * nc, nw = n, m = 1, L = (int)VW;
	LLVMValueRef w[MAXV];
	int who[MAXV][MAX_VW], next[MAXV][MAX_VW]; /* sum in each segment, or -1 */
	for (int k = 0; k < n; k++)
		w[k] = v[k], who[k][0] = k;
	while (L > 1) {
		int half = L / 2, nn = 0;
		for (int t = 0; t < nw; t += 2, nn++) {
			LLVMValueRef a = w[t],
			             b = t + 1 < nw ? w[t + 1] : LLVMConstNull(g->vt);
			int lo[MAX_VW], hi[MAX_VW];
			for (int l = 0; l < VW; l++) {
				int seg = l / half;
				lo[l] = (seg < m ? 0 : (int)VW) + seg % m * L + l % half;
				hi[l] = lo[l] + half;
			}
			w[nn] = cg_fast(LLVMBuildFAdd(B, shuffle(cg, a, b, lo),
			                              shuffle(cg, a, b, hi), ""));
			for (int sg = 0; sg < 2 * m; sg++)
				next[nn][sg] = sg < m       ? who[t][sg]
				               : t + 1 < nw ? who[t + 1][sg - m]
				                            : -1;
		}
		memcpy(who, next, sizeof who);
		nw = nn, m *= 2, L = half;
	}
	LLVMTypeRef i1 = LLVMInt1TypeInContext(cg->ctx);
	for (int q = 0; q < nw; q++)
		for (int r = 0; r < mr; r++) {
			LLVMValueRef bits[MAX_VW];
			int64_t tc[MAX_VW]; /* each lane's column in the tile */
			int first = -1;
			for (int l = 0; l < VW; l++) {
				int in = who[q][l] >= 0 && who[q][l] / nc == r;
				first = in && first < 0 ? l : first;
				bits[l] = LLVMConstInt(i1, (unsigned long long)in, 0);
				tc[l] = in ? who[q][l] % nc : 0;
			}
			if (first < 0)
				continue;
			/* lane l goes to column j + c0 + (l - first) of row i + r. Lanes
			 * hold the sums row-major, VW to a vector, so c0 - first >= -r *
			 * nc and the base is never before C's first element (ldc >= nc);
			 * masked lanes past the row are not accessed */
			int c0 = who[q][first] % nc;
			LLVMValueRef ri = cg_add(cg, i, cg_i64(cg, r)),
			             col = cg_add(cg, j, cg_i64(cg, c0 - first));
			LLVMValueRef at =
			    gep(cg, g->pc,
			        cg_add(cg, cg_mul(cg, ri, cg_i64(cg, g->ldc)), col));
			LLVMValueRef mask = LLVMConstVector(bits, (unsigned)VW);
			if (ncols)
				mask =
				    LLVMBuildAnd(B, mask, lanes_where(cg, tc, ncols), "");
			LLVMValueRef val = epilogue(cg, g, w[q], ri, col, mask);
			if (g->acc)
				val = LLVMBuildFAdd(B, masked(cg, g, mask, at, NULL), val,
				                    "");
			masked(cg, g, mask, at, val);
		}
}

/* Which operand of C = A B^T stays in L1: B's rows (columns outside, rows inside) when
 * A, B and C would not stay in half of L2, B streaming from memory again for every few
 * rows of A; otherwise A's rows (rows outside), which are most of the loads. (Counting
 * A and C: the 512-wide MLP's second layer, whose B is half L2 exactly, takes the first,
 * its forward product a tenth faster; so does the Fashion MLP's first, 4% faster.) */
static int b_outer(int64_t M, int64_t N, int64_t K)
{
	return (M * K + N * K + M * N) * 4 > L2_BYTES / 2;
}

/* C = A B^T with A [M, K] (ta = 0) and B [N, K] both read along k: each element of a tile
 * of mr rows by nc columns is a dot product, accumulated in vectors over k and summed
 * across the vector at the end (no transposed copy of B needed). */
static void dots(CG *cg, const Gemm *g, int dr, int64_t i0, int64_t ni, int mr,
                 int64_t j0, int64_t nj, int nc)
{
	if (ni <= 0 || nj <= 0)
		return;
	int64_t kv = g->K / VW;
	Loop li, lj, lk;
	int bo = b_outer(g->M, g->N, g->K);
	LLVMValueRef i = NULL, j = NULL;
	if (bo)
		j = col_units(cg, g, &lj, j0, nj, nc);
	i = row_blocks(cg, g, &li, i0 / dr, ni, dr);
	if (!bo)
		j = col_units(cg, g, &lj, j0, nj, nc);
	/* a last tile past C's last column reads B's last row again for the columns
	 * beyond it, and does not store them */
	LLVMValueRef ncols =
	    j0 + nj * nc > g->N ? LLVMBuildSub(B, cg_i64(cg, g->N), j, "") : NULL;
	LLVMValueRef arow[MAX_DR], brow[MAX_DC], col[MAX_DC];
	for (int r = 0; r < mr; r++)
		arow[r] = cg_mul(cg, cg_add(cg, i, cg_i64(cg, r)), cg_i64(cg, g->lda));
	for (int c = 0; c < nc; c++) {
		col[c] = cg_add(cg, j, cg_i64(cg, c));
		if (ncols)
			col[c] = cg_min(cg, col[c], cg_i64(cg, g->N - 1));
		brow[c] = b_row(cg, g, col[c]);
	}
	if (g->K > 0) {
		Loop ls, lr;
		LLVMBasicBlockRef pre0 = LLVMGetInsertBlock(B);
		LLVMValueRef sg = g->segs ? cg_loop_n(cg, &ls, g->segs)
		                          : cg_loop(cg, &ls, g->nseg > 1 ? g->nseg : 1),
		             accs[MAX_DR][MAX_DC], raccs[MAX_DR][MAX_DC];
		for (int r = 0; r < mr; r++) /* the phis first, at the top of the loop */
			for (int c = 0; c < nc; c++)
				accs[r][c] = cg_acc_begin(cg, pre0, LLVMConstNull(g->vt));
		LLVMValueRef aseg[MAX_DR], bseg[MAX_DC];
		for (int r = 0; r < mr; r++)
			aseg[r] =
			    cg_add(cg, arow[r], cg_mul(cg, sg, cg_i64(cg, g->sega)));
		for (int c = 0; c < nc; c++)
			bseg[c] =
			    cg_add(cg, brow[c], cg_mul(cg, sg, cg_i64(cg, g->segb)));
		/* a segment's rows, a loop of their own: its offsets then step by rowa
		 * and rowb, where one loop over both took a division and a product for
		 * every row, and spilled their offsets */
		memcpy(raccs, accs, sizeof raccs);
		if (g->rows > 1) {
			LLVMBasicBlockRef pre1 = LLVMGetInsertBlock(B);
			LLVMValueRef rr = cg_loop(cg, &lr, g->rows);
			for (int r = 0; r < mr; r++)
				for (int c = 0; c < nc; c++)
					raccs[r][c] = cg_acc_begin(cg, pre1, accs[r][c]);
			for (int r = 0; r < mr; r++)
				aseg[r] = cg_add(cg, aseg[r],
				                 cg_mul(cg, rr, cg_i64(cg, g->rowa)));
			for (int c = 0; c < nc; c++)
				bseg[c] = cg_add(cg, bseg[c],
				                 cg_mul(cg, rr, cg_i64(cg, g->rowb)));
		}
		LLVMValueRef next[MAX_DR][MAX_DC], av[MAX_DR], bv[MAX_DC];
		memcpy(next, raccs, sizeof next);
		if (kv > 0) { /* (rows of fewer than VW have only the tail) */
			LLVMBasicBlockRef pre = LLVMGetInsertBlock(B);
			cg->as_written = 1;
			LLVMValueRef kk = cg_loop(cg, &lk, kv), acc[MAX_DR][MAX_DC];
			for (int r = 0; r < mr; r++)
				for (int c = 0; c < nc; c++)
					acc[r][c] = cg_acc_begin(cg, pre, raccs[r][c]);
			LLVMValueRef k = cg_mul(cg, kk, cg_i64(cg, VW));
			for (int r = 0; r < mr; r++)
				av[r] =
				    vload(cg, g, gep(cg, g->pa, cg_add(cg, aseg[r], k)));
			for (int c = 0; c < nc; c++)
				bv[c] =
				    vload(cg, g, gep(cg, g->pb, cg_add(cg, bseg[c], k)));
			for (int r = 0; r < mr; r++)
				for (int c = 0; c < nc; c++) {
					next[r][c] = vfma(cg, g, av[r], bv[c], acc[r][c]);
					cg_acc_next(cg, acc[r][c], next[r][c]);
				}
			cg_loop_end(cg, &lk);
			cg->as_written = 0;
		}
		if (g->K % VW) { /* the tail of k: one more step, masked */
			LLVMValueRef mask = lanes(cg, g->K % VW),
			             kt = cg_i64(cg, kv * VW);
			for (int r = 0; r < mr; r++)
				av[r] =
				    masked(cg, g, mask,
				           gep(cg, g->pa, cg_add(cg, aseg[r], kt)), NULL);
			for (int c = 0; c < nc; c++)
				bv[c] =
				    masked(cg, g, mask,
				           gep(cg, g->pb, cg_add(cg, bseg[c], kt)), NULL);
			for (int r = 0; r < mr; r++)
				for (int c = 0; c < nc; c++)
					next[r][c] =
					    vfma(cg, g, av[r], bv[c], next[r][c]);
		}
		if (g->rows > 1) {
			for (int r = 0; r < mr; r++)
				for (int c = 0; c < nc; c++)
					cg_acc_next(cg, raccs[r][c], next[r][c]);
			cg_loop_end(cg, &lr);
		}
		for (int r = 0; r < mr; r++)
			for (int c = 0; c < nc; c++)
				cg_acc_next(cg, accs[r][c], next[r][c]);
		cg_loop_end(cg, &ls);
		LLVMValueRef flat[MAX_DR * MAX_DC];
		for (int r = 0; r < mr; r++)
			for (int c = 0; c < nc; c++)
				flat[r * nc + c] = next[r][c];
		store_sums(cg, g, flat, mr, nc, i, j, ncols);
	} else /* no k: sums of nothing (the last column again past the last) */
		for (int r = 0; r < mr; r++)
			for (int c = 0; c < nc; c++)
				sstore(cg, g, cg_f32(cg, 0),
				       cg_add(cg,
				              cg_mul(cg, cg_add(cg, i, cg_i64(cg, r)),
				                     cg_i64(cg, g->ldc)),
				              col[c]));
	cg_loop_end(cg, bo ? &li : &lj);
	cg_loop_end(cg, bo ? &lj : &li);
}

/* The dot-product tile for C = A B^T: DR rows by DC columns when A's rows stay in L1
 * and B's stream by, or half as many rows and twice the columns when B's rows stay
 * (b_outer): the operand that streams from L2 then takes half the loads. */
static void dot_tile(CG *cg, int64_t M, int64_t N, int64_t K, int *dr, int *dc)
{
	int bo = b_outer(M, N, K);
	*dr = bo ? DR / 2 : DR, *dc = bo ? DC * 2 : DC;
}

/* A B^T: tiles of dr rows by dc columns, then the rows left over. The columns left
 * over take a tile of their own width when there are fewer than dc in all, or else the
 * last tile, which goes past C's last column (dots): no other variant of the loop nest
 * for LLVM to compile. */
static void gemm_bt(CG *cg, const Gemm *g)
{
	int dr, dc;
	dot_tile(cg, g->M, g->N, g->K, &dr, &dc);
	int64_t ni = g->M / dr, mr = g->M % dr, nj = (g->N + dc - 1) / dc;
	int nc = g->N < dc ? (int)g->N : dc;
	dots(cg, g, dr, 0, ni, dr, 0, nj, nc);
	dots(cg, g, dr, ni * dr, mr ? 1 : 0, (int)mr, 0, nj, nc);
}

/* Scratch after a node's values, or in their place when it has an epilogue (Plan.epi;
 * plan.c's footprint reserves it). */
static LLVMValueRef scratch(CG *cg, Node *n)
{
	int64_t values =
	    cg->p->epi[n->id] ? 0 : (shape_numel(&n->sh) + 15) & ~(int64_t)15;
	return gep(cg, cg_node_ptr(cg, n), cg_i64(cg, values));
}

/* C = A B as two products over the halves of k (matmul_halves, dc.h) into the node's
 * scratch, the threads sharing twice C's column units, so that two threads take a half
 * each; then, a kernel of its own, C = the first + the second through the epilogue,
 * the threads sharing C's rows: the same sums in the same order whatever the threads. */
static void gemm_halves(CG *cg, const Gemm *g)
{
	int64_t nu = (g->N + VW - 1) / VW, MN = (g->M * g->N + 15) & ~(int64_t)15;
	LLVMValueRef lo, hi, zero = cg_i64(cg, 0), all = cg_i64(cg, nu);
	cg_par_range(cg, 2 * nu, 1, &lo, &hi);
	Loop lh; /* the halves the thread's units are in */
	LLVMValueRef h =
	    cg_loop_range(cg, &lh, LLVMBuildUDiv(B, lo, all, ""),
	                  LLVMBuildUDiv(B, cg_add(cg, hi, cg_i64(cg, nu - 1)), all, ""));
	LLVMValueRef u0 = cg_mul(cg, h, all);
	Gemm p = *g;
	p.clo = cg_min(cg, cg_max(cg, LLVMBuildSub(B, lo, u0, ""), zero), all);
	p.chi = cg_min(cg, cg_max(cg, LLVMBuildSub(B, hi, u0, ""), zero), all);
	p.cw = VW;
	p.K = g->K / 2; /* (K is even) */
	p.pa = gep(cg, g->pa, cg_mul(cg, h, cg_i64(cg, p.K)));
	p.pb = gep(cg, g->pb, cg_mul(cg, h, cg_i64(cg, p.K * g->ldb)));
	p.pc = gep(cg, scratch(cg, g->epin), cg_mul(cg, h, cg_i64(cg, MN)));
	p.epi = NULL;
	gemm(cg, &p);
	cg_loop_end(cg, &lh);
	cg->kname = "sum_halves";
	cg_next_kernel(cg);
	cg_kernel_work(cg, 4 * g->M * g->N); /* adds, not the product's flops */
	if (g->epi) /* its scalars, loaded again in this kernel */
		cg_epilogue_begin(cg, g->epi);
	LLVMValueRef s = scratch(cg, g->epin),
	             pc = cg_node_ptr(cg, g->epi ? g->epi : g->epin);
	Loop li, lj;
	LLVMValueRef i = cg_par_loop(cg, &li, g->M, 1),
	             j = cg_mul(cg, cg_loop(cg, &lj, nu), cg_i64(cg, VW)),
	             at = cg_add(cg, cg_mul(cg, i, cg_i64(cg, g->ldc)), j);
	Gemm sum = *g;
	if (g->N % VW)
		sum.mask = lanes_below(cg, LLVMBuildSub(B, cg_i64(cg, g->N), j, ""));
	LLVMValueRef v = LLVMBuildFAdd(
	    B, vload(cg, &sum, gep(cg, s, at)),
	    vload(cg, &sum, gep(cg, s, cg_add(cg, at, cg_i64(cg, MN)))), "");
	vstore(cg, &sum, epilogue(cg, &sum, v, i, j, sum.mask), gep(cg, pc, at));
	cg_loop_end(cg, &lj);
	cg_loop_end(cg, &li);
}

/* C = op(A) op(B), its columns shared between threads in units of the micro-kernel's
 * width. A transposed B the kernels cannot read is first transposed into scratch, a
 * kernel of its own. */
EMIT(matmul)
{
	Node *A = n->in[0], *Bm = n->in[1];
	int ta = (int)n->a[0], tb = (int)n->a[1];
	int64_t M = n->sh.d[0], N = n->sh.d[1], K = ta ? A->sh.d[0] : A->sh.d[1];
	int dot = tb && !ta && K >= VW;
	Node *epi = cg->p->epi[n->id]; /* a bias and activation, say (plan.c) */
	if (tb && !dot) {
		Loop l;
		LLVMValueRef src = cg_node_ptr(cg, Bm), dst = scratch(cg, n);
		LLVMValueRef j = cg_par_loop(cg, &l, N, 1);
		Loop lk;
		LLVMValueRef k = cg_loop(cg, &lk, K);
		LLVMValueRef v =
		    fload(cg, src, cg_add(cg, cg_mul(cg, j, cg_i64(cg, K)), k));
		LLVMBuildStore(B, v,
		               gep(cg, dst, cg_add(cg, cg_mul(cg, k, cg_i64(cg, N)), j)));
		cg_loop_end(cg, &lk);
		cg_loop_end(cg, &l);
		cg_kernel_work(cg, 4 * N * K); /* a copy */
		cg_next_kernel(cg);
	}
	/* Threads share the columns: groups of dc for dot products, vectors otherwise.
	 * But A^T B is a weight's gradient (dW = dy^T x, [out, in]) and threads share its
	 * rows: those of W each thread reads in the forward product (x W^T, whose columns
	 * are W's rows) and updates in the optimizer's pass, so that they stay in its
	 * core's cache (2 threads: steps 3.6% faster on the 512-wide MLP, 9% on the
	 * 128-wide). */
	int dr, dc;
	dot_tile(cg, M, N, K, &dr, &dc);
	int64_t cw = dot ? dc : VW;
	int halves = matmul_halves(n);
	/* C's rows narrower than two vectors are shared by rows too: shared by columns,
	 * both threads would write every cache line of C, and read all of A (a 10-class
	 * output layer's forward product took twice as long on two threads as on one) */
	int narrow = N < 2 * VW && M >= 2 * MR && (!dot || dr == MR) && !halves;
	int by_rows = (ta && M >= 4 * MR) || narrow;
	LLVMValueRef lo = NULL, hi = NULL;
	if (!halves) /* (gemm_halves shares its own units) */
		cg_par_range(cg, by_rows ? (M + MR - 1) / MR : (N + cw - 1) / cw, 1, &lo,
		             &hi);
	if (epi)
		cg_epilogue_begin(cg, epi);
	Gemm g = {.pa = cg_node_ptr(cg, A),
	          .pb = tb && !dot ? scratch(cg, n) : cg_node_ptr(cg, Bm),
	          .pc = cg_node_ptr(cg, epi ? epi : n),
	          .ta = ta,
	          .M = M,
	          .N = N,
	          .K = K,
	          .lda = ta ? M : K,
	          .ldb = tb && dot ? K : N,
	          .ldc = N,
	          .vt = LLVMVectorType(cg->f32, VW),
	          .clo = by_rows ? NULL : lo,
	          .chi = by_rows ? NULL : hi,
	          .cw = cw,
	          .rlo = by_rows ? lo : NULL,
	          .rhi = by_rows ? hi : NULL,
	          .epi = epi,
	          .epin = n};
	if (dot)
		gemm_bt(cg, &g);
	else if (halves)
		gemm_halves(cg, &g);
	else
		gemm(cg, &g);
	if (epi)
		cg_epilogue_end(cg);
}

/* the lanes of v (float vectors) reduced by the intrinsic llvm.vector.reduce.<op> */
static LLVMValueRef reduce_lanes(CG *cg, const char *op, LLVMValueRef v)
{
	char name[48];
	snprintf(name, sizeof name, "llvm.vector.reduce.%s.v%df32", op, (int)VW);
	LLVMTypeRef vt = LLVMTypeOf(v), params[2] = {cg->f32, vt};
	if (!strcmp(op, "fmax"))
		return cg_call_as(cg, name, cg->f32, &vt, 1, &v);
	LLVMValueRef args[2] = {cg_f32(cg, -0.0), v};
	return cg_fast(cg_call_as(cg, name, cg->f32, params, 2, args));
}

/* Per row: m = max x, s = sum e^(x - m), out = x - m - log s; on vectors along the
 * row, the last one masked (lanes past it read as -inf, whose e^ is 0), rows shared
 * between threads. A 1000-class output layer's, [128, 1000], took 0.81-1.04 ms a step
 * as scalar loops calling expf, 0.12 so. */
EMIT(logsoftmax)
{
	Node *x = n->in[0];
	int64_t C = n->sh.d[n->sh.rank - 1], rows = shape_numel(&n->sh) / C,
	        nv = (C + VW - 1) / VW;
	LLVMTypeRef vt = LLVMVectorType(cg->f32, (unsigned)VW);
	LLVMValueRef ninf = cg_splat(cg, cg_f32(cg, -INFINITY), (int)VW);
	Loop lr, lc;
	LLVMValueRef r = cg_par_loop(cg, &lr, rows, 1); /* the threads share rows */
	LLVMValueRef row = LLVMBuildMul(B, r, cg_i64(cg, C), ""), m = NULL, s = NULL;
	for (int pass = 0; pass < 3; pass++) {
		LLVMBasicBlockRef pre = LLVMGetInsertBlock(B);
		LLVMValueRef j = cg_loop(cg, &lc, nv), acc = NULL;
		if (pass < 2)
			acc = cg_acc_begin(cg, pre, pass ? LLVMConstNull(vt) : ninf);
		LLVMValueRef c = cg_mul(cg, j, cg_i64(cg, VW)),
		             mask =
		                 lanes_below(cg, LLVMBuildSub(B, cg_i64(cg, C), c, "")),
		             at = LLVMBuildAdd(B, row, c, ""), next;
		LLVMValueRef v = LLVMBuildSelect(
		    B, mask,
		    cg_masked(cg, vt, mask, gep(cg, cg_node_ptr(cg, x), at), NULL), ninf,
		    "");
		if (pass == 2) {
			cg_masked(cg, vt, mask, gep(cg, cg_node_ptr(cg, n), at),
			          LLVMBuildFSub(B, v, cg_splat(cg, s, (int)VW), ""));
			cg_loop_end(cg, &lc);
			break;
		}
		if (!pass)
			next = LLVMBuildSelect(
			    B, LLVMBuildFCmp(B, LLVMRealOGT, v, acc, ""), v, acc, "");
		else
			next = cg_fast(LLVMBuildFAdd(
			    B, acc,
			    vm_exp(cg, LLVMBuildFSub(B, v, cg_splat(cg, m, (int)VW), "")),
			    ""));
		cg_acc_next(cg, acc, next);
		cg_loop_end(cg, &lc);
		if (!pass)
			m = reduce_lanes(cg, "fmax", next);
		else /* s becomes the shift m + log s */
			s = LLVMBuildFAdd(
			    B, m,
			    cg_call1(cg, "llvm.log.f32", reduce_lanes(cg, "fadd", next)),
			    "");
	}
	cg_loop_end(cg, &lr);
}

/* out[r, c] = labels[r] == c */
EMIT(onehot)
{
	int64_t C = n->a[0], rows = shape_numel(&n->sh) / C;
	Loop lr, lc;
	LLVMValueRef r = cg_par_loop(cg, &lr, rows, 1);
	LLVMValueRef lab = LLVMBuildSExt(B, cg_load(cg, n->in[0], r), cg->i64, "");
	LLVMValueRef c = cg_loop(cg, &lc, C);
	LLVMValueRef eq = LLVMBuildICmp(B, LLVMIntEQ, lab, c, "");
	cg_store(cg, n, LLVMBuildAdd(B, LLVMBuildMul(B, r, cg_i64(cg, C), ""), c, ""),
	         LLVMBuildSelect(B, eq, cg_f32(cg, 1), cg_f32(cg, 0), ""));
	cg_loop_end(cg, &lc);
	cg_loop_end(cg, &lr);
}

/* ---- layout: transpose, slice, pad ---- */

static void row_strides(const Shape *s, int64_t *st)
{
	int64_t k = 1;
	for (int i = s->rank - 1; i >= 0; i--)
		st[i] = k, k *= s->d[i];
}

/* dst[dbase + sum i_k dst_st[k]] = src[sbase + sum i_k src_st[k]] over the extents. */
static void strided_copy(CG *cg, Node *dst, int64_t dbase, const int64_t *dst_st,
                         Node *src, int64_t sbase, const int64_t *src_st,
                         const Shape *ext)
{
	Loop l[MAXRANK];
	LLVMValueRef d = cg_i64(cg, dbase), s = cg_i64(cg, sbase);
	for (int k = 0; k < ext->rank; k++) {
		LLVMValueRef i = cg_loop(cg, &l[k], ext->d[k]);
		d = cg_add(cg, d, cg_mul(cg, i, cg_i64(cg, dst_st[k])));
		s = cg_add(cg, s, cg_mul(cg, i, cg_i64(cg, src_st[k])));
	}
	cg_store(cg, dst, d, cg_load(cg, src, s));
	for (int k = ext->rank - 1; k >= 0; k--)
		cg_loop_end(cg, &l[k]);
}

/* A transpose's blocks: TB x TB elements, whose TB rows read and TB rows written stay
 * in L1. Walking the output's rows whole read the input a row apart, 2 KB apart for
 * a 512-wide matrix, all in a few sets of the caches: W^T of a [784, 512] W took
 * 0.67-0.78 ms, 0.16-0.18 in blocks. */
enum { TB = 16 };

/* for (i = b TB; i < min(b TB + TB, n); i++) */
static LLVMValueRef block_loop(CG *cg, Loop *l, LLVMValueRef b, int64_t n)
{
	LLVMValueRef lo = cg_mul(cg, b, cg_i64(cg, TB));
	return cg_loop_range(cg, l, lo,
	                     cg_min(cg, cg_add(cg, lo, cg_i64(cg, TB)), cg_i64(cg, n)));
}

EMIT(transpose)
{
	int r = n->sh.rank, p = -1, q = r - 1;
	int64_t in_st[MAXRANK], st[MAXRANK], out_st[MAXRANK];
	row_strides(&n->in[0]->sh, in_st);
	row_strides(&n->sh, out_st);
	for (int k = 0; k < r; k++)
		st[k] = in_st[n->a[k]], p = n->a[k] == r - 1 ? k : p;
	if (p == q) { /* the rows stay rows */
		strided_copy(cg, n, 0, out_st, n->in[0], 0, st, &n->sh);
		return;
	}
	/* the other axes, then blocks of the output's axis p, which runs along the
	 * input's rows, and of its last axis q; the threads share p's blocks of a
	 * matrix */
	Loop l[MAXRANK], lp, lq, bp, bq;
	LLVMValueRef d = cg_i64(cg, 0), s = cg_i64(cg, 0);
	int64_t np = (n->sh.d[p] + TB - 1) / TB, nq = (n->sh.d[q] + TB - 1) / TB;
	for (int k = 0; k < r; k++)
		if (k != p && k != q) {
			LLVMValueRef i = cg_loop(cg, &l[k], n->sh.d[k]);
			d = cg_add(cg, d, cg_mul(cg, i, cg_i64(cg, out_st[k])));
			s = cg_add(cg, s, cg_mul(cg, i, cg_i64(cg, st[k])));
		}
	LLVMValueRef ib = r == 2 ? cg_par_loop(cg, &bp, np, 1) : cg_loop(cg, &bp, np),
	             jb = cg_loop(cg, &bq, nq), i = block_loop(cg, &lp, ib, n->sh.d[p]),
	             j = block_loop(cg, &lq, jb, n->sh.d[q]);
	d = cg_add(cg, d,
	           cg_add(cg, cg_mul(cg, i, cg_i64(cg, out_st[p])),
	                  cg_mul(cg, j, cg_i64(cg, out_st[q]))));
	s = cg_add(cg, s,
	           cg_add(cg, cg_mul(cg, i, cg_i64(cg, st[p])),
	                  cg_mul(cg, j, cg_i64(cg, st[q]))));
	cg_store(cg, n, d, cg_load(cg, n->in[0], s));
	cg_loop_end(cg, &lq);
	cg_loop_end(cg, &lp);
	cg_loop_end(cg, &bq);
	cg_loop_end(cg, &bp);
	for (int k = r - 1; k >= 0; k--)
		if (k != p && k != q)
			cg_loop_end(cg, &l[k]);
}

static int64_t offset_of(const int64_t *start, const int64_t *st, int rank)
{
	int64_t off = 0;
	for (int k = 0; k < rank; k++)
		off += start[k] * st[k];
	return off;
}

EMIT(slice)
{
	int64_t in_st[MAXRANK], out_st[MAXRANK];
	row_strides(&n->in[0]->sh, in_st);
	row_strides(&n->sh, out_st);
	strided_copy(cg, n, 0, out_st, n->in[0], offset_of(n->a, in_st, n->sh.rank),
	             in_st, &n->sh);
}

EMIT(pad)
{
	int64_t in_st[MAXRANK], out_st[MAXRANK];
	row_strides(&n->in[0]->sh, in_st);
	row_strides(&n->sh, out_st);
	cg_zero(cg, n);
	strided_copy(cg, n, offset_of(n->a, out_st, n->sh.rank), out_st, n->in[0], 0,
	             in_st, &n->in[0]->sh);
}

/* ---- convolution ---- */

/* The output positions o in [0, out) whose input position o * s - p + k * d lies in
 * [0, in): lo = ceil((p - k d) / s) clamped at 0, hi = floor((in - 1 + p - k d) / s) + 1
 * clamped at out. k is a loop value, the rest are constants. */
static void valid_range(CG *cg, LLVMValueRef k, int64_t in, int64_t out, int64_t s,
                        int64_t p, int64_t d, LLVMValueRef *lo, LLVMValueRef *hi)
{
	LLVMValueRef kd = cg_mul(cg, k, cg_i64(cg, d));
	LLVMValueRef a = LLVMBuildSub(B, cg_i64(cg, p), kd, "");
	LLVMValueRef up =
	    LLVMBuildSDiv(B, cg_add(cg, a, cg_i64(cg, s - 1)), cg_i64(cg, s), "");
	*lo = cg_max(cg, cg_i64(cg, 0), up);
	LLVMValueRef b = LLVMBuildSub(B, cg_i64(cg, in - 1 + p), kd, "");
	LLVMValueRef down =
	    cg_add(cg, LLVMBuildSDiv(B, b, cg_i64(cg, s), ""), cg_i64(cg, 1));
	/* b < 0: nothing is valid (sdiv rounds toward zero, so test it apart) */
	down = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, b, cg_i64(cg, 0), ""),
	                       cg_i64(cg, 0), down, "");
	*hi = cg_min(cg, cg_i64(cg, out), down);
}

/* x[a] * y[b] summed over a run-time range of j, in a register: the innermost loop of a
 * reduction. dot(j) gives the product for index j; an empty range sums to 0. */
typedef LLVMValueRef (*Term)(CG *cg, LLVMValueRef j, void *ctx);
static LLVMValueRef range_sum(CG *cg, LLVMValueRef lo, LLVMValueRef hi, Term term,
                              void *ctx)
{
	Loop l;
	LLVMBasicBlockRef pre = LLVMGetInsertBlock(B);
	LLVMValueRef j = cg_loop_range(cg, &l, lo, hi);
	LLVMValueRef acc = cg_acc_begin(cg, pre, cg_f32(cg, 0));
	LLVMValueRef next = cg_fast(LLVMBuildFAdd(B, acc, term(cg, j, ctx), ""));
	cg_acc_next(cg, acc, next);
	LLVMBasicBlockRef latch = LLVMGetInsertBlock(B);
	cg_loop_end(cg, &l);
	LLVMValueRef sum = LLVMBuildPhi(B, cg->f32, "sum");
	LLVMValueRef vals[2] = {cg_f32(cg, 0), next};
	LLVMBasicBlockRef from[2] = {pre, latch};
	LLVMAddIncoming(sum, vals, from, 2);
	return sum;
}

/* Where the convolution loop nest is: the flat offsets of one row of x and y and the
 * strides along it. */
typedef struct ConvRow {
	Node *x, *y;
	LLVMValueRef xrow,
	    yrow;   /* x offset at ow = 0 (may be out of the row), y offset */
	int64_t sw; /* x advances sw per output column */
} ConvRow;

static LLVMValueRef conv_term(CG *cg, LLVMValueRef ow, void *ctx)
{
	ConvRow *r = ctx;
	LLVMValueRef xo = cg_add(cg, r->xrow, cg_mul(cg, ow, cg_i64(cg, r->sw)));
	return cg_fast(LLVMBuildFMul(B, cg_load(cg, r->x, xo),
	                             cg_load(cg, r->y, cg_add(cg, r->yrow, ow)), ""));
}

/* One loop nest for the three convolution ops (as in eval.c): over batch, output
 * channel, input channel of its group and kernel taps, then the output rows and columns
 * whose input position is inside the image (bounds computed, not tested per element),
 * innermost along a row so that it vectorizes. mode 0: y += x w; 1: x += y w;
 * 2: w += sum x y. x, w, y are the nodes in each role; n is the one being computed. */
static void conv_nest(CG *cg, Node *n, Node *x, Node *w, Node *y, int mode)
{
	const Shape *xs = &x->sh, *ws = &w->sh, *ys = &y->sh;
	ConvP p = convp_of(n);
	int64_t Cg = ws->d[1], Og = ws->d[0] / p.groups;
	int64_t H = xs->d[2], W = xs->d[3], OH = ys->d[2], OW = ys->d[3], KH = ws->d[2],
	        KW = ws->d[3];
	cg_zero(cg, n);
	Loop lb, lo, lc, lkh, lkw, loh, low;
	LLVMValueRef b = cg_loop(cg, &lb, ys->d[0]);
	LLVMValueRef o = cg_loop(cg, &lo, ws->d[0]);
	LLVMValueRef c = cg_loop(cg, &lc, Cg);
	LLVMValueRef ci = cg_add(
	    cg, cg_mul(cg, LLVMBuildSDiv(B, o, cg_i64(cg, Og), ""), cg_i64(cg, Cg)), c);
	LLVMValueRef kh = cg_loop(cg, &lkh, KH);
	LLVMValueRef kw = cg_loop(cg, &lkw, KW);
	LLVMValueRef oc = cg_add(cg, cg_mul(cg, o, cg_i64(cg, Cg)), c);
	LLVMValueRef woff = cg_add(
	    cg,
	    cg_mul(cg, cg_add(cg, cg_mul(cg, oc, cg_i64(cg, KH)), kh), cg_i64(cg, KW)),
	    kw);
	LLVMValueRef xplane = cg_mul(
	    cg, cg_add(cg, cg_mul(cg, b, cg_i64(cg, xs->d[1])), ci), cg_i64(cg, H * W));
	LLVMValueRef yplane = cg_mul(
	    cg, cg_add(cg, cg_mul(cg, b, cg_i64(cg, ys->d[1])), o), cg_i64(cg, OH * OW));
	LLVMValueRef lo_h, hi_h, lo_w, hi_w;
	valid_range(cg, kh, H, OH, p.stride[0], p.pad[0], p.dil[0], &lo_h, &hi_h);
	valid_range(cg, kw, W, OW, p.stride[1], p.pad[2], p.dil[1], &lo_w, &hi_w);
	LLVMValueRef wv = mode == 2 ? NULL : cg_load(cg, w, woff);
	LLVMValueRef oh = cg_loop_range(cg, &loh, lo_h, hi_h);
	LLVMValueRef ih = cg_add(cg, cg_i64(cg, -p.pad[0]),
	                         cg_add(cg, cg_mul(cg, oh, cg_i64(cg, p.stride[0])),
	                                cg_mul(cg, kh, cg_i64(cg, p.dil[0]))));
	LLVMValueRef xcol0 =
	    cg_add(cg, cg_i64(cg, -p.pad[2]), cg_mul(cg, kw, cg_i64(cg, p.dil[1])));
	ConvRow r = {x, y,
	             cg_add(cg, cg_add(cg, xplane, cg_mul(cg, ih, cg_i64(cg, W))), xcol0),
	             cg_add(cg, yplane, cg_mul(cg, oh, cg_i64(cg, OW))), p.stride[1]};
	if (mode == 2) {
		LLVMValueRef sum = range_sum(cg, lo_w, hi_w, conv_term, &r);
		cg_store(cg, w, woff,
		         cg_fast(LLVMBuildFAdd(B, cg_load(cg, w, woff), sum, "")));
	} else {
		LLVMValueRef ow = cg_loop_range(cg, &low, lo_w, hi_w);
		LLVMValueRef xo =
		    cg_add(cg, r.xrow, cg_mul(cg, ow, cg_i64(cg, p.stride[1])));
		LLVMValueRef yo = cg_add(cg, r.yrow, ow);
		Node *dst = mode == 0 ? y : x;
		LLVMValueRef dsto = mode == 0 ? yo : xo,
		             src = cg_load(cg, mode == 0 ? x : y, mode == 0 ? xo : yo);
		LLVMValueRef v = cg_fast(LLVMBuildFMul(B, src, wv, ""));
		cg_store(cg, dst, dsto,
		         cg_fast(LLVMBuildFAdd(B, cg_load(cg, dst, dsto), v, "")));
		cg_loop_end(cg, &low);
	}
	cg_loop_end(cg, &loh);
	cg_loop_end(cg, &lkw);
	cg_loop_end(cg, &lkh);
	cg_loop_end(cg, &lc);
	cg_loop_end(cg, &lo);
	cg_loop_end(cg, &lb);
}

/* Convolution as matrix products. Stride 1, where the padding costs few products, runs
 * implicitly over a padded copy of each image (conv_flat, dc.h): B's rows are runs of
 * it at each tap's offset. Otherwise (im2col) the kernel-sized patches of one image are
 * laid out as the columns of col [C*KH*KW, OH*OW] in the node's scratch, so that for
 * each group the output is W_g [O/g, Kc] times col_g [Kc, OH*OW] (Kc = C/g*KH*KW),
 * and the two backward convolutions are products with the transposes. */
typedef struct Conv {
	Node *x, *w, *y; /* the nodes in the roles of input, weight and output */
	ConvP p;
	int64_t Bn, C, H, W, O, OH, OW, KH, KW, Og, Kc, P;
} Conv;

static Conv conv_of(Node *n, Node *x, Node *w, Node *y)
{
	Conv c = {x,          w,          y,          convp_of(n),
	          x->sh.d[0], x->sh.d[1], x->sh.d[2], x->sh.d[3],
	          w->sh.d[0], y->sh.d[2], y->sh.d[3], w->sh.d[2],
	          w->sh.d[3], 0,          0,          0};
	c.Og = c.O / c.p.groups;
	c.Kc = w->sh.d[1] * c.KH * c.KW;
	c.P = c.OH * c.OW;
	return c;
}

/* col <-> image b of x: im2col copies patches into col (0 outside the image); back
 * adds col into the image (col2im). For each tap (channel, kh, kw) the output rows and
 * columns whose input is inside the image are computed once (valid_range), so the
 * inner loop is a plain strided copy (contiguous for stride 1), with zeros written
 * around it, and no test per element. */
static int patches_inside(const Conv *c)
{
	return !c->p.pad[0] && !c->p.pad[2] &&
	       (c->OH - 1) * c->p.stride[0] + (c->KH - 1) * c->p.dil[0] < c->H &&
	       (c->OW - 1) * c->p.stride[1] + (c->KW - 1) * c->p.dil[1] < c->W;
}

/* lanes from (a, b) as 2VW lanes: from + step * l */
static LLVMValueRef pick_lanes(CG *cg, LLVMValueRef a, LLVMValueRef b, int from, int step)
{
	int idx[MAX_VW];
	for (int l = 0; l < VW; l++)
		idx[l] = from + step * l;
	return shuffle(cg, a, b, idx);
}

/* a0 b0 a1 b1 ...: half 0 the first VW lanes, half 1 the next */
static LLVMValueRef interleave(CG *cg, LLVMValueRef a, LLVMValueRef b, int half)
{
	int idx[MAX_VW];
	for (int l = 0; l < VW; l++)
		idx[l] = half * (int)VW / 2 + l / 2 + (l % 2) * (int)VW;
	return shuffle(cg, a, b, idx);
}

/* The run col[orow + ow] = img[irow + 2 ow], ow in [a, z), at stride 2 (or, back, img
 * += col there), VW at a time: two masked loads of the image's row, its even lanes.
 * LLVM's own vectorizing of the scalar loop made each vector two gathers of 64-bit
 * indices, slow on AMD's Zen 4: a third of a stride-2 3 x 3 convolution's forward
 * kernel (32 to 64 channels, [64, 32, 32, 32]). Back, the odd lanes add -0, which
 * leaves every value as it was. */
static void stride2_run(CG *cg, LLVMValueRef img, LLVMValueRef irow, LLVMValueRef col,
                        LLVMValueRef orow, LLVMValueRef a, LLVMValueRef z, int back)
{
	LLVMTypeRef vt = LLVMVectorType(cg->f32, (unsigned)VW);
	Loop l;
	LLVMValueRef n = LLVMBuildSub(B, z, a, ""),
	             nv = LLVMBuildUDiv(B, cg_add(cg, n, cg_i64(cg, VW - 1)),
	                                cg_i64(cg, VW), "");
	LLVMValueRef ow = cg_add(
	    cg, a, cg_mul(cg, cg_loop_range(cg, &l, cg_i64(cg, 0), nv), cg_i64(cg, VW)));
	LLVMValueRef cnt = LLVMBuildSub(B, z, ow, ""), /* runs left, >= 1 */
	    span = LLVMBuildSub(B, cg_mul(cg, cnt, cg_i64(cg, 2)), cg_i64(cg, 1), "");
	LLVMValueRef m[2] = {lanes_below(cg, span),
	                     lanes_below(cg, LLVMBuildSub(B, span, cg_i64(cg, VW), ""))},
	             mo = lanes_below(cg, cnt);
	LLVMValueRef ip = gep(cg, img, cg_add(cg, irow, cg_mul(cg, ow, cg_i64(cg, 2)))),
	             cp = gep(cg, col, cg_add(cg, orow, ow));
	LLVMValueRef lo = cg_masked(cg, vt, m[0], ip, NULL),
	             hi = cg_masked(cg, vt, m[1], gep(cg, ip, cg_i64(cg, VW)), NULL);
	if (!back) {
		cg_masked(cg, vt, mo, cp, pick_lanes(cg, lo, hi, 0, 2));
	} else {
		LLVMValueRef v = cg_masked(cg, vt, mo, cp, NULL),
		             nz = cg_splat(cg, LLVMConstReal(cg->f32, -0.0), (int)VW);
		cg_masked(cg, vt, m[0], ip,
		          LLVMBuildFAdd(B, lo, interleave(cg, v, nz, 0), ""));
		cg_masked(cg, vt, m[1], gep(cg, ip, cg_i64(cg, VW)),
		          LLVMBuildFAdd(B, hi, interleave(cg, v, nz, 1), ""));
	}
	cg_loop_end(cg, &l);
}

static void patches(CG *cg, const Conv *c, LLVMValueRef img, LLVMValueRef col, int back)
{
	cg_full_opt(cg);
	int inside = patches_inside(c); /* no tests at all, static extents */
	Loop lc, lh, lw, lo, lq;
	LLVMValueRef ch = cg_loop(cg, &lc, c->C), kh = cg_loop(cg, &lh, c->KH),
	             kw = cg_loop(cg, &lw, c->KW);
	LLVMValueRef crow =
	    cg_mul(cg,
	           cg_add(cg,
	                  cg_mul(cg, cg_add(cg, cg_mul(cg, ch, cg_i64(cg, c->KH)), kh),
	                         cg_i64(cg, c->KW)),
	                  kw),
	           cg_i64(cg, c->P));
	LLVMValueRef plane = cg_mul(cg, ch, cg_i64(cg, c->H * c->W));
	LLVMValueRef lo_h = NULL, hi_h = NULL, lo_w = NULL, hi_w = NULL;
	if (!inside) {
		valid_range(cg, kh, c->H, c->OH, c->p.stride[0], c->p.pad[0], c->p.dil[0],
		            &lo_h, &hi_h);
		valid_range(cg, kw, c->W, c->OW, c->p.stride[1], c->p.pad[2], c->p.dil[1],
		            &lo_w, &hi_w);
	}
	LLVMValueRef oh = cg_loop(cg, &lo, c->OH);
	LLVMValueRef orow = cg_add(cg, crow, cg_mul(cg, oh, cg_i64(cg, c->OW)));
	/* columns [a, z) of this row are inside; none if the row is outside */
	LLVMValueRef a = cg_i64(cg, 0), z = cg_i64(cg, c->OW);
	if (!inside) {
		LLVMValueRef row_in =
		    LLVMBuildAnd(B, LLVMBuildICmp(B, LLVMIntSGE, oh, lo_h, ""),
		                 LLVMBuildICmp(B, LLVMIntSLT, oh, hi_h, ""), "");
		a = LLVMBuildSelect(B, row_in, lo_w, cg_i64(cg, c->OW), "");
		z = LLVMBuildSelect(B, row_in, cg_max(cg, hi_w, lo_w), a, "");
	}
	LLVMValueRef ih = cg_add(cg, cg_i64(cg, -c->p.pad[0]),
	                         cg_add(cg, cg_mul(cg, oh, cg_i64(cg, c->p.stride[0])),
	                                cg_mul(cg, kh, cg_i64(cg, c->p.dil[0]))));
	LLVMValueRef irow =
	    cg_add(cg, cg_add(cg, plane, cg_mul(cg, ih, cg_i64(cg, c->W))),
	           cg_add(cg, cg_i64(cg, -c->p.pad[2]),
	                  cg_mul(cg, kw, cg_i64(cg, c->p.dil[1]))));
	if (!back && !inside) {
		LLVMValueRef zero_at[2][2] = {{cg_i64(cg, 0), a}, {z, cg_i64(cg, c->OW)}};
		for (int e = 0; e < 2; e++) {
			LLVMValueRef ow =
			    cg_loop_range(cg, &lq, zero_at[e][0], zero_at[e][1]);
			LLVMBuildStore(B, cg_f32(cg, 0),
			               gep(cg, col, cg_add(cg, orow, ow)));
			cg_loop_end(cg, &lq);
		}
	}
	if (c->p.stride[1] == 2 && VW > 1) {
		stride2_run(cg, img, irow, col, orow, a, z, back);
	} else {
		LLVMValueRef ow = cg_loop_range(cg, &lq, a, z);
		LLVMValueRef at =
		    cg_add(cg, irow, cg_mul(cg, ow, cg_i64(cg, c->p.stride[1])));
		LLVMValueRef ci = cg_add(cg, orow, ow);
		if (!back)
			LLVMBuildStore(B, fload(cg, img, at), gep(cg, col, ci));
		else
			LLVMBuildStore(
			    B,
			    LLVMBuildFAdd(B, fload(cg, img, at), fload(cg, col, ci), ""),
			    gep(cg, img, at));
		cg_loop_end(cg, &lq);
	}
	cg_loop_end(cg, &lo);
	cg_loop_end(cg, &lw);
	cg_loop_end(cg, &lh);
	cg_loop_end(cg, &lc);
}

static LLVMValueRef at_index(CG *cg, LLVMValueRef base, LLVMValueRef i, int64_t stride,
                             int64_t add)
{
	return gep(cg, base,
	           cg_add(cg, cg_mul(cg, i, cg_i64(cg, stride)), cg_i64(cg, add)));
}

/* How many images lane takes of L lanes: lane, lane + L, ... */
static LLVMValueRef lane_count(CG *cg, const Conv *c, LLVMValueRef lane, int64_t L)
{
	return LLVMBuildSDiv(
	    B,
	    cg_add(cg, LLVMBuildSub(B, cg_i64(cg, c->Bn), lane, ""), cg_i64(cg, L - 1)),
	    cg_i64(cg, L), "");
}

/* The loop over lane's images: the index of each. */
static LLVMValueRef lane_images(CG *cg, const Conv *c, LLVMValueRef lane, int64_t L,
                                Loop *l)
{
	LLVMValueRef count = lane_count(cg, c, lane, L);
	return cg_add(
	    cg, lane,
	    cg_mul(cg, cg_loop_range(cg, l, cg_i64(cg, 0), count), cg_i64(cg, L)));
}

/* col2im for stride 1, as a gather: each vector of a row of the image is the sum of
 * its KH*KW taps' runs of col, masked where they fall outside the output (lanes known
 * when a row is one vector), and is written once. Adding each tap's run into the
 * image in place (patches) is scalar for short rows; in masked vectors it is slower
 * still, each store overlapping the next tap's load. */
static void col2im_rows(CG *cg, const Conv *c, LLVMValueRef img, LLVMValueRef col)
{
	LLVMTypeRef vt = LLVMVectorType(cg->f32, (unsigned)VW),
	            i1 = LLVMInt1TypeInContext(cg->ctx);
	Loop lc, lh, lv;
	LLVMValueRef ch = cg_loop(cg, &lc, c->C), ih = cg_loop(cg, &lh, c->H);
	int64_t nv = (c->W + VW - 1) / VW;
	LLVMValueRef iv = cg_loop(cg, &lv, nv), iw0 = cg_mul(cg, iv, cg_i64(cg, VW));
	LLVMValueRef acc = LLVMConstNull(vt);
	for (int64_t kh = 0; kh < c->KH; kh++) {
		LLVMValueRef oh =
		    cg_add(cg, ih, cg_i64(cg, c->p.pad[0] - kh * c->p.dil[0]));
		LLVMValueRef row_in = LLVMBuildAnd(
		    B, LLVMBuildICmp(B, LLVMIntSGE, oh, cg_i64(cg, 0), ""),
		    LLVMBuildICmp(B, LLVMIntSLT, oh, cg_i64(cg, c->OH), ""), "");
		for (int64_t kw = 0; kw < c->KW; kw++) {
			int64_t d = c->p.pad[2] - kw * c->p.dil[1]; /* ow = iw + d */
			LLVMValueRef mask;
			if (nv == 1) { /* one vector a row: the lanes are known */
				LLVMValueRef bits[MAX_VW];
				for (int l = 0; l < VW; l++)
					bits[l] = LLVMConstInt(
					    i1, l + d >= 0 && l + d < c->OW && l < c->W,
					    0);
				mask = LLVMConstVector(bits, (unsigned)VW);
			} else {
				LLVMValueRef lo =
				                 LLVMBuildSub(B, cg_i64(cg, -d), iw0, ""),
				             hi = cg_min(cg, cg_i64(cg, c->W),
				                         cg_i64(cg, c->OW - d));
				mask = LLVMBuildAnd(
				    B, lanes_below(cg, LLVMBuildSub(B, hi, iw0, "")),
				    LLVMBuildNot(B, lanes_below(cg, lo), ""), "");
			}
			mask = LLVMBuildSelect(B, row_in, mask,
			                       LLVMConstNull(LLVMTypeOf(mask)), "");
			LLVMValueRef run = cg_add(
			    cg,
			    cg_mul(cg,
			           cg_add(cg, cg_mul(cg, ch, cg_i64(cg, c->KH * c->KW)),
			                  cg_i64(cg, kh * c->KW + kw)),
			           cg_i64(cg, c->P)),
			    cg_add(cg, cg_mul(cg, oh, cg_i64(cg, c->OW)),
			           cg_add(cg, iw0, cg_i64(cg, d))));
			acc = LLVMBuildFAdd(
			    B, acc, cg_masked(cg, vt, mask, gep(cg, col, run), NULL), "");
		}
	}
	LLVMValueRef at =
	    cg_add(cg,
	           cg_mul(cg, cg_add(cg, cg_mul(cg, ch, cg_i64(cg, c->H)), ih),
	                  cg_i64(cg, c->W)),
	           iw0);
	cg_masked(cg, vt, lanes_below(cg, LLVMBuildSub(B, cg_i64(cg, c->W), iw0, "")),
	          gep(cg, img, at), acc);
	cg_loop_end(cg, &lv);
	cg_loop_end(cg, &lh);
	cg_loop_end(cg, &lc);
}

/* ---- implicit convolutions (conv_flat) ---- */

/* A constant table of n i64 values v, a private global of the module named name (by
 * what it holds: kernels with the same text share it and are deduplicated) */
static LLVMValueRef const_table(CG *cg, const char *name, LLVMValueRef *v, int64_t n)
{
	LLVMValueRef gv =
	    LLVMAddGlobal(cg->mod, LLVMArrayType(cg->i64, (unsigned)n), name);
	LLVMSetInitializer(gv, LLVMConstArray(cg->i64, v, (unsigned)n));
	LLVMSetGlobalConstant(gv, 1);
	LLVMSetLinkage(gv, LLVMPrivateLinkage);
	LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
	return gv;
}

/* The row offsets of B for an implicit product: tap t = (c, kh, kw) of a group, with
 * c < n, at c cs + conv_flat_tap(kh dil, kw dil) of the padded image (its phase
 * planes), or at the mirrored tap (KH - 1 - kh, KW - 1 - kw) when flip. */
static LLVMValueRef tap_offsets(CG *cg, const Conv *c, const ConvFlat *f, int64_t n,
                                int flip)
{
	int64_t K = n * c->KH * c->KW;
	/* named by what it holds, so that kernels with the same text share it and are
	 * deduplicated as before */
	char *name = arena_printf(
	    cg->g->A, "taps.%lldx%lldx%lld.%lldx%lldx%lldx%lld.%lldx%lld%s", (long long)n,
	    (long long)c->KH, (long long)c->KW, (long long)f->sh, (long long)f->sw,
	    (long long)f->Hs, (long long)f->Ws, (long long)c->p.dil[0],
	    (long long)c->p.dil[1], flip ? ".flip" : "");
	LLVMValueRef gv = LLVMGetNamedGlobal(cg->mod, name);
	if (gv)
		return gv;
	LLVMValueRef *v = arena_alloc(cg->g->A, (size_t)K * sizeof *v);
	for (int64_t t = 0; t < K; t++) {
		int64_t ch = t / (c->KH * c->KW), kh = t / c->KW % c->KH, kw = t % c->KW;
		if (flip)
			kh = c->KH - 1 - kh, kw = c->KW - 1 - kw;
		v[t] = LLVMConstInt(
		    cg->i64,
		    (unsigned long long)(ch * f->cs + conv_flat_tap(f, kh * c->p.dil[0],
		                                                    kw * c->p.dil[1])),
		    0);
	}
	return const_table(cg, name, v, K);
}

/* The zeros around a padded image in xp (pad_image), and after it: written once for
 * a lane's scratch, which then takes one image after another, each writing the same
 * places. Zeroing it for every image took a sixth of a stride-2 filter gradient. */
static void pad_zero(CG *cg, const ConvFlat *f, LLVMValueRef xp, int64_t images,
                     int64_t per)
{
	Loop li, lz;
	LLVMValueRef at = cg_mul(cg, cg_loop(cg, &li, images), cg_i64(cg, per));
	LLVMValueRef z = cg_loop(cg, &lz, f->xs);
	LLVMBuildStore(B, cg_f32(cg, 0), gep(cg, xp, cg_add(cg, at, z)));
	cg_loop_end(cg, &lz);
	cg_loop_end(cg, &li);
}

/* One image img (f->ch x f->h x f->w) into xp, padded, the zeros already there
 * (pad_zero); split into phase planes at stride 2 (ConvFlat), a row's two column
 * phases each a run of its even or odd elements (stride2_run). */
static void pad_image(CG *cg, const ConvFlat *f, LLVMValueRef img, LLVMValueRef xp)
{
	Loop lc, lh, lw;
	LLVMValueRef ch = cg_loop(cg, &lc, f->ch), ih = cg_loop(cg, &lh, f->h);
	LLVMValueRef src = cg_mul(cg, cg_add(cg, cg_mul(cg, ch, cg_i64(cg, f->h)), ih),
	                          cg_i64(cg, f->w));
	/* the padded row r: row r / sh of the phase planes r % sh (conv_flat_tap) */
	LLVMValueRef r = cg_add(cg, ih, cg_i64(cg, f->top)), sh = cg_i64(cg, f->sh);
	LLVMValueRef row =
	    cg_add(cg, cg_mul(cg, ch, cg_i64(cg, f->cs)),
	           cg_add(cg,
	                  cg_mul(cg, LLVMBuildURem(B, r, sh, ""),
	                         cg_i64(cg, f->sw * f->Hs * f->Ws)),
	                  cg_mul(cg, LLVMBuildUDiv(B, r, sh, ""), cg_i64(cg, f->Ws))));
	if (f->sw == 1) {
		LLVMValueRef dst = cg_add(cg, row, cg_i64(cg, f->left));
		LLVMValueRef iw = cg_loop(cg, &lw, f->w);
		LLVMBuildStore(B, fload(cg, img, cg_add(cg, src, iw)),
		               gep(cg, xp, cg_add(cg, dst, iw)));
		cg_loop_end(cg, &lw);
	}
	for (int64_t q = 0; q < 2 && f->sw == 2; q++) {
		/* column j of phase q: the image's 2 j + q - left, for j in [a, e) */
		int64_t a = f->left - q > 0 ? (f->left - q + 1) / 2 : 0,
		        e = (f->w + f->left - q + 1) / 2;
		e = e < f->Ws ? e : f->Ws;
		if (e <= a)
			continue;
		LLVMValueRef irow = cg_add(cg, src, cg_i64(cg, q - f->left)),
		             orow = cg_add(cg, row, cg_i64(cg, q * f->Hs * f->Ws));
		stride2_run(cg, img, irow, xp, orow, cg_i64(cg, a), cg_i64(cg, e), 0);
	}
	cg_loop_end(cg, &lh);
	cg_loop_end(cg, &lc);
}

/* Image b's values of node y (a convolution's output, or a data gradient's dx: nch
 * channels of rows x width), on rows of ws in yp, pc a channel: into y's place, or
 * through the epilogue e (Plan) if any into e's values: y's own are then never
 * stored. Each row on vectors, the last one masked (LLVM's own vectorizing of the
 * scalar loop used 4 lanes and a scalar max: a fifth of LeNet's first convolution;
 * without an epilogue, the copy of a stride-2 convolution's rows of 16 took 7% of its
 * kernel). */
static void epilogue_rows(CG *cg, Node *y, int64_t nch, int64_t rows, int64_t width,
                          int64_t pc, int64_t ws, Node *e, LLVMValueRef b,
                          LLVMValueRef yp)
{
	Loop lo, lh, lw;
	LLVMValueRef idx[4] = {b, cg_loop(cg, &lo, nch), cg_loop(cg, &lh, rows), NULL};
	LLVMValueRef row = cg_add(cg, cg_mul(cg, idx[1], cg_i64(cg, rows)), idx[2]);
	LLVMValueRef in = cg_add(cg, cg_mul(cg, idx[1], cg_i64(cg, pc)),
	                         cg_mul(cg, idx[2], cg_i64(cg, ws))),
	             out = cg_mul(cg,
	                          cg_add(cg, cg_mul(cg, b, cg_i64(cg, nch * rows)), row),
	                          cg_i64(cg, width));
	idx[3] = cg_mul(cg, cg_loop(cg, &lw, (width + VW - 1) / VW), cg_i64(cg, VW));
	Gemm g = {.vt = LLVMVectorType(cg->f32, VW)};
	if (width % VW)
		g.mask = lanes_below(cg, LLVMBuildSub(B, cg_i64(cg, width), idx[3], ""));
	LLVMValueRef v = vload(cg, &g, gep(cg, yp, cg_add(cg, in, idx[3])));
	if (e)
		v = epilogue_vec(cg, e, y, v, idx, g.mask);
	vstore(cg, &g, v, gep(cg, cg_node_ptr(cg, e ? e : y), cg_add(cg, out, idx[3])));
	cg_loop_end(cg, &lw);
	cg_loop_end(cg, &lh);
	cg_loop_end(cg, &lo);
}

/* One image's output gradient y (O channels of OH x OW) into yp, its channels f->pc
 * apart on rows of Ws, with zeros in the unused positions. */
static void flat_channels(CG *cg, const Conv *c, const ConvFlat *f, LLVMValueRef y,
                          LLVMValueRef yp)
{
	Loop lo, lr, lw, lz, lt;
	LLVMValueRef o = cg_loop(cg, &lo, c->O), ypo = at_index(cg, yp, o, f->pc, 0);
	LLVMValueRef r = cg_loop(cg, &lr, c->OH);
	/* row r of channel o, and its copy */
	LLVMValueRef yr = at_index(cg, at_index(cg, y, o, c->P, 0), r, c->OW, 0),
	             pr = at_index(cg, ypo, r, f->Ws, 0);
	LLVMValueRef w = cg_loop(cg, &lw, c->OW);
	LLVMBuildStore(B, fload(cg, yr, w), gep(cg, pr, w));
	cg_loop_end(cg, &lw);
	if (f->Ws > c->OW) {
		LLVMValueRef z = cg_loop(cg, &lz, f->Ws - c->OW);
		LLVMBuildStore(B, cg_f32(cg, 0),
		               gep(cg, pr, cg_add(cg, z, cg_i64(cg, c->OW))));
		cg_loop_end(cg, &lz);
	}
	cg_loop_end(cg, &lr);
	if (f->pc > c->OH * f->Ws) {
		LLVMValueRef t = cg_loop(cg, &lt, f->pc - c->OH * f->Ws);
		LLVMBuildStore(B, cg_f32(cg, 0),
		               gep(cg, ypo, cg_add(cg, t, cg_i64(cg, c->OH * f->Ws))));
		cg_loop_end(cg, &lt);
	}
	cg_loop_end(cg, &lo);
}

/* The data gradient of a stride-1 convolution: dx_g = W'_g dy'_g, where dy' is dy
 * padded (conv_flat) and W'_g [C/g, O/g KH KW] the group's filter with its in and out
 * channels swapped, copied into the scratch first; the taps run mirrored. */
static void data_grad_flat(CG *cg, Node *n, const Conv *c, const ConvFlat *f)
{
	int64_t Cg = c->C / c->p.groups, KK = c->KH * c->KW, Kd = c->Og * KK,
	        wn = (shape_numel(&c->w->sh) + 15) & ~(int64_t)15, per = f->xs + f->ys,
	        L = c->Bn < CONV_LANES ? c->Bn : CONV_LANES, Pe = c->H * f->Wp;
	{ /* W'[g][c][o][k] = W[g][o][c][k] */
		Loop lg, lo, lc, lk;
		LLVMValueRef gi = cg_loop(cg, &lg, c->p.groups),
		             o = cg_loop(cg, &lo, c->Og), ci = cg_loop(cg, &lc, Cg),
		             k = cg_loop(cg, &lk, KK);
		LLVMValueRef go = cg_add(cg, cg_mul(cg, gi, cg_i64(cg, c->Og)), o),
		             gc = cg_add(cg, cg_mul(cg, gi, cg_i64(cg, Cg)), ci);
		LLVMValueRef src =
		    cg_add(cg,
		           cg_mul(cg, cg_add(cg, cg_mul(cg, go, cg_i64(cg, Cg)), ci),
		                  cg_i64(cg, KK)),
		           k);
		LLVMValueRef dst =
		    cg_add(cg,
		           cg_mul(cg, cg_add(cg, cg_mul(cg, gc, cg_i64(cg, c->Og)), o),
		                  cg_i64(cg, KK)),
		           k);
		LLVMBuildStore(B, fload(cg, cg_node_ptr(cg, c->w), src),
		               gep(cg, scratch(cg, n), dst));
		cg_loop_end(cg, &lk);
		cg_loop_end(cg, &lc);
		cg_loop_end(cg, &lo);
		cg_loop_end(cg, &lg);
	}
	cg_next_kernel(cg); /* then the images, in lanes */
	LLVMValueRef taps = tap_offsets(cg, c, f, c->Og, 1);
	Loop ll, lb, lg;
	LLVMValueRef lane = cg_par_loop(cg, &ll, L, 1);
	LLVMValueRef xp = at_index(cg, scratch(cg, n), lane, per, wn),
	             yp = gep(cg, xp, cg_i64(cg, f->xs));
	pad_zero(cg, f, xp, 1, per);
	LLVMValueRef b = lane_images(cg, c, lane, L, &lb);
	pad_image(cg, f, at_index(cg, cg_node_ptr(cg, c->y), b, c->O * c->P, 0), xp);
	LLVMValueRef gi = cg_loop(cg, &lg, c->p.groups);
	/* dx in place when its rows are whole vectors, as conv_gemm's output */
	int inplace = c->W % VW == 0;
	LLVMValueRef dx = at_index(cg, cg_node_ptr(cg, c->x), b, c->C * c->H * c->W, 0);
	int64_t N = inplace ? c->H * c->W : Pe;
	Gemm g = {.pa = at_index(cg, scratch(cg, n), gi, Cg * Kd, 0),
	          .pb = at_index(cg, xp, gi, c->Og * f->cs, 0),
	          .pc = at_index(cg, inplace ? dx : yp, gi, Cg * N, 0),
	          .M = Cg,
	          .N = N,
	          .K = Kd,
	          .lda = Kd,
	          .ldc = N,
	          .vt = LLVMVectorType(cg->f32, VW),
	          .boff = taps,
	          .bw = inplace ? c->W : 0,
	          .bws = inplace ? f->Ws : 0};
	gemm(cg, &g);
	cg_loop_end(cg, &lg);
	if (!inplace)
		epilogue_rows(cg, n, c->C, c->H, c->W, f->pc, f->Ws, NULL, b, yp);
	cg_loop_end(cg, &lb);
	cg_loop_end(cg, &ll);
}

/* The filter gradient, dW = the sum over images of dy_b col_b^T. The images run in
 * lanes, as in conv_gemm: lane l takes images l, l + L, ... in chunks that fit L2
 * (conv_chunk), writes each chunk's patches (or padded images and dy on rows of Ws,
 * conv_flat) side by side in its own space, the same for every chunk, and at once adds
 * the dot products over all of them (k runs over every image's positions, segment by
 * segment) to its own partial dW. Then a second kernel adds the L partials in lane
 * order: the sum is the same for any number of threads, and the patches are read
 * back from L2, not memory. */
static void filter_grad(CG *cg, Node *n, const Conv *c)
{
	ConvFlat f;
	int flat = conv_flat(n, &f), pw = conv_pointwise(n);
	int rows = conv_dy_rows(n, (int)VW); /* dy read in place */
	int64_t per = pw     ? 0
	              : flat ? f.xs + f.ys
	                     : c->C * c->KH * c->KW * c->P,
	        chw = c->C * c->H * c->W, L = c->Bn < CONV_LANES ? c->Bn : CONV_LANES,
	        wn = shape_numel(&n->sh);
	/* images per chunk; a pointwise convolution's are read in place, all at once */
	int64_t ch = conv_chunk(per, c->Bn, L);
	Loop ll, lz, lc, lb, lg;
	LLVMValueRef lane = cg_par_loop(cg, &ll, L, 1);
	/* the lane's space for a chunk of images, then its partial dW */
	LLVMValueRef buf = at_index(cg, scratch(cg, n), lane, ch * per, 0),
	             parts = at_index(cg, scratch(cg, n), lane, wn, L * ch * per);
	LLVMValueRef z = cg_loop(cg, &lz, wn);
	LLVMBuildStore(B, cg_f32(cg, 0), gep(cg, parts, z));
	cg_loop_end(cg, &lz);
	if (flat)
		pad_zero(cg, &f, buf, ch, per);
	/* the lane's images, count of them, in chunks [s0, s0 + m) */
	LLVMValueRef count = lane_count(cg, c, lane, L);
	LLVMValueRef nch =
	    LLVMBuildSDiv(B, cg_add(cg, count, cg_i64(cg, ch - 1)), cg_i64(cg, ch), "");
	LLVMValueRef s0 = cg_mul(cg, cg_loop_n(cg, &lc, nch), cg_i64(cg, ch));
	LLVMValueRef m = cg_min(cg, cg_i64(cg, ch), LLVMBuildSub(B, count, s0, ""));
	LLVMValueRef first = cg_add(cg, lane, cg_mul(cg, s0, cg_i64(cg, L)));
	if (!pw) {
		LLVMValueRef i = cg_loop_range(cg, &lb, cg_i64(cg, 0), m),
		             b = cg_add(cg, first, cg_mul(cg, i, cg_i64(cg, L)));
		LLVMValueRef img = at_index(cg, cg_node_ptr(cg, c->x), b, chw, 0),
		             mine = at_index(cg, buf, i, per, 0);
		if (flat) { /* the padded image, and dy on rows of Ws after it, f.pc
			     * a channel, unless read in place */
			pad_image(cg, &f, img, mine);
			if (!rows)
				flat_channels(cg, c, &f,
				              at_index(cg, cg_node_ptr(cg, c->y), b,
				                       c->O * c->P, 0),
				              gep(cg, mine, cg_i64(cg, f.xs)));
		} else {
			patches(cg, c, img, mine, 0);
		}
		cg_loop_end(cg, &lb);
	}
	LLVMValueRef taps = flat ? tap_offsets(cg, c, &f, c->C / c->p.groups, 0) : NULL;
	LLVMValueRef gi = cg_loop(cg, &lg, c->p.groups);
	/* positions per image: OH rows of Ws (flat), or of OW */
	int64_t Pe = flat && !rows ? f.pc : c->P;
	Gemm g = {.pa = flat && !rows
	                    ? gep(cg, buf, cg_i64(cg, f.xs))
	                    : at_index(cg, cg_node_ptr(cg, c->y), first, c->O * c->P, 0),
	          .pb = pw ? at_index(cg, cg_node_ptr(cg, c->x), first, chw, 0) : buf,
	          .pc = parts,
	          .acc = 1,
	          .M = c->Og,
	          .N = c->Kc,
	          .K = rows ? c->OW : Pe,
	          .lda = Pe,
	          .ldb = c->P,
	          .ldc = c->Kc,
	          .vt = LLVMVectorType(cg->f32, VW),
	          .rows = rows ? c->OH : 0,
	          .rowa = c->OW,
	          .rowb = rows ? f.Ws : 0,
	          .sega = flat && !rows ? per : L * c->O * c->P,
	          .segb = pw ? L * chw : per,
	          .segs = m,
	          .boff = taps};
	g.pa = gep(cg, g.pa, cg_mul(cg, gi, cg_i64(cg, c->Og * Pe)));
	g.pb = gep(
	    cg, g.pb,
	    cg_mul(cg, gi, cg_i64(cg, flat ? c->C / c->p.groups * f.cs : c->Kc * c->P)));
	g.pc = gep(cg, g.pc, cg_mul(cg, gi, cg_i64(cg, c->Og * c->Kc)));
	gemm_bt(cg, &g);
	cg_loop_end(cg, &lg);
	cg_loop_end(cg, &lc);
	cg_loop_end(cg, &ll);
	cg_next_kernel(cg); /* then dW = the partials' sum, in lane order */
	Loop le;
	LLVMValueRef e = cg_par_loop(cg, &le, wn, 1024);
	LLVMValueRef p0 = gep(cg, scratch(cg, n), cg_i64(cg, L * ch * per)), sum = NULL;
	for (int64_t l = 0; l < L; l++) {
		LLVMValueRef v = fload(cg, p0, cg_add(cg, e, cg_i64(cg, l * wn)));
		sum = sum ? LLVMBuildFAdd(B, sum, v, "") : v;
	}
	LLVMBuildStore(B, sum, gep(cg, cg_node_ptr(cg, n), e));
	cg_loop_end(cg, &le);
}

static void dw_rows(CG *cg, Node *n, const Conv *c, int mode, Node *epi);
static void dw_filter(CG *cg, Node *n, const Conv *c);

/* mode 0: y = conv(x, w); 1: dx = conv_bwd_data(dy, w); 2: dw = conv_bwd_filter(x, dy).
 * The images run in lanes: lane l takes images l, l + L, ... with its own scratch, and
 * threads take whole lanes. */
static void conv_gemm(CG *cg, Node *n, const Conv *c, int mode)
{
	if (conv_depthwise(n)) {
		Node *epi = mode != 2 ? cg->p->epi[n->id] : NULL;
		if (epi)
			cg_epilogue_begin(cg, epi);
		if (mode == 2)
			dw_filter(cg, n, c);
		else
			dw_rows(cg, n, c, mode, epi);
		if (epi)
			cg_epilogue_end(cg);
		return;
	}
	if (mode == 2) { /* the filter gradient: every image's patches, then one sum */
		filter_grad(cg, n, c);
		return;
	}
	ConvFlat fd;
	if (mode == 1 && conv_flat(n, &fd)) {
		data_grad_flat(cg, n, c, &fd);
		return;
	}
	LLVMTypeRef vt = LLVMVectorType(cg->f32, VW);
	LLVMValueRef X = cg_node_ptr(cg, c->x), Wt = cg_node_ptr(cg, c->w),
	             Y = cg_node_ptr(cg, c->y);
	ConvFlat f;
	int flat = mode == 0 && conv_flat(n, &f);
	int64_t L = c->Bn < CONV_LANES ? c->Bn : CONV_LANES,
	        per = flat ? f.xs + f.ys : c->C * c->KH * c->KW * c->P,
	        chw = c->C * c->H * c->W;
	LLVMValueRef taps = flat ? tap_offsets(cg, c, &f, c->C / c->p.groups, 0) : NULL;
	Node *epi = mode == 0 ? cg->p->epi[n->id] : NULL;
	if (epi)
		cg_epilogue_begin(cg, epi);
	Loop ll, lb, lg;
	LLVMValueRef lane = cg_par_loop(cg, &ll, L, 1);
	LLVMValueRef col = at_index(cg, scratch(cg, n), lane, per, 0);
	if (flat)
		pad_zero(cg, &f, col, 1, per);
	LLVMValueRef b = lane_images(cg, c, lane, L, &lb);
	LLVMValueRef img = at_index(cg, X, b, chw, 0);
	int pw = conv_pointwise(n), /* the image is its own patches */
	    gather = mode == 1 && c->p.stride[0] == 1 && c->p.stride[1] == 1;
	if (pw) {
		col = img;
	} else if (mode == 1) {
		if (!gather) { /* dx_b = 0, then col2im adds into it */
			Loop lz;
			LLVMValueRef z = cg_loop(cg, &lz, chw);
			LLVMBuildStore(B, cg_f32(cg, 0), gep(cg, img, z));
			cg_loop_end(cg, &lz);
		}
	} else if (flat) {
		pad_image(cg, &f, img, col);
	} else {
		patches(cg, c, img, col, 0);
	}
	LLVMValueRef gi = cg_loop(cg, &lg, c->p.groups);
	LLVMValueRef wg = at_index(cg, Wt, gi, c->Og * c->Kc, 0);
	LLVMValueRef colg = at_index(cg, col, gi, c->Kc * c->P, 0);
	/* an implicit convolution's output in place when no vector straddles two of its
	 * rows, and its epilogue can take each image's positions as one flat axis */
	int inplace =
	    flat && c->OW % VW == 0 && (!epi || plan_planes_flat(cg->p, epi, n));
	LLVMValueRef yg = gep(cg, (pw || inplace) && epi ? cg_node_ptr(cg, epi) : Y,
	                      cg_add(cg, cg_mul(cg, b, cg_i64(cg, c->O * c->P)),
	                             cg_mul(cg, gi, cg_i64(cg, c->Og * c->P))));
	if (mode == 0) { /* y_g = W_g B_g: B the taps' runs of the padded image, y_g on
		          * rows of Ws after it, f.pc a channel (flat), or col_g, y_g */
		int64_t N = flat && !inplace ? f.pc : c->P;
		Gemm g = {.pa = wg,
		          .pb = flat ? at_index(cg, col, gi, c->C / c->p.groups * f.cs, 0)
		                     : colg,
		          .pc = flat && !inplace ? at_index(cg, col, gi, c->Og * N, f.xs)
		                                 : yg,
		          .M = c->Og,
		          .N = N,
		          .K = c->Kc,
		          .lda = c->Kc,
		          .ldb = c->P,
		          .ldc = N,
		          .vt = vt,
		          .boff = taps,
		          .bw = inplace ? c->OW : 0,
		          .bws = inplace ? f.Ws : 0};
		if ((pw || inplace) && epi) /* a bias and activation, as C is stored */
			g.epi = epi, g.epin = n, g.eimg = b,
			g.echan = cg_mul(cg, gi, cg_i64(cg, c->Og));
		gemm(cg, &g);
	} else { /* col_g = W_g^T dy_g */
		Gemm g = {.pa = wg,
		          .pb = yg,
		          .pc = colg,
		          .ta = 1,
		          .M = c->Kc,
		          .N = c->P,
		          .K = c->Og,
		          .lda = c->Kc,
		          .ldb = c->P,
		          .ldc = c->P,
		          .vt = vt};
		gemm(cg, &g);
	}
	cg_loop_end(cg, &lg);
	if (gather && !pw)
		col2im_rows(cg, c, img, col);
	else if (mode == 1 && !pw)
		patches(cg, c, img, col, 1);
	if (flat && !inplace)
		epilogue_rows(cg, c->y, c->O, c->OH, c->OW, f.pc, f.Ws, epi, b,
		              gep(cg, col, cg_i64(cg, f.xs)));
	cg_loop_end(cg, &lb);
	cg_loop_end(cg, &ll);
	if (epi)
		cg_epilogue_end(cg);
}

/* ---- depthwise convolutions (conv_depthwise) ----
 *
 * A filter per channel, stride 1 or 2: each output row is a sum over the taps of a row
 * of the image, shifted, times the tap's weight, computed a vector at a time straight
 * from the image: the lanes whose input falls outside it are masked off the loads, so
 * there is no padded copy, and no product of M = 1 (as im2col or conv_flat would make
 * it) whose copies took most of the time. The data gradient is the same loop over dy
 * with the taps' offsets turned around. At stride 2 along rows, a tap's inputs are the
 * even lanes of a pair of loads, and the data gradient's are every other lane of a
 * vector of dy spread out; rows at stride 2 are taken where 2 divides. (Through
 * patches, MobileNet's stride-2 depthwise convolutions ran at 4-8 GFLOP/s: a
 * depthwise-separable model 1.21-1.33x as fast this way.) */

/* Lanes l of the vector at column col whose column col + l lies in [0, n), and in the
 * row when ok is set: i32 lanes, a mask for a load. */
static LLVMValueRef cols_inside(CG *cg, LLVMValueRef col, int64_t n, LLVMValueRef ok)
{
	LLVMValueRef k[MAX_VW];
	for (int l = 0; l < VW; l++)
		k[l] = LLVMConstInt(cg->i32, (unsigned long long)l, 0);
	LLVMValueRef c = LLVMBuildTrunc(B, col, cg->i32, "");
	LLVMValueRef in = LLVMBuildICmp(
	    B, LLVMIntULT,
	    LLVMBuildAdd(B, cg_splat(cg, c, (int)VW), LLVMConstVector(k, (unsigned)VW),
	                 ""),
	    cg_splat(cg, LLVMConstInt(cg->i32, (unsigned long long)n, 0), (int)VW), "");
	return ok ? LLVMBuildAnd(B, in, cg_splat(cg, ok, (int)VW), "") : in;
}

/* A row's values (at rowp, n of them) for the vector of outputs from column col: at
 * col + off + l (stride 1), or at 2 (col + l) + off (stride 2: the even lanes of a pair
 * of loads); 0 outside [0, n), where the row is not ok, and outside tail (if set). */
static LLVMValueRef row_taps(CG *cg, LLVMValueRef rowp, LLVMValueRef col, int64_t off,
                             int64_t n, LLVMValueRef ok, LLVMValueRef tail,
                             int64_t stride)
{
	LLVMTypeRef vt = LLVMVectorType(cg->f32, (unsigned)VW);
	if (stride == 1) {
		LLVMValueRef sc = cg_add(cg, col, cg_i64(cg, off));
		LLVMValueRef m = cols_inside(cg, sc, n, ok);
		if (tail)
			m = LLVMBuildAnd(B, m, tail, "");
		return cg_masked(cg, vt, m, gep(cg, rowp, sc), NULL);
	}
	LLVMValueRef sc = cg_add(cg, cg_mul(cg, col, cg_i64(cg, 2)), cg_i64(cg, off)),
	             pair[2];
	for (int h = 0; h < 2; h++) {
		LLVMValueRef at = cg_add(cg, sc, cg_i64(cg, h * VW));
		pair[h] = cg_masked(cg, vt, cols_inside(cg, at, n, ok), gep(cg, rowp, at),
		                    NULL);
	}
	LLVMValueRef v = pick_lanes(cg, pair[0], pair[1], 0, 2);
	return tail ? LLVMBuildSelect(B, tail, v, LLVMConstNull(vt), "") : v;
}

/* mode 0: y[b, ch] = sum over taps (kh, kw) of w[ch, kh, kw] x[b, ch] at (oh - top +
 * kh dil, ow - left + kw dil); mode 1: dx[b, ch] = the same sum of dy at (ih + top - kh
 * dil, iw + left - kw dil). The threads share the planes. */
static void dw_rows(CG *cg, Node *n, const Conv *c, int mode, Node *epi)
{
	Node *src = mode ? c->y : c->x, *dst = mode ? c->x : c->y;
	int64_t SH = src->sh.d[2], SW = src->sh.d[3], DH = dst->sh.d[2],
	        DW = dst->sh.d[3], KK = c->KH * c->KW, sgn = mode ? -1 : 1;
	int64_t r0 = mode ? c->p.pad[0] : -c->p.pad[0],
	        c0 = mode ? c->p.pad[2] : -c->p.pad[2];
	Loop lp, lr, lv;
	LLVMValueRef plane = cg_par_loop(cg, &lp, c->Bn * c->C, 1);
	LLVMValueRef ch = LLVMBuildURem(B, plane, cg_i64(cg, c->C), ""),
	             b = LLVMBuildUDiv(B, plane, cg_i64(cg, c->C), "");
	LLVMValueRef sp = at_index(cg, cg_node_ptr(cg, src), plane, SH * SW, 0);
	LLVMValueRef wt[49];
	for (int64_t t = 0; t < KK; t++)
		wt[t] = cg_splat(
		    cg,
		    fload(cg, cg_node_ptr(cg, c->w),
		          cg_add(cg, cg_mul(cg, ch, cg_i64(cg, KK)), cg_i64(cg, t))),
		    (int)VW);
	LLVMValueRef row = cg_loop(cg, &lr, DH);
	LLVMValueRef col =
	    cg_mul(cg, cg_loop(cg, &lv, (DW + VW - 1) / VW), cg_i64(cg, VW));
	Gemm g = {.vt = LLVMVectorType(cg->f32, VW)};
	LLVMValueRef tail = DW % VW ? cols_inside(cg, col, DW, NULL) : NULL;
	LLVMValueRef acc = LLVMConstNull(g.vt);
	int64_t sh = c->p.stride[0], sw = c->p.stride[1];
	for (int64_t kh = 0; kh < c->KH; kh++) {
		LLVMValueRef sr, rok;
		if (!mode) { /* x's row oh sh - top + kh dil */
			sr = cg_add(cg, cg_mul(cg, row, cg_i64(cg, sh)),
			            cg_i64(cg, r0 + kh * c->p.dil[0]));
			rok = LLVMBuildICmp(B, LLVMIntULT, sr, cg_i64(cg, SH), "");
		} else { /* dy's row (ih + top - kh dil) / sh, where that divides */
			LLVMValueRef num =
			    cg_add(cg, row, cg_i64(cg, r0 - kh * c->p.dil[0]));
			sr = LLVMBuildSDiv(B, num, cg_i64(cg, sh), "");
			rok = LLVMBuildAnd(
			    B, LLVMBuildICmp(B, LLVMIntULT, sr, cg_i64(cg, SH), ""),
			    LLVMBuildICmp(B, LLVMIntEQ,
			                  LLVMBuildSRem(B, num, cg_i64(cg, sh), ""),
			                  cg_i64(cg, 0), ""),
			    "");
		}
		LLVMValueRef srow = gep(cg, sp, cg_mul(cg, sr, cg_i64(cg, SW)));
		/* the data gradient at stride 2 along rows: a row's taps only when dy
		 * has the row (half of them at 3 x 3), not their loads all masked off */
		LLVMBasicBlockRef from = LLVMGetInsertBlock(B), join = NULL;
		LLVMValueRef before = acc;
		if (mode && sh > 1) {
			LLVMBasicBlockRef taps =
			    LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "row");
			join = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "");
			LLVMBuildCondBr(B, rok, taps, join);
			LLVMPositionBuilderAtEnd(B, taps);
			rok = NULL;
		}
		for (int64_t kw = 0; kw < c->KW; kw++) {
			int64_t t = kh * c->KW + kw, off = c0 + sgn * kw * c->p.dil[1];
			LLVMValueRef v;
			if (sw == 1 || !mode) {
				v = row_taps(cg, srow, col, off, SW, rok, tail, sw);
			} else { /* dy at (iw + off) / 2 on the lanes where 2 divides it:
				  * every other lane, from a vector of dy spread out */
				int64_t par = off & 1; /* (col is even) */
				LLVMValueRef sc = LLVMBuildAShr(
				    B, cg_add(cg, col, cg_i64(cg, off + par)),
				    cg_i64(cg, 1), "");
				LLVMValueRef d =
				    cg_masked(cg, g.vt, cols_inside(cg, sc, SW, rok),
				              gep(cg, srow, sc), NULL);
				int idx[MAX_VW];
				for (int l = 0; l < VW; l++)
					idx[l] = (l + par) % 2 ? (int)VW
					                       : (int)((l - par) / 2);
				v = shuffle(cg, d, LLVMConstNull(g.vt), idx);
			}
			acc = vfma(cg, &g, wt[t], v, acc);
		}
		if (join) {
			LLVMBasicBlockRef end = LLVMGetInsertBlock(B);
			LLVMBuildBr(B, join);
			LLVMPositionBuilderAtEnd(B, join);
			LLVMValueRef phi = LLVMBuildPhi(B, g.vt, "");
			LLVMValueRef in[2] = {before, acc};
			LLVMBasicBlockRef bb[2] = {from, end};
			LLVMAddIncoming(phi, in, bb, 2);
			acc = phi;
		}
	}
	LLVMValueRef out =
	    cg_add(cg,
	           cg_mul(cg, cg_add(cg, cg_mul(cg, plane, cg_i64(cg, DH)), row),
	                  cg_i64(cg, DW)),
	           col);
	g.mask = tail;
	if (epi) {
		LLVMValueRef idx[4] = {b, ch, row, col};
		acc = epilogue_vec(cg, epi, n, acc, idx, tail);
	}
	vstore(cg, &g, acc, gep(cg, cg_node_ptr(cg, epi ? epi : dst), out));
	cg_loop_end(cg, &lv);
	cg_loop_end(cg, &lr);
	cg_loop_end(cg, &lp);
}

/* dw[ch, kh, kw] = the sum over images and positions of dy[b, ch] times x[b, ch] at
 * (oh - top + kh dil, ow - left + kw dil): a vector of sums per tap, added to along
 * each row, reduced at the end. The threads share blocks of channels, each summing
 * its own in one order: the same bits for any number of threads. Within a block the
 * images run outside the channels, so that an image's planes of the block, DW_BYTES
 * of them (at most DW_BLOCK planes), are read one after the other. One channel at a
 * time, its planes an image apart, each plane began a stream the prefetchers had not
 * seen: MobileNet's stride-2 3 x 3 filter gradient over 32 x 32 images of 32 channels
 * ran at 8.5 GFLOP/s, 9 GB/s of the planes. */
enum { DW_BLOCK = 16, DW_BYTES = 16 << 10 };
static void dw_filter(CG *cg, Node *n, const Conv *c)
{
	int64_t KK = c->KH * c->KW, H = c->H, W = c->W, OH = c->OH, OW = c->OW,
	        blk = DW_BYTES / (4 * H * W);
	blk = blk < 1 ? 1 : blk > DW_BLOCK ? DW_BLOCK : blk;
	int64_t nblk = (c->C + blk - 1) / blk;
	LLVMTypeRef vt = LLVMVectorType(cg->f32, VW),
	            at = LLVMArrayType(vt, (unsigned)(blk * KK)),
	            ct = LLVMArrayType(vt, (unsigned)KK);
	Gemm g = {.vt = vt};
	LLVMBasicBlockRef here = LLVMGetInsertBlock(B);
	LLVMPositionBuilderAtEnd(B, LLVMGetEntryBasicBlock(cg->fn));
	/* the block's sums, and one channel's while a plane runs (in registers) */
	LLVMValueRef sums = LLVMBuildAlloca(B, at, "taps"),
	             cur = LLVMBuildAlloca(B, ct, "plane");
	LLVMPositionBuilderAtEnd(B, here);
	Loop lk, lz, lb, lj, lr, lv, lo;
	LLVMValueRef ch0 = cg_mul(cg, cg_par_loop(cg, &lk, nblk, 1), cg_i64(cg, blk));
	LLVMValueRef nch =
	    cg_min(cg, cg_i64(cg, blk), LLVMBuildSub(B, cg_i64(cg, c->C), ch0, ""));
	LLVMValueRef z = cg_loop(cg, &lz, blk * KK), i2[2] = {cg_i64(cg, 0), z};
	LLVMBuildStore(B, LLVMConstNull(vt), LLVMBuildGEP2(B, at, sums, i2, 2, ""));
	cg_loop_end(cg, &lz);
	LLVMValueRef b = cg_loop(cg, &lb, c->Bn);
	LLVMValueRef j = cg_loop_range(cg, &lj, cg_i64(cg, 0), nch),
	             ch = cg_add(cg, ch0, j);
	LLVMValueRef sum[49], mine[49];
	for (int64_t t = 0; t < KK; t++) {
		LLVMValueRef a2[2] = {cg_i64(cg, 0),
		                      cg_add(cg, cg_mul(cg, j, cg_i64(cg, KK)),
		                             cg_i64(cg, t))},
		             c2[2] = {cg_i64(cg, 0), cg_i64(cg, t)};
		mine[t] = LLVMBuildGEP2(B, at, sums, a2, 2, "");
		sum[t] = LLVMBuildGEP2(B, ct, cur, c2, 2, "");
		LLVMBuildStore(B, LLVMBuildLoad2(B, vt, mine[t], ""), sum[t]);
	}
	LLVMValueRef plane = cg_add(cg, cg_mul(cg, b, cg_i64(cg, c->C)), ch);
	LLVMValueRef xp = at_index(cg, cg_node_ptr(cg, c->x), plane, H * W, 0),
	             yp = at_index(cg, cg_node_ptr(cg, c->y), plane, OH * OW, 0);
	LLVMValueRef row = cg_loop(cg, &lr, OH);
	LLVMValueRef col =
	    cg_mul(cg, cg_loop(cg, &lv, (OW + VW - 1) / VW), cg_i64(cg, VW));
	LLVMValueRef tail = OW % VW ? cols_inside(cg, col, OW, NULL) : NULL;
	g.mask = tail;
	LLVMValueRef dy =
	    vload(cg, &g, gep(cg, yp, cg_add(cg, cg_mul(cg, row, cg_i64(cg, OW)), col)));
	int64_t sh = c->p.stride[0], sw = c->p.stride[1];
	for (int64_t kh = 0; kh < c->KH; kh++) {
		LLVMValueRef sr = cg_add(cg, cg_mul(cg, row, cg_i64(cg, sh)),
		                         cg_i64(cg, kh * c->p.dil[0] - c->p.pad[0]));
		LLVMValueRef rok = LLVMBuildICmp(B, LLVMIntULT, sr, cg_i64(cg, H), "");
		LLVMValueRef xrow = gep(cg, xp, cg_mul(cg, sr, cg_i64(cg, W)));
		for (int64_t kw = 0; kw < c->KW; kw++) {
			int64_t t = kh * c->KW + kw, off = kw * c->p.dil[1] - c->p.pad[2];
			LLVMValueRef x = row_taps(cg, xrow, col, off, W, rok, tail, sw);
			LLVMBuildStore(
			    B, vfma(cg, &g, dy, x, LLVMBuildLoad2(B, vt, sum[t], "")),
			    sum[t]);
		}
	}
	cg_loop_end(cg, &lv);
	cg_loop_end(cg, &lr);
	for (int64_t t = 0; t < KK; t++)
		LLVMBuildStore(B, LLVMBuildLoad2(B, vt, sum[t], ""), mine[t]);
	cg_loop_end(cg, &lj);
	cg_loop_end(cg, &lb);
	LLVMValueRef o =
	    cg_loop_range(cg, &lo, cg_i64(cg, 0), cg_mul(cg, nch, cg_i64(cg, KK)));
	LLVMValueRef o2[2] = {cg_i64(cg, 0), o};
	LLVMBuildStore(
	    B,
	    reduce_lanes(
	        cg, "fadd",
	        LLVMBuildLoad2(B, vt, LLVMBuildGEP2(B, at, sums, o2, 2, ""), "")),
	    gep(cg, cg_node_ptr(cg, n), cg_add(cg, cg_mul(cg, ch0, cg_i64(cg, KK)), o)));
	cg_loop_end(cg, &lo);
	cg_loop_end(cg, &lk);
}

EMIT(conv2d)
{
	Conv c = conv_of(n, n->in[0], n->in[1], n);
	conv_gemm(cg, n, &c, 0);
}

EMIT(conv2d_bwd_data)
{
	Conv c = conv_of(n, n, n->in[1], n->in[0]);
	conv_gemm(cg, n, &c, 1);
}

/* The dot-product kernel needs rows of at least VW positions; smaller images take the
 * direct loop nest. */
EMIT(conv2d_bwd_filter)
{
	Conv c = conv_of(n, n->in[0], n, n->in[1]);
	if (c.P >= VW || conv_depthwise(n))
		conv_gemm(cg, n, &c, 2);
	else
		conv_nest(cg, n, n->in[0], n, n->in[1], 2);
}

/* ---- pooling ---- */

/* For the window at output (plane, oh, ow): walks the kernel taps; valid says whether a
 * tap is inside the image and idx its flat input index (0 when outside, so loads stay in
 * bounds). */
typedef struct Tap {
	LLVMValueRef valid, idx;
} Tap;

/* Whether every tap of every window is inside the image (no padding reached). */
static int taps_inside(const PoolP *p, const Shape *xs, const Shape *ys)
{
	return !p->pad[0] && !p->pad[2] &&
	       (ys->d[2] - 1) * p->stride[0] + p->k[0] <= xs->d[2] &&
	       (ys->d[3] - 1) * p->stride[1] + p->k[1] <= xs->d[3];
}

/* Whether the windows cover the image exactly once each (2x2 windows, stride 2). */
static int windows_tile(const PoolP *p, const Shape *xs, const Shape *ys)
{
	return taps_inside(p, xs, ys) && p->k[0] == p->stride[0] &&
	       p->k[1] == p->stride[1] && ys->d[2] * p->k[0] == xs->d[2] &&
	       ys->d[3] * p->k[1] == xs->d[3];
}

static Tap pool_tap(CG *cg, const PoolP *p, const Shape *xs, const Shape *ys,
                    LLVMValueRef plane, LLVMValueRef oh, LLVMValueRef ow, LLVMValueRef kh,
                    LLVMValueRef kw)
{
	LLVMValueRef ih =
	    cg_add(cg, cg_i64(cg, -p->pad[0]),
	           cg_add(cg, cg_mul(cg, oh, cg_i64(cg, p->stride[0])), kh));
	LLVMValueRef iw =
	    cg_add(cg, cg_i64(cg, -p->pad[2]),
	           cg_add(cg, cg_mul(cg, ow, cg_i64(cg, p->stride[1])), kw));
	LLVMValueRef in_h = LLVMBuildICmp(B, LLVMIntULT, ih, cg_i64(cg, xs->d[2]), "");
	LLVMValueRef in_w = LLVMBuildICmp(B, LLVMIntULT, iw, cg_i64(cg, xs->d[3]), "");
	Tap t;
	t.valid = LLVMBuildAnd(B, in_h, in_w, "");
	LLVMValueRef i =
	    cg_add(cg,
	           cg_mul(cg, cg_add(cg, cg_mul(cg, plane, cg_i64(cg, xs->d[2])), ih),
	                  cg_i64(cg, xs->d[3])),
	           iw);
	if (taps_inside(p, xs, ys)) { /* no checks, no selects */
		t.valid = LLVMConstInt(LLVMInt1TypeInContext(cg->ctx), 1, 0);
		t.idx = i;
		return t;
	}
	t.idx = LLVMBuildSelect(B, t.valid, i, cg_i64(cg, 0), "");
	return t;
}

/* Loops over every window (plane = batch * channel, oh, ow) and its taps; body gets the
 * tap and the flat output index. Taps are unrolled: kernels are small. */
typedef void (*PoolBody)(CG *cg, Node *n, Tap t, LLVMValueRef o, void *st);

static void pool_nest(CG *cg, Node *n, const Shape *xs, const Shape *ys, PoolBody body,
                      void *st, void (*begin)(CG *, void *),
                      void (*end)(CG *, Node *, LLVMValueRef, void *))
{
	PoolP p = poolp_of(n);
	Loop lp, lh, lw;
	/* windows of a plane read and write only that plane */
	LLVMValueRef plane = cg_par_loop(cg, &lp, ys->d[0] * ys->d[1], 1);
	LLVMValueRef oh = cg_loop(cg, &lh, ys->d[2]);
	LLVMValueRef ow = cg_loop(cg, &lw, ys->d[3]);
	LLVMValueRef o =
	    cg_add(cg,
	           cg_mul(cg, cg_add(cg, cg_mul(cg, plane, cg_i64(cg, ys->d[2])), oh),
	                  cg_i64(cg, ys->d[3])),
	           ow);
	if (begin)
		begin(cg, st);
	for (int64_t kh = 0; kh < p.k[0]; kh++)
		for (int64_t kw = 0; kw < p.k[1]; kw++)
			body(cg, n,
			     pool_tap(cg, &p, xs, ys, plane, oh, ow, cg_i64(cg, kh),
			              cg_i64(cg, kw)),
			     o, st);
	if (end)
		end(cg, n, o, st);
	cg_loop_end(cg, &lw);
	cg_loop_end(cg, &lh);
	cg_loop_end(cg, &lp);
}

typedef struct MaxSt {
	LLVMValueRef best, bidx, found; /* running maximum, its index, any tap valid */
	int scatter;
	int tile; /* windows tile the image: the scatter writes every tap, no zeroing */
	LLVMValueRef taps[64];
	int ntaps;
} MaxSt;

static void max_begin(CG *cg, void *st)
{
	MaxSt *m = st;
	m->best = cg_f32(cg, -INFINITY);
	m->bidx = cg_i64(cg, 0);
	m->ntaps = 0;
	m->found = LLVMConstInt(LLVMInt1TypeInContext(cg->ctx), 0, 0);
}

static void max_tap(CG *cg, Node *n, Tap t, LLVMValueRef o, void *st)
{
	(void)o;
	MaxSt *m = st;
	LLVMValueRef v = cg_load(cg, n->in[0], t.idx);
	/* the first valid tap, or a strictly larger one: the first maximum wins ties */
	LLVMValueRef better =
	    LLVMBuildOr(B, LLVMBuildNot(B, m->found, ""),
	                LLVMBuildFCmp(B, LLVMRealOGT, v, m->best, ""), "");
	LLVMValueRef take = LLVMBuildAnd(B, t.valid, better, "");
	m->best = LLVMBuildSelect(B, take, v, m->best, "");
	m->bidx = LLVMBuildSelect(B, take, t.idx, m->bidx, "");
	m->found = LLVMBuildOr(B, m->found, t.valid, "");
	if (m->ntaps < 64)
		m->taps[m->ntaps++] = t.idx;
}

static void max_end(CG *cg, Node *n, LLVMValueRef o, void *st)
{
	MaxSt *m = st;
	if (!m->scatter && n->in[1] == n->in[0]) { /* max pooling: the maximum itself */
		cg_store(cg, n, o,
		         LLVMBuildSelect(B, m->found, m->best, cg_f32(cg, 0), ""));
	} else if (!m->scatter) {
		LLVMValueRef v = cg_load(cg, n->in[1], m->bidx);
		cg_store(cg, n, o, LLVMBuildSelect(B, m->found, v, cg_f32(cg, 0), ""));
	} else if (m->tile) { /* each tap written once: the gradient or 0 */
		LLVMValueRef g = cg_load(cg, n->in[1], o);
		for (int i = 0; i < m->ntaps; i++)
			cg_store(cg, n, m->taps[i],
			         LLVMBuildSelect(
			             B,
			             LLVMBuildICmp(B, LLVMIntEQ, m->taps[i], m->bidx, ""),
			             g, cg_f32(cg, 0), ""));
	} else {
		LLVMValueRef g = LLVMBuildSelect(B, m->found, cg_load(cg, n->in[1], o),
		                                 cg_f32(cg, 0), "");
		cg_store(cg, n, m->bidx,
		         LLVMBuildFAdd(B, cg_load(cg, n, m->bidx), g, ""));
	}
}

/* Max pooling over 2 x 2 windows that tile the image (stride 2, no padding), VW
 * windows of a row at a time: each row of a window row pair is loaded as two vectors
 * and split into its even and odd columns, the window's 4 taps; the first largest tap
 * wins, as in max_tap. Max pooling stores the maxima, the scatter the gradient at each
 * maximum and 0 at the other taps, interleaved back into rows. */
static int pool2x2(const PoolP *p, const Shape *xs, const Shape *ys)
{
	return windows_tile(p, xs, ys) && p->k[0] == 2 && p->k[1] == 2;
}

/* The 4 taps of VW windows of node v: row 0 even, row 0 odd, row 1 even, row 1 odd. */
static void taps2x2(CG *cg, Node *v, LLVMValueRef at, int64_t W, LLVMValueRef *m,
                    LLVMValueRef *t)
{
	LLVMTypeRef vt = LLVMVectorType(cg->f32, (unsigned)VW);
	for (int h = 0; h < 2; h++) {
		LLVMValueRef row =
		    gep(cg, cg_node_ptr(cg, v), cg_add(cg, at, cg_i64(cg, h * W)));
		LLVMValueRef lo = cg_masked(cg, vt, m[0], row, NULL),
		             hi = cg_masked(cg, vt, m[1], gep(cg, row, cg_i64(cg, VW)),
		                            NULL);
		t[2 * h] = pick_lanes(cg, lo, hi, 0, 2);
		t[2 * h + 1] = pick_lanes(cg, lo, hi, 1, 2);
	}
}

static void pool_vec(CG *cg, Node *n, const Shape *xs, const Shape *ys, int scatter)
{
	LLVMTypeRef vt = LLVMVectorType(cg->f32, (unsigned)VW);
	int64_t OH = ys->d[2], OW = ys->d[3], W = xs->d[3];
	Loop lp, lh, lw;
	LLVMValueRef plane = cg_par_loop(cg, &lp, ys->d[0] * ys->d[1], 1);
	LLVMValueRef oh = cg_loop(cg, &lh, OH);
	LLVMValueRef ow =
	    cg_mul(cg, cg_loop(cg, &lw, (OW + VW - 1) / VW), cg_i64(cg, VW));
	LLVMValueRef rem = LLVMBuildSub(B, cg_i64(cg, OW), ow, ""); /* windows left */
	LLVMValueRef m[2] = {lanes_below(cg, cg_mul(cg, rem, cg_i64(cg, 2))),
	                     lanes_below(cg,
	                                 LLVMBuildSub(B, cg_mul(cg, rem, cg_i64(cg, 2)),
	                                              cg_i64(cg, VW), ""))},
	             mo = lanes_below(cg, rem);
	LLVMValueRef at = cg_add(cg,
	                         cg_mul(cg,
	                                cg_add(cg, cg_mul(cg, plane, cg_i64(cg, 2 * OH)),
	                                       cg_mul(cg, oh, cg_i64(cg, 2))),
	                                cg_i64(cg, W)),
	                         cg_mul(cg, ow, cg_i64(cg, 2)));
	LLVMValueRef o = cg_add(
	    cg,
	    cg_mul(cg, cg_add(cg, cg_mul(cg, plane, cg_i64(cg, OH)), oh), cg_i64(cg, OW)),
	    ow);
	LLVMValueRef t[4], tap[4], best;
	for (int k = 0; k < 4; k++) { /* <VW x i32> of k */
		LLVMValueRef kv[MAX_VW];
		for (int l = 0; l < VW; l++)
			kv[l] = LLVMConstInt(cg->i32, (unsigned)k, 0);
		tap[k] = LLVMConstVector(kv, (unsigned)VW);
	}
	taps2x2(cg, n->in[0], at, W, m, t);
	LLVMValueRef idx = tap[0];
	best = t[0];
	for (int k = 1; k < 4; k++) {
		LLVMValueRef better = LLVMBuildFCmp(B, LLVMRealOGT, t[k], best, "");
		best = LLVMBuildSelect(B, better, t[k], best, "");
		idx = LLVMBuildSelect(B, better, tap[k], idx, "");
	}
	LLVMValueRef is[4];
	for (int k = 0; k < 4; k++)
		is[k] = LLVMBuildICmp(B, LLVMIntEQ, idx, tap[k], "");
	if (!scatter) {
		cg_masked(cg, vt, mo, gep(cg, cg_node_ptr(cg, n), o), best);
	} else {
		LLVMValueRef g = cg_masked(cg, vt, mo,
		                           gep(cg, cg_node_ptr(cg, n->in[1]), o), NULL),
		             out[4];
		for (int k = 0; k < 4; k++)
			out[k] = LLVMBuildSelect(B, is[k], g, LLVMConstNull(vt), "");
		for (int h = 0; h < 2; h++) {
			LLVMValueRef row = gep(cg, cg_node_ptr(cg, n),
			                       cg_add(cg, at, cg_i64(cg, h * W)));
			for (int half = 0; half < 2; half++)
				cg_masked(
				    cg, vt, m[half], gep(cg, row, cg_i64(cg, half * VW)),
				    interleave(cg, out[2 * h], out[2 * h + 1], half));
		}
	}
	cg_loop_end(cg, &lw);
	cg_loop_end(cg, &lh);
	cg_loop_end(cg, &lp);
}

/* The loops of a pooling kernel on vectors: planes (batch x channels, shared between
 * threads), rows, and VW columns at a time from c0, the lanes in live before the end
 * of the row; lanes holds the lane numbers (<VW x i32>). */
typedef struct RowChunks {
	Loop lp, lh, lw;
	LLVMValueRef plane, row, c0, live, lanes;
	/* when set, each plane of zero_n (zero_size floats) is zeroed before its rows */
	Node *zero_n;
	int64_t zero_size;
} RowChunks;

static void chunks_begin(CG *cg, RowChunks *r, int64_t planes, int64_t rows, int64_t cols)
{
	LLVMValueRef iota[MAX_VW];
	for (int l = 0; l < VW; l++)
		iota[l] = LLVMConstInt(cg->i32, (unsigned)l, 0);
	r->lanes = LLVMConstVector(iota, (unsigned)VW);
	r->plane = cg_par_loop(cg, &r->lp, planes, 1);
	if (r->zero_n) { /* VW at a time, the last vector masked */
		LLVMTypeRef vt = LLVMVectorType(cg->f32, (unsigned)VW);
		Loop lz;
		LLVMValueRef base = gep(cg, cg_node_ptr(cg, r->zero_n),
		                        cg_mul(cg, r->plane, cg_i64(cg, r->zero_size)));
		LLVMValueRef z = cg_mul(
		    cg, cg_loop(cg, &lz, (r->zero_size + VW - 1) / VW), cg_i64(cg, VW));
		cg_masked(
		    cg, vt,
		    lanes_below(cg, LLVMBuildSub(B, cg_i64(cg, r->zero_size), z, "")),
		    gep(cg, base, z), LLVMConstNull(vt));
		cg_loop_end(cg, &lz);
	}
	r->row = cg_loop(cg, &r->lh, rows);
	r->c0 = cg_mul(cg, cg_loop(cg, &r->lw, (cols + VW - 1) / VW), cg_i64(cg, VW));
	r->live = lanes_below(cg, LLVMBuildSub(B, cg_i64(cg, cols), r->c0, ""));
}

static void chunks_end(CG *cg, RowChunks *r)
{
	cg_loop_end(cg, &r->lw);
	cg_loop_end(cg, &r->lh);
	cg_loop_end(cg, &r->lp);
}

/* llvm.masked.gather of the floats at base + off (<VW x i32> or i64) in mask, the
 * other lanes pass */
static LLVMValueRef gather(CG *cg, LLVMValueRef base, LLVMValueRef off, LLVMValueRef mask,
                           LLVMValueRef pass)
{
	LLVMTypeRef vt = LLVMVectorType(cg->f32, (unsigned)VW);
	LLVMValueRef ptrs = LLVMBuildGEP2(B, cg->f32, base, &off, 1, "");
	LLVMTypeRef tys[2] = {vt, LLVMTypeOf(ptrs)};
	unsigned id = LLVMLookupIntrinsicID("llvm.masked.gather", 18);
	LLVMValueRef f = LLVMGetIntrinsicDeclaration(cg->mod, id, tys, 2);
	LLVMValueRef a[4] = {ptrs, LLVMConstInt(cg->i32, 4, 0), mask, pass};
	return LLVMBuildCall2(B, LLVMIntrinsicGetType(cg->ctx, id, tys, 2), f, a, 4, "");
}

/* Vector j (0 or 1) of the 2 VW floats of the row at px + row from column 2 ow0 + c
 * on, the lanes outside [0, W) not read (0); W is 0 for a row outside the image */
static LLVMValueRef cover(CG *cg, LLVMValueRef px, LLVMValueRef row, LLVMValueRef ow0,
                          int64_t c, LLVMValueRef W, int j)
{
	LLVMValueRef first = cg_add(cg, cg_mul(cg, ow0, cg_i64(cg, 2)),
	                            cg_i64(cg, c + j * VW)); /* lane 0's column */
	int64_t at[MAX_VW];
	for (int l = 0; l < VW; l++)
		at[l] = l;
	/* 0 <= first + l < W: l < W - first, and not l < -first */
	LLVMValueRef below = lanes_where(cg, at, LLVMBuildSub(B, W, first, "")),
	             left = lanes_where(cg, at, LLVMBuildNeg(B, first, ""));
	LLVMValueRef mask = LLVMBuildAnd(B, below, LLVMBuildNot(B, left, ""), "");
	return cg_masked(cg, LLVMVectorType(cg->f32, (unsigned)VW), mask,
	                 gep(cg, px, cg_add(cg, row, first)), NULL);
}

/* The maxima of VW windows of output row oh from column ow0 (ow, <VW x i32>; lanes in
 * live), their places in x (bidx, when need_idx == 1) or their taps kh KW + kw (tap,
 * when need_idx == 2), and whether each window has a tap inside the image (found). Exact,
 * each tap a masked load (stride 1) or gather along the row, lanes outside the image or
 * past the row off, the first valid tap or a strictly larger one kept (max_tap's rule).
 * Fast, a tap outside is -inf and the first largest is kept by the compare alone, as when
 * every tap is inside; sum adds all taps, NaN when one is NaN. Fast and exact agree
 * unless a live window's maximum is -inf or a tap NaN (or +inf beside a tap outside),
 * which pool_max_vec tests. */
typedef struct MaxVec {
	LLVMValueRef best, bidx, tap, found, sum;
} MaxVec;

static MaxVec max_taps(CG *cg, const PoolP *p, Node *x, const Shape *xs,
                       LLVMValueRef plane, LLVMValueRef oh, LLVMValueRef ow0,
                       LLVMValueRef ow, LLVMValueRef live, int need_idx, int fast)
{
	LLVMTypeRef vt = LLVMVectorType(cg->f32, (unsigned)VW),
	            i1 = LLVMInt1TypeInContext(cg->ctx),
	            lt = LLVMVectorType(cg->i64, (unsigned)VW);
	int64_t H = xs->d[2], W = xs->d[3];
	LLVMValueRef px = cg_node_ptr(cg, x),
	             ninf = cg_splat(cg, cg_f32(cg, -INFINITY), (int)VW);
	MaxVec m = {ninf, LLVMConstNull(lt),
	            LLVMConstNull(LLVMVectorType(cg->i32, (unsigned)VW)),
	            LLVMConstNull(LLVMVectorType(i1, (unsigned)VW)), LLVMConstNull(vt)};
	for (int64_t kh = 0; kh < p->k[0]; kh++) {
		LLVMValueRef ih = cg_add(cg, cg_mul(cg, oh, cg_i64(cg, p->stride[0])),
		                         cg_i64(cg, kh - p->pad[0]));
		LLVMValueRef in_h = LLVMBuildICmp(B, LLVMIntULT, ih, cg_i64(cg, H), "");
		LLVMValueRef row = cg_mul(
		    cg, cg_add(cg, cg_mul(cg, plane, cg_i64(cg, H)), ih), cg_i64(cg, W));
		/* iw < W (unsigned) on a row inside the image: compared with W, or with
		 * 0 (no lane) above or below it. (A select between two masks on the
		 * scalar test sent LLVM 19's instruction selection into a loop.) */
		LLVMValueRef wlim = LLVMBuildSelect(B, in_h, cg_i64(cg, W), cg_i64(cg, 0),
		                                    ""),
		             lim = cg_splat(cg, LLVMBuildTrunc(B, wlim, cg->i32, ""),
		                            (int)VW);
		LLVMValueRef pair[2] = {NULL, NULL};
		for (int64_t kw = 0; kw < p->k[1]; kw++) {
			LLVMValueRef iw = LLVMBuildAdd(
			    B,
			    LLVMBuildMul(
			        B, ow,
			        cg_splat(cg,
			                 LLVMConstInt(cg->i32, (unsigned)p->stride[1], 0),
			                 (int)VW),
			        ""),
			    cg_splat(cg,
			             LLVMConstInt(cg->i32,
			                          (unsigned long long)(kw - p->pad[2]),
			                          1),
			             (int)VW),
			    "");
			LLVMValueRef valid = LLVMBuildAnd(
			    B, live, LLVMBuildICmp(B, LLVMIntULT, iw, lim, ""), "");
			/* lanes off are not read, and not taken below: no select */
			LLVMValueRef v;
			if (p->stride[1] == 1)
				v = cg_masked(
				    cg, vt, valid,
				    gep(cg, px,
				        cg_add(
				            cg, row,
				            cg_add(cg, ow0, cg_i64(cg, kw - p->pad[2])))),
				    NULL);
			else if (p->stride[1] == 2) { /* every other lane of two loads,
				                       * which the next tap's are */
				if (kw % 2 == 0)
					pair[0] = cover(cg, px, row, ow0, kw - p->pad[2],
					                wlim, 0),
					pair[1] = cover(cg, px, row, ow0, kw - p->pad[2],
					                wlim, 1);
				v = pick_lanes(cg, pair[0], pair[1], (int)(kw % 2), 2);
			} else
				v = gather(cg, gep(cg, px, row), iw, valid, m.best);
			LLVMValueRef take;
			if (fast) {
				v = LLVMBuildSelect(B, valid, v, ninf, "");
				m.sum = LLVMBuildFAdd(B, m.sum, v, "");
				take = LLVMBuildFCmp(B, LLVMRealOGT, v, m.best, "");
			} else { /* first valid tap or a strictly larger one */
				take = LLVMBuildAnd(
				    B, valid,
				    LLVMBuildOr(
				        B, LLVMBuildNot(B, m.found, ""),
				        LLVMBuildFCmp(B, LLVMRealOGT, v, m.best, ""), ""),
				    "");
				m.found = LLVMBuildOr(B, m.found, valid, "");
			}
			m.best = LLVMBuildSelect(B, take, v, m.best, "");
			if (need_idx == 1)
				m.bidx = LLVMBuildSelect(
				    B, take,
				    LLVMBuildAdd(B, cg_splat(cg, row, (int)VW),
				                 LLVMBuildSExt(B, iw, lt, ""), ""),
				    m.bidx, "");
			if (need_idx == 2)
				m.tap = LLVMBuildSelect(
				    B, take,
				    cg_splat(cg,
				             LLVMConstInt(cg->i32,
				                          (unsigned)(kh * p->k[1] + kw),
				                          0),
				             (int)VW),
				    m.tap, "");
		}
	}
	if (fast)
		m.found = LLVMConstAllOnes(LLVMTypeOf(m.found));
	return m;
}

/* The offsets in a plane of rows of W of a max pool's taps t = kh KW + kw, from its
 * window's first row and column: a constant table, named by what it holds (as
 * tap_offsets' tables, so that kernels with the same text share it). */
static LLVMValueRef pool_taps(CG *cg, const PoolP *p, int64_t W)
{
	int64_t nt = p->k[0] * p->k[1];
	char *name = arena_printf(cg->g->A, "pool_taps.%lldx%lld.%lld.%lld.%lld",
	                          (long long)p->k[0], (long long)p->k[1], (long long)W,
	                          (long long)p->pad[0], (long long)p->pad[2]);
	LLVMValueRef table = LLVMGetNamedGlobal(cg->mod, name);
	if (table)
		return table;
	LLVMValueRef *offs = arena_alloc(cg->g->A, (size_t)nt * sizeof *offs);
	for (int64_t t = 0; t < nt; t++)
		offs[t] =
		    LLVMConstInt(cg->i64,
		                 (unsigned long long)((t / p->k[1] - p->pad[0]) * W +
		                                      t % p->k[1] - p->pad[2]),
		                 1);
	return const_table(cg, name, offs, nt);
}

/* Max pooling and its scatter for any windows, VW windows of a row at a time
 * (max_taps): fast, and again exact for the few vectors where the two may differ.
 * The found and valid masks of the exact taps took a third of a 3 x 3 stride-2
 * pool's time. The scalar loop all this replaces compiled each "is this the new max"
 * into a branch, mispredicted on real data: a 3 x 3 stride 1 pool's scatter over
 * [64, 32, 16, 16] took 16-19 ms, 15 times the convolution before it. The scatter
 * adds each window's gradient at its maximum lane by lane, in the windows' order, as
 * the scalar loop did (windows may share a maximum). */
static void pool_max_vec(CG *cg, Node *n, const Shape *xs, const Shape *ys, int scatter)
{
	PoolP p = poolp_of(n);
	Node *x = n->in[0];
	/* where each maximum is: its tap for the scatter (4 bytes a lane, not 8) */
	int need_idx = scatter ? 2 : n->in[1] != x;
	LLVMTypeRef vt = LLVMVectorType(cg->f32, (unsigned)VW);
	int64_t H = xs->d[2], W = xs->d[3], OH = ys->d[2], OW = ys->d[3];
	/* the scatter zeroes each plane of its output just before adding into it: in
	 * cache, and shared between the threads as the planes are */
	RowChunks rc = {.zero_n = scatter ? n : NULL, .zero_size = H * W};
	chunks_begin(cg, &rc, ys->d[0] * ys->d[1], OH, OW);
	LLVMValueRef plane = rc.plane, oh = rc.row, ow0 = rc.c0, live = rc.live;
	/* the windows' columns, and their taps' below, as i32: a row is short */
	LLVMValueRef ow = LLVMBuildAdd(
	    B, cg_splat(cg, LLVMBuildTrunc(B, ow0, cg->i32, ""), (int)VW), rc.lanes, "");
	LLVMValueRef o = cg_add(
	    cg,
	    cg_mul(cg, cg_add(cg, cg_mul(cg, plane, cg_i64(cg, OH)), oh), cg_i64(cg, OW)),
	    ow0);
	MaxVec m[2];
	LLVMBasicBlockRef from[2],
	    exact = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "exact"),
	    join = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "");
	m[0] = max_taps(cg, &p, x, xs, plane, oh, ow0, ow, live, need_idx, 1);
	LLVMValueRef odd = LLVMBuildAnd(
	    B, live,
	    LLVMBuildOr(B,
	                LLVMBuildFCmp(B, LLVMRealOEQ, m[0].best,
	                              cg_splat(cg, cg_f32(cg, -INFINITY), (int)VW), ""),
	                LLVMBuildFCmp(B, LLVMRealUNO, m[0].sum, LLVMConstNull(vt), ""),
	                ""),
	    "");
	LLVMTypeRef bits = LLVMIntTypeInContext(cg->ctx, (unsigned)VW);
	from[0] = LLVMGetInsertBlock(B);
	LLVMBuildCondBr(B,
	                LLVMBuildICmp(B, LLVMIntNE, LLVMBuildBitCast(B, odd, bits, ""),
	                              LLVMConstNull(bits), ""),
	                exact, join);
	LLVMPositionBuilderAtEnd(B, exact);
	m[1] = max_taps(cg, &p, x, xs, plane, oh, ow0, ow, live, need_idx, 0);
	from[1] = LLVMGetInsertBlock(B);
	LLVMBuildBr(B, join);
	LLVMPositionBuilderAtEnd(B, join);
	LLVMValueRef best = LLVMBuildPhi(B, vt, "best"),
	             bidx = LLVMBuildPhi(B, LLVMTypeOf(m[0].bidx), "at"),
	             tap = LLVMBuildPhi(B, LLVMTypeOf(m[0].tap), "tap"),
	             found = LLVMBuildPhi(B, LLVMTypeOf(m[0].found), "found");
	LLVMValueRef vb[2] = {m[0].best, m[1].best}, vi[2] = {m[0].bidx, m[1].bidx},
	             vt2[2] = {m[0].tap, m[1].tap}, vf[2] = {m[0].found, m[1].found};
	LLVMAddIncoming(best, vb, from, 2);
	LLVMAddIncoming(bidx, vi, from, 2);
	LLVMAddIncoming(tap, vt2, from, 2);
	LLVMAddIncoming(found, vf, from, 2);
	LLVMValueRef zero = LLVMConstNull(vt);
	if (!scatter) {
		LLVMValueRef v = n->in[1] == x ? best
		                               : gather(cg, cg_node_ptr(cg, n->in[1]),
		                                        bidx, live, zero);
		cg_masked(cg, vt, live, gep(cg, cg_node_ptr(cg, n), o),
		          LLVMBuildSelect(B, found, v, zero, ""));
	} else { /* n += the gradient at each window's maximum, lane by lane */
		LLVMValueRef g = LLVMBuildSelect(
		    B, found,
		    cg_masked(cg, vt, live, gep(cg, cg_node_ptr(cg, n->in[1]), o), NULL),
		    zero, "");
		/* tap t of window ow0 + l is at row0 + (ow0 + l) stride + table[t] */
		int64_t nt = p.k[0] * p.k[1];
		LLVMValueRef table = pool_taps(cg, &p, W);
		LLVMValueRef row0 =
		    cg_mul(cg,
		           cg_add(cg, cg_mul(cg, plane, cg_i64(cg, H)),
		                  cg_mul(cg, oh, cg_i64(cg, p.stride[0]))),
		           cg_i64(cg, W));
		/* (a window of padding alone has no maximum to add at) */
		LLVMValueRef adds = LLVMBuildAnd(B, live, found, "");
		for (int l = 0; l < VW; l++) {
			LLVMValueRef lane = cg_i64(cg, l);
			LLVMBasicBlockRef add =
			    LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "lane");
			LLVMBasicBlockRef next =
			    LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "");
			LLVMBuildCondBr(B, LLVMBuildExtractElement(B, adds, lane, ""),
			                add, next);
			LLVMPositionBuilderAtEnd(B, add);
			LLVMValueRef t = LLVMBuildZExt(
			    B, LLVMBuildExtractElement(B, tap, lane, ""), cg->i64, "");
			LLVMValueRef off = LLVMBuildLoad2(
			    B, cg->i64,
			    LLVMBuildGEP2(B, LLVMArrayType(cg->i64, (unsigned)nt), table,
			                  (LLVMValueRef[]){cg_i64(cg, 0), t}, 2, ""),
			    "");
			LLVMValueRef at = cg_add(
			    cg, cg_add(cg, row0, off),
			    cg_mul(cg, cg_add(cg, ow0, lane), cg_i64(cg, p.stride[1])));
			cg_store(cg, n, at,
			         LLVMBuildFAdd(B, cg_load(cg, n, at),
			                       LLVMBuildExtractElement(B, g, lane, ""),
			                       ""));
			LLVMBuildBr(B, next);
			LLVMPositionBuilderAtEnd(B, next);
		}
	}
	chunks_end(cg, &rc);
}

EMIT(poolmax_gather)
{
	PoolP p = poolp_of(n);
	if (pool2x2(&p, &n->in[0]->sh, &n->sh) && n->in[1] == n->in[0]) {
		pool_vec(cg, n, &n->in[0]->sh, &n->sh, 0);
		return;
	}
	/* Stride 2 too: 3 x 3 windows, stride 2, padding 1 (a ResNet's first pool)
	 * over [64, 32, 32, 32] took 2.6 ms in the scalar loop, 0.83 on vectors; over
	 * [64, 32, 16, 16], 0.66-0.71 and 0.39 (on an AMD EPYC, Zen 4; on the Intel Xeon
	 * of earlier sessions, with two loads a tap instead of a pair for two taps, the
	 * second took 0.37-0.49 ms on vectors, 0.21-0.28 in the scalar loop) */
	if (VW > 1 && p.stride[1] <= 2 && n->in[0]->sh.d[3] < 1 << 30) {
		pool_max_vec(cg, n, &n->in[0]->sh, &n->sh, 0);
		return;
	}
	MaxSt m = {.scatter = 0};
	pool_nest(cg, n, &n->in[0]->sh, &n->sh, max_tap, &m, max_begin, max_end);
}

EMIT(poolmax_scatter)
{
	PoolP p = poolp_of(n);
	if (pool2x2(&p, &n->in[0]->sh, &n->in[1]->sh)) {
		pool_vec(cg, n, &n->in[0]->sh, &n->in[1]->sh, 1);
		return;
	}
	MaxSt m = {.scatter = 1,
	           .tile = windows_tile(&p, &n->in[0]->sh, &n->in[1]->sh) &&
	                   p.k[0] * p.k[1] <= 64};
	if (!m.tile) {
		if (VW > 1 && n->in[0]->sh.d[3] < 1 << 30) { /* (which zeroes n) */
			pool_max_vec(cg, n, &n->in[0]->sh, &n->in[1]->sh, 1);
			return;
		}
		cg_zero(cg, n);
		cg_next_kernel(cg);
	}
	pool_nest(cg, n, &n->in[0]->sh, &n->in[1]->sh, max_tap, &m, max_begin, max_end);
}

typedef struct AvgSt {
	LLVMValueRef sum;
	double scale;
} AvgSt;

static void avg_begin(CG *cg, void *st) { ((AvgSt *)st)->sum = cg_f32(cg, 0); }

static void avg_tap(CG *cg, Node *n, Tap t, LLVMValueRef o, void *st)
{
	(void)o;
	AvgSt *a = st;
	LLVMValueRef v =
	    LLVMBuildSelect(B, t.valid, cg_load(cg, n->in[0], t.idx), cg_f32(cg, 0), "");
	a->sum = LLVMBuildFAdd(B, a->sum, v, "");
}

static void avg_end(CG *cg, Node *n, LLVMValueRef o, void *st)
{
	AvgSt *a = st;
	cg_store(cg, n, o, LLVMBuildFMul(B, a->sum, cg_f32(cg, a->scale), ""));
}

/* padding taps add 0 at index 0: harmless, and no branch */
static void avg_bwd_tap(CG *cg, Node *n, Tap t, LLVMValueRef o, void *st)
{
	AvgSt *a = st;
	LLVMValueRef g =
	    LLVMBuildFMul(B, cg_load(cg, n->in[0], o), cg_f32(cg, a->scale), "");
	g = LLVMBuildSelect(B, t.valid, g, cg_f32(cg, 0), "");
	cg_store(cg, n, t.idx, LLVMBuildFAdd(B, cg_load(cg, n, t.idx), g, ""));
}

/* Average pooling at stride 1, and its gradient as a gather (each input element sums
 * the gradients of the windows that cover it), VW elements of a row at a time, each
 * tap a masked load of a row of the source: for the pooling, the tap's row of x; for
 * the gradient, the row of windows whose tap lands here. The loop over windows it
 * replaces read and wrote its taps one element at a time, and its gradient (each
 * window adding to its taps) made chains of loads and stores to the same elements:
 * 3 x 3 windows, padding 1, over [64, 32, 16, 16] took 1.2 ms forward and 5.0-5.6 ms
 * backward. */
static void avg_vec(CG *cg, Node *n, const PoolP *p, double scale, int back)
{
	Node *src = n->in[0];
	const Shape *ds = &n->sh, *ss = &src->sh;
	int64_t H = ds->d[2], W = ds->d[3], SH = ss->d[2], SW = ss->d[3];
	LLVMTypeRef vt = LLVMVectorType(cg->f32, (unsigned)VW);
	RowChunks rc = {.zero_n = NULL};
	chunks_begin(cg, &rc, ds->d[0] * ds->d[1], H, W);
	LLVMValueRef plane = rc.plane, h = rc.row, w0 = rc.c0, live = rc.live,
	             lanes = rc.lanes, acc = LLVMConstNull(vt), ps = cg_node_ptr(cg, src);
	for (int64_t kh = 0; kh < p->k[0]; kh++) {
		LLVMValueRef sh =
		    cg_add(cg, h, cg_i64(cg, back ? p->pad[0] - kh : kh - p->pad[0]));
		LLVMValueRef lim =
		    cg_splat(cg,
		             LLVMBuildSelect(
		                 B, LLVMBuildICmp(B, LLVMIntULT, sh, cg_i64(cg, SH), ""),
		                 LLVMConstInt(cg->i32, (unsigned)SW, 0),
		                 LLVMConstInt(cg->i32, 0, 0), ""),
		             (int)VW);
		LLVMValueRef row =
		    cg_mul(cg, cg_add(cg, cg_mul(cg, plane, cg_i64(cg, SH)), sh),
		           cg_i64(cg, SW));
		for (int64_t kw = 0; kw < p->k[1]; kw++) {
			/* the source column of lane 0, and of each lane */
			LLVMValueRef first = cg_add(
			    cg, w0, cg_i64(cg, back ? p->pad[2] - kw : kw - p->pad[2]));
			LLVMValueRef col = LLVMBuildAdd(
			    B,
			    cg_splat(cg, LLVMBuildTrunc(B, first, cg->i32, ""), (int)VW),
			    lanes, "");
			LLVMValueRef valid = LLVMBuildAnd(
			    B, live, LLVMBuildICmp(B, LLVMIntULT, col, lim, ""), "");
			acc = LLVMBuildFAdd(B, acc,
			                    cg_masked(cg, vt, valid,
			                              gep(cg, ps, cg_add(cg, row, first)),
			                              NULL),
			                    "");
		}
	}
	LLVMValueRef at = cg_add(
	    cg,
	    cg_mul(cg, cg_add(cg, cg_mul(cg, plane, cg_i64(cg, H)), h), cg_i64(cg, W)),
	    w0);
	cg_masked(cg, vt, live, gep(cg, cg_node_ptr(cg, n), at),
	          LLVMBuildFMul(B, acc, cg_splat(cg, cg_f32(cg, scale), (int)VW), ""));
	chunks_end(cg, &rc);
}

/* pooled on vectors (avg_vec): stride 1, and a row's columns fit an i32 */
static int avg_on_vectors(CG *cg, const PoolP *p, const Shape *xs)
{
	return VW > 1 && p->stride[0] == 1 && p->stride[1] == 1 && xs->d[3] < 1 << 30;
}

EMIT(avgpool)
{
	PoolP p = poolp_of(n);
	AvgSt a = {NULL, 1.0 / (double)(p.k[0] * p.k[1])};
	if (avg_on_vectors(cg, &p, &n->in[0]->sh)) {
		avg_vec(cg, n, &p, a.scale, 0);
		return;
	}
	pool_nest(cg, n, &n->in[0]->sh, &n->sh, avg_tap, &a, avg_begin, avg_end);
}

EMIT(avgpool_bwd)
{
	PoolP p = poolp_of(n);
	AvgSt a = {NULL, 1.0 / (double)(p.k[0] * p.k[1])};
	if (avg_on_vectors(cg, &p, &n->sh)) {
		avg_vec(cg, n, &p, a.scale, 1);
		return;
	}
	cg_zero(cg, n);
	cg_next_kernel(cg);
	pool_nest(cg, n, &n->sh, &n->in[0]->sh, avg_bwd_tap, &a, NULL, NULL);
}

/* ---- gather, scatter, argmax, dropout ---- */

/* Row r's index, clamped into the table (valid says whether it was inside). */
static LLVMValueRef row_index(CG *cg, Node *idx, LLVMValueRef r, int64_t rows,
                              LLVMValueRef *valid)
{
	LLVMValueRef k = LLVMBuildSExt(B, cg_load(cg, idx, r), cg->i64, "");
	*valid = LLVMBuildICmp(B, LLVMIntULT, k, cg_i64(cg, rows), "");
	return LLVMBuildSelect(B, *valid, k, cg_i64(cg, 0), "");
}

EMIT(gather)
{
	const Shape *t = &n->in[0]->sh;
	int64_t rows = shape_numel(&n->in[1]->sh), row = shape_numel(t) / t->d[0];
	Loop lr, lj;
	LLVMValueRef r = cg_par_loop(cg, &lr, rows, 1), valid;
	LLVMValueRef src =
	    cg_mul(cg, row_index(cg, n->in[1], r, t->d[0], &valid), cg_i64(cg, row));
	LLVMValueRef j = cg_loop(cg, &lj, row);
	LLVMValueRef v = cg_load(cg, n->in[0], cg_add(cg, src, j));
	cg_store(cg, n, cg_add(cg, cg_mul(cg, r, cg_i64(cg, row)), j),
	         LLVMBuildSelect(B, valid, v, cg_f32(cg, 0), ""));
	cg_loop_end(cg, &lj);
	cg_loop_end(cg, &lr);
}

/* Rows of dy added into the table's rows their indices name, which may repeat: the
 * threads share the columns (units of 16), each adding into its own columns of every
 * row, in row order. */
EMIT(scatter_add)
{
	int64_t rows = shape_numel(&n->in[0]->sh), row = shape_numel(&n->sh) / n->sh.d[0];
	LLVMValueRef lo, hi;
	cg_par_range(cg, (row + 15) / 16, 1, &lo, &hi);
	LLVMValueRef j0 = cg_mul(cg, lo, cg_i64(cg, 16)),
	             j1 = cg_min(cg, cg_mul(cg, hi, cg_i64(cg, 16)), cg_i64(cg, row));
	Loop lz, lzj, lr, lj;
	LLVMValueRef z = cg_loop(cg, &lz, n->sh.d[0]);
	LLVMValueRef zj = cg_loop_range(cg, &lzj, j0, j1);
	cg_store(cg, n, cg_add(cg, cg_mul(cg, z, cg_i64(cg, row)), zj), cg_f32(cg, 0));
	cg_loop_end(cg, &lzj);
	cg_loop_end(cg, &lz);
	LLVMValueRef r = cg_loop(cg, &lr, rows), valid;
	LLVMValueRef dst =
	    cg_mul(cg, row_index(cg, n->in[0], r, n->sh.d[0], &valid), cg_i64(cg, row));
	LLVMValueRef j = cg_loop_range(cg, &lj, j0, j1);
	LLVMValueRef v =
	    cg_load(cg, n->in[1], cg_add(cg, cg_mul(cg, r, cg_i64(cg, row)), j));
	LLVMValueRef o = cg_add(cg, dst, j);
	v = LLVMBuildSelect(B, valid, v, cg_f32(cg, 0), "");
	cg_store(cg, n, o, LLVMBuildFAdd(B, cg_load(cg, n, o), v, ""));
	cg_loop_end(cg, &lj);
	cg_loop_end(cg, &lr);
}

EMIT(argmax)
{
	Node *x = n->in[0];
	int64_t C = x->sh.d[x->sh.rank - 1];
	Loop lr, lc;
	LLVMValueRef r = cg_par_loop(cg, &lr, shape_numel(&n->sh), 1);
	LLVMValueRef row = cg_mul(cg, r, cg_i64(cg, C));
	LLVMBasicBlockRef pre = LLVMGetInsertBlock(B);
	LLVMValueRef c = cg_loop(cg, &lc, C);
	LLVMValueRef best = cg_acc_begin(cg, pre, cg_f32(cg, -INFINITY));
	LLVMValueRef bi = cg_acc_begin(cg, pre, cg_i64(cg, 0));
	LLVMValueRef v = cg_load(cg, x, cg_add(cg, row, c));
	LLVMValueRef gt = LLVMBuildFCmp(B, LLVMRealOGT, v, best, "");
	LLVMValueRef nbest = LLVMBuildSelect(B, gt, v, best, ""),
	             nbi = LLVMBuildSelect(B, gt, c, bi, "");
	cg_acc_next(cg, best, nbest);
	cg_acc_next(cg, bi, nbi);
	cg_loop_end(cg, &lc);
	LLVMValueRef p = LLVMBuildGEP2(
	    B, cg->i32, LLVMBuildPointerCast(B, cg_node_ptr(cg, n), cg->i32p, ""), &r, 1,
	    "");
	LLVMBuildStore(B, LLVMBuildTrunc(B, nbi, cg->i32, ""), p);
	cg_loop_end(cg, &lr);
}

/* mask[i] = hash(seed, counter, i) >= threshold ? 1 / (1 - p) : 0, the same hash as
 * dropout_hash in dc.h */
EMIT(dropmask)
{
	LLVMTypeRef i64 = cg->i64;
	LLVMValueRef seed =
	    LLVMBuildFPToUI(B, cg_load(cg, n->in[0], cg_i64(cg, 0)), i64, "");
	LLVMValueRef ctr =
	    LLVMBuildFPToUI(B, cg_load(cg, n->in[1], cg_i64(cg, 0)), i64, "");
	LLVMValueRef key =
	    LLVMBuildXor(B, LLVMBuildShl(B, seed, cg_i64(cg, 32), ""),
	                 LLVMBuildAnd(B, ctr, cg_i64(cg, 0xffffffff), ""), "");
	Loop l;
	LLVMValueRef i = cg_par_loop(cg, &l, shape_numel(&n->sh), 256);
	LLVMValueRef z = cg_add(cg, key,
	                        cg_mul(cg, cg_add(cg, i, cg_i64(cg, 1)),
	                               cg_i64(cg, (int64_t)0x9E3779B97F4A7C15ull)));
	static const uint64_t mul[2] = {0xBF58476D1CE4E5B9ull, 0x94D049BB133111EBull};
	static const int shift[3] = {30, 27, 31};
	for (int k = 0; k < 3; k++) {
		z = LLVMBuildXor(B, z, LLVMBuildLShr(B, z, cg_i64(cg, shift[k]), ""), "");
		if (k < 2)
			z = cg_mul(cg, z, cg_i64(cg, (int64_t)mul[k]));
	}
	LLVMValueRef h = LLVMBuildLShr(B, z, cg_i64(cg, 32), "");
	LLVMValueRef keep =
	    LLVMBuildICmp(B, LLVMIntUGE, h, cg_i64(cg, dropout_threshold(n->f)), "");
	cg_store(cg, n, i,
	         LLVMBuildSelect(B, keep, cg_f32(cg, 1 / (1 - n->f)), cg_f32(cg, 0), ""));
	cg_loop_end(cg, &l);
}
