/*
 * net: everything that touches sockets. Name resolution runs on c-ares, whose sockets are
 * watched with uv_poll_t and whose retransmits are driven by one uv_timer_t, so no lookup
 * ever blocks the loop or uses libuv's thread pool. Answers are cached per host name and
 * concurrent lookups of one name share one query (200 rooms on one server make one query).
 * A connection attempt (struct net) resolves, then tries each address in turn, each under
 * its own timeout and starting where the caller asks (so a dead address costs one timeout,
 * not the whole attempt), then reads into the ctx's shared buffer and writes through
 * uv_try_write with a queued remainder. What the socket has not taken yet is bounded
 * (NET_WRITE_QUEUE_MAX): a peer that sends and never reads cannot make us buffer forever.
 * Results are always delivered from the loop, never from inside net_connect(), so callers
 * need not guard against re-entrancy there.
 */
#include "net.h"

#include <ares.h>
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "list.h"

#define NET_MAX_ADDRS 8
#define NET_CACHE_MAX 64
#define NET_SHUTDOWN_MS 2000

struct dns_entry {
	struct list link;
	struct net_ctx *ctx;
	char *host;
	uint64_t expires; /* uv_now() ms */
	bool pending;
	int status; /* 0 or a UV_EAI_* code */
	struct sockaddr_storage addrs[NET_MAX_ADDRS];
	size_t n_addrs;
	struct list waiters; /* struct net.wait_link */
};

struct dns_poll {
	struct list link;
	struct net_ctx *ctx;
	uv_poll_t poll;
	ares_socket_t fd;
};

struct net_ctx {
	uv_loop_t *loop;
	ares_channel channel;
	bool ares_ok;
	uv_timer_t ares_timer;
	uv_timer_t deliver_timer;
	struct list polls;
	struct list cache;
	size_t n_cache;
	struct list ready; /* nets with a resolution result to act on */
	int pending_closes;
	bool closing;
	uint8_t rbuf[64 * 1024];
};

enum net_state { NET_RESOLVING, NET_CONNECTING, NET_OPEN, NET_SHUTTING_DOWN, NET_CLOSED };

struct net {
	struct net_ctx *ctx;
	const struct net_callbacks *cb;
	void *user_data;
	enum net_state state;
	uv_tcp_t *tcp; /* in a heap net_sock: each address gets a fresh handle */
	uv_timer_t timer; /* resolve, then each address, then the shutdown deadline */
	uint64_t timeout_ms;
	uv_shutdown_t sreq;
	struct list wait_link; /* in a dns_entry's waiters or ctx->ready */
	int resolve_status;
	struct sockaddr_storage addrs[NET_MAX_ADDRS];
	size_t n_addrs, tried;
	unsigned start; /* the first address tried is addrs[start % n_addrs] */
	size_t queued;  /* memory held by queued writes (struct net_write + data) */
	int last_connect_err;
	int pending_closes;
	bool error_reported;
	bool paused;
	uint16_t port;
	char peer[INET6_ADDRSTRLEN + 8];
	char host[];
};

/*
 * One socket per address tried, with its connect request: when an address times out, its
 * handle is closed while the connect is pending, and libuv then completes that request with
 * UV_ECANCELED during the close, so the request must live (and die) with its handle.
 * tcp comes first: the close callback frees the net_sock through it.
 */
struct net_sock {
	uv_tcp_t tcp;
	uv_connect_t creq;
};

struct net_write {
	uv_write_t req;
	struct net *n;
	size_t len;
	uint8_t data[];
};

static void ares_timer_update(struct net_ctx *ctx);
static void on_deliver(uv_timer_t *t);

/* ---- c-ares driving ---- */

/* The ctx's last handle to close frees it. libuv runs close callbacks newest first, so at
 * net_ctx_close a c-ares poll closed before the timers finishes after them. */
static void ctx_release(struct net_ctx *ctx)
{
	if (--ctx->pending_closes == 0 && ctx->closing)
		free(ctx);
}

static void on_poll_closed(uv_handle_t *h)
{
	struct dns_poll *p = h->data;
	struct net_ctx *ctx = p->ctx;
	free(p);
	ctx_release(ctx);
}

static void on_ares_poll(uv_poll_t *h, int status, int events)
{
	struct dns_poll *p = h->data;
	ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;
	/* On a poll error let c-ares try the read: it then sees the socket error itself. */
	if (status < 0 || (events & UV_READABLE))
		rfd = p->fd;
	if (status == 0 && (events & UV_WRITABLE))
		wfd = p->fd;
	struct net_ctx *ctx = p->ctx;
	ares_process_fd(ctx->channel, rfd, wfd);
	ares_timer_update(ctx);
}

static void poll_close(struct dns_poll *p)
{
	list_remove(&p->link);
	p->ctx->pending_closes++;
	uv_close((uv_handle_t *)&p->poll, on_poll_closed);
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct net_ctx *ctx = data;
	struct dns_poll *p = NULL;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &ctx->polls)
	{
		struct dns_poll *q = container_of(pos, struct dns_poll, link);
		if (q->fd == fd) {
			p = q;
			break;
		}
	}
	if (!readable && !writable) {
		if (p)
			poll_close(p);
		return;
	}
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p)
			return; /* the query then times out inside c-ares */
		p->ctx = ctx;
		p->fd = fd;
		if (uv_poll_init_socket(ctx->loop, &p->poll, fd) < 0) {
			free(p);
			return;
		}
		p->poll.data = p;
		list_insert_tail(&ctx->polls, &p->link);
	}
	uv_poll_start(&p->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0),
		      on_ares_poll);
}

static void on_ares_timer(uv_timer_t *t)
{
	struct net_ctx *ctx = t->data;
	ares_process_fd(ctx->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	ares_timer_update(ctx);
}

static void ares_timer_update(struct net_ctx *ctx)
{
	if (ctx->closing)
		return;
	struct timeval tv;
	if (ares_timeout(ctx->channel, NULL, &tv)) {
		uint64_t ms = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
		uv_timer_start(&ctx->ares_timer, on_ares_timer, ms ? ms : 1, 0);
	} else {
		uv_timer_stop(&ctx->ares_timer);
	}
}

static int ares_to_uv(int status)
{
	switch (status) {
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
		return UV_EAI_NONAME;
	case ARES_ETIMEOUT:
		return UV_EAI_AGAIN;
	case ARES_ENOMEM:
		return UV_EAI_MEMORY;
	case ARES_ECANCELLED:
	case ARES_EDESTRUCTION:
		return UV_EAI_CANCELED;
	default:
		return UV_EAI_FAIL;
	}
}

static void deliver_soon(struct net_ctx *ctx)
{
	if (!ctx->closing)
		uv_timer_start(&ctx->deliver_timer, on_deliver, 0, 0);
}

static void entry_free(struct dns_entry *e)
{
	list_remove(&e->link);
	e->ctx->n_cache--;
	free(e->host);
	free(e);
}

/* Copy an entry's answer into a waiting net and queue it for delivery. */
static void entry_answer(struct dns_entry *e, struct net *n)
{
	n->resolve_status = e->status;
	n->n_addrs = e->n_addrs;
	memcpy(n->addrs, e->addrs, e->n_addrs * sizeof(e->addrs[0]));
	list_insert_tail(&e->ctx->ready, &n->wait_link);
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct dns_entry *e = arg;
	struct net_ctx *ctx = e->ctx;
	e->pending = false;
	e->n_addrs = 0;
	if (status == ARES_SUCCESS && res) {
		/* Interleave families is overkill here: keep c-ares' (RFC 6724) order. */
		for (struct ares_addrinfo_node *a = res->nodes; a && e->n_addrs < NET_MAX_ADDRS;
		     a = a->ai_next) {
			if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
			    a->ai_addrlen > sizeof(e->addrs[0]))
				continue;
			memcpy(&e->addrs[e->n_addrs++], a->ai_addr, a->ai_addrlen);
		}
		e->status = e->n_addrs ? 0 : UV_EAI_NODATA;
	} else {
		e->status = ares_to_uv(status);
	}
	if (res)
		ares_freeaddrinfo(res);
	if (status == ARES_EDESTRUCTION)
		return; /* ctx teardown frees the entries */
	e->expires = uv_now(ctx->loop) + NET_DNS_TTL_MS;
	while (!list_empty(&e->waiters)) {
		struct net *n = container_of(e->waiters.next, struct net, wait_link);
		list_remove(&n->wait_link);
		entry_answer(e, n);
	}
	deliver_soon(ctx);
	/* Failures are not cached: the next attempt asks again. */
	if (e->status != 0)
		entry_free(e);
}

static struct dns_entry *cache_lookup(struct net_ctx *ctx, const char *host)
{
	uint64_t now = uv_now(ctx->loop);
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &ctx->cache)
	{
		struct dns_entry *e = container_of(pos, struct dns_entry, link);
		if (!e->pending && e->expires <= now) {
			entry_free(e);
			continue;
		}
		if (strcmp(e->host, host) == 0)
			return e;
	}
	return NULL;
}

static int resolve(struct net *n)
{
	struct net_ctx *ctx = n->ctx;
	struct dns_entry *e = cache_lookup(ctx, n->host);
	if (e && !e->pending) {
		entry_answer(e, n);
		deliver_soon(ctx);
		return 0;
	}
	if (e) {
		list_insert_tail(&e->waiters, &n->wait_link);
		return 0;
	}
	if (!ctx->ares_ok)
		return -EIO;
	if (ctx->n_cache >= NET_CACHE_MAX) {
		/* Evict the oldest settled entry; pending ones hold waiters. */
		struct list *pos, *tmp;
		list_for_each_safe(pos, tmp, &ctx->cache)
		{
			struct dns_entry *old = container_of(pos, struct dns_entry, link);
			if (!old->pending) {
				entry_free(old);
				break;
			}
		}
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->host = strdup(n->host);
	if (!e->host) {
		free(e);
		return -ENOMEM;
	}
	e->ctx = ctx;
	e->pending = true;
	list_init(&e->waiters);
	list_insert_tail(&ctx->cache, &e->link);
	ctx->n_cache++;
	list_insert_tail(&e->waiters, &n->wait_link);
	/* ENVHOSTS: CARES_HOSTS in the environment names another hosts file (what tests use to
	 * give one name several loopback addresses; newer c-ares reads it unasked). */
	struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC,
					    .ai_socktype = SOCK_STREAM,
					    .ai_flags = ARES_AI_ENVHOSTS};
	/* May call on_addrinfo before returning (hosts file): it only queues delivery. */
	ares_getaddrinfo(ctx->channel, n->host, NULL, &hints, on_addrinfo, e);
	ares_timer_update(ctx);
	return 0;
}

/* ---- connections ---- */

static void net_fail(struct net *n, int err, const char *what)
{
	if (n->error_reported || n->state == NET_CLOSED)
		return;
	n->error_reported = true;
	n->cb->on_error(n, err, what, n->user_data);
}

static void net_release(struct net *n)
{
	if (--n->pending_closes > 0)
		return;
	n->cb->on_closed(n, n->user_data);
	free(n);
}

static void on_tcp_closed(uv_handle_t *h)
{
	struct net *n = h->data;
	free(h); /* the net_sock: tcp is its first member */
	if (n)
		net_release(n);
}

static void on_orphan_tcp_closed(uv_handle_t *h)
{
	free(h);
}

static void on_timer_closed(uv_handle_t *h)
{
	net_release(h->data);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct net *n = h->data;
	b->base = (char *)n->ctx->rbuf;
	b->len = sizeof(n->ctx->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct net *n = s->data;
	if (nread > 0) {
		n->cb->on_read(n, (const uint8_t *)b->base, (size_t)nread, n->user_data);
		return;
	}
	if (nread < 0) {
		uv_read_stop(s);
		net_fail(n, (int)nread, "read");
	}
}

static void try_next_address(struct net *n);

static void set_port(struct sockaddr_storage *sa, uint16_t port)
{
	if (sa->ss_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
}

/* This address failed or timed out: close its handle (an orphan, not counted in
 * pending_closes; a pending connect completes with UV_ECANCELED and a NULL net). */
static void drop_socket(struct net *n)
{
	struct net_sock *k = container_of(n->tcp, struct net_sock, tcp);
	k->tcp.data = NULL;
	k->creq.data = NULL;
	uv_close((uv_handle_t *)&k->tcp, on_orphan_tcp_closed);
	n->tcp = NULL;
}

static void on_connect(uv_connect_t *req, int status)
{
	struct net *n = req->data;
	if (!n || status == UV_ECANCELED || n->state != NET_CONNECTING)
		return;
	if (status < 0) {
		n->last_connect_err = status;
		drop_socket(n);
		try_next_address(n);
		return;
	}
	n->state = NET_OPEN;
	uv_timer_stop(&n->timer);
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	if (uv_tcp_getpeername(n->tcp, (struct sockaddr *)&ss, &len) == 0) {
		char ip[INET6_ADDRSTRLEN] = "";
		if (ss.ss_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
			snprintf(n->peer, sizeof(n->peer), "[%s]:%u", ip, n->port);
		} else {
			uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
			snprintf(n->peer, sizeof(n->peer), "%s:%u", ip, n->port);
		}
	}
	uv_tcp_nodelay(n->tcp, 1);
	int rc = uv_read_start((uv_stream_t *)n->tcp, on_alloc, on_read);
	if (rc < 0) {
		net_fail(n, rc, "read");
		return;
	}
	n->cb->on_connected(n, n->user_data);
}

static void on_connect_timeout(uv_timer_t *t);

/* Connect to the next untried address, in order from addrs[start % n_addrs], each under its
 * own timeout; when none is left, fail with the last address's error. */
static void try_next_address(struct net *n)
{
	while (n->tried < n->n_addrs) {
		struct sockaddr_storage *sa = &n->addrs[(n->start + n->tried) % n->n_addrs];
		n->tried++;
		set_port(sa, n->port);
		struct net_sock *k = malloc(sizeof(*k));
		if (!k) {
			net_fail(n, UV_ENOMEM, "connect");
			return;
		}
		uv_tcp_init(n->ctx->loop, &k->tcp);
		k->tcp.data = n;
		k->creq.data = n;
		n->tcp = &k->tcp;
		int rc = uv_tcp_connect(&k->creq, &k->tcp, (struct sockaddr *)sa, on_connect);
		if (rc == 0) {
			uv_timer_start(&n->timer, on_connect_timeout, n->timeout_ms, 0);
			return;
		}
		n->last_connect_err = rc;
		drop_socket(n);
	}
	uv_timer_stop(&n->timer);
	net_fail(n, n->last_connect_err ? n->last_connect_err : UV_ECONNREFUSED, "connect");
}

static void on_deliver(uv_timer_t *t)
{
	struct net_ctx *ctx = t->data;
	/* A callback may close other nets (they unlink themselves) or start new ones. */
	while (!list_empty(&ctx->ready)) {
		struct net *n = container_of(ctx->ready.next, struct net, wait_link);
		list_remove(&n->wait_link);
		if (n->resolve_status < 0) {
			net_fail(n, n->resolve_status, "resolve");
			continue;
		}
		n->state = NET_CONNECTING;
		n->start %= n->n_addrs;
		if (n->cb->on_resolved) {
			uv_timer_stop(&n->timer);
			for (size_t i = 0; i < n->n_addrs; i++) /* the cache holds port 0 */
				set_port(&n->addrs[i], n->port);
			n->cb->on_resolved(n, n->addrs, n->n_addrs, n->user_data);
			continue;
		}
		try_next_address(n);
	}
}

static void on_connect_timeout(uv_timer_t *t)
{
	struct net *n = t->data;
	switch (n->state) {
	case NET_SHUTTING_DOWN:
		net_close(n);
		return;
	case NET_RESOLVING:
		net_fail(n, UV_ETIMEDOUT, "resolve");
		return;
	case NET_CONNECTING:
		/* This address never answered: give the next one its own full timeout. */
		n->last_connect_err = UV_ETIMEDOUT;
		drop_socket(n);
		try_next_address(n);
		return;
	case NET_OPEN:
	case NET_CLOSED:
		return;
	}
}

int net_connect(struct net_ctx *ctx, const char *host, uint16_t port, uint64_t timeout_ms,
		unsigned start, const struct net_callbacks *cb, void *user_data, struct net **out)
{
	size_t hl = strlen(host);
	if (hl == 0 || hl > 253 || ctx->closing)
		return -EINVAL;
	struct net *n = calloc(1, sizeof(*n) + hl + 1);
	if (!n)
		return -ENOMEM;
	memcpy(n->host, host, hl + 1);
	n->ctx = ctx;
	n->cb = cb;
	n->user_data = user_data;
	n->port = port;
	n->timeout_ms = timeout_ms;
	n->start = start;
	n->state = NET_RESOLVING;
	list_init(&n->wait_link);

	/* IP literals (with or without [brackets]) skip DNS. */
	char lit[INET6_ADDRSTRLEN];
	const char *h = host;
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']' && hl - 2 < sizeof(lit)) {
		memcpy(lit, host + 1, hl - 2);
		lit[hl - 2] = '\0';
		h = lit;
	}
	struct sockaddr_in6 a6;
	struct sockaddr_in a4;
	if (uv_ip4_addr(h, port, &a4) == 0) {
		memcpy(&n->addrs[0], &a4, sizeof(a4));
		n->n_addrs = 1;
	} else if (uv_ip6_addr(h, port, &a6) == 0) {
		memcpy(&n->addrs[0], &a6, sizeof(a6));
		n->n_addrs = 1;
	}
	if (n->n_addrs) {
		list_insert_tail(&ctx->ready, &n->wait_link);
		deliver_soon(ctx);
	} else {
		int rc = resolve(n); /* on failure n was not linked anywhere */
		if (rc < 0) {
			free(n);
			return rc;
		}
	}
	uv_timer_init(ctx->loop, &n->timer);
	n->timer.data = n;
	n->pending_closes = 1; /* the timer; the tcp handle adds one when it exists */
	uv_timer_start(&n->timer, on_connect_timeout, timeout_ms, 0); /* resolution */
	*out = n;
	return 0;
}

static void on_write(uv_write_t *req, int status)
{
	struct net_write *w = container_of(req, struct net_write, req);
	struct net *n = w->n;
	n->queued -= sizeof(*w) + w->len;
	free(w);
	if (status < 0 && status != UV_ECANCELED)
		net_fail(n, status, "write");
}

int net_write(struct net *n, const uint8_t *data, size_t len)
{
	if (n->state != NET_OPEN)
		return UV_ENOTCONN;
	if (len == 0)
		return 0;
	uv_stream_t *s = (uv_stream_t *)n->tcp;
	size_t done = 0;
	if (s->write_queue_size == 0) {
		uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
		int w = uv_try_write(s, &b, 1);
		if (w > 0)
			done = (size_t)w;
		else if (w != UV_EAGAIN && w < 0)
			return w;
	}
	if (done == len)
		return 0;
	/* The bound counts what the queue holds in memory, headers included: a flood of tiny
	 * writes (pongs) costs more in requests than in bytes. One write is always accepted
	 * into an empty queue, so a single large write cannot fail by itself. */
	size_t need = sizeof(struct net_write) + (len - done);
	if (n->queued > 0 && n->queued + need > NET_WRITE_QUEUE_MAX)
		return UV_ENOBUFS;
	struct net_write *w = malloc(need);
	if (!w)
		return UV_ENOMEM;
	w->n = n;
	w->len = len - done;
	memcpy(w->data, data + done, w->len);
	uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
	int rc = uv_write(&w->req, s, &b, 1, on_write);
	if (rc < 0) {
		free(w);
		return rc;
	}
	n->queued += need;
	return 0;
}

void net_pause(struct net *n)
{
	if (n->state == NET_OPEN && !n->paused) {
		uv_read_stop((uv_stream_t *)n->tcp);
		n->paused = true;
	}
}

void net_resume(struct net *n)
{
	if (n->state == NET_OPEN && n->paused) {
		n->paused = false;
		int rc = uv_read_start((uv_stream_t *)n->tcp, on_alloc, on_read);
		if (rc < 0)
			net_fail(n, rc, "read");
	}
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct net *n = req->data;
	if (status == UV_ECANCELED)
		return;
	net_close(n);
}

void net_shutdown(struct net *n)
{
	if (n->state != NET_OPEN) {
		net_close(n);
		return;
	}
	n->state = NET_SHUTTING_DOWN;
	uv_read_stop((uv_stream_t *)n->tcp);
	n->sreq.data = n;
	if (uv_shutdown(&n->sreq, (uv_stream_t *)n->tcp, on_shutdown) < 0) {
		net_close(n);
		return;
	}
	uv_timer_start(&n->timer, on_connect_timeout, NET_SHUTDOWN_MS, 0);
}

void net_close(struct net *n)
{
	if (n->state == NET_CLOSED)
		return;
	n->state = NET_CLOSED;
	list_remove(&n->wait_link); /* from a dns entry's waiters or the ready list */
	uv_timer_stop(&n->timer);
	uv_close((uv_handle_t *)&n->timer, on_timer_closed);
	if (n->tcp) {
		n->pending_closes++;
		uv_close((uv_handle_t *)n->tcp, on_tcp_closed);
		n->tcp = NULL;
	}
}

const char *net_peer(const struct net *n)
{
	return n->peer;
}

/* ---- context ---- */

int net_ctx_create(uv_loop_t *loop, struct net_ctx **out)
{
	struct net_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->loop = loop;
	list_init(&ctx->polls);
	list_init(&ctx->cache);
	list_init(&ctx->ready);
	static int lib_init;
	if (!lib_init) {
		if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
			free(ctx);
			return -EIO;
		}
		lib_init = 1;
	}
	struct ares_options o = {0};
	o.sock_state_cb = on_sock_state;
	o.sock_state_cb_data = ctx;
	o.timeout = 2000; /* ms with ARES_OPT_TIMEOUTMS */
	o.tries = 3;
	int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
	ctx->ares_ok = ares_init_options(&ctx->channel, &o, mask) == ARES_SUCCESS;
	uv_timer_init(loop, &ctx->ares_timer);
	ctx->ares_timer.data = ctx;
	uv_timer_init(loop, &ctx->deliver_timer);
	ctx->deliver_timer.data = ctx;
	*out = ctx;
	return 0;
}

static void on_ctx_handle_closed(uv_handle_t *h)
{
	ctx_release(h->data);
}

void net_ctx_close(struct net_ctx *ctx)
{
	if (!ctx)
		return;
	ctx->closing = true;
	if (ctx->ares_ok)
		ares_destroy(ctx->channel); /* fails pending lookups with ARES_EDESTRUCTION */
	while (!list_empty(&ctx->polls))
		poll_close(container_of(ctx->polls.next, struct dns_poll, link));
	while (!list_empty(&ctx->cache))
		entry_free(container_of(ctx->cache.next, struct dns_entry, link));
	/* Whichever close callback runs last (a poll's or a timer's) frees the ctx. */
	ctx->pending_closes += 2;
	uv_close((uv_handle_t *)&ctx->ares_timer, on_ctx_handle_closed);
	uv_close((uv_handle_t *)&ctx->deliver_timer, on_ctx_handle_closed);
}
