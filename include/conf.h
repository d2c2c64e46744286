/*
 * conf: the INI config (design.md §6) parsed from a string into a validated struct conf.
 * Pure: the caller reads the file. Errors name the file and line.
 */
#ifndef DANMAKUD_CONF_H
#define DANMAKUD_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONF_MAX_SERVERS 64
/* Room ids are JSON-safe integers: 1 .. 2^53. */
#define CONF_MAX_ROOM_ID (INT64_C(1) << 53)
/*
 * The most rooms one recorder takes, however they are given (config file, command line, or
 * both): one bound, and one message for it (a printf format taking CONF_MAX_ROOMS).
 */
#define CONF_MAX_ROOMS 100000
#define CONF_TOO_MANY_ROOMS "too many rooms (max %d)"

struct platform;

/* A room is (platform, id): `douyu:288016`, `bilibili:76`, or a bare number (Douyu). */
struct conf_room {
	const struct platform *platform;
	int64_t id;  /* as configured (a Bilibili short id stays short here) */
	char *label; /* NULL when empty */
};

/* [bilibili]: where its HTTP API and fallback hosts are, and how to behave there. */
struct conf_bilibili {
	char *servers[CONF_MAX_SERVERS]; /* fallback hosts when getDanmuInfo fails */
	size_t n_servers;
	char *api;          /* NULL: https://api.bilibili.com */
	char *live_api;     /* NULL: https://api.live.bilibili.com */
	int transport;      /* -1: not set (wss); else enum server_scheme */
	char *cookie_file;  /* NULL: guest */
	char *user_agent;   /* NULL: the built-in browser UA */
	int api_interval_ms; /* -1: not set (1000) */
	int heartbeat_s;    /* -1: not set (30) */
	int breaker_s;      /* -1: not set (120): how long an HTTP 412 stops every API call */
	int protover;       /* -1: not set (3 brotli); 2 zlib */
};

/* [cluster] mode */
enum conf_cluster_mode { CONF_CLUSTER_MIRROR = 0, CONF_CLUSTER_SHARD = 1 };

/* A cluster node name ([cluster] node, --node, the host name by default): 1..CONF_NODE_MAX
 * characters of [A-Za-z0-9._-]. */
#define CONF_NODE_MAX 63

/* Whether ch may appear in a node name. */
static inline bool conf_node_char(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '-';
}

/* Whether s[0..n) is a valid node name. */
bool conf_node_valid(const char *s, size_t n);
/* A node name made of a host name (NUL-terminated): every byte outside the set becomes '-',
 * and the result is cut to CONF_NODE_MAX. out gets "" (not valid) for an empty host name. */
void conf_node_from_host(const char *host, char out[CONF_NODE_MAX + 1]);

/* Whether s[0..n) has the form of a libpq connection string ([postgresql] url, --postgresql):
 * a postgresql:// or postgres:// URL, or key=value settings, without control characters
 * (tabs allowed). NULL when it has, else the reason, which never quotes s (it may hold a
 * password). */
const char *conf_pg_url_check(const char *s, size_t n);

/* [postgresql] and [cluster]: ship committed rows to PostgreSQL; several recorders (README
 * "Many machines"). */
struct conf_postgresql {
	char *url;            /* [postgresql] url: postgresql://... or key=value; NULL: none */
	char *password_file;  /* [postgresql] password_file; NULL: the URL's, or PGPASSFILE */
	int keep_local_days;  /* -1: not set (keep every local row); 0..36500: delete rows older
	                       * than this many days from the local database once shipped */
	char *node;           /* [cluster] node: 1..63 of [A-Za-z0-9._-]; NULL: host name */
	int mode;             /* [cluster] mode: -1 not set (mirror), else conf_cluster_mode */
	int lease_s;          /* [cluster] lease_s: -1 not set (30); 3..3600 */
	int max_rooms;        /* [cluster] max_rooms: -1 not set (no limit); 1..CONF_MAX_ROOMS */
};

struct conf {
	/* [recorder] */
	char *database;       /* NULL: not set */
	int flush_ms;         /* -1: not set */
	int fts;              /* -1: not set (keep what the database has), 0 off, 1 on */
	char *metrics_file;   /* NULL: not set (no metrics file) */
	int metrics_interval_s; /* -1: not set */
	int stats_interval_s; /* -1: not set; 0: no periodic stats line */
	int max_queue_mb;     /* -1: not set (memory bound of the write queue) */
	/* [douyu] */
	char *servers[CONF_MAX_SERVERS];
	size_t n_servers;
	int heartbeat_s;      /* -1: not set */
	/* [bilibili] */
	struct conf_bilibili bili;
	/* [postgresql], [cluster] */
	struct conf_postgresql pg;
	/* [rooms] */
	struct conf_room *rooms;
	size_t n_rooms;
};

void conf_init(struct conf *c);
void conf_finish(struct conf *c);

/*
 * Parse text[0..len) (file names the source in messages). Unknown sections or keys, bad
 * values, duplicate rooms are errors, and so is a [cluster] key in a file without a
 * [postgresql] url (reported at that [cluster] line). No message shows the url's value.
 * Returns 0, or -EINVAL with "FILE:LINE: reason" in err, or -ENOMEM. On error c is left as
 * conf_init made it.
 */
int conf_parse(struct conf *c, const char *file, const char *text, size_t len, char *err,
	       size_t errlen);

#endif
