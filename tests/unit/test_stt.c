/*
 * test_stt: the STT decoder against a naive reference on every sample message, the escape
 * rules and their edge cases, nested values, limits, and the JSON writer (checked by a strict
 * JSON parser that also decodes the strings back).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "stt.h"
#include "test.h"

/* ---- a naive reference decoder: split, then first "@=", then unescape once ---- */

struct ref_pair {
	char *key;
	char *val;
};

static char *ref_unescape(const char *p, size_t n)
{
	char *o = malloc(n + 1), *q = o;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '@' && i + 1 < n && p[i + 1] == 'A') {
			*q++ = '@';
			i++;
		} else if (p[i] == '@' && i + 1 < n && p[i + 1] == 'S') {
			*q++ = '/';
			i++;
		} else {
			*q++ = p[i];
		}
	}
	*q = 0;
	return o;
}

static size_t ref_decode(const char *body, size_t len, struct ref_pair *out, size_t max)
{
	size_t n = 0, start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && body[i] != '/')
			continue;
		const char *seg = body + start;
		size_t sl = i - start;
		start = i + 1;
		size_t sep = SIZE_MAX;
		for (size_t k = 0; k + 1 < sl; k++) {
			if (seg[k] == '@' && seg[k + 1] == '=') {
				sep = k;
				break;
			}
		}
		if (sep == SIZE_MAX || sep == 0 || n == max)
			continue;
		out[n].key = ref_unescape(seg, sep);
		out[n].val = ref_unescape(seg + sep + 2, sl - sep - 2);
		n++;
	}
	return n;
}

static void ref_free(struct ref_pair *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].key);
		free(p[i].val);
	}
}

/* ---- a strict JSON checker for {"k":"v",...}; decodes each string into dst ---- */

static void put_utf8(char **o, uint32_t cp)
{
	char *q = *o;
	if (cp < 0x80) {
		*q++ = (char)cp;
	} else if (cp < 0x800) {
		*q++ = (char)(0xC0 | (cp >> 6));
		*q++ = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		*q++ = (char)(0xE0 | (cp >> 12));
		*q++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*q++ = (char)(0x80 | (cp & 0x3F));
	} else {
		*q++ = (char)(0xF0 | (cp >> 18));
		*q++ = (char)(0x80 | ((cp >> 12) & 0x3F));
		*q++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*q++ = (char)(0x80 | (cp & 0x3F));
	}
	*o = q;
}

/* Length of the valid UTF-8 sequence at p (strict: no overlongs, no surrogates), or 0. */
static size_t utf8_valid_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t need;
	uint32_t cp, min;
	if (c < 0x80)
		return 1;
	if (c >= 0xC0 && c < 0xE0) {
		need = 2, cp = c & 0x1F, min = 0x80;
	} else if (c >= 0xE0 && c < 0xF0) {
		need = 3, cp = c & 0x0F, min = 0x800;
	} else if (c >= 0xF0 && c < 0xF8) {
		need = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (size_t k = 1; k < need; k++) {
		if ((p[k] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[k] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return need;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool json_u4(const char **pp, const char *end, uint32_t *v)
{
	const char *p = *pp;
	if (end - p < 4)
		return false;
	*v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hexval(p[i]);
		if (h < 0)
			return false;
		*v = *v << 4 | (uint32_t)h;
	}
	*pp = p + 4;
	return true;
}

/* Parse one JSON string at *pp into dst (NUL-terminated); false when invalid. */
static bool json_string(const char **pp, const char *end, char *dst)
{
	const char *p = *pp;
	if (p >= end || *p++ != '"')
		return false;
	while (p < end && *p != '"') {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20)
			return false;
		if (c == '\\') {
			if (++p >= end)
				return false;
			char e = *p++;
			uint32_t cp;
			switch (e) {
			case '"': *dst++ = '"'; break;
			case '\\': *dst++ = '\\'; break;
			case '/': *dst++ = '/'; break;
			case 'b': *dst++ = '\b'; break;
			case 'f': *dst++ = '\f'; break;
			case 'n': *dst++ = '\n'; break;
			case 'r': *dst++ = '\r'; break;
			case 't': *dst++ = '\t'; break;
			case 'u':
				if (!json_u4(&p, end, &cp))
					return false;
				if (cp >= 0xD800 && cp <= 0xDBFF) {
					uint32_t lo;
					if (end - p < 2 || p[0] != '\\' || p[1] != 'u')
						return false;
					p += 2;
					if (!json_u4(&p, end, &lo) || lo < 0xDC00 || lo > 0xDFFF)
						return false;
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
					return false;
				}
				put_utf8(&dst, cp);
				break;
			default:
				return false;
			}
			continue;
		}
		size_t k = utf8_valid_len((const unsigned char *)p, (size_t)(end - p));
		if (!k)
			return false;
		memcpy(dst, p, k);
		dst += k;
		p += k;
	}
	if (p >= end)
		return false;
	*dst = 0;
	*pp = p + 1;
	return true;
}

/*
 * Check that json[0..len) is exactly {"k":"v",...} and, when s is given, that it holds s's
 * pairs in order with "#n" suffixes on repeated keys (compare_vals: values too).
 */
static bool json_check(const char *json, size_t len, const struct stt *s, bool compare_vals)
{
	const char *p = json, *end = json + len;
	char *k = malloc(len + 1), *v = malloc(len + 1);
	bool ok = false;
	size_t i = 0;
	if (p >= end || *p++ != '{')
		goto out;
	if (p < end && *p == '}') {
		ok = p + 1 == end && (!s || s->n == 0);
		goto out;
	}
	for (;;) {
		if (!json_string(&p, end, k) || p >= end || *p++ != ':' || !json_string(&p, end, v))
			goto out;
		if (s) {
			if (i >= s->n)
				goto out;
			const struct stt_pair *pr = &s->pairs[i];
			unsigned dup = 1;
			for (size_t j = 0; j < i; j++)
				if (strcmp(s->pairs[j].key, pr->key) == 0)
					dup++;
			char want[4096];
			if (dup > 1)
				snprintf(want, sizeof(want), "%s#%u", pr->key, dup);
			else
				snprintf(want, sizeof(want), "%s", pr->key);
			if (compare_vals && (strcmp(k, want) != 0 || strcmp(v, pr->val) != 0))
				goto out;
		}
		i++;
		if (p >= end)
			goto out;
		if (*p == '}') {
			ok = p + 1 == end && (!s || i == s->n);
			goto out;
		}
		if (*p++ != ',')
			goto out;
	}
out:
	free(k);
	free(v);
	return ok;
}

/* ---- helpers ---- */

static int decode_str(struct stt *s, const char *body)
{
	return stt_decode(s, body, strlen(body));
}

static char *to_json(const struct stt *s, size_t *replaced)
{
	struct buf b;
	buf_init(&b);
	if (stt_to_json(s, &b, replaced) < 0 || buf_append(&b, "", 1) < 0) {
		buf_finish(&b);
		return NULL;
	}
	char *r = strdup((const char *)buf_head(&b));
	buf_finish(&b);
	return r;
}

/* ---- tests ---- */

static void test_samples(void)
{
	size_t len;
	char *tsv = test_read_file(SHARED_DIR "/douyu-samples.tsv", &len);
	ASSERT(tsv);
	struct stt s;
	stt_init(&s);
	struct buf json;
	buf_init(&json);
	int rows = 0, typed = 0;
	bool fail = false;
	char *line = tsv;
	static struct ref_pair ref[STT_MAX_PAIRS];
	while (*line && !fail) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		char *tab = strchr(line, '\t');
		if (!tab) {
			TEST_FAIL_("row %d has no tab", rows);
			fail = true;
			break;
		}
		size_t blen = (size_t)(tab - line);
		rows++;
		if (stt_decode(&s, line, blen) != 0) {
			TEST_FAIL_("row %d: decode failed", rows);
			fail = true;
			break;
		}
		size_t rn = ref_decode(line, blen, ref, STT_MAX_PAIRS);
		if (rn != s.n) {
			TEST_FAIL_("row %d: %zu pairs, reference %zu", rows, s.n, rn);
			fail = true;
		}
		for (size_t i = 0; !fail && i < rn; i++) {
			const struct stt_pair *p = &s.pairs[i];
			if (strcmp(p->key, ref[i].key) != 0 || strcmp(p->val, ref[i].val) != 0 ||
			    strlen(p->key) != p->key_len || strlen(p->val) != p->val_len) {
				TEST_FAIL_("row %d pair %zu: %s=%s vs %s=%s", rows, i, p->key, p->val,
					   ref[i].key, ref[i].val);
				fail = true;
			}
		}
		ref_free(ref, rn);
		const char *type = stt_get(&s, "type");
		if (type && *type)
			typed++;
		else
			TEST_FAIL_("row %d: no type", rows);
		buf_clear(&json);
		size_t bad = 99;
		if (!fail && (stt_to_json(&s, &json, &bad) != 0 ||
			      !json_check((const char *)buf_head(&json), json.len, &s, bad == 0))) {
			TEST_FAIL_("row %d: bad JSON", rows);
			fail = true;
		}
		line = nl ? nl + 1 : line + strlen(line);
	}
	stt_finish(&s);
	buf_finish(&json);
	free(tsv);
	ASSERT(!fail);
	ASSERT_EQ(rows, 77);
	ASSERT_EQ(typed, 77);
}

static void test_first_key_not_type(void)
{
	struct stt s;
	stt_init(&s);
	ASSERT_EQ(decode_str(&s, "btype@=x/rid@=1/type@=configscreen/"), 0);
	ASSERT_STR_EQ(stt_get(&s, "type"), "configscreen");
	ASSERT_STR_EQ(stt_get(&s, "btype"), "x");
	ASSERT(stt_get(&s, "typ") == NULL);
	ASSERT(stt_get(&s, "types") == NULL);
	stt_finish(&s);
}

static void test_escapes(void)
{
	struct stt s;
	stt_init(&s);
	/* "@AS" is an escaped '@' followed by 'S': a literal "@S" in user text. */
	ASSERT_EQ(decode_str(&s, "txt@=a@ASb/x@=@S@S@A@A/"), 0);
	ASSERT_EQ(s.n, 2);
	ASSERT_STR_EQ(stt_get(&s, "txt"), "a@Sb");
	ASSERT_STR_EQ(stt_get(&s, "x"), "//@@");
	/* Unknown escapes and a dangling '@' stay as they are. */
	ASSERT_EQ(decode_str(&s, "a@=x@Zy/b@=end@/c@=@/d@=@@/e@=@=q/"), 0);
	ASSERT_EQ(s.n, 5);
	ASSERT_STR_EQ(stt_get(&s, "a"), "x@Zy");
	ASSERT_STR_EQ(stt_get(&s, "b"), "end@");
	ASSERT_STR_EQ(stt_get(&s, "c"), "@");
	ASSERT_STR_EQ(stt_get(&s, "d"), "@@");
	ASSERT_STR_EQ(stt_get(&s, "e"), "@=q"); /* only the first "@=" splits */
	/* Escapes in keys, and a key that contains "@A=" (not a separator). */
	ASSERT_EQ(decode_str(&s, "k@Sx@=1/m@A=n@=2/"), 0);
	ASSERT_EQ(s.n, 2);
	ASSERT_STR_EQ(stt_get(&s, "k/x"), "1");
	ASSERT_STR_EQ(stt_get(&s, "m@=n"), "2");
	/* Dangling '@' at the very end of the body. */
	ASSERT_EQ(decode_str(&s, "z@=q@"), 0);
	ASSERT_EQ(s.n, 1);
	ASSERT_STR_EQ(stt_get(&s, "z"), "q@");

	/* stt_escape is the inverse, escaping '@' before '/'. */
	struct buf b;
	buf_init(&b);
	const char *raw = "a/b@S@A//@";
	ASSERT_EQ(stt_escape(&b, raw, strlen(raw)), 0);
	ASSERT_EQ(b.len, strlen("a@Sb@AS@AA@S@S@A"));
	ASSERT_MEM_EQ(buf_head(&b), "a@Sb@AS@AA@S@S@A", b.len);
	struct buf msg;
	buf_init(&msg);
	ASSERT_EQ(buf_append_str(&msg, "v@="), 0);
	ASSERT_EQ(buf_append(&msg, buf_head(&b), b.len), 0);
	ASSERT_EQ(stt_decode(&s, (const char *)buf_head(&msg), msg.len), 0);
	ASSERT_STR_EQ(stt_get(&s, "v"), raw);
	buf_finish(&b);
	buf_finish(&msg);
	stt_finish(&s);
}

static void test_segments(void)
{
	struct stt s;
	stt_init(&s);
	ASSERT_EQ(decode_str(&s, "type@=chatmsg//novalue/txt@=hi/"), 0);
	ASSERT_EQ(s.n, 2);
	ASSERT_STR_EQ(s.pairs[0].key, "type");
	ASSERT_STR_EQ(s.pairs[1].val, "hi");
	/* Empty key skipped, missing final '/', empty values kept. */
	ASSERT_EQ(decode_str(&s, "@=x/a@=/b@=2"), 0);
	ASSERT_EQ(s.n, 2);
	ASSERT_STR_EQ(s.pairs[0].key, "a");
	ASSERT_STR_EQ(s.pairs[0].val, "");
	ASSERT_EQ(s.pairs[0].val_len, 0);
	ASSERT_STR_EQ(s.pairs[1].val, "2");
	ASSERT_EQ(decode_str(&s, ""), 0);
	ASSERT_EQ(s.n, 0);
	ASSERT_EQ(decode_str(&s, "///"), 0);
	ASSERT_EQ(s.n, 0);
	ASSERT_EQ(decode_str(&s, "no separator at all"), 0);
	ASSERT_EQ(s.n, 0);
	/* Only len bytes are read: no NUL needed, nothing past the end. */
	ASSERT_EQ(stt_decode(&s, "a@=1/b@=2/", 5), 0);
	ASSERT_EQ(s.n, 1);
	ASSERT_STR_EQ(s.pairs[0].val, "1");
	stt_finish(&s);
}

static void test_duplicates(void)
{
	struct stt s;
	stt_init(&s);
	ASSERT_EQ(decode_str(&s, "uid@=1/rid@=3898464/x@=y/rid@=-1/rid@=7/type@=rri/"), 0);
	ASSERT_EQ(s.n, 6);
	ASSERT_STR_EQ(stt_get(&s, "rid"), "3898464"); /* the first one */
	char *j = to_json(&s, NULL);
	ASSERT(j);
	ASSERT_STR_EQ(j, "{\"uid\":\"1\",\"rid\":\"3898464\",\"x\":\"y\",\"rid#2\":\"-1\","
			 "\"rid#3\":\"7\",\"type\":\"rri\"}");
	free(j);
	stt_finish(&s);
}

static void test_nested(void)
{
	struct stt s, inner, item;
	stt_init(&s);
	stt_init(&inner);
	stt_init(&item);
	/* comm_chatmsg: the chatmsg value is one nested map. */
	ASSERT_EQ(decode_str(&s, "vrid@=1/btype@=voiceDanmu/chatmsg@=nn@A=bob@Stxt@A=a@AAS@AAb@S"
				 "/type@=comm_chatmsg/"),
		  0);
	const char *cm = stt_get(&s, "chatmsg");
	ASSERT_STR_EQ(cm, "nn@=bob/txt@=a@AS@Ab/");
	ASSERT_EQ(decode_str(&inner, cm), 0);
	ASSERT_STR_EQ(stt_get(&inner, "nn"), "bob");
	ASSERT_STR_EQ(stt_get(&inner, "txt"), "a@S@b");

	/* el: a list holding one map, two levels deep (douyu-protocol.md §3.1). */
	ASSERT_EQ(decode_str(&s, "type@=uenter/el@=eid@AA=1500000113@ASetp@AA=1@ASsc@AA=1@AS"
				 "ef@AA=0@AS@S/sahf@=0/"),
		  0);
	const char *el = stt_get(&s, "el");
	ASSERT_STR_EQ(el, "eid@A=1500000113@Setp@A=1@Ssc@A=1@Sef@A=0@S/");
	/* A list item is unescaped by decoding it as the value of a one-pair message. */
	const char *slash = strchr(el, '/');
	ASSERT(slash);
	char wrap[256];
	snprintf(wrap, sizeof(wrap), "i@=%.*s", (int)(slash - el), el);
	ASSERT_EQ(decode_str(&item, wrap), 0);
	ASSERT_STR_EQ(stt_get(&item, "i"), "eid@=1500000113/etp@=1/sc@=1/ef@=0/");
	ASSERT_EQ(decode_str(&inner, stt_get(&item, "i")), 0);
	ASSERT_EQ(inner.n, 4);
	ASSERT_STR_EQ(stt_get(&inner, "eid"), "1500000113");
	ASSERT_STR_EQ(stt_get(&inner, "ef"), "0");
	/* The outer message is untouched by the inner decodes. */
	ASSERT_STR_EQ(stt_get(&s, "type"), "uenter");
	stt_finish(&s);
	stt_finish(&inner);
	stt_finish(&item);
}

static void test_too_many_pairs(void)
{
	struct buf b;
	buf_init(&b);
	for (int i = 0; i < STT_MAX_PAIRS; i++)
		ASSERT_EQ(buf_printf(&b, "k%d@=%d/", i % 7, i), 0);
	struct stt s;
	stt_init(&s);
	ASSERT_EQ(stt_decode(&s, (const char *)buf_head(&b), b.len), 0);
	ASSERT_EQ(s.n, STT_MAX_PAIRS);
	/* Thousands of repeated keys: the numbering takes the hashed path. */
	struct buf j;
	buf_init(&j);
	ASSERT_EQ(stt_to_json(&s, &j, NULL), 0);
	ASSERT(json_check((const char *)buf_head(&j), j.len, &s, true));
	ASSERT(j.len > 16);
	ASSERT_MEM_EQ(buf_head(&j) + j.len - 16, "\"k0#586\":\"4095\"}", 16);
	buf_finish(&j);
	ASSERT_EQ(buf_append_str(&b, "one@=more/"), 0);
	ASSERT_EQ(stt_decode(&s, (const char *)buf_head(&b), b.len), -E2BIG);
	ASSERT_EQ(s.n, 0);
	/* Segments that are skipped do not count. */
	ASSERT_EQ(buf_append_str(&b, "////x/"), 0);
	buf_consume(&b, strlen("k0@=0/"));
	ASSERT_EQ(stt_decode(&s, (const char *)buf_head(&b), b.len), 0);
	ASSERT_EQ(s.n, STT_MAX_PAIRS);
	/* The struct is reusable after a rejection. */
	ASSERT_EQ(decode_str(&s, "a@=b/"), 0);
	ASSERT_STR_EQ(stt_get(&s, "a"), "b");
	stt_finish(&s);
	buf_finish(&b);
}

static void test_json_escapes(void)
{
	struct stt s;
	stt_init(&s);
	const char body[] = "t\"x@=a\"b\\c\n\r\t\b\f\x01\x1f\x7f end/u@=中文😀/";
	ASSERT_EQ(stt_decode(&s, body, sizeof(body) - 1), 0);
	size_t bad = 9;
	char *j = to_json(&s, &bad);
	ASSERT(j);
	ASSERT_EQ(bad, 0);
	ASSERT_STR_EQ(j, "{\"t\\\"x\":\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\x7f end\","
			 "\"u\":\"中文😀\"}");
	ASSERT(json_check(j, strlen(j), &s, true));
	free(j);
	/* Long ASCII runs cross the 8-byte fast path with specials at every offset. */
	for (int off = 0; off < 20; off++) {
		char v[64];
		memset(v, 'a', sizeof(v));
		memcpy(v, "k@=", 3);
		v[3 + off] = '"';
		v[3 + off + 20] = '\\';
		ASSERT_EQ(stt_decode(&s, v, sizeof(v)), 0);
		j = to_json(&s, NULL);
		ASSERT(j);
		ASSERT(json_check(j, strlen(j), &s, true));
		free(j);
	}
	ASSERT_EQ(decode_str(&s, ""), 0);
	j = to_json(&s, NULL);
	ASSERT_STR_EQ(j, "{}");
	free(j);
	stt_finish(&s);
}

static void test_json_invalid_utf8(void)
{
	struct stt s;
	stt_init(&s);
	static const struct {
		const char *in;
		const char *out;
		size_t bad;
	} cases[] = {
		{"\xff", "\xEF\xBF\xBD", 1},
		{"a\x80z", "a\xEF\xBF\xBDz", 1},
		{"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD", 2},          /* overlong '/' */
		{"\xE0\x80\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD", 3}, /* overlong */
		{"\xF0\x82\x82\xAC", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD", 4},
		{"\xE4\xB8", "\xEF\xBF\xBD", 1},      /* truncated at the end */
		{"\xE4\xB8x", "\xEF\xBF\xBDx", 1},    /* truncated in the middle */
		{"\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD", 4},
		{"\xF8\x88\x80\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
					 "\xEF\xBF\xBD", 5},
		{"\xED\xA0\x80", "\xEF\xBF\xBD", 1},   /* lone high surrogate */
		{"\xED\xB8\x8A!", "\xEF\xBF\xBD!", 1}, /* lone low surrogate */
		{"\xED\xA0\xBD\xED\xA0\xBD", "\xEF\xBF\xBD\xEF\xBF\xBD", 2}, /* high, high */
		/* CESU-8 emoji (douyu-protocol.md §3.3): U+1F60A */
		{"\xED\xA0\xBD\xED\xB8\x8A", "\xF0\x9F\x98\x8A", 0},
		{"x\xED\xA0\xBD\xED\xB8\x8Ay", "x\xF0\x9F\x98\x8Ay", 0},
		/* U+10000 and U+10FFFF, the ends of the surrogate range */
		{"\xED\xA0\x80\xED\xB0\x80", "\xF0\x90\x80\x80", 0},
		{"\xED\xAF\xBF\xED\xBF\xBF", "\xF4\x8F\xBF\xBF", 0},
		{"\xED\x9F\xBF", "\xED\x9F\xBF", 0}, /* U+D7FF is fine */
		{"\xEF\xBF\xBF\xF4\x8F\xBF\xBF", "\xEF\xBF\xBF\xF4\x8F\xBF\xBF", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[64], want[128];
		snprintf(body, sizeof(body), "v@=%s/", cases[i].in);
		snprintf(want, sizeof(want), "{\"v\":\"%s\"}", cases[i].out);
		ASSERT_EQ(decode_str(&s, body), 0);
		size_t bad = 99;
		char *j = to_json(&s, &bad);
		ASSERT(j);
		if (strcmp(j, want) != 0 || bad != cases[i].bad) {
			TEST_FAIL_("case %zu: bad %zu (want %zu)", i, bad, cases[i].bad);
			free(j);
			return;
		}
		ASSERT(json_check(j, strlen(j), NULL, false));
		free(j);
	}
	/* Invalid bytes in keys are replaced as well. */
	ASSERT_EQ(decode_str(&s, "k\xfe@=1/"), 0);
	size_t bad = 0;
	char *j = to_json(&s, &bad);
	ASSERT_STR_EQ(j, "{\"k\xEF\xBF\xBD\":\"1\"}");
	ASSERT_EQ(bad, 1);
	free(j);
	stt_finish(&s);
}

/* Random bytes from a small alphabet full of specials: decode must match the reference. */
static void test_random_vs_reference(void)
{
	static const char alpha[] = "@@@//=ASAxk\xED\xA0\xB8\x80\xE4\xFF\n\"\\";
	uint64_t seed = 0x5eed;
	struct stt s;
	stt_init(&s);
	struct buf j;
	buf_init(&j);
	static struct ref_pair ref[256];
	for (int iter = 0; iter < 20000; iter++) {
		char body[200];
		size_t len = test_rand(&seed) % sizeof(body);
		for (size_t i = 0; i < len; i++)
			body[i] = alpha[test_rand(&seed) % (sizeof(alpha) - 1)];
		ASSERT_EQ(stt_decode(&s, body, len), 0);
		size_t rn = ref_decode(body, len, ref, 256);
		bool same = rn == s.n;
		for (size_t i = 0; same && i < rn; i++)
			same = s.pairs[i].key_len == strlen(ref[i].key) &&
			       s.pairs[i].val_len == strlen(ref[i].val) &&
			       memcmp(s.pairs[i].key, ref[i].key, s.pairs[i].key_len) == 0 &&
			       memcmp(s.pairs[i].val, ref[i].val, s.pairs[i].val_len) == 0;
		ref_free(ref, rn);
		if (!same) {
			TEST_FAIL_("iteration %d differs from the reference", iter);
			break;
		}
		buf_clear(&j);
		ASSERT_EQ(stt_to_json(&s, &j, NULL), 0);
		if (!json_check((const char *)buf_head(&j), j.len, &s, false)) {
			TEST_FAIL_("iteration %d: invalid JSON", iter);
			break;
		}
	}
	buf_finish(&j);
	stt_finish(&s);
}

/* stt_trim gives big arrays back and leaves a decoder that works as new. */
static void test_trim(void)
{
	struct stt s;
	stt_init(&s);
	struct buf j;
	buf_init(&j);
	static const char msg[] = "a@=\x01\x01/a@=b/";
	static const char want[] = "{\"a\":\"\\u0001\\u0001\",\"a#2\":\"b\"}";
	ASSERT_EQ(stt_decode(&s, msg, sizeof(msg) - 1), 0);
	ASSERT_EQ(stt_to_json(&s, &j, NULL), 0);
	ASSERT_EQ(j.len, sizeof(want) - 1);
	ASSERT_MEM_EQ(buf_head(&j), want, sizeof(want) - 1);
	/* Small arrays stay. */
	char *text = s.text;
	stt_trim(&s, 64 * 1024);
	ASSERT_EQ(s.n, 0);
	ASSERT(s.text == text);
	/* A 1 MiB message grows the text to 1 MiB and the pairs to 4096 x 32 bytes: both go. */
	size_t len = 1 << 20;
	char *big = malloc(len);
	ASSERT(big);
	/* 4000 small pairs, then one value filling the rest. */
	for (size_t i = 0; i < 5 * 4000; i++)
		big[i] = "k@=v/"[i % 5];
	memcpy(big + 5 * 4000, "v@=", 3);
	memset(big + 5 * 4000 + 3, 'x', len - 5 * 4000 - 3);
	ASSERT_EQ(stt_decode(&s, big, len), 0);
	ASSERT_EQ(s.n, 4001);
	ASSERT_EQ(s.pairs[4000].val_len, len - 5 * 4000 - 3);
	ASSERT_GT(s.text_cap, 64 * 1024);
	ASSERT_GT(s.cap * sizeof(*s.pairs), 64 * 1024);
	stt_trim(&s, 64 * 1024);
	ASSERT_EQ(s.n, 0);
	ASSERT(s.text == NULL);
	ASSERT(s.pairs == NULL);
	ASSERT_EQ(s.text_cap + s.cap, 0);
	/* Decoding after a trim allocates again. */
	ASSERT_EQ(stt_decode(&s, "type@=x/", 8), 0);
	ASSERT_STR_EQ(stt_get(&s, "type"), "x");
	free(big);
	buf_finish(&j);
	stt_finish(&s);
}

int main(void)
{
	RUN(test_samples);
	RUN(test_first_key_not_type);
	RUN(test_escapes);
	RUN(test_segments);
	RUN(test_duplicates);
	RUN(test_nested);
	RUN(test_too_many_pairs);
	RUN(test_json_escapes);
	RUN(test_json_invalid_utf8);
	RUN(test_random_vs_reference);
	RUN(test_trim);
	TEST_DONE();
}
