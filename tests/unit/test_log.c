/*
 * test_log: log_write's line format with stderr captured through a pipe. Server text reaches
 * the log (message types, close reasons), so control characters, DEL, C1 controls and bytes
 * that are not UTF-8 must come out escaped and every call must make exactly one line; valid
 * UTF-8 passes through unchanged. Checked in both formats (timestamped, and journald's "<N>").
 */
#include "log.h"

#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int pipe_rd = -1;

/* Point stderr at a fresh non-blocking pipe; journal: make JOURNAL_STREAM name it. */
static bool capture(bool journal)
{
	int p[2];
	if (pipe(p) < 0 || dup2(p[1], STDERR_FILENO) < 0)
		return false;
	close(p[1]);
	if (pipe_rd >= 0)
		close(pipe_rd);
	pipe_rd = p[0];
	fcntl(pipe_rd, F_SETFL, O_NONBLOCK);
	struct stat st;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	char js[64];
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	if (journal)
		setenv("JOURNAL_STREAM", js, 1);
	else
		unsetenv("JOURNAL_STREAM");
	log_init(LOG_LEVEL_DEBUG);
	return log_to_journal() == journal;
}

/* Everything written to stderr since the last call (NUL-terminated, static). */
static const char *captured(size_t *len)
{
	static char out[8192];
	ssize_t n = read(pipe_rd, out, sizeof(out) - 1);
	if (n < 0)
		n = 0;
	out[n] = '\0';
	*len = (size_t)n;
	return out;
}

/* Log msg at info and check that exactly one line came out whose message part is want. */
static bool logs_as(const char *msg, const char *want)
{
	log_info("%s", msg);
	size_t n;
	const char *line = captured(&n);
	if (n == 0 || line[n - 1] != '\n' || memchr(line, '\n', n) != line + n - 1) {
		printf("# not one line for \"%s\": \"%s\"\n", want, line);
		return false;
	}
	const char *body;
	if (log_to_journal()) {
		if (strncmp(line, "<6>", 3) != 0)
			return false;
		body = line + 3;
	} else {
		body = strstr(line, "Z info: ");
		if (!body)
			return false;
		body += strlen("Z info: ");
	}
	if (strlen(body) != strlen(want) + 1 || strncmp(body, want, strlen(want)) != 0) {
		printf("# got \"%.*s\", want \"%s\"\n", (int)strlen(body) - 1, body, want);
		return false;
	}
	return true;
}

static void cases(void)
{
	ASSERT(logs_as("plain text", "plain text"));
	ASSERT(logs_as("type@=x\n<0>forged", "type@=x\\n<0>forged"));
	ASSERT(logs_as("a\r\nb\tc", "a\\r\\nb\\tc"));
	ASSERT(logs_as("nul-free \x01\x1b[31m\x1f", "nul-free \\x01\\x1b[31m\\x1f"));
	ASSERT(logs_as("del\x7f", "del\\x7f"));
	/* U+009B (CSI as a C1 control) is valid UTF-8 but a terminal control: each byte escaped. */
	ASSERT(logs_as("c1 \xc2\x9b" "2J", "c1 \\xc2\\x9b2J"));
	/* Valid UTF-8 of every length passes through: é, 弹幕, U+1F600. */
	ASSERT(logs_as("\xc3\xa9 \xe5\xbc\xb9\xe5\xb9\x95 \xf0\x9f\x98\x80",
		       "\xc3\xa9 \xe5\xbc\xb9\xe5\xb9\x95 \xf0\x9f\x98\x80"));
	/* Not UTF-8: a stray continuation byte, a truncated sequence, an overlong '/', CESU-8. */
	ASSERT(logs_as("\x80 \xe5\xbc \xc0\xaf", "\\x80 \\xe5\\xbc \\xc0\\xaf"));
	ASSERT(logs_as("\xed\xa0\xbd", "\\xed\\xa0\\xbd"));
	ASSERT(logs_as("back\\slash", "back\\slash"));
	ASSERT(logs_as("", ""));
}

static void plain_format(void)
{
	ASSERT(capture(false));
	cases();
}

static void journal_format(void)
{
	ASSERT(capture(true));
	cases();
	/* The forged priority must not start a line. */
	log_warn("x\n<0>emergency\n");
	size_t n;
	const char *line = captured(&n);
	ASSERT_STR_EQ(line, "<4>x\\n<0>emergency\\n\n");
}

/* A message longer than the line buffer, all of it escaped, still makes one whole line with
 * no escape cut in half. */
static void long_message(void)
{
	ASSERT(capture(true));
	char msg[4000];
	memset(msg, '\n', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	log_info("%s", msg);
	size_t n;
	const char *line = captured(&n);
	ASSERT(n > 100 && n <= 2048);
	ASSERT(memchr(line, '\n', n) == line + n - 1);
	ASSERT(strncmp(line, "<6>", 3) == 0);
	ASSERT_EQ((n - 4) % 2, 0); /* only whole "\\n" pairs after the prefix */
	for (size_t i = 3; i + 1 < n; i += 2)
		ASSERT(line[i] == '\\' && line[i + 1] == 'n');
	/* errno survives a call. */
	errno = 1234;
	log_debug("debug %s", "line");
	ASSERT_EQ(errno, 1234);
	line = captured(&n);
	ASSERT(strstr(line, "[test_log.c:") != NULL);
}

int main(void)
{
	RUN(plain_format);
	RUN(journal_format);
	RUN(long_message);
	TEST_DONE();
}
