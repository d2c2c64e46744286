/*
 * test_metrics: the STATUS= text, the Prometheus exposition (exact sample lines, label
 * escaping, one HELP/TYPE per family with its samples grouped after it, omitted samples for
 * rooms without messages or connection) and the atomic file replacement.
 */
#include "metrics.h"

#include "test.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static struct metrics_global sample_global(void)
{
	return (struct metrics_global){
	    .version = "9.8.7",
	    .start_ms = 1700000000123,
	    .rooms = 2,
	    .rooms_live = 1,
	    .received = 1000,
	    .received_per_s = 12.25,
	    .committed = 990,
	    .duplicates = 7,
	    .dropped = 3,
	    .queued_rows = 11,
	    .queued_bytes = 4096,
	    .failed_flushes = 2,
	    .store_errors = 6,
	    .foreign = 5,
	    .storage_ok = true,
	    .reloads_ok = 4,
	    .reloads_failed = 1,
	};
}

static void test_status(void)
{
	struct metrics_global g = sample_global();
	char s[256];
	metrics_status(s, sizeof(s), &g);
	ASSERT_STR_EQ(s, "rooms live 1/2, 12.2 msg/s, queued 11 rows, stored 990, dropped 3");
	g.storage_ok = false;
	metrics_status(s, sizeof(s), &g);
	ASSERT_STR_EQ(s, "rooms live 1/2, 12.2 msg/s, queued 11 rows, stored 990, dropped 3, "
	                 "storage failing");
	char small[10];
	metrics_status(small, sizeof(small), &g);
	ASSERT_STR_EQ(small, "rooms liv"); /* cut, still terminated */
}

static char *render(const struct metrics_room *rooms, size_t n, uint64_t now_ms)
{
	struct metrics_global g = sample_global();
	struct buf b;
	buf_init(&b);
	if (metrics_render(&b, &g, rooms, n, now_ms) < 0 || buf_append(&b, "", 1) < 0) {
		buf_finish(&b);
		return NULL;
	}
	char *s = strdup((char *)buf_head(&b));
	buf_finish(&b);
	return s;
}

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; (p = strstr(p, line)); p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

static int count_str(const char *text, const char *s)
{
	int k = 0;
	for (const char *p = text; (p = strstr(p, s)); p++)
		k++;
	return k;
}

static const struct metrics_room two_rooms[] = {
    {.room = "9999",
     .label = "a \"quoted\" back\\slash\nnewline 主播",
     .state = "live",
     .live = true,
     .received = 600,
     .stored = 598,
     .foreign = 2,
     .reconnects = 3,
     .last_msg_ms = 1700000100000,
     .session_start_ms = 1700000050500},
    {.room = "288016", .label = NULL, .state = "backoff", .reconnects = 9},
};

static void test_render_samples(void)
{
	char *t = render(two_rooms, 2, 1700000102500);
	ASSERT(t != NULL);
	ASSERT(has_line(t, "danmakud_build_info{version=\"9.8.7\"} 1"));
	ASSERT(has_line(t, "danmakud_start_time_seconds 1700000000.123"));
	ASSERT(has_line(t, "danmakud_rooms 2"));
	ASSERT(has_line(t, "danmakud_rooms_live 1"));
	ASSERT(has_line(t, "danmakud_messages_received_total 1000"));
	ASSERT(has_line(t, "danmakud_messages_committed_total 990"));
	ASSERT(has_line(t, "danmakud_messages_duplicate_total 7"));
	ASSERT(has_line(t, "danmakud_messages_dropped_total 3"));
	ASSERT(has_line(t, "danmakud_messages_foreign_total 5"));
	ASSERT(has_line(t, "danmakud_queue_rows 11"));
	ASSERT(has_line(t, "danmakud_queue_bytes 4096"));
	ASSERT(has_line(t, "danmakud_flush_failures_total 2"));
	ASSERT(has_line(t, "danmakud_store_errors_total 6"));
	ASSERT(has_line(t, "danmakud_storage_ok 1"));
	ASSERT(has_line(t, "danmakud_config_reloads_total{result=\"ok\"} 4"));
	ASSERT(has_line(t, "danmakud_config_reloads_total{result=\"failed\"} 1"));
	ASSERT(has_line(t, "danmakud_room_info{room=\"9999\",label=\"a \\\"quoted\\\" "
	                   "back\\\\slash\\nnewline 主播\"} 1"));
	ASSERT(has_line(t, "danmakud_room_info{room=\"288016\",label=\"\"} 1"));
	ASSERT(has_line(t, "danmakud_room_state{room=\"9999\",state=\"live\"} 1"));
	ASSERT(has_line(t, "danmakud_room_state{room=\"288016\",state=\"backoff\"} 1"));
	ASSERT(has_line(t, "danmakud_room_live{room=\"9999\"} 1"));
	ASSERT(has_line(t, "danmakud_room_live{room=\"288016\"} 0"));
	ASSERT(has_line(t, "danmakud_room_messages_received_total{room=\"9999\"} 600"));
	ASSERT(has_line(t, "danmakud_room_messages_stored_total{room=\"9999\"} 598"));
	ASSERT(has_line(t, "danmakud_room_messages_foreign_total{room=\"9999\"} 2"));
	ASSERT(has_line(t, "danmakud_room_reconnects_total{room=\"288016\"} 9"));
	ASSERT(has_line(t, "danmakud_room_last_message_timestamp_seconds{room=\"9999\"} "
	                   "1700000100.000"));
	ASSERT(has_line(t, "danmakud_room_last_message_age_seconds{room=\"9999\"} 2.500"));
	ASSERT(has_line(t, "danmakud_room_session_start_timestamp_seconds{room=\"9999\"} "
	                   "1700000050.500"));
	/* No message and no connection: those samples are absent, not zero. */
	ASSERT(!strstr(t, "danmakud_room_last_message_age_seconds{room=\"288016\"}"));
	ASSERT(!strstr(t, "danmakud_room_last_message_timestamp_seconds{room=\"288016\"}"));
	ASSERT(!strstr(t, "danmakud_room_session_start_timestamp_seconds{room=\"288016\"}"));
	ASSERT(t[strlen(t) - 1] == '\n');
	free(t);
}

/* Every sample line belongs to the family announced by the closest TYPE line above it, and
 * each family has exactly one HELP and one TYPE. */
static void test_render_grouping(void)
{
	char *t = render(two_rooms, 2, 1700000102500);
	ASSERT(t != NULL);
	char family[128] = "";
	int samples = 0, bad = 0;
	for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
		if (strncmp(line, "# TYPE ", 7) == 0) {
			sscanf(line + 7, "%127s", family);
			continue;
		}
		if (line[0] == '#')
			continue;
		size_t n = strcspn(line, "{ ");
		if (strlen(family) != n || strncmp(line, family, n) != 0) {
			printf("# sample outside its family (%s): %s\n", family, line);
			bad++;
		}
		samples++;
	}
	ASSERT_EQ(bad, 0);
	ASSERT_GT(samples, 30);
	free(t);
	t = render(two_rooms, 2, 1700000102500);
	ASSERT(t != NULL);
	ASSERT_EQ(count_str(t, "# TYPE danmakud_room_live "), 1);
	ASSERT_EQ(count_str(t, "# HELP danmakud_room_live "), 1);
	ASSERT_EQ(count_str(t, "# TYPE "), count_str(t, "# HELP "));
	ASSERT(has_line(t, "# TYPE danmakud_room_messages_received_total counter"));
	ASSERT(has_line(t, "# TYPE danmakud_room_last_message_age_seconds gauge"));
	free(t);
}

static void test_render_no_rooms(void)
{
	char *t = render(NULL, 0, 1);
	ASSERT(t != NULL);
	ASSERT(has_line(t, "danmakud_rooms 2")); /* from the global struct */
	ASSERT(!strstr(t, "danmakud_room_"));    /* no empty room families */
	free(t);
}

static void test_write_file(void)
{
	char path[300], tmp[310];
	snprintf(path, sizeof(path), "%s/danmakud.prom", tmpdir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	mode_t old = umask(027);
	ASSERT_EQ(metrics_write_file(path, "a 1\n", 4), 0);
	ASSERT_EQ(metrics_write_file(path, "b 2\nc 3\n", 8), 0);
	umask(old);
	size_t len;
	char *got = test_read_file(path, &len);
	ASSERT(got != NULL);
	ASSERT_EQ(len, 8);
	ASSERT_STR_EQ(got, "b 2\nc 3\n");
	free(got);
	ASSERT(access(tmp, F_OK) != 0); /* renamed away */
	struct stat st;
	ASSERT_EQ(stat(path, &st), 0);
	ASSERT_EQ(st.st_mode & 0777, 0644); /* readable by a collector despite the umask */
	unlink(path);

	char missing[300];
	snprintf(missing, sizeof(missing), "%s/no/such/dir/x.prom", tmpdir);
	ASSERT_EQ(metrics_write_file(missing, "x", 1), -ENOENT);
	/* A directory in the way of the rename: the error comes back, no temporary is left. */
	snprintf(path, sizeof(path), "%s/isdir", tmpdir);
	ASSERT_EQ(mkdir(path, 0755), 0);
	ASSERT_EQ(metrics_write_file(path, "x", 1), -EISDIR);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	ASSERT(access(tmp, F_OK) != 0);
	rmdir(path);
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/dmk-metrics-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		printf("Bail out! mkdtemp failed\n");
		return 1;
	}
	RUN(test_status);
	RUN(test_render_samples);
	RUN(test_render_grouping);
	RUN(test_render_no_rooms);
	RUN(test_write_file);
	rmdir(tmpdir);
	TEST_DONE();
}
