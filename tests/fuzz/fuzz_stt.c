/*
 * fuzz_stt: libFuzzer target for the STT decoder and JSON writer. The input is one message
 * body. It is decoded (with a struct stt reused across runs, like the hot path), written as
 * JSON, and its first value is decoded again as a nested message. Invariants from stt.h are
 * checked with __builtin_trap(): pairs are NUL-terminated with the stated lengths and keys are
 * never empty, the JSON is a valid UTF-8 object with no raw control characters, any value
 * escaped with stt_escape decodes back to itself, and text_utf8_repair makes valid UTF-8 of
 * anything, leaves valid text alone and counts what the JSON writer counts.
 */
#include "stt.h"
#include "fuzz.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "buf.h"
#include "text.h"

/* Strict UTF-8 (no overlongs, no surrogates); bytes below 0x20 only when allow_ctl. */
static bool utf8_ok(const uint8_t *p, size_t n, bool allow_ctl)
{
	for (size_t i = 0; i < n;) {
		uint8_t c = p[i];
		if (c < 0x20 && !allow_ctl)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t need;
		uint32_t cp, min;
		if (c >= 0xC2 && c < 0xE0)
			need = 2, cp = c & 0x1F, min = 0x80;
		else if (c >= 0xE0 && c < 0xF0)
			need = 3, cp = c & 0x0F, min = 0x800;
		else if (c >= 0xF0 && c < 0xF5)
			need = 4, cp = c & 0x07, min = 0x10000;
		else
			return false;
		if (n - i < need)
			return false;
		for (size_t k = 1; k < need; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += need;
	}
	return true;
}

static bool json_text_ok(const uint8_t *p, size_t n)
{
	return utf8_ok(p, n, false);
}

/* text_utf8_repair of p[0..n): valid output, unchanged when the input was valid; returns the
 * count of replacements. */
static size_t check_repair(struct buf *out, const char *p, size_t n)
{
	buf_clear(out);
	size_t bad = 99;
	check(text_utf8_repair(out, p, n, &bad) == 0);
	if (n == 0) {
		check(bad == 0 && out->len == 0);
		return 0;
	}
	const uint8_t *o = buf_head(out);
	check(utf8_ok(o, out->len, true));
	check(text_utf8_valid_prefix((const char *)o, out->len) == out->len);
	size_t vp = text_utf8_valid_prefix(p, n);
	check(vp <= n && utf8_ok((const uint8_t *)p, vp, true));
	if (vp == n)
		check(bad == 0 && out->len == n && memcmp(o, p, n) == 0);
	else
		check(out->len > 0);
	return bad;
}

static void check_pairs(const struct stt *s, size_t size)
{
	size_t total = 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct stt_pair *p = &s->pairs[i];
		check(p->key_len > 0 && p->key[p->key_len] == 0 && p->val[p->val_len] == 0);
		total += p->key_len + p->val_len + 2;
	}
	check(total <= size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct stt s, inner, back;
	static struct buf json, esc, fixed;
	const char *body = (const char *)data;

	int rc = stt_decode(&s, body, size);
	check(rc == 0 || rc == -E2BIG);
	if (rc < 0) {
		check(s.n == 0);
		return 0;
	}
	check(s.n <= STT_MAX_PAIRS);
	check_pairs(&s, size);
	const char *type = stt_get(&s, "type");
	check(!type || type[strlen(type)] == 0);

	buf_clear(&json);
	size_t bad = 0;
	check(stt_to_json(&s, &json, &bad) == 0);
	const uint8_t *j = buf_head(&json);
	check(json.len >= 2 && j[0] == '{' && j[json.len - 1] == '}');
	check(json_text_ok(j, json.len));
	check(bad <= size);

	/* Column repair agrees with the JSON writer, string by string. */
	check_repair(&fixed, body, size);
	size_t sum = 0, one;
	for (size_t i = 0; i < s.n; i++) {
		buf_clear(&fixed);
		check(text_utf8_repair(&fixed, s.pairs[i].key, s.pairs[i].key_len, &one) == 0);
		sum += one;
		buf_clear(&fixed);
		check(text_utf8_repair(&fixed, s.pairs[i].val, s.pairs[i].val_len, &one) == 0);
		sum += one;
	}
	check(sum == bad);

	if (s.n > 0) {
		/* Nested values are plain text: decode the first one as a message of its own. */
		const struct stt_pair *p = &s.pairs[0];
		rc = stt_decode(&inner, p->val, p->val_len);
		check(rc == 0 || rc == -E2BIG);
		check_pairs(&inner, p->val_len);

		/* Escaping is the inverse of one level of unescaping. */
		buf_clear(&esc);
		check(buf_append(&esc, "v@=", 3) == 0);
		check(stt_escape(&esc, p->val, p->val_len) == 0);
		check(stt_decode(&back, (const char *)buf_head(&esc), esc.len) == 0);
		check(back.n == 1 && back.pairs[0].val_len == p->val_len &&
		      memcmp(back.pairs[0].val, p->val, p->val_len) == 0);
	}
	return 0;
}
