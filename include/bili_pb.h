/*
 * bili_pb: a minimal reader of the protocol buffers wire format, for the base64 `data.pb`
 * payloads of SEND_GIFT_V2 and INTERACT_WORD_V2 (bilibili-protocol.md §5.2, §5.4). Pure, no
 * allocation: fields come one at a time from a bounded byte range, and a nested message is
 * read by handing its bytes to another reader, so nothing recurses here.
 *
 * Accepted wire types: varint (0), 64-bit (1), length-delimited (2) and 32-bit (5). Groups
 * (3, 4) and the undefined types 6 and 7 are malformed input, as are a field number 0 or
 * above 2^29 - 1, a varint longer than 10 bytes or past 64 bits, and a length or a fixed
 * value that runs past the end.
 */
#ifndef DANMAKUD_BILI_PB_H
#define DANMAKUD_BILI_PB_H

#include <stddef.h>
#include <stdint.h>

enum bili_pb_wire {
	BILI_PB_VARINT = 0,
	BILI_PB_I64 = 1,
	BILI_PB_LEN = 2,
	BILI_PB_I32 = 5,
};

#define BILI_PB_MAX_FIELD ((1u << 29) - 1)

struct bili_pb {
	const uint8_t *p, *end;
};

struct bili_pb_field {
	uint32_t num; /* 1 .. BILI_PB_MAX_FIELD */
	enum bili_pb_wire wire;
	uint64_t u;          /* VARINT: the value; I64 / I32: the little-endian value */
	const uint8_t *data; /* LEN: the bytes, borrowed from the reader's input */
	size_t len;
};

/* Read data[0..len) (borrowed: it must outlive the reader). data may be NULL when len is 0. */
void bili_pb_init(struct bili_pb *r, const void *data, size_t len);
/*
 * The next field: 1 with *f filled, 0 at the end of the input, or -EPROTO when the input is
 * malformed (the reader then stays at the bad field, so a further call fails again).
 */
int bili_pb_next(struct bili_pb *r, struct bili_pb_field *f);
/* Walk a whole message: 0 when every field of data[0..len) is well formed, else -EPROTO.
 * Nested messages are not looked into. */
int bili_pb_check(const void *data, size_t len);
/*
 * One varint at *p, which must be below end: at most 10 bytes, the tenth at most 1 (no bit
 * past 64). Returns 0 and advances *p, or -EPROTO (*p unchanged).
 */
int bili_pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *out);

#endif
