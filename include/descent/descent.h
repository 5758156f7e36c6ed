/* descent: the C API for training from your own program through the JIT.
 *
 *   dc_context *ctx = dc_context_new();
 *   dc_model *m;
 *   if (dc_compile_file(ctx, "models/fashion_mlp.yaml", NULL, &m) != DC_OK) {
 *       for (int i = 0; i < dc_diag_count(ctx); i++) {
 *           const dc_diag *d = dc_diag_get(ctx, i);
 *           fprintf(stderr, "%s:%d:%d: %s\n", d->file, d->line, d->column, d->message);
 *       }
 *   }
 *   dc_session *s;
 *   dc_session_new(m, 42, &s);                      parameters initialized from the seed
 *   dc_set_input(s, "image", x, bytes);             a batch of your data
 *   dc_set_input(s, "label", y, bytes);
 *   float loss;
 *   dc_train_step(s, &loss);                        forward, backward and update
 *
 * Handles are opaque; every function returns a status and never prints or exits.
 * Errors in model files are diagnostics with a file, line and column, kept in the
 * context until dc_diag_clear. Ownership: each _new/_compile result is freed by the
 * matching _free; a session must be freed before its model, a model before its context.
 * Buffers passed in are copied; buffers passed out are filled by the caller's size.
 */
#ifndef DESCENT_H
#define DESCENT_H

#include <stddef.h>
#include <stdint.h>

#include "descent/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
	DC_OK = 0,
	DC_ERR_MODEL,   /* the model is wrong (its file, or the graph it makes): see the
	                   diagnostics */
	DC_ERR_COMPILE, /* LLVM failed: see the diagnostics */
	DC_ERR_ARG,     /* a wrong argument: unknown name, wrong size, NULL */
	DC_ERR_IO,      /* a file could not be read or written */
	DC_ERR_NOMEM,
	DC_ERR_NUMERIC, /* the loss is not finite, or a step was refused: see
	                   dc_train_step */
	DC_ERR_UNSUPPORTED
} dc_status;

const char *dc_status_str(dc_status s);

typedef enum { DC_ERROR, DC_WARNING, DC_NOTE } dc_severity;

typedef struct dc_diag {
	dc_severity severity;
	const char *file; /* NULL when the message is not about a file */
	int line, column; /* 1-based; 0 when unknown */
	const char *message;
} dc_diag;

typedef struct dc_context dc_context;
typedef struct dc_model dc_model;
typedef struct dc_session dc_session;

dc_context *dc_context_new(void); /* NULL when out of memory */
void dc_context_free(dc_context *ctx);
int dc_diag_count(const dc_context *ctx);
const dc_diag *dc_diag_get(const dc_context *ctx, int i);
void dc_diag_clear(dc_context *ctx);

/* The entry points, as bits of dc_options.entry_points */
enum { DC_FORWARD = 1, DC_EVALUATE = 2, DC_GRAD = 4, DC_STEP = 8, DC_TRAIN_STEP = 16 };

typedef struct dc_options {
	int64_t batch;  /* 0: the model file's */
	int opt_level;  /* 0: the default, 3 (as every field's 0 is its default); 1 to 3:
	                   LLVM's -O1 to -O3; -1: -O0, unoptimized */
	int threads;    /* > 0: sets the runtime's process-wide thread pool
	                   (rt_set_threads); 0: leaves it as it is (1 by default) */
	int dtype_bits; /* 0 or 32: float32 (float64 is not supported yet) */
	/* 0: every entry point; else only these DC_ bits are compiled, and the others'
	   rt_program pointers are NULL (their dc_ calls fail): a driver that calls only
	   dc_train_step and dc_evaluate compiles sooner */
	unsigned entry_points;
} dc_options;

/* Compiles a model (YAML) for this machine. opts may be NULL for the defaults. */
dc_status dc_compile_file(dc_context *ctx, const char *path, const dc_options *opts,
                          dc_model **out);
dc_status dc_compile_string(dc_context *ctx, const char *yaml, const char *name,
                            const dc_options *opts, dc_model **out);
void dc_model_free(dc_model *m);

/* What the model is: its layout, entry points and tensor names. */
const rt_program *dc_model_program(const dc_model *m);
double dc_model_compile_seconds(const dc_model *m);

/* A session owns parameters, optimizer state and io buffers; init from the seed, which
 * also draws dropout's masks (the "seed" hyper). */
dc_status dc_session_new(dc_model *m, uint64_t seed, dc_session **out);
void dc_session_free(dc_session *s);
rt_session *dc_session_runtime(dc_session *s); /* the buffers, for direct access */

/* Inputs by name ("image", "label", "weight"): bytes must be the slot's size (batch
 * rows of float32, or int32 for integer inputs). A missing weight counts every row.
 * Integer inputs must name one of the classes (labels) or rows (embedding indices)
 * they index, else DC_ERR_ARG and nothing is copied. */
dc_status dc_set_input(dc_session *s, const char *name, const void *data, size_t bytes);
dc_status dc_get_output(dc_session *s, const char *name, void *data, size_t bytes);

/* A step whose loss, gradients or new parameter and state values are not all finite,
 * or that would move a parameter by more than 2^100, is refused: DC_ERR_NUMERIC, no
 * parameter or state written, and the loss reads NaN. */
dc_status dc_train_step(dc_session *s, float *loss); /* forward, backward, update */
/* Loss and gradients, no update: PyTorch's model.train() forward and loss.backward().
 * As there, the forward pass advances batch norm's running statistics and dropout's
 * masks, so that dc_grad then dc_step is dc_train_step. Refused (DC_ERR_NUMERIC,
 * nothing written back) when the loss or a running statistic is not finite; the loss
 * and the gradients are written as they are. */
dc_status dc_grad(dc_session *s, float *loss);
/* The update from the session's gradients (optimizer.step()): dc_grad's, or written
 * through dc_session_runtime()->grads. */
dc_status dc_step(dc_session *s);
dc_status dc_forward(dc_session *s);               /* output from the inputs */
dc_status dc_evaluate(dc_session *s, float *loss); /* loss and output, no update */

/* Parameters and gradients by name (PyTorch's: "fc1.weight"), count floats. The
 * gradients are the last dc_grad's: dc_train_step keeps its own, and writes none. */
dc_status dc_get_param(dc_session *s, const char *name, float *data, size_t count);
dc_status dc_set_param(dc_session *s, const char *name, const float *data, size_t count);
dc_status dc_get_grad(dc_session *s, const char *name, float *data, size_t count);
/* Run-time hyperparameters ("lr", "momentum", ...): no recompile. The model file's
 * ranges hold (betas below 1, eps from 0 to 1...), except that lr may be 0. A double, as
 * torch.optim's: the hyper is a float, and 1 - beta (a hyper "1-beta2" of its own) is
 * computed from the double before it is rounded. */
dc_status dc_set_hyper(dc_session *s, const char *name, double value);

/* Parameters as safetensors (PyTorch's names and layouts), written crash-safely (an
 * existing file keeps its permission bits; through a link, the file it names is
 * replaced, and a dangling link by the file); parameters that are not all finite are
 * not saved (DC_ERR_IO). */
dc_status dc_save_params(dc_session *s, const char *path);
dc_status dc_load_params(dc_session *s, const char *path);
/* The message of the last failed call on this session ("" if none). */
const char *dc_session_error(const dc_session *s);

#ifdef __cplusplus
}
#endif
#endif
