/*
 * test_tls: pumps our memory-BIO client against an mbedTLS server context in the same process.
 * The certificates are made at test time with the mbedTLS API: two self-signed EC CAs, and an
 * RSA-2048 server certificate for DNS:localhost (subjectAltName) signed by the first. Keys are
 * generated once per run, because RSA key generation is slow. Ciphertext from the server is
 * handed to the client whole, one byte at a time, or in random slices.
 *
 * Every test runs twice: with inbound records offloaded to tlsrec.c (libcrypto) after a TLS 1.2
 * AES-GCM handshake, and with DANMAKUD_TLS_NO_OFFLOAD=1, where mbedTLS reads everything.
 */
#include "tls.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/bignum.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/rsa.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/x509_crt.h>

#include "../test.h"

static mbedtls_entropy_context g_entropy;
static mbedtls_ctr_drbg_context g_drbg;
static mbedtls_pk_context g_ca1_key, g_ca2_key, g_srv_key;
static mbedtls_x509_crt g_srv_chain; /* server cert (signed by CA1), then CA1 */
static char g_dir[64];
static char g_ca1_path[128], g_ca2_path[128];
static bool g_offload; /* the pass being run: inbound offload expected after AES-GCM */

#define CA1_NAME "CN=danmakud test CA 1,O=danmakud"
#define CA2_NAME "CN=danmakud test CA 2,O=danmakud"
#define SRV_NAME "CN=danmakud test server,O=danmakud"

/* ---- certificate generation ---- */

static int gen_ec_key(mbedtls_pk_context *pk)
{
	mbedtls_pk_init(pk);
	int rc = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
	if (rc == 0)
		rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*pk),
		                         mbedtls_ctr_drbg_random, &g_drbg);
	return rc;
}

static int gen_rsa_key(mbedtls_pk_context *pk)
{
	mbedtls_pk_init(pk);
	int rc = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA));
	if (rc == 0)
		rc = mbedtls_rsa_gen_key(mbedtls_pk_rsa(*pk), mbedtls_ctr_drbg_random, &g_drbg,
		                         2048, 65537);
	return rc;
}

/*
 * Write a certificate as PEM. dns, if set, becomes the only subjectAltName dNSName:
 * mbedTLS 2.28 has no SAN setter, so the extension's DER is built by hand:
 * SEQUENCE { [2] IMPLICIT IA5String dns }.
 */
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
	rc = mbedtls_x509write_crt_set_key_usage(
	    &crt, is_ca ? MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN
	                : MBEDTLS_X509_KU_DIGITAL_SIGNATURE | MBEDTLS_X509_KU_KEY_ENCIPHERMENT);
	if (rc)
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

static int write_file(const char *path, const unsigned char *data)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t n = strlen((const char *)data);
	int rc = fwrite(data, 1, n, f) == n ? 0 : -1;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

static int setup(void)
{
	mbedtls_entropy_init(&g_entropy);
	mbedtls_ctr_drbg_init(&g_drbg);
	mbedtls_x509_crt_init(&g_srv_chain);
	static const char pers[] = "test_tls";
	int rc = mbedtls_ctr_drbg_seed(&g_drbg, mbedtls_entropy_func, &g_entropy,
	                               (const unsigned char *)pers, sizeof(pers) - 1);
	if (rc)
		return rc;
	if ((rc = gen_ec_key(&g_ca1_key)) || (rc = gen_ec_key(&g_ca2_key)) ||
	    (rc = gen_rsa_key(&g_srv_key)))
		return rc;

	static unsigned char ca1[4096], ca2[4096], srv[4096];
	if ((rc = make_cert(&g_ca1_key, CA1_NAME, &g_ca1_key, CA1_NAME, true, NULL, 1, ca1,
	                    sizeof(ca1))) ||
	    (rc = make_cert(&g_ca2_key, CA2_NAME, &g_ca2_key, CA2_NAME, true, NULL, 2, ca2,
	                    sizeof(ca2))) ||
	    (rc = make_cert(&g_srv_key, SRV_NAME, &g_ca1_key, CA1_NAME, false, "localhost", 3, srv,
	                    sizeof(srv))))
		return rc;
	if ((rc = mbedtls_x509_crt_parse(&g_srv_chain, srv, strlen((char *)srv) + 1)) ||
	    (rc = mbedtls_x509_crt_parse(&g_srv_chain, ca1, strlen((char *)ca1) + 1)))
		return rc;

	const char *tmp = getenv("TMPDIR");
	snprintf(g_dir, sizeof(g_dir), "%s/test_tls.XXXXXX",
	         tmp && strlen(tmp) < 30 ? tmp : "/tmp");
	if (!mkdtemp(g_dir))
		return -1;
	snprintf(g_ca1_path, sizeof(g_ca1_path), "%s/ca1.pem", g_dir);
	snprintf(g_ca2_path, sizeof(g_ca2_path), "%s/ca2.pem", g_dir);
	if (write_file(g_ca1_path, ca1) || write_file(g_ca2_path, ca2))
		return -1;
	return 0;
}

static void teardown(void)
{
	unlink(g_ca1_path);
	unlink(g_ca2_path);
	rmdir(g_dir);
	mbedtls_x509_crt_free(&g_srv_chain);
	mbedtls_pk_free(&g_srv_key);
	mbedtls_pk_free(&g_ca2_key);
	mbedtls_pk_free(&g_ca1_key);
	mbedtls_ctr_drbg_free(&g_drbg);
	mbedtls_entropy_free(&g_entropy);
}

/* ---- in-memory server ---- */

struct srv {
	mbedtls_ssl_config conf;
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

/* suites: NULL for the defaults. */
static int srv_init(struct srv *s, const int *suites)
{
	mbedtls_ssl_config_init(&s->conf);
	mbedtls_ssl_init(&s->ssl);
	buf_init(&s->in);
	buf_init(&s->out);
	int rc =
	    mbedtls_ssl_config_defaults(&s->conf, MBEDTLS_SSL_IS_SERVER,
	                                MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	if (rc)
		return rc;
	mbedtls_ssl_conf_rng(&s->conf, mbedtls_ctr_drbg_random, &g_drbg);
	if ((rc = mbedtls_ssl_conf_own_cert(&s->conf, &g_srv_chain, &g_srv_key)))
		return rc;
	if (suites) {
		mbedtls_ssl_conf_ciphersuites(&s->conf, suites);
		mbedtls_ssl_conf_max_version(&s->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
		                             MBEDTLS_SSL_MINOR_VERSION_3);
	}
	if ((rc = mbedtls_ssl_setup(&s->ssl, &s->conf)))
		return rc;
	mbedtls_ssl_set_bio(&s->ssl, s, srv_send, srv_recv, NULL);
	return 0;
}

static void srv_finish(struct srv *s)
{
	mbedtls_ssl_free(&s->ssl);
	mbedtls_ssl_config_free(&s->conf);
	buf_finish(&s->in);
	buf_finish(&s->out);
}

/* ---- pumping ---- */

enum split { SPLIT_WHOLE, SPLIT_BYTE, SPLIT_RANDOM };

static size_t chunk_len(enum split mode, uint64_t *seed, size_t avail)
{
	switch (mode) {
	case SPLIT_WHOLE:
		return avail;
	case SPLIT_BYTE:
		return 1;
	case SPLIT_RANDOM: {
		size_t max = avail < 2000 ? avail : 2000;
		return 1 + (size_t)(test_rand(seed) % max);
	}
	}
	return avail;
}

/* Move everything the client produced to the server's input. */
static void c2s(struct tls *c, struct srv *s)
{
	struct buf *o = tls_pending_out(c);
	if (buf_append(&s->in, buf_head(o), o->len) < 0)
		abort();
	buf_consume(o, o->len);
}

/*
 * Run both handshakes to completion or failure. Returns the client's result;
 * *srv_ret is 0 when the server finished, 1 when it still waits, or its mbedTLS error.
 */
static int pump_handshake(struct tls *c, struct srv *s, enum split mode, uint64_t *seed,
                          int *srv_ret)
{
	int crc = -EAGAIN, sret = 1;
	for (int round = 0; round < 50; round++) {
		if (crc == -EAGAIN)
			crc = tls_handshake(c);
		c2s(c, s);
		if (sret == 1) {
			sret = mbedtls_ssl_handshake(&s->ssl);
			if (sret == MBEDTLS_ERR_SSL_WANT_READ || sret == MBEDTLS_ERR_SSL_WANT_WRITE)
				sret = 1;
		}
		while (s->out.len > 0 && crc == -EAGAIN) {
			size_t n = chunk_len(mode, seed, s->out.len);
			if (tls_feed(c, buf_head(&s->out), n) < 0)
				abort();
			buf_consume(&s->out, n);
			crc = tls_handshake(c);
			c2s(c, s);
		}
		/* Let the server see the client's last flight (alerts included). */
		if (crc != -EAGAIN && sret == 1 && s->in.len > 0) {
			sret = mbedtls_ssl_handshake(&s->ssl);
			if (sret == MBEDTLS_ERR_SSL_WANT_READ || sret == MBEDTLS_ERR_SSL_WANT_WRITE)
				sret = 1;
		}
		if ((crc < 0 && crc != -EAGAIN) || sret < 0 || (crc == 0 && sret == 0))
			break;
	}
	*srv_ret = sret;
	return crc;
}

/*
 * Feed the server's pending output to the client in slices, reading plaintext after each
 * slice into got (cap bytes). Returns the number of plaintext bytes, and *last gets the last
 * tls_read result (-EAGAIN normally, 0 after close_notify, or an error).
 */
static size_t s2c_read(struct tls *c, struct srv *s, enum split mode, uint64_t *seed, uint8_t *got,
                       size_t cap, ssize_t *last)
{
	size_t total = 0;
	ssize_t r = -EAGAIN;
	while (s->out.len > 0) {
		size_t n = chunk_len(mode, seed, s->out.len);
		if (tls_feed(c, buf_head(&s->out), n) < 0)
			abort();
		buf_consume(&s->out, n);
		while ((r = tls_read(c, got + total, cap - total)) > 0)
			total += (size_t)r;
		if (r != -EAGAIN)
			break;
	}
	*last = r;
	return total;
}

static int srv_write_all(struct srv *s, const uint8_t *p, size_t len)
{
	while (len > 0) {
		int rc = mbedtls_ssl_write(&s->ssl, p, len);
		if (rc < 0)
			return rc;
		p += rc;
		len -= (size_t)rc;
	}
	return 0;
}

/* Read exactly len plaintext bytes on the server from what is in s->in. */
static int srv_read_all(struct srv *s, uint8_t *p, size_t len)
{
	while (len > 0) {
		int rc = mbedtls_ssl_read(&s->ssl, p, len);
		if (rc <= 0)
			return rc == 0 ? -1 : rc;
		p += rc;
		len -= (size_t)rc;
	}
	return 0;
}

static struct tls_config *make_config(const char *ca, bool insecure)
{
	struct tls_config *cfg;
	char err[256];
	int rc = tls_config_create(ca, insecure, &cfg, err, sizeof(err));
	if (rc < 0) {
		printf("# tls_config_create: %d %s\n", rc, err);
		return NULL;
	}
	return cfg;
}

/* Offloaded exactly when the pass allows it and the suite is AES-GCM. */
static bool want_offload(const struct tls *c)
{
	return g_offload && strstr(tls_ciphersuite(c), "-AES-") &&
	       strstr(tls_ciphersuite(c), "-GCM-");
}

static void fill(uint8_t *p, size_t n, unsigned k)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + k + (i >> 8));
}

/* Server suite lists: AES-GCM, so that the offloaded path is the one exercised. */
static const int gcm128[] = {MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, 0};
static const int gcm256[] = {MBEDTLS_TLS_RSA_WITH_AES_256_GCM_SHA384, 0};

/*
 * Full session: handshake, 50 KB each way, client close_notify seen by the server.
 * suites: the server's list (NULL: mbedTLS's defaults, which pick ChaCha20-Poly1305).
 */
static void session(enum split mode, uint64_t seed, const int *suites)
{
	struct tls_config *cfg = make_config(g_ca1_path, false);
	ASSERT(cfg);
	struct tls *c;
	ASSERT_EQ(tls_create(cfg, "localhost", &c), 0);
	struct srv s;
	ASSERT_EQ(srv_init(&s, suites), 0);

	ASSERT_STR_EQ(tls_ciphersuite(c), "");
	uint8_t one = 1;
	ASSERT_EQ(tls_write(c, &one, 1), -ENOTCONN);
	ASSERT_EQ(tls_read(c, &one, 1), -ENOTCONN);

	int sret;
	int crc = pump_handshake(c, &s, mode, &seed, &sret);
	if (crc != 0)
		printf("# client: %s\n", tls_last_error(c));
	ASSERT_EQ(crc, 0);
	ASSERT_EQ(sret, 0);
	ASSERT(tls_ciphersuite(c)[0] != '\0');
	printf("# %s, offloaded: %d\n", tls_ciphersuite(c), tls_offloaded(c));
	ASSERT_EQ(tls_offloaded(c), want_offload(c));
	ASSERT_EQ(tls_handshake(c), 0);

	enum { N = 50000 };
	static uint8_t tx[N], rx[N + 16];
	fill(tx, N, (unsigned)mode);
	ASSERT_EQ(tls_write(c, tx, N), 0);
	c2s(c, &s);
	memset(rx, 0, sizeof(rx));
	ASSERT_EQ(srv_read_all(&s, rx, N), 0);
	ASSERT_MEM_EQ(rx, tx, N);

	fill(tx, N, 7u + (unsigned)mode);
	ASSERT_EQ(srv_write_all(&s, tx, N), 0);
	ssize_t last;
	memset(rx, 0, sizeof(rx));
	size_t got = s2c_read(c, &s, mode, &seed, rx, sizeof(rx), &last);
	ASSERT_EQ(last, -EAGAIN);
	ASSERT_EQ(got, N);
	ASSERT_MEM_EQ(rx, tx, N);
	ASSERT_EQ(tls_read(c, rx, sizeof(rx)), -EAGAIN);

	tls_close_notify(c);
	c2s(c, &s);
	ASSERT_EQ(mbedtls_ssl_read(&s.ssl, rx, sizeof(rx)), MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);

	srv_finish(&s);
	tls_destroy(c);
	tls_config_destroy(cfg);
}

/* ---- tests ---- */

static void tls_handshake_whole(void)
{
	session(SPLIT_WHOLE, 1, NULL);
	if (!test_cur_failed)
		session(SPLIT_WHOLE, 11, gcm256);
}

static void tls_handshake_one_byte(void)
{
	session(SPLIT_BYTE, 2, gcm128);
}

static void tls_handshake_random_splits(void)
{
	for (uint64_t seed = 1; seed <= 8 && !test_cur_failed; seed++)
		session(SPLIT_RANDOM, seed * 0x9E3779B97F4A7C15ULL, seed % 2 ? gcm128 : gcm256);
}

static void tls_douyu_rsa_suite(void)
{
	static const int suites[] = {MBEDTLS_TLS_RSA_WITH_AES_256_GCM_SHA384, 0};
	struct tls_config *cfg = make_config(g_ca1_path, false);
	ASSERT(cfg);
	struct tls *c;
	ASSERT_EQ(tls_create(cfg, "localhost", &c), 0);
	struct srv s;
	ASSERT_EQ(srv_init(&s, suites), 0);
	int sret;
	uint64_t seed = 3;
	int crc = pump_handshake(c, &s, SPLIT_RANDOM, &seed, &sret);
	if (crc != 0)
		printf("# client: %s\n", tls_last_error(c));
	ASSERT_EQ(crc, 0);
	ASSERT_EQ(sret, 0);
	ASSERT_STR_EQ(tls_ciphersuite(c), "TLS-RSA-WITH-AES-256-GCM-SHA384");
	ASSERT_STR_EQ(mbedtls_ssl_get_version(&s.ssl), "TLSv1.2");
	ASSERT_EQ(tls_offloaded(c), g_offload);

	static const uint8_t msg[] = "type@=loginreq/roomid@=9999/";
	ASSERT_EQ(srv_write_all(&s, msg, sizeof(msg)), 0);
	uint8_t rx[64];
	ssize_t last;
	ASSERT_EQ(s2c_read(c, &s, SPLIT_WHOLE, &seed, rx, sizeof(rx), &last), sizeof(msg));
	ASSERT_MEM_EQ(rx, msg, sizeof(msg));

	srv_finish(&s);
	tls_destroy(c);
	tls_config_destroy(cfg);
}

/* Expect the client to refuse the server's certificate with -EBADMSG and words containing want. */
static void expect_refused(const char *ca, const char *host, const char *want)
{
	struct tls_config *cfg = make_config(ca, false);
	ASSERT(cfg);
	struct tls *c;
	ASSERT_EQ(tls_create(cfg, host, &c), 0);
	struct srv s;
	ASSERT_EQ(srv_init(&s, NULL), 0);
	int sret;
	uint64_t seed = 4;
	int crc = pump_handshake(c, &s, SPLIT_WHOLE, &seed, &sret);
	printf("# client: %s\n", tls_last_error(c));
	ASSERT_EQ(crc, -EBADMSG);
	ASSERT(strstr(tls_last_error(c), "certificate verify failed: ") == tls_last_error(c));
	ASSERT(strstr(tls_last_error(c), want) != NULL);
	ASSERT_STR_EQ(tls_ciphersuite(c), "");
	/* The server heard a fatal alert from us. */
	ASSERT_EQ(sret, MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE);
	/* The failure is sticky. */
	ASSERT_EQ(tls_handshake(c), -EBADMSG);
	uint8_t b;
	ASSERT_EQ(tls_read(c, &b, 1), -EBADMSG);
	ASSERT_EQ(tls_write(c, &b, 1), -EBADMSG);

	srv_finish(&s);
	tls_destroy(c);
	tls_config_destroy(cfg);
}

static void tls_wrong_host(void)
{
	expect_refused(g_ca1_path, "wrong.example", "Common Name (CN) does not match");
}

static void tls_untrusted_ca(void)
{
	expect_refused(g_ca2_path, "localhost", "not correctly signed by the trusted CA");
}

static void tls_insecure_accepts(void)
{
	struct tls_config *cfg = make_config(g_ca2_path, true);
	ASSERT(cfg);
	struct tls *c;
	ASSERT_EQ(tls_create(cfg, "wrong.example", &c), 0);
	struct srv s;
	ASSERT_EQ(srv_init(&s, NULL), 0);
	int sret;
	uint64_t seed = 5;
	ASSERT_EQ(pump_handshake(c, &s, SPLIT_RANDOM, &seed, &sret), 0);
	ASSERT_EQ(sret, 0);
	ASSERT(tls_ciphersuite(c)[0] != '\0');
	srv_finish(&s);
	tls_destroy(c);
	tls_config_destroy(cfg);
}

static void tls_server_close_notify(void)
{
	struct tls_config *cfg = make_config(g_ca1_path, false);
	ASSERT(cfg);
	struct tls *c;
	ASSERT_EQ(tls_create(cfg, "localhost", &c), 0);
	struct srv s;
	ASSERT_EQ(srv_init(&s, gcm256), 0);
	int sret;
	uint64_t seed = 6;
	ASSERT_EQ(pump_handshake(c, &s, SPLIT_WHOLE, &seed, &sret), 0);
	ASSERT_EQ(tls_offloaded(c), g_offload);

	ASSERT_EQ(srv_write_all(&s, (const uint8_t *)"bye", 3), 0);
	ASSERT_EQ(mbedtls_ssl_close_notify(&s.ssl), 0);
	uint8_t rx[16];
	ssize_t last;
	ASSERT_EQ(s2c_read(c, &s, SPLIT_BYTE, &seed, rx, sizeof(rx), &last), 3);
	ASSERT_MEM_EQ(rx, "bye", 3);
	ASSERT_EQ(last, 0);
	ASSERT_EQ(tls_read(c, rx, sizeof(rx)), 0);
	ASSERT_STR_EQ(tls_last_error(c), "peer sent close_notify");

	srv_finish(&s);
	tls_destroy(c);
	tls_config_destroy(cfg);
}

static void tls_peer_alert(void)
{
	/* A server that shares no suite with us answers with handshake_failure, like Douyu did
	 * to clients without static RSA. PSK suites are never offered by our client. */
	static const int suites[] = {MBEDTLS_TLS_PSK_WITH_AES_128_GCM_SHA256, 0};
	struct tls_config *cfg = make_config(g_ca1_path, false);
	ASSERT(cfg);
	struct tls *c;
	ASSERT_EQ(tls_create(cfg, "localhost", &c), 0);
	struct srv s;
	ASSERT_EQ(srv_init(&s, suites), 0);
	int sret;
	uint64_t seed = 7;
	int crc = pump_handshake(c, &s, SPLIT_WHOLE, &seed, &sret);
	printf("# client: %s\n", tls_last_error(c));
	ASSERT_EQ(crc, -ECONNREFUSED);
	ASSERT(sret < 0);
	ASSERT(strstr(tls_last_error(c), "handshake_failure") != NULL);
	srv_finish(&s);
	tls_destroy(c);
	tls_config_destroy(cfg);
}

static void tls_old_version_refused(void)
{
	struct tls_config *cfg = make_config(g_ca1_path, false);
	ASSERT(cfg);
	struct tls *c;
	ASSERT_EQ(tls_create(cfg, "localhost", &c), 0);
	struct srv s;
	ASSERT_EQ(srv_init(&s, NULL), 0);
	mbedtls_ssl_conf_max_version(&s.conf, MBEDTLS_SSL_MAJOR_VERSION_3,
	                             MBEDTLS_SSL_MINOR_VERSION_2);
	int sret;
	uint64_t seed = 8;
	int crc = pump_handshake(c, &s, SPLIT_WHOLE, &seed, &sret);
	printf("# client: %s\n", tls_last_error(c));
	ASSERT(crc < 0 && crc != -EAGAIN);
	srv_finish(&s);
	tls_destroy(c);
	tls_config_destroy(cfg);
}

static void tls_garbage(void)
{
	struct tls_config *cfg = make_config(g_ca1_path, false);
	ASSERT(cfg);

	/* An HTTP answer where a ServerHello belongs. */
	struct tls *c;
	ASSERT_EQ(tls_create(cfg, "localhost", &c), 0);
	ASSERT_EQ(tls_handshake(c), -EAGAIN);
	ASSERT_GT(tls_pending_out(c)->len, 0);
	static const char http[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
	ASSERT_EQ(tls_feed(c, (const uint8_t *)http, sizeof(http) - 1), 0);
	int rc = tls_handshake(c);
	printf("# client: %s\n", tls_last_error(c));
	ASSERT(rc < 0 && rc != -EAGAIN);
	ASSERT_EQ(tls_handshake(c), rc);
	ASSERT(strlen(tls_last_error(c)) > 0);
	tls_destroy(c);

	/* Random bytes, one at a time, into fresh clients. */
	uint64_t seed = 0x1234567;
	for (int i = 0; i < 64; i++) {
		ASSERT_EQ(tls_create(cfg, "localhost", &c), 0);
		ASSERT_EQ(tls_handshake(c), -EAGAIN);
		size_t n = 1 + (size_t)(test_rand(&seed) % 300);
		rc = -EAGAIN;
		for (size_t k = 0; k < n && rc == -EAGAIN; k++) {
			uint8_t b = (uint8_t)test_rand(&seed);
			/* Half the runs start like a real handshake record to get deeper. */
			if (i % 2 && k < 3)
				b = (uint8_t[]){0x16, 0x03, 0x03}[k];
			ASSERT_EQ(tls_feed(c, &b, 1), 0);
			rc = tls_handshake(c);
		}
		ASSERT(rc == -EAGAIN || rc < 0);
		tls_destroy(c);
	}

	/* A forged application-data record inside an established session. */
	ASSERT_EQ(tls_create(cfg, "localhost", &c), 0);
	struct srv s;
	ASSERT_EQ(srv_init(&s, gcm128), 0);
	int sret;
	ASSERT_EQ(pump_handshake(c, &s, SPLIT_WHOLE, &seed, &sret), 0);
	ASSERT_EQ(tls_offloaded(c), g_offload);
	uint8_t rec[5 + 64] = {0x17, 0x03, 0x03, 0x00, 64};
	for (size_t k = 5; k < sizeof(rec); k++)
		rec[k] = (uint8_t)test_rand(&seed);
	ASSERT_EQ(tls_feed(c, rec, sizeof(rec)), 0);
	uint8_t rx[128];
	ssize_t r = tls_read(c, rx, sizeof(rx));
	printf("# client: %s\n", tls_last_error(c));
	ASSERT(r < 0 && r != -EAGAIN);
	if (tls_offloaded(c))
		ASSERT(strstr(tls_last_error(c), "bad record MAC"));
	ASSERT_EQ(tls_read(c, rx, sizeof(rx)), r);
	srv_finish(&s);
	tls_destroy(c);

	tls_config_destroy(cfg);
}

/*
 * One suite end to end: 100 KB from the server in random slices and every read size, then
 * close_notify. Offloaded exactly for TLS 1.2 AES-GCM; the bytes must be the same either way.
 */
static void suite_session(int suite, const char *name)
{
	const int suites[] = {suite, 0};
	struct tls_config *cfg = make_config(g_ca1_path, false);
	ASSERT(cfg);
	struct tls *c;
	ASSERT_EQ(tls_create(cfg, "localhost", &c), 0);
	struct srv s;
	ASSERT_EQ(srv_init(&s, suites), 0);
	int sret;
	uint64_t seed = (uint64_t)suite * 77;
	ASSERT_EQ(pump_handshake(c, &s, SPLIT_RANDOM, &seed, &sret), 0);
	ASSERT_EQ(sret, 0);
	ASSERT_STR_EQ(tls_ciphersuite(c), name);
	ASSERT_EQ(tls_offloaded(c), want_offload(c));

	enum { N = 100000 };
	static uint8_t tx[N], rx[N];
	fill(tx, N, (unsigned)suite);
	/* Records of many sizes, the empty one included (mbedTLS writes none of length 0). */
	for (size_t off = 0, k = 0; off < N; k++) {
		size_t n = k % 3 == 0 ? 16384 : 1 + (size_t)(test_rand(&seed) % 700);
		if (n > N - off)
			n = N - off;
		ASSERT_EQ(srv_write_all(&s, tx + off, n), 0);
		off += n;
	}
	ASSERT_EQ(mbedtls_ssl_close_notify(&s.ssl), 0);
	size_t total = 0;
	ssize_t r = -EAGAIN;
	while (s.out.len > 0 && r != 0) {
		size_t n = chunk_len(SPLIT_RANDOM, &seed, s.out.len);
		ASSERT_EQ(tls_feed(c, buf_head(&s.out), n), 0);
		buf_consume(&s.out, n);
		for (;;) {
			size_t cap = 1 + (size_t)(test_rand(&seed) % 20000);
			if (cap > N - total)
				cap = N - total;
			if (cap == 0)
				cap = 1; /* only close_notify may be left */
			r = tls_read(c, rx + total, cap);
			if (r <= 0)
				break;
			total += (size_t)r;
		}
		ASSERT(r == -EAGAIN || r == 0);
	}
	ASSERT_EQ(r, 0);
	ASSERT_EQ(total, N);
	ASSERT_MEM_EQ(rx, tx, N);
	srv_finish(&s);
	tls_destroy(c);
	tls_config_destroy(cfg);
}

static void tls_suites(void)
{
	static const struct {
		int id;
		const char *name;
	} suites[] = {
	    {MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	     "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256"},
	    {MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	     "TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384"},
	    {MBEDTLS_TLS_RSA_WITH_AES_128_GCM_SHA256, "TLS-RSA-WITH-AES-128-GCM-SHA256"},
	    {MBEDTLS_TLS_RSA_WITH_AES_256_GCM_SHA384, "TLS-RSA-WITH-AES-256-GCM-SHA384"},
	    {MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	     "TLS-ECDHE-RSA-WITH-CHACHA20-POLY1305-SHA256"},
	    {MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	     "TLS-ECDHE-RSA-WITH-AES-128-CBC-SHA256"},
	};
	for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]) && !test_cur_failed; i++)
		suite_session(suites[i].id, suites[i].name);
}

/*
 * The server's first application data arrives in the same read as its Finished: the bytes
 * after the Finished are still in our buffer at the hand-off and must come out of tls_read.
 */
static void tls_data_with_finished(void)
{
	struct tls_config *cfg = make_config(g_ca1_path, false);
	ASSERT(cfg);
	struct tls *c;
	ASSERT_EQ(tls_create(cfg, "localhost", &c), 0);
	struct srv s;
	ASSERT_EQ(srv_init(&s, (const int[]){MBEDTLS_TLS_RSA_WITH_AES_256_GCM_SHA384, 0}), 0);
	int crc = -EAGAIN, sret = 1;
	bool wrote = false;
	for (int round = 0; round < 50 && crc == -EAGAIN; round++) {
		crc = tls_handshake(c);
		c2s(c, &s);
		if (sret == 1) {
			sret = mbedtls_ssl_handshake(&s.ssl);
			if (sret == MBEDTLS_ERR_SSL_WANT_READ || sret == MBEDTLS_ERR_SSL_WANT_WRITE)
				sret = 1;
		}
		if (sret == 0 && !wrote) {
			ASSERT_EQ(srv_write_all(&s, (const uint8_t *)"early", 5), 0);
			ASSERT_EQ(srv_write_all(&s, (const uint8_t *)"bird", 4), 0);
			wrote = true;
		}
		ASSERT_EQ(tls_feed(c, buf_head(&s.out), s.out.len), 0);
		buf_consume(&s.out, s.out.len);
	}
	ASSERT_EQ(crc, 0);
	ASSERT(wrote);
	ASSERT_EQ(tls_offloaded(c), g_offload);
	uint8_t rx[16];
	ASSERT_EQ(tls_read(c, rx, sizeof(rx)), 5);
	ASSERT_MEM_EQ(rx, "early", 5);
	ASSERT_EQ(tls_read(c, rx, sizeof(rx)), 4);
	ASSERT_MEM_EQ(rx, "bird", 4);
	ASSERT_EQ(tls_read(c, rx, sizeof(rx)), -EAGAIN);
	srv_finish(&s);
	tls_destroy(c);
	tls_config_destroy(cfg);
}

/* A server that asks to renegotiate (HelloRequest): refused on the offloaded path. */
static void tls_hello_request(void)
{
	struct tls_config *cfg = make_config(g_ca1_path, false);
	ASSERT(cfg);
	struct tls *c;
	ASSERT_EQ(tls_create(cfg, "localhost", &c), 0);
	struct srv s;
	ASSERT_EQ(srv_init(&s, (const int[]){MBEDTLS_TLS_RSA_WITH_AES_128_GCM_SHA256, 0}), 0);
	mbedtls_ssl_conf_renegotiation(&s.conf, MBEDTLS_SSL_RENEGOTIATION_ENABLED);
	int sret;
	uint64_t seed = 9;
	ASSERT_EQ(pump_handshake(c, &s, SPLIT_WHOLE, &seed, &sret), 0);
	ASSERT_EQ(srv_write_all(&s, (const uint8_t *)"before", 6), 0);
	int rc = mbedtls_ssl_renegotiate(&s.ssl);
	ASSERT(rc == 0 || rc == MBEDTLS_ERR_SSL_WANT_READ);
	uint8_t rx[16];
	ssize_t last;
	ASSERT_EQ(s2c_read(c, &s, SPLIT_WHOLE, &seed, rx, sizeof(rx), &last), 6);
	ASSERT_MEM_EQ(rx, "before", 6);
	printf("# client: %zd %s\n", last, tls_last_error(c));
	if (g_offload) {
		ASSERT_EQ(last, -EPROTO);
		ASSERT(strstr(tls_last_error(c), "handshake record after the handshake"));
	} else {
		ASSERT_EQ(last, -EAGAIN); /* mbedTLS answers no_renegotiation and carries on */
	}
	srv_finish(&s);
	tls_destroy(c);
	tls_config_destroy(cfg);
}

/* A fatal alert from the server after the handshake names the alert on both paths. */
static void tls_fatal_alert_after_handshake(void)
{
	struct tls_config *cfg = make_config(g_ca1_path, false);
	ASSERT(cfg);
	struct tls *c;
	ASSERT_EQ(tls_create(cfg, "localhost", &c), 0);
	struct srv s;
	ASSERT_EQ(srv_init(&s, (const int[]){MBEDTLS_TLS_RSA_WITH_AES_256_GCM_SHA384, 0}), 0);
	int sret;
	uint64_t seed = 10;
	ASSERT_EQ(pump_handshake(c, &s, SPLIT_WHOLE, &seed, &sret), 0);
	ASSERT_EQ(mbedtls_ssl_send_alert_message(&s.ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
	                                         MBEDTLS_SSL_ALERT_MSG_INTERNAL_ERROR),
	          0);
	uint8_t rx[16];
	ssize_t last;
	ASSERT_EQ(s2c_read(c, &s, SPLIT_BYTE, &seed, rx, sizeof(rx), &last), 0);
	printf("# client: %s\n", tls_last_error(c));
	ASSERT_EQ(last, -ECONNREFUSED);
	ASSERT(strstr(tls_last_error(c), "fatal alert 80 (internal_error)"));
	ASSERT_EQ(tls_read(c, rx, sizeof(rx)), -ECONNREFUSED);
	srv_finish(&s);
	tls_destroy(c);
	tls_config_destroy(cfg);
}

static void tls_missing_ca_file(void)
{
	struct tls_config *cfg = (struct tls_config *)&cfg;
	char err[256];
	const char *path = "/nonexistent/danmakud/ca.pem";
	int rc = tls_config_create(path, false, &cfg, err, sizeof(err));
	printf("# %s\n", err);
	ASSERT_EQ(rc, -ENOENT);
	ASSERT(cfg == NULL);
	ASSERT(strstr(err, path) != NULL);

	/* A file that exists but holds no certificate. */
	char bad[160];
	snprintf(bad, sizeof(bad), "%s/empty.pem", g_dir);
	ASSERT_EQ(write_file(bad, (const unsigned char *)"not a certificate\n"), 0);
	rc = tls_config_create(bad, false, &cfg, err, sizeof(err));
	unlink(bad);
	printf("# %s\n", err);
	ASSERT(rc < 0);
	ASSERT(strstr(err, bad) != NULL);
}

static void tls_misc_api(void)
{
	tls_destroy(NULL);
	tls_config_destroy(NULL);
	struct tls_config *cfg = make_config(g_ca1_path, false);
	ASSERT(cfg);
	struct tls *c = (struct tls *)&c;
	ASSERT_EQ(tls_create(cfg, NULL, &c), -EINVAL);
	ASSERT(c == NULL);
	ASSERT_EQ(tls_create(cfg, "", &c), -EINVAL);
	ASSERT_EQ(tls_create(cfg, "localhost", &c), 0);
	ASSERT(tls_last_error(c) != NULL);
	ASSERT_EQ(tls_feed(c, NULL, 0), 0);
	/* Close before the handshake queues nothing. */
	tls_close_notify(c);
	ASSERT_EQ(tls_pending_out(c)->len, 0);
	tls_destroy(c);
	tls_config_destroy(cfg);

	/* The system bundle loads (positive skip counts from mbedTLS are not errors). */
	if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0) {
		cfg = make_config(NULL, false);
		ASSERT(cfg);
		tls_config_destroy(cfg);
	}
}

int main(void)
{
	int rc = setup();
	if (rc != 0) {
		printf("Bail out! test certificate setup failed: -0x%04x\n", (unsigned)-rc);
		return 1;
	}
	/* First with the offload (the default), then with mbedTLS reading everything. */
	for (int pass = 0; pass < 2; pass++) {
		g_offload = pass == 0;
		if (g_offload)
			unsetenv("DANMAKUD_TLS_NO_OFFLOAD");
		else
			setenv("DANMAKUD_TLS_NO_OFFLOAD", "1", 1);
		printf("# pass %d: offload %s\n", pass + 1, g_offload ? "on" : "off");
		RUN(tls_handshake_whole);
		RUN(tls_handshake_one_byte);
		RUN(tls_handshake_random_splits);
		RUN(tls_douyu_rsa_suite);
		RUN(tls_suites);
		RUN(tls_data_with_finished);
		RUN(tls_hello_request);
		RUN(tls_fatal_alert_after_handshake);
		RUN(tls_wrong_host);
		RUN(tls_untrusted_ca);
		RUN(tls_insecure_accepts);
		RUN(tls_server_close_notify);
		RUN(tls_garbage);
		RUN(tls_missing_ca_file);
		RUN(tls_peer_alert);
		RUN(tls_old_version_refused);
		RUN(tls_misc_api);
	}
	teardown();
	TEST_DONE();
}
