/*
 * test_store: the store against real database files in a temp dir: schema, user_version and
 * pragmas, the queue and flush with exact column values read back through the sqlite3 API,
 * dedup by (room_id, cid), session ids across reopen, flushing in slices, a flush that fails
 * (locked by a second connection, full, read-only) and keeps its queue, the queue bound, the
 * views, and a database newer than us. The store's own connection is reached through
 * sqlite3_auto_extension, which sees every connection this process opens.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
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
	ASSERT_EQ(store_room(s, 9999, "测试", 1700000000000), 0);
	int64_t sid =
	    store_session_begin(s, 9999, "wss://danmuproxy.douyu.com:8504/", 1700000000100);
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
	ASSERT_EQ(store_room(s, 9999, NULL, 1), 0);
	ASSERT_EQ(store_room(s, 288016, NULL, 5), 0);
	ASSERT_EQ(store_flush(s, 0), 0);
	ASSERT_STR_EQ(q_text(db, "SELECT label || '|' || added_at FROM rooms WHERE room_id = 9999",
	                     t, sizeof(t)),
	              "测试|1700000000000");
	ASSERT_EQ(store_room(s, 9999, "new", 2), 0);
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
	int64_t a = store_session_begin(s, 100, "wss://a/", 1000);
	int64_t b = store_session_begin(s, 200, "wss://b/", 1100);
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
	int64_t c = store_session_begin(s, 100, "wss://c/", 3000);
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
	ASSERT_EQ(store_session_begin(s, 1, "x", 1), 4);
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
	int64_t a = store_session_begin(s, 5, "ws://a/", 1);
	int64_t b = store_session_begin(s, 6, "ws://b/", 1);
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
	int64_t c = store_session_begin(s, 5, "ws://a/", 2);
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

static void locked_keeps_queue(void)
{
	char p[128];
	struct store *s;
	ASSERT_EQ(open_plain(db_path(p, sizeof(p)), &s), 0);
	int64_t sid = store_session_begin(s, 7, "wss://x/", 1);
	ASSERT_EQ(store_room(s, 7, "seven", 1), 0);
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
	int64_t sid = store_session_begin(s, 1, "wss://x/", 5);
	ASSERT_GT(sid, 0);
	ASSERT_EQ(store_session_end(s, sid, 6, "shutdown"), 0);
	ASSERT_EQ(store_room(s, 1, "one", 5), 0);
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
	int64_t a = store_session_begin(s, 5, "wss://a/", 1000000);
	int64_t in = store_session_begin(s, 5, "wss://a/", 1100000);
	ASSERT_EQ(store_session_end(s, in, 1200000, "x"), 0);
	ASSERT_EQ(store_session_end(s, a, 2000000, "server closed"), 0);
	int64_t b = store_session_begin(s, 5, "wss://a/", 5000000);
	ASSERT_EQ(store_session_end(s, b, 6000000, "shutdown"), 0);
	int64_t c = store_session_begin(s, 6, "wss://a/", 1000000);
	ASSERT_EQ(store_session_end(s, c, 2000000, "x"), 0);
	int64_t d = store_session_begin(s, 6, "wss://a/", 2000000);
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

static void newer_schema(void)
{
	char p[128];
	struct store *s = (struct store *)&s;
	db_path(p, sizeof(p));
	sqlite3 *db = NULL;
	ASSERT_EQ(sqlite3_open(p, &db), SQLITE_OK);
	ASSERT_EQ(exec_sql(db, "PRAGMA user_version = 2"), SQLITE_OK);
	sqlite3_close(db);
	char err[256] = "";
	int rc = store_open(p, NULL, &s, err, sizeof(err));
	ASSERT_LT(rc, 0);
	ASSERT(s == NULL);
	ASSERT_STR_EQ(err, "database schema version 2 is newer than this danmakud supports (1)");
	/* Nothing was created in the newer database. */
	db = db_open(p);
	ASSERT(db);
	ASSERT_EQ(q_int(db, "SELECT count(*) FROM sqlite_schema"), 0);
	ASSERT_EQ(q_int(db, "PRAGMA user_version"), 2);
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
	ASSERT_GT(store_session_begin(s, 1, "x", 1), 0);
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
	RUN(locked_keeps_queue);
	RUN(full_keeps_queue);
	RUN(queue_bound);
	RUN(views);
	RUN(newer_schema);
	RUN(open_errors);
	RUN(last_error_never_null);
	rm_tmpdir();
	TEST_DONE();
}
