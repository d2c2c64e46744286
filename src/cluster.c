/*
 * cluster: see cluster.h. One PostgreSQL connection of its own (a lease round must not wait
 * behind a long shipping batch), which also LISTENs on danmakud_leases.
 *
 * A round is one request: this node's offers when they changed (DELETE + COPY + an INSERT of
 * the leases rows), then SELECT * FROM danmakud_lease(...), which renews this node and its
 * leases, counts the nodes alive and the rooms offered, takes free or expired leases up to the
 * fair share and returns the leases held with that share. Rooms held beyond the share (a node
 * joined) are stopped here and let go once closed: that is the rebalance.
 */
#include "cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "pg.h"
#include "platform.h"

#define CLUSTER_SETTLE_MS 1500   /* first round only registers: nodes started together */
#define CLUSTER_EXPIRY_MARGIN_MS 500

/* clang-format off */
const char cluster_lease_fn_sql[] =
	"CREATE FUNCTION danmakud_lease(me text, lease_s integer, max_rooms integer,\n"
	"    take boolean)\n"
	"RETURNS TABLE (platform text, room_id bigint, label text, share integer)\n"
	"LANGUAGE plpgsql AS $$\n"
	"#variable_conflict use_column\n"
	"DECLARE\n"
	"  alive integer; pool integer; held integer; want integer;\n"
	"  lease interval := make_interval(secs => lease_s);\n"
	"BEGIN\n"
	"  INSERT INTO nodes (node, mode, started_at, seen_at, expires_at, max_rooms)\n"
	"    VALUES (me, 'shard', now(), now(), now() + lease, max_rooms)\n"
	"    ON CONFLICT (node) DO UPDATE SET mode = 'shard', seen_at = now(),\n"
	"      expires_at = excluded.expires_at, max_rooms = excluded.max_rooms;\n"
	"  UPDATE room_leases l SET expires_at = now() + lease WHERE l.node = me;\n"
	"  SELECT count(*) INTO alive FROM nodes n WHERE n.mode = 'shard' AND n.expires_at > now();\n"
	"  SELECT count(*) INTO pool FROM room_leases l WHERE EXISTS (SELECT 1 FROM room_offers o\n"
	"    WHERE o.platform = l.platform AND o.room_id = l.room_id);\n"
	"  SELECT count(*) INTO held FROM room_leases l WHERE l.node = me;\n"
	"  want := ceil(pool::numeric / greatest(alive, 1));\n"
	"  IF max_rooms > 0 AND want > max_rooms THEN want := max_rooms; END IF;\n"
	"  IF take AND held < want THEN\n"
	"    UPDATE room_leases l SET node = me, expires_at = now() + lease, since = now()\n"
	"    FROM (SELECT f.platform, f.room_id FROM room_leases f\n"
	"          WHERE (f.node IS NULL OR f.expires_at < now())\n"
	"            AND EXISTS (SELECT 1 FROM room_offers o\n"
	"                        WHERE o.platform = f.platform AND o.room_id = f.room_id)\n"
	"          ORDER BY f.expires_at, f.platform, f.room_id\n"
	"          LIMIT want - held FOR UPDATE SKIP LOCKED) t\n"
	"    WHERE l.platform = t.platform AND l.room_id = t.room_id;\n"
	"  END IF;\n"
	"  UPDATE nodes SET rooms = (SELECT count(*) FROM room_leases l WHERE l.node = me)\n"
	"    WHERE node = me;\n"
	"  RETURN QUERY\n"
	"    SELECT NULL::text, NULL::bigint, NULL::text, want\n"
	"    UNION ALL\n"
	"    SELECT l.platform, l.room_id, l.label, want FROM room_leases l\n"
	"    WHERE l.node = me AND EXISTS (SELECT 1 FROM room_offers o\n"
	"      WHERE o.platform = l.platform AND o.room_id = l.room_id);\n"
	"END $$;\n";
/* clang-format on */

struct croom {
	const struct platform *pf;
	int64_t id;
	char *label;
	bool held, handing, keep; /* apply_round's marks on got[] */
};

struct cluster {
	uv_loop_t *loop;
	struct pg *pg;
	const struct cluster_callbacks *cb;
	void *user_data;
	char *node;
	unsigned lease_s, max_rooms;
	bool ready;          /* LISTEN sent, the lease function exists */
	bool again, offers_dirty, stopping;
	bool registered; /* the first round is done: this node is in the nodes table */
	bool settled;    /* CLUSTER_SETTLE_MS later: rounds take leases */
	struct croom *offers;
	size_t n_offers;
	struct croom *held;  /* what rec records now (sorted) */
	size_t n_held;
	struct croom *gone;  /* stopped and closed: to let go */
	size_t n_gone, cap_gone;
	struct croom *stopping_rooms; /* stopped here, not closed yet */
	size_t n_stopping, cap_stopping;
	/* the round in flight */
	struct croom *got;
	size_t n_got, cap_got;
	int share;
	uint64_t settle_at;
	uint64_t sent_at, valid_until; /* uv_now(): the leases are ours until valid_until */
	bool expired;
	struct buf sql, copy;
	struct pg_copy cp;
	uv_timer_t timer;
	uv_timer_t stop_timer;
	void (*stop_done)(void *ctx);
	void *stop_ctx;
	int closes;
};

static void round_start(struct cluster *cl);
static void on_timer(uv_timer_t *t);

static int cmp_croom(const void *a, const void *b)
{
	const struct croom *x = a, *y = b;
	size_t px = platform_index(x->pf), py = platform_index(y->pf);
	if (px != py)
		return px < py ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static void free_rooms(struct croom *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].label);
}

static int push_room(struct croom **v, size_t *n, size_t *cap, const struct platform *pf,
		     int64_t id, const char *label)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 32;
		struct croom *p = realloc(*v, c * sizeof(*p));
		if (!p)
			return -ENOMEM;
		*v = p;
		*cap = c;
	}
	char *l = label && *label ? strdup(label) : NULL;
	if (label && *label && !l)
		return -ENOMEM;
	(*v)[(*n)++] = (struct croom){.pf = pf, .id = id, .label = l};
	return 0;
}

static bool in(const struct croom *v, size_t n, const struct platform *pf, int64_t id)
{
	struct croom key = {.pf = pf, .id = id};
	return n && bsearch(&key, v, n, sizeof(*v), cmp_croom) != NULL;
}

/* The same for an unsorted list. */
static bool listed(const struct croom *v, size_t n, const struct platform *pf, int64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].pf == pf && v[i].id == id)
			return true;
	return false;
}

static void tell_rec(struct cluster *cl, const char *reason)
{
	struct conf_room *r = calloc(cl->n_held ? cl->n_held : 1, sizeof(*r));
	if (!r) {
		log_err("cluster: out of memory");
		return;
	}
	for (size_t i = 0; i < cl->n_held; i++)
		r[i] = (struct conf_room){cl->held[i].pf, cl->held[i].id, cl->held[i].label};
	cl->cb->set_rooms(cl->user_data, r, cl->n_held, reason);
	free(r);
}

/* ---- the round ---- */

static void on_round_result(struct pg *c, const PGresult *res, void *ud)
{
	struct cluster *cl = ud;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 4)
		return;
	for (int i = 0; i < PQntuples(res); i++) {
		cl->share = atoi(PQgetvalue(res, i, 3));
		if (PQgetisnull(res, i, 0))
			continue;
		const char *name = PQgetvalue(res, i, 0);
		const struct platform *pf = platform_find(name, strlen(name));
		if (!pf)
			continue; /* a platform a newer danmakud offered */
		int64_t id = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		const char *label = PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2);
		if (push_room(&cl->got, &cl->n_got, &cl->cap_got, pf, id, label) < 0)
			log_err("cluster: out of memory");
	}
}

/*
 * The round succeeded: record got[] (sorted) minus the share's excess, stop the rest. Every
 * lookup is a binary search in a sorted list: a node may hold thousands of rooms, and this
 * runs every lease_s / 3.
 */
static void apply_round(struct cluster *cl)
{
	if (cl->n_got > 1)
		qsort(cl->got, cl->n_got, sizeof(*cl->got), cmp_croom);
	size_t keep = cl->n_got;
	if (cl->share >= 0 && keep > (size_t)cl->share)
		keep = (size_t)cl->share; /* a node joined: give the extra back */
	/* Keep the rooms already recorded first, so a rebalance moves the fewest; a room being
	 * handed over stays stopped. */
	size_t k = 0;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < cl->n_got; i++) {
			struct croom *g = &cl->got[i];
			g->held = in(cl->held, cl->n_held, g->pf, g->id);
			g->handing = in(cl->stopping_rooms, cl->n_stopping, g->pf, g->id);
			if ((pass == 0) != g->held)
				continue;
			g->keep = k < keep && !g->handing;
			k += g->keep;
		}
	struct croom *next = calloc(k ? k : 1, sizeof(*next));
	if (!next) {
		log_err("cluster: out of memory");
		free_rooms(cl->got, cl->n_got);
		cl->n_got = 0;
		return;
	}
	size_t n = 0;
	for (size_t i = 0; i < cl->n_got; i++) {
		struct croom *g = &cl->got[i];
		if (g->keep) {
			if (!g->held)
				log_info("cluster: took the lease of %s:%" PRId64, g->pf->name,
					 g->id);
			next[n++] = *g;
			continue;
		}
		if (g->held) { /* recorded: stop it first, let go once closed */
			log_info("cluster: handing %s:%" PRId64 " over (fair share %d)",
				 g->pf->name, g->id, cl->share);
			push_room(&cl->stopping_rooms, &cl->n_stopping, &cl->cap_stopping, g->pf,
				  g->id, NULL);
		} else if (!g->handing && !listed(cl->gone, cl->n_gone, g->pf, g->id)) {
			push_room(&cl->gone, &cl->n_gone, &cl->cap_gone, g->pf, g->id, NULL);
		}
		free(g->label);
	}
	/* Held before and not returned at all: the lease is gone (taken after it expired, or
	 * nobody offers the room any more): stop it; nothing to let go. */
	for (size_t i = 0; i < cl->n_held; i++) {
		struct croom *h = &cl->held[i];
		if (!in(cl->got, cl->n_got, h->pf, h->id))
			log_notice("cluster: lost the lease of %s:%" PRId64, h->pf->name, h->id);
		free(h->label);
	}
	free(cl->held);
	cl->held = next; /* sorted: a subsequence of got */
	cl->n_held = n;
	cl->n_got = 0;
	if (cl->n_stopping > 1)
		qsort(cl->stopping_rooms, cl->n_stopping, sizeof(*cl->stopping_rooms), cmp_croom);
	tell_rec(cl, "lease moved");
}

static void on_round_done(struct pg *c, const char *error, const char *sqlstate, void *ud)
{
	struct cluster *cl = ud;
	if (error) {
		free_rooms(cl->got, cl->n_got);
		cl->n_got = 0;
		if (pg_is_up(cl->pg)) {
			log_warn("cluster: a lease round failed (%s: %s)", sqlstate, error);
			cl->offers_dirty = true;
		}
		return;
	}
	cl->valid_until = cl->sent_at + (uint64_t)cl->lease_s * 1000;
	if (cl->expired) {
		log_notice("cluster: PostgreSQL answers again; leases renewed");
		cl->expired = false;
	}
	if (!cl->registered) {
		cl->registered = true;
		free_rooms(cl->got, cl->n_got);
		cl->n_got = 0;
		/* Nodes started together see each other before anyone takes rooms: the round
		 * that takes comes CLUSTER_SETTLE_MS later (the others' NOTIFYs do not hurry it). */
		uv_timer_start(&cl->timer, on_timer, CLUSTER_SETTLE_MS, 0);
		cl->settle_at = uv_now(cl->loop) + CLUSTER_SETTLE_MS;
		return;
	}
	if (!cl->stopping)
		apply_round(cl);
	else {
		free_rooms(cl->got, cl->n_got);
		cl->n_got = 0;
	}
	if (cl->again || cl->n_gone) {
		cl->again = false;
		round_start(cl);
	}
}

static int add_offers(struct cluster *cl, struct buf *q)
{
	buf_clear(&cl->copy);
	int rc = 0;
	for (size_t i = 0; i < cl->n_offers && rc == 0; i++) {
		rc |= pg_copy_str(&cl->copy, cl->node, strlen(cl->node), false);
		rc |= pg_copy_str(&cl->copy, cl->offers[i].pf->name, strlen(cl->offers[i].pf->name),
				  false);
		rc |= pg_copy_int(&cl->copy, cl->offers[i].id, false);
		const char *l = cl->offers[i].label;
		rc |= pg_copy_str(&cl->copy, l, l ? strlen(l) : 0, true);
	}
	rc |= buf_printf(q,
			 "DELETE FROM room_offers WHERE node = '%s';\n"
			 "COPY room_offers (node, platform, room_id, label) FROM STDIN;\n"
			 "INSERT INTO room_leases (platform, room_id, label)\n"
			 "  SELECT platform, room_id, label FROM room_offers WHERE node = '%s'\n"
			 "  ORDER BY platform, room_id\n"
			 "  ON CONFLICT (platform, room_id) DO UPDATE\n"
			 "    SET label = coalesce(excluded.label, room_leases.label);\n",
			 cl->node, cl->node);
	cl->cp = (struct pg_copy){(const char *)buf_head(&cl->copy), cl->copy.len};
	return rc;
}

/* Let go of the leases of rooms that closed: one UPDATE, then NOTIFY. */
static int add_release(struct cluster *cl, struct buf *q)
{
	if (!cl->n_gone)
		return 0;
	int rc = buf_printf(q, "UPDATE room_leases SET node = NULL, expires_at = '-infinity', "
			       "since = NULL WHERE node = '%s' AND (platform, room_id) IN (",
			    cl->node);
	for (size_t i = 0; i < cl->n_gone && rc == 0; i++)
		rc = buf_printf(q, "%s('%s', %" PRId64 ")", i ? ", " : "", cl->gone[i].pf->name,
				cl->gone[i].id);
	rc |= buf_append_str(q, ");\nNOTIFY danmakud_leases;\n");
	for (size_t i = 0; i < cl->n_gone; i++)
		log_info("cluster: let go of %s:%" PRId64, cl->gone[i].pf->name, cl->gone[i].id);
	free_rooms(cl->gone, cl->n_gone);
	cl->n_gone = 0;
	return rc;
}

static void round_start(struct cluster *cl)
{
	if (!cl->ready || cl->stopping)
		return;
	if (cl->registered && !cl->settled) {
		if (uv_now(cl->loop) < cl->settle_at)
			return; /* the settle timer calls again */
		cl->settled = true;
	}
	if (!pg_is_idle(cl->pg)) {
		cl->again = true;
		return;
	}
	uint64_t every = (uint64_t)cl->lease_s * 1000 / 3;
	uv_timer_start(&cl->timer, on_timer, every, 0);
	struct buf *q = &cl->sql;
	buf_clear(q);
	size_t nc = 0;
	int rc = add_release(cl, q);
	if (cl->offers_dirty) {
		rc |= add_offers(cl, q);
		nc = 1;
	}
	rc |= buf_printf(q, "SELECT * FROM danmakud_lease('%s', %u, %u, %s);\n", cl->node,
			 cl->lease_s, cl->max_rooms, cl->settled ? "true" : "false");
	if (!cl->registered)
		rc |= buf_append_str(q, "NOTIFY danmakud_leases;\n");
	rc |= buf_append(q, "", 1);
	if (rc) {
		log_err("cluster: out of memory");
		return;
	}
	cl->sent_at = uv_now(cl->loop);
	cl->share = -1;
	if (pg_exec(cl->pg, (const char *)buf_head(q), &cl->cp, nc, on_round_result,
		    on_round_done, cl) == 0)
		cl->offers_dirty = false;
}

/* ---- the connection ---- */

static void on_ready_done(struct pg *c, const char *error, const char *sqlstate, void *ud)
{
	struct cluster *cl = ud;
	if (error) {
		/* The schema is being created by the shipper's connection: try again soon. */
		if (pg_is_up(cl->pg))
			uv_timer_start(&cl->timer, on_timer, 1000, 0);
		return;
	}
	cl->ready = true;
	cl->offers_dirty = true;
	round_start(cl);
}

static void on_ready_result(struct pg *c, const PGresult *res, void *ud)
{
}

static void check_ready(struct cluster *cl)
{
	if (cl->ready || !pg_is_idle(cl->pg))
		return;
	/* Fails (undefined function) until the schema exists: then retried in 1 s. */
	static const char sql[] = "LISTEN danmakud_leases;\n"
				  "SELECT 'danmakud_lease(text,integer,integer,boolean)'::regprocedure;\n";
	pg_exec(cl->pg, sql, NULL, 0, on_ready_result, on_ready_done, cl);
}

static void on_up(struct pg *c, void *ud)
{
	struct cluster *cl = ud;
	cl->ready = false;
	uv_timer_stop(&cl->timer);
	check_ready(cl);
}

static void on_down(struct pg *c, const char *why, void *ud)
{
	struct cluster *cl = ud;
	cl->ready = false;
	uv_timer_stop(&cl->timer);
	if (cl->stop_done) {
		void (*done)(void *) = cl->stop_done;
		cl->stop_done = NULL;
		uv_timer_stop(&cl->stop_timer);
		done(cl->stop_ctx);
	}
}

static void on_notify(struct pg *c, const char *channel, const char *payload, void *ud)
{
	struct cluster *cl = ud;
	if (cl->registered)
		round_start(cl);
}

static const struct pg_callbacks cluster_pg_cb = {
	.on_up = on_up, .on_down = on_down, .on_notify = on_notify};

static void stop_try(struct cluster *cl);

static void on_timer(uv_timer_t *t)
{
	struct cluster *cl = t->data;
	if (cl->stopping)
		stop_try(cl);
	else if (!cl->ready)
		check_ready(cl);
	else
		round_start(cl);
}

/* ---- life ---- */

int cluster_create(uv_loop_t *loop, struct net_ctx *net, const struct cluster_options *opt,
		   const struct cluster_callbacks *cb, void *user_data, struct cluster **out,
		   char *err, size_t errlen)
{
	struct cluster *cl = calloc(1, sizeof(*cl));
	if (!cl || !(cl->node = strdup(opt->node))) {
		free(cl);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	cl->loop = loop;
	cl->cb = cb;
	cl->user_data = user_data;
	cl->lease_s = opt->lease_s < 3 ? 3 : opt->lease_s;
	cl->max_rooms = opt->max_rooms;
	buf_init(&cl->sql);
	buf_init(&cl->copy);
	uv_timer_init(loop, &cl->timer);
	uv_timer_init(loop, &cl->stop_timer);
	cl->timer.data = cl->stop_timer.data = cl;
	char app[96];
	snprintf(app, sizeof(app), "danmakud %s leases", cl->node);
	struct pg_options po = {
		.conninfo = opt->conninfo, .password = opt->password, .application_name = app};
	int rc = pg_create(loop, net, &po, &cluster_pg_cb, cl, &cl->pg, err, errlen);
	if (rc < 0) {
		cluster_close(cl);
		return rc;
	}
	*out = cl;
	return 0;
}

int cluster_offer(struct cluster *cl, const struct conf_room *rooms, size_t n)
{
	struct croom *v = NULL;
	size_t nv = 0, cap = 0;
	for (size_t i = 0; i < n; i++)
		if (push_room(&v, &nv, &cap, rooms[i].platform, rooms[i].id, rooms[i].label) < 0) {
			free_rooms(v, nv);
			free(v);
			return -ENOMEM;
		}
	if (nv > 1)
		qsort(v, nv, sizeof(*v), cmp_croom);
	size_t k = 0; /* listed twice: offered once */
	for (size_t i = 0; i < nv; i++) {
		if (k && cmp_croom(&v[k - 1], &v[i]) == 0) {
			free(v[i].label);
			continue;
		}
		v[k++] = v[i];
	}
	free_rooms(cl->offers, cl->n_offers);
	free(cl->offers);
	cl->offers = v;
	cl->n_offers = k;
	cl->offers_dirty = true;
	if (cl->registered)
		round_start(cl);
	return 0;
}

void cluster_start(struct cluster *cl)
{
	pg_start(cl->pg);
}

void cluster_tick(struct cluster *cl)
{
	uint64_t now = uv_now(cl->loop);
	if (!cl->ready && pg_is_idle(cl->pg) && !uv_is_active((uv_handle_t *)&cl->timer))
		check_ready(cl);
	if (cl->expired || !cl->n_held || !cl->valid_until)
		return;
	if (now + CLUSTER_EXPIRY_MARGIN_MS < cl->valid_until)
		return;
	log_warn("cluster: no lease renewal for %u s (PostgreSQL unreachable?): the leases "
		 "expire; stopping %zu rooms so that another node can take them",
		 cl->lease_s, cl->n_held);
	cl->expired = true;
	free_rooms(cl->held, cl->n_held);
	cl->n_held = 0;
	tell_rec(cl, "lease expired");
}

void cluster_room_gone(struct cluster *cl, const struct platform *pf, int64_t id)
{
	size_t k = 0;
	bool was = false;
	for (size_t i = 0; i < cl->n_stopping; i++) {
		if (cl->stopping_rooms[i].pf == pf && cl->stopping_rooms[i].id == id) {
			was = true;
			continue;
		}
		cl->stopping_rooms[k++] = cl->stopping_rooms[i];
	}
	cl->n_stopping = k;
	/* Closed because this node handed it over: let go now. (A room that stopped because
	 * its lease expired or was lost is not ours to let go.) */
	if (was && !in(cl->held, cl->n_held, pf, id) && !cl->stopping &&
	    !listed(cl->gone, cl->n_gone, pf, id)) {
		push_room(&cl->gone, &cl->n_gone, &cl->cap_gone, pf, id, NULL);
		round_start(cl);
	}
}

size_t cluster_held(const struct cluster *cl)
{
	return cl->n_held;
}

static void stop_finished(struct cluster *cl)
{
	uv_timer_stop(&cl->stop_timer);
	if (cl->stop_done) {
		void (*done)(void *) = cl->stop_done;
		cl->stop_done = NULL;
		done(cl->stop_ctx);
	}
}

static void on_stop_done(struct pg *c, const char *error, const char *sqlstate, void *ud)
{
	struct cluster *cl = ud;
	if (error)
		log_warn("cluster: could not let the leases go (%s); they expire in %u s", error,
			 cl->lease_s);
	else
		log_info("cluster: let go of every lease");
	stop_finished(cl);
}

static void on_stop_deadline(uv_timer_t *t)
{
	struct cluster *cl = t->data;
	log_warn("cluster: could not let the leases go in time; they expire in %u s", cl->lease_s);
	stop_finished(cl);
}

static void stop_try(struct cluster *cl)
{
	if (!cl->stop_done)
		return;
	if (!pg_is_up(cl->pg)) {
		stop_finished(cl);
		return;
	}
	if (!pg_is_idle(cl->pg)) { /* a round in flight: its on_done comes first */
		uv_timer_start(&cl->timer, on_timer, 20, 0);
		return;
	}
	buf_clear(&cl->sql);
	int rc = buf_printf(&cl->sql,
			    "UPDATE room_leases SET node = NULL, expires_at = '-infinity', "
			    "since = NULL WHERE node = '%s';\n"
			    "UPDATE nodes SET expires_at = now(), rooms = 0 WHERE node = '%s';\n"
			    "NOTIFY danmakud_leases;\n",
			    cl->node, cl->node);
	rc |= buf_append(&cl->sql, "", 1);
	if (rc || pg_exec(cl->pg, (const char *)buf_head(&cl->sql), NULL, 0, NULL, on_stop_done,
			  cl) < 0)
		stop_finished(cl);
}

void cluster_stop(struct cluster *cl, uint64_t deadline_ms, void (*done)(void *ctx), void *ctx)
{
	cl->stopping = true;
	cl->stop_done = done;
	cl->stop_ctx = ctx;
	uv_timer_stop(&cl->timer);
	uv_timer_start(&cl->stop_timer, on_stop_deadline, deadline_ms, 0);
	stop_try(cl);
}

static void on_closed(uv_handle_t *h)
{
	struct cluster *cl = h->data;
	if (--cl->closes == 0)
		free(cl);
}

void cluster_close(struct cluster *cl)
{
	if (!cl)
		return;
	pg_close(cl->pg);
	free_rooms(cl->offers, cl->n_offers);
	free(cl->offers);
	free_rooms(cl->held, cl->n_held);
	free(cl->held);
	free_rooms(cl->gone, cl->n_gone);
	free(cl->gone);
	free_rooms(cl->stopping_rooms, cl->n_stopping);
	free(cl->stopping_rooms);
	free_rooms(cl->got, cl->n_got);
	free(cl->got);
	free(cl->node);
	buf_finish(&cl->sql);
	buf_finish(&cl->copy);
	cl->closes = 2;
	uv_close((uv_handle_t *)&cl->timer, on_closed);
	uv_close((uv_handle_t *)&cl->stop_timer, on_closed);
}
