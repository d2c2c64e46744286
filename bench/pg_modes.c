/*
 * pg_modes: how should danmakud's shipper send a batch of committed rows to PostgreSQL
 * (issue 13: "batches sent with pipeline mode or COPY ... FROM STDIN (measure both;
 * choose)")? It reads the messages rows of a danmakud database (SRC_DB; bench/pg_ship.py
 * fills one with bench/gen_db.c, whose rows are bench/synth.h's synthetic Douyu stream, with
 * data as JSON text of about 350 bytes), then loads them into a PostgreSQL table shaped like
 * PG-SPEC.md's messages (partitioned by UTC month, UNIQUE (node, local_id, ts), data jsonb)
 * in batches of B rows, one transaction per batch, every row idempotent (ON CONFLICT DO
 * NOTHING), four ways:
 *
 *   copy      COPY FROM STDIN into a temporary staging table (ON COMMIT DELETE ROWS), then
 *             INSERT INTO messages SELECT ... FROM staging ON CONFLICT DO NOTHING
 *   pipeline  libpq pipeline mode (nonblocking socket, as on the loop): BEGIN, B executions
 *             of one prepared INSERT ... VALUES ($1..$14) ON CONFLICT DO NOTHING, COMMIT, sync
 *   values    multi-row INSERT ... VALUES (...), (...) ... ON CONFLICT DO NOTHING with
 *             parameters; a statement holds at most 65535 parameters (4681 rows of 14), so a
 *             batch above that is split into equal statements in the same transaction
 *   unnest    one prepared INSERT ... SELECT * FROM unnest($1::bigint[], ..., $14::bigint[])
 *             ON CONFLICT DO NOTHING: 14 array parameters whatever B is
 *
 * Each load starts from an empty table (TRUNCATE) and is timed from the first batch to the
 * last COMMIT's answer: rows/s (wall), the client's CPU (getrusage) and the PostgreSQL
 * backend's CPU (utime+stime of pg_backend_pid() in /proc, when the server is on this machine
 * and readable; else NaN), both in ms per 1000 rows. Then the same rows are loaded again
 * into the full table ("again": every row a conflict, what catching up after a kill -9
 * costs). One load before all of them is not measured (warm-up). Modes alternate within each
 * repetition, each repetition starting with another one; the median of the repetitions is
 * printed.
 *
 *   cc -O2 -std=c11 -I/usr/include/postgresql -o /tmp/pg_modes bench/pg_modes.c \
 *      -lpq -lsqlite3
 *   /tmp/pg_modes SRC_DB CONNINFO [-n ROWS] [-b 500,5000] [-m copy,pipeline,values,unnest]
 *                 [-r REPEAT] [-c on|off]
 *
 * -c on: chat ids are deduplicated across recorders as PG-SPEC.md's message_cids says: each
 * batch (copy: one statement; pipeline: each row's statement) first inserts the rows' (platform,
 * room_id, cid) into message_cids ON CONFLICT DO NOTHING, and only rows without a cid or whose
 * cid went in are inserted into messages (copy and pipeline only). In the copy statement the
 * test is `(platform, room_id, cid) IN (SELECT ... FROM c)`: written as `EXISTS (SELECT 1 FROM c
 * WHERE ...)` under the same OR, PostgreSQL 15 spends about 300 ms more per statement (5,000
 * rows per batch ran at a fifth of the rate), though EXPLAIN shows a hashed subplan both ways.
 *
 * Tables go into the schema bench_pg_modes of CONNINFO's database (dropped and made again). One
 * line per (mode, B): "mode=copy batch=500 rows=N rows_per_s=R again_rows_per_s=A
 * client_ms_per_1k=C server_ms_per_1k=S".
 */
#define _POSIX_C_SOURCE 200809L
#include <libpq-fe.h>
#include <math.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define NCOLS 14
#define MAX_PARAMS 65535
#define MAX_REPEAT 15

/* The columns shipped, in this order everywhere; node and local_id are added here. */
static const char cols[] =
    "room_id, ts, type, uid, nick, level, text, cid, session_id, data, platform, decoded, "
    "node, local_id";
static const char *const col_types[NCOLS] = {"bigint",  "bigint", "text", "bigint", "text",
                                             "integer", "text",   "text", "bigint", "jsonb",
                                             "text",    "jsonb",  "text", "bigint"};

struct row {
	char *v[NCOLS]; /* text form of each column; NULL for SQL NULL */
};

static struct row *rows;
static long nrows;
static PGconn *pg;
static int with_cids; /* -c: chat ids through message_cids first (copy and pipeline) */

static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("pg_modes: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double self_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* utime + stime of a process in seconds, or NaN when /proc does not show it. */
static double proc_cpu(long pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return NAN;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	unsigned long ut, st;
	/* After ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
	 * utime stime. */
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return NAN;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void load_rows(const char *path, long limit)
{
	sqlite3 *db;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		fail("%s: %s", path, sqlite3_errmsg(db));
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
	                       "SELECT room_id, ts, type, uid, nick, level, text, cid, session_id, "
	                       "data, platform, decoded, 'bench', id FROM messages ORDER BY id "
	                       "LIMIT ?1",
	                       -1, &st, NULL) != SQLITE_OK)
		fail("%s: %s", path, sqlite3_errmsg(db));
	sqlite3_bind_int64(st, 1, limit > 0 ? limit : INT64_MAX);
	long cap = 1024;
	rows = malloc((size_t)cap * sizeof(*rows));
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (nrows == cap) {
			cap *= 2;
			rows = realloc(rows, (size_t)cap * sizeof(*rows));
		}
		if (!rows)
			fail("out of memory");
		for (int i = 0; i < NCOLS; i++) {
			const unsigned char *t = sqlite3_column_text(st, i);
			rows[nrows].v[i] = t ? strdup((const char *)t) : NULL;
		}
		nrows++;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (nrows == 0)
		fail("%s holds no messages", path);
}

/* ------------------------------------------------------------------ libpq helpers */

static void check(PGresult *r, ExecStatusType want, const char *what)
{
	if (!r || PQresultStatus(r) != want)
		fail("%s: %s", what, r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
	PQclear(r);
}

static void exec(const char *sql)
{
	check(PQexec(pg, sql), PGRES_COMMAND_OK, sql);
}

/* Growable text buffer for COPY data, VALUES statements and array literals. */
struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_need(struct sbuf *b, size_t n)
{
	if (b->len + n + 1 <= b->cap)
		return;
	while (b->len + n + 1 > b->cap)
		b->cap = b->cap ? b->cap * 2 : 65536;
	b->p = realloc(b->p, b->cap);
	if (!b->p)
		fail("out of memory");
}

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	sb_need(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	sb_need(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* ------------------------------------------------------------------ schema */

static void make_schema(long first, long last)
{
	PQclear(PQexec(pg, "SET client_min_messages = warning"));
	exec("DROP SCHEMA IF EXISTS bench_pg_modes CASCADE");
	exec("CREATE SCHEMA bench_pg_modes");
	exec("SET search_path = bench_pg_modes, public");
	/* PG-SPEC.md's messages, as danmakud creates it (schema version 1). */
	exec("CREATE TABLE messages (id bigserial NOT NULL, room_id bigint NOT NULL, ts bigint NOT "
	     "NULL, type text NOT NULL, uid bigint, nick text, level integer, text text, cid text, "
	     "session_id bigint, data jsonb NOT NULL, platform text NOT NULL, decoded jsonb, node "
	     "text NOT NULL, local_id bigint NOT NULL, UNIQUE (node, local_id, ts)) PARTITION BY "
	     "RANGE (ts)");
	exec("CREATE TABLE message_cids (platform text NOT NULL, room_id bigint NOT NULL, cid text "
	     "NOT NULL, ts bigint NOT NULL, PRIMARY KEY (platform, room_id, cid))");
	/* One partition per UTC month that the rows touch. */
	time_t t = (time_t)(atoll(rows[first].v[1]) / 1000);
	time_t end = (time_t)(atoll(rows[last].v[1]) / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	int y = tm.tm_year + 1900, m = tm.tm_mon + 1;
	gmtime_r(&end, &tm);
	int last_month = (tm.tm_year + 1900) * 12 + tm.tm_mon;
	for (; y * 12 + m - 1 <= last_month; y += m == 12, m = m % 12 + 1) {
		int ny = m == 12 ? y + 1 : y, nm = m % 12 + 1;
		char sql[512];
		snprintf(
		    sql, sizeof(sql),
		    "CREATE TABLE messages_y%04dm%02d PARTITION OF messages FOR VALUES FROM "
		    "((extract(epoch FROM timestamptz '%04d-%02d-01 00:00+00') * 1000)::bigint) "
		    "TO ((extract(epoch FROM timestamptz '%04d-%02d-01 00:00+00') * 1000)::bigint)",
		    y, m, y, m, ny, nm);
		exec(sql);
	}
}

/* ------------------------------------------------------------------ copy */

static void copy_field(struct sbuf *b, const char *s)
{
	if (!s) {
		sb_add(b, "\\N", 2);
		return;
	}
	/* COPY text format: backslash, tab, newline and CR are escaped. */
	const char *run = s;
	for (const char *p = s; *p; p++) {
		const char *esc = NULL;
		switch (*p) {
		case '\\':
			esc = "\\\\";
			break;
		case '\t':
			esc = "\\t";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		default:
			continue;
		}
		sb_add(b, run, (size_t)(p - run));
		sb_add(b, esc, 2);
		run = p + 1;
	}
	sb_str(b, run);
}

static void setup_copy(void)
{
	exec("CREATE TEMP TABLE staging (room_id bigint, ts bigint, type text, uid bigint, nick "
	     "text, level integer, text text, cid text, session_id bigint, data text, platform "
	     "text, decoded text, node text, local_id bigint) ON COMMIT DELETE ROWS");
	/* With -c, a row with a cid goes in only when its (platform, room_id, cid) is new to
	 * message_cids: another recorder (mirror) may have shipped the same message. */
	const char *move =
	    with_cids
	        ? "WITH c AS (INSERT INTO message_cids (platform, room_id, cid, ts) SELECT "
	          "platform, room_id, cid, ts FROM staging WHERE cid IS NOT NULL ON CONFLICT DO "
	          "NOTHING RETURNING platform, room_id, cid) INSERT INTO messages (room_id, ts, "
	          "type, uid, nick, level, text, cid, session_id, data, platform, decoded, node, "
	          "local_id) SELECT s.room_id, s.ts, s.type, s.uid, s.nick, s.level, s.text, "
	          "s.cid, "
	          "s.session_id, s.data::jsonb, s.platform, s.decoded::jsonb, s.node, s.local_id "
	          "FROM staging s WHERE s.cid IS NULL OR (s.platform, s.room_id, s.cid) IN (SELECT "
	          "platform, room_id, cid FROM c) ON CONFLICT DO NOTHING"
	        : "INSERT INTO messages (room_id, ts, type, uid, nick, level, text, cid, "
	          "session_id, data, platform, decoded, node, local_id) SELECT room_id, ts, "
	          "type, uid, nick, level, text, cid, session_id, data::jsonb, platform, "
	          "decoded::jsonb, node, local_id FROM staging ON CONFLICT DO NOTHING";
	check(PQprepare(pg, "move", move, 0, NULL), PGRES_COMMAND_OK, "prepare move");
}

static void batch_copy(long from, long n)
{
	static struct sbuf b;
	exec("BEGIN");
	check(PQexec(pg, "COPY staging FROM STDIN"), PGRES_COPY_IN, "COPY");
	b.len = 0;
	for (long i = from; i < from + n; i++) {
		for (int c = 0; c < NCOLS; c++) {
			if (c)
				sb_add(&b, "\t", 1);
			copy_field(&b, rows[i].v[c]);
		}
		sb_add(&b, "\n", 1);
		if (b.len >= 256 * 1024 || i + 1 == from + n) {
			if (PQputCopyData(pg, b.p, (int)b.len) != 1)
				fail("PQputCopyData: %s", PQerrorMessage(pg));
			b.len = 0;
		}
	}
	if (PQputCopyEnd(pg, NULL) != 1)
		fail("PQputCopyEnd: %s", PQerrorMessage(pg));
	check(PQgetResult(pg), PGRES_COMMAND_OK, "COPY end");
	PGresult *r;
	while ((r = PQgetResult(pg)))
		PQclear(r);
	check(PQexecPrepared(pg, "move", 0, NULL, NULL, NULL, 0), PGRES_COMMAND_OK, "move");
	exec("COMMIT");
}

/* ------------------------------------------------------------------ pipeline */

static void setup_pipeline(void)
{
	const char *ins =
	    with_cids
	        ? "WITH c AS (INSERT INTO message_cids (platform, room_id, cid, ts) SELECT $11, "
	          "$1, "
	          "$8, $2 WHERE $8::text IS NOT NULL ON CONFLICT DO NOTHING RETURNING 1) INSERT "
	          "INTO "
	          "messages (room_id, ts, type, uid, nick, level, text, cid, session_id, data, "
	          "platform, decoded, node, local_id) SELECT $1::bigint, $2::bigint, $3::text, "
	          "$4::bigint, $5::text, $6::integer, $7::text, $8::text, $9::bigint, $10::jsonb, "
	          "$11::text, $12::jsonb, $13::text, $14::bigint WHERE $8::text IS NULL OR EXISTS "
	          "(SELECT 1 FROM c) ON CONFLICT DO NOTHING"
	        : "INSERT INTO messages (room_id, ts, type, uid, nick, level, text, cid, "
	          "session_id, data, platform, decoded, node, local_id) VALUES ($1, $2, $3, "
	          "$4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING";
	check(PQprepare(pg, "ins", ins, 0, NULL), PGRES_COMMAND_OK, "prepare ins");
}

/* Reads what has arrived; returns 1 once the batch's PGRES_PIPELINE_SYNC was seen. */
static int take_results(void)
{
	if (!PQconsumeInput(pg))
		fail("PQconsumeInput: %s", PQerrorMessage(pg));
	int nulls = 0;
	while (!PQisBusy(pg)) {
		PGresult *r = PQgetResult(pg);
		if (!r) {
			/* One NULL ends each query's results; two in a row: nothing more yet. */
			if (++nulls > 1)
				return 0;
			continue;
		}
		nulls = 0;
		ExecStatusType s = PQresultStatus(r);
		if (s == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			return 1;
		}
		if (s != PGRES_COMMAND_OK)
			fail("pipeline: %s %s", PQresStatus(s), PQresultErrorMessage(r));
		PQclear(r);
	}
	return 0;
}

/* Flushes what libpq holds, reading answers meanwhile so that neither side's socket buffer
 * fills up (the server stops reading when it cannot write). Returns 1 once synced. */
static int pump(int until_sync)
{
	int synced = 0;
	for (;;) {
		int f = PQflush(pg);
		if (f < 0)
			fail("PQflush: %s", PQerrorMessage(pg));
		if (f == 0 && !until_sync)
			return synced;
		if (f == 0 && synced)
			return 1;
		struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN | (f ? POLLOUT : 0)};
		if (poll(&p, 1, -1) < 0)
			fail("poll");
		if (p.revents & (POLLIN | POLLERR | POLLHUP))
			synced |= take_results();
		if (synced && !until_sync)
			return synced;
	}
}

static void batch_pipeline(long from, long n)
{
	int synced = 0;
	if (!PQsendQueryParams(pg, "BEGIN", 0, NULL, NULL, NULL, NULL, 0))
		fail("BEGIN: %s", PQerrorMessage(pg));
	for (long i = from; i < from + n; i++) {
		if (!PQsendQueryPrepared(pg, "ins", NCOLS, (const char *const *)rows[i].v, NULL,
		                         NULL, 0))
			fail("send: %s", PQerrorMessage(pg));
		/* Every 64 rows: push to the socket and read what came back. */
		if ((i - from) % 64 == 63)
			synced |= pump(0);
	}
	if (!PQsendQueryParams(pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0))
		fail("COMMIT: %s", PQerrorMessage(pg));
	if (!PQpipelineSync(pg))
		fail("PQpipelineSync: %s", PQerrorMessage(pg));
	if (!synced)
		pump(1);
}

/* ------------------------------------------------------------------ values */

static void batch_values(long from, long n)
{
	static struct sbuf sql;
	static const char **params;
	long per_max = MAX_PARAMS / NCOLS;
	long stmts = (n + per_max - 1) / per_max;
	long per = (n + stmts - 1) / stmts;
	if (!params)
		params = malloc(sizeof(*params) * (size_t)MAX_PARAMS);
	exec("BEGIN");
	for (long s = from; s < from + n; s += per) {
		long k = s + per <= from + n ? per : from + n - s;
		sql.len = 0;
		sb_printf(&sql, "INSERT INTO messages (%s) VALUES ", cols);
		int p = 0;
		for (long i = 0; i < k; i++) {
			sb_str(&sql, i ? ",(" : "(");
			for (int c = 0; c < NCOLS; c++) {
				sb_printf(&sql, c ? ",$%d" : "$%d", p + 1);
				params[p++] = rows[s + i].v[c];
			}
			sb_str(&sql, ")");
		}
		sb_str(&sql, " ON CONFLICT DO NOTHING");
		check(PQexecParams(pg, sql.p, p, NULL, params, NULL, NULL, 0), PGRES_COMMAND_OK,
		      "INSERT VALUES");
	}
	exec("COMMIT");
}

/* ------------------------------------------------------------------ unnest */

static void setup_unnest(void)
{
	struct sbuf sql = {0};
	sb_printf(&sql, "INSERT INTO messages (%s) SELECT * FROM unnest(", cols);
	for (int c = 0; c < NCOLS; c++)
		sb_printf(&sql, "%s$%d::%s[]", c ? ", " : "", c + 1, col_types[c]);
	sb_str(&sql, ") ON CONFLICT DO NOTHING");
	check(PQprepare(pg, "unnest", sql.p, 0, NULL), PGRES_COMMAND_OK, "prepare unnest");
	free(sql.p);
}

/* An array literal element: NULL, or "..." with " and \ escaped. */
static void array_elem(struct sbuf *b, const char *s)
{
	if (!s) {
		sb_add(b, "NULL", 4);
		return;
	}
	sb_add(b, "\"", 1);
	const char *run = s;
	for (const char *p = s; *p; p++) {
		if (*p != '"' && *p != '\\')
			continue;
		sb_add(b, run, (size_t)(p - run));
		sb_add(b, "\\", 1);
		run = p;
	}
	sb_str(b, run);
	sb_add(b, "\"", 1);
}

static void batch_unnest(long from, long n)
{
	static struct sbuf arr[NCOLS];
	const char *params[NCOLS];
	for (int c = 0; c < NCOLS; c++) {
		struct sbuf *b = &arr[c];
		b->len = 0;
		sb_add(b, "{", 1);
		for (long i = from; i < from + n; i++) {
			if (i > from)
				sb_add(b, ",", 1);
			array_elem(b, rows[i].v[c]);
		}
		sb_add(b, "}", 1);
		params[c] = b->p;
	}
	exec("BEGIN");
	check(PQexecPrepared(pg, "unnest", NCOLS, params, NULL, NULL, 0), PGRES_COMMAND_OK,
	      "unnest");
	exec("COMMIT");
}

/* ------------------------------------------------------------------ driver */

struct mode {
	const char *name;
	void (*batch)(long from, long n);
};

static const struct mode modes[] = {
    {"copy", batch_copy},
    {"pipeline", batch_pipeline},
    {"values", batch_values},
    {"unnest", batch_unnest},
};

struct sample {
	double rate, again, client, server;
};

static double backend_pid;

/* Loads every row in batches of b; returns seconds and adds CPU seconds to *client and
 * *server. */
static double load(const struct mode *m, long b, double *client, double *server)
{
	if (!strcmp(m->name, "pipeline")) {
		if (PQsetnonblocking(pg, 1) || !PQenterPipelineMode(pg))
			fail("pipeline mode: %s", PQerrorMessage(pg));
	}
	double c0 = self_cpu(), s0 = proc_cpu((long)backend_pid), t0 = wall();
	for (long from = 0; from < nrows; from += b)
		m->batch(from, from + b <= nrows ? b : nrows - from);
	double t = wall() - t0;
	*client += self_cpu() - c0;
	*server += proc_cpu((long)backend_pid) - s0;
	if (!strcmp(m->name, "pipeline")) {
		if (!PQexitPipelineMode(pg) || PQsetnonblocking(pg, 0))
			fail("exit pipeline mode: %s", PQerrorMessage(pg));
	}
	return t;
}

static long count_rows(void)
{
	PGresult *r = PQexec(pg, "SELECT count(*) FROM messages");
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fail("count: %s", PQresultErrorMessage(r));
	long n = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	return n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: pg_modes SRC_DB CONNINFO [-n ROWS] [-b 500,5000] "
		                "[-m copy,pipeline,values,unnest] [-r REPEAT] [-c on|off]\n");
		return 2;
	}
	const char *src = argv[1], *conninfo = argv[2];
	long limit = 0;
	int repeat = 3;
	char batches_arg[256] = "500,5000", modes_arg[256] = "copy,pipeline,values,unnest";
	for (int i = 3; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "-n"))
			limit = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "-b"))
			snprintf(batches_arg, sizeof(batches_arg), "%s", argv[i + 1]);
		else if (!strcmp(argv[i], "-m"))
			snprintf(modes_arg, sizeof(modes_arg), "%s", argv[i + 1]);
		else if (!strcmp(argv[i], "-c") && !strcmp(argv[i + 1], "on"))
			with_cids = 1;
		else if (!strcmp(argv[i], "-c") && !strcmp(argv[i + 1], "off"))
			with_cids = 0;
		else if (!strcmp(argv[i], "-r"))
			repeat = atoi(argv[i + 1]);
		else
			fail("unknown option %s", argv[i]);
	}
	if (repeat < 1 || repeat > MAX_REPEAT)
		fail("-r: 1..%d", MAX_REPEAT);
	long bs[8];
	int nb = 0;
	for (char *t = strtok(batches_arg, ","); t && nb < 8; t = strtok(NULL, ","))
		if ((bs[nb] = atol(t)) > 0)
			nb++;
	const struct mode *ms[4];
	int nm = 0;
	for (char *t = strtok(modes_arg, ","); t; t = strtok(NULL, ",")) {
		int found = 0;
		for (size_t k = 0; k < sizeof(modes) / sizeof(modes[0]); k++)
			if (!strcmp(t, modes[k].name) && nm < 4) {
				ms[nm++] = &modes[k];
				found = 1;
			}
		if (!found)
			fail("unknown mode %s", t);
	}

	double t0 = wall();
	load_rows(src, limit);
	size_t bytes = 0;
	for (long i = 0; i < nrows; i++)
		bytes += rows[i].v[9] ? strlen(rows[i].v[9]) : 0;
	fprintf(stderr, "pg_modes: %ld rows read in %.1f s, data %.0f bytes per row\n", nrows,
	        wall() - t0, (double)bytes / (double)nrows);

	pg = PQconnectdb(conninfo);
	if (PQstatus(pg) != CONNECTION_OK)
		fail("connect: %s", PQerrorMessage(pg));
	make_schema(0, nrows - 1);
	backend_pid = PQbackendPID(pg);
	setup_copy();
	setup_pipeline();
	setup_unnest();

	/* A first load, not measured: catalog caches, the partitions' first pages, the
	 * server's buffers. */
	double wc = 0, ws = 0;
	load(ms[0], bs[nb - 1], &wc, &ws);

	static struct sample res[4][8][MAX_REPEAT];
	for (int r = 0; r < repeat; r++) {
		for (int bi = 0; bi < nb; bi++) {
			for (int mi = 0; mi < nm; mi++) {
				/* Start each repetition with a different mode so that none always
				 * follows the same one (autovacuum, checkpoints). */
				int k = (mi + r) % nm;
				exec("TRUNCATE messages, message_cids");
				/* Not every role may; then dirty pages from the last run remain. */
				PQclear(PQexec(pg, "CHECKPOINT"));
				double client = 0, server = 0;
				double t = load(ms[k], bs[bi], &client, &server);
				long got = count_rows();
				if (got != nrows)
					fail("%s batch %ld: %ld rows of %ld in PostgreSQL",
					     ms[k]->name, bs[bi], got, nrows);
				double c2 = 0, s2 = 0;
				double t2 = load(ms[k], bs[bi], &c2, &s2);
				if (count_rows() != nrows)
					fail("%s batch %ld: rows changed on the second load",
					     ms[k]->name, bs[bi]);
				res[k][bi][r] =
				    (struct sample){nrows / t, nrows / t2, client * 1e6 / nrows,
				                    server * 1e6 / nrows};
				fprintf(stderr,
				        "pg_modes: run %d %s batch %ld: %.0f rows/s, again %.0f\n",
				        r + 1, ms[k]->name, bs[bi], nrows / t, nrows / t2);
			}
		}
	}
	for (int bi = 0; bi < nb; bi++) {
		for (int k = 0; k < nm; k++) {
			double v[4][MAX_REPEAT];
			for (int r = 0; r < repeat; r++) {
				v[0][r] = res[k][bi][r].rate;
				v[1][r] = res[k][bi][r].again;
				v[2][r] = res[k][bi][r].client;
				v[3][r] = res[k][bi][r].server;
			}
			printf("mode=%s batch=%ld rows=%ld rows_per_s=%.0f again_rows_per_s=%.0f "
			       "client_ms_per_1k=%.2f server_ms_per_1k=%.2f repeat=%d cids=%s\n",
			       ms[k]->name, bs[bi], nrows, median(v[0], repeat),
			       median(v[1], repeat), median(v[2], repeat), median(v[3], repeat),
			       repeat, with_cids ? "on" : "off");
		}
	}
	exec("DROP SCHEMA bench_pg_modes CASCADE");
	PQfinish(pg);
	return 0;
}
