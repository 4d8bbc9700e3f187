"""An autoregressive model (the baseline) behind the model handle: left-to-right sampling and exact NLLs.

Its samples slide a window of the context past it; diffusion samplers' settings do not apply, except the nucleus
threshold `top_p`, which any sampler may carry. It cannot infill (it conditions on the left only) or be guided.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from ..diffusion.denoiser import SampleOutput
from ..diffusion.sampler import Sampler
from ..diffusion.stopping import StopRule
from ..dna.autoregressive import sample_autoregressive, score_autoregressive
from ..dna.variants import nll_difference
from ..likelihood import Estimate, Nll
from .handle import Conditioning, Model, ModelMismatchError, cut


class AutoregressiveModel(Model):
    kind: ClassVar[str] = "ar"
    kind_name: ClassVar[str] = "autoregressive"
    snv_method: ClassVar[str] = "nll-difference"
    window_method: ClassVar[str] = "nll-difference"
    score_name: ClassVar[str] = "nll_nats"

    @torch.no_grad()
    def sample(self, sampler: Sampler, *, num: int, length: int, seed: int | torch.Generator, batch_size: int,
               prompt: np.ndarray | None = None, start_token: int | None = None,
               condition: Conditioning = Conditioning(), stop: StopRule | None = None,
               progress: Callable[[int], None] | None = None) -> SampleOutput:
        """Without a prompt, from `start_token` (kept as the first token) or, without one either, from a first
        token drawn uniformly from those it may emit (a DNA window's first base, which it never learnt to predict)."""
        if condition.label is not None:
            raise ModelMismatchError(f"{self.source} holds an autoregressive model; class-conditional sampling and "
                                     f"guidance need a class-conditional masked-diffusion (mdlm) model")
        if prompt is None and start_token is not None:
            prompt = np.array([start_token])
        start = None if prompt is None else torch.as_tensor(np.asarray(prompt, dtype=np.int64))
        out = sample_autoregressive(self.network.causal_network, num=num, length=length, context=self.context,
                                    prompt=start, top_p=_top_p(sampler), seed=seed, batch_size=batch_size,
                                    device=self.device, progress=progress)
        return cut(out, stop)

    def describe_sampling(self, sampler: Sampler) -> str:
        top_p = _top_p(sampler)
        return "sampler=autoregressive" + ("" if top_p is None else f" top_p={top_p:g}")

    def infill(self, tokens: np.ndarray, fill: np.ndarray, sampler: Sampler, seed: int) -> SampleOutput:
        raise ModelMismatchError(f"{self.source} holds an autoregressive model; infill needs a masked-diffusion (mdlm) "
                                 f"model: a causal model conditions on the bases to the left only, so it cannot fill "
                                 f"a gap from both sides")

    def score(self, tokens: np.ndarray, mc: int, seed: int) -> Nll:
        return score_autoregressive(self.network.causal_network, tokens, self.context, self.device)

    @torch.no_grad()
    def nll(self, tokens: Tensor, attention_mask: Tensor, generator: torch.Generator, draws: int,
            discrete_steps: int | None) -> tuple[float, int]:
        out = self.network.objective(tokens, attention_mask, generator)
        return float(out.total), int(out.num_tokens)

    def snv_log_ratios(self, windows: np.ndarray, sites: np.ndarray, alt: np.ndarray, both_strands: bool) -> np.ndarray:
        changed = np.array(windows, copy=True)
        changed[np.arange(len(changed)), sites] = alt
        return np.array([self.window_log_ratio(ref, new, (0, 0), 1, 0, both_strands).value
                         for ref, new in zip(windows, changed)], dtype=np.float64)

    def window_log_ratio(self, ref: np.ndarray, alt: np.ndarray, flanks: tuple[int, int], mc: int, seed: int,
                         both_strands: bool) -> Estimate:
        """Exact: `flanks`, `mc` and `seed` do not apply."""
        return nll_difference(self.network.causal_network, ref, alt, self.context, self.device, both_strands)


def _top_p(sampler: Sampler) -> float | None:
    return getattr(sampler, "top_p", None)
