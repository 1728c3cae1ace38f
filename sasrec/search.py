"""Type-ahead search: which of many short texts (item ids and titles, user ids) contain a query.

The texts are joined once into one lowercase string, one line per row. A query is then a few
calls of str.find, which runs in C: matches are collected in row order until `limit` are found,
so a common query stops early and a rare one reads the string once. Over a million titles a
query takes milliseconds (bench/playground_latency.py), where pandas' str.contains over the
same titles takes a tenth of a second or more.
"""

import numpy as np

SEPARATOR = "\n"


class SubstringIndex:
    def __init__(self, ids, *texts):
        """ids: one key per row (an exact match of a whole id comes first); texts: more columns
        to search, aligned with ids (titles). Rows are numbered 0..len(ids)-1 in the order given."""
        ids = ["" if i is None else str(i) for i in ids]
        columns = [ids] + [["" if t is None or t != t else str(t) for t in column] for column in texts]
        # A row is "id \t title", lowercased, without the separator characters anywhere inside.
        rows = ["\t".join(_clean(value) for value in values).lower() for values in zip(*columns)]
        self.text = SEPARATOR.join(rows) + SEPARATOR
        lengths = np.fromiter((len(row) + 1 for row in rows), dtype=np.int64, count=len(rows))
        self.starts = np.concatenate([[0], np.cumsum(lengths)])  # row r is text[starts[r]:starts[r + 1] - 1]
        self.exact = {}
        for row, key in enumerate(ids):
            self.exact.setdefault(_clean(key).lower(), row)

    def __len__(self) -> int:
        return len(self.starts) - 1

    def find(self, query: str, limit: int = 20) -> np.ndarray:
        """Rows whose id or text contains `query` (case-insensitive), an exact id first, then in
        row order; at most `limit`."""
        query = _clean(query.strip()).lower()
        if not query or limit <= 0:
            return np.zeros(0, dtype=np.int64)
        found = []
        exact = self.exact.get(query)
        if exact is not None:
            found.append(exact)
        text, starts, position = self.text, self.starts, 0
        while len(found) < limit:
            position = text.find(query, position)
            if position < 0:
                break
            row = int(np.searchsorted(starts, position, side="right")) - 1
            if row != exact:
                found.append(row)
            position = int(starts[row + 1])  # one match per row is enough
        return np.asarray(found, dtype=np.int64)


def _clean(value: str) -> str:
    return value.replace(SEPARATOR, " ").replace("\t", " ")
