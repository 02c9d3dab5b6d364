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

__all__ = ["TOKEN_PREFIX", "Role", "constant_time_equals", "generate_token", "hash_token"]

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


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Hex SHA-256 of the token (what the store keeps)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def constant_time_equals(given: str, expected: str) -> bool:
    """Compare two secrets without leaking where they differ through timing."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
