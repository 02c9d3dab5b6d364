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
    "DEFAULT_ROLE_GROUPS",
    "TOKEN_PREFIX",
    "Role",
    "RoleGroups",
    "constant_time_equals",
    "generate_token",
    "hash_token",
    "parse_role_groups",
    "role_of_groups",
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


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Hex SHA-256 of the token (what the store keeps)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def constant_time_equals(given: str, expected: str) -> bool:
    """Compare two secrets without leaking where they differ through timing."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
