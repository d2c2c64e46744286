/*
 * fuzz_douyu: libFuzzer target for packet reassembly and everything a packet goes through.
 * Input: byte 0 gives k (0..15), the next k bytes are piece sizes, the rest is the stream.
 * The stream is fed to one reader whole and to another in the pieces (cycled, 0 meaning 1),
 * and both must deliver the same packets and end the same way. Each packet is decoded with
 * stt_decode, written with stt_to_json and mapped by douyu_record/douyu_other_room; the split
 * stream also runs through douyu_platform. Violations trap.
 */
#include "douyu.h"
#include "fuzz.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "platform.h"

#define MAX_SEEN 4096

struct seen {
	size_t n;
	uint64_t hash[MAX_SEEN];
	struct stt stt;
	struct stt nested;
	struct buf json;
};

static int on_packet(void *user_data, const char *body, size_t len)
{
	struct seen *s = user_data;
	check(memchr(body, 0, len) == NULL);
	uint64_t h = 14695981039346656037ull ^ len;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)body[i]) * 1099511628211ull;
	if (s->n < MAX_SEEN)
		s->hash[s->n] = h;
	s->n++;
	int rc = stt_decode(&s->stt, body, len);
	check(rc == 0 || rc == -E2BIG);
	if (rc == 0) {
		struct record rec = {0};
		rc = douyu_record(&s->stt, &s->nested, 9999, &s->json, &rec);
		check(rc == 0 || (rc == -EMSGSIZE && s->json.len == 0));
		if (rc < 0)
			return 0;
		check(rec.type && rec.data && rec.data[rec.data_len] == 0);
		check(rec.data[0] == '{' && rec.data[rec.data_len - 1] == '}');
		check(strlen(rec.data) == rec.data_len);
		check(!rec.text || strcmp(rec.type, "chatmsg") == 0 ||
		      strcmp(rec.type, "comm_chatmsg") == 0 || strcmp(rec.type, "error") == 0);
		check(!rec.cid || strcmp(rec.type, "chatmsg") == 0);
		check(rec.room_id == 9999);
		(void)douyu_other_room(&s->stt, 9999);
	}
	return 0;
}

static void ev_joined(void *user_data)
{
}

static void ev_record(void *user_data, const struct record *rec)
{
	check(rec->type != NULL && rec->data != NULL && rec->session_id == 2);
}

static void ev_foreign(void *user_data, const char *type)
{
	check(type != NULL);
}

static void ev_error(void *user_data, int64_t code, const char *text)
{
	check(text != NULL);
}

/* Skipped packets reported through on_skipped (the platform keeps no counter of its own). */
static uint64_t plat_skipped;

static void ev_skipped(void *user_data, uint64_t n, const char *why)
{
	check(n > 0 && why != NULL);
	plat_skipped += n;
}

static const struct platform_events events = {ev_joined, ev_record, ev_foreign, ev_error,
					      ev_skipped};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_split sp;
	if (!fuzz_split_init(&sp, data, size))
		return 0;
	const uint8_t *stream = sp.stream;
	size_t len = sp.len;

	static struct seen whole, split;
	whole.n = 0;
	split.n = 0;

	struct douyu_reader r;
	douyu_reader_init(&r);
	int rc_whole = douyu_reader_feed(&r, stream, len, on_packet, &whole);
	check(rc_whole == 0 || rc_whole == -EPROTO);
	uint64_t skipped = r.skipped;
	check(r.packets == whole.n);
	douyu_reader_finish(&r);

	douyu_reader_init(&r);
	struct platform_session *ps = NULL;
	plat_skipped = 0;
	check(douyu_platform.session_create(9999, NULL, &events, NULL, &ps) == 0);
	struct buf out;
	buf_init(&out);
	int rc_split = 0, rc_plat = 0;
	size_t off = 0, plat_packets = 0;
	while (off < len && rc_split == 0) {
		size_t n = fuzz_split_next(&sp, off);
		rc_split = douyu_reader_feed(&r, stream + off, n, on_packet, &split);
		if (rc_plat >= 0) {
			/* feed returns how many packets the bytes completed, or an error. */
			rc_plat = douyu_platform.feed(ps, 1, 2, stream + off, n, &out);
			if (rc_plat >= 0)
				plat_packets += (size_t)rc_plat;
		}
		check(r.pending.len <= DOUYU_MAX_LEN + 4);
		off += n;
	}
	check(rc_split == rc_whole && (rc_plat < 0 ? rc_plat : 0) == rc_whole);
	check(rc_whole < 0 || plat_packets == whole.n);
	check(split.n == whole.n && r.skipped == skipped);
	for (size_t j = 0; j < whole.n && j < MAX_SEEN; j++)
		check(split.hash[j] == whole.hash[j]);
	check(plat_skipped >= skipped);
	douyu_reader_finish(&r);
	douyu_platform.session_destroy(ps);
	buf_finish(&out);
	return 0;
}
