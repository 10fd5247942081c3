/* The hold after adopting a running BIRD. A new agent's health checks
 * start from "up", so for as long as they need to fail (fall x interval +
 * timeout) it announces nothing the adopted BIRD was not announcing: a VIP
 * withdrawn because its backends failed stays withdrawn across a restart. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgp_state.h"

#define MAX_HELD 4096

static int parse_route(const char *line, struct aeth_ip *ip)
{
	char addr[INET6_ADDRSTRLEN + 1];

	memset(ip, 0, sizeof(*ip));
	if (sscanf(line, " route %46[0-9a-fA-F.:]/%*u blackhole;", addr) != 1)
		return -1;
	if (inet_pton(AF_INET, addr, &ip->addr.v4) == 1)
		ip->family = AETH_AF_INET;
	else if (inet_pton(AF_INET6, addr, ip->addr.bytes) == 1)
		ip->family = AETH_AF_INET6;
	return ip->family ? 0 : -1;
}

void aeth_bgp_hold_begin(struct aeth_bgp *g)
{
	FILE *f = fopen(g->bird.conf, "re");
	char line[256];

	g->hold_pending = true;
	free(g->held);
	g->held = calloc(MAX_HELD, sizeof(*g->held));
	g->n_held = 0;
	if (!f || !g->held) {
		if (f)
			fclose(f);
		return;
	}
	while (fgets(line, sizeof(line), f) && g->n_held < MAX_HELD)
		if (parse_route(line, &g->held[g->n_held]) == 0)
			g->n_held++;
	fclose(f);
}

static uint64_t settle_ms(const struct aeth_config *cfg)
{
	uint64_t ms = 0;

	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct aeth_cfg_health *h = &cfg->services[i].health;
		uint64_t t = (uint64_t)h->fall * h->interval_ms + h->timeout_ms;

		if (h->type != AETH_HC_NONE && t > ms)
			ms = t;
	}
	return ms;
}

void aeth_bgp_hold_filter(struct aeth_bgp *g, struct aeth_ip *vips, size_t *n,
			  uint64_t now_ms)
{
	size_t k = 0;

	if (g->hold_pending && g->agent->cfg) {
		g->hold_pending = false;
		g->hold_until_ms = now_ms + settle_ms(g->agent->cfg);
	}
	if (g->hold_pending || now_ms >= g->hold_until_ms)
		return;
	for (size_t i = 0; i < *n; i++)
		if (aeth_bgp_ip_in(g->held, g->n_held, &vips[i]))
			vips[k++] = vips[i];
	*n = k;
}
