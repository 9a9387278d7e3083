"""The triage engine: queues, matching, transcripts and desk counters, all in Redis.

Every piece of shared state lives here so that any number of gateway processes can serve one
desk. This package never imports `chatsvc`: the gateway calls it, never the other way round.
"""
