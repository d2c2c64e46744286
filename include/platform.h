/*
 * platform: what the room state machine needs from a live-chat platform, and nothing more.
 *
 * A platform builds its login / heartbeat / logout packets, splits the byte stream that the
 * transport delivers into messages, and turns each into a record. Today: Douyu. A second
 * platform is a second `struct platform`, not a branch in room.c.
 */
#ifndef DANMAKUD_PLATFORM_H
#define DANMAKUD_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "record.h"

struct platform_events {
	/* Login accepted and the room's chat group joined. */
	void (*on_joined)(void *user_data);
	/* One message of this room, ready to store (strings borrowed for the call). */
	void (*on_record)(void *user_data, const struct record *rec);
	/* A message the platform counts but does not store (e.g. another room's chat). */
	void (*on_foreign)(void *user_data, const char *type);
	/* The server reported an error (Douyu `error` message) that ends the connection; text
	 * is its meaning in words, "" when the platform does not know it. */
	void (*on_server_error)(void *user_data, int64_t code, const char *text);
	/* n well-framed packets were skipped (bad type, no NUL, NUL inside, too many fields);
	 * why (static text) tells the last one's reason. The connection goes on. */
	void (*on_skipped)(void *user_data, uint64_t n, const char *why);
};

struct platform_session;

struct platform {
	/* Default server URLs, NULL-terminated. */
	const char *const *default_servers;
	/*
	 * Create per-connection protocol state. ev and user_data must outlive the session.
	 * Returns 0 or -ENOMEM.
	 */
	int (*session_create)(int64_t room_id, const struct platform_events *ev, void *user_data,
			      struct platform_session **out);
	void (*session_destroy)(struct platform_session *s); /* accepts NULL */
	/* Bytes to send once the transport is open (login). Returns 0 or -ENOMEM. */
	int (*hello)(struct platform_session *s, struct buf *out);
	/*
	 * Stream bytes from the server. Events fire during the call; replies (e.g. joingroup
	 * after the login answer) are appended to out. Returns the number of complete packets
	 * the bytes finished (>= 0: the room's proof that the server is alive, which raw bytes or
	 * transport pings are not), -ENOMEM, or -EPROTO (framing broken beyond repair: close the
	 * connection).
	 */
	int (*feed)(struct platform_session *s, int64_t now_ms, int64_t session_id,
		    const uint8_t *data, size_t len, struct buf *out);
	int (*heartbeat)(struct platform_session *s, struct buf *out);
	int (*goodbye)(struct platform_session *s, struct buf *out);
};

extern const struct platform douyu_platform;

#endif
