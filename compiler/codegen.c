/* Code generation: Graph -> LLVM IR -> optimized object code for the host CPU.
 *
 * Every function of the graph (forward, evaluate, grad, step, train_step) becomes one
 * LLVM function `void name(void *const *bufs)` that runs a loop nest per node, in the
 * plan's order, reading and writing the buffers the plan assigned (plan.c), then copies
 * its outputs to their destinations. One emitter per op, cg_<name>, expanded into a
 * table from ops.h; elementwise ops share one broadcasting loop nest and differ only in
 * their scalar expression. The module is verified, optimized with the new pass manager
 * for the host CPU's name and features, and emitted as an object file in memory, which
 * the JIT loads (jit.c) or the AOT path writes out.
 */
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "dc.h"
#include "target.h"

typedef struct CG {
	Graph *g;
	Plan *p;
	LLVMContextRef ctx;
	LLVMModuleRef mod;
	LLVMBuilderRef b;
	LLVMTypeRef f32, i32, i64, i1, ptr, f32p, i32p, fnty;
	LLVMValueRef fn, bufs;
	LLVMValueRef base[RT_IO0]; /* RT_PARAMS.. RT_HYPER as float* */
	LLVMValueRef *io;          /* io slot pointers, loaded once at entry */
	int64_t nwork;             /* the largest workspace of any function */
} CG;

typedef struct Loop {
	LLVMBasicBlockRef body, exit;
	LLVMValueRef i, n;
} Loop;

#define B cg->b

static LLVMValueRef i64c(CG *cg, int64_t v)
{
	return LLVMConstInt(cg->i64, (unsigned long long)v, 0);
}

static LLVMValueRef f32c(CG *cg, double v)
{
	return LLVMConstReal(cg->f32, v);
}

/* Reassociation lets LLVM vectorize reductions; the C API has it from LLVM 18 on. */
static LLVMValueRef fast(LLVMValueRef v)
{
#if LLVM_VERSION_MAJOR >= 18
	if (LLVMIsAInstruction(v))
		LLVMSetFastMathFlags(v, LLVMFastMathAllowReassoc |
		                            LLVMFastMathAllowContract);
#endif
	return v;
}

/* for (i = 0; i < n; i++) as a do-while: every static extent is at least 1. */
static LLVMValueRef loop_begin(CG *cg, Loop *l, int64_t n)
{
	LLVMBasicBlockRef pre = LLVMGetInsertBlock(B);
	l->body = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "loop");
	l->exit = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "after");
	l->n = i64c(cg, n);
	LLVMBuildBr(B, l->body);
	LLVMPositionBuilderAtEnd(B, l->body);
	l->i = LLVMBuildPhi(B, cg->i64, "i");
	LLVMValueRef zero = i64c(cg, 0);
	LLVMAddIncoming(l->i, &zero, &pre, 1);
	return l->i;
}

static void loop_end(CG *cg, Loop *l)
{
	LLVMBasicBlockRef latch = LLVMGetInsertBlock(B);
	LLVMValueRef next = LLVMBuildAdd(B, l->i, i64c(cg, 1), "");
	LLVMAddIncoming(l->i, &next, &latch, 1);
	LLVMBuildCondBr(B, LLVMBuildICmp(B, LLVMIntULT, next, l->n, ""), l->body,
	                l->exit);
	LLVMPositionBuilderAtEnd(B, l->exit);
}

/* Pointer to element 0 of a node's buffer. */
static LLVMValueRef node_ptr(CG *cg, Node *n)
{
	Buf bf = cg->p->buf[n->id];
	LLVMTypeRef et = n->dt == DT_I32 ? cg->i32 : cg->f32;
	LLVMTypeRef pt = n->dt == DT_I32 ? cg->i32p : cg->f32p;
	LLVMValueRef base;
	switch (bf.kind) {
	case BUF_PARAM:
		base = cg->base[RT_PARAMS];
		break;
	case BUF_GRAD:
		base = cg->base[RT_GRADS];
		break;
	case BUF_STATE:
		base = cg->base[RT_STATE];
		break;
	case BUF_HYPER:
		base = cg->base[RT_HYPER];
		break;
	case BUF_WORK:
		base = cg->base[RT_WORK];
		break;
	case BUF_IO:
		return LLVMBuildPointerCast(B, cg->io[bf.off], pt, "");
	default:
		die("node %d has no buffer", n->id);
	}
	LLVMValueRef off = i64c(cg, bf.off);
	return LLVMBuildGEP2(B, et, base, &off, 1, "");
}

/* The constant behind a node that lives nowhere (a CONST, or a view of one). */
static Node *const_of(CG *cg, Node *n)
{
	while (cg->p->buf[n->id].kind == BUF_NONE && (opinfo[n->op].flags & OPF_VIEW))
		n = n->in[0];
	return n->op == OP_CONST ? n : NULL;
}

static LLVMValueRef load_at(CG *cg, Node *n, LLVMValueRef off)
{
	Node *c = const_of(cg, n);
	if (c)
		return f32c(cg, c->f);
	LLVMTypeRef et = n->dt == DT_I32 ? cg->i32 : cg->f32;
	LLVMValueRef p = LLVMBuildGEP2(B, et, node_ptr(cg, n), &off, 1, "");
	return LLVMBuildLoad2(B, et, p, "");
}

static void store_at(CG *cg, Node *n, LLVMValueRef off, LLVMValueRef v)
{
	LLVMValueRef p = LLVMBuildGEP2(B, cg->f32, node_ptr(cg, n), &off, 1, "");
	LLVMBuildStore(B, v, p);
}

static LLVMValueRef intrinsic(CG *cg, const char *name, LLVMValueRef x)
{
	LLVMTypeRef ty = LLVMFunctionType(cg->f32, &cg->f32, 1, 0);
	LLVMValueRef f = LLVMGetNamedFunction(cg->mod, name);
	if (!f)
		f = LLVMAddFunction(cg->mod, name, ty);
	return LLVMBuildCall2(B, ty, f, &x, 1, "");
}

/* ---- elementwise ops: one broadcasting loop nest, a scalar expression per op ---- */

typedef LLVMValueRef (*Scalar)(CG *cg, LLVMValueRef a, LLVMValueRef b);

/* out[idx] = f(in0[idx'], in1[idx'']) with numpy broadcasting: an input's stride is 0
 * along the axes it is broadcast over. Inputs of the output's full size are indexed
 * flat, so the common case is a single loop. */
static void elemwise(CG *cg, Node *n, Scalar f)
{
	int r = n->sh.rank, flat = 1;
	int64_t stride[MAXIN][MAXRANK] = {{0}};
	for (int k = 0; k < n->nin; k++) {
		const Shape *s = &n->in[k]->sh;
		if (shape_numel(s) != 1 && shape_numel(s) != shape_numel(&n->sh))
			flat = 0;
		int64_t st = 1;
		for (int d = r - 1, j = s->rank - 1; d >= 0; d--, j--) {
			if (j >= 0 && s->d[j] != 1)
				stride[k][d] = st;
			if (j >= 0)
				st *= s->d[j];
		}
	}
	Shape dims = flat ? (Shape){1, {shape_numel(&n->sh)}} : n->sh;
	if (flat)
		for (int k = 0; k < n->nin; k++)
			stride[k][0] = shape_numel(&n->in[k]->sh) != 1;
	Loop l[MAXRANK];
	LLVMValueRef idx[MAXRANK] = {0};
	for (int d = 0; d < dims.rank; d++)
		idx[d] = loop_begin(cg, &l[d], dims.d[d]);
	LLVMValueRef out = dims.rank ? idx[dims.rank - 1] : i64c(cg, 0), v[MAXIN];
	if (dims.rank > 1) { /* row-major flat output offset */
		out = idx[0];
		for (int d = 1; d < dims.rank; d++)
			out = LLVMBuildAdd(
			    B, LLVMBuildMul(B, out, i64c(cg, dims.d[d]), ""), idx[d], "");
	}
	for (int k = 0; k < n->nin; k++) {
		LLVMValueRef off = i64c(cg, 0);
		for (int d = 0; d < dims.rank; d++)
			if (stride[k][d])
				off = LLVMBuildAdd(
				    B, off,
				    LLVMBuildMul(B, idx[d], i64c(cg, stride[k][d]), ""),
				    "");
		v[k] = load_at(cg, n->in[k], off);
	}
	store_at(cg, n, out, f(cg, v[0], n->nin > 1 ? v[1] : NULL));
	for (int d = dims.rank - 1; d >= 0; d--)
		loop_end(cg, &l[d]);
}

#define SCALAR(name) static LLVMValueRef sc_##name(CG *cg, LLVMValueRef a, LLVMValueRef b)
#define EMIT(name) static void cg_##name(CG *cg, Node *n)
#define ELEMWISE(name, expr)                                                             \
	SCALAR(name)                                                                     \
	{                                                                                \
		(void)cg, (void)b;                                                       \
		return (expr);                                                           \
	}                                                                                \
	EMIT(name)                                                                       \
	{                                                                                \
		elemwise(cg, n, sc_##name);                                              \
	}

static LLVMValueRef gt0(CG *cg, LLVMValueRef a)
{
	return LLVMBuildFCmp(B, LLVMRealOGT, a, f32c(cg, 0), "");
}

ELEMWISE(neg, LLVMBuildFNeg(B, a, ""))
ELEMWISE(exp, intrinsic(cg, "llvm.exp.f32", a))
ELEMWISE(log, intrinsic(cg, "llvm.log.f32", a))
ELEMWISE(sqrt, intrinsic(cg, "llvm.sqrt.f32", a))
ELEMWISE(relu, LLVMBuildSelect(B, gt0(cg, a), a, f32c(cg, 0), ""))
ELEMWISE(step, LLVMBuildSelect(B, gt0(cg, a), f32c(cg, 1), f32c(cg, 0), ""))
/* 1 / (1 + e^-a): exact limits 0 and 1 at large |a| */
ELEMWISE(sigmoid, LLVMBuildFDiv(B, f32c(cg, 1),
                                LLVMBuildFAdd(B, f32c(cg, 1),
                                              intrinsic(cg, "llvm.exp.f32",
                                                        LLVMBuildFNeg(B, a, "")),
                                              ""),
                                ""))
/* 1 - 2 / (e^2a + 1): exact limits -1 and 1 at large |a| */
ELEMWISE(tanh,
         LLVMBuildFSub(
             B, f32c(cg, 1),
             LLVMBuildFDiv(B, f32c(cg, 2),
                           LLVMBuildFAdd(B,
                                         intrinsic(cg, "llvm.exp.f32",
                                                   LLVMBuildFMul(B, a, f32c(cg, 2), "")),
                                         f32c(cg, 1), ""),
                           ""),
             ""))
ELEMWISE(add, fast(LLVMBuildFAdd(B, a, b, "")))
ELEMWISE(sub, fast(LLVMBuildFSub(B, a, b, "")))
ELEMWISE(mul, fast(LLVMBuildFMul(B, a, b, "")))
ELEMWISE(div, LLVMBuildFDiv(B, a, b, ""))
/* broadcasting is the elementwise identity */
ELEMWISE(broadcast, a)

/* ---- everything else ---- */

/* Leaves and views are buffers, not code. */
EMIT(input)
{
	(void)cg, (void)n;
}
EMIT(param)
{
	(void)cg, (void)n;
}
EMIT(state)
{
	(void)cg, (void)n;
}
EMIT(gradbuf)
{
	(void)cg, (void)n;
}
EMIT(hyper)
{
	(void)cg, (void)n;
}
EMIT(const)
{
	(void)cg, (void)n;
}
EMIT(reshape)
{
	(void)cg, (void)n;
}

static void zero(CG *cg, Node *n)
{
	Loop l;
	LLVMValueRef i = loop_begin(cg, &l, shape_numel(&n->sh));
	store_at(cg, n, i, f32c(cg, 0));
	loop_end(cg, &l);
}

/* out[o] += in[i] over every input element; o drops the reduced axes' indices. */
EMIT(sum)
{
	Node *x = n->in[0];
	zero(cg, n);
	Loop l[MAXRANK];
	LLVMValueRef in = i64c(cg, 0), out = i64c(cg, 0);
	for (int d = 0; d < x->sh.rank; d++) {
		LLVMValueRef i = loop_begin(cg, &l[d], x->sh.d[d]);
		in =
		    LLVMBuildAdd(B, LLVMBuildMul(B, in, i64c(cg, x->sh.d[d]), ""), i, "");
		out = LLVMBuildMul(B, out, i64c(cg, n->sh.d[d]), "");
		if (!(n->a[0] >> d & 1))
			out = LLVMBuildAdd(B, out, i, "");
	}
	LLVMValueRef s =
	    fast(LLVMBuildFAdd(B, load_at(cg, n, out), load_at(cg, x, in), ""));
	store_at(cg, n, out, s);
	for (int d = x->sh.rank - 1; d >= 0; d--)
		loop_end(cg, &l[d]);
}

/* C[M,N] = op(A) op(B). With B untransposed the inner loop runs along a row of B and
 * C (C[i,:] += A(i,k) * B[k,:]); with B transposed it is a dot product over k. */
EMIT(matmul)
{
	Node *A = n->in[0], *Bm = n->in[1];
	int ta = n->a[0], tb = n->a[1];
	int64_t M = n->sh.d[0], N = n->sh.d[1], K = ta ? A->sh.d[0] : A->sh.d[1];
	Loop li, lj, lk;
	LLVMValueRef i = loop_begin(cg, &li, M);
	LLVMValueRef a_i = ta ? i : LLVMBuildMul(B, i, i64c(cg, K), "");
	LLVMValueRef c_i = LLVMBuildMul(B, i, i64c(cg, N), "");
	if (!tb) {
		LLVMValueRef j = loop_begin(cg, &lj, N);
		store_at(cg, n, LLVMBuildAdd(B, c_i, j, ""), f32c(cg, 0));
		loop_end(cg, &lj);
		LLVMValueRef k = loop_begin(cg, &lk, K);
		LLVMValueRef aoff =
		    ta ? LLVMBuildAdd(B, LLVMBuildMul(B, k, i64c(cg, M), ""), i, "")
		       : LLVMBuildAdd(B, a_i, k, "");
		LLVMValueRef a = load_at(cg, A, aoff);
		LLVMValueRef b_k = LLVMBuildMul(B, k, i64c(cg, N), "");
		j = loop_begin(cg, &lj, N);
		LLVMValueRef co = LLVMBuildAdd(B, c_i, j, "");
		LLVMValueRef bv = load_at(cg, Bm, LLVMBuildAdd(B, b_k, j, ""));
		LLVMValueRef s = fast(LLVMBuildFAdd(
		    B, load_at(cg, n, co), fast(LLVMBuildFMul(B, a, bv, "")), ""));
		store_at(cg, n, co, s);
		loop_end(cg, &lj);
		loop_end(cg, &lk);
	} else {
		LLVMValueRef j = loop_begin(cg, &lj, N);
		LLVMValueRef b_j = LLVMBuildMul(B, j, i64c(cg, K), "");
		LLVMBasicBlockRef pre = LLVMGetInsertBlock(B);
		LLVMValueRef k = loop_begin(cg, &lk, K);
		LLVMValueRef acc = LLVMBuildPhi(B, cg->f32, "acc");
		LLVMValueRef z = f32c(cg, 0);
		LLVMAddIncoming(acc, &z, &pre, 1);
		LLVMValueRef aoff =
		    ta ? LLVMBuildAdd(B, LLVMBuildMul(B, k, i64c(cg, M), ""), i, "")
		       : LLVMBuildAdd(B, a_i, k, "");
		LLVMValueRef prod =
		    fast(LLVMBuildFMul(B, load_at(cg, A, aoff),
		                       load_at(cg, Bm, LLVMBuildAdd(B, b_j, k, "")), ""));
		LLVMValueRef next = fast(LLVMBuildFAdd(B, acc, prod, ""));
		LLVMBasicBlockRef latch = LLVMGetInsertBlock(B);
		LLVMAddIncoming(acc, &next, &latch, 1);
		loop_end(cg, &lk);
		store_at(cg, n, LLVMBuildAdd(B, c_i, j, ""), next);
		loop_end(cg, &lj);
	}
	loop_end(cg, &li);
}

/* Per row: m = max x, s = sum e^(x - m), out = x - m - log s. */
EMIT(logsoftmax)
{
	Node *x = n->in[0];
	int64_t C = n->sh.d[n->sh.rank - 1], rows = shape_numel(&n->sh) / C;
	Loop lr, lc;
	LLVMValueRef r = loop_begin(cg, &lr, rows);
	LLVMValueRef row = LLVMBuildMul(B, r, i64c(cg, C), "");
	LLVMValueRef m = load_at(cg, x, row), s = f32c(cg, 0);
	for (int pass = 0; pass < 2; pass++) {
		LLVMBasicBlockRef pre = LLVMGetInsertBlock(B);
		LLVMValueRef c = loop_begin(cg, &lc, C);
		LLVMValueRef acc = LLVMBuildPhi(B, cg->f32, "");
		LLVMValueRef init = pass ? s : m;
		LLVMAddIncoming(acc, &init, &pre, 1);
		LLVMValueRef v = load_at(cg, x, LLVMBuildAdd(B, row, c, ""));
		LLVMValueRef next;
		if (!pass) {
			next = LLVMBuildSelect(
			    B, LLVMBuildFCmp(B, LLVMRealOGT, v, acc, ""), v, acc, "");
		} else {
			LLVMValueRef e =
			    intrinsic(cg, "llvm.exp.f32", LLVMBuildFSub(B, v, m, ""));
			next = fast(LLVMBuildFAdd(B, acc, e, ""));
		}
		LLVMBasicBlockRef latch = LLVMGetInsertBlock(B);
		LLVMAddIncoming(acc, &next, &latch, 1);
		loop_end(cg, &lc);
		if (!pass)
			m = next;
		else
			s = next;
	}
	LLVMValueRef shift = LLVMBuildFAdd(B, m, intrinsic(cg, "llvm.log.f32", s), "");
	LLVMValueRef c = loop_begin(cg, &lc, C);
	LLVMValueRef off = LLVMBuildAdd(B, row, c, "");
	store_at(cg, n, off, LLVMBuildFSub(B, load_at(cg, x, off), shift, ""));
	loop_end(cg, &lc);
	loop_end(cg, &lr);
}

/* out[r, c] = labels[r] == c */
EMIT(onehot)
{
	int64_t C = n->a[0], rows = shape_numel(&n->sh) / C;
	Loop lr, lc;
	LLVMValueRef r = loop_begin(cg, &lr, rows);
	LLVMValueRef lab = LLVMBuildSExt(B, load_at(cg, n->in[0], r), cg->i64, "");
	LLVMValueRef c = loop_begin(cg, &lc, C);
	LLVMValueRef eq = LLVMBuildICmp(B, LLVMIntEQ, lab, c, "");
	store_at(cg, n, LLVMBuildAdd(B, LLVMBuildMul(B, r, i64c(cg, C), ""), c, ""),
	         LLVMBuildSelect(B, eq, f32c(cg, 1), f32c(cg, 0), ""));
	loop_end(cg, &lc);
	loop_end(cg, &lr);
}

static void (*const emitters[OP_COUNT])(CG *, Node *) = {
#define OP(E, name, nin, flags) [OP_##E] = cg_##name,
#include "ops.h"
#undef OP
};

/* ---- functions and module ---- */

static LLVMValueRef dest_ptr(CG *cg, const Out *o)
{
	Graph *g = cg->g;
	int64_t off;
	int slot;
	switch (o->kind) {
	case DEST_PARAM:
		slot = RT_PARAMS, off = g->params[o->index].off;
		break;
	case DEST_GRAD:
		slot = RT_GRADS, off = g->params[o->index].off;
		break;
	case DEST_STATE:
		slot = RT_STATE, off = g->states[o->index].off;
		break;
	default:
		return LLVMBuildPointerCast(B, cg->io[o->index], cg->f32p, "");
	}
	LLVMValueRef o_ = i64c(cg, off);
	return LLVMBuildGEP2(B, cg->f32, cg->base[slot], &o_, 1, "");
}

static void emit_fn(CG *cg, FnKind k)
{
	Graph *g = cg->g;
	cg->p = plan_fn(g, k);
	if (cg->p->nwork > cg->nwork)
		cg->nwork = cg->p->nwork;
	cg->fn = LLVMAddFunction(cg->mod, fn_names[k], cg->fnty);
	LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "entry");
	LLVMPositionBuilderAtEnd(B, LLVMGetEntryBasicBlock(cg->fn));
	cg->bufs = LLVMGetParam(cg->fn, 0);
	/* Every buffer pointer is loaded here, once: stores into the buffers could alias
	 * the pointer array as far as LLVM knows, so loads inside loops would stay there.
	 */
	cg->io = arena_alloc(g->A, (size_t)(g->nios + 1) * sizeof *cg->io);
	for (int s = 0; s < RT_IO0 + g->nios; s++) {
		LLVMValueRef idx = i64c(cg, s);
		LLVMValueRef p = LLVMBuildLoad2(
		    B, cg->ptr, LLVMBuildGEP2(B, cg->ptr, cg->bufs, &idx, 1, ""), "");
		if (s < RT_IO0)
			cg->base[s] = LLVMBuildPointerCast(B, p, cg->f32p, "");
		else
			cg->io[s - RT_IO0] = p;
	}
	for (int i = 0; i < cg->p->n; i++)
		emitters[cg->p->order[i]->op](cg, cg->p->order[i]);
	/* outputs are copied last, so updates never disturb values still being read */
	Fn *fn = &g->fns[k];
	for (int i = 0; i < fn->nouts; i++) {
		Out *o = &fn->outs[i];
		LLVMValueRef dst = dest_ptr(cg, o);
		Loop l;
		LLVMValueRef j = loop_begin(cg, &l, shape_numel(&o->node->sh));
		LLVMValueRef v = load_at(cg, o->node, j);
		if (o->node->dt == DT_I32)
			v = LLVMBuildSIToFP(B, v, cg->f32, "");
		LLVMBuildStore(B, v, LLVMBuildGEP2(B, cg->f32, dst, &j, 1, ""));
		loop_end(cg, &l);
	}
	LLVMBuildRetVoid(B);
}

LLVMTargetMachineRef target_host_machine(Diags *d, int opt_level)
{
	LLVMInitializeNativeTarget();
	LLVMInitializeNativeAsmPrinter();
	char *triple = LLVMGetDefaultTargetTriple(), *err = NULL;
	LLVMTargetRef target;
	LLVMTargetMachineRef tm = NULL;
	if (LLVMGetTargetFromTriple(triple, &target, &err)) {
		error_at(d, (SrcLoc){0}, "LLVM has no target for %s: %s", triple, err);
		LLVMDisposeMessage(err);
		goto cleanup;
	}
	char *cpu = LLVMGetHostCPUName(), *features = LLVMGetHostCPUFeatures();
	LLVMCodeGenOptLevel lvl = opt_level >= 3   ? LLVMCodeGenLevelAggressive
	                          : opt_level == 0 ? LLVMCodeGenLevelNone
	                                           : LLVMCodeGenLevelDefault;
	tm = LLVMCreateTargetMachine(target, triple, cpu, features, lvl, LLVMRelocPIC,
	                             LLVMCodeModelDefault);
	LLVMDisposeMessage(cpu);
	LLVMDisposeMessage(features);
cleanup:
	LLVMDisposeMessage(triple);
	return tm;
}

static int optimize(Diags *d, LLVMModuleRef mod, LLVMTargetMachineRef tm, int level)
{
	char passes[32];
	snprintf(passes, sizeof passes, "default<O%d>", level);
	LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
	LLVMPassBuilderOptionsSetLoopVectorization(opts, level >= 2);
	LLVMPassBuilderOptionsSetSLPVectorization(opts, level >= 2);
	LLVMErrorRef e = LLVMRunPasses(mod, passes, tm, opts);
	LLVMDisposePassBuilderOptions(opts);
	if (e) {
		char *msg = LLVMGetErrorMessage(e);
		error_at(d, (SrcLoc){0}, "LLVM optimization failed: %s", msg);
		LLVMDisposeErrorMessage(msg);
		return -1;
	}
	return 0;
}

static void emit_module(CG *cg)
{
	cg->f32 = LLVMFloatTypeInContext(cg->ctx);
	cg->i32 = LLVMInt32TypeInContext(cg->ctx);
	cg->i64 = LLVMInt64TypeInContext(cg->ctx);
	cg->ptr = LLVMPointerType(LLVMInt8TypeInContext(cg->ctx), 0);
	cg->f32p = LLVMPointerType(cg->f32, 0);
	cg->i32p = LLVMPointerType(cg->i32, 0);
	LLVMTypeRef pp = LLVMPointerType(cg->ptr, 0);
	cg->fnty = LLVMFunctionType(LLVMVoidTypeInContext(cg->ctx), &pp, 1, 0);
	for (int k = 0; k < FN_COUNT; k++)
		if (cg->g->fns[k].defined)
			emit_fn(cg, k);
}

int cg_compile(Graph *g, const CodegenOpts *o, ObjCode *out, int64_t *nwork,
               char **ir_text)
{
	Diags *d = g->diags;
	int status = -1;
	char *err = NULL;
	LLVMMemoryBufferRef mb = NULL;
	CG cgs = {.g = g}, *cg = &cgs;
	memset(out, 0, sizeof *out);
	LLVMTargetMachineRef tm = target_host_machine(d, o->opt_level);
	if (!tm)
		return -1;
	cg->ctx = LLVMContextCreate();
	cg->mod = LLVMModuleCreateWithNameInContext("descent", cg->ctx);
	cg->b = LLVMCreateBuilderInContext(cg->ctx);
	char *triple = LLVMGetTargetMachineTriple(tm);
	LLVMSetTarget(cg->mod, triple);
	LLVMDisposeMessage(triple);
	LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
	LLVMSetModuleDataLayout(cg->mod, dl);
	LLVMDisposeTargetData(dl);

	emit_module(cg);
	*nwork = cg->nwork;
	if (LLVMVerifyModule(cg->mod, LLVMReturnStatusAction, &err)) {
		error_at(d, (SrcLoc){0},
		         "internal error: generated LLVM IR is invalid: %s", err);
		goto cleanup;
	}
	if (optimize(d, cg->mod, tm, o->opt_level) < 0)
		goto cleanup;
	if (ir_text) {
		char *s = LLVMPrintModuleToString(cg->mod);
		*ir_text = strdup(s);
		LLVMDisposeMessage(s);
	}
	if (LLVMTargetMachineEmitToMemoryBuffer(tm, cg->mod, LLVMObjectFile, &err, &mb)) {
		error_at(d, (SrcLoc){0}, "LLVM could not emit object code: %s", err);
		goto cleanup;
	}
	out->size = LLVMGetBufferSize(mb);
	out->data = malloc(out->size);
	if (!out->data)
		die("out of memory");
	memcpy(out->data, LLVMGetBufferStart(mb), out->size);
	LLVMDisposeMemoryBuffer(mb);
	status = 0;
cleanup:
	if (err)
		LLVMDisposeMessage(err);
	LLVMDisposeBuilder(cg->b);
	LLVMDisposeModule(cg->mod);
	LLVMContextDispose(cg->ctx);
	LLVMDisposeTargetMachine(tm);
	return status;
}

void objcode_free(ObjCode *o)
{
	free(o->data);
	if (o->llvm_ir)
		free(o->llvm_ir);
	memset(o, 0, sizeof *o);
}
