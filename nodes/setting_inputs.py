"""Node inputs made from settings declarations (vsr_core.settings, through vsr_core.api): a setting's
type, default, range, step, choices and help become the widget, its former input names RENAMED_INPUTS.
Inputs keep the order a node lists them in: saved UI workflows hold widget values by position."""
from __future__ import annotations

from vsr_core.api import leaf, value_type

WIDGETS = {int: "INT", float: "FLOAT", bool: "BOOLEAN", str: "STRING"}


def setting_input(defaults, name: str, tooltip_extra: str = "", choices: list | None = None,
                  **overrides) -> tuple:
    """The (type, options) of the setting called ``name`` in the settings object ``defaults`` (whose value is
    the widget's default); ``choices``: a list to pick from where the setting takes any value in a range
    (clean: auto or 0..1); ``overrides`` replace options (e.g. a default of this node's own)."""
    item = leaf(defaults, name)
    s = item.setting
    tooltip = s.help[:1].upper() + s.help[1:] + "." + (" " + tooltip_extra if tooltip_extra else "")
    options = {"default": item.value, "tooltip": tooltip}
    if s.choices is not None or choices is not None:
        return list(choices or s.choices), {**options, **overrides}
    kind = WIDGETS[value_type(item.field)]
    if kind in ("INT", "FLOAT"):
        options.update(min=s.min, max=s.max)
        if s.step is not None:
            options["step"] = s.step
    return kind, {**options, **overrides}


def setting_inputs(defaults, *names: str) -> dict:
    """``setting_input`` for each name, in this order."""
    return {name: setting_input(defaults, name) for name in names}


def renamed_inputs(defaults, *names: str) -> dict:
    """{former input name: name} of these settings (for the headless runner and old API prompts)."""
    return {old: name for name in names for old in leaf(defaults, name).setting.old_inputs}
