"""Keycloak: the OpenID Connect provider the inventory API, the control plane and the console trust.

The dev realm (``inventory``) is defined here, in Python: its groups, users, client scopes and
clients (:data:`GROUPS`, :data:`DEV_USERS`, :data:`CLIENTS`). :func:`realm_representation` turns
that into Keycloak's realm JSON, which the server imports while it starts. Every start begins from
an empty database, so every start has fresh client secrets (:attr:`Keycloak.client_secrets`) and
fresh signing keys; nothing of a previous run can be used against the new one.

:func:`deployable_realm` is the same definition as a deployment imports it (``controlplane stack
realm``: docker compose, Kubernetes): without the tests' clients, with the console's public
redirects, each client secret a placeholder Keycloak fills from its environment at import
(:func:`secret_variable`), the secrets in files :func:`write_deployment_secrets` makes.

Administrators (group ``slo-admins``, realm role :data:`MFA_ROLE`) must pass a one-time code at
sign-in, in the browser and in the password grant (:func:`authentication_flows`); every token
says which factors were passed in its ``amr`` claim, which the control plane checks before it
gives admin rights.

Keycloak runs from the distribution ``make bootstrap`` unpacks and pre-builds (``kc.sh build``:
H2 file database, local caches, health and metrics on), so each start is ``start --optimized``.
Each instance gets a home folder of its own (links to the distribution's programs, its own
``data``), which keeps the shared distribution read-only and lets instances run side by side.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx

from controlplane.core.processes import BackendStartError, kill_processes_under, run_checked
from controlplane.stack.backends import BOOTSTRAP_HINT, Backend
from controlplane.stack.settings import KEYCLOAK_MIN_JAVA, StackSettings, java_feature_version

#: The realm the product's services trust.
INVENTORY_REALM = "inventory"
#: A second realm with the same clients and keys of its own ("a token of another issuer").
OTHER_REALM = "other"

#: Audiences: the resource servers a token may be presented to.
INVENTORY_API = "inventory-api"
CONTROLPLANE_API = "controlplane-api"
#: Client scopes of the inventory API (they appear in the access token's ``scope`` claim).
INVENTORY_READ = "inventory:read"
INVENTORY_WRITE = "inventory:write"
API_SCOPES = (INVENTORY_READ, INVENTORY_WRITE)

GROUPS = ("slo-viewers", "slo-operators", "slo-admins")

#: Realm role whose holders must pass a second factor (OTP) when they sign in; the groups in
#: :data:`MFA_GROUPS` give it. Keycloak's "Condition - user role" reads role mappings through
#: groups, so membership of the group is what makes the second factor required.
MFA_ROLE = "mfa-required"
MFA_GROUPS = ("slo-admins",)
#: ``amr`` values (RFC 8176) the provider puts in tokens for each factor passed: ``pwd`` for the
#: password, ``otp`` for a one-time code (the control plane's ``CONTROLPLANE_OIDC_MFA_METHODS``).
AMR_PASSWORD = "pwd"
AMR_OTP = "otp"
#: The realm's SSO session lifetimes (seconds); a factor passed at sign-in stays in the ``amr``
#: claim of every token of that session, renewed ones included, for at most this long.
SSO_SESSION_IDLE = 1800
SSO_SESSION_MAX = 36000
#: The realm's own flows, bound as its browser and direct grant flows.
BROWSER_FLOW = "inventory browser"
DIRECT_GRANT_FLOW = "inventory direct grant"


@dataclass(frozen=True)
class RealmUser:
    """A person of the dev realm; the password is ``<username>-pass``."""

    username: str
    first_name: str
    last_name: str
    group: str

    @property
    def password(self) -> str:
        return f"{self.username}-pass"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


DEV_USERS = (
    RealmUser("vera", "Vera", "Viewer", "slo-viewers"),
    RealmUser("oscar", "Oscar", "Operator", "slo-operators"),
    RealmUser("ada", "Ada", "Admin", "slo-admins"),
)


@dataclass(frozen=True)
class RealmClient:
    """A confidential client of the realm (every client has a secret)."""

    client_id: str
    description: str
    #: ``aud`` of its access tokens.
    audiences: tuple[str, ...]
    #: API scopes always granted (default client scopes).
    scopes: tuple[str, ...] = ()
    #: Client credentials grant (a service account).
    service_account: bool = True
    #: Authorization code flow with PKCE S256 (a browser signs in).
    browser_login: bool = False
    #: Resource owner password grant (tests only: a user's token without a browser).
    password_grant: bool = False
    #: Groups of its service account (the ``groups`` claim of its tokens).
    service_account_groups: tuple[str, ...] = ()
    #: Access token lifespan in seconds (default: the realm's).
    token_lifespan: int | None = None
    #: Part of the realm a deployment imports (``controlplane stack realm``); False: tests only.
    deployed: bool = True


CLIENTS = (
    RealmClient(
        "inventory-console",
        "The SLO console: people sign in through the browser",
        audiences=(CONTROLPLANE_API,),
        service_account=False,
        browser_login=True,
    ),
    RealmClient(
        "inventory-traffic",
        "Traffic generator and benchmarks",
        audiences=(INVENTORY_API,),
        scopes=API_SCOPES,
    ),
    RealmClient(
        "controlplane-probe",
        "The control plane calling the inventory API (write probe)",
        audiences=(INVENTORY_API,),
        scopes=API_SCOPES,
    ),
    RealmClient(
        "inventory-reader",
        "Read-only caller of the inventory API",
        audiences=(INVENTORY_API,),
        scopes=(INVENTORY_READ,),
    ),
    RealmClient(
        "inventory-writer",
        "Write-only caller of the inventory API (a feeder posting movements)",
        audiences=(INVENTORY_API,),
        scopes=(INVENTORY_WRITE,),
    ),
    RealmClient(
        "controlplane-automation",
        "A program calling the control-plane API as an operator",
        audiences=(CONTROLPLANE_API,),
        service_account_groups=("slo-operators",),
    ),
    RealmClient(
        "tests-password",
        "Tests: a user's token without a browser",
        audiences=(INVENTORY_API, CONTROLPLANE_API),
        scopes=API_SCOPES,
        service_account=False,
        password_grant=True,
        deployed=False,
    ),
    RealmClient(
        "tests-console-short",
        "Tests: a console whose access tokens expire after 10 seconds (renewal)",
        audiences=(CONTROLPLANE_API,),
        service_account=False,
        browser_login=True,
        token_lifespan=10,
        deployed=False,
    ),
    RealmClient(
        "short-lived",
        "Tests: read-only tokens that expire after 2 seconds",
        audiences=(INVENTORY_API, CONTROLPLANE_API),
        scopes=(INVENTORY_READ,),
        token_lifespan=2,
        deployed=False,
    ),
)
#: The clients of a deployed realm (compose, Kubernetes): every client but the tests' own.
DEPLOYED_CLIENTS = tuple(client for client in CLIENTS if client.deployed)

#: Where the console's browser sign-in may return to: any loopback port (RFC 8252 7.3: Keycloak
#: lets a registered loopback redirect URI without a port match every port).
CONSOLE_REDIRECT_PATH = "/auth/callback"
LOOPBACK_REDIRECTS = (f"http://127.0.0.1{CONSOLE_REDIRECT_PATH}",)


def console_redirects(console_urls: Iterable[str]) -> tuple[str, ...]:
    """The redirect URIs of a console served at each of ``console_urls`` (``https://host[:port]``):
    its sign-in callback, and its home page (where the browser returns after sign-out)."""
    found: list[str] = []
    for url in console_urls:
        base = url.rstrip("/")
        found += [f"{base}{CONSOLE_REDIRECT_PATH}", f"{base}/"]
    return tuple(dict.fromkeys(found))


_TOKEN_CLAIMS = {
    "access.token.claim": "true",
    "id.token.claim": "true",
    "userinfo.token.claim": "true",
    "introspection.token.claim": "true",
}


def _mapper(name: str, mapper: str, **config: str) -> dict[str, Any]:
    return {
        "name": name,
        "protocol": "openid-connect",
        "protocolMapper": mapper,
        "consentRequired": False,
        "config": dict(config),
    }


def _attribute_mapper(name: str, attribute: str, claim: str) -> dict[str, Any]:
    return _mapper(
        name,
        "oidc-usermodel-attribute-mapper",
        **_TOKEN_CLAIMS,
        **{"user.attribute": attribute, "claim.name": claim, "jsonType.label": "String"},
    )


def _scope(
    name: str, mappers: Iterable[dict[str, Any]] = (), *, in_scope_claim: bool = True
) -> dict[str, Any]:
    return {
        "name": name,
        "protocol": "openid-connect",
        "attributes": {
            "include.in.token.scope": str(in_scope_claim).lower(),
            "display.on.consent.screen": "false",
        },
        "protocolMappers": list(mappers),
    }


def client_scopes() -> list[dict[str, Any]]:
    """The realm's client scopes (an imported realm gets no built-in ones: these replace them)."""
    return [
        _scope(
            "basic",
            [
                _mapper(
                    "sub",
                    "oidc-sub-mapper",
                    **{"access.token.claim": "true", "introspection.token.claim": "true"},
                ),
                _mapper(
                    "auth_time",
                    "oidc-usersessionmodel-note-mapper",
                    **_TOKEN_CLAIMS,
                    **{
                        "user.session.note": "AUTH_TIME",
                        "claim.name": "auth_time",
                        "jsonType.label": "long",
                    },
                ),
                # amr: the factors the person passed (the executions' authentication
                # references, see authentication_flows), in ID, access and refreshed tokens.
                _mapper("amr", "oidc-amr-mapper", **_TOKEN_CLAIMS),
            ],
            in_scope_claim=False,
        ),
        _scope(
            "profile",
            [
                _mapper("full name", "oidc-full-name-mapper", **_TOKEN_CLAIMS),
                _attribute_mapper("username", "username", "preferred_username"),
                _attribute_mapper("given name", "firstName", "given_name"),
                _attribute_mapper("family name", "lastName", "family_name"),
            ],
        ),
        _scope(
            "email",
            [
                _attribute_mapper("email", "email", "email"),
                _mapper(
                    "email verified",
                    "oidc-usermodel-property-mapper",
                    **_TOKEN_CLAIMS,
                    **{
                        "user.attribute": "emailVerified",
                        "claim.name": "email_verified",
                        "jsonType.label": "boolean",
                    },
                ),
            ],
        ),
        _scope(
            "groups",
            [
                _mapper(
                    "groups",
                    "oidc-group-membership-mapper",
                    **_TOKEN_CLAIMS,
                    **{"claim.name": "groups", "full.path": "false"},
                )
            ],
            in_scope_claim=False,
        ),
        *(_scope(name) for name in API_SCOPES),
    ]


def _client(client: RealmClient, secret: str, redirects: Iterable[str]) -> dict[str, Any]:
    attributes: dict[str, str] = {}
    if client.browser_login:
        attributes["pkce.code.challenge.method"] = "S256"
        attributes["post.logout.redirect.uris"] = "+"
    if client.token_lifespan is not None:
        attributes["access.token.lifespan"] = str(client.token_lifespan)
    return {
        "clientId": client.client_id,
        "description": client.description,
        "enabled": True,
        "protocol": "openid-connect",
        "publicClient": False,
        "clientAuthenticatorType": "client-secret",
        "secret": secret,
        "standardFlowEnabled": client.browser_login,
        "implicitFlowEnabled": False,
        "directAccessGrantsEnabled": client.password_grant,
        "serviceAccountsEnabled": client.service_account,
        "redirectUris": list(redirects) if client.browser_login else [],
        "webOrigins": ["+"] if client.browser_login else [],
        "fullScopeAllowed": False,
        "attributes": attributes,
        "defaultClientScopes": ["basic", "profile", "email", "groups", *client.scopes],
        "optionalClientScopes": [],
        "protocolMappers": [
            _mapper(
                f"audience {audience}",
                "oidc-audience-mapper",
                **{
                    "included.custom.audience": audience,
                    "access.token.claim": "true",
                    "id.token.claim": "false",
                    "introspection.token.claim": "true",
                },
            )
            for audience in client.audiences
        ],
    }


def _execution(
    priority: int,
    requirement: str,
    *,
    authenticator: str | None = None,
    flow: str | None = None,
    config: str | None = None,
) -> dict[str, Any]:
    execution: dict[str, Any] = {
        "priority": priority,
        "requirement": requirement,
        "authenticatorFlow": flow is not None,
    }
    if flow is not None:
        execution["flowAlias"] = flow
    else:
        execution["authenticator"] = authenticator
    if config is not None:
        execution["authenticatorConfig"] = config
    return execution


def _flow(alias: str, description: str, *executions: dict[str, Any], top: bool) -> dict[str, Any]:
    return {
        "alias": alias,
        "description": description,
        "providerId": "basic-flow",
        "topLevel": top,
        "builtIn": False,
        "authenticationExecutions": list(executions),
    }


def _amr_config(alias: str, reference: str) -> dict[str, Any]:
    """An execution's "authentication reference": the ``amr`` value it adds once passed."""
    return {
        "alias": alias,
        "config": {
            "default.reference.value": reference,
            "default.reference.maxAge": str(SSO_SESSION_MAX),
        },
    }


def authentication_flows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The realm's flows and their executions' configurations.

    Browser (:data:`BROWSER_FLOW`): the SSO cookie, or the username and password form and then,
    for holders of :data:`MFA_ROLE`, the OTP form (a person with no OTP yet is made to set one
    up first: Keycloak's CONFIGURE_TOTP required action). Direct grant
    (:data:`DIRECT_GRANT_FLOW`, the password grant of clients that have it): username, password
    and, for holders of :data:`MFA_ROLE`, the ``totp`` form parameter; without an OTP set up the
    grant is refused ("Account is not fully set up"), so the password alone never gives an
    administrator a token.
    """
    browser_forms = f"{BROWSER_FLOW} forms"
    browser_otp = f"{BROWSER_FLOW} second factor"
    grant_otp = f"{DIRECT_GRANT_FLOW} second factor"
    flows = [
        _flow(
            BROWSER_FLOW,
            "SSO cookie, or password and (role mfa-required) a one-time code",
            _execution(10, "ALTERNATIVE", authenticator="auth-cookie"),
            _execution(20, "ALTERNATIVE", flow=browser_forms),
            top=True,
        ),
        _flow(
            browser_forms,
            "Username and password, then the second factor where required",
            _execution(
                10, "REQUIRED", authenticator="auth-username-password-form", config="amr pwd form"
            ),
            _execution(20, "CONDITIONAL", flow=browser_otp),
            top=False,
        ),
        _flow(
            browser_otp,
            "A one-time code for holders of the mfa-required role",
            _execution(
                10, "REQUIRED", authenticator="conditional-user-role", config="mfa role browser"
            ),
            _execution(20, "REQUIRED", authenticator="auth-otp-form", config="amr otp form"),
            top=False,
        ),
        _flow(
            DIRECT_GRANT_FLOW,
            "Password grant: username, password and (role mfa-required) the totp parameter",
            _execution(10, "REQUIRED", authenticator="direct-grant-validate-username"),
            _execution(
                20,
                "REQUIRED",
                authenticator="direct-grant-validate-password",
                config="amr pwd grant",
            ),
            _execution(30, "CONDITIONAL", flow=grant_otp),
            top=True,
        ),
        _flow(
            grant_otp,
            "The totp parameter for holders of the mfa-required role",
            _execution(
                10, "REQUIRED", authenticator="conditional-user-role", config="mfa role grant"
            ),
            _execution(
                20, "REQUIRED", authenticator="direct-grant-validate-otp", config="amr otp grant"
            ),
            top=False,
        ),
    ]
    role_condition = {"condUserRole": MFA_ROLE, "negate": "false"}
    configs = [
        {"alias": "mfa role browser", "config": dict(role_condition)},
        {"alias": "mfa role grant", "config": dict(role_condition)},
        _amr_config("amr pwd form", AMR_PASSWORD),
        _amr_config("amr pwd grant", AMR_PASSWORD),
        _amr_config("amr otp form", AMR_OTP),
        _amr_config("amr otp grant", AMR_OTP),
    ]
    return flows, configs


def otp_credential(secret: str) -> dict[str, Any]:
    """An OTP credential as Keycloak imports it: TOTP, HMAC-SHA1, 6 digits, 30 s (the realm's
    OTP policy, which is Keycloak's default). ``secret`` is the raw key; authenticator apps are
    given its base32 form."""
    return {
        "type": "otp",
        "userLabel": "imported",
        "secretData": json.dumps({"value": secret}),
        "credentialData": json.dumps(
            {"subType": "totp", "digits": 6, "counter": 0, "period": 30, "algorithm": "HmacSHA1"}
        ),
    }


def _user(user: RealmUser, otp_secret: str | None = None) -> dict[str, Any]:
    credentials = [{"type": "password", "value": user.password, "temporary": False}]
    if otp_secret is not None:
        credentials.append(otp_credential(otp_secret))
    return {
        "username": user.username,
        "enabled": True,
        "email": f"{user.username}@inventory.example",
        "emailVerified": True,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "credentials": credentials,
        "groups": [f"/{user.group}"],
    }


def _service_account_user(client: RealmClient) -> dict[str, Any]:
    return {
        "username": f"service-account-{client.client_id}",
        "enabled": True,
        "serviceAccountClientId": client.client_id,
        "groups": [f"/{group}" for group in client.service_account_groups],
    }


#: Keycloak events kept for the realm (admin API ``/events``): sign-ins, token renewals,
#: sign-outs and their failures.
EVENT_TYPES = (
    "LOGIN",
    "LOGIN_ERROR",
    "CODE_TO_TOKEN",
    "REFRESH_TOKEN",
    "REFRESH_TOKEN_ERROR",
    "LOGOUT",
    "UPDATE_TOTP",
)


def realm_representation(
    realm: str,
    client_secrets: Mapping[str, str],
    *,
    otp_secrets: Mapping[str, str] | None = None,
    clients: Iterable[RealmClient] = CLIENTS,
    users: Iterable[RealmUser] = DEV_USERS,
    redirects: Iterable[str] = LOOPBACK_REDIRECTS,
) -> dict[str, Any]:
    """Keycloak's JSON for one realm (``client_secrets``: client id -> secret; ``otp_secrets``:
    username -> OTP key imported with the user, for tests — by default nobody has an OTP yet and
    holders of :data:`MFA_ROLE` set one up at their first sign-in; ``redirects``: where the
    console's browser sign-in may return to). The defaults are the dev stack's."""
    clients = tuple(clients)
    redirects = tuple(redirects)
    otp = otp_secrets or {}
    flows, flow_configs = authentication_flows()
    return {
        "realm": realm,
        "enabled": True,
        "displayName": f"Inventory SLO ({realm})",
        "sslRequired": "external",
        "registrationAllowed": False,
        "loginWithEmailAllowed": True,
        "accessTokenLifespan": 300,
        "ssoSessionIdleTimeout": SSO_SESSION_IDLE,
        "ssoSessionMaxLifespan": SSO_SESSION_MAX,
        "eventsEnabled": True,
        "eventsExpiration": 3 * 24 * 3600,
        "enabledEventTypes": list(EVENT_TYPES),
        "roles": {
            "realm": [
                {"name": MFA_ROLE, "description": "Must pass a second factor (OTP) at sign-in"}
            ]
        },
        "groups": [
            {"name": group, "realmRoles": [MFA_ROLE] if group in MFA_GROUPS else []}
            for group in GROUPS
        ],
        "authenticationFlows": flows,
        "authenticatorConfig": flow_configs,
        "browserFlow": BROWSER_FLOW,
        "directGrantFlow": DIRECT_GRANT_FLOW,
        "clientScopes": client_scopes(),
        "defaultDefaultClientScopes": ["basic", "profile", "email", "groups"],
        "defaultOptionalClientScopes": [],
        "clients": [
            _client(client, client_secrets[client.client_id], redirects) for client in clients
        ],
        "users": [
            *(_user(user, otp.get(user.username)) for user in users),
            *(_service_account_user(c) for c in clients if c.service_account),
        ],
    }


#: Prefix of the environment variables a deployed realm's client secrets are read from.
SECRET_VARIABLE_PREFIX = "REALM_SECRET_"


def secret_variable(client_id: str) -> str:
    """``inventory-traffic`` -> ``REALM_SECRET_INVENTORY_TRAFFIC``: the variable Keycloak reads
    that client's secret from while it imports a deployed realm."""
    return SECRET_VARIABLE_PREFIX + client_id.upper().replace("-", "_")


def deployable_realm(
    console_urls: Iterable[str], *, realm: str = INVENTORY_REALM, dev_users: bool = False
) -> dict[str, Any]:
    """The realm a deployment imports: the dev stack's definition without the tests' clients,
    the console's redirects at ``console_urls``, people only with ``dev_users`` (else an
    administrator adds them to the groups), and each client secret a placeholder
    ``${REALM_SECRET_<CLIENT>}`` that Keycloak replaces by that environment variable while it
    imports the file (so the file holds no secret and can be committed)."""
    return realm_representation(
        realm,
        {c.client_id: "${" + secret_variable(c.client_id) + "}" for c in DEPLOYED_CLIENTS},
        clients=DEPLOYED_CLIENTS,
        users=DEV_USERS if dev_users else (),
        redirects=console_redirects(console_urls),
    )


def realm_json(representation: Mapping[str, Any]) -> str:
    """The realm file's text (what ``controlplane stack realm`` writes)."""
    return json.dumps(representation, indent=2) + "\n"


#: Files of a deployment's secrets folder besides ``<client id>.secret``.
ADMIN_SECRET_FILE = "keycloak-admin.password"
SESSION_SECRET_FILE = "console-session.secret"


def write_deployment_secrets(folder: Path) -> dict[Path, bool]:
    """Give each deployed client a secret file ``<client id>.secret`` in ``folder``, plus the
    Keycloak administrator's password and the console's session key: a new random value for
    each file that does not exist yet, an existing (non-empty) file is kept, so a value of your
    own or one from a previous run stays. Returns each file -> whether it was written now.

    The folder is made 0700 (nobody else on the host can read in it); the files are 0644 so
    that containers running as another user can read them where they are mounted."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    names = [client_secret_file(folder, c.client_id) for c in DEPLOYED_CLIENTS]
    names += [folder / ADMIN_SECRET_FILE, folder / SESSION_SECRET_FILE]
    written: dict[Path, bool] = {}
    for path in names:
        if path.is_file() and path.read_text(encoding="utf-8").strip():
            written[path] = False
            continue
        path.write_text(secrets.token_urlsafe(32) + "\n", encoding="utf-8")
        path.chmod(0o644)
        written[path] = True
    return written


def read_deployment_secrets(folder: Path) -> dict[str, str]:
    """``REALM_SECRET_<CLIENT>`` -> secret, from the files :func:`write_deployment_secrets`
    made (the environment a Keycloak importing a deployed realm needs)."""
    found: dict[str, str] = {}
    for client in DEPLOYED_CLIENTS:
        path = client_secret_file(folder, client.client_id)
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        if not lines or not lines[0].strip():
            raise ValueError(f"no secret for client {client.client_id} in {path}")
        found[secret_variable(client.client_id)] = lines[0].strip()
    return found


ADMIN_PASSWORD_FILE = "admin.password"


def client_secret_file(secrets_dir: Path, client_id: str) -> Path:
    """The file holding ``client_id``'s secret of realm ``inventory`` in the stack's folder."""
    return secrets_dir / f"{client_id}.secret"


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")


class AdminAuth(httpx.Auth):
    """Bearer auth on Keycloak's admin REST API: a master-realm token, renewed before it expires."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url
        self.username = username
        self.password = password
        self._token = ""
        self._expires = 0.0

    def _fresh_token(self) -> str:
        if time.monotonic() > self._expires - 10:
            answer = httpx.post(
                f"{self.url}/realms/master/protocol/openid-connect/token",
                data={
                    "grant_type": "password",
                    "client_id": "admin-cli",
                    "username": self.username,
                    "password": self.password,
                },
                timeout=10,
            )
            answer.raise_for_status()
            body = answer.json()
            self._token = body["access_token"]
            self._expires = time.monotonic() + float(body["expires_in"])
        return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._fresh_token()}"
        yield request


class Keycloak(Backend):
    """Keycloak on loopback: the public HTTP port (realms, tokens, admin API) and the
    management port (health, metrics)."""

    name = "keycloak"
    port_labels: ClassVar[tuple[str, ...]] = ("http", "management")
    #: Keycloak runs as root too, but needs no privilege: the service account runs it.
    needs_unprivileged_user = True
    admin_username = "stack-admin"

    def __init__(
        self,
        *,
        settings: StackSettings,
        workdir: Path,
        ports: Mapping[str, int],
        realms: Iterable[str] = (INVENTORY_REALM,),
        secrets_dir: Path | None = None,
        import_files: Mapping[str, Path] | None = None,
        import_environment: Mapping[str, str] | None = None,
        otp_secrets: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(settings=settings, workdir=workdir, ports=ports)
        self.realms = tuple(realms)
        #: Realm files given as they are (realm name -> file), e.g. a deployment's export, and
        #: the variables their placeholders (``${REALM_SECRET_...}``) are replaced with.
        self.import_files = dict(import_files or {})
        self.import_environment = dict(import_environment or {})
        #: username -> OTP key imported with the user (tests); the dev stack imports none.
        self.otp_secrets = dict(otp_secrets or {})
        #: realm -> client id -> secret, generated at each start.
        self.client_secrets: dict[str, dict[str, str]] = {}
        self.admin_password = ""
        #: Where the secrets of realm ``inventory`` are written for other processes (0600 files
        #: ``<client id>.secret`` and ``admin.password``); read back by a later process.
        self.secrets_dir = secrets_dir
        if secrets_dir is not None and (secrets_dir / ADMIN_PASSWORD_FILE).is_file():
            self._read_secrets(secrets_dir)

    # -- addresses -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.ports["http"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['management']}"

    def issuer(self, realm: str = INVENTORY_REALM) -> str:
        return f"{self.url}/realms/{realm}"

    def discovery_url(self, realm: str = INVENTORY_REALM) -> str:
        return f"{self.issuer(realm)}/.well-known/openid-configuration"

    def token_endpoint(self, realm: str = INVENTORY_REALM) -> str:
        return f"{self.issuer(realm)}/protocol/openid-connect/token"

    def jwks_uri(self, realm: str = INVENTORY_REALM) -> str:
        return f"{self.issuer(realm)}/protocol/openid-connect/certs"

    @property
    def home(self) -> Path:
        """This instance's Keycloak home: links to the distribution, its own ``data``."""
        return self.workdir / "home"

    # -- process ---------------------------------------------------------------------------
    def executable(self) -> Path:
        return self.settings.keycloak_dist() / "bin" / "kc.sh"

    def check_java(self) -> Path:
        java_home = self.settings.keycloak_java_home
        version = java_feature_version(java_home)
        if version is None or version < KEYCLOAK_MIN_JAVA:
            found = "no Java" if version is None else f"Java {version}"
            raise BackendStartError(
                self.name,
                f"needs Java >= {KEYCLOAK_MIN_JAVA}, found {found} at {java_home} (install a "
                "Temurin JDK 21 or later, or point STACK_KEYCLOAK_JAVA_HOME at one)",
            )
        return java_home

    def prepare(self) -> None:
        self.check_java()
        dist = self.settings.keycloak_dist()
        if not (dist / "lib" / "quarkus" / "quarkus-application.dat").is_file():
            raise BackendStartError(self.name, f"{dist} is not a built Keycloak ({BOOTSTRAP_HINT})")
        if self.home.exists():  # every start from an empty database: fresh secrets and keys
            shutil.rmtree(self.home)
        (self.home / "data" / "import").mkdir(parents=True)
        for part in ("bin", "conf", "lib", "providers", "themes"):
            (self.home / part).symlink_to(dist / part)
        self.admin_password = secrets.token_urlsafe(24)
        self.client_secrets = {
            realm: {client.client_id: secrets.token_urlsafe(32) for client in CLIENTS}
            for realm in self.realms
        }
        for realm in self.realms:
            _write_private(
                self.home / "data" / "import" / f"{realm}-realm.json",
                json.dumps(
                    realm_representation(
                        realm, self.client_secrets[realm], otp_secrets=self.otp_secrets
                    ),
                    indent=2,
                ),
            )
        for realm, source in self.import_files.items():
            _write_private(
                self.home / "data" / "import" / f"{realm}-realm.json",
                source.read_text(encoding="utf-8"),
            )
        if self.secrets_dir is not None:
            self._write_secrets(self.secrets_dir)

    def _write_secrets(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        for client_id, secret in self.client_secrets.get(INVENTORY_REALM, {}).items():
            _write_private(client_secret_file(folder, client_id), secret + "\n")
        _write_private(folder / ADMIN_PASSWORD_FILE, self.admin_password + "\n")

    def _read_secrets(self, folder: Path) -> None:
        self.admin_password = (folder / ADMIN_PASSWORD_FILE).read_text(encoding="utf-8").strip()
        self.client_secrets[INVENTORY_REALM] = {
            client.client_id: client_secret_file(folder, client.client_id)
            .read_text(encoding="utf-8")
            .strip()
            for client in CLIENTS
            if client_secret_file(folder, client.client_id).is_file()
        }

    def environment(self) -> dict[str, str]:
        env = {key: value for key, value in super().environment().items() if key[:3] != "KC_"}
        env.pop("JAVA_OPTS", None)
        env.update(
            JAVA_HOME=str(self.settings.keycloak_java_home),
            KC_BOOTSTRAP_ADMIN_USERNAME=self.admin_username,
            KC_BOOTSTRAP_ADMIN_PASSWORD=self.admin_password,
        )
        env.update(self.import_environment)
        return env

    def command(self) -> list[str]:
        return [
            str(self.executable()),
            f"-Dkc.home.dir={self.home}",
            f"-Djboss.server.config.dir={self.home / 'conf'}",
            "start",
            "--optimized",
            "--import-realm",
            "--cache=local",  # one node: no cluster transport (JGroups) listening
            "--http-enabled=true",
            "--http-host=127.0.0.1",
            f"--http-port={self.port}",
            f"--hostname={self.url}",
            f"--http-management-port={self.ports['management']}",
        ]

    def wait_healthy(self, timeout: float | None = None) -> None:
        super().wait_healthy(self.settings.keycloak_start_timeout if timeout is None else timeout)

    def healthy(self) -> bool:
        ready = httpx.get(f"{self.management_url}/health/ready", timeout=2)
        if ready.status_code != 200:
            return False
        for realm in (*self.realms, *self.import_files):
            answer = httpx.get(self.discovery_url(realm), timeout=2)
            if answer.status_code != 200 or answer.json().get("issuer") != self.issuer(realm):
                return False
        return True

    def kill_leftovers(self) -> None:
        kill_processes_under(self.workdir)

    def admin_client(self) -> httpx.Client:
        """An httpx client on ``<url>/admin/realms``, authenticated as the stack's admin."""
        return httpx.Client(
            base_url=f"{self.url}/admin/realms",
            auth=AdminAuth(self.url, self.admin_username, self.admin_password),
            timeout=10,
        )

    def query_version(self) -> str:
        with self.admin_client() as admin:
            answer = admin.get(f"{self.url}/admin/serverinfo")
            answer.raise_for_status()
        return f"Keycloak {answer.json()['systemInfo']['version']}"

    def binary_version(self) -> str:
        """``kc.sh --version`` (starts a JVM: a few seconds)."""
        self.check_java()
        output = run_checked(
            self.name,
            [str(self.executable()), "--version"],
            user=self.user,
            env={**self.environment(), "KC_BOOTSTRAP_ADMIN_PASSWORD": ""},
            timeout=120,
        )
        for line in output.splitlines():
            if line.strip().startswith("Keycloak"):
                return line.strip()
        raise BackendStartError(self.name, f"`kc.sh --version` printed no version: {output!r}")

    # -- tokens and keys -------------------------------------------------------------------
    def client_secret(self, client_id: str, realm: str = INVENTORY_REALM) -> str:
        try:
            return self.client_secrets[realm][client_id]
        except KeyError:
            raise KeyError(f"no client {client_id!r} in realm {realm!r} of this Keycloak") from None

    def token(self, form: Mapping[str, str], realm: str = INVENTORY_REALM) -> dict[str, Any]:
        """POST ``form`` to the realm's token endpoint; the token response (error: raises)."""
        answer = httpx.post(self.token_endpoint(realm), data=dict(form), timeout=10)
        if answer.status_code != 200:
            raise httpx.HTTPStatusError(
                f"token request for {form.get('client_id')} refused: "
                f"{answer.status_code} {answer.text}",
                request=answer.request,
                response=answer,
            )
        body: dict[str, Any] = answer.json()
        return body

    def client_token(
        self, client_id: str, scope: str | None = None, realm: str = INVENTORY_REALM
    ) -> str:
        """A client credentials access token of ``client_id``."""
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": self.client_secret(client_id, realm),
        }
        if scope is not None:
            form["scope"] = scope
        return str(self.token(form, realm)["access_token"])

    def rotate_keys(self, realm: str = INVENTORY_REALM) -> str:
        """Add an RSA signing key above every existing one, disable the older RSA signing keys
        (they leave the JWKS), and return the new key's ``kid``."""
        provider_type = "org.keycloak.keys.KeyProvider"
        with self.admin_client() as admin:
            realm_id = admin.get(f"/{realm}").raise_for_status().json()["id"]
            components = admin.get(
                f"/{realm}/components", params={"type": provider_type}
            ).raise_for_status()
            old = [c for c in components.json() if c["providerId"] == "rsa-generated"]
            top = max((int(c["config"].get("priority", ["0"])[0]) for c in old), default=0)
            created = admin.post(
                f"/{realm}/components",
                json={
                    "name": f"rsa-rotated-{int(time.time())}",
                    "providerId": "rsa-generated",
                    "providerType": provider_type,
                    "parentId": realm_id,
                    "config": {
                        "priority": [str(top + 100)],
                        "enabled": ["true"],
                        "active": ["true"],
                        "algorithm": ["RS256"],
                        "keySize": ["2048"],
                    },
                },
            ).raise_for_status()
            new_id = created.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
            for component in old:
                component["config"]["enabled"] = ["false"]
                component["config"]["active"] = ["false"]
                admin.put(
                    f"/{realm}/components/{component['id']}", json=component
                ).raise_for_status()
            keys = admin.get(f"/{realm}/keys").raise_for_status().json()["keys"]
        for key in keys:
            if key.get("providerId") == new_id and key.get("use") == "SIG":
                return str(key["kid"])
        raise RuntimeError(f"Keycloak lists no signing key of the new provider {new_id}")

    def register_redirect(self, client_id: str, uri: str, realm: str = INVENTORY_REALM) -> None:
        """Allow one more redirect URI for ``client_id``."""
        with self.admin_client() as admin:
            found = admin.get(f"/{realm}/clients", params={"clientId": client_id})
            client = found.raise_for_status().json()[0]
            if uri not in client["redirectUris"]:
                client["redirectUris"].append(uri)
                admin.put(f"/{realm}/clients/{client['id']}", json=client).raise_for_status()
