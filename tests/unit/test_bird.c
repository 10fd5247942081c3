/* Running BIRD: start it detached on its files, find it by its pid file,
 * drive it over the control socket (a refused configuration comes back as
 * BIRD's message), stop it; a start that cannot work says why. Each test
 * runs in a network namespace of its own, so BIRD sees no real interface. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "bird.h"

static char dir[] = "/tmp/aeth-bird-XXXXXX";
static struct aeth_bird bird;

static const char good_conf[] =
	"router id 192.0.2.11;\n"
	"protocol device aeth_device { scan time 10; }\n"
	"protocol static aeth_vips4 { ipv4; route 203.0.113.10/32 blackhole; }\n";

static void setup(void)
{
	cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare: %s", strerror(errno));
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(aeth_bird_init(&bird, dir), 0);
}

static void teardown(void)
{
	char cmd[128];

	aeth_bird_stop(aeth_bird_find(&bird), 2000);
	snprintf(cmd, sizeof(cmd), "/bin/rm -rf %s", dir);
	system(cmd);
}

TestSuite(bird, .init = setup, .fini = teardown);

Test(bird, start_find_command_stop)
{
	struct aeth_error err = { 0 };
	char reply[2048];
	pid_t pid;

	cr_assert_eq(aeth_bird_write_conf(&bird, good_conf), 0);
	pid = aeth_bird_start(&bird, &err);
	cr_assert_gt(pid, 0, "start: %s", err.message);
	cr_expect_eq(aeth_bird_find(&bird), pid);
	cr_expect(aeth_bird_alive(pid));

	cr_assert_eq(aeth_bird_command(&bird, "show route", reply,
				       sizeof(reply)), 0);
	cr_expect(strstr(reply, "203.0.113.10/32"), "reply: %s", reply);

	/* a refused configuration: BIRD's message, and it keeps the old one */
	cr_assert_eq(aeth_bird_write_conf(&bird, "router id x;\n"), 0);
	cr_expect_eq(aeth_bird_command(&bird, "configure", reply,
				       sizeof(reply)), -EPROTO);
	cr_expect(strstr(reply, "bird.conf"), "reply: %s", reply);
	cr_expect_eq(aeth_bird_command(&bird, "show route", reply,
				       sizeof(reply)), 0);
	cr_expect(strstr(reply, "203.0.113.10/32"), "old routes kept: %s", reply);

	/* an accepted one that withdraws the route */
	cr_assert_eq(aeth_bird_write_conf(&bird,
		"router id 192.0.2.11;\nprotocol device aeth_device {}\n"
		"protocol static aeth_vips4 { ipv4; }\n"), 0);
	cr_expect_eq(aeth_bird_command(&bird, "configure", reply,
				       sizeof(reply)), 0, "reply: %s", reply);
	aeth_bird_command(&bird, "show route", reply, sizeof(reply));
	cr_expect_null(strstr(reply, "203.0.113.10"), "withdrawn: %s", reply);

	cr_expect_eq(aeth_bird_command(&bird, "no such command", reply,
				       sizeof(reply)), -EPROTO);
	cr_expect_eq(aeth_bird_stop(pid, 3000), 0);
	cr_expect_not(aeth_bird_alive(pid));
	cr_expect_eq(aeth_bird_find(&bird), 0);
	cr_expect_lt(aeth_bird_command(&bird, "show status", reply,
				       sizeof(reply)), 0, "socket gone");
}

Test(bird, refused_config_says_why)
{
	struct aeth_error err = { 0 };

	cr_assert_eq(aeth_bird_write_conf(&bird, "protocol nonsense {}\n"), 0);
	cr_expect_lt(aeth_bird_start(&bird, &err), 0);
	cr_expect(strstr(err.message, "bird refused to start"), "err: %s",
		  err.message);
	cr_expect(strstr(err.message, "bird.conf"), "BIRD's own message: %s",
		  err.message);
	cr_expect_eq(aeth_bird_find(&bird), 0);
}

Test(bird, missing_binary_says_why)
{
	struct aeth_error err = { 0 };

	cr_assert_eq(aeth_bird_write_conf(&bird, good_conf), 0);
	setenv("PATH", "/nonexistent", 1);
	cr_expect_lt(aeth_bird_start(&bird, &err), 0);
	cr_expect(strstr(err.message, "cannot run bird"), "err: %s", err.message);
}

Test(bird, stale_pid_file_is_not_bird)
{
	FILE *f = fopen(bird.pidfile, "w");

	cr_assert_not_null(f);
	fprintf(f, "%d\n", (int)getpid());	/* alive, but not bird */
	fclose(f);
	cr_expect_eq(aeth_bird_find(&bird), 0);
}
