/*
 * The Bilibili session (bili_session_*, bilibili.h): the auth packet, heartbeats, the auth
 * reply (joined / refused), popularity records on change, the ACK before its message, and
 * whole streams (packets built here with bili_pack and zlib batches, and the real captures
 * of ../shared/fixtures/bilibili/captures) that give the same records, events and replies
 * whether fed whole, one byte at a time or cut at random.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <zlib.h>

#include "b64.h"
#include "bilibili.h"
#include "recs.h"
#include "test.h"

#define FIXTURES SHARED_DIR "/fixtures/bilibili/"
#define CAPTURES FIXTURES "captures/"
#define ROOM 5050

/* Everything the session told us. */
struct seen {
	struct recs rs;
	int joined;
	int errors;
	int64_t error_code;
	char error_text[64];
	uint64_t skipped;
	char skip_why[64];
	size_t out_len_at_record[RECS_MAX]; /* what the session had queued when it delivered */
	struct buf *out;
};

static void on_joined(void *ud)
{
	((struct seen *)ud)->joined++;
}

static void on_record(void *ud, const struct record *rec)
{
	struct seen *s = ud;
	if (s->rs.n < RECS_MAX)
		s->out_len_at_record[s->rs.n] = s->out ? s->out->len : 0;
	recs_add(&s->rs, rec);
}

static void on_foreign(void *ud, const char *type)
{
	(void)ud;
	(void)type;
}

static void on_server_error(void *ud, int64_t code, const char *text)
{
	struct seen *s = ud;
	s->errors++;
	s->error_code = code;
	snprintf(s->error_text, sizeof(s->error_text), "%s", text);
}

static void on_skipped(void *ud, uint64_t n, const char *why)
{
	struct seen *s = ud;
	s->skipped += n;
	snprintf(s->skip_why, sizeof(s->skip_why), "%s", why);
}

static const struct platform_events events = {
    .on_joined = on_joined,
    .on_record = on_record,
    .on_foreign = on_foreign,
    .on_server_error = on_server_error,
    .on_skipped = on_skipped,
};

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* A server packet with the given header ver (bili_pack writes ver 0). */
static void pkt(struct buf *b, uint32_t op, uint16_t ver, const void *body, size_t len)
{
	size_t at = b->len;
	ASSERT_EQ(bili_pack(b, op, body, len), 0);
	uint8_t *p = buf_head(b) + at;
	p[6] = (uint8_t)(ver >> 8);
	p[7] = (uint8_t)ver;
	put_u32(p + 12, 0);
}

static void pkt_str(struct buf *b, uint32_t op, const char *body)
{
	pkt(b, op, 0, body, strlen(body));
}

/* A ver-2 op-5 batch holding the packets in inner. */
static void zlib_batch(struct buf *b, const struct buf *inner)
{
	uLongf zlen = compressBound((uLong)inner->len);
	uint8_t *z = malloc(zlen);
	ASSERT(z);
	ASSERT_EQ(compress2(z, &zlen, buf_head(inner), (uLong)inner->len, 6), Z_OK);
	pkt(b, BILI_OP_MESSAGE, BILI_VER_ZLIB, z, zlen);
	free(z);
}

struct sess {
	struct platform_session *ps;
	struct seen seen;
	struct buf out;
};

static void sess_open(struct sess *s, const struct bili_params *p)
{
	memset(s, 0, sizeof(*s));
	buf_init(&s->out);
	s->seen.out = &s->out;
	if (bili_session_create(ROOM, p, &events, &s->seen, &s->ps) < 0)
		s->ps = NULL;
}

static void sess_close(struct sess *s)
{
	bili_session_destroy(s->ps);
	recs_free(&s->seen.rs);
	buf_finish(&s->out);
}

/* Feed data in pieces of step bytes (0: whole; SIZE_MAX: random cuts from seed). Returns
 * the first negative result, else the sum of the packet counts. */
static int feed(struct sess *s, const uint8_t *data, size_t len, size_t step, uint64_t seed)
{
	int total = 0;
	size_t off = 0;
	while (off < len) {
		size_t n = step == 0 ? len - off : step;
		if (step == SIZE_MAX)
			n = 1 + test_rand(&seed) % 700;
		if (n > len - off)
			n = len - off;
		int rc = bili_feed(s->ps, 1700000000000 + (int64_t)off, 9, data + off, n, &s->out);
		if (rc < 0)
			return rc;
		total += rc;
		off += n;
	}
	return total;
}

static json_t *auth_body(const struct buf *b)
{
	if (b->len < 16)
		return NULL;
	const uint8_t *p = buf_head(b);
	json_error_t err;
	if (p[11] != BILI_OP_AUTH || (size_t)(p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]) != b->len)
		return NULL;
	return json_loadb((const char *)p + 16, b->len - 16, 0, &err);
}

static bool hex8(const char *s)
{
	if (!s || strlen(s) != 8)
		return false;
	for (int i = 0; i < 8; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static void test_hello(void)
{
	struct bili_params p = {.uid = 123, .protover = 0};
	snprintf(p.buvid, sizeof(p.buvid), "BUVID-1");
	snprintf(p.token, sizeof(p.token), "tok\"en");
	struct sess s;
	sess_open(&s, &p);
	ASSERT(s.ps);
	ASSERT_EQ(bili_hello(s.ps, &s.out), 0);
	json_t *j = auth_body(&s.out);
	ASSERT(j);
	ASSERT_EQ(json_integer_value(json_object_get(j, "uid")), 123);
	ASSERT_EQ(json_integer_value(json_object_get(j, "roomid")), ROOM);
	ASSERT_EQ(json_integer_value(json_object_get(j, "protover")), 3);
	ASSERT_STR_EQ(json_string_value(json_object_get(j, "buvid")), "BUVID-1");
	ASSERT_STR_EQ(json_string_value(json_object_get(j, "key")), "tok\"en");
	ASSERT(json_is_true(json_object_get(j, "support_ack")));
	char q1[16];
	snprintf(q1, sizeof(q1), "%s", json_string_value(json_object_get(j, "queue_uuid")));
	ASSERT(hex8(q1));
	json_decref(j);
	/* A new queue_uuid per auth (2^-32 odds of a false failure). */
	buf_clear(&s.out);
	ASSERT_EQ(bili_hello(s.ps, &s.out), 0);
	j = auth_body(&s.out);
	ASSERT(j);
	const char *q2 = json_string_value(json_object_get(j, "queue_uuid"));
	ASSERT(hex8(q2));
	ASSERT(strcmp(q1, q2) != 0);
	json_decref(j);
	sess_close(&s);

	/* protover 2 asks for zlib. */
	p.protover = 2;
	sess_open(&s, &p);
	ASSERT_EQ(bili_hello(s.ps, &s.out), 0);
	j = auth_body(&s.out);
	ASSERT_EQ(json_integer_value(json_object_get(j, "protover")), 2);
	json_decref(j);
	sess_close(&s);

	/* No params: a guest without token. */
	sess_open(&s, NULL);
	ASSERT_EQ(bili_hello(s.ps, &s.out), 0);
	j = auth_body(&s.out);
	ASSERT(j);
	ASSERT_EQ(json_integer_value(json_object_get(j, "uid")), 0);
	ASSERT_EQ(json_integer_value(json_object_get(j, "protover")), 3);
	ASSERT_STR_EQ(json_string_value(json_object_get(j, "buvid")), "");
	ASSERT(!json_object_get(j, "key"));
	json_decref(j);
	sess_close(&s);

	/* Parameters that are not strings are refused, not read past. */
	memset(p.buvid, 'x', sizeof(p.buvid));
	sess_open(&s, &p);
	ASSERT_EQ(bili_hello(s.ps, &s.out), -EINVAL);
	sess_close(&s);
}

static void test_heartbeat_goodbye(void)
{
	struct sess s;
	sess_open(&s, NULL);
	ASSERT_EQ(bili_heartbeat(s.ps, &s.out), 0);
	static const uint8_t hb[] = {0, 0, 0, 16, 0, 16, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1};
	ASSERT_EQ(s.out.len, 16);
	ASSERT_MEM_EQ(buf_head(&s.out), hb, 16);
	buf_clear(&s.out);
	ASSERT_EQ(bili_goodbye(s.ps, &s.out), 0);
	ASSERT_EQ(s.out.len, 0);
	sess_close(&s);
	bili_session_destroy(NULL);
}

static void test_auth_reply(void)
{
	struct sess s;
	struct buf b;
	buf_init(&b);
	/* {"code":0} joins, once; the header's ver and seq do not matter. */
	sess_open(&s, NULL);
	pkt(&b, BILI_OP_AUTH_REPLY, 1, "{\"code\":0}", 10);
	pkt(&b, BILI_OP_AUTH_REPLY, 0, "{\"code\":0}", 10);
	ASSERT_EQ(feed(&s, buf_head(&b), b.len, 0, 0), 2);
	ASSERT_EQ(s.seen.joined, 1);
	ASSERT_EQ(s.seen.errors, 0);
	ASSERT_EQ(s.seen.rs.n, 0);
	sess_close(&s);
	/* An empty body is code 0. */
	buf_clear(&b);
	sess_open(&s, NULL);
	pkt(&b, BILI_OP_AUTH_REPLY, 1, NULL, 0);
	ASSERT_EQ(feed(&s, buf_head(&b), b.len, 1, 0), 1);
	ASSERT_EQ(s.seen.joined, 1);
	sess_close(&s);
	/* Refusals. */
	static const struct {
		const char *body;
		int64_t code;
		const char *text;
	} no[] = {
	    {"{\"code\":-101}", -101, "token error (auth refused)"},
	    {"{\"code\":-1,\"msg\":\"x\"}", -1, "auth refused"},
	    {"{\"code\":1}", 1, "auth refused"},
	};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		buf_clear(&b);
		sess_open(&s, NULL);
		pkt_str(&b, BILI_OP_AUTH_REPLY, no[i].body);
		ASSERT_EQ(feed(&s, buf_head(&b), b.len, 0, 0), 1);
		ASSERT_EQ(s.seen.joined, 0);
		ASSERT_EQ(s.seen.errors, 1);
		ASSERT_EQ(s.seen.error_code, no[i].code);
		ASSERT_STR_EQ(s.seen.error_text, no[i].text);
		sess_close(&s);
	}
	/* Unreadable: counted, not joined, not an error (the join times out). */
	static const char *const bad[] = {"x", "{\"code\":\"0\"}", "[0]", "{}", "{\"code\":0.5}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_clear(&b);
		sess_open(&s, NULL);
		pkt_str(&b, BILI_OP_AUTH_REPLY, bad[i]);
		ASSERT_EQ(feed(&s, buf_head(&b), b.len, 0, 0), 1);
		ASSERT_EQ(s.seen.joined, 0);
		ASSERT_EQ(s.seen.errors, 0);
		ASSERT_EQ(s.seen.skipped, 1);
		ASSERT_STR_EQ(s.seen.skip_why, "auth reply without an integer code");
		sess_close(&s);
	}
	buf_finish(&b);
}

static void pop(struct buf *b, uint32_t v, uint16_t ver)
{
	uint8_t body[4];
	put_u32(body, v);
	pkt(b, BILI_OP_HEARTBEAT_REPLY, ver, body, 4);
}

/* Popularity: a record for the first reply and for each change, none for a repeat. */
static void test_popularity(void)
{
	struct buf b;
	buf_init(&b);
	pop(&b, 1, 1);
	pop(&b, 1, 0);
	pop(&b, 4000000000u, 1);
	pop(&b, 4000000000u, 1);
	pop(&b, 1, 1);
	pkt(&b, BILI_OP_HEARTBEAT_REPLY, 1, "\0\0\0", 3);
	struct sess s;
	sess_open(&s, NULL);
	ASSERT_EQ(feed(&s, buf_head(&b), b.len, 0, 0), 6);
	ASSERT_EQ(s.seen.rs.n, 3);
	const char *want[] = {"{\"popularity\":1}", "{\"popularity\":4000000000}",
	                      "{\"popularity\":1}"};
	for (int i = 0; i < 3; i++) {
		struct rec_copy *r = &s.seen.rs.r[i];
		ASSERT_STR_EQ(r->type, "popularity");
		ASSERT_STR_EQ(r->data, want[i]);
		ASSERT_STR_EQ(r->platform, "bilibili");
		ASSERT_EQ(r->room_id, ROOM);
		ASSERT_EQ(r->session_id, 9);
		ASSERT(!r->has_uid && !r->nick && !r->cid && !r->decoded);
	}
	ASSERT_EQ(s.seen.skipped, 1);
	ASSERT_STR_EQ(s.seen.skip_why, "heartbeat reply shorter than 4 bytes");
	sess_close(&s);
	/* A new connection records the first one again. */
	sess_open(&s, NULL);
	ASSERT_EQ(feed(&s, buf_head(&b), 20, 0, 0), 1);
	ASSERT_EQ(s.seen.rs.n, 1);
	sess_close(&s);
	buf_finish(&b);
}

/* An ACK'd message (protocol §4.4): op 24 queued before the record is delivered, inside a
 * batch too; the unacked one queues nothing. */
static void test_ack(void)
{
	const char *sc = "{\"cmd\":\"SUPER_CHAT_MESSAGE\",\"data\":{\"id\":7,\"uid\":1,"
	                 "\"message\":\"m\"},\"msg_id\":\"214386819788254208:1000:1000\","
	                 "\"p_is_ack\":true,\"p_msg_type\":1,\"send_time\":1759200000000}";
	struct buf inner, b, want;
	buf_init(&inner);
	buf_init(&b);
	buf_init(&want);
	pkt_str(&b, BILI_OP_MESSAGE, "{\"cmd\":\"A\",\"msg_id\":\"x\"}");
	pkt_str(&inner, BILI_OP_MESSAGE, sc);
	zlib_batch(&b, &inner);
	ASSERT_EQ(bili_pack_ack(&want, "214386819788254208:1000:1000", "SUPER_CHAT_MESSAGE", 1), 0);
	ASSERT_EQ(want.len, 99); /* the 2026 web client's packet, capture S13-protover3 */
	for (size_t step = 0; step <= 1; step++) {
		struct sess s;
		sess_open(&s, NULL);
		ASSERT_EQ(feed(&s, buf_head(&b), b.len, step, 0), 2);
		ASSERT_EQ(s.seen.rs.n, 2);
		ASSERT_EQ(s.seen.out_len_at_record[0], 0);
		ASSERT_EQ(s.seen.out_len_at_record[1], 99);
		ASSERT_EQ(s.out.len, 99);
		ASSERT_MEM_EQ(buf_head(&s.out), buf_head(&want), 99);
		ASSERT_STR_EQ(s.seen.rs.r[1].cid, "SUPER_CHAT_MESSAGE:7");
		ASSERT_STR_EQ(s.seen.rs.r[0].cid, "A:msg:x");
		sess_close(&s);
	}
	buf_finish(&inner);
	buf_finish(&b);
	buf_finish(&want);
}

/* Read one capture file's server messages. */
struct capture {
	struct buf msg[32];
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
		const char *b = strstr(line, "\"b64\": \"");
		if (!strstr(line, "\"dir\": \"in\"") || !b)
			continue;
		b += 8;
		buf_init(&c->msg[c->n]);
		if (!b64_decode(b, strcspn(b, "\""), &c->msg[c->n])) {
			fclose(f);
			return -EINVAL;
		}
		c->n++;
	}
	fclose(f);
	return 0;
}

static void unload(struct capture *c)
{
	for (int i = 0; i < c->n; i++)
		buf_finish(&c->msg[i]);
}

/* Feed a capture's messages in order, each whole / bytewise / cut at random, until an error;
 * returns that error or the packet count. */
static int feed_capture(struct sess *s, const struct capture *c, size_t step)
{
	int total = 0;
	for (int i = 0; i < c->n; i++) {
		int rc = feed(s, buf_head(&c->msg[i]), c->msg[i].len, step, (uint64_t)i + 1);
		if (rc < 0)
			return rc;
		total += rc;
	}
	return total;
}

static bool same_session(const struct sess *a, const struct sess *b)
{
	return recs_same(&a->seen.rs, &b->seen.rs) && a->seen.joined == b->seen.joined &&
	       a->seen.errors == b->seen.errors && a->seen.skipped == b->seen.skipped &&
	       a->out.len == b->out.len &&
	       (a->out.len == 0 || memcmp(buf_head(&a->out), buf_head(&b->out), a->out.len) == 0);
}

/* Every capture: the same records fed whole, a byte at a time, and cut at random; and the
 * records each one must give. Receive times differ with the cuts, so they are fixed first. */
static void check_capture(const char *file, int want_rc, int want_joined, const char *const *types,
                          int ntypes, struct sess *keep)
{
	struct capture c;
	ASSERT_EQ(load(file, &c), 0);
	ASSERT_GT(c.n, 0);
	struct sess runs[3];
	size_t steps[3] = {0, 1, SIZE_MAX};
	bool ok = true;
	for (int k = 0; k < 3 && ok; k++) {
		sess_open(&runs[k], NULL);
		int rc = feed_capture(&runs[k], &c, steps[k]);
		for (int i = 0; i < runs[k].seen.rs.n; i++)
			runs[k].seen.rs.r[i].ts = 0;
		if (rc != want_rc) {
			printf("# %s step %zu: rc %d, want %d\n", file, steps[k], rc, want_rc);
			ok = false;
		}
	}
	for (int k = 1; k < 3 && ok; k++)
		ok = same_session(&runs[0], &runs[k]);
	struct seen *s = &runs[0].seen;
	if (ok && (s->joined != want_joined || s->rs.n != ntypes || s->skipped != 0)) {
		printf("# %s: joined %d, %d records, %" PRIu64 " skipped\n", file, s->joined,
		       s->rs.n, s->skipped);
		ok = false;
	}
	for (int i = 0; ok && i < ntypes; i++)
		if (strcmp(s->rs.r[i].type, types[i]) != 0) {
			printf("# %s: record %d is %s, want %s\n", file, i, s->rs.r[i].type,
			       types[i]);
			ok = false;
		}
	for (int k = 0; k < 3; k++) {
		if (ok && k == 0 && keep)
			*keep = runs[0];
		else
			sess_close(&runs[k]);
	}
	unload(&c);
	if (!ok)
		test_cur_failed = 1;
}

static const struct rec_copy *find(const struct sess *s, const char *type, int nth)
{
	for (int i = 0; i < s->seen.rs.n; i++)
		if (strcmp(s->seen.rs.r[i].type, type) == 0 && nth-- == 0)
			return &s->seen.rs.r[i];
	return NULL;
}

static void test_capture_pure_live(void)
{
	static const char *const types[] = {
	    "popularity",       "LOG_IN_NOTICE",    "ONLINE_RANK_COUNT", "INTERACT_WORD_V2",
	    "INTERACT_WORD_V2", "INTERACT_WORD_V2", "INTERACT_WORD_V2",  "ONLINE_RANK_V3",
	    "DANMU_MSG",        "WATCHED_CHANGE",   "ONLINE_RANK_COUNT", "LIKE_INFO_V3_UPDATE",
	};
	struct sess s;
	memset(&s, 0, sizeof(s));
	check_capture("pure_live-S13-live-2026-09-27.jsonl", 13, 1, types, 12, &s);
	if (test_cur_failed)
		return;
	/* The 2026 guest view of a chat message, keyed by its id_str. */
	const struct rec_copy *d = find(&s, "DANMU_MSG", 0);
	ASSERT(d);
	ASSERT(d->has_uid);
	ASSERT_EQ(d->uid, 0);
	ASSERT_STR_EQ(d->nick, "观***");
	ASSERT(d->has_level);
	ASSERT_EQ(d->level, 20);
	ASSERT_STR_EQ(d->text, "流口水");
	ASSERT_STR_EQ(d->cid, "DANMU_MSG:757c46e2cd8f3ca67a193029986ab92a3089");
	ASSERT_STR_EQ(find(&s, "popularity", 0)->data, "{\"popularity\":1}");
	/* pure_live emptied these payloads: stored plain. */
	const struct rec_copy *iw = find(&s, "INTERACT_WORD_V2", 3);
	ASSERT(iw && !iw->decoded && !iw->has_uid && !iw->cid);
	sess_close(&s);

	static const char *const gifts[] = {"SEND_GIFT_V2"};
	check_capture("pure_live-S13-guest-gifts-2026-10-09.jsonl", 1, 0, gifts, 1, &s);
	if (test_cur_failed)
		return;
	const struct rec_copy *g = &s.seen.rs.r[0];
	ASSERT_STR_EQ(g->nick, "想***");
	ASSERT_STR_EQ(g->cid, "SEND_GIFT_V2:4825830807182606848:0");
	ASSERT(g->decoded && strstr(g->decoded, "\"gift_name\":\"牛哇牛哇\""));
	sess_close(&s);
}

static void test_capture_older(void)
{
	static const char *const blv[] = {
	    "STOP_LIVE_ROOM_LIST", "ONLINE_RANK_V2", "ONLINE_RANK_COUNT", "popularity",
	    "WATCHED_CHANGE",      "INTERACT_WORD",  "INTERACT_WORD",     "DANMU_MSG",
	};
	struct sess s;
	memset(&s, 0, sizeof(s));
	/* Packets: auth reply, 3 plain + 2 batched, heartbeat reply, 2 + 1 + 1. */
	check_capture("broadcastlv-2023-01-02.jsonl", 9, 1, blv, 8, &s);
	if (test_cur_failed)
		return;
	const struct rec_copy *iw = find(&s, "INTERACT_WORD", 0);
	ASSERT(iw);
	ASSERT_EQ(iw->uid, 49820933);
	ASSERT_STR_EQ(iw->nick, "塔塔宝宝W");
	ASSERT_STR_EQ(iw->cid, "INTERACT_WORD:49820933:1672606860437300700");
	iw = find(&s, "INTERACT_WORD", 1); /* the one in a brotli batch */
	ASSERT_STR_EQ(iw->cid, "INTERACT_WORD:46343327:1672607068784799000");
	const struct rec_copy *d = find(&s, "DANMU_MSG", 0);
	ASSERT_EQ(d->uid, 1087319369);
	ASSERT_STR_EQ(d->nick, "ProgramRipper");
	ASSERT_EQ(d->level, 9);
	ASSERT_STR_EQ(d->text, "what");
	/* No id_str in 2023: send time, sender hash, text hash. */
	ASSERT(strncmp(d->cid, "DANMU_MSG:1672600515362:12de831c:", 33) == 0);
	ASSERT_EQ(strlen(d->cid), 33 + 16);
	sess_close(&s);

	static const char *const lk[] = {"DANMU_MSG"};
	check_capture("livekit-2021-09.jsonl", 1, 0, lk, 1, &s);
	if (test_cur_failed)
		return;
	d = &s.seen.rs.r[0];
	ASSERT_EQ(d->uid, 573732342);
	ASSERT_STR_EQ(d->nick, "进栈检票");
	ASSERT_STR_EQ(d->text, "Hello, LiveKit!!!");
	ASSERT(strncmp(d->cid, "DANMU_MSG:1631676810606:6420484f:", 33) == 0);
	sess_close(&s);

	/* Heartbeats with a body get it echoed outside the packet (protocol §3.5): the reply
	 * is recorded, then the echo breaks the stream at the next message. */
	static const char *const wf[] = {"INTERACT_WORD", "popularity"};
	check_capture("warframe-api-ktor-2021-11.jsonl", 2, 0, wf, 2, &s);
	if (test_cur_failed)
		return;
	ASSERT_STR_EQ(s.seen.rs.r[1].data, "{\"popularity\":10}");
	sess_close(&s);
	static const char *const doc[] = {"popularity"};
	check_capture("bilibili-api-collect-doc.jsonl", -EPROTO, 1, doc, 1, &s);
	if (test_cur_failed)
		return;
	ASSERT_STR_EQ(s.seen.rs.r[0].data, "{\"popularity\":2466}");
	sess_close(&s);
}

/* A stream of every fixture, plain and in zlib batches, with an auth reply, heartbeat
 * replies, an ACK'd message and unusable packets: the same records, events, replies and
 * packet counts, whole, byte by byte and cut at random. */
static void test_stream_splits(void)
{
	struct buf b, inner;
	buf_init(&b);
	buf_init(&inner);
	pkt_str(&b, BILI_OP_AUTH_REPLY, "{\"code\":0}");
	pop(&b, 7, 1);
	DIR *d = opendir(FIXTURES);
	ASSERT(d);
	struct dirent *e;
	int files = 0, packets = 2;
	while ((e = readdir(d))) {
		size_t nl = strlen(e->d_name);
		if (nl < 6 || strcmp(e->d_name + nl - 5, ".json") != 0)
			continue;
		char path[512];
		snprintf(path, sizeof(path), FIXTURES "%s", e->d_name);
		size_t len;
		char *body = test_read_file(path, &len);
		ASSERT(body);
		/* Every other one plain, the rest batched in threes. */
		if (files++ % 2 == 0) {
			pkt(&b, BILI_OP_MESSAGE, 0, body, len);
		} else {
			pkt(&inner, BILI_OP_MESSAGE, 0, body, len);
			if (files % 3 == 0) {
				zlib_batch(&b, &inner);
				buf_clear(&inner);
			}
		}
		packets++;
		free(body);
	}
	closedir(d);
	if (inner.len)
		zlib_batch(&b, &inner);
	pkt_str(&b, BILI_OP_MESSAGE,
	        "{\"cmd\":\"X\",\"msg_id\":\"1\",\"p_is_ack\":true,"
	        "\"p_msg_type\":1}");
	pkt_str(&b, BILI_OP_MESSAGE, "not json");
	pkt_str(&b, 99, "{}");
	pop(&b, 7, 0);
	pop(&b, 8, 0);
	packets += 5;
	ASSERT_GT(files, 40);

	struct sess runs[3];
	size_t steps[3] = {0, 1, SIZE_MAX};
	for (int k = 0; k < 3; k++) {
		sess_open(&runs[k], NULL);
		int rc = feed(&runs[k], buf_head(&b), b.len, steps[k], 77);
		if (rc != packets)
			printf("# skipped %" PRIu64 ": %s\n", runs[k].seen.skipped,
			       runs[k].seen.skip_why);
		ASSERT_EQ(rc, packets);
		for (int i = 0; i < runs[k].seen.rs.n; i++)
			runs[k].seen.rs.r[i].ts = 0;
	}
	struct seen *s = &runs[0].seen;
	/* SEND_GIFT_V2 gives one record, like every other fixture; two popularity records. */
	ASSERT_EQ(s->rs.n, files + 1 + 2);
	ASSERT_EQ(s->joined, 1);
	ASSERT_EQ(s->skipped, 2);
	ASSERT_EQ(runs[0].out.len,
	          16 + strlen("{\"msg_id\":\"1\",\"cmd\":\"X\",\"p_msg_type\":1}"));
	ASSERT(same_session(&runs[0], &runs[1]));
	ASSERT(same_session(&runs[0], &runs[2]));
	for (int k = 0; k < 3; k++)
		sess_close(&runs[k]);
	buf_finish(&b);
	buf_finish(&inner);
}

/* Broken framing ends the session's feed with -EPROTO; a skipped batch is reported. */
static void test_errors(void)
{
	struct sess s;
	sess_open(&s, NULL);
	uint8_t bad[16] = {0, 0, 0, 20, 0, 12};
	ASSERT_EQ(feed(&s, bad, 16, 0, 0), -EPROTO);
	sess_close(&s);
	/* A corrupt zlib batch: skipped and counted, the connection goes on. */
	struct buf b;
	buf_init(&b);
	pkt(&b, BILI_OP_MESSAGE, BILI_VER_ZLIB, "\x78\x9c\xff\xff", 4);
	pkt_str(&b, BILI_OP_MESSAGE, "{\"cmd\":\"A\"}");
	sess_open(&s, NULL);
	ASSERT_EQ(feed(&s, buf_head(&b), b.len, 0, 0), 1);
	ASSERT_EQ(s.seen.skipped, 1);
	ASSERT_STR_EQ(s.seen.skip_why, "corrupt zlib batch");
	ASSERT_EQ(s.seen.rs.n, 1);
	sess_close(&s);
	buf_finish(&b);
}

int main(void)
{
	RUN(test_hello);
	RUN(test_heartbeat_goodbye);
	RUN(test_auth_reply);
	RUN(test_popularity);
	RUN(test_ack);
	RUN(test_capture_pure_live);
	RUN(test_capture_older);
	RUN(test_stream_splits);
	RUN(test_errors);
	TEST_DONE();
}
