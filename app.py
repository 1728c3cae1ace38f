"""SASRec Explorer: `streamlit run app.py`. The router; each page is a file in pages/."""

import streamlit as st
import torch

from sasrec.ui import signin, state, widgets

# One thread per request: a single history scores in milliseconds anyway, and training,
# in its own process, has the other cores (see Workspace.start_run).
torch.set_num_threads(1)

st.set_page_config(page_title="SASRec Explorer", page_icon=":material/auto_awesome:", layout="wide")

welcome = st.Page("pages/welcome.py", title="Welcome", icon=":material/home:", default=True)
# Pages by role (the pattern of streamlit/streamlit#8518): a visitor who has to sign in gets the
# welcome page alone. Viewers get every page, with Data and Train read-only; what they may change
# is decided by the workspace, not by what the pages show (sasrec/access.py).
if signin.current_user() is None:
    page = st.navigation([welcome])
else:
    page = st.navigation([
        welcome,
        st.Page("pages/data.py", title="Data", icon=":material/table_view:"),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/playground.py", title="Playground", icon=":material/playlist_play:"),
        st.Page("pages/attention.py", title="Attention", icon=":material/grid_on:"),
        st.Page("pages/evaluate.py", title="Evaluate", icon=":material/leaderboard:"),
    ])
    state.sync_query_params()
widgets.sidebar()
page.run()
