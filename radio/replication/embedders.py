"""Image and text embedders behind one protocol each, registered by name.

Image embedders map uint8 images (n, H, W, 3) to float32 (n, d) rows of unit L2 norm, so that a dot product is a
cosine similarity. Text embedders do the same for strings (for the nearest-training-caption similarity).
Heavy libraries (torch, open_clip, transformers, scikit-learn) are imported inside the embedders that need them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from radio.registry import Registry

FloatMatrix = np.ndarray


def l2_normalise(vectors: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32; an all-zero row stays zero (a flat image has no direction)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, eps)).astype(np.float32)


def check_images(images: np.ndarray) -> np.ndarray:
    """Validate a uint8 (n, H, W, 3) batch and return it; a clear ValueError otherwise."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images: expected shape (n, H, W, 3), got {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"images: expected dtype uint8, got {images.dtype}")
    return images


@runtime_checkable
class ImageEmbedder(Protocol):
    """Maps uint8 images (n, H, W, 3) to float32 (n, d) L2-normalised embeddings."""

    name: str

    def embed(self, images: np.ndarray) -> FloatMatrix:
        """Embeddings of the images, one unit-norm row each."""
        ...


@runtime_checkable
class TextEmbedder(Protocol):
    """Maps strings to float32 (n, d) L2-normalised embeddings; `fit` sees the reference texts first (a no-op for
    pretrained encoders, the vocabulary for TF-IDF)."""

    name: str

    def fit(self, texts: Sequence[str]) -> TextEmbedder:
        """Prepare on the reference texts (the training captions); returns self."""
        ...

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Embeddings of the texts, one unit-norm row each."""
        ...


IMAGE_EMBEDDERS: Registry[Callable[..., ImageEmbedder]] = Registry("image embedder", field="embedder")
TEXT_EMBEDDERS: Registry[Callable[..., TextEmbedder]] = Registry("text embedder", field="text_embedder")


def register_embedder(name: str) -> Callable[[Callable[..., ImageEmbedder]], Callable[..., ImageEmbedder]]:
    """Class decorator: make an image embedder available to `get_embedder(name, ...)`."""
    return IMAGE_EMBEDDERS.register(name)


def register_text_embedder(name: str) -> Callable[[Callable[..., TextEmbedder]], Callable[..., TextEmbedder]]:
    """Class decorator: make a text embedder available to `get_text_embedder(name, ...)`."""
    return TEXT_EMBEDDERS.register(name)


def embedder_names() -> list[str]:
    """Names of the registered image embedders."""
    return IMAGE_EMBEDDERS.names()


def text_embedder_names() -> list[str]:
    """Names of the registered text embedders."""
    return TEXT_EMBEDDERS.names()


def get_embedder(name: str, **kwargs: Any) -> ImageEmbedder:
    """The image embedder registered as `name`, built with `kwargs`."""
    return IMAGE_EMBEDDERS.get(name)(**kwargs)


def get_text_embedder(name: str, **kwargs: Any) -> TextEmbedder:
    """The text embedder registered as `name`, built with `kwargs`."""
    return TEXT_EMBEDDERS.get(name)(**kwargs)


def _resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BICUBIC)) for img in images])


@register_embedder("pixel")
class PixelEmbedder:
    """DESIGN §5's cheap embedder: average-pool to `grid` x `grid`, subtract each image's per-channel mean,
    flatten, normalise. The mean subtraction makes it blind to brightness offsets (colour jitter of copies);
    8x8 pooling absorbs shifts of a pixel or two at 32x32, where 16x16 could not cluster crop-jittered copies."""

    def __init__(self, grid: int = 8) -> None:
        if grid < 1:
            raise ValueError(f"grid: expected a positive integer, got {grid}")
        self.grid = grid
        self.name = "pixel"

    def embed(self, images: np.ndarray) -> FloatMatrix:
        """Pooled, mean-subtracted, normalised pixels: (n, grid * grid * 3)."""
        images = check_images(images)
        n, height, width, _ = images.shape
        if height % self.grid or width % self.grid:
            # Exact block averages need divisible sides: resample to the nearest multiple first.
            side = max(self.grid, round(max(height, width) / self.grid) * self.grid)
            images = _resize_batch(images, side)
            height = width = side
        blocks = images.astype(np.float32).reshape(n, self.grid, height // self.grid, self.grid, width // self.grid, 3)
        pooled = blocks.mean(axis=(2, 4))
        pooled -= pooled.mean(axis=(1, 2), keepdims=True)
        return l2_normalise(pooled.reshape(n, -1))


def _torch_batches(images: np.ndarray, size: int, mean: Sequence[float], std: Sequence[float]) -> Any:
    """uint8 (n, H, W, 3) -> normalised float tensor (n, 3, size, size)."""
    import torch

    resized = _resize_batch(images, size) if images.shape[1:3] != (size, size) else images
    tensor = torch.from_numpy(resized.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (tensor - mean_t) / std_t


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

OPEN_CLIP_INSTALL_HINT = (
    "open_clip is not installed; install it without letting pip replace the CPU torch wheel: "
    "`pip install --no-deps open-clip-torch ftfy` (its torchvision must match your torch; "
    "for a CPU torch: `pip install torchvision --index-url https://download.pytorch.org/whl/cpu`)"
)


@register_embedder("open_clip")
class OpenClipEmbedder:
    """open_clip image tower from a local weight file (`pretrained=path`); no hub access.

    open-clip-torch is not a dependency of radio: its resolver pulls torchvision and can replace the CPU torch
    wheel with a CUDA one, so it is imported here, lazily, with an install hint when missing.
    """

    def __init__(
        self, weights: str | Path, model_name: str = "ViT-B-32", device: str = "cpu", batch_size: int = 64
    ) -> None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"open_clip weights: {path} not found")
        try:
            import open_clip
        except ImportError as err:
            raise ImportError(OPEN_CLIP_INSTALL_HINT) from err
        model, _, _ = open_clip.create_model_and_transforms(model_name, pretrained=str(path), device=device)
        self.model = model.eval()
        image_size = getattr(model.visual, "image_size", 224)
        self.size = int(image_size[0] if isinstance(image_size, tuple | list) else image_size)
        self.device = device
        self.batch_size = batch_size
        self.name = "open_clip"

    def embed(self, images: np.ndarray) -> FloatMatrix:
        """CLIP image features, normalised."""
        import torch

        images = check_images(images)
        out = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                batch = _torch_batches(images[start : start + self.batch_size], self.size, _CLIP_MEAN, _CLIP_STD)
                out.append(self.model.encode_image(batch.to(self.device)).float().cpu().numpy())
        return l2_normalise(np.concatenate(out) if out else np.zeros((0, 1), np.float32))


@register_embedder("sscd")
class SscdEmbedder:
    """SSCD copy-detection descriptor (Pizzi et al. 2022) from a local TorchScript file (`torch.jit.load`).

    The published TorchScript models take ImageNet-normalised images; 288 px is their recommended small-edge size.
    """

    def __init__(self, path: str | Path, size: int = 288, device: str = "cpu", batch_size: int = 64) -> None:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"SSCD TorchScript file: {file} not found")
        import torch

        with warnings.catch_warnings():
            # torch deprecates TorchScript, but SSCD's published descriptors are TorchScript files.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.model = torch.jit.load(str(file), map_location=device).eval()
        self.size = size
        self.device = device
        self.batch_size = batch_size
        self.name = "sscd"

    def embed(self, images: np.ndarray) -> FloatMatrix:
        """SSCD descriptors, normalised."""
        import torch

        images = check_images(images)
        out = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                batch = _torch_batches(
                    images[start : start + self.batch_size], self.size, _IMAGENET_MEAN, _IMAGENET_STD
                )
                out.append(self.model(batch.to(self.device)).float().cpu().numpy())
        return l2_normalise(np.concatenate(out) if out else np.zeros((0, 1), np.float32))


@register_text_embedder("tfidf")
class TfidfTextEmbedder:
    """Offline default: TF-IDF over word unigrams and bigrams (scikit-learn), fitted on the reference captions.

    It measures shared wording, not meaning: a prompt paraphrasing a caption scores lower than under CLIP.
    """

    def __init__(self) -> None:
        self.name = "tfidf"
        self._vectorizer: Any = None

    def fit(self, texts: Sequence[str]) -> TfidfTextEmbedder:
        """Learn the vocabulary and document frequencies of `texts`."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        if len(texts) == 0:
            raise ValueError("tfidf: nothing to fit on (no texts)")
        self._vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(list(texts))
        return self

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """TF-IDF rows (dense, float32), unit norm."""
        if self._vectorizer is None:
            raise ValueError("tfidf: call fit(reference texts) before embed")
        return l2_normalise(self._vectorizer.transform(list(texts)).toarray())


@register_text_embedder("clip")
class ClipTextEmbedder:
    """CLIP text encoder (projected text features) from a local transformers folder, as the paper measures
    prompt-to-caption closeness."""

    def __init__(self, path: str | Path, device: str = "cpu", batch_size: int = 64) -> None:
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"CLIP text encoder folder: {folder} not found")
        from transformers import AutoConfig, AutoTokenizer, CLIPModel, CLIPTextModelWithProjection

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        # A full CLIPModel folder (both towers) or a text-only CLIPTextModelWithProjection folder: the projection
        # width lives in different configs, so each is loaded as what it is.
        self._full = AutoConfig.from_pretrained(str(folder), local_files_only=True).model_type == "clip"
        model_class = CLIPModel if self._full else CLIPTextModelWithProjection
        self.model = model_class.from_pretrained(str(folder), local_files_only=True).to(device)
        self.model.eval()
        self.device = device
        self.batch_size = batch_size
        self.name = "clip"

    def fit(self, texts: Sequence[str]) -> ClipTextEmbedder:
        """Nothing to learn: pretrained."""
        return self

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        """Projected CLIP text embeddings, unit norm (captions truncated at 77 tokens)."""
        import torch

        out = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    list(texts[start : start + self.batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=77,
                    return_tensors="pt",
                ).to(self.device)
                features = (
                    projected(self.model.get_text_features(**batch)) if self._full else self.model(**batch).text_embeds
                )
                out.append(features.float().cpu().numpy())
        return l2_normalise(np.concatenate(out) if out else np.zeros((0, 1), np.float32))


def projected(output: Any) -> Any:
    """The projected features of CLIPModel.get_text_features / get_image_features: a tensor before
    transformers 5, an output object carrying them as `pooler_output` since."""
    return output if hasattr(output, "float") else output.pooler_output


def nearest_caption_similarity(
    embedder: TextEmbedder, prompts: Sequence[str], captions: Sequence[str], chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """For each prompt, the cosine similarity to its nearest training caption and that caption's index.

    The embedder is fitted on `captions` first. Chunked over captions so that large corpora fit in memory.
    """
    embedder.fit(captions)
    query = embedder.embed(prompts)
    best = np.full(len(prompts), -np.inf, dtype=np.float32)
    where = np.zeros(len(prompts), dtype=np.int64)
    for start in range(0, len(captions), chunk):
        sims = query @ embedder.embed(captions[start : start + chunk]).T
        arg = sims.argmax(axis=1)
        top = sims[np.arange(len(prompts)), arg]
        better = top > best
        best[better] = top[better]
        where[better] = arg[better] + start
    return best, where
