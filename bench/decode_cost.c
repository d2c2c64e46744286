/*
 * decode_cost: CPU per message of danmakud's Douyu receive path without SQLite: TLS (our
 * tls.c over mbedTLS, AES-256-GCM as danmuproxy and the flood server use) -> websocket (ws.c
 * over wslay) -> Douyu packets -> STT -> JSON -> the struct record that rec.c would hand to
 * store_append(). Everything runs in memory through the real modules, in the order room.c
 * calls them (64 KiB ciphertext reads as net.c's buffer, tls_read into a 16 KiB buffer,
 * ws_feed, platform feed); no network, no SQLite and no store queue. The kernel's share of
 * reading the socket is therefore not included (one read per 64 KiB).
 *
 * The messages are the ones bench/flood_server.js sends: every server packet of the
 * S13-live capture and every server sample of douyu-samples.tsv, minus control traffic,
 * rewritten per room (rid = the room, a unique 32-character cid for each chatmsg, a 13-digit
 * bts in every message), round robin, PER_FRAME packets per websocket binary frame, one TLS
 * record per frame. The server side of TLS is an in-process mbedTLS server.
 *
 * Stages, each timed alone on the same bytes (CPU time of this process, best of REPS runs):
 *   full    ciphertext -> records, the whole path
 *   tls     ciphertext -> plaintext (tls_feed + tls_read), discarded
 *   ws      plaintext websocket frames -> records (ws_feed, wslay, platform feed)
 *   douyu   the frames' payloads -> records (douyu_platform feed alone)
 * A first untimed run checks every record: the lengths equal strlen of the strings (exit 2
 * when one does not). bench/decode_cost.py attributes the same path inside the running daemon.
 *
 * Build and run (from the source root, after a release build in build-bench/, which is what
 * bench/run uses: meson setup build-bench --buildtype=release -Dtests=false
 * --wrap-mode=nodownload && ninja -C build-bench):
 *   cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Iinclude bench/decode_cost.c \
 *      build-bench/libcore.a -lmbedtls -lmbedx509 -lmbedcrypto -lcrypto -lwslay -luv \
 *      -lsqlite3 -lcares -lz -lbrotlidec -ljansson -lm -o /tmp/decode_cost
 *   /tmp/decode_cost [MESSAGES] [PER_FRAME] [REPS] [SHARED_DIR] [STAGE]
 * MESSAGES defaults to 200000, PER_FRAME to 16, REPS to 5, SHARED_DIR to ../shared; STAGE
 * (full, tls, ws or douyu) runs only that stage, e.g. under perf record. tls.c decrypts with
 * libcrypto after the handshake (tls_offload=1 in the first line of output); run with
 * DANMAKUD_TLS_NO_OFFLOAD=1 to time mbedTLS's record decryption instead.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/x509_crt.h>

#include "buf.h"
#include "platform.h"
#include "record.h"
#include "tls.h"
#include "ws.h"

#define ROOM 1001
#define READ_SIZE (64 * 1024) /* net.c's read buffer */
#define PLAIN_SIZE 16384      /* room.c's tls_read buffer */

static void die(const char *what, int rc)
{
	fprintf(stderr, "decode_cost: %s (%d)\n", what, rc);
	exit(1);
}

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- message shapes, as flood_server.js builds them ---- */

struct shape {
	char *body; /* escaped wire text, rewritten for ROOM */
	size_t len;
	long cid_at, bts_at; /* offsets in body; cid_at -1: no cid */
};

static struct shape *shapes;
static size_t n_shapes, cap_shapes;

static bool seg_key_is(const char *seg, size_t klen, const char *k)
{
	return klen == strlen(k) && memcmp(seg, k, klen) == 0;
}

static void keep(const char *body, size_t len)
{
	static const char *const skip[] = {"loginres", "pingreq", "mrkl",      "keeplive",
					   "error",    "loginreq", "joingroup", "logout"};
	/* First pass: the type (first "type" pair). */
	const char *type = NULL;
	size_t tlen = 0;
	for (const char *p = body, *end = body + len; p < end;) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *se = slash ? slash : end;
		const char *at = NULL;
		for (const char *q = p; q + 1 < se; q++)
			if (q[0] == '@' && q[1] == '=') {
				at = q;
				break;
			}
		if (at && at > p && seg_key_is(p, (size_t)(at - p), "type") && !type) {
			type = at + 2;
			tlen = (size_t)(se - type);
		}
		p = se + 1;
	}
	if (!type)
		return;
	for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
		if (tlen == strlen(skip[i]) && memcmp(type, skip[i], tlen) == 0)
			return;
	bool chat = tlen == 7 && memcmp(type, "chatmsg", 7) == 0;
	struct buf b;
	buf_init(&b);
	long cid_at = -1;
	char room[32];
	snprintf(room, sizeof(room), "%d", ROOM);
	for (const char *p = body, *end = body + len; p < end;) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *se = slash ? slash : end;
		const char *at = NULL;
		for (const char *q = p; q + 1 < se; q++)
			if (q[0] == '@' && q[1] == '=') {
				at = q;
				break;
			}
		if (at && at > p) {
			size_t kl = (size_t)(at - p);
			if (seg_key_is(p, kl, "bts")) {
				/* dropped: every message gets its own below */
			} else if (seg_key_is(p, kl, "rid")) {
				buf_printf(&b, "rid@=%s/", room);
			} else if (seg_key_is(p, kl, "cid") && chat && cid_at < 0) {
				buf_append_str(&b, "cid@=");
				cid_at = (long)b.len;
				buf_append_str(&b, "00000000000000000000000000000000/");
			} else {
				buf_append(&b, p, (size_t)(se - p));
				buf_append_str(&b, "/");
			}
		}
		p = se + 1;
	}
	if (chat && cid_at < 0) {
		buf_append_str(&b, "cid@=");
		cid_at = (long)b.len;
		buf_append_str(&b, "00000000000000000000000000000000/");
	}
	buf_append_str(&b, "bts@=");
	long bts_at = (long)b.len;
	buf_append_str(&b, "1700000000000/");
	if (n_shapes == cap_shapes) {
		cap_shapes = cap_shapes ? cap_shapes * 2 : 256;
		shapes = realloc(shapes, cap_shapes * sizeof(*shapes));
		if (!shapes)
			die("out of memory", -ENOMEM);
	}
	shapes[n_shapes++] = (struct shape){
	    .body = (char *)buf_head(&b), .len = b.len, .cid_at = cid_at, .bts_at = bts_at};
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		exit(1);
	}
	struct buf b;
	buf_init(&b);
	char tmp[65536];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_append(&b, tmp, n);
	fclose(f);
	buf_append(&b, "", 1);
	*len = b.len - 1;
	return (char *)buf_head(&b);
}

static uint32_t get_u32le(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void load_shapes(const char *shared)
{
	char path[4096];
	size_t len;
	/* The capture: base64 frames, one JSON object a line; server packets in order. */
	snprintf(path, sizeof(path), "%s/fixtures/douyu/danmaku/S13-live/frames.jsonl", shared);
	char *text = slurp(path, &len);
	struct buf in;
	buf_init(&in);
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		char *b64 = strstr(line, "\"b64\":\"");
		if (strstr(line, "\"dir\":\"in\"") && b64) {
			b64 += 7;
			char *q = strchr(b64, '"');
			size_t olen = 0;
			if (buf_reserve(&in, (size_t)(q - b64)) < 0 ||
			    mbedtls_base64_decode(buf_head(&in) + in.len, (size_t)(q - b64), &olen,
						  (const unsigned char *)b64, (size_t)(q - b64)))
				die("bad base64 in frames.jsonl", -EINVAL);
			in.len += olen;
		}
		line = nl ? nl + 1 : NULL;
	}
	const uint8_t *p = buf_head(&in);
	for (size_t off = 0; off + 12 <= in.len;) {
		uint32_t l = get_u32le(p + off);
		if (l < 9 || off + 4 + l > in.len)
			break;
		keep((const char *)p + off + 12, l - 9);
		off += 4 + l;
	}
	buf_finish(&in);
	free(text);
	snprintf(path, sizeof(path), "%s/douyu-samples.tsv", shared);
	text = slurp(path, &len);
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		char *tab = strchr(line, '\t');
		if (tab)
			*tab = '\0';
		if (strstr(line, "@="))
			keep(line, strlen(line));
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	if (!n_shapes)
		die("no message shapes", -ENOENT);
}

/* ---- the websocket stream ---- */

struct frame {
	size_t off, len;       /* the whole frame in plain */
	size_t pay_off, pay_len; /* its payload */
};

static struct buf plain; /* every frame, back to back */
static struct frame *frames;
static size_t n_frames;

static void put_packet(struct buf *b, const struct shape *s, size_t seq)
{
	uint32_t l = (uint32_t)(8 + s->len + 1);
	uint8_t hdr[12] = {(uint8_t)l, (uint8_t)(l >> 8), (uint8_t)(l >> 16), (uint8_t)(l >> 24),
			   (uint8_t)l, (uint8_t)(l >> 8), (uint8_t)(l >> 16), (uint8_t)(l >> 24),
			   0xb2,       0x02,           0,  0};
	buf_append(b, hdr, 12);
	size_t body = b->len;
	buf_append(b, s->body, s->len);
	buf_append(b, "", 1);
	char *o = (char *)buf_head(b) + body;
	if (s->cid_at >= 0) {
		char cid[33];
		snprintf(cid, sizeof(cid), "%032zx", seq);
		memcpy(o + s->cid_at, cid, 32);
	}
	char bts[14];
	snprintf(bts, sizeof(bts), "%013llu", 1700000000000ull + seq);
	memcpy(o + s->bts_at, bts, 13);
}

static void build_stream(size_t messages, size_t per_frame)
{
	buf_init(&plain);
	n_frames = (messages + per_frame - 1) / per_frame;
	frames = calloc(n_frames, sizeof(*frames));
	struct buf pay;
	buf_init(&pay);
	size_t seq = 0;
	for (size_t f = 0; f < n_frames; f++) {
		buf_clear(&pay);
		for (size_t k = 0; k < per_frame && seq < messages; k++, seq++)
			put_packet(&pay, &shapes[seq % n_shapes], seq);
		uint8_t hdr[10];
		size_t hl;
		hdr[0] = 0x82; /* FIN, binary; server frames are not masked */
		if (pay.len < 126) {
			hdr[1] = (uint8_t)pay.len;
			hl = 2;
		} else if (pay.len < 65536) {
			hdr[1] = 126;
			hdr[2] = (uint8_t)(pay.len >> 8);
			hdr[3] = (uint8_t)pay.len;
			hl = 4;
		} else {
			hdr[1] = 127;
			for (int i = 0; i < 8; i++)
				hdr[2 + i] = (uint8_t)((uint64_t)pay.len >> (56 - 8 * i));
			hl = 10;
		}
		frames[f].off = plain.len;
		buf_append(&plain, hdr, hl);
		frames[f].pay_off = plain.len;
		frames[f].pay_len = pay.len;
		buf_append(&plain, buf_head(&pay), pay.len);
		frames[f].len = plain.len - frames[f].off;
	}
	buf_finish(&pay);
}

/* ---- the record sink: what rec.c's on_record would get ---- */

static size_t n_records;
static size_t sum_len;
static bool check_lengths;
static size_t bad_lengths;

static void on_record(void *user_data, const struct record *rec)
{
	(void)user_data;
	n_records++;
	sum_len += rec->data_len + rec->type_len + rec->nick_len + rec->text_len + rec->cid_len;
	if (!check_lengths)
		return;
	/* The store trusts these: each must be exact (0 only for "" or NULL). */
	if (rec->type_len != strlen(rec->type) ||
	    (rec->nick ? rec->nick_len != strlen(rec->nick) : rec->nick_len != 0) ||
	    (rec->text ? rec->text_len != strlen(rec->text) : rec->text_len != 0) ||
	    (rec->cid ? rec->cid_len != strlen(rec->cid) : rec->cid_len != 0) ||
	    rec->data_len != strlen(rec->data))
		bad_lengths++;
}

static const struct platform_events events = {.on_record = on_record};

/* ---- in-memory TLS server ---- */

static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;
static mbedtls_pk_context srv_key;
static mbedtls_x509_crt srv_crt;
static mbedtls_ssl_config srv_conf;
static struct tls_config *client_conf;
static bool offloaded; /* tls_offloaded() of the last connection */

struct srv {
	mbedtls_ssl_context ssl;
	struct buf in, out;
};

static int srv_send(void *ctx, const unsigned char *p, size_t len)
{
	struct srv *s = ctx;
	return buf_append(&s->out, p, len) < 0 ? MBEDTLS_ERR_SSL_ALLOC_FAILED : (int)len;
}

static int srv_recv(void *ctx, unsigned char *p, size_t len)
{
	struct srv *s = ctx;
	if (s->in.len == 0)
		return MBEDTLS_ERR_SSL_WANT_READ;
	size_t n = len < s->in.len ? len : s->in.len;
	memcpy(p, buf_head(&s->in), n);
	buf_consume(&s->in, n);
	return (int)n;
}

static void tls_setup(void)
{
	static const int suites[] = {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, 0};
	mbedtls_entropy_init(&entropy);
	mbedtls_ctr_drbg_init(&drbg);
	mbedtls_pk_init(&srv_key);
	mbedtls_x509_crt_init(&srv_crt);
	mbedtls_ssl_config_init(&srv_conf);
	int rc = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0);
	if (!rc)
		rc = mbedtls_pk_setup(&srv_key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
	if (!rc)
		rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(srv_key),
					 mbedtls_ctr_drbg_random, &drbg);
	/* Self-signed: the client runs with verification off (--insecure), since the record
	 * layer, not the handshake, is what is measured. */
	mbedtls_x509write_cert w;
	mbedtls_mpi sn;
	mbedtls_x509write_crt_init(&w);
	mbedtls_mpi_init(&sn);
	unsigned char pem[4096];
	if (!rc)
		rc = mbedtls_mpi_lset(&sn, 1);
	if (!rc) {
		mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
		mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
		mbedtls_x509write_crt_set_subject_key(&w, &srv_key);
		mbedtls_x509write_crt_set_issuer_key(&w, &srv_key);
		rc = mbedtls_x509write_crt_set_serial(&w, &sn);
	}
	if (!rc)
		rc = mbedtls_x509write_crt_set_validity(&w, "20200101000000", "20491231235959");
	if (!rc)
		rc = mbedtls_x509write_crt_set_subject_name(&w, "CN=localhost");
	if (!rc)
		rc = mbedtls_x509write_crt_set_issuer_name(&w, "CN=localhost");
	if (!rc)
		rc = mbedtls_x509write_crt_pem(&w, pem, sizeof(pem), mbedtls_ctr_drbg_random, &drbg);
	if (!rc)
		rc = mbedtls_x509_crt_parse(&srv_crt, pem, strlen((char *)pem) + 1);
	mbedtls_x509write_crt_free(&w);
	mbedtls_mpi_free(&sn);
	if (!rc)
		rc = mbedtls_ssl_config_defaults(&srv_conf, MBEDTLS_SSL_IS_SERVER,
						 MBEDTLS_SSL_TRANSPORT_STREAM,
						 MBEDTLS_SSL_PRESET_DEFAULT);
	if (rc)
		die("tls server setup", rc);
	mbedtls_ssl_conf_rng(&srv_conf, mbedtls_ctr_drbg_random, &drbg);
	mbedtls_ssl_conf_ciphersuites(&srv_conf, suites);
	mbedtls_ssl_conf_max_version(&srv_conf, MBEDTLS_SSL_MAJOR_VERSION_3,
				     MBEDTLS_SSL_MINOR_VERSION_3);
	if ((rc = mbedtls_ssl_conf_own_cert(&srv_conf, &srv_crt, &srv_key)))
		die("tls server cert", rc);
	char err[256];
	if ((rc = tls_config_create(NULL, true, &client_conf, err, sizeof(err))))
		die(err, rc);
}

/* A client and a server with the handshake done. */
static void tls_pair(struct tls **c, struct srv *s)
{
	mbedtls_ssl_init(&s->ssl);
	buf_init(&s->in);
	buf_init(&s->out);
	int rc = mbedtls_ssl_setup(&s->ssl, &srv_conf);
	if (rc)
		die("mbedtls_ssl_setup", rc);
	mbedtls_ssl_set_bio(&s->ssl, s, srv_send, srv_recv, NULL);
	if ((rc = tls_create(client_conf, "localhost", c)))
		die("tls_create", rc);
	bool cdone = false, sdone = false;
	for (int i = 0; i < 100 && !(cdone && sdone); i++) {
		if (!cdone) {
			rc = tls_handshake(*c);
			if (rc == 0)
				cdone = true;
			else if (rc != -EAGAIN)
				die(tls_last_error(*c), rc);
		}
		struct buf *o = tls_pending_out(*c);
		buf_append(&s->in, buf_head(o), o->len);
		buf_clear(o);
		if (!sdone) {
			rc = mbedtls_ssl_handshake(&s->ssl);
			if (rc == 0)
				sdone = true;
			else if (rc != MBEDTLS_ERR_SSL_WANT_READ && rc != MBEDTLS_ERR_SSL_WANT_WRITE)
				die("server handshake", rc);
		}
		if (s->out.len) {
			tls_feed(*c, buf_head(&s->out), s->out.len);
			buf_clear(&s->out);
		}
	}
	if (!(cdone && sdone))
		die("handshake did not finish", -EPROTO);
	if (strcmp(tls_ciphersuite(*c), "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384") != 0)
		die(tls_ciphersuite(*c), -EPROTO);
	offloaded = tls_offloaded(*c);
}

static void srv_finish(struct srv *s)
{
	mbedtls_ssl_free(&s->ssl);
	buf_finish(&s->in);
	buf_finish(&s->out);
}

/* The server writes data as one record (mbedTLS splits at 16 KiB). */
static void srv_write(struct srv *s, const uint8_t *data, size_t len)
{
	while (len > 0) {
		int rc = mbedtls_ssl_write(&s->ssl, data, len);
		if (rc <= 0)
			die("server write", rc);
		data += rc;
		len -= (size_t)rc;
	}
}

/* ---- one connection's client side, as room.c wires it ---- */

struct conn {
	struct tls *tls; /* NULL: plaintext websocket */
	struct ws *ws;
	struct platform_session *ps;
	struct buf scratch; /* rec's scratch: replies the platform queues */
	struct buf sent;    /* what the websocket sent, when there is no TLS */
};

static int ws_send_cb(void *user_data, const uint8_t *data, size_t len)
{
	struct conn *c = user_data;
	if (c->tls)
		return tls_write(c->tls, data, len);
	return buf_append(&c->sent, data, len);
}

static int ws_data_cb(void *user_data, const uint8_t *data, size_t len, bool binary)
{
	struct conn *c = user_data;
	(void)binary;
	int rc = douyu_platform.feed(c->ps, 1700000000000, 1, data, len, &c->scratch);
	buf_clear(&c->scratch);
	return rc < 0 ? rc : 0;
}

static const struct ws_callbacks ws_cb = {.send = ws_send_cb, .on_data = ws_data_cb};

/* The server's answer to the upgrade request in req. */
static void upgrade_response(const uint8_t *req, size_t len, struct buf *out)
{
	const char *k = NULL;
	for (size_t i = 0; i + 19 <= len && !k; i++)
		if (memcmp(req + i, "Sec-WebSocket-Key: ", 19) == 0)
			k = (const char *)req + i + 19;
	if (!k)
		die("no Sec-WebSocket-Key", -EPROTO);
	const char *e = memchr(k, '\r', len - (size_t)(k - (const char *)req));
	char key[64];
	snprintf(key, sizeof(key), "%.*s", (int)(e - k), k);
	char acc[29];
	ws_accept_for_key(key, acc);
	buf_printf(out,
		   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		   acc);
}

static void conn_open(struct conn *c, struct tls *tls, struct srv *s)
{
	memset(c, 0, sizeof(*c));
	c->tls = tls;
	buf_init(&c->scratch);
	buf_init(&c->sent);
	int rc = douyu_platform.session_create(ROOM, NULL, &events, c, &c->ps);
	if (!rc)
		rc = ws_create("localhost", "/", 0, &ws_cb, c, &c->ws);
	if (!rc)
		rc = ws_start(c->ws);
	if (rc)
		die("websocket setup", rc);
	struct buf resp;
	buf_init(&resp);
	if (tls) {
		struct buf *o = tls_pending_out(tls);
		buf_append(&s->in, buf_head(o), o->len);
		buf_clear(o);
		uint8_t req[4096];
		int n = mbedtls_ssl_read(&s->ssl, req, sizeof(req));
		if (n <= 0)
			die("server read", n);
		upgrade_response(req, (size_t)n, &resp);
		srv_write(s, buf_head(&resp), resp.len);
		tls_feed(tls, buf_head(&s->out), s->out.len);
		buf_clear(&s->out);
		uint8_t p[4096];
		ssize_t pn = tls_read(tls, p, sizeof(p));
		if (pn <= 0)
			die("client read", (int)pn);
		rc = ws_feed(c->ws, p, (size_t)pn);
	} else {
		upgrade_response(buf_head(&c->sent), c->sent.len, &resp);
		rc = ws_feed(c->ws, buf_head(&resp), resp.len);
	}
	buf_finish(&resp);
	if (rc || !ws_is_open(c->ws))
		die("websocket upgrade", rc);
}

static void conn_close(struct conn *c)
{
	ws_destroy(c->ws);
	douyu_platform.session_destroy(c->ps);
	tls_destroy(c->tls);
	buf_finish(&c->scratch);
	buf_finish(&c->sent);
}

/* ---- the stages ---- */

enum stage { FULL, TLS_ONLY, WS, DOUYU };
static const char *const stage_name[] = {"full", "tls", "ws", "douyu"};

/* Ciphertext of the whole stream, one record per frame, for a fresh connection. */
static void encrypt_stream(struct srv *s, struct buf *cipher)
{
	for (size_t f = 0; f < n_frames; f++)
		srv_write(s, buf_head(&plain) + frames[f].off, frames[f].len);
	buf_clear(cipher);
	buf_append(cipher, buf_head(&s->out), s->out.len);
	buf_clear(&s->out);
}

/* Returns the CPU seconds of one run of the stage. */
static double run(enum stage st)
{
	struct buf cipher;
	buf_init(&cipher);
	struct tls *tls = NULL;
	struct srv s;
	struct conn c;
	if (st == FULL || st == TLS_ONLY) {
		tls_pair(&tls, &s);
		if (st == FULL) {
			conn_open(&c, tls, &s);
		}
		encrypt_stream(&s, &cipher);
	} else {
		conn_open(&c, NULL, NULL);
	}
	static uint8_t out[PLAIN_SIZE];
	size_t plain_seen = 0;
	double t0 = cpu_now();
	switch (st) {
	case FULL:
	case TLS_ONLY:
		for (size_t off = 0; off < cipher.len; off += READ_SIZE) {
			size_t n = cipher.len - off < READ_SIZE ? cipher.len - off : READ_SIZE;
			if (tls_feed(tls, buf_head(&cipher) + off, n) < 0)
				die("tls_feed", -ENOMEM);
			for (;;) {
				ssize_t r = tls_read(tls, out, sizeof(out));
				if (r == -EAGAIN)
					break;
				if (r <= 0)
					die(tls_last_error(tls), (int)r);
				plain_seen += (size_t)r;
				if (st == FULL && ws_feed(c.ws, out, (size_t)r) < 0)
					die(ws_last_error(c.ws), -EPROTO);
			}
		}
		break;
	case WS:
		for (size_t f = 0; f < n_frames; f++)
			if (ws_feed(c.ws, buf_head(&plain) + frames[f].off, frames[f].len) < 0)
				die(ws_last_error(c.ws), -EPROTO);
		break;
	case DOUYU:
		for (size_t f = 0; f < n_frames; f++)
			ws_data_cb(&c, buf_head(&plain) + frames[f].pay_off, frames[f].pay_len, true);
		break;
	}
	double t = cpu_now() - t0;
	if (st == TLS_ONLY && plain_seen != plain.len)
		die("tls stage lost bytes", -EIO);
	if (st != TLS_ONLY)
		conn_close(&c);
	else
		tls_destroy(tls);
	if (st == FULL || st == TLS_ONLY)
		srv_finish(&s);
	buf_finish(&cipher);
	return t;
}

int main(int argc, char **argv)
{
	size_t messages = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
	size_t per_frame = argc > 2 ? strtoul(argv[2], NULL, 10) : 16;
	int reps = argc > 3 ? atoi(argv[3]) : 5;
	const char *shared = argc > 4 ? argv[4] : "../shared";
	const char *only = argc > 5 ? argv[5] : NULL;
	if (!messages || !per_frame || reps < 1)
		die("usage: decode_cost [MESSAGES] [PER_FRAME] [REPS] [SHARED_DIR] [STAGE]", -EINVAL);
	load_shapes(shared);
	build_stream(messages, per_frame);
	tls_setup();

	/* The check: every message becomes a record, with exact lengths. */
	check_lengths = true;
	n_records = 0;
	run(FULL);
	check_lengths = false;
	printf("shapes=%zu messages=%zu per_frame=%zu wire_bytes_per_msg=%.1f records=%zu "
	       "bad_lengths=%zu tls_offload=%d\n",
	       n_shapes, messages, per_frame, (double)plain.len / messages, n_records, bad_lengths,
	       offloaded);
	if (n_records != messages)
		die("not every message became a record", -EIO);

	for (enum stage st = FULL; st <= DOUYU; st++) {
		if (only && strcmp(only, stage_name[st]) != 0)
			continue;
		double best = 1e30, sum = 0;
		for (int r = 0; r < reps; r++) {
			double t = run(st);
			sum += t;
			if (t < best)
				best = t;
		}
		printf("%-6s ns_per_msg best=%.0f mean=%.0f\n", stage_name[st], best / messages * 1e9,
		       sum / reps / messages * 1e9);
	}
	printf("checksum=%zu\n", sum_len);
	return bad_lengths ? 2 : 0;
}
