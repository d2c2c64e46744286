/* platform: the table of platforms, looked up by name (conf.c, cli.c, rec.c, export.c). */
#include "platform.h"

#include <errno.h>
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
