/*
 * ship: copy what the local SQLite database committed to PostgreSQL, in commit order, on the
 * loop (pg.c), and remember in the local database how far it got (store_shipped). The local
 * database is the durable spool: PostgreSQL down for hours only makes the backlog longer.
 *
 * Each batch (up to SHIP_BATCH_ROWS messages, read through a read-only connection of its own,
 * so only committed rows) goes as one PostgreSQL transaction: the rooms and sessions it needs,
 * then the messages with COPY into a temporary table and one INSERT ... SELECT. Idempotent:
 * messages carry (node, local_id) under a unique key, chat ids go through message_cids
 * (UNIQUE (platform, room_id, cid)), so a batch sent twice (kill -9 before the local
 * watermark committed) or by two mirror nodes is stored once.
 */
#ifndef DANMAKUD_SHIP_H
#define DANMAKUD_SHIP_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define SHIP_BATCH_ROWS 5000

struct net_ctx;
struct store;
struct ship;

struct ship_options {
	const char *db_path;   /* the local database (already opened by the store) */
	const char *conninfo;  /* PostgreSQL URL or key=value string */
	const char *password;  /* NULL: the URL's or PGPASSFILE */
	const char *node;      /* this recorder's name in PostgreSQL */
	const char *mode;      /* "mirror" | "shard", written to the nodes table */
	int keep_local_days;   /* -1: keep local rows; else delete shipped rows this old */
};

struct ship_stats {
	bool up;               /* connected and the schema checked */
	uint64_t backlog;      /* committed local messages not yet in PostgreSQL */
	uint64_t shipped;      /* messages sent (and accepted) since start */
	uint64_t skipped;      /* rows PostgreSQL refused even one by one (kept locally) */
	uint64_t retained;     /* local rows deleted by keep_local_days */
	uint64_t down_ms;      /* how long it has been unreachable (0: up) */
	int64_t shipped_id;    /* local messages.id up to which everything is there */
	const char *last_error; /* "" when none */
};

int ship_create(uv_loop_t *loop, struct net_ctx *net, struct store *store,
		const struct ship_options *opt, struct ship **out, char *err, size_t errlen);
void ship_start(struct ship *sh);
/* The store committed rows: ship soon. */
void ship_kick(struct ship *sh);
/* A rooms row changed (new room, label, short id): ship the rooms table again. */
void ship_rooms_changed(struct ship *sh);
/* Once a second: backlog, retention, "still unreachable" log lines. */
void ship_tick(struct ship *sh);
void ship_get_stats(struct ship *sh, struct ship_stats *out);
/* One line for STATUS= and the stats line ("postgresql up, backlog 0"). */
void ship_status(struct ship *sh, char *out, size_t len);
/*
 * Graceful stop, after the store's final flush: ship what is committed (within deadline_ms,
 * when PostgreSQL is up), then call done. The caller flushes the store once more (the
 * watermark) and then calls ship_close.
 */
void ship_stop(struct ship *sh, uint64_t deadline_ms, void (*done)(void *ctx), void *ctx);
void ship_close(struct ship *sh); /* NULL ok */

#endif
