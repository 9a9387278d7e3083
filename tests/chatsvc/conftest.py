"""Helpers shared by the chatsvc tests assert too: pytest rewrites their asserts, so a failure
shows the values compared, as it does in a test module."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.chatsvc.sessions", "tests.chatsvc.wire")
