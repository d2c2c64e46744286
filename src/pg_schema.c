/* pg_schema: see pg_schema.h. (Tables only: the views follow.) */
#include "pg_schema.h"

const char *const pg_schema_v1[] = {
	"CREATE TABLE danmakud_schema (version integer NOT NULL,\n"
	"  store_id uuid NOT NULL DEFAULT gen_random_uuid(),\n"
	"  migrated_at timestamptz NOT NULL DEFAULT now())",
	"CREATE TABLE rooms (platform text NOT NULL, room_id bigint NOT NULL, label text,\n"
	"  added_at bigint NOT NULL, short_id bigint, PRIMARY KEY (platform, room_id))",
	"CREATE TABLE sessions (id bigserial PRIMARY KEY, room_id bigint NOT NULL,\n"
	"  server text NOT NULL, started_at bigint NOT NULL, joined_at bigint, ended_at bigint,\n"
	"  end_reason text, messages bigint NOT NULL DEFAULT 0, platform text NOT NULL,\n"
	"  node text NOT NULL, local_id bigint NOT NULL, UNIQUE (node, local_id))",
	"CREATE INDEX sessions_room_platform_started ON sessions (room_id, platform, started_at)",
	"CREATE TABLE messages (id bigserial NOT NULL, room_id bigint NOT NULL,\n"
	"  ts bigint NOT NULL, type text NOT NULL, uid bigint, nick text, level integer,\n"
	"  text text, cid text, session_id bigint, data jsonb NOT NULL, platform text NOT NULL,\n"
	"  decoded jsonb, node text NOT NULL, local_id bigint NOT NULL,\n"
	"  UNIQUE (node, local_id, ts)) PARTITION BY RANGE (ts)",
	"CREATE INDEX messages_room_ts ON messages (room_id, ts)",
	"CREATE TABLE message_cids (platform text NOT NULL, room_id bigint NOT NULL,\n"
	"  cid text NOT NULL, ts bigint NOT NULL, PRIMARY KEY (platform, room_id, cid))",
	"CREATE TABLE nodes (node text PRIMARY KEY, mode text NOT NULL, started_at timestamptz,\n"
	"  seen_at timestamptz, expires_at timestamptz, rooms integer, max_rooms integer,\n"
	"  shipped_id bigint, backlog bigint, version text)",
	"CREATE TABLE room_offers (node text NOT NULL, platform text NOT NULL,\n"
	"  room_id bigint NOT NULL, label text, PRIMARY KEY (node, platform, room_id))",
	"CREATE TABLE room_leases (platform text NOT NULL, room_id bigint NOT NULL, label text,\n"
	"  node text, expires_at timestamptz NOT NULL DEFAULT '-infinity', since timestamptz,\n"
	"  PRIMARY KEY (platform, room_id))",
	"CREATE FUNCTION danmakud_partitions(lo bigint, hi bigint) RETURNS void\n"
	"LANGUAGE plpgsql AS $$\n"
	"DECLARE m timestamp; nm timestamp; name text; n integer := 0;\n"
	"BEGIN\n"
	"  m := date_trunc('month', to_timestamp(lo / 1000.0) AT TIME ZONE 'UTC');\n"
	"  WHILE m <= to_timestamp(hi / 1000.0) AT TIME ZONE 'UTC' AND n < 1200 LOOP\n"
	"    nm := m + interval '1 month';\n"
	"    name := 'messages_y' || to_char(m, 'YYYY') || 'm' || to_char(m, 'MM');\n"
	"    IF to_regclass(name) IS NULL THEN\n"
	"      PERFORM pg_advisory_xact_lock(hashtext('danmakud partitions'));\n"
	"      IF to_regclass(name) IS NULL THEN\n"
	"        EXECUTE format('CREATE TABLE %I PARTITION OF messages FOR VALUES FROM (%s) TO (%s)',\n"
	"          name, (extract(epoch FROM m) * 1000)::bigint,\n"
	"          (extract(epoch FROM nm) * 1000)::bigint);\n"
	"      END IF;\n"
	"    END IF;\n"
	"    m := nm; n := n + 1;\n"
	"  END LOOP;\n"
	"END $$",
};
const size_t pg_schema_v1_count = sizeof(pg_schema_v1) / sizeof(pg_schema_v1[0]);
