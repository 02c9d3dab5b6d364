"""API roles and token material: generation, hashing and constant-time comparison.

Tokens are 256-bit random strings; only their SHA-256 is stored. A fast hash is enough for
secrets with that much entropy (nothing to brute-force), and it lets the store look a token up by
its hash directly.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum

__all__ = [
    "DEFAULT_MFA_METHODS",
    "DEFAULT_ROLE_GROUPS",
    "TOKEN_PREFIX",
    "Role",
    "RoleGroups",
    "constant_time_equals",
    "generate_token",
    "hash_token",
    "mfa_methods_setting",
    "mfa_role_setting",
    "parse_mfa_methods",
    "parse_mfa_role",
    "parse_role_groups",
    "passed_mfa",
    "role_of_groups",
    "role_with_mfa",
]

#: Prefix of API tokens, so a leaked one is recognisable (secret scanners, logs).
TOKEN_PREFIX = "cpt_"


class Role(StrEnum):
    """API roles, each including the rights of the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, required: Role) -> bool:
        """Whether a holder of this role may use a route that needs ``required``."""
        return self.rank >= required.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}

#: Which groups of the identity provider (the ``groups`` claim) give which role.
RoleGroups = dict[Role, tuple[str, ...]]

#: ``role=group|group,...``: the groups of the identity provider that give each role.
DEFAULT_ROLE_GROUPS = "viewer=slo-viewers,operator=slo-operators,admin=slo-admins"


def parse_role_groups(text: str) -> RoleGroups:
    """``viewer=slo-viewers,operator=slo-operators|oncall`` to ``{Role.VIEWER: ("slo-viewers",),
    Role.OPERATOR: ("slo-operators", "oncall")}``; ValueError naming the bad part."""
    mapping: RoleGroups = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, groups = part.partition("=")
        try:
            role = Role(name.strip())
        except ValueError:
            raise ValueError(
                f"{part!r}: {name.strip()!r} is no role (viewer, operator, admin)"
            ) from None
        names = tuple(g.strip() for g in groups.split("|") if g.strip())
        if not sep or not names:
            raise ValueError(f"{part!r} is not role=group (several groups: role=a|b)")
        if role in mapping:
            raise ValueError(f"role {role.value!r} is given twice")
        mapping[role] = names
    return mapping


def role_of_groups(groups: object, mapping: RoleGroups) -> Role | None:
    """The highest role any of ``groups`` gives (a leading ``/`` of a group path is ignored);
    None when none is mapped, or when ``groups`` is not a list of names."""
    if not isinstance(groups, list | tuple):
        return None
    held = {str(g).lstrip("/") for g in groups if isinstance(g, str)}
    granted = [role for role, names in mapping.items() if held.intersection(names)]
    return max(granted, key=lambda role: role.rank, default=None)


#: ``amr`` values (RFC 8176) that prove a second factor: a one-time code (Keycloak's OTP
#: executions carry the reference ``otp`` in the project's realm).
DEFAULT_MFA_METHODS = "otp"


def parse_mfa_methods(text: str) -> tuple[str, ...]:
    """``otp,hwk`` to ``("otp", "hwk")``; ValueError when none is named."""
    methods = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    if not methods:
        raise ValueError("name at least one amr value (e.g. otp)")
    return methods


def parse_mfa_role(text: str) -> Role | None:
    """``admin`` to :attr:`Role.ADMIN`; ``none`` to None (no role needs a second factor)."""
    name = text.strip().lower()
    if name == "none":
        return None
    try:
        return Role(name)
    except ValueError:
        raise ValueError(f"{text!r} is no role (viewer, operator, admin, or none)") from None


def mfa_role_setting(value: object) -> object:
    """``*_MFA_ROLE`` from the environment parsed (:func:`parse_mfa_role`); others unchanged."""
    return parse_mfa_role(value) if isinstance(value, str) else value


def mfa_methods_setting(value: object) -> object:
    """``*_MFA_METHODS`` from the environment parsed (:func:`parse_mfa_methods`)."""
    return parse_mfa_methods(value) if isinstance(value, str) else value


def passed_mfa(amr: object, methods: tuple[str, ...]) -> bool:
    """Whether a token's ``amr`` claim names one of ``methods`` (a second factor passed)."""
    return isinstance(amr, list | tuple) and any(m in amr for m in methods if isinstance(m, str))


def role_with_mfa(
    role: Role | None, amr: object, *, mfa_role: Role | None, methods: tuple[str, ...]
) -> Role | None:
    """The role a provider token gets: ``role`` (from its groups) when it stays below
    ``mfa_role`` or the token's ``amr`` names one of ``methods``; otherwise the highest role
    below ``mfa_role`` (None when ``mfa_role`` is the lowest). ``mfa_role`` None: ``role``."""
    if role is None or mfa_role is None or not role.allows(mfa_role):
        return role
    if passed_mfa(amr, methods):
        return role
    below = [r for r in Role if r.rank < mfa_role.rank]
    return max(below, key=lambda r: r.rank, default=None)


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Hex SHA-256 of the token (what the store keeps)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def constant_time_equals(given: str, expected: str) -> bool:
    """Compare two secrets without leaking where they differ through timing."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
