/*
 * buf: a growable byte buffer with a read offset (append at the end, consume at the front).
 *
 * The buffer owns its memory. Consumed bytes are reclaimed lazily: when the read offset passes
 * half the capacity, or when an append would otherwise grow the allocation, the unread bytes
 * move to the front. All functions are pure (no I/O).
 */
#ifndef DANMAKUD_BUF_H
#define DANMAKUD_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data; /* allocation; unread bytes are data[off .. off+len) */
	size_t off;
	size_t len;
	size_t cap;
};

void buf_init(struct buf *b);
/* Free the memory; the buffer is left empty and may be reused. */
void buf_finish(struct buf *b);

/* Pointer to the first unread byte (valid until the next append/reserve/finish). */
static inline uint8_t *buf_head(const struct buf *b)
{
	return b->data + b->off;
}

/* Make room for at least n more bytes; returns 0 or -ENOMEM (buffer unchanged). */
int buf_reserve(struct buf *b, size_t n);
/* Append n bytes; returns 0 or -ENOMEM (buffer unchanged). */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
/* printf-style append; returns 0, -ENOMEM or -EINVAL. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int buf_printf(struct buf *b, const char *fmt, ...);
/* Drop n unread bytes from the front (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Drop everything unread; keeps the allocation. */
void buf_clear(struct buf *b);
/* What a per-connection buffer keeps between reads; more is released (buf_trim). */
#define BUF_KEEP (64u << 10)

/*
 * Give memory back after a burst: when the capacity exceeds keep and at most keep bytes are
 * unread, free the allocation (nothing unread) or move the unread bytes into one of exactly
 * keep bytes. A buffer still holding more than keep bytes is left alone, so trimming after
 * every feed never makes a growing buffer reallocate twice. Returns 0, or -ENOMEM when the
 * smaller allocation fails (the buffer is then unchanged and still valid).
 */
int buf_trim(struct buf *b, size_t keep);

#endif
