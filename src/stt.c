/*
 * stt: decoder, JSON writer and escaper for Douyu's key@=value/ text. Every chat message goes
 * through stt_decode and stt_to_json, so both are single passes that scan and copy eight bytes
 * at a time, with the arrays of the struct stt reused from one message to the next: once
 * warmed up, decoding a message allocates nothing. Nested values are kept as (once-unescaped) text
 * and are never decoded recursively, because guessing structure from user text mangles it
 * (douyu-protocol.md §3.1).
 */
#include "stt.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "text.h"

void stt_init(struct stt *s)
{
	memset(s, 0, sizeof(*s));
}

void stt_finish(struct stt *s)
{
	free(s->pairs);
	free(s->text);
	stt_init(s);
}

static int grow_pairs(struct stt *s)
{
	size_t cap = s->cap ? s->cap * 2 : 64;
	if (cap > STT_MAX_PAIRS)
		cap = STT_MAX_PAIRS;
	struct stt_pair *p = realloc(s->pairs, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	s->pairs = p;
	s->cap = cap;
	return 0;
}

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* Nonzero when some byte of x equals c, given pattern = ONES * c. */
static inline uint64_t has_byte(uint64_t x, uint64_t pattern)
{
	uint64_t y = x ^ pattern;
	return (y - ONES) & ~y & HIGHS;
}

/*
 * Copy and unescape from *pp until an unescaped '/', the end, or (stop_at_sep) the first "@=".
 * One left-to-right scan: "@A" -> '@', "@S" -> '/'; any other '@' is copied and scanning
 * resumes at the next byte, so an unknown escape "@x" and a dangling '@' stay verbatim.
 * Unescaping both in one scan, never one replace after the other, is what keeps a literal
 * "@S" of user text intact. Returns the new output end; *pp is left on the '/', the "@=" or
 * the end. The output never runs ahead of the input (each byte read writes at most one), so
 * the 8-byte stores below stay inside the text buffer, which is as large as the body.
 */
static inline char *scan(char *o, const char **pp, const char *end, bool stop_at_sep)
{
	const char *p = *pp;
	for (;;) {
		/* Fields are short (ids, numbers, nicknames); 8 bytes at a time until '@' or '/'. */
		while (end - p >= 8) {
			uint64_t x;
			memcpy(&x, p, 8);
			if (has_byte(x, ONES * '@') | has_byte(x, ONES * '/'))
				break;
			memcpy(o, &x, 8);
			o += 8;
			p += 8;
		}
		while (p < end && *p != '@' && *p != '/')
			*o++ = *p++;
		if (p == end || *p == '/')
			break;
		/* *p == '@' */
		char next = p + 1 < end ? p[1] : '\0';
		if (next == '=' && stop_at_sep)
			break;
		if (next == 'A' || next == 'S') {
			*o++ = next == 'A' ? '@' : '/';
			p += 2;
		} else {
			*o++ = '@';
			p++;
		}
	}
	*pp = p;
	return o;
}

int stt_decode(struct stt *s, const char *body, size_t len)
{
	s->n = 0;
	/*
	 * Each kept segment "k@=v" becomes "k\0v\0": the unescaped key and value are no longer
	 * than their escaped forms, and the two NULs take the place of "@=". So len bytes hold
	 * every pair, and the text never moves while the pairs point into it.
	 */
	if (s->text_cap < len + 1) {
		size_t cap = s->text_cap * 2 > len + 1 ? s->text_cap * 2 : len + 1;
		if (cap < 256)
			cap = 256;
		char *t = malloc(cap);
		if (!t)
			return -ENOMEM;
		free(s->text);
		s->text = t;
		s->text_cap = cap;
	}
	char *o = s->text;
	const char *p = body, *end = body + len;
	while (p < end) {
		char *key = o;
		o = scan(o, &p, end, true);
		if (p == end || *p == '/' || o == key) {
			/* No "@=" in this segment, or an empty key: skip the segment. */
			o = key;
			const char *slash = p < end ? memchr(p, '/', (size_t)(end - p)) : NULL;
			p = slash ? slash + 1 : end;
			continue;
		}
		if (s->n == s->cap) {
			if (s->cap == STT_MAX_PAIRS) {
				s->n = 0;
				return -E2BIG;
			}
			int rc = grow_pairs(s);
			if (rc < 0) {
				s->n = 0;
				return rc;
			}
		}
		struct stt_pair *pr = &s->pairs[s->n++];
		pr->key = key;
		pr->key_len = (size_t)(o - key);
		*o++ = '\0';
		p += 2; /* "@=" */
		pr->val = o;
		o = scan(o, &p, end, false);
		pr->val_len = (size_t)(o - pr->val);
		*o++ = '\0';
		if (p < end)
			p++; /* '/' */
	}
	return 0;
}

void stt_trim(struct stt *s, size_t keep)
{
	s->n = 0;
	if (s->text_cap > keep) {
		free(s->text);
		s->text = NULL;
		s->text_cap = 0;
	}
	if (s->cap > keep / sizeof(*s->pairs)) {
		free(s->pairs);
		s->pairs = NULL;
		s->cap = 0;
	}
}

/* The worst-case size stt_to_json may write for s; it reserves this before writing. */
static size_t json_bound(const struct stt *s)
{
	/* Every byte may become \u00XX; each pair adds quotes, ':', ',' and a "#NNNN" suffix. */
	size_t need = 2;
	for (size_t i = 0; i < s->n; i++)
		need += 6 * (s->pairs[i].key_len + s->pairs[i].val_len) + 24;
	return need;
}

const char *stt_get(const struct stt *s, const char *key)
{
	size_t kl = strlen(key);
	for (size_t i = 0; i < s->n; i++) {
		const struct stt_pair *pr = &s->pairs[i];
		if (pr->key_len == kl && memcmp(pr->key, key, kl) == 0)
			return pr->val;
	}
	return NULL;
}


static inline bool same_key(const struct stt_pair *a, const struct stt_pair *b)
{
	return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

/*
 * For each pair, its occurrence number among pairs with the same key (1 for the first).
 * A quadratic scan is cheapest for ordinary messages (a few dozen pairs); hostile ones with
 * thousands of pairs go through a hash table so that the cost stays linear.
 */
static int key_occurrences(const struct stt *s, uint32_t *seq)
{
	if (s->n <= 64) {
		/*
		 * A 256-bit filter over (length, first and last byte) proves most keys new
		 * without comparing them to every earlier key.
		 */
		uint64_t seen[4] = {0, 0, 0, 0};
		for (size_t i = 0; i < s->n; i++) {
			const struct stt_pair *pr = &s->pairs[i];
			unsigned h = (unsigned)(pr->key_len * 31u + (unsigned char)pr->key[0] * 7u +
						(unsigned char)pr->key[pr->key_len - 1]) &
				     255u;
			uint64_t bit = UINT64_C(1) << (h & 63);
			seq[i] = 1;
			if (seen[h >> 6] & bit) {
				for (size_t j = i; j-- > 0;) {
					if (same_key(pr, &s->pairs[j])) {
						seq[i] = seq[j] + 1;
						break;
					}
				}
			}
			seen[h >> 6] |= bit;
		}
		return 0;
	}
	size_t size = 128;
	while (size < s->n * 2)
		size *= 2;
	/* slot holds 1 + index of the latest pair with that key, or 0 when free. */
	uint32_t *slot = calloc(size, sizeof(*slot));
	if (!slot)
		return -ENOMEM;
	for (size_t i = 0; i < s->n; i++) {
		const struct stt_pair *pr = &s->pairs[i];
		uint32_t h = 2166136261u;
		for (size_t k = 0; k < pr->key_len; k++)
			h = (h ^ (unsigned char)pr->key[k]) * 16777619u;
		size_t at = h & (size - 1);
		seq[i] = 1;
		while (slot[at]) {
			uint32_t j = slot[at] - 1;
			if (same_key(pr, &s->pairs[j])) {
				seq[i] = seq[j] + 1;
				break;
			}
			at = (at + 1) & (size - 1);
		}
		slot[at] = (uint32_t)i + 1;
	}
	free(slot);
	return 0;
}

int stt_to_json(const struct stt *s, struct buf *out, size_t *replaced)
{
	size_t bad = 0;
	uint32_t small[64];
	uint32_t *seq = s->n <= 64 ? small : malloc(s->n * sizeof(*seq));
	if (!seq)
		return -ENOMEM;
	int rc = key_occurrences(s, seq);
	if (rc < 0)
		goto out;
	/* Reserve the worst case once, so the loop below writes without checks. */
	rc = buf_reserve(out, json_bound(s));
	if (rc < 0)
		goto out;
	char *o = (char *)buf_head(out) + out->len;
	char *start = o;
	*o++ = '{';
	for (size_t i = 0; i < s->n; i++) {
		const struct stt_pair *pr = &s->pairs[i];
		if (i > 0)
			*o++ = ',';
		*o++ = '"';
		o = text_json_chars(o, (const unsigned char *)pr->key, pr->key_len, &bad);
		if (seq[i] > 1) {
			char digits[12];
			int nd = 0;
			for (uint32_t v = seq[i]; v; v /= 10)
				digits[nd++] = (char)('0' + v % 10);
			*o++ = '#';
			while (nd)
				*o++ = digits[--nd];
		}
		*o++ = '"';
		*o++ = ':';
		*o++ = '"';
		o = text_json_chars(o, (const unsigned char *)pr->val, pr->val_len, &bad);
		*o++ = '"';
	}
	*o++ = '}';
	out->len += (size_t)(o - start);
out:
	if (seq != small)
		free(seq);
	if (replaced)
		*replaced = bad;
	return rc;
}


int stt_escape(struct buf *out, const char *src, size_t len)
{
	if (len > SIZE_MAX / 2)
		return -ENOMEM;
	int rc = buf_reserve(out, 2 * len);
	if (rc < 0)
		return rc;
	char *o = (char *)buf_head(out) + out->len, *start = o;
	for (size_t i = 0; i < len; i++) {
		char c = src[i];
		if (c == '@') {
			*o++ = '@';
			*o++ = 'A';
		} else if (c == '/') {
			*o++ = '@';
			*o++ = 'S';
		} else {
			*o++ = c;
		}
	}
	out->len += (size_t)(o - start);
	return 0;
}
