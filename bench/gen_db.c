/*
 * gen_db: fill a danmakud database with N synthetic Douyu messages across 1,000 rooms, as
 * months of recording would have left it, for the scale benchmark (bench/scale.py). It is a
 * fixture, not a measurement: it writes as fast as SQLite allows (one connection, no journal,
 * no fsync, a large page cache, 200,000 rows per transaction).
 *
 * The database must already exist with danmakud's schema (bench/scale.py makes it by a short
 * danmakud run), so that tables, indexes and the full-text index are exactly what danmakud
 * creates. The full-text index is fed the way the writer does after issue 12: the insert
 * trigger is dropped and every transaction ends with one INSERT ... SELECT of its new chat
 * rows into messages_fts.
 *
 * Rows: ts increases by 100 ms per row (50M rows: 58 days, ending before 2026-09-22); rooms
 * are drawn from a Zipf(0.8) distribution over 1,000 Douyu-like room ids (the busiest room
 * gets 6 % of the rows, the quietest 0.03 %); the mix is the S13 capture's as in
 * bench/fts_cost.c: 26 % chatmsg with text (2..30 characters, Zipf-distributed CJK plus some
 * ASCII) and a cid, 22 % dgb, 52 % uenter, each with a JSON data column of about 350 bytes.
 * cids look like Douyu's (16 random hex digits, 8 more, then zeros:
 * 00bd3553ee494c929f45090100000000), uids are Douyu-like 8..9 digit numbers, half from a pool
 * of 200,000 regulars and half from anyone, so the (uid, ts) and (platform, room_id, cid)
 * indexes receive keys at random places, as they do from real traffic. One session per room
 * and day, with its message count. Deterministic (fixed seed).
 *
 *   cc -O2 -o /tmp/gen_db bench/gen_db.c -lsqlite3 -lm
 *   /tmp/gen_db DB [ROWS]          ROWS defaults to 50,000,000
 *
 * Prints the rows per room (the room ids, busiest first) and the time taken.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "synth.h"

#define N_ROOMS 1000
#define BATCH 200000
#define T0 INT64_C(1785000000000) /* 2026-07-25, ms */
#define STEP_MS 100
#define DAY_MS INT64_C(86400000)

/* A nick of 2..8 CJK characters, the same for the same uid. */
static void nick_of(int64_t uid, char *out)
{
	uint64_t h = (uint64_t)uid * 0x9e3779b97f4a7c15u;
	int n = 2 + (int)(h % 7);
	size_t o = 0;
	for (int i = 0; i < n; i++) {
		h = h * 6364136223846793005u + 1442695040888963407u;
		unsigned cp = 0x4e00 + (unsigned)((h >> 33) % 20000);
		out[o++] = (char)(0xe0 | (cp >> 12));
		out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[o++] = (char)(0x80 | (cp & 0x3f));
	}
	out[o] = '\0';
}

static sqlite3 *db;

static void die(const char *what)
{
	fprintf(stderr, "gen_db: %s: %s\n", what, sqlite3_errmsg(db));
	exit(1);
}

static void exec(const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
		fprintf(stderr, "gen_db: %s: %s\n", sql, err ? err : "?");
		exit(1);
	}
}

static sqlite3_stmt *prepare(const char *sql)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		die(sql);
	return st;
}

static void step_reset(sqlite3_stmt *st, const char *what)
{
	if (sqlite3_step(st) != SQLITE_DONE)
		die(what);
	sqlite3_reset(st);
}

static double wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The full-text index, fed once per transaction as the writer does (see the header). */
static void feed_fts(sqlite3_stmt *fts, int64_t before)
{
	if (!fts)
		return;
	sqlite3_bind_int64(fts, 1, before);
	step_reset(fts, "feed messages_fts");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: gen_db DB [ROWS]\n");
		return 2;
	}
	long long rows = argc > 2 ? atoll(argv[2]) : 50000000LL;
	if (rows <= 0)
		return 2;
	if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		die(argv[1]);
	double t_start = wall();
	/* A fixture: nothing here needs to survive a crash. */
	exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA locking_mode = "
	     "EXCLUSIVE; PRAGMA cache_size = -4000000; PRAGMA temp_store = MEMORY");
	exec("DROP TRIGGER IF EXISTS messages_fts_insert; DELETE FROM rooms; DELETE FROM sessions");
	sqlite3_stmt *q = prepare("SELECT count(*) FROM messages");
	if (sqlite3_step(q) != SQLITE_ROW || sqlite3_column_int64(q, 0) != 0) {
		fprintf(stderr, "gen_db: %s already holds messages\n", argv[1]);
		return 1;
	}
	sqlite3_finalize(q);
	q = prepare("SELECT count(*) FROM sqlite_master WHERE name = 'messages_fts'");
	int has_fts = sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int64(q, 0) > 0;
	sqlite3_finalize(q);

	static double rooms_cdf[N_ROOMS], chars_cdf[SYNTH_CHARS];
	zipf(rooms_cdf, N_ROOMS, 0.8);
	zipf(chars_cdf, SYNTH_CHARS, 1.0);
	int64_t room_ids[N_ROOMS];
	long long per_room[N_ROOMS] = {0};
	for (int r = 0; r < N_ROOMS; r++)
		room_ids[r] = 100000 + (int64_t)r * 7919; /* distinct, spread like Douyu's */
	int64_t days = (rows * STEP_MS) / DAY_MS + 1;
	long long *counts = calloc((size_t)(days * N_ROOMS), sizeof(*counts));
	if (!counts)
		return 1;

	sqlite3_stmt *ins = prepare(
	    "INSERT INTO messages(id, room_id, ts, type, uid, nick, level, text, cid, session_id, "
	    "data, platform) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'douyu')");
	sqlite3_stmt *fts = has_fts ? prepare("INSERT INTO messages_fts(rowid, text) SELECT id, "
	                                      "text FROM messages WHERE id > ?1 AND text IS "
	                                      "NOT NULL")
	                            : NULL;
	char text[160], cid[40], nick[32], data[1024];
	int64_t batch_start = 0;
	exec("BEGIN");
	for (long long i = 0; i < rows; i++) {
		int r = pick(rooms_cdf, N_ROOMS);
		int64_t id = i + 1, ts = T0 + i * STEP_MS, day = (ts - T0) / DAY_MS;
		int64_t sid = day * N_ROOMS + r + 1;
		int64_t uid = next() & 1 ? 10000000 + (int64_t)((next() % 200000) * 1999)
		                         : 10000000 + (int64_t)(next() % 490000000);
		int level = 1 + (int)(next() % 60);
		nick_of(uid, nick);
		unsigned k = (unsigned)(next() % 100);
		const char *type;
		int n;
		sqlite3_bind_int64(ins, 1, id);
		sqlite3_bind_int64(ins, 2, room_ids[r]);
		sqlite3_bind_int64(ins, 3, ts);
		sqlite3_bind_int64(ins, 5, uid);
		sqlite3_bind_text(ins, 6, nick, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 7, level);
		sqlite3_bind_int64(ins, 10, sid);
		if (k < 26) {
			type = "chatmsg";
			chat_text(chars_cdf, text, sizeof(text));
			snprintf(cid, sizeof(cid), "%016llx%06llx%010d", (unsigned long long)next(),
			         (unsigned long long)(next() & 0xffffff), 100000000);
			n = snprintf(
			    data, sizeof(data),
			    "{\"type\":\"chatmsg\",\"rid\":\"%lld\",\"ct\":\"14\",\"uid\":"
			    "\"%lld\",\"nn\":\"%s\",\"txt\":\"%s\",\"cid\":\"%s\",\"ic\":"
			    "\"avatar_v3/202011/0e6f760afb484205\",\"level\":\"%d\",\"sahf\":"
			    "\"0\",\"nl\":\"1\",\"col\":\"1\",\"rg\":\"4\",\"cst\":\"%lld\","
			    "\"bnn\":\"\",\"bl\":\"0\",\"brid\":\"0\",\"hc\":\"\",\"ifs\":\"1\","
			    "\"dms\":\"4\",\"pdg\":\"46\",\"pdk\":\"71\",\"ext\":\"\"}",
			    (long long)room_ids[r], (long long)uid, nick, text, cid, level,
			    (long long)(ts - 40));
			sqlite3_bind_text(ins, 8, text, -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, 9, cid, -1, SQLITE_STATIC);
		} else {
			type = k < 48 ? "dgb" : "uenter";
			n = snprintf(
			    data, sizeof(data),
			    "{\"type\":\"%s\",\"rid\":\"%lld\",\"uid\":\"%lld\",\"nn\":\"%s\","
			    "\"level\":\"%d\",\"ic\":\"avatar_v3/202007/bd33d5c01c034ba1\","
			    "\"rni\":\"0\",\"el\":\"eid@AA=1500000113@ASetp@AA=1@ASsc@AA=1@ASef@AA="
			    "0@"
			    "AS@S\",\"sahf\":\"0\",\"wgei\":\"0\",\"gfid\":"
			    "\"824\",\"gfcnt\":\"1\",\"hits\":\"%d\",\"bnn\":\"\",\"bl\":\"0\","
			    "\"brid\":\"0\",\"hc\":\"\",\"fc\":\"0\",\"gpf\":\"1\",\"pid\":\"268\","
			    "\"pdg\":\"46\",\"pdk\":\"71\"}",
			    type, (long long)room_ids[r], (long long)uid, nick, level,
			    1 + (int)(next() % 20));
			sqlite3_bind_null(ins, 8);
			sqlite3_bind_null(ins, 9);
		}
		sqlite3_bind_text(ins, 4, type, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 11, data, n, SQLITE_STATIC);
		step_reset(ins, "insert");
		per_room[r]++;
		counts[day * N_ROOMS + r]++;
		if ((i + 1) % BATCH == 0 || i + 1 == rows) {
			feed_fts(fts, batch_start);
			exec("COMMIT");
			batch_start = id;
			if ((i + 1) % (BATCH * 25) == 0)
				fprintf(stderr, "gen_db: %lld rows, %.0f s\n", i + 1,
				        wall() - t_start);
			if (i + 1 < rows)
				exec("BEGIN");
		}
	}
	sqlite3_finalize(ins);
	sqlite3_finalize(fts);

	exec("BEGIN");
	sqlite3_stmt *room = prepare("INSERT INTO rooms(platform, room_id, added_at) VALUES "
	                             "('douyu', ?1, ?2)");
	sqlite3_stmt *sess = prepare(
	    "INSERT INTO sessions(id, platform, room_id, server, started_at, joined_at, ended_at, "
	    "end_reason, messages) VALUES (?1, 'douyu', ?2, 'wss://danmuproxy.douyu.com:8504/', "
	    "?3, ?4, ?5, 'server closed', ?6)");
	for (int r = 0; r < N_ROOMS; r++) {
		sqlite3_bind_int64(room, 1, room_ids[r]);
		sqlite3_bind_int64(room, 2, T0 - 1000);
		step_reset(room, "rooms");
		for (int64_t d = 0; d < days; d++) {
			int64_t start = T0 + d * DAY_MS - 500;
			sqlite3_bind_int64(sess, 1, d * N_ROOMS + r + 1);
			sqlite3_bind_int64(sess, 2, room_ids[r]);
			sqlite3_bind_int64(sess, 3, start);
			sqlite3_bind_int64(sess, 4, start + 300);
			sqlite3_bind_int64(sess, 5, start + DAY_MS);
			sqlite3_bind_int64(sess, 6, counts[d * N_ROOMS + r]);
			step_reset(sess, "sessions");
		}
	}
	sqlite3_finalize(room);
	sqlite3_finalize(sess);
	exec("COMMIT");
	/* Back to what danmakud runs on (it sets WAL at open too; this only leaves the file as
	 * danmakud would). */
	exec("PRAGMA locking_mode = NORMAL; PRAGMA journal_mode = WAL");
	if (sqlite3_close(db) != SQLITE_OK)
		die("close");

	printf("rows %lld rooms %d fts %s seconds %.0f\n", rows, N_ROOMS, has_fts ? "on" : "off",
	       wall() - t_start);
	printf("busiest rooms (room_id rows):");
	for (int r = 0; r < 8; r++)
		printf(" %lld %lld", (long long)room_ids[r], per_room[r]);
	printf("\n");
	free(counts);
	return 0;
}
