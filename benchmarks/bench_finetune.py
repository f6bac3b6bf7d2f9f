"""Fine-tuning throughput: one optimiser step (forward + backward + AdamW) of a whole model
whose audio tower is trained, in clips/s, against the step's FLOP floor measured in the same
run; and the frozen fast path (features from the cache) against the same frozen towers live.

    python benchmarks/bench_finetune.py [--batch 4] [--seconds 2] [--repeats 3] [--encoders aisfx cnn14 passt]
        [--device cpu|cuda] [--text-config DIR]

FLOPs of a step are counted by ``torch.utils.flop_counter`` (matmuls and convolutions, forward
and backward); the floor is that count at the matmul rate of the same precision measured here.
Towers: aisfx (packaged weights), CNN14 and PaSST-S at full size with random weights (the
speed does not depend on the values); text: MiniLM, trained too (``--text-config DIR``: a
MiniLM-shaped tower with random weights built from DIR's config.json and tokenizer files, for
machines without the MiniLM package). The device is printed; on a GPU every timed call ends
with a synchronisation and the floor is the GPU's own matmul rate (4096-wide products).
"""
from __future__ import annotations

import argparse

import torch
from _timing import load_average, matmul_rate, median_time, print_table, synced

from soundseek.config import apply_overrides
from soundseek.device import autocast
from soundseek.models import Config, create_model


def random_text_tower(path: str):
    """A text tower shaped by ``path``'s config.json, random weights, ``path``'s tokenizer."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from soundseek.encoders.text import HFTextEncoder

    model = AutoModel.from_config(AutoConfig.from_pretrained(path, local_files_only=True))
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return HFTextEncoder(model, tok, pooling="mean", max_length=32, name="random", weights_id="random")


def model_for(name: str, trained: bool, device: torch.device, text_config: str | None = None):
    sets = {"aisfx": [], "cnn14": ["encoders.audio=cnn14", "encoders.audio_options={pretrained: false}"],
            "passt": ["encoders.audio=passt", "encoders.audio_options={pretrained: false}"]}[name]
    lock = "false" if trained else "true"
    cfg = apply_overrides(Config(), sets + [f"encoders.lock_audio={lock}", f"encoders.lock_text={lock}"])
    torch.manual_seed(0)
    if text_config:  # the directory holds no weights: the text tower is built here
        from soundseek.encoders import build_audio_encoder

        kw = dict(cfg.encoders.audio_options)
        audio = build_audio_encoder(cfg.encoders.audio, **kw).eval()
        model = create_model(cfg, towers=(audio, random_text_tower(text_config).eval()))
    else:
        model = create_model(cfg)
    return model.to(device).train()


def step_fn(model, wave, mask, captions, precision: str, device: torch.device):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    ids = torch.arange(wave.shape[0], device=device)

    def step() -> None:
        with autocast(device, precision):
            loss = model(model.encode_captions(captions), model.encode_waves(wave, mask), ids)
        opt.zero_grad()
        loss.float().backward()
        opt.step()

    return step


def step_flops(step) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        step()
    return float(fc.get_total_flops())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--encoders", nargs="+", default=["aisfx", "cnn14", "passt"])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--text-config", default=None, help="MiniLM-shaped random text tower from this directory")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    n_mm = 4096 if device.type == "cuda" else 1024
    rates = {"fp32": matmul_rate(n_mm, device=device), "bf16": matmul_rate(n_mm, dtype=torch.bfloat16, device=device)}
    captions = ["a dog barks in the distance", "rain falls on a tin roof", "a door slams", "birds sing"] * a.batch
    captions = captions[: a.batch]
    rows = []
    for name in a.encoders:
        model = model_for(name, True, device, a.text_config)
        n = int(a.seconds * model.sample_rate)
        wave = 0.1 * torch.randn(a.batch, n, device=device)
        mask = torch.ones_like(wave, dtype=torch.bool)
        for precision in a.precisions:
            step = step_fn(model, wave, mask, captions, precision, device)
            flops = step_flops(step)
            t = median_time(synced(step, device), a.repeats, warmup=1)
            floor = flops / rates[precision]
            rows.append((f"{name} + MiniLM trained, {precision}", f"{a.batch / t:.2f}", f"{1e3 * t:.0f}",
                         f"{flops / 1e9:.1f}", f"{1e3 * floor:.0f}", f"{t / floor:.1f}"))
            print("  ".join(rows[-1]), flush=True)  # progress: rows as they are measured
    # frozen towers: the cached fast path vs the same towers run live in every step
    model = model_for("aisfx", False, device, a.text_config)
    n = int(a.seconds * model.sample_rate)
    wave = 0.1 * torch.randn(a.batch, n, device=device)
    mask = torch.ones(a.batch, n, dtype=torch.bool, device=device)
    with torch.no_grad():
        frames, fmask = model.audio_features(wave, mask)
        feats = model.text_features(captions)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    ids = torch.arange(a.batch, device=device)

    def cached() -> None:
        loss = model(model.encode_text(*feats), model.encode_audio(frames, fmask), ids)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def live() -> None:
        loss = model(model.encode_captions(captions), model.encode_waves(wave, mask), ids)
        opt.zero_grad()
        loss.backward()
        opt.step()

    tc = median_time(synced(cached, device), a.repeats * 5, warmup=2)
    tl = median_time(synced(live, device), a.repeats, warmup=1)
    rows.append(("aisfx + MiniLM frozen, cached features (fp32)", f"{a.batch / tc:.1f}", f"{1e3 * tc:.1f}", "", "", ""))
    rows.append(("aisfx + MiniLM frozen, run live (fp32)", f"{a.batch / tl:.2f}", f"{1e3 * tl:.0f}", "", "",
                 f"{tl / tc:.0f}x the cached step"))
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {a.threads} threads"
    print(f"device: {where}; {load_average()}; batch {a.batch}, {a.seconds:g} s clips")
    print(f"matmul rate: fp32 {rates['fp32'] / 1e9:.0f} GFLOP/s, bf16 {rates['bf16'] / 1e9:.0f} GFLOP/s\n")
    print_table(["step (forward + backward + AdamW)", "clips/s", "median ms", "GFLOP", "floor ms", "ratio to floor"],
                rows, compact=True)


if __name__ == "__main__":
    main()
