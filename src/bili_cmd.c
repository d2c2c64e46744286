/*
 * bili_cmd: Bilibili commands to records (see bili_cmd.h for the mapping). The body is kept
 * as received; jansson parses it to find the typed columns, which are copied (NULs made
 * U+FFFD) into one buffer per record and addressed by offset until the record is complete,
 * since the buffer may move while it grows. A SEND_GIFT_V2 payload is read twice: first to
 * check the whole message and collect the sender (its fields may come after the gifts),
 * then to emit one record per gift, so a malformed gift list gives no partial records.
 */
#include "bili_cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <mbedtls/base64.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "bili_pb.h"
#include "text.h"

#define NO_COL SIZE_MAX

/* ---- jansson ---- */

void bili_json_seed(void)
{
	static bool seeded;
	if (seeded)
		return;
	seeded = true;
	uint32_t seed = 0;
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec * 2654435761u;
	}
	/* 0 would make jansson pick its own seed, from /dev/urandom. */
	json_object_seed(seed ? seed : 0x9e3779b9u);
}

void bili_cmd_init(struct bili_cmd *c)
{
	bili_json_seed();
	memset(c, 0, sizeof(*c));
	buf_init(&c->repaired);
	buf_init(&c->parse);
	buf_init(&c->pb);
	buf_init(&c->type);
	buf_init(&c->cols);
	buf_init(&c->decoded);
}

void bili_cmd_clear(struct bili_cmd *c)
{
	json_decref(c->root);
	c->root = NULL;
	c->body = NULL;
	c->body_len = 0;
	c->replaced = 0;
	struct buf *bufs[] = {&c->repaired, &c->parse, &c->pb, &c->type, &c->cols, &c->decoded};
	for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
		buf_clear(bufs[i]);
		(void)buf_trim(bufs[i], BUF_KEEP); /* harmless if it cannot allocate */
	}
}

void bili_cmd_finish(struct bili_cmd *c)
{
	bili_cmd_clear(c);
	buf_finish(&c->repaired);
	buf_finish(&c->parse);
	buf_finish(&c->pb);
	buf_finish(&c->type);
	buf_finish(&c->cols);
	buf_finish(&c->decoded);
}

static bool is_num_char(char ch)
{
	return (ch >= '0' && ch <= '9') || ch == '-' || ch == '+' || ch == '.' || ch == 'e' ||
	       ch == 'E';
}

/* Whether the number s[0..n) (writable: a NUL is put at s[n] for a moment) is one jansson
 * reads: an integer within int64, or a real that does not overflow a double. */
static bool number_fits(char *s, size_t n)
{
	bool real = false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '.' || s[i] == 'e' || s[i] == 'E')
			real = true;
	if (!real) {
		int64_t v;
		return text_int(s, n, INT64_MIN, INT64_MAX, &v);
	}
	char save = s[n];
	s[n] = 0;
	double d = strtod(s, NULL);
	s[n] = save;
	return isfinite(d);
}

/*
 * jansson refuses a number it cannot hold ("too big integer", "real number overflow"),
 * though JSON has no such limit. Copy the body to c->parse with each such number written
 * as null padded with spaces (same length; every such number is longer than "null"), so
 * that the rest of the message still parses. The stored body is not changed.
 */
static int neuter_numbers(struct bili_cmd *c, const char *p, size_t n)
{
	buf_clear(&c->parse);
	/* One spare byte for number_fits' terminator. */
	int rc = buf_reserve(&c->parse, n + 1);
	if (rc < 0)
		return rc;
	char *s = (char *)buf_head(&c->parse);
	memcpy(s, p, n);
	s[n] = 0;
	c->parse.len = n;
	size_t i = 0;
	while (i < n) {
		if (s[i] == '"') {
			for (i++; i < n && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
			i++;
			continue;
		}
		if (s[i] != '-' && (s[i] < '0' || s[i] > '9')) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < n && is_num_char(s[j]))
			j++;
		if (j - i >= 4 && !number_fits(s + i, j - i)) {
			memcpy(s + i, "null", 4);
			memset(s + i + 4, ' ', j - i - 4);
		}
		i = j;
	}
	return 0;
}

/*
 * jansson builds a tree of allocated values, about 100 bytes each: a hostile 1 MiB body of
 * `[{},{},...]` would cost ~70 MiB while it parses. Real commands hold a few hundred values,
 * so a body that holds more than BILI_CMD_MAX_VALUES (its '[', '{' and ',' outside strings
 * bound the count) is skipped before jansson sees it, which bounds the tree to a few MiB.
 */
static bool too_many_values(const char *p, size_t n)
{
	size_t count = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];
		if (ch == '"') {
			for (i++; i < n && p[i] != '"'; i++)
				if (p[i] == '\\')
					i++;
		} else if ((ch == ',' || ch == '[' || ch == '{') && ++count > BILI_CMD_MAX_VALUES) {
			return true;
		}
	}
	return false;
}

static json_t *load(const char *p, size_t n, json_error_t *err)
{
	/* \u0000 is legal JSON; the columns get it as U+FFFD. Any value is decoded, so that a
	 * bare string is told apart from broken JSON. */
	return json_loadb(p, n, JSON_ALLOW_NUL | JSON_DECODE_ANY, err);
}

int bili_cmd_parse(struct bili_cmd *c, const uint8_t *body, size_t len, const char **why)
{
	bili_cmd_clear(c);
	const char *p = (const char *)body;
	size_t n = len;
	if (text_utf8_valid_prefix(p, n) != n) {
		/* jansson refuses it whole: repair it and keep it, as the Douyu side does. */
		int rc = text_utf8_repair(&c->repaired, p, n, &c->replaced);
		if (rc < 0)
			return rc;
		p = (const char *)buf_head(&c->repaired);
		n = c->repaired.len;
	}
	c->body = p;
	c->body_len = n;
	if (too_many_values(p, n)) {
		*why = "command holds more than 65536 JSON values";
		return 1;
	}
	json_error_t err;
	json_t *root = load(p, n, &err);
	if (!root && json_error_code(&err) == json_error_numeric_overflow) {
		int rc = neuter_numbers(c, p, n);
		if (rc < 0)
			return rc;
		root = load((const char *)buf_head(&c->parse), n, &err);
	}
	if (!root) {
		if (json_error_code(&err) == json_error_out_of_memory)
			return -ENOMEM;
		*why = "command is not JSON";
		return 1;
	}
	c->root = root;
	if (!json_is_object(root)) {
		*why = "command is not a JSON object";
		return 1;
	}
	if (!json_is_string(json_object_get(root, "cmd"))) {
		*why = "command without a string cmd";
		return 1;
	}
	return 0;
}

/* ---- reading the parsed message ---- */

static json_t *jget(const json_t *o, const char *k)
{
	return json_is_object(o) ? json_object_get(o, k) : NULL;
}

static json_t *jat(const json_t *a, size_t i)
{
	return json_is_array(a) ? json_array_get(a, i) : NULL;
}

/* A JSON integer, or a string holding a strict decimal one. */
static bool jint(const json_t *v, int64_t *out)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return true;
	}
	if (json_is_string(v))
		return text_int(json_string_value(v), json_string_length(v), INT64_MIN, INT64_MAX,
		                out);
	return false;
}

static const char *jstr(const json_t *v, size_t *n)
{
	if (!json_is_string(v))
		return NULL;
	*n = json_string_length(v);
	return json_string_value(v);
}

/* A string that can stand in a C string: no NUL inside. */
static const char *jcstr(const json_t *v)
{
	size_t n = 0;
	const char *s = jstr(v, &n);
	return s && strlen(s) == n ? s : NULL;
}

bool bili_cmd_ack(const struct bili_cmd *c, const char **msg_id, const char **cmd,
                  int64_t *p_msg_type)
{
	const json_t *r = c->root;
	const json_t *t = jget(r, "p_msg_type");
	*msg_id = jcstr(jget(r, "msg_id"));
	*cmd = jcstr(jget(r, "cmd"));
	if (!json_is_true(jget(r, "p_is_ack")) || !*msg_id || !**msg_id || !*cmd || !**cmd ||
	    !json_is_integer(t))
		return false;
	*p_msg_type = json_integer_value(t);
	return true;
}

/* ---- building a record ---- */

struct out {
	size_t nick, text, cid; /* offsets into c->cols, or NO_COL */
	bool has_uid, has_level, decoded;
	int64_t uid, level;
	int rc; /* the first error (-ENOMEM) */
};

/* Append s[0..n) to b: valid UTF-8 (repaired if need be), each NUL as U+FFFD. */
static int put_utf8(struct buf *b, const char *s, size_t n)
{
	int rc = 0;
	while (rc == 0 && n > 0) {
		const char *z = memchr(s, 0, n);
		size_t k = z ? (size_t)(z - s) : n;
		rc = text_utf8_repair(b, s, k, NULL);
		if (rc == 0 && z)
			rc = buf_append(b, "\xef\xbf\xbd", 3);
		k += z ? 1 : 0;
		s += k;
		n -= k;
	}
	return rc;
}

static void put_text(struct bili_cmd *c, struct out *o, const char *s, size_t n)
{
	if (o->rc == 0)
		o->rc = put_utf8(&c->cols, s, n);
}

/* A column from s[0..n): its offset, or NO_COL when s is NULL. */
static size_t col(struct bili_cmd *c, struct out *o, const char *s, size_t n)
{
	if (!s || o->rc)
		return NO_COL;
	size_t off = c->cols.len;
	put_text(c, o, s, n);
	if (o->rc == 0)
		o->rc = buf_append(&c->cols, "", 1);
	return o->rc ? NO_COL : off;
}

static size_t col_json(struct bili_cmd *c, struct out *o, const json_t *v)
{
	size_t n = 0;
	const char *s = jstr(v, &n);
	return col(c, o, s, n);
}

/* One part of a key: a JSON value (an integer, or a non-empty string: else the key is not
 * made), or given bytes (may be empty). */
struct part {
	bool lit;
	const json_t *v;
	const char *s;
	size_t n;
};

#define PJ(val) ((struct part){.v = (val)})
#define PS(str, len) ((struct part){.lit = true, .s = (str), .n = (len)})

/* "<type>:<part>:<part>..." as a column, or NO_COL when a JSON part is missing. The type
 * (c->type) is a separate buffer: appending to the columns cannot move it. */
static size_t key(struct bili_cmd *c, struct out *o, const struct part *p, size_t np)
{
	if (o->rc)
		return NO_COL;
	size_t off = c->cols.len;
	o->rc = buf_append_str(&c->cols, (const char *)buf_head(&c->type));
	for (size_t i = 0; i < np && o->rc == 0; i++) {
		o->rc = buf_append(&c->cols, ":", 1);
		if (o->rc)
			break;
		size_t n = 0;
		const char *s;
		if (p[i].lit) {
			put_text(c, o, p[i].s, p[i].n);
		} else if (json_is_integer(p[i].v)) {
			o->rc =
			    buf_printf(&c->cols, "%" PRId64, (int64_t)json_integer_value(p[i].v));
		} else if ((s = jstr(p[i].v, &n)) && n > 0) {
			put_text(c, o, s, n);
		} else {
			c->cols.len = off;
			return NO_COL;
		}
	}
	if (o->rc == 0)
		o->rc = buf_append(&c->cols, "", 1);
	return o->rc ? NO_COL : off;
}

static size_t msg_id_key(struct bili_cmd *c, struct out *o)
{
	size_t n = 0;
	const char *id = jstr(jget(c->root, "msg_id"), &n);
	if (!id || n == 0)
		return NO_COL;
	struct part p[] = {PS("msg", 3), PS(id, n)};
	return key(c, o, p, 2);
}

static const char *col_ptr(const struct bili_cmd *c, size_t off)
{
	return off == NO_COL ? NULL : (const char *)buf_head(&c->cols) + off;
}

/* A column's length: it ends at its NUL, since put_utf8 writes U+FFFD for a NUL inside. */
static size_t col_len(const struct bili_cmd *c, size_t off)
{
	if (off == NO_COL)
		return 0;
	const char *p = col_ptr(c, off);
	const char *z = memchr(p, 0, c->cols.len - off);
	return z ? (size_t)(z - p) : c->cols.len - off;
}

struct sink {
	int64_t room_id, ts, session_id;
	bili_record_cb cb;
	void *user_data;
	int n;
};

static int emit(struct bili_cmd *c, const struct out *o, struct sink *k)
{
	if (o->rc)
		return o->rc;
	struct record rec = {
	    .platform = "bilibili",
	    .room_id = k->room_id,
	    .ts = k->ts,
	    .session_id = k->session_id,
	    .type = (const char *)buf_head(&c->type),
	    .type_len = c->type.len - 1, /* without its NUL */
	    .has_uid = o->has_uid,
	    .uid = o->has_uid ? o->uid : 0,
	    .nick = col_ptr(c, o->nick),
	    .nick_len = col_len(c, o->nick),
	    .has_level = o->has_level,
	    .level = o->has_level ? o->level : 0,
	    .text = col_ptr(c, o->text),
	    .text_len = col_len(c, o->text),
	    .cid = col_ptr(c, o->cid),
	    .cid_len = col_len(c, o->cid),
	    .data = c->body,
	    .data_len = c->body_len,
	    .decoded = o->decoded ? (const char *)buf_head(&c->decoded) : NULL,
	    .decoded_len = o->decoded ? c->decoded.len : 0,
	    .replaced_utf8 = c->replaced,
	};
	int rc = k->cb(k->user_data, &rec);
	if (rc < 0)
		return rc;
	k->n++;
	return 0;
}

/* ---- decoded JSON ---- */

/* A tiny writer for the decoded objects; the first error sticks. */
struct jw {
	struct buf *b;
	int rc;
	bool first;
};

static void jw_key(struct jw *w, const char *k)
{
	if (w->rc == 0 && !w->first)
		w->rc = buf_append(w->b, ",", 1);
	w->first = false;
	if (w->rc == 0)
		w->rc = buf_printf(w->b, "\"%s\":", k);
}

static void jw_int(struct jw *w, const char *k, int64_t v)
{
	jw_key(w, k);
	if (w->rc == 0)
		w->rc = buf_printf(w->b, "%" PRId64, v);
}

static void jw_uint(struct jw *w, const char *k, uint64_t v)
{
	jw_key(w, k);
	if (w->rc == 0)
		w->rc = buf_printf(w->b, "%" PRIu64, v);
}

static void jw_bool(struct jw *w, const char *k, bool v)
{
	jw_key(w, k);
	if (w->rc == 0)
		w->rc = buf_append_str(w->b, v ? "true" : "false");
}

/* Protobuf strings are bytes: text_json_string repairs what is not UTF-8. */
static void jw_str(struct jw *w, const char *k, const uint8_t *s, size_t n)
{
	jw_key(w, k);
	if (w->rc == 0)
		w->rc = text_json_string(w->b, (const char *)s, n, NULL);
}

static void jw_open(struct jw *w, const char *k)
{
	if (k)
		jw_key(w, k);
	if (w->rc == 0)
		w->rc = buf_append(w->b, "{", 1);
	w->first = true;
}

static void jw_close(struct jw *w)
{
	if (w->rc == 0)
		w->rc = buf_append(w->b, "}", 1);
	w->first = false;
}

/* ---- protobuf payloads ---- */

struct bytes {
	const uint8_t *p;
	size_t n;
	bool has;
};

static void take_bytes(struct bytes *b, const struct bili_pb_field *f)
{
	if (f->wire != BILI_PB_LEN)
		return; /* a field of another type than the schema's: not ours to read */
	b->p = f->data;
	b->n = f->len;
	b->has = true;
}

static void take_int(int64_t *v, const struct bili_pb_field *f)
{
	if (f->wire == BILI_PB_VARINT)
		*v = (int64_t)f->u; /* int64 fields: two's complement, as protobuf defines them */
}

/* Base64 data.pb into c->pb. 0 done; 1 missing, not base64 or empty (an emptied payload
 * says nothing, though protobuf would read it as all defaults); -ENOMEM. */
static int decode_pb(struct bili_cmd *c)
{
	size_t n = 0;
	const char *s = jstr(jget(jget(c->root, "data"), "pb"), &n);
	if (!s)
		return 1;
	const unsigned char *u = (const unsigned char *)s;
	size_t need = 0;
	int r = mbedtls_base64_decode(NULL, 0, &need, u, n);
	if (r == MBEDTLS_ERR_BASE64_INVALID_CHARACTER)
		return 1;
	buf_clear(&c->pb);
	if (buf_reserve(&c->pb, need + 1) < 0)
		return -ENOMEM;
	size_t got = 0;
	if (mbedtls_base64_decode(buf_head(&c->pb), need + 1, &got, u, n) != 0)
		return 1;
	c->pb.len = got;
	return got > 0 ? 0 : 1;
}

/* SendGiftBroadcast, top level (protocol §5.2). */
struct gift_sender {
	int64_t uid, guard_level;
	bool sw;
	struct bytes uname, face, medal, blind;
	size_t items;
};

/* A nested message whose fields are all well formed, or -EPROTO. */
static int check_msg(const struct bytes *b)
{
	return b->has ? bili_pb_check(b->p, b->n) : 0;
}

static int read_sender(const struct buf *pb, struct gift_sender *g)
{
	memset(g, 0, sizeof(*g));
	struct bili_pb r;
	struct bili_pb_field f;
	int rc;
	bili_pb_init(&r, buf_head(pb), pb->len);
	while ((rc = bili_pb_next(&r, &f)) > 0) {
		switch (f.num) {
		case 1:
			take_int(&g->uid, &f);
			break;
		case 2:
			take_bytes(&g->uname, &f);
			break;
		case 3:
			take_bytes(&g->face, &f);
			break;
		case 5:
			take_int(&g->guard_level, &f);
			break;
		case 8:
			take_bytes(&g->medal, &f);
			break;
		case 9:
			take_bytes(&g->blind, &f);
			break;
		case 10:
			if (f.wire != BILI_PB_LEN || bili_pb_check(f.data, f.len) < 0)
				return -EPROTO;
			g->items++;
			break;
		case 11:
			if (f.wire == BILI_PB_VARINT)
				g->sw = f.u != 0;
			break;
		}
	}
	if (rc < 0 || check_msg(&g->medal) < 0 || check_msg(&g->blind) < 0)
		return -EPROTO;
	return 0;
}

static void write_medal(struct jw *w, const struct bytes *b)
{
	int64_t target = 0, roomid = 0, level = 0;
	struct bytes name = {0};
	struct bili_pb r;
	struct bili_pb_field f;
	bili_pb_init(&r, b->p, b->n);
	while (bili_pb_next(&r, &f) > 0) {
		if (f.num == 1)
			take_int(&target, &f);
		else if (f.num == 4)
			take_int(&roomid, &f);
		else if (f.num == 5)
			take_int(&level, &f);
		else if (f.num == 6)
			take_bytes(&name, &f);
	}
	jw_open(w, "medal_info");
	jw_int(w, "target_id", target);
	jw_int(w, "anchor_roomid", roomid);
	jw_int(w, "level", level);
	jw_str(w, "name", name.p, name.n);
	jw_close(w);
}

static void write_blind(struct jw *w, const struct bytes *b)
{
	int64_t price = 0;
	struct bytes name = {0};
	struct bili_pb r;
	struct bili_pb_field f;
	bili_pb_init(&r, b->p, b->n);
	while (bili_pb_next(&r, &f) > 0) {
		if (f.num == 3)
			take_bytes(&name, &f);
		else if (f.num == 6)
			take_int(&price, &f);
	}
	jw_open(w, "blind_gift");
	jw_str(w, "original_gift_name", name.p, name.n);
	jw_int(w, "original_gift_price", price);
	jw_close(w);
}

/* One gift_list item. */
struct gift_item {
	int64_t gift_id, num, gift_type, price, total_coin, timestamp;
	struct bytes name, coin_type, tid, rnd, action;
};

static void read_item(const struct bili_pb_field *item, struct gift_item *it)
{
	memset(it, 0, sizeof(*it));
	struct bili_pb r;
	struct bili_pb_field f;
	bili_pb_init(&r, item->data, item->len);
	while (bili_pb_next(&r, &f) > 0) { /* checked in read_sender */
		switch (f.num) {
		case 1:
			take_int(&it->gift_id, &f);
			break;
		case 2:
			take_bytes(&it->name, &f);
			break;
		case 3:
			take_int(&it->num, &f);
			break;
		case 4:
			take_int(&it->gift_type, &f);
			break;
		case 5:
			take_int(&it->price, &f);
			break;
		case 7:
			take_int(&it->total_coin, &f);
			break;
		case 8:
			take_bytes(&it->coin_type, &f);
			break;
		case 9:
			take_bytes(&it->tid, &f);
			break;
		case 10:
			take_int(&it->timestamp, &f);
			break;
		case 12:
			take_bytes(&it->rnd, &f);
			break;
		case 18:
			take_bytes(&it->action, &f);
			break;
		}
	}
}

/* The decoded object of gift index (it NULL: the sender alone, the list being empty). */
static int write_gift(struct bili_cmd *c, const struct gift_sender *g, const struct gift_item *it,
                      size_t index)
{
	struct jw w = {.b = &c->decoded};
	buf_clear(&c->decoded);
	jw_open(&w, NULL);
	jw_int(&w, "uid", g->uid);
	jw_str(&w, "uname", g->uname.p, g->uname.n);
	jw_str(&w, "face", g->face.p, g->face.n);
	jw_int(&w, "guard_level", g->guard_level);
	if (g->medal.has)
		write_medal(&w, &g->medal);
	if (g->blind.has)
		write_blind(&w, &g->blind);
	jw_bool(&w, "switch", g->sw);
	if (it)
		jw_uint(&w, "index", index);
	jw_uint(&w, "items", g->items);
	if (it) {
		jw_int(&w, "gift_id", it->gift_id);
		jw_str(&w, "gift_name", it->name.p, it->name.n);
		jw_int(&w, "num", it->num);
		jw_int(&w, "gift_type", it->gift_type);
		jw_int(&w, "price", it->price);
		jw_int(&w, "total_coin", it->total_coin);
		jw_str(&w, "coin_type", it->coin_type.p, it->coin_type.n);
		jw_str(&w, "tid", it->tid.p, it->tid.n);
		jw_int(&w, "timestamp", it->timestamp);
		jw_str(&w, "rnd", it->rnd.p, it->rnd.n);
		jw_str(&w, "action", it->action.p, it->action.n);
	}
	jw_close(&w);
	return w.rc;
}

/* The key of gift index: its tid, else the message's msg_id, with the index. */
static size_t gift_key(struct bili_cmd *c, struct out *o, const struct gift_item *it, size_t index)
{
	char ix[24];
	int ixn = snprintf(ix, sizeof(ix), "%zu", index);
	if (it->tid.n > 0) {
		struct part p[] = {PS((const char *)it->tid.p, it->tid.n), PS(ix, (size_t)ixn)};
		return key(c, o, p, 2);
	}
	size_t n = 0;
	const char *id = jstr(jget(c->root, "msg_id"), &n);
	if (!id || n == 0)
		return NO_COL;
	struct part p[] = {PS("msg", 3), PS(id, n), PS(ix, (size_t)ixn)};
	return key(c, o, p, 3);
}

/* SEND_GIFT_V2: one record per gift. Returns 1 when data.pb is unusable (the caller then
 * stores the message plain), else 0 or a negative error. */
static int send_gift_v2(struct bili_cmd *c, struct out *o, struct sink *k)
{
	int rc = decode_pb(c);
	struct gift_sender g;
	if (rc != 0)
		return rc;
	if (read_sender(&c->pb, &g) < 0)
		return 1;
	o->has_uid = true;
	o->uid = g.uid;
	o->nick = g.uname.has ? col(c, o, (const char *)g.uname.p, g.uname.n) : NO_COL;
	o->decoded = true;
	if (o->rc)
		return o->rc;
	if (g.items == 0) {
		o->cid = msg_id_key(c, o);
		rc = write_gift(c, &g, NULL, 0);
		return rc < 0 ? rc : emit(c, o, k);
	}
	size_t mark = c->cols.len, index = 0;
	struct bili_pb r;
	struct bili_pb_field f;
	bili_pb_init(&r, buf_head(&c->pb), c->pb.len);
	while (index < BILI_CMD_MAX_GIFTS && bili_pb_next(&r, &f) > 0) {
		if (f.num != 10)
			continue;
		struct gift_item it;
		read_item(&f, &it);
		c->cols.len = mark; /* the previous gift's key */
		o->cid = gift_key(c, o, &it, index);
		rc = write_gift(c, &g, &it, index);
		if (rc == 0)
			rc = emit(c, o, k);
		if (rc < 0)
			return rc;
		index++;
	}
	return 0;
}

/* InteractWordV2 (protocol §5.4). */
struct interact {
	int64_t uid, msg_type, room_id, timestamp, score, trigger_time, guard_level;
	struct bytes uname, uinfo;
	/* uinfo */
	int64_t u_uid, wealth_level;
	struct bytes base, u_uname, face, wealth;
};

static int read_interact(const struct buf *pb, struct interact *x)
{
	memset(x, 0, sizeof(*x));
	struct bili_pb r;
	struct bili_pb_field f;
	int rc;
	bili_pb_init(&r, buf_head(pb), pb->len);
	while ((rc = bili_pb_next(&r, &f)) > 0) {
		int64_t *v = f.num == 1    ? &x->uid
		             : f.num == 5  ? &x->msg_type
		             : f.num == 6  ? &x->room_id
		             : f.num == 7  ? &x->timestamp
		             : f.num == 8  ? &x->score
		             : f.num == 15 ? &x->trigger_time
		             : f.num == 16 ? &x->guard_level
		                           : NULL;
		if (v)
			take_int(v, &f);
		else if (f.num == 2)
			take_bytes(&x->uname, &f);
		else if (f.num == 22)
			take_bytes(&x->uinfo, &f);
	}
	if (rc < 0)
		return rc;
	if (!x->uinfo.has)
		return 0;
	bili_pb_init(&r, x->uinfo.p, x->uinfo.n);
	while ((rc = bili_pb_next(&r, &f)) > 0) {
		if (f.num == 1)
			take_int(&x->u_uid, &f);
		else if (f.num == 2)
			take_bytes(&x->base, &f);
		else if (f.num == 4)
			take_bytes(&x->wealth, &f);
	}
	if (rc < 0)
		return rc;
	bili_pb_init(&r, x->base.p, x->base.n);
	while ((rc = bili_pb_next(&r, &f)) > 0) {
		if (f.num == 1)
			take_bytes(&x->u_uname, &f);
		else if (f.num == 2)
			take_bytes(&x->face, &f);
	}
	if (rc < 0)
		return rc;
	bili_pb_init(&r, x->wealth.p, x->wealth.n);
	while ((rc = bili_pb_next(&r, &f)) > 0)
		if (f.num == 1)
			take_int(&x->wealth_level, &f);
	return rc;
}

static int write_interact(struct bili_cmd *c, const struct interact *x)
{
	struct jw w = {.b = &c->decoded};
	buf_clear(&c->decoded);
	jw_open(&w, NULL);
	jw_int(&w, "uid", x->uid);
	jw_str(&w, "uname", x->uname.p, x->uname.n);
	jw_int(&w, "msg_type", x->msg_type);
	jw_int(&w, "room_id", x->room_id);
	jw_int(&w, "timestamp", x->timestamp);
	jw_int(&w, "score", x->score);
	jw_int(&w, "trigger_time", x->trigger_time);
	jw_int(&w, "guard_level", x->guard_level);
	if (x->uinfo.has) {
		jw_open(&w, "uinfo");
		jw_int(&w, "uid", x->u_uid);
		if (x->base.has) {
			jw_open(&w, "base");
			jw_str(&w, "uname", x->u_uname.p, x->u_uname.n);
			jw_str(&w, "face", x->face.p, x->face.n);
			jw_close(&w);
		}
		if (x->wealth.has) {
			jw_open(&w, "wealth");
			jw_int(&w, "level", x->wealth_level);
			jw_close(&w);
		}
		jw_close(&w);
	}
	jw_close(&w);
	return w.rc;
}

/* INTERACT_WORD_V2. Returns 1 when data.pb is unusable, else 0 or a negative error. */
static int interact_word_v2(struct bili_cmd *c, struct out *o, struct sink *k)
{
	struct interact x;
	int rc = decode_pb(c);
	if (rc != 0)
		return rc;
	if (read_interact(&c->pb, &x) < 0)
		return 1;
	o->has_uid = true;
	o->uid = x.uid;
	const struct bytes *name = x.uname.has ? &x.uname : x.u_uname.has ? &x.u_uname : NULL;
	o->nick = name ? col(c, o, (const char *)name->p, name->n) : NO_COL;
	if (x.trigger_time != 0) {
		char uid[24], tt[24];
		int un = snprintf(uid, sizeof(uid), "%" PRId64, x.uid);
		int tn = snprintf(tt, sizeof(tt), "%" PRId64, x.trigger_time);
		struct part p[] = {PS(uid, (size_t)un), PS(tt, (size_t)tn)};
		o->cid = key(c, o, p, 2);
	}
	if (o->cid == NO_COL)
		o->cid = msg_id_key(c, o);
	o->decoded = true;
	rc = write_interact(c, &x);
	return rc < 0 ? rc : emit(c, o, k);
}

/* ---- JSON commands ---- */

static void sender(struct bili_cmd *c, struct out *o, const json_t *uid, const json_t *nick)
{
	o->has_uid = jint(uid, &o->uid);
	o->nick = col_json(c, o, nick);
}

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

/* id_str from info[0][15].extra, a JSON object inside a string; -ENOMEM or 0. */
static int danmu_id(struct bili_cmd *c, struct out *o, const json_t *meta)
{
	size_t n = 0;
	const char *extra = jstr(jget(jat(meta, 15), "extra"), &n);
	if (!extra)
		return 0;
	json_error_t err;
	json_t *x = json_loadb(extra, n, JSON_ALLOW_NUL, &err);
	if (!x)
		return json_error_code(&err) == json_error_out_of_memory ? -ENOMEM : 0;
	size_t idn = 0;
	const char *id = jstr(jget(x, "id_str"), &idn);
	if (id && idn > 0) {
		struct part p[] = {PS(id, idn)};
		o->cid = key(c, o, p, 1);
	}
	json_decref(x);
	return 0;
}

static int danmu_msg(struct bili_cmd *c, struct out *o)
{
	const json_t *info = jget(c->root, "info");
	const json_t *meta = jat(info, 0), *user = jat(info, 2);
	sender(c, o, jat(user, 0), jat(user, 1));
	o->has_level = jint(jat(jat(info, 4), 0), &o->level);
	o->text = col_json(c, o, jat(info, 1));
	int rc = danmu_id(c, o, meta);
	if (rc < 0)
		return rc;
	if (o->cid == NO_COL)
		o->cid = msg_id_key(c, o);
	size_t tn = 0, hn = 0;
	const char *text = jstr(jat(info, 1), &tn);
	const char *hash = jstr(jat(meta, 7), &hn);
	if (o->cid == NO_COL && text) {
		/* Send time, sender hash (may be missing: then empty) and a hash of the text. */
		char h[17];
		snprintf(h, sizeof(h), "%016" PRIx64, fnv1a(text, tn));
		struct part p[] = {PJ(jat(meta, 4)), PS(hash, hash ? hn : 0), PS(h, 16)};
		o->cid = key(c, o, p, 3);
	}
	return 0;
}

static bool is(const char *type, const char *name)
{
	return strcmp(type, name) == 0;
}

/* The typed columns of a JSON command; its own key, if any, in o->cid. */
static int json_command(struct bili_cmd *c, struct out *o)
{
	const char *type = (const char *)buf_head(&c->type);
	const json_t *r = c->root, *d = jget(r, "data");
	if (is(type, "DANMU_MSG"))
		return danmu_msg(c, o);
	if (is(type, "SEND_GIFT")) {
		sender(c, o, jget(d, "uid"), jget(d, "uname"));
		struct part p[] = {PJ(jget(d, "tid"))}, q[] = {PJ(jget(d, "rnd"))};
		o->cid = key(c, o, p, 1);
		if (o->cid == NO_COL)
			o->cid = key(c, o, q, 1);
	} else if (is(type, "COMBO_SEND")) {
		sender(c, o, jget(d, "uid"), jget(d, "uname"));
		struct part p[] = {PJ(jget(d, "batch_combo_id")), PJ(jget(d, "batch_combo_num"))};
		o->cid = key(c, o, p, 2);
	} else if (is(type, "SUPER_CHAT_MESSAGE") || is(type, "SUPER_CHAT_MESSAGE_JPN")) {
		const json_t *ui = jget(d, "user_info"), *text = jget(d, "message");
		sender(c, o, jget(d, "uid"), jget(ui, "uname"));
		o->has_level = jint(jget(ui, "user_level"), &o->level);
		size_t n = 0;
		if (is(type, "SUPER_CHAT_MESSAGE_JPN") && jstr(jget(d, "message_jpn"), &n) && n > 0)
			text = jget(d, "message_jpn");
		o->text = col_json(c, o, text);
		struct part p[] = {PJ(jget(d, "id"))};
		o->cid = key(c, o, p, 1);
	} else if (is(type, "GUARD_BUY")) {
		sender(c, o, jget(d, "uid"), jget(d, "username"));
		struct part p[] = {PJ(jget(d, "uid")), PJ(jget(d, "start_time")),
		                   PJ(jget(d, "guard_level")), PJ(jget(d, "num"))};
		o->cid = key(c, o, p, 4);
	} else if (is(type, "USER_TOAST_MSG")) {
		sender(c, o, jget(d, "uid"), jget(d, "username"));
		o->text = col_json(c, o, jget(d, "toast_msg"));
		struct part p[] = {PJ(jget(d, "payflow_id"))};
		o->cid = key(c, o, p, 1);
	} else if (is(type, "INTERACT_WORD")) {
		sender(c, o, jget(d, "uid"), jget(d, "uname"));
		struct part p[] = {PJ(jget(d, "uid")), PJ(jget(d, "trigger_time"))};
		o->cid = key(c, o, p, 2);
	} else if (is(type, "LIVE")) {
		const json_t *lk = jget(r, "live_key") ? jget(r, "live_key") : jget(d, "live_key");
		bool started = jget(r, "live_time") || jget(d, "live_time");
		struct part p[] = {PJ(lk), PS(started ? "1" : "0", 1)};
		o->cid = key(c, o, p, 2);
	} else if (is(type, "ROOM_CHANGE")) {
		o->text = col_json(c, o, jget(d, "title"));
	} else if (is(type, "ROOM_BLOCK_MSG")) {
		/* data.uid is a number, the top-level uid a string: prefer data. */
		const json_t *uid = jget(d, "uid") ? jget(d, "uid") : jget(r, "uid");
		const json_t *nick = jget(d, "uname") ? jget(d, "uname") : jget(r, "uname");
		sender(c, o, uid, nick);
	} else if (is(type, "WARNING") || is(type, "CUT_OFF")) {
		o->text = col_json(c, o, jget(r, "msg"));
	} else if (is(type, "PREPARING") || is(type, "WATCHED_CHANGE") ||
	           is(type, "ONLINE_RANK_COUNT") || is(type, "SUPER_CHAT_MESSAGE_DELETE") ||
	           is(type, "STOP_LIVE_ROOM_LIST") || is(type, "NOTICE_MSG")) {
		/* State snapshots and other rooms' news: no sender, no text. */
	} else {
		const json_t *uid = jget(d, "uid") ? jget(d, "uid") : jget(r, "uid");
		const json_t *nick = jget(d, "uname") ? jget(d, "uname") : jget(r, "uname");
		sender(c, o, uid, nick);
	}
	return 0;
}

int bili_cmd_records(struct bili_cmd *c, int64_t room_id, int64_t ts, int64_t session_id,
                     bili_record_cb cb, void *user_data)
{
	struct sink k = {.room_id = room_id,
	                 .ts = ts,
	                 .session_id = session_id,
	                 .cb = cb,
	                 .user_data = user_data};
	struct out o = {.nick = NO_COL, .text = NO_COL, .cid = NO_COL};
	buf_clear(&c->type);
	buf_clear(&c->cols);
	size_t n = 0;
	const char *cmd = jstr(json_object_get(c->root, "cmd"), &n);
	const char *colon = memchr(cmd, ':', n);
	int rc = put_utf8(&c->type, cmd, colon ? (size_t)(colon - cmd) : n);
	if (rc == 0)
		rc = buf_append(&c->type, "", 1);
	if (rc < 0)
		return rc;
	/* NULs in the cmd became U+FFFD, so such a type matches no name below. */
	const char *type = (const char *)buf_head(&c->type);
	if (is(type, "SEND_GIFT_V2") || is(type, "INTERACT_WORD_V2")) {
		rc = is(type, "SEND_GIFT_V2") ? send_gift_v2(c, &o, &k)
		                              : interact_word_v2(c, &o, &k);
		if (rc == 1) {
			/* data.pb missing or undecodable: the raw message alone. */
			struct out plain = {.nick = NO_COL, .text = NO_COL, .cid = NO_COL};
			plain.cid = msg_id_key(c, &plain);
			rc = emit(c, &plain, &k);
		}
		return rc < 0 ? rc : k.n;
	}
	rc = json_command(c, &o);
	if (rc == 0 && o.cid == NO_COL)
		o.cid = msg_id_key(c, &o);
	if (rc == 0)
		rc = emit(c, &o, &k);
	return rc < 0 ? rc : k.n;
}
