/* What model.c and model_train.c share, internal to the two: the parsing context and
 * the small helpers every section reader uses. dc.h has the model's exports.
 */
#ifndef MODEL_H
#define MODEL_H

#include "dc.h"

typedef struct Ctx {
	Arena *A;
	Diags *d;
	Model *m;
	const char *dir;    /* of the model file, "" if none: data paths are relative */
	const char **names; /* input names, NULL-terminated */
	int inputs_ok;      /* no error in the inputs section */
	int no_loss;        /* no 'loss' key: said once, as missing */
	const char *net_input; /* the input the first layer takes */
	/* automatic layer names: fc, conv, ... and their counts */
	const char *prefix[64];
	int count[64], nprefix;
	SrcLoc inputs_loc;
} Ctx;

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

extern const char *const dtype_names[2]; /* DType */

/* model.c */
int keys_ok(Ctx *c, const Spec *map, const char *what, const char *const *allowed);
const Spec *key_of(const Spec *map, const char *key);
int num_pos(Ctx *c, const Spec *s, const char *what, double max, double *out);

/* model_train.c: the train: and data: sections */
void parse_train(Ctx *c, const Spec *s);
void parse_data(Ctx *c, const Spec *s);

#endif
