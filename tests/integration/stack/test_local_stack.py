"""`controlplane stack up|status|down` on free ports: healthy first, then nothing left behind."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from app.core.client_auth import ClientCredentials
from controlplane.core.processes import port_is_free
from controlplane.stack.keycloak import INVENTORY_REALM, Keycloak, client_secret_file
from controlplane.stack.runner import order_for, shifted_ports
from controlplane.stack.settings import StackSettings, read_versions
from controlplane.stack.workload import TRAFFIC_CLIENT

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("controlplane"))


def free_offset() -> int:
    """An offset that moves every demo port onto a currently free port."""
    for _ in range(200):
        offset = random.randrange(10000, 29000)
        ports = [p for labels in shifted_ports(offset).values() for p in labels.values()]
        if all(port_is_free(p) for p in ports):
            return offset
    raise AssertionError("no free block of ports found")


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "stack", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def stack_home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="stack-home-"))
    home.chmod(0o755)
    yield home
    cli("down", home=home)
    subprocess.run(["rm", "-rf", str(home)], check=False)


def assert_status_healthy(home: Path, offset: int, *, kubernetes: bool = False) -> str:
    status = cli("status", home=home)
    assert status.returncode == 0, status.stdout + status.stderr
    expected = shifted_ports(offset)
    for name in order_for(kubernetes=kubernetes):
        line = next(line for line in status.stdout.splitlines() if name in line)
        if expected[name]:  # the traffic generator listens nowhere
            main_port = next(iter(expected[name].values()))
            assert f"127.0.0.1:{main_port}" in line, line
        assert "healthy" in line, line
    assert (home / "logs" / "elasticsearch.log").is_file()
    return status.stdout


def assert_console_reads_the_control_plane(home: Path, offset: int) -> None:
    """The console serves its page on the dashboards port, and its token is a viewer token of
    the stack's own control plane (it only reads; people sign in to act)."""
    ports = shifted_ports(offset)
    page = httpx.get(f"http://127.0.0.1:{ports['dashboards']['http']}/", timeout=10)
    assert page.status_code == 200
    assert "Inventory SLO console" in page.text
    token = (home / "data" / "controlplane" / "dashboards.token").read_text().strip()
    me = httpx.get(
        f"http://127.0.0.1:{ports['controlplane']['http']}/api/v1/me",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert me.status_code == 200, me.text
    assert me.json()["role"] == "viewer"


def assert_identity_provider_signs_in_with_the_stack_secrets(home: Path, offset: int) -> None:
    """Keycloak's realm ``inventory`` answers on its demo port, and the client secrets the
    stack wrote for the other processes (owner-only files) get tokens for the inventory API."""
    ports = shifted_ports(offset)["keycloak"]
    issuer = f"http://127.0.0.1:{ports['http']}/realms/inventory"
    discovery = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    assert discovery["issuer"] == issuer
    metrics = httpx.get(f"http://127.0.0.1:{ports['management']}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert "jvm_memory_used_bytes" in metrics.text  # what the stack's Prometheus scrapes
    secret_file = home / "data" / "identity" / "controlplane-probe.secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    answer = httpx.post(
        discovery["token_endpoint"],
        data={
            "grant_type": "client_credentials",
            "client_id": "controlplane-probe",
            "client_secret": secret_file.read_text().strip(),
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"].split().count("inventory:write") == 1


def api_auth(stack_home: Path, offset: int) -> ClientCredentials:
    """Tokens for the stack's inventory API, as its traffic generator gets them (the stack's
    Keycloak makes new client secrets at each start: call again after a restart)."""
    keycloak = shifted_ports(offset)[Keycloak.name]["http"]
    secret = client_secret_file(stack_home / "data" / "identity", TRAFFIC_CLIENT)
    return ClientCredentials(
        issuer=f"http://127.0.0.1:{keycloak}/realms/{INVENTORY_REALM}",
        client_id=TRAFFIC_CLIENT,
        client_secret=secret.read_text(encoding="utf-8").strip(),
    )


def assert_api_writes(api: str, auth: httpx.Auth) -> str:
    """A movement is accepted and applied by the API at ``api``; its id is returned."""
    with httpx.Client(base_url=api, timeout=10, auth=auth) as client:
        sku = client.get("/api/v1/items", params={"limit": 1}).json()["items"][0]["sku"]
        body = {"kind": "receive", "sku": sku, "warehouse": "W-NORTH", "quantity": 1}
        accepted = client.post(
            "/api/v1/movements", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        assert accepted.status_code == 202, accepted.text
        movement = str(accepted.json()["id"])
        deadline = time.monotonic() + 60
        while client.get(f"/api/v1/movements/{movement}").json()["status"] != "applied":
            assert time.monotonic() < deadline, f"movement {movement} was not applied"
            time.sleep(0.5)
    return movement


def wait_for_items(api: str, auth: httpx.Auth) -> None:
    deadline = time.monotonic() + 60  # the demo traffic creates the items first
    while not httpx.get(f"{api}/api/v1/items", timeout=5, auth=auth).json()["items"]:
        assert time.monotonic() < deadline, "the demo traffic created no items"
        time.sleep(1)


def database_members(status: str) -> dict[str, tuple[str, str]]:
    """member → (role, state) from the Patroni table of ``stack status``."""
    found = {}
    for line in status.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if len(cells) == 7 and cells[0].startswith("member-"):
            found[cells[0]] = (cells[3], cells[4])
    return found


def on_every_member(offset: int, movement: str) -> list[int]:
    """The members' ports whose PostgreSQL has the movement ``movement``."""
    ports = shifted_ports(offset)
    having = []
    for member in ("patroni-member-1", "patroni-member-2"):
        port = ports[member]["postgres"]
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{port}/inventory", autocommit=True
        ) as conn:
            row = conn.execute("SELECT 1 FROM movements WHERE id = %s", (movement,)).fetchone()
        if row is not None:
            having.append(port)
    return having


def test_up_status_down_leaves_no_process(stack_home: Path) -> None:
    """etcd and two Patroni members come up with the rest; status names the leader and its
    synchronous standby; the API writes through its multi-host string and the write is on
    both members; down leaves no process."""
    offset = free_offset()
    up = subprocess.run(
        [CLI, "stack", "up", "--home", str(stack_home), "--port-offset", str(offset)],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    status = assert_status_healthy(stack_home, offset)
    roles = database_members(status)
    assert sorted(roles.values()) == [("leader", "running"), ("sync_standby", "streaming")]
    assert_console_reads_the_control_plane(stack_home, offset)
    assert_identity_provider_signs_in_with_the_stack_secrets(stack_home, offset)
    api = f"http://127.0.0.1:{shifted_ports(offset)['inventory-api']['http']}"
    assert httpx.get(f"{api}/api/v1/items", timeout=5).status_code == 401  # callers sign in
    auth = api_auth(stack_home, offset)
    wait_for_items(api, auth)
    movement = assert_api_writes(api, auth)
    ports = shifted_ports(offset)
    both = [ports["patroni-member-1"]["postgres"], ports["patroni-member-2"]["postgres"]]
    deadline = time.monotonic() + 10  # the standby replays what it has acknowledged
    while (having := on_every_member(offset, movement)) != both and time.monotonic() < deadline:
        time.sleep(0.25)
    assert having == both
    again = cli("up", home=stack_home)
    assert again.returncode == 1
    assert "already running" in again.stderr

    down = cli("down", home=stack_home)
    assert down.returncode == 0, down.stdout + down.stderr
    assert processes_mentioning(str(stack_home)) == []
    stopped = cli("status", home=stack_home)
    assert stopped.returncode == 1
    assert "stopped" in stopped.stdout


def foreground_stack(home: Path, offset: int) -> subprocess.Popen[str]:
    """`make demo`: a foreground stack, returned once every backend is healthy."""
    runner = subprocess.Popen(
        [CLI, "stack", "up", "--foreground", "--home", str(home), "--port-offset", str(offset)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    deadline = time.monotonic() + 300
    while cli("status", home=home).returncode != 0:
        if runner.poll() is not None or time.monotonic() > deadline:
            runner.kill()
            output, _ = runner.communicate()
            raise AssertionError(f"stack did not become healthy:\n{output}")
        time.sleep(1)
    return runner


def test_foreground_stack_stops_everything_on_ctrl_c(stack_home: Path) -> None:
    offset = free_offset()
    runner = foreground_stack(stack_home, offset)
    try:
        assert_status_healthy(stack_home, offset)
        runner.send_signal(signal.SIGINT)
        output, _ = runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 0, output
    assert "stopping the local stack" in output
    assert processes_mentioning(str(stack_home)) == []


def test_foreground_stack_exits_when_stopped_from_another_terminal(stack_home: Path) -> None:
    """`make demo` in one terminal, `make demo-down` in another: the first one notices, says
    so and exits 0 instead of waiting for a Ctrl-C that has nothing left to stop."""
    runner = foreground_stack(stack_home, free_offset())
    try:
        down = cli("down", home=stack_home)
        assert down.returncode == 0, down.stdout + down.stderr
        output, _ = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 0, output
    assert "the local stack was stopped from elsewhere" in output
    assert processes_mentioning(str(stack_home)) == []


#: kubectl output format: "name=min-max " per HPA.
HPA_BOUNDS = (
    "jsonpath={range .items[*]}{.metadata.name}={.spec.minReplicas}-{.spec.maxReplicas} {end}"
)


def test_stack_with_kubernetes_deploys_the_manifests_and_the_control_plane_reads_the_cluster(
    stack_home: Path,
) -> None:
    """`make demo KUBERNETES=1`: the cluster runs beside the rest, deploy/k8s is rolled out on
    it, the user's kubeconfig works, and the control plane reads the Deployments and HPAs with
    its ServiceAccount's token (deploy/k8s's Role)."""
    offset = free_offset()
    up = subprocess.run(
        [
            CLI,
            "stack",
            "up",
            "--kubernetes",
            "--home",
            str(stack_home),
            "--port-offset",
            f"{offset}",
        ],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert up.returncode == 0, up.stdout + up.stderr
    status = assert_status_healthy(stack_home, offset, kubernetes=True)
    apiserver = next(line for line in status.splitlines() if "kube-apiserver" in line)
    assert f"Kubernetes {read_versions()['K8S_VERSION']}" in apiserver
    kubeconfig = stack_home / "kubeconfig"
    assert f"kubeconfig: {kubeconfig}" in status
    kubectl = StackSettings().kubernetes_binary("kubectl", "K8S_VERSION")
    listed = subprocess.run(
        [
            str(kubectl),
            f"--kubeconfig={kubeconfig}",
            "get",
            "hpa",
            "-n",
            "inventory",
            "-o",
            HPA_BOUNDS,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) == {
        "inventory=3-20",
        "demand-planning=2-10",
        "analytics=2-8",
    }
    token = (stack_home / "admin.token").read_text().strip()
    capacity = httpx.get(
        f"http://127.0.0.1:{shifted_ports(offset)['controlplane']['http']}/api/v1/capacity",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert capacity.status_code == 200, capacity.text
    body = capacity.json()
    assert body["error"] is None
    live = {s["service"]: s["live"] for s in body["services"]}
    assert live["inventory"]["has_autoscalers"] is True
    assert live["inventory"]["autoscaler"]["min_replicas"] == 3
    assert live["inventory"]["ready_replicas"] == 3
    assert live["analytics"]["autoscaler"]["max_replicas"] == 8

    down = cli("down", home=stack_home)
    assert down.returncode == 0, down.stdout + down.stderr
    assert processes_mentioning(str(stack_home)) == []
