"""Learning rates for Hugging Face decoders (GPT-2, Llama, Qwen, Mistral...), which have no
calibration of their own. Their trials borrow the encoder calibration's cost model and
strategy ranking, but never its learning rates: an encoder's `full` range (up to 1e-4 here,
up to 3e-3 for lora) makes a billion-parameter decoder diverge. These are conservative
defaults from common decoder fine-tuning practice (docs/decisions.md, "Decoder learning
rates"), halved again above 3B parameters, doubled for decoders under 350M."""
from __future__ import annotations

DECODER_LR = {
    "full": (5e-6, 2e-5), "discriminative_lr": (5e-6, 2e-5), "gradual_unfreeze": (5e-6, 2e-5),
    "partial": (1e-5, 5e-5), "lora": (5e-5, 2e-4), "linear_probe": (1e-4, 1e-3),
}
SMALL, LARGE = 350e6, 3e9


def decoder_rule(sources: list[dict]) -> dict | None:
    """{"ranges": {strategy: [lo, hi]}, "params": largest decoder's, "why"} where any source is a
    Hugging Face decoder (the largest sets the scale), else None."""
    params = [s.get("params") or 0 for s in sources if s.get("family") == "hf_decoder"]
    if not params:
        return None
    n = max(params)
    scale = 2.0 if n and n < SMALL else 0.5 if n > LARGE else 1.0
    ranges = {k: [lo * scale, hi * scale] for k, (lo, hi) in DECODER_LR.items()}
    size = f"{n / 1e6:.0f}M parameters" if n else "size unknown"
    return {"ranges": ranges, "params": n,
            "why": f"the decoder default ({size}; no decoder calibration, never the encoder's LRs)"}
