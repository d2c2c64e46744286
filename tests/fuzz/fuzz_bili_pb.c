/*
 * fuzz_bili_pb: libFuzzer target for the protobuf wire reader. The input is read as a
 * message, and every length-delimited field again as a nested message, 8 levels deep, with
 * an explicit stack. Each field must lie inside its parent and the reader must move forward
 * by exactly the field's encoded size; field numbers stay in 1..2^29-1 and wire types in
 * {0, 1, 2, 5}; an error is sticky; bili_pb_check agrees with the walk; and each varint
 * read matches a reference decoder written here. Violations trap.
 */
#include "bili_pb.h"
#include "fuzz.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define DEPTH 8

/* The reference: the plain loop of the protobuf documentation, with its limits. */
static int ref_varint(const uint8_t *p, size_t n, uint64_t *v, size_t *used)
{
	uint64_t x = 0;
	for (size_t i = 0; i < 10 && i < n; i++) {
		if (i == 9 && p[i] > 1)
			return -1;
		x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*v = x;
			*used = i + 1;
			return 0;
		}
	}
	return -1;
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >>= 7)
		n++;
	return n;
}

/* Walk one message; returns the reader's final result. */
static int walk(const uint8_t *p, size_t n, int depth)
{
	if (!p) {
		check(bili_pb_check(NULL, 0) == 0);
		return 0;
	}
	struct bili_pb r;
	struct bili_pb_field f;
	bili_pb_init(&r, p, n);
	const uint8_t *end = p + n;
	int rc;
	while (true) {
		const uint8_t *before = r.p;
		rc = bili_pb_next(&r, &f);
		if (rc <= 0)
			break;
		check(f.num >= 1 && f.num <= BILI_PB_MAX_FIELD);
		check(r.p > before && r.p <= end);
		/* The key, then the value, exactly. */
		uint64_t key;
		size_t kl;
		check(ref_varint(before, (size_t)(end - before), &key, &kl) == 0);
		check((key >> 3) == f.num && (key & 7) == f.wire);
		const uint8_t *val = before + kl;
		switch (f.wire) {
		case BILI_PB_VARINT: {
			uint64_t v;
			size_t vl;
			check(ref_varint(val, (size_t)(end - val), &v, &vl) == 0);
			check(v == f.u && r.p == val + vl);
			break;
		}
		case BILI_PB_I64:
			check(r.p == val + 8);
			break;
		case BILI_PB_I32:
			check(r.p == val + 4 && f.u <= 0xffffffffu);
			break;
		case BILI_PB_LEN: {
			uint64_t len;
			size_t ll;
			check(ref_varint(val, (size_t)(end - val), &len, &ll) == 0 && len == f.len);
			check(f.data == val + ll && f.data + f.len == r.p);
			check(ll >= varint_len(len));
			if (depth < DEPTH)
				(void)walk(f.data, f.len, depth + 1);
			break;
		}
		default:
			check(false);
		}
	}
	check(rc == 0 || rc == -EPROTO);
	if (rc < 0) {
		const uint8_t *at = r.p;
		check(bili_pb_next(&r, &f) == -EPROTO && r.p == at);
	} else {
		check(r.p == end);
	}
	check(bili_pb_check(p, n) == rc);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	(void)walk(size ? data : NULL, size, 0);
	/* A varint at the start, against the reference. */
	if (size > 0) {
		const uint8_t *p = data;
		uint64_t v = 0, w = 0;
		size_t used = 0;
		int a = bili_pb_varint(&p, data + size, &v);
		int b = ref_varint(data, size, &w, &used);
		check((a == 0) == (b == 0));
		if (a == 0)
			check(v == w && p == data + used);
		else
			check(p == data);
	}
	return 0;
}
