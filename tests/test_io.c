/* Tests of the file formats users already have: safetensors, NumPy .npy and CSV. Each
 * format gets round trips through the runtime's own writer (or hand-written files for
 * what only other writers produce) and a table of broken files, built byte by byte
 * into a temporary directory, each of which must fail with a message that names the
 * file and says what is wrong. The crash-safe writer is checked for what a failed save
 * leaves behind: the old file intact and no temporary file. When python3 has numpy,
 * a file written by numpy itself is loaded too. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "descent/runtime.h"
#include "tests.h"

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- a temporary directory per test ---- */

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
	static char buf[8][256];
	static int k;
	if (!tmpdir[0]) {
		strcpy(tmpdir, "/tmp/descent_io_XXXXXX");
		CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(tmpdir));
	}
	char *b = buf[k++ % 8];
	snprintf(b, sizeof buf[0], "%s/%s", tmpdir, name);
	return b;
}

static void rm_tree(const char *path)
{
	struct stat st;
	if (lstat(path, &st))
		return;
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			char sub[512];
			snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
			rm_tree(sub);
		}
		if (d)
			closedir(d);
		rmdir(path);
	} else
		unlink(path);
}

static void tmp_cleanup(void)
{
	if (tmpdir[0])
		rm_tree(tmpdir);
	tmpdir[0] = 0;
}

/* Entries of a directory, not counting . and .. */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static void write_bytes(const char *path, const void *b, size_t n)
{
	FILE *f = fopen(path, "wb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(fwrite(b, 1, n, f), n);
	fclose(f);
}

/* The whole file into buf[cap]; its length, or -1. */
static long read_bytes(const char *path, void *buf, size_t cap)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	long n = (long)fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

/* The message starts with the file's name and contains why. */
static int check_msg(const char *err, const char *path, const char *why)
{
	if (strncmp(err, path, strlen(path)) == 0 && strstr(err, why))
		return 1;
	printf("\n  %s: message \"%s\" lacks \"%s\" or the file name\n", path, err, why);
	return 0;
}

/* ---- safetensors ---- */

static void test_st_round_trip_dtypes_ranks_and_metadata(void)
{
	float f32[6] = {1, -2, 3.5f, 4, 5, 6e-8f};
	double f64 = 3.25;
	int32_t i32[4] = {-1, 0, 1, INT32_MAX};
	int64_t i64[4] = {INT64_MIN, -5, 7, INT64_MAX};
	uint8_t u8[6] = {0, 1, 2, 253, 254, 255};
	uint16_t f16[2] = {0x3c00, 0xc000}, bf16[3] = {0x3f80, 0x4000, 0xbf80};
	int8_t i8[2] = {-128, 127};
	int16_t i16[2] = {-32768, 32767};
	uint8_t mask[3] = {1, 0, 1};
	const char *odd = "caf\xc3\xa9 \"q\" \\ \n\t\x01 \xf0\x9f\x98\x80";
	rt_st_tensor t[] = {
	    {"fc1.weight", RT_ST_F32, 2, {2, 3}, f32, sizeof f32},
	    {"scale", RT_ST_F64, 0, {0}, &f64, sizeof f64},
	    {"ids", RT_ST_I32, 1, {4}, i32, sizeof i32},
	    {"big", RT_ST_I64, 3, {1, 2, 2}, i64, sizeof i64},
	    {"pixels", RT_ST_U8, 4, {1, 2, 1, 3}, u8, sizeof u8},
	    {"half", RT_ST_F16, 1, {2}, f16, sizeof f16},
	    {"brain", RT_ST_BF16, 1, {3}, bf16, sizeof bf16},
	    {"bytes", RT_ST_I8, 1, {2}, i8, sizeof i8},
	    {"shorts", RT_ST_I16, 2, {2, 1}, i16, sizeof i16},
	    {"mask", RT_ST_BOOL, 1, {3}, mask, sizeof mask},
	    {"empty", RT_ST_F32, 2, {0, 5}, NULL, 0},
	    {odd, RT_ST_U8, 1, {1}, u8, 1},
	};
	const char *mk[] = {"format", "note"};
	const char *mv[] = {"pt", "line1\nline2 \"quoted\" caf\xc3\xa9"};
	const char *path = tmp_path("model.safetensors");
	char err[512] = "";
	int rc = rt_st_save(path, t, (int)LEN(t), mk, mv, 2, err, sizeof err);
	if (rc)
		printf("\n  %s\n", err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);

	/* the data section starts at a multiple of 8 */
	static unsigned char raw[4096];
	long size = read_bytes(path, raw, sizeof raw);
	CU_ASSERT_FATAL(size > 8);
	uint64_t hlen = 0;
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | raw[i];
	CU_ASSERT_EQUAL((8 + hlen) % 8, 0);
	CU_ASSERT_EQUAL(raw[8], '{');

	rt_st_file f;
	rc = rt_st_load(path, &f, err, sizeof err);
	if (rc)
		printf("\n  %s\n", err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_EQUAL_FATAL(f.n, (int)LEN(t));
	for (int i = 0; i < f.n; i++) {
		const rt_st_tensor *a = &f.t[i], *b = &t[i];
		CU_ASSERT_STRING_EQUAL(a->name, b->name);
		CU_ASSERT_EQUAL(a->dtype, b->dtype);
		CU_ASSERT_EQUAL(a->rank, b->rank);
		for (int d = 0; d < b->rank; d++)
			CU_ASSERT_EQUAL(a->shape[d], b->shape[d]);
		CU_ASSERT_EQUAL(a->nbytes, b->nbytes);
		CU_ASSERT(b->nbytes == 0 || memcmp(a->data, b->data, b->nbytes) == 0);
		CU_ASSERT_PTR_EQUAL(rt_st_find(&f, b->name), a);
	}
	CU_ASSERT_EQUAL(f.nmeta, 2);
	CU_ASSERT_STRING_EQUAL(rt_st_meta(&f, "format"), "pt");
	CU_ASSERT_STRING_EQUAL(rt_st_meta(&f, "note"), mv[1]);
	CU_ASSERT_PTR_NULL(rt_st_meta(&f, "missing"));
	CU_ASSERT_PTR_NULL(rt_st_find(&f, "fc1"));
	CU_ASSERT_EQUAL(rt_st_dtype_size(RT_ST_BF16), 2);
	CU_ASSERT_EQUAL(rt_st_dtype_size(RT_ST_I64), 8);
	CU_ASSERT_EQUAL(rt_st_dtype_size((rt_st_dtype)99), 0);
	rt_st_free(&f);
	CU_ASSERT_PTR_NULL(f.mem);
	CU_ASSERT_EQUAL(f.n, 0);

	/* no tensors, no metadata: the header is {} padded to 8 */
	rc = rt_st_save(path, NULL, 0, NULL, NULL, 0, err, sizeof err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_EQUAL(read_bytes(path, raw, sizeof raw), 16);
	CU_ASSERT(memcmp(raw + 8, "{}      ", 8) == 0);
	CU_ASSERT_EQUAL_FATAL(rt_st_load(path, &f, err, sizeof err), 0);
	CU_ASSERT(f.n == 0 && f.nmeta == 0);
	rt_st_free(&f);
	tmp_cleanup();
}

/* The bytes the reference implementation writes for the same tensors (its own test
 * vectors): compact JSON, keys in this order, spaces up to a multiple of 8. */
static void test_st_save_matches_reference_bytes(void)
{
	float v[6] = {0, 1, 2, 3, 4, 5};
	rt_st_tensor t = {"attn.0", RT_ST_F32, 3, {1, 2, 3}, v, sizeof v};
	const char *path = tmp_path("ref.safetensors");
	char err[256] = "";
	static unsigned char got[256], want[256];
	const char *h =
	    "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":"
	    "[0,24]}}";
	memcpy(want, "\x40\0\0\0\0\0\0\0", 8);
	memset(want + 8, ' ', 64);
	memcpy(want + 8, h, strlen(h));
	memcpy(want + 72, v, sizeof v);
	CU_ASSERT_EQUAL_FATAL(rt_st_save(path, &t, 1, NULL, NULL, 0, err, sizeof err), 0);
	CU_ASSERT_EQUAL(read_bytes(path, got, sizeof got), 96);
	CU_ASSERT(memcmp(got, want, 96) == 0);

	const char *mk[] = {"framework"}, *mv[] = {"pt"};
	h = "{\"__metadata__\":{\"framework\":\"pt\"}}";
	memcpy(want, "\x28\0\0\0\0\0\0\0", 8);
	memset(want + 8, ' ', 40);
	memcpy(want + 8, h, strlen(h));
	CU_ASSERT_EQUAL_FATAL(rt_st_save(path, NULL, 0, mk, mv, 1, err, sizeof err), 0);
	CU_ASSERT_EQUAL(read_bytes(path, got, sizeof got), 48);
	CU_ASSERT(memcmp(got, want, 48) == 0);
	tmp_cleanup();
}

/* A file as other writers make it: escapes, spaces, keys in another order. */
static void test_st_loads_escapes_and_padding(void)
{
	const char *h = " {\"b\\u00e9ta\" : {\"shape\": [2], \"data_offsets\": [0, 8], "
	                "\"dtype\": \"F32\"},\n\t\"\\ud83d\\ude00\":{\"dtype\":\"U8\","
	                "\"shape\":[],\"data_offsets\":[8,9]}, \"__metadata__\": "
	                "{\"k\\\"\\n\": \"v\\\\\\/\\u0041\"}}      ";
	unsigned char b[512];
	size_t hl = strlen(h), n = 0;
	for (int i = 0; i < 8; i++)
		b[n++] = (unsigned char)((uint64_t)hl >> 8 * i);
	memcpy(b + n, h, hl);
	n += hl;
	float v[2] = {1.5f, -2};
	memcpy(b + n, v, 8);
	n += 8;
	b[n++] = 200;
	const char *path = tmp_path("escapes.safetensors");
	write_bytes(path, b, n);
	rt_st_file f;
	char err[512] = "";
	int rc = rt_st_load(path, &f, err, sizeof err);
	if (rc)
		printf("\n  %s\n", err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_EQUAL_FATAL(f.n, 2);
	const rt_st_tensor *beta = rt_st_find(&f, "b\xc3\xa9ta");
	const rt_st_tensor *smile = rt_st_find(&f, "\xf0\x9f\x98\x80");
	CU_ASSERT_PTR_NOT_NULL_FATAL(beta);
	CU_ASSERT_PTR_NOT_NULL_FATAL(smile);
	CU_ASSERT(beta->dtype == RT_ST_F32 && beta->rank == 1 && beta->shape[0] == 2);
	CU_ASSERT(memcmp(beta->data, v, 8) == 0);
	CU_ASSERT(smile->dtype == RT_ST_U8 && smile->rank == 0 && smile->nbytes == 1);
	CU_ASSERT_EQUAL(*(const unsigned char *)smile->data, 200);
	CU_ASSERT_STRING_EQUAL(rt_st_meta(&f, "k\"\n"), "v\\/A");
	rt_st_free(&f);

	/* "__metadata__": null, which the reference implementation accepts */
	const char *nul =
	    "{\"__metadata__\": null, \"x\": {\"dtype\": \"BOOL\", \"shape\": "
	    "[], \"data_offsets\": [0, 1]}}";
	n = 0;
	hl = strlen(nul);
	for (int i = 0; i < 8; i++)
		b[n++] = (unsigned char)((uint64_t)hl >> 8 * i);
	memcpy(b + n, nul, hl);
	n += hl;
	b[n++] = 1;
	write_bytes(path, b, n);
	CU_ASSERT_EQUAL_FATAL(rt_st_load(path, &f, err, sizeof err), 0);
	CU_ASSERT(f.n == 1 && f.nmeta == 0 && f.t[0].dtype == RT_ST_BOOL);
	rt_st_free(&f);
	tmp_cleanup();
}

typedef struct BadSt {
	const char *name;
	const char *header;
	int ndata;       /* data bytes after the header */
	int64_t hlen;    /* the declared header length; -1: the real one */
	int64_t total;   /* bytes of the file actually written; -1: all */
	const char *why; /* expected in the message */
} BadSt;

#define W(dtype, shape, offs)                                                            \
	"{\"w\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offs "}" \
	"}"
#define U8(name, offs)                                                                   \
	"\"" name "\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":" offs "}"

static const BadSt bad_st[] = {
    {"short", "", 0, -1, 5, "file is 5 bytes long, too short"},
    {"hlen_past_end", "{}", 0, 1000, -1,
     "header length 1000 is larger than the rest of the file (2 bytes)"},
    {"hlen_huge", "{}", 0, (int64_t)1 << 62, -1, "is larger than the rest of the file"},
    {"empty_header", "", 0, -1, -1,
     "header is not a JSON object, found the end of the header"},
    {"not_object", "[1, 2]", 0, -1, -1,
     "header is not a JSON object, found '[' at byte 0 of the header"},
    {"missing_colon", "{\"a\" {}}", 0, -1, -1,
     "not valid JSON: expected ':' after a key, found '{' at byte 5"},
    {"trailing_comma", "{" U8("a", "[0,1]") ",}", 1, -1, -1,
     "not valid JSON: expected a string, found '}' at byte"},
    {"missing_comma", "{" U8("a", "[0,1]") " " U8("b", "[1,2]") "}", 2, -1, -1,
     "expected ',' or '}' after a tensor, found '\"'"},
    {"bad_escape", "{\"a\\q\":{}}", 0, -1, -1, "invalid escape in a string, found '\\'"},
    {"lone_surrogate", "{\"\\ud800x\":{}}", 0, -1, -1, "without a low surrogate"},
    {"lone_low_surrogate", "{\"\\udc00\":{}}", 0, -1, -1, "lone low surrogate"},
    {"short_unicode", "{\"\\u12\":{}}", 0, -1, -1, "4 hex digits"},
    {"bad_utf8", "{\"\xc3\x28\":{}}", 0, -1, -1,
     "invalid UTF-8 in a string, found byte 0xc3 at byte 2"},
    {"control_char", "{\"a\nb\":{}}", 0, -1, -1, "control character in a string"},
    {"nul_escape", "{\"a\\u0000\":{}}", 0, -1, -1, "\\u0000 (NUL)"},
    {"unterminated", "{\"abc", 0, -1, -1, "unterminated string"},
    {"garbage_after", "{} x", 0, -1, -1,
     "expected only spaces after the header's object, found 'x' at byte 3"},
    {"nul_padding", "{}\0\0", 0, -1, -1, "found byte 0x00 at byte 2"},
    {"tensor_not_object", "{\"a\": 5}", 0, -1, -1,
     "tensor 'a': expected an object with dtype, shape and data_offsets, found '5'"},
    {"tensor_null", "{\"a\": null}", 0, -1, -1, "tensor 'a': expected an object"},
    {"unknown_dtype", W("C64", "[1]", "[0,8]"), 8, -1, -1,
     "tensor 'w': dtype 'C64' is not supported (supported: F32,"},
    {"dtype_not_string", "{\"w\":{\"dtype\":4}}", 0, -1, -1,
     "tensor 'w': dtype must be a string, found '4'"},
    {"negative_dim", W("F32", "[-1]", "[0,4]"), 4, -1, -1,
     "tensor 'w': shape entry must be a non-negative integer, found -1"},
    {"float_dim", W("F32", "[2.5]", "[0,4]"), 4, -1, -1,
     "tensor 'w': shape entry must be a non-negative integer, found 2.5"},
    {"exponent_dim", W("F32", "[1e2]", "[0,4]"), 4, -1, -1, "found 1e2"},
    {"bad_number", W("F32", "[1.]", "[0,4]"), 4, -1, -1, "expected a digit after '.'"},
    {"string_dim", W("F32", "[\"2\"]", "[0,8]"), 8, -1, -1,
     "shape entry must be a non-negative integer, found '\"'"},
    {"shape_not_array", W("F32", "true", "[0,4]"), 4, -1, -1,
     "tensor 'w': shape must be an array of integers, found 't'"},
    {"rank7", W("F32", "[1,1,1,1,1,1,1]", "[0,4]"), 4, -1, -1,
     "tensor 'w' has more than 6 dimensions"},
    {"offsets_three", W("U8", "[4]", "[0,4,8]"), 8, -1, -1,
     "tensor 'w': data_offsets must be two integers [begin, end]"},
    {"offsets_one", W("U8", "[4]", "[4]"), 4, -1, -1,
     "data_offsets must be two integers"},
    {"offsets_reversed", W("F32", "[1]", "[8,4]"), 8, -1, -1,
     "tensor 'w': data_offsets [8, 4] begin after they end"},
    {"offset_too_large", W("U8", "[1]", "[0,99999999999999999999]"), 1, -1, -1,
     "tensor 'w': data_offsets entry 99999999999999999999 at byte"},
    {"size_mismatch", W("F32", "[2]", "[0,4]"), 4, -1, -1,
     "tensor 'w' has shape [2] of F32 (8 bytes) but its data_offsets [0, 4] span 4 "
     "bytes"},
    {"size_overflow", W("I64", "[4294967296,4294967296,16]", "[0,0]"), 0, -1, -1,
     "tensor 'w': shape [4294967296, 4294967296, 16] of I64 is too large"},
    {"out_of_bounds", W("F32", "[2]", "[0,8]"), 4, -1, -1,
     "tensor 'w': data_offsets [0, 8] are outside the data section (4 bytes)"},
    {"gap", "{" U8("a", "[0,1]") "," U8("b", "[2,3]") "}", 3, -1, -1,
     "gap in the data section between tensor 'a' (ends at 1) and tensor 'b' "
     "(begins at 2)"},
    {"overlap",
     "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
     "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}",
     3, -1, -1,
     "tensor 'b' (bytes 1 to 3 of the data section) overlaps tensor 'a' (which ends "
     "at 2)"},
    {"first_not_at_zero", "{" U8("a", "[1,2]") "}", 2, -1, -1,
     "tensor 'a' begins at byte 1 of the data section, not at 0"},
    {"uncovered_tail", "{" U8("a", "[0,1]") "}", 3, -1, -1,
     "2 bytes at the end of the data section belong to no tensor (the last one, "
     "'a', ends at 1 of 3)"},
    {"data_without_tensors", "{}", 4, -1, -1,
     "4 bytes of data belong to no tensor (the header lists none)"},
    {"duplicate_name", "{" U8("a", "[0,1]") "," U8("a", "[1,2]") "}", 2, -1, -1,
     "tensor name 'a' appears twice in the header"},
    {"duplicate_key", "{\"w\":{\"dtype\":\"U8\",\"dtype\":\"U8\"}}", 0, -1, -1,
     "tensor 'w': key 'dtype' appears twice"},
    {"unknown_key",
     "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"foo\":1}}", 1, -1,
     -1, "tensor 'w': unknown key 'foo' at byte"},
    {"missing_dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, -1, -1,
     "tensor 'w' has no dtype"},
    {"missing_offsets", "{\"w\":{\"shape\":[1],\"dtype\":\"U8\"}}", 1, -1, -1,
     "tensor 'w' has no data_offsets"},
    {"meta_not_object", "{\"__metadata__\": []}", 0, -1, -1,
     "__metadata__ must be an object of strings, found '['"},
    {"meta_not_string", "{\"__metadata__\": {\"k\": 1}}", 0, -1, -1,
     "__metadata__ entry 'k' must be a string, found '1'"},
    {"meta_twice", "{\"__metadata__\": {}, \"__metadata__\": {}}", 0, -1, -1,
     "__metadata__ appears twice in the header (again at byte 21)"},
    {"meta_duplicate_key", "{\"__metadata__\": {\"k\": \"1\", \"k\": \"2\"}}", 0, -1, -1,
     "__metadata__ key 'k' appears twice"},
};

static void test_st_rejects_corrupt_files(void)
{
	static unsigned char b[1024];
	for (size_t i = 0; i < LEN(bad_st); i++) {
		const BadSt *c = &bad_st[i];
		/* the nul_padding header holds NULs: its length is written out */
		size_t hl = !strcmp(c->name, "nul_padding") ? 4 : strlen(c->header),
		       n = 0;
		uint64_t declared = c->hlen < 0 ? hl : (uint64_t)c->hlen;
		for (int k = 0; k < 8; k++)
			b[n++] = (unsigned char)(declared >> 8 * k);
		memcpy(b + n, c->header, hl);
		n += hl;
		for (int k = 0; k < c->ndata; k++)
			b[n++] = (unsigned char)k;
		if (c->total >= 0)
			n = (size_t)c->total;
		const char *path = tmp_path(c->name);
		write_bytes(path, b, n);
		rt_st_file f;
		char err[512] = "";
		CU_ASSERT_EQUAL(rt_st_load(path, &f, err, sizeof err), -1);
		CU_ASSERT(f.n == 0 && f.t == NULL && f.mem == NULL);
		if (!check_msg(err, path, c->why))
			CU_FAIL("safetensors error message");
	}
	rt_st_file f;
	char err[512] = "";
	const char *path = tmp_path("missing.safetensors");
	CU_ASSERT_EQUAL(rt_st_load(path, &f, err, sizeof err), -1);
	CU_ASSERT(check_msg(err, path, "cannot open: No such file"));
	CU_ASSERT_EQUAL(rt_st_load(tmpdir, &f, err, sizeof err), -1);
	CU_ASSERT(check_msg(err, tmpdir, "not a regular file"));
	tmp_cleanup();
}

/* A header length over 100 MB in a file that is long enough: a sparse file. */
static void test_st_rejects_header_over_100mb(void)
{
	const char *path = tmp_path("huge.safetensors");
	unsigned char len[8] = {0};
	uint64_t h = 150000000;
	for (int i = 0; i < 8; i++)
		len[i] = (unsigned char)(h >> 8 * i);
	write_bytes(path, len, 8);
	CU_ASSERT_EQUAL_FATAL(truncate(path, 200000000), 0);
	rt_st_file f;
	char err[512] = "";
	CU_ASSERT_EQUAL(rt_st_load(path, &f, err, sizeof err), -1);
	CU_ASSERT(
	    check_msg(err, path, "header length 150000000 is over the 100 MB limit"));
	tmp_cleanup();
}

static void test_st_save_rejects_bad_tensors(void)
{
	float v[2] = {1, 2};
	const char *path = tmp_path("bad.safetensors");
	struct {
		rt_st_tensor t[2];
		int n;
		const char *why;
	} cases[] = {
	    {{{"a", RT_ST_F32, 1, {2}, v, 8}, {"a", RT_ST_F32, 1, {2}, v, 8}},
	     2,
	     "tensor name 'a' appears twice"},
	    {{{"__metadata__", RT_ST_F32, 1, {2}, v, 8}},
	     1,
	     "tensor 0: name '__metadata__' is reserved"},
	    {{{"\xff", RT_ST_F32, 1, {2}, v, 8}}, 1, "tensor 0: name is not valid UTF-8"},
	    {{{NULL, RT_ST_F32, 1, {2}, v, 8}}, 1, "tensor 0: name is NULL"},
	    {{{"a", RT_ST_F32, 1, {2}, v, 4}},
	     1,
	     "tensor 'a': nbytes is 4 but shape [2] of F32 takes 8 bytes"},
	    {{{"a", RT_ST_F32, 7, {1, 1, 1, 1, 1, 1}, v, 4}},
	     1,
	     "rank 7 is not between 0 and 6"},
	    {{{"a", RT_ST_F32, 1, {-2}, v, 8}}, 1, "dimension 1 is negative"},
	    {{{"a", (rt_st_dtype)42, 1, {2}, v, 8}}, 1, "invalid dtype 42"},
	    {{{"a", RT_ST_F32, 1, {2}, NULL, 8}}, 1, "data is NULL"},
	};
	char err[512];
	for (size_t i = 0; i < LEN(cases); i++) {
		err[0] = 0;
		CU_ASSERT_EQUAL(rt_st_save(path, cases[i].t, cases[i].n, NULL, NULL, 0,
		                           err, sizeof err),
		                -1);
		CU_ASSERT(check_msg(err, path, cases[i].why));
	}
	const char *mk[] = {"k", "k"}, *mv[] = {"1", "2"};
	rt_st_tensor t = {"a", RT_ST_F32, 1, {2}, v, 8};
	CU_ASSERT_EQUAL(rt_st_save(path, &t, 1, mk, mv, 2, err, sizeof err), -1);
	CU_ASSERT(check_msg(err, path, "__metadata__ key 'k' appears twice"));
	CU_ASSERT_EQUAL(count_entries(tmpdir), 0); /* nothing was written */
	tmp_cleanup();
}

static void test_st_save_into_missing_directory_fails_cleanly(void)
{
	float v[2] = {1, 2};
	rt_st_tensor t = {"a", RT_ST_F32, 1, {2}, v, 8};
	const char *path = tmp_path("nope/model.safetensors");
	char err[512] = "";
	CU_ASSERT_EQUAL(rt_st_save(path, &t, 1, NULL, NULL, 0, err, sizeof err), -1);
	CU_ASSERT(check_msg(err, path, "cannot create temporary file"));
	CU_ASSERT(check_msg(err, path, "No such file or directory"));
	CU_ASSERT_EQUAL(count_entries(tmpdir), 0);
	tmp_cleanup();
}

/* A save that fails at the rename (the path is a directory) or before writing leaves
 * the old file as it was and no temporary file behind. */
static void test_st_failed_save_keeps_old_file_and_no_temp(void)
{
	float v[2] = {1, 2}, w[2] = {3, 4};
	rt_st_tensor t = {"a", RT_ST_F32, 1, {2}, v, 8};
	const char *path = tmp_path("model.safetensors");
	char err[512] = "";
	CU_ASSERT_EQUAL_FATAL(rt_st_save(path, &t, 1, NULL, NULL, 0, err, sizeof err), 0);
	static unsigned char before[256], after[256];
	long n = read_bytes(path, before, sizeof before);
	CU_ASSERT_FATAL(n > 8);

	/* overwriting works and replaces the whole file */
	rt_st_tensor t2 = {"b", RT_ST_F32, 1, {2}, w, 8};
	CU_ASSERT_EQUAL_FATAL(rt_st_save(path, &t2, 1, NULL, NULL, 0, err, sizeof err),
	                      0);
	rt_st_file f;
	CU_ASSERT_EQUAL_FATAL(rt_st_load(path, &f, err, sizeof err), 0);
	CU_ASSERT(f.n == 1 && !strcmp(f.t[0].name, "b") && !memcmp(f.t[0].data, w, 8));
	rt_st_free(&f);
	CU_ASSERT_EQUAL_FATAL(rt_st_save(path, &t, 1, NULL, NULL, 0, err, sizeof err), 0);
	CU_ASSERT_EQUAL(count_entries(tmpdir), 1);

	/* invalid input: nothing is written */
	t2.nbytes = 4;
	CU_ASSERT_EQUAL(rt_st_save(path, &t2, 1, NULL, NULL, 0, err, sizeof err), -1);
	CU_ASSERT_EQUAL(read_bytes(path, after, sizeof after), n);
	CU_ASSERT(memcmp(before, after, (size_t)n) == 0);

	/* the rename fails: the target is a directory */
	const char *dir = tmp_path("dir.safetensors");
	CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0755), 0);
	CU_ASSERT_EQUAL(rt_st_save(dir, &t, 1, NULL, NULL, 0, err, sizeof err), -1);
	CU_ASSERT(check_msg(err, dir, "cannot rename temporary file"));
	CU_ASSERT(check_msg(err, dir, "Is a directory"));
	CU_ASSERT_EQUAL(count_entries(tmpdir), 2); /* model.safetensors, dir */
	CU_ASSERT_EQUAL(count_entries(dir), 0);
	CU_ASSERT_EQUAL(read_bytes(path, after, sizeof after), n);
	CU_ASSERT(memcmp(before, after, (size_t)n) == 0);
	tmp_cleanup();
}

static void test_write_atomic_joins_parts(void)
{
	const char *path = tmp_path("parts");
	const void *parts[] = {"abc", NULL, "", "defg"};
	size_t sizes[] = {3, 0, 0, 4};
	char err[256] = "", got[16];
	CU_ASSERT_EQUAL_FATAL(rt_write_atomic(path, parts, sizes, 4, err, sizeof err), 0);
	CU_ASSERT_EQUAL(read_bytes(path, got, sizeof got), 7);
	CU_ASSERT(memcmp(got, "abcdefg", 7) == 0);
	CU_ASSERT_EQUAL(count_entries(tmpdir), 1);
	tmp_cleanup();
	/* a device is written as it is: a temporary file renamed over /dev/null (as
	 * root) replaced the device with a file */
	struct stat st;
	CU_ASSERT_EQUAL(rt_write_atomic("/dev/null", parts, sizes, 4, err, sizeof err),
	                0);
	CU_ASSERT(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode));
	/* and a pipe, in order */
	int fds[2];
	CU_ASSERT_FATAL(pipe(fds) == 0);
	char name[64];
	snprintf(name, sizeof name, "/dev/fd/%d", fds[1]);
	CU_ASSERT_EQUAL(rt_write_atomic(name, parts, sizes, 4, err, sizeof err), 0);
	close(fds[1]);
	CU_ASSERT_EQUAL(read(fds[0], got, sizeof got), 7);
	CU_ASSERT(memcmp(got, "abcdefg", 7) == 0);
	close(fds[0]);
}

/* Files written together (rt_write_atomic_all) are all written or none: the second
 * one's temporary file cannot be made, and the first keeps its old bytes; a link to
 * a file not there yet, named as the second, is replaced, not written through onto
 * the first (an object's header once overwrote the object so). */
static void test_write_atomic_all_writes_all_or_none(void)
{
	char a[256], h[256], got[16], err[512] = "";
	snprintf(a, sizeof a, "%s", tmp_path("a.o"));
	snprintf(h, sizeof h, "%s", tmp_path("nodir/a.h"));
	const void *old[] = {"old"}, *pa[] = {"object"}, *pb[] = {"header"};
	size_t nold = 3, na = 6, nb = 6;
	CU_ASSERT_EQUAL_FATAL(rt_write_atomic(a, old, &nold, 1, err, sizeof err), 0);
	rt_output outs[2] = {{a, pa, &na, 1}, {h, pb, &nb, 1}};
	CU_ASSERT_EQUAL(rt_write_atomic_all(outs, 2, err, sizeof err), -1);
	CU_ASSERT(check_msg(err, h, "cannot create temporary file"));
	CU_ASSERT_EQUAL(read_bytes(a, got, sizeof got), 3);
	CU_ASSERT(memcmp(got, "old", 3) == 0);
	CU_ASSERT_EQUAL(count_entries(tmpdir), 1); /* no temporary file left */
	/* link.h -> b.o, neither there yet: b.o gets the object, link.h the header */
	char b[256], link[256];
	snprintf(b, sizeof b, "%s", tmp_path("b.o"));
	snprintf(link, sizeof link, "%s", tmp_path("link.h"));
	CU_ASSERT_FATAL(symlink(b, link) == 0);
	outs[0].path = b, outs[1].path = link;
	CU_ASSERT_EQUAL(rt_write_atomic_all(outs, 2, err, sizeof err), 0);
	CU_ASSERT(read_bytes(b, got, sizeof got) == 6 && !memcmp(got, "object", 6));
	CU_ASSERT(read_bytes(link, got, sizeof got) == 6 && !memcmp(got, "header", 6));
	/* one written in place that fails (/dev/full, a device) replaces no file */
	outs[1].path = "/dev/full";
	outs[0].parts = old, outs[0].sizes = &nold;
	CU_ASSERT_EQUAL(rt_write_atomic_all(outs, 2, err, sizeof err), -1);
	CU_ASSERT(read_bytes(b, got, sizeof got) == 6 && !memcmp(got, "object", 6));
	CU_ASSERT_EQUAL(count_entries(tmpdir), 3); /* a.o, b.o, link.h: no temporary */
	tmp_cleanup();
}

/* ---- NumPy .npy ---- */

/* A .npy file: magic, version major.0, header length, the dict padded to 64, data. */
static size_t make_npy(unsigned char *b, int major, const char *dict, const void *data,
                       size_t ndata)
{
	size_t pre = major == 1 ? 10 : 12, hl = strlen(dict), n = 0;
	size_t total = (pre + hl + 1 + 63) / 64 * 64, hlen = total - pre;
	memcpy(b, "\x93NUMPY", 6);
	b[6] = (unsigned char)major;
	b[7] = 0;
	for (size_t i = 0; i < pre - 8; i++)
		b[8 + i] = (unsigned char)(hlen >> 8 * i);
	n = pre;
	memcpy(b + n, dict, hl);
	n += hl;
	while (n < total - 1)
		b[n++] = ' ';
	b[n++] = '\n';
	if (data)
		memcpy(b + n, data, ndata);
	else
		memset(b + n, 0, ndata);
	return n + ndata;
}

static void test_npy_round_trip(void)
{
	float v[12];
	for (int i = 0; i < 12; i++)
		v[i] = (float)i * 0.5f - 2;
	int64_t shape[] = {3, 2, 2};
	const char *path = tmp_path("x.npy");
	char err[512] = "";
	CU_ASSERT_EQUAL_FATAL(rt_npy_save(path, RT_F32, 3, shape, v, err, sizeof err), 0);
	static unsigned char raw[512];
	long n = read_bytes(path, raw, sizeof raw);
	CU_ASSERT_EQUAL_FATAL(n, 128 + 48);
	CU_ASSERT(memcmp(raw, "\x93NUMPY\x01\x00", 8) == 0);
	CU_ASSERT_EQUAL(raw[8] | raw[9] << 8, 118);
	const char *dict =
	    "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2, 2), }";
	CU_ASSERT(memcmp(raw + 10, dict, strlen(dict)) == 0);
	CU_ASSERT_EQUAL(raw[127], '\n');
	CU_ASSERT(memcmp(raw + 128, v, 48) == 0);
	rt_tensor t;
	CU_ASSERT_EQUAL_FATAL(rt_npy_load(path, 0, &t, err, sizeof err), 0);
	CU_ASSERT(t.dtype == RT_F32 && t.n == 3 && t.rank == 2 && t.stride == 4);
	CU_ASSERT(t.dims[0] == 2 && t.dims[1] == 2);
	CU_ASSERT(memcmp(t.data, v, 48) == 0);
	rt_tensor_free(&t);

	int32_t l[5] = {0, 9, -3, 7, INT32_MAX};
	int64_t ls[] = {5};
	CU_ASSERT_EQUAL_FATAL(rt_npy_save(path, RT_I32, 1, ls, l, err, sizeof err), 0);
	n = read_bytes(path, raw, sizeof raw);
	CU_ASSERT_EQUAL(n, 128 + 20);
	CU_ASSERT(strstr((char *)raw + 10, "'descr': '<i4'") != NULL);
	CU_ASSERT(strstr((char *)raw + 10, "'shape': (5,), }") != NULL);
	CU_ASSERT_EQUAL_FATAL(rt_npy_load(path, 1, &t, err, sizeof err), 0);
	CU_ASSERT(t.dtype == RT_I32 && t.n == 5 && t.rank == 0 && t.stride == 1);
	CU_ASSERT(memcmp(t.data, l, 20) == 0);
	rt_tensor_free(&t);

	/* a rank-1 float file: one scalar per example */
	float s[3] = {1, 2, 3};
	int64_t ss[] = {3};
	CU_ASSERT_EQUAL_FATAL(rt_npy_save(path, RT_F32, 1, ss, s, err, sizeof err), 0);
	CU_ASSERT_EQUAL_FATAL(rt_npy_load(path, 0, &t, err, sizeof err), 0);
	CU_ASSERT(t.n == 3 && t.rank == 0 && t.stride == 1);
	rt_tensor_free(&t);

	int64_t bad[] = {2, -1};
	CU_ASSERT_EQUAL(rt_npy_save(path, RT_F32, 2, bad, v, err, sizeof err), -1);
	CU_ASSERT(check_msg(err, path, "dimension 2 is negative"));
	CU_ASSERT_EQUAL(rt_npy_save(path, (rt_dtype)7, 1, ss, s, err, sizeof err), -1);
	CU_ASSERT(check_msg(err, path, "invalid dtype 7"));
	tmp_cleanup();
}

/* What other writers produce: versions 2.0 and 3.0, float64, Python 2's 3L, double
 * quotes, keys in another order, and every integer label type. */
static void test_npy_loads_other_writers_files(void)
{
	static unsigned char b[512];
	char err[512] = "";
	rt_tensor t;
	const char *path = tmp_path("other.npy");
	double d[6] = {0.5, -1, 2, 1e30, -1e-30, 3};
	size_t n = make_npy(b, 2,
	                    "{\"shape\": (2L, 3L), \"fortran_order\": False, "
	                    "\"descr\": \"<f8\"}",
	                    d, sizeof d);
	write_bytes(path, b, n);
	int rc = rt_npy_load(path, 0, &t, err, sizeof err);
	if (rc)
		printf("\n  %s\n", err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT(t.dtype == RT_F32 && t.n == 2 && t.rank == 1 && t.dims[0] == 3);
	for (int i = 0; i < 6; i++)
		CU_ASSERT_EQUAL(((float *)t.data)[i], (float)d[i]);
	rt_tensor_free(&t);

	struct {
		const char *descr;
		const void *data;
		size_t size;
		int32_t want[3];
	} labels[] = {
	    {"|u1", "\x00\x07\xff", 3, {0, 7, 255}},
	    {"<u1", "\x01\x02\x03", 3, {1, 2, 3}},
	    {"|i1", "\x80\x7f\xff", 3, {-128, 127, -1}},
	    {"<i2", "\x00\x80\xff\x7f\xfe\xff", 6, {-32768, 32767, -2}},
	    {"<u2", "\xff\xff\x00\x00\x01\x00", 6, {65535, 0, 1}},
	    {"<i4",
	     "\xff\xff\xff\xff\x00\x00\x00\x80\x05\x00\x00\x00",
	     12,
	     {-1, INT32_MIN, 5}},
	    {"<u4",
	     "\xff\xff\xff\x7f\x00\x00\x00\x00\x05\x00\x00\x00",
	     12,
	     {INT32_MAX, 0, 5}},
	    {"<i8",
	     "\x00\x00\x00\x80\xff\xff\xff\xff\xff\xff\xff\x7f\x00\x00\x00\x00"
	     "\x09\x00\x00\x00\x00\x00\x00\x00",
	     24,
	     {INT32_MIN, INT32_MAX, 9}},
	    {"<u8",
	     "\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00"
	     "\x09\x00\x00\x00\x00\x00\x00\x00",
	     24,
	     {0, 2, 9}},
	};
	for (size_t i = 0; i < LEN(labels); i++) {
		char dict[128];
		snprintf(dict, sizeof dict,
		         "{'descr': '%s', 'fortran_order': False, 'shape': (3,), }",
		         labels[i].descr);
		n = make_npy(b, 3, dict, labels[i].data, labels[i].size);
		write_bytes(path, b, n);
		rc = rt_npy_load(path, 1, &t, err, sizeof err);
		if (rc)
			printf("\n  %s\n", err);
		CU_ASSERT_EQUAL_FATAL(rc, 0);
		CU_ASSERT(t.dtype == RT_I32 && t.n == 3 && t.rank == 0);
		if (memcmp(t.data, labels[i].want, 12))
			printf("\n  %s: wrong labels\n", labels[i].descr);
		CU_ASSERT(memcmp(t.data, labels[i].want, 12) == 0);
		rt_tensor_free(&t);
	}
	tmp_cleanup();
}

typedef struct BadNpy {
	const char *name;
	int major;
	const char *dict;
	const char *data; /* NULL: zeros */
	size_t ndata;
	int as_labels;
	const char *why;
} BadNpy;

#define DICT(descr, fortran, shape)                                                      \
	"{'descr': '" descr "', 'fortran_order': " fortran ", 'shape': " shape ", }"

static const BadNpy bad_npy[] = {
    {"version4", 4, DICT("<f4", "False", "(2,)"), NULL, 8, 0,
     ".npy format version 4.0 is not supported"},
    {"fortran", 1, DICT("<f4", "True", "(2, 2)"), NULL, 16, 0,
     "Fortran-order arrays are not supported; save with np.ascontiguousarray"},
    {"big_endian", 1, DICT(">f4", "False", "(2,)"), NULL, 8, 0,
     "big-endian data ('>f4') is not supported"},
    {"big_endian_labels", 1, DICT(">i8", "False", "(2,)"), NULL, 16, 1,
     "big-endian data ('>i8')"},
    {"scalar", 1, DICT("<f4", "False", "()"), NULL, 4, 0, "shape () is a single scalar"},
    {"zero_dim", 1, DICT("<f4", "False", "(2, 0)"), NULL, 0, 0, "dimension 2 of 2 is 0"},
    {"truncated", 1, DICT("<f4", "False", "(2, 3)"), NULL, 20, 0,
     "truncated: expected 24 bytes of data, found 20"},
    {"trailing", 1, DICT("<f4", "False", "(2, 3)"), NULL, 28, 0,
     "4 bytes of trailing data after the 24 bytes declared"},
    {"huge", 1, DICT("<f4", "False", "(1000000, 1000000)"), NULL, 8, 0,
     "truncated: expected 4000000000000 bytes of data, found 8"},
    {"overflow", 1, DICT("<f8", "False", "(4294967296, 4294967296)"), NULL, 8, 0,
     "declared size overflows (dimension 2 is 4294967296)"},
    {"float_as_labels", 1, DICT("<f4", "False", "(2,)"), NULL, 8, 1,
     "integers are wanted (class labels, embedding indices), but this file holds "
     "float32 ('<f4'); convert them with arr.astype('<i4'), one-hot labels with "
     "arr.argmax(1).astype('<i4')"},
    {"int_as_data", 1, DICT("<i8", "False", "(2,)"), NULL, 16, 0,
     "this file holds integers (int64, '<i8'), not float32 or float64 data"},
    {"label_range", 1, DICT("<i8", "False", "(2,)"),
     "\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00", 16, 1,
     "label 1 is 1099511627776, which does not fit in int32"},
    {"label_range_unsigned", 1, DICT("<u4", "False", "(1,)"), "\x00\x00\x00\x80", 4, 1,
     "label 0 is 2147483648, which does not fit in int32"},
    {"float64_range", 1, DICT("<f8", "False", "(2,)"),
     "\x00\x00\x00\x00\x00\x00\x00\x00\x9c\x75\x00\x88\x3c\xe4\x37\x7e", 16, 0,
     "element 1 is 1e+300, too large for float32"},
    /* data that is not finite, as the CSV reader refuses nan and inf */
    {"float32_nan", 1, DICT("<f4", "False", "(2, 2)"),
     "\x00\x00\x80\x3f\x00\x00\x80\x3f\x00\x00\xc0\x7f\x00\x00\x80\x3f", 16, 0,
     "element 2 (row 1) is nan; the data must be finite"},
    {"float64_inf", 1, DICT("<f8", "False", "(2,)"),
     "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xf0\xff", 16, 0,
     "element 1 (row 1) is -inf; the data must be finite"},
    {"float16", 1, DICT("<f2", "False", "(2,)"), NULL, 4, 0,
     "dtype '<f2' is not supported (data: '<f4', '<f8'"},
    {"complex", 1, DICT("<c8", "False", "(2,)"), NULL, 16, 0,
     "dtype '<c8' is not supported"},
    {"pipe_multibyte", 1, DICT("|f4", "False", "(2,)"), NULL, 8, 0,
     "dtype '|f4' is not supported"},
    {"structured", 1,
     "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", NULL, 8, 0,
     "structured arrays (a list as descr) are not supported"},
    {"syntax", 1, "{'descr' '<f4', 'fortran_order': False, 'shape': (2,), }", NULL, 8, 0,
     "bad .npy header: expected ':' after a key, found ''' at byte 9"},
    {"bad_bool", 1, DICT("<f4", "false", "(2,)"), NULL, 8, 0,
     "expected True or False for fortran_order"},
    {"bad_shape", 1, DICT("<f4", "False", "(2, x)"), NULL, 8, 0,
     "expected a non-negative integer in the shape, found 'x'"},
    {"negative_dim", 1, DICT("<f4", "False", "(-2,)"), NULL, 8, 0,
     "expected a non-negative integer in the shape, found '-'"},
    {"rank8", 1, DICT("<f4", "False", "(1, 1, 1, 1, 1, 1, 1, 1)"), NULL, 4, 0,
     "shape has more than 7 dimensions"},
    {"missing_shape", 1, "{'descr': '<f4', 'fortran_order': False}", NULL, 8, 0,
     "bad .npy header: no 'shape'"},
    {"unknown_key", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}",
     NULL, 8, 0, "bad .npy header: unexpected key 'x' at byte 56 of the header"},
    {"duplicate_key", 1, "{'descr': '<f4', 'descr': '<f4'}", NULL, 8, 0,
     "bad .npy header: key 'descr' appears twice"},
    {"garbage_after", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x",
     NULL, 8, 0, "expected only spaces after the dict, found 'x'"},
};

static void test_npy_rejects_bad_files(void)
{
	static unsigned char b[512];
	char err[512];
	rt_tensor t;
	for (size_t i = 0; i < LEN(bad_npy); i++) {
		const BadNpy *c = &bad_npy[i];
		size_t n = make_npy(b, c->major, c->dict, c->data, c->ndata);
		const char *path = tmp_path(c->name);
		write_bytes(path, b, n);
		err[0] = 0;
		CU_ASSERT_EQUAL(rt_npy_load(path, c->as_labels, &t, err, sizeof err), -1);
		CU_ASSERT_PTR_NULL(t.data);
		if (!check_msg(err, path, c->why))
			CU_FAIL(".npy error message");
	}
	struct {
		const char *name, *bytes;
		size_t n;
		const char *why;
	} raw[] = {
	    {"short", "\x93NUM", 4, "not a .npy file (only 4 bytes long)"},
	    {"magic", "\x93NUMPZ\x01\x00\x00\x00", 10,
	     "not a .npy file (it does not begin with \\x93NUMPY)"},
	    {"hlen_past_end", "\x93NUMPY\x01\x00\xf4\x01{}", 12,
	     "header length 500 is larger than the rest of the file (2 bytes)"},
	    {"v2_cut", "\x93NUMPY\x02\x00\x01\x00", 10,
	     "truncated: the file ends inside the header length"},
	    {"v2_hlen_huge", "\x93NUMPY\x02\x00\x00\x00\x00\x10{}", 14,
	     "header length 268435456 is larger than the rest of the file"},
	};
	for (size_t i = 0; i < LEN(raw); i++) {
		const char *path = tmp_path(raw[i].name);
		write_bytes(path, raw[i].bytes, raw[i].n);
		err[0] = 0;
		CU_ASSERT_EQUAL(rt_npy_load(path, 0, &t, err, sizeof err), -1);
		CU_ASSERT(check_msg(err, path, raw[i].why));
	}
	const char *path = tmp_path("missing.npy");
	CU_ASSERT_EQUAL(rt_npy_load(path, 0, &t, err, sizeof err), -1);
	CU_ASSERT(check_msg(err, path, "cannot open: No such file"));
	tmp_cleanup();
}

/* Only where python3 has numpy: a file numpy wrote, loaded; one we wrote, read back. */
static void test_npy_cross_check_with_numpy(void)
{
	if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0)
		return;
	const char *path = tmp_path("np.npy"), *ours = tmp_path("ours.npy");
	char cmd[1024], err[512] = "";
	snprintf(cmd, sizeof cmd,
	         "/usr/bin/python3 -c \"import numpy as np; "
	         "np.save('%s', np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 4)\"",
	         path);
	CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
	rt_tensor t;
	CU_ASSERT_EQUAL_FATAL(rt_npy_load(path, 0, &t, err, sizeof err), 0);
	CU_ASSERT(t.n == 2 && t.rank == 2 && t.dims[0] == 3 && t.dims[1] == 4);
	for (int i = 0; i < 24; i++)
		CU_ASSERT_EQUAL(((float *)t.data)[i], i / 4.0f);
	int64_t shape[] = {2, 3, 4};
	CU_ASSERT_EQUAL_FATAL(
	    rt_npy_save(ours, RT_F32, 3, shape, t.data, err, sizeof err), 0);
	rt_tensor_free(&t);
	snprintf(cmd, sizeof cmd,
	         "/usr/bin/python3 -c \"import numpy as np, sys; a = np.load('%s'); "
	         "sys.exit(not (a.dtype == np.float32 and a.shape == (2, 3, 4) and "
	         "(a.ravel() == np.arange(24) / 4).all()))\"",
	         ours);
	CU_ASSERT_EQUAL(system(cmd), 0);
	tmp_cleanup();
}

/* ---- CSV ---- */

static int load_csv(const char *name, const char *text, const rt_csv_opts *o,
                    rt_tensor *x, rt_tensor *y, char *err, size_t errlen)
{
	const char *path = tmp_path(name);
	write_bytes(path, text, strlen(text));
	int rc = rt_csv_load(path, o, x, y, err, errlen);
	if (rc)
		printf("\n  %s\n", err);
	return rc;
}

static void test_csv_header_and_label_by_name(void)
{
	rt_tensor x, y;
	char err[512] = "";
	rt_csv_opts o = {0, 1, "species", 2.0, 1};
	const char *text = "sepal,petal,species\n1.5,2,0\n3, 4.25 ,2\n";
	CU_ASSERT_EQUAL_FATAL(load_csv("iris.csv", text, &o, &x, &y, err, sizeof err), 0);
	CU_ASSERT(x.dtype == RT_F32 && x.n == 2 && x.rank == 1 && x.dims[0] == 2);
	CU_ASSERT_EQUAL(x.stride, 2);
	const float want[] = {3, 4, 6, 8.5f};
	CU_ASSERT(memcmp(x.data, want, sizeof want) == 0);
	CU_ASSERT(y.dtype == RT_I32 && y.n == 2 && y.rank == 0 && y.stride == 1);
	CU_ASSERT(((int32_t *)y.data)[0] == 0 && ((int32_t *)y.data)[1] == 2);
	rt_tensor_free(&x);
	rt_tensor_free(&y);

	/* a quoted header name holding the delimiter and a quote */
	rt_csv_opts q = {0, 1, "a,\"b\"", 0, 0};
	text = "\"a,\"\"b\"\"\",x\n1,2\n";
	CU_ASSERT_EQUAL_FATAL(load_csv("quoted.csv", text, &q, &x, &y, err, sizeof err),
	                      0);
	CU_ASSERT(y.dtype == RT_F32 && ((float *)y.data)[0] == 1);
	CU_ASSERT(x.n == 1 && x.dims[0] == 1 && ((float *)x.data)[0] == 2);
	rt_tensor_free(&x);
	rt_tensor_free(&y);
	tmp_cleanup();
}

static void test_csv_semicolons_quotes_crlf_label_by_index(void)
{
	rt_tensor x, y;
	char err[512] = "";
	rt_csv_opts o = {';', 0, "0", 0, 0};
	const char *text = "\xef\xbb\xbf"
	                   "7;\"1.5\";  \" 2 \"\r\n"
	                   "\r\n"
	                   "-8.5 ; 3;\"4e0\"\r\n"
	                   "\r\n"
	                   "  \r\n";
	CU_ASSERT_EQUAL_FATAL(load_csv("semi.csv", text, &o, &x, &y, err, sizeof err), 0);
	CU_ASSERT(x.n == 2 && x.dims[0] == 2 && y.n == 2 && y.dtype == RT_F32);
	const float wx[] = {1.5f, 2, 3, 4}, wy[] = {7, -8.5f};
	CU_ASSERT(memcmp(x.data, wx, sizeof wx) == 0);
	CU_ASSERT(memcmp(y.data, wy, sizeof wy) == 0);
	rt_tensor_free(&x);
	rt_tensor_free(&y);

	/* a label in the middle, by index, as classes; tab-separated */
	rt_csv_opts t = {'\t', 0, "1", 0, 1};
	text = "1\t5\t2\n3\t6\t4";
	CU_ASSERT_EQUAL_FATAL(load_csv("tabs.csv", text, &t, &x, &y, err, sizeof err), 0);
	const float tx[] = {1, 2, 3, 4};
	CU_ASSERT(memcmp(x.data, tx, sizeof tx) == 0);
	CU_ASSERT(((int32_t *)y.data)[0] == 5 && ((int32_t *)y.data)[1] == 6);
	rt_tensor_free(&x);
	rt_tensor_free(&y);
	tmp_cleanup();
}

static void test_csv_without_labels_leaves_y_zeroed(void)
{
	rt_tensor x, y;
	char err[512] = "";
	const char *text = "1,2,3\n4,5,6"; /* no final newline */
	CU_ASSERT_EQUAL_FATAL(load_csv("plain.csv", text, NULL, &x, &y, err, sizeof err),
	                      0);
	CU_ASSERT(x.n == 2 && x.rank == 1 && x.dims[0] == 3 && x.stride == 3);
	CU_ASSERT_EQUAL(((float *)x.data)[5], 6);
	CU_ASSERT(y.data == NULL && y.n == 0);
	rt_tensor_free(&x);
	/* a quoted field spanning lines keeps the line numbers right */
	text = "\"multi\nline\",y\n1,2\n";
	rt_csv_opts o = {0, 1, NULL, 0, 0};
	CU_ASSERT_EQUAL_FATAL(load_csv("multi.csv", text, &o, &x, &y, err, sizeof err),
	                      0);
	CU_ASSERT(x.n == 1 && x.dims[0] == 2);
	rt_tensor_free(&x);
	tmp_cleanup();
}

typedef struct BadCsv {
	const char *name, *text;
	rt_csv_opts o;
	const char *why;
} BadCsv;

static const BadCsv bad_csv[] = {
    {"ragged_header",
     "a,b,c\n1,2,3\n4,5\n",
     {0, 1, NULL, 0, 0},
     "row 3 has 2 fields, the header has 3"},
    {"ragged_plain",
     "1,2,3\n\n4,5,6,7\n",
     {0, 0, NULL, 0, 0},
     "row 3 has 4 fields, the first row (line 1) has 3"},
    {"not_a_number",
     "a,b\n1,x1\n",
     {0, 1, NULL, 0, 0},
     "row 2, column 2 ('b'): 'x1' is not a number"},
    {"hex",
     "a,b\n1,0x10\n",
     {0, 1, NULL, 0, 0},
     "row 2, column 2 ('b'): '0x10' is not a number"},
    {"nan",
     "a,b\n1,2\n1,nan\n",
     {0, 1, NULL, 0, 0},
     "row 3, column 2 ('b'): 'nan' is not a finite number"},
    {"inf",
     "1,-inf\n",
     {0, 0, NULL, 0, 0},
     "row 1, column 2: '-inf' is not a finite number"},
    {"overflow",
     "1,1e999\n",
     {0, 0, NULL, 0, 0},
     "row 1, column 2: '1e999' is out of range"},
    {"float32_range",
     "1e39,1\n",
     {0, 0, NULL, 0, 0},
     "row 1, column 1: '1e39' is out of range for float32"},
    {"empty_field",
     "a,b\n1,\n",
     {0, 1, NULL, 0, 0},
     "row 2, column 2 ('b'): empty field, expected a number"},
    {"label_not_integral",
     "x,y\n1,2\n1,2.5\n",
     {0, 1, "y", 0, 1},
     "row 3, column 2 ('y'): label 2.5 is not an integer"},
    {"label_int32_range",
     "1,3e9\n",
     {0, 0, "1", 0, 1},
     "row 1, column 2: label 3e9 does not fit in int32"},
    {"unknown_label",
     "a,b\n1,2\n",
     {0, 1, "c", 0, 0},
     "unknown label column 'c'; the header has 'a', 'b'"},
    {"label_index_range",
     "1,2\n",
     {0, 0, "5", 0, 0},
     "label column 5 is out of range: the file has 2 columns (0 to 1)"},
    {"label_name_no_header",
     "1,2\n",
     {0, 0, "y", 0, 0},
     "label column 'y' is not a column index, and the file has no header"},
    {"label_twice",
     "y,y\n1,2\n",
     {0, 1, "y", 0, 0},
     "label column 'y' appears twice in the header (columns 1 and 2)"},
    {"only_label", "y\n1\n", {0, 1, "y", 0, 0}, "no feature columns"},
    {"empty", "", {0, 0, NULL, 0, 0}, "empty file (no rows)"},
    {"blank_lines", "\n\r\n  \n", {0, 1, NULL, 0, 0}, "empty file (no rows)"},
    {"header_only", "a,b\r\n", {0, 1, NULL, 0, 0}, "has a header but no data rows"},
    {"unclosed_quote",
     "a,b\n1,\"2\n3\n",
     {0, 1, NULL, 0, 0},
     "row 2, column 2 ('b'): quoted field is never closed (it opens on line 2)"},
    {"after_quote",
     "1,\"2\"x\n",
     {0, 0, NULL, 0, 0},
     "row 1, column 2: unexpected 'x' after the closing quote"},
    {"multiline_header",
     "\"multi\nline\",y\n1,z\n",
     {0, 1, NULL, 0, 0},
     "row 3, column 2 ('y'): 'z' is not a number"},
    {"crlf_row_numbers",
     "a;b\r\n1;2\r\n\r\n3;4;5\r\n",
     {';', 1, NULL, 0, 0},
     "row 4 has 3 fields, the header has 2"},
    {"bad_delimiter", "1,2\n", {'"', 0, NULL, 0, 0}, "invalid delimiter"},
};

static void test_csv_rejects_bad_files(void)
{
	char err[512];
	rt_tensor x, y;
	for (size_t i = 0; i < LEN(bad_csv); i++) {
		const BadCsv *c = &bad_csv[i];
		const char *path = tmp_path(c->name);
		write_bytes(path, c->text, strlen(c->text));
		err[0] = 0;
		CU_ASSERT_EQUAL(rt_csv_load(path, &c->o, &x, &y, err, sizeof err), -1);
		CU_ASSERT(x.data == NULL && y.data == NULL);
		if (!check_msg(err, path, c->why))
			CU_FAIL("CSV error message");
	}
	const char *path = tmp_path("missing.csv");
	CU_ASSERT_EQUAL(rt_csv_load(path, NULL, &x, &y, err, sizeof err), -1);
	CU_ASSERT(check_msg(err, path, "cannot open: No such file"));
	tmp_cleanup();
}

void suite_io(void)
{
	static CU_TestInfo tests[] = {
	    {"st_round_trip_dtypes_ranks_and_metadata",
	     test_st_round_trip_dtypes_ranks_and_metadata},
	    {"st_save_matches_reference_bytes", test_st_save_matches_reference_bytes},
	    {"st_loads_escapes_and_padding", test_st_loads_escapes_and_padding},
	    {"st_rejects_corrupt_files", test_st_rejects_corrupt_files},
	    {"st_rejects_header_over_100mb", test_st_rejects_header_over_100mb},
	    {"st_save_rejects_bad_tensors", test_st_save_rejects_bad_tensors},
	    {"st_save_into_missing_directory_fails_cleanly",
	     test_st_save_into_missing_directory_fails_cleanly},
	    {"st_failed_save_keeps_old_file_and_no_temp",
	     test_st_failed_save_keeps_old_file_and_no_temp},
	    {"write_atomic_joins_parts", test_write_atomic_joins_parts},
	    {"write_atomic_all_writes_all_or_none",
	     test_write_atomic_all_writes_all_or_none},
	    {"npy_round_trip", test_npy_round_trip},
	    {"npy_loads_other_writers_files", test_npy_loads_other_writers_files},
	    {"npy_rejects_bad_files", test_npy_rejects_bad_files},
	    {"npy_cross_check_with_numpy", test_npy_cross_check_with_numpy},
	    {"csv_header_and_label_by_name", test_csv_header_and_label_by_name},
	    {"csv_semicolons_quotes_crlf_label_by_index",
	     test_csv_semicolons_quotes_crlf_label_by_index},
	    {"csv_without_labels_leaves_y_zeroed",
	     test_csv_without_labels_leaves_y_zeroed},
	    {"csv_rejects_bad_files", test_csv_rejects_bad_files},
	    CU_TEST_INFO_NULL,
	};
	add_suite("io", tests);
}
