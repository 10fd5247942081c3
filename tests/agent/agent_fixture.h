/* Shared by the agent suites: pin directories under /sys/fs/bpf/aeth-ag-t-*,
 * documents, and reading the maps back. */
#ifndef AETH_AGENT_FIXTURE_H
#define AETH_AGENT_FIXTURE_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>

#include "agent.h"
#include "apply.h"
#include "loader.h"
#include "log.h"
#include "maglev.h"

#define BPFFS "/sys/fs/bpf"
#define PIN_PREFIX "aeth-ag-t-"

static inline void ensure_bpffs(void)
{
	struct statfs sfs;

	if (statfs(BPFFS, &sfs) == 0 && sfs.f_type == 0xcafe4a11)
		return;
	cr_assert_eq(mount("bpf", BPFFS, "bpf", 0, NULL), 0,
		     "mounting bpffs: %s", strerror(errno));
}

static inline void rm_pin_dir(const char *dir)
{
	char path[4096];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' ||
		    (size_t)snprintf(path, sizeof(path), "%s/%s", dir,
				     de->d_name) >= sizeof(path))
			continue;
		if (unlink(path) && errno == EISDIR)
			rm_pin_dir(path);	/* links/ */
	}
	closedir(d);
	rmdir(dir);
}

/* Is the test process that named this pin directory (…-PID) still alive?
 * Then it is another run's, going on beside this one. */
static inline bool pin_owner_alive(const char *name)
{
	const char *dash = strrchr(name, '-');
	long pid = dash ? strtol(dash + 1, NULL, 10) : 0;

	return pid > 0 && kill((pid_t)pid, 0) == 0;
}

/* Remove every pin directory of these suites whose test is gone (a crashed
 * test leaves its own behind). */
static inline void rm_all_test_pins(void)
{
	char path[4096];
	struct dirent *de;
	DIR *d = opendir(BPFFS);

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, PIN_PREFIX, strlen(PIN_PREFIX)) ||
		    pin_owner_alive(de->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", BPFFS, de->d_name);
		rm_pin_dir(path);
	}
	closedir(d);
}

static inline void pin_dir_for(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, BPFFS "/" PIN_PREFIX "%s-%d", name, (int)getpid());
}

static inline struct aeth_agent *agent_open(const char *dir)
{
	struct aeth_agent *a = calloc(1, sizeof(*a));
	struct aeth_error e;
	char err[800] = "";
	int rc;

	cr_assert_not_null(a);
	memset(&e, 0, sizeof(e));
	rc = aeth_loader_open(a, dir, 4096, &e);
	aeth_error_format(&e, err, sizeof(err));
	cr_assert_eq(rc, 0, "loader: %s", err);
	return a;
}

static inline void agent_close(struct aeth_agent *a)
{
	if (!a)
		return;
	aeth_loader_close(a);
	free(a);
}

/* Documents are written with ' for " to stay readable. */
static inline char *J(const char *s)
{
	char *d = strdup(s);

	cr_assert_not_null(d);
	for (char *p = d; *p; p++)
		if (*p == '\'')
			*p = '"';
	return d;
}

#define DOC_HEAD \
	"{'version':1,'node':{'interfaces':['lo'],'xdp_mode':'generic'," \
	"'addresses':{'ipv4':'192.0.2.11','ipv6':'2001:db8::11'},'mtu':1500}," \
	"'maglev':{'seed':'5f3c0a1e9b7d2c44a1b2c3d4e5f60718','table_size':251}," \
	"'conntrack':{'max_entries':4096},'services':["
#define DOC_TAIL "]}"

#define SVC_API \
	"{'name':'api','vip':'203.0.113.10','port':6443,'protocol':'tcp'," \
	"'authorized_networks':{'enabled':true,'cidrs':['198.51.100.0/24'," \
	"'2001:db8:100::/48']},'rate_limit':{'new_connections_per_second':20," \
	"'burst':40,'service_new_connections_per_second':5000},'backends':[" \
	"{'address':'192.0.2.21','weight':1}," \
	"{'address':'192.0.2.22','weight':1,'state':'draining'}," \
	"{'address':'192.0.2.23','weight':2}," \
	"{'address':'192.0.2.24','weight':0}]}"
#define SVC_DNS \
	"{'name':'dns','vip':'203.0.113.10','port':53,'protocol':'udp'," \
	"'backends':[{'address':'192.0.2.31'},{'address':'2001:db8::32'}]}"
#define SVC_V6 \
	"{'name':'v6','vip':'2001:db8::10','port':443,'protocol':'tcp'," \
	"'backends':[{'address':'2001:db8::41'},{'address':'2001:db8::42'}]}"
#define SVC_V6_CHANGED \
	"{'name':'v6','vip':'2001:db8::10','port':443,'protocol':'tcp'," \
	"'backends':[{'address':'2001:db8::41'},{'address':'2001:db8::43'}]}"

#define DOC_A DOC_HEAD SVC_API "," SVC_DNS "," SVC_V6 DOC_TAIL
#define DOC_B DOC_HEAD SVC_API "," SVC_DNS "," SVC_V6_CHANGED DOC_TAIL

static inline int apply_doc(struct aeth_agent *a, const char *quoted,
		     struct aeth_apply_result *res)
{
	char *text = J(quoted);
	int rc = aeth_apply_text(a, text, strlen(text), "test", res);

	free(text);
	return rc;
}

static inline void apply_ok(struct aeth_agent *a, const char *quoted)
{
	struct aeth_apply_result res;
	int rc = apply_doc(a, quoted, &res);

	cr_assert_eq(rc, 0, "apply: %s", res.message);
}

static inline struct aeth_ip ip_of(const char *s)
{
	struct aeth_ip ip;

	memset(&ip, 0, sizeof(ip));
	if (inet_pton(AF_INET, s, &ip.addr.v4) == 1)
		ip.family = AETH_AF_INET;
	else if (inet_pton(AF_INET6, s, ip.addr.bytes) == 1)
		ip.family = AETH_AF_INET6;
	else
		cr_assert_fail("bad address %s", s);
	return ip;
}

static inline struct aeth_svc_key svc_key(const char *vip, int port, int proto)
{
	struct aeth_svc_key k;
	struct aeth_ip ip = ip_of(vip);

	memset(&k, 0, sizeof(k));
	k.vip = ip.addr;
	k.family = ip.family;
	k.port = htons(port);
	k.proto = proto;
	return k;
}

static inline bool svc_get(struct aeth_agent *a, const char *vip, int port, int proto,
		    struct aeth_svc *out)
{
	struct aeth_svc_key k = svc_key(vip, port, proto);

	return bpf_map_lookup_elem(a->fds.svc, &k, out) == 0;
}

/* The id of (service id, address) in aeth_backend, or -1. Only entries in
 * use count unless any is set. */
static inline int64_t backend_id(struct aeth_agent *a, uint32_t svc_id,
			  const char *addr, bool any)
{
	struct aeth_ip ip = ip_of(addr);

	for (uint32_t id = 0; id < AETH_MAX_BACKENDS; id++) {
		struct aeth_backend b;

		if (bpf_map_lookup_elem(a->fds.backend, &id, &b))
			continue;
		if (b.svc_id == svc_id && b.family == ip.family &&
		    memcmp(b.addr.bytes, ip.addr.bytes, 16) == 0 &&
		    (any || (b.flags & AETH_BE_F_IN_USE)))
			return id;
	}
	return -1;
}

/* The inner map id in an outer slot, 0 when empty. */
static inline uint32_t slot_map_id(int outer_fd, uint32_t slot)
{
	uint32_t id = 0;

	if (bpf_map_lookup_elem(outer_fd, &slot, &id))
		return 0;
	return id;
}

/* Read a Maglev table by inner map id into a new array. */
static inline uint32_t *read_table(uint32_t map_id, uint32_t size)
{
	uint32_t *t = calloc(size, sizeof(*t));
	int fd = bpf_map_get_fd_by_id(map_id);

	cr_assert_geq(fd, 0, "opening map %u: %s", map_id, strerror(errno));
	for (uint32_t i = 0; i < size; i++)
		cr_assert_eq(bpf_map_lookup_elem(fd, &i, &t[i]), 0);
	close(fd);
	return t;
}

#endif /* AETH_AGENT_FIXTURE_H */
