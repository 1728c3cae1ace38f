"""When a run ends, and its learning rate until then.

A run trains until its epoch limit or its time budget, whichever comes first (early stopping
or a stop request may end it sooner). The learning rate decays linearly to zero at that end:
a schedule planned to end at a deadline beats the same schedule cut off by it (budgeted
training, Li et al., ICLR 2020), and the last weights are then usually the best ones.

The end is counted in optimizer steps. Without a budget it is the epoch limit's last step.
With one, it is planned from the time per step and per validation measured so far, and
planned again after every epoch, so that training, its validations and the final test
evaluation fit in the budget on this machine, however fast or busy it turns out to be. A
resumed run that is given more time plans a later end: its learning rate rises to where a
run planned for the longer budget would be at this point, and decays from there.
"""

import math
import re
import statistics
from dataclasses import dataclass

_DURATION = re.compile(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m(?:in)?)?\s*(?:(\d+(?:\.\d+)?)s)?\s*")


def parse_minutes(text: str) -> float:
    """'90s', '10m', '1h', '1h30m' -> minutes. A unit is required: '600' could mean either."""
    match = _DURATION.fullmatch(str(text).lower())
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r}; give a unit, as in 90s, 10m or 1h")
    hours, minutes, seconds = (float(g or 0) for g in match.groups())
    total = hours * 60 + minutes + seconds / 60
    if total <= 0:
        raise ValueError(f"a time budget must be positive, not {text!r}")
    return total


def duration(seconds: float | None) -> str:
    """'45 s', '3 min 05 s', '2 h 07 min'."""
    if seconds is None:
        return "–"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


# Steps timed before the first plan: enough to average out the first, slower ones.
FIRST_PLAN_STEPS = 20
# Early stopping waits at least this share of a run's planned validations. As the learning rate
# decays, validation NDCG typically plateaus mid-run and climbs again near the end (Beauty, 40
# planned epochs: flat from epoch 12 to 28, then +4% by epoch 39; bench/train_eval.py): a patience
# set by the metric's noise alone would end such a run on its plateau.
PATIENCE_SHARE = 0.25
# Validations: a long plan on a small, noisy log still stops when done (ml-100k, 200 epochs: at 30 a seed
# trained 131 epochs for a lower test NDCG@10 than at 60, bench/train_eval.py)
PATIENCE_MOST = 20


@dataclass
class Pace:
    """What training costs on this machine: a step, a validation (spread over the steps between
    two) and the final test evaluation. Measured as the run goes; before the first validation,
    its cost is the model's arithmetic estimate (validation_share of an epoch)."""
    steps_per_epoch: int
    eval_every: int  # epochs per validation
    validation_share: float  # estimated cost of a validation over an epoch's
    validated_users: int
    ranked_users: int  # users the final evaluation ranks every item for (report.ranked_users)
    extra_seconds: float = 0.0  # what else it takes: fitting the baselines, the insights (report.extra_seconds)
    seconds_per_step: float | None = None
    validation_seconds: float | None = None

    def validation_seconds_estimate(self) -> float:
        if self.validation_seconds is not None:
            return self.validation_seconds
        return self.validation_share * (self.seconds_per_step or 0.0) * self.steps_per_epoch

    def validation_per_step(self) -> float:
        return self.validation_seconds_estimate() / (self.eval_every * self.steps_per_epoch)

    def reserve(self) -> float:
        """The final test evaluation's expected time, which a time budget must leave for it."""
        per_user = self.validation_seconds_estimate() / max(self.validated_users, 1)
        return per_user * self.ranked_users + self.extra_seconds

    def seconds_left(self, step: int, end_step: int) -> float:
        """From `step` to the end of the final evaluation, if training ends at end_step."""
        per_step = (self.seconds_per_step or 0.0) + self.validation_per_step()
        return per_step * max(end_step - step, 0) + self.reserve()


@dataclass
class Schedule:
    """The learning rate at each optimizer step, and the step at which training ends."""
    lr: float  # the peak, at step 0
    steps_per_epoch: int
    epoch_limit: int
    budget_seconds: float | None = None  # training, validation and the final evaluation
    end_step: int = 0  # planned; 0 until planned

    def __post_init__(self):
        if not self.end_step:
            self.end_step = self.epoch_limit * self.steps_per_epoch

    @property
    def limit_step(self) -> int:
        return self.epoch_limit * self.steps_per_epoch

    def learning_rate(self, step: int) -> float:
        """Linear decay from lr at step 0 to zero at the planned end."""
        return self.lr * max(0.0, 1.0 - step / max(self.end_step, 1))

    def plan(self, step: int, elapsed: float, pace: Pace) -> int:
        """Plan the end from here, `step` steps and `elapsed` seconds into the run, at `pace`:
        as many steps as fit in what is left of the budget once the final evaluation has its
        share. Returns the planned end step (kept in end_step)."""
        if self.budget_seconds is None:
            self.end_step = self.limit_step
            return self.end_step
        left = self.budget_seconds - elapsed - pace.reserve()
        per_step = max((pace.seconds_per_step or 0.0) + pace.validation_per_step(), 1e-9)
        affordable = step + max(0, math.floor(left / per_step))
        self.end_step = max(step, min(self.limit_step, affordable), 1)
        return self.end_step

    def out_of_time(self, elapsed: float, pace: Pace) -> bool:
        """Whether the budget, less the final evaluation's share, is spent: on a machine that
        turned out slower than planned for, training ends here."""
        return self.budget_seconds is not None and elapsed >= self.budget_seconds - pace.reserve()

    def ends_by_budget(self) -> bool:
        """Whether the budget, not the epoch limit, sets the end."""
        return self.budget_seconds is not None and self.end_step < self.limit_step

    def done(self, step: int) -> bool:
        return step >= self.end_step

    def patience(self, patience: int, eval_every: int) -> int:
        """Validations without a gain that end a run early: `patience`, or a quarter of the planned
        validations if that is more (PATIENCE_SHARE), up to PATIENCE_MOST."""
        planned = self.end_step / max(self.steps_per_epoch * eval_every, 1)
        return max(patience, min(math.ceil(PATIENCE_SHARE * planned), PATIENCE_MOST))


def usual_progress(curves: list[list[dict]], epochs: float) -> dict | None:
    """Where earlier finished runs were after `epochs` epochs: the median share of its own best
    validation NDCG@10 that each had reached by then (all of it, for a run that had ended), over the
    runs that had validated by then. curves: each run's metrics.jsonl lines. None without such a run."""
    shares = []
    for lines in curves:
        validated = [(line["epoch"], line["valid_ndcg@10"]) for line in lines if "valid_ndcg@10" in line]
        best = max((ndcg for _, ndcg in validated), default=0.0)
        by_then = [ndcg for epoch, ndcg in validated if epoch <= epochs]
        if best > 0 and by_then:
            shares.append(max(by_then) / best)
    if not shares:
        return None
    return {"share_of_best": statistics.median(shares), "runs": len(shares)}
