// clang-format off
/* descent compiler: the internal header, and a map of the compiler.
 *
 * The compiler is a straight pipeline, one file per stage:
 *
 *   spec.c         YAML text -> Spec tree (every node keeps file:line:col)
 *   expr.c         expressions in model files: text -> Expr tree, and back to text
 *   model.c        Spec tree -> Model (typed, validated description of the network)
 *   model_train.c  the model's train: and data: sections (model.h: what it shares
 *                  with model.c)
 *   layers.c       what a model can call: one table row per function, and its builder
 *   calls.c        checks calls against their rows' signatures
 *   lower.c        Model -> Graph: forward graph of primitive ops, loss, optimizer update
 *   graph.c        the IR: nodes, builders, functions (sets of outputs)
 *   fold.c         rewrites at build time: simplifications and numerically stable forms
 *   shape.c        shape inference, one function per op (called by the builders)
 *   autodiff.c     reverse-mode driver: walks the graph backwards, un-broadcasts,
 *                  accumulates
 *   grad.c         one short chain-rule rule per op
 *   optim.c        gradients -> parameter updates, as IR
 *   eval.c         reference interpreter in float64 (gradient checks, differential
 *                  tests)
 *   plan.c         per function: the nodes to compute, pointwise fusion, the update
 *                  phase, where every node lives (workspace by liveness)
 *   dump.c         IR as text
 *   codegen.c      Graph -> LLVM IR: entry points calling one kernel function per
 *                  loop nest (directly, or on the runtime's threads), the update
 *                  phase, denormals; verified, optimized for the target, in shards
 *   kernels.c      loop nests of the ops that are not elementwise, and the matrix
 *                  micro-kernels
 *   jit.c          LLVM object -> callable code through ORC LLJIT
 *   aot.c          ahead of time: an object file and a C header
 *   compile.c      the whole pipeline behind one call, used by the CLI, the API, the
 *                  tests; the object cache
 *   api.c          the public C API (include/descent/descent.h)
 *   inspect.c      any stage as text or Graphviz (descent ir)
 *   bench.c        how fast a compiled model trains (descent bench)
 *   gradcheck.c    the model's gradients against finite differences (descent gradcheck)
 *   trainlog.c     the per-epoch training log (CSV) and its plot (SVG)
 *   util.c         arena, diagnostics, internal errors
 *
 * The `descent` command line is not part of the library: main.c (options, dispatch),
 * cli_train.c (train, eval, predict, plot) and cli_tools.c (grad, compile, gradcheck,
 * bench, ir), sharing cli.h.
 *
 * Only codegen.c, kernels.c (through cg.h) and jit.c include llvm-c/. The runtime
 * (runtime/) includes nothing from here. Each section below lists one file's exports.
 */
// clang-format on
#ifndef DC_H
#define DC_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "descent/runtime.h"

#define MAXRANK RT_MAXRANK
#define MAXIN 3
#define NATTR 12

/* ================= util.c: arena, diagnostics, internal errors ================= */

typedef struct SrcLoc {
	const char *file; /* NULL when unknown */
	int line, col;    /* 1-based; 0 when unknown */
} SrcLoc;

typedef struct Arena Arena;
Arena *arena_new(void);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t bytes); /* zeroed, 16-byte aligned */
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...);

/* Why no file (a directory when is_dir) can be written at path: its directory does
 * not exist or take files, or path is (not) a directory; NULL when it can. why holds
 * the message when it names the directory. */
const char *cannot_write(const char *path, int is_dir, char *why, size_t n);
/* Whether path can be written (cannot_write), else an error naming the option on
 * stderr (the command line's outputs, checked before the work). */
int can_write(const char *opt, const char *path, int is_dir);
/* Whether writing a and reading b (or writing both) meet in one file: the same device
 * and inode when both exist, else the same name. */
int same_file(const char *a, const char *b);
/* The extension of path's last component, from its dot ("x.d/a.SVG": ".SVG"), or NULL */
const char *path_ext(const char *path);
/* Whether path names a file directly in directory dir, which may not exist yet */
int path_in_dir(const char *path, const char *dir);
/* The file's bytes (malloc'd, *len of them), or NULL. */
char *read_whole(const char *path, size_t *len);
/* Runs argv[0] (found on PATH, no shell) with argv: 0 when it exits with 0, 1 when
 * there is no such program, -1 otherwise. */
int run_program(char *const *argv);

typedef enum { SEV_ERROR, SEV_WARNING, SEV_NOTE } Severity;

typedef struct Diag {
	Severity sev;
	SrcLoc loc;
	char *msg;
} Diag;

/* A list of diagnostics plus the source texts they point into, so that printing can
 * show the offending line and a caret. Lives outside any arena: it outlives them. */
typedef struct Diags {
	Diag *v;
	int n, cap, nerr;
	struct DiagSrc {
		char *file, *text;
		size_t len;
	} * src;
	int nsrc;
} Diags;

void diag_add(Diags *d, Severity sev, SrcLoc loc, const char *fmt, ...);
void diag_vadd(Diags *d, Severity sev, SrcLoc loc, const char *fmt, va_list ap);
__attribute__((format(printf, 3, 4))) static inline void error_at(Diags *d, SrcLoc loc,
                                                                  const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_vadd(d, SEV_ERROR, loc, fmt, ap);
	va_end(ap);
}
__attribute__((format(printf, 3, 4))) static inline void warn_at(Diags *d, SrcLoc loc,
                                                                 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_vadd(d, SEV_WARNING, loc, fmt, ap);
	va_end(ap);
}
void diag_source(Diags *d, const char *file, const char *text, size_t len);
/* file:line:col: error: message, then the source line and a caret under col. */
void diag_print(const Diags *d, FILE *f);
/* Prints the diagnostics so far and forgets them (nerr stays): warnings before a long
 * run, not after it. */
void diag_flush(Diags *d, FILE *f);
void diag_format(const Diags *d, const Diag *g, char *buf,
                 size_t len); /* first line only */
void diags_free(Diags *d);
/* The candidate closest to s by edit distance, or NULL if none is close. */
const char *did_you_mean(const char *s, const char *const *cands, int n);

/* Internal invariant broken: a bug in descent, never a user error. */
_Noreturn void dc_die(const char *file, int line, const char *fmt, ...);
#define die(...) dc_die(__FILE__, __LINE__, __VA_ARGS__)
#define check(c)                                                                         \
	do {                                                                             \
		if (!(c))                                                                \
			die("check failed: %s", #c);                                     \
	} while (0)

/* Overflow-checked products for sizes that come from user input. */
int mul_ok(int64_t a, int64_t b, int64_t *out);
/* a * b for a, b >= 0, or INT64_MAX when it overflows: past every limit below. */
/* The shortest %g text of v that reads back as v (at most 24 bytes). */
const char *num_text(char *s, size_t n, double v);
int64_t mul_sat(int64_t a, int64_t b);

/* What a model may ask for (README, "Errors and limits"); each has its own error. */
#define MAX_BATCH (INT64_C(1) << 20)
#define MAX_ELEMS (INT64_C(1) << 32)  /* of one value: 16 GiB of floats */
#define MAX_BYTES (INT64_C(16) << 30) /* parameters, gradients, state and workspace */

/* ================= spec.c: YAML -> Spec tree ================= */

typedef enum { SPEC_SCALAR, SPEC_SEQ, SPEC_MAP } SpecKind;

typedef struct Spec Spec;
struct Spec {
	SpecKind kind;
	SrcLoc loc;
	const char *str; /* SPEC_SCALAR: the text */
	int quoted;      /* SPEC_SCALAR: written in quotes (so never a number) */
	/* SPEC_SCALAR: the file's line and column of each character of str and of its
	 * end (pos[2 i], pos[2 i + 1]), where they are not str's start plus i columns
	 * (a block, a string over several lines, escapes, a tag); else NULL */
	const int *pos;
	int n;        /* SPEC_SEQ, SPEC_MAP: number of items / entries */
	Spec **items; /* SPEC_SEQ: items; SPEC_MAP: values */
	Spec **keys;  /* SPEC_MAP: keys, each a SPEC_SCALAR */
};

/* Parses one YAML document. Returns NULL with an error in d on bad YAML, anchors or
 * aliases past the limits, or non-scalar keys. The text is registered with d. */
Spec *spec_parse(Arena *A, Diags *d, const char *file, const char *text, size_t len);
/* Reads path and parses it; a file that cannot be read is an error naming it. */
Spec *spec_load(Arena *A, Diags *d, const char *path);

/* Typed access. Each returns 0 on success, -1 after recording an error that quotes the
 * value and points at it. */
const char *spec_kind_name(SpecKind k); /* "scalar", "list", "mapping" */
/* What a node is, for messages: "a list", "'2.5'", "the string \"64\"", "nothing". */
const char *spec_describe(const Spec *s, char *buf, size_t len);
Spec *spec_get(const Spec *map, const char *key); /* NULL if absent or not a map */
int spec_expect(Diags *d, const Spec *s, SpecKind kind, const char *what);
int spec_int(Diags *d, const Spec *s, const char *what, int64_t min, int64_t max,
             int64_t *out);
/* Finite decimal or a fraction "a/b"; min/max inclusive. */
int spec_num(Diags *d, const Spec *s, const char *what, double min, double max,
             double *out);
/* true, yes: 1; false, no: 0, in any case (True, as Python writes it); else -1. */
int bool_word(const char *s);
int spec_bool(Diags *d, const Spec *s, const char *what, int *out);
int spec_str(Diags *d, const Spec *s, const char *what, const char **out);
/* One of the names; error lists them, with "did you mean". */
int spec_enum(Diags *d, const Spec *s, const char *what, const char *const *names, int n,
              int *out);
/* Every key of map must be one of allowed (NULL-terminated): unknown keys are errors
 * with "did you mean", duplicates too. */
int spec_keys(Diags *d, const Spec *map, const char *what, const char *const *allowed);
/* A required key: error at the map if missing. */
Spec *spec_need(Diags *d, const Spec *map, const char *key, const char *what);

/* ================= expr.c: expressions in model files ================= */

/* An expression such as "relu(h1 + h2)", "dense(x, units=128, activation=relu)" or
 * "(1 - x)^2 + 100*(y - x^2)^2", parsed from a YAML scalar. Every node has the
 * file:line:col of its first character. */
typedef enum {
	EX_NUM,  /* num */
	EX_NAME, /* name; may be dotted: fc1.weight */
	EX_CALL, /* name(args..., kwnames[i]=kwargs[i]...) */
	EX_BIN,  /* args[0] op args[1] */
	EX_NEG,  /* -args[0] */
	EX_LIST  /* [args...] or (a, b, ...) */
} ExprKind;

typedef struct Expr Expr;
struct Expr {
	ExprKind kind;
	SrcLoc loc;
	double num;
	const char *text; /* EX_NUM: as written ("1e400", "-3", ".nan"), for messages */
	const char *name;
	int op; /* EX_BIN: '+', '-', '*', '/', '^', '<', '>', 'l' (<=), 'g' (>=), '=' (==)
	         */
	Expr **args;
	int nargs;
	const char **kwnames;
	Expr **kwargs;
	SrcLoc *kwlocs; /* where each keyword's name is; NULL: at its value */
	int nkw;
};

/* Parses text, which starts at file:line:col `at` (the first character of the text, so
 * a quoted YAML scalar's loc plus one column). NULL after an error pointing into it. */
Expr *expr_parse(Arena *A, Diags *d, const char *text, SrcLoc at);
/* the same, with each character's place in the file from pos (Spec.pos) if set */
Expr *expr_parse_at(Arena *A, Diags *d, const char *text, SrcLoc at, const int *pos);
/* A YAML value as an expression: a scalar is parsed (numbers, names, expressions), a
 * list becomes EX_LIST of its items; a mapping is an error. YAML's .nan and .inf become
 * EX_NUM nodes that are not finite, for the checks of each place to reject by name. */
Expr *expr_from_spec(Arena *A, Diags *d, const Spec *s);
/* The expression as text, normalized ("relu(h1 + h2)"), for messages and dumps. */
char *expr_str(Arena *A, const Expr *e);

/* ================= model.c: Spec -> Model ================= */

typedef enum { DT_F32, DT_I32 } DType;

typedef struct ModelInput {
	const char *name;
	SrcLoc loc;
	DType dt;
	int rank; /* including the batch dim, which is dims[0] = -1 until compiled */
	int64_t dims[MAXRANK];
} ModelInput;

/* A free parameter of the model (params:), such as x and y of a Rosenbrock model. */
typedef struct ParamDecl {
	const char *name;
	SrcLoc loc;
	int rank;
	int64_t dims[MAXRANK];
	rt_init init;
	double value; /* RT_INIT_CONSTANT's value, RT_INIT_NORMAL's std */
	int trainable;
} ParamDecl;

/* One named value of the network: a layer of the sequential list or a node of the
 * graph form, as a call or an expression ("dense(h1, units=128)"). */
typedef struct Def {
	const char *name;
	SrcLoc loc;
	const Expr *e;
} Def;

/* torch.optim's optimizers, in model.c's name table order */
typedef enum { OPT_SGD, OPT_ADAM, OPT_ADAMW, OPT_RMSPROP, OPT_ADAGRAD } OptKind;
extern const char *const opt_names[]; /* by OptKind: "sgd", "adam"... (model.c) */

typedef enum { SRC_IDX, SRC_NPY, SRC_CSV } SrcKind;

typedef struct DataSource {
	SrcKind kind;
	const char *path; /* IDX (.gz or not), .npy, or a CSV holding both x and y */
	double scale;     /* f32 values are multiplied by it */
	SrcLoc loc;
	/* SRC_CSV, set on the sources of both the network's input and the target */
	const char *label; /* the label column: a header name or a 0-based index */
	char delimiter;
	int header;
} DataSource;

/* Metrics the training loop can monitor (early stopping, reduce_on_plateau); MON_AUTO:
 * val_loss with a validation split, else test_loss with a test set, else train_loss. */
typedef enum {
	MON_AUTO,
	MON_TRAIN_LOSS,
	MON_VAL_LOSS,
	MON_VAL_ACCURACY,
	MON_TEST_LOSS,
	MON_TEST_ACCURACY
} Monitor;

/* The training loop's settings beyond batch/epochs/seed (train: in the model file). All
 * zero when not given: no schedule, no split, no accumulation, no early stopping. */
typedef struct TrainCfg {
	rt_schedule sched; /* base_lr: the optimizer's lr, set by the CLI */
	int sched_set;     /* a schedule or a warm-up is given; else sched is unset */
	Monitor sched_monitor;
	int sched_mode;          /* reduce_on_plateau: 1 min, 2 max, 0 from the monitor */
	double validation_split; /* the last fraction of the training set; 0: none */
	int64_t accumulate;      /* micro-batches per optimizer step; <= 1: none */
	int early;               /* early_stopping: given */
	Monitor es_monitor;
	int es_mode; /* as sched_mode */
	double es_min_delta;
	int64_t es_patience;
	int64_t
	    ckpt_every; /* epochs between checkpoints; 0: 1 when a directory is given */
	SrcLoc sched_loc, es_loc, split_loc;
	int steps_set; /* train.steps given (for a model without data) */
	SrcLoc steps_loc;
} TrainCfg;

typedef struct Model {
	const char *file, *name;
	ModelInput *inputs;
	int ninputs;
	int x,
	    y; /* indices into inputs: the network's data and the loss target; -1: none */
	ParamDecl *params;
	int nparams;
	Def *defs;
	int ndefs;
	const char *output; /* the def holding the network's prediction */
	SrcLoc output_loc;
	const Expr *loss;
	SrcLoc loss_loc;
	/* The optimizer's settings under torch.optim's names, filled with the defaults of
	 * its type (model.c); optim.c says which each optimizer reads. */
	OptKind opt;
	double lr, momentum, dampening, weight_decay; /* sgd; momentum: rmsprop too */
	double beta1, beta2, eps;                     /* adam, adamw; eps: all but sgd */
	double alpha;                                 /* rmsprop */
	double lr_decay, initial_accumulator_value;   /* adagrad */
	int nesterov, amsgrad, centered;              /* compile-time switches */
	double max_norm, clip_value; /* clip_grad_norm, clip_grad_value; 0: none */
	SrcLoc opt_loc;
	int64_t batch, epochs, steps; /* steps: for models without data */
	uint64_t seed;
	TrainCfg tc;
	/* per input, indexed like inputs; path NULL when not given */
	DataSource *train, *test;
	int has_train, has_test;
} Model;

/* Reads and validates the model description. NULL on error (reported in d). */
Model *model_from_spec(Arena *A, Diags *d, const Spec *root, const char *file);
Model *model_load(Arena *A, Diags *d, const char *path);
/* The values a run-time hyperparameter (optim.c's names: "lr", "beta1", ...) may take,
 * the model file's ranges for its setting (lr from 0, for schedules): [lo, hi], with
 * lo excluded when open is '>' and hi when '<'. 0 for a name it does not know. */
int hyper_range(const char *name, double *lo, double *hi, char *open);

/* ================= model_train.c: the train: and data: sections ================= */

/* parse_train and parse_data, called by model_from_spec, take model.c's parsing
 * context: they are declared with it in model.h, internal to model.c and model_train.c.
 */

/* ================= graph.c: the IR ================= */

typedef enum {
#define OP(E, name, nin, flags) OP_##E,
#include "ops.h"
#undef OP
	OP_COUNT
} Op;

enum {
	OPF_LEAF = 1 << 0,     /* no inputs; reads a buffer or a constant */
	OPF_ELEMWISE = 1 << 1, /* out[i] = f(in0[i'], in1[i'']) with broadcasting */
	OPF_REDUCE = 1 << 2,   /* sums over axes */
	OPF_VIEW = 1 << 3,     /* same data, another shape: needs no buffer of its own */
	OPF_NODIFF = 1 << 4, /* no derivative: a parameter reaching the loss through it is
	                        an error (integer results) */
	OPF_KINK = 1 << 5,   /* derivative jumps at 0: gradient checks stay away */
	OPF_POSITIVE = 1 << 6, /* defined for positive inputs only (gradient checks) */
	OPF_CUT = 1 << 7,     /* gradient cut on purpose (stop_gradient, dropout masks) */
	OPF_VECTOR = 1 << 8,  /* elementwise, its expression vector instructions (no libm
	                         call): codegen writes its loops on vectors */
	OPF_POLY = 1 << 9,    /* a range reduction and a polynomial (vmath.c): dozens of
	                         instructions an element */
	OPF_WINDOW = 1 << 10, /* each element one of its input's at shifted indices, or 0:
	                         fused into a pointwise user, a load (plan.c) */
	OPF_BRANCH = 1 << 11  /* its expression branches (vmath.c: sin and cos, to libm
	                         past a bound) */
};

typedef struct OpInfo {
	const char *name;
	int nin, flags;
} OpInfo;
extern const OpInfo opinfo[OP_COUNT];
int op_lookup(const char *name); /* -1 if none */

typedef struct Shape {
	int rank;
	int64_t d[MAXRANK];
} Shape;

typedef struct Node Node;
struct Node {
	int id;
	Op op;
	DType dt;
	Shape sh;
	int nin;
	Node *in[MAXIN];
	int64_t a[NATTR]; /* integer attributes, see ops.h */
	double f;         /* CONST value */
	/* provenance: where the node came from */
	SrcLoc loc;        /* the YAML entry that made it (backward nodes inherit it) */
	Node *fwd;         /* backward nodes: the forward node whose rule made it */
	const char *rule;  /* backward nodes: the rule, "grad_mul" */
	const char *label; /* optional: "fc1" for a layer's nodes */
	int uses;          /* scratch for passes */
	void *aux;         /* scratch for passes */
};

/* A tensor that lives in a buffer outside the workspace: parameter, optimizer state or
 * io slot. */
typedef struct Tensor {
	const char *name;
	SrcLoc loc;
	DType dt;
	Shape sh;
	int64_t off; /* floats into the blob (params, state); io slot index for io */
	rt_init init;
	double value; /* RT_INIT_CONSTANT, RT_INIT_NORMAL */
	int64_t fan_in, fan_out;
	int trainable; /* 0: a buffer (running statistics) or a frozen parameter */
	rt_iokind iokind;
	Node *node; /* the leaf that reads it, once made */
} Tensor;

/* Where a function's output goes. */
typedef enum { DEST_PARAM, DEST_GRAD, DEST_STATE, DEST_IO } DestKind;
typedef struct Out {
	Node *node;
	DestKind kind;
	int index; /* into params (DEST_PARAM, DEST_GRAD), states, or ios */
} Out;

/* A compiled entry point: the outputs it writes; it computes what they need. */
typedef enum {
	FN_FORWARD,
	FN_EVALUATE,
	FN_GRAD,
	FN_STEP,
	FN_TRAIN_STEP,
	FN_COUNT
} FnKind;
extern const char *const fn_names[FN_COUNT];
typedef struct Fn {
	Out *outs;
	int nouts, cap;
	int defined;
} Fn;

typedef struct Graph {
	Arena *A;
	Diags *diags;
	Node **nodes; /* creation order, which is a topological order */
	int n, cap;
	Tensor *params, *states, *ios;
	int nparams, nstates, nios, capparams, capstates, capios;
	const char **hypers;
	double *hyper_init;
	int nhypers, caphypers;
	int64_t param_floats, state_floats;
	int io_x, io_y, io_weight, io_loss, io_output;
	rt_loss_kind loss_kind; /* how the training loss adds up over a batch (lower.c) */
	int io_numerics,
	    io_profile; /* slots compile.c adds for checks, profiling; or -1 */
	Fn fns[FN_COUNT];
	int no_fusion; /* every node gets its own loop (--check-numerics checks each) */
	Node **cse;    /* open-addressing table of every node, for build-time CSE */
	int cse_cap;
	/* stamped on every node a builder makes */
	SrcLoc cur_loc;
	const char *cur_fn; /* the function being lowered (where, mean...), for errors */
	Node *cur_fwd;
	const char *cur_rule, *cur_label;
	struct ProfPart *prof; /* train_step's parts, when compiled to profile itself */
	int nprof;
} Graph;

Graph *ir_new(Arena *A, Diags *d);
int64_t shape_numel(const Shape *s);
int shape_eq(const Shape *a, const Shape *b);
Shape shape_of(int rank, const int64_t *d);
char *shape_str(const Shape *s, char *buf, size_t len); /* "[64, 784]" */

/* Table entries; each returns its index. */
int ir_add_param(Graph *g, const char *name, Shape sh, rt_init init, int64_t fan_in,
                 int64_t fan_out, SrcLoc loc);
int ir_add_state(Graph *g, const char *name, Shape sh);
int ir_add_io(Graph *g, const char *name, rt_iokind kind, DType dt, Shape sh, SrcLoc loc);
int ir_add_hyper(Graph *g, const char *name, double init);
void ir_fn_out(Graph *g, FnKind fn, Node *node, DestKind kind, int index);

/* Builders. Each infers the result's shape; on a shape error it records a diagnostic at
 * g->cur_loc and returns NULL. A NULL input gives NULL without a new error, so a
 * builder chain reports only its first problem. */
Node *ir_param(Graph *g, int index);
Node *ir_state(Graph *g, int index);
Node *ir_gradbuf(Graph *g, int param_index);
Node *ir_input(Graph *g, int io_index);
/* What integers io slot i (an i32 input) may hold, [0, limit): the classes of the
 * one-hot targets and the rows of the tables it indexes; -1 when nothing bounds it. */
int64_t ir_index_limit(const Graph *g, int i);
/* Whether function fn's outputs depend on io slot io (an input). */
int ir_fn_reads(const Graph *g, FnKind fn, int io);
Node *ir_hyper(Graph *g, int index);
Node *ir_const(Graph *g, double v, Shape sh);
Node *ir_scalar(Graph *g, double v); /* rank-0 constant */
Node *ir_unary(Graph *g, Op op, Node *x);
Node *ir_binary(Graph *g, Op op, Node *x, Node *y);
Node *ir_neg(Graph *g, Node *x);
Node *ir_add(Graph *g, Node *x, Node *y);
Node *ir_sub(Graph *g, Node *x, Node *y);
Node *ir_mul(Graph *g, Node *x, Node *y);
Node *ir_div(Graph *g, Node *x, Node *y);
Node *ir_sum(Graph *g, Node *x, uint32_t axes, int keepdims);
Node *ir_sum_all(Graph *g, Node *x); /* rank 0 */
Node *ir_mean(Graph *g, Node *x, uint32_t axes, int keepdims);
Node *ir_broadcast(Graph *g, Node *x, Shape to);
Node *ir_reshape(Graph *g, Node *x, Shape to);
Node *ir_matmul(Graph *g, Node *x, Node *y, int tx, int ty);
Node *ir_logsoftmax(Graph *g, Node *x);
Node *ir_onehot(Graph *g, Node *labels, int64_t classes);
Node *ir_select(Graph *g, Node *cond, Node *a, Node *b); /* cond != 0 ? a : b */
Node *ir_rmax(Graph *g, Node *x, uint32_t axes, int keepdims);
Node *ir_transpose(Graph *g, Node *x, const int *perm);
Node *ir_slice(Graph *g, Node *x, const int64_t *start, Shape to);
Node *ir_pad(Graph *g, Node *x, const int64_t *before, Shape to);

/* Convolution and pooling geometry, NCHW; see ops.h. */
typedef struct ConvP {
	int64_t stride[2], pad[4], dil[2], groups; /* pad: top, bottom, left, right */
} ConvP;
typedef struct PoolP {
	int64_t k[2], stride[2], pad[4];
} PoolP;
Node *ir_conv2d(Graph *g, Node *x, Node *w, const ConvP *p);
Node *ir_conv2d_bwd_data(Graph *g, Node *dy, Node *w, const ConvP *p, Shape xs);
Node *ir_conv2d_bwd_filter(Graph *g, Node *x, Node *dy, const ConvP *p, Shape ws);
ConvP convp_of(const Node *n);
/* A convolution of stride 1 or 2 runs as an implicit matrix product over a zero-padded
 * copy of each image, Hp x Wp per channel, split by stride into sh x sw phase planes of
 * Hs x Ws (element (r, q) of the padded plane at (r / sh, q / sw) of phase plane
 * (r % sh, q % sw); one plane, Hp x Wp, at stride 1): counting output positions along
 * rows of Ws (the last few of each row unused), tap (c, kh, kw) of position f is
 * element f + c cs + (its phase plane) Hs Ws + (kh dil / sh) Ws + kw dil / sw of the
 * copy, so every tap is one contiguous run of it and no patches are copied (im2col).
 * Its two gradients run the same way: the filter gradient as dot products of dy (on
 * rows of Ws, or read in place a row at a time, conv_dy_rows) with those runs, the
 * data gradient (stride 1 only) as the convolution of dy, padded by (K - 1) dil - pad,
 * with the filter flipped.
 * The padded image has ch channels of h x w at row top, column left of its planes;
 * xs floats hold it (zeros after it, for the unused positions' taps), ys the output
 * on rows of Ws; both multiples of 16. */
typedef struct ConvFlat {
	int64_t ch, h, w, Hp, Wp, top, left, xs, ys;
	int64_t sh, sw, Hs, Ws; /* the phases along rows and columns, a phase plane */
	int64_t cs;             /* floats per channel: sh sw Hs Ws */
	int64_t pc; /* positions per output channel as stored: OH Ws rounded up to 16
	             (zeros after; aligned rows without a masked tail for the products),
	             or H Wp for the data gradient */
} ConvFlat;
/* Whether n (conv2d or one of its gradients) runs so, and its layout. */
int conv_flat(const Node *n, ConvFlat *f);
/* The offset in a channel of f of the tap rh rows and rw columns into the window */
int64_t conv_flat_tap(const ConvFlat *f, int64_t rh, int64_t rw);
/* Whether the filter gradient n (conv_flat) reads dy in place, a row at a time on
 * vectors of vw (a row's last one masked), instead of a copy of it on rows of Ws: when
 * that takes no more products than the copy's positions. */
int conv_dy_rows(const Node *n, int vw);
/* Whether n (conv2d or one of its gradients) is a 1 x 1 convolution of stride 1 without
 * padding, whose patches (im2col) are the image itself: its products read the images
 * and write their results in place, with no copy (kernels.c). */
int conv_pointwise(const Node *n);
/* Whether n (conv2d or one of its gradients) is a depthwise convolution of stride 1 or
 * 2 each way (a filter per channel, groups = channels = out channels; kernels of 7 x 7
 * or less), which runs directly on the images, a vector of a row at a time (kernels.c).
 */
int conv_depthwise(const Node *n);
/* Whether matmul n, C = A W with W a parameter (a dense layer's input gradient dy W),
 * runs as two products over the halves of k, each into scratch of its own, then their
 * sum (kernels.c): so a thread reads only W's rows of its half, those it reads in the
 * forward product and updates in the optimizer's pass, and no row of W moves between
 * cores. Where the partial sums are no larger than W (M <= K), for an even K. */
int matmul_halves(const Node *n);
/* How many parts the rows of a large sum or max over its first axis (a bias gradient's,
 * over the batch) are cut into, each folded by one thread into partials of its own,
 * then folded in part order (kernels.c); 0: one loop, on one thread. */
int reduce_parts(const Node *n);
Node *ir_poolmax(Graph *g, int scatter, Node *sel, Node *v, const PoolP *p);
Node *ir_avgpool(Graph *g, Node *x, const PoolP *p);
Node *ir_avgpool_bwd(Graph *g, Node *dy, const PoolP *p, Shape xs);
PoolP poolp_of(const Node *n);
Node *ir_gather(Graph *g, Node *table, Node *idx);
Node *ir_scatter_add(Graph *g, Node *idx, Node *dy, Shape table);
Node *ir_argmax(Graph *g, Node *x);
Node *ir_dropmask(Graph *g, Node *seed, Node *counter, double p, Shape sh);
/* The raw builder under all of the above; attrs has NATTR entries or is NULL. */
Node *ir_node(Graph *g, Op op, int nin, Node **in, const int64_t *attrs, double f);
/* What the builders stamp on the nodes they make (Graph.cur_*): ir_stamp sets it to s
 * and returns the one it replaces, to be set back after */
typedef struct Stamp {
	SrcLoc loc;
	Node *fwd;
	const char *rule, *label;
} Stamp;
Stamp ir_stamp(Graph *g, Stamp s);
/* Same, for ops whose result shape the builder gives (see ops.h). */
Node *ir_node_sh(Graph *g, Op op, int nin, Node **in, const int64_t *attrs, double f,
                 Shape sh);

/* ================= fold.c: rewrites at build time ================= */

/* Called by every builder before it makes a node: returns an existing or simpler node
 * computing the same value (x + 0 -> x, constant folding, log(exp x) -> x,
 * log(1 + exp x) -> softplus x, log(sigmoid x) -> -softplus(-x)), or NULL to build
 * the node as asked. Forward and backward graphs both go through it. */
Node *fold(Graph *g, Op op, Node **in, const int64_t *attrs, double f, const Shape *sh);

/* The dropout mask's hash, splitmix64 of (seed, counter, element index): eval.c calls
 * it, codegen emits the same arithmetic, so both draw the same masks. */
static inline uint32_t dropout_hash(uint64_t seed, uint64_t counter, uint64_t i)
{
	uint64_t z =
	    ((seed << 32) ^ (counter & 0xffffffffu)) + (i + 1) * 0x9E3779B97F4A7C15ull;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return (uint32_t)((z ^ (z >> 31)) >> 32);
}

/* An element is kept when its hash is at least this: probability 1 - p. */
static inline uint32_t dropout_threshold(double p)
{
	double t = p * 4294967296.0;
	return t >= 4294967295.0 ? 0xffffffffu : (uint32_t)t;
}

/* ================= shape.c ================= */

/* Sets n->sh and n->dt from its inputs and attributes; -1 after an error at n->loc. */
int shape_infer(Graph *g, Node *n);
/* Broadcast shape of two shapes (numpy rules); -1 if they do not broadcast. */
int shape_bcast(const Shape *a, const Shape *b, Shape *out);

/* ================= autodiff.c, grad.c ================= */

typedef struct Grad Grad;
/* Builds d(loss)/d(wrt[i]) for every i into out[i] as ordinary IR nodes appended to g.
 * loss must be rank 0. out[i] is NULL where the gradient is identically zero. Returns -1
 * after an error (a trainable parameter reached only through an OPF_NODIFF op). */
int ad_backward(Graph *g, Node *loss, Node *const *wrt, int nwrt, Node **out);
/* Used by rules: add contribution dx to the gradient of input i of n. dx may have the
 * broadcast shape of n; the driver sums it back to the input's shape. */
void ad_accum(Grad *gr, Node *n, int i, Node *dx);
Graph *ad_graph(Grad *gr);

typedef void (*GradRule)(Grad *gr, Node *n, Node *dy);
extern const GradRule grad_rules[OP_COUNT];

/* ================= eval.c: reference interpreter ================= */

/* Values of every node reachable from the given outputs, float64. Leaves read from the
 * callbacks' arrays: params/states/gradbufs as float64 blobs in the graph's layout,
 * io[k] as float64 arrays (labels hold integral values). */
typedef struct EvalEnv {
	const double *params, *states, *grads, *hyper;
	const double *const *io;
	/* by node id, or NULL: the values stop_gradient nodes keep, whatever their input
	 * (gradcheck's differences move the parameters, not what the gradient treats as
	 * constant); with hold set, eval_node records them (malloc'd) instead */
	double **held;
	int hold;
} EvalEnv;
/* Evaluates node (and what it needs); returns a malloc'd array of its numel values. */
double *eval_node(Graph *g, Node *node, const EvalEnv *env);

/* ================= dump.c ================= */

void dump_graph(FILE *f, Graph *g, int only_fn);    /* only_fn < 0: every node */
void dump_set(FILE *f, Graph *g, const char *live); /* the nodes marked in live */
/* what an output of a function is: "grad fc1.weight", "io loss", "state step" */
const char *dump_out(Graph *g, const Out *o, char *buf, size_t len);
void dump_node(FILE *f, Graph *g, Node *n);
/* n's attributes as dump_node shows them (" lr", " 0.5", " T2"); its length */
int dump_attrs(char *buf, size_t len, Graph *g, Node *n);

/* ================= plan.c ================= */

/* Where a node's values live in one function. */
typedef enum {
	BUF_NONE,
	BUF_PARAM,
	BUF_GRAD,
	BUF_STATE,
	BUF_HYPER,
	BUF_IO,
	BUF_WORK
} BufKind;
typedef struct Buf {
	BufKind kind;
	int64_t off; /* floats (or elements) into the blob, or io slot */
} Buf;
typedef struct Plan {
	int fn;
	Node **order; /* nodes to compute, in order */
	int n;
	Buf *buf;   /* indexed by node id */
	char *live; /* indexed by node id: the function needs it */
	char *inl;  /* indexed by node id: fused, computed inside its user's loop */
	/* indexed by node id: the pointwise node computed from n's values in n's own
	 * loop, as they are made (an epilogue: a convolution's or a matrix product's bias
	 * and activation), or NULL. That node is not in the order; it is computed at n's
	 * place. */
	Node **epi;
	/* The update phase: pointwise nodes whose values only flow into new parameters
	 * and optimizer state are computed at the end, in one loop per group of outputs
	 * that read each other's old values, first to check that every new value is
	 * finite, then again to write them in place. */
	int *group; /* indexed by node id: its update group, or -1 */
	int ngroups;
	Node **late; /* the update phase's nodes, in order */
	int nlate;
	int64_t flag_off; /* workspace float the phase's check ORs its flag into */
	int64_t nwork;    /* floats of workspace this function needs */
} Plan;
/* Convolutions run their images in this many lanes (threads take whole lanes), each
 * with its own im2col scratch. */
enum { CONV_LANES = 8 };
/* Images a filter gradient's lane holds at once in its scratch, per floats each (its
 * padded image or patches; 0: read in place): what fits 512 KB of L2, at most the
 * lane's batch / lanes. The lane reuses the space for each chunk of its images. */
int64_t conv_chunk(int64_t per, int64_t batch, int64_t lanes);
/* Lays out one function; the Plan lives in g's arena. */
Plan *plan_fn(Graph *g, FnKind fn);
/* Whether n (computed in a loop, or an input loaded or computed in its expression) can
 * be computed on vectors as written: floats, and ops whose expressions are vector
 * instructions (OPF_VECTOR; not calls into libm, which LLVM would make one lane at a
 * time). */
int plan_vector_ok(const Plan *p, const Node *n, int computed);
/* Whether the epilogue r of the convolution c (Plan.epi) can take each image's
 * positions as one flat axis: every stored node it reads has c's last two axes, or
 * 1 x 1. */
int plan_planes_flat(const Plan *p, const Node *r, const Node *c);

/* ================= codegen.c, jit.c ================= */

/* One part of a train_step compiled to profile itself (CodegenOpts.profile): it reads
 * the runtime's clock (rt_ticks) before its first kernel and after each part, and
 * stores each part's nanoseconds, as a float, in the io slot "profile", in this
 * order (descent bench --profile). */
typedef enum { PART_NODE, PART_CHECK, PART_TEST, PART_WRITE, PART_COPY } PartKind;
typedef struct ProfPart {
	PartKind kind;
	Node *node; /* PART_NODE: the node computed (epi: its epilogue's, if any);
	               PART_CHECK, PART_WRITE: one of the update group's new values */
	Node *epi;
	const char *params; /* PART_CHECK, PART_WRITE: what the group updates, else "" */
	const char *kernel; /* the kernels the part calls, by their LLVM names: "a, b" */
	int threads;        /* the part calls the thread pool */
} ProfPart;

typedef enum { EMIT_OBJ, EMIT_ASM, EMIT_LLVM, EMIT_BC } EmitKind;

typedef struct CodegenOpts {
	int opt_level; /* 0..3 */
	int dump_llvm; /* print the optimized module to stderr */
	/* ahead of time: */
	const char *prefix; /* of every symbol ("fashion_mlp_"); NULL: none */
	const char *triple, *cpu, *features; /* NULL: this host's, as the JIT uses */
	EmitKind emit;
	double *seconds;    /* if not NULL: seconds building LLVM IR, optimizing, emitting
	                       (of the slowest shard) */
	int check_numerics; /* stop at the first op whose output has a NaN or Inf (io slot
	                       "numerics": node id, NaN count, Inf count, 1) */
	int shards; /* > 1: object code in that many parts, optimized and emitted on as
	               many threads (the JIT's; one object for everything else) */
	int check_dedupe; /* tests: kernels are shared when their printed IR is equal, as
	                     well as their signatures, or compiling fails */
	int profile; /* train_step times its parts into the io slot "profile" (Graph.prof)
	              */
	unsigned fns; /* bit k set: entry point k (FnKind) is compiled; 0: every one */
} CodegenOpts;

/* An object file in memory, ready to be loaded by the JIT or written out. */
enum { MAXSHARDS = 4 };
typedef struct ObjCode {
	void *data; /* the object (or the first part) */
	size_t size;
	void *more[MAXSHARDS - 1]; /* the other parts, when compiled in shards */
	size_t more_size[MAXSHARDS - 1];
	char *llvm_ir; /* when requested */
} ObjCode;
int cg_compile(Graph *g, const CodegenOpts *o, ObjCode *out, int64_t *nwork,
               char **ir_text);
void objcode_free(ObjCode *o);

typedef struct Jit Jit;
/* Loads the object; fills fns[k] with the address of fn_names[k], NULL if absent. */
Jit *jit_load(Diags *d, const ObjCode *obj, rt_fn fns[FN_COUNT]); /* fns may be NULL */
rt_fn jit_lookup(Jit *j, const char *name); /* NULL if the object has no such symbol */
/* The machine's fp32 FMA peak on one core in GFLOP/s, measured with JIT-compiled
 * independent FMA chains (0 after an error). */
double cg_measure_peak(Diags *d);
/* LLVM's version and this host's CPU name and features, as one line of text. */
const char *host_cpu_text(void);
void jit_free(Jit *j);

/* ================= optim.c: gradients -> parameter updates ================= */

typedef struct Optim Optim;
/* Adds the optimizer's hyperparameters and state tensors to g. */
Optim *optim_setup(Graph *g, const Model *m);
/* Builds the update of every trainable parameter from grads[i] (NULL: no gradient)
 * as outputs of function fn. */
void optim_update(Graph *g, Optim *o, Node *const *grads, FnKind fn);

/* ================= layers.c: what a model file can call ================= */

/* Every function a model can call (layers, activations, math, losses) has a signature
 * in one table: positional arguments and typed keyword arguments. One checker
 * validates any call, written as a YAML layer or in an expression, and hands the
 * builder typed values. */
typedef enum {
	K_INT,     /* integer in [lo, hi] */
	K_NUM,     /* finite number in [lo, hi] */
	K_BOOL,    /* true / false */
	K_ENUM,    /* one of names */
	K_INTS,    /* an integer or a list of them (axis: 1 or [2, 3]) */
	K_PAIR,    /* an integer or two (kernel_size: 5 or [5, 3]) */
	K_PADDING, /* integer, [h, w], [top, bottom, left, right], same or valid */
	K_SHAPE    /* list of integers, -1 at most once */
} KwType;

typedef struct Kw {
	const char *name;
	KwType type;
	double lo, hi;
	const char *const *names; /* K_ENUM, NULL-terminated */
	int required;
} Kw;

#define MAXKW 10
typedef struct KwVal {
	int set;
	int n; /* K_INTS, K_PADDING, K_SHAPE: how many integers */
	int64_t i[MAXRANK];
	double f; /* K_NUM, K_INT, K_BOOL */
	int e;    /* K_ENUM: index; K_PADDING: 1 same, 2 valid */
	SrcLoc loc;
} KwVal;

typedef struct Lower Lower;
typedef Node *(*Builder)(Lower *L, const Expr *call, Node **args, int nargs,
                         const KwVal *kw);

enum {
	FUN_LAYER = 1, /* makes parameters, named after its node */
	FUN_LOSS = 2,  /* a loss: reduces over the batch */
	FUN_RAW = 4    /* gets its arguments unevaluated (grad) */
};

typedef struct Fun {
	const char *name;
	int minargs, maxargs; /* maxargs -1: any number */
	Kw kw[MAXKW];
	Builder build;
	int flags;
	const char *prefix; /* FUN_LAYER: automatic names, fc1, conv1, ... */
} Fun;

const Fun *fun_lookup(const char *name);
const char *const *fun_names(int *n); /* every function's name, for suggestions */

/* ================= calls.c: checking calls against their signatures ================= */

/* Checks one call against its signature; fills kw (MAXKW entries) if given. */
int fun_args(Diags *d, const Fun *f, const Expr *call, KwVal *kw);
/* The function descent names what PyTorch or Keras call name, or NULL. */
const char *fun_alias(const char *name);
/* The error for a function or layer of no such name, with a suggestion. */
void fun_unknown(Diags *d, const char *name, SrcLoc at);
/* Checks every call in e, recursively; -1 after errors. */
int fun_check(Diags *d, const Expr *e);

/* ================= lower.c: Model -> Graph ================= */

/* State of one lowering of a model into the graph (see lower.c). */
struct Lower {
	Graph *g;
	Diags *d;
	const Model *m;
	int train;     /* the training graph: dropout on, batch statistics */
	int64_t batch; /* 0: the model has no batch inputs */
	Node *mask;    /* [batch]: 1 for real rows, 0 for padding; NULL without data */
	const char
	    *def; /* the node being lowered: its layers' parameters are named after it */
	int nlayers;        /* layers made so far in this node */
	int ndropout;       /* dropout layers so far: each gets its own masks */
	int mode_dependent; /* some layer behaves differently in training */
	struct Update {
		Node *value;
		int param;
	} * updates; /* buffers a training step writes back (batch norm statistics) */
	int nupdates, capupdates;
	Node **differentiated; /* functions grad() was taken of: used, though the */
	int ndiff, capdiff;    /* gradient's graph may not read their nodes */
	char *unused;          /* by def: said to be never used (warn_unused) */
	const char **names;    /* values in scope: inputs, parameters, nodes */
	Node **vals;
	int n, cap;
	/* by node id: where the value carries the batch (layers.c, batch_axis) */
	signed char *bat;
	int64_t *binner;
	int nbat;
};

/* For builders: a parameter of the layer being built, "<node>.<suffix>", made on first
 * use and found again by the second lowering. */
Node *lower_param(Lower *L, const char *suffix, Shape sh, rt_init init, double value,
                  int64_t fan_in, int64_t fan_out, int trainable, SrcLoc loc);
/* A buffer update done by the training step (running statistics). */
void lower_update(Lower *L, Node *param, Node *value);
/* grad() was taken of f: its node counts as used (warnings of unused nodes). */
void lower_differentiated(Lower *L, Node *f);
/* Dropout's random inputs: the seed hyperparameter and the step counter. */
Node *lower_seed(Lower *L);
Node *lower_counter(Lower *L);
/* Evaluates an expression in the current scope. */
Node *lower_expr(Lower *L, const Expr *e);

/* Builds the whole graph for a model at a fixed batch size: the forward pass, the loss,
 * the backward pass, the optimizer update, and the functions forward, evaluate, grad,
 * step, train_step. NULL on error. */
Graph *lower_model(Arena *A, Diags *d, const Model *m, int64_t batch);

/* ================= aot.c ================= */

typedef enum {
	AOT_OBJ = EMIT_OBJ,
	AOT_ASM = EMIT_ASM,
	AOT_LLVM = EMIT_LLVM,
	AOT_BC = EMIT_BC,
	AOT_SHARED
} AotEmit;

typedef struct AotOpts {
	const char *out, *header;            /* header NULL: none */
	const char *prefix;                  /* of symbols; NULL: "<model name>_" */
	const char *triple, *cpu, *features; /* NULL: this host */
	AotEmit emit;
	int opt_level;
} AotOpts;

/* Writes the model compiled for o's target, and its C header. -1 after errors. */
int aot_compile(Diags *d, const Model *m, int64_t batch, const AotOpts *o);

/* ================= inspect.c: what descent made of a model ================= */

typedef enum {
	ST_SPEC,
	ST_GRAPH,
	ST_BACKWARD,
	ST_OPTIMIZED,
	ST_KERNELS,
	ST_LLVM,
	ST_ASM
} Stage;
extern const char *const stage_names[];

typedef struct InspectOpts {
	Stage stage;
	int fn; /* -1: the stage's own (graph: evaluate, backward: grad, ...) */
	const char *grad_param; /* only the slice that makes this parameter's gradient */
	int dot;                /* Graphviz instead of text */
	int stats;              /* op counts, FLOPs, bytes, compile timings */
	int opt_level;
	int64_t batch; /* 0: the model's */
} InspectOpts;

int inspect(Diags *d, const Model *m, const InspectOpts *o, FILE *out);
/* Floating-point operations of one call of a function (multiply-adds count 2). */
double fn_flops(Graph *g, FnKind fn);
double node_flops(const Node *n); /* multiply-adds count 2 */

/* ================= bench.c: how fast a compiled model trains ================= */

typedef struct BenchOpts {
	int64_t batch; /* 0: the model's */
	int64_t steps; /* timed steps; 0: about 2 seconds' worth */
	int threads;   /* of the runtime's pool, 1 to RT_MAX_THREADS */
	int opt_level;
	double peak; /* GFLOP/s of one core; 0: measure it */
	int profile; /* then where a step's time goes, part by part (ProfPart) */
} BenchOpts;

int bench_run(Diags *d, const Model *m, const BenchOpts *o, FILE *out);

/* ================= trainlog.c: the per-epoch log (CSV) and its plot (SVG)
 * ================= */

enum {
	LOG_EPOCH,
	LOG_STEP,
	LOG_LR,
	LOG_TRAIN_LOSS,
	LOG_VAL_LOSS,
	LOG_VAL_ACC,
	LOG_TEST_LOSS,
	LOG_TEST_ACC,
	LOG_SECONDS,
	LOG_NCOLS
};
extern const char *const log_columns[LOG_NCOLS]; /* the CSV header: "epoch", ... */
typedef struct LogRow {
	double v[LOG_NCOLS]; /* NAN: not measured */
} LogRow;
typedef struct TrainLog {
	LogRow *rows;
	int n, cap;
} TrainLog;
void log_add(TrainLog *l, const LogRow *r);
void log_free(TrainLog *l);
/* The log as CSV text, malloc'd; *len bytes. */
char *log_csv(const TrainLog *l, size_t *len);
/* Reads a CSV log (columns by header name); -1 with a message naming file:line. */
int log_read(const char *path, TrainLog *l, char *err, size_t errlen);
/* A self-contained SVG of the loss and accuracy curves, malloc'd; *len bytes. */
char *log_svg(const TrainLog *l, const char *title, size_t *len);

/* ================= gradcheck.c: the model's gradients against finite differences
 * ================= */

typedef struct GradcheckOpts {
	int64_t batch;      /* 0: the model's */
	uint64_t seed;      /* parameters (unless given), inputs, directions */
	const char *params; /* a safetensors file; NULL: parameters from the seed */
	double tolerance;   /* of the relative error; 0: 1e-3 */
	int opt_level;
} GradcheckOpts;

/* Compiles m, runs its grad function on a random batch and compares, per trainable
 * parameter, the gradient's projection on a random unit direction with the float64
 * interpreter's central difference of the loss along it; reports to out. 0 if every
 * relative error is within the tolerance, 1 if not, -1 after an error (in d). */
int gradcheck(Diags *d, const Model *m, const GradcheckOpts *o, FILE *out);

/* ================= compile.c ================= */

enum { STAGE_GRAPH, STAGE_IR, STAGE_OPT, STAGE_CODEGEN, STAGE_JIT, STAGE_COUNT };
typedef struct Compiled {
	rt_program prog; /* points into the structures below */
	Graph *g;
	Jit *jit;
	double compile_seconds;
	/* where they went: building the graph, LLVM IR, LLVM's optimizer and code
	 * generator (each the slower of the threads that share the module), loading the
	 * object into the JIT; the middle three are 0 when the object came from the cache
	 */
	double stage_seconds[STAGE_COUNT];
	Arena *A; /* the graph and the tables behind prog */
} Compiled;

/* The layout tables of a program compiled from g (in g's arena); no entry points. */
void program_describe(Graph *g, int64_t batch, int64_t nwork, rt_program *p);
/* YAML model -> ready program. NULL on error: in the model (its graph could not be
 * built) when *in_model is set to 1 (if in_model is not NULL), else LLVM's. */
Compiled *compile_model(Diags *d, const Model *m, int64_t batch, const CodegenOpts *o);
Compiled *compile_model_at(Diags *d, const Model *m, int64_t batch, const CodegenOpts *o,
                           int *in_model);
void compiled_free(Compiled *c);

#endif
