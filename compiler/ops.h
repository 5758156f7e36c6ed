/* The op table: every primitive op of the graph IR is one row here.
 *
 * OP(ENUM, name, nin, flags)
 *   ENUM   enum constant suffix (OP_ENUM)
 *   name   lower-case name used in dumps; also the suffix of the op's functions:
 *          shape_<name> (shape.c), grad_<name> (grad.c), eval_<name> (eval.c),
 *          cg_<name> (codegen.c). A row without all four fails the build.
 *   nin    number of inputs
 *   flags  OPF_* properties that passes ask instead of listing ops
 *
 * Attributes (Node.a[], Node.f) per op:
 *   INPUT/PARAM/STATE/GRADBUF: a[0] = index into the graph's table of that kind
 *   HYPER: a[0] = index of the scalar in the hyper array
 *   CONST: f = value (the node is a tensor filled with it)
 *   SUM: a[0] = bit mask of reduced axes (the result keeps them as size 1)
 *   MATMUL: a[0] = transpose first operand, a[1] = transpose second operand
 *   ONEHOT: the class count is the last dim of the result
 *   LOGSOFTMAX: over the last axis
 */
OP(INPUT, input, 0, OPF_LEAF)
OP(PARAM, param, 0, OPF_LEAF)
OP(STATE, state, 0, OPF_LEAF)
OP(GRADBUF, gradbuf, 0, OPF_LEAF)
OP(HYPER, hyper, 0, OPF_LEAF)
OP(CONST, const, 0, OPF_LEAF)
OP(NEG, neg, 1, OPF_ELEMWISE)
OP(EXP, exp, 1, OPF_ELEMWISE)
OP(LOG, log, 1, OPF_ELEMWISE)
OP(SQRT, sqrt, 1, OPF_ELEMWISE)
OP(RELU, relu, 1, OPF_ELEMWISE | OPF_KINK)
OP(SIGMOID, sigmoid, 1, OPF_ELEMWISE)
OP(TANH, tanh, 1, OPF_ELEMWISE)
OP(STEP, step, 1, OPF_ELEMWISE | OPF_NODIFF)
OP(ADD, add, 2, OPF_ELEMWISE)
OP(SUB, sub, 2, OPF_ELEMWISE)
OP(MUL, mul, 2, OPF_ELEMWISE)
OP(DIV, div, 2, OPF_ELEMWISE)
OP(SUM, sum, 1, OPF_REDUCE)
OP(BROADCAST, broadcast, 1, 0)
OP(RESHAPE, reshape, 1, OPF_VIEW)
OP(MATMUL, matmul, 2, 0)
OP(LOGSOFTMAX, logsoftmax, 1, 0)
OP(ONEHOT, onehot, 1, OPF_NODIFF)
