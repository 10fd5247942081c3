/* Fixture for aetherctl tests: pinned maps of the real object, filled as the
 * agent and the data path would, and a runner for the aetherctl binary. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "aether_lb.skel.h"
#include "aether/ct_rule.h"
#include "aether/ct_table.h"
#include "ct_table.h"
#include "ctl_fixture.h"

#define FX_BPFFS "/sys/fs/bpf"
#define FX_PREFIX "aeth-ct-"

extern char **environ;

static int quiet_print(enum libbpf_print_level level, const char *fmt,
		       va_list args)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, args);
}

static void remove_dir(const char *dir)
{
	char path[512];
	struct dirent *de;
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

/* Pin directories of test processes that died without cleaning up. */
static void remove_stale_dirs(void)
{
	struct dirent *de;
	DIR *d = opendir(FX_BPFFS);

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[512];
		long pid;

		if (strncmp(de->d_name, FX_PREFIX, strlen(FX_PREFIX)))
			continue;
		pid = strtol(de->d_name + strlen(FX_PREFIX), NULL, 10);
		if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), FX_BPFFS "/%s", de->d_name);
		remove_dir(path);
	}
	closedir(d);
}

int fx_open(struct fx *fx)
{
	static unsigned seq;
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct aeth_meta meta;
	struct aether_lb *skel;
	__u32 zero = 0;
	int err;

	memset(fx, 0, sizeof(*fx));
	libbpf_set_print(quiet_print);
	remove_stale_dirs();
	snprintf(fx->dir, sizeof(fx->dir), FX_BPFFS "/" FX_PREFIX "%d-%u",
		 (int)getpid(), seq++);
	if (mkdir(fx->dir, 0700))
		return -errno;
	opts.pin_root_path = fx->dir;
	skel = aether_lb__open_opts(&opts);
	if (!skel) {
		err = -errno;
		rmdir(fx->dir);
		return err;
	}
	/* small tables: the test needs a few entries, not the defaults */
	aeth_ct_table_set_size(skel->maps.aeth_ct, skel->maps.aeth_ct_bloom,
			       aeth_ct_buckets_for(4096));
	bpf_map__set_max_entries(skel->maps.aeth_rl_src, 4096);
	err = aether_lb__load(skel);
	if (err) {
		fprintf(stderr, "fixture: loading aether_lb failed: %s\n",
			strerror(-err));
		aether_lb__destroy(skel);
		remove_dir(fx->dir);
		return err;
	}
	fx->skel = skel;
	fx->prog_fd = bpf_program__fd(skel->progs.aether_lb);
	fx->meta = bpf_map__fd(skel->maps.aeth_meta);
	fx->node = bpf_map__fd(skel->maps.aeth_node);
	fx->vip = bpf_map__fd(skel->maps.aeth_vip);
	fx->svc = bpf_map__fd(skel->maps.aeth_svc);
	fx->svcinfo = bpf_map__fd(skel->maps.aeth_svcinfo);
	fx->backend = bpf_map__fd(skel->maps.aeth_backend);
	fx->maglev = bpf_map__fd(skel->maps.aeth_maglev);
	fx->acl = bpf_map__fd(skel->maps.aeth_acl);
	fx->ct = bpf_map__fd(skel->maps.aeth_ct);
	err = aeth_ct_table_seed(fx->ct);
	if (err) {
		fprintf(stderr, "fixture: seeding aeth_ct: %s\n",
			strerror(-err));
		return err;
	}
	fx->ct_budget = bpf_map__fd(skel->maps.aeth_ct_budget);
	fx->rl_src = bpf_map__fd(skel->maps.aeth_rl_src);
	fx->rl_svc = bpf_map__fd(skel->maps.aeth_rl_svc);
	fx->svc_stats = bpf_map__fd(skel->maps.aeth_svc_stats);
	fx->be_stats = bpf_map__fd(skel->maps.aeth_be_stats);
	fx->global = bpf_map__fd(skel->maps.aeth_global);
	fx->ncpus = libbpf_num_possible_cpus();

	memset(&meta, 0, sizeof(meta));
	meta.schema_version = AETH_SCHEMA_VERSION;
	err = bpf_map_update_elem(fx->meta, &zero, &meta, 0);
	if (err) {
		err = -errno;
		fx_close(fx);
		return err;
	}
	return 0;
}

void fx_close(struct fx *fx)
{
	if (fx->skel)
		aether_lb__destroy(fx->skel);
	fx->skel = NULL;
	if (fx->dir[0])
		remove_dir(fx->dir);
	fx->dir[0] = '\0';
}

int fx_addr(const char *text, union aeth_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, text, &out->v4) == 1)
		return AETH_AF_INET;
	if (inet_pton(AF_INET6, text, out->bytes) == 1)
		return AETH_AF_INET6;
	fprintf(stderr, "fixture: not an address: %s\n", text);
	abort();
}

static struct aeth_svc_key svc_key_of(const struct aeth_svcinfo *in)
{
	struct aeth_svc_key k;

	memset(&k, 0, sizeof(k));
	k.vip = in->vip;
	k.port = in->port;
	k.proto = in->proto;
	k.family = in->family;
	return k;
}

int fx_service(struct fx *fx, uint32_t id, const char *name, const char *vip,
	       uint16_t port, uint8_t proto, uint32_t table_size,
	       uint32_t maglev_slot, struct aeth_svc *svc_out)
{
	struct aeth_svcinfo in;
	struct aeth_vip_key vk;
	struct aeth_svc_key k;
	struct aeth_svc svc;
	__u32 count = 0;

	memset(&in, 0, sizeof(in));
	snprintf(in.name, sizeof(in.name), "%s", name);
	in.family = fx_addr(vip, &in.vip);
	in.proto = proto;
	in.port = htons(port);
	in.flags = AETH_SVCINFO_F_IN_USE;
	in.table_size = table_size;
	in.rl_prefix_v4 = 32;
	in.rl_prefix_v6 = 64;
	if (bpf_map_update_elem(fx->svcinfo, &id, &in, 0))
		return -errno;

	memset(&svc, 0, sizeof(svc));
	svc.id = id;
	svc.maglev_slot = maglev_slot;
	svc.table_size = table_size;
	svc.src_prefix_v4 = 32;
	svc.src_prefix_v6 = 64;
	k = svc_key_of(&in);
	if (bpf_map_update_elem(fx->svc, &k, &svc, 0))
		return -errno;

	memset(&vk, 0, sizeof(vk));
	vk.addr = in.vip;
	vk.family = in.family;
	bpf_map_lookup_elem(fx->vip, &vk, &count);
	count++;
	if (bpf_map_update_elem(fx->vip, &vk, &count, 0))
		return -errno;
	if (svc_out)
		*svc_out = svc;
	return 0;
}

int fx_service_update(struct fx *fx, uint32_t id, const struct aeth_svc *svc)
{
	struct aeth_svcinfo in;
	struct aeth_svc_key k;

	if (bpf_map_lookup_elem(fx->svcinfo, &id, &in))
		return -errno;
	k = svc_key_of(&in);
	return bpf_map_update_elem(fx->svc, &k, svc, 0) ? -errno : 0;
}

int fx_backend(struct fx *fx, uint32_t id, const char *addr, uint32_t svc_id,
	       uint16_t weight, uint32_t flags)
{
	struct aeth_backend be;
	struct aeth_svcinfo in;

	memset(&be, 0, sizeof(be));
	be.family = fx_addr(addr, &be.addr);
	be.weight = weight;
	be.flags = flags | AETH_BE_F_IN_USE;
	be.svc_id = svc_id;
	if (bpf_map_update_elem(fx->backend, &id, &be, 0))
		return -errno;
	/* keep the people-facing count as the agent does */
	if (!bpf_map_lookup_elem(fx->svcinfo, &svc_id, &in)) {
		in.n_backends++;
		bpf_map_update_elem(fx->svcinfo, &svc_id, &in, 0);
	}
	return 0;
}

int fx_maglev(struct fx *fx, uint32_t slot, const uint32_t *table,
	      uint32_t size)
{
	LIBBPF_OPTS(bpf_map_create_opts, o,
		    .map_flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	int fd, err = 0;

	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "aeth_ct_maglev", 4, 4, size,
			    &o);
	if (fd < 0)
		return -errno;
	for (uint32_t i = 0; i < size && !err; i++)
		if (bpf_map_update_elem(fd, &i, &table[i], 0))
			err = -errno;
	if (!err && bpf_map_update_elem(fx->maglev, &slot, &fd, 0))
		err = -errno;
	close(fd);
	return err;
}

int fx_acl(struct fx *fx, uint32_t slot, const char *const *cidrs, size_t n)
{
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = BPF_F_NO_PREALLOC);
	int fd, err = 0;

	fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "aeth_ct_acl",
			    sizeof(struct aeth_acl_key), 4, AETH_MAX_ACL_CIDRS,
			    &o);
	if (fd < 0)
		return -errno;
	for (size_t i = 0; i < n && !err; i++) {
		struct aeth_acl_key k;
		union aeth_addr a;
		char text[64], *slash;
		__u32 fam;

		snprintf(text, sizeof(text), "%s", cidrs[i]);
		slash = strchr(text, '/');
		*slash = '\0';
		fam = fx_addr(text, &a);
		memset(&k, 0, sizeof(k));
		k.prefixlen = atoi(slash + 1);
		if (fam == AETH_AF_INET) {
			k.addr[10] = 0xff;
			k.addr[11] = 0xff;
			memcpy(k.addr + 12, &a.v4, 4);
			k.prefixlen += 96;
		} else {
			memcpy(k.addr, a.bytes, 16);
		}
		/* the value names the listed prefix's family */
		if (bpf_map_update_elem(fd, &k, &fam, 0))
			err = -errno;
	}
	if (!err && bpf_map_update_elem(fx->acl, &slot, &fd, 0))
		err = -errno;
	close(fd);
	return err;
}

struct aeth_flow fx_flow(const char *src, uint16_t sport, const char *dst,
			 uint16_t dport, uint8_t proto)
{
	struct aeth_flow f;

	memset(&f, 0, sizeof(f));
	f.family = fx_addr(src, &f.src);
	fx_addr(dst, &f.dst);
	f.sport = htons(sport);
	f.dport = htons(dport);
	f.proto = proto;
	return f;
}

int fx_ct(struct fx *fx, const struct aeth_flow *f, uint32_t backend_id,
	  uint32_t svc_id, uint64_t seen_ns, bool confirmed)
{
	struct aeth_ct_key k = aeth_ct_key_of(f, svc_id);
	struct aeth_ct_entry e = { .backend_id = backend_id,
				   .seen_s = (uint32_t)(seen_ns / 1000000000ull),
				   .confirmed = confirmed };
	struct aeth_ct_table t;
	int err = aeth_ct_table_open(&t, fx->ct, bpf_map__fd(
		((struct aether_lb *)fx->skel)->maps.aeth_ct_bloom));

	if (!err)
		err = aeth_ct_table_put(&t, &k, &e);
	aeth_ct_table_close(&t);
	return err;
}

int fx_vip_filter_set(struct fx *fx, const __u64 *words, bool vouched)
{
	struct aether_lb *skel = fx->skel;
	__u32 zero = 0;
	__u64 stamp;

	if (!skel->bss)
		return -ENOENT;
	if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.aeth_stamp), &zero,
				&stamp))
		return -errno;
	memcpy(skel->bss->lb_vip_filter, words,
	       sizeof(skel->bss->lb_vip_filter));
	skel->bss->lb_vip_filter_stamp = vouched ? stamp : stamp + 1;
	return 0;
}

int fx_percpu_add(struct fx *fx, int map_fd, uint32_t key, size_t value_size,
		  int cpu, size_t off, uint64_t v)
{
	size_t stride = (value_size + 7) & ~(size_t)7;
	char *buf = calloc(fx->ncpus, stride);
	int err = 0;

	if (!buf)
		return -ENOMEM;
	if (bpf_map_lookup_elem(map_fd, &key, buf))
		err = -errno;
	if (!err) {
		*(uint64_t *)(buf + cpu * stride + off) += v;
		if (bpf_map_update_elem(map_fd, &key, buf, 0))
			err = -errno;
	}
	free(buf);
	return err;
}

int fx_populate(struct fx *fx)
{
	static const char *const acl0[] = { "198.51.100.0/24",
					    "2001:db8:100::/48" };
	const __u32 seed[4] = FX_SEED;
	uint32_t table[FX_TABLE];
	struct aeth_node node;
	struct aeth_svcinfo in;
	struct aeth_svc svc;
	__u32 zero = 0, id;
	int err;

	memset(&node, 0, sizeof(node));
	fx_addr("192.0.2.11", (union aeth_addr *)&node.v4);
	fx_addr("2001:db8::11", (union aeth_addr *)node.v6);
	node.flags = AETH_NODE_F_V4 | AETH_NODE_F_V6;
	node.mtu = 1500;
	memcpy(node.hash_seed, seed, sizeof(seed));
	if (bpf_map_update_elem(fx->node, &zero, &node, 0))
		return -errno;

	/* svc 0: guarded API endpoint */
	err = fx_service(fx, 0, "kube-apiserver", "203.0.113.10", 6443,
			 IPPROTO_TCP, FX_TABLE, 0, &svc);
	if (err)
		return err;
	svc.flags = AETH_SVC_F_ACL;
	svc.acl_slot = 0;
	svc.src_interval_ns = 1000000000ull / 20;
	svc.src_tolerance_ns = 39 * svc.src_interval_ns;
	svc.svc_interval_ns = 1000000000ull / 5000;
	svc.svc_tolerance_ns = 4999 * svc.svc_interval_ns;
	err = fx_service_update(fx, 0, &svc);
	if (!err)
		err = fx_acl(fx, 0, acl0, 2);
	if (err)
		return err;
	id = 0;
	bpf_map_lookup_elem(fx->svcinfo, &id, &in);
	in.acl_enabled = 1;
	in.acl_cidrs = 2;
	in.rl_per_source = 20;
	in.rl_burst = 40;
	in.rl_per_service = 5000;
	if (bpf_map_update_elem(fx->svcinfo, &id, &in, 0))
		return -errno;
	if ((err = fx_backend(fx, 0, "192.0.2.21", 0, 1, 0)) ||
	    (err = fx_backend(fx, 1, "192.0.2.22", 0, 1, AETH_BE_F_DRAINING)) ||
	    (err = fx_backend(fx, 2, "192.0.2.23", 0, 2, 0)))
		return err;
	for (uint32_t i = 0; i < FX_TABLE; i++)
		table[i] = i % 3 == 0 ? 0 : 2;
	err = fx_maglev(fx, 0, table, FX_TABLE);
	if (err)
		return err;

	/* svc 1: IPv6, every port, UDP */
	err = fx_service(fx, 1, "dns", "2001:db8:f::53", 0, IPPROTO_UDP,
			 FX_TABLE, 2, NULL);
	if ((err = err ? err : fx_backend(fx, 3, "2001:db8::31", 1, 1, 0)) ||
	    (err = fx_backend(fx, 4, "2001:db8::32", 1, 1, AETH_BE_F_UNHEALTHY)))
		return err;
	for (uint32_t i = 0; i < FX_TABLE; i++)
		table[i] = 3;
	err = fx_maglev(fx, 2, table, FX_TABLE);
	if (err)
		return err;

	/* svc 2: a table with holes */
	err = fx_service(fx, 2, "web", "203.0.113.10", 80, IPPROTO_TCP,
			 FX_TABLE, 4, NULL);
	if ((err = err ? err : fx_backend(fx, 5, "192.0.2.41", 2, 1, 0)))
		return err;
	for (uint32_t i = 0; i < FX_TABLE; i++)
		table[i] = i % 2 ? AETH_NO_BACKEND : 5;
	return fx_maglev(fx, 4, table, FX_TABLE);
}

static char *read_all(int fd)
{
	off_t len = lseek(fd, 0, SEEK_END);
	char *buf;

	if (len < 0)
		len = 0;
	buf = calloc(1, len + 1);
	if (buf && len && pread(fd, buf, len, 0) != len)
		buf[0] = '\0';
	return buf;
}

static int run_argv(char **argv, struct fx_res *res)
{
	posix_spawn_file_actions_t fa;
	int ofd, efd, err, st;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	res->status = -1;
	ofd = memfd_create("ctl-out", 0);
	efd = memfd_create("ctl-err", 0);
	if (ofd < 0 || efd < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, ofd, 1);
	posix_spawn_file_actions_adddup2(&fa, efd, 2);
	err = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (err) {
		close(ofd);
		close(efd);
		return -err;
	}
	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	if (WIFEXITED(st))
		res->status = WEXITSTATUS(st);
	res->out = read_all(ofd);
	res->err = read_all(efd);
	close(ofd);
	close(efd);
	if (res->out && res->out[0])
		res->json = json_loads(res->out, JSON_DECODE_ANY, NULL);
	return 0;
}

static int run_va(const char *dir, struct fx_res *res, va_list ap)
{
	char *argv[64];
	int n = 0;
	const char *a;

	argv[n++] = (char *)AETHERCTL_PATH;
	if (dir) {
		argv[n++] = (char *)"--pin-dir";
		argv[n++] = (char *)dir;
	}
	while ((a = va_arg(ap, const char *)) && n < 63)
		argv[n++] = (char *)a;
	argv[n] = NULL;
	return run_argv(argv, res);
}

int fx_ctl(struct fx *fx, struct fx_res *res, ...)
{
	va_list ap;
	int err;

	va_start(ap, res);
	err = run_va(fx->dir, res, ap);
	va_end(ap);
	return err;
}

int fx_ctl_dir(const char *dir, struct fx_res *res, ...)
{
	va_list ap;
	int err;

	va_start(ap, res);
	err = run_va(dir, res, ap);
	va_end(ap);
	return err;
}

void fx_res_free(struct fx_res *res)
{
	free(res->out);
	free(res->err);
	json_decref(res->json);
	memset(res, 0, sizeof(*res));
}

uint64_t fx_now_ns(void)
{
	struct timespec ts;

	/* the data path's clock for limiter states and connection ages */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}
