"""GPU acceptance: one command that runs the paths a GPU user runs first, checks them and measures them.

    python bench/gpu_acceptance.py                         # needs CUDA; about 5 minutes on one H100/H200
    python bench/gpu_acceptance.py --out-dir bench-results/gpu --max-length 65536

1. flash-attn vs SDPA: logits and every gradient of dit-small in bf16 (relative error of each tensor); and block
   diffusion's training pass with FlexAttention's block mask vs SDPA's dense mask, the same way.
2. mamba-ssm and causal-conv1d kernels vs the torch scan: the selective scan at Caduceus-PS shapes (E 512, N 16),
   L = 1k and 8k, forward and backward in float32, with both timed; a whole caduceus-ps forward and backward in bf16.
3. bf16 training steps: dit-small and caduceus-ps at L = 1k, and caduceus-ps at the longest L that fits (doubling
   from 2k, batch 1): tokens/s, MFU against the bf16 matmul rate measured in this run, peak memory.
4. End to end on cuda: `mdlm-bio train demo` then `mdlm-bio sample`; FSDP on one GPU for a few steps, then resumed.
5. With two or more GPUs: DDP across all of them, and FSDP with its loss compared with DDP's.

Each check is a row of gpu_acceptance.json and gpu_acceptance.md: pass, fail (with the error) or skipped (with the
reason); one failing check does not stop the others. The exit status is 1 if any check failed. Without CUDA it says
so and exits 0; `--allow-cpu` runs every check at toy sizes on the CPU instead, to try the script itself.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from bench_train_throughput import measure
from harness import device_description, environment_variable, matmul_flops_per_second, run_isolated, synchronize, write_json

from mdlm_bio.backbones import build_backbone
from mdlm_bio.backbones.kernels import (
    causal_conv1d_kernel,
    flash_attention_kernel,
    flex_attention_kernel,
    kernels_apply,
    selective_scan_kernel,
)
from mdlm_bio.backbones.scan import selective_scan_torch
from mdlm_bio.dna.tokenizer import MASK
from mdlm_bio.training.data import preset_backbone

# Tolerances, as the relative norm of the difference, ||kernel - torch|| / ||torch||, per tensor (logits and each
# gradient). bf16: both paths round every activation to 8 bits of mantissa, so they differ by a few 1e-3 per layer;
# float32: the kernels' own arithmetic (fast exp, other summation orders), well below 1e-4 in mamba-ssm's tests.
BF16_TOLERANCE = 5e-2
FLOAT32_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Sizes:
    """What each check runs at: the real presets on a GPU, toy ones when trying the script on a CPU."""

    attention_preset: str
    attention_batch: int
    attention_length: int
    scan_inner: int
    scan_state: int
    scan_lengths: tuple[int, ...]
    caduceus_preset: str
    block_mamba_preset: str
    training_rows: tuple[str, ...]
    longest_start: int
    demo_steps: int
    sample_length: int


GPU_SIZES = Sizes("dit-small", 4, 1024, 512, 16, (1024, 8192), "caduceus-ps", "caduceus-ph",
                  ("dit-small:1024", "caduceus-ps:1024"), 2048, 400, 256)
CPU_SIZES = Sizes("dit-tiny", 2, 64, 16, 4, (64, 128), "caduceus-tiny", "caduceus-ph-tiny",
                  ("dit-tiny:128", "caduceus-tiny:128"), 256, 4, 32)


@dataclass
class Context:
    device: str
    sizes: Sizes
    out_dir: Path
    max_length: int


Row = dict[str, Any]


def kernels(mode: str) -> contextlib.AbstractContextManager[None]:
    """MDLM_BIO_KERNELS for the duration: "auto" (kernels where they apply) or "off" (the torch paths)."""
    return environment_variable("MDLM_BIO_KERNELS", mode)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.float() - expected.float()).norm() / expected.float().norm().clamp_min(1e-12))


def perturb(model: torch.nn.Module, scale: float = 0.02) -> torch.nn.Module:
    """Random weights everywhere: zero-initialised gates and output layers would hide the layers under test."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_((scale * torch.randn(parameter.shape, generator=generator)).to(parameter.device))
    return model


def forward_backward(model: torch.nn.Module, tokens: torch.Tensor, dtype: torch.dtype | None) -> tuple[torch.Tensor, dict]:
    """Logits and every parameter's gradient of a fixed random projection of them."""
    model.zero_grad(set_to_none=True)
    autocast = torch.autocast(tokens.device.type, dtype=dtype) if dtype else contextlib.nullcontext()
    with autocast:
        logits = model(tokens, None)
    weights = torch.randn(logits.shape, generator=torch.Generator(tokens.device).manual_seed(1), device=tokens.device)
    (logits.float() * weights).sum().backward()
    return logits.detach().float(), {name: p.grad.float().clone() for name, p in model.named_parameters() if p.grad is not None}


@contextlib.contextmanager
def counted(module_name: str, name: str) -> Iterator[list[int]]:
    """Count the calls of a kernel package's entry point, so a comparison shows that the kernel really ran."""
    module = importlib.import_module(module_name)
    original, calls = getattr(module, name), [0]

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    setattr(module, name, counting)
    try:
        yield calls
    finally:
        setattr(module, name, original)


def compare_model_paths(model: torch.nn.Module, tokens: torch.Tensor, dtype: torch.dtype | None, tolerance: float,
                        name: str, entry_points: list[tuple[str, str]]) -> Row:
    """The same model through the kernels and through the torch paths; the worst relative error of any tensor.
    Fails too if one of the kernel entry points was never called."""
    with contextlib.ExitStack() as stack, kernels("auto"):
        counts = {entry: stack.enter_context(counted(*entry)) for entry in entry_points}
        kernel_logits, kernel_grads = forward_backward(model, tokens, dtype)
    with kernels("off"):
        torch_logits, torch_grads = forward_backward(model, tokens, dtype)
    errors = {"logits": relative_error(kernel_logits, torch_logits)}
    errors.update({f"grad {key}": relative_error(kernel_grads[key], grad) for key, grad in torch_grads.items()})
    worst = max(errors, key=errors.get)
    calls = {entry[1]: count[0] for entry, count in counts.items()}
    ok = errors[worst] <= tolerance and all(calls.values())
    return {"check": name, "status": "pass" if ok else "fail", "tolerance": tolerance, "kernel_calls": calls,
            "logits_error": errors["logits"], "worst_error": errors[worst], "worst_tensor": worst,
            "detail": f"logits {errors['logits']:.1e}, worst {worst} {errors[worst]:.1e} (tolerance {tolerance:.0e}); "
                      f"kernel calls {calls}"}


def kernels_run_on(device: str) -> bool:
    return kernels_apply(torch.empty(0, device=device))


def skipped(name: str, reason: str) -> Row:
    return {"check": name, "status": "skipped", "detail": reason}


# ---------------------------------------------------------------- 1. flash-attn


def check_flash_attention(context: Context) -> list[Row]:
    name = f"flash-attn vs SDPA, {context.sizes.attention_preset} bf16"
    if flash_attention_kernel() is None or not kernels_run_on(context.device):
        reason = f"flash-attn is not installed (pip install -e '.[gpu]'), or kernels do not run on {context.device}"
        return [skipped(name, reason)]
    torch.manual_seed(0)
    model = perturb(build_backbone(preset_backbone(context.sizes.attention_preset)).to(context.device))
    vocab = model.output_layer.linear.out_features
    tokens = torch.randint(0, vocab, (context.sizes.attention_batch, context.sizes.attention_length), device=context.device)
    return [compare_model_paths(model, tokens, torch.bfloat16, BF16_TOLERANCE, name,
                                [("flash_attn", "flash_attn_varlen_qkvpacked_func")])]


class BlockDiffusionPass(torch.nn.Module):
    """A block diffusion training pass as a module of tokens: [x_t, x_0] with every third token masked."""

    def __init__(self, model: torch.nn.Module, block_size: int, mask_id: int) -> None:
        super().__init__()
        self.model, self.block_size, self.mask_id = model, block_size, mask_id

    def forward(self, tokens: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        noisy = tokens.clone()
        noisy[:, ::3] = self.mask_id
        return self.model.block_logits(noisy, tokens, self.block_size)


def check_block_diffusion_flex(context: Context) -> list[Row]:
    name = f"block diffusion: FlexAttention vs SDPA's dense mask, {context.sizes.attention_preset} bf16, blocks of 16"
    if flex_attention_kernel() is None or not kernels_run_on(context.device):
        return [skipped(name, f"torch has no FlexAttention, or kernels do not run on {context.device}")]
    torch.manual_seed(0)
    model = perturb(build_backbone(preset_backbone(context.sizes.attention_preset)).to(context.device))
    tokens = torch.randint(0, model.output_layer.linear.out_features - 1,
                           (context.sizes.attention_batch, context.sizes.attention_length), device=context.device)
    mask_id = model.output_layer.linear.out_features - 1
    return [compare_model_paths(BlockDiffusionPass(model, 16, mask_id), tokens, torch.bfloat16, BF16_TOLERANCE, name,
                                [])]


# ---------------------------------------------------------------- 2. mamba-ssm and causal-conv1d


def scan_arguments(batch: int, inner: int, state: int, length: int, device: str) -> dict[str, torch.Tensor]:
    """Random scan inputs with mamba's scales: step sizes around softplus(-3), decays A in [-8, 0)."""
    generator = torch.Generator(device).manual_seed(0)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, device=device)

    return {"u": normal(batch, inner, length), "delta": normal(batch, inner, length) - 3,
            "A": -8 * torch.rand(inner, state, generator=generator, device=device), "B": normal(batch, state, length),
            "C": normal(batch, state, length), "D": normal(inner), "z": normal(batch, inner, length),
            "delta_bias": normal(inner)}


def timed_scan(function: Callable, arguments: dict[str, torch.Tensor], device: str) -> tuple[torch.Tensor, list, float]:
    """Output, input gradients and seconds of one forward + backward (after a warm-up)."""
    leaves = {key: value.clone().requires_grad_() for key, value in arguments.items()}
    function(**leaves, delta_softplus=True).sum().backward()
    synchronize(device)
    start = time.perf_counter()
    out = function(**leaves, delta_softplus=True)
    grads = torch.autograd.grad(out.square().sum(), list(leaves.values()))
    synchronize(device)
    return out.detach(), list(grads), time.perf_counter() - start


def check_mamba_kernels(context: Context) -> list[Row]:
    sizes = context.sizes
    if selective_scan_kernel() is None or causal_conv1d_kernel() is None or not kernels_run_on(context.device):
        reason = (f"mamba-ssm and causal-conv1d are not both installed (pip install -e '.[gpu]'), or kernels do not run "
                  f"on {context.device}")
        return [skipped(f"mamba-ssm scan vs torch scan, L={length}", reason) for length in sizes.scan_lengths] + [
            skipped(f"{sizes.caduceus_preset} kernels vs torch, bf16", reason),
            skipped(f"{sizes.block_mamba_preset} block diffusion (blocks of 4) kernels vs torch, bf16", reason)]
    rows = []
    for length in sizes.scan_lengths:
        arguments = scan_arguments(2, sizes.scan_inner, sizes.scan_state, length, context.device)
        kernel_out, kernel_grads, kernel_seconds = timed_scan(selective_scan_kernel(), arguments, context.device)
        torch_out, torch_grads, torch_seconds = timed_scan(selective_scan_torch, arguments, context.device)
        errors = [relative_error(kernel_out, torch_out)] + [relative_error(k, t) for k, t in zip(kernel_grads, torch_grads)]
        rows.append({"check": f"mamba-ssm scan vs torch scan, L={length}", "length": length,
                     "status": "pass" if max(errors) <= FLOAT32_TOLERANCE else "fail", "tolerance": FLOAT32_TOLERANCE,
                     "output_error": errors[0], "worst_grad_error": max(errors[1:]), "kernel_s": kernel_seconds,
                     "torch_s": torch_seconds, "detail": f"output {errors[0]:.1e}, worst gradient {max(errors[1:]):.1e}; "
                     f"forward+backward kernel {kernel_seconds * 1e3:.1f} ms vs torch {torch_seconds * 1e3:.1f} ms "
                     f"({torch_seconds / kernel_seconds:.1f}x)"})
    torch.manual_seed(0)
    model = perturb(build_backbone(preset_backbone(sizes.caduceus_preset)).to(context.device))
    tokens = torch.randint(7, 11, (2, sizes.scan_lengths[0]), device=context.device)  # A, C, G, T
    entry_points = [("mamba_ssm.ops.selective_scan_interface", "selective_scan_fn"), ("causal_conv1d", "causal_conv1d_fn")]
    rows.append(compare_model_paths(model, tokens, torch.bfloat16, BF16_TOLERANCE,
                                    f"{sizes.caduceus_preset} kernels vs torch, bf16", entry_points))
    # Mamba block diffusion: the kernels scan from zero, the start states enter through the torch correction
    model = perturb(build_backbone(preset_backbone(sizes.block_mamba_preset)).to(context.device))
    rows.append(compare_model_paths(BlockDiffusionPass(model, 4, MASK), tokens, torch.bfloat16, BF16_TOLERANCE,
                                    f"{sizes.block_mamba_preset} block diffusion (blocks of 4) kernels vs torch, bf16",
                                    entry_points))
    return rows


# ---------------------------------------------------------------- 3. training throughput


def throughput_row(spec: str, tokens_per_step: int, context: Context, peak_rate: float) -> Row:
    preset, length = spec.rsplit(":", 1)
    row = run_isolated(measure, preset, int(length), tokens_per_step, 3, context.device)
    precision = "bf16" if context.device.startswith("cuda") else "float32"  # measure() autocasts on CUDA only
    row.update(check=f"{precision} training step {preset} L={length}", status="pass", preset=preset, length=int(length),
               mfu=row["flops_per_step"] / row["step_s"] / peak_rate)
    row["detail"] = (f"{row['tokens_per_s']:,.0f} tokens/s, MFU {row['mfu']:.1%}, peak {row['peak_mib']:,.0f} MiB, "
                     f"batch {row['batch']}")
    return row


def check_training_throughput(context: Context) -> list[Row]:
    dtype = torch.bfloat16 if context.device.startswith("cuda") else torch.float32
    peak_rate = matmul_flops_per_second(context.device, dtype, size=8192 if context.device.startswith("cuda") else 1024)
    base_tokens = 8 * int(context.sizes.training_rows[0].rsplit(":", 1)[1])
    rows = [throughput_row(spec, base_tokens, context, peak_rate) for spec in context.sizes.training_rows]
    length, longest = context.sizes.longest_start, None
    while length <= context.max_length:
        try:
            longest = throughput_row(f"{context.sizes.caduceus_preset}:{length}", length, context, peak_rate)
        except Exception as error:  # an out-of-memory error ends the search; anything else is a failure
            if "out of memory" not in str(error).lower():
                raise
            break
        length *= 2
    if longest is not None:
        preset = context.sizes.caduceus_preset
        longest["check"] = f"longest {preset} training step that fits (batch 1, tried up to {context.max_length})"
        rows.append(longest)
    for row in rows:
        row["matmul_flops_per_s"] = peak_rate
    return rows


# ---------------------------------------------------------------- 4. and 5. the CLI end to end


def run_cli(*args: str, timeout: float = 600) -> str:
    """`mdlm-bio ARGS` in a subprocess (Lightning relaunches it for DDP); its output, or an error with the tail."""
    finished = subprocess.run([sys.executable, "-m", "mdlm_bio.cli", *args], capture_output=True, text=True,
                              timeout=timeout)
    if finished.returncode != 0:
        raise RuntimeError(f"mdlm-bio {' '.join(args[:2])} exited {finished.returncode}: {finished.stderr[-1500:]}")
    return finished.stdout


def final_bits(output: str) -> float:
    """The last `val bits/base` the training printed."""
    values = re.findall(r"val bits/base (\S+)", output)
    if not values:
        raise RuntimeError("training printed no validation")
    return float(values[-1])


def demo_args(run_dir: Path, context: Context, steps: int, *extra: str) -> list[str]:
    accelerator = "cuda" if context.device.startswith("cuda") else "cpu"
    return ["train", "demo", f"run_dir={run_dir}", f"data.data_dir={context.out_dir / 'data'}",
            f"trainer.max_steps={steps}", f"trainer.accelerator={accelerator}", "trainer.enable_progress_bar=false",
            f"checkpoint_every_n_steps={max(1, steps // 2)}", f"trainer.val_check_interval={max(1, steps // 2)}", *extra]


def check_end_to_end(context: Context) -> list[Row]:
    runs = context.out_dir / "runs"
    steps = context.sizes.demo_steps
    start = time.perf_counter()
    bits = final_bits(run_cli(*demo_args(runs / "demo", context, steps)))
    train_seconds = time.perf_counter() - start
    samples = context.out_dir / "samples.fa"
    start = time.perf_counter()
    run_cli("sample", "--ckpt", str(runs / "demo"), "--num", "16", "--length", str(context.sizes.sample_length),
            "--device", context.device, "--seed", "0", "--out", str(samples))
    sample_seconds = time.perf_counter() - start
    records = samples.read_text().count(">")
    rows = [{"check": "mdlm-bio train demo, then sample", "status": "pass" if records == 16 else "fail",
             "train_s": train_seconds, "sample_s": sample_seconds, "val_bits_per_base": bits,
             "detail": f"{steps} steps in {train_seconds:.0f} s (val {bits:.3f} bits/base); 16 x "
                       f"{context.sizes.sample_length} bases in {sample_seconds:.1f} s"}]
    if not context.device.startswith("cuda"):
        return rows + [skipped("FSDP on one GPU, resumed", "Lightning and torch refuse FSDP without CUDA")]
    half = max(1, steps // 8)
    fsdp = ("trainer.strategy=fsdp", "trainer.devices=1", "optim.ema=null")
    run_cli(*demo_args(runs / "fsdp", context, half, *fsdp))
    resumed = run_cli(*demo_args(runs / "fsdp", context, 2 * half, *fsdp))
    rows.append({"check": "FSDP on one GPU, resumed", "status": "pass" if "resuming from" in resumed else "fail",
                 "detail": f"{half} steps, then resumed to {2 * half} (val {final_bits(resumed):.3f} bits/base)"})
    return rows


def check_multi_gpu(context: Context) -> list[Row]:
    count = torch.cuda.device_count() if context.device.startswith("cuda") else 0
    if count < 2:
        return [skipped("DDP and FSDP across GPUs", f"needs two or more GPUs; {count} visible")]
    runs, steps = context.out_dir / "runs", max(2, context.sizes.demo_steps // 8)
    common = (f"trainer.devices={count}", "optim.ema=null")
    ddp = final_bits(run_cli(*demo_args(runs / "ddp", context, steps, "trainer.strategy=ddp", *common)))
    fsdp = final_bits(run_cli(*demo_args(runs / "fsdp-multi", context, steps, "trainer.strategy=fsdp", *common)))
    gap = abs(ddp - fsdp)
    return [{"check": f"DDP and FSDP on {count} GPUs", "status": "pass" if gap < 1e-2 else "fail",
             "ddp_bits": ddp, "fsdp_bits": fsdp, "detail": f"{steps} steps: DDP {ddp:.4f} vs FSDP {fsdp:.4f} bits/base"}]


CHECKS: list[Callable[[Context], list[Row]]] = [check_flash_attention, check_block_diffusion_flex, check_mamba_kernels,
                                               check_training_throughput, check_end_to_end, check_multi_gpu]


# ---------------------------------------------------------------- report


def environment(device: str) -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {"device": device_description(device), "gpus": str(torch.cuda.device_count()), "torch": torch.__version__,
            "cuda": str(torch.version.cuda), **{p: version(p) for p in ("mamba-ssm", "causal-conv1d", "flash-attn", "lightning")}}


def write_markdown(path: Path, env: dict[str, str], rows: list[Row], seconds: float) -> None:
    setting = ", ".join(f"{key} {value}" for key, value in env.items())
    lines = ["# GPU acceptance", "", f"{setting}; {seconds:.0f} s in all.", "", "| check | status | result |",
             "| --- | --- | --- |"]
    lines += [f"| {row['check']} | {row['status']} | {row['detail']} |" for row in rows]
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="See the module docstring for the checks and their tolerances.")
    parser.add_argument("--out-dir", type=Path, default=Path("bench-results/gpu-acceptance"))
    parser.add_argument("--max-length", type=int, default=131072,
                        help="longest caduceus-ps length to try (default 131072, the released model's context)")
    parser.add_argument("--allow-cpu", action="store_true", help="without CUDA, run every check at toy sizes on the CPU")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        print("SKIP: no CUDA device here, so there is nothing to accept. Run this on a GPU machine "
              "(or pass --allow-cpu to try the script itself at toy sizes).")
        return
    device = "cuda" if cuda else "cpu"
    context = Context(device, GPU_SIZES if cuda else CPU_SIZES, args.out_dir,
                      args.max_length if cuda else min(args.max_length, 2 * CPU_SIZES.longest_start))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    env, rows, start = environment(device), [], time.perf_counter()
    print(json.dumps(env))
    for check in CHECKS:
        try:
            found = check(context)
        except Exception as error:  # report and go on: one GPU session should yield every check it can
            found = [{"check": check.__name__.removeprefix("check_").replace("_", " "), "status": "fail",
                      "detail": f"{type(error).__name__}: {str(error)[-800:]}"}]
        for row in found:
            print(f"{row['status']:>8}  {row['check']}: {row['detail']}", flush=True)
        rows += found
    seconds = time.perf_counter() - start
    write_json(args.out_dir / "gpu_acceptance.json", {"environment": env, "seconds": seconds, "rows": rows})
    write_markdown(args.out_dir / "gpu_acceptance.md", env, rows, seconds)
    failed = [row["check"] for row in rows if row["status"] == "fail"]
    print(f"{len(rows) - len(failed)} of {len(rows)} checks passed or skipped in {seconds:.0f} s"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
