/*
 * http: HTTP/1.1 client requests and an incremental response parser (RFC 9112). Pure: no
 * I/O. The parser takes the bytes a connection delivers, cut anywhere, and yields the status,
 * the headers and the body decoded from its framing (Content-Length, chunked, or up to the
 * close), all bounded: the head by HTTP_HEAD_MAX, the body by the caller's limit. Nothing
 * is decompressed: we never ask for a content coding and refuse one we did not ask for.
 */
#ifndef DANMAKUD_HTTP_H
#define DANMAKUD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define HTTP_HEAD_MAX (16u << 10) /* status line + headers (+ chunked trailers) */
#define HTTP_MAX_HEADERS 64

/* A span of the parsed head (not NUL-terminated). */
struct http_header {
	const char *name;
	size_t name_len;
	const char *value; /* without surrounding spaces */
	size_t value_len;
};

struct http_head {
	int status;
	int minor; /* HTTP/1.<minor> */
	const char *reason;
	size_t reason_len;
	struct http_header h[HTTP_MAX_HEADERS];
	size_t n;
};

/*
 * Parse one response head from data[0..len). Returns its length through the blank line
 * (> 0), -EAGAIN when more bytes are needed, or -EPROTO with a message in err (which may be
 * NULL): not HTTP/1.x, a bad status or header line, more than HTTP_MAX_HEADERS headers, a
 * head longer than HTTP_HEAD_MAX. Spans in *h point into data.
 */
long http_parse_head(const uint8_t *data, size_t len, struct http_head *h, char *err,
                     size_t errlen);

/* The first header named name (case-insensitive) at index >= *from, or NULL; *from is left
 * just past it so that repeated calls walk every copy. from may be NULL (start at 0). */
const struct http_header *http_header_find(const struct http_head *h, const char *name,
                                           size_t *from);

/* Is h named name (case-insensitive)? */
bool http_header_is(const struct http_header *h, const char *name);

/* Offset just past the first blank line ("\r\n\r\n") in p[0..len) at or after from, or 0.
 * A caller gathering a head searches only new bytes: from = old length - 3. */
size_t http_head_end(const uint8_t *p, size_t len, size_t from);

/* Could p[0..len) be the start of an HTTP/1.x response? (Refuse garbage at its first bytes
 * rather than after HTTP_HEAD_MAX of them.) */
bool http_could_be_response(const uint8_t *p, size_t len);

/* Does the comma-separated list v[0..len) hold token (case-insensitive)? */
bool http_has_token(const char *v, size_t len, const char *token);

enum http_resp_state { HTTP_RESP_HEAD, HTTP_RESP_BODY, HTTP_RESP_DONE, HTTP_RESP_FAILED };

struct http_resp {
	enum http_resp_state state;
	size_t max_body;
	struct buf raw; /* the head's bytes; head spans point into it */
	struct http_head head;
	struct buf body; /* the decoded body (NUL-terminated past body.len when done) */
	/* body framing */
	enum { BODY_LENGTH, BODY_CHUNKED, BODY_CLOSE } framing;
	uint64_t remaining; /* BODY_LENGTH: bytes left; BODY_CHUNKED: of this chunk */
	int chunk_state;    /* where in the chunked framing we are */
	size_t line_len;    /* bytes of the current chunk-size or trailer line */
	size_t trailer_len; /* bytes of trailers so far */
	char err[128];
};

void http_resp_init(struct http_resp *r, size_t max_body);
void http_resp_finish(struct http_resp *r);

/*
 * Feed bytes from the connection. Returns 1 when the response is complete (bytes after it
 * are ignored: we send one request per connection), 0 when more are needed, or a negative
 * errno with r->err set: -EPROTO (malformed head, framing or chunk), -EMSGSIZE (body above
 * max_body), -ENOMEM. Interim 1xx responses are skipped.
 */
int http_resp_feed(struct http_resp *r, const uint8_t *data, size_t len);
/* The peer closed the connection: 1 when that completes the response (a body delimited by
 * the close), otherwise -EPROTO ("response truncated"). */
int http_resp_eof(struct http_resp *r);

/* Append a GET request for path on host (as the Host header) with the extra header lines
 * (each "Name: value", may be NULL) and Connection: close. Returns 0, -ENOMEM or -EINVAL
 * when any part holds CR, LF or NUL. */
int http_format_get(struct buf *out, const char *host, const char *path, const char *const *headers,
                    size_t n_headers);

#endif
