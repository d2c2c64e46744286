/*
 * Bilibili commands to records: every fixture in ../shared/fixtures/bilibili maps to the
 * typed columns bili_cmd.h promises (values read off the fixtures by hand), the two protobuf
 * payloads decode to what the protocol note says, and broken, hostile or odd bodies are
 * skipped or repaired as documented.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <mbedtls/base64.h>
#include <stdbool.h>

#include "bili_cmd.h"
#include "recs.h"
#include "test.h"
#include "text.h"

#define FIXTURES SHARED_DIR "/fixtures/bilibili/"

/* The store trusts the lengths a record carries: each is exactly strlen of its string. */
static bool lens_exact(const struct record *r)
{
	return r->type && r->type_len == strlen(r->type) &&
	       (r->nick ? r->nick_len == strlen(r->nick) : r->nick_len == 0) &&
	       (r->text ? r->text_len == strlen(r->text) : r->text_len == 0) &&
	       (r->cid ? r->cid_len == strlen(r->cid) : r->cid_len == 0);
}

static int records_seen, inexact_lengths;

static int collect(void *user_data, const struct record *rec)
{
	records_seen++;
	if (!lens_exact(rec)) {
		inexact_lengths++;
		printf("# %s: lengths %zu %zu %zu %zu\n", rec->type, rec->type_len, rec->nick_len,
		       rec->text_len, rec->cid_len);
	}
	recs_add(user_data, rec);
	return 0;
}

/* Parse and map one body; returns bili_cmd_records' value, or 1000 + nothing when skipped
 * (with the reason in *why). */
static int map(const char *body, size_t len, struct recs *rs, const char **why)
{
	struct bili_cmd c;
	bili_cmd_init(&c);
	const char *w = NULL;
	int rc = bili_cmd_parse(&c, (const uint8_t *)body, len, &w);
	if (why)
		*why = w;
	if (rc == 0)
		rc = bili_cmd_records(&c, 77777777774, 1700000000123, 42, collect, rs);
	else if (rc == 1)
		rc = 1000;
	bili_cmd_finish(&c);
	return rc;
}

static int map_str(const char *body, struct recs *rs, const char **why)
{
	return map(body, strlen(body), rs, why);
}

static char *fixture(const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof(path), FIXTURES "%s", name);
	return test_read_file(path, len);
}

/* What one fixture must map to (one record). NULL: the column is absent. */
struct want {
	const char *file, *type;
	bool has_uid;
	int64_t uid;
	const char *nick;
	bool has_level;
	int64_t level;
	const char *text, *cid;
	bool decoded;
};

#define U 77777777771
#define NICK "__MOCK_UNAME__"
#define TEXT "__MOCK_MESSAGE_CONTENT__"

static const struct want wants[] = {
    {"ANCHOR_LOT_AWARD.json", "ANCHOR_LOT_AWARD", false, 0, NULL, false, 0, NULL, NULL, false},
    {"ANCHOR_LOT_CHECKSTATUS.json", "ANCHOR_LOT_CHECKSTATUS", true, 77777777775, NULL, false, 0,
     NULL, NULL, false},
    {"ANCHOR_LOT_END.json", "ANCHOR_LOT_END", false, 0, NULL, false, 0, NULL, NULL, false},
    {"ANCHOR_LOT_START.json", "ANCHOR_LOT_START", false, 0, NULL, false, 0, NULL, NULL, false},
    {"COMBO_SEND.json", "COMBO_SEND", true, U, NICK, false, 0, NULL,
     "COMBO_SEND:batch:gift:combo_id:77777777771:77777777774:31036:1661527988.0356:5", false},
    {"CUT_OFF.json", "CUT_OFF", false, 0, NULL, false, 0, "违反直播言论规范，请立即调整", NULL,
     false},
    /* No id_str in its extra and no msg_id: send time, sender hash, FNV-1a of the text. */
    {"DANMU_MSG-4-0-2-2-2-0.json", "DANMU_MSG", true, U, NICK, true, 0, TEXT,
     "DANMU_MSG:1669884799391:c7e84af0:ec32afea40dc95ed", false},
    {"DANMU_MSG.json", "DANMU_MSG", true, U, NICK, true, 27, TEXT,
     "DANMU_MSG:1662398325906:125b3efa:ec32afea40dc95ed", false},
    {"DM_INTERACTION.json", "DM_INTERACTION", false, 0, NULL, false, 0, NULL, NULL, false},
    {"ENTRY_EFFECT.json", "ENTRY_EFFECT", true, U, NULL, false, 0, NULL, NULL, false},
    {"GUARD_BUY.json", "GUARD_BUY", true, U, NICK, false, 0, NULL,
     "GUARD_BUY:77777777771:1661604507:3:1", false},
    {"INTERACT_WORD.json", "INTERACT_WORD", true, U, NICK, false, 0, NULL,
     "INTERACT_WORD:77777777771:1661528426687646500", false},
    {"INTERACT_WORD_V2.json", "INTERACT_WORD_V2", true, 439367700, "StarSea246", false, 0, NULL,
     "INTERACT_WORD_V2:439367700:1751716523239264129", true},
    {"LIKE_INFO_V3_CLICK.json", "LIKE_INFO_V3_CLICK", true, U, NICK, false, 0, NULL, NULL, false},
    {"LIKE_INFO_V3_UPDATE.json", "LIKE_INFO_V3_UPDATE", false, 0, NULL, false, 0, NULL, NULL,
     false},
    {"LIVE.json", "LIVE", false, 0, NULL, false, 0, NULL, "LIVE:293804801320940837:1", false},
    {"LOG_IN_NOTICE.json", "LOG_IN_NOTICE", false, 0, NULL, false, 0, NULL, NULL, false},
    {"NOTICE_MSG.json", "NOTICE_MSG", false, 0, NULL, false, 0, NULL, NULL, false},
    {"ONLINE_RANK_COUNT.json", "ONLINE_RANK_COUNT", false, 0, NULL, false, 0, NULL, NULL, false},
    {"ONLINE_RANK_TOP3.json", "ONLINE_RANK_TOP3", false, 0, NULL, false, 0, NULL, NULL, false},
    {"ONLINE_RANK_V2.json", "ONLINE_RANK_V2", false, 0, NULL, false, 0, NULL, NULL, false},
    {"POPULARITY_RED_POCKET_NEW.json", "POPULARITY_RED_POCKET_NEW", true, U, NICK, false, 0, NULL,
     NULL, false},
    {"POPULARITY_RED_POCKET_START.json", "POPULARITY_RED_POCKET_START", false, 0, NULL, false, 0,
     NULL, NULL, false},
    {"POPULARITY_RED_POCKET_WINNER_LIST.json", "POPULARITY_RED_POCKET_WINNER_LIST", false, 0, NULL,
     false, 0, NULL, NULL, false},
    {"PREPARING.json", "PREPARING", false, 0, NULL, false, 0, NULL, NULL, false},
    {"RECALL_DANMU_MSG.json", "RECALL_DANMU_MSG", false, 0, NULL, false, 0, NULL, NULL, false},
    {"ROOM_ADMINS.json", "ROOM_ADMINS", false, 0, NULL, false, 0, NULL, NULL, false},
    {"ROOM_ADMIN_REVOKE.json", "ROOM_ADMIN_REVOKE", true, U, NULL, false, 0, NULL, NULL, false},
    {"ROOM_BLOCK_MSG.json", "ROOM_BLOCK_MSG", true, U, NICK, false, 0, NULL, NULL, false},
    {"ROOM_CHANGE.json", "ROOM_CHANGE", false, 0, NULL, false, 0, "直播间标题", NULL, false},
    {"ROOM_REAL_TIME_MESSAGE_UPDATE.json", "ROOM_REAL_TIME_MESSAGE_UPDATE", false, 0, NULL, false,
     0, NULL, NULL, false},
    {"ROOM_SILENT_OFF.json", "ROOM_SILENT_OFF", false, 0, NULL, false, 0, NULL, NULL, false},
    {"ROOM_SILENT_ON.json", "ROOM_SILENT_ON", false, 0, NULL, false, 0, NULL, NULL, false},
    {"SEND_GIFT.json", "SEND_GIFT", true, U, NICK, false, 0, NULL, "SEND_GIFT:1664028708120000001",
     false},
    /* A guest's view: no uid in the protobuf (0), the name masked by Bilibili. */
    {"SEND_GIFT_V2.json", "SEND_GIFT_V2", true, 0, "想***", false, 0, NULL,
     "SEND_GIFT_V2:4825830807182606848:0", true},
    {"STOP_LIVE_ROOM_LIST.json", "STOP_LIVE_ROOM_LIST", false, 0, NULL, false, 0, NULL, NULL,
     false},
    {"SUPER_CHAT_MESSAGE.json", "SUPER_CHAT_MESSAGE", true, U, NICK, true, 20, TEXT,
     "SUPER_CHAT_MESSAGE:4898587", false},
    {"SUPER_CHAT_MESSAGE_DELETE.json", "SUPER_CHAT_MESSAGE_DELETE", false, 0, NULL, false, 0, NULL,
     NULL, false},
    /* Ids as strings; message_jpn is "", so the text is message. */
    {"SUPER_CHAT_MESSAGE_JPN.json", "SUPER_CHAT_MESSAGE_JPN", true, U, NICK, true, 17, TEXT,
     "SUPER_CHAT_MESSAGE_JPN:4898652", false},
    {"USER_TOAST_MSG.json", "USER_TOAST_MSG", true, U, NICK, false, 0,
     "<%__MOCK_UNAME__%> 开通了舰长，今天是TA陪伴主播的第1天",
     "USER_TOAST_MSG:2301242158351662179727302", false},
    {"WARNING.json", "WARNING", false, 0, NULL, false, 0, "图片内容不适宜，请立即调整", NULL,
     false},
    {"WATCHED_CHANGE.json", "WATCHED_CHANGE", false, 0, NULL, false, 0, NULL, NULL, false},
    {"room_admin_entrance.json", "room_admin_entrance", true, U, NULL, false, 0, NULL, NULL, false},
};

#define NWANTS (sizeof(wants) / sizeof(wants[0]))

static bool str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool check_want(const struct want *w, const struct rec_copy *r, const char *body, size_t len)
{
	bool ok = str_eq(r->type, w->type) && r->has_uid == w->has_uid &&
	          (!w->has_uid || r->uid == w->uid) && !(r->has_uid == false && r->uid != 0) &&
	          str_eq(r->nick, w->nick) && r->has_level == w->has_level &&
	          (!w->has_level || r->level == w->level) && str_eq(r->text, w->text) &&
	          str_eq(r->cid, w->cid) && (r->decoded != NULL) == w->decoded &&
	          str_eq(r->platform, "bilibili") && r->room_id == 77777777774 &&
	          r->ts == 1700000000123 && r->session_id == 42 && r->replaced_utf8 == 0 &&
	          r->data_len == len && memcmp(r->data, body, len) == 0;
	if (!ok)
		printf("# %s: type %s uid %d:%" PRId64 " nick %s level %d:%" PRId64
		       " text %s cid %s decoded %s\n",
		       w->file, r->type, r->has_uid, r->uid, r->nick ? r->nick : "(null)",
		       r->has_level, r->level, r->text ? r->text : "(null)",
		       r->cid ? r->cid : "(null)", r->decoded ? r->decoded : "(null)");
	return ok;
}

/* Every fixture file is in the table, and maps to exactly what the table says. */
static void test_fixtures(void)
{
	DIR *d = opendir(FIXTURES);
	ASSERT(d);
	struct dirent *e;
	bool seen[NWANTS] = {false};
	int files = 0;
	while ((e = readdir(d))) {
		size_t nl = strlen(e->d_name);
		if (nl < 6 || strcmp(e->d_name + nl - 5, ".json") != 0)
			continue;
		files++;
		size_t i = 0;
		while (i < NWANTS && strcmp(wants[i].file, e->d_name) != 0)
			i++;
		if (i == NWANTS) {
			closedir(d);
			TEST_FAIL_("fixture %s is not in the table", e->d_name);
			return;
		}
		seen[i] = true;
		size_t len;
		char *body = fixture(e->d_name, &len);
		ASSERT(body);
		struct recs rs = {.n = 0};
		int rc = map(body, len, &rs, NULL);
		bool ok = rc == 1 && rs.n == 1 && check_want(&wants[i], &rs.r[0], body, len);
		if (!ok)
			printf("# %s: rc %d, %d records\n", e->d_name, rc, rs.n);
		recs_free(&rs);
		free(body);
		if (!ok) {
			closedir(d);
			test_cur_failed = 1;
			return;
		}
	}
	closedir(d);
	ASSERT_EQ(files, NWANTS);
	for (size_t i = 0; i < NWANTS; i++)
		ASSERT(seen[i]);
}

/* Every fixture, and columns repaired or built from parts, carry exact lengths (emit()). */
static void test_lengths(void)
{
	records_seen = inexact_lengths = 0;
	DIR *d = opendir(FIXTURES);
	ASSERT(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t nl = strlen(e->d_name);
		if (nl < 6 || strcmp(e->d_name + nl - 5, ".json") != 0)
			continue;
		size_t len;
		char *body = fixture(e->d_name, &len);
		struct recs rs = {.n = 0};
		if (body)
			map(body, len, &rs, NULL);
		recs_free(&rs);
		free(body);
	}
	closedir(d);
	ASSERT_EQ((size_t)records_seen, NWANTS);
	const char repair[] = "{\"cmd\":\"SUPER_CHAT_MESSAGE\",\"data\":{\"id\":1,\"uid\":2,"
	                      "\"message\":\"a\xff\xfe z\",\"user_info\":{\"uname\":\"n\\u0000m\","
	                      "\"user_level\":3}}}";
	struct recs rs = {.n = 0};
	ASSERT_EQ(map(repair, sizeof(repair) - 1, &rs, NULL), 1);
	recs_free(&rs);
	ASSERT_EQ(map_str("{\"cmd\":\"USER_TOAST_MSG\",\"data\":{\"payflow_id\":\"p\\u0000q\"}}",
	                  &rs, NULL),
	          1);
	recs_free(&rs);
	ASSERT_EQ((size_t)records_seen, NWANTS + 2);
	ASSERT_EQ(inexact_lengths, 0);
}

static json_t *decoded_of(const struct rec_copy *r)
{
	json_error_t err;
	return r->decoded ? json_loadb(r->decoded, r->decoded_len, 0, &err) : NULL;
}

static int64_t jint_at(json_t *o, const char *path)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "%s", path);
	json_t *v = o;
	for (char *k = strtok(buf, "."); k; k = strtok(NULL, "."))
		v = json_object_get(v, k);
	return json_is_integer(v) ? json_integer_value(v) : -424242;
}

static const char *jstr_at(json_t *o, const char *path)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "%s", path);
	json_t *v = o;
	for (char *k = strtok(buf, "."); k; k = strtok(NULL, "."))
		v = json_object_get(v, k);
	return json_is_string(v) ? json_string_value(v) : "(missing)";
}

/* protocol §5.4: the INTERACT_WORD_V2 sample decodes to uid 439367700, uname StarSea246,
 * msg_type 1, room 544853, trigger_time 1751716523239264129. */
static void test_interact_word_v2(void)
{
	size_t len;
	char *body = fixture("INTERACT_WORD_V2.json", &len);
	ASSERT(body);
	struct recs rs = {.n = 0};
	ASSERT_EQ(map(body, len, &rs, NULL), 1);
	free(body);
	json_t *d = decoded_of(&rs.r[0]);
	ASSERT(json_is_object(d));
	ASSERT_EQ(jint_at(d, "uid"), 439367700);
	ASSERT_STR_EQ(jstr_at(d, "uname"), "StarSea246");
	ASSERT_EQ(jint_at(d, "msg_type"), 1);
	ASSERT_EQ(jint_at(d, "room_id"), 544853);
	ASSERT_EQ(jint_at(d, "trigger_time"), 1751716523239264129);
	ASSERT_EQ(jint_at(d, "timestamp"), 1751716524);
	ASSERT_EQ(jint_at(d, "score"), 1752007728340);
	ASSERT_EQ(jint_at(d, "uinfo.uid"), 439367700);
	ASSERT_STR_EQ(jstr_at(d, "uinfo.base.uname"), "StarSea246");
	ASSERT(strstr(jstr_at(d, "uinfo.base.face"), "https://i0.hdslb.com/bfs/face/") ==
	       jstr_at(d, "uinfo.base.face"));
	json_decref(d);
	recs_free(&rs);
}

static void test_send_gift_v2(void)
{
	size_t len;
	char *body = fixture("SEND_GIFT_V2.json", &len);
	ASSERT(body);
	struct recs rs = {.n = 0};
	ASSERT_EQ(map(body, len, &rs, NULL), 1);
	free(body);
	json_t *d = decoded_of(&rs.r[0]);
	ASSERT(json_is_object(d));
	ASSERT_EQ(jint_at(d, "uid"), 0);
	ASSERT_STR_EQ(jstr_at(d, "uname"), "想***");
	ASSERT_STR_EQ(jstr_at(d, "face"), "https://i0.hdslb.com/bfs/face/member/noface.jpg");
	ASSERT_EQ(jint_at(d, "guard_level"), 3);
	ASSERT_EQ(jint_at(d, "medal_info.target_id"), 1000001);
	ASSERT_EQ(jint_at(d, "medal_info.level"), 29);
	ASSERT_STR_EQ(jstr_at(d, "medal_info.name"), "獭獭栞");
	ASSERT(json_is_true(json_object_get(d, "switch")));
	ASSERT_EQ(jint_at(d, "index"), 0);
	ASSERT_EQ(jint_at(d, "items"), 1);
	ASSERT_EQ(jint_at(d, "gift_id"), 31039);
	ASSERT_STR_EQ(jstr_at(d, "gift_name"), "牛哇牛哇");
	ASSERT_EQ(jint_at(d, "num"), 1);
	ASSERT_EQ(jint_at(d, "gift_type"), 1);
	ASSERT_EQ(jint_at(d, "price"), 100);
	ASSERT_EQ(jint_at(d, "total_coin"), 100);
	ASSERT_STR_EQ(jstr_at(d, "coin_type"), "gold");
	ASSERT_STR_EQ(jstr_at(d, "tid"), "4825830807182606848");
	ASSERT_EQ(jint_at(d, "timestamp"), 1791512155);
	ASSERT_STR_EQ(jstr_at(d, "rnd"), "batch:gift:combo_id:00000000000000000000000000000001:"
	                                 "1000001:31039:1791512155.0730");
	ASSERT_STR_EQ(jstr_at(d, "action"), "投喂");
	ASSERT(!json_object_get(d, "blind_gift"));
	json_decref(d);
	recs_free(&rs);
}

/* ---- synthetic protobuf, written here independently of the reader ---- */

struct enc {
	uint8_t *b;
	size_t n, cap;
};

static void e_raw(struct enc *e, const void *p, size_t n)
{
	if (e->n + n > e->cap) {
		e->cap = (e->n + n) * 2 + 64;
		e->b = realloc(e->b, e->cap);
		if (!e->b)
			abort();
	}
	memcpy(e->b + e->n, p, n);
	e->n += n;
}

static void e_varint(struct enc *e, uint64_t v)
{
	do {
		uint8_t byte = (uint8_t)((v & 0x7f) | (v >> 7 ? 0x80 : 0));
		e_raw(e, &byte, 1);
		v >>= 7;
	} while (v);
}

static void e_int(struct enc *e, uint32_t num, uint64_t v)
{
	e_varint(e, (uint64_t)num << 3);
	e_varint(e, v);
}

static void e_bytes(struct enc *e, uint32_t num, const void *p, size_t n)
{
	e_varint(e, (uint64_t)num << 3 | 2);
	e_varint(e, n);
	e_raw(e, p, n);
}

static void e_str(struct enc *e, uint32_t num, const char *s)
{
	e_bytes(e, num, s, strlen(s));
}

/* {"cmd":cmd,<extra>"data":{"pb":"<base64 of pb>"}} */
static char *pb_body(const char *cmd, const char *extra, const struct enc *pb)
{
	size_t need = 0;
	mbedtls_base64_encode(NULL, 0, &need, pb->b, pb->n);
	char *b64 = malloc(need + 1);
	if (!b64)
		abort();
	size_t got = 0;
	mbedtls_base64_encode((unsigned char *)b64, need + 1, &got, pb->b, pb->n);
	b64[got] = 0;
	size_t n = strlen(cmd) + strlen(extra) + got + 64;
	char *body = malloc(n);
	if (!body)
		abort();
	snprintf(body, n, "{\"cmd\":\"%s\",%s\"data\":{\"pb\":\"%s\"}}", cmd, extra, b64);
	free(b64);
	return body;
}

static void gift_item(struct enc *e, const char *tid, int64_t gift_id, const char *name)
{
	struct enc it = {0};
	e_int(&it, 1, (uint64_t)gift_id);
	e_str(&it, 2, name);
	e_int(&it, 3, 2);
	e_int(&it, 5, 1000);
	e_int(&it, 7, 2000);
	e_str(&it, 8, "gold");
	e_str(&it, 9, tid);
	uint8_t fixed[] = {0x85, 0x01, 0, 0, 0x80, 0x3f}; /* field 16, fixed32 1.0f: skipped */
	e_raw(&it, fixed, sizeof(fixed));
	e_str(&it, 18, "投喂");
	e_bytes(e, 10, it.b, it.n);
	free(it.b);
}

/* A blind box of three gifts from a logged-in view: one record each, same data, keys by tid
 * and index; an empty tid falls back to msg_id (with the index); blind_gift decoded. */
static void test_send_gift_v2_list(void)
{
	struct enc pb = {0}, blind = {0};
	gift_item(&pb, "111", 1, "a");
	e_int(&pb, 1, 12345); /* the sender may come after the list */
	e_str(&pb, 2, "sender");
	gift_item(&pb, "", 2, "b");
	e_str(&blind, 3, "心动盲盒");
	e_int(&blind, 6, 15000);
	e_bytes(&pb, 9, blind.b, blind.n);
	gift_item(&pb, "333", 3, "c");
	e_int(&pb, 11, 1);
	char *body = pb_body("SEND_GIFT_V2", "\"msg_id\":\"9:1000:1000\",", &pb);
	struct recs rs = {.n = 0};
	ASSERT_EQ(map_str(body, &rs, NULL), 3);
	const char *cids[] = {"SEND_GIFT_V2:111:0", "SEND_GIFT_V2:msg:9:1000:1000:1",
	                      "SEND_GIFT_V2:333:2"};
	for (int i = 0; i < 3; i++) {
		struct rec_copy *r = &rs.r[i];
		ASSERT_STR_EQ(r->type, "SEND_GIFT_V2");
		ASSERT(r->has_uid);
		ASSERT_EQ(r->uid, 12345);
		ASSERT_STR_EQ(r->nick, "sender");
		ASSERT_STR_EQ(r->cid, cids[i]);
		ASSERT_STR_EQ(r->data, body);
		json_t *d = decoded_of(r);
		ASSERT(d);
		ASSERT_EQ(jint_at(d, "index"), i);
		ASSERT_EQ(jint_at(d, "items"), 3);
		ASSERT_EQ(jint_at(d, "gift_id"), i + 1);
		ASSERT_EQ(jint_at(d, "num"), 2);
		ASSERT_EQ(jint_at(d, "total_coin"), 2000);
		ASSERT_STR_EQ(jstr_at(d, "blind_gift.original_gift_name"), "心动盲盒");
		ASSERT_EQ(jint_at(d, "blind_gift.original_gift_price"), 15000);
		ASSERT(json_is_true(json_object_get(d, "switch")));
		json_decref(d);
	}
	recs_free(&rs);
	free(body);
	/* Past BILI_CMD_MAX_GIFTS gifts, the rest stays in data only; "items" tells. */
	struct enc many = {0};
	for (int i = 0; i < BILI_CMD_MAX_GIFTS + 8; i++)
		gift_item(&many, "t", i, "x");
	body = pb_body("SEND_GIFT_V2", "", &many);
	ASSERT_EQ(map_str(body, &rs, NULL), BILI_CMD_MAX_GIFTS);
	json_t *d = decoded_of(&rs.r[BILI_CMD_MAX_GIFTS - 1]);
	ASSERT_EQ(jint_at(d, "items"), BILI_CMD_MAX_GIFTS + 8);
	ASSERT_EQ(jint_at(d, "index"), BILI_CMD_MAX_GIFTS - 1);
	json_decref(d);
	recs_free(&rs);
	free(body);
	/* No gift list: the sender alone, items 0. */
	struct enc none = {0};
	e_str(&none, 2, "x***");
	body = pb_body("SEND_GIFT_V2", "", &none);
	ASSERT_EQ(map_str(body, &rs, NULL), 1);
	d = decoded_of(&rs.r[0]);
	ASSERT_EQ(jint_at(d, "items"), 0);
	ASSERT(!json_object_get(d, "index"));
	ASSERT_STR_EQ(rs.r[0].nick, "x***");
	ASSERT(!rs.r[0].cid);
	json_decref(d);
	recs_free(&rs);
	free(body);
	free(pb.b);
	free(blind.b);
	free(many.b);
	free(none.b);
}

/* A payload that is missing, not base64, empty or not protobuf: the raw message once,
 * nothing decoded, no typed column; a msg_id still keys it. */
static void test_pb_undecodable(void)
{
	struct enc bad = {0};
	e_raw(&bad,
	      "\x0a\x05"
	      "ab",
	      4); /* a length past the end */
	struct enc trunc_item = {0};
	e_bytes(&trunc_item, 10, "\x08", 1); /* an item whose varint is cut */
	struct enc grp = {0};
	e_raw(&grp, "\x0b", 1);
	char *bodies[] = {
	    strdup("{\"cmd\":\"SEND_GIFT_V2\",\"data\":{\"dmscore\":1}}"),
	    strdup("{\"cmd\":\"SEND_GIFT_V2\",\"data\":{\"pb\":\"!!!!\"}}"),
	    strdup("{\"cmd\":\"INTERACT_WORD_V2\",\"data\":{\"pb\":\"\"}}"),
	    strdup("{\"cmd\":\"INTERACT_WORD_V2\",\"data\":{\"pb\":5}}"),
	    pb_body("SEND_GIFT_V2", "", &bad),
	    pb_body("SEND_GIFT_V2", "", &trunc_item),
	    pb_body("INTERACT_WORD_V2", "\"msg_id\":\"m1\",", &bad),
	    pb_body("INTERACT_WORD_V2", "", &grp),
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct recs rs = {.n = 0};
		int rc = map_str(bodies[i], &rs, NULL);
		if (rc != 1)
			printf("# body %zu: %s\n", i, bodies[i]);
		ASSERT_EQ(rc, 1);
		struct rec_copy *r = &rs.r[0];
		ASSERT(!r->decoded && !r->has_uid && !r->nick && !r->text && !r->has_level);
		ASSERT_STR_EQ(r->data, bodies[i]);
		if (i == 6)
			ASSERT_STR_EQ(r->cid, "INTERACT_WORD_V2:msg:m1");
		else
			ASSERT(!r->cid);
		recs_free(&rs);
		free(bodies[i]);
	}
	free(bad.b);
	free(trunc_item.b);
	free(grp.b);
}

/* INTERACT_WORD_V2 with the name only in uinfo, strings that are not UTF-8, and no
 * trigger_time (no key). */
static void test_interact_word_v2_shapes(void)
{
	struct enc pb = {0}, uinfo = {0}, base = {0}, wealth = {0};
	e_int(&pb, 1, 7);
	e_str(&base, 1, "na\xffme");
	e_str(&base, 2, "face");
	e_int(&wealth, 1, 30);
	e_int(&uinfo, 1, 7);
	e_bytes(&uinfo, 2, base.b, base.n);
	e_bytes(&uinfo, 4, wealth.b, wealth.n);
	e_bytes(&pb, 22, uinfo.b, uinfo.n);
	char *body = pb_body("INTERACT_WORD_V2", "", &pb);
	struct recs rs = {.n = 0};
	ASSERT_EQ(map_str(body, &rs, NULL), 1);
	ASSERT_STR_EQ(rs.r[0].nick, "na\xef\xbf\xbdme");
	ASSERT_EQ(rs.r[0].uid, 7);
	ASSERT(!rs.r[0].cid);
	json_t *d = decoded_of(&rs.r[0]);
	ASSERT(d);
	ASSERT_STR_EQ(jstr_at(d, "uname"), "");
	ASSERT_STR_EQ(jstr_at(d, "uinfo.base.uname"), "na\xef\xbf\xbdme");
	ASSERT_EQ(jint_at(d, "uinfo.wealth.level"), 30);
	json_decref(d);
	recs_free(&rs);
	free(body);
	free(pb.b);
	free(uinfo.b);
	free(base.b);
	free(wealth.b);
}

static void test_suffix(void)
{
	static const struct {
		const char *cmd, *type;
	} cases[] = {
	    {"DANMU_MSG:4:0:2:2:2:0", "DANMU_MSG"},
	    {"X:", "X"},
	    {":x", ""},
	    {"", ""},
	    {"A:B:C", "A"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[128];
		snprintf(body, sizeof(body), "{\"cmd\":\"%s\",\"msg_id\":\"7\"}", cases[i].cmd);
		struct recs rs = {.n = 0};
		ASSERT_EQ(map_str(body, &rs, NULL), 1);
		ASSERT_STR_EQ(rs.r[0].type, cases[i].type);
		char cid[64];
		snprintf(cid, sizeof(cid), "%s:msg:7", cases[i].type);
		ASSERT_STR_EQ(rs.r[0].cid, cid);
		recs_free(&rs);
	}
}

/* A super chat and its Japanese copy share data.id; both are kept under different keys. */
static void test_sc_and_jpn(void)
{
	size_t len;
	char *sc = fixture("SUPER_CHAT_MESSAGE.json", &len);
	ASSERT(sc);
	char *at = strstr(sc, "\"SUPER_CHAT_MESSAGE\"");
	ASSERT(at);
	size_t n = len + 8;
	char *jpn = malloc(n);
	ASSERT(jpn);
	snprintf(jpn, n, "%.*s\"SUPER_CHAT_MESSAGE_JPN\"%s", (int)(at - sc), sc, at + 20);
	/* The Japanese text, when there is one. */
	char *m = strstr(jpn, "\"message_trans\": \"\"");
	ASSERT(m);
	memcpy(m, "\"message_jpn\": \"x\"  ", 19);
	struct recs a = {.n = 0}, b = {.n = 0};
	ASSERT_EQ(map_str(sc, &a, NULL), 1);
	ASSERT_EQ(map_str(jpn, &b, NULL), 1);
	ASSERT_STR_EQ(a.r[0].cid, "SUPER_CHAT_MESSAGE:4898587");
	ASSERT_STR_EQ(b.r[0].cid, "SUPER_CHAT_MESSAGE_JPN:4898587");
	ASSERT_STR_EQ(b.r[0].type, "SUPER_CHAT_MESSAGE_JPN");
	ASSERT_STR_EQ(a.r[0].text, TEXT);
	ASSERT_STR_EQ(b.r[0].text, "x");
	recs_free(&a);
	recs_free(&b);
	free(sc);
	free(jpn);
}

static bool ack_of(const char *body, const char **id, const char **cmd, int64_t *t, char *ids,
                   char *cmds)
{
	struct bili_cmd c;
	bili_cmd_init(&c);
	const char *why;
	bool ok = bili_cmd_parse(&c, (const uint8_t *)body, strlen(body), &why) == 0 &&
	          bili_cmd_ack(&c, id, cmd, t);
	if (ok) {
		snprintf(ids, 64, "%s", *id);
		snprintf(cmds, 64, "%s", *cmd);
	}
	bili_cmd_finish(&c);
	return ok;
}

/* protocol §4.4: an ACK only for p_is_ack true, non-empty msg_id and cmd, integer
 * p_msg_type. The 2026 shape has no fixture: built here from the SC fixture's fields. */
static void test_ack(void)
{
	const char *id, *cmd;
	int64_t t = 0;
	char ids[64], cmds[64];
	ASSERT(ack_of("{\"cmd\":\"SUPER_CHAT_MESSAGE\",\"data\":{\"id\":4898587},"
	              "\"msg_id\":\"214386819788254208:1000:1000\",\"p_is_ack\":true,"
	              "\"p_msg_type\":1,\"send_time\":1759200000000}",
	              &id, &cmd, &t, ids, cmds));
	ASSERT_STR_EQ(ids, "214386819788254208:1000:1000");
	ASSERT_STR_EQ(cmds, "SUPER_CHAT_MESSAGE");
	ASSERT_EQ(t, 1);
	/* The cmd is answered as sent, suffix and all. */
	ASSERT(ack_of("{\"cmd\":\"DANMU_MSG:4:0\",\"msg_id\":\"a\",\"p_is_ack\":true,"
	              "\"p_msg_type\":2}",
	              &id, &cmd, &t, ids, cmds));
	ASSERT_STR_EQ(cmds, "DANMU_MSG:4:0");
	static const char *const no[] = {
	    "{\"cmd\":\"X\",\"msg_id\":\"a\",\"p_is_ack\":false,\"p_msg_type\":1}",
	    "{\"cmd\":\"X\",\"msg_id\":\"a\",\"p_is_ack\":1,\"p_msg_type\":1}",
	    "{\"cmd\":\"X\",\"msg_id\":\"\",\"p_is_ack\":true,\"p_msg_type\":1}",
	    "{\"cmd\":\"X\",\"msg_id\":7,\"p_is_ack\":true,\"p_msg_type\":1}",
	    "{\"cmd\":\"X\",\"p_is_ack\":true,\"p_msg_type\":1}",
	    "{\"cmd\":\"\",\"msg_id\":\"a\",\"p_is_ack\":true,\"p_msg_type\":1}",
	    "{\"cmd\":\"X\",\"msg_id\":\"a\",\"p_is_ack\":true,\"p_msg_type\":\"1\"}",
	    "{\"cmd\":\"X\",\"msg_id\":\"a\",\"p_is_ack\":true,\"p_msg_type\":1.5}",
	    "{\"cmd\":\"X\",\"msg_id\":\"a\",\"p_is_ack\":true}",
	    "{\"cmd\":\"X\",\"msg_id\":\"a\\u0000b\",\"p_is_ack\":true,\"p_msg_type\":1}",
	};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		ASSERT(!ack_of(no[i], &id, &cmd, &t, ids, cmds));
}

/* A key from the top-level msg_id when the command has none of its own; its own wins. */
static void test_msg_id_keys(void)
{
	struct recs rs = {.n = 0};
	ASSERT_EQ(map_str("{\"cmd\":\"PREPARING\",\"roomid\":\"1\",\"msg_id\":\"26964930181741056:"
	                  "1000:1000\",\"p_is_ack\":true,\"p_msg_type\":1}",
	                  &rs, NULL),
	          1);
	ASSERT_STR_EQ(rs.r[0].cid, "PREPARING:msg:26964930181741056:1000:1000");
	recs_free(&rs);
	ASSERT_EQ(
	    map_str("{\"cmd\":\"SEND_GIFT\",\"msg_id\":\"m\",\"data\":{\"tid\":\"t\"}}", &rs, NULL),
	    1);
	ASSERT_STR_EQ(rs.r[0].cid, "SEND_GIFT:t");
	recs_free(&rs);
	/* No tid: rnd; an empty tid counts as none. */
	ASSERT_EQ(map_str("{\"cmd\":\"SEND_GIFT\",\"data\":{\"tid\":\"\",\"rnd\":123}}", &rs, NULL),
	          1);
	ASSERT_STR_EQ(rs.r[0].cid, "SEND_GIFT:123");
	recs_free(&rs);
	/* A DANMU_MSG without id_str but with msg_id. */
	ASSERT_EQ(
	    map_str("{\"cmd\":\"DANMU_MSG\",\"msg_id\":\"m\",\"info\":[[0,1,25,0,5,0,0,\"h\"],"
	            "\"t\"]}",
	            &rs, NULL),
	    1);
	ASSERT_STR_EQ(rs.r[0].cid, "DANMU_MSG:msg:m");
	recs_free(&rs);
	/* A GUARD_BUY missing one part has no key; a LIVE without live_time says 0. */
	ASSERT_EQ(map_str("{\"cmd\":\"GUARD_BUY\",\"data\":{\"uid\":1,\"start_time\":2,"
	                  "\"guard_level\":3}}",
	                  &rs, NULL),
	          1);
	ASSERT(!rs.r[0].cid);
	recs_free(&rs);
	ASSERT_EQ(map_str("{\"cmd\":\"LIVE\",\"live_key\":\"k\",\"roomid\":1}", &rs, NULL), 1);
	ASSERT_STR_EQ(rs.r[0].cid, "LIVE:k:0");
	recs_free(&rs);
}

/* DANMU_MSG read defensively: id_str from the JSON inside extra; short, null and
 * wrongly-typed entries leave columns out; the 2021 shape (17 elements, no info[0][15]). */
static void test_danmu_shapes(void)
{
	struct recs rs = {.n = 0};
	ASSERT_EQ(
	    map_str("{\"cmd\":\"DANMU_MSG\",\"info\":[[0,1,25,0,1662398325906,0,0,\"h\",0,0,0,"
	            "\"\",0,\"{}\",\"{}\",{\"extra\":\"{\\\"id_str\\\":\\\"757c46e2\\\"}\"}],"
	            "\"hi\",[0,\"观***\"],[],[12]]}",
	            &rs, NULL),
	    1);
	struct rec_copy *r = &rs.r[0];
	ASSERT_STR_EQ(r->cid, "DANMU_MSG:757c46e2");
	ASSERT(r->has_uid);
	ASSERT_EQ(r->uid, 0); /* a guest's view of the sender */
	ASSERT_STR_EQ(r->nick, "观***");
	ASSERT(r->has_level);
	ASSERT_EQ(r->level, 12);
	recs_free(&rs);
	static const char *const odd[] = {
	    "{\"cmd\":\"DANMU_MSG\"}",
	    "{\"cmd\":\"DANMU_MSG\",\"info\":null}",
	    "{\"cmd\":\"DANMU_MSG\",\"info\":[]}",
	    "{\"cmd\":\"DANMU_MSG\",\"info\":{\"0\":1}}",
	    "{\"cmd\":\"DANMU_MSG\",\"info\":[null,null,null,null,null]}",
	    "{\"cmd\":\"DANMU_MSG\",\"info\":[1,2,3,4,5]}",
	    "{\"cmd\":\"DANMU_MSG\",\"info\":[[],7,[\"x\",5],[],[\"1\"]]}",
	    "{\"cmd\":\"DANMU_MSG\",\"info\":[[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,{\"extra\":5}]]}",
	    "{\"cmd\":\"DANMU_MSG\",\"info\":[[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,{\"extra\":\"[\"}]]}",
	};
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		ASSERT_EQ(map_str(odd[i], &rs, NULL), 1);
		r = &rs.r[0];
		ASSERT_STR_EQ(r->type, "DANMU_MSG");
		ASSERT(!r->nick && !r->text && !r->cid && !r->has_uid);
		recs_free(&rs);
	}
	/* A level given as a decimal string is read; the uid as a string as well. */
	ASSERT_EQ(map_str("{\"cmd\":\"DANMU_MSG\",\"info\":[[],\"t\",[\"15\",\"n\"],[],[\"3\"]]}",
	                  &rs, NULL),
	          1);
	ASSERT_EQ(rs.r[0].uid, 15);
	ASSERT_EQ(rs.r[0].level, 3);
	ASSERT(!rs.r[0].cid); /* no send time */
	recs_free(&rs);
	/* No sender hash: that part is empty. */
	ASSERT_EQ(map_str("{\"cmd\":\"DANMU_MSG\",\"info\":[[0,1,25,0,99],\"t\"]}", &rs, NULL), 1);
	char want[64];
	char h[17];
	uint64_t fnv = 14695981039346656037ull;
	fnv = (fnv ^ 't') * 1099511628211ull;
	snprintf(h, sizeof(h), "%016" PRIx64, fnv);
	snprintf(want, sizeof(want), "DANMU_MSG:99::%s", h);
	ASSERT_STR_EQ(rs.r[0].cid, want);
	recs_free(&rs);
}

static void test_skipped(void)
{
	static const struct {
		const char *body;
		size_t len;
		const char *why;
	} cases[] = {
	    {"", 0, "command is not JSON"},
	    {"{\"cmd\":\"X\"", 10, "command is not JSON"},
	    {"{\"cmd\":\"X\"}x", 12, "command is not JSON"},
	    {"{\"cmd\":\"X\"}\0", 12, "command is not JSON"},
	    {"{\"cmd\":\"X\",\"a\":\"\x01\"}", 19, "command is not JSON"},
	    {"[1]", 3, "command is not a JSON object"},
	    {"\"cmd\"", 5, "command is not a JSON object"},
	    {"{}", 2, "command without a string cmd"},
	    {"{\"cmd\":5}", 9, "command without a string cmd"},
	    {"{\"cmd\":null}", 12, "command without a string cmd"},
	    {"{\"data\":{\"cmd\":\"X\"}}", 20, "command without a string cmd"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct recs rs = {.n = 0};
		const char *why = NULL;
		ASSERT_EQ(map(cases[i].body, cases[i].len, &rs, &why), 1000);
		ASSERT_STR_EQ(why, cases[i].why);
		ASSERT_EQ(rs.n, 0);
	}
	/* Too deep for jansson (its limit is 2048). */
	char *deep = malloc(20000);
	ASSERT(deep);
	size_t n = (size_t)sprintf(deep, "{\"cmd\":\"X\",\"a\":");
	for (int i = 0; i < 5000; i++)
		deep[n++] = '[';
	for (int i = 0; i < 5000; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	struct recs rs = {.n = 0};
	ASSERT_EQ(map(deep, n, &rs, NULL), 1000);
	free(deep);

	/* A memory bound: more values than BILI_CMD_MAX_VALUES is skipped unparsed (jansson
	 * would build ~70 MiB of tree for 1 MiB of "{},"); commas inside strings do not count,
	 * and exactly the bound still parses. */
	size_t cap = 4 * (size_t)BILI_CMD_MAX_VALUES + 64;
	char *wide = malloc(cap);
	ASSERT(wide);
	n = (size_t)sprintf(wide, "{\"cmd\":\"X\",\"a\":[");
	for (int i = 0; i < BILI_CMD_MAX_VALUES - 3; i++) /* with the 3 before and the 1 after */
			n += (size_t)sprintf(wide + n, "%s1", i ? "," : "");
	n += (size_t)sprintf(wide + n, "],\"s\":\",,,[[{{\"}");
	const char *why = NULL;
	ASSERT_EQ(map(wide, n, &rs, &why), 1); /* 65536 values: stored */
	recs_free(&rs);
	memmove(wide + 16, wide + 15, n - 15);
	wide[15] = '[';
	n++;
	ASSERT_EQ(map(wide, n, &rs, &why), 1000); /* one more: skipped */
	ASSERT_STR_EQ(why, "command holds more than 65536 JSON values");
	free(wide);
}

static bool valid_utf8_no_nul(const char *s)
{
	return s && text_utf8_valid_prefix(s, strlen(s)) == strlen(s);
}

/* Bytes that are not UTF-8 are repaired in data and the columns and counted; a \u0000 in a
 * string reaches a column as U+FFFD. */
static void test_repair(void)
{
	const char body[] = "{\"cmd\":\"SUPER_CHAT_MESSAGE\",\"data\":{\"id\":1,\"uid\":2,"
	                    "\"message\":\"a\xff\xfe z\",\"user_info\":{\"uname\":\"n\\u0000m\","
	                    "\"user_level\":3}}}";
	struct recs rs = {.n = 0};
	ASSERT_EQ(map(body, sizeof(body) - 1, &rs, NULL), 1);
	struct rec_copy *r = &rs.r[0];
	ASSERT_EQ(r->replaced_utf8, 2);
	ASSERT_EQ(text_utf8_valid_prefix(r->data, r->data_len), r->data_len);
	ASSERT(strstr(r->data, "a\xef\xbf\xbd\xef\xbf\xbd z"));
	ASSERT_STR_EQ(r->text, "a\xef\xbf\xbd\xef\xbf\xbd z");
	ASSERT_STR_EQ(r->nick, "n\xef\xbf\xbdm");
	ASSERT(valid_utf8_no_nul(r->nick) && valid_utf8_no_nul(r->text));
	ASSERT_EQ(r->uid, 2);
	recs_free(&rs);
	/* A NUL in the cmd: the type keeps it as U+FFFD and matches no known command. */
	ASSERT_EQ(
	    map_str("{\"cmd\":\"SEND_GIFT\\u0000\",\"data\":{\"uid\":1,\"tid\":\"t\"}}", &rs, NULL),
	    1);
	ASSERT_STR_EQ(rs.r[0].type, "SEND_GIFT\xef\xbf\xbd");
	ASSERT(!rs.r[0].cid);
	ASSERT_EQ(rs.r[0].uid, 1);
	recs_free(&rs);
	/* Key parts are repaired too. */
	ASSERT_EQ(map_str("{\"cmd\":\"USER_TOAST_MSG\",\"data\":{\"payflow_id\":\"p\\u0000q\"}}",
	                  &rs, NULL),
	          1);
	ASSERT_STR_EQ(rs.r[0].cid, "USER_TOAST_MSG:p\xef\xbf\xbdq");
	recs_free(&rs);
}

/* Numbers past int64 or double are legal JSON: the message is kept whole, those fields read
 * as missing, nothing else changes (even digits inside strings). */
static void test_big_numbers(void)
{
	const char *body = "{\"cmd\":\"INTERACT_WORD\",\"data\":{\"uid\":123456789012345678901234,"
	                   "\"uname\":\"99999999999999999999999\",\"trigger_time\":-1e999,"
	                   "\"ok\":9223372036854775807,\"x\":[18446744073709551616]}}";
	struct recs rs = {.n = 0};
	ASSERT_EQ(map_str(body, &rs, NULL), 1);
	struct rec_copy *r = &rs.r[0];
	ASSERT_STR_EQ(r->data, body);
	ASSERT(!r->has_uid);
	ASSERT_STR_EQ(r->nick, "99999999999999999999999");
	ASSERT(!r->cid);
	recs_free(&rs);
	/* The biggest int64 is read exactly. */
	ASSERT_EQ(map_str("{\"cmd\":\"ROOM_BLOCK_MSG\",\"data\":{\"uid\":9223372036854775807},"
	                  "\"big\":1e400}",
	                  &rs, NULL),
	          1);
	ASSERT(rs.r[0].has_uid);
	ASSERT_EQ(rs.r[0].uid, INT64_MAX);
	recs_free(&rs);
	/* Still invalid after that: skipped. */
	const char *why = NULL;
	ASSERT_EQ(map_str("{\"cmd\":\"X\",\"a\":123456789012345678901234,}", &rs, &why), 1000);
	ASSERT_STR_EQ(why, "command is not JSON");
}

static void test_other_commands(void)
{
	struct recs rs = {.n = 0};
	/* ROOM_BLOCK_MSG with only the top-level (string) uid. */
	ASSERT_EQ(map_str("{\"cmd\":\"ROOM_BLOCK_MSG\",\"uid\":\"5\",\"uname\":\"u\"}", &rs, NULL),
	          1);
	ASSERT(rs.r[0].has_uid);
	ASSERT_EQ(rs.r[0].uid, 5);
	ASSERT_STR_EQ(rs.r[0].nick, "u");
	recs_free(&rs);
	/* An unknown command with a uid that is not a number: no uid. */
	ASSERT_EQ(map_str("{\"cmd\":\"NEW\",\"data\":{\"uid\":\"x\",\"uname\":5}}", &rs, NULL), 1);
	ASSERT(!rs.r[0].has_uid && !rs.r[0].nick);
	ASSERT_EQ(rs.r[0].uid, 0);
	recs_free(&rs);
	/* A strict decimal: no sign, no spaces. */
	ASSERT_EQ(map_str("{\"cmd\":\"NEW\",\"uid\":\"+5\"}", &rs, NULL), 1);
	ASSERT(!rs.r[0].has_uid);
	recs_free(&rs);
	/* The state snapshots ignore a uid they might carry. */
	ASSERT_EQ(map_str("{\"cmd\":\"WATCHED_CHANGE\",\"data\":{\"uid\":1,\"num\":2}}", &rs, NULL),
	          1);
	ASSERT(!rs.r[0].has_uid);
	recs_free(&rs);
}

/* A callback's error stops delivery and comes back. */
static int refuse(void *user_data, const struct record *rec)
{
	(void)rec;
	int *calls = user_data;
	return ++*calls == 2 ? -EINTR : 0;
}

static void test_callback_error(void)
{
	struct enc pb = {0};
	for (int i = 0; i < 3; i++)
		gift_item(&pb, "t", i, "x");
	char *body = pb_body("SEND_GIFT_V2", "", &pb);
	struct bili_cmd c;
	bili_cmd_init(&c);
	const char *why;
	ASSERT_EQ(bili_cmd_parse(&c, (const uint8_t *)body, strlen(body), &why), 0);
	int calls = 0;
	ASSERT_EQ(bili_cmd_records(&c, 1, 2, 3, refuse, &calls), -EINTR);
	ASSERT_EQ(calls, 2);
	bili_cmd_clear(&c);
	/* The state is reusable after a clear. */
	ASSERT_EQ(bili_cmd_parse(&c, (const uint8_t *)"{\"cmd\":\"A\"}", 11, &why), 0);
	struct recs rs = {.n = 0};
	ASSERT_EQ(bili_cmd_records(&c, 1, 2, 3, collect, &rs), 1);
	ASSERT_STR_EQ(rs.r[0].type, "A");
	recs_free(&rs);
	bili_cmd_finish(&c);
	free(body);
	free(pb.b);
}

/* A big message does not leave big buffers behind. */
static void test_buffers_trimmed(void)
{
	size_t n = 900000;
	char *body = malloc(n + 64);
	ASSERT(body);
	static const char head[] = "{\"cmd\":\"ROOM_CHANGE\",\"data\":{\"title\":\"";
	size_t k = sizeof(head) - 1;
	memcpy(body, head, k);
	memset(body + k, 'x', n);
	k += n;
	k += (size_t)sprintf(body + k, "\xff\"}}");
	struct bili_cmd c;
	bili_cmd_init(&c);
	const char *why;
	ASSERT_EQ(bili_cmd_parse(&c, (const uint8_t *)body, k, &why), 0);
	struct recs rs = {.n = 0};
	ASSERT_EQ(bili_cmd_records(&c, 1, 2, 3, collect, &rs), 1);
	ASSERT_EQ(strlen(rs.r[0].text), n + 3);
	recs_free(&rs);
	bili_cmd_clear(&c);
	ASSERT(!c.root);
	ASSERT_LE(c.repaired.cap, BUF_KEEP);
	ASSERT_LE(c.cols.cap, BUF_KEEP);
	bili_cmd_finish(&c);
	free(body);
}

int main(void)
{
	RUN(test_fixtures);
	RUN(test_interact_word_v2);
	RUN(test_send_gift_v2);
	RUN(test_send_gift_v2_list);
	RUN(test_pb_undecodable);
	RUN(test_interact_word_v2_shapes);
	RUN(test_suffix);
	RUN(test_sc_and_jpn);
	RUN(test_ack);
	RUN(test_msg_id_keys);
	RUN(test_danmu_shapes);
	RUN(test_skipped);
	RUN(test_repair);
	RUN(test_big_numbers);
	RUN(test_other_commands);
	RUN(test_callback_error);
	RUN(test_buffers_trimmed);
	RUN(test_lengths);
	TEST_DONE();
}
