"""One handle on a loaded model, whatever its kind: everything the tasks ask of a model.

`load_model` (loading.py) returns a `Model`; masked diffusion (diffusion_model.py) and autoregressive models
(autoregressive_model.py) are its two implementations, so no task asks which kind it holds. A kind that cannot do
something (an autoregressive model infilling a gap) refuses in its own implementation, with the reason.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import torch
from torch import Tensor

from ..backbones.caduceus import Caduceus, strand_features
from ..diffusion.denoiser import SampleOutput
from ..diffusion.process import make_generator
from ..diffusion.sampler import Sampler
from ..diffusion.stopping import StopRule
from ..errors import CheckpointError
from ..likelihood import Estimate, Nll
from ..memory import check_fits
from .network import LanguageModel
from .spec import ModelSpec

if TYPE_CHECKING:
    from ..diffusion.chain_guidance import NoisyClassifier


class ModelMismatchError(CheckpointError):
    """A model this command cannot use: another track's, or a kind that cannot do what was asked."""


class GuideClassifier(Protocol):
    """A noisy-input classifier as a model asks for it (training/noisy_classifier.py makes one): its class names,
    and itself as guidance of a generator with a given engine (refusing another process's)."""

    classes: list[str]

    def reading(self, engine: Any) -> NoisyClassifier: ...


@dataclass(frozen=True)
class Conditioning:
    """How samples are conditioned: a class (`label`, None for none) and the guidance weight toward it, and the
    FASTA header words that say so. With a `guide` (a noisy-input classifier, whose class index `label` is) the
    guidance is classifier-based (D-CBG), from exact change scores or, `first_order`, from one gradient;
    without one it is classifier-free."""

    label: int | None = None
    weight: float = 1.0
    words: str = ""
    guide: NoisyClassifier | None = None
    first_order: bool = False


class Model(ABC):
    """A loaded model in eval mode on its device, and the facts that belong to it (mask id, context, tokenizer,
    classes), read once from its checkpoint or stated by its importer."""

    kind: ClassVar[str]  # the objective it was trained with: "mdlm", "ar", "bd3" or "mlm"
    kind_name: ClassVar[str]  # the kind in words, for messages

    def __init__(self, network: LanguageModel, source: str, name: str, config: dict[str, Any] | None = None,
                 caveat: str | None = None) -> None:
        self.network, self.source, self.name = network, source, name
        self.config = config  # the run config it was trained with (ours), a record of how
        self.caveat = caveat  # what a user should know before reading its outputs (a published model's)

    @property
    def spec(self) -> ModelSpec:
        return self.network.spec

    @property
    def mask_id(self) -> int:
        return self.spec.mask_id

    @property
    def context(self) -> int:
        """The window (DNA) or block (text) length the model was trained on."""
        return self.spec.context

    @property
    def tokenizer(self) -> str | None:
        """The text tokenizer it was trained with (None for DNA)."""
        return self.spec.tokenizer

    @property
    def device(self) -> torch.device:
        return self.network.output_allowed.device

    @property
    def description(self) -> str:
        """What a FASTA header or a results table says the samples or scores came from."""
        return f"{self.name} {self.kind} ({self.source})"

    @property
    def strand_symmetric(self) -> bool:
        """Scores are the same on either strand by construction (Caduceus-PS as a masked model), so one suffices."""
        return False

    def require_track(self, track: str, command: str) -> Model:
        if self.spec.track != track:
            raise ModelMismatchError(f"{self.source} holds a {self.spec.track} model; {command} needs a {track} model")
        return self

    @property
    def classes(self) -> list[str]:
        """Class names of a class-conditional model (empty for an unconditional one)."""
        return list(self.spec.classes)

    def class_index(self, name: str) -> int:
        """A class given by name (or by its index, as a string) -> its label index."""
        if not self.classes:
            raise ValueError(f"{self.source} holds an unconditional model; --class needs one trained on labelled "
                             f"data (mdlm-bio train conditional)")
        if name in self.classes:
            return self.classes.index(name)
        if name.isdigit() and int(name) < len(self.classes):
            return int(name)
        raise ValueError(f"unknown class {name!r}; this model knows {self.classes}")

    def check_memory(self, batch: int, length: int, outputs: int, request: str, smaller: str,
                     ignore_memory_limit: bool) -> None:
        """Refuse, before the long part, work whose estimated memory exceeds what the device has free."""
        if not ignore_memory_limit:
            check_fits(lambda: self.network.inference_memory(batch, length, outputs), self.device, request, smaller,
                       "--ignore-memory-limit")

    def conditioning(self, class_label: str | None, guidance: float | None,
                     classifier: GuideClassifier | None = None, first_order: bool = False) -> Conditioning:
        """The conditioning `--class` and the guidance weight ask for (both None: the model's unconditional
        samples), classifier-free or, with a noisy-input `classifier`, classifier-based; only diffusion models
        (masked or uniform-state) have any other."""
        if class_label is not None or guidance is not None or classifier is not None:
            raise ValueError(f"--class and --guidance need a class-conditional diffusion model; this one is "
                             f"{self.kind_name}")
        return Conditioning()

    @torch.no_grad()
    def embed(self, tokens: np.ndarray, conjoin: bool, positions: np.ndarray | None = None) -> np.ndarray:
        """Per-position embeddings [B, L, D] (float32) of clean sequences [B, L] of one length (no padding, which a
        bidirectional model would read): the backbone's final normed features, forward strand or both strands
        averaged (`conjoin`). `positions` [K] keeps only those rows ([B, K, D]; repeats allowed), chosen on the
        device so a long window's other rows never leave it. Every DNA kind has them; the text DiT refuses."""
        backbone = self.network.backbone
        if not isinstance(backbone, Caduceus):
            raise ModelMismatchError(f"{self.source}: embed reads a DNA backbone's features (caduceus); this model's "
                                     f"backbone is {self.spec.backbone.get('architecture')}")
        ids = torch.as_tensor(np.asarray(tokens, dtype=np.int64), device=self.device)
        features = strand_features(backbone, ids, conjoin)
        if positions is not None:
            features = features[:, torch.as_tensor(positions, device=features.device)]
        return features.float().cpu().numpy()

    def require_masked_sampler(self, sampler: Sampler) -> None:
        """A masked-diffusion kind refuses a sampler of another process, naming the one it needs."""
        if sampler.process != "masked":
            raise ModelMismatchError(f"{self.source} holds a {self.kind_name} model; --sampler {sampler.name} samples "
                                     f"{sampler.process}-noise models: choose a masked-diffusion sampler")

    def on(self, device: torch.device | str) -> Model:
        """The same model with its own copy of the weights on `device`: one per worker when a job spreads across
        devices (score-variants --device cuda:0,cuda:1)."""
        clone = copy.copy(self)
        clone.network = copy.deepcopy(self.network).to(device).eval()
        return clone

    def random_source(self, seed: int, saved: str | None = None) -> torch.Generator:
        """A generator on the model's device for `sample` to draw from batch after batch: seeded, or where a
        stopped job left it (`saved`, from `saved_state`). Drawing N samples a batch at a time from one generator
        gives the same samples as one call for all N."""
        generator = make_generator(seed, self.device)
        if saved is not None:
            generator.set_state(torch.frombuffer(bytearray(base64.b64decode(saved)), dtype=torch.uint8))
        return generator

    @staticmethod
    def saved_state(generator: torch.Generator) -> str:
        """A generator's state as text a job's state file can hold."""
        return base64.b64encode(generator.get_state().numpy().tobytes()).decode("ascii")

    # ------------------------------------------------------------------ what each kind implements

    @abstractmethod
    def sample(self, sampler: Sampler, *, num: int, length: int, seed: int | torch.Generator, batch_size: int,
               prompt: np.ndarray | None = None, start_token: int | None = None,
               condition: Conditioning = Conditioning(), stop: StopRule | None = None,
               progress: Callable[[int], None] | None = None) -> SampleOutput:
        """`num` sequences [num, length] on the CPU, continuing the 1-D `prompt` if given, drawn from a generator
        seeded with `seed` (or from `seed` itself when it is one: `random_source`); `progress(n)` is told
        of new tokens as they are drawn. `start_token` is the token every training block began with (a text
        tokenizer's BOS): where a kind needs a first token to condition on, it starts there. `stop` gives the
        samples variable lengths (`lengths` of the output): a block diffusion model stops generating there, the
        others cut their whole samples where it says."""

    @abstractmethod
    def describe_sampling(self, sampler: Sampler) -> str:
        """How `sample` draws with `sampler`, as key=value words."""

    @abstractmethod
    def infill(self, tokens: np.ndarray, fill: np.ndarray, sampler: Sampler, seed: int) -> SampleOutput:
        """Resample the positions of 1-D `tokens` where `fill` is True, keeping the others (tokens come back 1-D)."""

    @abstractmethod
    def score(self, tokens: np.ndarray, mc: int, seed: int) -> Nll:
        """-log p of a DNA record in nats, window by window of the context (N positions are context, not scored):
        a NELBO from `mc` noise draws per window, or an exact NLL."""

    @property
    @abstractmethod
    def score_name(self) -> str:
        """The column `score` fills: nelbo_nats or nll_nats."""

    @abstractmethod
    def nll(self, tokens: Tensor, attention_mask: Tensor, generator: torch.Generator, draws: int,
            discrete_steps: int | None) -> tuple[float, int]:
        """(summed NELBO or NLL in nats, scored tokens) of a batch of text blocks, averaged over `draws` noise
        draws for diffusion; the NELBO in continuous time or in `discrete_steps` steps."""

    @abstractmethod
    def snv_log_ratios(self, windows: np.ndarray, sites: np.ndarray, alt: np.ndarray, both_strands: bool) -> np.ndarray:
        """log p(alt) - log p(ref) of single-base changes to tokens `alt` [B] at `sites` [B] of reference `windows`
        [B, L], in float64 nats; with `both_strands`, averaged over the two strands."""

    @property
    @abstractmethod
    def snv_method(self) -> str:
        """How `snv_log_ratios` scores (for the output's METHOD field)."""

    @abstractmethod
    def window_log_ratio(self, ref: np.ndarray, alt: np.ndarray, flanks: tuple[int, int], mc: int, seed: int,
                         both_strands: bool) -> Estimate:
        """log p(alt window) - log p(ref window) for a change of any size; the 1-D windows share `flanks` bases at
        each end."""

    @property
    @abstractmethod
    def window_method(self) -> str:
        """How `window_log_ratio` scores."""


def cut(out: SampleOutput, stop: StopRule | None) -> SampleOutput:
    """Whole samples with the lengths `stop` gives them (unchanged without a rule)."""
    return out if stop is None else dataclasses.replace(out, lengths=stop.lengths(out.tokens))


class WithoutVariantScores:
    """For kinds that cannot score variants yet: score-variants refuses them with the reason (a Model mixin, first
    among the bases so that its refusals stand)."""

    source: str
    kind_name: str

    def snv_log_ratios(self, windows: np.ndarray, sites: np.ndarray, alt: np.ndarray, both_strands: bool) -> np.ndarray:
        raise self._no_variant_scores()

    def window_log_ratio(self, ref: np.ndarray, alt: np.ndarray, flanks: tuple[int, int], mc: int, seed: int,
                         both_strands: bool) -> Estimate:
        raise self._no_variant_scores()

    def _no_variant_scores(self) -> ModelMismatchError:
        return ModelMismatchError(f"{self.source} holds a {self.kind_name} model; score-variants does not score with "
                                  f"it yet (use `score` for whole-window NELBOs, or an mdlm or ar model)")
