"""How close the pre-allocation memory estimate (mdlm_bio/memory.py) comes to what a training step really uses.

Per row, in its own process: build the model, take the estimate the way `mdlm-bio train` does (a probe of up to
256 tokens, scaled), then run one real forward + backward at the full batch and length and measure the growth of
the process's peak memory (RSS on CPU, allocated bytes on CUDA) over the state before it. The ratio estimate /
measured is what matters: above 1 the check errs toward refusing, below 1 toward letting a request through.

    python bench/bench_memory_estimate.py
    python bench/bench_memory_estimate.py --rows caduceus-ps:1:8192 dit-small:4:1024 --device cuda
"""

from __future__ import annotations

import argparse

import torch
from harness import device_description, peak_memory_mib, run_isolated, write_json

from mdlm_bio.memory import activation_bytes, probe_length, scaled
from mdlm_bio.training.config import load_config, to_plain
from mdlm_bio.training.data import DNA_VOCABULARY
from mdlm_bio.training.module import DiffusionLM
from mdlm_bio.training.run import model_spec, training_settings
from mdlm_bio.training.settings import Vocabulary, run_settings

CPU_ROWS = ["caduceus-tiny:16:128", "caduceus-tiny:4:4096", "caduceus-ps:1:1024", "caduceus-ps:1:4096", "dit-tiny:8:256",
            "dit-small:2:1024"]


def measure(preset: str, batch: int, length: int, device: str) -> dict[str, float]:
    torch.manual_seed(0)
    text = preset.startswith("dit")
    settings = run_settings(to_plain(load_config("demo", [f"model.preset={preset}"])))
    vocabulary = Vocabulary(50258, mask_id=50257) if text else DNA_VOCABULARY  # the GPT-2 vocabulary with [MASK]
    module = DiffusionLM(model_spec(settings, vocabulary, "text" if text else "dna"), training_settings(settings))
    module.to(device).train()
    token = 7
    generator = torch.Generator(device).manual_seed(0)
    tokens = torch.full((batch, length), token, device=device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    before = peak_memory_mib(device)  # the real step first: memory the probe freed would hide its growth
    module.objective(tokens, None, generator).loss.backward()
    measured = (peak_memory_mib(device) - before) * 2**20
    module.zero_grad(set_to_none=True)
    probe = torch.full((1, probe_length(length)), token, device=device)
    probed = activation_bytes(lambda: module.objective(probe, None, generator).loss,
                              [*module.parameters(), *module.buffers(), probe])
    estimate = scaled(probed, probe.numel(), batch * length)
    return {"estimate_mib": estimate / 2**20, "measured_mib": measured / 2**20, "ratio": estimate / max(measured, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=CPU_ROWS, metavar="PRESET:BATCH:LENGTH")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default="bench-results/memory_estimate.json")
    args = parser.parse_args()
    rows = []
    for spec in args.rows:
        preset, batch, length = spec.split(":")
        row = run_isolated(measure, preset, int(batch), int(length), args.device)
        rows.append({"preset": preset, "batch": int(batch), "length": int(length), **row})
    write_json(args.json, {"device": device_description(args.device), "rows": rows})
    print(f"{device_description(args.device)}; one training forward + backward per row, each in its own process")
    print(f"{'preset':<15}{'batch':>6}{'length':>8}{'estimate MiB':>14}{'measured MiB':>14}{'ratio':>7}")
    for r in rows:
        print(f"{r['preset']:<15}{r['batch']:>6}{r['length']:>8}{r['estimate_mib']:>14,.0f}{r['measured_mib']:>14,.0f}"
              f"{r['ratio']:>7.2f}")


if __name__ == "__main__":
    main()
