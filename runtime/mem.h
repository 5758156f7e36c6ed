/* The runtime's allocation helpers beyond rt_alloc/rt_free; internal, not installed.
 * Everything here allocates through the allocator set by rt_set_allocator. */
#ifndef DESCENT_MEM_H
#define DESCENT_MEM_H

#include <stddef.h>

/* realloc for blocks from rt_alloc: p may be NULL; on failure NULL with p untouched.
 * Growing zeroes the new bytes. */
void *rt_realloc(void *p, size_t bytes);
/* A copy of s in a block from rt_alloc; NULL when out of memory. */
char *rt_strdup(const char *s);

/* "path: message" into err (if err and errlen), for the loaders' errors; returns -1. */
__attribute__((format(printf, 4, 5))) int rt_fail(char *err, size_t errlen,
                                                  const char *path, const char *fmt, ...);

#endif
