/*
 * test.h: a tiny TAP test harness. Each test is a function; asserts print both sides and
 * fail the current test (not the process). The binary prints "1..N" at the end and exits 1 if
 * any test failed, for meson's protocol: 'tap'.
 */
#ifndef DANMAKUD_TEST_H
#define DANMAKUD_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_count;
static int test_failed_total;
static int test_cur_failed;

#define TEST_FAIL_(...)                                                                            \
	do {                                                                                       \
		printf("# %s:%d: ", __FILE__, __LINE__);                                           \
		printf(__VA_ARGS__);                                                               \
		printf("\n");                                                                      \
		test_cur_failed = 1;                                                               \
	} while (0)

#define ASSERT(c)                                                                                  \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			TEST_FAIL_("assertion failed: %s", #c);                                    \
			return;                                                                    \
		}                                                                                  \
	} while (0)

#define ASSERT_INT_(a, op, b)                                                                      \
	do {                                                                                       \
		long long a_ = (long long)(a), b_ = (long long)(b);                                \
		if (!(a_ op b_)) {                                                                 \
			TEST_FAIL_("%s %s %s: %lld vs %lld", #a, #op, #b, a_, b_);                 \
			return;                                                                    \
		}                                                                                  \
	} while (0)
#define ASSERT_EQ(a, b) ASSERT_INT_(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_INT_(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_INT_(a, <, b)
#define ASSERT_LE(a, b) ASSERT_INT_(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_INT_(a, >, b)
#define ASSERT_GE(a, b) ASSERT_INT_(a, >=, b)

#define ASSERT_STR_EQ(a, b)                                                                        \
	do {                                                                                       \
		const char *a_ = (a), *b_ = (b);                                                   \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                           \
			TEST_FAIL_("%s == %s: \"%s\" vs \"%s\"", #a, #b, a_ ? a_ : "(null)",       \
				   b_ ? b_ : "(null)");                                            \
			return;                                                                    \
		}                                                                                  \
	} while (0)

#define ASSERT_MEM_EQ(a, b, n)                                                                     \
	do {                                                                                       \
		if (memcmp((a), (b), (n)) != 0) {                                                  \
			TEST_FAIL_("%s == %s (%zu bytes) differ", #a, #b, (size_t)(n));            \
			return;                                                                    \
		}                                                                                  \
	} while (0)

#define RUN(fn)                                                                                    \
	do {                                                                                       \
		test_cur_failed = 0;                                                               \
		fn();                                                                              \
		test_count++;                                                                      \
		if (test_cur_failed)                                                               \
			test_failed_total++;                                                       \
		printf("%s %d - %s\n", test_cur_failed ? "not ok" : "ok", test_count, #fn);        \
		fflush(stdout);                                                                    \
	} while (0)

#define TEST_DONE()                                                                                \
	do {                                                                                       \
		printf("1..%d\n", test_count);                                                     \
		return test_failed_total ? 1 : 0;                                                  \
	} while (0)

/* Path of a file in ../shared (set by meson as SHARED_DIR). */
#ifndef SHARED_DIR
#define SHARED_DIR "../shared"
#endif

/* Read a whole file into a NUL-terminated heap buffer; NULL on error. */
static inline char *test_read_file(const char *path, size_t *len_out)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, len = 0;
	char *p = malloc(cap + 1);
	size_t n;
	while (p && (n = fread(p + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap) {
			char *q = realloc(p, cap * 2 + 1);
			if (!q) {
				free(p);
				p = NULL;
				break;
			}
			p = q;
			cap *= 2;
		}
	}
	fclose(f);
	if (p) {
		p[len] = '\0';
		if (len_out)
			*len_out = len;
	}
	return p;
}

/* Deterministic PRNG for random splits (xorshift64*). */
static inline uint64_t test_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

#endif
