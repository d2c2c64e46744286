/*
 * Wbi signing: the published test vectors (bilibili-protocol.md §2.3), key extraction from
 * nav's URLs, encodeURIComponent on every byte, and the refusals.
 */
#include <errno.h>

#include "test.h"
#include "wbi.h"

static const char img[] = "7cd084941338484aae1ad9425b84077c";
static const char sub[] = "4932caff0ff746eab6f01bf08b70ac45";

static void test_keys(void)
{
	char k[WBI_KEY_LEN + 1];
	ASSERT_EQ(wbi_key_from_url(
	              "https://i0.hdslb.com/bfs/wbi/7cd084941338484aae1ad9425b84077c.png", k),
	          0);
	ASSERT_STR_EQ(k, img);
	ASSERT_EQ(wbi_key_from_url("4932caff0ff746eab6f01bf08b70ac45", k), 0);
	ASSERT_STR_EQ(k, sub);
	ASSERT_EQ(wbi_key_from_url("https://x/bfs/wbi/7cd084941338484aae1ad9425b84077.png", k),
	          -EINVAL);
	ASSERT_EQ(wbi_key_from_url("https://x/bfs/wbi/7cd084941338484aae1ad9425b84077c0.png", k),
	          -EINVAL);
	ASSERT_EQ(wbi_key_from_url("https://x/bfs/wbi/7cd084941338484aae1ad9425b8407%c.png", k),
	          -EINVAL);
	ASSERT_EQ(wbi_key_from_url("", k), -EINVAL);
	char mixin[WBI_KEY_LEN + 1];
	wbi_mixin_key(img, sub, mixin);
	ASSERT_STR_EQ(mixin, "ea1db124af3c7062474693fa704f4ff8");
}

static void test_vectors(void)
{
	char mixin[WBI_KEY_LEN + 1];
	wbi_mixin_key(img, sub, mixin);
	struct buf b;
	buf_init(&b);
	const struct wbi_param p1[] = {{"foo", "114"}, {"bar", "514"}, {"zab", "1919810"}};
	ASSERT_EQ(wbi_sign(&b, p1, 3, 1702204169, mixin), 0);
	buf_append(&b, "", 1);
	ASSERT_STR_EQ((const char *)buf_head(&b), "bar=514&foo=114&wts=1702204169&zab=1919810"
	                                          "&w_rid=8f6f2b5b3d485fe1886cec6a0be8c5d4");
	/* A real getDanmuInfo signing (xfgryujk/blivedm#84). */
	buf_clear(&b);
	const struct wbi_param p2[] = {{"type", "0"}, {"id", "5553263"}};
	ASSERT_EQ(wbi_sign(&b, p2, 2, 1776925721, mixin), 0);
	buf_append(&b, "", 1);
	ASSERT_STR_EQ((const char *)buf_head(&b),
	              "id=5553263&type=0&wts=1776925721&w_rid=2662a4f8479c442aa069cef32d60394b");
	buf_finish(&b);
}

static void test_encoding(void)
{
	struct buf b;
	buf_init(&b);
	ASSERT_EQ(wbi_encode_component(&b, "one one four"), 0);
	ASSERT_EQ(wbi_encode_component(&b, "五一四"), 0);
	buf_append(&b, "", 1);
	ASSERT_STR_EQ((const char *)buf_head(&b), "one%20one%20four%E4%BA%94%E4%B8%80%E5%9B%9B");
	/* Every byte: kept exactly when encodeURIComponent keeps it. */
	for (int c = 1; c < 256; c++) {
		char s[2] = {(char)c, 0};
		buf_clear(&b);
		ASSERT_EQ(wbi_encode_component(&b, s), 0);
		int keep = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		           (c >= 'A' && c <= 'Z') || strchr("-_.!~*'()", c);
		ASSERT_EQ(b.len, keep ? 1 : 3);
		if (!keep) {
			char want[4];
			snprintf(want, sizeof(want), "%%%02X", c);
			ASSERT_MEM_EQ(buf_head(&b), want, 3);
		}
	}
	/* In a signed query, !'()* are dropped from values (and so from the signature). */
	char mixin[WBI_KEY_LEN + 1];
	wbi_mixin_key(img, sub, mixin);
	buf_clear(&b);
	const struct wbi_param p[] = {
	    {"foo", "one one four"}, {"bar", "五一四"}, {"baz", "1919810"}, {"q", "a!b'c(d)e*f"}};
	ASSERT_EQ(wbi_sign(&b, p, 4, 1, mixin), 0);
	buf_append(&b, "", 1);
	const char *q = (const char *)buf_head(&b);
	ASSERT(strncmp(q,
	               "bar=%E4%BA%94%E4%B8%80%E5%9B%9B&baz=1919810&foo=one%20one%20four"
	               "&q=abcdef&wts=1&w_rid=",
	               86) == 0);
	ASSERT_EQ(strlen(q), 86 + 32);
	buf_finish(&b);
}

static void test_refusals(void)
{
	char mixin[WBI_KEY_LEN + 1];
	wbi_mixin_key(img, sub, mixin);
	struct buf b;
	buf_init(&b);
	const struct wbi_param dup[] = {{"a", "1"}, {"a", "2"}};
	const struct wbi_param wts[] = {{"wts", "1"}};
	const struct wbi_param rid[] = {{"w_rid", "1"}};
	ASSERT_EQ(wbi_sign(&b, dup, 2, 1, mixin), -EINVAL);
	ASSERT_EQ(wbi_sign(&b, wts, 1, 1, mixin), -EINVAL);
	ASSERT_EQ(wbi_sign(&b, rid, 1, 1, mixin), -EINVAL);
	struct wbi_param many[16];
	for (int i = 0; i < 16; i++)
		many[i] = (struct wbi_param){"k", "v"};
	ASSERT_EQ(wbi_sign(&b, many, 16, 1, mixin), -EINVAL);
	ASSERT_EQ(b.len, 0);
	buf_finish(&b);
}

int main(void)
{
	RUN(test_keys);
	RUN(test_vectors);
	RUN(test_encoding);
	RUN(test_refusals);
	TEST_DONE();
}
