"""Train: start a training run in the background, watch it live, pick the active model."""

import streamlit as st

from sasrec.config import RunConfig, configs
from sasrec.rundir import CHECKPOINT, FAILED, FINISHED, INTERRUPTED, QUEUED, RUNNING
from sasrec.ui import charts, signin, state, widgets

widgets.page_setup()

ws = state.workspace()
dataset = state.active_dataset()
editor = signin.acting_user().can_edit  # a viewer sees the runs and their curves, and no control that changes them


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
    def phase():  # and whether the user may still change it: a sign-in that expires redraws the page
        return run.state(), bool(run.progress()), signin.acting_user().can_edit

    first_phase = phase()

    @st.fragment(run_every=1.0 if first_phase[0] in (RUNNING, QUEUED) else None)
    def view():
        if phase() != first_phase:  # started training, or ended: refresh the sidebar and the runs table too
            st.rerun()
        summary, progress, metrics = ws.run_summary(run), run.progress(), run.metrics()
        run_state = summary["state"]
        st.badge(run_state, color=charts.STATE_COLORS.get(run_state, "gray"))
        if run_state == RUNNING and run.stop_requested():
            st.caption("Stopping after the current step…")
        elif run_state == QUEUED:
            queued_view(run)
        elif run_state not in (FAILED, INTERRUPTED):
            st.caption(summary["message"])

        if not progress and run_state == RUNNING:
            st.progress(0.0, text="Starting…")
        elif progress:
            done = 1.0 if run_state == FINISHED else progress_fraction(progress)
            st.progress(done, text=f"{done:.0%} · {charts.progress_text(progress, running=run_state == RUNNING)}")
            st.caption(f"{progress['examples_per_second']:,.0f} positions per second on {summary['device']}")
            cells = st.columns(4)
            cells[0].metric("Elapsed", charts.short_duration(summary["duration_seconds"]),
                            help=charts.duration(summary["duration_seconds"]))
            best = summary["best_valid_ndcg@10"]
            cells[1].metric("Best valid NDCG@10", "–" if best is None else f"{best:.4f}")
            if summary["test_ndcg@10"] is not None:
                cells[2].metric("Test NDCG@10", f"{summary['test_ndcg@10']:.4f}")
                cells[3].metric("Test HR@10", f"{summary['test_hr@10']:.4f}")

        if run_state == RUNNING and not run.stop_requested() and editor:
            st.button("Stop", key="stop_run", icon=":material/stop_circle:", on_click=widgets.guarded(ws.stop_run),
                      args=(run,), help="Ends the run after the current step; the best checkpoint so far stays usable.")
        if run.resumable() and not ws.is_builtin(run) and editor:
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


def queued_view(run) -> None:
    """A run waiting for a training slot: its place, when it should start, and (for an editor) Cancel."""
    entry = next((e for e in ws.queue() if e["name"] == run.name), None)
    if entry is None:  # started, or cancelled, since the page looked
        return
    st.markdown(f"**Number {entry['place']} in the queue** for {charts.device_label(entry['device'])}: it "
                f"{charts.queue_start(entry['starts_in'])}.")
    st.caption(f"At most {entry['slots']} run{'s' * (entry['slots'] > 1)} train at once on each device. This one starts "
               f"by itself when a slot frees, whether or not a page is open. Queued by {entry['user']}.")
    if editor:
        st.button("Cancel", key="cancel_queued", icon=":material/cancel:", on_click=widgets.guarded(ws.cancel_run),
                  args=(run,), help="Takes it out of the queue" + ("; it stays as it was." if entry["resume"]
                                                                   else " and removes it: it has not trained."))


def progress_fraction(progress: dict) -> float:
    end = progress.get("end_step") or progress["epochs"] * progress["steps_per_epoch"]  # a run from before plans
    return min(progress["global_step"] / max(end, 1), 1.0)


def resume_form(run, progress: dict) -> None:
    """Continue a stopped or interrupted run, or one its time budget ended, from its last checkpoint:
    with more time (a time budget's run) or more epochs."""
    if not (run.path / CHECKPOINT).is_file():
        st.caption("It ended before its first checkpoint, so it cannot be resumed: start a new run.")
        return
    train = run.config().get("train") or {}
    limit = int(progress.get("epochs") or train.get("epochs") or 1)
    done = len(run.metrics())
    budget_ended = run.state() == FINISHED
    with st.container(horizontal=True, vertical_alignment="bottom"):
        more = None
        if train.get("time_budget"):
            used = (run.status().get("elapsed_seconds") or 0) / 60
            left = max(train["time_budget"] - used, 0)
            more = st.number_input("More time (minutes)", min_value=0.5, max_value=7 * 24 * 60.0, step=1.0,
                                   value=float(max(round(left), 1) if not budget_ended else 10), width=180,
                                   key=f"resume_minutes_{run.name}",
                                   help=f"{charts.duration(used * 60)} used so far. The learning rate rises to "
                                        "where a run planned for the longer budget would be now, and decays to "
                                        "zero at the new end.")
        epochs = st.number_input("Epochs in all", min_value=done + 1, max_value=10_000, value=max(limit, done + 1),
                                 key=f"resume_epochs_{run.name}", width=160,
                                 help=f"{done} epoch{'s' * (done != 1)} done; it trains on up to this many in all.")
        label = "Train longer" if budget_ended else "Resume"
        if st.button(label, key="resume_run", icon=":material/play_arrow:", type="primary",
                     help="Continues from the last checkpoint, with the same settings and data."):
            try:
                ws.resume_run(run, epochs=epochs, more_minutes=more)
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


def show_estimate(result: dict, asked: tuple, usual: dict | None = None) -> None:
    """The estimate below the form, with where earlier runs were by then (state.usual_progress); for a long
    run, the faster settings and a button to use them."""
    st.markdown(charts.estimate_text(result, usual))
    st.caption(f"Timed on {result['steps_timed']} training steps of {result['steps_per_epoch']:,} per epoch "
               f"({result['seconds_per_step'] * 1000:,.0f} ms each, {result['threads']} thread"
               f"{'s' * (result['threads'] > 1)}) and a validation sample.")
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
    @st.fragment(run_every=widgets.LIVE_SECONDS if any(r.state() in (RUNNING, QUEUED) for r in runs) else None)
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


def new_run_form() -> None:
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
                    result = ws.estimate(dataset.name, config)
                    # read from the earlier runs' files once, not on every rerun that shows the estimate
                    usual = state.usual_progress(dataset.name, result["settings"]["loss"], result["epochs"])
                    st.session_state["train_estimate"] = {"asked": asked, "result": result, "usual": usual}
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
        show_estimate(known["result"], asked, known.get("usual"))
    elif not start:
        st.caption("Estimate the time first: a few timed steps say how long an epoch and the whole run take here.")


st.title("Train")
form_column, live_column = st.columns([1, 2], gap="large")

with form_column:
    st.subheader("New run")
    if editor:
        new_run_form()
    else:
        st.info("You are a viewer here: you can watch the runs and their curves, and pick the model the other pages "
                "show. Starting, stopping and deleting runs is for editors.", icon=":material/visibility:")

with live_column:
    run = state.active_run()
    if run is None:
        st.subheader("No model yet")
        st.info("Start a run on the left. It trains in the background: you can switch pages, reload or close "
                "the tab, and come back to watch it.", icon=":material/model_training:")
    else:
        title, delete = st.columns([4, 1], vertical_alignment="bottom")
        title.subheader(run.name)
        if editor:
            delete.button("Delete…", key="delete_run", icon=":material/delete:", disabled=ws.is_builtin(run),
                          on_click=st.session_state.update, kwargs={"deleting": run.name},
                          help="The bundled demo model cannot be deleted." if ws.is_builtin(run) else None)
        if editor and st.session_state.get("deleting") == run.name:
            confirm_delete(run)
        live_view(run)

st.subheader("Runs")
runs = ws.runs()
if not runs:
    st.caption("No runs yet.")
else:
    runs_table(runs, state.active_run_name())
    st.caption("Select a run to make it the active model: the Playground, Attention and Evaluate pages use it.")

queue = ws.queue()
if queue:
    st.subheader("Queue")
    st.dataframe(charts.queue_table(queue), hide_index=True)
    st.caption("Runs waiting for a free training slot on their device, first come first; each starts by itself. "
               "The estimated start adds up what the runs ahead have left and will take.")

if editor and signin.mode() == signin.SIGN_IN:  # who did what matters where several people sign in
    st.subheader("Audit log")
    entries = ws.audit_log(20)
    if entries:
        st.dataframe(charts.audit_table(entries), hide_index=True)
        st.caption(f"The latest changes to this workspace and refused attempts, newest first; all of them are in "
                   f"{ws.root.name}/audit.jsonl.")
    else:
        st.caption("No change to this workspace has been made from the app yet.")
