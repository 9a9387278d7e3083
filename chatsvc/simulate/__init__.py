"""`chatsvc simulate`: rehearse a surge against a running service with real WebSocket clients.

`scenario` (parameters, profile files) → `arrivals` (the seeded plan) → `runner` (doctors and
patients of `actors` play it, recording into a `journal`) → `report` (figures) and `chart`
(PNG). `command` is the command line's side.
"""
