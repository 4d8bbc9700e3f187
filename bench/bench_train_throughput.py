"""Training throughput: tokens/s, peak memory and MFU of MDLM training steps for DiT and Caduceus presets.

Each row runs twice: with the loss at the masked positions only (the output layer, SUBS and cross-entropy
where the loss has terms, as training does) and with logits at every position (the earlier path, the
baseline); the ratios are between the two, measured in the same run.

One step is the engine's NELBO loss, backward and AdamW, on random tokens (fp32 on CPU, bf16 autocast on
GPU). Model FLOPs per step are 3x the forward FLOPs (backward = 2x forward, the usual convention) that
torch's FlopCounterMode counts in one forward pass of the path that runs (so the masked-positions loss
is not credited with the output-layer FLOPs it skips): matmuls, convolutions, and attention (run through
the math kernel for the count, since the fused kernels have no CPU formula), with weight-tied and
reverse-complement passes counted as often as they run. The selective scan's elementwise work is not
counted, which understates Caduceus. MFU divides the achieved model FLOP/s by this machine's matmul
rate measured in the same run, in the same dtype. Each row runs in its own process, so its peak memory
is its own.

    python bench/bench_train_throughput.py                      # CPU defaults, a few minutes on 2 cores
    python bench/bench_train_throughput.py --device cuda --tokens 65536 \\
        --rows dit-small:1024 dit-small:4096 caduceus-ps:1024 caduceus-ps:131072
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from harness import device_description, matmul_flops_per_second, peak_memory_mib, run_isolated, synchronize, write_json
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from mdlm_bio.backbones.registry import build_backbone, count_parameters
from mdlm_bio.diffusion import LogLinearSchedule, MaskedDiffusion
from mdlm_bio.training.data import preset_backbone

CPU_ROWS = ["dit-tiny:256", "dit-small:256", "caduceus-tiny:1024", "caduceus-ps:1024"]


def measure(preset: str, length: int, tokens_per_step: int, steps: int, device: str,
            masked_only: bool = True) -> dict[str, float]:
    """One row: `masked_only` computes the output layer and the loss at the masked positions only (what
    training does), otherwise logits everywhere (the path before issue 21, kept as the baseline)."""
    torch.manual_seed(0)
    config = preset_backbone(preset)
    model = build_backbone(config).to(device).train()
    mask_id = config["vocab_size"] - 1
    engine = MaskedDiffusion(LogLinearSchedule(), mask_id=mask_id)
    batch = max(1, tokens_per_step // length)
    tokens = torch.randint(0, mask_id, (batch, length), device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda")
                else contextlib.nullcontext())
    noise = engine.schedule.total_noise
    logits_at = (lambda z, t, positions: model.logits_at(z, noise(t), positions)) if masked_only else None

    def loss(generator: torch.Generator | None = None) -> torch.Tensor:
        with autocast:
            return engine.loss(lambda z, t: model(z, noise(t)), tokens, generator=generator, logits_at=logits_at).loss

    def step() -> None:
        loss().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # the FLOPs of the path that runs (the masked-only one skips the output layer at unmasked positions)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        loss(torch.Generator(device=device).manual_seed(0))
    step()  # warm-up
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    seconds = (time.perf_counter() - start) / steps
    return {"parameters": count_parameters(model), "batch": batch, "step_s": seconds,
            "tokens_per_s": batch * length / seconds, "flops_per_step": 3 * counter.get_total_flops(),
            "peak_mib": peak_memory_mib(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=CPU_ROWS, metavar="PRESET:LENGTH")
    parser.add_argument("--tokens", type=int, default=2048, help="tokens per step (batch = tokens // length)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per row, after one warm-up")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default="bench-results/train_throughput.json")
    args = parser.parse_args()

    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    peak_rate = matmul_flops_per_second(args.device, dtype)
    rows = []
    for spec in args.rows:
        preset, length = spec.rsplit(":", 1)
        for masked_only in (False, True):
            row = run_isolated(measure, preset, int(length), args.tokens, args.steps, args.device, masked_only)
            row.update(preset=preset, length=int(length), loss="masked positions" if masked_only else "full logits",
                       mfu=row["flops_per_step"] / row["step_s"] / peak_rate)
            rows.append(row)
    device = device_description(args.device)
    write_json(args.json, {"device": device, "dtype": str(dtype), "matmul_flops_per_s": peak_rate, "rows": rows})
    print(f"{device}; {dtype}; measured matmul rate {peak_rate / 1e9:.1f} GFLOP/s; {args.tokens} tokens per step")
    print("| preset | params | L | batch | loss | tokens/s | x full | GFLOP/step | MFU | peak MiB | x full |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for full, r in ((rows[i - (i % 2)], rows[i]) for i in range(len(rows))):
        print(f"| {r['preset']} | {r['parameters']:,} | {r['length']} | {r['batch']} | {r['loss']} | "
              f"{r['tokens_per_s']:,.0f} | {r['tokens_per_s'] / full['tokens_per_s']:.2f} | "
              f"{r['flops_per_step'] / 1e9:.1f} | {r['mfu']:.1%} | {r['peak_mib']:,.0f} | "
              f"{r['peak_mib'] / full['peak_mib']:.2f} |")


if __name__ == "__main__":
    main()
