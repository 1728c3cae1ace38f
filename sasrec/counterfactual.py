"""The smallest change to a history that changes a prediction: counterfactual search.

Two questions a presenter asks of a prediction:
- flip: which fewest edits make the model put another item first? The new first item is
  never one that the edits took out of the history: without the latest episode a model
  asks for that very episode again, which says nothing;
- bring: which fewest edits bring a chosen item into the top k?

An edit removes an item, replaces it by one of its nearest items in embedding space
(explain.nearest_items), or moves it to the end, the most recent position. Edits touch the
items the model reads (the last maxlen), each item at most once.

The search is a beam search over the number of edits: each history of the beam gets every
possible edit, and all the edited histories of a step are scored as one batch. The first step
at which one succeeds gives the answer (the one that succeeds by the widest margin); if none
does, the `beam` closest go on to the next step. A beam search is not exhaustive: what it finds
is real, but a smaller change may exist.

Predictions follow the Playground's rule: with exclude_history, the items of the edited
history are hidden (sequences.hide_seen), so that loading the edited history into the
Playground shows exactly what the search claims.
"""

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from . import sequences
from .explain import MAX_SCORES, nearest_items
from .readers import DataError

NEIGHBOURS = 3  # replacements tried for each item
BEAM = 2  # 3 found the same answers for 25 random 50-item histories of the demo model, in 1.6x the time
MAX_EDITS = 4


@dataclass(frozen=True)
class Edit:
    kind: str  # "remove", "replace" or "move" (to the end)
    position: int  # of the item edited, in the original history (0-based)
    item: int  # internal id of the item edited
    replacement: int = 0  # internal id of the item put in its place ("replace")


@dataclass(frozen=True)
class _Candidate:
    items: tuple  # internal ids, oldest first
    origin: tuple  # each item's position in the original history; -1 for a replacement
    edits: tuple = ()

    def apply(self, edit: Edit, index: int) -> "_Candidate":
        items, origin = list(self.items), list(self.origin)
        if edit.kind == "remove":
            del items[index], origin[index]
        elif edit.kind == "replace":
            items[index], origin[index] = edit.replacement, -1
        else:
            items.append(items.pop(index))
            origin.append(origin.pop(index))
        return _Candidate(tuple(items), tuple(origin), self.edits + (edit,))

    def removed(self) -> list[int]:
        return [edit.item for edit in self.edits if edit.kind != "move"]


@dataclass
class Counterfactual:
    goal: str  # "flip" or "bring"
    found: bool  # False: the closest history after MAX_EDITS edits, which does not reach the goal
    edits: pd.DataFrame  # kind, position (1-based, in the original history), item_id, title, replacement_id, replacement_title
    original: pd.DataFrame  # position, item_id, title, category, change ("removed", "replaced", "moved" or "")
    edited: pd.DataFrame  # the same for the edited history; change "new" (a replacement), "moved" or ""
    edited_ids: list[str]  # the whole edited history, as original ids, oldest first
    before: dict  # flip: the top item (item_id, title, probability); bring: the chosen item, with its rank
    after: dict  # the same for the edited history
    candidates: int  # edited histories scored
    steps: int  # how many edits the search went up to
    seconds: float


def _inputs(candidates: list[_Candidate], maxlen: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(what the model reads, (R, W); every item of each history, (R, S); items edits took out, (R, E)), 0-padded on the left."""
    def padded(rows):
        width = max(1, max(len(row) for row in rows))
        return torch.tensor([[0] * (width - len(row)) + list(row) for row in rows], dtype=torch.long)

    return (padded([c.items[-maxlen:] for c in candidates]), padded([c.items for c in candidates]),
            padded([c.removed() for c in candidates]))


@torch.no_grad()
def _judge(model, candidates: list[_Candidate], exclude_history: bool, goal: str, item: int, k: int):
    """Score every candidate history in one forward pass and measure how far each is from the goal.

    Returns (margin, outcome), each (R,): the goal is reached where margin < 0. flip: margin is
    the score of the best item that is neither `item` (the original first) nor one the edits took
    out, below the best of those; outcome is that item. bring: margin is the k-th best score of
    the other items above `item`'s; outcome is `item`'s rank.
    """
    reads, histories, removed = _inputs(candidates, model.config.maxlen)
    last, _ = model.last_hidden(reads)
    margins, outcomes = [], []
    per_chunk = max(1, MAX_SCORES // (model.config.num_items + 1))  # the scores, not the forward pass, are chunked
    for lo in range(0, len(candidates), per_chunk):
        scores = model.score_items(last[lo: lo + per_chunk])
        hidden = histories[lo: lo + per_chunk] if exclude_history else torch.zeros(len(scores), 1, dtype=torch.long)
        sequences.hide_seen(scores, hidden)
        rows = torch.arange(len(scores))
        if goal == "flip":
            guarded = torch.cat([torch.full((len(scores), 1), item), removed[lo: lo + per_chunk]], 1)
            guard = scores.gather(1, guarded).max(1).values  # column 0, padding, is -inf
            best, outcome = scores.scatter(1, guarded, float("-inf")).max(1)
            margin = torch.where(torch.isfinite(best), guard - best, torch.inf)
        else:
            others = scores.clone()
            others[:, item] = float("-inf")
            margin = others.topk(k, 1).values[:, -1] - scores[rows, item]
            outcome = (scores > scores[rows, item][:, None]).sum(1) + 1
        margins.append(margin)
        outcomes.append(outcome)
    return torch.cat(margins).numpy(), torch.cat(outcomes).numpy()


def _edits_of(candidate: _Candidate, neighbours: np.ndarray, maxlen: int):
    """(edit, index in the candidate's items) for every edit the candidate can still take."""
    edited = {edit.position for edit in candidate.edits}
    n = len(candidate.items)
    for index in range(max(0, n - maxlen), n):
        position = candidate.origin[index]
        if position < 0 or position in edited:
            continue
        item = candidate.items[index]
        if n > 1:
            yield Edit("remove", position, item), index
        for replacement in neighbours[position]:
            yield Edit("replace", position, item, int(replacement)), index
        if index < n - 1:
            yield Edit("move", position, item), index


def search(recommender, history, goal: str = "flip", target: str | None = None, k: int = 10,
           exclude_history: bool = True, max_edits: int = MAX_EDITS, beam: int = BEAM,
           neighbours: int = NEIGHBOURS) -> Counterfactual:
    """The fewest edits of `history` (original ids, oldest first) that reach the goal: "flip" (another
    item comes first) or "bring" (item `target` into the top k). See the module's docstring."""
    started = time.perf_counter()
    if goal not in ("flip", "bring"):
        raise ValueError(f"goal must be 'flip' or 'bring', not {goal!r}")
    model, maxlen = recommender.model, recommender.maxlen
    seen = recommender.to_internal(list(history))
    if len(seen) == 0:
        raise DataError("the history is empty: add at least one item")
    start = _Candidate(tuple(int(i) for i in seen), tuple(range(len(seen))))
    k = max(1, min(k, model.config.num_items - 1))
    if goal == "flip":
        item = int(_scores(model, start, exclude_history).argmax())
    else:
        if target is None:
            raise DataError("pick the item to bring into the top k")
        item = int(recommender.to_internal([target])[0])
        if exclude_history and item in start.items:
            raise DataError(f"{target} is in the history, and items of the history are hidden from the predictions")
    # Replacements come from outside the history and are never the item in question: putting it in would hide it.
    nearest = nearest_items(model, seen, np.append(seen, item), neighbours)
    before = _outcome(recommender, start, goal, item, exclude_history)
    margin, _ = _judge(model, [start], exclude_history, goal, item, k)
    best, scored, steps, beams = (start, margin[0]), 1, 0, [start]
    while best[1] >= 0 and steps < max_edits:
        steps += 1
        children = {}
        for candidate in beams:
            for edit, index in _edits_of(candidate, nearest, maxlen):
                child = candidate.apply(edit, index)
                children.setdefault(child.items, child)  # edits in another order reach the same history
        if not children:
            break
        children = list(children.values())
        margins, _ = _judge(model, children, exclude_history, goal, item, k)
        scored += len(children)
        order = np.argsort(margins, kind="stable")
        if margins[order[0]] < best[1]:
            best = (children[order[0]], margins[order[0]])
        beams = [children[i] for i in order[:beam]]
    found, margin = best
    return _result(recommender, goal, item, exclude_history, start, found, margin < 0, before, scored, steps,
                   time.perf_counter() - started)


@torch.no_grad()
def _scores(model, candidate: _Candidate, exclude_history: bool) -> torch.Tensor:
    """Every item's score after one history, with its items hidden as the Playground hides them: (N+1,)."""
    reads, histories, _ = _inputs([candidate], model.config.maxlen)
    scores = model.score_items(model.last_hidden(reads)[0])
    return sequences.hide_seen(scores, histories if exclude_history else torch.zeros(1, 1, dtype=torch.long))[0]


def _outcome(recommender, candidate: _Candidate, goal: str, item: int, exclude_history: bool) -> dict:
    """What the Playground shows for the candidate history: the first item (flip) or the chosen one's rank (bring)."""
    scores = _scores(recommender.model, candidate, exclude_history)
    probabilities = scores.softmax(0)
    shown = int(scores.argmax()) if goal == "flip" else item
    row = recommender.catalog.loc[shown]
    return {"item_id": row["item_id"], "title": row["title"], "probability": float(probabilities[shown]),
            "rank": int((scores > scores[shown]).sum()) + 1}


def _result(recommender, goal, item, exclude_history, start, found, reached, before, scored, steps, seconds):
    catalog = recommender.catalog
    edits = pd.DataFrame([{"kind": e.kind, "position": e.position + 1, "item_id": catalog.at[e.item, "item_id"],
                           "title": catalog.at[e.item, "title"],
                           "replacement_id": catalog.at[e.replacement, "item_id"] if e.replacement else None,
                           "replacement_title": catalog.at[e.replacement, "title"] if e.replacement else None}
                          for e in found.edits],
                         columns=["kind", "position", "item_id", "title", "replacement_id", "replacement_title"])
    by_position = {e.position: e for e in found.edits}

    def original_change(position):
        edit = by_position.get(position)
        return "" if edit is None else {"remove": "removed", "replace": "replaced", "move": "moved"}[edit.kind]

    original = recommender.describe(np.array(start.items))
    original["change"] = [original_change(p) for p in range(len(start.items))]
    edited = recommender.describe(np.array(found.items))
    edited["change"] = ["new" if origin < 0 else "moved" if origin in by_position else "" for origin in found.origin]
    after = _outcome(recommender, found, goal, item, exclude_history)
    return Counterfactual(goal, bool(reached), edits, original, edited,
                          [str(i) for i in catalog.loc[list(found.items), "item_id"]], before, after, scored, steps,
                          seconds)
