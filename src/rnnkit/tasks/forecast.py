"""forecast: real-valued sequence outputs on a physical system, the noisy Lorenz-63 attractor.

The system dx/dt = sigma (y - x), dy/dt = x (rho - z) - y, dz/dt = x y - beta z (sigma 10,
rho 28, beta 8/3) is integrated with 4th-order Runge-Kutta (dt 0.01) from a seeded start on
the attractor, and observed with Gaussian noise of ``--noise`` (in the units of x, y, z).
A unidirectional LSTM reads the observations and predicts the next one, y_t = obs_{t+1}:
by default a mean and a variance per coordinate, trained by the Gaussian negative
log-likelihood (``--objective squared`` trains the mean alone by squared error). The
series is one stream cut into chunks (truncated BPTT, the state carried). Train, dev and
test are consecutive stretches of the trajectory, apart by 500 steps.

Reported on test: the RMSE of the prediction against the next observation, next to two
anchors: repeating the last observation (persistence), and the observation noise itself,
the error of a forecaster that knew the true state exactly. With the Gaussian objective,
the calibration: the share of observations within one and two predicted standard
deviations (68.3% and 95.4% for a calibrated forecaster).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

import rnnkit
from rnnkit.arguments import positive_float, positive_int
from rnnkit.data import StreamBatches
from rnnkit.models import SequenceRegressor, SequenceRegressorConfig
from rnnkit.run_dir import Checkpoint, RunDir
from rnnkit.tasks.base import Task, register
from rnnkit.tasks.common import add_common_arguments, device, run_dir, task_trainer
from rnnkit.train import OptimizerConfig, ScheduleConfig
from rnnkit.train.distributed import is_main_process

NAME = "forecast"
HELP = "forecast the noisy Lorenz-63 system one step ahead (real-valued outputs, Gaussian NLL)"
GAP = 500  # steps between the train, dev and test stretches
WARM_UP = 50  # steps read before errors count, in dev and test


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train-steps", type=positive_int, default=20_000, help="time steps of the training stretch")
    p.add_argument("--eval-steps", type=positive_int, default=2_000, help="time steps of the dev and test stretches")
    p.add_argument("--noise", type=positive_float, default=1.0, help="standard deviation of the observation noise")
    p.add_argument("--objective", default="gaussian", choices=("gaussian", "squared"),
                   help="Gaussian negative log-likelihood (mean and variance) or squared error (mean)")
    p.add_argument("--hidden", type=positive_int, default=64, help="LSTM units")
    p.add_argument("--batch-size", type=positive_int, default=16, help="parallel streams per batch")
    p.add_argument("--bptt", type=positive_int, default=50, help="steps per truncated-BPTT chunk")
    p.add_argument("--lr", type=positive_float, default=3e-3, help="Adam's learning rate")
    add_common_arguments(p, max_steps=1500)


def lorenz(steps: int, seed: int, dt: float = 0.01) -> torch.Tensor:
    """(steps, 3) states of Lorenz-63 by RK4, after 1,000 steps from a seeded start (on the attractor)."""
    def f(s: torch.Tensor) -> torch.Tensor:
        x, y, z = s
        return torch.stack([10.0 * (y - x), x * (28.0 - z) - y, x * y - 8.0 / 3.0 * z])

    g = torch.Generator().manual_seed(seed)
    s = torch.randn(3, generator=g, dtype=torch.float64) + torch.tensor([1.0, 1.0, 20.0], dtype=torch.float64)
    out = torch.empty(steps, 3, dtype=torch.float64)
    for i in range(1000 + steps):
        k1 = f(s)
        k2 = f(s + 0.5 * dt * k1)
        k3 = f(s + 0.5 * dt * k2)
        k4 = f(s + dt * k3)
        s = s + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        if i >= 1000:
            out[i - 1000] = s
    return out


def splits(args: argparse.Namespace) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Normalised noisy observations per split, and the training stretch's mean and std."""
    n_train, n_eval = args.train_steps, args.eval_steps
    clean = lorenz(n_train + 2 * (GAP + n_eval), args.seed)
    noisy = clean + args.noise * torch.randn(clean.shape, generator=torch.Generator().manual_seed(args.seed + 1),
                                             dtype=torch.float64)
    mean, std = noisy[:n_train].mean(0), noisy[:n_train].std(0)
    scaled = ((noisy - mean) / std).float()
    dev_start = n_train + GAP
    test_start = dev_start + n_eval + GAP
    parts = {"train": scaled[:n_train], "valid": scaled[dev_start : dev_start + n_eval],
             "test": scaled[test_start : test_start + n_eval]}
    return parts, mean.float(), std.float()


@torch.no_grad()
def scores(model: SequenceRegressor, series: torch.Tensor, std: torch.Tensor, noise: float,
           dev: torch.device) -> dict[str, float]:
    """RMSE (original units, over the three coordinates) of the model and of persistence on one
    stretch read as one stream, after the warm-up; calibration with a predicted spread."""
    model.eval()
    x, target = series[None, :-1].to(dev), series[None, 1:].to(dev)
    mean, sigma = model.predict(x)
    scale = std.to(dev)
    keep = slice(WARM_UP, None)
    error = ((mean - target) * scale)[0, keep]
    persistence = ((x - target) * scale)[0, keep]
    out = {"rmse": float(error.pow(2).mean().sqrt()), "persistence_rmse": float(persistence.pow(2).mean().sqrt()),
           "noise_floor_rmse": noise}
    if sigma is not None:
        z = ((target - mean) / sigma)[0, keep].abs()
        out["within_1_sigma"] = float((z <= 1).float().mean())
        out["within_2_sigma"] = float((z <= 2).float().mean())
    return out


def train(args: argparse.Namespace) -> RunDir:
    parts, _, std = splits(args)
    torch.manual_seed(args.seed)
    model = SequenceRegressor(SequenceRegressorConfig(input_size=3, output_size=3, gaussian=args.objective == "gaussian",
                                                      rnn={"cell": "lstm", "hidden_size": args.hidden}))
    run, dev = run_dir(NAME, args), device(args.device)
    if is_main_process():
        print(f"forecast: Lorenz-63 with noise {args.noise}, {len(parts['train']):,} training steps; "
              f"{sum(p.numel() for p in model.parameters()):,} parameters; run directory {run.path}", file=sys.stderr)
    result = task_trainer(
        NAME, model, StreamBatches(parts["train"], args.batch_size, args.bptt, seed=args.seed),
        StreamBatches(parts["valid"], 1, 500), run, args, optimizer=OptimizerConfig("adam", lr=args.lr),
        schedule=ScheduleConfig("plateau", patience=2), clip_norm=1.0, eval_every=250, log_every=25).fit()
    if not is_main_process() or result["already_finished"]:
        return run
    best = rnnkit.load(run.path, map_location=dev)
    test = scores(best, parts["test"], std, args.noise, dev)
    run.results.write_text(json.dumps({"objective": args.objective, "noise": args.noise, "test": test,
                                       "best_valid_loss": result["best_valid_loss"],
                                       "minutes": result["seconds"] / 60}, indent=2))
    line = (f"forecast: test RMSE {test['rmse']:.3f} (persistence {test['persistence_rmse']:.3f}, noise floor "
            f"{test['noise_floor_rmse']:.3f})")
    if "within_1_sigma" in test:
        line += f"; within 1 sigma {test['within_1_sigma']:.1%} (68.3%), 2 sigma {test['within_2_sigma']:.1%} (95.4%)"
    print(line, file=sys.stderr)
    return run


def evaluate(checkpoint: Checkpoint, split: str, args: argparse.Namespace) -> dict[str, float]:
    """RMSE (and calibration) of a checkpoint on the dev or test stretch."""
    parts, _, std = splits(args)
    dev = device(args.device)
    return scores(rnnkit.load(checkpoint.path, map_location=dev), parts[split], std, args.noise, dev)


TASK = register(Task(NAME, HELP, __doc__, add_arguments, train, evaluate, ("test", "valid")))
