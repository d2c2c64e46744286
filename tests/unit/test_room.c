/*
 * The room state machine without sockets: a scripted transport (this file's struct net), a
 * scripted platform whose packets are "X;" (J join, R record, E server error, F another
 * room's message, P a bare packet, ! broken framing) and a fake clock. Every state is
 * entered and left by each way out of it: success, transport error, timeout, protocol
 * error, server error, write queue full, and stop. Only the backoff timer is real (libuv);
 * the random source makes every backoff the 100 ms minimum, so waiting for it is short.
 */
#include <errno.h>
#include <uv.h>

#include "buf.h"
#include "log.h"
#include "net.h"
#include "platform.h"
#include "room.h"
#include "tls.h"
#include "ws.h"
#include "test.h"

/* ---- the scripted transport ---- */

struct net {
	const struct net_callbacks *cb;
	void *user_data;
	char host[64];
	uint16_t port;
	unsigned start;
	bool paused, shut, closing;
	struct buf written;
};

struct fake {
	uv_loop_t loop;
	struct room_env env;
	struct buf scratch;
	struct net *n;        /* the open attempt, NULL between attempts */
	int connects;
	int connect_rc;       /* what the next connect returns */
	int write_rc;         /* what writes return */
	uint64_t now, wall;
	/* room events */
	int began, joined, ended, gone;
	int64_t next_sid, joined_sid, ended_sid;
	char ended_reason[160];
	int record_rc;
	int records;
	int64_t last_rec_session, last_rec_room;
	char last_rec_type[16];
	/* the prepare step of prep_platform */
	int prepares, cancels, resolved;
	int64_t resolved_id, resolved_short, prepare_id;
	platform_prepared_cb prep_cb;
	void *prep_ud;
};

static struct fake *fk; /* the transport functions have no user pointer of their own */

static int fake_connect(struct net_ctx *ctx, const char *host, uint16_t port, uint64_t timeout,
			unsigned start, const struct net_callbacks *cb, void *user_data,
			struct net **out)
{
	(void)ctx;
	(void)timeout;
	fk->connects++;
	if (fk->connect_rc)
		return fk->connect_rc;
	struct net *n = calloc(1, sizeof(*n));
	n->cb = cb;
	n->user_data = user_data;
	snprintf(n->host, sizeof(n->host), "%s", host);
	n->port = port;
	n->start = start;
	buf_init(&n->written);
	fk->n = n;
	*out = n;
	return 0;
}

static int fake_write(struct net *n, const uint8_t *data, size_t len)
{
	if (fk->write_rc)
		return fk->write_rc;
	return buf_append(&n->written, data, len);
}

static void fake_pause(struct net *n)
{
	n->paused = true;
}

static void fake_resume(struct net *n)
{
	n->paused = false;
}

static void fake_shutdown(struct net *n)
{
	n->shut = true;
}

static void fake_close(struct net *n)
{
	n->closing = true;
}

static const char *fake_peer(const struct net *n)
{
	(void)n;
	return "127.0.0.1:1";
}

static const struct room_transport fake_io = {
	.connect = fake_connect,
	.write = fake_write,
	.pause = fake_pause,
	.resume = fake_resume,
	.shutdown = fake_shutdown,
	.close = fake_close,
	.peer = fake_peer,
};

/* What the server side does to the open attempt. */
static void srv_connected(void)
{
	fk->n->cb->on_connected(fk->n, fk->n->user_data);
}

static void srv_send(const char *s)
{
	fk->n->cb->on_read(fk->n, (const uint8_t *)s, strlen(s), fk->n->user_data);
}

static void srv_send_bytes(const uint8_t *p, size_t len)
{
	fk->n->cb->on_read(fk->n, p, len, fk->n->user_data);
}

static void srv_error(int err, const char *what)
{
	fk->n->cb->on_error(fk->n, err, what, fk->n->user_data);
}

/* The transport finished closing (asynchronous in net.c). */
static void net_closed(void)
{
	struct net *n = fk->n;
	fk->n = NULL;
	n->cb->on_closed(n, n->user_data);
	buf_finish(&n->written);
	free(n);
}

static bool written_has(const char *s)
{
	struct buf *w = &fk->n->written;
	size_t l = strlen(s);
	for (size_t i = 0; i + l <= w->len; i++)
		if (memcmp(buf_head(w) + i, s, l) == 0)
			return true;
	return false;
}

/* ---- the scripted platform ---- */

struct platform_session {
	const struct platform_events *ev;
	void *user_data;
	int64_t room_id;
	struct buf partial;
};

static int p_create(int64_t room_id, const void *params, const struct platform_events *ev,
		    void *user_data, struct platform_session **out)
{
	(void)params;
	struct platform_session *s = calloc(1, sizeof(*s));
	s->ev = ev;
	s->user_data = user_data;
	s->room_id = room_id;
	buf_init(&s->partial);
	*out = s;
	return 0;
}

static void p_destroy(struct platform_session *s)
{
	buf_finish(&s->partial);
	free(s);
}

static int p_hello(struct platform_session *s, struct buf *out)
{
	return buf_append_str(out, "HELLO;");
}

static void p_record(struct platform_session *s, int64_t now, int64_t sid, const char *type)
{
	struct record r = {.room_id = s->room_id, .ts = now, .session_id = sid, .type = type,
			   .data = "{}", .data_len = 2};
	s->ev->on_record(s->user_data, &r);
}

static int p_feed(struct platform_session *s, int64_t now, int64_t sid, const uint8_t *data,
		  size_t len, struct buf *out)
{
	int packets = 0;
	for (size_t i = 0; i < len; i++) {
		if (data[i] != ';') {
			buf_append(&s->partial, data + i, 1);
			continue;
		}
		char c = s->partial.len ? (char)buf_head(&s->partial)[0] : 0;
		buf_clear(&s->partial);
		packets++;
		switch (c) {
		case 'J':
			buf_append_str(out, "JOIN;");
			s->ev->on_joined(s->user_data);
			break;
		case 'R':
			p_record(s, now, sid, "chat");
			break;
		case 'E':
			s->ev->on_server_error(s->user_data, 51, "boom");
			p_record(s, now, sid, "error");
			break;
		case 'F':
			s->ev->on_foreign(s->user_data, "chat");
			break;
		case '!':
			return -EPROTO;
		default:
			break;
		}
	}
	return packets;
}

static int p_heartbeat(struct platform_session *s, struct buf *out)
{
	return buf_append_str(out, "HB;");
}

static int p_goodbye(struct platform_session *s, struct buf *out)
{
	return buf_append_str(out, "BYE;");
}

static const char *const p_servers[] = {NULL};

static const struct platform fake_platform = {
	.default_servers = p_servers,
	.session_create = p_create,
	.session_destroy = p_destroy,
	.hello = p_hello,
	.feed = p_feed,
	.heartbeat = p_heartbeat,
	.goodbye = p_goodbye,
};

/* The same platform with a prepare step: the test answers it (prep_answer) when it likes. */
struct platform_prepare {
	int dummy;
};
static struct platform_prepare the_prepare;
static struct platform_ctx *const the_ctx = (struct platform_ctx *)&the_prepare;

static int pp_prepare(struct platform_ctx *ctx, int64_t room_id, platform_prepared_cb cb,
		      void *user_data, struct platform_prepare **out)
{
	fk->prepares++;
	fk->prepare_id = room_id;
	fk->prep_cb = cb;
	fk->prep_ud = user_data;
	*out = &the_prepare;
	return 0;
}

static void pp_cancel(struct platform_prepare *p)
{
	fk->cancels++;
	fk->prep_cb = NULL;
}

static void pp_free(struct platform_prepared *p)
{
	if (!p)
		return;
	free(p->servers);
	free(p->headers);
	free(p);
}

static const struct platform prep_platform = {
	.name = "prep",
	.default_servers = p_servers,
	.prepare = pp_prepare,
	.prepare_cancel = pp_cancel,
	.prepared_free = pp_free,
	.session_create = p_create,
	.session_destroy = p_destroy,
	.hello = p_hello,
	.feed = p_feed,
	.heartbeat = p_heartbeat,
	.goodbye = p_goodbye,
};

/* Answer the pending prepare: real id, one server (NULL: the env's), refresh_after_ms. */
static void prep_answer(int64_t real, const char *url, uint64_t refresh)
{
	struct platform_prepared *p = calloc(1, sizeof(*p));
	p->room_id = real;
	p->short_id = 76;
	p->refresh_after_ms = refresh;
	if (url) {
		char err[128];
		p->servers = calloc(1, sizeof(*p->servers));
		server_parse(url, p->servers, err, sizeof(err));
		p->n_servers = 1;
	}
	platform_prepared_cb cb = fk->prep_cb;
	fk->prep_cb = NULL;
	cb(fk->prep_ud, 0, p, NULL);
}

/* ---- room events ---- */

static int64_t ev_began(void *ud, const char *url, const char *peer)
{
	fk->began++;
	return fk->next_sid;
}

static void ev_joined(void *ud, int64_t sid)
{
	fk->joined++;
	fk->joined_sid = sid;
}

static void ev_ended(void *ud, int64_t sid, const char *reason)
{
	fk->ended++;
	fk->ended_sid = sid;
	snprintf(fk->ended_reason, sizeof(fk->ended_reason), "%s", reason);
}

static int ev_record(void *ud, const struct record *r)
{
	fk->records++;
	fk->last_rec_session = r->session_id;
	fk->last_rec_room = r->room_id;
	snprintf(fk->last_rec_type, sizeof(fk->last_rec_type), "%s", r->type);
	return fk->record_rc;
}

static void ev_gone(void *ud)
{
	fk->gone++;
}

static void ev_resolved(void *ud, int64_t id, int64_t short_id)
{
	fk->resolved++;
	fk->resolved_id = id;
	fk->resolved_short = short_id;
}

static const struct room_events events = {
	.resolved = ev_resolved,
	.session_began = ev_began,
	.session_joined = ev_joined,
	.session_ended = ev_ended,
	.record = ev_record,
	.gone = ev_gone,
};

static uint64_t clock_now(void *ctx)
{
	return ((struct fake *)ctx)->now;
}

static uint64_t clock_wall(void *ctx)
{
	return ((struct fake *)ctx)->wall;
}

static uint64_t no_jitter(void *ctx)
{
	(void)ctx;
	return 0; /* every backoff is the 100 ms floor */
}

#define HB 10000

static struct server servers[2];

static struct fake *fake_setup(const char *url0, const char *url1)
{
	struct fake *f = calloc(1, sizeof(*f));
	fk = f;
	uv_loop_init(&f->loop);
	buf_init(&f->scratch);
	char err[200];
	server_parse(url0, &servers[0], err, sizeof(err));
	if (url1)
		server_parse(url1, &servers[1], err, sizeof(err));
	f->env = (struct room_env){
	    .loop = &f->loop,
	    .io = &fake_io,
	    .servers = servers,
	    .n_servers = url1 ? 2 : 1,
	    .heartbeat_ms = HB,
	    .now = clock_now,
	    .wall = clock_wall,
	    .random = no_jitter,
	    .ctx = f,
	    .scratch = &f->scratch,
	};
	f->now = 1000000;
	f->wall = 1700000000000;
	f->next_sid = 7;
	return f;
}

/* Returns 0 when the loop closed cleanly (no handle left behind). */
static int fake_teardown(struct fake *f)
{
	uv_run(&f->loop, UV_RUN_DEFAULT);
	int rc = uv_loop_close(&f->loop);
	buf_finish(&f->scratch);
	free(f);
	fk = NULL;
	return rc;
}

static struct room *new_room(struct fake *f, int64_t id)
{
	struct room *r = NULL;
	if (room_create(&f->env, &fake_platform, id, &events, NULL, &r) < 0)
		return NULL;
	return r;
}

/* Stop a room and let it go: closes whatever is open; returns gone count. */
static int finish_room(struct fake *f, struct room *r)
{
	room_stop(r, "test over");
	if (f->n)
		net_closed();
	uv_run(&f->loop, UV_RUN_DEFAULT);
	return f->gone;
}

/* Wait (really: at most 100 ms) for the backoff timer to start the next attempt. */
static void run_backoff(struct fake *f)
{
	uv_run(&f->loop, UV_RUN_ONCE);
}

/* A room connected over tcp:// and joined. */
static struct room *live_room(struct fake *f)
{
	struct room *r = new_room(f, 9001);
	room_start(r);
	srv_connected();
	srv_send("J;");
	return r;
}

/* ---- the tests ---- */

static void test_connect_refused_sync_then_rotation(void)
{
	struct fake *f = fake_setup("tcp://127.0.0.1:1001", "tcp://127.0.0.1:1002");
	struct room *r = new_room(f, 10); /* 10 % 2: the first attempt goes to servers[0] */
	ASSERT_EQ(room_state(r), ROOM_IDLE);
	f->connect_rc = -EINVAL;
	room_start(r);
	ASSERT_EQ(room_state(r), ROOM_BACKOFF);
	ASSERT_EQ(f->began, 0);
	f->connect_rc = 0;
	run_backoff(f);
	ASSERT_EQ(f->connects, 2);
	ASSERT_EQ(room_state(r), ROOM_CONNECTING);
	ASSERT_EQ(f->n->port, 1002); /* the next server */
	ASSERT_EQ(f->n->start, 1);   /* and the next address of its host */
	ASSERT_EQ(room_stats(r)->reconnects, 1);
	ASSERT_EQ(finish_room(f, r), 1);
	ASSERT_EQ(f->began, 0);
	ASSERT_EQ(f->ended, 0);
	ASSERT_EQ(fake_teardown(f), 0);
}

static void test_connect_error_backs_off(void)
{
	struct fake *f = fake_setup("tcp://127.0.0.1:1001", NULL);
	struct room *r = new_room(f, 1);
	room_start(r);
	ASSERT_EQ(room_state(r), ROOM_CONNECTING);
	srv_error(UV_ECONNREFUSED, "connect");
	ASSERT_EQ(room_state(r), ROOM_CLOSING);
	ASSERT(f->n->closing);
	net_closed();
	ASSERT_EQ(room_state(r), ROOM_BACKOFF);
	ASSERT_EQ(f->began, 0); /* no session for an attempt that never connected */
	ASSERT_EQ(f->ended, 0);
	run_backoff(f);
	ASSERT_EQ(room_state(r), ROOM_CONNECTING);
	ASSERT_EQ(finish_room(f, r), 1);
	ASSERT_EQ(fake_teardown(f), 0);
}

static void test_connect_stalled(void)
{
	struct fake *f = fake_setup("tcp://127.0.0.1:1001", NULL);
	struct room *r = new_room(f, 1);
	room_start(r);
	room_tick(r, f->now + 30000);
	ASSERT_EQ(room_state(r), ROOM_CONNECTING); /* the transport times addresses out */
	room_tick(r, f->now + 60001);
	ASSERT_EQ(room_state(r), ROOM_CLOSING);
	net_closed();
	ASSERT_EQ(room_state(r), ROOM_BACKOFF);
	ASSERT_EQ(finish_room(f, r), 1);
	ASSERT_EQ(fake_teardown(f), 0);
}

static void test_join_and_records(void)
{
	struct fake *f = fake_setup("tcp://127.0.0.1:1001", NULL);
	struct room *r = new_room(f, 9001);
	room_start(r);
	srv_connected();
	ASSERT_EQ(f->began, 1);
	ASSERT_EQ(room_state(r), ROOM_JOINING);
	ASSERT(written_has("HELLO;"));
	srv_send("J");
	ASSERT_EQ(room_state(r), ROOM_JOINING); /* half a packet is not a join */
	srv_send(";R;F;R");
	ASSERT_EQ(room_state(r), ROOM_LIVE);
	ASSERT_EQ(f->joined, 1);
	ASSERT_EQ(f->joined_sid, 7);
	ASSERT(written_has("JOIN;"));
	ASSERT_EQ(f->records, 1);
	srv_send(";");
	ASSERT_EQ(f->records, 2);
	ASSERT_EQ(f->last_rec_session, 7);
	ASSERT_EQ(f->last_rec_room, 9001);
	ASSERT_EQ(room_stats(r)->received, 2);
	ASSERT_EQ(room_stats(r)->stored, 2);
	ASSERT_EQ(room_stats(r)->foreign, 1);
	ASSERT_EQ(room_stats(r)->last_msg_ms, f->wall);
	/* The store refuses one: counted, not stored. */
	f->record_rc = -ENOBUFS;
	srv_send("R;");
	ASSERT_EQ(room_stats(r)->received, 3);
	ASSERT_EQ(room_stats(r)->stored, 2);
	ASSERT_EQ(room_stats(r)->not_stored, 1);
	ASSERT_EQ(finish_room(f, r), 1);
	ASSERT_EQ(f->ended, 1);
	ASSERT_STR_EQ(f->ended_reason, "test over");
	ASSERT_EQ(fake_teardown(f), 0);
}

static void test_no_session_id(void)
{
	struct fake *f = fake_setup("tcp://127.0.0.1:1001", NULL);
	f->next_sid = -ENOMEM; /* the store could not queue the session */
	struct room *r = live_room(f);
	ASSERT_EQ(room_state(r), ROOM_LIVE);
	srv_send("R;");
	ASSERT_EQ(f->records, 1);
	ASSERT_EQ(f->last_rec_session, 0);
	ASSERT_EQ(f->joined_sid, 0);
	ASSERT_EQ(finish_room(f, r), 1);
	ASSERT_EQ(f->ended, 1);
	ASSERT_EQ(f->ended_sid, 0);
	ASSERT_EQ(fake_teardown(f), 0);
}

static void test_heartbeat_due(void)
{
	struct fake *f = fake_setup("tcp://127.0.0.1:1001", NULL);
	struct room *r = live_room(f);
	buf_clear(&f->n->written);
	room_tick(r, f->now + HB - 1);
	ASSERT_EQ(f->n->written.len, 0);
	srv_send("P;"); /* the echo keeps it alive */
	f->now += HB;
	room_tick(r, f->now);
	ASSERT(written_has("HB;"));
	buf_clear(&f->n->written);
	room_tick(r, f->now + 1);
	ASSERT_EQ(f->n->written.len, 0); /* not again before the next interval */
	/* Heartbeats change on reload: rooms see the env's value. */
	f->env.heartbeat_ms = 2 * HB;
	room_tick(r, f->now + HB);
	ASSERT(written_has("HB;"));
	ASSERT_EQ(room_state(r), ROOM_LIVE);
	ASSERT_EQ(finish_room(f, r), 1);
	ASSERT_EQ(fake_teardown(f), 0);
}

/* Bytes that never complete a packet prove nothing: the room times out. */
static void test_silent_server(void)
{
	struct fake *f = fake_setup("tcp://127.0.0.1:1001", NULL);
	struct room *r = live_room(f);
	uint64_t t0 = f->now;
	for (int i = 1; i <= 4; i++) {
		f->now = t0 + (uint64_t)i * HB / 2;
		srv_send("x"); /* a byte, never a packet */
		room_tick(r, f->now);
		ASSERT_EQ(room_state(r), ROOM_LIVE);
	}
	f->now = t0 + 2 * HB + 1;
	room_tick(r, f->now);
	ASSERT_EQ(room_state(r), ROOM_CLOSING);
	net_closed();
	ASSERT_EQ(f->ended, 1);
	ASSERT_STR_EQ(f->ended_reason, "heartbeat timeout");
	ASSERT_EQ(room_state(r), ROOM_BACKOFF);
	ASSERT_EQ(finish_room(f, r), 1);
	ASSERT_EQ(fake_teardown(f), 0);
}

static void test_paused_is_not_silent(void)
{
	struct fake *f = fake_setup("tcp://127.0.0.1:1001", NULL);
	struct room *r = new_room(f, 5);
	room_pause(r); /* paused before it joined: it still handshakes */
	room_start(r);
	srv_connected();
	ASSERT(!f->n->paused);
	srv_send("J;");
	ASSERT_EQ(room_state(r), ROOM_LIVE);
	ASSERT(f->n->paused); /* and pauses once live */
	f->now += 5 * HB;
	room_tick(r, f->now);
	ASSERT_EQ(room_state(r), ROOM_LIVE);
	room_resume(r);
	ASSERT(!f->n->paused);
	room_tick(r, f->now + 2 * HB);
	ASSERT_EQ(room_state(r), ROOM_LIVE); /* resuming restarts the silence clock */
	room_tick(r, f->now + 2 * HB + 1);
	ASSERT_EQ(room_state(r), ROOM_CLOSING);
	ASSERT_EQ(finish_room(f, r), 1);
	ASSERT_STR_EQ(f->ended_reason, "heartbeat timeout");
	ASSERT_EQ(fake_teardown(f), 0);
}

static void test_join_timeout(void)
{
	struct fake *f = fake_setup("tcp://127.0.0.1:1001", NULL);
	struct room *r = new_room(f, 5);
	room_start(r);
	srv_connected();
	room_tick(r, f->now + 2 * HB);
	ASSERT_EQ(room_state(r), ROOM_JOINING);
	room_tick(r, f->now + 2 * HB + 1);
	ASSERT_EQ(room_state(r), ROOM_CLOSING);
	net_closed();
	ASSERT_STR_EQ(f->ended_reason, "joining timeout");
	ASSERT_EQ(finish_room(f, r), 1);
	ASSERT_EQ(fake_teardown(f), 0);
}

static void test_join_fails_transport(void)
{
	struct fake *f = fake_setup("tcp://127.0.0.1:1001", NULL);
	struct room *r = new_room(f, 5);
	room_start(r);
	srv_connected();
	srv_error(UV_EOF, "read");
	ASSERT_EQ(room_state(r), ROOM_CLOSING);
	net_closed();
	ASSERT_STR_EQ(f->ended_reason, "server closed");
	ASSERT_EQ(room_state(r), ROOM_BACKOFF);
	ASSERT_EQ(finish_room(f, r), 1);
	ASSERT_EQ(fake_teardown(f), 0);
}

static void test_live_endings(void)
{
	static const struct {
		const char *send;
		int write_rc;
		int err;
		const char *reason;
	} cases[] = {
	    {"E;", 0, 0, "server error 51 (boom)"},
	    {"!;", 0, 0, "protocol: bad packet framing"},
	    {NULL, UV_ENOBUFS, 0, "write queue full"},
	    {NULL, UV_EPIPE, 0, "write: broken pipe"},
	    {NULL, 0, UV_ECONNRESET, "connection reset"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake *f = fake_setup("tcp://127.0.0.1:1001", NULL);
		struct room *r = live_room(f);
		ASSERT_EQ(room_state(r), ROOM_LIVE);
		if (cases[i].send)
			srv_send(cases[i].send);
		if (cases[i].err)
			srv_error(cases[i].err, "read");
		if (cases[i].write_rc) {
			f->write_rc = cases[i].write_rc;
			f->now += HB;
			room_tick(r, f->now); /* the heartbeat is the write that fails */
		}
		ASSERT_EQ(room_state(r), ROOM_CLOSING);
		net_closed();
		ASSERT_EQ(room_state(r), ROOM_BACKOFF);
		ASSERT_STR_EQ(f->ended_reason, cases[i].reason);
		if (cases[i].send && cases[i].send[0] == 'E')
			ASSERT_STR_EQ(f->last_rec_type, "error"); /* the error itself is kept */
		ASSERT_EQ(finish_room(f, r), 1);
		ASSERT_EQ(fake_teardown(f), 0);
	}
}

/* A 101 for the Upgrade request the room wrote. */
static void srv_upgrade(void)
{
	struct buf *w = &fk->n->written;
	buf_append(w, "", 1);
	const char *key = strstr((const char *)buf_head(w), "Sec-WebSocket-Key: ");
	char k[64] = {0}, accept[29];
	if (key)
		sscanf(key + 19, "%63[^\r]", k);
	ws_accept_for_key(k, accept);
	char resp[256];
	snprintf(resp, sizeof(resp),
		 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		 "Sec-WebSocket-Accept: %s\r\n\r\n",
		 accept);
	buf_clear(w);
	srv_send(resp);
}

static void srv_frame(const char *payload)
{
	uint8_t f[130] = {0x82, (uint8_t)strlen(payload)};
	memcpy(f + 2, payload, strlen(payload));
	srv_send_bytes(f, 2 + strlen(payload));
}

static void test_websocket_states(void)
{
	struct fake *f = fake_setup("ws://127.0.0.1:1001/", NULL);
	struct room *r = new_room(f, 5);
	room_start(r);
	srv_connected();
	ASSERT_EQ(room_state(r), ROOM_WS_UPGRADE);
	ASSERT(written_has("GET / HTTP/1.1\r\n"));
	srv_upgrade();
	ASSERT_EQ(room_state(r), ROOM_JOINING);
	ASSERT(f->n->written.len > 6); /* the login, framed and masked */
	srv_frame("J;R;");
	ASSERT_EQ(room_state(r), ROOM_LIVE);
	ASSERT_EQ(f->records, 1);
	/* Pings are answered but are not liveness. */
	f->now += HB;
	uint8_t ping[2] = {0x89, 0};
	srv_send_bytes(ping, 2);
	f->now += HB + 1;
	room_tick(r, f->now);
	ASSERT_EQ(room_state(r), ROOM_CLOSING);
	net_closed();
	ASSERT_STR_EQ(f->ended_reason, "heartbeat timeout");

	/* Refused upgrade, and an upgrade that never comes. */
	run_backoff(f);
	srv_connected();
	srv_send("HTTP/1.1 403 Forbidden\r\n\r\n");
	ASSERT_EQ(room_state(r), ROOM_CLOSING);
	net_closed();
	ASSERT(strstr(f->ended_reason, "websocket: ") == f->ended_reason);
	ASSERT(strstr(f->ended_reason, "403"));
	run_backoff(f);
	srv_connected();
	room_tick(r, f->now + 2 * HB + 1);
	ASSERT_EQ(room_state(r), ROOM_CLOSING);
	net_closed();
	ASSERT_STR_EQ(f->ended_reason, "upgrading timeout");
	/* The server closes the websocket. */
	run_backoff(f);
	srv_connected();
	srv_upgrade();
	uint8_t close[4] = {0x88, 2, 0x03, 0xe9}; /* 1001 going away */
	srv_send_bytes(close, 4);
	ASSERT_EQ(room_state(r), ROOM_CLOSING);
	net_closed();
	ASSERT_STR_EQ(f->ended_reason, "server closed (websocket close 1001)");
	ASSERT_EQ(finish_room(f, r), 1);
	ASSERT_EQ(fake_teardown(f), 0);
}

static void test_tls_states(void)
{
	struct fake *f = fake_setup("wss://127.0.0.1:1001/", NULL);
	char err[256];
	struct tls_config *cfg = NULL;
	ASSERT_EQ(tls_config_create(NULL, true, &cfg, err, sizeof(err)), 0);
	f->env.tls = cfg;
	f->env.insecure = true;
	struct room *r = new_room(f, 5);
	room_start(r);
	srv_connected();
	ASSERT_EQ(room_state(r), ROOM_TLS_HANDSHAKE);
	/* The ClientHello went out as one write: a handshake record. */
	ASSERT(f->n->written.len > 5 && buf_head(&f->n->written)[0] == 0x16);
	srv_send("HTTP/1.1 400 Bad Request\r\n\r\n"); /* not TLS */
	ASSERT_EQ(room_state(r), ROOM_CLOSING);
	net_closed();
	ASSERT(strncmp(f->ended_reason, "tls: ", 5) == 0);
	/* A handshake that stalls. */
	run_backoff(f);
	srv_connected();
	room_tick(r, f->now + 2 * HB + 1);
	ASSERT_EQ(room_state(r), ROOM_CLOSING);
	net_closed();
	ASSERT_STR_EQ(f->ended_reason, "tls timeout");
	ASSERT_EQ(finish_room(f, r), 1);
	ASSERT_EQ(fake_teardown(f), 0);
	tls_config_destroy(cfg);
}

/* room_stop in every state, and what follows. */
static void test_stop_in_each_state(void)
{
	for (int st = ROOM_IDLE; st <= ROOM_CLOSING; st++) {
		if (st == ROOM_PREPARING)
			continue; /* a platform with a prepare step: test_prepare_then_connect */
		struct fake *f = fake_setup(st == ROOM_TLS_HANDSHAKE ? "wss://127.0.0.1:1/"
					    : st == ROOM_WS_UPGRADE  ? "ws://127.0.0.1:1/"
								     : "tcp://127.0.0.1:1",
					    NULL);
		struct tls_config *cfg = NULL;
		char err[256];
		if (st == ROOM_TLS_HANDSHAKE) {
			tls_config_create(NULL, true, &cfg, err, sizeof(err));
			f->env.tls = cfg;
		}
		struct room *r = new_room(f, 5);
		if (st != ROOM_IDLE)
			room_start(r);
		if (st >= ROOM_TLS_HANDSHAKE && st <= ROOM_LIVE)
			srv_connected();
		if (st == ROOM_LIVE)
			srv_send("J;");
		if (st == ROOM_BACKOFF || st == ROOM_CLOSING)
			srv_error(UV_ECONNREFUSED, "connect");
		if (st == ROOM_BACKOFF)
			net_closed();
		ASSERT_EQ(room_state(r), (enum room_state)st);
		room_stop(r, "shutdown");
		ASSERT(room_is_stopping(r));
		switch (st) {
		case ROOM_IDLE:
		case ROOM_BACKOFF:
			ASSERT(!f->n);
			break;
		case ROOM_JOINING:
		case ROOM_LIVE:
			/* Logout first, then a graceful shutdown that lets it drain. */
			ASSERT(written_has("BYE;"));
			ASSERT(f->n->shut && !f->n->closing);
			room_abort(r); /* a second SIGTERM */
			ASSERT(f->n->closing);
			break;
		default:
			ASSERT(f->n->closing);
			break;
		}
		room_stop(r, "again"); /* ignored */
		ASSERT_EQ(f->gone, 0);
		if (f->n)
			net_closed();
		uv_run(&f->loop, UV_RUN_DEFAULT);
		ASSERT_EQ(f->gone, 1);
		bool had_session = st >= ROOM_TLS_HANDSHAKE && st <= ROOM_LIVE;
		ASSERT_EQ(f->ended, had_session ? 1 : 0);
		if (had_session)
			ASSERT_STR_EQ(f->ended_reason, "shutdown");
		ASSERT_EQ(f->connects, st == ROOM_IDLE ? 0 : 1); /* no reconnect after a stop */
		ASSERT_EQ(fake_teardown(f), 0);
		tls_config_destroy(cfg);
	}
}

static struct room *new_prep_room(struct fake *f, int64_t id)
{
	struct room *r = NULL;
	f->env.pctx = the_ctx;
	if (room_create(&f->env, &prep_platform, id, &events, NULL, &r) < 0)
		return NULL;
	return r;
}

static void test_prepare_then_connect(void)
{
	struct fake *f = fake_setup("tcp://127.0.0.1:1001", NULL);
	struct room *r = new_prep_room(f, 76);
	ASSERT_STR_EQ(room_name(r), "prep:76");
	room_start(r);
	ASSERT_EQ(room_state(r), ROOM_PREPARING);
	ASSERT_EQ(f->prepares, 1);
	ASSERT_EQ(f->prepare_id, 76); /* the id as configured */
	ASSERT_EQ(f->connects, 0);
	prep_answer(14073662, "tcp://127.0.0.1:2001", 0);
	ASSERT_EQ(f->resolved, 1);
	ASSERT_EQ(f->resolved_id, 14073662);
	ASSERT_EQ(f->resolved_short, 76);
	ASSERT_EQ(room_state(r), ROOM_CONNECTING);
	ASSERT_EQ(f->n->port, 2001); /* the prepared server, not the env's */
	srv_connected();
	srv_send("J;R;");
	ASSERT_EQ(f->last_rec_room, 14073662); /* the session records under the real id */
	/* A lost connection reuses the fresh result: no second prepare. */
	srv_error(UV_EOF, "read");
	net_closed();
	run_backoff(f);
	ASSERT_EQ(f->prepares, 1);
	ASSERT_EQ(f->n->port, 2001);
	/* A server error (a refused token) asks for a new one. */
	srv_connected();
	srv_send("E;");
	net_closed();
	run_backoff(f);
	ASSERT_EQ(room_state(r), ROOM_PREPARING);
	ASSERT_EQ(f->prepares, 2);
	ASSERT_EQ(finish_room(f, r), 1);
	ASSERT_EQ(f->cancels, 1); /* stopped while preparing */
	ASSERT_EQ(fake_teardown(f), 0);
}

static void test_prepare_failure_and_fallback(void)
{
	struct fake *f = fake_setup("tcp://127.0.0.1:1001", NULL);
	struct room *r = new_prep_room(f, 5);
	room_start(r);
	platform_prepared_cb cb = f->prep_cb;
	f->prep_cb = NULL;
	cb(f->prep_ud, -ENOENT, NULL, "no such room");
	ASSERT_EQ(room_state(r), ROOM_BACKOFF);
	ASSERT_EQ(f->connects, 0);
	run_backoff(f);
	ASSERT_EQ(room_state(r), ROOM_PREPARING);
	ASSERT_EQ(f->prepares, 2);
	/* Degraded: the env's servers, and a refresh after 30 s of live session. */
	prep_answer(5, NULL, 30000);
	ASSERT_EQ(f->n->port, 1001);
	srv_connected();
	srv_send("J;");
	ASSERT_EQ(room_state(r), ROOM_LIVE);
	f->now += 20000;
	room_tick(r, f->now);
	ASSERT_EQ(room_state(r), ROOM_LIVE);
	srv_send("P;");
	f->now += 11000;
	room_tick(r, f->now);
	ASSERT_EQ(room_state(r), ROOM_CLOSING);
	net_closed();
	ASSERT(strstr(f->ended_reason, "refresh") != NULL);
	run_backoff(f);
	ASSERT_EQ(f->prepares, 3); /* a degraded result is never reused */
	ASSERT_EQ(finish_room(f, r), 1);
	ASSERT_EQ(fake_teardown(f), 0);
}

int main(void)
{
	log_init(LOG_LEVEL_ERR); /* the rooms warn about every failure we script */
	RUN(test_connect_refused_sync_then_rotation);
	RUN(test_connect_error_backs_off);
	RUN(test_connect_stalled);
	RUN(test_join_and_records);
	RUN(test_no_session_id);
	RUN(test_heartbeat_due);
	RUN(test_silent_server);
	RUN(test_paused_is_not_silent);
	RUN(test_join_timeout);
	RUN(test_join_fails_transport);
	RUN(test_live_endings);
	RUN(test_websocket_states);
	RUN(test_tls_states);
	RUN(test_stop_in_each_state);
	RUN(test_prepare_then_connect);
	RUN(test_prepare_failure_and_fallback);
	TEST_DONE();
}
