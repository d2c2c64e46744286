/*
 * douyu: the Douyu platform. Packs client packets, reassembles server packets from a byte
 * stream cut anywhere, maps decoded STT messages to records and, as douyu_platform, runs the
 * per-connection protocol (login, joingroup after loginres, heartbeats, logout) for room.c.
 * Whole packets are parsed straight from the caller's bytes; only an incomplete tail is
 * copied, so the usual websocket message (one or more whole packets) is never copied.
 */
#include "douyu.h"

#include <errno.h>
#include <limits.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "text.h"

#define STR_(x) #x
#define XSTR(x) STR_(x)

/* ---- packing ---- */

static inline void put_u32le(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t get_u32le(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int douyu_pack(struct buf *out, uint16_t type, const char *body, size_t len)
{
	if (len > DOUYU_MAX_LEN - 9)
		return -EMSGSIZE;
	int rc = buf_reserve(out, DOUYU_HDR_LEN + len + 1);
	if (rc < 0)
		return rc;
	uint8_t *p = buf_head(out) + out->len;
	/* The length counts from the second length field to the NUL (douyu-protocol.md §2.1). */
	uint32_t l = (uint32_t)(8 + len + 1);
	put_u32le(p, l);
	put_u32le(p + 4, l);
	p[8] = (uint8_t)type;
	p[9] = (uint8_t)(type >> 8);
	p[10] = 0;
	p[11] = 0;
	if (len)
		memcpy(p + DOUYU_HDR_LEN, body, len);
	p[DOUYU_HDR_LEN + len] = 0;
	out->len += DOUYU_HDR_LEN + len + 1;
	return 0;
}

static int pack_text(struct buf *out, const char *body)
{
	return douyu_pack(out, DOUYU_TYPE_C2S, body, strlen(body));
}

int douyu_pack_login(struct buf *out, int64_t room_id)
{
	char body[64];
	snprintf(body, sizeof(body), "type@=loginreq/roomid@=%" PRId64 "/", room_id);
	return pack_text(out, body);
}

int douyu_pack_joingroup(struct buf *out, int64_t room_id)
{
	char body[80];
	/* gid -9999 is the "massive danmaku" group that gets all of the room's messages (§4.1). */
	snprintf(body, sizeof(body), "type@=joingroup/rid@=%" PRId64 "/gid@=-9999/", room_id);
	return pack_text(out, body);
}

int douyu_pack_heartbeat(struct buf *out)
{
	return pack_text(out, "type@=mrkl/");
}

int douyu_pack_logout(struct buf *out)
{
	return pack_text(out, "type@=logout/");
}

/* ---- reassembly ---- */

void douyu_reader_init(struct douyu_reader *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->pending);
}

void douyu_reader_finish(struct douyu_reader *r)
{
	buf_finish(&r->pending);
	douyu_reader_init(r);
}

/*
 * Total size of the packet whose first avail bytes are at p: 0 when fewer than the two
 * length fields are there, -EPROTO when they are inconsistent.
 */
static long long frame_size(const uint8_t *p, size_t avail)
{
	if (avail < 8)
		return 0;
	uint32_t l1 = get_u32le(p), l2 = get_u32le(p + 4);
	if (l1 != l2 || l1 < 9 || l1 > DOUYU_MAX_LEN)
		return -EPROTO;
	return (long long)l1 + 4;
}

/* One complete, well-framed packet of size bytes. */
static int deliver(struct douyu_reader *r, const uint8_t *p, size_t size, douyu_packet_cb cb,
		   void *user_data)
{
	unsigned type = (unsigned)p[8] | (unsigned)p[9] << 8;
	const char *body = (const char *)p + DOUYU_HDR_LEN;
	size_t blen = size - DOUYU_HDR_LEN - 1;
	/* A bad packet is skipped, not fatal: its length was sane, so the stream is still in step. */
	const char *why = NULL;
	if (type != DOUYU_TYPE_S2C)
		why = "message type is not 690";
	else if (p[size - 1] != 0)
		why = "no terminating NUL";
	else if (memchr(body, 0, blen))
		why = "NUL inside the body";
	if (why) {
		r->skipped++;
		r->skip_why = why;
		return 0;
	}
	r->packets++;
	return cb(user_data, body, blen);
}

int douyu_reader_feed(struct douyu_reader *r, const uint8_t *data, size_t len, douyu_packet_cb cb,
		      void *user_data)
{
	struct buf *pend = &r->pending;
	/* First finish the packet left over from the previous call, copying only what it lacks. */
	while (pend->len > 0) {
		long long size = frame_size(buf_head(pend), pend->len);
		if (size < 0) {
			buf_clear(pend);
			return (int)size;
		}
		size_t want = size > 0 ? (size_t)size : 8;
		if (pend->len < want) {
			size_t take = want - pend->len < len ? want - pend->len : len;
			int rc = buf_append(pend, data, take);
			if (rc < 0)
				return rc;
			data += take;
			len -= take;
			if (pend->len < want)
				return 0;
			if (size == 0)
				continue; /* the lengths are complete: check them, then take the rest */
		}
		int rc = deliver(r, buf_head(pend), pend->len, cb, user_data);
		buf_clear(pend);
		if (rc < 0)
			return rc;
	}
	/* Fast path: whole packets straight from the input. */
	while (len > 0) {
		long long size = frame_size(data, len);
		if (size < 0)
			return (int)size;
		if (size == 0 || (size_t)size > len)
			break;
		int rc = deliver(r, data, (size_t)size, cb, user_data);
		if (rc < 0)
			return rc;
		data += size;
		len -= (size_t)size;
	}
	if (len > 0)
		return buf_append(pend, data, len);
	return 0;
}

/* ---- records ---- */

/*
 * A field's value as stt_decode left it: NUL-terminated, n bytes long, with no NUL inside
 * (the reader skips bodies that hold one). p is NULL when the message lacks the field.
 */
struct val {
	const char *p;
	size_t n;
};

static inline bool val_is(struct val v, const char *s, size_t n)
{
	return v.p && v.n == n && memcmp(v.p, s, n) == 0;
}

#define VAL_IS(v, lit) val_is((v), (lit), sizeof(lit) - 1)

/* Strict decimal int64 (see text_int); an absent field is not a number. */
static bool parse_val(struct val v, int64_t *out)
{
	return v.p && text_int(v.p, v.n, INT64_MIN, INT64_MAX, out);
}

static inline bool key_is(const struct stt_pair *p, const char *k, size_t kl)
{
	return p->key_len == kl && memcmp(p->key, k, kl) == 0;
}

/* The top-level fields the platform looks at; the first occurrence of each wins. */
struct fields {
	struct val type, uid, nn, level, txt, cid, unk, sn, code, chatmsg, rid;
};

/* One pass over the pairs, like stt_get for each key but without rescanning. */
static void collect_fields(const struct stt *s, struct fields *f)
{
	memset(f, 0, sizeof(*f));
	for (size_t i = 0; i < s->n; i++) {
		const struct stt_pair *p = &s->pairs[i];
		struct val *slot = NULL;
		switch (p->key_len) {
		case 2:
			if (key_is(p, "nn", 2))
				slot = &f->nn;
			else if (key_is(p, "sn", 2))
				slot = &f->sn;
			break;
		case 3:
			if (key_is(p, "uid", 3))
				slot = &f->uid;
			else if (key_is(p, "rid", 3))
				slot = &f->rid;
			else if (key_is(p, "txt", 3))
				slot = &f->txt;
			else if (key_is(p, "cid", 3))
				slot = &f->cid;
			else if (key_is(p, "unk", 3))
				slot = &f->unk;
			break;
		case 4:
			if (key_is(p, "type", 4))
				slot = &f->type;
			else if (key_is(p, "code", 4))
				slot = &f->code;
			break;
		case 5:
			if (key_is(p, "level", 5))
				slot = &f->level;
			break;
		case 7:
			if (key_is(p, "chatmsg", 7))
				slot = &f->chatmsg;
			break;
		}
		if (slot && !slot->p)
			*slot = (struct val){p->val, p->val_len};
	}
}

/* douyu_record for fields already collected from s. */
static int make_record(const struct stt *s, const struct fields *f, struct stt *nested,
		       int64_t room_id, struct buf *json, struct record *rec)
{
	struct val type = f->type.p ? f->type : (struct val){"", 0};
	struct val uid = f->uid, nick = f->nn, level = f->level, text = {0}, cid = {0};
	bool error = false;
	if (VAL_IS(type, "chatmsg")) {
		text = f->txt;
		if (f->cid.n > 0)
			cid = f->cid;
	} else if (VAL_IS(type, "comm_chatmsg")) {
		/*
		 * Paid / voice chat and box notices: the sender and the text are in the nested
		 * `chatmsg` map (escaped once more on the wire, so decode it once more). A field
		 * the nested map lacks falls back to the top level (uid is in both in practice).
		 */
		struct fields nf;
		memset(&nf, 0, sizeof(nf));
		if (nested && f->chatmsg.p) {
			int rc = stt_decode(nested, f->chatmsg.p, f->chatmsg.n);
			if (rc == -ENOMEM)
				return rc;
			if (rc == 0)
				collect_fields(nested, &nf);
		}
		uid = nf.uid.p ? nf.uid : f->uid;
		nick = nf.nn.p ? nf.nn : f->nn;
		level = nf.level.p ? nf.level : f->level;
		text = nf.txt;
	} else if (VAL_IS(type, "anbc") || VAL_IS(type, "rnewbc")) {
		/* Noble bought / renewed, platform-wide: unk is the user; no user level. */
		nick = f->unk;
		level = (struct val){0};
	} else if (VAL_IS(type, "spbc")) {
		/* Big-gift broadcast: sn is the sender's name; it carries no sender uid. */
		uid = (struct val){0};
		nick = f->sn;
		level = (struct val){0};
	} else if (VAL_IS(type, "error")) {
		error = true;
	}
	/* Every other type: uid, nn and level when present at the top level. */
	rec->platform = "douyu";
	rec->decoded = NULL; /* Douyu has no binary payloads */
	rec->decoded_len = 0;
	rec->room_id = room_id;
	rec->has_uid = parse_val(uid, &rec->uid);
	if (!rec->has_uid)
		rec->uid = 0;
	rec->has_level = parse_val(level, &rec->level);
	if (!rec->has_level)
		rec->level = 0;

	buf_clear(json);
	size_t bad = 0;
	int rc = stt_to_json(s, json, &bad);
	if (rc == 0 && json->len > DOUYU_MAX_JSON) {
		/* Only escapes or replaced bytes get a packet (<= 1 MiB) this far; the feed that
		 * called us releases the buffer afterwards. */
		buf_clear(json);
		return -EMSGSIZE;
	}
	rec->replaced_utf8 = bad;
	size_t data_len = json->len;
	/* NUL-terminate for convenience; the terminator is not part of data_len. */
	if (rc == 0)
		rc = buf_append(json, "", 1);
	/*
	 * The columns must be valid UTF-8 as well (sqlite3 clients decode TEXT), so a string
	 * that is not gets a repaired copy after the JSON, as does an error's "error <code>".
	 * Offsets, not pointers: the buffer may move while it grows.
	 */
	struct val *col[4] = {&type, &nick, &text, &cid};
	size_t off[4] = {SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX};
	if (rc == 0 && error) {
		off[2] = json->len;
		rc = buf_append_str(json, f->code.p ? "error " : "error");
		if (rc == 0 && f->code.p)
			rc = text_utf8_repair(json, f->code.p, f->code.n, NULL);
		text.n = json->len - off[2];
		if (rc == 0)
			rc = buf_append(json, "", 1);
	}
	for (size_t i = 0; i < 4 && rc == 0; i++) {
		struct val *v = col[i];
		if (!v->p || off[i] != SIZE_MAX || text_utf8_valid_prefix(v->p, v->n) == v->n)
			continue;
		off[i] = json->len;
		rc = text_utf8_repair(json, v->p, v->n, NULL);
		v->n = json->len - off[i];
		if (rc == 0)
			rc = buf_append(json, "", 1);
	}
	if (rc < 0) {
		rec->type = "";
		rec->nick = rec->text = rec->cid = rec->data = NULL;
		rec->type_len = rec->nick_len = rec->text_len = rec->cid_len = rec->data_len = 0;
		return rc;
	}
	for (size_t i = 0; i < 4; i++)
		if (off[i] != SIZE_MAX)
			col[i]->p = (const char *)buf_head(json) + off[i];
	rec->type = type.p;
	rec->type_len = type.n;
	rec->nick = nick.p;
	rec->nick_len = nick.n;
	rec->text = text.p;
	rec->text_len = text.n;
	rec->cid = cid.p;
	rec->cid_len = cid.n;
	rec->data = (const char *)buf_head(json);
	rec->data_len = data_len;
	return 0;
}

int douyu_record(const struct stt *s, struct stt *nested, int64_t room_id, struct buf *json,
		 struct record *rec)
{
	struct fields f;
	collect_fields(s, &f);
	return make_record(s, &f, nested, room_id, json, rec);
}

/* Broadcasts carry rid=0: they reach every room and stay this room's. */
static bool other_room(struct val rid_val, int64_t room_id)
{
	int64_t rid;
	return parse_val(rid_val, &rid) && rid != 0 && rid != room_id;
}

bool douyu_other_room(const struct stt *s, int64_t room_id)
{
	const char *rid = stt_get(s, "rid");
	return other_room((struct val){rid, rid ? strlen(rid) : 0}, room_id);
}

/* ---- the platform ---- */

struct platform_session {
	struct douyu_reader reader;
	struct stt stt;
	struct stt nested; /* comm_chatmsg's nested chatmsg */
	struct buf json;
	int64_t room_id;
	bool joined;
	const struct platform_events *ev;
	void *user_data;
	/* Valid during feed only. */
	int64_t now_ms;
	int64_t session_id;
	struct buf *out;
};

static const char *const douyu_servers[] = {
	"wss://danmuproxy.douyu.com:8501/", "wss://danmuproxy.douyu.com:8502/",
	"wss://danmuproxy.douyu.com:8503/", "wss://danmuproxy.douyu.com:8504/",
	"wss://danmuproxy.douyu.com:8505/", "wss://danmuproxy.douyu.com:8506/",
	NULL,
};

static int session_create(int64_t room_id, const void *params, const struct platform_events *ev,
			  void *user_data, struct platform_session **out)
{
	(void)params;
	struct platform_session *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	douyu_reader_init(&s->reader);
	stt_init(&s->stt);
	stt_init(&s->nested);
	buf_init(&s->json);
	s->room_id = room_id;
	s->ev = ev;
	s->user_data = user_data;
	*out = s;
	return 0;
}

static void session_destroy(struct platform_session *s)
{
	if (!s)
		return;
	douyu_reader_finish(&s->reader);
	stt_finish(&s->stt);
	stt_finish(&s->nested);
	buf_finish(&s->json);
	free(s);
}

static int hello(struct platform_session *s, struct buf *out)
{
	return douyu_pack_login(out, s->room_id);
}

static int heartbeat(struct platform_session *s, struct buf *out)
{
	return douyu_pack_heartbeat(out);
}

static int goodbye(struct platform_session *s, struct buf *out)
{
	return douyu_pack_logout(out);
}

static int store(struct platform_session *s, const struct fields *f)
{
	struct record rec;
	rec.ts = s->now_ms;
	rec.session_id = s->session_id;
	int rc = make_record(&s->stt, f, &s->nested, s->room_id, &s->json, &rec);
	if (rc == -EMSGSIZE) {
		/* Too big to store, but well framed: skip it and keep the connection. */
		if (s->ev->on_skipped)
			s->ev->on_skipped(s->user_data, 1, "data over 2 MiB as JSON");
		return 0;
	}
	if (rc < 0)
		return rc;
	if (s->ev->on_record)
		s->ev->on_record(s->user_data, &rec);
	return 0;
}

/*
 * One server packet: decode it, answer the login, report errors, drop control traffic
 * (login answer, clock ticks, heartbeat echoes: noise in a chat archive), count other rooms'
 * messages, and hand everything else over as a record.
 */
static int on_packet(void *user_data, const char *body, size_t len)
{
	struct platform_session *s = user_data;
	int rc = stt_decode(&s->stt, body, len);
	if (rc == -E2BIG) {
		if (s->ev->on_skipped)
			s->ev->on_skipped(s->user_data, 1,
					  "more than " XSTR(STT_MAX_PAIRS) " fields");
		return 0;
	}
	if (rc < 0)
		return rc;
	struct fields f;
	collect_fields(&s->stt, &f);
	if (VAL_IS(f.type, "loginres")) {
		if (s->joined)
			return 0;
		/* joingroup only after loginres: that is the order the server expects (§4.1). */
		rc = douyu_pack_joingroup(s->out, s->room_id);
		if (rc < 0)
			return rc;
		s->joined = true;
		if (s->ev->on_joined)
			s->ev->on_joined(s->user_data);
		return 0;
	}
	if (VAL_IS(f.type, "pingreq") || VAL_IS(f.type, "mrkl") || VAL_IS(f.type, "keeplive"))
		return 0;
	if (VAL_IS(f.type, "error")) {
		int64_t code;
		if (!parse_val(f.code, &code))
			code = -1;
		/* code@=0 is the server saying "no error": keep it, keep the connection. */
		if (code == 0)
			return store(s, &f);
		/* The meanings douyu-protocol.md §4.5 gives; "" for the rest. */
		const char *text = code == 51    ? "data transfer error"
				   : code == 52  ? "server closed"
				   : code == 204 ? "room id wrong"
						 : "";
		if (s->ev->on_server_error)
			s->ev->on_server_error(s->user_data, code, text);
		return store(s, &f);
	}
	if (other_room(f.rid, s->room_id)) {
		if (s->ev->on_foreign)
			s->ev->on_foreign(s->user_data, f.type.p ? f.type.p : "");
		return 0;
	}
	return store(s, &f);
}

static int feed(struct platform_session *s, int64_t now_ms, int64_t session_id,
		const uint8_t *data, size_t len, struct buf *out)
{
	s->now_ms = now_ms;
	s->session_id = session_id;
	s->out = out;
	uint64_t skipped_before = s->reader.skipped, packets_before = s->reader.packets;
	int rc = douyu_reader_feed(&s->reader, data, len, on_packet, s);
	s->out = NULL;
	/*
	 * One huge packet must not pin its decode buffers (and up to DOUYU_MAX_JSON of JSON) for
	 * the rest of the connection. A trim that cannot allocate leaves its buffer as it was,
	 * which is harmless, so its error is ignored.
	 */
	(void)buf_trim(&s->reader.pending, DOUYU_KEEP_BUF);
	buf_clear(&s->json); /* records only borrow it during on_record */
	(void)buf_trim(&s->json, DOUYU_KEEP_BUF);
	stt_trim(&s->stt, DOUYU_KEEP_BUF);
	stt_trim(&s->nested, DOUYU_KEEP_BUF);
	/* Reported once per feed, not per packet: a flood of bad packets costs one event. */
	if (s->reader.skipped > skipped_before && s->ev->on_skipped)
		s->ev->on_skipped(s->user_data, s->reader.skipped - skipped_before,
				  s->reader.skip_why);
	if (rc < 0)
		return rc;
	uint64_t n = s->reader.packets - packets_before;
	return n > INT_MAX ? INT_MAX : (int)n;
}

const struct platform douyu_platform = {
	.name = "douyu",
	.heartbeat_ms = 45000,
	.default_servers = douyu_servers,
	.session_create = session_create,
	.session_destroy = session_destroy,
	.hello = hello,
	.feed = feed,
	.heartbeat = heartbeat,
	.goodbye = goodbye,
};
