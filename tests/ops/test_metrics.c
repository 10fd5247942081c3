/* The metrics listener against real maps: the data path's object loaded with
 * its maps pinned under /sys/fs/bpf/aeth-op-PID, counters written per CPU,
 * pages fetched over TCP and compared line by line. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <event2/event.h>

#include "aether/abi.h"
#include "aether/map_table.h"
#include "aether_lb.skel.h"
#include "aether/ct_table.h"
#include "ct_table.h"
#include "log.h"
#include "metrics.h"
#include "pinned.h"
#include "version.h"

#define PIN_PREFIX "/sys/fs/bpf/aeth-op-"
#define CT_ENTRIES 16384

static char pin_dir[64];
static struct aether_lb *skel;
static struct aeth_map_fds fds;
static struct event_base *base;
static struct aeth_agent_status status;
static int ncpus;

static const struct {
	int *fd;
	const char *name;
} map_names[] = {
#define MAP_ROW_(f, ...) { &fds.f, AETH_MAP_NAME(f) },
	AETH_PINNED_MAPS(MAP_ROW_)
#undef MAP_ROW_
};
#define N_MAPS (sizeof(map_names) / sizeof(map_names[0]))

static void remove_dir(const char *dir)
{
	struct dirent *de;
	char path[512];
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/* Pins left by a run that crashed before its cleanup: their pid is gone. */
static void remove_stale_pins(void)
{
	struct dirent *de;
	char path[512];
	DIR *d = opendir("/sys/fs/bpf");

	if (!d)
		return;
	while ((de = readdir(d))) {
		int pid;

		if (sscanf(de->d_name, "aeth-op-%d", &pid) != 1 || pid <= 0)
			continue;
		if (kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "/sys/fs/bpf/%s", de->d_name);
		remove_dir(path);
	}
	closedir(d);
}

static void setup(void)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct bpf_program *prog;
	char path[256];

	aeth_log_init(getenv("AETH_TEST_DEBUG") ? AETH_LOG_DEBUG : AETH_LOG_WARN, false);
	for (size_t i = 0; i < N_MAPS; i++)
		*map_names[i].fd = -1;
	remove_stale_pins();
	snprintf(pin_dir, sizeof(pin_dir), PIN_PREFIX "%d", getpid());
	cr_assert_eq(mkdir(pin_dir, 0700), 0, "mkdir %s: %s", pin_dir,
		     strerror(errno));
	opts.pin_root_path = pin_dir;
	skel = aether_lb__open_opts(&opts);
	cr_assert_not_null(skel, "open the BPF object: %s", strerror(errno));
	/* maps only: a verifier complaint about the program is not ours */
	bpf_object__for_each_program(prog, skel->obj)
		bpf_program__set_autoload(prog, false);
	/* small tables: quick to create, still several counting chunks */
	aeth_ct_table_set_size(skel->maps.aeth_ct, skel->maps.aeth_ct_bloom,
			       aeth_ct_buckets_for(CT_ENTRIES));
	bpf_map__set_max_entries(skel->maps.aeth_rl_src, 1024);
	cr_assert_eq(aether_lb__load(skel), 0, "create the maps");
	/* read back through the pins, as the agent does */
	for (size_t i = 0; i < N_MAPS; i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_dir, map_names[i].name);
		*map_names[i].fd = bpf_obj_get(path);
		cr_assert_geq(*map_names[i].fd, 0, "%s not pinned", path);
	}
	ncpus = libbpf_num_possible_cpus();
	cr_assert_gt(ncpus, 0);
	base = event_base_new();
	cr_assert_not_null(base);
	memset(&status, 0, sizeof(status));
}

static void teardown(void)
{
	for (size_t i = 0; i < N_MAPS; i++)
		if (*map_names[i].fd >= 0)
			close(*map_names[i].fd);
	if (skel) {
		bpf_object__unpin_maps(skel->obj, NULL);
		aether_lb__destroy(skel);
		skel = NULL;
	}
	remove_dir(pin_dir);
	if (base)
		event_base_free(base);
	base = NULL;
}

TestSuite(metrics, .init = setup, .fini = teardown, .timeout = 60);

/* A blocking client in a thread while the test's thread runs the loop. */
struct http_call {
	int family;
	uint16_t port;
	const char *request;
	char *resp;
	size_t len, cap;
	atomic_int done;
};

static void *client_main(void *arg)
{
	struct http_call *c = arg;
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	ssize_t n;
	int fd;

	if (c->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(c->port);
		s6->sin6_addr = in6addr_loopback;
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(c->port);
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*s4);
	}
	fd = socket(c->family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sl) < 0)
		goto out;
	if (send(fd, c->request, strlen(c->request), MSG_NOSIGNAL) < 0)
		goto out;
	for (;;) {
		if (c->cap - c->len < 65536) {
			c->cap = c->cap ? c->cap * 2 : 1 << 20;
			c->resp = realloc(c->resp, c->cap);
		}
		n = recv(fd, c->resp + c->len, c->cap - c->len - 1, 0);
		if (n <= 0)
			break;
		c->len += (size_t)n;
	}
out:
	if (c->resp)
		c->resp[c->len] = '\0';
	if (fd >= 0)
		close(fd);
	atomic_store(&c->done, 1);
	return NULL;
}

/* Returns the status code (0: no response); *body points into c->resp. */
static int http_do(struct http_call *c, int family, uint16_t port,
		   const char *request, const char **body)
{
	struct timeval tick = { .tv_sec = 0, .tv_usec = 2000 };
	pthread_t th;
	int code = 0;
	char *p;

	memset(c, 0, sizeof(*c));
	c->family = family;
	c->port = port;
	c->request = request;
	cr_assert_eq(pthread_create(&th, NULL, client_main, c), 0);
	for (int i = 0; i < 10000 && !atomic_load(&c->done); i++) {
		event_base_loopexit(base, &tick);
		event_base_dispatch(base);
	}
	pthread_join(th, NULL);
	if (!c->resp || sscanf(c->resp, "HTTP/1.%*d %d", &code) != 1)
		return 0;
	p = strstr(c->resp, "\r\n\r\n");
	if (body)
		*body = p ? p + 4 : "";
	return code;
}

static int http_get(struct http_call *c, uint16_t port, const char *path,
		    const char **body)
{
	char req[256];

	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: test\r\n\r\n", path);
	return http_do(c, AF_INET, port, req, body);
}

/* The page holds this exact line. */
static bool has_line(const char *body, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = body; (p = strstr(p, line)); p++)
		if ((p == body || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

/* values: one per possible CPU (our structs are multiples of 8 bytes, so
 * the kernel's per-CPU stride is their size) */
static void put_percpu(int fd, uint32_t key, const void *values)
{
	cr_assert_eq(bpf_map_update_elem(fd, &key, values, BPF_ANY), 0,
		     "update key %u: %s", key, strerror(errno));
}

static void put_service(uint32_t id, const char *name, bool in_use)
{
	struct aeth_svcinfo info = { 0 };

	snprintf(info.name, sizeof(info.name), "%s", name);
	info.flags = in_use ? AETH_SVCINFO_F_IN_USE : 0;
	cr_assert_eq(bpf_map_update_elem(fds.svcinfo, &id, &info, BPF_ANY), 0);
}

static void put_backend(uint32_t id, const char *addr, uint32_t svc_id,
			uint32_t flags)
{
	struct aeth_backend be = { .svc_id = svc_id, .flags = flags, .weight = 1 };

	if (strchr(addr, ':')) {
		be.family = AETH_AF_INET6;
		inet_pton(AF_INET6, addr, be.addr.bytes);
	} else {
		be.family = AETH_AF_INET;
		inet_pton(AF_INET, addr, &be.addr.v4);
	}
	cr_assert_eq(bpf_map_update_elem(fds.backend, &id, &be, BPF_ANY), 0);
}

static struct aeth_metrics *start(const char *addr)
{
	struct aeth_metrics *m = aeth_metrics_start(base, addr, &fds, &status);

	cr_assert_not_null(m, "listen on %s: %s", addr, strerror(errno));
	cr_assert_gt(aeth_metrics_port(m), 0);
	return m;
}

Test(metrics, counters_summed_over_cpus_with_labels)
{
	struct aeth_svc_stats *ss = calloc(ncpus, sizeof(*ss));
	struct aeth_be_stats *bs = calloc(ncpus, sizeof(*bs));
	struct aeth_global_stats *gs = calloc(ncpus, sizeof(*gs));
	struct aeth_metrics *m;
	struct http_call c;
	const char *body;

	cr_assert_geq(ncpus, 2, "this test spreads counters over two CPUs");
	put_service(3, "kube-apiserver", true);
	put_service(5, "stale", false);
	put_service(7, "we\"ird\\na\nme", true);

	ss[0].packets = 100;
	ss[0].bytes = 6400;
	ss[0].new_flows = 10;
	ss[0].drops[AETH_R_NOT_AUTHORIZED] = 3;
	ss[0].drops[AETH_R_RATE_LIMITED] = 1;
	ss[1].packets = 23;
	ss[1].bytes = 1000;
	ss[1].new_flows = 2;
	ss[1].drops[AETH_R_NOT_AUTHORIZED] = 4;
	ss[1].drops[AETH_R_NO_ROUTE] = 2;
	put_percpu(fds.svc_stats, 3, ss);
	/* counters of a service no longer in use are not exported */
	put_percpu(fds.svc_stats, 5, ss);

	put_backend(0, "192.0.2.21", 3, AETH_BE_F_IN_USE);
	put_backend(1, "2001:db8::22", 3, AETH_BE_F_IN_USE | AETH_BE_F_UNHEALTHY |
		    AETH_BE_F_DRAINING);
	put_backend(2, "192.0.2.99", 3, 0);	/* removed */
	bs[0].packets = 5;
	bs[0].bytes = 500;
	bs[1].packets = 6;
	bs[1].bytes = 600;
	put_percpu(fds.be_stats, 0, bs);
	put_percpu(fds.be_stats, 2, bs);

	gs[0].reasons[AETH_R_UNCONFIGURED_PORT] = 40;
	gs[1].reasons[AETH_R_UNCONFIGURED_PORT] = 2;
	gs[0].events[AETH_EV_TX] = 100;
	gs[1].events[AETH_EV_TX] = 23;
	put_percpu(fds.global, 0, gs);

	status.generation = 42;
	status.apply_ok = 3;
	status.apply_rejected = 1;
	status.last_apply_ok = true;
	status.last_apply_unix_ns = 1700000000500000000ull;
	status.last_success_unix_ns = 1600000000000000000ull;

	m = start("127.0.0.1:0");
	cr_assert_eq(http_get(&c, aeth_metrics_port(m), "/metrics", &body), 200,
		     "%s", c.resp ? c.resp : "(no response)");
	cr_assert(strstr(c.resp, "Content-Type: text/plain; version=0.0.4"));

	static const char *const want[] = {
		"# TYPE aether_packets_total counter",
		"aether_packets_total{service=\"kube-apiserver\",verdict=\"tx\"} 123",
		"aether_packets_total{service=\"kube-apiserver\",verdict=\"drop\"} 10",
		"aether_bytes_total{service=\"kube-apiserver\"} 7400",
		"aether_new_flows_total{service=\"kube-apiserver\"} 12",
		"aether_drops_total{service=\"kube-apiserver\",reason=\"not_authorized\"} 7",
		"aether_drops_total{service=\"kube-apiserver\",reason=\"rate_limited\"} 1",
		"aether_drops_total{service=\"kube-apiserver\",reason=\"no_route\"} 2",
		"aether_drops_total{service=\"kube-apiserver\",reason=\"fragment\"} 0",
		"aether_packets_total{service=\"we\\\"ird\\\\na\\nme\",verdict=\"tx\"} 0",
		"aether_node_drops_total{reason=\"unconfigured_port\"} 42",
		"aether_node_drops_total{reason=\"not_authorized\"} 0",
		"aether_forwarded_packets_total{path=\"tx\"} 123",
		"aether_forwarded_packets_total{path=\"redirect\"} 0",
		"aether_conntrack_lookups_total{result=\"hit\"} 0",
		"aether_icmp_errors_steered_total 0",
		"aether_config_last_apply_success 1",
		"aether_config_last_apply_timestamp_seconds 1700000000.500",
		"aether_config_last_success_timestamp_seconds 1600000000.000",

		"aether_backend_packets_total{service=\"kube-apiserver\",backend=\"192.0.2.21\"} 11",
		"aether_backend_bytes_total{service=\"kube-apiserver\",backend=\"192.0.2.21\"} 1100",
		"aether_backend_packets_total{service=\"kube-apiserver\",backend=\"2001:db8::22\"} 0",
		"aether_backend_up{service=\"kube-apiserver\",backend=\"192.0.2.21\"} 1",
		"aether_backend_up{service=\"kube-apiserver\",backend=\"2001:db8::22\"} 0",
		"aether_backend_draining{service=\"kube-apiserver\",backend=\"2001:db8::22\"} 1",
		"aether_backend_draining{service=\"kube-apiserver\",backend=\"192.0.2.21\"} 0",
		"# TYPE aether_config_generation gauge",
		"aether_config_generation 42",
		"aether_config_apply_total{result=\"ok\"} 3",
		"aether_config_apply_total{result=\"rejected\"} 1",
		"aether_config_apply_total{result=\"failed\"} 0",
		"aether_conntrack_max_entries 16384",
		"aether_build_info{version=\"" AETH_VERSION "\",commit=\""
			AETH_COMMIT "\"} 1",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_expect(has_line(body, want[i]), "missing line: %s", want[i]);
	/* map pressure: 2 backends and 2 services in use */
	char fill[128];
	snprintf(fill, sizeof(fill), "aether_map_fill_ratio{map=\"backends\"} %.6f",
		 2.0 / AETH_MAX_BACKENDS);
	cr_expect(has_line(body, fill), "missing line: %s", fill);
	snprintf(fill, sizeof(fill), "aether_map_fill_ratio{map=\"services\"} %.6f",
		 2.0 / AETH_MAX_SERVICES);
	cr_expect(has_line(body, fill), "missing line: %s", fill);
	cr_expect(!strstr(body, "stale"), "a service not in use was exported");
	cr_expect(!strstr(body, "192.0.2.99"), "a removed backend was exported");

	/* docs/metrics.md lists every family the page has */
	FILE *doc = fopen(AETH_METRICS_DOC, "r");
	static char doc_text[65536];
	size_t doc_len;

	cr_assert_not_null(doc, AETH_METRICS_DOC);
	doc_len = fread(doc_text, 1, sizeof(doc_text) - 1, doc);
	doc_text[doc_len] = '\0';
	fclose(doc);
	for (const char *t = body; (t = strstr(t, "# TYPE ")); t++) {
		char name[128], quoted[132];

		cr_assert_eq(sscanf(t, "# TYPE %127s", name), 1);
		snprintf(quoted, sizeof(quoted), "`%s", name);
		cr_expect(strstr(doc_text, quoted), "%s not in docs/metrics.md", name);
	}

	/* every sample belongs to the family its TYPE line opened, each
	 * family opened once: the grouping Prometheus requires */
	char family[128] = "", seen[4096] = " ";
	for (const char *line = body; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char name[128];

		if (sscanf(line, "# TYPE %127s", name) == 1) {
			char key[132];

			snprintf(key, sizeof(key), " %s ", name);
			cr_expect(!strstr(seen, key), "family %s twice", name);
			strncat(seen, key + 1, sizeof(seen) - strlen(seen) - 1);
			snprintf(family, sizeof(family), "%s", name);
		} else if (line[0] != '#' && len) {
			size_t fl = strlen(family);

			cr_expect(fl && strncmp(line, family, fl) == 0 &&
					  (line[fl] == '{' || line[fl] == ' '),
				  "sample outside its family: %.*s", (int)len, line);
		}
		line += len + (nl ? 1 : 0);
	}

	aeth_metrics_stop(m);
	free(c.resp);
	free(ss);
	free(bs);
	free(gs);
}

Test(metrics, healthz_and_readyz)
{
	struct aeth_metrics *m = start("127.0.0.1:0");
	uint16_t port = aeth_metrics_port(m);
	struct http_call c;
	const char *body;

	cr_assert_eq(http_get(&c, port, "/healthz", &body), 200);
	cr_assert_str_eq(body, "ok\n");
	free(c.resp);

	cr_assert_eq(http_get(&c, port, "/readyz", &body), 503);
	cr_assert(strstr(body, "no configuration applied"), "%s", body);
	free(c.resp);

	status.config_applied = true;
	cr_assert_eq(http_get(&c, port, "/readyz", &body), 503);
	cr_assert(strstr(body, "not attached"), "%s", body);
	free(c.resp);

	status.attached = true;
	cr_assert_eq(http_get(&c, port, "/readyz", &body), 200);
	cr_assert_str_eq(body, "ok\n");
	free(c.resp);

	aeth_metrics_stop(m);
}

Test(metrics, methods_paths_and_header_limit)
{
	struct aeth_metrics *m = start("127.0.0.1:0");
	uint16_t port = aeth_metrics_port(m);
	size_t big = 64 * 1024;
	struct http_call c;
	char *req;
	int code;

	code = http_do(&c, AF_INET, port,
		       "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n", NULL);
	cr_assert_eq(code, 405);
	cr_assert(strstr(c.resp, "Allow: GET"));
	free(c.resp);

	code = http_do(&c, AF_INET, port, "DELETE /readyz HTTP/1.0\r\n\r\n", NULL);
	cr_assert_eq(code, 405);
	free(c.resp);

	cr_assert_eq(http_get(&c, port, "/nope", NULL), 404);
	free(c.resp);
	cr_assert_eq(http_get(&c, port, "/metrics/x", NULL), 404);
	free(c.resp);
	cr_assert_eq(http_get(&c, port, "/metrics?name=x", NULL), 200);
	free(c.resp);

	/* 64 KiB of headers: refused, the connection does not hang */
	req = malloc(big + 64);
	strcpy(req, "GET /metrics HTTP/1.0\r\nX-Pad: ");
	memset(req + strlen(req), 'a', big);
	strcpy(req + 31 + big, "\r\n\r\n");
	code = http_do(&c, AF_INET, port, req, NULL);
	cr_assert_neq(code, 200, "oversized headers were served");
	free(c.resp);
	free(req);

	/* and the listener still serves afterwards */
	cr_assert_eq(http_get(&c, port, "/healthz", NULL), 200);
	free(c.resp);
	aeth_metrics_stop(m);
}

Test(metrics, listen_addresses)
{
	struct aeth_metrics *m, *m2;
	struct http_call c;
	char addr[64];

	m = start("[::1]:0");
	cr_assert_eq(http_do(&c, AF_INET6, aeth_metrics_port(m),
			     "GET /healthz HTTP/1.0\r\n\r\n", NULL), 200);
	free(c.resp);
	aeth_metrics_stop(m);

	/* brackets around an IPv4 address too, as a template writes
	 * [$(NODE_IP)]:PORT for either family */
	m = start("[127.0.0.1]:0");
	cr_assert_eq(http_do(&c, AF_INET, aeth_metrics_port(m),
			     "GET /healthz HTTP/1.0\r\n\r\n", NULL), 200);
	free(c.resp);
	aeth_metrics_stop(m);

	/* an IPv6 address without brackets would lose its port to the
	 * address ("2001:db8::11:9464" is an address): refused, not misread */
	static const char *const bad[] = {
		"localhost:9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:70000",
		"::1:9464", "[::1]9464", ":9464", "1.2.3:80",
		"127.0.0.1:12x", "::1", "2001:db8::11:9464", "[::1]:", "[::1]",
		"127.0.0.1:+80", "[::1]:99999", "[]:80", "[127.0.0.1:80]:80",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		m = aeth_metrics_start(base, bad[i], &fds, &status);
		cr_expect_null(m, "%s accepted", bad[i]);
		cr_expect_eq(errno, EINVAL, "%s: %s", bad[i], strerror(errno));
		aeth_metrics_stop(m);
	}

	/* a port in use is reported as such */
	m = start("127.0.0.1:0");
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", aeth_metrics_port(m));
	m2 = aeth_metrics_start(base, addr, &fds, &status);
	cr_assert_null(m2);
	cr_assert_eq(errno, EADDRINUSE);
	aeth_metrics_stop(m);
}

Test(metrics, without_maps_only_agent_metrics)
{
	struct aeth_map_fds none;
	struct aeth_metrics *m;
	struct http_call c;
	const char *body;

	memset(&none, 0xff, sizeof(none));	/* every fd -1 */
	status.generation = 7;
	m = aeth_metrics_start(base, "127.0.0.1:0", &none, &status);
	cr_assert_not_null(m);
	cr_assert_eq(http_get(&c, aeth_metrics_port(m), "/metrics", &body), 200);
	cr_assert(has_line(body, "aether_config_generation 7"));
	cr_assert(!strstr(body, "aether_packets_total"));
	free(c.resp);
	aeth_metrics_stop(m);
}

Test(metrics, wrong_layout_is_an_error_not_garbage)
{
	struct aeth_map_fds swapped = fds;
	struct aeth_metrics *m;
	struct http_call c;
	const char *body;

	swapped.svcinfo = fds.svc_stats;	/* not a struct aeth_svcinfo array */
	m = aeth_metrics_start(base, "127.0.0.1:0", &swapped, &status);
	cr_assert_not_null(m);
	cr_assert_eq(http_get(&c, aeth_metrics_port(m), "/metrics", &body), 500);
	cr_assert(strstr(body, "cannot read map aeth_svcinfo"), "%s", body);
	free(c.resp);
	aeth_metrics_stop(m);
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Every service and backend slot in use: the page is complete and the
 * scrape stays well under a Prometheus timeout. */
Test(metrics, full_tables)
{
	struct aeth_svc_stats *ss = calloc(ncpus, sizeof(*ss));
	struct aeth_be_stats *bs = calloc(ncpus, sizeof(*bs));
	struct aeth_metrics *m;
	struct http_call c;
	const char *body;
	char name[AETH_NAME_LEN], addr[64], line[256];
	size_t lines = 0;
	uint64_t t0, t;

	for (uint32_t id = 0; id < AETH_MAX_SERVICES; id++) {
		snprintf(name, sizeof(name), "svc-%u", id);
		put_service(id, name, true);
	}
	for (uint32_t id = 0; id < AETH_MAX_BACKENDS; id++) {
		snprintf(addr, sizeof(addr), "2001:db8::%x", id);
		put_backend(id, addr, id % AETH_MAX_SERVICES, AETH_BE_F_IN_USE);
	}
	for (int cpu = 0; cpu < ncpus; cpu++) {
		ss[cpu].packets = 1000 + cpu;
		ss[cpu].drops[AETH_R_MTU_EXCEEDED] = 5;
		bs[cpu].bytes = 7;
	}
	put_percpu(fds.svc_stats, AETH_MAX_SERVICES - 1, ss);
	put_percpu(fds.be_stats, AETH_MAX_BACKENDS - 1, bs);

	m = start("127.0.0.1:0");
	t0 = now_us();
	cr_assert_eq(http_get(&c, aeth_metrics_port(m), "/metrics", &body), 200);
	t = now_us() - t0;
	for (const char *p = body; (p = strchr(p, '\n')); p++)
		lines++;
	cr_log_info("full tables: %zu lines, %zu bytes, scrape %llu us\n", lines,
		    strlen(body), (unsigned long long)t);
	fprintf(stderr, "full tables: %zu lines, %zu bytes, scrape %llu us\n", lines,
		strlen(body), (unsigned long long)t);

	snprintf(line, sizeof(line),
		 "aether_packets_total{service=\"svc-%u\",verdict=\"tx\"} %llu",
		 AETH_MAX_SERVICES - 1,
		 (unsigned long long)(1000 * ncpus + ncpus * (ncpus - 1) / 2));
	cr_assert(has_line(body, line), "missing %s", line);
	snprintf(line, sizeof(line),
		 "aether_drops_total{service=\"svc-%u\",reason=\"mtu_exceeded\"} %d",
		 AETH_MAX_SERVICES - 1, 5 * ncpus);
	cr_assert(has_line(body, line), "missing %s", line);
	snprintf(line, sizeof(line),
		 "aether_backend_bytes_total{service=\"svc-%u\",backend=\"2001:db8::%x\"} %d",
		 (AETH_MAX_BACKENDS - 1) % AETH_MAX_SERVICES, AETH_MAX_BACKENDS - 1,
		 7 * ncpus);
	cr_assert(has_line(body, line), "missing %s", line);
	/* samples: 14 per service, 4 per backend, plus the fixed ones */
	size_t samples = 0;
	for (const char *p = body; *p;) {
		/* the conntrack counts appear once its first pass is done */
		if (*p != '#' && strncmp(p, "aether_conntrack_entries ", 25) &&
		    strncmp(p, "aether_conntrack_unconfirmed_entries ", 37) &&
		    strncmp(p, "aether_map_fill_ratio{map=\"conntrack\"}", 38))
			samples++;
		p = strchr(p, '\n');
		if (!p)
			break;
		p++;
	}
	cr_assert_eq(samples, (size_t)AETH_MAX_SERVICES * 14 +
				      (size_t)AETH_MAX_BACKENDS * 4 + AETH_R_MAX +
				      AETH_EV_MAX + 1 + 3 + 1 + 1 +
				      1 /* aether_build_info */ +
				      3 /* last apply: success, two times */ +
				      2 /* fill of services and backends */);
	cr_assert_lt(t, 2000000, "scrape took %llu us", (unsigned long long)t);

	aeth_metrics_stop(m);
	free(c.resp);
	free(ss);
	free(bs);
}

static int count_unconfirmed(const struct aeth_ct_key *k,
			     const struct aeth_ct_entry *e, void *arg)
{
	(void)k;
	*(int *)arg += !e->confirmed;
	return 0;
}

/* The connection table is counted in the background, in chunks of
 * buckets; the count matches a walk of the table's slots, and so does the
 * count of the entries no packet confirmed. */
Test(metrics, conntrack_entries_counted)
{
	struct aeth_ct_entry v = { .backend_id = 1, .seen_s = 5 };
	struct aeth_ct_key k = { .svc_id = 0 };
	struct aeth_ct_table t;
	struct aeth_metrics *m;
	struct http_call c;
	const char *body;
	char want[96];
	int inserted = 0, walked = 0, unconfirmed = 0;
	bool found = false;

	cr_assert_eq(aeth_ct_table_seed(fds.ct), 0);
	cr_assert_eq(aeth_ct_table_open(&t, fds.ct, fds.ct_bloom), 0);
	cr_assert_eq(t.nbuckets * AETH_CT_WAYS, CT_ENTRIES);
	/* more than two chunks of 1,024 buckets hold entries */
	for (uint32_t i = 0; i < 10000; i++) {
		k.src.v4 = htonl(0xc6336400 + (i & 0xff));	/* 198.51.100.x */
		k.sport = htons(1024 + i);
		v.confirmed = i % 4 != 0;	/* a quarter lone SYNs' */
		if (aeth_ct_table_put(&t, &k, &v) == 0)
			inserted++;
	}
	cr_assert_eq(inserted, 10000);
	walked = (int)aeth_ct_table_count(&t);
	cr_assert_eq(aeth_ct_table_foreach(&t, count_unconfirmed,
					   &unconfirmed), 0);
	/* a full bucket gave up its unconfirmed entries first */
	cr_assert_lt(unconfirmed, 2500);
	cr_assert_gt(unconfirmed, 1500);
	/* a few buckets overflowed (each gave up its oldest) */
	cr_assert_gt(walked, 9000, "only %d entries kept", walked);
	cr_assert_leq(walked, 10000);
	snprintf(want, sizeof(want), "aether_conntrack_entries %d", walked);

	m = start("127.0.0.1:0");
	for (int i = 0; i < 50 && !found; i++) {
		cr_assert_eq(http_get(&c, aeth_metrics_port(m), "/metrics", &body), 200);
		found = has_line(body, want);
		free(c.resp);
	}
	cr_assert(found, "no line %s", want);
	/* and the table's fill from the same count */
	snprintf(want, sizeof(want), "aether_map_fill_ratio{map=\"conntrack\"} %.6f",
		 (double)walked / CT_ENTRIES);
	cr_assert_eq(http_get(&c, aeth_metrics_port(m), "/metrics", &body), 200);
	cr_assert(has_line(body, want), "no line %s", want);
	snprintf(want, sizeof(want), "aether_conntrack_max_entries %d",
		 CT_ENTRIES);
	cr_assert(has_line(body, want), "no line %s", want);
	snprintf(want, sizeof(want), "aether_conntrack_unconfirmed_entries %d",
		 unconfirmed);
	cr_assert(has_line(body, want), "no line %s", want);
	free(c.resp);
	aeth_metrics_stop(m);
}

/* Inflate a gzip body of len bytes; NULL when it is not one. */
static char *gunzip(const char *in, size_t len)
{
	z_stream zs = { 0 };
	size_t cap = 1 << 20;
	char *out = malloc(cap);
	int ret;

	if (inflateInit2(&zs, 15 + 16) != Z_OK)
		return NULL;
	zs.next_in = (unsigned char *)in;
	zs.avail_in = (uInt)len;
	zs.next_out = (unsigned char *)out;
	zs.avail_out = (uInt)cap - 1;
	ret = inflate(&zs, Z_FINISH);
	inflateEnd(&zs);
	if (ret != Z_STREAM_END) {
		free(out);
		return NULL;
	}
	out[zs.total_out] = '\0';
	return out;
}

/* Accept-Encoding: gzip gets the same page compressed; q=0, another coding
 * or no header get it plain. */
Test(metrics, gzip_when_accepted)
{
	static const char *const plain[] = {
		"", "Accept-Encoding: identity\r\n", "Accept-Encoding: gzip;q=0\r\n",
		"Accept-Encoding: br, gzipx\r\n",
	};
	struct aeth_metrics *m = start("127.0.0.1:0");
	struct http_call c;
	const char *body;
	char req[256], *page;

	put_service(3, "kube-apiserver", true);
	status.generation = 7;
	cr_assert_eq(http_do(&c, AF_INET, aeth_metrics_port(m),
			     "GET /metrics HTTP/1.0\r\n"
			     "Accept-Encoding: deflate, GZip;q=0.5\r\n\r\n",
			     &body), 200);
	cr_assert_not_null(strstr(c.resp, "\r\nContent-Encoding: gzip\r\n"),
			   "not compressed: %.300s", c.resp);
	page = gunzip(body, c.len - (size_t)(body - c.resp));
	cr_assert_not_null(page, "not a gzip body");
	cr_assert(has_line(page, "aether_config_generation 7"));
	cr_assert(has_line(page, "aether_packets_total{service=\"kube-apiserver\","
			   "verdict=\"tx\"} 0"));
	free(page);
	free(c.resp);

	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		snprintf(req, sizeof(req), "GET /metrics HTTP/1.0\r\n%s\r\n",
			 plain[i]);
		cr_assert_eq(http_do(&c, AF_INET, aeth_metrics_port(m), req,
				     &body), 200);
		cr_expect_null(strstr(c.resp, "Content-Encoding"), "%s", plain[i]);
		cr_expect(has_line(body, "aether_config_generation 7"), "%s",
			  plain[i]);
		free(c.resp);
	}
	aeth_metrics_stop(m);
}
