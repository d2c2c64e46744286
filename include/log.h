/*
 * log: leveled logging to stderr.
 *
 * Under systemd (JOURNAL_STREAM naming stderr) every line carries a "<N>" priority prefix and no
 * timestamp, since journald adds its own; otherwise lines start with an ISO-8601 UTC time.
 * The level is checked before any formatting. errno is preserved across every call.
 */
#ifndef DANMAKUD_LOG_H
#define DANMAKUD_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_LEVEL_ERR = 3,
	LOG_LEVEL_WARN = 4,
	LOG_LEVEL_NOTICE = 5,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

extern int log_max_level;

/*
 * Set the threshold and decide the line format from the environment: journald format when
 * JOURNAL_STREAM ("DEV:INODE") names the file that stderr is, as systemd.exec(5) advises
 * (a redirected stderr under a unit gets timestamps again).
 */
void log_init(int max_level);
/* True when lines carry "<N>" prefixes for journald (decided by log_init). */
bool log_to_journal(void);

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
void log_write(int level, const char *file, int line, const char *fmt, ...);

#define LOG_AT(lvl, ...)                                                                           \
	do {                                                                                       \
		if ((lvl) <= log_max_level)                                                        \
			log_write((lvl), __FILE__, __LINE__, __VA_ARGS__);                         \
	} while (0)
#define log_err(...) LOG_AT(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_notice(...) LOG_AT(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) LOG_AT(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
