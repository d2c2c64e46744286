/*
 * b64.h: decoding the base64 in the fixture files, with mbedTLS's decoder (already linked
 * for TLS), for the unit tests.
 */
#ifndef DANMAKUD_TEST_B64_H
#define DANMAKUD_TEST_B64_H

#include <stdbool.h>
#include <stddef.h>

#include <mbedtls/base64.h>

#include "buf.h"

/* Decode standard padded base64 src[0..n) and append it to out; false on bad input. */
static inline bool b64_decode(const char *src, size_t n, struct buf *out)
{
	size_t need = 0;
	const unsigned char *s = (const unsigned char *)src;
	if (mbedtls_base64_decode(NULL, 0, &need, s, n) == MBEDTLS_ERR_BASE64_INVALID_CHARACTER ||
	    buf_reserve(out, need) < 0)
		return false;
	size_t got = 0;
	if (mbedtls_base64_decode(buf_head(out) + out->len, need, &got, s, n) != 0)
		return false;
	out->len += got;
	return true;
}

#endif
