"""A character language model trained with the Trainer; the run directory it writes is the
same as `rnnkit train` writes, so `rnnkit generate RUN`, `rnnkit evaluate RUN --text FILE` and
`rnnkit plot RUN` work on it.

    python examples/train_lm.py [--quick] [--text FILE] [--runs runs]
"""

import argparse
from pathlib import Path

import rnnkit
from rnnkit.data import StreamBatches
from rnnkit.data.text import char_corpus, stdlib_source
from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.run_dir import RunDir
from rnnkit.train import OptimizerConfig, ScheduleConfig, StoppingConfig, TrainConfig, Trainer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--text", default=None, help="a UTF-8 text file (default: Python's own sources)")
    ap.add_argument("--runs", default="runs")
    args = ap.parse_args()
    text = Path(args.text).read_text(encoding="utf-8") if args.text else stdlib_source(100_000 if args.quick else 1_000_000)
    vocab, train_ids, valid_ids = char_corpus(text)
    model = LanguageModel(LanguageModelConfig(vocab_size=len(vocab), embedding_size=32,
                                              rnn={"cell": "lstm", "hidden_size": 32 if args.quick else 256,
                                                   "num_layers": 2}))
    model.vocab = vocab  # saved with every checkpoint: text in, text out
    run = RunDir.new(args.runs, "example-charlm").path  # runs/example-charlm-<time>, never an old one
    trainer = Trainer(model, StreamBatches(train_ids, batch_size=16, bptt=64),
                      TrainConfig(optimizer=OptimizerConfig("adam", lr=3e-3), schedule=ScheduleConfig("plateau"),
                                  stopping=StoppingConfig(max_steps=20 if args.quick else 600), clip_norm=5.0,
                                  eval_every=10 if args.quick else 200, eval_batches=20),
                      valid=StreamBatches(valid_ids, 8, 64), run_dir=run)
    result = trainer.fit()
    print(f"{result['step']} steps, best dev loss {result['best_valid_loss']:.3f} nats/char; run directory {run}")
    best = rnnkit.load(run)  # the run's best checkpoint, with its vocabulary
    print(best.generate("def ", 120, temperature=0.8))


if __name__ == "__main__":
    main()
