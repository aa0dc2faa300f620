"""k8s/: every overlay renders with kustomize, every rendered object validates against the
Kubernetes schemas (kubernetes-validate), and the manifests keep the properties the services
rely on (probes, drain times, scaling limits, Ingress for Socket.IO, no committed secrets)."""

from __future__ import annotations

import copy
import re

import kubernetes_validate
import pytest
import yaml

from conftest import OVERLAYS
from rust_env import ADMIN, ALWAYS_SET, ROOT, SERVICES, vars_read_by

# The oldest Kubernetes release the manifests target, and the newest the package knows.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
PORT_VARIABLES = {"voting-api": "VOTING_API_PORT", "poll-aggregator": "POLL_AGGREGATOR_PORT",
                  "realtime-service": "REALTIME_SERVICE_PORT"}
NAMESPACES = {"dev": "pollstream-dev", "prod": "pollstream"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass"}
# The aggregator's pod names are its static group membership ids (AGGREGATOR_INSTANCE_ID), so it
# runs as a StatefulSet; the other services are Deployments.
WORKLOAD_KINDS = {"voting-api": "Deployment", "poll-aggregator": "StatefulSet",
                  "realtime-service": "Deployment"}
# What Kafka accepts as a group.instance.id (the topic-name rule), as the aggregator checks it.
INSTANCE_ID = re.compile(r"[A-Za-z0-9._-]{1,249}")


def objects(rendered, overlay, kind):
    return {o["metadata"]["name"]: o for o in rendered[overlay] if o["kind"] == kind}


def workload(rendered, overlay, name) -> dict:
    """A service's Deployment or StatefulSet (WORKLOAD_KINDS)."""
    return objects(rendered, overlay, WORKLOAD_KINDS[name])[name]


def pod_field_env(rendered_objects: list[dict]) -> set[str]:
    """Variables a workload sets from its own pod (fieldRef), which no shared ConfigMap can."""
    return {
        e["name"]
        for o in rendered_objects if o["kind"] in ("Deployment", "StatefulSet")
        for e in container(o).get("env", [])
        if "fieldRef" in e.get("valueFrom", {})
    }


def config_map(rendered, overlay) -> dict[str, str]:
    maps = [o for o in rendered[overlay] if o["kind"] == "ConfigMap"
            and o["metadata"]["name"].startswith("pollstream-config")]
    assert len(maps) == 1
    return maps[0]["data"]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def container(workload: dict) -> dict:
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1
    return containers[0]


def env_names(workload: dict, rendered_objects: list[dict], secret_keys: set[str]) -> set[str]:
    """Every variable a workload's container gets: explicit env plus envFrom sources."""
    c = container(workload)
    names = {e["name"] for e in c.get("env", [])}
    maps = {o["metadata"]["name"]: o for o in rendered_objects if o["kind"] == "ConfigMap"}
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            names |= set(maps[source["configMapRef"]["name"]]["data"])
        if "secretRef" in source:
            names |= secret_keys
    return names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders(rendered, overlay):
    kinds = {o["kind"] for o in rendered[overlay]}
    for kind in ("Namespace", "ConfigMap", "Deployment", "StatefulSet", "Service", "Ingress",
                 "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job"):
        assert kind in kinds, f"{overlay} renders no {kind}"


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_validates_against_the_kubernetes_schema(rendered, overlay, version):
    failures = []
    for obj in rendered[overlay]:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {err.message} at {list(err.path)}")
    assert not failures, "\n".join(failures)


def test_secret_template_validates(secret_template):
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(secret_template, version, strict=True)


def test_schema_check_rejects_a_broken_object(rendered):
    """Guards the check itself: an unknown field and a wrong type must both fail."""
    deployment = copy.deepcopy(objects(rendered, "prod", "Deployment")["voting-api"])
    container(deployment)["livenessProbe"]["httpGett"] = container(deployment)["livenessProbe"].pop("httpGet")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)
    deployment = copy.deepcopy(objects(rendered, "prod", "Deployment")["voting-api"])
    pod_spec(deployment)["terminationGracePeriodSeconds"] = "thirty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)
    # A Deployment's rollout field has no meaning on a StatefulSet.
    stateful = copy.deepcopy(workload(rendered, "prod", "poll-aggregator"))
    stateful["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(stateful, K8S_VERSIONS[0], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_namespaced_objects_live_in_the_overlay_namespace(rendered, overlay):
    namespaces = objects(rendered, overlay, "Namespace")
    assert list(namespaces) == [NAMESPACES[overlay]]
    for obj in rendered[overlay]:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"].get("namespace") == NAMESPACES[overlay], obj["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workloads_have_probes_resources_and_run_as_non_root(rendered, overlay):
    for name in SERVICES:
        deployment = workload(rendered, overlay, name)
        c = container(deployment)
        port_names = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert c[probe]["httpGet"]["port"] in port_names, (name, probe)
        for side in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][side]), (name, side)
        spec = pod_spec(deployment)
        assert spec["securityContext"]["runAsNonRoot"] is True
        # The image's USER (Dockerfile) is 10001.
        assert spec["securityContext"]["runAsUser"] == 10001
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert deployment["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_container_ports_match_the_configured_ports(rendered, overlay):
    config = config_map(rendered, overlay)
    for name, variable in PORT_VARIABLES.items():
        c = container(workload(rendered, overlay, name))
        assert [p["containerPort"] for p in c["ports"]] == [int(config[variable])], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_termination_grace_covers_the_drain(rendered, overlay):
    config = config_map(rendered, overlay)
    produce = int(config["KAFKA_PRODUCE_TIMEOUT_MS"]) / 1000
    for name in SERVICES:
        spec = pod_spec(workload(rendered, overlay, name))
        pre_stop = container(workload(rendered, overlay, name)).get("lifecycle", {})
        sleep = int(pre_stop.get("preStop", {}).get("exec", {}).get("command", ["sleep", "0"])[-1])
        if name == "poll-aggregator":
            needed = sleep + int(config["DRAIN_TIMEOUT_MS"]) / 1000 + produce + 5
        else:
            needed = sleep + produce + 10
        assert spec["terminationGracePeriodSeconds"] >= needed, (name, needed)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_aggregator_replicas_do_not_exceed_raw_votes_partitions(rendered, overlay):
    partitions = int(config_map(rendered, overlay)["RAW_VOTES_PARTITIONS"])
    replicas = workload(rendered, overlay, "poll-aggregator")["spec"]["replicas"]
    assert 1 <= replicas <= partitions
    targets = {h["spec"]["scaleTargetRef"]["name"] for h in objects(rendered, overlay, "HorizontalPodAutoscaler").values()}
    assert "poll-aggregator" not in targets, "an autoscaler could exceed the partitions"
    text = (ROOT / "k8s" / "base" / "poll-aggregator.yaml").read_text(encoding="utf-8")
    assert "must not exceed the partitions of raw-votes" in text


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_aggregator_is_a_statefulset_whose_pod_names_are_its_instance_ids(rendered, overlay):
    """A restarted pod rejoins Kafka under its old static member id only if it keeps its name."""
    aggregator = workload(rendered, overlay, "poll-aggregator")
    spec = aggregator["spec"]
    # Pods come back without waiting for their lower ordinals; updates go one pod at a time.
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["updateStrategy"]["type"] == "RollingUpdate"
    assert "maxUnavailable" not in spec["updateStrategy"].get("rollingUpdate", {})
    # The governing Service is headless and selects the pods.
    governing = objects(rendered, overlay, "Service")[spec["serviceName"]]
    assert governing["spec"]["clusterIP"] == "None"
    assert governing["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    env = {e["name"]: e for e in container(aggregator)["env"]}
    assert env["AGGREGATOR_INSTANCE_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # One id per pod: never a shared value from the ConfigMap.
    assert "AGGREGATOR_INSTANCE_ID" not in config_map(rendered, overlay)
    for ordinal in range(spec["replicas"]):
        assert INSTANCE_ID.fullmatch(f"{aggregator['metadata']['name']}-{ordinal}")
    assert "poll-aggregator" not in objects(rendered, overlay, "Deployment")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscalers_own_the_api_and_realtime_replica_counts(rendered, overlay):
    hpas = objects(rendered, overlay, "HorizontalPodAutoscaler")
    deployments = objects(rendered, overlay, "Deployment")
    for name in ("voting-api", "realtime-service"):
        hpa = hpas[name]
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        # A replicas field would reset the autoscaler's choice on every apply.
        assert "replicas" not in deployments[name]["spec"], name
        # Utilization targets are relative to requests.
        assert container(deployments[name])["resources"]["requests"]["cpu"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_and_services_select_the_pods(rendered, overlay):
    pdbs = objects(rendered, overlay, "PodDisruptionBudget")
    services = objects(rendered, overlay, "Service")
    for name in SERVICES:
        labels = workload(rendered, overlay, name)["spec"]["template"]["metadata"]["labels"]
        assert pdbs[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert services[name]["spec"]["selector"].items() <= labels.items()
        port_names = {p["name"] for p in container(workload(rendered, overlay, name))["ports"]}
        for port in services[name]["spec"]["ports"]:
            assert port["targetPort"] in port_names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ingress_routes_api_and_socketio_with_websocket_and_affinity(rendered, overlay):
    ingresses = objects(rendered, overlay, "Ingress")
    services = objects(rendered, overlay, "Service")
    routes = {}
    for ingress in ingresses.values():
        assert ingress["spec"]["ingressClassName"] == "nginx"
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] in services
                assert backend["port"]["name"] in {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
                routes[path["path"]] = (ingress["metadata"]["name"], backend["name"])
    assert routes["/socket.io"][1] == "realtime-service"
    assert routes["/api/v1"][1] == "voting-api"
    assert not any(p.startswith(("/metrics", "/healthz", "/readyz")) for p in routes)
    # The web app's pages and assets are voting-api's; `/` is exact, so the operational
    # endpoints stay unexposed.
    for page in ("/", "/p", "/screen", "/console", "/assets", "/favicon.svg"):
        assert routes[page][1] == "voting-api", page
    kinds = {path["path"]: path["pathType"] for ingress in ingresses.values()
             for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]}
    assert kinds["/"] == "Exact", "a `/` prefix would expose /metrics, /healthz and /readyz"

    realtime = ingresses[routes["/socket.io"][0]]["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert realtime[prefix + "affinity"] == "cookie"
    assert realtime[prefix + "session-cookie-name"]
    # An idle WebSocket must outlive nginx's 60 s default.
    assert int(realtime[prefix + "proxy-read-timeout"]) >= 600
    assert int(realtime[prefix + "proxy-send-timeout"]) >= 600
    api = ingresses[routes["/api/v1"][0]]["metadata"].get("annotations", {})
    assert prefix + "affinity" not in api, "the API is stateless: no affinity"


def test_prod_ingress_has_tls(rendered):
    for ingress in objects(rendered, "prod", "Ingress").values():
        hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
        assert hosts <= {h for tls in ingress["spec"]["tls"] for h in tls["hosts"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migration_job_runs_pollstream_admin_migrate(rendered, overlay):
    job = objects(rendered, overlay, "Job")["pollstream-migrate"]
    c = container(job)
    assert c["args"] == ["migrate"]
    assert "/admin" in c["image"]
    assert pod_spec(job)["restartPolicy"] in ("OnFailure", "Never")


def test_dev_overlay_runs_its_own_infrastructure_and_topics(rendered):
    stateful = objects(rendered, "dev", "StatefulSet")
    assert {"kafka", "postgres"} <= set(stateful)
    kafka_env = {e["name"]: e.get("value") for e in container(stateful["kafka"])["env"]}
    assert set(kafka_env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "redis" in objects(rendered, "dev", "Deployment")
    assert container(objects(rendered, "dev", "Job")["pollstream-create-topics"])["args"] == ["create-topics"]
    config = config_map(rendered, "dev")
    assert config["KAFKA_BROKERS"].split(":")[0] in objects(rendered, "dev", "Service")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned(rendered, overlay):
    for kind in ("Deployment", "StatefulSet", "Job"):
        for obj in objects(rendered, overlay, kind).values():
            image = container(obj)["image"]
            tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
            assert tag and tag != "latest", f"{obj['metadata']['name']}: {image}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_is_committed(rendered, overlay, secret_template):
    assert not objects(rendered, overlay, "Secret"), "Secrets are created by hand (secret.template.yaml)"
    base = yaml.safe_load((ROOT / "k8s" / "base" / "kustomization.yaml").read_text(encoding="utf-8"))
    assert "secret.template.yaml" not in base.get("resources", [])
    assert "REPLACE_ME" in secret_template["stringData"]["JWT_SECRET"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secret_references_exist_in_the_template(rendered, overlay, secret_template):
    keys = set(secret_template["stringData"])
    name = secret_template["metadata"]["name"]
    for kind in ("Deployment", "StatefulSet", "Job"):
        for obj in objects(rendered, overlay, kind).values():
            for env in container(obj).get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == name and ref["key"] in keys, (obj["metadata"]["name"], ref)
            for source in container(obj).get("envFrom", []):
                if "secretRef" in source:
                    assert source["secretRef"]["name"] == name
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in objects(rendered, overlay, "ConfigMap")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_variable_the_code_reads_is_set(rendered, overlay, secret_template):
    """Parses the Rust sources for the variables each binary reads (rust_env.py)."""
    secret_keys = set(secret_template["stringData"])
    config = set(config_map(rendered, overlay))
    per_pod = pod_field_env(rendered[overlay])
    everything = set().union(*(vars_read_by(p) for p in (*SERVICES, ADMIN))) | ALWAYS_SET
    unset = sorted(everything - config - secret_keys - per_pod)
    assert not unset, f"add to k8s/base/config.env (or the Secret template): {unset}"
    assert not config & secret_keys, "a variable is both in the ConfigMap and the Secret"
    assert not config & per_pod, "a variable is both in the ConfigMap and set from the pod"

    missing = {}
    for name in SERVICES:
        unset = (vars_read_by(name) | ALWAYS_SET) - env_names(workload(rendered, overlay, name), rendered[overlay], secret_keys)
        if unset:
            missing[name] = sorted(unset)
    jobs = objects(rendered, overlay, "Job")
    migrate = env_names(jobs["pollstream-migrate"], rendered[overlay], secret_keys)
    if "DATABASE_URL" not in migrate:
        missing["pollstream-migrate"] = ["DATABASE_URL"]
    if "pollstream-create-topics" in jobs:
        topics = env_names(jobs["pollstream-create-topics"], rendered[overlay], secret_keys)
        wanted = {"KAFKA_BROKERS", "RAW_VOTES_TOPIC", "POLL_UPDATES_TOPIC",
                  "RAW_VOTES_PARTITIONS", "POLL_UPDATES_PARTITIONS"} & vars_read_by(ADMIN)
        if wanted - topics:
            missing["pollstream-create-topics"] = sorted(wanted - topics)
    assert not missing, missing


def test_secrets_are_not_in_the_config_map(rendered):
    for overlay in OVERLAYS:
        config = config_map(rendered, overlay)
        for name in ("JWT_SECRET", "DATABASE_URL", "REDIS_URL", "POSTGRES_PASSWORD"):
            assert name not in config, f"{name} belongs in the Secret"
