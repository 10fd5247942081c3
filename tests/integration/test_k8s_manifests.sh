#!/usr/bin/env bash
# Checks deploy/k8s: every manifest parses, and the DaemonSet gives the agent
# what it needs (every flag of SPEC.md section 3, hostNetwork, the bpffs
# mount, ports, probes, capabilities), runs where and as it must
# (system-node-critical, Linux nodes only, memory for its maps), hard-codes
# no NIC, mounts the ConfigMap so its ..data swap reaches the agent, and
# that the ServiceMonitor finds the agents; the document is accepted by the
# agent itself.
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
files = [os.path.join("deploy/k8s", n) for n in sorted(os.listdir("deploy/k8s"))]
files += [os.path.join("deploy/k8s/monitoring", n)
          for n in sorted(os.listdir("deploy/k8s/monitoring"))]
for name in files:
    if not name.endswith(".yaml") or name.endswith("kustomization.yaml"):
        continue
    with open(name) as f:
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

for d in ("deploy/k8s", "deploy/k8s/monitoring"):
    with open(os.path.join(d, "kustomization.yaml")) as f:
        kust = yaml.safe_load(f)
    listed = {r for r in kust.get("resources", []) if r.endswith(".yaml")}
    present = {n for n in os.listdir(d)
               if n.endswith(".yaml") and n != "kustomization.yaml"}
    check(listed == present, "%s/kustomization.yaml lists every manifest" % d)

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
# (--kubeconfig is for agents outside the cluster: the pod uses its
# service account)
spec_flags = set(re.findall(r"--[a-z][a-z-]+", usage)) - {
    "--check-config", "--detach", "--version", "--render-kubernetes",
    "--kubeconfig"}
no_value = {"--kubernetes"}
check(len(spec_flags) >= 6, "SPEC.md names the agent flags (%s)" %
      " ".join(sorted(spec_flags)))
for fl in sorted(spec_flags):
    if fl in no_value:
        check(fl in flags and flags[fl] == "", "agent gets %s" % fl)
    else:
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
cfg_path = flags.get("--config", "/nonexistent")
cfg_mount = mount_for(cfg_path)
check(cfg_mount is not None, "--config lies in a mounted volume")
# the ConfigMap mounted as a directory: the kubelet then updates it by a
# ..data symlink swap that the agent's watcher sees (a subPath mount or a
# copy made by an init container never changes)
cm_vols = {n for n, v in vols.items()
           if v.get("configMap", {}).get("name") == cm["metadata"]["name"]}
cfgm = mounts.get(cfg_mount, {})
check(cfgm.get("name") in cm_vols and "subPath" not in cfgm and
      os.path.dirname(cfg_path) == cfg_mount.rstrip("/") and
      os.path.basename(cfg_path) in cm["data"],
      "--config is a key of the ConfigMap, mounted as a directory")
check(not pod.get("initContainers"), "no init container copies the document")

check(pod.get("priorityClassName") == "system-node-critical",
      "priorityClassName system-node-critical")
check(pod.get("nodeSelector", {}).get("kubernetes.io/os") == "linux",
      "nodeSelector kubernetes.io/os: linux")
ds_text = json.dumps(ds)	# without the comments
check("status.hostIPs" not in ds_text,
      "no status.hostIPs (it needs Kubernetes 1.30)")
envs = {e["name"]: e for e in agent.get("env", [])}
addr = flags.get("--node-address", "")
m = re.fullmatch(r"\$\((\w+)\)", addr)
check(m is not None and envs.get(m.group(1), {}).get("valueFrom", {})
      .get("fieldRef", {}).get("fieldPath") == "status.hostIP",
      "--node-address from the Downward API's status.hostIP")
check(not re.search(r"\b(eth|ens|eno|enp|bond)[0-9]", ds_text + json.dumps(cm["data"])),
      "no NIC name hard-coded (the agent finds it)")
check(re.fullmatch(r"\[\$\(\w+\)\]:\d+", flags.get("--metrics-addr", "")) is not None,
      "--metrics-addr brackets the node address (either family)")


def mebibytes(q):
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "K": 1e3 / 2**20,
             "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    m = re.fullmatch(r"(\d+)([KMG]i?)?", str(q))
    return int(m.group(1)) * units.get(m.group(2), 1 / 2**20) if m else 0


# BPF maps count against the pod's memory: 151 MiB measured for the
# ConfigMap's document, 280 MiB at the largest tables
res = agent.get("resources", {})
check(mebibytes(res.get("requests", {}).get("memory")) >= 151 + 32,
      "memory request covers the maps of the document (151 MiB) and the agent")
check(mebibytes(res.get("limits", {}).get("memory")) >= 280 + 32,
      "memory limit covers the largest maps (280 MiB)")

# the ServiceMonitor reaches the pods through the metrics Service
svc = [d for d in by_kind.get("Service", [])
       if d["metadata"]["name"].endswith("metrics")]
smon = by_kind.get("ServiceMonitor", [None])[0]
check(len(svc) == 1 and smon is not None, "a metrics Service and a ServiceMonitor")
if svc and smon:
    svc = svc[0]
    pod_labels = spec["template"]["metadata"]["labels"]
    check(all(pod_labels.get(k) == v for k, v in svc["spec"]["selector"].items()),
          "the metrics Service selects the agent pods")
    sport = {p["name"]: p for p in svc["spec"]["ports"]}
    ep = smon["spec"]["endpoints"][0]
    check(ep.get("port") in sport and
          sport[ep["port"]].get("targetPort") in
          {p.get("name") for p in agent.get("ports", [])},
          "the ServiceMonitor scrapes the container's metrics port")
    check(all(svc["metadata"]["labels"].get(k) == v for k, v in
              smon["spec"]["selector"]["matchLabels"].items()),
          "the ServiceMonitor selects the metrics Service")
    check(ep.get("path") == "/metrics", "the ServiceMonitor scrapes /metrics")

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

keys = sorted(cm["data"])
check(len(keys) == 1, "ConfigMap holds one document")
doc = cm["data"][keys[0]]
try:
    node = json.loads(doc)["node"]
    check("interfaces" not in node and "addresses" not in node,
          "the document leaves the NIC and the addresses to each node")
except ValueError as e:
    check(False, "the document is JSON: %s" % e)
with open(os.path.join(tmp, "config.json"), "w") as f:
    f.write(doc)

with open("deploy/Containerfile") as f:
    cf = f.read()
check(re.search(r"^FROM\s+\S*debian:12", cf, re.M) is not None,
      "Containerfile based on Debian 12")
check("meson setup" in cf and "ninja" in cf, "Containerfile builds with meson")
check("/out/usr/sbin/aether-agent" in cf,
      "Containerfile takes the agent from sbin, where meson installs it")
check("libevent-openssl-2.1-7" in cf and "libssl3" in cf,
      "Containerfile's runtime has the TLS libraries of https checks")

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
EOF

if [ -x "$AGENT" ]; then
	if "$AGENT" --check-config "$tmp/config.json"; then
		echo "ok   aether-agent --check-config accepts the ConfigMap's document"
	else
		echo "FAIL aether-agent --check-config rejects the ConfigMap's document"
		exit 1
	fi
else
	echo "FAIL no agent at $AGENT to check the document with"
	exit 1
fi
echo "k8s manifests: all checks passed"
