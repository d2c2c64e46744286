/*
 * cli: argv -> struct cli_opts (getopt_long). No I/O beyond what the caller prints.
 */
#ifndef DANMAKUD_CLI_H
#define DANMAKUD_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"

#define CLI_MAX_SERVERS 64

enum cli_action { CLI_RUN, CLI_HELP, CLI_VERSION, CLI_CHECK_CONFIG };

struct cli_opts {
	enum cli_action action;
	const char *config;
	const char *db;
	const char *servers[CLI_MAX_SERVERS];
	size_t n_servers;
	const char *ca_file;
	bool insecure;
	int flush_ms;    /* -1: not given */
	int heartbeat_s; /* -1: not given */
	const char *postgresql; /* --postgresql URL (over [postgresql] url); NULL: not given */
	const char *node;       /* --node NAME (over [cluster] node); NULL: not given */
	int verbosity;   /* -1 quiet, 0 default, 1 verbose */
	struct conf_room *rooms; /* heap, owned (labels NULL): free with cli_finish */
	size_t n_rooms;
};

/* Returns 0, or -EINVAL with a message for the user in err (more than CONF_MAX_ROOMS room ids
 * is one), or -ENOMEM. */
int cli_parse(int argc, char **argv, struct cli_opts *o, char *err, size_t errlen);
void cli_finish(struct cli_opts *o);
extern const char cli_usage[];

#endif
