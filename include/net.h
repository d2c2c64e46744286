/*
 * net: name resolution (c-ares on the loop, with a small cache), TCP connect with a timeout
 * trying every resolved address in turn, reads, queued writes, graceful and hard close.
 *
 * One struct net_ctx per loop holds the c-ares channel, the DNS cache and the read buffer
 * that every connection shares (libuv calls alloc, read and the read callback back to back,
 * so one buffer serves all). Each connection attempt is a fresh heap struct net, freed by
 * net.c after on_closed has run; a uv_tcp_t is never reused.
 */
#ifndef DANMAKUD_NET_H
#define DANMAKUD_NET_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct net_ctx;
struct net;

struct net_callbacks {
	/* TCP connected; reads have started. */
	void (*on_connected)(struct net *n, void *user_data);
	/* Bytes received (borrowed for the call). */
	void (*on_read)(struct net *n, const uint8_t *data, size_t len, void *user_data);
	/*
	 * The attempt failed or the peer ended it: err is a libuv code (UV_EOF for an orderly
	 * close by the peer, UV_ETIMEDOUT for the connect timeout, UV_EAI_* for resolution) and
	 * what names the step ("resolve", "connect", "read", "write"). Fires at most once; the
	 * owner is expected to call net_close().
	 */
	void (*on_error)(struct net *n, int err, const char *what, void *user_data);
	/* After net_close: every handle is closed; n is freed right after this returns. */
	void (*on_closed)(struct net *n, void *user_data);
};

/* DNS answers are cached this long (ms). */
#define NET_DNS_TTL_MS 60000

int net_ctx_create(uv_loop_t *loop, struct net_ctx **out);
/* Close the ctx's handles (call before uv_run's last turn); memory is freed once they are
 * closed. Every net must have been closed first. NULL ok. */
void net_ctx_close(struct net_ctx *ctx);

/*
 * Start an attempt: resolve host (or parse an IP literal), connect to each address in turn
 * until one works, all within timeout_ms. cb and user_data must stay valid until on_closed.
 * No callback runs before this returns. Returns 0 or -ENOMEM / -EINVAL.
 */
int net_connect(struct net_ctx *ctx, const char *host, uint16_t port, uint64_t timeout_ms,
		const struct net_callbacks *cb, void *user_data, struct net **out);

/* Copy and send (or queue) len bytes. Returns 0 or a negative libuv error (the attempt is
 * then failing and on_error will follow). */
int net_write(struct net *n, const uint8_t *data, size_t len);

/*
 * Stop / restart reading (backpressure: TCP flow control then slows the server down).
 * No-ops unless the connection is open; a paused net still writes.
 */
void net_pause(struct net *n);
void net_resume(struct net *n);

/* Bytes queued in libuv but not yet written to the socket. */
size_t net_write_queue_size(const struct net *n);

/*
 * Stop reading, let queued writes finish (at most a short deadline), then close: for logout
 * at shutdown. on_closed follows. Calling net_close afterwards makes it immediate.
 */
void net_shutdown(struct net *n);

/* Close now; pending writes are cancelled. Idempotent. on_closed follows, asynchronously. */
void net_close(struct net *n);

/* "ip:port" of the connected peer, or "" before connect. */
const char *net_peer(const struct net *n);

#endif
