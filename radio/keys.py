"""The watermark secret key: read from a file or an environment variable, never from a command-line literal.

The key itself never reaches logs, MLflow or artifacts; everything that must identify it records
`key_fingerprint(key)` instead, a keyed hash from which the key cannot be recovered.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from pathlib import Path

KEY_ENV_VAR = "RADIO_WATERMARK_KEY"
_FINGERPRINT_SALT = b"radio/key-fingerprint/v1"

log = logging.getLogger(__name__)


class MissingKeyError(ValueError):
    """The watermark key is missing or unreadable."""


def parse_key(text: str) -> int | bytes:
    """Interpret key material: a decimal integer (the three_bricks `seed`) stays an int, anything else is bytes."""
    stripped = text.strip()
    if not stripped:
        raise MissingKeyError("the watermark key is empty")
    if stripped.isdigit():
        return int(stripped)
    return stripped.encode()


def load_key(key_file: str | Path | None = None, env_var: str = KEY_ENV_VAR) -> int | bytes:
    """Load the secret key from `key_file` if given, else from the environment variable `env_var`."""
    if key_file is not None:
        path = Path(key_file)
        if not path.is_file():
            raise MissingKeyError(f"--key-file {path}: file not found")
        return parse_key(path.read_text())
    value = os.environ.get(env_var)
    if value is None:
        raise MissingKeyError(f"no watermark key: pass --key-file PATH or set the environment variable {env_var}")
    return parse_key(value)


def key_fingerprint(key: int | bytes) -> str:
    """Short public identifier of a key (8 hex chars of a salted BLAKE2b), safe to log and store."""
    material = str(key).encode() if isinstance(key, int) else key
    return hashlib.blake2b(material, key=_FINGERPRINT_SALT, digest_size=16).hexdigest()[:8]


def ensure_key_file(path: str | Path) -> Path:
    """Create a random key at `path` (mode 0600) unless it exists; return the path. Used by the embedded default."""
    path = Path(path).expanduser()
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    log.info("created a new random watermark key at %s (fingerprint %s)", path, key_fingerprint(load_key(path)))
    return path


def check_key(key_file: str | None, fingerprint: str) -> None:
    """Raise MissingKeyError unless this machine reads the key with `fingerprint` (a cluster node's preflight).

    On a cluster every node that builds data or runs detection reads the key itself: from `key_file` on a file
    system the nodes share, or from `RADIO_WATERMARK_KEY` in the node's own environment.
    """
    try:
        key = load_key(key_file)
    except MissingKeyError as err:
        hint = "; on a cluster, pass --key-file with a 0600 file on a file system every node shares"
        raise MissingKeyError(f"{err}{hint}") from None
    if key_fingerprint(key) != fingerprint:
        source = f"--key-file {key_file}" if key_file else f"${KEY_ENV_VAR}"
        raise MissingKeyError(
            f"{source} holds another key here (fingerprint {key_fingerprint(key)}, not {fingerprint})"
        )
