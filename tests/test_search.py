"""Type-ahead search (sasrec/search.py): the same answers as a plain scan, an exact id first,
one row per match. Its speed over a million titles is measured by bench/playground_latency.py."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sasrec.search import SubstringIndex


def plain_scan(ids, titles, query, limit):
    """What the index must answer, by the definition: rows whose id or title contains the query,
    case-insensitively, an exact id first, then in row order."""
    query = query.strip().lower()
    if not query:
        return []
    rows = [r for r, (i, t) in enumerate(zip(ids, titles)) if query in i.lower() or query in t.lower()]
    exact = [r for r, i in enumerate(ids) if i.lower() == query][:1]
    return (exact + [r for r in rows if r not in exact])[:limit]


def test_exact_id_first_then_catalog_order():
    ids = ["a10", "a1", "b1", "x"]
    titles = ["Crypt of a1", "Harbor", "The A1 road", "a1"]
    index = SubstringIndex(ids, titles)
    assert list(index.find("A1", 10)) == [1, 0, 2, 3]
    assert list(index.find("a1", 2)) == [1, 0]
    assert list(index.find("harbor", 10)) == [1]
    assert list(index.find("nothing", 10)) == [] and list(index.find("  ", 10)) == []


def test_a_match_never_spans_two_rows_or_the_id_and_the_title():
    index = SubstringIndex(["ab", "cd"], ["ef", "gh"])
    assert list(index.find("fc", 10)) == [] and list(index.find("bef", 10)) == []
    assert list(index.find("b\te", 10)) == []  # a tab in the query is a space, which no row holds there


texts = st.text(alphabet="abcAB \t\n1", max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(texts, texts), max_size=12), texts, st.integers(1, 5))
def test_the_same_as_a_plain_scan(rows, query, limit):
    ids, titles = [r[0] for r in rows], [r[1] for r in rows]
    index = SubstringIndex(ids, titles)
    clean = lambda s: s.replace("\n", " ").replace("\t", " ")
    expected = plain_scan([clean(i) for i in ids], [clean(t) for t in titles], clean(query), limit)
    assert list(index.find(query, limit)) == expected


def test_a_big_catalog_finds_rows_at_its_end():
    rng = np.random.default_rng(0)
    words = np.array(["Harbor", "Iron", "Silent", "Golden", "Midnight", "Paper", "Velvet", "Northern", "Hollow"])
    n = 200_000
    ids = [f"i{i:07d}" for i in range(n)]
    titles = [f"{a} {b} {i}" for i, (a, b) in enumerate(zip(rng.choice(words, n), rng.choice(words, n)))]
    index = SubstringIndex(ids, titles)
    for query in ["h", "hollow", "hollow iron 12", "i0199999", "zzzz", "Velvet Paper 19999"]:
        found = index.find(query, 9)
        assert all(query.lower() in f"{ids[r]}\t{titles[r]}".lower() for r in found)
        assert len(found) == len(plain_scan(ids, titles, query, 9))
    assert list(index.find("i0199999", 9)) == [n - 1]
    assert list(index.find(titles[-1], 9)) == [n - 1]
