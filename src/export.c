/*
 * export: `danmakud export` and `danmakud fts`, the two commands that work on a database
 * instead of recording into it. export opens the database read-only (a missing file is an
 * error, never created), finds the room (platform:id, a Bilibili short id, or a bare id that one
 * platform alone has) and checks the range, then steps one prepared SELECT over the
 * messages_room_ts index and writes each row as it comes: one reusable row buffer, so memory
 * stays constant however large the database. XML follows the Bilibili danmaku format as
 * BililiveRecorder writes it and DanmakuFactory reads it (<i>, <d p="time,mode,size,color,ts,
 * pool,uid,id" user="...">, <gift ts giftname giftcount uid user/>, and for Bilibili <sc> and
 * <guard>); NDJSON is one object per message with the data and decoded columns nested, one
 * line each whatever the database holds. Output to a
 * file goes to FILE.part (created exclusively, never through a symbolic link) and is renamed
 * only when complete, so a failed export never leaves a truncated file under the real name.
 * fts switches the full-text index through store_open (which owns that SQL).
 */
#include "export.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "store.h"
#include "text.h"

static const char export_usage[] =
	"Usage: danmakud export --db FILE --room [PLATFORM:]ID [--from T] [--to T] "
	"--format xml|ndjson [-o OUT]\n"
	"Write one room's messages from a danmakud database.\n"
	"\n"
	"  -d, --db FILE        the database (opened read-only; must exist)\n"
	"  -r, --room ROOM      the room: douyu:ID, bilibili:ID (the real id or the short one),\n"
	"                       or ID alone when only one platform has that room\n"
	"      --from T         first time included (default: the first message)\n"
	"      --to T           first time excluded (default: after the last message)\n"
	"  -f, --format F       xml: Bilibili danmaku XML (chat and gifts; Bilibili super chats\n"
	"                       and guards too) for DanmakuFactory, BililiveRecorder tools and\n"
	"                       players; times are seconds after --from, or after the first\n"
	"                       message without --from\n"
	"                       ndjson: one JSON object per message, every type\n"
	"  -o, --output OUT     write to OUT.part, renamed to OUT when complete (default:\n"
	"                       standard output); an existing OUT.part is never overwritten\n"
	"\n"
	"T is unix seconds, unix milliseconds, or local time YYYY-MM-DD[ HH:MM[:SS]].\n"
	"Exit status: 0 done, 1 no such database or room, bad range or write error, 2 usage.\n";

static const char fts_usage[] =
	"Usage: danmakud fts --db FILE [on|off|status]\n"
	"Build (on) or drop (off) the full-text index of an existing database, or show whether\n"
	"it has one (status, the default). Building indexes every chat line already stored.\n"
	"The recorder keeps what the database has unless the config sets [recorder] fts.\n"
	"on and off are refused (exit 1) while a recorder holds the database.\n";

/* ---- pure pieces ---- */


/* Exactly n digits at s into *out. */
static bool digits(const char *s, size_t n, int *out)
{
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

int export_parse_time(const char *s, int64_t *ms)
{
	size_t n = strlen(s);
	int64_t v;
	if (text_int(s, n, 0, INT64_C(9999999999999999), &v)) {
		/* The same rule as the chat view's sent_at: below 1e11 it cannot be ms after 1973. */
		*ms = v < INT64_C(100000000000) ? v * 1000 : v;
		return 0;
	}
	struct tm tm = {0};
	int y, mo, d, h = 0, mi = 0, sec = 0;
	if (n < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !digits(s + 8, 2, &d))
		return -EINVAL;
	if (n > 10) {
		if ((s[10] != ' ' && s[10] != 'T') || (n != 16 && n != 19) || !digits(s + 11, 2, &h) ||
		    s[13] != ':' || !digits(s + 14, 2, &mi))
			return -EINVAL;
		if (n == 19 && (s[16] != ':' || !digits(s + 17, 2, &sec)))
			return -EINVAL;
	}
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	tm.tm_isdst = -1; /* let the zone rules decide */
	time_t t = mktime(&tm);
	/* mktime normalises 2025-02-30 to March 2: a changed date means it did not exist. */
	if (t == (time_t)-1 || tm.tm_year != y - 1900 || tm.tm_mon != mo - 1 || tm.tm_mday != d)
		return -EINVAL;
	*ms = (int64_t)t * 1000;
	return 0;
}

int export_parse_room(const char *s, char *platform, size_t cap, int64_t *id)
{
	const char *colon = strchr(s, ':');
	size_t n = colon ? (size_t)(colon - s) : 0;
	if (colon && (n == 0 || n >= cap))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 'a' || s[i] > 'z')
			return -EINVAL;
	if (!text_int_str(colon ? colon + 1 : s, 1, CONF_MAX_ROOM_ID, id))
		return -EINVAL;
	memcpy(platform, s, n);
	platform[n] = '\0';
	return 0;
}

uint32_t export_douyu_color(const char *col)
{
	static const uint32_t rgb[] = {0xffffff, 0xff0000, 0x1e87f0, 0x7ac84b,
	                               0xff7f00, 0x9b39f4, 0xff69b4};
	if (col && col[0] >= '1' && col[0] <= '6' && col[1] == '\0')
		return rgb[col[0] - '0'];
	return 0xffffff;
}

static bool xml_char_ok(uint32_t c)
{
	if (c == 0x9 || c == 0xa || c == 0xd)
		return true;
	if (c < 0x20 || (c >= 0x7f && c <= 0x9f))
		return false;
	return c != 0xfffe && c != 0xffff;
}

int export_xml_escape(struct buf *b, const char *s, size_t n, bool attr)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run = 0; /* run: bytes at u[i - run .. i) to copy unchanged */
	while (i < n) {
		uint32_t c;
		size_t len = text_utf8_decode(u + i, n - i, &c);
		const char *rep = NULL;
		bool drop = len == 0 || !xml_char_ok(c);
		if (!drop) {
			switch (c) {
			case '&': rep = "&amp;"; break;
			case '<': rep = "&lt;"; break;
			case '>': rep = "&gt;"; break;
			case '"': rep = attr ? "&quot;" : NULL; break;
			case '\r': rep = "&#13;"; break;
			case '\n': rep = attr ? "&#10;" : NULL; break;
			case '\t': rep = attr ? "&#9;" : NULL; break;
			}
		}
		if (!drop && !rep) {
			i += len;
			run += len;
			continue;
		}
		if (run && buf_append(b, u + i - run, run) < 0)
			return -ENOMEM;
		run = 0;
		if (rep && buf_append_str(b, rep) < 0)
			return -ENOMEM;
		i += len ? len : 1;
	}
	if (run && buf_append(b, u + i - run, run) < 0)
		return -ENOMEM;
	return 0;
}


static int xml_attr(struct buf *b, const char *name, const char *v)
{
	if (buf_printf(b, " %s=\"", name) < 0 || export_xml_escape(b, v, strlen(v), true) < 0 ||
	    buf_append(b, "\"", 1) < 0)
		return -ENOMEM;
	return 0;
}

/* Seconds since base with millisecond precision, without floating point ("-0.250" too). */
static int rel_time(struct buf *b, int64_t ts, int64_t base)
{
	int64_t d = ts - base;
	const char *sign = d < 0 ? "-" : "";
	uint64_t a = d < 0 ? (uint64_t)0 - (uint64_t)d : (uint64_t)d;
	return buf_printf(b, "%s%" PRIu64 ".%03u", sign, a / 1000, (unsigned)(a % 1000));
}

/* v when it is an integer within [min, max], else def. */
static int64_t int_or(const char *v, int64_t min, int64_t max, int64_t def)
{
	int64_t n;
	return v && text_int_str(v, min, max, &n) ? n : def;
}

/* ts="time" user="nick" uid="uid", the attributes every BililiveRecorder element but <d> has. */
static int xml_who(struct buf *b, const char *tag, const struct export_row *r, int64_t base_ms)
{
	char uid[24];
	snprintf(uid, sizeof(uid), "%" PRId64, r->has_uid ? r->uid : 0);
	if (buf_printf(b, "<%s ts=\"", tag) < 0 || rel_time(b, r->ts, base_ms) < 0 ||
	    buf_append(b, "\"", 1) < 0 || xml_attr(b, "user", r->nick ? r->nick : "") < 0 ||
	    xml_attr(b, "uid", uid) < 0)
		return -ENOMEM;
	return 0;
}

/* <d p="time,mode,size,color,ts,0,uid,id" user="nick">text</d>: ts in unix seconds. */
static int xml_chat(struct buf *b, const struct export_row *r, int64_t base_ms, int64_t mode,
                    int64_t size, int64_t color, const char *id)
{
	if (buf_append_str(b, "<d p=\"") < 0 || rel_time(b, r->ts, base_ms) < 0 ||
	    buf_printf(b, ",%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",0,%" PRId64 ",%s\"",
	               mode, size, color, r->ts / 1000, r->has_uid ? r->uid : 0, id) < 0 ||
	    xml_attr(b, "user", r->nick ? r->nick : "") < 0 || buf_append(b, ">", 1) < 0)
		return -ENOMEM;
	const char *t = r->text ? r->text : "";
	if (export_xml_escape(b, t, strlen(t), false) < 0 || buf_append_str(b, "</d>\n") < 0)
		return -ENOMEM;
	return 0;
}

static int xml_gift(struct buf *b, const struct export_row *r, int64_t base_ms)
{
	char name[64], uid[24];
	const char *gift = r->gift_name;
	if (!gift || !*gift) {
		/* A gift without a name: name it by its id so that it still reads as a gift. */
		snprintf(name, sizeof(name), "gift %s", r->gift_id ? r->gift_id : "?");
		gift = name;
	}
	const char *count = text_int_str(r->gift_count, 0, INT64_MAX, &(int64_t){0})
	                        ? r->gift_count
	                        : "1";
	snprintf(uid, sizeof(uid), "%" PRId64, r->has_uid ? r->uid : 0);
	if (buf_append_str(b, "<gift ts=\"") < 0 || rel_time(b, r->ts, base_ms) < 0 ||
	    buf_append(b, "\"", 1) < 0 || xml_attr(b, "giftname", gift) < 0 ||
	    xml_attr(b, "giftcount", count) < 0 || xml_attr(b, "uid", uid) < 0 ||
	    xml_attr(b, "user", r->nick ? r->nick : "") < 0 || buf_append_str(b, "/>\n") < 0)
		return -ENOMEM;
	return 0;
}

/* The id field of a Bilibili <d>: its id_str when that is plain alphanumerics (it goes into a
 * comma-separated attribute), else the row id. */
static const char *chat_id(const struct export_row *r, char *buf, size_t cap)
{
	const char *c = r->cid;
	size_t n = c ? strlen(c) : 0;
	bool ok = n > 0 && n < cap;
	for (size_t i = 0; ok && i < n; i++)
		ok = (c[i] >= '0' && c[i] <= '9') || (c[i] >= 'a' && c[i] <= 'z') ||
		     (c[i] >= 'A' && c[i] <= 'Z');
	if (ok)
		return c;
	snprintf(buf, cap, "%" PRId64, r->id);
	return buf;
}

static int xml_bilibili(struct buf *b, const struct export_row *r, int64_t base_ms)
{
	const char *type = r->type ? r->type : "";
	if (strcmp(type, "DANMU_MSG") == 0) {
		char id[72];
		return xml_chat(b, r, base_ms, int_or(r->mode, 1, 9, 1), int_or(r->size, 1, 999, 25),
		                int_or(r->color, 0, 0xffffff, 0xffffff), chat_id(r, id, sizeof(id)));
	}
	if (strcmp(type, "SEND_GIFT") == 0 || strcmp(type, "SEND_GIFT_V2") == 0)
		return xml_gift(b, r, base_ms);
	if (strcmp(type, "SUPER_CHAT_MESSAGE") == 0) {
		/* price in CNY and time in seconds, as BililiveRecorder writes them. */
		const char *t = r->text ? r->text : "";
		if (xml_who(b, "sc", r, base_ms) < 0 ||
		    buf_printf(b, " price=\"%" PRId64 "\" time=\"%" PRId64 "\">",
		               int_or(r->price, 0, INT64_MAX, 0),
		               int_or(r->duration, 0, INT64_MAX, 0)) < 0 ||
		    export_xml_escape(b, t, strlen(t), false) < 0 || buf_append_str(b, "</sc>\n") < 0)
			return -ENOMEM;
		return 0;
	}
	if (strcmp(type, "GUARD_BUY") == 0) {
		if (xml_who(b, "guard", r, base_ms) < 0 ||
		    buf_printf(b, " level=\"%" PRId64 "\" count=\"%" PRId64 "\"/>\n",
		               int_or(r->guard_level, 0, 9, 0),
		               int_or(r->gift_count, 0, INT64_MAX, 1)) < 0)
			return -ENOMEM;
	}
	return 0;
}

int export_xml_row(struct buf *b, const struct export_row *r, int64_t base_ms)
{
	if (r->platform && strcmp(r->platform, "douyu") != 0)
		return strcmp(r->platform, "bilibili") == 0 ? xml_bilibili(b, r, base_ms) : 0;
	const char *type = r->type ? r->type : "";
	if (strcmp(type, "chatmsg") == 0) {
		/* mode 1 (scrolling), size 25, Douyu's colour; id: our row id (unique and numeric,
		 * as players expect). */
		char id[24];
		snprintf(id, sizeof(id), "%" PRId64, r->id);
		return xml_chat(b, r, base_ms, 1, 25, export_douyu_color(r->col), id);
	}
	if (strcmp(type, "dgb") == 0)
		return xml_gift(b, r, base_ms);
	return 0;
}

static int json_key_str(struct buf *b, const char *key, const char *v)
{
	if (buf_printf(b, ",\"%s\":", key) < 0)
		return -ENOMEM;
	return v ? text_json_string(b, v, strlen(v), NULL) : buf_append_str(b, "null");
}

static int json_key_int(struct buf *b, const char *key, bool has, int64_t v)
{
	return has ? buf_printf(b, ",\"%s\":%" PRId64, key, v) : buf_printf(b, ",\"%s\":null", key);
}

/* True when s is valid UTF-8 with no control character (minified JSON has none outside
 * strings, and valid JSON none inside). */
static bool json_line_safe(const char *s)
{
	size_t n = strlen(s);
	if (text_utf8_valid_prefix(s, n) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20)
			return false;
	return true;
}

/* ,"key":v with v nested when it is one clean line of JSON, else as a string (or null). */
static int json_key_nested(struct buf *b, const char *key, const char *v, bool is_json)
{
	if (v && is_json && json_line_safe(v))
		return buf_printf(b, ",\"%s\":%s", key, v);
	return json_key_str(b, key, v);
}

int export_json_row(struct buf *b, const struct export_row *r)
{
	if (buf_printf(b, "{\"id\":%" PRId64, r->id) < 0 ||
	    json_key_str(b, "platform", r->platform ? r->platform : "douyu") < 0 ||
	    buf_printf(b, ",\"room_id\":%" PRId64 ",\"ts\":%" PRId64, r->room_id, r->ts) < 0 ||
	    json_key_str(b, "type", r->type ? r->type : "") < 0 ||
	    json_key_int(b, "uid", r->has_uid, r->uid) < 0 || json_key_str(b, "nick", r->nick) < 0 ||
	    json_key_int(b, "level", r->has_level, r->level) < 0 ||
	    json_key_str(b, "text", r->text) < 0 || json_key_str(b, "cid", r->cid) < 0 ||
	    json_key_int(b, "session_id", r->has_session, r->session_id) < 0)
		return -ENOMEM;
	/* data and decoded are written by the store as JSON objects, and the query hands them
	 * over minified (json()); a database edited by hand may hold anything, and SQLite's JSON
	 * accepts bytes that are not UTF-8. Whatever cannot be nested as one clean line of JSON
	 * is given as a string instead, so that every message stays exactly one line. */
	if (json_key_nested(b, "data", r->data, r->data_json) < 0 ||
	    json_key_nested(b, "decoded", r->decoded, r->decoded_json) < 0 ||
	    buf_append_str(b, "}\n") < 0)
		return -ENOMEM;
	return 0;
}

/* ---- the commands ---- */

enum export_format { FMT_NONE, FMT_XML, FMT_NDJSON };

struct export_req {
	const char *db, *out;
	const char *room_arg; /* --room as given, for messages */
	char platform[16];    /* as given ("" for a bare id), then the room's */
	int64_t room, from, to;
	int64_t short_id;     /* rooms.short_id, 0 when none */
	bool has_room, has_from, has_to;
	enum export_format format;
};

/* Parse argv into req; returns 0, 1 for --help (printed), or 2 after printing a usage error. */
static int parse_args(int argc, char **argv, struct export_req *req)
{
	enum { OPT_FROM = 256, OPT_TO };
	static const struct option opts[] = {
		{"db", required_argument, NULL, 'd'},
		{"room", required_argument, NULL, 'r'},
		{"from", required_argument, NULL, OPT_FROM},
		{"to", required_argument, NULL, OPT_TO},
		{"format", required_argument, NULL, 'f'},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	memset(req, 0, sizeof(*req));
	opterr = 0;
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, ":d:r:f:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			req->db = optarg;
			break;
		case 'r': {
			if (export_parse_room(optarg, req->platform, sizeof(req->platform),
			                      &req->room) < 0) {
				fprintf(stderr,
				        "danmakud export: --room: expected ID, douyu:ID or bilibili:ID, "
				        "got '%s'\n",
				        optarg);
				return 2;
			}
			req->room_arg = optarg;
			req->has_room = true;
			break;
		}
		case OPT_FROM:
		case OPT_TO:
			if (export_parse_time(optarg, c == OPT_FROM ? &req->from : &req->to) < 0) {
				fprintf(stderr,
				        "danmakud export: %s: expected unix seconds or milliseconds or "
				        "YYYY-MM-DD[ HH:MM[:SS]], got '%s'\n",
				        c == OPT_FROM ? "--from" : "--to", optarg);
				return 2;
			}
			*(c == OPT_FROM ? &req->has_from : &req->has_to) = true;
			break;
		case 'f':
			if (strcmp(optarg, "xml") == 0) {
				req->format = FMT_XML;
			} else if (strcmp(optarg, "ndjson") == 0) {
				req->format = FMT_NDJSON;
			} else {
				fprintf(stderr,
				        "danmakud export: --format: expected xml or ndjson, got '%s'\n",
				        optarg);
				return 2;
			}
			break;
		case 'o':
			req->out = optarg;
			break;
		case 'h':
			fputs(export_usage, stdout);
			return 1;
		case ':':
			fprintf(stderr, "danmakud export: option '%s' needs a value\n", argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "danmakud export: unknown option '%s'\n", argv[optind - 1]);
			return 2;
		}
	}
	const char *missing = !req->db ? "--db" : !req->has_room ? "--room" : !req->format ? "--format" : NULL;
	if (missing || optind < argc) {
		if (missing)
			fprintf(stderr, "danmakud export: %s is required\n", missing);
		else
			fprintf(stderr, "danmakud export: unexpected argument '%s'\n", argv[optind]);
		fputs("Try 'danmakud export --help'.\n", stderr);
		return 2;
	}
	return 0;
}

/* The database must already exist: sqlite would happily create an empty one. */
static int open_existing(const char *cmd, const char *path, int flags, sqlite3 **db)
{
	struct stat st;
	*db = NULL;
	if (stat(path, &st) < 0) {
		fprintf(stderr, "danmakud %s: %s: %s\n", cmd, path, strerror(errno));
		return 1;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "danmakud %s: %s: not a regular file\n", cmd, path);
		return 1;
	}
	if (!flags)
		return 0;
	if (sqlite3_open_v2(path, db, flags, NULL) != SQLITE_OK) {
		fprintf(stderr, "danmakud %s: %s: %s\n", cmd, path,
		        *db ? sqlite3_errmsg(*db) : "cannot open");
		sqlite3_close(*db);
		*db = NULL;
		return 1;
	}
	sqlite3_busy_timeout(*db, 5000);
	return 0;
}

static void fmt_local(char *dst, size_t cap, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!localtime_r(&t, &tm) || !strftime(dst, cap, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(dst, cap, "%" PRId64, ms);
}

/* A v3 database has messages.platform; an older one must be upgraded by a writer first. */
static int check_schema(sqlite3 *db, const char *path)
{
	sqlite3_stmt *st;
	int64_t has = 0, version = 0;
	if (sqlite3_prepare_v2(db,
	                       "SELECT (SELECT count(*) FROM pragma_table_info('messages') WHERE "
	                       "name IN ('platform', 'decoded')), (SELECT user_version FROM "
	                       "pragma_user_version)",
	                       -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "danmakud export: %s: %s\n", path, sqlite3_errmsg(db));
		return 1;
	}
	if (sqlite3_step(st) == SQLITE_ROW) {
		has = sqlite3_column_int64(st, 0);
		version = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (has == 2)
		return 0;
	fprintf(stderr,
	        "danmakud export: %s: schema version %" PRId64 " is older than this danmakud's "
	        "(%d): start the recorder on it once (it upgrades the database in place), then "
	        "export\n",
	        path, version, STORE_SCHEMA_VERSION);
	return 1;
}

/* "douyu:9999, bilibili:5050, ..." (the first 10) into list. */
static void list_rooms(sqlite3 *db, const char *sql, int64_t id, char *list, size_t cap)
{
	sqlite3_stmt *st;
	size_t o = 0;
	int n = 0;
	list[0] = '\0';
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW && o + 64 < cap) {
		if (n == 10) {
			snprintf(list + o, cap - o, ", ...");
			break;
		}
		o += (size_t)snprintf(list + o, cap - o, "%s%.16s:%lld", n ? ", " : "",
		                      (const char *)sqlite3_column_text(st, 0),
		                      (long long)sqlite3_column_int64(st, 1));
		n++;
	}
	sqlite3_finalize(st);
}

/*
 * Find the room: PLATFORM:ID is that platform's room_id, or for a platform with short ids
 * (Bilibili) its short_id; a bare ID is whichever room has that id (or short id) when exactly
 * one does. On success req names the platform and the real room id. Else prints why (the
 * rooms there, or the candidates) and returns 1.
 */
static int resolve_room(sqlite3 *db, struct export_req *req)
{
	static const char sql[] =
		"SELECT platform, room_id, coalesce(short_id, 0) FROM rooms "
		"WHERE (room_id = ?1 OR short_id = ?1) AND (?2 = '' OR platform = ?2) "
		"ORDER BY room_id <> ?1, platform = 'bilibili', platform";
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "danmakud export: %s: %s\n", req->db, sqlite3_errmsg(db));
		return 1;
	}
	sqlite3_bind_int64(st, 1, req->room);
	sqlite3_bind_text(st, 2, req->platform, -1, SQLITE_STATIC);
	int n = 0, rc;
	bool exact = false;
	char found[16] = "";
	int64_t room = 0, short_id = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		/* PLATFORM:ID: its own room id wins over another room's short id (ordered first). */
		bool is_exact = sqlite3_column_int64(st, 1) == req->room;
		if (n && req->platform[0] && exact && !is_exact)
			break;
		if (n++ == 0) {
			snprintf(found, sizeof(found), "%s", (const char *)sqlite3_column_text(st, 0));
			room = sqlite3_column_int64(st, 1);
			short_id = sqlite3_column_int64(st, 2);
			exact = is_exact;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		fprintf(stderr, "danmakud export: %s: %s\n", req->db, sqlite3_errmsg(db));
		return 1;
	}
	char list[512];
	if (n == 1) {
		snprintf(req->platform, sizeof(req->platform), "%s", found);
		req->room = room;
		req->short_id = short_id;
		return 0;
	}
	if (n == 0) {
		list_rooms(db, "SELECT platform, room_id FROM rooms ORDER BY platform, room_id", 0,
		           list, sizeof(list));
		fprintf(stderr, "danmakud export: room %s is not in %s (rooms there: %s)\n",
		        req->room_arg, req->db, list[0] ? list : "none");
		return 1;
	}
	list_rooms(db,
	           "SELECT platform, room_id FROM rooms WHERE room_id = ?1 OR short_id = ?1 "
	           "ORDER BY platform, room_id",
	           req->room, list, sizeof(list));
	fprintf(stderr,
	        "danmakud export: room %s is ambiguous in %s: %s (name one as PLATFORM:ID)\n",
	        req->room_arg, req->db, list);
	return 1;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

static void read_row(sqlite3_stmt *st, enum export_format f, struct export_row *r)
{
	memset(r, 0, sizeof(*r));
	r->id = sqlite3_column_int64(st, 0);
	r->room_id = sqlite3_column_int64(st, 1);
	r->ts = sqlite3_column_int64(st, 2);
	r->type = col_text(st, 3);
	r->has_uid = sqlite3_column_type(st, 4) != SQLITE_NULL;
	r->uid = sqlite3_column_int64(st, 4);
	r->nick = col_text(st, 5);
	r->has_level = sqlite3_column_type(st, 6) != SQLITE_NULL;
	r->level = sqlite3_column_int64(st, 6);
	r->text = col_text(st, 7);
	r->platform = col_text(st, 8);
	r->cid = col_text(st, 9);
	if (f == FMT_XML) {
		const char **x[] = {&r->col,  &r->gift_name, &r->gift_id,  &r->gift_count,
		                    &r->mode, &r->size,      &r->color,    &r->price,
		                    &r->duration, &r->guard_level};
		for (int i = 0; i < 10; i++)
			*x[i] = col_text(st, 10 + i);
	} else {
		r->has_session = sqlite3_column_type(st, 10) != SQLITE_NULL;
		r->session_id = sqlite3_column_int64(st, 10);
		r->data = col_text(st, 11);
		r->data_json = sqlite3_column_int(st, 12) == 1;
		r->decoded = col_text(st, 13);
		r->decoded_json = sqlite3_column_int(st, 14) == 1;
	}
}

/*
 * The XML rows: the types export_xml_row writes, with what each element takes from data (or
 * decoded) as text. j and dj are data and decoded when they are JSON (a database edited by
 * hand may hold anything, and json_extract on anything else would end the export with an
 * error). A Bilibili gift sent both as SEND_GIFT and SEND_GIFT_V2 is written once, as the
 * gifts view counts it (the SEND_GIFT row).
 */
/* clang-format off */
static const char sql_xml[] =
	"SELECT id, room_id, ts, type, uid, nick, level, text, platform, cid,"
	"       json_extract(j, '$.col'),"
	"       CASE type WHEN 'dgb' THEN json_extract(j, '$.gfn')"
	"                 WHEN 'SEND_GIFT_V2' THEN json_extract(dj, '$.gift_name')"
	"                 ELSE json_extract(j, '$.data.giftName') END,"
	"       CASE type WHEN 'dgb' THEN json_extract(j, '$.gfid')"
	"                 WHEN 'SEND_GIFT_V2' THEN json_extract(dj, '$.gift_id')"
	"                 ELSE json_extract(j, '$.data.giftId') END,"
	"       CASE type WHEN 'dgb' THEN json_extract(j, '$.gfcnt')"
	"                 WHEN 'SEND_GIFT_V2' THEN json_extract(dj, '$.num')"
	"                 ELSE json_extract(j, '$.data.num') END,"
	"       json_extract(j, '$.info[0][1]'), json_extract(j, '$.info[0][2]'),"
	"       json_extract(j, '$.info[0][3]'),"
	"       CAST(json_extract(j, '$.data.price') AS INTEGER),"
	"       CAST(coalesce(json_extract(j, '$.data.time'), json_extract(j, '$.data.end_time')"
	"                     - json_extract(j, '$.data.start_time')) AS INTEGER),"
	"       json_extract(j, '$.data.guard_level')"
	"  FROM (SELECT *, CASE WHEN json_valid(data) THEN data END AS j,"
	"               CASE WHEN json_valid(decoded) THEN decoded END AS dj"
	"        FROM messages m"
	"        WHERE room_id = ?1 AND platform = ?4 AND ts >= ?2 AND ts < ?3"
	"          AND type IN ('chatmsg', 'dgb', 'DANMU_MSG', 'SEND_GIFT', 'SEND_GIFT_V2',"
	"                       'SUPER_CHAT_MESSAGE', 'GUARD_BUY')"
	"          AND NOT (type = 'SEND_GIFT_V2' AND coalesce(json_valid(decoded), 0) AND EXISTS ("
	"                 SELECT 1 FROM messages v1 WHERE v1.platform = m.platform"
	"                   AND v1.room_id = m.room_id"
	"                   AND v1.cid = 'SEND_GIFT:' || json_extract(m.decoded, '$.tid'))))"
	"  ORDER BY ts, id";
static const char sql_ndjson[] =
	"SELECT id, room_id, ts, type, uid, nick, level, text, platform, cid, session_id,"
	"       CASE WHEN json_valid(data) THEN json(data) ELSE data END, json_valid(data),"
	"       CASE WHEN json_valid(decoded) THEN json(decoded) ELSE decoded END,"
	"       json_valid(decoded)"
	"  FROM messages WHERE room_id = ?1 AND platform = ?4 AND ts >= ?2 AND ts < ?3"
	"  ORDER BY ts, id";
/* clang-format on */

static int write_buf(FILE *out, struct buf *b)
{
	int rc = b->len && fwrite(buf_head(b), 1, b->len, out) != b->len ? -EIO : 0;
	buf_clear(b);
	return rc;
}

/* ms as local ISO 8601 with milliseconds and offset, as BililiveRecorder's start_time. */
static void fmt_iso(char *dst, size_t cap, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char date[32], zone[8];
	if (!localtime_r(&t, &tm) || !strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) ||
	    strftime(zone, sizeof(zone), "%z", &tm) != 5) {
		snprintf(dst, cap, "%" PRId64, ms);
		return;
	}
	snprintf(dst, cap, "%s.%03d%.3s:%s", date, (int)(((ms % 1000) + 1000) % 1000), zone,
	         zone + 3);
}

static int xml_header(struct buf *b, const struct export_req *req, const char *label,
                      int64_t base)
{
	bool bili = strcmp(req->platform, "bilibili") == 0;
	char when[32], iso[48];
	fmt_local(when, sizeof(when), base);
	fmt_iso(iso, sizeof(iso), base);
	int rc = buf_append_str(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<i>\n");
	/* The element BililiveRecorder starts its files with; tools read the room and the start
	 * time from it, and DanmakuFactory takes an sc price as CNY only when it finds it. */
	if (rc == 0 && bili)
		rc = buf_printf(b,
		                "<BililiveRecorderRecordInfo roomid=\"%" PRId64 "\" shortid=\"%" PRId64
		                "\"",
		                req->room, req->short_id);
	if (rc == 0 && bili)
		rc = xml_attr(b, "name", label ? label : "");
	if (rc == 0 && bili)
		rc = xml_attr(b, "start_time", iso);
	if (rc == 0 && bili)
		rc = buf_append_str(b, "/>\n");
	if (rc == 0)
		rc = buf_printf(b,
		                /* Nothing tag-like in the comment: DanmakuFactory scans for "<d"
		                 * and "<gift" without knowing comments, and crashes on a fake one. */
		                "<!-- danmakud export of %s room %" PRId64 ": each d element is a "
		                "chat line, each gift element a gift%s; times are seconds after %s "
		                "local time -->\n"
		                "<chatserver>%s</chatserver>\n<chatid>%" PRId64 "</chatid>\n"
		                "<mission>0</mission>\n<maxlimit>0</maxlimit>\n<state>0</state>\n"
		                "<real_name>0</real_name>\n<source>k-v</source>\n"
		                "<danmakud platform=\"%s\" room_id=\"%" PRId64 "\" start_ms=\"%" PRId64
		                "\"",
		                bili ? "Bilibili" : "Douyu", req->room,
		                bili ? ", each sc a super chat, each guard a guard purchase" : "", when,
		                bili ? "chat.bilibili.com" : "douyu", req->room, req->platform,
		                req->room, base);
	if (rc == 0 && req->short_id > 0)
		rc = buf_printf(b, " short_id=\"%" PRId64 "\"", req->short_id);
	if (rc == 0)
		rc = xml_attr(b, "start_time", when);
	if (rc == 0 && label)
		rc = xml_attr(b, "label", label);
	if (rc == 0)
		rc = buf_append_str(b, "/>\n");
	return rc;
}

/* Stream the rows; returns 0 or 1 after printing why. */
static int run_export(sqlite3 *db, const struct export_req *req, FILE *out, const char *out_name)
{
	char *label = NULL;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT label FROM rooms WHERE platform = ?1 AND room_id = ?2", -1,
	                       &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, req->platform, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, req->room);
		if (sqlite3_step(st) == SQLITE_ROW && col_text(st, 0))
			label = strdup(col_text(st, 0));
		sqlite3_finalize(st);
	}
	const char *sql = req->format == FMT_XML ? sql_xml : sql_ndjson;
	int ret = 1;
	struct buf b;
	buf_init(&b);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "danmakud export: %s: %s\n", req->db, sqlite3_errmsg(db));
		goto out;
	}
	sqlite3_bind_int64(st, 1, req->room);
	sqlite3_bind_int64(st, 2, req->has_from ? req->from : INT64_MIN);
	sqlite3_bind_int64(st, 3, req->has_to ? req->to : INT64_MAX);
	sqlite3_bind_text(st, 4, req->platform, -1, SQLITE_STATIC);
	uint64_t n_chat = 0, n_gift = 0, n_sc = 0, n_guard = 0, n_rows = 0;
	int64_t base = req->has_from ? req->from : 0;
	int rc = sqlite3_step(st);
	if (req->format == FMT_XML) {
		if (!req->has_from && rc == SQLITE_ROW)
			base = sqlite3_column_int64(st, 2);
		if (xml_header(&b, req, label, base) < 0)
			goto nomem;
	}
	for (; rc == SQLITE_ROW; rc = sqlite3_step(st)) {
		struct export_row r;
		read_row(st, req->format, &r);
		int w = req->format == FMT_XML ? export_xml_row(&b, &r, base) : export_json_row(&b, &r);
		if (w < 0)
			goto nomem;
		n_rows++;
		const char *t = r.type ? r.type : "";
		n_chat += strcmp(t, "chatmsg") == 0 || strcmp(t, "DANMU_MSG") == 0;
		n_gift += strcmp(t, "dgb") == 0 || strncmp(t, "SEND_GIFT", 9) == 0;
		n_sc += strcmp(t, "SUPER_CHAT_MESSAGE") == 0;
		n_guard += strcmp(t, "GUARD_BUY") == 0;
		if (b.len >= 1 << 16 && write_buf(out, &b) < 0)
			goto write_error;
	}
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "danmakud export: %s: %s\n", req->db, sqlite3_errmsg(db));
		goto out;
	}
	if (req->format == FMT_XML && buf_append_str(&b, "</i>\n") < 0)
		goto nomem;
	if (write_buf(out, &b) < 0 || fflush(out) != 0)
		goto write_error;
	if (req->format == FMT_XML && strcmp(req->platform, "bilibili") == 0)
		fprintf(stderr, "danmakud export: %s room %" PRId64 ": %" PRIu64 " chat lines, %" PRIu64
		        " gifts, %" PRIu64 " super chats, %" PRIu64 " guards written to %s\n",
		        req->platform, req->room, n_chat, n_gift, n_sc, n_guard, out_name);
	else if (req->format == FMT_XML)
		fprintf(stderr, "danmakud export: %s room %" PRId64 ": %" PRIu64 " chat lines, %" PRIu64
		        " gifts written to %s\n", req->platform, req->room, n_chat, n_gift, out_name);
	else
		fprintf(stderr, "danmakud export: %s room %" PRId64 ": %" PRIu64
		        " messages written to %s\n", req->platform, req->room, n_rows, out_name);
	ret = 0;
	goto out;

nomem:
	fprintf(stderr, "danmakud export: out of memory\n");
	goto out;
write_error:
	fprintf(stderr, "danmakud export: %s: %s\n", out_name, strerror(errno ? errno : EIO));
out:
	sqlite3_finalize(st);
	buf_finish(&b);
	free(label);
	return ret;
}

/*
 * Create the temporary output file. O_EXCL: never truncate or write through a file or a
 * symbolic link someone else put there (a planted OUT.part -> ~/.bashrc); the rename at the
 * end then replaces OUT itself, never what a link at OUT points to. Returns NULL after
 * printing why.
 */
static FILE *open_part(const char *part)
{
	int fd = open(part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd < 0) {
		int e = errno;
		fprintf(stderr, "danmakud export: %s: %s%s\n", part, strerror(e),
		        e == EEXIST ? " (left by an interrupted export? remove it and retry)" : "");
		return NULL;
	}
	FILE *f = fdopen(fd, "wb");
	if (!f) {
		fprintf(stderr, "danmakud export: %s: %s\n", part, strerror(errno));
		close(fd);
		unlink(part);
	}
	return f;
}

int export_main(int argc, char **argv)
{
	struct export_req req;
	int rc = parse_args(argc, argv, &req);
	if (rc)
		return rc == 1 ? 0 : rc;
	if (req.has_from && req.has_to && req.from >= req.to) {
		char f[32], t[32];
		fmt_local(f, sizeof(f), req.from);
		fmt_local(t, sizeof(t), req.to);
		fprintf(stderr, "danmakud export: empty range: --from (%s) is not before --to (%s)\n",
		        f, t);
		return 1;
	}
	sqlite3 *db;
	if (open_existing("export", req.db, SQLITE_OPEN_READONLY, &db))
		return 1;
	int ret = check_schema(db, req.db);
	if (ret == 0)
		ret = resolve_room(db, &req);
	if (ret)
		goto out;
	FILE *out = stdout;
	char *part = NULL;
	if (req.out) {
		size_t n = strlen(req.out) + sizeof(".part");
		part = malloc(n);
		if (!part) {
			ret = 1;
			goto out;
		}
		snprintf(part, n, "%s.part", req.out);
		out = open_part(part);
		if (!out) {
			free(part);
			ret = 1;
			goto out;
		}
	}
	ret = run_export(db, &req, out, req.out ? req.out : "standard output");
	if (req.out) {
		if (fclose(out) != 0 && ret == 0) {
			fprintf(stderr, "danmakud export: %s: %s\n", part, strerror(errno));
			ret = 1;
		}
		if (ret == 0 && rename(part, req.out) < 0) {
			fprintf(stderr, "danmakud export: %s: %s\n", req.out, strerror(errno));
			ret = 1;
		}
		if (ret != 0)
			unlink(part);
		free(part);
	}
out:
	sqlite3_close(db);
	return ret;
}

static int fts_status(const char *path)
{
	sqlite3 *db;
	if (open_existing("fts", path, SQLITE_OPEN_READONLY, &db))
		return 1;
	sqlite3_stmt *st;
	int ret = 1;
	if (sqlite3_prepare_v2(db,
	                       "SELECT (SELECT count(*) FROM sqlite_master WHERE name = "
	                       "'messages_fts'), (SELECT count(*) FROM sqlite_master WHERE name = "
	                       "'messages_fts_docsize')",
	                       -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "danmakud fts: %s: %s\n", path, sqlite3_errmsg(db));
		goto out;
	}
	int on = 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		on = sqlite3_column_int(st, 0) > 0 && sqlite3_column_int(st, 1) > 0;
	sqlite3_finalize(st);
	int64_t rows = 0;
	if (on && sqlite3_prepare_v2(db, "SELECT count(*) FROM messages_fts_docsize", -1, &st,
	                             NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			rows = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	if (on)
		printf("full-text index: on (%" PRId64 " chat lines indexed)\n", rows);
	else
		printf("full-text index: off\n");
	ret = 0;
out:
	sqlite3_close(db);
	return ret;
}

int export_fts_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"db", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	opterr = 0;
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, ":d:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			path = optarg;
			break;
		case 'h':
			fputs(fts_usage, stdout);
			return 0;
		case ':':
			fprintf(stderr, "danmakud fts: option '%s' needs a value\n", argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "danmakud fts: unknown option '%s'\n", argv[optind - 1]);
			return 2;
		}
	}
	const char *what = optind < argc ? argv[optind] : "status";
	if (!path || argc - optind > 1 ||
	    (strcmp(what, "on") && strcmp(what, "off") && strcmp(what, "status"))) {
		fprintf(stderr, "danmakud fts: %s\nTry 'danmakud fts --help'.\n",
		        !path ? "--db is required" : "expected on, off or status");
		return 2;
	}
	if (strcmp(what, "status") == 0)
		return fts_status(path);
	sqlite3 *unused;
	if (open_existing("fts", path, 0, &unused))
		return 1;
	/* Adding or dropping the index is a writer's job: refused, like a second recorder,
	 * while a recorder (or another fts) holds the database (store_lock). */
	char err[256];
	int lock_fd = store_lock(path, false, err, sizeof(err));
	if (lock_fd < 0) {
		fprintf(stderr, "danmakud fts: %s: %s\n", path, err);
		return 1;
	}
	/* store_open owns the index's SQL; the busy timeout covers a reader such as export. */
	struct store_options opt = {
		.busy_timeout_ms = 10000,
		.fts = strcmp(what, "on") == 0 ? STORE_FTS_ON : STORE_FTS_OFF,
	};
	struct store *s;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (store_open(path, &opt, &s, err, sizeof(err)) < 0) {
		fprintf(stderr, "danmakud fts: %s: %s\n", path, err);
		close(lock_fd);
		return 1;
	}
	store_close(s);
	close(lock_fd);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "danmakud fts: %s in %.1f s\n", what,
	        (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	return fts_status(path);
}
