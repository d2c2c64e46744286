/*
 * bili_cmd: one Bilibili command (the JSON body of an op-5 packet, bilibili-protocol.md §5)
 * turned into records. Pure: no I/O, no libuv. JSON through jansson, the protobuf payloads
 * through bili_pb.
 *
 * Every record carries the body exactly as received in `data` (repaired only where it was
 * not UTF-8, counted in replaced_utf8) and `type` = cmd up to its first ':'
 * (DANMU_MSG:4:0:2:2:2:0 is DANMU_MSG). The typed columns, by type (d = the object `data`,
 * r = the top level; a column not named is left out):
 *
 * - DANMU_MSG: uid info[2][0], nick info[2][1], level info[4][0], text info[1], cid (1).
 * - SEND_GIFT: uid d.uid, nick d.uname, cid "SEND_GIFT:<d.tid>", else "SEND_GIFT:<d.rnd>".
 * - SEND_GIFT_V2: one record per gift, decoded from data.pb (2).
 * - COMBO_SEND: uid d.uid, nick d.uname,
 *   cid "COMBO_SEND:<d.batch_combo_id>:<d.batch_combo_num>".
 * - SUPER_CHAT_MESSAGE: uid d.uid, nick d.user_info.uname, level d.user_info.user_level,
 *   text d.message, cid "SUPER_CHAT_MESSAGE:<d.id>".
 * - SUPER_CHAT_MESSAGE_JPN: the same, but text d.message_jpn when it is a non-empty string,
 *   and cid "SUPER_CHAT_MESSAGE_JPN:<d.id>".
 * - GUARD_BUY: uid d.uid, nick d.username,
 *   cid "GUARD_BUY:<d.uid>:<d.start_time>:<d.guard_level>:<d.num>".
 * - USER_TOAST_MSG: uid d.uid, nick d.username, text d.toast_msg,
 *   cid "USER_TOAST_MSG:<d.payflow_id>".
 * - INTERACT_WORD: uid d.uid, nick d.uname, cid "INTERACT_WORD:<d.uid>:<d.trigger_time>".
 * - INTERACT_WORD_V2: decoded from data.pb (3).
 * - LIVE: cid "LIVE:<r.live_key>:<1 when r.live_time is there, else 0>" (d.live_key and
 *   d.live_time when the top level lacks them).
 * - ROOM_CHANGE: text d.title.
 * - ROOM_BLOCK_MSG: uid d.uid (else r.uid, a string), nick d.uname (else r.uname).
 * - WARNING, CUT_OFF: text r.msg.
 * - PREPARING, WATCHED_CHANGE, ONLINE_RANK_COUNT, SUPER_CHAT_MESSAGE_DELETE, and the two about
 *   other rooms, STOP_LIVE_ROOM_LIST and NOTICE_MSG (stored all the same): none.
 * - Any other type: uid d.uid (else r.uid), nick d.uname (else r.uname).
 *
 * A cid part must be an integer or a non-empty string, else that key is not made. Whenever
 * a command has no key of its own and the top level has a non-empty string msg_id (the
 * ACK'd messages of 2026), cid is "<type>:msg:<msg_id>". So a key never spans two commands:
 * SUPER_CHAT_MESSAGE and its _JPN copy keep different keys.
 *
 * (1) DANMU_MSG: "DANMU_MSG:<id_str>" with id_str from the JSON string info[0][15].extra;
 *     else the msg_id key; else "DANMU_MSG:<info[0][4]>:<info[0][7]>:<h>", h = 16 hex digits
 *     of the 64-bit FNV-1a of the text's bytes (protocol §6: send time, sender hash, text;
 *     info[0][7] may be missing, then empty). Indexes are read defensively: a short array,
 *     a null or a wrong type just leaves that column out.
 * (2) SEND_GIFT_V2: data.pb is base64 protobuf SendGiftBroadcast. One record per gift_list
 *     item (at most BILI_CMD_MAX_GIFTS; the rest only in data), each with the same data,
 *     uid = field 1 (has_uid; 0 when not sent, as for guests), nick = field 2 when sent,
 *     cid "SEND_GIFT_V2:<tid>:<i>" (i counts from 0) and `decoded` = {"uid","uname",
 *     "face","guard_level", "medal_info":{"target_id","anchor_roomid","level","name"} and
 *     "blind_gift":{"original_gift_name","original_gift_price"} when sent, "switch",
 *     "index", "items" (how many the message holds), "gift_id","gift_name","num",
 *     "gift_type","price","total_coin","coin_type","tid","timestamp","rnd","action"};
 *     fields not sent have protobuf's defaults (0, "", false). With an empty tid the key is
 *     "SEND_GIFT_V2:msg:<msg_id>:<i>" when there is a msg_id. No gift_list: one record with
 *     the sender and "items":0.
 * (3) INTERACT_WORD_V2: data.pb is base64 protobuf; uid = field 1 (has_uid, 0 when not
 *     sent), nick = field 2, else uinfo.base.uname, when sent; cid
 *     "INTERACT_WORD_V2:<uid>:<trigger_time>" (none for a trigger_time of 0: then the msg_id
 *     key); decoded = {"uid","uname","msg_type","room_id","timestamp","score",
 *     "trigger_time","guard_level", "uinfo":{"uid","base":{"uname","face"},
 *     "wealth":{"level"}} when sent}.
 *     When data.pb is missing, empty (pure_live's scrubbed captures), not base64 or not
 *     protobuf (either V2 command), the message is stored once with no typed columns and
 *     decoded NULL; nothing is counted as skipped.
 *
 * A uid is a JSON integer or a decimal string (SUPER_CHAT_MESSAGE_JPN, ROOM_BLOCK_MSG's top
 * level); uid 0 with a masked name ("x***") is a guest's view of a sender and stays uid 0,
 * has_uid true. Strings in nick, text and cid are NUL-free valid UTF-8 (a NUL sent as \u0000
 * becomes U+FFFD). Integers beyond int64 (legal JSON) do not stop a message: they read as
 * missing.
 */
#ifndef DANMAKUD_BILI_CMD_H
#define DANMAKUD_BILI_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "record.h"

/* Records one SEND_GIFT_V2 message may give (blind boxes hold a few gifts; each record
 * carries the whole message again, so a hostile list must not multiply it without bound). */
#define BILI_CMD_MAX_GIFTS 32

struct json_t;

/* Reusable per-connection state; the buffers are trimmed back to BUF_KEEP after each
 * message. */
struct bili_cmd {
	struct json_t *root; /* the parsed body, from bili_cmd_parse to bili_cmd_clear */
	const char *body;    /* the body as stored: the input, or `repaired` */
	size_t body_len;
	size_t replaced;     /* invalid UTF-8 sequences replaced in the body */
	struct buf repaired; /* the body made valid UTF-8, when it was not */
	struct buf parse;    /* the copy jansson reads when an integer was past int64 */
	struct buf pb;       /* data.pb, base64-decoded */
	struct buf type;     /* the record type, NUL-terminated */
	struct buf cols;     /* the column strings of the record being delivered */
	struct buf decoded;  /* its decoded JSON */
};

/* A record, ready for the store; strings are borrowed for the call only. A negative return
 * stops bili_cmd_records, which returns it. */
/* A command with more JSON values than this is skipped unparsed (a memory bound; real ones
 * hold a few hundred). */
#define BILI_CMD_MAX_VALUES 65536

typedef int (*bili_record_cb)(void *user_data, const struct record *rec);

/*
 * Seed jansson's hash function once per process, from getrandom(2) (the clock if that
 * fails), so that jansson does not open /dev/urandom by itself at its first object.
 * It takes effect only before jansson's first object anywhere in the process: call it
 * before any other jansson use. bili_cmd_init calls it.
 */
void bili_json_seed(void);

void bili_cmd_init(struct bili_cmd *c);
void bili_cmd_finish(struct bili_cmd *c);

/*
 * Parse body[0..len) (at most BILI_MAX_PACKET bytes are expected; nothing else bounds it).
 * Returns 0 when it is a JSON object with a string cmd (the message is then held until
 * bili_cmd_clear); 1 when it is unusable, with a static reason in *why (not JSON, not an
 * object, no string cmd): the caller counts it as skipped; or -ENOMEM.
 */
int bili_cmd_parse(struct bili_cmd *c, const uint8_t *body, size_t len, const char **why);

/*
 * Whether the parsed message asks for an ACK (protocol §4.4: top-level p_is_ack true, a
 * non-empty msg_id and cmd without NUL, an integer p_msg_type), and its fields (borrowed
 * until bili_cmd_clear).
 */
bool bili_cmd_ack(const struct bili_cmd *c, const char **msg_id, const char **cmd,
                  int64_t *p_msg_type);

/*
 * Deliver the parsed message's records (platform "bilibili", the given room, receive time
 * and session) to cb, in order. Returns how many were delivered, cb's negative value or
 * -ENOMEM.
 */
int bili_cmd_records(struct bili_cmd *c, int64_t room_id, int64_t ts, int64_t session_id,
                     bili_record_cb cb, void *user_data);

/* Drop the parsed message and give back what a big one made the buffers grow to. */
void bili_cmd_clear(struct bili_cmd *c);

#endif
