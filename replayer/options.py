"""Declaring a command-line option once: one dataclass field carries its help, its invoker-style
alias, its short flag and its environment variable; `replayer.cli` derives the parser from it.

    workers: int = opt(0, "worker processes (0: one per usable CPU)", alias="workers")

gives --workers, -workers (Go flag style, as the vSwarm invoker spells it) and REPLAYER_WORKERS.
Environment variables belong to the command they name: `replayer run`'s are REPLAYER_<FIELD>
(as documented since the start), every other command's REPLAYER_<COMMAND>_<FIELD>
(REPLAYER_REPORT_OUT, REPLAYER_GEN_AZURE_SEED), so a variable set for a run never steers a
report or an export. Library code takes these dataclasses as plain config objects and never
reads argv or env.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

_TRUE = {"1", "t", "true", "yes", "y", "on"}
_FALSE = {"0", "f", "false", "no", "n", "off"}


def parse_bool(text: str) -> bool:
    """Go flag rules for booleans: -min, -min=true, -min false, -min=0 ..."""
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean (use true or false)")


parse_bool.__name__ = "boolean"


def opt(default: Any = dataclasses.MISSING, help: str = "", *, alias: str | None = None,
        short: str | None = None, type: Callable | None = None, choices=None, metavar=None,
        env: bool = True, action: str | None = None, default_factory=dataclasses.MISSING,
        positional: bool = False, group: str | None = None, env_var: str | None = None) -> Any:
    """group: the heading the option is listed under in --help (one of the options class's
    `option_groups`). env_var: a variable name of its own instead of the derived one, for the
    variables of a tool users come from (EXPERIMENT_ID); as in such tools, an empty value
    counts as unset."""
    meta = {"help": help, "alias": alias, "short": short, "type": type, "choices": choices,
            "metavar": metavar, "env": env, "action": action, "positional": positional,
            "group": group, "env_var": env_var}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_names(field: dataclasses.Field) -> list[str]:
    """--long-name, then -alias and --alias (Go's flag package takes both), then -s."""
    meta = field.metadata
    names = [f"--{field.name.replace('_', '-')}"]
    alias = meta.get("alias")
    if alias:
        for spelling in (f"-{alias}", f"--{alias}"):
            if spelling not in names:
                names.append(spelling)
    if meta.get("short"):
        names.append(f"-{meta['short']}")
    return names


ENV_PREFIX = "REPLAYER_"
# The command whose variables keep the bare prefix (REPLAYER_WORKERS, REPLAYER_OUT).
BARE_PREFIX_COMMAND = "run"


def env_prefix(command: str) -> str:
    """REPLAYER_ for `run`, REPLAYER_<COMMAND>_ for the others ("gen azure": REPLAYER_GEN_AZURE_)."""
    if command == BARE_PREFIX_COMMAND:
        return ENV_PREFIX
    return f"{ENV_PREFIX}{'_'.join(command.upper().replace('-', '_').split())}_"


def env_name(command: str, field: dataclasses.Field) -> str:
    """The environment variable of `field` for `command` (the subcommand's words), or the
    field's own (opt's env_var)."""
    return field.metadata.get("env_var") or f"{env_prefix(command)}{field.name.upper()}"
