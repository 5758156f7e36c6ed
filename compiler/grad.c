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
NO_RULE(onehot)
NO_RULE(argmax)

/* Piecewise constant, or cut on purpose: the derivative is zero, so nothing flows. */
#define ZERO_RULE(op_)                                                                   \
	RULE(op_) { (void)gr, (void)n, (void)dy; }
ZERO_RULE(step)
ZERO_RULE(stopgrad)
ZERO_RULE(gt)
ZERO_RULE(ge)
ZERO_RULE(eq)
ZERO_RULE(dropmask)

static Node *num(Grad *gr, double v) { return ir_scalar(G, v); }

/* d(-x) = -dy */
RULE(neg) { ad_accum(gr, n, 0, ir_neg(G, dy)); }

/* d(exp x) = dy * exp x; 0 where dy is 0 (exp x = inf on a branch not taken) */
RULE(exp) { ad_accum(gr, n, 0, ir_binary(G, OP_MUL0, dy, n)); }

/* d(log x) = dy / x, and 0 where dy is 0 (x = 0 on a branch not taken) */
RULE(log) { ad_accum(gr, n, 0, ir_binary(G, OP_MUL0, dy, ir_div(G, num(gr, 1), X))); }

/* d(sqrt x) = dy * 0.5 / sqrt x, and 0 where dy is 0 */
RULE(sqrt) { ad_accum(gr, n, 0, ir_binary(G, OP_MUL0, dy, ir_div(G, num(gr, 0.5), n))); }

/* d|x| = dy * sign x */
RULE(abs)
{
	Node *zero = num(gr, 0);
	Node *sign =
	    ir_sub(G, ir_binary(G, OP_GT, X, zero), ir_binary(G, OP_GT, zero, X));
	ad_accum(gr, n, 0, ir_mul(G, dy, sign));
}

/* d(sin x) = dy * cos x */
RULE(sin) { ad_accum(gr, n, 0, ir_mul(G, dy, ir_unary(G, OP_COS, X))); }

/* d(cos x) = -dy * sin x */
RULE(cos) { ad_accum(gr, n, 0, ir_neg(G, ir_mul(G, dy, ir_unary(G, OP_SIN, X)))); }

/* d(softplus x) = dy * sigmoid x */
RULE(softplus) { ad_accum(gr, n, 0, ir_mul(G, dy, ir_unary(G, OP_SIGMOID, X))); }

/* d(erf x) = dy * 2/sqrt(pi) * exp(-x^2) */
RULE(erf)
{
	Node *e = ir_unary(G, OP_EXP, ir_neg(G, ir_mul(G, X, X)));
	ad_accum(gr, n, 0, ir_mul(G, dy, ir_mul(G, num(gr, 1.1283791670955126), e)));
}

/* d(relu x) = dy * (relu x > 0), the same as x > 0 but from the output, as PyTorch's
 * threshold_backward: x itself then need not be kept for the backward pass, and a bias
 * add before the relu fuses into the relu's loop */
RULE(relu) { ad_accum(gr, n, 0, ir_mul(G, dy, ir_unary(G, OP_STEP, n))); }

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

/* d(x * y) = dy * y, dy * x; d(x * x) = dy * 2x, one term (two equal ones would be
 * added to x's gradient one after the other, and stored to be read twice) */
RULE(mul)
{
	if (X == Y) {
		ad_accum(gr, n, 0, ir_mul(G, dy, ir_mul(G, num(gr, 2), X)));
		return;
	}
	ad_accum(gr, n, 0, ir_mul(G, dy, Y));
	ad_accum(gr, n, 1, ir_mul(G, dy, X));
}

/* d(x * y) with 0 * anything = 0: the same, through mul0 */
RULE(mul0)
{
	ad_accum(gr, n, 0, ir_binary(G, OP_MUL0, dy, Y));
	ad_accum(gr, n, 1, ir_binary(G, OP_MUL0, dy, X));
}

/* d(x ^ y) = dy * y * x^(y-1), dy * log(x) * x^y; 0 where dy is 0 */
/* d x^y = dy y x^(y-1), dy log(x) x^y; as torch's pow_backward, x's is 0 where y = 0
 * (x^0 is 1 for every x: 0 * 0^-1 was NaN) and y's is 0 where x = 0 and y >= 0
 * (0^y does not move with y there: log 0 * 0 was NaN) */
RULE(pow)
{
	Node *zero = num(gr, 0), *xm1 = ir_binary(G, OP_POW, X, ir_sub(G, Y, num(gr, 1)));
	ad_accum(gr, n, 0,
	         ir_select(G, ir_binary(G, OP_EQ, Y, zero), zero,
	                   ir_binary(G, OP_MUL0, dy, ir_mul(G, Y, xm1))));
	Node *flat =
	    ir_mul(G, ir_binary(G, OP_EQ, X, zero), ir_binary(G, OP_GE, Y, zero));
	ad_accum(
	    gr, n, 1,
	    ir_select(G, flat, zero,
	              ir_binary(G, OP_MUL0, dy, ir_mul(G, ir_unary(G, OP_LOG, X), n))));
}

/* d max(x, y): dy goes to the larger, half to each on a tie, as torch.maximum's: x's
 * share is (x >= y) / 2 + (x > y) / 2 */
static void split_rule(Grad *gr, Node *n, Node *dy, Node *wins, Node *ties_too)
{
	Node *half = num(gr, 0.5);
	Node *share = ir_mul(G, half, ir_add(G, wins, ties_too));
	/* mul0: a share of 0 is an exact 0, whatever dy (inf * 0 was NaN) */
	ad_accum(gr, n, 0, ir_binary(G, OP_MUL0, share, dy));
	ad_accum(gr, n, 1, ir_binary(G, OP_MUL0, ir_sub(G, num(gr, 1), share), dy));
}

RULE(max) { split_rule(gr, n, dy, ir_binary(G, OP_GT, X, Y), ir_binary(G, OP_GE, X, Y)); }

/* d min(x, y): dy goes to the smaller, half to each on a tie (torch.minimum's) */
RULE(min) { split_rule(gr, n, dy, ir_binary(G, OP_GT, Y, X), ir_binary(G, OP_GE, Y, X)); }

/* d where(c, a, b) = where(c, dy, 0), where(c, 0, dy): the branch not taken gets an
 * exact 0, whatever its own derivative would be */
RULE(select)
{
	Node *zero = num(gr, 0);
	ad_accum(gr, n, 1, ir_select(G, X, dy, zero));
	ad_accum(gr, n, 2, ir_select(G, X, zero, dy));
}

/* d(x / y) = dy / y, -dy * (x / y) / y; 0 where dy is 0 (y = 0 on a branch not taken) */
RULE(div)
{
	ad_accum(gr, n, 0, ir_binary(G, OP_MUL0, dy, ir_div(G, num(gr, 1), Y)));
	ad_accum(gr, n, 1, ir_neg(G, ir_binary(G, OP_MUL0, dy, ir_div(G, n, Y))));
}

/* d(sum x) = dy broadcast back over the summed axes */
RULE(sum) { ad_accum(gr, n, 0, ir_broadcast(G, dy, X->sh)); }

/* d(max over axes) = dy shared evenly by the elements equal to the maximum, as
 * torch.amax's (each tie getting all of it made a row's gradient sum to its ties) */
RULE(rmax)
{
	Node *at = ir_binary(G, OP_EQ, X, n);
	Node *share = ir_div(G, dy, ir_sum(G, at, (uint32_t)n->a[0], 1));
	ad_accum(gr, n, 0, ir_mul(G, ir_broadcast(G, share, X->sh), at));
}

/* d(broadcast x) = dy; the driver sums it back to x's shape */
RULE(broadcast) { ad_accum(gr, n, 0, dy); }

/* d(reshape x) = dy reshaped back */
RULE(reshape) { ad_accum(gr, n, 0, ir_reshape(G, dy, X->sh)); }

/* d(transpose x) = dy transposed back */
RULE(transpose)
{
	int inv[MAXRANK];
	for (int i = 0; i < n->sh.rank; i++)
		inv[n->a[i]] = i;
	ad_accum(gr, n, 0, ir_transpose(G, dy, inv));
}

/* d(slice x) = dy padded back into x's shape */
RULE(slice) { ad_accum(gr, n, 0, ir_pad(G, dy, n->a, X->sh)); }

/* d(pad x) = the window of dy where x was */
RULE(pad) { ad_accum(gr, n, 0, ir_slice(G, dy, n->a, X->sh)); }

/* y = conv(x, w): dx = conv_bwd_data(dy, w), dw = conv_bwd_filter(x, dy) */
RULE(conv2d)
{
	ConvP p = convp_of(n);
	ad_accum(gr, n, 0, ir_conv2d_bwd_data(G, dy, Y, &p, X->sh));
	ad_accum(gr, n, 1, ir_conv2d_bwd_filter(G, X, dy, &p, Y->sh));
}

/* z = conv_bwd_data(g, w) is linear in each: <z, dz> = <g, conv(dz, w)>, so
 * dg = conv(dz, w) and dw = conv_bwd_filter(dz, g) */
RULE(conv2d_bwd_data)
{
	ConvP p = convp_of(n);
	ad_accum(gr, n, 0, ir_conv2d(G, dy, Y, &p));
	ad_accum(gr, n, 1, ir_conv2d_bwd_filter(G, dy, X, &p, Y->sh));
}

/* z = conv_bwd_filter(x, g): <z, dz> = <g, conv(x, dz)>, so dx = conv_bwd_data(g, dz)
 * and dg = conv(x, dz) */
RULE(conv2d_bwd_filter)
{
	ConvP p = convp_of(n);
	ad_accum(gr, n, 0, ir_conv2d_bwd_data(G, Y, dy, &p, X->sh));
	ad_accum(gr, n, 1, ir_conv2d(G, X, dy, &p));
}

/* gather v at the windows' maxima of sel: dv = scatter dy there; sel only chooses */
RULE(poolmax_gather)
{
	PoolP p = poolp_of(n);
	ad_accum(gr, n, 1, ir_poolmax(G, 1, X, dy, &p));
}

/* scatter g to the windows' maxima of sel: dg = gather dy there */
RULE(poolmax_scatter)
{
	PoolP p = poolp_of(n);
	ad_accum(gr, n, 1, ir_poolmax(G, 0, X, dy, &p));
}

/* average pooling and its transpose are each other's gradient */
RULE(avgpool)
{
	PoolP p = poolp_of(n);
	ad_accum(gr, n, 0, ir_avgpool_bwd(G, dy, &p, X->sh));
}

RULE(avgpool_bwd)
{
	PoolP p = poolp_of(n);
	ad_accum(gr, n, 0, ir_avgpool(G, dy, &p));
}

/* rows of a table: d(table) = dy added back into the rows it came from */
RULE(gather) { ad_accum(gr, n, 0, ir_scatter_add(G, Y, dy, X->sh)); }

/* the transpose of gather */
RULE(scatter_add) { ad_accum(gr, n, 1, ir_gather(G, dy, X)); }

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
