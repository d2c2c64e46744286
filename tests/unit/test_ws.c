/*
 * test_ws: the websocket client against a scripted server. Server frames are built by hand
 * here from RFC 6455 section 5.2 (unmasked, 7/16/64-bit lengths), the expected
 * Sec-WebSocket-Accept is computed here with mbedTLS directly, and the client's frames are
 * parsed and unmasked here, so these tests do not trust ws.c's own helpers or wslay.
 */
#include "ws.h"

#include "buf.h"
#include "test.h"

#include <errno.h>
#include <stdbool.h>

#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>
#include <mbedtls/version.h>

#define MAX_MSGS 64

/* The fake lower layer and application: records everything the ws emits. */
struct peer {
	struct buf out; /* bytes the client sent */
	int send_fail;  /* when nonzero, send returns it */
	int msg_fail;   /* when nonzero, on_data returns it ... */
	int msg_fail_at; /* ... for the message with this index */
	int n_msgs;     /* complete messages (on_message_end seen) */
	struct buf msgs[MAX_MSGS]; /* msgs[n_msgs] collects the message in progress */
	bool binary[MAX_MSGS];
	size_t data_calls;   /* on_data calls in all */
	size_t max_piece;    /* the largest piece on_data received */
	bool mixed_kinds;    /* a message's pieces disagreed about text vs binary */
	bool bad_end_len;    /* on_message_end's len differed from the bytes delivered */
};

static int peer_send(void *user_data, const uint8_t *data, size_t len)
{
	struct peer *p = user_data;
	if (p->send_fail)
		return p->send_fail;
	return buf_append(&p->out, data, len);
}

static int peer_on_data(void *user_data, const uint8_t *data, size_t len, bool binary)
{
	struct peer *p = user_data;
	int idx = p->n_msgs;
	if (p->msg_fail && idx == p->msg_fail_at)
		return p->msg_fail;
	if (idx >= MAX_MSGS)
		return -ENOSPC;
	if (len == 0)
		p->mixed_kinds = true; /* the contract says empty pieces are not delivered */
	if (p->msgs[idx].len > 0 && p->binary[idx] != binary)
		p->mixed_kinds = true;
	p->binary[idx] = binary;
	p->data_calls++;
	if (len > p->max_piece)
		p->max_piece = len;
	return buf_append(&p->msgs[idx], data, len);
}

static int peer_on_message_end(void *user_data, size_t len, bool binary)
{
	struct peer *p = user_data;
	int idx = p->n_msgs;
	if (idx >= MAX_MSGS)
		return -ENOSPC;
	if (p->msgs[idx].len != len)
		p->bad_end_len = true;
	if (p->msgs[idx].len > 0 && p->binary[idx] != binary)
		p->mixed_kinds = true;
	p->binary[idx] = binary;
	p->n_msgs++;
	return 0;
}

static const struct ws_callbacks peer_cb = {
	.send = peer_send,
	.on_data = peer_on_data,
	.on_message_end = peer_on_message_end,
};

static void peer_init(struct peer *p)
{
	memset(p, 0, sizeof(*p));
	buf_init(&p->out);
	for (int i = 0; i < MAX_MSGS; i++)
		buf_init(&p->msgs[i]);
}

static void peer_finish(struct peer *p)
{
	buf_finish(&p->out);
	for (int i = 0; i < MAX_MSGS; i++)
		buf_finish(&p->msgs[i]);
}

/* ---- Independent RFC 6455 helpers ---- */

static void accept_for(const char *key, char out[29])
{
	char cat[128];
	snprintf(cat, sizeof(cat), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
	unsigned char d[20];
#if MBEDTLS_VERSION_MAJOR >= 3
	mbedtls_sha1((const unsigned char *)cat, strlen(cat), d);
#else
	mbedtls_sha1_ret((const unsigned char *)cat, strlen(cat), d);
#endif
	size_t olen;
	mbedtls_base64_encode((unsigned char *)out, 29, &olen, d, 20);
	out[olen] = '\0';
}

/* Copy the Sec-WebSocket-Key value out of the client's request; false if absent. */
static bool request_key(const struct buf *out, char key[64])
{
	const char *hdr = "\r\nSec-WebSocket-Key: ";
	size_t hl = strlen(hdr);
	const uint8_t *p = buf_head(out);
	for (size_t i = 0; i + hl < out->len; i++) {
		if (memcmp(p + i, hdr, hl) != 0)
			continue;
		size_t s = i + hl, e = s;
		while (e < out->len && p[e] != '\r' && e - s < 63)
			e++;
		memcpy(key, p + s, e - s);
		key[e - s] = '\0';
		return true;
	}
	return false;
}

/* Append one server frame (unmasked unless mask is given), minimal length encoding. */
static void frame(struct buf *b, bool fin, uint8_t rsv, uint8_t opcode, const void *payload,
		  size_t len, const uint8_t *mask)
{
	uint8_t h[14];
	size_t n = 0;
	h[n++] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | opcode);
	uint8_t mbit = mask ? 0x80 : 0;
	if (len < 126) {
		h[n++] = (uint8_t)(mbit | len);
	} else if (len < 65536) {
		h[n++] = mbit | 126;
		h[n++] = (uint8_t)(len >> 8);
		h[n++] = (uint8_t)len;
	} else {
		h[n++] = mbit | 127;
		for (int i = 7; i >= 0; i--)
			h[n++] = (uint8_t)((uint64_t)len >> (8 * i));
	}
	if (mask) {
		memcpy(h + n, mask, 4);
		n += 4;
	}
	buf_append(b, h, n);
	const uint8_t *p = payload;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = mask ? (uint8_t)(p[i] ^ mask[i % 4]) : p[i];
		buf_append(b, &c, 1);
	}
}

static void close_frame(struct buf *b, int code, const char *reason)
{
	uint8_t p[64];
	size_t n = 0;
	if (code >= 0) {
		p[n++] = (uint8_t)(code >> 8);
		p[n++] = (uint8_t)code;
		size_t rl = strlen(reason);
		memcpy(p + n, reason, rl);
		n += rl;
	}
	frame(b, true, 0, 8, p, n, NULL);
}

/* One frame the client sent, parsed at out[*pos]; returns false when malformed/short. */
struct cframe {
	bool fin;
	uint8_t rsv;
	uint8_t opcode;
	bool masked;
	uint8_t payload[80000];
	size_t len;
};

static bool parse_client_frame(const struct buf *out, size_t *pos, struct cframe *f)
{
	const uint8_t *p = buf_head(out) + *pos;
	size_t avail = out->len - *pos;
	if (avail < 2)
		return false;
	f->fin = p[0] & 0x80;
	f->rsv = (p[0] >> 4) & 7;
	f->opcode = p[0] & 0x0f;
	f->masked = p[1] & 0x80;
	uint64_t len = p[1] & 0x7f;
	size_t n = 2;
	if (len == 126) {
		if (avail < 4)
			return false;
		len = ((uint64_t)p[2] << 8) | p[3];
		n = 4;
	} else if (len == 127) {
		if (avail < 10)
			return false;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = (len << 8) | p[2 + i];
		n = 10;
	}
	uint8_t mask[4] = {0, 0, 0, 0};
	if (f->masked) {
		if (avail < n + 4)
			return false;
		memcpy(mask, p + n, 4);
		n += 4;
	}
	if (len > sizeof(f->payload) || avail - n < len)
		return false;
	for (size_t i = 0; i < len; i++)
		f->payload[i] = p[n + i] ^ mask[i % 4];
	f->len = (size_t)len;
	*pos += n + (size_t)len;
	return true;
}

static struct cframe cf; /* big; keep it off the stack */

/* ---- Fixtures ---- */

static const char *const ok_head_fmt = "HTTP/1.1 101 Switching Protocols\r\n"
				       "Upgrade: websocket\r\n"
				       "Connection: Upgrade\r\n"
				       "Sec-WebSocket-Accept: %s\r\n"
				       "\r\n";

/* Create and start a ws; returns the accept the server should send in *accept. */
static struct ws *start(struct peer *p, size_t max_message, char accept[29])
{
	struct ws *w = NULL;
	if (ws_create("example.com:8502", "/chat", max_message, &peer_cb, p, &w) != 0)
		return NULL;
	if (ws_start(w) != 0) {
		ws_destroy(w);
		return NULL;
	}
	char key[64];
	if (!request_key(&p->out, key)) {
		ws_destroy(w);
		return NULL;
	}
	accept_for(key, accept);
	buf_clear(&p->out); /* from here on, out holds only frames */
	return w;
}

static void ok_head(struct buf *b, const char *accept)
{
	buf_printf(b, ok_head_fmt, accept);
}

/* Start, complete the handshake, and clear the output: an open ws. */
static struct ws *open_ws(struct peer *p, size_t max_message)
{
	char accept[29];
	struct ws *w = start(p, max_message, accept);
	if (!w)
		return NULL;
	struct buf b;
	buf_init(&b);
	ok_head(&b, accept);
	int rc = ws_feed(w, buf_head(&b), b.len);
	buf_finish(&b);
	if (rc != 0 || !ws_is_open(w)) {
		ws_destroy(w);
		return NULL;
	}
	return w;
}

/* ---- Tests ---- */

static void test_accept_rfc_example(void)
{
	char out[29];
	ws_accept_for_key("dGhlIHNhbXBsZSBub25jZQ==", out);
	ASSERT_STR_EQ(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	accept_for("dGhlIHNhbXBsZSBub25jZQ==", out);
	ASSERT_STR_EQ(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_request_format(void)
{
	struct peer p;
	peer_init(&p);
	struct ws *w = NULL;
	ASSERT_EQ(ws_create("example.com:8502", "/chat?x=1", 0, &peer_cb, &p, &w), 0);
	ASSERT(!ws_is_open(w));
	ASSERT_EQ(ws_start(w), 0);
	char key[64];
	ASSERT(request_key(&p.out, key));
	ASSERT_EQ(strlen(key), 24);
	unsigned char raw[32];
	size_t rlen = 0;
	ASSERT_EQ(mbedtls_base64_decode(raw, sizeof(raw), &rlen, (const unsigned char *)key, 24),
		  0);
	ASSERT_EQ(rlen, 16);
	char want[512];
	snprintf(want, sizeof(want),
		 "GET /chat?x=1 HTTP/1.1\r\nHost: example.com:8502\r\nUpgrade: websocket\r\n"
		 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
		 "\r\n",
		 key);
	ASSERT_EQ(p.out.len, strlen(want));
	ASSERT_MEM_EQ(buf_head(&p.out), want, p.out.len);
	ASSERT_EQ(ws_start(w), -EALREADY);

	/* A second client gets a different nonce. */
	struct peer p2;
	peer_init(&p2);
	struct ws *w2 = NULL;
	ASSERT_EQ(ws_create("h", "/", 0, &peer_cb, &p2, &w2), 0);
	ASSERT_EQ(ws_start(w2), 0);
	char key2[64];
	ASSERT(request_key(&p2.out, key2));
	ASSERT(strcmp(key, key2) != 0);
	ws_destroy(w2);
	peer_finish(&p2);
	ws_destroy(w);
	peer_finish(&p);
}

static void test_create_rejects_bad_args(void)
{
	struct peer p;
	peer_init(&p);
	struct ws *w = NULL;
	ASSERT_EQ(ws_create("", "/", 0, &peer_cb, &p, &w), -EINVAL);
	ASSERT_EQ(ws_create("h\r\nX: y", "/", 0, &peer_cb, &p, &w), -EINVAL);
	ASSERT_EQ(ws_create("h", "chat", 0, &peer_cb, &p, &w), -EINVAL);
	ASSERT_EQ(ws_create("h", "/a b", 0, &peer_cb, &p, &w), -EINVAL);
	ws_destroy(NULL);
	peer_finish(&p);
}

static void test_start_send_failure(void)
{
	struct peer p;
	peer_init(&p);
	p.send_fail = -EIO;
	struct ws *w = NULL;
	ASSERT_EQ(ws_create("h", "/", 0, &peer_cb, &p, &w), 0);
	ASSERT_EQ(ws_start(w), -EIO);
	ws_destroy(w);
	peer_finish(&p);
}

static void test_feed_before_start(void)
{
	struct peer p;
	peer_init(&p);
	struct ws *w = NULL;
	ASSERT_EQ(ws_create("h", "/", 0, &peer_cb, &p, &w), 0);
	ASSERT_EQ(ws_feed(w, (const uint8_t *)"HTTP/1.1", 8), -EPROTO);
	ASSERT_EQ(ws_send_binary(w, (const uint8_t *)"x", 1), -ENOTCONN);
	ASSERT_EQ(ws_close(w, 1000), -ENOTCONN);
	ws_destroy(w);
	peer_finish(&p);
}

/* The handshake plus three messages of different sizes and kinds, as one byte stream. */
static void script_basic(struct buf *b, const char *accept, size_t *head_len)
{
	ok_head(b, accept);
	*head_len = b->len;
	frame(b, true, 0, 2, "hello", 5, NULL);
	frame(b, true, 0, 1, "text!", 5, NULL);
	static uint8_t mid[300];
	for (size_t i = 0; i < sizeof(mid); i++)
		mid[i] = (uint8_t)i;
	frame(b, true, 0, 2, mid, sizeof(mid), NULL);
	frame(b, true, 0, 2, "", 0, NULL);
}

static void check_basic(struct peer *p)
{
	ASSERT_EQ(p->n_msgs, 4);
	ASSERT_EQ(p->msgs[0].len, 5);
	ASSERT_MEM_EQ(buf_head(&p->msgs[0]), "hello", 5);
	ASSERT(p->binary[0]);
	ASSERT_EQ(p->msgs[1].len, 5);
	ASSERT_MEM_EQ(buf_head(&p->msgs[1]), "text!", 5);
	ASSERT(!p->binary[1]);
	ASSERT_EQ(p->msgs[2].len, 300);
	for (size_t i = 0; i < 300; i++)
		ASSERT_EQ(buf_head(&p->msgs[2])[i], (uint8_t)i);
	ASSERT_EQ(p->msgs[3].len, 0);
	ASSERT(p->binary[3]);
	ASSERT_EQ(p->out.len, 0); /* nothing to answer */
}

static void test_handshake_whole_with_frames(void)
{
	struct peer p;
	peer_init(&p);
	char accept[29];
	struct ws *w = start(&p, 0, accept);
	ASSERT(w);
	struct buf b;
	buf_init(&b);
	size_t hl;
	script_basic(&b, accept, &hl);
	ASSERT_EQ(ws_feed(w, buf_head(&b), b.len), 0);
	ASSERT(ws_is_open(w));
	check_basic(&p);
	buf_finish(&b);
	ws_destroy(w);
	peer_finish(&p);
}

static void test_handshake_one_byte_at_a_time(void)
{
	struct peer p;
	peer_init(&p);
	char accept[29];
	struct ws *w = start(&p, 0, accept);
	ASSERT(w);
	struct buf b;
	buf_init(&b);
	size_t hl;
	script_basic(&b, accept, &hl);
	for (size_t i = 0; i < b.len; i++) {
		ASSERT_EQ(ws_feed(w, buf_head(&b) + i, 1), 0);
		ASSERT_EQ(ws_is_open(w), i + 1 >= hl);
	}
	check_basic(&p);
	buf_finish(&b);
	ws_destroy(w);
	peer_finish(&p);
}

static void test_handshake_random_splits(void)
{
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	for (int round = 0; round < 300; round++) {
		struct peer p;
		peer_init(&p);
		char accept[29];
		struct ws *w = start(&p, 0, accept);
		ASSERT(w);
		struct buf b;
		buf_init(&b);
		size_t hl;
		script_basic(&b, accept, &hl);
		size_t pos = 0;
		while (pos < b.len) {
			size_t n = 1 + (size_t)(test_rand(&seed) % 200);
			if (n > b.len - pos)
				n = b.len - pos;
			ASSERT_EQ(ws_feed(w, buf_head(&b) + pos, n), 0);
			pos += n;
		}
		ASSERT(ws_is_open(w));
		check_basic(&p);
		buf_finish(&b);
		ws_destroy(w);
		peer_finish(&p);
	}
}

static void test_multiple_messages_one_feed(void)
{
	struct peer p;
	peer_init(&p);
	struct ws *w = open_ws(&p, 0);
	ASSERT(w);
	struct buf b;
	buf_init(&b);
	for (int i = 0; i < 20; i++) {
		char m[16];
		int n = snprintf(m, sizeof(m), "msg %d", i);
		frame(&b, true, 0, 2, m, (size_t)n, NULL);
	}
	ASSERT_EQ(ws_feed(w, buf_head(&b), b.len), 0);
	ASSERT_EQ(p.n_msgs, 20);
	ASSERT_EQ(p.msgs[19].len, 6);
	ASSERT_MEM_EQ(buf_head(&p.msgs[19]), "msg 19", 6);
	buf_finish(&b);
	ws_destroy(w);
	peer_finish(&p);
}

static void test_fragmented_with_ping(void)
{
	struct peer p;
	peer_init(&p);
	struct ws *w = open_ws(&p, 0);
	ASSERT(w);
	struct buf b;
	buf_init(&b);
	frame(&b, false, 0, 2, "Hel", 3, NULL);
	frame(&b, true, 0, 9, "pingdata", 8, NULL);
	frame(&b, false, 0, 0, "lo ", 3, NULL);
	frame(&b, true, 0, 0, "world", 5, NULL);
	/* Feed in two halves to cross a fragment boundary between feeds as well. */
	ASSERT_EQ(ws_feed(w, buf_head(&b), 7), 0);
	ASSERT_EQ(ws_feed(w, buf_head(&b) + 7, b.len - 7), 0);
	ASSERT_EQ(p.n_msgs, 1);
	ASSERT_EQ(p.msgs[0].len, 11);
	ASSERT_MEM_EQ(buf_head(&p.msgs[0]), "Hello world", 11);
	ASSERT(p.binary[0]);

	size_t pos = 0;
	ASSERT(parse_client_frame(&p.out, &pos, &cf));
	ASSERT_EQ(cf.opcode, 10); /* pong */
	ASSERT(cf.fin);
	ASSERT(cf.masked);
	ASSERT_EQ(cf.rsv, 0);
	ASSERT_EQ(cf.len, 8);
	ASSERT_MEM_EQ(cf.payload, "pingdata", 8);
	ASSERT_EQ(pos, p.out.len);
	buf_finish(&b);
	ws_destroy(w);
	peer_finish(&p);
}

static void test_lengths_16_and_64_bit(void)
{
	struct peer p;
	peer_init(&p);
	struct ws *w = open_ws(&p, 0);
	ASSERT(w);
	size_t sizes[] = {125, 126, 65535, 65536, 70000};
	uint8_t *data = malloc(70000);
	ASSERT(data);
	for (size_t i = 0; i < 70000; i++)
		data[i] = (uint8_t)(i * 7 + 3);
	struct buf b;
	buf_init(&b);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
		frame(&b, true, 0, 2, data, sizes[k], NULL);
	/* Check the encodings we built: 16-bit for 126, 64-bit for 65536. */
	ASSERT_EQ(buf_head(&b)[2 + 125 + 1], 126);
	uint64_t seed = 42;
	size_t pos = 0;
	while (pos < b.len) {
		size_t n = 1 + (size_t)(test_rand(&seed) % 9000);
		if (n > b.len - pos)
			n = b.len - pos;
		ASSERT_EQ(ws_feed(w, buf_head(&b) + pos, n), 0);
		pos += n;
	}
	ASSERT_EQ(p.n_msgs, 5);
	for (size_t k = 0; k < 5; k++) {
		ASSERT_EQ(p.msgs[k].len, sizes[k]);
		ASSERT_MEM_EQ(buf_head(&p.msgs[k]), data, sizes[k]);
	}
	free(data);
	buf_finish(&b);
	ws_destroy(w);
	peer_finish(&p);
}

/* Feed one script to an open ws; expect err and a client close frame with close_code. */
static void expect_failure(size_t max_message, const struct buf *script, int err,
			   const char *reason_part, int close_code)
{
	struct peer p;
	peer_init(&p);
	struct ws *w = open_ws(&p, max_message);
	ASSERT(w);
	ASSERT_EQ(ws_feed(w, buf_head(script), script->len), err);
	if (!strstr(ws_last_error(w), reason_part)) {
		TEST_FAIL_("last error \"%s\" lacks \"%s\"", ws_last_error(w), reason_part);
		goto out;
	}
	/* Sticky: later feeds keep failing the same way. */
	if (ws_feed(w, (const uint8_t *)"\x82\x00", 2) != err) {
		TEST_FAIL_("second feed did not repeat the error");
		goto out;
	}
	if (close_code >= 0) {
		size_t pos = 0;
		if (!parse_client_frame(&p.out, &pos, &cf) || cf.opcode != 8 || !cf.masked) {
			TEST_FAIL_("no masked close frame sent");
			goto out;
		}
		int got = cf.len >= 2 ? (cf.payload[0] << 8 | cf.payload[1]) : 0;
		if (got != close_code)
			TEST_FAIL_("close code %d, want %d", got, close_code);
	}
out:
	ws_destroy(w);
	peer_finish(&p);
}

static void test_oversized_message(void)
{
	uint8_t big[1001];
	memset(big, 'x', sizeof(big));
	struct buf b;
	buf_init(&b);
	frame(&b, true, 0, 2, big, 1000, NULL); /* exactly the cap: fine */
	frame(&b, true, 0, 2, big, 1001, NULL);
	struct peer p;
	peer_init(&p);
	struct ws *w = open_ws(&p, 1000);
	ASSERT(w);
	ASSERT_EQ(ws_feed(w, buf_head(&b), b.len), -EPROTO);
	ASSERT_EQ(p.n_msgs, 1);
	ASSERT_STR_EQ(ws_last_error(w), "message too large");
	ws_destroy(w);
	peer_finish(&p);
	buf_clear(&b);

	/* Also across fragments, and with the default cap for a 64-bit length. */
	frame(&b, false, 0, 2, big, 600, NULL);
	frame(&b, true, 0, 0, big, 600, NULL);
	expect_failure(1000, &b, -EPROTO, "message too large", 1009);
	buf_clear(&b);
	/*
	 * A 64-bit length of 2 MiB + 1 and the first 100 payload bytes: wslay only looks at a
	 * frame once some payload is there, and must fail then without waiting for the rest.
	 */
	uint8_t hdr[10] = {0x82, 127, 0, 0, 0, 0, 0, 0x20, 0, 1};
	buf_append(&b, hdr, sizeof(hdr));
	buf_append(&b, big, 100);
	expect_failure(0, &b, -EPROTO, "message too large", 1009);
	buf_finish(&b);
}

static void test_text_frame_not_binary(void)
{
	struct peer p;
	peer_init(&p);
	struct ws *w = open_ws(&p, 0);
	ASSERT(w);
	struct buf b;
	buf_init(&b);
	frame(&b, true, 0, 1, "\xe4\xbd\xa0\xe5\xa5\xbd", 6, NULL); /* "ni hao" in UTF-8 */
	ASSERT_EQ(ws_feed(w, buf_head(&b), b.len), 0);
	ASSERT_EQ(p.n_msgs, 1);
	ASSERT(!p.binary[0]);
	ASSERT_EQ(p.msgs[0].len, 6);
	buf_finish(&b);
	ws_destroy(w);
	peer_finish(&p);
}

static void test_bad_frames(void)
{
	struct buf b;
	buf_init(&b);
	static const uint8_t mask[4] = {1, 2, 3, 4};
	frame(&b, true, 0, 2, "masked", 6, mask);
	expect_failure(0, &b, -EPROTO, "protocol error", 1002);
	for (uint8_t rsv = 1; rsv < 8; rsv++) {
		buf_clear(&b);
		frame(&b, true, rsv, 2, "rsv", 3, NULL);
		expect_failure(0, &b, -EPROTO, "protocol error", 1002);
	}
	uint8_t bad_ops[] = {3, 7, 0xb, 0xf};
	for (size_t i = 0; i < sizeof(bad_ops); i++) {
		buf_clear(&b);
		frame(&b, true, 0, bad_ops[i], "op", 2, NULL);
		expect_failure(0, &b, -EPROTO, "protocol error", 1002);
	}
	/* A continuation with nothing to continue. */
	buf_clear(&b);
	frame(&b, true, 0, 0, "cont", 4, NULL);
	expect_failure(0, &b, -EPROTO, "protocol error", 1002);
	/* A new data frame in the middle of a fragmented message. */
	buf_clear(&b);
	frame(&b, false, 0, 2, "a", 1, NULL);
	frame(&b, true, 0, 2, "b", 1, NULL);
	expect_failure(0, &b, -EPROTO, "protocol error", 1002);
	/* Invalid UTF-8 in a text frame. */
	buf_clear(&b);
	frame(&b, true, 0, 1, "\xff\xfe", 2, NULL);
	expect_failure(0, &b, -EPROTO, "UTF-8", 1007);
	/* Frame-layer errors: a ping longer than 125 bytes, a fragmented ping. */
	buf_clear(&b);
	uint8_t long_ping[200] = {0};
	frame(&b, true, 0, 9, long_ping, sizeof(long_ping), NULL);
	expect_failure(0, &b, -EPROTO, "protocol error", -1);
	buf_clear(&b);
	frame(&b, false, 0, 9, "p", 1, NULL);
	expect_failure(0, &b, -EPROTO, "protocol error", -1);
	buf_finish(&b);
}

static void check_close(int code, const char *reason, uint16_t want_peer_code)
{
	struct peer p;
	peer_init(&p);
	struct ws *w = open_ws(&p, 0);
	ASSERT(w);
	struct buf b;
	buf_init(&b);
	frame(&b, true, 0, 2, "last", 4, NULL);
	close_frame(&b, code, reason);
	frame(&b, true, 0, 2, "after close", 11, NULL);
	ASSERT_EQ(ws_feed(w, buf_head(&b), b.len), -EPIPE);
	ASSERT_EQ(p.n_msgs, 1); /* nothing after the close frame is delivered */
	ASSERT_EQ(ws_peer_close_code(w), want_peer_code);
	size_t pos = 0;
	ASSERT(parse_client_frame(&p.out, &pos, &cf));
	ASSERT_EQ(cf.opcode, 8);
	ASSERT(cf.masked);
	ASSERT(cf.fin);
	if (code >= 0) {
		ASSERT_GE(cf.len, 2);
		ASSERT_EQ(cf.payload[0] << 8 | cf.payload[1], code);
	} else {
		ASSERT_EQ(cf.len, 0);
	}
	ASSERT_EQ(pos, p.out.len);
	ASSERT_EQ(ws_feed(w, (const uint8_t *)"", 0), -EPIPE);
	ASSERT_EQ(ws_send_binary(w, (const uint8_t *)"x", 1), -EPIPE);
	buf_finish(&b);
	ws_destroy(w);
	peer_finish(&p);
}

static void test_close_with_code(void)
{
	check_close(1001, "going away", 1001);
}

static void test_close_without_code(void)
{
	check_close(-1, "", 0);
}

static void test_our_close(void)
{
	struct peer p;
	peer_init(&p);
	struct ws *w = open_ws(&p, 0);
	ASSERT(w);
	ASSERT_EQ(ws_close(w, 1000), 0);
	size_t pos = 0;
	ASSERT(parse_client_frame(&p.out, &pos, &cf));
	ASSERT_EQ(cf.opcode, 8);
	ASSERT(cf.masked);
	ASSERT_EQ(cf.len, 2);
	ASSERT_EQ(cf.payload[0] << 8 | cf.payload[1], 1000);
	ASSERT_EQ(ws_close(w, 1000), 0); /* already sent: no second frame */
	ASSERT_EQ(p.out.len, pos);
	/* The server answers; a message still in flight before its close is delivered. */
	struct buf b;
	buf_init(&b);
	frame(&b, true, 0, 2, "late", 4, NULL);
	close_frame(&b, 1000, "");
	ASSERT_EQ(ws_feed(w, buf_head(&b), b.len), -EPIPE);
	ASSERT_EQ(p.n_msgs, 1);
	ASSERT_EQ(ws_peer_close_code(w), 1000);
	ASSERT_EQ(p.out.len, pos); /* no reply to a reply */
	buf_finish(&b);
	ws_destroy(w);
	peer_finish(&p);
}

static void test_message_callback_failure(void)
{
	struct peer p;
	peer_init(&p);
	struct ws *w = open_ws(&p, 0);
	ASSERT(w);
	p.msg_fail = -ECANCELED;
	p.msg_fail_at = 1;
	struct buf b;
	buf_init(&b);
	frame(&b, true, 0, 2, "one", 3, NULL);
	frame(&b, true, 0, 2, "two", 3, NULL);
	frame(&b, true, 0, 2, "three", 5, NULL);
	ASSERT_EQ(ws_feed(w, buf_head(&b), b.len), -ECANCELED);
	ASSERT_EQ(p.n_msgs, 1);
	ASSERT_EQ(ws_feed(w, buf_head(&b), b.len), -ECANCELED);
	ASSERT_EQ(p.n_msgs, 1);
	buf_finish(&b);
	ws_destroy(w);
	peer_finish(&p);
}

static void test_send_failure_while_open(void)
{
	struct peer p;
	peer_init(&p);
	struct ws *w = open_ws(&p, 0);
	ASSERT(w);
	p.send_fail = -ECONNRESET;
	ASSERT_EQ(ws_send_binary(w, (const uint8_t *)"x", 1), -ECONNRESET);
	/* A ping's pong cannot go out either. */
	struct buf b;
	buf_init(&b);
	frame(&b, true, 0, 9, "", 0, NULL);
	ASSERT_EQ(ws_feed(w, buf_head(&b), b.len), -ECONNRESET);
	buf_finish(&b);
	ws_destroy(w);
	peer_finish(&p);
}

static void test_send_binary_frames(void)
{
	struct peer p;
	peer_init(&p);
	struct ws *w = open_ws(&p, 0);
	ASSERT(w);
	size_t sizes[] = {0, 10, 125, 126, 200, 65535, 65536, 70000};
	uint8_t *data = malloc(70000);
	ASSERT(data);
	for (size_t i = 0; i < 70000; i++)
		data[i] = (uint8_t)(i ^ (i >> 8));
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
		ASSERT_EQ(ws_send_binary(w, data, sizes[k]), 0);
	size_t pos = 0;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t start_pos = pos;
		ASSERT(parse_client_frame(&p.out, &pos, &cf));
		ASSERT(cf.fin);
		ASSERT_EQ(cf.rsv, 0);
		ASSERT_EQ(cf.opcode, 2);
		ASSERT(cf.masked);
		ASSERT_EQ(cf.len, sizes[k]);
		ASSERT_MEM_EQ(cf.payload, data, sizes[k]);
		/* Minimal length encoding, as RFC 6455 5.2 requires. */
		uint8_t l7 = buf_head(&p.out)[start_pos + 1] & 0x7f;
		ASSERT_EQ(l7, sizes[k] < 126 ? sizes[k] : sizes[k] < 65536 ? 126 : 127);
	}
	ASSERT_EQ(pos, p.out.len);
	free(data);
	ws_destroy(w);
	peer_finish(&p);
}

static void test_masks_vary(void)
{
	struct peer p;
	peer_init(&p);
	struct ws *w = open_ws(&p, 0);
	ASSERT(w);
	/* 100 frames drain the mask pool more than once; keys must not all repeat. */
	for (int i = 0; i < 100; i++)
		ASSERT_EQ(ws_send_binary(w, (const uint8_t *)"abcd", 4), 0);
	const uint8_t *o = buf_head(&p.out);
	ASSERT_EQ(p.out.len, 100 * 10);
	int same = 0;
	for (int i = 1; i < 100; i++)
		same += memcmp(o + 2, o + i * 10 + 2, 4) == 0;
	ASSERT_LT(same, 5);
	ws_destroy(w);
	peer_finish(&p);
}

/* Run a full response through ws_feed (whole) and ws_parse_upgrade; expect -EPROTO + msg. */
static void expect_bad_response(const char *resp, const char *want_err)
{
	struct peer p;
	peer_init(&p);
	char accept[29];
	struct ws *w = start(&p, 0, accept);
	ASSERT(w);
	ASSERT_EQ(ws_feed(w, (const uint8_t *)resp, strlen(resp)), -EPROTO);
	ASSERT_STR_EQ(ws_last_error(w), want_err);
	ASSERT(!ws_is_open(w));
	char err[128] = "";
	ASSERT_EQ(ws_parse_upgrade((const uint8_t *)resp, strlen(resp), accept, err, sizeof(err)),
		  -EPROTO);
	ASSERT_STR_EQ(err, want_err);
	ws_destroy(w);
	peer_finish(&p);
}

static void test_bad_responses(void)
{
	expect_bad_response("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
			    "upgrade refused: HTTP 403 Forbidden");
	expect_bad_response("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>",
			    "upgrade refused: HTTP 200 OK");
	expect_bad_response("HTTP/1.1 400\r\n\r\n", "upgrade refused: HTTP 400");
	expect_bad_response("SSH-2.0-OpenSSH_9.2\r\n", "upgrade response: not HTTP/1.x");
	expect_bad_response("\x16\x03\x01\x02\x00", "upgrade response: not HTTP/1.x");
	expect_bad_response("HTTP/1.1 1O1 Switching\r\n\r\n", "upgrade response: bad status line");
	expect_bad_response("HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
			    "upgrade response: not HTTP/1.1");
	expect_bad_response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			    "Connection: Upgrade\r\n"
			    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
			    "upgrade response: bad Sec-WebSocket-Accept");
	expect_bad_response("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
			    "Sec-WebSocket-Accept: x\r\n\r\n",
			    "upgrade response: missing Upgrade: websocket");
	expect_bad_response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n"
			    "Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n",
			    "upgrade response: missing Upgrade: websocket");
	expect_bad_response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			    "Connection: keep-alive\r\nSec-WebSocket-Accept: x\r\n\r\n",
			    "upgrade response: missing Connection: upgrade");
	expect_bad_response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			    "Connection: Upgrade\r\n\r\n",
			    "upgrade response: missing Sec-WebSocket-Accept");
	expect_bad_response("HTTP/1.1 101 Switching Protocols\r\nUpgrade websocket\r\n\r\n",
			    "upgrade response: bad header line");
	expect_bad_response("HTTP/1.1 101 Switching Protocols\r\n folded\r\n\r\n",
			    "upgrade response: bad header line");
	expect_bad_response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\nX: y\r\n\r\n",
			    "upgrade response: bad header line");
}

static void test_good_response_variants(void)
{
	const char *fmts[] = {
		/* Lower-case names, odd spacing, token lists, mixed-case values. */
		"HTTP/1.1 101 Switching Protocols\r\nupgrade:WebSocket\r\n"
		"connection: keep-alive, UPGRADE \r\nsec-websocket-accept:   %s\t\r\n"
		"Server: x\r\n\r\n",
		"HTTP/1.1 101\r\nConnection: Upgrade\r\nSEC-WEBSOCKET-ACCEPT: %s\r\n"
		"Upgrade: websocket\r\nSec-WebSocket-Extensions:\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		struct peer p;
		peer_init(&p);
		char accept[29];
		struct ws *w = start(&p, 0, accept);
		ASSERT(w);
		/* Splice the accept in for the "%s" (a literal format would not fit a table). */
		char resp[512];
		const char *mark = strstr(fmts[i], "%s");
		ASSERT(mark);
		snprintf(resp, sizeof(resp), "%.*s%s%s", (int)(mark - fmts[i]), fmts[i], accept,
			 mark + 2);
		char err[128] = "";
		ASSERT_EQ(ws_parse_upgrade((const uint8_t *)resp, strlen(resp), accept, err,
					   sizeof(err)),
			  (long)strlen(resp));
		ASSERT_EQ(ws_feed(w, (const uint8_t *)resp, strlen(resp)), 0);
		ASSERT(ws_is_open(w));
		ws_destroy(w);
		peer_finish(&p);
	}
}

static void test_parse_incomplete(void)
{
	const char *accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
	char resp[256];
	snprintf(resp, sizeof(resp), ok_head_fmt, accept);
	size_t n = strlen(resp);
	char err[64];
	for (size_t i = 0; i < n; i++)
		ASSERT_EQ(ws_parse_upgrade((const uint8_t *)resp, i, accept, err, sizeof(err)),
			  -EAGAIN);
	ASSERT_EQ(ws_parse_upgrade((const uint8_t *)resp, n, accept, err, sizeof(err)), (long)n);
	/* Trailing frame bytes are not part of the head. */
	char more[300];
	snprintf(more, sizeof(more), "%s\x82\x01x", resp);
	ASSERT_EQ(ws_parse_upgrade((const uint8_t *)more, n + 3, accept, NULL, 0), (long)n);
}

static void test_head_too_large(void)
{
	struct peer p;
	peer_init(&p);
	char accept[29];
	struct ws *w = start(&p, 0, accept);
	ASSERT(w);
	const char *status = "HTTP/1.1 101 Switching Protocols\r\n";
	ASSERT_EQ(ws_feed(w, (const uint8_t *)status, strlen(status)), 0);
	size_t total = strlen(status);
	char line[1000];
	memset(line, 'a', sizeof(line));
	memcpy(line, "X-Pad: ", 7);
	line[998] = '\r';
	line[999] = '\n';
	int rc = 0;
	while (rc == 0 && total < 20000) {
		rc = ws_feed(w, (const uint8_t *)line, sizeof(line));
		total += sizeof(line);
		if (rc == 0)
			ASSERT_LT(total, 16384);
	}
	ASSERT_EQ(rc, -EPROTO);
	ASSERT_STR_EQ(ws_last_error(w), "upgrade response: head larger than 16384 bytes");
	ASSERT_GE(total, 16384);

	/* The parser alone: 16 KiB without a blank line fails, just under is incomplete. */
	uint8_t *big = malloc(16384);
	ASSERT(big);
	memcpy(big, status, strlen(status));
	memset(big + strlen(status), 'a', 16384 - strlen(status));
	char err[64];
	ASSERT_EQ(ws_parse_upgrade(big, 16383, accept, err, sizeof(err)), -EAGAIN);
	ASSERT_EQ(ws_parse_upgrade(big, 16384, accept, err, sizeof(err)), -EPROTO);
	ASSERT_STR_EQ(err, "upgrade response: head larger than 16384 bytes");
	free(big);
	ws_destroy(w);
	peer_finish(&p);
}

static void test_head_near_limit_ok(void)
{
	/* A valid head of exactly 16 KiB is accepted, and frames after it are delivered. */
	struct peer p;
	peer_init(&p);
	char accept[29];
	struct ws *w = start(&p, 0, accept);
	ASSERT(w);
	struct buf b;
	buf_init(&b);
	buf_printf(&b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		       "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nX-Pad: ",
		   accept);
	while (b.len < 16384 - 4)
		buf_append(&b, "p", 1);
	buf_append(&b, "\r\n\r\n", 4);
	ASSERT_EQ(b.len, 16384);
	frame(&b, true, 0, 2, "ok", 2, NULL);
	ASSERT_EQ(ws_feed(w, buf_head(&b), b.len), 0);
	ASSERT(ws_is_open(w));
	ASSERT_EQ(p.n_msgs, 1);
	buf_finish(&b);
	ws_destroy(w);
	peer_finish(&p);
}

/* ---- Fragmented messages: streamed to on_data, never reassembled ---- */

/*
 * Open a ws with the given cap and feed script to it step bytes at a time (0: all at once),
 * stopping at the first error. Returns ws_feed's first nonzero result, or 0. The ws is
 * returned in *out for further checks (the caller destroys it); NULL if it could not open.
 */
static int feed_script(struct peer *p, size_t max_message, const struct buf *script, size_t step,
		       struct ws **out)
{
	struct ws *w = open_ws(p, max_message);
	*out = w;
	if (!w)
		return -ENOTCONN;
	size_t n = step ? step : script->len;
	for (size_t pos = 0; pos < script->len; pos += n) {
		size_t take = script->len - pos < n ? script->len - pos : n;
		int rc = ws_feed(w, buf_head(script) + pos, take);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Messages of every shape, with control frames between fragments. */
static void script_fragments(struct buf *b)
{
	/* Binary in three fragments, a ping and a pong between them. */
	frame(b, false, 0, 2, "abc", 3, NULL);
	frame(b, true, 0, 9, "p1", 2, NULL);
	frame(b, false, 0, 0, "defg", 4, NULL);
	frame(b, true, 0, 10, "unsolicited", 11, NULL);
	frame(b, true, 0, 0, "h", 1, NULL);
	/* Text with a 3-byte character split across fragments (UTF-8 is checked across them). */
	frame(b, false, 0, 1, "\xe4", 1, NULL);
	frame(b, false, 0, 0, "\xbd", 1, NULL);
	frame(b, true, 0, 0, "\xa0!", 2, NULL);
	/* Empty fragments, and an empty fragmented message. */
	frame(b, false, 0, 2, "", 0, NULL);
	frame(b, false, 0, 0, "x", 1, NULL);
	frame(b, true, 0, 0, "", 0, NULL);
	frame(b, false, 0, 2, "", 0, NULL);
	frame(b, true, 0, 0, "", 0, NULL);
	/* A whole message after them all. */
	frame(b, true, 0, 2, "whole", 5, NULL);
}

static void check_fragments(struct peer *p)
{
	ASSERT(!p->mixed_kinds);
	ASSERT(!p->bad_end_len);
	ASSERT_EQ(p->n_msgs, 5);
	ASSERT_EQ(p->msgs[0].len, 8);
	ASSERT_MEM_EQ(buf_head(&p->msgs[0]), "abcdefgh", 8);
	ASSERT(p->binary[0]);
	ASSERT_EQ(p->msgs[1].len, 4);
	ASSERT_MEM_EQ(buf_head(&p->msgs[1]), "\xe4\xbd\xa0!", 4);
	ASSERT(!p->binary[1]);
	ASSERT_EQ(p->msgs[2].len, 1);
	ASSERT_MEM_EQ(buf_head(&p->msgs[2]), "x", 1);
	ASSERT_EQ(p->msgs[3].len, 0);
	ASSERT(p->binary[3]);
	ASSERT_EQ(p->msgs[4].len, 5);
	ASSERT_MEM_EQ(buf_head(&p->msgs[4]), "whole", 5);
	/* The ping between fragments was answered, and nothing else was sent. */
	size_t pos = 0;
	ASSERT(parse_client_frame(&p->out, &pos, &cf));
	ASSERT_EQ(cf.opcode, 10);
	ASSERT_EQ(cf.len, 2);
	ASSERT_MEM_EQ(cf.payload, "p1", 2);
	ASSERT_EQ(pos, p->out.len);
}

static void test_fragments_whole_and_one_byte(void)
{
	struct buf b;
	buf_init(&b);
	script_fragments(&b);
	size_t steps[] = {0, 1, 2, 3, 7};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct peer p;
		peer_init(&p);
		struct ws *w;
		int rc = feed_script(&p, 0, &b, steps[i], &w);
		printf("# step %zu\n", steps[i]);
		ASSERT_EQ(rc, 0);
		check_fragments(&p);
		if (steps[i] == 1)
			ASSERT_EQ(p.max_piece, 1); /* fed bytes are passed on as they come */
		ws_destroy(w);
		peer_finish(&p);
		if (test_cur_failed)
			break;
	}
	buf_finish(&b);
}

/* A message of WS_MAX_MESSAGE bytes sent as one-byte fragments: delivered whole and in order. */
static void test_one_byte_fragments(void)
{
	struct buf b;
	buf_init(&b);
	size_t n = WS_MAX_MESSAGE;
	ASSERT_EQ(buf_reserve(&b, 3 * n), 0);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)(i * 31 + 7);
		frame(&b, i + 1 == n, 0, i == 0 ? 2 : 0, &c, 1, NULL);
	}
	frame(&b, true, 0, 2, "next", 4, NULL);
	struct peer p;
	peer_init(&p);
	struct ws *w;
	ASSERT_EQ(feed_script(&p, 0, &b, 0, &w), 0);
	ASSERT_EQ(p.n_msgs, 2);
	ASSERT(!p.bad_end_len);
	ASSERT_EQ(p.msgs[0].len, n);
	ASSERT_EQ(p.max_piece, 4);
	ASSERT_EQ(p.data_calls, n + 1);
	const uint8_t *m = buf_head(&p.msgs[0]);
	for (size_t i = 0; i < n; i++)
		if (m[i] != (uint8_t)(i * 31 + 7))
			ASSERT_EQ(m[i], (uint8_t)(i * 31 + 7));
	ASSERT_MEM_EQ(buf_head(&p.msgs[1]), "next", 4);
	ws_destroy(w);
	peer_finish(&p);
	buf_finish(&b);
}

/* The cap counts every fragment of a message, however the frames are cut and fed. */
static void test_cap_across_fragments(void)
{
	for (int fed = 0; fed < 2; fed++) {
		size_t step = fed ? 1 : 0;
		/* Exactly the cap in 1-byte fragments, then one byte more in another message. */
		struct buf b;
		buf_init(&b);
		for (size_t i = 0; i < 1000; i++)
			frame(&b, i == 999, 0, i == 0 ? 2 : 0, "y", 1, NULL);
		for (size_t i = 0; i < 1001; i++)
			frame(&b, i == 1000, 0, i == 0 ? 2 : 0, "z", 1, NULL);
		struct peer p;
		peer_init(&p);
		struct ws *w;
		ASSERT_EQ(feed_script(&p, 1000, &b, step, &w), -EPROTO);
		ASSERT_STR_EQ(ws_last_error(w), "message too large");
		ASSERT_EQ(p.n_msgs, 1);
		ASSERT_EQ(p.msgs[0].len, 1000);
		/* The 1001st byte was refused before delivery. */
		ASSERT_EQ(p.msgs[1].len, 1000);
		size_t pos = 0;
		ASSERT(parse_client_frame(&p.out, &pos, &cf));
		ASSERT_EQ(cf.opcode, 8);
		ASSERT_EQ(cf.payload[0] << 8 | cf.payload[1], 1009);
		ws_destroy(w);
		peer_finish(&p);

		/* A large fragment after small ones is refused at its header, before its payload. */
		buf_clear(&b);
		frame(&b, false, 0, 1, "0123456789", 10, NULL);
		frame(&b, true, 0, 9, "", 0, NULL);
		uint8_t hdr[5] = {0x80, 126, 0x03, 0xdf, 'x'}; /* continuation, fin, 991 bytes */
		buf_append(&b, hdr, sizeof(hdr)); /* wslay reads a header once a payload byte is in */
		peer_init(&p);
		ASSERT_EQ(feed_script(&p, 1000, &b, step, &w), -EPROTO);
		ASSERT_STR_EQ(ws_last_error(w), "message too large");
		ASSERT_EQ(p.n_msgs, 0);
		ASSERT_EQ(p.msgs[0].len, 10);
		ws_destroy(w);
		peer_finish(&p);
		buf_finish(&b);
	}
}

/* Control frames may come between fragments; anything else out of turn fails. */
static void test_control_and_bad_sequences_between_fragments(void)
{
	struct buf b;
	buf_init(&b);
	/* A close between fragments ends the connection; the message never completes. */
	frame(&b, false, 0, 2, "part", 4, NULL);
	close_frame(&b, 1001, "bye");
	frame(&b, true, 0, 0, "rest", 4, NULL);
	for (size_t step = 0; step < 2; step++) {
		struct peer p;
		peer_init(&p);
		struct ws *w;
		ASSERT_EQ(feed_script(&p, 0, &b, step, &w), -EPIPE);
		ASSERT_EQ(ws_peer_close_code(w), 1001);
		ASSERT_EQ(p.n_msgs, 0);
		ASSERT_EQ(p.msgs[0].len, 4);
		ws_destroy(w);
		peer_finish(&p);
	}
	/* A text frame inside a binary message, after a ping. */
	buf_clear(&b);
	frame(&b, false, 0, 2, "a", 1, NULL);
	frame(&b, true, 0, 9, "", 0, NULL);
	frame(&b, true, 0, 1, "b", 1, NULL);
	expect_failure(0, &b, -EPROTO, "protocol error", 1002);
	/* A continuation after the final fragment. */
	buf_clear(&b);
	frame(&b, false, 0, 2, "a", 1, NULL);
	frame(&b, true, 0, 0, "b", 1, NULL);
	frame(&b, true, 0, 0, "c", 1, NULL);
	expect_failure(0, &b, -EPROTO, "protocol error", 1002);
	/* A ping longer than 125 bytes between fragments. */
	buf_clear(&b);
	frame(&b, false, 0, 2, "a", 1, NULL);
	uint8_t long_ping[126] = {0};
	frame(&b, true, 0, 9, long_ping, sizeof(long_ping), NULL);
	expect_failure(0, &b, -EPROTO, "protocol error", -1);
	/* Bad UTF-8 in a later fragment of a text message. */
	buf_clear(&b);
	frame(&b, false, 0, 1, "ok", 2, NULL);
	frame(&b, true, 0, 0, "\xc0\xaf", 2, NULL);
	expect_failure(0, &b, -EPROTO, "UTF-8", 1007);
	/* A text message that ends inside a character. */
	buf_clear(&b);
	frame(&b, false, 0, 1, "ok", 2, NULL);
	frame(&b, true, 0, 0, "\xe4\xbd", 2, NULL);
	expect_failure(0, &b, -EPROTO, "UTF-8", 1007);
	buf_finish(&b);
}

/* on_message_end failing stops delivery like on_data failing. */
static int fail_end(void *user_data, size_t len, bool binary)
{
	return -EBADMSG;
}

static void test_message_end_failure(void)
{
	static const struct ws_callbacks cb = {
		.send = peer_send,
		.on_data = peer_on_data,
		.on_message_end = fail_end,
	};
	struct peer p;
	peer_init(&p);
	struct ws *w = NULL;
	char accept[29];
	ASSERT_EQ(ws_create("h", "/", 0, &cb, &p, &w), 0);
	ASSERT_EQ(ws_start(w), 0);
	char key[64];
	ASSERT(request_key(&p.out, key));
	accept_for(key, accept);
	struct buf b;
	buf_init(&b);
	ok_head(&b, accept);
	frame(&b, true, 0, 2, "one", 3, NULL);
	frame(&b, true, 0, 2, "two", 3, NULL);
	ASSERT_EQ(ws_feed(w, buf_head(&b), b.len), -EBADMSG);
	ASSERT_EQ(p.msgs[0].len, 3); /* "two" never reached on_data */
	buf_finish(&b);
	ws_destroy(w);
	peer_finish(&p);
}

int main(void)
{
	RUN(test_accept_rfc_example);
	RUN(test_request_format);
	RUN(test_create_rejects_bad_args);
	RUN(test_start_send_failure);
	RUN(test_feed_before_start);
	RUN(test_handshake_whole_with_frames);
	RUN(test_handshake_one_byte_at_a_time);
	RUN(test_handshake_random_splits);
	RUN(test_multiple_messages_one_feed);
	RUN(test_fragmented_with_ping);
	RUN(test_lengths_16_and_64_bit);
	RUN(test_oversized_message);
	RUN(test_text_frame_not_binary);
	RUN(test_bad_frames);
	RUN(test_close_with_code);
	RUN(test_close_without_code);
	RUN(test_our_close);
	RUN(test_message_callback_failure);
	RUN(test_send_failure_while_open);
	RUN(test_send_binary_frames);
	RUN(test_masks_vary);
	RUN(test_bad_responses);
	RUN(test_good_response_variants);
	RUN(test_parse_incomplete);
	RUN(test_head_too_large);
	RUN(test_head_near_limit_ok);
	RUN(test_fragments_whole_and_one_byte);
	RUN(test_one_byte_fragments);
	RUN(test_cap_across_fragments);
	RUN(test_control_and_bad_sequences_between_fragments);
	RUN(test_message_end_failure);
	TEST_DONE();
}
