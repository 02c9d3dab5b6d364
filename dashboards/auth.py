"""Sign-in to the console through OpenID Connect (authorization code with PKCE S256).

Authlib's Flask client does the protocol (state, nonce, PKCE, the ID token's checks); this module
keeps who signed in. The browser's cookie (Flask's session: signed, HttpOnly, SameSite=Lax)
holds only a random session id; the person's tokens stay on the server, in memory. A session
ends at ``DASHBOARDS_SESSION_MAX_AGE_SECONDS`` after sign-in, or earlier when the provider's own
session ends (its refresh token expires or a refresh is refused), or on sign-out, which also ends
the provider's session (its ``end_session_endpoint``). The access token is renewed with the
refresh token before it expires (:meth:`Person.renew_at`) on the next request that needs the
person; a refused renewal ends the console session.

A person's role comes from their ``groups``; the role ``DASHBOARDS_MFA_ROLE`` (admin) is given
only when the ID token's ``amr`` names a second factor (``DASHBOARDS_MFA_METHODS``), else the
role below it, as the control plane does with the access token.

Routes: ``GET /auth/login?next=/alerts``, ``GET /auth/callback`` (the redirect URI registered at
the provider), ``POST /auth/logout``.

Operator actions of the console are made with the signed-in person's access token
(:meth:`ConsoleAuth.person_client`), so the control plane decides and its audit log names the
person; the console's own token only reads.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode, urlsplit

import flask
import httpx
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth

from controlplane.client.http import ControlPlaneClient
from controlplane.core.security import Role, RoleGroups, passed_mfa, role_of_groups, role_with_mfa

__all__ = ["ConsoleAuth", "Person"]

logger = logging.getLogger(__name__)

SESSION_KEY = "console_sid"
NEXT_KEY = "console_next"
PROVIDER = "provider"
#: Renew the access token this long before it expires (at most half its lifetime before).
RENEW_BEFORE_SECONDS = 20.0


@dataclass(frozen=True)
class Person:
    """A signed-in person: who the provider says they are and their tokens."""

    subject: str
    username: str | None
    name: str | None
    groups: tuple[str, ...]
    role: Role | None
    access_token: str
    access_expires_at: float
    refresh_token: str | None
    refresh_expires_at: float | None
    id_token: str | None
    #: The session ends at this time whatever happens (sign-in + the maximum age).
    ends_at: float
    #: Whether the ID token's ``amr`` names a second factor (see ``DASHBOARDS_MFA_METHODS``).
    second_factor: bool = False
    #: The role the groups give, before the second-factor rule lowered it to ``role``.
    group_role: Role | None = None
    #: When the current access token was obtained (its lifetime: ``access_expires_at`` - this).
    access_issued_at: float | None = None

    @property
    def label(self) -> str:
        return self.name or self.username or self.subject

    @property
    def needs_second_factor(self) -> bool:
        """The groups give a higher role than ``role``: it needs a sign-in with a second
        factor (e.g. the sign-in that set the one-time code up did not pass one)."""
        return self.group_role is not None and self.group_role != self.role

    @property
    def is_operator(self) -> bool:
        return self.role is not None and self.role.allows(Role.OPERATOR)

    def renew_at(self) -> float:
        """When to renew the access token: :data:`RENEW_BEFORE_SECONDS` before it expires, or
        halfway through its lifetime when it lives shorter than twice that."""
        margin = RENEW_BEFORE_SECONDS
        if self.access_issued_at is not None:
            margin = min(margin, (self.access_expires_at - self.access_issued_at) / 2)
        return self.access_expires_at - margin

    def expires_at(self) -> float:
        """When the console session ends: its maximum age, or the provider session's end."""
        if self.refresh_expires_at is not None:
            return min(self.ends_at, self.refresh_expires_at)
        if self.refresh_token is not None:
            return self.ends_at
        return min(self.ends_at, self.access_expires_at)


def _safe_next(value: str | None) -> str:
    """A path on this console to return to after sign-in (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class ConsoleAuth:
    """The console's sign-in: Flask routes, the server-side sessions, role of a person."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        scope: str,
        role_groups: RoleGroups,
        max_age_seconds: float,
        mfa_role: Role | None = Role.ADMIN,
        mfa_methods: tuple[str, ...] = ("otp",),
        control_plane_url: str,
        request_timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self.role_groups = role_groups
        self.mfa_role = mfa_role
        self.mfa_methods = mfa_methods
        self.max_age_seconds = max_age_seconds
        self.control_plane_url = control_plane_url
        self.request_timeout = request_timeout
        self._clock = clock
        self._sessions: dict[str, Person] = {}
        self._lock = threading.Lock()
        self._oauth = OAuth()
        self._provider: Any = None

    # -- Flask ---------------------------------------------------------------------------------
    def install(self, server: flask.Flask, *, secret: str, secure_cookie: bool) -> None:
        server.secret_key = secret
        server.config.update(
            SESSION_COOKIE_NAME="console_session",
            SESSION_COOKIE_HTTPONLY=True,
            SESSION_COOKIE_SAMESITE="Lax",
            SESSION_COOKIE_SECURE=secure_cookie,
            PERMANENT_SESSION_LIFETIME=int(self.max_age_seconds),
        )
        self._oauth.init_app(server)
        self._provider = self._oauth.register(
            PROVIDER,
            client_id=self.client_id,
            client_secret=self._client_secret,
            server_metadata_url=f"{self.issuer}/.well-known/openid-configuration",
            client_kwargs={"scope": self.scope, "code_challenge_method": "S256"},
        )
        server.add_url_rule("/auth/login", "auth_login", self._login, methods=["GET"])
        server.add_url_rule("/auth/callback", "auth_callback", self._callback, methods=["GET"])
        server.add_url_rule("/auth/logout", "auth_logout", self._logout, methods=["POST"])

    def _login(self) -> Any:
        flask.session[NEXT_KEY] = _safe_next(flask.request.args.get("next"))
        redirect_uri = flask.url_for("auth_callback", _external=True)
        return self._provider.authorize_redirect(redirect_uri)

    def _callback(self) -> Any:
        try:
            token = self._provider.authorize_access_token()
        except (OAuthError, httpx.HTTPError, ValueError) as exc:
            logger.warning("sign-in failed: %s", exc)
            return flask.Response(
                f"sign-in failed: {exc}", status=400, content_type="text/plain; charset=utf-8"
            )
        now = self._clock()
        person = self._person_from(token, now=now, ends_at=now + self.max_age_seconds)
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._prune(now)
            self._sessions[sid] = person
        next_path = _safe_next(flask.session.pop(NEXT_KEY, None))
        flask.session.clear()
        flask.session.permanent = True
        flask.session[SESSION_KEY] = sid
        logger.info("%s signed in (%s)", person.label, person.role or "no role")
        return flask.redirect(next_path)

    def _logout(self) -> Any:
        sid = flask.session.get(SESSION_KEY)
        with self._lock:
            person = self._sessions.pop(sid, None) if isinstance(sid, str) else None
        flask.session.clear()
        home = flask.request.host_url  # the console's root, where the provider sends us back
        if person is None:
            return flask.redirect("/")
        try:
            end_session = self._provider.load_server_metadata().get("end_session_endpoint")
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("cannot read the provider's end_session_endpoint: %s", exc)
            end_session = None
        if not end_session:
            return flask.redirect("/")
        query = {"client_id": self.client_id, "post_logout_redirect_uri": home}
        if person.id_token:
            query["id_token_hint"] = person.id_token
        return flask.redirect(f"{end_session}?{urlencode(query)}")

    # -- sessions ------------------------------------------------------------------------------
    def _person_from(self, token: dict[str, Any], *, now: float, ends_at: float) -> Person:
        claims = token.get("userinfo") or {}
        groups = claims.get("groups")
        amr = claims.get("amr")
        refresh_in = token.get("refresh_expires_in")
        group_role = role_of_groups(groups, self.role_groups)
        return Person(
            subject=str(claims.get("sub", "")),
            username=claims.get("preferred_username"),
            name=claims.get("name"),
            groups=tuple(str(g).lstrip("/") for g in groups) if isinstance(groups, list) else (),
            # The control plane applies the same rule to the access token (it decides).
            role=role_with_mfa(group_role, amr, mfa_role=self.mfa_role, methods=self.mfa_methods),
            second_factor=passed_mfa(amr, self.mfa_methods),
            group_role=group_role,
            access_issued_at=now,
            access_token=str(token["access_token"]),
            access_expires_at=float(token.get("expires_at") or now + float(token["expires_in"])),
            refresh_token=token.get("refresh_token"),
            # Keycloak: 0 means the refresh token lives as long as the SSO session allows.
            refresh_expires_at=now + float(refresh_in) if refresh_in else None,
            id_token=token.get("id_token"),
            ends_at=ends_at,
        )

    def _prune(self, now: float) -> None:
        for sid in [s for s, p in self._sessions.items() if p.expires_at() <= now]:
            del self._sessions[sid]

    def _refresh(self, person: Person, now: float) -> Person | None:
        if person.refresh_token is None:
            return None
        try:
            endpoint = self._provider.load_server_metadata()["token_endpoint"]
            answer = httpx.post(
                endpoint,
                data={"grant_type": "refresh_token", "refresh_token": person.refresh_token},
                auth=(self.client_id, self._client_secret),
                timeout=self.request_timeout,
            )
        except (httpx.HTTPError, KeyError) as exc:
            logger.warning("cannot renew %s's access token: %s", person.label, exc)
            return None
        if answer.status_code != 200:
            logger.info("the provider ended %s's session (%s)", person.label, answer.status_code)
            return None
        token = answer.json()
        refresh_in = token.get("refresh_expires_in")
        return replace(
            person,
            access_token=str(token["access_token"]),
            access_issued_at=now,
            access_expires_at=now + float(token["expires_in"]),
            refresh_token=token.get("refresh_token", person.refresh_token),
            refresh_expires_at=now + float(refresh_in) if refresh_in else None,
            id_token=token.get("id_token", person.id_token),
        )

    def person(self) -> Person | None:
        """The person signed in on the current request's session, their access token renewed
        when it is about to expire; None when nobody is (or the session ended)."""
        if not flask.has_request_context():
            return None
        sid = flask.session.get(SESSION_KEY)
        if not isinstance(sid, str):
            return None
        now = self._clock()
        with self._lock:
            person = self._sessions.get(sid)
        if person is None or person.expires_at() <= now:
            self._end(sid)
            return None
        if person.renew_at() <= now:
            renewed = self._refresh(person, now)
            if renewed is None or renewed.expires_at() <= now:
                self._end(sid)
                return None
            with self._lock:
                self._sessions[sid] = renewed
            person = renewed
        return person

    def _end(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def person_client(self, person: Person) -> ControlPlaneClient:
        """A client of the control plane that calls it as ``person`` (close it after use)."""
        return ControlPlaneClient(
            base_url=self.control_plane_url,
            token=person.access_token,
            timeout=self.request_timeout,
        )
