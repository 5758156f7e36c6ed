/* Training with a model compiled ahead of time: no LLVM, no compiler, only the object
 * that `descent compile` wrote, its header, and the runtime library.
 *
 *   descent compile models/fashion_mlp.yaml -o mlp.o --header mlp.h --prefix model_
 *   cc aot_train.c mlp.o libdescent_rt.a -lz -lm
 *   aot_train IMAGES LABELS STEPS [PARAMS_OUT.safetensors]
 *
 * Initializes the parameters from seed 7, trains STEPS batches taken in order from the
 * start of the data, prints the loss, and saves the parameters if asked. */
#include <stdio.h>
#include <stdlib.h>

#include "mlp.h"

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: aot_train IMAGES LABELS STEPS [PARAMS_OUT]\n");
		return 2;
	}
	char err[512];
	rt_tensor x, y;
	if (rt_idx_load(argv[1], 1 / 255.0, 0, &x, err, sizeof err) ||
	    rt_idx_load(argv[2], 1, 1, &y, err, sizeof err)) {
		fprintf(stderr, "aot_train: %s\n", err);
		return 1;
	}
	const rt_program *p = &model_program;
	rt_session *s = rt_session_new(p);
	if (!s) {
		fprintf(stderr, "aot_train: out of memory\n");
		return 1;
	}
	rt_session_init(s, 7);
	int steps = atoi(argv[3]);
	int64_t B = MODEL_BATCH, idx[MODEL_BATCH];
	float *w = s->io[p->io_weight], *loss = s->io[p->io_loss];
	for (int64_t i = 0; i < B; i++)
		w[i] = 1;
	for (int k = 0; k < steps; k++) {
		for (int64_t i = 0; i < B; i++)
			idx[i] = (k * B + i) % x.n;
		rt_gather(&x, idx, B, B, s->io[p->io_x]);
		rt_gather(&y, idx, B, B, s->io[p->io_y]);
		if (p->train_step(s->bufs)) /* refused: nothing was written */
			fprintf(stderr,
			        "aot_train: step %d not taken: the loss or an updated "
			        "value is not finite\n",
			        k + 1);
	}
	printf("aot: %d steps, loss %.6f\n", steps, *loss);
	if (argc > 4 && rt_save_params(s, argv[4], 0, NULL, NULL, err, sizeof err) < 0) {
		fprintf(stderr, "aot_train: %s\n", err);
		return 1;
	}
	rt_session_free(s);
	rt_tensor_free(&x);
	rt_tensor_free(&y);
	return 0;
}
