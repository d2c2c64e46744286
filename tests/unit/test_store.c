/*
 * test_store: the store against real database files in a temp dir: schema, user_version and
 * pragmas, the queue and flush with exact column values read back through the sqlite3 API,
 * dedup by (room_id, cid), session ids across reopen, flushing in slices, a flush that fails
 * (locked by a second connection, full, read-only) and keeps its queue, the queue bound, the
 * views, migrating a recorded schema-v1 database, the full-text index switched on and off,
 * and a database newer than us. The store's own connection is reached through
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
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'view' AND name IN "
	                    "('chat', 'gifts', 'gaps')"),
	          3);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name IN "
	                    "('messages_room_ts', 'messages_room_cid')"),
	          2);
	ASSERT_STR_EQ(
	    q_text(db, "SELECT sql FROM sqlite_schema WHERE name = 'messages_room_cid'", t,
	           sizeof(t)),
	    "CREATE UNIQUE INDEX messages_room_cid ON messages(room_id, cid) WHERE cid IS "
	    "NOT NULL");
	/* Exact column lists, in order, with types and constraints. */
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(name || ' ' || type || ' ' || \"notnull\" || ' ' "
	                     "|| pk || ' ' || coalesce(dflt_value, '-'), ',') FROM "
	                     "pragma_table_info('sessions')",
	                     t, sizeof(t)),
	              "id INTEGER 0 1 -,room_id INTEGER 1 0 -,server TEXT 1 0 -,started_at INTEGER "
	              "1 0 -,joined_at INTEGER 0 0 -,ended_at INTEGER 0 0 -,end_reason TEXT 0 0 "
	              "-,messages INTEGER 1 0 0");
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(name || ' ' || type || ' ' || \"notnull\" || ' ' "
	                     "|| pk, ',') FROM pragma_table_info('messages')",
	                     t, sizeof(t)),
	              "id INTEGER 0 1,room_id INTEGER 1 0,ts INTEGER 1 0,type TEXT 1 0,uid INTEGER "
	              "0 0,nick TEXT 0 0,level INTEGER 0 0,text TEXT 0 0,cid TEXT 0 0,session_id "
	              "INTEGER 0 0,data TEXT 1 0");
	ASSERT_STR_EQ(q_text(db,
	                     "SELECT group_concat(name || ' ' || type || ' ' || \"notnull\" || ' ' "
	                     "|| pk, ',') FROM pragma_table_info('rooms')",
	                     t, sizeof(t)),
	              "room_id INTEGER 0 1,label TEXT 0 0,added_at INTEGER 1 0");
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
	ASSERT_EQ(store_flush(s, 0), 0);
	struct store_stats st;
	store_get_stats(s, &st);
	ASSERT_EQ(st.committed, 0); /* message rows only */
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
 * reconnect each), as sqlite3 .dump wrote it. Opening it migrates it to v2 in place: data
 * kept, new views and indexes, no full-text index unless asked (KEEP on an existing
 * database), then on and off again with the index following inserts and deletes.
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
	ASSERT_EQ(q_int(db, "PRAGMA user_version"), 2);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM messages"), n_msg);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'view' AND name IN "
	                    "('chat', 'gifts', 'gaps', 'live', 'daily', 'room_stats')"),
	          6);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name IN "
	                    "('messages_uid_ts', 'messages_rss', 'sessions_room_started')"),
	          3);
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
	ASSERT_EQ(exec_sql(db, "UPDATE messages SET text = '换了一句话' WHERE cid = 'a'"), SQLITE_OK);
	ASSERT_EQ(fts_hits(db, "状态真好"), 0);
	ASSERT_EQ(fts_hits(db, "换了一句"), 1);
	ASSERT_EQ(exec_sql(db, "DELETE FROM messages WHERE cid = 'b'"), SQLITE_OK);
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
	RUN(sessions);
	RUN(slices);
	RUN(session_counts_inserted_rows);
	RUN(stale_sessions_closed);
	RUN(locked_keeps_queue);
	RUN(full_keeps_queue);
	RUN(queue_bound);
	RUN(views);
	RUN(migrate_v1);
	RUN(fts_new_database);
	RUN(gaps_semantics);
	RUN(views_v2);
	RUN(newer_schema);
	RUN(open_errors);
	RUN(last_error_never_null);
	rm_tmpdir();
	TEST_DONE();
}
