/*
 * notify: systemd's service notification protocol (sd_notify(3)), implemented directly: one
 * datagram per message to the AF_UNIX socket named by $NOTIFY_SOCKET, a file system path
 * ("/run/...") or an abstract name ("@..."). No libuv and no logging: callers decide what a
 * failed send means (nothing, usually: notifications are advisory).
 *
 * libsystemd is not linked because this is the whole of what we need from it: one socket and
 * one sendto(). The socket is non-blocking and every send uses MSG_DONTWAIT, so a service
 * manager that stops reading can never stall the event loop; a message that does not fit is
 * dropped with -EAGAIN.
 */
#ifndef DANMAKUD_NOTIFY_H
#define DANMAKUD_NOTIFY_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

struct notify {
	int fd; /* -1: notifications disabled */
	struct sockaddr_un addr;
	socklen_t addr_len;
	uint64_t watchdog_usec; /* 0: no watchdog requested */
};

/*
 * Prepare n for notifications to socket_path (the value of $NOTIFY_SOCKET; NULL or "" leaves
 * n disabled, which is not an error). watchdog_usec and watchdog_pid are the values of
 * $WATCHDOG_USEC and $WATCHDOG_PID (either may be NULL); see notify_watchdog_usec().
 * Returns 0 (n enabled or disabled), -EINVAL for a path that is neither absolute nor abstract,
 * -ENAMETOOLONG, or the errno of socket(2); on error n is disabled. notify_close() frees it.
 */
int notify_open(struct notify *n, const char *socket_path, const char *watchdog_usec,
                const char *watchdog_pid);
/* Close the socket (if any) and disable n. Safe on a disabled or already closed n. */
void notify_close(struct notify *n);
static inline int notify_enabled(const struct notify *n)
{
	return n->fd >= 0;
}

/*
 * Send one message ("READY=1", "STATUS=...", several "KEY=value" lines joined by '\n').
 * Never blocks. Returns 0 (also when n is disabled), -EAGAIN when the receiver's queue is full
 * (the message is dropped), or another negative errno from sendto(2).
 */
int notify_send(struct notify *n, const char *msg);

/*
 * The watchdog interval asked for by the service manager, in microseconds, or 0 when none:
 * usec must be a positive decimal number, and when pid is given it must equal self (systemd
 * sets WATCHDOG_PID so that a forked child does not ping for its parent). Pure.
 */
uint64_t notify_watchdog_usec(const char *usec, const char *pid, pid_t self);

#endif
