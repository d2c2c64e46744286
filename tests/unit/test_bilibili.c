/*
 * Bilibili packets: the real captures of ../shared/fixtures/bilibili/captures, fed whole and
 * one byte at a time, decode to the packets their README lists; packing matches the 2026 web
 * client's bytes; broken framing, corrupt and oversized batches are refused as documented.
 */
#include <errno.h>
#include <stdbool.h>
#include <zlib.h>

#include "b64.h"
#include "bilibili.h"
#include "test.h"

#define CAPTURES SHARED_DIR "/fixtures/bilibili/captures/"

/* What the callback saw, one line per packet: "op3 pop=N", "op8 {...}", or the cmd of an
 * op-5 JSON body. */
struct seen {
	char lines[64][48];
	int n;
	int stop_at; /* return -EINTR from this packet on (0: never) */
};

static int on_packet(void *user_data, uint32_t op, uint16_t ver, const uint8_t *body, size_t len)
{
	struct seen *s = user_data;
	if (s->stop_at && s->n + 1 >= s->stop_at)
		return -EINTR;
	if (s->n >= 64)
		return -ENOSPC;
	char *line = s->lines[s->n++];
	if (op == BILI_OP_HEARTBEAT_REPLY && len >= 4) {
		unsigned long pop = (unsigned long)body[0] << 24 | (unsigned long)body[1] << 16 |
		                    (unsigned long)body[2] << 8 | body[3];
		snprintf(line, 48, "op3 pop=%lu", pop);
	} else if (op == BILI_OP_MESSAGE && ver == 0) {
		const char *k = NULL;
		for (size_t i = 0; !k && i + 7 <= len; i++)
			if (memcmp(body + i, "\"cmd\":\"", 7) == 0)
				k = (const char *)body + i;
		if (!k) {
			snprintf(line, 48, "op5 no cmd");
			return 0;
		}
		k += 7;
		const char *e = memchr(k, '"', len - (size_t)(k - (const char *)body));
		snprintf(line, 48, "%.*s", e ? (int)(e - k) : 0, k);
	} else {
		snprintf(line, 48, "op%u %.*s", (unsigned)op, len > 30 ? 30 : (int)len, body);
	}
	return 0;
}

/* The server-to-client messages of one capture file. */
struct capture {
	uint8_t *msg[32];
	size_t len[32];
	int n;
};

static int load(const char *name, struct capture *c)
{
	memset(c, 0, sizeof(*c));
	char path[512];
	snprintf(path, sizeof(path), CAPTURES "%s", name);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	char line[16384];
	while (fgets(line, sizeof(line), f) && c->n < 32) {
		if (!strstr(line, "\"dir\": \"in\""))
			continue;
		const char *b = strstr(line, "\"b64\": \"");
		if (!b)
			continue;
		b += 8;
		struct buf m;
		buf_init(&m);
		if (!b64_decode(b, strcspn(b, "\""), &m)) {
			buf_finish(&m);
			break;
		}
		c->msg[c->n] = buf_head(&m); /* fresh buffer: head is the allocation */
		c->len[c->n] = m.len;
		c->n++;
	}
	fclose(f);
	return 0;
}

static void unload(struct capture *c)
{
	for (int i = 0; i < c->n; i++)
		free(c->msg[i]);
}

/* Feed messages [from, to) of c as one stream, whole or one byte at a time; returns the
 * first negative result or the sum of the packet counts. */
static int feed_all(struct bili_reader *r, const struct capture *c, int from, int to, bool bytewise,
                    struct seen *s)
{
	int total = 0;
	for (int i = from; i < to; i++) {
		size_t step = bytewise ? 1 : c->len[i];
		for (size_t off = 0; off < c->len[i]; off += step) {
			int rc = bili_reader_feed(r, c->msg[i] + off, step, on_packet, s);
			if (rc < 0)
				return rc;
			total += rc;
		}
	}
	return total;
}

static bool same_lines(const struct seen *s, const char *const *want, int n)
{
	if (s->n != n) {
		printf("# got %d packets, want %d\n", s->n, n);
		for (int i = 0; i < s->n; i++)
			printf("#   %s\n", s->lines[i]);
		return false;
	}
	for (int i = 0; i < n; i++)
		if (strcmp(s->lines[i], want[i]) != 0) {
			printf("# packet %d: got \"%s\", want \"%s\"\n", i, s->lines[i], want[i]);
			return false;
		}
	return true;
}

static void check_stream(const char *file, const char *const *want, int nwant)
{
	struct capture c;
	if (load(file, &c) < 0) {
		TEST_FAIL_("cannot read %s", file);
		return;
	}
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct bili_reader r;
		struct seen s = {0};
		bili_reader_init(&r);
		int rc = feed_all(&r, &c, 0, c.n, bytewise, &s);
		bool ok = rc == nwant && same_lines(&s, want, nwant) && r.skipped == 0 &&
		          r.pending.len == 0 && r.packets == (uint64_t)nwant;
		if (!ok)
			printf("# %s bytewise=%d rc=%d skipped=%" PRIu64 "\n", file, bytewise, rc,
			       r.skipped);
		bili_reader_finish(&r);
		if (!ok) {
			test_cur_failed = 1;
			break;
		}
	}
	unload(&c);
}

static void test_capture_broadcastlv(void)
{
	static const char *const want[] = {
	    "op8 {\"code\":0}",  "STOP_LIVE_ROOM_LIST", "ONLINE_RANK_V2",
	    "ONLINE_RANK_COUNT", "op3 pop=1",           "WATCHED_CHANGE",
	    "INTERACT_WORD",     "INTERACT_WORD",       "DANMU_MSG",
	};
	check_stream("broadcastlv-2023-01-02.jsonl", want, 9);
}

static void test_capture_pure_live(void)
{
	static const char *const want[] = {
	    "op8 {\"code\":0}",    "op3 pop=1",        "LOG_IN_NOTICE",    "ONLINE_RANK_COUNT",
	    "INTERACT_WORD_V2",    "INTERACT_WORD_V2", "INTERACT_WORD_V2", "INTERACT_WORD_V2",
	    "ONLINE_RANK_V3",      "DANMU_MSG",        "WATCHED_CHANGE",   "ONLINE_RANK_COUNT",
	    "LIKE_INFO_V3_UPDATE",
	};
	check_stream("pure_live-S13-live-2026-09-27.jsonl", want, 13);
	static const char *const gifts[] = {"SEND_GIFT_V2"};
	check_stream("pure_live-S13-guest-gifts-2026-10-09.jsonl", gifts, 1);
	static const char *const livekit[] = {"DANMU_MSG"};
	check_stream("livekit-2021-09.jsonl", livekit, 1);
}

/*
 * A heartbeat with a body gets it echoed after the reply, outside packet_len (protocol
 * §3.5). On a stream that echo cannot be told from a header: the reply is delivered, then
 * the stream is refused once the echo meets the next packet. danmakud sends empty heartbeats, so no
 * echo comes.
 */
static void test_heartbeat_echo(void)
{
	struct capture c;
	ASSERT_EQ(load("warframe-api-ktor-2021-11.jsonl", &c), 0);
	ASSERT_EQ(c.n, 2);
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct bili_reader r;
		struct seen s = {0};
		bili_reader_init(&r);
		ASSERT_EQ(feed_all(&r, &c, 0, 1, bytewise, &s), 1);
		ASSERT_STR_EQ(s.lines[0], "INTERACT_WORD");
		ASSERT_EQ(c.len[1], 35);
		/* The reply is delivered; the 15 echoed bytes wait for a 16th... */
		ASSERT_EQ(feed_all(&r, &c, 1, 2, bytewise, &s), 1);
		ASSERT_EQ(s.n, 2);
		ASSERT_STR_EQ(s.lines[1], "op3 pop=10");
		ASSERT_EQ(r.pending.len, 15);
		/* ...and with the next message they make a header that cannot be one. */
		ASSERT_EQ(feed_all(&r, &c, 0, 1, bytewise, &s), -EPROTO);
		ASSERT_EQ(s.n, 2);
		bili_reader_finish(&r);
	}
	unload(&c);
}

/* The uncompressed brotli meta-block (first byte 0x8b) of the API documentation. */
static void test_brotli_meta_block(void)
{
	struct capture c;
	ASSERT_EQ(load("bilibili-api-collect-doc.jsonl", &c), 0);
	ASSERT_EQ(c.n, 3);
	ASSERT_EQ(c.msg[2][BILI_HDR_LEN], 0x8b);
	struct bili_reader r;
	struct seen s = {0};
	bili_reader_init(&r);
	ASSERT_EQ(bili_reader_feed(&r, c.msg[2], c.len[2], on_packet, &s), 1);
	ASSERT_STR_EQ(s.lines[0], "WATCHED_CHANGE");
	bili_reader_finish(&r);
	unload(&c);
}

static void test_pack(void)
{
	struct buf b;
	buf_init(&b);
	ASSERT_EQ(bili_pack(&b, BILI_OP_HEARTBEAT, NULL, 0), 0);
	static const uint8_t hb[] = {0, 0, 0, 16, 0, 16, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1};
	ASSERT_EQ(b.len, 16);
	ASSERT_MEM_EQ(buf_head(&b), hb, 16);
	/* The 2026 web client's ACK (capture S13-protover3 t=94019): 99 bytes, ver 0, seq 1. */
	const char *ack =
	    "{\"msg_id\":\"214386819788254208:1000:1000\",\"cmd\":\"SUPER_CHAT_MESSAGE\","
	    "\"p_msg_type\":1}";
	buf_clear(&b);
	ASSERT_EQ(bili_pack(&b, BILI_OP_ACK, ack, strlen(ack)), 0);
	static const uint8_t ackhdr[] = {0, 0, 0, 99, 0, 16, 0, 0, 0, 0, 0, 24, 0, 0, 0, 1};
	ASSERT_EQ(b.len, 99);
	ASSERT_MEM_EQ(buf_head(&b), ackhdr, 16);
	ASSERT_MEM_EQ(buf_head(&b) + 16, ack, 83);
	buf_clear(&b);
	ASSERT_EQ(bili_pack(&b, BILI_OP_AUTH, "x", BILI_MAX_PACKET), -EMSGSIZE);
	ASSERT_EQ(b.len, 0);
	buf_finish(&b);
}

/* Our auth packet, given the values of the 2026 web client's capture, is that packet byte for
 * byte (pure_live S13-live t=340: protover 2, guest). */
static void test_auth_matches_capture(void)
{
	FILE *f = fopen(CAPTURES "pure_live-S13-live-2026-09-27.jsonl", "r");
	ASSERT(f);
	char line[4096];
	ASSERT(fgets(line, sizeof(line), f));
	fclose(f);
	ASSERT(strstr(line, "\"dir\": \"out\""));
	struct buf wb;
	buf_init(&wb);
	const char *b64 = strstr(line, "\"b64\": \"") + 8;
	ASSERT(b64_decode(b64, strcspn(b64, "\""), &wb));
	const uint8_t *want = buf_head(&wb);
	size_t wn = wb.len;
	ASSERT_EQ(wn, 450);
	/* Take buvid and key from the captured body itself. */
	char body[512];
	memcpy(body, want + 16, wn - 16);
	body[wn - 16] = 0;
	char buvid[128], key[400];
	ASSERT_EQ(sscanf(strstr(body, "\"buvid\":\"") + 9, "%127[^\"]", buvid), 1);
	ASSERT_EQ(sscanf(strstr(body, "\"key\":\"") + 7, "%399[^\"]", key), 1);
	struct bili_auth a = {.uid = 0,
	                      .room_id = 5050,
	                      .protover = 2,
	                      .buvid = buvid,
	                      .queue = 0xe2f61841,
	                      .key = key};
	struct buf b;
	buf_init(&b);
	ASSERT_EQ(bili_pack_auth(&b, &a), 0);
	ASSERT_EQ(b.len, wn);
	ASSERT_MEM_EQ(buf_head(&b), want, wn);
	/* Without a token the key is left out (the -352 fallback); strings are escaped. */
	buf_clear(&b);
	a.key = NULL;
	a.buvid = "a\"b";
	a.queue = 0xab;
	ASSERT_EQ(bili_pack_auth(&b, &a), 0);
	const char *w = "{\"uid\":0,\"roomid\":5050,\"protover\":2,\"buvid\":\"a\\\"b\","
	                "\"support_ack\":true,\"queue_uuid\":\"000000ab\",\"scene\":\"room\","
	                "\"platform\":\"web\",\"type\":2}";
	ASSERT_EQ(b.len, 16 + strlen(w));
	ASSERT_MEM_EQ(buf_head(&b) + 16, w, strlen(w));
	/* The heartbeat has no body; the ACK is the 2026 client's. */
	buf_clear(&b);
	ASSERT_EQ(bili_pack_heartbeat(&b), 0);
	ASSERT_EQ(b.len, 16);
	buf_clear(&b);
	ASSERT_EQ(bili_pack_ack(&b, "214386819788254208:1000:1000", "SUPER_CHAT_MESSAGE", 1), 0);
	ASSERT_EQ(b.len, 99);
	ASSERT_MEM_EQ(buf_head(&b) + 16,
	              "{\"msg_id\":\"214386819788254208:1000:1000\",\"cmd\":\"SUPER_CHAT_MESSAGE\","
	              "\"p_msg_type\":1}",
	              83);
	buf_finish(&b);
	buf_finish(&wb);
}

static void header(uint8_t *p, uint32_t len, uint16_t hlen, uint16_t ver, uint32_t op)
{
	p[0] = (uint8_t)(len >> 24), p[1] = (uint8_t)(len >> 16), p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	p[4] = (uint8_t)(hlen >> 8), p[5] = (uint8_t)hlen;
	p[6] = (uint8_t)(ver >> 8), p[7] = (uint8_t)ver;
	p[8] = (uint8_t)(op >> 24), p[9] = (uint8_t)(op >> 16), p[10] = (uint8_t)(op >> 8);
	p[11] = (uint8_t)op;
	memset(p + 12, 0, 4);
}

/* Broken framing: every header that cannot start a packet, whole and cut. */
static void test_bad_framing(void)
{
	const struct {
		uint32_t len;
		uint16_t hlen;
	} bad[] = {{15, 16}, {0, 16}, {BILI_MAX_PACKET + 1, 16}, {20, 12}, {20, 0}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t p[16];
		header(p, bad[i].len, bad[i].hlen, 0, 5);
		for (size_t cut = 1; cut <= 16; cut++) {
			struct bili_reader r;
			struct seen s = {0};
			bili_reader_init(&r);
			int rc = bili_reader_feed(&r, p, cut, on_packet, &s);
			if (cut < 16) {
				ASSERT_EQ(rc, 0); /* not a whole header yet */
				rc = bili_reader_feed(&r, p + cut, 16 - cut, on_packet, &s);
			}
			ASSERT_EQ(rc, -EPROTO);
			ASSERT_EQ(s.n, 0);
			bili_reader_finish(&r);
		}
	}
	/* The largest legal packet is accepted, and its bytes are not kept after the feed. */
	uint8_t *big = calloc(1, BILI_MAX_PACKET);
	ASSERT(big);
	header(big, BILI_MAX_PACKET, 16, 0, 5);
	struct bili_reader r;
	struct seen s = {0};
	bili_reader_init(&r);
	ASSERT_EQ(bili_reader_feed(&r, big, BILI_MAX_PACKET / 2, on_packet, &s), 0);
	ASSERT_EQ(
	    bili_reader_feed(&r, big + BILI_MAX_PACKET / 2, BILI_MAX_PACKET / 2, on_packet, &s), 1);
	ASSERT_EQ(r.pending.cap, 0);
	bili_reader_finish(&r);
	free(big);
}

/* Compress body into a ver-2 op-5 packet at out (cap bytes); returns its length. */
static size_t zlib_packet(const uint8_t *body, size_t len, uint8_t *out, size_t cap)
{
	uLongf zlen = (uLongf)(cap - 16);
	if (compress2(out + 16, &zlen, body, (uLong)len, 9) != Z_OK)
		return 0;
	header(out, (uint32_t)(16 + zlen), 16, BILI_VER_ZLIB, 5);
	return 16 + zlen;
}

/* Batches that cannot be used are skipped and counted; the stream goes on. */
static void test_bad_batches(void)
{
	uint8_t inner[64], pkt[256], next[64];
	const char *json = "{\"cmd\":\"X\"}";
	header(inner, 16 + 11, 16, 0, 5);
	memcpy(inner + 16, json, 11);
	header(next, 16 + 11, 16, 0, 5);
	memcpy(next + 16, "{\"cmd\":\"Y\"}", 11);
	/* A good batch holding one packet, then damaged in three ways. */
	size_t n = zlib_packet(inner, 27, pkt, sizeof(pkt));
	ASSERT_GT(n, 0);
	const char *want[] = {"X", "Y"};
	struct bili_reader r;
	bili_reader_init(&r);
	for (int damage = 0; damage < 5; damage++) {
		uint8_t p[256];
		memcpy(p, pkt, n);
		size_t pn = n;
		const char *why = NULL;
		if (damage == 1) {
			p[pn - 1] ^= 0xff; /* Adler-32 wrong */
			why = "corrupt zlib batch";
		} else if (damage == 2) {
			pn -= 4; /* the stream stops short */
			header(p, (uint32_t)pn, 16, BILI_VER_ZLIB, 5);
			why = "corrupt zlib batch";
		} else if (damage == 3) {
			header(p, (uint32_t)pn, 16, 7, 5);
			why = "unknown body version";
		} else if (damage == 4) {
			p[6] = 0, p[7] = BILI_VER_BROTLI;
			why = "corrupt brotli batch";
		}
		uint8_t stream[512];
		memcpy(stream, p, pn);
		memcpy(stream + pn, next, 27);
		for (size_t step = 1; step <= pn + 27; step += pn + 26) {
			struct seen s = {0};
			uint64_t skipped = r.skipped;
			for (size_t off = 0; off < pn + 27; off += step) {
				size_t k = step < pn + 27 - off ? step : pn + 27 - off;
				ASSERT_GE(bili_reader_feed(&r, stream + off, k, on_packet, &s), 0);
			}
			if (!why) {
				ASSERT(same_lines(&s, want, 2));
				ASSERT_EQ(r.skipped, skipped);
			} else {
				ASSERT(same_lines(&s, want + 1, 1));
				ASSERT_EQ(r.skipped, skipped + 1);
				ASSERT_STR_EQ(r.skip_why, why);
			}
		}
	}
	bili_reader_finish(&r);
}

/* A batch must hold whole packets and no batches. */
static void test_batch_contents(void)
{
	uint8_t body[27 * 3], pkt[512];
	struct bili_reader r;
	bili_reader_init(&r);
	struct seen s = {0};
	/* Two packets and a truncated third: two delivered, the tail skipped. */
	for (int i = 0; i < 3; i++) {
		header(body + 27 * i, 27, 16, 0, 5);
		memcpy(body + 27 * i + 16, "{\"cmd\":\"Z\"}", 11);
	}
	size_t n = zlib_packet(body, 27 * 3 - 5, pkt, sizeof(pkt));
	ASSERT_EQ(bili_reader_feed(&r, pkt, n, on_packet, &s), 2);
	ASSERT_EQ(r.skipped, 1);
	ASSERT_STR_EQ(r.skip_why, "batch does not end on a packet boundary");
	/* A batch inside a batch is not unpacked. */
	uint8_t inner[256];
	size_t in = zlib_packet(body, 27, inner, sizeof(inner));
	n = zlib_packet(inner, in, pkt, sizeof(pkt));
	ASSERT_EQ(bili_reader_feed(&r, pkt, n, on_packet, &s), 0);
	ASSERT_STR_EQ(r.skip_why, "compressed batch inside a batch");
	ASSERT_EQ(s.n, 2);
	bili_reader_finish(&r);
}

/* The largest inflate buffer the reader held while a packet was delivered. */
struct cap_seen {
	struct bili_reader *r;
	size_t max_cap;
	int n;
};

static int on_packet_cap(void *user_data, uint32_t op, uint16_t ver, const uint8_t *body,
                         size_t len)
{
	(void)op, (void)ver, (void)body, (void)len;
	struct cap_seen *c = user_data;
	if (c->r->inflated.cap > c->max_cap)
		c->max_cap = c->r->inflated.cap;
	c->n++;
	return 0;
}

/*
 * BILI_MAX_INFLATED (1 MiB): a batch that inflates to exactly the cap is delivered, with no
 * more than the cap allocated; one byte more, a 10 MiB zlib bomb and a 10 MiB brotli bomb
 * are refused, and nothing big is kept afterwards.
 */
static void test_inflate_cap(void)
{
	ASSERT_EQ(BILI_MAX_INFLATED, 1u << 20);
	size_t big = 10u << 20;
	uint8_t *zeros = calloc(1, big);
	uint8_t *pkt = malloc(BILI_MAX_PACKET);
	ASSERT(zeros && pkt);
	struct bili_reader r;
	bili_reader_init(&r);
	struct cap_seen c = {.r = &r};
	/* One packet of exactly BILI_MAX_PACKET (= the cap) inside the batch. */
	header(zeros, BILI_MAX_INFLATED, 16, 0, 5);
	size_t n = zlib_packet(zeros, BILI_MAX_INFLATED, pkt, BILI_MAX_PACKET);
	ASSERT_GT(n, 0);
	ASSERT_EQ(bili_reader_feed(&r, pkt, n, on_packet_cap, &c), 1);
	ASSERT_EQ(c.n, 1);
	ASSERT_EQ(c.max_cap, BILI_MAX_INFLATED);
	ASSERT_EQ(r.skipped, 0);
	ASSERT_EQ(r.inflated.cap, 0);
	/* One byte more. */
	n = zlib_packet(zeros, BILI_MAX_INFLATED + 1, pkt, BILI_MAX_PACKET);
	ASSERT_EQ(bili_reader_feed(&r, pkt, n, on_packet_cap, &c), 0);
	ASSERT_EQ(r.skipped, 1);
	ASSERT_STR_EQ(r.skip_why, "batch inflates past 1 MiB");
	/* 10 MiB of zeros in a few KiB of zlib. */
	memset(zeros, 0, 16);
	n = zlib_packet(zeros, big, pkt, BILI_MAX_PACKET);
	ASSERT_LT(n, 16384);
	ASSERT_EQ(bili_reader_feed(&r, pkt, n, on_packet_cap, &c), 0);
	ASSERT_EQ(r.skipped, 2);
	ASSERT_STR_EQ(r.skip_why, "batch inflates past 1 MiB");
	ASSERT_EQ(r.inflated.cap, 0);
	/*
	 * 10 MiB of zeros as brotli (quality 11, window 22, as Bilibili's server compresses),
	 * made once with Node's zlib.brotliCompressSync(Buffer.alloc(10 << 20), {params:
	 * {[BROTLI_PARAM_QUALITY]: 11, [BROTLI_PARAM_LGWIN]: 22}}); libbrotlienc is not linked.
	 */
	static const uint8_t brotli_bomb[] = {0xcb, 0xff, 0xff, 0x3f, 0xf8, 0x27, 0x00, 0xe2, 0xb1,
	                                      0x40, 0x20, 0xf7, 0xfe, 0x2f, 0xff, 0xff, 0x3f, 0xf0,
	                                      0x4f, 0x00, 0xc4, 0x61, 0x11, 0x80, 0xee, 0xfd, 0x07};
	header(pkt, 16 + sizeof(brotli_bomb), 16, BILI_VER_BROTLI, 5);
	memcpy(pkt + 16, brotli_bomb, sizeof(brotli_bomb));
	ASSERT_EQ(bili_reader_feed(&r, pkt, 16 + sizeof(brotli_bomb), on_packet_cap, &c), 0);
	ASSERT_EQ(r.skipped, 3);
	ASSERT_STR_EQ(r.skip_why, "batch inflates past 1 MiB");
	ASSERT_EQ(r.inflated.cap, 0);
	/* Its first 10 bytes stop before any output: a corrupt batch, not a bomb. */
	header(pkt, 16 + 10, 16, BILI_VER_BROTLI, 5);
	ASSERT_EQ(bili_reader_feed(&r, pkt, 16 + 10, on_packet_cap, &c), 0);
	ASSERT_EQ(r.skipped, 4);
	ASSERT_STR_EQ(r.skip_why, "corrupt brotli batch");
	ASSERT_EQ(c.n, 1);
	bili_reader_finish(&r);
	free(zeros);
	free(pkt);
}

/* A callback's error stops the feed at once and is returned. */
static void test_callback_error(void)
{
	struct capture c;
	ASSERT_EQ(load("broadcastlv-2023-01-02.jsonl", &c), 0);
	struct bili_reader r;
	struct seen s = {.stop_at = 3};
	bili_reader_init(&r);
	ASSERT_EQ(feed_all(&r, &c, 0, c.n, false, &s), -EINTR);
	ASSERT_EQ(s.n, 2);
	bili_reader_finish(&r);
	unload(&c);
}

int main(void)
{
	RUN(test_capture_broadcastlv);
	RUN(test_capture_pure_live);
	RUN(test_heartbeat_echo);
	RUN(test_brotli_meta_block);
	RUN(test_pack);
	RUN(test_auth_matches_capture);
	RUN(test_bad_framing);
	RUN(test_bad_batches);
	RUN(test_batch_contents);
	RUN(test_inflate_cap);
	RUN(test_callback_error);
	TEST_DONE();
}
