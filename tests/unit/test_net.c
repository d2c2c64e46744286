/*
 * Loop tests for net.c on loopback: a plain libuv echo server in the test, our client through
 * c-ares resolution ("localhost" from the hosts file), IP literals, a refused port, writes
 * larger than a socket buffer, and close before connect. Every test ends with
 * uv_loop_close() == 0, so a leaked handle fails it.
 */
#include <uv.h>

#include "net.h"
#include "test.h"

struct echo_server {
	uv_tcp_t tcp;
	int port;
	int accepted;
	uint64_t echoed;
};

struct echo_conn {
	uv_tcp_t tcp;
	struct echo_server *srv;
	char buf[65536];
};

static void on_echo_closed(uv_handle_t *h)
{
	free(h->data);
}

static void echo_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
	struct echo_conn *c = h->data;
	b->base = c->buf;
	b->len = sizeof(c->buf);
}

static void echo_written(uv_write_t *w, int status)
{
	free(w);
}

static void echo_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct echo_conn *c = s->data;
	if (n < 0) {
		uv_close((uv_handle_t *)s, on_echo_closed);
		return;
	}
	if (n == 0)
		return;
	c->srv->echoed += (uint64_t)n;
	uv_write_t *w = malloc(sizeof(*w) + (size_t)n);
	char *copy = (char *)(w + 1);
	memcpy(copy, b->base, (size_t)n);
	uv_buf_t out = uv_buf_init(copy, (unsigned)n);
	uv_write(w, s, &out, 1, echo_written);
}

static void on_conn(uv_stream_t *server, int status)
{
	struct echo_server *srv = server->data;
	struct echo_conn *c = calloc(1, sizeof(*c));
	c->srv = srv;
	uv_tcp_init(server->loop, &c->tcp);
	c->tcp.data = c;
	uv_accept(server, (uv_stream_t *)&c->tcp);
	srv->accepted++;
	uv_read_start((uv_stream_t *)&c->tcp, echo_alloc, echo_read);
}

static void echo_start(uv_loop_t *loop, struct echo_server *srv)
{
	memset(srv, 0, sizeof(*srv));
	uv_tcp_init(loop, &srv->tcp);
	srv->tcp.data = srv;
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);
	uv_tcp_bind(&srv->tcp, (struct sockaddr *)&a, 0);
	uv_listen((uv_stream_t *)&srv->tcp, 16, on_conn);
	struct sockaddr_in got;
	int len = sizeof(got);
	uv_tcp_getsockname(&srv->tcp, (struct sockaddr *)&got, &len);
	srv->port = ntohs(got.sin_port);
}

struct client {
	struct net_ctx *ctx;
	struct echo_server *srv;
	struct net *n;
	size_t to_send;
	size_t received;
	int connected, errors, closed, last_err;
	char what[32];
	uint8_t *payload;
};

static void c_connected(struct net *n, void *ud)
{
	struct client *c = ud;
	c->connected++;
	net_write(n, c->payload, c->to_send);
}

static void c_read(struct net *n, const uint8_t *d, size_t len, void *ud)
{
	struct client *c = ud;
	for (size_t i = 0; i < len; i++)
		if (d[i] != c->payload[c->received + i])
			c->last_err = -9999;
	c->received += len;
	if (c->received == c->to_send)
		net_close(n);
}

static void c_error(struct net *n, int err, const char *what, void *ud)
{
	struct client *c = ud;
	c->errors++;
	c->last_err = err;
	snprintf(c->what, sizeof(c->what), "%s", what);
	net_close(n);
}

static void c_closed(struct net *n, void *ud)
{
	struct client *c = ud;
	c->closed++;
	net_ctx_close(c->ctx);
	if (c->srv)
		uv_close((uv_handle_t *)&c->srv->tcp, NULL);
}

static const struct net_callbacks cbs = {c_connected, c_read, c_error, c_closed};

static void run_echo(const char *host, size_t payload_len)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct echo_server srv;
	echo_start(&loop, &srv);
	struct client c = {.srv = &srv, .to_send = payload_len};
	c.payload = malloc(payload_len);
	for (size_t i = 0; i < payload_len; i++)
		c.payload[i] = (uint8_t)(i * 7 + 3);
	ASSERT_EQ(net_ctx_create(&loop, &c.ctx), 0);
	ASSERT_EQ(net_connect(c.ctx, host, (uint16_t)srv.port, 5000, &cbs, &c, &c.n), 0);
	/* Nothing is delivered from inside net_connect. */
	ASSERT_EQ(c.connected + c.errors, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	free(c.payload);
	ASSERT_EQ(c.connected, 1);
	ASSERT_EQ(c.errors, 0);
	ASSERT_EQ(c.last_err, 0);
	ASSERT_EQ(c.received, payload_len);
	ASSERT_EQ(c.closed, 1);
	ASSERT_EQ(uv_loop_close(&loop), 0);
}

static void echo_ipv4_literal(void)
{
	run_echo("127.0.0.1", 1000);
}

static void echo_localhost_via_cares(void)
{
	/* localhost may resolve to ::1 first; the echo server is IPv4 only, so this also proves
	 * that a refused address falls through to the next one. */
	run_echo("localhost", 1000);
}

static void echo_large_write_queued(void)
{
	run_echo("127.0.0.1", 8 << 20);
}

static void refused_port(void)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	/* Bind a port and close it so nothing listens there. */
	uv_tcp_t t;
	uv_tcp_init(&loop, &t);
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);
	uv_tcp_bind(&t, (struct sockaddr *)&a, 0);
	struct sockaddr_in got;
	int len = sizeof(got);
	uv_tcp_getsockname(&t, (struct sockaddr *)&got, &len);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	struct client c = {.to_send = 1};
	uint8_t one = 1;
	c.payload = &one;
	ASSERT_EQ(net_ctx_create(&loop, &c.ctx), 0);
	ASSERT_EQ(net_connect(c.ctx, "127.0.0.1", ntohs(got.sin_port), 5000, &cbs, &c, &c.n), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	ASSERT_EQ(c.connected, 0);
	ASSERT_EQ(c.errors, 1);
	ASSERT_EQ(c.last_err, UV_ECONNREFUSED);
	ASSERT_STR_EQ(c.what, "connect");
	ASSERT_EQ(c.closed, 1);
	ASSERT_EQ(uv_loop_close(&loop), 0);
}

static void unknown_host_fails_resolve(void)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct client c = {.to_send = 1};
	uint8_t one = 1;
	c.payload = &one;
	ASSERT_EQ(net_ctx_create(&loop, &c.ctx), 0);
	/* ".invalid" never resolves (RFC 6761); with no network the lookup fails or times out,
	 * both reported as a "resolve" error within the attempt's timeout. */
	ASSERT_EQ(net_connect(c.ctx, "no-such-host.invalid", 80, 3000, &cbs, &c, &c.n), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	ASSERT_EQ(c.errors, 1);
	ASSERT(strcmp(c.what, "resolve") == 0);
	ASSERT_EQ(c.closed, 1);
	ASSERT_EQ(uv_loop_close(&loop), 0);
}

static void close_before_connect(void)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct echo_server srv;
	echo_start(&loop, &srv);
	struct client c = {.srv = &srv, .to_send = 1};
	uint8_t one = 1;
	c.payload = &one;
	ASSERT_EQ(net_ctx_create(&loop, &c.ctx), 0);
	ASSERT_EQ(net_connect(c.ctx, "localhost", (uint16_t)srv.port, 5000, &cbs, &c, &c.n), 0);
	net_close(c.n);
	net_close(c.n); /* idempotent */
	uv_run(&loop, UV_RUN_DEFAULT);
	ASSERT_EQ(c.connected, 0);
	ASSERT_EQ(c.errors, 0);
	ASSERT_EQ(c.closed, 1);
	ASSERT_EQ(uv_loop_close(&loop), 0);
}

/*
 * net_ctx_close while a DNS query is in flight: c-ares has a socket open, so a uv_poll_t is
 * still open when the ctx closes. Close callbacks run newest first, so the poll's runs after
 * the two timers'; whichever runs last must free the ctx (ASan's leak check and valgrind see
 * a leak otherwise; uv_loop_close sees a handle left open).
 */
static void ctx_close_with_query_in_flight(void)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct client c = {.to_send = 1};
	uint8_t one = 1;
	c.payload = &one;
	ASSERT_EQ(net_ctx_create(&loop, &c.ctx), 0);
	/* Not in the hosts file: c-ares asks the configured name server over UDP at once. */
	ASSERT_EQ(net_connect(c.ctx, "no-such-host.invalid", 80, 3000, &cbs, &c, &c.n), 0);
	net_close(c.n); /* c_closed closes the ctx from the loop, the query still pending */
	uv_run(&loop, UV_RUN_DEFAULT);
	ASSERT_EQ(c.errors, 0);
	ASSERT_EQ(c.closed, 1);
	ASSERT_EQ(uv_loop_close(&loop), 0);
}

int main(void)
{
	RUN(echo_ipv4_literal);
	RUN(echo_localhost_via_cares);
	RUN(echo_large_write_queued);
	RUN(refused_port);
	RUN(unknown_host_fails_resolve);
	RUN(close_before_connect);
	RUN(ctx_close_with_query_in_flight);
	TEST_DONE();
}
