/* descent runtime: what compiled models need at run time, and nothing of the compiler.
 *
 * JIT-compiled and ahead-of-time objects link against this library alone (no LLVM).
 * Every compiled entry point has the same signature, rt_fn: it receives one array of
 * buffer pointers, indexed by RT_* below and then by the program's io slots.
 *
 * Ownership: functions named _new/_load return objects the caller frees with the
 * matching _free. Errors are returned as status codes with a message written into a
 * caller-supplied buffer; the runtime never prints and never exits.
 */
#ifndef DESCENT_RUNTIME_H
#define DESCENT_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RT_MAXRANK 6
#define RT_ALIGN 64

/* Slots of the buffer array every compiled function receives. */
enum {
	RT_PARAMS, /* float[nparams]: all parameters, one flat blob */
	RT_GRADS,  /* float[nparams]: gradients, same layout as the parameters */
	RT_STATE,  /* float[nstate]: optimizer state (momentum buffers, ...) */
	RT_WORK,   /* float[nwork]: scratch for intermediates */
	RT_HYPER,  /* float[nhyper]: run-time scalars (learning rate, ...) */
	RT_IO0     /* first io slot: inputs and outputs, see rt_io */
};

/* Returns 0, or 1 when train_step or step took no step: a value it would have written
 * (the loss, a new parameter or optimizer state value) was not finite, or a parameter's
 * step was above 2^100; it then wrote no parameter or state, and the loss reads NaN.
 * grad returns 1 when it wrote nothing back (its loss or a running statistic not
 * finite); its loss and gradients are then as computed. */
typedef int (*rt_fn)(void *const *bufs);

/* ---- threads ----
 * Compiled code runs its large loop nests as kernels on a process-wide thread pool: a
 * kernel computes the part [lo, hi) of its parallel extent n, and rt_parallel_for cuts
 * [0, n) into one part per thread on multiples of grain. Every element is computed by
 * one thread in a fixed order, so results do not depend on the thread count. Set the
 * count while no compiled function is running; 1 (the default) runs everything on the
 * calling thread. Compiled functions may run on several threads of the program at
 * once: one call at a time has the pool, the others run on their own thread. */
enum { RT_MAX_THREADS = 64 };
typedef void (*rt_kernel)(void *const *bufs, int64_t lo, int64_t hi);
int rt_set_threads(int n); /* 0, or -1 if n is out of [1, RT_MAX_THREADS] or a thread
                              cannot be started */
int rt_threads(void);
void rt_parallel_for(rt_kernel k, void *const *bufs, int64_t n, int64_t grain);
/* A monotonic clock in nanoseconds: what a step compiled to profile itself (descent
 * bench --profile) reads between its kernels. */
int64_t rt_ticks(void);

typedef enum { RT_F32, RT_I32 } rt_dtype;

/* Parameter initialisation schemes (PyTorch's names). */
typedef enum {
	RT_INIT_ZEROS,
	RT_INIT_ONES,
	RT_INIT_KAIMING_UNIFORM, /* He: U(-b, b), b = sqrt(6 / fan_in) */
	RT_INIT_XAVIER_UNIFORM,  /* Glorot: U(-b, b), b = sqrt(6 / (fan_in + fan_out)) */
	RT_INIT_TORCH_LINEAR,    /* PyTorch's nn.Linear default: b = 1 / sqrt(fan_in) */
	RT_INIT_CONSTANT,        /* every element = value */
	RT_INIT_NORMAL           /* N(0, value^2), as nn.Embedding's N(0, 1) */
} rt_init;

typedef struct rt_param {
	const char *name; /* PyTorch-style: "fc1.weight" */
	int rank;
	int64_t shape[RT_MAXRANK];
	int64_t offset; /* in floats, into RT_PARAMS and RT_GRADS */
	int64_t numel;
	rt_init init;
	double value; /* RT_INIT_CONSTANT, RT_INIT_NORMAL */
	int64_t fan_in, fan_out;
	int trainable; /* 0: a buffer (running statistics) or a frozen parameter */
} rt_param;

typedef struct rt_state {
	const char *name; /* "fc1.weight.momentum_buffer" */
	int64_t offset, numel;
	int rank; /* shape: the parameter's for per-parameter state, rank 0 for a scalar
	           */
	int64_t shape[RT_MAXRANK];
} rt_state;

/* One io slot: an input the caller fills or an output a function writes. */
typedef enum { RT_IO_INPUT, RT_IO_OUTPUT } rt_iokind;
typedef struct rt_io {
	const char *name; /* the YAML input's name, or "loss", "output", "weight" */
	rt_iokind kind;
	rt_dtype dtype;
	int rank;
	int64_t shape[RT_MAXRANK]; /* first dim is the compiled batch size */
	int64_t numel;
	/* an integer input's values index this many classes (labels) or rows (an
	 * embedding's indices): each from 0 to limit - 1, checked where data come in
	 * (rt_train_epoch, rt_evaluate, rt_predict, rt_trainer_new, rt_session_feed);
	 * 0: none */
	int64_t limit;
} rt_io;

/* How a model's training loss adds up over the examples of a batch, which decides how
 * an accumulated step weights its micro-batches' gradients: by their share of the
 * examples (a mean over them, PyTorch's reduction='mean'), each by 1 (a sum), or not at
 * all (another form, such as sum(w l) / sum(w): accumulation is refused). */
typedef enum { RT_LOSS_MEAN, RT_LOSS_SUM, RT_LOSS_OTHER } rt_loss_kind;

/* A compiled model: layout plus entry points. Filled by the JIT, or statically by an
 * ahead-of-time header. Entry points that a model does not have are NULL. */
typedef struct rt_program {
	int64_t batch;
	int64_t nparams, nstate, nwork; /* floats */
	int nhyper;
	const char *const *hyper_names; /* "lr", "momentum", ... */
	const float *hyper_init;        /* their values from the model file */
	int nparam;
	const rt_param *params;
	int nstates;
	const rt_state *states;
	int nio;
	const rt_io *io;
	/* io slot of each role, -1 when absent */
	int io_x, io_y, io_weight, io_loss, io_output;
	rt_loss_kind loss_kind;
	rt_fn forward;    /* inputs -> output (predictions) */
	rt_fn evaluate;   /* inputs, labels, weight -> loss, output */
	rt_fn grad;       /* inputs, labels, weight -> loss, RT_GRADS */
	rt_fn step;       /* RT_GRADS, RT_HYPER -> RT_PARAMS, RT_STATE updated */
	rt_fn train_step; /* grad + step fused, from one joint graph */
	/* FNV-1a over the names, shapes and dtypes of the parameters, the state, the
	 * hyper values and the io slots (less the batch dim): checkpoints carry it, and a
	 * checkpoint of another model is refused. 0: unknown, not checked. */
	uint64_t graph_hash;
} rt_program;

/* ---- memory ---- */
void *rt_alloc(size_t bytes); /* RT_ALIGN-aligned, zeroed; NULL on failure */
void rt_free(void *p);
/* Every allocation the runtime makes (rt_alloc and all its loaders, sessions, trainers
 * and savers; zlib's too) goes through alloc, and every release through release, as in
 * Lua's lua_Alloc. alloc returns a block of at least bytes bytes aligned for any
 * object (as malloc does; the runtime aligns to RT_ALIGN itself), or NULL when it
 * cannot, which the runtime reports as "out of memory". NULL restores malloc and free.
 * Each block remembers the pair that allocated it, so changing the allocator while
 * blocks are live is safe; the setting is process-wide and not synchronized: set it
 * while no other thread is in the runtime. stdio's own buffers are not covered. */
typedef void *(*rt_alloc_fn)(size_t bytes, void *ud);
void rt_set_allocator(rt_alloc_fn alloc, void (*release)(void *p, void *ud), void *ud);

/* ---- random numbers: xoshiro256**, seeded with splitmix64 ---- */
typedef struct rt_rng {
	uint64_t s[4];
} rt_rng;
void rt_rng_seed(rt_rng *r, uint64_t seed);
uint64_t rt_rng_next(rt_rng *r);
double rt_rng_uniform(rt_rng *r);                    /* [0, 1) */
uint64_t rt_rng_below(rt_rng *r, uint64_t n);        /* [0, n), unbiased */
void rt_shuffle(rt_rng *r, int64_t *idx, int64_t n); /* Fisher-Yates */
/* The "seed" hyper value that dropout's masks hash, from a session's seed: one of
 * RT_DROPOUT_SEEDS, drawn from all 64 bits, so that seeds s and s + 2^23 differ. Each
 * dropout layer adds 4096 times its number to it, which a float holds exactly up to
 * 2^24: below 2^23, for 2048 layers. rt_session_init sets it. */
enum { RT_DROPOUT_SEEDS = 1 << 23 };
float rt_dropout_seed(uint64_t seed);
/* Whether v can be the "seed" hyper: a whole number below RT_DROPOUT_SEEDS */
static inline int rt_is_dropout_seed(double v)
{
	return v >= 0 && v < RT_DROPOUT_SEEDS && v == (double)(int64_t)v;
}

/* ---- parameter initialisation ---- */
/* Fills every parameter of prog in params from rng, in table order. */
void rt_init_params(const rt_program *prog, float *params, rt_rng *rng);

/* ---- data ---- */
/* A dataset: n examples, each of shape dims[0..rank) (not counting n). */
typedef struct rt_tensor {
	rt_dtype dtype;
	int64_t n;
	int rank;
	int64_t dims[RT_MAXRANK];
	int64_t stride; /* elements per example */
	void *data;     /* float or int32_t, n * stride elements, owned */
} rt_tensor;

/* Loads an IDX file, gzipped or not (detected from the magic bytes). Unsigned-byte
 * images become float32 multiplied by scale; a rank-1 file of unsigned bytes becomes
 * int32 labels when as_labels is set. Returns 0, or -1 with a message in err that names
 * the file and what is wrong with it. Sizes the file declares are checked against its
 * length before anything is allocated from them. */
int rt_idx_load(const char *path, double scale, int as_labels, rt_tensor *out, char *err,
                size_t errlen);
void rt_tensor_free(rt_tensor *t);

/* Copies examples idx[0..count) of src into dst (room for batch examples); rows from
 * count to batch are zeroed so a final partial batch can be padded. */
void rt_gather(const rt_tensor *src, const int64_t *idx, int64_t count, int64_t batch,
               void *dst);
/* Asks the cache for examples idx[0..count) of src, to be gathered soon. */
void rt_prefetch_rows(const rt_tensor *src, const int64_t *idx, int64_t count);

/* Index of the largest of the n values in each of the rows of x, the first of equals;
 * a NaN counts as the largest, as in torch.argmax and numpy.argmax. */
void rt_argmax_rows(const float *x, int64_t rows, int64_t n, int32_t *out);

/* ---- training session ---- */
/* Every buffer one compiled program needs, allocated once: hyper values start at
 * prog->hyper_init (rt_set_hyper changes them) and the session runs the program's entry
 * points over datasets. The session does not own prog, which must outlive it. */
/* Inputs fed from data besides x and y (rt_session_feed): each batch gathers t[i]'s
 * rows at the indices of x's into io slot slot[i]. The tensors are not owned. */
enum { RT_MAX_FEEDS = 8 };
typedef struct rt_feeds {
	int n;
	int slot[RT_MAX_FEEDS];
	const rt_tensor *t[RT_MAX_FEEDS];
} rt_feeds;

typedef struct rt_session {
	const rt_program *prog;
	float *params, *grads, *state, *work, *hyper;
	void **bufs;    /* RT_IO0 + prog->nio pointers, passed to every rt_fn */
	void **io;      /* == bufs + RT_IO0: one buffer per io slot, numel of its dtype */
	uint64_t step;  /* train steps taken */
	rt_feeds feeds; /* more inputs, fed with x and y by the calls below */
} rt_session;

/* Allocates every buffer, zeroed but the io slot prog->io_weight, 1 (every row counts);
 * NULL when out of memory. Free with rt_session_free. */
rt_session *rt_session_new(const rt_program *prog);
void rt_session_free(rt_session *s);
/* Initialises the parameters from a fresh rng seeded with seed (rt_init_params); zeroes
 * gradients and optimizer state; step = 0. Hyper values are left as they are. */
void rt_session_init(rt_session *s, uint64_t seed);
/* Sets the named hyper value (prog->hyper_names); 0, or -1 if there is no such name.
 * A hyper "1-<name>" (1 - beta2, ...) is set with <name>, to 1 - v computed in double
 * and then rounded, as torch.optim computes 1 - beta in Python; it is not set by its
 * own name (-1). */
int rt_set_hyper(rt_session *s, const char *name, double v);
/* Feeds input slot `slot` (not io_x nor io_y) from t, with x and y, in the calls that
 * follow (rt_train_epoch, rt_evaluate, rt_predict, and a trainer made after it, which
 * keeps the feeds it was made with): each batch gathers t's rows at x's indices. t
 * must hold as many examples as x; it is not owned. Feeding a slot again replaces its
 * tensor; slot -1 clears every feed. 0, or -1 with a message in err. */
int rt_session_feed(rt_session *s, int slot, const rt_tensor *t, char *err,
                    size_t errlen);

typedef struct rt_metrics {
	double loss;     /* mean over the examples */
	double accuracy; /* fraction of argmax == label; NAN when not computed */
	int64_t examples, steps;
	double seconds; /* wall clock, monotonic */
} rt_metrics;

/* Called after each step with (step in epoch, 1-based; steps in epoch; running mean loss
 * over the examples so far). */
typedef void (*rt_progress_fn)(void *ud, int64_t step, int64_t nsteps, double loss);

/* One epoch of prog->train_step over (x, y) in minibatches of prog->batch, in an order
 * shuffled from rng (in order if rng is NULL). The final partial batch is trained on
 * too: rows past its count are zero padding, and the io slot prog->io_weight
 * (float[batch]) holds 1 for real rows and 0 for padding, so the compiled loss (and
 * every sum, mean, max and min over the batch) is over the real rows. limit > 0 uses only
 * the first limit examples. x's and y's per-example sizes and dtypes must match the io
 * slots io_x and io_y (less the batch dim). Returns 0 with m filled (accuracy is NAN), or
 * -1 with a message in err: a mismatch, or a loss that is not finite ("loss is nan at
 * step 17 of 469 in the epoch"), which stops the epoch at once. cb may be NULL. */
int rt_train_epoch(rt_session *s, const rt_tensor *x, const rt_tensor *y, int64_t limit,
                   rt_rng *rng, rt_progress_fn cb, void *ud, rt_metrics *m, char *err,
                   size_t errlen);
/* Mean loss over the whole of (x, y), in order, with prog->evaluate and the same padding
 * and weights; and accuracy (argmax of each output row against its label) when the
 * output slot is a float [batch, C] score matrix with C > 1 and y holds RT_I32 labels,
 * NAN otherwise. 0, or -1 with a message in err. */
int rt_evaluate(rt_session *s, const rt_tensor *x, const rt_tensor *y, rt_metrics *m,
                char *err, size_t errlen);

/* Runs prog->forward over every example of x, in order, in batches of prog->batch
 * (the last one padded), and writes each example's output row (the output slot less
 * its batch dim, floats) to out: x->n rows. 0, or -1 with a message in err. */
int rt_predict(rt_session *s, const rt_tensor *x, float *out, char *err, size_t errlen);

/* ---- learning-rate schedules: torch.optim.lr_scheduler's formulas ---- */
typedef enum {
	RT_LR_CONSTANT,    /* base_lr */
	RT_LR_STEP,        /* StepLR: base_lr * gamma^floor(t / step_size) */
	RT_LR_EXPONENTIAL, /* ExponentialLR: base_lr * gamma^t */
	RT_LR_COSINE,      /* CosineAnnealingLR: eta_min + (base_lr - eta_min) *
	                      (1 + cos(pi t / T_max)) / 2 */
	RT_LR_PLATEAU      /* ReduceLROnPlateau: lr *= factor after patience bad epochs */
} rt_lr_kind;

/* A schedule: a main schedule counted in epochs or optimizer steps, optionally after a
 * linear warm-up (torch's LinearLR from start_factor to 1, then the main schedule from
 * its own t = 0, as SequentialLR chains them). The warm-up always ramps per step. */
typedef struct rt_schedule {
	rt_lr_kind kind;
	double base_lr;
	int per_step;      /* t counts optimizer steps (1) or completed epochs (0) */
	int64_t step_size; /* RT_LR_STEP */
	double gamma;      /* RT_LR_STEP, RT_LR_EXPONENTIAL */
	int64_t T_max;     /* RT_LR_COSINE */
	double eta_min;    /* RT_LR_COSINE */
	/* RT_LR_PLATEAU, torch's defaults: mode min, factor 0.1, patience 10,
	 * threshold 1e-4 relative, cooldown 0, min_lr 0, eps 1e-8 */
	int mode_max, threshold_abs;
	double factor, threshold, min_lr, eps;
	int64_t patience, cooldown;
	/* warm-up: warmup_steps, or warmup_epochs times the steps per epoch; 0: none */
	int64_t warmup_steps, warmup_epochs;
	double start_factor;
} rt_schedule;

/* What a schedule remembers besides the step count (ReduceLROnPlateau's counters). */
typedef struct rt_lr_state {
	double lr;   /* RT_LR_PLATEAU: the current rate before warm-up */
	double best; /* best monitored value so far (inf, or -inf for mode max) */
	int64_t bad_epochs, cooldown_left;
} rt_lr_state;

/* Fills s with kind and torch's defaults for everything else. */
void rt_schedule_defaults(rt_schedule *s, rt_lr_kind kind, double base_lr);
void rt_lr_state_init(const rt_schedule *s, rt_lr_state *st);
/* The rate for the optimizer step that follows `step` steps already taken, with
 * steps_per_epoch steps in every epoch (>= 1). Pure: the same arguments, the same rate.
 */
double rt_schedule_lr(const rt_schedule *s, const rt_lr_state *st, int64_t step,
                      int64_t steps_per_epoch);
/* An epoch ended with the monitored value `metric`: ReduceLROnPlateau.step(metric).
 * Returns 1 when the rate was reduced, else 0 (always 0 for other kinds). */
int rt_schedule_epoch_end(const rt_schedule *s, rt_lr_state *st, double metric);

/* Early stopping (Keras' EarlyStopping, Lightning's): an epoch improves when the value
 * beats the best by more than min_delta; stop after patience epochs without one. */
typedef struct rt_early_stop {
	int mode_max;
	double min_delta;
	int64_t patience;
	double best;  /* inf, or -inf for mode max, until the first epoch */
	int64_t wait; /* epochs since the last improvement */
} rt_early_stop;
void rt_early_stop_init(rt_early_stop *e, int mode_max, double min_delta,
                        int64_t patience);
/* Records an epoch's value; 1: stop now. A value that is not finite never improves. */
int rt_early_stop_update(rt_early_stop *e, double metric);

/* ---- the training loop, resumable ---- */
typedef struct rt_trainer_opts {
	int64_t limit;      /* train on examples [0, limit) of x and y; 0: all */
	int64_t accumulate; /* micro-batches per optimizer step; <= 1: none */
	int shuffle;        /* shuffle every epoch from an rng seeded with seed */
	uint64_t seed;
	rt_schedule sched;
	int unguarded; /* no divergence guard: no snapshot, no checks */
} rt_trainer_opts;

/* One training run: the position in it (epochs and steps done, where in the epoch),
 * the shuffling rng, the schedule and early-stopping state, and the guard's snapshot.
 * A checkpoint (rt_trainer_save) holds all of it, so a run resumed from one in a new
 * process continues bit for bit as if it had never stopped.
 *
 * Each optimizer step takes `accumulate` micro-batches of prog->batch examples. With
 * 1, it is prog->train_step, the fused step. With k > 1 it runs prog->grad on each
 * micro-batch (each one's mean loss, so batch statistics are per micro-batch), sums the
 * gradients weighted by each micro-batch's share of the step's examples (1/k when all
 * are full: the mean over the step's examples, as one batch of k times as many), then
 * runs prog->step; the dropout counter advances once per micro-batch.
 *
 * Divergence: a step whose loss is not finite stops the run with an error naming the
 * step and the epoch. Generated steps write no parameter or state when the loss or an
 * updated value is not finite (a gradient that is not), so the session is as before
 * that step; with accumulation the loss and the summed gradients are checked before
 * step runs. As a fallback for programs without that guard, each rt_trainer_run copies
 * the parameters, the state and the position when it starts and puts them back if a
 * non-finite value got into them (or into the state by the end of the run). The
 * session never keeps a non-finite value, and the fused step stays: checking costs
 * reading the loss, where grad, a check, then step would cost about 8% and a copy
 * before every step about 20% (an MLP of 200k parameters). */
typedef struct rt_trainer {
	rt_session *s;
	const rt_tensor *x, *y;
	rt_feeds feeds; /* the session's when the trainer was made */
	rt_trainer_opts o;
	int64_t n;               /* examples per epoch */
	int64_t steps_per_epoch; /* optimizer steps per epoch */
	int64_t epoch;           /* epochs completed */
	int64_t pos;             /* examples of the current epoch done */
	rt_rng rng;              /* the shuffling rng before this epoch's shuffle */
	rt_rng rng_next;         /* and after it: the next epoch's */
	rt_lr_state lrs;
	rt_early_stop es;
	int es_on;
	double lr;          /* the rate of the last step */
	double loss_sum;    /* this epoch so far: sum of loss * examples */
	double seconds;     /* training time before this process (from a checkpoint) */
	int64_t *order;     /* this epoch's permutation, once drawn */
	int shuffled;       /* order holds this epoch's permutation */
	float *snap, *acc;  /* guard's copy (params then state); accumulated grads */
	float *fwd;         /* accumulating: what grad's forward writes back, kept */
	uint64_t snap_step; /* the position the snapshot was taken at */
	int64_t snap_pos;
	double snap_loss;
	int64_t dropout_off; /* state offset of "dropout_step", -1: none */
	int64_t bad_step;    /* after a divergence: the step (1-based) that failed */
} rt_trainer;

/* NULL with a message in err on a mismatch between the data (x, y and the session's
 * feeds, which the trainer keeps) and the program, or when out of memory. t->s->step is
 * the global step count; the trainer does not own s, x, y, nor the feeds' tensors. */
rt_trainer *rt_trainer_new(rt_session *s, const rt_tensor *x, const rt_tensor *y,
                           const rt_trainer_opts *o, char *err, size_t errlen);
void rt_trainer_free(rt_trainer *t);
/* Trains on from where the run is until the end of the current epoch, or until
 * s->step reaches max_steps (> 0). Each step first sets the "lr" hyper value from the
 * schedule. cb (may be NULL) gets (step in the epoch, steps in the epoch, the epoch's
 * mean loss so far). Returns 1 when the epoch ended (m: its metrics; t->epoch counts
 * it), 0 when stopped by max_steps inside it, -1 with err on divergence or error. */
int rt_trainer_run(rt_trainer *t, int64_t max_steps, rt_progress_fn cb, void *ud,
                   rt_metrics *m, char *err, size_t errlen);

/* ---- file formats: safetensors, NumPy .npy, CSV ---- */
/* Writes the concatenation of parts[0..nparts) (sizes[i] bytes each) to path
 * crash-safely: into a new temporary file in the same directory, fsync'd, renamed over
 * path, then the directory fsync'd. A failure before the rename removes the temporary
 * file and leaves any file already at path untouched; if only the directory's fsync
 * fails, the new file is in place but may not survive a crash. 0, or -1 with a
 * message in err. */
int rt_write_atomic(const char *path, const void *const *parts, const size_t *sizes,
                    int nparts, char *err, size_t errlen);
/* Several files written together: each one's temporary file written and synced
 * first, then the renames, so that a failure while writing (a full disk) leaves every
 * old file as it was, not a new one beside an old one. Paths written in place (a FIFO,
 * /dev/stdout), which cannot be taken back, are written before any of that: one that
 * fails leaves the regular files as they were. At most 8. */
typedef struct rt_output {
	const char *path;
	const void *const *parts;
	const size_t *sizes;
	int nparts;
} rt_output;
int rt_write_atomic_all(const rt_output *outs, int n, char *err, size_t errlen);

/* safetensors (Hugging Face): an 8-byte little-endian header length, a JSON header,
 * then the tensors' bytes, little-endian, row-major. */
typedef enum {
	RT_ST_F32,
	RT_ST_F64,
	RT_ST_I32,
	RT_ST_I64,
	RT_ST_U8,
	RT_ST_F16,
	RT_ST_BF16,
	RT_ST_I8,
	RT_ST_I16,
	RT_ST_BOOL
} rt_st_dtype; /* the format's names: "F32", "F64", ..., "BF16", "I8", "I16", "BOOL" */

typedef struct rt_st_tensor {
	const char *name; /* UTF-8 */
	rt_st_dtype dtype;
	int rank; /* 0 for a scalar */
	int64_t shape[RT_MAXRANK];
	const void *data; /* nbytes bytes; when loaded, points into the file's image */
	size_t nbytes;    /* product of shape times rt_st_dtype_size(dtype) */
} rt_st_tensor;

/* A loaded file: the tensors in header order and the __metadata__ entries. Everything,
 * including the names and the data, is owned by the file (freed by rt_st_free). */
typedef struct rt_st_file {
	int n;
	rt_st_tensor *t;
	int nmeta;
	const char **meta_keys, **meta_vals;
	void *mem; /* owned storage: the file's image, RT_ALIGN-aligned */
} rt_st_file;

/* Loads a whole safetensors file into memory and checks all of it before trusting any
 * of it: the header's length, its JSON, each tensor's dtype, shape and offsets, and
 * that the tensors cover the data section exactly, without gaps or overlaps. Returns 0,
 * or -1 with a message in err naming the file (and the tensor) and what is wrong; out
 * is then zeroed. Free with rt_st_free. */
int rt_st_load(const char *path, rt_st_file *out, char *err, size_t errlen);
const rt_st_tensor *rt_st_find(const rt_st_file *f, const char *name); /* NULL: absent */
const char *rt_st_meta(const rt_st_file *f, const char *key);          /* NULL: absent */
void rt_st_free(rt_st_file *f);
/* Writes t[0..n) in that order, with the metadata pairs (nmeta may be 0), through
 * rt_write_atomic. The header is padded with spaces so that the data section starts at
 * a multiple of 8 bytes. Names must be valid UTF-8, unique and not "__metadata__";
 * each nbytes must match its shape and dtype. 0, or -1 with a message in err. */
int rt_st_save(const char *path, const rt_st_tensor *t, int n,
               const char *const *meta_keys, const char *const *meta_vals, int nmeta,
               char *err, size_t errlen);
size_t rt_st_dtype_size(rt_st_dtype t); /* bytes per element, 0 for an invalid dtype */

/* Loads a NumPy .npy file (format 1.0, 2.0 or 3.0, C order, little-endian). The first
 * dimension is the number of examples, the rest are each example's dims. Data must be
 * float32 or float64 ('<f4', '<f8'; stored as float32); with as_labels, integers
 * ('<i4', '<i8', '|u1', '|i1', '<i2', '<u2', ...; stored as int32, each checked to fit).
 * Returns 0, or -1 with a message in err naming the file and what is wrong. */
int rt_npy_load(const char *path, int as_labels, rt_tensor *out, char *err,
                size_t errlen);
/* Writes a format 1.0 .npy file ('<f4' for RT_F32, '<i4' for RT_I32) of the given
 * shape (rank 0 to RT_MAXRANK + 1) through rt_write_atomic. 0, or -1 with err. */
int rt_npy_save(const char *path, rt_dtype dtype, int rank, const int64_t *shape,
                const void *data, char *err, size_t errlen);

/* CSV: one example per row. */
typedef struct rt_csv_opts {
	char delimiter;    /* ',' when 0 */
	int header;        /* the first row is a header of column names */
	const char *label; /* label column: a header name, or a 0-based index as decimal
	                      text; NULL: no labels */
	double scale;      /* multiplies the feature values (not the labels); 0 means 1 */
	int labels_are_classes; /* labels become RT_I32 (must be integers), else RT_F32 */
} rt_csv_opts;

/* Loads a CSV file of numbers: x gets the feature columns (RT_F32, per-example rank 1),
 * y the label column (per-example rank 0), or is zeroed when o->label is NULL. o may
 * be NULL for the defaults. Handles \r\n line ends, blank lines, a UTF-8 byte order
 * mark, double-quoted fields ("" inside is a quote) and spaces around fields. Returns
 * 0, or -1 with a message in err naming the file, the row (line number in the file)
 * and the column (1-based, with its header name). */
int rt_csv_load(const char *path, const rt_csv_opts *o, rt_tensor *x, rt_tensor *y,
                char *err, size_t errlen);

/* ---- named tensors of a session, through safetensors ---- */
/* Copies every parameter from f by name (PyTorch's state_dict names: fc1.weight), F32 or
 * F64. Checks everything first: on a mismatch, err lists the missing, unexpected and
 * mis-shaped tensors and nothing is copied; non-finite values are refused too. Tensors
 * named "optimizer.*" (a checkpoint's optimizer state) are not unexpected: ignored. */
int rt_load_params(rt_session *s, const rt_st_file *f, char *err, size_t errlen);
/* Fills the input io slots from f by name (floats for f32 inputs, integers for i32);
 * a missing "weight" means every row counts. */
int rt_load_inputs(rt_session *s, const rt_st_file *f, char *err, size_t errlen);
/* Writes the parameters (grads 0) or the trainable parameters' gradients (grads 1)
 * under the parameters' names, plus one scalar extra (as "loss") if extra_name. */
int rt_save_params(const rt_session *s, const char *path, int grads,
                   const char *extra_name, const float *extra, char *err, size_t errlen);

/* Checkpoints: safetensors with the parameters under their names, the state tensors
 * as "optimizer.<name>" ("optimizer.fc1.weight.exp_avg", "optimizer.step"), and in
 * __metadata__ the program's graph hash, the position (step, epoch, examples into the
 * epoch), the rng's four words in hex, the schedule's and early stopping's state, and
 * the caller's extra pairs (the optimizer's name, ...). Refuses to write a non-finite
 * value. Written crash-safely (rt_write_atomic). */
int rt_trainer_save(const rt_trainer *t, const char *path, const char *const *keys,
                    const char *const *vals, int nextra, char *err, size_t errlen);
/* Checks a loaded checkpoint against the program (graph hash; every parameter and state
 * tensor present, F32 and of the right shape, finite; no unexpected tensor; metadata
 * complete and consistent with this run's batch, accumulate and examples per epoch)
 * and, only if all is well, restores everything rt_trainer_save wrote. */
int rt_trainer_load(rt_trainer *t, const rt_st_file *f, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
