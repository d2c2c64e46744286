/*
 * rec: the recorder. Owns the rooms, the shared TLS config and net context, the store, the
 * tick and flush timers and the signal handlers; it is the only module that talks to the
 * store on the rooms' behalf (rooms report through struct room_events). main.c builds
 * rec_options from the command line and the config file, and re-builds them on SIGHUP
 * through the reload callback.
 */
#ifndef DANMAKUD_REC_H
#define DANMAKUD_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "store.h"

struct conf;
struct conf_room;

struct rec_options {
	const char *db_path;
	const char *const *servers; /* Douyu URLs; NULL/0: the platform's defaults */
	size_t n_servers;
	const char *ca_file;        /* NULL: system bundle */
	bool insecure;
	unsigned flush_ms;
	unsigned heartbeat_s;       /* Douyu's */
	const struct conf *conf;    /* the other platforms' sections ([bilibili]) */
	const struct conf_room *rooms;
	size_t n_rooms;
	const char *metrics_file;     /* Prometheus text file; NULL: none */
	unsigned metrics_interval_s;  /* how often it is rewritten (>= 1) */
	unsigned stats_interval_s;    /* how often the stats line is logged; 0: never */
	unsigned max_queue_mb;        /* memory bound of the write queue; 0: the store's default */
	enum store_fts fts;           /* full-text index at start; KEEP (0): what the database has */
	/* PostgreSQL (NULL pg_url: none, and every field below is ignored). */
	const char *pg_url;           /* libpq URL or key=value string, password included or not */
	const char *pg_password;      /* read from password_file by main.c; NULL: URL/PGPASSFILE */
	int keep_local_days;          /* -1: keep every local row; else days kept once shipped */
	const char *node;             /* cluster node name (never NULL when pg_url is set) */
	int cluster_mode;             /* enum conf_cluster_mode */
	unsigned lease_s;             /* shard: lease length (renewed every lease_s / 3) */
	unsigned max_rooms;           /* shard: most rooms this node takes; 0: no limit */
	/*
	 * SIGHUP: fill *out with the new effective options (config file re-read, command-line
	 * overrides applied, command-line rooms included) or return < 0 with a reason in err.
	 * The pointers in *out need only stay valid during the call that asked. NULL: SIGHUP
	 * only logs that there is nothing to reload.
	 */
	int (*reload)(void *ctx, struct rec_options *out, char *err, size_t errlen);
	void *reload_ctx;
};

struct rec;

/*
 * Take the database's single-writer lock before anything touches the file (a second
 * recorder gets -EBUSY after logging "database is in use by pid N"), open the store, prepare
 * TLS and DNS, create and start every room, arm the timers and signals. Returns 0, or a
 * negative errno after logging why (nothing left running).
 */
int rec_create(uv_loop_t *loop, const struct rec_options *opt, struct rec **out);
/* Begin a graceful stop (what SIGTERM does). */
void rec_stop(struct rec *rec);
/* After uv_run() returned: close the store and free everything. Returns the exit code. */
int rec_destroy(struct rec *rec);

#endif
