#!/usr/bin/env python3
"""Checks the Kubernetes manifests in deploy/kubernetes (or the folder given): each parses as YAML, has
the fields its kind requires, and the Deployment's probes, ports and grace period
agree with wharf's options. Prints one line per problem; exits 1 if any."""

import os
import re
import sys

import yaml

HERE = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "kubernetes")
problems = []


def need(doc, path, where):
    node = doc
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            problems.append(f"{where}: missing {path}")
            return None
        node = node[key]
    return node


docs = {}
for name in sorted(os.listdir(HERE)):
    if not name.endswith(".yaml"):
        continue
    with open(os.path.join(HERE, name)) as f:
        for doc in yaml.safe_load_all(f):
            for field in ("apiVersion", "kind", "metadata.name"):
                need(doc, field, name)
            docs[doc.get("kind")] = (name, doc)

for kind in ("ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler"):
    if kind not in docs:
        problems.append(f"no {kind}")

if "Deployment" in docs:
    name, dep = docs["Deployment"]
    spec = need(dep, "spec.template.spec", name) or {}
    containers = spec.get("containers") or []
    if not containers:
        problems.append(f"{name}: no container")
    for c in containers:
        args = c.get("args", [])
        grace = next((a.split("=", 1)[1] for a in args if a.startswith("--grace-period=")), "10s")
        seconds = int(re.match(r"(\d+)s$", grace).group(1)) if re.match(r"(\d+)s$", grace) else 10
        pre_stop = 5 if c.get("lifecycle", {}).get("preStop") else 0
        if spec.get("terminationGracePeriodSeconds", 30) < seconds + pre_stop:
            problems.append(f"{name}: terminationGracePeriodSeconds below preStop + --grace-period")
        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            got = need(c, f"{probe}.httpGet.path", name)
            if got is not None and got != path:
                problems.append(f"{name}: {probe} asks {got}, not {path}")
            port = c.get(probe, {}).get("httpGet", {}).get("port")
            if port not in ports and port not in ports.values():
                problems.append(f"{name}: {probe} port {port} is not a container port")
        if not any(a.startswith("--admin=") for a in args):
            problems.append(f"{name}: the probes need --admin")
        mounts = {m.get("mountPath") for m in c.get("volumeMounts", [])}
        if "/etc/wharf" not in mounts:
            problems.append(f"{name}: the ConfigMap is not mounted at /etc/wharf")
    selector = need(dep, "spec.selector.matchLabels", name) or {}
    labels = need(dep, "spec.template.metadata.labels", name) or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        problems.append(f"{name}: the selector does not match the pod labels")
    if "Service" in docs:
        sname, svc = docs["Service"]
        if any(labels.get(k) != v for k, v in (need(svc, "spec.selector", sname) or {}).items()):
            problems.append(f"{sname}: the selector matches no pod of the Deployment")
    if "HorizontalPodAutoscaler" in docs:
        hname, hpa = docs["HorizontalPodAutoscaler"]
        if need(hpa, "spec.scaleTargetRef.name", hname) != dep["metadata"]["name"]:
            problems.append(f"{hname}: scales something other than the Deployment")

for p in problems:
    print(p)
sys.exit(1 if problems else 0)
