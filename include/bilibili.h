/*
 * bilibili: Bilibili live chat packets (bilibili-protocol.md §3): packing client packets and
 * reassembling server packets from a byte stream cut anywhere, with the zlib (ver 2) and
 * brotli (ver 3) batches unpacked into the packets they hold. Pure: no I/O, no libuv.
 *
 * Packet: u32be packet_len (header + body), u16be header_len (16), u16be ver, u32be op,
 * u32be seq, then the body.
 */
#ifndef DANMAKUD_BILIBILI_H
#define DANMAKUD_BILIBILI_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "platform.h"

#define BILI_HDR_LEN 16
/* Largest accepted packet_len; a bigger one is a framing error. One websocket message (our
 * cap: 1 MiB) holds at least one packet, and raw TCP gets the same bound. */
#define BILI_MAX_PACKET (1u << 20)
/* Largest decompressed batch; a batch that would inflate past it is skipped, and no more than
 * this is ever allocated for it (a power of two: the inflate buffer doubles up to it). */
#define BILI_MAX_INFLATED (1u << 20)

enum bili_op {
	BILI_OP_HEARTBEAT = 2,
	BILI_OP_HEARTBEAT_REPLY = 3,
	BILI_OP_MESSAGE = 5,
	BILI_OP_AUTH = 7,
	BILI_OP_AUTH_REPLY = 8,
	BILI_OP_ACK = 24,
};

enum bili_ver {
	BILI_VER_PLAIN = 0,
	BILI_VER_INT = 1,
	BILI_VER_ZLIB = 2,
	BILI_VER_BROTLI = 3,
};

/* Append one client packet (ver 0, seq 1, as the 2026 web client sends) to out.
 * Returns 0, -ENOMEM or -EMSGSIZE. */
int bili_pack(struct buf *out, uint32_t op, const void *body, size_t len);

/* The auth packet (op 7) in the 2026 web client's field order (protocol §4.1). */
struct bili_auth {
	int64_t uid;       /* 0 for a guest */
	int64_t room_id;   /* the real room id */
	int protover;      /* 3 (brotli batches) or 2 (zlib) */
	const char *buvid; /* buvid3 cookie value, "" when none */
	uint32_t queue;    /* queue_uuid, written as 8 lower-case hex digits */
	const char *key;   /* getDanmuInfo token; NULL or "" omits the field */
};
/* Append the auth packet. Returns 0, -ENOMEM or -EMSGSIZE. */
int bili_pack_auth(struct buf *out, const struct bili_auth *a);
/* Append a heartbeat (op 2) with an empty body, so that nothing is echoed (§3.5). */
int bili_pack_heartbeat(struct buf *out);
/* Append the ACK (op 24) for a message that asked for one (§4.4). */
int bili_pack_ack(struct buf *out, const char *msg_id, const char *cmd, int64_t p_msg_type);

/*
 * Reassembles server packets. Compressed op-5 batches are unpacked and each packet inside
 * delivered on its own (one level deep: a compressed packet inside a batch is skipped).
 * Bytes of an incomplete packet are kept (at most BILI_MAX_PACKET); the inflate buffer is
 * released after each feed when it grew past 64 KiB.
 */
struct bili_reader {
	struct buf pending;
	struct buf inflated;
	uint64_t packets;     /* delivered to the callback */
	uint64_t skipped;     /* well-framed but unusable (bad batch, unknown ver, nested batch) */
	const char *skip_why; /* static text: why the last skipped packet was skipped */
};

/* One packet: op as sent, ver as sent (0 for a packet that came out of a batch), body not
 * NUL-terminated. A negative return stops bili_reader_feed, which returns that value. */
typedef int (*bili_packet_cb)(void *user_data, uint32_t op, uint16_t ver, const uint8_t *body,
                              size_t len);

void bili_reader_init(struct bili_reader *r);
void bili_reader_finish(struct bili_reader *r);
/*
 * Feed bytes; cb runs for every packet, in order, before this returns. Returns the number
 * of packets delivered (>= 0); a callback's negative value; -ENOMEM; or -EPROTO when the
 * framing itself is broken (header_len not 16, packet_len < 16 or > BILI_MAX_PACKET): the
 * stream cannot be resynchronised and the connection must be closed.
 */
int bili_reader_feed(struct bili_reader *r, const uint8_t *data, size_t len, bili_packet_cb cb,
                     void *user_data);

/* ---- the platform session (platform.h), built on the pieces above ---- */

/* What a session needs from the prepare step (platform_prepared.params). */
struct bili_params {
	int64_t uid;       /* the logged-in account (nav data.mid), 0 for a guest */
	char buvid[128];   /* buvid3, "" when none */
	char token[1024];  /* getDanmuInfo token, "" when none (fallback host) */
	int protover;      /* 3 brotli (default when 0) or 2 zlib */
};

/*
 * The session functions of bilibili_platform (its prepare step lives in bili_api.c; they live
 * in bili_session.c). params is a struct bili_params (NULL: guest, no token, protover 3).
 * hello: the auth packet, with a new random queue_uuid each time (-EINVAL when buvid or
 * token is not NUL-terminated). feed: op 8 {"code":0} (or empty) calls on_joined once, any
 * other code on_server_error (-101: "token error (auth refused)", else "auth refused"); op 3
 * gives a record of type "popularity", data {"popularity":N}, no typed columns, for the
 * first reply and whenever N changes; op 5 commands become records as bili_cmd.h says, each
 * one's ACK (op 24) appended to out before its records are delivered. Unusable packets are
 * reported through on_skipped once per feed. heartbeat: an empty op 2. goodbye: nothing.
 */
int bili_session_create(int64_t room_id, const void *params, const struct platform_events *ev,
			void *user_data, struct platform_session **out);
void bili_session_destroy(struct platform_session *s);
int bili_hello(struct platform_session *s, struct buf *out);
int bili_feed(struct platform_session *s, int64_t now_ms, int64_t session_id, const uint8_t *data,
	      size_t len, struct buf *out);
int bili_heartbeat(struct platform_session *s, struct buf *out);
int bili_goodbye(struct platform_session *s, struct buf *out);

#endif
