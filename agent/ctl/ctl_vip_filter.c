/* The VIP filter of a loaded program, as aetherctl status shows it. The
 * filter is no pinned map: it is a global of the program (lb_vip_filter
 * and lb_vip_filter_stamp in its .bss, bpf/service.h), written by the
 * agent that loaded it. So it is found from the program: its maps, the one
 * named for its .bss, and in that map's BTF where each global lies. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "aether/vip_filter.h"
#include "ctl.h"

#define FILTER_VAR "lb_vip_filter"
#define STAMP_VAR "lb_vip_filter_stamp"

/* The offsets of the filter and its stamp in the .bss map whose BTF is
 * btf_id: 0, or -ENOENT when that map is not this program's .bss. */
static int bss_layout(__u32 btf_id, __u32 *filter_off, __u32 *stamp_off)
{
	struct btf *btf = btf__load_from_kernel_by_id(btf_id);
	const struct btf_var_secinfo *v;
	const struct btf_type *sec;
	int id, found = 0;

	if (!btf)
		return -errno;
	id = btf__find_by_name_kind(btf, ".bss", BTF_KIND_DATASEC);
	sec = id > 0 ? btf__type_by_id(btf, id) : NULL;
	v = sec ? btf_var_secinfos(sec) : NULL;
	for (int i = 0; sec && i < btf_vlen(sec); i++, v++) {
		const char *name = btf__name_by_offset(
			btf, btf__type_by_id(btf, v->type)->name_off);

		if (!strcmp(name, FILTER_VAR) &&
		    v->size == AETH_VIP_FILTER_WORDS * sizeof(__u64)) {
			*filter_off = v->offset;
			found |= 1;
		} else if (!strcmp(name, STAMP_VAR) && v->size == 8) {
			*stamp_off = v->offset;
			found |= 2;
		}
	}
	btf__free(btf);
	return found == 3 ? 0 : -ENOENT;
}

struct bss_find {
	__u32 filter_off, stamp_off, value_size;
};

/* The program's .bss with the filter and its stamp in it. */
static bool is_filter_bss(const struct bpf_map_info *mi, void *arg)
{
	struct bss_find *b = arg;
	size_t n = strlen(".bss"), len = strlen(mi->name);

	if (!mi->btf_id || len < n || strcmp(mi->name + len - n, ".bss") ||
	    bss_layout(mi->btf_id, &b->filter_off, &b->stamp_off) ||
	    b->filter_off + AETH_VIP_FILTER_WORDS * 8 > mi->value_size ||
	    b->stamp_off + 8 > mi->value_size)
		return false;
	b->value_size = mi->value_size;
	return true;
}

/* The .bss of program prog_id with its filter, copied into *buf (malloc'd,
 * value_size bytes): 0, -ENOENT (no such program or global), or -errno. */
static int read_bss(uint32_t prog_id, void **buf, struct bss_find *b)
{
	__u32 zero = 0;
	int fd = ctl_prog_map_fd(prog_id, is_filter_bss, b), ret;

	if (fd < 0)
		return fd;
	*buf = calloc(1, b->value_size);
	ret = !*buf ? -ENOMEM :
	      bpf_map_lookup_elem(fd, &zero, *buf) ? -errno : 0;
	close(fd);
	if (ret) {
		free(*buf);
		*buf = NULL;
	}
	return ret;
}

struct hidden_count {
	const __u64 *words;
	uint32_t n;
};

static int count_hidden(const void *key, const void *value, void *arg)
{
	const struct aeth_vip_key *k = key;
	struct hidden_count *c = arg;
	__u32 b = aeth_vip_filter_bucket(&k->addr);

	(void)value;
	if (c->words[aeth_vip_filter_word(b)] & aeth_vip_filter_mask(b))
		c->n++;
	return 0;
}

int ctl_vip_filter_view(struct ctl_ctx *ctx, uint32_t prog_id,
			struct ctl_vip_filter *out)
{
	struct hidden_count hc = { 0 };
	struct bss_find b = { 0 };
	__u32 zero = 0;
	__u64 stamp = 0;
	void *bss = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = read_bss(prog_id, &bss, &b);
	if (ret)
		return ret;
	memcpy(&out->stamp, (char *)bss + b.stamp_off, sizeof(out->stamp));
	hc.words = (const __u64 *)((char *)bss + b.filter_off);
	for (uint32_t w = 0; w < AETH_VIP_FILTER_WORDS; w++)
		out->open_buckets += 64 - __builtin_popcountll(hc.words[w]);
	if (bpf_map_lookup_elem(ctx->fds.stamp, &zero, &stamp)) {
		ret = -errno;
		goto out;
	}
	out->tables_stamp = stamp;
	out->in_force = out->stamp == stamp;
	ret = ctl_map_foreach(ctx, ctx->fds.vip, AETH_MAP_VIP,
			      sizeof(struct aeth_vip_key), sizeof(__u32),
			      count_hidden, &hc);
	out->vips_hidden = hc.n;
	out->read = !ret;
out:
	free(bss);
	return ret;
}
