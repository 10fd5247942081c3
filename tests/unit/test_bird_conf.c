/* BIRD's generated configuration: what is announced over which session,
 * BFD only where asked, and BIRD itself accepts the text (bird -p). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "bird_conf.h"
#include "config.h"

static struct aeth_config *load(const char *bgp)
{
	char doc[2048];
	struct aeth_error err;
	struct aeth_config *cfg = NULL;

	snprintf(doc, sizeof(doc),
		 "{\"version\": 1, \"node\": {\"interfaces\": [\"eth0\"],"
		 " \"addresses\": {\"ipv4\": \"192.0.2.11\", \"ipv6\": \"2001:db8::11\"}},"
		 " \"maglev\": {\"seed\": \"00112233445566778899aabbccddeeff\"},"
		 " \"services\": [], \"bgp\": %s}", bgp);
	cr_assert_eq(aeth_config_parse(doc, strlen(doc), &cfg, &err), 0, "%s: %s",
		     err.path, err.message);
	return cfg;
}

static struct aeth_ip ip(const char *s)
{
	struct aeth_ip a = { 0 };

	if (inet_pton(AF_INET, s, &a.addr.v4) == 1)
		a.family = AETH_AF_INET;
	else if (inet_pton(AF_INET6, s, a.addr.bytes) == 1)
		a.family = AETH_AF_INET6;
	return a;
}

/* The block of text that starts at "start" and ends at the next "\n}\n". */
static char *block(const char *text, const char *start)
{
	const char *b = strstr(text, start), *e;

	cr_assert_not_null(b, "no \"%s\" in:\n%s", start, text);
	e = strstr(b, "\n}\n");
	cr_assert_not_null(e);
	return strndup(b, (size_t)(e - b + 3));
}

/* bird -p parses the text and exits 0 only when it is valid. */
static void bird_accepts(const char *text)
{
	char path[] = "/tmp/aeth-bird-conf-XXXXXX", cmd[256];
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	snprintf(cmd, sizeof(cmd), "bird -p -c %s 2>&1", path);
	cr_expect_eq(system(cmd), 0, "bird -p refused:\n%s", text);
	unlink(path);
}

Test(bird_conf, families_to_their_sessions)
{
	struct aeth_config *cfg = load(
		"{\"local_asn\": 64512, \"hold_time\": 9,"
		" \"communities\": [\"64512:100\"], \"peers\": ["
		" {\"address\": \"192.0.2.1\", \"asn\": 64500, \"bfd\": true},"
		" {\"address\": \"2001:db8::1\", \"asn\": 64501}]}");
	struct aeth_ip vips[] = { ip("203.0.113.10"), ip("203.0.113.11"),
				  ip("2001:db8:ffff::10") };
	char *text = aeth_bird_config(cfg->bgp, vips, 3, "/tmp/x.log");
	char *v4, *v6, *p0, *p1;

	cr_assert_not_null(text);
	cr_expect(strstr(text, "router id 192.0.2.11;\n"));
	cr_expect(strstr(text, "log \"/tmp/x.log\""));
	v4 = block(text, "protocol static aeth_vips4 {");
	v6 = block(text, "protocol static aeth_vips6 {");
	cr_expect(strstr(v4, "\troute 203.0.113.10/32 blackhole;\n"));
	cr_expect(strstr(v4, "\troute 203.0.113.11/32 blackhole;\n"));
	cr_expect_null(strstr(v4, "2001:"));
	cr_expect(strstr(v6, "\troute 2001:db8:ffff::10/128 blackhole;\n"));
	cr_expect_null(strstr(v6, "203.0.113"));

	p0 = block(text, "protocol bgp aeth_peer0 {");
	p1 = block(text, "protocol bgp aeth_peer1 {");
	cr_expect(strstr(p0, "\tlocal as 64512;\n"));
	cr_expect(strstr(p0, "\tneighbor 192.0.2.1 as 64500;\n"));
	cr_expect(strstr(p0, "\thold time 9;\n"));
	cr_expect(strstr(p0, "\tbfd on;\n"));
	cr_expect(strstr(p0, "\tipv4 {"));
	cr_expect(strstr(p0, "if proto != \"aeth_vips4\" then reject;"));
	cr_expect(strstr(p0, "bgp_community.add((64512, 100));"));
	cr_expect(strstr(p1, "\tneighbor 2001:db8::1 as 64501;\n"));
	cr_expect_null(strstr(p1, "bfd on"), "BFD only where asked");
	cr_expect(strstr(p1, "\tipv6 {"));
	cr_expect(strstr(p1, "if proto != \"aeth_vips6\" then reject;"));
	cr_expect(strstr(text, "protocol bfd aeth_bfd {"));
	cr_expect(strstr(text, "multiplier 3;"));
	bird_accepts(text);
	free(v4);
	free(v6);
	free(p0);
	free(p1);
	free(text);
	aeth_config_free(cfg);
}

Test(bird_conf, nothing_announced_and_no_bfd)
{
	struct aeth_config *cfg = load(
		"{\"local_asn\": 64512, \"peers\": ["
		" {\"address\": \"192.0.2.1\", \"asn\": 64500}]}");
	char *text = aeth_bird_config(cfg->bgp, NULL, 0, "/tmp/x.log");
	char *v4;

	cr_assert_not_null(text);
	v4 = block(text, "protocol static aeth_vips4 {");
	cr_expect_null(strstr(v4, "route "), "drained: no route in\n%s", v4);
	cr_expect_null(strstr(text, "protocol bfd"));
	cr_expect_null(strstr(text, "hold time"));
	cr_expect(strstr(text, "graceful restart off;"));
	bird_accepts(text);
	free(v4);
	free(text);
	aeth_config_free(cfg);
}

Test(bird_conf, prefix_and_peer_names)
{
	struct aeth_ip a = ip("2001:db8::1"), b = ip("198.51.100.7");
	char buf[64];

	aeth_bird_prefix(&a, buf, sizeof(buf));
	cr_expect_str_eq(buf, "2001:db8::1/128");
	aeth_bird_prefix(&b, buf, sizeof(buf));
	cr_expect_str_eq(buf, "198.51.100.7/32");
	aeth_bird_peer_name(3, buf, sizeof(buf));
	cr_expect_str_eq(buf, "aeth_peer3");
}
