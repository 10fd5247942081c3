/* Loading the skeleton over pinned maps (the pin directory, its lock and
 * schema), recovering the applied state, pinning again what was deleted
 * under a running agent, and removing it all (--detach). Attaching to the
 * interfaces is attach.c. */
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

#include "aether/ct_table.h"
#include "aether/map_table.h"
#include "aether/names.h"
#include "aether_lb.skel.h"
#include "apply.h"
#include "apply_internal.h"
#include "ct_table.h"
#include "file_util.h"
#include "loader.h"
#include "log.h"
#include "loader_internal.h"

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif


/* ---- the table of pinned maps (include/aether/map_table.h) ------------- */

#define PINNED_NAME_(f, ...) AETH_MAP_NAME(f),
static const char *const pinned_names[] = { AETH_PINNED_MAPS(PINNED_NAME_) };
#undef PINNED_NAME_

/* The skeleton's map of row i of the table. */
static struct bpf_map *skel_map(struct aether_lb *s, int i)
{
#define SKEL_MAP_(f, ...)                                                    \
	case AETH_MAPI_##f:                                                  \
		return s->maps.aeth_##f;
	switch (i) {
		AETH_PINNED_MAPS(SKEL_MAP_)
	}
#undef SKEL_MAP_
	return NULL;
}

static void fds_from_skel(struct aeth_agent *a)
{
#define FD_FROM_SKEL_(f, ...) a->fds.f = bpf_map__fd(a->skel->maps.aeth_##f);
	AETH_PINNED_MAPS(FD_FROM_SKEL_)
#undef FD_FROM_SKEL_
}

int loader_pin_path(char *buf, size_t len, const char *dir,
			   const char *name)
{
	if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* ---- the pin directory ------------------------------------------------- */

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

static void unlock_pin_dir(struct aeth_agent *a)
{
	if (a->lock_fd > 2)
		close(a->lock_fd);
	a->lock_fd = 0;
}

/* The schema version in a pinned aeth_meta of another size: the leading
 * u32 still tells. */
static int other_size_schema(int fd, __u32 value_size, uint32_t *version)
{
	uint8_t *buf = calloc(1, value_size);
	uint32_t zero = 0;
	int err = 0;

	if (!buf)
		return -ENOMEM;
	if (bpf_map_lookup_elem(fd, &zero, buf) == 0)
		memcpy(version, buf, sizeof(*version));
	else
		err = -errno;
	free(buf);
	if (!err && *version == AETH_SCHEMA_VERSION)
		err = -EPROTO;	/* same number, other size: refuse */
	return err;
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
	err = loader_pin_path(path, sizeof(path), pin_dir, AETH_MAP_META);
	if (err)
		return err;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &info_len))
		err = -errno;
	else if (info.value_size < sizeof(uint32_t))
		err = -EPROTO;
	else if (info.value_size != sizeof(meta))
		err = other_size_schema(fd, info.value_size, version);
	else if (bpf_map_lookup_elem(fd, &zero, &meta))
		err = -errno;
	else
		*version = meta.schema_version;
	close(fd);
	return err;
}

static uint32_t pinned_ct_size(const char *pin_dir)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	char path[PATH_MAX];
	uint32_t size = 0;
	int fd;

	if (loader_pin_path(path, sizeof(path), pin_dir, AETH_MAP_CT))
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

/* Pins of earlier releases that no map of this build uses. The
 * connection table's filter was aeth_ct_filter, 16 bits per bucket; it is
 * now aeth_ct_bloom, 32 bits per bucket, which a pin of the old size could
 * not be reused as. A program of the old release still running keeps
 * its map through its own reference; the pin only kept its memory. */
static const char *const retired_pins[] = { "aeth_ct_filter" };

static void unpin_retired(const char *pin_dir)
{
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof(retired_pins) / sizeof(retired_pins[0]);
	     i++) {
		if (loader_pin_path(path, sizeof(path), pin_dir,
				    retired_pins[i]))
			continue;
		if (unlink(path) == 0)
			log_info("removed %s, a pin this release no longer "
				 "uses", path);
		else if (errno != ENOENT)
			log_warn("removing %s, a pin this release no longer "
				 "uses: %s", path, strerror(errno));
	}
}

/* ---- opening ----------------------------------------------------------- */

/* Create pin_dir, check that it is on a bpffs, lock it, and check the
 * schema of what is pinned there. Holds the lock on success. */
static int claim_pin_dir(struct aeth_agent *a, const char *pin_dir,
			 struct aeth_error *err)
{
	uint32_t version;
	struct statfs sfs;
	int ret;

	ret = aeth_mkdir_p(pin_dir, 0700);
	if (ret)
		return aeth_fail(err, ret, pin_dir,
				 "cannot create the pin directory: %s",
				 strerror(-ret));
	if (statfs(pin_dir, &sfs) == 0 && sfs.f_type != BPF_FS_MAGIC)
		return aeth_fail(err, -EINVAL, "", "pin directory %s is not on "
				 "a bpffs (mount -t bpf bpf /sys/fs/bpf)",
				 pin_dir);
	ret = lock_pin_dir(pin_dir, &a->lock_fd);
	if (ret)
		return aeth_fail(err, ret, pin_dir, "%s", ret == -EWOULDBLOCK ?
				 "another aether-agent uses this pin directory" :
				 strerror(-ret));
	ret = aeth_loader_pinned_schema(pin_dir, &version);
	if (ret && ret != -EPROTO) {
		unlock_pin_dir(a);
		return aeth_fail(err, ret, "", "reading %s/%s: %s%s", pin_dir,
				 AETH_MAP_META, strerror(-ret),
				 ret == -EPERM ? " (bpf(2) refused: a container "
				 "runtime's seccomp profile may allow it only with "
				 "CAP_SYS_ADMIN)" : "");
	}
	if (ret || (version && version != AETH_SCHEMA_VERSION)) {
		unlock_pin_dir(a);
		return aeth_fail(err, ret ? ret : -EPROTO, "",
				 "maps pinned under %s have schema version %u, "
				 "this build uses %u: refusing to reuse them "
				 "(run aether-agent --detach --pin-dir %s to "
				 "start afresh; that drops the connection table)",
				 pin_dir, version, AETH_SCHEMA_VERSION, pin_dir);
	}
	return 0;
}

/* Open the skeleton with every map of the table pinned under pin_dir and
 * aeth_ct sized: ct_max_entries entries, in buckets of AETH_CT_WAYS, a
 * power of two of them (a pinned table keeps its size). */
static int open_skel(struct aeth_agent *a, const char *pin_dir,
		     uint32_t ct_max_entries, struct aeth_error *err)
{
	uint32_t pinned_ct = pinned_ct_size(pin_dir), want_ct = 0;
	char path[PATH_MAX];
	int ret;

	a->skel = aether_lb__open();
	if (!a->skel) {
		ret = -errno;
		return aeth_fail(err, ret, "", "opening the BPF object: %s",
				 strerror(-ret));
	}
	for (int i = 0; i < AETH_N_PINNED_MAPS; i++) {
		ret = loader_pin_path(path, sizeof(path), pin_dir,
				      pinned_names[i]);
		if (!ret)
			ret = bpf_map__set_pin_path(skel_map(a->skel, i), path);
		if (ret)
			return aeth_fail(err, ret, pinned_names[i],
					 "pin path: %s", strerror(-ret));
	}
	if (ct_max_entries)
		want_ct = aeth_ct_buckets_for(ct_max_entries);
	if (pinned_ct && want_ct && pinned_ct != want_ct)
		log_warn("%s/%s keeps its %u entries (conntrack.max_entries "
			 "%u takes effect after --detach)", pin_dir, AETH_MAP_CT,
			 pinned_ct * AETH_CT_WAYS, ct_max_entries);
	if (pinned_ct)
		want_ct = pinned_ct;
	if (!want_ct)
		return 0;
	ret = aeth_ct_table_set_size(a->skel->maps.aeth_ct,
				     a->skel->maps.aeth_ct_bloom, want_ct);
	return ret ? aeth_fail(err, ret, AETH_MAP_CT, "sizing: %s",
			       strerror(-ret)) : 0;
}

int aeth_loader_fill_ct_bloom(const struct aeth_agent *a)
{
	struct aeth_ct_table t;
	int ret = aeth_ct_table_open(&t, a->fds.ct, a->fds.ct_bloom);

	if (!ret)
		ret = aeth_ct_table_fill_filter(&t);
	aeth_ct_table_close(&t);
	return ret;
}

/* Load the program over the pinned maps and recover what they hold. */
static int load_and_recover(struct aeth_agent *a, const char *pin_dir,
			    struct aeth_error *err)
{
	uint32_t zero = 0;
	int ret;

	ret = aether_lb__load(a->skel);
	if (ret)
		return aeth_fail(err, ret, "", "loading the BPF object with "
				 "maps under %s: %s", pin_dir, strerror(-ret));
	fds_from_skel(a);
	/* before the program is attached: every entry's bucket depends on it */
	ret = aeth_ct_table_seed(bpf_map__fd(a->skel->maps.aeth_ct));
	if (ret)
		return aeth_fail(err, ret, AETH_MAP_CT, "seeding: %s",
				 strerror(-ret));
	ret = aeth_loader_fill_ct_bloom(a);
	if (ret)
		return aeth_fail(err, ret, AETH_MAP_CT_BLOOM, "filling: %s",
				 strerror(-ret));
	unpin_retired(pin_dir);
	attach_remember_own_prog(a);
	memset(&a->meta, 0, sizeof(a->meta));
	bpf_map_lookup_elem(a->fds.meta, &zero, &a->meta);
	if (a->meta.schema_version == 0) {
		ret = aeth_meta_write(a);
		if (ret)
			return aeth_fail(err, ret, AETH_MAP_META, "writing: %s",
					 strerror(-ret));
	}
	ret = aeth_state_recover(a);
	if (ret)
		return aeth_fail(err, ret, "", "reading the pinned state: %s",
				 strerror(-ret));
	return 0;
}

int aeth_loader_open(struct aeth_agent *a, const char *pin_dir,
		     uint32_t ct_max_entries, struct aeth_error *err)
{
	int ret;

	snprintf(a->pin_dir, sizeof(a->pin_dir), "%s", pin_dir);
	ret = claim_pin_dir(a, pin_dir, err);
	if (ret)
		return ret;
	ret = open_skel(a, pin_dir, ct_max_entries, err);
	if (!ret)
		ret = load_and_recover(a, pin_dir, err);
	if (ret) {
		aether_lb__destroy(a->skel);
		a->skel = NULL;
		unlock_pin_dir(a);
	}
	return ret;
}


void aeth_loader_close(struct aeth_agent *a)
{
	/* the pins keep the links, and with them the program on the NICs */
	attach_release_links(a);
	apply_unmap_acl_rng(a);
	if (a->skel)
		aether_lb__destroy(a->skel);
	a->skel = NULL;
	aeth_state_free(a->state);
	a->state = NULL;
	aeth_config_free(a->cfg);
	a->cfg = NULL;
	unlock_pin_dir(a);
}

/* ---- pins lost under a running agent ---------------------------------- */

/* Add name to the comma-separated list in names. */
static void note_name(char *names, size_t len, size_t *used, int n,
		      const char *prefix, const char *name)
{
	if (*used < len)
		*used += snprintf(names + *used, len - *used, "%s%s%s",
				  n ? ", " : "", prefix, name);
}

/* The pin directory itself, recreated and locked again when it is gone. */
static int restore_pin_dir(struct aeth_agent *a)
{
	struct stat sb;
	int err;

	if (stat(a->pin_dir, &sb) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	err = aeth_mkdir_p(a->pin_dir, 0700);
	if (err)
		return err;
	/* the lock was on the directory that went away */
	unlock_pin_dir(a);
	err = lock_pin_dir(a->pin_dir, &a->lock_fd);
	if (err)
		log_warn("%s: locking the recreated directory: %s", a->pin_dir,
			 err == -EWOULDBLOCK ? "another aether-agent holds it" :
			 strerror(-err));
	return 0;
}

/* Pin again every link this agent holds whose pin is missing. */
static int repin_links(struct aeth_agent *a, char *names, size_t len,
		       size_t *used, int n)
{
	char path[PATH_MAX];
	struct stat sb;
	int err;

	for (int i = 0; i < AETH_MAX_INTERFACES; i++) {
		const struct aeth_xdp_link *l = &a->links[i];

		if (l->fd <= 2)
			continue;
		err = attach_link_pin_path(path, sizeof(path), a->pin_dir, l->ifname);
		if (err)
			return err;
		if (stat(path, &sb) == 0 || errno != ENOENT)
			continue;
		err = attach_pin_link(a->pin_dir, l->ifname, l->fd);
		if (err) {
			log_err("re-pinning %s: %s", path, strerror(-err));
			return err;
		}
		note_name(names, len, used, n++, LINKS_DIR "/", l->ifname);
	}
	return n;
}

int aeth_loader_repin(struct aeth_agent *a, char *names, size_t len)
{
	char path[PATH_MAX];
	struct stat sb;
	size_t used = 0;
	int n = 0, err;

	if (len)
		names[0] = '\0';
	if (!a->skel)
		return 0;
	err = restore_pin_dir(a);
	if (err)
		return err;
	for (int i = 0; i < AETH_N_PINNED_MAPS; i++) {
		err = loader_pin_path(path, sizeof(path), a->pin_dir,
				      pinned_names[i]);
		if (err)
			return err;
		if (stat(path, &sb) == 0 || errno != ENOENT)
			continue;
		if (bpf_obj_pin(bpf_map__fd(skel_map(a->skel, i)), path)) {
			err = -errno;
			log_err("re-pinning %s: %s", path, strerror(-err));
			return err;
		}
		note_name(names, len, &used, n++, "", pinned_names[i]);
	}
	return repin_links(a, names, len, &used, n);
}

/* ---- --detach ---------------------------------------------------------- */

/* Detach from every interface aeth_meta (open as meta_fd) records. */
static int detach_recorded(const char *pin_dir, int meta_fd)
{
	struct aeth_meta meta;
	uint32_t zero = 0, version;
	int err, ret = 0;

	err = aeth_loader_pinned_schema(pin_dir, &version);
	memset(&meta, 0, sizeof(meta));
	if (err || version != AETH_SCHEMA_VERSION ||
	    bpf_map_lookup_elem(meta_fd, &zero, &meta)) {
		log_warn("%s: unknown schema, unpinning without detaching",
			 pin_dir);
		return 0;
	}
	for (uint32_t i = 0; i < meta.n_interfaces && i < AETH_MAX_INTERFACES;
	     i++) {
		if (!meta.ifaces[i].ifindex)
			continue;
		err = attach_detach_one(pin_dir, &meta.ifaces[i]);
		if (err && err != -ENODEV)
			log_err("%s: detaching: %s", meta.ifaces[i].name,
				strerror(-err));
		if (err)
			ret = err;
	}
	return ret;
}

/* Unpin every map of the table and whatever link pins are left (stale:
 * the live ones were detached), then remove the directories. */
static int unpin_all(const char *pin_dir)
{
	char path[PATH_MAX], links[PATH_MAX];
	struct dirent *de;
	int ret = 0;
	DIR *d;

	for (int i = 0; i < AETH_N_PINNED_MAPS; i++) {
		if (loader_pin_path(path, sizeof(path), pin_dir,
				    pinned_names[i]))
			continue;
		if (unlink(path) && errno != ENOENT) {
			ret = -errno;
			log_err("unpinning %s: %s", path, strerror(-ret));
		}
	}
	unpin_retired(pin_dir);
	if (loader_pin_path(links, sizeof(links), pin_dir, LINKS_DIR))
		return ret;
	d = opendir(links);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' ||
		    loader_pin_path(path, sizeof(path), links, de->d_name))
			continue;
		if (unlink(path) && errno != ENOENT)
			log_warn("unpinning %s: %s", path, strerror(errno));
	}
	if (d)
		closedir(d);
	rmdir(links);
	return ret;
}

int aeth_loader_detach(const char *pin_dir, struct aeth_error *err)
{
	char path[PATH_MAX];
	int fd, ret, lock_fd = 0;

	ret = loader_pin_path(path, sizeof(path), pin_dir, AETH_MAP_META);
	if (ret)
		return aeth_fail(err, ret, pin_dir, "path too long");
	fd = bpf_obj_get(path);
	if (fd < 0) {
		ret = -errno;
		return aeth_fail(err, ret, "", "no aether-lb state under %s: %s",
				 pin_dir, strerror(-ret));
	}
	ret = lock_pin_dir(pin_dir, &lock_fd);
	if (ret) {
		close(fd);
		return aeth_fail(err, ret, pin_dir, "%s", ret == -EWOULDBLOCK ?
				 "an aether-agent is running on it; stop it "
				 "first" : strerror(-ret));
	}
	ret = detach_recorded(pin_dir, fd);
	close(fd);
	if (ret) {
		/* unpinning now would orphan a running program */
		close(lock_fd);
		return aeth_fail(err, ret, "", "not detached everywhere; the "
				 "maps under %s stay pinned", pin_dir);
	}
	ret = unpin_all(pin_dir);
	close(lock_fd);
	if (rmdir(pin_dir) && errno != ENOENT)
		log_warn("removing %s: %s", pin_dir, strerror(errno));
	if (ret)
		return aeth_fail(err, ret, "", "detach under %s was incomplete",
				 pin_dir);
	return 0;
}
