"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

A causal Transformer over a user's item history. Input is item embeddings (scaled by
sqrt(d)) plus learned position embeddings; each block is self-attention followed by a
point-wise feed-forward layer; an item's score is the dot product of the final hidden
state with that item's embedding (the input table is shared with the output).

Histories are left-padded with item 0. Positions are counted back from the most recent
item (1 = latest), so a history gets the same output whatever extra left padding it has,
and the paper's fixed-length layout (last item always at position maxlen) is the same
model up to a relabelling of the position table.
"""

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .settings import setting


@dataclass
class SASRecConfig:
    num_items: int = 0  # catalog size N: item ids are 1..N, 0 is padding; set from the data
    maxlen: int | None = setting(None, "longest history the model looks at (default: from the data's lengths)",
                                 label="Max length", form=True, low=2, high=5_000, type=int)
    hidden: int = setting(64, "embedding and hidden size d", label="Hidden size", form=True, low=4, high=2_048)
    num_blocks: int = setting(2, "self-attention blocks", flag="blocks", label="Blocks", form=True, low=1, high=24)
    num_heads: int = setting(2, "attention heads per block (must divide the hidden size)", flag="heads",
                             label="Heads", form=True, low=1, high=64)
    # None until chosen from the data (defaults.py); a model built from an unresolved config, to
    # serve or to inspect, has none (the trainer always resolves it).
    dropout: float | None = setting(None, "dropout on the embeddings and feed-forward layers (default: from the "
                                          "data's density: 0.3 on a dense log, 0.5 on a sparse one)",
                                    label="Dropout", form=True, low=0.0, high=0.9, step=0.05, type=float)
    # "paper": the placement of the authors' code (queries and FFN input normalised, residuals
    # taken from the normalised input); "pre": the standard pre-LN Transformer block.
    norm: str = setting("paper", "layer-norm placement", choices=("paper", "pre"))

    def __post_init__(self):
        if self.hidden % self.num_heads:
            raise ValueError(f"hidden size {self.hidden} is not divisible by {self.num_heads} heads")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be at least 0 and below 1, not {self.dropout}")
        if self.norm not in ("paper", "pre"):
            raise ValueError(f"norm must be 'paper' or 'pre', not {self.norm!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.query = nn.Linear(config.hidden, config.hidden)
        self.key_value = nn.Linear(config.hidden, 2 * config.hidden)
        self.out = nn.Linear(config.hidden, config.hidden)

    def forward(self, x_query, x_key, need_weights=False, head_mask=None, last=None):
        """Causal attention: position t looks at positions 0..t. x_query, x_key: (B, T, C).
        With last, (B, 1) positions, x_query is (B, 1, C): each row's query at its position
        `last` alone, which looks at positions 0..last of x_key. head_mask: (H,) or None; a head
        whose entry is 0 contributes nothing to the output."""
        B, T, C = x_key.shape
        Q, H = x_query.shape[1], self.num_heads
        q = self.query(x_query).view(B, Q, H, C // H).transpose(1, 2)  # (B, H, Q, hs)
        k, v = self.key_value(x_key).split(C, dim=2)
        k = k.view(B, T, H, C // H).transpose(1, 2)
        v = v.view(B, T, H, C // H).transpose(1, 2)
        visible = None if last is None else (torch.arange(T, device=last.device) <= last)[:, None, None, :]  # (B, 1, 1, T)
        # No dropout on the attention weights: it would force the explicit path on a GPU, and
        # the embedding and feed-forward dropout regularise well enough.
        if need_weights or (x_query.device.type == "cpu" and torch.is_autocast_enabled("cpu")):
            # The explicit path gives the weights for the visualisations. It also trains a CPU
            # under bf16 autocast faster: its matmuls run in bf16, while the fused kernel's
            # bf16 backward is slower than its fp32 one (torch 2.13, bench/cpu_precision.py).
            if visible is None:
                hidden_keys = torch.full((T, T), float("-inf"), dtype=q.dtype, device=q.device).triu(1)
            else:
                hidden_keys = torch.zeros(B, H, 1, T, dtype=q.dtype, device=q.device).masked_fill(
                    ~visible, float("-inf")).flatten(0, 1)
            scores = torch.baddbmm(hidden_keys, q.flatten(0, 1), k.flatten(0, 1).transpose(1, 2),
                                   alpha=1 / math.sqrt(C // H))  # (B*H, Q, T)
            weights = scores.softmax(dim=-1).view(B, H, Q, T)
            y = weights @ v
        else:
            weights = None
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=visible, is_causal=visible is None)
        if head_mask is not None:  # (B, H, Q, hs): a masked head's output is zero before the heads are mixed
            y = y * head_mask.to(y)[:, None, None]  # on y's device, in its dtype
        y = y.transpose(1, 2).reshape(B, Q, C)
        return self.out(y), weights if need_weights else None


class Dropout(nn.Module):
    """nn.Dropout with a cheaper mask, for a CPU, where drawing the mask was the largest
    single cost of a training step. torch's Bernoulli sampler makes one draw per element;
    here one 32-bit draw gives four bytes, each compared with p quantised to 1/256 (0.2 is
    51/256), and the kept elements are scaled by the exact inverse of their probability."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        # The range has 2**32 - 1 values, the widest that takes one 32-bit draw per element.
        bits = torch.empty((x.numel() + 3) // 4, dtype=torch.int32, device=x.device).random_(-2**31, 2**31 - 1)
        random_bytes = bits.view(torch.uint8)[: x.numel()].view(x.shape)
        threshold = min(round(self.p * 256), 255)
        # keep = random_bytes >= threshold as 0 or 1 in x's dtype, by arithmetic: on a CPU that is
        # 3-5 times faster than comparing and converting booleans. Bytes are exact in bf16.
        keep = random_bytes.to(x.dtype).sub_(threshold - 1).clamp_(0, 1)
        return x * keep.mul_(256 / (256 - threshold))


class FeedForward(nn.Module):
    """The paper's point-wise two-layer network, the same MLP at every position, with
    dropout after each layer as in the authors' code."""

    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden, config.hidden)
        self.fc2 = nn.Linear(config.hidden, config.hidden)
        self.dropout = Dropout(config.dropout or 0.0)

    def forward(self, x):
        return self.dropout(self.fc2(self.dropout(F.relu(self.fc1(x)))))


class Block(nn.Module):
    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.norm = config.norm
        self.ln_attention = nn.LayerNorm(config.hidden)
        self.attention = CausalSelfAttention(config)
        self.ln_ffn = nn.LayerNorm(config.hidden)
        self.ffn = FeedForward(config)

    def forward(self, x, need_weights=False, head_mask=None, last=None):
        """x: (B, T, C) -> (B, T, C); or, with last, (B, 1) positions, the output at those alone, (B, 1, C)."""
        at_last = (lambda t: t) if last is None else (lambda t: t.gather(1, last[:, :, None].expand(-1, -1, t.shape[2])))
        if self.norm == "paper":
            query = self.ln_attention(at_last(x))
            attended, weights = self.attention(query, x, need_weights, head_mask, last)
            x = query + attended
            x = self.ln_ffn(x)
            x = x + self.ffn(x)
        else:
            h = self.ln_attention(x)
            attended, weights = self.attention(at_last(h), h, need_weights, head_mask, last)
            x = at_last(x) + attended
            x = x + self.ffn(self.ln_ffn(x))
        return x, weights


class SASRec(nn.Module):
    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.config = config
        self.item_embedding = nn.Embedding(config.num_items + 1, config.hidden, padding_idx=0)
        self.position_embedding = nn.Embedding(config.maxlen + 1, config.hidden, padding_idx=0)
        self.dropout = Dropout(config.dropout or 0.0)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_blocks))
        self.ln_final = nn.LayerNorm(config.hidden)
        # Xavier for the tables: the default N(0, 1), scaled by sqrt(d), swamps the positions.
        for table in (self.item_embedding, self.position_embedding):
            nn.init.xavier_normal_(table.weight)
            with torch.no_grad():
                table.weight[0].zero_()

    def forward(self, items, need_weights=False, head_mask=None, last_only=False):
        """items: (B, T) left-padded item ids. head_mask: (layers, heads) or None; the heads whose
        entry is 0 are switched off (their output is zeroed), and 1 leaves a head as it is.

        Returns the hidden state at every position, (B, T, d), and, when need_weights is set,
        the attention weights of every layer and head, (B, layers, heads, T, T), with the
        rows of padding queries set to zero. last_only (without need_weights) returns the
        hidden state at the most recent position alone, (B, 1, d): the last block then runs
        for that position only, as nothing else depends on its other positions.
        """
        if last_only and need_weights:
            raise ValueError("last_only gives no attention weights")
        B, T = items.shape
        # Roll each row so that its items come first and its padding last. Then the plain
        # causal mask is all the masking needed: no item ever sees a padding position, and
        # attention takes the fused kernel's causal path, which skips the future entirely.
        num_padding = (items == 0).sum(1, keepdim=True)  # (B, 1)
        index = torch.arange(T, device=items.device)
        rolled = (index + num_padding) % T  # (B, T): where each rolled position comes from
        items = items.gather(1, rolled)
        is_item = index < T - num_padding  # (B, T); callers keep at most maxlen real items per row
        # Position 1 is the most recent item; padding gets position 0, a zero vector.
        positions = (T - num_padding - index).clamp(min=0)

        x = self.item_embedding(items) * math.sqrt(self.config.hidden) + self.position_embedding(positions)
        x = self.dropout(x)

        last = (T - 1 - num_padding).clamp(min=0) if last_only else None  # (B, 1): the most recent item, rolled
        layer_weights = []
        for layer, block in enumerate(self.blocks):
            final = layer == len(self.blocks) - 1
            x, weights = block(x, need_weights, None if head_mask is None else head_mask[layer], last if final else None)
            layer_weights.append(weights)
        hidden = self.ln_final(x)
        if last_only:
            return hidden, None

        unrolled = (index - num_padding) % T  # back to the caller's left-padded layout
        hidden = hidden.gather(1, unrolled[:, :, None].expand(B, T, hidden.shape[-1]))
        if not need_weights:
            return hidden, None
        attention = torch.stack(layer_weights, dim=1)  # (B, L, H, T, T), rolled
        attention = attention * is_item[:, None, None, :, None]  # padding queries attend nowhere
        L, H = attention.shape[1:3]
        attention = attention.gather(3, unrolled[:, None, None, :, None].expand(B, L, H, T, T))
        return hidden, attention.gather(4, unrolled[:, None, None, None, :].expand(B, L, H, T, T))

    def score_items(self, hidden):
        """Scores of every item id (column 0 is padding) for hidden states (..., d)."""
        return hidden @ self.item_embedding.weight.T

    def last_hidden(self, items, need_weights=False, head_mask=None):
        """Hidden state at the most recent position, the one that predicts the next item."""
        hidden, attention = self(items, need_weights, head_mask, last_only=not need_weights)
        return hidden[:, -1], attention
