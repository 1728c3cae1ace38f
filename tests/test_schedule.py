"""The schedule: durations, the learning rate's decay to the planned end, and plans that fit a time budget."""

import pytest

from sasrec.schedule import Pace, Schedule, parse_minutes, usual_progress


@pytest.mark.parametrize("text, minutes", [("90s", 1.5), ("10m", 10), ("10min", 10), ("1h", 60), ("1h30m", 90),
                                           ("0.5m", 0.5), ("2h 5m 30s", 125.5), (" 45s ", 0.75)])
def test_durations_read_as_minutes(text, minutes):
    assert parse_minutes(text) == pytest.approx(minutes)


@pytest.mark.parametrize("text", ["600", "", "ten minutes", "10x", "0s", "-5m", "5m10"])
def test_a_duration_needs_a_unit_and_a_positive_value(text):
    with pytest.raises(ValueError):
        parse_minutes(text)


def test_the_learning_rate_decays_linearly_to_zero_at_the_planned_end():
    schedule = Schedule(lr=0.002, steps_per_epoch=10, epoch_limit=5)
    assert schedule.end_step == 50 and not schedule.ends_by_budget()
    assert schedule.learning_rate(0) == 0.002
    assert schedule.learning_rate(25) == pytest.approx(0.001)
    assert schedule.learning_rate(50) == 0 and schedule.learning_rate(70) == 0
    assert not schedule.done(49) and schedule.done(50)


def pace(**given) -> Pace:
    return Pace(**{"steps_per_epoch": 100, "eval_every": 1, "validation_share": 0.1, "validated_users": 1000,
                   "ranked_users": 6000, "seconds_per_step": 0.1} | given)


def test_a_plan_fits_training_validation_and_the_final_evaluation_in_the_budget():
    # 0.1 s a step, a 2 s validation of 1,000 users per 100-step epoch; the test ranks 6,000: 12 s.
    measured = pace(validation_seconds=2.0)
    assert measured.reserve() == pytest.approx(12.0)
    assert pace(validation_seconds=2.0, extra_seconds=5.0).reserve() == pytest.approx(17.0)
    schedule = Schedule(lr=0.001, steps_per_epoch=100, epoch_limit=1000, budget_seconds=600)
    end = schedule.plan(step=500, elapsed=60.0, pace=measured)
    # (600 - 60 - 12) s left at 0.12 s a step (0.1 training, 0.02 validation)
    assert end == 500 + int((600 - 60 - 12) / 0.12)
    assert schedule.ends_by_budget()
    assert end == pytest.approx(500 + (measured.seconds_left(500, end) - measured.reserve()) / 0.12)
    # What is left after the plan's last step is the final evaluation's reserve, within a step.
    assert 60 + measured.seconds_left(500, end) == pytest.approx(600, abs=0.12)


def test_the_epoch_limit_caps_a_generous_budget():
    schedule = Schedule(lr=0.001, steps_per_epoch=100, epoch_limit=20, budget_seconds=3600)
    assert schedule.plan(step=10, elapsed=5.0, pace=pace()) == 2000
    assert not schedule.ends_by_budget()


def test_before_a_validation_its_cost_is_the_estimated_share_of_an_epoch():
    estimated = pace(validation_share=0.2)  # of a 10 s epoch: 2 s per validation
    assert estimated.validation_per_step() == pytest.approx(0.02)
    assert pace(validation_share=0.2, eval_every=4).validation_per_step() == pytest.approx(0.005)


def test_a_spent_budget_ends_training_now_and_more_time_plans_a_later_end():
    schedule = Schedule(lr=0.001, steps_per_epoch=100, epoch_limit=1000, budget_seconds=100)
    measured = pace(validation_seconds=1.0)  # reserve 6 s
    assert not schedule.out_of_time(93.0, measured) and schedule.out_of_time(94.5, measured)
    assert schedule.plan(step=900, elapsed=99.0, pace=measured) == 900  # nothing fits: end here
    # Resumed with 100 s more: the end moves out, and the rate rises to where a 200 s plan is now.
    schedule.budget_seconds = 200
    later = schedule.plan(step=900, elapsed=99.0, pace=measured)
    assert later > 900 and 0 < schedule.learning_rate(900) < 0.001


def test_early_stopping_waits_for_a_quarter_of_the_planned_validations():
    schedule = Schedule(lr=0.001, steps_per_epoch=100, epoch_limit=40)
    assert schedule.patience(6, eval_every=1) == 10  # 40 planned validations
    assert schedule.patience(6, eval_every=4) == 6  # 10 planned: the noise-based patience is more
    assert schedule.patience(30, eval_every=1) == 30
    long = Schedule(lr=0.001, steps_per_epoch=100, epoch_limit=200)  # 200 validations: a quarter, but at most 20
    assert long.patience(6, eval_every=1) == 20


def test_the_usual_progress_is_the_median_share_of_each_runs_best_reached_by_then():
    def curve(*ndcgs, every=1):
        return [{"epoch": e, "loss": 1.0} | ({"valid_ndcg@10": ndcgs[e // every - 1]} if e % every == 0 else {})
                for e in range(1, every * len(ndcgs) + 1)]

    rising = curve(0.02, 0.04, 0.05, 0.08, 0.10)  # best 0.10 at epoch 5
    early = curve(0.06, 0.06, 0.05)  # its best at epoch 1, ended at 3
    sparse = curve(0.03, 0.09, every=2)  # validated at 2 and 4
    assert usual_progress([rising], 4)["share_of_best"] == pytest.approx(0.8)
    assert usual_progress([rising], 4.5)["share_of_best"] == pytest.approx(0.8)  # a partial epoch: the last validation
    assert usual_progress([early], 40)["share_of_best"] == 1.0  # it had ended: all of its best
    found = usual_progress([rising, early, sparse], 3)
    assert found == {"share_of_best": pytest.approx(0.5), "runs": 3}  # 0.5, 1.0 and 0.03 / 0.09
    assert usual_progress([sparse], 1) is None  # not validated by then
    assert usual_progress([], 10) is None and usual_progress([[{"epoch": 1, "loss": 2.0}]], 5) is None
