"""Static checks of deploy/: compose and k8s manifests agree with the code they deploy.

No container engine runs in CI, so nothing here starts a container; instead every
manifest is parsed and held against the sources of truth: ``Settings`` (env names and
values, the web port), the Dockerfile (EXPOSE, CMD), the routes ``web/views.py``
serves (probes) and the files the mounts name.
"""
from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from recstream.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
WORKERS = ("worker-1", "worker-2")
SETTING_ENV = {ENV_PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}
WEB_PORT = Settings().web_port


# -- sources of truth -------------------------------------------------------------------
def served_paths() -> set[str]:
    """Paths registered with ``web.get(...)`` in web/views.py."""
    tree = ast.parse((ROOT / "web" / "views.py").read_text())
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "web"
            and node.func.attr in {"get", "post", "put", "delete"}
            and node.args and isinstance(node.args[0], ast.Constant)}


def dockerfile() -> dict[str, Any]:
    text = DOCKERFILE.read_text()
    exposed = {int(p.split("/")[0]) for line in re.findall(r"^EXPOSE\s+(.+)$", text, re.M)
               for p in line.split()}
    (cmd,) = re.findall(r"^CMD\s+(\[.*\])\s*$", text, re.M)
    env = dict(re.findall(r"(RECSTREAM_\w+)=(\S+)", text))
    return {"expose": exposed, "cmd": yaml.safe_load(cmd), "env": env}


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def k8s(kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in k8s_docs()
            if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in k8s_docs():
        if doc["kind"] in {"StatefulSet", "Deployment"}:
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            yield doc["metadata"]["name"], doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def configmap_env() -> dict[str, str]:
    (config,) = k8s("ConfigMap", "recstream-config")
    return {k: str(v) for k, v in config["data"].items()}


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The environment a container sees: ConfigMaps, then its own env, $(VAR) expanded."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] == "recstream-config"
        env.update(configmap_env())
    for item in container.get("env", []):
        value = item.get("value")
        if value is None and "secretKeyRef" in item["valueFrom"]:  # a Secret's stand-in
            value = f"secret-{item['valueFrom']['secretKeyRef']['key']}"
        elif value is None:  # fieldRef: a stand-in of the right shape
            value = {"metadata.name": "recstream-0", "metadata.namespace": "recstream"}[
                item["valueFrom"]["fieldRef"]["fieldPath"]]
        env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], value)
    return env


# -- every file parses ------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(p.relative_to(ROOT) for p in DEPLOY.rglob("*")
                                        if p.suffix in {".yml", ".yaml"}), ids=str)
def test_yaml_parses(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all((ROOT / path).read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)


# -- compose ----------------------------------------------------------------------------
def test_compose_services() -> None:
    services = compose()["services"]
    assert {"kafka", "prometheus", "grafana", "sim", "front", *WORKERS} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    env = services["kafka"]["environment"]
    assert "broker" in env["KAFKA_PROCESS_ROLES"] and "controller" in env["KAFKA_PROCESS_ROLES"]
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"


def test_compose_recstream_env_are_settings_with_valid_values() -> None:
    for name, service in compose()["services"].items():
        env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        ours = {k: v for k, v in env.items() if k.startswith(ENV_PREFIX)}
        assert set(ours) <= SETTING_ENV, (name, set(ours) - SETTING_ENV)
        if ours:
            Settings.from_env(ours)  # raises SettingsError on a bad value


def test_compose_builds_from_files_that_exist() -> None:
    for name, service in compose()["services"].items():
        if "build" not in service:
            continue
        context = (COMPOSE.parent / service["build"]["context"]).resolve()
        assert context == ROOT, name
        assert (context / service["build"]["dockerfile"]).is_file(), name


def test_compose_bind_mounts_exist_and_named_volumes_are_declared() -> None:
    spec = compose()
    declared = set(spec["volumes"])
    for name, service in spec["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith((".", "/")):
                assert (COMPOSE.parent / source).exists(), (name, source)
            else:
                assert source in declared, (name, source)


def test_compose_workers() -> None:
    services = compose()["services"]
    data_volumes = set()
    for worker in WORKERS:
        service = services[worker]
        env = Settings.from_env({k: str(v) for k, v in service["environment"].items()})
        assert env.broker == "kafka://kafka:9092"
        assert env.web_port == WEB_PORT
        # the URL the other worker forwards to is this service's own name and port
        assert env.canonical_url == f"http://{worker}:{WEB_PORT}"
        assert service.get("hostname", worker) == worker
        mounts = dict(m.split(":")[1::-1][:2] for m in service["volumes"])  # target -> source
        assert env.data_dir in mounts and env.registry_dir in mounts, worker
        data_volumes.add(mounts[env.data_dir])
        assert mounts[env.registry_dir] == "models", worker
        assert service["build"]["context"] == ".." and "command" not in service  # image CMD
        assert any(p.endswith(f":{WEB_PORT}") for p in service["ports"])
        assert services[worker]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert len(data_volumes) == len(WORKERS), "each worker needs its own data volume"
    # the retrain timer runs on exactly one of them, named by its hostname
    owners = {services[w]["environment"].get("RECSTREAM_RETRAIN_ON_WORKER") for w in WORKERS}
    assert owners <= set(WORKERS) and len(owners) == 1


def test_compose_dependencies_and_healthchecks() -> None:
    services = compose()["services"]
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        for dep, how in (service.get("depends_on") or {}).items():
            assert dep in services, (name, dep)
            assert how["condition"] in conditions
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], (name, dep)
    for worker in WORKERS:
        test = " ".join(services[worker]["healthcheck"]["test"])
        assert f"127.0.0.1:{WEB_PORT}/healthz" in test
        assert "/healthz" in served_paths()


def test_compose_simulator_uses_its_cli_flags() -> None:
    from recstream.sim.cli import build_parser

    sim = compose()["services"]["sim"]
    assert sim["command"][:2] == ["recstream", "sim"]
    args = build_parser().parse_args(sim["command"][2:])  # exits on an unknown flag
    assert args.api_port == 8080 and not args.no_kafka and not args.no_api
    front = compose()["services"]["front"]
    assert args.recommender == f"http://front:{WEB_PORT}"
    assert f"{WEB_PORT}:{WEB_PORT}" in front["ports"]


def test_front_balances_over_every_worker() -> None:
    front = compose()["services"]["front"]
    (conf,) = [m.split(":")[0] for m in front["volumes"] if m.split(":")[0].endswith(".conf")]
    text = (COMPOSE.parent / conf).read_text()
    assert set(re.findall(r"^\s*server\s+([\w-]+):(\d+)", text, re.M)) == \
        {(w, str(WEB_PORT)) for w in WORKERS}
    assert re.search(rf"^\s*listen\s+{WEB_PORT};", text, re.M)


def test_compose_prometheus_and_grafana_mount_our_files() -> None:
    services = compose()["services"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in services["prometheus"]["volumes"]}
    config_in = mounts["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load((COMPOSE.parent / config_in).read_text())
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    # every rule_files glob resolves, inside the container, to a mounted host directory
    # that holds rule files
    for pattern in config["rule_files"]:
        target = str(Path("/etc/prometheus") / pattern)
        directory, glob = target.rsplit("/", 1)
        assert directory in mounts, (pattern, mounts)
        assert list((COMPOSE.parent / mounts[directory]).glob(glob)), pattern
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    targets = {t for c in jobs["recstream-worker"]["static_configs"] for t in c["targets"]}
    assert targets == {f"{w}:{WEB_PORT}" for w in WORKERS}
    grafana = {m.split(":")[1]: m.split(":")[0] for m in services["grafana"]["volumes"]}
    provisioning = COMPOSE.parent / grafana["/etc/grafana/provisioning"]
    providers = yaml.safe_load((provisioning / "dashboards" / "recstream.yml").read_text())
    dashboards = COMPOSE.parent / grafana[providers["providers"][0]["options"]["path"]]
    assert (dashboards / "recstream.json").is_file()
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == providers["providers"][0]["options"]["path"] + "/recstream.json"


# -- Dockerfile -------------------------------------------------------------------------
def test_dockerfile_matches_settings() -> None:
    info = dockerfile()
    assert info["expose"] == {WEB_PORT}
    assert set(info["env"]) <= SETTING_ENV
    Settings.from_env(info["env"])
    assert info["cmd"][:3] == ["faust", "-A", "recstream.app"] and "worker" in info["cmd"]


# -- Kubernetes -------------------------------------------------------------------------
def test_k8s_objects_are_well_formed_and_listed_in_kustomization() -> None:
    docs = k8s_docs()
    assert docs
    for doc in docs:
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], doc
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    kinds = {d["kind"] for d in docs}
    assert {"StatefulSet", "Service", "ConfigMap", "PersistentVolumeClaim",
            "PodDisruptionBudget", "CronJob"} <= kinds


def test_k8s_selectors_match_pod_labels() -> None:
    (workers,) = k8s("StatefulSet", "recstream")
    pod_labels = workers["spec"]["template"]["metadata"]["labels"]
    selector = workers["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    for service in k8s("Service"):
        assert service["spec"]["selector"].items() <= pod_labels.items(), service
    (pdb,) = k8s("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    (job,) = k8s("CronJob")
    job_pod = job["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    # the retrain job must not receive client traffic
    for service in k8s("Service"):
        assert not service["spec"]["selector"].items() <= job_pod.items()


def test_k8s_env_names_are_settings_with_valid_values() -> None:
    assert set(configmap_env()) <= SETTING_ENV
    for name, spec in pod_specs():
        for container in spec["containers"]:
            env = container_env(container)
            ours = {k: v for k, v in env.items() if k.startswith(ENV_PREFIX)}
            assert set(ours) <= SETTING_ENV, (name, set(ours) - SETTING_ENV)
            Settings.from_env(ours)


def test_k8s_workers() -> None:
    (sts,) = k8s("StatefulSet", "recstream")
    spec = sts["spec"]
    (headless,) = [s for s in k8s("Service") if s["spec"].get("clusterIP") == "None"]
    assert spec["serviceName"] == headless["metadata"]["name"]
    assert spec["replicas"] >= 2
    assert spec["updateStrategy"]["type"] == "RollingUpdate"
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 30
    (container,) = pod["containers"]
    assert container["command"] == dockerfile()["cmd"]
    settings = Settings.from_env({k: v for k, v in container_env(container).items()
                                  if k.startswith(ENV_PREFIX)})
    # canonical URL: the pod's stable DNS name under the headless service, on the web port
    assert settings.canonical_url == (f"http://recstream-0.{headless['metadata']['name']}"
                                      f".recstream.svc.cluster.local:{settings.web_port}")
    assert settings.web_port == WEB_PORT
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": WEB_PORT}
    assert sts["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(WEB_PORT)
    # probes: liveness /healthz, readiness /readyz, both routes the web app serves
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in served_paths(), probe
        assert get["port"] in ports or get["port"] == WEB_PORT
    # RocksDB on the pod's own volume, the registry on the shared RWX claim
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    templates = {t["metadata"]["name"] for t in spec["volumeClaimTemplates"]}
    assert mounts[settings.data_dir] in templates
    volumes = {v["name"]: v for v in pod["volumes"]}
    claim = volumes[mounts[settings.registry_dir]]["persistentVolumeClaim"]["claimName"]
    (pvc,) = k8s("PersistentVolumeClaim", claim)
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def memory_bytes(text: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9, "": 1}
    number, unit = re.fullmatch(r"(\d+)([KMG]i?)?", text).groups()
    return int(number) * units[unit or ""]


def test_k8s_resources_within_the_memory_target() -> None:
    for name, spec in pod_specs():
        for container in spec["containers"]:
            resources = container["resources"]
            request = memory_bytes(resources["requests"]["memory"])
            limit = memory_bytes(resources["limits"]["memory"])
            # docs/benchmarks.md: ~350 MB RSS at 1M users; SPEC: <= 1.5 GB
            assert 350 * 10**6 <= request <= limit <= 1.5 * 2**30, name


def test_k8s_services_use_the_web_port() -> None:
    for service in k8s("Service"):
        for port in service["spec"]["ports"]:
            assert port["port"] == WEB_PORT and port["targetPort"] in ("http", WEB_PORT)


def test_k8s_retrain_cronjob() -> None:
    (job,) = k8s("CronJob", "recstream-retrain")
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["recstream", "train", "--promote"]
    settings = Settings.from_env({k: v for k, v in container_env(container).items()
                                  if k.startswith(ENV_PREFIX)})
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert settings.registry_dir in mounts and settings.data_dir in mounts
    # with the CronJob deployed, the in-worker retrain timer is off
    assert Settings.from_env(configmap_env()).retrain_every_h == 0


def test_served_paths_found() -> None:
    assert {"/healthz", "/readyz", "/metrics", "/recommend/{user_id}"} <= served_paths()


def test_readme_commands_name_files_that_exist() -> None:
    text = (DEPLOY / "README.md").read_text()
    for path in re.findall(r"deploy/[\w./-]+", text):
        assert (ROOT / path.rstrip(".")).exists(), path
    assert "docker compose -f deploy/compose.yaml" in text
    assert "kubectl apply -k deploy/k8s" in text
