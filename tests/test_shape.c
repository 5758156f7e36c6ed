/* Shape inference: the numpy broadcasting rules, each op's result shape, and the errors,
 * which name both shapes and point at the YAML entry that made the node. */
#include <string.h>

#include "dc.h"
#include "tests.h"

typedef struct T {
	Arena *A;
	Diags d;
	Graph *g;
} T;

static void begin(T *t)
{
	memset(t, 0, sizeof *t);
	t->A = arena_new();
	t->g = ir_new(t->A, &t->d);
	t->g->cur_loc = (SrcLoc){"m.yaml", 12, 7};
}

static void end(T *t)
{
	diags_free(&t->d);
	arena_free(t->A);
}

static Node *param(T *t, int rank, int64_t d0, int64_t d1, int64_t d2)
{
	Shape s = {rank, {d0, d1, d2}};
	return ir_param(t->g,
	                ir_add_param(t->g, "p", s, RT_INIT_ZEROS, 1, 1, (SrcLoc){0}));
}

static int is_shape(const Node *n, int rank, int64_t d0, int64_t d1, int64_t d2)
{
	Shape s = {rank, {d0, d1, d2}};
	return n && shape_eq(&n->sh, &s);
}

static void test_shape_broadcasts_like_numpy(void)
{
	Shape out;
	Shape a = {2, {4, 1}}, b = {1, {3}}, c = {3, {2, 1, 3}}, e = {1, {5}};
	CU_ASSERT_EQUAL(shape_bcast(&a, &b, &out), 0);
	CU_ASSERT(out.rank == 2 && out.d[0] == 4 && out.d[1] == 3);
	CU_ASSERT_EQUAL(shape_bcast(&c, &a, &out), 0);
	CU_ASSERT(out.rank == 3 && out.d[0] == 2 && out.d[1] == 4 && out.d[2] == 3);
	CU_ASSERT_EQUAL(shape_bcast(&b, &e, &out), -1);
	Shape s0 = {0, {0}};
	CU_ASSERT_EQUAL(shape_bcast(&s0, &c, &out), 0);
	CU_ASSERT(shape_eq(&out, &c));
}

static void test_shape_of_each_op(void)
{
	T t;
	begin(&t);
	Graph *g = t.g;
	Node *x = param(&t, 2, 8, 5, 0), *w = param(&t, 2, 3, 5, 0),
	     *b = param(&t, 1, 3, 0, 0);
	CU_ASSERT(is_shape(ir_matmul(g, x, w, 0, 1), 2, 8, 3, 0));
	CU_ASSERT(is_shape(ir_matmul(g, w, x, 0, 1), 2, 3, 8, 0));
	CU_ASSERT(is_shape(ir_matmul(g, x, x, 1, 0), 2, 5, 5, 0));
	CU_ASSERT(is_shape(ir_add(g, ir_matmul(g, x, w, 0, 1), b), 2, 8, 3, 0));
	CU_ASSERT(is_shape(ir_sum(g, x, 1, 1), 2, 1, 5, 0));
	CU_ASSERT(is_shape(ir_sum(g, x, 2, 0), 1, 8, 0, 0));
	CU_ASSERT(is_shape(ir_sum_all(g, x), 0, 0, 0, 0));
	CU_ASSERT(is_shape(ir_logsoftmax(g, x), 2, 8, 5, 0));
	CU_ASSERT(is_shape(ir_broadcast(g, b, (Shape){2, {4, 3}}), 2, 4, 3, 0));
	CU_ASSERT(is_shape(ir_reshape(g, x, (Shape){1, {40}}), 1, 40, 0, 0));
	CU_ASSERT(is_shape(ir_unary(g, OP_TANH, x), 2, 8, 5, 0));
	int io = ir_add_io(g, "y", RT_IO_INPUT, DT_I32, (Shape){1, {8}}, (SrcLoc){0});
	Node *oh = ir_onehot(g, ir_input(g, io), 10);
	CU_ASSERT(is_shape(oh, 2, 8, 10, 0));
	CU_ASSERT_EQUAL(oh->dt, DT_F32);
	CU_ASSERT_EQUAL(t.d.nerr, 0);
	end(&t);
}

/* Runs one failing builder and checks the single error it leaves. */
#define EXPECT_ERROR(t, expr, text)                                                      \
	do {                                                                             \
		CU_ASSERT_PTR_NULL(expr);                                                \
		CU_ASSERT_EQUAL_FATAL((t).d.n, 1);                                       \
		CU_ASSERT_EQUAL((t).d.v[0].loc.line, 12);                                \
		CU_ASSERT_EQUAL((t).d.v[0].loc.col, 7);                                  \
		if (!strstr((t).d.v[0].msg, text))                                       \
			fprintf(stderr, "\nwant '%s', got '%s'\n", text,                 \
			        (t).d.v[0].msg);                                         \
		CU_ASSERT_PTR_NOT_NULL(strstr((t).d.v[0].msg, text));                    \
	} while (0)

static void test_shape_matmul_rejects_inner_mismatch(void)
{
	T t;
	begin(&t);
	Node *x = param(&t, 2, 64, 784, 0), *w = param(&t, 2, 256, 100, 0);
	EXPECT_ERROR(t, ir_matmul(t.g, x, w, 0, 1),
	             "matmul: [64, 784] times [100, 256]: the first's columns are not "
	             "the second's "
	             "rows");
	end(&t);
}

static void test_shape_matmul_rejects_non_matrices(void)
{
	T t;
	begin(&t);
	Node *x = param(&t, 3, 2, 3, 4), *w = param(&t, 2, 4, 4, 0);
	EXPECT_ERROR(t, ir_matmul(t.g, x, w, 0, 0),
	             "matmul needs two matrices, got [2, 3, 4] and [4, 4]");
	end(&t);
}

static void test_shape_binary_rejects_shapes_that_do_not_broadcast(void)
{
	T t;
	begin(&t);
	Node *a = param(&t, 2, 4, 3, 0), *b = param(&t, 1, 5, 0, 0);
	EXPECT_ERROR(t, ir_mul(t.g, a, b), "shapes [4, 3] and [5] do not broadcast");
	end(&t);
}

static void test_shape_onehot_rejects_float_labels(void)
{
	T t;
	begin(&t);
	EXPECT_ERROR(t, ir_onehot(t.g, param(&t, 1, 4, 0, 0), 10),
	             "class labels must be integers");
	end(&t);
}

static void test_shape_elementwise_rejects_integers(void)
{
	T t;
	begin(&t);
	int io = ir_add_io(t.g, "y", RT_IO_INPUT, DT_I32, (Shape){1, {8}}, (SrcLoc){0});
	EXPECT_ERROR(t, ir_unary(t.g, OP_EXP, ir_input(t.g, io)),
	             "exp expects floating-point values, got integers");
	end(&t);
}

static void test_shape_error_stops_the_chain_without_more_errors(void)
{
	T t;
	begin(&t);
	Node *a = param(&t, 2, 4, 3, 0), *b = param(&t, 1, 5, 0, 0);
	Node *r = ir_unary(t.g, OP_RELU, ir_add(t.g, ir_mul(t.g, a, b), a));
	CU_ASSERT_PTR_NULL(r);
	CU_ASSERT_EQUAL(t.d.n, 1);
	end(&t);
}

/* Build-time CSE: a node made again is the node made first, also after the table of
 * nodes has grown past its first size (256) and been rebuilt. */
static void test_shape_identical_nodes_are_one_node(void)
{
	T t;
	begin(&t);
	Node *a = param(&t, 2, 4, 3, 0), *one = ir_scalar(t.g, 1),
	     *first = ir_add(t.g, a, one);
	Node *x = a;
	for (int i = 0; i < 1000; i++) /* 2000 other nodes */
		x = ir_mul(t.g, ir_add(t.g, x, ir_scalar(t.g, i + 2)), a);
	CU_ASSERT(t.g->n > 2000);
	CU_ASSERT_PTR_EQUAL(ir_scalar(t.g, 1), one);
	CU_ASSERT_PTR_EQUAL(ir_add(t.g, a, one), first);
	CU_ASSERT_PTR_EQUAL(ir_add(t.g, ir_add(t.g, x, ir_scalar(t.g, 3)), a),
	                    ir_add(t.g, ir_add(t.g, x, ir_scalar(t.g, 3)), a));
	end(&t);
}

void suite_shape(void)
{
	static CU_TestInfo tests[] = {
	    {"test_shape_broadcasts_like_numpy", test_shape_broadcasts_like_numpy},
	    {"test_shape_of_each_op", test_shape_of_each_op},
	    {"test_shape_matmul_rejects_inner_mismatch",
	     test_shape_matmul_rejects_inner_mismatch},
	    {"test_shape_matmul_rejects_non_matrices",
	     test_shape_matmul_rejects_non_matrices},
	    {"test_shape_binary_rejects_shapes_that_do_not_broadcast",
	     test_shape_binary_rejects_shapes_that_do_not_broadcast},
	    {"test_shape_onehot_rejects_float_labels",
	     test_shape_onehot_rejects_float_labels},
	    {"test_shape_elementwise_rejects_integers",
	     test_shape_elementwise_rejects_integers},
	    {"test_shape_error_stops_the_chain_without_more_errors",
	     test_shape_error_stops_the_chain_without_more_errors},
	    {"test_shape_identical_nodes_are_one_node",
	     test_shape_identical_nodes_are_one_node},
	    CU_TEST_INFO_NULL,
	};
	add_suite("shape", tests);
}
