#!/usr/bin/env python3
# Derives one node's configuration document from the cluster's template: the
# same services everywhere, this node's own addresses.
"""Usage: nodeconf.py TEMPLATE --role lb|backend --v4 ADDR --v6 ADDR
                   [--decap-source CIDR ...]

An LB node gets the template with node.addresses replaced. A backend node
only decapsulates: it gets the same services with no backends, no health
check and no rate limit (the LB nodes limit), and no bgp (the LB nodes
announce), so its agent strips the tunnel for exactly the VIPs the LB nodes
send it. It keeps each service's authorized networks: the backend checks
the inner source again, so a tunnel with a forged outer source is no way
around them. Its decap.sources are the template's, or else the
--decap-source CIDRs (the LB nodes): a backend accepts tunnels from nobody
else.
"""

import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("template")
    ap.add_argument("--role", choices=("lb", "backend"), required=True)
    ap.add_argument("--v4", required=True)
    ap.add_argument("--v6", required=True)
    ap.add_argument("--decap-source", action="append", default=[],
                    help="an LB node's address as CIDR (repeatable)")
    args = ap.parse_args()
    with open(args.template) as f:
        doc = json.load(f)
    doc.setdefault("node", {})["addresses"] = {"ipv4": args.v4,
                                               "ipv6": args.v6}
    if args.role == "backend":
        for svc in doc.get("services", []):
            svc["backends"] = []
            for k in ("health_check", "rate_limit"):
                svc.pop(k, None)
        # backends announce nothing
        doc.pop("bgp", None)
        if "decap" not in doc and args.decap_source:
            doc["decap"] = {"sources": args.decap_source}
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
