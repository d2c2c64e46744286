/*
 * pg: see pg.h. States: DOWN (a retry timer runs) -> RESOLVING (net.c, resolve only) ->
 * CONNECTING (PQconnectPoll steps, each waiting on the socket) -> UP (requests).
 *
 * libpq may open a new socket between two PQconnectPoll steps (the next address, an SSL
 * retry), possibly with the same descriptor number; the kernel then has already dropped the
 * old one from epoll while libuv still thinks it is registered. So while connecting, every
 * step gets a fresh uv_poll_t (stopping the old one deregisters it at once). Once up, the
 * socket stays the same until PQfinish, which runs only after the poll handle is closed.
 */
#include "pg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "buf.h"
#include "log.h"
#include "net.h"
#include "text.h"

#define PG_BACKOFF_MIN_MS 500
#define PG_BACKOFF_MAX_MS 15000
#define PG_COPY_CHUNK (64 * 1024)

enum pg_state { PG_DOWN, PG_RESOLVING, PG_CONNECTING, PG_UP, PG_CLOSED };

struct pg_req {
	bool active;
	const struct pg_copy *copies;
	size_t n_copies, next_copy;
	bool copying;  /* in COPY IN: sending copies[next_copy - 1] */
	size_t copy_off;
	bool copy_end; /* all data queued, PQputCopyEnd still to be accepted */
	pg_result_cb on_result;
	pg_done_cb on_done;
	void *user_data;
	char *error;   /* the first error */
	char sqlstate[6];
};

struct pg {
	uv_loop_t *loop;
	struct net_ctx *net;
	const struct pg_callbacks *cb;
	void *user_data;
	enum pg_state state;
	PQconninfoOption *opts; /* parsed conninfo */
	char *password;
	char *appname;
	char *host;             /* to resolve; NULL: hostaddr given, an IP, or a socket */
	char *port;
	uint64_t connect_timeout_ms, request_timeout_ms;
	char target[300];
	char hostaddr[INET6_ADDRSTRLEN];
	unsigned attempt;       /* failed attempts in a row (backoff) */
	unsigned addr_start;    /* rotates the address tried first */
	uint64_t down_since;    /* uv_now() when it went down; 0: up or never tried */
	PGconn *conn;
	uv_poll_t *poll;
	int poll_events;
	uv_timer_t timer;       /* retry backoff, connect timeout, request timeout */
	struct net *resolver;
	struct pg_req req;
	int pending_closes;
};

static void on_timer_closed(uv_handle_t *h);
static void on_poll(uv_poll_t *h, int status, int events);
static void connect_step(struct pg *c, PostgresPollingStatusType st);

static const char *opt_val(const struct pg *c, const char *key)
{
	for (const PQconninfoOption *o = c->opts; o && o->keyword; o++)
		if (strcmp(o->keyword, key) == 0)
			return o->val && *o->val ? o->val : NULL;
	return NULL;
}

static bool is_ip_literal(const char *h)
{
	unsigned char tmp[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, h, tmp) == 1 || inet_pton(AF_INET6, h, tmp) == 1;
}

/* One line: libpq's messages end with a newline and may hold several lines. */
static void one_line(char *dst, size_t n, const char *src)
{
	size_t k = 0;
	for (; src && *src && k + 1 < n; src++) {
		char ch = *src == '\n' || *src == '\r' || *src == '\t' ? ' ' : *src;
		if (ch == ' ' && (k == 0 || dst[k - 1] == ' '))
			continue;
		dst[k++] = ch;
	}
	while (k && dst[k - 1] == ' ')
		k--;
	dst[k] = '\0';
}

int pg_create(uv_loop_t *loop, struct net_ctx *net, const struct pg_options *opt,
	      const struct pg_callbacks *cb, void *user_data, struct pg **out, char *err,
	      size_t errlen)
{
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(opt->conninfo, &perr);
	if (!opts) {
		char line[200];
		one_line(line, sizeof(line), perr ? perr : "out of memory");
		snprintf(err, errlen, "postgresql url: %s", line);
		PQfreemem(perr);
		return perr ? -EINVAL : -ENOMEM;
	}
	struct pg *c = calloc(1, sizeof(*c));
	if (!c) {
		PQconninfoFree(opts);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->loop = loop;
	c->net = net;
	c->cb = cb;
	c->user_data = user_data;
	c->opts = opts;
	c->connect_timeout_ms = opt->connect_timeout_ms ? opt->connect_timeout_ms : 10000;
	c->request_timeout_ms = opt->request_timeout_ms ? opt->request_timeout_ms : 60000;
	const char *host = opt_val(c, "host"), *hostaddr = opt_val(c, "hostaddr");
	const char *port = opt_val(c, "port"), *db = opt_val(c, "dbname");
	int rc = 0;
	if ((host && strchr(host, ',')) || (hostaddr && strchr(hostaddr, ',')) ||
	    (port && strchr(port, ','))) {
		snprintf(err, errlen, "postgresql url: give one host (several are not supported)");
		rc = -EINVAL;
	} else if (port && (atoi(port) < 1 || atoi(port) > 65535)) {
		snprintf(err, errlen, "postgresql url: bad port");
		rc = -EINVAL;
	}
	c->password = opt->password ? strdup(opt->password) : NULL;
	c->appname = strdup(opt->application_name ? opt->application_name : "danmakud");
	c->port = strdup(port ? port : "5432");
	/* A name to resolve: not an address, not a socket directory, no hostaddr given. */
	if (host && host[0] != '/' && host[0] != '@' && !hostaddr && !is_ip_literal(host))
		c->host = strdup(host);
	if (!rc && (!c->appname || !c->port || (opt->password && !c->password) ||
		    (host && host[0] != '/' && !hostaddr && !is_ip_literal(host) && !c->host))) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
	}
	if (rc < 0) {
		PQconninfoFree(opts);
		free(c->password);
		free(c->appname);
		free(c->port);
		free(c->host);
		free(c);
		return rc;
	}
	snprintf(c->target, sizeof(c->target), "%s:%s/%s",
		 host ? host : hostaddr ? hostaddr : "(local socket)", c->port, db ? db : "");
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	c->pending_closes = 1;
	*out = c;
	return 0;
}

bool pg_is_up(const struct pg *c)
{
	return c && c->state == PG_UP;
}

bool pg_is_idle(const struct pg *c)
{
	return pg_is_up(c) && !c->req.active;
}

const char *pg_target(const struct pg *c)
{
	return c->target;
}

uint64_t pg_down_for_ms(const struct pg *c)
{
	if (!c->down_since || c->state == PG_UP)
		return 0;
	return uv_now(c->loop) - c->down_since;
}

char *pg_literal(struct pg *c, const char *s)
{
	if (!pg_is_up(c))
		return NULL;
	char *q = PQescapeLiteral(c->conn, s, strlen(s));
	char *out = q ? strdup(q) : NULL;
	PQfreemem(q);
	return out;
}

/* ---- the poll handle ---- */

static void on_poll_closed(uv_handle_t *h)
{
	struct pg *c = h->data;
	free(h);
	if (c && --c->pending_closes == 0)
		free(c);
}

static void drop_poll(struct pg *c)
{
	if (!c->poll)
		return;
	c->pending_closes++;
	uv_close((uv_handle_t *)c->poll, on_poll_closed);
	c->poll = NULL;
	c->poll_events = 0;
}

/* Watch the connection's socket for events; fresh: a new handle (while connecting). */
static int watch(struct pg *c, int events, bool fresh)
{
	if (fresh)
		drop_poll(c);
	if (!c->poll) {
		int fd = PQsocket(c->conn);
		if (fd < 0)
			return UV_EBADF;
		c->poll = malloc(sizeof(*c->poll));
		if (!c->poll)
			return UV_ENOMEM;
		int rc = uv_poll_init(c->loop, c->poll, fd);
		if (rc < 0) {
			free(c->poll);
			c->poll = NULL;
			return rc;
		}
		c->poll->data = c;
	}
	if (events == c->poll_events)
		return 0;
	c->poll_events = events;
	return uv_poll_start(c->poll, events, on_poll);
}

/* ---- going down, coming back ---- */

static void on_retry(uv_timer_t *t);
static void finish_req(struct pg *c, const char *error, const char *sqlstate);

static uint64_t backoff_ms(struct pg *c)
{
	unsigned shift = c->attempt < 7 ? c->attempt : 7;
	uint64_t base = (uint64_t)PG_BACKOFF_MIN_MS << shift;
	if (base > PG_BACKOFF_MAX_MS)
		base = PG_BACKOFF_MAX_MS;
	uint32_t r = 0;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t)uv_hrtime();
	return base / 2 + r % (base + 1); /* base * [0.5, 1.5] */
}

static void go_down(struct pg *c, const char *why_)
{
	/* why may be libpq's own message buffer, which PQfinish frees */
	char why[512];
	one_line(why, sizeof(why), why_);
	bool was_up = c->state == PG_UP;
	if (c->resolver) {
		net_close(c->resolver); /* on_closed only frees */
		c->resolver = NULL;
	}
	drop_poll(c);
	if (c->conn) {
		PQfinish(c->conn);
		c->conn = NULL;
	}
	c->state = PG_DOWN;
	if (!c->down_since || was_up)
		c->down_since = uv_now(c->loop);
	c->attempt++;
	c->addr_start++;
	uint64_t delay = backoff_ms(c);
	uv_timer_start(&c->timer, on_retry, delay, 0);
	if (c->req.active)
		finish_req(c, why, "08006");
	if (c->cb->on_down)
		c->cb->on_down(c, why, c->user_data);
}

static void on_timeout(uv_timer_t *t)
{
	struct pg *c = t->data;
	if (c->state == PG_UP && c->req.active) {
		char why[96];
		snprintf(why, sizeof(why), "no answer to a request in %" PRIu64 " s",
			 c->request_timeout_ms / 1000);
		finish_req(c, why, "57014");
		go_down(c, why);
	} else if (c->state == PG_RESOLVING || c->state == PG_CONNECTING) {
		go_down(c, c->state == PG_RESOLVING ? "could not resolve the host in time"
						     : "could not connect in time");
	}
}

static void start_connect(struct pg *c);

static void on_resolver_closed(struct net *n, void *user_data)
{
}

static void on_resolve_error(struct net *n, int err, const char *what, void *user_data)
{
	struct pg *c = user_data;
	char why[160];
	snprintf(why, sizeof(why), "cannot resolve %s: %s", c->host, uv_strerror(err));
	go_down(c, why);
}

static void on_resolved(struct net *n, const struct sockaddr_storage *addrs, size_t n_addrs,
			void *user_data)
{
	struct pg *c = user_data;
	const struct sockaddr_storage *a = &addrs[c->addr_start % n_addrs];
	int rc = a->ss_family == AF_INET
			 ? uv_ip4_name((const struct sockaddr_in *)a, c->hostaddr, sizeof(c->hostaddr))
			 : uv_ip6_name((const struct sockaddr_in6 *)a, c->hostaddr,
				       sizeof(c->hostaddr));
	net_close(c->resolver);
	c->resolver = NULL;
	if (rc < 0) {
		go_down(c, "cannot format the resolved address");
		return;
	}
	start_connect(c);
}

static const struct net_callbacks resolver_cb = {
	.on_error = on_resolve_error,
	.on_closed = on_resolver_closed,
	.on_resolved = on_resolved,
};

static void begin_attempt(struct pg *c)
{
	uv_timer_start(&c->timer, on_timeout, c->connect_timeout_ms, 0);
	if (!c->host) {
		start_connect(c);
		return;
	}
	c->state = PG_RESOLVING;
	int rc = net_connect(c->net, c->host, (uint16_t)atoi(c->port), c->connect_timeout_ms, 0,
			     &resolver_cb, c, &c->resolver);
	if (rc < 0) {
		c->resolver = NULL;
		go_down(c, "cannot start resolving the host");
	}
}

static void on_retry(uv_timer_t *t)
{
	begin_attempt(t->data);
}

void pg_start(struct pg *c)
{
	if (c->state == PG_DOWN && !uv_is_active((uv_handle_t *)&c->timer))
		begin_attempt(c);
}

/* Every option the string gave, plus ours: hostaddr (resolved here), the password, an
 * application name, TCP keepalives and a user timeout (a dead server or path is noticed in
 * about 25 s, 30 s with data in flight), no GSS encryption unless asked for. */
static void start_connect(struct pg *c)
{
	const char *keys[64], *vals[64];
	size_t n = 0;
	for (const PQconninfoOption *o = c->opts; o && o->keyword && n < 50; o++) {
		if (!o->val || !*o->val || strcmp(o->keyword, "hostaddr") == 0)
			continue;
		keys[n] = o->keyword;
		vals[n++] = o->val;
	}
	if (c->host || opt_val(c, "hostaddr")) {
		keys[n] = "hostaddr";
		vals[n++] = c->host ? c->hostaddr : opt_val(c, "hostaddr");
	}
	if (c->password && !opt_val(c, "password")) {
		keys[n] = "password";
		vals[n++] = c->password;
	}
	if (!opt_val(c, "application_name")) {
		keys[n] = "application_name";
		vals[n++] = c->appname;
	}
	static const char *const defaults[][2] = {{"keepalives", "1"},
						  {"keepalives_idle", "10"},
						  {"keepalives_interval", "5"},
						  {"keepalives_count", "3"},
						  /* data unacknowledged for 30 s: gone */
						  {"tcp_user_timeout", "30000"},
						  {"client_encoding", "UTF8"},
						  /* Kerberos' libraries read credential caches
						   * (blocking file I/O) to try GSS encryption */
						  {"gssencmode", "disable"}};
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		if (opt_val(c, defaults[i][0]))
			continue;
		keys[n] = defaults[i][0];
		vals[n++] = defaults[i][1];
	}
	keys[n] = vals[n] = NULL;
	c->state = PG_CONNECTING;
	c->conn = PQconnectStartParams(keys, vals, 0);
	if (!c->conn) {
		go_down(c, "out of memory");
		return;
	}
	if (PQstatus(c->conn) == CONNECTION_BAD) {
		go_down(c, PQerrorMessage(c->conn));
		return;
	}
	connect_step(c, PGRES_POLLING_WRITING);
}

static void went_up(struct pg *c)
{
	if (PQsetnonblocking(c->conn, 1) != 0 || watch(c, UV_READABLE, false) < 0) {
		go_down(c, "cannot switch the connection to nonblocking mode");
		return;
	}
	uv_timer_stop(&c->timer);
	c->state = PG_UP;
	c->attempt = 0;
	c->down_since = 0;
	if (c->cb->on_up)
		c->cb->on_up(c, c->user_data);
}

static void connect_step(struct pg *c, PostgresPollingStatusType st)
{
	int rc = 0;
	switch (st) {
	case PGRES_POLLING_READING:
		rc = watch(c, UV_READABLE, true);
		break;
	case PGRES_POLLING_WRITING:
		rc = watch(c, UV_WRITABLE, true);
		break;
	case PGRES_POLLING_OK:
		went_up(c);
		return;
	case PGRES_POLLING_FAILED:
	default:
		go_down(c, PQerrorMessage(c->conn));
		return;
	}
	if (rc < 0)
		go_down(c, uv_strerror(rc));
}

/* ---- requests ---- */

static void finish_req(struct pg *c, const char *error, const char *sqlstate)
{
	struct pg_req r = c->req;
	memset(&c->req, 0, sizeof(c->req));
	if (c->state == PG_UP)
		uv_timer_stop(&c->timer);
	char line[512];
	const char *e = error ? error : r.error;
	if (e)
		one_line(line, sizeof(line), e);
	const char *state = error ? sqlstate : r.sqlstate[0] ? r.sqlstate : "XX000";
	free(r.error);
	if (r.on_done)
		r.on_done(c, e ? line : NULL, e ? state : NULL, r.user_data);
}

/* Feed the current COPY; returns 1 when done (PQputCopyEnd accepted), 0 to wait for the
 * socket, -1 on error (connection dropped). */
static int send_copy(struct pg *c)
{
	struct pg_req *r = &c->req;
	const struct pg_copy *cp = &r->copies[r->next_copy - 1];
	while (!r->copy_end && r->copy_off < cp->len) {
		size_t k = cp->len - r->copy_off;
		if (k > PG_COPY_CHUNK)
			k = PG_COPY_CHUNK;
		int rc = PQputCopyData(c->conn, cp->data + r->copy_off, (int)k);
		if (rc < 0)
			return -1;
		if (rc == 0)
			return 0;
		r->copy_off += k;
	}
	r->copy_end = true;
	int rc = PQputCopyEnd(c->conn, NULL);
	if (rc < 0)
		return -1;
	if (rc == 0)
		return 0;
	r->copying = false;
	return 1;
}

/*
 * Move what is waiting to the socket: the current COPY's data, then libpq's output buffer.
 * Watches the socket for writing while anything is left. Returns 1 when everything is out
 * (results can be read), 0 to wait for the socket, -1 when the connection went down.
 */
static int pump(struct pg *c)
{
	int rc = c->req.copying ? send_copy(c) : 1;
	int f = rc < 0 ? -1 : PQflush(c->conn);
	if (f < 0) {
		go_down(c, PQerrorMessage(c->conn));
		return -1;
	}
	bool more = rc == 0 || f == 1;
	if (watch(c, more ? UV_READABLE | UV_WRITABLE : UV_READABLE, false) < 0) {
		go_down(c, "poll");
		return -1;
	}
	return more ? 0 : 1;
}

static void keep_error(struct pg *c, const PGresult *res)
{
	if (c->req.error)
		return;
	const char *msg = PQresultErrorMessage(res);
	c->req.error = strdup(msg && *msg ? msg : "error");
	const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	snprintf(c->req.sqlstate, sizeof(c->req.sqlstate), "%s", st ? st : "XX000");
}

/* Take every result that is complete; start COPYs as the server asks for them. */
static void drain(struct pg *c)
{
	while (c->state == PG_UP && c->req.active && !c->req.copying) {
		if (PQisBusy(c->conn))
			return;
		PGresult *res = PQgetResult(c->conn);
		if (!res) {
			finish_req(c, NULL, NULL);
			return;
		}
		ExecStatusType st = PQresultStatus(res);
		if (st == PGRES_COPY_IN) {
			PQclear(res);
			struct pg_req *r = &c->req;
			if (r->next_copy >= r->n_copies) {
				/* More COPYs than data: end it with an error (the server rolls back). */
				if (PQputCopyEnd(c->conn, "danmakud: no data for this COPY") < 0) {
					go_down(c, PQerrorMessage(c->conn));
					return;
				}
				continue;
			}
			r->next_copy++;
			r->copying = true;
			r->copy_off = 0;
			r->copy_end = false;
			if (pump(c) <= 0)
				return; /* down, or waiting for the socket */
			continue;
		}
		if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE ||
		    st == PGRES_NONFATAL_ERROR)
			keep_error(c, res);
		else if (c->req.on_result)
			c->req.on_result(c, res, c->req.user_data);
		PQclear(res);
	}
}

static void notifies(struct pg *c)
{
	PGnotify *n;
	while (c->state == PG_UP && (n = PQnotifies(c->conn))) {
		if (c->cb->on_notify)
			c->cb->on_notify(c, n->relname, n->extra, c->user_data);
		PQfreemem(n);
	}
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct pg *c = h->data;
	/* libuv reports POLLERR as UV_EBADF: libpq reads the socket's own error (a refused
	 * connect, a reset) and says it better. */
	if (c->state == PG_CONNECTING) {
		connect_step(c, PQconnectPoll(c->conn));
		return;
	}
	if (c->state != PG_UP)
		return;
	if (status < 0) {
		go_down(c, PQconsumeInput(c->conn) ? uv_strerror(status) : PQerrorMessage(c->conn));
		return;
	}
	if ((events & UV_WRITABLE) && pump(c) < 0)
		return;
	if (events & UV_READABLE) {
		if (!PQconsumeInput(c->conn)) {
			go_down(c, PQerrorMessage(c->conn));
			return;
		}
		notifies(c);
	}
	drain(c);
	if (c->state == PG_UP)
		notifies(c);
}

int pg_exec(struct pg *c, const char *sql, const struct pg_copy *copies, size_t n_copies,
	    pg_result_cb on_result, pg_done_cb on_done, void *user_data)
{
	if (c->state != PG_UP)
		return -ENOTCONN;
	if (c->req.active)
		return -EBUSY;
	if (!PQsendQuery(c->conn, sql)) {
		go_down(c, PQerrorMessage(c->conn));
		return -EIO;
	}
	c->req = (struct pg_req){.active = true,
				 .copies = copies,
				 .n_copies = n_copies,
				 .on_result = on_result,
				 .on_done = on_done,
				 .user_data = user_data};
	uv_timer_start(&c->timer, on_timeout, c->request_timeout_ms, 0);
	int f = PQflush(c->conn);
	if (f < 0) {
		go_down(c, PQerrorMessage(c->conn));
		return -EIO;
	}
	if (watch(c, f ? UV_READABLE | UV_WRITABLE : UV_READABLE, false) < 0) {
		go_down(c, "poll");
		return -EIO;
	}
	return 0;
}

/* ---- closing ---- */

static void on_timer_closed(uv_handle_t *h)
{
	struct pg *c = h->data;
	if (--c->pending_closes == 0)
		free(c);
}

void pg_close(struct pg *c)
{
	if (!c || c->state == PG_CLOSED)
		return;
	c->state = PG_CLOSED;
	c->req.on_done = NULL;
	free(c->req.error);
	memset(&c->req, 0, sizeof(c->req));
	if (c->resolver) {
		net_close(c->resolver);
		c->resolver = NULL;
	}
	if (c->poll) {
		c->poll->data = NULL; /* its close callback then only frees it */
		uv_close((uv_handle_t *)c->poll, on_poll_closed);
		c->poll = NULL;
	}
	if (c->conn) {
		PQfinish(c->conn);
		c->conn = NULL;
	}
	PQconninfoFree(c->opts);
	c->opts = NULL;
	if (c->password) /* a secret: do not leave it in freed memory */
		memset(c->password, 0, strlen(c->password));
	free(c->password);
	free(c->appname);
	free(c->host);
	free(c->port);
	c->password = c->appname = c->host = c->port = NULL;
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

/* ---- COPY text format ---- */

int pg_copy_str(struct buf *b, const char *p, size_t n, bool last)
{
	if (!p)
		return pg_copy_null(b, last);
	/* Worst case: every byte becomes a 3-byte U+FFFD. */
	if (buf_reserve(b, n * 3 + 1) < 0)
		return -ENOMEM;
	uint8_t *o = buf_head(b) + b->len, *start = o;
	const unsigned char *s = (const unsigned char *)p, *end = s + n;
	while (s < end) {
		unsigned char ch = *s;
		if (ch >= 0x20 && ch < 0x80 && ch != '\\') {
			*o++ = ch;
			s++;
			continue;
		}
		if (ch >= 0x80) {
			uint32_t cp;
			size_t k = text_utf8_decode(s, (size_t)(end - s), &cp);
			if (k) {
				memcpy(o, s, k);
				o += k;
				s += k;
				continue;
			}
		}
		s++;
		switch (ch) {
		case '\\': *o++ = '\\'; *o++ = '\\'; break;
		case '\t': *o++ = '\\'; *o++ = 't'; break;
		case '\n': *o++ = '\\'; *o++ = 'n'; break;
		case '\r': *o++ = '\\'; *o++ = 'r'; break;
		default:
			if (ch > 0 && ch < 0x20) {
				*o++ = ch;
			} else { /* NUL, or a byte that starts no valid sequence */
				*o++ = 0xef; *o++ = 0xbf; *o++ = 0xbd;
			}
		}
	}
	*o++ = last ? '\n' : '\t';
	b->len += (size_t)(o - start);
	return 0;
}

int pg_copy_int(struct buf *b, int64_t v, bool last)
{
	return buf_printf(b, "%" PRId64 "%c", v, last ? '\n' : '\t');
}

int pg_copy_null(struct buf *b, bool last)
{
	return buf_append(b, last ? "\\N\n" : "\\N\t", 3);
}
