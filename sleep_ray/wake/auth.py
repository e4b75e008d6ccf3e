"""Bearer tokens of the wake endpoint: where they come from, and how a replica checks them without holding them.

Two tokens: the admin token (memory, sleep and rollback routes) and an optional API token (completion routes).
Each is, in order: the one `launch` is given (tests, a program), the environment (`SLEEP_RAY_ADMIN_TOKEN`,
`SLEEP_RAY_API_TOKEN`), or a token file (`serve.admin_token_file`, `serve.api_token_file`) that must be readable by
its owner only. With none, `sleep-ray serve` makes a random admin token and writes it to the admin token file
(mode 0600), so the same token works after a restart.

A token never travels in the Serve application's arguments, config file, logs or REST API: those carry its
SHA-256 only, and a replica compares the SHA-256 of what a client presents with `hmac.compare_digest`. A replica
started from a config without a hash (`serve deploy`, a RayService) reads the environment inside the replica. An
endpoint with no admin token keeps its admin routes closed, unless `serve.open_admin` says to open them (logged
as a warning at start).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from sleep_ray.wake.errors import ApiError

ADMIN_ENV, API_ENV = "SLEEP_RAY_ADMIN_TOKEN", "SLEEP_RAY_API_TOKEN"
MIN_LENGTH = 16  # a token is known only by its SHA-256 downstream: it must not be guessable
log = logging.getLogger(__name__)


class TokenError(ValueError):
    """A token or token file that cannot be used (too short, readable by others)."""


def digest(token: str) -> str:
    """The SHA-256 (hex) a replica knows a token by."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _checked(token: str, where: str) -> str:
    token = token.strip()
    if len(token) < MIN_LENGTH:
        raise TokenError(f"the token from {where} has {len(token)} characters; at least {MIN_LENGTH} are needed")
    return token


def read_token_file(path: str | Path) -> str | None:
    """The token in `path`, None if there is no such file; refuses a file that others may read."""
    p = Path(path).expanduser()
    if not p.is_file():
        return None
    mode = stat.S_IMODE(p.stat().st_mode)
    if mode & 0o077:
        raise TokenError(f"token file {p} has mode {mode:o}; it must be readable by its owner only (chmod 600)")
    return _checked(p.read_text(), str(p))


def write_token_file(path: str | Path, token: str) -> Path:
    """Create `path` holding `token`, mode 0600 from the start (never world-readable, not even for a moment)."""
    p = Path(path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return p


@dataclass(frozen=True)
class Source:
    """A resolved token and where it came from (for a message to the person; never the token itself)."""

    token: str
    where: str


def resolve(given: str, env: str, token_file: str, create: bool) -> Source | None:
    """The token from `given`, env `env`, or `token_file`; with `create`, a new random one written to the file."""
    if given:
        return Source(_checked(given, "the caller"), "given by the caller")
    if os.environ.get(env):
        return Source(_checked(os.environ[env], env), f"env {env}")
    if token_file:
        found = read_token_file(token_file)
        if found:
            return Source(found, f"file {Path(token_file).expanduser()}")
        if create:
            path = write_token_file(token_file, secrets.token_urlsafe(32))
            return Source(path.read_text().strip(), f"new file {path} (mode 600)")
    return None


class Guard:
    """What a replica checks a bearer token against: a SHA-256, or nothing (open, or closed for lack of one)."""

    def __init__(self, sha256: str, env: str, *, open_when_unset: bool, name: str, warn: bool = True):
        if not sha256 and os.environ.get(env):  # deployed without a hash: the replica's own environment
            sha256 = digest(_checked(os.environ[env], env))
        self.sha256, self.open, self.name = sha256, not sha256 and open_when_unset, name
        if not sha256 and warn:
            log.warning(
                "%s routes are %s: no %s token is configured",
                name,
                "OPEN to anyone who can reach the endpoint" if self.open else "closed",
                name,
            )

    def check(self, authorization: str | None) -> None:
        """Raise a 401 ApiError unless `authorization` is "Bearer <the token>" (or the routes are open)."""
        if self.open:
            return
        if not self.sha256:
            raise ApiError(401, f"no {self.name} token is configured on this endpoint", code="no_token_configured")
        scheme, _, presented = (authorization or "").partition(" ")
        good = scheme.lower() == "bearer" and hmac.compare_digest(digest(presented.strip()), self.sha256)
        if not good:
            raise ApiError(401, "missing or wrong bearer token", code="invalid_api_key")
