"""The one device rule of radio: `auto` (or None) means CUDA when a GPU is visible, else the CPU; asking for CUDA
where none is visible is an error naming the field."""

from __future__ import annotations

from radio.config import ConfigError


def resolve_device(device: str | None, field: str = "device", error: type[Exception] = ConfigError) -> str:
    """`device` as a torch device string: `auto` / None -> `cuda` when available else `cpu`; `cuda[:N]` only when
    a CUDA device is visible (else `error` naming `field`); anything torch cannot parse is an error too."""
    import torch

    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise error(f"{field}: {err}") from err
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise error(f"{field}: {device} requested but no CUDA device is visible")
    return device
