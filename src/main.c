/*
 * main: command line and config file -> rec_options -> rec_create -> uv_run -> teardown.
 * Exit codes: 0 clean stop, 1 runtime failure, 2 usage or config error.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cli.h"
#include "conf.h"
#include "log.h"
#include "rec.h"

#ifndef DANMAKUD_VERSION
#define DANMAKUD_VERSION "0.1.0"
#endif

#define CONF_MAX_BYTES (16 << 20)

static int read_config(const char *path, struct conf *c)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "danmakud: %s: %s\n", path, strerror(errno));
		return -1;
	}
	char *text = malloc(CONF_MAX_BYTES + 1);
	size_t len = text ? fread(text, 1, CONF_MAX_BYTES + 1, f) : 0;
	int bad = !text || ferror(f);
	fclose(f);
	if (bad || len > CONF_MAX_BYTES) {
		fprintf(stderr, "danmakud: %s: %s\n", path,
			bad ? "cannot read" : "larger than 16 MiB");
		free(text);
		return -1;
	}
	char err[512];
	int rc = conf_parse(c, path, text, len, err, sizeof(err));
	free(text);
	if (rc < 0) {
		fprintf(stderr, "danmakud: %s\n", err);
		return -1;
	}
	return 0;
}

static void on_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	log_err("leaked handle: %s", uv_handle_type_name(h->type));
}

int main(int argc, char **argv)
{
	struct cli_opts cli;
	char err[512];
	if (cli_parse(argc, argv, &cli, err, sizeof(err)) < 0) {
		fprintf(stderr, "danmakud: %s\nTry 'danmakud --help'.\n", err);
		return 2;
	}
	if (cli.action == CLI_HELP) {
		fputs(cli_usage, stdout);
		return 0;
	}
	if (cli.action == CLI_VERSION) {
		printf("danmakud %s\n", DANMAKUD_VERSION);
		return 0;
	}
	log_init(cli.verbosity > 0 ? LOG_LEVEL_DEBUG
		 : cli.verbosity < 0 ? LOG_LEVEL_WARN
				     : LOG_LEVEL_INFO);

	int code = 2;
	struct conf conf;
	conf_init(&conf);
	struct conf_room *rooms = NULL;
	if (cli.config && read_config(cli.config, &conf) < 0)
		goto out;

	/* Rooms: the config's (with labels), then the command line's. */
	size_t n_rooms = conf.n_rooms + cli.n_rooms;
	rooms = calloc(n_rooms ? n_rooms : 1, sizeof(*rooms));
	if (!rooms) {
		code = 1;
		goto out;
	}
	for (size_t i = 0; i < conf.n_rooms; i++)
		rooms[i] = conf.rooms[i];
	for (size_t i = 0; i < cli.n_rooms; i++)
		rooms[conf.n_rooms + i].id = cli.rooms[i];

	struct rec_options opt = {
		.db_path = cli.db ? cli.db : conf.database ? conf.database : "danmaku.db",
		.servers = cli.n_servers ? cli.servers : (const char *const *)conf.servers,
		.n_servers = cli.n_servers ? cli.n_servers : conf.n_servers,
		.ca_file = cli.ca_file,
		.insecure = cli.insecure,
		.flush_ms = (unsigned)(cli.flush_ms > 0 ? cli.flush_ms
				       : conf.flush_ms > 0 ? conf.flush_ms
							   : 250),
		.heartbeat_s = (unsigned)(cli.heartbeat_s > 0 ? cli.heartbeat_s
					  : conf.heartbeat_s > 0 ? conf.heartbeat_s
								 : 45),
		.rooms = rooms,
		.n_rooms = n_rooms,
	};
	/* Server URLs are usage errors (exit 2) when malformed, wherever they came from. */
	for (size_t i = 0; i < opt.n_servers; i++) {
		struct server srv;
		if (server_parse(opt.servers[i], &srv, err, sizeof(err)) < 0) {
			fprintf(stderr, "danmakud: %s\n", err);
			goto out;
		}
	}
	if (cli.action == CLI_CHECK_CONFIG) {
		printf("configuration ok: %zu rooms, database %s\n", n_rooms, opt.db_path);
		code = 0;
		goto out;
	}
	if (n_rooms == 0) {
		fprintf(stderr, "danmakud: no rooms to record: give room ids or a config with "
				"[rooms]\nTry 'danmakud --help'.\n");
		goto out;
	}

	/* A peer closing while we write must be an error code, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	uv_loop_t loop;
	if (uv_loop_init(&loop) < 0) {
		code = 1;
		goto out;
	}
	struct rec *rec;
	if (rec_create(&loop, &opt, &rec) < 0) {
		code = 1;
	} else {
		uv_run(&loop, UV_RUN_DEFAULT);
		code = rec_destroy(rec);
	}
	if (uv_loop_close(&loop) != 0) {
		uv_walk(&loop, on_walk, NULL);
		code = 1;
	}
	if (code == 0)
		log_info("stopped cleanly");
out:
	free(rooms);
	conf_finish(&conf);
	cli_finish(&cli);
	return code;
}
