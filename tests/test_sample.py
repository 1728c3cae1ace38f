"""What ships in sample_data/: data the generator reproduces byte for byte, and a demo
model that has learned the planted patterns."""

from collections import Counter

import pandas as pd

from sasrec.inference import Recommender
from sasrec.synthetic import next_episode_prefixes, write_sample
from sasrec.workspace import DEMO_RUN, SAMPLE_DATA


def test_the_shipped_sample_is_what_the_generator_writes(tmp_path):
    for written in write_sample(tmp_path):
        assert written.read_bytes() == (SAMPLE_DATA / written.name).read_bytes(), written.name


def test_the_demo_model_continues_series_in_order():
    recommender = Recommender.from_run(DEMO_RUN)
    items = pd.read_csv(SAMPLE_DATA / "items.csv", dtype=str)
    prefixes = next_episode_prefixes(items, max_prefix=3)
    firsts = [recommender.recommend(prefix, k=1).items.item_id[0] for prefix, _ in prefixes]
    hits = sum(first == nxt for first, (_, nxt) in zip(firsts, prefixes))
    assert hits / len(prefixes) > 0.6, f"next entry ranked first for {hits} of {len(prefixes)} prefixes"
    # not one popular answer for everything: the predictions follow the history
    assert Counter(firsts).most_common(1)[0][1] < 0.05 * len(prefixes)
