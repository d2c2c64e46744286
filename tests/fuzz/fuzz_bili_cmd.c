/*
 * fuzz_bili_cmd: libFuzzer target for Bilibili commands to records, and for the session
 * that drives it. Byte 0 picks the mode, the rest is the input:
 *   0: a command body (JSON) through bili_cmd_parse / _ack / _records;
 *   1: protobuf bytes, sent as the base64 data.pb of a SEND_GIFT_V2 (with a msg_id);
 *   2: the same as an INTERACT_WORD_V2;
 *   3: the split-stream layout of fuzz.h: a server byte stream fed to one session whole and
 *      to another in pieces.
 * Every record: platform "bilibili"; type, nick, text and cid valid UTF-8 (C strings, so
 * NUL-free); a cid starts with "<type>:"; data valid UTF-8, and the input itself when
 * nothing was repaired; decoded, when there, a JSON object that jansson reads back; no uid
 * or level value without its flag; at most BILI_CMD_MAX_GIFTS records per command. An ACK
 * has a non-empty msg_id and cmd. Modes 0-2 map twice and must give the same records; mode
 * 3 must give the same records, events and replies however the stream is cut. Violations
 * trap.
 */
#include "bili_cmd.h"
#include "bilibili.h"
#include "fuzz.h"
#include "text.h"

#include <errno.h>
#include <jansson.h>
#include <mbedtls/base64.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEEN 4096

/* A hash of every record, in order. */
struct seen {
	size_t n;
	uint64_t hash[MAX_SEEN];
	const uint8_t *input; /* mode 0: the body given */
	size_t input_len;
	size_t per_call;
};

static bool utf8(const char *s, size_t n)
{
	return text_utf8_valid_prefix(s, n) == n;
}

static bool col_ok(const char *s)
{
	return !s || utf8(s, strlen(s));
}

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h * 31 + n;
}

static uint64_t mix_str(uint64_t h, const char *s)
{
	return s ? mix(h, s, strlen(s) + 1) : mix(h, "", 0);
}

static void check_record(struct seen *s, const struct record *rec)
{
	check(rec->platform && strcmp(rec->platform, "bilibili") == 0);
	check(rec->type && col_ok(rec->type) && col_ok(rec->nick) && col_ok(rec->text) &&
	      col_ok(rec->cid));
	if (rec->cid) {
		size_t tl = strlen(rec->type);
		check(strncmp(rec->cid, rec->type, tl) == 0 && rec->cid[tl] == ':');
	}
	check(rec->data && utf8(rec->data, rec->data_len));
	if (s->input && rec->replaced_utf8 == 0 && strcmp(rec->type, "popularity") != 0)
		check(rec->data_len == s->input_len &&
		      memcmp(rec->data, s->input, s->input_len) == 0);
	if (rec->decoded) {
		check(utf8(rec->decoded, rec->decoded_len));
		json_error_t err;
		json_t *d = json_loadb(rec->decoded, rec->decoded_len, JSON_ALLOW_NUL, &err);
		check(json_is_object(d));
		json_decref(d);
	}
	check(rec->has_uid || rec->uid == 0);
	check(rec->has_level || rec->level == 0);
	uint64_t h = 14695981039346656037ull;
	h = mix_str(h, rec->type);
	h = mix_str(h, rec->nick);
	h = mix_str(h, rec->text);
	h = mix_str(h, rec->cid);
	h = mix(h, rec->data, rec->data_len);
	h = rec->decoded ? mix(h, rec->decoded, rec->decoded_len) : mix(h, "-", 1);
	h = mix(h, &rec->uid, sizeof(rec->uid)) ^ (uint64_t)rec->has_uid << 1;
	h = mix(h, &rec->level, sizeof(rec->level)) ^ (uint64_t)rec->has_level << 2;
	h = mix(h, &rec->replaced_utf8, sizeof(rec->replaced_utf8));
	h = mix(h, &rec->session_id, sizeof(rec->session_id));
	if (s->n < MAX_SEEN)
		s->hash[s->n] = h;
	s->n++;
	s->per_call++;
}

static int on_rec(void *user_data, const struct record *rec)
{
	check_record(user_data, rec);
	return 0;
}

static void map_once(struct bili_cmd *c, const uint8_t *body, size_t len, struct seen *s)
{
	const char *why = NULL;
	int rc = bili_cmd_parse(c, body, len, &why);
	check(rc == 0 || rc == 1 || rc == -ENOMEM);
	if (rc == 1)
		check(why && *why);
	if (rc == 0) {
		const char *id, *cmd;
		int64_t t;
		if (bili_cmd_ack(c, &id, &cmd, &t))
			check(id && *id && cmd && *cmd);
		s->per_call = 0;
		int n = bili_cmd_records(c, 7, 8, 9, on_rec, s);
		check(n >= 0 || n == -ENOMEM);
		if (n >= 0)
			check((size_t)n == s->per_call && n >= 1 && n <= BILI_CMD_MAX_GIFTS);
	}
	bili_cmd_clear(c);
	check(c->cols.cap <= BUF_KEEP && c->repaired.cap <= BUF_KEEP && c->pb.cap <= BUF_KEEP);
}

static void map_body(const uint8_t *body, size_t len)
{
	static struct seen a, b;
	a.n = b.n = 0;
	a.input = b.input = body;
	a.input_len = b.input_len = len;
	struct bili_cmd c;
	bili_cmd_init(&c);
	map_once(&c, body, len, &a);
	map_once(&c, body, len, &b); /* the state is reused: nothing leaks from one to the next */
	check(a.n == b.n);
	size_t m = a.n < MAX_SEEN ? a.n : MAX_SEEN;
	check(memcmp(a.hash, b.hash, m * sizeof(uint64_t)) == 0);
	bili_cmd_finish(&c);
}

static void map_pb(const char *cmd, const uint8_t *pb, size_t len)
{
	size_t need = 0;
	mbedtls_base64_encode(NULL, 0, &need, pb, len);
	size_t cap = need + strlen(cmd) + 96;
	char *body = malloc(cap);
	if (!body)
		return;
	int k = snprintf(body, cap, "{\"cmd\":\"%s\",\"msg_id\":\"1:2\",\"data\":{\"pb\":\"", cmd);
	size_t got = 0;
	check(mbedtls_base64_encode((unsigned char *)body + k, cap - (size_t)k, &got, pb, len) ==
	      0);
	size_t n = (size_t)k + got;
	memcpy(body + n, "\"}}", 3);
	map_body((const uint8_t *)body, n + 3);
	free(body);
}

/* ---- mode 3: a session ---- */

struct sess_seen {
	struct seen s;
	int joined, errors;
	uint64_t skipped;
};

static void ev_joined(void *ud)
{
	((struct sess_seen *)ud)->joined++;
}

static void ev_record(void *ud, const struct record *rec)
{
	struct sess_seen *ss = ud;
	check(rec->ts == 1000 && rec->room_id == 5050);
	check_record(&ss->s, rec);
}

static void ev_foreign(void *ud, const char *type)
{
	(void)ud;
	(void)type;
	check(false); /* Bilibili has no other room's messages on the socket */
}

static void ev_error(void *ud, int64_t code, const char *text)
{
	check(code != 0 && text && *text);
	((struct sess_seen *)ud)->errors++;
}

static void ev_skipped(void *ud, uint64_t n, const char *why)
{
	check(n > 0 && why && *why);
	((struct sess_seen *)ud)->skipped += n;
}

static const struct platform_events events = {
    .on_joined = ev_joined,
    .on_record = ev_record,
    .on_foreign = ev_foreign,
    .on_server_error = ev_error,
    .on_skipped = ev_skipped,
};

static void session(const uint8_t *data, size_t size)
{
	struct fuzz_split sp;
	if (!fuzz_split_init(&sp, data, size))
		return;
	static struct sess_seen whole, split;
	memset(&whole, 0, sizeof(whole));
	memset(&split, 0, sizeof(split));
	struct platform_session *a, *b;
	check(bili_session_create(5050, NULL, &events, &whole, &a) == 0);
	check(bili_session_create(5050, NULL, &events, &split, &b) == 0);
	struct buf oa, ob;
	buf_init(&oa);
	buf_init(&ob);
	int ra = bili_feed(a, 1000, 9, sp.stream, sp.len, &oa);
	check(ra >= 0 || ra == -EPROTO);
	int rb = 0;
	size_t off = 0, total = 0;
	while (off < sp.len && rb >= 0) {
		size_t n = fuzz_split_next(&sp, off);
		rb = bili_feed(b, 1000, 9, sp.stream + off, n, &ob);
		if (rb >= 0)
			total += (size_t)rb;
		off += n;
	}
	check((ra < 0) == (rb < 0));
	if (ra >= 0)
		check(total == (size_t)ra);
	check(whole.joined <= 1 && whole.joined == split.joined && whole.errors == split.errors);
	check(whole.skipped == split.skipped && whole.s.n == split.s.n);
	size_t m = whole.s.n < MAX_SEEN ? whole.s.n : MAX_SEEN;
	check(memcmp(whole.s.hash, split.s.hash, m * sizeof(uint64_t)) == 0);
	check(oa.len == ob.len &&
	      (oa.len == 0 || memcmp(buf_head(&oa), buf_head(&ob), oa.len) == 0));
	buf_finish(&oa);
	buf_finish(&ob);
	bili_session_destroy(a);
	bili_session_destroy(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] & 3) {
	case 0:
		map_body(data + 1, size - 1);
		break;
	case 1:
		map_pb("SEND_GIFT_V2", data + 1, size - 1);
		break;
	case 2:
		map_pb("INTERACT_WORD_V2", data + 1, size - 1);
		break;
	default:
		session(data + 1, size - 1);
		break;
	}
	return 0;
}
