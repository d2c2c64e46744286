/*
 * bili_api: Bilibili's prepare step and the platform table that joins it to the session
 * (bilibili.c, bili_session.c). Before a room connects, Bilibili wants HTTP calls
 * (bilibili-protocol.md §2): a buvid3 cookie (finger/spi), the Wbi keys (nav; also the
 * logged-in uid when a cookie is given), the real room id of a short one (room_init), and the
 * Wbi-signed getDanmuInfo that returns a token and the host list.
 *
 * Every room of the process shares one context, and the context is a good client of the API:
 *  - one call at a time, in the order rooms asked (a FIFO of prepares);
 *  - buvid3 and the Wbi keys fetched once and shared; the keys refreshed every few hours and
 *    after a -352; a room's real id resolved once per process;
 *  - getDanmuInfo calls at least api_interval_ms apart across all rooms (default 1 s), so a
 *    thousand rooms starting at once do not trip risk control (bilibili-live-ws#77);
 *  - HTTP 412 (or code -412) opens a circuit breaker: no call at all for breaker_s (default
 *    120 s, as BililiveRecorder), said in the log and in STATUS=;
 *  - every step degrades instead of failing (as blivedm does): no buvid3, no keys or a -352
 *    connect to the fallback host without a token, and the room reconnects after
 *    BILI_DEGRADED_MS to try for a token again.
 * The cookie is a secret: it goes into request headers only, never into a log line or an
 * error message (httpc never echoes headers).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bili_cmd.h"
#include "bilibili.h"
#include "buf.h"
#include "conf.h"
#include "httpc.h"
#include "list.h"
#include "log.h"
#include "platform.h"
#include "server.h"
#include "wbi.h"

#define BILI_API "https://api.bilibili.com"
#define BILI_LIVE_API "https://api.live.bilibili.com"
/* A current desktop browser's: the token is bound to the UA (blivedm), and stale UAs have
 * been refused with -352 (xfgryujk/blivedm#84). Configurable: [bilibili] user_agent. */
#define BILI_UA                                                                                    \
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "       \
	"Chrome/147.0.0.0 Safari/537.36"
#define BILI_INTERVAL_MS 1000
#define BILI_BREAKER_MS (120 * 1000)
#define BILI_WBI_TTL_MS (4 * 3600 * 1000)  /* keys change about daily; biliup: 2 h */
#define BILI_RETRY_MS (60 * 1000)          /* a failed buvid3 / nav call, before trying again */
#define BILI_DEGRADED_MS (10 * 60 * 1000)  /* a session without a token, before asking again */
#define BILI_HTTP_TIMEOUT_MS 10000
#define BILI_COOKIE_MAX 8192
#define BILI_MAX_HOSTS 8

static const char *const bili_servers[] = {"wss://broadcastlv.chat.bilibili.com:443/sub", NULL};

struct bili_settings {
	char *api, *live_api, *ua;
	char *cookie; /* the Cookie header value from cookie_file, NULL for a guest; secret */
	enum server_scheme transport;
	uint64_t interval_ms, breaker_ms;
	int protover;
};

struct resolved {
	int64_t id, real_id, short_id;
};

struct platform_ctx {
	uv_loop_t *loop;
	struct net_ctx *net;
	struct tls_config *tls;
	struct bili_settings set;

	char buvid3[128];
	uint64_t buvid_retry_at; /* after a failed finger/spi */
	char mixin[WBI_KEY_LEN + 1];
	bool have_wbi, wbi_stale;
	uint64_t wbi_at, wbi_retry_at;
	int64_t uid; /* the cookie's account (nav data.mid), 0 for a guest */

	struct resolved *res;
	size_t n_res, cap_res;

	struct list queue;                /* prepares waiting, the first one being served */
	struct httpc_call *call;          /* the one call in flight */
	enum step { STEP_NONE, STEP_SPI, STEP_NAV, STEP_ROOM, STEP_DANMU } step;
	uv_timer_t timer;                 /* runs the queue: now, after spacing, after the breaker */
	uint64_t last_danmu_at;
	bool danmu_called;
	uint64_t breaker_until;           /* 0: closed */
	const char *breaker_why;          /* static: "HTTP 412" or "code -412" */
	char status[128];                 /* ctx_status's answer, made when asked */
	bool logged_guest;
};

struct platform_prepare {
	struct list link;
	struct platform_ctx *ctx;
	int64_t id, real_id, short_id;
	bool resolved;
	platform_prepared_cb cb;
	void *user_data;
};

static uint64_t now_ms(const struct platform_ctx *c)
{
	return uv_now(c->loop);
}

/* ---- settings ---- */

static void settings_free(struct bili_settings *s)
{
	free(s->api);
	free(s->live_api);
	free(s->ua);
	if (s->cookie)
		memset(s->cookie, 0, strlen(s->cookie));
	free(s->cookie);
	memset(s, 0, sizeof(*s));
}

/* The cookie file: one line, the Cookie header's value ("SESSDATA=...; DedeUserID=..."), an
 * optional "Cookie:" before it. Refused unless only its owner can read it. Its content never
 * reaches an error message. */
static int read_cookie(const char *path, char **out, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, errlen, "cookie_file %s: %s", path, strerror(errno));
		return -errno;
	}
	struct stat st;
	int rc = 0;
	char *text = NULL;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cookie_file %s: %s", path, strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		snprintf(err, errlen, "cookie_file %s: not a regular file", path);
	} else if (st.st_mode & 077) {
		rc = -EPERM;
		snprintf(err, errlen,
			 "cookie_file %s: mode %04o lets other users read a login secret; refused "
			 "(chmod 600 %s)",
			 path, (unsigned)(st.st_mode & 07777), path);
	} else if (st.st_size > BILI_COOKIE_MAX) {
		rc = -EFBIG;
		snprintf(err, errlen, "cookie_file %s: larger than %d bytes", path, BILI_COOKIE_MAX);
	} else if (!(text = calloc(1, (size_t)st.st_size + 1))) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
	} else {
		ssize_t n = read(fd, text, (size_t)st.st_size);
		if (n < 0) {
			rc = -errno;
			snprintf(err, errlen, "cookie_file %s: %s", path, strerror(errno));
		} else {
			text[n] = '\0';
		}
	}
	close(fd);
	if (rc < 0) {
		free(text);
		return rc;
	}
	char *s = text;
	while (*s == ' ' || *s == '\t')
		s++;
	if (strncasecmp(s, "cookie:", 7) == 0)
		s += 7;
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	bool bad = n == 0;
	for (size_t i = 0; i < n && !bad; i++)
		bad = (unsigned char)s[i] < 0x20 || s[i] == 0x7f;
	if (bad) {
		memset(text, 0, (size_t)st.st_size);
		free(text);
		snprintf(err, errlen,
			 "cookie_file %s: expected one line, the Cookie header's value "
			 "(SESSDATA=...; ...)",
			 path);
		return -EINVAL;
	}
	memmove(text, s, n);
	text[n] = '\0';
	*out = text;
	return 0;
}

static char *dup_or(const char *s, const char *dflt)
{
	return strdup(s ? s : dflt);
}

static int settings_load(struct bili_settings *s, const struct conf *conf, char *err,
			 size_t errlen)
{
	const struct conf_bilibili *b = conf ? &conf->bili : NULL;
	memset(s, 0, sizeof(*s));
	s->api = dup_or(b ? b->api : NULL, BILI_API);
	s->live_api = dup_or(b ? b->live_api : NULL, BILI_LIVE_API);
	s->ua = dup_or(b ? b->user_agent : NULL, BILI_UA);
	if (!s->api || !s->live_api || !s->ua) {
		settings_free(s);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->transport = b && b->transport >= 0 ? (enum server_scheme)b->transport : SERVER_WSS;
	s->interval_ms = b && b->api_interval_ms >= 0 ? (uint64_t)b->api_interval_ms
						       : BILI_INTERVAL_MS;
	s->breaker_ms = b && b->breaker_s > 0 ? (uint64_t)b->breaker_s * 1000 : BILI_BREAKER_MS;
	s->protover = b && b->protover > 0 ? b->protover : 3;
	if (b && b->cookie_file) {
		int rc = read_cookie(b->cookie_file, &s->cookie, err, errlen);
		if (rc < 0) {
			settings_free(s);
			return rc;
		}
	}
	return 0;
}

/* ---- the queue of prepares ---- */

static void pump(struct platform_ctx *c);

static void on_timer(uv_timer_t *t)
{
	pump(t->data);
}

static void wake_in(struct platform_ctx *c, uint64_t ms)
{
	uv_timer_start(&c->timer, on_timer, ms, 0);
}

static struct platform_prepare *head(struct platform_ctx *c)
{
	return list_empty(&c->queue) ? NULL : container_of(c->queue.next, struct platform_prepare, link);
}

/* Hand the result to the room that asked; the next prepare's turn follows. */
static void finish(struct platform_ctx *c, struct platform_prepare *p, int status,
		   struct platform_prepared *res, const char *err)
{
	list_remove(&p->link);
	platform_prepared_cb cb = p->cb;
	void *ud = p->user_data;
	free(p);
	wake_in(c, 0);
	cb(ud, status, res, err);
}

static void bili_prepared_free(struct platform_prepared *p)
{
	if (!p)
		return;
	free(p->servers);
	if (p->params)
		memset(p->params, 0, sizeof(struct bili_params)); /* the token */
	free(p->params);
	if (p->headers) /* the Cookie line */
		memset(p->headers, 0, strlen(p->headers));
	free(p->headers);
	free(p);
}

/* The Cookie header: the user's cookie (if any) and buvid3 (unless the user's has one). */
static int cookie_header(const struct platform_ctx *c, struct buf *b)
{
	bool user_b3 = c->set.cookie && strstr(c->set.cookie, "buvid3=") != NULL;
	if (!c->set.cookie && !c->buvid3[0])
		return 0;
	int rc = buf_append_str(b, "Cookie: ");
	if (rc == 0 && c->set.cookie)
		rc = buf_append_str(b, c->set.cookie);
	if (rc == 0 && c->buvid3[0] && !user_b3)
		rc = buf_printf(b, "%sbuvid3=%s", c->set.cookie ? "; " : "", c->buvid3);
	return rc;
}

static void on_response(void *user_data, int err, const struct httpc_response *resp,
			const char *msg);

/* GET base + path_query with the UA, Referer and cookie headers. */
static int call(struct platform_ctx *c, enum step step, const char *base, const char *path_query)
{
	struct buf url, ck;
	buf_init(&url);
	buf_init(&ck);
	char ua[1024];
	snprintf(ua, sizeof(ua), "User-Agent: %s", c->set.ua);
	const char *headers[4] = {ua, "Referer: https://live.bilibili.com/",
				  "Origin: https://live.bilibili.com", NULL};
	size_t n = 3;
	int rc = buf_printf(&url, "%s%s", base, path_query);
	if (rc == 0)
		rc = cookie_header(c, &ck);
	if (rc == 0 && ck.len > 0)
		rc = buf_append(&ck, "", 1); /* NUL */
	if (rc == 0 && ck.len > 0)
		headers[n++] = (const char *)buf_head(&ck);
	if (rc == 0)
		rc = buf_append(&url, "", 1);
	if (rc == 0) {
		struct httpc_request req = {.url = (const char *)buf_head(&url),
					    .headers = headers,
					    .n_headers = n,
					    .timeout_ms = BILI_HTTP_TIMEOUT_MS};
		rc = httpc_get(c->loop, c->net, c->tls, &req, on_response, c, &c->call);
	}
	if (ck.len)
		memset(ck.data, 0, ck.cap);
	buf_finish(&ck);
	buf_finish(&url);
	if (rc < 0) {
		c->call = NULL;
		return rc;
	}
	c->step = step;
	return 0;
}

/* Which call the first prepare needs next; sends it, or finishes the prepare. */
static void pump(struct platform_ctx *c)
{
	struct platform_prepare *p = head(c);
	if (c->call || !p)
		return;
	uint64_t now = now_ms(c);
	if (c->breaker_until) {
		if (now < c->breaker_until) {
			wake_in(c, c->breaker_until - now);
			return;
		}
		c->breaker_until = 0;
		log_notice("bilibili: circuit breaker closed; API calls resume");
	}
	int rc;
	if (!c->buvid3[0] && now >= c->buvid_retry_at) {
		rc = call(c, STEP_SPI, c->set.api, "/x/frontend/finger/spi");
	} else if ((!c->have_wbi || c->wbi_stale || now - c->wbi_at >= BILI_WBI_TTL_MS) &&
		   now >= c->wbi_retry_at) {
		rc = call(c, STEP_NAV, c->set.api, "/x/web-interface/nav");
	} else if (!p->resolved) {
		for (size_t i = 0; i < c->n_res; i++) {
			if (c->res[i].id == p->id) {
				p->real_id = c->res[i].real_id;
				p->short_id = c->res[i].short_id;
				p->resolved = true;
				break;
			}
		}
		if (p->resolved) {
			wake_in(c, 0);
			return;
		}
		char q[64];
		snprintf(q, sizeof(q), "/room/v1/Room/room_init?id=%" PRId64, p->id);
		rc = call(c, STEP_ROOM, c->set.live_api, q);
	} else {
		if (c->danmu_called && now - c->last_danmu_at < c->set.interval_ms) {
			wake_in(c, c->set.interval_ms - (now - c->last_danmu_at));
			return;
		}
		char id[24];
		snprintf(id, sizeof(id), "%" PRId64, p->real_id);
		struct wbi_param params[] = {{"id", id}, {"type", "0"}, {"web_location", "444.8"}};
		struct buf q;
		buf_init(&q);
		rc = buf_append_str(&q, "/xlive/web-room/v1/index/getDanmuInfo?");
		if (rc == 0 && c->have_wbi)
			rc = wbi_sign(&q, params, 3, (int64_t)time(NULL), c->mixin);
		else if (rc == 0) /* no keys: unsigned, as old clients did; expect -352 */
			rc = buf_printf(&q, "id=%s&type=0&web_location=444.8", id);
		if (rc == 0)
			rc = buf_append(&q, "", 1);
		if (rc == 0)
			rc = call(c, STEP_DANMU, c->set.live_api, (const char *)buf_head(&q));
		buf_finish(&q);
		if (rc == 0) {
			c->last_danmu_at = now;
			c->danmu_called = true;
		}
	}
	if (rc < 0)
		finish(c, p, rc, NULL, rc == -ENOMEM ? "out of memory" : "bad API URL");
}

/* ---- answers ---- */

static void open_breaker(struct platform_ctx *c, const char *what)
{
	uint64_t now = now_ms(c);
	c->breaker_until = now + c->set.breaker_ms;
	c->breaker_why = what;
	log_warn("bilibili: %s: this address is blocked for a while; circuit breaker open, no API "
		 "call for any room for %" PRIu64 " s",
		 what, c->set.breaker_ms / 1000);
}

static const char *json_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool json_i64(json_t *o, const char *key, int64_t *out)
{
	json_t *v = json_object_get(o, key);
	if (json_is_integer(v)) {
		*out = (int64_t)json_integer_value(v);
		return true;
	}
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;
	char *end;
	if (!s || !*s)
		return false;
	errno = 0;
	long long x = strtoll(s, &end, 10);
	if (errno || *end)
		return false;
	*out = x;
	return true;
}

/* A printable token without ';', ',', spaces or quotes (it goes into headers and JSON). */
static bool cookie_safe(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n >= max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~' || s[i] == ';' || s[i] == ',' || s[i] == '"' ||
		    s[i] == '\\')
			return false;
	return true;
}

static void on_spi(struct platform_ctx *c, json_t *data)
{
	const char *b3 = data ? json_str(data, "b_3") : NULL;
	if (b3 && cookie_safe(b3, sizeof(c->buvid3))) {
		snprintf(c->buvid3, sizeof(c->buvid3), "%s", b3);
		log_debug("bilibili: buvid3 obtained");
		return;
	}
	c->buvid_retry_at = now_ms(c) + BILI_RETRY_MS;
	log_warn("bilibili: finger/spi gave no usable buvid3; getDanmuInfo will likely be refused");
}

static void on_nav(struct platform_ctx *c, int64_t code, json_t *data)
{
	json_t *img = data ? json_object_get(data, "wbi_img") : NULL;
	const char *iu = img ? json_str(img, "img_url") : NULL;
	const char *su = img ? json_str(img, "sub_url") : NULL;
	char ik[WBI_KEY_LEN + 1], sk[WBI_KEY_LEN + 1];
	if (iu && su && wbi_key_from_url(iu, ik) == 0 && wbi_key_from_url(su, sk) == 0) {
		wbi_mixin_key(ik, sk, c->mixin);
		c->have_wbi = true;
		c->wbi_stale = false;
		c->wbi_at = now_ms(c);
		log_debug("bilibili: Wbi keys refreshed");
	} else {
		c->wbi_retry_at = now_ms(c) + BILI_RETRY_MS;
		log_warn("bilibili: nav gave no Wbi keys (code %" PRId64 "); trying again in %d s",
			 code, BILI_RETRY_MS / 1000);
	}
	if (!c->set.cookie)
		return;
	int64_t mid = 0;
	json_t *login = data ? json_object_get(data, "isLogin") : NULL;
	if (code == 0 && json_is_true(login) && json_i64(data, "mid", &mid) && mid > 0) {
		if (c->uid != mid)
			log_info("bilibili: logged in as uid %" PRId64 " (cookie_file)", mid);
		c->uid = mid;
	} else if (c->uid == 0 && !c->logged_guest) {
		c->logged_guest = true;
		log_warn("bilibili: the cookie_file's login is not accepted (nav code %" PRId64
			 "); recording as a guest: names masked, uid 0",
			 code);
	}
}

static void on_room(struct platform_ctx *c, struct platform_prepare *p, int64_t code,
		    json_t *data)
{
	int64_t real = 0, short_id = 0;
	if (code == 60004) {
		char why[96];
		snprintf(why, sizeof(why), "no such Bilibili room %" PRId64 " (room_init 60004)",
			 p->id);
		finish(c, p, -ENOENT, NULL, why);
		return;
	}
	if (code == 0 && data && json_i64(data, "room_id", &real) && real > 0) {
		json_i64(data, "short_id", &short_id);
		if (short_id < 0 || short_id == real)
			short_id = 0;
		p->real_id = real;
		p->short_id = short_id;
		p->resolved = true;
		if (c->n_res == c->cap_res) {
			size_t cap = c->cap_res ? c->cap_res * 2 : 16;
			struct resolved *r = realloc(c->res, cap * sizeof(*r));
			if (!r)
				return; /* not cached: asked again next time */
			c->res = r;
			c->cap_res = cap;
		}
		c->res[c->n_res++] = (struct resolved){p->id, real, short_id};
		return;
	}
	/* Unknown: use the id as given this time (not cached, so the next prepare asks again). */
	log_warn("bilibili: room_init for %" PRId64 " failed (code %" PRId64
		 "); using it as the real id",
		 p->id, code);
	p->real_id = p->id;
	p->resolved = true;
}

static struct platform_prepared *prepared_new(struct platform_ctx *c, struct platform_prepare *p)
{
	struct platform_prepared *res = calloc(1, sizeof(*res));
	struct bili_params *bp = calloc(1, sizeof(*bp));
	struct buf h;
	buf_init(&h);
	int rc = !res || !bp ? -ENOMEM : 0;
	if (rc == 0)
		rc = buf_printf(&h,
				"User-Agent: %s\r\nOrigin: https://live.bilibili.com\r\n"
				"Referer: https://live.bilibili.com/%" PRId64 "\r\n",
				c->set.ua, p->real_id);
	struct buf ck;
	buf_init(&ck);
	if (rc == 0)
		rc = cookie_header(c, &ck);
	if (rc == 0 && ck.len)
		rc = buf_append(&h, buf_head(&ck), ck.len);
	if (rc == 0 && ck.len)
		rc = buf_append_str(&h, "\r\n");
	if (ck.len)
		memset(ck.data, 0, ck.cap);
	buf_finish(&ck);
	if (rc == 0)
		rc = buf_append(&h, "", 1);
	if (rc < 0) {
		free(res);
		free(bp);
		buf_finish(&h);
		return NULL;
	}
	res->headers = (char *)h.data; /* buf's storage, NUL-terminated, handed over */
	bp->uid = c->uid;
	snprintf(bp->buvid, sizeof(bp->buvid), "%s", c->buvid3);
	bp->protover = c->set.protover;
	res->params = bp;
	res->room_id = p->real_id;
	res->short_id = p->short_id;
	return res;
}

/* getDanmuInfo's host_list -> the servers of the configured transport. */
static size_t hosts(struct platform_ctx *c, json_t *list, struct server *out)
{
	static const char *const port_key[] = {[SERVER_WSS] = "wss_port", [SERVER_WS] = "ws_port",
					       [SERVER_TCP] = "port"};
	static const char *const scheme[] = {[SERVER_WSS] = "wss", [SERVER_WS] = "ws",
					     [SERVER_TCP] = "tcp"};
	size_t n = 0, i;
	json_t *h;
	json_array_foreach(list, i, h)
	{
		if (n == BILI_MAX_HOSTS)
			break;
		const char *host = json_str(h, "host");
		int64_t port = 0;
		if (!host || !json_i64(h, port_key[c->set.transport], &port) || port <= 0 ||
		    port > 65535 || strlen(host) > 253 || strpbrk(host, "/@?#[] "))
			continue;
		char url[320], why[128];
		snprintf(url, sizeof(url), "%s://%s:%" PRId64 "%s", scheme[c->set.transport], host,
			 port, c->set.transport == SERVER_TCP ? "" : "/sub");
		if (server_parse(url, &out[n], why, sizeof(why)) == 0)
			n++;
	}
	return n;
}

static void on_danmu(struct platform_ctx *c, struct platform_prepare *p, int64_t code,
		     const char *what, json_t *data)
{
	struct platform_prepared *res = prepared_new(c, p);
	if (!res) {
		finish(c, p, -ENOMEM, NULL, "out of memory");
		return;
	}
	struct bili_params *bp = res->params;
	const char *token = data ? json_str(data, "token") : NULL;
	json_t *list = data ? json_object_get(data, "host_list") : NULL;
	struct server servers[BILI_MAX_HOSTS];
	size_t n = code == 0 && json_is_array(list) ? hosts(c, list, servers) : 0;
	if (code == 0 && token && strlen(token) < sizeof(bp->token) && cookie_safe(token, sizeof(bp->token)) &&
	    n > 0 && (res->servers = calloc(n, sizeof(*servers)))) {
		memcpy(res->servers, servers, n * sizeof(*servers));
		res->n_servers = n;
		snprintf(bp->token, sizeof(bp->token), "%s", token);
		finish(c, p, 0, res, NULL);
		return;
	}
	/* Degraded: the fallback host (the env's servers), no token; ask again later. */
	if (code == -352) {
		c->wbi_stale = true; /* maybe rotated keys: fetch them before the next call */
		snprintf(res->note, sizeof(res->note),
			 "getDanmuInfo refused (-352, risk control): fallback host without a token; "
			 "asking again in %d min",
			 BILI_DEGRADED_MS / 60000);
	} else {
		snprintf(res->note, sizeof(res->note),
			 "getDanmuInfo failed (%s): fallback host without a token; asking again in "
			 "%d min",
			 what, BILI_DEGRADED_MS / 60000);
	}
	res->refresh_after_ms = BILI_DEGRADED_MS;
	finish(c, p, 0, res, NULL);
}

static void on_response(void *user_data, int err, const struct httpc_response *resp,
			const char *msg)
{
	struct platform_ctx *c = user_data;
	enum step step = c->step;
	c->call = NULL;
	c->step = STEP_NONE;
	struct platform_prepare *p = head(c);
	json_t *root = NULL;
	int64_t code = -1;
	char what[160];
	if (err < 0) {
		snprintf(what, sizeof(what), "%s", msg ? msg : strerror(-err));
	} else if (resp->status == 412) {
		open_breaker(c, "HTTP 412");
		wake_in(c, 0);
		return; /* the same step, after the breaker */
	} else if (resp->status != 200) {
		snprintf(what, sizeof(what), "HTTP %d", resp->status);
	} else {
		json_error_t je;
		root = json_loadb(resp->body, resp->body_len, 0, &je);
		if (!json_is_object(root) || !json_i64(root, "code", &code)) {
			snprintf(what, sizeof(what), "not a JSON answer");
			code = -1;
		} else {
			snprintf(what, sizeof(what), "code %" PRId64, code);
		}
		if (code == -412) {
			json_decref(root);
			open_breaker(c, "code -412");
			wake_in(c, 0);
			return;
		}
	}
	json_t *data = root ? json_object_get(root, "data") : NULL;
	if (!json_is_object(data))
		data = NULL;
	static const char *const step_name[] = {[STEP_SPI] = "finger/spi", [STEP_NAV] = "nav",
						[STEP_ROOM] = "room_init", [STEP_DANMU] = "getDanmuInfo"};
	if (err < 0 || (code != 0 && !(step == STEP_NAV && code == -101)))
		log_debug("bilibili: %s: %s", step_name[step], what);
	switch (step) {
	case STEP_SPI:
		on_spi(c, code == 0 ? data : NULL);
		break;
	case STEP_NAV:
		on_nav(c, code, data);
		break;
	case STEP_ROOM:
		if (p)
			on_room(c, p, err < 0 ? -1 : code, data);
		break;
	case STEP_DANMU:
		if (p)
			on_danmu(c, p, err < 0 ? -1 : code, what, data);
		break;
	case STEP_NONE:
		break;
	}
	json_decref(root);
	wake_in(c, 0);
}

/* ---- the platform functions ---- */

static int bili_check_conf(const struct conf *conf, char *err, size_t errlen)
{
	struct bili_settings s;
	int rc = settings_load(&s, conf, err, errlen);
	if (rc == 0)
		settings_free(&s);
	return rc;
}

static int bili_ctx_create(const struct platform_env *env, struct platform_ctx **out, char *err,
			   size_t errlen)
{
	struct platform_ctx *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = settings_load(&c->set, env->conf, err, errlen);
	if (rc < 0) {
		free(c);
		return rc;
	}
	c->loop = env->loop;
	c->net = env->net;
	c->tls = env->tls;
	list_init(&c->queue);
	uv_timer_init(c->loop, &c->timer);
	c->timer.data = c;
	/* Before jansson's first use (API answers come before any session): seeded here,
	 * jansson does not open /dev/urandom itself. */
	bili_json_seed();
	if (!c->set.cookie)
		log_notice("bilibili: no [bilibili] cookie_file: recording as a guest, so Bilibili "
			   "masks chat names (e.g. 观***) and sends uid 0; README 'Bilibili login' "
			   "says how to log in");
	*out = c;
	return 0;
}

static void on_ctx_closed(uv_handle_t *h)
{
	struct platform_ctx *c = h->data;
	settings_free(&c->set);
	free(c->res);
	free(c);
}

static void bili_ctx_destroy(struct platform_ctx *c)
{
	if (!c)
		return;
	httpc_cancel(c->call);
	c->call = NULL;
	while (!list_empty(&c->queue)) { /* rooms cancel theirs; this only guards */
		struct platform_prepare *p = head(c);
		list_remove(&p->link);
		free(p);
	}
	uv_close((uv_handle_t *)&c->timer, on_ctx_closed);
}

static int bili_ctx_reload(struct platform_ctx *c, const struct conf *conf, char *err,
			   size_t errlen)
{
	struct bili_settings s;
	int rc = settings_load(&s, conf, err, errlen);
	if (rc < 0)
		return rc;
	bool login_changed = (s.cookie == NULL) != (c->set.cookie == NULL) ||
			     (s.cookie && strcmp(s.cookie, c->set.cookie) != 0);
	settings_free(&c->set);
	c->set = s;
	if (login_changed) { /* ask nav again: the uid may be another */
		c->uid = 0;
		c->wbi_stale = true;
		c->logged_guest = false;
	}
	return 0;
}

static const char *bili_ctx_status(struct platform_ctx *c)
{
	if (!c->breaker_until)
		return NULL;
	uint64_t now = now_ms(c);
	uint64_t left = c->breaker_until > now ? (c->breaker_until - now + 999) / 1000 : 0;
	snprintf(c->status, sizeof(c->status),
		 "API blocked (%s): circuit breaker open, %" PRIu64 " s left", c->breaker_why,
		 left);
	return c->status;
}

static int bili_prepare(struct platform_ctx *c, int64_t room_id, platform_prepared_cb cb,
			void *user_data, struct platform_prepare **out)
{
	struct platform_prepare *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ctx = c;
	p->id = room_id;
	p->cb = cb;
	p->user_data = user_data;
	list_insert_tail(&c->queue, &p->link);
	if (!c->call && !uv_is_active((uv_handle_t *)&c->timer))
		wake_in(c, 0);
	*out = p;
	return 0;
}

static void bili_prepare_cancel(struct platform_prepare *p)
{
	if (!p)
		return;
	struct platform_ctx *c = p->ctx;
	if (head(c) == p && c->call) {
		/* Its call is in flight: cancel it; the next prepare's turn comes now. */
		httpc_cancel(c->call);
		c->call = NULL;
		c->step = STEP_NONE;
		wake_in(c, 0);
	}
	list_remove(&p->link);
	free(p);
}

const struct platform bilibili_platform = {
	.name = "bilibili",
	.default_servers = bili_servers,
	.heartbeat_ms = 30000,
	.check_conf = bili_check_conf,
	.ctx_create = bili_ctx_create,
	.ctx_destroy = bili_ctx_destroy,
	.ctx_reload = bili_ctx_reload,
	.ctx_status = bili_ctx_status,
	.prepare = bili_prepare,
	.prepare_cancel = bili_prepare_cancel,
	.prepared_free = bili_prepared_free,
	.session_create = bili_session_create,
	.session_destroy = bili_session_destroy,
	.hello = bili_hello,
	.feed = bili_feed,
	.heartbeat = bili_heartbeat,
	.goodbye = bili_goodbye,
};
