/*
 * test_douyu: client packets against the captured bytes, reassembly of the real S13 capture
 * fed per websocket message, one byte at a time and in random pieces, framing errors, the
 * record mapping, and douyu_platform end to end against expected.json's 147 chats.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "douyu.h"
#include "platform.h"
#include "stt.h"
#include "test.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "b64.h"

#define FIX SHARED_DIR "/fixtures/douyu/danmaku"

/* ---- base64 and fixture loading ---- */

static bool b64_decode_str(const char *s, struct buf *out)
{
	return b64_decode(s, strlen(s), out);
}

#define MAX_FRAMES 256

/* The S13 capture: every frame decoded into one buffer, with each frame's offset and size. */
struct capture {
	struct buf bytes; /* only the "in" frames, concatenated */
	size_t off[MAX_FRAMES], len[MAX_FRAMES];
	size_t n_in, n_out;
	struct buf out[2]; /* the two "out" frames */
};

static bool capture_load(struct capture *c)
{
	memset(c, 0, sizeof(*c));
	buf_init(&c->bytes);
	buf_init(&c->out[0]);
	buf_init(&c->out[1]);
	char *text = test_read_file(FIX "/S13-live/frames.jsonl", NULL);
	if (!text)
		return false;
	bool ok = true;
	for (char *line = text; *line && ok;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		/* {"dir":"in"|"out","t":<int>,"b64":"<base64>"}: no escapes anywhere. */
		bool in = strncmp(line, "{\"dir\":\"in\"", 11) == 0;
		bool out = strncmp(line, "{\"dir\":\"out\"", 12) == 0;
		char *b = strstr(line, "\"b64\":\"");
		char *e = b ? strchr(b + 7, '"') : NULL;
		if ((!in && !out) || !e) {
			ok = false;
			break;
		}
		b += 7;
		if (in) {
			if (c->n_in == MAX_FRAMES)
				ok = false;
			else {
				c->off[c->n_in] = c->bytes.len;
				ok = b64_decode(b, (size_t)(e - b), &c->bytes);
				c->len[c->n_in] = c->bytes.len - c->off[c->n_in];
				c->n_in++;
			}
		} else {
			ok = c->n_out < 2 && b64_decode(b, (size_t)(e - b), &c->out[c->n_out++]);
		}
		line = nl ? nl + 1 : line + strlen(line);
	}
	free(text);
	return ok;
}

static void capture_finish(struct capture *c)
{
	buf_finish(&c->bytes);
	buf_finish(&c->out[0]);
	buf_finish(&c->out[1]);
}

/* ---- a packet collector ---- */

#define MAX_PACKETS 1024

struct collect {
	size_t n;
	uint64_t hash[MAX_PACKETS];
	size_t len[MAX_PACKETS];
	const struct collect *want; /* when set, every packet must match want's at its index */
	bool mismatch;
	int stop_after; /* return -ECANCELED after this many packets (0: never) */
	struct stt stt;
	char types[MAX_PACKETS][32];
};

static uint64_t fnv(const char *p, size_t n)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
	return h;
}

static int on_packet(void *user_data, const char *body, size_t len)
{
	struct collect *c = user_data;
	if (c->n == MAX_PACKETS)
		return -ENOSPC;
	uint64_t h = fnv(body, len);
	if (c->want && (c->n >= c->want->n || c->want->hash[c->n] != h || c->want->len[c->n] != len))
		c->mismatch = true;
	c->hash[c->n] = h;
	c->len[c->n] = len;
	if (stt_decode(&c->stt, body, len) == 0) {
		const char *t = stt_get(&c->stt, "type");
		snprintf(c->types[c->n], sizeof(c->types[0]), "%s", t ? t : "");
	}
	c->n++;
	if (c->stop_after && (int)c->n == c->stop_after)
		return -ECANCELED;
	return 0;
}

static struct collect *collect_new(void)
{
	struct collect *c = calloc(1, sizeof(*c));
	stt_init(&c->stt);
	return c;
}

static void collect_free(struct collect *c)
{
	stt_finish(&c->stt);
	free(c);
}

static size_t count_type(const struct collect *c, const char *t)
{
	size_t n = 0;
	for (size_t i = 0; i < c->n; i++)
		n += strcmp(c->types[i], t) == 0;
	return n;
}

/* ---- tests ---- */

static void test_pack(void)
{
	struct buf b, want;
	buf_init(&b);
	buf_init(&want);
	/* expected.json joinFrames and heartbeatFrame: the bytes the reference client sent. */
	ASSERT_EQ(douyu_pack_login(&b, 9999), 0);
	ASSERT(b64_decode_str("JQAAACUAAACxAgAAdHlwZUA9bG9naW5yZXEvcm9vbWlkQD05OTk5LwA=", &want));
	ASSERT_EQ(b.len, want.len);
	ASSERT_MEM_EQ(buf_head(&b), buf_head(&want), b.len);
	buf_clear(&b);
	buf_clear(&want);
	ASSERT_EQ(douyu_pack_joingroup(&b, 9999), 0);
	ASSERT(b64_decode_str("LgAAAC4AAACxAgAAdHlwZUA9am9pbmdyb3VwL3JpZEA9OTk5OS9naWRAPS05OTk5LwA=",
			      &want));
	ASSERT_EQ(b.len, want.len);
	ASSERT_MEM_EQ(buf_head(&b), buf_head(&want), b.len);
	buf_clear(&b);
	buf_clear(&want);
	ASSERT_EQ(douyu_pack_heartbeat(&b), 0);
	ASSERT(b64_decode_str("FAAAABQAAACxAgAAdHlwZUA9bXJrbC8A", &want));
	ASSERT_EQ(b.len, 24);
	ASSERT_MEM_EQ(buf_head(&b), buf_head(&want), b.len);
	buf_clear(&b);
	ASSERT_EQ(douyu_pack_logout(&b), 0);
	ASSERT_EQ(b.len, 12 + 13 + 1);
	ASSERT_MEM_EQ(buf_head(&b), "\x16\0\0\0\x16\0\0\0\xb1\x02\0\0type@=logout/\0", b.len);
	buf_clear(&b);
	/* Packets append; an empty body is the smallest packet. */
	ASSERT_EQ(douyu_pack(&b, DOUYU_TYPE_S2C, "", 0), 0);
	ASSERT_EQ(douyu_pack(&b, DOUYU_TYPE_S2C, "a", 1), 0);
	ASSERT_EQ(b.len, 13 + 14);
	ASSERT_MEM_EQ(buf_head(&b), "\x09\0\0\0\x09\0\0\0\xb2\x02\0\0\0\x0a\0\0\0\x0a\0\0\0\xb2\x02\0\0a\0",
		      b.len);
	/* The body of the largest packet is DOUYU_MAX_LEN - 9 bytes. */
	ASSERT_EQ(douyu_pack(&b, DOUYU_TYPE_S2C, "", DOUYU_MAX_LEN - 8), -EMSGSIZE);
	ASSERT_EQ(b.len, 27);
	/* The capture's own client frames are byte for byte what we send. */
	struct capture *c = malloc(sizeof(*c));
	ASSERT(capture_load(c));
	ASSERT_EQ(c->n_out, 2);
	buf_clear(&b);
	ASSERT_EQ(douyu_pack_login(&b, 9999), 0);
	ASSERT_EQ(douyu_pack_joingroup(&b, 9999), 0);
	ASSERT_EQ(b.len, c->out[0].len + c->out[1].len);
	ASSERT_MEM_EQ(buf_head(&b), buf_head(&c->out[0]), c->out[0].len);
	ASSERT_MEM_EQ(buf_head(&b) + c->out[0].len, buf_head(&c->out[1]), c->out[1].len);
	capture_finish(c);
	free(c);
	buf_finish(&b);
	buf_finish(&want);
}

static void check_counts(const struct collect *c)
{
	static const struct {
		const char *type;
		size_t n;
	} want[] = {
		{"uenter", 265}, {"chatmsg", 147}, {"dgb", 125}, {"actFishing", 7}, {"oni", 6},
		{"configscreen", 2}, {"dfnum", 2}, {"loginres", 1}, {"pingreq", 1},
		{"ranklist", 1}, {"defense_tower_session", 1}, {"dream_bus_session", 1},
		{"anchor_rank2505_change", 1}, {"upgrade", 1},
	};
	size_t total = 0;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		size_t got = count_type(c, want[i].type);
		if (got != want[i].n)
			TEST_FAIL_("%s: %zu packets, want %zu", want[i].type, got, want[i].n);
		total += got;
	}
	if (total != c->n)
		TEST_FAIL_("%zu packets of unexpected types", c->n - total);
}

static void test_capture_per_message(void)
{
	struct capture *cap = malloc(sizeof(*cap));
	ASSERT(capture_load(cap));
	ASSERT_EQ(cap->n_in, 183);
	ASSERT_EQ(cap->bytes.len, 166247);
	struct collect *c = collect_new();
	struct douyu_reader r;
	douyu_reader_init(&r);
	for (size_t i = 0; i < cap->n_in; i++) {
		ASSERT_EQ(douyu_reader_feed(&r, buf_head(&cap->bytes) + cap->off[i], cap->len[i],
					    on_packet, c),
			  0);
		/* No frame splits a packet, so nothing is ever left pending. */
		ASSERT_EQ(r.pending.len, 0);
	}
	ASSERT_EQ(c->n, 561);
	ASSERT_EQ(r.packets, 561);
	ASSERT_EQ(r.skipped, 0);
	check_counts(c);
	/* The pending buffer was never needed: whole packets are parsed in place. */
	ASSERT(r.pending.data == NULL);
	douyu_reader_finish(&r);
	collect_free(c);
	capture_finish(cap);
	free(cap);
}

/* Feed the whole stream in pieces chosen by the caller; every packet must match. */
static bool feed_split(const struct capture *cap, const struct collect *want, uint64_t seed,
		       size_t max_piece)
{
	struct collect *c = collect_new();
	c->want = want;
	struct douyu_reader r;
	douyu_reader_init(&r);
	const uint8_t *p = buf_head(&cap->bytes);
	size_t left = cap->bytes.len;
	bool ok = true;
	while (left > 0 && ok) {
		size_t n = max_piece == 1 ? 1 : 1 + test_rand(&seed) % max_piece;
		if (seed % 5 == 0)
			n = 0; /* empty feeds are harmless */
		if (n > left)
			n = left;
		ok = douyu_reader_feed(&r, p, n, on_packet, c) == 0;
		p += n;
		left -= n;
		/* Never more than one incomplete packet is kept. */
		ok = ok && r.pending.len <= DOUYU_MAX_LEN + 4;
	}
	ok = ok && c->n == 561 && !c->mismatch && r.packets == 561 && r.skipped == 0 &&
	     r.pending.len == 0;
	douyu_reader_finish(&r);
	collect_free(c);
	return ok;
}

static void test_capture_splits(void)
{
	struct capture *cap = malloc(sizeof(*cap));
	ASSERT(capture_load(cap));
	struct collect *want = collect_new();
	struct douyu_reader r;
	douyu_reader_init(&r);
	ASSERT_EQ(douyu_reader_feed(&r, buf_head(&cap->bytes), cap->bytes.len, on_packet, want), 0);
	douyu_reader_finish(&r);
	ASSERT_EQ(want->n, 561);
	check_counts(want);
	/* (b) one byte at a time */
	ASSERT(feed_split(cap, want, 1, 1));
	/* (c) random pieces, small to larger than most packets */
	static const size_t max_piece[] = {2, 7, 13, 40, 300, 2000, 20000};
	for (uint64_t seed = 1; seed <= 20; seed++)
		for (size_t k = 0; k < sizeof(max_piece) / sizeof(max_piece[0]); k++)
			if (!feed_split(cap, want, seed * 7919 + k, max_piece[k])) {
				TEST_FAIL_("seed %llu, pieces up to %zu", (unsigned long long)seed,
					   max_piece[k]);
				break;
			}
	collect_free(want);
	capture_finish(cap);
	free(cap);
}

/* Build a raw packet with explicit length fields and type. */
static void raw_packet(struct buf *b, uint32_t l1, uint32_t l2, uint16_t type, const char *body,
		       size_t blen, uint8_t last)
{
	uint8_t h[12] = {(uint8_t)l1, (uint8_t)(l1 >> 8), (uint8_t)(l1 >> 16), (uint8_t)(l1 >> 24),
			 (uint8_t)l2, (uint8_t)(l2 >> 8), (uint8_t)(l2 >> 16), (uint8_t)(l2 >> 24),
			 (uint8_t)type, (uint8_t)(type >> 8), 0, 0};
	buf_append(b, h, 12);
	buf_append(b, body, blen);
	buf_append(b, &last, 1);
}

/* Feed b whole and then byte by byte; return the first error of each run. */
static void feed_both(const struct buf *b, int *rc_whole, int *rc_bytes, struct collect *c1,
		      struct collect *c2, uint64_t *skipped)
{
	struct douyu_reader r;
	douyu_reader_init(&r);
	*rc_whole = douyu_reader_feed(&r, buf_head(b), b->len, on_packet, c1);
	skipped[0] = r.skipped;
	douyu_reader_finish(&r);
	douyu_reader_init(&r);
	*rc_bytes = 0;
	for (size_t i = 0; i < b->len && *rc_bytes == 0; i++)
		*rc_bytes = douyu_reader_feed(&r, buf_head(b) + i, 1, on_packet, c2);
	skipped[1] = r.skipped;
	douyu_reader_finish(&r);
}

static void test_framing_errors(void)
{
	static const struct {
		uint32_t l1, l2;
	} bad[] = {
		{14, 15},                                  /* copies differ */
		{8, 8},                                    /* shorter than a header + NUL */
		{0, 0},                                    /* zero */
		{DOUYU_MAX_LEN + 1, DOUYU_MAX_LEN + 1},    /* over the cap */
		{0xffffffffu, 0xffffffffu},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct buf b;
		buf_init(&b);
		douyu_pack(&b, DOUYU_TYPE_S2C, "type@=a/", 8);
		raw_packet(&b, bad[i].l1, bad[i].l2, DOUYU_TYPE_S2C, "type@=b/", 8, 0);
		douyu_pack(&b, DOUYU_TYPE_S2C, "type@=c/", 8);
		struct collect *c1 = collect_new(), *c2 = collect_new();
		int rc1, rc2;
		uint64_t sk[2];
		feed_both(&b, &rc1, &rc2, c1, c2, sk);
		bool ok = rc1 == -EPROTO && rc2 == -EPROTO && c1->n == 1 && c2->n == 1;
		collect_free(c1);
		collect_free(c2);
		buf_finish(&b);
		if (!ok) {
			TEST_FAIL_("case %zu: rc %d/%d", i, rc1, rc2);
			return;
		}
	}
	/* The largest legal length is accepted (and kept pending until complete). */
	struct douyu_reader r;
	douyu_reader_init(&r);
	uint8_t h[8] = {0, 0, 0x10, 0, 0, 0, 0x10, 0};
	struct collect *c = collect_new();
	ASSERT_EQ(douyu_reader_feed(&r, h, 8, on_packet, c), 0);
	ASSERT_EQ(r.pending.len, 8);
	douyu_reader_finish(&r);
	collect_free(c);
}

static void test_bad_packets_skipped(void)
{
	struct buf b;
	buf_init(&b);
	douyu_pack(&b, DOUYU_TYPE_S2C, "type@=a/", 8);
	douyu_pack(&b, DOUYU_TYPE_C2S, "type@=bad_type/", 15);     /* wrong direction */
	douyu_pack(&b, DOUYU_TYPE_S2C, "type@=b/", 8);
	raw_packet(&b, 8 + 8 + 1, 8 + 8 + 1, DOUYU_TYPE_S2C, "type@=x/", 8, 'Z'); /* no NUL */
	douyu_pack(&b, DOUYU_TYPE_S2C, "type@=c/", 8);
	douyu_pack(&b, DOUYU_TYPE_S2C, "type@=\0y/", 9);           /* NUL inside */
	douyu_pack(&b, DOUYU_TYPE_S2C, "type@=d/", 8);
	douyu_pack(&b, 0x1234, "type@=z/", 8);                     /* unknown type */
	douyu_pack(&b, DOUYU_TYPE_S2C, "", 0);                     /* empty body is fine */
	douyu_pack(&b, DOUYU_TYPE_S2C, "type@=e/", 8);
	struct collect *c1 = collect_new(), *c2 = collect_new();
	int rc1, rc2;
	uint64_t sk[2];
	feed_both(&b, &rc1, &rc2, c1, c2, sk);
	ASSERT_EQ(rc1, 0);
	ASSERT_EQ(rc2, 0);
	ASSERT_EQ(sk[0], 4);
	ASSERT_EQ(sk[1], 4);
	ASSERT_EQ(c1->n, 6);
	ASSERT_EQ(c2->n, 6);
	static const char *const want[] = {"a", "b", "c", "d", "", "e"};
	for (size_t i = 0; i < 6; i++) {
		ASSERT_STR_EQ(c1->types[i], want[i]);
		ASSERT_STR_EQ(c2->types[i], want[i]);
	}
	ASSERT_EQ(c1->len[4], 0);
	collect_free(c1);
	collect_free(c2);
	buf_finish(&b);
}

static void test_callback_stops(void)
{
	struct buf b;
	buf_init(&b);
	for (int i = 0; i < 5; i++)
		douyu_pack(&b, DOUYU_TYPE_S2C, "type@=a/", 8);
	struct collect *c = collect_new();
	c->stop_after = 2;
	struct douyu_reader r;
	douyu_reader_init(&r);
	ASSERT_EQ(douyu_reader_feed(&r, buf_head(&b), b.len, on_packet, c), -ECANCELED);
	ASSERT_EQ(c->n, 2);
	douyu_reader_finish(&r);
	/* Also when the stopping packet was completed from the pending bytes. */
	douyu_reader_init(&r);
	c->n = 0;
	c->stop_after = 1;
	ASSERT_EQ(douyu_reader_feed(&r, buf_head(&b), 10, on_packet, c), 0);
	ASSERT_EQ(douyu_reader_feed(&r, buf_head(&b) + 10, b.len - 10, on_packet, c), -ECANCELED);
	ASSERT_EQ(c->n, 1);
	douyu_reader_finish(&r);
	collect_free(c);
	buf_finish(&b);
}

static void test_record(void)
{
	struct stt s;
	stt_init(&s);
	struct buf json;
	buf_init(&json);
	struct record rec;
	memset(&rec, 0xAB, sizeof(rec));
	rec.ts = 5;
	rec.session_id = 6;
	const char *chat = "rid@=9999/type@=chatmsg/uid@=46780819/nn@=a@Sb/txt@=x@ASy/cid@=abc/"
			   "level@=36/uid@=1/";
	ASSERT_EQ(stt_decode(&s, chat, strlen(chat)), 0);
	ASSERT_EQ(douyu_record(&s, NULL, 9999, &json, &rec), 0);
	ASSERT_EQ(rec.replaced_utf8, 0);
	ASSERT_EQ(rec.room_id, 9999);
	ASSERT_EQ(rec.ts, 5);
	ASSERT_EQ(rec.session_id, 6);
	ASSERT_STR_EQ(rec.type, "chatmsg");
	ASSERT(rec.has_uid);
	ASSERT_EQ(rec.uid, 46780819);
	ASSERT_STR_EQ(rec.nick, "a/b");
	ASSERT(rec.has_level);
	ASSERT_EQ(rec.level, 36);
	ASSERT_STR_EQ(rec.text, "x@Sy");
	ASSERT_STR_EQ(rec.cid, "abc");
	ASSERT_STR_EQ(rec.data, "{\"rid\":\"9999\",\"type\":\"chatmsg\",\"uid\":\"46780819\","
				"\"nn\":\"a/b\",\"txt\":\"x@Sy\",\"cid\":\"abc\",\"level\":\"36\","
				"\"uid#2\":\"1\"}");
	ASSERT_EQ(rec.data_len, strlen(rec.data));

	/* Not a chat: no text, no cid; numeric fields only when numeric. */
	const char *ue = "type@=uenter/rid@=9999/uid@=12x/nn@=bob/level@=-3/txt@=t/cid@=c/";
	ASSERT_EQ(stt_decode(&s, ue, strlen(ue)), 0);
	ASSERT_EQ(douyu_record(&s, NULL, 9999, &json, &rec), 0);
	ASSERT_STR_EQ(rec.type, "uenter");
	ASSERT(!rec.has_uid);
	ASSERT_STR_EQ(rec.nick, "bob");
	ASSERT(rec.has_level);
	ASSERT_EQ(rec.level, -3);
	ASSERT(rec.text == NULL);
	ASSERT(rec.cid == NULL);

	/* No type at all; a chat with an empty cid; out-of-range numbers. */
	ASSERT_EQ(stt_decode(&s, "a@=b/", 5), 0);
	ASSERT_EQ(douyu_record(&s, NULL, 1, &json, &rec), 0);
	ASSERT_STR_EQ(rec.type, "");
	ASSERT(rec.nick == NULL && !rec.has_uid && !rec.has_level);
	ASSERT_STR_EQ(rec.data, "{\"a\":\"b\"}");
	const char *e = "type@=chatmsg/cid@=/uid@=9223372036854775808/level@=-9223372036854775808/";
	ASSERT_EQ(stt_decode(&s, e, strlen(e)), 0);
	ASSERT_EQ(douyu_record(&s, NULL, 1, &json, &rec), 0);
	ASSERT(rec.cid == NULL);
	ASSERT(!rec.has_uid);
	ASSERT(rec.has_level);
	ASSERT(rec.level == INT64_MIN);
	ASSERT(rec.text == NULL);
	/* Invalid UTF-8 is replaced and counted. */
	ASSERT_EQ(stt_decode(&s, "type@=chatmsg/txt@=\xff\xfe/", 21), 0);
	ASSERT_EQ(douyu_record(&s, NULL, 1, &json, &rec), 0);
	ASSERT_EQ(rec.replaced_utf8, 2);
	/* The text column is repaired the same way (sqlite3 clients decode TEXT). */
	ASSERT_STR_EQ(rec.text, "\xef\xbf\xbd\xef\xbf\xbd");
	ASSERT_STR_EQ(rec.data, "{\"type\":\"chatmsg\",\"txt\":\"\xef\xbf\xbd\xef\xbf\xbd\"}");
	/* A CESU-8 emoji (U+1F60A as two surrogates) is joined in both; a lone surrogate and a
	 * bad nick, type and cid are replaced; valid strings are not copied. */
	const char *ce = "type@=chat\xc0/txt@=\xed\xa0\xbd\xed\xb8\x8a!/nn@=a\xed\xa0\x80/cid@=\xe4\xb8/"
			 "uid@=5/";
	ASSERT_EQ(stt_decode(&s, ce, strlen(ce)), 0);
	ASSERT_EQ(douyu_record(&s, NULL, 1, &json, &rec), 0);
	ASSERT_STR_EQ(rec.type, "chat\xef\xbf\xbd");
	ASSERT(rec.text == NULL && rec.cid == NULL); /* not a chatmsg */
	ASSERT_STR_EQ(rec.nick, "a\xef\xbf\xbd");
	ASSERT_EQ(rec.replaced_utf8, 3);
	ASSERT(strstr(rec.data, "\"txt\":\"\xf0\x9f\x98\x8a!\"") != NULL);
	const char *ce2 = "type@=chatmsg/txt@=\xed\xa0\xbd\xed\xb8\x8a/cid@=\xe4\xb8/nn@=ok/";
	ASSERT_EQ(stt_decode(&s, ce2, strlen(ce2)), 0);
	ASSERT_EQ(douyu_record(&s, NULL, 1, &json, &rec), 0);
	ASSERT_STR_EQ(rec.text, "\xf0\x9f\x98\x8a");
	ASSERT_STR_EQ(rec.cid, "\xef\xbf\xbd");
	ASSERT(rec.nick >= s.text && rec.nick < s.text + s.text_cap); /* borrowed, not copied */
	stt_finish(&s);
	buf_finish(&json);
}

static void test_other_room(void)
{
	struct stt s;
	stt_init(&s);
	static const struct {
		const char *body;
		bool other;
	} cases[] = {
		{"type@=chatmsg/rid@=9999/", false}, {"type@=chatmsg/rid@=1234/", true},
		{"type@=spbc/rid@=0/drid@=55/", false}, {"type@=chatmsg/", false},
		{"type@=chatmsg/rid@=/", false},      {"type@=chatmsg/rid@=x1/", false},
		{"rid@=-1/type@=rri/rid@=9999/", true}, {"rid@=9999/type@=rri/rid@=-1/", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ASSERT_EQ(stt_decode(&s, cases[i].body, strlen(cases[i].body)), 0);
		if (douyu_other_room(&s, 9999) != cases[i].other) {
			TEST_FAIL_("case %zu: %s", i, cases[i].body);
			break;
		}
	}
	stt_finish(&s);
}


/* ---- typed extraction, on the real samples of douyu-samples.tsv ---- */

/* Row `row` (0-based) of the samples file: the message before the tab, into out. */
static bool tsv_row(size_t row, struct buf *out)
{
	char *text = test_read_file(SHARED_DIR "/douyu-samples.tsv", NULL);
	if (!text)
		return false;
	char *line = text;
	for (size_t i = 0; i < row && line; i++) {
		line = strchr(line, '\n');
		line = line ? line + 1 : NULL;
	}
	char *tab = line ? strchr(line, '\t') : NULL;
	char *nl = line ? strchr(line, '\n') : NULL;
	bool ok = tab && (!nl || tab < nl);
	buf_clear(out);
	if (ok)
		ok = buf_append(out, line, (size_t)(tab - line)) == 0 && buf_append(out, "", 1) == 0;
	free(text);
	return ok;
}

struct typed_case {
	size_t row;
	const char *type;
	bool has_uid;
	int64_t uid;
	const char *nick; /* NULL: none */
	bool has_level;
	int64_t level;
	const char *text; /* NULL: none */
	const char *cid;  /* NULL: none */
	const char *in_data; /* a substring data must hold */
};

static const struct typed_case typed_cases[] = {
	{3, "chatmsg", true, 36216769, "小老弟233", true, 38, "注意保暖",
	 "00bd3553ee494c929f45090100000000", "\"dms\":\"5\""},
	/* A robot chat (no dms) with cst in seconds: stored like any chat, raw in data. */
	{66, "chatmsg", true, 358963144, "烟花易冷cold17322", true, 15, "玩的是自定义吗／？",
	 "5e87fe93079d4499d26b861600000000", "\"cst\":\"1627874185\""},
	{7, "dgb", true, 176432111, "户外就是锻炼", true, 32, NULL, NULL, "\"gfid\":\"824\""},
	{4, "uenter", true, 199997189, "tiara佳尊", true, 40, NULL, NULL,
	 "\"el\":\"eid@A=1500000113@Setp@A=1@Ssc@A=1@Sef@A=0@S/\""},
	/* comm_chatmsg: sender and text come from the nested chatmsg map. */
	{59, "comm_chatmsg", true, 110510743, "小爷话不多", true, 21, "卡着谢这么多遍！架我？",
	 NULL, "\"btype\":\"voiceDanmu\""},
	{60, "comm_chatmsg", true, 13135382, "被封号依旧支持余凯洞", true, 44,
	 "加菜，拍个黄瓜+来点花生米", NULL, "\"cprice\":\"1000\""},
	/* A box notice: nested sender, no text (the notice is txt1..txt6 in data). */
	{62, "comm_chatmsg", true, 339634851, "打死不吃西红柿A", true, 41, NULL, NULL,
	 "\"txt1\":\"赠送主播\""},
	{17, "anbc", true, 15048751, "对影子说爱你丶", false, 0, NULL, NULL, "\"drid\":\"9112612\""},
	{29, "rnewbc", true, 36462031, "跳跳", false, 0, NULL, NULL, "\"drid\":\"430489\""},
	{6, "spbc", false, 0, "我戒了专心", false, 0, NULL, NULL, "\"drid\":\"9157198\""},
	{67, "error", false, 0, NULL, false, 0, "error 51", NULL, "{\"type\":\"error\",\"code\":\"51\"}"},
	{42, "rss", false, 0, NULL, false, 0, NULL, NULL, "\"ss\":\"0\""},
	{76, "rss", false, 0, NULL, false, 0, NULL, NULL, "\"ss\":\"1\""},
	/* Other types: uid, nn, level from the top level when there. */
	{5, "upgrade", true, 37716512, "月的星晨", true, 63, NULL, NULL, "\"gid\":\"32533\""},
	/* Duplicate keys keep every value. */
	{11, "rri", true, 63235379, NULL, false, 0, NULL, NULL,
	 "\"rid\":\"3898464\",\"cate_id\":\"1\",\"rid#2\":\"-1\""},
	{15, "qausrespond", false, 0, NULL, false, 0, NULL, NULL, "\"rid#2\":\"-1\""},
};

/* The store trusts the lengths a record carries: each is exactly strlen of its string. */
static bool lens_exact(const struct record *r)
{
	return r->type && r->type_len == strlen(r->type) &&
	       (r->nick ? r->nick_len == strlen(r->nick) : r->nick_len == 0) &&
	       (r->text ? r->text_len == strlen(r->text) : r->text_len == 0) &&
	       (r->cid ? r->cid_len == strlen(r->cid) : r->cid_len == 0) &&
	       r->data && r->data_len == strlen(r->data);
}

/* Every sample of douyu-samples.tsv, and columns that get a repaired copy or are built
 * ("error <code>"), carry exact lengths. */
static void test_record_lengths(void)
{
	struct stt s, nested;
	stt_init(&s);
	stt_init(&nested);
	struct buf json;
	buf_init(&json);
	struct record rec;
	char *text = test_read_file(SHARED_DIR "/douyu-samples.tsv", NULL);
	ASSERT(text);
	size_t rows = 0;
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		char *tab = strchr(line, '\t');
		if (tab && (!nl || tab < nl)) {
			ASSERT_EQ(stt_decode(&s, line, (size_t)(tab - line)), 0);
			memset(&rec, 0xa5, sizeof(rec));
			ASSERT_EQ(douyu_record(&s, &nested, 42, &json, &rec), 0);
			if (!lens_exact(&rec))
				TEST_FAIL_("row %zu (%s): lengths %zu %zu %zu %zu", rows, rec.type,
					   rec.type_len, rec.nick_len, rec.text_len, rec.cid_len);
			rows++;
		}
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	ASSERT(rows >= 70);
	static const char *const odd[] = {
	    "type@=chatmsg/nn@=a\377b/txt@=\xc3/cid@=/",       /* repaired nick and text, empty cid */
	    "type@=error/code@=5\xff/",                      /* "error <repaired code>" */
	    "type@=error/",                                  /* "error" */
	    "nn@=x/",                                        /* no type: "" */
	    "type@=\xed\xa0\x80/nn@=\xf0\x9f\x98\x80/",       /* repaired type, 4-byte nick */
	};
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		ASSERT_EQ(stt_decode(&s, odd[i], strlen(odd[i])), 0);
		memset(&rec, 0xa5, sizeof(rec));
		ASSERT_EQ(douyu_record(&s, &nested, 42, &json, &rec), 0);
		if (!lens_exact(&rec))
			TEST_FAIL_("case %zu: lengths %zu %zu %zu %zu", i, rec.type_len, rec.nick_len,
				   rec.text_len, rec.cid_len);
	}
	ASSERT_EQ(stt_decode(&s, odd[0], strlen(odd[0])), 0);
	ASSERT_EQ(douyu_record(&s, &nested, 42, &json, &rec), 0);
	ASSERT_STR_EQ(rec.nick, "a\xef\xbf\xbd" "b");
	ASSERT_EQ(rec.nick_len, 5);
	ASSERT(rec.cid == NULL && rec.cid_len == 0);
	stt_finish(&s);
	stt_finish(&nested);
	buf_finish(&json);
}

static bool opt_str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void test_typed_samples(void)
{
	struct stt s, nested;
	stt_init(&s);
	stt_init(&nested);
	struct buf json, body;
	buf_init(&json);
	buf_init(&body);
	for (size_t i = 0; i < sizeof(typed_cases) / sizeof(typed_cases[0]); i++) {
		const struct typed_case *c = &typed_cases[i];
		ASSERT(tsv_row(c->row, &body));
		ASSERT_EQ(stt_decode(&s, (const char *)buf_head(&body), body.len - 1), 0);
		struct record rec;
		memset(&rec, 0, sizeof(rec));
		ASSERT_EQ(douyu_record(&s, &nested, 42, &json, &rec), 0);
		bool ok = strcmp(rec.type, c->type) == 0 && rec.has_uid == c->has_uid &&
			  (!c->has_uid || rec.uid == c->uid) && opt_str_eq(rec.nick, c->nick) &&
			  rec.has_level == c->has_level && (!c->has_level || rec.level == c->level) &&
			  opt_str_eq(rec.text, c->text) && opt_str_eq(rec.cid, c->cid) &&
			  strstr(rec.data, c->in_data) != NULL && rec.replaced_utf8 == 0 &&
			  strlen(rec.data) == rec.data_len;
		if (!ok) {
			TEST_FAIL_("row %zu (%s): type %s uid %d/%lld nick %s level %d/%lld text %s "
				   "cid %s data %s",
				   c->row, c->type, rec.type, rec.has_uid, (long long)rec.uid,
				   rec.nick ? rec.nick : "(null)", rec.has_level, (long long)rec.level,
				   rec.text ? rec.text : "(null)", rec.cid ? rec.cid : "(null)",
				   rec.data);
			break;
		}
	}
	/* Without a nested decoder, comm_chatmsg falls back to the top level. */
	ASSERT(tsv_row(59, &body));
	ASSERT_EQ(stt_decode(&s, (const char *)buf_head(&body), body.len - 1), 0);
	struct record rec;
	ASSERT_EQ(douyu_record(&s, NULL, 42, &json, &rec), 0);
	ASSERT(rec.has_uid && rec.uid == 110510743 && rec.nick == NULL && rec.text == NULL);
	/* An error without a code; a comm_chatmsg whose nested value is garbage. */
	ASSERT_EQ(stt_decode(&s, "type@=error/", 12), 0);
	ASSERT_EQ(douyu_record(&s, &nested, 42, &json, &rec), 0);
	ASSERT_STR_EQ(rec.text, "error");
	ASSERT_STR_EQ(rec.data, "{\"type\":\"error\"}");
	const char *cc = "type@=comm_chatmsg/chatmsg@=@@@=/uid@=7/";
	ASSERT_EQ(stt_decode(&s, cc, strlen(cc)), 0);
	ASSERT_EQ(douyu_record(&s, &nested, 42, &json, &rec), 0);
	ASSERT(rec.has_uid && rec.uid == 7 && rec.nick == NULL && rec.text == NULL);
	stt_finish(&s);
	stt_finish(&nested);
	buf_finish(&json);
	buf_finish(&body);
}

/* The platform: broadcasts (rid 0) are stored as their own type; comm_chatmsg gets its
 * nested sender; skipped packets are reported with a reason. */
static int skipped_events;
static uint64_t skipped_total;
static char skipped_why[64];

static void sk_skipped(void *user_data, uint64_t n, const char *why)
{
	skipped_events++;
	skipped_total += n;
	snprintf(skipped_why, sizeof(skipped_why), "%s", why);
}

/* ---- douyu_platform end to end ---- */

#define MAX_RECS 700

struct rec_copy {
	char type[32];
	int64_t uid;
	bool has_uid;
	char nick[128];
	char text[512];
	char cid[64];
	bool has_cid;
	int64_t ts, session_id, room_id;
	bool data_ok;
	bool lens_ok;
};

struct sink {
	int joined;
	int foreign;
	int errors;
	int64_t last_code;
	char last_text[64];
	size_t n;
	struct rec_copy *recs;
};

static void sk_joined(void *user_data)
{
	((struct sink *)user_data)->joined++;
}

static void sk_record(void *user_data, const struct record *rec)
{
	struct sink *k = user_data;
	if (k->n == MAX_RECS)
		return;
	struct rec_copy *c = &k->recs[k->n++];
	snprintf(c->type, sizeof(c->type), "%s", rec->type);
	c->uid = rec->uid;
	c->has_uid = rec->has_uid;
	snprintf(c->nick, sizeof(c->nick), "%s", rec->nick ? rec->nick : "");
	snprintf(c->text, sizeof(c->text), "%s", rec->text ? rec->text : "");
	snprintf(c->cid, sizeof(c->cid), "%s", rec->cid ? rec->cid : "");
	c->has_cid = rec->cid != NULL;
	c->ts = rec->ts;
	c->session_id = rec->session_id;
	c->room_id = rec->room_id;
	c->data_ok = rec->data && rec->data_len > 1 && rec->data[0] == '{' &&
		     rec->data[rec->data_len - 1] == '}' && strlen(rec->data) == rec->data_len;
	c->lens_ok = lens_exact(rec);
}

static void sk_foreign(void *user_data, const char *type)
{
	((struct sink *)user_data)->foreign++;
}

static void sk_error(void *user_data, int64_t code, const char *text)
{
	struct sink *k = user_data;
	k->errors++;
	k->last_code = code;
	snprintf(k->last_text, sizeof(k->last_text), "%s", text);
}

static const struct platform_events sink_ev = {
	.on_joined = sk_joined,
	.on_record = sk_record,
	.on_foreign = sk_foreign,
	.on_server_error = sk_error,
	.on_skipped = sk_skipped,
};

/* Copy the JSON string value following `"name": "` at or after *pp into dst. */
static bool json_field(const char **pp, const char *name, char *dst, size_t cap)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\": \"", name);
	const char *p = strstr(*pp, pat);
	if (!p)
		return false;
	p += strlen(pat);
	const char *e = strchr(p, '"');
	if (!e || (size_t)(e - p) >= cap)
		return false;
	memcpy(dst, p, (size_t)(e - p));
	dst[e - p] = 0;
	*pp = e + 1;
	return true;
}

static size_t count_rec_type(const struct sink *k, const char *t)
{
	size_t n = 0;
	for (size_t i = 0; i < k->n; i++)
		n += strcmp(k->recs[i].type, t) == 0;
	return n;
}

static void test_platform_capture(void)
{
	skipped_total = 0;
	const char *const *srv = douyu_platform.default_servers;
	ASSERT_STR_EQ(srv[0], "wss://danmuproxy.douyu.com:8501/");
	ASSERT_STR_EQ(srv[5], "wss://danmuproxy.douyu.com:8506/");
	ASSERT(srv[6] == NULL);

	struct capture *cap = malloc(sizeof(*cap));
	ASSERT(capture_load(cap));
	struct sink k = {0};
	k.recs = calloc(MAX_RECS, sizeof(*k.recs));
	struct platform_session *ps = NULL;
	ASSERT_EQ(douyu_platform.session_create(9999, NULL, &sink_ev, &k, &ps), 0);
	struct buf out;
	buf_init(&out);
	ASSERT_EQ(douyu_platform.hello(ps, &out), 0);
	ASSERT_EQ(out.len, cap->out[0].len);
	ASSERT_MEM_EQ(buf_head(&out), buf_head(&cap->out[0]), out.len);
	buf_clear(&out);
	for (size_t i = 0; i < cap->n_in; i++) {
		ASSERT_GE(douyu_platform.feed(ps, 1000 + (int64_t)i, 42,
					      buf_head(&cap->bytes) + cap->off[i], cap->len[i], &out),
			   0);
		if (i == 0) {
			/* loginres is in the first frame: joingroup goes out at once. */
			ASSERT_EQ(k.joined, 1);
			ASSERT_EQ(out.len, cap->out[1].len);
			ASSERT_MEM_EQ(buf_head(&out), buf_head(&cap->out[1]), out.len);
			buf_clear(&out);
		}
	}
	ASSERT_EQ(out.len, 0);
	ASSERT_EQ(k.joined, 1);
	ASSERT_EQ(k.errors, 0);
	/* Two configscreen broadcasts name other rooms; loginres and pingreq are control. */
	ASSERT_EQ(k.foreign, 2);
	ASSERT_EQ(k.n, 561 - 2 - 2);
	ASSERT_EQ(count_rec_type(&k, "chatmsg"), 147);
	ASSERT_EQ(count_rec_type(&k, "uenter"), 265);
	ASSERT_EQ(count_rec_type(&k, "dgb"), 125);
	ASSERT_EQ(count_rec_type(&k, "actFishing"), 7);
	ASSERT_EQ(count_rec_type(&k, "loginres"), 0);
	ASSERT_EQ(count_rec_type(&k, "pingreq"), 0);
	ASSERT_EQ(skipped_total, 0);
	for (size_t i = 0; i < k.n; i++) {
		ASSERT(k.recs[i].data_ok);
		ASSERT(k.recs[i].lens_ok);
		ASSERT_EQ(k.recs[i].session_id, 42);
		ASSERT_EQ(k.recs[i].room_id, 9999);
	}

	/* Every chat against expected.json, in order. */
	char *exp = test_read_file(FIX "/S13-live/expected.json", NULL);
	ASSERT(exp);
	const char *p = strstr(exp, "\"messages\": [");
	const char *stop = strstr(exp, "\"keptWithFilter\"");
	ASSERT(p && stop);
	size_t m = 0, ri = 0;
	bool fail = false;
	char name[128], uid[32], msg[512], id[64];
	while (!fail && json_field(&p, "userName", name, sizeof(name)) && p < stop) {
		fail = !json_field(&p, "userId", uid, sizeof(uid)) ||
		       !json_field(&p, "message", msg, sizeof(msg)) ||
		       !json_field(&p, "messageId", id, sizeof(id)) || strncmp(id, "douyu:", 6) != 0;
		while (!fail && ri < k.n && strcmp(k.recs[ri].type, "chatmsg") != 0)
			ri++;
		if (fail || ri == k.n) {
			TEST_FAIL_("message %zu: bad fixture or no record", m);
			fail = true;
			break;
		}
		const struct rec_copy *c = &k.recs[ri++];
		char u[32];
		snprintf(u, sizeof(u), "%lld", (long long)c->uid);
		if (!c->has_uid || strcmp(u, uid) != 0 || strcmp(c->nick, name) != 0 ||
		    strcmp(c->text, msg) != 0 || !c->has_cid || strcmp(c->cid, id + 6) != 0) {
			TEST_FAIL_("message %zu: %s %s %s %s vs %s %s %s %s", m, c->cid, u, c->nick,
				   c->text, id, uid, name, msg);
			fail = true;
		}
		m++;
	}
	free(exp);
	ASSERT(!fail);
	ASSERT_EQ(m, 147);

	/* heartbeat and goodbye; the server's heartbeat echo is not stored. */
	buf_clear(&out);
	ASSERT_EQ(douyu_platform.heartbeat(ps, &out), 0);
	ASSERT_MEM_EQ(buf_head(&out) + 12, "type@=mrkl/", 12);
	buf_clear(&out);
	ASSERT_EQ(douyu_platform.goodbye(ps, &out), 0);
	ASSERT_MEM_EQ(buf_head(&out) + 12, "type@=logout/", 14);
	buf_clear(&out);
	size_t before = k.n;
	struct buf in;
	buf_init(&in);
	douyu_pack(&in, DOUYU_TYPE_S2C, "type@=mrkl/", 11);
	douyu_pack(&in, DOUYU_TYPE_S2C, "type@=keeplive/tick@=1/", 23);
	douyu_pack(&in, DOUYU_TYPE_S2C, "type@=loginres/", 15); /* a second one: ignored */
	/* Not stored, but each is a complete packet: proof that the server is alive. */
	ASSERT_EQ(douyu_platform.feed(ps, 1, 1, buf_head(&in), in.len, &out), 3);
	ASSERT_EQ(k.n, before);
	ASSERT_EQ(k.joined, 1);
	ASSERT_EQ(out.len, 0);

	/* A server error is reported and stored. */
	buf_clear(&in);
	douyu_pack(&in, DOUYU_TYPE_S2C, "type@=error/code@=51/", 21);
	ASSERT_GE(douyu_platform.feed(ps, 7, 8, buf_head(&in), in.len, &out), 0);
	ASSERT_EQ(k.errors, 1);
	ASSERT_EQ(k.last_code, 51);
	ASSERT_STR_EQ(k.last_text, "data transfer error");
	ASSERT_EQ(k.n, before + 1);
	ASSERT_STR_EQ(k.recs[before].type, "error");
	ASSERT_EQ(k.recs[before].ts, 7);
	ASSERT_EQ(k.recs[before].session_id, 8);

	/* code@=0 is "no error": stored, not reported, the connection goes on. */
	buf_clear(&in);
	douyu_pack(&in, DOUYU_TYPE_S2C, "type@=error/code@=0/", 20);
	ASSERT_EQ(douyu_platform.feed(ps, 7, 8, buf_head(&in), in.len, &out), 1);
	ASSERT_EQ(k.errors, 1);
	ASSERT_EQ(k.n, before + 2);
	ASSERT_STR_EQ(k.recs[before + 1].type, "error");
	before++;

	/* Skipped packets: a bad one from the reader and one with too many pairs. */
	buf_clear(&in);
	douyu_pack(&in, DOUYU_TYPE_C2S, "type@=x/", 8);
	struct buf big;
	buf_init(&big);
	for (int i = 0; i <= STT_MAX_PAIRS; i++)
		buf_append_str(&big, "a@=b/");
	douyu_pack(&in, DOUYU_TYPE_S2C, (const char *)buf_head(&big), big.len);
	douyu_pack(&in, DOUYU_TYPE_S2C, "type@=chatmsg/rid@=1/", 21); /* another room */
	douyu_pack(&in, DOUYU_TYPE_S2C, "type@=chatmsg/rid@=0/", 21); /* broadcast: ours */
	uint64_t skipped_before = skipped_total;
	ASSERT_GE(douyu_platform.feed(ps, 7, 8, buf_head(&in), in.len, &out), 0);
	ASSERT_EQ(skipped_total - skipped_before, 2);
	ASSERT_EQ(k.foreign, 3);
	ASSERT_EQ(k.n, before + 2);
	/* Broken framing is fatal. */
	uint8_t junk[12] = {1, 0, 0, 0, 2, 0, 0, 0};
	ASSERT_EQ(douyu_platform.feed(ps, 7, 8, junk, sizeof(junk), &out), -EPROTO);
	buf_finish(&big);
	buf_finish(&in);

	douyu_platform.session_destroy(ps);
	douyu_platform.session_destroy(NULL);
	buf_finish(&out);
	free(k.recs);
	capture_finish(cap);
	free(cap);
}

/* Pack each string of a packets.json fixture's "packets" array into stream (no escapes). */
static size_t load_packets(const char *path, struct buf *stream)
{
	char *text = test_read_file(path, NULL);
	if (!text)
		return 0;
	char *p = strstr(text, "\"packets\"");
	p = p ? strchr(p, '[') : NULL;
	size_t n = 0;
	while (p) {
		char *s = strchr(p, '"'), *close = strchr(p, ']');
		if (!s || (close && close < s))
			break;
		char *e = strchr(s + 1, '"');
		if (!e)
			break;
		douyu_pack(stream, DOUYU_TYPE_S2C, s + 1, (size_t)(e - s - 1));
		n++;
		p = e + 1;
	}
	free(text);
	return n;
}

static void test_platform_gifts_and_end(void)
{
	struct buf stream;
	buf_init(&stream);
	size_t n = load_packets(FIX "/S15-gifts/packets.json", &stream);
	ASSERT_EQ(n, 57);
	struct sink k = {0};
	k.recs = calloc(MAX_RECS, sizeof(*k.recs));
	struct platform_session *ps = NULL;
	ASSERT_EQ(douyu_platform.session_create(9263298, NULL, &sink_ev, &k, &ps), 0);
	struct buf out;
	buf_init(&out);
	/* Fed in uneven pieces, as TCP reads would cut it. */
	uint64_t seed = 77;
	int packets = 0; /* feed reports the packets each piece completed: liveness */
	for (size_t off = 0; off < stream.len;) {
		size_t len = 1 + test_rand(&seed) % 700;
		if (len > stream.len - off)
			len = stream.len - off;
		int got = douyu_platform.feed(ps, 1, 2, buf_head(&stream) + off, len, &out);
		ASSERT_GE(got, 0);
		packets += got;
		off += len;
	}
	ASSERT_EQ(packets, 57);
	ASSERT_EQ(k.n, 57);
	ASSERT_EQ(count_rec_type(&k, "dgb"), 57);
	for (size_t i = 0; i < k.n; i++) {
		ASSERT(k.recs[i].has_uid);
		ASSERT(k.recs[i].text[0] == 0 && !k.recs[i].has_cid);
		ASSERT(k.recs[i].data_ok);
	}
	douyu_platform.session_destroy(ps);

	buf_clear(&stream);
	ASSERT_EQ(load_packets(FIX "/S16-broadcast-end/packets.json", &stream), 1);
	struct sink k2 = {0};
	k2.recs = calloc(MAX_RECS, sizeof(*k2.recs));
	ASSERT_EQ(douyu_platform.session_create(12850251, NULL, &sink_ev, &k2, &ps), 0);
	ASSERT_EQ(douyu_platform.feed(ps, 1, 2, buf_head(&stream), stream.len, &out), 1);
	ASSERT_EQ(k2.n, 1);
	ASSERT_STR_EQ(k2.recs[0].type, "rss");
	douyu_platform.session_destroy(ps);
	free(k2.recs);
	free(k.recs);
	buf_finish(&out);
	buf_finish(&stream);
}

static void test_platform_typed(void)
{
	struct sink k = {0};
	k.recs = calloc(MAX_RECS, sizeof(*k.recs));
	struct platform_session *ps = NULL;
	ASSERT_EQ(douyu_platform.session_create(317422, NULL, &sink_ev, &k, &ps), 0);
	struct buf in, out, body;
	buf_init(&in);
	buf_init(&out);
	buf_init(&body);
	static const size_t rows[] = {6, 17, 29, 59, 67};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		ASSERT(tsv_row(rows[i], &body));
		douyu_pack(&in, DOUYU_TYPE_S2C, (const char *)buf_head(&body), body.len - 1);
	}
	skipped_events = 0;
	skipped_total = 0;
	douyu_pack(&in, DOUYU_TYPE_C2S, "type@=x/", 8);
	douyu_pack(&in, 0, "type@=x/", 8);
	ASSERT_GE(douyu_platform.feed(ps, 1, 2, buf_head(&in), in.len, &out), 0);
	ASSERT_EQ(k.foreign, 0);
	ASSERT_EQ(k.n, 5);
	ASSERT_STR_EQ(k.recs[0].type, "spbc");
	ASSERT_STR_EQ(k.recs[0].nick, "我戒了专心");
	ASSERT_STR_EQ(k.recs[1].type, "anbc");
	ASSERT_STR_EQ(k.recs[2].type, "rnewbc");
	ASSERT_STR_EQ(k.recs[3].type, "comm_chatmsg");
	ASSERT_STR_EQ(k.recs[3].nick, "小爷话不多");
	ASSERT_STR_EQ(k.recs[3].text, "卡着谢这么多遍！架我？");
	ASSERT_STR_EQ(k.recs[4].type, "error");
	ASSERT_STR_EQ(k.recs[4].text, "error 51");
	ASSERT_EQ(k.errors, 1);
	/* Two bad packets in one feed: one event, counted 2, with the reason. */
	ASSERT_EQ(skipped_events, 1);
	ASSERT_EQ(skipped_total, 2);
	ASSERT_STR_EQ(skipped_why, "message type is not 690");
	/* A packet with too many fields: skipped and reported. */
	buf_clear(&in);
	struct buf big;
	buf_init(&big);
	for (int i = 0; i <= STT_MAX_PAIRS; i++)
		buf_append_str(&big, "a@=b/");
	douyu_pack(&in, DOUYU_TYPE_S2C, (const char *)buf_head(&big), big.len);
	ASSERT_GE(douyu_platform.feed(ps, 1, 2, buf_head(&in), in.len, &out), 0);
	ASSERT_EQ(skipped_total, 3);
	ASSERT_STR_EQ(skipped_why, "more than 4096 fields");
	/* A missing NUL and a NUL inside the body. */
	buf_clear(&in);
	douyu_pack(&in, DOUYU_TYPE_S2C, "type@=x/", 8);
	buf_head(&in)[in.len - 1] = 'x';
	ASSERT_GE(douyu_platform.feed(ps, 1, 2, buf_head(&in), in.len, &out), 0);
	ASSERT_STR_EQ(skipped_why, "no terminating NUL");
	buf_clear(&in);
	douyu_pack(&in, DOUYU_TYPE_S2C, "type@=x\0/", 9);
	ASSERT_GE(douyu_platform.feed(ps, 1, 2, buf_head(&in), in.len, &out), 0);
	ASSERT_STR_EQ(skipped_why, "NUL inside the body");
	ASSERT_EQ(skipped_total, 5);
	ASSERT_EQ(k.n, 5);
	douyu_platform.session_destroy(ps);
	buf_finish(&big);
	buf_finish(&in);
	buf_finish(&out);
	buf_finish(&body);
	free(k.recs);
}

/* ---- memory after a huge packet ---- */

static const char *skip_why; /* set by a test that cannot run here */

/* Bytes the allocator has handed out and not had back (glibc), or 0 when unknown. */
static size_t heap_in_use(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
#else
	return 0;
#endif
}

/* Does heap_in_use() see a 1 MiB allocation? Not under sanitizers, which bring their own. */
static bool heap_accounting_works(void)
{
	size_t before = heap_in_use();
	uint8_t *p = malloc(1 << 20);
	if (!p)
		return false;
	memset(p, 1, 1 << 20);
	size_t during = heap_in_use();
	free(p);
	return during >= before + (1 << 20);
}

/* A chat packet with text_len bytes of text c, or (text_len 0) exactly total bytes long. */
static void pack_chat(struct buf *out, const char *nick, char c, size_t text_len, size_t total)
{
	struct buf body;
	buf_init(&body);
	buf_printf(&body, "type@=chatmsg/rid@=55/uid@=7/nn@=%s/level@=2/txt@=", nick);
	if (total)
		text_len = total - DOUYU_HDR_LEN - 1 - body.len - 1;
	for (size_t i = 0; i < text_len; i++)
		buf_append(&body, &c, 1);
	buf_append_str(&body, "/");
	douyu_pack(out, DOUYU_TYPE_S2C, (const char *)buf_head(&body), body.len);
	buf_finish(&body);
}

/*
 * After one huge packet, a session gives back what it decoded it with: the reader's pending
 * bytes, both STT decoders and the JSON are at most DOUYU_KEEP_BUF each once the feed
 * returns. A chat whose JSON fits DOUYU_MAX_JSON is stored, even near 1 MiB; one whose JSON
 * would be longer is skipped with a reason, and the connection goes on.
 */
static void test_platform_buffers_released(void)
{
	if (!heap_accounting_works()) {
		skip_why = "no glibc heap accounting (sanitizer build?)";
		return;
	}
	struct rec_copy *recs = calloc(MAX_RECS, sizeof(*recs));
	ASSERT(recs);
	struct sink k = {.recs = recs};
	struct platform_session *ps = NULL;
	struct buf in, out;
	buf_init(&in);
	buf_init(&out);
	/* The input first, so that the heap measured below holds only the session's growth. */
	struct buf warm;
	buf_init(&warm);
	pack_chat(&warm, "warm", 't', 10, 0);
	/* Almost 1 MiB of text: its JSON is about as long, under the cap: stored. */
	pack_chat(&in, "big", 't', 1000000, 0);
	size_t first = in.len;
	/*
	 * Then a packet of exactly 1 MiB of control characters: each becomes \u0001 in JSON,
	 * ~6 MiB, over the cap: skipped. Then an ordinary chat.
	 */
	pack_chat(&in, "huge", 1, 0, DOUYU_MAX_LEN);
	size_t huge = in.len - first;
	ASSERT_EQ(huge, DOUYU_MAX_LEN);
	pack_chat(&in, "after", 't', 5, 0);
	ASSERT_EQ(douyu_platform.session_create(55, NULL, &sink_ev, &k, &ps), 0);
	ASSERT_EQ(douyu_platform.feed(ps, 1, 2, buf_head(&warm), warm.len, &out), 1);
	buf_finish(&warm);
	size_t base = heap_in_use();
	uint64_t skipped_before = skipped_total;

	/* The first packet and half of the huge one: the half must stay (it is unread). */
	size_t half = first + huge / 2;
	ASSERT_EQ(douyu_platform.feed(ps, 1, 2, buf_head(&in), half, &out), 1);
	ASSERT_EQ(k.n, 2);
	ASSERT_STR_EQ(k.recs[1].nick, "big");
	ASSERT(k.recs[1].data_ok);
	size_t mid = heap_in_use();
	ASSERT_LE(mid, base + huge / 2 * 2 + 4 * DOUYU_KEEP_BUF);
	/* The other half one byte at a time, then the rest. */
	size_t pos = half;
	for (; pos < first + huge; pos++)
		ASSERT_GE(douyu_platform.feed(ps, 1, 2, buf_head(&in) + pos, 1, &out), 0);
	ASSERT_EQ(douyu_platform.feed(ps, 1, 2, buf_head(&in) + pos, in.len - pos, &out), 1);
	ASSERT_EQ(k.n, 3);
	ASSERT_STR_EQ(k.recs[2].nick, "after");
	ASSERT_EQ(skipped_total - skipped_before, 1);
	ASSERT_STR_EQ(skipped_why, "data over 2 MiB as JSON");
	size_t end = heap_in_use();
	printf("# heap in use: %zu before, %zu with half a packet pending, %zu after\n", base, mid,
	       end);
	/* Four buffers of at most DOUYU_KEEP_BUF each; in practice they are all released. */
	ASSERT_LE(end, base + 4 * DOUYU_KEEP_BUF);

	douyu_platform.session_destroy(ps);
	buf_finish(&in);
	buf_finish(&out);
	free(recs);
}

#define RUN_SKIPPABLE(fn)                                                                          \
	do {                                                                                       \
		skip_why = NULL;                                                                   \
		test_cur_failed = 0;                                                               \
		fn();                                                                              \
		test_count++;                                                                      \
		if (test_cur_failed)                                                               \
			test_failed_total++;                                                       \
		if (skip_why && !test_cur_failed)                                                  \
			printf("ok %d - %s # SKIP %s\n", test_count, #fn, skip_why);               \
		else                                                                               \
			printf("%s %d - %s\n", test_cur_failed ? "not ok" : "ok", test_count, #fn); \
		fflush(stdout);                                                                    \
	} while (0)

int main(void)
{
	RUN(test_pack);
	RUN(test_capture_per_message);
	RUN(test_capture_splits);
	RUN(test_framing_errors);
	RUN(test_bad_packets_skipped);
	RUN(test_callback_stops);
	RUN(test_record);
	RUN(test_other_room);
	RUN(test_typed_samples);
	RUN(test_record_lengths);
	RUN(test_platform_typed);
	RUN(test_platform_capture);
	RUN(test_platform_gifts_and_end);
	RUN_SKIPPABLE(test_platform_buffers_released);
	TEST_DONE();
}
