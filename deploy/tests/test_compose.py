"""docker-compose.yml: valid against the Compose Specification, and a stack that comes up in
the right order (healthchecks, depends_on conditions, one-shot jobs) with everything the
services read."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

from compose_file import (
    InterpolationError,
    compose_spec_schema,
    duration_seconds,
    environment,
    interpolate,
    interpolate_string,
)
from rust_env import ADMIN, ALWAYS_SET, ROOT, SERVICES, vars_read_by

# What `docker compose up` sees on a laptop where only the required secret is exported.
HOST_ENV = {"JWT_SECRET": "x" * 48}
INFRASTRUCTURE = ("kafka", "postgres", "redis")
ONE_SHOT = {"kafka-init": "create-topics", "migrate": "migrate"}
OBSERVABILITY = ("otel-collector", "jaeger", "prometheus")


@pytest.fixture(scope="module")
def compose(compose_raw) -> dict:
    return interpolate(compose_raw, HOST_ENV)


def default_services(compose: dict) -> dict[str, dict]:
    return {n: s for n, s in compose["services"].items() if not s.get("profiles")}


def test_interpolation_helper_follows_the_spec():
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate_string("$${X} ${SET} $SET ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d}", env) == "${X} v v d d "
    assert interpolate_string("${SET:+alt}${UNSET:+alt}", env) == "alt"
    with pytest.raises(InterpolationError, match="boom"):
        interpolate_string("${EMPTY:?boom}", env)


def test_compose_file_validates_against_the_compose_specification(compose_raw, compose):
    schema = compose_spec_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    for label, document in (("as written", compose_raw), ("interpolated", compose)):
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        assert not errors, f"{label}: " + "\n".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
        )


def test_schema_check_rejects_a_broken_file(compose):
    """Guards the check itself: a misspelt key must fail validation."""
    broken = yaml.safe_load(yaml.safe_dump(compose))
    broken["services"]["voting-api"]["depends_onn"] = broken["services"]["voting-api"].pop("depends_on")
    schema = compose_spec_schema()
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))


def test_jwt_secret_must_come_from_the_environment(compose_raw):
    with pytest.raises(InterpolationError, match="JWT_SECRET"):
        interpolate(compose_raw, {})
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert re.search(r"JWT_SECRET: \$\{JWT_SECRET:\?[^}]+\}", text), "JWT_SECRET must use ${JWT_SECRET:?message}"


def test_kafka_runs_in_kraft_mode_without_zookeeper(compose):
    assert not any("zookeeper" in name for name in compose["services"])
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "KAFKA_CONTROLLER_QUORUM_VOTERS" in env
    assert not any(name.startswith("KAFKA_ZOOKEEPER") for name in env)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", "topics come from kafka-init"
    # The in-network listener is the one the services are given.
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "PLAINTEXT://kafka:9092" in advertised
    for service in SERVICES:
        assert environment(compose["services"][service])["KAFKA_BROKERS"] == "kafka:9092"
    # The host listener is advertised on the port that is published.
    host = next(a for a in advertised if a.startswith("HOST://"))
    published = [p for p in kafka["ports"] if p.endswith(":19092")]
    assert published and published[0].split(":")[1] == host.rsplit(":", 1)[1]


def test_infrastructure_images_and_healthchecks(compose):
    assert compose["services"]["postgres"]["image"].startswith("postgres:15")
    assert compose["services"]["redis"]["image"].startswith("redis:7")
    for name in INFRASTRUCTURE:
        check = compose["services"][name].get("healthcheck")
        assert check and check.get("test"), f"{name} needs a healthcheck (others wait on it)"


def test_one_shot_jobs_run_pollstream_admin(compose):
    for name, command in ONE_SHOT.items():
        service = compose["services"][name]
        assert service["build"]["target"] == "admin"
        assert service["command"] == [command]
        assert service.get("restart", "no") == "no", f"{name} must not restart after it succeeded"
    env = environment(compose["services"]["kafka-init"])
    assert int(env["RAW_VOTES_PARTITIONS"]) >= 1 and int(env["POLL_UPDATES_PARTITIONS"]) >= 1


def test_services_wait_for_infrastructure_topics_and_schema(compose):
    for name in SERVICES:
        depends = compose["services"][name]["depends_on"]
        for infra in INFRASTRUCTURE:
            assert depends[infra]["condition"] == "service_healthy", (name, infra)
        for job in ONE_SHOT:
            assert depends[job]["condition"] == "service_completed_successfully", (name, job)


def test_every_dependency_condition_is_satisfiable(compose):
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert services[target].get("healthcheck"), f"{name} waits for {target}'s health, which has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no"
            # A service that is always started cannot wait for one behind a profile.
            if not service.get("profiles"):
                assert not services[target].get("profiles"), f"{name} depends on profiled {target}"


def test_services_have_readiness_healthchecks_on_their_own_port(compose):
    ports = {"voting-api": "VOTING_API_PORT", "poll-aggregator": "POLL_AGGREGATOR_PORT",
             "realtime-service": "REALTIME_SERVICE_PORT"}
    for name, variable in ports.items():
        service = compose["services"][name]
        port = environment(service)[variable]
        test = " ".join(service["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/readyz" in test, (name, test)
        assert any(p.split(":")[-1] == port for p in service["ports"]), (name, service["ports"])
        assert service["build"]["target"] == name
        assert service.get("restart") in ("unless-stopped", "always", "on-failure")


def test_stop_grace_periods_cover_the_drain(compose):
    for name in SERVICES:
        service = compose["services"][name]
        env = environment(service)
        produce = int(env["KAFKA_PRODUCE_TIMEOUT_MS"]) / 1000
        needed = produce + 10  # in-flight requests or socket close, plus the producer flush
        if name == "poll-aggregator":
            needed = int(env["DRAIN_TIMEOUT_MS"]) / 1000 + produce + 5
        grace = duration_seconds(service["stop_grace_period"])
        assert grace >= needed, f"{name}: stop_grace_period {grace}s < {needed}s of drain"


def test_aggregator_has_a_static_instance_id_and_one_replica(compose):
    """A fixed AGGREGATOR_INSTANCE_ID: restarted after a crash, the aggregator takes its Kafka
    partitions back at once. Fixed is safe only while one replica runs (Kafka fences the older of
    two members sharing an id): its host port is published, and nothing scales it."""
    aggregator = compose["services"]["poll-aggregator"]
    instance_id = environment(aggregator).get("AGGREGATOR_INSTANCE_ID", "")
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,249}", instance_id), instance_id
    assert aggregator.get("deploy", {}).get("replicas", 1) == 1
    assert any(p.split(":")[-1] == environment(aggregator)["POLL_AGGREGATOR_PORT"] for p in aggregator["ports"])
    for name, service in compose["services"].items():
        if name != "poll-aggregator":
            assert "AGGREGATOR_INSTANCE_ID" not in environment(service), name


def test_postgres_credentials_match_database_url(compose):
    postgres = environment(compose["services"]["postgres"])
    for name in (*SERVICES, "migrate"):
        url = urlparse(environment(compose["services"][name])["DATABASE_URL"])
        assert (url.hostname, url.port) == ("postgres", 5432)
        assert url.username == postgres["POSTGRES_USER"]
        assert url.password == postgres["POSTGRES_PASSWORD"]
        assert url.path.lstrip("/") == postgres["POSTGRES_DB"]


def test_every_variable_the_code_reads_is_set(compose):
    """Parses the Rust sources for the variables each binary reads (rust_env.py)."""
    missing = {}
    for name in SERVICES:
        wanted = vars_read_by(name) | ALWAYS_SET
        unset = wanted - set(environment(compose["services"][name]))
        if unset:
            missing[name] = sorted(unset)
    # The admin jobs: JWT_* is read only by `pollstream-admin token`, which compose never runs.
    admin = {v for v in vars_read_by(ADMIN) if not v.startswith("JWT_")}
    jobs = set().union(*(environment(compose["services"][job]) for job in ONE_SHOT))
    if admin - jobs:
        missing["kafka-init + migrate"] = sorted(admin - jobs)
    assert not missing, f"set these in docker-compose.yml: {missing}"


def test_observability_profile(compose):
    services = compose["services"]
    for name in OBSERVABILITY:
        assert services[name].get("profiles") == ["observability"], name
    assert "observability" not in {p for s in default_services(compose).values() for p in s.get("profiles", [])}
    # The collector forwards traces to the viewer, which must be a service of the stack.
    collector = yaml.safe_load((ROOT / "deploy" / "otel-collector.yaml").read_text(encoding="utf-8"))
    pipelines = collector["service"]["pipelines"]
    assert "traces" in pipelines
    for pipeline in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in collector[kind], f"{kind} {component} is not defined"
    for exporter in collector["exporters"].values():
        if isinstance(exporter, dict) and "endpoint" in exporter:
            host = exporter["endpoint"].split("://")[-1].split(":")[0]
            assert host in services, f"collector exports to unknown host {host}"
    mounted = [v for v in services["otel-collector"]["volumes"] if "otel-collector.yaml" in v]
    assert mounted and (ROOT / mounted[0].split(":")[0]).resolve().exists()


def test_prometheus_scrapes_the_three_services(compose):
    services = compose["services"]
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {
        target
        for job in config["scrape_configs"]
        if job.get("metrics_path", "/metrics") == "/metrics"
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    ports = {"voting-api": "VOTING_API_PORT", "poll-aggregator": "POLL_AGGREGATOR_PORT",
             "realtime-service": "REALTIME_SERVICE_PORT"}
    for name, variable in ports.items():
        assert f"{name}:{environment(services[name])[variable]}" in targets, name
    mounted = [v for v in services["prometheus"]["volumes"] if "prometheus.yml" in v]
    assert mounted and (ROOT / mounted[0].split(":")[0]).resolve().exists()


def test_build_targets_exist_in_the_dockerfile(compose):
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M | re.I))
    for name, service in compose["services"].items():
        if "build" in service:
            assert service["build"]["target"] in stages, name
            assert service["build"].get("context", ".") == "."


def test_web_app_is_served_and_reaches_realtime_service(compose):
    api = environment(compose["services"]["voting-api"])
    realtime = environment(compose["services"]["realtime-service"])
    assert api["WEB_DIR"].startswith("/"), api["WEB_DIR"]
    public = api["REALTIME_PUBLIC_URL"]
    assert public.endswith(":3003}") or public.endswith(":3003"), public
    assert "3003:3003" in compose["services"]["realtime-service"]["ports"]
    assert "http://localhost:3001" in realtime["REALTIME_ALLOWED_ORIGINS"]
