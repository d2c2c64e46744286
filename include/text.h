/*
 * text: strict decimal integers, UTF-8 checking and repair, JSON string escaping. Pure, no
 * allocation but into the caller's buf. One copy of each, shared by every parser and writer.
 */
#ifndef DANMAKUD_TEXT_H
#define DANMAKUD_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/*
 * s[0..n) as a decimal integer in [min, max]: digits only, a leading '-' only when min < 0;
 * no '+', no spaces, no overflow. s may be NULL (false).
 */
bool text_int(const char *s, size_t n, int64_t min, int64_t max, int64_t *out);
/* The same for a NUL-terminated s. */
bool text_int_str(const char *s, int64_t min, int64_t max, int64_t *out);

/*
 * Decode one UTF-8 sequence at s[0..n) (n >= 1): its length, with the code point in *cp, or 0
 * when s does not start with a shortest-form sequence of a scalar value (no surrogates,
 * <= U+10FFFF).
 */
size_t text_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* Length of the longest prefix of p[0..n) that is valid UTF-8 (n when all of it is). */
size_t text_utf8_valid_prefix(const char *p, size_t n);

/*
 * Append p[0..n) to out as valid UTF-8: CESU-8 surrogate pairs (old Douyu emoji) joined into
 * real sequences, any other invalid sequence replaced by one U+FFFD per maximal subpart (as
 * Python's errors="replace"), counted in *replaced (may be NULL). No escaping.
 * Returns 0 or -ENOMEM.
 */
int text_utf8_repair(struct buf *out, const char *p, size_t n, size_t *replaced);

/*
 * Write p[0..n) as the inside of a JSON string at o, which has room for 6 * n bytes; repaired
 * as text_utf8_repair does (replacements added to *bad); '"', '\\' and control characters
 * escaped. Returns the end of what was written.
 */
char *text_json_chars(char *o, const unsigned char *p, size_t n, size_t *bad);

/* s[0..n) for an error message: at most 60 bytes (cut at a character boundary, then "..."),
 * control characters and DEL as \xNN. dst should hold TEXT_QUOTE_CAP bytes. Returns dst. */
#define TEXT_QUOTE_CAP 256
const char *text_quote(char *dst, size_t cap, const char *s, size_t n);

/* printf into err[0..errlen) when err is not NULL and errlen > 0 (always NUL-terminated,
 * cut to fit); returns rc, so that `return text_err(-EPROTO, err, errlen, ...)` reports and
 * fails in one step. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
int text_err(int rc, char *err, size_t errlen, const char *fmt, ...);

/* Append s[0..n) as a quoted JSON string (see text_json_chars). Returns 0 or -ENOMEM. */
int text_json_string(struct buf *out, const char *s, size_t n, size_t *replaced);

#endif
