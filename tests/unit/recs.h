/*
 * recs.h: records copied out of a platform's callback (their strings are only borrowed),
 * for the Bilibili unit tests, with a one-line signature per record to compare sequences.
 */
#ifndef DANMAKUD_TEST_RECS_H
#define DANMAKUD_TEST_RECS_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

#define RECS_MAX 128

struct rec_copy {
	char *type, *nick, *text, *cid, *data, *decoded;
	size_t data_len, decoded_len, replaced_utf8;
	bool has_uid, has_level;
	int64_t uid, level, room_id, ts, session_id;
	const char *platform;
};

struct recs {
	struct rec_copy r[RECS_MAX];
	int n;
	int dropped; /* past RECS_MAX */
};

static inline char *recs_dup(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = 0;
	}
	return p;
}

static inline char *recs_dupz(const char *s)
{
	return s ? recs_dup(s, strlen(s)) : NULL;
}

static inline void recs_add(struct recs *rs, const struct record *rec)
{
	if (rs->n >= RECS_MAX) {
		rs->dropped++;
		return;
	}
	struct rec_copy *c = &rs->r[rs->n++];
	c->platform = rec->platform;
	c->room_id = rec->room_id;
	c->ts = rec->ts;
	c->session_id = rec->session_id;
	c->type = recs_dupz(rec->type);
	c->nick = recs_dupz(rec->nick);
	c->text = recs_dupz(rec->text);
	c->cid = recs_dupz(rec->cid);
	c->data = recs_dup(rec->data, rec->data_len);
	c->data_len = rec->data_len;
	c->decoded = rec->decoded ? recs_dup(rec->decoded, rec->decoded_len) : NULL;
	c->decoded_len = rec->decoded_len;
	c->replaced_utf8 = rec->replaced_utf8;
	c->has_uid = rec->has_uid;
	c->uid = rec->uid;
	c->has_level = rec->has_level;
	c->level = rec->level;
}

static inline void recs_free(struct recs *rs)
{
	for (int i = 0; i < rs->n; i++) {
		struct rec_copy *c = &rs->r[i];
		free(c->type);
		free(c->nick);
		free(c->text);
		free(c->cid);
		free(c->data);
		free(c->decoded);
	}
	memset(rs, 0, sizeof(*rs));
}

/* Everything a record holds, as one comparable string (caller frees). */
static inline char *recs_sig(const struct rec_copy *c)
{
	size_t n = 256 + c->data_len + c->decoded_len;
	const char *strs[] = {c->type, c->nick, c->text, c->cid};
	for (int i = 0; i < 4; i++)
		n += strs[i] ? strlen(strs[i]) : 0;
	char *p = malloc(n);
	if (!p)
		return NULL;
	snprintf(
	    p, n, "%s|%s|%d:%" PRId64 "|%s|%d:%" PRId64 "|%s|%s|%" PRId64 "|%" PRId64 "|%zu|%s|%s",
	    c->platform, c->type, c->has_uid, c->uid, c->nick ? c->nick : "(null)", c->has_level,
	    c->level, c->text ? c->text : "(null)", c->cid ? c->cid : "(null)", c->ts,
	    c->session_id, c->replaced_utf8, c->data, c->decoded ? c->decoded : "(null)");
	return p;
}

/* Whether a and b hold the same records, in order; prints the first difference. */
static inline bool recs_same(const struct recs *a, const struct recs *b)
{
	if (a->n != b->n || a->dropped || b->dropped) {
		printf("# %d records vs %d\n", a->n, b->n);
		return false;
	}
	for (int i = 0; i < a->n; i++) {
		char *x = recs_sig(&a->r[i]), *y = recs_sig(&b->r[i]);
		bool same = x && y && strcmp(x, y) == 0;
		if (!same)
			printf("# record %d differs:\n#   %.200s\n#   %.200s\n", i, x ? x : "",
			       y ? y : "");
		free(x);
		free(y);
		if (!same)
			return false;
	}
	return true;
}

#endif
