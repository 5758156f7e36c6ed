/* Chain-rule rules, one per op: grad_<name>(gr, n, dy) receives dy = d(loss)/d(n) and
 * hands d(loss)/d(input i) to ad_accum(gr, n, i, ...). Rules build their results only
 * from ordinary forward builders, so the backward graph is plain IR. They may return
 * contributions in the broadcast shape of n: the driver (autodiff.c) un-broadcasts and
 * accumulates. Leaves and ops without a derivative (OPF_NODIFF) have no rule to run.
 */
#include "dc.h"

#define RULE(name) static void grad_##name(Grad *gr, Node *n, Node *dy)
#define G ad_graph(gr)
#define X n->in[0]
#define Y n->in[1]

/* Leaves have nothing upstream; OPF_NODIFF ops are stopped by the driver. */
#define NO_RULE(op_)                                                                     \
	RULE(op_)                                                                        \
	{                                                                                \
		(void)gr, (void)dy;                                                      \
		die("no gradient rule for %s (node %d)", opinfo[n->op].name, n->id);     \
	}
NO_RULE(input)
NO_RULE(param)
NO_RULE(state)
NO_RULE(gradbuf)
NO_RULE(hyper)
NO_RULE(const)
NO_RULE(step)
NO_RULE(onehot)

/* d(-x) = -dy */
RULE(neg)
{
	ad_accum(gr, n, 0, ir_neg(G, dy));
}

/* d(exp x) = dy * exp x */
RULE(exp)
{
	ad_accum(gr, n, 0, ir_mul(G, dy, n));
}

/* d(log x) = dy / x */
RULE(log)
{
	ad_accum(gr, n, 0, ir_div(G, dy, X));
}

/* d(sqrt x) = dy * 0.5 / sqrt x */
RULE(sqrt)
{
	ad_accum(gr, n, 0, ir_div(G, ir_mul(G, dy, ir_scalar(G, 0.5)), n));
}

/* d(relu x) = dy * (x > 0) */
RULE(relu)
{
	ad_accum(gr, n, 0, ir_mul(G, dy, ir_unary(G, OP_STEP, X)));
}

/* d(sigmoid x) = dy * s * (1 - s) */
RULE(sigmoid)
{
	ad_accum(gr, n, 0, ir_mul(G, ir_mul(G, dy, n), ir_sub(G, ir_scalar(G, 1), n)));
}

/* d(tanh x) = dy * (1 - t^2) */
RULE(tanh)
{
	ad_accum(gr, n, 0, ir_mul(G, dy, ir_sub(G, ir_scalar(G, 1), ir_mul(G, n, n))));
}

/* d(x + y) = dy, dy */
RULE(add)
{
	ad_accum(gr, n, 0, dy);
	ad_accum(gr, n, 1, dy);
}

/* d(x - y) = dy, -dy */
RULE(sub)
{
	ad_accum(gr, n, 0, dy);
	ad_accum(gr, n, 1, ir_neg(G, dy));
}

/* d(x * y) = dy * y, dy * x */
RULE(mul)
{
	ad_accum(gr, n, 0, ir_mul(G, dy, Y));
	ad_accum(gr, n, 1, ir_mul(G, dy, X));
}

/* d(x / y) = dy / y, -dy * (x / y) / y */
RULE(div)
{
	ad_accum(gr, n, 0, ir_div(G, dy, Y));
	ad_accum(gr, n, 1, ir_neg(G, ir_div(G, ir_mul(G, dy, n), Y)));
}

/* d(sum x) = dy broadcast back over the summed axes */
RULE(sum)
{
	ad_accum(gr, n, 0, ir_broadcast(G, dy, X->sh));
}

/* d(broadcast x) = dy; the driver sums it back to x's shape */
RULE(broadcast)
{
	ad_accum(gr, n, 0, dy);
}

/* d(reshape x) = dy reshaped back */
RULE(reshape)
{
	ad_accum(gr, n, 0, ir_reshape(G, dy, X->sh));
}

/* C = op(A) op(B): dA = dC op(B)^T, dB = op(A)^T dC, with the transposes folded into
 * the flags instead of materialized. */
RULE(matmul)
{
	int ta = n->a[0], tb = n->a[1];
	if (!ta)
		ad_accum(gr, n, 0,
		         tb ? ir_matmul(G, dy, Y, 0, 0) : ir_matmul(G, dy, Y, 0, 1));
	else
		ad_accum(gr, n, 0,
		         tb ? ir_matmul(G, Y, dy, 1, 1) : ir_matmul(G, Y, dy, 0, 1));
	if (!tb)
		ad_accum(gr, n, 1,
		         ta ? ir_matmul(G, X, dy, 0, 0) : ir_matmul(G, X, dy, 1, 0));
	else
		ad_accum(gr, n, 1,
		         ta ? ir_matmul(G, dy, X, 1, 1) : ir_matmul(G, dy, X, 1, 0));
}

/* d(log_softmax x) = dy - softmax(x) * sum(dy) over the last axis */
RULE(logsoftmax)
{
	uint32_t last = 1u << (n->sh.rank - 1);
	Node *s = ir_mul(G, ir_unary(G, OP_EXP, n), ir_sum(G, dy, last, 1));
	ad_accum(gr, n, 0, ir_sub(G, dy, s));
}

const GradRule grad_rules[OP_COUNT] = {
#define OP(E, name, nin, flags) [OP_##E] = grad_##name,
#include "ops.h"
#undef OP
};
