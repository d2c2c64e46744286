/*
 * room: one recorded room's connection state machine. A room owns at most one connection
 * attempt at a time (net, then optional tls and ws layers, then the platform session) and
 * the persistent state between attempts: backoff, counters, the server rotation.
 *
 *   IDLE -> RESOLVING -> CONNECTING -> TLS_HANDSHAKE -> WS_UPGRADE -> JOINING -> LIVE
 *        (any failure) -> CLOSING -> BACKOFF -> RESOLVING ...      (stop) -> CLOSING -> freed
 *
 * room_fail() only records the reason and starts closing; the layers are freed in the
 * connection's close callback, so callers deep in a parser can fail a room safely, but must
 * check room_is_closing() after any call that can fail it.
 */
#ifndef DANMAKUD_ROOM_H
#define DANMAKUD_ROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "list.h"

struct rec;
struct platform;

enum room_state {
	ROOM_IDLE,
	ROOM_RESOLVING,
	ROOM_CONNECTING,
	ROOM_TLS_HANDSHAKE,
	ROOM_WS_UPGRADE,
	ROOM_JOINING,
	ROOM_LIVE,
	ROOM_BACKOFF,
	ROOM_CLOSING,
};

const char *room_state_name(enum room_state s);

enum server_scheme { SERVER_WSS, SERVER_WS, SERVER_TCP };

struct server {
	enum server_scheme scheme;
	uint16_t port;
	char host[256];      /* without brackets */
	char path[256];      /* "/" by default (websocket only) */
	char host_header[272];
	char url[600];       /* as given, normalised; goes into sessions.server */
};

/* Parse wss://host[:port][/path], ws://..., tcp://host:port. IPv6 literals in brackets.
 * Returns 0 or -EINVAL with a reason in err. */
int server_parse(const char *url, struct server *out, char *err, size_t errlen);

struct room_stats {
	uint64_t received;   /* records decoded for this room */
	uint64_t stored;     /* handed to the store */
	uint64_t foreign;    /* other rooms' messages, not stored */
	uint64_t skipped;    /* well-framed packets skipped (bad type, NULs, too many fields) */
	uint64_t replaced_utf8; /* invalid UTF-8 sequences replaced by U+FFFD in stored data */
	uint64_t reconnects; /* attempts after the first */
	uint64_t last_msg_ms; /* wall clock of the last record, 0 if none */
	uint64_t session_start_ms;
};

struct room {
	struct list link; /* in the recorder's room list */
	struct rec *rec;
	const struct platform *platform;
	int64_t id;
	char *label;
	enum room_state state;
	bool stopping;    /* stop requested: no reconnect, free after close */
	const char *stop_reason;

	/* the current attempt */
	struct net *net;
	struct tls *tls;
	struct ws *ws;
	struct platform_session *ps;
	const struct server *server;
	size_t server_idx;
	int64_t session_id;      /* 0 until TCP connected */
	int64_t session_msgs;
	uint64_t attempt_start;  /* uv_now() */
	uint64_t last_rx;        /* uv_now() of the last byte */
	uint64_t next_heartbeat; /* uv_now() */
	char reason[160];        /* why the attempt is ending */

	unsigned failures;       /* consecutive short-lived attempts */
	uv_timer_t backoff;
	struct room_stats stats;
};

/* Create a room (not started). Returns 0 or -ENOMEM. The rec owns it. */
int room_create(struct rec *rec, int64_t id, const char *label, struct room **out);
/* Begin connecting now. */
void room_start(struct room *r);
/* Called by the recorder's heartbeat timer every tick: sends heartbeats that are due and
 * fails attempts that are stalled or silent. */
void room_tick(struct room *r, uint64_t now);
/* Stop for good (logout, close with reason); the room frees itself once closed and then
 * tells the recorder via rec_room_gone(). */
void room_stop(struct room *r, const char *reason);
/* End the current attempt with a reason (printf-style) and schedule a reconnect. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void room_fail(struct room *r, const char *fmt, ...);

static inline bool room_is_closing(const struct room *r)
{
	return r->state == ROOM_CLOSING;
}

#endif
