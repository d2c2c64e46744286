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
#include "notify.h"
#include "room.h"
#include "store.h"

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
	const char *metrics_file;     /* Prometheus text file; NULL: none */
	unsigned metrics_interval_s;  /* how often it is rewritten (>= 1) */
	unsigned stats_interval_s;    /* how often the stats line is logged; 0: never */
	unsigned max_queue_mb;        /* memory bound of the write queue; 0: the store's default */
	enum store_fts fts;           /* full-text index at start; KEEP (0): what the database has */
	/*
	 * SIGHUP: fill *out with the new effective options (config file re-read, command-line
	 * overrides applied, command-line rooms included) or return < 0 with a reason in err.
	 * The pointers in *out need only stay valid during the call that asked. NULL: SIGHUP
	 * only logs that there is nothing to reload.
	 */
	int (*reload)(void *ctx, struct rec_options *out, char *err, size_t errlen);
	void *reload_ctx;
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
	int lock_fd; /* flock()ed database file: one recorder per database */
	bool storage_trouble;
	bool reads_paused; /* backpressure: the store's queue is long and the store is healthy */
	int exit_code;
	uint64_t ticks;
	uint64_t foreign_total;
	uint64_t rng;          /* xorshift state for backoff jitter */
	uint64_t last_dropped; /* store drops already reported */
	uint64_t last_committed;
	/* service integration (status, metrics, systemd); times are uv_now() unless _wall */
	struct notify notify;
	char *metrics_file;        /* owned copy of the current opt.metrics_file */
	bool metrics_trouble;      /* the last write failed (logged once) */
	uint64_t start_wall_ms;
	uint64_t next_watchdog, next_status, next_stats, next_metrics;
	uint64_t last_stats_at;
	uint64_t status_at, status_received; /* the last STATUS= sample, for msg/s */
	double received_per_s;
	uint64_t received_gone;    /* records received by rooms that are gone */
	uint64_t reloads_ok, reloads_failed;
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
/* Pause or resume every room's reads according to the store's queue (call after appends). */
void rec_backpressure(struct rec *rec);

#endif
