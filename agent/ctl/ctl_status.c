/* aetherctl status: what the agent last applied and where the program is
 * attached, from aeth_meta and the kernel's view of each program (with its
 * VIP filter, ctl_vip_filter.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include "aether/names.h"
#include "ctl.h"

struct prog_view {
	bool loaded;
	char tag[BPF_TAG_SIZE * 2 + 1];
	char name[BPF_OBJ_NAME_LEN];
};

static void prog_lookup(uint32_t id, struct prog_view *pv)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	int fd;

	memset(pv, 0, sizeof(*pv));
	if (!id)
		return;
	fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0)
		return;
	memset(&info, 0, sizeof(info));
	if (!bpf_obj_get_info_by_fd(fd, &info, &len)) {
		pv->loaded = true;
		for (int i = 0; i < BPF_TAG_SIZE; i++)
			snprintf(pv->tag + 2 * i, 3, "%02x", info.tag[i]);
		snprintf(pv->name, sizeof(pv->name), "%s", info.name);
	}
	close(fd);
}

static const char *mode_name(uint32_t mode)
{
	if (mode < sizeof(aeth_xdp_mode_names) / sizeof(aeth_xdp_mode_names[0]))
		return aeth_xdp_mode_names[mode];
	return "unknown";
}

/* The program's VIP filter as JSON, or null when it has none to read. */
static json_t *vip_filter_json(const struct ctl_vip_filter *vf)
{
	if (!vf->read)
		return json_null();
	return json_pack("{s:b, s:I, s:I, s:I, s:I}", "in_force", vf->in_force,
			 "stamp", (json_int_t)vf->stamp, "tables_stamp",
			 (json_int_t)vf->tables_stamp, "open_buckets",
			 (json_int_t)vf->open_buckets, "vips_hidden",
			 (json_int_t)vf->vips_hidden);
}

/* What the filter column says: in force, lapsed (every packet goes the
 * long way, as for a program no agent writes), or unreadable. */
static const char *vip_filter_word(const struct ctl_vip_filter *vf)
{
	if (!vf->read)
		return "-";
	return vf->in_force ? "in force" : "lapsed";
}

/* The first nif interfaces the agent attached to, with their programs. */
static json_t *interfaces_json(struct ctl_ctx *ctx, const struct aeth_meta *meta,
			       uint32_t nif)
{
	json_t *ifs = json_array();

	for (uint32_t i = 0; i < nif; i++) {
		const struct aeth_iface_status *f = &meta->ifaces[i];
		struct ctl_vip_filter vf;
		struct prog_view pv;
		char name[AETH_IFNAME_LEN + 1];

		snprintf(name, sizeof(name), "%.*s", AETH_IFNAME_LEN, f->name);
		prog_lookup(f->prog_id, &pv);
		ctl_vip_filter_view(ctx, f->prog_id, &vf);
		json_array_append_new(ifs, json_pack(
			"{s:s, s:I, s:s, s:I, s:s?, s:s?, s:b, s:o}",
			"name", name, "ifindex", (json_int_t)f->ifindex,
			"mode", mode_name(f->mode),
			"prog_id", (json_int_t)f->prog_id,
			"prog_tag", pv.loaded ? pv.tag : NULL,
			"prog_name", pv.loaded ? pv.name : NULL,
			"prog_loaded", pv.loaded,
			"vip_filter", vip_filter_json(&vf)));
	}
	return ifs;
}

static void interfaces_print(struct ctl_ctx *ctx, const struct aeth_meta *meta,
			     uint32_t nif)
{
	static const char *const hdr[] = { "INTERFACE", "IFINDEX", "MODE",
					   "PROG ID", "TAG", "LOADED",
					   "VIP FILTER" };
	struct ctl_table *t = ctl_table_new(7, hdr);
	uint32_t hidden = 0;

	ctl_table_align_right(t, 1);
	ctl_table_align_right(t, 3);
	for (uint32_t i = 0; i < nif; i++) {
		const struct aeth_iface_status *f = &meta->ifaces[i];
		char name[AETH_IFNAME_LEN + 1], ifx[16], pid[16];
		struct ctl_vip_filter vf;
		struct prog_view pv;

		snprintf(name, sizeof(name), "%.*s", AETH_IFNAME_LEN, f->name);
		snprintf(ifx, sizeof(ifx), "%u", f->ifindex);
		snprintf(pid, sizeof(pid), "%u", f->prog_id);
		prog_lookup(f->prog_id, &pv);
		ctl_vip_filter_view(ctx, f->prog_id, &vf);
		if (vf.read && vf.in_force && !ctl_prog_seen_before(meta, i))
			hidden += vf.vips_hidden;
		ctl_table_add(t, name, ifx, mode_name(f->mode), pid,
			      pv.loaded ? pv.tag : "-", pv.loaded ? "yes" : "no",
			      vip_filter_word(&vf));
	}
	ctl_table_print(t);
	ctl_table_free(t);
	/* never from a correct agent: its VIPs' bits are clear */
	if (hidden)
		printf("\nwarning: a VIP filter in force passes %u VIP%s as no "
		       "VIP\n", hidden, hidden == 1 ? "" : "s");
}

static int status_run(struct ctl_ctx *ctx, int argc, char **argv)
{
	struct aeth_meta meta;
	struct aeth_node node;
	char hash[65], when[40] = "never", v4[CTL_ADDR_LEN] = "",
	     v6[CTL_ADDR_LEN] = "";
	uint32_t nif;
	__u32 zero = 0;
	int ret;

	ret = ctl_parse_args(ctx, "status", argc, argv, NULL, 0, NULL, NULL, 0, 0);
	if (ret)
		return ret;
	ret = ctl_open(ctx);
	if (ret)
		return ret;
	if (bpf_map_lookup_elem(ctx->fds.meta, &zero, &meta) ||
	    bpf_map_lookup_elem(ctx->fds.node, &zero, &node)) {
		ret = -errno;
		ctl_error(ctx, "reading %s/%s: %s", AETH_MAP_META, AETH_MAP_NODE,
			  strerror(-ret));
		return ret;
	}
	for (int i = 0; i < 32; i++)
		snprintf(hash + 2 * i, 3, "%02x", meta.config_hash[i]);
	if (meta.applied_unix_ns) {
		time_t t = meta.applied_unix_ns / 1000000000ull;
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	if (node.flags & AETH_NODE_F_V4)
		ctl_addr_str((const union aeth_addr *)&node.v4, AETH_AF_INET, v4);
	if (node.flags & AETH_NODE_F_V6)
		ctl_addr_str((const union aeth_addr *)node.v6, AETH_AF_INET6, v6);
	nif = meta.n_interfaces < AETH_MAX_INTERFACES ? meta.n_interfaces
						      : AETH_MAX_INTERFACES;

	if (ctx->json) {
		json_t *ifs = interfaces_json(ctx, &meta, nif);

		return ctl_json_print(ctx, json_pack(
			"{s:I, s:I, s:s, s:s?, s:I, s:{s:s?, s:s?, s:I}, s:o}",
			"schema_version", (json_int_t)meta.schema_version,
			"generation", (json_int_t)meta.generation,
			"config_hash", hash,
			"applied_at", meta.applied_unix_ns ? when : NULL,
			"applied_unix_ns", (json_int_t)meta.applied_unix_ns,
			"node", "ipv4", v4[0] ? v4 : NULL, "ipv6",
			v6[0] ? v6 : NULL, "mtu", (json_int_t)node.mtu,
			"interfaces", ifs));
	}

	printf("pin directory   %s\n", ctx->pin_dir);
	printf("schema version  %u\n", meta.schema_version);
	printf("generation      %llu\n", (unsigned long long)meta.generation);
	printf("config hash     %s\n", hash);
	printf("applied at      %s\n", when);
	printf("node addresses  %s%s%s  mtu %u\n\n", v4[0] ? v4 : "-",
	       " ", v6[0] ? v6 : "-", node.mtu);
	interfaces_print(ctx, &meta, nif);
	return 0;
}

const struct ctl_object ctl_obj_status = {
	.name = "status",
	.handler = status_run,
	.usage = "",
	.summary = "Schema version, applied generation and config hash, node "
		   "addresses, and per\ninterface the XDP attach mode, program "
		   "id and tag, and whether its VIP filter is\nin force.",
};
