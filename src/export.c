/*
 * export: `danmakud export` and `danmakud fts`, the two commands that work on a database
 * instead of recording into it. export opens the database read-only (a missing file is an
 * error, never created), checks the room and the range, then steps one prepared SELECT over the
 * messages_room_ts index and writes each row as it comes: one reusable row buffer, so memory
 * stays constant however large the database. XML follows the Bilibili danmaku format as
 * BililiveRecorder writes it and DanmakuFactory reads it (<i>, <d p="time,mode,size,color,ts,
 * pool,uid,id" user="...">, <gift ts giftname giftcount uid user/>); NDJSON is one object per
 * message with the data column nested, one line each whatever the database holds. Output to a
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
	"Usage: danmakud export --db FILE --room ID [--from T] [--to T] --format xml|ndjson "
	"[-o OUT]\n"
	"Write one room's messages from a danmakud database.\n"
	"\n"
	"  -d, --db FILE        the database (opened read-only; must exist)\n"
	"  -r, --room ID        the room\n"
	"      --from T         first time included (default: the first message)\n"
	"      --to T           first time excluded (default: after the last message)\n"
	"  -f, --format F       xml: Bilibili danmaku XML (chat and gifts) for DanmakuFactory,\n"
	"                       BililiveRecorder tools and players; times are seconds after\n"
	"                       --from, or after the first message without --from\n"
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

int export_xml_row(struct buf *b, const struct export_row *r, int64_t base_ms)
{
	const char *type = r->type ? r->type : "";
	int64_t uid = r->has_uid ? r->uid : 0;
	if (strcmp(type, "chatmsg") == 0) {
		/* p = time, mode 1 (scrolling), size 25, colour, send time (unix s), pool 0, uid,
		 * id (our row id: unique and numeric, as players expect). */
		if (buf_append_str(b, "<d p=\"") < 0 || rel_time(b, r->ts, base_ms) < 0 ||
		    buf_printf(b, ",1,25,%" PRIu32 ",%" PRId64 ",0,%" PRId64 ",%" PRId64 "\"",
		               export_douyu_color(r->col), r->ts / 1000, uid, r->id) < 0 ||
		    xml_attr(b, "user", r->nick ? r->nick : "") < 0 || buf_append(b, ">", 1) < 0)
			return -ENOMEM;
		const char *t = r->text ? r->text : "";
		if (export_xml_escape(b, t, strlen(t), false) < 0 || buf_append_str(b, "</d>\n") < 0)
			return -ENOMEM;
		return 0;
	}
	if (strcmp(type, "dgb") == 0) {
		char name[64];
		const char *gift = r->gift_name;
		if (!gift || !*gift) {
			/* A dgb without gfn: name it by its id so that it still reads as a gift. */
			snprintf(name, sizeof(name), "gift %s", r->gift_id ? r->gift_id : "?");
			gift = name;
		}
		const char *count = text_int_str(r->gift_count, 0, INT64_MAX, &(int64_t){0})
		                        ? r->gift_count
		                        : "1";
		char uid_s[24];
		snprintf(uid_s, sizeof(uid_s), "%" PRId64, uid);
		if (buf_append_str(b, "<gift ts=\"") < 0 || rel_time(b, r->ts, base_ms) < 0 ||
		    buf_append(b, "\"", 1) < 0 || xml_attr(b, "giftname", gift) < 0 ||
		    xml_attr(b, "giftcount", count) < 0 || xml_attr(b, "uid", uid_s) < 0 ||
		    xml_attr(b, "user", r->nick ? r->nick : "") < 0 || buf_append_str(b, "/>\n") < 0)
			return -ENOMEM;
	}
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

int export_json_row(struct buf *b, const struct export_row *r)
{
	if (buf_printf(b, "{\"id\":%" PRId64 ",\"room_id\":%" PRId64 ",\"ts\":%" PRId64, r->id,
	               r->room_id, r->ts) < 0 ||
	    json_key_str(b, "type", r->type ? r->type : "") < 0 ||
	    json_key_int(b, "uid", r->has_uid, r->uid) < 0 || json_key_str(b, "nick", r->nick) < 0 ||
	    json_key_int(b, "level", r->has_level, r->level) < 0 ||
	    json_key_str(b, "text", r->text) < 0 || json_key_str(b, "cid", r->cid) < 0 ||
	    json_key_int(b, "session_id", r->has_session, r->session_id) < 0)
		return -ENOMEM;
	/* The data column is written by the store as a JSON object, and the query hands it over
	 * minified (json()); a database edited by hand may hold anything, and SQLite's JSON
	 * accepts bytes that are not UTF-8. Whatever cannot be nested as one clean line of JSON
	 * is given as a string instead, so that every message stays exactly one line. */
	int rc;
	if (r->data && r->data_json && json_line_safe(r->data))
		rc = buf_printf(b, ",\"data\":%s}\n", r->data);
	else if ((rc = json_key_str(b, "data", r->data)) == 0)
		rc = buf_append_str(b, "}\n");
	return rc < 0 ? -ENOMEM : 0;
}

/* ---- the commands ---- */

enum export_format { FMT_NONE, FMT_XML, FMT_NDJSON };

struct export_req {
	const char *db, *out;
	int64_t room, from, to;
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
			if (!text_int_str(optarg, 1, CONF_MAX_ROOM_ID, &req->room)) {
				fprintf(stderr, "danmakud export: --room: expected a room id, got '%s'\n",
				        optarg);
				return 2;
			}
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

/* 0 when the room has a rooms row; else prints what rooms there are and returns 1. */
static int check_room(sqlite3 *db, const struct export_req *req)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT label FROM rooms WHERE room_id = ?1", -1, &st, NULL) !=
	    SQLITE_OK) {
		fprintf(stderr, "danmakud export: %s: %s\n", req->db, sqlite3_errmsg(db));
		return 1;
	}
	sqlite3_bind_int64(st, 1, req->room);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "danmakud export: %s: %s\n", req->db, sqlite3_errmsg(db));
		return 1;
	}
	char list[256] = "";
	size_t o = 0;
	int n = 0;
	if (sqlite3_prepare_v2(db, "SELECT room_id FROM rooms ORDER BY room_id LIMIT 11", -1, &st,
	                       NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW && o < sizeof(list) - 24) {
			o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", n ? ", " : "",
			                      n == 10 ? "..." : (const char *)sqlite3_column_text(st, 0));
			n++;
		}
		sqlite3_finalize(st);
	}
	fprintf(stderr, "danmakud export: room %" PRId64 " is not in %s (rooms there: %s)\n",
	        req->room, req->db, n ? list : "none");
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
	if (f == FMT_XML) {
		r->col = col_text(st, 8);
		r->gift_name = col_text(st, 9);
		r->gift_id = col_text(st, 10);
		r->gift_count = col_text(st, 11);
	} else {
		r->cid = col_text(st, 8);
		r->has_session = sqlite3_column_type(st, 9) != SQLITE_NULL;
		r->session_id = sqlite3_column_int64(st, 9);
		r->data = col_text(st, 10);
		r->data_json = sqlite3_column_int(st, 11) == 1;
	}
}

/* clang-format off */
static const char sql_xml[] =
	"SELECT id, room_id, ts, type, uid, nick, level, text, json_extract(data, '$.col'),"
	"       json_extract(data, '$.gfn'), json_extract(data, '$.gfid'),"
	"       json_extract(data, '$.gfcnt')"
	"  FROM messages WHERE room_id = ?1 AND ts >= ?2 AND ts < ?3"
	"   AND type IN ('chatmsg', 'dgb') ORDER BY ts, id";
static const char sql_ndjson[] =
	"SELECT id, room_id, ts, type, uid, nick, level, text, cid, session_id,"
	"       CASE WHEN json_valid(data) THEN json(data) ELSE data END, json_valid(data)"
	"  FROM messages WHERE room_id = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts, id";
/* clang-format on */

static int write_buf(FILE *out, struct buf *b)
{
	int rc = b->len && fwrite(buf_head(b), 1, b->len, out) != b->len ? -EIO : 0;
	buf_clear(b);
	return rc;
}

static int xml_header(struct buf *b, const struct export_req *req, const char *label,
                      int64_t base)
{
	char when[32];
	fmt_local(when, sizeof(when), base);
	int rc = buf_printf(b,
	                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<i>\n"
	                    /* Nothing tag-like in the comment: DanmakuFactory scans for "<d"
	                     * and "<gift" without knowing comments, and crashes on a fake one. */
	                    "<!-- danmakud export of Douyu room %" PRId64 ": each d element is a "
	                    "chat line, each gift element a gift; times are seconds after %s "
	                    "local time -->\n"
	                    "<chatserver>douyu</chatserver>\n<chatid>%" PRId64 "</chatid>\n"
	                    "<mission>0</mission>\n<maxlimit>0</maxlimit>\n<state>0</state>\n"
	                    "<real_name>0</real_name>\n<source>k-v</source>\n"
	                    "<danmakud room_id=\"%" PRId64 "\" start_ms=\"%" PRId64 "\"",
	                    req->room, when, req->room, req->room, base);
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
	if (sqlite3_prepare_v2(db, "SELECT label FROM rooms WHERE room_id = ?1", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_int64(st, 1, req->room);
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
	uint64_t n_chat = 0, n_gift = 0, n_rows = 0;
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
		n_chat += r.type && strcmp(r.type, "chatmsg") == 0;
		n_gift += r.type && strcmp(r.type, "dgb") == 0;
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
	if (req->format == FMT_XML)
		fprintf(stderr, "danmakud export: room %" PRId64 ": %" PRIu64 " chat lines, %" PRIu64
		        " gifts written to %s\n", req->room, n_chat, n_gift, out_name);
	else
		fprintf(stderr, "danmakud export: room %" PRId64 ": %" PRIu64
		        " messages written to %s\n", req->room, n_rows, out_name);
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
	int ret = check_room(db, &req);
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
