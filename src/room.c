/*
 * room: one room's connection state machine. Each attempt stacks optional layers over one
 * byte stream: TCP (the env's transport), then TLS for wss://, then a websocket for wss://
 * and ws://, and the platform's packet stream on top. Inbound bytes climb the stack in
 * on_net_read(); outbound packets go down through send_plain() -> send_transport(), which
 * only collects them (websocket frames: the login, pongs, close replies) in r->out. flush_out
 * then hands them to TLS as one plaintext (so one record per 16 KiB, not one per frame) and
 * to the socket as one write, once per entry point: a server that floods pings costs one
 * write per read, and the transport's write bound (write queue full) ends a server that does
 * not read what we send.
 * A failure anywhere calls room_fail(), which only records the reason and starts closing the
 * transport: the layers are freed in on_net_closed(), where the session ends and the
 * reconnect is scheduled. The room reports to its owner only through struct room_events.
 */
#include "room.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "net.h"
#include "platform.h"
#include "tls.h"
#include "ws.h"

#define ROOM_ADDR_TIMEOUT_MS 10000 /* per address of a host */
#define ROOM_HANDSHAKE_TIMEOUT_MS 30000
#define ROOM_BACKOFF_BASE_MS 1000
#define ROOM_BACKOFF_CAP_MS 60000
#define ROOM_STABLE_MS 60000
/* A prepared result (token, host list) is reused by the next attempt while it is this fresh,
 * unless the server refused the login or attempts keep failing: one API call per reconnect
 * would be a storm when a network blip drops every room at once. */
#define ROOM_PREPARED_TTL_MS (10 * 60 * 1000)
#define ROOM_PREPARED_MAX_FAILURES 3

const char *room_state_name(enum room_state s)
{
	switch (s) {
	case ROOM_IDLE:
		return "idle";
	case ROOM_PREPARING:
		return "preparing";
	case ROOM_CONNECTING: /* resolving the host, then connecting to one of its addresses */
		return "connecting";
	case ROOM_TLS_HANDSHAKE:
		return "tls";
	case ROOM_WS_UPGRADE:
		return "upgrading";
	case ROOM_JOINING:
		return "joining";
	case ROOM_LIVE:
		return "live";
	case ROOM_BACKOFF:
		return "backoff";
	case ROOM_CLOSING:
		return "closing";
	}
	return "?";
}

struct room {
	const struct room_env *env;
	const struct platform *platform;
	const struct room_events *ev;
	void *user_data;
	int64_t id;        /* as configured */
	int64_t real_id;   /* as the prepare step resolved it (= id until then) */
	char name[48];     /* "288016" or "bilibili:76", for the log */
	enum room_state state;
	bool stopping;     /* stop requested: no reconnect, free after close */
	bool paused;       /* backpressure: reads stay stopped while live */
	bool session_open; /* session_began was reported for the current attempt */

	/* the prepare step: the one running, and the last result (owns the attempt's servers) */
	struct platform_prepare *preparing;
	struct platform_prepared *prep;
	uint64_t prep_at;        /* env->now() when prep arrived */
	bool prep_stale;         /* the server refused the login: prepare again */

	/* the current attempt */
	struct net *net;
	struct tls *tls;
	struct ws *ws;
	struct platform_session *ps;
	const struct server *server;
	size_t server_idx;
	unsigned addr_start;     /* first address to try; advances every attempt */
	int64_t session_id;      /* 0 until connected (or when no id could be given) */
	int64_t session_msgs;
	uint64_t attempt_start;  /* env->now() */
	uint64_t connected_at;
	uint64_t last_rx;        /* the last complete platform packet, or join/resume */
	uint64_t next_heartbeat;
	char reason[160];        /* why the attempt is ending */
	struct buf out;          /* bytes for the transport (plaintext under TLS), until flush_out */

	unsigned failures;       /* consecutive short-lived attempts */
	uv_timer_t backoff;
	struct room_stats stats;
};

static uint64_t now_ms(const struct room *r)
{
	return r->env->now(r->env->ctx);
}

static void room_set_state(struct room *r, enum room_state s)
{
	if (r->state == s)
		return;
	log_debug("room %s: %s -> %s", r->name, room_state_name(r->state),
		  room_state_name(s));
	r->state = s;
}

static bool room_is_closing(const struct room *r)
{
	return r->state == ROOM_CLOSING;
}

/*
 * End the current attempt with a reason and start closing the transport. Only records the
 * reason: the layers are freed in on_net_closed, so a caller deep in a parser must check
 * room_is_closing() after anything that can fail the room.
 */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void room_fail(struct room *r, const char *fmt, ...)
{
	if (r->state == ROOM_CLOSING || !r->net)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
	if (r->stopping)
		log_debug("room %s: closing: %s", r->name, r->reason);
	else if (r->state == ROOM_LIVE)
		log_warn("room %s: connection lost: %s", r->name, r->reason);
	else
		log_warn("room %s: %s (%s): %s", r->name, r->server->url,
			 room_state_name(r->state), r->reason);
	room_set_state(r, ROOM_CLOSING);
	r->env->io->close(r->net);
}

/* ---- sending: platform packets -> [ws] -> [tls] -> tcp ---- */

static void write_failed(struct room *r, int rc)
{
	if (rc == UV_ENOBUFS)
		room_fail(r, "write queue full");
	else
		room_fail(r, "write: %s", uv_strerror(rc));
}

/*
 * Send what this entry point produced: r->out through TLS (one plaintext, so records are
 * full, not one per websocket frame) and whatever TLS itself queued (handshake, alerts),
 * or r->out as is without TLS, in one transport write.
 */
static void flush_out(struct room *r)
{
	if (room_is_closing(r) || !r->net) {
		buf_clear(&r->out);
		return;
	}
	struct buf *o = &r->out;
	if (r->tls) {
		if (r->out.len > 0) {
			int rc = tls_write(r->tls, buf_head(&r->out), r->out.len);
			buf_clear(&r->out);
			if (rc < 0) {
				room_fail(r, "tls: %s", tls_last_error(r->tls));
				return;
			}
		}
		o = tls_pending_out(r->tls);
	}
	if (o->len > 0) {
		int rc = r->env->io->write(r->net, buf_head(o), o->len);
		buf_clear(o);
		if (rc < 0)
			write_failed(r, rc);
	}
	(void)buf_trim(&r->out, BUF_KEEP); /* empty here: a flood made it grow once */
}

/* Collected for flush_out, which every entry point that can send ends with. */
static int send_transport(struct room *r, const uint8_t *data, size_t len)
{
	return buf_append(&r->out, data, len);
}

static int ws_send_cb(void *user_data, const uint8_t *data, size_t len)
{
	return send_transport(user_data, data, len);
}

static int send_plain(struct room *r, const uint8_t *data, size_t len)
{
	if (len == 0)
		return 0;
	if (r->ws)
		return ws_send_binary(r->ws, data, len);
	return send_transport(r, data, len);
}

/* Send whatever the platform queued in the shared scratch buffer, then flush. */
static void send_scratch(struct room *r)
{
	struct buf *out = r->env->scratch;
	if (out->len > 0 && !room_is_closing(r)) {
		int rc = send_plain(r, buf_head(out), out->len);
		if (rc < 0 && !room_is_closing(r))
			room_fail(r, "send: %s", rc == -ENOMEM ? "out of memory" : uv_strerror(rc));
	}
	buf_clear(out);
	flush_out(r);
}

/* ---- platform events ---- */

static void on_joined(void *user_data)
{
	struct room *r = user_data;
	room_set_state(r, ROOM_LIVE);
	uint64_t now = now_ms(r);
	r->last_rx = now;
	r->next_heartbeat = now + r->env->heartbeat_ms;
	log_info("room %s: joined via %s (%s), session %" PRId64, r->name, r->server->url,
		 r->env->io->peer(r->net), r->session_id);
	if (r->session_open)
		r->ev->session_joined(r->user_data, r->session_id);
}

static void on_record(void *user_data, const struct record *rec)
{
	struct room *r = user_data;
	r->stats.received++;
	r->stats.last_msg_ms = (uint64_t)rec->ts;
	if (rec->replaced_utf8) {
		r->stats.replaced_utf8 += rec->replaced_utf8;
		log_debug("room %s: %s: %zu invalid UTF-8 sequence(s) replaced by U+FFFD",
			  r->name, rec->type, rec->replaced_utf8);
	}
	if (r->ev->record(r->user_data, rec) == 0) {
		r->stats.stored++;
		r->session_msgs++;
	} else {
		r->stats.not_stored++;
	}
}

static void on_foreign(void *user_data, const char *type)
{
	struct room *r = user_data;
	r->stats.foreign++;
	log_debug("room %s: not stored: %s of another room", r->name, type);
}

/*
 * The server reported an error. The record is stored (the platform hands it over right after
 * this), and the connection ends here with the code as its reason: after an error Douyu's
 * server neither recovers the session nor always closes it (douyu-protocol.md §4.5), and
 * waiting for the heartbeat timeout would lose 2x the heartbeat interval. A room that keeps
 * getting errors backs off like any failing connection. The platform words the meaning.
 */
static void on_server_error(void *user_data, int64_t code, const char *text)
{
	struct room *r = user_data;
	r->prep_stale = true; /* e.g. a refused token: the next attempt asks for a new one */
	room_fail(r, "server error %" PRId64 "%s%s%s", code, text && *text ? " (" : "",
		  text && *text ? text : "", text && *text ? ")" : "");
}

static void on_skipped(void *user_data, uint64_t n, const char *why)
{
	struct room *r = user_data;
	r->stats.skipped += n;
	log_debug("room %s: skipped %" PRIu64 " packet(s): %s (%" PRIu64 " in all)", r->name,
		  n, why, r->stats.skipped);
}

static const struct platform_events platform_ev = {
	.on_joined = on_joined,
	.on_record = on_record,
	.on_foreign = on_foreign,
	.on_server_error = on_server_error,
	.on_skipped = on_skipped,
};

/* ---- receiving: tcp -> [tls] -> [ws] -> platform ---- */

static int deliver_stream(struct room *r, const uint8_t *data, size_t len)
{
	int rc = r->platform->feed(r->ps, (int64_t)r->env->wall(r->env->ctx), r->session_id, data, len,
				   r->env->scratch);
	if (rc < 0) {
		if (!room_is_closing(r))
			room_fail(r, "protocol: %s",
				  rc == -EPROTO ? "bad packet framing" : strerror(-rc));
		return rc;
	}
	/* Liveness is a complete packet, never raw bytes or websocket pings: a server that
	 * trickles bytes or only pings is not recording anything. */
	if (rc > 0 && !room_is_closing(r))
		r->last_rx = now_ms(r);
	return 0;
}

/* Message bytes as they arrive, fragments and partial frames included: the platform reader
 * reassembles its packets from any split, so nothing is buffered per message here. */
static int ws_data_cb(void *user_data, const uint8_t *data, size_t len, bool binary)
{
	struct room *r = user_data;
	(void)binary;
	if (room_is_closing(r))
		return -ECANCELED;
	return deliver_stream(r, data, len) < 0 ? -ECANCELED : 0;
}

static const struct ws_callbacks ws_cb = {
	.send = ws_send_cb,
	.on_data = ws_data_cb,
};

static void send_hello(struct room *r)
{
	room_set_state(r, ROOM_JOINING);
	int rc = r->platform->hello(r->ps, r->env->scratch);
	if (rc < 0) {
		buf_clear(r->env->scratch);
		room_fail(r, "login: %s", strerror(-rc));
		return;
	}
	send_scratch(r);
}

static void start_ws(struct room *r)
{
	int rc = ws_create(r->server->host_header, r->server->path, 0, &ws_cb, r, &r->ws);
	if (rc == 0 && r->prep && r->prep->headers)
		rc = ws_set_headers(r->ws, r->prep->headers);
	if (rc < 0) {
		room_fail(r, "websocket: %s", strerror(-rc));
		return;
	}
	room_set_state(r, ROOM_WS_UPGRADE);
	rc = ws_start(r->ws);
	if (rc < 0 && !room_is_closing(r))
		room_fail(r, "websocket: %s", strerror(-rc));
}

/* Plaintext from TLS or TCP. */
static void deliver_plain(struct room *r, const uint8_t *data, size_t len)
{
	if (!r->ws) {
		deliver_stream(r, data, len);
		return;
	}
	int rc = ws_feed(r->ws, data, len);
	if (room_is_closing(r))
		return;
	if (rc == -EPIPE) {
		uint16_t code = ws_peer_close_code(r->ws);
		if (code)
			room_fail(r, "server closed (websocket close %u)", code);
		else
			room_fail(r, "server closed (websocket close)");
		return;
	}
	if (rc < 0) {
		room_fail(r, "websocket: %s", ws_last_error(r->ws));
		return;
	}
	if (r->state == ROOM_WS_UPGRADE && ws_is_open(r->ws))
		send_hello(r);
}

static void on_transport_ready(struct room *r)
{
	if (r->server->scheme == SERVER_TCP)
		send_hello(r);
	else
		start_ws(r);
}

static void tls_progress(struct room *r)
{
	if (r->state == ROOM_TLS_HANDSHAKE) {
		int rc = tls_handshake(r->tls);
		flush_out(r);
		if (room_is_closing(r) || rc == -EAGAIN)
			return;
		if (rc < 0) {
			room_fail(r, "tls: %s", tls_last_error(r->tls));
			return;
		}
		log_debug("room %s: tls established (%s)", r->name,
			  tls_ciphersuite(r->tls));
		on_transport_ready(r);
		if (room_is_closing(r))
			return;
	}
	uint8_t plain[16384];
	for (;;) {
		ssize_t n = tls_read(r->tls, plain, sizeof(plain));
		if (n == -EAGAIN)
			break;
		if (n == 0) {
			room_fail(r, "server closed (tls close_notify)");
			return;
		}
		if (n < 0) {
			room_fail(r, "tls: %s", tls_last_error(r->tls));
			return;
		}
		deliver_plain(r, plain, (size_t)n);
		if (room_is_closing(r))
			return;
	}
}

static void on_net_read(struct net *n, const uint8_t *data, size_t len, void *user_data)
{
	struct room *r = user_data;
	if (room_is_closing(r))
		return;
	if (r->tls) {
		if (tls_feed(r->tls, data, len) < 0) {
			room_fail(r, "tls: out of memory");
			return;
		}
		tls_progress(r);
	} else {
		deliver_plain(r, data, len);
	}
	/* Replies the platform queued (joingroup), pongs and TLS records: one write. */
	send_scratch(r);
	if (r->paused && r->state == ROOM_LIVE && r->net)
		r->env->io->pause(r->net); /* joined while reads were paused */
}

static void on_net_connected(struct net *n, void *user_data)
{
	struct room *r = user_data;
	const struct room_env *env = r->env;
	r->connected_at = now_ms(r);
	r->last_rx = r->connected_at;
	r->session_msgs = 0;
	const char *peer = env->io->peer(n);
	int64_t sid = r->ev->session_began(r->user_data, r->server->url, peer);
	r->session_id = sid > 0 ? sid : 0;
	r->session_open = true;
	log_info("room %s: connected to %s (%s)", r->name, r->server->url, peer);
	int rc = r->platform->session_create(r->real_id, r->prep ? r->prep->params : NULL,
					     &platform_ev, r, &r->ps);
	if (rc < 0) {
		room_fail(r, "out of memory");
		return;
	}
	if (r->server->scheme != SERVER_WSS) {
		on_transport_ready(r);
		flush_out(r); /* the Upgrade request */
		return;
	}
	if (env->insecure)
		log_warn("room %s: %s: TLS certificate and host name NOT verified "
			 "(--insecure)",
			 r->name, r->server->url);
	rc = env->tls ? tls_create(env->tls, r->server->host, &r->tls) : -EINVAL;
	if (rc < 0) {
		room_fail(r, "tls: %s", strerror(-rc));
		return;
	}
	room_set_state(r, ROOM_TLS_HANDSHAKE);
	tls_progress(r);
}

static void on_net_error(struct net *n, int err, const char *what, void *user_data)
{
	struct room *r = user_data;
	if (err == UV_EOF)
		room_fail(r, "server closed");
	else if (err == UV_ECONNRESET)
		room_fail(r, "connection reset");
	else if (err == UV_ETIMEDOUT)
		room_fail(r, "%s timeout", what);
	else
		room_fail(r, "%s: %s", what, uv_strerror(err));
}

static void schedule_reconnect(struct room *r);
static void on_backoff_closed(uv_handle_t *h);

static void on_net_closed(struct net *n, void *user_data)
{
	struct room *r = user_data;
	uint64_t lived = r->session_open ? now_ms(r) - r->connected_at : 0;
	if (r->session_open)
		r->ev->session_ended(r->user_data, r->session_id, r->reason);
	tls_destroy(r->tls);
	ws_destroy(r->ws);
	if (r->ps)
		r->platform->session_destroy(r->ps);
	r->tls = NULL;
	r->ws = NULL;
	r->ps = NULL;
	r->net = NULL;
	buf_finish(&r->out);
	int64_t sid = r->session_id;
	r->session_id = 0;
	r->session_open = false;
	if (r->stopping) {
		/* The accounting line: what this process received and queued for the room. */
		log_info("room %s: stopped (%s), session %" PRId64 ", %" PRId64
			 " messages; in all received %" PRIu64 ", stored %" PRIu64,
			 r->name, r->reason, sid, r->session_msgs, r->stats.received,
			 r->stats.stored);
		room_set_state(r, ROOM_IDLE);
		uv_close((uv_handle_t *)&r->backoff, on_backoff_closed);
		return;
	}
	if (lived >= ROOM_STABLE_MS)
		r->failures = 0;
	schedule_reconnect(r);
}

static const struct net_callbacks net_cb = {
	.on_connected = on_net_connected,
	.on_read = on_net_read,
	.on_error = on_net_error,
	.on_closed = on_net_closed,
};

/* ---- attempts, backoff ---- */

static void connect_now(struct room *r)
{
	const struct room_env *env = r->env;
	if (r->prep && r->prep->n_servers > 0)
		r->server = &r->prep->servers[r->server_idx % r->prep->n_servers];
	else
		r->server = &env->servers[r->server_idx % env->n_servers];
	r->server_idx++;
	r->reason[0] = '\0';
	r->attempt_start = now_ms(r);
	room_set_state(r, ROOM_CONNECTING);
	/* Each attempt begins at the next address of the host: a dead first address costs one
	 * address timeout per attempt, not every attempt. */
	int rc = env->io->connect(env->net, r->server->host, r->server->port, ROOM_ADDR_TIMEOUT_MS,
				  r->addr_start++, &net_cb, r, &r->net);
	if (rc < 0) {
		r->net = NULL;
		snprintf(r->reason, sizeof(r->reason), "connect: %s", strerror(-rc));
		log_warn("room %s: %s: %s", r->name, r->server->url, r->reason);
		schedule_reconnect(r);
	}
}

static void on_prepared(void *user_data, int status, struct platform_prepared *p,
			const char *err)
{
	struct room *r = user_data;
	r->preparing = NULL;
	if (status < 0) {
		snprintf(r->reason, sizeof(r->reason), "prepare: %s", err ? err : strerror(-status));
		log_warn("room %s: %s", r->name, r->reason);
		schedule_reconnect(r);
		return;
	}
	r->platform->prepared_free(r->prep);
	r->prep = p;
	r->prep_at = now_ms(r);
	r->prep_stale = false;
	if (p->room_id > 0 && p->room_id != r->real_id) {
		log_info("room %s: real room id %" PRId64, r->name, p->room_id);
		r->real_id = p->room_id;
	}
	if (r->ev->resolved)
		r->ev->resolved(r->user_data, r->real_id, p->short_id);
	if (p->note[0])
		log_notice("room %s: %s", r->name, p->note);
	connect_now(r);
}

/* Prepare first when the platform has a prepare step and the last result is not reusable. */
static void attempt(struct room *r)
{
	const struct platform *pf = r->platform;
	bool reuse = r->prep && !r->prep_stale && r->failures < ROOM_PREPARED_MAX_FAILURES &&
		     now_ms(r) - r->prep_at < ROOM_PREPARED_TTL_MS && !r->prep->refresh_after_ms;
	if (!pf->prepare || !r->env->pctx || reuse) {
		connect_now(r);
		return;
	}
	r->reason[0] = '\0';
	r->attempt_start = now_ms(r);
	room_set_state(r, ROOM_PREPARING);
	int rc = pf->prepare(r->env->pctx, r->id, on_prepared, r, &r->preparing);
	if (rc < 0) {
		r->preparing = NULL;
		snprintf(r->reason, sizeof(r->reason), "prepare: %s", strerror(-rc));
		log_warn("room %s: %s", r->name, r->reason);
		schedule_reconnect(r);
	}
}

static void on_backoff(uv_timer_t *t)
{
	struct room *r = t->data;
	if (r->stopping)
		return;
	r->stats.reconnects++;
	attempt(r);
}

static void schedule_reconnect(struct room *r)
{
	/* Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^failures)]. */
	unsigned f = r->failures < 16 ? r->failures : 16;
	uint64_t ceil = (uint64_t)ROOM_BACKOFF_BASE_MS << f;
	if (ceil > ROOM_BACKOFF_CAP_MS)
		ceil = ROOM_BACKOFF_CAP_MS;
	uint64_t delay = r->env->random(r->env->ctx) % (ceil + 1);
	if (delay < 100)
		delay = 100; /* never a hot loop, even with an unlucky draw */
	r->failures++;
	room_set_state(r, ROOM_BACKOFF);
	log_notice("room %s: lost (%s); reconnecting in %.1f s (backoff up to %.0f s)",
		   r->name, r->reason[0] ? r->reason : "?", (double)delay / 1000.0,
		   (double)ceil / 1000.0);
	uv_timer_start(&r->backoff, on_backoff, delay, 0);
}

int room_create(const struct room_env *env, const struct platform *platform, int64_t id,
		const struct room_events *ev, void *user_data, struct room **out)
{
	struct room *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->env = env;
	r->platform = platform;
	r->ev = ev;
	r->user_data = user_data;
	r->id = id;
	r->real_id = id;
	platform_room_name(r->name, sizeof(r->name), platform, id);
	r->state = ROOM_IDLE;
	buf_init(&r->out);
	uv_timer_init(env->loop, &r->backoff);
	r->backoff.data = r;
	*out = r;
	return 0;
}

void room_start(struct room *r)
{
	/* Spread the first attempts of many rooms over the server list. */
	r->server_idx = (size_t)r->id;
	attempt(r);
}

void room_tick(struct room *r, uint64_t now)
{
	uint64_t hb = r->env->heartbeat_ms;
	switch (r->state) {
	case ROOM_CONNECTING:
		/* The transport times out each address itself; this only catches a transport
		 * that never answers at all. */
		if (now - r->attempt_start > 6 * (uint64_t)ROOM_ADDR_TIMEOUT_MS)
			room_fail(r, "connect timeout");
		return;
	case ROOM_TLS_HANDSHAKE:
	case ROOM_WS_UPGRADE:
	case ROOM_JOINING: {
		uint64_t limit = 2 * hb < ROOM_HANDSHAKE_TIMEOUT_MS ? 2 * hb : ROOM_HANDSHAKE_TIMEOUT_MS;
		if (limit < 2000)
			limit = 2000;
		if (now - r->connected_at > limit)
			room_fail(r, "%s timeout", room_state_name(r->state));
		return;
	}
	case ROOM_LIVE:
		if (r->prep && r->prep->refresh_after_ms &&
		    now - r->connected_at > r->prep->refresh_after_ms) {
			room_fail(r, "refresh (%s)", r->prep->note[0] ? r->prep->note : "degraded");
			return;
		}
		if (r->paused)
			r->last_rx = now; /* we are not reading: silence proves nothing */
		else if (now - r->last_rx > 2 * hb) {
			room_fail(r, "heartbeat timeout");
			return;
		}
		if (now >= r->next_heartbeat) {
			r->next_heartbeat = now + hb;
			if (r->platform->heartbeat(r->ps, r->env->scratch) == 0)
				send_scratch(r);
			else
				buf_clear(r->env->scratch);
		}
		return;
	case ROOM_IDLE:
	case ROOM_PREPARING: /* bounded by the platform (timeouts of its own calls) */
	case ROOM_BACKOFF:
	case ROOM_CLOSING:
		return;
	}
}

static void on_backoff_closed(uv_handle_t *h)
{
	struct room *r = h->data;
	r->ev->gone(r->user_data);
	buf_finish(&r->out);
	if (r->prep)
		r->platform->prepared_free(r->prep);
	free(r);
}

void room_stop(struct room *r, const char *reason)
{
	if (r->stopping)
		return;
	r->stopping = true;
	uv_timer_stop(&r->backoff);
	switch (r->state) {
	case ROOM_PREPARING:
		r->platform->prepare_cancel(r->preparing);
		r->preparing = NULL;
		/* fall through */
	case ROOM_IDLE:
	case ROOM_BACKOFF:
		room_set_state(r, ROOM_IDLE);
		uv_close((uv_handle_t *)&r->backoff, on_backoff_closed);
		return;
	case ROOM_CLOSING:
		return; /* on_net_closed sees stopping and frees the room */
	case ROOM_JOINING:
	case ROOM_LIVE:
		/* Say goodbye through every layer, then let the writes drain before closing. */
		if (r->platform->goodbye(r->ps, r->env->scratch) == 0)
			send_scratch(r);
		else
			buf_clear(r->env->scratch);
		if (r->ws && !room_is_closing(r))
			ws_close(r->ws, 1000);
		/* The collected frames go through TLS before its close_notify, not after it. */
		flush_out(r);
		if (r->tls && !room_is_closing(r)) {
			tls_close_notify(r->tls);
			flush_out(r);
		}
		if (room_is_closing(r))
			return;
		snprintf(r->reason, sizeof(r->reason), "%s", reason);
		room_set_state(r, ROOM_CLOSING);
		r->env->io->shutdown(r->net);
		return;
	case ROOM_CONNECTING:
	case ROOM_TLS_HANDSHAKE:
	case ROOM_WS_UPGRADE:
		snprintf(r->reason, sizeof(r->reason), "%s", reason);
		room_set_state(r, ROOM_CLOSING);
		r->env->io->close(r->net);
		return;
	}
}

void room_abort(struct room *r)
{
	if (r->net)
		r->env->io->close(r->net);
}

void room_pause(struct room *r)
{
	if (r->paused)
		return;
	r->paused = true;
	/* A connection still handshaking keeps reading; it pauses once it has joined. */
	if (r->net && r->state == ROOM_LIVE)
		r->env->io->pause(r->net);
}

void room_resume(struct room *r)
{
	if (!r->paused)
		return;
	r->paused = false;
	if (r->net && !room_is_closing(r)) {
		/* Silence while paused was ours, not the server's. */
		r->last_rx = now_ms(r);
		r->env->io->resume(r->net);
	}
}

int64_t room_id(const struct room *r)
{
	return r->id;
}

const char *room_name(const struct room *r)
{
	return r->name;
}

enum room_state room_state(const struct room *r)
{
	return r->state;
}

bool room_is_stopping(const struct room *r)
{
	return r->stopping;
}

const struct room_stats *room_stats(const struct room *r)
{
	return &r->stats;
}

/* ---- the production transport: net.c ---- */

const struct room_transport room_net_transport = {
	.connect = net_connect,
	.write = net_write,
	.pause = net_pause,
	.resume = net_resume,
	.shutdown = net_shutdown,
	.close = net_close,
	.peer = net_peer,
};
