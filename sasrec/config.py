"""A run's whole configuration: the model, the training and the data, as one JSON file.

A run directory's config.json holds a RunConfig, and `python -m sasrec train --config FILE`
trains exactly what one says: the app writes it and starts that command, so what the app
asked for and what the run did are the same thing. Every setting is declared once, on
SASRecConfig (model.py) or TrainConfig (train.py), with settings.setting(); the CLI flags
and the Train page's form are derived here from those declarations.
"""

import argparse
from dataclasses import asdict, dataclass, field, fields, replace

from . import rundir
from .dataset import Preprocessing
from .model import SASRecConfig
from .readers import Columns
from .schedule import parse_minutes
from .settings import setting

LOSSES = ("ce", "bce", "sampled-ce")


@dataclass
class TrainConfig:
    loss: str | None = setting(None, "ce: full softmax (SASRec+); bce: the paper's, one negative; sampled-ce: for "
                                     "large catalogs (default: from the catalog size)",
                               label="Loss", form=True, choices=LOSSES, type=str)
    num_negatives: int | None = setting(None, "shared negatives per batch for sampled-ce (default: from the catalog)",
                                        flag="num_negatives", type=int)
    # The planned end, where the learning rate reaches zero, unless a budget ends it sooner. A run's best
    # validation came at 15-38 epochs on ml-100k, Beauty and Sports; planned to end at 40 instead of 200,
    # the rate decays while the model is still improving, and ml-100k and Beauty ranked better in less time
    # (bench/train_eval.py, README "Results").
    epochs: int = setting(40, "most epochs to train; the learning rate decays to zero at the last (or at the "
                              "time budget's end, if sooner)", label="Epochs", form=True, low=1, high=10_000)
    time_budget: float | None = setting(None, "train for at most this long, e.g. 90s, 10m or 1h, the final test "
                                              "evaluation included; the learning rate decays to zero at the end "
                                              "(default: no limit but the epochs and early stopping)",
                                        flag="time_budget", label="Budget (min)", form=True, low=0.5,
                                        high=7 * 24 * 60, step=1.0, type=float, parse=parse_minutes)
    patience: int | None = setting(None, "validations without improvement before stopping (default: from the "
                                         "number of validation users)", label="Patience", form=True, low=1,
                                   high=1_000, type=int)
    eval_every: int | None = setting(None, "epochs between validations (default: so that validation stays a small "
                                           "share of the time)", flag="eval_every", type=int)
    lr: float | None = setting(None, "Adam learning rate (default: suits the loss and batch size)",
                               label="Learning rate", form=True, low=1e-6, high=1.0, step=1e-4, type=float)
    beta2: float = setting(0.98, "Adam beta2")
    batch_size: int | None = setting(None, "windows per batch (default: suits the loss and the data)",
                                     flag="batch_size", label="Batch size", form=True, low=1, high=65_536, type=int)
    valid_users: int | None = setting(None, "validate on a fixed random sample of this many users (default: all "
                                            "of a small log, a sample of a big one); the test covers every user",
                                      flag="valid_users", type=int)
    device: str = setting("auto", "where to train: auto, cpu, cuda (or cuda:N for the N-th GPU), mps", label="Device",
                          form=True)
    seed: int = setting(42, "random seed")
    threads: int = setting(0, "CPU threads (0: all cores)")

    def __post_init__(self):
        if self.loss is not None and self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise ValueError(f"a time budget must be positive, not {self.time_budget} minutes")


SECTIONS = {"model": SASRecConfig, "train": TrainConfig}

PRESETS = {
    # The defaults of SASRecConfig and TrainConfig, with what they leave open chosen from the data.
    "auto": {},
    # SASRec+ (Klenitskiy & Vasilev, RecSys 2023): full softmax cross-entropy.
    "sasrec+": {"loss": "ce", "maxlen": 200, "batch_size": 32, "lr": 2e-3},
    # The paper's settings (Kang & McAuley 2018, section IV-C).
    # Its dropout and maxlen follow the data as the paper's do (0.2 and 200 on the dense MovieLens,
    # 0.5 and 50 on the sparse logs): from the density and the history lengths (defaults.py).
    "paper": {"hidden": 50, "num_blocks": 2, "num_heads": 1, "loss": "bce", "lr": 1e-3, "beta2": 0.98,
              "batch_size": 128, "epochs": 200},
    # The bundled demo model: the sample's patterns are learned in a few epochs, so it
    # retrains in under a minute on two cores.
    "demo": {"loss": "ce", "maxlen": 50, "epochs": 10, "batch_size": 32, "lr": 2e-3},
}
PRESET_HELP = ("auto: settings chosen from the data and the device (default); sasrec+: full cross-entropy, "
               "maxlen 200; paper: d=50, 2 blocks, 1 head, BCE, batch 128, 200 epochs; demo: maxlen 50, 10 epochs "
               "(the bundled demo model)")


@dataclass
class DataConfig:
    path: str  # a log, or a saved dataset's folder; relative to the run directory once recorded there
    items: str | None = None  # an item catalog, if not the log's own
    roles: dict | None = None  # Columns as a dict; None: as the format says, or found by name
    preprocessing: dict = field(default_factory=lambda: Preprocessing().to_dict())
    name: str = ""  # the dataset's name, as shown
    saved_preprocessing: dict | None = None  # for a saved dataset: how it was cleaned when it was saved

    def load(self):
        """The dataset this describes (DataError if it cannot be read)."""
        from .dataset import load_dataset

        return load_dataset(self.path, items=self.items, roles=Columns(**self.roles) if self.roles else None,
                            preprocessing=Preprocessing.from_dict(self.preprocessing))

    def relative_to(self, run_dir) -> "DataConfig":
        """As recorded in a run directory: paths relative to it."""
        return replace(self, path=rundir.relative_to(run_dir, self.path), items=rundir.relative_to(run_dir, self.items))

    def resolved_from(self, run_dir) -> "DataConfig":
        """As read back from a run directory: absolute paths."""
        return replace(self, path=rundir.resolved_from(run_dir, self.path),
                       items=rundir.resolved_from(run_dir, self.items))


@dataclass
class RunConfig:
    model: SASRecConfig
    train: TrainConfig
    data: DataConfig
    # The settings that were chosen from the data and the device, each with the reason.
    chosen: dict = field(default_factory=dict)
    world_size: int = 1  # processes that trained it (torchrun)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        known = {name: {f.name for f in fields(section)} for name, section in SECTIONS.items()}
        for name, names in known.items():
            unknown = set(d.get(name) or {}) - names
            if unknown:
                raise ValueError(f"unknown {name} settings: {', '.join(sorted(unknown))}")
        unknown_data = set(d.get("data") or {}) - {f.name for f in fields(DataConfig)}
        if unknown_data:
            raise ValueError(f"unknown data settings: {', '.join(sorted(unknown_data))}")
        return cls(SASRecConfig(**d.get("model") or {}), TrainConfig(**d.get("train") or {}),
                   DataConfig(**d["data"]), d.get("chosen") or {}, d.get("world_size", 1))

    def write(self, path) -> None:
        rundir.write_json(path, self.to_dict())

    @classmethod
    def read(cls, path) -> "RunConfig":
        """The RunConfig in a JSON file (a run's config.json carries more, which is ignored)."""
        saved = rundir.read_json(path)
        if not isinstance(saved, dict):
            raise rundir.RunError(f"{path}: missing, or not JSON")
        try:
            return cls.from_dict({key: saved[key] for key in ("model", "train", "data", "chosen", "world_size")
                                  if key in saved})
        except (KeyError, TypeError, ValueError) as err:
            raise rundir.RunError(f"{path}: not a run configuration ({err})") from err


def settings_fields():
    """(section, field) of every setting a user may give, in declaration order."""
    return [(name, f) for name, section in SECTIONS.items() for f in fields(section) if f.metadata.get("help")]


def form_fields():
    """The settings on the Train page's form."""
    return [(name, f) for name, f in settings_fields() if f.metadata["form"]]


def configs(preset: str = "auto", **given) -> tuple[SASRecConfig, TrainConfig]:
    """The model and training configs: the declared defaults, the preset on top, then the
    settings given by field name (None means not given)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose {', '.join(PRESETS)}")
    given = {name: value for name, value in given.items() if value is not None}
    names = {name: section for section, f in settings_fields() for name in [f.name]}
    unknown = set(given) - set(names)
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
    chosen = PRESETS[preset] | given
    return (SASRecConfig(**{k: v for k, v in chosen.items() if names[k] == "model"}),
            TrainConfig(**{k: v for k, v in chosen.items() if names[k] == "train"}))


# The app's runs have a time budget unless the form's field is emptied: someone demoing a model
# wants to know when it will be ready, and on a laptop CPU ten minutes train the published-best
# model on logs of a few hundred thousand events (bench/train_eval.py). Where an epoch is faster
# (a GPU, a small log) the epoch limit ends the run sooner. The command line has no budget unless
# --time-budget gives one, and prints how long its run is likely to take.
APP_TIME_BUDGET_MINUTES = 10.0


def preset_values(preset: str) -> dict:
    """The Train page's form values for a preset, by field name; None where the setting is chosen
    from the data."""
    model, train = configs(preset)
    values = asdict(model) | asdict(train)
    if values["time_budget"] is None:
        values["time_budget"] = APP_TIME_BUDGET_MINUTES
    return {f.name: values[f.name] for _, f in form_fields()}


def flag_name(f) -> str:
    return "--" + (f.metadata["flag"] or f.name).replace("_", "-")


def add_setting_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, named and explained by its declaration; unset flags stay None."""
    for _, f in settings_fields():
        meta = f.metadata
        kind = meta["type"] or type(f.default)
        default = "" if f.default is None else f" (default: {f.default})"
        parser.add_argument(flag_name(f), dest=f.name, type=_argument_type(meta["parse"]) if meta["parse"] else kind,
                            choices=meta["choices"],
                            help=meta["help"] + default)


def _argument_type(parse):
    """A parse function as an argparse type: its ValueError's message is what the user sees."""
    def convert(text):
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from err
    return convert


def given_settings(args: argparse.Namespace) -> dict:
    """The settings a parsed command line gave, by field name."""
    return {f.name: getattr(args, f.name) for _, f in settings_fields() if getattr(args, f.name, None) is not None}


def with_settings(config: RunConfig, **given) -> RunConfig:
    """config with some settings replaced, by field name (a resumed run's new epoch budget, say)."""
    model = {k: v for k, v in given.items() if k in {f.name for f in fields(SASRecConfig)}}
    train = {k: v for k, v in given.items() if k in {f.name for f in fields(TrainConfig)}}
    return replace(config, model=replace(config.model, **model), train=replace(config.train, **train))
