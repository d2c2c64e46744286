/*
 * export: the commands that work on an existing database instead of recording:
 *   danmakud export --db FILE --room [PLATFORM:]ID [--from T] [--to T] --format xml|ndjson
 *                   [-o OUT]
 *   danmakud fts --db FILE [on|off|status]
 * main() hands them argv after the command word. The pure pieces (time parsing, colours,
 * escaping, one row to XML or JSON) are public for the unit tests; none of them does I/O.
 */
#ifndef DANMAKUD_EXPORT_H
#define DANMAKUD_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Run `danmakud export ...` (argv[0] is "export"). Prints errors to stderr. Returns the exit
 * code: 0 done, 1 the request cannot be met (no such database or room, a bare room id that
 * more than one platform has, a database older than schema v3, empty or reversed range, write
 * error), 2 the command line cannot be parsed. */
int export_main(int argc, char **argv);
/* Run `danmakud fts ...` (argv[0] is "fts"): switch or show the full-text index. Same codes. */
int export_fts_main(int argc, char **argv);

/*
 * Parse a time given on the command line into unix epoch milliseconds: digits only are unix
 * seconds when below 1e11 and milliseconds otherwise; "YYYY-MM-DD", "YYYY-MM-DD HH:MM" and
 * "YYYY-MM-DD HH:MM:SS" (a 'T' may replace the space) are local time. Returns 0, or -EINVAL
 * for anything else (including impossible dates such as 2025-02-30).
 */
int export_parse_time(const char *s, int64_t *ms);

/* The RGB colour (0xRRGGBB) of a Douyu chat colour index `col` as text (NULL or unknown:
 * white): 1 red ff0000, 2 blue 1e87f0, 3 green 7ac84b, 4 orange ff7f00, 5 purple 9b39f4,
 * 6 pink ff69b4 (douyu-protocol.md §5). */
uint32_t export_douyu_color(const char *col);

/*
 * Append s[0..n) to b, escaped for XML 1.0 element text or (attr) a double-quoted attribute
 * value. Characters XML 1.0 forbids (C0 controls but tab, LF and CR; U+FFFE, U+FFFF; lone
 * surrogates) and those it discourages (DEL and C1 controls) are dropped, as are bytes that are
 * not UTF-8. CR (and, in attributes, tab and LF) become character references so that a parser
 * gives them back unchanged. Returns 0 or -ENOMEM.
 */
int export_xml_escape(struct buf *b, const char *s, size_t n, bool attr);


/*
 * Parse a --room argument: "douyu:ID", "bilibili:ID" (any lower-case platform name) or a bare
 * ID (platform NULL: the database decides). ID is 1 .. 2^53. Writes the platform name (or "")
 * into platform[cap]. Returns 0 or -EINVAL.
 */
int export_parse_room(const char *s, char *platform, size_t cap, int64_t *id);

/* One message as the exporters see it (NULL strings and has_* false mean SQL NULL). */
struct export_row {
	int64_t id, room_id, ts, uid, level, session_id;
	bool has_uid, has_level, has_session;
	const char *platform;  /* "douyu", "bilibili"; NULL is taken as douyu */
	const char *type, *nick, *text, *cid;
	const char *data;      /* the data column (minified by json() when it is valid JSON) */
	bool data_json;        /* data is JSON text: NDJSON nests it if it is also valid UTF-8
	                        * without control characters, else writes it as a string */
	const char *decoded;   /* the decoded column, as data (NULL when none) */
	bool decoded_json;
	/* XML only: what the row's element takes from data (or decoded), as text; NULL or not an
	 * integer where one is expected means the element's default. */
	const char *col;       /* Douyu data.col (chat colour index) */
	const char *gift_name; /* Douyu data.gfn; Bilibili giftName (SEND_GIFT_V2 gift_name) */
	const char *gift_id;   /* Douyu data.gfid; Bilibili giftId (gift_id) */
	const char *gift_count;/* Douyu data.gfcnt; Bilibili gift and guard num */
	const char *mode, *size, *color; /* Bilibili DANMU_MSG info[0][1], [2], [3] */
	const char *price;     /* Bilibili super chat: CNY */
	const char *duration;  /* Bilibili super chat: seconds on screen */
	const char *guard_level; /* Bilibili GUARD_BUY: 1 总督, 2 提督, 3 舰长 */
};

/*
 * Append one row as BililiveRecorder's XML writes it (with a newline), times relative to
 * base_ms: Douyu chatmsg and Bilibili DANMU_MSG as <d p="time,mode,size,color,ts,0,uid,id"
 * user="...">text</d>, Douyu dgb and Bilibili SEND_GIFT/SEND_GIFT_V2 as <gift .../>, Bilibili
 * SUPER_CHAT_MESSAGE as <sc ts user uid price time>text</sc> and GUARD_BUY as
 * <guard ts user uid level count/>. Other types append nothing. Returns 0 or -ENOMEM.
 */
int export_xml_row(struct buf *b, const struct export_row *r, int64_t base_ms);
/* Append one row as a JSON object on exactly one line (whatever the strings and data hold)
 * and a newline. Returns 0 or -ENOMEM. */
int export_json_row(struct buf *b, const struct export_row *r);

#endif
