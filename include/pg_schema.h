/*
 * pg_schema: the PostgreSQL schema, version 1 (PG-SPEC.md), as SQL text. No libpq here: the
 * caller runs the statements, in order, in one transaction, on a database without any of
 * these objects, and then inserts the danmakud_schema row itself.
 *
 * What they create: the tables danmakud_schema, rooms, sessions, messages (partitioned by
 * range of ts, one partition per UTC month, none yet), message_cids, nodes, room_offers,
 * room_leases; the indexes of messages and sessions; the functions danmakud_partitions(lo, hi)
 * (creates the missing monthly partitions covering [lo, hi] ms; call it before the first
 * insert into messages of a transaction), and, for the views, danmakud_int(text) and
 * danmakud_real(text) (SQLite's lenient CAST AS INTEGER / AS REAL) and danmakud_last_ts(...)
 * (a session's last message); and the views of README "Asking the database" (chat, gifts,
 * superchats, live, gaps, daily, room_stats) with SQLite's names and columns, times as
 * timestamptz. Which nodes are running (nodes.started_at, seen_at) matters to gaps.
 */
#ifndef DANMAKUD_PG_SCHEMA_H
#define DANMAKUD_PG_SCHEMA_H

#include <stddef.h>

#define PG_SCHEMA_VERSION 1

/*
 * The statements, one SQL statement per element (no trailing semicolon needed, none is
 * there), static storage. None of them is CREATE INDEX CONCURRENTLY or otherwise refused
 * inside a transaction block.
 */
extern const char *const pg_schema_v1[];
extern const size_t pg_schema_v1_count;

#endif
