/*
 * pg: one PostgreSQL connection driven by the libuv loop through libpq's asynchronous API:
 * the host name resolved by our c-ares (net.c; libpq's own getaddrinfo would block) and
 * passed as hostaddr, PQconnectStartParams/PQconnectPoll on a uv_poll_t, then
 * PQsetnonblocking, PQsendQuery, PQflush, PQconsumeInput, COPY FROM STDIN fed with
 * PQputCopyData. Nothing here blocks: every wait is a poll event or a timer.
 *
 * A lost connection (or a failed attempt) is retried after a backoff with jitter (0.5 s
 * doubling to 60 s, times 0.5..1.5); on_down says why, on_up says it is back. One request
 * runs at a time: the owner sends the next one from on_done.
 */
#ifndef DANMAKUD_PG_H
#define DANMAKUD_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct net_ctx;
struct pg;

struct pg_options {
	const char *conninfo;         /* a postgresql:// URL or a key=value string */
	const char *password;         /* NULL: the URL's, or libpq's PGPASSFILE lookup */
	const char *application_name; /* NULL: "danmakud" */
	uint64_t connect_timeout_ms;  /* 0: 10 s (resolve, then connect and log in) */
	uint64_t request_timeout_ms;  /* 0: 60 s; a request longer than this ends the link (a
	                               * batch of 5000 rows takes well under 1 s) */
};

struct pg_callbacks {
	/* Connected and logged in; pg_exec may be called. */
	void (*on_up)(struct pg *c, void *user_data);
	/* The connection, or an attempt, ended (why: one line, no password). A request in
	 * flight got its on_done first. The next attempt is already scheduled. */
	void (*on_down)(struct pg *c, const char *why, void *user_data);
	/* A NOTIFY on a channel this connection LISTENs to. May be NULL. */
	void (*on_notify)(struct pg *c, const char *channel, const char *payload, void *user_data);
};

/* Data for one COPY ... FROM STDIN of a request (text format), borrowed until on_done. */
struct pg_copy {
	const char *data;
	size_t len;
};

/* Each result of the request's statements, in order; res is cleared after the call. */
typedef void (*pg_result_cb)(struct pg *c, const PGresult *res, void *user_data);
/* The request ended: error NULL when every statement succeeded, else the first error's
 * message (one line) and SQLSTATE ("08006" when the connection was lost, "57014" on
 * timeout). */
typedef void (*pg_done_cb)(struct pg *c, const char *error, const char *sqlstate,
			   void *user_data);

/*
 * Check the connection string (PQconninfoParse: no I/O; more than one host is refused: each
 * would need resolving) and prepare. err never repeats the string (it may hold a password).
 * Returns 0, -EINVAL with a reason, or -ENOMEM. Nothing starts before pg_start().
 */
int pg_create(uv_loop_t *loop, struct net_ctx *net, const struct pg_options *opt,
	      const struct pg_callbacks *cb, void *user_data, struct pg **out, char *err,
	      size_t errlen);
/* First attempt now. */
void pg_start(struct pg *c);
/* Close the connection and free everything once its handles are closed. No callback runs
 * after this, not even the on_done of a request in flight. NULL ok. */
void pg_close(struct pg *c);

bool pg_is_up(const struct pg *c);
/* Up, and no request in flight. */
bool pg_is_idle(const struct pg *c);
/* "host:port/dbname" (or the socket directory) for log lines; never the password. */
const char *pg_target(const struct pg *c);
/* Seconds since the connection went down (0 while up, or before the first attempt ended). */
uint64_t pg_down_for_ms(const struct pg *c);

/*
 * Send sql (one or several statements: the simple query protocol, where several statements
 * without BEGIN form one transaction) with copies[0..n_copies) as the data of its COPY FROM
 * STDIN statements, in order. Returns 0, -EBUSY (a request is in flight), -ENOTCONN, or
 * -ENOMEM / -EIO when it could not be sent (the connection is then dropped and retried).
 */
int pg_exec(struct pg *c, const char *sql, const struct pg_copy *copies, size_t n_copies,
	    pg_result_cb on_result, pg_done_cb on_done, void *user_data);

/*
 * COPY text format (the default of COPY FROM STDIN): append one field and its separator
 * ('\t', or '\n' when last). Strings are escaped (backslash, tab, newline, carriage return)
 * and made valid UTF-8 on the way, as PostgreSQL's UTF8 database requires: an invalid
 * sequence or a NUL byte becomes U+FFFD (the local row keeps the original bytes).
 * NULL p writes \N. Return 0 or -ENOMEM.
 */
struct buf;
int pg_copy_str(struct buf *b, const char *p, size_t n, bool last);
int pg_copy_int(struct buf *b, int64_t v, bool last);
int pg_copy_null(struct buf *b, bool last);

/* A quoted SQL literal of s (PQescapeLiteral), malloc'd; NULL when not connected or no
 * memory. */
char *pg_literal(struct pg *c, const char *s);

#endif
