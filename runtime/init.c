/* Parameter initialisation: walks the program's parameter table in order and fills each
 * parameter's slice of the flat blob according to its rt_init scheme. The uniform
 * schemes draw U(-b, b) as (2u - 1) * b from rt_rng_uniform, one draw per element in
 * row-major order, so a seed fixes every value; the bound b comes from the fans stored
 * in the table (a fan below 1 counts as 1, so a degenerate table cannot divide by 0).
 * Constant and normal schemes take their value (the constant, the deviation) from it. */
#include <math.h>

#include "descent/runtime.h"

static double bound(const rt_param *p)
{
	double in = p->fan_in > 0 ? (double)p->fan_in : 1.0;
	double out = p->fan_out > 0 ? (double)p->fan_out : 1.0;
	switch (p->init) {
	case RT_INIT_KAIMING_UNIFORM:
		return sqrt(6.0 / in);
	case RT_INIT_XAVIER_UNIFORM:
		return sqrt(6.0 / (in + out));
	case RT_INIT_TORCH_LINEAR:
		return 1.0 / sqrt(in);
	default:
		return 0.0;
	}
}

void rt_init_params(const rt_program *prog, float *params, rt_rng *rng)
{
	for (int i = 0; i < prog->nparam; i++) {
		const rt_param *p = &prog->params[i];
		float *w = params + p->offset;
		if (p->init == RT_INIT_ZEROS || p->init == RT_INIT_ONES ||
		    p->init == RT_INIT_CONSTANT) {
			float v = p->init == RT_INIT_ONES       ? 1.0f
			          : p->init == RT_INIT_CONSTANT ? (float)p->value
			                                        : 0.0f;
			for (int64_t k = 0; k < p->numel; k++)
				w[k] = v;
			continue;
		}
		if (p->init ==
		    RT_INIT_NORMAL) { /* Box-Muller, two uniforms per element */
			for (int64_t k = 0; k < p->numel; k++) {
				double u = 1.0 - rt_rng_uniform(rng),
				       v = rt_rng_uniform(rng);
				w[k] = (float)(p->value * sqrt(-2.0 * log(u)) *
				               cos(6.283185307179586 * v));
			}
			continue;
		}
		double b = bound(p);
		for (int64_t k = 0; k < p->numel; k++)
			w[k] = (float)((2.0 * rt_rng_uniform(rng) - 1.0) * b);
	}
}
