/*
 * store: the SQLite database: open, pragmas, schema and migrations, a write queue and the
 * batched flush. No libuv: the recorder calls store_flush() from its flush timer.
 *
 * Every write (rooms, sessions, messages) is queued in memory in arrival order and committed
 * by store_flush() in one transaction per call. Session ids are allocated here, at queue time,
 * so a locked or full database never blocks or fails the caller: the queue is kept and
 * retried, up to max_queue_bytes; past that, messages are dropped and counted (session rows
 * are never dropped).
 */
#ifndef DANMAKUD_STORE_H
#define DANMAKUD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

/* 1: tables and the chat, gifts, gaps views. 2: the views of README "Asking the database"
 * (chat, gifts, live, gaps, daily, room_stats) and the indexes messages_uid_ts, messages_rss,
 * sessions_room_started. 3: the platform in the identity of rooms (platform, room_id), sessions
 * and messages (dedup by platform, room_id, cid), rooms.short_id, messages.decoded, the
 * superchats view, and every view covering Douyu and Bilibili. */
#define STORE_SCHEMA_VERSION 3

struct store;

/*
 * The full-text index (messages_fts, FTS5 trigram over messages.text) is part of the database,
 * not of the process: KEEP leaves an existing database as it is and gives a new one the default (on; the write cost is measured by bench/fts_cost.c and
 * given in README "Full-text search"); ON builds it if missing (indexing every existing
 * row, inside store_open); OFF drops it if present. Triggers keep it in sync with what other
 * programs write; the store's own connection runs no triggers and feeds the index itself, once
 * per transaction (store_flush_for), at a fifth of the cost.
 */
enum store_fts { STORE_FTS_KEEP = 0, STORE_FTS_ON, STORE_FTS_OFF };

struct store_options {
	size_t max_queue_bytes;   /* 0: default 256 MiB */
	int busy_timeout_ms;      /* small: a busy wait blocks the loop. default 0 */
	enum store_fts fts;       /* default KEEP */
	bool reclaim_space;       /* a NEW database gets auto_vacuum = INCREMENTAL, so that
	                           * store_reclaim can shrink the file after store_retain */
};

struct store_stats {
	uint64_t queued_rows;     /* rows waiting (all kinds) */
	uint64_t queued_bytes;    /* bytes of the queue's blocks (the memory bound counts these) */
	uint64_t committed;       /* message rows inserted */
	uint64_t duplicates;      /* message rows ignored by the (platform, room_id, cid) unique
	                           * index */
	uint64_t dropped;         /* message rows dropped because the queue was full */
	uint64_t failed_flushes;
	uint64_t session_edges;   /* sessions joined or ended, committed (ship.c reads the open
	                           * sessions again when this moves) */
};

/*
 * One writer per database: an exclusive flock on the database file itself, to take before
 * store_open touches the file (store_open migrates the schema and adds or drops the full-text
 * index, which must not happen under a running recorder). create: make the file when missing
 * (SQLite takes an empty file as a new database). Returns the locked descriptor (keep it open
 * while writing; the kernel releases the lock however the process ends), or -EBUSY with
 * "database is in use by pid N" in err (N from /proc/locks; "by another process" when it
 * cannot be told), or another negative errno with a reason.
 */
int store_lock(const char *path, bool create, char *err, size_t errlen);

/*
 * Open (create) the database at path, set WAL + synchronous=NORMAL, create or migrate the
 * schema (PRAGMA user_version) in one transaction, add or drop the full-text index as opt->fts
 * says (its own transaction), prepare statements. opt may be NULL (all defaults).
 * Returns 0 or a negative errno with a message in err.
 */
int store_open(const char *path, const struct store_options *opt, struct store **out, char *err,
	       size_t errlen);
/* Whether the database has the full-text index (after store_open applied opt->fts). */
bool store_has_fts(const struct store *s);
/* Close the database. Queued rows that were not flushed are lost: flush first. NULL ok. */
void store_close(struct store *s);

/* Queue "this room exists" (INSERT, label updated if given, short_id updated if > 0).
 * platform is a platform name ("douyu", "bilibili"); room_id the platform's real id. Returns 0,
 * -EINVAL (no platform) or -ENOMEM. */
int store_room(struct store *s, const char *platform, int64_t room_id, int64_t short_id,
	       const char *label, int64_t now_ms);
/* Queue a new sessions row of the platform's room; returns its id (> 0) or a negative errno
 * (-EINVAL: no platform). */
int64_t store_session_begin(struct store *s, const char *platform, int64_t room_id,
			    const char *server, int64_t ts);
/* Queue joined_at for a session. */
int store_session_joined(struct store *s, int64_t session_id, int64_t ts);
/* Queue the end of a session: ended_at, end_reason. (sessions.messages is kept by the store
 * itself: every flush adds the rows it really inserted, so duplicates are not counted.) */
int store_session_end(struct store *s, int64_t session_id, int64_t ts, const char *reason);
/* Copy a message (its platform, data and decoded too) into the queue. Returns 0, or -ENOBUFS
 * when the queue bound is reached (the row is dropped and counted), -EINVAL (no platform) or
 * -ENOMEM. */
int store_append(struct store *s, const struct record *rec);

/*
 * Commit queued rows, oldest first, in one BEGIN IMMEDIATE ... COMMIT, stopping after
 * max_rows rows (0: no limit). Returns 0 when the queue is empty afterwards, -EAGAIN when rows
 * remain (call again on a later loop turn), or an error with the queue kept intact:
 * -EBUSY (database locked), -ENOSPC (disk or database full), -ENOENT (the database file was
 * deleted or moved while open), -EIO / -EROFS / -EPERM (see store_last_error).
 */
int store_flush(struct store *s, size_t max_rows);
/*
 * The same with a time budget: write for at most budget_ns of CLOCK_MONOTONIC time (the clock
 * uv_hrtime reads; checked every 32 rows; 0: no budget), then return -EAGAIN with the
 * transaction left open, to go on at the next call. The transaction commits once it holds
 * max_rows rows or has written everything queued, whichever comes first, so a slice stays a
 * few ms while a transaction still carries thousands of rows. Nothing is committed (or counted
 * in committed) before its COMMIT; an error rolls the whole transaction back, queue intact.
 * Readers see only committed rows. store_close() rolls back a transaction left open.
 */
int store_flush_for(struct store *s, size_t max_rows, uint64_t budget_ns);

/*
 * Close the sessions a previous process left open (it was killed or crashed): ended_at
 * becomes the last message the room stored since the session started (else its join or
 * start), end_reason becomes reason. Runs at once, outside the queue; only the recorder that
 * holds the database's single-writer lock may call it. Returns the number of sessions closed
 * or a negative errno.
 */
int store_end_stale_sessions(struct store *s, const char *reason);

/*
 * Shipping (ship.c copies committed rows to PostgreSQL). The local table `shipping` (created
 * here when missing; not part of the versioned schema) says how far each target got: every
 * message with id <= messages_id is there, and no session with id < sessions_id changed since
 * it was shipped. get: read it (0, 0 when the target is new). shipped: queue an update, which
 * commits with the next flush (a crash in between only ships some rows twice, and the target
 * ignores those). Return 0 or a negative errno (get: -EAGAIN while a flush transaction is
 * open).
 */
int store_shipping_get(struct store *s, const char *target, int64_t *messages_id,
		       int64_t *sessions_id);
int store_shipped(struct store *s, const char *target, int64_t messages_id, int64_t sessions_id,
		  int64_t now_ms);
/*
 * Local retention ([postgresql] keep_local_days): delete, in one transaction of its own, up
 * to max_rows of the oldest messages that are shipped (id <= shipped_id) and older than
 * before_ts (ms), never the newest row (its id is what the next one follows). Returns how
 * many went (0: nothing more to delete now), -EAGAIN while a flush transaction is open, or a
 * negative errno. Sessions and rooms are kept.
 */
int store_retain(struct store *s, int64_t shipped_id, int64_t before_ts, size_t max_rows);
/*
 * Give freed pages back to the file system (PRAGMA incremental_vacuum(pages), when the
 * database was created with reclaim_space), and once none is left, checkpoint and truncate
 * the WAL. Returns the free pages left (call again while > 0), -EAGAIN while a flush
 * transaction is open, or a negative errno.
 */
int store_reclaim(struct store *s, unsigned pages);
/* Whether the file can shrink (auto_vacuum = INCREMENTAL). */
bool store_can_reclaim(const struct store *s);

void store_get_stats(const struct store *s, struct store_stats *out);
const char *store_last_error(const struct store *s); /* never NULL */

#endif
