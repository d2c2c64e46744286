/*
 * log: one line per event to stderr. Under journald (JOURNAL_STREAM naming our stderr) lines
 * carry "<N>" priority prefixes (sd-daemon(3)) and no time, since journald adds its own;
 * elsewhere a UTC timestamp and a level word. Debug lines add [file:line]. Each line is
 * written with a single write(2) so concurrent writers (none here, but a shell redirect
 * shared with tests) never interleave within a line.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int log_max_level = LOG_LEVEL_INFO;
static bool log_journal;

/* JOURNAL_STREAM is "DEV:INODE" of the stream systemd connected; it is inherited by
 * children whose stderr may go elsewhere, so compare it with what stderr really is. */
static bool stderr_is_journal(const char *js)
{
	if (!js || !*js)
		return false;
	unsigned long long dev, ino;
	char tail;
	if (sscanf(js, "%llu:%llu%c", &dev, &ino, &tail) != 2)
		return false;
	struct stat st;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(int max_level)
{
	log_max_level = max_level;
	log_journal = stderr_is_journal(getenv("JOURNAL_STREAM"));
}

bool log_to_journal(void)
{
	return log_journal;
}

static const char *level_word(int level)
{
	switch (level) {
	case LOG_LEVEL_ERR:
		return "error";
	case LOG_LEVEL_WARN:
		return "warning";
	case LOG_LEVEL_NOTICE:
		return "notice";
	case LOG_LEVEL_INFO:
		return "info";
	default:
		return "debug";
	}
}

void log_write(int level, const char *file, int line, const char *fmt, ...)
{
	int saved = errno;
	char out[2048];
	size_t n = 0;
	if (log_journal) {
		n = (size_t)snprintf(out, sizeof(out), "<%d>", level);
	} else {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		n = strftime(out, sizeof(out), "%Y-%m-%dT%H:%M:%S", &tm);
		n += (size_t)snprintf(out + n, sizeof(out) - n, ".%03ldZ %s: ",
				      (long)(ts.tv_nsec / 1000000), level_word(level));
	}
	if (level >= LOG_LEVEL_DEBUG && n < sizeof(out)) {
		const char *base = strrchr(file, '/');
		n += (size_t)snprintf(out + n, sizeof(out) - n, "[%s:%d] ", base ? base + 1 : file,
				      line);
	}
	if (n < sizeof(out)) {
		va_list ap;
		va_start(ap, fmt);
		int m = vsnprintf(out + n, sizeof(out) - n, fmt, ap);
		va_end(ap);
		if (m > 0)
			n += (size_t)m;
	}
	if (n > sizeof(out) - 2)
		n = sizeof(out) - 2;
	out[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, out, n);
	(void)w;
	errno = saved;
}
