/*
 * httpc: one HTTP/1.1 GET per connection on the loop, for the platforms' API calls before a
 * room connects. The layers are room.c's without the websocket: net.c resolves and connects,
 * tls.c (https) encrypts through memory buffers whose output we hand to net_write, and
 * http.c's pure parser frames the response. One uv_timer_t bounds the whole exchange, from
 * the lookup to the last byte. A call ends in finish(), which closes the connection first
 * (so a cb that tears the loop down finds no open net), then runs cb once, then closes the
 * timer; the call is freed when both the net and the timer have closed. Results reach the
 * caller only from net or timer callbacks, never from inside httpc_get().
 */
#include "httpc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "net.h"
#include "text.h"
#include "tls.h"

enum httpc_state { HTTPC_CONNECTING, HTTPC_TLS_HANDSHAKE, HTTPC_RECEIVING, HTTPC_DONE };

struct httpc_call {
	enum httpc_state state;
	bool cancelled;
	int pending_closes; /* the timer and the net */
	uint64_t timeout_ms;
	httpc_cb cb;
	void *user_data;
	struct net *net;
	struct tls *tls;  /* https only */
	uv_timer_t timer; /* the whole exchange */
	struct buf req;   /* the request, until it is written */
	struct http_resp resp;
	uint16_t port;
	char host[256];
};

/* ---- URL ---- */

static bool is_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 pchar plus '/' and '?' (path and query), '%' checked by the caller. */
static bool is_path_char(unsigned char c)
{
	return is_alnum(c) || (c && strchr("-._~!$&'()*+,;=:@/?%", c));
}

int httpc_url_parse(const char *url, struct httpc_url *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	size_t len = strlen(url);
	if (len > HTTPC_URL_MAX)
		return text_err(-EINVAL, err, errlen, "URL longer than %d bytes", HTTPC_URL_MAX);
	/* Whatever is wrong, the message does not repeat the URL: its query may hold keys. */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)url[i];
		if (c <= 0x20 || c >= 0x7f)
			return text_err(-EINVAL, err, errlen,
					"URL holds a space, control or non-ASCII byte at offset %zu",
					i);
	}
	if (strchr(url, '#'))
		return text_err(-EINVAL, err, errlen, "URL holds a fragment");
	const char *p;
	if (strncasecmp(url, "http://", 7) == 0) {
		out->port = 80;
		p = url + 7;
	} else if (strncasecmp(url, "https://", 8) == 0) {
		out->https = true;
		out->port = 443;
		p = url + 8;
	} else {
		return text_err(-EINVAL, err, errlen, "URL scheme must be http:// or https://");
	}
	size_t alen = strcspn(p, "/?");
	const char *aend = p + alen;
	if (memchr(p, '@', alen))
		return text_err(-EINVAL, err, errlen, "URL holds user information");

	const char *host = p, *hend;
	bool v6 = *p == '[';
	if (v6) {
		host = p + 1;
		hend = memchr(host, ']', (size_t)(aend - host));
		if (!hend)
			return text_err(-EINVAL, err, errlen, "URL has an unclosed [ in the host");
		p = hend + 1;
	} else {
		hend = host + strcspn(host, ":/?");
		p = hend;
	}
	size_t hl = (size_t)(hend - host);
	if (hl == 0)
		return text_err(-EINVAL, err, errlen, "URL has no host");
	if (hl > 253)
		return text_err(-EINVAL, err, errlen, "URL host longer than 253 bytes");
	memcpy(out->host, host, hl);
	if (v6) {
		/* No zone ("%25eth0"): uv_inet_pton would drop it silently. */
		unsigned char a6[16];
		if (strchr(out->host, '%') || uv_inet_pton(AF_INET6, out->host, a6) != 0)
			return text_err(-EINVAL, err, errlen, "URL host is not an IPv6 address");
	} else {
		for (size_t i = 0; i < hl; i++)
			if (!is_alnum((unsigned char)host[i]) && !strchr("-._", host[i]))
				return text_err(-EINVAL, err, errlen,
						"URL host holds a character other than letters, "
						"digits, '-', '.' and '_'");
	}
	if (p < aend && *p == ':') {
		int64_t port;
		if (!text_int(p + 1, (size_t)(aend - p - 1), 1, 65535, &port))
			return text_err(-EINVAL, err, errlen, "URL has a bad port");
		out->port = (uint16_t)port;
		p = aend;
	}
	if (p != aend)
		return text_err(-EINVAL, err, errlen, "URL has junk after the host");

	/* The request target: the rest, with "/" before a bare query and for nothing at all. */
	for (const char *q = aend; *q; q++) {
		if (!is_path_char((unsigned char)*q))
			return text_err(-EINVAL, err, errlen,
					"URL path holds a character that must be percent-encoded");
		if (*q == '%' && !(is_hex((unsigned char)q[1]) && is_hex((unsigned char)q[2])))
			return text_err(-EINVAL, err, errlen, "URL path holds a bad %% escape");
	}
	snprintf(out->path, sizeof(out->path), "%s%s", *aend == '/' ? "" : "/", aend);

	bool dflt = out->port == (out->https ? 443 : 80);
	char port[8] = "";
	if (!dflt)
		snprintf(port, sizeof(port), ":%u", out->port);
	snprintf(out->host_header, sizeof(out->host_header), "%s%s%s%s", v6 ? "[" : "", out->host,
		 v6 ? "]" : "", port);
	return 0;
}

/* ---- the call ---- */

static void call_release(struct httpc_call *c)
{
	if (--c->pending_closes > 0)
		return;
	tls_destroy(c->tls);
	http_resp_finish(&c->resp);
	buf_finish(&c->req);
	free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
	call_release(h->data);
}

/*
 * End the call: close the connection, stop the clock, report (unless cancelled), then close
 * the timer. c stays valid through cb: it is freed only once the timer's and the net's close
 * callbacks have run. Every path that ends a call comes here exactly once.
 */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void finish(struct httpc_call *c, int err, const char *fmt, ...)
{
	if (c->state == HTTPC_DONE)
		return;
	c->state = HTTPC_DONE;
	uv_timer_stop(&c->timer);
	if (c->net)
		net_close(c->net); /* on_net_closed follows */
	if (!c->cancelled) {
		char msg[256] = "";
		if (fmt) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(msg, sizeof(msg), fmt, ap);
			va_end(ap);
		}
		if (err == 0) {
			struct httpc_response r = {
			    .status = c->resp.head.status,
			    .head = &c->resp.head,
			    .body = (const char *)buf_head(&c->resp.body),
			    .body_len = c->resp.body.len,
			};
			c->cb(c->user_data, 0, &r, "");
		} else {
			c->cb(c->user_data, err, NULL, msg);
		}
	}
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

static void on_timeout(uv_timer_t *t)
{
	struct httpc_call *c = t->data;
	finish(c, -ETIMEDOUT, "timed out after %" PRIu64 " ms", c->timeout_ms);
}

/* Send what TLS queued (handshake records, application data, alerts). */
static int flush_tls(struct httpc_call *c)
{
	struct buf *o = tls_pending_out(c->tls);
	if (o->len == 0)
		return 0;
	int rc = net_write(c->net, buf_head(o), o->len);
	buf_clear(o);
	return rc;
}

static void write_failed(struct httpc_call *c, int rc)
{
	if (rc == UV_ENOBUFS)
		finish(c, rc, "write: write queue full");
	else
		finish(c, rc, "write: %s", uv_strerror(rc));
}

static void succeed(struct httpc_call *c)
{
	if (c->tls) {
		/* A polite goodbye; if the socket does not take it now, it is not worth waiting. */
		tls_close_notify(c->tls);
		(void)flush_tls(c);
	}
	finish(c, 0, NULL);
}

/* Response bytes (plaintext). */
static void got_bytes(struct httpc_call *c, const uint8_t *p, size_t n)
{
	int rc = http_resp_feed(&c->resp, p, n);
	if (rc == 1)
		succeed(c);
	else if (rc < 0)
		finish(c, rc, "http: %s", c->resp.err);
}

/* The peer ended the stream (FIN, or close_notify under TLS). */
static void got_eof(struct httpc_call *c)
{
	if (http_resp_eof(&c->resp) == 1)
		succeed(c);
	else
		finish(c, -EPROTO, "http: %s", c->resp.err);
}

static void send_request(struct httpc_call *c)
{
	c->state = HTTPC_RECEIVING;
	int rc;
	if (c->tls) {
		rc = tls_write(c->tls, buf_head(&c->req), c->req.len);
		if (rc < 0) {
			finish(c, rc, "tls: %s", tls_last_error(c->tls));
			return;
		}
		rc = flush_tls(c);
	} else {
		rc = net_write(c->net, buf_head(&c->req), c->req.len);
	}
	buf_finish(&c->req);
	if (rc < 0)
		write_failed(c, rc);
}

/* Advance TLS with what was fed: the handshake, then the request, then the response. */
static void tls_progress(struct httpc_call *c)
{
	if (c->state == HTTPC_TLS_HANDSHAKE) {
		int rc = tls_handshake(c->tls);
		int wrc = flush_tls(c);
		if (rc < 0 && rc != -EAGAIN) {
			finish(c, rc, "tls: %s", tls_last_error(c->tls));
			return;
		}
		if (wrc < 0) {
			write_failed(c, wrc);
			return;
		}
		if (rc == -EAGAIN)
			return;
		send_request(c);
		if (c->state == HTTPC_DONE)
			return;
	}
	uint8_t plain[16384];
	for (;;) {
		ssize_t n = tls_read(c->tls, plain, sizeof(plain));
		if (n == -EAGAIN)
			return;
		if (n == 0) {
			got_eof(c);
			return;
		}
		if (n < 0) {
			finish(c, (int)n, "tls: %s", tls_last_error(c->tls));
			return;
		}
		got_bytes(c, plain, (size_t)n);
		if (c->state == HTTPC_DONE)
			return;
	}
}

static void on_net_connected(struct net *n, void *user_data)
{
	struct httpc_call *c = user_data;
	if (c->state == HTTPC_DONE)
		return;
	if (!c->tls) {
		send_request(c);
		return;
	}
	c->state = HTTPC_TLS_HANDSHAKE;
	tls_progress(c); /* the ClientHello */
}

static void on_net_read(struct net *n, const uint8_t *data, size_t len, void *user_data)
{
	struct httpc_call *c = user_data;
	if (c->state == HTTPC_DONE)
		return;
	if (!c->tls) {
		got_bytes(c, data, len);
		return;
	}
	if (tls_feed(c->tls, data, len) < 0) {
		finish(c, -ENOMEM, "tls: out of memory");
		return;
	}
	tls_progress(c);
}

static void on_net_error(struct net *n, int err, const char *what, void *user_data)
{
	struct httpc_call *c = user_data;
	if (c->state == HTTPC_DONE)
		return;
	if (strcmp(what, "resolve") == 0) {
		/* UV_EAI_* are not errno values: the caller gets one that is. */
		finish(c, err == UV_ETIMEDOUT ? -ETIMEDOUT : -EHOSTUNREACH, "resolve %s: %s",
		       c->host, uv_strerror(err));
		return;
	}
	if (strcmp(what, "connect") == 0) {
		finish(c, err, "connect %s port %u: %s", c->host, c->port, uv_strerror(err));
		return;
	}
	if (err != UV_EOF) {
		finish(c, err, "%s: %s", what, uv_strerror(err));
		return;
	}
	switch (c->state) {
	case HTTPC_CONNECTING:
	case HTTPC_DONE:
		finish(c, -ECONNRESET, "%s: connection closed", what);
		return;
	case HTTPC_TLS_HANDSHAKE:
		finish(c, -ECONNRESET, "tls: connection closed during the handshake");
		return;
	case HTTPC_RECEIVING:
		/*
		 * Under TLS only close_notify ends a body delimited by the close: a bare FIN
		 * could be an attacker cutting it short. Other framings know their end, and
		 * http_resp_eof reports them truncated either way.
		 */
		if (c->tls && c->resp.state == HTTP_RESP_BODY && c->resp.framing == BODY_CLOSE) {
			finish(c, -EPROTO,
			       "tls: connection closed without close_notify (body may be "
			       "truncated)");
			return;
		}
		got_eof(c);
		return;
	}
}

static void on_net_closed(struct net *n, void *user_data)
{
	struct httpc_call *c = user_data;
	c->net = NULL;
	call_release(c);
}

static const struct net_callbacks httpc_net_cb = {
    .on_connected = on_net_connected,
    .on_read = on_net_read,
    .on_error = on_net_error,
    .on_closed = on_net_closed,
};

/* Header names that httpc sets itself, or that would change what the response can be. */
static bool header_ok(const char *line)
{
	static const char *const ours[] = {
	    "host",    "connection",     "accept-encoding",   "te",
	    "upgrade", "content-length", "transfer-encoding",
	};
	const char *colon = strchr(line, ':');
	if (!colon || colon == line)
		return false;
	for (const char *p = line; p < colon; p++)
		if (!is_alnum((unsigned char)*p) && !strchr("!#$%&'*+-.^_`|~", *p))
			return false;
	size_t nl = (size_t)(colon - line);
	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
		if (strlen(ours[i]) == nl && strncasecmp(line, ours[i], nl) == 0)
			return false;
	return true;
}

int httpc_get(uv_loop_t *loop, struct net_ctx *net, struct tls_config *tls,
	      const struct httpc_request *req, httpc_cb cb, void *user_data,
	      struct httpc_call **out)
{
	*out = NULL;
	if (!req || !req->url || !cb || (req->n_headers && !req->headers))
		return -EINVAL;
	struct httpc_url *u = malloc(sizeof(*u)); /* 4 KiB of path: not on the stack */
	if (!u)
		return -ENOMEM;
	int rc = -EINVAL;
	if (httpc_url_parse(req->url, u, NULL, 0) < 0 || (u->https && !tls))
		goto out_url;
	for (size_t i = 0; i < req->n_headers; i++)
		if (!req->headers[i] || !header_ok(req->headers[i]))
			goto out_url;
	struct httpc_call *c = calloc(1, sizeof(*c));
	rc = -ENOMEM;
	if (!c)
		goto out_url;
	c->cb = cb;
	c->user_data = user_data;
	c->timeout_ms = req->timeout_ms ? req->timeout_ms : HTTPC_DEFAULT_TIMEOUT_MS;
	c->port = u->port;
	memcpy(c->host, u->host, sizeof(c->host));
	buf_init(&c->req);
	http_resp_init(&c->resp, req->max_body ? req->max_body : HTTPC_MAX_BODY);
	rc = http_format_get(&c->req, u->host_header, u->path, req->headers, req->n_headers);
	if (rc < 0)
		goto out_call;
	if (u->https) {
		rc = tls_create(tls, u->host, &c->tls);
		if (rc < 0)
			goto out_call;
	}
	/*
	 * net bounds the lookup and each address with the same timeout. Our timer starts
	 * first: when it and net's lookup timer fall due in the same turn, libuv runs the
	 * earlier started one first, so a lookup that hangs reads "timed out after N ms" too.
	 * (Each address's timer starts later still, at its connect.)
	 */
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	uv_timer_start(&c->timer, on_timeout, c->timeout_ms, 0);
	rc = net_connect(net, c->host, c->port, c->timeout_ms, 0, &httpc_net_cb, c, &c->net);
	if (rc < 0) {
		/* Nothing reported yet: close the timer quietly, the caller gets rc. */
		c->cancelled = true;
		c->state = HTTPC_DONE;
		c->pending_closes = 1;
		uv_close((uv_handle_t *)&c->timer, on_timer_closed);
		free(u);
		return rc;
	}
	c->pending_closes = 2;
	c->state = HTTPC_CONNECTING;
	free(u);
	*out = c;
	return 0;
out_call:
	tls_destroy(c->tls);
	http_resp_finish(&c->resp);
	buf_finish(&c->req);
	free(c);
out_url:
	free(u);
	return rc;
}

void httpc_cancel(struct httpc_call *c)
{
	if (!c || c->state == HTTPC_DONE)
		return;
	c->cancelled = true;
	finish(c, -ECANCELED, NULL);
}
