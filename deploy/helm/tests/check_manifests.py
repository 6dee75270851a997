#!/usr/bin/env python3
"""Properties of the ethpipe chart's rendered manifests that a schema cannot see.

scripts/chart-check.sh renders one file per scenario (RENDER_DIR/<name>.yaml,
see SCENARIOS) and then runs:

  check_manifests.py check RENDER_DIR
      every check below on every scenario; exit 1 on any problem
  check_manifests.py self-test RENDER_DIR
      breaks the rendered manifests on purpose, one way at a time, and
      requires the check that guards that property to report it (so the
      checks are not vacuous)
  check_manifests.py inject wrong-type|unknown-field IN OUT
      a copy of IN with one schema error, for kubernetes-validate to reject
  check_manifests.py helm-args CHART < make-dry-run-output
      the chart values of `make -n kick-start` and `make -n backfill`, as
      `helm template` arguments (one per line)

Standard library and PyYAML only.
"""

import base64
import copy
import os
import re
import shlex
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
CONFIG_RS = ROOT / "crates/ethpipe/src/config.rs"
ARGS_RS = ROOT / "crates/ethpipe/src/args.rs"
CHART_YAML = ROOT / "deploy/helm/ethpipe/Chart.yaml"

ANY = object()  # matches any one argument

# The Secret-held texts the scenarios pass in (placeholders, never real keys).
PLACEHOLDER = "chart-check-placeholder"


def app_version():
    for line in CHART_YAML.read_text().splitlines():
        if line.startswith("appVersion:"):
            return line.split(":", 1)[1].strip().strip('"')
    raise SystemExit("no appVersion in Chart.yaml")


# What each scenario rendered by scripts/chart-check.sh must look like.
# Keep the two in step: the values come from ci/*.yaml and the Makefile.
SCENARIOS = {
    # `helm template ethpipe deploy/helm/ethpipe --namespace ethpipe`
    "default": dict(
        namespace="ethpipe",
        image=f"ethpipe:{app_version()}",
        source="bigquery",
        gcp=None,
        postgresql=True,
        replicas=1,
        backfill=None,
        cron=[],
        fits_minikube=True,
    ),
    # ci/full-values.yaml + --set-file gcp.key=<placeholder key file>
    "full": dict(
        namespace="ethpipe-ci",
        image="ethpipe:0.1.0-ci@sha256:" + "0123456789abcdef" * 4,
        source="bigquery",
        gcp=dict(secret="ethpipe-gcp-key", key="key.json", rendered=True),
        postgresql=True,
        replicas=2,
        backfill=dict(
            pipeline="token_transfers", start="2024-01-01", end="2024-03-31", pods=4,
            extra=["--parallel", "2", "--force", "--backfill-id", ANY],
        ),
        cron=[("token_transfers", "1"), ("tokens", "1")],
        fits_minikube=True,
        models={"token_transfers": ["010_daily_counts.sql"], "tokens": ["010_noop.sql"]},
    ),
    # ci/external-values.yaml: everything from existing Secrets
    "external": dict(
        namespace="ethpipe",
        image="registry.example.com/data/ethpipe:0.1.0",
        source="bigquery",
        gcp=dict(secret="ethpipe-gcp-key", key="service-account.json", rendered=False),
        postgresql=False,
        database_secret=("ethpipe-database", "url"),
        replicas=1,
        backfill=dict(pipeline="tokens", start="2023-06-01", end="2023-06-30", pods=3, extra=[]),
        cron=[("token_transfers", "2")],
    ),
    # ci/rpc-values.yaml: JSON-RPC, URLs as values (stored in Secrets)
    "rpc": dict(
        namespace="ethpipe",
        image=f"ethpipe:{app_version()}",
        source="rpc",
        # The JSON-RPC tuning reaches ethpipe.toml; 0 confirmations is kept (not dropped as falsy).
        toml=dict(rpc_concurrency=16, rpc_rps=25.5, rpc_batch_size=50, rpc_confirmations=0, rpc_max_addresses=200),
        gcp=None,
        postgresql=False,
        database_secret=("ethpipe-database", "database-url"),
        replicas=1,
        backfill=None,
        cron=[],
    ),
    # The values `make -n kick-start NAMESPACE=chart-check-ns` and
    # `make -n backfill FROM=2024-02-01 TO=2024-02-29 PIPELINE=tokens PARALLEL=3` pass.
    "makefile": dict(
        namespace="chart-check-ns",
        image=re.compile(r"^ethpipe:" + re.escape(app_version()) + r"-dev\.[0-9a-f]{12}$"),
        source="bigquery",
        gcp=dict(secret="ethpipe-gcp-key", key="key.json", rendered=False),
        postgresql=True,
        replicas=1,
        backfill=dict(pipeline="tokens", start="2024-02-01", end="2024-02-29", pods=3, extra=[]),
        cron=[],
        fits_minikube=True,
        service="ethpipe",
    ),
}

WORKLOADS = ("Deployment", "StatefulSet", "Job", "CronJob")


# ---------------------------------------------------------------- helpers

def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def of_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def component(doc):
    return doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def pod_spec(doc):
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def pod_meta(doc):
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"].get("metadata", {})
    return doc["spec"]["template"].get("metadata", {})


def workloads(docs):
    return [d for d in docs if d.get("kind") in WORKLOADS]


def containers(spec):
    return list(spec.get("initContainers", [])) + list(spec.get("containers", []))


# The chart's containers running ethpipe (extraInitContainers are the user's).
ETHPIPE_CONTAINERS = {"wait-for-database", "ethpipe", "backfill", "run"}


def ethpipe_containers(spec):
    return [c for c in containers(spec) if c["name"] in ETHPIPE_CONTAINERS]


def ethpipe_workloads(docs):
    return [d for d in workloads(docs) if component(d) != "postgresql"]


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def name_of(doc):
    return f'{doc["kind"]}/{doc["metadata"]["name"]}'


def secret_texts(docs):
    """Every value held in a rendered Secret, decoded."""
    texts = set()
    for secret in of_kind(docs, "Secret"):
        for value in (secret.get("data") or {}).values():
            texts.add(base64.b64decode(value).decode("utf-8", "replace"))
        for value in (secret.get("stringData") or {}).values():
            texts.add(str(value))
    return texts


def rendered_secret(docs, name):
    for secret in of_kind(docs, "Secret"):
        if secret["metadata"]["name"] == name:
            return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return None


def ethpipe_toml(docs):
    for cm in of_kind(docs, "ConfigMap"):
        if "ethpipe.toml" in cm.get("data", {}):
            return cm["data"]["ethpipe.toml"]
    return None


def struct_fields(source, struct):
    match = re.search(r"pub struct " + struct + r" \{(.*?)\n\}", source, re.S)
    if not match:
        raise SystemExit(f"struct {struct} not found in {CONFIG_RS}")
    return set(re.findall(r"pub (\w+):", match.group(1)))


# ---------------------------------------------------------------- checks
# Each takes (docs, expectations) and returns a list of problems.

def check_namespace(docs, exp):
    return [f"{name_of(d)}: namespace {d['metadata'].get('namespace')!r}, expected {exp['namespace']!r}"
            for d in docs if d["metadata"].get("namespace") != exp["namespace"]]


def image_is_pinned(image):
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    if digest:
        return re.fullmatch(r"sha256:[0-9a-f]{64}", digest) is not None and tag != "latest"
    return tag not in ("", "latest")


def check_images(docs, exp):
    problems = []
    for doc in workloads(docs):
        for c in containers(pod_spec(doc)):
            image = c.get("image", "")
            if not image_is_pinned(image):
                problems.append(f"{name_of(doc)} container {c['name']}: image {image!r} is not pinned")
            if c["name"] in ETHPIPE_CONTAINERS:
                want = exp["image"]
                ok = want.match(image) if isinstance(want, re.Pattern) else image == want
                if not ok:
                    problems.append(f"{name_of(doc)} container {c['name']}: image {image!r}, expected {want}")
    if not workloads(docs):
        problems.append("no workloads rendered")
    return problems


def check_security(docs, exp):
    """Non-root and the Pod Security Standard "restricted" for every pod."""
    problems = []
    for doc in workloads(docs):
        spec = pod_spec(doc)
        where = name_of(doc)
        psc = spec.get("securityContext") or {}
        if psc.get("runAsNonRoot") is not True:
            problems.append(f"{where}: pod runAsNonRoot is not true")
        if not isinstance(psc.get("runAsUser"), int) or psc.get("runAsUser") == 0:
            problems.append(f"{where}: pod runAsUser must be a non-zero uid")
        if (psc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where}: pod seccompProfile is not RuntimeDefault")
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(host):
                problems.append(f"{where}: {host} is set")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: automountServiceAccountToken is not false")
        for volume in spec.get("volumes", []):
            if "hostPath" in volume:
                problems.append(f"{where}: hostPath volume {volume['name']}")
        for c in containers(spec):
            sc = c.get("securityContext") or {}
            at = f"{where} container {c['name']}"
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{at}: allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{at}: readOnlyRootFilesystem is not true")
            caps = sc.get("capabilities") or {}
            if "ALL" not in (caps.get("drop") or []):
                problems.append(f"{at}: capabilities do not drop ALL")
            if caps.get("add"):
                problems.append(f"{at}: capabilities added: {caps['add']}")
            if sc.get("privileged"):
                problems.append(f"{at}: privileged")
            if sc.get("runAsUser") == 0 or sc.get("runAsNonRoot") is False:
                problems.append(f"{at}: runs as root")
    return problems


SENSITIVE_ENV = re.compile(r"PASSWORD|TOKEN|SECRET|PRIVATE|_KEY$")
URL_WITH_REF = re.compile(r"^postgres(?:ql)?://[^:/@]+:\$\((\w+)\)@[^@]+$")


def check_no_plaintext_secrets(docs, exp):
    """No Secret-held text in a ConfigMap, env value, command, argument or
    annotation; secret-looking variables and URLs only via secretKeyRef."""
    problems = []
    texts = {t for t in secret_texts(docs) if len(t) >= 6}
    texts |= {PLACEHOLDER, "PRIVATE KEY"}

    def scan(where, value):
        for text in texts:
            if text and text in str(value):
                problems.append(f"{where}: holds secret text {text[:12]!r}…")

    for cm in of_kind(docs, "ConfigMap"):
        for key, value in {**(cm.get("data") or {}), **(cm.get("binaryData") or {})}.items():
            scan(f"{name_of(cm)} key {key}", value)
            if re.search(r"postgres(?:ql)?://[^:/@\s]+:[^@\s$]+@", str(value)):
                problems.append(f"{name_of(cm)} key {key}: a database URL with a password")
    for doc in docs:
        for field in ("annotations", "labels"):
            for key, value in (doc["metadata"].get(field) or {}).items():
                scan(f"{name_of(doc)} {field} {key}", value)
    for doc in workloads(docs):
        for key, value in (pod_meta(doc).get("annotations") or {}).items():
            scan(f"{name_of(doc)} pod annotation {key}", value)
        for c in containers(pod_spec(doc)):
            at = f"{name_of(doc)} container {c['name']}"
            for part in ("command", "args"):
                for arg in c.get(part) or []:
                    scan(f"{at} {part}", arg)
            defined_from_secret = set()
            for e in c.get("env", []):
                name = e["name"]
                from_secret = "secretKeyRef" in (e.get("valueFrom") or {})
                if "value" in e:
                    scan(f"{at} env {name}", e["value"])
                if name == "GOOGLE_APPLICATION_CREDENTIALS":
                    pass  # a path; check_gcp_key_file checks it
                elif name == "ETHPIPE_DATABASE_URL":
                    if not from_secret:
                        match = URL_WITH_REF.match(str(e.get("value", "")))
                        if not match or match.group(1) not in defined_from_secret:
                            problems.append(
                                f"{at} env ETHPIPE_DATABASE_URL: neither from a Secret nor built "
                                f"from a $(VAR) set earlier from a Secret: {e.get('value')!r}")
                elif name == "ETHPIPE_RPC_URL" or SENSITIVE_ENV.search(name):
                    if not from_secret:
                        problems.append(f"{at} env {name}: not from a secretKeyRef")
                if from_secret:
                    defined_from_secret.add(name)
    return problems


def check_gcp_key_file(docs, exp):
    """The key is a file from a Secret volume; the variable holds its path."""
    problems = []
    gcp = exp["gcp"]
    for doc in ethpipe_workloads(docs):
        spec = pod_spec(doc)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in ethpipe_containers(spec):
            at = f"{name_of(doc)} container {c['name']}"
            env = env_of(c)
            var = env.get("GOOGLE_APPLICATION_CREDENTIALS")
            for e in c.get("env", []):
                ref = (e.get("valueFrom") or {}).get("secretKeyRef") or {}
                if gcp and ref.get("name") == gcp["secret"]:
                    problems.append(f"{at}: env {e['name']} holds the key itself")
            if gcp is None:
                if var is not None:
                    problems.append(f"{at}: GOOGLE_APPLICATION_CREDENTIALS set without a key")
                continue
            if var is None or "value" not in var or "valueFrom" in var:
                problems.append(f"{at}: GOOGLE_APPLICATION_CREDENTIALS is not a plain path")
                continue
            path = var["value"]
            folder, file = os.path.split(path)
            mounts = [m for m in c.get("volumeMounts", []) if m["mountPath"] == folder]
            if not mounts:
                problems.append(f"{at}: nothing mounted at {folder} for {path}")
                continue
            mount = mounts[0]
            volume = volumes.get(mount["name"], {})
            secret = volume.get("secret")
            if not secret:
                problems.append(f"{at}: {folder} is not a Secret volume")
                continue
            if secret.get("secretName") != gcp["secret"]:
                problems.append(f"{at}: key Secret {secret.get('secretName')!r}, expected {gcp['secret']!r}")
            items = {i["key"]: i["path"] for i in secret.get("items", [])}
            if items.get(gcp["key"]) != file:
                problems.append(f"{at}: Secret key {gcp['key']!r} is not mounted as {file!r}: {items}")
            if mount.get("subPath"):
                problems.append(f"{at}: the key is mounted with subPath (never updated)")
            if mount.get("readOnly") is not True:
                problems.append(f"{at}: the key mount is not readOnly")
    if gcp and gcp["rendered"]:
        data = rendered_secret(docs, gcp["secret"])
        if data is None or PLACEHOLDER not in data.get(gcp["key"], ""):
            problems.append(f"Secret {gcp['secret']} does not hold the key passed with --set-file")
    return problems


def check_server(docs, exp):
    problems = []
    deployments = [d for d in of_kind(docs, "Deployment") if component(d) == "server"]
    if len(deployments) != 1:
        return [f"{len(deployments)} server Deployments, expected 1"]
    deployment = deployments[0]
    if deployment["spec"].get("replicas") != exp["replicas"]:
        problems.append(f"replicas {deployment['spec'].get('replicas')}, expected {exp['replicas']}")
    main = pod_spec(deployment)["containers"][0]
    if main.get("args") != ["serve"]:
        problems.append(f"server args {main.get('args')}, expected ['serve']")
    env = env_of(main)
    if not str(env.get("ETHPIPE_BIND", {}).get("value", "")).endswith(":6789"):
        problems.append("ETHPIPE_BIND does not listen on port 6789")
    if "secretKeyRef" not in (env.get("ETHPIPE_API_TOKEN", {}).get("valueFrom") or {}):
        problems.append("ETHPIPE_API_TOKEN is not from a Secret (serve refuses a pod address without it)")
    ports = {p.get("name"): p.get("containerPort") for p in main.get("ports", [])}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = (main.get(probe) or {}).get("httpGet") or {}
        if get.get("path") != path:
            problems.append(f"{probe} path {get.get('path')!r}, expected {path!r}")
        if ports.get(get.get("port"), get.get("port")) != 6789:
            problems.append(f"{probe} does not probe port 6789")
    services = [s for s in of_kind(docs, "Service") if component(s) == "server"]
    if len(services) != 1:
        problems.append(f"{len(services)} server Services, expected 1")
    else:
        service = services[0]
        if exp.get("service") and service["metadata"]["name"] != exp["service"]:
            problems.append(f"Service {service['metadata']['name']!r}, expected {exp['service']!r}")
        port = service["spec"]["ports"][0]
        if port["port"] != 6789 or ports.get(port["targetPort"], port["targetPort"]) != 6789:
            problems.append(f"Service port {port}, expected 6789 -> the container's 6789")
        labels = pod_meta(deployment).get("labels", {})
        if any(labels.get(k) != v for k, v in service["spec"]["selector"].items()):
            problems.append("the Service selector does not select the server pods")
    return problems


def check_database(docs, exp):
    problems = []
    statefulsets = of_kind(docs, "StatefulSet")
    if exp["postgresql"]:
        if len(statefulsets) != 1:
            return [f"{len(statefulsets)} StatefulSets, expected the in-chart PostgreSQL"]
        sts = statefulsets[0]
        claims = sts["spec"].get("volumeClaimTemplates") or []
        if not claims or not claims[0]["spec"]["resources"]["requests"].get("storage"):
            problems.append("PostgreSQL has no PersistentVolumeClaim template")
        pg = pod_spec(sts)["containers"][0]
        ref = (env_of(pg).get("POSTGRES_PASSWORD", {}).get("valueFrom") or {}).get("secretKeyRef")
        if not ref:
            problems.append("POSTGRES_PASSWORD is not from a Secret")
        elif rendered_secret(docs, ref["name"]) is not None:
            password = rendered_secret(docs, ref["name"]).get(ref["key"], "")
            if len(password) < 16 or password in ("admin", "postgres", "password"):
                problems.append("the generated PostgreSQL password is weak")
        if claims and not any(m["name"] == claims[0]["metadata"]["name"] and
                              env_of(pg).get("PGDATA", {}).get("value", "").startswith(m["mountPath"] + "/")
                              for m in pg.get("volumeMounts", [])):
            problems.append("PGDATA is not a folder inside the persistent volume")
        service = f"{sts['metadata']['name']}.{exp['namespace']}.svc"
        for doc in ethpipe_workloads(docs):
            for c in ethpipe_containers(pod_spec(doc)):
                url = env_of(c).get("ETHPIPE_DATABASE_URL", {}).get("value", "")
                if f"@{service}:" not in url:
                    problems.append(f"{name_of(doc)} {c['name']}: database URL does not point at {service}")
    else:
        if statefulsets:
            problems.append("a StatefulSet is rendered with postgresql.enabled=false")
        name, key = exp["database_secret"]
        for doc in ethpipe_workloads(docs):
            for c in ethpipe_containers(pod_spec(doc)):
                ref = (env_of(c).get("ETHPIPE_DATABASE_URL", {}).get("valueFrom") or {}).get("secretKeyRef") or {}
                if (ref.get("name"), ref.get("key")) != (name, key):
                    problems.append(f"{name_of(doc)} {c['name']}: database URL not from Secret {name}/{key}")
    return problems


def check_backfill(docs, exp):
    jobs = of_kind(docs, "Job")
    want = exp["backfill"]
    if want is None:
        return [f"unexpected {name_of(j)}" for j in jobs]
    if len(jobs) != 1:
        return [f"{len(jobs)} Jobs, expected one backfill Job"]
    job = jobs[0]
    spec = job["spec"]
    problems = []
    if spec.get("completionMode") != "Indexed":
        problems.append(f"completionMode {spec.get('completionMode')!r}, expected 'Indexed'")
    for field in ("completions", "parallelism"):
        if spec.get(field) != want["pods"]:
            problems.append(f"{field} {spec.get(field)}, expected {want['pods']}")
    if len(job["metadata"]["name"]) > 63:
        problems.append("the Job name is longer than 63 characters")
    pod = pod_spec(job)
    if pod.get("restartPolicy") not in ("OnFailure", "Never"):
        problems.append(f"restartPolicy {pod.get('restartPolicy')!r}")
    args = pod["containers"][0].get("args") or []
    # The invocation the orchestration tests run in every worker:
    # ethpipe backfill token_transfers --from D --to D --worker
    tested = ["backfill", want["pipeline"], "--from", want["start"], "--to", want["end"], "--worker"]
    expected = tested + want["extra"]
    if len(args) != len(expected) or any(e is not ANY and a != e for a, e in zip(args, expected)):
        problems.append(f"backfill args {args}, expected {['…' if e is ANY else e for e in expected]}")
    env = env_of(pod["containers"][0])
    if "ETHPIPE_DATABASE_URL" not in env:
        problems.append("the workers have no ETHPIPE_DATABASE_URL")
    return problems


def check_cronjobs(docs, exp):
    problems = []
    cronjobs = of_kind(docs, "CronJob")
    found = []
    for cj in cronjobs:
        c = pod_spec(cj)["containers"][0]
        env = env_of(c)
        script = " ".join(c.get("command", []) + c.get("args", []))
        if 'ethpipe run "$PIPELINE" --date "$$(date -u -d "$DAY_OFFSET days ago" +%F)"' not in script:
            problems.append(f"{name_of(cj)}: does not run `ethpipe run PIPELINE --date <UTC day>`: {script!r}")
        if cj["spec"].get("concurrencyPolicy") != "Forbid":
            problems.append(f"{name_of(cj)}: concurrencyPolicy is not Forbid")
        if cj["spec"].get("timeZone") != "Etc/UTC":
            problems.append(f"{name_of(cj)}: the schedule is not in UTC")
        found.append((env.get("PIPELINE", {}).get("value"), env.get("DAY_OFFSET", {}).get("value")))
    if sorted(found) != sorted(exp["cron"]):
        problems.append(f"CronJobs load {sorted(found)}, expected {sorted(exp['cron'])}")
    text = ethpipe_toml(docs)
    if text is not None:
        for trigger in tomllib.loads(text).get("triggers", []):
            if trigger["pipeline"] in {p for p, _ in exp["cron"]} and trigger.get("active"):
                problems.append(f"trigger {trigger['name']} is active while a CronJob loads {trigger['pipeline']}")
    return problems


def check_config(docs, exp):
    """ethpipe.toml parses and holds only keys ethpipe accepts (config.rs
    denies unknown fields), and nothing secret."""
    text = ethpipe_toml(docs)
    if text is None:
        return ["no ConfigMap with ethpipe.toml"]
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        return [f"ethpipe.toml is not valid TOML: {e}"]
    source = CONFIG_RS.read_text()
    allowed = struct_fields(source, "FileConfig")
    trigger_keys = struct_fields(source, "TriggerFileConfig")
    pipeline_keys = struct_fields(source, "PipelineFileConfig")
    problems = [f"ethpipe.toml: unknown key {k!r}" for k in config if k not in allowed]
    for key in ("database_url", "rpc_url", "credentials"):
        if key in config:
            problems.append(f"ethpipe.toml: {key} belongs in a Secret or the key mount, not the ConfigMap")
    if config.get("source") != exp["source"]:
        problems.append(f"ethpipe.toml: source {config.get('source')!r}, expected {exp['source']!r}")
    for key, value in exp.get("toml", {}).items():
        if config.get(key) != value:
            problems.append(f"ethpipe.toml: {key} = {config.get(key)!r}, expected {value!r}")
    for trigger in config.get("triggers", []):
        problems += [f"trigger {trigger.get('name')}: unknown key {k!r}" for k in trigger if k not in trigger_keys]
    models = exp.get("models", {})
    for pipeline, settings in config.get("pipelines", {}).items():
        problems += [f"[pipelines.{pipeline}]: unknown key {k!r}" for k in settings if k not in pipeline_keys]
    if set(config.get("pipelines", {})) != set(models):
        problems.append(f"[pipelines.*] {sorted(config.get('pipelines', {}))}, expected {sorted(models)}")
    for doc in ethpipe_workloads(docs) if models else []:
        spec = pod_spec(doc)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in ethpipe_containers(spec):
            for pipeline, files in models.items():
                folder = config["pipelines"].get(pipeline, {}).get("models", "")
                mount = next((m for m in c.get("volumeMounts", [])
                              if folder.startswith(m["mountPath"] + "/")), None)
                if mount is None:
                    problems.append(f"{name_of(doc)} {c['name']}: models folder {folder} is not mounted")
                    continue
                items = (volumes[mount["name"]].get("configMap") or {}).get("items", [])
                paths = {i["path"] for i in items}
                relative = folder[len(mount["mountPath"]) + 1:]
                for file in files:
                    if f"{relative}/{file}" not in paths:
                        problems.append(f"{name_of(doc)} {c['name']}: model {pipeline}/{file} not mounted")
    return problems


def check_cli_flags(docs, exp):
    """Every flag the chart passes exists in ethpipe's CLI (args.rs)."""
    source = ARGS_RS.read_text()
    backfill = re.search(r"pub struct BackfillArgs \{(.*?)\n\}", source, re.S).group(1)
    run = re.search(r"pub struct RunArgs \{(.*?)\n\}", source, re.S).group(1)
    known = {"--" + f.replace("_", "-") for f in re.findall(r"pub (\w+):", backfill + run)}
    problems = []
    for doc in of_kind(docs, "Job"):
        args = pod_spec(doc)["containers"][0].get("args") or []
        for flag in (a for a in args if a.startswith("--")):
            if flag not in known:
                problems.append(f"{name_of(doc)}: ethpipe backfill has no {flag} (args.rs)")
    return problems


def cpu(value):
    value = str(value)
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)


def memory(value):
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in units.items():
        if str(value).endswith(suffix):
            return float(str(value)[: -len(suffix)]) * factor
    return float(value)


def check_resources(docs, exp):
    """Every container is bounded; the default setup fits a 4-CPU/8-GB
    minikube with room left for its own pods."""
    problems = []
    total_cpu = total_memory = 0.0
    for doc in workloads(docs):
        spec = pod_spec(doc)
        if doc["kind"] == "Job":
            pods = doc["spec"].get("parallelism", 1)
        elif doc["kind"] == "CronJob":
            pods = 1
        else:
            pods = doc["spec"].get("replicas", 1)
        for c in spec.get("containers", []):
            resources = c.get("resources") or {}
            for kind in ("requests", "limits"):
                for what in ("cpu", "memory"):
                    if what not in (resources.get(kind) or {}):
                        problems.append(f"{name_of(doc)} {c['name']}: no {kind}.{what}")
            if doc["kind"] != "CronJob":
                total_cpu += pods * cpu(resources.get("requests", {}).get("cpu", 0))
                total_memory += pods * memory(resources.get("requests", {}).get("memory", 0))
        for c in spec.get("initContainers", []):
            if not (c.get("resources") or {}).get("limits"):
                problems.append(f"{name_of(doc)} {c['name']}: no limits")
    if exp.get("fits_minikube") and (total_cpu > 3.0 or total_memory > 6 * 2**30):
        problems.append(f"requests of {total_cpu:.2f} CPU / {total_memory / 2**30:.2f} GiB "
                        "leave too little of a 4-CPU/8-GB minikube")
    return problems


CHECKS = [
    check_namespace, check_images, check_security, check_no_plaintext_secrets,
    check_gcp_key_file, check_server, check_database, check_backfill,
    check_cronjobs, check_config, check_cli_flags, check_resources,
]


def run_checks(render_dir):
    failed = passed = 0
    for scenario, exp in SCENARIOS.items():
        docs = load(Path(render_dir) / f"{scenario}.yaml")
        for check in CHECKS:
            problems = check(docs, exp)
            label = f"{scenario}: {check.__name__}"
            if problems:
                failed += 1
                print(f"FAIL {label}")
                for p in problems:
                    print(f"     {p}")
            else:
                passed += 1
                print(f"ok   {label}")
    return passed, failed


# ---------------------------------------------------------------- self-test

def first(docs, kind, comp=None):
    return next(d for d in docs if d.get("kind") == kind and (comp is None or component(d) == comp))


def server_container(docs):
    return pod_spec(first(docs, "Deployment", "server"))["containers"][0]


def set_env(container, name, entry):
    for i, e in enumerate(container["env"]):
        if e["name"] == name:
            container["env"][i] = entry
            return
    raise KeyError(name)


def pg_password(docs):
    sts = first(docs, "StatefulSet")
    ref = env_of(pod_spec(sts)["containers"][0])["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    return rendered_secret(docs, ref["name"])[ref["key"]]


def m_password_in_configmap(docs):
    cm = first(docs, "ConfigMap")
    cm["data"]["ethpipe.toml"] += f'\n# password: {pg_password(docs)}\n'


def m_password_in_url(docs):
    c = server_container(docs)
    url = env_of(c)["ETHPIPE_DATABASE_URL"]["value"]
    set_env(c, "ETHPIPE_DATABASE_URL", {"name": "ETHPIPE_DATABASE_URL",
                                         "value": url.replace("$(ETHPIPE_DATABASE_PASSWORD)", pg_password(docs))})


def m_url_with_literal_password(docs):
    c = server_container(docs)
    set_env(c, "ETHPIPE_DATABASE_URL", {"name": "ETHPIPE_DATABASE_URL",
                                         "value": "postgres://ethpipe:admin@db:5432/ethpipe"})


def m_token_as_value(docs):
    c = server_container(docs)
    set_env(c, "ETHPIPE_API_TOKEN", {"name": "ETHPIPE_API_TOKEN", "value": "hunter2hunter2"})


def m_key_as_env(docs):
    c = server_container(docs)
    secret = SCENARIOS["full"]["gcp"]["secret"]
    c["env"].append({"name": "GCP_KEY_JSON", "valueFrom": {"secretKeyRef": {"name": secret, "key": "key.json"}}})


def m_key_path_from_secret(docs):
    c = server_container(docs)
    set_env(c, "GOOGLE_APPLICATION_CREDENTIALS", {
        "name": "GOOGLE_APPLICATION_CREDENTIALS",
        "valueFrom": {"secretKeyRef": {"name": SCENARIOS["full"]["gcp"]["secret"], "key": "key.json"}}})


def m_key_not_mounted(docs):
    c = server_container(docs)
    c["volumeMounts"] = [m for m in c["volumeMounts"] if m["name"] != "gcp-key"]


def m_key_from_configmap(docs):
    spec = pod_spec(first(docs, "Deployment", "server"))
    for v in spec["volumes"]:
        if v["name"] == "gcp-key":
            v.pop("secret")
            v["configMap"] = {"name": "ethpipe-config", "items": [{"key": "key.json", "path": "key.json"}]}


def m_latest(docs):
    server_container(docs)["image"] = "ethpipe:latest"


def m_untagged(docs):
    pod_spec(first(docs, "StatefulSet"))["containers"][0]["image"] = "postgres"


def m_root(docs):
    pod_spec(first(docs, "Deployment", "server"))["securityContext"]["runAsNonRoot"] = False


def m_caps(docs):
    pod_spec(first(docs, "StatefulSet"))["containers"][0]["securityContext"]["capabilities"] = {"drop": []}


def m_writable_root(docs):
    wait = next(c for c in pod_spec(first(docs, "Job"))["initContainers"] if c["name"] == "wait-for-database")
    wait["securityContext"]["readOnlyRootFilesystem"] = False


def m_not_indexed(docs):
    first(docs, "Job")["spec"]["completionMode"] = "NonIndexed"


def m_parallelism(docs):
    first(docs, "Job")["spec"]["parallelism"] = 1


def m_no_worker(docs):
    args = pod_spec(first(docs, "Job"))["containers"][0]["args"]
    args.remove("--worker")


def m_other_range(docs):
    args = pod_spec(first(docs, "Job"))["containers"][0]["args"]
    args[args.index("--to") + 1] = "2024-12-31"


def m_unknown_flag(docs):
    pod_spec(first(docs, "Job"))["containers"][0]["args"].append("--workers")


def m_readiness_healthz(docs):
    server_container(docs)["readinessProbe"]["httpGet"]["path"] = "/healthz"


def m_service_port(docs):
    first(docs, "Service", "server")["spec"]["ports"][0]["port"] = 80


def m_toml_unknown_key(docs):
    first(docs, "ConfigMap")["data"]["ethpipe.toml"] = 'sauce = "rpc"\n' + \
        first(docs, "ConfigMap")["data"]["ethpipe.toml"]


def m_toml_database_url(docs):
    first(docs, "ConfigMap")["data"]["ethpipe.toml"] = 'database_url = "sqlite://x.db"\n' + \
        first(docs, "ConfigMap")["data"]["ethpipe.toml"]


def m_trigger_active(docs):
    cm = first(docs, "ConfigMap")
    cm["data"]["ethpipe.toml"] = cm["data"]["ethpipe.toml"].replace("active = false", "active = true")


def m_drop_cronjob(docs):
    docs.remove(first(docs, "CronJob"))


def m_namespace(docs):
    first(docs, "Service")["metadata"]["namespace"] = "default"


def m_no_limits(docs):
    pod_spec(first(docs, "Deployment", "server"))["containers"][0]["resources"].pop("limits")


def m_too_big(docs):
    first(docs, "Job")["spec"]["parallelism"] = 40


def m_no_pvc(docs):
    first(docs, "StatefulSet")["spec"].pop("volumeClaimTemplates")


# (scenario, mutation, the check that must report it)
MUTATIONS = [
    ("full", m_password_in_configmap, check_no_plaintext_secrets),
    ("full", m_password_in_url, check_no_plaintext_secrets),
    ("full", m_url_with_literal_password, check_no_plaintext_secrets),
    ("full", m_token_as_value, check_no_plaintext_secrets),
    ("full", m_key_as_env, check_gcp_key_file),
    ("full", m_key_path_from_secret, check_gcp_key_file),
    ("full", m_key_not_mounted, check_gcp_key_file),
    ("full", m_key_from_configmap, check_gcp_key_file),
    ("default", m_latest, check_images),
    ("default", m_untagged, check_images),
    ("default", m_root, check_security),
    ("default", m_caps, check_security),
    ("full", m_writable_root, check_security),
    ("full", m_not_indexed, check_backfill),
    ("full", m_parallelism, check_backfill),
    ("makefile", m_no_worker, check_backfill),
    ("makefile", m_other_range, check_backfill),
    ("makefile", m_unknown_flag, check_cli_flags),
    ("default", m_readiness_healthz, check_server),
    ("default", m_service_port, check_server),
    ("default", m_toml_unknown_key, check_config),
    ("default", m_toml_database_url, check_config),
    ("full", m_trigger_active, check_cronjobs),
    ("full", m_drop_cronjob, check_cronjobs),
    ("default", m_namespace, check_namespace),
    ("default", m_no_limits, check_resources),
    ("makefile", m_too_big, check_resources),
    ("default", m_no_pvc, check_database),
]


def self_test(render_dir):
    passed = failed = 0
    rendered = {s: load(Path(render_dir) / f"{s}.yaml") for s in SCENARIOS}
    for scenario, mutation, check in MUTATIONS:
        docs = copy.deepcopy(rendered[scenario])
        label = f"{scenario}: {check.__name__} rejects {mutation.__name__[2:]}"
        before = check(docs, SCENARIOS[scenario])
        mutation(docs)
        after = check(docs, SCENARIOS[scenario])
        if before or not after:
            failed += 1
            print(f"FAIL {label}" + (" (it failed before the mutation)" if before else " (not caught)"))
        else:
            passed += 1
            print(f"ok   {label}: {after[0]}")
    return passed, failed


# ---------------------------------------------------------------- the rest

def inject(kind, source, target):
    docs = load(source)
    deployment = first(docs, "Deployment", "server")
    if kind == "wrong-type":
        deployment["spec"]["replicas"] = "two"          # an integer field
    elif kind == "unknown-field":
        deployment["spec"]["template"]["spec"]["containers"][0]["envv"] = []
    else:
        raise SystemExit(f"unknown injection {kind}")
    with open(target, "w") as f:
        yaml.safe_dump_all(docs, f, sort_keys=False)


def helm_args(chart):
    """`helm upgrade [--install] RELEASE CHART ARGS…` lines of a make dry run,
    as `helm template` arguments: namespace and values, not cluster flags."""
    out = []
    for line in sys.stdin:
        words = shlex.split(line)
        if len(words) < 4 or not words[0].endswith("helm") or words[1] != "upgrade":
            continue
        rest = [w for w in words[2:] if w != "--install"]
        if not out:
            out += [rest[0], rest[1]]                    # release, chart
        if rest[1] != chart:
            raise SystemExit(f"make uses chart {rest[1]}, expected {chart}")
        words = iter(rest[2:])
        for word in words:
            if word in ("--wait", "--reset-then-reuse-values", "--reuse-values", "--atomic"):
                continue
            if word in ("--kube-context", "--timeout"):
                next(words)
                continue
            out.append(word)
    if not out:
        raise SystemExit("no `helm upgrade` command in the make output")
    print("\n".join(out))


def main(argv):
    if len(argv) >= 2 and argv[0] in ("check", "self-test"):
        passed, failed = (run_checks if argv[0] == "check" else self_test)(argv[1])
        print(f"{argv[0]}: {passed} passed, {failed} failed")
        return 1 if failed else 0
    if len(argv) == 4 and argv[0] == "inject":
        inject(argv[1], argv[2], argv[3])
        return 0
    if len(argv) == 2 and argv[0] == "helm-args":
        helm_args(argv[1])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
