/*
 * pg.c without a PostgreSQL server: the COPY text writer on byte buffers (escapes, UTF-8
 * repair, NUL, every byte value, checked by a naive decoder written here), connection strings
 * refused without echoing a password, and the connection on the loop against what is not a
 * server: a refused port (on_down, then a retry after a backoff), a listener that never
 * answers (the connect timeout), a name that does not resolve (c-ares, through CARES_HOSTS).
 * The real server is exercised by the integration tests (tests/integration/test_pg_*.py).
 * Every loop test ends with uv_loop_close() == 0.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "buf.h"
#include "net.h"
#include "pg.h"
#include "test.h"
#include "text.h"

/* ---- COPY text ---- */

static char *copy_of(const char *p, size_t n, bool last)
{
	struct buf b;
	buf_init(&b);
	if (pg_copy_str(&b, p, n, last) < 0 || buf_append(&b, "", 1) < 0) {
		buf_finish(&b);
		return NULL;
	}
	char *s = strdup((const char *)buf_head(&b));
	buf_finish(&b);
	return s;
}

static void copy_escapes(void)
{
	static const struct {
		const char *in;
		size_t n;
		const char *out;
	} v[] = {
	    {"plain", 5, "plain\t"},
	    {"a\tb\nc\rd\\e", 9, "a\\tb\\nc\\rd\\\\e\t"},
	    {"\\N", 2, "\\\\N\t"}, /* the text \N is not NULL */
	    {"", 0, "\t"},
	    {"\xe5\xbc\xb9\xe5\xb9\x95", 6, "\xe5\xbc\xb9\xe5\xb9\x95\t"}, /* 弹幕 */
	    {"\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80\t"},                 /* 😀 */
	    {"a\0b", 3, "a\xef\xbf\xbd" "b\t"},                          /* NUL */
	    {"\xff", 1, "\xef\xbf\xbd\t"},
	    {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\t"}, /* a lone surrogate */
	    {"\xe5\xbc", 2, "\xef\xbf\xbd\xef\xbf\xbd\t"},                 /* cut short */
	    {"x\x01y\x7f", 4, "x\x01y\x7f\t"}, /* other control bytes go as they are */
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char *s = copy_of(v[i].in, v[i].n, false);
		ASSERT(s);
		if (strcmp(s, v[i].out) != 0) {
			TEST_FAIL_("vector %zu: \"%s\" vs \"%s\"", i, s, v[i].out);
			free(s);
			return;
		}
		free(s);
	}
	char *last = copy_of("x", 1, true);
	ASSERT_STR_EQ(last, "x\n");
	free(last);
	struct buf b;
	buf_init(&b);
	ASSERT_EQ(pg_copy_null(&b, false), 0);
	ASSERT_EQ(pg_copy_str(&b, NULL, 0, false), 0);
	ASSERT_EQ(pg_copy_int(&b, -9007199254740993LL, false), 0);
	ASSERT_EQ(pg_copy_int(&b, 0, true), 0);
	ASSERT_EQ(b.len, strlen("\\N\t\\N\t-9007199254740993\t0\n"));
	ASSERT_MEM_EQ(buf_head(&b), "\\N\t\\N\t-9007199254740993\t0\n", b.len);
	buf_finish(&b);
}

/* What PostgreSQL's COPY text reader does with one field: \\ \t \n \r unescaped, a raw tab or
 * newline would end the field. Returns the decoded length, or -1 if the field is malformed. */
static long naive_decode(const char *f, size_t n, char *out)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		char c = f[i];
		if (c == '\t' || c == '\n' || c == '\0')
			return -1;
		if (c != '\\') {
			out[k++] = c;
			continue;
		}
		if (++i == n)
			return -1;
		switch (f[i]) {
		case '\\': out[k++] = '\\'; break;
		case 't': out[k++] = '\t'; break;
		case 'n': out[k++] = '\n'; break;
		case 'r': out[k++] = '\r'; break;
		default: return -1;
		}
	}
	return (long)k;
}

/* Random strings of every byte value: the field is one field (ends with its separator, no
 * raw separator inside), decodes to valid UTF-8 without NUL, and decodes to the input itself
 * whenever the input was valid UTF-8 without NUL. */
static void copy_random_bytes(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;
	char in[64], dec[256];
	for (int round = 0; round < 20000; round++) {
		size_t n = (size_t)(round % 40);
		for (size_t i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			/* Mostly ASCII and the special bytes, some high bytes. */
			unsigned v = (unsigned)(x >> 24) & 0xff;
			in[i] = (char)(round % 3 == 0 ? v : (v % 4 == 0 ? (unsigned)(unsigned char)"\\\t\n\r"[v / 4 % 4] : v));
		}
		struct buf b;
		buf_init(&b);
		ASSERT_EQ(pg_copy_str(&b, in, n, round % 2), 0);
		const char *f = (const char *)buf_head(&b);
		ASSERT(b.len >= 1);
		ASSERT_EQ(f[b.len - 1], round % 2 ? '\n' : '\t');
		long k = naive_decode(f, b.len - 1, dec);
		if (k < 0) {
			buf_finish(&b);
			TEST_FAIL_("round %d: not one well-formed field", round);
			return;
		}
		ASSERT_EQ(text_utf8_valid_prefix(dec, (size_t)k), (size_t)k);
		ASSERT(memchr(dec, 0, (size_t)k) == NULL);
		if (text_utf8_valid_prefix(in, n) == n && !memchr(in, 0, n)) {
			ASSERT_EQ(k, (long)n);
			ASSERT_MEM_EQ(dec, in, n);
		}
		buf_finish(&b);
	}
}

/* ---- connection strings ---- */

static const struct pg_callbacks no_cb = {0};

static void create_refuses(void)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct net_ctx *net;
	ASSERT_EQ(net_ctx_create(&loop, &net), 0);
	static const char *const bad[] = {
	    "postgresql://u:s3cret@h1,h2/db",  /* several hosts */
	    "host=a,b password=s3cret",
	    "postgresql://u:s3cret@host:99999/db",
	    "postgresql://u:s3cret@host/db?nosuchoption=1",
	    "this is not a connection string s3cret",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct pg *c = NULL;
		char err[256] = "";
		struct pg_options o = {.conninfo = bad[i]};
		int rc = pg_create(&loop, net, &o, &no_cb, NULL, &c, err, sizeof(err));
		if (rc != -EINVAL || c || strstr(err, "s3cret") || !err[0]) {
			TEST_FAIL_("%zu: rc %d err \"%s\"", i, rc, err);
			break;
		}
	}
	net_ctx_close(net);
	uv_run(&loop, UV_RUN_DEFAULT);
	ASSERT_EQ(uv_loop_close(&loop), 0);
}

/* ---- on the loop ---- */

struct probe {
	uv_loop_t *loop;
	struct pg *c;
	int ups, downs;
	char why[512];
	uint64_t down_at[4];
	uv_timer_t guard;
	bool timed_out;
};

static void p_up(struct pg *c, void *ud)
{
	((struct probe *)ud)->ups++;
}

static void p_down(struct pg *c, const char *why, void *ud)
{
	struct probe *p = ud;
	if (p->downs < 4)
		p->down_at[p->downs] = uv_now(p->loop);
	p->downs++;
	snprintf(p->why, sizeof(p->why), "%s", why);
	if (p->downs == 2) {
		pg_close(c);
		p->c = NULL;
		uv_close((uv_handle_t *)&p->guard, NULL);
	}
}

static const struct pg_callbacks probe_cb = {.on_up = p_up, .on_down = p_down};

static void on_guard(uv_timer_t *t)
{
	struct probe *p = t->data;
	p->timed_out = true;
	pg_close(p->c);
	p->c = NULL;
	uv_close((uv_handle_t *)&p->guard, NULL);
}

/* Run a connection to conninfo until it went down twice (or 10 s passed). */
static void run_probe(struct probe *p, const char *conninfo, uint64_t connect_timeout_ms,
		      void (*extra)(uv_loop_t *loop, void *arg), void *arg)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	memset(p, 0, sizeof(*p));
	p->loop = &loop;
	struct net_ctx *net;
	if (net_ctx_create(&loop, &net) < 0) {
		TEST_FAIL_("net_ctx_create");
		return;
	}
	if (extra)
		extra(&loop, arg);
	char err[256];
	struct pg_options o = {.conninfo = conninfo, .connect_timeout_ms = connect_timeout_ms};
	if (pg_create(&loop, net, &o, &probe_cb, p, &p->c, err, sizeof(err)) < 0) {
		TEST_FAIL_("pg_create: %s", err);
		net_ctx_close(net);
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		return;
	}
	uv_timer_init(&loop, &p->guard);
	p->guard.data = p;
	uv_timer_start(&p->guard, on_guard, 10000, 0);
	pg_start(p->c);
	while (p->c && uv_run(&loop, UV_RUN_ONCE))
		;
	net_ctx_close(net);
	if (extra)
		extra(NULL, arg); /* close what it opened */
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) != 0)
		TEST_FAIL_("a handle was left open");
}

static int closed_port(void)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	uv_tcp_t t;
	uv_tcp_init(&loop, &t);
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);
	uv_tcp_bind(&t, (const struct sockaddr *)&a, 0);
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
	int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return port;
}

static void refused_then_retried(void)
{
	char url[128];
	snprintf(url, sizeof(url), "postgresql://u:s3cret@127.0.0.1:%d/db", closed_port());
	struct probe p;
	run_probe(&p, url, 2000, NULL, NULL);
	ASSERT(!p.timed_out);
	ASSERT_EQ(p.ups, 0);
	ASSERT_EQ(p.downs, 2);
	ASSERT(strstr(p.why, "refused") != NULL);
	ASSERT(strstr(p.why, "s3cret") == NULL);
	ASSERT(strchr(p.why, '\n') == NULL);
	/* The retry came after the first backoff: 0.5 s times 0.5..1.5 (then 1 s). */
	uint64_t gap = p.down_at[1] - p.down_at[0];
	ASSERT_GE(gap, 250);
	ASSERT_LE(gap, 1500);
}

/* A listener that accepts and never says a word: the connect timeout ends the attempt. */
struct mute {
	uv_tcp_t srv;
	uv_tcp_t *conns[8];
	int n;
	int port;
};

static void mute_accept(uv_stream_t *s, int status)
{
	struct mute *m = s->data;
	if (status < 0 || m->n == 8)
		return;
	uv_tcp_t *c = malloc(sizeof(*c));
	uv_tcp_init(s->loop, c);
	if (uv_accept(s, (uv_stream_t *)c) == 0) {
		m->conns[m->n++] = c;
	} else {
		uv_close((uv_handle_t *)c, (uv_close_cb)free);
	}
}

static void mute_extra(uv_loop_t *loop, void *arg)
{
	struct mute *m = arg;
	if (loop) {
		uv_tcp_init(loop, &m->srv);
		m->srv.data = m;
		struct sockaddr_in a;
		uv_ip4_addr("127.0.0.1", m->port, &a);
		uv_tcp_bind(&m->srv, (const struct sockaddr *)&a, 0);
		uv_listen((uv_stream_t *)&m->srv, 8, mute_accept);
		return;
	}
	for (int i = 0; i < m->n; i++)
		uv_close((uv_handle_t *)m->conns[i], (uv_close_cb)free);
	uv_close((uv_handle_t *)&m->srv, NULL);
}

static void silent_server_times_out(void)
{
	struct mute m = {.port = closed_port()};
	char url[128];
	snprintf(url, sizeof(url), "host=127.0.0.1 port=%d dbname=db user=u sslmode=disable",
		 m.port);
	struct probe p;
	run_probe(&p, url, 300, mute_extra, &m);
	ASSERT(!p.timed_out);
	ASSERT_EQ(p.ups, 0);
	ASSERT_EQ(p.downs, 2);
	ASSERT(strstr(p.why, "could not connect in time") != NULL);
	ASSERT_GE(m.n, 1);
}

/* A host name goes through c-ares (the hosts file of CARES_HOSTS here): an unknown one fails
 * as "cannot resolve", a known one is connected to by address. */
static void names_resolved_by_cares(void)
{
	char path[] = "/tmp/dmk-pg-hosts-XXXXXX";
	int fd = mkstemp(path);
	ASSERT(fd >= 0);
	const char hosts[] = "127.0.0.1 pg.test\n";
	ASSERT_EQ(write(fd, hosts, sizeof(hosts) - 1), (long)(sizeof(hosts) - 1));
	close(fd);
	setenv("CARES_HOSTS", path, 1);
	struct probe p;
	char url[128];
	snprintf(url, sizeof(url), "postgresql://u@pg.test:%d/db", closed_port());
	run_probe(&p, url, 2000, NULL, NULL);
	bool known_ok = p.downs == 2 && strstr(p.why, "refused") != NULL;
	char why1[512];
	snprintf(why1, sizeof(why1), "%s", p.why);
	run_probe(&p, "postgresql://u@no-such-host.invalid/db", 2000, NULL, NULL);
	unsetenv("CARES_HOSTS");
	unlink(path);
	if (!known_ok)
		TEST_FAIL_("pg.test: %s", why1);
	ASSERT_EQ(p.downs, 2);
	ASSERT(strstr(p.why, "cannot resolve no-such-host.invalid") != NULL);
}

int main(void)
{
	RUN(copy_escapes);
	RUN(copy_random_bytes);
	RUN(create_refuses);
	RUN(refused_then_retried);
	RUN(silent_server_times_out);
	RUN(names_resolved_by_cares);
	TEST_DONE();
}
