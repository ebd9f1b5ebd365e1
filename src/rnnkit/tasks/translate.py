"""translate: English -> French with an encoder-decoder and attention, on Tatoeba sentence pairs.

Data: ``eng_fra/fra.txt`` (142,787 pairs), normalised and split 90/5/5 by distinct English
sentence, seeded (:mod:`rnnkit.data.translation`): all the translations of a test sentence
are test references, none was seen in training. ``--subset tutorial`` keeps the PyTorch
tutorial's pairs (fewer than 10 tokens a side, English starting "i am", "he is", "she is",
"you are", "we are", "they are" or their contractions; 9,826 training pairs); ``--subset
all`` every pair of at most 20 tokens a side (128,035).

Each side is cut into subwords by its own sentencepiece model, learnt on that side of the
training split only (:mod:`rnnkit.data.subwords`). The model is :class:`rnnkit.models.Seq2Seq`:
a bidirectional LSTM encoder, an LSTM decoder with attention (``--attention additive``,
Bahdanau's score, ``general`` or ``dot``, Luong's; ``none``: the fixed-size context),
optionally input feeding, dropout, label smoothing, scheduled sampling
(``--teacher-forcing``). The best checkpoint is the one of lowest dev cross-entropy.

    rnnkit evaluate RUN --split test     sacreBLEU and chrF, greedy and beam
    rnnkit evaluate RUN --split test:tutorial     the same on the tutorial subset's test sentences
    rnnkit translate RUN "I am cold." [--beam 5] [--attention out.png]

BLEU and chrF are corpus scores (sacreBLEU, default 13a tokenisation, case-sensitive) over the
distinct source sentences of the split, each against *all* its reference translations
(``bleu``), and — the single-reference figure — over the pairs, each source's translation
against that pair's one reference (``bleu_single``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from typing import Any

import torch

from rnnkit.arguments import add_beam_arguments, fraction, positive_float, positive_int
from rnnkit.data import SequenceBatches, by_length, pad, require
from rnnkit.data.subwords import BOS, EOS, SubwordTokenizer
from rnnkit.data.translation import SUBSETS, Pair, read_pairs, split_by_source, with_references
from rnnkit.files import write_text_atomic
from rnnkit.models import Seq2Seq, Seq2SeqConfig
from rnnkit.models.attention import SCORES
from rnnkit.run_dir import Checkpoint, RunDir
from rnnkit.tasks.base import Task, register
from rnnkit.tasks.common import add_common_arguments, device, fit_and_score, progress, run_dir, task_trainer
from rnnkit.train import OptimizerConfig, ScheduleConfig, StoppingConfig
from rnnkit.train.distributed import is_main_process
from rnnkit.translation import SOURCE_MODEL, TARGET_MODEL, Translator

NAME = "translate"
HELP = "English -> French translation: encoder-decoder with attention on Tatoeba pairs, BLEU and chrF"
#: per subset, the defaults of --vocab-size (subword pieces per side) and --dropout (chosen on dev:
#: the 128,035 pairs of "all" need less regularisation than the 9,826 of "tutorial")
DEFAULTS = {"tutorial": {"vocab_size": 4000, "dropout": 0.3}, "all": {"vocab_size": 8000, "dropout": 0.1}}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--subset", choices=sorted(SUBSETS), default="tutorial",
                   help="tutorial: the PyTorch tutorial's filter; all: every pair of at most 20 tokens a side")
    p.add_argument("--vocab-size", type=positive_int, default=None,
                   help="subword pieces per language (default: 4000 for tutorial, 8000 for all)")
    p.add_argument("--embedding", type=positive_int, default=256, help="embedding size, source and target")
    p.add_argument("--hidden", type=positive_int, default=256, help="encoder LSTM units per direction")
    p.add_argument("--decoder-hidden", type=positive_int, default=256, help="decoder LSTM units")
    p.add_argument("--layers", type=positive_int, default=1, help="layers of the encoder and of the decoder")
    p.add_argument("--attention", choices=("none", *SCORES), default="additive",
                   help="additive (Bahdanau), general or dot (Luong), or none (the fixed-size context)")
    p.add_argument("--input-feeding", action=argparse.BooleanOptionalAction, default=False,
                   help="feed the previous attentional state to the decoder (Luong); without it teacher-forced "
                        "training runs the decoder over the whole target at once")
    p.add_argument("--dropout", type=fraction, default=None,
                   help="dropout on embeddings, between layers and before the output (default: 0.3 for tutorial, "
                        "0.1 for all)")
    p.add_argument("--label-smoothing", type=fraction, default=0.1, help="label smoothing of the training loss")
    p.add_argument("--tie-embeddings", action=argparse.BooleanOptionalAction, default=True,
                   help="the output layer shares the target embedding (needs --embedding == --decoder-hidden)")
    p.add_argument("--teacher-forcing", type=fraction, default=1.0,
                   help="probability of feeding the gold previous word in training (below 1: scheduled sampling "
                        "at a fixed rate, decoded step by step)")
    p.add_argument("--init-from", metavar="RUN", default=None,
                   help="fine-tune: start from this translation run's best weights and subword models (its "
                        "architecture and vocabulary replace --vocab-size ... --tie-embeddings; --dropout and "
                        "--label-smoothing are this run's)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="sentence pairs per batch")
    p.add_argument("--lr", type=positive_float, default=2e-3, help="Adam's learning rate")
    add_beam_arguments(p)
    p.add_argument("--eval-every", type=positive_int, default=1000,
                   help="optimiser steps between dev passes (at most; at least once an epoch)")
    p.add_argument("--early-stopping", type=positive_int, default=4,
                   help="stop after this many dev passes in a row without a lower dev loss")
    add_common_arguments(p, minutes=25.0, epochs=60)


@functools.lru_cache(maxsize=2)
def pairs(subset: str, data_dir: str | None) -> dict[str, list[Pair]]:
    """The subset's pairs of each split (read once per process: training, its dev scoring and
    the examples after it all need them; callers only read them)."""
    keep = SUBSETS[subset]
    split = split_by_source(read_pairs(require("eng_fra", data_dir) / "fra.txt"), seed=0)
    return {name: [p for p in items if keep(p)] for name, items in split.items()}


def batches(items: list[Pair], source: SubwordTokenizer, target: SubwordTokenizer, size: int) -> list[dict[str, Any]]:
    """Batches of pairs of similar source length: source ids, and the target as decoder input
    (bos y_1 .. y_n) and output (y_1 .. y_n eos)."""
    encoded = [(source.encode(s), target.encode(t)) for s, t in items]
    out = []
    for part in by_length(encoded, size, lambda item: len(item[0])):
        src, src_lengths = pad([torch.tensor(s) for s, _ in part])
        tgt_in, tgt_lengths = pad([torch.tensor([BOS, *t]) for _, t in part])
        tgt_out, _ = pad([torch.tensor([*t, EOS]) for _, t in part])
        out.append({"input": src, "lengths": src_lengths, "decoder_input": tgt_in, "target": tgt_out,
                    "target_lengths": tgt_lengths})
    return out


def subset_defaults(args: argparse.Namespace) -> dict[str, Any]:
    """The defaults of --subset's data (see :data:`DEFAULTS`)."""
    return DEFAULTS[args.subset]


def fine_tuned(args: argparse.Namespace) -> tuple[Seq2Seq, SubwordTokenizer, SubwordTokenizer]:
    """--init-from's model (with this run's dropout and label smoothing) and subword models; the
    architecture options of ``args`` become the model's, so that task.json says what was trained."""
    try:
        start = Translator.load(args.init_from)
    except (FileNotFoundError, ValueError) as e:
        raise type(e)(f"--init-from: {e}") from None
    c = start.model.config
    config = dataclasses.replace(c, dropout=args.dropout, label_smoothing=args.label_smoothing,
                                 encoder={**c.encoder, "dropout": args.dropout})
    model = Seq2Seq(config)
    model.load_state_dict(start.model.state_dict())
    args.vocab_size = None  # the subword models are --init-from's
    args.embedding, args.hidden, args.layers = c.embedding_size, c.encoder["hidden_size"], c.decoder_layers
    args.decoder_hidden, args.attention, args.input_feeding = c.decoder_hidden, c.attention, c.input_feeding
    args.tie_embeddings = c.tie_embeddings
    return model, start.source, start.target


def train(args: argparse.Namespace) -> RunDir:
    torch.manual_seed(args.seed)
    data = pairs(args.subset, args.data_dir)
    if args.init_from is not None:
        model, source, target = fine_tuned(args)
    else:
        source = SubwordTokenizer.train([s for s, _ in data["train"]], args.vocab_size)
        target = SubwordTokenizer.train([t for _, t in data["train"]], args.vocab_size)
        model = Seq2Seq(Seq2SeqConfig(
            src_vocab=len(source), tgt_vocab=len(target), bos=BOS, eos=EOS, embedding_size=args.embedding,
            encoder={"cell": "lstm", "hidden_size": args.hidden, "bidirectional": True, "num_layers": args.layers,
                     "dropout": args.dropout},
            decoder_hidden=args.decoder_hidden, decoder_layers=args.layers, attention=args.attention,
            input_feeding=args.input_feeding, dropout=args.dropout, label_smoothing=args.label_smoothing,
            tie_embeddings=args.tie_embeddings))
    run = run_dir(NAME, args)
    if is_main_process():
        print(f"translate ({args.subset}): {len(data['train']):,} training pairs, {len(data['valid']):,} dev; "
              f"{len(source):,} English and {len(target):,} French subwords; "
              f"{sum(p.numel() for p in model.parameters()):,} parameters"
              f"{f', fine-tuned from {args.init_from}' if args.init_from else ''}; run directory {run.path}",
              file=sys.stderr)
    train_batches = batches(data["train"], source, target, args.batch_size)
    every = min(args.eval_every, len(train_batches))
    stopping = StoppingConfig(epochs=args.epochs, max_steps=args.max_steps, minutes=args.minutes,
                              early_stopping=args.early_stopping)
    trainer = task_trainer(
        NAME, model, SequenceBatches.prebuilt(train_batches, seed=args.seed),
        SequenceBatches.prebuilt(batches(data["valid"], source, target, 256), shuffle=False), run, args,
        artifacts={SOURCE_MODEL: source.model, TARGET_MODEL: target.model}, stopping=stopping,
        eval_every=every, checkpoint_every=every,
        optimizer=OptimizerConfig("adam", lr=args.lr), schedule=ScheduleConfig("plateau", patience=0),
        clip_norm=5.0, log_every=100, teacher_forcing=args.teacher_forcing)
    done = fit_and_score(trainer, run, lambda best: evaluate(best, "valid", args))
    if done is None:
        return run
    result, scores = done
    print(f"translate: {result['step']} steps in {result['seconds'] / 60:.1f} min; dev BLEU greedy "
          f"{scores['bleu_greedy']:.1f}, beam {args.beam} {scores['bleu_beam']:.1f}", file=sys.stderr)
    return run


def scores(hypotheses: list[str], references: list[list[str]]) -> dict[str, Any]:
    """Corpus BLEU and chrF of ``hypotheses``, each against all its references (sacreBLEU takes
    reference streams of one length: a source with fewer references repeats its first, which
    changes no score)."""
    from sacrebleu.metrics import BLEU, CHRF

    width = max(len(r) for r in references)
    streams = [[r[k] if k < len(r) else r[0] for r in references] for k in range(width)]
    bleu, chrf = BLEU(), CHRF()
    return {"bleu": bleu.corpus_score(hypotheses, streams).score, "chrf": chrf.corpus_score(hypotheses, streams).score,
            "signature": str(bleu.get_signature())}


def evaluate(checkpoint: Checkpoint, split: str, args: argparse.Namespace) -> dict[str, Any]:
    """sacreBLEU and chrF of greedy and beam translations of the split's distinct sources, with
    all references and with each pair's one (see the module docstring). "test" is the run's
    subset's test split; "test:tutorial" the tutorial subset's (a run on ``all`` scored on the
    tutorial's sentences, all of which are in its own test split)."""
    translator = Translator.load(checkpoint.path, device(args.device))
    name, _, subset = split.partition(":")
    items = pairs(subset or args.subset, args.data_dir)[name]
    sources, references = with_references(items)
    out: dict[str, Any] = {"sources": len(sources), "pairs": len(items)}
    for name, beam in (("greedy", 1), ("beam", args.beam)):
        done = translator.translate(sources, beam=beam, length_normalization=args.length_normalization,
                                    progress=progress(args))
        text = dict(zip(sources, (t.text for t in done)))
        every, single = scores(list(text.values()), references), scores([text[s] for s, _ in items],
                                                                       [[t] for _, t in items])
        out.update({f"bleu_{name}": every["bleu"], f"chrf_{name}": every["chrf"],
                    f"bleu_single_{name}": single["bleu"], f"chrf_single_{name}": single["chrf"]})
        out["signature"] = every["signature"]
    return out


def after_train(run: RunDir, args: argparse.Namespace) -> None:
    """A few dev translations, to see what the numbers mean (also in samples/translations.txt)."""
    translator = Translator.load(run.path, device(args.device))
    sources, references = with_references(pairs(args.subset, args.data_dir)["valid"])
    shown = [f"  {source}\n    -> {t.text}\n    (ref: {refs[0]})"
             for source, refs, t in zip(sources[:8], references, translator.translate(sources[:8], beam=args.beam))]
    print("\n".join(shown), file=sys.stderr)
    run.samples.mkdir(exist_ok=True)
    write_text_atomic(run.samples / "translations.txt", "\n".join(shown) + "\n")


TASK = register(Task(NAME, HELP, __doc__, add_arguments, train, evaluate,
                     ("valid", "test", "valid:tutorial", "test:tutorial"), after_train,
                     dependent_defaults=subset_defaults))
