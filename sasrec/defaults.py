"""Settings chosen from the data and the device, for those a run leaves open (None).

resolve() fills each open setting and records why, so that `train` can print its choices
and config.json can keep them. Any setting given explicitly (a flag, a preset, the Train
page) is kept as given.
"""

from dataclasses import replace

import numpy as np

from .config import RunConfig

MAXLEN_BOUNDS = (10, 200)
VALIDATION_SAMPLE = 10_000  # users; more adds seconds per epoch and little certainty


def resolve(config: RunConfig, dataset, device) -> RunConfig:
    model, train = config.model, config.train
    chosen = dict(config.chosen)
    lengths = np.diff(dataset.offsets)

    if model.maxlen is None:
        p99 = float(np.percentile(lengths, 99)) if len(lengths) else 0.0
        # Inputs are all but the held-out items; round up to a multiple of 10.
        maxlen = int(np.clip(-(-int(p99) // 10) * 10, *MAXLEN_BOUNDS))
        model = replace(model, maxlen=maxlen)
        chosen["maxlen"] = (f"{maxlen}: the 99th percentile of sequence lengths is {p99:.0f} "
                            f"(kept within {MAXLEN_BOUNDS[0]}-{MAXLEN_BOUNDS[1]})")
    if train.loss is None:
        train = replace(train, loss="ce")
        chosen["loss"] = f"ce: full softmax over {dataset.num_items:,} items (SASRec+, RecSys 2023)"
    if train.batch_size is None:
        train = replace(train, batch_size=32)
        chosen["batch_size"] = "32: small batches give more updates per epoch"
    if train.lr is None:
        train = replace(train, lr=2e-3)
        chosen["lr"] = "0.002: suits Adam at this batch size"
    if train.valid_users is None:
        users = int((lengths >= 3).sum())
        sample = 0 if users <= VALIDATION_SAMPLE else VALIDATION_SAMPLE
        train = replace(train, valid_users=sample)
        chosen["valid_users"] = (f"all {users:,} users" if not sample else
                                 f"a fixed random sample of {sample:,} of {users:,} users")
    return replace(config, model=model, train=train, chosen=chosen)
