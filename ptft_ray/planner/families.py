"""The calibrated rules of each model family (calibrated.json, written by
benchmarks/derive_rules.py from the measured calibration table) and which family a plan uses."""
from __future__ import annotations

import json
import math
from pathlib import Path

CALIBRATED = json.loads((Path(__file__).with_name("calibrated.json")).read_text())
# what each family's calibration was measured on (a plan names the one it used)
FAMILY_NAMES = {"gpt": "our GPT (gpt_small pretrained on news)", "hf_encoder": "a pretrained Hugging Face encoder (MiniLM-L6)"}


def calibration(family: str) -> dict:
    """The calibrated rules of a model family: the top level of calibrated.json is our own GPT;
    other families (benchmarks/derive_rules.py --family F) sit under 'families'."""
    return CALIBRATED if family == "gpt" else CALIBRATED["families"][family]


def family_of(sources: list[dict]) -> tuple[str, str]:
    """-> (calibrated family to use, why). Hugging Face decoders have no calibration of their
    own: the encoder's is nearest for cost and ranking (their LRs: planner/decoder.py)."""
    kinds = {s.get("family", "gpt") for s in sources}
    fams = CALIBRATED.get("families", {})
    if kinds == {"gpt"} or not fams:
        return "gpt", f"calibration: {FAMILY_NAMES['gpt']} (the checkpoints are ours)" if kinds == {"gpt"} else \
            "calibration: only our GPT is calibrated; the checkpoints are not of that family"
    if kinds <= set(fams):
        (k,) = kinds if len(kinds) == 1 else ("hf_encoder",)
        return k, f"calibration: {FAMILY_NAMES.get(k, k)}, the family of the given checkpoints"
    return "hf_encoder", (f"calibration: {FAMILY_NAMES['hf_encoder']}: the nearest calibrated family to "
                          f"{', '.join(sorted(kinds))} (no calibration of their own)")


def bucket(n_train: int, cal: dict = CALIBRATED) -> str:
    """The calibrated data size nearest in log scale (100, 1000, 10000)."""
    sizes = sorted(int(s) for s in cal["buckets"])
    return str(min(sizes, key=lambda s: abs(math.log(s) - math.log(max(n_train, 1)))))
