/*
 * douyu: Douyu's packet framing, stream reassembly, session packets and the record mapping.
 *
 * Packet: u32le len, u32le len (again), u16le type (689 client->server, 690 server->client),
 * u8 0, u8 0, STT body, NUL. len = 8 + body + 1; a packet occupies len + 4 bytes.
 * Everything here is pure; douyu_platform (platform.h) wraps it for the room state machine.
 */
#ifndef DANMAKUD_DOUYU_H
#define DANMAKUD_DOUYU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "record.h"
#include "stt.h"

#define DOUYU_HDR_LEN 12
#define DOUYU_TYPE_C2S 689
#define DOUYU_TYPE_S2C 690
/* Largest accepted value of the length field (1 MiB); a bigger one is a framing error. */
#define DOUYU_MAX_LEN (1u << 20)

/*
 * Largest JSON douyu_record stores for one message. Text and UTF-8 pass through nearly
 * unchanged, so every packet the framing allows (<= 1 MiB) fits unless it is mostly control
 * characters or invalid bytes, which JSON escapes or replaces at up to 6 bytes per byte.
 */
#define DOUYU_MAX_JSON (2u << 20)
/* A session's buffers above this capacity are released after each feed. */
#define DOUYU_KEEP_BUF BUF_KEEP

/* Append one packet with the given type and body to out. Returns 0, -ENOMEM or -EMSGSIZE. */
int douyu_pack(struct buf *out, uint16_t type, const char *body, size_t len);

/* Client packets. Each appends one complete type-689 packet to out; returns 0 or -ENOMEM. */
int douyu_pack_login(struct buf *out, int64_t room_id);
int douyu_pack_joingroup(struct buf *out, int64_t room_id);
int douyu_pack_heartbeat(struct buf *out);
int douyu_pack_logout(struct buf *out);

/*
 * Reassembles packets from a byte stream cut anywhere (TCP reads, websocket messages).
 * Bytes of an incomplete packet are kept (at most DOUYU_MAX_LEN + 4).
 */
struct douyu_reader {
	struct buf pending;
	uint64_t packets; /* delivered */
	uint64_t skipped; /* well-framed but bad: type not 690, no final NUL, NUL inside body */
	const char *skip_why; /* static text: why the last skipped packet was skipped */
};

/* Called for each good packet; body is NOT NUL-terminated (len excludes the NUL).
 * A negative return stops douyu_reader_feed, which returns that value. */
typedef int (*douyu_packet_cb)(void *user_data, const char *body, size_t len);

void douyu_reader_init(struct douyu_reader *r);
void douyu_reader_finish(struct douyu_reader *r);
/*
 * Feed bytes; cb runs for every complete packet, in order, before this returns.
 * Returns 0; a callback's negative value; -ENOMEM; or -EPROTO when the framing itself is
 * broken (length copies differ, length < 9 or > DOUYU_MAX_LEN): the stream cannot be
 * resynchronised and the connection must be closed.
 */
int douyu_reader_feed(struct douyu_reader *r, const uint8_t *data, size_t len, douyu_packet_cb cb,
		      void *user_data);

/*
 * Map a decoded message to a record for room_id (douyu-protocol.md §5; README "Protocol
 * fidelity"). Fills type and, per type:
 *   chatmsg            uid, nn -> nick, level, txt -> text, cid (when non-empty)
 *   comm_chatmsg       uid, nick, level and text from its nested `chatmsg` map, decoded
 *                      into nested (which may be NULL: then only the top level is used);
 *                      a field the nested map lacks falls back to the top level
 *   anbc, rnewbc       uid, unk -> nick (no level)
 *   spbc               sn -> nick (no uid, no level)
 *   error              uid/nick/level as below, text "error <code>"
 *   any other type     uid, nn -> nick, level when present at the top level; no text
 * uid and level only when strictly decimal int64. data is the JSON of every top-level field
 * (stt_to_json: duplicates as "key#2", invalid UTF-8 replaced and counted in
 * rec->replaced_utf8), written into json, which is cleared first. Every string comes with its
 * exact length (type_len, nick_len, text_len, cid_len, data_len). s must hold no NUL inside a
 * value, as any body the reader delivers. Borrowed pointers point into s, nested and json. Returns 0, -ENOMEM, or -EMSGSIZE when the JSON is longer than
 * DOUYU_MAX_JSON (json is then emptied and rec not filled in).
 */
int douyu_record(const struct stt *s, struct stt *nested, int64_t room_id, struct buf *json,
		 struct record *rec);

/* True when the message belongs to another room (a rid that is set, non-zero and not room_id)
 * and so must not be stored as this room's chat. */
bool douyu_other_room(const struct stt *s, int64_t room_id);

#endif
