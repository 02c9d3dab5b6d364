from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from controlplane.stack.errors import StackError
from controlplane.stack.runner import DEMO_PORTS, shifted_ports
from controlplane.stack.settings import StackSettings, read_versions

pytestmark = pytest.mark.unit


def test_versions_file_pins_elasticsearch_major_8_and_a_jaeger_v2_release() -> None:
    versions = read_versions()
    assert versions["ES_VERSION"].split(".")[0] == "8"
    assert versions["JAEGER_RELEASE"].startswith("v2.")
    assert len(versions["ES_SHA1"]) == 40


def test_versions_parser_ignores_comments_and_strips_quotes(tmp_path: Path) -> None:
    path = tmp_path / "versions.env"
    path.write_text('# comment\nA=1\n\nB="x y"\nnot a pair\n', encoding="utf-8")
    assert read_versions(path) == {"A": "1", "B": "x y"}


def test_environment_overrides_binary_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACK_REDIS_SERVER", "/opt/redis/bin/redis-server")
    monkeypatch.setenv("STACK_CACHE_DIR", "/srv/cache")
    settings = StackSettings()
    assert settings.redis_server == Path("/opt/redis/bin/redis-server")
    version = read_versions()["ES_VERSION"]
    assert settings.es_home() == Path(f"/srv/cache/elasticsearch-{version}")


def test_bad_heap_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACK_ELASTICSEARCH_HEAP", "lots")
    with pytest.raises(ValidationError, match="512m or 1g"):
        StackSettings()


def test_demo_ports_follow_the_design_document() -> None:
    assert DEMO_PORTS["patroni-member-1"] == {"postgres": 5432, "rest": 8008}
    assert DEMO_PORTS["patroni-member-2"] == {"postgres": 5433, "rest": 8009}
    assert DEMO_PORTS["etcd"]["client"] == 2379
    assert DEMO_PORTS["kube-etcd"]["client"] == 2381  # Kubernetes' own etcd
    assert DEMO_PORTS["redis"]["redis"] == 6379
    assert DEMO_PORTS["prometheus"]["http"] == 9090
    assert DEMO_PORTS["alertmanager"]["http"] == 9093
    assert DEMO_PORTS["elasticsearch"]["http"] == 9200
    assert DEMO_PORTS["jaeger"]["query_http"] == 16686
    assert DEMO_PORTS["jaeger"]["otlp_grpc"] == 4317
    assert DEMO_PORTS["jaeger"]["otlp_http"] == 4318
    assert DEMO_PORTS["inventory-api"]["http"] == 8000
    assert DEMO_PORTS["controlplane"]["http"] == 8080
    assert DEMO_PORTS["dashboards"]["http"] == 8050
    every = [port for ports in DEMO_PORTS.values() for port in ports.values()]
    assert len(every) == len(set(every))


def test_port_offset_moves_every_port_and_refuses_impossible_ones() -> None:
    moved = shifted_ports(10000)
    assert moved["redis"]["redis"] == 16379
    assert moved["jaeger"]["query_http"] == 26686
    with pytest.raises(StackError, match="outside 1024-65535"):
        shifted_ports(60000)
