/*
 * ws: the websocket client: our HTTP/1.1 Upgrade request and response check, then wslay's
 * event API for frames, masking, ping/pong and close. No sockets: bytes in via ws_feed(),
 * bytes out via the send callback.
 */
#ifndef DANMAKUD_WS_H
#define DANMAKUD_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Default cap on one message, counted across its fragments; a bigger one fails the
 * connection. Messages are never reassembled in memory (see on_data). */
#define WS_MAX_MESSAGE (1u << 20)

struct ws;

struct ws_callbacks {
	/* Bytes for the lower layer (TLS or TCP). Return 0, or a negative errno to fail. */
	int (*send)(void *user_data, const uint8_t *data, size_t len);
	/*
	 * Payload bytes of a data message (binary or text), in order, as they arrive: a message
	 * comes in one or more calls, split at fragment boundaries and wherever the fed bytes end;
	 * an empty message makes no call. Messages do not interleave, and control frames between
	 * fragments are handled without a call. Text has passed UTF-8 validation so far, but a
	 * message may still fail later (bad UTF-8 or the size cap in a later fragment): its earlier
	 * bytes have then been delivered and ws_feed returns -EPROTO. Return 0, or a negative
	 * errno to fail the connection (ws_feed then returns that value; nothing more is
	 * delivered).
	 */
	int (*on_data)(void *user_data, const uint8_t *data, size_t len, bool binary);
	/* Optional (may be NULL): the message whose bytes on_data delivered is complete; len is
	 * its total size. Return 0, or a negative errno as for on_data. */
	int (*on_message_end)(void *user_data, size_t len, bool binary);
};

/*
 * Create a client for ws://host[:port]/path. host_header is the Host header value (with
 * ":port" when not the default). max_message: 0 means WS_MAX_MESSAGE. cb and user_data must
 * outlive the ws. Returns 0, -EINVAL (empty host_header, path not starting with '/', or
 * CR/LF/space where they would break the request) or -ENOMEM.
 */
int ws_create(const char *host_header, const char *path, size_t max_message,
	      const struct ws_callbacks *cb, void *user_data, struct ws **out);
void ws_destroy(struct ws *w); /* accepts NULL */

/* Extra header lines for the Upgrade request ("Name: value\r\n" each; User-Agent, Origin,
 * Cookie), copied. Before ws_start. Returns 0, -EINVAL (not CRLF-terminated lines of printable
 * text, or larger than 8 KiB) or -ENOMEM. */
int ws_set_headers(struct ws *w, const char *lines);

/* Write the Upgrade request through cb->send. Returns 0 or the send callback's error. */
int ws_start(struct ws *w);

/*
 * Bytes from the lower layer. Before the handshake completes they go to the Upgrade parser;
 * bytes after the response's blank line go to wslay at once. Message bytes are delivered
 * through cb->on_data (and cb->on_message_end) during the call, never buffered here; replies
 * (pong, close) go out through cb->send.
 * Returns 0; -EPROTO (bad handshake, bad frame, oversized message; see ws_last_error);
 * -EPIPE once the peer has closed (close frame received and answered); or a callback's error.
 */
int ws_feed(struct ws *w, const uint8_t *data, size_t len);

/* True once the 101 response has been verified. */
bool ws_is_open(const struct ws *w);

/* Send one binary message. Returns 0, -ENOTCONN before the handshake, or -errno. */
int ws_send_binary(struct ws *w, const uint8_t *data, size_t len);

/* Queue and send a close frame with status code (e.g. 1000). Returns 0 or -errno. */
int ws_close(struct ws *w, uint16_t code);

/* Close code the peer sent (0 if none or no code), for session end reasons. */
uint16_t ws_peer_close_code(const struct ws *w);

const char *ws_last_error(const struct ws *w); /* never NULL */

/*
 * The Upgrade response parser, exposed for tests and fuzzing. Parses an HTTP/1.1 response
 * head in data[0..len). Returns the number of bytes in the head (through the blank line)
 * when the head is a valid 101 with Upgrade: websocket, Connection: upgrade and
 * Sec-WebSocket-Accept equal to expected_accept; -EAGAIN when the head is incomplete
 * (and smaller than 16 KiB); -EPROTO otherwise, with a reason in err (errlen bytes), e.g.
 * "upgrade refused: HTTP 403".
 */
long ws_parse_upgrade(const uint8_t *data, size_t len, const char *expected_accept, char *err,
		      size_t errlen);

/* Sec-WebSocket-Accept for a key: base64(sha1(key + GUID)). out needs 29 bytes. */
void ws_accept_for_key(const char *key, char out[29]);

#endif
