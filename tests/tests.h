/* Shared declarations for the CUnit suites. */
#ifndef TESTS_H
#define TESTS_H
#include <CUnit/CUnit.h>

#define SUITE(name) void suite_##name(void);
#include "suites.h"
#undef SUITE

/* Adds a suite with the given tests (a NULL-terminated CU_TestInfo array). */
void add_suite(const char *name, CU_TestInfo *tests);

/* Paths of every model file in models/ (sorted, NULL-terminated, static storage). */
const char *const *model_files(void);
/* The .yaml files of the source directory rel, sorted, at most max of them, into paths
 * (list NULL-terminated, max + 1 entries); their count. */
int yaml_files(const char *rel, char (*paths)[4096], const char **list, int max);

#include "descent/runtime.h"
/* Random inputs in [0, 1), class labels below the output's class count, every row real
 * (weight 1): a batch any model can take a step on. */
void random_inputs(rt_session *s, rt_rng *rng);

struct Diags;
/* Whether d holds an error containing msg at line:col of "t.yaml". */
int has_error(const struct Diags *d, const char *msg, int line, int col);

/* Runs a shell command line; its output (stdout, and stderr if the line says 2>&1) in
 * out, cut to len - 1 bytes; returns its exit status, or -1. */
#include <stddef.h>
int shell(const char *line, char *out, size_t len);

/* Writes text to the file path, name in a new directory dir (a template ending in
 * XXXXXX); the test fails at once if it cannot. */
void temp_file(char *dir, char *path, size_t len, const char *name, const char *text);

/* Path of a file in the source tree, e.g. src_path("models/fashion_mlp.yaml"). */
const char *src_path(const char *rel);

#ifdef DC_H
/* The model at path, loaded into A and compiled with o at batch size batch (its own
 * when 0); the diagnostics printed when either fails. *mp (if not NULL) gets the
 * model. */
Compiled *compile_path(Arena *A, Diags *d, const char *path, int64_t batch,
                       const CodegenOpts *o, Model **mp);
/* g's entry points compiled with o and loaded by the JIT: fns gets them, *nwork the
 * workspace's floats; the test fails at once if either step does. */
Jit *jit_graph(Graph *g, const CodegenOpts *o, rt_fn *fns, int64_t *nwork);
#endif
#endif
