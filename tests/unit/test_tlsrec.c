/*
 * test_tlsrec: the inbound AES-GCM record layer on byte buffers. Records come from code that
 * is not ours: the NIST GCM test vectors (McGrew & Viega test cases 4 and 16) with the TLS
 * additional data, a stream written by Python's `cryptography` AESGCM (frozen below, with the
 * script that made it), and records the test seals with OpenSSL's EVP interface, itself
 * checked against NIST first. Streams are fed whole, one byte at a time and in random slices.
 * Then the failures: a flipped bit anywhere, a wrong sequence number, oversized and short
 * lengths, alerts, handshake and unknown records, sequence-number wrap.
 */
#include "tlsrec.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "../test.h"

static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
	size_t n = 0;
	for (; h[0] && h[1] && n < cap; h += 2) {
		unsigned v;
		if (sscanf(h, "%2x", &v) != 1)
			abort();
		out[n++] = (uint8_t)v;
	}
	return n;
}

/* ---- sealing with OpenSSL's EVP (not our code) ---- */

struct sealer {
	uint8_t key[32];
	size_t keylen;
	uint8_t iv[4];
	uint64_t seq;
};

/* Append one TLS 1.2 AES-GCM record of type `type` holding p[0..n) to b, as a server would. */
static int seal(struct sealer *s, struct buf *b, uint8_t type, const uint8_t *p, size_t n)
{
	uint8_t hdr[5] = {type, 3, 3, (uint8_t)((n + 24) >> 8), (uint8_t)(n + 24)};
	uint8_t nonce[12], aad[13];
	memcpy(nonce, s->iv, 4);
	for (int i = 0; i < 8; i++) {
		/* Any explicit part will do as long as it never repeats; derive it from seq. */
		nonce[4 + i] = (uint8_t)((s->seq * 0x9E3779B97F4A7C15ULL) >> (56 - 8 * i));
		aad[i] = (uint8_t)(s->seq >> (56 - 8 * i));
	}
	aad[8] = type;
	aad[9] = 3;
	aad[10] = 3;
	aad[11] = (uint8_t)(n >> 8);
	aad[12] = (uint8_t)n;
	if (buf_reserve(b, 5 + 8 + n + 16) < 0)
		return -1;
	uint8_t *o = b->data + b->off + b->len;
	memcpy(o, hdr, 5);
	memcpy(o + 5, nonce + 4, 8);
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int len, ok = c != NULL &&
	              EVP_EncryptInit_ex(c, s->keylen == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm(),
	                                 NULL, s->key, nonce) == 1 &&
	              EVP_EncryptUpdate(c, NULL, &len, aad, 13) == 1 &&
	              (n == 0 || EVP_EncryptUpdate(c, o + 13, &len, p, (int)n) == 1) &&
	              EVP_EncryptFinal_ex(c, o + 13 + n, &len) == 1 &&
	              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, o + 13 + n) == 1;
	EVP_CIPHER_CTX_free(c);
	if (!ok)
		return -1;
	b->len += 5 + 8 + n + 16;
	s->seq++;
	return 0;
}

/* The sealer above agrees with NIST GCM test case 4 (AES-128, 20 bytes of AAD). */
static void tlsrec_evp_matches_nist(void)
{
	uint8_t key[16], iv[12], pt[60], aad[20], want[60 + 16], got[60 + 16];
	unhex("feffe9928665731c6d6a8f9467308308", key, sizeof(key));
	unhex("cafebabefacedbaddecaf888", iv, sizeof(iv));
	unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
	      pt, sizeof(pt));
	unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2", aad, sizeof(aad));
	unhex("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
	      "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
	      "5bc94fbc3221a5db94fae95ae7121a47",
	      want, sizeof(want));
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int len;
	ASSERT(c);
	ASSERT_EQ(EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, key, iv), 1);
	ASSERT_EQ(EVP_EncryptUpdate(c, NULL, &len, aad, sizeof(aad)), 1);
	ASSERT_EQ(EVP_EncryptUpdate(c, got, &len, pt, sizeof(pt)), 1);
	ASSERT_EQ(EVP_EncryptFinal_ex(c, got + 60, &len), 1);
	ASSERT_EQ(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, got + 60), 1);
	EVP_CIPHER_CTX_free(c);
	ASSERT_MEM_EQ(got, want, sizeof(want));
}

/*
 * NIST test cases 4 (AES-128) and 16 (AES-256): key feffe992..., IV cafebabefacedbaddecaf888,
 * the 60-byte plaintext, as record 5 of a TLS 1.2 stream. The ciphertext is NIST's (it does not
 * depend on the additional data); the tags over the TLS additional data were computed by
 * Python's cryptography: AESGCM(key).encrypt(iv, pt, pack('>QBHH', 5, 23, 0x0303, 60)).
 */
static void nist_case(const char *key_hex, const char *ct_hex, const char *tag_hex)
{
	uint8_t key[32], pt[60];
	size_t keylen = unhex(key_hex, key, sizeof(key));
	unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
	      pt, sizeof(pt));
	static const uint8_t implicit[4] = {0xca, 0xfe, 0xba, 0xbe};
	uint8_t rec[5 + 8 + 60 + 16] = {23, 3, 3, 0, 8 + 60 + 16};
	unhex("facedbaddecaf888", rec + 5, 8);
	ASSERT_EQ(unhex(ct_hex, rec + 13, 60), 60);
	ASSERT_EQ(unhex(tag_hex, rec + 73, 16), 16);

	struct tlsrec *r;
	ASSERT_EQ(tlsrec_create(key, keylen, implicit, 5, &r), 0);
	struct buf in;
	buf_init(&in);
	ASSERT_EQ(buf_append(&in, rec, sizeof(rec)), 0);
	uint8_t out[100];
	ASSERT_EQ(tlsrec_read(r, &in, out, sizeof(out)), 60);
	ASSERT_MEM_EQ(out, pt, 60);
	ASSERT_EQ(in.len, 0);
	ASSERT_EQ(tlsrec_seq(r), 6);
	ASSERT_EQ(tlsrec_read(r, &in, out, sizeof(out)), -EAGAIN);
	tlsrec_destroy(r);

	/* The same record as record 4 or 6 fails: the sequence number is authenticated. */
	for (uint64_t seq = 4; seq <= 6; seq += 2) {
		ASSERT_EQ(tlsrec_create(key, keylen, implicit, seq, &r), 0);
		ASSERT_EQ(buf_append(&in, rec, sizeof(rec)), 0);
		memset(out, 0, sizeof(out));
		ASSERT_EQ(tlsrec_read(r, &in, out, sizeof(out)), -EPROTO);
		ASSERT(strstr(tlsrec_last_error(r), "bad record MAC") != NULL);
		for (size_t i = 0; i < sizeof(out); i++)
			ASSERT_EQ(out[i], 0);
		tlsrec_destroy(r);
		buf_clear(&in);
	}
	buf_finish(&in);
}

static void tlsrec_nist_vectors(void)
{
	nist_case("feffe9928665731c6d6a8f9467308308",
	          "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
	          "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
	          "9c8141d4a3d467429e8cdc37401ba1eb");
	if (test_cur_failed)
		return;
	nist_case("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
	          "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	          "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
	          "5325e716e7cf426a776d777abfbba547");
}

/*
 * Four records written by Python's cryptography (AES-256-GCM, key bytes 0x40..0x5f, implicit
 * IV a1b2c3d4, explicit part 0x1000 + 7 * seq, sequence numbers 1..4):
 *   for t, p in [(23, MSG), (23, b''), (23, b'x'), (21, b'\x01\x00')]:
 *       aad = struct.pack('>QBHH', seq, t, 0x0303, len(p))
 *       ct = AESGCM(key).encrypt(fixed + expl, p, aad)
 *       out += struct.pack('>BHH', t, 0x0303, 8 + len(ct)) + expl + ct
 */
static const char py_stream[] = "170303007f0000000000001007c5160617a3b81b33576fcca6678c84eedf6517f1"
                                "913211454f3f7669a50a5eb024cde0"
                                "abd3e6e76a008f2ed87cf59e49ed6b151c7c43828603a117ee06f5b591a0e49736"
                                "2fd6fe60025f5fdda45d55847cfd5f"
                                "965c0c3ec6f9e6c871b0a4d8f42d9868211386449ddb61b19945411d585e3b68fc"
                                "7bfcf1170303001800000000000010"
                                "0e1b14d6bfadcfdd04df69024664ddef7017030300190000000000001015898fb0"
                                "516552842f2b45d3fa6c8970c91215"
                                "0303001a000000000000101c3cd165d38edbacd940168deac8e2b9309c11";
static const char py_msg[] = "type@=chatmsg/rid@=9999/uid@=12345/nn@=danmakud/txt@=hello world/"
                             "cid@=0123456789abcdef0123456789abcdef/";

enum split { SPLIT_WHOLE, SPLIT_BYTE, SPLIT_RANDOM };

/*
 * Feed stream[0..n) in slices, reading after each slice into got with reads of at most
 * cap bytes. Returns the plaintext length; *last gets the final read result.
 */
static size_t feed_read(struct tlsrec *r, const uint8_t *stream, size_t n, enum split mode,
                        uint64_t *seed, size_t cap, uint8_t *got, size_t gotcap, ssize_t *last)
{
	struct buf in;
	buf_init(&in);
	size_t total = 0, pos = 0;
	ssize_t rc = -EAGAIN;
	while (pos < n && rc == -EAGAIN) {
		size_t k = n - pos;
		if (mode == SPLIT_BYTE)
			k = 1;
		else if (mode == SPLIT_RANDOM)
			k = 1 + (size_t)(test_rand(seed) % (k < 3000 ? k : 3000));
		if (buf_append(&in, stream + pos, k) < 0)
			abort();
		pos += k;
		for (;;) {
			size_t want = cap < gotcap - total ? cap : gotcap - total;
			if (want == 0)
				abort();
			rc = tlsrec_read(r, &in, got + total, want);
			if (rc <= 0)
				break;
			total += (size_t)rc;
		}
	}
	*last = rc;
	buf_finish(&in);
	return total;
}

static void tlsrec_python_records(void)
{
	uint8_t stream[256], key[32], got[256];
	size_t n = unhex(py_stream, stream, sizeof(stream));
	ASSERT_EQ(n, 222);
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)(0x40 + i);
	static const uint8_t iv[4] = {0xa1, 0xb2, 0xc3, 0xd4};
	uint64_t seed = 11;
	for (int mode = SPLIT_WHOLE; mode <= SPLIT_RANDOM; mode++) {
		for (size_t cap = 1; cap <= 4096; cap *= 8) {
			struct tlsrec *r;
			ASSERT_EQ(tlsrec_create(key, 32, iv, 1, &r), 0);
			ssize_t last;
			size_t total = feed_read(r, stream, n, (enum split)mode, &seed, cap, got,
			                         sizeof(got), &last);
			ASSERT_EQ(last, 0); /* close_notify */
			ASSERT_EQ(total, strlen(py_msg) + 1);
			ASSERT_MEM_EQ(got, py_msg, strlen(py_msg));
			ASSERT_EQ(got[strlen(py_msg)], 'x');
			ASSERT_EQ(tlsrec_seq(r), 5);
			ASSERT_STR_EQ(tlsrec_last_error(r), "peer sent close_notify");
			struct buf empty;
			buf_init(&empty);
			ASSERT_EQ(tlsrec_read(r, &empty, got, sizeof(got)), 0);
			tlsrec_destroy(r);
		}
	}
}

/* Many EVP-sealed records of every size, through both read paths and every split. */
static void tlsrec_evp_records(void)
{
	enum { MAXN = 200000 };
	static uint8_t plain[MAXN], got[MAXN];
	uint64_t seed = 0x5eed;
	for (size_t keylen = 16; keylen <= 32; keylen += 16) {
		struct sealer s = {.keylen = keylen, .seq = 1000 + keylen};
		for (size_t i = 0; i < sizeof(s.key); i++)
			s.key[i] = (uint8_t)test_rand(&seed);
		memcpy(s.iv, "\x01\x02\x03\x04", 4);
		uint64_t seq0 = s.seq;
		struct buf stream;
		buf_init(&stream);
		size_t total = 0;
		static const size_t sizes[] = {0, 1, 15, 16, 17, 335, 4096, 16383, 16384, 0, 2};
		for (size_t k = 0; total < MAXN - 16384; k++) {
			size_t n = k < sizeof(sizes) / sizeof(sizes[0])
			               ? sizes[k]
			               : (size_t)(test_rand(&seed) % 2000);
			for (size_t j = 0; j < n; j++)
				plain[total + j] = (uint8_t)test_rand(&seed);
			ASSERT_EQ(seal(&s, &stream, 23, plain + total, n), 0);
			total += n;
		}
		static const size_t caps[] = {1, 7, 335, 16384, 65536};
		for (int mode = SPLIT_WHOLE; mode <= SPLIT_RANDOM; mode++) {
			for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
				if (mode == SPLIT_BYTE && caps[c] < 335)
					continue; /* slow and adds nothing over the other splits */
				struct tlsrec *r;
				ASSERT_EQ(tlsrec_create(s.key, keylen, s.iv, seq0, &r), 0);
				ssize_t last;
				memset(got, 0, sizeof(got));
				size_t n =
				    feed_read(r, buf_head(&stream), stream.len, (enum split)mode,
				              &seed, caps[c], got, sizeof(got), &last);
				ASSERT_EQ(last, -EAGAIN);
				ASSERT_EQ(n, total);
				ASSERT_MEM_EQ(got, plain, total);
				ASSERT_EQ(tlsrec_seq(r), s.seq);
				tlsrec_destroy(r);
			}
		}
		buf_finish(&stream);
	}
}

/* A decryptor and one sealed record (seq 7) of "attack at dawn", for the failure tests. */
struct fix {
	struct sealer s;
	struct tlsrec *r;
	struct buf in;
};

static void fix_init(struct fix *f)
{
	memset(f, 0, sizeof(*f));
	f->s.keylen = 32;
	memset(f->s.key, 0x42, 32);
	memcpy(f->s.iv, "\xde\xad\xbe\xef", 4);
	f->s.seq = 7;
	buf_init(&f->in);
	if (tlsrec_create(f->s.key, 32, f->s.iv, 7, &f->r) < 0)
		abort();
}

static void fix_finish(struct fix *f)
{
	tlsrec_destroy(f->r);
	buf_finish(&f->in);
}

/* Flip each bit of a sealed record in turn: every one is refused, none delivers plaintext. */
static void tlsrec_corruption(void)
{
	static const char msg[] = "attack at dawn";
	struct fix f;
	fix_init(&f);
	ASSERT_EQ(seal(&f.s, &f.in, 23, (const uint8_t *)msg, sizeof(msg) - 1), 0);
	size_t len = f.in.len;
	uint8_t orig[64];
	ASSERT(len <= sizeof(orig));
	memcpy(orig, buf_head(&f.in), len);
	fix_finish(&f);

	for (size_t bit = 0; bit < len * 8; bit++) {
		fix_init(&f);
		ASSERT_EQ(buf_append(&f.in, orig, len), 0);
		buf_head(&f.in)[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		uint8_t out[64];
		memset(out, 0, sizeof(out));
		ssize_t rc = tlsrec_read(f.r, &f.in, out, sizeof(out));
		if (bit / 8 == 3 || bit / 8 == 4) {
			/* A length bit: too short, too long, or waiting for bytes never coming. */
			ASSERT(rc == -EPROTO || rc == -EAGAIN);
		} else {
			ASSERT_EQ(rc, -EPROTO);
			for (size_t i = 0; i < sizeof(out); i++)
				ASSERT_EQ(out[i], 0);
			/* Sticky: the same answer, whatever comes next. */
			ASSERT_EQ(tlsrec_read(f.r, &f.in, out, sizeof(out)), -EPROTO);
		}
		if (bit / 8 >= 5)
			ASSERT(strstr(tlsrec_last_error(f.r), "bad record MAC (record 7)"));
		fix_finish(&f);
	}

	/* Good record, then a bad one: the first is delivered, the second refused. */
	fix_init(&f);
	ASSERT_EQ(seal(&f.s, &f.in, 23, (const uint8_t *)msg, 5), 0);
	ASSERT_EQ(seal(&f.s, &f.in, 23, (const uint8_t *)msg, 5), 0);
	buf_head(&f.in)[f.in.len - 1] ^= 0x80;
	uint8_t out[64];
	ASSERT_EQ(tlsrec_read(f.r, &f.in, out, sizeof(out)), 5);
	ASSERT_EQ(tlsrec_read(f.r, &f.in, out, sizeof(out)), -EPROTO);
	ASSERT(strstr(tlsrec_last_error(f.r), "bad record MAC (record 8)"));
	fix_finish(&f);
}

/* A record sealed with the wrong sequence number (a dropped or replayed record). */
static void tlsrec_wrong_seq(void)
{
	struct fix f;
	fix_init(&f);
	f.s.seq = 8;
	ASSERT_EQ(seal(&f.s, &f.in, 23, (const uint8_t *)"x", 1), 0);
	uint8_t out[8];
	ASSERT_EQ(tlsrec_read(f.r, &f.in, out, sizeof(out)), -EPROTO);
	ASSERT(strstr(tlsrec_last_error(f.r), "bad record MAC"));
	fix_finish(&f);
}

/* Lengths are refused from the header alone, before any body arrives. */
static void tlsrec_lengths(void)
{
	static const struct {
		uint8_t hdr[5];
		const char *want;
	} cases[] = {
	    {{23, 3, 3, 0x48, 0x01}, "exceeds 2^14+2048"},     /* 18433 */
	    {{23, 3, 3, 0xff, 0xff}, "exceeds 2^14+2048"},     /* 65535 */
	    {{23, 3, 3, 0x48, 0x00}, "exceeds 2^14 "},         /* 18432: 18408 of plaintext */
	    {{23, 3, 3, 0x40, 0x19}, "exceeds 2^14 "},         /* 16409: 16385 of plaintext */
	    {{23, 3, 3, 0x00, 23}, "too short for AES-GCM"},   /* no room for nonce and tag */
	    {{23, 3, 3, 0x00, 0x00}, "too short for AES-GCM"}, /* empty */
	    {{21, 3, 3, 0x00, 27}, "alert record of 3 bytes"}, /* alerts are 2 bytes */
	    {{23, 3, 1, 0x00, 30}, "record version 3.1"},      /* TLS 1.0 header */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fix f;
		fix_init(&f);
		uint8_t out[16];
		for (size_t k = 0; k < 4; k++) {
			ASSERT_EQ(buf_append(&f.in, cases[i].hdr + k, 1), 0);
			ASSERT_EQ(tlsrec_read(f.r, &f.in, out, sizeof(out)), -EAGAIN);
		}
		ASSERT_EQ(buf_append(&f.in, cases[i].hdr + 4, 1), 0);
		ASSERT_EQ(tlsrec_read(f.r, &f.in, out, sizeof(out)), -EPROTO);
		printf("# %s\n", tlsrec_last_error(f.r));
		ASSERT(strstr(tlsrec_last_error(f.r), cases[i].want));
		fix_finish(&f);
	}
	/* The largest legal record (16384 bytes of plaintext) is accepted. */
	struct fix f;
	fix_init(&f);
	static uint8_t big[16384], out[16384];
	memset(big, 'z', sizeof(big));
	ASSERT_EQ(seal(&f.s, &f.in, 23, big, sizeof(big)), 0);
	ASSERT_EQ(tlsrec_read(f.r, &f.in, out, sizeof(out)), 16384);
	ASSERT_MEM_EQ(out, big, sizeof(big));
	fix_finish(&f);
}

static void expect_alert(uint8_t level, uint8_t desc, ssize_t want_rc, const char *want)
{
	struct fix f;
	fix_init(&f);
	ASSERT_EQ(seal(&f.s, &f.in, 23, (const uint8_t *)"hi", 2), 0);
	ASSERT_EQ(seal(&f.s, &f.in, 21, (const uint8_t[]){level, desc}, 2), 0);
	/* Anything after the alert is never read. */
	ASSERT_EQ(seal(&f.s, &f.in, 23, (const uint8_t *)"late", 4), 0);
	uint8_t out[16];
	ASSERT_EQ(tlsrec_read(f.r, &f.in, out, sizeof(out)), 2);
	ASSERT_EQ(tlsrec_read(f.r, &f.in, out, sizeof(out)), want_rc);
	ASSERT_EQ(tlsrec_read(f.r, &f.in, out, sizeof(out)), want_rc);
	printf("# %s\n", tlsrec_last_error(f.r));
	ASSERT(strstr(tlsrec_last_error(f.r), want));
	fix_finish(&f);
}

static void tlsrec_alerts(void)
{
	expect_alert(1, 0, 0, "close_notify");
	expect_alert(2, 40, -ECONNREFUSED, "fatal alert 40 (handshake_failure)");
	expect_alert(2, 0, -ECONNREFUSED, "fatal alert 0 (close_notify)");
	expect_alert(1, 100, -EPROTO, "alert 100 (no_renegotiation) at level 1");
	expect_alert(2, 201, -ECONNREFUSED, "unknown alert");
}

/* After the handshake: a HelloRequest (renegotiation), ChangeCipherSpec, unknown types. */
static void tlsrec_bad_types(void)
{
	static const struct {
		uint8_t type;
		const char *want;
	} cases[] = {
	    {22, "handshake record after the handshake"},
	    {20, "ChangeCipherSpec"},
	    {24, "unknown record type 24"},
	    {0, "unknown record type 0"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fix f;
		fix_init(&f);
		ASSERT_EQ(seal(&f.s, &f.in, 23, (const uint8_t *)"ok", 2), 0);
		/* HelloRequest: type 0, length 0. */
		ASSERT_EQ(seal(&f.s, &f.in, cases[i].type, (const uint8_t *)"\0\0\0\0", 4), 0);
		uint8_t out[16];
		ASSERT_EQ(tlsrec_read(f.r, &f.in, out, sizeof(out)), 2);
		ASSERT_EQ(tlsrec_read(f.r, &f.in, out, sizeof(out)), -EPROTO);
		printf("# %s\n", tlsrec_last_error(f.r));
		ASSERT(strstr(tlsrec_last_error(f.r), cases[i].want));
		fix_finish(&f);
	}
}

static void tlsrec_seq_wrap(void)
{
	struct fix f;
	fix_init(&f);
	tlsrec_destroy(f.r);
	ASSERT_EQ(tlsrec_create(f.s.key, 32, f.s.iv, UINT64_MAX - 1, &f.r), 0);
	f.s.seq = UINT64_MAX - 1;
	ASSERT_EQ(seal(&f.s, &f.in, 23, (const uint8_t *)"a", 1), 0);
	ASSERT_EQ(seal(&f.s, &f.in, 23, (const uint8_t *)"b", 1), 0);
	ASSERT_EQ(seal(&f.s, &f.in, 23, (const uint8_t *)"c", 1), 0); /* sealed with seq 0 */
	uint8_t out[4];
	ASSERT_EQ(tlsrec_read(f.r, &f.in, out, sizeof(out)), 1);
	ASSERT_EQ(out[0], 'a');
	ASSERT_EQ(tlsrec_read(f.r, &f.in, out, sizeof(out)), 1);
	ASSERT_EQ(out[0], 'b');
	ASSERT_EQ(tlsrec_read(f.r, &f.in, out, sizeof(out)), -EPROTO);
	ASSERT(strstr(tlsrec_last_error(f.r), "would wrap"));
	fix_finish(&f);
}

static void tlsrec_api(void)
{
	struct tlsrec *r = (struct tlsrec *)&r;
	static const uint8_t key[32], iv[4];
	ASSERT_EQ(tlsrec_create(key, 24, iv, 0, &r), -EINVAL);
	ASSERT(r == NULL);
	tlsrec_destroy(NULL);
	ASSERT_EQ(tlsrec_create(key, 16, iv, 0, &r), 0);
	struct buf in;
	buf_init(&in);
	uint8_t out[1];
	ASSERT_EQ(tlsrec_read(r, &in, out, 0), -EINVAL);
	ASSERT_EQ(tlsrec_read(r, &in, out, 1), -EAGAIN);
	ASSERT_STR_EQ(tlsrec_last_error(r), "");
	ASSERT_STR_EQ(tlsrec_alert_name(20), "bad_record_mac");
	tlsrec_destroy(r);
}

int main(void)
{
	RUN(tlsrec_evp_matches_nist);
	RUN(tlsrec_nist_vectors);
	RUN(tlsrec_python_records);
	RUN(tlsrec_evp_records);
	RUN(tlsrec_corruption);
	RUN(tlsrec_wrong_seq);
	RUN(tlsrec_lengths);
	RUN(tlsrec_alerts);
	RUN(tlsrec_bad_types);
	RUN(tlsrec_seq_wrap);
	RUN(tlsrec_api);
	TEST_DONE();
}
