/*
 * bili_session: the per-connection protocol of bilibili_platform (bilibili-protocol.md §4):
 * the auth packet as hello, empty heartbeats, no goodbye (the web client just closes). The
 * stream goes through a bili_reader; the auth reply joins the room or reports the refusal,
 * the heartbeat reply's popularity becomes a record when it changes, and each command
 * becomes records through bili_cmd, after its ACK when it asks for one.
 */
#include "bilibili.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "bili_cmd.h"

struct platform_session {
	struct bili_reader reader;
	struct bili_cmd cmd;
	int64_t room_id;
	const struct bili_params *params; /* NULL: guest, no token, protover 3 */
	bool joined;
	bool has_popularity;
	uint32_t popularity; /* the last one recorded */
	uint64_t skipped;    /* packets the reader delivered that were unusable */
	const char *skip_why;
	const struct platform_events *ev;
	void *user_data;
	/* Valid during feed only. */
	int64_t now_ms;
	int64_t session_id;
	struct buf *out;
};

int bili_session_create(int64_t room_id, const void *params, const struct platform_events *ev,
                        void *user_data, struct platform_session **out)
{
	struct platform_session *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	bili_reader_init(&s->reader);
	bili_cmd_init(&s->cmd); /* seeds jansson, if nothing did before */
	s->room_id = room_id;
	s->params = params;
	s->ev = ev;
	s->user_data = user_data;
	*out = s;
	return 0;
}

void bili_session_destroy(struct platform_session *s)
{
	if (!s)
		return;
	bili_reader_finish(&s->reader);
	bili_cmd_finish(&s->cmd);
	free(s);
}

/* queue_uuid: new per auth, as the 2026 web client makes it (protocol §4.1). */
static uint32_t queue_uuid(void)
{
	uint32_t v;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
		return v;
	/* No entropy yet (early boot): the clock and a counter still differ per auth. */
	static uint64_t n;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t x = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + ++n;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull; /* splitmix64's finaliser */
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return (uint32_t)(x ^ (x >> 31));
}

static bool terminated(const char *s, size_t cap)
{
	return memchr(s, 0, cap) != NULL;
}

int bili_hello(struct platform_session *s, struct buf *out)
{
	const struct bili_params *p = s->params;
	if (p &&
	    (!terminated(p->buvid, sizeof(p->buvid)) || !terminated(p->token, sizeof(p->token))))
		return -EINVAL;
	struct bili_auth a = {
	    .uid = p ? p->uid : 0,
	    .room_id = s->room_id,
	    .protover = p && p->protover == 2 ? 2 : 3,
	    .buvid = p ? p->buvid : "",
	    .queue = queue_uuid(),
	    .key = p ? p->token : NULL,
	};
	return bili_pack_auth(out, &a);
}

int bili_heartbeat(struct platform_session *s, struct buf *out)
{
	(void)s;
	return bili_pack_heartbeat(out);
}

int bili_goodbye(struct platform_session *s, struct buf *out)
{
	/* Bilibili has no logout packet: the connection just closes. */
	(void)s;
	(void)out;
	return 0;
}

static void skip(struct platform_session *s, const char *why)
{
	s->skipped++;
	s->skip_why = why;
}

/* op 8: {"code":0} (or an empty body) joins; any other code is the server refusing us. */
static int auth_reply(struct platform_session *s, const uint8_t *body, size_t len)
{
	int64_t code = 0;
	if (len > 0) {
		json_error_t err;
		json_t *j = json_loadb((const char *)body, len, 0, &err);
		if (!j && json_error_code(&err) == json_error_out_of_memory)
			return -ENOMEM;
		json_t *c = json_object_get(j, "code"); /* NULL when j is not an object */
		bool ok = json_is_integer(c);
		if (ok)
			code = json_integer_value(c);
		json_decref(j);
		if (!ok) {
			/* Not joined: the room's join timeout ends the connection. */
			skip(s, "auth reply without an integer code");
			return 0;
		}
	}
	if (code == 0) {
		if (!s->joined) {
			s->joined = true;
			if (s->ev->on_joined)
				s->ev->on_joined(s->user_data);
		}
		return 0;
	}
	if (s->ev->on_server_error)
		s->ev->on_server_error(s->user_data, code,
		                       code == -101 ? "token error (auth refused)"
		                                    : "auth refused");
	return 0;
}

static int deliver(void *user_data, const struct record *rec)
{
	struct platform_session *s = user_data;
	if (s->ev->on_record)
		s->ev->on_record(s->user_data, rec);
	return 0;
}

/* op 3: a u32 popularity (then perhaps an echo we never cause: our heartbeats are empty).
 * Recorded when it differs from the last one of this connection; the first always. */
static int heartbeat_reply(struct platform_session *s, const uint8_t *body, size_t len)
{
	if (len < 4) {
		skip(s, "heartbeat reply shorter than 4 bytes");
		return 0;
	}
	uint32_t pop = (uint32_t)body[0] << 24 | (uint32_t)body[1] << 16 | (uint32_t)body[2] << 8 |
	               (uint32_t)body[3];
	if (s->has_popularity && pop == s->popularity)
		return 0;
	s->has_popularity = true;
	s->popularity = pop;
	char data[40];
	int n = snprintf(data, sizeof(data), "{\"popularity\":%" PRIu32 "}", pop);
	struct record rec = {
	    .platform = "bilibili",
	    .room_id = s->room_id,
	    .ts = s->now_ms,
	    .session_id = s->session_id,
	    .type = "popularity",
	    .data = data,
	    .data_len = (size_t)n,
	};
	return deliver(s, &rec);
}

/* op 5: one command; its ACK (protocol §4.4) goes out before it is handled, as the web
 * client does. */
static int command(struct platform_session *s, const uint8_t *body, size_t len)
{
	const char *why = NULL;
	int rc = bili_cmd_parse(&s->cmd, body, len, &why);
	if (rc > 0) {
		skip(s, why);
		rc = 0;
	} else if (rc == 0) {
		const char *msg_id, *cmd;
		int64_t type;
		if (bili_cmd_ack(&s->cmd, &msg_id, &cmd, &type)) {
			rc = bili_pack_ack(s->out, msg_id, cmd, type);
			if (rc == -EMSGSIZE)
				rc = 0; /* an id near 1 MiB: no ACK, the message is still kept */
		}
		if (rc == 0)
			rc = bili_cmd_records(&s->cmd, s->room_id, s->now_ms, s->session_id,
			                      deliver, s);
	}
	bili_cmd_clear(&s->cmd);
	return rc < 0 ? rc : 0;
}

static int on_packet(void *user_data, uint32_t op, uint16_t ver, const uint8_t *body, size_t len)
{
	struct platform_session *s = user_data;
	(void)ver; /* the reader looked at it; auth and heartbeat replies come with 0 or 1 */
	switch (op) {
	case BILI_OP_AUTH_REPLY:
		return auth_reply(s, body, len);
	case BILI_OP_HEARTBEAT_REPLY:
		return heartbeat_reply(s, body, len);
	case BILI_OP_MESSAGE:
		return command(s, body, len);
	default:
		skip(s, "unexpected operation");
		return 0;
	}
}

int bili_feed(struct platform_session *s, int64_t now_ms, int64_t session_id, const uint8_t *data,
              size_t len, struct buf *out)
{
	s->now_ms = now_ms;
	s->session_id = session_id;
	s->out = out;
	uint64_t skipped_before = s->reader.skipped, packets_before = s->reader.packets;
	s->skipped = 0;
	int rc = bili_reader_feed(&s->reader, data, len, on_packet, s);
	s->out = NULL;
	/* Reported once per feed, not per packet: a flood of bad packets costs two events. */
	if (s->reader.skipped > skipped_before && s->ev->on_skipped)
		s->ev->on_skipped(s->user_data, s->reader.skipped - skipped_before,
		                  s->reader.skip_why);
	if (s->skipped && s->ev->on_skipped)
		s->ev->on_skipped(s->user_data, s->skipped, s->skip_why);
	if (rc < 0)
		return rc;
	uint64_t n = s->reader.packets - packets_before;
	return n > INT_MAX ? INT_MAX : (int)n;
}
