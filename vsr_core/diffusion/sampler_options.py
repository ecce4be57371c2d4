"""What a registered sampler is, and how its keyword options are checked (the table is in samplers.py).

A sampler's options are plain keyword arguments with defaults (k-diffusion's
`sample_<name>(..., eta=1.0)` style). Some shape the schedule its process
builds (ResShift's kappa), the rest go to the sampler function itself (DDIM's
eta). Values may come as text ("eta=0.5" on the command line): each is
converted to the type of its default, then range- and choice-checked, so a
bad value is one InputError before any model is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from ..errors import InputError
from ..numbers import check_finite_setting

OptionValue = float | int | str


@dataclass(frozen=True)
class SamplerOption:
    default: OptionValue
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None      # inclusive bounds
    maximum: float | None = None

    def convert(self, value, name: str) -> OptionValue:
        """`value` (or its text) as the default's type, checked; InputError naming the option otherwise."""
        kind = type(self.default)
        if isinstance(value, str) and kind is not str:
            try:
                value = kind(value)
            except ValueError:
                raise InputError(f"sampler option {name}={value!r}; expected a {kind.__name__}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else kind):
            raise InputError(f"sampler option {name}={value!r}; expected a {kind.__name__}")
        value = kind(check_finite_setting(value, f"sampler option {name}"))
        if self.choices and value not in self.choices:
            raise InputError(f"sampler option {name}={value!r}; expected one of {', '.join(self.choices)}")
        if self.minimum is not None and value < self.minimum:
            raise InputError(f"sampler option {name}={value}; expected at least {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise InputError(f"sampler option {name}={value}; expected at most {self.maximum}")
        return value


@dataclass(frozen=True)
class SamplerEntry:
    """One sampler: its function (samplers.py's one signature), the process it runs in, its default
    steps and its options.

    process: "ddpm" (starts from the LR latent noised to the last training step, reads the network as
    its prediction) or "resshift" (starts from the prior around the LR latent, reads the network as
    x0); pipeline/guided_sample.py builds the schedule, start and network reading of each.
    process_options go to that schedule, options to `function`. check(steps, options) raises
    InputError for a combination the single options allow but the sampler does not.
    """

    function: Callable[..., torch.Tensor]
    process: str
    steps: int
    help: str
    options: dict[str, SamplerOption] = field(default_factory=dict)
    process_options: dict[str, SamplerOption] = field(default_factory=dict)
    check: Callable[[int, dict], object] | None = None

    @property
    def all_options(self) -> dict[str, SamplerOption]:
        return {**self.process_options, **self.options}

    def resolve(self, name: str, steps: int, given: Mapping) -> dict[str, OptionValue]:
        """Every option of this sampler: `given` (converted and checked) over the defaults."""
        known = self.all_options
        unknown = sorted(set(given) - set(known))
        if unknown:
            takes = ", ".join(known) or "no options"
            raise InputError(f"sampler {name!r} has no option {', '.join(unknown)}; it takes {takes}")
        options = {k: opt.convert(given[k], k) if k in given else opt.default for k, opt in known.items()}
        if self.check is not None:
            self.check(steps, options)
        return options

    def split(self, options: Mapping) -> tuple[dict, dict]:
        """(the schedule's options, the function's options) of a resolved option set."""
        return ({k: options[k] for k in self.process_options}, {k: options[k] for k in self.options})

    def describe(self) -> str:
        opts = ", ".join(f"{k}={o.default}" for k, o in self.all_options.items())
        return f"{self.help}" + (f" (options: {opts})" if opts else "")


def parse_assignments(texts) -> dict[str, str]:
    """{'eta': '0.5'} of ['eta=0.5', ...] (the command line's --sampler-option); values stay text."""
    out = {}
    for text in texts:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise InputError(f"sampler option {text!r}; expected NAME=VALUE, e.g. eta=0.5")
        out[name.strip()] = value.strip()
    return out
