"""Every plan `planner.rules.choose` makes over a grid of inputs, as one JSON file: run it at two
commits and compare the files to show a refactor of the planner changed no plan.

    python -m benchmarks.plan_grid /tmp/plans_a.json   # at commit A
    python -m benchmarks.plan_grid /tmp/plans_b.json   # at commit B;  cmp /tmp/plans_a.json /tmp/plans_b.json

The grid: 3 training sizes x 2 text lengths x task type and classes x 3 model families x 3 rates
x 4 budgets x 2 clusters x 2 trial caps x 2 strategy allowances (3,456 inputs; a refusal is
kept as its message).
"""
import itertools, json, sys
from ptft_ray.planner.rules import choose
from ptft_ray.errors import PtftError
out = []
for n_train, p95, ttype, classes, fam, rate, budget, res, mt, allowed in itertools.product(
        [100, 1000, 10248], [30, 150], ["binary", "multiclass"], [2, 6], ["gpt", "hf_encoder", "hf_decoder"],
        [None, 900.0, 4000.0], [60, 300, 900, 3600], [{"cpus": 2}, {"cpus": 8, "gpus": 2}], [0, 4],
        [None, ["full", "lora"]]):
    if (ttype == "binary") != (classes == 2):
        continue
    scan = {"examples": {"train": n_train, "val": n_train // 5 + 50}, "length": {"p95": p95},
            "task_type": ttype, "num_classes": classes}
    src = [{"key": "c", "max_seq_len": 512, "tokens_per_s_per_worker": rate, "family": fam,
            **({"params": 120e6} if fam == "hf_decoder" else {})}]
    try:
        r = choose(scan, src, budget, res, mt, allowed)
    except PtftError as e:
        r = {"error": str(e)}
    out.append(r)
json.dump(out, open(sys.argv[1], "w"), sort_keys=True, default=str)
print(len(out), sum("error" in r for r in out))
