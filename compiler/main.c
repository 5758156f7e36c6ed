/* The `descent` command line.
 *
 *   descent train MODEL.yaml [--epochs N] [--batch B] [--seed S] [--lr X]
 *                            [--train-limit N] [--test-limit N] [--report FILE.json]
 *                            [--checkpoint-dir DIR] [--resume CKPT] [--max-steps N]
 *                            [--log FILE.csv] [--plot FILE.svg] [--accumulate K]
 *                            [-o PARAMS.safetensors] ...
 *   descent eval MODEL.yaml --params CKPT [--data-x F [--data-y F | --label COL]]
 *   descent predict MODEL.yaml --params CKPT --input F -o OUT(.npy|.csv)
 *   descent plot LOG.csv -o PLOT.svg
 *   descent grad MODEL.yaml --params P --inputs B --out G
 *   descent compile MODEL.yaml -o OUT [--header H] [--emit KIND] [--target T] [--cpu C]
 *   descent gradcheck MODEL.yaml [--batch B] [--seed S] [--params P] [--tolerance T]
 *   descent ir MODEL.yaml [--stage S] [--fn F] [--grad P] [--format text|dot] [-o F]
 * [--stats]
 *
 * This file parses the options and dispatches to a command: the training side (train,
 * eval, predict, plot) is in cli_train.c, the tools (grad, gradcheck, compile, ir,
 * bench) in cli_tools.c, and cli.h is what the three share. Only the CLI decides to
 * exit; the library reports diagnostics and returns.
 */
#define _GNU_SOURCE /* sched_getaffinity */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: descent train MODEL.yaml [--epochs N] [--batch B] [--seed S] "
	    "[--lr X]\n"
	    "                     [--train-limit N] [--test-limit N] [--report "
	    "FILE.json] [-O0..3]\n"
	    "                     [--checkpoint-dir DIR] [--checkpoint-every N] "
	    "[--resume CKPT]\n"
	    "                     [--max-steps N] [--log FILE.csv] [--plot FILE.svg]\n"
	    "                     [--accumulate K] [--validation-split F] [--threads N]\n"
	    "                     [--check-numerics] [--steps N (a model without data)]\n"
	    "                     [-o PARAMS.safetensors]\n"
	    "       descent eval MODEL.yaml --params CKPT [--data-x F [--data-y F | "
	    "--label COL]]\n"
	    "       descent predict MODEL.yaml --params CKPT --input F(.npy|.csv|IDX)\n"
	    "                     -o OUT(.npy|.csv)\n"
	    "       descent plot LOG.csv -o PLOT.svg\n"
	    "       descent grad MODEL.yaml [--params P.safetensors] --inputs "
	    "B.safetensors\n"
	    "                    --out G.safetensors [--seed S] (no --inputs: a model "
	    "without data)\n"
	    "       descent compile MODEL.yaml -o OUT [--header OUT.h] [--batch B]\n"
	    "                    [--emit obj|asm|llvm|bc|shared] [--target TRIPLE] "
	    "[--cpu CPU]\n"
	    "                    [--prefix NAME]\n"
	    "       descent bench MODEL.yaml [--batch B] [--steps N] [--threads N] "
	    "[--profile]\n"
	    "       descent gradcheck MODEL.yaml [--batch B] [--seed S] [--params "
	    "P.safetensors]\n"
	    "                    [--tolerance T]\n"
	    "       descent ir MODEL.yaml [--stage "
	    "spec|graph|backward|optimized|kernels|llvm|asm]\n"
	    "                    [--fn forward|evaluate|grad|step|train_step] [--grad "
	    "PARAM]\n"
	    "                    [--format text|dot] [-o FILE(.txt|.dot|.svg|.png)] "
	    "[--stats]\n"
	    "                    [--batch B]\n"
	    "       descent --version   (and LLVM's, and the CPU code is made for)\n");
}

static int parse_int(const char *flag, const char *s, int64_t min, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || end == s || v < min) {
		fprintf(stderr, "descent: error: %s takes an integer >= %lld, got '%s'\n",
		        flag, (long long)min, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* An output that cannot be written (a missing directory, an empty path), would
 * overwrite a file the command reads, or another output: refused before anything runs
 * (train --log m.yaml made the model file the log; plot -o nodir/x.svg failed after
 * its work). The model's own data files are checked when the model is read
 * (cmd_train). */
/* A plot is SVG: a path with another extension (p.png got SVG bytes) is refused; one
 * without (/dev/stdout) is taken. */
int svg_path(const char *opt, const char *path)
{
	const char *ext = path_ext(path);
	if (!ext || !strcasecmp(ext, ".svg"))
		return 0;
	fprintf(stderr,
	        "descent: error: %s %s: plots are SVG; name the file .svg (and convert "
	        "it, with rsvg-convert or a browser, if another format is needed)\n",
	        opt, path);
	return -1;
}

static int clobbers(const Opts *o)
{
	const struct {
		const char *opt, *path;
	} outs[] = {{"-o/--out", o->out},
	            {"--header", o->header},
	            {"--report", o->report},
	            {"--log", o->log},
	            {"--plot", o->plot}},
	  ins[] = {{"", o->model},          {"--input", o->input},
	           {"--inputs", o->inputs}, {"--params", o->params},
	           {"--resume", o->resume}, {"--data-x", o->data_x},
	           {"--data-y", o->data_y}};
	if (o->plot && svg_path("--plot", o->plot) < 0)
		return -1;
	for (size_t i = 0; i < sizeof outs / sizeof *outs; i++) {
		if (!outs[i].path)
			continue;
		/* (in a --checkpoint-dir not there yet: train makes it first) */
		if (!(o->ckpt_dir && path_in_dir(outs[i].path, o->ckpt_dir)) &&
		    !can_write(outs[i].opt, outs[i].path, 0))
			return -1;
		for (size_t j = 0; j < sizeof ins / sizeof *ins; j++)
			if (ins[j].path && same_file(outs[i].path, ins[j].path)) {
				fprintf(
				    stderr,
				    "descent: error: %s %s would overwrite %s%s%s, which "
				    "this command reads\n",
				    outs[i].opt, outs[i].path, ins[j].opt, j ? " " : "",
				    ins[j].path);
				return -1;
			}
		for (size_t j = 0; j < i; j++)
			if (outs[j].path && same_file(outs[i].path, outs[j].path)) {
				fprintf(
				    stderr,
				    "descent: error: %s %s and %s %s are the same file\n",
				    outs[j].opt, outs[j].path, outs[i].opt, outs[i].path);
				return -1;
			}
	}
	return 0;
}

/* The options each command reads; any other is an error, not silently ignored (train
 * -o saved nothing before it meant the trained parameters). -O stands for -O0..3, -o
 * for --out too. */
static const struct {
	const char *cmd, *opts;
} takes[] = {
    {"train", " --epochs --batch --seed --lr --train-limit --test-limit --report -O -o "
              "--checkpoint-dir --checkpoint-every --resume --max-steps --log --plot "
              "--accumulate --validation-split --threads --check-numerics --steps "},
    {"eval", " --params --data-x --data-y --label --test-limit --batch -O "
             "--check-numerics --threads "},
    {"predict", " --params --input -o --label --batch -O --check-numerics --threads "},
    {"plot", " -o "},
    {"grad", " --params --inputs -o --seed -O --threads "},
    {"compile", " -o --header --batch --emit --target --cpu --prefix -O "},
    {"bench", " --batch --steps --threads --profile -O "},
    {"gradcheck", " --batch --seed --params --tolerance -O --threads "},
    {"ir", " --stage --fn --grad --format -o --stats --batch -O "},
};

/* Whether cmd (NULL: any command) takes option a */
static int takes_option(const char *cmd, const char *a)
{
	char key[64];
	int level = a[0] == '-' && a[1] == 'O' && a[2] >= '0' && a[2] <= '3' && !a[3];
	if (a[0] == '-' && a[1] == 'O' && !level) /* (-O alone, -O4: unknown) */
		return 0;
	snprintf(key, sizeof key, " %.60s ",
	         !strcmp(a, "--out") ? "-o"
	         : level             ? "-O"
	                             : a);
	for (size_t i = 0; i < sizeof takes / sizeof *takes; i++)
		if ((!cmd || !strcmp(takes[i].cmd, cmd)) && strstr(takes[i].opts, key))
			return 1;
	return 0;
}

static const char *options_of(const char *cmd)
{
	for (size_t i = 0; i < sizeof takes / sizeof *takes; i++)
		if (!strcmp(takes[i].cmd, cmd))
			return takes[i].opts;
	return "";
}

static int parse_args(int argc, char **argv, Opts *o)
{
	memset(o, 0, sizeof *o);
	o->epochs = o->batch = o->seed = o->steps = -1;
	o->max_steps = o->accumulate = o->ckpt_every = o->threads = -1;
	o->val_split = -1;
	o->opt_level = 3;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (takes_option(NULL, a) && !takes_option(argv[1], a)) {
			const char *its = options_of(argv[1]);
			fprintf(stderr,
			        "descent: error: %s takes no %s; its options:%.*s\n",
			        argv[1], a, (int)strlen(its) - 1, its);
			return -1;
		}
		int64_t *iv = !strcmp(a, "--epochs")             ? &o->epochs
		              : !strcmp(a, "--batch")            ? &o->batch
		              : !strcmp(a, "--seed")             ? &o->seed
		              : !strcmp(a, "--steps")            ? &o->steps
		              : !strcmp(a, "--train-limit")      ? &o->train_limit
		              : !strcmp(a, "--test-limit")       ? &o->test_limit
		              : !strcmp(a, "--max-steps")        ? &o->max_steps
		              : !strcmp(a, "--accumulate")       ? &o->accumulate
		              : !strcmp(a, "--checkpoint-every") ? &o->ckpt_every
		              : !strcmp(a, "--threads")          ? &o->threads
		                                                 : NULL;
		if (!strcmp(a, "--stats")) {
			o->stats = 1;
			continue;
		}
		if (!strcmp(a, "--check-numerics")) {
			o->check_numerics = 1;
			continue;
		}
		if (!strcmp(a, "--profile")) {
			o->profile = 1;
			continue;
		}
		if (!strncmp(a, "-O", 2) && a[2] >= '0' && a[2] <= '3' && !a[3]) {
			o->opt_level = a[2] - '0';
			continue;
		}
		const char **sv = !strcmp(a, "--report")           ? &o->report
		                  : !strcmp(a, "--fn")             ? &o->fn
		                  : !strcmp(a, "--params")         ? &o->params
		                  : !strcmp(a, "--inputs")         ? &o->inputs
		                  : !strcmp(a, "--out")            ? &o->out
		                  : !strcmp(a, "-o")               ? &o->out
		                  : !strcmp(a, "--header")         ? &o->header
		                  : !strcmp(a, "--emit")           ? &o->emit
		                  : !strcmp(a, "--target")         ? &o->target
		                  : !strcmp(a, "--cpu")            ? &o->cpu
		                  : !strcmp(a, "--prefix")         ? &o->prefix
		                  : !strcmp(a, "--stage")          ? &o->stage
		                  : !strcmp(a, "--grad")           ? &o->grad
		                  : !strcmp(a, "--format")         ? &o->format
		                  : !strcmp(a, "--resume")         ? &o->resume
		                  : !strcmp(a, "--checkpoint-dir") ? &o->ckpt_dir
		                  : !strcmp(a, "--log")            ? &o->log
		                  : !strcmp(a, "--plot")           ? &o->plot
		                  : !strcmp(a, "--data-x")         ? &o->data_x
		                  : !strcmp(a, "--data-y")         ? &o->data_y
		                  : !strcmp(a, "--input")          ? &o->input
		                  : !strcmp(a, "--label")          ? &o->label
		                                                   : NULL;
		if ((iv || sv || !strcmp(a, "--lr") || !strcmp(a, "--validation-split") ||
		     !strcmp(a, "--tolerance")) &&
		    !v) {
			fprintf(stderr, "descent: error: %s needs a value\n", a);
			return -1;
		}
		if (iv) {
			/* (--train-limit 0 was no limit, silently) */
			int one =
			    !strcmp(a, "--batch") || !strcmp(a, "--accumulate") ||
			    !strcmp(a, "--max-steps") ||
			    !strcmp(a, "--checkpoint-every") || !strcmp(a, "--threads") ||
			    !strcmp(a, "--train-limit") || !strcmp(a, "--test-limit");
			if (parse_int(a, v, one, iv) < 0)
				return -1;
			if (!strcmp(a, "--accumulate") &&
			    *iv > 1 << 16) { /* as the file's */
				fprintf(
				    stderr,
				    "descent: error: --accumulate takes 1 to 65536, got "
				    "'%s'\n",
				    v);
				return -1;
			}
			i++;
		} else if (sv) {
			*sv = argv[++i];
		} else if (!strcmp(a, "--lr")) {
			char *end;
			o->lr = strtod(v, &end);
			/* (as the float the step reads: 1e-46 is 0, 1e39 infinite), and
			 * at most what the model file's lr takes */
			double lo, hi;
			char open;
			hyper_range("lr", &lo, &hi, &open);
			if (*end || !(o->lr > 0 && o->lr <= hi) || !((float)o->lr > 0)) {
				fprintf(
				    stderr,
				    "descent: error: --lr takes a positive number up to "
				    "%g, got '%s'\n",
				    hi, v);
				return -1;
			}
			i++;
		} else if (!strcmp(a, "--tolerance")) {
			char *end;
			o->tolerance = strtod(v, &end);
			if (end == v || *end || !(o->tolerance > 0) ||
			    !isfinite(o->tolerance)) {
				fprintf(stderr,
				        "descent: error: --tolerance takes a positive "
				        "number, got '%s'\n",
				        v);
				return -1;
			}
			i++;
		} else if (!strcmp(a, "--validation-split")) {
			char *end;
			o->val_split = strtod(v, &end);
			if (end == v || *end ||
			    !(o->val_split >= 0 && o->val_split < 1)) {
				fprintf(stderr,
				        "descent: error: --validation-split takes a "
				        "fraction in [0, 1), "
				        "got '%s'\n",
				        v);
				return -1;
			}
			i++;
		} else if (a[0] == '-') {
			fprintf(stderr, "descent: error: unknown option '%s'\n", a);
			usage(stderr);
			return -1;
		} else if (!o->model) {
			o->model = a;
		} else {
			fprintf(stderr, "descent: error: unexpected argument '%s'\n", a);
			return -1;
		}
	}
	if (!o->model) {
		fprintf(stderr, "descent: error: %s needs %s\n", argv[1],
		        !strcmp(argv[1], "plot") ? "a log file (LOG.csv)"
		                                 : "a model file (MODEL.yaml)");
		usage(stderr);
		return -1;
	}
	if (o->ckpt_dir && !can_write("--checkpoint-dir", o->ckpt_dir, 1))
		return -1;
	if (o->threads > RT_MAX_THREADS) {
		fprintf(stderr, "descent: error: --threads takes 1 to %d, got %lld\n",
		        RT_MAX_THREADS, (long long)o->threads);
		return -1;
	}
	return clobbers(o);
}

/* Compiled code shares its large loops between threads; results do not depend on how
 * many. Training and inference take every core this process may run on, as PyTorch
 * does; bench measures one thread unless told (the targets are per core). */
static int start_threads(const char *cmd, const Opts *o)
{
	int n = 1;
	int runs = !strcmp(cmd, "train") || !strcmp(cmd, "eval") ||
	           !strcmp(cmd, "predict") || !strcmp(cmd, "grad") ||
	           !strcmp(cmd, "gradcheck");
	if (o->threads > 0) {
		n = (int)o->threads;
	} else if (runs) { /* the others run no compiled code, or measure one thread */
		cpu_set_t set;
		if (!sched_getaffinity(0, sizeof set, &set))
			n = CPU_COUNT(&set);
		n = n < 1 ? 1 : n > RT_MAX_THREADS ? RT_MAX_THREADS : n;
	}
	if (rt_set_threads(n) < 0) {
		fprintf(stderr, "descent: error: cannot start %d threads\n", n);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if ((!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) && argc > 2) {
		fprintf(stderr, "descent: error: %s takes nothing after it\n", argv[1]);
		return 2;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		/* host_cpu_text: "LLVM CPU FEATURES" */
		char llvm[64] = "?", cpu[64] = "?";
		sscanf(host_cpu_text(), "%63s %63s", llvm, cpu);
		printf(
		    "descent %s\nLLVM %s; this machine's CPU: %s (what code is compiled "
		    "for unless --cpu says otherwise)\n",
		    DESCENT_VERSION, llvm, cpu);
		return 0;
	}
	Opts o;
	int (*cmd)(const Opts *, Diags *, Arena *) =
	    !strcmp(argv[1], "train")       ? cmd_train
	    : !strcmp(argv[1], "grad")      ? cmd_grad
	    : !strcmp(argv[1], "eval")      ? cmd_eval
	    : !strcmp(argv[1], "predict")   ? cmd_predict
	    : !strcmp(argv[1], "plot")      ? cmd_plot
	    : !strcmp(argv[1], "compile")   ? cmd_compile
	    : !strcmp(argv[1], "bench")     ? cmd_bench
	    : !strcmp(argv[1], "gradcheck") ? cmd_gradcheck
	    : !strcmp(argv[1], "ir")        ? cmd_ir
	                                    : NULL;
	if (!cmd) {
		fprintf(stderr, "descent: error: unknown command '%s'\n", argv[1]);
		usage(stderr);
		return 2;
	}
	if (parse_args(argc, argv, &o) < 0 || start_threads(argv[1], &o) < 0)
		return 2;
	Diags d = {0};
	Arena *A = arena_new();
	int status = cmd(&o, &d, A);
	diag_print(&d, stderr);
	if (d.nerr)
		status = 1;
	diags_free(&d);
	arena_free(A);
	return status;
}
