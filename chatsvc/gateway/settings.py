"""What the gateway needs to run, resolved from the configuration before the app is built."""

from __future__ import annotations

from dataclasses import dataclass

from chatsvc.config import Config


@dataclass(frozen=True)
class Settings:
    config: Config
    redis_url: str  # the configured URL, or the embedded Redis's socket
    token_secret: str  # from the config, or generated in the data directory: signs new tokens

    @property
    def verify_secrets(self) -> tuple[str, ...]:
        """The secrets a token may be signed with: the current one, then a rollover's old ones."""
        return (self.token_secret, *self.config.auth.previous_token_secrets)
