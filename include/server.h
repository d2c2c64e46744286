/*
 * server: one chat server URL (wss://, ws://, tcp://), parsed once and checked the same way
 * wherever a URL enters: the command line, the config file, the platform defaults.
 */
#ifndef DANMAKUD_SERVER_H
#define DANMAKUD_SERVER_H

#include <stddef.h>
#include <stdint.h>

enum server_scheme { SERVER_WSS, SERVER_WS, SERVER_TCP };

struct server {
	enum server_scheme scheme;
	uint16_t port;
	char host[256];      /* without brackets */
	char path[256];      /* "/" by default (websocket only) */
	char host_header[272];
	char url[600];       /* as given, normalised; goes into sessions.server */
};

/* Parse wss://host[:port][/path], ws://..., tcp://host:port. IPv6 literals in brackets.
 * Returns 0 or -EINVAL with a reason in err. */
int server_parse(const char *url, struct server *out, char *err, size_t errlen);

#endif
