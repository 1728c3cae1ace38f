"""Where a user's sequence is cut, declared once for training, evaluation, analysis and serving.

A dataset keeps every user's items in one flat array, `items[offsets[u]:offsets[u + 1]]`,
oldest first. Leave-one-out, as in the SASRec paper: the last item is the test target, the
second to last the validation target, the rest is for training. A user needs at least
MIN_LENGTH items for that; shorter users have no validation or test target (they are
skipped there, and counted), and all their items are training data. When validation uses a
sample of the users, the others train on their validation item too (training_ends).

The model reads "the last maxlen items, left-padded with 0"; the items a ranking hides are
the whole history before the target, except the target itself (repeat consumption is still
scored fairly). Both rules live here.
"""

from dataclasses import dataclass

import numpy as np
import torch

MIN_LENGTH = 3  # one item to train on, one to validate, one to test
HELD_OUT = {"valid": 2, "test": 1}  # items after the history's end: target, then what is held out beyond it


def left_padded(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """The last `width` items of each slice items[start:end], left-padded with 0: (len(starts), width)."""
    index = ends[:, None] - width + np.arange(width)  # (n, width)
    valid = index >= starts[:, None]
    if not len(items):
        return np.zeros(index.shape, dtype=np.int64)
    return np.where(valid, items[np.clip(index, 0, None)], 0)


def model_inputs(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, maxlen: int) -> np.ndarray:
    """What the model reads for each history items[start:end]: its last maxlen items, left-padded
    to the longest of them (not to maxlen: a batch of short histories stays narrow)."""
    width = int(min(maxlen, max(1, (ends - starts).max(initial=1))))
    return left_padded(items, np.maximum(starts, ends - maxlen), ends, width)


@dataclass
class Holdout:
    """One leave-one-out split: for each user who has it, the history [start, end) and the item
    right after it. `skipped` users were too short to have this split."""
    users: np.ndarray  # internal user indices
    starts: np.ndarray
    ends: np.ndarray
    targets: np.ndarray
    skipped: int

    def __len__(self) -> int:
        return len(self.users)

    def subset(self, rows: np.ndarray) -> "Holdout":
        return Holdout(self.users[rows], self.starts[rows], self.ends[rows], self.targets[rows], self.skipped)


def holdout(dataset, split: str) -> Holdout:
    """The 'valid' or 'test' split: histories and targets of the users with at least MIN_LENGTH items."""
    starts, lengths = dataset.offsets[:-1], np.diff(dataset.offsets)
    users = np.flatnonzero(lengths >= MIN_LENGTH)
    ends = dataset.offsets[1:][users] - HELD_OUT[split]
    return Holdout(users, starts[users], ends, dataset.items[ends], skipped=int(len(lengths) - len(users)))


def positions(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Flat indices of every item in the slices [start, end), in order."""
    lengths = np.maximum(ends - starts, 0)
    offsets_in_slice = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + offsets_in_slice


def known_ends(dataset, split: str) -> np.ndarray:
    """Where each user's part known before the split's targets ends: the history of the split, or the
    whole sequence of a user too short to have it. What the baselines learn from when predicting `split`."""
    lengths = np.diff(dataset.offsets)
    return dataset.offsets[1:] - np.where(lengths >= MIN_LENGTH, HELD_OUT[split], 0)


def training_ends(dataset, validated=None) -> np.ndarray:
    """Where each user's training part ends: before the held-out items, or at the end for a user
    too short to hold any out. `validated` (internal user indices): only these users hold out their
    validation item too; every other user trains on it, as the baselines learn from it at test
    time (None: every user holds out both)."""
    lengths = np.diff(dataset.offsets)
    held_out = np.where(lengths >= MIN_LENGTH, HELD_OUT["valid"], 0)
    if validated is not None:
        held_out = np.where(lengths >= MIN_LENGTH, HELD_OUT["test"], 0)
        held_out[validated] = HELD_OUT["valid"]
    return dataset.offsets[1:] - held_out


def training_windows(dataset, maxlen: int, validated=None) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each (num_windows, maxlen), left-padded, over the training part of every
    sequence (see training_ends). Each position predicts the next item; a part longer than maxlen
    is cut from the end into maxlen-long windows, so that every position is trained on once per epoch."""
    starts, ends = dataset.offsets[:-1], training_ends(dataset, validated)
    num_positions = np.maximum(ends - starts - 1, 0)  # targets are items 1.. of the part
    num_windows = -(-num_positions // maxlen)
    user = np.repeat(np.arange(len(starts)), num_windows)
    window = np.arange(num_windows.sum()) - np.repeat(np.cumsum(num_windows) - num_windows, num_windows)
    target_end = ends[user] - window * maxlen  # window 0 ends at the newest position
    target_start = np.maximum(starts[user] + 1, target_end - maxlen)
    targets = left_padded(dataset.items, target_start, target_end, maxlen)
    inputs = left_padded(dataset.items, target_start - 1, target_end - 1, maxlen)
    return inputs, targets


def hide_seen(scores: torch.Tensor, seen: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Set the scores of already-seen items to -inf, in place: scores (B, N+1), seen (B, S) item ids
    (0, padding, is always hidden). `keep` (B,) are targets whose own scores stay, so that an item
    seen before and consumed again is ranked fairly. Serving and evaluation both hide this way."""
    kept = scores.gather(1, keep[:, None]) if keep is not None else None
    scores[:, 0] = float("-inf")
    scores.scatter_(1, seen, float("-inf"))
    if keep is not None:
        scores.scatter_(1, keep[:, None], kept)
    return scores
