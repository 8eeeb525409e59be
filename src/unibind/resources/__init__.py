"""Data files shipped in the package (licences in README's Licences section).

- ``imagenet_classes.tsv``: the 1,000 ImageNet-1k classes in model output order, synset and
  WordNet lemmas, from timm 1.0.31 (``imagenet_synsets.txt`` + ``imagenet_synset_to_lemma.txt``),
  Apache-2.0.
- ``sentences.txt``: generic English sentences (objects, animals, scenes, sounds) used to fit
  text-to-text bridges; written for unibind, Apache-2.0.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from unibind.errors import UnibindError


class ResourceError(UnibindError, RuntimeError):
    """A data file shipped in the package is damaged (reinstall unibind)."""


def _lines(name: str) -> list[str]:
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


@lru_cache(maxsize=1)
def imagenet_classes() -> list[str]:
    """The first lemma of each ImageNet-1k class, in model output order (1,000 names)."""
    names = [line.split("\t", 1)[1].split(",")[0].strip() for line in
             _lines("imagenet_classes.tsv")]
    if len(names) != 1000:
        raise ResourceError(f"imagenet_classes.tsv holds {len(names)} classes, not 1000")
    return names


@lru_cache(maxsize=1)
def generic_sentences() -> list[str]:
    """The shipped generic sentence list."""
    return _lines("sentences.txt")
