/* The `descent` command line's internal header: the options parsed by main.c and the
 * commands it dispatches to, one function per command, defined in cli_train.c (train,
 * eval, predict, plot) and cli_tools.c (grad, compile, gradcheck, bench, ir). Each
 * takes the options, a diagnostics list and an arena, and returns the exit status.
 * Not part of the compiler library: only the `descent` executable is built from these.
 */
#ifndef CLI_H
#define CLI_H

#include "dc.h"

typedef struct Opts {
	const char *model, *report, *fn, *params, *inputs, *out;
	const char *header, *emit, *target, *cpu, *prefix; /* compile */
	const char *stage, *grad, *format;                 /* ir */
	int stats;
	int64_t epochs, batch, train_limit, test_limit, steps;
	int64_t seed;
	double lr;
	/* train, eval, predict, plot */
	const char *resume, *ckpt_dir, *log, *plot, *data_x, *data_y, *input, *label;
	int64_t max_steps, accumulate, ckpt_every;
	int64_t threads; /* -1: not given (one thread) */
	double val_split;
	double tolerance; /* gradcheck */
	int opt_level;
	int check_numerics;
	int profile; /* bench */
} Opts;

/* cli_train.c: training over data, and using what it wrote */
int cmd_train(const Opts *o, Diags *d, Arena *A);
int cmd_eval(const Opts *o, Diags *d, Arena *A);
int cmd_predict(const Opts *o, Diags *d, Arena *A);
int svg_path(const char *opt, const char *path); /* main.c: -1 (said) if not .svg */
int cmd_plot(const Opts *o, Diags *d, Arena *A);

/* cli_tools.c: gradients, ahead-of-time compilation, checks, benchmarks, the IR */
int cmd_grad(const Opts *o, Diags *d, Arena *A);
int cmd_compile(const Opts *o, Diags *d, Arena *A);
int cmd_gradcheck(const Opts *o, Diags *d, Arena *A);
int cmd_bench(const Opts *o, Diags *d, Arena *A);
int cmd_ir(const Opts *o, Diags *d, Arena *A);

#endif
