/*
 * tlsrec: the inbound half of a TLS 1.2 AES-GCM record layer (RFC 5246 §6.2, RFC 5288),
 * decrypting with OpenSSL's libcrypto. tls.c hands a connection over to it once mbedTLS has
 * finished the handshake, because libcrypto's AES-GCM is several times faster than mbedTLS's;
 * mbedTLS keeps the handshake, the certificate checks and every write (the split Linux kTLS
 * makes). It reads whole records from a struct buf the caller fills and never touches sockets.
 */
#ifndef DANMAKUD_TLSREC_H
#define DANMAKUD_TLSREC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

struct tlsrec;

/* RFC 5246 §6.2.3: a TLSCiphertext fragment longer than this is a fatal record_overflow. */
#define TLSREC_MAX_CIPHERTEXT (16384 + 2048)
/* The largest plaintext a record may carry (§6.2.1). */
#define TLSREC_MAX_PLAINTEXT 16384

/*
 * New decryptor for the server-to-client direction. key: the server write key, 16 or 32
 * bytes (AES-128/256-GCM); iv: the 4-byte implicit part of the nonce (server write IV);
 * seq: the sequence number of the next record. The key is copied (and wiped on destroy).
 * Returns 0, -EINVAL for a bad key length, or -ENOMEM.
 */
int tlsrec_create(const uint8_t *key, size_t keylen, const uint8_t iv[4], uint64_t seq,
                  struct tlsrec **out);
void tlsrec_destroy(struct tlsrec *r); /* accepts NULL; wipes the key */

/*
 * Decrypt the next application data from the ciphertext in `in` into out[0..cap), consuming
 * only whole records from `in` (a partial record stays there for the next call). Like
 * mbedtls_ssl_read, one call returns bytes of one record only; a record larger than cap is
 * kept decrypted inside and handed out over several calls. Empty records are skipped.
 * Returns the number of bytes (> 0); -EAGAIN when `in` holds no complete record and nothing
 * decrypted is pending; 0 when the peer sent close_notify (and on every call after it); or a
 * negative errno, sticky, with tlsrec_last_error() saying why: -EPROTO (bad record MAC, a
 * malformed or oversized record, a handshake, ChangeCipherSpec or unknown record, a warning
 * alert other than close_notify, sequence numbers exhausted), -ECONNREFUSED (a fatal alert)
 * or -ENOMEM. Plaintext whose tag does not verify is never returned (out is wiped).
 * cap must be > 0.
 */
ssize_t tlsrec_read(struct tlsrec *r, struct buf *in, uint8_t *out, size_t cap);

/* The sequence number of the next record the peer will send. */
uint64_t tlsrec_seq(const struct tlsrec *r);

/* The name of TLS alert desc (e.g. "handshake_failure"), or "unknown alert". */
const char *tlsrec_alert_name(unsigned desc);

/* Why the last call failed, in words (never NULL; "" when nothing failed). */
const char *tlsrec_last_error(const struct tlsrec *r);

#endif
