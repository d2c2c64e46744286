/*
 * fuzz_tls: libFuzzer target for the TLS client before its handshake completes: whatever a
 * server (or anything on the path) sends in answer to our ClientHello. Byte 0 picks the
 * config (bit 0: insecure, which accepts any certificate and so reaches the key exchange;
 * else the system CA bundle, as danmakud runs by default) and the host name (bit 1); byte 1
 * is the chunk size (0: all at once); the rest is fed with tls_feed() as the server's bytes,
 * tls_handshake() after every chunk, the pending output consumed as a socket would.
 *
 * The promises of tls.h are checked with __builtin_trap(): the first handshake step queues a
 * ClientHello and asks for more; tls_feed() accepts any bytes; a handshake never completes
 * against bytes that hold no server key (nothing can forge a Finished); a failure is sticky
 * (the same code again), has a message, and leaves tls_read/tls_write refusing.
 */
#include "tls.h"
#include "fuzz.h"

#include <errno.h>
#include <string.h>

/* Made once: a config holds the RNG and the parsed CA bundle, shared as in rec.c. */
static struct tls_config *config(bool insecure)
{
	static struct tls_config *cfg[2];
	static bool tried[2];
	if (!tried[insecure]) {
		char err[256];
		tried[insecure] = true;
		if (tls_config_create(NULL, insecure, &cfg[insecure], err, sizeof(err)) != 0)
			cfg[insecure] = NULL;
		check(insecure == false || cfg[insecure] != NULL);
	}
	return cfg[insecure];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	bool insecure = data[0] & 1;
	const char *host = data[0] & 2 ? "danmuproxy.douyu.com" : "localhost";
	size_t chunk = data[1];
	data += 2;
	size -= 2;
	struct tls_config *cfg = config(insecure);
	if (!cfg) /* no system CA bundle on this machine */
		cfg = config(true);

	struct tls *t = NULL;
	check(tls_create(cfg, host, &t) == 0 && t != NULL);
	check(tls_handshake(t) == -EAGAIN);
	struct buf *out = tls_pending_out(t);
	check(out->len > 5 && buf_head(out)[0] == 0x16); /* a handshake record: ClientHello */
	buf_consume(out, out->len);
	check(strcmp(tls_ciphersuite(t), "") == 0);

	if (chunk == 0)
		chunk = size ? size : 1;
	int rc = -EAGAIN;
	for (size_t pos = 0; pos < size && rc == -EAGAIN; pos += chunk) {
		size_t n = size - pos < chunk ? size - pos : chunk;
		int frc = tls_feed(t, data + pos, n);
		check(frc == 0 || frc == -ENOMEM);
		if (frc != 0)
			break;
		rc = tls_handshake(t);
		check(rc != 0);
		buf_consume(out, out->len);
	}
	uint8_t rx[64];
	if (rc == -EAGAIN) {
		check(tls_read(t, rx, sizeof(rx)) == -ENOTCONN);
		check(tls_write(t, rx, 1) == -ENOTCONN);
	} else {
		check(rc < 0);
		check(strcmp(tls_last_error(t), "no error") != 0 && tls_last_error(t)[0]);
		check(tls_handshake(t) == rc);
		check(tls_read(t, rx, sizeof(rx)) == rc);
		check(tls_write(t, rx, 1) == rc);
		tls_close_notify(t);
	}
	tls_destroy(t);
	return 0;
}
