/*
 * stt: Douyu's "serialized text" (key@=value/key@=value/...), decoded in one pass.
 *
 * Pure functions over byte buffers. A decoded message keeps its pairs in wire order,
 * duplicates included; each key and value is unescaped exactly once (@A -> @, @S -> /,
 * anything else after @ is kept as is) into memory owned by the struct stt, so nested values
 * (el, list, chatmsg, ...) stay as text and can be decoded again with another struct stt.
 */
#ifndef DANMAKUD_STT_H
#define DANMAKUD_STT_H

#include <stddef.h>
#include <stdint.h>

struct buf;

/* Hostile-input bounds: a message with more pairs than this is rejected with -E2BIG. */
#define STT_MAX_PAIRS 4096

struct stt_pair {
	const char *key; /* NUL-terminated, unescaped */
	size_t key_len;
	const char *val; /* NUL-terminated, unescaped once */
	size_t val_len;
};

struct stt {
	struct stt_pair *pairs;
	size_t n;
	size_t cap;
	char *text; /* unescaped keys and values, NUL-separated */
	size_t text_cap;
};

void stt_init(struct stt *s);
void stt_finish(struct stt *s);

/*
 * Decode body[0..len) (no terminating NUL needed). Segments are separated by '/'; a segment
 * without "@=" or with an empty key is skipped; a missing final '/' is tolerated. Replaces
 * the previous contents of s. Returns 0, -ENOMEM, or -E2BIG (too many pairs; s is emptied).
 * Pointers into s stay valid until the next stt_decode or stt_finish on s.
 */
int stt_decode(struct stt *s, const char *body, size_t len);

/*
 * Free the text or pairs array when its capacity exceeds keep bytes (after a huge message;
 * the next stt_decode allocates again). s is left empty: pointers into it become invalid.
 */
void stt_trim(struct stt *s, size_t keep);

/* The value of the first pair named key, or NULL. */
const char *stt_get(const struct stt *s, const char *key);

/*
 * Append a JSON object holding every pair of s, in order, to out. Values are JSON strings.
 * A key seen before in the same message is written as "key#2", "key#3", ...
 * The output is always valid UTF-8: CESU-8 surrogate pairs are converted, any other invalid
 * sequence becomes U+FFFD and is counted in *replaced (may be NULL). Control characters are
 * escaped. Returns 0 or -ENOMEM.
 */
int stt_to_json(const struct stt *s, struct buf *out, size_t *replaced);

/* Escape src (@ -> @A, / -> @S) and append it to out. Returns 0 or -ENOMEM. */
int stt_escape(struct buf *out, const char *src, size_t len);

#endif
