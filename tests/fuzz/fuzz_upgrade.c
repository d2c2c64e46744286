/*
 * fuzz_upgrade: libFuzzer target for the websocket client. The first input byte picks a mode:
 *   0  ws_parse_upgrade() on the rest, with the RFC 6455 example accept as the expected one;
 *   1  the rest fed to a started ws through ws_feed() as the server's response (handshake
 *      parser reached incrementally), in chunks whose size comes from the second byte;
 *   2  a valid 101 is fed first, then the rest as server frames (wslay, our callbacks, the
 *      close and error mapping), chunked the same way, followed by a send and a close.
 * Invariants that the contract in ws.h promises are checked with __builtin_trap().
 */
#include "ws.h"
#include "fuzz.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

struct sink {
	char key[64];
	size_t messages;
};

static int sink_send(void *user_data, const uint8_t *data, size_t len)
{
	struct sink *s = user_data;
	static const char hdr[] = "Sec-WebSocket-Key: ";
	/* Remember the key from the upgrade request (the only send before the handshake). */
	if (!s->key[0] && len > sizeof(hdr)) {
		const uint8_t *p = NULL;
		for (size_t i = 0; !p && i + sizeof(hdr) - 1 <= len; i++)
			if (memcmp(data + i, hdr, sizeof(hdr) - 1) == 0)
				p = data + i;
		if (p) {
			p += sizeof(hdr) - 1;
			size_t n = 0;
			while (n < sizeof(s->key) - 1 && p + n < data + len && p[n] != '\r')
				n++;
			memcpy(s->key, p, n);
			s->key[n] = '\0';
		}
	}
	return 0;
}

static int sink_data(void *user_data, const uint8_t *data, size_t len, bool binary)
{
	struct sink *s = user_data;
	s->messages++;
	/* Exercise the failing-callback path now and then. */
	if (len >= 4 && memcmp(data, "FAIL", 4) == 0)
		return -EBADMSG;
	return 0;
}

static const struct ws_callbacks sink_cb = {.send = sink_send, .on_data = sink_data};

static void check_parse(const uint8_t *data, size_t len)
{
	char err[128];
	err[0] = '\0';
	long r = ws_parse_upgrade(data, len, RFC_ACCEPT, err, sizeof(err));
	if (r == -EAGAIN) {
		if (len >= 16384)
			__builtin_trap();
	} else if (r == -EPROTO) {
		if (!err[0])
			__builtin_trap();
	} else if (r < 4 || (size_t)r > len || r > 16384 ||
		   memcmp(data + r - 4, "\r\n\r\n", 4) != 0) {
		__builtin_trap();
	}
}

/* Feed data in chunks of chunk bytes (0: all at once); stop at the first error. */
static int feed_chunks(struct ws *w, const uint8_t *data, size_t len, size_t chunk)
{
	if (chunk == 0)
		chunk = len ? len : 1;
	int rc = 0;
	for (size_t pos = 0; pos < len && rc == 0; pos += chunk) {
		size_t n = len - pos < chunk ? len - pos : chunk;
		rc = ws_feed(w, data + pos, n);
	}
	if (rc != 0 && rc != -EPROTO && rc != -EPIPE && rc != -EBADMSG && rc != -ENOMEM)
		__builtin_trap();
	if (rc != 0 && !ws_last_error(w)[0])
		__builtin_trap();
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0] % 3;
	data++;
	size--;
	if (mode == 0) {
		check_parse(data, size);
		return 0;
	}
	if (size < 1)
		return 0;
	size_t chunk = data[0];
	data++;
	size--;

	struct sink s;
	memset(&s, 0, sizeof(s));
	struct ws *w = NULL;
	/* max_message 0, as room.c passes: the production cap WS_MAX_MESSAGE (1 MiB). */
	if (ws_create("example.com", "/", 0, &sink_cb, &s, &w) != 0)
		return 0;
	if (ws_start(w) != 0 || !s.key[0])
		__builtin_trap();
	if (mode == 2) {
		char accept[29];
		char head[256];
		ws_accept_for_key(s.key, accept);
		int n = snprintf(head, sizeof(head),
				 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
				 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
				 accept);
		if (ws_feed(w, (const uint8_t *)head, (size_t)n) != 0 || !ws_is_open(w))
			__builtin_trap();
	}
	int rc = feed_chunks(w, data, size, chunk);
	if (ws_is_open(w)) {
		int src = ws_send_binary(w, (const uint8_t *)"ping", 4);
		if (rc == 0 && src != 0)
			__builtin_trap();
		ws_close(w, 1000);
	} else if (rc == 0 && mode == 2) {
		__builtin_trap();
	}
	ws_destroy(w);
	return 0;
}
