"""Inpainting masks: find, read, threshold, fit and dilate them. Pixels in, pixels out; reads mask files only.

- Release masks are JPEG, so they are thresholded (> 127 is overlay; JPEG leaves values 1-4 in the background
  and 249-254 in the overlay).
- A frame-specific mask (``<id>_prc_<probe>_frame<N>_mask.jpg``) is combined with the main mask for its frame
  (union). Upstream used the frame mask *instead of* the main mask; in every release frame mask the main mask's
  overlay is already contained (up to 0-4 JPEG-noise pixels), so the union gives upstream's result and never
  leaves a static overlay un-inpainted when a user's frame mask only draws the moving pointer.
- Dilation: a 5x5 square once (upstream's kernel), or 1x1 (no growth) when ``tight``.
- User mask folders override the release by file name; ``<stem>.png`` is accepted for a ``<stem>.jpg`` name.
Must not decide *which* masks a video needs (the catalogue's MaskPlan does) nor touch frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from processing.errors import ClipError
from processing.pixels.crop import fit_mask

THRESHOLD = 127
KERNEL_SIZE = 5
TIGHT_KERNEL_SIZE = 1
MASK_SUFFIXES = (".png", ".jpg", ".jpeg")


def find_mask(name: str, mask_dirs: Sequence[Path], release_mask_dir: Path | None) -> Path | None:
    """The file for mask ``name``: the first user folder holding ``name`` (or the same stem as png/jpg) wins,
    then the release's ``data/mask``. None when no folder has it."""
    stem = Path(name).stem
    for folder in mask_dirs:
        folder = Path(folder)
        for candidate in (name, *(stem + s for s in MASK_SUFFIXES)):
            if (folder / candidate).is_file():
                return folder / candidate
    if release_mask_dir is not None and (Path(release_mask_dir) / name).is_file():
        return Path(release_mask_dir) / name
    return None


def threshold(gray: np.ndarray) -> np.ndarray:
    """Boolean overlay mask from an 8-bit grey (or RGB) mask image: True where brighter than 127."""
    if gray.ndim == 3:
        gray = gray.max(axis=2)
    return gray > THRESHOLD


def read_mask(path: Path | str) -> np.ndarray:
    """Read a mask file (JPEG or PNG, any mode) and threshold it to a bool ``(H, W)`` array."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            gray = np.asarray(image.convert("L"))
    except (OSError, ValueError) as exc:
        raise ClipError(f"mask {path} cannot be read as an image: {exc}") from exc
    return threshold(gray)


def dilate(mask: np.ndarray, tight: bool = False) -> np.ndarray:
    """Grow ``mask`` by a 5x5 square (upstream's kernel, one pass), or leave it as is when ``tight`` (1x1)."""
    size = TIGHT_KERNEL_SIZE if tight else KERNEL_SIZE
    if size == 1:
        return mask.copy()
    kernel = np.ones((size, size), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel, iterations=1).astype(bool)


class MaskSet:
    """The dilated mask of every frame of one clip, loaded lazily and cached.

    The main mask is read, fitted and dilated once and reused for every frame; a frame-specific mask is read
    the first time its frame is asked for. ``size`` is the cropped frame's (w, h).
    """

    def __init__(
        self,
        clip: object,
        size: tuple[int, int],
        main_mask: Path | None,
        frame_masks: Mapping[int, Path],
        tight: bool,
        fov_mask: Path | None = None,
    ) -> None:
        self.clip, self.size, self.tight = clip, size, tight
        self.frame_masks = dict(frame_masks)
        # Outside the field of view (``fov_mask``, white = field) frames are blanked, not inpainted: masks stop there.
        self.outside = ~self._load(fov_mask) if fov_mask is not None else None
        self._main_raw = self._load(main_mask) if main_mask is not None else None
        self._main = self._inside(dilate(self._main_raw, tight)) if self._main_raw is not None else None
        self._cache: dict[int, np.ndarray] = {}

    def _inside(self, mask: np.ndarray) -> np.ndarray:
        return mask if self.outside is None else mask & ~self.outside

    def _load(self, path: Path) -> np.ndarray:
        return fit_mask(read_mask(path), self.size, self.clip, path)

    def __bool__(self) -> bool:
        return self._main is not None or bool(self.frame_masks)

    def for_frame(self, index: int) -> np.ndarray | None:
        """The dilated bool mask for source frame ``index``, or None when the frame needs no inpainting."""
        path = self.frame_masks.get(index)
        if path is None:
            return self._main
        if index not in self._cache:
            own = self._load(path)
            combined = own | self._main_raw if self._main_raw is not None else own
            self._cache.clear()  # frame masks come in runs; keeping one bounds memory
            self._cache[index] = self._inside(dilate(combined, self.tight))
        return self._cache[index]
