/* Runtime memory: every byte the runtime allocates comes from rt_alloc (or rt_realloc,
 * its internal resizing form), which takes it from a pluggable allocator, malloc and
 * free by default, the way Lua's lua_Alloc works: the test build swaps in one that
 * fails the Nth request to drive every out-of-memory path.
 *
 * Blocks are aligned to RT_ALIGN bytes here rather than by the allocator, so that any
 * malloc-like function will do: each request asks for RT_ALIGN + a header more than
 * it needs, and the block handed out starts at the first RT_ALIGN boundary past the
 * header. The header, just below that boundary, records the allocator's own pointer,
 * the usable size (for rt_realloc) and the release function and its ud, so a block is
 * always given back to the allocator that made it, even after rt_set_allocator. The
 * size is rounded up to a multiple of RT_ALIGN and the whole block is zeroed, so fresh
 * gradients, optimizer state and padding start at 0 and vector loads of a last partial
 * group stay inside the block. A request so large that the arithmetic would overflow
 * fails with NULL instead of wrapping around. */
#include <stdio.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "descent/runtime.h"
#include "mem.h"

typedef void (*release_fn)(void *p, void *ud);

typedef struct Header {
	void *raw;          /* what the allocator returned */
	size_t size;        /* usable bytes from the aligned start */
	release_fn release; /* and how to give raw back */
	void *ud;
} Header;

static void *default_alloc(size_t bytes, void *ud)
{
	(void)ud;
	return malloc(bytes);
}

static void default_release(void *p, void *ud)
{
	(void)ud;
	free(p);
}

static rt_alloc_fn cur_alloc = default_alloc;
static release_fn cur_release = default_release;
static void *cur_ud;

void rt_set_allocator(rt_alloc_fn alloc, void (*release)(void *p, void *ud), void *ud)
{
	if (!alloc || !release) {
		cur_alloc = default_alloc;
		cur_release = default_release;
		cur_ud = NULL;
		return;
	}
	cur_alloc = alloc;
	cur_release = release;
	cur_ud = ud;
}

static Header *header_of(void *p) { return (Header *)p - 1; }

void *rt_alloc(size_t bytes)
{
	const size_t extra = RT_ALIGN + sizeof(Header);
	if (bytes > SIZE_MAX - RT_ALIGN - extra)
		return NULL;
	/* a zero-byte request still gets a distinct, freeable block */
	size_t n = bytes ? (bytes + RT_ALIGN - 1) / RT_ALIGN * RT_ALIGN : RT_ALIGN;
	void *raw = cur_alloc(n + extra, cur_ud);
	if (!raw)
		return NULL;
	uintptr_t at =
	    ((uintptr_t)raw + sizeof(Header) + RT_ALIGN - 1) & ~(uintptr_t)(RT_ALIGN - 1);
	void *p = (void *)at;
	*header_of(p) = (Header){raw, n, cur_release, cur_ud};
	return memset(p, 0, n);
}

void rt_free(void *p)
{
	if (!p)
		return;
	Header h = *header_of(p);
	h.release(h.raw, h.ud);
}

void *rt_realloc(void *p, size_t bytes)
{
	if (!p)
		return rt_alloc(bytes);
	size_t have = header_of(p)->size;
	if (bytes <= have)
		return p;
	void *q = rt_alloc(bytes);
	if (!q)
		return NULL;
	memcpy(q, p, have);
	rt_free(p);
	return q;
}

char *rt_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = rt_alloc(n);
	return p ? memcpy(p, s, n) : NULL;
}

int rt_error(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

int rt_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
	if (!err || !errlen)
		return -1;
	int k = snprintf(err, errlen, "%s: ", path);
	if (k >= 0 && (size_t)k < errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
		va_end(ap);
	}
	return -1;
}

void rt_append(char *buf, size_t len, const char *fmt, ...)
{
	size_t k = strlen(buf);
	if (k + 1 >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + k, len - k, fmt, ap);
	va_end(ap);
}

void rt_shape_text(char *buf, size_t len, int rank, const int64_t *shape)
{
	size_t k = (size_t)snprintf(buf, len, "[");
	for (int i = 0; i < rank && k < len; i++)
		k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? ", " : "",
		                      (long long)shape[i]);
	if (k < len)
		snprintf(buf + k, len - k, "]");
}
