"""The ``rnnkit`` command line.

    rnnkit train TASK [options]                       a run directory runs/<task>-<time>/ (rnnkit.run_dir)
    rnnkit generate CHECKPOINT --prompt ...           stream a sample
    rnnkit evaluate CHECKPOINT [--split test]
    rnnkit plot RUN_DIR                               plots/learning_curves.png
    rnnkit data list | verify NAME | fetch NAME
    rnnkit analyze gradients                          the vanishing-gradient picture
    rnnkit info                                       versions, and which kernel each layer uses

Errors a user can fix are one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import rnnkit
from rnnkit.tasks import TASKS

Formatter = argparse.ArgumentDefaultsHelpFormatter


def _info(args: argparse.Namespace) -> int:
    import torch

    print(f"rnnkit {rnnkit.__version__}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"CUDA {'available' if torch.cuda.is_available() else 'not available'}")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    configs = {
        "LSTM": rnnkit.LSTM(1, 1),
        "LSTM layer_norm": rnnkit.LSTM(1, 1, layer_norm=True),
        "LSTM peephole": rnnkit.LSTM(1, 1, peephole=True),
        "GRU": rnnkit.GRU(1, 1),
        "RNN tanh": rnnkit.RNN(1, 1),
        "RNN sigmoid": rnnkit.RNN(1, 1, activation="sigmoid"),
        "LSTM skip_delay=2": rnnkit.LSTM(1, 1, skip_delay=2),
    }
    print(f"{'configuration':<20}" + "".join(f"{d:>10}" for d in devices))
    for name, m in configs.items():
        print(f"{name:<20}" + "".join(f"{m.layer_path(0, d):>10}" for d in devices))
    print("why (rnnkit.dispatch.choose_path, in training mode):")
    for device in devices:
        for name, m in configs.items():
            print(f"  {device}, {name}: {m.paths(device, training=True)[0].reason}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from rnnkit.plots import learning_curves
    from rnnkit.train.distributed import is_main_process

    task = TASKS[args.task]
    run = task.train(args)
    if not is_main_process():  # under torchrun only rank 0 reports
        return 0
    if run.metrics.is_file():
        print(f"learning curves: {learning_curves(run.path)}", file=sys.stderr)
    if task.after_train is not None:
        task.after_train(run, args)
    print(f"run directory: {run.path}", file=sys.stderr)
    return 0


def _generate(args: argparse.Namespace) -> int:
    from rnnkit.tasks.common import stream_sample

    stream_sample(Path(args.checkpoint), args.prompt, args.length, args.temperature, args.top_k, args.top_p,
                  args.seed, args.greedy)
    print()
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from rnnkit.run_dir import Checkpoint
    from rnnkit.tasks.common import read_task

    ckpt = Checkpoint.resolve(args.checkpoint)
    task = read_task(ckpt)
    found = TASKS.get(task["task"])
    if found is None or found.evaluate is None:
        raise ValueError(f"{ckpt.path}: the {task['task']!r} task has no evaluate")
    print(json.dumps(found.evaluate(ckpt, args.split, task["args"])))
    return 0


def _plot(args: argparse.Namespace) -> int:
    from rnnkit.plots import learning_curves

    print(learning_curves(Path(args.run_dir)))
    return 0


def _data(args: argparse.Namespace) -> int:
    from rnnkit.data import registry
    from rnnkit.data.paths import data_roots, find_dataset

    if args.action == "list":
        for name, ds in registry.DATASETS.items():
            try:
                where = str(find_dataset(name, args.data_dir))
            except FileNotFoundError:
                where = f"not present (rnnkit data fetch {name})"
            print(f"{name:<16} {ds.description}\n{'':<16} {where}")
        print(f"data roots, in order: {', '.join(str(r) for r in data_roots(args.data_dir))}")
        return 0
    if args.name is None:
        raise ValueError(f"rnnkit data {args.action} needs a dataset NAME ({', '.join(registry.DATASETS)})")
    if args.action == "verify":
        status = registry.verify(args.name, args.data_dir)
        for f, s in status.items():
            print(f"{f:<20} {s}")
        if any(s != "ok" for s in status.values()):
            raise ValueError(f"dataset {args.name!r} is incomplete or altered; re-fetch it with: rnnkit data fetch {args.name}")
        return 0
    print(registry.fetch(args.name, args.data_dir, args.base_url))
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from rnnkit.tasks import gradients

    print(f"run directory: {gradients.train(args).path}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnkit", description="Recurrent neural networks on sequences.",
                                     formatter_class=Formatter)
    parser.add_argument("--version", action="version", version=f"rnnkit {rnnkit.__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    train = verbs.add_parser("train", help="train a task; writes runs/<task>-<time>/", formatter_class=Formatter)
    tasks = train.add_subparsers(dest="task", metavar="TASK", required=True)
    for name, task in TASKS.items():
        p = tasks.add_parser(name, help=task.help, description=task.description, formatter_class=Formatter)
        task.add_arguments(p)
        p.set_defaults(func=_train)

    gen = verbs.add_parser("generate", help="stream a sample from a language-model checkpoint", formatter_class=Formatter)
    gen.add_argument("checkpoint", help="a checkpoint directory, or a run directory (its best checkpoint)")
    gen.add_argument("--prompt", default="", help="text to continue")
    gen.add_argument("--length", type=int, default=300, help="tokens to generate")
    gen.add_argument("--temperature", type=float, default=1.0)
    gen.add_argument("--top-k", type=int, default=None)
    gen.add_argument("--top-p", type=float, default=None)
    gen.add_argument("--greedy", action="store_true", help="always take the most probable token")
    gen.add_argument("--seed", type=int, default=0)
    gen.set_defaults(func=_generate)

    ev = verbs.add_parser("evaluate", help="a checkpoint's loss on a split of its task's data", formatter_class=Formatter)
    ev.add_argument("checkpoint")
    ev.add_argument("--split", default="valid", help="valid or test")
    ev.set_defaults(func=_evaluate)

    plot = verbs.add_parser("plot", help="learning curves of a run", formatter_class=Formatter)
    plot.add_argument("run_dir")
    plot.set_defaults(func=_plot)

    data = verbs.add_parser("data", help="list, verify or fetch datasets", formatter_class=Formatter)
    data.add_argument("action", choices=("list", "verify", "fetch"))
    data.add_argument("name", nargs="?", default=None)
    data.add_argument("--data-dir", default=None, help="data root (else $RNNKIT_DATA, ../shared/data, ~/.cache/rnnkit)")
    data.add_argument("--base-url", default=None, help="fetch from this mirror (a folder URL, file:// works)")
    data.set_defaults(func=_data)

    analyze = verbs.add_parser("analyze", help="analyses: gradients", formatter_class=Formatter)
    what = analyze.add_subparsers(dest="what", metavar="WHAT", required=True)
    from rnnkit.tasks import gradients

    g = what.add_parser("gradients", help=gradients.HELP, description=gradients.__doc__, formatter_class=Formatter)
    gradients.add_arguments(g)
    g.set_defaults(func=_analyze)

    info = verbs.add_parser("info", help="versions, devices and which kernel each layer type uses",
                            formatter_class=Formatter)
    info.set_defaults(func=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, PermissionError, ImportError) as e:
        print(f"rnnkit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
