"""Scaling with sequence length: time and memory of DiT (quadratic attention) vs Caduceus (linear scan).

Both backbones are built at the same width and depth on the DNA vocabulary: DiT with 128 hidden units,
4 blocks and 4 heads (attention through SDPA), Caduceus-PS with d_model 128 and 4 layers (bidirectional,
reverse-complement equivariant, pure-torch scan). For each length, one sequence goes through an MDLM
training step (NELBO, backward, AdamW) and through a forward pass in inference mode. Each row runs in its
own process; memory is the growth of peak RSS (CPU) or peak allocation (CUDA) over the model's setup.
Prints the table, writes JSON, and plots both curves on log-log axes (PNG).

    python bench/bench_scaling.py                                  # 1k-32k on CPU, about 10 minutes
    python bench/bench_scaling.py --device cuda --lengths 1024 4096 16384 65536 131072
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from harness import device_description, peak_memory_mib, run_isolated, synchronize, write_json  # noqa: E402

from mdlm_bio.backbones.registry import build_backbone, count_parameters  # noqa: E402
from mdlm_bio.diffusion import LogLinearSchedule, MaskedDiffusion  # noqa: E402
from mdlm_bio.training.data import preset_backbone  # noqa: E402

BACKBONES = {
    "DiT": ("dit-tiny", {"vocab_size": 16, "hidden_size": 128, "n_blocks": 4, "n_heads": 4, "cond_dim": 64}),
    "Caduceus-PS": ("caduceus-tiny", {"d_model": 128, "n_layer": 4}),
}


def measure(backbone: str, length: int, mode: str, device: str, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    preset, overrides = BACKBONES[backbone]
    model = build_backbone({**preset_backbone(preset), **overrides}).to(device)
    engine = MaskedDiffusion(LogLinearSchedule(), mask_id=4)
    tokens = torch.randint(0, 4, (1, length), device=device)
    sigma = engine.schedule.total_noise(torch.full((1,), 0.5, device=device))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else contextlib.nullcontext()

    def run() -> None:
        if mode == "train":
            with autocast:
                loss = engine.loss(lambda z, t: model(z, engine.schedule.total_noise(t)), tokens).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        else:
            with torch.inference_mode(), autocast:
                model(tokens, sigma)

    model.train(mode == "train")
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated() / 2**20
    else:
        baseline = peak_memory_mib(device)
    run()  # warm-up, and the peak
    seconds = float("inf")
    for _ in range(repeats):  # the best of a few: noise on a shared machine only ever adds time
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        seconds = min(seconds, time.perf_counter() - start)
    return {"parameters": count_parameters(model), "seconds": seconds, "tokens_per_s": length / seconds,
            "memory_mib": peak_memory_mib(device) - baseline}


def plot(rows: list[dict], path: Path, device: str) -> None:
    figure, (time_axes, memory_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for colour, backbone in enumerate(BACKBONES):
        for mode, style in (("train", "-o"), ("forward", "--s")):
            points = [r for r in rows if r["backbone"] == backbone and r["mode"] == mode]
            lengths = [r["length"] for r in points]
            label = f"{backbone}, {'training step' if mode == 'train' else 'forward'}"
            line = {"label": label, "color": f"C{colour}", "base": 2}
            time_axes.loglog(lengths, [r["seconds"] for r in points], style, **line)
            memory_axes.loglog(lengths, [max(r["memory_mib"], 1.0) for r in points], style, **line)
    time_axes.set(xlabel="sequence length", ylabel="seconds per sequence", title="time")
    memory_axes.set(xlabel="sequence length", ylabel="peak memory growth, MiB", title="memory")
    time_axes.legend(fontsize=8)
    figure.suptitle(f"DiT vs Caduceus-PS, batch 1, {device}", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384, 32768])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row after a warm-up; the best counts")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default="bench-results/scaling.json")
    parser.add_argument("--plot", type=Path, default=Path("bench/scaling.png"))
    args = parser.parse_args()

    rows = []
    for backbone in BACKBONES:
        for mode in ("train", "forward"):
            for length in args.lengths:
                row = run_isolated(measure, backbone, length, mode, args.device, args.repeats)
                rows.append({"backbone": backbone, "mode": mode, "length": length, **row})
                print(f"{backbone} {mode} L={length}: {row['seconds']:.2f} s, {row['memory_mib']:.0f} MiB", flush=True)
    device = device_description(args.device)
    write_json(args.json, {"device": device, "rows": rows})
    plot(rows, args.plot, device)
    print(f"{'backbone':<13}{'params':>10}{'mode':>9}{'L':>7}{'seconds':>9}{'tokens/s':>10}{'MiB':>8}{'time x':>8}")
    for r in rows:
        first = next(f for f in rows if f["backbone"] == r["backbone"] and f["mode"] == r["mode"])
        print(f"{r['backbone']:<13}{r['parameters']:>10,}{r['mode']:>9}{r['length']:>7}{r['seconds']:>9.2f}"
              f"{r['tokens_per_s']:>10,.0f}{r['memory_mib']:>8,.0f}{r['seconds'] / first['seconds']:>8.1f}")


if __name__ == "__main__":
    main()
