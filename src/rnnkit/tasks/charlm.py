"""charlm: a character-level LSTM language model, the main job of `make run`.

Corpus: by default Python's own standard library sources (no download; like a character
model trained on the Linux source), or --text FILE (UTF-8), or --dataset tinyshakespeare.
The first 90% of the characters train, the last 10% validate. The loss is in nats per
character (bits per character = nats / ln 2).

The run is bounded by optimiser steps (1,200 when no --max-steps, --epochs or --minutes is
given), so it gives the same model on any machine, however loaded; --minutes adds (or, alone,
is) a wall-clock bound. During training each dev pass
reads a fixed slice of the validation text (--eval-batches); at the end the best checkpoint
is scored on the whole validation text.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

import rnnkit
from rnnkit.arguments import add_sampling_arguments, fraction, nonnegative_int, positive_int, positive_float
from rnnkit.data import StreamBatches, Vocabulary
from rnnkit.data.text import char_corpus, stdlib_source, tinyshakespeare
from rnnkit.files import write_text_atomic
from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.run_dir import Checkpoint, RunDir
from rnnkit.tasks.base import Task, register
from rnnkit.tasks.common import (add_common_arguments, device, progress, read_text, run_dir, stream_nll,
                                 stream_sample, task_trainer)
from rnnkit.train import OptimizerConfig, ScheduleConfig
from rnnkit.train.distributed import is_main_process

NAME = "charlm"
HELP = "character-level LSTM language model (the main job)"
VALID_STREAMS = 8  # the validation text is read as this many parallel streams, the state carried in each


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--text", default=None, help="train on this UTF-8 text file")
    src.add_argument("--dataset", default=None, choices=("tinyshakespeare",), help="train on a registered dataset")
    p.add_argument("--max-chars", type=positive_int, default=2_000_000, help="characters of the default corpus")
    p.add_argument("--cell", default="lstm", choices=("lstm", "gru", "rnn"), help="recurrent cell")
    p.add_argument("--hidden", type=positive_int, default=256, help="hidden units per layer")
    p.add_argument("--layers", type=positive_int, default=2, help="recurrent layers")
    p.add_argument("--embedding", type=positive_int, default=64, help="size of the character embeddings")
    p.add_argument("--dropout", type=fraction, default=0.1, help="dropout on embeddings and outputs")
    p.add_argument("--batch-size", type=positive_int, default=32, help="parallel streams per batch")
    p.add_argument("--bptt", type=positive_int, default=100, help="characters per truncated-BPTT chunk")
    p.add_argument("--lr", type=positive_float, default=3e-3, help="Adam's learning rate")
    p.add_argument("--eval-every", type=positive_int, default=200, help="optimiser steps between dev evaluations")
    p.add_argument("--eval-batches", type=positive_int, default=50,
                   help="dev batches per evaluation during training (a fixed slice); the end reads all")
    p.add_argument("--samples", type=nonnegative_int, default=2, help="samples printed at the end")
    add_sampling_arguments(p, length=300, temperature_default=0.8)
    add_common_arguments(p)


def corpus(args: argparse.Namespace) -> str:
    if args.text:
        return read_text(Path(args.text), "--text")
    if args.dataset == "tinyshakespeare":
        return tinyshakespeare(args.data_dir)
    return stdlib_source(args.max_chars)


DEFAULT_STEPS = 1200  # the main job's bound: about 3 minutes on 2 idle cores


def step_bound(args: argparse.Namespace) -> dict[str, Any]:
    """--max-steps 1,200 when the run has no bound at all."""
    unbounded = args.max_steps is None and args.epochs is None and args.minutes is None
    return {"max_steps": DEFAULT_STEPS} if unbounded else {}


def train(args: argparse.Namespace) -> RunDir:
    torch.manual_seed(args.seed)
    vocab, train_ids, valid_ids = char_corpus(corpus(args))
    model = LanguageModel(LanguageModelConfig(
        vocab_size=len(vocab), embedding_size=args.embedding, dropout=args.dropout,
        rnn={"cell": args.cell, "hidden_size": args.hidden, "num_layers": args.layers}))
    model.vocab = vocab
    run = run_dir(NAME, args)
    if is_main_process():
        bounds = ", ".join(f"{n} {getattr(args, k)}" for k, n in (("max_steps", "steps"), ("epochs", "epochs"),
                                                                   ("minutes", "minutes")) if getattr(args, k))
        print(f"charlm: {len(train_ids):,} training and {len(valid_ids):,} validation characters, {len(vocab)} symbols, "
              f"{sum(p.numel() for p in model.parameters()):,} parameters; at most {bounds}; run directory {run.path}",
              file=sys.stderr)
    trainer = task_trainer(
        NAME, model, StreamBatches(train_ids, args.batch_size, args.bptt, seed=args.seed),
        StreamBatches(valid_ids, VALID_STREAMS, args.bptt), run, args, optimizer=OptimizerConfig("adam", lr=args.lr),
        schedule=ScheduleConfig("plateau", patience=1), clip_norm=5.0, eval_every=args.eval_every,
        eval_batches=args.eval_batches, log_every=25)
    result = trainer.fit()
    if not is_main_process() or result["already_finished"]:
        return run
    started = time.time()
    best = rnnkit.load(run.path, map_location=trainer.device)
    nll = stream_nll(best, valid_ids, trainer.device, args.bptt, VALID_STREAMS, progress(args))
    summary = {"step": result["step"], "train_minutes": result["seconds"] / 60,
               "best_slice_loss": result["best_valid_loss"], "valid_loss": nll, "valid_bits_per_char": nll / math.log(2),
               "valid_chars": len(valid_ids), "eval_seconds": time.time() - started}
    run.results.write_text(json.dumps(summary, indent=2))
    print(f"charlm: {result['step']} steps in {summary['train_minutes']:.1f} min; best checkpoint on all "
          f"{len(valid_ids):,} validation characters: {nll:.3f} nats/char ({nll / math.log(2):.3f} bits/char), "
          f"evaluated in {summary['eval_seconds']:.0f} s", file=sys.stderr)
    return run


def evaluate(checkpoint: Checkpoint, split: str, args: argparse.Namespace) -> dict[str, float]:
    """The validation loss of a checkpoint (the last 10% of the text), nats and bits per character."""
    vocab = Vocabulary.load(checkpoint.vocab)
    _, _, valid = char_corpus(corpus(args), vocab=vocab)
    dev = device(args.device)
    nll = stream_nll(rnnkit.load(checkpoint.path, map_location=dev), valid, dev, args.bptt, VALID_STREAMS,
                     progress(args))
    return {"characters": len(valid), "loss": nll, "bits_per_char": nll / math.log(2)}


def sample_prompt(args: argparse.Namespace) -> str:
    """How the samples after training start: a speaker, a Python keyword, or the text's first word."""
    if args.text:
        words = read_text(Path(args.text), "--text")[:200].split(maxsplit=1)
        return words[0] + " " if words else "\n"
    return "ROMEO:\n" if args.dataset == "tinyshakespeare" else "def "


def after_train(run: RunDir, args: argparse.Namespace) -> None:
    """Print ``--samples`` samples from the best checkpoint (and keep them in samples/), and the
    command that makes more."""
    if not args.samples:
        return
    prompt = sample_prompt(args)
    run.samples.mkdir(exist_ok=True)
    for i in range(args.samples):
        print(f"\n--- sample {i + 1} (temperature {args.temperature}) ---")
        text = stream_sample(run.path, prompt, args.length, temperature=args.temperature, top_k=args.top_k,
                             top_p=args.top_p, seed=i, greedy=args.greedy)
        write_text_atomic(run.samples / f"sample_{i + 1}.txt", text)
    print(f"\n\nGenerate more with:\n  rnnkit generate {run.path} --prompt {prompt.strip()!r} --length 500 "
          f"--temperature {args.temperature}\n")


TASK = register(Task(NAME, HELP, __doc__, add_arguments, train, evaluate, ("valid",), after_train,
                     dependent_defaults=step_bound))
