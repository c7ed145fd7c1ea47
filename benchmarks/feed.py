"""Can Ray Data feed the GPUs? Tokenize + pack tokens per CPU-second (data/feed.rate_per_cpu,
what `ptft-ray pretrain` times before training) on the news corpus with three tokenizers, and
what that means for the paper models of the memory plan on A100 / H100 at MFU 40 %.

    python -m benchmarks.feed
"""
from __future__ import annotations

from .common import ROOT, save

SEQ = 2048
MODELS = {  # parameters, layers, hidden (published configs; counted on the meta device in memory_plan)
    "GPT-2 (124M)": (124_439_808, 12, 768), "Llama-3.2-1B": (1_235_814_400, 16, 2048), "Qwen2.5-1.5B": (1_543_714_304, 28, 1536),
    "Llama-3.1-8B": (8_030_261_248, 32, 4096)}


def tokenizers(texts: list[str]) -> dict:
    from ptft_ray import tokenizer as toks

    out = {"byte": toks.ByteTokenizer(), "bpe 4096 (ours)": toks.build("bpe", texts, 4096)}
    minilm = ROOT / "data" / "models" / "minilm"
    if minilm.is_dir():
        out["MiniLM (HF fast WordPiece)"] = toks.HFTokenizer.from_dir(str(minilm))
    return out


def main() -> None:
    from ptft_ray.data import feed, sources

    files, fmt = sources.resolve_files(str(ROOT / "data" / "news"))
    texts = sources.sample_texts(files, fmt, "text", 2000)
    rates = {name: feed.rate_per_cpu(texts, tok, SEQ + 1, min_s=3.0) for name, tok in tokenizers(texts).items()}
    hf = rates.get("MiniLM (HF fast WordPiece)", rates["bpe 4096 (ours)"])
    paper = []
    for model, (p, layers, hidden) in MODELS.items():
        for gpu in ("A100", "H100"):
            plan = feed.plan(hf, feed.flops_per_token(p, layers, hidden, SEQ), 8, 8 * 8, feed.PEAK_TFLOPS[gpu])
            paper.append({"model": model, "gpu": gpu, **{k: v for k, v in plan.items() if k != "line"}})
    save("feed", {"docs": len(texts), "tokens_per_cpu_s": rates, "paper_rate_from": "MiniLM (HF fast WordPiece)"
                  if "MiniLM (HF fast WordPiece)" in rates else "bpe 4096 (ours)", "paper": paper})


def section(r: dict) -> list[str]:
    if not r:
        return []
    L = ["", "## Feeding the GPUs", "", f"Command: `{r['command']}`. Tokenize + pack tokens per CPU-second "
         f"(`data/feed.rate_per_cpu`, what `ptft-ray pretrain` times on its corpus before training; "
         f"{r['docs']} news documents, blocks of 2,049):", "", "| tokenizer | tokens per CPU-second |", "|---|---|"]
    L += [f"| {k} | {v:,.0f} |" for k, v in r["tokens_per_cpu_s"].items()]
    L += ["", f"What the plan says for the memory plan's models at 2,048 tokens a row (MFU 40 % assumed, the "
          f"GPUs' dense bf16 peaks), at the {r['paper_rate_from']} rate; a node of 8 GPUs with 8 CPUs per GPU left "
          "to Ray Data has enough wherever the need is under 8:", "",
          "| model | GPU | expected tokens/s per GPU | CPUs per GPU the feed needs |", "|---|---|---|---|"]
    L += [f"| {p['model']} | {p['gpu']} | {p['expected_tokens_per_s_per_gpu']:,} | {p['cpus_per_gpu_needed']} |"
          for p in r["paper"]]
    return L + [""]


if __name__ == "__main__":
    main()
