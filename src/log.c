/*
 * log: one line per event to stderr. Under journald (JOURNAL_STREAM naming our stderr) lines
 * carry "<N>" priority prefixes (sd-daemon(3)) and no time, since journald adds its own;
 * elsewhere a UTC timestamp and a level word. Debug lines add [file:line]. Each line is
 * written with a single write(2) so concurrent writers (none here, but a shell redirect
 * shared with tests) never interleave within a line. The formatted message is escaped: it
 * carries server text (a message type, a close reason), and a raw newline followed by "<0>"
 * would otherwise forge a line of its own, at emergency priority under journald.
 */
#include "log.h"

#include "text.h"

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

/*
 * Copy in[0..n) to out[0..cap) with control characters (C0, DEL and the C1 range) and bytes
 * that are not UTF-8 written as "\\n", "\\r", "\\t" or "\\xHH", so that whatever the message
 * holds it stays one printable line; valid UTF-8 is copied unchanged. Stops before an escape
 * or a character that would not fit whole. Returns the bytes written.
 */
static size_t escape_into(char *out, size_t cap, const char *in, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)in;
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		uint32_t c;
		size_t len = text_utf8_decode(u + i, n - i, &c);
		if (len && c >= 0x20 && c != 0x7f && (c < 0x80 || c > 0x9f)) {
			if (o + len > cap)
				break;
			memcpy(out + o, u + i, len);
			o += len;
			i += len;
			continue;
		}
		/* One escape per byte: a C1 control's two bytes, or one stray byte. */
		size_t bytes = len ? len : 1;
		for (size_t k = 0; k < bytes; k++) {
			unsigned char b = u[i + k];
			char e = b == '\n' ? 'n' : b == '\r' ? 'r' : b == '\t' ? 't' : 0;
			size_t need = e ? 2 : 4;
			if (o + need > cap)
				return o;
			out[o++] = '\\';
			if (e) {
				out[o++] = e;
			} else {
				out[o++] = 'x';
				out[o++] = hex[b >> 4];
				out[o++] = hex[b & 15];
			}
		}
		i += bytes;
	}
	return o;
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
	if (n > sizeof(out) - 1)
		n = sizeof(out) - 1;
	char msg[sizeof(out)];
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (m > 0)
		n += escape_into(out + n, sizeof(out) - 1 - n, msg,
				 (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1);
	out[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, out, n);
	(void)w;
	errno = saved;
}
