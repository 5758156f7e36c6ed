/* libFuzzer harness for the front end: any bytes, as a model file, go through
 * spec_parse, model_from_spec and lower_model at a small batch (shape inference, the
 * loss, the backward graph and the optimizer update; no code generation, no JIT), and
 * the diagnostics are printed as the CLI prints them. The outcome must be a graph with
 * no errors or errors with no graph; a crash, a hang, an abort (die and check are
 * internal invariants: user input must never reach one) or a leak is a bug.
 *
 *   build-fuzz/tests/fuzz/fuzz_model tests/fuzz/corpus/fuzz_model
 * -dict=tests/fuzz/yaml.dict
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *sink; /* diagnostics are printed, to exercise the caret code, and dropped */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!sink && !(sink = fopen("/dev/null", "w")))
		abort();
	/* a copy: the input is not NUL-terminated, and libFuzzer checks it is not written
	 */
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	Arena *A = arena_new();
	Diags d = {0};
	Spec *s = spec_parse(A, &d, "fuzz.yaml", text, size);
	Model *m = s ? model_from_spec(A, &d, s, "fuzz.yaml") : NULL;
	Graph *g = m ? lower_model(A, &d, m, 2) : NULL;
	if (!g != (d.nerr > 0)) {
		fprintf(stderr, "fuzz_model: %s with %d errors\n",
		        g ? "a graph" : "no graph", d.nerr);
		diag_print(&d, stderr);
		abort();
	}
	diag_print(&d, sink);
	diags_free(&d);
	arena_free(A);
	free(text);
	return 0;
}
