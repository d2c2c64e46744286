/*
 * test_buf: the growable byte buffer. Every test checks the invariant off + len <= cap and
 * the exact bytes, through appends, consumes, compaction, printf and trim.
 */
#include "buf.h"

#include "test.h"

#include <errno.h>
#include <stdint.h>

#define ASSERT_SANE(b)                                                                             \
	do {                                                                                       \
		ASSERT_LE((b)->off + (b)->len, (b)->cap);                                          \
		if ((b)->cap == 0)                                                                 \
			ASSERT((b)->data == NULL);                                                 \
	} while (0)

/* The unread bytes equal s. */
#define ASSERT_BYTES(b, s)                                                                         \
	do {                                                                                       \
		ASSERT_EQ((b)->len, strlen(s));                                                    \
		ASSERT_MEM_EQ(buf_head(b), (s), strlen(s));                                        \
	} while (0)

static void test_init_finish(void)
{
	struct buf b;
	buf_init(&b);
	ASSERT(b.data == NULL);
	ASSERT_EQ(b.len, 0);
	ASSERT_EQ(b.cap, 0);
	ASSERT_EQ(b.off, 0);
	buf_finish(&b); /* on an empty buffer: fine */
	ASSERT_EQ(buf_append_str(&b, "abc"), 0);
	buf_finish(&b);
	ASSERT(b.data == NULL);
	ASSERT_EQ(b.len + b.cap + b.off, 0);
	/* Reusable after finish. */
	ASSERT_EQ(buf_append_str(&b, "again"), 0);
	ASSERT_BYTES(&b, "again");
	buf_finish(&b);
}

static void test_append_and_grow(void)
{
	struct buf b;
	buf_init(&b);
	ASSERT_EQ(buf_append(&b, "", 0), 0);
	ASSERT_EQ(b.cap, 0); /* an empty append allocates nothing */
	ASSERT_EQ(buf_append(&b, NULL, 0), 0);
	/* One byte at a time past several doublings; the bytes stay in order. */
	for (int i = 0; i < 5000; i++) {
		uint8_t c = (uint8_t)(i * 13);
		ASSERT_EQ(buf_append(&b, &c, 1), 0);
		ASSERT_SANE(&b);
	}
	ASSERT_EQ(b.len, 5000);
	ASSERT_GE(b.cap, 5000);
	ASSERT_LT(b.cap, 2 * 5000); /* geometric, not wasteful */
	for (int i = 0; i < 5000; i++)
		ASSERT_EQ(buf_head(&b)[i], (uint8_t)(i * 13));
	buf_finish(&b);
	/* A single large append. */
	static uint8_t big[100000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i ^ (i >> 8));
	ASSERT_EQ(buf_append(&b, big, sizeof(big)), 0);
	ASSERT_EQ(b.len, sizeof(big));
	ASSERT_MEM_EQ(buf_head(&b), big, sizeof(big));
	ASSERT_SANE(&b);
	buf_finish(&b);
}

static void test_reserve(void)
{
	struct buf b;
	buf_init(&b);
	ASSERT_EQ(buf_reserve(&b, 10), 0);
	ASSERT_GE(b.cap, 10);
	ASSERT_EQ(b.len, 0);
	size_t cap = b.cap;
	ASSERT_EQ(buf_reserve(&b, cap), 0); /* already there: no change */
	ASSERT_EQ(b.cap, cap);
	/* The reserved room is writable by hand, as douyu_pack and stt_to_json do. */
	memcpy(buf_head(&b) + b.len, "xyz", 3);
	b.len += 3;
	ASSERT_BYTES(&b, "xyz");
	/* An impossible size fails and leaves the buffer as it was. */
	ASSERT_EQ(buf_reserve(&b, SIZE_MAX), -ENOMEM);
	ASSERT_EQ(buf_reserve(&b, SIZE_MAX / 2), -ENOMEM);
	ASSERT_EQ(b.cap, cap);
	ASSERT_BYTES(&b, "xyz");
	ASSERT_EQ(buf_append(&b, "q", SIZE_MAX - 1), -ENOMEM);
	ASSERT_BYTES(&b, "xyz");
	buf_finish(&b);
}

static void test_consume_and_compact(void)
{
	struct buf b;
	buf_init(&b);
	ASSERT_EQ(buf_append_str(&b, "0123456789"), 0);
	buf_consume(&b, 3);
	ASSERT_BYTES(&b, "3456789");
	ASSERT_EQ(b.off, 3);
	buf_consume(&b, 0);
	ASSERT_BYTES(&b, "3456789");
	buf_consume(&b, 100); /* more than there is: empties, and resets the offset */
	ASSERT_EQ(b.len, 0);
	ASSERT_EQ(b.off, 0);

	/*
	 * Fill to capacity, consume most of it, then append: the unread bytes slide to the
	 * front instead of the allocation growing.
	 */
	size_t cap = b.cap;
	for (size_t i = 0; i < cap; i++)
		ASSERT_EQ(buf_append(&b, "a", 1), 0);
	ASSERT_EQ(b.cap, cap);
	buf_consume(&b, cap - 4);
	ASSERT_EQ(buf_append_str(&b, "bcd"), 0);
	ASSERT_EQ(b.cap, cap);
	ASSERT_EQ(b.off, 0);
	ASSERT_BYTES(&b, "aaaabcd");
	ASSERT_SANE(&b);

	/* A stream through a small window: append 7, consume 5, many times; stays bounded. */
	buf_clear(&b);
	uint64_t wrote = 0, read = 0;
	for (int i = 0; i < 10000; i++) {
		uint8_t in[7];
		for (int k = 0; k < 7; k++)
			in[k] = (uint8_t)(wrote + (uint64_t)k);
		ASSERT_EQ(buf_append(&b, in, 7), 0);
		wrote += 7;
		for (int k = 0; k < 5; k++)
			ASSERT_EQ(buf_head(&b)[k], (uint8_t)(read + (uint64_t)k));
		buf_consume(&b, 5);
		read += 5;
		ASSERT_SANE(&b);
	}
	ASSERT_EQ(b.len, wrote - read);
	ASSERT_LE(b.cap, 2 * (wrote - read) + 256);
	buf_finish(&b);
}

static void test_clear(void)
{
	struct buf b;
	buf_init(&b);
	ASSERT_EQ(buf_append_str(&b, "hello world"), 0);
	buf_consume(&b, 2);
	size_t cap = b.cap;
	buf_clear(&b);
	ASSERT_EQ(b.len, 0);
	ASSERT_EQ(b.off, 0);
	ASSERT_EQ(b.cap, cap); /* keeps the allocation */
	ASSERT(b.data != NULL);
	buf_finish(&b);
}

static void test_printf(void)
{
	struct buf b;
	buf_init(&b);
	ASSERT_EQ(buf_printf(&b, "%s=%d;", "a", 42), 0);
	ASSERT_EQ(buf_printf(&b, "%s", ""), 0);
	ASSERT_EQ(buf_printf(&b, "%05.1f|%x", 3.5, 255u), 0);
	ASSERT_BYTES(&b, "a=42;003.5|ff");
	/* Longer than printf's small stack buffer: the second, in-place path. */
	char long_s[1000];
	memset(long_s, 'L', sizeof(long_s) - 1);
	long_s[sizeof(long_s) - 1] = '\0';
	buf_clear(&b);
	ASSERT_EQ(buf_append_str(&b, "<"), 0);
	ASSERT_EQ(buf_printf(&b, "%s>%d", long_s, 7), 0);
	ASSERT_EQ(b.len, 1 + 999 + 2);
	ASSERT_EQ(buf_head(&b)[0], '<');
	ASSERT_EQ(buf_head(&b)[999], 'L');
	ASSERT_MEM_EQ(buf_head(&b) + 1000, ">7", 2);
	/* Exactly at the small buffer's edge (255 and 256 characters). */
	for (size_t n = 254; n <= 257; n++) {
		buf_clear(&b);
		ASSERT_EQ(buf_printf(&b, "%.*s", (int)n, long_s), 0);
		ASSERT_EQ(b.len, n);
		ASSERT_EQ(buf_head(&b)[n - 1], 'L');
	}
	/* After consuming, printf appends behind the unread bytes. */
	buf_clear(&b);
	ASSERT_EQ(buf_append_str(&b, "xxab"), 0);
	buf_consume(&b, 2);
	ASSERT_EQ(buf_printf(&b, "%s", long_s), 0);
	ASSERT_EQ(b.len, 2 + 999);
	ASSERT_MEM_EQ(buf_head(&b), "abLL", 4);
	ASSERT_SANE(&b);
	buf_finish(&b);
}

static void test_trim(void)
{
	enum { KEEP = 64 * 1024 };
	struct buf b;
	buf_init(&b);
	/* Nothing to trim: empty, or small. */
	ASSERT_EQ(buf_trim(&b, KEEP), 0);
	ASSERT_EQ(b.cap, 0);
	ASSERT_EQ(buf_append_str(&b, "small"), 0);
	size_t cap = b.cap;
	ASSERT_EQ(buf_trim(&b, KEEP), 0);
	ASSERT_EQ(b.cap, cap);
	ASSERT_BYTES(&b, "small");

	/* One big burst, fully consumed: the allocation is released. */
	static uint8_t big[1 << 20];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	ASSERT_EQ(buf_append(&b, big, sizeof(big)), 0);
	ASSERT_GT(b.cap, KEEP);
	ASSERT_EQ(buf_trim(&b, KEEP), 0); /* still holding more than KEEP: untouched */
	ASSERT_GT(b.cap, KEEP);
	ASSERT_EQ(b.len, 5 + sizeof(big));
	buf_consume(&b, b.len);
	ASSERT_EQ(buf_trim(&b, KEEP), 0);
	ASSERT_EQ(b.cap, 0);
	ASSERT(b.data == NULL);
	ASSERT_EQ(b.off + b.len, 0);
	/* And usable again. */
	ASSERT_EQ(buf_append_str(&b, "next"), 0);
	ASSERT_BYTES(&b, "next");

	/* A burst that leaves a small tail (at an offset): the tail moves into KEEP bytes. */
	buf_clear(&b);
	ASSERT_EQ(buf_append(&b, big, sizeof(big)), 0);
	buf_consume(&b, sizeof(big) - 100);
	ASSERT_GT(b.off, 0);
	ASSERT_EQ(buf_trim(&b, KEEP), 0);
	ASSERT_EQ(b.cap, KEEP);
	ASSERT_EQ(b.off, 0);
	ASSERT_EQ(b.len, 100);
	ASSERT_MEM_EQ(buf_head(&b), big + sizeof(big) - 100, 100);
	ASSERT_SANE(&b);
	/* Appending after a trim grows again as usual. */
	ASSERT_EQ(buf_append(&b, big, KEEP), 0);
	ASSERT_EQ(b.len, 100 + KEEP);
	ASSERT_MEM_EQ(buf_head(&b) + 100, big, KEEP);

	/* Exactly KEEP bytes unread fits; KEEP + 1 does not. */
	buf_clear(&b);
	ASSERT_EQ(buf_append(&b, big, KEEP + 1), 0);
	ASSERT_EQ(buf_trim(&b, KEEP), 0);
	ASSERT_GT(b.cap, KEEP);
	buf_consume(&b, 1);
	ASSERT_EQ(buf_trim(&b, KEEP), 0);
	ASSERT_EQ(b.cap, KEEP);
	ASSERT_MEM_EQ(buf_head(&b), big + 1, KEEP);

	/*
	 * Growing one byte at a time with a trim after every append (as a session does after
	 * every feed) never shrinks the growing buffer, so the bytes are copied O(n), not O(n^2).
	 */
	buf_finish(&b);
	size_t reallocs = 0;
	uint8_t *last = NULL;
	for (size_t i = 0; i < 300000; i++) {
		ASSERT_EQ(buf_append(&b, big + i, 1), 0);
		ASSERT_EQ(buf_trim(&b, KEEP), 0);
		if (b.data != last) {
			reallocs++;
			last = b.data;
		}
	}
	ASSERT_LE(reallocs, 20);
	ASSERT_MEM_EQ(buf_head(&b), big, 300000);
	buf_finish(&b);

	/* keep 0: release whenever empty. */
	ASSERT_EQ(buf_append_str(&b, "x"), 0);
	ASSERT_EQ(buf_trim(&b, 0), 0);
	ASSERT_BYTES(&b, "x");
	buf_consume(&b, 1);
	ASSERT_EQ(buf_trim(&b, 0), 0);
	ASSERT_EQ(b.cap, 0);
}

int main(void)
{
	RUN(test_init_finish);
	RUN(test_append_and_grow);
	RUN(test_reserve);
	RUN(test_consume_and_compact);
	RUN(test_clear);
	RUN(test_printf);
	RUN(test_trim);
	TEST_DONE();
}
