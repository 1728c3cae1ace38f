"""The model's invariants: causality, padding, attention rows, batching."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sasrec.model import Dropout, SASRec, SASRecConfig

NUM_ITEMS, MAXLEN = 40, 12
settings.register_profile("model", max_examples=25, deadline=None)
settings.load_profile("model")


def make_model(norm="paper", heads=2, blocks=2, seed=0):
    torch.manual_seed(seed)
    model = SASRec(SASRecConfig(num_items=NUM_ITEMS, maxlen=MAXLEN, hidden=16, num_blocks=blocks,
                                num_heads=heads, dropout=0.3, norm=norm))
    return model.eval()


MODELS = {norm: make_model(norm) for norm in ("paper", "pre")}
histories = st.lists(st.integers(1, NUM_ITEMS), min_size=1, max_size=MAXLEN)
norms = st.sampled_from(sorted(MODELS))


def left_pad(history, width):
    return torch.tensor([[0] * (width - len(history)) + list(history)])


@given(history=histories, data=st.data(), norm=norms)
def test_causal_future_items_do_not_change_the_past(history, data, norm):
    model = MODELS[norm]
    t = data.draw(st.integers(0, len(history) - 1))
    changed = history[: t + 1] + data.draw(st.lists(st.integers(1, NUM_ITEMS), min_size=len(history) - t - 1,
                                                    max_size=len(history) - t - 1))
    # Right-aligned histories of equal length share positions, so compare position by position.
    a, attn_a = model(torch.tensor([history]), need_weights=True)
    b, attn_b = model(torch.tensor([changed]), need_weights=True)
    torch.testing.assert_close(a[0, : t + 1], b[0, : t + 1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn_a[0, :, :, : t + 1], attn_b[0, :, :, : t + 1], atol=1e-6, rtol=1e-5)


@given(history=histories, extra=st.integers(1, 20), norm=norms)
def test_extra_left_padding_changes_nothing(history, extra, norm):
    model = MODELS[norm]
    n = len(history)
    tight, attn_tight = model(left_pad(history, n), need_weights=True)
    padded, attn_padded = model(left_pad(history, n + extra), need_weights=True)
    torch.testing.assert_close(padded[0, -n:], tight[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn_padded[0, :, :, -n:, -n:], attn_tight[0], atol=1e-6, rtol=1e-5)
    # Padding receives no attention at all.
    assert attn_padded[0, :, :, :, :extra].abs().max() == 0


@given(history=histories, extra=st.integers(0, 5), norm=norms)
def test_attention_rows_sum_to_one_over_real_items(history, extra, norm):
    n = len(history)
    _, attention = MODELS[norm](left_pad(history, n + extra), need_weights=True)  # (1, L, H, T, T)
    real_rows = attention[0, :, :, extra:, extra:]
    torch.testing.assert_close(real_rows.sum(-1), torch.ones_like(real_rows.sum(-1)))
    assert torch.all(real_rows.triu(diagonal=1) == 0), "a position attended to a later one"
    assert attention[0, :, :, :extra].abs().max() == 0 if extra else True  # padding queries: zero rows


@given(history=histories, others=st.lists(histories, min_size=1, max_size=4), norm=norms)
def test_history_scores_the_same_alone_and_in_a_batch(history, others, norm):
    model = MODELS[norm]
    alone, _ = model.last_hidden(torch.tensor([history]))
    width = max(len(h) for h in [history, *others])
    batch = torch.cat([left_pad(h, width) for h in [history, *others]])
    batched, _ = model.last_hidden(batch)
    torch.testing.assert_close(model.score_items(batched[0]), model.score_items(alone[0]), atol=1e-4, rtol=1e-5)


@given(batch=st.lists(st.lists(st.integers(0, NUM_ITEMS), max_size=MAXLEN), min_size=1, max_size=5),
       heads_on=st.lists(st.booleans(), min_size=4, max_size=4), norm=norms)
def test_the_last_position_alone_is_the_full_forwards_last_position(batch, heads_on, norm):
    # last_hidden runs the last block for the most recent position only; any padding, even a row
    # of padding alone, and any head mask must give what the whole forward gives there
    model = MODELS[norm]
    width = max(max(len(h) for h in batch), 1)
    items = torch.cat([left_pad([i for i in h if i], width) for h in batch])
    mask = torch.tensor(heads_on, dtype=torch.float32).view(2, 2)
    for head_mask in (None, mask):
        full, _ = model(items, head_mask=head_mask)
        alone, _ = model.last_hidden(items, head_mask=head_mask)
        torch.testing.assert_close(alone, full[:, -1], atol=1e-5, rtol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the explicit attention path
            full, _ = model(items, head_mask=head_mask)
            alone, _ = model.last_hidden(items, head_mask=head_mask)
        torch.testing.assert_close(alone.float(), full[:, -1].float(), atol=0.02, rtol=0.02)


@pytest.mark.parametrize("norm", sorted(MODELS))
def test_fused_and_explicit_attention_agree(norm):
    model = MODELS[norm]
    items = torch.tensor([[0, 0, 0, 5, 9, 3], [1, 2, 3, 4, 5, 6]])
    fused, none = model(items)
    explicit, attention = model(items, need_weights=True)
    assert none is None
    assert attention.shape == (2, 2, 2, 6, 6)  # (batch, layers, heads, T, T)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm", sorted(MODELS))
def test_cpu_bf16_training_path_agrees_with_fp32_and_keeps_the_invariants(norm):
    # Under CPU autocast training takes the explicit attention path in bf16.
    model = MODELS[norm]
    history = [5, 9, 3, 7, 1]
    changed = history[:3] + [2, 2]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed, _ = model(left_pad(history, 5))
        future_changed, _ = model(left_pad(changed, 5))
        padded, _ = model(left_pad(history, 9))
    reference, _ = model(left_pad(history, 5))
    torch.testing.assert_close(mixed.float(), reference, atol=0.03, rtol=0.02)
    torch.testing.assert_close(future_changed[0, :3], mixed[0, :3], atol=1e-6, rtol=0)
    torch.testing.assert_close(padded[0, -5:], mixed[0], atol=1e-3, rtol=0)


def test_dropout_only_in_training():
    model = make_model()
    items = torch.tensor([[0, 1, 2, 3]])
    torch.testing.assert_close(model(items)[0], model(items)[0])
    model.train()
    assert not torch.allclose(model(items)[0], model(items)[0])


@pytest.mark.parametrize("p", [0.2, 0.3, 0.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_drops_a_share_p_and_keeps_the_mean(p, dtype):
    torch.manual_seed(0)
    x = torch.ones(1000, 101, dtype=dtype)  # an odd size: the mask is cut from 4 bytes per draw
    dropped = Dropout(p).train()(x)
    assert dropped.dtype == dtype
    assert abs(float((dropped == 0).float().mean()) - p) < 0.005
    assert abs(float(dropped.float().mean()) - 1) < 0.01
    assert set(dropped.unique().float().tolist()) == {0.0, float(dropped.max())}


def test_scores_use_the_shared_item_table():
    model = make_model()
    hidden = torch.randn(3, 16)
    torch.testing.assert_close(model.score_items(hidden), hidden @ model.item_embedding.weight.T)
    assert model.score_items(hidden).shape == (3, NUM_ITEMS + 1)


def test_config_rejects_impossible_settings():
    with pytest.raises(ValueError, match="divisible"):
        SASRecConfig(num_items=5, hidden=10, num_heads=3)
    with pytest.raises(ValueError, match="dropout"):
        SASRecConfig(num_items=5, dropout=1.0)
    with pytest.raises(ValueError, match="norm"):
        SASRecConfig(num_items=5, norm="post")
