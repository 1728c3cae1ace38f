"""Serving a trained run: top-k next items, with attention, for a history of original ids."""

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import rundir, sequences
from .config import RunConfig
from .model import SASRec, SASRecConfig
from .readers import DataError


@dataclass
class Recommendation:
    items: pd.DataFrame  # rank, item_id, title, category, score, probability
    history: pd.DataFrame  # position, item_id, title, category: what the model saw, oldest first
    attention: np.ndarray  # (layers, heads, T, T) over `history`
    seconds: float  # model time, from ids in to table out


class HeadMasked(torch.nn.Module):
    """A SASRec with some attention heads switched off: the same weights, with `head_mask`
    (layers, heads; 0 = off) applied on every forward pass, so that anything that takes a
    model (explain.py, counterfactual.py) sees the masked one."""

    def __init__(self, model: SASRec, head_mask: torch.Tensor):
        super().__init__()
        self.model, self.head_mask = model, head_mask
        self.config, self.item_embedding = model.config, model.item_embedding

    def forward(self, items, need_weights=False):
        return self.model(items, need_weights, self.head_mask)

    def last_hidden(self, items, need_weights=False):
        return self.model.last_hidden(items, need_weights, self.head_mask)

    def score_items(self, hidden):
        return self.model.score_items(hidden)


def head_mask(config: SASRecConfig, off) -> torch.Tensor:
    """The (layers, heads) mask with the heads `off` ((layer, head) pairs, 0-based) at 0 and the rest at 1."""
    mask = torch.ones(config.num_blocks, config.num_heads)
    for layer, head in off:
        if not (0 <= layer < config.num_blocks and 0 <= head < config.num_heads):
            raise DataError(f"no head {head + 1} in layer {layer + 1}: the model has {config.num_blocks} layers "
                            f"of {config.num_heads} heads")
        mask[layer, head] = 0.0
    return mask


class Recommender:
    def __init__(self, model: SASRec, catalog: pd.DataFrame):
        """catalog: one row per internal id 1..N (the index), with item_id, title and category."""
        self.model = model.eval()
        self.catalog = catalog
        self.internal = pd.Series(catalog.index.to_numpy(), index=catalog["item_id"].to_numpy())
        self._ids_lower = catalog["item_id"].str.lower()
        self._titles_lower = catalog["title"].str.lower()

    @classmethod
    def from_run(cls, run_dir, checkpoint: str = "best") -> "Recommender":
        run = rundir.Run(run_dir).require()
        try:
            model = SASRec(SASRecConfig(**run.config()["model"]))
        except (TypeError, ValueError) as err:
            raise rundir.RunError(f"run {run.name}: config.json does not describe a model ({err})") from err
        rundir.load_model_weights(model, run.checkpoint(checkpoint))
        try:
            catalog = pd.read_parquet(run.path / "items.parquet").set_index("index")
        except (OSError, ValueError, KeyError) as err:
            raise rundir.RunError(f"run {run.name}: items.parquet is missing or unreadable") from err
        return cls(model, catalog)

    @property
    def maxlen(self) -> int:
        return self.model.config.maxlen

    def without_heads(self, off) -> "Recommender":
        """This recommender with the attention heads `off` ((layer, head) pairs, 0-based) switched
        off; itself when there are none. The weights and the catalog are shared, not copied."""
        off = list(off)
        if not off:
            return self
        masked = copy.copy(self)
        masked.model = HeadMasked(self.model, head_mask(self.model.config, off))
        return masked

    def unknown(self, item_ids) -> list[str]:
        """Those of item_ids that are not in this model's catalog (a history kept from another run)."""
        found = self.internal.reindex([str(i) for i in item_ids])
        return list(found.index[found.isna()])

    def to_internal(self, item_ids) -> np.ndarray:
        found = self.internal.reindex([str(i) for i in item_ids])
        if found.isna().any():
            raise DataError(f"unknown item id(s) {', '.join(self.unknown(item_ids)[:5])}: not in this model's catalog")
        return found.to_numpy(dtype=np.int64, copy=True)

    @torch.no_grad()
    def recommend(self, history, k: int = 10, exclude_history: bool = True) -> Recommendation:
        """Top-k next items for a history of original item ids, oldest first. The model reads the
        most recent maxlen items; hiding the history hides all of it, as evaluation does."""
        started = time.perf_counter()
        seen = self.to_internal(list(history))
        if len(seen) == 0:
            raise DataError("the history is empty: add at least one item")
        items = seen[-self.maxlen:]
        last, attention = self.model.last_hidden(torch.tensor(items)[None], need_weights=True)
        scores = self.model.score_items(last)  # (1, N+1)
        sequences.hide_seen(scores, torch.tensor(seen if exclude_history else [0])[None])
        scores = scores[0]
        probabilities = scores.softmax(0)
        k = min(k, int(torch.isfinite(scores).sum()))
        top = torch.topk(scores, k).indices.numpy()
        table = self.catalog.loc[top, ["item_id", "title", "category"]].reset_index(drop=True)
        table.insert(0, "rank", np.arange(1, k + 1))
        table["score"] = scores[top].numpy()
        table["probability"] = probabilities[top].numpy()
        return Recommendation(table, self.describe(items), attention[0].numpy(), time.perf_counter() - started)

    def describe(self, items: np.ndarray) -> pd.DataFrame:
        table = self.catalog.loc[items, ["item_id", "title", "category"]].reset_index(drop=True)
        table.insert(0, "position", np.arange(1, len(items) + 1))
        return table

    def search(self, query: str, limit: int = 20) -> pd.DataFrame:
        """Catalog rows whose title or id contains `query` (case-insensitive); exact id matches first."""
        query = query.strip().lower()
        if not query:
            return self.catalog.head(0)
        exact = self._ids_lower == query
        found = exact | self._ids_lower.str.contains(query, regex=False) | self._titles_lower.str.contains(query, regex=False)
        order = np.argsort(~exact[found].to_numpy(), kind="stable")  # exact id matches first
        return self.catalog[found].iloc[order[:limit]]


def rank_changes(previous: list[str], current: list[str]) -> list[str]:
    """For each item of `current`, how its rank moved since `previous`: new, up N, down N or same."""
    before = {item: rank for rank, item in enumerate(previous)}
    moves = []
    for rank, item in enumerate(current):
        if item not in before:
            moves.append("new")
        elif before[item] > rank:
            moves.append(f"up {before[item] - rank}")
        elif before[item] < rank:
            moves.append(f"down {rank - before[item]}")
        else:
            moves.append("same")
    return moves


def load_run_dataset(run_dir):
    """The dataset a run was trained on, re-read with the run's own settings.

    Raises DataError when the data has moved or no longer matches the run's catalog,
    since every internal id would then mean a different item.
    """
    run = rundir.Run(run_dir).require()
    data = RunConfig.read(run.path / "config.json").data.resolved_from(run.path)
    name = data.name or Path(data.path).name
    if not Path(data.path).exists():
        raise DataError(f"the data this run was trained on ({name}) is no longer there")
    dataset = data.load()
    trained_ids = pd.read_parquet(run.path / "items.parquet", columns=["item_id"])["item_id"]
    if list(dataset.item_ids[1:]) != list(trained_ids):
        raise DataError(f"the data this run was trained on ({name}) has changed since (its items differ)")
    return dataset
