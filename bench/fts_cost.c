/*
 * fts_cost: what the full-text index (messages_fts, FTS5 trigram) costs the recorder's writes.
 * Writes the same synthetic stream through the real store (store_append + store_flush, one
 * transaction per batch, as the flush timer does) into three fresh databases: without the
 * index; with it fed as danmakud feeds it now (one INSERT ... SELECT per transaction, the
 * store's connection running no triggers); and with it fed as danmakud did before (the
 * AFTER INSERT trigger per row: the index made with the store's index off, so nothing else
 * feeds it, and triggers switched back on for the store's connection). Prints the CPU per row,
 * per chat row, and the database sizes.
 *
 * The stream imitates the S13 capture: 26% chatmsg with text (2..30 characters, mostly CJK with
 * Zipf-distributed frequencies plus some ASCII such as "666"), the rest uenter/dgb rows without
 * text; each row has a JSON data column of about 350 bytes. Deterministic (fixed seed).
 *
 * Build and run (from the source root; the meson build does not include bench/):
 *   cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Iinclude bench/fts_cost.c src/store.c \
 *      -lsqlite3 -lm -o /tmp/fts_cost && /tmp/fts_cost [ROWS] [BATCH] [DIR]
 * ROWS defaults to 200000, BATCH (rows per transaction) to 500, DIR to /tmp.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"
#include "synth.h"

/* CPU time of this process (user + system): the cost the recorder's loop pays, and much less
 * noisy than wall time on a shared machine. */
static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long file_size(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? (long long)st.st_size : 0;
}

struct result {
	double secs;
	long long bytes;
	long chats;
};

static double chars_cdf[SYNTH_CHARS];

enum mode { M_OFF, M_BATCH, M_TRIGGER };

/* The old way: the index and an insert trigger, made behind the store's back. */
static const char trigger_sql[] =
	"CREATE VIEW messages_fts_source AS SELECT id, text FROM messages WHERE text IS NOT NULL;"
	"CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages_fts_source',"
	"  content_rowid='id', tokenize='trigram');"
	"CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.text IS NOT NULL BEGIN"
	"  INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);"
	"END;";

/* The store's own connection, caught as it opens (to switch its triggers back on). */
static sqlite3 *captured;

static int capture_db(sqlite3 *db, char **errmsg, const struct sqlite3_api_routines *api)
{
	(void)errmsg;
	(void)api;
	captured = db;
	return SQLITE_OK;
}

static int run(const char *path, enum mode mode, long rows, long batch, struct result *res)
{
	char side[600];
	unlink(path);
	snprintf(side, sizeof(side), "%s-wal", path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", path);
	unlink(side);
	struct store_options opt = {.fts = mode == M_BATCH ? STORE_FTS_ON : STORE_FTS_OFF};
	struct store *s;
	char err[256];
	sqlite3_auto_extension((void (*)(void))capture_db);
	int orc = store_open(path, &opt, &s, err, sizeof(err));
	sqlite3_reset_auto_extension();
	if (orc < 0) {
		fprintf(stderr, "fts_cost: %s\n", err);
		return -1;
	}
	if (mode == M_TRIGGER) {
		sqlite3_db_config(captured, SQLITE_DBCONFIG_ENABLE_TRIGGER, 1, (int *)NULL);
		sqlite3 *db;
		int rc = sqlite3_open(path, &db);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(db, trigger_sql, NULL, NULL, NULL);
		sqlite3_close(db);
		if (rc != SQLITE_OK) {
			fprintf(stderr, "fts_cost: trigger: %s\n", sqlite3_errstr(rc));
			store_close(s);
			return -1;
		}
	}
	synth_rng = SYNTH_SEED;
	int64_t sid = store_session_begin(s, "douyu", 9999, "ws://bench/", 1);
	store_room(s, "douyu", 9999, 0, NULL, 1);
	char text[160], cid[40], data[1024];
	long chats = 0;
	double t0 = now_s();
	for (long i = 0; i < rows; i++) {
		struct record r = {0};
		r.platform = "douyu";
		r.room_id = 9999;
		r.ts = 1700000000000 + i * 5;
		r.session_id = sid;
		r.has_uid = true;
		r.uid = (int64_t)(next() % 200000);
		r.nick = "观众12345";
		r.has_level = true;
		r.level = (int64_t)(next() % 40);
		unsigned k = (unsigned)(next() % 100);
		if (k < 26) {
			chat_text(chars_cdf, text, sizeof(text));
			snprintf(cid, sizeof(cid), "%016lx0000000000000000", (unsigned long)i);
			r.type = "chatmsg";
			r.text = text;
			r.cid = cid;
			chats++;
			snprintf(data, sizeof(data),
			         "{\"type\":\"chatmsg\",\"rid\":\"9999\",\"ct\":\"14\",\"uid\":\"%lld\","
			         "\"nn\":\"观众12345\",\"txt\":\"%s\",\"cid\":\"%s\",\"ic\":"
			         "\"exyfeb/mflmhaa/81\",\"level\":\"%lld\",\"sahf\":\"0\",\"cst\":"
			         "\"1790519453584\",\"bnn\":\"\",\"bl\":\"0\",\"brid\":\"0\",\"hc\":\"\","
			         "\"dms\":\"4\",\"pdg\":\"46\",\"pdk\":\"71\",\"ext\":\"\",\"if\":\"1\"}",
			         (long long)r.uid, text, cid, (long long)r.level);
		} else {
			r.type = k < 48 ? "dgb" : "uenter";
			snprintf(data, sizeof(data),
			         "{\"type\":\"%s\",\"rid\":\"9999\",\"uid\":\"%lld\",\"nn\":\"观众12345\","
			         "\"level\":\"%lld\",\"ic\":\"avatar@Sdefault@S12\",\"rni\":\"0\","
			         "\"el\":\"\",\"sahf\":\"0\",\"wgei\":\"0\",\"gfid\":\"824\",\"gfcnt\":\"1\","
			         "\"hits\":\"3\",\"bnn\":\"\",\"bl\":\"0\",\"brid\":\"0\",\"hc\":\"\","
			         "\"pdg\":\"46\",\"pdk\":\"71\"}",
			         r.type, (long long)r.uid, (long long)r.level);
		}
		r.data = data;
		r.data_len = strlen(data);
		if (store_append(s, &r) < 0) {
			fprintf(stderr, "fts_cost: append failed\n");
			store_close(s);
			return -1;
		}
		if ((i + 1) % batch == 0 || i + 1 == rows) {
			int rc;
			while ((rc = store_flush(s, 0)) == -EAGAIN)
				;
			if (rc < 0) {
				fprintf(stderr, "fts_cost: flush: %s\n", store_last_error(s));
				store_close(s);
				return -1;
			}
		}
	}
	res->secs = now_s() - t0;
	store_close(s);
	res->bytes = file_size(path);
	res->chats = chats;
	return 0;
}

int main(int argc, char **argv)
{
	long rows = argc > 1 ? atol(argv[1]) : 200000;
	long batch = argc > 2 ? atol(argv[2]) : 500;
	const char *dir = argc > 3 ? argv[3] : "/tmp";
	if (rows <= 0 || batch <= 0)
		return 2;
	zipf(chars_cdf, SYNTH_CHARS, 1.0);
	static const char *const names[] = {"fts off", "fts on, fed per transaction (now)",
					    "fts on, trigger per row (before)"};
	char path[3][512];
	/* Alternate three times and keep the cheapest run of each, so a noisy neighbour counts
	 * less. */
	struct result best[3] = {{1e9, 0, 0}, {1e9, 0, 0}, {1e9, 0, 0}};
	for (int round = 0; round < 3; round++)
		for (int m = 0; m < 3; m++) {
			struct result r;
			snprintf(path[m], sizeof(path[m]), "%s/fts_cost_%d.db", dir, m);
			if (run(path[m], (enum mode)m, rows, batch, &r) < 0)
				return 1;
			if (r.secs < best[m].secs)
				best[m] = r;
		}
	printf("rows %ld (chat rows with text %ld), %ld rows per transaction\n", rows,
	       best[1].chats, batch);
	for (int m = 0; m < 3; m++) {
		printf("%-36s %.3f s CPU  %.2f us/row  %.0f rows/s  db %.1f MiB", names[m],
		       best[m].secs, best[m].secs * 1e6 / rows, rows / best[m].secs,
		       best[m].bytes / 1048576.0);
		if (m)
			printf("  index +%.2f us per chat row", (best[m].secs - best[0].secs) * 1e6 /
			                                          (double)best[m].chats);
		printf("\n");
		unlink(path[m]);
	}
	return 0;
}
