/*
 * wbi: the Wbi signature (see wbi.h). MD5 is mbedTLS's.
 */
#include "wbi.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/md5.h>
#include <mbedtls/version.h>

#define WBI_MAX_PARAMS 16

/* The first 32 entries of the public permutation (the rest are never used). */
static const uint8_t mixin_table[WBI_KEY_LEN] = {
    46, 47, 18, 2,  53, 8, 23, 32, 15, 50, 10, 31, 58, 3,  45, 35,
    27, 43, 5,  49, 33, 9, 42, 19, 29, 28, 14, 39, 12, 38, 41, 13,
};

static bool is_alnum(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int wbi_key_from_url(const char *url, char out[WBI_KEY_LEN + 1])
{
	const char *name = strrchr(url, '/');
	name = name ? name + 1 : url;
	size_t n = strcspn(name, ".?#");
	if (n != WBI_KEY_LEN)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(name[i]))
			return -EINVAL;
	memcpy(out, name, n);
	out[n] = '\0';
	return 0;
}

void wbi_mixin_key(const char img_key[WBI_KEY_LEN + 1], const char sub_key[WBI_KEY_LEN + 1],
                   char out[WBI_KEY_LEN + 1])
{
	char raw[2 * WBI_KEY_LEN];
	memcpy(raw, img_key, WBI_KEY_LEN);
	memcpy(raw + WBI_KEY_LEN, sub_key, WBI_KEY_LEN);
	for (size_t i = 0; i < WBI_KEY_LEN; i++)
		out[i] = raw[mixin_table[i]];
	out[WBI_KEY_LEN] = '\0';
}

static bool keep_unencoded(unsigned char c)
{
	return is_alnum((char)c) || (c && strchr("-_.!~*'()", c));
}

/* Encode s, dropping the characters in drop (may be ""). */
static int encode(struct buf *out, const char *s, const char *drop)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*drop && strchr(drop, *p))
			continue;
		int rc;
		if (keep_unencoded(*p)) {
			rc = buf_append(out, p, 1);
		} else {
			char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
			rc = buf_append(out, e, 3);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

int wbi_encode_component(struct buf *out, const char *s)
{
	return encode(out, s, "");
}

static int cmp_param(const void *a, const void *b)
{
	return strcmp(((const struct wbi_param *)a)->key, ((const struct wbi_param *)b)->key);
}

static void md5_hex(const uint8_t *p, size_t n, char out[33])
{
	unsigned char d[16];
#if MBEDTLS_VERSION_MAJOR >= 3
	mbedtls_md5(p, n, d);
#else
	mbedtls_md5_ret(p, n, d);
#endif
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[32] = '\0';
}

int wbi_sign(struct buf *out, const struct wbi_param *params, size_t n, int64_t wts,
             const char mixin_key[WBI_KEY_LEN + 1])
{
	if (n >= WBI_MAX_PARAMS)
		return -EINVAL;
	char wts_s[24];
	snprintf(wts_s, sizeof(wts_s), "%" PRId64, wts);
	struct wbi_param all[WBI_MAX_PARAMS];
	memcpy(all, params, n * sizeof(*params));
	all[n].key = "wts";
	all[n].value = wts_s;
	qsort(all, n + 1, sizeof(all[0]), cmp_param);
	for (size_t i = 0; i < n + 1; i++)
		if ((i > 0 && strcmp(all[i - 1].key, all[i].key) == 0) ||
		    strcmp(all[i].key, "w_rid") == 0)
			return -EINVAL;
	size_t start = out->len;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < n + 1; i++) {
		if (i > 0)
			rc = buf_append(out, "&", 1);
		if (rc == 0)
			rc = encode(out, all[i].key, "!'()*");
		if (rc == 0)
			rc = buf_append(out, "=", 1);
		if (rc == 0)
			rc = encode(out, all[i].value, "!'()*");
	}
	/* md5 over query + mixin_key, then the signature itself. */
	if (rc == 0)
		rc = buf_append(out, mixin_key, WBI_KEY_LEN);
	if (rc < 0) {
		out->len = start;
		return rc;
	}
	char sig[33];
	md5_hex(buf_head(out) + start, out->len - start, sig);
	out->len -= WBI_KEY_LEN;
	rc = buf_printf(out, "&w_rid=%s", sig);
	if (rc < 0)
		out->len = start;
	return rc;
}
