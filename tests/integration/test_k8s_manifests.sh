#!/usr/bin/env bash
# Checks deploy/k8s: every manifest parses, and the DaemonSet gives the agent
# what it needs (every flag of SPEC.md section 3, hostNetwork, the bpffs
# mount, ports, probes, priority class, capabilities, a checksum annotation
# equal to the ConfigMap's document) and the rendered document is accepted by
# the agent itself.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

AGENT=${AETH_BUILD:-build}/agent/aether-agent

python3 - "$tmp" <<'EOF' || exit 1
import hashlib
import json
import os
import re
import sys

import yaml

tmp = sys.argv[1]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


docs = []
for name in sorted(os.listdir("deploy/k8s")):
    if not name.endswith(".yaml") or name == "kustomization.yaml":
        continue
    with open(os.path.join("deploy/k8s", name)) as f:
        try:
            for d in yaml.safe_load_all(f):
                if d is not None:
                    docs.append(d)
        except yaml.YAMLError as e:
            check(False, "%s parses: %s" % (name, e))
check(len(docs) >= 5, "manifests parse (%d objects)" % len(docs))

by_kind = {}
for d in docs:
    check("apiVersion" in d and "kind" in d and "name" in d.get("metadata", {}),
          "%s has apiVersion, kind, metadata.name" % d.get("kind"))
    by_kind.setdefault(d.get("kind"), []).append(d)

with open("deploy/k8s/kustomization.yaml") as f:
    kust = yaml.safe_load(f)
listed = set(kust.get("resources", []))
present = {n for n in os.listdir("deploy/k8s")
           if n.endswith(".yaml") and n != "kustomization.yaml"}
check(listed == present, "kustomization lists every manifest")

ds = by_kind.get("DaemonSet", [None])[0]
cm = by_kind.get("ConfigMap", [None])[0]
check(ds is not None, "a DaemonSet")
check(cm is not None, "a ConfigMap")
if ds is None or cm is None:
    sys.exit(1)

spec = ds["spec"]
pod = spec["template"]["spec"]
check(pod.get("hostNetwork") is True, "hostNetwork: true")
check(spec.get("updateStrategy", {}).get("type") == "RollingUpdate",
      "updateStrategy RollingUpdate")

agent = [c for c in pod["containers"] if "aether-agent" in
         " ".join(c.get("command", []) + c.get("args", []))]
check(len(agent) == 1, "one container runs aether-agent")
agent = agent[0]
argv = agent.get("command", []) + agent.get("args", [])
flags = {}
for a in argv:
    if a.startswith("--"):
        k, _, v = a.partition("=")
        flags[k] = v

# every long-running flag of SPEC.md section 3 (not the one-shot modes)
with open("docs/SPEC.md") as f:
    spec_text = f.read()
sec3 = spec_text.split("## 3.", 1)[1].split("## 4.", 1)[0]
usage = sec3.split("```", 2)[1]
spec_flags = set(re.findall(r"--[a-z][a-z-]+", usage)) - {
    "--check-config", "--detach"}
check(len(spec_flags) >= 6, "SPEC.md names the agent flags (%s)" %
      " ".join(sorted(spec_flags)))
for fl in sorted(spec_flags):
    check(fl in flags and flags[fl] != "", "agent gets %s" % fl)

mounts = {m["mountPath"]: m for m in agent.get("volumeMounts", [])}
vols = {v["name"]: v for v in pod.get("volumes", [])}


def mount_for(path):
    best = None
    for mp in mounts:
        if path == mp or path.startswith(mp.rstrip("/") + "/"):
            if best is None or len(mp) > len(best):
                best = mp
    return best


bpf = mounts.get("/sys/fs/bpf")
check(bpf is not None and
      vols.get(bpf["name"], {}).get("hostPath", {}).get("path") == "/sys/fs/bpf",
      "/sys/fs/bpf mounted from the host")
check(flags.get("--pin-dir", "").startswith("/sys/fs/bpf/"),
      "--pin-dir under the bpffs mount")
sock_mount = mount_for(os.path.dirname(flags.get("--socket", "/x")))
check(sock_mount is not None and not mounts[sock_mount].get("readOnly"),
      "--socket directory is a writable mount")
cfg_mount = mount_for(flags.get("--config", "/nonexistent"))
check(cfg_mount is not None, "--config lies in a mounted volume")
# the document comes from the ConfigMap: mounted directly, or rendered into
# the agent's volume by an init container that mounts the ConfigMap
cm_vols = {n for n, v in vols.items()
           if v.get("configMap", {}).get("name") == cm["metadata"]["name"]}
cfg_vol = mounts[cfg_mount]["name"] if cfg_mount else None
fed = cfg_vol in cm_vols
for ic in pod.get("initContainers", []):
    names = {m["name"] for m in ic.get("volumeMounts", [])}
    if cfg_vol in names and names & cm_vols:
        fed = True
check(fed, "the ConfigMap feeds the volume --config is read from")

port = flags.get("--metrics-addr", "").rsplit(":", 1)[-1]
ports = {p.get("name"): p for p in agent.get("ports", [])}
pnums = {str(p["containerPort"]): p for p in agent.get("ports", [])}
check(port in pnums, "metrics port %s declared as a containerPort" % port)


def probe_port_ok(probe):
    p = probe.get("httpGet", {}).get("port")
    return str(p) == port or (p in ports and
                              str(ports[p]["containerPort"]) == port)


live = agent.get("livenessProbe", {})
ready = agent.get("readinessProbe", {})
check(live.get("httpGet", {}).get("path") == "/healthz" and probe_port_ok(live),
      "liveness probe GET /healthz on the metrics port")
check(ready.get("httpGet", {}).get("path") == "/readyz" and probe_port_ok(ready),
      "readiness probe GET /readyz on the metrics port")

sc = agent.get("securityContext", {})
caps = set(sc.get("capabilities", {}).get("add", []))
check({"BPF", "NET_ADMIN"} <= caps, "capabilities BPF and NET_ADMIN")
check(not sc.get("privileged", False), "not privileged")
check("ALL" in sc.get("capabilities", {}).get("drop", []),
      "every other capability dropped")

pcs = {d["metadata"]["name"] for d in by_kind.get("PriorityClass", [])}
pcn = pod.get("priorityClassName")
check(pcn in pcs or pcn in ("system-node-critical", "system-cluster-critical"),
      "priorityClassName %s is defined" % pcn)

ns = ds["metadata"].get("namespace")
check(cm["metadata"].get("namespace") == ns, "ConfigMap in the DaemonSet's namespace")
sa = pod.get("serviceAccountName")
check(sa in {d["metadata"]["name"] for d in by_kind.get("ServiceAccount", [])},
      "service account %s is defined" % sa)

ann = spec["template"]["metadata"].get("annotations", {})
keys = sorted(cm["data"])
check(len(keys) == 1, "ConfigMap holds one document")
doc = cm["data"][keys[0]]
want = hashlib.sha256(doc.encode()).hexdigest()
check(ann.get("checksum/config") == want,
      "checksum/config annotation is the sha256 of the document (%s)" % want)
check(any(v.get("configMap", {}).get("name") == cm["metadata"]["name"]
          for v in vols.values()), "the ConfigMap is mounted")

# render as the init container does and keep the result for --check-config
rendered = (doc.replace("@NODE_IPV4@", "192.0.2.11")
            .replace("@NODE_IPV6@", "2001:db8::11")
            .replace("@NODE_INTERFACE@", "eth0"))
try:
    json.loads(rendered)
    check(True, "rendered document is JSON")
except ValueError as e:
    check(False, "rendered document is JSON: %s" % e)
with open(os.path.join(tmp, "config.json"), "w") as f:
    f.write(rendered)

# the init container's own script, with its paths moved into tmp, for the
# shell part below
inits = [c for c in pod.get("initContainers", [])
         if "config.json" in " ".join(c.get("args", []) + c.get("command", []))]
check(len(inits) == 1, "one init container renders the document")
if inits:
    script = inits[0]["args"][-1]
    for m in inits[0].get("volumeMounts", []):
        script = script.replace(m["mountPath"], os.path.join(tmp, m["name"]))
        os.makedirs(os.path.join(tmp, m["name"]), exist_ok=True)
        if m["name"] in cm_vols:
            with open(os.path.join(tmp, m["name"], keys[0]), "w") as f:
                f.write(doc)
    with open(os.path.join(tmp, "render.sh"), "w") as f:
        f.write(script)
    with open(os.path.join(tmp, "render.out"), "w") as f:
        f.write(os.path.join(tmp, cfg_vol, os.path.basename(flags["--config"])))

with open("deploy/Containerfile") as f:
    cf = f.read()
check(re.search(r"^FROM\s+\S*debian:12", cf, re.M) is not None,
      "Containerfile based on Debian 12")
check("meson setup" in cf and "ninja" in cf, "Containerfile builds with meson")

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
EOF

if [ -x "$AGENT" ]; then
	if "$AGENT" --check-config "$tmp/config.json"; then
		echo "ok   aether-agent --check-config accepts the rendered document"
	else
		echo "FAIL aether-agent --check-config rejects the rendered document"
		exit 1
	fi
else
	echo "FAIL no agent at $AGENT to check the document with"
	exit 1
fi
# run the init container's script as the pod would, dual-stack and v4-only
out=$(cat "$tmp/render.out")
agent_dir=$(cd "$(dirname "$AGENT")" && pwd)
for ips in "192.0.2.11,2001:db8::11" "192.0.2.12"; do
	rm -f "$out"
	if ! PATH="$agent_dir:$PATH" NODE_IPS=$ips NODE_INTERFACE=eth0 \
		sh -e "$tmp/render.sh" >/dev/null; then
		echo "FAIL init container script with node IPs $ips"
		exit 1
	fi
	python3 - "$out" "$ips" <<'EOF' || exit 1
import json, sys
doc = json.load(open(sys.argv[1]))
ips = sys.argv[2].split(",")
want = {"ipv4": ips[0]}
if len(ips) > 1:
    want["ipv6"] = ips[1]
got = doc["node"]["addresses"]
if got != want or doc["node"]["interfaces"] != ["eth0"]:
    print("FAIL init container rendered %s for node IPs %s" % (doc["node"], sys.argv[2]))
    sys.exit(1)
print("ok   init container renders node.addresses %s (checked by the agent)" % got)
EOF
done
echo "k8s manifests: all checks passed"
