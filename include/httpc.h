/*
 * httpc: an HTTP/1.1 GET client on the loop, over our own net (c-ares + TCP) and tls
 * (mbedTLS). No threads, no compression requested, redirects not followed (a 3xx is a
 * response like any other), one request per connection (Connection: close), the response
 * bounded in size (head HTTP_HEAD_MAX, body max_body) and the whole exchange in time.
 * Certificates and host names are checked as for websockets (the tls_config decides).
 * The response parser is http.c's (pure, fuzzed).
 */
#ifndef DANMAKUD_HTTPC_H
#define DANMAKUD_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http.h"

#define HTTPC_MAX_BODY (1u << 20)
#define HTTPC_DEFAULT_TIMEOUT_MS 10000
#define HTTPC_URL_MAX 4096 /* bytes of a whole URL */

struct net_ctx;
struct tls_config;
struct httpc_call;

struct httpc_request {
	const char *url;             /* http://host[:port]/path?query or https://... */
	const char *const *headers;  /* extra "Name: value" lines, without CRLF (Cookie, UA) */
	size_t n_headers;
	uint64_t timeout_ms;         /* the whole exchange, DNS to last byte; 0: default */
	size_t max_body;             /* 0: HTTPC_MAX_BODY */
};

/* A complete response: status and head as parsed, body decoded (chunked undone) and
 * NUL-terminated at body[body_len]. Borrowed for the callback. */
struct httpc_response {
	int status;
	const struct http_head *head;
	const char *body;
	size_t body_len;
};

/*
 * err 0: resp is the response (any status) and msg is "". err < 0: resp is NULL and msg says
 * what failed, naming the step ("resolve api.example: ...", "tls: ...", "timed out after
 * 10000 ms", "body larger than 1048576 bytes", "bad status line" ...). Never says a header
 * value nor the URL's path or query. err is -ETIMEDOUT for the clock, -EHOSTUNREACH for a
 * failed lookup, the libuv code (a negative errno) of a failed connect, read or write,
 * -EPROTO / -EMSGSIZE for a bad or oversized response, tls.c's code for TLS. The call is over
 * once cb returns: do not cancel it afterwards (cancelling it from inside its own cb is a
 * no-op).
 */
typedef void (*httpc_cb)(void *user_data, int err, const struct httpc_response *resp,
			 const char *msg);

/*
 * Start a GET. tls may be NULL when the URL is http:// (an https:// URL then fails with
 * -EINVAL at once). cb runs later from the loop, never during this call, exactly once unless
 * the call is cancelled first. Returns 0 with *out set, or with nothing started: -EINVAL (bad
 * URL; a header line that is not "token: value", holds CR or LF, or names what httpc sets
 * itself: Host, Connection, Accept-Encoding, TE, Upgrade, Content-Length, Transfer-Encoding;
 * the TLS session could not be made for the host) or -ENOMEM.
 */
int httpc_get(uv_loop_t *loop, struct net_ctx *net, struct tls_config *tls,
	      const struct httpc_request *req, httpc_cb cb, void *user_data,
	      struct httpc_call **out);

/* Abandon a call: cb will not run; its handles close and it is freed from the loop.
 * Accepts NULL. Safe from any callback, including another call's cb. */
void httpc_cancel(struct httpc_call *c);

/* An http:// or https:// URL split for a request. */
struct httpc_url {
	bool https;
	uint16_t port;                /* 80 or 443 unless given */
	char host[256];               /* for DNS and TLS: a name, or an IP without brackets */
	char host_header[264];        /* host ([IPv6] in brackets), ":port" unless the default */
	char path[HTTPC_URL_MAX + 2]; /* path and query, "/" when empty */
};

/*
 * Split url: scheme http or https (any case), host a DNS name, an IPv4 address or an IPv6
 * address in brackets, an optional port 1..65535, then the path and query as RFC 3986 allows
 * them (percent-encoded where needed). Refused: user information, a fragment, spaces,
 * control and non-ASCII bytes, more than HTTPC_URL_MAX bytes. Pure. Returns 0 or -EINVAL
 * with the reason in err (which never repeats the path or query).
 */
int httpc_url_parse(const char *url, struct httpc_url *out, char *err, size_t errlen);

#endif
