/*
 * The protobuf wire reader: varints at and past their limits, every wire type, bounds on
 * lengths and fixed values, field numbers, and every prefix of a valid message read from an
 * allocation of exactly its size (ASan sees any read past the end).
 */
#include <errno.h>
#include <stdbool.h>

#include "bili_pb.h"
#include "test.h"

/* An encoder written for the test, independent of the reader. */
struct enc {
	uint8_t b[512];
	size_t n;
};

static void e_varint(struct enc *e, uint64_t v)
{
	do {
		uint8_t byte = v & 0x7f;
		v >>= 7;
		e->b[e->n++] = byte | (v ? 0x80 : 0);
	} while (v);
}

static void e_key(struct enc *e, uint32_t num, unsigned wire)
{
	e_varint(e, (uint64_t)num << 3 | wire);
}

static void e_bytes(struct enc *e, uint32_t num, const void *p, size_t n)
{
	e_key(e, num, 2);
	e_varint(e, n);
	memcpy(e->b + e->n, p, n);
	e->n += n;
}

static int varint_of(const uint8_t *b, size_t n, uint64_t *v, size_t *used)
{
	const uint8_t *p = b;
	int rc = bili_pb_varint(&p, b + n, v);
	*used = (size_t)(p - b);
	return rc;
}

static void test_varint(void)
{
	static const struct {
		uint8_t b[12];
		size_t n;
		int rc;
		uint64_t v;
	} cases[] = {
	    {{0}, 1, 0, 0},
	    {{1}, 1, 0, 1},
	    {{0x7f}, 1, 0, 127},
	    {{0x80, 0x01}, 2, 0, 128},
	    {{0xac, 0x02}, 2, 0, 300},
	    {{0x80, 0x00}, 2, 0, 0}, /* not the shortest form: still a varint */
	    {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 10, 0, UINT64_MAX},
	    {{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 10, 0, 1ull << 63},
	    /* A tenth byte above 1 sets bits past 64. */
	    {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, 10, -EPROTO, 0},
	    /* Eleven bytes. */
	    {{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 11, -EPROTO, 0},
	    /* Cut short. */
	    {{0x80}, 1, -EPROTO, 0},
	    {{0xff, 0xff}, 2, -EPROTO, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 12345;
		size_t used;
		int rc = varint_of(cases[i].b, cases[i].n, &v, &used);
		if (rc != cases[i].rc)
			printf("# case %zu\n", i);
		ASSERT_EQ(rc, cases[i].rc);
		if (rc == 0) {
			ASSERT(v == cases[i].v);
			ASSERT_EQ(used, cases[i].n);
		} else {
			ASSERT_EQ(used, 0); /* *p unchanged on failure */
		}
	}
	/* Nothing at all to read. */
	const uint8_t one = 5;
	const uint8_t *p = &one;
	uint64_t v;
	ASSERT_EQ(bili_pb_varint(&p, p, &v), -EPROTO);
}

static void test_fields(void)
{
	struct enc e = {.n = 0};
	e_key(&e, 1, 0);
	e_varint(&e, 150);
	e_key(&e, 2, 1);
	memcpy(e.b + e.n, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	e.n += 8;
	e_bytes(&e, 3, "hello", 5);
	e_key(&e, 4, 5);
	memcpy(e.b + e.n, "\xaa\xbb\xcc\xdd", 4);
	e.n += 4;
	e_bytes(&e, BILI_PB_MAX_FIELD, "", 0);

	struct bili_pb r;
	struct bili_pb_field f;
	bili_pb_init(&r, e.b, e.n);
	ASSERT_EQ(bili_pb_next(&r, &f), 1);
	ASSERT_EQ(f.num, 1);
	ASSERT_EQ(f.wire, BILI_PB_VARINT);
	ASSERT_EQ(f.u, 150);
	ASSERT_EQ(bili_pb_next(&r, &f), 1);
	ASSERT_EQ(f.num, 2);
	ASSERT_EQ(f.wire, BILI_PB_I64);
	ASSERT(f.u == 0x0807060504030201ull);
	ASSERT_EQ(bili_pb_next(&r, &f), 1);
	ASSERT_EQ(f.num, 3);
	ASSERT_EQ(f.wire, BILI_PB_LEN);
	ASSERT_EQ(f.len, 5);
	ASSERT_MEM_EQ(f.data, "hello", 5);
	ASSERT_EQ(bili_pb_next(&r, &f), 1);
	ASSERT_EQ(f.num, 4);
	ASSERT_EQ(f.wire, BILI_PB_I32);
	ASSERT_EQ(f.u, 0xddccbbaa);
	ASSERT_EQ(bili_pb_next(&r, &f), 1);
	ASSERT_EQ(f.num, BILI_PB_MAX_FIELD);
	ASSERT_EQ(f.len, 0);
	ASSERT_EQ(bili_pb_next(&r, &f), 0);
	ASSERT_EQ(bili_pb_next(&r, &f), 0);
	ASSERT_EQ(bili_pb_check(e.b, e.n), 0);
	/* Empty input: a message with no fields. */
	bili_pb_init(&r, NULL, 0);
	ASSERT_EQ(bili_pb_next(&r, &f), 0);
	ASSERT_EQ(bili_pb_check(NULL, 0), 0);
}

/* A nested message is read by a second reader over the field's bytes. */
static void test_nested(void)
{
	struct enc inner = {.n = 0}, outer = {.n = 0};
	e_bytes(&inner, 1, "StarSea", 7);
	e_key(&inner, 2, 0);
	e_varint(&inner, 7);
	e_bytes(&outer, 22, inner.b, inner.n);
	e_key(&outer, 15, 0);
	e_varint(&outer, 1751716523239264129ull);
	struct bili_pb r, r2;
	struct bili_pb_field f, g;
	bili_pb_init(&r, outer.b, outer.n);
	ASSERT_EQ(bili_pb_next(&r, &f), 1);
	ASSERT_EQ(f.num, 22);
	bili_pb_init(&r2, f.data, f.len);
	ASSERT_EQ(bili_pb_next(&r2, &g), 1);
	ASSERT_EQ(g.num, 1);
	ASSERT_MEM_EQ(g.data, "StarSea", 7);
	ASSERT_EQ(bili_pb_next(&r2, &g), 1);
	ASSERT_EQ(g.u, 7);
	ASSERT_EQ(bili_pb_next(&r2, &g), 0);
	ASSERT_EQ(bili_pb_next(&r, &f), 1);
	ASSERT(f.u == 1751716523239264129ull);
	ASSERT_EQ(bili_pb_next(&r, &f), 0);
}

static void test_malformed(void)
{
	static const struct {
		const char *what;
		uint8_t b[16];
		size_t n;
	} bad[] = {
	    {"field number 0", {0x00, 0x01}, 2},
	    {"field number 0, LEN", {0x02, 0x00}, 2},
	    {"field number 2^29", {0x80, 0x80, 0x80, 0x80, 0x10, 0x00}, 6},
	    {"start group", {0x0b}, 1},
	    {"end group", {0x0c}, 1},
	    {"wire type 6", {0x0e, 0x00}, 2},
	    {"wire type 7", {0x0f, 0x00}, 2},
	    {"varint value cut", {0x08, 0x80}, 2},
	    {"varint value missing", {0x08}, 1},
	    {"key cut", {0x88}, 1},
	    {"length past the end", {0x0a, 0x05, 'a', 'b'}, 4},
	    {"length missing", {0x0a}, 1},
	    /* 2^63: compared with what is left, never added to a pointer. */
	    {"huge length",
	     {0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 'x'},
	     12},
	    {"huge length 2^64-1",
	     {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 'x'},
	     12},
	    {"fixed64 cut", {0x09, 1, 2, 3, 4, 5, 6, 7}, 8},
	    {"fixed32 cut", {0x0d, 1, 2, 3}, 4},
	    {"second field bad", {0x08, 0x01, 0x0f}, 3},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* An allocation of exactly n bytes: ASan catches a read past it. */
		uint8_t *p = malloc(bad[i].n);
		ASSERT(p);
		memcpy(p, bad[i].b, bad[i].n);
		struct bili_pb r;
		struct bili_pb_field f;
		bili_pb_init(&r, p, bad[i].n);
		int rc;
		while ((rc = bili_pb_next(&r, &f)) > 0)
			;
		if (rc != -EPROTO)
			printf("# %s\n", bad[i].what);
		ASSERT_EQ(rc, -EPROTO);
		/* It stays at the bad field. */
		ASSERT_EQ(bili_pb_next(&r, &f), -EPROTO);
		ASSERT_EQ(bili_pb_check(p, bad[i].n), -EPROTO);
		free(p);
	}
}

/* Every prefix of a valid message, in an allocation of exactly its size, reads whole
 * fields and then either ends cleanly (at a field boundary) or fails: never past the end. */
static void test_prefixes(void)
{
	struct enc e = {.n = 0};
	e_key(&e, 1, 0);
	e_varint(&e, 439367700);
	e_bytes(&e, 2, "StarSea246", 10);
	e_key(&e, 16, 5);
	memcpy(e.b + e.n, "\x00\x00\x80\x3f", 4);
	e.n += 4;
	e_key(&e, 8, 1);
	memcpy(e.b + e.n, "12345678", 8);
	e.n += 8;
	e_key(&e, 15, 0);
	e_varint(&e, UINT64_MAX);
	size_t bounds[] = {0, 0, 0, 0, 0, 0};
	size_t nb = 0;
	{
		struct bili_pb r;
		struct bili_pb_field f;
		bili_pb_init(&r, e.b, e.n);
		while (bili_pb_next(&r, &f) > 0)
			bounds[nb++] = (size_t)(r.p - e.b);
		ASSERT_EQ(nb, 5);
		ASSERT_EQ(bounds[nb - 1], e.n);
	}
	for (size_t k = 0; k <= e.n; k++) {
		uint8_t *p = malloc(k ? k : 1);
		ASSERT(p);
		memcpy(p, e.b, k);
		bool boundary = k == 0;
		size_t whole = 0;
		for (size_t i = 0; i < nb; i++) {
			if (bounds[i] == k)
				boundary = true;
			if (bounds[i] <= k)
				whole++;
		}
		struct bili_pb r;
		struct bili_pb_field f;
		bili_pb_init(&r, p, k);
		int rc;
		size_t got = 0;
		while ((rc = bili_pb_next(&r, &f)) > 0)
			got++;
		ASSERT_EQ(got, whole);
		ASSERT_EQ(rc, boundary ? 0 : -EPROTO);
		free(p);
	}
}

int main(void)
{
	RUN(test_varint);
	RUN(test_fields);
	RUN(test_nested);
	RUN(test_malformed);
	RUN(test_prefixes);
	TEST_DONE();
}
