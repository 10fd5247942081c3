/* Throughput benchmark tool: a traffic generator (XDP live frames), a
 * counting sink for a veth, and a reader of per-CPU counters.
 *   tput gen --dev IF --dst-mac MAC --src IP --dst IP --dport P [options]
 *                                       (--count N: N frames, then exit;
 *                                        --pps R: paced at R frames/s)
 *   tput sink --dev IF --pin PATH       (until SIGINT/SIGTERM)
 *   tput count PATH[:WORD] ...          (prints monotonic ns, then sums)
 *   tput entries PATH                   (prints the map's id and its
 *                                        number of keys)
 * WORD indexes the u64 words of value 0 of a per-CPU array; for aeth_global
 * it may be reason:NAME or event:NAME. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <net/if.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "aether/abi.h"
#include "ct_table.h"
#include "gen.skel.h"
#include "sink.skel.h"

#define FRAME_LEN 60		/* 64 bytes on the wire with the FCS */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt,
			va_list args)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, args);
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned int b[6];

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4],
		   &b[5]) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = b[i];
	return 0;
}

static int dev_mac(const char *dev, uint8_t mac[6])
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM, 0), err = 0;

	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr))
		err = -errno;
	else
		memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	close(fd);
	return err;
}

static uint16_t csum16(const void *p, size_t len, uint32_t sum)
{
	const uint8_t *b = p;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (b[i] << 8) | b[i + 1];
	if (len & 1)
		sum += b[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons(~sum & 0xffff);
}

struct gen_opts {
	const char *dev;
	uint8_t dst_mac[6];
	struct in_addr src, dst;
	uint32_t sources, ports;
	uint16_t sport, dport;
	int proto;
	bool syn;
	double seconds;
	uint32_t batch;
	uint32_t count;		/* 0: for `seconds` */
};

/* Ethernet + IPv4 + TCP (SYN or ACK) or UDP, padded to FRAME_LEN. */
static void build_frame(const struct gen_opts *o, const uint8_t src_mac[6],
			uint8_t *f)
{
	struct ethhdr *eth = (void *)f;
	struct iphdr *ip = (void *)(eth + 1);
	uint8_t *l4 = (uint8_t *)(ip + 1), pseudo[12];
	size_t l4len = o->proto == IPPROTO_TCP ? sizeof(struct tcphdr) :
						 FRAME_LEN - 34;
	uint32_t sum = 0;

	memset(f, 0, FRAME_LEN);
	memcpy(eth->h_dest, o->dst_mac, 6);
	memcpy(eth->h_source, src_mac, 6);
	eth->h_proto = htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->ttl = 64;
	ip->protocol = o->proto;
	ip->tot_len = htons(sizeof(*ip) + l4len);
	ip->frag_off = htons(0x4000);	/* DF */
	ip->saddr = o->src.s_addr;
	ip->daddr = o->dst.s_addr;
	ip->check = csum16(ip, sizeof(*ip), 0);
	if (o->proto == IPPROTO_TCP) {
		struct tcphdr *th = (void *)l4;

		th->source = htons(o->sport);
		th->dest = htons(o->dport);
		th->seq = htonl(1);
		th->doff = 5;
		th->window = htons(64240);
		if (o->syn) {
			th->syn = 1;
		} else {
			th->ack = 1;
			th->ack_seq = htonl(1);
		}
	} else {
		struct udphdr *uh = (void *)l4;

		uh->source = htons(o->sport);
		uh->dest = htons(o->dport);
		uh->len = htons(l4len);
	}
	memcpy(pseudo, &ip->saddr, 8);
	pseudo[8] = 0;
	pseudo[9] = o->proto;
	pseudo[10] = l4len >> 8;
	pseudo[11] = l4len & 0xff;
	for (int i = 0; i < 12; i += 2)
		sum += (pseudo[i] << 8) | pseudo[i + 1];
	*(uint16_t *)(l4 + (o->proto == IPPROTO_TCP ? 16 : 6)) =
		csum16(l4, l4len, sum);
}

static int cmd_gen(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dev", required_argument, NULL, 'd' },
		{ "dst-mac", required_argument, NULL, 'm' },
		{ "src", required_argument, NULL, 's' },
		{ "sources", required_argument, NULL, 'n' },
		{ "sport", required_argument, NULL, 'p' },
		{ "ports", required_argument, NULL, 'P' },
		{ "dst", required_argument, NULL, 'D' },
		{ "dport", required_argument, NULL, 'o' },
		{ "proto", required_argument, NULL, 'r' },
		{ "syn", no_argument, NULL, 'S' },
		{ "seconds", required_argument, NULL, 't' },
		{ "batch", required_argument, NULL, 'b' },
		{ "count", required_argument, NULL, 'c' },
		{ "pps", required_argument, NULL, 'R' },
		{ 0 },
	};
	struct gen_opts o = { .sources = 1, .ports = 1, .sport = 10000,
			      .proto = IPPROTO_TCP, .seconds = 5,
			      .batch = 64 };
	uint8_t frame[FRAME_LEN], src_mac[6];
	struct gen *skel = NULL;
	uint64_t sent = 0, repeat = 1 << 18;
	double t0, t, pps = 0;
	int c, err, ifindex;

	inet_pton(AF_INET, "198.51.100.1", &o.src);
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd': o.dev = optarg; break;
		case 'm':
			if (parse_mac(optarg, o.dst_mac))
				goto usage;
			break;
		case 's':
			if (inet_pton(AF_INET, optarg, &o.src) != 1)
				goto usage;
			break;
		case 'D':
			if (inet_pton(AF_INET, optarg, &o.dst) != 1)
				goto usage;
			break;
		case 'n': o.sources = strtoul(optarg, NULL, 0); break;
		case 'p': o.sport = strtoul(optarg, NULL, 0); break;
		case 'P': o.ports = strtoul(optarg, NULL, 0); break;
		case 'o': o.dport = strtoul(optarg, NULL, 0); break;
		case 'r':
			o.proto = strcmp(optarg, "udp") ? IPPROTO_TCP :
							  IPPROTO_UDP;
			break;
		case 'S': o.syn = true; break;
		case 't': o.seconds = strtod(optarg, NULL); break;
		case 'b': o.batch = strtoul(optarg, NULL, 0); break;
		case 'c': o.count = strtoul(optarg, NULL, 0); break;
		case 'R': pps = strtod(optarg, NULL); break;
		default: goto usage;
		}
	}
	if (!o.dev || !o.dst.s_addr || !o.sources || !o.ports || pps < 0 ||
	    (pps && pps < 1000))
		goto usage;
	ifindex = if_nametoindex(o.dev);
	if (!ifindex || dev_mac(o.dev, src_mac)) {
		fprintf(stderr, "tput gen: no interface %s\n", o.dev);
		return 1;
	}
	build_frame(&o, src_mac, frame);

	skel = gen__open();
	if (!skel)
		return 1;
	_Static_assert(sizeof(skel->rodata->frame_tmpl) == FRAME_LEN, "frame");
	memcpy((void *)skel->rodata->frame_tmpl, frame, FRAME_LEN);
	skel->rodata->out_ifindex = ifindex;
	skel->rodata->src_base = ntohl(o.src.s_addr);
	skel->rodata->n_sources = o.sources;
	skel->rodata->sport_base = o.sport;
	skel->rodata->n_ports = o.ports;
	skel->rodata->gap_ns = pps ? (uint64_t)(1e9 / pps) : 0;
	/* paced: calls of about a second (each call sets up a page pool,
	 * tens of ms that no frame leaves in: the rate falls short by that
	 * share, and the pace starts again after it instead of bursting) */
	if (pps)
		repeat = (uint64_t)pps;
	err = gen__load(skel);
	if (err) {
		fprintf(stderr, "tput gen: loading: %s\n", strerror(-err));
		gen__destroy(skel);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (o.count)
		repeat = o.count;
	t0 = now_s();
	do {
		LIBBPF_OPTS(bpf_test_run_opts, ro, .data_in = frame,
			    .data_size_in = sizeof(frame), .repeat = repeat,
			    .batch_size = o.batch,
			    .flags = BPF_F_TEST_XDP_LIVE_FRAMES);

		err = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.gen_xdp),
					     &ro);
		if (err) {
			fprintf(stderr, "tput gen: test run: %s\n",
				strerror(errno));
			break;
		}
		sent += repeat;
		t = now_s() - t0;
	} while (!stop && !o.count && t < o.seconds);
	t = now_s() - t0;
	printf("{\"sent\": %llu, \"seconds\": %.3f, \"pps\": %.0f}\n",
	       (unsigned long long)sent, t, sent / t);
	gen__destroy(skel);
	return err ? 1 : 0;
usage:
	fprintf(stderr, "usage: tput gen --dev IF --dst-mac MAC --dst IP "
		"--dport P [--src IP --sources N] [--sport P --ports N]\n"
		"                [--proto tcp|udp] [--syn] [--seconds S | --count N] "
		"[--batch N] [--pps R (>= 1000)]\n");
	return 2;
}

static int cmd_sink(int argc, char **argv)
{
	const char *dev = NULL, *pin = NULL;
	struct sink *skel;
	int ifindex, err, c;
	static const struct option lo[] = {
		{ "dev", required_argument, NULL, 'd' },
		{ "pin", required_argument, NULL, 'p' },
		{ 0 },
	};

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == 'd')
			dev = optarg;
		else if (c == 'p')
			pin = optarg;
		else
			goto usage;
	}
	if (!dev || !pin)
		goto usage;
	ifindex = if_nametoindex(dev);
	if (!ifindex) {
		fprintf(stderr, "tput sink: no interface %s\n", dev);
		return 1;
	}
	skel = sink__open_and_load();
	if (!skel) {
		fprintf(stderr, "tput sink: loading: %s\n", strerror(errno));
		return 1;
	}
	err = bpf_map__pin(skel->maps.sink_count, pin);
	if (err) {
		fprintf(stderr, "tput sink: pinning %s: %s\n", pin,
			strerror(-err));
		goto out;
	}
	err = bpf_xdp_attach(ifindex, bpf_program__fd(skel->progs.sink_xdp),
			     XDP_FLAGS_DRV_MODE, NULL);
	if (err) {
		fprintf(stderr, "tput sink: attaching to %s: %s\n", dev,
			strerror(-err));
		goto unpin;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("ready\n");
	fflush(stdout);
	while (!stop)
		pause();
	bpf_xdp_detach(ifindex, XDP_FLAGS_DRV_MODE, NULL);
unpin:
	bpf_map__unpin(skel->maps.sink_count, pin);
out:
	sink__destroy(skel);
	return err ? 1 : 0;
usage:
	fprintf(stderr, "usage: tput sink --dev IF --pin PATH\n");
	return 2;
}

static const char *const reason_names[AETH_R_MAX] = {
	"not_authorized", "rate_limited", "service_rate_limited",
	"no_backend", "unconfigured_port", "malformed", "fragment",
	"decap_invalid", "mtu_exceeded", "no_route",
};
static const char *const event_names[AETH_EV_MAX] = {
	"pass", "tx", "redirect", "to_stack_no_neigh", "to_stack_frag",
	"decap", "ct_hit", "ct_miss", "ct_insert", "ct_insert_skipped",
	"ct_reselect", "icmp_too_big_sent", "icmp_steered",
	"icmp_too_big_limited", "ct_expired", "ct_stray", "ct_evicted",
};

static int word_index(const char *w)
{
	if (!strncmp(w, "reason:", 7)) {
		for (int i = 0; i < AETH_R_MAX; i++)
			if (!strcmp(w + 7, reason_names[i]))
				return i;
		return -1;
	}
	if (!strncmp(w, "event:", 6)) {
		for (int i = 0; i < AETH_EV_MAX; i++)
			if (!strcmp(w + 6, event_names[i]))
				return AETH_R_MAX + i;
		return -1;
	}
	return atoi(w);
}

/* Sum over CPUs of u64 word `word` of key 0 of the per-CPU array at pin. */
static int read_percpu(const char *pin, int word, unsigned long long *sum)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info), key = 0;
	int fd, ncpus = libbpf_num_possible_cpus(), err = 0;
	size_t stride;
	uint8_t *buf;

	fd = bpf_obj_get(pin);
	if (fd < 0)
		return -errno;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		err = -errno;
		goto out;
	}
	stride = (info.value_size + 7) & ~7u;
	if ((size_t)(word + 1) * 8 > info.value_size) {
		err = -ERANGE;
		goto out;
	}
	buf = calloc(ncpus, stride);
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	if (bpf_map_lookup_elem(fd, &key, buf)) {
		err = -errno;
	} else {
		*sum = 0;
		for (int c = 0; c < ncpus; c++) {
			uint64_t v;

			memcpy(&v, buf + c * stride + word * 8, 8);
			*sum += v;
		}
	}
	free(buf);
out:
	close(fd);
	return err;
}

static int cmd_count(int argc, char **argv)
{
	unsigned long long sums[16];
	struct timespec ts;
	int n = argc - 1;

	if (n < 1 || n > 16) {
		fprintf(stderr, "usage: tput count PATH[:WORD] ...\n");
		return 2;
	}
	for (int i = 0; i < n; i++) {
		char path[512], *colon;
		int word = 0, err;

		snprintf(path, sizeof(path), "%s", argv[i + 1]);
		colon = strchr(path, ':');
		if (colon) {
			*colon = 0;
			word = word_index(colon + 1);
		}
		err = word < 0 ? -EINVAL : read_percpu(path, word, &sums[i]);
		if (err) {
			fprintf(stderr, "tput count: %s: %s\n", argv[i + 1],
				strerror(-err));
			return 1;
		}
		if (i == 0)
			clock_gettime(CLOCK_MONOTONIC, &ts);
	}
	printf("%lld", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	for (int i = 0; i < n; i++)
		printf(" %llu", sums[i]);
	printf("\n");
	return 0;
}

/* The id of the map pinned at argv[1] and how many keys it holds now (a
 * walk with get_next_key: the benchmark checks that a turn starts with
 * empty, new maps). */
static int cmd_entries(int argc, char **argv)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	unsigned long long n = 0;
	void *key = NULL, *next = NULL;
	int fd, err = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: tput entries PATH\n");
		return 2;
	}
	fd = bpf_obj_get(argv[1]);
	memset(&info, 0, sizeof(info));
	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len)) {
		fprintf(stderr, "tput entries: %s: %s\n", argv[1],
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	if (info.type == BPF_MAP_TYPE_ARRAY &&
	    info.value_size == sizeof(struct aeth_ct_bucket)) {
		/* the connection table: its entries, not its buckets */
		struct aeth_ct_table t;
		long count;

		err = aeth_ct_table_open(&t, fd, -1);
		count = err ? err : aeth_ct_table_count(&t);
		err = count < 0 ? (int)count : 0;
		n = count < 0 ? 0 : (unsigned long long)count;
		goto out;
	}
	key = calloc(1, info.key_size);
	next = calloc(1, info.key_size);
	if (!key || !next) {
		err = -ENOMEM;
		goto out;
	}
	if (!bpf_map_get_next_key(fd, NULL, next)) {
		do {
			n++;
			memcpy(key, next, info.key_size);
		} while (!bpf_map_get_next_key(fd, key, next));
	}
	if (errno != ENOENT)
		err = -errno;
out:
	free(key);
	free(next);
	close(fd);
	if (err) {
		fprintf(stderr, "tput entries: %s: %s\n", argv[1],
			strerror(-err));
		return 1;
	}
	printf("%u %llu\n", info.id, n);
	return 0;
}

int main(int argc, char **argv)
{
	libbpf_set_print(libbpf_quiet);
	if (argc >= 2 && !strcmp(argv[1], "gen"))
		return cmd_gen(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "sink"))
		return cmd_sink(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "count"))
		return cmd_count(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "entries"))
		return cmd_entries(argc - 1, argv + 1);
	fprintf(stderr, "usage: tput gen|sink|count|entries ... (see the source)\n");
	return 2;
}
