/*
 * bilibili: packing and reassembly of Bilibili live chat packets (see bilibili.h).
 * Whole packets are parsed straight from the caller's bytes; only an incomplete tail is
 * copied. A compressed batch is inflated into one reusable buffer, bounded by
 * BILI_MAX_INFLATED, and walked like the stream itself, except that a batch must end on a
 * packet boundary.
 */
#include "bilibili.h"

#include <brotli/decode.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>
#include <zlib.h>

#include "text.h"


static inline void put_u32be(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t get_u32be(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint16_t get_u16be(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

int bili_pack(struct buf *out, uint32_t op, const void *body, size_t len)
{
	if (len > BILI_MAX_PACKET - BILI_HDR_LEN)
		return -EMSGSIZE;
	int rc = buf_reserve(out, BILI_HDR_LEN + len);
	if (rc < 0)
		return rc;
	uint8_t *p = buf_head(out) + out->len;
	put_u32be(p, (uint32_t)(BILI_HDR_LEN + len));
	p[4] = 0;
	p[5] = BILI_HDR_LEN;
	p[6] = 0;
	p[7] = BILI_VER_PLAIN;
	put_u32be(p + 8, op);
	put_u32be(p + 12, 1);
	if (len)
		memcpy(p + BILI_HDR_LEN, body, len);
	out->len += BILI_HDR_LEN + len;
	return 0;
}

/* Build a JSON body in scratch, then pack it; the body is never larger than a packet. */
static int pack_json(struct buf *out, uint32_t op, struct buf *body, int rc)
{
	if (rc == 0)
		rc = bili_pack(out, op, buf_head(body), body->len);
	buf_finish(body);
	return rc;
}

int bili_pack_auth(struct buf *out, const struct bili_auth *a)
{
	struct buf b;
	buf_init(&b);
	int rc = buf_printf(
	    &b, "{\"uid\":%" PRId64 ",\"roomid\":%" PRId64 ",\"protover\":%d,\"buvid\":", a->uid,
	    a->room_id, a->protover);
	if (rc == 0)
		rc = text_json_string(&b, a->buvid ? a->buvid : "", a->buvid ? strlen(a->buvid) : 0,
		                      NULL);
	if (rc == 0)
		rc = buf_printf(&b,
		                ",\"support_ack\":true,\"queue_uuid\":\"%08" PRIx32
		                "\",\"scene\":\"room\",\"platform\":\"web\",\"type\":2",
		                a->queue);
	if (rc == 0 && a->key && a->key[0]) {
		rc = buf_append_str(&b, ",\"key\":");
		if (rc == 0)
			rc = text_json_string(&b, a->key, strlen(a->key), NULL);
	}
	if (rc == 0)
		rc = buf_append_str(&b, "}");
	return pack_json(out, BILI_OP_AUTH, &b, rc);
}

int bili_pack_heartbeat(struct buf *out)
{
	return bili_pack(out, BILI_OP_HEARTBEAT, NULL, 0);
}

int bili_pack_ack(struct buf *out, const char *msg_id, const char *cmd, int64_t p_msg_type)
{
	struct buf b;
	buf_init(&b);
	int rc = buf_append_str(&b, "{\"msg_id\":");
	if (rc == 0)
		rc = text_json_string(&b, msg_id, strlen(msg_id), NULL);
	if (rc == 0)
		rc = buf_append_str(&b, ",\"cmd\":");
	if (rc == 0)
		rc = text_json_string(&b, cmd, strlen(cmd), NULL);
	if (rc == 0)
		rc = buf_printf(&b, ",\"p_msg_type\":%" PRId64 "}", p_msg_type);
	return pack_json(out, BILI_OP_ACK, &b, rc);
}

void bili_reader_init(struct bili_reader *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->pending);
	buf_init(&r->inflated);
}

void bili_reader_finish(struct bili_reader *r)
{
	buf_finish(&r->pending);
	buf_finish(&r->inflated);
	bili_reader_init(r);
}

/* Size of the packet whose first avail bytes are at p: 0 when the header is not all there,
 * -EPROTO when it cannot be a packet. */
static long long packet_size(const uint8_t *p, size_t avail)
{
	if (avail < BILI_HDR_LEN)
		return 0;
	uint32_t len = get_u32be(p);
	if (get_u16be(p + 4) != BILI_HDR_LEN || len < BILI_HDR_LEN || len > BILI_MAX_PACKET)
		return -EPROTO;
	return len;
}

static int skip(struct bili_reader *r, const char *why)
{
	r->skipped++;
	r->skip_why = why;
	return 0;
}

/* Room for the decompressor's next output at the end of b, growing it geometrically up to
 * BILI_MAX_INFLATED. The capacity starts at 4 KiB and only ever doubles (each feed ends by
 * freeing a buffer past BUF_KEEP), so it reaches the cap exactly and never passes it: a
 * small body that would inflate further is refused, not allocated. Returns 0, -E2BIG at the cap
 * or -ENOMEM. */
_Static_assert((BILI_MAX_INFLATED & (BILI_MAX_INFLATED - 1)) == 0 && BILI_MAX_INFLATED >= BUF_KEEP,
               "the inflate buffer doubles up to exactly BILI_MAX_INFLATED");
static int out_window(struct buf *b, uint8_t **out, size_t *n)
{
	if (b->len >= BILI_MAX_INFLATED)
		return -E2BIG;
	size_t want = b->len < 4096 ? 4096 : b->len;
	if (want > BILI_MAX_INFLATED - b->len)
		want = BILI_MAX_INFLATED - b->len;
	if (buf_reserve(b, want) < 0)
		return -ENOMEM;
	*out = buf_head(b) + b->len;
	*n = want;
	return 0;
}

/* Inflate a zlib stream into r->inflated. 0, -ENOMEM, -EPROTO (corrupt), -E2BIG (too big). */
static int inflate_zlib(struct bili_reader *r, const uint8_t *in, size_t len)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (inflateInit(&z) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	int rc;
	uint8_t *out;
	size_t want;
	while ((rc = out_window(&r->inflated, &out, &want)) == 0) {
		z.next_out = out;
		z.avail_out = (uInt)want;
		int zr = inflate(&z, Z_NO_FLUSH);
		r->inflated.len += want - z.avail_out;
		if (zr == Z_STREAM_END)
			break;
		if (zr == Z_MEM_ERROR)
			rc = -ENOMEM;
		else if (zr != Z_OK && !(zr == Z_BUF_ERROR && z.avail_out == 0))
			rc = -EPROTO; /* corrupt, or the stream ends before its end */
		if (rc)
			break;
	}
	inflateEnd(&z);
	return rc;
}

/* The same for a brotli stream. */
static int inflate_brotli(struct bili_reader *r, const uint8_t *in, size_t len)
{
	BrotliDecoderState *d = BrotliDecoderCreateInstance(NULL, NULL, NULL);
	if (!d)
		return -ENOMEM;
	const uint8_t *next_in = in;
	size_t avail_in = len;
	int rc;
	uint8_t *out;
	size_t want;
	while ((rc = out_window(&r->inflated, &out, &want)) == 0) {
		size_t avail_out = want;
		BrotliDecoderResult br =
		    BrotliDecoderDecompressStream(d, &avail_in, &next_in, &avail_out, &out, NULL);
		r->inflated.len += want - avail_out;
		if (br == BROTLI_DECODER_RESULT_SUCCESS)
			break;
		if (br != BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT) {
			rc = -EPROTO; /* corrupt, or the input ends before the stream does */
			break;
		}
	}
	BrotliDecoderDestroyInstance(d);
	return rc;
}

static int deliver(struct bili_reader *r, const uint8_t *p, size_t size, bili_packet_cb cb,
                   void *user_data);

/* Walk a decompressed batch: complete packets only, no nested batches. Returns the number
 * of packets delivered or a callback's negative value. */
static int unpack_batch(struct bili_reader *r, bili_packet_cb cb, void *user_data)
{
	const uint8_t *p = buf_head(&r->inflated);
	size_t len = r->inflated.len;
	int n = 0;
	while (len > 0) {
		long long size = packet_size(p, len);
		if (size <= 0 || (size_t)size > len)
			return n + skip(r, "batch does not end on a packet boundary");
		uint16_t ver = get_u16be(p + 6);
		uint32_t op = get_u32be(p + 8);
		if (op == BILI_OP_MESSAGE && (ver == BILI_VER_ZLIB || ver == BILI_VER_BROTLI)) {
			skip(r, "compressed batch inside a batch");
		} else {
			r->packets++;
			int rc =
			    cb(user_data, op, ver, p + BILI_HDR_LEN, (size_t)size - BILI_HDR_LEN);
			if (rc < 0)
				return rc;
			if (n < INT_MAX)
				n++;
		}
		p += size;
		len -= (size_t)size;
	}
	return n;
}

/* One complete, well-framed packet of size bytes: the number of packets it gave the
 * callback (a batch gives several), or a negative error. */
static int deliver(struct bili_reader *r, const uint8_t *p, size_t size, bili_packet_cb cb,
                   void *user_data)
{
	uint16_t ver = get_u16be(p + 6);
	uint32_t op = get_u32be(p + 8);
	const uint8_t *body = p + BILI_HDR_LEN;
	size_t blen = size - BILI_HDR_LEN;
	if (op != BILI_OP_MESSAGE || ver == BILI_VER_PLAIN || ver == BILI_VER_INT) {
		/* ver matters only on op 5: auth and heartbeat replies carry 0 or 1 alike. */
		r->packets++;
		int rc = cb(user_data, op, ver, body, blen);
		return rc < 0 ? rc : 1;
	}
	if (ver != BILI_VER_ZLIB && ver != BILI_VER_BROTLI)
		return skip(r, "unknown body version");
	buf_clear(&r->inflated);
	int rc = ver == BILI_VER_ZLIB ? inflate_zlib(r, body, blen) : inflate_brotli(r, body, blen);
	if (rc == -ENOMEM)
		return rc;
	_Static_assert(BILI_MAX_INFLATED == 1u << 20, "the text below names the cap");
	if (rc == -E2BIG)
		return skip(r, "batch inflates past 1 MiB");
	if (rc < 0)
		return skip(r,
		            ver == BILI_VER_ZLIB ? "corrupt zlib batch" : "corrupt brotli batch");
	return unpack_batch(r, cb, user_data);
}

static int add_count(int n, int more)
{
	return more > INT_MAX - n ? INT_MAX : n + more;
}

int bili_reader_feed(struct bili_reader *r, const uint8_t *data, size_t len, bili_packet_cb cb,
                     void *user_data)
{
	struct buf *pend = &r->pending;
	int n = 0, rc = 0;
	/* First finish the packet left over from the previous call, copying only what it lacks. */
	while (pend->len > 0) {
		long long size = packet_size(buf_head(pend), pend->len);
		if (size < 0) {
			buf_clear(pend);
			rc = (int)size;
			goto out;
		}
		size_t want = size > 0 ? (size_t)size : BILI_HDR_LEN;
		if (pend->len < want) {
			size_t take = want - pend->len < len ? want - pend->len : len;
			rc = buf_append(pend, data, take);
			if (rc < 0)
				goto out;
			data += take;
			len -= take;
			if (pend->len < want)
				goto out;
			if (size == 0)
				continue; /* the header is complete: check it, then take the rest */
		}
		rc = deliver(r, buf_head(pend), pend->len, cb, user_data);
		buf_clear(pend);
		if (rc < 0)
			goto out;
		n = add_count(n, rc);
	}
	/* Fast path: whole packets straight from the input. */
	while (len > 0) {
		long long size = packet_size(data, len);
		if (size < 0) {
			rc = (int)size;
			goto out;
		}
		if (size == 0 || (size_t)size > len)
			break;
		rc = deliver(r, data, (size_t)size, cb, user_data);
		if (rc < 0)
			goto out;
		n = add_count(n, rc);
		data += size;
		len -= (size_t)size;
	}
	rc = len > 0 ? buf_append(pend, data, len) : 0;
out:
	/* Keep no more than a small buffer between feeds (a hostile server sends one huge
	 * batch, then trickles). */
	buf_clear(&r->inflated); /* the batch was delivered */
	(void)buf_trim(&r->inflated, BUF_KEEP);
	(void)buf_trim(pend, BUF_KEEP); /* harmless if it cannot allocate */
	return rc < 0 ? rc : n;
}
