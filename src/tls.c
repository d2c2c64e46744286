/*
 * tls: the TLS client for one connection, driven entirely through memory buffers. mbedTLS 2.28
 * talks to a custom BIO: bio_recv() takes ciphertext that net.c handed us with tls_feed(), or
 * reports MBEDTLS_ERR_SSL_WANT_READ, and bio_send() appends to t->out, which the caller drains.
 * One struct tls_config (entropy, CTR-DRBG, CA chain, mbedtls_ssl_config) is shared by every
 * connection. mbedTLS error codes are translated into negative errno values, and the words for
 * the last failure stay in a small per-connection buffer for the caller to log. This module
 * neither logs nor touches libuv or sockets.
 *
 * Inbound offload: once the handshake is done, and when it negotiated TLS 1.2 with AES-128-GCM
 * or AES-256-GCM, inbound records are decrypted by tlsrec.c (OpenSSL's libcrypto, over ten
 * times cheaper than mbedTLS in bench/decode_cost.c's tls stage), while mbedTLS keeps the
 * handshake, the certificate and host-name checks and every write. The server's write key and IV
 * come from mbedTLS's key-export callback, the next sequence number from the context. Any other
 * suite, a record mbedTLS has already buffered at hand-off, or DANMAKUD_TLS_NO_OFFLOAD=1 in the
 * environment keeps the whole connection on mbedTLS.
 */
#include "tls.h"

#include "text.h"
#include "tlsrec.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/bignum.h>
#include <mbedtls/cipher.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/dhm.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/x509.h>
#include <mbedtls/x509_crt.h>

#define TLS_DEFAULT_CA_FILE "/etc/ssl/certs/ca-certificates.crt"
#define TLS_ERR_LEN 200
/* Drained input buffers larger than this are freed rather than kept for the next feed. */
#define TLS_KEEP_BUF 4096

struct tls_config {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_x509_crt ca;
	mbedtls_ssl_config conf;
	unsigned ca_loaded, ca_rejected; /* certificates in the CA file: parsed, not parsed */
	/*
	 * mbedTLS 2.28 calls the key-export callback with the config's context only, not the
	 * connection's; the connection whose handshake is being driven is put here for the call.
	 */
	struct tls *handshaking;
};

/*
 * Memory: mbedtls_ssl_setup() allocates an input and an output record buffer of
 * MBEDTLS_SSL_IN/OUT_BUFFER_LEN (16 KiB of content plus overhead, so a little over 33 KiB
 * together) per context in Debian's build, and MBEDTLS_SSL_KEEP_PEER_CERTIFICATE keeps the
 * server's certificate chain for the session's life. We add nothing beyond this struct and
 * our two byte buffers, which are released whenever they drain past TLS_KEEP_BUF.
 */
struct tls {
	mbedtls_ssl_context ssl;
	struct buf in;  /* ciphertext fed by the caller, not yet read by mbedTLS */
	struct buf out; /* ciphertext produced by mbedTLS, for the caller to send */
	struct tls_config *cfg;
	struct tlsrec *rec; /* inbound records after the handshake, when offloaded */
	/* The server's write key and implicit IV, from the key export until the hand-off. */
	uint8_t rx_key[32];
	uint8_t rx_iv[4];
	size_t rx_keylen; /* 0: no key kept */
	int fatal;        /* sticky negative errno after a failure, else 0 */
	bool done;        /* handshake complete */
	bool closed;      /* close_notify received */
	char err[TLS_ERR_LEN];
};

/*
 * Used only when the library's default list lacks the static-RSA suite that Douyu's
 * danmuproxy offers (douyu-protocol.md §1.3); Debian's 2.28 default list includes it.
 */
static const int tls_fallback_suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_RSA_WITH_AES_128_GCM_SHA256,
    0,
};

/* Error text into err[0..errlen) (see text_err). */
#define tls_set_err(err, errlen, ...) ((void)text_err(0, (err), (errlen), __VA_ARGS__))

/* mbedtls_strerror text plus the raw code, for messages. */
static void tls_strerror(int mret, char *out, size_t outlen)
{
	char text[120];
	mbedtls_strerror(mret, text, sizeof(text));
	snprintf(out, outlen, "%s (-0x%04X)", text, (unsigned)-mret);
}

static bool tls_is_alloc_err(int code)
{
	switch (code) {
	case MBEDTLS_ERR_SSL_ALLOC_FAILED:
	case MBEDTLS_ERR_X509_ALLOC_FAILED:
	case MBEDTLS_ERR_PK_ALLOC_FAILED:
	case MBEDTLS_ERR_MPI_ALLOC_FAILED:
	case MBEDTLS_ERR_ECP_ALLOC_FAILED:
	case MBEDTLS_ERR_ASN1_ALLOC_FAILED:
	case MBEDTLS_ERR_CIPHER_ALLOC_FAILED:
	case MBEDTLS_ERR_MD_ALLOC_FAILED:
	case MBEDTLS_ERR_PEM_ALLOC_FAILED:
	case MBEDTLS_ERR_DHM_ALLOC_FAILED:
		return true;
	}
	return false;
}

/* Translate an mbedTLS code (possibly high-level + low-level compound) into a negative errno. */
static int tls_errno(int mret)
{
	switch (mret) {
	case MBEDTLS_ERR_SSL_WANT_READ:
	case MBEDTLS_ERR_SSL_WANT_WRITE:
		return -EAGAIN;
	case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
		return -EBADMSG;
	case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
		return -ECONNREFUSED;
	case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
	case MBEDTLS_ERR_SSL_CONN_EOF:
		return -ECONNRESET;
	}
	int high = -((-mret) & 0xFF80), low = -((-mret) & 0x007F);
	if (tls_is_alloc_err(mret) || tls_is_alloc_err(high) || tls_is_alloc_err(low))
		return -ENOMEM;
	return -EPROTO;
}

/*
 * Record a failure: translate mret, describe it in t->err and make it sticky, because an
 * mbedTLS context must not be driven further after a fatal error.
 */
static int tls_fail(struct tls *t, int mret, const char *what)
{
	int rc = tls_errno(mret);
	if (mret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
		uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
		char info[160] = "";
		if (flags != 0 && flags != (uint32_t)-1)
			mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags);
		/* verify_info writes one line per problem; join them into one line. */
		size_t n = strlen(info);
		while (n > 0 && info[n - 1] == '\n')
			info[--n] = '\0';
		for (char *p = info; (p = strchr(p, '\n')) != NULL;)
			*p = ';';
		tls_set_err(t->err, sizeof(t->err), "certificate verify failed: %s",
		            info[0] ? info : "unknown reason");
	} else if (mret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) {
		/*
		 * mbedTLS 2.28 leaves the alert record in in_msg (a public field in 2.x); its
		 * description byte says why the server refused (40 handshake_failure is the usual
		 * answer to a suite or version mismatch).
		 */
		if (t->ssl.in_msgtype == MBEDTLS_SSL_MSG_ALERT && t->ssl.in_msglen >= 2 &&
		    t->ssl.in_msg) {
			unsigned desc = t->ssl.in_msg[1];
			tls_set_err(t->err, sizeof(t->err), "%s: peer sent fatal alert %u (%s)",
			            what, desc, tlsrec_alert_name(desc));
		} else {
			tls_set_err(t->err, sizeof(t->err), "%s: peer sent a fatal alert", what);
		}
	} else if (mret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
		tls_set_err(t->err, sizeof(t->err), "%s: peer closed the connection", what);
	} else {
		char text[160];
		tls_strerror(mret, text, sizeof(text));
		tls_set_err(t->err, sizeof(t->err), "%s: %s", what, text);
	}
	t->fatal = rc;
	return rc;
}

/* Release drained buffers above the keep size, so idle connections hold no extra memory. */
static void tls_trim(struct buf *b)
{
	if (b->len == 0 && b->cap > TLS_KEEP_BUF)
		buf_finish(b);
}

static int bio_send(void *ctx, const unsigned char *p, size_t len)
{
	struct tls *t = ctx;
	if (len > INT_MAX)
		len = INT_MAX;
	if (buf_append(&t->out, p, len) < 0)
		return MBEDTLS_ERR_SSL_ALLOC_FAILED;
	return (int)len;
}

static int bio_recv(void *ctx, unsigned char *p, size_t len)
{
	struct tls *t = ctx;
	if (t->in.len == 0)
		return MBEDTLS_ERR_SSL_WANT_READ;
	size_t n = len < t->in.len ? len : t->in.len;
	if (n > INT_MAX)
		n = INT_MAX;
	memcpy(p, buf_head(&t->in), n);
	buf_consume(&t->in, n);
	tls_trim(&t->in);
	return (int)n;
}

static void tls_wipe_keys(struct tls *t)
{
	mbedtls_platform_zeroize(t->rx_key, sizeof(t->rx_key));
	mbedtls_platform_zeroize(t->rx_iv, sizeof(t->rx_iv));
	t->rx_keylen = 0;
}

/*
 * mbedTLS 2.28 passes the whole key block of RFC 5246 §6.3 (ssl_tls.c,
 * ssl_populate_transform): client MAC key | server MAC key (maclen each, 0 for AEAD) |
 * client write key | server write key (keylen each) | client IV | server IV (ivlen each;
 * for GCM and CCM the 4-byte implicit part, mbedTLS's fixed_ivlen). We decrypt what the
 * server writes, so we keep the server's key and IV. The suite itself is checked at the
 * hand-off; here only the shapes that cannot be AES-GCM are refused.
 */
static int on_export_keys(void *ctx, const unsigned char *ms, const unsigned char *kb,
                          size_t maclen, size_t keylen, size_t ivlen,
                          const unsigned char client_random[32],
                          const unsigned char server_random[32], mbedtls_tls_prf_types prf)
{
	struct tls_config *cfg = ctx;
	struct tls *t = cfg->handshaking;
	if (!t)
		return 0;
	tls_wipe_keys(t);
	if (maclen != 0 || ivlen != sizeof(t->rx_iv) || (keylen != 16 && keylen != 32))
		return 0;
	memcpy(t->rx_key, kb + 2 * maclen + keylen, keylen);
	memcpy(t->rx_iv, kb + 2 * maclen + 2 * keylen + ivlen, ivlen);
	t->rx_keylen = keylen;
	return 0;
}

/*
 * Right after mbedtls_ssl_handshake() returned 0: move inbound records to tlsrec.c when the
 * suite allows it and nothing would be lost. mbedTLS reads a TLS record through the BIO
 * exactly (header, then body), so everything after the server's Finished is still in t->in;
 * should it nevertheless hold an unread record or message, the connection stays on mbedTLS.
 * Failing to offload is never an error: mbedTLS can still read.
 */
static void tls_offload(struct tls *t)
{
	if (t->rx_keylen == 0)
		return;
	const mbedtls_ssl_ciphersuite_t *cs =
	    t->ssl.session ? mbedtls_ssl_ciphersuite_from_id(t->ssl.session->ciphersuite) : NULL;
	size_t want = 0;
	if (cs && cs->cipher == MBEDTLS_CIPHER_AES_128_GCM)
		want = 16;
	else if (cs && cs->cipher == MBEDTLS_CIPHER_AES_256_GCM)
		want = 32;
	bool ok = want == t->rx_keylen && t->ssl.major_ver == MBEDTLS_SSL_MAJOR_VERSION_3 &&
	          t->ssl.minor_ver == MBEDTLS_SSL_MINOR_VERSION_3 &&
	          mbedtls_ssl_check_pending(&t->ssl) == 0 && t->ssl.in_left == 0 &&
	          t->ssl.in_offt == NULL && t->ssl.in_ctr != NULL;
	if (ok) {
		uint64_t seq = 0;
		for (int i = 0; i < 8; i++)
			seq = seq << 8 | t->ssl.in_ctr[i];
		/* On -ENOMEM mbedTLS simply keeps reading. */
		(void)tlsrec_create(t->rx_key, t->rx_keylen, t->rx_iv, seq, &t->rec);
	}
	tls_wipe_keys(t);
}

static bool tls_has_suite(const int *list, int id)
{
	for (; *list; list++)
		if (*list == id)
			return true;
	return false;
}

int tls_config_create(const char *ca_file, bool insecure, struct tls_config **out, char *err,
                      size_t errlen)
{
	*out = NULL;
	tls_set_err(err, errlen, "%s", "");
	struct tls_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		tls_set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	mbedtls_entropy_init(&cfg->entropy);
	mbedtls_ctr_drbg_init(&cfg->drbg);
	mbedtls_x509_crt_init(&cfg->ca);
	mbedtls_ssl_config_init(&cfg->conf);

	int rc, mret;
	char text[160];
	static const char pers[] = "danmakud-tls";
	mret = mbedtls_ctr_drbg_seed(&cfg->drbg, mbedtls_entropy_func, &cfg->entropy,
	                             (const unsigned char *)pers, sizeof(pers) - 1);
	if (mret != 0) {
		tls_strerror(mret, text, sizeof(text));
		tls_set_err(err, errlen, "cannot seed the random generator: %s", text);
		rc = tls_is_alloc_err(mret) ? -ENOMEM : -EIO;
		goto fail;
	}

	if (!ca_file)
		ca_file = TLS_DEFAULT_CA_FILE;
	/* Open it ourselves first, so a missing file is reported with the real errno. */
	FILE *f = fopen(ca_file, "rb");
	if (!f) {
		rc = -errno;
		tls_set_err(err, errlen, "cannot open CA file %s: %s", ca_file, strerror(errno));
		goto fail;
	}
	fclose(f);
	/*
	 * A positive return counts certificates that failed to parse (system bundles may hold a
	 * few that mbedTLS rejects); the caller reports them. A negative one means none parsed.
	 */
	mret = mbedtls_x509_crt_parse_file(&cfg->ca, ca_file);
	if (mret < 0 || cfg->ca.version == 0) {
		if (mret < 0)
			tls_strerror(mret, text, sizeof(text));
		else
			snprintf(text, sizeof(text), "empty");
		tls_set_err(err, errlen,
		            "cannot load CA file %s: no certificate in it could be parsed (%s)",
		            ca_file, text);
		rc = mret < 0 && tls_is_alloc_err(mret) ? -ENOMEM : -EINVAL;
		goto fail;
	}
	cfg->ca_rejected = (unsigned)mret;
	for (const mbedtls_x509_crt *c = &cfg->ca; c && c->version; c = c->next)
		cfg->ca_loaded++;

	mret =
	    mbedtls_ssl_config_defaults(&cfg->conf, MBEDTLS_SSL_IS_CLIENT,
	                                MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	if (mret != 0) {
		tls_strerror(mret, text, sizeof(text));
		tls_set_err(err, errlen, "cannot set TLS defaults: %s", text);
		rc = tls_errno(mret);
		goto fail;
	}
	mbedtls_ssl_conf_rng(&cfg->conf, mbedtls_ctr_drbg_random, &cfg->drbg);
	mbedtls_ssl_conf_ca_chain(&cfg->conf, &cfg->ca, NULL);
	mbedtls_ssl_conf_authmode(&cfg->conf,
	                          insecure ? MBEDTLS_SSL_VERIFY_NONE : MBEDTLS_SSL_VERIFY_REQUIRED);
	mbedtls_ssl_conf_min_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
	                             MBEDTLS_SSL_MINOR_VERSION_3);
	/* We never resume sessions, so a stored ticket would only cost memory per connection. */
	mbedtls_ssl_conf_session_tickets(&cfg->conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
	/*
	 * Douyu's danmuproxy offers only static-RSA AES256-GCM-SHA384 (douyu-protocol.md §1.3).
	 * The default list has it in Debian's 2.28; keep the defaults unless a build lacks it.
	 */
	if (!tls_has_suite(mbedtls_ssl_list_ciphersuites(),
	                   MBEDTLS_TLS_RSA_WITH_AES_256_GCM_SHA384))
		mbedtls_ssl_conf_ciphersuites(&cfg->conf, tls_fallback_suites);
	/* The switch exists so that tests can run both inbound paths. */
	const char *no = getenv("DANMAKUD_TLS_NO_OFFLOAD");
	if (!(no && *no && strcmp(no, "0") != 0))
		mbedtls_ssl_conf_export_keys_ext_cb(&cfg->conf, on_export_keys, cfg);

	*out = cfg;
	return 0;
fail:
	tls_config_destroy(cfg);
	return rc;
}

void tls_config_ca_counts(const struct tls_config *cfg, unsigned *loaded, unsigned *rejected)
{
	*loaded = cfg->ca_loaded;
	*rejected = cfg->ca_rejected;
}

void tls_config_destroy(struct tls_config *cfg)
{
	if (!cfg)
		return;
	mbedtls_ssl_config_free(&cfg->conf);
	mbedtls_x509_crt_free(&cfg->ca);
	mbedtls_ctr_drbg_free(&cfg->drbg);
	mbedtls_entropy_free(&cfg->entropy);
	free(cfg);
}

int tls_create(struct tls_config *cfg, const char *host, struct tls **out)
{
	*out = NULL;
	if (!cfg || !host || !*host)
		return -EINVAL;
	struct tls *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	mbedtls_ssl_init(&t->ssl);
	buf_init(&t->in);
	buf_init(&t->out);
	t->cfg = cfg;

	int rc;
	int mret = mbedtls_ssl_setup(&t->ssl, &cfg->conf);
	if (mret != 0) {
		rc = tls_errno(mret) == -ENOMEM ? -ENOMEM : -EINVAL;
		goto fail;
	}
	/* Sets SNI and the name the certificate must carry (SAN dNSName, else CN). */
	mret = mbedtls_ssl_set_hostname(&t->ssl, host);
	if (mret != 0) {
		rc = tls_errno(mret) == -ENOMEM ? -ENOMEM : -EINVAL;
		goto fail;
	}
	mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
	*out = t;
	return 0;
fail:
	tls_destroy(t);
	return rc;
}

void tls_destroy(struct tls *t)
{
	if (!t)
		return;
	mbedtls_ssl_free(&t->ssl);
	tlsrec_destroy(t->rec);
	tls_wipe_keys(t);
	buf_finish(&t->in);
	buf_finish(&t->out);
	free(t);
}

int tls_feed(struct tls *t, const uint8_t *data, size_t len)
{
	tls_trim(&t->out);
	return buf_append(&t->in, data, len);
}

int tls_handshake(struct tls *t)
{
	if (t->fatal)
		return t->fatal;
	if (t->done)
		return 0;
	tls_trim(&t->out);
	t->cfg->handshaking = t;
	int mret = mbedtls_ssl_handshake(&t->ssl);
	t->cfg->handshaking = NULL;
	if (mret == 0) {
		t->done = true;
		tls_offload(t);
		return 0;
	}
	if (mret != MBEDTLS_ERR_SSL_WANT_READ && mret != MBEDTLS_ERR_SSL_WANT_WRITE)
		tls_wipe_keys(t);
	if (mret == MBEDTLS_ERR_SSL_WANT_READ || mret == MBEDTLS_ERR_SSL_WANT_WRITE)
		return -EAGAIN;
	return tls_fail(t, mret, "handshake");
}

ssize_t tls_read(struct tls *t, uint8_t *out, size_t cap)
{
	if (t->fatal)
		return t->fatal;
	if (t->closed)
		return 0;
	if (!t->done)
		return -ENOTCONN;
	/* mbedtls_ssl_read(len 0) returns 0, which would look like close_notify. */
	if (cap == 0)
		return -EINVAL;
	tls_trim(&t->out);
	if (t->rec) {
		ssize_t n = tlsrec_read(t->rec, &t->in, out, cap);
		tls_trim(&t->in);
		if (n > 0 || n == -EAGAIN)
			return n;
		if (n == 0) {
			t->closed = true;
			tls_set_err(t->err, sizeof(t->err), "peer sent close_notify");
			return 0;
		}
		tls_set_err(t->err, sizeof(t->err), "read: %s", tlsrec_last_error(t->rec));
		t->fatal = (int)n;
		return n;
	}
	int mret = mbedtls_ssl_read(&t->ssl, out, cap);
	if (mret > 0)
		return mret;
	if (mret == MBEDTLS_ERR_SSL_WANT_READ || mret == MBEDTLS_ERR_SSL_WANT_WRITE)
		return -EAGAIN;
	/* Our BIO never reports EOF, so 0 cannot come back from mbedTLS; treat it as close. */
	if (mret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || mret == 0) {
		t->closed = true;
		tls_set_err(t->err, sizeof(t->err), "peer sent close_notify");
		return 0;
	}
	return tls_fail(t, mret, "read");
}

int tls_write(struct tls *t, const uint8_t *data, size_t len)
{
	if (t->fatal)
		return t->fatal;
	if (!t->done)
		return -ENOTCONN;
	tls_trim(&t->out);
	/*
	 * mbedtls_ssl_write takes at most one record (16 KiB) per call. The memory BIO never
	 * blocks, so WANT_WRITE cannot happen, and with renegotiation off neither can WANT_READ;
	 * either would leave a record half written, so it is treated as fatal.
	 */
	while (len > 0) {
		int mret = mbedtls_ssl_write(&t->ssl, data, len);
		if (mret == MBEDTLS_ERR_SSL_WANT_READ || mret == MBEDTLS_ERR_SSL_WANT_WRITE) {
			tls_set_err(t->err, sizeof(t->err), "write: unexpected would-block");
			t->fatal = -EIO;
			return -EIO;
		}
		if (mret < 0)
			return tls_fail(t, mret, "write");
		data += mret;
		len -= (size_t)mret;
	}
	return 0;
}

void tls_close_notify(struct tls *t)
{
	if (t->fatal)
		return;
	/* Sends nothing (and returns 0) unless the handshake is complete. */
	mbedtls_ssl_close_notify(&t->ssl);
}

struct buf *tls_pending_out(struct tls *t)
{
	return &t->out;
}

const char *tls_last_error(const struct tls *t)
{
	if (!t || !t->err[0])
		return "no error";
	return t->err;
}

bool tls_offloaded(const struct tls *t)
{
	return t && t->rec;
}

const char *tls_ciphersuite(const struct tls *t)
{
	if (!t || !t->done)
		return "";
	const char *name = mbedtls_ssl_get_ciphersuite(&t->ssl);
	return name ? name : "";
}
