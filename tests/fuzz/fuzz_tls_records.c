/*
 * fuzz_tls_records: libFuzzer target for tlsrec.c, the inbound TLS 1.2 AES-GCM record layer,
 * with a fixed key. Random bytes alone would never carry a valid tag, so the input is a script
 * and the harness seals the records it asks for with OpenSSL's EVP (not our code): the deep
 * paths (alerts, empty and maximal records, partial reads, sequence wrap) are reached, and the
 * harness knows what must come out.
 *
 * Byte 0: bit 0 the key (AES-128 or AES-256); bits 1-3 the read size; bit 4 starts the
 * sequence numbers two records short of 2^64. Byte 1: seed of the feed slices (0: whole).
 * The rest, one op after another (opcode % 6): an application record (2-byte length up to
 * 17000, plaintext from the input, then a pattern); an alert (level, description; opcode bit 7
 * makes it 3 bytes long); a record of the next byte's type (handshake, ChangeCipherSpec, ...)
 * and a 1-byte length; raw bytes (1-byte length); an application record with one byte
 * flipped (offset, mask); a skipped sequence number.
 *
 * Checked with __builtin_trap(): the stream fed whole and in slices gives the same bytes and
 * the same end; the bytes are exactly the plaintexts of the valid records before the first
 * thing that must stop the stream; that thing ends it as promised (close_notify 0, a fatal
 * alert -ECONNREFUSED, anything else -EPROTO; raw bytes or a flipped byte -EPROTO or -EAGAIN);
 * an error is sticky and has a message; no read ever returns more than asked.
 */
#include "tlsrec.h"
#include "fuzz.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define MAX_PLAIN 17000

static const uint8_t key[32] = "danmakud fuzz key, 32 bytes long";
static const uint8_t iv[4] = {9, 8, 7, 6};

/* Append one sealed record (type, p[0..n)) with sequence number seq to b. */
static void seal(struct buf *b, size_t keylen, uint64_t seq, uint8_t type, const uint8_t *p,
                 size_t n)
{
	uint8_t nonce[12], aad[13];
	memcpy(nonce, iv, 4);
	for (int i = 0; i < 8; i++) {
		nonce[4 + i] = (uint8_t)((seq * 0x9E3779B97F4A7C15ULL) >> (56 - 8 * i));
		aad[i] = (uint8_t)(seq >> (56 - 8 * i));
	}
	aad[8] = type;
	aad[9] = 3;
	aad[10] = 3;
	aad[11] = (uint8_t)(n >> 8);
	aad[12] = (uint8_t)n;
	check(buf_reserve(b, 5 + 8 + n + 16) == 0);
	uint8_t *o = b->data + b->off + b->len;
	o[0] = type;
	o[1] = 3;
	o[2] = 3;
	o[3] = (uint8_t)((n + 24) >> 8);
	o[4] = (uint8_t)(n + 24);
	memcpy(o + 5, nonce + 4, 8);
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int len;
	check(c != NULL);
	check(EVP_EncryptInit_ex(c, keylen == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm(), NULL, key,
	                         nonce) == 1);
	check(EVP_EncryptUpdate(c, NULL, &len, aad, 13) == 1);
	check(n == 0 || EVP_EncryptUpdate(c, o + 13, &len, p, (int)n) == 1);
	check(EVP_EncryptFinal_ex(c, o + 13 + n, &len) == 1);
	check(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, o + 13 + n) == 1);
	EVP_CIPHER_CTX_free(c);
	b->len += 5 + 8 + n + 16;
}

/* What the stream must end with. */
enum end {
	END_MORE,     /* every record valid: -EAGAIN */
	END_EOF,      /* close_notify: 0 */
	END_REFUSED,  /* fatal alert: -ECONNREFUSED */
	END_PROTO,    /* -EPROTO */
	END_PROTO_OR, /* raw or flipped bytes: -EPROTO, or -EAGAIN if they look unfinished */
};

struct script {
	struct buf stream;
	struct buf want; /* plaintext before the end */
	enum end end;
};

/* Take n bytes from the input cursor (fewer at its end). */
static size_t take(const uint8_t **p, size_t *left, size_t n)
{
	if (n > *left)
		n = *left;
	*p += n;
	*left -= n;
	return n;
}

static unsigned byte(const uint8_t **p, size_t *left)
{
	const uint8_t *q = *p;
	return take(p, left, 1) ? q[0] : 0;
}

static void build(struct script *s, size_t keylen, uint64_t seq, const uint8_t *p, size_t left)
{
	static uint8_t plain[MAX_PLAIN];
	bool spent = false; /* the decryptor's sequence numbers are used up */
	bool stopped = false;
	s->end = END_MORE;
	while (left > 0) {
		unsigned op = byte(&p, &left);
		/* Once the end is decided, what follows is still sent but must never surface. */
		enum end end = END_MORE;
		size_t n = 0;
		uint8_t type = 23;
		switch (op % 6) {
		case 0: { /* application data */
			n = (byte(&p, &left) << 8 | byte(&p, &left)) % (MAX_PLAIN + 1);
			const uint8_t *q = p;
			size_t got = take(&p, &left, n);
			memcpy(plain, q, got);
			for (size_t i = got; i < n; i++)
				plain[i] = (uint8_t)(i * 31 + op);
			if (n > TLSREC_MAX_PLAINTEXT)
				end = END_PROTO;
			break;
		}
		case 1: /* alert */
			type = 21;
			plain[0] = (uint8_t)byte(&p, &left);
			plain[1] = (uint8_t)byte(&p, &left);
			plain[2] = 0;
			n = op & 0x80 ? 3 : 2;
			if (n != 2)
				end = END_PROTO;
			else if (plain[0] == 1 && plain[1] == 0)
				end = END_EOF;
			else if (plain[0] == 2)
				end = END_REFUSED;
			else
				end = END_PROTO;
			break;
		case 2: /* another record type */
			type = (uint8_t)byte(&p, &left);
			n = byte(&p, &left);
			memset(plain, 0xab, n);
			/* Type 21 here is an alert at level 0xab or of the wrong length. */
			if (type != 23)
				end = END_PROTO;
			break;
		case 3: { /* raw bytes */
			const uint8_t *q = p;
			size_t got = take(&p, &left, byte(&p, &left));
			if (got == 0)
				continue;
			check(buf_append(&s->stream, q, got) == 0);
			if (!stopped) {
				stopped = true;
				s->end = END_PROTO_OR;
			}
			continue;
		}
		case 4: { /* application data with one byte flipped */
			unsigned off = byte(&p, &left);
			uint8_t mask = (uint8_t)byte(&p, &left);
			n = byte(&p, &left);
			memset(plain, 0xcd, n);
			size_t at = s->stream.len;
			seal(&s->stream, keylen, seq, 23, plain, n);
			buf_head(&s->stream)[at + off % (n + 29)] ^= mask ? mask : 1;
			seq++;
			if (!stopped) {
				stopped = true;
				s->end = END_PROTO_OR;
			}
			continue;
		}
		case 5: /* the server skips a sequence number: only a record after it fails */
			seq++;
			spent = true;
			continue;
		}
		if (!stopped && spent)
			end = END_PROTO; /* a sequence number was skipped or is exhausted */
		seal(&s->stream, keylen, seq, type, plain, n);
		if (++seq == 0)
			spent = true;
		if (stopped)
			continue;
		if (end != END_MORE) {
			stopped = true;
			s->end = end;
		} else if (n > 0) {
			check(buf_append(&s->want, plain, n) == 0);
		}
	}
}

/* Feed the stream in slices (seed 0: whole), reading with at most cap bytes per call. */
static ssize_t run(const struct script *s, size_t keylen, uint64_t seq0, unsigned seed, size_t cap,
                   struct buf *got)
{
	struct tlsrec *r;
	check(tlsrec_create(key, keylen, iv, seq0, &r) == 0);
	struct buf in;
	buf_init(&in);
	uint8_t *out = malloc(cap);
	check(out != NULL);
	uint32_t x = seed;
	ssize_t rc = -EAGAIN;
	size_t pos = 0;
	do {
		size_t n = s->stream.len - pos;
		if (seed) {
			x = x * 1103515245u + 12345u;
			size_t k = 1 + (x >> 16) % 4096;
			n = k < n ? k : n;
		}
		if (n > 0)
			check(buf_append(&in, buf_head(&s->stream) + pos, n) == 0);
		pos += n;
		while ((rc = tlsrec_read(r, &in, out, cap)) > 0) {
			check((size_t)rc <= cap);
			check(buf_append(got, out, (size_t)rc) == 0);
		}
	} while (pos < s->stream.len && rc == -EAGAIN);
	if (rc != -EAGAIN) {
		check(tlsrec_read(r, &in, out, cap) == rc); /* sticky */
		check(tlsrec_last_error(r)[0] != '\0');
	}
	free(out);
	buf_finish(&in);
	tlsrec_destroy(r);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t caps[8] = {1, 2, 13, 100, 335, 4096, 16384, 20000};
	if (size < 2)
		return 0;
	size_t keylen = data[0] & 1 ? 32 : 16;
	size_t cap = caps[(data[0] >> 1) & 7];
	uint64_t seq0 = data[0] & 16 ? UINT64_MAX - 1 : 1;
	unsigned seed = data[1];

	struct script s;
	buf_init(&s.stream);
	buf_init(&s.want);
	build(&s, keylen, seq0, data + 2, size - 2);

	struct buf whole, sliced;
	buf_init(&whole);
	buf_init(&sliced);
	ssize_t rc = run(&s, keylen, seq0, 0, cap, &whole);
	ssize_t rc2 = run(&s, keylen, seq0, seed | 1, cap, &sliced);
	check(rc == rc2);
	check(whole.len == sliced.len &&
	      (whole.len == 0 || memcmp(buf_head(&whole), buf_head(&sliced), whole.len) == 0));
	check(whole.len == s.want.len &&
	      (whole.len == 0 || memcmp(buf_head(&whole), buf_head(&s.want), whole.len) == 0));
	switch (s.end) {
	case END_MORE:
		check(rc == -EAGAIN);
		break;
	case END_EOF:
		check(rc == 0);
		break;
	case END_REFUSED:
		check(rc == -ECONNREFUSED);
		break;
	case END_PROTO:
		check(rc == -EPROTO);
		break;
	case END_PROTO_OR:
		check(rc == -EPROTO || rc == -EAGAIN);
		break;
	}
	buf_finish(&whole);
	buf_finish(&sliced);
	buf_finish(&s.stream);
	buf_finish(&s.want);
	return 0;
}
