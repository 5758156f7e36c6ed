/* The thread pool generated code runs its parallel loops on.
 *
 * A compiled kernel is `void k(void *const *bufs, int64_t lo, int64_t hi)`: it computes
 * the part [lo, hi) of its parallel extent, and no two parts write the same element.
 * rt_parallel_for cuts [0, n) into one contiguous part per thread, on boundaries that are
 * multiples of grain, and returns when all are done. Thread i (the caller is 0) claims
 * part i first, so that from one call to the next the same thread computes the same
 * columns and rows and finds them in its own core's caches; then it claims any part
 * left. So a worker that is late (asleep, or its core taken by another program) costs
 * a part done by another thread, not a wait. Each
 * output element is computed by one thread in the same order of operations whatever the
 * thread, so results are identical across runs and across thread counts.
 *
 * Workers spin for a while after a kernel (a training step runs dozens of kernels back to
 * back) and then sleep on a condition variable until the next one; spinning threads
 * yield the core now and then, in case another thread needs it. The pool is global, as
 * torch.set_num_threads is: rt_set_threads(n) before running a session.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "descent/runtime.h"

enum { SPINS = 1 << 16, YIELD_EVERY = 64 };

static struct {
	int n; /* threads, the caller included */
	pthread_t th[RT_MAX_THREADS];
	pthread_mutex_t mu;
	pthread_cond_t wake;
	atomic_uint_fast64_t gen;  /* bumped for every kernel, and to stop */
	atomic_uint_fast64_t call; /* the current call's number, from 1 */
	/* the number of the last call whose part i was claimed, a cache line each */
	struct {
		_Alignas(64) atomic_uint_fast64_t call;
	} claimed[RT_MAX_THREADS];
	atomic_int done; /* parts of the current call finished */
	atomic_int sleeping;
	atomic_int stop;
	atomic_flag busy;        /* a call is using the workers */
	uint_fast64_t start_gen; /* gen when the workers were started */
	rt_kernel k;
	void *const *bufs;
	int64_t len, grain;
} pool = {1, .mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
          .busy = ATOMIC_FLAG_INIT};

static void part(int w, int nparts, int64_t n, int64_t grain, int64_t *lo, int64_t *hi)
{
	int64_t units = (n + grain - 1) / grain;
	*lo = units * w / nparts * grain;
	*hi = w + 1 == nparts ? n : units * (w + 1) / nparts * grain;
	if (*hi > n)
		*hi = n;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Pauses in a wait loop; every YIELD_EVERY-th time gives the core away instead. */
static void wait_a_little(int *spins)
{
	if (++*spins % YIELD_EVERY)
		cpu_relax();
	else
		sched_yield();
}

/* Claims part c of call `call`, unless a thread has. */
static int claim(int c, uint_fast64_t call)
{
	uint_fast64_t v =
	    atomic_load_explicit(&pool.claimed[c].call, memory_order_relaxed);
	while (v < call)
		if (atomic_compare_exchange_weak_explicit(&pool.claimed[c].call, &v, call,
		                                          memory_order_acq_rel,
		                                          memory_order_relaxed))
			return 1;
	return 0;
}

/* Runs the parts of the current call thread `self` can claim, its own first. The fields
 * of a call are written before its number (release), and the caller starts the next
 * call only when every part of this one is done: a part is claimed for the call whose
 * number the thread read, and reads that call's fields. */
static void run_parts(int self)
{
	uint_fast64_t call = atomic_load_explicit(&pool.call, memory_order_acquire);
	for (int i = 0; i < pool.n; i++) {
		int c = (self + i) % pool.n;
		int64_t lo, hi;
		if (!claim(c, call))
			continue;
		part(c, pool.n, pool.len, pool.grain, &lo, &hi);
		if (lo < hi)
			pool.k(pool.bufs, lo, hi);
		atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
	}
}

static void *worker(void *arg)
{
	int self = (int)(intptr_t)arg;
	uint_fast64_t seen = pool.start_gen;
#if defined(__x86_64__)
	/* as the compiled entry points run: denormals flushed to zero (FTZ, DAZ) */
	__builtin_ia32_ldmxcsr(__builtin_ia32_stmxcsr() | 0x8040);
#endif
	for (;;) {
		uint_fast64_t g;
		int spins = 0;
		while ((g = atomic_load_explicit(&pool.gen, memory_order_acquire)) ==
		       seen) {
			if (spins < SPINS) {
				wait_a_little(&spins);
				continue;
			}
			pthread_mutex_lock(&pool.mu);
			atomic_fetch_add(&pool.sleeping, 1);
			while (atomic_load(&pool.gen) == seen)
				pthread_cond_wait(&pool.wake, &pool.mu);
			atomic_fetch_sub(&pool.sleeping, 1);
			pthread_mutex_unlock(&pool.mu);
		}
		seen = g;
		if (pool.stop)
			return NULL;
		run_parts(self);
	}
}

static void wake_all(void)
{
	atomic_fetch_add_explicit(&pool.gen, 1, memory_order_release);
	if (atomic_load(&pool.sleeping)) {
		pthread_mutex_lock(&pool.mu);
		pthread_cond_broadcast(&pool.wake);
		pthread_mutex_unlock(&pool.mu);
	}
}

static void stop_workers(void)
{
	if (pool.n <= 1)
		return;
	pool.stop = 1;
	wake_all();
	for (int i = 1; i < pool.n; i++)
		pthread_join(pool.th[i], NULL);
	pool.stop = 0;
	pool.n = 1;
}

int rt_set_threads(int n)
{
	if (n < 1 || n > RT_MAX_THREADS)
		return -1;
	if (n == pool.n)
		return 0;
	stop_workers();
	pool.start_gen = atomic_load(&pool.gen);
	for (int i = 1; i < n; i++)
		if (pthread_create(&pool.th[i], NULL, worker, (void *)(intptr_t)i)) {
			pool.n = i; /* the ones started so far */
			stop_workers();
			return -1;
		}
	pool.n = n;
	return 0;
}

int rt_threads(void) { return pool.n; }

int64_t rt_ticks(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

void rt_parallel_for(rt_kernel k, void *const *bufs, int64_t n, int64_t grain)
{
	if (grain < 1)
		grain = 1;
	/* one call at a time has the workers: a second one, from another thread of the
	 * program, runs on its own thread */
	if (pool.n <= 1 || n <= grain || atomic_flag_test_and_set(&pool.busy)) {
		k(bufs, 0, n);
		return;
	}
	pool.k = k, pool.bufs = bufs, pool.len = n, pool.grain = grain;
	atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
	atomic_fetch_add_explicit(&pool.call, 1, memory_order_release);
	wake_all();
	run_parts(0);
	int spins = 0;
	while (atomic_load_explicit(&pool.done, memory_order_acquire) < pool.n)
		wait_a_little(&spins);
	atomic_flag_clear(&pool.busy);
}
