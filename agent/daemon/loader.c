/* Loading the skeleton over pinned maps, attaching it to the interfaces
 * (replacing a running program in place), and removing it all (--detach). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <xdp/libxdp.h>

#include "aether/names.h"
#include "aether_lb.skel.h"
#include "apply.h"
#include "file_util.h"
#include "loader.h"
#include "log.h"

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif

static const char *const pinned_names[] = {
	AETH_MAP_META, AETH_MAP_NODE, AETH_MAP_VIP, AETH_MAP_SVC,
	AETH_MAP_SVCINFO, AETH_MAP_BACKEND, AETH_MAP_MAGLEV, AETH_MAP_ACL,
	AETH_MAP_CT, AETH_MAP_CT_BUDGET, AETH_MAP_RL_SRC, AETH_MAP_RL_SVC,
	AETH_MAP_SVC_STATS, AETH_MAP_BE_STATS, AETH_MAP_GLOBAL, AETH_MAP_DECAP,
	AETH_MAP_PCPU, AETH_MAP_TX_PORTS,
};

#define N_PINNED (sizeof(pinned_names) / sizeof(pinned_names[0]))

static int pinned_map_path(char *buf, size_t len, const char *dir,
			   const char *name)
{
	if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* One agent per pin directory: a second one would fight the first over
 * the maps. The lock is an flock on the directory, released on exit. */
static int lock_pin_dir(const char *pin_dir, int *lock_fd)
{
	int fd = open(pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), dup;

	if (fd < 0)
		return -errno;
	/* above stdio, so 0 keeps meaning "not held" */
	dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	if (dup < 0)
		return -errno;
	if (flock(dup, LOCK_EX | LOCK_NB)) {
		int err = -errno;

		close(dup);
		return err;
	}
	*lock_fd = dup;
	return 0;
}

int aeth_loader_pinned_schema(const char *pin_dir, uint32_t *version)
{
	struct bpf_map_info info;
	__u32 info_len = sizeof(info);
	struct aeth_meta meta;
	char path[PATH_MAX];
	uint32_t zero = 0;
	int fd, err;

	*version = 0;
	err = pinned_map_path(path, sizeof(path), pin_dir, AETH_MAP_META);
	if (err)
		return err;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	memset(&info, 0, sizeof(info));
	err = bpf_obj_get_info_by_fd(fd, &info, &info_len);
	if (err) {
		err = -errno;
		goto out;
	}
	if (info.value_size < sizeof(uint32_t)) {
		err = -EPROTO;
		goto out;
	}
	memset(&meta, 0, sizeof(meta));
	if (info.value_size != sizeof(meta)) {
		/* another layout: the leading schema version still tells */
		uint8_t *buf = calloc(1, info.value_size);

		if (!buf) {
			err = -ENOMEM;
			goto out;
		}
		if (bpf_map_lookup_elem(fd, &zero, buf) == 0)
			memcpy(version, buf, sizeof(*version));
		else
			err = -errno;
		free(buf);
		if (!err && *version == AETH_SCHEMA_VERSION)
			err = -EPROTO;	/* same number, other size: refuse */
		goto out;
	}
	if (bpf_map_lookup_elem(fd, &zero, &meta))
		err = -errno;
	else
		*version = meta.schema_version;
out:
	close(fd);
	return err;
}

static void unlock_pin_dir(struct aeth_agent *a)
{
	if (a->lock_fd > 2)
		close(a->lock_fd);
	a->lock_fd = 0;
}

static uint32_t pinned_ct_size(const char *pin_dir)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	char path[PATH_MAX];
	uint32_t size = 0;
	int fd;

	if (pinned_map_path(path, sizeof(path), pin_dir, AETH_MAP_CT))
		return 0;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0)
		size = info.max_entries;
	close(fd);
	return size;
}

static void fds_from_skel(struct aeth_agent *a)
{
	struct aether_lb *s = a->skel;

	a->fds.meta = bpf_map__fd(s->maps.aeth_meta);
	a->fds.node = bpf_map__fd(s->maps.aeth_node);
	a->fds.vip = bpf_map__fd(s->maps.aeth_vip);
	a->fds.svc = bpf_map__fd(s->maps.aeth_svc);
	a->fds.svcinfo = bpf_map__fd(s->maps.aeth_svcinfo);
	a->fds.backend = bpf_map__fd(s->maps.aeth_backend);
	a->fds.maglev = bpf_map__fd(s->maps.aeth_maglev);
	a->fds.acl = bpf_map__fd(s->maps.aeth_acl);
	a->fds.ct = bpf_map__fd(s->maps.aeth_ct);
	a->fds.ct_budget = bpf_map__fd(s->maps.aeth_ct_budget);
	a->fds.rl_src = bpf_map__fd(s->maps.aeth_rl_src);
	a->fds.rl_svc = bpf_map__fd(s->maps.aeth_rl_svc);
	a->fds.svc_stats = bpf_map__fd(s->maps.aeth_svc_stats);
	a->fds.be_stats = bpf_map__fd(s->maps.aeth_be_stats);
	a->fds.global = bpf_map__fd(s->maps.aeth_global);
	a->fds.decap = bpf_map__fd(s->maps.aeth_decap);
	a->fds.pcpu = bpf_map__fd(s->maps.aeth_pcpu);
	a->fds.tx_ports = bpf_map__fd(s->maps.aeth_tx_ports);
}

/* The id of the program this process loaded: known to be ours on a NIC
 * even without CAP_SYS_ADMIN, which opening a program by id needs (the
 * first start with the DaemonSet's capabilities minus that one). */
static __u32 own_prog_id;

static void remember_own_prog(const struct aeth_agent *a)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (!bpf_obj_get_info_by_fd(bpf_program__fd(a->skel->progs.aether_lb),
				    &info, &len))
		own_prog_id = info.id;
}

int aeth_loader_open(struct aeth_agent *a, const char *pin_dir,
		     uint32_t ct_max_entries, char *errbuf, size_t errlen)
{
	struct bpf_map *map;
	char path[PATH_MAX];
	uint32_t version, pinned_ct, zero = 0;
	struct statfs sfs;
	int err;

	snprintf(a->pin_dir, sizeof(a->pin_dir), "%s", pin_dir);
	err = aeth_mkdir_p(pin_dir, 0700);
	if (err) {
		snprintf(errbuf, errlen, "cannot create pin directory %s: %s",
			 pin_dir, strerror(-err));
		return err;
	}
	if (statfs(pin_dir, &sfs) == 0 && sfs.f_type != BPF_FS_MAGIC) {
		snprintf(errbuf, errlen, "pin directory %s is not on a bpffs "
			 "(mount -t bpf bpf /sys/fs/bpf)", pin_dir);
		return -EINVAL;
	}
	err = lock_pin_dir(pin_dir, &a->lock_fd);
	if (err) {
		snprintf(errbuf, errlen, "%s: %s", pin_dir,
			 err == -EWOULDBLOCK ? "another aether-agent uses this "
			 "pin directory" : strerror(-err));
		return err;
	}
	err = aeth_loader_pinned_schema(pin_dir, &version);
	if (err || (version && version != AETH_SCHEMA_VERSION)) {
		snprintf(errbuf, errlen,
			 "maps pinned under %s have schema version %u, this "
			 "build uses %u: refusing to reuse them (run "
			 "aether-agent --detach --pin-dir %s to start afresh; "
			 "that drops the connection table)",
			 pin_dir, version, AETH_SCHEMA_VERSION, pin_dir);
		unlock_pin_dir(a);
		return err ? err : -EPROTO;
	}

	a->skel = aether_lb__open();
	if (!a->skel) {
		err = -errno;
		snprintf(errbuf, errlen, "opening the BPF object: %s",
			 strerror(-err));
		unlock_pin_dir(a);
		return err;
	}
	bpf_object__for_each_map(map, a->skel->obj) {
		const char *name = bpf_map__name(map);

		if (strncmp(name, "aeth_", 5))
			continue;	/* .rodata and friends stay private */
		err = pinned_map_path(path, sizeof(path), pin_dir, name);
		if (!err)
			err = bpf_map__set_pin_path(map, path);
		if (err) {
			snprintf(errbuf, errlen, "pin path for %s: %s", name,
				 strerror(-err));
			goto fail;
		}
	}
	pinned_ct = pinned_ct_size(pin_dir);
	if (pinned_ct && ct_max_entries && pinned_ct != ct_max_entries)
		log_warn("%s/%s keeps its %u entries (conntrack.max_entries "
			 "%u takes effect after --detach)", pin_dir, AETH_MAP_CT,
			 pinned_ct, ct_max_entries);
	if (pinned_ct)
		ct_max_entries = pinned_ct;
	if (ct_max_entries) {
		err = bpf_map__set_max_entries(a->skel->maps.aeth_ct,
					       ct_max_entries);
		if (err) {
			snprintf(errbuf, errlen, "sizing %s: %s", AETH_MAP_CT,
				 strerror(-err));
			goto fail;
		}
	}
	err = aether_lb__load(a->skel);
	if (err) {
		snprintf(errbuf, errlen, "loading the BPF object with maps "
			 "under %s: %s", pin_dir, strerror(-err));
		goto fail;
	}
	fds_from_skel(a);
	remember_own_prog(a);

	memset(&a->meta, 0, sizeof(a->meta));
	bpf_map_lookup_elem(a->fds.meta, &zero, &a->meta);
	if (a->meta.schema_version == 0) {
		err = aeth_meta_write(a);
		if (err) {
			snprintf(errbuf, errlen, "writing %s: %s", AETH_MAP_META,
				 strerror(-err));
			goto fail;
		}
	}
	err = aeth_state_recover(a);
	if (err) {
		snprintf(errbuf, errlen, "reading the pinned state: %s",
			 strerror(-err));
		goto fail;
	}
	return 0;
fail:
	aether_lb__destroy(a->skel);
	a->skel = NULL;
	unlock_pin_dir(a);
	return err;
}

void aeth_loader_close(struct aeth_agent *a)
{
	/* libxdp's handles refer to the skeleton's object: drop them
	 * first. Neither detaches anything. */
	for (int i = 0; i < AETH_MAX_INTERFACES; i++) {
		if (a->xdp_progs[i])
			xdp_program__close(a->xdp_progs[i]);
		a->xdp_progs[i] = NULL;
	}
	if (a->skel)
		aether_lb__destroy(a->skel);
	a->skel = NULL;
	aeth_state_free(a->state);
	a->state = NULL;
	aeth_config_free(a->cfg);
	a->cfg = NULL;
	unlock_pin_dir(a);
}

/* ---- sysctls ----------------------------------------------------------- */

static int write_sysctl(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, value, strlen(value));
	close(fd);
	return n < 0 ? -errno : 0;
}

/* The first character of a sysctl's value; '\0' when unreadable. */
static char read_sysctl(const char *path)
{
	char buf[8] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return '\0';
	if (read(fd, buf, sizeof(buf) - 1) <= 0)
		buf[0] = '\0';
	close(fd);
	return buf[0];
}

/* Set a sysctl, or where /proc/sys is read-only (a pod without privileges)
 * accept the host's value when it is already right and otherwise say what
 * to set on the host. */
static void ensure_sysctl(const char *path, const char *value, bool required,
			  const char *or_all)
{
	char name[256], *c;
	int err = write_sysctl(path, value);
	char now;

	if (!err || !required)
		return;
	now = read_sysctl(path);
	/* accept_local is on when conf.all's is (the kernel ORs the two) */
	if (now == value[0] || (or_all && read_sysctl(or_all) == value[0])) {
		log_debug("%s is %s already (cannot write it: %s)", path, value,
			  strerror(-err));
		return;
	}
	snprintf(name, sizeof(name), "%s", path + strlen("/proc/sys/"));
	for (c = name; *c; c++)
		if (*c == '/')
			*c = '.';
	log_warn("%s is %c, needs %s, and cannot be set here (%s): set it on "
		 "the host (sysctl -w %s=%s; docs/deploy.md)", name,
		 now ? now : '?', value, strerror(-err), name, value);
}

/* Packets the data path hands to the stack after encapsulating them (no
 * neighbour yet, or too big without DF) carry the node's own address as
 * source and must be forwarded: forwarding on, accept_local so a local
 * source is not dropped as martian, and rp_filter off on the interface.
 * (rp_filter takes the larger of conf.all and the interface, so a non-zero
 * conf.all is reported rather than changed behind the operator's back.) */
static void set_sysctls(const char *ifname)
{
	static const struct {
		const char *fmt, *value;
		bool required;
		const char *or_all;
	} knobs[] = {
		{ "/proc/sys/net/ipv4/ip_forward", "1", true, NULL },
		{ "/proc/sys/net/ipv4/conf/%s/forwarding", "1", true, NULL },
		{ "/proc/sys/net/ipv4/conf/%s/accept_local", "1", true,
		  "/proc/sys/net/ipv4/conf/all/accept_local" },
		{ "/proc/sys/net/ipv4/conf/%s/rp_filter", "0", true, NULL },
		{ "/proc/sys/net/ipv6/conf/%s/forwarding", "1", false, NULL },
	};
	char path[256], all;

	for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
		snprintf(path, sizeof(path), knobs[i].fmt, ifname);
		ensure_sysctl(path, knobs[i].value, knobs[i].required,
			      knobs[i].or_all);
	}
	all = read_sysctl("/proc/sys/net/ipv4/conf/all/rp_filter");
	if (all && all != '0')
		log_warn("net.ipv4.conf.all.rp_filter is %c: packets handed to "
			 "the stack with the node's source may be dropped "
			 "(sysctl -w net.ipv4.conf.all.rp_filter=0 on the host)",
			 all);
}

/* ---- attaching --------------------------------------------------------- */

static __u32 mode_flags(enum aeth_xdp_mode mode)
{
	return mode == AETH_XDP_MODE_GENERIC ? XDP_FLAGS_SKB_MODE :
					       XDP_FLAGS_DRV_MODE;
}

static int quiet_libbpf(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	log_debug("%s", msg);
	return 0;
}

static int quiet_libxdp(enum libxdp_print_level level, const char *fmt,
			va_list ap)
{
	return quiet_libbpf(LIBBPF_DEBUG, fmt, ap);
}

static int libxdp_to_log(enum libxdp_print_level level, const char *fmt,
			 va_list ap)
{
	aeth_logv(level == LIBXDP_WARN ? AETH_LOG_WARN : AETH_LOG_DEBUG, fmt, ap);
	return 0;
}

void aeth_loader_hook_logs(void)
{
	aeth_log_hook_libbpf();
	libxdp_set_print(libxdp_to_log);
}

/* Fresh attach through libxdp. This kernel refuses the dispatcher, so libxdp
 * falls back to a single program; its chatter about that goes to debug. */
static int attach_fresh(struct aeth_agent *a, int slot, int ifindex,
			enum aeth_xdp_mode want, enum aeth_xdp_mode *got)
{
	DECLARE_LIBXDP_OPTS(xdp_program_opts, opts, .obj = a->skel->obj,
			    .prog_name = AETH_PROG_NAME);
	libbpf_print_fn_t old_bpf;
	libxdp_print_fn_t old_xdp;
	struct xdp_program *prog = a->xdp_progs[slot];
	int err;

	if (!prog) {
		prog = xdp_program__create(&opts);
		err = libxdp_get_error(prog);
		if (err)
			return err;
		a->xdp_progs[slot] = prog;
	}
	old_bpf = libbpf_set_print(quiet_libbpf);
	old_xdp = libxdp_set_print(quiet_libxdp);
	err = -EINVAL;
	if (want == AETH_XDP_MODE_NATIVE || want == AETH_XDP_MODE_AUTO) {
		err = xdp_program__attach(prog, ifindex, XDP_MODE_NATIVE, 0);
		if (!err)
			*got = AETH_XDP_MODE_NATIVE;
	}
	if (err && (want == AETH_XDP_MODE_GENERIC || want == AETH_XDP_MODE_AUTO)) {
		err = xdp_program__attach(prog, ifindex, XDP_MODE_SKB, 0);
		if (!err)
			*got = AETH_XDP_MODE_GENERIC;
	}
	libbpf_set_print(old_bpf);
	libxdp_set_print(old_xdp);
	return err;
}

#define MAX_PROG_MAPS 64

/* The maps a program uses, as (id, info) pairs. Returns how many, or -1. */
static int prog_maps(int prog_fd, struct bpf_prog_info *pi,
		     struct bpf_map_info *maps, __u32 *ids)
{
	__u32 len = sizeof(*pi);

	memset(pi, 0, sizeof(*pi));
	pi->nr_map_ids = MAX_PROG_MAPS;
	pi->map_ids = (__u64)(unsigned long)ids;
	if (bpf_obj_get_info_by_fd(prog_fd, pi, &len) ||
	    pi->nr_map_ids > MAX_PROG_MAPS)
		return -1;
	for (__u32 i = 0; i < pi->nr_map_ids; i++) {
		__u32 mlen = sizeof(maps[i]);
		int fd = bpf_map_get_fd_by_id(ids[i]);

		memset(&maps[i], 0, sizeof(maps[i]));
		if (fd < 0)
			return -1;
		bpf_obj_get_info_by_fd(fd, &maps[i], &mlen);
		close(fd);
	}
	return pi->nr_map_ids;
}

/* Do two global-data maps (.rodata and friends) hold the same bytes? */
static bool same_data(__u32 id_a, __u32 id_b, __u32 value_size)
{
	uint8_t *va = calloc(2, value_size ? value_size : 1);
	int fa = bpf_map_get_fd_by_id(id_a), fb = bpf_map_get_fd_by_id(id_b);
	uint32_t zero = 0;
	bool same = false;

	if (va && fa >= 0 && fb >= 0 &&
	    bpf_map_lookup_elem(fa, &zero, va) == 0 &&
	    bpf_map_lookup_elem(fb, &zero, va + value_size) == 0)
		same = memcmp(va, va + value_size, value_size) == 0;
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	free(va);
	return same;
}

/* Is the attached program ours already: same instructions (tag), the same
 * pinned maps, and global data with the same contents? Then a restart
 * keeps it instead of swapping in an identical copy. */
static bool same_program(int fd_a, int fd_b)
{
	static struct bpf_map_info ma[MAX_PROG_MAPS], mb[MAX_PROG_MAPS];
	__u32 ia[MAX_PROG_MAPS], ib[MAX_PROG_MAPS];
	struct bpf_prog_info pa, pb;
	int na, nb;

	na = prog_maps(fd_a, &pa, ma, ia);
	nb = prog_maps(fd_b, &pb, mb, ib);
	if (na < 0 || na != nb || memcmp(pa.tag, pb.tag, sizeof(pa.tag)))
		return false;
	for (int i = 0; i < na; i++) {
		int j;

		for (j = 0; j < nb; j++)
			if (strcmp(ma[i].name, mb[j].name) == 0)
				break;
		if (j == nb)
			return false;
		if (strncmp(ma[i].name, "aeth_", 5) == 0) {
			if (ma[i].id != mb[j].id)
				return false;
		} else if (ma[i].value_size != mb[j].value_size ||
			   ma[i].type != mb[j].type ||
			   (ma[i].type == BPF_MAP_TYPE_ARRAY &&
			    !same_data(ma[i].id, mb[j].id, ma[i].value_size))) {
			return false;
		}
	}
	return true;
}

static __u32 prog_id_of(int fd)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return 0;
	return info.id;
}

/* ---- who owns the program on an interface ------------------------------ */

/* The id of the aeth_meta map: ours open (a->fds.meta) or pinned under
 * pin_dir; 0 when there is none. */
static __u32 meta_map_id(int meta_fd, const char *pin_dir)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	char path[PATH_MAX];
	int fd = meta_fd;

	if (fd <= 0) {
		if (!pin_dir || pinned_map_path(path, sizeof(path), pin_dir,
						AETH_MAP_META))
			return 0;
		fd = bpf_obj_get(path);
		if (fd < 0)
			return 0;
	}
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		info.id = 0;
	if (fd != meta_fd)
		close(fd);
	return info.id;
}

enum owner { OWNER_US, OWNER_OTHER_AGENT, OWNER_FOREIGN, OWNER_UNKNOWN };

/* A program is ours when it uses our aeth_meta map; another agent's when
 * it uses an aeth_meta map of another pin directory. */
static enum owner prog_owner(__u32 prog_id, __u32 our_meta)
{
	static struct bpf_map_info maps[MAX_PROG_MAPS];
	__u32 ids[MAX_PROG_MAPS];
	struct bpf_prog_info pi;
	enum owner o = OWNER_FOREIGN;
	int fd, n;

	if (prog_id && prog_id == own_prog_id)
		return OWNER_US;
	fd = bpf_prog_get_fd_by_id(prog_id);
	if (fd < 0)	/* EPERM: not allowed to look, so not known to be ours */
		return errno == EPERM ? OWNER_UNKNOWN : OWNER_FOREIGN;
	n = prog_maps(fd, &pi, maps, ids);
	close(fd);
	for (int i = 0; i < n; i++) {
		if (strcmp(maps[i].name, AETH_MAP_META))
			continue;
		o = our_meta && maps[i].id == our_meta ? OWNER_US :
							 OWNER_OTHER_AGENT;
	}
	return o;
}

/* 0 when we may attach to ifname: it exists here and carries no program or
 * ours. Otherwise -ENODEV or -EBUSY with the reason in msg. */
static int iface_usable(const char *ifname, __u32 our_meta, char *msg,
			size_t len)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	int ifindex = if_nametoindex(ifname);
	__u32 ids[2];

	if (!ifindex) {
		snprintf(msg, len, "no interface %s on this node", ifname);
		return -ENODEV;
	}
	if (bpf_xdp_query(ifindex, 0, &q))
		return 0;	/* attaching will say what is wrong */
	ids[0] = q.drv_prog_id;
	ids[1] = q.skb_prog_id;
	for (int i = 0; i < 2; i++) {
		if (!ids[i])
			continue;
		switch (prog_owner(ids[i], our_meta)) {
		case OWNER_US:
			break;
		case OWNER_OTHER_AGENT:
			snprintf(msg, len, "%s carries XDP program %u of another "
				 "aether-agent (maps pinned elsewhere): refusing "
				 "to take it over", ifname, ids[i]);
			return -EBUSY;
		case OWNER_UNKNOWN:
			snprintf(msg, len, "%s carries XDP program %u, which this "
				 "process may not inspect: %s (CAP_SYS_ADMIN is "
				 "needed to restart over a running program)",
				 ifname, ids[i], strerror(EPERM));
			return -EPERM;
		default:
			snprintf(msg, len, "%s carries XDP program %u that is not "
				 "aether-lb's: refusing to replace it (remove it "
				 "first)", ifname, ids[i]);
			return -EBUSY;
		}
	}
	return 0;
}

int aeth_loader_check_ifaces(int meta_fd, const char *pin_dir,
			     const struct aeth_config *cfg,
			     struct aeth_error *err)
{
	__u32 our_meta = meta_map_id(meta_fd, pin_dir);
	int ret;

	for (size_t i = 0; i < cfg->n_interfaces; i++) {
		ret = iface_usable(cfg->interfaces[i], our_meta, err->message,
				   sizeof(err->message));
		if (ret) {
			snprintf(err->path, sizeof(err->path),
				 "node.interfaces[%zu]", i);
			err->line = err->column = 0;
			return ret;
		}
	}
	return 0;
}

/* Attach to the interfaces of cfg that carry no program yet, before the
 * document touches any map, so that an interface the program cannot go on
 * (no native XDP, say) rejects the document as a whole. On the first
 * failure the interfaces this call attached are freed again. The caller
 * has checked that whatever runs elsewhere is ours. */
int aeth_loader_attach_new(struct aeth_agent *a, const struct aeth_config *cfg,
			   struct aeth_error *err)
{
	int done[AETH_MAX_INTERFACES], modes[AETH_MAX_INTERFACES], n = 0;
	size_t i;
	int ret = 0;

	for (i = 0; i < cfg->n_interfaces && i < AETH_MAX_INTERFACES; i++) {
		LIBBPF_OPTS(bpf_xdp_query_opts, q);
		int ifindex = if_nametoindex(cfg->interfaces[i]);
		enum aeth_xdp_mode got = AETH_XDP_MODE_NONE;

		if (!ifindex || bpf_xdp_query(ifindex, 0, &q) ||
		    q.drv_prog_id || q.skb_prog_id)
			continue;	/* checked, or ours already */
		ret = attach_fresh(a, i, ifindex, cfg->xdp_mode, &got);
		if (ret) {
			snprintf(err->path, sizeof(err->path),
				 "node.interfaces[%zu]", i);
			snprintf(err->message, sizeof(err->message),
				 "%s: attaching in %s mode: %s",
				 cfg->interfaces[i],
				 aeth_xdp_mode_names[cfg->xdp_mode],
				 strerror(-ret));
			break;
		}
		log_info("%s: attached (%s mode, single program)",
			 cfg->interfaces[i], aeth_xdp_mode_names[got]);
		done[n] = ifindex;
		modes[n++] = got;
	}
	while (ret && n--)
		bpf_xdp_detach(done[n], mode_flags(modes[n]), NULL);
	return ret;
}

static int attach_one(struct aeth_agent *a, int slot, const char *ifname,
		      enum aeth_xdp_mode want, struct aeth_iface_status *st)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	int new_fd = bpf_program__fd(a->skel->progs.aether_lb);
	enum aeth_xdp_mode got = AETH_XDP_MODE_NONE;
	int ifindex, err;
	__u32 old_id = 0;

	ifindex = if_nametoindex(ifname);
	if (!ifindex) {
		log_err("node.interfaces: %s: no such interface", ifname);
		return -ENODEV;
	}
	set_sysctls(ifname);
	err = bpf_xdp_query(ifindex, 0, &q);
	if (err) {
		log_err("%s: querying XDP state: %s", ifname, strerror(-err));
		return err;
	}
	if (q.drv_prog_id) {
		old_id = q.drv_prog_id;
		got = AETH_XDP_MODE_NATIVE;
	} else if (q.skb_prog_id) {
		old_id = q.skb_prog_id;
		got = AETH_XDP_MODE_GENERIC;
	}
	if (old_id && old_id == prog_id_of(new_fd))
		goto record;	/* this run's program (an earlier apply, or
				 * attached before the maps changed) */
	if (old_id && prog_owner(old_id, meta_map_id(a->fds.meta, NULL)) !=
		      OWNER_US) {
		char msg[256];

		iface_usable(ifname, meta_map_id(a->fds.meta, NULL), msg,
			     sizeof(msg));
		log_err("%s", msg);
		return -EBUSY;
	}
	if (old_id) {
		LIBBPF_OPTS(bpf_xdp_attach_opts, ao);
		int old_fd = bpf_prog_get_fd_by_id(old_id);

		if (old_fd < 0) {
			err = -errno;
			log_err("%s: opening attached program %u: %s", ifname,
				old_id, strerror(-err));
			return err;
		}
		if (same_program(old_fd, new_fd)) {
			/* restarted over the same program: leave it be */
			close(old_fd);
			log_info("%s: program %u already attached (%s)", ifname,
				 old_id, aeth_xdp_mode_names[got]);
			goto record;
		}
		if (want != AETH_XDP_MODE_AUTO && want != got)
			log_warn("%s: keeping the %s mode of the running program "
				 "(--detach first to change it)", ifname,
				 aeth_xdp_mode_names[got]);
		/* one atomic swap: no packet sees an interface without XDP */
		ao.old_prog_fd = old_fd;
		err = bpf_xdp_attach(ifindex, new_fd,
				     XDP_FLAGS_REPLACE | mode_flags(got), &ao);
		close(old_fd);
		if (err) {
			log_err("%s: replacing program %u: %s", ifname, old_id,
				strerror(-err));
			return err;
		}
		log_info("%s: replaced program %u in place (%s)", ifname,
			 old_id, aeth_xdp_mode_names[got]);
	} else {
		err = attach_fresh(a, slot, ifindex, want, &got);
		if (err) {
			log_err("%s: attaching in %s mode: %s", ifname,
				aeth_xdp_mode_names[want], strerror(-err));
			return err;
		}
		log_info("%s: attached (%s mode, single program)", ifname,
			 aeth_xdp_mode_names[got]);
	}
record:
	/* a redirect target from now on (aeth_tx_ports) */
	if (bpf_map_update_elem(a->fds.tx_ports, &ifindex, &ifindex, BPF_ANY))
		log_debug("%s: not a redirect target: %s", ifname,
			  strerror(errno));
	memset(&q, 0, sizeof(q));
	q.sz = sizeof(q);
	bpf_xdp_query(ifindex, 0, &q);
	memset(st, 0, sizeof(*st));
	st->ifindex = ifindex;
	st->mode = got;
	st->prog_id = got == AETH_XDP_MODE_GENERIC ? q.skb_prog_id :
						   q.drv_prog_id;
	snprintf(st->name, sizeof(st->name), "%s", ifname);
	return 0;
}

/* Take the program off an interface (found by name: ifindexes are per
 * namespace), only if it is still the one we put there. */
static int detach_one(const struct aeth_iface_status *st)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	LIBBPF_OPTS(bpf_xdp_attach_opts, ao);
	__u32 flags = st->mode == AETH_XDP_MODE_GENERIC ? XDP_FLAGS_SKB_MODE :
							XDP_FLAGS_DRV_MODE;
	int ifindex = if_nametoindex(st->name);
	__u32 cur;
	int fd, err;

	if (!ifindex || bpf_xdp_query(ifindex, 0, &q)) {
		fd = bpf_prog_get_fd_by_id(st->prog_id);
		if (fd < 0)
			return 0;	/* interface and program are gone */
		close(fd);
		log_err("%s: not in this network namespace, but program %u is "
			"still loaded: run --detach where the interface is",
			st->name, st->prog_id);
		return -ENODEV;
	}
	cur = flags == XDP_FLAGS_SKB_MODE ? q.skb_prog_id : q.drv_prog_id;
	if (!cur || cur != st->prog_id) {
		log_info("%s: program %u no longer attached, nothing to do",
			 st->name, st->prog_id);
		return 0;
	}
	fd = bpf_prog_get_fd_by_id(cur);
	if (fd < 0)
		return -errno;
	ao.old_prog_fd = fd;
	err = bpf_xdp_detach(ifindex, flags | XDP_FLAGS_REPLACE, &ao);
	close(fd);
	if (!err)
		log_info("%s: detached program %u", st->name, st->prog_id);
	return err;
}

int aeth_loader_attach(struct aeth_agent *a, const struct aeth_config *cfg)
{
	struct aeth_iface_status ifs[AETH_MAX_INTERFACES];
	size_t n = cfg->n_interfaces;
	int first_err = 0;

	if (n > AETH_MAX_INTERFACES)
		n = AETH_MAX_INTERFACES;
	memset(ifs, 0, sizeof(ifs));
	for (size_t i = 0; i < n; i++) {
		int err = attach_one(a, i, cfg->interfaces[i], cfg->xdp_mode,
				     &ifs[i]);

		if (err && !first_err)
			first_err = err;
		if (err)
			snprintf(ifs[i].name, sizeof(ifs[i].name), "%s",
				 cfg->interfaces[i]);
	}
	/* interfaces the document dropped; not when the new ones did not all
	 * take the program: then what runs stays */
	for (uint32_t j = 0; !first_err && j < a->meta.n_interfaces &&
			     j < AETH_MAX_INTERFACES; j++) {
		const struct aeth_iface_status *old = &a->meta.ifaces[j];
		bool kept = false;

		for (size_t i = 0; i < n; i++)
			if (ifs[i].ifindex == old->ifindex)
				kept = true;
		if (kept || !old->ifindex)
			continue;
		bpf_map_delete_elem(a->fds.tx_ports, &old->ifindex);
		if (detach_one(old))
			log_warn("%s: could not detach (no longer in "
				 "node.interfaces)", old->name);
	}
	memcpy(a->meta.ifaces, ifs, sizeof(ifs));
	a->meta.n_interfaces = n;
	if (aeth_meta_write(a))
		log_warn("writing %s: %s", AETH_MAP_META, strerror(errno));
	a->status.attached = first_err == 0;
	return first_err;
}

static bool all_attached(const struct aeth_agent *a)
{
	if (!a->cfg)
		return false;
	for (size_t i = 0; i < a->cfg->n_interfaces && i < AETH_MAX_INTERFACES;
	     i++)
		if (!a->meta.ifaces[i].ifindex || !a->meta.ifaces[i].prog_id)
			return false;
	return true;
}

int aeth_loader_reattach(struct aeth_agent *a, size_t slot)
{
	struct aeth_iface_status st;
	int err;

	if (!a->cfg || !a->skel || slot >= a->cfg->n_interfaces ||
	    slot >= AETH_MAX_INTERFACES)
		return -EINVAL;
	memset(&st, 0, sizeof(st));
	err = attach_one(a, slot, a->cfg->interfaces[slot], a->cfg->xdp_mode,
			 &st);
	if (err) {
		memset(&st, 0, sizeof(st));
		snprintf(st.name, sizeof(st.name), "%s",
			 a->cfg->interfaces[slot]);
	}
	a->meta.ifaces[slot] = st;
	if (aeth_meta_write(a))
		log_warn("writing %s: %s", AETH_MAP_META, strerror(errno));
	a->status.attached = all_attached(a);
	return err;
}

void aeth_loader_mark_absent(struct aeth_agent *a, size_t slot)
{
	struct aeth_iface_status *st;

	if (!a->cfg || slot >= a->cfg->n_interfaces ||
	    slot >= AETH_MAX_INTERFACES)
		return;
	st = &a->meta.ifaces[slot];
	memset(st, 0, sizeof(*st));
	snprintf(st->name, sizeof(st->name), "%s", a->cfg->interfaces[slot]);
	if (aeth_meta_write(a))
		log_warn("writing %s: %s", AETH_MAP_META, strerror(errno));
	a->status.attached = false;
}

/* ---- pins lost under a running agent ---------------------------------- */

int aeth_loader_repin(struct aeth_agent *a, char *names, size_t len)
{
	struct bpf_map *map;
	char path[PATH_MAX];
	struct stat sb;
	size_t used = 0;
	int n = 0, err;

	if (len)
		names[0] = '\0';
	if (!a->skel)
		return 0;
	if (stat(a->pin_dir, &sb)) {
		if (errno != ENOENT)
			return -errno;
		err = aeth_mkdir_p(a->pin_dir, 0700);
		if (err)
			return err;
		/* the lock was on the directory that went away */
		unlock_pin_dir(a);
		err = lock_pin_dir(a->pin_dir, &a->lock_fd);
		if (err)
			log_warn("%s: locking the recreated directory: %s",
				 a->pin_dir, err == -EWOULDBLOCK ?
				 "another aether-agent holds it" :
				 strerror(-err));
	}
	bpf_object__for_each_map(map, a->skel->obj) {
		const char *name = bpf_map__name(map);

		if (strncmp(name, "aeth_", 5))
			continue;
		err = pinned_map_path(path, sizeof(path), a->pin_dir, name);
		if (err)
			return err;
		if (stat(path, &sb) == 0 || errno != ENOENT)
			continue;
		if (bpf_obj_pin(bpf_map__fd(map), path)) {
			err = -errno;
			log_err("re-pinning %s: %s", path, strerror(-err));
			return err;
		}
		if (used < len)
			used += snprintf(names + used, len - used, "%s%s",
					 n ? ", " : "", name);
		n++;
	}
	return n;
}

/* ---- --detach ---------------------------------------------------------- */

int aeth_loader_detach(const char *pin_dir, char *errbuf, size_t errlen)
{
	struct aeth_meta meta;
	char path[PATH_MAX];
	uint32_t zero = 0, version;
	int fd, err, ret = 0, lock_fd = 0;

	err = pinned_map_path(path, sizeof(path), pin_dir, AETH_MAP_META);
	if (err)
		return err;
	fd = bpf_obj_get(path);
	if (fd < 0) {
		err = -errno;
		snprintf(errbuf, errlen, "no aether-lb state under %s: %s",
			 pin_dir, strerror(-err));
		return err;
	}
	err = lock_pin_dir(pin_dir, &lock_fd);
	if (err) {
		snprintf(errbuf, errlen, "%s: %s", pin_dir,
			 err == -EWOULDBLOCK ? "an aether-agent is running on "
			 "it; stop it first" : strerror(-err));
		close(fd);
		return err;
	}
	err = aeth_loader_pinned_schema(pin_dir, &version);
	memset(&meta, 0, sizeof(meta));
	if (!err && version == AETH_SCHEMA_VERSION &&
	    bpf_map_lookup_elem(fd, &zero, &meta) == 0) {
		for (uint32_t i = 0; i < meta.n_interfaces &&
				     i < AETH_MAX_INTERFACES; i++) {
			if (!meta.ifaces[i].ifindex)
				continue;
			err = detach_one(&meta.ifaces[i]);
			if (err && err != -ENODEV)
				log_err("%s: detaching: %s", meta.ifaces[i].name,
					strerror(-err));
			if (err)
				ret = err;
		}
		if (ret) {
			/* unpinning now would orphan a running program */
			snprintf(errbuf, errlen, "not detached everywhere; the "
				 "maps under %s stay pinned", pin_dir);
			close(fd);
			close(lock_fd);
			return ret;
		}
	} else {
		log_warn("%s: unknown schema, unpinning without detaching",
			 pin_dir);
	}
	close(fd);
	for (size_t i = 0; i < N_PINNED; i++) {
		if (pinned_map_path(path, sizeof(path), pin_dir,
				    pinned_names[i]))
			continue;
		if (unlink(path) && errno != ENOENT) {
			err = -errno;
			log_err("unpinning %s: %s", path, strerror(-err));
			ret = err;
		}
	}
	close(lock_fd);
	if (rmdir(pin_dir) && errno != ENOENT) {
		err = -errno;
		log_warn("removing %s: %s", pin_dir, strerror(-err));
	}
	if (ret)
		snprintf(errbuf, errlen, "detach under %s was incomplete",
			 pin_dir);
	return ret;
}
