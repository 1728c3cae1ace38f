"""Data: pick the sample, an upload or a saved dataset; map its columns, clean it, look at it, save it."""

from pathlib import Path

import streamlit as st

from sasrec.dataset import Preprocessing
from sasrec.readers import DELIMITER_NAMES, FORMATS_HINT, Columns, RawLog, guess_roles
from sasrec.ui import caches, charts, signin, state, widgets
from sasrec.workspace import AS_SAVED, SAMPLE_NAME

widgets.page_setup()

ws = state.workspace()
editor = signin.acting_user().can_edit  # a viewer sees the datasets and their statistics, and cannot upload, save or delete
# What the user set for one file: forgotten when another file is chosen; the roles also when it is read otherwise.
FILE_KEYS = ("read_delimiter", "read_header", "dataset_name")
ROLE_KEYS = ("role_user", "role_item", "role_timestamp", "role_rating")
SOURCES = {"sample": "Bundled sample", "upload": "Upload a file", "saved": "Saved datasets"}
HEADER_CHOICES = {None: "Detect", True: "Column names (a header)", False: "Data (no header)"}
FORMAT_NAMES = {"sasrec-txt": "'user item' pairs, one per line, in time order",
                "user-sequences": "one 'user item item …' line per user, oldest first", "excel": "Excel workbook"}


def show_statistics(made: caches.Recipe) -> None:
    dataset, tables = caches.dataset(made), caches.profile(made)
    stats = dataset.stats()
    st.subheader("Statistics")
    cells = st.columns(6)
    cells[0].metric("Users", f"{stats['users']:,}")
    cells[1].metric("Items", f"{stats['items']:,}")
    cells[2].metric("Interactions", f"{stats['interactions']:,}")
    cells[3].metric("Density", f"{stats['density']:.3%}", help="interactions / (users × items)")
    cells[4].metric("Median length", f"{stats['seq_len_median']:g}")
    cells[5].metric("Mean length", f"{stats['seq_len_mean']:.1f}")
    if stats["has_timestamps"]:
        st.caption(f"From {stats['time_min'][:10]} to {stats['time_max'][:10]}.")

    left, right = st.columns(2, gap="large")
    with left:
        st.markdown("**Sequence lengths**")
        st.altair_chart(charts.length_chart(tables["lengths"]))
        if stats["seq_len_max"] >= tables["lengths"]["end"].iloc[-1]:
            st.caption(f"The last bar also counts the longest 1 % of sequences, up to {stats['seq_len_max']:,}.")
    with right:
        st.markdown("**Item popularity**")
        st.altair_chart(charts.popularity_chart(tables["popularity"]))
        st.caption(f"The most popular 10 % of items receive {tables['top_share']:.0%} of all interactions.")
    if tables["activity"] is not None:
        per_period, unit = tables["activity"]
        st.markdown("**Interactions over time**")
        st.altair_chart(charts.activity_chart(per_period, unit))

    st.markdown("**A few sequences**, oldest first")
    st.dataframe(tables["sequences"], hide_index=True, column_config={
        "user": st.column_config.TextColumn(width="small"), "length": st.column_config.NumberColumn(width="small"),
        "items": st.column_config.ListColumn("items (titles)", width="large")})


def pick_column(label: str, role: str, guess: str | None, columns: list[str], required: bool) -> str | None:
    options = columns if required else [None, *columns]
    return st.selectbox(label, options, index=options.index(guess) if guess in options else None,
                        format_func=lambda c: "none" if c is None else c, placeholder="Choose a column",
                        key=f"role_{role}", persist_state="session")


def how_read(raw: RawLog) -> str:
    """'comma-separated text, the first row names the columns' and the like."""
    if raw.format in ("csv", "tsv"):
        kind = f"{DELIMITER_NAMES.get(raw.delimiter, repr(raw.delimiter))}-separated text"
    else:
        kind = FORMAT_NAMES.get(raw.format, raw.format)
    first_row = {True: "the first row names the columns", False: "no header row: the first row is data"}.get(raw.header)
    return kind + (f", {first_row}" if first_row and raw.format in ("csv", "tsv", "excel") else "")


def forget_delete() -> None:
    st.session_state.pop("deleting_dataset", None)


@st.dialog("Delete this dataset?", on_dismiss=forget_delete)
def confirm_delete(name: str, used_by: list[str]) -> None:
    st.write(f"**{name}** will be deleted. This cannot be undone."
             + (f" Trained on it: {', '.join(used_by)}. Those models will no longer load on the Playground, "
                "Attention and Evaluate pages." if used_by else ""))
    yes, no = st.columns(2)
    if yes.button("Delete", type="primary", key="confirm_delete_dataset", icon=":material/delete:"):
        try:
            ws.delete_dataset(name)
        except widgets.USER_ERRORS as err:
            widgets.error(err)
            return
        forget_delete()
        st.session_state.pop("saved_dataset", None)
        if state.active_dataset_name() == name:
            state.set_active_dataset(SAMPLE_NAME)
        st.rerun()
    if no.button("Cancel", key="cancel_delete_dataset"):
        forget_delete()
        st.rerun()


def rename_or_delete(entry) -> None:
    """A saved dataset's name can change (runs find it by its folder, not its name); deleting it says
    first which runs were trained on it."""
    used_by = ws.runs_using(entry)
    with st.expander("Rename or delete"):
        name_cell, button_cell = st.columns([3, 1], vertical_alignment="bottom")
        new_name = name_cell.text_input("New name", value=entry.name, key="rename_to", max_chars=60)
        if button_cell.button("Rename", key="rename_dataset", disabled=not new_name.strip() or new_name == entry.name):
            try:
                renamed = ws.rename_dataset(entry.name, new_name)
            except widgets.USER_ERRORS as err:
                widgets.error(err)
            else:
                state.set_active_dataset(renamed.name)
                for key in ("rename_to", "saved_dataset"):  # both hold the old name
                    st.session_state.pop(key, None)
                st.rerun()
        st.caption(f"Used by run{'s' * (len(used_by) > 1)} {', '.join(used_by)}." if used_by
                   else "No run was trained on it.")
        st.button("Delete…", key="delete_dataset", icon=":material/delete:", on_click=st.session_state.update,
                  kwargs={"deleting_dataset": entry.name})
    if st.session_state.get("deleting_dataset") == entry.name:
        confirm_delete(entry.name, used_by)


def use_button(name: str) -> None:
    if state.active_dataset_name() == name:
        st.success(f"**{name}** is the active dataset.", icon=":material/check_circle:")
        st.page_link("pages/train.py", label="Train a model on it", icon=":material/model_training:")
    elif st.button(f"Use {name}", key="use_dataset", type="primary"):
        state.set_active_dataset(name)
        st.rerun()


st.title("Data")
st.caption("Choose an interaction log, tell SASRec which columns mean what, clean it and save it for training.")

active = state.active_dataset()
sources = [key for key in SOURCES if editor or key != "upload"]
source = st.segmented_control("Source", sources, format_func=SOURCES.get, key="data_source", required=True,
                              default="sample" if active.builtin else "saved", persist_state="session")

if source == "saved":
    saved = [d.name for d in ws.datasets() if not d.builtin]
    if not saved:
        st.info("Nothing saved yet: upload a file, or save the sample with your own settings.")
        st.stop()
    name = st.selectbox("Dataset", saved, index=saved.index(active.name) if active.name in saved else None,
                        placeholder="Choose a saved dataset", key="saved_dataset")
    if name is None:
        st.stop()
    if name != state.active_dataset_name():  # choosing a saved dataset is choosing the one to train on
        state.set_active_dataset(name)
        st.rerun()
    entry = ws.dataset(name)
    st.caption(f"Saved from **{entry.meta.get('source', '?')}**, {charts.when(entry.meta.get('saved'))}.")
    use_button(name)
    if editor:
        rename_or_delete(entry)
    if entry.meta.get("report"):
        st.subheader("How it was cleaned")
        st.dataframe(charts.report_table(entry.meta["report"]), hide_index=True)
    try:
        show_statistics(caches.recipe(entry.path, None, Columns(**guess_roles(caches.raw_log(entry.path)).columns),
                                      AS_SAVED))
    except widgets.USER_ERRORS as err:
        widgets.error(err)
    st.stop()

if source == "upload":
    log_column, catalog_column = st.columns(2)
    log_column.file_uploader("Interaction log", key="upload_log", on_change=widgets.guarded(state.remember_upload),
                             args=("upload_log", "upload_path"), help=f"Any of: {FORMATS_HINT}.")
    catalog_column.file_uploader("Item catalog (optional)", key="upload_catalog",
                                 on_change=widgets.guarded(state.remember_upload),
                                 args=("upload_catalog", "catalog_path"),
                                 help="A table with an item id column and titles, categories or genres; "
                                      "for RecBole, the .item file.")
    if "upload_path" not in st.session_state:
        st.info("Upload a log with one interaction per row: who (user), what (item) and, ideally, when "
                "(timestamp). CSV, TSV, Parquet, JSON Lines, SASRec .txt, RecBole .inter and MovieLens zips "
                "all work, also gzipped.", icon=":material/upload_file:")
        st.stop()
    path = Path(st.session_state["upload_path"])
    catalog = st.session_state.get("catalog_path")
    if st.session_state.get("upload_log") is None:  # the uploader forgot it on another page; the workspace did not
        st.caption(f"Using **{path.name}**, uploaded earlier. Upload another file to replace it.")
else:
    path, catalog = ws.dataset(SAMPLE_NAME).path, None
    st.caption("A synthetic streaming service: 3,000 viewers binge series in order, follow film franchises and "
               "stick to their favourite genres.")

if st.session_state.get("settings_for") != str(path):
    for key in FILE_KEYS:
        st.session_state.pop(key, None)
    st.session_state["settings_for"] = str(path)

delimiter = header = None
if source == "upload":  # before reading, so that a wrong guess that makes the file unreadable can be corrected
    with st.expander("Reading options: separator and header row"):
        left, right = st.columns(2)
        delimiter = left.selectbox("Separator", [None, *DELIMITER_NAMES], key="read_delimiter",
                                   format_func=lambda d: "Detect" if d is None else DELIMITER_NAMES[d],
                                   help="How the columns of a delimited text file are separated.")
        header = right.selectbox("The first row holds", list(HEADER_CHOICES), key="read_header",
                                 format_func=HEADER_CHOICES.get,
                                 help="Column names, or already the first event. Delimited text and Excel only.")

if st.session_state.get("roles_for") != [str(path), delimiter, header]:  # other columns: guess the roles again
    for key in ROLE_KEYS:
        st.session_state.pop(key, None)
    st.session_state["roles_for"] = [str(path), delimiter, header]

try:
    raw = caches.raw_log(path, delimiter, header)
except widgets.USER_ERRORS as err:
    widgets.error(err)
    st.stop()

st.subheader("Columns")
found = guess_roles(raw)
guess = found.columns
columns = [str(c) for c in raw.events.columns]
preview, mapping = st.columns([3, 1], gap="large")
with preview:
    st.dataframe(raw.events.head(8), hide_index=True)
    st.caption(f"{raw.source}: {how_read(raw)}, {len(raw.events):,} rows. The first rows as read.")
with mapping:
    user = pick_column("User", "user", guess["user"], columns, required=True)
    item = pick_column("Item", "item", guess["item"], columns, required=True)
    timestamp = pick_column("Timestamp", "timestamp", guess["timestamp"], columns, required=False)
    rating = pick_column("Rating", "rating", guess["rating"], columns, required=False)
    if raw.header is False:
        st.caption("The file has no header row, so the columns are named by position: the user and the item are "
                   "taken to be the first two. Correct them if they are wrong.")
    elif raw.roles is None:
        st.caption(f"Detected from the column names{' and values' * bool(found.by_content)}; correct them if they "
                   "are wrong.")
    for role, how in found.by_content.items():
        st.caption(f"{role.title()} **{guess[role]}**: found {how}.")
    if timestamp is None:
        st.caption("Without a timestamp, the file's order is the time order.")
missing = [role for role, column in (("user", user), ("item", item)) if column is None]
if missing:
    why = " ".join(f"{found.how[role][0].upper()}{found.how[role][1:]}." for role in missing if guess[role] is None)
    st.warning(f"Choose the {' and '.join(missing)} column{'s' * (len(missing) > 1)}. {why}", icon=":material/help:")
    st.stop()
roles = Columns(user, item, timestamp, rating)

st.subheader("Preprocessing")
defaults = Preprocessing()
cells = st.columns(5, vertical_alignment="bottom")
min_rating = cells[0].number_input("Minimum rating", value=None, step=0.5, placeholder="off", disabled=rating is None,
                                   key="min_rating", persist_state="session",
                                   help="Keep only interactions rated at least this (needs a rating column). "
                                        "Empty: keep all.")
k_core = cells[1].number_input("k-core", min_value=0, value=defaults.k_core, key="k_core", persist_state="session",
                               help="Repeatedly drop users and items with fewer than k interactions (0: off).")
min_len = cells[2].number_input("Minimum length", min_value=0, value=defaults.min_seq_len, key="min_len",
                                persist_state="session", help="Drop users with shorter sequences; 3 leaves one item "
                                                               "each for training, validation and test.")
collapse = cells[3].checkbox("Collapse repeats", value=defaults.collapse_repeats, key="collapse_repeats",
                             persist_state="session",
                             help="Turn consecutive repeats of the same item (A A B → A B) into one.")
dedupe = cells[4].checkbox("Drop duplicates", value=defaults.drop_duplicates, key="drop_duplicates",
                           persist_state="session", help="Drop exact duplicates: the same user, item and timestamp.")
preprocessing = Preprocessing(min_rating=min_rating if rating else None, drop_duplicates=dedupe,
                              collapse_repeats=collapse, k_core=k_core, min_seq_len=min_len)
made = caches.recipe(path, catalog, roles, preprocessing, delimiter, header)
try:
    dataset = caches.dataset(made)
except widgets.USER_ERRORS as err:
    widgets.error(err)
    st.stop()
st.dataframe(charts.report_table(dataset.report), hide_index=True)

show_statistics(made)
if not editor:
    st.stop()

st.subheader("Save")
fingerprint = ws.fingerprint(path, catalog, roles, preprocessing)
if delimiter is not None or header is not None:  # read otherwise than detected: another dataset
    fingerprint["reading"] = {"delimiter": delimiter, "header": header}
existing = ws.find_dataset(fingerprint)
if existing is not None:
    st.caption("With its own settings the sample needs no saving." if existing.builtin
               else f"This file with these settings is saved as **{existing.name}**.")
    use_button(existing.name)
else:
    name_cell, button_cell = st.columns([3, 1], vertical_alignment="bottom")
    default_name = SAMPLE_NAME if source == "sample" else path.name.split(".")[0]
    name = name_cell.text_input("Name", value=default_name, key="dataset_name", max_chars=60,
                                persist_state="session")
    if button_cell.button("Save and use", key="save_dataset", type="primary", icon=":material/save:"):
        try:
            entry = ws.save_dataset(dataset, name, fingerprint)
        except widgets.USER_ERRORS as err:
            widgets.error(err)
        else:
            state.set_active_dataset(entry.name)
            st.rerun()
