/* Training through the C API with your own data loop: compile a model file, feed it
 * batches, read the loss, save the parameters.
 *
 *   train_api MODEL.yaml IMAGES.idx.gz LABELS.idx.gz [STEPS]
 *
 * The data loop here is the program's own (descent's runtime has one too): it reads
 * the IDX files with the runtime's loader, walks them in order, and calls
 * dc_train_step on each batch. Prints the loss every 50 steps and the parameters'
 * sum at the end, so runs can be compared. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <descent/descent.h>

static int fail(dc_context *ctx, dc_session *s, dc_status st)
{
	fprintf(stderr, "train_api: %s", dc_status_str(st));
	if (s && dc_session_error(s)[0])
		fprintf(stderr, ": %s", dc_session_error(s));
	fprintf(stderr, "\n");
	for (int i = 0; ctx && i < dc_diag_count(ctx); i++) {
		const dc_diag *d = dc_diag_get(ctx, i);
		fprintf(stderr, "%s:%d:%d: %s\n", d->file ? d->file : "descent", d->line,
		        d->column, d->message);
	}
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: train_api MODEL.yaml IMAGES LABELS [STEPS]\n");
		return 2;
	}
	int steps = argc > 4 ? atoi(argv[4]) : 200;
	char err[512];
	rt_tensor x, y;
	if (rt_idx_load(argv[2], 1 / 255.0, 0, &x, err, sizeof err) ||
	    rt_idx_load(argv[3], 1, 1, &y, err, sizeof err)) {
		fprintf(stderr, "train_api: %s\n", err);
		return 1;
	}
	dc_context *ctx = dc_context_new();
	dc_model *m;
	dc_session *s = NULL;
	dc_options opts = {.batch = 32, .opt_level = 2};
	dc_status st = dc_compile_file(ctx, argv[1], &opts, &m);
	if (st != DC_OK)
		return fail(ctx, NULL, st);
	if ((st = dc_session_new(m, 7, &s)) != DC_OK)
		return fail(ctx, s, st);
	const int64_t B = 32, D = x.stride;
	float loss = 0;
	for (int k = 0; k < steps; k++) {
		int64_t first = (k * B) % (x.n - B);
		st = dc_set_input(s, "image", (float *)x.data + first * D,
		                  (size_t)(B * D) * sizeof(float));
		if (st == DC_OK)
			st = dc_set_input(s, "label", (int32_t *)y.data + first,
			                  (size_t)B * sizeof(int32_t));
		if (st == DC_OK)
			st = dc_train_step(s, &loss);
		if (st != DC_OK)
			return fail(ctx, s, st);
		if ((k + 1) % 50 == 0)
			printf("step %d: loss %.4f\n", k + 1, loss);
	}
	const rt_program *p = dc_model_program(m);
	double sum = 0;
	for (int i = 0; i < p->nparam; i++) {
		float *buf = malloc((size_t)p->params[i].numel * sizeof *buf);
		dc_get_param(s, p->params[i].name, buf, (size_t)p->params[i].numel);
		for (int64_t j = 0; j < p->params[i].numel; j++)
			sum += buf[j];
		free(buf);
	}
	printf("final loss %.6f, parameter sum %.6f\n", loss, sum);
	dc_session_free(s);
	dc_model_free(m);
	dc_context_free(ctx);
	rt_tensor_free(&x);
	rt_tensor_free(&y);
	return 0;
}
