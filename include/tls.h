/*
 * tls: a TLS 1.2+ client over memory buffers (mbedTLS with a custom BIO); no sockets.
 *
 * The caller feeds ciphertext from the network with tls_feed() and sends whatever appears in
 * tls_pending_out() (consuming it with buf_consume). One struct tls_config (RNG, CA chain,
 * ssl config) is shared by every connection; each connection has one small struct tls.
 * Certificates and host names are verified unless the config was made insecure.
 */
#ifndef DANMAKUD_TLS_H
#define DANMAKUD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

struct tls_config;
struct tls;

/*
 * Create the shared client config. ca_file: PEM bundle to trust; NULL means the system bundle
 * (/etc/ssl/certs/ca-certificates.crt). insecure: skip certificate and host-name checks.
 * Minimum version TLS 1.2; the default suites plus TLS_RSA_WITH_AES_256_GCM_SHA384 (Douyu).
 * Returns 0 or a negative errno; on error a message is written to err (errlen bytes). A CA
 * file in which no certificate parses is an error (-EINVAL, naming the file); one in which
 * some do not parse is not (see tls_config_ca_counts).
 */
int tls_config_create(const char *ca_file, bool insecure, struct tls_config **out, char *err,
		      size_t errlen);
/* How many certificates of the CA file were loaded, and how many were rejected as unparsable. */
void tls_config_ca_counts(const struct tls_config *cfg, unsigned *loaded, unsigned *rejected);
/* Accepts NULL. Every struct tls made from it must be destroyed first. */
void tls_config_destroy(struct tls_config *cfg);

/* New client session for host (SNI + name check). Returns 0, -ENOMEM or -EINVAL. */
int tls_create(struct tls_config *cfg, const char *host, struct tls **out);
void tls_destroy(struct tls *t); /* accepts NULL */

/* Ciphertext received from the network. Copies; returns 0 or -ENOMEM. */
int tls_feed(struct tls *t, const uint8_t *data, size_t len);

/*
 * Advance the handshake using what was fed. Returns 0 when complete, -EAGAIN when more
 * input is needed (send tls_pending_out first), or a negative errno on failure
 * (-EPROTO, -ECONNREFUSED for a peer alert, -EBADMSG for a certificate that did not verify);
 * tls_last_error() then says why in words (e.g. "certificate verify failed: ...").
 */
int tls_handshake(struct tls *t);

/*
 * Decrypt application data into out[0..cap). Returns bytes (>0), -EAGAIN when no complete
 * record is buffered, 0 when the peer sent close_notify, or a negative errno.
 */
ssize_t tls_read(struct tls *t, uint8_t *out, size_t cap);

/* Encrypt len bytes of application data into the pending output. Returns 0 or -errno. */
int tls_write(struct tls *t, const uint8_t *data, size_t len);

/* Queue a close_notify alert. */
void tls_close_notify(struct tls *t);

/* Ciphertext waiting to be sent; the caller sends it and buf_consume()s what it took. */
struct buf *tls_pending_out(struct tls *t);

/* Human-readable reason for the last failure (never NULL). */
const char *tls_last_error(const struct tls *t);

/*
 * True once inbound records are decrypted by tlsrec.c (libcrypto) rather than mbedTLS: after
 * a TLS 1.2 AES-GCM handshake, unless DANMAKUD_TLS_NO_OFFLOAD=1 was set when the config was
 * created. Either way the bytes tls_read() returns are the same.
 */
bool tls_offloaded(const struct tls *t);

/* Negotiated suite name, or "" before the handshake completes. */
const char *tls_ciphersuite(const struct tls *t);

#endif
