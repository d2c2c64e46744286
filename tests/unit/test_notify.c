/*
 * test_notify: the sd_notify protocol against real AF_UNIX datagram sockets bound by the
 * test: a path in a temporary directory and an abstract name. Also: disabled without
 * NOTIFY_SOCKET, bad addresses refused, a full receiver gives -EAGAIN instead of blocking,
 * and the WATCHDOG_USEC / WATCHDOG_PID rules.
 */
#include "notify.h"

#include "test.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* A receiving datagram socket at path ("@name" for abstract); -1 on failure. */
static int bind_receiver(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	memcpy(a.sun_path, path, len);
	socklen_t al = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	if (path[0] == '@') {
		a.sun_path[0] = '\0';
		al = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	}
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)); /* a bounded wait */
	if (bind(fd, (struct sockaddr *)&a, al) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int recv_str(int fd, char *buf, size_t cap)
{
	ssize_t n = recv(fd, buf, cap - 1, 0);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return (int)n;
}

static char tmpdir[256];

static void test_disabled(void)
{
	struct notify n;
	ASSERT_EQ(notify_open(&n, NULL, "1000000", NULL), 0);
	ASSERT(!notify_enabled(&n));
	ASSERT_EQ(n.watchdog_usec, 0);
	ASSERT_EQ(notify_send(&n, "READY=1"), 0);
	notify_close(&n);
	ASSERT_EQ(notify_open(&n, "", NULL, NULL), 0);
	ASSERT(!notify_enabled(&n));
	notify_close(&n);
}

static void test_bad_addresses(void)
{
	struct notify n;
	ASSERT_EQ(notify_open(&n, "relative/path", NULL, NULL), -EINVAL);
	ASSERT(!notify_enabled(&n));
	ASSERT_EQ(notify_open(&n, "vsock:2:1234", NULL, NULL), -EINVAL);
	ASSERT_EQ(notify_open(&n, "@", NULL, NULL), -ENAMETOOLONG);
	char longp[200];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	ASSERT_EQ(notify_open(&n, longp, NULL, NULL), -ENAMETOOLONG);
	ASSERT(!notify_enabled(&n));
}

static void test_path_socket(void)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/notify.sock", tmpdir);
	int rx = bind_receiver(path);
	ASSERT(rx >= 0);
	struct notify n;
	ASSERT_EQ(notify_open(&n, path, NULL, NULL), 0);
	ASSERT(notify_enabled(&n));
	ASSERT_EQ(notify_send(&n, "READY=1\nSTATUS=rooms live 1/2"), 0);
	ASSERT_EQ(notify_send(&n, "WATCHDOG=1"), 0);
	char buf[256];
	ASSERT_EQ(recv_str(rx, buf, sizeof(buf)), (int)strlen("READY=1\nSTATUS=rooms live 1/2"));
	ASSERT_STR_EQ(buf, "READY=1\nSTATUS=rooms live 1/2");
	ASSERT(recv_str(rx, buf, sizeof(buf)) > 0);
	ASSERT_STR_EQ(buf, "WATCHDOG=1");
	notify_close(&n);
	ASSERT(!notify_enabled(&n));
	notify_close(&n); /* twice is fine */
	close(rx);
	unlink(path);
}

static void test_abstract_socket(void)
{
	char name[108];
	snprintf(name, sizeof(name), "@danmakud-test-notify-%ld", (long)getpid());
	int rx = bind_receiver(name);
	ASSERT(rx >= 0);
	struct notify n;
	ASSERT_EQ(notify_open(&n, name, NULL, NULL), 0);
	ASSERT_EQ(notify_send(&n, "STOPPING=1"), 0);
	char buf[64];
	ASSERT(recv_str(rx, buf, sizeof(buf)) > 0);
	ASSERT_STR_EQ(buf, "STOPPING=1");
	notify_close(&n);
	close(rx);
}

/* Nobody reads: sends must fail with -EAGAIN once the receive queue is full, never block
 * (a blocking send would hang here until meson's timeout). */
static void test_full_receiver_does_not_block(void)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/full.sock", tmpdir);
	int rx = bind_receiver(path);
	ASSERT(rx >= 0);
	struct notify n;
	ASSERT_EQ(notify_open(&n, path, NULL, NULL), 0);
	int rc = 0, sent = 0;
	char msg[1024];
	memset(msg, 'x', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	memcpy(msg, "STATUS=", 7);
	while (sent < 100000 && (rc = notify_send(&n, msg)) == 0)
		sent++;
	printf("# %d datagrams queued before -EAGAIN\n", sent);
	ASSERT_EQ(rc, -EAGAIN);
	ASSERT_GT(sent, 0);
	notify_close(&n);
	close(rx);
	unlink(path);
}

/* A receiver that went away: an error code, not a signal or a crash. */
static void test_receiver_gone(void)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/gone.sock", tmpdir);
	struct notify n;
	ASSERT_EQ(notify_open(&n, path, NULL, NULL), 0);
	ASSERT_EQ(notify_send(&n, "READY=1"), -ENOENT);
	notify_close(&n);
}

static void test_watchdog_rules(void)
{
	ASSERT_EQ(notify_watchdog_usec("30000000", NULL, 42), 30000000);
	ASSERT_EQ(notify_watchdog_usec("30000000", "", 42), 30000000);
	ASSERT_EQ(notify_watchdog_usec("30000000", "42", 42), 30000000);
	ASSERT_EQ(notify_watchdog_usec("30000000", "43", 42), 0); /* meant for another process */
	ASSERT_EQ(notify_watchdog_usec("30000000", "4x", 42), 0);
	ASSERT_EQ(notify_watchdog_usec(NULL, NULL, 42), 0);
	ASSERT_EQ(notify_watchdog_usec("", NULL, 42), 0);
	ASSERT_EQ(notify_watchdog_usec("0", NULL, 42), 0);
	ASSERT_EQ(notify_watchdog_usec("-5", NULL, 42), 0);
	ASSERT_EQ(notify_watchdog_usec("10s", NULL, 42), 0);
	ASSERT_EQ(notify_watchdog_usec("99999999999999999999999", NULL, 42), 0);

	struct notify n;
	char path[300];
	snprintf(path, sizeof(path), "%s/wd.sock", tmpdir);
	ASSERT_EQ(notify_open(&n, path, "2000000", NULL), 0);
	ASSERT_EQ(n.watchdog_usec, 2000000);
	notify_close(&n);
	char other[32];
	snprintf(other, sizeof(other), "%ld", (long)getpid() + 1);
	ASSERT_EQ(notify_open(&n, path, "2000000", other), 0);
	ASSERT_EQ(n.watchdog_usec, 0);
	notify_close(&n);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/dmk-notify-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		printf("Bail out! mkdtemp failed\n");
		return 1;
	}
	RUN(test_disabled);
	RUN(test_bad_addresses);
	RUN(test_path_socket);
	RUN(test_abstract_socket);
	RUN(test_full_receiver_does_not_block);
	RUN(test_receiver_gone);
	RUN(test_watchdog_rules);
	rmdir(tmpdir);
	TEST_DONE();
}
