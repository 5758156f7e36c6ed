/* Runtime memory: every buffer a compiled model touches comes from rt_alloc, aligned to
 * RT_ALIGN bytes so generated code may use aligned vector loads, and zeroed so fresh
 * gradients, optimizer state and padding start at 0. The size is rounded up to a
 * multiple of the alignment (as aligned_alloc requires); a request so large that the
 * rounding would overflow fails with NULL instead of wrapping around. */
#include <stdlib.h>
#include <string.h>

#include "descent/runtime.h"

void *rt_alloc(size_t bytes)
{
	if (bytes > SIZE_MAX - (RT_ALIGN - 1))
		return NULL;
	/* a zero-byte request still gets a distinct, freeable block */
	size_t n = bytes ? (bytes + RT_ALIGN - 1) / RT_ALIGN * RT_ALIGN : RT_ALIGN;
	void *p = aligned_alloc(RT_ALIGN, n);
	if (p)
		memset(p, 0, n);
	return p;
}

void rt_free(void *p)
{
	free(p);
}
