/*
 * cluster: shard mode. The rooms of every node's config are offered in PostgreSQL
 * (room_offers); each room has one lease (room_leases) that one node holds at a time, taken
 * with SELECT ... FOR UPDATE SKIP LOCKED and renewed every lease_s / 3 (the plpgsql function
 * danmakud_lease does a whole round in one call). A node takes up to its fair share,
 * ceil(rooms offered / nodes alive), at most max_rooms, and records exactly the rooms it holds.
 *
 * Handover without two recorders on a room: a node stops a room first and lets its lease go
 * only once the connection is closed (cluster_room_gone); SIGTERM lets every lease go at once
 * after the rooms closed, with NOTIFY danmakud_leases so the others take them within a
 * second; a node killed keeps its leases until they expire (lease_s), and the others take
 * them at their next round. A node that cannot reach PostgreSQL keeps recording until its
 * leases would have expired (counted from when it sent the last renewal that succeeded, so
 * never later than PostgreSQL's own expiry), then stops every room.
 */
#ifndef DANMAKUD_CLUSTER_H
#define DANMAKUD_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "conf.h"

struct net_ctx;
struct cluster;

struct cluster_options {
	const char *conninfo;
	const char *password;
	const char *node;
	unsigned lease_s;   /* >= 3 */
	unsigned max_rooms; /* 0: no limit */
};

struct cluster_callbacks {
	/* Record exactly these rooms now (the ones held; labels from the offering config); the
	 * others stop, their sessions ending with reason ("lease moved", "lease expired"). */
	void (*set_rooms)(void *user_data, const struct conf_room *rooms, size_t n,
			  const char *reason);
};

int cluster_create(uv_loop_t *loop, struct net_ctx *net, const struct cluster_options *opt,
		   const struct cluster_callbacks *cb, void *user_data, struct cluster **out,
		   char *err, size_t errlen);
/* The rooms this node offers (its config; copied). Sent at the next round. -ENOMEM. */
int cluster_offer(struct cluster *cl, const struct conf_room *rooms, size_t n);
void cluster_start(struct cluster *cl);
/* Once a second: local lease expiry while PostgreSQL is unreachable. */
void cluster_tick(struct cluster *cl);
/* A room this node stopped has closed its connection: its lease can go now. */
void cluster_room_gone(struct cluster *cl, const struct platform *pf, int64_t id);
/* Rooms held now. */
size_t cluster_held(const struct cluster *cl);
/* Graceful stop, once every room is closed: let every lease go (NOTIFY), then done (within
 * deadline_ms whatever happens). */
void cluster_stop(struct cluster *cl, uint64_t deadline_ms, void (*done)(void *ctx), void *ctx);
void cluster_close(struct cluster *cl); /* NULL ok */

/* The PostgreSQL function behind a round (created with the schema by ship.c). */
extern const char cluster_lease_fn_sql[];

#endif
