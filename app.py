"""SASRec Explorer: `streamlit run app.py`. The router; each page is a file in pages/."""

import streamlit as st
import torch

from sasrec.ui import state, widgets

# One thread per request: a single history scores in milliseconds anyway, and training,
# in its own process, has the other cores (see Workspace.start_run).
torch.set_num_threads(1)

st.set_page_config(page_title="SASRec Explorer", page_icon=":material/auto_awesome:", layout="wide")

page = st.navigation([
    st.Page("pages/welcome.py", title="Welcome", icon=":material/home:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/table_view:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/playground.py", title="Playground", icon=":material/playlist_play:"),
    st.Page("pages/attention.py", title="Attention", icon=":material/grid_on:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/leaderboard:"),
])
state.sync_query_params()
widgets.sidebar()
page.run()
