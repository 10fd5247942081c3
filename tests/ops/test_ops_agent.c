/* The real agent in a namespace of its own: /readyz turns ready once the
 * document is applied and the program attached, and health-check flips show
 * in /metrics as aether_backend_up. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "version.h"

#define METRICS_PORT 9464	/* the namespace is ours: the default is free */

static char ns[32], tmp_dir[64], pin_dir[64], conf_path[128], log_path[128];
static pid_t agent = -1;
static int host_ns = -1;
static int metrics_family = AF_INET;	/* where get() finds the agent */
static bool ro_proc_sys;		/* the agent sees /proc/sys read-only */

static const char config_fmt[] =
	"{\"version\": 1,\n"
	" \"node\": {\"interfaces\": [\"aopv0\"], \"xdp_mode\": \"native\",\n"
	"          \"addresses\": {\"ipv4\": \"192.0.2.9\"}, \"mtu\": 1500},\n"
	" \"maglev\": {\"seed\": \"5f3c0a1e9b7d2c44a1b2c3d4e5f60718\", \"table_size\": 251},\n"
	" \"conntrack\": {\"max_entries\": 4096},\n"
	" \"services\": [{\"name\": \"web\", \"vip\": \"203.0.113.10\", \"port\": 80,\n"
	"   \"protocol\": \"tcp\",\n"
	"   \"health_check\": {\"type\": \"tcp\", \"port\": 8080, \"interval_ms\": 100,\n"
	"                    \"timeout_ms\": 80, \"rise\": 1, \"fall\": 2},\n"
	"   \"backends\": [{\"address\": \"192.0.2.1\"}, {\"address\": \"192.0.2.2\"}]}]}\n";

/* An IPv6-only node, its ipv4 rendered empty by a template. */
static const char config_v6_only[] =
	"{\"version\": 1,\n"
	" \"node\": {\"interfaces\": [\"aopv0\"], \"xdp_mode\": \"native\",\n"
	"          \"addresses\": {\"ipv4\": \"\", \"ipv6\": \"2001:db8::1\"}},\n"
	" \"maglev\": {\"seed\": \"5f3c0a1e9b7d2c44a1b2c3d4e5f60718\", \"table_size\": 251},\n"
	" \"conntrack\": {\"max_entries\": 4096},\n"
	" \"services\": [{\"name\": \"web6\", \"vip\": \"2001:db8:10::10\", \"port\": 80,\n"
	"   \"protocol\": \"tcp\", \"backends\": [{\"address\": \"2001:db8::2\"}]}]}\n";

/* One ConfigMap for every node: no NIC, no node address. */
static const char config_no_node[] =
	"{\"version\": 1, \"node\": {\"xdp_mode\": \"native\"},\n"
	" \"maglev\": {\"seed\": \"5f3c0a1e9b7d2c44a1b2c3d4e5f60718\", \"table_size\": 251},\n"
	" \"conntrack\": {\"max_entries\": 4096},\n"
	" \"services\": [{\"name\": \"web\", \"vip\": \"203.0.113.10\", \"port\": 80,\n"
	"   \"protocol\": \"tcp\", \"backends\": [{\"address\": \"192.0.2.2\"}]}]}\n";

static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Move this thread into the test namespace (sockets keep the namespace they
 * were made in, so the test makes them there and comes back). */
static int enter_ns(void)
{
	char path[64];
	int fd, err;

	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = setns(fd, CLONE_NEWNET) ? -errno : 0;
	close(fd);
	return err;
}

static void leave_ns(void)
{
	if (setns(host_ns, CLONE_NEWNET))
		perror("setns back");
}

static int ns_socket(int family)
{
	int fd;

	cr_assert_eq(enter_ns(), 0);
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	leave_ns();
	return fd;
}

/* GET path from the agent; returns the status code, body copied to out. */
static int get(const char *path, char *out, size_t len)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(METRICS_PORT),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6,
				     .sin6_port = htons(METRICS_PORT),
				     .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	bool v6 = metrics_family == AF_INET6;
	static char resp[1 << 20];
	size_t got = 0;
	char req[128];
	ssize_t n;
	int fd, code = 0;
	char *body;

	if (out && len)
		out[0] = '\0';
	fd = ns_socket(metrics_family);
	if (fd < 0)
		return 0;
	if (connect(fd, v6 ? (struct sockaddr *)&sin6 : (struct sockaddr *)&sin,
		    v6 ? sizeof(sin6) : sizeof(sin))) {
		close(fd);
		return 0;
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
		close(fd);
		return 0;
	}
	while (got < sizeof(resp) - 1 &&
	       (n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0)) > 0)
		got += (size_t)n;
	resp[got] = '\0';
	close(fd);
	if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1)
		return 0;
	body = strstr(resp, "\r\n\r\n");
	if (out && body)
		snprintf(out, len, "%s", body + 4);
	return code;
}

static bool has_line(const char *body, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = body; (p = strstr(p, line)); p++)
		if ((p == body || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

/* Poll /metrics until it holds line, up to max_ms. */
static bool wait_metric(const char *line, uint64_t max_ms)
{
	static char body[1 << 20];
	uint64_t start = now_ms();

	do {
		if (get("/metrics", body, sizeof(body)) == 200 && has_line(body, line))
			return true;
		usleep(50000);
	} while (now_ms() - start < max_ms);
	return false;
}

static void dump_log(void)
{
	sh("tail -n 20 %s >&2", log_path);
}

static int listen_health(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(8080) };
	int fd = ns_socket(AF_INET), one = 1;

	cr_assert_geq(fd, 0);
	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0,
		     "bind 192.0.2.1:8080: %s", strerror(errno));
	/* never accepted: the kernel completes the handshakes, enough for a
	 * tcp check during this test */
	cr_assert_eq(listen(fd, 1024), 0);
	return fd;
}

static void write_config(const char *text)
{
	FILE *f = fopen(conf_path, "w");

	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static void setup(void)
{

	snprintf(ns, sizeof(ns), "aeth-op-a%d", getpid());
	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/aeth-op-a%d", getpid());
	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/aeth-op-a%d", getpid());
	snprintf(conf_path, sizeof(conf_path), "%s/config.json", tmp_dir);
	snprintf(log_path, sizeof(log_path), "%s/agent.log", tmp_dir);
	host_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(host_ns, 0);
	cr_assert_eq(mkdir(tmp_dir, 0700), 0);
	cr_assert_eq(sh("ip netns add %s", ns), 0);
	cr_assert_eq(sh("ip -n %s link set lo up && "
			"ip -n %s link add aopv0 type veth peer name aopv1 && "
			"ip -n %s addr add 192.0.2.1/24 dev aopv0 && "
			"ip -n %s link set aopv0 up && ip -n %s link set aopv1 up",
			ns, ns, ns, ns, ns), 0);
	write_config(config_fmt);
	metrics_family = AF_INET;
	ro_proc_sys = false;
}

static void teardown(void)
{
	int status;

	if (agent > 0) {
		kill(agent, SIGTERM);
		waitpid(agent, &status, 0);
		agent = -1;
	}
	if (host_ns >= 0 && enter_ns() == 0) {
		sh("%s --detach --pin-dir %s >/dev/null 2>&1", AETH_AGENT_BIN, pin_dir);
		leave_ns();
	}
	sh("ip netns del %s 2>/dev/null", ns);
	sh("rm -rf %s %s", pin_dir, tmp_dir);
	if (host_ns >= 0)
		close(host_ns);
	host_ns = -1;
}

TestSuite(ops_agent, .init = setup, .fini = teardown, .timeout = 60);

static void start_agent_at(const char *metrics_addr)
{
	int log_fd;

	agent = fork();
	cr_assert_geq(agent, 0);
	if (agent == 0) {
		char port[32], sock[128];

		/* the network namespace only: the bpffs mount stays visible */
		if (enter_ns())
			_exit(127);
		/* as in a pod without privileges, in a mount namespace of
		 * the agent's own */
		if (ro_proc_sys &&
		    (unshare(CLONE_NEWNS) ||
		     mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
		     mount("/proc/sys", "/proc/sys", NULL, MS_BIND, NULL) ||
		     mount(NULL, "/proc/sys", NULL,
			   MS_BIND | MS_REMOUNT | MS_RDONLY, NULL)))
			_exit(126);
		log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(log_fd, 1);
		dup2(log_fd, 2);
		snprintf(port, sizeof(port), metrics_addr, METRICS_PORT);
		snprintf(sock, sizeof(sock), "%s/agent.sock", tmp_dir);
		execl(AETH_AGENT_BIN, AETH_AGENT_BIN, "--config", conf_path,
		      "--pin-dir", pin_dir, "--socket", sock,
		      "--metrics-addr", port, "--log-level", "info", (char *)NULL);
		_exit(127);
	}
}

static void start_agent(void)
{
	start_agent_at("127.0.0.1:%d");
}

/* Poll /readyz until 200; fails the test (with the log) otherwise. */
static void wait_ready(void)
{
	static char body[4096];
	uint64_t start = now_ms();
	int code = 0;

	while (now_ms() - start < 15000) {
		code = get("/readyz", body, sizeof(body));
		if (code == 200)
			return;
		cr_assert(code == 0 || code == 503, "/readyz answered %d", code);
		if (waitpid(agent, NULL, WNOHANG) == agent) {
			agent = -1;
			dump_log();
			cr_assert_fail("the agent exited");
		}
		usleep(50000);
	}
	dump_log();
	cr_assert_fail("/readyz never turned 200");
}

/* ipv4 "" with an ipv6 address is an IPv6-only node; its metrics listen on
 * a bracketed IPv6 address, and say which build runs. */
Test(ops_agent, ipv6_only_node_metrics_on_ipv6)
{
	write_config(config_v6_only);
	metrics_family = AF_INET6;
	start_agent_at("[::1]:%d");
	wait_ready();
	cr_assert(wait_metric("aether_config_generation 1", 3000));
	cr_assert(wait_metric("aether_build_info{version=\"" AETH_VERSION
			      "\",commit=\"" AETH_COMMIT "\"} 1", 1000));
	cr_assert(wait_metric("aether_backend_up{service=\"web6\",backend=\"2001:db8::2\"} 1",
			      1000));
}

/* One line each: name, version, commit (12 hex digits or "unknown"). */
Test(ops_agent, version_of_both_programs)
{
	static const char *const bins[][2] = {
		{ AETH_AGENT_BIN, "aether-agent" }, { AETH_CTL_BIN, "aetherctl" },
	};
	char out[256], want[256], cmd[600];
	size_t n;
	FILE *p;

	cr_assert(strcmp(AETH_COMMIT, "unknown") == 0 ||
		  (strlen(AETH_COMMIT) == 12 &&
		   strspn(AETH_COMMIT, "0123456789abcdef") == 12),
		  "commit \"%s\"", AETH_COMMIT);
	for (int i = 0; i < 2; i++) {
		snprintf(cmd, sizeof(cmd), "%s --version", bins[i][0]);
		p = popen(cmd, "r");
		cr_assert_not_null(p);
		n = fread(out, 1, sizeof(out) - 1, p);
		out[n] = '\0';
		cr_assert_eq(pclose(p), 0, "%s failed", cmd);
		snprintf(want, sizeof(want), "%s %s (commit %s)\n", bins[i][1],
			 AETH_VERSION, AETH_COMMIT);
		cr_assert_str_eq(out, want);
	}
}

Test(ops_agent, ready_and_backend_health_in_metrics)
{
	static char body[4096];
	uint64_t start;
	int lfd, code = 0;

	lfd = listen_health();
	start_agent();

	/* ready once applied and attached; before that 503 or not listening */
	start = now_ms();
	while (now_ms() - start < 15000) {
		code = get("/readyz", body, sizeof(body));
		if (code == 200)
			break;
		cr_assert(code == 0 || code == 503, "/readyz answered %d", code);
		if (waitpid(agent, NULL, WNOHANG) == agent) {
			agent = -1;
			dump_log();
			cr_assert_fail("the agent exited");
		}
		usleep(50000);
	}
	if (code != 200)
		dump_log();
	cr_assert_eq(code, 200, "/readyz never turned 200");
	cr_assert_eq(get("/healthz", body, sizeof(body)), 200);
	cr_assert_str_eq(body, "ok\n");

	cr_assert(wait_metric("aether_config_generation 1", 3000));
	cr_assert(wait_metric("aether_config_apply_total{result=\"ok\"} 1", 3000));
	/* 192.0.2.2 answers nobody's ARP: its check times out and it leaves */
	cr_assert(wait_metric("aether_backend_up{service=\"web\",backend=\"192.0.2.2\"} 0",
			      5000), "192.0.2.2 never marked down");
	cr_assert(wait_metric("aether_backend_up{service=\"web\",backend=\"192.0.2.1\"} 1",
			      1000));
	cr_assert(wait_metric("aether_packets_total{service=\"web\",verdict=\"tx\"} 0",
			      1000));

	/* the listening backend goes away and comes back */
	close(lfd);
	cr_assert(wait_metric("aether_backend_up{service=\"web\",backend=\"192.0.2.1\"} 0",
			      5000), "192.0.2.1 never marked down");
	lfd = listen_health();
	cr_assert(wait_metric("aether_backend_up{service=\"web\",backend=\"192.0.2.1\"} 1",
			      5000), "192.0.2.1 never back up");
	close(lfd);
	cr_assert_eq(sh("grep -q 'backend 192.0.2.2 of web is down' %s", log_path), 0,
		     "flip not logged");
}

/* The document names no NIC and no address: the agent takes the NIC of the
 * default route and its address. */
Test(ops_agent, nic_and_address_found_when_the_document_omits_them)
{
	write_config(config_no_node);
	cr_assert_eq(sh("ip -n %s route add default via 192.0.2.254 dev aopv0", ns), 0);
	start_agent();
	wait_ready();
	cr_assert_eq(sh("%s -j --pin-dir %s status | grep -q '\"name\": *\"aopv0\"'",
			AETH_CTL_BIN, pin_dir), 0, "not attached to aopv0");
	cr_assert_eq(sh("grep -q 'config from file applied' %s", log_path), 0);
}

/* Nothing to go by: the agent refuses with the member and the reason. */
Test(ops_agent, no_nic_found_is_a_clear_error)
{
	int status = 0;

	write_config(config_no_node);
	start_agent();
	for (int i = 0; i < 200 && waitpid(agent, &status, WNOHANG) == 0; i++)
		usleep(50000);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1,
		  "the agent did not exit with 1");
	agent = -1;
	cr_assert_eq(sh("grep -q 'node.interfaces: absent, and no NIC holds a "
			"node address or the default route (give --interface)' %s",
			log_path), 0, "no clear error");
}

/* /proc/sys read-only: a setting the host already has passes quietly, a
 * missing one is named with the command that sets it on the host, and the
 * agent runs on. */
Test(ops_agent, read_only_proc_sys_names_the_host_settings)
{
	/* a new namespace may inherit the host's values: set both kinds */
	cr_assert_eq(sh("ip netns exec %s sysctl -qw net.ipv4.conf.aopv0.accept_local=1 "
			"net.ipv4.conf.aopv0.rp_filter=0 net.ipv4.ip_forward=0 "
			"net.ipv4.conf.aopv0.forwarding=0", ns), 0);
	ro_proc_sys = true;
	start_agent();
	wait_ready();
	cr_assert_eq(sh("grep -q 'net.ipv4.ip_forward is 0, needs 1, and cannot be "
			"set here (Read-only file system): set it on the host "
			"(sysctl -w net.ipv4.ip_forward=1' %s", log_path), 0,
		     "ip_forward not reported");
	cr_assert_eq(sh("grep -q 'net.ipv4.conf.aopv0.forwarding is 0' %s",
			log_path), 0, "forwarding not reported");
	cr_assert_neq(sh("grep -qE 'accept_local|aopv0.rp_filter' %s", log_path), 0,
		      "a setting the host has was reported");
}

/* aetherctl config get|apply and node show through the agent's socket. */
Test(ops_agent, ctl_config_and_node_through_the_socket)
{
	char sock[128], cmd[512], out[8192], bad[160];
	size_t n;
	FILE *p;

	snprintf(sock, sizeof(sock), "%s/agent.sock", tmp_dir);
	start_agent();
	wait_ready();

	/* config get: the document as applied */
	snprintf(cmd, sizeof(cmd), "%s config get --socket %s", AETH_CTL_BIN, sock);
	p = popen(cmd, "r");
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	cr_assert_eq(pclose(p), 0);
	cr_assert_str_eq(out, config_fmt);

	/* apply a changed document: generation 2 */
	snprintf(bad, sizeof(bad), "%s/v2.json", tmp_dir);
	cr_assert_eq(sh("sed 's/\"table_size\": 251/\"table_size\": 509/' %s > %s",
			conf_path, bad), 0);
	cr_assert_eq(sh("%s --socket %s config apply %s | grep -qx 'applied %s: "
			"generation 2'", AETH_CTL_BIN, sock, bad, bad), 0);
	cr_assert(wait_metric("aether_config_generation 2", 3000));

	/* an invalid one: exit 1, the place named, the state kept */
	cr_assert_eq(sh("sed 's/\"port\": 80/\"port\": 80000/' %s > %s",
			conf_path, bad), 0);
	cr_assert_eq(sh("%s config apply %s --socket %s -j > %s/err.json; "
			"test $? -eq 1", AETH_CTL_BIN, bad, sock, tmp_dir), 0);
	cr_assert_eq(sh("grep -q 'services\\[0\\].port: must be <= 65535' %s/err.json",
			tmp_dir), 0, "error without its place");
	cr_assert(wait_metric("aether_config_generation 2", 1000));

	/* node show: the agent's status, options after the verb */
	cr_assert_eq(sh("%s node show -j --socket %s | grep -q '\"generation\": *2'",
			AETH_CTL_BIN, sock), 0);
	/* no agent: a clear error */
	cr_assert_eq(sh("%s node show --socket %s/none 2>&1 | grep -q 'cannot "
			"reach the agent'", AETH_CTL_BIN, tmp_dir), 0);
}

/* An unbracketed IPv6 listen address is refused with the form to use, not
 * misread as an address without a port. */
Test(ops_agent, unbracketed_ipv6_metrics_address_is_refused)
{
	int status = 0;

	start_agent_at("2001:db8::1:%d");
	for (int i = 0; i < 200 && waitpid(agent, &status, WNOHANG) == 0; i++)
		usleep(50000);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1,
		  "the agent did not exit with 1");
	agent = -1;
	cr_assert_eq(sh("grep -qF -- '--metrics-addr 2001:db8::1:9464: not "
			"A.B.C.D:PORT or [ADDRESS]:PORT' %s", log_path), 0,
		     "no clear error");
}

/* The document names the node address but no NIC, and there is no default
 * route: the NIC is the one holding the address. */
Test(ops_agent, nic_found_by_the_node_address)
{
	write_config("{\"version\": 1, \"node\": {\"addresses\": {\"ipv4\": \"192.0.2.1\"}},\n"
		     " \"maglev\": {\"seed\": \"5f3c0a1e9b7d2c44a1b2c3d4e5f60718\", \"table_size\": 251},\n"
		     " \"conntrack\": {\"max_entries\": 4096}, \"services\": []}\n");
	cr_assert_eq(sh("ip -n %s link add aopx0 type veth peer name aopx1 && ip -n %s link set aopx0 up",
			ns, ns), 0);
	start_agent();
	wait_ready();
	cr_assert_eq(sh("%s -j --pin-dir %s status | grep -q '\"name\": *\"aopv0\"'",
			AETH_CTL_BIN, pin_dir), 0, "not attached to aopv0");
	cr_assert_neq(sh("%s -j --pin-dir %s status | grep -q aopx0",
			 AETH_CTL_BIN, pin_dir), 0, "attached to another NIC");
}
