/*
 * test_cli: the command line on argv arrays. For now the options of issue 13, --postgresql
 * and --node (the others are covered by tests/integration/test_cli.py and fuzz_cli): what
 * they accept, their error messages in full, and that no message shows a URL, which may hold
 * a password.
 */
#include "cli.h"
#include "conf.h"

#include "test.h"

#include <errno.h>

static char err[512];

/* A NULL-terminated argument list after "danmakud", and its count. */
#define ARGV(...) ((char *[]){"danmakud", __VA_ARGS__, NULL})
#define ARGC(v) ((int)(sizeof(v) / sizeof(v[0])) - 1)

static int parse(int argc, char **argv, struct cli_opts *o)
{
	if (argv[argc] != NULL) { /* a miscounted argc: fail the caller's assert */
		printf("# argc %d does not match the arguments\n", argc);
		return 1;
	}
	memset(err, 'x', sizeof(err));
	err[sizeof(err) - 1] = '\0';
	return cli_parse(argc, argv, o, err, sizeof(err));
}

/* Expect the arguments to fail with exactly msg. */
#define ASSERT_FAILS(msg, ...)                                                                     \
	do {                                                                                       \
		char **v_ = ARGV(__VA_ARGS__);                                                     \
		struct cli_opts o_;                                                                \
		ASSERT_EQ(parse(ARGC(ARGV(__VA_ARGS__)), v_, &o_), -EINVAL);                       \
		ASSERT_STR_EQ(err, msg);                                                           \
		ASSERT(o_.rooms == NULL);                                                          \
	} while (0)

static void test_defaults(void)
{
	struct cli_opts o;
	char **v = ARGV("1");
	ASSERT_EQ(parse(2, v, &o), 0);
	ASSERT(o.postgresql == NULL);
	ASSERT(o.node == NULL);
	ASSERT_EQ(o.flush_ms, -1);
	ASSERT_EQ(o.n_rooms, 1);
	cli_finish(&o);
}

static void test_postgresql(void)
{
	static const char *const good[] = {
		"postgresql://rec:pw@db.example:5432/chat?sslmode=require",
		"postgres://h/db",
		"postgresql://",
		"host=db port=5432 dbname=chat",
		"dbname = chat",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct cli_opts o;
		char url[128];
		snprintf(url, sizeof(url), "%s", good[i]);
		char **v = ARGV("-c", "x.conf", "--postgresql", url, "bilibili:76");
		ASSERT_EQ(parse(6, v, &o), 0);
		ASSERT(o.postgresql == url); /* points into argv, as the other strings do */
		ASSERT_STR_EQ(o.config, "x.conf");
		ASSERT_EQ(o.n_rooms, 1);
		cli_finish(&o);
	}
	/* --postgresql=URL works as for every long option; the last one given wins. */
	struct cli_opts o;
	char **v = ARGV("--postgresql=postgres://a/b", "--postgresql", "host=c", "1");
	ASSERT_EQ(parse(5, v, &o), 0);
	ASSERT_STR_EQ(o.postgresql, "host=c");
	ASSERT_EQ(o.n_rooms, 1);
	cli_finish(&o);

#define URL_BAD "--postgresql: expected a postgresql:// or postgres:// URL or key=value settings " \
		"(the value is not shown: it may hold a password)"
	ASSERT_FAILS(URL_BAD, "--postgresql", "", "1");
	ASSERT_FAILS(URL_BAD, "--postgresql", "mysql://rec:hunter2@h/db", "1");
	ASSERT_FAILS(URL_BAD, "--postgresql", "hunter2", "1");
	ASSERT_FAILS(URL_BAD, "--postgresql=db.example:5432");
#undef URL_BAD
	ASSERT_FAILS("--postgresql: control character in the value (the value is not shown: it may "
		     "hold a password)",
		     "--postgresql", "postgres://rec:hunter2@h/db\n", "1");
	ASSERT_FAILS("option '--postgresql' needs a value", "1", "--postgresql");
}

static void test_node(void)
{
	char name[64];
	memset(name, 'n', 63);
	name[63] = '\0';
	const char *const good[] = {"rec-a", "a", ".", "Rec_1.example-org", name};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct cli_opts o;
		char arg[80];
		snprintf(arg, sizeof(arg), "%s", good[i]);
		char **v = ARGV("--node", arg, "--postgresql", "postgres://", "9999");
		ASSERT_EQ(parse(6, v, &o), 0);
		ASSERT(o.node == arg);
		ASSERT_EQ(o.n_rooms, 1);
		ASSERT_STR_EQ(o.postgresql, "postgres://");
		cli_finish(&o);
	}
	ASSERT_FAILS("--node: expected 1 to 63 of A-Z a-z 0-9 . _ -, got ''", "--node", "", "1");
	ASSERT_FAILS("--node: expected 1 to 63 of A-Z a-z 0-9 . _ -, got 'rec a'", "--node",
		     "rec a");
	ASSERT_FAILS("--node: expected 1 to 63 of A-Z a-z 0-9 . _ -, got 'rec/a'", "--node=rec/a");
	ASSERT_FAILS("--node: expected 1 to 63 of A-Z a-z 0-9 . _ -, got 'a\\x1b[31m'", "--node",
		     "a\x1b[31m");
	ASSERT_FAILS("--node: expected 1 to 63 of A-Z a-z 0-9 . _ -, got "
		     "'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...'",
		     "--node", "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn");
	ASSERT_FAILS("option '--node' needs a value", "--node");
}

/* The usage text names both options. */
static void test_usage(void)
{
	ASSERT(strstr(cli_usage, "--postgresql URL") != NULL);
	ASSERT(strstr(cli_usage, "--node NAME") != NULL);
}

int main(void)
{
	RUN(test_defaults);
	RUN(test_postgresql);
	RUN(test_node);
	RUN(test_usage);
	TEST_DONE();
}
