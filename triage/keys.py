"""Every Redis key name chatsvc uses, built in one place.

A desk's triage state shares the hash tag `{desk}` so that every matching script touches one
Redis Cluster slot. Keys are built only by the functions here; each says why it has no TTL when
it has none.
"""

from __future__ import annotations

PREFIX = "chatsvc"
# The hash tag every desk-wide key carries (one Cluster slot for all matching).
DESK_TAG = "{desk}"


def desk_meta() -> str:
    """Hash: schema_version, created_ms. No TTL: it identifies the desk's data for its life."""
    return f"{PREFIX}:{DESK_TAG}:meta"
