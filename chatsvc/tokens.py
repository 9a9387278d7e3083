"""Signed access tokens: who is connecting (role and user id) and until when.

HS256 JWTs signed with the desk's shared secret. Pure functions of their arguments (the time is
passed in), so they are tested without a clock. A token never travels in a URL that reaches a
log: clients send it in their first WebSocket frame.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import jwt
import msgspec
from jwt.algorithms import HMACAlgorithm

ALGORITHM = "HS256"
ISSUER = "chatsvc"
# Ids appear in Redis keys and logs: keep them short and free of separators and spaces.
USER_ID_PATTERN = re.compile(r"[A-Za-z0-9_.@-]{1,64}")  # used with fullmatch
# Department ids as config.py allows them.
DEPARTMENT_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
# More consultations at once than anyone can hold safely is a typo in a token request.
MAX_CAPACITY = 50
# Gateways' clocks may disagree a little; a token issued this far "in the future" is accepted.
CLOCK_SKEW_S = 60


# Secrets whose checked form is kept: one per desk, a few more in tests.
PREPARED_SECRETS = 8


class _CheckedOnceHS256(HMACAlgorithm):
    """HS256 that checks a secret once, not on every token.

    PyJWT checks the key of every HMAC verification (not a PEM, SSH, DER or JWK key: an
    algorithm-confusion guard), a quarter of the cost of verifying a token here (~28 of ~109 µs);
    a desk has one secret. The checks and the signature are PyJWT's own: a refused secret is
    never kept, so it is refused every time. Registered process-wide (it signs and verifies
    exactly as PyJWT's HS256 does).
    """

    def __init__(self) -> None:
        super().__init__(HMACAlgorithm.SHA256)

    def prepare_key(self, key: str | bytes) -> bytes:
        if isinstance(key, str | bytes):
            return _checked_secret(key)
        return super().prepare_key(key)


@functools.lru_cache(maxsize=PREPARED_SECRETS)
def _checked_secret(key: str | bytes) -> bytes:
    return HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(key)


# The registry of PyJWT's module-level `jwt.decode` (which `verify` calls) in every 2.x release; a
# `jwt.PyJWT()` instance of recent releases has a registry of its own and would not use it.
jwt.unregister_algorithm(ALGORITHM)
jwt.register_algorithm(ALGORITHM, _CheckedOnceHS256())


class Role(StrEnum):
    PATIENT = "patient"
    DOCTOR = "doctor"
    SUPERVISOR = "supervisor"


class Claims(msgspec.Struct, frozen=True):
    role: Role
    user_id: str
    expires_at: int  # unix seconds
    name: str = ""  # display name; doctors and supervisors have one, guest patients do not
    # Staff only: the departments a doctor serves or a supervisor oversees.
    departments: tuple[str, ...] = ()
    capacity: int = 0  # doctors: consultations at once; 0 = the desk's [limits] default


def _decode(secrets: tuple[str, ...], token: str) -> dict[str, Any]:
    """The payload of a token signed with one of `secrets`, tried in order."""
    for index, secret in enumerate(secrets):
        try:
            return jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                # Times are judged by `verify` against the caller's `now`, not time.time().
                options={
                    "require": ["exp", "iat", "sub", "iss"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidSignatureError:
            if index == len(secrets) - 1:
                raise TokenError("invalid token: Signature verification failed") from None
        except jwt.PyJWTError as error:
            raise TokenError(f"invalid token: {error}") from None
    raise TokenError("invalid token: no secret to verify it with")


class TokenError(Exception):
    """A token is malformed, wrongly signed, expired or names a bad role or user id."""


def issue(
    secret: str,
    role: Role,
    user_id: str,
    now: float,
    ttl_s: int,
    name: str = "",
    departments: tuple[str, ...] = (),
    capacity: int = 0,
) -> str:
    if not USER_ID_PATTERN.fullmatch(user_id):
        raise TokenError(f"user id must match {USER_ID_PATTERN.pattern}")
    if role is Role.PATIENT and (departments or capacity):
        raise TokenError("patient tokens carry no departments or capacity")
    # The rules `verify` applies: a token `issue` signs must never be one `verify` refuses.
    if not all(DEPARTMENT_PATTERN.fullmatch(department) for department in departments):
        raise TokenError(f"department ids must match {DEPARTMENT_PATTERN.pattern}")
    if capacity < 0 or capacity > MAX_CAPACITY:
        raise TokenError(f"capacity must be 0..{MAX_CAPACITY}")
    payload = {
        "iss": ISSUER,
        "sub": user_id,
        "role": role.value,
        "iat": int(now),
        "exp": int(now) + ttl_s,
    }
    if name:
        payload["name"] = name
    if departments:
        payload["departments"] = list(departments)
    if capacity:
        payload["capacity"] = capacity
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def verify(secret: str | Sequence[str], token: str, now: float) -> Claims:
    """The claims of a valid token. `secret` may be several: the current one first, then those
    of a rollover (`[auth] previous_token_secrets`); a token signed with any of them is valid."""
    secrets = (secret,) if isinstance(secret, str) else tuple(secret)
    payload = _decode(secrets, token)
    expires_at, issued_at = payload["exp"], payload["iat"]
    if not all(type(value) is int for value in (expires_at, issued_at)):
        raise TokenError("token times must be whole seconds")
    if expires_at <= now:
        raise TokenError("token expired")
    if issued_at > now + CLOCK_SKEW_S:
        raise TokenError("token issued in the future")
    not_before = payload.get("nbf", issued_at)
    if type(not_before) is not int or not_before > now + CLOCK_SKEW_S:
        raise TokenError("token not valid yet")
    try:
        role = Role(payload.get("role"))
    except ValueError:
        raise TokenError("token names no known role") from None
    user_id = payload["sub"]
    if not isinstance(user_id, str) or not USER_ID_PATTERN.fullmatch(user_id):
        raise TokenError("token names a malformed user id")
    name = payload.get("name", "")
    if not isinstance(name, str):
        raise TokenError("token names a malformed display name")
    departments = payload.get("departments", [])
    if not isinstance(departments, list) or not all(
        isinstance(d, str) and DEPARTMENT_PATTERN.fullmatch(d) for d in departments
    ):
        raise TokenError("token names malformed departments")
    capacity = payload.get("capacity", 0)
    if type(capacity) is not int or not 0 <= capacity <= MAX_CAPACITY:
        raise TokenError("token names a malformed capacity")
    if role is Role.PATIENT and (departments or capacity):
        raise TokenError("patient tokens carry no departments or capacity")
    return Claims(
        role=role,
        user_id=user_id,
        expires_at=expires_at,
        name=name,
        departments=tuple(departments),
        capacity=capacity,
    )
