/*
 * test_text: the shared integer, UTF-8 and JSON-string routines, on byte buffers; the UTF-8
 * checks are also run on every prefix of their inputs (as a stream fed one byte at a time
 * would see them).
 */
#include "text.h"

#include "test.h"

#include <stdint.h>

static bool I(const char *s, int64_t min, int64_t max, int64_t *v)
{
	return text_int(s, s ? strlen(s) : 0, min, max, v);
}

static void integers(void)
{
	int64_t v = 7;
	ASSERT(I("0", 0, 10, &v) && v == 0);
	ASSERT(I("10", 0, 10, &v) && v == 10);
	ASSERT(!I("11", 0, 10, &v));
	ASSERT(I("-5", -10, 10, &v) && v == -5);
	ASSERT(!I("-5", 0, 10, &v));  /* no sign where none is allowed */
	ASSERT(!I("-11", -10, 10, &v));
	ASSERT(I("9223372036854775807", INT64_MIN, INT64_MAX, &v) && v == INT64_MAX);
	ASSERT(!I("9223372036854775808", INT64_MIN, INT64_MAX, &v));
	ASSERT(I("-9223372036854775808", INT64_MIN, INT64_MAX, &v) && v == INT64_MIN);
	ASSERT(!I("-9223372036854775809", INT64_MIN, INT64_MAX, &v));
	ASSERT(!I("99999999999999999999999", INT64_MIN, INT64_MAX, &v));
	v = 42;
	ASSERT(!I("", 0, 10, &v));
	ASSERT(!I(NULL, 0, 10, &v));
	ASSERT(!I("-", -10, 10, &v));
	ASSERT(!I("+1", 0, 10, &v));
	ASSERT(!I(" 1", 0, 10, &v));
	ASSERT(!I("1 ", 0, 10, &v));
	ASSERT(!I("1x", 0, 10, &v));
	ASSERT(!I("5", 6, 10, &v));
	ASSERT(!I("1", -10, -2, &v));
	ASSERT_EQ(v, 42); /* untouched on failure */
	/* Length-bounded: "12" of "123". */
	ASSERT(text_int("123", 2, 0, 100, &v) && v == 12);
	ASSERT(text_int_str("8501", 1, 65535, &v) && v == 8501);
	ASSERT(!text_int_str(NULL, 1, 65535, &v));
	ASSERT(!text_int_str("65536", 1, 65535, &v));
}

static void utf8_decode_one(void)
{
	uint32_t cp = 0;
	ASSERT_EQ(text_utf8_decode((const unsigned char *)"a", 1, &cp), 1);
	ASSERT_EQ(cp, 'a');
	ASSERT_EQ(text_utf8_decode((const unsigned char *)"\xe4\xb8\xad", 3, &cp), 3);
	ASSERT_EQ(cp, 0x4e2d);
	ASSERT_EQ(text_utf8_decode((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp), 4);
	ASSERT_EQ(cp, 0x1f600);
	ASSERT_EQ(text_utf8_decode((const unsigned char *)"\xe4\xb8", 2, &cp), 0);     /* cut */
	ASSERT_EQ(text_utf8_decode((const unsigned char *)"\xc0\x80", 2, &cp), 0);     /* overlong */
	ASSERT_EQ(text_utf8_decode((const unsigned char *)"\xed\xa0\x80", 3, &cp), 0); /* surrogate */
	ASSERT_EQ(text_utf8_decode((const unsigned char *)"\xf4\x90\x80\x80", 4, &cp), 0);
	ASSERT_EQ(text_utf8_decode((const unsigned char *)"\x80", 1, &cp), 0);
	ASSERT_EQ(text_utf8_decode((const unsigned char *)"\xff", 1, &cp), 0);
}

static void utf8_prefix(void)
{
	static const struct {
		const char *s;
		size_t n, valid;
	} cases[] = {
		{"", 0, 0},
		{"ab\xe4\xb8\xad\"\n", 7, 7},
		{"ab\xed\xa0\x80", 5, 2},
		{"0123456789abcdef\xe4\xb8\xad", 19, 19}, /* past the 8-byte fast path */
		{"01234567\xff" "89", 11, 8},
		{"\xf0\x9f\x98\x80x\xc3", 6, 5},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ASSERT_EQ(text_utf8_valid_prefix(cases[i].s, cases[i].n), cases[i].valid);
		/* Every prefix: valid up to the first bad byte, never past the prefix itself. */
		for (size_t k = 0; k <= cases[i].n; k++) {
			size_t got = text_utf8_valid_prefix(cases[i].s, k);
			if (k <= cases[i].valid)
				ASSERT(got <= k && k - got < 4); /* only a sequence cut by k is left */
			else
				ASSERT_EQ(got, cases[i].valid);
		}
	}
}

/* Column repair: CESU-8 pairs joined, other bad sequences -> one U+FFFD each; empty input on
 * a buffer that never allocated (a UBSan finding of fuzz_stt: pointer arithmetic on NULL). */
static void utf8_repair(void)
{
	struct buf b;
	buf_init(&b);
	size_t bad = 9;
	ASSERT_EQ(text_utf8_repair(&b, "", 0, &bad), 0);
	ASSERT_EQ(bad, 0);
	ASSERT_EQ(b.len, 0);
	ASSERT_EQ(text_utf8_repair(&b, "a\"\n\xff\xed\xa0\xbd\xed\xb8\x8a\xed\xa0\x80z", 14, &bad), 0);
	ASSERT_EQ(bad, 2);
	ASSERT_MEM_EQ(buf_head(&b), "a\"\n\xef\xbf\xbd\xf0\x9f\x98\x8a\xef\xbf\xbdz", 14);
	ASSERT_EQ(b.len, 14);
	buf_finish(&b);
}

static const char *js(struct buf *b, const char *s, size_t n, size_t *bad)
{
	buf_clear(b);
	if (text_json_string(b, s, n, bad) < 0 || buf_append(b, "", 1) < 0)
		return "(error)";
	return (const char *)buf_head(b);
}

#define JS(s) js(&b, s, sizeof(s) - 1, &bad)

static void json_strings(void)
{
	struct buf b;
	buf_init(&b);
	size_t bad = 9;
	ASSERT_STR_EQ(JS(""), "\"\"");
	ASSERT_EQ(bad, 0);
	ASSERT_STR_EQ(JS("中文 😀 /"), "\"中文 😀 /\"");
	ASSERT_STR_EQ(JS("q\"b\\"), "\"q\\\"b\\\\\"");
	ASSERT_STR_EQ(JS("\n\r\t\b\f\x01\x1f"), "\"\\n\\r\\t\\b\\f\\u0001\\u001f\"");
	ASSERT_STR_EQ(JS("\x00"), "\"\\u0000\"");
	/* A bad byte and a lone surrogate: one U+FFFD each, counted. */
	ASSERT_STR_EQ(JS("a\xff" "b\xed\xa0\x80"), "\"a\xef\xbf\xbd" "b\xef\xbf\xbd\"");
	ASSERT_EQ(bad, 2);
	/* Long plain runs go through the 8-byte path and must come out unchanged. */
	ASSERT_STR_EQ(JS("0123456789abcdefghij\"0123456789"),
		      "\"0123456789abcdefghij\\\"0123456789\"");
	buf_finish(&b);
}

int main(void)
{
	RUN(integers);
	RUN(utf8_decode_one);
	RUN(utf8_prefix);
	RUN(utf8_repair);
	RUN(json_strings);
	TEST_DONE();
}
