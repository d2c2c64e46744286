/*
 * rec: the recorder. It owns the rooms, the shared TLS config and net context, the store,
 * two timers and the signal handlers:
 *  - the tick timer walks every room (heartbeats due, attempts stalled, connections silent),
 *    reports storage trouble and dropped rows, and prints a stats line once a minute;
 *  - the flush timer commits the store's queue in one transaction, in bounded slices that
 *    continue on the next loop turn, so a long queue never stalls the loop.
 * Stopping (SIGINT/SIGTERM) asks every room to log out and close; when the last room is
 * gone the queue is committed in full and every handle is closed, so uv_run() returns.
 * Reloading (SIGHUP) asks main.c for the new options and makes the running set of rooms
 * equal to the new list: new rooms start, dropped rooms stop with reason "removed", the rest
 * keep their connections. Under systemd the recorder speaks the notify protocol (READY,
 * RELOADING, STOPPING, STATUS, WATCHDOG) from the same timers.
 */
#include "rec.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "platform.h"
#include "store.h"
#include "tls.h"

#define REC_FLUSH_SLICE_ROWS 5000
#define REC_STOP_DEADLINE_MS 5000
#define REC_STATUS_EVERY_MS 5000 /* STATUS= refresh for systemctl status */

#ifndef DANMAKUD_VERSION
#define DANMAKUD_VERSION "0.1.0"
#endif

uint64_t rec_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t rec_random(struct rec *rec)
{
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

void rec_backpressure(struct rec *rec)
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
	uint64_t now = uv_now(rec->loop);
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &rec->rooms)
	{
		struct room *r = container_of(pos, struct room, link);
		if (!r->net)
			continue;
		if (pause) {
			net_pause(r->net);
		} else {
			/* Silence while paused was ours, not the server's. */
			r->last_rx = now;
			net_resume(r->net);
		}
	}
}

static void on_flush(uv_timer_t *t)
{
	struct rec *rec = t->data;
	uint64_t t0 = uv_hrtime();
	int rc = store_flush(rec->store, REC_FLUSH_SLICE_ROWS);
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
	uint64_t skipped = 0, replaced = 0;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &rec->rooms)
	{
		struct room *r = container_of(pos, struct room, link);
		live += r->state == ROOM_LIVE;
		skipped += r->stats.skipped;
		replaced += r->stats.replaced_utf8;
	}
	struct store_stats st;
	store_get_stats(rec->store, &st);
	uint64_t now = uv_now(rec->loop);
	double secs = now > rec->last_stats_at ? (double)(now - rec->last_stats_at) / 1000.0 : 1.0;
	rec->last_stats_at = now;
	log_info("stats: rooms live %zu/%zu, committed %" PRIu64 " (%.1f/s), duplicates %" PRIu64
		 ", queued %" PRIu64 ", dropped %" PRIu64 ", other rooms' messages %" PRIu64
		 ", skipped packets %" PRIu64 ", UTF-8 repairs %" PRIu64,
		 live, rec->n_rooms, st.committed, (double)(st.committed - rec->last_committed) / secs,
		 st.duplicates, st.queued_rows, st.dropped, rec->foreign_total, skipped, replaced);
	rec->last_committed = st.committed;
}

/* One walk over the rooms: the process-wide numbers. Rooms being removed count towards the
 * messages received but not towards the rooms recorded. */
static void snapshot(struct rec *rec, struct metrics_global *g)
{
	memset(g, 0, sizeof(*g));
	g->version = DANMAKUD_VERSION;
	g->start_ms = rec->start_wall_ms;
	g->received = rec->received_gone;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &rec->rooms)
	{
		struct room *r = container_of(pos, struct room, link);
		g->received += r->stats.received;
		if (r->stopping)
			continue;
		g->rooms++;
		g->rooms_live += r->state == ROOM_LIVE;
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
	g->foreign = rec->foreign_total;
	g->storage_ok = !rec->storage_trouble;
	g->reloads_ok = rec->reloads_ok;
	g->reloads_failed = rec->reloads_failed;
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
		list_for_each_safe(pos, tmp, &rec->rooms)
		{
			struct room *r = container_of(pos, struct room, link);
			if (r->stopping || n == g.rooms)
				continue;
			rooms[n++] = (struct metrics_room){
			    .id = r->id,
			    .label = r->label,
			    .state = room_state_name(r->state),
			    .live = r->state == ROOM_LIVE,
			    .received = r->stats.received,
			    .stored = r->stats.stored,
			    .foreign = r->stats.foreign,
			    .reconnects = r->stats.reconnects,
			    .last_msg_ms = r->stats.last_msg_ms,
			    .session_start_ms = r->session_id ? r->stats.session_start_ms : 0,
			};
		}
		rc = metrics_render(&out, &g, rooms, n, rec_wall_ms());
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
	list_for_each_safe(pos, tmp, &rec->rooms)
	{
		room_tick(container_of(pos, struct room, link), now);
	}
	report_storage(rec, rec->storage_trouble ? -EIO : 0);
	rec->ticks++;
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
static void rec_finish(struct rec *rec)
{
	uv_timer_stop(&rec->flush_timer);
	uv_timer_stop(&rec->flush_more);
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
	uv_close((uv_handle_t *)&rec->tick_timer, on_handle_closed);
	uv_close((uv_handle_t *)&rec->flush_timer, on_handle_closed);
	uv_close((uv_handle_t *)&rec->flush_more, on_handle_closed);
	uv_close((uv_handle_t *)&rec->stop_timer, on_handle_closed);
	uv_close((uv_handle_t *)&rec->sig_int, on_handle_closed);
	uv_close((uv_handle_t *)&rec->sig_term, on_handle_closed);
	uv_close((uv_handle_t *)&rec->sig_hup, on_handle_closed);
	net_ctx_close(rec->net);
	rec->net = NULL;
}

void rec_room_gone(struct rec *rec, struct room *r)
{
	list_remove(&r->link);
	rec->n_rooms--;
	rec->received_gone += r->stats.received;
	if (rec->stopping && rec->n_rooms == 0)
		rec_finish(rec);
}

static void on_stop_deadline(uv_timer_t *t)
{
	struct rec *rec = t->data;
	log_warn("stop: connections still open after %d ms; closing them", REC_STOP_DEADLINE_MS);
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &rec->rooms)
	{
		struct room *r = container_of(pos, struct room, link);
		if (r->net)
			net_close(r->net);
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
	list_for_each_safe(pos, tmp, &rec->rooms)
	{
		room_stop(container_of(pos, struct room, link), "shutdown");
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

static int cmp_room(const void *a, const void *b)
{
	int64_t x = (*(struct room *const *)a)->id, y = (*(struct room *const *)b)->id;
	return x < y ? -1 : x > y;
}

/* By id; for one id listed twice (config and command line) the labelled entry first. */
static int cmp_conf_room(const void *a, const void *b)
{
	const struct conf_room *x = *(const struct conf_room *const *)a;
	const struct conf_room *y = *(const struct conf_room *const *)b;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return (y->label && *y->label) - (x->label && *x->label);
}

struct room_changes {
	size_t added, removed, relabelled, kept;
};

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
	list_for_each_safe(pos, tmp, &rec->rooms)
	{
		n_cur += !container_of(pos, struct room, link)->stopping;
	}
	struct room **cur = malloc((n_cur ? n_cur : 1) * sizeof(*cur));
	const struct conf_room **w = malloc((n ? n : 1) * sizeof(*w));
	int rc = 0;
	if (!cur || !w) {
		rc = -ENOMEM;
		goto out;
	}
	size_t k = 0;
	list_for_each_safe(pos, tmp, &rec->rooms)
	{
		struct room *r = container_of(pos, struct room, link);
		if (!r->stopping)
			cur[k++] = r;
	}
	for (size_t i = 0; i < n; i++)
		w[i] = &want[i];
	qsort(cur, n_cur, sizeof(*cur), cmp_room);
	qsort(w, n, sizeof(*w), cmp_conf_room);

	int64_t now = (int64_t)rec_wall_ms();
	size_t i = 0, j = 0;
	while (i < n_cur || j < n) {
		if (j < n && j > 0 && w[j]->id == w[j - 1]->id) {
			j++; /* listed twice: recorded once */
			continue;
		}
		if (j == n || (i < n_cur && cur[i]->id < w[j]->id)) {
			if (start) /* a reload */
				log_info("room %" PRId64 ": removed from the configuration", cur[i]->id);
			room_stop(cur[i++], "removed");
			ch->removed++;
			continue;
		}
		const char *label = w[j]->label && *w[j]->label ? w[j]->label : NULL;
		if (i == n_cur || w[j]->id < cur[i]->id) {
			struct room *r;
			int err = room_create(rec, w[j]->id, label, &r);
			if (err == 0) {
				list_insert_tail(&rec->rooms, &r->link);
				rec->n_rooms++;
				ch->added++;
				err = store_room(rec->store, r->id, label, now);
				if (start) {
					log_info("room %" PRId64 ": added to the configuration", r->id);
					room_start(r);
				}
			}
			if (err < 0)
				rc = err;
			j++;
			continue;
		}
		struct room *r = cur[i++];
		j++;
		if (same_label(r->label, label)) {
			ch->kept++;
			continue;
		}
		char *copy = label ? strdup(label) : NULL;
		if (label && !copy) {
			rc = -ENOMEM;
			continue;
		}
		free(r->label);
		r->label = copy;
		ch->relabelled++;
		/* The store keeps the old label when given NULL (see store_room). */
		int err = store_room(rec->store, r->id, label, now);
		if (err < 0)
			rc = err;
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
	if (next.heartbeat_s != rec->opt.heartbeat_s) {
		rec->opt.heartbeat_s = next.heartbeat_s;
		uint64_t tick = tick_interval_ms(rec);
		uv_timer_start(&rec->tick_timer, on_tick, tick, tick);
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

	struct room_changes ch;
	int rc = set_rooms(rec, next.rooms, next.n_rooms, true, &ch);
	if (rc < 0)
		log_err("reload: %s; some rooms were not updated", strerror(-rc));
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
	free(rec->servers);
	buf_finish(&rec->scratch);
	notify_close(&rec->notify);
	free(rec->metrics_file);
	free(rec);
}

int rec_create(uv_loop_t *loop, const struct rec_options *opt, struct rec **out)
{
	struct rec *rec = calloc(1, sizeof(*rec));
	if (!rec)
		return -ENOMEM;
	rec->loop = loop;
	rec->lock_fd = -1;
	rec->opt = *opt;
	list_init(&rec->rooms);
	buf_init(&rec->scratch);
	if (getrandom(&rec->rng, sizeof(rec->rng), GRND_NONBLOCK) != sizeof(rec->rng))
		rec->rng = uv_hrtime();
	rec->rng |= 1;
	rec->notify.fd = -1;
	rec->start_wall_ms = rec_wall_ms();

	char err[512];
	int rc;
	const char *const *urls = opt->servers;
	size_t n_urls = opt->n_servers;
	if (!urls || n_urls == 0) {
		urls = douyu_platform.default_servers;
		for (n_urls = 0; urls[n_urls]; n_urls++)
			;
	}
	rec->servers = calloc(n_urls, sizeof(*rec->servers));
	if (!rec->servers) {
		rc = -ENOMEM;
		goto fail;
	}
	bool need_tls = false;
	for (size_t i = 0; i < n_urls; i++) {
		rc = server_parse(urls[i], &rec->servers[i], err, sizeof(err));
		if (rc < 0) {
			log_err("%s", err);
			goto fail;
		}
		need_tls |= rec->servers[i].scheme == SERVER_WSS;
	}
	rec->n_servers = n_urls;

	if (need_tls) {
		rc = tls_config_create(opt->ca_file, opt->insecure, &rec->tls, err, sizeof(err));
		if (rc < 0) {
			log_err("tls: %s", err);
			goto fail;
		}
		if (opt->insecure)
			log_warn("--insecure: TLS certificates and host names are NOT verified");
	}

	/* busy_timeout 0: a locked database fails the flush at once (the queue is kept and
	 * retried on the next tick) instead of blocking the loop. */
	struct store_options so = {.max_queue_bytes = (size_t)opt->max_queue_mb << 20,
				   .busy_timeout_ms = 0,
				   .fts = opt->fts};
	rc = store_open(opt->db_path, &so, &rec->store, err, sizeof(err));
	if (rc < 0) {
		log_err("database %s: %s", opt->db_path, err);
		goto fail;
	}
	/* One recorder per database: session ids are handed out from memory, and sessions left
	 * open are closed below, both of which assume no other writer. The flock is released by
	 * the kernel however the process ends. */
	rec->lock_fd = open(opt->db_path, O_RDONLY | O_CLOEXEC);
	if (rec->lock_fd < 0 || flock(rec->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		log_err("database %s: %s", opt->db_path,
			errno == EWOULDBLOCK ? "another danmakud is recording into it"
					     : strerror(errno));
		rc = -EBUSY;
		goto fail;
	}
	int stale = store_end_stale_sessions(rec->store, "unclean stop");
	if (stale > 0)
		log_notice("database %s: closed %d sessions a previous run left open "
			   "(end_reason 'unclean stop')",
			   opt->db_path, stale);
	else if (stale < 0)
		log_warn("database %s: %s", opt->db_path, store_last_error(rec->store));
	rc = net_ctx_create(loop, &rec->net);
	if (rc < 0) {
		log_err("dns: cannot initialise c-ares");
		goto fail;
	}

	struct room_changes ch;
	rc = set_rooms(rec, opt->rooms, opt->n_rooms, false, &ch);
	if (rc < 0)
		goto fail;
	if (opt->metrics_file && !(rec->metrics_file = strdup(opt->metrics_file))) {
		rc = -ENOMEM;
		goto fail;
	}
	/* Before the tick interval is computed: a watchdog may shorten it. */
	rc = notify_open(&rec->notify, getenv("NOTIFY_SOCKET"), getenv("WATCHDOG_USEC"),
			 getenv("WATCHDOG_PID"));
	if (rc < 0)
		log_warn("systemd notify: NOTIFY_SOCKET unusable (%s); not notifying", strerror(-rc));
	else if (notify_enabled(&rec->notify))
		log_debug("systemd notify: enabled, watchdog every %" PRIu64 " ms",
			  rec->notify.watchdog_usec / 2000);
	uint64_t now = uv_now(loop);
	rec->last_stats_at = now;
	rec->next_stats = now + (uint64_t)opt->stats_interval_s * 1000;
	rec->next_status = now + REC_STATUS_EVERY_MS;
	rec->next_metrics = now; /* first tick */
	rec->next_watchdog = now;

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
	uv_timer_start(&rec->flush_timer, on_flush, opt->flush_ms, opt->flush_ms);

	log_info("recording %zu rooms into %s (servers: %zu, first %s, heartbeat %u s, flush %u ms)",
		 rec->n_rooms, opt->db_path, rec->n_servers, rec->servers[0].url, opt->heartbeat_s,
		 opt->flush_ms);
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &rec->rooms)
	{
		room_start(container_of(pos, struct room, link));
	}
	/* The store is open and every room has begun its first attempt. */
	send_status(rec, "READY=1\n");
	*out = rec;
	return 0;

fail:
	/* Nothing was started: rooms have only an initialised (inactive) timer. */
	while (!list_empty(&rec->rooms)) {
		struct room *r = container_of(rec->rooms.next, struct room, link);
		list_remove(&r->link);
		uv_close((uv_handle_t *)&r->backoff, NULL);
		uv_run(loop, UV_RUN_NOWAIT);
		free(r->label);
		free(r);
	}
	if (rec->net) {
		net_ctx_close(rec->net);
		uv_run(loop, UV_RUN_DEFAULT);
	}
	rec_free(rec);
	return rc;
}

int rec_destroy(struct rec *rec)
{
	int code = rec->exit_code;
	rec_free(rec);
	return code;
}
