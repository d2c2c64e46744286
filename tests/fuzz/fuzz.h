/*
 * fuzz.h: what the libFuzzer targets share: the entry point's prototype, the trap on a
 * violated property, and the split-stream input layout (the same bytes fed whole and in
 * pieces the fuzzer chooses).
 */
#ifndef DANMAKUD_FUZZ_H
#define DANMAKUD_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A violated property: crash, so that libFuzzer keeps the input. */
static inline void check(bool ok)
{
	if (!ok)
		__builtin_trap();
}

/* Byte 0 gives k (0..15), the next k bytes are piece sizes (cycled, 0 meaning 1; none: the
 * whole stream at once), the rest is the stream. */
struct fuzz_split {
	const uint8_t *sizes;
	size_t k, i;
	const uint8_t *stream;
	size_t len;
};

/* False when the input is too short to hold the layout. */
static inline bool fuzz_split_init(struct fuzz_split *s, const uint8_t *data, size_t size)
{
	if (size < 1 || size < 1 + (size_t)(data[0] & 15))
		return false;
	s->k = data[0] & 15;
	s->sizes = data + 1;
	s->i = 0;
	s->stream = data + 1 + s->k;
	s->len = size - 1 - s->k;
	return true;
}

/* The size of the next piece starting at off (< len), never past the end. */
static inline size_t fuzz_split_next(struct fuzz_split *s, size_t off)
{
	size_t n = s->k ? s->sizes[s->i++ % s->k] : s->len;
	if (n == 0)
		n = 1;
	return n < s->len - off ? n : s->len - off;
}

#endif
