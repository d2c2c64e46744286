/*
 * fuzz_conf: libFuzzer target for the config parser. The input is the whole config text,
 * given to conf_parse() as is (NUL bytes, CRs and invalid UTF-8 included), then released with
 * conf_finish(); LeakSanitizer catches anything left behind. The promises of conf.h are checked
 * with __builtin_trap(): a failure leaves the struct as conf_init made it and names the file
 * and line, a success holds only values inside their documented bounds, and a shorter error
 * buffer gives the same result with a truncated copy of the same message.
 */
#include "conf.h"
#include "platform.h"
#include "fuzz.h"

#include <errno.h>
#include <string.h>

#define FILE_NAME "fuzz.conf"

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

static void check_success(const struct conf *c)
{
	check(!c->database || (c->database[0] && !is_blank(c->database[0])));
	check(c->flush_ms == -1 || (c->flush_ms >= 10 && c->flush_ms <= 60000));
	check(c->heartbeat_s == -1 || (c->heartbeat_s >= 1 && c->heartbeat_s <= 3600));
	check(c->n_servers <= CONF_MAX_SERVERS);
	for (size_t i = 0; i < c->n_servers; i++) {
		const char *s = c->servers[i];
		check(s != NULL);
		check(strncmp(s, "wss://", 6) == 0 || strncmp(s, "ws://", 5) == 0 ||
		      strncmp(s, "tcp://", 6) == 0);
		check(!strpbrk(s, " \t\r\n"));
	}
	for (size_t i = c->n_servers; i < CONF_MAX_SERVERS; i++)
		check(c->servers[i] == NULL);
	check((c->n_rooms == 0) == (c->rooms == NULL));
	for (size_t i = 0; i < c->n_rooms; i++) {
		const struct conf_room *r = &c->rooms[i];
		check(r->id >= 1 && r->id <= (INT64_C(1) << 53));
		check(r->platform && platform_find(r->platform->name, strlen(r->platform->name)) ==
					 r->platform);
		if (r->label) {
			size_t n = strlen(r->label);
			check(n > 0 && !is_blank(r->label[0]) && !is_blank(r->label[n - 1]));
			check(!strchr(r->label, '\n'));
		}
	}
	/* Rooms are unique as (platform, id): Douyu 9999 and Bilibili 9999 are two rooms
	 * (quadratic, so only on inputs of a sane size). */
	if (c->n_rooms <= 2000)
		for (size_t i = 0; i < c->n_rooms; i++)
			for (size_t j = i + 1; j < c->n_rooms; j++)
				check(c->rooms[i].id != c->rooms[j].id ||
				      c->rooms[i].platform != c->rooms[j].platform);
	/* [bilibili]: the same rules for its servers; base URLs without a trailing '/'. */
	const struct conf_bilibili *b = &c->bili;
	check(b->n_servers <= CONF_MAX_SERVERS);
	for (size_t i = 0; i < b->n_servers; i++)
		check(b->servers[i] && !strpbrk(b->servers[i], " \t\r\n"));
	const char *bases[] = {b->api, b->live_api};
	for (size_t i = 0; i < 2; i++) {
		const char *u = bases[i];
		if (!u)
			continue;
		check(strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0);
		check(u[strlen(u) - 1] != '/' && !strpbrk(u, " ?#@"));
	}
	check(b->transport >= -1 && b->transport <= 2);
	check(b->protover == -1 || b->protover == 2 || b->protover == 3);
	/* [postgresql], [cluster]: no cluster without a url in the file. */
	const struct conf_postgresql *pg = &c->pg;
	check(!pg->url || conf_pg_url_check(pg->url, strlen(pg->url)) == NULL);
	check(!pg->password_file || pg->password_file[0]);
	check(pg->keep_local_days >= -1 && pg->keep_local_days <= 36500);
	check(!pg->node || conf_node_valid(pg->node, strlen(pg->node)));
	check(pg->mode >= -1 && pg->mode <= CONF_CLUSTER_SHARD);
	check(pg->lease_s == -1 || (pg->lease_s >= 3 && pg->lease_s <= 3600));
	check(pg->max_rooms == -1 || (pg->max_rooms >= 1 && pg->max_rooms <= CONF_MAX_ROOMS));
	check(pg->url || (!pg->node && pg->mode == -1 && pg->lease_s == -1 && pg->max_rooms == -1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf c, init;
	conf_init(&init);
	conf_init(&c);
	char err[512];
	memset(err, 'x', sizeof(err));
	int rc = conf_parse(&c, FILE_NAME, (const char *)data, size, err, sizeof(err));
	check(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
	check(memchr(err, '\0', sizeof(err)) != NULL);
	if (rc == 0) {
		check_success(&c);
	} else {
		check(memcmp(&c, &init, sizeof(c)) == 0);
		check(strncmp(err, FILE_NAME ":", strlen(FILE_NAME ":")) == 0);
		const char *p = err + strlen(FILE_NAME ":");
		check(*p >= '1' && *p <= '9');
		while (*p >= '0' && *p <= '9')
			p++;
		check(p[0] == ':' && p[1] == ' ' && p[2] != '\0');
		/* A password in a postgres:// URL never reaches the message (no fixed text of
		 * a message holds an '@'). */
		const char *u = strstr(err, "postgres://");
		check(!u || !strchr(u, '@'));
		u = strstr(err, "postgresql://");
		check(!u || !strchr(u, '@'));
	}
	conf_finish(&c);
	check(memcmp(&c, &init, sizeof(c)) == 0);

	/* Same input, tiny error buffer: same outcome, message cut to fit. */
	char small[16];
	size_t small_len = 1 + size % sizeof(small);
	int rc2 = conf_parse(&c, FILE_NAME, (const char *)data, size, small, small_len);
	check(rc2 == rc);
	if (rc < 0) {
		check(strlen(small) < small_len);
		check(strncmp(small, err, strlen(small)) == 0);
	}
	conf_finish(&c);
	return 0;
}
