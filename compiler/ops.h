/* The op table: every primitive op of the graph IR is one row here.
 *
 * OP(ENUM, name, nin, flags)
 *   ENUM   enum constant suffix (OP_ENUM)
 *   name   lower-case name used in dumps; also the suffix of the op's functions:
 *          infer_<name> (shape.c), grad_<name> (grad.c), eval_<name> (eval.c),
 *          emit_<name> (codegen.c, kernels.c). A row without all four fails the build.
 *   nin    number of inputs
 *   flags  OPF_* properties that passes ask instead of listing ops
 *
 * Attributes (Node.a[], Node.f) per op; shapes marked "given" are set by the builder:
 *   INPUT/PARAM/STATE/GRADBUF: a[0] = index into the graph's table of that kind
 *   HYPER: a[0] = index of the scalar in the hyper array
 *   CONST: f = value (a tensor of the given shape filled with it)
 *   SUM, RMAX: a[0] = bit mask of reduced axes (kept as size 1)
 *   MATMUL: a[0] = transpose the first operand, a[1] = the second
 *   TRANSPOSE: a[0..rank) = permutation: out axis i is input axis a[i]
 *   SLICE: a[0..rank) = start per axis; the result shape is given (steps of 1)
 *   PAD: a[0..rank) = zeros before per axis; the result shape is given
 *   CONV2D and its backward ops, NCHW, weights [O, C/groups, KH, KW]:
 *     a[0..1] stride h, w; a[2..5] padding top, bottom, left, right;
 *     a[6..7] dilation h, w; a[8] groups. CONV2D_BWD_DATA (dy, w) and
 *     CONV2D_BWD_FILTER (x, dy) have the shape of x and w, given.
 *   POOLMAX_GATHER (sel, v), POOLMAX_SCATTER (sel, dy), AVGPOOL, AVGPOOL_BWD:
 *     a[0..1] kernel h, w; a[2..3] stride; a[4..7] padding t, b, l, r. The window's
 *     maximum is chosen on sel; GATHER takes v there, SCATTER adds dy there (shape of
 *     sel, given). max_pool2d(x) = POOLMAX_GATHER(x, x). AVGPOOL_BWD has the input's
 *     shape, given; padding counts in the average (PyTorch's count_include_pad).
 *   GATHER (table, idx): rows of table; SCATTER_ADD (idx, dy): their transpose, shape
 *     of the table given
 *   ONEHOT: class count = last dim of the result; ARGMAX over the last axis
 *   LOGSOFTMAX over the last axis
 *   DROPMASK (seed, counter): keep-mask scaled by 1/(1-p), p = f, from a counter-based
 *     hash of (seed, counter, element index); shape given
 */
OP(INPUT, input, 0, OPF_LEAF)
OP(PARAM, param, 0, OPF_LEAF)
OP(STATE, state, 0, OPF_LEAF)
OP(GRADBUF, gradbuf, 0, OPF_LEAF)
OP(HYPER, hyper, 0, OPF_LEAF)
OP(CONST, const, 0, OPF_LEAF)
OP(NEG, neg, 1, OPF_ELEMWISE | OPF_VECTOR)
OP(EXP, exp, 1, OPF_ELEMWISE | OPF_VECTOR | OPF_POLY)
OP(LOG, log, 1, OPF_ELEMWISE | OPF_POSITIVE | OPF_VECTOR | OPF_POLY)
OP(SQRT, sqrt, 1, OPF_ELEMWISE | OPF_POSITIVE | OPF_VECTOR)
OP(ABS, abs, 1, OPF_ELEMWISE | OPF_KINK | OPF_VECTOR)
OP(SIN, sin, 1, OPF_ELEMWISE | OPF_VECTOR | OPF_POLY | OPF_BRANCH)
OP(COS, cos, 1, OPF_ELEMWISE | OPF_VECTOR | OPF_POLY | OPF_BRANCH)
OP(TANH, tanh, 1, OPF_ELEMWISE | OPF_VECTOR | OPF_POLY)
OP(SIGMOID, sigmoid, 1, OPF_ELEMWISE | OPF_VECTOR | OPF_POLY)
OP(SOFTPLUS, softplus, 1, OPF_ELEMWISE | OPF_VECTOR | OPF_POLY)
OP(ERF, erf, 1, OPF_ELEMWISE | OPF_VECTOR | OPF_POLY)
OP(RELU, relu, 1, OPF_ELEMWISE | OPF_KINK | OPF_VECTOR)
OP(STEP, step, 1, OPF_ELEMWISE | OPF_KINK | OPF_VECTOR)
OP(STOPGRAD, stopgrad, 1, OPF_ELEMWISE | OPF_CUT | OPF_VECTOR)
OP(ADD, add, 2, OPF_ELEMWISE | OPF_VECTOR)
OP(SUB, sub, 2, OPF_ELEMWISE | OPF_VECTOR)
OP(MUL, mul, 2, OPF_ELEMWISE | OPF_VECTOR)
OP(MUL0, mul0, 2, OPF_ELEMWISE | OPF_VECTOR)
OP(DIV, div, 2, OPF_ELEMWISE | OPF_VECTOR)
OP(POW, pow, 2, OPF_ELEMWISE)
OP(MAX, max, 2, OPF_ELEMWISE | OPF_KINK | OPF_VECTOR)
OP(MIN, min, 2, OPF_ELEMWISE | OPF_KINK | OPF_VECTOR)
OP(GT, gt, 2, OPF_ELEMWISE | OPF_KINK | OPF_VECTOR)
OP(GE, ge, 2, OPF_ELEMWISE | OPF_KINK | OPF_VECTOR)
OP(EQ, eq, 2, OPF_ELEMWISE | OPF_KINK | OPF_VECTOR)
OP(SELECT, select, 3, OPF_ELEMWISE | OPF_VECTOR)
OP(SUM, sum, 1, OPF_REDUCE)
OP(RMAX, rmax, 1, OPF_REDUCE)
OP(BROADCAST, broadcast, 1, OPF_VECTOR)
OP(RESHAPE, reshape, 1, OPF_VIEW)
OP(TRANSPOSE, transpose, 1, 0)
OP(SLICE, slice, 1, OPF_WINDOW)
OP(PAD, pad, 1, OPF_WINDOW)
OP(MATMUL, matmul, 2, 0)
OP(CONV2D, conv2d, 2, 0)
OP(CONV2D_BWD_DATA, conv2d_bwd_data, 2, 0)
OP(CONV2D_BWD_FILTER, conv2d_bwd_filter, 2, 0)
OP(POOLMAX_GATHER, poolmax_gather, 2, 0)
OP(POOLMAX_SCATTER, poolmax_scatter, 2, 0)
OP(AVGPOOL, avgpool, 1, 0)
OP(AVGPOOL_BWD, avgpool_bwd, 1, 0)
OP(GATHER, gather, 2, 0)
OP(SCATTER_ADD, scatter_add, 2, 0)
OP(LOGSOFTMAX, logsoftmax, 1, 0)
OP(ONEHOT, onehot, 1, OPF_NODIFF)
OP(ARGMAX, argmax, 1, OPF_NODIFF)
OP(DROPMASK, dropmask, 2, OPF_CUT)
