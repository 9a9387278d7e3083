"""The wire protocol: frames, their two encodings, error codes and the per-connection session.

Nothing in this package performs I/O, reads a clock or knows asyncio: bytes and the time come in
as arguments, frames and effects go out, so all of it is tested with plain calls.
"""
