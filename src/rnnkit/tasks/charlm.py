"""charlm: a character-level LSTM language model, the main job of `make run`.

Corpus: by default Python's own standard library sources (no download; like the lecture's
character model trained on the Linux source), or --text FILE, or --dataset tinyshakespeare.
The first 90% of the characters train, the last 10% validate. The loss is in nats per
character (bits per character = nats / ln 2).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

import rnnkit
from rnnkit.data import StreamBatches, Vocabulary
from rnnkit.data.text import char_corpus, stdlib_source, tinyshakespeare
from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.run_dir import Checkpoint, RunDir
from rnnkit.tasks.base import Task, register
from rnnkit.tasks.common import add_common_arguments, device, run_dir, stream_nll, stream_sample, task_artifact
from rnnkit.train import OptimizerConfig, ScheduleConfig, StoppingConfig, TrainConfig, Trainer
from rnnkit.train.distributed import is_main_process

NAME = "charlm"
HELP = "character-level LSTM language model (the main job)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--text", default=None, help="train on this text file")
    src.add_argument("--dataset", default=None, choices=("tinyshakespeare",), help="train on a registered dataset")
    p.add_argument("--max-chars", type=int, default=2_000_000, help="characters of the default corpus")
    p.add_argument("--cell", default="lstm", choices=("lstm", "gru", "rnn"))
    p.add_argument("--hidden", type=int, default=256, help="hidden units per layer")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--embedding", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--bptt", type=int, default=100, help="characters per truncated-BPTT chunk")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--eval-every", type=int, default=500, help="optimizer steps between dev evaluations")
    p.add_argument("--samples", type=int, default=2, help="samples printed at the end")
    p.add_argument("--sample-length", type=int, default=300)
    p.add_argument("--temperature", type=float, default=0.8)
    add_common_arguments(p, minutes=3.0)


def corpus(args: argparse.Namespace) -> str:
    if args.text:
        path = Path(args.text)
        if not path.is_file():
            raise FileNotFoundError(f"--text {path}: no such file")
        return path.read_text(encoding="utf-8", errors="replace")
    if args.dataset == "tinyshakespeare":
        return tinyshakespeare(args.data_dir)
    return stdlib_source(args.max_chars)


def train(args: argparse.Namespace) -> RunDir:
    torch.manual_seed(args.seed)
    vocab, train_ids, valid_ids = char_corpus(corpus(args))
    model = LanguageModel(LanguageModelConfig(
        vocab_size=len(vocab), embedding_size=args.embedding, dropout=args.dropout,
        rnn={"cell": args.cell, "hidden_size": args.hidden, "num_layers": args.layers}))
    run = run_dir(NAME, args)
    if is_main_process():
        print(f"charlm: {len(train_ids):,} training and {len(valid_ids):,} validation characters, {len(vocab)} symbols, "
              f"{sum(p.numel() for p in model.parameters()):,} parameters; run directory {run.path}", file=sys.stderr)
    trainer = Trainer(
        model, StreamBatches(train_ids, args.batch_size, args.bptt, seed=args.seed),
        TrainConfig(optimizer=OptimizerConfig("adam", lr=args.lr), schedule=ScheduleConfig("plateau", patience=1),
                    stopping=StoppingConfig(epochs=args.epochs, minutes=args.minutes), clip_norm=5.0,
                    eval_every=args.eval_every, log_every=50, seed=args.seed),
        valid=StreamBatches(valid_ids, 8, args.bptt), run_dir=run, resume=bool(args.resume),
        device=device(args.device), progress=not args.no_progress,
        artifacts={Checkpoint.VOCAB: vocab.to_json(), Checkpoint.TASK: task_artifact(NAME, args)})
    result = trainer.fit()
    if not is_main_process():
        return run
    best = result["best_valid_loss"]
    if math.isfinite(best):
        print(f"charlm: best validation loss {best:.3f} nats/char ({best / math.log(2):.3f} bits/char); "
              f"{result['step']} steps in {result['seconds'] / 60:.1f} min", file=sys.stderr)
    return run


def evaluate(checkpoint: Checkpoint, split: str, args: dict) -> dict[str, float]:
    """The validation loss of a checkpoint (charlm has no test split), nats and bits per character."""
    if split != "valid":
        raise ValueError(f"charlm has only a validation split (the last 10% of the text). Received: --split {split}")
    vocab = Vocabulary.load(checkpoint.vocab)
    _, _, valid = char_corpus(corpus(argparse.Namespace(**args)), vocab=vocab)
    nll = stream_nll(rnnkit.load(checkpoint.path), valid)
    return {"split": split, "loss": nll, "bits_per_char": nll / math.log(2)}


def sample_prompt(args: argparse.Namespace) -> str:
    """How the samples after training start: a speaker, a Python keyword, or the text's first word."""
    if args.text:
        with open(args.text, encoding="utf-8", errors="replace") as f:
            words = f.read(200).split(maxsplit=1)
        return words[0] + " " if words else "\n"
    return "ROMEO:\n" if args.dataset == "tinyshakespeare" else "def "


def after_train(run: RunDir, args: argparse.Namespace) -> None:
    """Print ``--samples`` samples from the best checkpoint, and the command that makes more."""
    if not args.samples:
        return
    prompt = sample_prompt(args)
    for i in range(args.samples):
        print(f"\n--- sample {i + 1} (temperature {args.temperature}) ---")
        stream_sample(run.path, prompt, args.sample_length, temperature=args.temperature, seed=i)
    print(f"\n\nGenerate more with:\n  rnnkit generate {run.path} --prompt {prompt.strip()!r} --length 500 "
          f"--temperature {args.temperature}\n")


TASK = register(Task(NAME, HELP, __doc__, add_arguments, train, evaluate, after_train))
