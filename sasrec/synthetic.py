"""A synthetic, redistributable sample data set: a fictional streaming service.

The catalog has TV series (episodes in order), stand-alone films in genres and film
franchises (numbered sequels). Each user's log is a chain of "activities", each of
which plants a pattern a stakeholder can recognise in next-item predictions and in
attention maps:

- binge: several consecutive episodes of one series in order, from S1E1 or mid-way,
  sometimes paused and resumed later, sometimes abandoned;
- franchise: the next one to three sequels of a franchise, always in sequel order;
- films: one to three films, mostly from the user's 1-2 favourite genres (which now and
  then drift to another genre), otherwise from a Zipf-like overall popularity.

No title is watched twice, as on a real service where the app hides what you have seen.
All randomness comes from one numpy Generator seeded by `seed`, consumed in a fixed
order, so a seed gives the same tables in any process. Timestamps are drawn in one
vectorised pass after the logs, from what each step was (new activity, next episode of
a binge, next film of the same evening).
"""

import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

GENRES = ("Drama", "Comedy", "Horror", "Sci-Fi", "Romance", "Thriller", "Animation", "Documentary",
          "Action", "Crime")
GENRE_WEIGHTS = (0.16, 0.14, 0.09, 0.09, 0.08, 0.11, 0.07, 0.07, 0.11, 0.08)  # share of films, and of tastes
FRANCHISE_GENRE_WEIGHTS = (0.02, 0.10, 0.15, 0.20, 0.0, 0.10, 0.15, 0.0, 0.23, 0.05)  # sequels are genre cinema

# Titles are "<modifier> <noun>", the nouns chosen per genre so a title hints at its genre
# ("Hollow Crypt" is horror, "Iron Tide" action). Nouns are distinct across genres, so
# every combination is a distinct title.
MODIFIERS = ("Harbor", "Iron", "Silent", "Golden", "Midnight", "Paper", "Velvet", "Northern", "Hollow",
             "Crimson", "Glass", "Silver", "Winter", "Summer", "Broken", "Wild", "Quiet", "Distant", "Lucky",
             "Electric", "Lost", "Burning", "Frozen", "Hidden", "Little", "Endless", "Crooked", "Copper",
             "Salt", "Stone", "Amber", "Neon", "Echo", "Willow", "Last", "Scarlet")
NOUNS = {
    "Drama": ("Lights", "Letters", "Harvest", "Road", "Daughters", "Promise", "River", "Seasons", "Garden",
              "Hours", "Bridge", "Years"),
    "Comedy": ("Neighbors", "Wedding", "Roommates", "Vacation", "Diner", "Family", "Office", "Weekend",
               "Getaway", "Party", "Mix-Up", "Club"),
    "Horror": ("House", "Cellar", "Whisper", "Crypt", "Woods", "Attic", "Lullaby", "Manor", "Ritual",
               "Shadows", "Well", "Hunger"),
    "Sci-Fi": ("Horizon", "Orbit", "Signal", "Colony", "Machine", "Frontier", "Station", "Protocol", "Nebula",
               "Drift", "Array", "Vector"),
    "Romance": ("Hearts", "Kisses", "Serenade", "Valentine", "Love Song", "Rendezvous", "Sweethearts",
                "Honeymoon", "Embrace", "Proposal", "Romance", "Affair"),
    "Thriller": ("Witness", "Alibi", "Cipher", "Pursuit", "Deception", "Target", "Trap", "Stranger", "Dossier",
                 "Escape", "Vanishing", "Informant"),
    "Animation": ("Dragon", "Kingdom", "Adventures", "Friends", "Critters", "Pirates", "Robot", "Fox",
                  "Balloon", "Treasure", "Meadow", "Wizards"),
    "Documentary": ("Planet", "Ocean", "Voices", "Wilderness", "Expedition", "Origins", "Earth", "Journeys",
                    "Archive", "Islands", "Tides", "Chronicles"),
    "Action": ("Tide", "Strike", "Fury", "Vanguard", "Storm", "Force", "Breaker", "Justice", "Outlaw", "Siege",
               "Run", "Renegade"),
    "Crime": ("Streets", "Syndicate", "Heist", "Badge", "Docks", "Confession", "Racket", "Verdict", "Precinct",
              "Ledger", "Cartel", "Files"),
}

# Users: log lengths are log-normal around a median of 28, clipped to 5..150.
MEDIAN_LENGTH, LENGTH_SIGMA, MIN_LENGTH, MAX_LENGTH = 28, 0.6, 5, 150
P_BINGE, P_FRANCHISE = 0.32, 0.10  # activity mix; the rest are films
P_RESUME = 0.6  # a binge continues a paused series rather than starting a new one
P_DROP = 0.3  # a binge that stops before the end is abandoned for good
P_TASTE = 0.85  # a series, franchise or film is picked from a favourite genre (else by popularity alone)
P_FILM_TASTE = 0.7  # lower for films, so popular hits reach every taste
P_DRIFT = 0.04  # per activity: one favourite genre is replaced by another
ZIPF_FILMS, ZIPF_SHOWS = 1.0, 0.8  # popularity exponents over films, and over series and franchises
START, START_SPAN = 1704067200, 182 * 86400  # users join between 2024-01-01 and 2024-07-01 (UTC)

NEW_ACTIVITY, NEXT_EPISODE, SAME_EVENING = 0, 1, 2  # what a step of a log was, for its time gap


@dataclass
class Catalog:
    items: pd.DataFrame  # the public items table, row i is internal item i
    runtime: np.ndarray  # minutes, per item
    episodes: list  # per series: item indices in watch order
    parts: list  # per franchise: item indices in sequel order
    films: dict  # genre index (or None for all) -> (film items, cumulative popularity)
    series_pools: dict  # same for series (values index `episodes`)
    franchise_pools: dict  # same for franchises (values index `parts`)


def generate(seed: int = 7, num_users: int = 3000, num_series: int = 80, num_films: int = 900,
             num_franchises: int = 40) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(interactions, items): interactions has user_id, item_id, timestamp (epoch seconds),
    sorted by user then time; items has item_id, title, kind, genre, series, position."""
    rng = np.random.default_rng(seed)
    catalog = make_catalog(rng, num_series, num_films, num_franchises)
    lengths = np.clip(np.round(rng.lognormal(np.log(MEDIAN_LENGTH), LENGTH_SIGMA, num_users)),
                      MIN_LENGTH, MAX_LENGTH).astype(np.int64)
    logs = [user_log(rng, catalog, int(n)) for n in lengths]
    items = np.concatenate([np.asarray(log[0], dtype=np.int64) for log in logs])
    steps = np.concatenate([np.asarray(log[1], dtype=np.int8) for log in logs])
    counts = np.array([len(log[0]) for log in logs])
    user = np.repeat(np.arange(num_users), counts)
    timestamps = draw_timestamps(rng, catalog.runtime[items], steps, counts)
    width = max(4, len(str(num_users)))
    user_ids = np.array([f"u{u + 1:0{width}d}" for u in range(num_users)], dtype=object)
    interactions = pd.DataFrame({"user_id": user_ids[user],
                                 "item_id": catalog.items["item_id"].to_numpy()[items],
                                 "timestamp": timestamps})
    return interactions, catalog.items


def make_catalog(rng: np.random.Generator, num_series: int, num_films: int, num_franchises: int) -> Catalog:
    # a shuffled queue of unused titles per genre, so names are unique and seed-dependent
    names = {g: [f"{m} {n}" for m in MODIFIERS for n in NOUNS[g]] for g in GENRES}
    names = {g: [pool[i] for i in rng.permutation(len(pool))] for g, pool in names.items()}

    def take_name(genre):
        if not names[genre]:
            raise ValueError(f"catalog too large: ran out of {genre} titles")
        return names[genre].pop()

    rows, runtime, episodes, parts = [], [], [], []
    film_genre = np.asarray(GENRE_WEIGHTS) / sum(GENRE_WEIGHTS)
    # every genre gets a series before any gets two, so small catalogs still have e.g. a horror series
    more = rng.choice(len(GENRES), size=max(0, num_series - len(GENRES)), p=film_genre)
    series_genres = np.concatenate([np.arange(len(GENRES)), more])[:num_series]
    for s in range(num_series):
        genre, name = GENRES[series_genres[s]], take_name(GENRES[series_genres[s]])
        seasons = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.20]))
        minutes = int(rng.choice([22, 30, 45, 55]))  # one episode length per show: sitcom or drama
        first = len(rows)
        for season in range(1, seasons + 1):
            for episode in range(1, int(rng.integers(6, 11)) + 1):
                rows.append((f"s{s + 1:03d}e{season:02d}{episode:02d}", f"{name} S{season}E{episode}", "episode",
                             genre, name, len(rows) - first + 1))
                runtime.append(minutes)
        episodes.append(np.arange(first, len(rows)))

    franchise_genres = rng.choice(len(GENRES), size=num_franchises,
                                  p=np.asarray(FRANCHISE_GENRE_WEIGHTS) / sum(FRANCHISE_GENRE_WEIGHTS))
    for f in range(num_franchises):
        genre = GENRES[franchise_genres[f]]
        name = take_name(genre)
        first = len(rows)
        for part in range(1, int(rng.choice([2, 3, 4, 5], p=[0.3, 0.4, 0.2, 0.1])) + 1):
            rows.append((f"fr{f + 1:03d}p{part}", name if part == 1 else f"{name} {part}", "franchise", genre,
                         name, part))
            runtime.append(int(rng.integers(95, 150)))
        parts.append(np.arange(first, len(rows)))

    films_genre = rng.choice(len(GENRES), size=num_films, p=film_genre)
    first_film = len(rows)
    for i in range(num_films):
        genre = GENRES[films_genre[i]]
        rows.append((f"f{i + 1:04d}", take_name(genre), "film", genre, None, None))
        runtime.append(int(rng.integers(85, 150)))

    items = pd.DataFrame(rows, columns=["item_id", "title", "kind", "genre", "series", "position"])
    items["position"] = items["position"].astype("Int64")
    # Popularity is a random rank per title with Zipf weights, so a few titles are hits;
    # the pools restrict it to one genre for taste-driven picks.
    film_items = np.arange(first_film, len(rows))
    film_weight = zipf_weights(rng, num_films, ZIPF_FILMS)
    series_weight = zipf_weights(rng, num_series, ZIPF_SHOWS)
    franchise_weight = zipf_weights(rng, num_franchises, ZIPF_SHOWS)
    return Catalog(items, np.asarray(runtime, dtype=np.int64), episodes, parts,
                   films=pools(film_items, films_genre, film_weight),
                   series_pools=pools(np.arange(num_series), series_genres, series_weight),
                   franchise_pools=pools(np.arange(num_franchises), franchise_genres, franchise_weight))


def zipf_weights(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    return 1.0 / (rng.permutation(n) + 1.0) ** exponent


def pools(values: np.ndarray, genres: np.ndarray, weights: np.ndarray) -> dict:
    """genre index -> (values, cumulative weights), with None for all genres; empty pools are left out."""
    out = {None: (values, np.cumsum(weights))} if len(values) else {}
    for g in range(len(GENRES)):
        mask = genres == g
        if mask.any():
            out[g] = (values[mask], np.cumsum(weights[mask]))
    return out


def draw(rng: np.random.Generator, pool: tuple) -> int:
    values, cumulative = pool
    return int(values[cumulative.searchsorted(rng.random() * cumulative[-1], side="right")])


def user_log(rng: np.random.Generator, catalog: Catalog, length: int) -> tuple[list, list]:
    """One user's watch log of up to `length` items: (item indices, step kinds)."""
    favourites = []
    for _ in range(1 if rng.random() < 0.5 else 2):
        favourites.append(new_genre(rng, favourites))
    seen = set()  # items watched; nothing is watched twice
    started, begun = set(), set()  # series and franchises begun: a new binge or franchise picks another
    paused = {}  # series -> index of the next episode, in pause order
    franchises = {}  # franchise -> index of the next part, in order begun
    items, steps = [], []

    def watch(item, step):
        seen.add(item)
        items.append(item)
        steps.append(step)

    for _ in range(4 * length):  # a guard: a small catalog can run out of unseen titles
        if len(items) >= length:
            break
        if rng.random() < P_DRIFT:  # taste drifts: one favourite makes way for another genre
            favourites[int(rng.integers(len(favourites)))] = new_genre(rng, favourites)
        # the first favourite is the stronger taste
        genre = favourites[0] if len(favourites) == 1 or rng.random() < 0.65 else favourites[1]
        kind = rng.random()
        if kind < P_BINGE:
            if paused and rng.random() < P_RESUME:
                series = next(reversed(paused))  # the show paused most recently
                start = paused.pop(series)
            else:
                series = pick_new(rng, catalog.series_pools, genre, started)
                if series is None:
                    continue
                started.add(series)
                n = len(catalog.episodes[series])
                start = 0 if rng.random() < 0.8 else int(rng.integers(1, n))  # some join mid-way
            episodes = catalog.episodes[series]
            stop = min(len(episodes), start + max(2, int(rng.geometric(0.2))))
            for i in range(start, stop):
                watch(int(episodes[i]), NEXT_EPISODE if i > start else NEW_ACTIVITY)
            if stop < len(episodes) and rng.random() >= P_DROP:
                paused[series] = stop
        elif kind < P_BINGE + P_FRANCHISE:
            if franchises and rng.random() < P_RESUME:
                franchise = next(reversed(franchises))
                start = franchises.pop(franchise)
            else:
                franchise = pick_new(rng, catalog.franchise_pools, genre, begun)
                if franchise is None:
                    continue
                begun.add(franchise)
                start = 0 if rng.random() < 0.9 else 1  # a few saw the first one elsewhere
            parts = catalog.parts[franchise]
            stop = min(len(parts), start + int(rng.integers(1, 4)))
            for i in range(start, stop):
                watch(int(parts[i]), SAME_EVENING if i > start else NEW_ACTIVITY)
            if stop < len(parts):
                franchises[franchise] = stop
        else:
            for j in range(1 if rng.random() < 0.6 else int(rng.integers(2, 4))):
                pool = catalog.films.get(genre) if rng.random() < P_FILM_TASTE else None
                film = pick_unseen(rng, pool or catalog.films.get(None), seen)
                if film is not None:
                    watch(film, SAME_EVENING if j else NEW_ACTIVITY)
    return items[:length], steps[:length]


def new_genre(rng: np.random.Generator, current: list) -> int:
    """A genre by popularity (GENRE_WEIGHTS) that is not one of `current`."""
    pool = (np.arange(len(GENRES)), np.cumsum(GENRE_WEIGHTS))
    while (genre := draw(rng, pool)) in current:
        pass
    return genre


def pick_new(rng: np.random.Generator, pool_by_genre: dict, genre: int, exclude: set):
    """A popular show of the genre (or of any genre, now and then) not in `exclude`; None if none found."""
    if None not in pool_by_genre:
        return None
    for attempt in range(8):
        pool = pool_by_genre.get(genre) if attempt < 4 and rng.random() < P_TASTE else None
        value = draw(rng, pool or pool_by_genre[None])
        if value not in exclude:
            return value
    return None


def pick_unseen(rng: np.random.Generator, pool, seen: set):
    if pool is None:
        return None
    for _ in range(8):
        value = draw(rng, pool)
        if value not in seen:
            return value
    return None


def draw_timestamps(rng: np.random.Generator, runtime: np.ndarray, steps: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Epoch seconds, strictly increasing per user: days between activities, one runtime
    (plus a short break) between the episodes or films of one evening."""
    n = len(steps)
    between = 7200 + rng.exponential(3 * 86400, n)  # a new activity: hours to days later
    episode = runtime * 60 + rng.uniform(60, 900, n)  # the next episode follows the previous one
    evening = rng.uniform(95, 150, n) * 60  # the next film of the evening: a film's length later
    gaps = np.where(steps == NEXT_EPISODE, episode, np.where(steps == SAME_EVENING, evening, between))
    gaps = np.round(gaps).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    first = first[counts > 0]
    gaps[first] = START + rng.integers(0, START_SPAN, len(first))  # each user's first watch
    total = np.cumsum(gaps)
    before = np.repeat(total[first] - gaps[first], counts[counts > 0])  # running sum of earlier users
    return total - before


def write_sample(folder: str | Path, seed: int = 7) -> list[Path]:
    """Write folder/interactions.csv.gz and folder/items.csv, the same bytes for the same seed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    interactions, items = generate(seed)
    paths = [folder / "interactions.csv.gz", folder / "items.csv"]
    # gzip header without a file name and with mtime 0, so the bytes depend only on the data
    with open(paths[0], "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                    compresslevel=6) as gz:  # 9 saves nothing here
        gz.write(to_csv(interactions))
    paths[1].write_bytes(to_csv(items))
    return paths


def to_csv(table: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, lineterminator="\n", float_format="%.6g")
    return buffer.getvalue().encode("utf-8")


def next_episode_prefixes(items: pd.DataFrame, max_prefix: int = 3) -> list[tuple[list[str], str]]:
    """Per series and franchise, its first 1..max_prefix entries in order and the true next
    entry: (["s001e0101"], "s001e0102"), (["s001e0101", "s001e0102"], "s001e0103"), ..."""
    grouped = items[items["series"].notna()]
    out = []
    for _, group in grouped.groupby("series", sort=False):  # in catalog order
        ids = [str(i) for i in group.sort_values("position", kind="stable")["item_id"]]
        out.extend((ids[:n], ids[n]) for n in range(1, min(max_prefix, len(ids) - 1) + 1))
    return out


def example_history(items: pd.DataFrame) -> list[str]:
    """A demo history: two films of a genre, then the first two episodes of a series of that
    genre, so the model should continue the series. Horror if the catalog allows. Takes the
    generated items table or a run's catalog, where the loader renamed genre to category."""
    items = items.rename(columns={"category": "genre"})
    for genre in ["Horror"] + [g for g in GENRES if g != "Horror"]:
        films = items[(items["kind"] == "film") & (items["genre"] == genre)]
        episodes = items[(items["kind"] == "episode") & (items["genre"] == genre)]
        if len(films) >= 2 and len(episodes):
            series = episodes[episodes["series"] == episodes["series"].iloc[0]].sort_values("position")
            return [str(i) for i in list(films["item_id"][:2]) + list(series["item_id"][:2])]
    return [str(i) for i in items["item_id"][:4]]


# -----------------------------------------------------------------------------
# Logs of any size, for scale: up to tens of millions of events over a catalog of up to millions
# of items, drawn in vectorised passes (no per-user Python). Shaped like a sparse retail log
# (median history BIG_MEDIAN_LENGTH, Zipf popularity), with two planted patterns for checking
# quality at any size:
# - chains: the catalog is cut into short ordered chains (a product line, a series); each pick
#   continues the chain of the previous one, in order, with probability P_CONTINUE;
# - taste: each user has a favourite category, from which a new pick comes with probability
#   P_TASTE_BIG; otherwise from the whole catalog by popularity.

BIG_MEDIAN_LENGTH, BIG_LENGTH_SIGMA, BIG_MAX_LENGTH = 8, 0.8, 500
CHAIN_P, CHAIN_MAX = 0.4, 10  # chain lengths: 1 + geometric(CHAIN_P), at most CHAIN_MAX (mean about 2.5)
P_CONTINUE = 0.5  # the next pick is the next item of the current chain
P_HEAD = 0.7  # a new pick starts its chain at the first item
P_TASTE_BIG = 0.6
BIG_CATEGORIES = 50
DAY = 86400


def generate_log(num_events: int, num_items: int, seed: int = 0, zipf: float = 0.8,
                 median_length: float = BIG_MEDIAN_LENGTH) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(interactions, items) with exactly num_events events (when num_events >= 3) on at most
    num_items items: interactions has integer user_id, item_id (1..num_items) and timestamp
    (epoch seconds), by user then time; items has item_id, title, category, chain and position
    (1-based within the chain), so that next_in_chain() can say what each item's planted
    successor is."""
    if num_events < 3 or num_items < 2:
        raise ValueError("a log needs at least 3 events and 2 items")
    rng = np.random.default_rng(seed)
    lengths = big_lengths(rng, num_events, median_length)
    # The catalog as chains of consecutive internal indices, grouped by category so that a
    # category's chains are one stretch of the popularity CDF.
    chain_lengths = np.minimum(1 + rng.geometric(CHAIN_P, num_items), CHAIN_MAX)
    chain_lengths = chain_lengths[: np.searchsorted(np.cumsum(chain_lengths), num_items) + 1]
    chain_lengths[-1] -= chain_lengths.sum() - num_items
    num_chains = len(chain_lengths)
    chain_start = np.cumsum(chain_lengths) - chain_lengths
    chain_category = np.arange(num_chains) * BIG_CATEGORIES // num_chains
    cdf = np.cumsum(1.0 / (rng.permutation(num_chains) + 1.0) ** zipf)  # Zipf popularity per chain
    category_first = np.searchsorted(chain_category, np.arange(BIG_CATEGORIES + 1))
    category_low = np.concatenate([[0.0], cdf])[category_first[:-1]]
    category_high = cdf[np.maximum(category_first[1:] - 1, 0)]

    # What each event would be if it started a new chain: a chain by popularity, from the user's
    # favourite category or the whole catalog, entered at its head or anywhere.
    user = np.repeat(np.arange(len(lengths)), lengths)
    favourite = rng.integers(0, BIG_CATEGORIES, len(lengths))[user]
    u = rng.random(num_events)
    mass = np.where(rng.random(num_events) < P_TASTE_BIG,
                    category_low[favourite] + u * (category_high[favourite] - category_low[favourite]), u * cdf[-1])
    new_chain = np.minimum(np.searchsorted(cdf, mass, side="right"), num_chains - 1)
    new_position = np.where(rng.random(num_events) < P_HEAD, 0,
                            (rng.random(num_events) * chain_lengths[new_chain]).astype(np.int64))
    # An event starts a new chain when it is a user's first, when it does not continue, or when
    # the chain it would continue has ended; runs of continuing events walk their chain in order.
    first_of_user = np.zeros(num_events, dtype=bool)
    first_of_user[np.cumsum(lengths) - lengths] = True
    fresh = first_of_user | (rng.random(num_events) >= P_CONTINUE)
    index = np.arange(num_events)
    while True:
        run_start = np.maximum.accumulate(np.where(fresh, index, 0))
        chain = new_chain[run_start]
        position = new_position[run_start] + index - run_start
        ended = position >= chain_lengths[chain]
        if not ended.any():
            break
        fresh |= ended & ~np.concatenate([[False], ended[:-1]])  # the first event past a chain's end
    item = chain_start[chain] + position

    # Public ids hide the layout: a random permutation, so neighbouring ids mean nothing.
    public = rng.permutation(num_items) + 1
    gaps = np.round(rng.exponential(DAY, num_events)).astype(np.int64) + 1
    gaps[first_of_user] = START + rng.integers(0, START_SPAN, len(lengths))
    clock = np.cumsum(gaps)
    timestamps = clock - np.repeat(clock[first_of_user] - gaps[first_of_user], lengths)
    interactions = pd.DataFrame({"user_id": user + 1, "item_id": public[item], "timestamp": timestamps})
    item_chain = np.repeat(np.arange(num_chains), chain_lengths)
    item_position = np.arange(num_items) - chain_start[item_chain] + 1
    items = pd.DataFrame({"item_id": public, "title": [f"Item {i}" for i in public],
                          "category": [f"Category {c + 1}" for c in chain_category[item_chain]],
                          "chain": item_chain + 1, "position": item_position})
    return interactions, items


def big_lengths(rng: np.random.Generator, num_events: int, median: float = BIG_MEDIAN_LENGTH) -> np.ndarray:
    """History lengths, log-normal around `median` within MIN_LENGTH..BIG_MAX_LENGTH, that sum
    to num_events (the last user takes what is left, if that is at least MIN_LENGTH... else it is
    added to the one before)."""
    mean = median * np.exp(BIG_LENGTH_SIGMA ** 2 / 2)
    lengths = np.clip(np.round(rng.lognormal(np.log(median), BIG_LENGTH_SIGMA,
                                             int(num_events / mean * 1.2) + 2)), 3, BIG_MAX_LENGTH).astype(np.int64)
    while lengths.sum() < num_events:  # rare: the draw fell short
        lengths = np.concatenate([lengths, lengths])
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), num_events, side="right")]
    rest = num_events - lengths.sum()
    if rest >= 3 or not len(lengths):
        lengths = np.append(lengths, rest)
    else:
        lengths[-1] += rest
    return lengths


def next_in_chain(items: pd.DataFrame) -> dict:
    """item_id -> the planted next item of its chain, for every item that has one."""
    ordered = items.sort_values(["chain", "position"], kind="stable")
    ids, chains = ordered["item_id"].to_numpy(), ordered["chain"].to_numpy()
    same = chains[1:] == chains[:-1]
    return dict(zip(ids[:-1][same].tolist(), ids[1:][same].tolist()))


def write_log(folder: str | Path, num_events: int, num_items: int, seed: int = 0) -> list[Path]:
    """Write folder/interactions.parquet and folder/items.parquet (a folder `train` reads as it is)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    interactions, items = generate_log(num_events, num_items, seed)
    paths = [folder / "interactions.parquet", folder / "items.parquet"]
    interactions.to_parquet(paths[0], index=False)
    items.to_parquet(paths[1], index=False)
    return paths
