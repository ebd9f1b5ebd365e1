"""A small training run for the resume and data-parallel tests (run as a script).

    python tests/train_job.py RUN_DIR [--kill-at STEP] [--resume] [--steps N]

Trains a character LSTM language model with dropout, random chunk lengths and gradient
accumulation (so that RNG, data position and accumulation must all be restored exactly),
checkpointing every 3 optimizer steps. --kill-at sends SIGKILL to itself right after that
optimizer step: no clean-up, no final checkpoint.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import torch

from rnnkit.data import StreamBatches
from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.train import OptimizerConfig, StoppingConfig, TrainConfig, Trainer

TEXT = "a recurrent network reads one symbol at a time and keeps a state. " * 40


def build(run_dir: str, resume: bool, steps: int, batch_size: int = 8) -> Trainer:
    vocab = sorted(set(TEXT))
    ids = torch.tensor([vocab.index(c) for c in TEXT])
    torch.manual_seed(0)
    model = LanguageModel(LanguageModelConfig(vocab_size=len(vocab), embedding_size=16, dropout=0.2,
                                              rnn={"cell": "lstm", "hidden_size": 32, "num_layers": 2}))
    train = StreamBatches(ids, batch_size, 12, random_length=True, seed=3)
    config = TrainConfig(OptimizerConfig("adam", lr=3e-3), stopping=StoppingConfig(max_steps=steps), accumulate=2,
                         clip_norm=1.0, checkpoint_every=3, keep_last=2, log_every=5, seed=11)
    return Trainer(model, train, config, run_dir=run_dir, resume=resume, progress=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--kill-at", type=int, default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    trainer = build(args.run_dir, args.resume, args.steps)
    if args.kill_at is not None:
        step = trainer._apply_gradients

        def step_then_maybe_die() -> float:
            norm = step()
            if trainer.step == args.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return norm

        trainer._apply_gradients = step_then_maybe_die
    trainer.fit()
    sys.exit(0)


if __name__ == "__main__":
    main()
