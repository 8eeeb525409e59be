"""Search a run's space: embed a query with the run's own encoders + heads, rank indexed items.

    space = Space.load("runs/demo")
    space.search(text="a dog barking", k=5, modality=["audio", "image"])
    space.search(text="rain", audio="thunder.wav")   # compositional: normalised sum
    space.search(depth="scan.png")                    # any registered modality, by its name

Queries are embedded exactly as the indexed items were (same encoder, checked by fingerprint;
same head; centred when the index is). Mixed searches over several modalities are merged per
modality with ``unibind.search.merge.merge_topk`` in the run's recommended mode unless told
otherwise. A query searches only the target modalities its own can reach (``Run.reach``).

One ``Space`` may serve many threads: encoders and group members are filled once under a lock,
each encoder runs one batch at a time (tokenizers are not thread-safe), searches run in parallel.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unibind.errors import InputNotFound, UsageError, unknown
from unibind.modalities import MODALITIES, check_modality, get_modality, ordered
from unibind.run.folder import Run
from unibind.search.index import IndexMismatch, SpaceIndexError, open_index
from unibind.search.merge import MODES, apply_floor, merge_topk, noise_floors
from unibind.search.pair_expansion import expand_via_pairs, group_members
from unibind.search.stores import VectorStore

log = logging.getLogger(__name__)

Inputs = str | os.PathLike | list | tuple | None


def _as_list(value: Inputs) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _queries(**inputs: Inputs) -> dict[str, list]:
    """Non-empty query inputs per modality, in canonical order; unknown names refused."""
    given = {check_modality(m): _as_list(v) for m, v in inputs.items()}
    return {m: given[m] for m in ordered(given) if given[m]}


class Unreachable(UsageError):
    """A search whose query modalities reach none of the asked target modalities (``Run.reach``:
    e.g. text queries and offline sounds, which have no text side)."""


def parse_modalities(value: str | list[str] | None) -> list[str] | None:
    """``"audio,image"`` or a list -> validated modality names (None = every modality)."""
    if value is None or value == "" or value == []:
        return None
    names = value.split(",") if isinstance(value, str) else list(value)
    return [check_modality(n.strip()) for n in names if n.strip()]


@dataclass
class Space:
    """A run plus its index: embed queries, search, describe results."""

    run: Run
    index: VectorStore  # a faiss index folder or a Milvus collection
    runtime: str = "auto"  # query encoders: torch, onnx, or auto (ONNX Runtime on the CPU)
    _encoders: dict[str, Any] = field(default_factory=dict, repr=False)
    _members: dict[str, dict[str, np.ndarray]] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _encoding: dict[str, threading.Lock] = field(default_factory=dict, repr=False,
                                                 compare=False)

    @classmethod
    def load(cls, run_path: str | os.PathLike, index_path: str | os.PathLike | None = None,
             runtime: str = "auto") -> Space:
        """``runtime`` runs the query encoders: "auto" (ONNX Runtime on the CPU where the
        model exports faithfully), "torch" or "onnx"."""
        from unibind.encoders.onnx_runtime import check_runtime

        check_runtime(runtime)
        run = Run.load(run_path)
        return cls(run=run, index=open_index(run, index_path), runtime=runtime)

    # -- embedding ---------------------------------------------------------------------------
    def encoder(self, modality: str) -> Any:
        """The run's encoder for ``modality`` (loaded once), refused if it is not the one the
        index was built with."""
        if modality in self._encoders:
            return self._encoders[modality]
        with self._lock:  # one load per modality, however many threads ask at once
            if modality not in self._encoders:
                enc = self._load_encoder(modality)
                self._encoding[modality] = threading.Lock()
                self._encoders[modality] = enc
        return self._encoders[modality]

    def _load_encoder(self, modality: str) -> Any:
        """Load the run's encoder and check its fingerprint against the index's."""
        from unibind.encoders import load_encoder

        info = self.run.encoders.get(modality)
        if not info or "spec" not in info:
            raise SpaceIndexError(f"run {self.run.path} records no {modality} encoder")
        enc = load_encoder(info["spec"], runtime=self.runtime)
        want = self.index.meta["provenance"]["encoders"].get(modality, {}).get("fingerprint")
        if enc.fingerprint != want:
            raise IndexMismatch(
                f"{modality} query encoder {info['spec'].get('source')} has fingerprint "
                f"{enc.fingerprint}, but the index was built with {want}: the model files "
                "changed since extraction; re-run extract/train/index or restore them")
        return enc

    def embed(self, modality: str, items: list) -> np.ndarray:
        """Raw inputs (texts, or image/audio paths) -> unit vectors in the index's space."""
        check_modality(modality)
        if modality not in self.run.modalities:
            raise SpaceIndexError(f"the run has no {modality} head (it has "
                                  f"{', '.join(self.run.modalities)})")
        enc = self.encoder(modality)
        with self._encoding[modality]:
            feats = enc.encode([str(x) for x in items])
        return self.run.project(modality, feats, center=self.index.center)

    def query_vector(self, **inputs: Inputs) -> tuple[np.ndarray, list[str]]:
        """Every input embedded, summed and normalised (a compositional query).

        Inputs are keyed by modality name (``text=``, ``image=``, ``audio=`` or any registered
        modality): text for inline modalities, file paths for the others."""
        given = _queries(**inputs)
        if not given:
            raise UsageError("give at least one query: "
                             + ", ".join(f"{m}=" for m in MODALITIES))
        for m, items in given.items():
            if not get_modality(m).inline:
                absent = [str(p) for p in items if not Path(p).is_file()]
                if absent:
                    raise InputNotFound(f"{m} query file not found: {', '.join(absent)}")
        return combine_query(self.embed(m, items) for m, items in given.items()), list(given)

    # -- searching ---------------------------------------------------------------------------
    def default_mode(self) -> str:
        mode = self.run.info.get("search", {}).get("mode") or "none"
        if mode == "centered" and not self.index.center:
            return "none"
        return mode if mode in MODES else "none"

    def _calibration(self, query_modalities: list[str], required: bool = True
                     ) -> dict[str, tuple[float, float]]:
        """``{target: (mean, std)}`` of the run's query->target scores on training data (for
        one query modality its own pair statistics, else the pooled ones); ``{}`` when the run
        stores none and they are not ``required``."""
        suffix = "_centered" if self.index.center else ""
        pairs = self.run.info.get(f"calibration_pairs{suffix}") or {}
        if len(query_modalities) == 1 and query_modalities[0] in pairs:
            return pairs[query_modalities[0]]
        pooled = self.run.info.get(f"calibration{suffix}")
        if not pooled and required:
            raise SpaceIndexError(f"run {self.run.path} stores no calibration statistics; "
                                  "use --balance none or balanced")
        return pooled or {}

    def _floors(self, query_modalities: list[str], pools: dict[str, int]) -> dict[str, float]:
        """Noise floor per target (``merge.noise_floors``); for a query of several modalities
        the lowest of theirs (a target is withheld only when no part of the query reaches
        it); {} for runs that record no noise quantiles."""
        suffix = "_centered" if self.index.center else ""
        noise = self.run.info.get(f"noise_pairs{suffix}") or {}
        per_q = [noise_floors(noise.get(q), pools) for q in query_modalities]
        if not per_q or not all(per_q):
            return {}
        return {t: min(f[t] for f in per_q) for t in pools if all(t in f for f in per_q)}

    def search_vectors(self, q: np.ndarray, k: int = 10, modality: str | list[str] | None = None,
                       balance: str | None = None, query_modalities: list[str] | None = None,
                       via_pairs: int = 0, floor: bool = True
                       ) -> tuple[np.ndarray, np.ndarray, str]:
        """Ranked global rows ``[nq, k]`` and scores for query vectors; returns the mode used.

        ``via_pairs=m`` adds pair expansion through the query's ``m`` nearest same-modality
        items (``unibind.search.pair_expansion``); scores are then standardised similarities."""
        hits = self.search_hits(q, k, modality, balance, query_modalities, via_pairs, floor)
        return hits.scores, hits.rows, hits.mode

    def search_hits(self, q: np.ndarray, k: int = 10, modality: str | list[str] | None = None,
                    balance: str | None = None, query_modalities: list[str] | None = None,
                    via_pairs: int = 0, floor: bool = True) -> Hits:
        """``search_vectors`` plus what a mixed search left out: (``floor=True``) targets whose
        best score is at the noise floor (``unibind.search.merge.noise_floors``) get no slots
        (targets out of the query's reach are not searched at all, see ``targets``)."""
        if k <= 0:
            raise UsageError("k must be positive")
        mods = (self.targets(query_modalities, modality)[0] if query_modalities
                else parse_modalities(modality))
        mode = balance or self.default_mode()
        if mode not in MODES:
            raise unknown("balance mode", mode, MODES)
        if mode == "centered" and not self.index.center:
            raise SpaceIndexError("--balance centered needs an index built on centred vectors: "
                                  "`unibind index RUN --center`")
        qmods = query_modalities or []
        targets = mods or self.index.modalities
        if via_pairs > 0:
            scores, rows, mode = self._search_via_pairs(q, k, targets, mode, qmods, via_pairs)
            return Hits(scores, rows, mode, {}, [{} for _ in range(len(q))])
        per = self.index.search(q, k, targets)
        calibration = self._calibration(qmods, required=mode == "calibrated")
        floors = self._floors(qmods, self._pools(per)) if floor and len(per) > 1 else {}
        withheld: list[dict[str, str]] = [{} for _ in range(len(q))]
        if floors:
            per, low = apply_floor(per, floors)
            for m, mask in low.items():
                for i in np.flatnonzero(mask):
                    withheld[i][m] = f"best score below the noise floor {floors[m]:.3f}"
        merge_mode = "none" if mode == "centered" else mode
        scores, _, rows = merge_topk(per, k, merge_mode, calibration=calibration or None,
                                     pool_sizes=self._pools(per))
        return Hits(scores, rows, mode, floors, withheld)

    def targets(self, query_modalities: list[str], modality: str | list[str] | None = None,
                strict: bool = True) -> tuple[list[str], str | None]:
        """The target modalities a query of ``query_modalities`` searches (those asked, default
        every indexed one, that ``run.reach`` lets it reach) and a note naming the ones left
        out; ``Unreachable`` (``strict``) when none is left."""
        pool = parse_modalities(modality) or self.index.modalities
        reach = self.run.reach
        can = {t for q in query_modalities for t in reach.get(q, [q])}
        keep, dropped = [m for m in pool if m in can], [m for m in pool if m not in can]
        if not query_modalities or not dropped:
            return pool, None
        asked = "+".join(query_modalities)
        reasons = (self.run.info.get("bound") or {}).get("unreachable") or {}
        why = "; ".join(dict.fromkeys(reasons[m] for m in [*query_modalities, *dropped]
                                      if m in reasons)) or "the run's reach map (run.json)"
        if not keep:
            if not strict:
                return pool, None
            raise Unreachable(f"{asked} queries cannot reach {', '.join(dropped)} items in this "
                              f"run ({why}); they reach {', '.join(ordered(can)) or 'nothing'}")
        return keep, (f"{', '.join(dropped)} not searched: {asked} queries cannot reach "
                      f"{'it' if len(dropped) == 1 else 'them'} in this run ({why})")

    def _pools(self, per: dict[str, Any]) -> dict[str, int]:
        """Pool size of each searched modality (what the balanced merge shares slots by)."""
        sizes = self.index.pool_sizes()
        return {m: sizes[m] for m in per}

    def _search_via_pairs(self, q: np.ndarray, k: int, mods: list[str] | None, mode: str,
                          query_modalities: list[str], anchors: int
                          ) -> tuple[np.ndarray, np.ndarray, str]:
        if len(query_modalities) != 1:
            raise UsageError("pair expansion needs a query of exactly one modality")
        if mode not in ("none", "balanced", "calibrated"):
            raise UsageError(f"pair expansion merges in none/balanced/calibrated mode, not {mode}")
        qm = query_modalities[0]
        if qm not in self.index.modalities:
            raise SpaceIndexError(f"pair expansion needs {qm} items in the index")
        if self._members is None:
            with self._lock:
                if self._members is None:
                    self._members = group_members(self.index.items)
        targets = mods or self.index.modalities
        per = expand_via_pairs(self.index, q, qm, targets, k, anchors,
                               self._calibration(query_modalities), self._members)
        # expanded scores are standardised already: "calibrated" merges them as they are
        merge_mode = "balanced" if mode == "balanced" else "none"
        scores, _, rows = merge_topk(per, k, merge_mode, pool_sizes=self._pools(per))
        return scores, rows, f"{'balanced' if mode == 'balanced' else 'calibrated'}+pairs"

    def describe(self, rows: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
        """Result dicts (rank, score, id, modality, label, path or text) for one query."""
        out = []
        n = next((i for i, r in enumerate(rows) if r < 0), len(rows))  # results end at -1
        table = self.index.lookup(np.asarray(rows[:n], dtype=np.int64))
        columns = {c: table[c].tolist() for c in table.columns}  # column-wise: row objects
        items = [dict(zip(columns, values)) for values in zip(*columns.values())]  # cost ms
        for rank, (score, item) in enumerate(zip(scores, items), start=1):
            res = {"rank": rank, "score": round(float(score), 6), "id": item["id"],
                   "modality": item["modality"], "label": item["label"]}
            if get_modality(item["modality"]).inline:
                res["text"] = item["text"]
            else:
                res["path"] = item["path"]
            out.append(res)
        return out

    def search(self, k: int = 10, modality: str | list[str] | None = None,
               balance: str | None = None, via_pairs: int = 0, floor: bool = True,
               **inputs: Inputs) -> dict[str, Any]:
        """``{"query", "mode", "results": [...]}`` (and a ``note`` when some target modality
        is out of the query's reach; ``noise_floor``, the floor of each searched target, and
        ``withheld``, ``{target: why}`` for targets given no slots, when there are any) for
        one (possibly compositional) query; ``**inputs``: the query by modality name
        (``text="a dog"``, ``audio="bark.wav"``, any registered one); ``floor=False`` keeps
        targets whose scores are at the noise floor."""
        given = _queries(**inputs)
        self.targets(list(given), modality)  # refuse unknown or unreachable targets before
        # embedding anything
        if balance is not None and balance not in MODES:
            raise unknown("balance mode", balance, MODES)
        q, qmods = self.query_vector(**given)
        hits = self.search_hits(q[None], k, modality, balance, qmods, via_pairs, floor)
        query = {m: [str(x) for x in v] for m, v in given.items()}
        return self.result(query, k, modality, hits.mode, hits.rows[0], hits.scores[0],
                           **hits.extra())

    def result(self, query: dict[str, list[str]], k: int, modality: str | list[str] | None,
               mode: str, rows: np.ndarray, scores: np.ndarray,
               noise_floor: dict[str, float] | None = None,
               withheld: dict[str, str] | None = None) -> dict[str, Any]:
        """The result dict of one query (what ``search``, ``unibind search --json`` and the
        HTTP service return); ``noise_floor`` and ``withheld`` come from ``search_hits``."""
        targets, note = self.targets([m for m in query if m in MODALITIES], modality,
                                     strict=False)
        out: dict[str, Any] = {"query": query, "k": k, "modality": targets, "mode": mode}
        if noise_floor:  # only where a mixed search had a floor / left a target out
            out["noise_floor"] = {m: round(v, 6) for m, v in noise_floor.items()}
        if withheld:
            out["withheld"] = withheld
        out["results"] = self.describe(rows, scores)
        if note:
            out["note"] = note
        return out


@dataclass
class Hits:
    """Ranked rows and raw scores ``[nq, k]`` of a search, the mode used, the noise floor of
    each searched target and, per query, ``{target: why}`` for targets given no slots."""

    scores: np.ndarray
    rows: np.ndarray
    mode: str
    noise_floor: dict[str, float]
    withheld: list[dict[str, str]]

    def extra(self, i: int = 0) -> dict[str, Any]:
        """The ``noise_floor``/``withheld`` keywords of ``Space.result`` for query ``i``."""
        return {"noise_floor": self.noise_floor, "withheld": self.withheld[i]}


def combine_query(embedded: Iterable[np.ndarray]) -> np.ndarray:
    """A compositional query: every embedded input summed (float64) and normalised."""
    total = np.zeros(1, dtype=np.float64)
    for e in embedded:
        total = total + e.sum(axis=0)
    norm = np.linalg.norm(total)
    if norm < 1e-12:
        raise UsageError("the query inputs cancel out (zero vector)")
    return (total / norm).astype(np.float32)


def format_results(result: dict[str, Any]) -> str:
    """A readable table of one search result."""
    q = "; ".join(f"{m}: {', '.join(_tail(x) for x in v)}" for m, v in result["query"].items())
    lines = [f"query ({q}) -> {','.join(result['modality'])}, mode {result['mode']}",
             *([f"note: {result['note']}"] if result.get("note") else []),
             f"{'rank':>4}  {'score':>7}  {'modality':<8} {'label':<20} path / text"]
    for r in result["results"]:
        what = r.get("text") if "text" in r else r.get("path")
        lines.append(f"{r['rank']:>4}  {r['score']:>7.4f}  {r['modality']:<8} "
                     f"{str(r['label'])[:20]:<20} {_tail(str(what))}")
    for m, why in (result.get("withheld") or {}).items():
        lines.append(f"no {m} results: {why}")
    return "\n".join(lines)


def _tail(text: str, width: int = 80) -> str:
    """Keep the end of long paths (the file name is what tells results apart)."""
    return text if len(text) <= width else "…" + text[-(width - 1):]
