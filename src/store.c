/*
 * store: the SQLite database. store_open() opens one connection (WAL, synchronous=NORMAL),
 * creates or migrates the schema of design.md §5 in one transaction and prepares every
 * statement once. Writes never touch the database directly: each one becomes an op packed with
 * its strings into an in-memory FIFO of 64 KiB blocks (no allocation per message), and
 * store_flush() replays the oldest ops inside one BEGIN IMMEDIATE ... COMMIT. Blocks are freed
 * only after their COMMIT succeeded, so a locked, full or failing database keeps every queued
 * row for the next attempt; only the memory bound (max_queue_bytes) drops messages, and it
 * counts them.
 * Schema version 2 adds the views people query (README "Asking the database") and the indexes
 * behind them; version 3 puts the platform (Douyu, Bilibili) into every identity and every
 * view. The optional full-text index (FTS5 trigram) is added or dropped at open as
 * store_options.fts asks; triggers keep it in sync with other programs' writes, and the store
 * feeds it itself, once per transaction.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define STORE_DEFAULT_MAX_QUEUE ((size_t)256 << 20)

/* Tables and indexes, exactly as design.md §5 (comments included: `.schema` shows them). */
/* clang-format off */
static const char schema_tables_v1[] =
	"CREATE TABLE rooms (\n"
	"  room_id   INTEGER PRIMARY KEY,   -- Douyu numeric room id (douyu.com/<room_id>)\n"
	"  label     TEXT,                  -- optional name from the config\n"
	"  added_at  INTEGER NOT NULL\n"
	");\n"
	"CREATE TABLE sessions (            -- one row per connection that reached TCP-connected\n"
	"  id          INTEGER PRIMARY KEY,\n"
	"  room_id     INTEGER NOT NULL,\n"
	"  server      TEXT NOT NULL,       -- e.g. wss://danmuproxy.douyu.com:8504/\n"
	"  started_at  INTEGER NOT NULL,\n"
	"  joined_at   INTEGER,             -- login accepted and group joined\n"
	"  ended_at    INTEGER,             -- NULL while the session is live\n"
	"  end_reason  TEXT,                -- shutdown | server closed | heartbeat timeout | "
	"tls: ... | removed | ...\n"
	"  messages    INTEGER NOT NULL DEFAULT 0\n"
	");\n"
	"CREATE TABLE messages (\n"
	"  id          INTEGER PRIMARY KEY,\n"
	"  room_id     INTEGER NOT NULL,\n"
	"  ts          INTEGER NOT NULL,    -- when received\n"
	"  type        TEXT NOT NULL,       -- the platform's message type: chatmsg, dgb, uenter, ...\n"
	"  uid         INTEGER,\n"
	"  nick        TEXT,\n"
	"  level       INTEGER,\n"
	"  text        TEXT,                -- chat text for chat messages, else NULL\n"
	"  cid         TEXT,                -- the platform's unique message id, when it has one\n"
	"  session_id  INTEGER,\n"
	"  data        TEXT NOT NULL        -- every field of the message, as a JSON object, lossless\n"
	");\n"
	"CREATE INDEX messages_room_ts ON messages(room_id, ts);\n"
	"CREATE UNIQUE INDEX messages_room_cid ON messages(room_id, cid) WHERE cid IS NOT NULL;\n";

/*
 * Views for people at the sqlite3 prompt. gaps: per room, the periods no session covered.
 * Sessions are ordered by start; a gap runs from the latest end among all earlier sessions (a
 * running max, so a long session overlapping short ones hides no gap) to the next start. A
 * session without ended_at (the process was killed) counts as covering only its start, so
 * the time after a crash shows up as a gap rather than being hidden.
 */
static const char schema_views_v1[] =
	"CREATE VIEW chat AS\n"
	"  SELECT datetime(ts / 1000, 'unixepoch', 'localtime') AS time,\n"
	"         room_id, uid, nick, level, text\n"
	"  FROM messages WHERE type = 'chatmsg';\n"
	"CREATE VIEW gifts AS\n"
	"  SELECT datetime(ts / 1000, 'unixepoch', 'localtime') AS time,\n"
	"         room_id, uid, nick,\n"
	"         json_extract(data, '$.gfid') AS gift_id,\n"
	"         json_extract(data, '$.gfn') AS gift_name,\n"
	"         json_extract(data, '$.gfcnt') AS count,\n"
	"         json_extract(data, '$.hits') AS hits\n"
	"  FROM messages WHERE type = 'dgb';\n"
	"CREATE VIEW gaps AS\n"
	"  SELECT room_id,\n"
	"         datetime(prev_end / 1000, 'unixepoch', 'localtime') AS gap_from,\n"
	"         datetime(started_at / 1000, 'unixepoch', 'localtime') AS gap_to,\n"
	"         (started_at - prev_end) / 1000.0 AS seconds\n"
	"  FROM (SELECT room_id, started_at,\n"
	"               max(coalesce(ended_at, started_at)) OVER (\n"
	"                 PARTITION BY room_id ORDER BY started_at, id\n"
	"                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end\n"
	"        FROM sessions)\n"
	"  WHERE started_at > prev_end;\n";

/*
 * Version 2: the views of README "Asking the database" replace v1's, plus the indexes its
 * questions need: by user across rooms (partial: most non-chat rows carry a uid too, but rows
 * without one need no entry), rss rows by room (rare rows, so "is the room live" never walks a
 * room's whole history), sessions by room and start (every per-room subquery of room_stats
 * and gaps).
 */
static const char schema_indexes_v2[] =
	"DROP VIEW chat;\n"
	"DROP VIEW gifts;\n"
	"DROP VIEW gaps;\n"
	"CREATE INDEX messages_uid_ts ON messages(uid, ts) WHERE uid IS NOT NULL;\n"
	"CREATE INDEX messages_rss ON messages(room_id, ts) WHERE type = 'rss';\n"
	"CREATE INDEX sessions_room_started ON sessions(room_id, started_at);\n";

/*
 * Every view is written so that a filter on room_id (and ts, the raw milliseconds every view
 * carries next to its local-time column) reaches the messages_room_ts index, and no view
 * aggregates the whole messages table unless the question does.
 *
 * chat: robot = no (or empty) dms: chats the official web client does not show
 *   (douyu-protocol.md §5); sent_at = the sender's cst, normalised to ms (a few senders give
 *   seconds: below 1e11 it cannot be ms after 1973).
 * gaps: per room, the time no joined session covered. Coverage runs from joined_at to
 *   ended_at; a session that never joined covers nothing. Sessions are ordered by joined_at;
 *   a gap runs from the latest end among all earlier sessions (a running max, so a long
 *   session overlapping short ones hides no gap) to the next joined_at. A session left without
 *   ended_at by a killed process covers up to its last stored message (or its join). The time
 *   before a room's first session and after its last one are not gaps: the first is before
 *   anyone asked for the room, the second is in room_stats (live, silent_s). reason is the
 *   end_reason of the session just before the gap (shutdown = danmakud was stopped).
 * room_stats: live = the room's latest session joined and has not ended; messages = the sum of
 *   sessions.messages (stored rows, without a count over messages); reconnects_24h = sessions
 *   that ended in the last 24 h for any reason but shutdown or removed (each one was followed
 *   by a reconnect attempt).
 */
static const char schema_views_v2[] =
	"CREATE VIEW chat AS\n"
	"  SELECT datetime(ts / 1000, 'unixepoch', 'localtime') AS time,\n"
	"         room_id, uid, nick, level, text,\n"
	"         coalesce(json_extract(data, '$.dms'), '') = '' AS robot,\n"
	"         CASE WHEN CAST(json_extract(data, '$.cst') AS INTEGER) < 100000000000\n"
	"              THEN CAST(json_extract(data, '$.cst') AS INTEGER) * 1000\n"
	"              ELSE CAST(json_extract(data, '$.cst') AS INTEGER) END AS sent_at,\n"
	"         ts, id, session_id\n"
	"  FROM messages WHERE type = 'chatmsg';\n"
	"CREATE VIEW gifts AS\n"
	"  SELECT datetime(ts / 1000, 'unixepoch', 'localtime') AS time,\n"
	"         room_id, uid, nick,\n"
	"         CAST(json_extract(data, '$.gfid') AS INTEGER) AS gift_id,\n"
	"         json_extract(data, '$.gfn') AS gift_name,\n"
	"         coalesce(CAST(json_extract(data, '$.gfcnt') AS INTEGER), 1) AS count,\n"
	"         CAST(json_extract(data, '$.hits') AS INTEGER) AS hits,\n"
	"         ts, id\n"
	"  FROM messages WHERE type = 'dgb';\n"
	"CREATE VIEW live AS\n"
	"  SELECT datetime(ts / 1000, 'unixepoch', 'localtime') AS time,\n"
	"         room_id,\n"
	"         CAST(json_extract(data, '$.ss') AS INTEGER) AS live,\n"
	"         coalesce(CAST(json_extract(data, '$.ivl') AS INTEGER), 0) AS replay,\n"
	"         ts, id\n"
	"  FROM messages WHERE type = 'rss';\n";

/* Split only to keep each string literal under the 4095 bytes C99 promises. */
static const char schema_views_v2b[] =
	"CREATE VIEW gaps AS\n"
	"  WITH s AS (\n"
	"    SELECT room_id, joined_at, ended_at, end_reason,\n"
	"           lead(joined_at) OVER (PARTITION BY room_id ORDER BY joined_at, id) AS next_join\n"
	"    FROM sessions WHERE joined_at IS NOT NULL\n"
	"  ), e AS (\n"
	"    SELECT room_id, joined_at, end_reason,\n"
	"           coalesce(ended_at, max(joined_at, coalesce(\n"
	"             (SELECT messages.ts FROM messages WHERE messages.room_id = s.room_id\n"
	"                AND messages.ts < s.next_join ORDER BY messages.ts DESC LIMIT 1),\n"
	"             joined_at))) AS end_at\n"
	"    FROM s\n"
	"  ), r AS (\n"
	"    SELECT room_id, joined_at,\n"
	"           max(end_at) OVER w AS prev_end,\n"
	"           last_value(end_reason) OVER w AS reason\n"
	"    FROM e\n"
	"    WINDOW w AS (PARTITION BY room_id ORDER BY joined_at\n"
	"                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)\n"
	"  )\n"
	"  SELECT room_id,\n"
	"         datetime(prev_end / 1000, 'unixepoch', 'localtime') AS gap_from,\n"
	"         datetime(joined_at / 1000, 'unixepoch', 'localtime') AS gap_to,\n"
	"         (joined_at - prev_end) / 1000.0 AS seconds,\n"
	"         reason, prev_end AS from_ts, joined_at AS to_ts\n"
	"  FROM r WHERE joined_at > prev_end;\n"
	"CREATE VIEW daily AS\n"
	"  SELECT date(ts / 1000, 'unixepoch', 'localtime') AS day, room_id,\n"
	"         count(*) AS messages,\n"
	"         sum(type = 'chatmsg') AS chats,\n"
	"         count(DISTINCT CASE WHEN type = 'chatmsg' THEN uid END) AS chatters,\n"
	"         sum(type = 'dgb') AS gifts\n"
	"  FROM messages GROUP BY room_id, day;\n"
	"CREATE VIEW room_stats AS\n"
	"  SELECT room_id, label, live, session_start, messages,\n"
	"         datetime(last / 1000, 'unixepoch', 'localtime') AS last_message,\n"
	"         strftime('%s', 'now') - last / 1000 AS silent_s,\n"
	"         sessions, reconnects_24h\n"
	"  FROM (SELECT rooms.room_id, rooms.label,\n"
	"               coalesce(cur.joined_at IS NOT NULL AND cur.ended_at IS NULL, 0) AS live,\n"
	"               CASE WHEN cur.joined_at IS NOT NULL AND cur.ended_at IS NULL\n"
	"                    THEN datetime(cur.joined_at / 1000, 'unixepoch', 'localtime') END\n"
	"                 AS session_start,\n"
	"               (SELECT coalesce(sum(sessions.messages), 0) FROM sessions\n"
	"                WHERE sessions.room_id = rooms.room_id) AS messages,\n"
	"               (SELECT messages.ts FROM messages WHERE messages.room_id = rooms.room_id\n"
	"                ORDER BY messages.ts DESC LIMIT 1) AS last,\n"
	"               (SELECT count(*) FROM sessions WHERE sessions.room_id = rooms.room_id)\n"
	"                 AS sessions,\n"
	"               (SELECT count(*) FROM sessions WHERE sessions.room_id = rooms.room_id\n"
	"                  AND sessions.ended_at >= (strftime('%s', 'now') - 86400) * 1000\n"
	"                  AND sessions.end_reason NOT IN ('shutdown', 'removed')) AS reconnects_24h\n"
	"        FROM rooms\n"
	"        LEFT JOIN sessions cur ON cur.id = (\n"
	"          SELECT sessions.id FROM sessions WHERE sessions.room_id = rooms.room_id\n"
	"          ORDER BY sessions.started_at DESC, sessions.id DESC LIMIT 1));\n";

/*
 * Version 3: the platform becomes part of every identity, so that Douyu room 9999 and Bilibili
 * room 9999 never mix. rooms is rebuilt (its room_id was the INTEGER PRIMARY KEY; now the key
 * is (platform, room_id)); sessions and messages get the column by a cheap ADD COLUMN (no row
 * is rewritten: rows stored before read the default 'douyu'), and their CREATE text is then
 * given the comments of v3 (schema_comments_v3). The cid unique index takes the platform.
 * sessions_room_platform_started leads with room_id so that a question about one room id
 * (without its platform) still reaches it. messages_live replaces messages_rss: one partial
 * index over both platforms' live status rows keeps the live view a single SELECT, which SQLite
 * can flatten into any query (a UNION ALL view cannot take a "room_id IN (SELECT ...)" filter).
 * The views are dropped first, so that nothing refers to rooms while it is renamed.
 */
static const char schema_tables_v3[] =
	"DROP VIEW chat;\n"
	"DROP VIEW gifts;\n"
	"DROP VIEW live;\n"
	"DROP VIEW gaps;\n"
	"DROP VIEW daily;\n"
	"DROP VIEW room_stats;\n"
	"ALTER TABLE rooms RENAME TO rooms_v2;\n"
	"CREATE TABLE rooms (\n"
	"  room_id   INTEGER NOT NULL,      -- the platform's room id (Bilibili: the real one)\n"
	"  label     TEXT,                  -- optional name from the config\n"
	"  added_at  INTEGER NOT NULL,\n"
	"  platform  TEXT NOT NULL DEFAULT 'douyu', -- douyu (douyu.com/<room_id>) | bilibili "
	"(live.bilibili.com/<room_id>)\n"
	"  short_id  INTEGER,               -- Bilibili short id (live.bilibili.com/<short_id>), "
	"when the room has one\n"
	"  PRIMARY KEY (platform, room_id)\n"
	");\n"
	"INSERT INTO rooms(room_id, label, added_at) SELECT room_id, label, added_at FROM rooms_v2;\n"
	"DROP TABLE rooms_v2;\n"
	"ALTER TABLE sessions ADD COLUMN platform TEXT NOT NULL DEFAULT 'douyu';\n"
	"ALTER TABLE messages ADD COLUMN platform TEXT NOT NULL DEFAULT 'douyu';\n"
	"ALTER TABLE messages ADD COLUMN decoded TEXT;\n"
	"DROP INDEX messages_room_cid;\n"
	"CREATE UNIQUE INDEX messages_platform_room_cid ON messages(platform, room_id, cid)\n"
	"  WHERE cid IS NOT NULL;\n"
	"DROP INDEX sessions_room_started;\n"
	"CREATE INDEX sessions_room_platform_started ON sessions(room_id, platform, started_at);\n"
	"DROP INDEX messages_rss;\n"
	"CREATE INDEX messages_live ON messages(room_id, ts) WHERE type IN ('rss', 'LIVE', "
	"'PREPARING');\n";

/*
 * The CREATE text of sessions and messages as v3 shows them (`.schema`): the columns that
 * ADD COLUMN appended, written like the others, and the comments that now name both
 * platforms. Exactly the columns, types, constraints and defaults that the ALTERs made
 * (schema_comments_v3 checks it): only the text changes, never the stored rows.
 */
static const char sessions_sql_v3[] =
	"CREATE TABLE sessions (            -- one row per connection that reached TCP-connected\n"
	"  id          INTEGER PRIMARY KEY,\n"
	"  room_id     INTEGER NOT NULL,\n"
	"  server      TEXT NOT NULL,       -- e.g. wss://danmuproxy.douyu.com:8504/\n"
	"  started_at  INTEGER NOT NULL,\n"
	"  joined_at   INTEGER,             -- login accepted and group joined (Bilibili: auth "
	"accepted)\n"
	"  ended_at    INTEGER,             -- NULL while the session is live\n"
	"  end_reason  TEXT,                -- shutdown | server closed | heartbeat timeout | "
	"tls: ... | removed | ...\n"
	"  messages    INTEGER NOT NULL DEFAULT 0,\n"
	"  platform    TEXT NOT NULL DEFAULT 'douyu' -- douyu | bilibili\n"
	")";
static const char messages_sql_v3[] =
	"CREATE TABLE messages (\n"
	"  id          INTEGER PRIMARY KEY,\n"
	"  room_id     INTEGER NOT NULL,\n"
	"  ts          INTEGER NOT NULL,    -- when received\n"
	"  type        TEXT NOT NULL,       -- the platform's message type: Douyu chatmsg, dgb, "
	"uenter, ...;\n"
	"                                   -- Bilibili the cmd without its \":...\" suffix "
	"(DANMU_MSG, SEND_GIFT, ...; full cmd in data.cmd)\n"
	"  uid         INTEGER,\n"
	"  nick        TEXT,\n"
	"  level       INTEGER,\n"
	"  text        TEXT,                -- chat text for chat messages (and what a super chat, "
	"toast, title change, ... says), else NULL\n"
	"  cid         TEXT,                -- the platform's unique message id, when it has one\n"
	"  session_id  INTEGER,\n"
	"  data        TEXT NOT NULL,       -- every field of the message, as a JSON object, "
	"lossless\n"
	"  platform    TEXT NOT NULL DEFAULT 'douyu', -- douyu | bilibili\n"
	"  decoded     TEXT                 -- JSON the platform decoded from a binary payload in "
	"data (Bilibili protobuf), else NULL\n"
	")";

/* pragma_table_info of each table as the ALTERs left it: name type notnull default pk. */
static const char sessions_columns_v3[] =
	"id INTEGER 0 - 1,room_id INTEGER 1 - 0,server TEXT 1 - 0,started_at INTEGER 1 - 0,"
	"joined_at INTEGER 0 - 0,ended_at INTEGER 0 - 0,end_reason TEXT 0 - 0,"
	"messages INTEGER 1 0 0,platform TEXT 1 'douyu' 0";
static const char messages_columns_v3[] =
	"id INTEGER 0 - 1,room_id INTEGER 1 - 0,ts INTEGER 1 - 0,type TEXT 1 - 0,uid INTEGER 0 - 0,"
	"nick TEXT 0 - 0,level INTEGER 0 - 0,text TEXT 0 - 0,cid TEXT 0 - 0,"
	"session_id INTEGER 0 - 0,data TEXT 1 - 0,platform TEXT 1 'douyu' 0,decoded TEXT 0 - 0";

/*
 * The views of v3: each one has a platform column and covers both platforms, with the v2
 * columns and meaning for Douyu. Each is one SELECT (CASE on the type where the platforms
 * differ), so SQLite flattens it into the question and a filter on room_id, ts or uid reaches
 * messages_room_ts, messages_live or messages_uid_ts as in v2. A type belongs to one platform
 * (Douyu types are lower case, Bilibili cmds upper case); the views still check the pair.
 *
 * chat: Douyu chatmsg, Bilibili DANMU_MSG. robot as in v2 (Bilibili: 0). masked: a Bilibili
 *   sender hidden from a guest connection (uid 0, name cut to one character and "***").
 *   sent_at: Douyu cst as in v2; Bilibili info[0][4], already ms.
 * gifts: Douyu dgb; Bilibili SEND_GIFT (data.data) and SEND_GIFT_V2 (one row per gift item, its
 *   fields in decoded). Bilibili sends a gift both ways during its migration to V2: the
 *   SEND_GIFT row counts and the SEND_GIFT_V2 item with the same tid is left out (found by
 *   cid 'SEND_GIFT:<tid>' in the unique index); SEND_GIFT keeps the sender's uid where V2 has
 *   hidden it from guests. value_cny: gold coins (金瓜子) are 1/1000 CNY, silver ones are free
 *   (0); Douyu's dgb carries no price (NULL).
 * superchats: Bilibili SUPER_CHAT_MESSAGE (price in CNY; the _JPN translation is a copy and
 *   left out); Douyu comm_chatmsg with cprice > 0 (fen; a box notice has 0).
 * live: Douyu rss as in v2; Bilibili LIVE (1) and PREPARING (0; replay when round = 1, the room
 *   switched to its replay rotation).
 */
static const char schema_views_v3[] =
	"CREATE VIEW chat AS\n"
	"  SELECT datetime(ts / 1000, 'unixepoch', 'localtime') AS time,\n"
	"         platform, room_id, uid, nick, level, text,\n"
	"         platform = 'douyu' AND coalesce(json_extract(data, '$.dms'), '') = '' AS robot,\n"
	"         platform = 'bilibili' AND coalesce(uid = 0 AND nick LIKE '%***', 0) AS masked,\n"
	"         CASE WHEN platform = 'bilibili'\n"
	"              THEN CAST(json_extract(data, '$.info[0][4]') AS INTEGER)\n"
	"              WHEN CAST(json_extract(data, '$.cst') AS INTEGER) < 100000000000\n"
	"              THEN CAST(json_extract(data, '$.cst') AS INTEGER) * 1000\n"
	"              ELSE CAST(json_extract(data, '$.cst') AS INTEGER) END AS sent_at,\n"
	"         ts, id, session_id\n"
	"  FROM messages\n"
	"  WHERE type IN ('chatmsg', 'DANMU_MSG')\n"
	"    AND platform = CASE type WHEN 'chatmsg' THEN 'douyu' ELSE 'bilibili' END;\n"
	"CREATE VIEW gifts AS\n"
	"  SELECT datetime(ts / 1000, 'unixepoch', 'localtime') AS time,\n"
	"         platform, room_id, uid, nick,\n"
	"         CAST(CASE type WHEN 'dgb' THEN json_extract(data, '$.gfid')\n"
	"                        WHEN 'SEND_GIFT' THEN json_extract(data, '$.data.giftId')\n"
	"                        ELSE json_extract(decoded, '$.gift_id') END AS INTEGER) AS gift_id,\n"
	"         CASE type WHEN 'dgb' THEN json_extract(data, '$.gfn')\n"
	"                   WHEN 'SEND_GIFT' THEN json_extract(data, '$.data.giftName')\n"
	"                   ELSE json_extract(decoded, '$.gift_name') END AS gift_name,\n"
	"         coalesce(CAST(CASE type WHEN 'dgb' THEN json_extract(data, '$.gfcnt')\n"
	"                                 WHEN 'SEND_GIFT' THEN json_extract(data, '$.data.num')\n"
	"                                 ELSE json_extract(decoded, '$.num') END AS INTEGER), 1)\n"
	"           AS count,\n"
	"         CAST(json_extract(data, '$.hits') AS INTEGER) AS hits,\n"
	"         json_extract(bili, '$.coin_type') AS coin_type,\n"
	"         CASE json_extract(bili, '$.coin_type')\n"
	"           WHEN 'gold' THEN coalesce(json_extract(bili, '$.total_coin'),\n"
	"                                     json_extract(bili, '$.price') * json_extract(bili, "
	"'$.num'))\n"
	"                            / 1000.0\n"
	"           WHEN 'silver' THEN 0.0 END AS value_cny,\n"
	"         ts, id\n"
	"  FROM (SELECT *, CASE type WHEN 'SEND_GIFT' THEN json_extract(data, '$.data')\n"
	"                            WHEN 'SEND_GIFT_V2' THEN decoded END AS bili\n"
	"        FROM messages m\n"
	"        WHERE type IN ('dgb', 'SEND_GIFT', 'SEND_GIFT_V2')\n"
	"          AND platform = CASE type WHEN 'dgb' THEN 'douyu' ELSE 'bilibili' END\n"
	"          AND (type <> 'SEND_GIFT_V2' OR NOT EXISTS (\n"
	"                 SELECT 1 FROM messages v1 WHERE v1.platform = 'bilibili'\n"
	"                   AND v1.room_id = m.room_id\n"
	"                   AND v1.cid = 'SEND_GIFT:' || json_extract(m.decoded, '$.tid'))));\n";

/* Split only to keep each string literal under the 4095 bytes C99 promises. */
static const char schema_views_v3b[] =
	"CREATE VIEW superchats AS\n"
	"  SELECT datetime(ts / 1000, 'unixepoch', 'localtime') AS time,\n"
	"         platform, room_id,\n"
	"         coalesce(uid, CAST(json_extract(data, '$.data.uid') AS INTEGER)) AS uid,\n"
	"         coalesce(nick, json_extract(data, '$.data.user_info.uname')) AS nick,\n"
	"         coalesce(text, json_extract(data, '$.data.message')) AS text,\n"
	"         CASE type WHEN 'comm_chatmsg'\n"
	"              THEN CAST(json_extract(data, '$.cprice') AS INTEGER) / 100.0\n"
	"              ELSE CAST(json_extract(data, '$.data.price') AS REAL) END AS price_cny,\n"
	"         CASE type WHEN 'comm_chatmsg' THEN CAST(json_extract(data, '$.cet') AS INTEGER)\n"
	"              ELSE coalesce(CAST(json_extract(data, '$.data.time') AS INTEGER),\n"
	"                            json_extract(data, '$.data.end_time')\n"
	"                            - json_extract(data, '$.data.start_time')) END AS duration_s,\n"
	"         ts, id\n"
	"  FROM messages\n"
	"  WHERE type IN ('comm_chatmsg', 'SUPER_CHAT_MESSAGE')\n"
	"    AND platform = CASE type WHEN 'comm_chatmsg' THEN 'douyu' ELSE 'bilibili' END\n"
	"    AND (type <> 'comm_chatmsg' OR CAST(json_extract(data, '$.cprice') AS INTEGER) > 0);\n"
	"CREATE VIEW live AS\n"
	"  SELECT datetime(ts / 1000, 'unixepoch', 'localtime') AS time,\n"
	"         platform, room_id,\n"
	"         CASE type WHEN 'rss' THEN CAST(json_extract(data, '$.ss') AS INTEGER)\n"
	"                   ELSE type = 'LIVE' END AS live,\n"
	"         CASE type WHEN 'rss' THEN coalesce(CAST(json_extract(data, '$.ivl') AS INTEGER), 0)\n"
	"                   ELSE type = 'PREPARING'\n"
	"                        AND coalesce(CAST(json_extract(data, '$.round') AS INTEGER), 0) = 1\n"
	"                   END AS replay,\n"
	"         ts, id\n"
	"  FROM messages\n"
	"  WHERE type IN ('rss', 'LIVE', 'PREPARING')\n"
	"    AND platform = CASE type WHEN 'rss' THEN 'douyu' ELSE 'bilibili' END;\n"
	"CREATE VIEW gaps AS\n"
	"  WITH s AS (\n"
	"    SELECT platform, room_id, joined_at, ended_at, end_reason,\n"
	"           lead(joined_at) OVER (PARTITION BY platform, room_id ORDER BY joined_at, id)\n"
	"             AS next_join\n"
	"    FROM sessions WHERE joined_at IS NOT NULL\n"
	"  ), e AS (\n"
	"    SELECT platform, room_id, joined_at, end_reason,\n"
	"           coalesce(ended_at, max(joined_at, coalesce(\n"
	"             (SELECT messages.ts FROM messages WHERE messages.room_id = s.room_id\n"
	"                AND messages.platform = s.platform\n"
	"                AND messages.ts < s.next_join ORDER BY messages.ts DESC LIMIT 1),\n"
	"             joined_at))) AS end_at\n"
	"    FROM s\n"
	"  ), r AS (\n"
	"    SELECT platform, room_id, joined_at,\n"
	"           max(end_at) OVER w AS prev_end,\n"
	"           last_value(end_reason) OVER w AS reason\n"
	"    FROM e\n"
	"    WINDOW w AS (PARTITION BY platform, room_id ORDER BY joined_at\n"
	"                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)\n"
	"  )\n"
	"  SELECT platform, room_id,\n"
	"         datetime(prev_end / 1000, 'unixepoch', 'localtime') AS gap_from,\n"
	"         datetime(joined_at / 1000, 'unixepoch', 'localtime') AS gap_to,\n"
	"         (joined_at - prev_end) / 1000.0 AS seconds,\n"
	"         reason, prev_end AS from_ts, joined_at AS to_ts\n"
	"  FROM r WHERE joined_at > prev_end;\n";

/*
 * daily: chats and chatters count both platforms' chat types (every Bilibili guest-masked
 * sender has uid 0: they count as one chatter), gifts the rows the gifts view gives.
 */
static const char schema_views_v3c[] =
	"CREATE VIEW daily AS\n"
	"  SELECT date(ts / 1000, 'unixepoch', 'localtime') AS day, platform, room_id,\n"
	"         count(*) AS messages,\n"
	"         sum(type IN ('chatmsg', 'DANMU_MSG')) AS chats,\n"
	"         count(DISTINCT CASE WHEN type IN ('chatmsg', 'DANMU_MSG') THEN uid END) AS chatters,\n"
	"         sum(CASE type WHEN 'dgb' THEN 1 WHEN 'SEND_GIFT' THEN 1\n"
	"                       WHEN 'SEND_GIFT_V2' THEN NOT EXISTS (\n"
	"                         SELECT 1 FROM messages v1 WHERE v1.platform = messages.platform\n"
	"                           AND v1.room_id = messages.room_id\n"
	"                           AND v1.cid = 'SEND_GIFT:' || json_extract(messages.decoded, "
	"'$.tid'))\n"
	"                       ELSE 0 END) AS gifts\n"
	"  FROM messages GROUP BY platform, room_id, day;\n"
	"CREATE VIEW room_stats AS\n"
	"  SELECT platform, room_id, short_id, label, live, session_start, messages,\n"
	"         datetime(last / 1000, 'unixepoch', 'localtime') AS last_message,\n"
	"         strftime('%s', 'now') - last / 1000 AS silent_s,\n"
	"         sessions, reconnects_24h\n"
	"  FROM (SELECT rooms.platform, rooms.room_id, rooms.short_id, rooms.label,\n"
	"               coalesce(cur.joined_at IS NOT NULL AND cur.ended_at IS NULL, 0) AS live,\n"
	"               CASE WHEN cur.joined_at IS NOT NULL AND cur.ended_at IS NULL\n"
	"                    THEN datetime(cur.joined_at / 1000, 'unixepoch', 'localtime') END\n"
	"                 AS session_start,\n"
	"               (SELECT coalesce(sum(sessions.messages), 0) FROM sessions\n"
	"                WHERE sessions.room_id = rooms.room_id\n"
	"                  AND sessions.platform = rooms.platform) AS messages,\n"
	"               (SELECT messages.ts FROM messages WHERE messages.room_id = rooms.room_id\n"
	"                  AND messages.platform = rooms.platform\n"
	"                ORDER BY messages.ts DESC LIMIT 1) AS last,\n"
	"               (SELECT count(*) FROM sessions WHERE sessions.room_id = rooms.room_id\n"
	"                  AND sessions.platform = rooms.platform) AS sessions,\n"
	"               (SELECT count(*) FROM sessions WHERE sessions.room_id = rooms.room_id\n"
	"                  AND sessions.platform = rooms.platform\n"
	"                  AND sessions.ended_at >= (strftime('%s', 'now') - 86400) * 1000\n"
	"                  AND sessions.end_reason NOT IN ('shutdown', 'removed')) AS reconnects_24h\n"
	"        FROM rooms\n"
	"        LEFT JOIN sessions cur ON cur.id = (\n"
	"          SELECT sessions.id FROM sessions WHERE sessions.room_id = rooms.room_id\n"
	"            AND sessions.platform = rooms.platform\n"
	"          ORDER BY sessions.started_at DESC, sessions.id DESC LIMIT 1));\n";
/* clang-format on */

struct store;
static int schema_comments_v3(struct store *s);

/* One step of a migration: SQL, or a function for what SQL alone cannot say. */
struct migration_step {
	const char *sql;
	int (*fn)(struct store *s);
};

/* Each migration takes the database from version i to i + 1 (one transaction for all). */
static const struct migration_step migrations[STORE_SCHEMA_VERSION][5] = {
    {{schema_tables_v1, NULL}, {schema_views_v1, NULL}},
    {{schema_indexes_v2, NULL}, {schema_views_v2, NULL}, {schema_views_v2b, NULL}},
    {{schema_tables_v3, NULL}, {NULL, schema_comments_v3}, {schema_views_v3, NULL},
     {schema_views_v3b, NULL}, {schema_views_v3c, NULL}},
};

enum op_kind { OP_ROOM, OP_SESSION_BEGIN, OP_SESSION_JOINED, OP_SESSION_END, OP_MESSAGE, OP_SHIPPED };

/* Strings an op carries, in this order, right after its fixed part (each op kind uses the first
 * few). Lengths are in op.len[]; OP_NULL for SQL NULL. No NUL terminators: every bind passes
 * the length. */
enum { OP_MAX_STR = 6 };
#define OP_NULL UINT32_MAX
/* room: platform, label. begin: platform, server. end: reason.
 * message: type, nick, text, cid, data, decoded (the platform is the record's static name). */
enum { S_TYPE, S_NICK, S_TEXT, S_CID, S_DATA, S_DECODED };

/*
 * One queued write, packed into a block of the FIFO with its strings after it. size covers
 * both, rounded up so that the next op is aligned. A message's platform is not copied: records
 * name a static string (record.h).
 */
struct op {
	uint32_t size;
	uint8_t kind;
	bool has_uid, has_level;
	uint32_t len[OP_MAX_STR];
	uint32_t platform_len;
	const char *platform; /* messages only */
	union {
		struct {
			int64_t room_id, short_id, now;
		} room;
		struct {
			int64_t id, room_id, ts;
		} begin;
		struct {
			int64_t id, ts;
		} joined;
		struct {
			int64_t id, ts;
		} end;
		struct {
			int64_t room_id, ts, session_id, uid, level;
		} msg;
		struct {
			int64_t messages_id, sessions_id, now;
		} shipped;
	} u;
	char str[];
};

#define OP_ALIGN _Alignof(struct op)

/*
 * The queue: a FIFO of blocks, each holding whole ops back to back. Appending copies into the
 * tail block (a new block only when it is full: one malloc per block_size bytes, not per
 * message); an op larger than a block gets a block of its own. A flush walks from (head, pos);
 * after COMMIT the blocks it finished are freed whole (one is kept for reuse) and pos moves on.
 * The memory bound counts block bytes, which is what the process really holds.
 */
struct block {
	struct block *next;
	size_t cap, used; /* bytes of data[]; bytes holding ops */
	_Alignas(OP_ALIGN) char data[];
};

/* The default block: big enough that malloc is rare, small enough to stay off mmap. */
#define STORE_BLOCK_SIZE ((size_t)64 << 10)

enum stmt_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_ROOM,
	ST_SESSION_BEGIN,
	ST_SESSION_JOINED,
	ST_SESSION_END,
	ST_SESSION_COUNT,
	ST_MESSAGE,
	ST_FTS_FEED, /* only when the database has the full-text index */
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_ROOM] = "INSERT INTO rooms(platform, room_id, short_id, label, added_at) "
                "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(platform, room_id) DO UPDATE SET "
                "label = coalesce(excluded.label, label), "
                "short_id = coalesce(excluded.short_id, short_id)",
    [ST_SESSION_BEGIN] = "INSERT INTO sessions(id, platform, room_id, server, started_at) "
                         "VALUES(?1, ?2, ?3, ?4, ?5)",
    [ST_SESSION_JOINED] = "UPDATE sessions SET joined_at = ?2 WHERE id = ?1",
    [ST_SESSION_END] = "UPDATE sessions SET ended_at = ?2, end_reason = ?3 WHERE id = ?1",
    [ST_SESSION_COUNT] = "UPDATE sessions SET messages = messages + ?2 WHERE id = ?1",
    [ST_MESSAGE] = "INSERT OR IGNORE INTO messages(room_id, ts, type, uid, nick, level, text, "
                   "cid, session_id, data, platform, decoded) "
                   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    /* Every row with text above the highest one indexed (messages_fts_docsize has a row per
     * indexed row): what this transaction inserted. Two index seeks and a rowid range; see
     * store_flush_for. */
    [ST_FTS_FEED] = "INSERT INTO messages_fts(rowid, text) SELECT id, text FROM messages "
                    "WHERE id > (SELECT coalesce(max(id), 0) FROM messages_fts_docsize) "
                    "AND text IS NOT NULL",
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	sqlite3_stmt *st_shipped; /* prepared by store_shipping_get (the table exists then) */
	bool reclaim;             /* auto_vacuum is INCREMENTAL: freed pages can be given back */
	struct block *head, *tail; /* the queue; head == NULL when no block is held */
	size_t pos;                /* offset in head of the first op not yet committed */
	struct block *spare;       /* a finished block kept for the next append (not counted) */
	size_t block_size;
	size_t max_queue_bytes;
	const char *platform; /* the last message's platform name, and its length */
	size_t platform_len;
	/* The transaction store_flush_for keeps open across calls: where it got to in the queue,
	 * the rows it holds, and its message counts (added to the stats at COMMIT). */
	struct {
		bool open;
		struct block *block;
		size_t off, rows;
		uint64_t inserted, ignored, session_edges;
	} txn;
	int64_t next_session_id;
	/* Per-flush count of inserted rows by session (open addressing; key 0 = empty), so that
	 * sessions.messages counts rows really stored, not duplicates the index ignored. */
	struct session_count {
		int64_t id;
		int64_t n;
	} *counts;
	size_t counts_cap, counts_used;
	struct store_stats stats;
	bool has_fts;
	char err[256];
};

/* SQLite result code (primary or extended) -> negative errno. */
static int errno_from_sqlite(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EPERM;
	case SQLITE_NOMEM:
		return -ENOMEM;
	}
	/* SQLITE_IOERR*, CORRUPT, CANTOPEN, NOTADB, CONSTRAINT, ... */
	return -EIO;
}

/* Record "what: sqlite's message" as the last error and return the errno for rc. */
static int db_fail(struct store *s, int rc, const char *what)
{
	const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
	snprintf(s->err, sizeof(s->err), "%s: %s", what, msg);
	return errno_from_sqlite(rc);
}

static int exec(struct store *s, const char *sql, const char *what)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : db_fail(s, rc, what);
}

int store_end_stale_sessions(struct store *s, const char *reason)
{
	/* messages_room_ts makes the max() an index lookup per open session. */
	static const char sql[] =
		"UPDATE sessions SET end_reason = ?1, ended_at = max(coalesce(joined_at, started_at), "
		"coalesce((SELECT max(ts) FROM messages m WHERE m.room_id = sessions.room_id "
		"AND m.platform = sessions.platform AND m.ts >= sessions.started_at), 0)) "
		"WHERE ended_at IS NULL";
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, "close stale sessions");
	sqlite3_bind_text(st, 1, reason, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(s, rc, "close stale sessions");
	return sqlite3_changes(s->db);
}

/* Run a one-row query that returns an integer. */
static int query_int(struct store *s, const char *sql, int64_t *out)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, sql);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	int ret = rc == SQLITE_OK ? 0 : db_fail(s, rc, sql);
	sqlite3_finalize(st);
	return ret;
}

static int set_pragmas(struct store *s, int busy_timeout_ms)
{
	sqlite3_busy_timeout(s->db, busy_timeout_ms > 0 ? busy_timeout_ms : 0);
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, "journal_mode");
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		int ret = db_fail(s, rc, "journal_mode");
		sqlite3_finalize(st);
		return ret;
	}
	const char *mode = (const char *)sqlite3_column_text(st, 0);
	/* An in-memory database cannot use WAL; anything else would lose our crash guarantees. */
	int ret = 0;
	if (!mode || (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0)) {
		snprintf(s->err, sizeof(s->err), "cannot enable WAL: journal_mode is %s",
		         mode ? mode : "unknown");
		ret = -EIO;
	}
	sqlite3_finalize(st);
	if (ret < 0)
		return ret;
	/*
	 * Chosen by bench/scale.py on a 50M-row database (BENCHMARKS.md "Scale: 50M rows"), whose
	 * cost is index pages dirtied at random places ((uid, ts), (platform, room_id, cid)),
	 * written to the WAL and again by the checkpoint, and read back when evicted. These three
	 * together: 9,400 to 11,400 msgs/s and 53 to 58 us CPU per message there, against 6,600
	 * to 9,600 and 59 to 69 us with SQLite's defaults; an empty database lost nothing.
	 * cache_size 16 MiB: it fills only as far as the database needs it, and keeps a flood
	 * under the 64 MiB RSS that test_hostile allows (39 MiB measured). 64 MiB gave 12,400
	 * msgs/s and 49 us but 89 MiB RSS; 256 MiB 13,300 and 45 us for 288 MiB.
	 * mmap_size 0: a 2 GiB mapping gave 10,100 msgs/s and 57 us, and 604 MiB RSS; reads are
	 * not the cost.
	 * wal_autocheckpoint 10000 pages (a WAL of up to 40 MB on disk, no memory): with 1000, a
	 * checkpoint and its fsync follow nearly every 5000-row commit in that database; 10000
	 * alone gave 9,400 to 11,700 msgs/s.
	 */
	return exec(s,
	            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF; "
	            "PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16384; "
	            "PRAGMA mmap_size = 0; PRAGMA wal_autocheckpoint = 10000;",
	            "pragmas");
}

/* The columns of table as "name type notnull default pk,..." (pragma_table_info). */
static int table_columns(struct store *s, const char *table, char *out, size_t n)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->db,
	                            "SELECT group_concat(name || ' ' || type || ' ' || \"notnull\" || "
	                            "' ' || coalesce(dflt_value, '-') || ' ' || pk, ',') FROM "
	                            "(SELECT * FROM pragma_table_info(?1) ORDER BY cid)",
	                            -1, &st, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, "read columns");
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	const unsigned char *t = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
	snprintf(out, n, "%s", t ? (const char *)t : "");
	int ret = rc == SQLITE_ROW ? 0 : db_fail(s, rc, "read columns");
	sqlite3_finalize(st);
	return ret;
}

/*
 * Give sessions and messages the CREATE text of v3 (comments included), the way SQLite's
 * documentation describes for changes that leave the stored rows as they are: write
 * sqlite_schema.sql under writable_schema, then bump schema_version so that every connection
 * reads it again. Only a table whose columns are exactly what the ALTERs of v3 made is
 * rewritten (one altered by hand keeps its text), and its columns are compared again after the
 * new text was read: any difference fails the migration, which rolls everything back.
 */
static int schema_comments_v3(struct store *s)
{
	static const struct {
		const char *name, *sql, *columns;
	} t[] = {
		{"sessions", sessions_sql_v3, sessions_columns_v3},
		{"messages", messages_sql_v3, messages_columns_v3},
	};
	char cols[1024], sql[96];
	bool todo[2];
	bool any = false;
	for (size_t i = 0; i < 2; i++) {
		int rc = table_columns(s, t[i].name, cols, sizeof(cols));
		if (rc < 0)
			return rc;
		todo[i] = strcmp(cols, t[i].columns) == 0;
		any |= todo[i];
	}
	if (!any)
		return 0;
	int64_t version;
	int rc = query_int(s, "PRAGMA schema_version", &version);
	if (rc < 0)
		return rc;
	/* A build of SQLite that is defensive by default refuses writes to sqlite_master even
	 * under writable_schema: lift it for these statements only. */
	int defensive = 0;
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, -1, &defensive);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 0, (int *)NULL);
	rc = exec(s, "PRAGMA writable_schema = ON", "schema comments");
	for (size_t i = 0; i < 2 && rc == 0; i++) {
		if (!todo[i])
			continue;
		sqlite3_stmt *st;
		int r = sqlite3_prepare_v2(s->db,
		                           "UPDATE sqlite_master SET sql = ?1 WHERE type = 'table' AND "
		                           "name = ?2",
		                           -1, &st, NULL);
		if (r == SQLITE_OK) {
			sqlite3_bind_text(st, 1, t[i].sql, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, t[i].name, -1, SQLITE_STATIC);
			r = sqlite3_step(st);
			r = r == SQLITE_DONE && sqlite3_changes(s->db) == 1 ? SQLITE_OK
			    : r == SQLITE_DONE                             ? SQLITE_ERROR
			                                                   : r;
			sqlite3_finalize(st);
		}
		if (r != SQLITE_OK)
			rc = db_fail(s, r, "schema comments");
	}
	int off = exec(s, "PRAGMA writable_schema = OFF", "schema comments");
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, defensive, (int *)NULL);
	if (rc == 0)
		rc = off;
	if (rc < 0)
		return rc;
	snprintf(sql, sizeof(sql), "PRAGMA schema_version = %lld", (long long)version + 1);
	rc = exec(s, sql, "schema comments");
	for (size_t i = 0; i < 2 && rc == 0; i++) {
		if (!todo[i])
			continue;
		rc = table_columns(s, t[i].name, cols, sizeof(cols));
		if (rc == 0 && strcmp(cols, t[i].columns) != 0) {
			snprintf(s->err, sizeof(s->err), "schema comments: %s changed its columns",
			         t[i].name);
			rc = -EIO;
		}
	}
	return rc;
}

/*
 * Bring the schema to STORE_SCHEMA_VERSION. The version is read first without a lock, so an
 * up-to-date database is never write-locked at open; a migration re-reads it under BEGIN
 * IMMEDIATE, in case another process migrated in between.
 */
static int migrate(struct store *s, bool *created)
{
	int64_t v;
	*created = false;
	int rc = query_int(s, "PRAGMA user_version", &v);
	if (rc < 0)
		return rc;
	if (v == STORE_SCHEMA_VERSION)
		return 0;
	if (v > STORE_SCHEMA_VERSION || v < 0)
		goto too_new;
	rc = exec(s, "BEGIN IMMEDIATE", "begin schema");
	if (rc < 0)
		return rc;
	rc = query_int(s, "PRAGMA user_version", &v);
	if (rc < 0)
		goto rollback;
	if (v > STORE_SCHEMA_VERSION || v < 0) {
		exec(s, "ROLLBACK", "rollback");
		goto too_new;
	}
	*created = v == 0;
	for (; v < STORE_SCHEMA_VERSION; v++) {
		for (size_t i = 0; i < sizeof(migrations[v]) / sizeof(migrations[v][0]); i++) {
			const struct migration_step *m = &migrations[v][i];
			if (m->sql)
				rc = exec(s, m->sql, "create schema");
			else if (m->fn)
				rc = m->fn(s);
			if (rc < 0)
				goto rollback;
		}
	}
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
	rc = exec(s, sql, "set schema version");
	if (rc < 0)
		goto rollback;
	rc = exec(s, "COMMIT", "commit schema");
	if (rc < 0)
		goto rollback;
	return 0;

rollback:
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
too_new:
	snprintf(s->err, sizeof(s->err),
	         "database schema version %lld is newer than this danmakud supports (%d)",
	         (long long)v, STORE_SCHEMA_VERSION);
	return -EPROTONOSUPPORT;
}

/*
 * The full-text index. External content, so the text is stored once (in messages); the
 * content is a view of the rows that have text, so that 'rebuild' and the insert trigger index
 * exactly the same rows (FTS5's integrity-check with rank 1 compares the two). trigram: every
 * 3-character window is a token, which finds Chinese substrings without a word splitter;
 * queries shorter than 3 characters cannot use it (README shows the LIKE fallback).
 */
/* clang-format off */
static const char fts_create_sql[] =
	"CREATE VIEW messages_fts_source AS\n"
	"  SELECT id, text FROM messages WHERE text IS NOT NULL;\n"
	"CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages_fts_source',\n"
	"  content_rowid='id', tokenize='trigram');\n"
	"CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.text IS NOT NULL BEGIN\n"
	"  INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);\n"
	"END;\n"
	"CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.text IS NOT NULL BEGIN\n"
	"  INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);\n"
	"END;\n"
	"CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN\n"
	"  INSERT INTO messages_fts(messages_fts, rowid, text)\n"
	"    SELECT 'delete', old.id, old.text WHERE old.text IS NOT NULL;\n"
	"  INSERT INTO messages_fts(rowid, text) SELECT new.id, new.text WHERE new.text IS NOT NULL;\n"
	"END;\n"
	"INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');\n";

static const char fts_drop_sql[] =
	"DROP TRIGGER IF EXISTS messages_fts_insert;\n"
	"DROP TRIGGER IF EXISTS messages_fts_delete;\n"
	"DROP TRIGGER IF EXISTS messages_fts_update;\n"
	"DROP TABLE IF EXISTS messages_fts;\n"
	"DROP VIEW IF EXISTS messages_fts_source;\n";
/* clang-format on */

/* The default for a database store_open creates (bench/fts_cost.c; README). */
#define STORE_FTS_DEFAULT STORE_FTS_ON

static int fts_present(struct store *s, bool *out)
{
	int64_t n;
	int rc = query_int(s, "SELECT count(*) FROM sqlite_master WHERE name = 'messages_fts'", &n);
	if (rc == 0)
		*out = n > 0;
	return rc;
}

/*
 * Add or drop the full-text index as asked, in one transaction. Building it indexes every
 * existing chat row here, before the loop runs (README gives the rate). The state is re-read
 * under the write lock, in case another process switched it in between.
 */
static int apply_fts(struct store *s, enum store_fts want, bool created)
{
	if (want == STORE_FTS_KEEP && created)
		want = STORE_FTS_DEFAULT;
	int rc = fts_present(s, &s->has_fts);
	if (rc < 0 || want == STORE_FTS_KEEP || (want == STORE_FTS_ON) == s->has_fts)
		return rc;
	rc = exec(s, "BEGIN IMMEDIATE", "begin full-text index");
	if (rc < 0)
		return rc;
	bool has;
	rc = fts_present(s, &has);
	if (rc == 0 && (want == STORE_FTS_ON) != has)
		rc = exec(s, want == STORE_FTS_ON ? fts_create_sql : fts_drop_sql,
		          want == STORE_FTS_ON ? "build full-text index" : "drop full-text index");
	if (rc == 0)
		rc = exec(s, "COMMIT", "commit full-text index");
	if (rc < 0) {
		if (!sqlite3_get_autocommit(s->db))
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	s->has_fts = want == STORE_FTS_ON;
	return 0;
}

bool store_has_fts(const struct store *s)
{
	return s->has_fts;
}

static int prepare_all(struct store *s)
{
	for (int i = 0; i < ST_COUNT; i++) {
		if (i == ST_FTS_FEED && !s->has_fts)
			continue;
		int rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                            &s->st[i], NULL);
		if (rc != SQLITE_OK)
			return db_fail(s, rc, "prepare");
	}
	return 0;
}

int store_open(const char *path, const struct store_options *opt, struct store **out, char *err,
               size_t errlen)
{
	*out = NULL;
	struct store *s = calloc(1, sizeof(*s));
	if (!s) {
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->max_queue_bytes =
	    opt && opt->max_queue_bytes ? opt->max_queue_bytes : STORE_DEFAULT_MAX_QUEUE;
	/* A small bound gets small blocks, so that it still holds several of them. */
	s->block_size = s->max_queue_bytes / 16 < STORE_BLOCK_SIZE ? s->max_queue_bytes / 16
	                                                            : STORE_BLOCK_SIZE;
	int rc = sqlite3_open_v2(
	    path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		char what[160];
		snprintf(what, sizeof(what), "open %s", path);
		rc = db_fail(s, rc, what);
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	/* SQLite falls back to read-only when it cannot write the file; a recorder that cannot
	 * commit must say so now, not at the first flush. */
	if (sqlite3_db_readonly(s->db, "main") == 1) {
		snprintf(s->err, sizeof(s->err),
			 "database is read-only (file permissions or a read-only filesystem)");
		rc = -EROFS;
		goto fail;
	}
	/* A new database that will give rows back (store_retain) can give their pages back to
	 * the file system too: auto_vacuum can only be chosen before the first table, and
	 * before the switch to WAL. */
	int64_t tables;
	rc = query_int(s, "SELECT count(*) FROM sqlite_master", &tables);
	if (rc == 0 && tables == 0 && opt && opt->reclaim_space)
		rc = exec(s, "PRAGMA auto_vacuum = INCREMENTAL", "auto_vacuum");
	if (rc < 0)
		goto fail;
	rc = set_pragmas(s, opt ? opt->busy_timeout_ms : 0);
	if (rc < 0)
		goto fail;
	bool created;
	rc = migrate(s, &created);
	if (rc < 0)
		goto fail;
	rc = apply_fts(s, opt ? opt->fts : STORE_FTS_KEEP, created);
	if (rc < 0)
		goto fail;
	/* From here on this connection runs no triggers. The only ones are the full-text index's,
	 * there for other programs' writes; the store feeds the index itself, once per transaction
	 * (store_flush_for), and never edits or deletes messages. A trigger per row cost five
	 * times as much (README "Full-text search"). Prepared statements compile without them. */
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, (int *)NULL);
	int64_t max_id;
	rc = query_int(s, "SELECT coalesce(max(id), 0) FROM sessions", &max_id);
	if (rc < 0)
		goto fail;
	s->next_session_id = max_id + 1;
	int64_t av;
	rc = query_int(s, "PRAGMA auto_vacuum", &av);
	if (rc < 0)
		goto fail;
	s->reclaim = av == 2;
	rc = prepare_all(s);
	if (rc < 0)
		goto fail;
	*out = s;
	return 0;

fail:
	if (err && errlen)
		snprintf(err, errlen, "%s", s->err);
	store_close(s);
	return rc;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_finalize(s->st_shipped);
	sqlite3_close(s->db);
	free(s->counts);
	struct block *b = s->head;
	while (b) {
		struct block *next = b->next;
		free(b);
		b = next;
	}
	free(s->spare);
	free(s);
}

/* ---- the queue ---- */

/* Room for an op with strbytes of strings at the tail of the queue, or NULL: -ENOBUFS when a
 * new block would pass the bound and bounded is set (messages), -ENOMEM. */
static struct op *op_alloc(struct store *s, enum op_kind kind, size_t strbytes, bool bounded,
                           int *err)
{
	size_t need = offsetof(struct op, str) + strbytes;
	need = (need + OP_ALIGN - 1) & ~(OP_ALIGN - 1);
	if (need > UINT32_MAX) {
		*err = -EINVAL;
		return NULL;
	}
	struct block *b = s->tail;
	if (!b || b->cap - b->used < need) {
		size_t cap = need > s->block_size ? need : s->block_size;
		if (bounded && (cap > s->max_queue_bytes ||
		                s->stats.queued_bytes > s->max_queue_bytes - cap)) {
			*err = -ENOBUFS;
			return NULL;
		}
		if (s->spare && s->spare->cap >= cap) {
			b = s->spare;
			s->spare = NULL;
		} else {
			b = malloc(offsetof(struct block, data) + cap);
			if (!b) {
				*err = -ENOMEM;
				return NULL;
			}
			b->cap = cap;
		}
		b->next = NULL;
		b->used = 0;
		if (s->tail)
			s->tail->next = b;
		else
			s->head = b;
		s->tail = b;
		s->stats.queued_bytes += b->cap;
	}
	struct op *o = (struct op *)(b->data + b->used);
	b->used += need;
	o->size = (uint32_t)need;
	o->kind = (uint8_t)kind;
	o->has_uid = o->has_level = false;
	o->platform = NULL;
	s->stats.queued_rows++;
	return o;
}

/* Copy string i of the op to *cur (NULL: SQL NULL). */
static void op_put(struct op *o, int i, char **cur, const char *p, size_t len)
{
	if (!p) {
		o->len[i] = OP_NULL;
		return;
	}
	memcpy(*cur, p, len);
	o->len[i] = (uint32_t)len;
	*cur += len;
}

/* The strings of an op, as pointers (NULL for SQL NULL). */
static void op_strings(const struct op *o, int n, const char *out[])
{
	const char *cur = o->str;
	for (int i = 0; i < n; i++) {
		out[i] = o->len[i] == OP_NULL ? NULL : cur;
		if (out[i])
			cur += o->len[i];
	}
}

/* Strings for session and room rows are short; anything past INT_MAX is a caller bug. NULL
 * measures 0, which is also the bytes it takes in an op. */
static int str_len(const char *p, size_t *len)
{
	*len = p ? strlen(p) : 0;
	return *len > INT_MAX ? -EINVAL : 0;
}

int store_room(struct store *s, const char *platform, int64_t room_id, int64_t short_id,
	       const char *label, int64_t now_ms)
{
	size_t plen, len;
	if (!platform || str_len(platform, &plen) < 0 || str_len(label, &len) < 0)
		return -EINVAL;
	int err;
	struct op *o = op_alloc(s, OP_ROOM, plen + len, false, &err);
	if (!o)
		return err;
	char *cur = o->str;
	o->u.room.room_id = room_id;
	o->u.room.short_id = short_id;
	o->u.room.now = now_ms;
	op_put(o, 0, &cur, platform, plen);
	op_put(o, 1, &cur, label, len);
	return 0;
}

int64_t store_session_begin(struct store *s, const char *platform, int64_t room_id,
			    const char *server, int64_t ts)
{
	if (!server)
		server = "";
	size_t plen, len;
	if (!platform || str_len(platform, &plen) < 0 || str_len(server, &len) < 0)
		return -EINVAL;
	int err;
	struct op *o = op_alloc(s, OP_SESSION_BEGIN, plen + len, false, &err);
	if (!o)
		return err;
	char *cur = o->str;
	o->u.begin.id = s->next_session_id++;
	o->u.begin.room_id = room_id;
	o->u.begin.ts = ts;
	op_put(o, 0, &cur, platform, plen);
	op_put(o, 1, &cur, server, len);
	return o->u.begin.id;
}

int store_session_joined(struct store *s, int64_t session_id, int64_t ts)
{
	if (session_id <= 0)
		return -EINVAL;
	int err;
	struct op *o = op_alloc(s, OP_SESSION_JOINED, 0, false, &err);
	if (!o)
		return err;
	o->u.joined.id = session_id;
	o->u.joined.ts = ts;
	return 0;
}

int store_session_end(struct store *s, int64_t session_id, int64_t ts, const char *reason)
{
	if (session_id <= 0)
		return -EINVAL;
	size_t len;
	if (str_len(reason, &len) < 0)
		return -EINVAL;
	int err;
	struct op *o = op_alloc(s, OP_SESSION_END, len, false, &err);
	if (!o)
		return err;
	char *cur = o->str;
	o->u.end.id = session_id;
	o->u.end.ts = ts;
	op_put(o, 0, &cur, reason, len);
	return 0;
}

/* A record's string length: given, or measured when the producer left it 0 (record.h). */
static inline size_t rec_len(const char *p, size_t len)
{
	return p && !len ? strlen(p) : len;
}

/* The hot path: no strlen (the record carries the lengths), no malloc (the tail block has
 * room, but once per block), one memcpy per string. */
int store_append(struct store *s, const struct record *rec)
{
	if (!rec->platform)
		return -EINVAL;
	const char *type = rec->type ? rec->type : "";
	size_t type_len = rec_len(type, rec->type_len);
	size_t nick_len = rec_len(rec->nick, rec->nick_len);
	size_t text_len = rec_len(rec->text, rec->text_len);
	size_t cid_len = rec_len(rec->cid, rec->cid_len);
	const char *data = rec->data ? rec->data : "{}";
	size_t data_len = rec->data ? rec->data_len : 2;
	size_t decoded_len = rec->decoded ? rec->decoded_len : 0;
	if (type_len > INT_MAX || nick_len > INT_MAX || text_len > INT_MAX || cid_len > INT_MAX ||
	    data_len > INT_MAX || decoded_len > INT_MAX)
		return -EINVAL;
	size_t strbytes = type_len + nick_len + text_len + cid_len + data_len + decoded_len;
	int err;
	struct op *o = op_alloc(s, OP_MESSAGE, strbytes, true, &err);
	if (!o) {
		if (err == -ENOBUFS)
			s->stats.dropped++;
		return err;
	}
	if (rec->platform != s->platform) {
		s->platform = rec->platform;
		s->platform_len = strlen(rec->platform);
	}
	o->platform = s->platform;
	o->platform_len = (uint32_t)s->platform_len;
	o->u.msg.room_id = rec->room_id;
	o->u.msg.ts = rec->ts;
	o->u.msg.session_id = rec->session_id;
	o->has_uid = rec->has_uid;
	o->u.msg.uid = rec->uid;
	o->has_level = rec->has_level;
	o->u.msg.level = rec->level;
	char *cur = o->str;
	op_put(o, S_TYPE, &cur, type, type_len);
	op_put(o, S_NICK, &cur, rec->nick, nick_len);
	op_put(o, S_TEXT, &cur, rec->text, text_len);
	op_put(o, S_CID, &cur, rec->cid, cid_len);
	op_put(o, S_DATA, &cur, data, data_len);
	op_put(o, S_DECODED, &cur, rec->decoded, decoded_len);
	return 0;
}

/* ---- the flush ---- */

/* Bind a queued string. SQLITE_STATIC: the block outlives the statement's use of it (blocks
 * are freed only after COMMIT, and every statement is reset after its step). */
static int bind_str(sqlite3_stmt *st, int i, const char *p, uint32_t len)
{
	return p ? sqlite3_bind_text(st, i, p, (int)len, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static int bind_opt_int(sqlite3_stmt *st, int i, bool has, int64_t v)
{
	return has ? sqlite3_bind_int64(st, i, v) : sqlite3_bind_null(st, i);
}

/* Bind the op's values to its statement; returns the statement, or NULL (rc in *rc). */
static sqlite3_stmt *bind_op(struct store *s, const struct op *o, int *rc)
{
	sqlite3_stmt *st = NULL;
	const char *p[OP_MAX_STR];
	const uint32_t *n = o->len;
	int r = SQLITE_OK;
	switch (o->kind) {
	case OP_ROOM:
		op_strings(o, 2, p);
		st = s->st[ST_ROOM];
		r |= bind_str(st, 1, p[0], n[0]);
		r |= sqlite3_bind_int64(st, 2, o->u.room.room_id);
		/* 0 or less: no short id (NULL keeps the one stored). */
		r |= bind_opt_int(st, 3, o->u.room.short_id > 0, o->u.room.short_id);
		r |= bind_str(st, 4, p[1], n[1]);
		r |= sqlite3_bind_int64(st, 5, o->u.room.now);
		break;
	case OP_SESSION_BEGIN:
		op_strings(o, 2, p);
		st = s->st[ST_SESSION_BEGIN];
		r |= sqlite3_bind_int64(st, 1, o->u.begin.id);
		r |= bind_str(st, 2, p[0], n[0]);
		r |= sqlite3_bind_int64(st, 3, o->u.begin.room_id);
		r |= bind_str(st, 4, p[1], n[1]);
		r |= sqlite3_bind_int64(st, 5, o->u.begin.ts);
		break;
	case OP_SESSION_JOINED:
		st = s->st[ST_SESSION_JOINED];
		r |= sqlite3_bind_int64(st, 1, o->u.joined.id);
		r |= sqlite3_bind_int64(st, 2, o->u.joined.ts);
		break;
	case OP_SESSION_END:
		op_strings(o, 1, p);
		st = s->st[ST_SESSION_END];
		r |= sqlite3_bind_int64(st, 1, o->u.end.id);
		r |= sqlite3_bind_int64(st, 2, o->u.end.ts);
		r |= bind_str(st, 3, p[0], n[0]);
		break;
	case OP_SHIPPED:
		op_strings(o, 1, p);
		st = s->st_shipped;
		r |= bind_str(st, 1, p[0], n[0]);
		r |= sqlite3_bind_int64(st, 2, o->u.shipped.messages_id);
		r |= sqlite3_bind_int64(st, 3, o->u.shipped.sessions_id);
		r |= sqlite3_bind_int64(st, 4, o->u.shipped.now);
		break;
	case OP_MESSAGE:
		op_strings(o, OP_MAX_STR, p);
		st = s->st[ST_MESSAGE];
		r |= sqlite3_bind_int64(st, 1, o->u.msg.room_id);
		r |= sqlite3_bind_int64(st, 2, o->u.msg.ts);
		r |= bind_str(st, 3, p[S_TYPE], n[S_TYPE]);
		r |= bind_opt_int(st, 4, o->has_uid, o->u.msg.uid);
		r |= bind_str(st, 5, p[S_NICK], n[S_NICK]);
		r |= bind_opt_int(st, 6, o->has_level, o->u.msg.level);
		r |= bind_str(st, 7, p[S_TEXT], n[S_TEXT]);
		r |= bind_str(st, 8, p[S_CID], n[S_CID]);
		/* No session (its begin failed): NULL rather than a dangling id. */
		r |= bind_opt_int(st, 9, o->u.msg.session_id > 0, o->u.msg.session_id);
		r |= bind_str(st, 10, p[S_DATA], n[S_DATA]);
		r |= sqlite3_bind_text(st, 11, o->platform, (int)o->platform_len, SQLITE_STATIC);
		r |= bind_str(st, 12, p[S_DECODED], n[S_DECODED]);
		break;
	}
	/* Bind calls return SQLITE_OK (0) or an error: OR-ing them keeps "non-zero = failed". */
	if (r != SQLITE_OK) {
		*rc = sqlite3_errcode(s->db);
		if (*rc == SQLITE_OK)
			*rc = SQLITE_ERROR;
		sqlite3_reset(st);
		return NULL;
	}
	return st;
}

/* Step a statement that returns no rows, then reset it. */
static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int count_grow(struct store *s)
{
	size_t cap = s->counts_cap ? s->counts_cap * 2 : 64;
	struct session_count *c = calloc(cap, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < s->counts_cap; i++) {
		if (!s->counts[i].id)
			continue;
		size_t j = (size_t)s->counts[i].id & (cap - 1);
		while (c[j].id)
			j = (j + 1) & (cap - 1);
		c[j] = s->counts[i];
	}
	free(s->counts);
	s->counts = c;
	s->counts_cap = cap;
	return 0;
}

static void count_apply_discard(struct store *s)
{
	if (s->counts_used)
		memset(s->counts, 0, s->counts_cap * sizeof(*s->counts));
	s->counts_used = 0;
}

static int count_add(struct store *s, int64_t id)
{
	if (s->counts_used * 2 >= s->counts_cap && count_grow(s) < 0)
		return -ENOMEM;
	size_t mask = s->counts_cap - 1, j = (size_t)id & mask;
	while (s->counts[j].id && s->counts[j].id != id)
		j = (j + 1) & mask;
	if (!s->counts[j].id) {
		s->counts[j].id = id;
		s->counts_used++;
	}
	s->counts[j].n++;
	return 0;
}

/* Add this flush's per-session counts (inside its transaction) and empty the table. */
static int count_apply(struct store *s)
{
	int rc = SQLITE_OK;
	for (size_t i = 0; i < s->counts_cap && s->counts_used; i++) {
		struct session_count *c = &s->counts[i];
		if (!c->id)
			continue;
		if (rc == SQLITE_OK) {
			sqlite3_stmt *st = s->st[ST_SESSION_COUNT];
			sqlite3_bind_int64(st, 1, c->id);
			sqlite3_bind_int64(st, 2, c->n);
			rc = step_done(st);
		}
		c->id = 0;
		c->n = 0;
		s->counts_used--;
	}
	return rc;
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* A block whose ops are all committed: keep one of the usual size for the next append. */
static void block_release(struct store *s, struct block *b)
{
	s->stats.queued_bytes -= b->cap;
	if (!s->spare && b->cap == s->block_size)
		s->spare = b;
	else
		free(b);
}

/* Bindings point into blocks about to be freed (hygiene: every bind is redone before a step). */
static void clear_bindings(struct store *s)
{
	for (int i = ST_ROOM; i < ST_COUNT; i++)
		if (s->st[i])
			sqlite3_clear_bindings(s->st[i]);
	if (s->st_shipped)
		sqlite3_clear_bindings(s->st_shipped);
}

/*
 * One transaction over the oldest ops, which may stay open across calls (and loop turns):
 *  1. BEGIN IMMEDIATE when none is open (fails fast with -EBUSY when another writer holds the
 *     database);
 *  2. replay ops from where the transaction got to, with the cached statements, until the
 *     time budget (checked every 32 rows) or until the transaction holds max_rows, counting
 *     inserted and ignored (duplicate cid) messages locally. A budget that runs out first
 *     leaves the transaction open and returns -EAGAIN: a slice stays short for the loop while
 *     a transaction still carries thousands of rows, which is what makes SQLite cheap per
 *     row (with 5 ms transactions of ~600 rows, danmakud cost 1.6x more CPU per message);
 *  3. once the transaction is full or has reached the end of the queue: feed the full-text
 *     index, in one statement, every row with text above the highest row it holds (the index
 *     covers exactly the rows with text up to that id, other programs' writes keep it so
 *     through the triggers, and new rows get ids above it: no AUTOINCREMENT, SQLite gives
 *     max(rowid) + 1), five times cheaper than the trigger per row our connection does not
 *     run (README "Full-text search"); then COMMIT, and only then free the blocks it finished,
 *     advance the head and add the counts to the stats.
 * On any error: ROLLBACK, keep the queue as it was, count the failed flush and keep sqlite's
 * message for store_last_error.
 */
int store_flush_for(struct store *s, size_t max_rows, uint64_t budget_ns)
{
	if (!s->txn.open && !s->stats.queued_rows)
		return 0;
	uint64_t start = budget_ns ? now_ns() : 0;
	const char *what = "begin";
	int rc;
	if (!s->txn.open) {
		/* A database file deleted or renamed while open still takes writes through our
		 * open descriptors, and the rows would vanish with the process: refuse, keep the
		 * queue. */
		int moved = 0;
		if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) ==
		        SQLITE_OK &&
		    moved) {
			snprintf(s->err, sizeof(s->err),
				 "the database file was deleted or moved while open (restart "
				 "danmakud to create a new one)");
			s->stats.failed_flushes++;
			return -ENOENT;
		}
		rc = step_done(s->st[ST_BEGIN]);
		if (rc != SQLITE_OK)
			goto fail;
		s->txn.open = true;
		s->txn.block = s->head;
		s->txn.off = s->pos;
		s->txn.rows = s->txn.inserted = s->txn.ignored = s->txn.session_edges = 0;
	}
	size_t n = 0;
	while (s->txn.rows < s->stats.queued_rows && (max_rows == 0 || s->txn.rows < max_rows)) {
		struct block *b = s->txn.block;
		if (s->txn.off == b->used) {
			s->txn.block = b->next;
			s->txn.off = 0;
			continue;
		}
		const struct op *o = (const struct op *)(b->data + s->txn.off);
		what = "bind";
		sqlite3_stmt *st = bind_op(s, o, &rc);
		if (!st)
			goto fail;
		what = "write";
		rc = step_done(st);
		if (rc != SQLITE_OK)
			goto fail;
		if (o->kind == OP_MESSAGE) {
			if (sqlite3_changes(s->db) > 0) {
				s->txn.inserted++;
				if (o->u.msg.session_id > 0 && count_add(s, o->u.msg.session_id) < 0) {
					rc = SQLITE_NOMEM;
					goto fail;
				}
			} else {
				s->txn.ignored++;
			}
		} else if (o->kind == OP_SESSION_JOINED || o->kind == OP_SESSION_END) {
			s->txn.session_edges++;
		}
		s->txn.off += o->size;
		s->txn.rows++;
		n++;
		if (budget_ns && n % 32 == 0 && now_ns() - start >= budget_ns)
			break;
	}
	if (s->txn.rows < s->stats.queued_rows && (max_rows == 0 || s->txn.rows < max_rows))
		return -EAGAIN; /* the budget ran out first: the transaction goes on next time */
	if (s->has_fts) {
		what = "full-text index";
		rc = step_done(s->st[ST_FTS_FEED]);
		if (rc != SQLITE_OK)
			goto fail;
	}
	what = "write";
	rc = count_apply(s);
	if (rc != SQLITE_OK)
		goto fail;
	what = "commit";
	rc = step_done(s->st[ST_COMMIT]);
	if (rc != SQLITE_OK)
		goto fail;
	s->txn.open = false;

	/* Committed: everything before (txn.block, txn.off) is in the database. */
	clear_bindings(s);
	while (s->head != s->txn.block) {
		struct block *next = s->head->next;
		block_release(s, s->head);
		s->head = next;
	}
	s->pos = s->txn.off;
	s->stats.queued_rows -= s->txn.rows;
	if (!s->stats.queued_rows) {
		/* The block reached is the tail and holds nothing more. */
		block_release(s, s->head);
		s->head = s->tail = NULL;
		s->pos = 0;
	}
	s->stats.committed += s->txn.inserted;
	s->stats.duplicates += s->txn.ignored;
	s->stats.session_edges += s->txn.session_edges;
	return s->stats.queued_rows ? -EAGAIN : 0;

fail:;
	count_apply_discard(s);
	int ret = db_fail(s, rc, what);
	if (!sqlite3_get_autocommit(s->db))
		step_done(s->st[ST_ROLLBACK]);
	s->txn.open = false;
	clear_bindings(s);
	s->stats.failed_flushes++;
	return ret;
}

int store_flush(struct store *s, size_t max_rows)
{
	return store_flush_for(s, max_rows, 0);
}

void store_get_stats(const struct store *s, struct store_stats *out)
{
	*out = s->stats;
}

const char *store_last_error(const struct store *s)
{
	return s && s->err[0] ? s->err : "no error";
}

/* ---- one writer per database ---- */

/* The pid holding a flock on the file (fd is ours, open on it), from /proc/locks; 0 when it
 * cannot be told (no /proc, another pid namespace). */
static long lock_holder(int fd)
{
	struct stat st;
	FILE *f = fstat(fd, &st) == 0 ? fopen("/proc/locks", "re") : NULL;
	if (!f)
		return 0;
	char line[256];
	long pid = 0;
	while (!pid && fgets(line, sizeof(line), f)) {
		/* "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" */
		char kind[16];
		long p;
		unsigned maj, min;
		unsigned long long ino;
		if (sscanf(line, "%*[^:]: %15s %*s %*s %ld %x:%x:%llu", kind, &p, &maj, &min, &ino) ==
			5 &&
		    strcmp(kind, "FLOCK") == 0 && ino == (unsigned long long)st.st_ino &&
		    maj == major(st.st_dev) && min == minor(st.st_dev) && p != (long)getpid())
			pid = p;
	}
	fclose(f);
	return pid;
}

int store_lock(const char *path, bool create, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | (create ? O_CREAT : 0), 0644);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot open for writing: %s",
		         e == EROFS ? "the file system is read-only" : strerror(e));
		return -e;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return fd;
	int e = errno;
	if (e != EWOULDBLOCK) {
		snprintf(err, errlen, "cannot lock: %s", strerror(e));
		close(fd);
		return -e;
	}
	long pid = lock_holder(fd);
	if (pid > 0)
		snprintf(err, errlen, "database is in use by pid %ld", pid);
	else
		snprintf(err, errlen, "database is in use by another process");
	close(fd);
	return -EBUSY;
}

/* ---- shipping to another store (ship.c): how far it got, and local retention ---- */

static const char shipping_sql[] =
	"CREATE TABLE IF NOT EXISTS shipping (  -- how far rows were copied to another store\n"
	"  target       TEXT PRIMARY KEY,         -- PostgreSQL: its danmakud_schema.store_id\n"
	"  messages_id  INTEGER NOT NULL DEFAULT 0, -- every message with id <= this is there\n"
	"  sessions_id  INTEGER NOT NULL DEFAULT 0, -- no session below this changes unshipped\n"
	"  updated_at   INTEGER\n"
	")";

int store_shipping_get(struct store *s, const char *target, int64_t *messages_id,
		       int64_t *sessions_id)
{
	/* Not inside a flush's open transaction: a rollback would take the table away from
	 * under the prepared statement. */
	if (s->txn.open)
		return -EAGAIN;
	int rc = exec(s, shipping_sql, "create the shipping table");
	if (rc < 0)
		return rc;
	if (!s->st_shipped) {
		int r = sqlite3_prepare_v3(
			s->db,
			"INSERT INTO shipping(target, messages_id, sessions_id, updated_at) "
			"VALUES(?1, ?2, ?3, ?4) ON CONFLICT(target) DO UPDATE SET "
			"messages_id = excluded.messages_id, sessions_id = excluded.sessions_id, "
			"updated_at = excluded.updated_at",
			-1, SQLITE_PREPARE_PERSISTENT, &s->st_shipped, NULL);
		if (r != SQLITE_OK)
			return db_fail(s, r, "prepare shipping");
	}
	sqlite3_stmt *st;
	int r = sqlite3_prepare_v2(
		s->db, "SELECT messages_id, sessions_id FROM shipping WHERE target = ?1", -1, &st,
		NULL);
	if (r != SQLITE_OK)
		return db_fail(s, r, "read shipping");
	sqlite3_bind_text(st, 1, target, -1, SQLITE_STATIC);
	*messages_id = *sessions_id = 0;
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		*messages_id = sqlite3_column_int64(st, 0);
		*sessions_id = sqlite3_column_int64(st, 1);
		r = SQLITE_DONE;
	}
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? 0 : db_fail(s, r, "read shipping");
}

int store_shipped(struct store *s, const char *target, int64_t messages_id, int64_t sessions_id,
		  int64_t now_ms)
{
	if (!s->st_shipped || !target)
		return -EINVAL;
	size_t len = strlen(target);
	int err;
	struct op *o = op_alloc(s, OP_SHIPPED, len, false, &err);
	if (!o)
		return err;
	char *cur = o->str;
	o->u.shipped.messages_id = messages_id;
	o->u.shipped.sessions_id = sessions_id;
	o->u.shipped.now = now_ms;
	op_put(o, 0, &cur, target, len);
	return 0;
}

/*
 * The oldest max_rows messages that may go: shipped, older than before_ts, and never the
 * newest row (SQLite gives a new row max(id) + 1: were the newest deleted, ids would be
 * reused below what was shipped, and those rows never shipped). The full-text index forgets
 * them first (our connection runs no triggers).
 */
#define RETAIN_PICK                                                                              \
	"SELECT id FROM messages WHERE id <= ?1 AND id < (SELECT max(id) FROM messages) "        \
	"ORDER BY id LIMIT ?3"

int store_retain(struct store *s, int64_t shipped_id, int64_t before_ts, size_t max_rows)
{
	if (s->txn.open)
		return -EAGAIN;
	static const char fts_sql[] =
		"INSERT INTO messages_fts(messages_fts, rowid, text) SELECT 'delete', id, text "
		"FROM messages WHERE id IN (" RETAIN_PICK ") AND ts < ?2 AND text IS NOT NULL";
	static const char del_sql[] =
		"DELETE FROM messages WHERE id IN (" RETAIN_PICK ") AND ts < ?2";
	int rc = exec(s, "BEGIN IMMEDIATE", "retain: begin");
	if (rc < 0)
		return rc;
	int deleted = 0;
	for (int i = s->has_fts ? 0 : 1; i < 2; i++) {
		sqlite3_stmt *st;
		int r = sqlite3_prepare_v2(s->db, i ? del_sql : fts_sql, -1, &st, NULL);
		if (r == SQLITE_OK) {
			sqlite3_bind_int64(st, 1, shipped_id);
			sqlite3_bind_int64(st, 2, before_ts);
			sqlite3_bind_int64(st, 3, (int64_t)max_rows);
			r = sqlite3_step(st);
			sqlite3_finalize(st);
			r = r == SQLITE_DONE ? SQLITE_OK : r;
		}
		if (r != SQLITE_OK) {
			rc = db_fail(s, r, "retain");
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return rc;
		}
		if (i == 1)
			deleted = sqlite3_changes(s->db);
	}
	rc = exec(s, "COMMIT", "retain: commit");
	if (rc < 0) {
		if (!sqlite3_get_autocommit(s->db))
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return deleted;
}

int store_reclaim(struct store *s, unsigned pages)
{
	if (s->txn.open)
		return -EAGAIN;
	int64_t free_pages = 0;
	int rc = 0;
	if (s->reclaim) {
		char sql[64];
		snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%u)", pages ? pages : 1);
		rc = exec(s, sql, "incremental vacuum");
		if (rc == 0)
			rc = query_int(s, "PRAGMA freelist_count", &free_pages);
	}
	/* The pages went back into the WAL first: write them home and cut the WAL short. */
	if (rc == 0 && free_pages == 0)
		sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	return rc < 0 ? rc : (int)(free_pages > INT32_MAX ? INT32_MAX : free_pages);
}

bool store_can_reclaim(const struct store *s)
{
	return s->reclaim;
}
