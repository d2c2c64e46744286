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

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http.h"

#define HTTPC_MAX_BODY (1u << 20)
#define HTTPC_DEFAULT_TIMEOUT_MS 10000

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
 * err 0: resp is the response (any status). err < 0: resp is NULL and msg says what failed,
 * naming the step ("resolve api.example: ...", "tls: ...", "timed out after 10000 ms",
 * "body larger than 1048576 bytes", "bad status line" ...). Never says a header value.
 */
typedef void (*httpc_cb)(void *user_data, int err, const struct httpc_response *resp,
			 const char *msg);

/*
 * Start a GET. tls may be NULL when the URL is http:// (an https:// URL then fails with
 * -EINVAL at once). cb runs later from the loop, never during this call, exactly once unless
 * the call is cancelled first. Returns 0, -EINVAL (bad URL, with nothing started) or -ENOMEM.
 */
int httpc_get(uv_loop_t *loop, struct net_ctx *net, struct tls_config *tls,
	      const struct httpc_request *req, httpc_cb cb, void *user_data,
	      struct httpc_call **out);

/* Abandon a call: cb will not run; its handles close and it is freed from the loop.
 * Accepts NULL. */
void httpc_cancel(struct httpc_call *c);

#endif
