"""What `--guidance`, `--weight`, `--noisy-classifier` and `--first-order` ask for together, checked before a model
loads: classifier-free guidance (cfg) of a class-conditional model, or classifier-based guidance (cbg) by a
noisy-input classifier."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..training.noisy_classifier import NoisyInputClassifier


@dataclass(frozen=True)
class GuidanceChoice:
    method: str  # "cfg" or "cbg"
    weights: tuple[float, ...] | None  # None: the command's default
    noisy_classifier: Path | None = None
    first_order: bool = False

    def load_classifier(self, device: str) -> NoisyInputClassifier | None:
        """The noisy-input classifier cbg guides with (None for cfg)."""
        if self.noisy_classifier is None:
            return None
        from ..training.noisy_classifier import load_noisy_classifier

        return load_noisy_classifier(self.noisy_classifier, device)


def guidance_choice(guidance: Sequence[str | float], weights: Sequence[float] | None, noisy_classifier: Path | None,
                    first_order: bool) -> GuidanceChoice:
    """`guidance`: the --guidance values given (a method name, or the older form: cfg weights as numbers)."""
    methods = [value for value in guidance if isinstance(value, str)]
    numbers = [float(value) for value in guidance if not isinstance(value, str)]
    if len(methods) > 1 or (methods and numbers):
        raise ValueError("--guidance takes one method, cfg or cbg (or, as before, classifier-free guidance weights)")
    if numbers and weights is not None:
        raise ValueError(f"--guidance {numbers[0]:g} means --guidance cfg --weight {numbers[0]:g}; give the weight once")
    method = methods[0] if methods else "cfg"
    if method == "cbg" and noisy_classifier is None:
        raise ValueError("--guidance cbg needs --noisy-classifier (mdlm-bio train-classifier --generator MODEL makes "
                         "one)")
    if method == "cfg" and (noisy_classifier is not None or first_order):
        raise ValueError("--noisy-classifier and --first-order are settings of --guidance cbg")
    chosen = numbers or weights
    return GuidanceChoice(method, None if chosen is None else tuple(chosen), noisy_classifier, first_order)

