"""`chatsvc.client`: a Python client that speaks the whole chatsvc protocol.

Used by the tests, the benchmarks and integrators. See docs/protocol.md for an example.
"""

from chatsvc.client.client import ChatClient, ChatError

__all__ = ["ChatClient", "ChatError"]
