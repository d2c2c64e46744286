/*
 * fuzz_bilibili: libFuzzer target for Bilibili packet reassembly and batch unpacking.
 * Input: byte 0 gives k (0..15), the next k bytes are piece sizes, the rest is the stream.
 * The stream is fed to one reader whole and to another in the pieces (cycled, 0 meaning 1);
 * both must deliver the same packets, end the same way, keep no more than one packet
 * pending and hold no inflate buffer above 64 KiB between feeds. Violations trap.
 */
#include "bilibili.h"
#include "fuzz.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define MAX_SEEN 4096

struct seen {
	size_t n;
	uint64_t hash[MAX_SEEN];
};

static int on_packet(void *user_data, uint32_t op, uint16_t ver, const uint8_t *body, size_t len)
{
	struct seen *s = user_data;
	check(len <= BILI_MAX_PACKET - BILI_HDR_LEN);
	check(op != BILI_OP_MESSAGE || ver < 2);
	uint64_t h = 14695981039346656037ull ^ len ^ (uint64_t)op << 32 ^ (uint64_t)ver << 48;
	for (size_t i = 0; i < len; i++)
		h = (h ^ body[i]) * 1099511628211ull;
	if (s->n < MAX_SEEN)
		s->hash[s->n] = h;
	s->n++;
	return 0;
}

static void check_kept(const struct bili_reader *r)
{
	check(r->pending.len < BILI_MAX_PACKET);
	check(r->inflated.cap <= (64u << 10));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_split sp;
	if (!fuzz_split_init(&sp, data, size))
		return 0;
	const uint8_t *stream = sp.stream;
	size_t len = sp.len;

	static struct seen whole, split;
	whole.n = split.n = 0;
	struct bili_reader a, b;
	bili_reader_init(&a);
	bili_reader_init(&b);
	int ra = bili_reader_feed(&a, stream, len, on_packet, &whole);
	check(ra >= 0 || ra == -EPROTO);
	check_kept(&a);
	check(ra < 0 || (size_t)ra == whole.n);

	int rb = 0;
	size_t off = 0, total = 0;
	while (off < len && rb >= 0) {
		size_t n = fuzz_split_next(&sp, off);
		rb = bili_reader_feed(&b, stream + off, n, on_packet, &split);
		check_kept(&b);
		if (rb >= 0)
			total += (size_t)rb;
		off += n;
	}
	check(rb >= 0 || rb == -EPROTO);
	check((ra < 0) == (rb < 0));
	if (ra >= 0)
		check(total == split.n);
	check(whole.n == split.n && a.skipped == b.skipped);
	size_t m = whole.n < MAX_SEEN ? whole.n : MAX_SEEN;
	check(memcmp(whole.hash, split.hash, m * sizeof(uint64_t)) == 0);
	bili_reader_finish(&a);
	bili_reader_finish(&b);
	return 0;
}
