"""``KEY=VALUE`` items on the command line: the one parser behind every such option.

``moebius config resolve --set sample.steps=3``, ``train compare-kd --run exp9=DIR``, ``evaluate
--setting note=x`` and ``report --train-metrics distill=PATH`` all split here, at the first ``=``
only, so a value may hold ``=`` or ``,`` (a path with a comma is a path, not two items). A value is
text, or with ``typed=True`` read as one YAML value with the config files' own loader (``3`` is an
int, ``2e-4`` a float, ``{steps: 3}`` a mapping), so an override means what it would mean in a
config file.
"""

from __future__ import annotations

from typing import Any, Iterable

import yaml

from moebius.config import _Loader
from moebius.errors import ConfigError


def parse_pairs(items: Iterable[str], option: str, *, typed: bool = False, form: str = "KEY=VALUE") -> dict[str, Any]:
    """``["a=1", "b=x=y"]`` → ``{"a": "1", "b": "x=y"}`` (values read as YAML with ``typed``).

    An item without ``=``, with an empty key or value, or a key given twice is a one-line ConfigError
    naming ``option`` (and its ``form``, e.g. ``NAME=RUN_DIR``): each of these is a slip on the command
    line, never an intended setting."""
    pairs: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not value:
            raise ConfigError(f"{option} expects {form}, got {item!r}")
        if key in pairs:
            raise ConfigError(f"{option}: {key!r} given twice")
        pairs[key] = parse_value(value, f"{option} {key}") if typed else value
    return pairs


def parse_value(text: str, where: str) -> Any:
    """One YAML value, read as a config file would read it (``2e-4`` is a float)."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader: no objects
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: {text!r} is not a YAML value ({str(exc).splitlines()[0]})") from None


def overrides(items: Iterable[str], option: str = "--set") -> dict:
    """``["sample.steps=3", "eval={bootstrap: 0}"]`` → ``{"sample": {"steps": 3}, "eval": {…}}``: dotted
    keys become nested mappings, merged over the config files by ``load_config(overrides=…)``."""
    nested: dict = {}
    for key, value in parse_pairs(items, option, typed=True).items():
        *parents, leaf = key.split(".")
        if not leaf or not all(parents):
            raise ConfigError(f"{option}: {key!r} is not a dotted config key")
        node = nested
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{option}: {key!r} sets inside {part!r}, which is also given a value")
            node = child
        if leaf in node:
            raise ConfigError(f"{option}: {key!r} given twice")
        node[leaf] = value
    return nested
