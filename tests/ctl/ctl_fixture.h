/* Fixture for aetherctl tests: the real object loaded with every map pinned
 * under a fresh /sys/fs/bpf/aeth-ct-XXXXXX, helpers that fill the maps as the
 * agent and the data path would, and a runner for the aetherctl binary.
 *
 *   struct fx fx;
 *   fx_open(&fx);          load, pin, aeth_meta schema version set
 *   fx_populate(&fx);      the standard scene (below)
 *   fx_ctl(&fx, &res, "service", "list", NULL);   runs aetherctl --pin-dir
 *   fx_close(&fx);         unpins everything and removes the directory
 *
 * The standard scene (service ids, backend ids, Maglev/ACL slots):
 *   svc 0 "kube-apiserver" 203.0.113.10:6443/tcp, table 251 (slot 0), ACL on
 *         (slot 0: 198.51.100.0/24, 2001:db8:100::/48), limits 20/s burst 40
 *         per /32,/64 and 5000/s per service;
 *         be 0 192.0.2.21 w1, be 1 192.0.2.22 draining, be 2 192.0.2.23 w2;
 *         table round robin over {0, 2, 2}
 *   svc 1 "dns" [2001:db8:f::53]:0/udp (every port), table 251 (slot 2);
 *         be 3 2001:db8::31, be 4 2001:db8::32 unhealthy; table all 3
 *   svc 2 "web" 203.0.113.10:80/tcp, table 251 (slot 4), ACL off, no
 *         limits; be 5 192.0.2.41; table round robin over
 *         {5, AETH_NO_BACKEND}
 * The pin directory is /sys/fs/bpf/aeth-ct-<pid>-<n>; fx_open removes such
 * directories left by dead processes (a crashed test).
 */
#ifndef AETHER_TESTS_CTL_FIXTURE_H
#define AETHER_TESTS_CTL_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "aether/abi.h"

#define FX_TABLE 251
#define FX_SEED { 0x1e0a3c5fu, 0x442c7d9bu, 0xd4c3b2a1u, 0x1807f6e5u }

struct fx {
	void *skel;
	char dir[64];
	int prog_fd;
	int meta, node, vip, svc, svcinfo, backend, maglev, acl, ct, ct_budget,
	    rl_src, rl_svc, svc_stats, be_stats, global;
	int ncpus;
};

/* Result of one aetherctl run. json is parsed stdout (NULL if not JSON). */
struct fx_res {
	int status;		/* exit code, or -1 if it did not exit */
	char *out;
	char *err;
	json_t *json;
};

int fx_open(struct fx *fx);
void fx_close(struct fx *fx);

/* Text address -> AETH_AF_*; aborts the test on a typo. */
int fx_addr(const char *text, union aeth_addr *out);

/* A service in aeth_svc, aeth_svcinfo (IN_USE) and aeth_vip. Returns the
 * written entry in *svc_out when not NULL. */
int fx_service(struct fx *fx, uint32_t id, const char *name, const char *vip,
	       uint16_t port, uint8_t proto, uint32_t table_size,
	       uint32_t maglev_slot, struct aeth_svc *svc_out);
/* Rewrite the aeth_svc entry of service id (as the agent flips slots). */
int fx_service_update(struct fx *fx, uint32_t id, const struct aeth_svc *svc);
int fx_backend(struct fx *fx, uint32_t id, const char *addr, uint32_t svc_id,
	       uint16_t weight, uint32_t flags);
int fx_maglev(struct fx *fx, uint32_t slot, const uint32_t *table,
	      uint32_t size);
/* An ACL trie in aeth_acl[slot] with the CIDRs ("198.51.100.0/24"). */
int fx_acl(struct fx *fx, uint32_t slot, const char *const *cidrs, size_t n);
struct aeth_flow fx_flow(const char *src, uint16_t sport, const char *dst,
			 uint16_t dport, uint8_t proto);
/* A connection entry of f, seen at seen_ns (the coarse clock), confirmed
 * or not (aeth_ct_entry.confirmed). */
int fx_ct(struct fx *fx, const struct aeth_flow *f, uint32_t backend_id,
	  uint32_t svc_id, uint64_t seen_ns, bool confirmed);
/* Add v to a u64 field at byte offset off of key's value on one CPU. */
int fx_percpu_add(struct fx *fx, int map_fd, uint32_t key, size_t value_size,
		  int cpu, size_t off, uint64_t v);

int fx_populate(struct fx *fx);

/* Write the loaded program's VIP filter (bpf/service.h) as its agent
 * would: words, and the stamp it holds under (the tables' own, aeth_stamp,
 * when vouched, another one when not). */
int fx_vip_filter_set(struct fx *fx, const __u64 *words, bool vouched);

/* Run aetherctl --pin-dir fx->dir ARGS... (NULL-terminated). */
int fx_ctl(struct fx *fx, struct fx_res *res, ...);
/* Same with the pin directory argument given (NULL: none at all). */
int fx_ctl_dir(const char *dir, struct fx_res *res, ...);
void fx_res_free(struct fx_res *res);

uint64_t fx_now_ns(void);

#endif /* AETHER_TESTS_CTL_FIXTURE_H */
