/* platform: the table of platforms, looked up by name (conf.c, rec.c, export). */
#include "platform.h"

#include <string.h>

const struct platform *const platforms[] = {&douyu_platform, NULL};

const struct platform *platform_find(const char *name, size_t n)
{
	for (size_t i = 0; platforms[i]; i++)
		if (strlen(platforms[i]->name) == n && memcmp(platforms[i]->name, name, n) == 0)
			return platforms[i];
	return NULL;
}
