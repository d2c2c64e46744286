/*
 * pg_schema: the PostgreSQL schema (version 1 of PG-SPEC.md) as a list of statements, for the
 * shipping code to run in one transaction on an empty database. The tables are the spec's; the
 * views are the SQLite views of store.c (schema_views_v3*) translated one by one, with the
 * same names, columns and column order, so that README "Asking the database" reads the same on
 * both: times (time, gap_from, gap_to, session_start, last_message) become timestamptz
 * (to_timestamp(ms / 1000.0::float8): the same value as through numeric, at half the cost over
 * a room's rows), day a date in the session's TimeZone, REAL is double precision except for
 * money (value_cny, price_cny: numeric, so that README's round(sum(value_cny), 2) works),
 * json_extract(data, '$.a.b') becomes data #>> '{a,b}', and SQLite's 0/1 stay integers (so that
 * `live = 1` and `sum(robot)` keep working).
 *
 * Two things differ because PostgreSQL holds the rows of several recorders (nodes):
 * gaps orders the sessions of every node together (time is covered when any node covered it;
 * the running max of the coverage end does the union), an unended session covers up to the
 * last message of that session itself (messages.session_id), found before the next join of the
 * same node (or, its node's latest, up to the node's seen_at), and reason is the end_reason of
 * the session whose end opened the gap; room_stats calls a room live when the latest session
 * of any node joined and has not ended. With one node both give what SQLite gives.
 *
 * SQLite's CAST(x AS INTEGER) and arithmetic on JSON text never fail (a non-number is 0);
 * PostgreSQL's casts raise an error, and one hostile message would then break every question
 * over its room. The views therefore cast through danmakud_int() and danmakud_real(), which
 * take the longest numeric prefix like SQLite does (NULL stays NULL, JSON true is 1).
 */
#include "pg_schema.h"

/* clang-format off */
/* The number danmakud_real() reads: sign, digits and point, exponent (first group). */
#define PG_REAL_PREFIX \
	"'^\\s*([-+]?([0-9]{1,200}(\\.[0-9]{0,200})?|\\.[0-9]{1,200})([eE][-+]?[0-9]{1,3}(?![0-9]))?)'"

static const char tables_a[] =
	"CREATE TABLE danmakud_schema (\n"
	"  version integer NOT NULL,\n"
	"  store_id uuid NOT NULL DEFAULT gen_random_uuid(),\n"
	"  migrated_at timestamptz NOT NULL DEFAULT now())";
static const char tables_b[] =
	"CREATE TABLE rooms (\n"
	"  platform text NOT NULL, room_id bigint NOT NULL, label text, added_at bigint NOT NULL,\n"
	"  short_id bigint,\n"
	"  PRIMARY KEY (platform, room_id))";
static const char tables_c[] =
	"CREATE TABLE sessions (\n"
	"  id bigserial PRIMARY KEY,\n"
	"  room_id bigint NOT NULL, server text NOT NULL, started_at bigint NOT NULL,\n"
	"  joined_at bigint, ended_at bigint, end_reason text,\n"
	"  messages bigint NOT NULL DEFAULT 0, platform text NOT NULL,\n"
	"  node text NOT NULL,       -- the recorder that recorded it\n"
	"  local_id bigint NOT NULL, -- its id in that recorder's SQLite database\n"
	"  UNIQUE (node, local_id))";
/* One partition per UTC month (messages_yYYYYmMM), made by danmakud_partitions(). */
static const char tables_d[] =
	"CREATE TABLE messages (\n"
	"  id bigserial NOT NULL, room_id bigint NOT NULL, ts bigint NOT NULL, type text NOT NULL,\n"
	"  uid bigint, nick text, level integer, text text, cid text,\n"
	"  session_id bigint,        -- sessions.id of the session that stored it\n"
	"  data jsonb NOT NULL, platform text NOT NULL, decoded jsonb,\n"
	"  node text NOT NULL, local_id bigint NOT NULL,\n"
	"  UNIQUE (node, local_id, ts)\n"
	") PARTITION BY RANGE (ts)";
static const char tables_e[] =
	"CREATE TABLE message_cids (\n"
	"  platform text NOT NULL, room_id bigint NOT NULL, cid text NOT NULL, ts bigint NOT NULL,\n"
	"  PRIMARY KEY (platform, room_id, cid))";
static const char tables_f[] =
	"CREATE TABLE nodes (\n"
	"  node text PRIMARY KEY, mode text NOT NULL, started_at timestamptz, seen_at timestamptz,\n"
	"  expires_at timestamptz, rooms integer, max_rooms integer, shipped_id bigint,\n"
	"  backlog bigint, version text)";
static const char tables_g[] =
	"CREATE TABLE room_offers (\n"
	"  node text NOT NULL, platform text NOT NULL, room_id bigint NOT NULL, label text,\n"
	"  PRIMARY KEY (node, platform, room_id))";
static const char tables_h[] =
	"CREATE TABLE room_leases (\n"
	"  platform text NOT NULL, room_id bigint NOT NULL, label text, node text,\n"
	"  expires_at timestamptz NOT NULL DEFAULT '-infinity', since timestamptz,\n"
	"  PRIMARY KEY (platform, room_id))";

/*
 * The indexes of SQLite's v3 schema, under the same names. The cid index is not unique here
 * (a unique index of a partitioned table must contain ts): message_cids is the dedup; this one
 * serves the gifts view's SEND_GIFT lookup. Indexes on the partitioned table are created on
 * every partition, present and future.
 */
static const char index_a[] = "CREATE INDEX messages_room_ts ON messages (room_id, ts)";
static const char index_b[] =
	"CREATE INDEX messages_uid_ts ON messages (uid, ts) WHERE uid IS NOT NULL";
static const char index_c[] =
	"CREATE INDEX messages_platform_room_cid ON messages (platform, room_id, cid)\n"
	"  WHERE cid IS NOT NULL";
static const char index_d[] =
	"CREATE INDEX messages_live ON messages (room_id, ts)\n"
	"  WHERE type IN ('rss', 'LIVE', 'PREPARING')";
static const char index_e[] =
	"CREATE INDEX sessions_room_platform_started ON sessions (room_id, platform, started_at)";

/*
 * danmakud_partitions(lo, hi): makes sure every UTC month from lo's to hi's (ms) has its
 * partition. The common case (all there) takes no lock. Otherwise it serialises with other
 * callers on a transaction-scoped advisory lock and looks again, so that two recorders
 * reaching a new month together do not both create it. IF NOT EXISTS as well: to_regclass
 * after the lock can still answer from this backend's catalog cache, which has not yet read
 * the other caller's commit (seen in test_pg_views), and a plain CREATE would then fail the
 * caller's transaction; client_min_messages keeps that case's NOTICE ("already exists,
 * skipping") off the caller's log. Creating a partition takes an ACCESS
 * EXCLUSIVE lock on messages until the caller commits: call it before inserting into messages
 * in that transaction (a caller holding messages and waiting for the advisory lock can
 * deadlock with the holder), and ahead of time for the next month. search_path is the one the
 * schema was created with, so that the partitions go next to messages whoever calls.
 */
static const char func_partitions[] =
	"CREATE FUNCTION danmakud_partitions(lo bigint, hi bigint) RETURNS void\n"
	"LANGUAGE plpgsql SET client_min_messages = warning SET search_path FROM CURRENT AS $fn$\n"
	"DECLARE\n"
	"  first_month timestamp;\n"
	"  last_month timestamp;\n"
	"  m timestamp;\n"
	"  part text;\n"
	"  missing boolean := false;\n"
	"BEGIN\n"
	"  IF lo IS NULL OR hi IS NULL OR lo > hi THEN\n"
	"    RAISE EXCEPTION 'danmakud_partitions(%, %): not a range of ms', lo, hi;\n"
	"  END IF;\n"
	"  first_month := date_trunc('month', to_timestamp(lo / 1000.0) AT TIME ZONE 'UTC');\n"
	"  last_month := date_trunc('month', to_timestamp(hi / 1000.0) AT TIME ZONE 'UTC');\n"
	"  IF last_month >= first_month + interval '1200 months' THEN\n"
	"    RAISE EXCEPTION 'danmakud_partitions(%, %): more than 1200 months', lo, hi;\n"
	"  END IF;\n"
	"  m := first_month;\n"
	"  WHILE m <= last_month AND NOT missing LOOP\n"
	"    missing := to_regclass(format('messages_y%sm%s', to_char(m, 'YYYY'),\n"
	"                                  to_char(m, 'MM'))) IS NULL;\n"
	"    m := m + interval '1 month';\n"
	"  END LOOP;\n"
	"  IF NOT missing THEN\n"
	"    RETURN;\n"
	"  END IF;\n"
	"  PERFORM pg_advisory_xact_lock(hashtext('danmakud partitions'));\n"
	"  m := first_month;\n"
	"  WHILE m <= last_month LOOP\n"
	"    part := format('messages_y%sm%s', to_char(m, 'YYYY'), to_char(m, 'MM'));\n"
	"    IF to_regclass(part) IS NULL THEN\n"
	"      EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF messages\n"
	"                      FOR VALUES FROM (%s) TO (%s)', part,\n"
	"                     (extract(epoch FROM m) * 1000)::bigint,\n"
	"                     (extract(epoch FROM m + interval '1 month') * 1000)::bigint);\n"
	"    END IF;\n"
	"    m := m + interval '1 month';\n"
	"  END LOOP;\n"
	"END\n"
	"$fn$";

/*
 * SQLite's CAST(t AS INTEGER) on text: the integer prefix after white space, clamped to 64 bits,
 * 0 when there is none; JSON true (which json_extract gives as 1) is 1. One expression, so that
 * the planner can inline it into the views.
 */
static const char func_int[] =
	"CREATE FUNCTION danmakud_int(t text) RETURNS bigint\n"
	"LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$\n"
	"  SELECT CASE WHEN t IS NULL THEN NULL\n"
	"              WHEN t ~ '^\\s*[-+]?0*[0-9]{1,19}(?![0-9])'\n"
	"              THEN least(greatest(substring(t FROM '^\\s*([-+]?[0-9]+)')::numeric,\n"
	"                                  -9223372036854775808), 9223372036854775807)::bigint\n"
	"              WHEN t ~ '^\\s*-[0-9]' THEN -9223372036854775808\n"
	"              WHEN t ~ '^\\s*[+]?[0-9]' THEN 9223372036854775807\n"
	"              WHEN t = 'true' THEN 1\n"
	"              ELSE 0 END\n"
	"$fn$";

/*
 * SQLite's CAST(t AS REAL) likewise: the decimal prefix (with its exponent) as a double,
 * clamped to its range, 0 when there is none. A prefix of more than 200 digits on either side
 * of the point, or an exponent of more than 3 digits, is not read (0 or the shorter number):
 * the regular expressions bound every string that reaches the numeric input.
 */
static const char func_real[] =
	"CREATE FUNCTION danmakud_real(t text) RETURNS double precision\n"
	"LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$\n"
	"  SELECT CASE WHEN t IS NULL THEN NULL\n"
	"              WHEN t ~ '^\\s*[-+]?([0-9]{1,200}(\\.[0-9]{0,200})?|\\.[0-9]{1,200})(?![0-9])'\n"
	"              THEN CASE WHEN abs(substring(t FROM " PG_REAL_PREFIX ")::numeric) < 1e-300\n"
	"                        THEN 0\n"
	"                        ELSE least(greatest(substring(t FROM " PG_REAL_PREFIX ")::numeric,\n"
	"                                            -1e308), 1e308) END::double precision\n"
	"              WHEN t = 'true' THEN 1\n"
	"              ELSE 0 END\n"
	"$fn$";

/*
 * danmakud_last_ts(session, platform, room, lo, hi): the ts of the session's last message in
 * [lo, hi), NULL when none, for gaps. A function rather than a subquery in the view only for
 * the planner: it cannot know that a session's messages lie between its join and the next one,
 * so a subquery per session is costed as a walk over the room's history, and gaps over every
 * room then crossed jit_above_cost and spent seconds compiling what runs in milliseconds.
 * The function's cost is the declared one.
 */
static const char func_last_ts[] =
	"CREATE FUNCTION danmakud_last_ts(bigint, text, bigint, bigint, bigint) RETURNS bigint\n"
	"LANGUAGE sql STABLE PARALLEL SAFE COST 10 SET search_path FROM CURRENT AS $fn$\n"
	"  SELECT m.ts FROM messages m\n"
	"  WHERE m.room_id = $3 AND m.platform = $2 AND m.session_id = $1\n"
	"    AND m.ts >= $4 AND m.ts < $5\n"
	"  ORDER BY m.ts DESC LIMIT 1\n"
	"$fn$";

/* chat, gifts: as SQLite's schema_views_v3. */
static const char view_chat[] =
	"CREATE VIEW chat AS\n"
	"  SELECT to_timestamp(ts / 1000.0::float8) AS time,\n"
	"         platform, room_id, uid, nick, level, text,\n"
	"         (platform = 'douyu' AND coalesce(data ->> 'dms', '') = '')::integer AS robot,\n"
	"         (platform = 'bilibili' AND coalesce(uid = 0 AND nick LIKE '%***', false))::integer\n"
	"           AS masked,\n"
	"         CASE WHEN platform = 'bilibili' THEN danmakud_int(data #>> '{info,0,4}')\n"
	"              WHEN danmakud_int(data ->> 'cst') < 100000000000\n"
	"              THEN danmakud_int(data ->> 'cst') * 1000\n"
	"              ELSE danmakud_int(data ->> 'cst') END AS sent_at,\n"
	"         ts, id, session_id\n"
	"  FROM messages\n"
	"  WHERE type IN ('chatmsg', 'DANMU_MSG')\n"
	"    AND platform = CASE type WHEN 'chatmsg' THEN 'douyu' ELSE 'bilibili' END";

static const char view_gifts[] =
	"CREATE VIEW gifts AS\n"
	"  SELECT to_timestamp(ts / 1000.0::float8) AS time,\n"
	"         platform, room_id, uid, nick,\n"
	"         danmakud_int(CASE type WHEN 'dgb' THEN data ->> 'gfid'\n"
	"                                WHEN 'SEND_GIFT' THEN data #>> '{data,giftId}'\n"
	"                                ELSE decoded ->> 'gift_id' END) AS gift_id,\n"
	"         CASE type WHEN 'dgb' THEN data ->> 'gfn'\n"
	"                   WHEN 'SEND_GIFT' THEN data #>> '{data,giftName}'\n"
	"                   ELSE decoded ->> 'gift_name' END AS gift_name,\n"
	"         coalesce(danmakud_int(CASE type WHEN 'dgb' THEN data ->> 'gfcnt'\n"
	"                                         WHEN 'SEND_GIFT' THEN data #>> '{data,num}'\n"
	"                                         ELSE decoded ->> 'num' END), 1) AS count,\n"
	"         danmakud_int(data ->> 'hits') AS hits,\n"
	"         bili ->> 'coin_type' AS coin_type,\n"
	"         CASE bili ->> 'coin_type'\n"
	"           WHEN 'gold' THEN (coalesce(danmakud_real(bili ->> 'total_coin'),\n"
	"                                      danmakud_real(bili ->> 'price')\n"
	"                                      * danmakud_real(bili ->> 'num')) / 1000)::numeric\n"
	"           WHEN 'silver' THEN 0.0 END AS value_cny,\n"
	"         ts, id\n"
	"  FROM (SELECT m.*, CASE m.type WHEN 'SEND_GIFT' THEN m.data -> 'data'\n"
	"                                WHEN 'SEND_GIFT_V2' THEN m.decoded END AS bili\n"
	"        FROM messages m\n"
	"        WHERE m.type IN ('dgb', 'SEND_GIFT', 'SEND_GIFT_V2')\n"
	"          AND m.platform = CASE m.type WHEN 'dgb' THEN 'douyu' ELSE 'bilibili' END\n"
	"          AND (m.type <> 'SEND_GIFT_V2' OR NOT EXISTS (\n"
	"                 SELECT 1 FROM messages v1 WHERE v1.platform = 'bilibili'\n"
	"                   AND v1.room_id = m.room_id\n"
	"                   AND v1.cid = 'SEND_GIFT:' || (m.decoded ->> 'tid')))) g";

/* superchats, live: as SQLite's schema_views_v3b. */
static const char view_superchats[] =
	"CREATE VIEW superchats AS\n"
	"  SELECT to_timestamp(ts / 1000.0::float8) AS time,\n"
	"         platform, room_id,\n"
	"         coalesce(uid, danmakud_int(data #>> '{data,uid}')) AS uid,\n"
	"         coalesce(nick, data #>> '{data,user_info,uname}') AS nick,\n"
	"         coalesce(text, data #>> '{data,message}') AS text,\n"
	"         CASE type WHEN 'comm_chatmsg'\n"
	"              THEN danmakud_int(data ->> 'cprice') * 0.01\n"
	"              ELSE danmakud_real(data #>> '{data,price}')::numeric END AS price_cny,\n"
	"         CASE type WHEN 'comm_chatmsg' THEN danmakud_int(data ->> 'cet')\n"
	"              ELSE coalesce(danmakud_int(data #>> '{data,time}'),\n"
	"                            danmakud_int(data #>> '{data,end_time}')\n"
	"                            - danmakud_int(data #>> '{data,start_time}')) END AS duration_s,\n"
	"         ts, id\n"
	"  FROM messages\n"
	"  WHERE type IN ('comm_chatmsg', 'SUPER_CHAT_MESSAGE')\n"
	"    AND platform = CASE type WHEN 'comm_chatmsg' THEN 'douyu' ELSE 'bilibili' END\n"
	"    AND (type <> 'comm_chatmsg' OR danmakud_int(data ->> 'cprice') > 0)";

static const char view_live[] =
	"CREATE VIEW live AS\n"
	"  SELECT to_timestamp(ts / 1000.0::float8) AS time,\n"
	"         platform, room_id,\n"
	"         CASE type WHEN 'rss' THEN danmakud_int(data ->> 'ss')\n"
	"                   ELSE (type = 'LIVE')::integer END AS live,\n"
	"         CASE type WHEN 'rss' THEN coalesce(danmakud_int(data ->> 'ivl'), 0)\n"
	"                   ELSE (type = 'PREPARING'\n"
	"                         AND coalesce(danmakud_int(data ->> 'round'), 0) = 1)::integer\n"
	"                   END AS replay,\n"
	"         ts, id\n"
	"  FROM messages\n"
	"  WHERE type IN ('rss', 'LIVE', 'PREPARING')\n"
	"    AND platform = CASE type WHEN 'rss' THEN 'douyu' ELSE 'bilibili' END";

/*
 * gaps: SQLite's, over the sessions of every node. s: the next join of the same node (a
 * session's own messages stop before it). e: where each joined session's coverage ends; an
 * unended one at its last own message at or after its join (danmakud_last_ts; the lower bound
 * keeps the backward index walk short when it has none). An unended session that is its node's latest
 * in the room may still be recording (a silent room stores nothing): it also covers up to its
 * node's nodes.seen_at, when the node's run (nodes.started_at) began before the session; a
 * session of an earlier run was cut short by a crash. Without a nodes row, or with one room
 * and one node, this is SQLite's rule. r: the running max of the ends before each join, as an
 * array [end, id] so that the session that set it is known; reason is that session's
 * end_reason. Every window is partitioned by the room, so a filter on platform or room_id
 * reaches sessions_room_platform_started.
 */
static const char view_gaps[] =
	"CREATE VIEW gaps AS\n"
	"  WITH s AS (\n"
	"    SELECT id, platform, room_id, node, started_at, joined_at, ended_at,\n"
	"           lead(joined_at) OVER (PARTITION BY platform, room_id, node\n"
	"                                 ORDER BY joined_at, id) AS next_join\n"
	"    FROM sessions WHERE joined_at IS NOT NULL\n"
	"  ), e AS (\n"
	"    SELECT id, platform, room_id, joined_at,\n"
	"           coalesce(ended_at, greatest(joined_at,\n"
	"             danmakud_last_ts(id, platform, room_id, joined_at,\n"
	"                              coalesce(next_join, 9223372036854775807)), (\n"
	"             SELECT floor(extract(epoch FROM n.seen_at) * 1000)::bigint FROM nodes n\n"
	"             WHERE s.next_join IS NULL AND n.node = s.node AND isfinite(n.seen_at)\n"
	"               AND n.started_at <= to_timestamp(s.started_at / 1000.0::float8)))) AS end_at\n"
	"    FROM s\n"
	"  ), r AS (\n"
	"    SELECT platform, room_id, joined_at,\n"
	"           max(ARRAY[end_at, id]) OVER (PARTITION BY platform, room_id\n"
	"                                        ORDER BY joined_at, id\n"
	"                                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)\n"
	"             AS prev\n"
	"    FROM e\n"
	"  )\n"
	"  SELECT platform, room_id,\n"
	"         to_timestamp(prev[1] / 1000.0::float8) AS gap_from,\n"
	"         to_timestamp(joined_at / 1000.0::float8) AS gap_to,\n"
	"         (joined_at - prev[1]) / 1000.0::float8 AS seconds,\n"
	"         (SELECT sessions.end_reason FROM sessions WHERE sessions.id = prev[2]) AS reason,\n"
	"         prev[1] AS from_ts, joined_at AS to_ts\n"
	"  FROM r WHERE joined_at > prev[1]";

/* daily, room_stats: as SQLite's schema_views_v3c. */
static const char view_daily[] =
	"CREATE VIEW daily AS\n"
	"  SELECT to_timestamp(ts / 1000.0::float8)::date AS day, platform, room_id,\n"
	"         count(*) AS messages,\n"
	"         count(*) FILTER (WHERE type IN ('chatmsg', 'DANMU_MSG')) AS chats,\n"
	"         count(DISTINCT CASE WHEN type IN ('chatmsg', 'DANMU_MSG') THEN uid END) AS chatters,\n"
	"         count(*) FILTER (WHERE type IN ('dgb', 'SEND_GIFT')\n"
	"                             OR type = 'SEND_GIFT_V2' AND NOT EXISTS (\n"
	"                                  SELECT 1 FROM messages v1\n"
	"                                  WHERE v1.platform = messages.platform\n"
	"                                    AND v1.room_id = messages.room_id\n"
	"                                    AND v1.cid = 'SEND_GIFT:' || (messages.decoded ->> 'tid')))\n"
	"           AS gifts\n"
	"  FROM messages GROUP BY platform, room_id, day";

/*
 * room_stats: cur is the latest session of each node; the room is live when one of them
 * joined and has not ended, since the earliest such join.
 */
static const char view_room_stats[] =
	"CREATE VIEW room_stats AS\n"
	"  SELECT platform, room_id, short_id, label, live, session_start, messages,\n"
	"         to_timestamp(last / 1000.0::float8) AS last_message,\n"
	"         floor(extract(epoch FROM now()))::bigint - last / 1000 AS silent_s,\n"
	"         sessions, reconnects_24h\n"
	"  FROM (SELECT rooms.platform, rooms.room_id, rooms.short_id, rooms.label,\n"
	"               (cur.joined_at IS NOT NULL)::integer AS live,\n"
	"               to_timestamp(cur.joined_at / 1000.0::float8) AS session_start,\n"
	"               (SELECT coalesce(sum(sessions.messages), 0)::bigint FROM sessions\n"
	"                WHERE sessions.room_id = rooms.room_id\n"
	"                  AND sessions.platform = rooms.platform) AS messages,\n"
	"               (SELECT messages.ts FROM messages WHERE messages.room_id = rooms.room_id\n"
	"                  AND messages.platform = rooms.platform\n"
	"                ORDER BY messages.ts DESC LIMIT 1) AS last,\n"
	"               (SELECT count(*) FROM sessions WHERE sessions.room_id = rooms.room_id\n"
	"                  AND sessions.platform = rooms.platform) AS sessions,\n"
	"               (SELECT count(*) FROM sessions WHERE sessions.room_id = rooms.room_id\n"
	"                  AND sessions.platform = rooms.platform\n"
	"                  AND sessions.ended_at >= (floor(extract(epoch FROM now()))::bigint - 86400)\n"
	"                                           * 1000\n"
	"                  AND sessions.end_reason NOT IN ('shutdown', 'removed')) AS reconnects_24h\n"
	"        FROM rooms\n"
	"        LEFT JOIN LATERAL (\n"
	"          SELECT min(latest.joined_at) AS joined_at\n"
	"          FROM (SELECT DISTINCT ON (sessions.node) sessions.joined_at, sessions.ended_at\n"
	"                FROM sessions WHERE sessions.room_id = rooms.room_id\n"
	"                  AND sessions.platform = rooms.platform\n"
	"                ORDER BY sessions.node, sessions.started_at DESC, sessions.id DESC) latest\n"
	"          WHERE latest.joined_at IS NOT NULL AND latest.ended_at IS NULL) cur ON true) t";
/* clang-format on */

const char *const pg_schema_v1[] = {
    tables_a,   tables_b,        tables_c,  tables_d,  tables_e,     tables_f,
    tables_g,   tables_h,        index_a,   index_b,   index_c,      index_d,
    index_e,    func_partitions, func_int,  func_real, func_last_ts, view_chat,
    view_gifts, view_superchats, view_live, view_gaps, view_daily,   view_room_stats,
};
const size_t pg_schema_v1_count = sizeof(pg_schema_v1) / sizeof(pg_schema_v1[0]);
