/*
 * notify: sd_notify(3) without libsystemd. The protocol is one AF_UNIX datagram per message,
 * newline-separated KEY=value assignments, sent to the socket named by $NOTIFY_SOCKET: an
 * absolute path, or an abstract socket name written with a leading '@' (the '@' becomes the
 * NUL byte that starts an abstract sun_path, and the address length must not include a
 * trailing NUL). We open one SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC socket for the life of
 * the process and send unconnected with sendto(), so a service manager that re-creates its
 * socket (daemon-reexec) is still reached. Linking libsystemd for this would add a dependency
 * (and its transitive ones) for about forty lines of code.
 */
#include "notify.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "text.h"

int notify_open(struct notify *n, const char *socket_path, const char *watchdog_usec,
                const char *watchdog_pid)
{
	memset(n, 0, sizeof(*n));
	n->fd = -1;
	if (!socket_path || !*socket_path)
		return 0;
	size_t len = strlen(socket_path);
	if (socket_path[0] != '/' && socket_path[0] != '@')
		return -EINVAL; /* e.g. systemd's newer "vsock:" addresses: not for us */
	if (len >= sizeof(n->addr.sun_path) || (socket_path[0] == '@' && len < 2))
		return -ENAMETOOLONG;
	n->addr.sun_family = AF_UNIX;
	memcpy(n->addr.sun_path, socket_path, len);
	if (socket_path[0] == '@') {
		n->addr.sun_path[0] = '\0';
		n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	} else {
		n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	}
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	n->fd = fd;
	n->watchdog_usec = notify_watchdog_usec(watchdog_usec, watchdog_pid, getpid());
	return 0;
}

void notify_close(struct notify *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}

int notify_send(struct notify *n, const char *msg)
{
	if (n->fd < 0)
		return 0;
	ssize_t w = sendto(n->fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL,
	                   (const struct sockaddr *)&n->addr, n->addr_len);
	if (w < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return 0;
}


uint64_t notify_watchdog_usec(const char *usec, const char *pid, pid_t self)
{
	int64_t v, p;
	if (!text_int_str(usec, 1, INT64_MAX, &v))
		return 0;
	if (pid && *pid && (!text_int_str(pid, 1, INT64_MAX, &p) || p != (int64_t)self))
		return 0;
	return (uint64_t)v;
}
