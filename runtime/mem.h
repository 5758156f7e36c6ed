/* The runtime's allocation helpers beyond rt_alloc/rt_free; internal, not installed.
 * Everything here allocates through the allocator set by rt_set_allocator. */
#ifndef DESCENT_MEM_H
#define DESCENT_MEM_H

#include <stddef.h>
#include <stdint.h>

/* realloc for blocks from rt_alloc: p may be NULL; on failure NULL with p untouched.
 * Growing zeroes the new bytes. */
void *rt_realloc(void *p, size_t bytes);
/* A copy of s in a block from rt_alloc; NULL when out of memory. */
char *rt_strdup(const char *s);

/* The message into err (if err and errlen); returns -1. */
__attribute__((format(printf, 3, 4))) int rt_error(char *err, size_t errlen,
                                                   const char *fmt, ...);
/* "path: message" into err (if err and errlen), for the loaders' errors; returns -1. */
__attribute__((format(printf, 4, 5))) int rt_fail(char *err, size_t errlen,
                                                  const char *path, const char *fmt, ...);

/* Appends to the string in buf (len bytes in all), as far as it fits. */
__attribute__((format(printf, 3, 4))) void rt_append(char *buf, size_t len,
                                                     const char *fmt, ...);
/* "[2, 3]" */
void rt_shape_text(char *buf, size_t len, int rank, const int64_t *shape);

#endif
