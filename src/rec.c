/*
 * rec: the recorder. It owns the rooms, the shared TLS config and net context, the store,
 * its timers and the signal handlers:
 *  - the tick timer walks every room (heartbeats due, attempts stalled, connections silent),
 *    reports storage trouble and dropped rows, and prints a stats line once a minute;
 *  - the flush timer commits the store's queue in one transaction, in bounded slices that
 *    continue on the next loop turn (flush_more), so a long queue never stalls the loop;
 *  - the stop timer bounds how long a graceful stop waits for logouts to drain.
 * Rooms know nothing of the store: they report sessions and records through room_events,
 * and this file turns those into store calls, counting and logging every write the store
 * refused (design §4: nothing is lost silently).
 * Stopping (SIGINT/SIGTERM) asks every room to log out and close; when the last room is
 * gone the queue is committed in full and every handle is closed, so uv_run() returns.
 * Reloading (SIGHUP) asks main.c for the new options and makes the running set of rooms
 * equal to the new list: new rooms start, dropped rooms stop with reason "removed", the rest
 * keep their connections. Under systemd the recorder speaks the notify protocol (READY,
 * RELOADING, STOPPING, STATUS, WATCHDOG) from the same timers.
 */
#include "rec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cluster.h"
#include "conf.h"
#include "list.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "notify.h"
#include "platform.h"
#include "room.h"
#include "ship.h"
#include "store.h"
#include "tls.h"

/* One flush slice writes for at most 5 ms, so a burst never holds the loop (and every room's
 * heartbeat) for long; the rest follows 1 ms later. The transaction stays open across slices
 * until it holds 5000 rows or has written everything queued: 5 ms transactions (~600 rows)
 * cost 1.6x the CPU per message of 5000-row ones (BENCHMARKS.md "Write path"). */
#define REC_FLUSH_SLICE_ROWS 5000
#define REC_FLUSH_BUDGET_NS (5 * 1000000u)
#define REC_STOP_DEADLINE_MS 5000
#define REC_STATUS_EVERY_MS 5000 /* STATUS= refresh for systemctl status */
#define REC_PG_STOP_MS 3000      /* at a stop: letting leases go, shipping what is committed */

#ifndef DANMAKUD_VERSION
#define DANMAKUD_VERSION "0.1.0"
#endif

/* What the rooms of one platform share: servers, heartbeat, the platform's context. */
struct rec_platform {
	const struct platform *pf;
	bool open;
	struct server *servers;
	size_t n_servers;
	struct platform_ctx *pctx;
	struct room_env env;
};
#define REC_MAX_PLATFORMS 4

/* One recorded room as the recorder sees it: its identity and label (the store's business),
 * the room state machine, and the session the store knows it by. */
struct rec_room {
	struct list link; /* in rec->rooms */
	struct rec *rec;
	struct room *room;
	struct rec_platform *rp;
	int64_t id;      /* as configured */
	int64_t real_id; /* as resolved (= id until the platform says otherwise) */
	int64_t short_id;
	bool stored;     /* the rooms row was queued with real_id */
	char *label;
	int64_t session_id;        /* the open session's id, 0: none */
	uint64_t session_start_ms; /* wall clock of the open session */
};

struct rec {
	uv_loop_t *loop;
	struct rec_options opt;
	struct rec_platform plat[REC_MAX_PLATFORMS]; /* as platforms[] */
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
	uint64_t rng;          /* xorshift state for backoff jitter */
	uint64_t last_dropped; /* store drops already reported */
	uint64_t last_committed;
	/* writes the store refused at queue time (no memory): counted, logged once a tick */
	uint64_t store_errors, store_errors_reported;
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
	uint64_t foreign_gone;     /* other rooms' messages seen by rooms that are gone */
	uint64_t reloads_ok, reloads_failed;
	struct buf scratch;    /* outgoing platform packets; one room at a time uses it */
	/* [postgresql]: the shipper, and in shard mode the leases (which then decide the rooms) */
	struct ship *ship;
	struct cluster *cluster;
	int pg_pending; /* stopping: ship/cluster steps not finished yet */
	const char *stop_reason; /* set_rooms: the end_reason of rooms it stops ("removed") */
};

#define each_room(pos, tmp, rec) list_for_each_safe(pos, tmp, &(rec)->rooms)
static struct rec_room *rr_of(struct list *pos)
{
	return container_of(pos, struct rec_room, link);
}

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t env_wall(void *ctx)
{
	(void)ctx;
	return wall_ms();
}

static uint64_t env_now(void *ctx)
{
	struct rec *rec = ctx;
	return uv_now(rec->loop);
}

static uint64_t env_random(void *ctx)
{
	struct rec *rec = ctx;
	uint64_t x = rec->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rec->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t tick_interval_ms(const struct rec *rec)
{
	uint64_t hb = (uint64_t)rec->opt.heartbeat_s * 1000;
	for (size_t i = 0; i < REC_MAX_PLATFORMS; i++)
		if (rec->plat[i].open && rec->plat[i].env.heartbeat_ms < hb)
			hb = rec->plat[i].env.heartbeat_ms;
	uint64_t t = hb / 4 < 1000 ? (hb / 4 ? hb / 4 : 1) : 1000;
	/* Pinging every watchdog/2 from a tick of at most watchdog/4 is never later than
	 * 3/4 of the watchdog interval. */
	uint64_t wd = rec->notify.watchdog_usec / 1000;
	if (wd && wd / 4 < t)
		t = wd / 4 ? wd / 4 : 1;
	return t;
}

static void report_storage(struct rec *rec, int rc)
{
	struct store_stats st;
	store_get_stats(rec->store, &st);
	if (rc < 0 && rc != -EAGAIN) {
		if (!rec->storage_trouble)
			log_err("storage: %s; keeping %" PRIu64 " rows in memory and retrying",
				store_last_error(rec->store), st.queued_rows);
		rec->storage_trouble = true;
	} else if (rec->storage_trouble) {
		log_notice("storage: recovered, %" PRIu64 " rows waiting", st.queued_rows);
		rec->storage_trouble = false;
	}
	if (st.dropped > rec->last_dropped) {
		log_err("storage: queue full, dropped %" PRIu64 " messages (%" PRIu64 " in total)",
			st.dropped - rec->last_dropped, st.dropped);
		rec->last_dropped = st.dropped;
	}
}

/*
 * Backpressure. When the store is healthy but slower than the network, stop reading sockets
 * once the queue passes a high-water mark and read again below half of it: TCP flow control
 * then slows the servers, nothing is dropped, and the queue (so the work left at SIGTERM)
 * stays small. When the store is in trouble (locked, full) reads go on so connections stay
 * alive, and the queue's memory bound applies: past it, rows are dropped and counted.
 */
static size_t backpressure_high(const struct rec *rec)
{
	size_t max = rec->opt.max_queue_mb ? (size_t)rec->opt.max_queue_mb << 20 : (size_t)256 << 20;
	size_t high = max / 2;
	return high < ((size_t)16 << 20) ? high : ((size_t)16 << 20);
}

static void rec_backpressure(struct rec *rec)
{
	struct store_stats st;
	store_get_stats(rec->store, &st);
	size_t high = backpressure_high(rec);
	bool pause;
	if (rec->storage_trouble || rec->stopping)
		pause = false;
	else if (rec->reads_paused)
		pause = st.queued_bytes > high / 2;
	else
		pause = st.queued_bytes > high;
	if (pause == rec->reads_paused)
		return;
	rec->reads_paused = pause;
	log_debug("storage: %s reads (%" PRIu64 " bytes queued)", pause ? "pausing" : "resuming",
		  st.queued_bytes);
	struct list *pos, *tmp;
	each_room(pos, tmp, rec)
	{
		if (pause)
			room_pause(rr_of(pos)->room);
		else
			room_resume(rr_of(pos)->room);
	}
}

/* ---- what the rooms report: sessions and records, turned into store calls ---- */

static void store_refused(struct rec_room *rr, const char *what, int rc)
{
	struct rec *rec = rr->rec;
	rec->store_errors++;
	log_debug("room %s: storage: %s not queued: %s", room_name(rr->room), what, strerror(-rc));
}

/* The platform named the room's real id: the rooms row (and every later session) uses it. */
static void on_resolved(void *user_data, int64_t room_id, int64_t short_id)
{
	struct rec_room *rr = user_data;
	if (room_id == rr->real_id && short_id == rr->short_id && rr->stored)
		return;
	rr->real_id = room_id;
	rr->short_id = short_id;
	rr->stored = true;
	int rc = store_room(rr->rec->store, rr->rp->pf->name, room_id, short_id, rr->label,
			    (int64_t)wall_ms());
	if (rc < 0)
		store_refused(rr, "room", rc);
	if (rr->rec->ship)
		ship_rooms_changed(rr->rec->ship);
}

static int64_t on_session_began(void *user_data, const char *server_url, const char *peer)
{
	struct rec_room *rr = user_data;
	(void)peer;
	rr->session_start_ms = wall_ms();
	int64_t sid = store_session_begin(rr->rec->store, rr->rp->pf->name, rr->real_id, server_url,
					  (int64_t)rr->session_start_ms);
	if (sid <= 0) {
		/* Recording goes on: its messages are kept, with session id 0. */
		store_refused(rr, "session start", sid < 0 ? (int)sid : -EIO);
		sid = 0;
	}
	rr->session_id = sid;
	return sid;
}

static void on_session_joined(void *user_data, int64_t session_id)
{
	struct rec_room *rr = user_data;
	if (session_id <= 0)
		return;
	int rc = store_session_joined(rr->rec->store, session_id, (int64_t)wall_ms());
	if (rc < 0)
		store_refused(rr, "session join", rc);
}

static void on_session_ended(void *user_data, int64_t session_id, const char *reason)
{
	struct rec_room *rr = user_data;
	rr->session_id = 0;
	rr->session_start_ms = 0;
	if (session_id <= 0)
		return;
	int rc = store_session_end(rr->rec->store, session_id, (int64_t)wall_ms(), reason);
	if (rc < 0)
		store_refused(rr, "session end", rc);
}

/* A full queue (-ENOBUFS) is the store's bound at work: it counts the drop itself and the
 * tick reports it. Anything else is counted here. */
static int on_room_record(void *user_data, const struct record *r)
{
	struct rec_room *rr = user_data;
	struct rec *rec = rr->rec;
	int rc = store_append(rec->store, r);
	if (rc < 0 && rc != -ENOBUFS)
		store_refused(rr, "message", rc);
	if (!rec->reads_paused)
		rec_backpressure(rec);
	return rc;
}

static void on_room_gone(void *user_data);

static const struct room_events room_ev = {
	.resolved = on_resolved,
	.session_began = on_session_began,
	.session_joined = on_session_joined,
	.session_ended = on_session_ended,
	.record = on_room_record,
	.gone = on_room_gone,
};

static void on_flush(uv_timer_t *t)
{
	struct rec *rec = t->data;
	uint64_t t0 = uv_hrtime();
	struct store_stats before;
	store_get_stats(rec->store, &before);
	int rc = store_flush_for(rec->store, REC_FLUSH_SLICE_ROWS, REC_FLUSH_BUDGET_NS);
	/* Something committed: the shipper reads it (through its own connection: only what
	 * is committed, in commit order). */
	if (rec->ship && before.queued_rows && (rc == 0 || rc == -EAGAIN)) {
		struct store_stats after;
		store_get_stats(rec->store, &after);
		if (after.queued_rows < before.queued_rows)
			ship_kick(rec->ship);
	}
	uint64_t ms = (uv_hrtime() - t0) / 1000000;
	if (ms > 100)
		log_debug("storage: flush took %" PRIu64 " ms", ms);
	if (rc == -EAGAIN && !rec->storage_trouble)
		uv_timer_start(&rec->flush_more, on_flush, 1, 0);
	if ((rc < 0 && rc != -EAGAIN) != rec->storage_trouble)
		report_storage(rec, rc);
	rec_backpressure(rec);
}

static void log_stats(struct rec *rec)
{
	size_t live = 0;
	uint64_t skipped = 0, replaced = 0, foreign = rec->foreign_gone;
	struct list *pos, *tmp;
	each_room(pos, tmp, rec)
	{
		struct room *r = rr_of(pos)->room;
		const struct room_stats *rs = room_stats(r);
		live += room_state(r) == ROOM_LIVE;
		skipped += rs->skipped;
		replaced += rs->replaced_utf8;
		foreign += rs->foreign;
	}
	struct store_stats st;
	store_get_stats(rec->store, &st);
	uint64_t now = uv_now(rec->loop);
	double secs = now > rec->last_stats_at ? (double)(now - rec->last_stats_at) / 1000.0 : 1.0;
	rec->last_stats_at = now;
	log_info("stats: rooms live %zu/%zu, committed %" PRIu64 " (%.1f/s), duplicates %" PRIu64
		 ", queued %" PRIu64 ", dropped %" PRIu64 ", other rooms' messages %" PRIu64
		 ", skipped packets %" PRIu64 ", UTF-8 repairs %" PRIu64 ", store errors %" PRIu64,
		 live, rec->n_rooms, st.committed, (double)(st.committed - rec->last_committed) / secs,
		 st.duplicates, st.queued_rows, st.dropped, foreign, skipped, replaced,
		 rec->store_errors);
	rec->last_committed = st.committed;
	if (rec->ship) {
		char line[160];
		ship_status(rec->ship, line, sizeof(line));
		struct ship_stats ss;
		ship_get_stats(rec->ship, &ss);
		log_info("stats: %s, shipped %" PRIu64 ", refused %" PRIu64
			 ", local rows deleted %" PRIu64 "%s%s",
			 line, ss.shipped, ss.skipped, ss.retained,
			 rec->cluster ? ", shard rooms held " : "",
			 rec->cluster ? (cluster_held(rec->cluster) ? "yes" : "none") : "");
	}
}

/* One walk over the rooms: the process-wide numbers. Rooms being removed count towards the
 * messages received but not towards the rooms recorded. */
static void snapshot(struct rec *rec, struct metrics_global *g)
{
	memset(g, 0, sizeof(*g));
	g->version = DANMAKUD_VERSION;
	g->start_ms = rec->start_wall_ms;
	g->received = rec->received_gone;
	g->foreign = rec->foreign_gone;
	struct list *pos, *tmp;
	each_room(pos, tmp, rec)
	{
		struct room *r = rr_of(pos)->room;
		g->received += room_stats(r)->received;
		g->foreign += room_stats(r)->foreign;
		if (room_is_stopping(r))
			continue;
		g->rooms++;
		g->rooms_live += room_state(r) == ROOM_LIVE;
	}
	struct store_stats st;
	store_get_stats(rec->store, &st);
	g->received_per_s = rec->received_per_s;
	g->committed = st.committed;
	g->duplicates = st.duplicates;
	g->dropped = st.dropped;
	g->queued_rows = st.queued_rows;
	g->queued_bytes = st.queued_bytes;
	g->failed_flushes = st.failed_flushes;
	g->store_errors = rec->store_errors;
	g->storage_ok = !rec->storage_trouble;
	g->reloads_ok = rec->reloads_ok;
	g->reloads_failed = rec->reloads_failed;
	if (rec->ship) {
		struct ship_stats ss;
		ship_get_stats(rec->ship, &ss);
		g->pg = true;
		g->pg_up = ss.up;
		g->pg_backlog = ss.backlog;
		g->pg_shipped = ss.shipped;
		g->pg_skipped = ss.skipped;
		g->pg_retained = ss.retained;
		g->pg_down_s = ss.down_ms / 1000;
	}
	if (rec->cluster) {
		g->cluster = true;
		g->cluster_held = cluster_held(rec->cluster);
	}
}

/* Send "<prefix>STATUS=<live counts>" to the service manager; prefix may be "". */
static void send_status(struct rec *rec, const char *prefix)
{
	if (!notify_enabled(&rec->notify))
		return;
	struct metrics_global g;
	snapshot(rec, &g);
	uint64_t now = uv_now(rec->loop);
	if (now > rec->status_at && rec->status_at) {
		rec->received_per_s = (double)(g.received - rec->status_received) * 1000.0 /
				      (double)(now - rec->status_at);
		g.received_per_s = rec->received_per_s;
	}
	rec->status_at = now;
	rec->status_received = g.received;
	char msg[512];
	size_t n = (size_t)snprintf(msg, sizeof(msg), "%sSTATUS=", prefix);
	if (n < sizeof(msg))
		metrics_status(msg + n, sizeof(msg) - n, &g);
	/* A platform with something to say (Bilibili's 412 circuit breaker) adds it. */
	for (size_t i = 0; i < REC_MAX_PLATFORMS; i++) {
		struct rec_platform *rp = &rec->plat[i];
		const char *ps = rp->pctx && rp->pf->ctx_status ? rp->pf->ctx_status(rp->pctx) : NULL;
		n = strlen(msg);
		if (ps && *ps && n < sizeof(msg))
			snprintf(msg + n, sizeof(msg) - n, "; %s: %s", rp->pf->name, ps);
	}
	int rc = notify_send(&rec->notify, msg);
	if (rc < 0)
		log_debug("notify: %s", strerror(-rc));
}

/* Rewrite the metrics file (a bounded synchronous write; see metrics.c). Logged once when it
 * starts failing and once when it works again. */
static void write_metrics(struct rec *rec)
{
	struct metrics_global g;
	snapshot(rec, &g);
	struct metrics_room *rooms = calloc(g.rooms ? g.rooms : 1, sizeof(*rooms));
	struct buf out;
	buf_init(&out);
	int rc = -ENOMEM;
	if (rooms) {
		size_t n = 0;
		struct list *pos, *tmp;
		each_room(pos, tmp, rec)
		{
			struct rec_room *rr = rr_of(pos);
			if (room_is_stopping(rr->room) || n == g.rooms)
				continue;
			const struct room_stats *rs = room_stats(rr->room);
			rooms[n++] = (struct metrics_room){
			    .room = room_name(rr->room),
			    .label = rr->label,
			    .state = room_state_name(room_state(rr->room)),
			    .live = room_state(rr->room) == ROOM_LIVE,
			    .received = rs->received,
			    .stored = rs->stored,
			    .foreign = rs->foreign,
			    .reconnects = rs->reconnects,
			    .last_msg_ms = rs->last_msg_ms,
			    .session_start_ms = rr->session_start_ms,
			};
		}
		rc = metrics_render(&out, &g, rooms, n, wall_ms());
	}
	if (rc == 0)
		rc = metrics_write_file(rec->metrics_file, buf_head(&out), out.len);
	buf_finish(&out);
	free(rooms);
	if (rc < 0 && !rec->metrics_trouble)
		log_warn("metrics: cannot write %s: %s (retrying every %u s)", rec->metrics_file,
			 strerror(-rc), rec->opt.metrics_interval_s);
	else if (rc == 0 && rec->metrics_trouble)
		log_notice("metrics: writing %s again", rec->metrics_file);
	rec->metrics_trouble = rc < 0;
}

/*
 * The heartbeat of the process, every tick (1 s; less for short heartbeat or watchdog
 * intervals):
 *  1. every room: send its heartbeat when due, fail it if stalled or silent;
 *  2. report store drops as they happen;
 *  3. WATCHDOG=1 every watchdog/2, from here on purpose: a stalled loop stops the pings
 *     and systemd restarts the service;
 *  4. every 5 s, STATUS= with live counts; every stats_interval_s, the stats line; every
 *     metrics_interval_s, the metrics file.
 */
static void on_tick(uv_timer_t *t)
{
	struct rec *rec = t->data;
	uint64_t now = uv_now(rec->loop);
	struct list *pos, *tmp;
	each_room(pos, tmp, rec)
	{
		room_tick(rr_of(pos)->room, now);
	}
	report_storage(rec, rec->storage_trouble ? -EIO : 0);
	if (rec->ship)
		ship_tick(rec->ship);
	if (rec->cluster)
		cluster_tick(rec->cluster);
	if (rec->store_errors > rec->store_errors_reported) {
		log_err("storage: out of memory: %" PRIu64 " writes could not be queued (%" PRIu64
			" in total)",
			rec->store_errors - rec->store_errors_reported, rec->store_errors);
		rec->store_errors_reported = rec->store_errors;
	}
	if (rec->notify.watchdog_usec && now >= rec->next_watchdog) {
		rec->next_watchdog = now + rec->notify.watchdog_usec / 2000;
		notify_send(&rec->notify, "WATCHDOG=1");
	}
	if (now >= rec->next_status) {
		rec->next_status = now + REC_STATUS_EVERY_MS;
		send_status(rec, "");
	}
	if (rec->opt.stats_interval_s && now >= rec->next_stats) {
		rec->next_stats = now + (uint64_t)rec->opt.stats_interval_s * 1000;
		log_stats(rec);
	}
	if (rec->metrics_file && now >= rec->next_metrics) {
		rec->next_metrics = now + (uint64_t)rec->opt.metrics_interval_s * 1000;
		write_metrics(rec);
	}
}

static void on_handle_closed(uv_handle_t *h)
{
	(void)h;
}

/* Last step of a stop: every room is gone; commit everything and close our handles. */
/* The platforms' contexts close their handles (from the loop, like every other). */
static void close_platforms(struct rec *rec)
{
	for (size_t i = 0; i < REC_MAX_PLATFORMS; i++) {
		struct rec_platform *rp = &rec->plat[i];
		if (rp->pctx)
			rp->pf->ctx_destroy(rp->pctx);
		rp->pctx = NULL;
	}
}

/* Commit everything queued (at a stop). */
static void final_flush(struct rec *rec)
{
	int rc;
	do
		rc = store_flush(rec->store, 0);
	while (rc == -EAGAIN);
	if (rc < 0) {
		struct store_stats st;
		store_get_stats(rec->store, &st);
		log_err("storage: final commit failed: %s; %" PRIu64 " rows lost",
			store_last_error(rec->store), st.queued_rows);
		rec->exit_code = 1;
	}
}

static void close_handles(struct rec *rec);

/* One of the PostgreSQL steps of a stop is over (leases let go, last rows shipped); after the
 * last one, commit the shipped position and close everything. */
static void pg_stop_step(void *ctx)
{
	struct rec *rec = ctx;
	if (--rec->pg_pending > 0)
		return;
	final_flush(rec);
	ship_close(rec->ship);
	rec->ship = NULL;
	cluster_close(rec->cluster);
	rec->cluster = NULL;
	close_handles(rec);
}

static void rec_finish(struct rec *rec)
{
	uv_timer_stop(&rec->flush_timer);
	uv_timer_stop(&rec->flush_more);
	final_flush(rec);
	if (rec->ship || rec->cluster) {
		/* Every room is closed: let the leases go, ship what is committed (bounded). */
		rec->pg_pending = 1 + (rec->ship != NULL) + (rec->cluster != NULL);
		if (rec->cluster)
			cluster_stop(rec->cluster, REC_PG_STOP_MS, pg_stop_step, rec);
		if (rec->ship)
			ship_stop(rec->ship, REC_PG_STOP_MS, pg_stop_step, rec);
		pg_stop_step(rec);
		return;
	}
	close_handles(rec);
}

static void close_handles(struct rec *rec)
{
	uv_close((uv_handle_t *)&rec->tick_timer, on_handle_closed);
	uv_close((uv_handle_t *)&rec->flush_timer, on_handle_closed);
	uv_close((uv_handle_t *)&rec->flush_more, on_handle_closed);
	uv_close((uv_handle_t *)&rec->stop_timer, on_handle_closed);
	uv_close((uv_handle_t *)&rec->sig_int, on_handle_closed);
	uv_close((uv_handle_t *)&rec->sig_term, on_handle_closed);
	uv_close((uv_handle_t *)&rec->sig_hup, on_handle_closed);
	close_platforms(rec); /* before the net context its calls use */
	net_ctx_close(rec->net);
	rec->net = NULL;
}

/* room_events.gone: the room closed and freed itself after room_stop. */
static void on_room_gone(void *user_data)
{
	struct rec_room *rr = user_data;
	struct rec *rec = rr->rec;
	rec->received_gone += room_stats(rr->room)->received;
	rec->foreign_gone += room_stats(rr->room)->foreign;
	if (rec->cluster)
		cluster_room_gone(rec->cluster, rr->rp->pf, rr->id);
	list_remove(&rr->link);
	rec->n_rooms--;
	free(rr->label);
	free(rr);
	if (rec->stopping && rec->n_rooms == 0)
		rec_finish(rec);
}

static void on_stop_deadline(uv_timer_t *t)
{
	struct rec *rec = t->data;
	log_warn("stop: connections still open after %d ms; closing them", REC_STOP_DEADLINE_MS);
	struct list *pos, *tmp;
	each_room(pos, tmp, rec)
	{
		room_abort(rr_of(pos)->room);
	}
}

void rec_stop(struct rec *rec)
{
	if (rec->stopping)
		return;
	rec->stopping = true;
	log_info("stopping: logging out of %zu rooms", rec->n_rooms);
	notify_send(&rec->notify, "STOPPING=1\nSTATUS=stopping: logging out, committing queued rows");
	uv_timer_stop(&rec->tick_timer);
	if (rec->n_rooms == 0) {
		rec_finish(rec);
		return;
	}
	uv_timer_start(&rec->stop_timer, on_stop_deadline, REC_STOP_DEADLINE_MS, 0);
	uv_unref((uv_handle_t *)&rec->stop_timer);
	struct list *pos, *tmp;
	each_room(pos, tmp, rec)
	{
		room_stop(rr_of(pos)->room, "shutdown");
	}
}

static void rec_reload(struct rec *rec);

static void on_signal(uv_signal_t *s, int signum)
{
	struct rec *rec = s->data;
	if (signum == SIGHUP) {
		if (rec->stopping)
			log_notice("SIGHUP while stopping: ignored");
		else
			rec_reload(rec);
		return;
	}
	if (rec->stopping) {
		log_warn("second %s: closing connections now", signum == SIGINT ? "SIGINT" : "SIGTERM");
		on_stop_deadline(&rec->stop_timer);
		return;
	}
	log_notice("%s received", signum == SIGINT ? "SIGINT" : "SIGTERM");
	rec_stop(rec);
}

static bool same_label(const char *a, const char *b)
{
	if (!a || !*a || !b || !*b)
		return (!a || !*a) == (!b || !*b);
	return strcmp(a, b) == 0;
}

/* Rooms are ordered by (platform, id as configured). */
static int cmp_key(const struct platform *pa, int64_t a, const struct platform *pb, int64_t b)
{
	size_t x = platform_index(pa), y = platform_index(pb);
	if (x != y)
		return x < y ? -1 : 1;
	return a < b ? -1 : a > b;
}

static int cmp_room(const void *a, const void *b)
{
	const struct rec_room *x = *(struct rec_room *const *)a, *y = *(struct rec_room *const *)b;
	return cmp_key(x->rp->pf, x->id, y->rp->pf, y->id);
}

/* By key; for one room listed twice (config and command line) the labelled entry first. */
static int cmp_conf_room(const void *a, const void *b)
{
	const struct conf_room *x = *(const struct conf_room *const *)a;
	const struct conf_room *y = *(const struct conf_room *const *)b;
	int c = cmp_key(x->platform, x->id, y->platform, y->id);
	if (c)
		return c;
	return (y->label && *y->label) - (x->label && *x->label);
}

static int open_platform(struct rec *rec, struct rec_platform *rp);
static uint64_t heartbeat_ms(const struct rec *rec, const struct platform *pf);

struct room_changes {
	size_t added, removed, relabelled, kept;
};

static int add_room(struct rec *rec, const struct conf_room *want, const char *label, bool start)
{
	struct rec_platform *rp = &rec->plat[platform_index(want->platform)];
	int rc = open_platform(rec, rp);
	if (rc < 0)
		return rc;
	struct rec_room *rr = calloc(1, sizeof(*rr));
	if (!rr || (label && !(rr->label = strdup(label)))) {
		free(rr);
		return -ENOMEM;
	}
	rr->rec = rec;
	rr->rp = rp;
	rr->id = rr->real_id = want->id;
	rc = room_create(&rp->env, rp->pf, want->id, &room_ev, rr, &rr->room);
	if (rc < 0) {
		free(rr->label);
		free(rr);
		return rc;
	}
	list_insert_tail(&rec->rooms, &rr->link);
	rec->n_rooms++;
	/* A platform that resolves ids (prepare) writes the rooms row when it knows the real
	 * one (on_resolved); for the others the configured id is the real id. */
	if (!rp->pf->prepare) {
		rr->stored = true;
		rc = store_room(rec->store, rp->pf->name, want->id, 0, label, (int64_t)wall_ms());
	}
	if (rec->ship)
		ship_rooms_changed(rec->ship);
	if (start) {
		log_info("room %s: %s", room_name(rr->room),
			 rec->cluster ? "lease taken, recording" : "added to the configuration");
		room_start(rr->room);
	}
	return rc;
}

/*
 * Make the recorded set equal to want[0..n) (duplicates allowed: recorded once, the first
 * label wins). Rooms not wanted any more stop with reason "removed"; wanted rooms that are not
 * recorded are created (and started when start is true); rooms in both keep their connection
 * and only get their label updated. Rooms already stopping do not count as recorded, so a
 * room removed and re-added before its old connection closed gets a fresh room. Both lists
 * are sorted first: O(n log n) even for thousands of rooms. Returns 0, or -ENOMEM after
 * applying what it could.
 */
static int set_rooms(struct rec *rec, const struct conf_room *want, size_t n, bool start,
		     struct room_changes *ch)
{
	memset(ch, 0, sizeof(*ch));
	size_t n_cur = 0;
	struct list *pos, *tmp;
	each_room(pos, tmp, rec)
	{
		n_cur += !room_is_stopping(rr_of(pos)->room);
	}
	struct rec_room **cur = malloc((n_cur ? n_cur : 1) * sizeof(*cur));
	const struct conf_room **w = malloc((n ? n : 1) * sizeof(*w));
	int rc = 0;
	if (!cur || !w) {
		rc = -ENOMEM;
		goto out;
	}
	size_t k = 0;
	each_room(pos, tmp, rec)
	{
		if (!room_is_stopping(rr_of(pos)->room))
			cur[k++] = rr_of(pos);
	}
	for (size_t i = 0; i < n; i++)
		w[i] = &want[i];
	qsort(cur, n_cur, sizeof(*cur), cmp_room);
	qsort(w, n, sizeof(*w), cmp_conf_room);

	size_t i = 0, j = 0;
	while (i < n_cur || j < n) {
		if (j < n && j > 0 &&
		    cmp_key(w[j]->platform, w[j]->id, w[j - 1]->platform, w[j - 1]->id) == 0) {
			j++; /* listed twice: recorded once */
			continue;
		}
		int c = i == n_cur ? 1
			: j == n   ? -1
				   : cmp_key(cur[i]->rp->pf, cur[i]->id, w[j]->platform, w[j]->id);
		if (c < 0) {
			if (start) /* a reload, or the leases changed */
				log_info("room %s: %s", room_name(cur[i]->room),
					 rec->cluster ? "lease given up or lost, stopping"
						      : "removed from the configuration");
			room_stop(cur[i++]->room, rec->stop_reason ? rec->stop_reason : "removed");
			ch->removed++;
			continue;
		}
		const char *label = w[j]->label && *w[j]->label ? w[j]->label : NULL;
		if (c > 0) {
			int err = add_room(rec, w[j], label, start);
			if (err < 0)
				rc = err;
			else
				ch->added++;
			j++;
			continue;
		}
		struct rec_room *rr = cur[i++];
		j++;
		if (same_label(rr->label, label)) {
			ch->kept++;
			continue;
		}
		char *copy = label ? strdup(label) : NULL;
		if (label && !copy) {
			rc = -ENOMEM;
			continue;
		}
		free(rr->label);
		rr->label = copy;
		ch->relabelled++;
		/* The store keeps the old label when given NULL (see store_room). Not yet
		 * resolved: on_resolved writes the row with the new label. */
		if (!rr->stored)
			continue;
		int err = store_room(rec->store, rr->rp->pf->name, rr->real_id, 0, label,
				     (int64_t)wall_ms());
		if (err < 0)
			rc = err;
		if (rec->ship)
			ship_rooms_changed(rec->ship);
	}
out:
	free(cur);
	free(w);
	return rc;
}

static bool same_servers(const struct rec_options *a, const struct rec_options *b)
{
	if (a->n_servers != b->n_servers)
		return false;
	for (size_t i = 0; i < a->n_servers; i++)
		if (strcmp(a->servers[i], b->servers[i]) != 0)
			return false;
	return true;
}

static bool same_str(const char *a, const char *b)
{
	return (!a || !b) ? a == b : strcmp(a, b) == 0;
}

/*
 * SIGHUP. Tells systemd RELOADING=1 (with MONOTONIC_USEC, as sd_notify(3) asks), gets the new
 * options from main.c and applies them, then READY=1. A configuration with any error was
 * already refused whole by the reload callback: nothing changes. Applied at once: the room
 * list and labels, heartbeat_s (from the next heartbeat on), flush_ms, the metrics file and
 * intervals, stats_interval_s. Not applied (logged): database, servers, the CA file, fts,
 * max_queue_mb: these are bound into open connections and the store, so they take a restart.
 */
static void rec_reload(struct rec *rec)
{
	if (!rec->opt.reload) {
		log_notice("SIGHUP: no configuration file (-c) to re-read; nothing to reload");
		return;
	}
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	char msg[96];
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64,
		 (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
	notify_send(&rec->notify, msg);

	struct rec_options next;
	char err[512];
	if (rec->opt.reload(rec->opt.reload_ctx, &next, err, sizeof(err)) < 0) {
		rec->reloads_failed++;
		log_err("reload: %s; keeping the running configuration", err);
		send_status(rec, "READY=1\n");
		return;
	}
	if (!same_str(next.db_path, rec->opt.db_path))
		log_warn("reload: database changed to %s; restart to use it", next.db_path);
	if (!same_servers(&next, &rec->opt))
		log_warn("reload: server list changed; restart to use it");
	if (!same_str(next.ca_file, rec->opt.ca_file) || next.insecure != rec->opt.insecure)
		log_warn("reload: TLS settings changed; restart to use them");
	if (next.fts != rec->opt.fts || next.max_queue_mb != rec->opt.max_queue_mb)
		log_warn("reload: fts or max_queue_mb changed; restart to use them");

	uint64_t now = uv_now(rec->loop);
	rec->opt.heartbeat_s = next.heartbeat_s;
	rec->opt.conf = next.conf;
	for (size_t i = 0; i < REC_MAX_PLATFORMS; i++) {
		struct rec_platform *rp = &rec->plat[i];
		if (!rp->open)
			continue;
		rp->env.heartbeat_ms = heartbeat_ms(rec, rp->pf);
		if (rp->pctx && rp->pf->ctx_reload && rp->pf->ctx_reload(rp->pctx, next.conf, err,
									 sizeof(err)) < 0)
			log_err("reload: %s; keeping its running settings", err);
	}
	if (next.flush_ms != rec->opt.flush_ms) {
		rec->opt.flush_ms = next.flush_ms;
		uv_timer_start(&rec->flush_timer, on_flush, next.flush_ms, next.flush_ms);
	}
	if (next.stats_interval_s != rec->opt.stats_interval_s) {
		rec->opt.stats_interval_s = next.stats_interval_s;
		rec->next_stats = now + (uint64_t)next.stats_interval_s * 1000;
	}
	rec->opt.metrics_interval_s = next.metrics_interval_s;
	if (!same_str(next.metrics_file, rec->metrics_file)) {
		char *copy = next.metrics_file ? strdup(next.metrics_file) : NULL;
		if (copy || !next.metrics_file) {
			free(rec->metrics_file);
			rec->metrics_file = copy;
			rec->metrics_trouble = false;
			rec->next_metrics = now; /* write the new file on the next tick */
		}
	}

	if (!same_str(next.pg_url, rec->opt.pg_url) || !same_str(next.node, rec->opt.node) ||
	    next.cluster_mode != rec->opt.cluster_mode || next.lease_s != rec->opt.lease_s ||
	    next.max_rooms != rec->opt.max_rooms ||
	    next.keep_local_days != rec->opt.keep_local_days ||
	    !same_str(next.pg_password, rec->opt.pg_password))
		log_warn("reload: [postgresql] or [cluster] changed; restart to use them");
	struct room_changes ch = {0};
	int rc;
	if (rec->cluster) {
		/* Shard: the configuration is what this node offers; the leases decide. */
		rc = cluster_offer(rec->cluster, next.rooms, next.n_rooms);
		ch.kept = rec->n_rooms;
	} else {
		rc = set_rooms(rec, next.rooms, next.n_rooms, true, &ch);
	}
	if (rc < 0)
		log_err("reload: %s; some rooms were not updated", strerror(-rc));
	rec->opt.conf = NULL; /* valid only during the reload callback's call */
	/* After set_rooms: a platform its first room opened may bring a shorter heartbeat. */
	uint64_t tick = tick_interval_ms(rec);
	uv_timer_start(&rec->tick_timer, on_tick, tick, tick);
	rec->reloads_ok++;
	log_info("reloaded: %zu rooms: %zu added, %zu removed, %zu relabelled, %zu unchanged; "
		 "heartbeat %u s, flush %u ms",
		 ch.added + ch.relabelled + ch.kept, ch.added, ch.removed, ch.relabelled, ch.kept,
		 rec->opt.heartbeat_s, rec->opt.flush_ms);
	send_status(rec, "READY=1\n");
}

/* Release what rec_create took; every handle is closed by now. */
static void rec_free(struct rec *rec)
{
	store_close(rec->store);
	if (rec->lock_fd >= 0)
		close(rec->lock_fd);
	tls_config_destroy(rec->tls);
	for (size_t i = 0; i < REC_MAX_PLATFORMS; i++)
		free(rec->plat[i].servers);
	buf_finish(&rec->scratch);
	notify_close(&rec->notify);
	free(rec->metrics_file);
	free(rec);
}

/* ---- rec_create, one step at a time; each logs why it failed ---- */

/*
 * One recorder per database, checked before anything else touches the file: session ids are
 * handed out from memory and sessions left open are closed at start, both of which assume no
 * other writer (store_lock says why the schema and the index need it too).
 */
static int lock_database(struct rec *rec)
{
	char err[256];
	rec->lock_fd = store_lock(rec->opt.db_path, true, err, sizeof(err));
	if (rec->lock_fd >= 0)
		return 0;
	int rc = rec->lock_fd;
	rec->lock_fd = -1;
	log_err("database %s: %s", rec->opt.db_path, err);
	return rc;
}

static int open_store(struct rec *rec)
{
	char err[512];
	/* busy_timeout 0: a locked database fails the flush at once (the queue is kept and
	 * retried on the next tick) instead of blocking the loop. */
	struct store_options so = {
		.max_queue_bytes = (size_t)rec->opt.max_queue_mb << 20,
		.busy_timeout_ms = 0,
		.fts = rec->opt.fts,
		/* keep_local_days deletes shipped rows: let a new file shrink after them */
		.reclaim_space = rec->opt.pg_url && rec->opt.keep_local_days >= 0};
	int rc = store_open(rec->opt.db_path, &so, &rec->store, err, sizeof(err));
	if (rc < 0) {
		log_err("database %s: %s", rec->opt.db_path, err);
		return rc;
	}
	int stale = store_end_stale_sessions(rec->store, "unclean stop");
	if (stale > 0)
		log_notice("database %s: closed %d sessions a previous run left open "
			   "(end_reason 'unclean stop')",
			   rec->opt.db_path, stale);
	else if (stale < 0)
		log_warn("database %s: %s", rec->opt.db_path, store_last_error(rec->store));
	return 0;
}

static uint64_t heartbeat_ms(const struct rec *rec, const struct platform *pf)
{
	if (pf == platforms[0]) /* -h/--heartbeat and [douyu] heartbeat_s */
		return (uint64_t)rec->opt.heartbeat_s * 1000;
	const struct conf *c = rec->opt.conf;
	if (pf == &bilibili_platform && c && c->bili.heartbeat_s > 0)
		return (uint64_t)c->bili.heartbeat_s * 1000;
	return pf->heartbeat_ms;
}

/* TLS, for wss:// servers and https:// APIs: one config for the process, made when first
 * needed (a Douyu-only ws:// setup never loads a CA bundle). */
static int open_tls(struct rec *rec)
{
	if (rec->tls)
		return 0;
	char err[512];
	int rc = tls_config_create(rec->opt.ca_file, rec->opt.insecure, &rec->tls, err, sizeof(err));
	if (rc < 0) {
		log_err("tls: %s", err);
		return rc;
	}
	unsigned loaded, rejected;
	tls_config_ca_counts(rec->tls, &loaded, &rejected);
	/* A system bundle often holds a few certificates mbedTLS cannot parse; a file the user
	 * named should not. */
	if (rejected)
		LOG_AT(rec->opt.ca_file ? LOG_LEVEL_WARN : LOG_LEVEL_INFO,
		       "tls: CA file %s: %u certificates rejected as unparsable, %u loaded",
		       rec->opt.ca_file ? rec->opt.ca_file : "(system bundle)", rejected, loaded);
	else
		log_debug("tls: %u CA certificates loaded", loaded);
	if (rec->opt.insecure)
		log_warn("--insecure: TLS certificates and host names are NOT verified");
	/* Platforms opened before TLS was needed get it now. */
	for (size_t i = 0; i < REC_MAX_PLATFORMS; i++)
		rec->plat[i].env.tls = rec->tls;
	return 0;
}

/*
 * What the rooms of a platform share, made when its first room is added: the servers (Douyu:
 * -s or [douyu] servers; Bilibili: [bilibili] servers, its fallback hosts; else the
 * platform's defaults), TLS when a server is wss:// or the platform calls an API, and the
 * platform's context.
 */
static int open_platform(struct rec *rec, struct rec_platform *rp)
{
	if (rp->open)
		return 0;
	const struct platform *pf = rp->pf;
	const struct conf *c = rec->opt.conf;
	const char *const *urls = NULL;
	size_t n_urls = 0;
	if (pf == platforms[0]) {
		urls = rec->opt.servers;
		n_urls = rec->opt.n_servers;
	} else if (pf == &bilibili_platform && c) {
		urls = (const char *const *)c->bili.servers;
		n_urls = c->bili.n_servers;
	}
	if (!urls || n_urls == 0) {
		urls = pf->default_servers;
		for (n_urls = 0; urls[n_urls]; n_urls++)
			;
	}
	struct server *servers = calloc(n_urls, sizeof(*servers));
	if (!servers)
		return -ENOMEM;
	char err[512];
	bool need_tls = pf->ctx_create != NULL;
	for (size_t i = 0; i < n_urls; i++) {
		int rc = server_parse(urls[i], &servers[i], err, sizeof(err));
		if (rc < 0) {
			log_err("%s", err);
			free(servers);
			return rc;
		}
		need_tls |= servers[i].scheme == SERVER_WSS;
	}
	int rc = need_tls ? open_tls(rec) : 0;
	struct platform_ctx *pctx = NULL;
	if (rc == 0 && pf->ctx_create) {
		struct platform_env penv = {
		    .loop = rec->loop, .net = rec->net, .tls = rec->tls, .conf = c};
		rc = pf->ctx_create(&penv, &pctx, err, sizeof(err));
		if (rc < 0)
			log_err("%s: %s", pf->name, err);
	}
	if (rc < 0) {
		free(servers);
		return rc;
	}
	rp->servers = servers;
	rp->n_servers = n_urls;
	rp->pctx = pctx;
	rp->env = (struct room_env){
	    .loop = rec->loop,
	    .io = &room_net_transport,
	    .net = rec->net,
	    .pctx = pctx,
	    .tls = rec->tls,
	    .insecure = rec->opt.insecure,
	    .servers = servers,
	    .n_servers = n_urls,
	    .heartbeat_ms = heartbeat_ms(rec, pf),
	    .now = env_now,
	    .wall = env_wall,
	    .random = env_random,
	    .ctx = rec,
	    .scratch = &rec->scratch,
	};
	rp->open = true;
	log_info("%s: servers: %zu, first %s, heartbeat %" PRIu64 " s", pf->name, n_urls,
		 servers[0].url, rp->env.heartbeat_ms / 1000);
	return 0;
}

/* Shard mode: the leases say which rooms this node records. */
static void on_cluster_rooms(void *user_data, const struct conf_room *rooms, size_t n,
			     const char *reason)
{
	struct rec *rec = user_data;
	if (rec->stopping)
		return;
	struct room_changes ch;
	rec->stop_reason = reason;
	int rc = set_rooms(rec, rooms, n, true, &ch);
	rec->stop_reason = NULL;
	if (rc < 0)
		log_err("cluster: out of memory; some rooms were not started or stopped");
	uint64_t tick = tick_interval_ms(rec); /* a platform's first room may bring its own */
	uv_timer_start(&rec->tick_timer, on_tick, tick, tick);
	if (ch.added || ch.removed)
		log_info("cluster: recording %zu rooms (%zu taken, %zu given up)",
			 ch.added + ch.kept + ch.relabelled, ch.added, ch.removed);
}

static const struct cluster_callbacks cluster_cb = {.set_rooms = on_cluster_rooms};

/* [postgresql]: the shipper, and in shard mode the leases. Nothing connects before the
 * loop runs. */
static int open_pg(struct rec *rec)
{
	const struct rec_options *o = &rec->opt;
	if (!o->pg_url)
		return 0;
	char err[256];
	bool shard = o->cluster_mode == CONF_CLUSTER_SHARD;
	struct ship_options so = {.db_path = o->db_path,
				  .conninfo = o->pg_url,
				  .password = o->pg_password,
				  .node = o->node,
				  .mode = shard ? "shard" : "mirror",
				  .keep_local_days = o->keep_local_days};
	int rc = ship_create(rec->loop, rec->net, rec->store, &so, &rec->ship, err, sizeof(err));
	if (rc < 0) {
		log_err("%s", err);
		return rc;
	}
	if (shard) {
		struct cluster_options co = {.conninfo = o->pg_url,
					     .password = o->pg_password,
					     .node = o->node,
					     .lease_s = o->lease_s ? o->lease_s : 30,
					     .max_rooms = o->max_rooms};
		rc = cluster_create(rec->loop, rec->net, &co, &cluster_cb, rec, &rec->cluster, err,
				    sizeof(err));
		if (rc == 0)
			rc = cluster_offer(rec->cluster, o->rooms, o->n_rooms);
		if (rc < 0) {
			log_err("%s", rc == -ENOMEM ? "out of memory" : err);
			return rc;
		}
	}
	log_info("postgresql: shipping to %s as node %s (%s%s)", "the configured server", o->node,
		 shard ? "shard" : "mirror",
		 o->keep_local_days >= 0 ? ", local rows kept only until shipped and old enough"
					 : "");
	return 0;
}

static int open_net(struct rec *rec)
{
	int rc = net_ctx_create(rec->loop, &rec->net);
	if (rc < 0) {
		log_err("dns: cannot initialise c-ares");
		return rc;
	}
	for (size_t i = 0; platforms[i] && i < REC_MAX_PLATFORMS; i++)
		rec->plat[i].pf = platforms[i];
	return 0;
}

/* systemd notify, metrics file, the clocks of the periodic jobs. */
static int open_service(struct rec *rec)
{
	if (rec->opt.metrics_file && !(rec->metrics_file = strdup(rec->opt.metrics_file)))
		return -ENOMEM;
	/* Before the tick interval is computed: a watchdog may shorten it. */
	int rc = notify_open(&rec->notify, getenv("NOTIFY_SOCKET"), getenv("WATCHDOG_USEC"),
			     getenv("WATCHDOG_PID"));
	if (rc < 0)
		log_warn("systemd notify: NOTIFY_SOCKET unusable (%s); not notifying", strerror(-rc));
	else if (notify_enabled(&rec->notify))
		log_debug("systemd notify: enabled, watchdog every %" PRIu64 " ms",
			  rec->notify.watchdog_usec / 2000);
	uint64_t now = uv_now(rec->loop);
	rec->last_stats_at = now;
	rec->next_stats = now + (uint64_t)rec->opt.stats_interval_s * 1000;
	rec->next_status = now + REC_STATUS_EVERY_MS;
	rec->next_metrics = now; /* first tick */
	rec->next_watchdog = now;
	return 0;
}

static void arm_timers_and_signals(struct rec *rec)
{
	uv_loop_t *loop = rec->loop;
	uv_timer_init(loop, &rec->tick_timer);
	uv_timer_init(loop, &rec->flush_timer);
	uv_timer_init(loop, &rec->flush_more);
	uv_timer_init(loop, &rec->stop_timer);
	rec->tick_timer.data = rec->flush_timer.data = rec->flush_more.data = rec;
	rec->stop_timer.data = rec;
	uv_signal_init(loop, &rec->sig_int);
	uv_signal_init(loop, &rec->sig_term);
	uv_signal_init(loop, &rec->sig_hup);
	rec->sig_int.data = rec->sig_term.data = rec->sig_hup.data = rec;
	uv_signal_start(&rec->sig_int, on_signal, SIGINT);
	uv_signal_start(&rec->sig_term, on_signal, SIGTERM);
	uv_signal_start(&rec->sig_hup, on_signal, SIGHUP);
	uint64_t tick = tick_interval_ms(rec);
	uv_timer_start(&rec->tick_timer, on_tick, tick, tick);
	uv_timer_start(&rec->flush_timer, on_flush, rec->opt.flush_ms, rec->opt.flush_ms);
}

static struct rec *rec_alloc(uv_loop_t *loop, const struct rec_options *opt)
{
	struct rec *rec = calloc(1, sizeof(*rec));
	if (!rec)
		return NULL;
	rec->loop = loop;
	rec->lock_fd = -1;
	rec->opt = *opt;
	list_init(&rec->rooms);
	buf_init(&rec->scratch);
	if (getrandom(&rec->rng, sizeof(rec->rng), GRND_NONBLOCK) != sizeof(rec->rng))
		rec->rng = uv_hrtime();
	rec->rng |= 1;
	rec->notify.fd = -1;
	rec->start_wall_ms = wall_ms();
	return rec;
}

int rec_create(uv_loop_t *loop, const struct rec_options *opt, struct rec **out)
{
	struct rec *rec = rec_alloc(loop, opt);
	if (!rec)
		return -ENOMEM;
	struct room_changes ch;
	int rc;
	bool shard = opt->pg_url && opt->cluster_mode == CONF_CLUSTER_SHARD;
	if ((rc = lock_database(rec)) < 0 || (rc = open_store(rec)) < 0 ||
	    (rc = open_net(rec)) < 0 || (rc = open_pg(rec)) < 0 ||
	    (!shard && (rc = set_rooms(rec, opt->rooms, opt->n_rooms, false, &ch)) < 0) ||
	    (rc = open_service(rec)) < 0) {
		if (rc == -ENOMEM)
			log_err("out of memory");
		/* Nothing was started: rooms only have an inactive timer to close. */
		struct list *pos, *tmp;
		each_room(pos, tmp, rec)
		{
			room_stop(rr_of(pos)->room, "not started");
		}
		close_platforms(rec);
		ship_close(rec->ship);
		rec->ship = NULL;
		cluster_close(rec->cluster);
		rec->cluster = NULL;
		if (rec->net)
			net_ctx_close(rec->net);
		uv_run(loop, UV_RUN_DEFAULT);
		rec_free(rec);
		return rc;
	}
	arm_timers_and_signals(rec);
	if (shard)
		log_info("shard node %s: offering %zu rooms; recording the ones leased to it, into "
			 "%s (flush %u ms)",
			 opt->node, opt->n_rooms, opt->db_path, opt->flush_ms);
	else
		log_info("recording %zu rooms into %s (flush %u ms)", rec->n_rooms, opt->db_path,
			 opt->flush_ms);
	if (rec->ship)
		ship_start(rec->ship);
	if (rec->cluster)
		cluster_start(rec->cluster);
	struct list *pos, *tmp;
	each_room(pos, tmp, rec)
	{
		room_start(rr_of(pos)->room);
	}
	/* The store is open and every room has begun its first attempt. */
	send_status(rec, "READY=1\n");
	*out = rec;
	return 0;
}

int rec_destroy(struct rec *rec)
{
	int code = rec->exit_code;
	rec_free(rec);
	return code;
}
