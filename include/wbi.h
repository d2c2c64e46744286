/*
 * wbi: Bilibili's Wbi request signature (bilibili-protocol.md §2.3), needed by getDanmuInfo.
 * Pure: the keys come from the caller (the nav API), the clock too.
 */
#ifndef DANMAKUD_WBI_H
#define DANMAKUD_WBI_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define WBI_KEY_LEN 32

struct wbi_param {
	const char *key;
	const char *value;
};

/* The key in a wbi_img URL: its file name without the extension, which must be 32
 * characters of [0-9a-zA-Z]. Returns 0 or -EINVAL. */
int wbi_key_from_url(const char *url, char out[WBI_KEY_LEN + 1]);

/* mixin_key: 32 characters of img_key + sub_key picked by the fixed table. */
void wbi_mixin_key(const char img_key[WBI_KEY_LEN + 1], const char sub_key[WBI_KEY_LEN + 1],
                   char out[WBI_KEY_LEN + 1]);

/* Append s to out as JavaScript's encodeURIComponent does (UTF-8 bytes, upper-case hex,
 * A-Z a-z 0-9 - _ . ! ~ * ' ( ) kept). Returns 0 or -ENOMEM. */
int wbi_encode_component(struct buf *out, const char *s);

/*
 * Append the signed query for params plus wts: every value without the characters !'()*,
 * sorted by key, encoded, joined with '&', then "&w_rid=" and md5_hex(query + mixin_key).
 * Keys must be distinct and not "wts" or "w_rid". Returns 0, -ENOMEM or -EINVAL (more than
 * 16 parameters, a repeated or reserved key).
 */
int wbi_sign(struct buf *out, const struct wbi_param *params, size_t n, int64_t wts,
             const char mixin_key[WBI_KEY_LEN + 1]);

#endif
