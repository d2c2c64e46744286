/*
 * fuzz_export: libFuzzer target for the exporters' escaping (export_xml_row, export_json_row).
 * Input: byte 0 picks the row type (chatmsg, dgb, other) and which fields are NULL, bytes 1-8
 * the numbers (the top bits of which pick a Bilibili row: DANMU_MSG, SEND_GIFT, SEND_GIFT_V2,
 * SUPER_CHAT_MESSAGE, GUARD_BUY or another cmd); the rest is split at NUL bytes into nick,
 * text, data, col, gift name, gift id, gift count, cid, mode, size, colour, price, duration,
 * guard level and decoded, each arbitrary bytes (bad UTF-8, controls, markup). data and
 * decoded go through SQLite's json_valid()/json() exactly as the NDJSON query hands them over.
 *
 * Checked with __builtin_trap():
 * - NDJSON: exactly one line, valid UTF-8, no control character but the final newline, and the
 *   line is one JSON object by a strict RFC 8259 checker written here.
 * - XML: one element (<d p=".." user="..">text</d>, <gift ts giftname giftcount uid user/>,
 *   <sc ts user uid price time>text</sc> or <guard ts user uid level count/>) and a newline;
 *   valid UTF-8 of XML 1.0 Chars only; no raw '<' or '&' outside markup (every '&' starts a
 *   known entity or a character reference); no raw '"', '<', tab, CR or LF inside an attribute
 *   value, no raw CR in text; p has 8 fields of digits, '.', '-' (and letters in the last, a
 *   Bilibili id_str); the naive "<d " / "<gift " / "<sc " / "<guard " scan finds exactly that
 *   element; and user and text, unescaped, equal the input with the characters XML forbids or
 *   discourages and the bytes that are not UTF-8 removed.
 */
#include "export.h"
#include "fuzz.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "text.h"

/* ---- a strict JSON checker (RFC 8259), independent of the exporter */

struct jp {
	const unsigned char *p, *end;
	int depth;
};

static void ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static bool lit(struct jp *j, const char *s)
{
	size_t n = strlen(s);
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, s, n) != 0)
		return false;
	j->p += n;
	return true;
}

static bool digits1(struct jp *j)
{
	if (j->p >= j->end || *j->p < '0' || *j->p > '9')
		return false;
	while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
		j->p++;
	return true;
}

static bool number(struct jp *j)
{
	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (!digits1(j))
		return false;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (!digits1(j))
			return false;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (!digits1(j))
			return false;
	}
	return true;
}

static bool string(struct jp *j)
{
	if (j->p >= j->end || *j->p != '"')
		return false;
	j->p++;
	while (j->p < j->end && *j->p != '"') {
		unsigned char c = *j->p++;
		if (c < 0x20)
			return false;
		if (c != '\\')
			continue;
		if (j->p >= j->end)
			return false;
		c = *j->p++;
		if (c == 'u') {
			for (int i = 0; i < 4; i++, j->p++)
				if (j->p >= j->end || !strchr("0123456789abcdefABCDEF", *j->p) || !*j->p)
					return false;
		} else if (!strchr("\"\\/bfnrt", c) || !c) {
			return false;
		}
	}
	if (j->p >= j->end)
		return false;
	j->p++;
	return true;
}

static bool value(struct jp *j);

static bool members(struct jp *j, char close, bool keys)
{
	j->p++;
	ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return true;
	}
	for (;;) {
		ws(j);
		if (keys) {
			if (!string(j))
				return false;
			ws(j);
			if (j->p >= j->end || *j->p++ != ':')
				return false;
		}
		if (!value(j))
			return false;
		ws(j);
		if (j->p >= j->end)
			return false;
		char c = (char)*j->p++;
		if (c == close)
			return true;
		if (c != ',')
			return false;
	}
}

static bool value(struct jp *j)
{
	ws(j);
	if (j->p >= j->end || ++j->depth > (1 << 20))
		return false;
	bool ok;
	switch (*j->p) {
	case '{': ok = members(j, '}', true); break;
	case '[': ok = members(j, ']', false); break;
	case '"': ok = string(j); break;
	case 't': ok = lit(j, "true"); break;
	case 'f': ok = lit(j, "false"); break;
	case 'n': ok = lit(j, "null"); break;
	default: ok = number(j); break;
	}
	j->depth--;
	return ok;
}

/* ---- XML checks */

/* buf_head of a buffer that never allocated is NULL plus an offset: not for empty output. */
static const char *head(const struct buf *b)
{
	return b->len ? (const char *)buf_head(b) : "";
}

/* XML 1.0 Char minus what the exporter promises to drop (DEL, C1 controls). */
static bool xml_kept(uint32_t c)
{
	if (c == 0x9 || c == 0xa || c == 0xd)
		return true;
	if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || (c >= 0xd800 && c <= 0xdfff))
		return false;
	return c != 0xfffe && c != 0xffff && c <= 0x10ffff;
}

/* s[0..n) with what XML cannot carry removed, into b. */
static void xml_expected(struct buf *b, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s);
	for (size_t i = 0; i < n;) {
		uint32_t c;
		size_t len = text_utf8_decode(u + i, n - i, &c);
		if (!len) {
			i++;
			continue;
		}
		if (xml_kept(c))
			check(buf_append(b, u + i, len) == 0);
		i += len;
	}
}

/* Unescape o[0..n) (attribute value or text) into b, checking every '&' and raw character. */
static void xml_unescape(struct buf *b, const char *o, size_t n, bool attr)
{
	for (size_t i = 0; i < n;) {
		char c = o[i];
		check(c != '<' && c != '\r' && (!attr || (c != '"' && c != '\n' && c != '\t')));
		if (c != '&') {
			check(buf_append(b, &c, 1) == 0);
			i++;
			continue;
		}
		static const struct {
			const char *ref, *ch;
		} ents[] = {{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""},
		            {"&#13;", "\r"}, {"&#10;", "\n"}, {"&#9;", "\t"}};
		size_t k;
		for (k = 0; k < sizeof(ents) / sizeof(ents[0]); k++) {
			size_t m = strlen(ents[k].ref);
			if (n - i >= m && memcmp(o + i, ents[k].ref, m) == 0) {
				check(buf_append_str(b, ents[k].ch) == 0);
				i += m;
				break;
			}
		}
		check(k < sizeof(ents) / sizeof(ents[0]));
	}
}

/* At *p: ` name="value"`; returns the raw value's bounds and advances. */
static void attr(const char **p, const char *end, const char *name, const char **v, size_t *vn)
{
	size_t n = strlen(name);
	check((size_t)(end - *p) > n + 3 && (*p)[0] == ' ' && memcmp(*p + 1, name, n) == 0 &&
	      (*p)[n + 1] == '=' && (*p)[n + 2] == '"');
	*v = *p + n + 3;
	const char *q = memchr(*v, '"', (size_t)(end - *v));
	check(q != NULL);
	*vn = (size_t)(q - *v);
	*p = q + 1;
}

static size_t count(const char *s, size_t n, const char *needle)
{
	size_t c = 0, m = strlen(needle);
	for (size_t i = 0; i + m <= n; i++)
		c += memcmp(s + i, needle, m) == 0;
	return c;
}

/* The user attribute (at *p) and, for elements with text, the text, against the row. */
static void check_user(const struct export_row *r, const char **p, const char *end)
{
	const char *v;
	size_t vn;
	struct buf got, want;
	buf_init(&got);
	buf_init(&want);
	attr(p, end, "user", &v, &vn);
	xml_unescape(&got, v, vn, true);
	xml_expected(&want, r->nick ? r->nick : "");
	check(got.len == want.len && memcmp(head(&got), head(&want), got.len) == 0);
	buf_finish(&got);
	buf_finish(&want);
}

/* From *p: ">text</tag>" up to end, the text against the row's. */
static void check_text(const struct export_row *r, const char *p, const char *end, const char *tag)
{
	size_t tn = strlen(tag) + 3;
	char close[16];
	snprintf(close, sizeof(close), "</%s>", tag);
	check(p < end && *p == '>');
	p++;
	check((size_t)(end - p) >= tn && memcmp(end - tn, close, tn) == 0);
	struct buf got, want;
	buf_init(&got);
	buf_init(&want);
	xml_unescape(&got, p, (size_t)(end - tn - p), false);
	xml_expected(&want, r->text ? r->text : "");
	check(got.len == want.len && memcmp(head(&got), head(&want), got.len) == 0);
	buf_finish(&got);
	buf_finish(&want);
}

/* An attribute whose value is a (signed) decimal number. */
static void number_attr(const char **p, const char *end, const char *name)
{
	const char *v;
	size_t vn;
	attr(p, end, name, &v, &vn);
	check(vn > 0);
	for (size_t i = 0; i < vn; i++)
		check(strchr("0123456789.-", v[i]) && v[i]);
}

static void check_xml(const struct export_row *r, const char *o, size_t n)
{
	const char *type = r->type ? r->type : "";
	bool bili = r->platform && strcmp(r->platform, "bilibili") == 0;
	bool douyu = !r->platform || strcmp(r->platform, "douyu") == 0;
	bool chat = (douyu && strcmp(type, "chatmsg") == 0) || (bili && strcmp(type, "DANMU_MSG") == 0);
	bool gift = (douyu && strcmp(type, "dgb") == 0) ||
	            (bili && (strcmp(type, "SEND_GIFT") == 0 || strcmp(type, "SEND_GIFT_V2") == 0));
	bool sc = bili && strcmp(type, "SUPER_CHAT_MESSAGE") == 0;
	bool guard = bili && strcmp(type, "GUARD_BUY") == 0;
	if (!chat && !gift && !sc && !guard) {
		check(n == 0);
		return;
	}
	/* Only XML Chars, valid UTF-8. */
	check(text_utf8_valid_prefix(o, n) == n);
	for (size_t i = 0; i < n;) {
		uint32_t c;
		size_t len = text_utf8_decode((const unsigned char *)o + i, n - i, &c);
		check(len > 0 && xml_kept(c));
		i += len;
	}
	check(n > 0 && o[n - 1] == '\n');
	const char *end = o + n - 1, *p = o, *v;
	size_t vn;
	check(count(o, n, "<d ") == chat && count(o, n, "<gift ") == gift &&
	      count(o, n, "<sc ") == sc && count(o, n, "<guard ") == guard);
	if (chat) {
		check(strncmp(p, "<d", 2) == 0);
		p += 2;
		attr(&p, end, "p", &v, &vn);
		size_t commas = 0;
		for (size_t i = 0; i < vn; i++) {
			char c = v[i];
			commas += c == ',';
			/* Letters only in the last field: a Bilibili id_str. */
			check(c && (strchr("0123456789,.-", c) ||
			            (commas == 7 && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))));
		}
		check(commas == 7);
		check_user(r, &p, end);
		check_text(r, p, end, "d");
	} else if (gift) {
		check(strncmp(p, "<gift", 5) == 0);
		p += 5;
		static const char *const names[] = {"ts", "giftname", "giftcount", "uid"};
		struct buf got;
		buf_init(&got);
		for (size_t k = 0; k < 4; k++) {
			attr(&p, end, names[k], &v, &vn);
			buf_clear(&got);
			xml_unescape(&got, v, vn, true);
		}
		buf_finish(&got);
		check_user(r, &p, end);
		check(end - p == 2 && memcmp(p, "/>", 2) == 0);
	} else {
		const char *tag = sc ? "sc" : "guard";
		size_t tl = strlen(tag);
		check(p[0] == '<' && strncmp(p + 1, tag, tl) == 0);
		p += 1 + tl;
		number_attr(&p, end, "ts");
		check_user(r, &p, end);
		number_attr(&p, end, "uid");
		number_attr(&p, end, sc ? "price" : "level");
		number_attr(&p, end, sc ? "time" : "count");
		if (sc)
			check_text(r, p, end, "sc");
		else
			check(end - p == 2 && memcmp(p, "/>", 2) == 0);
	}
}

static void check_json(const char *o, size_t n)
{
	check(n > 0 && o[n - 1] == '\n');
	check(text_utf8_valid_prefix(o, n) == n);
	for (size_t i = 0; i + 1 < n; i++)
		check((unsigned char)o[i] >= 0x20);
	struct jp j = {(const unsigned char *)o, (const unsigned char *)o + n - 1, 0};
	ws(&j);
	check(j.p < j.end && *j.p == '{');
	check(value(&j));
	ws(&j);
	check(j.p == j.end);
}

/* ---- the harness */


static sqlite3 *db;
static sqlite3_stmt *st;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 9)
		return 0;
	if (!db) {
		check(sqlite3_open(":memory:", &db) == SQLITE_OK);
		/* The same expressions as export.c's NDJSON query. */
		check(sqlite3_prepare_v2(db,
		                         "SELECT CASE WHEN json_valid(?1) THEN json(?1) ELSE ?1 END,"
		                         " json_valid(?1)",
		                         -1, &st, NULL) == SQLITE_OK);
	}
	uint8_t flags = data[0];
	int64_t num;
	memcpy(&num, data + 1, sizeof(num));
	/* Fields: NUL-separated copies (each NUL-terminated, as SQLite hands them over). */
	char *copy = malloc(size - 9 + 1);
	check(copy != NULL);
	memcpy(copy, data + 9, size - 9);
	copy[size - 9] = '\0';
	const char *field[15] = {0};
	char *p = copy, *end = copy + (size - 9);
	for (int i = 0; i < 15 && p <= end; i++) {
		field[i] = p;
		p += strlen(p) + 1;
	}
	static const char *const types[] = {"chatmsg", "dgb", "uenter", NULL};
	static const char *const bili_types[] = {"DANMU_MSG",          "SEND_GIFT", "SEND_GIFT_V2",
	                                         "SUPER_CHAT_MESSAGE", "GUARD_BUY", "INTERACT_WORD_V2",
	                                         "chatmsg",            NULL};
	uint64_t top = (uint64_t)num >> 56;
	struct export_row r = {
		.id = num,
		.room_id = num ^ 0x5555,
		.ts = num >> 3,
		.uid = num ^ 0x1234,
		.level = num & 0xff,
		.session_id = num >> 40,
		.has_uid = flags & 4,
		.has_level = flags & 8,
		.has_session = flags & 16,
		.type = types[flags & 3],
		.nick = field[0],
		.text = (flags & 32) ? NULL : field[1],
		.col = field[3],
		.gift_name = field[4],
		.gift_id = (flags & 64) ? NULL : field[5],
		.gift_count = field[6],
		.cid = field[7],
		.mode = field[8],
		.size = field[9],
		.color = field[10],
		.price = field[11],
		.duration = field[12],
		.guard_level = field[13],
	};
	if (top & 0x80) {
		r.platform = "bilibili";
		r.type = bili_types[top & 7];
	} else if (top & 0x40) {
		r.platform = (top & 0x20) ? "douyu" : "other";
	}
	struct buf b;
	buf_init(&b);
	check(export_xml_row(&b, &r, (int64_t)(num >> 5) ^ 77) == 0);
	check_xml(&r, head(&b), b.len);
	buf_clear(&b);

	char *json_data = NULL;
	if (field[2] && !(flags & 128)) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, field[2], -1, SQLITE_STATIC);
		check(sqlite3_step(st) == SQLITE_ROW);
		const char *d = (const char *)sqlite3_column_text(st, 0);
		json_data = d ? strdup(d) : NULL;
		r.data_json = sqlite3_column_int(st, 1) == 1;
		r.data = json_data;
		sqlite3_reset(st);
	} else if (field[2]) {
		/* A caller that claims JSON for arbitrary bytes must still get one line. */
		r.data = field[2];
		r.data_json = true;
	}
	char *json_decoded = NULL;
	if (field[14]) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, field[14], -1, SQLITE_STATIC);
		check(sqlite3_step(st) == SQLITE_ROW);
		const char *d = (const char *)sqlite3_column_text(st, 0);
		json_decoded = d ? strdup(d) : NULL;
		r.decoded_json = sqlite3_column_int(st, 1) == 1;
		r.decoded = json_decoded;
		sqlite3_reset(st);
		if (flags & 128) {
			/* A caller that claims JSON for arbitrary bytes must still get one line. */
			r.decoded = field[14];
			r.decoded_json = true;
		}
	}
	check(export_json_row(&b, &r) == 0);
	if (flags & 128) {
		const char *o = head(&b);
		check(b.len > 0 && o[b.len - 1] == '\n' && memchr(o, '\n', b.len) == o + b.len - 1);
	} else {
		check_json(head(&b), b.len);
	}
	buf_finish(&b);
	free(json_data);
	free(json_decoded);
	free(copy);
	return 0;
}
