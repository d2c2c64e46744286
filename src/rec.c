/*
 * rec: the recorder. It owns the rooms, the shared TLS config and net context, the store,
 * two timers and the signal handlers:
 *  - the tick timer walks every room (heartbeats due, attempts stalled, connections silent),
 *    reports storage trouble and dropped rows, and prints a stats line once a minute;
 *  - the flush timer commits the store's queue in one transaction, in bounded slices that
 *    continue on the next loop turn, so a long queue never stalls the loop.
 * Stopping (SIGINT/SIGTERM) asks every room to log out and close; when the last room is
 * gone the queue is committed in full and every handle is closed, so uv_run() returns.
 */
#include "rec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "conf.h"
#include "log.h"
#include "net.h"
#include "platform.h"
#include "store.h"
#include "tls.h"

#define REC_FLUSH_SLICE_ROWS 5000
#define REC_STOP_DEADLINE_MS 5000
#define REC_STATS_EVERY_MS 60000

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
	return hb / 4 < 1000 ? (hb / 4 ? hb / 4 : 1) : 1000;
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
	rec->flush_rc = rc;
}

static void log_stats(struct rec *rec)
{
	size_t live = 0;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &rec->rooms)
	{
		struct room *r = container_of(pos, struct room, link);
		live += r->state == ROOM_LIVE;
	}
	struct store_stats st;
	store_get_stats(rec->store, &st);
	double secs = REC_STATS_EVERY_MS / 1000.0;
	log_info("stats: rooms live %zu/%zu, committed %" PRIu64 " (%.1f/s), duplicates %" PRIu64
		 ", queued %" PRIu64 ", dropped %" PRIu64 ", other rooms' messages %" PRIu64,
		 live, rec->n_rooms, st.committed, (double)(st.committed - rec->last_committed) / secs,
		 st.duplicates, st.queued_rows, st.dropped, rec->foreign_total);
	rec->last_committed = st.committed;
}

/*
 * The heartbeat of the process, every tick (1 s, less for short heartbeat intervals):
 *  1. every room: send its heartbeat when due, fail it if stalled or silent;
 *  2. report store drops as they happen;
 *  3. once a minute, the stats line.
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
	if (rec->ticks % (REC_STATS_EVERY_MS / tick_interval_ms(rec)) == 0)
		log_stats(rec);
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

static void on_signal(uv_signal_t *s, int signum)
{
	struct rec *rec = s->data;
	if (signum == SIGHUP) {
		log_notice("SIGHUP: configuration reload is not supported yet; ignoring");
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

static int add_room(struct rec *rec, int64_t id, const char *label, int64_t now)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &rec->rooms)
	{
		if (container_of(pos, struct room, link)->id == id)
			return 0; /* listed twice (CLI and config): record once */
	}
	struct room *r;
	int rc = room_create(rec, id, label, &r);
	if (rc < 0)
		return rc;
	list_insert_tail(&rec->rooms, &r->link);
	rec->n_rooms++;
	return store_room(rec->store, id, label, now);
}

int rec_create(uv_loop_t *loop, const struct rec_options *opt, struct rec **out)
{
	struct rec *rec = calloc(1, sizeof(*rec));
	if (!rec)
		return -ENOMEM;
	rec->loop = loop;
	rec->opt = *opt;
	list_init(&rec->rooms);
	buf_init(&rec->scratch);
	if (getrandom(&rec->rng, sizeof(rec->rng), GRND_NONBLOCK) != sizeof(rec->rng))
		rec->rng = uv_hrtime();
	rec->rng |= 1;

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

	rc = store_open(opt->db_path, NULL, &rec->store, err, sizeof(err));
	if (rc < 0) {
		log_err("database %s: %s", opt->db_path, err);
		goto fail;
	}
	rc = net_ctx_create(loop, &rec->net);
	if (rc < 0) {
		log_err("dns: cannot initialise c-ares");
		goto fail;
	}

	int64_t now = (int64_t)rec_wall_ms();
	for (size_t i = 0; i < opt->n_rooms; i++) {
		rc = add_room(rec, opt->rooms[i].id, opt->rooms[i].label, now);
		if (rc < 0)
			goto fail;
	}

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
	store_close(rec->store);
	tls_config_destroy(rec->tls);
	free(rec->servers);
	buf_finish(&rec->scratch);
	free(rec);
	return rc;
}

int rec_destroy(struct rec *rec)
{
	int code = rec->exit_code;
	store_close(rec->store);
	tls_config_destroy(rec->tls);
	free(rec->servers);
	buf_finish(&rec->scratch);
	free(rec);
	return code;
}
