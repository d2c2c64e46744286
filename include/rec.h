/*
 * rec: the recorder. Owns the rooms, the shared TLS config and net context, the store, the
 * heartbeat and flush timers and the signal handlers. main.c only builds rec_options.
 */
#ifndef DANMAKUD_REC_H
#define DANMAKUD_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "room.h"

struct conf_room;
struct net_ctx;
struct store;
struct tls_config;

struct rec_options {
	const char *db_path;
	const char *const *servers; /* URLs; NULL/0: the platform's defaults */
	size_t n_servers;
	const char *ca_file;        /* NULL: system bundle */
	bool insecure;
	unsigned flush_ms;
	unsigned heartbeat_s;
	const struct conf_room *rooms;
	size_t n_rooms;
};

struct rec {
	uv_loop_t *loop;
	struct rec_options opt;
	struct server *servers;
	size_t n_servers;
	struct tls_config *tls;
	struct net_ctx *net;
	struct store *store;
	struct list rooms;
	size_t n_rooms;
	uv_timer_t tick_timer;
	uv_timer_t flush_timer;
	uv_timer_t flush_more; /* continues a long flush on the next loop turn */
	uv_timer_t stop_timer; /* shutdown deadline */
	uv_signal_t sig_int, sig_term, sig_hup;
	bool stopping;
	bool storage_trouble;
	int flush_rc;
	int exit_code;
	uint64_t ticks;
	uint64_t foreign_total;
	uint64_t rng;          /* xorshift state for backoff jitter */
	uint64_t last_dropped; /* store drops already reported */
	uint64_t last_committed;
	struct buf scratch;    /* outgoing platform packets; one room at a time uses it */
};

/* Open the store, prepare TLS and DNS, create and start every room, arm the timers and
 * signals. Returns 0, or a negative errno after logging why (nothing left running). */
int rec_create(uv_loop_t *loop, const struct rec_options *opt, struct rec **out);
/* Begin a graceful stop (what SIGTERM does). */
void rec_stop(struct rec *rec);
/* After uv_run() returned: close the store and free everything. Returns the exit code. */
int rec_destroy(struct rec *rec);

/* For rooms. */
uint64_t rec_wall_ms(void);
uint64_t rec_random(struct rec *rec);
void rec_room_gone(struct rec *rec, struct room *r);

#endif
