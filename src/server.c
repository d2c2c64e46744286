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

#define FAIL(why)                                                                                  \
	do {                                                                                       \
		char q_[TEXT_QUOTE_CAP];                                                                      \
		snprintf(err, errlen, "server '%s': %s", text_quote(q_, sizeof(q_), url, strlen(url)), why);         \
		return -EINVAL;                                                                    \
	} while (0)

/* Bytes that never belong in a host or path: controls, space, DEL. */
static bool has_ctl(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return true;
	return false;
}

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
		FAIL("expected wss://, ws:// or tcp://");
	}
	const char *host = p, *host_end;
	if (*p == '[') {
		host = p + 1;
		host_end = strchr(host, ']');
		if (!host_end) {
			FAIL("unclosed [ in host");
		}
		p = host_end + 1;
	} else {
		host_end = p + strcspn(p, ":/?#@[]");
		p = host_end;
	}
	size_t hl = (size_t)(host_end - host);
	if (hl == 0 || hl >= sizeof(out->host))
		FAIL("missing or too long host");
	if (has_ctl(host, hl))
		FAIL("control character or space in host");
	if (*p && *p != ':' && *p != '/')
		FAIL("expected ':port' or '/path' after the host");
	memcpy(out->host, host, hl);
	bool explicit_port = false;
	if (*p == ':') {
		const char *end = p + 1;
		while (*end >= '0' && *end <= '9')
			end++;
		int64_t port;
		if (!text_int(p + 1, (size_t)(end - p - 1), 1, 65535, &port))
			FAIL("bad port");
		out->port = (uint16_t)port;
		explicit_port = true;
		p = end;
	}
	if (out->port == 0)
		FAIL("tcp:// needs a port");
	if (*p && *p != '/')
		FAIL("expected ':port' or '/path' after the host");
	const char *path = *p ? p : "/";
	if (strlen(path) >= sizeof(out->path) || has_ctl(path, strlen(path)))
		FAIL("path too long or holds a control character or space");
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
