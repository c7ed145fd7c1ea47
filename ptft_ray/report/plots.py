"""PNG plots of a run (matplotlib, Agg: no display needed). Each returns the file it wrote."""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"full": "tab:blue", "linear_probe": "tab:orange", "lora": "tab:green", "partial": "tab:red",
          "discriminative_lr": "tab:purple", "gradual_unfreeze": "tab:brown"}


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def pretrain_curves(history: list[dict], out: Path, name: str) -> list[str]:
    steps = [h["step"] for h in history if "train_loss" in h]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    ax[0].plot(steps, [h["train_loss"] for h in history if "train_loss" in h], label="train loss")
    # log rows carry the last validation values forward: an evaluation is where they change
    val, prev = [], None
    for h in history:
        if h.get("val_loss") is not None and h["val_loss"] != prev:
            val.append((h["step"], h["val_loss"]))
            prev = h["val_loss"]
    if val:
        ax[0].plot(*zip(*val), "o-", label="val loss")
        ax2 = ax[0].twinx()
        ax2.plot([s for s, _ in val], [math.exp(v) for _, v in val], "s--", color="tab:green", label="val perplexity")
        ax2.set_ylabel("val perplexity")
        ax2.legend(loc="center right")
    ax[0].set_xlabel("step"), ax[0].set_ylabel("loss"), ax[0].legend(loc="upper right")
    ax[0].set_title("pretraining loss")
    tps = [(h["step"], h["tokens_per_s"]) for h in history if h.get("tokens_per_s")]
    if tps:
        ax[1].plot(*zip(*tps))
    ax[1].set_xlabel("step"), ax[1].set_ylabel("tokens/s"), ax[1].set_title("throughput")
    ax[1].set_ylim(bottom=0)
    return [_save(fig, out / f"{name}_pretrain.png")]


def sweep_plots(sw: dict, out: Path) -> list[str]:
    name, metric, trials = sw["name"], sw["metric"], sw["trials"]
    strat = {t["trial_id"]: t.get("strategy") for t in trials}
    files = []
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for tid, pts in sw["curves"].items():
        s = strat.get(tid)
        ax.plot(*zip(*pts), "-", marker=".", color=COLORS.get(s, "grey"), alpha=0.8)
    for s, c in COLORS.items():
        if s in strat.values():
            ax.plot([], [], color=c, label=s)
    ax.set_xlabel("step"), ax.set_ylabel(metric), ax.set_title(f"{name}: trial curves")
    ax.legend(fontsize=7)
    files.append(_save(fig, out / f"{name}_curves.png"))

    best = defaultdict(list)
    for t in trials:
        if t.get("best_metric"):
            best[t["strategy"]].append(float(t["best_metric"]))
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    names = sorted(best, key=lambda s: -max(best[s]))
    ax[0].bar(names, [max(best[s]) for s in names], color=[COLORS.get(s, "grey") for s in names])
    lo = min((min(v) for v in best.values()), default=0)
    ax[0].set_ylim(max(0, lo - 0.05), None)
    ax[0].set_ylabel(f"best {metric}"), ax[0].set_title("best by strategy")
    ax[0].tick_params(axis="x", rotation=30, labelsize=8)
    for t in trials:
        if t.get("best_metric") and t.get("lr"):
            ax[1].scatter(float(t["lr"]), float(t["best_metric"]), color=COLORS.get(t["strategy"], "grey"),
                          marker="o" if t.get("stop_reason") == "completed" else "x")
    ax[1].set_xscale("log"), ax[1].set_xlabel("learning rate"), ax[1].set_ylabel(metric)
    ax[1].set_title("LR vs metric (x = stopped early)")
    files.append(_save(fig, out / f"{name}_strategies.png"))
    ev = sw.get("evaluation")
    if ev and ev.get("confusion_matrix"):
        files.append(confusion(ev, out / f"{name}_confusion.png"))
    return files


def confusion(ev: dict, path: Path) -> str:
    labels, m = ev["labels"], ev["confusion_matrix"]
    k = len(labels)
    # at least wide enough for the title, at most a page wide for 16 classes
    fig, ax = plt.subplots(figsize=(max(4.2, min(2 + 0.45 * k, 9)), max(3.4, min(1.6 + 0.45 * k, 8.5))))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(k), labels, rotation=60 if k > 4 else 0, fontsize=7 if k > 8 else 9)
    ax.set_yticks(range(k), labels, fontsize=7 if k > 8 else 9)
    if k <= 16:
        top = max(max(r) for r in m) or 1
        for i in range(k):
            for j in range(k):
                ax.text(j, i, m[i][j], ha="center", va="center", fontsize=6 if k > 8 else 9,
                        color="white" if m[i][j] > top / 2 else "black")
    ax.set_xlabel("predicted"), ax.set_ylabel("true")
    ax.set_title(f"test confusion (accuracy {ev['accuracy']:.3f})")
    return _save(fig, path)


def accuracy_vs_cost(rows: list[dict], path: Path) -> str | None:
    """Each model's test accuracy (with its 95 % interval) against its training seconds and its
    serving milliseconds per text; the baselines as horizontal lines; None with nothing to plot."""
    models = [r for r in rows if r["train_s"] is not None or r["ms_per_text"] is not None]
    if not models:
        return None
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, (key, label) in enumerate((("train_s", "training seconds (all trials)"), ("ms_per_text", "ms per text (batch 64)"))):
        for r in models:
            if r[key] is None:
                continue
            lo, hi = r["ci"] or (r["test_accuracy"], r["test_accuracy"])
            ax[i].errorbar([r[key]], [r["test_accuracy"]], yerr=[[r["test_accuracy"] - lo], [hi - r["test_accuracy"]]],
                           fmt="o", capsize=3, label=r["model"])
        for r in rows:
            if r["train_s"] is None and r["ms_per_text"] is None:
                ax[i].axhline(r["test_accuracy"], ls="--", lw=1, color="grey")
                ax[i].annotate(r["model"], (0.01, r["test_accuracy"]), xycoords=("axes fraction", "data"), fontsize=7)
        if all(r[key] is None for r in models):
            ax[i].text(0.5, 0.5, "not measured in this run\n(the int8 and distillation stages measure it)",
                       ha="center", va="center", transform=ax[i].transAxes, fontsize=9, color="grey")
        ax[i].set_xlabel(label), ax[i].set_ylabel("test accuracy")
        if ax[i].has_data() and ax[i].get_legend_handles_labels()[0]:
            ax[i].legend(fontsize=7)
    return _save(fig, path)
