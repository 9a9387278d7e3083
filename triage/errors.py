"""The triage engine's exceptions.

TriageError                  root: anything the engine refuses or cannot do
├── SchemaMismatch           Redis holds data written by a newer chatsvc
└── ScriptError              a Lua script failed in a way no caller can correct
"""

from __future__ import annotations


class TriageError(Exception):
    """Root of the engine's errors."""


class SchemaMismatch(TriageError):
    """Raised at start when the desk's data was written by a newer schema than this code knows."""

    def __init__(self, stored: int, supported: int) -> None:
        super().__init__(
            f"the desk's data has schema version {stored}, newer than the {supported} this "
            "chatsvc understands: upgrade chatsvc, or point it at another Redis"
        )
        self.stored = stored
        self.supported = supported


class ScriptError(TriageError):
    """A script raised an error that is a bug or a broken server, not a wrong call."""
