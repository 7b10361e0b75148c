"""The secret guard: refuses any text or file that holds registered secret material before it is recorded.

A sweep registers its secrets (e.g. a watermark key) as data; the MLflow recorder checks every param, tag,
metric name, table, text and artifact file, and a match raises `SecretLeakError` instead of writing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


class SecretLeakError(RuntimeError):
    """Something about to be logged contains registered secret material; nothing was logged."""


class SecretGuard:
    """Refuses any text or file that contains a registered secret (raw, decimal or hex form).

    Forms of 8 characters or more match anywhere; shorter forms (e.g. a small integer seed) match only as a
    whole token: a short key `7` refuses the param value "7" but not the metric name "top7".
    """

    def __init__(self) -> None:
        self._long: list[bytes] = []
        self._short: list[re.Pattern[bytes]] = []

    def register(self, secret: bytes | str | int) -> None:
        """Register secret material; its raw, text and hex forms are refused from now on."""
        if isinstance(secret, bool):
            raise TypeError("a secret cannot be a bool")
        forms: set[bytes] = set()
        if isinstance(secret, int):
            forms.add(str(secret).encode())
        else:
            raw = secret.encode() if isinstance(secret, str) else bytes(secret)
            forms.add(raw)
            forms.add(raw.hex().encode())
            stripped = raw.strip()
            if stripped:
                forms.add(stripped)
        for form in forms:
            if not form:
                continue
            if len(form) >= 8:
                self._long.append(form)
            else:
                self._short.append(re.compile(rb"(?<![0-9A-Za-z])" + re.escape(form) + rb"(?![0-9A-Za-z])"))

    @property
    def active(self) -> bool:
        return bool(self._long or self._short)

    def contains_secret(self, data: str | bytes) -> bool:
        blob = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
        if any(form in blob for form in self._long):
            return True
        return any(pattern.search(blob) for pattern in self._short)

    def check(self, data: str | bytes | Any, where: str) -> None:
        """Raise SecretLeakError if `data` (text, bytes, or anything with a str()) contains a secret."""
        if not self.active:
            return
        if not isinstance(data, str | bytes):
            data = str(data)
        if self.contains_secret(data):
            raise SecretLeakError(f"refusing to log {where}: it contains registered secret material")

    def check_file(self, path: str | Path, where: str | None = None) -> None:
        if not self.active:
            return
        self.check(Path(path).read_bytes(), where or f"artifact {Path(path).name}")
