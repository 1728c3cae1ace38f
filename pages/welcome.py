import streamlit as st

from sasrec.ui import signin, state, widgets

widgets.page_setup()
signed_in = signin.current_user() is not None

st.title("SASRec Explorer")
st.markdown(
    "**SASRec** (Kang & McAuley, 2018) recommends the next item from the order of what a user did before. "
    "It reads a history the way a language model reads a sentence: causal self-attention over the items, "
    "each one looking only at earlier ones, then a score for every item in the catalog. "
    "Trained with a full softmax (*SASRec+*, Klenitskiy & Vasilev, 2023) it is fast and hard to beat."
)

left, right = st.columns([3, 2], gap="large")
with left:
    st.image("assets/sasrec.svg", width="stretch")
with right:
    if not signed_in:
        st.subheader("Sign in")
        signin.sign_in_panel()
    else:
        st.subheader("Ready to demo")
        st.markdown(
            "The bundled sample, a fictional streaming service with series, films and franchises, "
            "and a model trained on it are already active. Try a horror fan who has just started a horror series."
        )
        if st.button("Open the Playground with an example", type="primary", icon=":material/play_arrow:", key="start_demo"):
            state.start_demo()
            st.switch_page("pages/playground.py")

st.subheader("What each page does")
pages = [
    ("pages/data.py", ":material/table_view:", "Upload an interaction log or pick the sample; map its columns, filter it, see its shape."),
    ("pages/train.py", ":material/model_training:", "Train SASRec in the background on CPU or GPU and watch the loss and validation curves."),
    ("pages/playground.py", ":material/playlist_play:", "Edit a history item by item and watch the next-item predictions change."),
    ("pages/attention.py", ":material/grid_on:", "See what every layer and head attends to, and which items drive the prediction."),
    ("pages/evaluate.py", ":material/leaderboard:", "Ranking metrics against popularity and Markov baselines, and the item embedding map."),
]
for column, (path, icon, text) in zip(st.columns(len(pages)), pages):
    with column.container(border=True, height="stretch"):
        if signed_in:
            st.page_link(path, icon=icon)
        else:  # its page is not there before signing in
            st.markdown(f"{icon} **{path.removeprefix('pages/').removesuffix('.py').title()}**")
        st.caption(text)
