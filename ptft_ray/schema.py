"""The config's schema: one dataclass per section, the model presets. Plain Python (no torch):
loading, overrides and validation are in config.py, which re-exports these names."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelConfig:
    preset: str = ""          # "seed_lstm" | "gpt_tiny" | "gpt_small": defaults under the user's keys
    arch: str = "gpt"         # "gpt" | "lstm"
    d_model: int = 128        # GPT width; LSTM embedding size
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 0             # 0 -> 4 * d_model
    hidden: int = 200         # LSTM hidden size
    max_seq_len: int = 256    # positions the model can attend over
    dropout: float = 0.0
    vocab_size: int = 0       # 0 -> taken from the tokenizer
    # a Hugging Face model (local directory with config.json + safetensors + tokenizer, or a hub
    # id where the network allows): its own architecture and tokenizer replace the keys above
    hf: str = ""


PRESETS = {
    # the seed design: Embedding(100) -> LSTM(200) -> Linear
    "seed_lstm": dict(arch="lstm", d_model=100, hidden=200, n_layers=1),
    "gpt_tiny": dict(arch="gpt", d_model=64, n_layers=2, n_heads=2, max_seq_len=128),
    "gpt_small": dict(arch="gpt", d_model=128, n_layers=4, n_heads=4, max_seq_len=256),
}


@dataclass
class DataConfig:
    path: str = ""              # file, directory or glob of .parquet / .jsonl / .txt
    format: str = "auto"        # auto | parquet | jsonl | text
    text_column: str = "text"
    tokenizer: str = "bpe"      # byte | bpe
    vocab_size: int = 4096      # BPE target vocabulary
    tokenizer_sample_docs: int = 2000
    seq_len: int = 128          # tokens per training example (blocks hold seq_len + 1)
    val_fraction: float = 0.05  # documents held out by a stable hash of their text
    max_val_blocks: int = 256
    docs_per_batch: int = 256   # documents per map_batches call (tokenize + pack)
    block_mb: int = 16          # Ray Data's target block size: bounds each read / tokenize task's memory
    stream_buffer_mb: int = 32  # object store the corpus stream may fill ahead of training (backpressure past it)
    shuffle_buffer: int = 0     # local shuffle buffer in rows (0 = stream order)
    # a corpus whose packed training blocks are expected to fit in this many MB is tokenized once
    # and kept in the object store: streamed, each epoch re-reads it and restarts the pipeline
    cache_mb: int = 256         # 0 = always stream


@dataclass
class OptimConfig:
    lr: float = 3e-4
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0      # 0 = off
    # language-model pretraining of a Hugging Face model: the LR of the LM head's own weights (a
    # head the checkpoint lacks starts random; its output bias alone must move by several nats to
    # reach the unigram level, which the encoder's LR does not do in a short run); 0 = optim.lr
    head_lr: float = 0.0


@dataclass
class ScheduleConfig:
    warmup_steps: int = 50
    max_steps: int = 500        # optimizer steps; 0 in fine-tuning -> from finetune.epochs
    min_lr_ratio: float = 0.1
    decay: str = "cosine"       # cosine | linear | constant
    # language-model pretraining of a Hugging Face model: only the LM head's own weights train
    # for this many first steps (a head the checkpoint lacks starts random; the encoder under
    # it would otherwise be trained towards noise from step 0)
    head_warmup_steps: int = 0


@dataclass
class TrainConfig:
    batch_size: int = 16        # micro-batch per worker
    grad_accum: int = 1         # global batch = batch_size * grad_accum * num_workers
    log_every: int = 10
    eval_every: int = 100       # steps between validation passes (0 = at the end only)
    eval_batches: int = 0       # 0 = the whole validation set
    precision: str = "auto"     # auto (GPU: bf16, or fp16 + loss scaling where it has no bf16) | fp32 | bf16 | fp16
    seed: int = 0
    threads: int = 0            # torch threads per worker (0 = leave torch's default)
    compile: bool = False       # torch.compile the training loss (model + loss fused; compiles once, ~30 s)
    trace_file: str = ""        # audit: every rank appends each step's sample fingerprints here
    activation_checkpointing: str = "auto"  # true | false | auto: per block, where the memory plan needs it
    loss_chunk_tokens: int = 0  # LM loss over chunks of this many positions (0 = auto: 128 MiB of fp32 logits a chunk)


@dataclass
class ScalingConfig:
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 0.0   # 0 = size from the cluster, leaving CPU for Ray Data
    gpus_per_worker: float = 1.0
    strategy: str = "auto"         # ddp | fsdp | auto: the memory plan picks (DDP where the model fits)
    gpu_memory_gb: float = 0.0     # a GPU's memory for the memory plan (0 = read from the cluster's GPUs)
    gpu_tflops: float = 0.0        # a GPU's dense bf16 peak, to size the corpus feed (0 = by the GPU's name)

    @property
    def gpus_in_use(self) -> float:
        """GPUs a worker holds: what evaluation, re-scoring and scoring next to it ask for too."""
        return self.gpus_per_worker if self.use_gpu else 0.0


@dataclass
class CheckpointConfig:
    every_steps: int = 100
    num_to_keep: int = 2


@dataclass
class ClusterConfig:
    # environment variables (names) forwarded to every worker of a running cluster, besides the
    # standard ones (cluster.FORWARDED_VARS: AWS, Hugging Face, Google Cloud, MLflow); values
    # are read on the driver and never printed
    forward_env: list[str] = field(default_factory=list)


@dataclass
class RunConfig:
    name: str = "pretrain"
    out_dir: str = "runs/pretrain"   # local path or a URI pyarrow understands
    # Ray Train restarts the worker group from the last checkpoint after a worker or node
    # failure, this many times (preemptions Ray is told of are retried without limit)
    max_failures: int = 3
    mlflow_uri: str = ""               # e.g. file:///tmp/mlruns or http://host:5000 (needs ptft_ray[mlflow])


@dataclass
class FinetuneConfig:
    data: str = ""              # classification file: parquet, csv or jsonl
    text_column: str = "text"
    label_column: str = "label"
    init_from: str = ""         # pretrained checkpoint dir; "none" = random initialisation
    strategy: str = "full"
    unfreeze_top_k: int = 1     # partial
    lora_rank: int = 8          # lora
    lora_alpha: float = 16.0
    lora_dora: bool = False     # lora: weight-decomposed adapters (DoRA, through peft)
    lr_decay: float = 0.8       # discriminative_lr: each lower group gets lr * decay
    unfreeze_every: int = 0     # gradual_unfreeze: steps per newly unfrozen group (0 = 1 epoch)
    epochs: float = 3.0
    max_len: int = 128          # tokens per example
    max_examples: int = 0       # 0 = all; else a stratified subset of the training split
    max_val_examples: int = 0   # 0 = all; else a stratified subset of the validation split (test stays whole)
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    head_dropout: float = 0.1
    evals_per_epoch: int = 2
    blend: str = "off"          # auto: blend the export with TF-IDF + LR where that wins on validation


@dataclass
class SweepConfig:
    name: str = "sweep"
    num_samples: int = 8
    search: str = "random"      # random | optuna
    scheduler: str = "asha"     # asha | none
    metric: str = "val_accuracy"
    mode: str = "max"
    strategies: list[str] = field(default_factory=lambda: ["full", "linear_probe", "lora"])
    lr_min: float = 1e-5
    lr_max: float = 3e-3
    lrs: list[float] = field(default_factory=list)  # explicit grid instead of the log-uniform range
    # per-strategy log-uniform LR range, e.g. {linear_probe: [1e-3, 3e-2]}; others use lr_min..lr_max
    lr_ranges: dict[str, list[float]] = field(default_factory=dict)
    grid_points: int = 0        # > 0: exhaustive grid, every strategy x this many LRs across its range
    weight_decays: list[float] = field(default_factory=lambda: [0.0, 0.01])
    batch_sizes: list[int] = field(default_factory=lambda: [32])
    epochs: list[float] = field(default_factory=lambda: [3.0])
    unfreeze_top_k: list[int] = field(default_factory=lambda: [1, 2])
    lora_ranks: list[int] = field(default_factory=lambda: [4, 8])
    lr_decays: list[float] = field(default_factory=lambda: [0.6, 0.8])
    grace_period: int = 1       # ASHA: evaluations before a trial may be stopped
    reduction_factor: int = 2
    max_concurrent_trials: int = 0   # 0 = as many as the cluster can run
    workers_per_trial: int = 1
    cpus_per_trial: float = 0.0      # 0 = sized from the cluster
    in_process: str = "auto"    # auto | always | never: run a one-worker trial without a TorchTrainer
    time_budget_s: float = 0.0  # 0 = no budget
    # Tune runs a failed trial again (from its last checkpoint) this many times: a trial lost
    # with its node; a trial failing in its own code (diverged, OOM) also runs once more
    max_failures: int = 1
    seed: int = 0
    # choosing the best trial: where trials were evaluated on a subset of the validation split
    # (finetune.max_val_examples), the top k by that metric are re-scored on a larger one
    # (rescore_val_examples; 0 = the whole split) and the best re-scored wins (1 = off)
    rescore_top_k: int = 3
    rescore_val_examples: int = 0
    # end trials (and the sweep) that cannot beat the best beyond validation noise
    # (finetune/stopping.py states the rule); the planner turns it on
    stop_on_noise: bool = False
