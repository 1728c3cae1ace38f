"""The training losses: full softmax cross-entropy (SASRec+), the paper's binary cross-entropy
with one negative, and a sampled softmax for catalogs too big to score whole.

Each takes the hidden states of a batch and returns the mean loss over its real (non-padding)
positions. The full softmax is computed chunk by chunk with its gradients (full_softmax_ce),
which keeps the catalog-wide logits of a chunk in cache instead of streaming a batch's through
memory several times.
"""

import math

import torch
import torch.nn.functional as F


def sequence_loss(model, inputs, targets, loss: str, num_negatives: int = 256, item_log_q=None):
    """Mean loss over the real (non-padding) positions of a batch. item_log_q (N+1,): log of the
    probability with which sampled-ce draws each item as a negative; None draws uniformly."""
    hidden, _ = model(inputs)
    is_target = targets != 0
    hidden, targets = hidden[is_target], targets[is_target]  # (M, d), (M,)
    table = model.item_embedding.weight  # (N+1, d)
    num_items = table.shape[0] - 1
    if loss == "ce":
        return full_softmax_ce(hidden, table, targets)
    if loss == "bce":  # the positive's term plus the negative's, as in the paper
        candidates = torch.stack([targets, negatives_excluding(targets, num_items)], dim=1)  # (M, 2)
        # A sparse lookup: its gradient touches 2M rows, not a zero-filled copy of the whole table.
        logits = (hidden[:, None] * F.embedding(candidates, table, sparse=True)).sum(-1)  # (M, 2)
        labels = torch.tensor([1.0, 0.0], device=logits.device).expand_as(logits)
        return F.binary_cross_entropy_with_logits(logits, labels, reduction="none").sum(1).mean()
    negatives, log_expected = shared_negatives(num_negatives, num_items, item_log_q, targets.device)
    return sampled_cross_entropy(hidden, targets, table, negatives, log_expected)


# Logits held at once by full_softmax_ce: a chunk of rows times the catalog. On a CPU, 2M floats
# (8 MB) stay in cache between the matmul, the softmax and the two gradient matmuls; more did not
# help at 12k-24k items (bench/epoch_speed.py). A GPU wants big kernels and has the memory.
CHUNK_LOGITS = {"cpu": 1 << 21, "cuda": 1 << 27}


def full_softmax_ce(hidden, table, targets):
    """Softmax cross-entropy of each hidden state (M, d) against every item (scores hidden @
    table[1:].T; row 0 of the table (N+1, d) is padding) for targets (M,) in 1..N: mean over M.
    Under autocast the matmuls run in its dtype and the softmax in fp32, as F.cross_entropy would."""
    device_type = hidden.device.type
    dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else torch.float32
    chunk = max(1, CHUNK_LOGITS.get(device_type, CHUNK_LOGITS["cpu"]) // table.shape[0])
    need_grad = torch.is_grad_enabled() and (hidden.requires_grad or table.requires_grad)
    return _FullSoftmaxCE.apply(hidden, table, targets, dtype, chunk, need_grad)


# The row sums of unshifted exponentials that _exponentials accepts. Inside, no exponential has
# overflowed, the largest of a row is a normal float, and the gradient matmuls (sums times an item
# vector) stay far below the fp32 and bf16 limit (3.4e38).
EXP_SUM_RANGE = (2.0 ** -100, 2.0 ** 100)


def _exponentials(rows, items, target):
    """(the exponentials e (c, N) of the logits rows @ items.T in the compute dtype, the target's logit
    (c, 1), each row's sum of e (c, 1), and of e without the target (c, 1)), the last three in fp32.
    The logits may be shifted by the same amount along a row, which the softmax does not see.

    Unshifted when the sums allow it: the row max and its subtraction cost two passes over the chunk,
    and trained logits stay far from exp's limits (|logit| < 40 in our Beauty and Games runs). The
    target's own exponential is taken in fp32: in bf16 a confident target's rounding (2^-9 of
    e^12 is 500) would swamp the sum of the others, which is what its gradient p - 1 is made of."""
    for shifted in (False, True):
        logits = rows @ items.T  # (c, N), in the compute dtype: no fp32 copy of the chunk
        if shifted:  # by each row's max: every sum is then in [1, N]
            logits.sub_(logits.amax(1, keepdim=True))
        target_logit = logits.gather(1, target).float()
        exponentials = logits.exp_()
        # Summed in fp32. sum(dtype=float32) casts the same way but took twice as long on a CPU.
        others = exponentials.float().sum(1, keepdim=True) - exponentials.gather(1, target).float()
        sums = others + target_logit.exp()
        if shifted or bool(((sums >= EXP_SUM_RANGE[0]) & (sums <= EXP_SUM_RANGE[1])).all()):
            return exponentials, target_logit, sums, others


class _FullSoftmaxCE(torch.autograd.Function):
    """The loss and both gradients in one pass over row chunks, as fused linear cross-entropy
    kernels do (Liger, Cut Cross-Entropy): a chunk's logits are computed, turned into softmax
    probabilities minus the one-hot target (the gradient of the logits), and used at once for the
    gradients of the hidden states and of the table, so that no (M, N) tensor is ever stored.
    Backward only scales the gradients kept from forward."""

    @staticmethod
    def forward(ctx, hidden, table, targets, dtype, chunk, need_grad):
        with torch.autocast(hidden.device.type, enabled=False):
            items = table.detach()[1:].to(dtype)  # (N, d)
            hidden_c = hidden.detach().to(dtype)
            targets = targets - 1
            grad_hidden = torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device)
            grad_items = torch.zeros(items.shape, dtype=torch.float32, device=hidden.device)
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            for lo in range(0, len(hidden_c), chunk):
                rows, target = hidden_c[lo: lo + chunk], targets[lo: lo + chunk, None]
                exponentials, target_logit, sums, others = _exponentials(rows, items, target)
                total += (sums.log() - target_logit).sum()
                if not need_grad:
                    continue
                # The gradient of the logits, softmax minus one-hot, is (e - s * onehot) / s for the
                # exponentials e and their row sums s. The 1 / s is applied to the (c, d) factors of the two
                # matmuls, not to the (c, N) chunk, which saves a pass over it. The target's entry e_t - s is
                # minus the sum of the others, which keeps its precision as p nears 1.
                # Indexing, not scatter_: on a CPU, bf16 scatter_ copied the whole chunk twice (0.57 ms against
                # 0.01 ms at 173 x 12,101).
                exponentials[torch.arange(len(rows), device=rows.device), target[:, 0]] = -others.to(dtype)[:, 0]
                inverse_sums = 1 / sums
                grad_hidden[lo: lo + chunk] = (exponentials @ items) * inverse_sums
                grad_items += exponentials.T @ (rows * inverse_sums).to(dtype)
            count = max(len(hidden_c), 1)
            if need_grad:
                ctx.save_for_backward(grad_hidden, grad_items)
            ctx.count, ctx.table_dtype, ctx.hidden_dtype = count, table.dtype, hidden.dtype
            return total / count

    @staticmethod
    def backward(ctx, grad_loss):
        grad_hidden, grad_items = ctx.saved_tensors
        scale = grad_loss.float() / ctx.count
        grad_table = torch.cat([torch.zeros_like(grad_items[:1]), grad_items]).mul_(scale)
        return (grad_hidden * scale).to(ctx.hidden_dtype), grad_table.to(ctx.table_dtype), None, None, None, None


def shared_negatives(num_negatives: int, num_items: int, item_log_q, device):
    """(negatives (K,), log of each one's expected count in the draw (K,)): K items drawn with
    replacement, uniformly or from exp(item_log_q)."""
    if item_log_q is None:
        negatives = torch.randint(1, num_items + 1, (num_negatives,), device=device)
        return negatives, torch.full((num_negatives,), math.log(num_negatives / num_items), device=device)
    negatives = torch.multinomial(item_log_q.exp(), num_negatives, replacement=True)
    return negatives, item_log_q[negatives] + math.log(num_negatives)


def negative_log_q(targets, num_items: int, uniform_share: float = 0.5):
    """(N+1,) log-probabilities of drawing each item as a sampled-ce negative: in proportion to how
    often it is a training target, as in-batch negatives would be (those are the items a model
    most often ranks too high), mixed with a uniform share so that every item is sometimes a
    negative (mixed negative sampling, Yang et al. 2020). Padding is never drawn."""
    counts = torch.bincount(targets.flatten(), minlength=num_items + 1).double()
    counts[0] = 0
    q = (1 - uniform_share) * counts / counts.sum().clamp(min=1) + uniform_share / num_items
    q[0] = 0
    return q.log().float()


def sampled_cross_entropy(hidden, targets, table, negatives, log_expected):
    """Softmax cross-entropy over each position's positive and K negatives shared by the batch,
    made an estimate of the full softmax's: each negative's logit is lowered by the log of its
    expected count in the draw, so that the negatives' exponentials sum, in expectation, to the
    whole catalog's (the logQ correction; Bengio & Senecal 2008, Yi et al. RecSys 2019). Without
    it, K uniform negatives weigh K/N of the catalog and the model learns a softer ranking.
    A negative equal to the row's positive is masked there. hidden (M, d), targets (M,)."""
    # One sparse lookup for both: a dense lookup's backward fills a catalog-sized gradient, and on a
    # 1M-item catalog those fills, not the arithmetic, were most of a step. The table's gradient is
    # still dense (the model's input lookup), so Adam is unchanged.
    candidates = F.embedding(torch.cat([targets, negatives]), table, sparse=True)
    positive_embeddings, negative_embeddings = candidates.split([len(targets), len(negatives)])
    positive_logits = (hidden * positive_embeddings).sum(-1, keepdim=True)  # (M, 1)
    negative_logits = hidden @ negative_embeddings.T - log_expected  # (M, K)
    negative_logits = negative_logits.masked_fill(negatives[None] == targets[:, None], float("-inf"))
    logits = torch.cat([positive_logits, negative_logits], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


def negatives_excluding(positives, num_items: int):
    """One uniform negative per positive, never equal to it: draw from the N-1 other
    items, then shift the draws at or above the positive up by one."""
    negatives = torch.randint(1, num_items, positives.shape, device=positives.device)
    return negatives + (negatives >= positives).long()


