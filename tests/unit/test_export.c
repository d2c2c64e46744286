/*
 * test_export: the pure pieces of the exporters: command-line times (unix s, unix ms, local
 * dates in a fixed non-UTC zone), --room (platform:id or a bare id), the Douyu colour map, XML
 * escaping with invalid characters stripped, JSON strings, and whole XML and NDJSON rows of
 * both platforms compared byte for byte.
 */
#include "export.h"

#include "test.h"

#include <errno.h>
#include <time.h>

/* b's contents as a NUL-terminated string (the buffer keeps a spare byte for it). */
static const char *str(struct buf *b)
{
	buf_append(b, "", 1);
	b->len--;
	return (const char *)buf_head(b);
}

static int64_t t_ms(const char *s)
{
	int64_t v = -42;
	return export_parse_time(s, &v) == 0 ? v : -1;
}

static void parse_time_unix(void)
{
	ASSERT_EQ(t_ms("1700000000"), INT64_C(1700000000000));
	ASSERT_EQ(t_ms("1700000000123"), INT64_C(1700000000123));
	ASSERT_EQ(t_ms("99999999999"), INT64_C(99999999999000)); /* below 1e11: seconds */
	ASSERT_EQ(t_ms("100000000000"), INT64_C(100000000000));  /* from 1e11: milliseconds */
	ASSERT_EQ(t_ms("0"), 0);
	ASSERT_EQ(t_ms(""), -1);
	ASSERT_EQ(t_ms("-5"), -1);
	ASSERT_EQ(t_ms("12a"), -1);
	ASSERT_EQ(t_ms(" 1700000000"), -1);
	ASSERT_EQ(t_ms("12345678901234567"), -1); /* 17 digits: would overflow as ms */
}

/* Local dates at UTC+8 (China, no DST): 2025-01-02 00:00 there is 2025-01-01 16:00Z. */
static void parse_time_local(void)
{
	setenv("TZ", "CST-8", 1); /* POSIX form: needs no tzdata */
	tzset();
	ASSERT_EQ(t_ms("2025-01-02"), INT64_C(1735747200000));
	ASSERT_EQ(t_ms("2025-01-02 03:04"), INT64_C(1735747200000) + (3 * 3600 + 4 * 60) * 1000);
	ASSERT_EQ(t_ms("2025-01-02 03:04:05"),
	          INT64_C(1735747200000) + (3 * 3600 + 4 * 60 + 5) * 1000);
	ASSERT_EQ(t_ms("2025-01-02T03:04:05"), t_ms("2025-01-02 03:04:05"));
	ASSERT_EQ(t_ms("2024-02-29"), INT64_C(1709136000000)); /* a leap day exists */
	ASSERT_EQ(t_ms("2025-02-29"), -1);
	ASSERT_EQ(t_ms("2025-02-30"), -1);
	ASSERT_EQ(t_ms("2025-04-31"), -1);
	ASSERT_EQ(t_ms("2025-13-01"), -1);
	ASSERT_EQ(t_ms("2025-00-01"), -1);
	ASSERT_EQ(t_ms("2025-01-00"), -1);
	ASSERT_EQ(t_ms("2025-1-02"), -1);
	ASSERT_EQ(t_ms("2025-01-02 3:04"), -1);
	ASSERT_EQ(t_ms("2025-01-02 24:00"), -1);
	ASSERT_EQ(t_ms("2025-01-02 23:60"), -1);
	ASSERT_EQ(t_ms("2025-01-02 03:04:5"), -1);
	ASSERT_EQ(t_ms("2025-01-02 03:04:60"), -1);
	ASSERT_EQ(t_ms("2025-01-02 03"), -1);
	ASSERT_EQ(t_ms("2025-01-02x03:04"), -1);
	ASSERT_EQ(t_ms("2025-01-02 03:04:05Z"), -1);
	ASSERT_EQ(t_ms("1969-12-31"), -1);
	/* The same wall time in UTC is 8 hours later. */
	setenv("TZ", "UTC0", 1);
	tzset();
	ASSERT_EQ(t_ms("2025-01-02"), INT64_C(1735776000000));
	unsetenv("TZ");
	tzset();
}

static void parse_room(void)
{
	char p[16];
	int64_t id = -1;
	ASSERT_EQ(export_parse_room("9999", p, sizeof(p), &id), 0);
	ASSERT_STR_EQ(p, "");
	ASSERT_EQ(id, 9999);
	ASSERT_EQ(export_parse_room("douyu:288016", p, sizeof(p), &id), 0);
	ASSERT_STR_EQ(p, "douyu");
	ASSERT_EQ(id, 288016);
	ASSERT_EQ(export_parse_room("bilibili:76", p, sizeof(p), &id), 0);
	ASSERT_STR_EQ(p, "bilibili");
	ASSERT_EQ(id, 76);
	ASSERT_EQ(export_parse_room("bilibili:9007199254740992", p, sizeof(p), &id), 0); /* 2^53 */
	static const char *const bad[] = {"",          "0",           ":5",          "douyu:",
	                                  "douyu:0",   "douyu:-1",    "Douyu:5",     "dou yu:5",
	                                  "douyu:5:6", "douyu: 5",    "5x",          "bilibili:5a",
	                                  "a_b:5",     "bilibili:9007199254740993",
	                                  "averyveryverylongplatform:5"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		id = -7;
		if (export_parse_room(bad[i], p, sizeof(p), &id) != -EINVAL) {
			printf("# accepted '%s'\n", bad[i]);
			ASSERT(0);
		}
	}
}

static void colors(void)
{
	ASSERT_EQ(export_douyu_color(NULL), 0xffffff);
	ASSERT_EQ(export_douyu_color(""), 0xffffff);
	ASSERT_EQ(export_douyu_color("0"), 0xffffff);
	ASSERT_EQ(export_douyu_color("1"), 0xff0000);
	ASSERT_EQ(export_douyu_color("2"), 0x1e87f0);
	ASSERT_EQ(export_douyu_color("3"), 0x7ac84b);
	ASSERT_EQ(export_douyu_color("4"), 0xff7f00);
	ASSERT_EQ(export_douyu_color("5"), 0x9b39f4);
	ASSERT_EQ(export_douyu_color("6"), 0xff69b4);
	ASSERT_EQ(export_douyu_color("7"), 0xffffff);
	ASSERT_EQ(export_douyu_color("12"), 0xffffff);
	ASSERT_EQ(export_douyu_color("1 "), 0xffffff);
}

static const char *xml(struct buf *b, const char *s, size_t n, bool attr)
{
	buf_clear(b);
	if (export_xml_escape(b, s, n, attr) < 0)
		return "(error)";
	return str(b);
}

#define XML(s, attr) xml(&b, s, sizeof(s) - 1, attr)

static void xml_escaping(void)
{
	struct buf b;
	buf_init(&b);
	ASSERT_STR_EQ(XML("plain 中文 😀", false), "plain 中文 😀");
	ASSERT_STR_EQ(XML("a<b>&\"c'", false), "a&lt;b&gt;&amp;\"c'");
	ASSERT_STR_EQ(XML("a<b>&\"c'", true), "a&lt;b&gt;&amp;&quot;c'");
	ASSERT_STR_EQ(XML("]]>", false), "]]&gt;");
	/* Tab and LF survive in text; in attributes they would be normalised to spaces. */
	ASSERT_STR_EQ(XML("a\tb\nc\rd", false), "a\tb\nc&#13;d");
	ASSERT_STR_EQ(XML("a\tb\nc\rd", true), "a&#9;b&#10;c&#13;d");
	/* Forbidden C0 controls, including NUL, are dropped. */
	ASSERT_STR_EQ(XML("\x01x\x08y\x0bz\x0c\x1f\x00!", false), "xyz!");
	/* DEL and C1 controls (U+0085 is C2 85), discouraged by XML 1.0, are dropped. */
	ASSERT_STR_EQ(XML("a\x7f" "b\xc2\x85" "c\xc2\x9f" "d\xc2\xa0" "e", false),
	              "abcd\xc2\xa0" "e");
	/* U+FFFE and U+FFFF are not characters; U+FFFD is. */
	ASSERT_STR_EQ(XML("1\xef\xbf\xbe" "2\xef\xbf\xbf" "3\xef\xbf\xbd", false),
	              "123\xef\xbf\xbd");
	/* Surrogates written as UTF-8 (CESU-8), stray bytes, truncated and overlong forms. */
	ASSERT_STR_EQ(XML("s\xed\xa0\x80" "t", false), "st");
	ASSERT_STR_EQ(XML("u\xff\xfe" "v\x80w", false), "uvw");
	ASSERT_STR_EQ(XML("x\xc0\xaf" "y", false), "xy");
	ASSERT_STR_EQ(XML("z\xe4\xbd", false), "z");
	ASSERT_STR_EQ(XML("\xf4\x90\x80\x80!", false), "!"); /* above U+10FFFF */
	ASSERT_STR_EQ(XML("", true), "");
	buf_finish(&b);
}

static struct export_row chat_row(void)
{
	struct export_row r = {0};
	r.id = 17;
	r.room_id = 9999;
	r.ts = INT64_C(1700000012345);
	r.type = "chatmsg";
	r.has_uid = true;
	r.uid = 46780819;
	r.nick = "观众<1>";
	r.has_level = true;
	r.level = 24;
	r.text = "前排 & \x01\"好\"";
	r.cid = "a589";
	r.col = "2";
	return r;
}

static void xml_rows(void)
{
	struct buf b;
	buf_init(&b);
	struct export_row r = chat_row();
	ASSERT_EQ(export_xml_row(&b, &r, INT64_C(1700000000000)), 0);
	ASSERT_STR_EQ(str(&b), "<d p=\"12.345,1,25,2000880,1700000012,0,46780819,17\" "
	                       "user=\"观众&lt;1&gt;\">前排 &amp; \"好\"</d>\n");
	/* Without uid or colour: uid 0, white; the time keeps three decimals. */
	buf_clear(&b);
	r.has_uid = false;
	r.col = NULL;
	r.nick = NULL;
	ASSERT_EQ(export_xml_row(&b, &r, INT64_C(1700000012345)), 0);
	ASSERT_STR_EQ(str(&b), "<d p=\"0.000,1,25,16777215,1700000012,0,0,17\" user=\"\">前排 &amp; "
	                       "\"好\"</d>\n");
	buf_clear(&b);
	ASSERT_EQ(export_xml_row(&b, &r, INT64_C(1700000012346)), 0);
	ASSERT(strncmp(str(&b), "<d p=\"-0.001,", 13) == 0);

	struct export_row g = {0};
	g.id = 18;
	g.ts = INT64_C(1700000072000);
	g.type = "dgb";
	g.has_uid = true;
	g.uid = 5413638;
	g.nick = "观众3";
	g.gift_name = "粉丝荧光棒";
	g.gift_id = "824";
	g.gift_count = "10";
	buf_clear(&b);
	ASSERT_EQ(export_xml_row(&b, &g, INT64_C(1700000000000)), 0);
	ASSERT_STR_EQ(str(&b), "<gift ts=\"72.000\" giftname=\"粉丝荧光棒\" giftcount=\"10\" "
	                       "uid=\"5413638\" user=\"观众3\"/>\n");
	g.gift_name = NULL;
	g.gift_count = "x";
	buf_clear(&b);
	ASSERT_EQ(export_xml_row(&b, &g, INT64_C(1700000000000)), 0);
	ASSERT_STR_EQ(str(&b), "<gift ts=\"72.000\" giftname=\"gift 824\" giftcount=\"1\" "
	                       "uid=\"5413638\" user=\"观众3\"/>\n");

	struct export_row u = {0};
	u.type = "uenter";
	buf_clear(&b);
	ASSERT_EQ(export_xml_row(&b, &u, 0), 0);
	ASSERT_EQ(b.len, 0);
	/* Douyu's types are Douyu's only: a Bilibili row typed chatmsg writes nothing. */
	g.platform = "bilibili";
	buf_clear(&b);
	ASSERT_EQ(export_xml_row(&b, &g, 0), 0);
	ASSERT_EQ(b.len, 0);
	g.platform = "douyu";
	ASSERT_EQ(export_xml_row(&b, &g, 0), 0);
	ASSERT_GT(b.len, 0);
	buf_finish(&b);
}

/* Bilibili: <d> with the message's own mode, size and colour and its id_str, <gift> from
 * SEND_GIFT and SEND_GIFT_V2, <sc> and <guard> as BililiveRecorder writes them. */
static void xml_rows_bilibili(void)
{
	struct buf b;
	buf_init(&b);
	struct export_row d = {0};
	d.id = 40;
	d.platform = "bilibili";
	d.ts = INT64_C(1700000012345);
	d.type = "DANMU_MSG";
	d.has_uid = true;
	d.uid = INT64_C(77777777771);
	d.nick = "观众<1>";
	d.text = "弹幕 & \x01";
	d.cid = "757c46e2cd8f3ca67a193029986ab92a3089";
	d.mode = "4";
	d.size = "25";
	d.color = "9920249";
	ASSERT_EQ(export_xml_row(&b, &d, INT64_C(1700000000000)), 0);
	ASSERT_STR_EQ(str(&b), "<d p=\"12.345,4,25,9920249,1700000012,0,77777777771,"
	                       "757c46e2cd8f3ca67a193029986ab92a3089\" user=\"观众&lt;1&gt;\">弹幕 "
	                       "&amp; </d>\n");
	/* A masked guest (uid 0), fields missing or out of range, an id that is not plain
	 * alphanumerics (it would add fields to p): defaults and the row id. */
	d.uid = 0;
	d.nick = "观***";
	d.mode = NULL;
	d.size = "x";
	d.color = "16777216";
	d.cid = "a,b";
	buf_clear(&b);
	ASSERT_EQ(export_xml_row(&b, &d, INT64_C(1700000012345)), 0);
	ASSERT_STR_EQ(str(&b), "<d p=\"0.000,1,25,16777215,1700000012,0,0,40\" user=\"观***\">弹幕 "
	                       "&amp; </d>\n");
	d.cid = NULL;
	buf_clear(&b);
	ASSERT_EQ(export_xml_row(&b, &d, INT64_C(1700000012345)), 0);
	ASSERT(strstr(str(&b), ",0,0,40\""));

	struct export_row g = {0};
	g.platform = "bilibili";
	g.ts = INT64_C(1700000072000);
	g.type = "SEND_GIFT_V2";
	g.has_uid = true;
	g.uid = 5;
	g.nick = "five";
	g.gift_name = "小花花";
	g.gift_id = "31036";
	g.gift_count = "2";
	buf_clear(&b);
	ASSERT_EQ(export_xml_row(&b, &g, INT64_C(1700000000000)), 0);
	ASSERT_STR_EQ(str(&b), "<gift ts=\"72.000\" giftname=\"小花花\" giftcount=\"2\" uid=\"5\" "
	                       "user=\"five\"/>\n");
	g.type = "SEND_GIFT";
	g.gift_name = NULL;
	g.gift_count = NULL;
	buf_clear(&b);
	ASSERT_EQ(export_xml_row(&b, &g, INT64_C(1700000000000)), 0);
	ASSERT_STR_EQ(str(&b), "<gift ts=\"72.000\" giftname=\"gift 31036\" giftcount=\"1\" "
	                       "uid=\"5\" user=\"five\"/>\n");

	struct export_row sc = {0};
	sc.platform = "bilibili";
	sc.ts = INT64_C(1700000001500);
	sc.type = "SUPER_CHAT_MESSAGE";
	sc.has_uid = true;
	sc.uid = 7;
	sc.nick = "\"sc\"";
	sc.text = "<醒目留言>";
	sc.price = "30";
	sc.duration = "60";
	buf_clear(&b);
	ASSERT_EQ(export_xml_row(&b, &sc, INT64_C(1700000000000)), 0);
	ASSERT_STR_EQ(str(&b), "<sc ts=\"1.500\" user=\"&quot;sc&quot;\" uid=\"7\" price=\"30\" "
	                       "time=\"60\">&lt;醒目留言&gt;</sc>\n");

	struct export_row gu = {0};
	gu.platform = "bilibili";
	gu.ts = INT64_C(1700000002000);
	gu.type = "GUARD_BUY";
	gu.has_uid = true;
	gu.uid = 8;
	gu.nick = "舰长";
	gu.guard_level = "3";
	gu.gift_count = "1";
	buf_clear(&b);
	ASSERT_EQ(export_xml_row(&b, &gu, INT64_C(1700000000000)), 0);
	ASSERT_STR_EQ(str(&b), "<guard ts=\"2.000\" user=\"舰长\" uid=\"8\" level=\"3\" "
	                       "count=\"1\"/>\n");

	/* Other Bilibili types, and unknown platforms, write nothing. */
	struct export_row o = {0};
	o.platform = "bilibili";
	o.type = "INTERACT_WORD_V2";
	buf_clear(&b);
	ASSERT_EQ(export_xml_row(&b, &o, 0), 0);
	o.platform = "huya";
	o.type = "chatmsg";
	ASSERT_EQ(export_xml_row(&b, &o, 0), 0);
	ASSERT_EQ(b.len, 0);
	buf_finish(&b);
}

static void json_rows(void)
{
	struct buf b;
	buf_init(&b);
	struct export_row r = chat_row();
	r.has_session = true;
	r.session_id = 4;
	r.data = "{\"type\":\"chatmsg\",\"txt\":\"x\"}";
	r.data_json = true;
	ASSERT_EQ(export_json_row(&b, &r), 0);
	ASSERT_STR_EQ(str(&b), "{\"id\":17,\"platform\":\"douyu\",\"room_id\":9999,"
	                       "\"ts\":1700000012345,\"type\":\"chatmsg\","
	                       "\"uid\":46780819,\"nick\":\"观众<1>\",\"level\":24,"
	                       "\"text\":\"前排 & \\u0001\\\"好\\\"\",\"cid\":\"a589\","
	                       "\"session_id\":4,\"data\":{\"type\":\"chatmsg\",\"txt\":\"x\"},"
	                       "\"decoded\":null}\n");
	/* NULLs as null; data that is not JSON becomes a string. */
	struct export_row u = {0};
	u.id = 1;
	u.room_id = 2;
	u.ts = 3;
	u.type = "uenter";
	u.data = "not {json";
	buf_clear(&b);
	ASSERT_EQ(export_json_row(&b, &u), 0);
	ASSERT_STR_EQ(str(&b), "{\"id\":1,\"platform\":\"douyu\",\"room_id\":2,\"ts\":3,"
	                       "\"type\":\"uenter\",\"uid\":null,"
	                       "\"nick\":null,\"level\":null,\"text\":null,\"cid\":null,"
	                       "\"session_id\":null,\"data\":\"not {json\",\"decoded\":null}\n");
	/* Bilibili: the platform, decoded nested like data, or a string when it is not JSON. */
	struct export_row v = {0};
	v.id = 5;
	v.platform = "bilibili";
	v.room_id = 21452505;
	v.ts = 6;
	v.type = "SEND_GIFT_V2";
	v.data = "{\"cmd\":\"SEND_GIFT_V2\"}";
	v.data_json = true;
	v.decoded = "{\"gift_id\":1,\"tid\":\"7\"}";
	v.decoded_json = true;
	buf_clear(&b);
	ASSERT_EQ(export_json_row(&b, &v), 0);
	ASSERT_STR_EQ(str(&b), "{\"id\":5,\"platform\":\"bilibili\",\"room_id\":21452505,\"ts\":6,"
	                       "\"type\":\"SEND_GIFT_V2\",\"uid\":null,\"nick\":null,\"level\":null,"
	                       "\"text\":null,\"cid\":null,\"session_id\":null,"
	                       "\"data\":{\"cmd\":\"SEND_GIFT_V2\"},"
	                       "\"decoded\":{\"gift_id\":1,\"tid\":\"7\"}}\n");
	v.decoded = "{\"t\":\"a\nb\"}";
	buf_clear(&b);
	ASSERT_EQ(export_json_row(&b, &v), 0);
	ASSERT(strstr(str(&b), ",\"decoded\":\"{\\\"t\\\":\\\"a\\nb\\\"}\"}\n"));
	buf_finish(&b);
}

int main(void)
{
	RUN(parse_time_unix);
	RUN(parse_time_local);
	RUN(parse_room);
	RUN(colors);
	RUN(xml_escaping);
	RUN(xml_rows);
	RUN(xml_rows_bilibili);
	RUN(json_rows);
	TEST_DONE();
}
