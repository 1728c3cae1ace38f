"""The Streamlit app's shared helpers, by purpose: state (what is active, the Playground's
history), caches (models, datasets and analyses, loaded once), charts (pure functions from
tables to Altair or Plotly charts, testable without a page) and widgets (page parts)."""
