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

/* ---- JSON ---- */

/* True when one of the 8 bytes of x is >= 0x80, < 0x20, '"' or '\\'. */
static inline bool word_needs_care(uint64_t x)
{
	uint64_t q = x ^ (ONES * '"');
	uint64_t b = x ^ (ONES * '\\');
	uint64_t t = (x | ((x - ONES * 0x20) & ~x)) | ((q - ONES) & ~q) | ((b - ONES) & ~b);
	return (t & HIGHS) != 0;
}

static const char hex[] = "0123456789abcdef";

static inline char *put_fffd(char *o, size_t *bad)
{
	(*bad)++;
	*o++ = (char)0xEF;
	*o++ = (char)0xBF;
	*o++ = (char)0xBD;
	return o;
}

static inline bool is_cont(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

/*
 * Handle one non-ASCII sequence at p[0..n) (p[0] >= 0x80); write it (or U+FFFD) to o and
 * return how many input bytes it used. An invalid sequence is replaced by one U+FFFD per
 * maximal subpart (the lead byte plus the continuation bytes that were valid so far), the
 * WHATWG/Unicode recommendation that also Python's errors="replace" follows.
 */
static size_t utf8_seq(const unsigned char *p, size_t n, char **op, size_t *bad)
{
	char *o = *op;
	unsigned char c = p[0];
	size_t need;
	unsigned char lo = 0x80, hi = 0xBF;
	if (c >= 0xC2 && c <= 0xDF) {
		need = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 3;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0xBF; /* surrogates (A0..BF) are sorted out below */
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else {
		*op = put_fffd(o, bad);
		return 1;
	}
	if (n < 2 || p[1] < lo || p[1] > hi) {
		*op = put_fffd(o, bad);
		return 1;
	}
	for (size_t k = 2; k < need; k++) {
		if (k >= n || !is_cont(p[k])) {
			*op = put_fffd(o, bad);
			return k;
		}
	}
	if (c == 0xED && p[1] >= 0xA0) {
		/*
		 * A UTF-16 surrogate encoded on its own. Old Douyu bodies carry emoji as CESU-8,
		 * a high then a low surrogate (douyu-protocol.md §3.3): join such a pair into the
		 * real 4-byte sequence. Anything else is a lone surrogate: replace it.
		 */
		if (p[1] <= 0xAF && n >= 6 && p[3] == 0xED && p[4] >= 0xB0 && p[4] <= 0xBF &&
		    is_cont(p[5])) {
			uint32_t h = ((uint32_t)(p[1] & 0x0F) << 6) | (p[2] & 0x3F);
			uint32_t l = ((uint32_t)(p[4] & 0x0F) << 6) | (p[5] & 0x3F);
			uint32_t cp = 0x10000 + ((h << 10) | l);
			*o++ = (char)(0xF0 | (cp >> 18));
			*o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
			*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
			*o++ = (char)(0x80 | (cp & 0x3F));
			*op = o;
			return 6;
		}
		*op = put_fffd(o, bad);
		return 3;
	}
	memcpy(o, p, need);
	*op = o + need;
	return need;
}

/* Bytes copied to JSON as they are: printable ASCII other than '"' and '\\'. */
static const bool plain[256] = {
	[' '] = 1, ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1,
	[')'] = 1, ['*'] = 1, ['+'] = 1, [','] = 1, ['-'] = 1, ['.'] = 1, ['/'] = 1, ['0'] = 1,
	['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1,
	['9'] = 1, [':'] = 1, [';'] = 1, ['<'] = 1, ['='] = 1, ['>'] = 1, ['?'] = 1, ['@'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
	['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
	['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
	['Y'] = 1, ['Z'] = 1, ['['] = 1, [']'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['a'] = 1,
	['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
	['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1,
	['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1,
	['z'] = 1, ['{'] = 1, ['|'] = 1, ['}'] = 1, ['~'] = 1, [0x7f] = 1,
};

/* Write p[0..n) as the inside of a JSON string; o has room for 6 * n bytes. */
static char *json_chars(char *o, const unsigned char *p, size_t n, size_t *bad)
{
	size_t i = 0;
	while (i < n) {
		/* Runs of plain ASCII, eight bytes at a time, then one at a time. */
		while (i + 8 <= n) {
			uint64_t x;
			memcpy(&x, p + i, 8);
			if (word_needs_care(x))
				break;
			memcpy(o, &x, 8);
			o += 8;
			i += 8;
		}
		while (i < n && plain[p[i]])
			*o++ = (char)p[i++];
		if (i >= n)
			break;
		unsigned char c = p[i];
		if (c >= 0x80) {
			/* The common case in Chinese chat: a 3-byte sequence outside E0, ED. */
			if (c >= 0xE1 && c <= 0xEF && c != 0xED && n - i >= 3 && is_cont(p[i + 1]) &&
			    is_cont(p[i + 2])) {
				memcpy(o, p + i, 3);
				o += 3;
				i += 3;
				continue;
			}
			i += utf8_seq(p + i, n - i, &o, bad);
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"':
		case '\\':
			*o++ = (char)c;
			break;
		case '\n':
			*o++ = 'n';
			break;
		case '\r':
			*o++ = 'r';
			break;
		case '\t':
			*o++ = 't';
			break;
		case '\b':
			*o++ = 'b';
			break;
		case '\f':
			*o++ = 'f';
			break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
			break;
		}
		i++;
	}
	return o;
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
	/*
	 * Reserve the worst case once: every byte may become \u00XX, and each pair adds quotes,
	 * ':', ',' and a "#NNNN" suffix.
	 */
	size_t need = 2;
	for (size_t i = 0; i < s->n; i++)
		need += 6 * (s->pairs[i].key_len + s->pairs[i].val_len) + 24;
	rc = buf_reserve(out, need);
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
		o = json_chars(o, (const unsigned char *)pr->key, pr->key_len, &bad);
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
		o = json_chars(o, (const unsigned char *)pr->val, pr->val_len, &bad);
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

size_t stt_utf8_valid_prefix(const char *p, size_t n)
{
	const unsigned char *u = (const unsigned char *)p;
	size_t i = 0;
	while (i < n) {
		unsigned char c = u[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		/* Same rules as utf8_seq, minus the repairs: stop at the first bad sequence. */
		size_t need;
		unsigned char lo = 0x80, hi = 0xBF;
		if (c >= 0xC2 && c <= 0xDF) {
			need = 2;
		} else if (c >= 0xE0 && c <= 0xEF) {
			need = 3;
			if (c == 0xE0)
				lo = 0xA0;
			else if (c == 0xED)
				hi = 0x9F; /* no surrogates */
		} else if (c >= 0xF0 && c <= 0xF4) {
			need = 4;
			if (c == 0xF0)
				lo = 0x90;
			else if (c == 0xF4)
				hi = 0x8F;
		} else {
			return i;
		}
		if (n - i < need || u[i + 1] < lo || u[i + 1] > hi)
			return i;
		for (size_t k = 2; k < need; k++)
			if (!is_cont(u[i + k]))
				return i;
		i += need;
	}
	return n;
}

int stt_utf8_repair(struct buf *out, const char *p, size_t n, size_t *replaced)
{
	size_t bad = 0;
	if (replaced)
		*replaced = 0;
	if (n == 0)
		return 0;
	if (n > SIZE_MAX / 3)
		return -ENOMEM;
	/* Each input byte becomes at most 3 output bytes (one U+FFFD). */
	int rc = buf_reserve(out, 3 * n);
	if (rc < 0)
		return rc;
	char *o = (char *)buf_head(out) + out->len, *start = o;
	const unsigned char *u = (const unsigned char *)p;
	size_t i = 0;
	while (i < n) {
		size_t ok = stt_utf8_valid_prefix((const char *)u + i, n - i);
		memcpy(o, u + i, ok);
		o += ok;
		i += ok;
		if (i < n)
			i += utf8_seq(u + i, n - i, &o, &bad);
	}
	out->len += (size_t)(o - start);
	if (replaced)
		*replaced = bad;
	return 0;
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
