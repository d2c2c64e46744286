/*
 * http: HTTP/1.1 requests and the incremental response parser (see http.h).
 *
 * The head is gathered into r->raw until its blank line (at most HTTP_HEAD_MAX bytes),
 * parsed once, and the body framing chosen from it as RFC 9112 §6.3 says for a response to
 * GET. Chunked bodies run through a byte-at-a-time state machine that copies data runs
 * whole; line endings are strict CRLF.
 */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "text.h"

enum {
	CS_SIZE,
	CS_EXT,
	CS_SIZE_LF,
	CS_DATA,
	CS_DATA_CR,
	CS_DATA_LF,
	CS_TRAILER_START,
	CS_TRAILER,
	CS_TRAILER_LF,
	CS_END_LF,
};

#define CHUNK_LINE_MAX 4096 /* chunk-size line with extensions */

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static bool ieq(const char *p, size_t n, const char *s)
{
	if (strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)p[i]) != lower((unsigned char)s[i]))
			return false;
	return true;
}

static bool is_ows(int c)
{
	return c == ' ' || c == '\t';
}

/* RFC 9110 tchar: the characters allowed in a header name. */
static bool is_tchar(uint8_t c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

bool http_has_token(const char *v, size_t len, const char *token)
{
	size_t i = 0;
	while (i < len) {
		size_t start = i;
		while (i < len && v[i] != ',')
			i++;
		size_t end = i;
		while (start < end && is_ows(v[start]))
			start++;
		while (end > start && is_ows(v[end - 1]))
			end--;
		if (ieq(v + start, end - start, token))
			return true;
		i++; /* skip the comma */
	}
	return false;
}

bool http_header_is(const struct http_header *h, const char *name)
{
	return ieq(h->name, h->name_len, name);
}

const struct http_header *http_header_find(const struct http_head *h, const char *name,
                                           size_t *from)
{
	for (size_t i = from ? *from : 0; i < h->n; i++)
		if (http_header_is(&h->h[i], name)) {
			if (from)
				*from = i + 1;
			return &h->h[i];
		}
	if (from)
		*from = h->n;
	return NULL;
}

size_t http_head_end(const uint8_t *p, size_t len, size_t from)
{
	for (size_t i = from; i + 4 <= len; i++) {
		if (p[i + 3] != '\n') /* the common miss; skip the rest of the compare */
			continue;
		if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r')
			return i + 4;
	}
	return 0;
}

/* End of the line starting at pos (the offset of its CR), or 0 when the line holds a bare
 * CR, LF or NUL. The caller knows a CRLF follows within len. */
static size_t line_end(const uint8_t *p, size_t pos, size_t len)
{
	size_t e = pos;
	while (e < len && p[e] != '\r' && p[e] != '\n' && p[e] != '\0')
		e++;
	return e + 1 < len && p[e] == '\r' && p[e + 1] == '\n' ? e : 0;
}

bool http_could_be_response(const uint8_t *p, size_t len)
{
	static const char prefix[] = "HTTP/1.";
	return memcmp(p, prefix, len < 7 ? len : 7) == 0;
}

long http_parse_head(const uint8_t *data, size_t len, struct http_head *h, char *err, size_t errlen)
{
	/* Fail garbage at once rather than waiting 16 KiB for a blank line that never comes. */
	if (!http_could_be_response(data, len))
		return text_err(-EPROTO, err, errlen, "not HTTP/1.x");
	size_t end = http_head_end(data, len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX, 0);
	if (end == 0) {
		if (len >= HTTP_HEAD_MAX)
			return text_err(-EPROTO, err, errlen, "head larger than %u bytes",
			                HTTP_HEAD_MAX);
		return -EAGAIN;
	}
	memset(h, 0, sizeof(*h));
	/* Status line: HTTP/1.d SP 3DIGIT [SP reason]. */
	const uint8_t *s = data;
	size_t eol = line_end(data, 0, end);
	if (eol < 12 || s[7] < '0' || s[7] > '9' || s[8] != ' ' || s[9] < '1' || s[9] > '5' ||
	    s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9' || (eol > 12 && s[12] != ' '))
		return text_err(-EPROTO, err, errlen, "bad status line");
	h->minor = s[7] - '0';
	h->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	h->reason = (const char *)s + (eol > 12 ? 13 : eol);
	h->reason_len = eol > 13 ? eol - 13 : 0;
	size_t pos = eol + 2;
	while (pos < end - 2) {
		/* One header line: name ":" OWS value OWS CRLF. No obsolete line folding. */
		size_t le = line_end(data, pos, end);
		if (le == 0)
			return text_err(-EPROTO, err, errlen, "bad header line");
		size_t colon = pos;
		while (colon < le && is_tchar(data[colon]))
			colon++;
		if (colon == pos || colon == le || data[colon] != ':')
			return text_err(-EPROTO, err, errlen, "bad header line");
		if (h->n == HTTP_MAX_HEADERS)
			return text_err(-EPROTO, err, errlen, "more than %d headers",
			                HTTP_MAX_HEADERS);
		size_t vs = colon + 1, ve = le;
		while (vs < ve && is_ows(data[vs]))
			vs++;
		while (ve > vs && is_ows(data[ve - 1]))
			ve--;
		struct http_header *hd = &h->h[h->n++];
		hd->name = (const char *)data + pos;
		hd->name_len = colon - pos;
		hd->value = (const char *)data + vs;
		hd->value_len = ve - vs;
		pos = le + 2;
	}
	return (long)end;
}

void http_resp_init(struct http_resp *r, size_t max_body)
{
	memset(r, 0, sizeof(*r));
	r->max_body = max_body;
	buf_init(&r->raw);
	buf_init(&r->body);
}

void http_resp_finish(struct http_resp *r)
{
	buf_finish(&r->raw);
	buf_finish(&r->body);
	http_resp_init(r, r->max_body);
}

/* Fail the response for good: every later call returns rc too. */
#define resp_fail(r, rc, ...)                                                                      \
	((r)->state = HTTP_RESP_FAILED, text_err((rc), (r)->err, sizeof((r)->err), __VA_ARGS__))

static int done(struct http_resp *r)
{
	if (buf_reserve(&r->body, 1) < 0)
		return resp_fail(r, -ENOMEM, "out of memory");
	buf_head(&r->body)[r->body.len] = 0;
	r->state = HTTP_RESP_DONE;
	return 1;
}

/* Choose the body framing from a final response's head (RFC 9112 §6.3). */
static int choose_framing(struct http_resp *r)
{
	const struct http_head *h = &r->head;
	const struct http_header *ce = http_header_find(h, "content-encoding", NULL);
	if (ce && ce->value_len && !ieq(ce->value, ce->value_len, "identity"))
		return resp_fail(r, -EPROTO, "unrequested Content-Encoding: %.*s",
		                 ce->value_len > 32 ? 32 : (int)ce->value_len, ce->value);
	if (h->status == 204 || h->status == 304)
		return done(r);
	size_t from = 0, codings = 0;
	bool chunked_last = false;
	for (const struct http_header *te;
	     (te = http_header_find(h, "transfer-encoding", &from));) {
		/* Each coding in turn; only "chunked", once and last, is one we can undo. */
		size_t i = 0;
		while (i < te->value_len) {
			size_t st = i;
			while (i < te->value_len && te->value[i] != ',')
				i++;
			size_t en = i++;
			while (st < en && is_ows(te->value[st]))
				st++;
			while (en > st && is_ows(te->value[en - 1]))
				en--;
			if (st == en)
				continue;
			codings++;
			chunked_last = ieq(te->value + st, en - st, "chunked");
		}
	}
	if (codings > 0) {
		if (codings != 1 || !chunked_last)
			return resp_fail(r, -EPROTO, "unsupported Transfer-Encoding");
		r->framing = BODY_CHUNKED;
		r->chunk_state = CS_SIZE;
		return 0;
	}
	from = 0;
	bool have_len = false;
	int64_t len = 0;
	for (const struct http_header *cl; (cl = http_header_find(h, "content-length", &from));) {
		int64_t v;
		if (!text_int(cl->value, cl->value_len, 0, INT64_MAX, &v) || (have_len && v != len))
			return resp_fail(r, -EPROTO, "bad Content-Length");
		have_len = true;
		len = v;
	}
	if (have_len) {
		if ((uint64_t)len > r->max_body)
			return resp_fail(r, -EMSGSIZE, "response body larger than %zu bytes",
			                 r->max_body);
		r->framing = BODY_LENGTH;
		r->remaining = (uint64_t)len;
		if (len == 0)
			return done(r);
		return 0;
	}
	r->framing = BODY_CLOSE;
	return 0;
}

static int body_append(struct http_resp *r, const uint8_t *p, size_t n)
{
	if (n > r->max_body - r->body.len)
		return resp_fail(r, -EMSGSIZE, "response body larger than %zu bytes", r->max_body);
	if (buf_append(&r->body, p, n) < 0)
		return resp_fail(r, -ENOMEM, "out of memory");
	return 0;
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (uint8_t)lower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Run the chunked decoder over p[0..n). Returns 1 when the body ended, 0 or an error. */
static int feed_chunked(struct http_resp *r, const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		switch (r->chunk_state) {
		case CS_SIZE: {
			int d = hexval(c);
			if (d >= 0) {
				if (r->remaining > (r->max_body - r->body.len) / 16 + 1)
					return resp_fail(r, -EMSGSIZE,
					                 "response body larger than %zu bytes",
					                 r->max_body);
				r->remaining = r->remaining * 16 + (uint64_t)d;
				if (++r->line_len > CHUNK_LINE_MAX)
					return resp_fail(r, -EPROTO, "bad chunk size");
			} else if (r->line_len > 0 && (c == ';' || is_ows(c))) {
				r->chunk_state = CS_EXT;
			} else if (r->line_len > 0 && c == '\r') {
				r->chunk_state = CS_SIZE_LF;
			} else {
				return resp_fail(r, -EPROTO, "bad chunk size");
			}
			i++;
			break;
		}
		case CS_EXT:
			if (c == '\r')
				r->chunk_state = CS_SIZE_LF;
			else if (c == '\n' || c == 0 || ++r->line_len > CHUNK_LINE_MAX)
				return resp_fail(r, -EPROTO, "bad chunk extension");
			i++;
			break;
		case CS_SIZE_LF:
			if (c != '\n')
				return resp_fail(r, -EPROTO, "bad chunk size");
			if (r->remaining > r->max_body - r->body.len)
				return resp_fail(r, -EMSGSIZE,
				                 "response body larger than %zu bytes",
				                 r->max_body);
			r->chunk_state = r->remaining ? CS_DATA : CS_TRAILER_START;
			i++;
			break;
		case CS_DATA: {
			size_t take = n - i < r->remaining ? n - i : (size_t)r->remaining;
			int rc = body_append(r, p + i, take);
			if (rc < 0)
				return rc;
			r->remaining -= take;
			i += take;
			if (r->remaining == 0)
				r->chunk_state = CS_DATA_CR;
			break;
		}
		case CS_DATA_CR:
		case CS_DATA_LF:
			if (c != (r->chunk_state == CS_DATA_CR ? '\r' : '\n'))
				return resp_fail(r, -EPROTO, "chunk data not followed by CRLF");
			if (r->chunk_state == CS_DATA_LF) {
				r->line_len = 0;
				r->chunk_state = CS_SIZE;
			} else {
				r->chunk_state = CS_DATA_LF;
			}
			i++;
			break;
		case CS_TRAILER_START:
			r->chunk_state = c == '\r' ? CS_END_LF : CS_TRAILER;
			if (c != '\r')
				continue; /* the byte starts a trailer line */
			i++;
			break;
		case CS_TRAILER:
			if (++r->trailer_len > HTTP_HEAD_MAX)
				return resp_fail(r, -EPROTO, "trailers larger than %u bytes",
				                 HTTP_HEAD_MAX);
			if (c == '\r')
				r->chunk_state = CS_TRAILER_LF;
			else if (c == '\n' || c == 0)
				return resp_fail(r, -EPROTO, "bad trailer line");
			i++;
			break;
		case CS_TRAILER_LF:
		case CS_END_LF:
			if (c != '\n')
				return resp_fail(r, -EPROTO, "bad trailer line");
			if (r->chunk_state == CS_END_LF)
				return done(r);
			r->chunk_state = CS_TRAILER_START;
			i++;
			break;
		}
	}
	return 0;
}

static int feed_body(struct http_resp *r, const uint8_t *p, size_t n)
{
	switch (r->framing) {
	case BODY_LENGTH: {
		size_t take = n < r->remaining ? n : (size_t)r->remaining;
		int rc = body_append(r, p, take);
		if (rc < 0)
			return rc;
		r->remaining -= take;
		return r->remaining == 0 ? done(r) : 0;
	}
	case BODY_CHUNKED:
		return feed_chunked(r, p, n);
	case BODY_CLOSE:
		return body_append(r, p, n);
	}
	return 0;
}

int http_resp_feed(struct http_resp *r, const uint8_t *data, size_t len)
{
	if (r->state == HTTP_RESP_DONE)
		return 1;
	if (r->state == HTTP_RESP_FAILED)
		return -EPROTO;
	while (r->state == HTTP_RESP_HEAD && len > 0) {
		/* Gather the head, but never past its blank line nor past HTTP_HEAD_MAX. */
		size_t old = r->raw.len;
		size_t room = HTTP_HEAD_MAX - old;
		size_t take = len < room ? len : room;
		if (buf_append(&r->raw, data, take) < 0)
			return resp_fail(r, -ENOMEM, "out of memory");
		size_t end = http_head_end(buf_head(&r->raw), r->raw.len, old > 3 ? old - 3 : 0);
		char why[sizeof(r->err)];
		if (end == 0) {
			/* Not yet whole: still refuse what cannot become a head. */
			long rc = http_parse_head(buf_head(&r->raw), r->raw.len, &r->head, why,
			                          sizeof(why));
			if (rc != -EAGAIN)
				return resp_fail(r, -EPROTO, "%s", why);
			return 0; /* all of data is in raw */
		}
		r->raw.len = end;
		data += end - old;
		len -= end - old;
		if (http_parse_head(buf_head(&r->raw), end, &r->head, why, sizeof(why)) < 0)
			return resp_fail(r, -EPROTO, "%s", why);
		if (r->head.status / 100 == 1) {
			if (r->head.status == 101)
				return resp_fail(r, -EPROTO, "unexpected 101 Switching Protocols");
			buf_clear(&r->raw); /* an interim response: the real one follows */
			continue;
		}
		r->state = HTTP_RESP_BODY;
		int rc = choose_framing(r);
		if (rc != 0)
			return rc;
	}
	if (r->state == HTTP_RESP_BODY && len > 0)
		return feed_body(r, data, len);
	return r->state == HTTP_RESP_DONE ? 1 : 0;
}

int http_resp_eof(struct http_resp *r)
{
	if (r->state == HTTP_RESP_DONE)
		return 1;
	if (r->state == HTTP_RESP_BODY && r->framing == BODY_CLOSE)
		return done(r);
	if (r->state != HTTP_RESP_FAILED)
		resp_fail(r, -EPROTO, "response truncated");
	return -EPROTO;
}

static bool clean(const char *s)
{
	return s && !strpbrk(s, "\r\n");
}

int http_format_get(struct buf *out, const char *host, const char *path, const char *const *headers,
                    size_t n_headers)
{
	if (!clean(host) || !clean(path) || path[0] != '/' || strchr(path, ' '))
		return -EINVAL;
	for (size_t i = 0; i < n_headers; i++)
		if (!clean(headers[i]) || !strchr(headers[i], ':'))
			return -EINVAL;
	size_t before = out->len;
	int rc = buf_printf(out, "GET %s HTTP/1.1\r\nHost: %s\r\n", path, host);
	for (size_t i = 0; rc == 0 && i < n_headers; i++)
		rc = buf_printf(out, "%s\r\n", headers[i]);
	if (rc == 0)
		rc = buf_append_str(out, "Connection: close\r\n\r\n");
	if (rc < 0)
		out->len = before;
	return rc;
}
