/*
 * net: name resolution (c-ares on the loop, with a small cache), TCP connect trying every
 * resolved address in turn (each with its own timeout), reads, bounded queued writes,
 * graceful and hard close.
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
#include <sys/socket.h>
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
	 * close by the peer, UV_ETIMEDOUT when resolution timed out or the last address tried
	 * did, UV_EAI_* for resolution; after several addresses, the last one's error) and
	 * what names the step ("resolve", "connect", "read", "write"). Fires at most once; the
	 * owner is expected to call net_close().
	 */
	void (*on_error)(struct net *n, int err, const char *what, void *user_data);
	/* After net_close: every handle is closed; n is freed right after this returns. */
	void (*on_closed)(struct net *n, void *user_data);
	/*
	 * Optional: resolve only. When set, the resolved addresses (n_addrs >= 1, ports set to
	 * the port given) come here instead of being connected to, and the owner calls
	 * net_close(). For clients that connect by themselves (libpq takes a hostaddr, and its
	 * own resolver would block the loop). A failed resolution still goes to on_error.
	 */
	void (*on_resolved)(struct net *n, const struct sockaddr_storage *addrs, size_t n_addrs,
			    void *user_data);
};

/* DNS answers are cached this long (ms). */
#define NET_DNS_TTL_MS 60000

int net_ctx_create(uv_loop_t *loop, struct net_ctx **out);
/* Close the ctx's handles (call before uv_run's last turn); memory is freed once they are
 * closed. Every net must have been closed first. NULL ok. */
void net_ctx_close(struct net_ctx *ctx);

/*
 * Start an attempt: resolve host (or parse an IP literal) within timeout_ms, then connect to
 * each address in turn until one works, giving each address timeout_ms of its own. The first
 * address tried is number start % (number of addresses), then the ones after it, wrapping
 * around: a caller that passes 0, 1, 2, ... on successive attempts does not wait on the same
 * dead address first every time. cb and user_data must stay valid until on_closed.
 * No callback runs before this returns. Returns 0 or -ENOMEM / -EINVAL.
 */
int net_connect(struct net_ctx *ctx, const char *host, uint16_t port, uint64_t timeout_ms,
		unsigned start, const struct net_callbacks *cb, void *user_data, struct net **out);

/* At most this much memory (bytes plus per-write overhead) waits for the socket. */
#define NET_WRITE_QUEUE_MAX (256 * 1024)

/*
 * Copy and send (or queue) len bytes. Returns 0; UV_ENOBUFS when the bytes would not all be
 * taken by the socket now and the queue already holds data and would pass
 * NET_WRITE_QUEUE_MAX (the peer is not reading: nothing was queued, and the caller should
 * close); UV_ENOTCONN when not open; or another negative libuv error. No callback runs
 * during the call; an error from a queued write later comes through on_error ("write").
 */
int net_write(struct net *n, const uint8_t *data, size_t len);

/*
 * Stop / restart reading (backpressure: TCP flow control then slows the server down).
 * No-ops unless the connection is open; a paused net still writes.
 */
void net_pause(struct net *n);
void net_resume(struct net *n);

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
