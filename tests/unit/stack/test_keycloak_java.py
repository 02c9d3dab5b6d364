"""Which Java Keycloak runs on, and the error when there is none recent enough."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.core.processes import BackendStartError
from controlplane.stack.keycloak import Keycloak
from controlplane.stack.settings import StackSettings, find_java_home, java_feature_version


def fake_jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("#!/bin/sh\n", encoding="utf-8")
    (home / "release").write_text(f'IMPLEMENTOR="x"\nJAVA_VERSION="{version}"\n', encoding="utf-8")
    return home


def test_the_newest_java_of_at_least_the_minimum_is_chosen(tmp_path: Path) -> None:
    fake_jdk(tmp_path, "java-17-openjdk-amd64", "17.0.15")
    fake_jdk(tmp_path, "java-21-openjdk-amd64", "21.0.4")
    newest = fake_jdk(tmp_path, "temurin-25-jdk-amd64", "25.0.3")
    (tmp_path / "default-java").symlink_to(newest)

    assert java_feature_version(newest) == 25
    assert find_java_home(21, root=tmp_path) == newest
    assert find_java_home(26, root=tmp_path) is None


def test_temurin_is_preferred_at_an_equal_version(tmp_path: Path) -> None:
    fake_jdk(tmp_path, "java-21-openjdk-amd64", "21.0.4")
    temurin = fake_jdk(tmp_path, "temurin-21-jdk-amd64", "21.0.8")
    assert find_java_home(21, root=tmp_path) == temurin


def test_keycloak_refuses_an_old_java_naming_what_to_do(tmp_path: Path) -> None:
    old = fake_jdk(tmp_path, "java-17-openjdk-amd64", "17.0.15")
    backend = Keycloak(
        settings=StackSettings(keycloak_java_home=old),
        workdir=tmp_path / "kc",
        ports={"http": 1, "management": 2},
    )
    with pytest.raises(BackendStartError) as refused:
        backend.prepare()
    assert "Java >= 21" in refused.value.reason
    assert "found Java 17" in refused.value.reason
    assert "STACK_KEYCLOAK_JAVA_HOME" in refused.value.reason
