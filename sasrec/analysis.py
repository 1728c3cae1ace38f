"""Looking inside a trained model: attention rollout and aggregates, embedding maps,
and where SASRec wins by history length."""

import numpy as np
import pandas as pd
import torch

from .evaluate import history_bounds, left_padded, rank_metrics


def attention_rollout(attention: np.ndarray) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema, 2020) for one history.

    attention: (layers, heads, T, T). Heads are averaged, the residual connection is
    counted as attention to oneself (0.5 A + 0.5 I, rows renormalised), and the layers
    are multiplied. Row t of the (T, T) result says how much each earlier item flows
    into position t; the last row is the overall influence on the prediction.
    """
    num_layers, _, T, _ = attention.shape
    rollout = np.eye(T)
    for layer in range(num_layers):
        mixed = 0.5 * attention[layer].mean(0) + 0.5 * np.eye(T)
        mixed /= mixed.sum(-1, keepdims=True)
        rollout = mixed @ rollout
    return rollout


def sample_users(dataset, num: int, seed: int = 0) -> np.ndarray:
    """Up to `num` users with at least two validation-history items, drawn without replacement."""
    starts, ends, _ = history_bounds(dataset, "valid")
    eligible = np.flatnonzero(ends - starts >= 2)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(eligible, size=min(num, len(eligible)), replace=False))


@torch.no_grad()
def _validation_attention(model, dataset, users, batch_size=64):
    """Yield (histories (b, T), attention (b, L, H, T, T)) over the users' validation histories."""
    starts, ends, _ = history_bounds(dataset, "valid")
    maxlen = model.config.maxlen
    model.eval()
    for lo in range(0, len(users), batch_size):
        rows = users[lo: lo + batch_size]
        width = int(min(maxlen, (ends[rows] - starts[rows]).max()))
        histories = left_padded(dataset.items, np.maximum(starts[rows], ends[rows] - maxlen), ends[rows], width)
        _, attention = model(torch.as_tensor(histories).long(), need_weights=True)
        yield histories, attention.numpy()


def attention_by_distance(model, dataset, users) -> pd.DataFrame:
    """Mean attention weight by distance from the attending position, per layer.

    Distance 0 is an item attending to itself, 1 the item just before it, and so on:
    the analysis of the SASRec paper's Figure 4. Columns: layer, distance, weight.
    """
    num_layers = model.config.num_blocks
    total = np.zeros((num_layers, model.config.maxlen))
    count = np.zeros(model.config.maxlen)
    for histories, attention in _validation_attention(model, dataset, users):
        weights = attention.mean(2)  # (b, L, T, T), heads averaged
        real = histories != 0
        T = histories.shape[1]
        for distance in range(T):
            query, key = np.arange(distance, T), np.arange(0, T - distance)
            valid = real[:, key]  # the key is real, so the later query is too
            total[:, distance] += (weights[:, :, query, key] * valid[:, None]).sum((0, 2))
            count[distance] += valid.sum()
    used = count > 0
    mean = total[:, used] / count[used]
    return pd.DataFrame({
        "layer": np.repeat(np.arange(1, num_layers + 1), used.sum()),
        "distance": np.tile(np.flatnonzero(used), num_layers),
        "weight": mean.ravel(),
    })


def category_attention(model, dataset, users) -> pd.DataFrame:
    """Mean attention from items of one category to items of another, heads and layers
    averaged, each row normalised to sum to 1 (the paper's Figure 5).

    Returns a square DataFrame: index = category of the attending item, columns = category
    of the attended item. Items without a category are left out.
    """
    categories = dataset.catalog["category"].astype("string")
    names = sorted(categories.dropna().unique())
    code = np.full(dataset.num_items + 1, -1)
    code[categories.index.to_numpy()] = pd.Categorical(categories, categories=names).codes
    matrix = np.zeros((len(names), len(names)))
    for histories, attention in _validation_attention(model, dataset, users):
        weights = attention.mean((1, 2))  # (b, T, T)
        query_code = code[histories][:, :, None].repeat(histories.shape[1], 2)
        key_code = code[histories][:, None, :].repeat(histories.shape[1], 1)
        keep = (query_code >= 0) & (key_code >= 0) & (weights > 0)
        np.add.at(matrix, (query_code[keep], key_code[keep]), weights[keep])
    matrix /= np.maximum(matrix.sum(1, keepdims=True), 1e-12)
    return pd.DataFrame(matrix, index=names, columns=names)


def embedding_map(model, dataset, method: str = "pca") -> pd.DataFrame:
    """A 2-D projection of the item embeddings: item_id, title, category, popularity, x, y.

    method "umap" needs the optional umap-learn package; PCA needs nothing.
    """
    vectors = model.item_embedding.weight.detach()[1:].numpy()
    if method == "umap":
        import umap  # optional dependency

        xy = umap.UMAP(n_components=2, random_state=0).fit_transform(vectors)
    else:
        centred = vectors - vectors.mean(0)
        _, _, components = np.linalg.svd(centred, full_matrices=False)
        xy = centred @ components[:2].T
    popularity = np.bincount(dataset.items, minlength=dataset.num_items + 1)[1:]
    table = dataset.catalog[["item_id", "title", "category"]].reset_index(drop=True)
    return table.assign(popularity=popularity, x=xy[:, 0], y=xy[:, 1])


def breakdown_by_length(per_user: pd.DataFrame, models=("", "markov_", "pop_"), k: int = 10) -> pd.DataFrame:
    """NDCG@k and HR@k of each model for short, medium and long histories (terciles).

    per_user: evaluate.Report.per_user. Returns one row per (group, model).
    """
    lengths = per_user["history_length"]
    edges = np.unique(np.quantile(lengths, [0, 1 / 3, 2 / 3, 1]))
    labels = ["short", "medium", "long"][: len(edges) - 1]
    groups = pd.cut(lengths, edges, labels=labels, include_lowest=True)
    names = {"": "SASRec", "markov_": "Markov", "pop_": "Most popular"}
    rows = []
    for label in labels:
        chosen = per_user[groups == label]
        span = f"{chosen.history_length.min()}–{chosen.history_length.max()} items"
        for prefix in models:
            metrics = rank_metrics(chosen[prefix + "rank"].to_numpy(), ks=(k,))
            rows.append({"group": label, "history": span, "users": len(chosen), "model": names[prefix],
                         f"ndcg@{k}": metrics[f"ndcg@{k}"], f"hr@{k}": metrics[f"hr@{k}"]})
    return pd.DataFrame(rows)
