/*
 * cli: the command line of design.md §6, parsed with getopt_long into struct cli_opts.
 * Numbers are checked strictly (whole argument, range); the caller prints err and exits 2.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "platform.h"
#include "text.h"

const char cli_usage[] =
	"Usage: danmakud [OPTIONS] [ROOM...]\n"
	"Record the live chat of Douyu and Bilibili rooms into an SQLite database until stopped.\n"
	"A ROOM is douyu:ID, bilibili:ID (a short id such as bilibili:76 is resolved), or a bare\n"
	"ID for Douyu.\n"
	"\n"
	"  -c, --config FILE    settings and rooms (INI)\n"
	"  -d, --db FILE        database (default: danmaku.db in the current folder)\n"
	"  -s, --server URL     Douyu danmaku server instead of Douyu's (repeatable): wss://,\n"
	"                       ws://, tcp:// (Bilibili: [bilibili] in the config)\n"
	"      --ca-file FILE   trust the CA certificates in this PEM file (default: system bundle)\n"
	"      --insecure       do not verify certificates (logged as a warning)\n"
	"      --flush-ms N     commit interval in milliseconds (default 250)\n"
	"      --heartbeat-s N  Douyu heartbeat interval; silence for twice this reconnects\n"
	"                       (default 45; Bilibili: [bilibili] heartbeat_s, default 30)\n"
	"      --postgresql URL also ship every stored row to this PostgreSQL database\n"
	"                       (postgresql://... or key=value; over [postgresql] url)\n"
	"      --node NAME      this recorder's name there: 1..63 of A-Z a-z 0-9 . _ -\n"
	"                       (over [cluster] node; default: the host name)\n"
	"  -v, --verbose        more log output (debug)\n"
	"  -q, --quiet          warnings and errors only\n"
	"      --check-config   validate the configuration and exit\n"
	"  -V, --version        print the version and exit\n"
	"  -h, --help           print this help and exit\n"
	"\n"
	"On a recorded database (see 'danmakud export --help', 'danmakud fts --help'):\n"
	"  danmakud export --db FILE --room ID [--from T] [--to T] --format xml|ndjson [-o OUT]\n"
	"  danmakud fts --db FILE [on|off|status]\n"
	"\n"
	"Exit status: 0 clean stop, 1 runtime failure, 2 usage or configuration error.\n";

enum {
	OPT_CA_FILE = 256,
	OPT_INSECURE,
	OPT_FLUSH_MS,
	OPT_HEARTBEAT_S,
	OPT_CHECK_CONFIG,
	OPT_POSTGRESQL,
	OPT_NODE
};

static const struct option long_opts[] = {
	{"config", required_argument, NULL, 'c'},
	{"db", required_argument, NULL, 'd'},
	{"server", required_argument, NULL, 's'},
	{"ca-file", required_argument, NULL, OPT_CA_FILE},
	{"insecure", no_argument, NULL, OPT_INSECURE},
	{"flush-ms", required_argument, NULL, OPT_FLUSH_MS},
	{"heartbeat-s", required_argument, NULL, OPT_HEARTBEAT_S},
	{"postgresql", required_argument, NULL, OPT_POSTGRESQL},
	{"node", required_argument, NULL, OPT_NODE},
	{"verbose", no_argument, NULL, 'v'},
	{"quiet", no_argument, NULL, 'q'},
	{"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
	{"version", no_argument, NULL, 'V'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};


int cli_parse(int argc, char **argv, struct cli_opts *o, char *err, size_t errlen)
{
	memset(o, 0, sizeof(*o));
	o->flush_ms = -1;
	o->heartbeat_s = -1;
	opterr = 0;
	/* 0, not 1: glibc then resets all of getopt's state, including the position inside a
	 * cluster of short options that an earlier parse may have stopped in. */
	optind = 0;
	int c;
	int64_t v;
	while ((c = getopt_long(argc, argv, ":c:d:s:vqVh", long_opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'd':
			o->db = optarg;
			break;
		case 's':
			if (o->n_servers == CLI_MAX_SERVERS) {
				snprintf(err, errlen, "too many --server options (max %d)",
					 CLI_MAX_SERVERS);
				return -EINVAL;
			}
			o->servers[o->n_servers++] = optarg;
			break;
		case OPT_CA_FILE:
			o->ca_file = optarg;
			break;
		case OPT_INSECURE:
			o->insecure = true;
			break;
		case OPT_FLUSH_MS:
			if (!text_int_str(optarg, 10, 60000, &v)) {
				snprintf(err, errlen, "--flush-ms: expected 10..60000, got '%s'", optarg);
				return -EINVAL;
			}
			o->flush_ms = (int)v;
			break;
		case OPT_HEARTBEAT_S:
			if (!text_int_str(optarg, 1, 3600, &v)) {
				snprintf(err, errlen, "--heartbeat-s: expected 1..3600, got '%s'",
					 optarg);
				return -EINVAL;
			}
			o->heartbeat_s = (int)v;
			break;
		case OPT_POSTGRESQL: {
			/* The form only, as for [postgresql] url; libpq checks the rest when it
			 * connects. The URL may hold a password: no message shows it. */
			const char *why = conf_pg_url_check(optarg, strlen(optarg));
			if (why) {
				snprintf(err, errlen,
					 "--postgresql: %s (the value is not shown: it may hold a "
					 "password)",
					 why);
				return -EINVAL;
			}
			o->postgresql = optarg;
			break;
		}
		case OPT_NODE:
			if (!conf_node_valid(optarg, strlen(optarg))) {
				char q[TEXT_QUOTE_CAP];
				snprintf(err, errlen,
					 "--node: expected 1 to %d of A-Z a-z 0-9 . _ -, got '%s'",
					 CONF_NODE_MAX, text_quote(q, sizeof(q), optarg, strlen(optarg)));
				return -EINVAL;
			}
			o->node = optarg;
			break;
		case 'v':
			o->verbosity = 1;
			break;
		case 'q':
			o->verbosity = -1;
			break;
		case OPT_CHECK_CONFIG:
			o->action = CLI_CHECK_CONFIG;
			break;
		case 'V':
			o->action = CLI_VERSION;
			return 0;
		case 'h':
			o->action = CLI_HELP;
			return 0;
		case ':':
			/* A long option is the argument before optind; a short one may sit
			 * inside a cluster (-vd), so name its letter. */
			if (strncmp(argv[optind - 1], "--", 2) == 0)
				snprintf(err, errlen, "option '%s' needs a value", argv[optind - 1]);
			else
				snprintf(err, errlen, "option '-%c' needs a value", optopt);
			return -EINVAL;
		default:
			if (optopt > 0 && optopt < 256)
				snprintf(err, errlen, "unknown option '-%c'", optopt);
			else
				snprintf(err, errlen, "unknown option '%s'", argv[optind - 1]);
			return -EINVAL;
		}
	}
	size_t n = (size_t)(argc - optind);
	if (n > CONF_MAX_ROOMS) {
		snprintf(err, errlen, CONF_TOO_MANY_ROOMS, CONF_MAX_ROOMS);
		return -EINVAL;
	}
	if (n) {
		o->rooms = calloc(n, sizeof(*o->rooms));
		if (!o->rooms) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
	}
	for (int i = optind; i < argc; i++) {
		struct conf_room *r = &o->rooms[o->n_rooms];
		int rc = platform_parse_room(argv[i], strlen(argv[i]), &r->platform, &r->id);
		if (rc < 0) {
			char q[TEXT_QUOTE_CAP];
			text_quote(q, sizeof(q), argv[i], strlen(argv[i]));
			if (rc == -ENOENT)
				snprintf(err, errlen, "room '%s': unknown platform (expected %s)", q,
					 PLATFORM_NAMES);
			else
				snprintf(err, errlen,
					 "room must be douyu:ID, bilibili:ID or a positive number, "
					 "got '%s'",
					 q);
			cli_finish(o);
			return -EINVAL;
		}
		o->n_rooms++;
	}
	return 0;
}

void cli_finish(struct cli_opts *o)
{
	free(o->rooms);
	o->rooms = NULL;
	o->n_rooms = 0;
}
