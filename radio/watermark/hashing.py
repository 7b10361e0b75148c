"""Keyed hashing: maps (secret key, window of k previous tokens, candidate token) to a uniform number in [0, 1).

Two hashers share one interface, so every scheme works with either:

- `RadioHasher` (default): a vectorised splitmix64-style hash in int64 torch arithmetic. One pass over a (batch, k)
  window tensor gives a (batch, vocab) matrix of uniforms for generation, and one pass over (window, token) pairs
  gives (batch,) uniforms for detection. Distinct (window, token) pairs get independent uniforms, so under H0 the
  per-token scores of deduplicated pairs are exactly i.i.d.
- `ThreeBricksHasher`: reproduces the seeding of facebookresearch/three_bricks and radioactive-watermark
  (seed = (seed * 35317 + token) mod (2^64 - 1) over the window, a CPU `torch.Generator`, KGW green list = first
  int(gamma V) entries of `randperm(V)`, Aaronson r = `rand(V)`), so text watermarked by that code is detected
  here and the other way round. It loops over distinct windows in Python: exact, not fast.

For KGW a token is green when its uniform is below `green_threshold(gamma)`; for Aaronson the uniform is r.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod

import numpy as np
import torch

from radio.registry import Registry

_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    """Two's-complement view of an unsigned 64-bit constant, for int64 tensors."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_UNIFORM_BITS = 53
_UNIFORM_SCALE = 2.0**-_UNIFORM_BITS
_MAX_K = 64


def _mix_int(x: int) -> int:
    """splitmix64 finaliser on a Python int (used to derive constants)."""
    x &= _MASK64
    x ^= x >> 30
    x = (x * _MIX1) & _MASK64
    x ^= x >> 27
    x = (x * _MIX2) & _MASK64
    return x ^ (x >> 31)


# One odd multiplier per window position and one for the candidate token: the window and token enter the hash
# through a position-dependent linear form, then a full splitmix64 avalanche.
_POSITION_MULTIPLIERS = [_mix_int(0x9E3779B97F4A7C15 * (j + 1)) | 1 for j in range(_MAX_K)]
_TOKEN_MULTIPLIER = _mix_int(0xD6E8FEB86659FD93) | 1


GREEN_CACHE_BYTES = 64 << 20  # green rows kept per (vocabulary size, threshold): 32,768 rows at V = 2,048
_CHUNK = 1 << 15  # ids per chunk of the numpy pair hash: two uint64 buffers of 256 KB stay in a core's L2 cache


def _mix_numpy(x: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays, in place (numpy's uint64 ops wrap and shift logically).

    `scratch` (same shape) receives the shifted copies, so that no temporary is allocated.
    """
    tmp = np.empty_like(x) if scratch is None else scratch
    np.right_shift(x, np.uint64(30), out=tmp)
    x ^= tmp
    x *= np.uint64(_MIX1)
    np.right_shift(x, np.uint64(27), out=tmp)
    x ^= tmp
    x *= np.uint64(_MIX2)
    np.right_shift(x, np.uint64(31), out=tmp)
    x ^= tmp
    return x


def _uint64_view(tensor: torch.Tensor) -> np.ndarray:
    """A CPU integer tensor as a uint64 numpy array: a view (no copy) when it is already int64 on the CPU."""
    return tensor.detach().cpu().to(torch.int64).numpy().view(np.uint64)


def _shift_right(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 tensors (torch's >> is arithmetic on signed values)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _mix_torch(x: torch.Tensor) -> torch.Tensor:
    """splitmix64 finaliser on int64 tensors; int64 multiplication wraps modulo 2^64 on CPU and CUDA alike."""
    x = x ^ _shift_right(x, 30)
    x = x * _signed(_MIX1)
    x = x ^ _shift_right(x, 27)
    x = x * _signed(_MIX2)
    return x ^ _shift_right(x, 31)


def key_to_int64(key: int | bytes | str) -> int:
    """Derive the 64-bit hashing key from the secret (int, bytes or str) through BLAKE2b."""
    material = str(key).encode() if isinstance(key, int) else key.encode() if isinstance(key, str) else key
    digest = hashlib.blake2b(material, digest_size=8, person=b"radio-wm-key").digest()
    return _signed(int.from_bytes(digest, "little"))


class Hasher(ABC):
    """Keyed map from (window, token) to a uniform in [0, 1); see the module docstring."""

    name: str

    @abstractmethod
    def __init__(self, key: int | bytes | str, scheme: str) -> None:
        """Bind the secret key; `scheme` is the registered scheme name (some hashers draw differently per scheme)."""

    @abstractmethod
    def vocab_uniforms(self, windows: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """(batch, k) int64 windows -> (batch, vocab_size) float64 uniforms, one per candidate token."""

    @abstractmethod
    def pair_uniforms(self, windows: torch.Tensor, tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """(n, k) windows and (n,) tokens (all < vocab_size) -> (n,) float64 uniforms."""

    @abstractmethod
    def green_threshold(self, gamma: float, vocab_size: int) -> float:
        """Uniforms below this value are green; it is also the exact H0 probability of green."""

    def vocab_green(self, windows: torch.Tensor, vocab_size: int, threshold: float) -> torch.Tensor:
        """(batch, k) windows -> (batch, vocab_size) bool: uniform < threshold (hashers may skip the uniforms)."""
        return self.vocab_uniforms(windows, vocab_size) < threshold


class RadioHasher(Hasher):
    """Keyed splitmix64 hash of (window, token) (the default).

    uniform(window, token) = top53(mix(mix(key ^ sum_j (w_j + 1) C_j) + (token + 1) C_T)) / 2^53.
    CPU tensors are hashed with numpy uint64 arithmetic (an order of magnitude faster than torch's int64 kernels
    here); CUDA tensors with the identical function in torch int64. `backend="torch"` forces the torch path (tests
    check that both give the same bits).
    """

    name = "radio"

    def __init__(self, key: int | bytes | str, scheme: str, backend: str = "auto") -> None:
        self._key64 = key_to_int64(key) & _MASK64
        self._backend = backend
        self._vocab_rows: dict[int, np.ndarray] = {}
        self._green_rows: dict[tuple[int, int], dict[int, np.ndarray]] = {}

    def _use_numpy(self, tensor: torch.Tensor) -> bool:
        return self._backend == "numpy" or (self._backend == "auto" and tensor.device.type == "cpu")

    def _window_seeds_numpy(self, windows: torch.Tensor) -> np.ndarray:
        w = _uint64_view(windows)
        acc = np.full(w.shape[0], self._key64, dtype=np.uint64)
        scratch = np.empty_like(acc)
        for j in range(w.shape[1]):  # k is small; each step is vectorised over the batch
            np.add(w[:, j], np.uint64(1), out=scratch)
            scratch *= np.uint64(_POSITION_MULTIPLIERS[j])
            acc ^= scratch
        return _mix_numpy(acc, scratch)

    def _pair_uniforms_numpy(self, windows: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """The numpy pair hash, in cache-sized chunks with in-place arithmetic.

        At 1e7 tokens the one-shot version made ~20 temporaries of 80 MB each: every one paid fresh page faults
        and a trip through memory, so the hash cost grew faster than the tokens. Chunks of `_CHUNK` ids reuse the
        same few buffers, which stay in cache. The arithmetic is the same, so the uniforms are identical.
        """
        n = tokens.shape[0]
        out = np.empty(n, dtype=np.float64)
        chunk = min(n, _CHUNK)
        acc = np.empty(chunk, dtype=np.uint64)
        scratch = np.empty(chunk, dtype=np.uint64)
        for start in range(0, n, _CHUNK):
            stop = min(n, start + _CHUNK)
            a, tmp = acc[: stop - start], scratch[: stop - start]
            a.fill(self._key64)
            for j in range(windows.shape[1]):
                np.add(windows[start:stop, j], np.uint64(1), out=tmp)
                tmp *= np.uint64(_POSITION_MULTIPLIERS[j])
                a ^= tmp
            _mix_numpy(a, tmp)
            np.add(tokens[start:stop], np.uint64(1), out=tmp)
            tmp *= np.uint64(_TOKEN_MULTIPLIER)
            a += tmp
            _mix_numpy(a, tmp)
            a >>= np.uint64(64 - _UNIFORM_BITS)
            # uint64 -> float64 is exact below 2^53 and the scale is a power of two: same bits as the one-shot path.
            np.multiply(a, _UNIFORM_SCALE, out=out[start:stop])
        return out

    def _window_seeds_torch(self, windows: torch.Tensor) -> torch.Tensor:
        acc = torch.full((windows.shape[0],), _signed(self._key64), dtype=torch.int64, device=windows.device)
        for j in range(windows.shape[1]):
            acc = acc ^ ((windows[:, j].to(torch.int64) + 1) * _signed(_POSITION_MULTIPLIERS[j]))
        return _mix_torch(acc)

    def _check(self, windows: torch.Tensor) -> None:
        if windows.shape[1] > _MAX_K:
            raise ValueError(f"k: at most {_MAX_K} tokens per window, got {windows.shape[1]}")

    def _vocab_row(self, vocab_size: int) -> np.ndarray:
        """(token + 1) * C_T for every token of the vocabulary: the same every step, so computed once per size."""
        row = self._vocab_rows.get(vocab_size)
        if row is None:
            row = (np.arange(vocab_size, dtype=np.uint64) + np.uint64(1)) * np.uint64(_TOKEN_MULTIPLIER)
            row.flags.writeable = False
            self._vocab_rows[vocab_size] = row
        return row

    def _vocab_hash_numpy(self, windows: torch.Tensor, vocab_size: int) -> np.ndarray:
        """(batch, k) windows -> (batch, vocab_size) uint64 hashes, computed in place in one buffer."""
        return self._seeds_vocab_hash(self._window_seeds_numpy(windows.cpu()), vocab_size)

    def _seeds_vocab_hash(self, seeds: np.ndarray, vocab_size: int) -> np.ndarray:
        """(batch,) window seeds -> (batch, vocab_size) uint64 hashes."""
        hashed = np.empty((seeds.shape[0], vocab_size), dtype=np.uint64)
        np.add(seeds[:, None], self._vocab_row(vocab_size)[None, :], out=hashed)
        return _mix_numpy(hashed)

    def vocab_uniforms(self, windows: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """(batch, k) windows -> (batch, vocab_size) uniforms in one vectorised pass."""
        self._check(windows)
        if self._use_numpy(windows):
            hashed = self._vocab_hash_numpy(windows, vocab_size)
            return torch.from_numpy(self._uniform_numpy(hashed)).to(windows.device)
        seeds = self._window_seeds_torch(windows)
        vocab = (torch.arange(vocab_size, dtype=torch.int64, device=windows.device) + 1) * _signed(_TOKEN_MULTIPLIER)
        return self._uniform_torch(_mix_torch(seeds[:, None] + vocab[None, :]))

    def vocab_green(self, windows: torch.Tensor, vocab_size: int, threshold: float) -> torch.Tensor:
        """(batch, k) windows -> (batch, vocab_size) bool green mask, compared on the integer hashes.

        uniform = (h >> 11) * 2^-53 < t  <=>  (h >> 11) < ceil(t * 2^53)  <=>  h < ceil(t * 2^53) * 2^11, exactly
        (h >> 11 is an integer and t * 2^53 is exact for t in (0, 1)): one comparison per token, no float pass.
        """
        self._check(windows)
        if not self._use_numpy(windows) or not 0.0 < threshold < 1.0:
            return self.vocab_uniforms(windows, vocab_size) < threshold
        bound = math.ceil(threshold * 2.0**_UNIFORM_BITS) << (64 - _UNIFORM_BITS)
        return torch.from_numpy(self._cached_green(windows, vocab_size, bound)).to(windows.device)

    def _cached_green(self, windows: torch.Tensor, vocab_size: int, bound: int) -> np.ndarray:
        """Green rows looked up by window seed; only windows not seen before are hashed.

        Generation asks for the same windows again and again (at k = 1 there are only V of them), and hashing a
        (batch, V) block costs six passes over 8 bytes per entry where a lookup copies one byte per entry. The
        cache is bounded (`GREEN_CACHE_BYTES` per vocabulary size and threshold) and emptied when full.
        """
        seeds = self._window_seeds_numpy(windows.cpu())
        cache = self._green_rows.setdefault((vocab_size, bound), {})
        keys = seeds.tolist()
        missing = sorted({key for key in keys if key not in cache})
        if missing and (len(cache) + len(missing)) * vocab_size > GREEN_CACHE_BYTES:
            cache.clear()  # the rows this batch found are gone too: hash every window of the batch
            missing = sorted(set(keys))
        if missing:
            fresh = self._seeds_vocab_hash(np.array(missing, dtype=np.uint64), vocab_size) < np.uint64(bound)
            cache.update(zip(missing, fresh, strict=True))
        if not keys:
            return np.zeros((0, vocab_size), dtype=bool)
        return np.stack([cache[key] for key in keys])

    def pair_uniforms(self, windows: torch.Tensor, tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """(n, k) windows and (n,) tokens -> (n,) uniforms in one vectorised pass."""
        self._check(windows)
        if self._use_numpy(windows):
            uniforms = self._pair_uniforms_numpy(_uint64_view(windows), _uint64_view(tokens))
            return torch.from_numpy(uniforms).to(tokens.device)
        seeds = self._window_seeds_torch(windows)
        return self._uniform_torch(_mix_torch(seeds + (tokens.to(torch.int64) + 1) * _signed(_TOKEN_MULTIPLIER)))

    @staticmethod
    def _uniform_numpy(hashed: np.ndarray) -> np.ndarray:
        # The top 53 bits times 2^-53: exactly representable, so threshold comparisons are exact.
        return (hashed >> np.uint64(64 - _UNIFORM_BITS)).astype(np.float64) * _UNIFORM_SCALE

    @staticmethod
    def _uniform_torch(hashed: torch.Tensor) -> torch.Tensor:
        return _shift_right(hashed, 64 - _UNIFORM_BITS).to(torch.float64) * _UNIFORM_SCALE

    def green_threshold(self, gamma: float, vocab_size: int) -> float:
        """Each token is green independently with probability gamma (to 2^-53)."""
        return float(gamma)


class ThreeBricksHasher(Hasher):
    """Seeding of facebookresearch/three_bricks and radioactive-watermark (`seeding='hash'`), exactly."""

    name = "three_bricks"
    SALT = 35317

    def __init__(self, key: int | bytes | str, scheme: str) -> None:
        if not isinstance(key, int) or key < 0:
            raise ValueError("key: the three_bricks hashing mode needs a non-negative integer key (their `seed`)")
        self._seed = key
        # KGW draws a permutation, Aaronson a uniform vector, from the same seed.
        self._draw_permutation = scheme == "kgw"

    def window_seed(self, window: list[int]) -> int:
        """seed = (seed * 35317 + token) mod (2^64 - 1), folded over the window in order."""
        seed = self._seed
        for token in window:
            seed = (seed * self.SALT + token) % (2**64 - 1)
        return seed

    def _uniforms_for_seed(self, seed: int, vocab_size: int) -> torch.Tensor:
        generator = torch.Generator(device="cpu")
        generator.manual_seed(seed)
        if self._draw_permutation:
            # KGW: green list = randperm(V)[:int(gamma V)]; a token's rank / V is below int(gamma V) / V iff green.
            # (numpy for the inverse permutation: torch's CPU index_put is ~100x slower here.)
            permutation = torch.randperm(vocab_size, generator=generator).numpy()
            ranks = np.empty(vocab_size, dtype=np.float64)
            ranks[permutation] = np.arange(vocab_size, dtype=np.float64)
            return torch.from_numpy(ranks / vocab_size)
        return torch.rand(vocab_size, generator=generator).to(torch.float64)

    def vocab_uniforms(self, windows: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """One CPU generator draw per row (exact, slow)."""
        rows = [self._uniforms_for_seed(self.window_seed(w), vocab_size) for w in windows.tolist()]
        if not rows:
            return torch.empty((0, vocab_size), dtype=torch.float64, device=windows.device)
        return torch.stack(rows).to(windows.device)

    def pair_uniforms(self, windows: torch.Tensor, tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """One generator draw per distinct window, shared by every token scored under it."""
        out = torch.empty(tokens.shape[0], dtype=torch.float64)
        if tokens.numel() == 0:
            return out.to(tokens.device)
        if windows.shape[1] == 0:  # k = 0: one window for every token
            unique, inverse = windows.new_zeros((1, 0)).cpu(), torch.zeros(tokens.shape[0], dtype=torch.long)
        else:
            unique, inverse = torch.unique(windows.cpu(), dim=0, return_inverse=True)
        tokens_cpu = tokens.cpu()
        order = torch.argsort(inverse, stable=True)
        counts = torch.bincount(inverse, minlength=unique.shape[0]).tolist()
        start = 0
        for row, count in zip(unique.tolist(), counts, strict=True):
            idx = order[start : start + count]
            start += count
            out[idx] = self._uniforms_for_seed(self.window_seed(row), vocab_size)[tokens_cpu[idx]]
        return out.to(tokens.device)

    def green_threshold(self, gamma: float, vocab_size: int) -> float:
        """Green list size is int(gamma V), so P(green) = int(gamma V) / V."""
        return int(gamma * vocab_size) / vocab_size


HASHERS: Registry[type[Hasher]] = Registry("hashing")
HASHERS.add("radio", RadioHasher)
HASHERS.add("three_bricks", ThreeBricksHasher)
