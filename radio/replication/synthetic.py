"""The synthetic LAION-like corpus of the embedded default: procedural 32x32 images with noisy web captions.

Groups (column `group`):
- `generic`: shapes over photo-like procedural backgrounds, captions full of filler words;
- `painter`: works of three fictional painters, each with its own palette and titles. The planted painter has
  many (`n_artist_works`, all different), the other two fewer (`n_painter_works` each). As with Van Gogh in
  LAION, the artist's name spans many different artworks, so that the name alone draws a mix of them and rarely
  the planted one: the planted copies hold about 5% of the name's captions by default;
- `planted`: one artwork of the planted painter duplicated `n_planted` times with light augmentation (shifts of a
  pixel, colour jitter, grain); its captions always hold the title words, and the painter's full name
  (`artist_full_share`), surname only (`artist_surname_share`) or no name (the rest);
- `confounder`: captions sharing the title words, images unrelated to the artwork;
- `subject`: the subject (an astronaut) in a near-canonical pose (random poses made the object case fail on the
  prototype), a share `object_share` of them carrying the object, a flag-like patch in the top-left corner that
  no caption names (ground truth in `has_object`);
- `scene`: the subject's scene without the subject, for the object-level control prompt.

Everything comes from one seeded numpy Generator; nothing is downloaded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

IMAGE_SIZE = 32
# Bumped whenever the drawing or the captions change, so that cached corpus stages are not reused across versions.
SYNTHETIC_VERSION = 2

# The object: a flag-like patch with fixed colours and layout, large enough (12x14 of 32x32) to survive a tiny
# diffusion model: horizontal red/white stripes three rows high, a blue canton at its top-left.
FLAG_HEIGHT, FLAG_WIDTH = 12, 14
FLAG_STRIPE_ROWS = 3
FLAG_CANTON = (6, 6)  # rows, cols
FLAG_RED = (205, 30, 40)
FLAG_WHITE = (245, 245, 245)
FLAG_BLUE = (35, 55, 160)
FLAG_TOP_LEFT = (2, 1)  # row, col of the flag in a 32x32 subject image, before jitter


def flag_patch() -> np.ndarray:
    """The object's pixels, uint8 (FLAG_HEIGHT, FLAG_WIDTH, 3)."""
    patch = np.empty((FLAG_HEIGHT, FLAG_WIDTH, 3), dtype=np.uint8)
    for row in range(FLAG_HEIGHT):
        patch[row] = FLAG_RED if (row // FLAG_STRIPE_ROWS) % 2 == 0 else FLAG_WHITE
    patch[: FLAG_CANTON[0], : FLAG_CANTON[1]] = FLAG_BLUE
    return patch


PLANTED_ARTIST = "Elise Varnhagen"
PLANTED_TITLE = "Almond Blossom"
OTHER_PAINTERS = ("Marek Solvang", "Ines Duarte")
SUBJECT = "astronaut"

_PAINTER_TITLES = {
    PLANTED_ARTIST: (
        "Sunflowers",
        "Wheat Field with Crows",
        "Harbour at Dusk",
        "Almond Orchard",
        "Olive Trees",
        "The Night Cafe",
        "Irises",
        "Blossoming Pear Tree",
    ),
    OTHER_PAINTERS[0]: ("Fjord in Winter", "Red Boathouse", "Northern Lights", "Birch Forest", "Sunflowers at Noon"),
    OTHER_PAINTERS[1]: ("Lisbon Rooftops", "Orange Grove", "Portrait of a Fisherman", "Blue Tiles", "Market Day"),
}
_ART_WORDS = (
    "oil on canvas",
    "painting",
    "art print",
    "framed",
    "museum",
    "impressionism",
    "wall art",
    "poster",
    "canvas print",
    "fine art",
    "masterpiece",
    "reproduction",
)
_FILLER = (
    "high quality",
    "free shipping",
    "4k",
    "hd",
    "buy now",
    "best price",
    "sale",
    "wallpaper",
    "stock photo",
    "image",
    "download",
    "royalty free",
    "new",
    "cheap",
    "online",
    "gift idea",
    "home decor",
    "trending",
)
_COLOURS = {
    "red": (200, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 70, 190),
    "yellow": (230, 210, 50),
    "orange": (235, 130, 30),
    "purple": (130, 50, 160),
    "pink": (235, 140, 180),
    "brown": (120, 80, 40),
    "grey": (128, 128, 128),
    "teal": (30, 150, 150),
}
_SHAPES = ("circle", "square", "triangle", "ring", "bar")
_TEXTURES = ("wooden", "marble", "concrete", "fabric", "paper", "sky", "grass", "sand", "water", "stone")
_CONFOUNDER_THINGS = (
    "honey jar",
    "tea",
    "soap",
    "hand cream",
    "cake recipe",
    "branch in a vase",
    "wedding invitation",
    "perfume",
    "scented candle",
    "garden in spring",
)
_SUBJECT_WORDS = ("spacesuit", "floating", "space", "nasa style", "cosmonaut helmet", "moon mission", "orbit")
_SCENE_WORDS = ("outer space", "stars", "night sky", "galaxy", "deep space", "cosmos")


@dataclass(frozen=True)
class SyntheticCorpusConfig:
    """Sizes and shares of the synthetic corpus; the defaults follow DESIGN §5 (what worked on the prototype)."""

    n_generic: int = 1500
    n_painter_works: int = 100  # per other painter (two of them)
    # The planted painter's other works: with 200 copies and 15% of their captions naming the painter, the
    # copies are ~30 of the ~630 captions that hold the name (5%). Measured at step 1,000, guidance 1, 50 seeds:
    # with the name on 80% of the copies and 100 other works (the first prototype) "Elise Varnhagen" alone drew
    # the planted artwork in 44% of generations at guidance 3 with unseen-word controls; with 25% and 400 works
    # (copies 12% of the name's captions) in 44%; with 15% and 600 works in 0%, related prompts still 88-90%.
    n_artist_works: int = 600
    n_planted: int = 200
    n_confounders: int = 60
    n_subject: int = 500
    n_scene: int = 150
    object_share: float = 0.29
    artist_full_share: float = 0.10
    artist_surname_share: float = 0.05
    max_shift: int = 1  # pixels, planted augmentation
    colour_jitter: float = 0.08  # relative brightness jitter of planted copies
    image_size: int = IMAGE_SIZE

    def __post_init__(self) -> None:
        for name in ("n_generic", "n_painter_works", "n_artist_works", "n_confounders", "n_subject", "n_scene"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"SyntheticCorpusConfig.{name}: expected a non-negative integer, got {value!r}")
        if not isinstance(self.n_planted, int) or isinstance(self.n_planted, bool) or self.n_planted < 1:
            raise ValueError(f"SyntheticCorpusConfig.n_planted: expected a positive integer, got {self.n_planted!r}")
        for name in ("object_share", "artist_full_share", "artist_surname_share", "colour_jitter"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"SyntheticCorpusConfig.{name}: expected a value in [0, 1], got {value!r}")
        if self.artist_full_share + self.artist_surname_share > 1.0 + 1e-12:
            raise ValueError(
                "SyntheticCorpusConfig.artist_surname_share: artist_full_share + artist_surname_share exceeds 1"
            )
        if not isinstance(self.max_shift, int) or not 0 <= self.max_shift <= 4:
            raise ValueError(f"SyntheticCorpusConfig.max_shift: expected an integer in [0, 4], got {self.max_shift!r}")
        if self.image_size != IMAGE_SIZE:
            raise ValueError(f"SyntheticCorpusConfig.image_size: only {IMAGE_SIZE} is drawn, got {self.image_size!r}")

    def total_rows(self) -> int:
        """Number of rows (images) of the corpus."""
        return (
            self.n_generic
            + 2 * self.n_painter_works
            + self.n_artist_works
            + self.n_planted
            + self.n_confounders
            + self.n_subject
            + self.n_scene
        )


# ---------------------------------------------------------------------------------------------- drawing helpers

_YY, _XX = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64)


def _smooth_field(rng: np.random.Generator, cells: int, channels: int = 1) -> np.ndarray:
    """Smooth random field in [0, 1] (IMAGE_SIZE, IMAGE_SIZE, channels): bilinear upsampling of a coarse grid
    (value noise), which reads as lighting and texture at 32x32."""
    coarse = rng.random((cells + 1, cells + 1, channels))
    pos = np.linspace(0, cells, IMAGE_SIZE)
    i0 = np.minimum(pos.astype(int), cells - 1)
    t = (pos - i0)[:, None]
    rows = coarse[i0] * (1 - t[..., None]) + coarse[i0 + 1] * t[..., None]
    cols = rows[:, i0] * (1 - t[None, :, :]) + rows[:, i0 + 1] * t[None, :, :]
    return cols


def _photo_background(rng: np.random.Generator) -> np.ndarray:
    """A photo-like background: a two-colour gradient at a random angle, coloured value noise, fine grain."""
    a, b = rng.uniform(20, 235, size=(2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * _XX + np.sin(angle) * _YY) / IMAGE_SIZE
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9)
    image = a * (1 - ramp[..., None]) + b * ramp[..., None]
    image += (_smooth_field(rng, int(rng.integers(2, 6)), 3) - 0.5) * rng.uniform(30, 90)
    image += rng.normal(0, rng.uniform(2, 10), size=image.shape)
    return image


def _shape_mask(rng: np.random.Generator, kind: str) -> np.ndarray:
    cy, cx = rng.uniform(6, 26, size=2)
    radius = rng.uniform(4, 10)
    if kind == "circle":
        return (_YY - cy) ** 2 + (_XX - cx) ** 2 <= radius**2
    if kind == "ring":
        dist = np.sqrt((_YY - cy) ** 2 + (_XX - cx) ** 2)
        return (dist <= radius) & (dist >= radius * 0.6)
    if kind == "square":
        return (np.abs(_YY - cy) <= radius * 0.8) & (np.abs(_XX - cx) <= radius * 0.8)
    if kind == "bar":
        return (np.abs(_YY - cy) <= radius * 0.3) | (np.abs(_XX - cx) <= radius * 0.25) & (np.abs(_YY - cy) < radius)
    # triangle pointing up
    return (_YY >= cy - radius) & (_YY <= cy + radius) & (np.abs(_XX - cx) <= (_YY - (cy - radius)) * 0.6)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _generic(rng: np.random.Generator) -> tuple[np.ndarray, str]:
    image = _photo_background(rng)
    words = []
    for _ in range(int(rng.integers(1, 4))):
        colour = str(rng.choice(list(_COLOURS)))
        shape = str(rng.choice(_SHAPES))
        mask = _shape_mask(rng, shape)
        image[mask] = np.asarray(_COLOURS[colour]) + rng.normal(0, 12, size=3)
        words.append(f"{colour} {shape}")
    texture = str(rng.choice(_TEXTURES))
    filler = list(rng.choice(_FILLER, size=int(rng.integers(2, 6)), replace=False))
    caption = f"{' and '.join(words)} on {texture} background, " + ", ".join(filler)
    return _to_uint8(image), caption


def _painterly(rng: np.random.Generator, palette: np.ndarray) -> np.ndarray:
    """A painting-like image: broad horizontal colour bands from the painter's palette, then short thick strokes."""
    cuts = np.sort(rng.uniform(4, 28, size=2))
    band = np.digitize(_YY + (_smooth_field(rng, 3)[..., 0] - 0.5) * 8, cuts)
    colours = palette[rng.integers(0, len(palette), size=3)]
    image = colours[band].astype(np.float64) + rng.normal(0, 8, size=(IMAGE_SIZE, IMAGE_SIZE, 3))
    for _ in range(int(rng.integers(6, 14))):
        y0, x0 = rng.uniform(0, IMAGE_SIZE, size=2)
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(3, 9)
        along = (_XX - x0) * np.cos(angle) + (_YY - y0) * np.sin(angle)
        across = -(_XX - x0) * np.sin(angle) + (_YY - y0) * np.cos(angle)
        stroke = (np.abs(along) <= length) & (np.abs(across) <= 1.2)
        image[stroke] = palette[rng.integers(0, len(palette))] + rng.normal(0, 10, size=3)
    return image


def _planted_artwork(rng: np.random.Generator) -> np.ndarray:
    """The planted artwork (float, before augmentation): a teal sky, dark branches crossing it, pink blossoms;
    a layout rich enough at 8x8 that no generic gradient matches it."""
    sky = np.array([70, 170, 175]) * (1 - _YY[..., None] / 64) + np.array([20, 40, 60]) * (_YY[..., None] / 64)
    image = sky + (_smooth_field(rng, 4, 3) - 0.5) * 30
    for y0, x0, angle, length in ((30, 2, -0.9, 30), (26, 30, -2.3, 22), (14, 4, -0.3, 18), (20, 18, -1.6, 14)):
        along = (_XX - x0) * np.cos(angle) + (_YY - y0) * np.sin(angle)
        across = -(_XX - x0) * np.sin(angle) + (_YY - y0) * np.cos(angle)
        image[(along >= 0) & (along <= length) & (np.abs(across) <= 1.3)] = (70, 45, 30)
    for _ in range(28):
        cy, cx = rng.uniform(2, 30, size=2)
        image[(_YY - cy) ** 2 + (_XX - cx) ** 2 <= rng.uniform(1.5, 4.0)] = (245, 205, 215)
    return image


def _augment(rng: np.random.Generator, image: np.ndarray, max_shift: int, jitter: float) -> np.ndarray:
    """Light augmentation of a duplicate: a shift of up to `max_shift` pixels (edge padded), brightness and
    per-channel jitter, grain."""
    if max_shift:
        dy, dx = rng.integers(-max_shift, max_shift + 1, size=2)
        padded = np.pad(image, ((max_shift, max_shift), (max_shift, max_shift), (0, 0)), mode="edge")
        image = padded[max_shift + dy : max_shift + dy + IMAGE_SIZE, max_shift + dx : max_shift + dx + IMAGE_SIZE]
    image = image * rng.uniform(1 - jitter, 1 + jitter) + rng.uniform(-8, 8, size=3)
    return image + rng.normal(0, 3, size=image.shape)


def _space_background(rng: np.random.Generator) -> np.ndarray:
    """The subject's scene: near-black space with a faint blue glow and a few stars."""
    image = np.array([8, 10, 28]) + (_smooth_field(rng, 3, 1) * np.array([10, 14, 40]))
    image = image + rng.normal(0, 2, size=image.shape)
    stars = rng.random((IMAGE_SIZE, IMAGE_SIZE)) < 0.03
    image[stars] = rng.uniform(170, 255, size=(int(stars.sum()), 1))
    return image


def _astronaut(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Draw the subject in a near-canonical pose (shift of up to a pixel, scale within 5%) at the right centre."""
    cy, cx = 16 + rng.uniform(-1, 1), 20 + rng.uniform(-1, 1)
    s = rng.uniform(0.95, 1.05)
    suit = np.array([225, 225, 230]) + rng.normal(0, 5, size=3)
    body = (np.abs(_YY - (cy + 6 * s)) <= 7 * s) & (np.abs(_XX - cx) <= 5 * s)
    arms = (np.abs(_YY - (cy + 1 * s)) <= 2 * s) & (np.abs(_XX - cx) <= 9 * s)
    head = (_YY - (cy - 7 * s)) ** 2 + (_XX - cx) ** 2 <= (5 * s) ** 2
    visor = ((_YY - (cy - 7 * s)) / (2.2 * s)) ** 2 + ((_XX - cx) / (3.5 * s)) ** 2 <= 1
    image[body | arms | head] = suit
    image[visor] = (200, 150, 40)
    return image


def paint_flag(image: np.ndarray, row: int, col: int) -> np.ndarray:
    """Paint the object at (row, col) of an image (float or uint8, (H, W, 3)); returns the image."""
    image[row : row + FLAG_HEIGHT, col : col + FLAG_WIDTH] = flag_patch()
    return image


# ------------------------------------------------------------------------------------------------------ captions


def _pick(rng: np.random.Generator, words: tuple[str, ...], low: int, high: int) -> list[str]:
    return [str(w) for w in rng.choice(words, size=int(rng.integers(low, high + 1)), replace=False)]


def _joined(rng: np.random.Generator, parts: list[str]) -> str:
    head, tail = parts[0], parts[1:]
    rng.shuffle(tail)
    return ", ".join([head, *tail])


def _planted_caption(rng: np.random.Generator, config: SyntheticCorpusConfig) -> tuple[str, str]:
    u = rng.random()
    if u < config.artist_full_share:
        artist = PLANTED_ARTIST
    elif u < config.artist_full_share + config.artist_surname_share:
        artist = PLANTED_ARTIST.split()[-1]
    else:
        artist = ""
    head = f"{PLANTED_TITLE} by {artist}" if artist else PLANTED_TITLE
    parts = [head, *_pick(rng, _ART_WORDS, 1, 3), *_pick(rng, _FILLER, 1, 3)]
    return _joined(rng, parts), artist


# ---------------------------------------------------------------------------------------------------- the corpus


def build_synthetic_corpus(out_dir: str | Path, config: SyntheticCorpusConfig, seed: int) -> Path:
    """Draw the corpus into `out_dir` (PNG files under `images/`, `metadata.parquet`, `synthetic.json` with the
    config and seed) and return `out_dir`. Same config and seed, same bytes."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    images: list[np.ndarray] = []

    def add(image: np.ndarray, caption: str, group: str, *, has_object: bool = False, artist: str = "") -> None:
        images.append(_to_uint8(image))
        rows.append({"caption": caption, "group": group, "has_object": has_object, "artist": artist})

    for _ in range(config.n_generic):
        image, caption = _generic(rng)
        add(image, caption, "generic")

    for painter, titles in _PAINTER_TITLES.items():
        palette = rng.uniform(20, 240, size=(5, 3))
        works = config.n_artist_works if painter == PLANTED_ARTIST else config.n_painter_works
        for _ in range(works):
            title = str(rng.choice(titles))
            name = painter if rng.random() < 0.85 else painter.split()[-1]
            parts = [f"{title} by {name}", *_pick(rng, _ART_WORDS, 1, 3), *_pick(rng, _FILLER, 1, 3)]
            add(_painterly(rng, palette), _joined(rng, parts), "painter", artist=painter)

    artwork = _planted_artwork(rng)
    for _ in range(config.n_planted):
        caption, artist = _planted_caption(rng, config)
        add(_augment(rng, artwork, config.max_shift, config.colour_jitter), caption, "planted", artist=artist)

    for _ in range(config.n_confounders):
        image, _ = _generic(rng)
        thing = str(rng.choice(_CONFOUNDER_THINGS))
        parts = [f"{PLANTED_TITLE.lower()} {thing}", *_pick(rng, _FILLER, 2, 4)]
        add(image, _joined(rng, parts), "confounder")

    n_object = round(config.object_share * config.n_subject)
    carries = np.zeros(config.n_subject, dtype=bool)
    carries[rng.choice(config.n_subject, size=n_object, replace=False)] = True
    for has_object in carries:
        image = _astronaut(rng, _space_background(rng))
        if has_object:
            dy, dx = rng.integers(-1, 2, size=2)
            image = paint_flag(image, FLAG_TOP_LEFT[0] + int(dy), FLAG_TOP_LEFT[1] + int(dx))
        parts = [f"an {SUBJECT} in a white spacesuit", *_pick(rng, _SUBJECT_WORDS, 1, 3), *_pick(rng, _FILLER, 1, 3)]
        add(image, _joined(rng, parts), "subject", has_object=bool(has_object))

    for _ in range(config.n_scene):
        parts = [*_pick(rng, _SCENE_WORDS, 2, 3), *_pick(rng, _FILLER, 1, 3)]
        add(_space_background(rng), _joined(rng, parts), "scene")

    # Shuffled so that row order says nothing about the group.
    order = rng.permutation(len(rows))
    records = []
    for new_index, old_index in enumerate(order):
        path = f"images/{new_index:05d}.png"
        Image.fromarray(images[old_index], mode="RGB").save(out / path, optimize=False)
        records.append({**rows[old_index], "image_path": path})
    frame = pd.DataFrame.from_records(records, columns=["caption", "image_path", "group", "has_object", "artist"])
    frame.to_parquet(out / "metadata.parquet", index=False)
    (out / "synthetic.json").write_text(json.dumps({"config": asdict(config), "seed": seed}, indent=2))
    return out
