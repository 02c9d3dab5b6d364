"""Access tokens of an identity provider next to the API's own tokens: each refusal says why,
the keys are read again for a new key id at a bounded rate, groups give roles, and the audit log
names the person."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controlplane.core.oidc import (
    AccessTokenVerifier,
    ProviderMetadata,
    SigningKeys,
    TokenRejected,
)
from controlplane.core.security import Role, parse_role_groups, role_of_groups
from tests.support.token_issuer import TokenIssuer, token_issuer
from tests.unit.controlplane.conftest import Api, running_api, settings_for
from tests.unit.controlplane.test_actions_api import pending_decision

pytestmark = pytest.mark.unit


@pytest.fixture
def issuer() -> Iterator[TokenIssuer]:
    with token_issuer() as running:
        yield running


def verifier_for(issuer: TokenIssuer, *, min_refresh: float = 10.0) -> AccessTokenVerifier:
    http = httpx.Client(timeout=5)
    keys = SigningKeys(
        metadata=ProviderMetadata(issuer.issuer, http=http),
        http=http,
        min_refresh_seconds=min_refresh,
    )
    return AccessTokenVerifier(issuer=issuer.issuer, audience="controlplane-api", keys=keys)


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["groups"] = ["slo-admins"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_a_valid_token_names_the_person(issuer: TokenIssuer) -> None:
    identity = verifier_for(issuer).verify(issuer.token(groups=["slo-viewers", "other"]))
    assert (identity.subject, identity.username, identity.name) == (
        "0b6c2f6e-oscar",
        "oscar",
        "Oscar Operator",
    )
    assert identity.groups == ("slo-viewers", "other")
    assert identity.client == "inventory-console"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda i: i.token(lifetime=-5), "expired at"),
        (lambda i: i.token(issuer="http://127.0.0.1:1/realms/other"), "issued by"),
        (lambda i: i.token(audience="inventory-api"), "does not include 'controlplane-api'"),
        (lambda i: tampered(i.token()), "signature does not verify"),
        (lambda i: "not-a-jwt", "not a signed JWT"),
    ],
    ids=["expired", "other-issuer", "wrong-audience", "tampered", "garbage"],
)
def test_each_bad_token_is_refused_with_its_reason(issuer: TokenIssuer, make, reason) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TokenRejected, match=reason):
        verifier_for(issuer).verify(make(issuer))


def test_a_rotated_key_is_fetched_once_and_made_up_kids_do_not_hammer_the_provider(
    issuer: TokenIssuer,
) -> None:
    verifier = verifier_for(issuer, min_refresh=0.5)
    verifier.verify(issuer.token())
    assert issuer.jwks_reads == 1
    verifier.verify(issuer.token())
    assert issuer.jwks_reads == 1  # kept
    time.sleep(0.6)
    rotated = issuer.add_key()  # the provider rotates: a new key signs from now on
    identity = verifier.verify(issuer.token(kid=rotated))
    assert identity.username == "oscar"
    assert issuer.jwks_reads == 2
    unpublished = issuer.add_key(publish=False)
    for _ in range(20):
        with pytest.raises(TokenRejected, match="does not publish"):
            verifier.verify(issuer.token(kid=unpublished))
    assert issuer.jwks_reads <= 3  # at most one more read within the refresh interval


def test_groups_map_to_the_highest_role() -> None:
    mapping = parse_role_groups("viewer=slo-viewers,operator=slo-operators|oncall,admin=slo-admins")
    assert role_of_groups(["slo-viewers", "oncall"], mapping) is Role.OPERATOR
    assert role_of_groups(["/slo-admins"], mapping) is Role.ADMIN
    assert role_of_groups(["staff"], mapping) is None
    assert role_of_groups(None, mapping) is None
    for bad, why in (
        ("pilot=slo-pilots", "no role"),
        ("viewer", "not role=group"),
        ("viewer=a,viewer=b", "given twice"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_role_groups(bad)


@pytest.fixture
def oidc_api(tmp_path: Path, issuer: TokenIssuer) -> Iterator[Api]:
    settings = settings_for(tmp_path, identity={"oidc_issuer": issuer.issuer})
    with running_api(settings) as api:
        yield api


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_api_tokens_and_provider_tokens_both_open_the_api(
    oidc_api: Api, issuer: TokenIssuer
) -> None:
    assert oidc_api.client.get("/api/v1/me", headers=oidc_api.headers()).json()["kind"] == "token"
    me = oidc_api.client.get("/api/v1/me", headers=bearer(issuer.token())).json()
    assert me == {
        "name": "oscar",
        "role": "operator",
        "kind": "oidc",
        "subject": "0b6c2f6e-oscar",
        "username": "oscar",
        "full_name": "Oscar Operator",
        "second_factor": False,
    }


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda i: i.token(lifetime=-5), "expired"),
        (lambda i: i.token(issuer="http://127.0.0.1:1/realms/other"), "issued by"),
        (lambda i: i.token(audience=["inventory-api"]), "audience"),
        (lambda i: tampered(i.token()), "signature"),
        (lambda i: "cpt_unknown", "unknown or revoked token"),
    ],
    ids=["expired", "other-issuer", "wrong-audience", "tampered", "unknown-api-token"],
)
def test_bad_tokens_get_401_with_the_reason(
    oidc_api: Api, issuer: TokenIssuer, make, reason
) -> None:  # type: ignore[no-untyped-def]
    answer = oidc_api.client.get("/api/v1/slos", headers=bearer(make(issuer)))
    assert answer.status_code == 401
    assert reason in answer.json()["detail"]
    assert answer.headers["www-authenticate"] == "Bearer"


def test_provider_tokens_are_401_when_no_provider_is_configured(
    api: Api, issuer: TokenIssuer
) -> None:
    answer = api.client.get("/api/v1/slos", headers=bearer(issuer.token()))
    assert answer.status_code == 401


def test_a_person_without_a_mapped_group_gets_403_and_a_viewer_cannot_act(
    oidc_api: Api, issuer: TokenIssuer
) -> None:
    nobody = oidc_api.client.get("/api/v1/slos", headers=bearer(issuer.token(groups=["staff"])))
    assert nobody.status_code == 403
    assert "no role" in nobody.json()["detail"]
    vera = issuer.token(
        subject="vera-sub", username="vera", name="Vera Viewer", groups=["slo-viewers"]
    )
    assert oidc_api.client.get("/api/v1/slos", headers=bearer(vera)).status_code == 200
    flip = oidc_api.client.request(
        "PUT", "/api/v1/actions/kill-switch", json={"enabled": True}, headers=bearer(vera)
    )
    assert flip.status_code == 403
    assert "vera is viewer" in flip.json()["detail"]


def test_the_audit_log_names_the_person_who_approved_and_flipped_the_kill_switch(
    oidc_api: Api, issuer: TokenIssuer
) -> None:
    decision_id = pending_decision(oidc_api, "alert:oidc:1")
    oscar = bearer(issuer.token())
    approved = oidc_api.client.post(
        f"/api/v1/actions/{decision_id}/approve", json={"comment": "go"}, headers=oscar
    )
    assert approved.status_code == 200, approved.text
    assert "approved by oscar: go" in approved.json()["reason"]
    who = approved.json()["evidence"]["approved_by"]
    assert (who["subject"], who["preferred_username"], who["name"]) == (
        "0b6c2f6e-oscar",
        "oscar",
        "Oscar Operator",
    )
    flipped = oidc_api.client.request(
        "PUT",
        "/api/v1/actions/kill-switch",
        json={"enabled": True, "reason": "drill"},
        headers=oscar,
    )
    assert flipped.json()["changed_by"] == "oscar"
    audit = oidc_api.client.get("/api/v1/audit?action=kill_switch", headers=oscar).json()
    (entry,) = audit
    assert entry["actor"] == "operator:oscar"
    assert entry["outcome"] == "on"
    assert entry["evidence"]["requested_by"]["subject"] == "0b6c2f6e-oscar"
    token_flip = oidc_api.client.request(
        "PUT",
        "/api/v1/actions/kill-switch",
        json={"enabled": False},
        headers=oidc_api.headers(Role.OPERATOR),
    )
    assert token_flip.json()["changed_by"] == "test-operator"
    newest = oidc_api.client.get("/api/v1/audit?action=kill_switch", headers=oscar).json()[0]
    assert newest["actor"] == "operator:test-operator"
    assert newest["evidence"]["requested_by"] == {"kind": "api-token", "token": "test-operator"}


def test_an_admin_token_without_a_second_factor_gets_the_role_below_and_says_why(
    oidc_api: Api, issuer: TokenIssuer
) -> None:
    def ada(**claims: object) -> dict[str, str]:
        return bearer(
            issuer.token(
                subject="ada-sub", username="ada", name="Ada Admin", groups=["slo-admins"], **claims
            )
        )

    password_only = ada(amr=["pwd"])
    me = oidc_api.client.get("/api/v1/me", headers=password_only).json()
    assert (me["role"], me["second_factor"]) == ("operator", False)
    refused = oidc_api.client.get("/api/v1/tokens", headers=password_only)
    assert refused.status_code == 403
    assert (
        "ada is operator: their groups give admin, which needs a second factor"
        in (refused.json()["detail"])
    )
    assert oidc_api.client.get("/api/v1/tokens", headers=ada()).status_code == 403  # no amr
    assert oidc_api.client.get("/api/v1/tokens", headers=ada(amr="otp")).status_code == 403
    with_otp = ada(amr=["pwd", "otp"])
    me = oidc_api.client.get("/api/v1/me", headers=with_otp).json()
    assert (me["role"], me["second_factor"]) == ("admin", True)
    assert oidc_api.client.get("/api/v1/tokens", headers=with_otp).status_code == 200
    # Operators need no second factor: the password alone gives the operator role.
    oscar = bearer(issuer.token(amr=["pwd"]))
    assert oidc_api.client.get("/api/v1/me", headers=oscar).json()["role"] == "operator"


def test_the_second_factor_rule_follows_its_settings(tmp_path: Path, issuer: TokenIssuer) -> None:
    settings = settings_for(
        tmp_path / "operator",
        identity={
            "oidc_issuer": issuer.issuer,
            "oidc_mfa_role": "operator",
            "oidc_mfa_methods": "hwk, otp",
        },
    )
    with running_api(settings) as api:
        oscar = api.client.get("/api/v1/me", headers=bearer(issuer.token(amr=["pwd"]))).json()
        assert oscar["role"] == "viewer"
        key = api.client.get("/api/v1/me", headers=bearer(issuer.token(amr=["hwk"]))).json()
        assert key["role"] == "operator"
    off = settings_for(
        tmp_path / "none", identity={"oidc_issuer": issuer.issuer, "oidc_mfa_role": "none"}
    )
    with running_api(off) as api:
        ada = issuer.token(groups=["slo-admins"], amr=["pwd"])
        assert api.client.get("/api/v1/me", headers=bearer(ada)).json()["role"] == "admin"


@pytest.mark.parametrize(
    ("setting", "value", "why"),
    [
        ("oidc_mfa_role", "root", "no role"),
        ("oidc_mfa_methods", " , ", "at least one amr value"),
    ],
)
def test_bad_second_factor_settings_are_refused(
    tmp_path: Path, setting: str, value: str, why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        settings_for(tmp_path, identity={setting: value})
