"""BENCHMARKS.md from benchmarks/results/*.json: one table per item, goal and met / missed."""
from __future__ import annotations

import json

from .common import RESULTS, ROOT


def _load(name: str) -> dict | None:
    p = RESULTS / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else None


def _met(value, goal, higher=True) -> str:
    if value is None:
        return "not measured"
    ok = value >= goal if higher else value <= goal
    return "**met**" if ok else "**missed**"


def write() -> str:
    tp, dp, sw, cal = _load("throughput"), _load("data_pipeline"), _load("sweeps"), _load("calibration")
    m = (tp or dp or sw or {}).get("machine", {})
    L = ["# Benchmarks", "",
         f"Measured {m.get('date', '?')} on {m.get('cpu', '?')} ({m.get('cpus', '?')} CPUs), Python "
         f"{m.get('python', '?')}, torch {m.get('torch', '?')}, Ray {m.get('ray', '?')}. No GPU was lent to "
         f"this session, so item 7 (GPU) is not measured.", "",
         "Command: `make bench` (= `python -m benchmarks`); each item also runs alone, e.g. "
         "`python -m benchmarks throughput`. Raw numbers: `benchmarks/results/*.json`.", "",
         "| # | figure | measured | goal | |", "|---|---|---|---|---|"]
    if tp:
        for size, r in tp["runs"].items():
            L.append(f"| 1 | Ray Train overhead, {size}: ptft_ray 1 worker / plain PyTorch tokens/s "
                     f"({r['ptft_1w_tokens_per_s']:.0f} / {r['plain_tokens_per_s']:.0f}) | "
                     f"{r['ray_train_overhead_ratio']:.3f} | >= 0.95 | {_met(r['ray_train_overhead_ratio'], 0.95)} |")
        for size, r in tp["runs"].items():
            L.append(f"| 2 | model FLOPs/s / measured 1-thread matmul FLOPs/s, {size} "
                     f"({r['model_flops_per_s'] / 1e9:.2f} / {tp['matmul_flops_per_s_1_thread'] / 1e9:.1f} GFLOP/s) | "
                     f"{r['mfu_vs_measured_matmul']:.3f} (plain loop {r['plain_mfu']:.3f}) | >= 0.5 | "
                     f"{_met(r['mfu_vs_measured_matmul'], 0.5)} |")
        for size, r in tp["runs"].items():
            for k in ("data_wait_frac_1w", "data_wait_frac_2w"):
                if k in r:
                    L.append(f"| 3 | trainer waits for data, {size}, {k[-2:]} (fraction of step time) | "
                             f"{r[k]:.3f} | < 0.05 | {_met(r[k], 0.05, higher=False)} |")
        r = tp["runs"]["gpt_small"]
        L.append(f"| 4 | DDP scaling, gpt_small: 2 workers x 1 thread / 1 x 1 "
                 f"({r['ptft_2w_tokens_per_s']:.0f} / {r['ptft_1w_tokens_per_s']:.0f} tokens/s) | "
                 f"{r['ddp_scaling_2w_over_1w']:.3f} | >= 1.7 | {_met(r['ddp_scaling_2w_over_1w'], 1.7)} |")
    if dp:
        ratio = dp.get("pipeline_over_trainer_tokens_per_s")
        L.append(f"| 3 | Ray Data read+tokenize+pack (BPE, news) / trainer tokens/s (2 workers) "
                 f"({dp['pipeline_bpe_news']['tokens_per_s']:.0f} / {dp.get('trainer_tokens_per_s_2w') or 0:.0f}) | "
                 f"{ratio if ratio is None else round(ratio, 2)} | > 1 | {_met(ratio, 1.0)} |")
        mem = dp["memory"]
        sizes = [k for k in ("1x", "4x", "8x") if k in mem]
        peaks = " / ".join(f"{mem[k]['peak_pss_mb']:.0f}" for k in sizes)
        added = " / ".join(f"{mem[k].get('added_pss_mb', mem[k]['peak_pss_mb'] - mem[k]['pss_before_mb']):.0f}"
                           for k in sizes)
        ratios = " / ".join(f"{dp['corpus_over_store'][k]:.1f}x" for k in sizes)
        g = dp["peak_pss_growth_4x_over_1x"]
        L.append(f"| 3 | peak PSS of the driver + Ray processes streaming {ratios} the object store: {peaks} MB "
                 f"(added while streaming: {added} MB) | 4x/1x {g:.3f}"
                 + (f", 8x/4x {dp['peak_pss_growth_8x_over_4x']:.3f}" if "peak_pss_growth_8x_over_4x" in dp else "")
                 + f" | flat (<= 1.1) | {_met(g, 1.1, higher=False)} |")
    if sw:
        e = sw["sweep_efficiency"]
        frac = e["asha"]["trial_steps"] / e["full"]["trial_steps"]
        gap = 100 * (e["asha"]["best_val"] - e["full"]["best_val"])
        L.append(f"| 5 | ASHA vs the same {e['trials']}-trial grid run to completion ({e['cell']}): best val "
                 f"{e['asha']['best_val']:.4f} vs {e['full']['best_val']:.4f}, trial-steps {e['asha']['trial_steps']} "
                 f"vs {e['full']['trial_steps']} | {gap:+.1f} points at {frac:.0%} of the steps | within 1 point at "
                 f"<= 35 % | {'**met**' if gap >= -1 and frac <= 0.35 else '**missed**'} |")
        st = sw["per_trial_startup_s"]
        L.append(f"| 5 | per-trial start-up (cost-model intercept; in-process trial of 1 epoch on 600 examples) | "
                 f"{st['cost_model_intercept']:.1f} s; {st['trial_overhead_json']:.1f} s | - | |")
    L += ["", "## 6. Pretraining pays?", "",
          "Fine-tuned from the pretrained checkpoint (best of an 18-trial grid: 6 strategies x 3 LRs) vs "
          "from scratch (full fine-tuning x the same 3 LRs, same architecture and tokenizer); test accuracy on "
          "the whole test split. Steps: first evaluation at which any pretrained trial reached the scratch "
          "model's best validation accuracy, vs the step at which the scratch model reached it.", "",
          "| cell | n train | pretrained test | scratch test | gain (points) | pretrained steps to scratch's best val | "
          "scratch steps |", "|---|---|---|---|---|---|---|"]
    for r in (sw or {}).get("pretraining_pays", []):
        L.append(f"| {r['cell']} | {r['n_train']} | {r['pretrained_test']:.4f} | {r['scratch_test']:.4f} | "
                 f"{r['gain_points']:+.1f} | {r['pretrained_steps_to_scratch_final'] or 'never'} | "
                 f"{r['scratch_steps_to_best']} |")
    if sw:
        L += ["", f"![learning curves]({sw['learning_curves_png']})", "",
              "## Planner vs exhaustive sweep (issue 4)", "",
              "The planned sweep gets a budget of a third of the exhaustive sweep's trial time (2 slots).", "",
              "| cell | budget s | plan | planned test | exhaustive test | gap (points) | trial time ratio |",
              "|---|---|---|---|---|---|---|"]
        for r in sw["planner_vs_exhaustive"]:
            L.append(f"| {r['cell']} | {r['budget_s']} | {r['plan']['num_trials']} trials of "
                     f"{', '.join(r['plan']['strategies'])} | {r['planned_test']:.4f} | {r['exhaustive_test']:.4f} | "
                     f"{r['gap_points']:+.1f} | {r['time_ratio']:.2f} |")
    L += ["", "## What missed, and what is known about why", "",
          "Nothing below was profiled in this session (no py-spy / torch profiler run yet), so these are "
          "readings of the measured numbers, not diagnoses:", "",
          "- **MFU, gpt_small (0.496 vs 0.5)**: the plain PyTorch loop on the same model reaches 0.487, so "
          "the gap is the model's size (d_model 128: small matmuls, relatively more time in LayerNorm, "
          "softmax and the optimizer), not ptft_ray; at d_model 256 both clear 0.5 (0.69 / 0.67).",
          "- **DDP scaling (1.63 vs 1.7)**: the data pipeline is not the cause (the trainer waits for data "
          "0.2 % of step time and Ray Data tokenizes ~65x faster than the trainer consumes). Two workers "
          "on two cores share them with Ray's own daemons (raylet, GCS, dashboard) and pay a gloo "
          "all-reduce of ~1.3M floats per step; the 1-worker run has a core to spare for those. Not "
          "yet measured separately.",
          "- **Memory while streaming (4x/1x 1.31)**: what streaming added above the processes' "
          "baseline rose from 198 MB (1x the object store) to 578 MB (4x) and then only to 637 MB "
          "(8x): bounded, with a warm-up between 1x and 4x (more map tasks alive, the object store "
          "filling), not growth with the corpus. The goal (flat from 1x) is missed as stated.",
          "- **ASHA (-1.7 points at 39 % of the steps)**: grace 1 of 7 evaluations with reduction "
          "factor 3 stopped the slow-starting full fine-tuning trials that won the complete grid "
          "(full, LR 3e-3); a larger grace period costs compute. One grid, one seed: the gap is "
          "within the noise of a 1,000-example validation set (+-1.5 points).",
          "- **Planner on Rotten Tomatoes (-3.3 and -1.2 points)**: at 100 examples every sweep sits at "
          "the majority class (0.578) and the test differences are noise; at 1,000 the planner "
          "spread 24 trials over all six strategies (its 'a large budget buys breadth' rule) where "
          "the calibration had only `full` within a point. On the 16-class tweets task it was "
          "within a point at both sizes (-0.1, +0.8) at 20-26 % of the trial time.",
          "- **Calibration scope**: 100 and 1,000 labels on both tasks, two budget levels at 100 "
          "labels; the 10,000-label and all-label cells (about 20 minutes each on 2 CPUs) were not "
          "run, and the planner and the exhaustive reference share the same cells (in-sample).",
          ]
    if cal:
        L += ["", "Calibration table (every strategy's best validation accuracy per cell): "
              "[benchmarks/results/calibration.md](benchmarks/results/calibration.md)."]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(L) + "\n")
    return str(ROOT / "BENCHMARKS.md")
