/*
 * text: the small text routines every parser and writer shares, written once: strict decimal
 * integers, UTF-8 checking and repair, and JSON string escaping. The JSON and repair paths
 * carry every chat message (stt_to_json), so they scan eight bytes at a time.
 */
#include "text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

bool text_int(const char *s, size_t n, int64_t min, int64_t max, int64_t *out)
{
	if (!s || n == 0)
		return false;
	bool neg = s[0] == '-';
	if (neg && (min >= 0 || n == 1))
		return false;
	/* Magnitude bound: |min| for negatives, max otherwise (both fit in uint64_t). */
	uint64_t lim = neg ? (uint64_t)0 - (uint64_t)min : (uint64_t)(max < 0 ? 0 : max);
	uint64_t v = 0;
	for (size_t i = neg; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (lim < d || v > (lim - d) / 10)
			return false;
		v = v * 10 + d;
	}
	int64_t x = neg ? (int64_t)(0 - v) : (int64_t)v;
	if (x < min || x > max)
		return false;
	*out = x;
	return true;
}

bool text_int_str(const char *s, int64_t min, int64_t max, int64_t *out)
{
	return s && text_int(s, strlen(s), min, max, out);
}

size_t text_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char b = s[0];
	if (b < 0x80) {
		*cp = b;
		return 1;
	}
	size_t len = (b & 0xe0) == 0xc0 ? 2 : (b & 0xf0) == 0xe0 ? 3 : (b & 0xf8) == 0xf0 ? 4 : 0;
	if (len == 0 || len > n)
		return 0;
	static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
	uint32_t c = b & (0x7f >> len);
	for (size_t k = 1; k < len; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[k] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8. */
	if (c < min_cp[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

size_t text_utf8_valid_prefix(const char *p, size_t n)
{
	const unsigned char *u = (const unsigned char *)p;
	size_t i = 0;
	while (i < n) {
		/* ASCII eight bytes at a time, the rest one sequence at a time. */
		while (i + 8 <= n) {
			uint64_t x;
			memcpy(&x, u + i, 8);
			if (x & HIGHS)
				break;
			i += 8;
		}
		if (i >= n)
			break;
		uint32_t cp;
		size_t len = text_utf8_decode(u + i, n - i, &cp);
		if (len == 0)
			return i;
		i += len;
	}
	return n;
}


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

char *text_json_chars(char *o, const unsigned char *p, size_t n, size_t *bad)
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

int text_utf8_repair(struct buf *out, const char *p, size_t n, size_t *replaced)
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
		size_t ok = text_utf8_valid_prefix((const char *)u + i, n - i);
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

int text_json_string(struct buf *out, const char *s, size_t n, size_t *replaced)
{
	size_t bad = 0;
	if (n > (SIZE_MAX - 2) / 6)
		return -ENOMEM;
	int rc = buf_reserve(out, 6 * n + 2);
	if (rc < 0)
		return rc;
	char *o = (char *)buf_head(out) + out->len, *start = o;
	*o++ = '"';
	o = text_json_chars(o, (const unsigned char *)s, n, &bad);
	*o++ = '"';
	out->len += (size_t)(o - start);
	if (replaced)
		*replaced = bad;
	return 0;
}

int text_err(int rc, char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

const char *text_quote(char *dst, size_t cap, const char *s, size_t n)
{
	const size_t max = 60;
	size_t o = 0;
	bool cut = n > max;
	if (cut) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	for (size_t i = 0; i < n && o + 5 < cap; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f)
			o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", ch);
		else
			dst[o++] = (char)ch;
	}
	if (cut && o + 4 <= cap) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
	return dst;
}
