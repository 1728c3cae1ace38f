"""Looking inside a trained model and its data: attention tables, rollout and aggregates,
embedding maps, and the Data page's profiles of a log."""

import numpy as np
import pandas as pd
import torch

from . import sequences


def attention_table(history: pd.DataFrame, attention: np.ndarray) -> pd.DataFrame:
    """One history's attention in long form, one row per causal cell (the key is the query
    or an earlier item): layer, head, query, key (1-based positions), their item ids and
    titles, and the weight. Each (layer, head, query) group sums to 1.

    history: Recommendation.history (position, item_id, title, ...); attention: (L, H, T, T).
    """
    num_layers, num_heads, T, _ = attention.shape
    layer, head, query, key = np.meshgrid(np.arange(num_layers), np.arange(num_heads), np.arange(T), np.arange(T),
                                          indexing="ij")
    causal = key <= query
    query, key = query[causal], key[causal]
    ids, titles = history["item_id"].to_numpy(), history["title"].to_numpy()
    return pd.DataFrame({
        "layer": layer[causal] + 1, "head": head[causal] + 1,
        "query": query + 1, "query_item_id": ids[query], "query_title": titles[query],
        "key": key + 1, "key_item_id": ids[key], "key_title": titles[key],
        "weight": attention[causal],
    })


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


def prediction_focus(history: pd.DataFrame, attention: np.ndarray) -> pd.DataFrame:
    """What the predicting (last) position looks at: for each history item, its attention
    weight in each layer (heads averaged) and its rollout influence across all layers.

    Long form: position, item_id, title, view ("Layer 1", ..., "Rollout"), weight. The
    weights of each view sum to 1 over the history.
    """
    last = attention[:, :, -1, :].mean(1)  # (L, T)
    views = [f"Layer {layer + 1}" for layer in range(len(last))] + ["Rollout"]
    weights = np.vstack([last, attention_rollout(attention)[-1]])
    T = attention.shape[-1]
    return pd.DataFrame({
        "position": np.tile(np.arange(1, T + 1), len(views)),
        "item_id": np.tile(history["item_id"].to_numpy(), len(views)),
        "title": np.tile(history["title"].to_numpy(), len(views)),
        "view": np.repeat(views, T),
        "weight": weights.ravel(),
    })


def sample_users(dataset, num: int, seed: int = 0) -> np.ndarray:
    """Rows of the validation split: up to `num` users with at least two history items, drawn
    without replacement."""
    split = sequences.holdout(dataset, "valid")
    eligible = np.flatnonzero(split.ends - split.starts >= 2)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(eligible, size=min(num, len(eligible)), replace=False))


@torch.no_grad()
def _validation_attention(model, dataset, users, batch_size=64):
    """Yield (histories (b, T), attention (b, L, H, T, T)) over the users' validation histories."""
    split = sequences.holdout(dataset, "valid")
    model.eval()
    for lo in range(0, len(users), batch_size):
        rows = users[lo: lo + batch_size]
        histories = sequences.model_inputs(dataset.items, split.starts[rows], split.ends[rows], model.config.maxlen)
        _, attention = model(torch.as_tensor(histories).long(), need_weights=True)
        yield histories, attention.numpy()


def attention_by_distance(model, dataset, users) -> pd.DataFrame:
    """Mean attention weight by distance from the attending position, per layer, over the
    users' validation histories (heads averaged; every position attends, since each one
    predicts its next item in training).

    Distance 0 is an item attending to itself, 1 the item just before it, and so on: the
    analysis of the SASRec paper's Figure 4. Columns: layer, distance, weight, pairs, and
    uniform: the mean weight if every position spread its attention evenly over the items
    it can see. Early positions see few items, so even uniform attention decays with
    distance; the model prefers recent items only where weight exceeds uniform.
    """
    num_layers = model.config.num_blocks
    total = np.zeros((num_layers, model.config.maxlen))
    uniform = np.zeros(model.config.maxlen)
    count = np.zeros(model.config.maxlen)
    for histories, attention in _validation_attention(model, dataset, users):
        weights = attention.mean(2)  # (b, L, T, T), heads averaged
        real = histories != 0
        visible = np.maximum(np.cumsum(real, axis=1), 1)  # items each position can attend to
        T = histories.shape[1]
        for distance in range(T):
            query, key = np.arange(distance, T), np.arange(0, T - distance)
            valid = real[:, key]  # the key is real, so the later query is too
            total[:, distance] += (weights[:, :, query, key] * valid[:, None]).sum((0, 2))
            uniform[distance] += (valid / visible[:, query]).sum()
            count[distance] += valid.sum()
    used = count > 0
    return pd.DataFrame({
        "layer": np.repeat(np.arange(1, num_layers + 1), used.sum()),
        "distance": np.tile(np.flatnonzero(used), num_layers),
        "weight": (total[:, used] / count[used]).ravel(),
        "pairs": np.tile(count[used], num_layers).astype(np.int64),
        "uniform": np.tile(uniform[used] / count[used], num_layers),
    })


def category_codes(dataset) -> tuple[np.ndarray, list[str]]:
    """(each item's category as a number, indexed by internal id, -1 for none; the category names, sorted)."""
    code = np.full(dataset.num_items + 1, -1)
    if "category" not in dataset.catalog:
        return code, []
    categories = dataset.catalog["category"].astype("string")
    names = sorted(categories.dropna().unique())
    code[categories.index.to_numpy()] = pd.Categorical(categories, categories=names).codes
    return code, names


def category_attention(model, dataset, users) -> pd.DataFrame:
    """Mean attention from items of one category to earlier items of another, heads and
    layers averaged, each row normalised to sum to 1 (the paper's Figure 5).

    An item's attention to itself is left out: it is always to its own category and, being
    the largest single weight, would swamp the diagonal. Returns a square DataFrame: index =
    category of the attending item, columns = category of the attended item, over the
    categories that occur as both. Items without a category are left out.
    """
    code, names = category_codes(dataset)
    matrix = np.zeros((len(names), len(names)))
    for histories, attention in _validation_attention(model, dataset, users):
        weights = attention.mean((1, 2))  # (b, T, T)
        query_code = code[histories][:, :, None].repeat(histories.shape[1], 2)
        key_code = code[histories][:, None, :].repeat(histories.shape[1], 1)
        earlier = np.tri(histories.shape[1], k=-1, dtype=bool)
        keep = (query_code >= 0) & (key_code >= 0) & (weights > 0) & earlier
        np.add.at(matrix, (query_code[keep], key_code[keep]), weights[keep])
    occurring = (matrix.sum(1) > 0) & (matrix.sum(0) > 0)
    matrix = matrix[occurring][:, occurring]
    names = [name for name, kept in zip(names, occurring) if kept]
    return pd.DataFrame(matrix / matrix.sum(1, keepdims=True), index=names, columns=names)


def embedding_map(model, catalog: pd.DataFrame, popularity: np.ndarray | None = None,
                  method: str = "pca") -> pd.DataFrame:
    """A 2-D projection of the item embeddings: item_id, title, category, popularity, x, y.

    catalog: one row per internal item 1..N; popularity: interactions per item 1..N, if
    known (NA otherwise). method "umap" needs the optional umap-learn package; PCA needs
    nothing.
    """
    vectors = model.item_embedding.weight.detach()[1:].numpy()
    if method == "umap":
        import umap  # optional dependency

        xy = umap.UMAP(n_components=2, random_state=0).fit_transform(vectors)
    else:
        centred = vectors - vectors.mean(0)
        _, _, components = np.linalg.svd(centred, full_matrices=False)
        xy = centred @ components[:2].T
    table = catalog[["item_id", "title", "category"]].reset_index(drop=True)
    popularity = pd.array(popularity if popularity is not None else [pd.NA] * len(table), dtype="Int64")
    return table.assign(popularity=popularity, x=xy[:, 0], y=xy[:, 1])


# The Data page: the small tables behind its charts

def length_histogram(dataset, bins: int = 40) -> pd.DataFrame:
    """Users per sequence length, in even bins [start, end) up to the 99th percentile. The longest
    1 % are counted in the last bin: the tail is long, and drawn to its end it would squeeze
    everyone else into a few bars."""
    lengths = np.diff(dataset.offsets)
    low = int(lengths.min())
    top = max(int(np.percentile(lengths, 99)), low)
    width = -(-(top + 1 - low) // bins)
    counts = np.bincount((np.minimum(lengths, top) - low) // width)
    starts = low + width * np.arange(len(counts))
    return pd.DataFrame({"start": starts, "end": starts + width, "users": counts})


def popularity_curve(dataset, points: int = 200) -> pd.DataFrame:
    """Interactions per item against popularity rank, at log-spaced ranks (a log-log plot needs no
    more), with the share of all interactions that the items up to each rank receive."""
    counts = np.sort(np.bincount(dataset.items, minlength=dataset.num_items + 1)[1:])[::-1]
    ranks = np.unique(np.geomspace(1, len(counts), points).round().astype(np.int64))
    share = np.cumsum(counts) / counts.sum()
    return pd.DataFrame({"rank": ranks, "interactions": counts[ranks - 1], "share": share[ranks - 1]})


def top_share(dataset, fraction: float = 0.1) -> float:
    """The share of all interactions that the most popular `fraction` of items receive."""
    counts = np.sort(np.bincount(dataset.items, minlength=dataset.num_items + 1)[1:])[::-1]
    return float(counts[:max(1, round(len(counts) * fraction))].sum() / counts.sum())


def activity(dataset) -> tuple[pd.DataFrame, str] | None:
    """Interactions per day, week or month (whichever keeps the bars countable) and that unit;
    None when the log has no timestamps."""
    if dataset.timestamps is None or not len(dataset.timestamps):
        return None
    days = dataset.timestamps // 86_400
    first = int(days.min())
    per_day = pd.Series(np.bincount(days - first),
                        index=pd.to_datetime((np.arange(days.max() - first + 1) + first) * 86_400, unit="s"))
    unit, rule = (("day", "D") if len(per_day) <= 180 else ("week", "W-MON") if len(per_day) <= 3 * 365
                  else ("month", "MS"))
    return per_day.resample(rule, label="left", closed="left").sum().rename_axis("period").reset_index(
        name="interactions"), unit


def sample_sequences(dataset, num: int = 6, shown: int = 12, seed: int = 0) -> pd.DataFrame:
    """A few random users' sequences as titles, oldest first; a long one shows its latest
    `shown` items after a '…'."""
    rng = np.random.default_rng(seed)
    users = np.sort(rng.choice(dataset.num_users, size=min(num, dataset.num_users), replace=False))
    titles = dataset.catalog["title"].astype(str)
    rows = []
    for user in users:  # a handful
        sequence = dataset.sequence(user)
        rows.append({"user": dataset.user_ids[user], "length": len(sequence),
                     "items": ["…"] * (len(sequence) > shown) + titles.loc[sequence[-shown:]].tolist()})
    return pd.DataFrame(rows)
