"""The web pages over HTTP: security headers, caching, what may be framed, and the guest renewal."""

from __future__ import annotations

import re
import time

import pytest

from chatsvc import tokens
from chatsvc.config import AuthConfig, Config, WebConfig
from chatsvc.gateway.pages import PAGES
from chatsvc.web import STATIC_DIR
from tests.conftest import TEST_SECRET, GatewayFactory
from tests.e2e.conftest import token_for

EMBEDDER = "https://hospital.example"


def directives(policy: str) -> dict[str, str]:
    pairs = (part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    return {name: value for name, value in pairs}


@pytest.mark.parametrize("path", sorted(PAGES))
async def test_every_page_allows_only_its_own_origin_scripts_and_connections(
    make_gateway: GatewayFactory, path: str
) -> None:
    gateway = await make_gateway(Config(web=WebConfig(embed_origins=(EMBEDDER,))))
    response = await gateway.get(path)
    assert response.status == 200
    assert response.content_type == "text/html"
    policy = directives(response.headers["Content-Security-Policy"])
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    expected_ancestors = f"'self' {EMBEDDER}" if path == "/widget" else "'none'"
    assert policy["frame-ancestors"] == expected_ancestors
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-cache"


async def test_a_file_is_revalidated_by_its_etag(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    first = await gateway.get("/static/common/connection.js")
    assert first.status == 200
    assert first.content_type == "text/javascript"
    assert "Content-Security-Policy" in first.headers
    etag = first.headers["ETag"]
    again = await gateway.get("/static/common/connection.js", headers={"If-None-Match": etag})
    assert again.status == 304
    assert await again.read() == b""
    vendored = await gateway.get("/static/vendor/uplot/uPlot.iife.min.js")
    assert vendored.headers["Cache-Control"] == "public, max-age=86400"


async def test_the_widget_loader_and_the_vendored_licence_are_served(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway()
    loader = await gateway.get("/widget.js")
    assert loader.status == 200
    assert loader.content_type == "text/javascript"
    assert "/widget#lang=" in await loader.text()
    licence = await gateway.get("/static/vendor/uplot/LICENSE")
    assert "MIT License" in await licence.text()


@pytest.mark.parametrize(
    "path",
    [
        "/static/../gateway/pages.py",
        "/static/%2e%2e/%2e%2e/config.py",
        "/static/..%2fweb%2f__init__.py",
        "/static/demo.html",  # pages are served by their own route, with their own policy
        "/static/nothing.js",
    ],
)
async def test_nothing_outside_the_static_files_is_served(
    make_gateway: GatewayFactory, path: str
) -> None:
    gateway = await make_gateway()
    response = await gateway.get(path)
    assert response.status == 404
    assert "import" not in await response.text()


async def test_the_root_leads_to_the_demo_page(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    response = await gateway.get("/", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/demo"


def test_no_page_carries_inline_script_or_style() -> None:
    """The policy refuses inline code; a page that had some would break in the browser."""
    for html in STATIC_DIR.glob("*.html"):
        text = html.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), html.name
        assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", text), html.name


async def test_a_guest_renews_their_session_as_the_same_user(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    created = await (await gateway.post("/api/session")).json()
    response = await gateway.post(
        "/api/session/renew", headers={"Authorization": f"Bearer {created['token']}"}
    )
    assert response.status == 201
    renewed = await response.json()
    assert renewed["user_id"] == created["user_id"]
    claims = tokens.verify(TEST_SECRET, renewed["token"], time.time())
    assert (claims.role, claims.user_id) == (tokens.Role.PATIENT, created["user_id"])


async def test_only_patients_renew_and_only_with_a_valid_token(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway()
    doctor = token_for(tokens.Role.DOCTOR, "d1", ("general",))
    refused = await gateway.post(
        "/api/session/renew", headers={"Authorization": f"Bearer {doctor}"}
    )
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "forbidden"
    missing = await gateway.post("/api/session/renew")
    assert missing.status == 401
    garbage = await gateway.post("/api/session/renew", headers={"Authorization": "Bearer x.y.z"})
    assert garbage.status == 401


async def test_a_guest_session_is_not_renewed_past_its_maximum_age(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(Config(auth=AuthConfig(guest_session_max_s=60)))
    now = time.time()
    old = tokens.issue(
        TEST_SECRET, tokens.Role.PATIENT, "g-old", now, 600, session_started=int(now) - 61
    )
    refused = await gateway.post("/api/session/renew", headers={"Authorization": f"Bearer {old}"})
    assert refused.status == 403
    assert "too old" in (await refused.json())["error"]["message"]

    created = await gateway.post("/api/session")
    assert created.headers["Cache-Control"] == "no-store"
    token = (await created.json())["token"]
    renewed = await gateway.post("/api/session/renew", headers={"Authorization": f"Bearer {token}"})
    assert renewed.headers["Cache-Control"] == "no-store"
    first = tokens.verify(TEST_SECRET, token, time.time()).session_started
    again = tokens.verify(TEST_SECRET, (await renewed.json())["token"], time.time())
    assert again.session_started == first  # renewals keep the session's start
