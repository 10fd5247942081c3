/* What the BGP supervisor reports: the "bgp" object of GET /v1/status and
 * the aether_bgp_* metric families. */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "bgp.h"
#include "bgp_state.h"
#include "bird_conf.h"

json_t *aeth_bgp_status_json(const struct aeth_bgp *g)
{
	json_t *peers = json_array(), *ann = json_array();
	const struct aeth_cfg_bgp *cfg = g && g->agent->cfg ?
					 g->agent->cfg->bgp : NULL;
	char p[64];

	for (size_t i = 0; cfg && i < cfg->n_peers; i++) {
		const struct aeth_cfg_bgp_peer *peer = &cfg->peers[i];
		bool known = g->configured && i < g->cfg.n_peers &&
			     !memcmp(&g->cfg.peers[i], peer, sizeof(*peer));

		json_array_append_new(peers, json_pack(
			"{s:s,s:I,s:b,s:s}", "address", peer->address_text,
			"asn", (json_int_t)peer->asn, "bfd", peer->bfd, "state",
			known && g->pid > 0 ? g->peer_state[i] : "down"));
	}
	for (size_t i = 0; g && i < g->n_announced; i++) {
		aeth_bird_prefix(&g->announced[i], p, sizeof(p));
		json_array_append_new(ann, json_string(p));
	}
	return json_pack("{s:b,s:o,s:o,s:{s:b,s:i,s:I,s:I}}", "enabled",
			 cfg != NULL, "peers", peers, "announced", ann,
			 "speaker", "running", g && g->pid > 0, "pid",
			 g ? (int)g->pid : 0, "restarts",
			 (json_int_t)(g ? g->restarts : 0), "start_failures",
			 (json_int_t)(g ? g->start_failures : 0));
}

static void scrape_vips(struct evbuffer *b, const struct aeth_bgp *g,
			const struct aeth_config *cfg)
{
	char text[64], *slash;

	evbuffer_add_printf(b, "# HELP aether_bgp_announced 1 while the VIP "
			    "is announced to the peers.\n"
			    "# TYPE aether_bgp_announced gauge\n");
	for (size_t i = 0; cfg && i < cfg->n_services; i++) {
		const struct aeth_ip *vip = &cfg->services[i].vip;
		bool first = true;

		for (size_t j = 0; j < i && first; j++)
			first = memcmp(&cfg->services[j].vip, vip, sizeof(*vip));
		if (!first)
			continue;
		aeth_bird_prefix(vip, text, sizeof(text));
		slash = strchr(text, '/');
		if (slash)
			*slash = '\0';
		evbuffer_add_printf(b, "aether_bgp_announced{vip=\"%s\"} %d\n",
				    text, aeth_bgp_ip_in(g->announced, g->n_announced, vip));
	}
}

void aeth_bgp_scrape(struct evbuffer *b, void *arg)
{
	const struct aeth_bgp *g = arg;
	const struct aeth_config *cfg = g->agent->cfg;
	const struct aeth_cfg_bgp *bgp = cfg ? cfg->bgp : NULL;

	evbuffer_add_printf(b, "# HELP aether_node_drained 1 while the node is "
			    "drained (announces nothing).\n"
			    "# TYPE aether_node_drained gauge\n"
			    "aether_node_drained %d\n", g->drained);
	if (!bgp)
		return;
	evbuffer_add_printf(b, "# HELP aether_bgp_peer_up 1 while the BGP "
			    "session to the peer is established.\n"
			    "# TYPE aether_bgp_peer_up gauge\n");
	for (size_t i = 0; i < bgp->n_peers; i++)
		evbuffer_add_printf(b, "aether_bgp_peer_up{peer=\"%s\"} %d\n",
				    bgp->peers[i].address_text,
				    g->pid > 0 && g->configured &&
				    !strcmp(g->peer_state[i], "established"));
	scrape_vips(b, g, cfg);
	evbuffer_add_printf(b, "# HELP aether_bgp_speaker_restarts_total Times "
			    "the BGP speaker (bird) died and was started again.\n"
			    "# TYPE aether_bgp_speaker_restarts_total counter\n"
			    "aether_bgp_speaker_restarts_total %llu\n"
			    "# HELP aether_bgp_speaker_start_failures_total Failed "
			    "starts of the BGP speaker.\n"
			    "# TYPE aether_bgp_speaker_start_failures_total counter\n"
			    "aether_bgp_speaker_start_failures_total %llu\n",
			    (unsigned long long)g->restarts,
			    (unsigned long long)g->start_failures);
}
