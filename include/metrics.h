/*
 * metrics: what the recorder tells the outside world about itself, as text. Pure formatting
 * (the STATUS= line for systemd, a Prometheus text file in node_exporter's textfile-collector
 * format) plus one small synchronous file replacement. No libuv: the recorder fills the
 * structs below from its rooms and store and calls these from its tick timer.
 */
#ifndef DANMAKUD_METRICS_H
#define DANMAKUD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* One room, as the recorder sees it now. Strings are borrowed for the call. */
struct metrics_room {
	const char *room;  /* room_name(): "288016", "bilibili:76" */
	const char *label; /* NULL: none */
	const char *state; /* room_state_name() */
	bool live;
	uint64_t received; /* records decoded for this room */
	uint64_t stored;   /* handed to the store */
	uint64_t foreign;  /* other rooms' messages seen on this room's connection */
	uint64_t reconnects;
	uint64_t last_msg_ms;      /* wall clock, 0: none yet */
	uint64_t session_start_ms; /* wall clock of the current connection, 0: none */
};

/* The whole process. */
struct metrics_global {
	const char *version;
	uint64_t start_ms; /* wall clock when the recorder started */
	size_t rooms;      /* recorded rooms (not counting rooms being removed) */
	size_t rooms_live;
	uint64_t received;     /* records decoded, all rooms ever (removed ones included) */
	double received_per_s; /* over the last status interval */
	uint64_t committed;    /* message rows inserted */
	uint64_t duplicates;
	uint64_t dropped; /* message rows dropped because the queue was full */
	uint64_t queued_rows;
	uint64_t queued_bytes;
	uint64_t failed_flushes;
	uint64_t store_errors; /* messages or session rows the store refused (e.g. no memory) */
	uint64_t foreign;
	bool storage_ok;
	uint64_t reloads_ok, reloads_failed;
	/* [postgresql]: shipping (ship.c) and, in shard mode, the leases (cluster.c) */
	bool pg;               /* shipping is configured (the pg_ families appear) */
	bool pg_up;
	uint64_t pg_backlog;   /* committed local messages not yet in PostgreSQL */
	uint64_t pg_shipped;   /* messages shipped since start */
	uint64_t pg_skipped;   /* messages PostgreSQL refused (kept locally) */
	uint64_t pg_retained;  /* local rows deleted by keep_local_days */
	uint64_t pg_down_s;    /* how long PostgreSQL has been unreachable */
	bool cluster;          /* shard mode (the cluster_ family appears) */
	uint64_t cluster_held; /* rooms this node holds a lease on */
};

/*
 * The systemd STATUS= text (without "STATUS="), one line, e.g.
 * "rooms live 3/5, 12.5 msg/s, queued 10 rows, stored 1234, dropped 0".
 * Storage trouble is appended as ", storage failing". Always NUL-terminated.
 */
void metrics_status(char *dst, size_t cap, const struct metrics_global *g);

/*
 * Append the Prometheus text exposition (version 0.0.4) of g and rooms[0..n) to out:
 * HELP and TYPE once per metric family, process-wide families first, then per-room families
 * labelled {room="ID"} (danmakud_room_info also carries label="..."). A room with no message
 * yet has no last-message sample; a room without a connection has no session-start sample.
 * now_ms is the wall clock used for ages. Returns 0 or -ENOMEM (out may hold part of it).
 */
int metrics_render(struct buf *out, const struct metrics_global *g,
                   const struct metrics_room *rooms, size_t n, uint64_t now_ms);

/*
 * Replace the file at path with data[0..len) atomically: write "<path>.tmp" in the same
 * directory (mode 0644 whatever the umask: metrics are for other users' collectors), then
 * rename(2) it over path, so a reader sees the old file or the new one, never a part.
 * Synchronous, plain open/write/rename on purpose; see the comment in metrics.c.
 * Returns 0 or a negative errno (the temporary file is removed on failure).
 */
int metrics_write_file(const char *path, const void *data, size_t len);

#endif
