"""Access tokens: what `issue` signs, `verify` gives back, and every token `verify` must refuse.

Pure calls with an explicit `now`; tokens that `issue` cannot make are crafted with PyJWT and
the same secret, so each refusal is down to the claim under test, not to the signature.
"""

from __future__ import annotations

import base64
import hmac
import json
from typing import Any

import jwt
import pytest

from chatsvc import tokens
from chatsvc.tokens import Claims, Role, TokenError

# 64 bytes: PyJWT warns about HMAC keys shorter than the hash, and HS512 is tried below.
SECRET = "unit-test-secret-" + "s" * 47
OTHER_SECRET = "another-secret-" + "o" * 49
# A fixed instant in the past; `verify` never reads the wall clock (tested below).
NOW = 1_700_000_000.0
TTL_S = 600
EXPIRES_AT = int(NOW) + TTL_S


def claims_payload(**overrides: Any) -> dict[str, Any]:
    """The payload `issue` would sign for a doctor, with `overrides` applied (None deletes)."""
    payload: dict[str, Any] = {
        "iss": tokens.ISSUER,
        "sub": "dr.house",
        "role": Role.DOCTOR.value,
        "iat": int(NOW),
        "exp": EXPIRES_AT,
    }
    for key, value in overrides.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


def crafted(**overrides: Any) -> str:
    return jwt.encode(claims_payload(**overrides), SECRET, algorithm=tokens.ALGORITHM)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# Round trip


@pytest.mark.parametrize("role", list(Role))
def test_issued_token_verifies_to_its_role_user_id_name_and_expiry(role: Role) -> None:
    token = tokens.issue(SECRET, role, "user_1.x@desk-2", now=NOW, ttl_s=TTL_S, name="Dr. Ana")

    claims = tokens.verify(SECRET, token, now=NOW + 1)

    assert claims == Claims(
        role=role,
        user_id="user_1.x@desk-2",
        expires_at=EXPIRES_AT,
        name="Dr. Ana",
        session_started=int(NOW),
    )
    assert isinstance(claims.role, Role)


def signed_payload(token: str) -> dict[str, Any]:
    """The payload of `token` after checking its HS256 signature, ignoring the wall clock."""
    return jwt.decode(
        token, SECRET, algorithms=["HS256"], issuer="chatsvc", options={"verify_exp": False}
    )


def test_token_issued_without_name_verifies_to_empty_name() -> None:
    token = tokens.issue(SECRET, Role.PATIENT, "guest-42", now=NOW, ttl_s=TTL_S)

    claims = tokens.verify(SECRET, token, now=NOW)

    assert claims.name == ""
    assert "name" not in signed_payload(token)


def test_fractional_now_is_truncated_to_whole_seconds_in_expiry() -> None:
    token = tokens.issue(SECRET, Role.PATIENT, "p1", now=NOW + 0.9, ttl_s=TTL_S)

    assert tokens.verify(SECRET, token, now=NOW).expires_at == EXPIRES_AT


def test_issued_token_is_hs256_signed_by_chatsvc() -> None:
    token = tokens.issue(SECRET, Role.SUPERVISOR, "sup1", now=NOW, ttl_s=TTL_S)

    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert signed_payload(token) == {
        "iss": "chatsvc",
        "sub": "sup1",
        "role": "supervisor",
        "iat": int(NOW),
        "exp": EXPIRES_AT,
    }


# Expiry, judged against the caller's `now`


def test_token_is_valid_until_the_second_before_expiry() -> None:
    token = tokens.issue(SECRET, Role.PATIENT, "p1", now=NOW, ttl_s=TTL_S)

    assert tokens.verify(SECRET, token, now=EXPIRES_AT - 0.001).expires_at == EXPIRES_AT


@pytest.mark.parametrize("now", [EXPIRES_AT, EXPIRES_AT + 0.5, EXPIRES_AT + 86_400])
def test_token_at_or_after_expiry_is_refused(now: float) -> None:
    token = tokens.issue(SECRET, Role.PATIENT, "p1", now=NOW, ttl_s=TTL_S)

    with pytest.raises(TokenError, match="expired"):
        tokens.verify(SECRET, token, now=now)


@pytest.mark.parametrize("ttl_s", [0, -1, tokens.MAX_TTL_S + 1])
def test_a_token_is_issued_for_a_second_to_a_year(ttl_s: int) -> None:
    with pytest.raises(TokenError, match="lives"):
        tokens.issue(SECRET, Role.PATIENT, "p1", now=NOW, ttl_s=ttl_s)


def test_a_guest_session_start_is_carried_by_its_tokens() -> None:
    token = tokens.issue(SECRET, Role.PATIENT, "p1", now=NOW, ttl_s=TTL_S, session_started=123)

    assert tokens.verify(SECRET, token, now=NOW).session_started == 123


# Signature and algorithm


def test_token_signed_with_another_secret_is_refused() -> None:
    token = tokens.issue(OTHER_SECRET, Role.DOCTOR, "dr.house", now=NOW, ttl_s=TTL_S)

    with pytest.raises(TokenError):
        tokens.verify(SECRET, token, now=NOW)


def test_during_a_rollover_tokens_of_the_old_and_the_new_secret_are_both_valid() -> None:
    old = tokens.issue(OTHER_SECRET, Role.DOCTOR, "dr.house", now=NOW, ttl_s=TTL_S)
    new = tokens.issue(SECRET, Role.PATIENT, "p1", now=NOW, ttl_s=TTL_S)

    assert tokens.verify((SECRET, OTHER_SECRET), old, now=NOW).user_id == "dr.house"
    assert tokens.verify((SECRET, OTHER_SECRET), new, now=NOW).user_id == "p1"
    with pytest.raises(TokenError, match="Signature verification failed"):
        tokens.verify((SECRET,), old, now=NOW)


def test_a_rollover_does_not_excuse_an_expired_or_malformed_token() -> None:
    expired = tokens.issue(OTHER_SECRET, Role.PATIENT, "p1", now=NOW - 2 * TTL_S, ttl_s=TTL_S)

    with pytest.raises(TokenError, match="expired"):
        tokens.verify((SECRET, OTHER_SECRET), expired, now=NOW)
    with pytest.raises(TokenError, match="invalid token"):
        tokens.verify((SECRET, OTHER_SECRET), "not.a.token", now=NOW)


def test_token_with_tampered_payload_is_refused() -> None:
    token = tokens.issue(SECRET, Role.PATIENT, "p1", now=NOW, ttl_s=TTL_S)
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims["role"] = Role.SUPERVISOR.value
    forged = ".".join([header, b64url(json.dumps(claims).encode()), signature])

    with pytest.raises(TokenError):
        tokens.verify(SECRET, forged, now=NOW)


def test_token_with_tampered_signature_is_refused() -> None:
    token = tokens.issue(SECRET, Role.PATIENT, "p1", now=NOW, ttl_s=TTL_S)
    header, payload, signature = token.split(".")
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]

    with pytest.raises(TokenError):
        tokens.verify(SECRET, f"{header}.{payload}.{flipped}", now=NOW)


def test_unsigned_token_with_alg_none_is_refused() -> None:
    token = jwt.encode(claims_payload(), None, algorithm="none")
    assert jwt.get_unverified_header(token)["alg"] == "none"

    with pytest.raises(TokenError):
        tokens.verify(SECRET, token, now=NOW)


def test_hand_built_alg_none_token_with_empty_signature_is_refused() -> None:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims_payload()).encode())

    with pytest.raises(TokenError):
        tokens.verify(SECRET, f"{header}.{payload}.", now=NOW)


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_token_signed_with_another_hmac_algorithm_and_the_same_secret_is_refused(
    algorithm: str,
) -> None:
    token = jwt.encode(claims_payload(), SECRET, algorithm=algorithm)

    with pytest.raises(TokenError):
        tokens.verify(SECRET, token, now=NOW)


@pytest.mark.parametrize("garbage", ["", "not-a-token", "a.b.c", "..", "Bearer x.y.z"])
def test_string_that_is_not_a_jwt_is_refused(garbage: str) -> None:
    with pytest.raises(TokenError):
        tokens.verify(SECRET, garbage, now=NOW)


def test_crafted_token_with_valid_claims_is_accepted() -> None:
    # The control for the crafted refusals below: only the overridden claim makes them fail.
    assert tokens.verify(SECRET, crafted(), now=NOW) == Claims(
        role=Role.DOCTOR, user_id="dr.house", expires_at=EXPIRES_AT, session_started=int(NOW)
    )


# Claims


@pytest.mark.parametrize("role", ["admin", "", "Doctor", 1, ["doctor"], {"r": "doctor"}])
def test_token_with_unknown_role_is_refused(role: object) -> None:
    with pytest.raises(TokenError, match="role"):
        tokens.verify(SECRET, crafted(role=role), now=NOW)


@pytest.mark.parametrize("claim", ["role", "exp", "iat", "sub", "iss"])
def test_token_missing_a_claim_is_refused(claim: str) -> None:
    with pytest.raises(TokenError):
        tokens.verify(SECRET, crafted(**{claim: None}), now=NOW)


def test_token_from_another_issuer_is_refused() -> None:
    with pytest.raises(TokenError):
        tokens.verify(SECRET, crafted(iss="someone-else"), now=NOW)


MALFORMED_USER_IDS = ["", "a b", "a:b", "a/b", "a{b}", "x" * 65, "émile", "a\tb", "\nabc"]


@pytest.mark.parametrize("user_id", MALFORMED_USER_IDS)
def test_issue_refuses_malformed_user_id(user_id: str) -> None:
    with pytest.raises(TokenError, match="user id"):
        tokens.issue(SECRET, Role.PATIENT, user_id, now=NOW, ttl_s=TTL_S)


@pytest.mark.parametrize("user_id", MALFORMED_USER_IDS)
def test_verify_refuses_correctly_signed_token_with_malformed_user_id(user_id: str) -> None:
    with pytest.raises(TokenError):
        tokens.verify(SECRET, crafted(sub=user_id), now=NOW)


@pytest.mark.parametrize("sub", [42, ["p1"], {"id": "p1"}])
def test_verify_refuses_token_whose_user_id_is_not_a_string(sub: object) -> None:
    with pytest.raises(TokenError):
        tokens.verify(SECRET, crafted(sub=sub), now=NOW)


def test_user_id_of_64_characters_is_accepted() -> None:
    user_id = "u" * 64
    token = tokens.issue(SECRET, Role.PATIENT, user_id, now=NOW, ttl_s=TTL_S)

    assert tokens.verify(SECRET, token, now=NOW).user_id == user_id


# Trailing newlines: `$` in a pattern would match before one, so ids are checked in full.


def test_issue_refuses_user_id_with_trailing_newline() -> None:
    with pytest.raises(TokenError, match="user id"):
        tokens.issue(SECRET, Role.PATIENT, "p1\n", now=NOW, ttl_s=TTL_S)


def test_verify_refuses_user_id_with_trailing_newline() -> None:
    with pytest.raises(TokenError, match="user id"):
        tokens.verify(SECRET, crafted(sub="p1\n"), now=NOW)


@pytest.mark.parametrize("name", [42, ["Dr"], {"first": "Ana"}])
def test_verify_refuses_display_name_that_is_not_a_string(name: object) -> None:
    with pytest.raises(TokenError, match="name"):
        tokens.verify(SECRET, crafted(name=name), now=NOW)


# Times: whole seconds, judged against the caller's `now` and never the wall clock


@pytest.mark.parametrize(
    "times",
    [
        {"exp": "tomorrow"},
        {"exp": [EXPIRES_AT]},
        {"exp": float(EXPIRES_AT)},
        {"exp": True},
        {"iat": float(NOW)},
    ],
)
def test_verify_refuses_times_that_are_not_whole_seconds_with_token_error(
    times: dict[str, object],
) -> None:
    with pytest.raises(TokenError):
        tokens.verify(SECRET, crafted(**times), now=NOW)


def test_verify_judges_issue_time_by_the_callers_clock_not_the_wall_clock() -> None:
    future = 4_000_000_000.0  # 2096: ahead of the wall clock while this suite is alive
    token = tokens.issue(SECRET, Role.PATIENT, "p1", now=future, ttl_s=TTL_S)

    assert tokens.verify(SECRET, token, now=future + 1).user_id == "p1"


def test_verify_judges_expiry_by_the_callers_clock_not_the_wall_clock() -> None:
    future = 4_000_000_000.0
    token = tokens.issue(SECRET, Role.PATIENT, "p1", now=future, ttl_s=TTL_S)

    with pytest.raises(TokenError, match="expired"):
        tokens.verify(SECRET, token, now=future + TTL_S)


def test_token_issued_up_to_the_allowed_clock_skew_ahead_is_accepted() -> None:
    token = crafted(iat=int(NOW) + tokens.CLOCK_SKEW_S)

    assert tokens.verify(SECRET, token, now=NOW).user_id == "dr.house"


def test_token_issued_beyond_the_allowed_clock_skew_ahead_is_refused() -> None:
    token = crafted(iat=int(NOW) + tokens.CLOCK_SKEW_S + 1)

    with pytest.raises(TokenError, match="future"):
        tokens.verify(SECRET, token, now=NOW)


# Staff claims: departments and capacity


@pytest.mark.parametrize(
    ("role", "departments", "capacity"),
    [
        pytest.param(Role.DOCTOR, ("general", "paediatrics"), 3, id="doctor"),
        pytest.param(Role.DOCTOR, ("psych",), tokens.MAX_CAPACITY, id="doctor-max-capacity"),
        pytest.param(Role.SUPERVISOR, ("general", "psych"), 0, id="supervisor"),
        pytest.param(Role.DOCTOR, ("a" * 32, "0-x_y"), 1, id="longest-and-odd-ids"),
    ],
)
def test_staff_token_carries_its_departments_and_capacity(
    role: Role, departments: tuple[str, ...], capacity: int
) -> None:
    token = tokens.issue(
        SECRET,
        role,
        "staff-1",
        now=NOW,
        ttl_s=TTL_S,
        departments=departments,
        capacity=capacity,
    )

    claims = tokens.verify(SECRET, token, now=NOW)

    assert (claims.departments, claims.capacity) == (departments, capacity)
    assert isinstance(claims.departments, tuple)
    assert signed_payload(token)["departments"] == list(departments)


def test_empty_departments_and_zero_capacity_are_left_out_of_the_token() -> None:
    token = tokens.issue(SECRET, Role.DOCTOR, "d1", now=NOW, ttl_s=TTL_S)

    claims = tokens.verify(SECRET, token, now=NOW)

    assert (claims.departments, claims.capacity) == ((), 0)
    assert "departments" not in signed_payload(token)
    assert "capacity" not in signed_payload(token)


@pytest.mark.parametrize(
    ("departments", "capacity"),
    [
        pytest.param(("general",), 0, id="departments"),
        pytest.param((), 2, id="capacity"),
    ],
)
def test_issue_refuses_a_patient_token_with_departments_or_capacity(
    departments: tuple[str, ...], capacity: int
) -> None:
    with pytest.raises(TokenError, match="patient"):
        tokens.issue(
            SECRET,
            Role.PATIENT,
            "p1",
            now=NOW,
            ttl_s=TTL_S,
            departments=departments,
            capacity=capacity,
        )


@pytest.mark.parametrize("capacity", [-1, tokens.MAX_CAPACITY + 1, 1000])
def test_issue_refuses_a_capacity_out_of_range(capacity: int) -> None:
    with pytest.raises(TokenError, match="capacity"):
        tokens.issue(SECRET, Role.DOCTOR, "d1", now=NOW, ttl_s=TTL_S, capacity=capacity)


MALFORMED_DEPARTMENTS = ["", "General", "a b", "a:b", "x" * 33, "-lead", "_lead", "gen\n", "é"]


@pytest.mark.parametrize("department", MALFORMED_DEPARTMENTS)
def test_issue_refuses_a_malformed_department_id(department: str) -> None:
    # `verify` would refuse such a token: `issue` must not sign it in the first place.
    with pytest.raises(TokenError, match="department"):
        tokens.issue(
            SECRET, Role.DOCTOR, "d1", now=NOW, ttl_s=TTL_S, departments=("general", department)
        )


def test_crafted_staff_token_with_valid_departments_and_capacity_is_accepted() -> None:
    token = crafted(departments=["general", "psych"], capacity=4, name="Dr House")

    assert tokens.verify(SECRET, token, now=NOW) == Claims(
        role=Role.DOCTOR,
        user_id="dr.house",
        expires_at=EXPIRES_AT,
        name="Dr House",
        departments=("general", "psych"),
        capacity=4,
        session_started=int(NOW),
    )


@pytest.mark.parametrize(
    "departments",
    [
        "general",
        {"general": True},
        [1],
        ["general", None],
        [["general"]],
        *([d] for d in MALFORMED_DEPARTMENTS),
    ],
)
def test_verify_refuses_malformed_departments(departments: object) -> None:
    with pytest.raises(TokenError, match="departments"):
        tokens.verify(SECRET, crafted(departments=departments), now=NOW)


@pytest.mark.parametrize("capacity", [-1, tokens.MAX_CAPACITY + 1, 1.5, 2.0, "2", True, [2]])
def test_verify_refuses_a_malformed_capacity(capacity: object) -> None:
    with pytest.raises(TokenError, match="capacity"):
        tokens.verify(SECRET, crafted(capacity=capacity), now=NOW)


@pytest.mark.parametrize(
    "claims",
    [{"departments": ["general"]}, {"capacity": 2}, {"departments": ["psych"], "capacity": 1}],
)
def test_verify_refuses_a_patient_token_with_departments_or_capacity(
    claims: dict[str, object],
) -> None:
    token = crafted(role=Role.PATIENT.value, **claims)

    with pytest.raises(TokenError, match="patient"):
        tokens.verify(SECRET, token, now=NOW)


# The signature and claim checks are written out, not PyJWT's `jwt.decode`: both must agree


def signed_with_header(header: dict[str, Any], payload: dict[str, Any] | bytes) -> str:
    """A token with any header and payload, HS256-signed with SECRET whatever the header says."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(body)}"
    signature = hmac.digest(SECRET.encode(), signing_input.encode(), "sha256")
    return f"{signing_input}.{b64url(signature)}"


HS256 = {"alg": "HS256", "typ": "JWT"}
AGREED_TOKENS = {
    "valid": crafted(),
    "valid-with-kid": signed_with_header({**HS256, "kid": "k1"}, claims_payload()),
    "valid-with-empty-aud": crafted(aud=""),
    "valid-with-string-jti": crafted(jti="j1"),
    "aud": crafted(aud="someone"),
    "aud-list": crafted(aud=["chatsvc"]),
    "jti-not-a-string": signed_with_header(HS256, claims_payload(jti=7)),
    "kid-not-a-string": signed_with_header({**HS256, "kid": 7}, claims_payload()),
    "sub-not-a-string": signed_with_header(HS256, claims_payload(sub=7)),
    "iss-not-a-string": signed_with_header(HS256, claims_payload(iss=["chatsvc"])),
    "null-exp": signed_with_header(HS256, {**claims_payload(), "exp": None}),
    "no-alg": signed_with_header({"typ": "JWT"}, claims_payload()),
    "alg-hs384-signed-hs256": signed_with_header({"alg": "HS384"}, claims_payload()),
    "header-not-an-object": signed_with_header(["HS256"], claims_payload()),  # type: ignore[arg-type]
    "payload-not-an-object": signed_with_header(HS256, b'["chatsvc"]'),
    "payload-not-json": signed_with_header(HS256, b"{chatsvc"),
    "b64-false": signed_with_header({**HS256, "b64": False, "crit": ["b64"]}, claims_payload()),
    "signature-cut": crafted()[:-4],
    "two-segments": ".".join(crafted().split(".")[:2]),
}


@pytest.mark.parametrize("name", list(AGREED_TOKENS))
def test_verify_accepts_and_refuses_the_tokens_pyjwt_decode_does(name: str) -> None:
    token = AGREED_TOKENS[name]
    try:
        jwt.decode(
            token,
            SECRET,
            algorithms=[tokens.ALGORITHM],
            issuer=tokens.ISSUER,
            options={"require": ["exp", "iat", "sub", "iss"], "verify_exp": False},
        )
        pyjwt_accepts = True
    except jwt.PyJWTError:
        pyjwt_accepts = False

    try:
        tokens.verify(SECRET, token, now=NOW)
        accepted = True
    except TokenError:
        accepted = False

    assert accepted == pyjwt_accepts == name.startswith("valid")


@pytest.mark.parametrize(
    "header",
    [{**HS256, "crit": ["exp"]}, {**HS256, "crit": ["b64"], "b64": True}, {**HS256, "b64": "no"}],
)
def test_verify_refuses_header_extensions_no_chatsvc_token_carries(header: dict[str, Any]) -> None:
    with pytest.raises(TokenError, match="header"):
        tokens.verify(SECRET, signed_with_header(header, claims_payload()), now=NOW)


def test_verify_refuses_a_payload_segment_with_a_dot_in_it() -> None:
    header, payload, signature = crafted().split(".")
    with pytest.raises(TokenError):
        tokens.verify(SECRET, f"{header}.{payload[:5]}.{payload[5:]}.{signature}", now=NOW)


def deeply_nested_header_token(levels: int) -> str:
    header = b64url(('{"alg":"HS256","x":' + "[" * levels + "]" * levels + "}").encode())
    payload = b64url(json.dumps(claims_payload()).encode())
    return f"{header}.{payload}.{'A' * 43}"


@pytest.mark.parametrize(
    "token",
    [
        deeply_nested_header_token(1000),  # past the JSON decoder's depth: must not escape
        deeply_nested_header_token(100),
        "eyJhbGciOiJIUzI1NiJ9.\udcff\udcfe." + "A" * 43,  # lone surrogates (bad UTF-8)
        "eyJhbGciOiJIUzI1NiJ9.eyJ9." + "A" * 43 + "!!",  # junk after the signature
        "eyJhbGciOiJIUzI1NiJ9.eyJ9." + "A" * 42 + "+",  # not base64url
        "",
    ],
)
def test_any_malformed_token_is_a_token_error(token: str) -> None:
    with pytest.raises(TokenError):
        tokens.verify(SECRET, token, now=NOW)


@pytest.mark.parametrize("bad", [None, 42, b"abc"])
def test_a_token_that_is_not_text_is_a_token_error(bad: object) -> None:
    with pytest.raises(TokenError):
        tokens.verify(SECRET, bad, now=NOW)  # type: ignore[arg-type]


def test_a_signature_has_one_spelling() -> None:
    token = tokens.issue(SECRET, Role.PATIENT, "p1", now=NOW, ttl_s=TTL_S)
    head, signature = token.rsplit(".", 1)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    respelled = f"{head}.{signature[:-1]}{alphabet[last ^ 1]}"  # differs in an unused bit

    assert tokens.verify(SECRET, token, now=NOW).user_id == "p1"
    with pytest.raises(TokenError):
        tokens.verify(SECRET, respelled, now=NOW)


@pytest.mark.parametrize("secrets", [(), ("",), (SECRET, "")])
def test_no_token_verifies_without_a_real_secret(secrets: tuple[str, ...]) -> None:
    token = tokens.issue(SECRET, Role.PATIENT, "p1", now=NOW, ttl_s=TTL_S)
    with pytest.raises(TokenError):
        tokens.verify(secrets, token, now=NOW)


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf", "ses"])
@pytest.mark.parametrize("value", [2**53, 10**30, -1])
def test_times_beyond_what_clients_can_hold_are_refused(claim: str, value: int) -> None:
    payload = claims_payload(**{claim: value})
    if claim != "exp":
        payload["exp"] = EXPIRES_AT
    token = jwt.encode(payload, SECRET, algorithm="HS256")
    with pytest.raises(TokenError, match="times"):
        tokens.verify(SECRET, token, now=NOW)
