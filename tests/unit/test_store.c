/*
 * test_store: the store against real database files in a temp dir: schema, user_version and
 * pragmas, the queue and flush with exact column values read back through the sqlite3 API,
 * the platform of rooms, sessions and messages, dedup by (platform, room_id, cid), session ids
 * across reopen, flushing in slices, a flush that fails (locked by a second connection, full,
 * read-only) and keeps its queue, the queue bound, the views over Douyu and Bilibili rows,
 * migrating recorded schema-v1 and schema-v2 databases (and a v2 migration that fails and
 * rolls back), the full-text index switched on and off, and a database newer than us. The store's own connection is reached through
 * sqlite3_auto_extension, which sees every connection this process opens.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"
#include "test.h"

static char tmpdir[64];
static int db_seq;

/* A fresh database path in the temp dir. */
static const char *db_path(char *out, size_t n)
{
	snprintf(out, n, "%s/t%d.db", tmpdir, ++db_seq);
	return out;
}

static void rm_tmpdir(void)
{
	DIR *d = opendir(tmpdir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char p[512];
		snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(tmpdir);
}

/* ---- capture the store's connection ---- */

static sqlite3 *captured;

static int capture_db(sqlite3 *db, char **errmsg, const struct sqlite3_api_routines *api)
{
	(void)errmsg;
	(void)api;
	captured = db;
	return SQLITE_OK;
}

/* store_open, also returning the store's own sqlite3 handle. */
static int open_capture(const char *path, const struct store_options *opt, struct store **s,
                        sqlite3 **db)
{
	char err[256];
	captured = NULL;
	sqlite3_auto_extension((void (*)(void))capture_db);
	int rc = store_open(path, opt, s, err, sizeof(err));
	sqlite3_reset_auto_extension();
	if (rc < 0)
		printf("# store_open: %s\n", err);
	*db = captured;
	return rc;
}

static int open_plain(const char *path, struct store **s)
{
	char err[256];
	int rc = store_open(path, NULL, s, err, sizeof(err));
	if (rc < 0)
		printf("# store_open: %s\n", err);
	return rc;
}

/* ---- reading back ---- */

static sqlite3 *db_open(const char *path)
{
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

static int64_t q_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v = -999999;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		printf("# prepare %s: %s\n", sql, sqlite3_errmsg(db));
		return v;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* First column of the first row as text into out ("(null)" for NULL, "(none)" for no row). */
static const char *q_text(sqlite3 *db, const char *sql, char *out, size_t n)
{
	sqlite3_stmt *st;
	snprintf(out, n, "(error)");
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		printf("# prepare %s: %s\n", sql, sqlite3_errmsg(db));
		return out;
	}
	if (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		snprintf(out, n, "%s", t ? (const char *)t : "(null)");
	} else {
		snprintf(out, n, "(none)");
	}
	sqlite3_finalize(st);
	return out;
}

static int exec_sql(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		printf("# exec %s: %s\n", sql, msg ? msg : "?");
	sqlite3_free(msg);
	return rc;
}

static struct record mkrec(int64_t room, int64_t ts, const char *type, const char *cid)
{
	struct record r;
	memset(&r, 0, sizeof(r));
	r.platform = "douyu";
	r.room_id = room;
	r.ts = ts;
	r.session_id = 1;
	r.type = type;
	r.cid = cid;
	r.data = "{\"type\":\"x\"}";
	r.data_len = strlen(r.data);
	return r;
}

/* ---- tests ---- */

static void schema_and_version(void)
{
	char p[128], t[256];
	struct store *s;
	ASSERT_EQ(open_plain(db_path(p, sizeof(p)), &s), 0);
	store_close(s);
	sqlite3 *db = db_open(p);
	ASSERT(db);
	ASSERT_EQ(q_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	ASSERT_STR_EQ(q_text(db, "PRAGMA journal_mode", t, sizeof(t)), "wal");
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN "
	                    "('rooms', 'sessions', 'messages')"),
	          3);
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema "
	                     "WHERE type = 'view' AND name NOT LIKE 'messages_fts%' ORDER BY name)",
	                     t, sizeof(t)),
	              "chat,daily,gaps,gifts,live,room_stats,superchats");
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema "
	                     "WHERE type = 'index' AND sql IS NOT NULL ORDER BY name)",
	                     t, sizeof(t)),
	              "messages_live,messages_platform_room_cid,messages_room_ts,messages_uid_ts,"
	              "sessions_room_platform_started");
	ASSERT_STR_EQ(
	    q_text(db, "SELECT sql FROM sqlite_schema WHERE name = 'messages_platform_room_cid'", t,
	           sizeof(t)),
	    "CREATE UNIQUE INDEX messages_platform_room_cid ON messages(platform, room_id, cid)\n"
	    "  WHERE cid IS NOT NULL");
	/* Exact column lists, in order, with types and constraints. */
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(name || ' ' || type || ' ' || \"notnull\" || ' ' "
	                     "|| pk || ' ' || coalesce(dflt_value, '-'), ',') FROM "
	                     "pragma_table_info('sessions')",
	                     t, sizeof(t)),
	              "id INTEGER 0 1 -,room_id INTEGER 1 0 -,server TEXT 1 0 -,started_at INTEGER "
	              "1 0 -,joined_at INTEGER 0 0 -,ended_at INTEGER 0 0 -,end_reason TEXT 0 0 "
	              "-,messages INTEGER 1 0 0,platform TEXT 1 0 'douyu'");
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(name || ' ' || type || ' ' || \"notnull\" || ' ' "
	                     "|| pk || ' ' || coalesce(dflt_value, '-'), ',') FROM "
	                     "pragma_table_info('messages')",
	                     t, sizeof(t)),
	              "id INTEGER 0 1 -,room_id INTEGER 1 0 -,ts INTEGER 1 0 -,type TEXT 1 0 -,uid "
	              "INTEGER 0 0 -,nick TEXT 0 0 -,level INTEGER 0 0 -,text TEXT 0 0 -,cid TEXT 0 "
	              "0 -,session_id INTEGER 0 0 -,data TEXT 1 0 -,platform TEXT 1 0 'douyu',"
	              "decoded TEXT 0 0 -");
	/* rooms: the key is (platform, room_id), pk numbering its columns in key order. */
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(name || ' ' || type || ' ' || \"notnull\" || ' ' "
	                     "|| pk || ' ' || coalesce(dflt_value, '-'), ',') FROM "
	                     "pragma_table_info('rooms')",
	                     t, sizeof(t)),
	              "room_id INTEGER 1 2 -,label TEXT 0 0 -,added_at INTEGER 1 0 -,platform TEXT 1 "
	              "1 'douyu',short_id INTEGER 0 0 -");
	/* The comments .schema shows name both platforms. */
	char big[4096];
	ASSERT(strstr(q_text(db, "SELECT sql FROM sqlite_schema WHERE name = 'messages'", big,
	                     sizeof(big)),
	              "Bilibili the cmd without its \":...\" suffix"));
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check "
	                    "= 'ok'"),
	          1);
	sqlite3_close(db);
	/* Reopening an up-to-date database changes nothing. */
	ASSERT_EQ(open_plain(p, &s), 0);
	store_close(s);
}

static void pragmas(void)
{
	char p[128], t[64];
	struct store *s;
	sqlite3 *db;
	struct store_options opt = {.busy_timeout_ms = 25};
	ASSERT_EQ(open_capture(db_path(p, sizeof(p)), &opt, &s, &db), 0);
	ASSERT(db);
	ASSERT_STR_EQ(q_text(db, "PRAGMA journal_mode", t, sizeof(t)), "wal");
	ASSERT_EQ(q_int(db, "PRAGMA synchronous"), 1); /* NORMAL */
	ASSERT_EQ(q_int(db, "PRAGMA foreign_keys"), 0);
	ASSERT_EQ(q_int(db, "PRAGMA temp_store"), 2); /* MEMORY */
	ASSERT_EQ(q_int(db, "PRAGMA busy_timeout"), 25);
	/* Chosen on a 50M-row database (set_pragmas; BENCHMARKS.md "Scale: 50M rows"). */
	ASSERT_EQ(q_int(db, "PRAGMA cache_size"), -16384);
	ASSERT_EQ(q_int(db, "PRAGMA mmap_size"), 0);
	ASSERT_EQ(q_int(db, "PRAGMA wal_autocheckpoint"), 10000);
	store_close(s);
	ASSERT_EQ(open_capture(p, NULL, &s, &db), 0);
	ASSERT_EQ(q_int(db, "PRAGMA busy_timeout"), 0);
	store_close(s);
}

static void roundtrip(void)
{
	char p[128], t[256];
	struct store *s;
	ASSERT_EQ(open_plain(db_path(p, sizeof(p)), &s), 0);
	ASSERT_EQ(store_room(s, "douyu", 9999, 0, "测试", 1700000000000), 0);
	int64_t sid =
	    store_session_begin(s, "douyu", 9999, "wss://danmuproxy.douyu.com:8504/", 1700000000100);
	ASSERT_EQ(sid, 1);

	char data[] = "{\"type\":\"chatmsg\",\"txt\":\"你好/@\",\"cid\":\"c1\"}";
	struct record r = mkrec(9999, 1700000000200, "chatmsg", "c1");
	r.session_id = sid;
	r.has_uid = true;
	r.uid = 123456789012;
	r.nick = "昵称";
	r.has_level = true;
	r.level = 30;
	r.text = "你好/@";
	r.data = data;
	r.data_len = strlen(data);
	ASSERT_EQ(store_append(s, &r), 0);
	/* The store copies: the caller's buffers may change right after. */
	memset(data, 'X', sizeof(data) - 1);

	struct record r2 = mkrec(9999, 1700000000300, "uenter", NULL);
	r2.session_id = sid;
	/* data_len shorter than the string: exactly data_len bytes are stored. */
	r2.data = "{\"type\":\"uenter\"}trailing";
	r2.data_len = strlen("{\"type\":\"uenter\"}");
	ASSERT_EQ(store_append(s, &r2), 0);

	struct record r3 = mkrec(9999, 1700000000400, "", NULL);
	r3.session_id = 0; /* no session */
	ASSERT_EQ(store_append(s, &r3), 0);

	struct store_stats st;
	store_get_stats(s, &st);
	ASSERT_EQ(st.queued_rows, 5);
	ASSERT_GT(st.queued_bytes, 0);
	ASSERT_EQ(st.committed, 0);

	ASSERT_EQ(store_flush(s, 0), 0);
	store_get_stats(s, &st);
	ASSERT_EQ(st.queued_rows, 0);
	ASSERT_EQ(st.queued_bytes, 0);
	ASSERT_EQ(st.committed, 3);
	ASSERT_EQ(st.duplicates, 0);
	ASSERT_EQ(st.failed_flushes, 0);
	ASSERT_EQ(store_flush(s, 0), 0); /* empty queue */

	sqlite3 *db = db_open(p);
	ASSERT(db);
	ASSERT_STR_EQ(q_text(db, "SELECT label || '|' || added_at FROM rooms", t, sizeof(t)),
	              "测试|1700000000000");
	ASSERT_STR_EQ(
	    q_text(db,
	           "SELECT quote(room_id) || '|' || quote(ts) || '|' || quote(type) || "
	           "'|' || quote(uid) || '|' || quote(nick) || '|' || quote(level) || '|' "
	           "|| quote(text) || '|' || quote(cid) || '|' || quote(session_id) || "
	           "'|' || data FROM messages WHERE ts = 1700000000200",
	           t, sizeof(t)),
	    "9999|1700000000200|'chatmsg'|123456789012|'昵称'|30|'你好/@'|'c1'|1|"
	    "{\"type\":\"chatmsg\",\"txt\":\"你好/@\",\"cid\":\"c1\"}");
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT quote(uid) || '|' || quote(nick) || '|' || quote(level) || "
	                     "'|' || quote(text) || '|' || quote(cid) || '|' || quote(session_id) "
	                     "|| '|' || data || '|' || typeof(data) FROM messages WHERE ts = "
	                     "1700000000300",
	                     t, sizeof(t)),
	              "NULL|NULL|NULL|NULL|NULL|1|{\"type\":\"uenter\"}|text");
	ASSERT_STR_EQ(
	    q_text(db,
	           "SELECT quote(type) || '|' || quote(session_id) FROM messages WHERE ts "
	           "= 1700000000400",
	           t, sizeof(t)),
	    "''|NULL");
	/* Insertion order is preserved in the ids. */
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(ts % 1000, ',') FROM (SELECT ts FROM "
	                     "messages ORDER BY id)",
	                     t, sizeof(t)),
	              "200,300,400");
	/* The label is updated when given, kept when not. */
	ASSERT_EQ(store_room(s, "douyu", 9999, 0, NULL, 1), 0);
	ASSERT_EQ(store_room(s, "douyu", 288016, 0, NULL, 5), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_STR_EQ(q_text(db, "SELECT label || '|' || added_at FROM rooms WHERE room_id = 9999",
	                     t, sizeof(t)),
	              "测试|1700000000000");
	ASSERT_EQ(store_room(s, "douyu", 9999, 0, "new", 2), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_STR_EQ(q_text(db, "SELECT label || '|' || added_at FROM rooms WHERE room_id = 9999",
	                     t, sizeof(t)),
	              "new|1700000000000");
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT quote(label) || '|' || added_at FROM rooms WHERE room_id "
	                     "= 288016",
	                     t, sizeof(t)),
	              "NULL|5");
	sqlite3_close(db);
	store_close(s);
}

/* Schema v3: rooms keyed by (platform, room_id) with a short id, sessions and messages carry
 * the platform, messages the decoded payload (exactly decoded_len bytes); a missing platform
 * is refused. */
static void platform_roundtrip(void)
{
	char p[128], t[256];
	struct store *s;
	ASSERT_EQ(open_plain(db_path(p, sizeof(p)), &s), 0);
	ASSERT_EQ(store_room(s, "bilibili", 5050, 76, "bili", 1000), 0);
	ASSERT_EQ(store_room(s, "douyu", 5050, 0, "douyu", 1001), 0);
	ASSERT_EQ(store_room(s, NULL, 5050, 0, "x", 1), -EINVAL);
	ASSERT_EQ(store_session_begin(s, NULL, 5050, "x", 1), -EINVAL);
	int64_t sid = store_session_begin(s, "bilibili", 5050, "wss://bili/sub", 1100);
	ASSERT_EQ(sid, 1);
	struct record r = mkrec(5050, 1200, "SEND_GIFT_V2", "SEND_GIFT_V2:7:0");
	r.platform = "bilibili";
	r.session_id = sid;
	r.decoded = "{\"tid\":\"7\",\"num\":1}trailing";
	r.decoded_len = strlen("{\"tid\":\"7\",\"num\":1}");
	ASSERT_EQ(store_append(s, &r), 0);
	struct record n = mkrec(5050, 1300, "DANMU_MSG", "id1");
	n.platform = "bilibili";
	ASSERT_EQ(store_append(s, &n), 0);
	struct record bad = mkrec(5050, 1400, "chatmsg", NULL);
	bad.platform = NULL;
	ASSERT_EQ(store_append(s, &bad), -EINVAL);
	ASSERT_EQ(store_flush(s, 0), 0);
	sqlite3 *db = db_open(p);
	ASSERT(db);
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(platform || ' ' || room_id || ' ' || "
	                     "quote(short_id) || ' ' || label || ' ' || added_at, ',') FROM (SELECT "
	                     "* FROM rooms ORDER BY platform)",
	                     t, sizeof(t)),
	              "bilibili 5050 76 bili 1000,douyu 5050 NULL douyu 1001");
	/* Again without short id or label: both kept; a new short id replaces the old. */
	ASSERT_EQ(store_room(s, "bilibili", 5050, 0, NULL, 2000), 0);
	ASSERT_EQ(store_room(s, "bilibili", 5050, -1, NULL, 2000), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT short_id || ' ' || label || ' ' || added_at FROM rooms WHERE "
	                     "platform = 'bilibili'",
	                     t, sizeof(t)),
	              "76 bili 1000");
	ASSERT_EQ(store_room(s, "bilibili", 5050, 77, "new", 3000), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT short_id || ' ' || label || ' ' || added_at FROM rooms WHERE "
	                     "platform = 'bilibili'",
	                     t, sizeof(t)),
	              "77 new 1000");
	ASSERT_STR_EQ(q_text(db, "SELECT platform || ' ' || room_id || ' ' || server FROM sessions",
	                     t, sizeof(t)),
	              "bilibili 5050 wss://bili/sub");
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(platform || '|' || type || '|' || quote(decoded), "
	                     "',') FROM (SELECT * FROM messages ORDER BY id)",
	                     t, sizeof(t)),
	              "bilibili|SEND_GIFT_V2|'{\"tid\":\"7\",\"num\":1}',bilibili|DANMU_MSG|NULL");
	sqlite3_close(db);
	store_close(s);
}

/* The unique index is (platform, room_id, cid): Douyu room 9999 and Bilibili room 9999 may
 * carry the same cid, each platform's room deduplicates on its own. */
static void dedup_platforms(void)
{
	char p[128];
	struct store *s;
	ASSERT_EQ(open_plain(db_path(p, sizeof(p)), &s), 0);
	struct record d = mkrec(9999, 10, "chatmsg", "same");
	struct record b = mkrec(9999, 11, "DANMU_MSG", "same");
	b.platform = "bilibili";
	ASSERT_EQ(store_append(s, &d), 0);
	ASSERT_EQ(store_append(s, &b), 0);
	ASSERT_EQ(store_append(s, &b), 0); /* Bilibili's duplicate */
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_EQ(store_append(s, &d), 0); /* Douyu's, in a later flush */
	ASSERT_EQ(store_flush(s, 0), 0);
	struct store_stats st;
	store_get_stats(s, &st);
	ASSERT_EQ(st.committed, 2);
	ASSERT_EQ(st.duplicates, 2);
	store_close(s);
	sqlite3 *db = db_open(p);
	ASSERT(db);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages WHERE room_id = 9999 AND cid = 'same'"),
	          2);
	ASSERT_EQ(q_int(db, "SELECT count(DISTINCT platform) FROM messages"), 2);
	/* The index itself refuses a third copy, whoever writes it. */
	ASSERT_EQ(sqlite3_exec(db, "INSERT INTO messages(room_id, ts, type, cid, data, platform) "
	                           "VALUES (9999, 12, 'DANMU_MSG', 'same', '{}', 'bilibili')",
	                       NULL, NULL, NULL),
	          SQLITE_CONSTRAINT);
	sqlite3_close(db);
}
static void dedup(void)
{
	char p[128];
	struct store *s;
	ASSERT_EQ(open_plain(db_path(p, sizeof(p)), &s), 0);
	struct record a = mkrec(1, 10, "chatmsg", "dup");
	struct record b = mkrec(2, 11, "chatmsg", "dup"); /* same cid, other room: kept */
	struct record n = mkrec(1, 12, "uenter", NULL);
	ASSERT_EQ(store_append(s, &a), 0);
	ASSERT_EQ(store_append(s, &a), 0); /* duplicate within one flush */
	ASSERT_EQ(store_append(s, &b), 0);
	ASSERT_EQ(store_append(s, &n), 0);
	ASSERT_EQ(store_append(s, &n), 0); /* NULL cid: never deduplicated */
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_EQ(store_append(s, &a), 0); /* duplicate across flushes */
	ASSERT_EQ(store_flush(s, 0), 0);
	struct store_stats st;
	store_get_stats(s, &st);
	ASSERT_EQ(st.committed, 4);
	ASSERT_EQ(st.duplicates, 2);
	store_close(s);

	sqlite3 *db = db_open(p);
	ASSERT(db);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages"), 4);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages WHERE cid IS NULL"), 2);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages WHERE cid = 'dup'"), 2);
	sqlite3_close(db);
}

static void sessions(void)
{
	char p[128], t[256];
	struct store *s;
	ASSERT_EQ(open_plain(db_path(p, sizeof(p)), &s), 0);
	int64_t a = store_session_begin(s, "douyu", 100, "wss://a/", 1000);
	int64_t b = store_session_begin(s, "douyu", 200, "wss://b/", 1100);
	ASSERT_EQ(a, 1);
	ASSERT_EQ(b, 2);
	ASSERT_EQ(store_session_joined(s, a, 1050), 0);
	ASSERT_EQ(store_session_end(s, a, 2000, "server closed"), 0);
	ASSERT_EQ(store_session_joined(s, 0, 1), -EINVAL);
	ASSERT_EQ(store_session_end(s, -1, 1, "x"), -EINVAL);
	struct store_stats st;
	store_get_stats(s, &st);
	ASSERT_EQ(st.session_edges, 0); /* counted at COMMIT, not at queue time */
	ASSERT_EQ(store_flush(s, 0), 0);
	store_get_stats(s, &st);
	ASSERT_EQ(st.committed, 0); /* message rows only */
	ASSERT_EQ(st.session_edges, 2); /* a joined and an end; beginnings are new rows */
	store_close(s);

	ASSERT_EQ(open_plain(p, &s), 0);
	int64_t c = store_session_begin(s, "douyu", 100, "wss://c/", 3000);
	ASSERT_EQ(c, 3);
	/* Ids handed out before a flush survive a reopen only if flushed: here c is. */
	ASSERT_EQ(store_session_end(s, c, 4000, NULL), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	store_close(s);

	sqlite3 *db = db_open(p);
	ASSERT(db);
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(id || ' ' || room_id || ' ' || server || ' ' || "
	                     "started_at || ' ' || quote(joined_at) || ' ' || quote(ended_at) || ' "
	                     "' || quote(end_reason) || ' ' || messages, ',') FROM (SELECT * FROM "
	                     "sessions ORDER BY id)",
	                     t, sizeof(t)),
	              "1 100 wss://a/ 1000 1050 2000 'server closed' 0,"
	              "2 200 wss://b/ 1100 NULL NULL NULL 0,"
	              "3 100 wss://c/ 3000 NULL 4000 NULL 0");
	sqlite3_close(db);
	ASSERT_EQ(open_plain(p, &s), 0);
	ASSERT_EQ(store_session_begin(s, "douyu", 1, "x", 1), 4);
	store_close(s); /* unflushed: lost, as documented */
}

static void slices(void)
{
	char p[128];
	struct store *s;
	ASSERT_EQ(open_plain(db_path(p, sizeof(p)), &s), 0);
	for (int i = 0; i < 10; i++) {
		struct record r = mkrec(1, i, "chatmsg", NULL);
		ASSERT_EQ(store_append(s, &r), 0);
	}
	struct store_stats st;
	for (int i = 1; i <= 3; i++) {
		ASSERT_EQ(store_flush(s, 3), -EAGAIN);
		store_get_stats(s, &st);
		ASSERT_EQ(st.committed, 3 * i);
		ASSERT_EQ(st.queued_rows, 10 - 3 * i);
	}
	ASSERT_EQ(store_flush(s, 3), 0);
	store_get_stats(s, &st);
	ASSERT_EQ(st.committed, 10);
	ASSERT_EQ(st.queued_rows, 0);
	ASSERT_EQ(st.queued_bytes, 0);
	/* Exactly max_rows left: the slice empties the queue, so 0, not -EAGAIN. */
	for (int i = 0; i < 3; i++) {
		struct record r = mkrec(1, 100 + i, "chatmsg", NULL);
		ASSERT_EQ(store_append(s, &r), 0);
	}
	ASSERT_EQ(store_flush(s, 3), 0);
	store_close(s);
	sqlite3 *db = db_open(p);
	ASSERT(db);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages"), 13);
	ASSERT_EQ(q_int(db, "SELECT count(DISTINCT ts) FROM messages"), 13);
	sqlite3_close(db);
}

/* sessions.messages counts rows really inserted: a replayed cid (reconnect) is not counted,
 * counts add up across flushes and slices, and a failed flush counts nothing. */
static void session_counts_inserted_rows(void)
{
	char p[128];
	struct store *s;
	ASSERT_EQ(open_plain(db_path(p, sizeof(p)), &s), 0);
	int64_t a = store_session_begin(s, "douyu", 5, "ws://a/", 1);
	int64_t b = store_session_begin(s, "douyu", 6, "ws://b/", 1);
	for (int i = 0; i < 30; i++) {
		char cid[16];
		snprintf(cid, sizeof(cid), "k%d", i % 20); /* 10 duplicates */
		struct record r = mkrec(5, i, "chatmsg", cid);
		r.session_id = a;
		ASSERT_EQ(store_append(s, &r), 0);
		struct record r2 = mkrec(6, i, "uenter", NULL); /* no cid: never deduped */
		r2.session_id = b;
		ASSERT_EQ(store_append(s, &r2), 0);
	}
	ASSERT_EQ(store_flush(s, 7), -EAGAIN);
	int rc;
	while ((rc = store_flush(s, 7)) == -EAGAIN)
		;
	ASSERT_EQ(rc, 0);
	int64_t c = store_session_begin(s, "douyu", 5, "ws://a/", 2);
	for (int i = 0; i < 25; i++) {
		char cid[16];
		snprintf(cid, sizeof(cid), "k%d", i); /* a reconnect replays k0..k19 */
		struct record r = mkrec(5, 100 + i, "chatmsg", cid);
		r.session_id = c;
		ASSERT_EQ(store_append(s, &r), 0);
	}
	ASSERT_EQ(store_session_end(s, c, 3, "shutdown"), 0);
	sqlite3 *other = db_open(p);
	ASSERT(other);
	ASSERT_EQ(exec_sql(other, "BEGIN EXCLUSIVE"), SQLITE_OK);
	ASSERT_EQ(store_flush(s, 0), -EBUSY);
	ASSERT_EQ(exec_sql(other, "ROLLBACK"), SQLITE_OK);
	sqlite3_close(other);
	ASSERT_EQ(store_flush(s, 0), 0);
	store_close(s);
	sqlite3 *db = db_open(p);
	ASSERT(db);
	ASSERT_EQ(q_int(db, "SELECT messages FROM sessions WHERE id = 1"), 20);
	ASSERT_EQ(q_int(db, "SELECT messages FROM sessions WHERE id = 2"), 30);
	ASSERT_EQ(q_int(db, "SELECT messages FROM sessions WHERE id = 3"), 5);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages WHERE session_id = 3"), 5);
	sqlite3_close(db);
}

/* A killed process leaves sessions open; the next recorder closes them at the room's last
 * stored message (or the join/start when it stored none), and leaves closed ones alone. */
static void stale_sessions_closed(void)
{
	char p[128];
	struct store *s;
	ASSERT_EQ(open_plain(db_path(p, sizeof(p)), &s), 0);
	int64_t a = store_session_begin(s, "douyu", 5, "ws://a/", 1000);
	ASSERT_EQ(store_session_joined(s, a, 1100), 0);
	for (int i = 0; i < 3; i++) {
		struct record r = mkrec(5, 2000 + i, "chatmsg", NULL);
		r.session_id = a;
		ASSERT_EQ(store_append(s, &r), 0);
	}
	ASSERT_EQ(store_session_begin(s, "douyu", 6, "ws://b/", 1500), 2); /* never joined, nothing stored */
	int64_t c = store_session_begin(s, "douyu", 7, "ws://c/", 1600);
	ASSERT_EQ(store_session_end(s, c, 1700, "shutdown"), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	store_close(s); /* as if killed: a and b stay open */

	ASSERT_EQ(open_plain(p, &s), 0);
	ASSERT_EQ(store_end_stale_sessions(s, "unclean stop"), 2);
	ASSERT_EQ(store_end_stale_sessions(s, "unclean stop"), 0);
	store_close(s);
	sqlite3 *db = db_open(p);
	ASSERT(db);
	char t[256];
	ASSERT_STR_EQ(q_text(db,
			     "SELECT group_concat(id || ' ' || ended_at || ' ' || end_reason, ',') "
			     "FROM (SELECT * FROM sessions ORDER BY id)",
			     t, sizeof(t)),
		      "1 2002 unclean stop,2 1500 unclean stop,3 1700 shutdown");
	sqlite3_close(db);
}

/* A stale session ends at the last message of its own platform's room, not at a later one of
 * the other platform's room with the same id. */
static void stale_sessions_per_platform(void)
{
	char p[128], t[256];
	struct store *s;
	ASSERT_EQ(open_plain(db_path(p, sizeof(p)), &s), 0);
	int64_t a = store_session_begin(s, "douyu", 5, "ws://a/", 1000);
	int64_t b = store_session_begin(s, "bilibili", 5, "wss://b/", 1000);
	struct record r = mkrec(5, 2000, "chatmsg", NULL);
	r.session_id = a;
	ASSERT_EQ(store_append(s, &r), 0);
	r = mkrec(5, 9000, "DANMU_MSG", NULL);
	r.platform = "bilibili";
	r.session_id = b;
	ASSERT_EQ(store_append(s, &r), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_EQ(store_end_stale_sessions(s, "unclean stop"), 2);
	store_close(s);
	sqlite3 *db = db_open(p);
	ASSERT(db);
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(platform || ' ' || ended_at, ',') FROM (SELECT * "
	                     "FROM sessions ORDER BY id)",
	                     t, sizeof(t)),
	              "douyu 2000,bilibili 9000");
	sqlite3_close(db);
}

static void locked_keeps_queue(void)
{
	char p[128];
	struct store *s;
	ASSERT_EQ(open_plain(db_path(p, sizeof(p)), &s), 0);
	int64_t sid = store_session_begin(s, "douyu", 7, "wss://x/", 1);
	ASSERT_EQ(store_room(s, "douyu", 7, 0, "seven", 1), 0);
	for (int i = 0; i < 50; i++) {
		char cid[16];
		snprintf(cid, sizeof(cid), "c%d", i);
		struct record r = mkrec(7, i, "chatmsg", cid);
		r.session_id = sid;
		ASSERT_EQ(store_append(s, &r), 0);
	}
	ASSERT_EQ(store_session_end(s, sid, 99, "shutdown"), 0);
	struct store_stats before;
	store_get_stats(s, &before);
	ASSERT_EQ(before.queued_rows, 53);

	sqlite3 *other = db_open(p);
	ASSERT(other);
	ASSERT_EQ(exec_sql(other, "BEGIN EXCLUSIVE"), SQLITE_OK);
	ASSERT_EQ(store_flush(s, 0), -EBUSY);
	ASSERT_EQ(store_flush(s, 10), -EBUSY);
	struct store_stats st;
	store_get_stats(s, &st);
	ASSERT_EQ(st.queued_rows, before.queued_rows);
	ASSERT_EQ(st.queued_bytes, before.queued_bytes);
	ASSERT_EQ(st.committed, 0);
	ASSERT_EQ(st.failed_flushes, 2);
	ASSERT(strstr(store_last_error(s), "locked"));
	ASSERT_EQ(exec_sql(other, "ROLLBACK"), SQLITE_OK);

	ASSERT_EQ(store_flush(s, 0), 0);
	store_get_stats(s, &st);
	ASSERT_EQ(st.queued_rows, 0);
	ASSERT_EQ(st.committed, 50);
	ASSERT_EQ(st.duplicates, 0);
	ASSERT_EQ(q_int(other, "SELECT count(*) FROM messages"), 50);
	ASSERT_EQ(q_int(other, "SELECT count(DISTINCT cid) FROM messages"), 50);
	ASSERT_EQ(q_int(other, "SELECT count(*) FROM sessions WHERE ended_at = 99"), 1);
	ASSERT_EQ(q_int(other, "SELECT count(*) FROM rooms"), 1);

	/* The lock taken mid-way (after some rows were written in the store's transaction) is
	 * not possible in WAL, so check the other side: a reader does not block the flush. */
	ASSERT_EQ(exec_sql(other, "BEGIN; SELECT count(*) FROM messages;"), SQLITE_OK);
	struct record r = mkrec(7, 1000, "chatmsg", NULL);
	ASSERT_EQ(store_append(s, &r), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_EQ(exec_sql(other, "COMMIT"), SQLITE_OK);
	sqlite3_close(other);
	store_close(s);
}

/* The store's connection hits max_page_count: SQLITE_FULL, as a full disk would. */
static void full_keeps_queue(void)
{
	char p[128];
	struct store *s;
	sqlite3 *db;
	ASSERT_EQ(open_capture(db_path(p, sizeof(p)), NULL, &s, &db), 0);
	ASSERT(db);
	/* Clamped to the current size: the next new page fails. */
	ASSERT_EQ(exec_sql(db, "PRAGMA max_page_count = 1"), SQLITE_OK);
	static char big[3000];
	memset(big, 'a', sizeof(big) - 1);
	for (int i = 0; i < 20; i++) {
		struct record r = mkrec(3, i, "chatmsg", NULL);
		r.text = big;
		ASSERT_EQ(store_append(s, &r), 0);
	}
	ASSERT_EQ(store_flush(s, 0), -ENOSPC);
	struct store_stats st;
	store_get_stats(s, &st);
	ASSERT_EQ(st.queued_rows, 20);
	ASSERT_EQ(st.committed, 0);
	ASSERT_EQ(st.failed_flushes, 1);
	ASSERT(strstr(store_last_error(s), "full"));
	ASSERT_EQ(exec_sql(db, "PRAGMA max_page_count = 1000000"), SQLITE_OK);
	ASSERT_EQ(store_flush(s, 0), 0);
	store_get_stats(s, &st);
	ASSERT_EQ(st.queued_rows, 0);
	ASSERT_EQ(st.committed, 20);

	/* Read-only: -EROFS, queue kept. */
	ASSERT_EQ(exec_sql(db, "PRAGMA query_only = 1"), SQLITE_OK);
	struct record r = mkrec(3, 99, "chatmsg", NULL);
	ASSERT_EQ(store_append(s, &r), 0);
	ASSERT_EQ(store_flush(s, 0), -EROFS);
	store_get_stats(s, &st);
	ASSERT_EQ(st.queued_rows, 1);
	ASSERT_EQ(exec_sql(db, "PRAGMA query_only = 0"), SQLITE_OK);
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages"), 21);
	store_close(s);
}

static void queue_bound(void)
{
	char p[128];
	struct store *s;
	struct store_options opt = {.max_queue_bytes = 2000};
	char err[256];
	ASSERT_EQ(store_open(db_path(p, sizeof(p)), &opt, &s, err, sizeof(err)), 0);
	static char text[300];
	memset(text, 'x', sizeof(text) - 1);
	int ok = 0, dropped = 0;
	for (int i = 0; i < 20; i++) {
		struct record r = mkrec(1, i, "chatmsg", NULL);
		r.text = text;
		int rc = store_append(s, &r);
		if (rc == 0) {
			ASSERT_EQ(dropped, 0); /* once full, stays full until a flush */
			ok++;
		} else {
			ASSERT_EQ(rc, -ENOBUFS);
			dropped++;
		}
	}
	ASSERT_GT(ok, 0);
	ASSERT_GT(dropped, 0);
	struct store_stats st;
	store_get_stats(s, &st);
	ASSERT_EQ(st.dropped, dropped);
	ASSERT_EQ(st.queued_rows, ok);
	ASSERT_LE(st.queued_bytes, 2000);
	/* Session and room rows are never dropped, even past the bound. */
	int64_t sid = store_session_begin(s, "douyu", 1, "wss://x/", 5);
	ASSERT_GT(sid, 0);
	ASSERT_EQ(store_session_end(s, sid, 6, "shutdown"), 0);
	ASSERT_EQ(store_room(s, "douyu", 1, 0, "one", 5), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	/* Room again after the flush. */
	struct record r = mkrec(1, 100, "chatmsg", NULL);
	ASSERT_EQ(store_append(s, &r), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	store_get_stats(s, &st);
	ASSERT_EQ(st.committed, ok + 1);
	ASSERT_EQ(st.dropped, dropped);
	store_close(s);
}

static void views(void)
{
	char p[128], t[256], want[256];
	struct store *s;
	ASSERT_EQ(open_plain(db_path(p, sizeof(p)), &s), 0);
	/* Room 5: [1000 s, 2000 s], gap of 3000 s, [5000 s, 6000 s]; a short session inside the
	 * first one must not create a gap. Room 6: back to back, no gap. */
	int64_t a = store_session_begin(s, "douyu", 5, "wss://a/", 1000000);
	ASSERT_EQ(store_session_joined(s, a, 1000000), 0);
	int64_t in = store_session_begin(s, "douyu", 5, "wss://a/", 1100000);
	ASSERT_EQ(store_session_joined(s, in, 1100000), 0);
	ASSERT_EQ(store_session_end(s, in, 1200000, "x"), 0);
	ASSERT_EQ(store_session_end(s, a, 2000000, "server closed"), 0);
	int64_t b = store_session_begin(s, "douyu", 5, "wss://a/", 4999000);
	ASSERT_EQ(store_session_joined(s, b, 5000000), 0); /* coverage starts at the join */
	ASSERT_EQ(store_session_end(s, b, 6000000, "shutdown"), 0);
	int64_t c = store_session_begin(s, "douyu", 6, "wss://a/", 1000000);
	ASSERT_EQ(store_session_joined(s, c, 1000000), 0);
	ASSERT_EQ(store_session_end(s, c, 2000000, "x"), 0);
	int64_t d = store_session_begin(s, "douyu", 6, "wss://a/", 2000000);
	ASSERT_EQ(store_session_joined(s, d, 2000000), 0);
	ASSERT_GT(d, 0); /* still live */

	struct record m = mkrec(5, 1500000, "chatmsg", "m1");
	m.has_uid = true;
	m.uid = 77;
	m.nick = "n";
	m.has_level = true;
	m.level = 3;
	m.text = "hello";
	ASSERT_EQ(store_append(s, &m), 0);
	struct record g = mkrec(5, 1600000, "dgb", NULL);
	g.has_uid = true;
	g.uid = 78;
	g.nick = "giver";
	g.data = "{\"type\":\"dgb\",\"gfid\":\"824\",\"gfn\":\"粉丝荧光棒\",\"gfcnt\":\"1\","
	         "\"hits\":\"5\"}";
	g.data_len = strlen(g.data);
	ASSERT_EQ(store_append(s, &g), 0);
	struct record u = mkrec(5, 1700000, "uenter", NULL);
	ASSERT_EQ(store_append(s, &u), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	store_close(s);

	sqlite3 *db = db_open(p);
	ASSERT(db);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM gaps"), 1);
	ASSERT_STR_EQ(q_text(db, "SELECT room_id || '|' || seconds FROM gaps", t, sizeof(t)),
	              "5|3000.0");
	q_text(db,
	       "SELECT datetime(2000, 'unixepoch', 'localtime') || '|' || datetime(5000, "
	       "'unixepoch', 'localtime')",
	       want, sizeof(want));
	ASSERT_STR_EQ(q_text(db, "SELECT gap_from || '|' || gap_to FROM gaps", t, sizeof(t)), want);

	ASSERT_EQ(q_int(db, "SELECT count(*) FROM chat"), 1);
	q_text(db, "SELECT datetime(1500, 'unixepoch', 'localtime')", want, sizeof(want));
	ASSERT_STR_EQ(q_text(db, "SELECT time FROM chat", t, sizeof(t)), want);
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT room_id || '|' || uid || '|' || nick || '|' || level || '|' "
	                     "|| text FROM chat",
	                     t, sizeof(t)),
	              "5|77|n|3|hello");
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM gifts"), 1);
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT room_id || '|' || uid || '|' || nick || '|' || gift_id || '|' "
	                     "|| gift_name || '|' || count || '|' || hits FROM gifts",
	                     t, sizeof(t)),
	              "5|78|giver|824|粉丝荧光棒|1|5");
	sqlite3_close(db);
}

/* ---- schema v2: migration, full-text index, views ---- */

static int64_t fts_hits(sqlite3 *db, const char *phrase)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH '%s'",
	         phrase);
	return q_int(db, sql);
}

/* The FTS5 check that compares the index with its content, row by row. */
static int fts_consistent(sqlite3 *db)
{
	return exec_sql(db, "INSERT INTO messages_fts(messages_fts, rank) VALUES "
	                    "('integrity-check', 1)");
}

static struct record chatrec(int64_t room, int64_t ts, const char *cid, const char *text)
{
	struct record r = mkrec(room, ts, "chatmsg", cid);
	r.text = text;
	r.has_uid = true;
	r.uid = 1000 + ts % 7;
	r.nick = "n";
	return r;
}

/*
 * tests/data/store_v1.sql is a database that danmakud with schema v1 recorded (two rooms, one
 * reconnect each), as sqlite3 .dump wrote it. Opening it migrates it through v2 to v3 in
 * place: data kept, new views and indexes, no full-text index unless asked (KEEP on an
 * existing database), then on and off again with the index following inserts and deletes.
 */
static void migrate_v1(void)
{
	char p[128];
	size_t len;
	char *sql = test_read_file(TEST_DATA_DIR "/store_v1.sql", &len);
	ASSERT(sql);
	sqlite3 *db = NULL;
	ASSERT_EQ(sqlite3_open(db_path(p, sizeof(p)), &db), SQLITE_OK);
	int rc = exec_sql(db, sql);
	free(sql);
	ASSERT_EQ(rc, SQLITE_OK);
	ASSERT_EQ(q_int(db, "PRAGMA user_version"), 1);
	int64_t n_msg = q_int(db, "SELECT count(*) FROM messages");
	int64_t n_chat = q_int(db, "SELECT count(*) FROM messages WHERE text IS NOT NULL");
	ASSERT_GT(n_chat, 0);
	/* A v1 view that v2 replaces: gaps from session starts. */
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM pragma_table_info('gaps')"), 4);
	sqlite3_close(db);

	struct store *s;
	ASSERT_EQ(open_plain(p, &s), 0);
	ASSERT(!store_has_fts(s));
	store_close(s);
	db = db_open(p);
	ASSERT(db);
	ASSERT_EQ(q_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages"), n_msg);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages WHERE platform = 'douyu'"), n_msg);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'view' AND name IN "
	                    "('chat', 'gifts', 'gaps', 'live', 'daily', 'room_stats', "
	                    "'superchats')"),
	          7);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name IN "
	                    "('messages_uid_ts', 'messages_live', 'sessions_room_platform_started', "
	                    "'messages_platform_room_cid')"),
	          4);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'messages_fts%'"), 0);
	/* Each room of the dump reconnected once: one gap each, after 'connection reset'. */
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM gaps WHERE reason = 'connection reset' AND "
	                    "seconds > 0 AND seconds < 60"),
	          2);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM chat"),
	          q_int(db, "SELECT count(*) FROM messages WHERE type = 'chatmsg'"));
	ASSERT_EQ(q_int(db, "SELECT sum(messages) FROM room_stats"),
	          q_int(db, "SELECT count(*) FROM messages"));
	sqlite3_close(db);

	/* Switch the index on: every existing chat row is indexed. */
	struct store_options on = {.fts = STORE_FTS_ON}, off = {.fts = STORE_FTS_OFF};
	ASSERT_EQ(open_capture(p, &on, &s, &db), 0);
	ASSERT(store_has_fts(s));
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages_fts_docsize"), n_chat);
	ASSERT_EQ(fts_hits(db, "不会打线"),
	          q_int(db, "SELECT count(*) FROM messages WHERE text LIKE '%不会打线%'"));
	ASSERT_GT(fts_hits(db, "不会打线"), 0);
	ASSERT_EQ(fts_consistent(db), SQLITE_OK);
	struct record r = chatrec(9999, 2000000000000, "new1", "一条新的弹幕消息");
	ASSERT_EQ(store_append(s, &r), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_EQ(fts_hits(db, "新的弹幕"), 1);
	ASSERT_EQ(fts_consistent(db), SQLITE_OK);
	store_close(s);
	/* The index stays on for KEEP, and goes with OFF (table, shadow tables, triggers). */
	ASSERT_EQ(open_plain(p, &s), 0);
	ASSERT(store_has_fts(s));
	store_close(s);
	ASSERT_EQ(open_capture(p, &off, &s, &db), 0);
	ASSERT(!store_has_fts(s));
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'messages_fts%'"), 0);
	r = chatrec(9999, 2000000000001, "new2", "关掉以后还能写");
	ASSERT_EQ(store_append(s, &r), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages"), n_msg + 2);
	store_close(s);
	ASSERT_EQ(open_plain(p, &s), 0);
	ASSERT(!store_has_fts(s));
	store_close(s);
}


/* ---- schema v3: migrating what the v2 release wrote ---- */

/* The first column of the first row, malloc'd (NULL on error or no row). */
static char *q_dup(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	char *out = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		printf("# prepare %s: %s\n", sql, sqlite3_errmsg(db));
		return NULL;
	}
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		out = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return out;
}

/* Every row of the v2 tables, every column v2 had, exactly (quote() keeps types apart). */
#define V2_MESSAGES                                                                                \
	"SELECT group_concat(quote(id) || ',' || quote(room_id) || ',' || quote(ts) || ',' || "   \
	"quote(type) || ',' || quote(uid) || ',' || quote(nick) || ',' || quote(level) || ',' || " \
	"quote(text) || ',' || quote(cid) || ',' || quote(session_id) || ',' || quote(data), "     \
	"char(10)) FROM (SELECT * FROM messages ORDER BY id)"
#define V2_SESSIONS                                                                                \
	"SELECT group_concat(quote(id) || ',' || quote(room_id) || ',' || quote(server) || ',' || " \
	"quote(started_at) || ',' || quote(joined_at) || ',' || quote(ended_at) || ',' || "        \
	"quote(end_reason) || ',' || quote(messages), char(10)) FROM (SELECT * FROM sessions "     \
	"ORDER BY id)"
#define V2_ROOMS                                                                                   \
	"SELECT group_concat(quote(room_id) || ',' || quote(label) || ',' || quote(added_at), "    \
	"char(10)) FROM (SELECT * FROM rooms ORDER BY room_id)"
/* The schema as text: every object but SQLite's automatic indexes (their names follow the
 * table's history, not its definition). */
#define SCHEMA                                                                                     \
	"SELECT group_concat(type || ' ' || name || ' ' || tbl_name || ' ' || coalesce(sql, ''), " \
	"char(10)) FROM (SELECT * FROM sqlite_schema WHERE name NOT LIKE 'sqlite_autoindex%' "     \
	"ORDER BY name)"

/* Load tests/data/store_v2.sql into a new database file at p; 0 or -1. */
static int load_v2(char *p, size_t n)
{
	size_t len;
	char *sql = test_read_file(TEST_DATA_DIR "/store_v2.sql", &len);
	if (!sql)
		return -1;
	sqlite3 *db = NULL;
	int rc = sqlite3_open(db_path(p, n), &db) == SQLITE_OK ? exec_sql(db, sql) : SQLITE_ERROR;
	free(sql);
	if (rc == SQLITE_OK && q_int(db, "PRAGMA user_version") != 2)
		rc = SQLITE_ERROR;
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

/*
 * tests/data/store_v2.sql was recorded by the v2 release (see its header). Opening it
 * migrates it to v3 in one step: every row and every column kept, session ids kept and
 * continued, every row of every table on platform 'douyu', a schema identical to a new
 * database's, the full-text index still on and consistent, the new unique index refusing a
 * Douyu duplicate and taking the same cid for Bilibili, and the views answering.
 */
static void migrate_v2(void)
{
	char p[128], fresh[128], t[256];
	ASSERT_EQ(load_v2(p, sizeof(p)), 0);
	sqlite3 *db = db_open(p);
	ASSERT(db);
	char *msgs = q_dup(db, V2_MESSAGES), *sess = q_dup(db, V2_SESSIONS);
	char *rooms = q_dup(db, V2_ROOMS);
	int64_t n_msg = q_int(db, "SELECT count(*) FROM messages");
	int64_t n_chat = q_int(db, "SELECT count(*) FROM messages WHERE type = 'chatmsg'");
	int64_t n_open = q_int(db, "SELECT count(*) FROM sessions WHERE ended_at IS NULL");
	sqlite3_close(db);
	ASSERT(msgs && sess && rooms);
	ASSERT_GT(n_chat, 0);
	ASSERT_GT(n_open, 0);

	struct store *s;
	ASSERT_EQ(open_capture(p, NULL, &s, &db), 0);
	ASSERT(store_has_fts(s)); /* KEEP: it had the index */
	ASSERT_EQ(q_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	char *msgs2 = q_dup(db, V2_MESSAGES), *sess2 = q_dup(db, V2_SESSIONS);
	char *rooms2 = q_dup(db, V2_ROOMS);
	int same = msgs2 && sess2 && rooms2 && strcmp(msgs, msgs2) == 0 &&
	           strcmp(sess, sess2) == 0 && strcmp(rooms, rooms2) == 0;
	free(msgs);
	free(sess);
	free(rooms);
	free(msgs2);
	free(sess2);
	free(rooms2);
	ASSERT(same);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages WHERE platform = 'douyu' AND decoded IS "
	                    "NULL"),
	          n_msg);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM sessions WHERE platform <> 'douyu'"), 0);
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(platform || ' ' || room_id || ' ' || "
	                     "quote(short_id) || ' ' || label, ',') FROM (SELECT * FROM rooms ORDER "
	                     "BY room_id)",
	                     t, sizeof(t)),
	              "douyu 9999 NULL 测试房间,douyu 288016 NULL second room");
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check "
	                    "= 'ok'"),
	          1);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages_fts_docsize"),
	          q_int(db, "SELECT count(*) FROM messages WHERE text IS NOT NULL"));
	ASSERT_EQ(fts_consistent(db), SQLITE_OK);
	ASSERT_GT(fts_hits(db, "不会打线"), 0);

	/* The schema is exactly a new database's. */
	struct store *f;
	sqlite3 *fdb;
	ASSERT_EQ(open_capture(db_path(fresh, sizeof(fresh)), NULL, &f, &fdb), 0);
	char *a = q_dup(db, SCHEMA), *b = q_dup(fdb, SCHEMA);
	same = a && b && strcmp(a, b) == 0;
	if (!same)
		printf("# migrated:\n%s\n# new:\n%s\n", a ? a : "(null)", b ? b : "(null)");
	free(a);
	free(b);
	store_close(f);
	ASSERT(same);

	/* The views answer over the migrated rows. */
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM chat"), n_chat);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM chat WHERE platform = 'douyu' AND masked = 0"),
	          n_chat);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM gifts"),
	          q_int(db, "SELECT count(*) FROM messages WHERE type = 'dgb'"));
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM gifts WHERE value_cny IS NULL AND coin_type IS "
	                    "NULL AND gift_name = '粉丝荧光棒' AND count = 10"),
	          q_int(db, "SELECT count(*) FROM messages WHERE type = 'dgb'"));
	/* Paid comm_chatmsg only (the box notice has cprice 0): 1000 fen, 30 s. */
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM superchats"),
	          q_int(db, "SELECT count(*) FROM messages WHERE type = 'comm_chatmsg' AND "
	                    "data LIKE '%\"cprice\":\"1000\"%'"));
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT DISTINCT platform || ' ' || uid || ' ' || nick || ' ' || text "
	                     "|| ' ' || price_cny || ' ' || duration_s FROM superchats",
	                     t, sizeof(t)),
	              "douyu 110510743 小爷话不多 卡着谢这么多遍 10.0 30");
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM live"),
	          q_int(db, "SELECT count(*) FROM messages WHERE type = 'rss'"));
	ASSERT_EQ(q_int(db, "SELECT sum(messages) FROM daily"), n_msg);
	ASSERT_EQ(q_int(db, "SELECT sum(messages) FROM room_stats"), n_msg);
	ASSERT_EQ(q_int(db, "SELECT sum(live) FROM room_stats WHERE platform = 'douyu'"), 2);
	/* Each room reconnected once, and the second run restarted it: two gaps each. */
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM gaps WHERE platform = 'douyu' AND reason IN "
	                    "('connection reset', 'shutdown')"),
	          4);

	/* Session ids continue; the (platform, room_id, cid) index deduplicates per platform. */
	ASSERT_EQ(store_end_stale_sessions(s, "unclean stop"), n_open);
	int64_t max_sid = q_int(db, "SELECT max(id) FROM sessions");
	ASSERT_EQ(store_session_begin(s, "bilibili", 9999, "wss://b/", 1), max_sid + 1);
	char cid[64];
	q_text(db, "SELECT cid FROM messages WHERE room_id = 9999 AND cid IS NOT NULL LIMIT 1", cid,
	       sizeof(cid));
	struct record d = mkrec(9999, 1, "chatmsg", cid);
	struct record bl = mkrec(9999, 1, "DANMU_MSG", cid);
	bl.platform = "bilibili";
	ASSERT_EQ(store_append(s, &d), 0);
	ASSERT_EQ(store_append(s, &bl), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	struct store_stats st;
	store_get_stats(s, &st);
	ASSERT_EQ(st.duplicates, 1);
	ASSERT_EQ(st.committed, 1);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages"), n_msg + 1);
	store_close(s);
}

/*
 * A migration that fails part-way leaves the database exactly as it was (one transaction):
 * once early (a table in the way of the rooms rebuild), once late (a view in the way of the
 * last views, after the table texts were rewritten under writable_schema and schema_version
 * moved). With the obstacle gone, the same file migrates.
 */
static void migrate_v2_rolls_back(void)
{
	static const char *const obstacles[] = {
	    "CREATE TABLE rooms_v2(x)",
	    "CREATE VIEW superchats AS SELECT 1",
	};
	static const char *const names[] = {"rooms_v2", "superchats"};
	for (size_t i = 0; i < 2; i++) {
		char p[128], err[256] = "";
		ASSERT_EQ(load_v2(p, sizeof(p)), 0);
		sqlite3 *db = db_open(p);
		ASSERT(db);
		ASSERT_EQ(exec_sql(db, obstacles[i]), SQLITE_OK);
		char *schema = q_dup(db, SCHEMA), *msgs = q_dup(db, V2_MESSAGES);
		sqlite3_close(db);
		struct store *s;
		int rc = store_open(p, NULL, &s, err, sizeof(err));
		db = db_open(p);
		char *schema2 = db ? q_dup(db, SCHEMA) : NULL, *msgs2 = db ? q_dup(db, V2_MESSAGES) : NULL;
		int64_t version = db ? q_int(db, "PRAGMA user_version") : -1;
		int64_t ok = db ? q_int(db, "SELECT count(*) FROM pragma_integrity_check WHERE "
		                            "integrity_check = 'ok'")
		                : -1;
		int same = schema && msgs && schema2 && msgs2 && strcmp(schema, schema2) == 0 &&
		           strcmp(msgs, msgs2) == 0;
		free(schema);
		free(msgs);
		free(schema2);
		free(msgs2);
		ASSERT(db);
		ASSERT_LT(rc, 0);
		ASSERT(s == NULL);
		ASSERT(strstr(err, names[i]));
		ASSERT_EQ(version, 2);
		ASSERT_EQ(ok, 1);
		ASSERT(same);
		char sql[64];
		snprintf(sql, sizeof(sql), "DROP %s %s", i == 0 ? "TABLE" : "VIEW", names[i]);
		ASSERT_EQ(exec_sql(db, sql), SQLITE_OK);
		sqlite3_close(db);
		ASSERT_EQ(open_plain(p, &s), 0);
		store_close(s);
		db = db_open(p);
		ASSERT(db);
		ASSERT_EQ(q_int(db, "PRAGMA user_version"), 3);
		sqlite3_close(db);
	}
}

static int make_defensive(sqlite3 *db, char **errmsg, const struct sqlite3_api_routines *api)
{
	(void)errmsg;
	(void)api;
	captured = db;
	sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
	return SQLITE_OK;
}

/* An SQLite that is defensive by default (writes to sqlite_master refused) still migrates,
 * with the v3 comments, and stays defensive afterwards. */
static void migrate_v2_defensive(void)
{
	char p[128], err[256], big[4096];
	ASSERT_EQ(load_v2(p, sizeof(p)), 0);
	struct store *s;
	captured = NULL;
	sqlite3_auto_extension((void (*)(void))make_defensive);
	int rc = store_open(p, NULL, &s, err, sizeof(err));
	sqlite3_reset_auto_extension();
	if (rc < 0)
		printf("# store_open: %s\n", err);
	ASSERT_EQ(rc, 0);
	int on = -1;
	sqlite3_db_config(captured, SQLITE_DBCONFIG_DEFENSIVE, -1, &on);
	ASSERT_EQ(on, 1);
	ASSERT(strstr(q_text(captured, "SELECT sql FROM sqlite_master WHERE name = 'messages'", big,
	                     sizeof(big)),
	              "decoded     TEXT"));
	ASSERT_EQ(q_int(captured, "PRAGMA user_version"), 3);
	store_close(s);
}
/* A new database gets the index (the default); it follows inserts, deletes and updates,
 * indexes only rows with text, and needs 3 characters. */
static void fts_new_database(void)
{
	char p[128];
	struct store *s;
	sqlite3 *db;
	ASSERT_EQ(open_capture(db_path(p, sizeof(p)), NULL, &s, &db), 0);
	ASSERT(store_has_fts(s));
	struct record a = chatrec(1, 1000, "a", "主播今天状态真好");
	struct record b = chatrec(1, 1001, "b", "Hello World 666");
	struct record u = mkrec(1, 1002, "uenter", NULL);
	ASSERT_EQ(store_append(s, &a), 0);
	ASSERT_EQ(store_append(s, &b), 0);
	ASSERT_EQ(store_append(s, &u), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages_fts_docsize"), 2);
	ASSERT_EQ(fts_hits(db, "状态真好"), 1);
	ASSERT_EQ(fts_hits(db, "hello"), 1); /* ASCII case folds */
	ASSERT_EQ(fts_hits(db, "状态假"), 0);
	/* Two characters are no trigram: the index finds nothing, LIKE on chat does. */
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH '状态'"), 0);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM chat WHERE text LIKE '%状态%'"), 1);
	/* Edits by another program (the store's own connection never edits). */
	sqlite3 *other = db_open(p);
	ASSERT(other);
	ASSERT_EQ(exec_sql(other, "UPDATE messages SET text = '换了一句话' WHERE cid = 'a'"),
	          SQLITE_OK);
	ASSERT_EQ(fts_hits(db, "状态真好"), 0);
	ASSERT_EQ(fts_hits(db, "换了一句"), 1);
	ASSERT_EQ(exec_sql(other, "DELETE FROM messages WHERE cid = 'b'"), SQLITE_OK);
	sqlite3_close(other);
	ASSERT_EQ(fts_hits(db, "world"), 0);
	ASSERT_EQ(fts_consistent(db), SQLITE_OK);
	store_close(s);
	/* OFF for a new database: no index at all. */
	struct store_options off = {.fts = STORE_FTS_OFF};
	ASSERT_EQ(open_capture(db_path(p, sizeof(p)), &off, &s, &db), 0);
	ASSERT(!store_has_fts(s));
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'messages_fts%'"), 0);
	store_close(s);
}

/*
 * The queue is blocks of packed ops: thousands of messages of every size (empty, NULL, one op
 * larger than a block, strings that are not NUL-terminated where a length is given) flushed in
 * slices of changing size come back exactly, in order; the bytes held are whole blocks, and
 * nothing is held once everything is committed.
 */
static void queue_blocks(void)
{
	char p[128];
	struct store *s;
	sqlite3 *db;
	ASSERT_EQ(open_capture(db_path(p, sizeof(p)), NULL, &s, &db), 0);
	enum { N = 5000 };
	static char big[200000];
	memset(big, 'b', sizeof(big));
	/* "abcdef|garbage": only the given lengths may be stored. */
	static const char unterminated[] = "chatmsgXnickYtext with lengthZcid";
	uint64_t sum_text = 0;
	for (int i = 0; i < N; i++) {
		char cid[32], data[64];
		snprintf(cid, sizeof(cid), "c%d", i);
		int dl = snprintf(data, sizeof(data), "{\"i\":%d}", i);
		struct record r = mkrec(7, i, "chatmsg", cid);
		r.data = data;
		r.data_len = (size_t)dl;
		if (i % 3 == 0) {
			r.type = unterminated;
			r.type_len = 7;
			r.nick = unterminated + 8;
			r.nick_len = 4;
			r.text = unterminated + 13;
			r.text_len = 16;
			r.cid = cid;
			r.cid_len = strlen(cid);
		} else if (i % 3 == 1) {
			r.text = i % 2 ? "" : NULL;
		} else {
			r.text = "x";
		}
		if (i == 1234) {
			r.data = big; /* not JSON, but data is stored as given */
			r.data_len = sizeof(big);
		}
		ASSERT_EQ(store_append(s, &r), 0);
		sum_text += r.text ? (r.text_len ? r.text_len : strlen(r.text)) : 0;
	}
	struct store_stats st;
	store_get_stats(s, &st);
	ASSERT_EQ(st.queued_rows, N);
	/* Two blocks at least (one is the big op's own), and at most one per 64 ops here. */
	ASSERT_GT(st.queued_bytes, sizeof(big));
	ASSERT_LT(st.queued_bytes, sizeof(big) + (N / 64 + 2) * ((size_t)64 << 10));
	size_t slice = 1;
	int rc;
	while ((rc = store_flush(s, slice)) == -EAGAIN)
		slice = slice * 3 % 1000 + 1;
	ASSERT_EQ(rc, 0);
	store_get_stats(s, &st);
	ASSERT_EQ(st.queued_rows, 0);
	ASSERT_EQ(st.queued_bytes, 0);
	ASSERT_EQ(st.committed, N);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages"), N);
	/* In order: ids follow ts, and each row's data is its own. */
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages WHERE id != ts + 1"), 0);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages WHERE id != 1235 AND "
	                    "data != '{\"i\":' || ts || '}'"),
	          0);
	ASSERT_EQ(q_int(db, "SELECT length(data) FROM messages WHERE ts = 1234"), sizeof(big));
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages WHERE ts % 3 = 0 AND type = 'chatmsg' "
	                    "AND nick = 'nick' AND text = 'text with length' AND cid = 'c' || ts"),
	          (N + 2) / 3);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages WHERE ts % 3 = 1 AND ts % 2 = 0 AND "
	                    "text IS NULL"),
	          q_int(db, "SELECT count(*) FROM messages WHERE ts % 6 = 4"));
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages WHERE ts % 6 = 1 AND text = ''"),
	          q_int(db, "SELECT count(*) FROM messages WHERE ts % 6 = 1"));
	ASSERT_EQ(q_int(db, "SELECT sum(length(text)) FROM messages"), (int64_t)sum_text);
	/* Empty again, a new message holds exactly one block (the kept one, or a new one). */
	struct record r = mkrec(7, N, "chatmsg", "again");
	ASSERT_EQ(store_append(s, &r), 0);
	store_get_stats(s, &st);
	ASSERT_EQ(st.queued_bytes, (uint64_t)64 << 10);
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_EQ(fts_consistent(db), SQLITE_OK);
	store_close(s);
}

/*
 * A time budget ends the slice at the first clock check past it (every 32 rows) and leaves the
 * transaction open: with a budget of 1 ns every call writes exactly 32 rows, nothing is
 * visible to a reader (or counted) until the transaction holds max_rows or reaches the end of
 * the queue, and then all of it is, index included. Rows queued while it is open join it.
 */
static void flush_budget(void)
{
	char p[128];
	struct store *s;
	sqlite3 *db;
	ASSERT_EQ(open_capture(db_path(p, sizeof(p)), NULL, &s, &db), 0);
	sqlite3 *reader = db_open(p);
	ASSERT(reader);
	for (int i = 0; i < 100; i++) {
		struct record r = chatrec(1, i, NULL, "预算内的弹幕");
		ASSERT_EQ(store_append(s, &r), 0);
	}
	struct store_stats st;
	ASSERT_EQ(store_flush_for(s, 0, 1), -EAGAIN);
	ASSERT_EQ(q_int(reader, "SELECT count(*) FROM messages"), 0);
	store_get_stats(s, &st);
	ASSERT_EQ(st.committed, 0);
	ASSERT_EQ(st.queued_rows, 100);
	ASSERT_EQ(store_flush_for(s, 0, 1), -EAGAIN);
	ASSERT_EQ(store_flush_for(s, 0, 1), -EAGAIN);
	/* Queued while the transaction is open: it joins. */
	for (int i = 100; i < 110; i++) {
		struct record r = chatrec(1, i, NULL, "预算内的弹幕");
		ASSERT_EQ(store_append(s, &r), 0);
	}
	ASSERT_EQ(store_flush_for(s, 0, 1), 0); /* 14 left: the end of the queue, commit */
	ASSERT_EQ(q_int(reader, "SELECT count(*) FROM messages"), 110);
	ASSERT_EQ(fts_hits(reader, "预算内"), 110);
	store_get_stats(s, &st);
	ASSERT_EQ(st.committed, 110);
	ASSERT_EQ(st.queued_rows, 0);
	ASSERT_EQ(st.queued_bytes, 0);
	/* max_rows commits a full transaction even when the budget ends the slice. */
	for (int i = 0; i < 100; i++) {
		struct record r = chatrec(1, 200 + i, NULL, "x");
		ASSERT_EQ(store_append(s, &r), 0);
	}
	ASSERT_EQ(store_flush_for(s, 40, 1), -EAGAIN); /* 32 written, open */
	ASSERT_EQ(q_int(reader, "SELECT count(*) FROM messages"), 110);
	ASSERT_EQ(store_flush_for(s, 40, 1), -EAGAIN); /* 8 more: 40, committed */
	ASSERT_EQ(q_int(reader, "SELECT count(*) FROM messages"), 150);
	/* An error while open rolls the whole transaction back; the retry writes it all. */
	ASSERT_EQ(store_flush_for(s, 0, 1), -EAGAIN);
	ASSERT_EQ(exec_sql(db, "PRAGMA query_only = 1"), SQLITE_OK);
	int rc = store_flush_for(s, 0, 1);
	ASSERT(rc == -EROFS || rc == -EIO);
	ASSERT_EQ(exec_sql(db, "PRAGMA query_only = 0"), SQLITE_OK);
	ASSERT_EQ(q_int(reader, "SELECT count(*) FROM messages"), 150);
	store_get_stats(s, &st);
	ASSERT_EQ(st.queued_rows, 60);
	/* A generous budget takes everything in one call. */
	ASSERT_EQ(store_flush_for(s, 0, (uint64_t)60 * 1000000000), 0);
	ASSERT_EQ(q_int(reader, "SELECT count(*) FROM messages"), 210);
	ASSERT_EQ(q_int(reader, "SELECT count(DISTINCT ts) FROM messages"), 210);
	ASSERT_EQ(fts_consistent(reader), SQLITE_OK);
	/* Closing with a transaction open rolls it back: the rows were still only queued. */
	struct record r = chatrec(1, 999, NULL, "y");
	for (int i = 0; i < 40; i++)
		ASSERT_EQ(store_append(s, &r), 0);
	ASSERT_EQ(store_flush_for(s, 0, 1), -EAGAIN);
	store_close(s);
	ASSERT_EQ(q_int(reader, "SELECT count(*) FROM messages"), 210);
	sqlite3_close(reader);
}

/*
 * The full-text index is fed once per transaction, for exactly the rows that transaction
 * inserted: duplicates (ignored) are not indexed twice, rows without text never, a rolled-back
 * flush leaves table and index as they were and the retry indexes everything once; rows deleted
 * at the end of the table (so that SQLite reuses their ids) do not confuse it.
 */
static void fts_fed_per_batch(void)
{
	char p[128];
	struct store *s;
	sqlite3 *db;
	ASSERT_EQ(open_capture(db_path(p, sizeof(p)), NULL, &s, &db), 0);
	/* The triggers are there, for other programs; the store's connection does not run them.
	 * (The feed alone keeps the results below right, trigger or not, since it starts above the
	 * highest indexed row: what the switch saves is the trigger's cost, so check the switch.) */
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name IN "
	                    "('messages_fts_insert', 'messages_fts_delete', 'messages_fts_update')"),
	          3);
	int triggers = -1;
	ASSERT_EQ(sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, -1, &triggers), SQLITE_OK);
	ASSERT_EQ(triggers, 0);
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 50; i++) {
			char cid[16];
			snprintf(cid, sizeof(cid), "d%d", i); /* rounds 1 and 2 are duplicates */
			struct record r = chatrec(2, round * 100 + i, cid, "重复的弹幕不会重复索引");
			ASSERT_EQ(store_append(s, &r), 0);
			struct record u = mkrec(2, round * 100 + i, "uenter", NULL);
			ASSERT_EQ(store_append(s, &u), 0);
		}
	ASSERT_EQ(store_flush(s, 37), -EAGAIN);
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages_fts_docsize"), 50);
	ASSERT_EQ(fts_hits(db, "重复索引"), 50);
	ASSERT_EQ(fts_consistent(db), SQLITE_OK);
	/* Ids reused after another program deleted the newest rows, chat among them (no
	 * AUTOINCREMENT). */
	for (int i = 0; i < 5; i++) {
		struct record c = chatrec(2, 500 + i, NULL, "马上要被删掉");
		ASSERT_EQ(store_append(s, &c), 0);
	}
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_EQ(fts_hits(db, "马上要被删"), 5);
	sqlite3 *other = db_open(p);
	ASSERT(other);
	ASSERT_EQ(exec_sql(other, "DELETE FROM messages WHERE id > (SELECT max(id) - 3 FROM "
	                          "messages)"),
	          SQLITE_OK);
	ASSERT_EQ(fts_hits(db, "马上要被删"), 2);
	struct record r = chatrec(2, 1000, "reused", "复用的编号也进索引");
	ASSERT_EQ(store_append(s, &r), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_EQ(fts_hits(db, "复用的编号"), 1);
	ASSERT_EQ(fts_consistent(db), SQLITE_OK);
	/* Another program's insert is indexed by its trigger at once, and the store's next feed
	 * starts above it. */
	ASSERT_EQ(exec_sql(other, "INSERT INTO messages(platform, room_id, ts, type, text, data) "
	                          "VALUES('bilibili', 3, 5, 'DANMU_MSG', '别的程序写的行', '{}')"),
	          SQLITE_OK);
	ASSERT_EQ(fts_hits(db, "别的程序"), 1);
	r = chatrec(2, 1001, "after-other", "在别人之后写的");
	ASSERT_EQ(store_append(s, &r), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_EQ(fts_hits(db, "别的程序"), 1);
	ASSERT_EQ(fts_hits(db, "在别人之后"), 1);
	ASSERT_EQ(fts_consistent(db), SQLITE_OK);
	/* A flush that fails after its inserts: nothing of it stays, in the table or the index. */
	int64_t rows = q_int(db, "SELECT count(*) FROM messages");
	int64_t docs = q_int(db, "SELECT count(*) FROM messages_fts_docsize");
	ASSERT_EQ(exec_sql(db, "PRAGMA max_page_count = 1"), SQLITE_OK);
	static char big[3000];
	memset(big, 'z', sizeof(big) - 1);
	for (int i = 0; i < 10; i++) {
		struct record c = chatrec(2, 2000 + i, NULL, i == 9 ? big : "满了也不丢");
		ASSERT_EQ(store_append(s, &c), 0);
	}
	ASSERT_EQ(store_flush(s, 0), -ENOSPC);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages"), rows);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages_fts_docsize"), docs);
	ASSERT_EQ(exec_sql(db, "PRAGMA max_page_count = 1000000"), SQLITE_OK);
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_EQ(fts_hits(db, "满了也不丢"), 9);
	ASSERT_EQ(fts_hits(db, "zzzzzz"), 1);
	ASSERT_EQ(fts_consistent(db), SQLITE_OK);
	sqlite3_close(other);
	store_close(s);
}

static void add_session(struct store *s, int64_t room, int64_t start, int64_t joined, int64_t end,
                        const char *reason)
{
	int64_t id = store_session_begin(s, "douyu", room, "ws://x/", start);
	if (joined)
		store_session_joined(s, id, joined);
	if (end)
		store_session_end(s, id, end, reason);
}

/*
 * gaps: coverage is joined_at..ended_at. Room 1: a session that never joined covers nothing;
 * a session killed without ended_at covers up to its last message. Room 2 never disconnected:
 * no gap, and none before its first session either. Room 3: two overlapping sessions, no gap.
 */
static void gaps_semantics(void)
{
	char p[128], t[256];
	struct store *s;
	ASSERT_EQ(open_plain(db_path(p, sizeof(p)), &s), 0);
	add_session(s, 1, 1000000, 1000500, 2000000, "server closed");
	add_session(s, 1, 2001000, 0, 2002000, "tls: handshake"); /* never joined */
	add_session(s, 1, 2003000, 2004000, 0, NULL);              /* killed: no ended_at */
	struct record m = mkrec(1, 2500000, "chatmsg", "k1");
	m.session_id = 3;
	ASSERT_EQ(store_append(s, &m), 0);
	add_session(s, 1, 2600000, 2601000, 2700000, "shutdown");
	add_session(s, 2, 5000000, 5000100, 0, NULL); /* live, never disconnected */
	add_session(s, 3, 1000000, 1000000, 3000000, "server closed");
	add_session(s, 3, 2000000, 2000000, 2500000, "heartbeat timeout");
	add_session(s, 3, 3000000, 3000000, 0, NULL);
	ASSERT_EQ(store_flush(s, 0), 0);
	store_close(s);
	sqlite3 *db = db_open(p);
	ASSERT(db);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM gaps WHERE room_id IN (2, 3)"), 0);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM gaps WHERE room_id = 1"), 2);
	/* server closed at 2000 s, next join 2004 s (the failed attempt covered nothing, and the
	 * reason is that of the session whose coverage ended). */
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT from_ts || ' ' || to_ts || ' ' || seconds || ' ' || reason "
	                     "FROM gaps WHERE room_id = 1 ORDER BY from_ts LIMIT 1",
	                     t, sizeof(t)),
	              "2000000 2004000 4.0 server closed");
	/* The killed session covered up to its message at 2500 s; the next joined at 2601 s. */
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT from_ts || ' ' || to_ts || ' ' || seconds || ' ' || "
	                     "coalesce(reason, 'NULL') FROM gaps WHERE room_id = 1 ORDER BY from_ts "
	                     "DESC LIMIT 1",
	                     t, sizeof(t)),
	              "2500000 2601000 101.0 NULL");
	sqlite3_close(db);
}

/* chat: robot and sent_at; live: ss and ivl; room_stats and daily over a small room. */
static void views_v2(void)
{
	char p[128], t[256], want[256];
	struct store *s;
	ASSERT_EQ(open_plain(db_path(p, sizeof(p)), &s), 0);
	int64_t now = (int64_t)time(NULL) * 1000;
	ASSERT_EQ(store_room(s, "douyu", 7, 0, "seven", now - 3600000), 0);
	ASSERT_EQ(store_room(s, "douyu", 8, 0, NULL, now - 3600000), 0);
	int64_t a = store_session_begin(s, "douyu", 7, "ws://x/", now - 3600000);
	store_session_joined(s, a, now - 3599000);
	store_session_end(s, a, now - 1800000, "connection reset");
	int64_t b = store_session_begin(s, "douyu", 7, "ws://x/", now - 1799000);
	store_session_joined(s, b, now - 1798000);
	struct record c1 = chatrec(7, now - 60000, "c1", "有dms的弹幕");
	c1.session_id = b;
	c1.data = "{\"type\":\"chatmsg\",\"dms\":\"4\",\"cst\":\"1700000000123\"}";
	c1.data_len = strlen(c1.data);
	struct record c2 = chatrec(7, now - 50000, "c2", "没有dms");
	c2.session_id = b;
	c2.data = "{\"type\":\"chatmsg\",\"cst\":\"1700000000\"}";
	c2.data_len = strlen(c2.data);
	struct record c3 = chatrec(7, now - 40000, "c3", "dms为空");
	c3.session_id = b;
	c3.data = "{\"type\":\"chatmsg\",\"dms\":\"\"}";
	c3.data_len = strlen(c3.data);
	struct record rs = mkrec(7, now - 30000, "rss", NULL);
	rs.session_id = b;
	rs.data = "{\"type\":\"rss\",\"ss\":\"1\",\"ivl\":\"1\"}";
	rs.data_len = strlen(rs.data);
	ASSERT_EQ(store_append(s, &c1), 0);
	ASSERT_EQ(store_append(s, &c2), 0);
	ASSERT_EQ(store_append(s, &c3), 0);
	ASSERT_EQ(store_append(s, &rs), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	store_close(s);
	sqlite3 *db = db_open(p);
	ASSERT(db);
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(robot || '/' || coalesce(sent_at, 'NULL'), ' ') "
	                     "FROM (SELECT * FROM chat ORDER BY ts)",
	                     t, sizeof(t)),
	              "0/1700000000123 1/1700000000000 1/NULL");
	ASSERT_STR_EQ(q_text(db, "SELECT room_id || ' ' || live || ' ' || replay FROM live", t,
	                     sizeof(t)),
	              "7 1 1");
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT label || ' ' || live || ' ' || messages || ' ' || sessions || "
	                     "' ' || reconnects_24h || ' ' || (silent_s BETWEEN 25 AND 300) FROM "
	                     "room_stats WHERE room_id = 7",
	                     t, sizeof(t)),
	              "seven 1 4 2 1 1");
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT datetime(%lld, 'unixepoch', 'localtime')",
	         (long long)((now - 1798000) / 1000));
	q_text(db, sql, want, sizeof(want));
	ASSERT_STR_EQ(q_text(db, "SELECT session_start FROM room_stats WHERE room_id = 7", t,
	                     sizeof(t)),
	              want);
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT coalesce(label, 'NULL') || ' ' || live || ' ' || messages || "
	                     "' ' || coalesce(silent_s, 'NULL') FROM room_stats WHERE room_id = 8",
	                     t, sizeof(t)),
	              "NULL 0 0 NULL");
	ASSERT_EQ(q_int(db, "SELECT sum(messages) FROM daily WHERE room_id = 7"), 4);
	ASSERT_EQ(q_int(db, "SELECT sum(chats) FROM daily WHERE room_id = 7"), 3);
	ASSERT_EQ(q_int(db, "SELECT sum(gifts) FROM daily WHERE room_id = 7"), 0);
	sqlite3_close(db);
}


/* A Bilibili record as the platform maps it (type = cmd prefix, data = the message). */
static struct record bili(int64_t room, int64_t ts, const char *type, const char *cid,
                          const char *data)
{
	struct record r = mkrec(room, ts, type, cid);
	r.platform = "bilibili";
	r.data = data;
	r.data_len = strlen(data);
	return r;
}

static char *fixture(const char *name)
{
	char path[512];
	size_t len;
	snprintf(path, sizeof(path), "%s/fixtures/bilibili/%s", SHARED_DIR, name);
	char *s = test_read_file(path, &len);
	if (!s)
		printf("# cannot read %s\n", path);
	return s;
}

/*
 * The v3 views over Bilibili messages (real ones from fixtures/bilibili, mapped as the
 * platform maps them) next to a Douyu room with the same id: chat (masked guests, sent_at),
 * gifts (SEND_GIFT and SEND_GIFT_V2 counted once per tid, value in CNY: gold / 1000, silver 0),
 * superchats (not the _JPN copy), live (LIVE, PREPARING with round 1), daily, room_stats, and
 * gaps that do not let one platform's sessions cover the other's.
 */
static void views_bilibili(void)
{
	static const char *const names[] = {"DANMU_MSG.json", "DANMU_MSG-4-0-2-2-2-0.json",
	                                    "SEND_GIFT.json", "SUPER_CHAT_MESSAGE.json",
	                                    "SUPER_CHAT_MESSAGE_JPN.json", "LIVE.json",
	                                    "PREPARING.json", "GUARD_BUY.json"};
	char *fx[8] = {0};
	for (size_t i = 0; i < 8; i++) {
		fx[i] = fixture(names[i]);
		if (!fx[i])
			goto out;
	}
	char p[128], t[512];
	struct store *s;
	ASSERT_EQ(open_plain(db_path(p, sizeof(p)), &s), 0);
	ASSERT_EQ(store_room(s, "bilibili", 9999, 76, "bili", 1), 0);
	ASSERT_EQ(store_room(s, "douyu", 9999, 0, "dy", 1), 0);
	/* Douyu 9999: [1000 s, 2000 s], [5000 s, 6000 s]. Bilibili 9999: [1500 s, 5500 s], which
	 * must not hide Douyu's gap. */
	add_session(s, 9999, 1000000, 1000000, 2000000, "server closed");
	int64_t dsid = store_session_begin(s, "douyu", 9999, "ws://x/", 5000000);
	store_session_joined(s, dsid, 5000000);
	store_session_end(s, dsid, 6000000, "shutdown");
	int64_t sid = store_session_begin(s, "bilibili", 9999, "wss://b/sub", 1500000);
	store_session_joined(s, sid, 1500000);

	struct record d = mkrec(9999, 1600000, "chatmsg", "d1");
	d.has_uid = true;
	d.uid = 1;
	d.nick = "douyu";
	d.text = "douyu chat";
	d.session_id = 1;
	ASSERT_EQ(store_append(s, &d), 0);
	struct record r[16];
	size_t n = 0;
	r[n] = bili(9999, 1700000, "DANMU_MSG", "dm1", fx[0]);
	r[n].has_uid = true, r[n].uid = INT64_C(77777777771), r[n].nick = "__MOCK_UNAME__";
	r[n].has_level = true, r[n].level = 27, r[n].text = "__MOCK_MESSAGE_CONTENT__";
	n++;
	/* A guest connection's view of a sender: uid 0, name cut to "观***". */
	r[n] = bili(9999, 1700100, "DANMU_MSG", "dm2", fx[1]);
	r[n].has_uid = true, r[n].uid = 0, r[n].nick = "观***", r[n].text = "guest view";
	n++;
	r[n] = bili(9999, 1700200, "SEND_GIFT", "SEND_GIFT:1664028708120000001", fx[2]);
	r[n].has_uid = true, r[n].uid = INT64_C(77777777771), r[n].nick = "__MOCK_UNAME__";
	n++;
	/* A gold gift sent both ways (one tid), and a V2-only one without total_coin. */
	r[n] = bili(9999, 1700300, "SEND_GIFT", "SEND_GIFT:T2",
	            "{\"cmd\":\"SEND_GIFT\",\"data\":{\"giftId\":31036,\"giftName\":\"小花花\","
	            "\"num\":2,\"price\":100,\"coin_type\":\"gold\",\"total_coin\":200,"
	            "\"tid\":\"T2\",\"uid\":5,\"uname\":\"five\"}}");
	r[n].has_uid = true, r[n].uid = 5, r[n].nick = "five";
	n++;
	r[n] = bili(9999, 1700301, "SEND_GIFT_V2", "SEND_GIFT_V2:T2:0",
	            "{\"cmd\":\"SEND_GIFT_V2\",\"data\":{\"pb\":\"x\"}}");
	r[n].decoded = "{\"uname\":\"f***\",\"gift_id\":31036,\"gift_name\":\"小花花\",\"num\":2,"
	               "\"price\":100,\"total_coin\":200,\"coin_type\":\"gold\",\"tid\":\"T2\"}";
	r[n].decoded_len = strlen(r[n].decoded);
	r[n].nick = "f***";
	n++;
	r[n] = bili(9999, 1700400, "SEND_GIFT_V2", "SEND_GIFT_V2:T3:0",
	            "{\"cmd\":\"SEND_GIFT_V2\",\"data\":{\"pb\":\"y\"}}");
	r[n].decoded = "{\"uid\":6,\"uname\":\"six\",\"gift_id\":32000,\"gift_name\":\"盲盒\","
	               "\"num\":3,\"price\":5200,\"coin_type\":\"gold\",\"tid\":\"T3\"}";
	r[n].decoded_len = strlen(r[n].decoded);
	r[n].has_uid = true, r[n].uid = 6, r[n].nick = "six";
	n++;
	r[n] = bili(9999, 1700500, "SUPER_CHAT_MESSAGE", "SUPER_CHAT_MESSAGE:4898587", fx[3]);
	r[n].has_uid = true, r[n].uid = INT64_C(77777777771), r[n].nick = "__MOCK_UNAME__";
	r[n].text = "__MOCK_MESSAGE_CONTENT__";
	n++;
	r[n] = bili(9999, 1700600, "SUPER_CHAT_MESSAGE_JPN", "SUPER_CHAT_MESSAGE_JPN:4898652",
	            fx[4]);
	n++;
	r[n++] = bili(9999, 1700700, "LIVE", NULL, fx[5]);
	r[n++] = bili(9999, 1700800, "PREPARING", NULL, fx[6]);
	r[n++] = bili(9999, 1700900, "GUARD_BUY", NULL, fx[7]);
	for (size_t i = 0; i < n; i++) {
		r[i].session_id = sid;
		ASSERT_EQ(store_append(s, &r[i]), 0);
	}
	ASSERT_EQ(store_flush(s, 0), 0);
	store_close(s);

	sqlite3 *db = db_open(p);
	ASSERT(db);
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(platform || ' ' || uid || ' ' || nick || ' ' || "
	                     "coalesce(level, '-') || ' ' || text || ' ' || robot || ' ' || masked "
	                     "|| ' ' || coalesce(sent_at, '-'), ',') FROM (SELECT * FROM chat WHERE "
	                     "room_id = 9999 ORDER BY ts)",
	                     t, sizeof(t)),
	              "douyu 1 douyu - douyu chat 1 0 -,"
	              "bilibili 77777777771 __MOCK_UNAME__ 27 __MOCK_MESSAGE_CONTENT__ 0 0 "
	              "1662398325906,bilibili 0 观*** - guest view 0 1 1669884799391");
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(coalesce(uid, '-') || ' ' || nick || ' ' || "
	                     "gift_id || ' ' || gift_name || ' ' || count || ' ' || coin_type || ' ' "
	                     "|| value_cny, ',') FROM (SELECT * FROM gifts WHERE platform = "
	                     "'bilibili' AND room_id = 9999 ORDER BY ts)",
	                     t, sizeof(t)),
	              "77777777771 __MOCK_UNAME__ 1 辣条 1 silver 0.0,"
	              "5 five 31036 小花花 2 gold 0.2,6 six 32000 盲盒 3 gold 15.6");
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM gifts WHERE platform = 'douyu'"), 0);
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(platform || ' ' || uid || ' ' || nick || ' ' || "
	                     "text || ' ' || price_cny || ' ' || duration_s, ',') FROM superchats",
	                     t, sizeof(t)),
	              "bilibili 77777777771 __MOCK_UNAME__ __MOCK_MESSAGE_CONTENT__ 30.0 60");
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(platform || ' ' || live || ' ' || replay, ',') FROM "
	                     "(SELECT * FROM live WHERE room_id = 9999 ORDER BY ts)",
	                     t, sizeof(t)),
	              "bilibili 1 0,bilibili 0 1");
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(platform || ' ' || messages || ' ' || chats || ' ' "
	                     "|| chatters || ' ' || gifts, ',') FROM (SELECT * FROM daily WHERE "
	                     "room_id = 9999 ORDER BY platform)",
	                     t, sizeof(t)),
	              "bilibili 11 2 2 3,douyu 1 1 1 0");
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(platform || ' ' || quote(short_id) || ' ' || label "
	                     "|| ' ' || live || ' ' || messages || ' ' || sessions, ',') FROM "
	                     "(SELECT * FROM room_stats ORDER BY platform)",
	                     t, sizeof(t)),
	              "bilibili 76 bili 1 11 1,douyu NULL dy 0 1 2");
	ASSERT_STR_EQ(q_text(db, "SELECT group_concat(platform || ' ' || from_ts || ' ' || to_ts, ',') "
	                         "FROM gaps WHERE room_id = 9999",
	                     t, sizeof(t)),
	              "douyu 2000000 5000000");
	sqlite3_close(db);
out:
	for (size_t i = 0; i < 8; i++)
		free(fx[i]);
}

/* A plan step that reads the whole messages table (under its name or the views' aliases). */
static bool scans_messages(const char *d)
{
	static const char *const names[] = {"SCAN messages", "SCAN m", "SCAN v1"};
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(names[i]);
		if (strncmp(d, names[i], n) == 0 && (d[n] == '\0' || d[n] == ' '))
			return true;
	}
	return false;
}

/* EXPLAIN QUERY PLAN of sql as "detail / detail / ..." into out; *scan: a step reads the
 * whole messages table. */
static const char *plan(sqlite3 *db, const char *sql, char *out, size_t n, bool *scan)
{
	char q[1024];
	sqlite3_stmt *st;
	size_t o = 0;
	snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
	out[0] = '\0';
	*scan = false;
	if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK) {
		snprintf(out, n, "(error: %s)", sqlite3_errmsg(db));
		return out;
	}
	while (sqlite3_step(st) == SQLITE_ROW && o < n) {
		const char *d = (const char *)sqlite3_column_text(st, 3);
		*scan |= scans_messages(d);
		o += (size_t)snprintf(out + o, n - o, "%s%s", o ? " / " : "", d);
	}
	sqlite3_finalize(st);
	return out;
}

/*
 * Every view filtered on room_id (alone, or through "room_id IN (SELECT room_id FROM rooms)"
 * as README's questions over all rooms do) or on uid reaches an index over messages and never
 * scans it: the promise of v2's comments, which v3 keeps by writing each view as one SELECT.
 */
static void views_use_indexes(void)
{
	static const struct {
		const char *sql, *index;
	} q[] = {
	    {"SELECT * FROM chat WHERE room_id = 1 ORDER BY ts DESC, id DESC LIMIT 5",
	     "messages_room_ts"},
	    {"SELECT * FROM chat WHERE room_id IN (SELECT room_id FROM rooms) AND ts >= 5",
	     "messages_room_ts"},
	    {"SELECT * FROM chat WHERE uid = 5 AND platform = 'douyu'", "messages_uid_ts"},
	    {"SELECT * FROM gifts WHERE room_id = 1 AND ts >= 5", "messages_room_ts"},
	    {"SELECT platform, sum(value_cny) FROM gifts WHERE room_id IN (SELECT room_id FROM rooms) "
	     "GROUP BY platform",
	     "messages_room_ts"},
	    {"SELECT * FROM superchats WHERE room_id IN (SELECT room_id FROM rooms) AND ts >= 5",
	     "messages_room_ts"},
	    {"SELECT max(ts) FROM live WHERE room_id = 1 AND live = 1", "messages_live"},
	    {"SELECT * FROM live WHERE room_id IN (SELECT room_id FROM rooms)", "messages_live"},
	    {"SELECT * FROM daily WHERE room_id = 1", "messages_room_ts"},
	    {"SELECT * FROM gaps WHERE room_id = 1", "sessions_room_platform_started"},
	    {"SELECT * FROM room_stats", "messages_room_ts"},
	};
	char p[128], t[2048];
	struct store *s;
	ASSERT_EQ(open_plain(db_path(p, sizeof(p)), &s), 0);
	store_close(s);
	sqlite3 *db = db_open(p);
	ASSERT(db);
	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
		bool scan;
		plan(db, q[i].sql, t, sizeof(t), &scan);
		if (scan || !strstr(t, q[i].index))
			printf("# %s\n#   %s\n", q[i].sql, t);
		ASSERT(!scan);
		ASSERT(strstr(t, q[i].index));
	}
	sqlite3_close(db);
}
static void newer_schema(void)
{
	char p[128];
	struct store *s = (struct store *)&s;
	db_path(p, sizeof(p));
	sqlite3 *db = NULL;
	ASSERT_EQ(sqlite3_open(p, &db), SQLITE_OK);
	char sql[64], want[128];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_SCHEMA_VERSION + 1);
	ASSERT_EQ(exec_sql(db, sql), SQLITE_OK);
	sqlite3_close(db);
	char err[256] = "";
	int rc = store_open(p, NULL, &s, err, sizeof(err));
	ASSERT_LT(rc, 0);
	ASSERT(s == NULL);
	snprintf(want, sizeof(want), "database schema version %d is newer than this danmakud supports (%d)",
	         STORE_SCHEMA_VERSION + 1, STORE_SCHEMA_VERSION);
	ASSERT_STR_EQ(err, want);
	/* Nothing was created in the newer database. */
	db = db_open(p);
	ASSERT(db);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM sqlite_schema"), 0);
	ASSERT_EQ(q_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION + 1);
	sqlite3_close(db);
}

static void open_errors(void)
{
	char p[256], err[256] = "";
	struct store *s;
	/* Not a database. */
	snprintf(p, sizeof(p), "%s/garbage.db", tmpdir);
	FILE *f = fopen(p, "wb");
	ASSERT(f);
	for (int i = 0; i < 512; i++)
		fputs("this is not a database ", f);
	fclose(f);
	ASSERT_EQ(store_open(p, NULL, &s, err, sizeof(err)), -EIO);
	ASSERT(s == NULL);
	ASSERT(strstr(err, "not a database"));
	/* A directory that does not exist. */
	snprintf(p, sizeof(p), "%s/no/such/dir/x.db", tmpdir);
	ASSERT_EQ(store_open(p, NULL, &s, err, sizeof(err)), -EIO);
	ASSERT(strstr(err, "unable to open"));
	/* err may be NULL. */
	ASSERT_EQ(store_open(p, NULL, &s, NULL, 0), -EIO);
	store_close(NULL);
}

static void last_error_never_null(void)
{
	char p[128];
	struct store *s;
	ASSERT_EQ(open_plain(db_path(p, sizeof(p)), &s), 0);
	ASSERT(store_last_error(s) != NULL);
	/* Unflushed rows are freed by close (checked by the sanitizers). */
	struct record r = mkrec(1, 1, "chatmsg", "x");
	ASSERT_EQ(store_append(s, &r), 0);
	ASSERT_GT(store_session_begin(s, "douyu", 1, "x", 1), 0);
	store_close(s);
}

/* ---- shipping (ship.c): the position, retention, giving pages back ---- */

static void shipping_position(void)
{
	char p[128];
	struct store *s;
	sqlite3 *db;
	ASSERT_EQ(open_capture(db_path(p, sizeof(p)), NULL, &s, &db), 0);
	/* Queueing needs the table: refused before store_shipping_get created it. */
	ASSERT_EQ(store_shipped(s, "t1", 5, 2, 1000), -EINVAL);
	int64_t m = -1, se = -1;
	ASSERT_EQ(store_shipping_get(s, "t1", &m, &se), 0);
	ASSERT_EQ(m, 0);
	ASSERT_EQ(se, 0);
	ASSERT_EQ(store_shipped(s, "t1", 5, 2, 1000), 0);
	ASSERT_EQ(store_shipped(s, "t2", 9, 4, 1000), 0);
	ASSERT_EQ(store_shipped(s, "t1", 7, 3, 2000), 0); /* the newest wins */
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_EQ(store_shipping_get(s, "t1", &m, &se), 0);
	ASSERT_EQ(m, 7);
	ASSERT_EQ(se, 3);
	ASSERT_EQ(store_shipping_get(s, "t2", &m, &se), 0);
	ASSERT_EQ(m, 9);
	ASSERT_EQ(q_int(db, "SELECT updated_at FROM shipping WHERE target = 't1'"), 2000);
	/* Not part of the versioned schema: the version is unchanged. */
	ASSERT_EQ(q_int(db, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	store_close(s);
}

static void retain_shipped_only(void)
{
	char p[128];
	struct store *s;
	sqlite3 *db;
	struct store_options o = {.fts = STORE_FTS_ON, .reclaim_space = true};
	ASSERT_EQ(open_capture(db_path(p, sizeof(p)), &o, &s, &db), 0);
	ASSERT_EQ(q_int(db, "PRAGMA auto_vacuum"), 2); /* INCREMENTAL: chosen before WAL */
	ASSERT(store_can_reclaim(s));
	char cid[32], text[64];
	for (int i = 1; i <= 300; i++) {
		snprintf(cid, sizeof(cid), "c%d", i);
		snprintf(text, sizeof(text), "chat line number %d 弹幕", i);
		struct record r = chatrec(1, 1000 * i, cid, text);
		ASSERT_EQ(store_append(s, &r), 0);
	}
	ASSERT_EQ(store_flush(s, 0), 0);
	/* Shipped up to 200, older than ts 150000: ids 1..149 go, in chunks of 100. */
	ASSERT_EQ(store_retain(s, 200, 150000, 100), 100);
	ASSERT_EQ(store_retain(s, 200, 150000, 100), 49);
	ASSERT_EQ(store_retain(s, 200, 150000, 100), 0);
	ASSERT_EQ(q_int(db, "SELECT min(id) FROM messages"), 150);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages"), 151);
	ASSERT_EQ(fts_consistent(db), SQLITE_OK); /* the index forgot them too */
	ASSERT_EQ(fts_hits(db, "\"number 12 \""), 0);
	ASSERT_EQ(fts_hits(db, "\"number 150 \""), 1);
	/* Everything shipped and old: every row but the newest, whose id the next follows. */
	ASSERT_EQ(store_retain(s, 300, INT64_MAX, 1000), 150);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages"), 1);
	ASSERT_EQ(q_int(db, "SELECT max(id) FROM messages"), 300);
	struct record r = chatrec(1, 999999, "c301", "after");
	ASSERT_EQ(store_append(s, &r), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_EQ(q_int(db, "SELECT max(id) FROM messages"), 301);
	ASSERT_EQ(fts_consistent(db), SQLITE_OK);
	/* Pages go back to the file system; the WAL is cut short at the end. */
	int left, guard = 0;
	while ((left = store_reclaim(s, 8)) > 0 && guard++ < 10000)
		;
	ASSERT_EQ(left, 0);
	ASSERT_EQ(q_int(db, "PRAGMA freelist_count"), 0);
	/* A transaction left open by a time-bounded flush: retention waits. */
	for (int i = 0; i < 64; i++) {
		snprintf(cid, sizeof(cid), "d%d", i);
		struct record d = chatrec(1, 2000000 + i, cid, "x");
		ASSERT_EQ(store_append(s, &d), 0);
	}
	ASSERT_EQ(store_flush_for(s, 5000, 1), -EAGAIN);
	ASSERT_EQ(store_retain(s, 400, INT64_MAX, 10), -EAGAIN);
	ASSERT_EQ(store_reclaim(s, 8), -EAGAIN);
	while (store_flush_for(s, 5000, 1) == -EAGAIN)
		;
	store_close(s);
	/* Without reclaim_space a new database keeps auto_vacuum off (and says so). */
	ASSERT_EQ(open_capture(db_path(p, sizeof(p)), NULL, &s, &db), 0);
	ASSERT(!store_can_reclaim(s));
	ASSERT_EQ(q_int(db, "PRAGMA auto_vacuum"), 0);
	store_close(s);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_store.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(schema_and_version);
	RUN(pragmas);
	RUN(roundtrip);
	RUN(dedup);
	RUN(platform_roundtrip);
	RUN(dedup_platforms);
	RUN(sessions);
	RUN(slices);
	RUN(session_counts_inserted_rows);
	RUN(stale_sessions_closed);
	RUN(stale_sessions_per_platform);
	RUN(locked_keeps_queue);
	RUN(full_keeps_queue);
	RUN(queue_bound);
	RUN(queue_blocks);
	RUN(flush_budget);
	RUN(shipping_position);
	RUN(retain_shipped_only);
	RUN(fts_fed_per_batch);
	RUN(views);
	RUN(migrate_v1);
	RUN(migrate_v2);
	RUN(migrate_v2_rolls_back);
	RUN(migrate_v2_defensive);
	RUN(fts_new_database);
	RUN(gaps_semantics);
	RUN(views_v2);
	RUN(views_bilibili);
	RUN(views_use_indexes);
	RUN(newer_schema);
	RUN(open_errors);
	RUN(last_error_never_null);
	rm_tmpdir();
	TEST_DONE();
}
