"""The ``rnnkit`` command line.

    rnnkit train TASK [options]                       a run directory runs/<task>-<time>/ (rnnkit.run_dir)
    rnnkit train TASK --config FILE [key=value ...]   settings from a file, overridden (rnnkit.configuration)
    rnnkit generate RUN --prompt ...                  stream a sample
    rnnkit evaluate RUN [--split test] [--json]       a checkpoint's numbers on its task's data (or --text FILE)
    rnnkit plot RUN                                   plots/learning_curves.png
    rnnkit transcribe RUN FILE.wav ...                timed words of recordings (a speech run)
    rnnkit align RUN FILE.wav [--text ...]            the CTC alignment picture of a recording
    rnnkit tag RUN "text" | --conllu FILE             part-of-speech tags of raw text or a CoNLL-U file
    rnnkit classify RUN "text"                        class probabilities of a sentence
    rnnkit translate RUN "text" [--beam N]            the translation of sentences (a translation run)
    rnnkit demo RUN ... [--port 7860]                 a local web page that uses each run's model
    rnnkit data list | verify NAME | fetch NAME
    rnnkit analyze gradients                          the vanishing-gradient picture
    rnnkit info                                       versions, and which kernel each layer uses

Errors a user can fix are one line on stderr and exit status 2; Ctrl-C during training saves
a checkpoint and exits with 130. The tasks (and torch) are imported only by the verbs that
need them, so ``rnnkit --help`` is quick.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnkit.arguments import add_beam_arguments, add_sampling_arguments, device_name, given_options, positive_int
from rnnkit.version import __version__

if TYPE_CHECKING:
    from rnnkit.run_dir import Checkpoint

Formatter = argparse.ArgumentDefaultsHelpFormatter

#: verbs whose options come from the task modules (importing them imports torch)
TASK_VERBS = ("train", "evaluate", "analyze")


def _info(args: argparse.Namespace) -> int:
    import torch

    import rnnkit

    print(f"rnnkit {rnnkit.__version__}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"CUDA {'available' if torch.cuda.is_available() else 'not available'}")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    H = 256  # the compiled LSTM loop's batch limit depends on the hidden size
    configs = {
        "LSTM": rnnkit.LSTM(1, H),
        "LSTM layer_norm": rnnkit.LSTM(1, H, layer_norm=True),
        "LSTM peephole": rnnkit.LSTM(1, H, peephole=True),
        "GRU": rnnkit.GRU(1, H),
        "RNN tanh": rnnkit.RNN(1, H),
        "RNN sigmoid": rnnkit.RNN(1, H, activation="sigmoid"),
        "LSTM skip_delay=2": rnnkit.LSTM(1, H, skip_delay=2),
    }
    print(f"{'configuration, H=' + str(H):<20}" + "".join(f"{d:>10}" for d in devices))
    for name, m in configs.items():
        print(f"{name:<20}" + "".join(f"{m.layer_path(0, d):>10}" for d in devices))
    print("why (rnnkit.dispatch.choose_path, in training mode):")
    for device in devices:
        for name, m in configs.items():
            print(f"  {device}, {name}: {m.paths(device, training=True)[0].reason}")
    from rnnkit.dispatch import COMPILED_STEP_BATCH, GENERATION_LOOP_BATCH, SINGLE_STEP_BATCH

    print(f"one step in inference (generation) on cpu, no gradient recorded: plain LSTM/GRU/Elman cells at batch <= "
          f"{COMPILED_STEP_BATCH['cpu']} as matmuls and one compiled call, other cells at batch <= "
          f"{SINGLE_STEP_BATCH['cpu']} on the loop (rnnkit.dispatch.single_step_path)")
    print(f"LanguageModel.generate on cpu (sampling or greedy; stop at an end token or lengths): stacks of plain "
          f"LSTM/GRU/Elman cells at batch <= {GENERATION_LOOP_BATCH['cpu']} with the whole token loop compiled "
          "(rnnkit.generation_loop), otherwise step by step (model.generation_path(batch) says why)")
    from rnnkit.kernels import LSTMKernel
    from rnnkit.threads import describe

    print(f"compiled LSTM loop on cpu: the recurrent products by torch's matmul beyond {LSTMKernel.PRODUCT_MACS} "
          f"multiply-adds a step, then each step's pointwise pass in {describe()} (rnnkit.threads)")
    return 0


def _train(args: argparse.Namespace) -> int:
    from rnnkit.plots import learning_curves
    from rnnkit.run_dir import RunDir
    from rnnkit.tasks import TASKS
    from rnnkit.train.distributed import finish, is_main_process
    from rnnkit.train.loggers import log_outputs

    def last_step(run: RunDir) -> int | None:
        found = run.checkpoints()
        return found[-1].step() if found else None

    task = TASKS[args.task]
    before = last_step(RunDir(Path(args.resume))) if args.resume else None
    run = task.train(args)
    finish()  # the processes' collectives are over: what follows is rank 0's alone
    if not is_main_process():  # under torchrun only rank 0 reports
        return 0
    if run.metrics.is_file():
        print(f"learning curves: {learning_curves(run.path)}", file=sys.stderr)
    if task.after_train is not None:
        task.after_train(run, args)
    if before is None or last_step(run) != before:  # a finished run resumed is left as it was
        log_outputs(args.logger, run)
    print(f"run directory: {run.path}", file=sys.stderr)
    return 0


def _generate(args: argparse.Namespace) -> int:
    from rnnkit.tasks.common import device, stream_sample

    stream_sample(Path(args.checkpoint), args.prompt, args.length, args.temperature, args.top_k, args.top_p,
                  args.seed, args.greedy, device(args.device))
    print()
    return 0


def _ensemble_member(ckpt: Checkpoint, task: dict[str, Any]) -> Checkpoint:
    """A checkpoint for ``--with``: a run of the same task whose settings that shape the
    outputs or what it may have seen (model kind, labels, data split) are the first run's."""
    from rnnkit.tasks.common import checkpoint_task

    other = checkpoint_task(ckpt)
    if other is None or other["task"] != task["task"]:
        got = "no task" if other is None else f"the {other['task']!r} task"
        raise ValueError(f"--with {ckpt.path}: a run of the {task['task']!r} task is needed. Received: {got}")
    for key in ("model", "labels", "split"):
        mine, theirs = task["args"].get(key), other["args"].get(key)
        if mine != theirs:
            raise ValueError(f"--with {ckpt.path}: its --{key} is {theirs!r}, the first run's {mine!r}; "
                             "an ensemble's members must agree")
    return ckpt


def _evaluate(args: argparse.Namespace) -> int:
    from rnnkit.run_dir import Checkpoint
    from rnnkit.tasks import TASKS
    from rnnkit.tasks.common import checkpoint_task, device, evaluate_text, progress

    ckpt = Checkpoint.resolve(args.checkpoint)
    started = time.time()
    if args.ensemble and (args.text is not None or args.conllu is not None):
        raise ValueError("--with scores an ensemble on a split of the task's data, not with --text or --conllu")
    if args.normalise != "utterance" and (args.text is not None or args.conllu is not None):
        raise ValueError(f"--normalise {args.normalise} scores a speech run on its task's data, not with --text or "
                         "--conllu")
    if args.text is not None:
        result = {"task": "text", "split": args.text, **evaluate_text(ckpt, Path(args.text), device(args.device),
                                                                        progress(args))}
    else:
        task = checkpoint_task(ckpt)
        if task is None:
            raise ValueError(f"{ckpt.path} has no task.json (it was not made by `rnnkit train`): give --text FILE "
                             "to score a language model on a text")
        found = TASKS.get(task["task"])
        if found is None or found.evaluate is None:
            raise ValueError(f"{ckpt.path}: the {task['task']!r} task has no evaluate")
        if args.normalise != "utterance" and not found.normalises:
            raise ValueError(f"--normalise {args.normalise}: the {found.name} task's features are not normalised "
                             "per speaker (a speech run's are: digits)")
        saved = argparse.Namespace(**{**task["args"], "no_progress": args.no_progress, "device": args.device,
                                      "normalise": args.normalise,
                                      **({"data_dir": args.data_dir} if args.data_dir else {})})
        if args.ensemble:
            if not found.ensembles:
                raise ValueError(f"--with: the {found.name} task does not score ensembles (sentiment and digits do)")
            saved.ensemble = [_ensemble_member(Checkpoint.resolve(run), task) for run in args.ensemble]
        if args.conllu is not None:
            if found.evaluate_file is None:
                raise ValueError(f"--conllu: the {found.name} task does not score CoNLL-U files (a tagging run does)")
            result = {"task": found.name, "split": args.conllu,
                      **found.evaluate_file(ckpt, Path(args.conllu), saved)}
        else:
            split = args.split or found.splits[0]
            if split not in found.splits:
                raise ValueError(f"--split {split}: the {found.name} task has the splits {', '.join(found.splits)}")
            result = {"task": found.name, "split": split, **found.evaluate(ckpt, split, saved)}
    result = {"checkpoint": str(ckpt.path), "step": ckpt.step(), **result, "seconds": round(time.time() - started, 2)}
    if args.json:
        print(json.dumps(result))
    else:
        width = max(len(k) for k in result)
        for key, value in result.items():
            shown = f"{value:.4f}" if isinstance(value, float) and key != "seconds" else value
            print(f"{key:<{width}}  {shown}")
    return 0


def _transcriber(args: argparse.Namespace) -> Any:
    from rnnkit.speech import load_transcriber
    from rnnkit.tasks.common import device

    return load_transcriber(args.checkpoint, device(args.device), args.beam, args.lexicon, args.lm,
                            args.lm_weight, args.word_score)


def _transcribe(args: argparse.Namespace) -> int:
    from rnnkit.audio import read_audio

    transcriber = _transcriber(args)
    rate = transcriber.model.frontend.config.sample_rate
    waves = [read_audio(name, rate)[0] for name in args.files]
    stats = transcriber.speaker(waves) if args.one_speaker else None
    for name, wave in zip(args.files, waves):
        words = transcriber([wave], stats)[0]
        if args.json:
            print(json.dumps({"file": name, "text": " ".join(w.text for w in words),
                              "words": [{"word": w.text, "start": round(w.start, 3), "end": round(w.end, 3)}
                                        for w in words]}))
            continue
        print(f"{name}: {' '.join(w.text for w in words)}")
        for w in words:
            print(f"  {w.start:6.2f} {w.end:6.2f}  {w.text}")
    return 0


def _align(args: argparse.Namespace) -> int:
    from rnnkit.audio import read_audio
    from rnnkit.plots import ctc_alignment

    transcriber = _transcriber(args)
    wave, _ = read_audio(args.file, transcriber.model.frontend.config.sample_rate)
    view = transcriber.align(wave, args.text)
    said = " ".join(w.text for w in view.words)
    out = Path(args.out) if args.out else Path(Path(args.file).stem + "_align.png")
    title = f"{Path(args.file).name}: \"{said}\" ({'given' if args.text else 'recognised'})"
    print(ctc_alignment(view, out, title))
    for w in view.words:
        print(f"  {w.start:6.2f} {w.end:6.2f}  {w.text}", file=sys.stderr)
    return 0


def _load_for(args: argparse.Namespace, method: str, kind: str) -> Any:
    """The model of a run or checkpoint, which must have ``method`` (a ``kind`` model)."""
    import rnnkit
    from rnnkit.run_dir import Checkpoint
    from rnnkit.tasks.common import device

    ckpt = Checkpoint.resolve(args.checkpoint)
    model = rnnkit.load(ckpt.path, map_location=device(args.device)).eval()
    if not hasattr(model, method):
        raise ValueError(f"{ckpt.path} holds a {type(model).__name__}, not a {kind}")
    return model


def _input_text(args: argparse.Namespace) -> str:
    text = " ".join(args.text) if args.text else sys.stdin.read()
    if not text.strip():
        raise ValueError("TEXT: no words given (pass the text as arguments or on standard input)")
    return text


def _input_lines(args: argparse.Namespace) -> list[str]:
    """The sentences given: the arguments joined into one, else the non-blank lines of standard input."""
    text = _input_text(args)
    return [text] if args.text else [line for line in text.splitlines() if line.strip()]


def _tag(args: argparse.Namespace) -> int:
    model = _load_for(args, "tag", "tagger")
    if args.conllu is not None:
        from rnnkit.data.conllu import fill_upos, read_conllu

        sentences = read_conllu(args.conllu)
        text = "".join(fill_upos(s, t) for s, t in zip(sentences, model.tag([s.words for s in sentences])))
        if args.out:
            Path(args.out).write_text(text, encoding="utf-8")
            print(f"{args.out}: {len(sentences)} sentences tagged", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return 0
    from rnnkit.data.tokenize import english_sentences

    sentences = english_sentences(_input_text(args))
    for words, tags in zip(sentences, model.tag(sentences)):
        print(json.dumps({"words": words, "upos": tags}) if args.json
              else " ".join(f"{w}/{t}" for w, t in zip(words, tags)))
    return 0


def _classify(args: argparse.Namespace) -> int:
    from rnnkit.data.trees import classifier_inputs
    from rnnkit.models import TreeClassifier

    model = _load_for(args, "classify", "sequence classifier")
    lines = _input_lines(args)
    items, note = classifier_inputs(lines, isinstance(model, TreeClassifier))
    if note is not None:
        print(f"note: {note}", file=sys.stderr)
    for line, probabilities in zip(lines, model.classify(items)):
        ranked = sorted(probabilities.items(), key=lambda kv: -kv[1])
        if args.json:
            print(json.dumps({"text": line, "class": ranked[0][0], "probabilities": probabilities}))
        else:
            print(f"{ranked[0][0]}  " + "  ".join(f"{name} {p:.3f}" for name, p in ranked) + f"  | {line}")
    return 0


def _translate(args: argparse.Namespace) -> int:
    from rnnkit.tasks.common import device
    from rnnkit.translation import Translator

    translator = Translator.load(args.checkpoint, device(args.device))
    lines = _input_lines(args)
    done = translator.translate(lines, beam=args.beam, length_normalization=args.length_normalization,
                                attention=args.attention is not None)
    for t in done:
        print(json.dumps({"source": t.source, "translation": t.text, "log_prob": t.log_prob,
                          "pieces": t.target_pieces}, ensure_ascii=False) if args.json else t.text)
    if args.attention is not None:
        from rnnkit.plots import attention_map

        if done[0].attention is None:
            raise ValueError(f"--attention: {args.checkpoint} has no attention (trained with --attention none)")
        for k, t in enumerate(done):
            out = Path(args.attention) if len(done) == 1 else Path(args.attention).with_stem(f"{Path(args.attention).stem}_{k + 1}")
            print(attention_map(t.attention, t.source_pieces, t.target_pieces, out, f"{t.source}\n-> {t.text}"),
                  file=sys.stderr)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from rnnkit.demo import serve
    from rnnkit.tasks.common import device

    serve(args.runs, args.host, args.port, device(args.device))
    return 0


def _plot(args: argparse.Namespace) -> int:
    from rnnkit.plots import learning_curves

    print(learning_curves(Path(args.run_dir)))
    return 0


def _data(args: argparse.Namespace) -> int:
    from rnnkit.data import registry

    if args.action == "list":
        for name, ds in registry.DATASETS.items():
            found = registry.locate(name, args.data_dir)
            where = str(found) if found is not None else f"not present (rnnkit data fetch {name})"
            print(f"{name:<16} {ds.description}\n{'':<16} {where}")
        print(f"data roots, in order: {', '.join(str(r) for r in registry.data_roots(args.data_dir))}")
        return 0
    if args.name is None:
        raise ValueError(f"rnnkit data {args.action} needs a dataset NAME ({', '.join(registry.DATASETS)})")
    if args.action == "verify":
        folder, status = registry.verify(args.name, args.data_dir)
        print(f"{args.name}: {folder if folder is not None else 'no copy found'}")
        for f, s in status.items():
            print(f"  {f:<40} {s}")
        if any(s != "ok" for s in status.values()):
            raise ValueError(f"dataset {args.name!r} is incomplete or altered; re-fetch it with: "
                             f"rnnkit data fetch {args.name}")
        return 0
    print(registry.fetch(args.name, args.data_dir, args.base_url, progress=False if args.no_progress else None))
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from rnnkit.tasks import gradients

    print(f"run directory: {gradients.train(args).path}", file=sys.stderr)
    return 0


VERBS = {
    "train": "train a task; writes runs/<task>-<time>/",
    "generate": "stream text from a language-model run or checkpoint",
    "evaluate": "a run's (or checkpoint's) numbers on a split of its task's data, or on a text",
    "plot": "learning curves of a run",
    "transcribe": "timed words of recordings, from a speech (CTC) run",
    "align": "a picture of how a speech (CTC) run aligns a recording: features, posteriors, gamma, Viterbi",
    "tag": "tag raw text or a CoNLL-U file with a tagging run",
    "classify": "class probabilities of sentences, from a classification run",
    "translate": "translate sentences with a translation run (greedy or beam search), optionally with the attention map",
    "demo": "a local web page that uses each run's model: generate, transcribe, translate, tag, classify",
    "data": "list, verify or fetch datasets",
    "analyze": "analyses: gradients",
    "info": "versions, devices and which kernel each layer type uses",
}


def build_parser(with_tasks: bool = True) -> argparse.ArgumentParser:
    """The whole command line; ``with_tasks=False`` leaves out the task options (for a quick --help)."""
    parser = argparse.ArgumentParser(prog="rnnkit", description="Recurrent neural networks on sequences.",
                                     formatter_class=Formatter)
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    p = {name: verbs.add_parser(name, help=text, description=text, formatter_class=Formatter)
         for name, text in VERBS.items()}

    if with_tasks:
        from rnnkit.tasks import TASKS, gradients

        tasks = p["train"].add_subparsers(dest="task", metavar="TASK", required=True)
        for name, task in TASKS.items():
            sub = tasks.add_parser(name, help=task.help, description=task.description, formatter_class=Formatter)
            task.add_arguments(sub)
            sub.set_defaults(func=_train)
        parser.task_parsers = tasks.choices  # for --config and key=value (_train_arguments)
        what = p["analyze"].add_subparsers(dest="what", metavar="WHAT", required=True)
        g = what.add_parser("gradients", help=gradients.HELP, description=gradients.__doc__, formatter_class=Formatter)
        gradients.add_arguments(g)
        g.set_defaults(func=_analyze)
        splits = {t.name: t.splits for t in TASKS.values() if t.evaluate is not None}
    else:
        splits = {}

    gen = p["generate"]
    gen.add_argument("checkpoint", metavar="RUN", help="a run directory (its best checkpoint) or a checkpoint directory")
    gen.add_argument("--prompt", default="", help="text to continue (normalised as the training text was)")
    add_sampling_arguments(gen)
    gen.add_argument("--seed", type=int, default=0, help="seed of the sampler")
    gen.add_argument("--device", type=device_name, default="cpu", help="auto, cpu, cuda, cuda:N or mps")
    gen.set_defaults(func=_generate)

    ev = p["evaluate"]
    ev.add_argument("checkpoint", metavar="RUN", help="a run directory (its best checkpoint) or a checkpoint directory")
    ev.add_argument("--split", default=None, choices=sorted({s for v in splits.values() for s in v}) or None,
                    help="which split (default: the task's first); " +
                         "; ".join(f"{t}: {', '.join(s)}" for t, s in splits.items()))
    ev.add_argument("--text", default=None, metavar="FILE",
                    help="score a language model on this UTF-8 text instead (any run, also one made with the Trainer)")
    ev.add_argument("--conllu", default=None, metavar="FILE",
                    help="score a tagging run on this CoNLL-U file (gold UPOS) instead")
    ev.add_argument("--with", dest="ensemble", nargs="+", default=None, metavar="RUN",
                    help="score the ensemble of RUN and these runs of the same task and settings (sentiment: "
                         "their class probabilities averaged; digits: their hypotheses pooled and ranked by the "
                         "runs' mean CTC log-probability)")
    ev.add_argument("--normalise", choices=("utterance", "speaker"), default="utterance",
                    help="a speech run's features normalised per utterance (as trained) or over each speaker's "
                         "utterances (speaker CMVN)")
    ev.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ev.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda, cuda:N or mps")
    ev.add_argument("--data-dir", default=None, help="data root (else the run's, $RNNKIT_DATA, ../shared/data, "
                                                     "~/.cache/rnnkit)")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.set_defaults(func=_evaluate)

    for verb in ("transcribe", "align"):
        sp = p[verb]
        sp.add_argument("checkpoint", metavar="RUN", help="a speech run directory (its best checkpoint) or a checkpoint")
        if verb == "transcribe":
            sp.add_argument("files", nargs="+", metavar="FILE", help="recordings (WAV, FLAC, OGG; any rate)")
            sp.add_argument("--json", action="store_true", help="one JSON object per file")
            sp.add_argument("--one-speaker", action="store_true",
                            help="the files are one speaker's: normalise the features over all of them "
                                 "(speaker normalisation; default: each file over itself)")
        else:
            sp.add_argument("file", metavar="FILE", help="a recording (WAV, FLAC, OGG; any rate)")
            sp.add_argument("--text", default=None, help="the words said (default: what the run recognises)")
            sp.add_argument("--out", default=None, help="the PNG to write (default: FILE's name + _align.png)")
        sp.add_argument("--beam", type=positive_int, default=16, help="beam width (1: greedy)")
        sp.add_argument("--lexicon", nargs="?", const="", default=None, metavar="FILE",
                        help="only these words: the run's own lexicon, or FILE (one word per line)")
        sp.add_argument("--lm", nargs="?", const="", default=None, metavar="FILE",
                        help="word n-gram model: the run's own lm.arpa, or an ARPA FILE")
        sp.add_argument("--lm-weight", type=float, default=None, help="weight of the LM (default: the run's)")
        sp.add_argument("--word-score", type=float, default=None, help="bonus per word (default: the run's)")
        sp.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda, cuda:N or mps")
        sp.set_defaults(func=_transcribe if verb == "transcribe" else _align)

    tag = p["tag"]
    tag.add_argument("checkpoint", metavar="RUN", help="a tagging run directory (its best checkpoint) or a checkpoint")
    tag.add_argument("text", nargs="*", help="raw text, tokenised as UD English is (default: standard input)")
    tag.add_argument("--conllu", default=None, metavar="FILE", help="tag this CoNLL-U file's words instead: "
                     "the file comes back with UPOS (column 4) filled in, everything else as it was")
    tag.add_argument("--out", default=None, help="with --conllu: write here instead of standard output")
    tag.add_argument("--json", action="store_true", help="one JSON object per sentence")
    tag.add_argument("--device", type=device_name, default="cpu", help="auto, cpu, cuda, cuda:N or mps")
    tag.set_defaults(func=_tag)

    classify = p["classify"]
    classify.add_argument("checkpoint", metavar="RUN", help="a classification run directory or a checkpoint")
    classify.add_argument("text", nargs="*", help="a sentence, or its bracketed parse tree for a tree net "
                                                  "(default: standard input, one per line)")
    classify.add_argument("--json", action="store_true", help="one JSON object per sentence")
    classify.add_argument("--device", type=device_name, default="cpu", help="auto, cpu, cuda, cuda:N or mps")
    classify.set_defaults(func=_classify)

    tr = p["translate"]
    tr.add_argument("checkpoint", metavar="RUN", help="a translation run directory (its best checkpoint) or a checkpoint")
    tr.add_argument("text", nargs="*", help="a sentence (default: standard input, one sentence per line)")
    add_beam_arguments(tr)
    tr.add_argument("--attention", default=None, metavar="PNG",
                    help="save the attention map here (one file per sentence: NAME_1.png, ... for several)")
    tr.add_argument("--json", action="store_true", help="one JSON object per sentence")
    tr.add_argument("--device", type=device_name, default="cpu", help="auto, cpu, cuda, cuda:N or mps")
    tr.set_defaults(func=_translate)

    demo = p["demo"]
    demo.add_argument("runs", nargs="+", metavar="RUN", help="run directories (their best checkpoints) or checkpoints")
    demo.add_argument("--host", default="127.0.0.1", help="the address to listen on (0.0.0.0: every network)")
    demo.add_argument("--port", type=positive_int, default=7860, help="the port to listen on")
    demo.add_argument("--device", type=device_name, default="cpu", help="auto, cpu, cuda, cuda:N or mps")
    demo.set_defaults(func=_demo)

    p["plot"].add_argument("run_dir", metavar="RUN", help="a run directory")
    p["plot"].set_defaults(func=_plot)

    data = p["data"]
    data.add_argument("action", choices=("list", "verify", "fetch"), help="what to do")
    data.add_argument("name", nargs="?", default=None, help="the dataset (see rnnkit data list)")
    data.add_argument("--data-dir", default=None, help="data root (else $RNNKIT_DATA, ../shared/data, ~/.cache/rnnkit)")
    data.add_argument("--base-url", default=None, help="fetch from this mirror (a folder URL; file:// works)")
    data.add_argument("--no-progress", action="store_true", help="no progress bar")
    data.set_defaults(func=_data)

    p["info"].set_defaults(func=_info)
    return parser


def _busy_cores(seconds: float = 0.25) -> float | None:
    """How many cores other work keeps busy right now: /proc/stat read twice, ``seconds`` apart
    (Linux); None where it cannot be read."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]  # all, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return (os.cpu_count() or 1) * (1 - (idle1 - idle0) / max(total1 - total0, 1))


def _yield_cores_when_busy() -> None:
    """On a machine whose cores are already busy, let torch's OpenMP threads sleep while they
    wait instead of spinning (OMP_WAIT_POLICY=PASSIVE): measured here with another job on both
    cores, training ran 2.5x faster; on an idle machine spinning is faster (1.6x), so it is left
    on. Busy means both the 1-minute load average and a quarter-second sample of /proc/stat say
    so: the load average alone still counts a job that has just ended. Must run before torch
    is imported; a value the user set is kept."""
    if "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules or not hasattr(os, "getloadavg"):
        return
    cores = os.cpu_count() or 1
    if os.getloadavg()[0] < cores - 0.5:
        return
    busy = _busy_cores()
    if busy is None or busy >= cores - 0.5:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


@contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Warnings as one line each: ``rnnkit: warning: ...``."""
    previous = warnings.showwarning

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        print(f"rnnkit: warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


def _train_arguments(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``rnnkit train``'s arguments: the task's defaults, then --config FILE, then key=value
    overrides, then the options written out (rnnkit.configuration); a resumed run's are its own
    (rnnkit.tasks.common.resume_arguments). Either way the defaults that depend on another
    option (the task's ``dependent_defaults``) are settled last, so the task trains with, and
    task.json and --print-config show, the values used."""
    from rnnkit.configuration import apply_settings, parse_overrides, read_config
    from rnnkit.tasks import TASKS
    from rnnkit.tasks.common import resume_arguments, settle_defaults

    args, extras = parser.parse_known_args(argv)
    overrides = parse_overrides(extras)
    given = given_options(parser, argv)
    if args.resume:
        if args.config is not None or overrides:
            raise ValueError("--resume continues a run with its own settings: --config and key=value start a new run "
                             "(to change a resumed run's option on purpose, give it with --allow-changes)")
        args = resume_arguments(args.task, args, given)
    else:
        sub = parser.task_parsers[args.task]
        if args.config is not None:
            apply_settings(sub, read_config(args.config, args.task), f"--config {args.config}")
        converted = apply_settings(sub, overrides)
        args = parser.parse_known_args(argv)[0]
        clashes = [f"{k}={value} and --{k.replace('_', '-')} {getattr(args, k)}"
                   for k, value in converted.items() if k in given and getattr(args, k) != value]
        if clashes:
            raise ValueError(f"given twice with different values: {'; '.join(clashes)}")
    task = TASKS[args.task]
    return args if task.dependent_defaults is None else settle_defaults(args, task.dependent_defaults(args))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in argv if not a.startswith("-")), None)
    if verb in TASK_VERBS:
        _yield_cores_when_busy()
    parser = build_parser(with_tasks=verb in TASK_VERBS)
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_known_args(argv)[0] if verb == "train" else parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    with _one_line_warnings():
        try:
            if verb == "train":
                args = _train_arguments(parser, argv)
                if args.print_config:
                    from rnnkit.configuration import printable

                    print(printable(args, parser.task_parsers[args.task]))
                    return 0
            return args.func(args)
        except KeyboardInterrupt as e:
            run_dir = getattr(e, "run_dir", None)
            if run_dir is not None:
                print(f"rnnkit: interrupted at step {e.step}; saved. Continue with: "
                      f"rnnkit train {args.task} --resume {run_dir}", file=sys.stderr)
            else:
                print("rnnkit: interrupted", file=sys.stderr)
            return 130
        except (ValueError, OSError, ImportError) as e:
            print(f"rnnkit: error: {e}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
