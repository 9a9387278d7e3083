"""The browser side of chatsvc: the patient widget, the doctor console, the supervisor dashboard.

Static files only (HTML, plain JavaScript modules, CSS, the vendored chart library under
`static/vendor/` beside its licence). The gateway serves them (`chatsvc.gateway.pages`); they
speak the same WebSocket protocol as every other client (docs/protocol.md).
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
