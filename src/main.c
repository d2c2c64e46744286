/*
 * main: command line and config file -> rec_options -> rec_create -> uv_run -> teardown.
 * Exit codes: 0 clean stop, 1 runtime failure, 2 usage or config error. Command-line flags
 * override the file, and rooms given on the command line are always recorded. The same
 * merge runs again on SIGHUP (on_reload, called by the recorder): the file is re-read then
 * with a plain fopen/fread, which does block the loop, but for a small local file once per
 * reload; libuv's uv_fs_* would need its thread pool, which this process does not use.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cli.h"
#include "conf.h"
#include "export.h"
#include "log.h"
#include "platform.h"
#include "rec.h"
#include "server.h"

#ifndef DANMAKUD_VERSION
#define DANMAKUD_VERSION "0.1.0"
#endif

#define CONF_MAX_BYTES (16 << 20)
/* A password file holds one line; anything larger is not one. */
#define PG_PASSWORD_FILE_MAX 4096

/* Read and parse the file. Returns 0, or -1 with the reason ("FILE:LINE: ...") in err. */
static int read_config(const char *path, struct conf *c, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	char *text = malloc(CONF_MAX_BYTES + 1);
	size_t len = text ? fread(text, 1, CONF_MAX_BYTES + 1, f) : 0;
	int bad = !text || ferror(f);
	fclose(f);
	if (bad || len > CONF_MAX_BYTES) {
		snprintf(err, errlen, "%s: %s", path, bad ? "cannot read" : "larger than 16 MiB");
		free(text);
		return -1;
	}
	int rc = conf_parse(c, path, text, len, err, errlen);
	free(text);
	return rc < 0 ? -1 : 0;
}

/* A parsed file plus what rec_options points into besides it: the merged room list, the node
 * name taken from the host name, the PostgreSQL password read from password_file. */
struct settings {
	struct conf conf;
	struct conf_room *rooms;
	char node[CONF_NODE_MAX + 1]; /* "" unless the host name names the node */
	char *pg_password;            /* NULL: none read; secret */
};

static void settings_finish(struct settings *s)
{
	free(s->rooms);
	s->rooms = NULL;
	s->node[0] = '\0';
	if (s->pg_password)
		memset(s->pg_password, 0, strlen(s->pg_password));
	free(s->pg_password);
	s->pg_password = NULL;
	conf_finish(&s->conf);
}

/*
 * [postgresql] password_file: the password is its first line (a trailing CR dropped). Refused
 * unless only its owner can read it, as the Bilibili cookie_file is; its content never
 * reaches a message. Returns 0 with a heap string in *out, or -1 with a reason in err.
 */
static int read_password(const char *path, char **out, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, errlen, "password_file %s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	char *text = NULL;
	ssize_t len = -1;
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "password_file %s: %s", path, strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "password_file %s: not a regular file", path);
	} else if (st.st_mode & 077) {
		snprintf(err, errlen,
			 "password_file %s: mode %04o lets other users read a password; refused "
			 "(chmod 600 %s)",
			 path, (unsigned)(st.st_mode & 07777), path);
	} else if (st.st_size > PG_PASSWORD_FILE_MAX) {
		snprintf(err, errlen, "password_file %s: larger than %d bytes", path,
			 PG_PASSWORD_FILE_MAX);
	} else if (!(text = calloc(1, (size_t)st.st_size + 1))) {
		snprintf(err, errlen, "out of memory");
	} else if ((len = read(fd, text, (size_t)st.st_size)) < 0) {
		snprintf(err, errlen, "password_file %s: %s", path, strerror(errno));
	}
	close(fd);
	if (len < 0) {
		free(text);
		return -1;
	}
	size_t n = 0;
	while (n < (size_t)len && text[n] != '\n')
		n++;
	if (n > 0 && text[n - 1] == '\r')
		n--;
	bool bad = n == 0;
	for (size_t i = 0; i < n && !bad; i++)
		bad = ((unsigned char)text[i] < 0x20 && text[i] != '\t') || text[i] == 0x7f;
	if (bad) {
		memset(text, 0, (size_t)len);
		free(text);
		snprintf(err, errlen,
			 "password_file %s: expected the password on the first line (not empty, no "
			 "control characters)",
			 path);
		return -1;
	}
	memset(text + n, 0, (size_t)len - n); /* the rest of the file is no one's business */
	*out = text;
	return 0;
}

/*
 * The effective options: command line over file over defaults. Rooms: the file's (with
 * labels), then the command line's (the recorder records an id once). Server URLs are checked
 * here so that a bad one is a configuration error (exit 2, or a refused reload).
 * Returns 0, or -1 with a reason in err.
 */
static int build_options(const struct cli_opts *cli, struct settings *s, struct rec_options *opt,
			 char *err, size_t errlen)
{
	const struct conf *conf = &s->conf;
	size_t n_rooms = conf->n_rooms + cli->n_rooms;
	if (n_rooms > CONF_MAX_ROOMS) { /* each within the bound, together over it */
		snprintf(err, errlen, CONF_TOO_MANY_ROOMS, CONF_MAX_ROOMS);
		return -1;
	}
	s->rooms = calloc(n_rooms ? n_rooms : 1, sizeof(*s->rooms));
	if (!s->rooms) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < conf->n_rooms; i++)
		s->rooms[i] = conf->rooms[i];
	for (size_t i = 0; i < cli->n_rooms; i++)
		s->rooms[conf->n_rooms + i] = cli->rooms[i];

	*opt = (struct rec_options){
		.db_path = cli->db ? cli->db : conf->database ? conf->database : "danmaku.db",
		.servers = cli->n_servers ? cli->servers : (const char *const *)conf->servers,
		.n_servers = cli->n_servers ? cli->n_servers : conf->n_servers,
		.ca_file = cli->ca_file,
		.insecure = cli->insecure,
		.flush_ms = (unsigned)(cli->flush_ms > 0 ? cli->flush_ms
				       : conf->flush_ms > 0 ? conf->flush_ms
							    : 250),
		.conf = conf,
		.heartbeat_s = (unsigned)(cli->heartbeat_s > 0 ? cli->heartbeat_s
					  : conf->heartbeat_s > 0 ? conf->heartbeat_s
								  : 45),
		.rooms = s->rooms,
		.n_rooms = n_rooms,
		.metrics_file = conf->metrics_file,
		.metrics_interval_s =
			(unsigned)(conf->metrics_interval_s > 0 ? conf->metrics_interval_s : 15),
		.stats_interval_s =
			(unsigned)(conf->stats_interval_s >= 0 ? conf->stats_interval_s : 60),
		.max_queue_mb = (unsigned)(conf->max_queue_mb > 0 ? conf->max_queue_mb : 0),
		.fts = conf->fts < 0 ? STORE_FTS_KEEP : conf->fts ? STORE_FTS_ON : STORE_FTS_OFF,
	};
	for (size_t i = 0; i < opt->n_servers; i++) {
		struct server srv;
		if (server_parse(opt->servers[i], &srv, err, errlen) < 0)
			return -1;
	}

	/* PostgreSQL and the cluster: nothing of it without a url. */
	const struct conf_postgresql *pg = &conf->pg;
	opt->pg_url = cli->postgresql ? cli->postgresql : pg->url;
	opt->keep_local_days = pg->keep_local_days >= 0 ? pg->keep_local_days : -1;
	opt->cluster_mode = pg->mode >= 0 ? pg->mode : CONF_CLUSTER_MIRROR;
	opt->lease_s = (unsigned)(pg->lease_s > 0 ? pg->lease_s : 30);
	opt->max_rooms = (unsigned)(pg->max_rooms > 0 ? pg->max_rooms : 0);
	opt->node = cli->node ? cli->node : pg->node;
	if (!opt->node) {
		/* The host name, made valid: it need not follow the node name's rules. */
		char host[256];
		if (gethostname(host, sizeof(host)) == 0) {
			host[sizeof(host) - 1] = '\0';
			conf_node_from_host(host, s->node);
		}
		if (s->node[0]) {
			opt->node = s->node;
		} else if (opt->pg_url) {
			snprintf(err, errlen, "no node name: the host name is unknown; set "
					      "[cluster] node or --node");
			return -1;
		}
	}
	if (opt->pg_url && pg->password_file &&
	    read_password(pg->password_file, &s->pg_password, err, errlen) < 0)
		return -1;
	opt->pg_password = s->pg_password;
	return 0;
}

struct app {
	const struct cli_opts *cli;
	struct settings reloaded; /* what the last reload's options point into */
};

/* rec_options.reload: re-read the -c file and merge it with the command line again. A file
 * with any error, or one that leaves no room to record, is refused whole. */
static int on_reload(void *ctx, struct rec_options *out, char *err, size_t errlen)
{
	struct app *app = ctx;
	settings_finish(&app->reloaded); /* the recorder keeps no pointer into it */
	if (read_config(app->cli->config, &app->reloaded.conf, err, errlen) < 0 ||
	    build_options(app->cli, &app->reloaded, out, err, errlen) < 0)
		goto fail;
	if (out->n_rooms == 0) {
		snprintf(err, errlen, "%s: no rooms to record", app->cli->config);
		goto fail;
	}
	log_debug("reload: %s read, %zu rooms", app->cli->config, out->n_rooms);
	return 0;

fail:
	settings_finish(&app->reloaded);
	return -EINVAL;
}

/* Errors before the loop runs: a plain "danmakud: ..." line on a terminal, an error-priority
 * line under journald. */
static void report(const char *msg)
{
	if (log_to_journal())
		log_err("%s", msg);
	else
		fprintf(stderr, "danmakud: %s\n", msg);
}

static void on_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	log_err("leaked handle: %s", uv_handle_type_name(h->type));
}

int main(int argc, char **argv)
{
	/* The database, its WAL and exports hold what people wrote in chat rooms, attributed to
	 * them: no access for others, unless the user's own umask is stricter still. */
	mode_t old_mask = umask(027);
	umask(old_mask | 027);
	/* Commands on an existing database (export.h) have their own options. */
	if (argc > 1 && strcmp(argv[1], "export") == 0)
		return export_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "fts") == 0)
		return export_fts_main(argc - 1, argv + 1);
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
	struct settings start = {.rooms = NULL};
	conf_init(&start.conf);
	struct app app = {.cli = &cli};
	conf_init(&app.reloaded.conf);
	if (cli.config && read_config(cli.config, &start.conf, err, sizeof(err)) < 0) {
		report(err);
		goto out;
	}
	struct rec_options opt;
	if (build_options(&cli, &start, &opt, err, sizeof(err)) < 0) {
		report(err);
		goto out;
	}
	if (cli.config) {
		opt.reload = on_reload;
		opt.reload_ctx = &app;
	}
	if (cli.action == CLI_CHECK_CONFIG) {
		/* What a platform would refuse at start (a cookie file others can read). */
		for (size_t i = 0; platforms[i]; i++) {
			if (platforms[i]->check_conf &&
			    platforms[i]->check_conf(&start.conf, err, sizeof(err)) < 0) {
				report(err);
				goto out;
			}
		}
		printf("configuration ok: %zu rooms, database %s, metrics file %s\n", opt.n_rooms,
		       opt.db_path, opt.metrics_file ? opt.metrics_file : "(none)");
		/* Never the URL: it may hold a password. */
		if (opt.pg_url && opt.cluster_mode == CONF_CLUSTER_SHARD) {
			char most[24] = "no limit";
			if (opt.max_rooms)
				snprintf(most, sizeof(most), "%u", opt.max_rooms);
			printf("postgresql: yes (node %s, mode shard, lease_s %u, max_rooms %s)\n",
			       opt.node, opt.lease_s, most);
		} else if (opt.pg_url) {
			printf("postgresql: yes (node %s, mode mirror)\n", opt.node);
		}
		code = 0;
		goto out;
	}
	if (opt.n_rooms == 0) {
		report("no rooms to record: give room ids or a config with [rooms]");
		if (!log_to_journal())
			fputs("Try 'danmakud --help'.\n", stderr);
		goto out;
	}

	/* A peer closing while we write must be an error code, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	/* One socket per room. The limit is the service manager's or the shell's to set
	 * (LimitNOFILE=, ulimit -n): raising it here would need setrlimit, which the unit's
	 * SystemCallFilter=~@resources forbids. */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && opt.n_rooms + 64 > nofile.rlim_cur)
		log_warn("%zu rooms but only %llu file descriptors allowed; raise LimitNOFILE= "
			 "(or ulimit -n)",
			 opt.n_rooms, (unsigned long long)nofile.rlim_cur);
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
	settings_finish(&app.reloaded);
	settings_finish(&start);
	cli_finish(&cli);
	return code;
}
