"""How a setting is declared: once, on its config dataclass, with what the CLI and the Train
page need to offer it. config.py derives the command-line flags and the form from these."""

from dataclasses import field


def setting(default, help: str, *, flag: str | None = None, label: str | None = None, form: bool = False,
            choices: tuple | None = None, low=None, high=None, step=None, type=None, parse=None):
    """A dataclass field with its help text. `flag` renames its CLI flag (num_blocks -> --blocks);
    `form` puts it on the Train page as `label`, within [low, high]; `type` is needed when the
    default (None: chosen from the data) does not say it; `parse` reads the flag's text when
    that is not just the type's (a duration, '10m')."""
    meta = {"help": help, "flag": flag, "label": label, "form": form, "choices": choices, "low": low, "high": high,
            "step": step, "type": type, "parse": parse}
    return field(default=default, metadata=meta)
