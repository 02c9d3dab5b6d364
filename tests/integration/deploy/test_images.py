"""deploy/docker: one build target per process, each running the right command as a non-root user,
exposing the port its Kubernetes container declares; and the probe the images carry answers
0 / 1 the way the health checks and the Kubernetes exec probes rely on.

No Docker engine runs here: the Dockerfile is read, not built.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.util import find_spec
from pathlib import Path

import pytest

from tests.integration.deploy.images import (
    DOCKERFILE,
    PROBE_IN_IMAGE,
    REPO,
    TARGETS,
    base_manifests,
    controlplane_variables,
    dockerfile_stages,
    effective,
    inventory_variables,
)

pytestmark = pytest.mark.integration

PROBE = REPO / "deploy" / "docker" / "httpprobe.py"
COMMANDS = {
    "app": ["python", "-m", "app.serve"],
    "worker": ["python", "-m", "app.worker"],
    "controlplane": ["controlplane", "serve"],
    "dashboards": ["python", "-m", "dashboards"],
}


def test_each_process_has_a_target_running_its_command_as_a_non_root_user() -> None:
    stages = dockerfile_stages()
    assert set(TARGETS) <= set(stages)
    for target in TARGETS:
        assert stages[target].parent == "runtime", target
        command = effective(stages, target, "CMD")
        assert command is not None, target
        assert json.loads(command) == COMMANDS[target]
        user = effective(stages, target, "USER")
        assert user == "10001:10001", f"{target} runs as {user}"
        assert effective(stages, target, "HEALTHCHECK") is not None, target
    # The default target (the last stage) is the API.
    assert list(stages)[-1] == "app"


def test_the_commands_name_modules_and_scripts_of_the_project() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert find_spec("app.serve") is not None
    assert find_spec("app.worker") is not None
    assert "controlplane" in project["scripts"]


def test_the_image_installs_every_package_of_the_project_and_the_probe() -> None:
    stages = dockerfile_stages()
    copies = [args.split() for args in stages["build"].all("COPY")]
    copied = {Path(parts[0]).as_posix().rstrip("/") for parts in copies}
    tool = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    packages = {name.rstrip("*") for name in tool["setuptools"]["packages"]["find"]["include"]}
    assert copied == packages | {"pyproject.toml", "README.md"}
    assert ["deploy/docker/httpprobe.py", PROBE_IN_IMAGE] in [
        args.split() for args in stages["runtime"].all("COPY")
    ]
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    included = {
        line[1:].rstrip("/") for line in ignore.splitlines() if line.startswith("!") and line[1:]
    }
    for source in copied | {"deploy/docker/httpprobe.py"}:
        assert (REPO / source).exists(), source
        assert source in included, f"{source} is left out of the build context"


#: Images the manifests run that are not built here, each pinned to its release.
THIRD_PARTY_IMAGES = {"quay.io/keycloak/keycloak:26.7.3"}


def test_each_kubernetes_container_runs_its_target_image_on_the_exposed_port() -> None:
    stages = dockerfile_stages()
    seen = set()
    for obj in base_manifests():
        if obj["kind"] != "Deployment":
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            if container["image"] in THIRD_PARTY_IMAGES:
                continue
            repository, _, tag = container["image"].partition(":")
            target = repository.removeprefix("inventory-slo/")
            assert target in TARGETS, container["image"]
            assert tag == "dev"
            seen.add(target)
            exposed = {int(port) for port in stages[target].all("EXPOSE")}
            declared = {port["containerPort"] for port in container.get("ports", [])}
            assert declared == exposed, target
    assert seen == set(TARGETS)


def test_settings_baked_into_the_images_are_variables_the_processes_read() -> None:
    stages = dockerfile_stages()
    known = inventory_variables() | controlplane_variables()
    baked = set()
    for target in TARGETS:
        for args in stages[target].all("ENV"):
            baked |= {pair.split("=", 1)[0] for pair in args.split()}
    ours = {name for name in baked if name.startswith(("INVENTORY_", "CONTROLPLANE_"))}
    assert ours
    assert ours - known == set()


# --- the probe ------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/ok":
            status = 200
        elif self.path == "/auth":
            status = 200 if self.headers.get("Authorization") == "Bearer s3cret" else 401
        else:
            status = 503
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def run_probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROBE), *args, "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_probe_passes_on_2xx_and_fails_with_the_reason_otherwise(server: str) -> None:
    assert run_probe(f"http://{server}/ok").returncode == 0
    down = run_probe(f"http://{server}/readyz")
    assert down.returncode == 1
    assert "HTTP 503" in down.stderr
    refused = run_probe(f"http://127.0.0.1:{closed_port()}/healthz")
    assert refused.returncode == 1
    assert refused.stderr.strip()


def test_probe_sends_the_bearer_token_from_the_file(server: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    assert run_probe(f"http://{server}/auth").returncode == 1
    assert run_probe(f"http://{server}/auth", "--token-file", str(token)).returncode == 0
    token.write_text("")
    empty = run_probe(f"http://{server}/auth", "--token-file", str(token))
    assert empty.returncode == 1
    assert "empty" in empty.stderr
    missing = run_probe(f"http://{server}/auth", "--token-file", str(tmp_path / "none"))
    assert missing.returncode == 1


def test_probe_checks_that_a_tcp_port_accepts(server: str) -> None:
    assert run_probe(f"tcp://{server}").returncode == 0
    assert run_probe(f"tcp://127.0.0.1:{closed_port()}").returncode == 1
    assert run_probe("ftp://127.0.0.1:21").returncode == 1
