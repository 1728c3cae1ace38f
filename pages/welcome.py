import streamlit as st

st.title("Welcome")
st.info("This page is being built.")
