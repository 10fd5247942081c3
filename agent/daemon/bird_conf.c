/* Generates BIRD's configuration: what the node announces and to whom. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#include "bird_conf.h"

void aeth_bird_peer_name(size_t i, char *buf, size_t len)
{
	snprintf(buf, len, "aeth_peer%zu", i);
}

void aeth_bird_prefix(const struct aeth_ip *ip, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	bool v4 = ip->family == AETH_AF_INET;

	inet_ntop(v4 ? AF_INET : AF_INET6, ip->addr.bytes, a, sizeof(a));
	snprintf(buf, len, "%s/%d", a, v4 ? 32 : 128);
}

/* The VIPs live only in BIRD's tables (blackhole routes that no kernel
 * protocol exports): the data path, not the node's stack, handles them. */
static void emit_vips(FILE *f, uint8_t family, const struct aeth_ip *vips,
		      size_t n)
{
	bool v4 = family == AETH_AF_INET;
	char p[64];

	fprintf(f, "protocol static aeth_vips%d {\n\t%s;\n", v4 ? 4 : 6,
		v4 ? "ipv4" : "ipv6");
	for (size_t i = 0; i < n; i++) {
		if (vips[i].family != family)
			continue;
		aeth_bird_prefix(&vips[i], p, sizeof(p));
		fprintf(f, "\troute %s blackhole;\n", p);
	}
	fputs("}\n\n", f);
}

static void emit_peer(FILE *f, const struct aeth_cfg_bgp *bgp, size_t i)
{
	const struct aeth_cfg_bgp_peer *peer = &bgp->peers[i];
	bool v4 = peer->address.family == AETH_AF_INET;
	char name[32];

	aeth_bird_peer_name(i, name, sizeof(name));
	fprintf(f, "protocol bgp %s {\n", name);
	fprintf(f, "\tlocal as %u;\n", bgp->local_asn);
	fprintf(f, "\tneighbor %s as %u;\n", peer->address_text, peer->asn);
	if (bgp->hold_time)
		fprintf(f, "\thold time %u;\n", bgp->hold_time);
	if (peer->bfd)
		fputs("\tbfd on;\n", f);
	/* A node that goes away must be withdrawn at once, not kept as
	 * stale routes by a router that honours graceful restart. */
	fputs("\tgraceful restart off;\n", f);
	fputs("\tconnect delay time 1;\n\tconnect retry time 2;\n", f);
	fputs("\terror wait time 1, 16;\n", f);
	fprintf(f, "\t%s {\n\t\timport none;\n", v4 ? "ipv4" : "ipv6");
	fprintf(f, "\t\texport filter {\n\t\t\tif proto != \"aeth_vips%d\" "
		"then reject;\n", v4 ? 4 : 6);
	for (size_t c = 0; c < bgp->n_communities; c++)
		fprintf(f, "\t\t\tbgp_community.add((%u, %u));\n",
			bgp->communities[c][0], bgp->communities[c][1]);
	fputs("\t\t\taccept;\n\t\t};\n\t};\n}\n\n", f);
}

char *aeth_bird_config(const struct aeth_cfg_bgp *bgp,
		       const struct aeth_ip *vips, size_t n_vips,
		       const char *log_path)
{
	char rid[INET_ADDRSTRLEN], *text = NULL;
	bool bfd = false;
	size_t len = 0;
	FILE *f;

	f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	inet_ntop(AF_INET, &bgp->router_id.addr.v4, rid, sizeof(rid));
	fputs("# Written by aether-agent on every change; edits are lost.\n", f);
	fprintf(f, "router id %s;\n", rid);
	fprintf(f, "log \"%s\" { info, remote, warning, error, auth, fatal, "
		"bug };\n\n", log_path);
	fputs("protocol device aeth_device {\n\tscan time 10;\n}\n\n", f);
	for (size_t i = 0; i < bgp->n_peers; i++)
		bfd |= bgp->peers[i].bfd;
	if (bfd)
		fprintf(f, "protocol bfd aeth_bfd {\n\tinterface \"*\" {\n"
			"\t\tmin rx interval %d ms;\n\t\tmin tx interval %d ms;\n"
			"\t\tmultiplier %d;\n\t};\n}\n\n", AETH_BFD_INTERVAL_MS,
			AETH_BFD_INTERVAL_MS, AETH_BFD_MULTIPLIER);
	emit_vips(f, AETH_AF_INET, vips, n_vips);
	emit_vips(f, AETH_AF_INET6, vips, n_vips);
	for (size_t i = 0; i < bgp->n_peers; i++)
		emit_peer(f, bgp, i);
	if (fclose(f)) {
		free(text);
		return NULL;
	}
	return text;
}
