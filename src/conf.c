/*
 * conf: the INI config of design.md §6, parsed from a string into a struct conf. One pass over
 * the lines; each key outside [rooms] is found in a single table (key, section, type, bounds,
 * field offset) and validated there. [rooms] lines go through a small hash of room
 * id -> line, so that a duplicate can name both lines. The result is built in a private struct
 * and handed over only on success, so a failed parse leaves the caller's struct untouched at
 * its conf_init state. Debian's libinih-dev was considered and not used: its handler gets no
 * line number unless the library is built with INI_HANDLER_LINENO, and its default build
 * options (200-byte lines, indented lines continuing the previous value, inline ';' comments)
 * do not match this format, so a small hand parser is simpler than working around them.
 *
 * Format: blank lines and lines whose first non-blank character is '#' or ';' are ignored;
 * there are no inline comments (a label may contain '#'). Keys, values and section names are
 * trimmed of spaces and tabs and compared case-sensitively. A UTF-8 BOM at the start and CRLF
 * line ends are accepted. Defaults (250 ms, 45 s, Douyu's servers) are applied by the caller,
 * because command-line flags override the file: here "not set" stays -1 or NULL.
 *
 * [postgresql] url may hold a password: no message quotes it, nor any line that looks like a
 * postgres:// URL with user info (a forgotten "url =", a mistyped key).
 */
#include "conf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "server.h"
#include "text.h"

#define CONF_MAX_LINE 4096

/* SEC_ROOMS stays last: the section names are matched from SEC_RECORDER to SEC_ROOMS. */
enum conf_section {
	SEC_NONE,
	SEC_RECORDER,
	SEC_DOUYU,
	SEC_BILIBILI,
	SEC_POSTGRESQL,
	SEC_CLUSTER,
	SEC_ROOMS
};

static const char *const section_names[] = {
    [SEC_NONE] = "",
    [SEC_RECORDER] = "recorder",
    [SEC_DOUYU] = "douyu",
    [SEC_BILIBILI] = "bilibili",
    [SEC_POSTGRESQL] = "postgresql",
    [SEC_CLUSTER] = "cluster",
    [SEC_ROOMS] = "rooms",
};

enum conf_type {
	CONF_T_STRING,  /* char *, non-empty */
	CONF_T_INT,     /* int in [min, max] */
	CONF_T_SERVERS, /* char *servers[CONF_MAX_SERVERS] plus n_servers */
	CONF_T_BOOL,    /* int: on/true/yes/1 -> 1, off/false/no/0 -> 0 */
	CONF_T_TRANSPORT, /* int: wss, ws or tcp -> enum server_scheme */
	CONF_T_BASE_URL,  /* char *: http:// or https:// URL without query, trailing '/' dropped */
	CONF_T_PG_URL,    /* char *: postgresql://, postgres:// or key=value; never quoted */
	CONF_T_NODE,      /* char *: a node name (conf_node_valid) */
	CONF_T_CLUSTER_MODE, /* int: mirror or shard -> enum conf_cluster_mode */
};

struct conf_key {
	const char *key;
	enum conf_section section;
	enum conf_type type;
	int min, max;
	size_t offset;
};

/* Every setting outside [rooms]. Unset values are NULL, -1 or an empty list (see conf_init). */
static const struct conf_key conf_keys[] = {
    {"database", SEC_RECORDER, CONF_T_STRING, 0, 0, offsetof(struct conf, database)},
    {"flush_ms", SEC_RECORDER, CONF_T_INT, 10, 60000, offsetof(struct conf, flush_ms)},
    {"fts", SEC_RECORDER, CONF_T_BOOL, 0, 1, offsetof(struct conf, fts)},
    {"metrics_file", SEC_RECORDER, CONF_T_STRING, 0, 0, offsetof(struct conf, metrics_file)},
    {"metrics_interval_s", SEC_RECORDER, CONF_T_INT, 1, 3600,
     offsetof(struct conf, metrics_interval_s)},
    {"stats_interval_s", SEC_RECORDER, CONF_T_INT, 0, 86400,
     offsetof(struct conf, stats_interval_s)},
    {"max_queue_mb", SEC_RECORDER, CONF_T_INT, 1, 65536, offsetof(struct conf, max_queue_mb)},
    {"servers", SEC_DOUYU, CONF_T_SERVERS, 0, 0, offsetof(struct conf, servers)},
    {"heartbeat_s", SEC_DOUYU, CONF_T_INT, 1, 3600, offsetof(struct conf, heartbeat_s)},
    {"servers", SEC_BILIBILI, CONF_T_SERVERS, 0, 0, offsetof(struct conf, bili.servers)},
    {"api", SEC_BILIBILI, CONF_T_BASE_URL, 0, 0, offsetof(struct conf, bili.api)},
    {"live_api", SEC_BILIBILI, CONF_T_BASE_URL, 0, 0, offsetof(struct conf, bili.live_api)},
    {"transport", SEC_BILIBILI, CONF_T_TRANSPORT, 0, 0, offsetof(struct conf, bili.transport)},
    {"cookie_file", SEC_BILIBILI, CONF_T_STRING, 0, 0, offsetof(struct conf, bili.cookie_file)},
    {"user_agent", SEC_BILIBILI, CONF_T_STRING, 0, 0, offsetof(struct conf, bili.user_agent)},
    {"api_interval_ms", SEC_BILIBILI, CONF_T_INT, 0, 600000,
     offsetof(struct conf, bili.api_interval_ms)},
    {"heartbeat_s", SEC_BILIBILI, CONF_T_INT, 1, 3600, offsetof(struct conf, bili.heartbeat_s)},
    {"breaker_s", SEC_BILIBILI, CONF_T_INT, 1, 86400, offsetof(struct conf, bili.breaker_s)},
    {"protover", SEC_BILIBILI, CONF_T_INT, 2, 3, offsetof(struct conf, bili.protover)},
    {"url", SEC_POSTGRESQL, CONF_T_PG_URL, 0, 0, offsetof(struct conf, pg.url)},
    {"password_file", SEC_POSTGRESQL, CONF_T_STRING, 0, 0, offsetof(struct conf, pg.password_file)},
    {"keep_local_days", SEC_POSTGRESQL, CONF_T_INT, 0, 36500,
     offsetof(struct conf, pg.keep_local_days)},
    {"node", SEC_CLUSTER, CONF_T_NODE, 0, 0, offsetof(struct conf, pg.node)},
    {"mode", SEC_CLUSTER, CONF_T_CLUSTER_MODE, 0, 0, offsetof(struct conf, pg.mode)},
    {"lease_s", SEC_CLUSTER, CONF_T_INT, 3, 3600, offsetof(struct conf, pg.lease_s)},
    {"max_rooms", SEC_CLUSTER, CONF_T_INT, 1, CONF_MAX_ROOMS, offsetof(struct conf, pg.max_rooms)},
};
/* A CONF_T_SERVERS field is an array of CONF_MAX_SERVERS strings followed by its count. */
_Static_assert(offsetof(struct conf, n_servers) ==
		   offsetof(struct conf, servers) + CONF_MAX_SERVERS * sizeof(char *),
	       "douyu servers count follows the array");
_Static_assert(offsetof(struct conf_bilibili, n_servers) ==
		   offsetof(struct conf_bilibili, servers) + CONF_MAX_SERVERS * sizeof(char *),
	       "bilibili servers count follows the array");
#define N_KEYS (sizeof(conf_keys) / sizeof(conf_keys[0]))

/* Open-addressing set of room ids (0 marks a free slot; ids are positive). */
struct room_slot {
	int64_t id;
	size_t line;
};

struct parser {
	struct conf c;
	const char *file;
	char *err;
	size_t errlen;
	size_t line; /* 1-based number of the line being parsed */
	enum conf_section section;
	size_t cluster_line;      /* the line of the last [cluster] header seen */
	size_t cluster_used_line; /* the [cluster] header above the first [cluster] key; 0: none */
	size_t key_line[N_KEYS]; /* where each table key was set, 0 if not yet */
	size_t rooms_cap;
	struct room_slot *slots;
	size_t n_slots; /* a power of two, or 0 */
};

void conf_init(struct conf *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < N_KEYS; i++)
		if (conf_keys[i].type == CONF_T_INT || conf_keys[i].type == CONF_T_BOOL ||
		    conf_keys[i].type == CONF_T_TRANSPORT ||
		    conf_keys[i].type == CONF_T_CLUSTER_MODE)
			*(int *)((char *)c + conf_keys[i].offset) = -1;
}

void conf_finish(struct conf *c)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		void *field = (char *)c + conf_keys[i].offset;
		if (conf_keys[i].type == CONF_T_PG_URL && *(char **)field) {
			/* It may hold a password: do not leave it in freed memory. */
			char *url = *(char **)field;
			memset(url, 0, strlen(url));
			free(url);
		} else if (conf_keys[i].type == CONF_T_STRING ||
			   conf_keys[i].type == CONF_T_BASE_URL || conf_keys[i].type == CONF_T_NODE) {
			free(*(char **)field);
		} else if (conf_keys[i].type == CONF_T_SERVERS) {
			char **urls = field;
			size_t n = *(size_t *)(urls + CONF_MAX_SERVERS);
			for (size_t j = 0; j < n; j++)
				free(urls[j]);
		}
	}
	for (size_t i = 0; i < c->n_rooms; i++)
		free(c->rooms[i].label);
	free(c->rooms);
	conf_init(c);
}

/* Format "FILE:LINE: message" into the caller's buffer; returns -EINVAL for tail calls. */
static int fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct parser *p, const char *fmt, ...)
{
	if (!p->err || p->errlen == 0)
		return -EINVAL;
	int n = snprintf(p->err, p->errlen, "%s:%zu: ", p->file, p->line);
	if (n >= 0 && (size_t)n < p->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int fail_nomem(struct parser *p)
{
	fail(p, "out of memory");
	return -ENOMEM;
}


static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

static void trim(const char **s, size_t *n)
{
	while (*n > 0 && is_blank((*s)[0])) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && is_blank((*s)[*n - 1]))
		(*n)--;
}

static bool equals(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static bool starts_with(const char *s, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	return n >= l && memcmp(s, lit, l) == 0;
}

bool conf_node_valid(const char *s, size_t n)
{
	if (n < 1 || n > CONF_NODE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!conf_node_char(s[i]))
			return false;
	return true;
}

void conf_node_from_host(const char *host, char out[CONF_NODE_MAX + 1])
{
	size_t n = 0;
	for (; host[n] && n < CONF_NODE_MAX; n++)
		out[n] = conf_node_char(host[n]) ? host[n] : '-';
	out[n] = '\0';
}

/*
 * Whether s[0..n) may carry a PostgreSQL password: a postgres:// or postgresql:// URL with
 * user info (a line where "url =" was forgotten, a mistyped key, a value under another key).
 * Such text is never quoted in a message; the url key's own value never is (set_pg_url).
 */
static bool may_hold_password(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (starts_with(s + i, n - i, "postgres://") ||
		    starts_with(s + i, n - i, "postgresql://"))
			return memchr(s + i, '@', n - i) != NULL;
	return false;
}

#define NOT_SHOWN "(not shown: it may hold a password)"

/* text_quote, except for text that may_hold_password. */
static const char *quote(char q[TEXT_QUOTE_CAP], const char *s, size_t n)
{
	if (may_hold_password(s, n))
		return NOT_SHOWN;
	return text_quote(q, TEXT_QUOTE_CAP, s, n);
}



static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static int set_servers(struct parser *p, const struct conf_key *k, const char *v, size_t n)
{
	char **urls = (char **)((char *)&p->c + k->offset);
	size_t *count = (size_t *)(urls + CONF_MAX_SERVERS);
	if (n == 0)
		return fail(p, "%s: expected one or more space-separated URLs", k->key);
	size_t i = 0;
	while (i < n) {
		while (i < n && is_blank(v[i]))
			i++;
		/* The value is trimmed, so each run of blanks is followed by a URL. */
		size_t start = i;
		while (i < n && !is_blank(v[i]))
			i++;
		if (*count == CONF_MAX_SERVERS)
			return fail(p, "%s: more than %d servers", k->key, CONF_MAX_SERVERS);
		/* Checked by the parser the recorder uses (server.h), so that a URL the file
		 * accepts is one the command line accepts and the recorder can use. */
		char *d = dup_n(v + start, i - start);
		if (!d)
			return fail_nomem(p);
		struct server srv;
		char why[512];
		if (server_parse(d, &srv, why, sizeof(why)) < 0) {
			free(d);
			/* server_parse's reason quotes the URL. */
			if (may_hold_password(v + start, i - start))
				return fail(p, "%s: a server is not a wss://, ws:// or tcp:// URL "
					       NOT_SHOWN, k->key);
			return fail(p, "%s: %s", k->key, why);
		}
		urls[(*count)++] = d;
	}
	return 0;
}

/* An API base such as https://api.bilibili.com or http://127.0.0.1:8080/prefix: a scheme,
 * a host, no query or fragment, no spaces; a trailing '/' is dropped so paths append. */
static int set_base_url(struct parser *p, const struct conf_key *k, const char *v, size_t n,
			void *field)
{
	char q[TEXT_QUOTE_CAP];
	size_t skip = n >= 8 && memcmp(v, "https://", 8) == 0 ? 8
		      : n >= 7 && memcmp(v, "http://", 7) == 0 ? 7
								 : 0;
	bool bad = skip == 0 || n == skip || v[skip] == '/';
	for (size_t i = 0; i < n && !bad; i++)
		bad = (unsigned char)v[i] <= ' ' || v[i] == 0x7f || v[i] == '?' || v[i] == '#' ||
		      v[i] == '@';
	if (bad)
		return fail(p, "%s: expected an http:// or https:// URL without query, got '%s'",
		            k->key, quote(q, v, n));
	while (n > skip && v[n - 1] == '/')
		n--;
	char *d = dup_n(v, n);
	if (!d)
		return fail_nomem(p);
	*(char **)field = d;
	return 0;
}

/*
 * [postgresql] url and --postgresql: a libpq connection string, either a URI (postgresql:// or
 * postgres://) or key=value settings ("host=db port=5432 dbname=chat"). libpq checks the rest
 * when it connects; here only the form, so that a typo is a config error.
 */
const char *conf_pg_url_check(const char *s, size_t n)
{
	/* A key=value string starts with a keyword (letters and '_', as libpq's), then '='. */
	size_t word = 0;
	while (word < n && (s[word] == '_' || (s[word] >= 'a' && s[word] <= 'z') ||
			    (s[word] >= 'A' && s[word] <= 'Z')))
		word++;
	size_t eq = word;
	while (eq < n && is_blank(s[eq]))
		eq++;
	bool key_value = word > 0 && eq < n && s[eq] == '=';
	/* A bare "postgresql://" is valid for libpq: every part from its defaults. */
	bool uri = starts_with(s, n, "postgresql://") || starts_with(s, n, "postgres://");
	if (!uri && !key_value)
		return "expected a postgresql:// or postgres:// URL or key=value settings";
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
			return "control character in the value";
	return NULL;
}

/* The value may hold a password, so no message quotes it. */
static int set_pg_url(struct parser *p, const struct conf_key *k, const char *v, size_t n,
		      void *field)
{
	const char *why = conf_pg_url_check(v, n);
	if (why)
		return fail(p, "%s: %s (the value is not shown: it may hold a password)", k->key,
			    why);
	char *d = dup_n(v, n);
	if (!d)
		return fail_nomem(p);
	*(char **)field = d;
	return 0;
}

static int set_key(struct parser *p, const char *key, size_t key_len, const char *v, size_t n)
{
	char q[TEXT_QUOTE_CAP];
	const struct conf_key *k = NULL, *elsewhere = NULL;
	for (size_t i = 0; i < N_KEYS; i++) {
		if (!equals(key, key_len, conf_keys[i].key))
			continue;
		if (conf_keys[i].section == p->section)
			k = &conf_keys[i];
		else if (!elsewhere) /* the first section that has it */
			elsewhere = &conf_keys[i];
	}
	if (!k && elsewhere)
		return fail(p, "unknown key '%s' in [%s] (it belongs in [%s])", elsewhere->key,
		            section_names[p->section], section_names[elsewhere->section]);
	if (!k)
		return fail(p, "unknown key '%s' in [%s]", quote(q, key, key_len),
		            section_names[p->section]);
	size_t *seen = &p->key_line[k - conf_keys];
	if (*seen)
		return fail(p, "%s already set on line %zu", k->key, *seen);
	*seen = p->line;
	if (k->section == SEC_CLUSTER && !p->cluster_used_line)
		p->cluster_used_line = p->cluster_line;

	void *field = (char *)&p->c + k->offset;
	switch (k->type) {
	case CONF_T_STRING: {
		if (n == 0)
			return fail(p, "%s: expected a value", k->key);
		char *d = dup_n(v, n);
		if (!d)
			return fail_nomem(p);
		*(char **)field = d;
		return 0;
	}
	case CONF_T_INT: {
		int64_t x;
		if (!text_int(v, n, k->min, k->max, &x))
			return fail(p, "%s: expected an integer between %d and %d, got '%s'",
			            k->key, k->min, k->max, quote(q, v, n));
		*(int *)field = (int)x;
		return 0;
	}
	case CONF_T_BOOL: {
		static const char *const yes[] = {"on", "true", "yes", "1"};
		static const char *const no[] = {"off", "false", "no", "0"};
		for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
			if (equals(v, n, yes[i]) || equals(v, n, no[i])) {
				*(int *)field = equals(v, n, yes[i]);
				return 0;
			}
		}
		return fail(p, "%s: expected on or off, got '%s'", k->key, quote(q, v, n));
	}
	case CONF_T_SERVERS:
		return set_servers(p, k, v, n);
	case CONF_T_TRANSPORT: {
		static const char *const names[] = {[SERVER_WSS] = "wss", [SERVER_WS] = "ws",
						    [SERVER_TCP] = "tcp"};
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			if (equals(v, n, names[i])) {
				*(int *)field = (int)i;
				return 0;
			}
		}
		return fail(p, "%s: expected wss, ws or tcp, got '%s'", k->key,
		            quote(q, v, n));
	}
	case CONF_T_BASE_URL:
		return set_base_url(p, k, v, n, field);
	case CONF_T_PG_URL:
		return set_pg_url(p, k, v, n, field);
	case CONF_T_NODE: {
		if (!conf_node_valid(v, n))
			return fail(p, "%s: expected 1 to %d of A-Z a-z 0-9 . _ -, got '%s'",
			            k->key, CONF_NODE_MAX, quote(q, v, n));
		char *d = dup_n(v, n);
		if (!d)
			return fail_nomem(p);
		*(char **)field = d;
		return 0;
	}
	case CONF_T_CLUSTER_MODE: {
		static const char *const names[] = {[CONF_CLUSTER_MIRROR] = "mirror",
						    [CONF_CLUSTER_SHARD] = "shard"};
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			if (equals(v, n, names[i])) {
				*(int *)field = (int)i;
				return 0;
			}
		}
		return fail(p, "%s: expected mirror or shard, got '%s'", k->key, quote(q, v, n));
	}
	}
	return -EINVAL; /* not reached: the switch covers every type */
}

static size_t slot_of(int64_t id, size_t n_slots)
{
	uint64_t h = (uint64_t)id * UINT64_C(0x9e3779b97f4a7c15);
	return (size_t)(h >> 32) & (n_slots - 1);
}

/* Find id's slot: the one holding it, or the free one where it would go. */
static struct room_slot *find_slot(struct room_slot *slots, size_t n_slots, int64_t id)
{
	size_t i = slot_of(id, n_slots);
	while (slots[i].id != 0 && slots[i].id != id)
		i = (i + 1) & (n_slots - 1);
	return &slots[i];
}

/* Keep the set at most half full so that probes stay short. */
static int grow_slots(struct parser *p)
{
	if (p->n_slots && (p->c.n_rooms + 1) * 2 <= p->n_slots)
		return 0;
	size_t n = p->n_slots ? p->n_slots * 2 : 64;
	struct room_slot *s = calloc(n, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_slots; i++)
		if (p->slots[i].id)
			*find_slot(s, n, p->slots[i].id) = p->slots[i];
	free(p->slots);
	p->slots = s;
	p->n_slots = n;
	return 0;
}

/* The set's key of a room: ids are below 2^53, so the platform's index fits above them. */
static int64_t room_key(const struct platform *pf, int64_t id)
{
	return id + ((int64_t)platform_index(pf) << 54);
}

static int add_room(struct parser *p, const char *key, size_t key_len, const char *v, size_t n)
{
	char rs[48];
	char q[TEXT_QUOTE_CAP];
	int64_t id;
	const struct platform *pf;
	int prc = platform_parse_room(key, key_len, &pf, &id);
	if (prc == -ENOENT)
		return fail(p, "room '%s': unknown platform (expected %s)",
		            quote(q, key, key_len), PLATFORM_NAMES);
	if (prc < 0) {
		/* A setting after [rooms] is a likelier mistake than a mistyped room id. */
		for (size_t i = 0; i < N_KEYS; i++)
			if (equals(key, key_len, conf_keys[i].key))
				return fail(p, "unknown key '%s' in [rooms] (it belongs in [%s])",
				            conf_keys[i].key, section_names[conf_keys[i].section]);
		return fail(p, "room id: expected an integer between 1 and %" PRId64 ", got '%s'",
		            CONF_MAX_ROOM_ID, quote(q, key, key_len));
	}
	int64_t rk = room_key(pf, id);
	if (p->n_slots) {
		struct room_slot *s = find_slot(p->slots, p->n_slots, rk);
		if (s->id)
			return fail(p, "room %s already listed on line %zu",
			            platform_room_name(rs, sizeof(rs), pf, id), s->line);
	}
	if (text_utf8_valid_prefix(v, n) != n)
		return fail(p, "room %s: label is not valid UTF-8", platform_room_name(rs, sizeof(rs), pf, id));
	if (p->c.n_rooms == CONF_MAX_ROOMS)
		return fail(p, CONF_TOO_MANY_ROOMS, CONF_MAX_ROOMS);
	if (grow_slots(p) < 0)
		return fail_nomem(p);
	if (p->c.n_rooms == p->rooms_cap) {
		size_t cap = p->rooms_cap ? p->rooms_cap * 2 : 16;
		struct conf_room *r = realloc(p->c.rooms, cap * sizeof(*r));
		if (!r)
			return fail_nomem(p);
		p->c.rooms = r;
		p->rooms_cap = cap;
	}
	char *label = NULL;
	if (n > 0 && !(label = dup_n(v, n)))
		return fail_nomem(p);
	p->c.rooms[p->c.n_rooms++] = (struct conf_room){.platform = pf, .id = id, .label = label};
	*find_slot(p->slots, p->n_slots, rk) = (struct room_slot){.id = rk, .line = p->line};
	return 0;
}

/* One line without its line end: a comment, a [section] or key = value. */
static int parse_line(struct parser *p, const char *s, size_t n)
{
	char q[TEXT_QUOTE_CAP];
	if (memchr(s, '\0', n))
		return fail(p, "NUL byte in line");
	if (n > CONF_MAX_LINE)
		return fail(p, "line longer than %d bytes", CONF_MAX_LINE);
	trim(&s, &n);
	if (n == 0 || s[0] == '#' || s[0] == ';')
		return 0;

	if (s[0] == '[') {
		if (s[n - 1] != ']' || n < 2)
			return fail(p, "expected '[section]', got '%s'", quote(q, s, n));
		const char *name = s + 1;
		size_t name_len = n - 2;
		trim(&name, &name_len);
		for (int i = SEC_RECORDER; i <= SEC_ROOMS; i++) {
			if (equals(name, name_len, section_names[i])) {
				p->section = (enum conf_section)i;
				if (i == SEC_CLUSTER)
					p->cluster_line = p->line;
				return 0;
			}
		}
		return fail(p, "unknown section [%s] (expected [recorder], [douyu], [bilibili], "
			       "[postgresql], [cluster] or [rooms])",
		            quote(q, name, name_len));
	}

	const char *eq = memchr(s, '=', n);
	const char *key = s;
	size_t key_len = eq ? (size_t)(eq - s) : 0;
	if (!eq && p->section == SEC_ROOMS) /* a room without a label needs no '=' */
		return add_room(p, s, n, "", 0);
	trim(&key, &key_len);
	if (!eq || key_len == 0)
		return fail(p, "expected 'key = value', got '%s'", quote(q, s, n));
	/* Only the first '=' separates: a label may contain more. */
	const char *v = eq + 1;
	size_t v_len = n - (size_t)(v - s);
	trim(&v, &v_len);

	switch (p->section) {
	case SEC_NONE:
		return fail(p, "key '%s' is outside any [section]",
		            quote(q, key, key_len));
	case SEC_RECORDER:
	case SEC_DOUYU:
	case SEC_BILIBILI:
	case SEC_POSTGRESQL:
	case SEC_CLUSTER:
		return set_key(p, key, key_len, v, v_len);
	case SEC_ROOMS:
		return add_room(p, key, key_len, v, v_len);
	}
	return -EINVAL; /* not reached */
}

int conf_parse(struct conf *c, const char *file, const char *text, size_t len, char *err,
               size_t errlen)
{
	struct parser p = {.file = file ? file : "(config)", .err = err, .errlen = errlen};
	conf_init(&p.c);
	if (err && errlen)
		err[0] = '\0';

	size_t pos = 0;
	/* Editors on Windows like to start UTF-8 files with a byte order mark. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		pos = 3;
	int rc = 0;
	while (pos < len && rc == 0) {
		p.line++;
		const char *s = text + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos;
		pos += n + (nl ? 1 : 0);
		if (n > 0 && s[n - 1] == '\r')
			n--; /* CRLF */
		rc = parse_line(&p, s, n);
	}
	/* Without PostgreSQL there is no cluster: the nodes meet only there. A url given only
	 * on the command line does not count, so that the file alone says whether it is whole. */
	if (rc == 0 && p.cluster_used_line && !p.c.pg.url) {
		p.line = p.cluster_used_line;
		rc = fail(&p, "[cluster] needs [postgresql] url");
	}
	free(p.slots);
	if (rc < 0) {
		conf_finish(&p.c);
		conf_init(c);
		return rc;
	}
	*c = p.c;
	return 0;
}
