"""The neural Turing machine (Graves et al. 2014): a recurrent controller with an explicit N x M memory.

At every step t the controller reads x_t and the previous read vectors r_{t-1} and emits, for
each head, the parameters of its weighting w_t over the N memory rows (the addressing
mechanism, in Graves et al.'s notation):

    content     w^c_t(i) = softmax_i(beta_t K(k_t, M_{t-1}(i))),  K = cosine similarity,  beta_t >= 0
    interpolate w^g_t    = g_t w^c_t + (1 - g_t) w_{t-1},          g_t in (0, 1)
    shift       w~_t(i)  = sum_j w^g_t(j) s_t(i - j mod N),           s_t a softmax over shifts -R..R
    sharpen     w_t(i)   = w~_t(i)^gamma_t / sum_j w~_t(j)^gamma_t,  gamma_t >= 1

A write head also emits an erase vector e_t in (0, 1)^M and an add vector a_t in (-1, 1)^M:

    M~_t(i) = M_{t-1}(i) * prod_heads (1 - w_t(i) e_t),   M_t(i) = M~_t(i) + sum_heads w_t(i) a_t

and a read head reads r_t = sum_i w_t(i) M_t(i) (after this step's writes). The output is
y_t = sigma(V [h_t; r_t] + c) (:class:`rnnkit.models.bits.BitOutputs`).

Numerical safety: the cosine is k.M(i) / (sqrt(|k|^2 + eps) sqrt(|M(i)|^2 + eps)), so a zero
key or a zero row gives similarity 0 and finite gradients; sharpening is computed as
softmax(gamma log(w~ + eps)), finite when w~ has zeros. Initial state: every memory entry
1e-6 (a constant initialisation, which Collier & Beel 2018 found to learn fastest and most
reliably), every head's previous weighting on row 0 (one-hot, so that shifts have a definite
start), read vectors and controller state zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.checks import is_int, require
from rnnkit.models.base import Model
from rnnkit.models.bits import BitOutputs

__all__ = ["cosine_similarity", "content_weights", "interpolate", "circular_shift", "sharpen", "read", "write",
           "NTMState", "NeuralTuringMachine", "NeuralTuringMachineConfig"]

EPS = 1e-8
MEMORY_INIT = 1e-6
CONTROLLERS = ("lstm", "feedforward")


# ------------------------------------------------------------------------------ addressing, one function per step


def cosine_similarity(key: Tensor, memory: Tensor) -> Tensor:
    """K(k, M(i)) for keys (B, H, M) and memory (B, N, M): (B, H, N); 0 for a zero key or row."""
    dot = key @ memory.transpose(1, 2)
    key_norm = (key.pow(2).sum(-1) + EPS).sqrt()
    row_norm = (memory.pow(2).sum(-1) + EPS).sqrt()
    return dot / (key_norm[:, :, None] * row_norm[:, None, :])


def content_weights(key: Tensor, beta: Tensor, memory: Tensor) -> Tensor:
    """w^c(i) = softmax_i(beta K(k, M(i))): key (B, H, M), beta (B, H) -> (B, H, N)."""
    return torch.softmax(beta[..., None] * cosine_similarity(key, memory), -1)


def interpolate(content: Tensor, previous: Tensor, gate: Tensor) -> Tensor:
    """w^g = g w^c + (1 - g) w_{t-1}: weightings (B, H, N), gate (B, H)."""
    return gate[..., None] * content + (1 - gate[..., None]) * previous


def circular_shift(weights: Tensor, shift: Tensor) -> Tensor:
    """w~(i) = sum_j w(j) s(i - j mod N): weightings (B, H, N), shift (B, H, 2R+1) over offsets -R..R."""
    R = shift.shape[-1] // 2
    return sum(shift[..., k, None] * torch.roll(weights, k - R, dims=-1) for k in range(shift.shape[-1]))


def sharpen(weights: Tensor, gamma: Tensor) -> Tensor:
    """w(i) = w~(i)^gamma / sum_j w~(j)^gamma: weightings (B, H, N), gamma (B, H) >= 1."""
    return torch.softmax(gamma[..., None] * torch.log(weights + EPS), -1)


def read(memory: Tensor, weights: Tensor) -> Tensor:
    """r = sum_i w(i) M(i): memory (B, N, M), weightings (B, H, N) -> (B, H, M)."""
    return weights @ memory


def write(memory: Tensor, weights: Tensor, erase: Tensor, add: Tensor) -> Tensor:
    """M(i) * prod_h (1 - w_h(i) e_h) + sum_h w_h(i) a_h: weightings (B, H, N), erase and add (B, H, M)."""
    keep = (1 - weights[..., None] * erase[:, :, None, :]).prod(1)
    return memory * keep + weights.transpose(1, 2) @ add


# ------------------------------------------------------------------------------ the machine


class NTMState(NamedTuple):
    """controller: (h, c) of an LSTM controller, or (h,) of a feed-forward one; memory (B, N, M);
    reads (B, read heads, M); weights (B, heads, N): every head's last weighting (read heads first)."""

    controller: tuple[Tensor, ...]
    memory: Tensor
    reads: Tensor
    weights: Tensor


@dataclass
class NeuralTuringMachineConfig:
    """input_size, output_size: bits in and out per step. controller: "lstm" or "feedforward"
    (h_t = tanh(W [x_t; r_{t-1}] + b)), of controller_size units. memory_size: N rows of
    memory_width M. read_heads, write_heads: how many of each. shift_range: R, shifts -R..R."""

    input_size: int
    output_size: int
    controller: str = "lstm"
    controller_size: int = 100
    memory_size: int = 128
    memory_width: int = 20
    read_heads: int = 1
    write_heads: int = 1
    shift_range: int = 1


class NeuralTuringMachine(BitOutputs, Model):
    """The machine of the module docstring, unrolled over (B, T, input_size) inputs."""

    Config = NeuralTuringMachineConfig

    def __init__(self, config: NeuralTuringMachineConfig) -> None:
        super().__init__(config)
        c = config
        require(c.controller in CONTROLLERS, "NeuralTuringMachineConfig.controller", f"one of {CONTROLLERS}",
                c.controller)
        for name in ("controller_size", "memory_size", "memory_width", "read_heads", "write_heads"):
            value = getattr(c, name)
            require(is_int(value) and 1 <= value <= 100_000, f"NeuralTuringMachineConfig.{name}",
                    "an integer in [1, 100000]", value)
        require(is_int(c.shift_range) and 0 <= c.shift_range and 2 * c.shift_range < c.memory_size,
                "NeuralTuringMachineConfig.shift_range", f"an integer >= 0 with 2R+1 <= memory_size "
                f"({c.memory_size})", c.shift_range)
        M, S = c.memory_width, 2 * c.shift_range + 1
        controller_input = c.input_size + c.read_heads * M
        self.controller = (nn.LSTMCell(controller_input, c.controller_size) if c.controller == "lstm"
                           else nn.Linear(controller_input, c.controller_size))
        self.addressing_size = M + 3 + S  # key, beta, g, shift, gamma
        heads = c.read_heads + c.write_heads
        self.heads = nn.Linear(c.controller_size, heads * self.addressing_size + c.write_heads * 2 * M)
        self.output = nn.Linear(c.controller_size + c.read_heads * M, c.output_size)

    def initial_state(self, batch_size: int, device: torch.device | None = None) -> NTMState:
        c = self.config
        device = device or self.output.weight.device
        dtype = self.output.weight.dtype
        h = torch.zeros(batch_size, c.controller_size, device=device, dtype=dtype)
        weights = torch.zeros(batch_size, c.read_heads + c.write_heads, c.memory_size, device=device, dtype=dtype)
        weights[:, :, 0] = 1.0
        return NTMState((h, h) if c.controller == "lstm" else (h,),
                        torch.full((batch_size, c.memory_size, c.memory_width), MEMORY_INIT, device=device,
                                   dtype=dtype),
                        torch.zeros(batch_size, c.read_heads, c.memory_width, device=device, dtype=dtype), weights)

    def _address(self, p: Tensor, memory: Tensor, previous: Tensor) -> Tensor:
        """The weightings of heads whose addressing parameters are p (B, H, M+3+S)."""
        M = self.config.memory_width
        key, beta, gate, shift, gamma = p.split([M, 1, 1, p.shape[-1] - M - 3, 1], -1)
        w = content_weights(key, F.softplus(beta[..., 0]), memory)
        w = interpolate(w, previous, torch.sigmoid(gate[..., 0]))
        w = circular_shift(w, torch.softmax(shift, -1))
        return sharpen(w, 1 + F.softplus(gamma[..., 0]))

    def step(self, x: Tensor, state: NTMState) -> tuple[Tensor, NTMState]:
        """One step: x_t (B, input_size) -> (logits of y_t (B, output_size), the new state)."""
        c = self.config
        B, R, W, M = x.shape[0], c.read_heads, c.write_heads, c.memory_width
        controller_input = torch.cat([x, state.reads.flatten(1)], 1)
        if c.controller == "lstm":
            controller = self.controller(controller_input, state.controller)
        else:
            controller = (torch.tanh(self.controller(controller_input)),)
        h = controller[0]
        params = self.heads(h)
        addressing = params[:, :(R + W) * self.addressing_size].view(B, R + W, self.addressing_size)
        weights = self._address(addressing, state.memory, state.weights)
        erase, add = params[:, (R + W) * self.addressing_size:].view(B, W, 2 * M).split(M, -1)
        memory = write(state.memory, weights[:, R:], torch.sigmoid(erase), torch.tanh(add))
        reads = read(memory, weights[:, :R])
        return self.output(torch.cat([h, reads.flatten(1)], 1)), NTMState(controller, memory, reads, weights)

    def forward(self, x: Tensor, record: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Logits (B, T, output_size) of every step; with ``record`` also every step's head
        weightings (B, T, heads, N), read heads first."""
        require(x.dim() == 3 and x.shape[-1] == self.config.input_size, "x",
                f"(batch, steps, {self.config.input_size})", tuple(x.shape))
        state = self.initial_state(x.shape[0], x.device)
        outputs, weights = [], []
        for t in range(x.shape[1]):
            y, state = self.step(x[:, t], state)
            outputs.append(y)
            if record:
                weights.append(state.weights)
        logits = torch.stack(outputs, 1)
        return (logits, torch.stack(weights, 1)) if record else logits
