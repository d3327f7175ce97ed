"""The shipped deploy files executed as their engines execute them, on this machine.

Each compose service and Kubernetes container of opsite's image runs its declared command with
its declared environment (the image's ENV, then the service's or the ConfigMap's); the
database and Redis host names, which only resolve inside the deployment, stand for the test
servers. The image's file system is stood in for by a temporary directory: the directories
the Dockerfile creates, then each volume mounted over it as an empty directory (hiding what the
image had there, as a mount does). Its ports are mapped to free local ones, as a container's
own network namespace would have them. Then every healthcheck and probe runs the way the
engine runs it: compose's ``CMD`` without a shell and ``CMD-SHELL`` through ``/bin/sh -c``,
with compose's ``$$`` unescaped; the kubelet's ``httpGet`` with ``Host: <pod IP>:<port>``;
``exec`` probes without a shell. A web process must also serve ``/metrics``.
"""

from __future__ import annotations

import pytest

from tests.deploy.manifests import (
    SECRETS,
    TOKEN,
    compose_check,
    compose_healthcheck,
    compose_services,
    image_env,
    interpolate,
    k8s_containers,
    k8s_documents,
    kubelet_probe,
    make_container,
    metrics_served,
    until,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.processes,
    pytest.mark.usefixtures("needs_redis", "needs_postgres"),
]


def test_no_compose_service_inherits_a_healthcheck_that_is_not_its_own():
    services = compose_services()
    for name in ("migrate", "beat"):
        assert compose_healthcheck(services[name]) is None, f"{name} would run the image's web check"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", ["web", "ws", "worker"])
def test_each_compose_service_passes_its_own_healthcheck(name, run, tmp_path):
    service = compose_services()[name]
    env = {k: interpolate(str(v)) for k, v in service["environment"].items()}
    ports = [int(p.split(":")[-1]) for p in service.get("ports", [])]
    container = make_container(tmp_path, env, mounts=[], ports=ports)
    process = run(container, [interpolate(part) for part in service["command"]], name)
    check = compose_healthcheck(service)
    assert check is not None
    until(lambda: compose_check(container, check), f"compose {name} healthcheck", process)
    for port in ports:
        metrics_served(container, port)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("component", ["web", "ws", "worker"])
def test_each_kubernetes_container_passes_its_probes_as_the_kubelet_runs_them(component, run, tmp_path):
    config = next(d for d in k8s_documents() if d["kind"] == "ConfigMap")["data"]
    pod, spec = k8s_containers()[component]
    mounts = {m["name"]: m["mountPath"] for m in spec.get("volumeMounts", [])}
    declared = {v["name"] for v in pod.get("volumes", [])}
    assert set(mounts) <= declared, "a mount without a volume"
    env = {**config, "SECRET_KEY": SECRETS["SECRET_KEY"], "OPS_API_TOKENS": TOKEN, "DATABASE_URL": "postgres://x/y"}
    named = {p["name"]: p["containerPort"] for p in spec.get("ports", [])}
    container = make_container(tmp_path, env, mounts=list(mounts.values()), ports=list(named.values()))
    if spec.get("securityContext", {}).get("readOnlyRootFilesystem"):
        # what a process writes must lie on a volume
        for variable in ("PROMETHEUS_MULTIPROC_DIR", "OPSITE_DATA_DIR"):
            value = {**image_env(), **config}.get(variable)
            assert value and any(value == m or value.startswith(m.rstrip("/") + "/") for m in mounts.values()), (
                f"{variable}={value} is on the read-only root file system of {component}"
            )
    process = run(container, spec["command"], component)
    probes = [spec[k] for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in spec]
    assert probes, f"{component} has no probe"
    for probe in probes:
        until(lambda probe=probe: kubelet_probe(container, probe, named), f"{component} probe {probe}", process)
    for port in named.values():
        metrics_served(container, port)
