"""Test data the documentation's examples start from (``<!-- setup: KIND DIR -->``): small
synthetic media, made in a second, standing in for the reader's own folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.fixtures.media import make_media_folder, write_image, write_tone


def labelled_folder(root: Path) -> None:
    """``root/<label>/<k>.{png,wav,txt}``: 3 labels x 4 image + sound + caption triplets."""
    make_media_folder(root, per_label=4, seconds=1.0)


def photos_and_sounds(root: Path) -> None:
    """A folder of pictures and sounds with no labels and no captions (two nested trips)."""
    for k, (name, color, freq) in enumerate([("beach", (230, 210, 150), 0.0),
                                             ("forest", (40, 140, 60), 330.0),
                                             ("city", (120, 120, 130), 660.0)]):
        sub = root / ("day1" if k < 2 else "day2")
        write_image(sub / f"{name}.jpg", color, seed=k)
        write_tone(sub / f"{name}.wav", freq, 1.0, seed=k)
        write_image(sub / f"{name}-2.png", color, seed=10 + k)


SETUPS: dict[str, Callable[[Path], None]] = {
    "labelled-folder": labelled_folder,
    "photos-and-sounds": photos_and_sounds,
}


def run_setup(kind: str, where: Path) -> None:
    if kind not in SETUPS:
        raise KeyError(f"unknown docs setup {kind!r}; choose from {', '.join(SETUPS)}")
    SETUPS[kind](where)
