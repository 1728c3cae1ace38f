"""Why a CPU with native bf16 trains under bf16 autocast, with explicit attention.

    python -m bench.cpu_precision ../shared/data/ml-100k --repeat 7

Prints one JSON line:
- "attention_ms": forward + backward of causal attention at the paper preset's largest
  batch (128 windows of 200, one head of 50), for the fused kernel and the explicit path
  (baddbmm, softmax, matmul), each in fp32 and bf16; medians over the repeats.
- "epoch_seconds": a paper-preset BCE epoch on DATA, in fp32 and under bf16 autocast
  (the model then takes its explicit attention path), alternating epoch by epoch in one
  process so that both see the same machine load; medians over the repeats.
"""

import argparse
import json
import math
import statistics
import time
from dataclasses import replace
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from bench.machine import machine_info
from sasrec.config import configs
from sasrec.dataset import load_dataset
from sasrec.losses import sequence_loss
from sasrec.model import SASRec
from sasrec.sequences import training_windows
from sasrec.train import length_batches


def median_ms(run, repeat):
    run()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1e3, 2)


def explicit_attention(q, k, v):  # (B, T, hs) each
    T = q.shape[-2]
    future = torch.full((T, T), float("-inf"), dtype=q.dtype).triu(1)
    scores = torch.baddbmm(future, q, k.transpose(1, 2), alpha=1 / math.sqrt(q.shape[-1]))
    return scores.softmax(-1) @ v


def fused_attention(q, k, v):  # with a head dimension, (B, 1, T, hs), as the model calls it
    return F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], is_causal=True)[:, 0]


def attention_backward(attend, q, k, v, grad):
    attend(q, k, v).backward(grad)


def attention_ms(repeat):
    batch, width, head_size = 128, 200, 50
    results = {}
    for dtype in (torch.float32, torch.bfloat16):
        q, k, v = (torch.randn(batch, width, head_size, dtype=dtype, requires_grad=True) for _ in range(3))
        grad = torch.randn(batch, width, head_size, dtype=dtype)
        for name, attend in (("fused", fused_attention), ("explicit", explicit_attention)):
            step = partial(attention_backward, attend, q, k, v, grad)
            results[f"{name} {str(dtype).removeprefix('torch.')}"] = median_ms(step, repeat)
    return results


def epoch_seconds(data, repeat):
    torch.manual_seed(0)
    dataset = load_dataset(data)
    model_config, train_config = configs("paper")
    model = SASRec(replace(model_config, num_items=dataset.num_items)).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.lr, betas=(0.9, train_config.beta2), fused=True)
    inputs, targets = (torch.as_tensor(a) for a in training_windows(dataset, model_config.maxlen))
    lengths = (inputs != 0).sum(1).numpy()
    rng = np.random.default_rng(0)

    def epoch(bf16):
        for rows in length_batches(lengths, train_config.batch_size, rng):
            width = int(lengths[rows].max())
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = sequence_loss(model, inputs[rows, -width:], targets[rows, -width:], train_config.loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    times = {"fp32": [], "bf16 autocast": []}
    for bf16 in (False, True):  # warm-up
        epoch(bf16)
    for _ in range(repeat):
        for name, seconds in times.items():
            started = time.perf_counter()
            epoch(name != "fp32")
            seconds.append(time.perf_counter() - started)
    return {name: round(statistics.median(t), 3) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps({
        "attention_ms": attention_ms(args.repeat), "epoch_seconds": epoch_seconds(args.data, args.repeat),
        "machine": machine_info(),
    }))


if __name__ == "__main__":
    main()
