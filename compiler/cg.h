/* Shared by the code generator's files: codegen.c (functions, module, loops, buffers,
 * elementwise ops) and kernels.c (every other op's loop nest). Only these two include
 * it, and only they (with jit.c and aot.c) see LLVM. */
#ifndef DC_CG_H
#define DC_CG_H

#include <llvm-c/Core.h>

#include "dc.h"

enum { MAXSLOTS = 64 }; /* operands of one kernel */

typedef struct Sig { /* a kernel's signature, being built (codegen.c) */
	uint64_t *w;
	size_t n, cap;
	LLVMValueRef *key; /* positions by value: open addressing, kcap a power of 2 */
	uint64_t *pos;
	size_t kcap, nkeys;
	unsigned loop_kind; /* llvm.loop's metadata kind */
} Sig;

typedef struct Known { /* a kernel emitted so far, by its signature (codegen.c) */
	uint64_t hash;
	uint64_t *sig;
	size_t nsig;
	char *text;        /* its text, with check_dedupe */
	LLVMValueRef fn;   /* f(operands..., lo, hi) */
	LLVMValueRef wrap; /* k(operand array, lo, hi), made when a thread needs it */
	int nslots;
	int par, direct; /* called through the thread pool; calls on [0, n) */
	int64_t bound;   /* n when every call is on [0, n), else -1 */
} Known;

/* The register tile of the matrix kernels, chosen for the target (codegen.c). */
typedef struct Tile {
	int vw;        /* floats per vector: 16 (AVX-512), 8 (AVX), 4 (SSE, NEON) */
	int mr, nv;    /* broadcast kernel: mr rows x nv vectors of accumulators */
	int dr, dc;    /* dot-product kernel: dr rows x dc columns */
	int pf_update; /* the update phase's passes prefetch ahead (codegen.c) */
} Tile;

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
	const char *prefix;        /* of the functions' symbols */
	LLVMValueRef *scalar_args; /* set: pointwise emitters give one element's value */
	LLVMValueRef scalar_out;
	LLVMValueRef *pre; /* by node id: values loaded before a pointwise loop */
	char *choose; /* by node id: a select decided before a nest: 1 or 2, its input */
	int vw; /* set: pointwise values are vectors of vw floats (constants splat) */
	LLVMValueRef vmask; /* set with vw: loads read only these lanes (others are 0) */
	/* set: a flat vector loop's loads prefetch this many elements ahead (negative:
	 * behind, for a loop run backwards), each array once a body (pf_done) */
	int64_t pf_ahead;
	Node **pf_done;
	int npf_done;
	/* the loop nest body being emitted: its dims and index, for a sink to compute
	 * more values at the same element */
	const Shape *body_dims;
	LLVMValueRef *body_idx;
	int check_numerics;
	int profile;         /* CodegenOpts.profile */
	unsigned fns;        /* CodegenOpts.fns */
	LLVMValueRef prof_t; /* train_step's last clock reading, when profiling */
	/* the kernels the part being profiled calls so far ("a, b", or NULL), and
	 * whether any of them goes to the thread pool */
	const char *part_kernels;
	int last_par;
	Tile tile;
	int as_written; /* loops get metadata: no unrolling, no vectorizing */
	int single;     /* computing a single value: exp and log call libm (vmath.c) */
	int cold;       /* the entry point's small kernels are COLD_CODE (codegen.c) */
	/* The node being emitted runs as one or more kernels, functions
	 * void k(bufs, lo, hi) that the entry point calls in order (codegen.c). */
	LLVMTypeRef kty;
	Node *knode;
	int64_t kwork;     /* cg_kernel_work, or 0: its node's */
	const char *kname; /* the next kernel's name, when not its node's op */
	int nkernels;
	LLVMValueRef par_lo, par_hi; /* the kernel's part of its parallel extent */
	Buf slots[MAXSLOTS];         /* the kernel's operands, in order of first use */
	LLVMValueRef slot_ptr[MAXSLOTS], slot_load[MAXSLOTS], slot_gep[MAXSLOTS];
	int nslots;
	LLVMValueRef args;  /* the entry point's operand array (ptr *) */
	LLVMValueRef mxcsr; /* the caller's, saved at entry (x86) */
	Known *known;
	int nknown, capknown;
	Sig sig;
	int check_dedupe, dedupe_errors; /* CodegenOpts.check_dedupe */
	int64_t par_n, par_grain;        /* that extent, once cg_par_loop has set it */
	struct { /* the entry point's own values, while in a kernel */
		LLVMValueRef fn, bufs, base[RT_IO0], *io;
		LLVMBasicBlockRef at;
	} top;
} CG;

typedef struct Loop {
	LLVMBasicBlockRef body, exit;
	LLVMValueRef i, n;
} Loop;

#define B cg->b

LLVMValueRef cg_i64(CG *cg, int64_t v);
LLVMValueRef cg_f32(CG *cg, double v); /* a vector of them while CG.vw is set */
LLVMValueRef cg_splat(CG *cg, LLVMValueRef v, int n); /* v in each of n lanes (n <= 16) */
LLVMValueRef cg_fast(LLVMValueRef v); /* allow reassociation (vectorized reductions) */
/* for (i = 0; i < n; i++) with a static n >= 1 */
LLVMValueRef cg_loop(CG *cg, Loop *l, int64_t n);
/* the same with a run-time n, which must be >= 1 (values made in the body are used
 * after the loop) */
LLVMValueRef cg_loop_n(CG *cg, Loop *l, LLVMValueRef n);
/* for (i = lo; i < hi; i++) with run-time bounds, possibly empty */
LLVMValueRef cg_loop_range(CG *cg, Loop *l, LLVMValueRef lo, LLVMValueRef hi);
void cg_loop_end(CG *cg, Loop *l);
/* The kernel's parallel loop: for (i = lo; i < hi; i++), where [lo, hi) is this
 * thread's part of [0, n) cut on multiples of grain. Iterations must write disjoint
 * elements and read nothing another iteration writes. One extent per kernel, over
 * which a loop may run more than once (versions of a nest, chosen at run time). */
LLVMValueRef cg_par_loop(CG *cg, Loop *l, int64_t n, int64_t grain);
/* The same, for a kernel that walks its part [*lo, *hi) of [0, n) itself. */
void cg_par_range(CG *cg, int64_t n, int64_t grain, LLVMValueRef *lo, LLVMValueRef *hi);
/* Ends the node's current kernel and starts the next, which runs after it (a phase
 * whose result the next one reads in full, like a transposed copy). Pointers into
 * buffers must be fetched again after it. */
void cg_next_kernel(CG *cg);
/* The work of the kernel being emitted, in flops or element operations, when it is not
 * its node's (a product's transposed copy of an operand, say): whether the thread pool
 * runs it, and whether it is compiled for size. */
void cg_kernel_work(CG *cg, int64_t work);
/* An accumulator carried around the innermost open loop: create after cg_loop, close
 * with the value for the next iteration before cg_loop_end. */
LLVMValueRef cg_acc_begin(CG *cg, LLVMBasicBlockRef pre, LLVMValueRef init);
void cg_acc_next(CG *cg, LLVMValueRef acc, LLVMValueRef next);
LLVMValueRef cg_node_ptr(CG *cg, Node *n); /* element 0 of the node's buffer */
/* n's element at idx (one index per axis of dims, which n broadcasts to): loaded, or
 * computed right here when n is fused into the loop (Plan.inl) */
LLVMValueRef cg_value(CG *cg, Node *n, const Shape *dims, LLVMValueRef *idx);
int cg_fused(CG *cg, Node *n);
LLVMValueRef cg_load(CG *cg, Node *n, LLVMValueRef off);
/* a hint to fetch the cache line at p into L1; it never faults, so p may be past the
 * end of its array */
void cg_prefetch(CG *cg, LLVMValueRef p);
/* llvm.masked.load (v NULL: lanes not in mask read as 0) or llvm.masked.store of v, at
 * p: lanes not in mask are not accessed */
LLVMValueRef cg_masked(CG *cg, LLVMTypeRef vt, LLVMValueRef mask, LLVMValueRef p,
                       LLVMValueRef v);
void cg_store(CG *cg, Node *n, LLVMValueRef off, LLVMValueRef v);
void cg_zero(CG *cg, Node *n);
LLVMValueRef cg_call(CG *cg, const char *name, int nargs, LLVMValueRef *args); /* f32 */
/* calls the function name of that type, declaring it on first use (intrinsics, the
 * runtime) */
LLVMValueRef cg_call_as(CG *cg, const char *name, LLVMTypeRef ret, LLVMTypeRef *params,
                        int nargs, LLVMValueRef *args);
/* exp, log, erf, tanh, sigmoid, softplus of a float or a vector of floats, as IR with
 * no call; sin and cos of a vector, libm's in lanes past |x| = 8192, and of a float,
 * libm's (vmath.c) */
LLVMValueRef vm_exp(CG *cg, LLVMValueRef x);
LLVMValueRef vm_log(CG *cg, LLVMValueRef x);
LLVMValueRef vm_erf(CG *cg, LLVMValueRef x);
LLVMValueRef vm_tanh(CG *cg, LLVMValueRef x);
LLVMValueRef vm_sigmoid(CG *cg, LLVMValueRef x);
LLVMValueRef vm_softplus(CG *cg, LLVMValueRef x);
LLVMValueRef vm_sin(CG *cg, LLVMValueRef x);
LLVMValueRef vm_cos(CG *cg, LLVMValueRef x);
LLVMValueRef cg_add(CG *cg, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef cg_mul(CG *cg, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef cg_min(CG *cg, LLVMValueRef a, LLVMValueRef b); /* signed i64 */
LLVMValueRef cg_max(CG *cg, LLVMValueRef a, LLVMValueRef b); /* signed i64 */

/* The kernel being emitted gets LLVM's whole pipeline, not the short one (scalar loops
 * that want vectorizing and unrolling: im2col's). */
void cg_full_opt(CG *cg);
/* n's epilogue r (Plan): begin before the kernel's loops (it loads single values
 * there), then r's value at index idx of its shape from v, n's value there; end after. */
void cg_epilogue_begin(CG *cg, Node *r);
LLVMValueRef cg_epilogue(CG *cg, Node *r, Node *n, LLVMValueRef v, LLVMValueRef *idx);
void cg_epilogue_end(CG *cg);

#define OP(E, name, nin, flags) void emit_##name(CG *cg, Node *n);
#include "ops.h"
#undef OP

#endif
