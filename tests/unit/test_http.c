/*
 * HTTP responses: every framing, fed whole, one byte at a time and cut at every point in two;
 * every malformed head and body refused with its message; requests refuse header injection.
 */
#include <errno.h>
#include <stdbool.h>

#include "http.h"
#include "test.h"

/* Feed s in pieces of step bytes (0: whole) and, when eof, close. Returns the last result. */
static int run(struct http_resp *r, const char *s, size_t len, size_t step, bool eof)
{
	int rc = 0;
	if (step == 0)
		step = len ? len : 1;
	for (size_t off = 0; off < len && rc == 0; off += step)
		rc = http_resp_feed(r, (const uint8_t *)s + off,
		                    step < len - off ? step : len - off);
	if (rc == 0 && eof)
		rc = http_resp_eof(r);
	return rc;
}

/* Every way of cutting s (whole, bytewise, every two-piece split) gives want_rc and body. */
static bool each_cut(const char *s, size_t max, bool eof, int want_rc, const char *want_body,
                     const char *want_err)
{
	size_t len = strlen(s);
	for (size_t mode = 0; mode < 2 + len; mode++) {
		struct http_resp r;
		http_resp_init(&r, max);
		int rc;
		if (mode < 2) {
			rc = run(&r, s, len, mode, eof);
		} else {
			size_t cut = mode - 2;
			rc = http_resp_feed(&r, (const uint8_t *)s, cut);
			if (rc == 0)
				rc = run(&r, s + cut, len - cut, 0, eof);
		}
		bool ok = rc == want_rc;
		if (ok && want_body)
			ok = r.body.len == strlen(want_body) &&
			     memcmp(buf_head(&r.body), want_body, r.body.len) == 0 &&
			     buf_head(&r.body)[r.body.len] == 0;
		if (ok && want_err)
			ok = strcmp(r.err, want_err) == 0;
		if (!ok)
			printf("# mode %zu: rc %d (want %d), err \"%s\" (want \"%s\"), body %zu "
			       "bytes\n",
			       mode, rc, want_rc, r.err, want_err ? want_err : "", r.body.len);
		http_resp_finish(&r);
		if (!ok)
			return false;
	}
	return true;
}

static void test_content_length(void)
{
	ASSERT(each_cut("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	                "Content-Length: 12\r\n\r\n{\"code\":0}\r\n",
	                1 << 20, false, 1, "{\"code\":0}\r\n", NULL));
	/* Bytes after the body are not ours (one request per connection). */
	ASSERT(each_cut("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", 100, false, 1, "ok",
	                NULL));
	/* Equal copies are fine; a zero length completes with the head. */
	ASSERT(each_cut("HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok", 100,
	                false, 1, "ok", NULL));
	ASSERT(each_cut("HTTP/1.1 412 Precondition Failed\r\nContent-Length: 0\r\n\r\n", 100, false,
	                1, "", NULL));
	ASSERT(each_cut("HTTP/1.0 204 No Content\r\n\r\n", 100, false, 1, "", NULL));
	/* The head as parsed. */
	struct http_resp r;
	http_resp_init(&r, 100);
	const char *s = "HTTP/1.1 412 Precondition Failed\r\nSet-Cookie: a=1\r\nX:  y \r\n"
	                "set-cookie: b=2; Path=/\r\nContent-Length: 0\r\n\r\n";
	ASSERT_EQ(run(&r, s, strlen(s), 0, false), 1);
	ASSERT_EQ(r.head.status, 412);
	ASSERT_EQ(r.head.minor, 1);
	ASSERT_EQ(r.head.reason_len, 19);
	ASSERT_MEM_EQ(r.head.reason, "Precondition Failed", 19);
	ASSERT_EQ(r.head.n, 4);
	size_t from = 0;
	const struct http_header *h = http_header_find(&r.head, "SET-COOKIE", &from);
	ASSERT(h && h->value_len == 3 && memcmp(h->value, "a=1", 3) == 0);
	h = http_header_find(&r.head, "set-cookie", &from);
	ASSERT(h && h->value_len == 11 && memcmp(h->value, "b=2; Path=/", 11) == 0);
	ASSERT(!http_header_find(&r.head, "set-cookie", &from));
	h = http_header_find(&r.head, "x", NULL);
	ASSERT(h && h->value_len == 1 && h->value[0] == 'y');
	http_resp_finish(&r);
}

static void test_chunked(void)
{
	ASSERT(each_cut("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	                "5\r\nhello\r\n1;ext=\"x\"\r\n,\r\nB \r\n 0123456789\r\n0\r\n\r\n",
	                100, false, 1, "hello, 0123456789", NULL));
	/* Trailers are read and dropped; upper-case hex; a coding list with spaces. */
	ASSERT(each_cut("HTTP/1.1 200 OK\r\nTransfer-Encoding:  Chunked \r\n\r\n"
	                "1F\r\n0123456789012345678901234567890\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n",
	                100, false, 1, "0123456789012345678901234567890", NULL));
	/* Exactly at the limit is fine; one byte more is not, whether in one chunk or two. */
	ASSERT(
	    each_cut("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
	             4, false, 1, "abcd", NULL));
	ASSERT(
	    each_cut("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n",
	             4, false, -EMSGSIZE, NULL, "response body larger than 4 bytes"));
	ASSERT(each_cut("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	                "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
	                4, false, -EMSGSIZE, NULL, "response body larger than 4 bytes"));
	ASSERT(each_cut("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	                "FFFFFFFFFFFFFFFFFFFFFFFF\r\n",
	                1 << 20, false, -EMSGSIZE, NULL,
	                "response body larger than 1048576 bytes"));
	/* Transfer-Encoding wins over Content-Length (RFC 9112 §6.3). */
	ASSERT(
	    each_cut("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
	             "2\r\nok\r\n0\r\n\r\n",
	             100, false, 1, "ok", NULL));
}

static void test_close_delimited(void)
{
	ASSERT(each_cut("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", 100,
	                true, 1, "until the end", NULL));
	ASSERT(each_cut("HTTP/1.1 200 OK\r\n\r\n0123456789", 9, true, -EMSGSIZE, NULL,
	                "response body larger than 9 bytes"));
	/* 1xx interim responses are skipped. */
	ASSERT(each_cut("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n"
	                "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
	                100, false, 1, "z", NULL));
}

static void test_truncated(void)
{
	ASSERT(each_cut("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 100, true, -EPROTO,
	                NULL, "response truncated"));
	ASSERT(each_cut("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 100, true,
	                -EPROTO, NULL, "response truncated"));
	ASSERT(each_cut("HTTP/1.1 200 OK\r\nContent-", 100, true, -EPROTO, NULL,
	                "response truncated"));
	struct http_resp r;
	http_resp_init(&r, 10);
	ASSERT_EQ(http_resp_eof(&r), -EPROTO);
	ASSERT_STR_EQ(r.err, "response truncated");
	http_resp_finish(&r);
}

static void test_bad_heads(void)
{
	const struct {
		const char *s, *err;
	} bad[] = {
	    {"SSH-2.0-OpenSSH\r\n\r\n", "not HTTP/1.x"},
	    {"HTTP/2 200\r\n\r\n", "not HTTP/1.x"},
	    {"HTTP/1.1 20 OK\r\n\r\n", "bad status line"},
	    {"HTTP/1.1 200OK\r\n\r\n", "bad status line"},
	    {"HTTP/1.1 600 Huh\r\n\r\n", "bad status line"},
	    {"HTTP/1.1  200 OK\r\n\r\n", "bad status line"},
	    {"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", "bad status line"},
	    {"HTTP/1.1 200 OK\r\nName : v\r\n\r\n", "bad header line"},
	    {"HTTP/1.1 200 OK\r\nNo colon\r\n\r\n", "bad header line"},
	    {"HTTP/1.1 200 OK\r\n: empty name\r\n\r\n", "bad header line"},
	    {"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n", "bad header line"},
	    {"HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", "bad header line"},
	    {"HTTP/1.1 101 Switching Protocols\r\n\r\n", "unexpected 101 Switching Protocols"},
	    {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
	     "bad Content-Length"},
	    {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"},
	    {"HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n", "bad Content-Length"},
	    {"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
	     "bad Content-Length"},
	    {"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n",
	     "response body larger than 100 bytes"},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	     "unsupported Transfer-Encoding"},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	     "unsupported Transfer-Encoding"},
	    {"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\n",
	     "unrequested Content-Encoding: br"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int want = strstr(bad[i].err, "larger") ? -EMSGSIZE : -EPROTO;
		if (!each_cut(bad[i].s, 100, false, want, NULL, bad[i].err)) {
			TEST_FAIL_("case %zu: %s", i, bad[i].s);
			return;
		}
	}
	/* Too many headers, and a head that never ends. */
	struct buf b;
	buf_init(&b);
	buf_append_str(&b, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i <= HTTP_MAX_HEADERS; i++)
		buf_printf(&b, "H%d: v\r\n", i);
	buf_append_str(&b, "\r\n");
	buf_append(&b, "", 1);
	ASSERT(each_cut((const char *)buf_head(&b), 100, false, -EPROTO, NULL,
	                "more than 64 headers"));
	buf_clear(&b);
	buf_append_str(&b, "HTTP/1.1 200 OK\r\n");
	while (b.len <= HTTP_HEAD_MAX)
		buf_append_str(&b, "X-Long: 0123456789012345678901234567890123456789\r\n");
	struct http_resp r;
	http_resp_init(&r, 100);
	ASSERT_EQ(run(&r, (const char *)buf_head(&b), b.len, 1, false), -EPROTO);
	ASSERT_STR_EQ(r.err, "head larger than 16384 bytes");
	ASSERT_LE(r.raw.len, HTTP_HEAD_MAX);
	/* A failed parser stays failed. */
	ASSERT_EQ(http_resp_feed(&r, (const uint8_t *)"\r\n\r\n", 4), -EPROTO);
	http_resp_finish(&r);
	buf_finish(&b);
}

static void test_bad_chunks(void)
{
	const struct {
		const char *body, *err;
	} bad[] = {
	    {"\r\n", "bad chunk size"},
	    {"g\r\n", "bad chunk size"},
	    {";x\r\n", "bad chunk size"},
	    {"5\nhello\r\n", "bad chunk size"},
	    {"5\r\nhelloX\r\n", "chunk data not followed by CRLF"},
	    {"5\r\nhello\rX", "chunk data not followed by CRLF"},
	    {"1;a\nb\r\n", "bad chunk extension"},
	    {"0\r\nX: y\nZ", "bad trailer line"},
	    {"0\r\n\rX", "bad trailer line"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char s[256];
		snprintf(s, sizeof(s), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s",
		         bad[i].body);
		if (!each_cut(s, 100, false, -EPROTO, NULL, bad[i].err)) {
			TEST_FAIL_("case %zu: %s", i, bad[i].body);
			return;
		}
	}
}

static void test_format_get(void)
{
	struct buf b;
	buf_init(&b);
	const char *hdr[] = {"User-Agent: danmakud/0.1", "Cookie: buvid3=x"};
	ASSERT_EQ(
	    http_format_get(&b, "api.live.bilibili.com", "/room/v1/Room/room_init?id=76", hdr, 2),
	    0);
	const char *want = "GET /room/v1/Room/room_init?id=76 HTTP/1.1\r\n"
	                   "Host: api.live.bilibili.com\r\nUser-Agent: danmakud/0.1\r\n"
	                   "Cookie: buvid3=x\r\nConnection: close\r\n\r\n";
	ASSERT_EQ(b.len, strlen(want));
	ASSERT_MEM_EQ(buf_head(&b), want, b.len);
	/* Nothing a caller passes can add a line. */
	const char *evil[] = {"X: a\r\nInjected: 1"};
	const char *nocolon[] = {"Just text"};
	buf_clear(&b);
	ASSERT_EQ(http_format_get(&b, "h\r\nX: y", "/", NULL, 0), -EINVAL);
	ASSERT_EQ(http_format_get(&b, "h", "/a b", NULL, 0), -EINVAL);
	ASSERT_EQ(http_format_get(&b, "h", "/a\nb", NULL, 0), -EINVAL);
	ASSERT_EQ(http_format_get(&b, "h", "nopath", NULL, 0), -EINVAL);
	ASSERT_EQ(http_format_get(&b, "h", "/", evil, 1), -EINVAL);
	ASSERT_EQ(http_format_get(&b, "h", "/", nocolon, 1), -EINVAL);
	ASSERT_EQ(b.len, 0);
	buf_finish(&b);
}

static void test_tokens(void)
{
	ASSERT(http_has_token("keep-alive, Upgrade", 19, "upgrade"));
	ASSERT(http_has_token(" websocket ", 11, "WebSocket"));
	ASSERT(!http_has_token("websockets", 10, "websocket"));
	ASSERT(!http_has_token("", 0, "x"));
}

int main(void)
{
	RUN(test_content_length);
	RUN(test_chunked);
	RUN(test_close_delimited);
	RUN(test_truncated);
	RUN(test_bad_heads);
	RUN(test_bad_chunks);
	RUN(test_format_get);
	RUN(test_tokens);
	TEST_DONE();
}
