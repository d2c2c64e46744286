/*
 * sqlite_baseline: the physical limit for danmakud's write path on this machine. It reads
 * the messages rows that a danmakud run committed (SRC_DB), then inserts exactly those rows
 * into a fresh database (DST_DB) with danmakud's schema (copied from SRC_DB's sqlite_master,
 * so FTS tables and triggers come along when the source has them), danmakud's pragmas (WAL,
 * synchronous=NORMAL, temp_store=MEMORY, cache_size 16 MiB, mmap_size 0,
 * wal_autocheckpoint 10000), its INSERT OR IGNORE statement and its batch size
 * (rows per transaction), in one tight loop: no parsing, no queue, no network. When the source
 * has the full-text index, it is fed as danmakud's store feeds it (schema 4): once per
 * transaction, INSERT INTO messages_fts ... SELECT the rows above the batch's first id.
 *
 *   sqlite_baseline SRC_DB DST_DB [BATCH]      prints: rows=N seconds=S rows_per_s=R cpu_s=C
 *
 * Only the insert loop (BEGIN ... COMMIT per batch) is timed; loading the rows is not.
 */
#define _POSIX_C_SOURCE 200809L
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

struct row {
	sqlite3_int64 room_id, ts, uid, level, session_id;
	int has_uid, has_level, has_session;
	char *type, *nick, *text, *cid, *data, *platform, *decoded; /* NULL for SQL NULL */
	int nick_len, text_len, cid_len, data_len, type_len, platform_len, decoded_len;
};

static void die(sqlite3 *db, const char *what)
{
	fprintf(stderr, "sqlite_baseline: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
	exit(1);
}

static char *dup_col(sqlite3_stmt *st, int i, int *len)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL) {
		*len = 0;
		return NULL;
	}
	const unsigned char *p = sqlite3_column_text(st, i);
	*len = sqlite3_column_bytes(st, i);
	char *c = malloc((size_t)*len + 1);
	if (!c) {
		fprintf(stderr, "sqlite_baseline: out of memory\n");
		exit(1);
	}
	memcpy(c, p, (size_t)*len);
	c[*len] = 0;
	return c;
}

static double now_s(clockid_t clk)
{
	struct timespec t;
	clock_gettime(clk, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
		fprintf(stderr, "sqlite_baseline: %s: %s\n", sql, err ? err : "?");
		exit(1);
	}
}

/* Copy tables (not FTS shadow tables), virtual tables, indexes and triggers. */
static void copy_schema(sqlite3 *src, sqlite3 *dst)
{
	static const char *const q =
	    "SELECT sql FROM sqlite_master m WHERE sql IS NOT NULL AND type IN "
	    "('table','index','trigger') AND name NOT LIKE 'sqlite_%' AND NOT EXISTS ("
	    "  SELECT 1 FROM sqlite_master v WHERE v.type = 'table' AND v.name <> m.name"
	    "  AND v.sql LIKE 'CREATE VIRTUAL TABLE%' AND m.type = 'table'"
	    "  AND m.name LIKE v.name || '\\_%' ESCAPE '\\')"
	    " ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, rowid";
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(src, q, -1, &st, NULL) != SQLITE_OK)
		die(src, "read schema");
	exec(dst, "BEGIN");
	while (sqlite3_step(st) == SQLITE_ROW)
		exec(dst, (const char *)sqlite3_column_text(st, 0));
	exec(dst, "COMMIT");
	sqlite3_finalize(st);
}

static int bind_text(sqlite3_stmt *st, int i, const char *p, int len)
{
	return p ? sqlite3_bind_text(st, i, p, len, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: sqlite_baseline SRC_DB DST_DB [BATCH]\n");
		return 2;
	}
	long batch = argc > 3 ? strtol(argv[3], NULL, 10) : 5000;
	if (batch < 1)
		batch = 1;

	sqlite3 *src;
	if (sqlite3_open_v2(argv[1], &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		die(src, "open source");
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(src,
			       "SELECT room_id, ts, type, uid, nick, level, text, cid, session_id, "
			       "data, platform, decoded FROM messages ORDER BY id",
			       -1, &st, NULL) != SQLITE_OK)
		die(src, "select");
	size_t n = 0, cap = 0;
	struct row *rows = NULL;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			rows = realloc(rows, cap * sizeof(*rows));
			if (!rows) {
				fprintf(stderr, "sqlite_baseline: out of memory\n");
				return 1;
			}
		}
		struct row *r = &rows[n++];
		r->room_id = sqlite3_column_int64(st, 0);
		r->ts = sqlite3_column_int64(st, 1);
		r->type = dup_col(st, 2, &r->type_len);
		r->has_uid = sqlite3_column_type(st, 3) != SQLITE_NULL;
		r->uid = sqlite3_column_int64(st, 3);
		r->nick = dup_col(st, 4, &r->nick_len);
		r->has_level = sqlite3_column_type(st, 5) != SQLITE_NULL;
		r->level = sqlite3_column_int64(st, 5);
		r->text = dup_col(st, 6, &r->text_len);
		r->cid = dup_col(st, 7, &r->cid_len);
		r->has_session = sqlite3_column_type(st, 8) != SQLITE_NULL;
		r->session_id = sqlite3_column_int64(st, 8);
		r->data = dup_col(st, 9, &r->data_len);
		r->platform = dup_col(st, 10, &r->platform_len);
		r->decoded = dup_col(st, 11, &r->decoded_len);
	}
	sqlite3_finalize(st);

	remove(argv[2]);
	char aux[4096];
	snprintf(aux, sizeof(aux), "%s-wal", argv[2]);
	remove(aux);
	snprintf(aux, sizeof(aux), "%s-shm", argv[2]);
	remove(aux);
	sqlite3 *db;
	if (sqlite3_open_v2(argv[2], &db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK)
		die(db, "open destination");
	/* danmakud's pragmas (store.c set_pragmas). */
	exec(db, "PRAGMA journal_mode = WAL");
	exec(db, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF; "
		 "PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16384; "
		 "PRAGMA mmap_size = 0; PRAGMA wal_autocheckpoint = 10000;");
	copy_schema(src, db);
	sqlite3_close(src);
	/* Like danmakud's connection: no triggers (the full-text insert trigger is there for other
	 * programs; the index is fed per transaction below). */
	sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, (int *)NULL);

	sqlite3_stmt *ins, *begin, *commit, *fts_max = NULL, *fts_feed = NULL;
	/* danmakud's full-text feed (store.c ST_FTS_MAX, ST_FTS_FEED), when the schema has it. */
	if (sqlite3_prepare_v2(db, "SELECT coalesce(max(id), 0) FROM messages", -1, &fts_max,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "INSERT INTO messages_fts(rowid, text) SELECT id, text FROM messages "
			       "WHERE id > ?1 AND text IS NOT NULL",
			       -1, &fts_feed, NULL) != SQLITE_OK) {
		sqlite3_finalize(fts_max);
		fts_max = fts_feed = NULL; /* no messages_fts */
	}
	/* danmakud's statement (store.c ST_MESSAGE). */
	if (sqlite3_prepare_v3(db,
			       "INSERT OR IGNORE INTO messages(room_id, ts, type, uid, nick, level, "
			       "text, cid, session_id, data, platform, decoded) VALUES(?1, ?2, ?3, "
			       "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
			       -1, SQLITE_PREPARE_PERSISTENT, &ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL) != SQLITE_OK)
		die(db, "prepare");

	double t0 = now_s(CLOCK_MONOTONIC), c0 = cpu_s();
	size_t inserted = 0;
	for (size_t i = 0; i < n;) {
		if (sqlite3_step(begin) != SQLITE_DONE)
			die(db, "begin");
		sqlite3_reset(begin);
		sqlite3_int64 from = 0;
		if (fts_feed) {
			if (sqlite3_step(fts_max) != SQLITE_ROW)
				die(db, "max id");
			from = sqlite3_column_int64(fts_max, 0);
			sqlite3_reset(fts_max);
		}
		size_t end = i + (size_t)batch < n ? i + (size_t)batch : n;
		for (; i < end; i++) {
			const struct row *r = &rows[i];
			sqlite3_bind_int64(ins, 1, r->room_id);
			sqlite3_bind_int64(ins, 2, r->ts);
			bind_text(ins, 3, r->type, r->type_len);
			if (r->has_uid)
				sqlite3_bind_int64(ins, 4, r->uid);
			else
				sqlite3_bind_null(ins, 4);
			bind_text(ins, 5, r->nick, r->nick_len);
			if (r->has_level)
				sqlite3_bind_int64(ins, 6, r->level);
			else
				sqlite3_bind_null(ins, 6);
			bind_text(ins, 7, r->text, r->text_len);
			bind_text(ins, 8, r->cid, r->cid_len);
			if (r->has_session)
				sqlite3_bind_int64(ins, 9, r->session_id);
			else
				sqlite3_bind_null(ins, 9);
			bind_text(ins, 10, r->data, r->data_len);
			bind_text(ins, 11, r->platform, r->platform_len);
			bind_text(ins, 12, r->decoded, r->decoded_len);
			if (sqlite3_step(ins) != SQLITE_DONE)
				die(db, "insert");
			inserted += (size_t)sqlite3_changes(db);
			sqlite3_reset(ins);
		}
		if (fts_feed) {
			sqlite3_bind_int64(fts_feed, 1, from);
			if (sqlite3_step(fts_feed) != SQLITE_DONE)
				die(db, "full-text feed");
			sqlite3_reset(fts_feed);
		}
		if (sqlite3_step(commit) != SQLITE_DONE)
			die(db, "commit");
		sqlite3_reset(commit);
	}
	double secs = now_s(CLOCK_MONOTONIC) - t0, cpu = cpu_s() - c0;
	printf("rows=%zu inserted=%zu seconds=%.3f rows_per_s=%.0f cpu_s=%.3f batch=%ld fts=%d\n",
	       n, inserted, secs, secs > 0 ? (double)n / secs : 0.0, cpu, batch, fts_feed != NULL);
	sqlite3_finalize(fts_max);
	sqlite3_finalize(fts_feed);
	sqlite3_finalize(ins);
	sqlite3_finalize(begin);
	sqlite3_finalize(commit);
	sqlite3_close(db);
	for (size_t i = 0; i < n; i++) {
		free(rows[i].type);
		free(rows[i].nick);
		free(rows[i].text);
		free(rows[i].cid);
		free(rows[i].data);
		free(rows[i].platform);
		free(rows[i].decoded);
	}
	free(rows);
	return 0;
}
