/*
 * test_conf: the INI parser on strings. Valid configs (full, CRLF, comments, labels, missing
 * final newline, servers lists, bounds) and every error message, compared in full with its
 * file and line. After each failure the struct must be exactly as conf_init left it.
 */
#include "conf.h"
#include "platform.h"
#include "server.h"

#include "buf.h"

#include "test.h"

#include <errno.h>

#define FILE_NAME "t.conf"

static char err[512];

/* Parse a NUL-terminated string; on failure checks that c is back at its conf_init state. */
static int parse(struct conf *c, const char *text)
{
	conf_init(c);
	memset(err, 'x', sizeof(err));
	int rc = conf_parse(c, FILE_NAME, text, strlen(text), err, sizeof(err));
	if (rc < 0) {
		struct conf init;
		conf_init(&init);
		if (memcmp(c, &init, sizeof(init)) != 0) {
			printf("# conf_parse failed but left c changed\n");
			return 1; /* neither 0 nor an errno: makes the caller's assert fail */
		}
	}
	return rc;
}

/* Expect text to fail with exactly "t.conf:<msg>". */
#define ASSERT_FAILS(text, msg)                                                                    \
	do {                                                                                       \
		struct conf c_;                                                                    \
		ASSERT_EQ(parse(&c_, (text)), -EINVAL);                                            \
		ASSERT_STR_EQ(err, FILE_NAME ":" msg);                                             \
		conf_finish(&c_);                                                                  \
	} while (0)

static void test_init_unset(void)
{
	struct conf c;
	conf_init(&c);
	ASSERT(c.database == NULL);
	ASSERT_EQ(c.flush_ms, -1);
	ASSERT_EQ(c.heartbeat_s, -1);
	ASSERT_EQ(c.n_servers, 0);
	ASSERT(c.rooms == NULL);
	ASSERT_EQ(c.n_rooms, 0);
	conf_finish(&c);
	conf_finish(&c); /* finish leaves an init state, so twice is fine */
}

static void test_empty(void)
{
	struct conf c;
	ASSERT_EQ(parse(&c, ""), 0);
	ASSERT(c.database == NULL);
	ASSERT_EQ(c.flush_ms, -1);
	ASSERT_EQ(c.n_rooms, 0);
	conf_finish(&c);
	conf_init(&c);
	ASSERT_EQ(conf_parse(&c, FILE_NAME, NULL, 0, err, sizeof(err)), 0);
	ASSERT_EQ(parse(&c, "\n\n# only comments\n; and blanks\n   \n\t\n"), 0);
	ASSERT_EQ(c.n_rooms, 0);
	ASSERT_EQ(c.n_servers, 0);
	conf_finish(&c);
}

static const char full[] =
    "# /etc/danmakud/danmakud.conf\n"
    "[recorder]\n"
    "database = /var/lib/danmakud/danmaku.db\n"
    "flush_ms = 250\n"
    "\n"
    "[douyu]\n"
    "servers = wss://danmuproxy.douyu.com:8501/ wss://danmuproxy.douyu.com:8502/\n"
    "heartbeat_s = 45\n"
    "\n"
    "[rooms]\n"
    "288016 = a label\n"
    "9999 =\n";

static void check_full(const struct conf *c)
{
	ASSERT_STR_EQ(c->database, "/var/lib/danmakud/danmaku.db");
	ASSERT_EQ(c->flush_ms, 250);
	ASSERT_EQ(c->heartbeat_s, 45);
	ASSERT_EQ(c->n_servers, 2);
	ASSERT_STR_EQ(c->servers[0], "wss://danmuproxy.douyu.com:8501/");
	ASSERT_STR_EQ(c->servers[1], "wss://danmuproxy.douyu.com:8502/");
	ASSERT_EQ(c->n_rooms, 2);
	ASSERT_EQ(c->rooms[0].id, 288016);
	ASSERT_STR_EQ(c->rooms[0].label, "a label");
	ASSERT_EQ(c->rooms[1].id, 9999);
	ASSERT(c->rooms[1].label == NULL);
}

static void test_full(void)
{
	struct conf c;
	ASSERT_EQ(parse(&c, full), 0);
	check_full(&c);
	if (test_cur_failed)
		return;
	conf_finish(&c);
	ASSERT(c.database == NULL);
	ASSERT_EQ(c.n_rooms, 0);
}

/* The same config with CRLF line ends, with and without a final line end, and with a BOM. */
static void test_crlf_bom(void)
{
	char text[2048], *o = text;
	for (const char *s = full; *s; s++) {
		if (*s == '\n')
			*o++ = '\r';
		*o++ = *s;
	}
	*o = '\0';
	struct conf c;
	ASSERT_EQ(parse(&c, text), 0);
	check_full(&c);
	conf_finish(&c);

	o[-2] = '\0'; /* drop the final "\r\n" */
	ASSERT_EQ(parse(&c, text), 0);
	check_full(&c);
	conf_finish(&c);

	char bom[2100] = "\xef\xbb\xbf";
	strcat(bom, text);
	ASSERT_EQ(parse(&c, bom), 0);
	check_full(&c);
	conf_finish(&c);

	/* A BOM anywhere else is just bytes: here it makes a line that is not key = value. */
	ASSERT_FAILS("\n\xef\xbb\xbf[rooms]\n",
	             "2: expected 'key = value', got '\xef\xbb\xbf[rooms]'");
}

static void test_missing_final_newline(void)
{
	struct conf c;
	ASSERT_EQ(parse(&c, "[recorder]\nflush_ms = 300"), 0);
	ASSERT_EQ(c.flush_ms, 300);
	conf_finish(&c);
	ASSERT_EQ(parse(&c, "[rooms]\n42 = last one"), 0);
	ASSERT_EQ(c.n_rooms, 1);
	ASSERT_STR_EQ(c.rooms[0].label, "last one");
	conf_finish(&c);
	ASSERT_EQ(parse(&c, "[rooms]\n42 = cr only at the end\r"), 0);
	ASSERT_STR_EQ(c.rooms[0].label, "cr only at the end");
	conf_finish(&c);
	ASSERT_FAILS("[recorder]\nflush_ms = 3", "2: flush_ms: expected an integer between 10 and "
	                                         "60000, got '3'");
}

static void test_comments_whitespace(void)
{
	struct conf c;
	ASSERT_EQ(parse(&c, "# comment\n"
	                    "; comment\n"
	                    "   # indented comment\n"
	                    "\t; tab-indented comment\n"
	                    "  [ recorder ]  \n"
	                    "\tdatabase\t=\t  /tmp/a b.db \t \n"
	                    "flush_ms=20\n"
	                    "[douyu]\n"
	                    "# heartbeat_s = 1000000 is commented out\n"
	                    "[rooms]\n"
	                    "  7\t=  seven  \n"),
	          0);
	ASSERT_STR_EQ(c.database, "/tmp/a b.db");
	ASSERT_EQ(c.flush_ms, 20);
	ASSERT_EQ(c.heartbeat_s, -1);
	ASSERT_EQ(c.n_rooms, 1);
	ASSERT_EQ(c.rooms[0].id, 7);
	ASSERT_STR_EQ(c.rooms[0].label, "seven");
	conf_finish(&c);
}

static void test_labels(void)
{
	struct conf c;
	ASSERT_EQ(parse(&c, "[rooms]\n"
	                    "1 = two  inner  spaces\n"
	                    "2 = 斗鱼 直播间 🎮\n"
	                    "3 = a=b = c\n"
	                    "4 = room #4 ; not a comment\n"
	                    "5 =\n"
	                    "6 =    \t \n"
	                    "7=x\n"
	                    "8 = ===\n"),
	          0);
	ASSERT_EQ(c.n_rooms, 8);
	ASSERT_STR_EQ(c.rooms[0].label, "two  inner  spaces");
	ASSERT_STR_EQ(c.rooms[1].label, "斗鱼 直播间 🎮");
	ASSERT_STR_EQ(c.rooms[2].label, "a=b = c");
	ASSERT_STR_EQ(c.rooms[3].label, "room #4 ; not a comment");
	ASSERT(c.rooms[4].label == NULL);
	ASSERT(c.rooms[5].label == NULL);
	ASSERT_STR_EQ(c.rooms[6].label, "x");
	ASSERT_STR_EQ(c.rooms[7].label, "===");
	for (size_t i = 0; i < c.n_rooms; i++)
		ASSERT_EQ(c.rooms[i].id, (int64_t)i + 1);
	conf_finish(&c);

	ASSERT_FAILS("[rooms]\n1 = ok\n2 = \xff\xfe\n", "3: room 2: label is not valid UTF-8");
	ASSERT_FAILS("[rooms]\n2 = \xc0\xaf\n",
	             "2: room 2: label is not valid UTF-8"); /* overlong */
	ASSERT_FAILS("[rooms]\n2 = \xed\xa0\x80\n",
	             "2: room 2: label is not valid UTF-8"); /* surrogate */
	ASSERT_FAILS("[rooms]\n2 = \xe6\x96\n",
	             "2: room 2: label is not valid UTF-8"); /* truncated */
	ASSERT_FAILS("[rooms]\n2 = \xe6\x41\x41\n", "2: room 2: label is not valid UTF-8");
	ASSERT_FAILS("[rooms]\n2 = \xf4\x90\x80\x80\n", "2: room 2: label is not valid UTF-8");
}

static void test_room_ids(void)
{
	struct conf c;
	ASSERT_EQ(parse(&c, "[rooms]\n1\n"), 0); /* no '=': a room without a label */
	ASSERT_EQ(c.n_rooms, 1);
	ASSERT_EQ(c.rooms[0].id, 1);
	ASSERT(c.rooms[0].label == NULL);
	conf_finish(&c);
	ASSERT_EQ(parse(&c, "[rooms]\n1 =\n9007199254740992 = max\n007 = leading zeros\n"), 0);
	ASSERT_EQ(c.n_rooms, 3);
	ASSERT_EQ(c.rooms[1].id, INT64_C(9007199254740992));
	ASSERT_EQ(c.rooms[2].id, 7);
	conf_finish(&c);

#define BAD_ID(id, line)                                                                           \
	ASSERT_FAILS("[rooms]\n" id " = x\n", line ": room id: expected an integer between 1 and " \
	                                           "9007199254740992, got '" id "'")
	BAD_ID("0", "2");
	BAD_ID("9007199254740993", "2");
	BAD_ID("99999999999999999999999999", "2");
	BAD_ID("-5", "2");
	BAD_ID("+5", "2");
	BAD_ID("12a", "2");
	BAD_ID("1 2", "2");
	BAD_ID("abc", "2");
	BAD_ID("0x10", "2");
#undef BAD_ID
}

static void test_servers(void)
{
	struct conf c;
	ASSERT_EQ(parse(&c, "[douyu]\nservers =   ws://127.0.0.1:8080/x \t tcp://host:1\t"
	                    "wss://[::1]:65535   wss://a.b:443/p/q?r\n"),
	          0);
	ASSERT_EQ(c.n_servers, 4);
	ASSERT_STR_EQ(c.servers[0], "ws://127.0.0.1:8080/x");
	ASSERT_STR_EQ(c.servers[1], "tcp://host:1");
	ASSERT_STR_EQ(c.servers[2], "wss://[::1]:65535");
	ASSERT_STR_EQ(c.servers[3], "wss://a.b:443/p/q?r");
	conf_finish(&c);

	/* Exactly CONF_MAX_SERVERS is fine; one more is not. */
	char text[8192] = "[douyu]\nservers =";
	for (int i = 0; i < CONF_MAX_SERVERS; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), " tcp://h%d:%d", i,
		         1000 + i);
	ASSERT_EQ(parse(&c, text), 0);
	ASSERT_EQ(c.n_servers, CONF_MAX_SERVERS);
	ASSERT_STR_EQ(c.servers[63], "tcp://h63:1063");
	conf_finish(&c);
	strcat(text, " tcp://one.more:1\n");
	ASSERT_FAILS(text, "2: servers: more than 64 servers");

	ASSERT_FAILS("[douyu]\nservers =\n",
	             "2: servers: expected one or more space-separated URLs");
	/* The URL rules are server_parse's (server.h), the same as for -s: a port may be left
	 * to the scheme's default, and the reason comes from there. */
	ASSERT_EQ(parse(&c, "[douyu]\nservers = wss://danmuproxy.douyu.com/ ws://h\n"), 0);
	ASSERT_STR_EQ(c.servers[0], "wss://danmuproxy.douyu.com/");
	ASSERT_STR_EQ(c.servers[1], "ws://h");
	conf_finish(&c);
	static const struct {
		const char *url, *shown, *why;
	} bad[] = {
		{"http://b:80/", NULL, "expected wss://, ws:// or tcp://"},
		{"WSS://a:1/", NULL, "expected wss://, ws:// or tcp://"},
		{"danmuproxy.douyu.com:8501", NULL, "expected wss://, ws:// or tcp://"},
		{"wss://:8501/", NULL, "missing or too long host"},
		{"wss://", NULL, "missing or too long host"},
		{"wss://[]:1/", NULL, "missing or too long host"},
		{"wss://::1:443/", NULL, "missing or too long host"},
		{"wss://[::1/", NULL, "unclosed [ in host"},
		{"tcp://host", NULL, "tcp:// needs a port"},
		{"tcp://host:", NULL, "bad port"},
		{"tcp://host:0", NULL, "bad port"},
		{"tcp://host:65536", NULL, "bad port"},
		{"tcp://host:99999999999999999999", NULL, "bad port"},
		{"tcp://host:12x", NULL, "expected ':port' or '/path' after the host"},
		{"tcp://host:12?x", NULL, "expected ':port' or '/path' after the host"},
		{"tcp://user@host:12", NULL, "expected ':port' or '/path' after the host"},
		{"wss://a.b?x", NULL, "expected ':port' or '/path' after the host"},
		{"tcp://h\x01st:1", "tcp://h\\x01st:1", "control character or space in host"},
		{"ws://h:1/p\x7f", "ws://h:1/p\\x7f", "path too long or holds a control character or space"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char line[256], want[256];
		snprintf(line, sizeof(line), "[douyu]\nservers = wss://a:1/ %s\n", bad[i].url);
		snprintf(want, sizeof(want), FILE_NAME ":2: servers: server '%s': %s",
		         bad[i].shown ? bad[i].shown : bad[i].url, bad[i].why);
		ASSERT_EQ(parse(&c, line), -EINVAL);
		ASSERT_STR_EQ(err, want);
		ASSERT_EQ(c.n_servers, 0);
	}

	/* Hosts and paths up to 255 bytes, as struct server stores them. */
	char url[600] = "ws://", text2[700];
	memset(url + 5, 'h', 255);
	strcpy(url + 260, ":1/");
	memset(url + 263, 'p', 254);
	snprintf(text2, sizeof(text2), "[douyu]\nservers = %s\n", url);
	ASSERT_EQ(parse(&c, text2), 0);
	ASSERT_STR_EQ(c.servers[0], url);
	conf_finish(&c);
	char expect[300];
	strcat(url, "p");
	snprintf(expect, sizeof(expect),
	         FILE_NAME ":2: servers: server '%.60s...': path too long or holds a control "
	         "character or space", url);
	snprintf(text2, sizeof(text2), "[douyu]\nservers = %s\n", url);
	ASSERT_EQ(parse(&c, text2), -EINVAL);
	ASSERT_STR_EQ(err, expect);
	memmove(url + 6, url + 5, strlen(url + 5) + 1); /* 256-byte host */
	snprintf(expect, sizeof(expect),
	         FILE_NAME ":2: servers: server '%.60s...': missing or too long host", url);
	snprintf(text2, sizeof(text2), "[douyu]\nservers = %s\n", url);
	ASSERT_EQ(parse(&c, text2), -EINVAL);
	ASSERT_STR_EQ(err, expect);
}

/* One bound on rooms, CONF_MAX_ROOMS, with the message the command line gives too. */
static void test_max_rooms(void)
{
	struct buf t;
	buf_init(&t);
	ASSERT_EQ(buf_append(&t, "[rooms]\n", 8), 0);
	char line[32];
	for (int i = 1; i <= CONF_MAX_ROOMS; i++) {
		int n = snprintf(line, sizeof(line), "%d =\n", i);
		ASSERT_EQ(buf_append(&t, line, (size_t)n), 0);
	}
	struct conf c;
	conf_init(&c);
	err[0] = '\0';
	int rc = conf_parse(&c, FILE_NAME, (const char *)buf_head(&t), t.len, err, sizeof(err));
	ASSERT_EQ(rc, 0);
	ASSERT_EQ(c.n_rooms, CONF_MAX_ROOMS);
	ASSERT_EQ(c.rooms[CONF_MAX_ROOMS - 1].id, CONF_MAX_ROOMS);
	conf_finish(&c);
	int n = snprintf(line, sizeof(line), "%d = one too many\n", CONF_MAX_ROOMS + 1);
	ASSERT_EQ(buf_append(&t, line, (size_t)n), 0);
	conf_init(&c);
	rc = conf_parse(&c, FILE_NAME, (const char *)buf_head(&t), t.len, err, sizeof(err));
	buf_finish(&t);
	ASSERT_EQ(rc, -EINVAL);
	char want[128], msg[64];
	snprintf(msg, sizeof(msg), CONF_TOO_MANY_ROOMS, CONF_MAX_ROOMS);
	snprintf(want, sizeof(want), FILE_NAME ":%d: %s", CONF_MAX_ROOMS + 2, msg);
	ASSERT_STR_EQ(err, want);
	ASSERT_STR_EQ(msg, "too many rooms (max 100000)");
	ASSERT_EQ(c.n_rooms, 0);
	ASSERT(c.rooms == NULL);
}

static void test_bounds(void)
{
	struct conf c;
	ASSERT_EQ(parse(&c, "[recorder]\nflush_ms = 10\n[douyu]\nheartbeat_s = 1\n"), 0);
	ASSERT_EQ(c.flush_ms, 10);
	ASSERT_EQ(c.heartbeat_s, 1);
	conf_finish(&c);
	ASSERT_EQ(parse(&c, "[recorder]\nflush_ms = 60000\n[douyu]\nheartbeat_s = 3600\n"), 0);
	ASSERT_EQ(c.flush_ms, 60000);
	ASSERT_EQ(c.heartbeat_s, 3600);
	conf_finish(&c);
	ASSERT_EQ(parse(&c, "[recorder]\nflush_ms = 00250\n"), 0);
	ASSERT_EQ(c.flush_ms, 250);
	conf_finish(&c);

#define BAD_FLUSH(v)                                                                               \
	ASSERT_FAILS("[recorder]\nflush_ms = " v "\n",                                             \
	             "2: flush_ms: expected an integer between 10 and 60000, got '" v "'")
	BAD_FLUSH("9");
	BAD_FLUSH("0");
	BAD_FLUSH("60001");
	BAD_FLUSH("-1");
	BAD_FLUSH("+20");
	BAD_FLUSH("1e3");
	BAD_FLUSH("2 50");
	BAD_FLUSH("250ms");
	BAD_FLUSH("0x20");
	BAD_FLUSH("99999999999999999999999999999999");
	BAD_FLUSH("");
#undef BAD_FLUSH
#define BAD_HB(v)                                                                                  \
	ASSERT_FAILS("[douyu]\nheartbeat_s = " v "\n",                                             \
	             "2: heartbeat_s: expected an integer between 1 and 3600, got '" v "'")
	BAD_HB("0");
	BAD_HB("3601");
	BAD_HB("4294967297");
	BAD_HB("forty-five");
#undef BAD_HB
}

/* The service keys of issue 4: metrics_file, metrics_interval_s, stats_interval_s. */
static void test_service_keys(void)
{
	struct conf c;
	conf_init(&c);
	ASSERT(c.metrics_file == NULL);
	ASSERT_EQ(c.metrics_interval_s, -1);
	ASSERT_EQ(c.stats_interval_s, -1);
	ASSERT_EQ(parse(&c, "[recorder]\nmetrics_file = /run/danmakud/danmakud.prom\n"
			    "metrics_interval_s = 1\nstats_interval_s = 0\n"),
		  0);
	ASSERT_STR_EQ(c.metrics_file, "/run/danmakud/danmakud.prom");
	ASSERT_EQ(c.metrics_interval_s, 1);
	ASSERT_EQ(c.stats_interval_s, 0); /* 0 is a value here: no stats line */
	conf_finish(&c);
	ASSERT(c.metrics_file == NULL);
	ASSERT_EQ(parse(&c, "[recorder]\nmetrics_interval_s = 3600\nstats_interval_s = 86400\n"), 0);
	ASSERT_EQ(c.metrics_interval_s, 3600);
	ASSERT_EQ(c.stats_interval_s, 86400);
	conf_finish(&c);
	ASSERT_FAILS("[recorder]\nmetrics_interval_s = 0\n",
		     "2: metrics_interval_s: expected an integer between 1 and 3600, got '0'");
	ASSERT_FAILS("[recorder]\nstats_interval_s = 86401\n",
		     "2: stats_interval_s: expected an integer between 0 and 86400, got '86401'");
	ASSERT_FAILS("[recorder]\nmetrics_file =\n", "2: metrics_file: expected a value");
	ASSERT_FAILS("[recorder]\nmetrics_file = a\nmetrics_file = b\n",
		     "3: metrics_file already set on line 2");
	ASSERT_FAILS("[douyu]\nmetrics_file = a\n",
		     "2: unknown key 'metrics_file' in [douyu] (it belongs in [recorder])");
}

/* [recorder] max_queue_mb: the write queue's memory bound (issue 7), 1 MiB .. 64 GiB. */
static void test_max_queue_key(void)
{
	struct conf c;
	conf_init(&c);
	ASSERT_EQ(c.max_queue_mb, -1);
	ASSERT_EQ(parse(&c, "[recorder]\nmax_queue_mb = 1\n"), 0);
	ASSERT_EQ(c.max_queue_mb, 1);
	conf_finish(&c);
	ASSERT_EQ(parse(&c, "[recorder]\nmax_queue_mb = 65536\n"), 0);
	ASSERT_EQ(c.max_queue_mb, 65536);
	conf_finish(&c);
	ASSERT_FAILS("[recorder]\nmax_queue_mb = 0\n",
		     "2: max_queue_mb: expected an integer between 1 and 65536, got '0'");
	ASSERT_FAILS("[recorder]\nmax_queue_mb = 65537\n",
		     "2: max_queue_mb: expected an integer between 1 and 65536, got '65537'");
	ASSERT_FAILS("[douyu]\nmax_queue_mb = 8\n",
		     "2: unknown key 'max_queue_mb' in [douyu] (it belongs in [recorder])");
}

/* [recorder] fts: on/off and their synonyms, unset is -1 (the database keeps what it has). */
static void test_fts_key(void)
{
	struct conf c;
	conf_init(&c);
	ASSERT_EQ(c.fts, -1);
	static const char *const on[] = {"on", "true", "yes", "1"};
	static const char *const off[] = {"off", "false", "no", "0"};
	char text[64];
	for (size_t i = 0; i < 4; i++) {
		snprintf(text, sizeof(text), "[recorder]\nfts = %s\n", on[i]);
		ASSERT_EQ(parse(&c, text), 0);
		ASSERT_EQ(c.fts, 1);
		conf_finish(&c);
		snprintf(text, sizeof(text), "[recorder]\nfts=%s", off[i]);
		ASSERT_EQ(parse(&c, text), 0);
		ASSERT_EQ(c.fts, 0);
		conf_finish(&c);
	}
	ASSERT_EQ(c.fts, -1); /* conf_finish resets it */
	ASSERT_EQ(parse(&c, "[recorder]\ndatabase = x.db\n"), 0);
	ASSERT_EQ(c.fts, -1);
	conf_finish(&c);
	ASSERT_FAILS("[recorder]\nfts = On\n", "2: fts: expected on or off, got 'On'");
	ASSERT_FAILS("[recorder]\nfts =\n", "2: fts: expected on or off, got ''");
	ASSERT_FAILS("[recorder]\nfts = on\nfts = off\n", "3: fts already set on line 2");
	ASSERT_FAILS("[douyu]\nfts = on\n",
		     "2: unknown key 'fts' in [douyu] (it belongs in [recorder])");
}

static void test_errors(void)
{
	/* The example from the brief, with the line numbers it names. */
	ASSERT_FAILS("[recorder]\n"
	             "database = x.db\n"
	             "flush_ms = abc\n",
	             "3: flush_ms: expected an integer between 10 and 60000, got 'abc'");
	ASSERT_FAILS("# 1\n# 2\n[rooms]\n1 =\n2 =\n3 =\n9999 = first\n4 =\n5 =\n\n# 11\n"
	             "9999 = again\n",
	             "12: room 9999 already listed on line 7");
	ASSERT_FAILS("[rooms]\n7 = a\n007 = b\n", "3: room 7 already listed on line 2");

#define SECTIONS "(expected [recorder], [douyu], [bilibili], [postgresql], [cluster] or [rooms])"
	ASSERT_FAILS("[recorder]\n[logging]\n", "2: unknown section [logging] " SECTIONS);
	ASSERT_FAILS("[Rooms]\n", "1: unknown section [Rooms] " SECTIONS);
	ASSERT_FAILS("[]\n", "1: unknown section [] " SECTIONS);
	ASSERT_FAILS("[postgres]\n", "1: unknown section [postgres] " SECTIONS);
#undef SECTIONS
	ASSERT_FAILS("[rooms\n", "1: expected '[section]', got '[rooms'");
	ASSERT_FAILS("[rooms] # trailing\n", "1: expected '[section]', got '[rooms] # trailing'");
	ASSERT_FAILS("[\n", "1: expected '[section]', got '['");

	ASSERT_FAILS("[recorder]\nverbose = 1\n", "2: unknown key 'verbose' in [recorder]");
	ASSERT_FAILS("[recorder]\nDatabase = x\n", "2: unknown key 'Database' in [recorder]");
	ASSERT_FAILS("[recorder]\nheartbeat_s = 5\n",
	             "2: unknown key 'heartbeat_s' in [recorder] (it belongs in [douyu])");
	ASSERT_FAILS("[douyu]\nflush_ms = 5\n",
	             "2: unknown key 'flush_ms' in [douyu] (it belongs in [recorder])");
	ASSERT_FAILS("[rooms]\ndatabase = x\n",
	             "2: unknown key 'database' in [rooms] (it belongs in [recorder])");

	ASSERT_FAILS("database = x\n[recorder]\n", "1: key 'database' is outside any [section]");
	ASSERT_FAILS("\n\n288016 = x\n", "3: key '288016' is outside any [section]");

	ASSERT_FAILS("[recorder]\ndatabase = a\n\ndatabase = a\n",
	             "4: database already set on line 2");
	ASSERT_FAILS("[recorder]\nflush_ms = 100\n[douyu]\n[recorder]\nflush_ms = 200\n",
	             "5: flush_ms already set on line 2");
	ASSERT_FAILS("[douyu]\nservers = tcp://a:1\nservers = tcp://b:1\n",
	             "3: servers already set on line 2");
	ASSERT_FAILS("[douyu]\nheartbeat_s = 5\nheartbeat_s = 5\n",
	             "3: heartbeat_s already set on line 2");

	ASSERT_FAILS("[recorder]\ndatabase\n", "2: expected 'key = value', got 'database'");
	ASSERT_FAILS("[rooms]\n = label\n", "2: expected 'key = value', got '= label'");
	ASSERT_FAILS("[recorder]\ndatabase =\n", "2: database: expected a value");
	ASSERT_FAILS("[recorder]\ndatabase =   \r\n", "2: database: expected a value");
}

static void test_nul_and_long_lines(void)
{
	struct conf c;
	static const char nul[] = "[rooms]\n1 = a\0b\n";
	conf_init(&c);
	ASSERT_EQ(conf_parse(&c, FILE_NAME, nul, sizeof(nul) - 1, err, sizeof(err)), -EINVAL);
	ASSERT_STR_EQ(err, FILE_NAME ":2: NUL byte in line");
	ASSERT(c.rooms == NULL);
	static const char nul_comment[] = "# \0\n";
	ASSERT_EQ(conf_parse(&c, FILE_NAME, nul_comment, sizeof(nul_comment) - 1, err, sizeof(err)),
	          -EINVAL);
	ASSERT_STR_EQ(err, FILE_NAME ":1: NUL byte in line");

	/* 4096 bytes before the line end are fine (CR not counted); 4097 are not. */
	static char text[10000];
	size_t n = (size_t)snprintf(text, sizeof(text), "[rooms]\n1 = ");
	size_t label = 4096 - 4;
	memset(text + n, 'a', label);
	strcpy(text + n + label, "\r\n2 = b\n");
	ASSERT_EQ(parse(&c, text), 0);
	ASSERT_EQ(c.n_rooms, 2);
	ASSERT_EQ(strlen(c.rooms[0].label), label);
	conf_finish(&c);
	memset(text + n, 'a', label + 1);
	strcpy(text + n + label + 1, "\n2 = b\n");
	ASSERT_FAILS(text, "2: line longer than 4096 bytes");
	/* Even a comment may not be that long. */
	memset(text, '#', 5000);
	strcpy(text + 5000, "\n");
	ASSERT_FAILS(text, "1: line longer than 4096 bytes");
}

/* Values quoted in messages are cut to 60 bytes and show control bytes escaped. */
static void test_quoting(void)
{
	ASSERT_FAILS("[recorder]\nflush_ms = \x1b[31mred\n",
	             "2: flush_ms: expected an integer between 10 and 60000, got "
	             "'\\x1b[31mred'");
	ASSERT_FAILS("[recorder]\nflush_ms = 1\r2\r\n",
	             "2: flush_ms: expected an integer between 10 and 60000, got '1\\x0d2'");
	ASSERT_FAILS("[recorder]\nflush_ms = "
	             "1234567890123456789012345678901234567890123456789012345678901234567890\n",
	             "2: flush_ms: expected an integer between 10 and 60000, got "
	             "'123456789012345678901234567890123456789012345678901234567890...'");
	/* The cut does not split a UTF-8 character: 59 ASCII bytes, then a 3-byte one. */
	ASSERT_FAILS("[recorder]\nflush_ms = "
	             "12345678901234567890123456789012345678901234567890123456789斗鱼\n",
	             "2: flush_ms: expected an integer between 10 and 60000, got "
	             "'12345678901234567890123456789012345678901234567890123456789...'");
}

/* A failure late in the file frees everything parsed so far and leaves c at its init state. */
static void test_failure_resets(void)
{
	char text[4096];
	snprintf(text, sizeof(text), "%s[recorder]\nbogus = 1\n", full);
	struct conf c;
	ASSERT_EQ(parse(&c, text), -EINVAL); /* parse() checks the init state */
	ASSERT_STR_EQ(err, FILE_NAME ":14: unknown key 'bogus' in [recorder]");

	/* A short or missing error buffer is fine. */
	char small[12];
	conf_init(&c);
	ASSERT_EQ(conf_parse(&c, "some/long/file.conf", "x", 1, small, sizeof(small)), -EINVAL);
	ASSERT_STR_EQ(small, "some/long/f");
	ASSERT_EQ(conf_parse(&c, "f", "x", 1, NULL, 0), -EINVAL);
	ASSERT_EQ(conf_parse(&c, "f", "x", 1, small, 0), -EINVAL);
	ASSERT_EQ(conf_parse(&c, NULL, "x", 1, err, sizeof(err)), -EINVAL);
	ASSERT_STR_EQ(err, "(config):1: expected 'key = value', got 'x'");
}

/* Only text[0..len) is read: what follows is not part of the config. */
static void test_length_respected(void)
{
	static const char text[] = "[rooms]\n1 = one\n2 = two";
	struct conf c;
	conf_init(&c);
	ASSERT_EQ(conf_parse(&c, FILE_NAME, text, strlen("[rooms]\n1 = o"), err, sizeof(err)), 0);
	ASSERT_EQ(c.n_rooms, 1);
	ASSERT_STR_EQ(c.rooms[0].label, "o");
	conf_finish(&c);
}

/* Many rooms: the duplicate set grows, and duplicates far apart still name both lines. */
static void test_many_rooms(void)
{
	size_t n_rooms = 20000, cap = n_rooms * 32 + 64;
	char *text = malloc(cap);
	ASSERT(text != NULL);
	size_t o = (size_t)snprintf(text, cap, "[rooms]\n");
	for (size_t i = 0; i < n_rooms; i++)
		o += (size_t)snprintf(text + o, cap - o, "%zu = r%zu\n", i * 7919 + 1, i);
	struct conf c;
	int rc = parse(&c, text);
	if (rc != 0)
		free(text);
	ASSERT_EQ(rc, 0);
	ASSERT_EQ(c.n_rooms, n_rooms);
	ASSERT_EQ(c.rooms[n_rooms - 1].id, (int64_t)(n_rooms - 1) * 7919 + 1);
	ASSERT_STR_EQ(c.rooms[12345].label, "r12345");
	conf_finish(&c);
	snprintf(text + o, cap - o, "%d = dup\n", 5 * 7919 + 1);
	rc = parse(&c, text);
	free(text);
	ASSERT_EQ(rc, -EINVAL);
	ASSERT_STR_EQ(err, FILE_NAME ":20002: room 39596 already listed on line 7");
}

/* Rooms name their platform; a bare number is Douyu; (platform, id) is the identity. */
static void test_platform_rooms(void)
{
	struct conf c;
	ASSERT_EQ(parse(&c, "[rooms]\n"
			    "douyu:288016 = d\n"
			    "bilibili:76 = short\n"
			    "bilibili:288016\n"
			    "9999\n"),
		  0);
	ASSERT_EQ(c.n_rooms, 4);
	ASSERT(c.rooms[0].platform == &douyu_platform);
	ASSERT_EQ(c.rooms[0].id, 288016);
	ASSERT(c.rooms[1].platform == &bilibili_platform);
	ASSERT_EQ(c.rooms[1].id, 76);
	ASSERT_STR_EQ(c.rooms[1].label, "short");
	ASSERT(c.rooms[2].platform == &bilibili_platform); /* same id, other platform: allowed */
	ASSERT_EQ(c.rooms[2].id, 288016);
	ASSERT(c.rooms[3].platform == &douyu_platform);
	conf_finish(&c);
	ASSERT_FAILS("[rooms]\n288016\ndouyu:288016 = again\n",
		     "3: room 288016 already listed on line 2");
	ASSERT_FAILS("[rooms]\nbilibili:76\n\nbilibili:76\n",
		     "4: room bilibili:76 already listed on line 2");
	ASSERT_FAILS("[rooms]\nhuya:5 = x\n",
		     "2: room 'huya:5': unknown platform (expected douyu or bilibili)");
	ASSERT_FAILS("[rooms]\nbilibili: = x\n",
		     "2: room id: expected an integer between 1 and 9007199254740992, got "
		     "'bilibili:'");
	ASSERT_FAILS("[rooms]\nbilibili:0\n",
		     "2: room id: expected an integer between 1 and 9007199254740992, got "
		     "'bilibili:0'");
}

static void test_bilibili_section(void)
{
	struct conf c;
	ASSERT_EQ(parse(&c, "[bilibili]\n"
			    "api = http://127.0.0.1:8080/\n"
			    "live_api = https://live.example:8443/prefix\n"
			    "transport = tcp\n"
			    "servers = ws://127.0.0.1:2244/sub tcp://127.0.0.1:2243\n"
			    "cookie_file = /etc/danmakud/bili.cookie\n"
			    "user_agent = Mozilla/5.0 (X11) test\n"
			    "api_interval_ms = 1500\n"
			    "heartbeat_s = 20\n"
			    "breaker_s = 60\n"
			    "protover = 2\n"),
		  0);
	ASSERT_STR_EQ(c.bili.api, "http://127.0.0.1:8080"); /* trailing '/' dropped */
	ASSERT_STR_EQ(c.bili.live_api, "https://live.example:8443/prefix");
	ASSERT_EQ(c.bili.transport, SERVER_TCP);
	ASSERT_EQ(c.bili.n_servers, 2);
	ASSERT_STR_EQ(c.bili.servers[1], "tcp://127.0.0.1:2243");
	ASSERT_EQ(c.n_servers, 0); /* Douyu's list is another */
	ASSERT_STR_EQ(c.bili.cookie_file, "/etc/danmakud/bili.cookie");
	ASSERT_STR_EQ(c.bili.user_agent, "Mozilla/5.0 (X11) test");
	ASSERT_EQ(c.bili.api_interval_ms, 1500);
	ASSERT_EQ(c.bili.heartbeat_s, 20);
	ASSERT_EQ(c.bili.breaker_s, 60);
	ASSERT_EQ(c.bili.protover, 2);
	conf_finish(&c);
	ASSERT_EQ(parse(&c, "[bilibili]\n"), 0);
	ASSERT_EQ(c.bili.transport, -1);
	ASSERT_EQ(c.bili.api_interval_ms, -1);
	ASSERT(c.bili.api == NULL && c.bili.cookie_file == NULL);
	conf_finish(&c);
	ASSERT_FAILS("[bilibili]\ntransport = udp\n",
		     "2: transport: expected wss, ws or tcp, got 'udp'");
	ASSERT_FAILS("[bilibili]\napi = ftp://x\n",
		     "2: api: expected an http:// or https:// URL without query, got 'ftp://x'");
	ASSERT_FAILS("[bilibili]\napi = https://x/?a=1\n",
		     "2: api: expected an http:// or https:// URL without query, got "
		     "'https://x/?a=1'");
	ASSERT_FAILS("[bilibili]\napi = http://user@x\n",
		     "2: api: expected an http:// or https:// URL without query, got "
		     "'http://user@x'");
	ASSERT_FAILS("[bilibili]\nprotover = 1\n",
		     "2: protover: expected an integer between 2 and 3, got '1'");
	ASSERT_FAILS("[bilibili]\nservers = http://x/\n",
		     "2: servers: server 'http://x/': expected wss://, ws:// or tcp://");
	ASSERT_FAILS("[douyu]\napi = http://x\n",
		     "2: unknown key 'api' in [douyu] (it belongs in [bilibili])");
}

/* [postgresql] (issue 13): every key, its bounds, and the url's accepted forms. */
static void test_postgresql_section(void)
{
	struct conf c;
	conf_init(&c);
	ASSERT(c.pg.url == NULL && c.pg.password_file == NULL && c.pg.node == NULL);
	ASSERT_EQ(c.pg.keep_local_days, -1);
	ASSERT_EQ(c.pg.mode, -1);
	ASSERT_EQ(c.pg.lease_s, -1);
	ASSERT_EQ(c.pg.max_rooms, -1);
	ASSERT_EQ(parse(&c, "[postgresql]\n"
			    "url = postgresql://rec:pw@db.example:5432/chat?sslmode=verify-full\n"
			    "password_file = /etc/danmakud/pgpass\n"
			    "keep_local_days = 7\n"),
		  0);
	ASSERT_STR_EQ(c.pg.url, "postgresql://rec:pw@db.example:5432/chat?sslmode=verify-full");
	ASSERT_STR_EQ(c.pg.password_file, "/etc/danmakud/pgpass");
	ASSERT_EQ(c.pg.keep_local_days, 7);
	ASSERT(c.pg.node == NULL); /* [cluster] is optional */
	ASSERT_EQ(c.pg.mode, -1);
	ASSERT_EQ(c.pg.lease_s, -1);
	ASSERT_EQ(c.pg.max_rooms, -1);
	conf_finish(&c);
	ASSERT(c.pg.url == NULL && c.pg.password_file == NULL);
	ASSERT_EQ(c.pg.keep_local_days, -1);

	/* The url's forms: either URI scheme (a bare one is libpq's "all defaults"), or
	 * key=value settings; an '=' inside a URI or a value is fine. */
	static const char *const good[] = {
		"postgres://h/db",
		"postgresql://",
		"postgresql:///chat?host=/run/postgresql",
		"host=db port=5432 dbname=chat",
		"dbname = chat",
		"service=danmakud",
		"host=db\tdbname=chat",
	};
	char text[256];
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "[postgresql]\nurl = %s\n", good[i]);
		ASSERT_EQ(parse(&c, text), 0);
		ASSERT_STR_EQ(c.pg.url, good[i]);
		conf_finish(&c);
	}
	ASSERT_EQ(parse(&c, "[postgresql]\nkeep_local_days = 0\n"), 0); /* 0: once shipped */
	ASSERT_EQ(c.pg.keep_local_days, 0);
	ASSERT(c.pg.url == NULL); /* the url may come from --postgresql */
	conf_finish(&c);
	ASSERT_EQ(parse(&c, "[postgresql]\nkeep_local_days = 36500\n"), 0);
	ASSERT_EQ(c.pg.keep_local_days, 36500);
	conf_finish(&c);

	ASSERT_FAILS("[postgresql]\nkeep_local_days = -1\n",
		     "2: keep_local_days: expected an integer between 0 and 36500, got '-1'");
	ASSERT_FAILS("[postgresql]\nkeep_local_days = 36501\n",
		     "2: keep_local_days: expected an integer between 0 and 36500, got '36501'");
	ASSERT_FAILS("[postgresql]\nkeep_local_days = 7d\n",
		     "2: keep_local_days: expected an integer between 0 and 36500, got '7d'");
	ASSERT_FAILS("[postgresql]\npassword_file =\n", "2: password_file: expected a value");
	ASSERT_FAILS("[postgresql]\npassword_file = a\npassword_file = b\n",
		     "3: password_file already set on line 2");
	ASSERT_FAILS("[postgresql]\nurl = postgres://a\n\nurl = postgres://b\n",
		     "4: url already set on line 2");
	ASSERT_FAILS("[recorder]\nurl = postgres://h/db\n",
		     "2: unknown key 'url' in [recorder] (it belongs in [postgresql])");
	ASSERT_FAILS("[cluster]\nkeep_local_days = 1\n",
		     "2: unknown key 'keep_local_days' in [cluster] (it belongs in [postgresql])");
	ASSERT_FAILS("[rooms]\npassword_file = x\n",
		     "2: unknown key 'password_file' in [rooms] (it belongs in [postgresql])");
	ASSERT_FAILS("[postgresql]\nuser = rec\n", "2: unknown key 'user' in [postgresql]");
}

/* The url may hold a password: no message shows it, whatever is wrong with it. */
static void test_postgresql_url_not_shown(void)
{
#define URL_BAD "2: url: expected a postgresql:// or postgres:// URL or key=value settings " \
		"(the value is not shown: it may hold a password)"
	ASSERT_FAILS("[postgresql]\nurl =\n", URL_BAD);
	ASSERT_FAILS("[postgresql]\nurl = mysql://rec:hunter2@h/db\n", URL_BAD);
	ASSERT_FAILS("[postgresql]\nurl = POSTGRESQL://rec:hunter2@h/db\n", URL_BAD);
	ASSERT_FAILS("[postgresql]\nurl = db.example:5432\n", URL_BAD);
	ASSERT_FAILS("[postgresql]\nurl = =hunter2\n", URL_BAD);
	ASSERT_FAILS("[postgresql]\nurl = 9host=x\n", URL_BAD);
	ASSERT_FAILS("[postgresql]\nurl = hunter2\n", URL_BAD);
#undef URL_BAD
	ASSERT_FAILS("[postgresql]\nurl = postgres://rec:hunter2@h/\x1b" "db\n",
		     "2: url: control character in the value (the value is not shown: it may "
		     "hold a password)");
	ASSERT_FAILS("[postgresql]\nurl = password=hunter2\x7f\n",
		     "2: url: control character in the value (the value is not shown: it may "
		     "hold a password)");
	/* A URL with user info elsewhere: a forgotten "url =", a '=' in its query taken for
	 * the key, a room line, a value of another key. */
	ASSERT_FAILS("[postgresql]\npostgresql://rec:hunter2@h/db\n",
		     "2: expected 'key = value', got '(not shown: it may hold a password)'");
	ASSERT_FAILS("[postgresql]\npostgresql://rec:hunter2@h/db?sslmode=require\n",
		     "2: unknown key '(not shown: it may hold a password)' in [postgresql]");
	ASSERT_FAILS("postgres://rec:hunter2@h/db?a=b\n",
		     "1: key '(not shown: it may hold a password)' is outside any [section]");
	ASSERT_FAILS("[rooms]\npostgres://rec:hunter2@h/db\n",
		     "2: room '(not shown: it may hold a password)': unknown platform (expected "
		     "douyu or bilibili)");
	ASSERT_FAILS("[postgresql]\nkeep_local_days = postgres://rec:hunter2@h/db\n",
		     "2: keep_local_days: expected an integer between 0 and 36500, got '(not "
		     "shown: it may hold a password)'");
	ASSERT_FAILS("[douyu]\nservers = wss://a:1/ postgresql://rec:hunter2@h/db\n",
		     "2: servers: a server is not a wss://, ws:// or tcp:// URL (not shown: it may "
		     "hold a password)");
	/* Without user info there is no password to hide. */
	ASSERT_FAILS("[postgresql]\npostgres://h/db\n",
		     "2: expected 'key = value', got 'postgres://h/db'");
	ASSERT(conf_pg_url_check("postgres://h", 12) == NULL);
	ASSERT(conf_pg_url_check("", 0) != NULL);
	ASSERT(conf_pg_url_check("host", 4) != NULL);
	ASSERT(conf_pg_url_check("host=", 5) == NULL);
}

/* [cluster] (issue 13): every key, its bounds, and that it needs a [postgresql] url. */
static void test_cluster_section(void)
{
	struct conf c;
	ASSERT_EQ(parse(&c, "[cluster]\n"
			    "node = rec-a.example_1\n"
			    "mode = shard\n"
			    "lease_s = 3\n"
			    "max_rooms = 100000\n"
			    "[postgresql]\n"
			    "url = host=db\n"),
		  0);
	ASSERT_STR_EQ(c.pg.node, "rec-a.example_1");
	ASSERT_EQ(c.pg.mode, CONF_CLUSTER_SHARD);
	ASSERT_EQ(c.pg.lease_s, 3);
	ASSERT_EQ(c.pg.max_rooms, 100000);
	ASSERT_STR_EQ(c.pg.url, "host=db");
	conf_finish(&c);
	ASSERT(c.pg.node == NULL);
	ASSERT_EQ(c.pg.mode, -1);
	ASSERT_EQ(parse(&c, "[postgresql]\nurl = postgres://h/db\n[cluster]\nmode = mirror\n"
			    "lease_s = 3600\nmax_rooms = 1\n"),
		  0);
	ASSERT_EQ(c.pg.mode, CONF_CLUSTER_MIRROR);
	ASSERT_EQ(c.pg.lease_s, 3600);
	ASSERT_EQ(c.pg.max_rooms, 1);
	conf_finish(&c);
	/* Node names: 1..63 of [A-Za-z0-9._-]. */
	char text[256], name[80];
	memset(name, 'n', 63);
	name[63] = '\0';
	snprintf(text, sizeof(text), "[cluster]\nnode = %s\n[postgresql]\nurl = postgres://\n",
		 name);
	ASSERT_EQ(parse(&c, text), 0);
	ASSERT_STR_EQ(c.pg.node, name);
	conf_finish(&c);
	ASSERT_EQ(parse(&c, "[cluster]\nnode = .\n[postgresql]\nurl = postgres://\n"), 0);
	ASSERT_STR_EQ(c.pg.node, ".");
	conf_finish(&c);
#define BAD_NODE(v, shown)                                                                         \
	ASSERT_FAILS("[postgresql]\nurl = postgres://\n[cluster]\nnode = " v "\n",                 \
		     "4: node: expected 1 to 63 of A-Z a-z 0-9 . _ -, got '" shown "'")
	BAD_NODE("", "");
	BAD_NODE("rec a", "rec a");
	BAD_NODE("rec/a", "rec/a");
	BAD_NODE("rec:a", "rec:a");
	BAD_NODE("节点", "节点");
	BAD_NODE("a\x01", "a\\x01");
	BAD_NODE("nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
		 "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn..."); /* 64 */
#undef BAD_NODE
	ASSERT_FAILS("[postgresql]\nurl = postgres://\n[cluster]\nmode = Shard\n",
		     "4: mode: expected mirror or shard, got 'Shard'");
	ASSERT_FAILS("[postgresql]\nurl = postgres://\n[cluster]\nmode =\n",
		     "4: mode: expected mirror or shard, got ''");
	ASSERT_FAILS("[postgresql]\nurl = postgres://\n[cluster]\nlease_s = 2\n",
		     "4: lease_s: expected an integer between 3 and 3600, got '2'");
	ASSERT_FAILS("[postgresql]\nurl = postgres://\n[cluster]\nlease_s = 3601\n",
		     "4: lease_s: expected an integer between 3 and 3600, got '3601'");
	ASSERT_FAILS("[postgresql]\nurl = postgres://\n[cluster]\nmax_rooms = 0\n",
		     "4: max_rooms: expected an integer between 1 and 100000, got '0'");
	ASSERT_FAILS("[postgresql]\nurl = postgres://\n[cluster]\nmax_rooms = 100001\n",
		     "4: max_rooms: expected an integer between 1 and 100000, got '100001'");
	ASSERT_FAILS("[postgresql]\nurl = postgres://\n[cluster]\nmode = shard\nmode = mirror\n",
		     "5: mode already set on line 4");
	ASSERT_FAILS("[postgresql]\nnode = a\n",
		     "2: unknown key 'node' in [postgresql] (it belongs in [cluster])");
	ASSERT_FAILS("[recorder]\nlease_s = 30\n",
		     "2: unknown key 'lease_s' in [recorder] (it belongs in [cluster])");

	/* No url in the file: the [cluster] section that holds the first key is named. */
	ASSERT_FAILS("[cluster]\nnode = a\n", "1: [cluster] needs [postgresql] url");
	ASSERT_FAILS("[recorder]\n\n[cluster]\n# a comment\nmode = shard\n[cluster]\nnode = b\n",
		     "3: [cluster] needs [postgresql] url");
	ASSERT_FAILS("[cluster]\n[rooms]\n1\n[cluster]\nlease_s = 10\n",
		     "4: [cluster] needs [postgresql] url");
	ASSERT_FAILS("[cluster]\nnode = a\n[postgresql]\npassword_file = /p\nkeep_local_days = 1\n",
		     "1: [cluster] needs [postgresql] url");
	/* An error on an earlier line is the one reported. */
	ASSERT_FAILS("[cluster]\nnode = a\n[recorder]\nflush_ms = 1\n",
		     "4: flush_ms: expected an integer between 10 and 60000, got '1'");
	/* An empty [cluster] (every key commented out, as in the example config) is fine. */
	ASSERT_EQ(parse(&c, "[cluster]\n#node = a\n#mode = shard\n[rooms]\n1\n"), 0);
	ASSERT(c.pg.node == NULL && c.pg.url == NULL);
	ASSERT_EQ(c.n_rooms, 1);
	conf_finish(&c);
}

/* The default node name: the host name with every other byte made '-', cut to 63. */
static void test_node_names(void)
{
	char out[CONF_NODE_MAX + 1];
	conf_node_from_host("rec-a.example.org", out);
	ASSERT_STR_EQ(out, "rec-a.example.org");
	ASSERT(conf_node_valid(out, strlen(out)));
	conf_node_from_host("my host:1/x", out);
	ASSERT_STR_EQ(out, "my-host-1-x");
	conf_node_from_host("主机", out); /* six UTF-8 bytes */
	ASSERT_STR_EQ(out, "------");
	conf_node_from_host("", out);
	ASSERT_STR_EQ(out, "");
	ASSERT(!conf_node_valid(out, 0));
	char host[200];
	memset(host, 'h', sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	conf_node_from_host(host, out);
	ASSERT_EQ(strlen(out), CONF_NODE_MAX);
	ASSERT(conf_node_valid(out, strlen(out)));
	ASSERT(!conf_node_valid(host, CONF_NODE_MAX + 1));
	ASSERT(conf_node_valid("A-Z_a.z-0_9", 11));
	ASSERT(!conf_node_valid("a+b", 3));
}

int main(void)
{
	RUN(test_init_unset);
	RUN(test_empty);
	RUN(test_full);
	RUN(test_crlf_bom);
	RUN(test_missing_final_newline);
	RUN(test_comments_whitespace);
	RUN(test_labels);
	RUN(test_room_ids);
	RUN(test_servers);
	RUN(test_max_rooms);
	RUN(test_bounds);
	RUN(test_service_keys);
	RUN(test_fts_key);
	RUN(test_max_queue_key);
	RUN(test_errors);
	RUN(test_nul_and_long_lines);
	RUN(test_quoting);
	RUN(test_failure_resets);
	RUN(test_length_respected);
	RUN(test_many_rooms);
	RUN(test_platform_rooms);
	RUN(test_bilibili_section);
	RUN(test_postgresql_section);
	RUN(test_postgresql_url_not_shown);
	RUN(test_cluster_section);
	RUN(test_node_names);
	TEST_DONE();
}
