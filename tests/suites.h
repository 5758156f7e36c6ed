/* Every CUnit suite, one line each: SUITE(name) registers suite_<name>() from
 * tests/test_<name>.c. ctest runs each as its own test (tests/CMakeLists.txt). */
SUITE(spec)
SUITE(runtime)
SUITE(shape)
SUITE(grad)
SUITE(e2e)
SUITE(cli)
SUITE(optim)
SUITE(expr)
