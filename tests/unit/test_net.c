/*
 * Loop tests for net.c on loopback: a plain libuv echo server in the test, our client through
 * c-ares resolution ("localhost" from the hosts file, or a hosts file of our own through
 * CARES_HOSTS), IP literals, a refused port, a blackholed address, writes larger than a socket
 * buffer, a peer that never reads, close before connect, and a ctx closed mid-query. Every test
 * ends with uv_loop_close() == 0, so a leaked handle fails it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "net.h"
#include "test.h"

/* A test that cannot run here says why and is reported to meson as a TAP skip. */
static char skip_reason[160];
#define SKIP(...)                                                                                  \
	do {                                                                                       \
		snprintf(skip_reason, sizeof(skip_reason), __VA_ARGS__);                           \
		return;                                                                            \
	} while (0)
#define RUN_OR_SKIP(fn)                                                                            \
	do {                                                                                       \
		skip_reason[0] = '\0';                                                             \
		test_cur_failed = 0;                                                               \
		fn();                                                                              \
		test_count++;                                                                      \
		if (test_cur_failed)                                                               \
			test_failed_total++;                                                       \
		if (skip_reason[0] && !test_cur_failed)                                            \
			printf("ok %d - %s # SKIP %s\n", test_count, #fn, skip_reason);            \
		else                                                                               \
			printf("%s %d - %s\n", test_cur_failed ? "not ok" : "ok", test_count,      \
			       #fn);                                                               \
		fflush(stdout);                                                                    \
	} while (0)

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

static const struct net_callbacks cbs = {c_connected, c_read, c_error, c_closed, NULL};

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
	ASSERT_EQ(net_connect(c.ctx, host, (uint16_t)srv.port, 5000, 0, &cbs, &c, &c.n), 0);
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
	ASSERT_EQ(net_connect(c.ctx, "127.0.0.1", ntohs(got.sin_port), 5000, 0, &cbs, &c, &c.n), 0);
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
	ASSERT_EQ(net_connect(c.ctx, "no-such-host.invalid", 80, 3000, 0, &cbs, &c, &c.n), 0);
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
	ASSERT_EQ(net_connect(c.ctx, "localhost", (uint16_t)srv.port, 5000, 0, &cbs, &c, &c.n), 0);
	net_close(c.n);
	net_close(c.n); /* idempotent */
	uv_run(&loop, UV_RUN_DEFAULT);
	ASSERT_EQ(c.connected, 0);
	ASSERT_EQ(c.errors, 0);
	ASSERT_EQ(c.closed, 1);
	ASSERT_EQ(uv_loop_close(&loop), 0);
}

/*
 * A blackhole on loopback, without root: a listening socket with backlog 0 whose queue is
 * already full (one connection made, never accepted). The kernel then drops further SYNs,
 * so a connect to it neither succeeds nor is refused: it hangs, like a dead address.
 */
struct blackhole {
	int lfd, filler;
};

static int blackhole_open(struct blackhole *b, const char *ip, int port)
{
	b->lfd = b->filler = -1;
	struct sockaddr_in a;
	uv_ip4_addr(ip, port, &a);
	b->lfd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(b->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(b->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(b->lfd, 0) < 0)
		return -errno;
	b->filler = socket(AF_INET, SOCK_STREAM, 0);
	fcntl(b->filler, F_SETFL, O_NONBLOCK);
	if (connect(b->filler, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS)
		return -errno;
	struct pollfd p = {.fd = b->filler, .events = POLLOUT};
	if (poll(&p, 1, 2000) != 1)
		return -ETIMEDOUT;
	return 0;
}

static void blackhole_close(struct blackhole *b)
{
	if (b->filler >= 0)
		close(b->filler);
	if (b->lfd >= 0)
		close(b->lfd);
}

/* A hosts file for c-ares (CARES_HOSTS) naming two addresses for one host, in this order. */
static char hosts_path[64];

static int two_address_host(const char *first, const char *second)
{
	snprintf(hosts_path, sizeof(hosts_path), "/tmp/test_net_hosts.XXXXXX");
	int fd = mkstemp(hosts_path);
	if (fd < 0)
		return -errno;
	char text[256];
	int len = snprintf(text, sizeof(text), "%s twoaddr.test\n%s twoaddr.test\n", first, second);
	if (write(fd, text, (size_t)len) != len) {
		close(fd);
		return -EIO;
	}
	close(fd);
	setenv("CARES_HOSTS", hosts_path, 1);
	return 0;
}

static void two_address_host_done(void)
{
	unsetenv("CARES_HOSTS");
	unlink(hosts_path);
}

static void c_connected_quiet(struct net *n, void *ud)
{
	struct client *c = ud;
	c->connected++;
	net_close(n);
}

static const struct net_callbacks cbs_connect_only = {c_connected_quiet, c_read, c_error, c_closed, NULL};

/*
 * "twoaddr.test" is 127.0.0.2 (a blackhole) then 127.0.0.1 (a server on the same port).
 * Started at address 0, the attempt waits one per-address timeout on the blackhole, then
 * connects through the second address; started at 1, it connects at once. Before each address
 * had its own timeout, the first case failed with a connect timeout and never tried the second.
 */
static void dead_address_costs_one_timeout(unsigned start, int blackhole_only)
{
	const uint64_t timeout = 400;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct echo_server srv;
	echo_start(&loop, &srv);
	struct blackhole bh;
	int rc = blackhole_open(&bh, "127.0.0.2", srv.port);
	if (rc < 0) {
		blackhole_close(&bh);
		uv_close((uv_handle_t *)&srv.tcp, NULL);
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		SKIP("no blackhole on 127.0.0.2: %s", strerror(-rc));
	}
	ASSERT_EQ(two_address_host("127.0.0.2", blackhole_only ? "127.0.0.2" : "127.0.0.1"), 0);
	struct client c = {.srv = &srv};
	ASSERT_EQ(net_ctx_create(&loop, &c.ctx), 0);
	uint64_t t0 = uv_hrtime();
	ASSERT_EQ(net_connect(c.ctx, "twoaddr.test", (uint16_t)srv.port, timeout, start,
			      &cbs_connect_only, &c, &c.n),
		  0);
	uv_run(&loop, UV_RUN_DEFAULT);
	uint64_t ms = (uv_hrtime() - t0) / 1000000;
	two_address_host_done();
	blackhole_close(&bh);
	ASSERT_EQ(c.closed, 1);
	ASSERT_EQ(uv_loop_close(&loop), 0);
	printf("# start %u%s: %" PRIu64 " ms\n", start, blackhole_only ? ", both dead" : "", ms);
	if (blackhole_only) {
		/* Each address had its own timeout; the error is the last one's. */
		ASSERT_EQ(c.connected, 0);
		ASSERT_EQ(c.last_err, UV_ETIMEDOUT);
		ASSERT_STR_EQ(c.what, "connect");
		ASSERT_GE(ms, 2 * timeout);
		return;
	}
	ASSERT_EQ(c.errors, 0);
	ASSERT_EQ(c.connected, 1);
	ASSERT_EQ(srv.accepted, 1);
	if (start % 2 == 0)
		ASSERT_GE(ms, timeout); /* waited on the blackhole first */
	else
		ASSERT_LT(ms, timeout); /* began at the live address */
}

static void dead_first_address_then_second(void)
{
	dead_address_costs_one_timeout(0, 0);
}

static void start_picks_the_first_address(void)
{
	dead_address_costs_one_timeout(1, 0);
	if (!test_cur_failed && !skip_reason[0])
		dead_address_costs_one_timeout(3, 0); /* taken modulo the number of addresses */
}

static void every_address_dead(void)
{
	dead_address_costs_one_timeout(0, 1);
}

/*
 * A peer that never reads: the socket's buffers fill, then the queue, and past
 * NET_WRITE_QUEUE_MAX net_write refuses with UV_ENOBUFS instead of queueing forever.
 */
struct sink {
	uv_tcp_t tcp;
	uv_tcp_t conn;
	int accepted;
};

static void sink_on_conn(uv_stream_t *server, int status)
{
	struct sink *k = server->data;
	uv_tcp_init(server->loop, &k->conn);
	uv_accept(server, (uv_stream_t *)&k->conn);
	k->accepted++; /* and never read */
}

struct flooder {
	struct client c;
	struct sink *sink;
	int rc;
	size_t written;
};

static void f_connected(struct net *n, void *ud)
{
	struct flooder *f = ud;
	static uint8_t chunk[16384];
	f->c.connected++;
	while (f->written < ((size_t)1 << 30)) {
		f->rc = net_write(n, chunk, sizeof(chunk));
		if (f->rc < 0)
			break;
		f->written += sizeof(chunk);
	}
	net_close(n);
}

static void f_closed(struct net *n, void *ud)
{
	struct flooder *f = ud;
	f->c.closed++;
	net_ctx_close(f->c.ctx);
	uv_close((uv_handle_t *)&f->sink->tcp, NULL);
	if (f->sink->accepted)
		uv_close((uv_handle_t *)&f->sink->conn, NULL);
}

static void write_queue_bounded(void)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct sink k = {0};
	uv_tcp_init(&loop, &k.tcp);
	k.tcp.data = &k;
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);
	uv_tcp_bind(&k.tcp, (struct sockaddr *)&a, 0);
	uv_listen((uv_stream_t *)&k.tcp, 4, sink_on_conn);
	struct sockaddr_in got;
	int len = sizeof(got);
	uv_tcp_getsockname(&k.tcp, (struct sockaddr *)&got, &len);
	struct flooder f = {.sink = &k};
	static const struct net_callbacks fcbs = {f_connected, c_read, c_error, f_closed, NULL};
	ASSERT_EQ(net_ctx_create(&loop, &f.c.ctx), 0);
	ASSERT_EQ(net_connect(f.c.ctx, "127.0.0.1", ntohs(got.sin_port), 5000, 0, &fcbs, &f,
			      &f.c.n),
		  0);
	uv_run(&loop, UV_RUN_DEFAULT);
	printf("# refused after %zu bytes (socket buffers plus the queue)\n", f.written);
	ASSERT_EQ(f.c.connected, 1);
	ASSERT_EQ(f.rc, UV_ENOBUFS);
	ASSERT_EQ(f.c.errors, 0); /* refusing is not an error callback: the caller decides */
	ASSERT_EQ(f.c.closed, 1);
	ASSERT_LT(f.written, (size_t)1 << 30);
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
	ASSERT_EQ(net_connect(c.ctx, "no-such-host.invalid", 80, 3000, 0, &cbs, &c, &c.n), 0);
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
	RUN_OR_SKIP(dead_first_address_then_second);
	RUN_OR_SKIP(start_picks_the_first_address);
	RUN_OR_SKIP(every_address_dead);
	RUN(write_queue_bounded);
	TEST_DONE();
}
