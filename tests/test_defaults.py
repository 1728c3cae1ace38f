"""The settings chosen from the data and the device: every choice is made, explained, recorded,
and overridden by anything given explicitly."""

import json
import subprocess
import sys
from dataclasses import asdict
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sasrec import defaults
from sasrec.config import PRESETS, DataConfig, RunConfig, configs
from sasrec.sequences import MIN_LENGTH
from tests.browser import ROOT

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
OPEN = ("maxlen", "dropout", "loss", "num_negatives", "batch_size", "lr", "valid_users", "patience", "eval_every")


def shaped(lengths, num_items):
    """A stand-in with the shape resolve() reads: the users' history lengths and the catalog size."""
    return SimpleNamespace(offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), num_items=num_items)


def resolved(data, device=CPU, preset="auto", **given):
    return defaults.resolve(RunConfig(*configs(preset, **given), DataConfig(path="")), data, device)


def says_its_value(name, value, why: str) -> bool:
    """A reason starts with the value it explains ('50: ...'); the validation users say 'all ...' or 'a sample'."""
    if name == "valid_users":
        return why.startswith("all " if value == 0 else f"a fixed random sample of {value:,} ")
    return why.startswith(f"{value}: ")


def values(config):
    return asdict(config.model) | asdict(config.train)


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 400), min_size=1, max_size=50), num_items=st.integers(2, 3_000_000),
       preset=st.sampled_from(list(PRESETS)), device=st.sampled_from([CPU, CUDA]))
def test_every_open_setting_is_chosen_with_a_reason_and_given_ones_are_kept(lengths, num_items, preset, device):
    config = resolved(shaped(lengths, num_items), device, preset)
    chosen = values(config)
    given_by_preset = PRESETS[preset]
    for name in OPEN:
        assert chosen[name] is not None, name
        if name in given_by_preset:
            assert chosen[name] == given_by_preset[name] and name not in config.chosen
        else:
            assert says_its_value(name, chosen[name], config.chosen[name])
    assert set(config.chosen) <= set(OPEN)
    # what was chosen is a valid configuration, and choosing again changes nothing
    assert RunConfig.from_dict(config.to_dict()) == config
    assert defaults.resolve(config, shaped(lengths, num_items), device) == config


def test_flags_override_every_choice():
    given = {"maxlen": 7, "dropout": 0.15, "loss": "bce", "num_negatives": 3, "batch_size": 5, "lr": 0.123,
             "valid_users": 11, "patience": 4, "eval_every": 2}
    config = resolved(shaped([5] * 20_000, 1_000_000), **given)
    assert {name: values(config)[name] for name in given} == given
    assert config.chosen == {}


@settings(deadline=None)
@given(lengths=st.lists(st.integers(1, 1000), min_size=1, max_size=200))
def test_maxlen_covers_the_99th_percentile_within_bounds(lengths):
    maxlen = resolved(shaped(lengths, 100)).model.maxlen
    low, high = defaults.MAXLEN_BOUNDS
    assert low <= maxlen <= high and maxlen % 10 == 0
    p99 = np.percentile(lengths, 99)
    assert p99 <= maxlen or maxlen == high
    assert maxlen - 10 < p99 or maxlen == low  # the smallest multiple of 10 that covers it


def test_the_loss_is_full_softmax_while_it_is_cheap_then_sampled():
    lengths = [8] * 20_000  # 20,000 users of 8 items: 6 training positions each, 5 for the 10,000 validated
    positions = 20_000 * 6 - defaults.VALIDATION_SAMPLE
    budget = defaults.FULL_SOFTMAX_SCORES["cpu"]
    affordable = int(budget // positions)
    small, big = resolved(shaped(lengths, affordable)), resolved(shaped(lengths, affordable + 1))
    assert small.train.loss == "ce" and big.train.loss == "sampled-ce"
    assert f"{positions:,} positions" in big.chosen["loss"] and "logQ" in big.chosen["loss"]
    # A GPU affords full softmax over a catalog where a CPU samples.
    assert resolved(shaped(lengths, affordable + 1), CUDA).train.loss == "ce"
    # Sampled negatives are fewer than the catalog, and the batch is larger to share them.
    assert 1 <= big.train.num_negatives < big.model.num_items or big.train.num_negatives < affordable
    assert big.train.batch_size >= small.train.batch_size


def test_dropout_follows_the_density_of_the_log():
    dense = resolved(shaped([50] * 100, 200))  # 25% of user-item pairs
    sparse = resolved(shaped([8] * 20_000, 12_000))  # 0.07%, like Amazon Beauty
    assert dense.model.dropout == defaults.DROPOUT["dense"] < sparse.model.dropout == defaults.DROPOUT["sparse"]
    assert "dense (25.00%" in dense.chosen["dropout"] and "sparse" in sparse.chosen["dropout"]
    assert resolved(shaped([8] * 20_000, 12_000), preset="paper").model.dropout == defaults.DROPOUT["sparse"]


@pytest.mark.parametrize("users, length, batch", [(943, 106, 32), (22_363, 9, 256), (4_000, 9, 32), (12_000, 9, 128),
                                                  (300_000, 9, 256)])
def test_batches_keep_about_80_steps_an_epoch_within_bounds(users, length, batch):
    config = resolved(shaped([length] * users, 5_000))
    windows = users * -(-(length - 2) // config.model.maxlen)
    assert config.train.batch_size == batch and f"{windows:,} training windows" in config.chosen["batch_size"]
    assert batch == defaults.BATCH_BOUNDS[0] or windows / batch >= defaults.STEPS_PER_EPOCH


@pytest.mark.parametrize("users", [50, defaults.VALIDATION_SAMPLE, defaults.VALIDATION_SAMPLE + 1, 123_456])
def test_validation_uses_every_user_of_a_small_log_and_a_stated_sample_of_a_big_one(users):
    lengths = [MIN_LENGTH] * users + [MIN_LENGTH - 1] * 7  # the short ones have no validation target
    config = resolved(shaped(lengths, 500))
    if users <= defaults.VALIDATION_SAMPLE:
        assert config.train.valid_users == 0 and config.chosen["valid_users"] == f"all {users:,} users"
    else:
        assert config.train.valid_users == defaults.VALIDATION_SAMPLE
        assert f"{defaults.VALIDATION_SAMPLE:,} of {users:,} users" in config.chosen["valid_users"]


@settings(max_examples=40, deadline=None)
@given(users=st.integers(10, 300_000), length=st.integers(3, 60), num_items=st.integers(100, 2_000_000))
def test_validation_stays_a_small_share_of_training(users, length, num_items):
    data = shaped([length] * users, num_items)
    config = resolved(data)
    every = config.train.eval_every
    lengths = np.diff(data.offsets)
    validated = config.train.valid_users or users
    positions = users * (length - 2) - validated  # all but the test item; the validation item of those validated
    share = defaults.validation_share(config.model, config.train, num_items, positions, validated, lengths)
    assert share / every <= defaults.VALIDATION_SHARE
    assert every == 1 or share / (every - 1) > defaults.VALIDATION_SHARE  # no less often than needed
    assert f"{share:.0%}" in config.chosen["eval_every"]
    # more users to validate never means validating more often
    assert resolved(data, valid_users=2 * validated, loss=config.train.loss).train.eval_every >= every


def test_train_prints_every_choice_and_config_json_keeps_it(tmp_path):
    rows = [(f"u{u}", f"i{(u * 7 + t * 3) % 40}", t) for u in range(60) for t in range(6 + u % 5)]
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(tmp_path / "log.csv", index=False)
    result = subprocess.run([sys.executable, "-m", "sasrec", "train", tmp_path / "log.csv", "--out", tmp_path / "run",
                             "--epochs", "1", "--hidden", "16", "--batch-size", "16"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert set(config["chosen"]) == set(OPEN) - {"batch_size"}  # the flag's value is not a choice
    printed = dict(line.split(" = ", 1) for line in result.stdout.splitlines() if " = " in line)
    assert printed == config["chosen"]
    for name, why in config["chosen"].items():
        assert says_its_value(name, config["model" if name in ("maxlen", "dropout") else "train"][name], why)


@settings(max_examples=40, deadline=None)
@given(users=st.integers(3, 200_000), eval_every=st.integers(1, 5))
def test_patience_waits_longer_for_noisier_validation_and_counts_validations(users, eval_every):
    def waited(validated):  # epochs without a gain before stopping
        config = resolved(shaped([6] * 300_000, 5_000), valid_users=validated, eval_every=eval_every)
        return config.train.patience * eval_every

    low, high = defaults.PATIENCE_BOUNDS
    assert low <= waited(users) < high + eval_every
    assert waited(users) >= waited(2 * users)
