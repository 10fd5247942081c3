/* The BGP supervisor's state, shared by its loop (bgp.c) and its reports
 * (bgp_report.c). Private to those two files. */
#ifndef AETHER_BGP_STATE_H
#define AETHER_BGP_STATE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent.h"
#include "bird.h"
#include "config.h"

#define STATE_LEN 16

struct aeth_bgp {
	struct aeth_agent *agent;
	struct event *tick;
	struct aeth_bird bird;
	char drain_file[PATH_MAX];
	bool drained;

	pid_t pid;			/* 0: not running */
	uint64_t started_ms;
	uint64_t next_start_ms;
	uint32_t backoff_ms;
	uint64_t restarts;		/* died and started again */
	uint64_t start_failures;
	uint64_t next_configure_ms;	/* after a failed configure */
	uint32_t configure_backoff_ms;

	/* what BIRD was last configured with */
	bool configured;
	struct aeth_cfg_bgp cfg;
	struct aeth_ip *announced;
	size_t n_announced;

	/* after adopting a BIRD: what it announced, and until when nothing
	 * else is announced (bgp_hold.c) */
	struct aeth_ip *held;
	size_t n_held;
	bool hold_pending;		/* hold_until_ms not computed yet */
	uint64_t hold_until_ms;

	char peer_state[AETH_CFG_BGP_MAX_PEERS][STATE_LEN];
	uint64_t next_poll_ms;		/* later after BIRD failed to answer */
	uint64_t silent_since_ms;	/* BIRD stopped answering; 0: it answers */
	unsigned int ticks;
};

/* Adopting a BIRD: remember what its configuration announces. */
void aeth_bgp_hold_begin(struct aeth_bgp *g);
/* Drop from vips[0..*n) what the adopted BIRD did not announce, while the
 * hold lasts. */
void aeth_bgp_hold_filter(struct aeth_bgp *g, struct aeth_ip *vips, size_t *n,
			  uint64_t now_ms);

/* ip is in list[0..n). */
bool aeth_bgp_ip_in(const struct aeth_ip *list, size_t n,
		    const struct aeth_ip *ip);

#endif /* AETHER_BGP_STATE_H */
