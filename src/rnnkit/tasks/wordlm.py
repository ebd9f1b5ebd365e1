"""wordlm: the PTB word-level language models of Zaremba, Sutskever & Vinyals (2014).

Their loss is summed over the BPTT steps (and averaged over the batch); rnnkit averages over
every token, so their learning rate and clipping threshold are multiplied and divided by
the number of steps: small's lr 1 and clip 5 over 20 steps are lr 20 and clip 0.25 here.
The initial state is zero at each epoch's start and carried across chunks; test
perplexity is measured with the best (dev) checkpoint.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import torch

import rnnkit
from rnnkit.data import StreamBatches
from rnnkit.data.text import ptb
from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.run_dir import Checkpoint, RunDir
from rnnkit.tasks.base import Task, register
from rnnkit.tasks.common import add_common_arguments, device, progress, run_dir, stream_nll, task_trainer
from rnnkit.train import OptimizerConfig, ScheduleConfig, StoppingConfig
from rnnkit.train.distributed import is_main_process

NAME = "wordlm"
HELP = "PTB word-level LSTM language model (Zaremba et al. 2014 configurations)"

# Zaremba et al. 2014, Table 1; published test perplexities: small 114.5, medium 82.7, large 78.4
PRESETS = {
    "small": dict(hidden=200, bptt=20, dropout=0.0, init=0.1, lr=1.0, clip=5.0, epochs=13, decay_start=4, decay=0.5),
    "medium": dict(hidden=650, bptt=35, dropout=0.5, init=0.05, lr=1.0, clip=5.0, epochs=39, decay_start=6, decay=1 / 1.2),
    "large": dict(hidden=1500, bptt=35, dropout=0.65, init=0.04, lr=1.0, clip=10.0, epochs=55, decay_start=14,
                  decay=1 / 1.15),
}
PUBLISHED_TEST_PPL = {"small": 114.5, "medium": 82.7, "large": 78.4}
BATCH = 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="small", choices=sorted(PRESETS),
                   help="Zaremba et al.'s configuration (called --config before rnnkit 0.3)")
    add_common_arguments(p)


def preset_epochs(args: argparse.Namespace) -> dict[str, Any]:
    """--preset's number of epochs, when --epochs is not given."""
    return {"epochs": PRESETS[args.preset]["epochs"]}


def train(args: argparse.Namespace) -> RunDir:
    cfg = PRESETS[args.preset]
    torch.manual_seed(args.seed)
    vocab, splits = ptb(args.data_dir)
    H = cfg["hidden"]
    model = LanguageModel(LanguageModelConfig(vocab_size=len(vocab), embedding_size=H, dropout=cfg["dropout"],
                                              rnn={"cell": "lstm", "hidden_size": H, "num_layers": 2},
                                              init_range=cfg["init"]))
    model.vocab = vocab
    run = run_dir(NAME, args)
    T = cfg["bptt"]
    if is_main_process():
        print(f"wordlm {args.preset}: {sum(p.numel() for p in model.parameters()):,} parameters; run directory {run.path}",
              file=sys.stderr)
    trainer = task_trainer(
        NAME, model, StreamBatches(splits["train"], BATCH, T), StreamBatches(splits["valid"], BATCH, T), run, args,
        stopping=StoppingConfig(epochs=args.epochs, minutes=args.minutes),
        optimizer=OptimizerConfig("sgd", lr=cfg["lr"] * T),
        schedule=ScheduleConfig("step", decay_start=cfg["decay_start"], decay_factor=cfg["decay"]),
        clip_norm=cfg["clip"] / T, log_every=100)
    result = trainer.fit()
    if not is_main_process() or result["already_finished"]:
        return run
    best = rnnkit.load(run.best.path, map_location=trainer.device) if run.best.exists() else model
    test = math.exp(stream_nll(best, splits["test"], trainer.device, show_progress=progress(args)))
    summary = {"preset": args.preset, "best_valid_ppl": math.exp(result["best_valid_loss"]), "test_ppl": test,
               "published_test_ppl": PUBLISHED_TEST_PPL[args.preset], "epochs": result["epoch"],
               "wall_minutes": result["seconds"] / 60}
    run.results.write_text(json.dumps(summary, indent=2))
    print(f"wordlm {args.preset}: dev perplexity {summary['best_valid_ppl']:.1f}, test perplexity {test:.1f} "
          f"(published {PUBLISHED_TEST_PPL[args.preset]}), {summary['wall_minutes']:.0f} min", file=sys.stderr)
    return run


def evaluate(checkpoint: Checkpoint, split: str, args: argparse.Namespace) -> dict[str, float]:
    """Perplexity of a checkpoint on PTB's valid or test text, read as one stream."""
    _, splits = ptb(args.data_dir)
    dev = device(args.device)
    nll = stream_nll(rnnkit.load(checkpoint.path, map_location=dev), splits[split], dev, show_progress=progress(args))
    return {"words": len(splits[split]), "loss": nll, "ppl": math.exp(nll)}


TASK = register(Task(NAME, HELP, __doc__, add_arguments, train, evaluate, ("valid", "test"),
                     dependent_defaults=preset_epochs))
