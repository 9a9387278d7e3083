"""Signed access tokens: who is connecting (role and user id) and until when.

HS256 JWTs signed with the desk's shared secret. Pure functions of their arguments (the time is
passed in), so they are tested without a clock. A token never travels in a URL that reaches a
log: clients send it in their first WebSocket frame.
"""

from __future__ import annotations

import base64
import functools
import hmac
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


# The registry of PyJWT's module-level `jwt.encode` (which `issue` calls) in every 2.x release; a
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
    # When the user's session began (unix seconds): a guest's renewals keep it, so a session
    # has a maximum age however often it is renewed. The issue time when the token names none.
    session_started: int = 0


# What a token may look like at all, checked before anything is decoded: three base64url
# segments, a small header (a deep one must not reach the JSON decoder) and exactly the 43
# characters of an HS256 signature. Anything else, non-ASCII text included, is malformed.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,512}\.[A-Za-z0-9_-]{1,16384}\.[A-Za-z0-9_-]{43}")
# Times past this are no instant chatsvc means, and do not fit every client's numbers (JSON).
MAX_TIME = 2**53
# The longest a token may be issued for: a year.
MAX_TTL_S = 366 * 86400


def _segment(text: str) -> bytes:
    """One base64url segment of a token, decoded as PyJWT decodes it."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# Header and payload must each be a JSON object (NaN, Infinity and integers past 64 bits are
# refused, where PyJWT's json.loads would read them: a token of ours never holds them).
_JSON_OBJECT = msgspec.json.Decoder(dict[str, Any])


def _decode(secrets: tuple[str, ...], token: str) -> dict[str, Any]:
    """The payload of an HS256 token signed with one of `secrets`, tried in order.

    The checks `jwt.decode(token, secret, algorithms=["HS256"], issuer=ISSUER, options=...)` makes
    with chatsvc's options (times are judged by `verify`), written out: PyJWT's generic path
    (option merging, its algorithm registry, json.loads) was ~13 % of a gateway's CPU per
    connect. Where PyJWT would accept something a chatsvc token never holds (a `crit` or `b64`
    header, a payload segment with dots) this refuses it. The tests hold the two to the same
    answers; `issue` still signs with PyJWT.
    """
    if not isinstance(token, str) or not _TOKEN_SHAPE.fullmatch(token):
        raise TokenError("invalid token: malformed")
    signing_input, _, signature_segment = token.rpartition(".")
    header_segment, dot, payload_segment = signing_input.partition(".")
    if not dot or "." in payload_segment:
        raise TokenError("invalid token: Not enough segments")
    try:
        header = _JSON_OBJECT.decode(_segment(header_segment))
        signature = _segment(signature_segment)
    except (ValueError, RecursionError, msgspec.DecodeError):  # binascii.Error is a ValueError
        raise TokenError("invalid token: malformed header or signature") from None
    # One spelling per signature: the last character's unused bits must be zero.
    if base64.urlsafe_b64encode(signature).rstrip(b"=").decode() != signature_segment:
        raise TokenError("invalid token: malformed signature")
    if header.get("alg") != ALGORITHM:
        raise TokenError("invalid token: The specified alg value is not allowed")
    if "crit" in header or header.get("b64", True) is not True:
        raise TokenError("invalid token: unsupported header parameters")
    if "kid" in header and not isinstance(header["kid"], str):
        raise TokenError("invalid token: Key ID header parameter must be a string")
    signed = signing_input.encode()
    if not secrets or not all(secrets):  # an empty key would make any HMAC "verify"
        raise TokenError("invalid token: no secret to verify it with")
    for secret in secrets:
        try:
            key = _checked_secret(secret)
        except jwt.PyJWTError as error:  # a key PyJWT refuses for HMAC (a PEM, say)
            raise TokenError(f"invalid token: {error}") from None
        if hmac.compare_digest(hmac.digest(key, signed, "sha256"), signature):
            break
    else:
        raise TokenError("invalid token: Signature verification failed")
    try:
        payload = _JSON_OBJECT.decode(_segment(payload_segment))
    except (ValueError, RecursionError, msgspec.DecodeError):
        raise TokenError("invalid token: Invalid payload string") from None
    for claim in ("exp", "iat", "sub", "iss"):
        if payload.get(claim) is None:
            raise TokenError(f'invalid token: Token is missing the "{claim}" claim')
    if payload["iss"] != ISSUER:
        raise TokenError("invalid token: Invalid issuer")
    if payload.get("aud"):  # a token for some other audience; chatsvc names none
        raise TokenError("invalid token: Invalid audience")
    if not isinstance(payload["sub"], str):
        raise TokenError("invalid token: Subject must be a string")
    if "jti" in payload and not isinstance(payload["jti"], str):
        raise TokenError("invalid token: JWT ID must be a string")
    return payload


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
    session_started: int | None = None,
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
    if not 0 < ttl_s <= MAX_TTL_S:
        raise TokenError(f"a token lives 1..{MAX_TTL_S} seconds")
    payload: dict[str, Any] = {
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
    if session_started is not None:
        payload["ses"] = session_started
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def verify(secret: str | Sequence[str], token: str, now: float) -> Claims:
    """The claims of a valid token. `secret` may be several: the current one first, then those
    of a rollover (`[auth] previous_token_secrets`); a token signed with any of them is valid."""
    secrets = (secret,) if isinstance(secret, str) else tuple(secret)
    payload = _decode(secrets, token)
    expires_at, issued_at = payload["exp"], payload["iat"]
    not_before = payload.get("nbf", issued_at)
    session_started = payload.get("ses", issued_at)
    times = (expires_at, issued_at, not_before, session_started)
    if not all(type(value) is int and 0 <= value < MAX_TIME for value in times):
        raise TokenError("token times must be whole seconds")
    if expires_at <= now:
        raise TokenError("token expired")
    if issued_at > now + CLOCK_SKEW_S:
        raise TokenError("token issued in the future")
    if not_before > now + CLOCK_SKEW_S:
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
        session_started=session_started,
    )
