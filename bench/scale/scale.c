/* Control-plane and scale benchmark tool, run by bench/scale.sh against a
 * running agent's pinned maps:
 *   scale mem --pin-dir DIR
 *       memory of every pinned map and of the inner maps they hold (JSON)
 *   scale flip --pin-dir DIR --vip IP --port P --config FILE --new FILE2
 *       renames FILE2 over FILE and times until the service's Maglev slot
 *       flips in aeth_svc, i.e. until packets see the new table (JSON)
 *   scale ct --pin-dir DIR --vip IP --port P --entries N [--samples K]
 *       fills aeth_ct to N live entries and times a connection hit and a
 *       new connection through the real program (BPF_PROG_TEST_RUN), and
 *       userspace lookups and inserts as a baseline (JSON) */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "aether/abi.h"
#include "aether/backend_rule.h"
#include "aether/ct_rule.h"
#include "ct_table.h"

#define FRAME_LEN 60

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* A field of /proc/self/fdinfo/FD ("memlock", "map_type", ...). */
static long long fdinfo_field(int fd, const char *name)
{
	char path[64], line[256];
	size_t n = strlen(name);
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, n) && line[n] == ':') {
			v = strtoll(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static int open_pinned(const char *dir, const char *name)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		fprintf(stderr, "scale: opening %s: %s\n", path,
			strerror(errno));
	return fd;
}

/* ---- mem ---------------------------------------------------------------- */

static int cmd_mem(const char *dir)
{
	long long total = 0;
	struct dirent *de;
	bool first = true;
	DIR *d = opendir(dir);

	if (!d) {
		fprintf(stderr, "scale: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	printf("{\"maps\": [");
	while ((de = readdir(d))) {
		long long mem, inner_mem = 0, type;
		int fd, inner = 0;

		/* the agent's pinned links have a directory of their own */
		if (de->d_name[0] == '.' || de->d_type == DT_DIR)
			continue;
		fd = open_pinned(dir, de->d_name);
		if (fd < 0)
			continue;
		type = fdinfo_field(fd, "map_type");
		if (type < 0) {		/* a program or link */
			close(fd);
			continue;
		}
		mem = fdinfo_field(fd, "memlock");
		if (type == BPF_MAP_TYPE_ARRAY_OF_MAPS) {
			long long max = fdinfo_field(fd, "max_entries");

			for (__u32 k = 0; k < max; k++) {
				__u32 id;
				int ifd;

				if (bpf_map_lookup_elem(fd, &k, &id))
					continue;
				ifd = bpf_map_get_fd_by_id(id);
				if (ifd < 0)
					continue;
				inner_mem += fdinfo_field(ifd, "memlock");
				inner++;
				close(ifd);
			}
		}
		printf("%s\n  {\"name\": \"%s\", \"type\": %lld, "
		       "\"max_entries\": %lld, \"memlock\": %lld, "
		       "\"inner_maps\": %d, \"inner_memlock\": %lld}",
		       first ? "" : ",", de->d_name, type,
		       fdinfo_field(fd, "max_entries"), mem, inner, inner_mem);
		first = false;
		total += mem + inner_mem;
		close(fd);
	}
	closedir(d);
	printf("\n], \"total_memlock\": %lld}\n", total);
	return 0;
}

/* ---- services ------------------------------------------------------------ */

static int svc_key(const char *vip, int port, struct aeth_svc_key *k)
{
	memset(k, 0, sizeof(*k));
	k->port = htons(port);
	k->proto = IPPROTO_TCP;
	if (inet_pton(AF_INET, vip, &k->vip.v4) == 1) {
		k->family = AETH_AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, vip, k->vip.v6) == 1) {
		k->family = AETH_AF_INET6;
		return 0;
	}
	return -EINVAL;
}

static int cmd_flip(const char *dir, const char *vip, int port,
		    const char *config, const char *next, int timeout_ms)
{
	struct aeth_svc_key k;
	struct aeth_svc before, s;
	double t0, t;
	long polls = 0;
	int fd;

	if (svc_key(vip, port, &k))
		return 2;
	fd = open_pinned(dir, AETH_MAP_SVC);
	if (fd < 0)
		return 1;
	if (bpf_map_lookup_elem(fd, &k, &before)) {
		fprintf(stderr, "scale: no service %s:%d\n", vip, port);
		return 1;
	}
	t0 = now_ms();
	if (rename(next, config)) {
		fprintf(stderr, "scale: rename %s: %s\n", next,
			strerror(errno));
		return 1;
	}
	for (;;) {
		t = now_ms() - t0;
		polls++;
		if (!bpf_map_lookup_elem(fd, &k, &s) &&
		    s.maglev_slot != before.maglev_slot)
			break;
		if (t > timeout_ms) {
			printf("{\"error\": \"no flip within %d ms\"}\n",
			       timeout_ms);
			return 1;
		}
		usleep(50);
	}
	printf("{\"flip_ms\": %.2f, \"polls\": %ld, \"slot\": [%u, %u]}\n", t,
	       polls, before.maglev_slot, s.maglev_slot);
	close(fd);
	return 0;
}

/* ---- connection table ------------------------------------------------------ */

/* Flow i of the filled set, or of the new ones (fresh). */
static void flow_of(uint32_t i, bool fresh, const struct aeth_svc_key *svc,
		    struct aeth_flow *f)
{
	memset(f, 0, sizeof(*f));
	f->src.v4 = htonl((fresh ? 0xcb007100u : 0xc6336400u) | (i & 0xff));
	f->dst = svc->vip;
	f->sport = htons((fresh ? 40000 : 1024) + (i >> 8));
	f->dport = svc->port;
	f->proto = IPPROTO_TCP;
	f->family = AETH_AF_INET;
}

static uint16_t csum16(const void *p, size_t len, uint32_t sum)
{
	const uint8_t *b = p;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (b[i] << 8) | b[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons(~sum & 0xffff);
}

static void frame_of(const struct aeth_flow *f, bool syn, uint8_t *buf)
{
	struct ethhdr *eth = (void *)buf;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *th = (void *)(ip + 1);

	memset(buf, 0, FRAME_LEN);
	memset(eth->h_dest, 0x02, 6);
	memset(eth->h_source, 0x04, 6);
	eth->h_proto = htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->ttl = 64;
	ip->protocol = IPPROTO_TCP;
	ip->tot_len = htons(40);
	ip->frag_off = htons(0x4000);
	ip->saddr = f->src.v4;
	ip->daddr = f->dst.v4;
	ip->check = csum16(ip, 20, 0);
	th->source = f->sport;
	th->dest = f->dport;
	th->doff = 5;
	th->window = htons(64240);
	if (syn) {
		th->syn = 1;
	} else {
		th->ack = 1;
		th->ack_seq = htonl(1);
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

struct run_stats {
	double median, mean;
	int retval;
};

/* Run prog once per frame (repeat 1: each run sees a fresh frame) and keep
 * the kernel's own duration of the run. */
static int run_frames(int prog, uint32_t n, uint32_t first, bool fresh,
		      bool syn, const struct aeth_svc_key *svc, uint32_t stride,
		      uint32_t range, struct run_stats *st)
{
	uint32_t *d = calloc(n, sizeof(*d));
	uint8_t in[FRAME_LEN], out[256];
	double sum = 0;

	if (!d)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		struct aeth_flow f;
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in,
			    .data_size_in = FRAME_LEN, .data_out = out,
			    .data_size_out = sizeof(out), .repeat = 1);

		flow_of((first + (uint64_t)i * stride) % range, fresh, svc,
			&f);
		frame_of(&f, syn, in);
		if (bpf_prog_test_run_opts(prog, &o)) {
			free(d);
			return -errno;
		}
		d[i] = o.duration;
		st->retval = o.retval;
		sum += o.duration;
	}
	qsort(d, n, sizeof(*d), cmp_u32);
	st->median = d[n / 2];
	st->mean = sum / n;
	free(d);
	return 0;
}

/* XDP_PASS and nothing else: the floor of a test run. */
static int empty_prog(void)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0,
		  .imm = XDP_PASS },
		{ .code = BPF_JMP | BPF_EXIT },
	};

	return bpf_prog_load(BPF_PROG_TYPE_XDP, "scale_empty", "GPL", insns,
			     2, NULL);
}

/* Fill aeth_ct from entry `from` up to `to` with flows of svc (each
 * where the data path would put it: a full bucket gives up its oldest). */
static int ct_fill(const struct aeth_ct_table *ct, uint32_t from, uint32_t to,
		   const struct aeth_svc_key *svc, uint32_t svc_id,
		   const struct aeth_ct_entry *v, double *ms)
{
	double t0 = now_ms();
	struct aeth_ct_key key;
	struct aeth_flow f;
	int err;

	for (uint32_t i = from; i < to; i++) {
		flow_of(i, false, svc, &f);
		key = aeth_ct_key_of(&f, svc_id);
		err = aeth_ct_table_put(ct, &key, v);
		if (err) {
			errno = -err;
			return err;
		}
	}
	*ms = now_ms() - t0;
	return 0;
}

/* Userspace baseline: bpf_map_lookup_elem / update_elem per call. */
static void ct_user(const struct aeth_ct_table *ct, uint32_t filled, uint32_t n, uint32_t fresh0,
		    const struct aeth_svc_key *svc, uint32_t svc_id,
		    const struct aeth_ct_entry *v, double *hit_ns,
		    double *ins_ns)
{
	struct aeth_ct_entry got;
	struct aeth_ct_key key;
	struct aeth_flow f;
	uint64_t t0;
	uint32_t misses = 0;

	t0 = now_ns();
	for (uint32_t i = 0; i < n; i++) {
		flow_of(((uint64_t)i * 7919) % filled, false, svc, &f);
		key = aeth_ct_key_of(&f, svc_id);
		if (aeth_ct_table_get(ct, &key, &got))
			misses++;
	}
	*hit_ns = (double)(now_ns() - t0) / n;
	if (misses)
		fprintf(stderr, "scale: %u of %u userspace lookups missed\n",
			misses, n);
	t0 = now_ns();
	for (uint32_t i = 0; i < n; i++) {
		flow_of(fresh0 + i, true, svc, &f);
		key = aeth_ct_key_of(&f, svc_id);
		aeth_ct_table_put(ct, &key, v);
	}
	*ins_ns = (double)(now_ns() - t0) / n;
}

static int prog_of_agent(const char *dir)
{
	struct aeth_meta m;
	__u32 zero = 0;
	int fd = open_pinned(dir, AETH_MAP_META), pfd;

	if (fd < 0)
		return -1;
	if (bpf_map_lookup_elem(fd, &zero, &m) || !m.n_interfaces ||
	    !m.ifaces[0].prog_id) {
		fprintf(stderr, "scale: no attached program in %s\n", dir);
		close(fd);
		return -1;
	}
	close(fd);
	pfd = bpf_prog_get_fd_by_id(m.ifaces[0].prog_id);
	if (pfd < 0)
		fprintf(stderr, "scale: program %u: %s\n", m.ifaces[0].prog_id,
			strerror(errno));
	return pfd;
}

/* A backend id of service svc_id (from aeth_backend). */
static int backend_of(const char *dir, __u32 svc_id, __u32 *id)
{
	int fd = open_pinned(dir, AETH_MAP_BACKEND);
	struct aeth_backend b;

	if (fd < 0)
		return -1;
	for (__u32 k = 0; k < AETH_MAX_BACKENDS; k++)
		if (!bpf_map_lookup_elem(fd, &k, &b) &&
		    aeth_backend_usable(&b, svc_id)) {
			*id = k;
			close(fd);
			return 0;
		}
	close(fd);
	return -1;
}

/* Sum over CPUs of one event counter of aeth_global. */
static long long global_event(int fd, int ev)
{
	int ncpus = libbpf_num_possible_cpus();
	struct aeth_global_stats *v = calloc(ncpus, sizeof(*v));
	long long sum = 0;
	__u32 zero = 0;

	if (!v)
		return -1;
	if (!bpf_map_lookup_elem(fd, &zero, v))
		for (int c = 0; c < ncpus; c++)
			sum += v[c].events[ev];
	free(v);
	return sum;
}

static int ct_point(int prog, int empty, const struct aeth_ct_table *ct,
		    int global, uint32_t filled,
		    uint32_t samples, uint32_t *fresh_next,
		    const struct aeth_svc_key *svc, uint32_t svc_id,
		    const struct aeth_ct_entry *v, bool last)
{
	struct run_stats fl, hit, ins;
	long long h0, h1, i0, i1;
	double uhit, uins;
	int err;

	/* a stride prime to the table size walks it in cache-cold order */
	err = run_frames(empty, samples, 0, false, false, svc, 7919, filled,
			 &fl);
	h0 = global_event(global, AETH_EV_CT_HIT);
	if (!err)
		err = run_frames(prog, samples, 0, false, false, svc, 7919,
				 filled, &hit);
	h1 = global_event(global, AETH_EV_CT_HIT);
	i0 = global_event(global, AETH_EV_CT_INSERT);
	if (!err)
		err = run_frames(prog, samples, *fresh_next, true, true, svc,
				 1, 1u << 24, &ins);
	i1 = global_event(global, AETH_EV_CT_INSERT);
	if (err) {
		fprintf(stderr, "scale: test run: %s\n", strerror(-err));
		return err;
	}
	*fresh_next += samples;
	ct_user(ct, filled, samples * 5, *fresh_next, svc, svc_id, v, &uhit,
		&uins);
	*fresh_next += samples * 5;
	printf("  {\"live_entries\": %u, \"samples\": %u,\n"
	       "   \"prog_floor_ns\": {\"median\": %.0f, \"mean\": %.1f},\n"
	       "   \"prog_hit_ns\": {\"median\": %.0f, \"mean\": %.1f, "
	       "\"retval\": %d, \"ct_hits\": %lld},\n"
	       "   \"prog_new_flow_ns\": {\"median\": %.0f, \"mean\": %.1f, "
	       "\"retval\": %d, \"ct_inserts\": %lld},\n"
	       "   \"prog_hit_above_floor_ns\": %.0f,\n"
	       "   \"prog_new_flow_above_floor_ns\": %.0f,\n"
	       "   \"user_lookup_ns\": %.0f, \"user_insert_ns\": %.0f}%s\n",
	       filled, samples, fl.median, fl.mean, hit.median, hit.mean,
	       hit.retval, h1 - h0, ins.median, ins.mean, ins.retval, i1 - i0,
	       hit.median - fl.median, ins.median - fl.median, uhit, uins,
	       last ? "" : ",");
	return 0;
}

static int cmd_ct(const char *dir, const char *vip, int port,
		  uint32_t entries, uint32_t samples)
{
	struct aeth_svc_key k;
	struct aeth_ct_entry v;
	struct aeth_ct_table t;
	struct aeth_svc s;
	uint32_t fresh = 0, small = 1024;
	double fill_small, fill_ms;
	int svcfd, ct, filter, global, prog, empty, err = 1;

	if (svc_key(vip, port, &k))
		return 2;
	svcfd = open_pinned(dir, AETH_MAP_SVC);
	ct = open_pinned(dir, AETH_MAP_CT);
	filter = open_pinned(dir, AETH_MAP_CT_BLOOM);
	global = open_pinned(dir, AETH_MAP_GLOBAL);
	prog = prog_of_agent(dir);
	empty = empty_prog();
	if (svcfd < 0 || ct < 0 || filter < 0 || global < 0 || prog < 0 ||
	    empty < 0)
		return 1;
	if (bpf_map_lookup_elem(svcfd, &k, &s)) {
		fprintf(stderr, "scale: no service %s:%d\n", vip, port);
		return 1;
	}
	memset(&v, 0, sizeof(v));
	v.seen_s = (uint32_t)(now_ns() / 1000000000ull);
	if (backend_of(dir, s.id, &v.backend_id)) {
		fprintf(stderr, "scale: service %s:%d has no backend\n", vip,
			port);
		return 1;
	}
	err = aeth_ct_table_open(&t, ct, filter);
	if (err) {
		fprintf(stderr, "scale: %s/%s: not a table of this build: %s\n",
			dir, AETH_MAP_CT, strerror(-err));
		return 1;
	}
	err = 1;
	if (ct_fill(&t, 0, small, &k, s.id, &v, &fill_small))
		goto fail;
	printf("{\"ct_max_entries\": %llu, \"points\": [\n",
	       (unsigned long long)t.nbuckets * AETH_CT_WAYS);
	if (ct_point(prog, empty, &t, global, small, samples, &fresh, &k, s.id,
		     &v, false))
		goto out;
	/* the inserts above went in too; fill the rest fresh */
	if (ct_fill(&t, small, entries, &k, s.id, &v, &fill_ms))
		goto fail;
	if (ct_point(prog, empty, &t, global, entries, samples, &fresh, &k,
		     s.id, &v, true))
		goto out;
	printf("], \"fill_ms\": %.0f, \"fill_entries\": %u, "
	       "\"ct_memlock\": %lld}\n", fill_ms, entries - small,
	       fdinfo_field(ct, "memlock"));
	err = 0;
	goto out;
fail:
	fprintf(stderr, "scale: filling %s/%s: %s\n", dir, AETH_MAP_CT,
		strerror(errno));
out:
	aeth_ct_table_close(&t);
	close(svcfd);
	close(ct);
	close(filter);
	close(global);
	close(prog);
	close(empty);
	return err;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "pin-dir", required_argument, NULL, 'd' },
		{ "vip", required_argument, NULL, 'v' },
		{ "port", required_argument, NULL, 'p' },
		{ "config", required_argument, NULL, 'c' },
		{ "new", required_argument, NULL, 'n' },
		{ "entries", required_argument, NULL, 'e' },
		{ "samples", required_argument, NULL, 's' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ 0 },
	};
	const char *dir = NULL, *vip = NULL, *config = NULL, *next = NULL;
	uint32_t entries = 1u << 20, samples = 20000;
	int port = 0, timeout_ms = 10000, c;
	const char *cmd = argc > 1 ? argv[1] : "";

	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'v': vip = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'c': config = optarg; break;
		case 'n': next = optarg; break;
		case 'e': entries = strtoul(optarg, NULL, 0); break;
		case 's': samples = strtoul(optarg, NULL, 0); break;
		case 't': timeout_ms = atoi(optarg); break;
		default: goto usage;
		}
	}
	if (!dir)
		goto usage;
	if (!strcmp(cmd, "mem"))
		return cmd_mem(dir);
	if (!strcmp(cmd, "flip") && vip && config && next)
		return cmd_flip(dir, vip, port, config, next, timeout_ms);
	if (!strcmp(cmd, "ct") && vip && entries > 2048 && samples)
		return cmd_ct(dir, vip, port, entries, samples);
usage:
	fprintf(stderr,
		"usage: scale mem --pin-dir DIR\n"
		"       scale flip --pin-dir DIR --vip IP --port P --config FILE "
		"--new FILE2\n"
		"       scale ct --pin-dir DIR --vip IP --port P [--entries N] "
		"[--samples K]\n");
	return 2;
}
