"""A small training run for the resume and data-parallel tests (run as a script).

    python tests/train_job.py RUN_DIR [--kill-at STEP] [--die-in FUNCTION:N] [--resume] [--steps N]

Trains a character LSTM language model with dropout, random chunk lengths and gradient
accumulation (so that RNG, data position and accumulation must all be restored exactly),
checkpointing every 3 optimizer steps. --kill-at sends SIGKILL to itself right after that
optimizer step: no clean-up, no final checkpoint. --die-in save_file:4 sends it on the 4th
call of that function of rnnkit.train.checkpoint (inside a checkpoint write). A dev pass every
6 steps (on the last 20% of the text) keeps best/ up to date, so its copy is killed too.
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
    cut = int(len(ids) * 0.8)
    torch.manual_seed(0)
    model = LanguageModel(LanguageModelConfig(vocab_size=len(vocab), embedding_size=16, dropout=0.2,
                                              rnn={"cell": "lstm", "hidden_size": 32, "num_layers": 2}))
    train = StreamBatches(ids[:cut], batch_size, 12, random_length=True, seed=3)
    config = TrainConfig(OptimizerConfig("adam", lr=3e-3), stopping=StoppingConfig(max_steps=steps), accumulate=2,
                         clip_norm=1.0, checkpoint_every=3, eval_every=6, keep_last=2, log_every=5, seed=11)
    return Trainer(model, train, config, valid=StreamBatches(ids[cut:], 2, 12), run_dir=run_dir, resume=resume,
                   progress=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--kill-at", type=int, default=None)
    ap.add_argument("--die-in", default=None, metavar="FUNCTION:N")
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
    if args.die_in is not None:
        from rnnkit.train import checkpoint

        name, n = args.die_in.split(":")
        original, calls = getattr(checkpoint, name), [0]

        def die_on_the_nth_call(*a, **k):
            calls[0] += 1
            if calls[0] == int(n):
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*a, **k)

        setattr(checkpoint, name, die_on_the_nth_call)
    trainer.fit()
    sys.exit(0)


if __name__ == "__main__":
    main()
