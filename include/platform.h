/*
 * platform: what the room state machine and the recorder need from a live-chat platform, and
 * nothing more. Douyu and Bilibili are two `struct platform`s, looked up by name
 * (platform_find); room.c names neither.
 *
 * A platform has a name (the `douyu:` / `bilibili:` prefix of a room, rooms.platform in the
 * database), default servers and a heartbeat interval. Before each connection an optional
 * asynchronous prepare step runs (Bilibili: HTTP calls for the real room id, buvid3, Wbi keys
 * and the signed getDanmuInfo that gives a token and the host list); its result names the
 * servers and the parameters of the session. The session builds the login / heartbeat /
 * logout packets, splits the byte stream the transport delivers into messages, and turns each
 * into records.
 */
#ifndef DANMAKUD_PLATFORM_H
#define DANMAKUD_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "record.h"

struct conf;
struct net_ctx;
struct server;
struct tls_config;

struct platform_events {
	/* Login accepted and the room's chat group joined. */
	void (*on_joined)(void *user_data);
	/* One message of this room, ready to store (strings borrowed for the call). */
	void (*on_record)(void *user_data, const struct record *rec);
	/* A message the platform counts but does not store (e.g. another room's chat). */
	void (*on_foreign)(void *user_data, const char *type);
	/* The server reported an error that ends the connection (Douyu `error`, Bilibili auth
	 * reply code != 0); text is its meaning in words, "" when the platform does not know it. */
	void (*on_server_error)(void *user_data, int64_t code, const char *text);
	/* n well-framed packets were skipped (bad type, no NUL, unusable batch, bad JSON);
	 * why (static text) tells the last one's reason. The connection goes on. */
	void (*on_skipped)(void *user_data, uint64_t n, const char *why);
};

/* What a platform's shared context may use: the recorder's, owned by it, outliving the
 * context. */
struct platform_env {
	uv_loop_t *loop;
	struct net_ctx *net;
	struct tls_config *tls; /* for https:// API calls; NULL when the platform needs none */
	const struct conf *conf; /* the platform's section (NULL: defaults); valid during
				  * ctx_create only */
};

/*
 * The outcome of a prepare step: where to connect and with what. Owned by whoever the
 * callback gives it to; freed with platform->prepared_free.
 */
struct platform_prepared {
	int64_t room_id;         /* the id to join and record under (Bilibili: the real id) */
	int64_t short_id;        /* the platform's short id of the room, 0 when it has none */
	struct server *servers;  /* where to connect, in order; NULL: the env's servers */
	size_t n_servers;
	void *params;            /* for session_create (token, buvid, uid ...) */
	char *headers;           /* extra websocket Upgrade header lines ("Name: value\r\n"...),
				  * NULL when none */
	uint64_t refresh_after_ms; /* > 0: the session is degraded (e.g. no token); end it after
				    * this long so that the next prepare can do better */
	char note[160];          /* a remark for the log ("getDanmuInfo -352: default host, no
				  * token"), "" when none; never a secret */
};

/* status 0: p is the caller's (free it with prepared_free); < 0: p is NULL and err says why
 * (the room backs off and prepares again). */
typedef void (*platform_prepared_cb)(void *user_data, int status, struct platform_prepared *p,
				     const char *err);

struct platform_ctx;
struct platform_prepare;
struct platform_session;

struct platform {
	const char *name; /* "douyu", "bilibili" */
	/* Default server URLs, NULL-terminated. */
	const char *const *default_servers;
	uint64_t heartbeat_ms; /* default heartbeat interval */

	/*
	 * Optional (NULL for a platform without a prepare step). One shared context per recorder:
	 * caches and rate limits shared by every room of the platform. Returns 0 or a negative
	 * errno with a reason in err (e.g. a cookie file with loose permissions).
	 */
	int (*ctx_create)(const struct platform_env *env, struct platform_ctx **out, char *err,
			  size_t errlen);
	/* What ctx_create would refuse in conf, checked without a loop (--check-config):
	 * 0, or -errno with the reason in err. Optional. */
	int (*check_conf)(const struct conf *conf, char *err, size_t errlen);
	/* Pending prepares must have been cancelled. Accepts NULL. */
	void (*ctx_destroy)(struct platform_ctx *ctx);
	/* The configuration changed (SIGHUP): take the new settings from conf (valid during
	 * the call only). Returns 0 or -errno with err (the old settings stay). */
	int (*ctx_reload)(struct platform_ctx *ctx, const struct conf *conf, char *err,
			  size_t errlen);
	/* A short state for STATUS= and the stats line ("412 circuit breaker open, 93 s left"),
	 * NULL when there is nothing to say. */
	const char *(*ctx_status)(struct platform_ctx *ctx);
	/*
	 * Start preparing a connection to room_id (as configured). cb runs later, from the loop,
	 * never during this call, exactly once unless prepare_cancel is called first. Returns 0
	 * or -ENOMEM.
	 */
	int (*prepare)(struct platform_ctx *ctx, int64_t room_id, platform_prepared_cb cb,
		       void *user_data, struct platform_prepare **out);
	/* cb will not run. Accepts NULL. */
	void (*prepare_cancel)(struct platform_prepare *p);
	void (*prepared_free)(struct platform_prepared *p); /* accepts NULL */

	/*
	 * Create per-connection protocol state for room_id (the prepared id). params is the
	 * prepared params (NULL when the platform has no prepare step); it outlives the
	 * session. ev and user_data must outlive the session. Returns 0 or -ENOMEM.
	 */
	int (*session_create)(int64_t room_id, const void *params, const struct platform_events *ev,
			      void *user_data, struct platform_session **out);
	void (*session_destroy)(struct platform_session *s); /* accepts NULL */
	/* Bytes to send once the transport is open (login). Returns 0 or -ENOMEM. */
	int (*hello)(struct platform_session *s, struct buf *out);
	/*
	 * Stream bytes from the server. Events fire during the call; replies (e.g. joingroup
	 * after the login answer, ACKs) are appended to out. Returns the number of complete
	 * packets the bytes finished (>= 0: the room's proof that the server is alive, which raw
	 * bytes or transport pings are not), -ENOMEM, or -EPROTO (framing broken beyond repair:
	 * close the connection).
	 */
	int (*feed)(struct platform_session *s, int64_t now_ms, int64_t session_id,
		    const uint8_t *data, size_t len, struct buf *out);
	int (*heartbeat)(struct platform_session *s, struct buf *out);
	int (*goodbye)(struct platform_session *s, struct buf *out);
};

extern const struct platform douyu_platform;
extern const struct platform bilibili_platform;

/* The platform called name (exactly n bytes of it), or NULL. */
const struct platform *platform_find(const char *name, size_t n);
/* Every platform, NULL-terminated; the first is the default of a bare room number. */
extern const struct platform *const platforms[];
#define PLATFORM_NAMES "douyu or bilibili"

/* p's position in platforms[] (the count of platforms when p is not there). */
size_t platform_index(const struct platform *p);
/* A room as logs and messages name it: "288016" for the default platform, "bilibili:76"
 * for the others (so older Douyu log lines read as they did). Returns dst. */
const char *platform_room_name(char *dst, size_t cap, const struct platform *p, int64_t id);

/*
 * A room as the user writes it: "douyu:288016", "bilibili:76", or a bare "288016" (Douyu).
 * The id is 1 .. 2^53. Returns 0, -ENOENT (the prefix names no platform) or -EINVAL.
 */
int platform_parse_room(const char *s, size_t n, const struct platform **p, int64_t *id);

#endif
