"""Knowledge distillation as a loop task (Hinton et al. 2015): the student matches the
teacher's probabilities softened by a temperature T, mixed with the hard labels:

    loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, label)

T^2 keeps the soft term's gradients at the scale of the hard one's as T grows. Rows of the
unlabeled transfer set carry label -1 and learn from the teacher alone. The teacher's
probabilities were computed once (Ray Data batch inference) at T = 1; softmax(log p / T)
is the teacher's softmax(logits / T) exactly, since log p = logits - logsumexp(logits).

Validation and checkpoints are the classification task's: a distilled student is an
ordinary fine-tuned classifier (export, evaluate, predict, serve, quantize all take it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from dataclasses import dataclass

from ..finetune.task import ClsSpec, ClsTask, trim


@dataclass(frozen=True)
class DistillSpec(ClsSpec):
    """The classification task with the teacher's probabilities: temperature T and the soft
    term's weight alpha."""
    temperature: float = 2.0
    alpha: float = 0.5

    def build(self, spec) -> "DistillTask":
        return DistillTask(spec, self)


class DistillTask(ClsTask):
    def __init__(self, spec, info: DistillSpec):
        super().__init__(spec, info)
        self.T, self.alpha = float(info.temperature), float(info.alpha)

    def _student_log_probs(self, logits: torch.Tensor, T: float) -> torch.Tensor:
        if logits.ndim == 1:  # our binary models: one logit z for labels[1]
            z = logits.float() / T
            return torch.stack([F.logsigmoid(-z), F.logsigmoid(z)], dim=-1)
        return F.log_softmax(logits.float() / T, dim=-1)

    def loss(self, model, batch):
        ids, mask = trim(batch["input_ids"].long(), batch["length"])
        logits = model(ids, mask)
        teacher = F.softmax(torch.log(batch["teacher_probs"].float().clamp_min(1e-8)) / self.T, dim=-1)
        soft = F.kl_div(self._student_log_probs(logits, self.T), teacher, reduction="none").sum(-1) * self.T ** 2
        y = batch["label"].long()
        labeled = y >= 0
        hard = F.nll_loss(self._student_log_probs(logits, 1.0), y.clamp_min(0), reduction="none") * labeled
        total = (self.alpha * soft + (1 - self.alpha) * hard).sum()
        return total, torch.tensor(y.numel(), device=y.device)
