"""Train: start a training run in the background, watch it live, pick the active model."""

import streamlit as st

from sasrec.config import RunConfig, configs
from sasrec.rundir import CHECKPOINT, FAILED, FINISHED, INTERRUPTED, RUNNING, STOPPED
from sasrec.ui import charts, state, widgets

widgets.page_setup()

ws = state.workspace()
dataset = state.active_dataset()


def forget_delete() -> None:
    st.session_state.pop("deleting", None)


# Open while session state names the run, so that the question survives reruns of the whole page.
@st.dialog("Delete this run?", on_dismiss=forget_delete)
def confirm_delete(run) -> None:
    alive = run.is_alive()
    st.write(f"**{run.name}** and its checkpoints will be deleted. This cannot be undone."
             + (" It is still training: it will be stopped first." if alive else ""))
    yes, no = st.columns(2)
    if yes.button("Delete", type="primary", key="confirm_delete", icon=":material/delete:"):
        try:
            with st.spinner("Stopping the run…" if alive else "Deleting…"):
                ws.delete_run(run)
        except widgets.USER_ERRORS as err:
            widgets.error(err)
            return
        forget_delete()
        st.rerun()
    if no.button("Cancel", key="cancel_delete"):
        forget_delete()
        st.rerun()


def live_view(run) -> None:
    """The run as its directory tells it; polled every second while it trains. The training
    process is not ours: the page only reads its files, so a reload or a second tab sees the
    same run."""
    def phase():
        return run.state(), bool(run.progress())

    first_phase = phase()

    @st.fragment(run_every=1.0 if first_phase[0] == RUNNING else None)
    def view():
        if phase() != first_phase:  # started training, or ended: refresh the sidebar and the runs table too
            st.rerun()
        summary, progress, metrics = ws.run_summary(run), run.progress(), run.metrics()
        run_state = summary["state"]
        st.badge(run_state, color=charts.STATE_COLORS.get(run_state, "gray"))
        if run_state == RUNNING and run.stop_requested():
            st.caption("Stopping after the current step…")
        elif run_state not in (FAILED, INTERRUPTED):
            st.caption(summary["message"])

        if not progress and run_state == RUNNING:
            st.progress(0.0, text="Starting…")
        elif progress:
            total_steps = progress["epochs"] * progress["steps_per_epoch"]
            done = 1.0 if run_state == FINISHED else min(progress["global_step"] / total_steps, 1.0)
            eta = (f" · about {charts.duration(progress['eta_seconds'])} left"
                   if run_state == RUNNING and progress["eta_seconds"] >= 1 else "")
            st.progress(done, text=f"{done:.0%} · epoch {progress['epoch']} of {progress['epochs']}, step "
                                   f"{progress['step']} of {progress['steps_per_epoch']}{eta}")
            st.caption(f"{progress['examples_per_second']:,.0f} positions per second on {summary['device']}")
            cells = st.columns(4)
            cells[0].metric("Elapsed", charts.short_duration(summary["duration_seconds"]),
                            help=charts.duration(summary["duration_seconds"]))
            best = summary["best_valid_ndcg@10"]
            cells[1].metric("Best valid NDCG@10", "–" if best is None else f"{best:.4f}")
            if summary["test_ndcg@10"] is not None:
                cells[2].metric("Test NDCG@10", f"{summary['test_ndcg@10']:.4f}")
                cells[3].metric("Test HR@10", f"{summary['test_hr@10']:.4f}")

        if run_state == RUNNING and not run.stop_requested():
            st.button("Stop", key="stop_run", icon=":material/stop_circle:", on_click=ws.stop_run, args=(run,),
                      help="Ends the run after the current step; the best checkpoint so far stays usable.")
        if run_state in (STOPPED, INTERRUPTED) and not ws.is_builtin(run):
            resume_form(run, progress)
        if run_state == FAILED:
            st.error(summary["message"], icon=":material/error:")
        if run_state == INTERRUPTED:
            st.warning("The training process ended without saying how: it was killed, or the machine restarted.",
                       icon=":material/warning:")
        if run_state in (FAILED, INTERRUPTED):
            st.caption("The end of its log:")
            st.code(run.log_tail() or "(the log is empty)", language=None)

        if progress:
            left, right = st.columns(2)
            left.markdown("**Training loss**")
            left.altair_chart(charts.loss_chart(progress))
            right.markdown("**Validation**")
            if metrics:
                right.altair_chart(charts.validation_chart(metrics))
            else:
                right.caption("NDCG@10 and HR@10 on the validation split appear after the first epoch.")

    view()


def resume_form(run, progress: dict) -> None:
    """Continue a stopped or interrupted run from its last checkpoint, with the same or a new epoch budget."""
    if not (run.path / CHECKPOINT).is_file():
        st.caption("It ended before its first checkpoint, so it cannot be resumed: start a new run.")
        return
    budget = int(progress.get("epochs") or (run.config().get("train") or {}).get("epochs") or 1)
    done = len(run.metrics())
    with st.container(horizontal=True, vertical_alignment="bottom"):
        epochs = st.number_input("Epochs in all", min_value=done + 1, max_value=10_000, value=max(budget, done + 1),
                                 key=f"resume_epochs_{run.name}", width=160,
                                 help=f"{done} epoch{'s' * (done != 1)} done; it trains on up to this many in all.")
        if st.button("Resume", key="resume_run", icon=":material/play_arrow:", type="primary",
                     help="Continues from the last checkpoint, with the same settings and data."):
            try:
                ws.resume_run(run, epochs=epochs)
            except widgets.USER_ERRORS as err:
                widgets.error(err)
            else:
                st.rerun()


def use_faster(asked: tuple, faster: dict) -> None:
    """on_click: the faster settings into the form, with their estimate as the one shown."""
    state.apply_settings(faster["changes"])
    dataset_name, preset, settings = asked
    st.session_state["train_estimate"] = {
        "asked": (dataset_name, preset, tuple(sorted((dict(settings) | faster["changes"]).items()))), "result": faster}


def show_estimate(result: dict, asked: tuple) -> None:
    """The estimate below the form; for a long run, the faster settings and a button to use them."""
    epochs = result["epochs"]
    st.markdown(f"**About {charts.about(result['epoch_seconds']).removeprefix('about ')} per epoch**, up to "
                f"{charts.about(result['total_seconds']).removeprefix('about ')} for {epochs} epoch{'s' * (epochs > 1)} "
                "and the test evaluation.")
    st.caption(f"Timed on {result['steps_timed']} training steps of {result['steps_per_epoch']:,} per epoch "
               f"({result['seconds_per_step'] * 1000:,.0f} ms each, {result['threads']} thread"
               f"{'s' * (result['threads'] > 1)}) and a validation sample. Early stopping usually ends a run sooner.")
    faster = result.get("faster")
    if faster:
        changes = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in faster["changes"].items())
        st.warning(f"That is long. Faster settings ({changes}) take about "
                   f"{charts.about(faster['epoch_seconds']).removeprefix('about ')} per epoch, up to "
                   f"{charts.about(faster['total_seconds']).removeprefix('about ')} in all.",
                   icon=":material/speed:")
        st.button("Use the faster settings", key="use_faster", icon=":material/speed:", on_click=use_faster,
                  args=(asked, faster))


def select_run(key: str, names: list[str]) -> None:
    rows = st.session_state[key].selection.rows
    if rows:  # a click on the selected row clears the selection; the active run stays
        state.set_active_run(names[rows[0]])


def runs_table(runs: list, active_name: str | None) -> None:
    """The runs, redrawn every few seconds while one trains: the page itself is drawn again only when the
    active run starts or ends, and a table drawn once would show a running run's duration as it was then."""
    @st.fragment(run_every=widgets.LIVE_SECONDS if any(r.state() == RUNNING for r in runs) else None)
    def table():
        if state.active_run_name() != active_name:  # a row was selected: the whole page shows that run
            st.rerun()
        summaries = [ws.run_summary(r) for r in runs]
        names = [s["name"] for s in summaries]
        # The key follows the runs and the active one, so the highlighted row is always the active run
        # (a remembered selection would point at whatever run moved into its row).
        key = f"runs_table_{hash((*names, active_name))}"
        st.dataframe(charts.runs_table(summaries), hide_index=True, column_config=widgets.RUNS_COLUMNS, key=key,
                     placeholder="–", on_select=lambda: select_run(key, names), selection_mode="single-row",
                     selection_default={"selection": {"rows": [names.index(active_name)]}} if active_name in names
                     else None)

    table()


st.title("Train")
form_column, live_column = st.columns([1, 2], gap="large")

with form_column:
    st.subheader("New run")
    st.markdown(f"Dataset: **{dataset.name}**")
    st.page_link("pages/data.py", label="Choose another on the Data page", icon=":material/table_view:")
    state.restore_train_form(state.active_run())
    preset = st.selectbox("Preset", list(widgets.PRESET_LABELS), format_func=widgets.PRESET_LABELS.get,
                          key="train_preset", on_change=state.apply_preset, persist_state="session")
    with st.form("train_form"):
        settings = widgets.settings_form(preset)
        suggested = ws.new_run_name(dataset.name)
        name = st.text_input("Run name", placeholder=suggested, key="train_run_name", max_chars=60,
                             help="Leave empty for the dataset's name and the time.")
        with st.container(horizontal=True):
            estimate = st.form_submit_button("Estimate the time", icon=":material/timer:", key="estimate_training",
                                             help="Times a few training steps with these settings on this data.")
            start = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:",
                                          key="start_training")
    asked = (dataset.name, preset, tuple(sorted(settings.items())))  # what an estimate is of
    if estimate or start:
        try:
            config = RunConfig(*configs(preset, **settings), data=None)  # the registry fills in the data
            if estimate:
                with st.spinner("Timing a few training steps…"):
                    st.session_state["train_estimate"] = {"asked": asked, "result": ws.estimate(dataset.name, config)}
            else:
                known = st.session_state.get("train_estimate") or {}
                run = ws.start_run(dataset.name, name.strip() or suggested, config, preset=preset,
                                   estimate=known.get("result") if known.get("asked") == asked else None)
        except (*widgets.USER_ERRORS, ValueError) as err:
            widgets.error(f"Cannot train with these settings: {err}" if isinstance(err, ValueError) else err)
        else:
            if start:
                st.session_state.pop("train_estimate", None)
                state.set_active_run(run.name)
                st.rerun()
    known = st.session_state.get("train_estimate")
    if known and known["asked"] == asked:
        show_estimate(known["result"], asked)
    elif not start:
        st.caption("Estimate the time first: a few timed steps say how long an epoch and the whole run take here.")

with live_column:
    run = state.active_run()
    if run is None:
        st.subheader("No model yet")
        st.info("Start a run on the left. It trains in the background: you can switch pages, reload or close "
                "the tab, and come back to watch it.", icon=":material/model_training:")
    else:
        title, delete = st.columns([4, 1], vertical_alignment="bottom")
        title.subheader(run.name)
        delete.button("Delete…", key="delete_run", icon=":material/delete:", disabled=ws.is_builtin(run),
                      on_click=st.session_state.update, kwargs={"deleting": run.name},
                      help="The bundled demo model cannot be deleted." if ws.is_builtin(run) else None)
        if st.session_state.get("deleting") == run.name:
            confirm_delete(run)
        live_view(run)

st.subheader("Runs")
runs = ws.runs()
if not runs:
    st.caption("No runs yet.")
else:
    runs_table(runs, state.active_run_name())
    st.caption("Select a run to make it the active model: the Playground, Attention and Evaluate pages use it.")
