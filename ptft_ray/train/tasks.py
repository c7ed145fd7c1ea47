"""The pretraining tasks: what the loop trains on, with its loss and metrics.

    LMTask    causal LM: our GPT / LSTM, or a Hugging Face decoder (packed blocks)
    MLMTask   masked LM: a Hugging Face encoder (packed blocks, 15 % of tokens masked)

A task is built by its spec (LMSpec here; fine-tuning's ClsSpec lives in finetune/task.py,
so this package never imports it) and gives the loop:
    model                       an nn.Module (not yet wrapped for DDP)
    loss(model, batch)          -> (sum of per-item losses, number of items)
    eval_stats(model, batch)    -> a 1-D float tensor that is summed over batches and workers
    metrics(stats)              -> {"val_...": ...} from the summed stats
    groups(spec)                -> the optimizer's parameter groups (ParamGroups)
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import Config, lm_head_settings
from ..errors import PtftError
from ..data.packing import padding
from ..models import build_lm
from ..models.lm_loss import IGNORE, chunk_tokens
from .param_groups import ParamGroups



class LMTask:
    name = "lm"
    unit = "tokens"

    def __init__(self, cfg: Config, vocab_size: int, pad_id: int, eot_id: int | None = None):
        self.pad_id, self.eot_id = pad_id, eot_id
        self.vocab_size, self.chunk_setting = vocab_size, cfg.train.loss_chunk_tokens
        self.model = build_lm(cfg.model, vocab_size)

    def loss(self, model, batch):
        x = batch["tokens"].long()
        inp, tgt = x[:, :-1], x[:, 1:].clone()      # predict token t+1 from tokens <= t
        tgt[padding(x, self.pad_id, self.eot_id)[:, 1:]] = IGNORE   # the padded tail of a packed block
        # the model sums the loss itself, in chunks of positions: no whole-batch fp32 logits
        loss = model(inp, targets=tgt, chunk=chunk_tokens(tgt.numel(), self.vocab_size, self.chunk_setting))
        return loss, (tgt != IGNORE).sum()

    def eval_stats(self, model, batch) -> torch.Tensor:
        loss, n = self.loss(model, batch)
        return torch.stack([loss.detach().float(), n.float()])

    def groups(self, spec) -> ParamGroups:
        """Every parameter at one LR; the LM head's own at optim.head_lr where set; with
        schedule.head_warmup_steps, all but the head's own stay frozen for those first steps."""
        cfg, params = spec.config, list(self.model.parameters())
        warm, lr = cfg.schedule.head_warmup_steps, cfg.optim.lr
        if not warm and not cfg.optim.head_lr:
            return ParamGroups([(params, lr)])
        head = {id(p) for p in getattr(self.model, "head_only_parameters", list)()}
        if not head:
            raise PtftError(f"{lm_head_settings(cfg)[0]}: "
                            f"{cfg.model.hf or cfg.model.arch} has no LM head of its own "
                            f"(its output layer is tied to the embeddings)")
        body = [p for p in params if id(p) not in head]
        return ParamGroups([(body, lr), ([p for p in params if id(p) in head], cfg.optim.head_lr or lr)],
                           frozen_until=[(warm, body)] if warm else [])

    def metrics(self, s: torch.Tensor) -> dict:
        val_loss = (s[0] / s[1].clamp_min(1)).item()
        return {"val_loss": val_loss, "val_perplexity": math.exp(min(val_loss, 50.0))}


class MLMTask(LMTask):
    """Masked LM (BERT): 15 % of the non-special tokens are chosen; of those 80 % become
    [MASK], 10 % a random token, 10 % stay; the loss is on the chosen ones only.

    Training masks come from a generator seeded by (seed, rank, step, micro-batch), set by
    the loop before each micro-batch, so a resumed run draws exactly the masks the
    uninterrupted one would have. Validation masks are seeded by the block's own content:
    every evaluation scores the same masked positions."""

    def __init__(self, cfg: Config, vocab_size: int, pad_id: int, mask_id: int, special_ids: list[int]):
        super().__init__(cfg, vocab_size, pad_id)
        if mask_id is None:
            raise PtftError(f"model.hf={cfg.model.hf}: its tokenizer has no mask token, needed for masked-LM pretraining")
        self.vocab_size, self.mask_id = vocab_size, mask_id
        self.special = torch.tensor(sorted(set(special_ids) | {pad_id}))
        self.gen = torch.Generator().manual_seed(cfg.train.seed)

    def reseed(self, seed: int, rank: int, step: int, micro: int) -> None:
        self.gen.manual_seed(((seed * 1_000_003 + rank) * 1_000_003 + step) * 1_000 + micro)

    def mask(self, x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (input ids with masks applied, labels: the original id where chosen, else IGNORE)."""
        xc = x.cpu()
        chosen = (torch.rand(xc.shape, generator=gen) < 0.15) & ~torch.isin(xc, self.special)
        labels = torch.where(chosen, xc, torch.full_like(xc, IGNORE))
        roll = torch.rand(xc.shape, generator=gen)
        random_ids = torch.randint(0, self.vocab_size, xc.shape, generator=gen)
        inp = torch.where(chosen & (roll < 0.8), torch.full_like(xc, self.mask_id), xc)
        inp = torch.where(chosen & (roll >= 0.8) & (roll < 0.9), random_ids, inp)
        return inp.to(x.device), labels.to(x.device)

    def loss(self, model, batch, gen: torch.Generator | None = None):
        x = batch["tokens"].long()
        if "mlm_labels" in batch:  # masks drawn by the caller (the DDP reference check)
            inp, labels = x, batch["mlm_labels"].long()
        else:
            inp, labels = self.mask(x, gen or self.gen)
        chosen = labels != IGNORE
        logits = model(inp, x != self.pad_id, chosen)  # [n chosen, V]: the head only where it is scored
        loss = F.cross_entropy(logits.float(), labels[chosen], reduction="sum")
        return loss, chosen.sum()

    def seen(self, batch) -> torch.Tensor:
        """Throughput counts every input token, not only the ~15 % the loss is on."""
        return (batch["tokens"] != self.pad_id).sum()

    def eval_stats(self, model, batch) -> torch.Tensor:
        seed = zlib.crc32(batch["tokens"].cpu().numpy().tobytes())
        loss, n = self.loss(model, batch, torch.Generator().manual_seed(seed))
        return torch.stack([loss.detach().float(), n.float()])


@dataclass(frozen=True)
class LMSpec:
    """Language-model pretraining: causal (clm) or masked (mlm), and the token ids it needs."""
    objective: str
    vocab_size: int
    pad_id: int
    eot_id: int | None = None
    mask_id: int | None = None
    special_ids: tuple[int, ...] = ()

    def build(self, spec) -> LMTask:
        if self.objective == "mlm":
            return MLMTask(spec.config, self.vocab_size, self.pad_id, self.mask_id, list(self.special_ids))
        return LMTask(spec.config, self.vocab_size, self.pad_id, self.eot_id)

    def meta(self) -> dict:
        return {"vocab_size": self.vocab_size, "pad_id": self.pad_id, "eot_id": self.eot_id,
                "task_info": None, "objective": self.objective}
