/* Random numbers for initialisation and shuffling: xoshiro256** (Blackman and Vigna),
 * a small fast generator with 256 bits of state, seeded by running splitmix64 over the
 * 64-bit seed so that nearby seeds give unrelated streams and the state is never all
 * zero. Uniform doubles take the top 53 bits; bounded integers use rejection sampling,
 * which is exactly unbiased; shuffles are Fisher-Yates. Everything is deterministic for
 * a given seed, on every platform. */
#include "descent/runtime.h"

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void rt_rng_seed(rt_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

uint64_t rt_rng_next(rt_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double rt_rng_uniform(rt_rng *r) { return (double)(rt_rng_next(r) >> 11) * 0x1.0p-53; }

/* Rejects the 2^64 mod n smallest values, so the rest is a whole number of copies of
 * [0, n). n == 0 gives 0. */
uint64_t rt_rng_below(rt_rng *r, uint64_t n)
{
	if (n == 0)
		return 0;
	uint64_t threshold = (0 - n) % n;
	for (;;) {
		uint64_t x = rt_rng_next(r);
		if (x >= threshold)
			return x % n;
	}
}

void rt_shuffle(rt_rng *r, int64_t *idx, int64_t n)
{
	for (int64_t i = n - 1; i > 0; i--) {
		int64_t j = (int64_t)rt_rng_below(r, (uint64_t)i + 1);
		int64_t t = idx[i];
		idx[i] = idx[j];
		idx[j] = t;
	}
}

float rt_dropout_seed(uint64_t seed)
{
	rt_rng r;
	rt_rng_seed(&r, seed ^ 0xd1b54a32d192ed03ULL);
	return (float)(rt_rng_next(&r) >> 41); /* (below RT_DROPOUT_SEEDS) */
}
