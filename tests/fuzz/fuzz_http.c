/*
 * fuzz_http: libFuzzer target for the HTTP response parser.
 * Input: byte 0 gives k (0..15), the next k bytes are piece sizes, the rest is the response.
 * It is fed to one parser whole and to another in the pieces (cycled, 0 meaning 1), each
 * then told of the close; both must end the same way with the same body, within the head
 * and body bounds. http_parse_head also runs on the raw bytes. Violations trap.
 */
#include "http.h"
#include "fuzz.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define MAX_BODY 4096

static int finish(struct http_resp *r, int rc)
{
	if (rc == 0)
		rc = http_resp_eof(r);
	check(rc == 1 || rc == -EPROTO || rc == -EMSGSIZE);
	check(r->raw.len <= HTTP_HEAD_MAX && r->body.len <= MAX_BODY);
	if (rc == 1)
		check(r->state == HTTP_RESP_DONE && buf_head(&r->body)[r->body.len] == 0 &&
		      r->head.status >= 200 && r->head.status <= 599);
	else
		check(r->err[0] != 0);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_split sp;
	if (!fuzz_split_init(&sp, data, size))
		return 0;
	const uint8_t *s = sp.stream;
	size_t len = sp.len;

	struct http_head h;
	long hr = http_parse_head(s, len, &h, NULL, 0);
	check(hr == -EAGAIN || hr == -EPROTO || (hr > 0 && (size_t)hr <= len));
	if (hr > 0)
		for (size_t i = 0; i < h.n; i++)
			check(h.h[i].name_len > 0 &&
			      h.h[i].value + h.h[i].value_len <= (const char *)s + (size_t)hr);

	struct http_resp a, b;
	http_resp_init(&a, MAX_BODY);
	http_resp_init(&b, MAX_BODY);
	int ra = finish(&a, http_resp_feed(&a, s, len));
	int rb = 0;
	size_t off = 0;
	while (off < len && rb == 0) {
		size_t n = fuzz_split_next(&sp, off);
		rb = http_resp_feed(&b, s + off, n);
		off += n;
	}
	rb = finish(&b, rb);
	check(ra == rb);
	if (ra == 1)
		check(a.body.len == b.body.len &&
		      memcmp(buf_head(&a.body), buf_head(&b.body), a.body.len) == 0 &&
		      a.head.status == b.head.status);
	else
		check(strcmp(a.err, b.err) == 0);
	http_resp_finish(&a);
	http_resp_finish(&b);
	return 0;
}
