/*
 * pg_schema: the PostgreSQL form of the danmakud schema (README "Many machines"): the tables
 * of the SQLite database with the recording node, messages partitioned by month, the cluster's
 * tables, and the views under the same names. ship.c creates it on first connect.
 */
#ifndef DANMAKUD_PG_SCHEMA_H
#define DANMAKUD_PG_SCHEMA_H

#include <stddef.h>

#define PG_SCHEMA_VERSION 1

/* Statements (without the trailing ';') creating version 1 in an empty database. */
extern const char *const pg_schema_v1[];
extern const size_t pg_schema_v1_count;

#endif
