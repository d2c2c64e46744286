/*
 * test_httpc: the loop HTTP client against a server in the test on loopback. The server is
 * independent of our HTTP and TLS code: it matches the request path and writes canned
 * response bytes written by hand below, a piece per write (a timer tick apart, so chunks
 * really arrive split) or one byte per write; for https it is an mbedTLS server context fed
 * from a libuv socket, with a test CA and a server certificate for DNS:localhost made at
 * start with the mbedTLS API (as test_tls.c does, with EC keys for speed). The request bytes
 * the server received are compared byte for byte. Every test ends with uv_loop_close() == 0,
 * so a handle left open fails it, and the ASan build checks that every path frees the call.
 */
#include "httpc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mbedtls/bignum.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "buf.h"
#include "net.h"
#include "test.h"
#include "tls.h"

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

/* ---- certificates ---- */

static mbedtls_entropy_context g_entropy;
static mbedtls_ctr_drbg_context g_drbg;
static mbedtls_pk_context g_ca_key, g_srv_key;
static mbedtls_x509_crt g_srv_chain; /* server cert, then the CA */
static char g_dir[64];
static char g_ca_path[128];

#define CA_NAME "CN=danmakud httpc test CA,O=danmakud"
#define SRV_NAME "CN=danmakud httpc test server,O=danmakud"

static int gen_ec_key(mbedtls_pk_context *pk)
{
	mbedtls_pk_init(pk);
	int rc = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
	if (rc == 0)
		rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*pk),
					 mbedtls_ctr_drbg_random, &g_drbg);
	return rc;
}

/* A PEM certificate; dns, if set, is its only subjectAltName dNSName (DER built by hand:
 * mbedTLS 2.28 has no SAN setter). */
static int make_cert(mbedtls_pk_context *subj_key, const char *subj, mbedtls_pk_context *iss_key,
		     const char *iss, bool is_ca, const char *dns, int serial, unsigned char *pem,
		     size_t pemlen)
{
	mbedtls_x509write_cert crt;
	mbedtls_mpi sn;
	mbedtls_x509write_crt_init(&crt);
	mbedtls_mpi_init(&sn);
	int rc = mbedtls_mpi_lset(&sn, serial);
	if (rc)
		goto out;
	mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&crt, subj_key);
	mbedtls_x509write_crt_set_issuer_key(&crt, iss_key);
	if ((rc = mbedtls_x509write_crt_set_serial(&crt, &sn)) ||
	    (rc = mbedtls_x509write_crt_set_validity(&crt, "20200101000000", "20491231235959")) ||
	    (rc = mbedtls_x509write_crt_set_subject_name(&crt, subj)) ||
	    (rc = mbedtls_x509write_crt_set_issuer_name(&crt, iss)) ||
	    (rc = mbedtls_x509write_crt_set_basic_constraints(&crt, is_ca, is_ca ? 0 : -1)) ||
	    (rc = mbedtls_x509write_crt_set_subject_key_identifier(&crt)) ||
	    (rc = mbedtls_x509write_crt_set_authority_key_identifier(&crt)))
		goto out;
	if (dns) {
		size_t n = strlen(dns);
		unsigned char der[128];
		if (n > sizeof(der) - 4) {
			rc = -1;
			goto out;
		}
		der[0] = 0x30;
		der[1] = (unsigned char)(n + 2);
		der[2] = 0x82;
		der[3] = (unsigned char)n;
		memcpy(der + 4, dns, n);
		rc = mbedtls_x509write_crt_set_extension(
		    &crt, MBEDTLS_OID_SUBJECT_ALT_NAME,
		    MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, der, n + 4);
		if (rc)
			goto out;
	}
	rc = mbedtls_x509write_crt_pem(&crt, pem, pemlen, mbedtls_ctr_drbg_random, &g_drbg);
out:
	mbedtls_mpi_free(&sn);
	mbedtls_x509write_crt_free(&crt);
	return rc;
}

static int certs_setup(void)
{
	mbedtls_entropy_init(&g_entropy);
	mbedtls_ctr_drbg_init(&g_drbg);
	mbedtls_x509_crt_init(&g_srv_chain);
	static const char pers[] = "test_httpc";
	int rc = mbedtls_ctr_drbg_seed(&g_drbg, mbedtls_entropy_func, &g_entropy,
				       (const unsigned char *)pers, sizeof(pers) - 1);
	if (rc || (rc = gen_ec_key(&g_ca_key)) || (rc = gen_ec_key(&g_srv_key)))
		return rc;
	static unsigned char ca[4096], srv[4096];
	if ((rc = make_cert(&g_ca_key, CA_NAME, &g_ca_key, CA_NAME, true, NULL, 1, ca,
			    sizeof(ca))) ||
	    (rc = make_cert(&g_srv_key, SRV_NAME, &g_ca_key, CA_NAME, false, "localhost", 2, srv,
			    sizeof(srv))))
		return rc;
	if ((rc = mbedtls_x509_crt_parse(&g_srv_chain, srv, strlen((char *)srv) + 1)) ||
	    (rc = mbedtls_x509_crt_parse(&g_srv_chain, ca, strlen((char *)ca) + 1)))
		return rc;
	const char *tmp = getenv("TMPDIR");
	snprintf(g_dir, sizeof(g_dir), "%s/test_httpc.XXXXXX",
		 tmp && strlen(tmp) < 30 ? tmp : "/tmp");
	if (!mkdtemp(g_dir))
		return -1;
	snprintf(g_ca_path, sizeof(g_ca_path), "%s/ca.pem", g_dir);
	FILE *f = fopen(g_ca_path, "wb");
	if (!f)
		return -1;
	size_t n = strlen((char *)ca);
	rc = fwrite(ca, 1, n, f) == n ? 0 : -1;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

static void certs_teardown(void)
{
	unlink(g_ca_path);
	rmdir(g_dir);
	mbedtls_x509_crt_free(&g_srv_chain);
	mbedtls_pk_free(&g_srv_key);
	mbedtls_pk_free(&g_ca_key);
	mbedtls_ctr_drbg_free(&g_drbg);
	mbedtls_entropy_free(&g_entropy);
}

/* ---- canned responses, by request path ---- */

enum {
	R_DRIBBLE = 1,         /* one byte per write */
	R_NEVER = 2,           /* read the request, never answer */
	R_KEEP_OPEN = 4,       /* after the last piece, neither close nor shut down */
	R_NO_CLOSE_NOTIFY = 8, /* TLS: FIN without close_notify */
};

struct route {
	const char *path;
	const char *const *pieces; /* NULL-terminated; each piece is one write */
	unsigned flags;
};

static const char *const p_cl[] = {"HTTP/1.1 200 OK\r\n"
				   "Content-Type: application/json\r\n"
				   "Content-Length: 16\r\n"
				   "\r\n"
				   "{\"code\":0,\"x\":1}",
				   NULL};
static const char *const p_chunked[] = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
					"5\r\nhel",
					"lo\r\n",
					"6\r",
					"\n world\r",
					"\n0\r\n",
					"\r\n",
					NULL};
static const char *const p_close[] = {"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
				      "close-", "delimited body", NULL};
static const char *const p_cl10[] = {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
				     NULL};
static const char *const p_cl11[] = {"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789a",
				     NULL};
static const char *const p_close10[] = {"HTTP/1.1 200 OK\r\n\r\n01234", "56789", NULL};
static const char *const p_close11[] = {"HTTP/1.1 200 OK\r\n\r\n01234", "56789a", NULL};
static const char *const p_chunked10[] = {
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "6\r\n012345\r\n",
    "4\r\n6789\r\n0\r\n\r\n", NULL};
static const char *const p_chunked11[] = {
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "6\r\n012345\r\n",
    "5\r\n6789a\r\n0\r\n\r\n", NULL};
static const char *const p_redirect[] = {"HTTP/1.1 302 Found\r\n"
					 "Location: https://www.example.invalid/next?a=1\r\n"
					 "Content-Length: 0\r\n"
					 "\r\n",
					 NULL};
static const char *const p_404[] = {"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
				    NULL};
static const char *p_bighead[2]; /* built in main: a 20000-byte header line */
static const char *const p_garbage[] = {"HTTX/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", NULL};
static const char *const p_badstatus[] = {"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", NULL};
static const char *const p_short_head[] = {"HTTP/1.1 200 OK\r\nContent-Le", NULL};
static const char *const p_short_body[] = {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabcde",
					   NULL};
static const char *const p_partial[] = {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", "abc",
					NULL};
static const char *const p_204[] = {"HTTP/1.1 204 No Content\r\nX-Seen: yes\r\n\r\n", NULL};

static const struct route routes[] = {
    {"/cl", p_cl, 0},
    {"/cl-dribble", p_cl, R_DRIBBLE},
    {"/chunked", p_chunked, 0},
    {"/chunked-dribble", p_chunked, R_DRIBBLE},
    {"/close", p_close, 0},
    {"/close-no-notify", p_close, R_NO_CLOSE_NOTIFY},
    {"/cl10", p_cl10, 0},
    {"/cl11", p_cl11, 0},
    {"/close10", p_close10, 0},
    {"/close11", p_close11, 0},
    {"/chunked10", p_chunked10, 0},
    {"/chunked11", p_chunked11, 0},
    {"/redirect", p_redirect, 0},
    {"/404", p_404, 0},
    {"/bighead", p_bighead, 0},
    {"/garbage", p_garbage, 0},
    {"/badstatus", p_badstatus, 0},
    {"/short-head", p_short_head, 0},
    {"/short-body", p_short_body, 0},
    {"/partial", p_partial, R_KEEP_OPEN},
    {"/never", NULL, R_NEVER},
    {"/echo", p_204, 0},
};

static const struct route *route_find(const char *path, size_t len)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strlen(routes[i].path) == len && memcmp(routes[i].path, path, len) == 0)
			return &routes[i];
	return NULL;
}

/* ---- the test server: libuv TCP, optionally an mbedTLS server session ---- */

struct tsrv {
	uv_tcp_t tcp;
	bool listening;
	int port;
	bool tls;
	mbedtls_ssl_config conf;
	int accepted, requests, tls_failures;
	char last_req[4096]; /* the last request head received (plaintext) */
	size_t last_req_len;
};

struct tconn {
	uv_tcp_t tcp;
	uv_timer_t tick;
	uv_shutdown_t sreq;
	struct tsrv *s;
	bool tls, hs_done, responding, closing;
	int pending;
	mbedtls_ssl_context ssl;
	struct buf in, out; /* TLS: ciphertext from and to the client */
	struct buf req;     /* the request (plaintext) */
	const struct route *r;
	size_t piece, off;
	char rbuf[65536];
};

static void tconn_free(uv_handle_t *h)
{
	struct tconn *k = h->data;
	if (--k->pending > 0)
		return;
	if (k->tls)
		mbedtls_ssl_free(&k->ssl);
	buf_finish(&k->in);
	buf_finish(&k->out);
	buf_finish(&k->req);
	free(k);
}

static void tconn_close(struct tconn *k)
{
	if (k->closing)
		return;
	k->closing = true;
	uv_timer_stop(&k->tick);
	uv_close((uv_handle_t *)&k->tick, tconn_free);
	uv_close((uv_handle_t *)&k->tcp, tconn_free);
}

static void on_tconn_written(uv_write_t *w, int status)
{
	struct tconn *k = w->data;
	free(w);
	if (status < 0)
		tconn_close(k);
}

static void tconn_write(struct tconn *k, const void *p, size_t n)
{
	if (k->closing || n == 0)
		return;
	uv_write_t *w = malloc(sizeof(*w) + n);
	memcpy(w + 1, p, n);
	w->data = k;
	uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned)n);
	if (uv_write(w, (uv_stream_t *)&k->tcp, &b, 1, on_tconn_written) < 0) {
		free(w);
		tconn_close(k);
	}
}

static void tconn_flush_tls(struct tconn *k)
{
	tconn_write(k, buf_head(&k->out), k->out.len);
	buf_clear(&k->out);
}

/* Response bytes, through TLS when the server speaks it. */
static void tconn_send(struct tconn *k, const char *p, size_t n)
{
	if (!k->tls) {
		tconn_write(k, p, n);
		return;
	}
	while (n > 0) {
		int rc = mbedtls_ssl_write(&k->ssl, (const unsigned char *)p, n);
		if (rc < 0) {
			tconn_close(k);
			return;
		}
		p += rc;
		n -= (size_t)rc;
	}
	tconn_flush_tls(k);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	/* The client closes next; its EOF closes this connection. */
}

static void on_tick(uv_timer_t *t)
{
	struct tconn *k = t->data;
	const char *piece = k->r->pieces[k->piece];
	size_t left = strlen(piece) - k->off;
	size_t n = (k->r->flags & R_DRIBBLE) ? 1 : left;
	tconn_send(k, piece + k->off, n);
	if (k->closing)
		return;
	k->off += n;
	if (k->off == strlen(piece)) {
		k->piece++;
		k->off = 0;
	}
	if (k->r->pieces[k->piece]) {
		/* 1 ms, not 0: a write per loop turn, so the client reads each one apart. */
		uv_timer_start(&k->tick, on_tick, 1, 0);
		return;
	}
	if (k->r->flags & R_KEEP_OPEN)
		return;
	if (k->tls && !(k->r->flags & R_NO_CLOSE_NOTIFY)) {
		mbedtls_ssl_close_notify(&k->ssl);
		tconn_flush_tls(k);
	}
	k->sreq.data = k;
	if (uv_shutdown(&k->sreq, (uv_stream_t *)&k->tcp, on_shutdown) < 0)
		tconn_close(k);
}

/* Plaintext request bytes: once the head is whole, answer by its path. */
static void tconn_got(struct tconn *k, const uint8_t *p, size_t n)
{
	if (k->responding)
		return;
	if (k->req.len + n > 65536 || buf_append(&k->req, p, n) < 0) {
		tconn_close(k);
		return;
	}
	const char *h = (const char *)buf_head(&k->req);
	size_t len = k->req.len;
	const char *end = NULL;
	for (size_t i = 0; i + 4 <= len; i++)
		if (memcmp(h + i, "\r\n\r\n", 4) == 0) {
			end = h + i + 4;
			break;
		}
	if (!end)
		return;
	k->responding = true;
	struct tsrv *s = k->s;
	s->requests++;
	s->last_req_len = (size_t)(end - h) < sizeof(s->last_req) - 1 ? (size_t)(end - h)
								       : sizeof(s->last_req) - 1;
	memcpy(s->last_req, h, s->last_req_len);
	s->last_req[s->last_req_len] = '\0';
	const struct route *r = NULL;
	if (len > 4 && memcmp(h, "GET ", 4) == 0) {
		const char *path = h + 4;
		size_t pl = strcspn(path, "? \r\n");
		r = route_find(path, pl);
	}
	if (!r) {
		static const char *const p_none[] = {
		    "HTTP/1.1 500 No Route\r\nContent-Length: 0\r\n\r\n", NULL};
		static const struct route none = {"", p_none, 0};
		r = &none;
	}
	k->r = r;
	if (!(r->flags & R_NEVER))
		uv_timer_start(&k->tick, on_tick, 0, 0);
}

static void tconn_pump_tls(struct tconn *k)
{
	if (!k->hs_done) {
		int rc = mbedtls_ssl_handshake(&k->ssl);
		tconn_flush_tls(k);
		if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
			return;
		if (rc != 0) {
			k->s->tls_failures++;
			tconn_close(k);
			return;
		}
		k->hs_done = true;
	}
	uint8_t p[4096];
	int rc;
	while (!k->closing && (rc = mbedtls_ssl_read(&k->ssl, p, sizeof(p))) > 0)
		tconn_got(k, p, (size_t)rc);
	/* WANT_READ, or the client's close_notify: its FIN follows and closes us. */
}

static int tconn_bio_send(void *ctx, const unsigned char *p, size_t len)
{
	struct tconn *k = ctx;
	return buf_append(&k->out, p, len) < 0 ? MBEDTLS_ERR_SSL_ALLOC_FAILED : (int)len;
}

static int tconn_bio_recv(void *ctx, unsigned char *p, size_t len)
{
	struct tconn *k = ctx;
	if (k->in.len == 0)
		return MBEDTLS_ERR_SSL_WANT_READ;
	size_t n = len < k->in.len ? len : k->in.len;
	memcpy(p, buf_head(&k->in), n);
	buf_consume(&k->in, n);
	return (int)n;
}

static void on_tconn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct tconn *k = h->data;
	b->base = k->rbuf;
	b->len = sizeof(k->rbuf);
}

static void on_tconn_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct tconn *k = st->data;
	if (n < 0) {
		tconn_close(k);
		return;
	}
	if (n == 0 || k->closing)
		return;
	if (!k->tls) {
		tconn_got(k, (const uint8_t *)b->base, (size_t)n);
		return;
	}
	if (buf_append(&k->in, b->base, (size_t)n) < 0) {
		tconn_close(k);
		return;
	}
	tconn_pump_tls(k);
}

static void on_tsrv_conn(uv_stream_t *server, int status)
{
	struct tsrv *s = server->data;
	if (status < 0)
		return;
	struct tconn *k = calloc(1, sizeof(*k));
	k->s = s;
	k->tls = s->tls;
	k->pending = 2;
	buf_init(&k->in);
	buf_init(&k->out);
	buf_init(&k->req);
	uv_tcp_init(server->loop, &k->tcp);
	k->tcp.data = k;
	uv_timer_init(server->loop, &k->tick);
	k->tick.data = k;
	if (uv_accept(server, (uv_stream_t *)&k->tcp) < 0) {
		tconn_close(k);
		return;
	}
	s->accepted++;
	if (k->tls) {
		mbedtls_ssl_init(&k->ssl);
		if (mbedtls_ssl_setup(&k->ssl, &s->conf) != 0) {
			tconn_close(k);
			return;
		}
		mbedtls_ssl_set_bio(&k->ssl, k, tconn_bio_send, tconn_bio_recv, NULL);
	}
	uv_read_start((uv_stream_t *)&k->tcp, on_tconn_alloc, on_tconn_read);
}

static int tsrv_start(uv_loop_t *loop, struct tsrv *s, const char *ip, bool tls)
{
	memset(s, 0, sizeof(*s));
	s->tls = tls;
	mbedtls_ssl_config_init(&s->conf);
	if (tls) {
		int rc = mbedtls_ssl_config_defaults(&s->conf, MBEDTLS_SSL_IS_SERVER,
						     MBEDTLS_SSL_TRANSPORT_STREAM,
						     MBEDTLS_SSL_PRESET_DEFAULT);
		if (rc == 0)
			mbedtls_ssl_conf_rng(&s->conf, mbedtls_ctr_drbg_random, &g_drbg);
		if (rc == 0)
			rc = mbedtls_ssl_conf_own_cert(&s->conf, &g_srv_chain, &g_srv_key);
		if (rc)
			return -EIO;
	}
	uv_tcp_init(loop, &s->tcp);
	s->tcp.data = s;
	s->listening = true;
	struct sockaddr_storage a;
	int rc = strchr(ip, ':') ? uv_ip6_addr(ip, 0, (struct sockaddr_in6 *)&a)
				 : uv_ip4_addr(ip, 0, (struct sockaddr_in *)&a);
	if (rc == 0)
		rc = uv_tcp_bind(&s->tcp, (struct sockaddr *)&a, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&s->tcp, 16, on_tsrv_conn);
	if (rc < 0)
		return rc;
	struct sockaddr_storage got;
	int len = sizeof(got);
	uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&got, &len);
	s->port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
						  : ((struct sockaddr_in *)&got)->sin_port);
	return 0;
}

static void tsrv_stop(struct tsrv *s)
{
	if (!s->listening)
		return;
	s->listening = false;
	uv_close((uv_handle_t *)&s->tcp, NULL);
}

/* ---- the client side: one fixture per test ---- */

struct fx {
	uv_loop_t loop;
	struct net_ctx *ctx;
	struct tls_config *tls;
	struct tsrv srv;
	uv_timer_t watchdog;
	uv_timer_t cancel_timer;
	int pending; /* calls still expected to end; the server stops at 0 */
};

struct result {
	struct fx *f;
	int calls;
	int err;
	int status;
	char msg[256];
	char body[256];
	size_t body_len;
	char location[256];
	char seen[16];                /* the X-Seen header */
	struct httpc_call *call;      /* this result's call */
	struct httpc_call *cancel;    /* cancel this other call from inside cb */
	bool cancel_self;             /* call httpc_cancel on our own call from inside cb */
	uint64_t t0, ms;
};

static void on_watchdog(uv_timer_t *t)
{
	printf("Bail out! a test did not finish within 20 s\n");
	exit(1);
}

static void fx_call_ended(struct fx *f)
{
	if (--f->pending == 0)
		tsrv_stop(&f->srv);
}

static void on_result(void *ud, int err, const struct httpc_response *r, const char *msg)
{
	struct result *res = ud;
	res->calls++;
	res->err = err;
	res->ms = (uv_hrtime() - res->t0) / 1000000;
	snprintf(res->msg, sizeof(res->msg), "%s", msg ? msg : "(null)");
	if (r) {
		res->status = r->status;
		res->body_len = r->body_len;
		size_t n = r->body_len < sizeof(res->body) - 1 ? r->body_len : sizeof(res->body) - 1;
		memcpy(res->body, r->body, n);
		res->body[n] = '\0';
		if (r->body[r->body_len] != '\0') /* promised NUL terminator */
			res->status = -1;
		const struct http_header *h = http_header_find(r->head, "location", NULL);
		if (h)
			snprintf(res->location, sizeof(res->location), "%.*s", (int)h->value_len,
				 h->value);
		h = http_header_find(r->head, "x-seen", NULL);
		if (h)
			snprintf(res->seen, sizeof(res->seen), "%.*s", (int)h->value_len, h->value);
	}
	if (res->cancel) {
		httpc_cancel(res->cancel);
		fx_call_ended(res->f);
	}
	if (res->cancel_self)
		httpc_cancel(res->call); /* over already: a no-op */
	fx_call_ended(res->f);
}

static int fx_init(struct fx *f, const char *ip, bool tls_srv)
{
	memset(f, 0, sizeof(*f));
	uv_loop_init(&f->loop);
	uv_timer_init(&f->loop, &f->watchdog);
	uv_timer_start(&f->watchdog, on_watchdog, 20000, 0);
	uv_unref((uv_handle_t *)&f->watchdog);
	uv_timer_init(&f->loop, &f->cancel_timer);
	int rc = tsrv_start(&f->loop, &f->srv, ip, tls_srv);
	if (rc < 0)
		return rc;
	char err[256];
	rc = tls_config_create(g_ca_path, false, &f->tls, err, sizeof(err));
	if (rc < 0) {
		printf("# tls_config_create: %s\n", err);
		return rc;
	}
	return net_ctx_create(&f->loop, &f->ctx);
}

/* Run until every call ended, then tear down; 0 when nothing was left open. */
static int fx_finish(struct fx *f)
{
	if (f->pending == 0)
		tsrv_stop(&f->srv); /* no call is running */
	uv_run(&f->loop, UV_RUN_DEFAULT);
	tsrv_stop(&f->srv);
	net_ctx_close(f->ctx);
	uv_close((uv_handle_t *)&f->watchdog, NULL);
	uv_close((uv_handle_t *)&f->cancel_timer, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	mbedtls_ssl_config_free(&f->srv.conf);
	tls_config_destroy(f->tls);
	return uv_loop_close(&f->loop);
}

/* Start a GET of scheme://host:<server port>path; the result lands in res. */
static int fx_get(struct fx *f, struct result *res, const char *scheme, const char *host,
		  const char *path, const char *const *headers, size_t n_headers,
		  uint64_t timeout_ms, size_t max_body)
{
	char url[512];
	snprintf(url, sizeof(url), "%s://%s:%d%s", scheme, host, f->srv.port, path);
	struct httpc_request req = {.url = url,
				    .headers = headers,
				    .n_headers = n_headers,
				    .timeout_ms = timeout_ms,
				    .max_body = max_body};
	res->f = f;
	res->t0 = uv_hrtime();
	int rc = httpc_get(&f->loop, f->ctx, f->tls, &req, on_result, res, &res->call);
	if (rc == 0) {
		f->pending++;
		if (res->calls != 0) /* never from inside httpc_get */
			return -9999;
	}
	return rc;
}

/* One plain GET of path on a fresh server, to the end. */
static int get_one(const char *path, size_t max_body, struct result *res, struct tsrv *srv_out)
{
	struct fx f;
	memset(res, 0, sizeof(*res));
	int rc = fx_init(&f, "127.0.0.1", false);
	if (rc == 0)
		rc = fx_get(&f, res, "http", "127.0.0.1", path, NULL, 0, 5000, max_body);
	int lrc = fx_finish(&f);
	if (srv_out)
		*srv_out = f.srv;
	if (rc == 0 && lrc != 0) {
		printf("# loop left handles open\n");
		rc = -EBUSY;
	}
	return rc;
}

/* ---- URL splitting ---- */

static void url_good(void)
{
	static const struct {
		const char *url;
		bool https;
		unsigned port;
		const char *host, *host_header, *path;
	} cases[] = {
	    {"http://example.com", false, 80, "example.com", "example.com", "/"},
	    {"https://api.example.com/x/web-interface/nav", true, 443, "api.example.com",
	     "api.example.com", "/x/web-interface/nav"},
	    {"http://127.0.0.1:8080/a?b=c&d=%2F", false, 8080, "127.0.0.1", "127.0.0.1:8080",
	     "/a?b=c&d=%2F"},
	    {"https://[::1]:8443/x", true, 8443, "::1", "[::1]:8443", "/x"},
	    {"https://[2001:db8::1]/", true, 443, "2001:db8::1", "[2001:db8::1]", "/"},
	    {"http://h?x=1", false, 80, "h", "h", "/?x=1"},
	    {"HTTPS://Example.com:443/", true, 443, "Example.com", "Example.com", "/"},
	    {"http://h:80/p", false, 80, "h", "h", "/p"},
	    {"https://h:80/p", true, 80, "h", "h:80", "/p"},
	    {"http://h:08080/", false, 8080, "h", "h:8080", "/"},
	    {"http://a-b.c_d.example:65535/~u/x.y;z=1,2!$'()*+:@?q=/?", false, 65535,
	     "a-b.c_d.example", "a-b.c_d.example:65535", "/~u/x.y;z=1,2!$'()*+:@?q=/?"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct httpc_url u;
		char err[200] = "";
		int rc = httpc_url_parse(cases[i].url, &u, err, sizeof(err));
		if (rc != 0)
			printf("# %s: %s\n", cases[i].url, err);
		ASSERT_EQ(rc, 0);
		ASSERT_EQ(u.https, cases[i].https);
		ASSERT_EQ(u.port, cases[i].port);
		ASSERT_STR_EQ(u.host, cases[i].host);
		ASSERT_STR_EQ(u.host_header, cases[i].host_header);
		ASSERT_STR_EQ(u.path, cases[i].path);
	}
}

static void url_bad(void)
{
	static const struct {
		const char *url, *why;
	} cases[] = {
	    {"ftp://x/", "scheme"},
	    {"wss://x/", "scheme"},
	    {"http:/x/", "scheme"},
	    {"", "scheme"},
	    {"http://", "no host"},
	    {"http:///x", "no host"},
	    {"http://:80/", "no host"},
	    {"http://user:pw@host/", "user information"},
	    {"http://user@host/", "user information"},
	    {"http://host/#frag", "fragment"},
	    {"http://host/a#", "fragment"},
	    {"http://host/a b", "space"},
	    {"http://ho st/", "space"},
	    {"http://host/\x01", "control"},
	    {"http://host/\x7f", "control"},
	    {"http://host/a\tb", "control"},
	    {"http://host/\r\nX: y", "control"},
	    {"http://host/\xc3\xa9", "non-ASCII"},
	    {"http://host:0/", "bad port"},
	    {"http://host:65536/", "bad port"},
	    {"http://host:/", "bad port"},
	    {"http://host:8x/", "bad port"},
	    {"http://host:-1/", "bad port"},
	    {"http://host:1:2/", "bad port"},
	    {"http://[::1/", "unclosed"},
	    {"http://[::1]x/", "junk"},
	    {"http://[zz::1]/", "IPv6"},
	    {"http://[]/", "no host"},
	    {"http://[fe80::1%25eth0]/", "IPv6"},
	    {"http://::1/", "no host"},
	    {"http://ho%73t/", "host holds"},
	    {"http://host/a{b}", "percent-encoded"},
	    {"http://host/a\"b", "percent-encoded"},
	    {"http://host/a\\b", "percent-encoded"},
	    {"http://host/%zz", "escape"},
	    {"http://host/%4", "escape"},
	    {"http://host/[x]", "percent-encoded"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct httpc_url u;
		char err[200] = "";
		int rc = httpc_url_parse(cases[i].url, &u, err, sizeof(err));
		if (rc != -EINVAL || !strstr(err, cases[i].why))
			printf("# case %zu: rc %d, \"%s\" (want \"%s\")\n", i, rc, err,
			       cases[i].why);
		ASSERT_EQ(rc, -EINVAL);
		ASSERT(strstr(err, cases[i].why) != NULL);
	}
	/* Length bound; the message never repeats the query (keys may be in it). */
	static char long_url[HTTPC_URL_MAX + 2];
	memset(long_url, 'a', sizeof(long_url) - 1);
	memcpy(long_url, "http://h/?k=", 12);
	long_url[sizeof(long_url) - 1] = '\0';
	struct httpc_url u;
	char err[200];
	ASSERT_EQ(httpc_url_parse(long_url, &u, err, sizeof(err)), -EINVAL);
	ASSERT(strstr(err, "longer than") != NULL);
	long_url[HTTPC_URL_MAX] = '\0'; /* exactly the bound: fine */
	ASSERT_EQ(httpc_url_parse(long_url, &u, err, sizeof(err)), 0);
	ASSERT_EQ(strlen(u.path), HTTPC_URL_MAX - 8);
	ASSERT_EQ(httpc_url_parse("http://h/?access_key=s3cr3t{", &u, err, sizeof(err)), -EINVAL);
	ASSERT(strstr(err, "s3cr3t") == NULL);
}

/* ---- bodies ---- */

static void content_length_body(void)
{
	struct result res;
	struct tsrv srv;
	ASSERT_EQ(get_one("/cl", 0, &res, &srv), 0);
	ASSERT_EQ(res.calls, 1);
	ASSERT_EQ(res.err, 0);
	ASSERT_STR_EQ(res.msg, "");
	ASSERT_EQ(res.status, 200);
	ASSERT_EQ(res.body_len, 16);
	ASSERT_STR_EQ(res.body, "{\"code\":0,\"x\":1}");
	ASSERT_EQ(srv.requests, 1);
}

static void content_length_body_dribbled(void)
{
	struct result res;
	ASSERT_EQ(get_one("/cl-dribble", 0, &res, NULL), 0);
	ASSERT_EQ(res.calls, 1);
	ASSERT_EQ(res.err, 0);
	ASSERT_EQ(res.status, 200);
	ASSERT_STR_EQ(res.body, "{\"code\":0,\"x\":1}");
}

static void chunked_body(void)
{
	static const char *const paths[] = {"/chunked", "/chunked-dribble"};
	for (size_t i = 0; i < 2; i++) {
		struct result res;
		ASSERT_EQ(get_one(paths[i], 0, &res, NULL), 0);
		ASSERT_EQ(res.calls, 1);
		if (res.err)
			printf("# %s: %s\n", paths[i], res.msg);
		ASSERT_EQ(res.err, 0);
		ASSERT_EQ(res.status, 200);
		ASSERT_EQ(res.body_len, 11);
		ASSERT_STR_EQ(res.body, "hello world");
	}
}

static void close_delimited_body(void)
{
	struct result res;
	ASSERT_EQ(get_one("/close", 0, &res, NULL), 0);
	ASSERT_EQ(res.calls, 1);
	ASSERT_EQ(res.err, 0);
	ASSERT_EQ(res.status, 200);
	ASSERT_STR_EQ(res.body, "close-delimited body");
}

static void body_at_bound(void)
{
	static const char *const paths[] = {"/cl10", "/close10", "/chunked10"};
	for (size_t i = 0; i < 3; i++) {
		struct result res;
		ASSERT_EQ(get_one(paths[i], 10, &res, NULL), 0);
		ASSERT_EQ(res.calls, 1);
		if (res.err)
			printf("# %s: %s\n", paths[i], res.msg);
		ASSERT_EQ(res.err, 0);
		ASSERT_EQ(res.body_len, 10);
		ASSERT_STR_EQ(res.body, "0123456789");
	}
}

static void body_over_bound(void)
{
	static const char *const paths[] = {"/cl11", "/close11", "/chunked11"};
	for (size_t i = 0; i < 3; i++) {
		struct result res;
		ASSERT_EQ(get_one(paths[i], 10, &res, NULL), 0);
		ASSERT_EQ(res.calls, 1);
		printf("# %s: %s\n", paths[i], res.msg);
		ASSERT_EQ(res.err, -EMSGSIZE);
		ASSERT(strstr(res.msg, "http: ") == res.msg);
		ASSERT(strstr(res.msg, "body larger than 10 bytes") != NULL);
	}
}

static void redirect_not_followed(void)
{
	struct result res;
	struct tsrv srv;
	ASSERT_EQ(get_one("/redirect", 0, &res, &srv), 0);
	ASSERT_EQ(res.calls, 1);
	ASSERT_EQ(res.err, 0);
	ASSERT_EQ(res.status, 302);
	ASSERT_STR_EQ(res.location, "https://www.example.invalid/next?a=1");
	ASSERT_EQ(res.body_len, 0);
	ASSERT_STR_EQ(res.body, "");
	ASSERT_EQ(srv.accepted, 1);
	ASSERT_EQ(srv.requests, 1);
}

static void not_found_is_a_response(void)
{
	struct result res;
	ASSERT_EQ(get_one("/404", 0, &res, NULL), 0);
	ASSERT_EQ(res.calls, 1);
	ASSERT_EQ(res.err, 0);
	ASSERT_EQ(res.status, 404);
	ASSERT_STR_EQ(res.body, "not found");
}

/* ---- bad responses ---- */

static void expect_failure(const char *path, int want_err, const char *want_msg)
{
	struct result res;
	ASSERT_EQ(get_one(path, 0, &res, NULL), 0);
	ASSERT_EQ(res.calls, 1);
	printf("# %s: %s\n", path, res.msg);
	ASSERT_EQ(res.err, want_err);
	ASSERT(strstr(res.msg, want_msg) != NULL);
	ASSERT_EQ(res.status, 0);
}

static void head_too_large(void)
{
	expect_failure("/bighead", -EPROTO, "http: head larger than 16384 bytes");
}

static void garbage_status_line(void)
{
	expect_failure("/garbage", -EPROTO, "http: not HTTP/1.x");
	expect_failure("/badstatus", -EPROTO, "http: bad status line");
}

static void peer_closes_early(void)
{
	expect_failure("/short-head", -EPROTO, "http: response truncated");
	expect_failure("/short-body", -EPROTO, "http: response truncated");
}

static void unknown_host(void)
{
	struct fx f;
	ASSERT_EQ(fx_init(&f, "127.0.0.1", false), 0);
	struct result res = {0};
	struct httpc_request req = {.url = "http://no-such-host.invalid/", .timeout_ms = 3000};
	res.f = &f;
	ASSERT_EQ(httpc_get(&f.loop, f.ctx, NULL, &req, on_result, &res, &res.call), 0);
	f.pending++;
	ASSERT_EQ(fx_finish(&f), 0);
	ASSERT_EQ(res.calls, 1);
	printf("# %s\n", res.msg);
	/* Without a network the lookup may fail at once or time out: either names its step. */
	if (res.err == -ETIMEDOUT)
		ASSERT(strstr(res.msg, "timed out after 3000 ms") != NULL ||
		       strstr(res.msg, "resolve no-such-host.invalid: ") == res.msg);
	else
		ASSERT(strstr(res.msg, "resolve no-such-host.invalid: ") == res.msg);
}

/* ---- the request ---- */

static void request_bytes_exact(void)
{
	struct fx f;
	ASSERT_EQ(fx_init(&f, "127.0.0.1", false), 0);
	static const char *const headers[] = {
	    "User-Agent: danmakud-test/1.0",
	    "Cookie: SESSDATA=s3cr3t; bili_jct=abc",
	    "Referer: https://www.example.invalid/",
	};
	struct result res = {0};
	ASSERT_EQ(fx_get(&f, &res, "http", "127.0.0.1", "/echo?a=1&b=%2F", headers, 3, 5000, 0),
		  0);
	ASSERT_EQ(fx_finish(&f), 0);
	ASSERT_EQ(res.calls, 1);
	ASSERT_EQ(res.err, 0);
	ASSERT_EQ(res.status, 204);
	ASSERT_STR_EQ(res.seen, "yes");
	ASSERT_EQ(res.body_len, 0);
	char want[512];
	snprintf(want, sizeof(want),
		 "GET /echo?a=1&b=%%2F HTTP/1.1\r\n"
		 "Host: 127.0.0.1:%d\r\n"
		 "User-Agent: danmakud-test/1.0\r\n"
		 "Cookie: SESSDATA=s3cr3t; bili_jct=abc\r\n"
		 "Referer: https://www.example.invalid/\r\n"
		 "Connection: close\r\n"
		 "\r\n",
		 f.srv.port);
	ASSERT_STR_EQ(f.srv.last_req, want);
	ASSERT(strstr(f.srv.last_req, "Accept-Encoding") == NULL);
}

/* An IPv6 literal: brackets in the Host header, none for the connect. */
static void request_ipv6_literal(void)
{
	struct fx f;
	int rc = fx_init(&f, "::1", false);
	if (rc < 0) {
		fx_finish(&f);
		SKIP("cannot listen on ::1: %s", uv_strerror(rc));
	}
	struct result res = {0};
	ASSERT_EQ(fx_get(&f, &res, "http", "[::1]", "/echo", NULL, 0, 5000, 0), 0);
	ASSERT_EQ(fx_finish(&f), 0);
	ASSERT_EQ(res.calls, 1);
	ASSERT_EQ(res.err, 0);
	ASSERT_EQ(res.status, 204);
	char want[256];
	snprintf(want, sizeof(want), "GET /echo HTTP/1.1\r\nHost: [::1]:%d\r\nConnection: close\r\n\r\n",
		 f.srv.port);
	ASSERT_STR_EQ(f.srv.last_req, want);
}

/* Secrets in header values stay out of error messages. */
static void error_never_names_header_values(void)
{
	static const char *const paths[] = {"/garbage", "/never", "/short-head", "/cl11"};
	static const char *const headers[] = {"Cookie: SESSDATA=topsecret42"};
	for (size_t i = 0; i < 4; i++) {
		struct fx f;
		ASSERT_EQ(fx_init(&f, "127.0.0.1", false), 0);
		struct result res = {0};
		ASSERT_EQ(fx_get(&f, &res, "http", "127.0.0.1", paths[i], headers, 1, 300, 10), 0);
		ASSERT_EQ(fx_finish(&f), 0);
		ASSERT_EQ(res.calls, 1);
		ASSERT_NE(res.err, 0);
		ASSERT(strstr(res.msg, "topsecret42") == NULL);
		ASSERT(strstr(f.srv.last_req, "Cookie: SESSDATA=topsecret42\r\n") != NULL);
	}
}

static void refused_at_once(void)
{
	struct fx f;
	ASSERT_EQ(fx_init(&f, "127.0.0.1", false), 0);
	struct httpc_call *c = (struct httpc_call *)&f; /* must be reset to NULL */
	static const char *const crlf[] = {"X-A: b\r\nX-Evil: 1"};
	static const char *const host[] = {"Host: other"};
	static const char *const enc[] = {"accept-encoding: gzip"};
	static const char *const conn[] = {"Connection: keep-alive"};
	static const char *const noname[] = {": x"};
	static const char *const nocolon[] = {"X-A"};
	static const char *const space[] = {"X A: b"};
	static const struct {
		const char *url;
		const char *const *headers;
		bool tls;
	} cases[] = {
	    {"https://localhost/", NULL, false}, /* https without a tls_config */
	    {"ftp://localhost/", NULL, true},
	    {"http://localhost/a b", NULL, true},
	    {"http://localhost/", crlf, true},
	    {"http://localhost/", host, true},
	    {"http://localhost/", enc, true},
	    {"http://localhost/", conn, true},
	    {"http://localhost/", noname, true},
	    {"http://localhost/", nocolon, true},
	    {"http://localhost/", space, true},
	};
	struct result res = {0};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct httpc_request req = {.url = cases[i].url,
					    .headers = cases[i].headers,
					    .n_headers = cases[i].headers ? 1 : 0};
		c = (struct httpc_call *)&f;
		int rc = httpc_get(&f.loop, f.ctx, cases[i].tls ? f.tls : NULL, &req, on_result,
				   &res, &c);
		if (rc != -EINVAL)
			printf("# case %zu: %d\n", i, rc);
		ASSERT_EQ(rc, -EINVAL);
		ASSERT(c == NULL);
	}
	httpc_cancel(NULL);
	ASSERT_EQ(fx_finish(&f), 0);
	ASSERT_EQ(res.calls, 0);
	ASSERT_EQ(f.srv.accepted, 0);
}

/* ---- time, refusal ---- */

static void timeout_bounds_the_exchange(void)
{
	struct fx f;
	ASSERT_EQ(fx_init(&f, "127.0.0.1", false), 0);
	struct result res = {0};
	ASSERT_EQ(fx_get(&f, &res, "http", "127.0.0.1", "/never", NULL, 0, 300, 0), 0);
	ASSERT_EQ(fx_finish(&f), 0);
	ASSERT_EQ(res.calls, 1);
	printf("# %s after %" PRIu64 " ms\n", res.msg, res.ms);
	ASSERT_EQ(res.err, -ETIMEDOUT);
	ASSERT_STR_EQ(res.msg, "timed out after 300 ms");
	ASSERT_EQ(f.srv.requests, 1);
	ASSERT_GE(res.ms, 290);
	ASSERT_LT(res.ms, 3000);
}

/* A response that trickles in forever is bounded by the same clock. */
static void timeout_mid_body(void)
{
	struct fx f;
	ASSERT_EQ(fx_init(&f, "127.0.0.1", false), 0);
	struct result res = {0};
	ASSERT_EQ(fx_get(&f, &res, "http", "127.0.0.1", "/partial", NULL, 0, 300, 0), 0);
	ASSERT_EQ(fx_finish(&f), 0);
	ASSERT_EQ(res.calls, 1);
	ASSERT_EQ(res.err, -ETIMEDOUT);
	ASSERT_STR_EQ(res.msg, "timed out after 300 ms");
}

static void connection_refused(void)
{
	struct fx f;
	ASSERT_EQ(fx_init(&f, "127.0.0.1", false), 0);
	/* A port bound and closed again, so nothing listens there. */
	uv_tcp_t t;
	uv_tcp_init(&f.loop, &t);
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);
	uv_tcp_bind(&t, (struct sockaddr *)&a, 0);
	struct sockaddr_in got;
	int len = sizeof(got);
	uv_tcp_getsockname(&t, (struct sockaddr *)&got, &len);
	uv_close((uv_handle_t *)&t, NULL);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", ntohs(got.sin_port));
	struct httpc_request req = {.url = url};
	struct result res = {.f = &f};
	ASSERT_EQ(httpc_get(&f.loop, f.ctx, NULL, &req, on_result, &res, &res.call), 0);
	f.pending++;
	ASSERT_EQ(res.calls, 0);
	ASSERT_EQ(fx_finish(&f), 0);
	ASSERT_EQ(res.calls, 1);
	printf("# %s\n", res.msg);
	ASSERT_EQ(res.err, UV_ECONNREFUSED);
	char want[96];
	snprintf(want, sizeof(want), "connect 127.0.0.1 port %d: ", ntohs(got.sin_port));
	ASSERT(strstr(res.msg, want) == res.msg);
}

static void on_cancel_timer(uv_timer_t *t);

/*
 * A blackhole on loopback, as test_net.c makes one: a listening socket with backlog 0 whose
 * queue is already full, so the kernel drops further SYNs and a connect just hangs.
 */
struct blackhole {
	int lfd, filler, port;
};

static int blackhole_open(struct blackhole *b)
{
	b->lfd = b->filler = -1;
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.2", 0, &a);
	b->lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (b->lfd < 0 || bind(b->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(b->lfd, 0) < 0)
		return -errno;
	socklen_t len = sizeof(a);
	getsockname(b->lfd, (struct sockaddr *)&a, &len);
	b->port = ntohs(a.sin_port);
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

/* The whole-exchange clock also bounds a connect that never completes: its words, not
 * net's per-address timeout, reach the caller. */
static void connect_hangs(bool cancel)
{
	struct blackhole bh;
	int rc = blackhole_open(&bh);
	if (rc < 0) {
		blackhole_close(&bh);
		SKIP("no blackhole on 127.0.0.2: %s", strerror(-rc));
	}
	struct fx f;
	ASSERT_EQ(fx_init(&f, "127.0.0.1", false), 0);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.2:%d/", bh.port);
	struct httpc_request req = {.url = url, .timeout_ms = 400};
	struct result res = {.f = &f, .t0 = uv_hrtime()};
	ASSERT_EQ(httpc_get(&f.loop, f.ctx, NULL, &req, on_result, &res, &res.call), 0);
	f.pending++;
	if (cancel) {
		f.cancel_timer.data = &res;
		uv_timer_start(&f.cancel_timer, on_cancel_timer, 150, 0);
	}
	rc = fx_finish(&f);
	blackhole_close(&bh);
	ASSERT_EQ(rc, 0);
	if (cancel) {
		ASSERT_EQ(res.calls, 0);
		return;
	}
	ASSERT_EQ(res.calls, 1);
	ASSERT_EQ(res.err, -ETIMEDOUT);
	ASSERT_STR_EQ(res.msg, "timed out after 400 ms");
}

static void timeout_while_connecting(void)
{
	connect_hangs(false);
}

static void cancel_while_connecting(void)
{
	connect_hangs(true);
}

/* ---- cancel ---- */

static void cancel_before_connect(void)
{
	static const char *const hosts[] = {"127.0.0.1", "localhost"};
	for (size_t i = 0; i < 2; i++) {
		struct fx f;
		ASSERT_EQ(fx_init(&f, "127.0.0.1", false), 0);
		struct result res = {0};
		ASSERT_EQ(fx_get(&f, &res, "http", hosts[i], "/cl", NULL, 0, 5000, 0), 0);
		httpc_cancel(res.call);
		fx_call_ended(&f);
		ASSERT_EQ(fx_finish(&f), 0);
		ASSERT_EQ(res.calls, 0);
		ASSERT_EQ(f.srv.requests, 0);
	}
}

static void on_cancel_timer(uv_timer_t *t)
{
	struct result *res = t->data;
	httpc_cancel(res->call);
	httpc_cancel(res->call); /* the second one is a no-op */
	fx_call_ended(res->f);
}

/* Cancel 200 ms in, by which time the call is in the state the server leaves it in. */
static void cancel_later(bool https, const char *path, struct fx *f, struct result *res)
{
	memset(res, 0, sizeof(*res));
	if (fx_init(f, "127.0.0.1", false) < 0 ||
	    fx_get(f, res, https ? "https" : "http", "localhost", path, NULL, 0, 5000, 0) < 0) {
		res->err = -9999;
		return;
	}
	f->cancel_timer.data = res;
	uv_timer_start(&f->cancel_timer, on_cancel_timer, 200, 0);
	if (fx_finish(f) != 0)
		res->err = -9998;
}

static void cancel_mid_response(void)
{
	struct fx f;
	struct result res;
	cancel_later(false, "/partial", &f, &res);
	ASSERT_EQ(res.err, 0);
	ASSERT_EQ(res.calls, 0);
	ASSERT_EQ(f.srv.requests, 1);
}

/* A plain server behind an https URL never answers the ClientHello. */
static void cancel_during_tls_handshake(void)
{
	struct fx f;
	struct result res;
	cancel_later(true, "/cl", &f, &res);
	ASSERT_EQ(res.err, 0);
	ASSERT_EQ(res.calls, 0);
	ASSERT_EQ(f.srv.accepted, 1);
	ASSERT_EQ(f.srv.requests, 0);
}

static void cancel_from_another_calls_cb(void)
{
	struct fx f;
	ASSERT_EQ(fx_init(&f, "127.0.0.1", false), 0);
	struct result a = {0}, b = {0};
	ASSERT_EQ(fx_get(&f, &b, "http", "127.0.0.1", "/never", NULL, 0, 5000, 0), 0);
	ASSERT_EQ(fx_get(&f, &a, "http", "127.0.0.1", "/cl-dribble", NULL, 0, 5000, 0), 0);
	a.cancel = b.call;
	a.cancel_self = true;
	ASSERT_EQ(fx_finish(&f), 0);
	ASSERT_EQ(a.calls, 1);
	ASSERT_EQ(a.err, 0);
	ASSERT_STR_EQ(a.body, "{\"code\":0,\"x\":1}");
	ASSERT_EQ(b.calls, 0);
	ASSERT_EQ(f.srv.requests, 2);
}

/* A cb that starts the next call (as a caller chaining nav, then room_init, would). */
struct chain {
	struct result first, second;
};

static void on_first(void *ud, int err, const struct httpc_response *r, const char *msg)
{
	struct chain *ch = ud;
	struct fx *f = ch->first.f;
	/* Started before on_result ends the first call, so the server is still up. */
	if (fx_get(f, &ch->second, "http", "127.0.0.1", "/404", NULL, 0, 5000, 0) != 0)
		ch->second.err = -9999;
	on_result(&ch->first, err, r, msg);
}

static void chained_call_from_cb(void)
{
	struct fx f;
	ASSERT_EQ(fx_init(&f, "127.0.0.1", false), 0);
	struct chain ch;
	memset(&ch, 0, sizeof(ch));
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/cl", f.srv.port);
	struct httpc_request req = {.url = url};
	ch.first.f = &f;
	ASSERT_EQ(httpc_get(&f.loop, f.ctx, NULL, &req, on_first, &ch, &ch.first.call), 0);
	f.pending++;
	ASSERT_EQ(fx_finish(&f), 0);
	ASSERT_EQ(ch.first.calls, 1);
	ASSERT_EQ(ch.first.status, 200);
	ASSERT_EQ(ch.second.calls, 1);
	ASSERT_EQ(ch.second.err, 0);
	ASSERT_EQ(ch.second.status, 404);
	ASSERT_EQ(f.srv.requests, 2);
}

/* ---- https ---- */

static void https_success(void)
{
	static const char *const paths[] = {"/cl", "/chunked-dribble", "/close"};
	static const char *const bodies[] = {"{\"code\":0,\"x\":1}", "hello world",
					     "close-delimited body"};
	for (size_t i = 0; i < 3; i++) {
		struct fx f;
		ASSERT_EQ(fx_init(&f, "127.0.0.1", true), 0);
		static const char *const headers[] = {"Cookie: a=b"};
		struct result res = {0};
		ASSERT_EQ(fx_get(&f, &res, "https", "localhost", paths[i], headers, 1, 5000, 0),
			  0);
		ASSERT_EQ(fx_finish(&f), 0);
		ASSERT_EQ(res.calls, 1);
		if (res.err)
			printf("# %s: %s\n", paths[i], res.msg);
		ASSERT_EQ(res.err, 0);
		ASSERT_EQ(res.status, 200);
		ASSERT_STR_EQ(res.body, bodies[i]);
		ASSERT_EQ(f.srv.tls_failures, 0);
		char want[256];
		snprintf(want, sizeof(want),
			 "GET %s HTTP/1.1\r\nHost: localhost:%d\r\nCookie: a=b\r\n"
			 "Connection: close\r\n\r\n",
			 paths[i], f.srv.port);
		ASSERT_STR_EQ(f.srv.last_req, want);
	}
}

/* Under TLS a FIN without close_notify does not end a close-delimited body. */
static void https_close_without_notify(void)
{
	struct fx f;
	ASSERT_EQ(fx_init(&f, "127.0.0.1", true), 0);
	struct result res = {0};
	ASSERT_EQ(fx_get(&f, &res, "https", "localhost", "/close-no-notify", NULL, 0, 5000, 0), 0);
	ASSERT_EQ(fx_finish(&f), 0);
	ASSERT_EQ(res.calls, 1);
	printf("# %s\n", res.msg);
	ASSERT_EQ(res.err, -EPROTO);
	ASSERT(strstr(res.msg, "tls: ") == res.msg);
	ASSERT(strstr(res.msg, "close_notify") != NULL);
}

static void https_wrong_host(void)
{
	struct fx f;
	ASSERT_EQ(fx_init(&f, "127.0.0.1", true), 0);
	struct result res = {0};
	/* The certificate is for localhost only. */
	ASSERT_EQ(fx_get(&f, &res, "https", "127.0.0.1", "/cl", NULL, 0, 5000, 0), 0);
	ASSERT_EQ(fx_finish(&f), 0);
	ASSERT_EQ(res.calls, 1);
	printf("# %s\n", res.msg);
	ASSERT_EQ(res.err, -EBADMSG);
	ASSERT(strstr(res.msg, "tls: certificate verify failed") == res.msg);
	ASSERT_EQ(f.srv.requests, 0);
}

int main(void)
{
	int rc = certs_setup();
	if (rc != 0) {
		printf("Bail out! test certificate setup failed: -0x%04x\n", (unsigned)-rc);
		return 1;
	}
	static char bighead[20100];
	snprintf(bighead, sizeof(bighead), "HTTP/1.1 200 OK\r\nX-Pad: %020000d\r\n\r\n", 0);
	p_bighead[0] = bighead;

	RUN(url_good);
	RUN(url_bad);
	RUN(content_length_body);
	RUN(content_length_body_dribbled);
	RUN(chunked_body);
	RUN(close_delimited_body);
	RUN(body_at_bound);
	RUN(body_over_bound);
	RUN(redirect_not_followed);
	RUN(not_found_is_a_response);
	RUN(head_too_large);
	RUN(garbage_status_line);
	RUN(peer_closes_early);
	RUN(unknown_host);
	RUN(request_bytes_exact);
	RUN_OR_SKIP(request_ipv6_literal);
	RUN(error_never_names_header_values);
	RUN(refused_at_once);
	RUN(timeout_bounds_the_exchange);
	RUN(timeout_mid_body);
	RUN(connection_refused);
	RUN_OR_SKIP(timeout_while_connecting);
	RUN_OR_SKIP(cancel_while_connecting);
	RUN(cancel_before_connect);
	RUN(cancel_mid_response);
	RUN(cancel_during_tls_handshake);
	RUN(cancel_from_another_calls_cb);
	RUN(chained_call_from_cb);
	RUN(https_success);
	RUN(https_close_without_notify);
	RUN(https_wrong_host);
	certs_teardown();
	TEST_DONE();
}
