/*
 * fuzz_cli: libFuzzer target for the command line. The input is split on NUL bytes into
 * arguments (argv[0] is "danmakud"), given to cli_parse(), then released with cli_finish();
 * the parse runs twice to show that getopt's state is reset between calls. (The config file
 * those arguments may name is fuzz_conf's subject.) The promises of cli.h are checked with
 * __builtin_trap(): a failure says why and holds no rooms; a success holds only values inside
 * their documented bounds, and one room per argument left after the options.
 */
#include "cli.h"
#include "fuzz.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

#define MAX_ARGS 4096

/* Pointers into argv's strings must stay inside them. */
static bool points_into(const char *p, char *const *argv, int argc)
{
	for (int i = 0; i < argc; i++)
		if (p >= argv[i] && p <= argv[i] + strlen(argv[i]))
			return true;
	return false;
}

static int parse_once(char *copy, size_t size, struct cli_opts *o, char *err, size_t errlen,
		      int *argc_out, char ***argv_out)
{
	static char *argv[MAX_ARGS + 2];
	static char name[] = "danmakud";
	int argc = 0;
	argv[argc++] = name;
	for (size_t i = 0; i < size && argc <= MAX_ARGS;) {
		argv[argc++] = copy + i;
		i += strlen(copy + i) + 1;
	}
	argv[argc] = NULL;
	*argc_out = argc;
	*argv_out = argv;
	err[0] = '\0';
	return cli_parse(argc, argv, o, err, errlen);
}

static void check_result(int rc, const struct cli_opts *o, const char *err, int argc,
			 char *const *argv)
{
	if (rc != 0) {
		check(rc == -EINVAL || rc == -ENOMEM);
		check(err[0] != '\0');
		check(o->rooms == NULL && o->n_rooms == 0);
		return;
	}
	check(o->action == CLI_RUN || o->action == CLI_HELP || o->action == CLI_VERSION ||
	      o->action == CLI_CHECK_CONFIG);
	check(o->flush_ms == -1 || (o->flush_ms >= 10 && o->flush_ms <= 60000));
	check(o->heartbeat_s == -1 || (o->heartbeat_s >= 1 && o->heartbeat_s <= 3600));
	check(o->verbosity >= -1 && o->verbosity <= 1);
	check(o->n_servers <= CLI_MAX_SERVERS);
	for (size_t i = 0; i < o->n_servers; i++)
		check(o->servers[i] && points_into(o->servers[i], argv, argc));
	check(!o->config || points_into(o->config, argv, argc));
	check(!o->db || points_into(o->db, argv, argc));
	check(!o->ca_file || points_into(o->ca_file, argv, argc));
	check(!o->postgresql || (points_into(o->postgresql, argv, argc) &&
				 !conf_pg_url_check(o->postgresql, strlen(o->postgresql))));
	check(!o->node || (points_into(o->node, argv, argc) &&
			   conf_node_valid(o->node, strlen(o->node))));
	check(o->n_rooms <= CONF_MAX_ROOMS && (o->n_rooms == 0) == (o->rooms == NULL));
	check(o->n_rooms < (size_t)argc);
	for (size_t i = 0; i < o->n_rooms; i++)
		check(o->rooms[i].id >= 1 && o->rooms[i].id <= CONF_MAX_ROOM_ID &&
		      o->rooms[i].platform && !o->rooms[i].label);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	/* NUL-terminated copies: getopt may permute argv, never the strings. */
	char *copy = malloc(size + 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	char *copy2 = malloc(size + 1);
	if (!copy2) {
		free(copy);
		return 0;
	}
	memcpy(copy2, copy, size + 1);

	struct cli_opts o, o2;
	char err[256], err2[256];
	int argc, argc2;
	char **argv, **argv2;
	int rc = parse_once(copy, size, &o, err, sizeof(err), &argc, &argv);
	check_result(rc, &o, err, argc, argv);
	size_t n_rooms = o.n_rooms;
	int64_t first = n_rooms ? o.rooms[0].id : 0;
	cli_finish(&o);
	check(o.rooms == NULL && o.n_rooms == 0);

	/* The same arguments again, in fresh strings: the same outcome. */
	int rc2 = parse_once(copy2, size, &o2, err2, sizeof(err2), &argc2, &argv2);
	check_result(rc2, &o2, err2, argc2, argv2);
	check(rc2 == rc && o2.n_rooms == n_rooms && (!n_rooms || o2.rooms[0].id == first));
	check(rc == 0 || strcmp(err, err2) == 0);
	cli_finish(&o2);
	free(copy);
	free(copy2);
	return 0;
}
