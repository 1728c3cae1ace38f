"""Settings chosen from the data and the device, for those a run leaves open (None).

resolve() fills each open setting and records why, so that `train` can print its choices
and config.json can keep them. Any setting given explicitly (a flag, a preset, the Train
page) is kept as given.

The policy is a handful of rules on the shape of the data (catalog size, training positions
per epoch, history lengths) and the device; bench/train_eval.py measures what they give.
"""

import math
from dataclasses import replace

import numpy as np

from .config import RunConfig
from .schedule import PATIENCE_MOST
from .sequences import MIN_LENGTH

MAXLEN_BOUNDS = (10, 200)
# Users validated on. Every other user also trains on their validation item, the second most recent
# and the most telling for their test item: on Beauty, 2,000 rather than 10,000 validated users
# raised test NDCG@10 from 0.0613 to 0.0624 (bench/train_eval.py). The validation's noise grows
# (about +-0.005 at 2,000 users), but a schedule that decays to a planned end leaves it little to
# decide: the last validations are nearly always the best.
VALIDATION_SAMPLE = 2_000
# Dropout, by the log's density (interactions / (users x items)), as the SASRec paper sets it: 0.2 on
# the dense MovieLens-1M and 0.5 on its three sparse logs. On the dense ml-100k (6.3%) 0.3 ranks best
# (test NDCG@10 0.107 against 0.100 at 0.2); on the sparse Beauty and Sports (under 0.1%) 0.5 beats 0.3
# once the batches are bigger (0.0613 against 0.0565 on Beauty).
DROPOUT = {"dense": 0.3, "sparse": 0.5}
SPARSE_DENSITY = 0.01
# Windows per batch: as many as keep about 80 steps in an epoch, a power of two from 32 to 256. Few,
# long histories (ml-100k: 1,100 windows) train best in small batches, which give them enough updates;
# many short ones (Beauty: 22,000) in big ones, which are also 2-3 times faster per position (test
# NDCG@10 on Beauty: 0.0565 at 32, 0.0613 at 128, 0.0611 at 256).
STEPS_PER_EPOCH, BATCH_BOUNDS = 80, (32, 256)
# Full softmax scores every item at every training position. It ranked best on Beauty and Sports
# (sampled softmax with 1,024 negatives: 1-7% lower NDCG@10 at the same settings), and up to this
# many scores per epoch (positions x items; Sports is 4e9) an epoch takes a two-core CPU tens of
# seconds. Beyond it, a sampled softmax keeps an epoch's cost independent of the catalog.
FULL_SOFTMAX_SCORES = {"cpu": 6e9, "mps": 6e10, "cuda": 6e11}
NUM_NEGATIVES = 1024  # shared by a batch
# Of the training time, at most, spent validating. At 0.1, ml-100k (a validation costs 14% of an
# epoch) validated every 2 epochs, and its median test NDCG@10 over 3 seeds was 0.103, below the
# 0.105-0.109 of 5 runs validating every epoch; 0.15 keeps it validating every epoch.
VALIDATION_SHARE = 0.15
BIG_CATALOG = 100_000  # items; above it a step's fixed cost (the dense table update) calls for bigger batches
# Epochs without a validation gain before stopping. On ml-100k (943 users), validation NDCG@10
# can stall for 10 epochs and then climb again (bench/train_eval.py, seeds 42-46); with 10,000
# users it is steadier, and stopping early saves minutes on a big log.
PATIENCE_AT_1000, PATIENCE_BOUNDS = 20, (5, 30)


def resolve(config: RunConfig, dataset, device) -> RunConfig:
    model, train = config.model, config.train
    chosen = dict(config.chosen)
    lengths = np.diff(dataset.offsets)
    has_holdout = lengths >= MIN_LENGTH
    num_items = dataset.num_items
    if train.valid_users is None:
        users = int(has_holdout.sum())
        sample = 0 if users <= VALIDATION_SAMPLE else VALIDATION_SAMPLE
        train = replace(train, valid_users=sample)
        chosen["valid_users"] = (f"all {users:,} users" if not sample else
                                 f"a fixed random sample of {sample:,} of {users:,} users; the test covers all")
    # Each position of a user's training part but the first is a target: the part is all but the
    # test item, and but the validation item too for the users validated on (sequences.training_ends).
    validated = min(train.valid_users or len(lengths), int(has_holdout.sum()))
    positions = max(int(np.maximum(lengths - has_holdout - 1, 0).sum()) - validated, 0)

    if model.maxlen is None:
        p99 = float(np.percentile(lengths, 99)) if len(lengths) else 0.0
        # Inputs are all but the held-out items; round up to a multiple of 10.
        maxlen = int(np.clip(math.ceil(p99 / 10) * 10, *MAXLEN_BOUNDS))
        model = replace(model, maxlen=maxlen)
        chosen["maxlen"] = (f"{maxlen}: the 99th percentile of sequence lengths is {p99:.0f} "
                            f"(kept within {MAXLEN_BOUNDS[0]}-{MAXLEN_BOUNDS[1]})")
    if train.loss is None:
        scores = positions * num_items
        budget = FULL_SOFTMAX_SCORES.get(device.type, FULL_SOFTMAX_SCORES["cpu"])
        if scores <= budget:
            train = replace(train, loss="ce")
            chosen["loss"] = (f"ce: full softmax over {num_items:,} items at {positions:,} positions is "
                              f"{scores:.2g} scores per epoch, affordable on {device.type} (SASRec+, RecSys 2023)")
        else:
            train = replace(train, loss="sampled-ce")
            chosen["loss"] = (f"sampled-ce: full softmax over {num_items:,} items at {positions:,} positions would be "
                              f"{scores:.2g} scores per epoch, more than {budget:.0g} on {device.type}; a sampled "
                              "softmax with logQ correction estimates it (Scalable CE, arXiv 2409.18721)")
    if train.num_negatives is None:
        negatives = min(NUM_NEGATIVES, max(num_items - 1, 1))
        train = replace(train, num_negatives=negatives)
        chosen["num_negatives"] = (f"{negatives}: shared by each batch, drawn half by training frequency and half "
                                   "uniformly, with logQ correction" if train.loss == "sampled-ce" else
                                   f"{negatives}: unused by {train.loss}")
    if model.dropout is None:
        density = int(lengths.sum()) / max(len(lengths) * num_items, 1)
        kind = "sparse" if density < SPARSE_DENSITY else "dense"
        model = replace(model, dropout=DROPOUT[kind])
        chosen["dropout"] = (f"{DROPOUT[kind]}: the log is {kind} ({density:.2%} of user-item pairs, "
                             f"{'under' if kind == 'sparse' else 'over'} {SPARSE_DENSITY:.0%}); as in the SASRec "
                             "paper, a sparse log needs more regularisation")
    if train.batch_size is None:
        if num_items <= BIG_CATALOG:
            windows = int(np.ceil(np.maximum(lengths - 2, 0) / model.maxlen).sum())
            batch = int(np.clip(2 ** int(math.log2(max(windows / STEPS_PER_EPOCH, 1))), *BATCH_BOUNDS))
            train = replace(train, batch_size=batch)
            chosen["batch_size"] = (f"{batch}: {windows:,} training windows; about {STEPS_PER_EPOCH} steps an epoch "
                                    f"or more, in batches of {BATCH_BOUNDS[0]} to {BATCH_BOUNDS[1]}")
        else:
            train = replace(train, batch_size=256)
            chosen["batch_size"] = (f"256: every step updates the whole table of {num_items:,} item embeddings, "
                                    f"which costs more than a small batch's arithmetic above {BIG_CATALOG:,} items")
    if train.lr is None:
        train = replace(train, lr=2e-3)
        chosen["lr"] = "0.002: suits Adam at this batch size"
    if train.eval_every is None:
        share = validation_share(model, train, num_items, positions, validated, lengths)
        every = max(1, math.ceil(share / VALIDATION_SHARE))
        train = replace(train, eval_every=every)
        chosen["eval_every"] = (f"{every}: validating {validated:,} users costs about {share:.0%} of an epoch, "
                                f"so validation stays within {VALIDATION_SHARE:.0%} of the training time")
    if train.patience is None:
        epochs = int(np.clip(int(PATIENCE_AT_1000 * math.sqrt(1000 / max(validated, 1))), *PATIENCE_BOUNDS))
        patience = max(1, math.ceil(epochs / train.eval_every))
        train = replace(train, patience=patience)
        chosen["patience"] = (f"{patience}: validation NDCG@10 on {validated:,} users is noisy by about "
                              f"1/sqrt(users), so wait {epochs} epochs without a gain ({PATIENCE_AT_1000} at "
                              f"1,000 users), validating every {train.eval_every}; and at least a quarter of the "
                              f"planned validations (up to {PATIENCE_MOST}), since the validation curve flattens mid-run as the learning "
                              "rate decays and climbs again near the end")
    return replace(config, model=model, train=train, chosen=chosen)


def validation_share(model, train, num_items: int, positions: int, validated: int, lengths) -> float:
    """A validation's cost over an epoch's, both in multiply-adds: the Transformer at every
    position (about 12 d^2 per block), then the scores. Training runs the forward and a backward
    of twice its cost and scores the catalog, or the sampled items; validation runs a forward at
    every position of a history, but for the last block's keys and values alone (a third of a
    block) where only the most recent position's output counts, and scores the whole catalog once
    per user."""
    d = model.hidden
    per_block = 12 * d * d
    scored = {"ce": num_items, "bce": 2}.get(train.loss, train.num_negatives + 1)  # items scored per position
    epoch = 3 * positions * (per_block * model.num_blocks + d * scored)
    history = float(np.minimum(np.maximum(lengths - 2, 1), model.maxlen).mean()) if len(lengths) else 1.0
    validation = validated * (history * per_block * (model.num_blocks - 2 / 3) + d * num_items)
    return validation / max(epoch, 1)
