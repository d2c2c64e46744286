/*
 * server: parse and normalise a chat server URL. Pure: no I/O.
 */
#include "server.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

int server_parse(const char *url, struct server *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	const char *p;
	if (strncmp(url, "wss://", 6) == 0) {
		out->scheme = SERVER_WSS;
		out->port = 443;
		p = url + 6;
	} else if (strncmp(url, "ws://", 5) == 0) {
		out->scheme = SERVER_WS;
		out->port = 80;
		p = url + 5;
	} else if (strncmp(url, "tcp://", 6) == 0) {
		out->scheme = SERVER_TCP;
		out->port = 0;
		p = url + 6;
	} else {
		snprintf(err, errlen, "server '%s': expected wss://, ws:// or tcp://", url);
		return -EINVAL;
	}
	const char *host = p, *host_end;
	if (*p == '[') {
		host = p + 1;
		host_end = strchr(host, ']');
		if (!host_end) {
			snprintf(err, errlen, "server '%s': unclosed [ in host", url);
			return -EINVAL;
		}
		p = host_end + 1;
	} else {
		host_end = p + strcspn(p, ":/?#");
		p = host_end;
	}
	size_t hl = (size_t)(host_end - host);
	if (hl == 0 || hl >= sizeof(out->host)) {
		snprintf(err, errlen, "server '%s': missing or too long host", url);
		return -EINVAL;
	}
	memcpy(out->host, host, hl);
	bool explicit_port = false;
	if (*p == ':') {
		const char *end = p + 1;
		while (*end >= '0' && *end <= '9')
			end++;
		int64_t port;
		if (!text_int(p + 1, (size_t)(end - p - 1), 1, 65535, &port)) {
			snprintf(err, errlen, "server '%s': bad port", url);
			return -EINVAL;
		}
		out->port = (uint16_t)port;
		explicit_port = true;
		p = end;
	}
	if (out->port == 0) {
		snprintf(err, errlen, "server '%s': tcp:// needs a port", url);
		return -EINVAL;
	}
	if (*p && *p != '/') {
		snprintf(err, errlen, "server '%s': unexpected '%c' after host", url, *p);
		return -EINVAL;
	}
	const char *path = *p ? p : "/";
	if (strlen(path) >= sizeof(out->path) || strpbrk(path, " \r\n")) {
		snprintf(err, errlen, "server '%s': bad path", url);
		return -EINVAL;
	}
	strcpy(out->path, path);
	bool v6 = strchr(out->host, ':') != NULL;
	const char *lb = v6 ? "[" : "", *rb = v6 ? "]" : "";
	if (explicit_port)
		snprintf(out->host_header, sizeof(out->host_header), "%s%s%s:%u", lb, out->host, rb,
			 out->port);
	else
		snprintf(out->host_header, sizeof(out->host_header), "%s%s%s", lb, out->host, rb);
	static const char *const names[] = {"wss", "ws", "tcp"};
	snprintf(out->url, sizeof(out->url), "%s://%s%s%s:%u%s", names[out->scheme], lb, out->host,
		 rb, out->port, out->scheme == SERVER_TCP ? "" : out->path);
	return 0;
}
