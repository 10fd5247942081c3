/* Attaching the loaded program to the interfaces: the sysctls a NIC needs,
 * who owns the program already there, our pinned links, attaching,
 * replacing in place and detaching one interface.
 *
 * Attach policy: BPF links only, through libbpf (no libxdp). A fresh
 * attach creates an XDP bpf_link (native, or generic when asked or, in
 * auto mode, when native is refused) and pins it at
 * <pin_dir>/links/<ifname>: a link lives as long as its pin or an fd, so
 * the program stays when the agent exits, and the agent holds the fds so
 * a deleted pin directory can be pinned again. A restart opens the pinned
 * link and bpf_link_update()s it to the new program: one atomic swap, no
 * moment without a program, and nothing but our own link is ever touched.
 * --detach detaches the link and removes the pin.
 * Why not libxdp: with a dispatcher (kernels that accept it, Debian 12's
 * 6.1) a restart found the dispatcher and replaced it, dropping the other
 * programs on the NIC, and libxdp 1.3.1 cannot detach a link; one
 * mechanism we own end to end is simpler to reason about.
 * A NIC with a program that is not ours (attached by netlink or by another
 * link, another agent's included) is refused and left untouched
 * (iface_usable). An own program attached through netlink by an earlier
 * agent version cannot become a link without a gap (the kernel refuses a
 * link over a netlink program), so it is replaced in place through
 * netlink (XDP_FLAGS_REPLACE) and stays netlink-attached, which the log
 * says, until --detach; the next start then uses a link. docs/deploy.md
 * ("Attaching") says the same for operators. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

#include "aether/map_table.h"
#include "aether/names.h"
#include "aether_lb.skel.h"
#include "apply.h"
#include "file_util.h"
#include "loader.h"
#include "log.h"



#include "loader_internal.h"

/* The id of the program this process loaded: known to be ours on a NIC
 * even without CAP_SYS_ADMIN, which opening a program by id needs (the
 * first start with the DaemonSet's capabilities minus that one). */
static __u32 own_prog_id;

void attach_remember_own_prog(const struct aeth_agent *a)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (!bpf_obj_get_info_by_fd(bpf_program__fd(a->skel->progs.aether_lb),
				    &info, &len))
		own_prog_id = info.id;
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
		if (!pin_dir || loader_pin_path(path, sizeof(path), pin_dir,
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

static int link_info(int fd, __u32 *id, __u32 *prog_id, __u32 *ifindex);
static int pinned_link(const char *pin_dir, const char *ifname, int ifindex);

/* Whether the link pinned for ifname under our pin_dir holds prog_id on
 * ifindex: then the program is ours, known without opening it by id
 * (which needs CAP_SYS_ADMIN). A stale pin is removed, as own_link would. */
static bool held_by_own_pin(const char *pin_dir, const char *ifname,
			    int ifindex, __u32 prog_id)
{
	__u32 id, prog = 0, on;
	int fd;

	if (!pin_dir || !ifname)
		return false;
	fd = pinned_link(pin_dir, ifname, ifindex);
	if (fd < 0)
		return false;
	if (link_info(fd, &id, &prog, &on))
		prog = 0;
	close(fd);
	return prog == prog_id;
}

/* A program is ours when it is this run's, when the link pinned under our
 * pin_dir for the interface holds it, or when it uses our aeth_meta map
 * (a program an earlier agent attached through netlink: opened by id);
 * another agent's when it uses an aeth_meta map of another pin
 * directory. */
static enum owner prog_owner(__u32 prog_id, __u32 our_meta, const char *pin_dir,
			     const char *ifname, int ifindex)
{
	static struct bpf_map_info maps[MAX_PROG_MAPS];
	__u32 ids[MAX_PROG_MAPS];
	struct bpf_prog_info pi;
	enum owner o = OWNER_FOREIGN;
	int fd, n;

	if (prog_id && prog_id == own_prog_id)
		return OWNER_US;
	if (held_by_own_pin(pin_dir, ifname, ifindex, prog_id))
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
static int iface_usable(const char *ifname, __u32 our_meta,
			const char *pin_dir, char *msg, size_t len)
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
		switch (prog_owner(ids[i], our_meta, pin_dir, ifname, ifindex)) {
		case OWNER_US:
			break;
		case OWNER_OTHER_AGENT:
			snprintf(msg, len, "%s carries XDP program %u of another "
				 "aether-agent (maps pinned elsewhere): refusing "
				 "to take it over", ifname, ids[i]);
			return -EBUSY;
		case OWNER_UNKNOWN:
			snprintf(msg, len, "%s carries XDP program %u, attached "
				 "through netlink (no link of ours pinned under %s), "
				 "which this process may not inspect: %s "
				 "(CAP_SYS_ADMIN is needed once, to take over such "
				 "a program)", ifname, ids[i], pin_dir ? pin_dir : "",
				 strerror(EPERM));
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
		ret = iface_usable(cfg->interfaces[i], our_meta, pin_dir,
				   err->message, sizeof(err->message));
		if (ret) {
			snprintf(err->path, sizeof(err->path),
				 "node.interfaces[%zu]", i);
			err->line = err->column = 0;
			return ret;
		}
	}
	return 0;
}

/* ---- our links --------------------------------------------------------- */

int attach_link_pin_path(char *buf, size_t len, const char *pin_dir,
			 const char *ifname)
{
	if ((size_t)snprintf(buf, len, "%s/" LINKS_DIR "/%s", pin_dir,
			     ifname) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* What a link holds: its id, program, and interface (0 once the
 * interface is gone or the link was detached). */
static int link_info(int fd, __u32 *id, __u32 *prog_id, __u32 *ifindex)
{
	struct bpf_link_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	if (info.type != BPF_LINK_TYPE_XDP)
		return -EINVAL;
	*id = info.id;
	*prog_id = info.prog_id;
	*ifindex = info.xdp.ifindex;
	return 0;
}

/* The link pinned for ifname under pin_dir when it holds the interface
 * ifindex now (fd returned); a stale pin (interface gone or renamed, link
 * detached, not a link) is removed. -ENOENT when there is none. */
static int pinned_link(const char *pin_dir, const char *ifname, int ifindex)
{
	__u32 id, prog, on;
	char path[PATH_MAX];
	int fd, err;

	err = attach_link_pin_path(path, sizeof(path), pin_dir, ifname);
	if (err)
		return err;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	err = link_info(fd, &id, &prog, &on);
	if (!err && (int)on == ifindex && ifindex)
		return fd;
	close(fd);
	log_info("%s: removing stale link pin %s", ifname, path);
	unlink(path);
	return -ENOENT;
}

int attach_pin_link(const char *pin_dir, const char *ifname, int fd)
{
	char path[PATH_MAX];
	int err;

	err = loader_pin_path(path, sizeof(path), pin_dir, LINKS_DIR);
	if (err)
		return err;
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	err = attach_link_pin_path(path, sizeof(path), pin_dir, ifname);
	if (err)
		return err;
	unlink(path);	/* a stale pin of a link that is gone */
	return bpf_obj_pin(fd, path) ? -errno : 0;
}

static struct aeth_xdp_link *held_link(struct aeth_agent *a,
				       const char *ifname)
{
	for (int i = 0; i < AETH_MAX_INTERFACES; i++)
		if (a->links[i].fd > 2 &&
		    !strncmp(a->links[i].ifname, ifname, AETH_IFNAME_LEN))
			return &a->links[i];
	return NULL;
}

static void drop_held(struct aeth_xdp_link *l)
{
	if (l && l->fd > 2)
		close(l->fd);
	if (l)
		memset(l, 0, sizeof(*l));
}

/* Keep fd as the link of ifname: the agent holds every link it pinned, so
 * that a deleted pin can be pinned again (aeth_loader_repin). */
static void hold_link(struct aeth_agent *a, const char *ifname, int fd)
{
	struct aeth_xdp_link *l = held_link(a, ifname);

	if (l && l->fd == fd)
		return;
	drop_held(l);
	for (int i = 0; !l && i < AETH_MAX_INTERFACES; i++)
		if (a->links[i].fd <= 2)
			l = &a->links[i];
	if (!l) {	/* more links than interfaces: the pin keeps it */
		close(fd);
		return;
	}
	l->fd = fd;
	snprintf(l->ifname, sizeof(l->ifname), "%s", ifname);
}

void attach_release_links(struct aeth_agent *a)
{
	for (int i = 0; i < AETH_MAX_INTERFACES; i++)
		drop_held(&a->links[i]);
}

/* Our link on ifname at ifindex: the one held, else the pinned one (held
 * from now on). A stale one is forgotten. -ENOENT when there is none. */
static int own_link(struct aeth_agent *a, const char *ifname, int ifindex)
{
	struct aeth_xdp_link *l = held_link(a, ifname);
	__u32 id, prog, on;
	int fd;

	if (l && !link_info(l->fd, &id, &prog, &on) && (int)on == ifindex)
		return l->fd;
	drop_held(l);
	fd = pinned_link(a->pin_dir, ifname, ifindex);
	if (fd >= 0)
		hold_link(a, ifname, fd);
	return fd;
}

/* Take our link off ifname (if any), unpin and forget it. */
static void unlink_own(struct aeth_agent *a, const char *ifname)
{
	struct aeth_xdp_link *l = held_link(a, ifname);
	char path[PATH_MAX];

	if (l)
		bpf_link_detach(l->fd);
	drop_held(l);
	if (!attach_link_pin_path(path, sizeof(path), a->pin_dir, ifname))
		unlink(path);
}

/* A new link of our program on ifindex, in the mode asked (auto: native,
 * else generic), pinned and held. */
static int link_attach(struct aeth_agent *a, const char *ifname, int ifindex,
		       enum aeth_xdp_mode want, enum aeth_xdp_mode *got)
{
	int prog_fd = bpf_program__fd(a->skel->progs.aether_lb);
	int fd = -EINVAL, err;

	unlink_own(a, ifname);	/* nothing runs there: whatever was is stale */
	if (want == AETH_XDP_MODE_NATIVE || want == AETH_XDP_MODE_AUTO) {
		LIBBPF_OPTS(bpf_link_create_opts, o, .flags = XDP_FLAGS_DRV_MODE);

		fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &o);
		*got = AETH_XDP_MODE_NATIVE;
	}
	if (fd < 0 && (want == AETH_XDP_MODE_GENERIC ||
		       want == AETH_XDP_MODE_AUTO)) {
		LIBBPF_OPTS(bpf_link_create_opts, o, .flags = XDP_FLAGS_SKB_MODE);

		fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &o);
		*got = AETH_XDP_MODE_GENERIC;
	}
	if (fd < 0)
		return fd;
	err = attach_pin_link(a->pin_dir, ifname, fd);
	if (err) {
		log_err("%s: pinning the link under %s/" LINKS_DIR ": %s",
			ifname, a->pin_dir, strerror(-err));
		bpf_link_detach(fd);
		close(fd);
		return err;
	}
	hold_link(a, ifname, fd);
	return 0;
}

static __u32 link_id_of(struct aeth_agent *a, const char *ifname)
{
	struct aeth_xdp_link *l = held_link(a, ifname);
	__u32 id = 0, prog, on;

	if (l)
		link_info(l->fd, &id, &prog, &on);
	return id;
}

/* Attach to the interfaces of cfg that carry no program yet, before the
 * document touches any map, so that an interface the program cannot go on
 * (no native XDP, say) rejects the document as a whole. On the first
 * failure the interfaces this call attached are freed again. The caller
 * has checked that whatever runs elsewhere is ours. */
int aeth_loader_attach_new(struct aeth_agent *a, const struct aeth_config *cfg,
			   struct aeth_error *err)
{
	size_t done[AETH_MAX_INTERFACES], n = 0, i;
	int ret = 0;

	for (i = 0; i < cfg->n_interfaces && i < AETH_MAX_INTERFACES; i++) {
		LIBBPF_OPTS(bpf_xdp_query_opts, q);
		int ifindex = if_nametoindex(cfg->interfaces[i]);
		enum aeth_xdp_mode got = AETH_XDP_MODE_NONE;

		if (!ifindex || bpf_xdp_query(ifindex, 0, &q) ||
		    q.drv_prog_id || q.skb_prog_id)
			continue;	/* checked, or ours already */
		ret = link_attach(a, cfg->interfaces[i], ifindex,
				  cfg->xdp_mode, &got);
		if (ret) {
			aeth_fail(err, ret, "", "%s: attaching in %s mode: %s",
				  cfg->interfaces[i],
				  aeth_xdp_mode_names[cfg->xdp_mode],
				  strerror(-ret));
			snprintf(err->path, sizeof(err->path),
				 "node.interfaces[%zu]", i);
			break;
		}
		log_info("%s: attached (%s mode, bpf_link %u)",
			 cfg->interfaces[i], aeth_xdp_mode_names[got],
			 link_id_of(a, cfg->interfaces[i]));
		done[n++] = i;
	}
	while (ret && n--)
		unlink_own(a, cfg->interfaces[done[n]]);
	return ret;
}

/* An own program of an earlier agent version, attached through netlink:
 * a link cannot take its place without a gap, so swap the program in
 * place and leave it netlink-attached (until --detach). */
static int replace_netlink(const char *ifname, int ifindex, int old_fd,
			   int new_fd, enum aeth_xdp_mode got)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, ao, .old_prog_fd = old_fd);
	int err;

	err = bpf_xdp_attach(ifindex, new_fd, XDP_FLAGS_REPLACE | mode_flags(got),
			     &ao);
	if (err)
		log_err("%s: replacing program %s: %s", ifname,
			err == -EBUSY ? "(held by a link that is not ours)" :
			"attached through netlink", strerror(-err));
	else
		log_warn("%s: replaced the program in place (%s); it was "
			 "attached through netlink by an earlier agent and stays "
			 "so until aether-agent --detach", ifname,
			 aeth_xdp_mode_names[got]);
	return err;
}

/* Put this run's program in place of our old one (old_id), in one atomic
 * step: through our link, or netlink for an earlier agent's attachment.
 * Keeps a program that is the same as ours. */
static int replace_own(struct aeth_agent *a, const char *ifname, int ifindex,
		       __u32 old_id, enum aeth_xdp_mode want,
		       enum aeth_xdp_mode got)
{
	LIBBPF_OPTS(bpf_link_update_opts, uo, .flags = BPF_F_REPLACE);
	int new_fd = bpf_program__fd(a->skel->progs.aether_lb);
	int old_fd, lfd, err;
	__u32 lid = 0, lprog = 0, on;
	bool by_link;

	lfd = own_link(a, ifname, ifindex);
	if (lfd >= 0)
		link_info(lfd, &lid, &lprog, &on);
	by_link = lfd >= 0 && lprog == old_id;
	/* by id (CAP_SYS_ADMIN): for a netlink attachment and the update's
	 * expected program; our link alone needs no such look */
	old_fd = bpf_prog_get_fd_by_id(old_id);
	if (old_fd < 0 && !by_link) {
		err = -errno;
		log_err("%s: opening attached program %u: %s", ifname, old_id,
			strerror(-err));
		return err;
	}
	/* this agent's own program already: leave it be. Another instance,
	 * even of the same object, is replaced: a program's VIP filter is
	 * written by the agent that loaded it (docs/guard.md), so an earlier
	 * agent's would no longer follow the VIPs */
	if (old_id == prog_id_of(new_fd)) {
		log_info("%s: program %u already attached (%s, %s)", ifname,
			 old_id, aeth_xdp_mode_names[got],
			 lprog == old_id ? "bpf_link" : "netlink");
		if (old_fd >= 0)
			close(old_fd);
		return 0;
	}
	if (want != AETH_XDP_MODE_AUTO && want != got)
		log_warn("%s: keeping the %s mode of the running program "
			 "(--detach first to change it)", ifname,
			 aeth_xdp_mode_names[got]);
	if (by_link) {
		if (old_fd >= 0)
			uo.old_prog_fd = old_fd;
		else
			uo.flags = 0;	/* our link holds old_id: checked above */
		err = bpf_link_update(lfd, new_fd, &uo);
		if (err)
			log_err("%s: updating bpf_link %u from program %u: %s",
				ifname, lid, old_id, strerror(-err));
		else
			log_info("%s: bpf_link %u updated in place: program "
				 "%u -> %u (%s)", ifname, lid, old_id,
				 prog_id_of(new_fd), aeth_xdp_mode_names[got]);
	} else {
		err = replace_netlink(ifname, ifindex, old_fd, new_fd, got);
	}
	if (old_fd >= 0)
		close(old_fd);
	return err;
}

/* Which program runs on ifindex, and in which mode. */
static __u32 running_prog(int ifindex, enum aeth_xdp_mode *mode)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	*mode = AETH_XDP_MODE_NONE;
	if (bpf_xdp_query(ifindex, 0, &q))
		return 0;
	if (q.drv_prog_id)
		*mode = AETH_XDP_MODE_NATIVE;
	else if (q.skb_prog_id)
		*mode = AETH_XDP_MODE_GENERIC;
	return q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id;
}

/* What is on ifindex now, for aeth_meta and aetherctl status. */
static void record(struct aeth_agent *a, const char *ifname, int ifindex,
		   struct aeth_iface_status *st)
{
	enum aeth_xdp_mode mode;
	__u32 id = running_prog(ifindex, &mode);
	int err;

	/* a redirect target from now on (aeth_tx_ports) */
	err = bpf_map_update_elem(a->fds.tx_ports, &ifindex, &ifindex, BPF_ANY);
	if (err)
		log_debug("%s: not a redirect target: %s", ifname,
			  strerror(-err));
	memset(st, 0, sizeof(*st));
	st->ifindex = ifindex;
	st->mode = mode;
	st->prog_id = id;
	snprintf(st->name, sizeof(st->name), "%s", ifname);
}

static int attach_one(struct aeth_agent *a, const char *ifname,
		      enum aeth_xdp_mode want, struct aeth_iface_status *st)
{
	enum aeth_xdp_mode got;
	int ifindex, err;
	__u32 old_id, new_id, our_meta;

	ifindex = if_nametoindex(ifname);
	if (!ifindex) {
		log_err("node.interfaces: %s: no such interface", ifname);
		return -ENODEV;
	}
	set_sysctls(ifname);
	old_id = running_prog(ifindex, &got);
	new_id = prog_id_of(bpf_program__fd(a->skel->progs.aether_lb));
	our_meta = meta_map_id(a->fds.meta, NULL);
	if (old_id && old_id != new_id &&
	    prog_owner(old_id, our_meta, a->pin_dir, ifname, ifindex) !=
		    OWNER_US) {
		char msg[256];

		iface_usable(ifname, our_meta, a->pin_dir, msg, sizeof(msg));
		log_err("%s", msg);
		return -EBUSY;
	}
	err = 0;
	if (old_id && old_id == new_id)
		own_link(a, ifname, ifindex);	/* this run's: hold its link */
	else if (old_id)
		err = replace_own(a, ifname, ifindex, old_id, want, got);
	else
		err = link_attach(a, ifname, ifindex, want, &got);
	if (err) {
		if (!old_id)
			log_err("%s: attaching in %s mode: %s", ifname,
				aeth_xdp_mode_names[want], strerror(-err));
		return err;
	}
	if (!old_id)
		log_info("%s: attached (%s mode, bpf_link %u)", ifname,
			 aeth_xdp_mode_names[got], link_id_of(a, ifname));
	record(a, ifname, ifindex, st);
	return 0;
}

/* Take the program off an interface (found by name: ifindexes are per
 * namespace), only if it is still the one we put there: our link's
 * (pinned under pin_dir), or one attached through netlink. */
int attach_detach_one(const char *pin_dir, const struct aeth_iface_status *st)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	LIBBPF_OPTS(bpf_xdp_attach_opts, ao);
	__u32 flags = mode_flags(st->mode), cur, id, prog, on;
	int ifindex = if_nametoindex(st->name);
	char path[PATH_MAX];
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
	fd = pinned_link(pin_dir, st->name, ifindex);
	if (fd >= 0) {
		link_info(fd, &id, &prog, &on);
		err = bpf_link_detach(fd);
		close(fd);
		if (err)
			return err;
		if (!attach_link_pin_path(path, sizeof(path), pin_dir, st->name))
			unlink(path);
		log_info("%s: detached bpf_link %u (program %u)", st->name, id,
			 prog);
		return 0;
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
		log_info("%s: detached program %u (netlink)", st->name,
			 st->prog_id);
	return err;
}

/* Take the program off the interfaces of a->meta that ifs no longer
 * names. */
static void detach_dropped(struct aeth_agent *a,
			   const struct aeth_iface_status *ifs, size_t n)
{
	for (uint32_t j = 0; j < a->meta.n_interfaces &&
			     j < AETH_MAX_INTERFACES; j++) {
		const struct aeth_iface_status *old = &a->meta.ifaces[j];
		bool kept = false;

		for (size_t i = 0; i < n; i++)
			if (ifs[i].ifindex == old->ifindex)
				kept = true;
		if (kept || !old->ifindex)
			continue;
		bpf_map_delete_elem(a->fds.tx_ports, &old->ifindex);
		if (attach_detach_one(a->pin_dir, old))
			log_warn("%s: could not detach (no longer in "
				 "node.interfaces)", old->name);
		drop_held(held_link(a, old->name));
	}
}

static void meta_write_or_warn(struct aeth_agent *a)
{
	int err = aeth_meta_write(a);

	if (err)
		log_warn("writing %s: %s", AETH_MAP_META, strerror(-err));
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
		int err = attach_one(a, cfg->interfaces[i], cfg->xdp_mode,
				     &ifs[i]);

		if (err && !first_err)
			first_err = err;
		if (err)
			snprintf(ifs[i].name, sizeof(ifs[i].name), "%s",
				 cfg->interfaces[i]);
	}
	/* interfaces the document dropped; not when the new ones did not all
	 * take the program: then what runs stays */
	if (!first_err)
		detach_dropped(a, ifs, n);
	memcpy(a->meta.ifaces, ifs, sizeof(ifs));
	a->meta.n_interfaces = n;
	meta_write_or_warn(a);
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
	err = attach_one(a, a->cfg->interfaces[slot], a->cfg->xdp_mode, &st);
	if (err) {
		memset(&st, 0, sizeof(st));
		snprintf(st.name, sizeof(st.name), "%s",
			 a->cfg->interfaces[slot]);
	}
	a->meta.ifaces[slot] = st;
	meta_write_or_warn(a);
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
	meta_write_or_warn(a);
	a->status.attached = false;
}

