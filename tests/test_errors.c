/* Bad input, end to end: one table of broken model files, data files and checkpoints,
 * each run through the real `descent` command line in a temporary directory, as a user
 * runs it. Every case must exit with status 1, print exactly one error line (no
 * cascade) holding the expected words, located where the mistake is (file:line:col of
 * a model file, or the name of a data or checkpoint file), and leave no output behind:
 * no report, checkpoint, log, plot, predictions or gradients, not even a temporary
 * file. The other suites test each stage's diagnostics in the library; this one checks
 * what reaches the user.
 *
 * The directory holds good data (10 2x2 images in IDX, their labels, the same as .npy
 * and CSV), broken copies, and a checkpoint of the good model written by `descent
 * train` itself, with broken copies of that. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests.h"

static char dir[64];

/* ---- files ---- */

static void put_file(const char *name, const void *data, size_t n)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	CU_ASSERT_FATAL(f != NULL);
	CU_ASSERT_FATAL(fwrite(data, 1, n, f) == n);
	fclose(f);
}

static void put_text(const char *name, const char *text)
{
	put_file(name, text, strlen(text));
}

/* A string literal's bytes, zeros inside included. */
#define PUT_BYTES(name, lit) put_file(name, lit, sizeof lit - 1)

static size_t get_file(const char *name, unsigned char *buf, size_t cap)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	CU_ASSERT_FATAL(f != NULL);
	size_t n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

static void be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* n images of 2x2 bytes (ndim 3) or n labels below 3 (ndim 1); *len bytes. */
static unsigned char *idx(int ndim, uint32_t n, size_t *len)
{
	static unsigned char b[4096];
	size_t k = 4;
	b[0] = b[1] = 0, b[2] = 0x08, b[3] = (unsigned char)ndim;
	be32(b + k, n), k += 4;
	for (int d = 1; d < ndim; d++)
		be32(b + k, 2), k += 4;
	for (uint32_t i = 0; i < n * (ndim == 3 ? 4 : 1); i++)
		b[k++] = (unsigned char)(ndim == 3 ? i * 37 % 256 : i % 3);
	*len = k;
	return b;
}

/* A .npy file of f4 ("<f4") or i4 values with the given shape text, "(10, 4)". */
static void npy(const char *name, const char *descr, const char *shape, int n)
{
	char head[128];
	unsigned char b[1024];
	int h = snprintf(head, sizeof head,
	                 "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr,
	                 shape);
	while ((10 + h + 1) % 64)
		head[h++] = ' ';
	head[h++] = '\n';
	memcpy(b, "\x93NUMPY\x01\x00", 8);
	b[8] = (unsigned char)h, b[9] = 0;
	memcpy(b + 10, head, (size_t)h);
	for (int i = 0; i < n; i++) {
		float f = (float)i / 40;
		int32_t v = i % 3;
		memcpy(b + 10 + h + 4 * i, descr[1] == 'f' ? (void *)&f : (void *)&v, 4);
	}
	put_file(name, b, (size_t)(10 + h + 4 * n));
}

/* Runs the command in dir; returns its exit status and the output in out. */
static int run(const char *cmd, char *out, size_t len)
{
	char line[4096];
	snprintf(line, sizeof line,
	         "cd '%s' && rm -rf out && mkdir out && %s/descent %s 2>&1", dir,
	         DESCENT_BINARY_DIR, cmd);
	return shell(line, out, len);
}

/* Regular files under path, recursively. */
static int files_under(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return 0;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char sub[512];
		struct stat st;
		snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
		if (stat(sub, &st) == 0)
			n += S_ISDIR(st.st_mode) ? files_under(sub) : 1;
	}
	closedir(d);
	return n;
}

/* ---- the good model, its data and its checkpoint; broken copies ---- */

#define INPUTS "inputs:\n  x: {shape: [batch, 4]}\n  y: {shape: [batch], dtype: i32}\n"
#define DENSE "layers:\n  - dense: {units: 3}\n"
#define SCE "loss: softmax_cross_entropy\n"
#define OK INPUTS DENSE SCE
/* images [batch, 2, 2] from IDX files: `train` needs data */
#define IMAGES "inputs:\n  x: {shape: [batch, 2, 2]}\n  y: {shape: [batch], dtype: i32}\n"
#define FLAT                                                                             \
	"layers:\n  - flatten\n  - dense: {units: 3}\n" SCE                              \
	"train: {batch: 4, epochs: 1}\n"
#define WITH_DATA(x, y) IMAGES FLAT "data:\n  train: {x: {idx: " x "}, y: {idx: " y "}}\n"
#define GOOD WITH_DATA("x.idx", "y.idx") "  test: {x: {idx: x.idx}, y: {idx: y.idx}}\n"
#define NPY_DATA(x, y)                                                                   \
	INPUTS DENSE SCE "train: {batch: 4, epochs: 1}\ndata:\n  train: {x: {npy: " x    \
	                 "}, y: {npy: " y "}}\n"
#define CSV_DATA(f, label)                                                               \
	INPUTS DENSE SCE "train: {batch: 4, epochs: 1}\ndata:\n  train: {csv: " f        \
	                 ", label: " label "}\n"

/* Every command writes its outputs under out/, which must stay empty. */
#define TRAIN                                                                            \
	"train m.yaml -O0 --report out/r.json --checkpoint-dir out/ck --log out/l.csv "  \
	"--plot out/p.svg"
#define EVAL(ck) "eval m.yaml -O0 --params " ck
#define PREDICT(ck) "predict m.yaml -O0 --params " ck " --input x.idx -o out/p.csv"

static void write_data(void)
{
	size_t n;
	unsigned char *b = idx(3, 10, &n);
	put_file("x.idx", b, n);
	put_file("x_trunc.idx", b, n - 11);
	b[2] = 0x0b; /* shorts, not bytes */
	put_file("x_type.idx", b, n);
	b[0] = 1, b[1] = 2, b[2] = 0x08; /* not IDX at all */
	put_file("x_magic.idx", b, n);
	b = idx(1, 10, &n);
	put_file("y.idx", b, n);
	b[8 + 3] = 7; /* a label past the 3 classes */
	put_file("y_big.idx", b, n);
	b = idx(1, 8, &n);
	put_file("y8.idx", b, n);
	/* gzip: magic and flags, then bytes that are no deflate stream */
	PUT_BYTES("x_garbage.idx.gz",
	          "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff\xff\xff\xfe\xfd garbage");
	/* a deflate stream of one stored block, cut inside its data */
	unsigned char gz[128] = {0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff, 0x01};
	b = idx(3, 10, &n);
	gz[11] = (unsigned char)n, gz[12] = (unsigned char)(n >> 8);
	gz[13] = (unsigned char)~n, gz[14] = (unsigned char)(~n >> 8);
	memcpy(gz + 15, b, 30);
	put_file("x_cut.idx.gz", gz, 45);
	npy("x.npy", "<f4", "(10, 4)", 40);
	npy("x3.npy", "<f4", "(10, 3)", 30);
	npy("y.npy", "<i4", "(10,)", 10);
	npy("y7.npy", "<i4", "(7,)", 7);
	PUT_BYTES("x_header.npy",
	          "\x93NUMPY\x01\x00\x1e\x00{'descr': '<f4', 'shape': (3, ");
	put_text("ragged.csv", "a,b,c,d,label\n1,2,3,4,0\n4,5,1\n7,8,9,2,2\n");
	put_text("good.csv",
	         "a,b,c,d,label\n1,2,3,4,0\n4,5,6,1,1\n7,8,9,2,2\n1,1,1,1,0\n");
	put_text("letters.csv", "a,b,c,d,label\n1,2,3,4,0\n4,five,6,1,1\n");
}

/* A checkpoint of the good model, by `descent train`; then broken copies of it. */
static void write_checkpoints(void)
{
	char out[8192], cmd[256];
	put_text("m.yaml", GOOD);
	snprintf(cmd, sizeof cmd, "train m.yaml -O0 --checkpoint-dir ck");
	int rc = run(cmd, out, sizeof out);
	if (rc)
		fprintf(stderr, "\n%s", out);
	CU_ASSERT_FATAL(rc == 0);
	static unsigned char b[1 << 16];
	size_t n = get_file("ck/last.safetensors", b, sizeof b);
	CU_ASSERT_FATAL(n > 100 && n < sizeof b);
	put_file("ck_cut.safetensors", b, n / 2);
	PUT_BYTES("ck_json.safetensors",
	          "\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1, \"b\": 2}");
	uint64_t hlen = 0;
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | b[i];
	/* a tensor whose data_offsets do not span its shape */
	char *at = strstr((char *)b + 8, "\"data_offsets\":[0,");
	CU_ASSERT_FATAL(at != NULL && (unsigned char *)at < b + 8 + hlen);
	at[16] = '4';
	put_file("ck_offsets.safetensors", b, n);
	at[16] = '0';
	/* the first value of the first tensor not a number */
	memcpy(b + 8 + hlen, "\x00\x00\xc0\x7f", 4);
	put_file("ck_nan.safetensors", b, n);
	/* inputs for descent grad with a label past the 3 classes */
	static const float x[16] = {0};
	static const int32_t y[4] = {0, 1, 99, 2};
	const rt_st_tensor in[2] = {{"x", RT_ST_F32, 3, {4, 2, 2}, x, sizeof x},
	                            {"y", RT_ST_I32, 1, {4}, y, sizeof y}};
	char err[256], file[256];
	snprintf(file, sizeof file, "%s/in_lab99.safetensors", dir);
	CU_ASSERT_FATAL(rt_st_save(file, in, 2, NULL, NULL, 0, err, sizeof err) == 0);
	/* and with an x that is not finite (its loss was nan, and exit 0) */
	static float xn[16] = {0, 0, 0, 0, 0, NAN};
	static const int32_t yn[4] = {0, 1, 2, 2};
	const rt_st_tensor inn[2] = {{"x", RT_ST_F32, 3, {4, 2, 2}, xn, sizeof xn},
	                             {"y", RT_ST_I32, 1, {4}, yn, sizeof yn}};
	snprintf(file, sizeof file, "%s/in_nan.safetensors", dir);
	CU_ASSERT_FATAL(rt_st_save(file, inn, 2, NULL, NULL, 0, err, sizeof err) == 0);
	/* and with a label misspelt (it was ignored, the labels left zero) */
	const rt_st_tensor inl[2] = {{"x", RT_ST_F32, 3, {4, 2, 2}, x, sizeof x},
	                             {"labels", RT_ST_I32, 1, {4}, yn, sizeof yn}};
	snprintf(file, sizeof file, "%s/in_labels.safetensors", dir);
	CU_ASSERT_FATAL(rt_st_save(file, inl, 2, NULL, NULL, 0, err, sizeof err) == 0);
}

/* ---- the table ---- */

typedef struct ErrCase {
	const char *model; /* written to m.yaml */
	const char *cmd;   /* descent's arguments, run in the directory */
	const char *msg;   /* in the error line */
	const char *where; /* the error line starts with it ("m.yaml:5:13") or names it */
} ErrCase;

static const ErrCase cases[] = {
    /* ---- YAML ---- */
    {INPUTS "layers: [{dense: {units: 3}]\n" SCE, TRAIN,
     "did not find expected ',' or '}'", "m.yaml:4:28"},
    {"a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, "
     "*a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, "
     "*c, "
     "*c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, "
     "*e]\n",
     TRAIN, "YAML aliases expand to more than 100000 nodes", "m.yaml:5:"},
    {"inputs: "
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
     "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
     TRAIN, "YAML nesting is deeper than 64 levels", "m.yaml:1:72"},
    {"inputs:\n\tx: {shape: [batch, 4]}\n" DENSE SCE, TRAIN,
     "a tab character; YAML indents with spaces only", "m.yaml:2:1"},
    {INPUTS "  x: {shape: [batch, 2]}\n" DENSE SCE, TRAIN,
     "duplicate key 'x' (first at line 2)", "m.yaml:4:3"},
    {"- dense\n- relu\n", TRAIN, "expected a mapping for 'model', found a list",
     "m.yaml:1:1"},
    {"", TRAIN, "empty model file", "m.yaml"},
    {"inputs: \xff\xfe\n", TRAIN, "invalid leading UTF-8 octet (byte 0xff)",
     "m.yaml:1:9"},
    {INPUTS "layer:\n  - dense: {units: 3}\n" SCE, TRAIN,
     "unknown key 'layer' in model; did you mean 'layers'?", "m.yaml:4:1"},
    /* ---- names ---- */
    {INPUTS "layers:\n  - dense2: {units: 3}\n" SCE, TRAIN,
     "unknown function or layer 'dense2'; did you mean 'dense'?", "m.yaml:5:5"},
    {INPUTS "layers:\n  - dense: {unit: 3}\n" SCE, TRAIN,
     "unknown setting 'unit' for dense; did you mean 'units'?", "m.yaml:5:13"},
    {INPUTS "layers:\n  - dense: {units: 3, activation: rellu}\n" SCE, TRAIN,
     "unknown activation 'rellu'; did you mean 'relu'?", "m.yaml:5:35"},
    {INPUTS "nodes:\n  out: dense(hiden, units=3)\n  hidden: relu(x)\nloss: "
            "softmax_cross_entropy(out, y)\n",
     TRAIN, "unknown name 'hiden'; did you mean 'hidden'?", "m.yaml:5:14"},
    {INPUTS
     "nodes:\n  h: dense(x, units=3)\n  x: relu(h)\nloss: softmax_cross_entropy(h, y)\n",
     TRAIN, "the name 'x' is already an input", "m.yaml:6:3"},
    {"inputs:\n  loss: {shape: [batch, 4]}\n  y: {shape: [batch], dtype: i32}\n" DENSE
         SCE,
     TRAIN, "input name 'loss' is reserved for an output", "m.yaml:2:3"},
    /* ---- the graph ---- */
    {INPUTS "nodes:\n  out: dense(h3, units=3)\n  h1: relu(h3 + x)\n  h2: relu(h1)\n"
            "  h3: relu(h2)\nloss: softmax_cross_entropy(out, y)\n",
     TRAIN, "the nodes form a cycle: h1 -> h2 -> h3 -> h1", "m.yaml:6:3"},
    {INPUTS "nodes:\n  a: dense(x, units=10)\n  b: dense(x, units=5)\n  c: a + b\n"
            "loss: softmax_cross_entropy(c, y)\n",
     TRAIN,
     "shapes [32, 10] and [32, 5] do not broadcast: [32, 10] is 'a' (line 5), [32, 5] is "
     "'b' "
     "(line 6)",
     "m.yaml:7:6"},
    {INPUTS "layers:\n  - conv2d: {out_channels: 3, kernel_size: 3}\n" SCE, TRAIN,
     "conv2d needs a [batch, channels, height, width] value, got [32, 4]", "m.yaml:5:5"},
    {"inputs:\n  x: {shape: [batch, 1, 4, 4]}\n  y: {shape: [batch], dtype: i32}\n"
     "layers:\n  - conv2d: {out_channels: 3, kernel_size: 5}\n  - flatten\n" SCE,
     TRAIN,
     "conv2d: the kernel spans [5, 5] (with its dilation), more than the padded "
     "input's [4, 4]",
     "m.yaml:5:5"},
    {"inputs:\n  x: {shape: [batch, 4]}\n  y: {shape: [batch, 2]}\n" DENSE
     "loss: {type: mse, target: y}\n",
     TRAIN, "mse: the prediction has shape [32, 3] but the target has [32, 2]",
     "m.yaml:6:14"},
    {"inputs:\n  x: {shape: [batch, 4], dtype: i32}\n  y: {shape: [batch], dtype: "
     "i32}\n" DENSE SCE,
     TRAIN, "dense takes floating-point values; its input holds integers", "m.yaml:5:5"},
    {INPUTS DENSE "loss: \"output\"\n", TRAIN,
     "the loss must be a single number, got shape [32, 3]", "m.yaml:6:8"},
    {INPUTS "  z: {shape: [batch]}\n" DENSE
            "loss: {type: softmax_cross_entropy, target: y}\n",
     TRAIN, "the layers need an input: name it with 'input: NAME'", "m.yaml:6:3"},
    /* ---- limits ---- */
    {"inputs:\n  x: {shape: [batch, 1, 2, 3, 4, 5, 6]}\n  y: {shape: [batch], dtype: "
     "i32}\n" DENSE SCE,
     TRAIN, "input 'x' has 7 dimensions; at most 6 are supported", "m.yaml:2:37"},
    {INPUTS
     "layers:\n  - reshape: {shape: [1, 1, 1, 1, 1, 4]}\n  - dense: {units: 3}\n" SCE,
     TRAIN, "reshape: 7 axes with the batch; at most 6 are supported", "m.yaml:5:5"},
    {"inputs:\n  x: {shape: [batch, 2147483648, 2147483648, 2147483648]}\n"
     "  y: {shape: [batch], dtype: i32}\n" DENSE SCE,
     TRAIN, "input 'x' has more than 4294967296 elements per example (16 GiB)",
     "m.yaml:2:14"},
    {"inputs:\n  x: {shape: [batch, 1000, 1000, 1000]}\n  y: {shape: [batch], dtype: "
     "i32}\n" DENSE SCE "train: {batch: 8}\n",
     TRAIN, "input 'x' has shape [8, 1000, 1000, 1000]: more than 4294967296 elements",
     "m.yaml:2:3"},
    {"params:\n  w: {shape: [2147483648, 2147483648, 2147483648]}\nloss: sum(w)\n", TRAIN,
     "parameter 'w' has more than 4294967296 elements (16 GiB)", "m.yaml:2:14"},
    {INPUTS "layers:\n  - dense: {units: 1073741824}\n" SCE, TRAIN,
     "the value of 'fc1' has shape [32, 1073741824]: more than 4294967296 elements",
     "m.yaml:5:5"},
    {INPUTS "layers:\n  - dense: {units: 100000}\n  - dense: {units: 30000}\n" SCE, TRAIN,
     "more than the limit of 16 GiB; the largest tensor is parameter 'fc2.weight' "
     "[30000, "
     "100000]",
     "m.yaml:6:5"},
    {"inputs:\n  x: {shape: [batch, 1, 28, 28]}\n  y: {shape: [batch], dtype: i32}\n"
     "layers:\n  - conv2d: {out_channels: 4, kernel_size: 65536, padding: 1048576}\n"
     "  - flatten\n" SCE,
     TRAIN, "parameter 'conv1.weight' has shape [4, 1, 65536, 65536]: more than",
     "m.yaml:5:5"},
    {INPUTS
     "layers:\n  - reshape: {shape: [1073741824, 1073741824, 1073741824, -1]}\n" SCE,
     TRAIN, "reshape: [32, 4] has 128 elements, which do not fit", "m.yaml:5:5"},
    {OK, "train m.yaml -O0 --batch 99999999999 --report out/r.json",
     "batch size 99999999999 is out of range: it must be from 1 to 1048576", "m.yaml"},
    /* ---- numbers, quoted as written, at their column ---- */
    {INPUTS "layers:\n  - dense: {units: -3}\n" SCE, TRAIN,
     "'units' must be an integer from 1 to 1073741824, got '-3'", "m.yaml:5:20"},
    {INPUTS "layers:\n  - dense: {units: 0}\n" SCE, TRAIN, "got '0'", "m.yaml:5:20"},
    {INPUTS "layers:\n  - dense: {units: 2.5}\n" SCE, TRAIN, "got '2.5'", "m.yaml:5:20"},
    {INPUTS "layers:\n  - dense: {units: 1e400}\n" SCE, TRAIN,
     "number '1e400' is out of range", "m.yaml:5:20"},
    {INPUTS "layers:\n  - dense: {units: .nan}\n" SCE, TRAIN, "got '.nan'",
     "m.yaml:5:20"},
    {INPUTS "layers:\n  - dense: {units: 99999999999999999999}\n" SCE, TRAIN,
     "got '99999999999999999999'", "m.yaml:5:20"},
    {"inputs:\n  x: {shape: [batch, -3]}\n  y: {shape: [batch], dtype: i32}\n" DENSE SCE,
     TRAIN, "'x.shape[1]' must be an integer from 1 to 2147483648, got '-3'",
     "m.yaml:2:22"},
    {"inputs:\n  x: {shape: [batch, 0]}\n  y: {shape: [batch], dtype: i32}\n" DENSE SCE,
     TRAIN, "'x.shape[1]' must be an integer from 1 to 2147483648, got '0'",
     "m.yaml:2:22"},
    {"inputs:\n  x: {shape: [batch, 1, 8, 8]}\n  y: {shape: [batch], dtype: i32}\n"
     "layers:\n  - conv2d: {out_channels: 3, kernel_size: 0}\n" SCE,
     TRAIN, "'kernel_size' must be an integer from 1 to 65536, got '0'", "m.yaml:5:44"},
    {OK "optimizer: {type: adam, lr: .inf}\n", TRAIN,
     "'lr' must be a number from 0 to 1000000, got '.inf'", "m.yaml:7:29"},
    {OK "optimizer: {type: sgd, lr: 0}\n", TRAIN, "'lr' must be greater than 0, got '0'",
     "m.yaml:7:28"},
    {OK "optimizer: {type: sgd, momentum: 1}\n", TRAIN,
     "'momentum' must be less than 1, got '1'", "m.yaml:7:34"},
    /* hyperparameters are floats: these round to the excluded end */
    {OK "optimizer: {type: adam, betas: [0.99999999, 0.999]}\n", TRAIN,
     "each of 'betas' must be less than 1, got '0.99999999' (1 as a 32-bit float)",
     "m.yaml:7:33"},
    {OK "optimizer: {type: sgd, lr: 1e-50}\n", TRAIN,
     "'lr' must be greater than 0, got '1e-50' (0 as a 32-bit float)", "m.yaml:7:28"},
    {OK "train: {epochs: 2.5}\n", TRAIN,
     "'epochs' must be an integer from 0 to 1000000, got '2.5'", "m.yaml:7:17"},
    {OK "train: {batch: 99999999999999999999}\n", TRAIN,
     "'batch' must be an integer from 1 to 1048576, got '99999999999999999999'",
     "m.yaml:7:16"},
    {INPUTS "layers:\n  - dropout: {p: 1.5}\n  - dense: {units: 3}\n" SCE, TRAIN,
     "'p' must be a number from 0 to 0.999999, got '1.5'", "m.yaml:5:18"},
    {INPUTS "layers:\n  - dense: {units: 3}\n  - batch_norm: {eps: .nan}\n" SCE, TRAIN,
     "'eps' must be a number from 1e-12 to 1, got '.nan'", "m.yaml:6:23"},
    {INPUTS
     "nodes:\n  h: \"dense(x, units=3) * 1e400\"\nloss: softmax_cross_entropy(h, y)\n",
     TRAIN, "number '1e400' is out of range", "m.yaml:5:27"},
    {OK "train: {validation_split: 1}\n", TRAIN,
     "'validation_split' is the fraction of the training set to hold out, between 0 and "
     "1; "
     "got '1'",
     "m.yaml:7:27"},
    /* ---- data files: the error names the file ---- */
    {WITH_DATA("x.idx", "y8.idx"), TRAIN,
     "data.train: x.idx has 10 images but y8.idx has 8 labels", "m.yaml:10:37"},
    {WITH_DATA("x_trunc.idx", "y.idx"), TRAIN,
     "truncated: expected 40 bytes of data, found 29", "x_trunc.idx"},
    {WITH_DATA("x_type.idx", "y.idx"), TRAIN, "IDX element type 0x0b is not supported",
     "x_type.idx"},
    {WITH_DATA("x_magic.idx", "y.idx"), TRAIN, "not an IDX file (bad magic 01 02 08 03)",
     "x_magic.idx"},
    {WITH_DATA("x_garbage.idx.gz", "y.idx"), TRAIN, "read error: invalid block type",
     "x_garbage.idx.gz"},
    {WITH_DATA("x_cut.idx.gz", "y.idx"), TRAIN, "truncated", "x_cut.idx.gz"},
    {WITH_DATA("y.idx", "y.idx"), TRAIN,
     "data.train: y.idx holds examples of shape []; input 'x' takes [2, 2]",
     "m.yaml:10:20"},
    {WITH_DATA("x.idx", "y_big.idx"), TRAIN,
     "y_big.idx: label 7 of example 3 is not one of the 3 classes of the output (0 to 2)",
     "m.yaml:10:37"},
    {WITH_DATA("x.idx", "x.idx"), TRAIN, "labels must be a 1-dimensional IDX file",
     "x.idx"},
    {WITH_DATA("missing.idx", "y.idx"), TRAIN, "No such file or directory",
     "missing.idx"},
    {NPY_DATA("x_header.npy", "y.npy"), TRAIN, "bad .npy header", "x_header.npy"},
    {NPY_DATA("x.npy", "y7.npy"), TRAIN, "x.npy has 10 examples but y7.npy has 7 labels",
     "m.yaml:9:37"},
    {NPY_DATA("x3.npy", "y.npy"), TRAIN,
     "data.train: x3.npy holds examples of shape [3]; input 'x' takes [4]",
     "m.yaml:9:20"},
    {CSV_DATA("ragged.csv", "label"), TRAIN, "row 3 has 3 fields, the header has 5",
     "ragged.csv"},
    {CSV_DATA("good.csv", "labl"), TRAIN, "unknown label column 'labl'", "good.csv"},
    {CSV_DATA("letters.csv", "label"), TRAIN,
     "row 3, column 2 ('b'): 'five' is not a number", "letters.csv"},
    {GOOD, "eval m.yaml -O0 --params ck/last.safetensors --data-x x.idx --data-y y8.idx",
     "x.idx has 10 images but y8.idx has 8 labels", "y8.idx"},
    {GOOD,
     "eval m.yaml -O0 --params ck/last.safetensors --data-x x.idx --data-y y_big.idx",
     "y_big.idx: label 7 of example 3 is not one of the 3 classes", "y_big.idx"},
    /* ---- checkpoints ---- */
    {GOOD, EVAL("ck_cut.safetensors"), "is larger than the rest of the file",
     "ck_cut.safetensors"},
    {GOOD, EVAL("ck_json.safetensors"),
     "expected an object with dtype, shape and data_offsets", "ck_json.safetensors"},
    {GOOD, EVAL("ck_offsets.safetensors"), "data_offsets", "ck_offsets.safetensors"},
    {GOOD, EVAL("ck_nan.safetensors"), "not finite", "ck_nan.safetensors"},
    {GOOD, EVAL("missing.safetensors"), "No such file or directory",
     "missing.safetensors"},
    {IMAGES "layers:\n  - flatten\n  - dense: {units: 5}\n" SCE
            "train: {batch: 4, epochs: 1}\n"
            "data:\n  train: {x: {idx: x.idx}, y: {idx: y.idx}}\n  test: {x: {idx: "
            "x.idx}, y: {idx: y.idx}}\n",
     EVAL("ck/last.safetensors"), "mis-shaped", "ck/last.safetensors"},
    {IMAGES "layers:\n  - flatten\n  - dense: {units: 5}\n" SCE
            "train: {batch: 4, epochs: 1}\n"
            "data:\n  train: {x: {idx: x.idx}, y: {idx: y.idx}}\n",
     TRAIN " --resume ck/last.safetensors", "the checkpoint is of another model",
     "ck/last.safetensors"},
    {GOOD, PREDICT("ck_cut.safetensors"), "is larger than the rest of the file",
     "ck_cut.safetensors"},
    {GOOD, "gradcheck m.yaml -O0 --params ck_offsets.safetensors", "data_offsets",
     "ck_offsets.safetensors"},
    {GOOD,
     "grad m.yaml --params ck_cut.safetensors --inputs ck_cut.safetensors --out "
     "out/g.safetensors",
     "is larger than the rest of the file", "ck_cut.safetensors"},
    {GOOD, EVAL("ck/last.safetensors") " --data-x good.csv --label label --data-y y.idx",
     "with a CSV, the labels are a column of the --data-x file", "y.idx"},
    {GOOD,
     "grad m.yaml --params ck/last.safetensors --inputs in_lab99.safetensors --out "
     "out/g.safetensors",
     "tensor 'y': element 2, 99, is outside 0 to 2", "in_lab99.safetensors"},
    {GOOD,
     "grad m.yaml --params ck/last.safetensors --inputs in_nan.safetensors --out "
     "out/g.safetensors",
     "tensor 'x': element 5 is nan, not a finite 32-bit float", "in_nan.safetensors"},
    {GOOD,
     "grad m.yaml --params ck/last.safetensors --inputs in_labels.safetensors --out "
     "out/g.safetensors",
     "tensor 'labels' is none of the model's inputs ('x', 'y', 'weight')",
     "in_labels.safetensors"},
};

static int check(const ErrCase *c, char *out, size_t len)
{
	put_text("m.yaml", c->model);
	int rc = run(c->cmd, out, len);
	const char *line = NULL;
	int errors = 0;
	for (const char *p = out; *p;
	     p += strcspn(p, "\n") + (p[strcspn(p, "\n")] != 0)) {
		const char *e = strstr(p, "error:");
		if (e && e < p + strcspn(p, "\n"))
			line = line ? line : p, errors++;
	}
	char first[1024] = "";
	if (line)
		snprintf(first, sizeof first, "%.*s", (int)strcspn(line, "\n"), line);
	char outdir[128];
	snprintf(outdir, sizeof outdir, "%s/out", dir);
	int left = files_under(outdir);
	int at = !strncmp(c->where, "m.yaml", 6)
	             ? !strncmp(first, c->where, strlen(c->where))
	             : strstr(first, c->where) != NULL;
	int ok = rc == 1 && errors == 1 && strstr(first, c->msg) && at && !left;
	if (getenv("ERRORS_SHOW"))
		fprintf(stderr, "%s\n", first);
	if (!ok)
		fprintf(stderr,
		        "\n--- descent %s (status %d, %d error lines, %d files left) "
		        "on\n%s--- "
		        "want: %s ... %s\n--- got:\n%s",
		        c->cmd, rc, errors, left, c->model, c->where, c->msg, out);
	return ok;
}

static void test_errors_each_bad_input_gives_one_located_error(void)
{
	static char out[65536];
	int n = 0;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		CU_ASSERT(check(&cases[i], out, sizeof out));
		n++;
	}
	CU_ASSERT(n >= 40);
}

/* The good model trains, so the failures above are the files' and not the setup's. */
static void test_errors_the_good_files_work(void)
{
	static char out[65536];
	put_text("m.yaml", GOOD);
	CU_ASSERT_EQUAL(run(TRAIN, out, sizeof out), 0);
	CU_ASSERT_EQUAL(run(EVAL("ck/last.safetensors"), out, sizeof out), 0);
	put_text("m.yaml", NPY_DATA("x.npy", "y.npy"));
	CU_ASSERT_EQUAL(run(TRAIN, out, sizeof out), 0);
	put_text("m.yaml", CSV_DATA("good.csv", "label"));
	CU_ASSERT_EQUAL(run(TRAIN, out, sizeof out), 0);
}

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/descent_errors_XXXXXX");
	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
	write_data();
	write_checkpoints();
}

static void cleanup(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	CU_ASSERT(system(cmd) == 0);
}

static void test_errors_setup(void) { setup(); }
static void test_errors_cleanup(void) { cleanup(); }

void suite_errors(void)
{
	static CU_TestInfo tests[] = {
	    {"errors_setup", test_errors_setup},
	    {"errors_the_good_files_work", test_errors_the_good_files_work},
	    {"errors_each_bad_input_gives_one_located_error",
	     test_errors_each_bad_input_gives_one_located_error},
	    {"errors_cleanup", test_errors_cleanup},
	    CU_TEST_INFO_NULL,
	};
	add_suite("errors", tests);
}
