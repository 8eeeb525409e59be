"""A 2-D map of a run's space: UMAP (or PCA) of every item (sampled when large), two PNGs.

``<method>_by_class.png`` colours points by label, ``<method>_by_modality.png`` by modality (the
reference's two plots), named after the method actually used: ``umap_by_*`` or ``pca_by_*`` (PCA
when asked for, or when there are too few points for UMAP). A collection without labels is
coloured by group (files sharing a stem) when groups pair items, else by top-level folder:
``<method>_by_group.png`` / ``<method>_by_folder.png`` (``colour_key``). The 2-D coordinates
are kept in ``coords.safetensors`` with a digest of what they were computed from, so a second
call on unchanged inputs skips UMAP (and its numba compile, ~20-40 s per process).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from unibind.errors import unknown
from unibind.features.folder import Features
from unibind.modalities import get_modality, modality_names
from unibind.run.folder import Run
from unibind.util.atomic import atomic_file

log = logging.getLogger(__name__)

FIGSIZE, DPI = (8.0, 6.0), 100  # 800 x 600 pixels


def sample_items(items: Any, max_points: int, seed: int = 0) -> np.ndarray:
    """Indices of at most ``max_points`` items, the same fraction from every modality."""
    n = len(items)
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    keep = []
    for m in items["modality"].unique():
        idx = np.flatnonzero((items["modality"] == m).to_numpy())
        take = max(1, int(round(len(idx) * max_points / n)))
        keep.append(rng.choice(idx, size=min(take, len(idx)), replace=False))
    return np.sort(np.concatenate(keep))


METHODS = ("umap", "pca")
UMAP_MIN_POINTS = 8


def method_used(method: str, n: int) -> str:
    """The layout method that runs for ``n`` points: UMAP needs ``UMAP_MIN_POINTS``."""
    if method not in METHODS:
        raise unknown("layout method", method, METHODS)
    return "pca" if n < UMAP_MIN_POINTS else method


def layout(x: np.ndarray, method: str = "umap", seed: int = 0) -> np.ndarray:
    """2-D coordinates: UMAP (cosine) or PCA (fast, for tests and tiny sets)."""
    n = len(x)
    if method_used(method, n) == "umap":
        import umap

        reducer = umap.UMAP(n_neighbors=min(15, n - 1), metric="cosine", random_state=seed,
                            n_jobs=1, init="spectral" if n > 32 else "random")
        return np.asarray(reducer.fit_transform(x), dtype=np.float32)
    xc = x - x.mean(axis=0)
    if n < 2:
        return np.zeros((n, 2), np.float32)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    out = xc @ vt[:2].T
    return np.pad(out, ((0, 0), (0, 2 - out.shape[1]))).astype(np.float32)


KINDS = ("class", "group", "folder")  # what the first plot colours by, in order of preference


def colour_key(items: Any) -> tuple[str, np.ndarray]:
    """``(kind, value per item)``: labels when there are two or more, else groups when some
    group pairs items, else the top-level folder of each item's id."""
    labels = items["label"].astype(str).str.strip()
    if labels[labels != ""].nunique() >= 2:
        return "class", labels.replace("", "(no label)").to_numpy()
    if "group" in items:
        groups = items["group"].astype(str)
        sizes = groups[groups != ""].value_counts()
        if len(sizes) and (sizes > 1).any() and sizes.size < len(items):
            return "group", groups.replace("", "(none)").to_numpy()
    ids = items["id"].astype(str)
    return "folder", ids.map(lambda i: i.split("/")[0] if "/" in i else "(top)").to_numpy()


def plot_files(folder: str | os.PathLike) -> dict[str, str]:
    """``{kind: png}`` (``class``, ``group`` or ``folder``, and ``modality``) of the newest
    plots in ``folder`` (any method)."""
    found: dict[str, Path] = {}
    for kind in (*KINDS, "modality"):
        pngs = [p for p in (Path(folder) / f"{m}_by_{kind}.png" for m in METHODS) if p.is_file()]
        if pngs:
            found[kind] = max(pngs, key=lambda p: p.stat().st_mtime_ns)
    return {k: str(p) for k, p in found.items()}


def _scatter(coords: np.ndarray, groups: np.ndarray, title: str, path: Path,
             colors: dict[str, str] | None = None, markers: dict[str, str] | None = None) -> None:
    import matplotlib  # a Figure object: no pyplot, no global backend change
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(groups.tolist()))
    cmap = matplotlib.colormaps["tab20"]
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    ax = fig.subplots()
    for i, name in enumerate(names):
        pts = coords[groups == name]
        ax.scatter(pts[:, 0], pts[:, 1], s=10, alpha=0.75, label=str(name) or "(none)",
                   linewidths=0,
                   color=(colors or {}).get(name, cmap(i % 20)),
                   marker=(markers or {}).get(name, "o"))
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    if 1 < len(names) <= 20:  # (one name needs no legend; labels are never empty here)
        ax.legend(loc="best", fontsize=7, markerscale=1.5, frameon=False)
    fig.tight_layout()
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=DPI)


def _digest(vectors: np.ndarray, method: str, seed: int) -> str:
    h = hashlib.sha256(np.ascontiguousarray(vectors).tobytes())
    h.update(f"{method}:{seed}".encode())
    return h.hexdigest()


def plot_run(run_path: str | os.PathLike, out: str | os.PathLike | None = None,
             max_points: int = 5000, method: str = "umap", seed: int = 0,
             features: Features | str | os.PathLike | None = None) -> dict[str, Any]:
    """Write ``<method>_by_<kind>.png`` (kind: class, or group/folder for unlabelled
    collections, see ``colour_key``) and ``<method>_by_modality.png`` (default folder
    RUN/plots; ``method``: umap, or pca, also used when there are too few points for UMAP).
    Returns the paths (``by_class`` is the first plot whatever it colours by; ``by`` names
    its kind)."""
    run = Run.load(run_path)
    feats = run.load_features(features)
    out = Path(out) if out else run.path / "plots"
    emb = run.embed(feats, center=run.search_center)
    items, vecs = emb.items, emb.matrix()
    pick = sample_items(items, max_points, seed)
    items, vecs = items.iloc[pick].reset_index(drop=True), vecs[pick]
    digest = _digest(vecs, method, seed)
    cache = out / "coords.safetensors"
    coords = None
    if cache.is_file():
        stored = load_file(str(cache))
        if bytes(stored["digest"]).decode(errors="replace") == digest:
            coords = stored["coords"]
            log.info("reusing the 2-D layout in %s (inputs unchanged)", cache)
    if coords is None:
        log.info("computing a %s layout of %d items", method, len(vecs))
        coords = layout(vecs, method=method, seed=seed)
        out.mkdir(parents=True, exist_ok=True)
        save_file({"coords": coords, "digest": np.frombuffer(digest.encode(), np.uint8).copy()},
                  str(cache))
    used = method_used(method, len(vecs))
    name = used.upper()
    kind, key = colour_key(items)
    paths = {"class": out / f"{used}_by_{kind}.png", "modality": out / f"{used}_by_modality.png"}
    for stale in (out / f"{used}_by_{k}.png" for k in KINDS if k != kind):
        stale.unlink(missing_ok=True)  # an older plot of another kind would be shown too
    _scatter(coords, key, f"{name} of the space, by {kind}", paths["class"])
    _scatter(coords, items["modality"].astype(str).to_numpy(),
             f"{name} of the space, by modality", paths["modality"],
             {m: get_modality(m).color for m in modality_names()},
             {m: get_modality(m).marker for m in modality_names()})
    return {"by_class": str(paths["class"]), "by": kind, "by_modality": str(paths["modality"]),
            "points": int(len(items)), "total": int(len(feats.items)), "method": used,
            "center": run.search_center}
