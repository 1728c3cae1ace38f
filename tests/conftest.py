import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sasrec.data import Columns, Preprocessing, build_dataset  # noqa: E402


@pytest.fixture(scope="session")
def make_dataset():
    """Build a Dataset from {user: [item, ...]} in time order; items are strings."""

    def build(sequences: dict, **preprocessing):
        rows = [(str(u), str(i), t) for u, items in sequences.items() for t, i in enumerate(items)]
        events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
        return build_dataset(events, Columns("user_id", "item_id", "timestamp"),
                             preprocessing=Preprocessing(**preprocessing), source="test")

    return build
