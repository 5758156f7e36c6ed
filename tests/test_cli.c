/* The `descent` command line, run as a user runs it: malformed model files give one
 * clear file:line:col error with the source line and a caret, and a non-zero exit; the
 * IR dump shows shapes, YAML lines and which chain-rule rule made each backward node. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests.h"

/* Runs `descent ARGS` with the model text in a temporary file; returns the exit code
 * and what it printed (stdout and stderr) in out. */
static int run(const char *cmd, const char *model, char *out, size_t len)
{
	char path[] = "/tmp/descent_cli_XXXXXX.yaml";
	int fd = mkstemps(path, 5);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(write(fd, model, strlen(model)) == (ssize_t)strlen(model));
	close(fd);
	char line[8192];
	snprintf(line, sizeof line, "%s/descent %s %s 2>&1", DESCENT_BINARY_DIR, cmd,
	         path);
	int status = shell(line, out, len);
	/* name the file as the test does, so messages can be matched */
	char *at;
	while ((at = strstr(out, path))) {
		memcpy(at, "m.yaml", 6);
		memmove(at + 6, at + strlen(path), strlen(at + strlen(path)) + 1);
	}
	unlink(path);
	return status;
}

#define INPUTS "inputs:\n  x: {shape: [batch, 4]}\n  y: {shape: [batch], dtype: i32}\n"

static const struct {
	const char *model, *want;
} bad[] = {
    /* unknown layer */
    {INPUTS "layers:\n  - dense: {units: 3}\n  - conv9: {units: 2}\n"
            "loss: softmax_cross_entropy\n",
     "m.yaml:6:5: error: unknown function or layer 'conv9'"},
    /* shape mismatch between the network and the target */
    {"inputs:\n  x: {shape: [batch, 4]}\n  y: {shape: [batch, 3]}\n"
     "layers:\n  - dense: {units: 2}\nloss: {type: mse, target: y}\n",
     "m.yaml:6:14: error: mse: the prediction has shape [32, 2] but the target has [32, "
     "3]"},
    /* missing key */
    {INPUTS "layers:\n  - dense: {activation: relu}\nloss: softmax_cross_entropy\n",
     "m.yaml:5:5: error: dense needs 'units'"},
    /* wrong type */
    {INPUTS "layers: {dense: {units: 3}}\nloss: softmax_cross_entropy\n",
     "m.yaml:4:9: error: expected a list for 'layers', found a mapping"},
    /* bad YAML */
    {"inputs:\n  x: {shape: [batch, 4]\nlayers: []\n",
     "m.yaml:3:1: error: did not find expected ','"},
    /* a bad number, quoted */
    {INPUTS "layers:\n  - dense: {units: -3}\nloss: softmax_cross_entropy\n",
     "m.yaml:5:20: error: 'units' must be an integer from 1 to 1073741824, got '-3'"},
};

static void test_cli_malformed_models_give_one_located_error(void)
{
	char out[16384];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = run("train", bad[i].model, out, sizeof out);
		CU_ASSERT_EQUAL(rc, 1);
		if (!strstr(out, bad[i].want))
			fprintf(stderr, "\n--- want: %s\n--- got:\n%s", bad[i].want, out);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, bad[i].want));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "^")); /* the caret under the column */
		/* one error, not a cascade */
		int errors = 0;
		for (const char *p = out; (p = strstr(p, "error:")); p++)
			errors++;
		CU_ASSERT_EQUAL(errors, 1);
	}
}

static void test_cli_missing_model_file_is_an_error(void)
{
	char line[4096], out[4096];
	snprintf(line, sizeof line, "%s/descent train /nonexistent/m.yaml 2>&1",
	         DESCENT_BINARY_DIR);
	CU_ASSERT_EQUAL(shell(line, out, sizeof out), 1);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(out, "/nonexistent/m.yaml: error: cannot open model file"));
}

static void test_cli_ir_shows_shapes_lines_and_rules(void)
{
	char out[65536];
	int rc =
	    run("ir --fn grad",
	        INPUTS "layers:\n  - dense: {name: fc1, units: 3, activation: relu}\n"
	               "  - dense: {name: fc2, units: 2}\nloss: softmax_cross_entropy\n",
	        out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "fn grad:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "param fc1.weight"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "f32[3, 4]"));      /* PyTorch's [out, in] */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "fc1 m.yaml:5:5")); /* the layer's YAML line */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "grad relu %")); /* a backward node's rule */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "-> grad fc1.weight = %"));
	/* a max pool's gradient is the pool's, at its line, though the relu's rule
	 * rewrote it (it was the relu's, at the conv's line); the sum of two uses'
	 * gradients is no one rule's; grad() in an expression keeps its node's name */
	const char *pool =
	    "inputs:\n  x: {shape: [batch, 1, 8, 8]}\n"
	    "  y: {shape: [batch], dtype: i32}\nlayers:\n"
	    "  - conv2d: {out_channels: 2, kernel_size: 3, activation: relu}\n"
	    "  - max_pool2d: {kernel_size: 2}\n  - flatten\n"
	    "  - dense: {units: 3}\nloss: softmax_cross_entropy\n";
	CU_ASSERT_EQUAL(run("ir --fn grad", pool, out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "pool1 m.yaml:6:5  grad poolmax_gather %"));
	const char *twice = "params: {w: {init: 2}}\nnodes:\n  a: \"w * w\"\n"
	                    "  g: \"exp(grad(a, w)) * 3\"\nloss: \"g + sin(w)\"\n";
	CU_ASSERT_EQUAL(run("ir --fn grad", twice, out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "grad sum of uses %"));
	const char *e = strstr(out, "= exp %");
	CU_ASSERT(e && strstr(e, " g m.yaml:4:7") &&
	          strstr(e, " g m.yaml:4:7") < strchr(e, '\n')); /* (was unnamed) */
	/* places in YAML's other string forms: a folded block, a literal block, a
	 * string over two lines, an escape, a tag (they were the string's start plus
	 * the offset, past the line or on the wrong one) */
	const char *forms =
	    "inputs:\n  x: {shape: [batch, 3]}\n  y: {shape: [batch, 3]}\n"
	    "nodes:\n  a: !!str sigmoid(x) * 2\n"
	    "  b: \"exp(a)\\t+ tanh(a)\"\n"
	    "  c: >\n    exp(b)\n    + log(b + 1)\n"
	    "  d: |\n    c *\n      sqrt(b)\n"
	    "  e: \"abs(d) +\n    sin(d)\"\n"
	    "loss: \"mse(e, y)\"\n";
	CU_ASSERT_EQUAL(run("ir --stage graph", forms, out, sizeof out), 0);
	const char *want[] = {"= sigmoid %1 ", "a m.yaml:5:12", "= tanh %",
	                      "b m.yaml:6:17", "= log %",       "c m.yaml:9:7",
	                      "= sqrt %",      "d m.yaml:12:7", "= sin %",
	                      "e m.yaml:14:5"};
	for (int i = 0; i < 10; i += 2) {
		const char *l = strstr(out, want[i]);
		CU_ASSERT(l && strstr(l, want[i + 1]) &&
		          strstr(l, want[i + 1]) < strchr(l, '\n'));
		if (!(l && strstr(l, want[i + 1]) &&
		      strstr(l, want[i + 1]) < strchr(l, '\n')))
			fprintf(stderr, "\n  want %s at %s in\n%s", want[i], want[i + 1],
			        out);
	}
	CU_ASSERT_EQUAL(
	    run("ir",
	        "inputs:\n  x: {shape: [batch, 3]}\n  y: {shape: [batch, 3]}\n"
	        "loss: >\n  mse(x, y)\n  + mean(foo(x))\n",
	        out, sizeof out),
	    1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "m.yaml:6:10: error: unknown function"));
	/* libyaml counts characters: UTF-8 before a string, an escape after a fold */
	CU_ASSERT_EQUAL(run("ir",
	                    "# \xc3\xa9\xc3\xa9\xc3\xa9\nparams: {x: {init: 1}}\n"
	                    "loss: \"(1 - x)^2 +\n   \\x24\"\n",
	                    out, sizeof out),
	                1);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(out, "m.yaml:4:4: error: unexpected character '$'"));
	/* a frozen parameter has no gradient to show; --fn is of the graph stages;
	 * --stats beside DOT go to stderr, and -o .dot writes DOT */
	CU_ASSERT_EQUAL(run("ir --grad w",
	                    "params: {w: {init: 2, trainable: false}, v: {init: "
	                    "1}}\nloss: \"w * v\"\n",
	                    out, sizeof out),
	                1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "'w' is not trained (a buffer"));
	/* a trainable parameter whose gradient is a constant shows it, and so does its
	 * DOT, though constants are drawn at their users; the slice names its end, in
	 * text as the functions do, and in DOT with the operands numbered */
	static const char *const slices[][3] = {
	    {"ir --grad x", "3 * x", "const 3"},
	    {"ir --grad x --format dot", "3 * x", "const 3\\n"},
	    {"ir --grad x", "x / 3", "  -> grad x = %"},
	    {"ir --grad x --format dot", "x / 3", "\\n-> grad x\", style=filled"},
	    {"ir --grad x --format dot", "x / 3", "[label=\"2\"]"},
	};
	for (int i = 0; i < 5; i++) {
		char model[128];
		snprintf(model, sizeof model, "params: {x: {init: 1}}\nloss: \"%s\"\n",
		         slices[i][1]);
		CU_ASSERT_EQUAL(run(slices[i][0], model, out, sizeof out), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, slices[i][2]));
	}
	/* a node's attributes: a convolution's that are not the default, a pool's
	 * window, a sum's axes */
	CU_ASSERT_EQUAL(run("ir --stage graph --batch 2",
	                    "inputs: {x: {shape: [batch, 1, 8, 8]}}\n"
	                    "layers: [{conv2d: {out_channels: 2, kernel_size: 3, stride: "
	                    "2, padding: 1}}, {max_pool2d: {kernel_size: 2}}]\n"
	                    "loss: \"sum(sum(conv1 ^ 2, axis=[2, 3]))\"\n",
	                    out, sizeof out),
	                0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "conv2d %1, %2 stride=2,2 pad=1,1,1,1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "kernel=2,2 stride=2,2"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "axes=2,3"));
	/* options that would be ignored are errors: another picture format, --format
	 * against -o, --grad of a stage it does not slice, --grad with --fn */
	static const char *const clash[][2] = {
	    {"ir -o /tmp/x.jpg", "ir draws .svg, .png or .pdf"},
	    {"ir --format text -o /tmp/x.svg", "--format text, but -o /tmp/x.svg"},
	    {"ir --stage kernels --grad x", "--grad slices the graph stages"},
	    {"ir --grad x --fn grad", "one or the other"},
	};
	for (int i = 0; i < 4; i++) {
		CU_ASSERT_EQUAL(run(clash[i][0], "params: {x: {init: 1}}\nloss: \"x\"\n",
		                    out, sizeof out),
		                2);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, clash[i][1]));
	}
	/* a text stage's file takes its own extension: m.ll of the llvm stage */
	char ll[] = "/tmp/descent_cli_XXXXXX.ll", cmd[64];
	int fd = mkstemps(ll, 3);
	CU_ASSERT_FATAL(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof cmd, "ir --stage llvm -o %s", ll);
	CU_ASSERT_EQUAL(
	    run(cmd, "params: {x: {init: 1}}\nloss: \"x\"\n", out, sizeof out), 0);
	snprintf(cmd, sizeof cmd, "head -c 12 %s", ll);
	CU_ASSERT_EQUAL(shell(cmd, out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "; ModuleID"));
	unlink(ll);
	/* --stats: values, and bytes as bench's (padded blobs), for state as for
	 * parameters: Adam's two per parameter and its step */
	CU_ASSERT_EQUAL(run("ir --stats",
	                    "params: {x: {init: 1}, y: {init: 2}}\n"
	                    "loss: \"x * y\"\noptimizer: {type: adam}\n",
	                    out, sizeof out),
	                0);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(out, "parameters   2 values in 2 tensors, 128 bytes"));
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(out, "state        5 values in 5 tensors, 320 bytes"));
	CU_ASSERT_EQUAL(run("ir --stage llvm --fn grad", twice, out, sizeof out), 1);
	char line[4096];
	snprintf(line, sizeof line,
	         "%s/descent ir --format dot --stats %s 2>/dev/null | tail -1",
	         DESCENT_BINARY_DIR, src_path("models/rosenbrock.yaml"));
	CU_ASSERT_EQUAL(shell(line, out, sizeof out), 0);
	CU_ASSERT_STRING_EQUAL(out, "}\n");
	/* DOT labels say what the text says: a hyperparameter's name, the file's line
	 * and column; a constant is drawn at its user, its value shown */
	snprintf(line, sizeof line, "%s/descent ir --stage optimized --format dot %s",
	         DESCENT_BINARY_DIR, src_path("models/rosenbrock.yaml"));
	static char big[1 << 16];
	CU_ASSERT_EQUAL(shell(line, big, sizeof big), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(big, " hyper lr\\nf32 []"));
	CU_ASSERT_PTR_NOT_NULL(strstr(big, "models/rosenbrock.yaml:7:9"));
	CU_ASSERT_PTR_NOT_NULL(strstr(big, "[label=\"100\", shape=plaintext]"));
	CU_ASSERT_PTR_NULL(strstr(big, " const"));
}

/* Runs `descent ARGS` as given; returns the exit code and the output (both streams). */
static int run_args(const char *args, char *out, size_t len)
{
	char line[8192];
	snprintf(line, sizeof line, "%s/descent %s 2>&1", DESCENT_BINARY_DIR, args);
	return shell(line, out, len);
}

/* The relative error on the line of a parameter in a gradcheck report; -1 if none. */
static double rel_error(const char *out, const char *param)
{
	char key[128];
	snprintf(key, sizeof key, "\n%s ", param);
	const char *at = strstr(out, key);
	if (!at)
		return -1;
	const char *eol = strchr(at + 1, '\n');
	const char *sp = eol;
	while (sp > at && sp[-1] != ' ')
		sp--;
	return strtod(sp, NULL);
}

/* descent gradcheck on the models of models/: every parameter's compiled gradient
 * agrees with float64 central differences to 1e-3 (in practice about 1e-6). LeNet and
 * the residual MLP compile at -O0 to keep the suite fast: the graph is the same. */
static void test_cli_gradcheck_passes_on_the_models(void)
{
	static const struct {
		const char *args, *param;
	} runs[] = {
	    {"models/fashion_mlp.yaml --batch 3", "fc1.weight"},
	    {"models/residual_mlp.yaml --batch 2 -O0", "h2.weight"},
	    {"models/fashion_lenet.yaml --batch 2 -O0", "conv1.weight"},
	    {"models/rosenbrock.yaml", "x"},
	};
	static char out[16384];
	for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
		char args[1024];
		snprintf(args, sizeof args, "gradcheck %s", src_path(runs[i].args));
		int rc = run_args(args, out, sizeof out);
		CU_ASSERT_EQUAL(rc, 0);
		double rel = rel_error(out, runs[i].param);
		CU_ASSERT(rel >= 0 && rel < 1e-3);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "worst relative error "));
		if (rc != 0 || !(rel >= 0 && rel < 1e-3))
			fprintf(stderr, "\n%s\n%s", args, out);
	}
}

/* The report: a header, a line per trainable parameter (name, shape, the compiled
 * gradient along the direction, the central difference, the relative error), the worst
 * error with its parameter; past --tolerance, the lines say FAIL and the status is 1. */
static void test_cli_gradcheck_report_and_tolerance(void)
{
	static char out[16384];
	char args[1024];
	snprintf(args, sizeof args, "gradcheck %s --batch 2 --seed 5",
	         src_path("models/fashion_mlp.yaml"));
	CU_ASSERT_EQUAL(run_args(args, out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "fashion_mlp: batch 2, seed 5: loss "));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "compiled g.u"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\nfc1.weight                   [256, 784]"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\nfc2.bias                     [10]"));
	const char *worst = strstr(out, "worst relative error ");
	CU_ASSERT_FATAL(worst != NULL);
	CU_ASSERT(strtod(worst + strlen("worst relative error "), NULL) < 1e-3);
	CU_ASSERT_PTR_NOT_NULL(strstr(worst, " (fc"));
	CU_ASSERT_PTR_NULL(strstr(out, "FAIL"));
	/* the same run, held to float64 precision that float32 code cannot meet */
	snprintf(args, sizeof args, "gradcheck %s --batch 2 --seed 5 --tolerance 1e-12",
	         src_path("models/fashion_mlp.yaml"));
	CU_ASSERT_EQUAL(run_args(args, out, sizeof out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "  FAIL\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "past the tolerance 1e-12"));
	CU_ASSERT_PTR_NULL(strstr(out, "error:")); /* a finding, not a failure to run */
	/* LeNet at batch 32: relu and max pooling make kinks that the usual step
	 * crosses; smaller steps agree, and the report says which */
	snprintf(args, sizeof args, "gradcheck %s --batch 32",
	         src_path("models/fashion_lenet.yaml"));
	CU_ASSERT_EQUAL(run_args(args, out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "(step h/10: kinks)\n"));
	CU_ASSERT_PTR_NULL(strstr(out, "FAIL"));
	/* a relu whose input is 0: no step agrees, and the line says why */
	char dir[] = "/tmp/descent-kink-XXXXXX", path[64];
	temp_file(dir, path, sizeof path, "kink.yaml",
	          "name: kink\n"
	          "params:\n"
	          "  x: {init: 0}\n"
	          "  y: {init: 1.5}\n"
	          "loss: \"relu(x) + x^2 + (y - 1)^2\"\n"
	          "optimizer: {type: sgd, lr: 0.1}\n");
	snprintf(args, sizeof args, "gradcheck %s", path);
	CU_ASSERT_EQUAL(run_args(args, out, sizeof out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "FAIL  (1 relu or abs input on the kink"));
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(out, "; 1 parameter past the tolerance")); /* y passes */
	remove(path);
	rmdir(dir);
	/* batch 19: the filter gradients' lanes (kernels.c) hold 3 images and 2 */
	snprintf(args, sizeof args, "gradcheck %s --batch 19",
	         src_path("models/fashion_lenet.yaml"));
	CU_ASSERT_EQUAL(run_args(args, out, sizeof out), 0);
	CU_ASSERT_PTR_NULL(strstr(out, "FAIL"));
	snprintf(args, sizeof args, "gradcheck %s --tolerance -1",
	         src_path("models/fashion_mlp.yaml"));
	CU_ASSERT_EQUAL(run_args(args, out, sizeof out), 2);
	CU_ASSERT_PTR_NOT_NULL(
	    strstr(out, "--tolerance takes a positive number, got '-1'"));
}

/* A convolution's bias before a batch norm has a gradient of 0 (the norm takes the
 * mean out); float32 sums leave rounding noise there, some 1e-8, which is no failure
 * against the model's gradients of 0.1. */
static void test_cli_gradcheck_takes_rounding_of_a_zero_gradient(void)
{
	static char out[16384];
	char dir[] = "/tmp/descent-bn-XXXXXX", path[64], args[1024];
	temp_file(dir, path, sizeof path, "bn.yaml",
	          "name: bn\n"
	          "inputs:\n"
	          "  image: {shape: [batch, 2, 6, 6]}\n"
	          "  label: {shape: [batch], dtype: i32}\n"
	          "layers:\n"
	          "  - conv2d: {out_channels: 3, kernel_size: 3, padding: 1}\n"
	          "  - batch_norm: {}\n"
	          "  - flatten\n"
	          "  - dense: {units: 4}\n"
	          "loss: {type: softmax_cross_entropy, target: label}\n"
	          "optimizer: {type: sgd, lr: 0.01}\n");
	for (int batch = 1; batch <= 4; batch += 3) {
		snprintf(args, sizeof args, "gradcheck %s --batch %d", path, batch);
		int rc = run_args(args, out, sizeof out);
		CU_ASSERT_EQUAL(rc, 0);
		double rel = rel_error(out, "conv1.bias");
		CU_ASSERT(rel >= 0 && rel < 1e-3);
		if (rc != 0)
			fprintf(stderr, "\n%s\n%s", args, out);
	}
	remove(path);
	rmdir(dir);
}

/* stop_gradient's values are constants to the differences as to the gradient (the
 * float64 differences saw through it: w's 0 failed against 0.75); a loss that is not
 * finite at the point checked is said, not a column of nan that FAILs. */
static void test_cli_gradcheck_holds_stop_gradient_and_says_a_bad_loss(void)
{
	static char out[16384];
	const char *sg =
	    "inputs: {x: {shape: [batch, 4]}}\n"
	    "params: {w: {shape: [4], init: normal}, v: {shape: [4], init: "
	    "normal}}\n"
	    "nodes: {h: \"stop_gradient(w) * x + v * x * stop_gradient(v)\"}\n"
	    "loss: \"sum(h)\"\n";
	CU_ASSERT_EQUAL(run("gradcheck", sg, out, sizeof out), 0);
	CU_ASSERT(strstr(out, "FAIL") == NULL);
	double rel = rel_error(out, "v");
	CU_ASSERT(rel >= 0 && rel < 1e-4);
	const char *inf =
	    "params: {w: {shape: [4], init: normal}}\nloss: \"sum(w) / 0\"\n";
	CU_ASSERT_EQUAL(run("gradcheck", inf, out, sizeof out), 1);
	CU_ASSERT(strstr(out, "m.yaml:2:7: error: the loss is infinite at this point "
	                      "(seed 0): no derivative to check there") != NULL);
	CU_ASSERT(strstr(out, "FAIL") == NULL);
}

/* --check-numerics names the first op whose output is not finite, at its YAML place. */
static void test_cli_check_numerics_names_the_first_bad_op(void)
{
	char out[16384];
	int rc = run("train --check-numerics --train-limit 40",
	             "inputs:\n  image: {shape: [batch, 784]}\n  label: {shape: [batch], "
	             "dtype: i32}\n"
	             "nodes:\n  h: \"dense(image, units=16, activation=relu)\"\n  bad: "
	             "\"log(h - 1)\"\n"
	             "  out: \"dense(bad, units=10)\"\nloss: "
	             "\"softmax_cross_entropy(out, label)\"\n"
	             "train: {batch: 8}\ndata:\n  train:\n"
	             "    image: {idx: "
	             "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz}\n"
	             "    label: {idx: "
	             "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz}\n",
	             out, sizeof out);
	CU_ASSERT_EQUAL(rc, 1);
	if (!strstr(out, "m.yaml:6:9: error: check-numerics: log"))
		fprintf(stderr, "\n--- got:\n%s", out);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "m.yaml:6:9: error: check-numerics: log"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "NaN"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "shape [8, 16]"));
}

/* The object cache: the second run of a model loads the object the first wrote, and
 * trains to the same values; bench says where the compile time went, and that the
 * second time it was not LLVM's. One object per model and batch. */
static void test_cli_object_cache_is_reused(void)
{
	char dir[] = "/tmp/descent-cache-XXXXXX", cmd[8192], out[2][4096];
	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
	for (int k = 0; k < 2; k++) {
		snprintf(cmd, sizeof cmd,
		         "DESCENT_CACHE=%s %s/descent train %s --steps 300 | grep ' = '",
		         dir, DESCENT_BINARY_DIR, src_path("models/rosenbrock.yaml"));
		CU_ASSERT_EQUAL(shell(cmd, out[k], sizeof out[k]), 0);
	}
	CU_ASSERT(strstr(out[0], "x = ") != NULL);
	CU_ASSERT_STRING_EQUAL(out[0], out[1]);
	for (int k = 0; k < 2; k++) {
		snprintf(
		    cmd, sizeof cmd,
		    "DESCENT_CACHE=%s %s/descent bench %s --batch 3 --steps 5 | grep "
		    "'compile stages'",
		    dir, DESCENT_BINARY_DIR, src_path("models/residual_mlp.yaml"));
		CU_ASSERT_EQUAL(shell(cmd, out[k], sizeof out[k]), 0);
	}
	CU_ASSERT(strstr(out[0], "code generator") != NULL);
	CU_ASSERT(strstr(out[1], "object from the cache") != NULL);
	snprintf(cmd, sizeof cmd, "ls %s | grep -c '\\.o$' | grep -qx 2 && rm -rf %s",
	         dir, dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

/* The cache's key holds constants exactly (1234567 and 1234571 printed alike as %g),
 * and an entry that does not check out, whatever it holds, is compiled again: a byte
 * changed, another key's entry, a FIFO (which blocked the run). DESCENT_CACHE=OFF is
 * off too, and =on the default place (they made directories "OFF" and "on"). */
static void test_cli_object_cache_trusts_only_its_own_entries(void)
{
	char dir[] = "/tmp/descent-cache-XXXXXX", cmd[8192], out[4096];
	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
	static const struct {
		/* commands run first, each ending in "&&"; what bench then says */
		const char *before, *what;
	} steps[] = {
	    {"", "code generator"},
	    {"", "object from the cache"},
	    {"sed -i s/1234567/1234571/ m.yaml &&", "code generator"},
	    {"", "object from the cache"},
	    {"f=$(ls -t c/*.o | head -1) && printf Z | dd of=$f bs=1 "
	     "seek=$(($(stat -c %s $f) / 2)) conv=notrunc 2>/dev/null &&",
	     "code generator"},
	    {"f=$(ls -t c/*.o | head -1) && cp $(ls -tr c/*.o | head -1) $f &&",
	     "code generator"},
	    {"f=$(ls -t c/*.o | head -1) && rm $f && mkfifo $f &&", "code generator"},
	};
	snprintf(
	    cmd, sizeof cmd,
	    "cd %s && printf 'params:\\n  x: {init: 0}\\nloss: \"(x - 1234567)^2\"\\n"
	    "optimizer: {type: sgd, lr: 0.1}\\n' >m.yaml",
	    dir);
	CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
	for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
		snprintf(
		    cmd, sizeof cmd,
		    "cd %s && %s true && DESCENT_CACHE=c timeout 60 %s/descent bench "
		    "m.yaml --steps 5 | grep 'compile stages'",
		    dir, steps[i].before, DESCENT_BINARY_DIR);
		CU_ASSERT_EQUAL(shell(cmd, out, sizeof out), 0);
		if (!strstr(out, steps[i].what))
			fprintf(stderr, "step %zu: %s\n", i, out);
		CU_ASSERT(strstr(out, steps[i].what) != NULL);
	}
	snprintf(
	    cmd, sizeof cmd,
	    "cd %s && DESCENT_CACHE=OFF %s/descent bench m.yaml --steps 5 >/dev/null && "
	    "test ! -e OFF && HOME=%s XDG_CACHE_HOME= DESCENT_CACHE=on %s/descent "
	    "bench m.yaml --steps 5 >/dev/null && test ! -e on && "
	    "ls .cache/descent/*.o >/dev/null && cd / && rm -rf %s",
	    dir, DESCENT_BINARY_DIR, dir, DESCENT_BINARY_DIR, dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

/* bench's peak is that of the cores it runs on: 2 threads pinned to one core are one
 * core's peak (they were said to be two's); a model without data has no batch (it was
 * said to have 32, or --batch); a session that cannot be allocated is an error that
 * says so (bench failed without a word). */
static void test_cli_bench_says_what_it_ran_on(void)
{
	char cmd[8192], out[4096];
	snprintf(cmd, sizeof cmd, /* on the first CPU this process may use */
	         "taskset -c $(taskset -pc $$ | sed 's/.*: //; s/[-,].*//') %s/descent "
	         "bench %s --steps 20 --threads 2",
	         DESCENT_BINARY_DIR, src_path("bench/mlp128.yaml"));
	CU_ASSERT_EQUAL(shell(cmd, out, sizeof out), 0);
	CU_ASSERT(strstr(out, "batch 32, 2 threads on 1 core, 20 steps") != NULL);
	snprintf(cmd, sizeof cmd, "%s/descent bench %s --steps 20 --batch 7 2>&1",
	         DESCENT_BINARY_DIR, src_path("models/rosenbrock.yaml"));
	CU_ASSERT_EQUAL(shell(cmd, out, sizeof out), 0);
	CU_ASSERT(strstr(out, "rosenbrock.yaml has no inputs: --batch is for models with "
	                      "data") != NULL);
	CU_ASSERT(strstr(out, "rosenbrock: no data, 1 thread, 20 steps") != NULL);
#ifndef __SANITIZE_ADDRESS__ /* (ASan needs more address space than any limit) */
	snprintf(
	    cmd, sizeof cmd,
	    "ulimit -v 2500000 && %s/descent bench %s --batch 1048576 --steps 1 2>&1",
	    DESCENT_BINARY_DIR, src_path("bench/mlp128.yaml"));
	CU_ASSERT_NOT_EQUAL(shell(cmd, out, sizeof out), 0);
	CU_ASSERT(strstr(out, "mlp128.yaml: error: out of memory for the session (batch "
	                      "1048576)") != NULL);
#endif
}

/* bench --profile: where a step's time goes, each part named by what it computes and
 * the YAML line it comes from. */
static void test_cli_bench_profile_names_parts_by_line(void)
{
	char cmd[8192], out[8192];
	snprintf(cmd, sizeof cmd, "%s/descent bench %s --batch 16 --steps 50 --profile",
	         DESCENT_BINARY_DIR, src_path("models/fashion_mlp.yaml"));
	CU_ASSERT_EQUAL(shell(cmd, out, sizeof out), 0);
	CU_ASSERT(strstr(out, "where a step's time goes") != NULL);
	/* the first layer's product, its bias and relu in its epilogue */
	CU_ASSERT(strstr(out, "matmul [16, 256] + relu, fc1, ") != NULL);
	/* bench compiles train_step alone, whose listing names the kernels */
	CU_ASSERT(strstr(out, "models/fashion_mlp.yaml:8:5  [train_step.0.") != NULL);
	CU_ASSERT(strstr(out, "(train_step alone)") != NULL);
	/* the sums by phase and by layer: both layers, the optimizer */
	CU_ASSERT(strstr(out, "by phase: forward ") != NULL);
	const char *bl = strstr(out, "by layer: ");
	CU_ASSERT(bl && strstr(bl, "fc1 ") && strstr(bl, "fc2 ") &&
	          strstr(bl, "optimizer "));
	if (!strstr(out, "fashion_mlp.yaml:8:5"))
		fprintf(stderr, "\n--- got:\n%s", out);
	/* a part of two kernels names both: fc2's input gradient, by halves of k */
	snprintf(cmd, sizeof cmd, "%s/descent bench %s --batch 16 --steps 20 --profile",
	         DESCENT_BINARY_DIR, src_path("bench/mlp128.yaml"));
	CU_ASSERT_EQUAL(shell(cmd, out, sizeof out), 0);
	CU_ASSERT(strstr(out, ".matmul, train_step.") != NULL &&
	          strstr(out, ".sum_halves]") != NULL);
}

/* --version: descent's, LLVM's and the host CPU's (what --cpu defaults to) */
static void test_cli_version(void)
{
	char cmd[4096], out[4096];
	snprintf(cmd, sizeof cmd, "%s/descent --version 2>&1", DESCENT_BINARY_DIR);
	CU_ASSERT_EQUAL(shell(cmd, out, sizeof out), 0);
	unsigned major, minor;
	char cpu[64] = "";
	CU_ASSERT(sscanf(out, "descent %u.%u\nLLVM %*s this machine's CPU: %63s", &major,
	                 &minor, cpu) == 3);
	CU_ASSERT(strlen(cpu) > 0);
	snprintf(cmd, sizeof cmd, "%s/descent --version m.yaml 2>&1", DESCENT_BINARY_DIR);
	CU_ASSERT_NOT_EQUAL(shell(cmd, out, sizeof out), 0);
	CU_ASSERT(strstr(out, "--version takes nothing after it") != NULL);
}

/* The whole run's output, less its timings, is the same on 1 and 2 threads; a thread
 * count out of range is refused before anything runs. */
static void test_cli_threads_change_nothing_but_time(void)
{
	char cmd[8192], out[3][8192];
	const char *threads[3] = {"1", "2", "0"};
	for (int k = 0; k < 3; k++) {
		snprintf(cmd, sizeof cmd,
		         "DESCENT_CACHE=off %s/descent train %s --train-limit 512 "
		         "--test-limit 256 "
		         "--epochs 2 --threads %s 2>&1 | grep -v 'compiled in' | "
		         "sed 's|[0-9]* steps/s.*||; s|after .* of training||'",
		         DESCENT_BINARY_DIR, src_path("models/fashion_mlp.yaml"),
		         threads[k]);
		shell(cmd, out[k], sizeof out[k]);
	}
	CU_ASSERT(strstr(out[0], "final test accuracy") != NULL);
	CU_ASSERT_STRING_EQUAL(out[0], out[1]);
	CU_ASSERT(strstr(out[2], "--threads takes an integer >= 1, got '0'") != NULL);
	snprintf(cmd, sizeof cmd, "%s/descent bench %s --threads 65 2>&1",
	         DESCENT_BINARY_DIR, src_path("models/rosenbrock.yaml"));
	CU_ASSERT_NOT_EQUAL(shell(cmd, out[2], sizeof out[2]), 0);
	CU_ASSERT(strstr(out[2], "--threads takes 1 to 64, got 65") != NULL);
	/* a limit of 0 examples is refused (it meant no limit) */
	for (int k = 0; k < 2; k++) {
		snprintf(cmd, sizeof cmd, "%s/descent train %s --%s-limit 0 2>&1",
		         DESCENT_BINARY_DIR, src_path("models/fashion_mlp.yaml"),
		         k ? "test" : "train");
		CU_ASSERT_NOT_EQUAL(shell(cmd, out[2], sizeof out[2]), 0);
		CU_ASSERT(strstr(out[2], "-limit takes an integer >= 1, got '0'") !=
		          NULL);
	}
	/* --lr as the float the step reads: 1e-46 is 0 (and trained nothing) */
	snprintf(cmd, sizeof cmd, "%s/descent train %s --lr 1e-46 2>&1",
	         DESCENT_BINARY_DIR, src_path("models/rosenbrock.yaml"));
	CU_ASSERT_NOT_EQUAL(shell(cmd, out[2], sizeof out[2]), 0);
	CU_ASSERT(
	    strstr(out[2], "--lr takes a positive number up to 1e+06, got '1e-46'") !=
	    NULL);
	/* and at most what the model file's lr takes */
	snprintf(cmd, sizeof cmd, "%s/descent train %s --lr 1e30 2>&1",
	         DESCENT_BINARY_DIR, src_path("models/rosenbrock.yaml"));
	CU_ASSERT_NOT_EQUAL(shell(cmd, out[2], sizeof out[2]), 0);
	CU_ASSERT(strstr(out[2], "got '1e30'") != NULL);
	/* run options a model without data has no use for: a warning, then its steps */
	snprintf(cmd, sizeof cmd, "%s/descent train %s --steps 3 --log /dev/null 2>&1",
	         DESCENT_BINARY_DIR, src_path("models/rosenbrock.yaml"));
	CU_ASSERT_EQUAL(shell(cmd, out[2], sizeof out[2]), 0);
	CU_ASSERT(strstr(out[2], "rosenbrock.yaml has no inputs: it trains for its "
	                         "steps") != NULL);
	CU_ASSERT(strstr(out[2], "x = ") != NULL);
	/* its schedule and warm-up count its steps: 3 w^2 with lr 0.1 warmed up from
	 * 0.1/3 over 2 steps (torch's LinearLR: 1/30, 2/30), then ExponentialLR(0.5)
	 * from 0.1: w = 2 (1 - 6/30) (1 - 12/30) (1 - 0.6) (1 - 0.3) = 0.2688, as
	 * SequentialLR stepped after every optimizer step gives */
	const char *sched =
	    "params: {w: {init: 2}}\nloss: \"3 * w^2\"\n"
	    "optimizer: {type: sgd, lr: 0.1}\n"
	    "train: {steps: 4, schedule: {type: exponential, gamma: 0.5}, "
	    "warmup: {steps: 2}}\n";
	CU_ASSERT_EQUAL(run("train", sched, out[2], sizeof out[2]), 0);
	CU_ASSERT(strstr(out[2], "w = 0.2688\n") != NULL);
	/* --max-steps stops it early; options for data are named in the warning */
	snprintf(cmd, sizeof cmd,
	         "%s/descent train %s --steps 30 --max-steps 3 --epochs 2 --batch 4 2>&1",
	         DESCENT_BINARY_DIR, src_path("models/rosenbrock.yaml"));
	CU_ASSERT_EQUAL(shell(cmd, out[2], sizeof out[2]), 0);
	CU_ASSERT(strstr(out[2], "--epochs, --batch are for models with data") != NULL);
	CU_ASSERT(strstr(out[2], "after 3 steps") != NULL);
	/* and steps for a model with data: an error where it is */
	const char *datasteps = "inputs: {x: {shape: [batch, 2]}}\n"
	                        "nodes: {h: \"dense(x, units=1)\"}\n"
	                        "loss: \"mean(h^2)\"\n"
	                        "train: {steps: 5}\n";
	CU_ASSERT_EQUAL(run("train", datasteps, out[2], sizeof out[2]), 1);
	CU_ASSERT(strstr(out[2], "m.yaml:4:9: error: 'steps' is for models without data; "
	                         "this one trains for 'epochs'") != NULL);
	const char *plateau = "params: {w: {init: 2}}\nloss: \"3 * w^2\"\n"
	                      "train: {steps: 4, schedule: {type: reduce_on_plateau}}\n";
	CU_ASSERT_EQUAL(run("train", plateau, out[2], sizeof out[2]), 1);
	CU_ASSERT(strstr(out[2], "m.yaml:3:29: error: reduce_on_plateau monitors a loss "
	                         "over data; this model has no inputs") != NULL);
}

void suite_cli(void)
{
	static CU_TestInfo tests[] = {
	    {"test_cli_malformed_models_give_one_located_error",
	     test_cli_malformed_models_give_one_located_error},
	    {"test_cli_missing_model_file_is_an_error",
	     test_cli_missing_model_file_is_an_error},
	    {"test_cli_ir_shows_shapes_lines_and_rules",
	     test_cli_ir_shows_shapes_lines_and_rules},
	    {"test_cli_object_cache_is_reused", test_cli_object_cache_is_reused},
	    {"test_cli_object_cache_trusts_only_its_own_entries",
	     test_cli_object_cache_trusts_only_its_own_entries},
	    {"test_cli_bench_profile_names_parts_by_line",
	     test_cli_bench_profile_names_parts_by_line},
	    {"test_cli_version", test_cli_version},
	    {"test_cli_bench_says_what_it_ran_on", test_cli_bench_says_what_it_ran_on},
	    {"test_cli_threads_change_nothing_but_time",
	     test_cli_threads_change_nothing_but_time},
	    {"test_cli_gradcheck_holds_stop_gradient_and_says_a_bad_loss",
	     test_cli_gradcheck_holds_stop_gradient_and_says_a_bad_loss},
	    {"test_cli_check_numerics_names_the_first_bad_op",
	     test_cli_check_numerics_names_the_first_bad_op},
	    {"test_cli_gradcheck_passes_on_the_models",
	     test_cli_gradcheck_passes_on_the_models},
	    {"test_cli_gradcheck_report_and_tolerance",
	     test_cli_gradcheck_report_and_tolerance},
	    {"test_cli_gradcheck_takes_rounding_of_a_zero_gradient",
	     test_cli_gradcheck_takes_rounding_of_a_zero_gradient},
	    CU_TEST_INFO_NULL,
	};
	add_suite("cli", tests);
}
