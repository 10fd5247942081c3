/* What a document leaves to the node: the NIC and the node addresses, from
 * the agent's flags or found on the machine. One ConfigMap then serves
 * every node, whatever its NIC is called and whichever families it has. */
#ifndef AETHER_NODE_DETECT_H
#define AETHER_NODE_DETECT_H

#include "config.h"

/* --interface and --node-address; empty / family 0 when not given. */
struct aeth_node_hint {
	char interface[AETH_IFNAME_LEN];
	struct aeth_ip v4, v6;
};

/* Parse one --node-address value into the hint. 0 or -EINVAL. */
int aeth_node_hint_address(struct aeth_node_hint *hint, const char *text);

/* Fill cfg where the document is silent, in this order:
 * - node.addresses absent: the hint's addresses, then for each family still
 *   missing the first global address of that family on the NIC;
 * - node.interfaces absent: the hint's interface, else the NIC that holds a
 *   node address, else the NIC of the default route (IPv4, then IPv6).
 * Then every backend must have a node address of its family. 0, or -EINVAL
 * with err naming the member and why. */
int aeth_node_complete(struct aeth_config *cfg, const struct aeth_node_hint *hint,
		       struct aeth_error *err);

#endif /* AETHER_NODE_DETECT_H */
