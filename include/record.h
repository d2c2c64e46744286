/*
 * record: one decoded message on its way from a platform module to the store.
 *
 * A record only borrows its strings: they stay valid until the callback that delivered it
 * returns. store_append() copies what it keeps.
 *
 * Every string comes with its length in bytes (without the NUL) so that the store measures
 * nothing. A length of 0 with a non-NULL string means "not given: NUL-terminated, measure it",
 * which costs nothing for "" and keeps hand-built records in tests short; producers on the hot
 * path (douyu.c, bili_cmd.c) give every length.
 */
#ifndef DANMAKUD_RECORD_H
#define DANMAKUD_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct record {
	const char *platform; /* platform name ("douyu", "bilibili"); static, never NULL */
	int64_t room_id;    /* the room this connection records (the platform's real id) */
	int64_t ts;         /* receive time, unix epoch ms */
	int64_t session_id; /* sessions.id of the connection that received it */
	const char *type;   /* NUL-terminated, never NULL ("" when the message had no type) */
	size_t type_len;
	bool has_uid;
	int64_t uid;
	const char *nick; /* NULL when absent */
	size_t nick_len;
	bool has_level;
	int64_t level;
	const char *text; /* chat text for chat messages, else NULL */
	size_t text_len;
	const char *cid;  /* platform's unique message id, NULL when it has none */
	size_t cid_len;
	const char *data; /* JSON object with every field of the message, valid UTF-8 */
	size_t data_len;
	/* JSON object of what the platform decoded from a binary payload inside data (Bilibili
	 * protobuf `data.pb`: SEND_GIFT_V2 and INTERACT_WORD_V2), NULL when none. */
	const char *decoded;
	size_t decoded_len;
	size_t replaced_utf8; /* invalid UTF-8 sequences written as U+FFFD in data */
};

#endif
