/*
 * fuzz_pg_copy: what a chat message can do to the COPY text danmakud sends PostgreSQL. Chat
 * text, nicknames and raw JSON come from the platforms' servers; a tab, newline or backslash
 * that escaped its field would shift columns or start a new row of someone else's choosing.
 * The input is cut at its first 0xFF 0xFE pair into two fields (a middle one and a last one);
 * each is written with pg_copy_str, then the line is read back the way PostgreSQL's COPY
 * reader does: exactly two fields, each decoding to valid UTF-8 without NUL, equal to the
 * input whenever the input was valid UTF-8 without NUL.
 */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "pg.h"
#include "text.h"

/* One field of a COPY text line at p (up to a raw tab or newline); returns the bytes read
 * including the separator, the decoded field in out/out_len, the separator in *sep. */
static size_t read_field(const char *p, size_t n, char *out, size_t *out_len, char *sep)
{
	size_t k = 0, i = 0;
	for (; i < n; i++) {
		char c = p[i];
		if (c == '\t' || c == '\n') {
			*sep = c;
			*out_len = k;
			return i + 1;
		}
		check(c != '\0' && c != '\r'); /* a raw CR ends a line for PostgreSQL too */
		if (c != '\\') {
			out[k++] = c;
			continue;
		}
		check(++i < n);
		switch (p[i]) {
		case '\\': out[k++] = '\\'; break;
		case 't': out[k++] = '\t'; break;
		case 'n': out[k++] = '\n'; break;
		case 'r': out[k++] = '\r'; break;
		default: check(false);
		}
	}
	check(false); /* no separator */
	return 0;
}

static void check_field(const char *in, size_t n, const char *dec, size_t k)
{
	check(text_utf8_valid_prefix(dec, k) == k);
	check(memchr(dec, 0, k) == NULL);
	if (text_utf8_valid_prefix(in, n) == n && !memchr(in, 0, n))
		check(k == n && memcmp(dec, in, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	size_t cut = size;
	for (size_t i = 0; i + 1 < size; i++)
		if (data[i] == 0xff && data[i + 1] == 0xfe) {
			cut = i;
			break;
		}
	const char *a = in, *b = cut < size ? in + cut + 2 : in + size;
	size_t na = cut, nb = cut < size ? size - cut - 2 : 0;
	struct buf line;
	buf_init(&line);
	check(pg_copy_str(&line, a, na, false) == 0);
	check(pg_copy_str(&line, b, nb, true) == 0);
	char *dec = malloc(line.len + 1);
	check(dec != NULL);
	const char *p = (const char *)buf_head(&line);
	size_t k1, k2;
	char s1 = 0, s2 = 0;
	size_t used = read_field(p, line.len, dec, &k1, &s1);
	check(s1 == '\t');
	check_field(a, na, dec, k1);
	used += read_field(p + used, line.len - used, dec, &k2, &s2);
	check(s2 == '\n' && used == line.len);
	check_field(b, nb, dec, k2);
	free(dec);
	buf_finish(&line);
	return 0;
}
