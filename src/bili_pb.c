/*
 * bili_pb: the protocol buffers wire format, read one field at a time (see bili_pb.h). Every
 * read is checked against the end of the range before it happens; lengths are compared with
 * what is left, never added to a pointer first, so a huge length cannot wrap.
 */
#include "bili_pb.h"

#include <errno.h>
#include <string.h>

void bili_pb_init(struct bili_pb *r, const void *data, size_t len)
{
	r->p = data;
	r->end = data ? r->p + len : NULL; /* no arithmetic on a null pointer */
}

int bili_pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
	const uint8_t *q = *p;
	uint64_t v = 0;
	for (unsigned i = 0; i < 10; i++) {
		if (q >= end)
			return -EPROTO;
		uint8_t b = *q++;
		/* The tenth byte holds bit 63 alone: anything more would not fit in 64 bits. */
		if (i == 9 && b > 1)
			return -EPROTO;
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*p = q;
			*out = v;
			return 0;
		}
	}
	return -EPROTO;
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

int bili_pb_next(struct bili_pb *r, struct bili_pb_field *f)
{
	if (r->p >= r->end)
		return 0;
	const uint8_t *q = r->p;
	uint64_t key;
	if (bili_pb_varint(&q, r->end, &key) < 0)
		return -EPROTO;
	uint64_t num = key >> 3;
	if (num == 0 || num > BILI_PB_MAX_FIELD)
		return -EPROTO;
	memset(f, 0, sizeof(*f));
	f->num = (uint32_t)num;
	switch (key & 7) {
	case BILI_PB_VARINT:
		if (bili_pb_varint(&q, r->end, &f->u) < 0)
			return -EPROTO;
		f->wire = BILI_PB_VARINT;
		break;
	case BILI_PB_I64:
	case BILI_PB_I32: {
		unsigned n = (key & 7) == BILI_PB_I64 ? 8 : 4;
		if ((size_t)(r->end - q) < n)
			return -EPROTO;
		f->u = get_le(q, n);
		f->wire = (enum bili_pb_wire)(key & 7);
		q += n;
		break;
	}
	case BILI_PB_LEN: {
		uint64_t len;
		if (bili_pb_varint(&q, r->end, &len) < 0)
			return -EPROTO;
		if (len > (size_t)(r->end - q))
			return -EPROTO;
		f->wire = BILI_PB_LEN;
		f->data = q;
		f->len = (size_t)len;
		q += len;
		break;
	}
	default: /* 3 and 4 (groups, long deprecated), 6 and 7 (undefined) */
		return -EPROTO;
	}
	r->p = q;
	return 1;
}

int bili_pb_check(const void *data, size_t len)
{
	struct bili_pb r;
	struct bili_pb_field f;
	int rc;
	bili_pb_init(&r, data, len);
	while ((rc = bili_pb_next(&r, &f)) > 0)
		;
	return rc;
}
