/*
 * tlsrec: inbound TLS 1.2 AES-GCM records, decrypted with libcrypto's EVP interface. The
 * caller's buffer holds the ciphertext stream; a record is parsed from its 5-byte header and
 * consumed only once all of it is there, so any split of the stream across reads works and
 * the parser needs no state of its own beyond the sequence number. Each record is
 * 8-byte explicit nonce | ciphertext | 16-byte tag (RFC 5288 §3); the nonce is the 4-byte
 * implicit IV followed by the explicit part, and the additional data is
 * seq(8) | type(1) | version(2) | plaintext length(2) (RFC 5246 §6.2.3.3). Application data
 * goes straight into the caller's buffer when it fits, else into a buffer of our own that is
 * handed out over several calls. Pure: no sockets, no logging.
 */
#include "tlsrec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define TLSREC_HDR 5
#define TLSREC_EXPLICIT_IV 8
#define TLSREC_TAG 16
#define TLSREC_ERR_LEN 160

enum {
	TLSREC_CHANGE_CIPHER_SPEC = 20,
	TLSREC_ALERT = 21,
	TLSREC_HANDSHAKE = 22,
	TLSREC_APPLICATION_DATA = 23,
};

struct tlsrec {
	EVP_CIPHER_CTX *ctx; /* holds the expanded key; only the nonce changes per record */
	uint8_t nonce[12];   /* implicit IV (4) | explicit part of the current record (8) */
	uint64_t seq;        /* sequence number of the next record */
	bool seq_spent;      /* record 2^64-1 was read: another would reuse a sequence number */
	bool closed;         /* close_notify read */
	int fatal;           /* sticky negative errno, else 0 */
	uint8_t *plain;      /* a decrypted record larger than the caller's buffer */
	size_t plain_off, plain_len;
	char err[TLSREC_ERR_LEN];
};

/* Make a failure sticky and say why; returns rc. */
static int tlsrec_fail(struct tlsrec *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int tlsrec_fail(struct tlsrec *r, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	r->fatal = rc;
	return rc;
}

int tlsrec_create(const uint8_t *key, size_t keylen, const uint8_t iv[4], uint64_t seq,
                  struct tlsrec **out)
{
	*out = NULL;
	const EVP_CIPHER *cipher;
	if (keylen == 16)
		cipher = EVP_aes_128_gcm();
	else if (keylen == 32)
		cipher = EVP_aes_256_gcm();
	else
		return -EINVAL;
	struct tlsrec *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->ctx = EVP_CIPHER_CTX_new();
	/* GCM's default nonce length is the 12 bytes TLS uses, so no SET_IVLEN is needed. */
	if (!r->ctx || EVP_DecryptInit_ex(r->ctx, cipher, NULL, key, NULL) != 1) {
		tlsrec_destroy(r);
		return -ENOMEM;
	}
	memcpy(r->nonce, iv, 4);
	r->seq = seq;
	*out = r;
	return 0;
}

void tlsrec_destroy(struct tlsrec *r)
{
	if (!r)
		return;
	/* EVP_CIPHER_CTX_free cleanses the key schedule it holds. */
	EVP_CIPHER_CTX_free(r->ctx);
	if (r->plain) {
		OPENSSL_cleanse(r->plain, TLSREC_MAX_PLAINTEXT);
		free(r->plain);
	}
	OPENSSL_cleanse(r, sizeof(*r));
	free(r);
}

uint64_t tlsrec_seq(const struct tlsrec *r)
{
	return r->seq;
}

const char *tlsrec_last_error(const struct tlsrec *r)
{
	return r->err;
}

/*
 * Decrypt and authenticate one record body (explicit nonce | ciphertext | tag, plen bytes of
 * plaintext) into dst. Returns 0, or -EPROTO with dst wiped when the tag does not verify.
 */
static int tlsrec_open(struct tlsrec *r, const uint8_t *hdr, size_t plen, uint8_t *dst)
{
	const uint8_t *body = hdr + TLSREC_HDR;
	uint8_t aad[13];
	for (int i = 0; i < 8; i++)
		aad[i] = (uint8_t)(r->seq >> (56 - 8 * i));
	aad[8] = hdr[0];
	aad[9] = hdr[1];
	aad[10] = hdr[2];
	aad[11] = (uint8_t)(plen >> 8);
	aad[12] = (uint8_t)plen;
	memcpy(r->nonce + 4, body, TLSREC_EXPLICIT_IV);

	int n, fin;
	/* Setting only the nonce keeps the key schedule and resets the GCM state. */
	if (EVP_DecryptInit_ex(r->ctx, NULL, NULL, NULL, r->nonce) != 1 ||
	    EVP_DecryptUpdate(r->ctx, NULL, &n, aad, sizeof(aad)) != 1)
		return tlsrec_fail(r, -EPROTO, "AES-GCM could not be set up for record %llu",
		                   (unsigned long long)r->seq);
	n = 0;
	if (plen > 0 &&
	    EVP_DecryptUpdate(r->ctx, dst, &n, body + TLSREC_EXPLICIT_IV, (int)plen) != 1)
		goto bad;
	/* The tag argument is not const in the API; OpenSSL only copies from it. */
	if (EVP_CIPHER_CTX_ctrl(r->ctx, EVP_CTRL_AEAD_SET_TAG, TLSREC_TAG,
	                        (void *)(body + TLSREC_EXPLICIT_IV + plen)) != 1 ||
	    EVP_DecryptFinal_ex(r->ctx, dst + n, &fin) != 1)
		goto bad;
	return 0;
bad:
	/* Nothing unauthenticated may leave this module, not even in a buffer we return -EPROTO
	 * with. */
	if (plen > 0)
		OPENSSL_cleanse(dst, plen);
	return tlsrec_fail(r, -EPROTO, "bad record MAC (record %llu)", (unsigned long long)r->seq);
}

/* Names of the alerts a server may send (RFC 5246 §7.2, RFC 8446 §6). */
static const struct {
	unsigned char desc;
	const char *name;
} tlsrec_alerts[] = {
    {0, "close_notify"},
    {10, "unexpected_message"},
    {20, "bad_record_mac"},
    {22, "record_overflow"},
    {40, "handshake_failure"},
    {42, "bad_certificate"},
    {43, "unsupported_certificate"},
    {44, "certificate_revoked"},
    {45, "certificate_expired"},
    {46, "certificate_unknown"},
    {47, "illegal_parameter"},
    {48, "unknown_ca"},
    {49, "access_denied"},
    {50, "decode_error"},
    {51, "decrypt_error"},
    {70, "protocol_version"},
    {71, "insufficient_security"},
    {80, "internal_error"},
    {86, "inappropriate_fallback"},
    {90, "user_canceled"},
    {100, "no_renegotiation"},
    {110, "unsupported_extension"},
    {112, "unrecognized_name"},
};

const char *tlsrec_alert_name(unsigned desc)
{
	for (size_t i = 0; i < sizeof(tlsrec_alerts) / sizeof(tlsrec_alerts[0]); i++)
		if (tlsrec_alerts[i].desc == desc)
			return tlsrec_alerts[i].name;
	return "unknown alert";
}

/*
 * mbedTLS treats a warning close_notify as the end and any fatal alert as an error. It
 * ignores other warnings; we have no use for them after the handshake (no renegotiation), so
 * they end the connection, with their name in the message.
 */
static ssize_t tlsrec_alert(struct tlsrec *r, const uint8_t a[2])
{
	if (a[0] == 1 && a[1] == 0) {
		r->closed = true;
		snprintf(r->err, sizeof(r->err), "peer sent close_notify");
		return 0;
	}
	if (a[0] == 2)
		return tlsrec_fail(r, -ECONNREFUSED, "peer sent fatal alert %u (%s)", a[1],
		                   tlsrec_alert_name(a[1]));
	return tlsrec_fail(r, -EPROTO, "peer sent alert %u (%s) at level %u", a[1],
	                   tlsrec_alert_name(a[1]), a[0]);
}

/* Hand out what is left of a record that did not fit the caller's buffer. */
static size_t tlsrec_drain(struct tlsrec *r, uint8_t *out, size_t cap)
{
	size_t n = r->plain_len < cap ? r->plain_len : cap;
	memcpy(out, r->plain + r->plain_off, n);
	r->plain_off += n;
	r->plain_len -= n;
	return n;
}

ssize_t tlsrec_read(struct tlsrec *r, struct buf *in, uint8_t *out, size_t cap)
{
	if (r->fatal)
		return r->fatal;
	if (r->closed)
		return 0;
	if (cap == 0)
		return -EINVAL;
	if (r->plain_len > 0)
		return (ssize_t)tlsrec_drain(r, out, cap);
	for (;;) {
		if (in->len < TLSREC_HDR)
			return -EAGAIN;
		uint8_t *h = buf_head(in);
		unsigned type = h[0];
		size_t len = (size_t)h[3] << 8 | h[4];
		/* Everything the header can tell is checked before waiting for the body. */
		if (h[1] != 3 || h[2] != 3)
			return tlsrec_fail(
			    r, -EPROTO, "record version %u.%u, expected 3.3 (TLS 1.2)", h[1], h[2]);
		switch (type) {
		case TLSREC_APPLICATION_DATA:
		case TLSREC_ALERT:
			break;
		case TLSREC_HANDSHAKE:
			return tlsrec_fail(r, -EPROTO,
			                   "handshake record after the handshake (renegotiation is "
			                   "not supported)");
		case TLSREC_CHANGE_CIPHER_SPEC:
			return tlsrec_fail(r, -EPROTO, "ChangeCipherSpec after the handshake");
		default:
			return tlsrec_fail(r, -EPROTO, "unknown record type %u", type);
		}
		if (len > TLSREC_MAX_CIPHERTEXT)
			return tlsrec_fail(
			    r, -EPROTO, "record of %zu bytes exceeds 2^14+2048 (record_overflow)",
			    len);
		if (len < TLSREC_EXPLICIT_IV + TLSREC_TAG)
			return tlsrec_fail(r, -EPROTO,
			                   "record of %zu bytes is too short for AES-GCM", len);
		size_t plen = len - TLSREC_EXPLICIT_IV - TLSREC_TAG;
		if (plen > TLSREC_MAX_PLAINTEXT)
			return tlsrec_fail(
			    r, -EPROTO,
			    "record of %zu plaintext bytes exceeds 2^14 (record_overflow)", plen);
		if (type == TLSREC_ALERT && plen != 2)
			return tlsrec_fail(r, -EPROTO, "alert record of %zu bytes, expected 2",
			                   plen);
		if (in->len < TLSREC_HDR + len)
			return -EAGAIN;
		if (r->seq_spent)
			return tlsrec_fail(r, -EPROTO, "sequence number would wrap");

		uint8_t alert[2];
		uint8_t *dst;
		if (type == TLSREC_ALERT) {
			dst = alert;
		} else if (plen <= cap) {
			dst = out;
		} else {
			if (!r->plain && !(r->plain = malloc(TLSREC_MAX_PLAINTEXT)))
				return tlsrec_fail(r, -ENOMEM, "out of memory");
			dst = r->plain;
		}
		int rc = tlsrec_open(r, h, plen, dst);
		if (rc < 0)
			return rc;
		buf_consume(in, TLSREC_HDR + len);
		if (++r->seq == 0)
			r->seq_spent = true;

		if (type == TLSREC_ALERT)
			return tlsrec_alert(r, alert);
		if (plen == 0)
			continue; /* legal, and carries nothing (RFC 5246 §6.2.1) */
		if (dst == out)
			return (ssize_t)plen;
		r->plain_off = 0;
		r->plain_len = plen;
		return (ssize_t)tlsrec_drain(r, out, cap);
	}
}
