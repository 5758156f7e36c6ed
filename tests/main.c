/* The test runner: registers every suite of suites.h and runs them all, or only the
 * ones named on the command line. Exits non-zero if any assertion failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

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

const char *src_path(const char *rel)
{
	static char buf[8][4096];
	static int k;
	char *b = buf[k++ % 8];
	snprintf(b, sizeof buf[0], "%s/%s", DESCENT_SOURCE_DIR, rel);
	return b;
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
