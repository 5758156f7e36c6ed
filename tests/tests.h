/* Shared declarations for the CUnit suites. */
#ifndef TESTS_H
#define TESTS_H
#include <CUnit/CUnit.h>

#define SUITE(name) void suite_##name(void);
#include "suites.h"
#undef SUITE

/* Adds a suite with the given tests (a NULL-terminated CU_TestInfo array). */
void add_suite(const char *name, CU_TestInfo *tests);

/* Path of a file in the source tree, e.g. src_path("models/fashion_mlp.yaml"). */
const char *src_path(const char *rel);
#endif
