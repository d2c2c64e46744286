/* platform: the table of platforms, looked up by name (conf.c, cli.c, rec.c, export.c). */
#include "platform.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "text.h"

const struct platform *const platforms[] = {&douyu_platform, &bilibili_platform, NULL};

const struct platform *platform_find(const char *name, size_t n)
{
	for (size_t i = 0; platforms[i]; i++)
		if (strlen(platforms[i]->name) == n && memcmp(platforms[i]->name, name, n) == 0)
			return platforms[i];
	return NULL;
}

size_t platform_index(const struct platform *p)
{
	size_t i = 0;
	while (platforms[i] && platforms[i] != p)
		i++;
	return i;
}

const char *platform_room_name(char *dst, size_t cap, const struct platform *p, int64_t id)
{
	if (p == platforms[0])
		snprintf(dst, cap, "%" PRId64, id);
	else
		snprintf(dst, cap, "%s:%" PRId64, p->name, id);
	return dst;
}

int platform_parse_room(const char *s, size_t n, const struct platform **p, int64_t *id)
{
	const char *colon = memchr(s, ':', n);
	const struct platform *pf = platforms[0];
	if (colon) {
		pf = platform_find(s, (size_t)(colon - s));
		if (!pf)
			return -ENOENT;
		n -= (size_t)(colon + 1 - s);
		s = colon + 1;
	}
	if (!text_int(s, n, 1, INT64_C(1) << 53, id))
		return -EINVAL;
	*p = pf;
	return 0;
}
