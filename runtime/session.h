/* The runtime's internals shared between session.c and train.c; not installed. */
#ifndef DESCENT_SESSION_H
#define DESCENT_SESSION_H

#include "descent/runtime.h"

/* Can fn run over (x, y) and the session's feeds? The program's slots, the data's
 * shapes, dtypes and counts; 0, or -1 with a message naming what does not fit. */
int session_check(const rt_session *s, rt_fn fn, const char *fname, const rt_tensor *x,
                  const rt_tensor *y, char *err, size_t errlen);
/* Gathers examples idx[0..count) into the x and y slots (y may be NULL: predict) and
 * those of the feeds f, zero-padding the batch, and sets the weight slot, if any, to 1
 * for real rows and 0 for padding. */
void session_fill(rt_session *s, const rt_tensor *x, const rt_tensor *y,
                  const rt_feeds *f, const int64_t *idx, int64_t count);

#endif
