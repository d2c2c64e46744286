/*
 * room: one recorded room's connection state machine. A room owns at most one connection
 * attempt at a time (a transport connection, then optional tls and ws layers, then the
 * platform session) and the persistent state between attempts: backoff, counters, the server
 * rotation.
 *
 *   IDLE -> [PREPARING ->] CONNECTING -> TLS_HANDSHAKE -> WS_UPGRADE -> JOINING -> LIVE
 *        (any failure) -> CLOSING -> BACKOFF -> [PREPARING ->] CONNECTING ...
 *        (stop) -> CLOSING -> freed
 * PREPARING is the platform's asynchronous prepare step (Bilibili: HTTP calls for the real
 * room id and a token), when it has one; its result names the servers of the attempt.
 *
 * A room knows nothing of the recorder or the store: what it needs comes in a struct room_env
 * (shared by every room of a recorder, owned by the caller) and what it has to say goes out
 * through struct room_events. The transport is a table of functions (net.c's in production,
 * a scripted fake in tests/unit/test_room.c), and time is the env's clock, so the whole state
 * machine runs without sockets.
 *
 * Failures only record the reason and start closing the transport; the layers are freed in
 * the transport's close callback, where the session ends and the reconnect is scheduled.
 */
#ifndef DANMAKUD_ROOM_H
#define DANMAKUD_ROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "net.h"
#include "record.h"
#include "server.h"

struct platform;
struct tls_config;
struct room;

enum room_state {
	ROOM_IDLE,
	ROOM_PREPARING,
	ROOM_CONNECTING,
	ROOM_TLS_HANDSHAKE,
	ROOM_WS_UPGRADE,
	ROOM_JOINING,
	ROOM_LIVE,
	ROOM_BACKOFF,
	ROOM_CLOSING,
};

const char *room_state_name(enum room_state s);

/* The transport under the room: net.c's functions in production (room_net_transport). */
struct room_transport {
	int (*connect)(struct net_ctx *ctx, const char *host, uint16_t port,
		       uint64_t addr_timeout_ms, unsigned start, const struct net_callbacks *cb,
		       void *user_data, struct net **out);
	int (*write)(struct net *n, const uint8_t *data, size_t len);
	void (*pause)(struct net *n);
	void (*resume)(struct net *n);
	void (*shutdown)(struct net *n);
	void (*close)(struct net *n);
	const char *(*peer)(const struct net *n);
};

extern const struct room_transport room_net_transport;

/*
 * What every room of one recorder shares. The caller owns it; it must outlive the rooms.
 * Fields may change between loop turns (heartbeat_ms on reload) and rooms see the change.
 */
struct room_env {
	uv_loop_t *loop;                 /* backoff timers */
	const struct room_transport *io;
	struct net_ctx *net;
	struct platform_ctx *pctx;       /* the platform's shared context, NULL when it has none */
	struct tls_config *tls;          /* NULL when no server is wss:// */
	bool insecure;                   /* TLS checks are off: warned on every connect */
	const struct server *servers;    /* tried in turn, one per attempt, unless the prepare
					  * step names others */
	size_t n_servers;
	uint64_t heartbeat_ms;
	uint64_t (*now)(void *ctx);      /* monotonic ms (uv_now in production) */
	uint64_t (*wall)(void *ctx);     /* unix epoch ms: records' receive time */
	uint64_t (*random)(void *ctx);   /* backoff jitter */
	void *ctx;                       /* for now and random */
	struct buf *scratch;             /* outgoing packets; used by one room at a time */
};

/*
 * What a room reports. user_data is the one given to room_create. Strings are borrowed for
 * the call. No callback may destroy the room; room_pause/room_resume are allowed.
 */
struct room_events {
	/* The prepare step named the room's real id (and its short id, 0 when none): records
	 * and sessions of the room use room_id from now on. Optional (may be NULL). */
	void (*resolved)(void *user_data, int64_t room_id, int64_t short_id);
	/* The transport connected: a session begins. Returns its id (> 0), or <= 0 when none
	 * could be given (the room records anyway, with session id 0). */
	int64_t (*session_began)(void *user_data, const char *server_url, const char *peer);
	/* The platform accepted the login. */
	void (*session_joined)(void *user_data, int64_t session_id);
	/* The attempt that began the session is over; reason says why. */
	void (*session_ended)(void *user_data, int64_t session_id, const char *reason);
	/* One message to keep. Returns 0 when it was queued, < 0 when not (the room counts it). */
	int (*record)(void *user_data, const struct record *rec);
	/* After room_stop: the room is closed. Its stats may still be read during the call;
	 * it is freed right after, and user_data is not used again. */
	void (*gone)(void *user_data);
};

struct room_stats {
	uint64_t received;   /* records decoded for this room */
	uint64_t stored;     /* records the record callback queued */
	uint64_t not_stored; /* records the record callback refused (queue full, no memory) */
	uint64_t foreign;    /* other rooms' messages, not stored */
	uint64_t skipped;    /* well-framed packets skipped (bad type, NULs, too many fields) */
	uint64_t replaced_utf8; /* invalid UTF-8 sequences replaced by U+FFFD in stored data */
	uint64_t reconnects; /* attempts after the first */
	uint64_t last_msg_ms; /* wall clock of the last record, 0 if none */
};

/* Create a room (not started). env, platform, ev and user_data must outlive it.
 * Returns 0 or -ENOMEM. */
int room_create(const struct room_env *env, const struct platform *platform, int64_t id,
		const struct room_events *ev, void *user_data, struct room **out);
/* Begin connecting now (first attempt at server id % n_servers, spreading rooms). */
void room_start(struct room *r);
/* Call every tick (at most a quarter of the heartbeat, at most 1 s): sends heartbeats that
 * are due and fails attempts that are stalled or silent. now is env->now(). */
void room_tick(struct room *r, uint64_t now);
/*
 * Stop for good: log out, close with reason; session_ended (if a session is open) and then
 * gone follow, from the loop, never during this call. Further calls are ignored.
 */
void room_stop(struct room *r, const char *reason);
/* Close the transport now, without waiting for the logout to drain (second SIGTERM). */
void room_abort(struct room *r);
/* Backpressure: stop reading (silence then proves nothing) and read again. A room that is
 * still handshaking goes on reading until it has joined. */
void room_pause(struct room *r);
void room_resume(struct room *r);

int64_t room_id(const struct room *r);
/* "288016" for the default platform, "bilibili:76" for others: the room as configured. */
const char *room_name(const struct room *r);
enum room_state room_state(const struct room *r);
bool room_is_stopping(const struct room *r);
const struct room_stats *room_stats(const struct room *r);

#endif
