/* The test runner: registers every suite of suites.h and runs them all, or only the
 * ones named on the command line. Exits non-zero if any assertion failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/wait.h>

#include <CUnit/Basic.h>

#include "dc.h"
#include "tests.h"

void add_suite(const char *name, CU_TestInfo *tests)
{
	CU_pSuite s = CU_add_suite(name, NULL, NULL);
	if (!s) {
		fprintf(stderr, "cannot add suite %s: %s\n", name, CU_get_error_msg());
		exit(2);
	}
	for (CU_TestInfo *t = tests; t->pName; t++)
		CU_add_test(s, t->pName, t->pTestFunc);
}

int shell(const char *line, char *out, size_t len)
{
	FILE *p = popen(line, "r");
	CU_ASSERT_FATAL(p != NULL);
	size_t n = fread(out, 1, len - 1, p);
	out[n] = 0;
	int status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void temp_file(char *dir, char *path, size_t len, const char *name, const char *text)
{
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(path, len, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

const char *src_path(const char *rel)
{
	static char buf[8][4096];
	static int k;
	char *b = buf[k++ % 8];
	snprintf(b, sizeof buf[0], "%s/%s", DESCENT_SOURCE_DIR, rel);
	return b;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

Compiled *compile_path(Arena *A, Diags *d, const char *path, int64_t batch,
                       const CodegenOpts *o, Model **mp)
{
	Model *m = model_load(A, d, path);
	if (!m) {
		diag_print(d, stderr);
		return NULL;
	}
	if (mp)
		*mp = m;
	Compiled *c = compile_model(d, m, batch ? batch : m->batch > 0 ? m->batch : 0, o);
	if (!c)
		diag_print(d, stderr);
	return c;
}

Jit *jit_graph(Graph *g, const CodegenOpts *o, rt_fn *fns, int64_t *nwork)
{
	ObjCode obj;
	Diags d = {0};
	CU_ASSERT_FATAL(cg_compile(g, o, &obj, nwork, NULL) == 0);
	Jit *j = jit_load(&d, &obj, fns);
	objcode_free(&obj);
	if (!j)
		diag_print(&d, stderr);
	diags_free(&d);
	CU_ASSERT_FATAL(j != NULL);
	return j;
}

int yaml_files(const char *rel, char (*paths)[4096], const char **list, int max)
{
	DIR *dir = opendir(src_path(rel));
	struct dirent *e;
	int n = 0;
	while (dir && (e = readdir(dir)) && n < max) {
		size_t len = strlen(e->d_name);
		if (len > 5 && !strcmp(e->d_name + len - 5, ".yaml")) {
			snprintf(paths[n], sizeof paths[n], "%s/%s", src_path(rel),
			         e->d_name);
			list[n] = paths[n];
			n++;
		}
	}
	if (dir)
		closedir(dir);
	qsort(list, (size_t)n, sizeof *list, by_name);
	list[n] = NULL;
	return n;
}

const char *const *model_files(void)
{
	static char paths[64][4096];
	static const char *list[65];
	if (!list[0])
		yaml_files("models", paths, list, 64);
	return list;
}

void random_inputs(rt_session *s, rt_rng *rng)
{
	const rt_program *p = s->prog;
	int64_t classes = p->io_output >= 0
	                      ? p->io[p->io_output].shape[p->io[p->io_output].rank - 1]
	                      : 2;
	for (int k = 0; k < p->nio; k++)
		for (int64_t i = 0; p->io[k].kind == RT_IO_INPUT && i < p->io[k].numel;
		     i++)
			if (p->io[k].dtype == RT_I32)
				((int32_t *)s->io[k])[i] =
				    (int32_t)rt_rng_below(rng, (uint64_t)classes);
			else
				((float *)s->io[k])[i] =
				    k == p->io_weight ? 1.0f : (float)rt_rng_uniform(rng);
}

int has_error(const Diags *d, const char *msg, int line, int col)
{
	for (int i = 0; i < d->n; i++) {
		const Diag *g = &d->v[i];
		if (g->sev == SEV_ERROR && strstr(g->msg, msg) && g->loc.line == line &&
		    g->loc.col == col && g->loc.file && !strcmp(g->loc.file, "t.yaml"))
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	struct {
		const char *name;
		void (*add)(void);
	} suites[] = {
#define SUITE(n) {#n, suite_##n},
#include "suites.h"
#undef SUITE
	};
	int nsuites = sizeof suites / sizeof suites[0];
	for (int i = 0; i < nsuites; i++) {
		int want = argc < 2;
		for (int j = 1; j < argc; j++)
			want |= !strcmp(argv[j], suites[i].name);
		if (want)
			suites[i].add();
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	int failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
