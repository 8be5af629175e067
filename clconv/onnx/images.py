"""Images to model input: Pillow loads, resizes the shorter side, centre-crops,
normalises with mean/std per channel, and lays out NCHW float32."""
from __future__ import annotations

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_image(path, size: tuple[int, int], mean=IMAGENET_MEAN, std=IMAGENET_STD,
               channels: int = 3) -> np.ndarray:
    """(1, channels, H, W) float32 from an image file: values in [0, 1], then
    (x - mean) / std per channel."""
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError("loading images needs Pillow: pip install 'clconv[onnx]'") from error
    height, width = size
    with Image.open(path) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        scale = max(height / image.height, width / image.width)
        resized = image.resize((max(width, round(image.width * scale)),
                                max(height, round(image.height * scale))), Image.BILINEAR)
        left = (resized.width - width) // 2
        top = (resized.height - height) // 2
        crop = resized.crop((left, top, left + width, top + height))
        pixels = np.asarray(crop, dtype=np.float32) / 255.0
    pixels = pixels.reshape(height, width, channels)
    mean = np.asarray(mean, np.float32).reshape(1, 1, -1)
    std = np.asarray(std, np.float32).reshape(1, 1, -1)
    if mean.size not in (1, channels) or std.size not in (1, channels):
        raise ValueError(f"mean/std: expected 1 or {channels} values, got {mean.size} and "
                         f"{std.size}")
    return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1)[None])


def top_k(scores: np.ndarray, k: int):
    """[(class index, score, probability)] of the k best classes of a 1-D score vector;
    probabilities are the scores when they already sum to 1, else their softmax."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if np.all(scores >= 0) and abs(scores.sum() - 1) < 1e-3:
        probs = scores
    else:
        e = np.exp(scores - scores.max())
        probs = e / e.sum()
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(i), float(scores[i]), float(probs[i])) for i in order]
