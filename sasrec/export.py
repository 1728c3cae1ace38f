"""A report to hand out: one self-contained HTML file, with no server behind it.

Text and tables are plain HTML; charts are Vega-Lite specifications with their data inline,
drawn by the Vega libraries, which are inlined once in the page (vl-convert-python carries
them), so the file opens offline, in any browser, years later. Everything that came from a
user or a file (titles, ids, names) is escaped: a title cannot become markup or script.
"""

import html
import json
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Section:
    heading: str
    text: list[str] = field(default_factory=list)  # paragraphs, plain text
    table: pd.DataFrame | None = None
    charts: list[dict] = field(default_factory=list)  # Vega-Lite specifications, data inline


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1F1D2B; max-width: 1100px;
       margin: 2rem auto; padding: 0 1.5rem; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #E6E4F0; padding-bottom: 0.2rem; }
.meta { color: #5F6368; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; }
th, td { padding: 0.25rem 0.7rem; border-bottom: 1px solid #ECEAF4; text-align: left; }
th { background: #F6F5FB; } td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
.chart { margin: 0.8rem 0; overflow-x: auto; }
footer { margin-top: 3rem; color: #80868B; font-size: 0.85rem; }
"""


def _script_json(value) -> str:
    """JSON that is safe inside a <script> element: no '<', '>' or '&' can close it or open a comment."""
    return json.dumps(value, ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _table_html(table: pd.DataFrame) -> str:
    numeric = {column for column in table.columns if pd.api.types.is_numeric_dtype(table[column])
               and not pd.api.types.is_bool_dtype(table[column])}
    head = "".join(f'<th class="{"number" if c in numeric else ""}">{html.escape(str(c))}</th>' for c in table.columns)
    rows = []
    for values in table.itertuples(index=False):
        cells = []
        for column, value in zip(table.columns, values):
            if column in numeric:
                text = "" if pd.isna(value) else f"{value:,.4g}" if isinstance(value, float) else f"{value:,}"
                cells.append(f'<td class="number">{text}</td>')
            else:
                cells.append(f"<td>{'' if value is None or value is pd.NA else html.escape(str(value))}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed as one script, for the Vega-Lite version Altair writes."""
    import vl_convert
    from altair.utils._importers import vl_version_for_vl_convert

    return vl_convert.javascript_bundle(vl_version=vl_version_for_vl_convert())


def render_html(title: str, subtitle: str, sections: list[Section], footer: str = "") -> str:
    """The report as one HTML document."""
    specs, body = {}, []
    for section in sections:
        parts = [f"<h2>{html.escape(section.heading)}</h2>"]
        parts += [f"<p>{html.escape(paragraph)}</p>" for paragraph in section.text]
        if section.table is not None:
            parts.append(_table_html(section.table))
        for spec in section.charts:
            chart_id = f"chart-{len(specs) + 1}"
            specs[chart_id] = spec
            parts.append(f'<div class="chart" id="{chart_id}"></div>')
        body.append(f"<section>{''.join(parts)}</section>")
    # The bundle holds no "</script" (checked in tests), so it can sit in a script element as it is.
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
<script>{vega_bundle()}</script>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">{html.escape(subtitle)}</p>
{''.join(body)}
<footer>{html.escape(footer)}</footer>
<script>
const specs = {_script_json(specs)};
for (const [id, spec] of Object.entries(specs)) {{
  vegaEmbed("#" + id, spec, {{actions: false, renderer: "svg"}}).catch(error => {{
    document.getElementById(id).textContent = "This chart could not be drawn: " + error;
  }});
}}
</script>
</body>
</html>
"""
