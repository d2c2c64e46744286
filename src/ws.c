/*
 * ws: the websocket client layer, free of sockets and of libuv. ws_start() writes the HTTP/1.1
 * Upgrade request through the send callback; ws_feed() first collects the response head
 * (bounded at 16 KiB) and checks it with ws_parse_upgrade(), then hands every later byte to a
 * wslay event-API client context. wslay pulls those bytes through recv_callback from the
 * chunk currently being fed. wslay runs without buffering data messages: it would allocate a
 * chunk (about 96 bytes) per frame, so a 1 MiB message in 1-byte fragments would cost ~96 MiB.
 * Instead each piece of payload goes straight to cb->on_data as it is parsed (the platform
 * reader above accepts any split), and we count a message's size across its fragments
 * ourselves. Control frames (<= 125 bytes) are still buffered by wslay, which answers pings
 * and close frames itself and pushes its frames out through send_callback, which forwards to
 * our lower layer (that layer buffers everything, so sends never block). wslay
 * reports most protocol violations not as an error code but by queueing a close frame and
 * disabling reads; ws_feed() detects that and turns it into -EPROTO with a reason. Frame
 * masks come from a small pool refilled with getrandom(2).
 */
#include "ws.h"

#include "buf.h"
#include "http.h"
#include "text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>
#include <mbedtls/version.h>
#include <wslay/wslay.h>

/* Largest response head (status line, headers and the blank line) we accept. */
#define WS_HEAD_MAX HTTP_HEAD_MAX

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct ws {
	const struct ws_callbacks *cb;
	void *user_data;
	char *host_header;
	char *path;
	char *headers; /* extra Upgrade header lines, NULL when none */
	size_t max_message;
	wslay_event_context_ptr ctx;

	bool started;
	bool open;
	char accept[29];   /* the Sec-WebSocket-Accept we expect */
	struct buf head;   /* response head bytes until the blank line */
	size_t head_scan;  /* head bytes already searched for the blank line */

	const uint8_t *in; /* the chunk wslay's recv_callback reads from */
	size_t in_len;

	/* The data message being received, across its fragments. */
	bool frame_is_data; /* the current frame is text, binary or a continuation */
	bool msg_binary;
	uint64_t msg_len;   /* payload bytes of all its frames so far, including the current */

	int fail;        /* sticky: once set, ws_feed returns it */
	int msg_err;     /* on_data's or on_message_end's error, seen inside wslay_event_recv */
	int send_err;    /* cb->send's error, seen inside wslay_event_send */
	bool peer_closed;
	uint16_t peer_code;

	uint8_t pool[64]; /* random bytes for frame masks; pool[pool_off..64) unused */
	size_t pool_off;

	char err[160];
};

/* Record the error text of the last failure; evaluates to rc. */
#define ws_set_err(w, rc, ...) text_err((rc), (w)->err, sizeof((w)->err), __VA_ARGS__)
/* Like ws_set_err, but the error sticks: later ws_feed calls return it at once. */
#define ws_fail(w, rc, ...) ((w)->fail = ws_set_err((w), (rc), __VA_ARGS__))

static int fill_random(uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* ---- The Upgrade response parser ---- */

/* Copy a reason phrase for an error message, keeping printable ASCII only. */
static void copy_reason(char *dst, size_t cap, const char *p, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len && n + 1 < cap; i++)
		dst[n++] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?';
	dst[n] = '\0';
}

long ws_parse_upgrade(const uint8_t *data, size_t len, const char *expected_accept, char *err,
		      size_t errlen)
{
	struct http_head h;
	char why[96];
	long end = http_parse_head(data, len, &h, why, sizeof(why));
	if (end == -EAGAIN)
		return -EAGAIN;
	if (end < 0)
		return text_err(-EPROTO, err, errlen, "upgrade response: %s", why);
	if (h.status != 101) {
		char reason[64];
		copy_reason(reason, sizeof(reason), h.reason, h.reason_len);
		return text_err(-EPROTO, err, errlen, "upgrade refused: HTTP %d%s%s", h.status,
				reason[0] ? " " : "", reason);
	}
	if (h.minor != 1)
		return text_err(-EPROTO, err, errlen, "upgrade response: not HTTP/1.1");

	bool upgrade = false, connection = false;
	int accepts = 0;
	bool accept_ok = false;
	for (size_t i = 0; i < h.n; i++) {
		const struct http_header *hd = &h.h[i];
		const char *v = hd->value;
		size_t vlen = hd->value_len;
		if (http_header_is(hd, "upgrade")) {
			upgrade = upgrade || http_has_token(v, vlen, "websocket");
		} else if (http_header_is(hd, "connection")) {
			connection = connection || http_has_token(v, vlen, "upgrade");
		} else if (http_header_is(hd, "sec-websocket-accept")) {
			accepts++;
			accept_ok = vlen == strlen(expected_accept) &&
				    memcmp(v, expected_accept, vlen) == 0;
		} else if (http_header_is(hd, "sec-websocket-extensions") && vlen > 0) {
			/* RFC 6455 4.1: we asked for none, so any extension fails the handshake. */
			return text_err(-EPROTO, err, errlen,
					"upgrade response: unrequested Sec-WebSocket-Extensions");
		} else if (http_header_is(hd, "sec-websocket-protocol") && vlen > 0) {
			return text_err(-EPROTO, err, errlen,
					"upgrade response: unrequested Sec-WebSocket-Protocol");
		}
	}
	if (!upgrade)
		return text_err(-EPROTO, err, errlen, "upgrade response: missing Upgrade: websocket");
	if (!connection)
		return text_err(-EPROTO, err, errlen,
				"upgrade response: missing Connection: upgrade");
	if (accepts == 0)
		return text_err(-EPROTO, err, errlen,
				"upgrade response: missing Sec-WebSocket-Accept");
	if (accepts > 1 || !accept_ok)
		return text_err(-EPROTO, err, errlen, "upgrade response: bad Sec-WebSocket-Accept");
	return end;
}

void ws_accept_for_key(const char *key, char out[29])
{
	size_t klen = strlen(key);
	size_t glen = sizeof(WS_GUID) - 1;
	unsigned char digest[20];
	mbedtls_sha1_context sha;
	mbedtls_sha1_init(&sha);
#if MBEDTLS_VERSION_MAJOR >= 3
	mbedtls_sha1_starts(&sha);
	mbedtls_sha1_update(&sha, (const unsigned char *)key, klen);
	mbedtls_sha1_update(&sha, (const unsigned char *)WS_GUID, glen);
	mbedtls_sha1_finish(&sha, digest);
#else
	mbedtls_sha1_starts_ret(&sha);
	mbedtls_sha1_update_ret(&sha, (const unsigned char *)key, klen);
	mbedtls_sha1_update_ret(&sha, (const unsigned char *)WS_GUID, glen);
	mbedtls_sha1_finish_ret(&sha, digest);
#endif
	mbedtls_sha1_free(&sha);
	size_t olen = 0;
	/* 20 bytes always encode to 28 characters plus the NUL; this cannot fail. */
	mbedtls_base64_encode((unsigned char *)out, 29, &olen, digest, sizeof(digest));
	out[olen] = '\0';
}

/* ---- wslay callbacks ---- */

static ssize_t on_wslay_recv(wslay_event_context_ptr ctx, uint8_t *out, size_t len, int flags,
			     void *user_data)
{
	struct ws *w = user_data;
	if (w->in_len == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	size_t n = len < w->in_len ? len : w->in_len;
	memcpy(out, w->in, n);
	w->in += n;
	w->in_len -= n;
	return (ssize_t)n;
}

static ssize_t on_wslay_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
			     int flags, void *user_data)
{
	struct ws *w = user_data;
	int rc = w->cb->send(w->user_data, data, len);
	if (rc < 0) {
		w->send_err = rc;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

static int on_wslay_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
			    void *user_data)
{
	struct ws *w = user_data;
	if (len > sizeof(w->pool)) {
		if (fill_random(buf, len) < 0)
			goto fail;
		return 0;
	}
	if (sizeof(w->pool) - w->pool_off < len) {
		if (fill_random(w->pool, sizeof(w->pool)) < 0)
			goto fail;
		w->pool_off = 0;
	}
	memcpy(buf, w->pool + w->pool_off, len);
	w->pool_off += len;
	return 0;
fail:
	wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

/* A data callback failed: remember why and stop wslay's read loop, which ignores errors from
 * its callbacks, so that nothing after this point in the chunk is delivered. */
static void stop_on_error(struct ws *w, wslay_event_context_ptr ctx, int rc)
{
	w->msg_err = rc;
	wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	wslay_event_shutdown_read(ctx);
}

/*
 * A frame header has been parsed. wslay has already checked the opcode sequence (no
 * continuation without a message, no new message inside a fragmented one) and the frame's own
 * length; without buffering it cannot check the message's length across fragments, so we do.
 */
static void on_wslay_frame_start(wslay_event_context_ptr ctx,
				 const struct wslay_event_on_frame_recv_start_arg *arg, void *user_data)
{
	struct ws *w = user_data;
	switch (arg->opcode) {
	case WSLAY_TEXT_FRAME:
	case WSLAY_BINARY_FRAME:
		w->msg_binary = arg->opcode == WSLAY_BINARY_FRAME;
		w->msg_len = 0;
		break;
	case WSLAY_CONTINUATION_FRAME:
		break;
	default:
		/* A control frame, possibly between two fragments: wslay buffers it. */
		w->frame_is_data = false;
		return;
	}
	w->frame_is_data = true;
	if (arg->payload_length > w->max_message - w->msg_len) {
		/* Same outcome as wslay's own check on a single frame: close 1009, stop reading. */
		w->frame_is_data = false;
		wslay_event_queue_close(ctx, WSLAY_CODE_MESSAGE_TOO_BIG, NULL, 0);
		wslay_event_shutdown_read(ctx);
		return;
	}
	w->msg_len += arg->payload_length;
}

/* Payload bytes as they arrive; for a text frame wslay has validated their UTF-8 so far. */
static void on_wslay_frame_chunk(wslay_event_context_ptr ctx,
				 const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user_data)
{
	struct ws *w = user_data;
	/* Reading stops on our own errors (too large, on_data failed) within this frame too. */
	if (!w->frame_is_data || !wslay_event_get_read_enabled(ctx) || arg->data_length == 0)
		return;
	int rc = w->cb->on_data(w->user_data, arg->data, arg->data_length, w->msg_binary);
	if (rc < 0)
		stop_on_error(w, ctx, rc);
}

static void on_wslay_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
			 void *user_data)
{
	struct ws *w = user_data;
	switch (arg->opcode) {
	case WSLAY_TEXT_FRAME:
	case WSLAY_BINARY_FRAME: {
		/* The final fragment's last byte went through on_data; arg->msg is NULL here. */
		if (!wslay_event_get_read_enabled(ctx) || !w->cb->on_message_end)
			return;
		int rc = w->cb->on_message_end(w->user_data, (size_t)w->msg_len,
					       arg->opcode == WSLAY_BINARY_FRAME);
		if (rc < 0)
			stop_on_error(w, ctx, rc);
		break;
	}
	case WSLAY_CONNECTION_CLOSE:
		/* wslay has already queued the reply, echoing the peer's code. */
		w->peer_closed = true;
		w->peer_code = arg->status_code;
		break;
	default:
		/* Pings are answered by wslay; pongs need nothing. */
		break;
	}
}

/* ---- The client ---- */

static bool has_crlf(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

int ws_create(const char *host_header, const char *path, size_t max_message,
	      const struct ws_callbacks *cb, void *user_data, struct ws **out)
{
	if (!host_header || !*host_header || !path || *path != '/' || has_crlf(host_header) ||
	    has_crlf(path) || strchr(path, ' '))
		return -EINVAL;
	int rc = -ENOMEM;
	struct ws *w = calloc(1, sizeof(*w));
	if (!w)
		goto err;
	w->cb = cb;
	w->user_data = user_data;
	w->max_message = max_message ? max_message : WS_MAX_MESSAGE;
	w->pool_off = sizeof(w->pool); /* empty: the first mask refills it */
	buf_init(&w->head);
	w->host_header = strdup(host_header);
	if (!w->host_header)
		goto err_free;
	w->path = strdup(path);
	if (!w->path)
		goto err_host;

	static const struct wslay_event_callbacks wcb = {
		.recv_callback = on_wslay_recv,
		.send_callback = on_wslay_send,
		.genmask_callback = on_wslay_genmask,
		.on_frame_recv_start_callback = on_wslay_frame_start,
		.on_frame_recv_chunk_callback = on_wslay_frame_chunk,
		.on_msg_recv_callback = on_wslay_msg,
	};
	if (wslay_event_context_client_init(&w->ctx, &wcb, w) != 0)
		goto err_path;
	wslay_event_config_set_no_buffering(w->ctx, 1);
	/* Without buffering wslay checks this per frame; on_wslay_frame_start sums fragments. */
	wslay_event_config_set_max_recv_msg_length(w->ctx, w->max_message);
	*out = w;
	return 0;

err_path:
	free(w->path);
err_host:
	free(w->host_header);
err_free:
	free(w);
err:
	return rc;
}

void ws_destroy(struct ws *w)
{
	if (!w)
		return;
	if (w->ctx)
		wslay_event_context_free(w->ctx);
	buf_finish(&w->head);
	free(w->path);
	free(w->host_header);
	free(w->headers);
	free(w);
}

int ws_set_headers(struct ws *w, const char *lines)
{
	size_t n = strlen(lines);
	if (n > 8192)
		return -EINVAL;
	/* Each line: "Name: value" of printable text (tab allowed), then CRLF. */
	for (size_t i = 0; i < n;) {
		const char *eol = strstr(lines + i, "\r\n");
		if (!eol || !memchr(lines + i, ':', (size_t)(eol - lines - i)) || eol == lines + i)
			return -EINVAL;
		for (; lines + i < eol; i++) {
			unsigned char c = (unsigned char)lines[i];
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return -EINVAL;
		}
		i += 2;
	}
	char *d = strdup(lines);
	if (!d)
		return -ENOMEM;
	free(w->headers);
	w->headers = d;
	return 0;
}

int ws_start(struct ws *w)
{
	if (w->started)
		return ws_set_err(w, -EALREADY, "upgrade request already sent");
	uint8_t nonce[16];
	int rc = fill_random(nonce, sizeof(nonce));
	if (rc < 0)
		return ws_set_err(w, rc, "getrandom: %s", strerror(-rc));
	char key[32];
	size_t klen = 0;
	mbedtls_base64_encode((unsigned char *)key, sizeof(key), &klen, nonce, sizeof(nonce));
	key[klen] = '\0';
	ws_accept_for_key(key, w->accept);

	struct buf req;
	buf_init(&req);
	rc = buf_printf(&req,
			"GET %s HTTP/1.1\r\n"
			"Host: %s\r\n"
			"Upgrade: websocket\r\n"
			"Connection: Upgrade\r\n"
			"Sec-WebSocket-Key: %s\r\n"
			"Sec-WebSocket-Version: 13\r\n"
			"%s"
			"\r\n",
			w->path, w->host_header, key, w->headers ? w->headers : "");
	if (rc < 0)
		goto out;
	rc = w->cb->send(w->user_data, buf_head(&req), req.len);
	if (rc < 0) {
		ws_set_err(w, rc, "sending the upgrade request failed");
		goto out;
	}
	w->started = true;
	rc = 0;
out:
	buf_finish(&req);
	return rc;
}

/*
 * Run one chunk of post-handshake bytes through wslay: receive (delivering messages and
 * queueing pongs and close replies), then send whatever got queued. Then decide:
 *  - on_data or on_message_end failed: return its error;
 *  - the peer closed: our reply has gone out, return -EPIPE;
 *  - wslay stopped reading without a peer close: it found a protocol violation and queued a
 *    close frame; its code (now sent) tells which: 1009 too large, 1007 bad UTF-8, else 1002.
 */
static int feed_frames(struct ws *w, const uint8_t *data, size_t len)
{
	w->in = data;
	w->in_len = len;
	int rv = wslay_event_recv(w->ctx);
	w->in = NULL;
	w->in_len = 0;
	if (w->msg_err)
		return ws_fail(w, w->msg_err, "data handler failed: %s", strerror(-w->msg_err));
	if (rv == WSLAY_ERR_NOMEM)
		return ws_fail(w, -ENOMEM, "out of memory receiving a message");

	bool close_sent_before = wslay_event_get_close_sent(w->ctx);
	int sv = wslay_event_send(w->ctx);
	if (sv == WSLAY_ERR_NOMEM)
		return ws_fail(w, -ENOMEM, "out of memory sending a frame");
	if (sv < 0) {
		int rc = w->send_err ? w->send_err : -EIO;
		return ws_fail(w, rc, "send failed: %s", strerror(-rc));
	}

	if (rv < 0) {
		/*
		 * The frame layer rejected a header (a control frame longer than 125 bytes or
		 * fragmented, a 64-bit length with the top bit set, a non-minimal length).
		 */
		return ws_fail(w, -EPROTO, "protocol error: malformed frame header");
	}
	if (w->peer_closed) {
		if (w->peer_code)
			return ws_fail(w, -EPIPE, "peer closed the websocket (code %u)",
				       (unsigned)w->peer_code);
		return ws_fail(w, -EPIPE, "peer closed the websocket (no code)");
	}
	if (!wslay_event_get_read_enabled(w->ctx)) {
		uint16_t code = 0;
		if (!close_sent_before && wslay_event_get_close_sent(w->ctx))
			code = wslay_event_get_status_code_sent(w->ctx);
		if (code == WSLAY_CODE_MESSAGE_TOO_BIG)
			return ws_fail(w, -EPROTO, "message too large");
		if (code == WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA)
			return ws_fail(w, -EPROTO, "protocol error: invalid UTF-8 in a text frame");
		return ws_fail(w, -EPROTO,
			       "protocol error: bad frame from server (masked, reserved bits, bad "
			       "opcode, bad continuation or bad close code)");
	}
	return 0;
}

int ws_feed(struct ws *w, const uint8_t *data, size_t len)
{
	if (w->fail)
		return w->fail;
	if (w->open)
		return feed_frames(w, data, len);
	if (!w->started)
		return ws_fail(w, -EPROTO, "upgrade response: data before the request");

	/* Collect at most WS_HEAD_MAX head bytes; the parser rejects a full buffer. */
	size_t old = w->head.len;
	size_t take = WS_HEAD_MAX - old < len ? WS_HEAD_MAX - old : len;
	if (buf_append(&w->head, data, take) < 0)
		return ws_fail(w, -ENOMEM, "out of memory");
	const uint8_t *h = buf_head(&w->head);
	/*
	 * Search only the new bytes (and the three before them, for a terminator split across
	 * feeds), so a server dribbling one byte at a time costs linear, not quadratic, work.
	 */
	size_t from = w->head_scan > 3 ? w->head_scan - 3 : 0;
	size_t end = http_head_end(h, w->head.len, from);
	w->head_scan = w->head.len;
	if (end == 0 && w->head.len < WS_HEAD_MAX) {
		if (!http_could_be_response(h, w->head.len))
			return ws_fail(w, -EPROTO, "upgrade response: not HTTP/1.x");
		return 0;
	}
	long r = ws_parse_upgrade(h, w->head.len, w->accept, w->err, sizeof(w->err));
	if (r < 0) {
		/* -EAGAIN cannot happen here: we have a blank line or a full buffer. */
		w->fail = r == -EAGAIN ? -EPROTO : (int)r;
		return w->fail;
	}
	/* The head ended inside this chunk; what follows it is already websocket frames. */
	size_t used = (size_t)r - old;
	w->open = true;
	buf_finish(&w->head);
	if (used < len)
		return feed_frames(w, data + used, len - used);
	return 0;
}

bool ws_is_open(const struct ws *w)
{
	return w->open;
}

static int map_queue_err(int rv)
{
	switch (rv) {
	case WSLAY_ERR_NO_MORE_MSG:
		return -EPIPE;
	case WSLAY_ERR_NOMEM:
		return -ENOMEM;
	default:
		return -EINVAL;
	}
}

static int send_queued(struct ws *w)
{
	int sv = wslay_event_send(w->ctx);
	if (sv == 0)
		return 0;
	if (sv == WSLAY_ERR_NOMEM)
		return ws_fail(w, -ENOMEM, "out of memory sending a frame");
	int rc = w->send_err ? w->send_err : -EIO;
	return ws_fail(w, rc, "send failed: %s", strerror(-rc));
}

int ws_send_binary(struct ws *w, const uint8_t *data, size_t len)
{
	if (!w->open)
		return -ENOTCONN;
	if (w->fail)
		return w->fail;
	struct wslay_event_msg msg = {
		.opcode = WSLAY_BINARY_FRAME,
		.msg = data,
		.msg_length = len,
	};
	int rv = wslay_event_queue_msg(w->ctx, &msg);
	if (rv != 0)
		return map_queue_err(rv);
	return send_queued(w);
}

int ws_close(struct ws *w, uint16_t code)
{
	if (!w->open)
		return -ENOTCONN;
	if (w->fail)
		return w->fail;
	int rv = wslay_event_queue_close(w->ctx, code, NULL, 0);
	if (rv == WSLAY_ERR_NO_MORE_MSG)
		return 0; /* a close frame is already queued or sent */
	if (rv != 0)
		return map_queue_err(rv);
	return send_queued(w);
}

uint16_t ws_peer_close_code(const struct ws *w)
{
	return w->peer_code;
}

const char *ws_last_error(const struct ws *w)
{
	return w->err;
}
