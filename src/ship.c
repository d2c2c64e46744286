/*
 * ship: see ship.h.
 *
 * Phases: DOWN (pg.c reconnects by itself) -> SETUP (schema checked or created under an
 * advisory lock, temporary staging tables, this node's row) -> READY (batches). One request
 * is in flight at a time.
 *
 * Sessions change after they are inserted (joined, ended, message counts), so shipping them
 * by id alone is not enough: a session is shipped when it is new, and again while it is open
 * when it joined or ended, or every SHIP_SESSION_REFRESH_MS for its message count. The open
 * ones are remembered here; after a restart every session from the persisted floor on (the
 * lowest one that was open) is shipped once more.
 *
 * A batch PostgreSQL refuses for its data (SQLSTATE class 22: bad JSON, say) is sent again
 * with every JSON value checked one by one (danmakud_jsonb keeps an invalid one as a JSON
 * string); refused again, it goes one row at a time, and a single row still refused is
 * skipped, logged with its local id and counted: it stays in the local database, and nothing
 * behind it waits.
 */
#include "ship.h"

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "buf.h"
#include "cluster.h"
#include "log.h"
#include "pg.h"
#include "pg_schema.h"
#include "store.h"

#define SHIP_SESSION_REFRESH_MS 10000
#define SHIP_DOWN_LOG_EVERY_MS 60000
#define SHIP_RETAIN_CHUNK 2000
#define SHIP_RETAIN_BUDGET_NS (5 * 1000000u)
#define SHIP_RETRY_MS 2000
#define SHIP_RECLAIM_EVERY_MS 10000
#define SHIP_SEEN_EVERY_MS 5000
#define SHIP_SCHEMA_LOCK 0x64616e6d /* pg_advisory_lock key: "danm" */

enum ship_phase { SH_DOWN, SH_SETUP, SH_READY, SH_BROKEN };

struct sess_state {
	int64_t id, joined_at, ended_at, messages; /* -1: NULL */
	uint64_t shipped_at;                       /* uv_now() */
};

struct ship {
	uv_loop_t *loop;
	struct store *store;
	struct pg *pg;
	sqlite3 *rd;
	sqlite3_stmt *q_msgs, *q_sess_from, *q_sess_one, *q_rooms, *q_max;
	char *node, *mode;
	int keep_local_days;
	enum ship_phase phase;
	bool stopping, rooms_dirty, rehydrate;
	/* The open sessions are read again when the store committed a join or an end since
	 * (store_stats.session_edges), and every SHIP_SESSION_REFRESH_MS for their counts: not
	 * at every batch, which with thousands of rooms would be thousands of lookups a flush. */
	uint64_t edges_seen, open_read_at;
	uint64_t batch_edges, batch_read_at;
	bool batch_read_open;
	int setup_step;
	char store_id[64];
	int schema_version;
	bool schema_present;
	int64_t wm;        /* every local message id <= wm is in PostgreSQL */
	int64_t sess_max;  /* highest session id shipped */
	struct sess_state *open;
	size_t n_open, cap_open;
	/* the batch in flight */
	struct buf bm, bs, br, sql;
	struct pg_copy copies[3];
	int64_t batch_max_id;
	size_t batch_rows;
	struct sess_state *pend;
	size_t n_pend, cap_pend;
	int64_t batch_sess_max;
	bool safe;
	size_t limit;
	int64_t slow_until; /* row by row up to this local id (a refused batch's last) */
	/* stats */
	uint64_t shipped, skipped, retained, backlog;
	char last_error[256];
	uint64_t down_logged_at;
	bool catching_up;
	bool retain_dirty; /* rows deleted since the last reclaim finished */
	uint64_t next_reclaim;
	uint64_t started_ms;   /* wall clock at start: nodes.started_at (gaps reads it) */
	uint64_t seen_sent_at; /* uv_now() of the last nodes.seen_at update */
	uv_timer_t timer;  /* the next batch, or a retry */
	uv_timer_t stop_timer;
	void (*stop_done)(void *ctx);
	void *stop_ctx;
	int closes;
};

static uint64_t wall_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void cycle(struct ship *sh);
static void setup(struct ship *sh);

static void on_timer(uv_timer_t *t);

/* Run cycle() (or the setup again) after ms. */
static void arm(struct ship *sh, uint64_t ms)
{
	uv_timer_start(&sh->timer, on_timer, ms, 0);
}

/* ---- reading the local database ---- */

static int col_str(struct buf *b, sqlite3_stmt *st, int i, bool last)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return pg_copy_null(b, last);
	const char *p = (const char *)sqlite3_column_text(st, i);
	return pg_copy_str(b, p ? p : "", (size_t)sqlite3_column_bytes(st, i), last);
}

static int col_int(struct buf *b, sqlite3_stmt *st, int i, bool last)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return pg_copy_null(b, last);
	return pg_copy_int(b, sqlite3_column_int64(st, i), last);
}

static int64_t col_opt(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, i);
}

static struct sess_state *find_open(struct ship *sh, int64_t id)
{
	size_t lo = 0, hi = sh->n_open;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (sh->open[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < sh->n_open && sh->open[lo].id == id ? &sh->open[lo] : NULL;
}

static int push_sess(struct sess_state **v, size_t *n, size_t *cap, const struct sess_state *s)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct sess_state *p = realloc(*v, c * sizeof(*p));
		if (!p)
			return -ENOMEM;
		*v = p;
		*cap = c;
	}
	(*v)[(*n)++] = *s;
	return 0;
}

/* sessions: id, room_id, server, started_at, joined_at, ended_at, end_reason, messages,
 * platform. Decide whether this row goes in the batch; if so, append it. */
static int session_row(struct ship *sh, sqlite3_stmt *st, uint64_t now, bool force)
{
	struct sess_state cur = {.id = sqlite3_column_int64(st, 0),
				 .joined_at = col_opt(st, 4),
				 .ended_at = col_opt(st, 5),
				 .messages = sqlite3_column_int64(st, 7),
				 .shipped_at = now};
	struct sess_state *old = find_open(sh, cur.id);
	if (!force && old) {
		bool edge = old->joined_at != cur.joined_at || old->ended_at != cur.ended_at;
		bool count = old->messages != cur.messages &&
			     now - old->shipped_at >= SHIP_SESSION_REFRESH_MS;
		if (!edge && !count)
			return 0;
	}
	int rc = 0;
	for (int i = 0; i < 9 && rc == 0; i++)
		rc = (i == 2 || i == 6 || i == 8) ? col_str(&sh->bs, st, i, i == 8)
						  : col_int(&sh->bs, st, i, i == 8);
	if (rc == 0)
		rc = push_sess(&sh->pend, &sh->n_pend, &sh->cap_pend, &cur);
	if (cur.id > sh->batch_sess_max)
		sh->batch_sess_max = cur.id;
	return rc;
}

/* Read one batch (a read transaction: one snapshot) into the COPY buffers. */
static int read_batch(struct ship *sh, size_t *n_msgs, size_t *n_sess, size_t *n_rooms,
		      int64_t *lo_ts, int64_t *hi_ts)
{
	uint64_t now = uv_now(sh->loop);
	*n_msgs = *n_sess = *n_rooms = 0;
	*lo_ts = INT64_MAX;
	*hi_ts = INT64_MIN;
	buf_clear(&sh->bm);
	buf_clear(&sh->bs);
	buf_clear(&sh->br);
	sh->n_pend = 0;
	sh->batch_max_id = sh->wm;
	sh->batch_sess_max = sh->sess_max;
	struct store_stats ss; /* before the snapshot: a later edge makes the next read again */
	store_get_stats(sh->store, &ss);
	sh->batch_edges = ss.session_edges;
	sh->batch_read_at = now;
	sh->batch_read_open = sh->stopping || ss.session_edges != sh->edges_seen ||
			      now - sh->open_read_at >= SHIP_SESSION_REFRESH_MS;
	int rc = sqlite3_exec(sh->rd, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return -EIO;
	int ret = 0;
	sqlite3_stmt *st = sh->q_msgs;
	sqlite3_bind_int64(st, 1, sh->wm);
	sqlite3_bind_int64(st, 2, (int64_t)sh->limit);
	/* id room_id ts type uid nick level text cid session_id data platform decoded */
	static const char is_str[13] = {0, 0, 0, 1, 0, 1, 0, 1, 1, 0, 1, 1, 1};
	while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t ts = sqlite3_column_int64(st, 2);
		if (ts < *lo_ts)
			*lo_ts = ts;
		if (ts > *hi_ts)
			*hi_ts = ts;
		for (int i = 0; i < 13 && ret == 0; i++)
			ret = is_str[i] ? col_str(&sh->bm, st, i, i == 12)
					: col_int(&sh->bm, st, i, i == 12);
		sh->batch_max_id = sqlite3_column_int64(st, 0);
		(*n_msgs)++;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = -EIO;
	sqlite3_reset(st);
	/* Sessions: new ones (all from the floor after a restart), then the open ones. */
	st = sh->q_sess_from;
	sqlite3_bind_int64(st, 1, sh->rehydrate ? sh->sess_max : sh->sess_max + 1);
	while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
		ret = session_row(sh, st, now, true);
	if (ret == 0 && rc != SQLITE_DONE)
		ret = -EIO;
	sqlite3_reset(st);
	for (size_t i = 0; ret == 0 && sh->batch_read_open && i < sh->n_open; i++) {
		st = sh->q_sess_one;
		sqlite3_bind_int64(st, 1, sh->open[i].id);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			ret = session_row(sh, st, now, false);
		else if (rc != SQLITE_DONE)
			ret = -EIO;
		sqlite3_reset(st);
	}
	*n_sess = sh->n_pend;
	if (ret == 0 && sh->rooms_dirty) {
		st = sh->q_rooms;
		while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			/* platform room_id label added_at short_id */
			ret = col_str(&sh->br, st, 0, false);
			ret = ret ? ret : col_int(&sh->br, st, 1, false);
			ret = ret ? ret : col_str(&sh->br, st, 2, false);
			ret = ret ? ret : col_int(&sh->br, st, 3, false);
			ret = ret ? ret : col_int(&sh->br, st, 4, true);
			(*n_rooms)++;
		}
		if (ret == 0 && rc != SQLITE_DONE)
			ret = -EIO;
		sqlite3_reset(st);
	}
	sqlite3_exec(sh->rd, "COMMIT", NULL, NULL, NULL);
	return ret;
}

/* ---- the batch ---- */

static int build_sql(struct ship *sh, size_t n_msgs, size_t n_sess, size_t n_rooms,
		     int64_t lo_ts, int64_t hi_ts)
{
	struct buf *q = &sh->sql;
	buf_clear(q);
	size_t nc = 0;
	int rc = 0;
	if (n_rooms) {
		rc |= buf_append_str(q,
			"COPY danmakud_stage_rooms FROM STDIN;\n"
			"INSERT INTO rooms (platform, room_id, label, added_at, short_id)\n"
			"  SELECT platform, room_id, label, added_at, short_id FROM danmakud_stage_rooms\n"
			"  ORDER BY platform, room_id\n"
			"  ON CONFLICT (platform, room_id) DO UPDATE SET\n"
			"    label = coalesce(excluded.label, rooms.label),\n"
			"    short_id = coalesce(excluded.short_id, rooms.short_id);\n");
		sh->copies[nc++] = (struct pg_copy){(const char *)buf_head(&sh->br), sh->br.len};
	}
	if (n_sess) {
		rc |= buf_printf(q,
			"COPY danmakud_stage_sessions FROM STDIN;\n"
			"INSERT INTO sessions (node, local_id, room_id, server, started_at, joined_at,\n"
			"    ended_at, end_reason, messages, platform)\n"
			"  SELECT '%s', local_id, room_id, server, started_at, joined_at, ended_at,\n"
			"    end_reason, messages, platform FROM danmakud_stage_sessions ORDER BY local_id\n"
			"  ON CONFLICT (node, local_id) DO UPDATE SET joined_at = excluded.joined_at,\n"
			"    ended_at = excluded.ended_at, end_reason = excluded.end_reason,\n"
			"    messages = excluded.messages;\n",
			sh->node);
		sh->copies[nc++] = (struct pg_copy){(const char *)buf_head(&sh->bs), sh->bs.len};
	}
	if (n_msgs) {
		const char *json = sh->safe ? "danmakud_jsonb" : "";
		const char *cast = sh->safe ? "" : "::jsonb";
		rc |= buf_printf(q,
			"SELECT danmakud_partitions(%" PRId64 ", %" PRId64 ");\n"
			"COPY danmakud_stage_messages FROM STDIN;\n"
			"WITH fresh AS (\n"
			"  INSERT INTO message_cids (platform, room_id, cid, ts)\n"
			"    SELECT platform, room_id, cid, ts FROM danmakud_stage_messages\n"
			"    WHERE cid IS NOT NULL ORDER BY platform, room_id, cid\n"
			"    ON CONFLICT DO NOTHING RETURNING platform, room_id, cid)\n"
			"INSERT INTO messages (room_id, ts, type, uid, nick, level, text, cid, session_id,\n"
			"    data, platform, decoded, node, local_id)\n"
			"  SELECT m.room_id, m.ts, m.type, m.uid, m.nick, m.level, m.text, m.cid, s.id,\n"
			"    %s(m.data)%s, m.platform, %s(m.decoded)%s, '%s', m.local_id\n"
			"  FROM danmakud_stage_messages m\n"
			"  LEFT JOIN sessions s ON s.node = '%s' AND s.local_id = m.session_id\n"
			"  WHERE m.cid IS NULL OR (m.platform, m.room_id, m.cid) IN\n"
			"    (SELECT platform, room_id, cid FROM fresh)\n"
			"  ORDER BY m.local_id\n"
			"  ON CONFLICT DO NOTHING;\n",
			lo_ts, hi_ts, json, cast, json, cast, sh->node, sh->node);
		sh->copies[nc++] = (struct pg_copy){(const char *)buf_head(&sh->bm), sh->bm.len};
	}
	rc |= buf_printf(q,
		"UPDATE nodes SET seen_at = now(), shipped_id = %" PRId64 ", backlog = %" PRIu64
		" WHERE node = '%s';\n",
		sh->batch_max_id, sh->backlog > (uint64_t)(sh->batch_max_id - sh->wm)
					? sh->backlog - (uint64_t)(sh->batch_max_id - sh->wm)
					: 0,
		sh->node);
	rc |= buf_append(q, "", 1); /* NUL: PQsendQuery takes a C string */
	return rc ? -ENOMEM : (int)nc;
}

static int cmp_sess(const void *a, const void *b)
{
	const struct sess_state *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* The batch is in PostgreSQL: move the watermark, remember the open sessions. */
static void batch_done(struct ship *sh)
{
	for (size_t i = 0; i < sh->n_pend; i++) {
		struct sess_state *p = &sh->pend[i];
		struct sess_state *o = find_open(sh, p->id);
		if (o) {
			*o = *p;
		} else if (p->ended_at < 0 &&
			   push_sess(&sh->open, &sh->n_open, &sh->cap_open, p) < 0) {
			log_err("postgresql: out of memory");
		}
	}
	/* Drop the ended ones, keep the rest sorted. */
	size_t k = 0;
	for (size_t i = 0; i < sh->n_open; i++)
		if (sh->open[i].ended_at < 0)
			sh->open[k++] = sh->open[i];
	sh->n_open = k;
	if (sh->n_open > 1)
		qsort(sh->open, sh->n_open, sizeof(*sh->open), cmp_sess);
	sh->shipped += sh->batch_rows;
	sh->wm = sh->batch_max_id;
	if (sh->batch_sess_max > sh->sess_max)
		sh->sess_max = sh->batch_sess_max;
	sh->rehydrate = false;
	if (sh->batch_read_open) {
		sh->edges_seen = sh->batch_edges;
		sh->open_read_at = sh->batch_read_at;
	}
	int64_t floor = sh->n_open ? sh->open[0].id : sh->sess_max + 1;
	int rc = store_shipped(sh->store, sh->store_id, sh->wm, floor, (int64_t)wall_ms());
	if (rc < 0)
		log_warn("postgresql: cannot record the shipped position locally: %s "
			 "(rows will be sent again after a restart; PostgreSQL ignores them)",
			 strerror(-rc));
}

static bool data_error(const char *sqlstate)
{
	return sqlstate && (strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0);
}

static void on_batch_done(struct pg *c, const char *error, const char *sqlstate, void *ud)
{
	struct ship *sh = ud;
	if (!error) {
		bool full = sh->batch_rows >= sh->limit;
		batch_done(sh);
		sh->last_error[0] = '\0';
		/* Row by row until past the batch that was refused, then whole batches again. */
		if (sh->safe && (sh->limit == SHIP_BATCH_ROWS || sh->wm >= sh->slow_until)) {
			sh->safe = false;
			sh->limit = SHIP_BATCH_ROWS;
		}
		if (sh->catching_up && !full) {
			log_notice("postgresql: caught up (%" PRIu64 " rows shipped since start)",
				   sh->shipped);
			sh->catching_up = false;
		}
		cycle(sh);
		return;
	}
	snprintf(sh->last_error, sizeof(sh->last_error), "%s", error);
	if (!pg_is_up(sh->pg))
		return; /* on_down follows */
	if (data_error(sqlstate)) {
		if (!sh->safe) {
			log_warn("postgresql: a batch was refused (%s: %s); sending it again with "
				 "every JSON value checked",
				 sqlstate, error);
			sh->safe = true;
		} else if (sh->limit > 1) {
			log_warn("postgresql: refused again (%s: %s); sending row by row", sqlstate,
				 error);
			sh->limit = 1;
			sh->slow_until = sh->batch_max_id;
		} else {
			log_err("postgresql: local message %" PRId64 " refused (%s: %s); skipped, "
				"it stays in the local database",
				sh->batch_max_id, sqlstate, error);
			sh->skipped++;
			sh->batch_rows = 0;
			if (sh->batch_max_id > sh->wm) { /* past the message, sessions again */
				sh->wm = sh->batch_max_id;
				store_shipped(sh->store, sh->store_id, sh->wm,
					      sh->n_open ? sh->open[0].id : sh->sess_max + 1,
					      (int64_t)wall_ms());
			} else {
				batch_done(sh); /* a sessions-only batch: drop it */
			}
			if (sh->wm >= sh->slow_until) {
				sh->safe = false;
				sh->limit = SHIP_BATCH_ROWS;
			}
		}
		cycle(sh);
		return;
	}
	log_warn("postgresql: a batch failed (%s: %s); retrying in %d s", sqlstate ? sqlstate : "?",
		 error, SHIP_RETRY_MS / 1000);
	arm(sh, SHIP_RETRY_MS);
}

static void on_seen_done(struct pg *c, const char *error, const char *sqlstate, void *ud)
{
	struct ship *sh = ud;
	if (error && pg_is_up(sh->pg))
		log_warn("postgresql: updating this node's row: %s", error);
	cycle(sh);
}

static void cycle(struct ship *sh)
{
	if (sh->phase != SH_READY || !pg_is_idle(sh->pg))
		return;
	if (uv_is_active((uv_handle_t *)&sh->timer))
		return; /* a retry or the next turn is due */
	size_t nm, ns, nr;
	int64_t lo, hi;
	int rc = read_batch(sh, &nm, &ns, &nr, &lo, &hi);
	if (rc < 0) {
		snprintf(sh->last_error, sizeof(sh->last_error), "reading the local database: %s",
			 sqlite3_errmsg(sh->rd));
		log_warn("postgresql: %s", sh->last_error);
		arm(sh, SHIP_RETRY_MS);
		return;
	}
	if (!nm && !ns && !nr) {
		if (sh->stop_done) {
			void (*done)(void *) = sh->stop_done;
			sh->stop_done = NULL;
			uv_timer_stop(&sh->stop_timer);
			done(sh->stop_ctx);
		}
		return;
	}
	sh->batch_rows = nm;
	sh->seen_sent_at = uv_now(sh->loop);
	if (nr)
		sh->rooms_dirty = false;
	int nc = build_sql(sh, nm, ns, nr, lo, hi);
	if (nc < 0) {
		log_err("postgresql: out of memory building a batch");
		arm(sh, SHIP_RETRY_MS);
		return;
	}
	rc = pg_exec(sh->pg, (const char *)buf_head(&sh->sql), sh->copies, (size_t)nc, NULL,
		     on_batch_done, sh);
	if (rc < 0) {
		if (nr)
			sh->rooms_dirty = true;
		return;
	}
}

static void on_timer(uv_timer_t *t)
{
	struct ship *sh = t->data;
	if (sh->phase == SH_BROKEN) {
		if (!pg_is_idle(sh->pg))
			return; /* down: on_up starts the setup again */
		sh->phase = SH_SETUP;
		if (sh->setup_step != 3)
			sh->setup_step = 0;
		setup(sh);
		return;
	}
	cycle(sh);
}

/* ---- setup: the schema, staging tables, this node ---- */

static void setup_failed(struct ship *sh, const char *what, const char *error)
{
	snprintf(sh->last_error, sizeof(sh->last_error), "%s: %s", what, error);
	log_err("postgresql: %s; retrying in 60 s (rows wait in the local database)",
		sh->last_error);
	sh->phase = SH_BROKEN;
	sh->setup_step = 0;
	arm(sh, 60000);
}

static void on_setup_result(struct pg *c, const PGresult *res, void *ud)
{
	struct ship *sh = ud;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1)
		return;
	int f;
	if ((f = PQfnumber(res, "schema_present")) >= 0)
		sh->schema_present = strcmp(PQgetvalue(res, 0, f), "t") == 0;
	if ((f = PQfnumber(res, "schema_version")) >= 0)
		sh->schema_version = atoi(PQgetvalue(res, 0, f));
	if ((f = PQfnumber(res, "store_id")) >= 0)
		snprintf(sh->store_id, sizeof(sh->store_id), "%s", PQgetvalue(res, 0, f));
}

static void on_setup_done(struct pg *c, const char *error, const char *sqlstate, void *ud)
{
	struct ship *sh = ud;
	if (error) {
		if (pg_is_up(sh->pg))
			setup_failed(sh, sh->setup_step == 1 ? "creating the schema" : "setup", error);
		return;
	}
	sh->setup_step++;
	setup(sh);
}

/* Used only for a batch PostgreSQL refused: a value that is not valid JSON for jsonb (a
 * lone surrogate, \u0000) is kept as a JSON string holding the text. */
static const char jsonb_fn_sql[] =
	"CREATE FUNCTION danmakud_jsonb(t text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$\n"
	"BEGIN\n"
	"  RETURN t::jsonb;\n"
	"EXCEPTION WHEN others THEN\n"
	"  RETURN to_jsonb(t);\n"
	"END $$;\n";

static const char setup_check_sql[] =
	"SELECT pg_advisory_lock(" "1684106605" ");\n"
	"SELECT to_regclass('danmakud_schema') IS NOT NULL AS schema_present;\n";

/*
 * Steps, each one request: 0 take the schema lock (session level: a second recorder starting
 * at the same moment waits) and look for danmakud_schema; 1 create schema version 1 when
 * missing (one implicit transaction: all of it or nothing); 2 read the version and the store
 * id, unlock, create the staging tables and this node's row; then read the local watermark
 * for this store and start shipping.
 */
static void setup(struct ship *sh)
{
	struct buf *q = &sh->sql;
	buf_clear(q);
	int rc = 0;
	switch (sh->setup_step) {
	case 0:
		sh->schema_present = false;
		sh->schema_version = 0;
		sh->store_id[0] = '\0';
		rc = buf_append(q, setup_check_sql, sizeof(setup_check_sql));
		break;
	case 1:
		if (sh->schema_present) {
			sh->setup_step++;
			setup(sh);
			return;
		}
		log_notice("postgresql: creating the danmakud schema (version %d) in %s",
			   PG_SCHEMA_VERSION, pg_target(sh->pg));
		for (size_t i = 0; i < pg_schema_v1_count && rc == 0; i++) {
			rc |= buf_append_str(q, pg_schema_v1[i]);
			rc |= buf_append_str(q, ";\n");
		}
		rc |= buf_append_str(q, jsonb_fn_sql);
		rc |= buf_append_str(q, cluster_lease_fn_sql);
		rc |= buf_printf(q, "INSERT INTO danmakud_schema (version) VALUES (%d);\n",
				 PG_SCHEMA_VERSION);
		rc |= buf_append(q, "", 1);
		break;
	case 2:
		rc = buf_printf(
			q,
			"SELECT max(version) AS schema_version,\n"
			"  (array_agg(store_id ORDER BY version))[1] AS store_id FROM danmakud_schema;\n"
			"SELECT pg_advisory_unlock(1684106605);\n"
			"CREATE TEMP TABLE IF NOT EXISTS danmakud_stage_messages (local_id bigint,\n"
			"  room_id bigint, ts bigint, type text, uid bigint, nick text, level integer,\n"
			"  text text, cid text, session_id bigint, data text, platform text,\n"
			"  decoded text) ON COMMIT DELETE ROWS;\n"
			"CREATE TEMP TABLE IF NOT EXISTS danmakud_stage_sessions (local_id bigint,\n"
			"  room_id bigint, server text, started_at bigint, joined_at bigint,\n"
			"  ended_at bigint, end_reason text, messages bigint, platform text)\n"
			"  ON COMMIT DELETE ROWS;\n"
			"CREATE TEMP TABLE IF NOT EXISTS danmakud_stage_rooms (platform text,\n"
			"  room_id bigint, label text, added_at bigint, short_id bigint)\n"
			"  ON COMMIT DELETE ROWS;\n"
			"INSERT INTO nodes (node, mode, started_at, seen_at, version)\n"
			"  VALUES ('%s', '%s', to_timestamp(%" PRIu64 " / 1000.0), now(), '%s')\n"
			"  ON CONFLICT (node) DO UPDATE SET mode = excluded.mode,\n"
			"    started_at = excluded.started_at, seen_at = now(),\n"
			"    version = excluded.version;\n",
			sh->node, sh->mode, sh->started_ms, DANMAKUD_VERSION);
		rc |= buf_append(q, "", 1);
		break;
	default: {
		if (sh->schema_version > PG_SCHEMA_VERSION) {
			char e[128];
			snprintf(e, sizeof(e),
				 "schema version %d is newer than this danmakud supports (%d)",
				 sh->schema_version, PG_SCHEMA_VERSION);
			setup_failed(sh, "schema", e);
			return;
		}
		int64_t floor;
		rc = store_shipping_get(sh->store, sh->store_id, &sh->wm, &floor);
		if (rc == -EAGAIN) { /* a flush transaction is open: in a moment */
			sh->phase = SH_BROKEN;
			sh->setup_step = 3;
			arm(sh, 20);
			return;
		}
		if (rc < 0) {
			setup_failed(sh, "reading the local shipping position",
				     store_last_error(sh->store));
			return;
		}
		sh->sess_max = floor > 0 ? floor - 1 : 0;
		sh->rehydrate = true;
		sh->n_open = 0;
		sh->rooms_dirty = true;
		sh->phase = SH_READY;
		sh->safe = false;
		sh->limit = SHIP_BATCH_ROWS;
		ship_tick(sh); /* the backlog, for the log line */
		log_notice("postgresql: connected to %s as node %s; %" PRIu64
			   " rows to ship from local id %" PRId64,
			   pg_target(sh->pg), sh->node, sh->backlog, sh->wm + 1);
		sh->catching_up = sh->backlog > 0;
		sh->down_logged_at = 0;
		cycle(sh);
		return;
	}
	}
	if (rc < 0) {
		setup_failed(sh, "setup", "out of memory");
		return;
	}
	rc = pg_exec(sh->pg, (const char *)buf_head(q), NULL, 0, on_setup_result, on_setup_done,
		     sh);
	(void)rc; /* failures take the connection down: on_down, then setup again */
}

static void on_up(struct pg *c, void *ud)
{
	struct ship *sh = ud;
	sh->phase = SH_SETUP;
	sh->setup_step = 0;
	uv_timer_stop(&sh->timer);
	setup(sh);
}

static void on_down(struct pg *c, const char *why, void *ud)
{
	struct ship *sh = ud;
	bool was = sh->phase == SH_READY || sh->phase == SH_SETUP;
	sh->phase = SH_DOWN;
	uv_timer_stop(&sh->timer);
	snprintf(sh->last_error, sizeof(sh->last_error), "%s", why);
	uint64_t now = uv_now(sh->loop);
	if (was || !sh->down_logged_at) {
		log_warn("postgresql: %s %s: %s; rows wait in the local database",
			 was ? "lost" : "cannot reach", pg_target(sh->pg), why);
		sh->down_logged_at = now;
	}
	if (sh->stop_done) { /* stopping: nothing more will get there now */
		void (*done)(void *) = sh->stop_done;
		sh->stop_done = NULL;
		uv_timer_stop(&sh->stop_timer);
		done(sh->stop_ctx);
	}
}

static const struct pg_callbacks ship_pg_cb = {.on_up = on_up, .on_down = on_down};

/* ---- life ---- */

static int prepare(struct ship *sh, const char *sql, sqlite3_stmt **st)
{
	return sqlite3_prepare_v3(sh->rd, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) ==
			       SQLITE_OK
		       ? 0
		       : -EIO;
}

int ship_create(uv_loop_t *loop, struct net_ctx *net, struct store *store,
		const struct ship_options *opt, struct ship **out, char *err, size_t errlen)
{
	struct ship *sh = calloc(1, sizeof(*sh));
	if (!sh) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	sh->loop = loop;
	sh->store = store;
	sh->keep_local_days = opt->keep_local_days;
	sh->limit = SHIP_BATCH_ROWS;
	sh->started_ms = wall_ms();
	sh->node = strdup(opt->node);
	sh->mode = strdup(opt->mode ? opt->mode : "mirror");
	buf_init(&sh->bm);
	buf_init(&sh->bs);
	buf_init(&sh->br);
	buf_init(&sh->sql);
	uv_timer_init(loop, &sh->timer);
	uv_timer_init(loop, &sh->stop_timer);
	sh->timer.data = sh->stop_timer.data = sh;
	int rc = 0;
	if (!sh->node || !sh->mode) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	/* The node name goes into SQL text: conf.c allows [A-Za-z0-9._-] only; check again. */
	for (const char *p = sh->node; *p; p++)
		if (!(*p == '.' || *p == '_' || *p == '-' || (*p >= '0' && *p <= '9') ||
		      ((*p | 32) >= 'a' && (*p | 32) <= 'z'))) {
			snprintf(err, errlen, "node name: only letters, digits, '.', '_', '-'");
			rc = -EINVAL;
			goto fail;
		}
	if (sqlite3_open_v2(opt->db_path, &sh->rd, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK ||
	    prepare(sh,
		    "SELECT id, room_id, ts, type, uid, nick, level, text, cid, session_id, data, "
		    "platform, decoded FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2",
		    &sh->q_msgs) < 0 ||
	    prepare(sh,
		    "SELECT id, room_id, server, started_at, joined_at, ended_at, end_reason, "
		    "messages, platform FROM sessions WHERE id >= ?1 ORDER BY id",
		    &sh->q_sess_from) < 0 ||
	    prepare(sh,
		    "SELECT id, room_id, server, started_at, joined_at, ended_at, end_reason, "
		    "messages, platform FROM sessions WHERE id = ?1",
		    &sh->q_sess_one) < 0 ||
	    prepare(sh, "SELECT platform, room_id, label, added_at, short_id FROM rooms",
		    &sh->q_rooms) < 0 ||
	    prepare(sh, "SELECT coalesce(max(id), 0) FROM messages", &sh->q_max) < 0) {
		snprintf(err, errlen, "local database %s: %s", opt->db_path,
			 sh->rd ? sqlite3_errmsg(sh->rd) : "out of memory");
		rc = -EIO;
		goto fail;
	}
	char app[96];
	snprintf(app, sizeof(app), "danmakud %s", sh->node);
	struct pg_options po = {.conninfo = opt->conninfo,
				.password = opt->password,
				.application_name = app};
	rc = pg_create(loop, net, &po, &ship_pg_cb, sh, &sh->pg, err, errlen);
	if (rc < 0)
		goto fail;
	*out = sh;
	return 0;
fail:
	ship_close(sh);
	return rc;
}

void ship_start(struct ship *sh)
{
	pg_start(sh->pg);
}

void ship_kick(struct ship *sh)
{
	cycle(sh);
}

void ship_rooms_changed(struct ship *sh)
{
	sh->rooms_dirty = true;
}

/* keep_local_days: delete shipped rows in chunks for at most 5 ms a tick, then give the
 * pages back (incremental vacuum) and truncate the WAL. */
static void retain(struct ship *sh)
{
	if (sh->keep_local_days < 0 || sh->wm <= 0)
		return;
	int64_t before = (int64_t)wall_ms() - (int64_t)sh->keep_local_days * 86400000;
	uint64_t t0 = uv_hrtime();
	int n;
	do {
		n = store_retain(sh->store, sh->wm, before, SHIP_RETAIN_CHUNK);
		if (n > 0) {
			sh->retained += (uint64_t)n;
			sh->retain_dirty = true;
		}
	} while (n == SHIP_RETAIN_CHUNK && uv_hrtime() - t0 < SHIP_RETAIN_BUDGET_NS);
	if (n < 0 && n != -EAGAIN)
		log_warn("postgresql: local retention: %s", store_last_error(sh->store));
	/* Deleting has caught up (a steady flood always leaves a few rows): give the pages back,
	 * 1024 a tick, every SHIP_RECLAIM_EVERY_MS, then checkpoint and truncate the WAL. */
	uint64_t now = uv_now(sh->loop);
	if (n >= 0 && n < SHIP_RETAIN_CHUNK && sh->retain_dirty && now >= sh->next_reclaim) {
		int left = store_reclaim(sh->store, 1024);
		if (left == 0) {
			sh->retain_dirty = false;
			sh->next_reclaim = now + SHIP_RECLAIM_EVERY_MS;
		}
	}
}

void ship_tick(struct ship *sh)
{
	int64_t max = 0;
	if (sqlite3_step(sh->q_max) == SQLITE_ROW)
		max = sqlite3_column_int64(sh->q_max, 0);
	sqlite3_reset(sh->q_max);
	sh->backlog = max > sh->wm ? (uint64_t)(max - sh->wm) : 0;
	uint64_t now = uv_now(sh->loop);
	if (sh->phase != SH_READY && sh->down_logged_at &&
	    now - sh->down_logged_at >= SHIP_DOWN_LOG_EVERY_MS) {
		log_warn("postgresql: still unreachable (%s); %" PRIu64
			 " rows wait in the local database",
			 sh->last_error, sh->backlog);
		sh->down_logged_at = now;
	}
	if (sh->phase == SH_READY)
		cycle(sh);
	/* Alive, even with nothing to ship: gaps counts an open session of a node as covered
	 * up to nodes.seen_at. Every batch updates it too. */
	if (sh->phase == SH_READY && pg_is_idle(sh->pg) &&
	    now - sh->seen_sent_at >= SHIP_SEEN_EVERY_MS) {
		char q[256];
		snprintf(q, sizeof(q),
			 "UPDATE nodes SET seen_at = now(), backlog = %" PRIu64 " WHERE node = '%s'",
			 sh->backlog, sh->node);
		if (pg_exec(sh->pg, q, NULL, 0, NULL, on_seen_done, sh) == 0)
			sh->seen_sent_at = now;
	}
	if (!sh->stopping)
		retain(sh);
}

void ship_get_stats(struct ship *sh, struct ship_stats *out)
{
	*out = (struct ship_stats){.up = sh->phase == SH_READY,
				   .backlog = sh->backlog,
				   .shipped = sh->shipped,
				   .skipped = sh->skipped,
				   .retained = sh->retained,
				   .down_ms = sh->phase == SH_READY ? 0 : pg_down_for_ms(sh->pg),
				   .shipped_id = sh->wm,
				   .last_error = sh->last_error};
}

void ship_status(struct ship *sh, char *out, size_t len)
{
	if (sh->phase == SH_READY)
		snprintf(out, len, "postgresql up, backlog %" PRIu64, sh->backlog);
	else
		snprintf(out, len, "postgresql down %" PRIu64 " s, backlog %" PRIu64,
			 pg_down_for_ms(sh->pg) / 1000, sh->backlog);
}

static void on_stop_deadline(uv_timer_t *t)
{
	struct ship *sh = t->data;
	if (!sh->stop_done)
		return;
	log_warn("postgresql: stopping with %" PRIu64 " rows not shipped (they ship at the "
		 "next start)",
		 sh->backlog);
	void (*done)(void *) = sh->stop_done;
	sh->stop_done = NULL;
	done(sh->stop_ctx);
}

void ship_stop(struct ship *sh, uint64_t deadline_ms, void (*done)(void *ctx), void *ctx)
{
	sh->stopping = true;
	if (sh->phase != SH_READY) {
		done(ctx);
		return;
	}
	sh->stop_done = done;
	sh->stop_ctx = ctx;
	uv_timer_start(&sh->stop_timer, on_stop_deadline, deadline_ms, 0);
	uv_timer_stop(&sh->timer);
	cycle(sh); /* calls done when nothing is left */
}

static void on_closed(uv_handle_t *h)
{
	struct ship *sh = h->data;
	if (--sh->closes == 0)
		free(sh);
}

void ship_close(struct ship *sh)
{
	if (!sh)
		return;
	pg_close(sh->pg);
	sqlite3_stmt *sts[] = {sh->q_msgs, sh->q_sess_from, sh->q_sess_one, sh->q_rooms,
			       sh->q_max};
	for (size_t i = 0; i < sizeof(sts) / sizeof(sts[0]); i++)
		sqlite3_finalize(sts[i]);
	sqlite3_close(sh->rd);
	buf_finish(&sh->bm);
	buf_finish(&sh->bs);
	buf_finish(&sh->br);
	buf_finish(&sh->sql);
	free(sh->open);
	free(sh->pend);
	free(sh->node);
	free(sh->mode);
	sh->closes = 2;
	uv_close((uv_handle_t *)&sh->timer, on_closed);
	uv_close((uv_handle_t *)&sh->stop_timer, on_closed);
}
