"""``rnnkit demo RUN...``: a local web page that does what each run's model does.

    language model   a prompt, temperature, top-k, length -> the text, streamed piece by piece
                     (server-sent events, the same generate_text as ``rnnkit generate``)
    speech (CTC)     record in the browser or upload a file -> the timed words and the
                     alignment picture (``rnnkit transcribe`` / ``rnnkit align``)
    translation      a sentence -> its translation and the attention map (``rnnkit translate``)
    tagger           a sentence -> each word with its tag (``rnnkit tag``)
    classifier       a sentence (or a bracketed parse, for a tree net) -> the class
                     probabilities (``rnnkit classify``)

A small Starlette app served by uvicorn (``pip install 'rnnkit[demo]'``): one static page of
plain HTML and JavaScript (rnnkit/demo.html) and a JSON API under /api/. Why not Gradio, the
field's usual choice: it brings about 60 packages (150 MB) for what is here a few hundred
lines, its page loads scripts and fonts from the network by default (these machines have
none), and its generated markup changes between releases, which a browser test would chase.
Starlette gives streaming responses and request bodies in a few lines, and the page's
element ids stay ours. The server listens on 127.0.0.1 unless told otherwise; a model's
mistake about an input (an empty sentence, an unreadable recording) comes back as a message
on the page, never as a traceback.
"""

from __future__ import annotations

import base64
import json
import queue
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

__all__ = ["DemoRun", "load_run", "build_app", "serve", "EXTRA"]

EXTRA = "pip install 'rnnkit[demo]' (or: pip install starlette uvicorn)"
#: the most text one request may generate, and the longest input accepted
MAX_LENGTH = 2000
MAX_TEXT = 2000
MAX_AUDIO_BYTES = 20 * 2**20


@dataclass
class DemoRun:
    """One run on the page: what its model does (``kind``) and the objects that do it."""

    name: str
    kind: str  # generate | transcribe | translate | tag | classify
    path: Path
    worker: Any
    lock: threading.Lock = field(default_factory=threading.Lock)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "path": str(self.path)}


def load_run(path: str | Path, device: torch.device | str = "cpu") -> DemoRun:
    """A run (or checkpoint) as a :class:`DemoRun`, its kind read off its model."""
    import rnnkit
    from rnnkit.models import CTCRecognizer, Seq2Seq
    from rnnkit.run_dir import Checkpoint

    ckpt = Checkpoint.resolve(path)
    name = Path(path).resolve().name
    model = rnnkit.load(ckpt.path, map_location=device).eval()
    if isinstance(model, CTCRecognizer):
        from rnnkit.speech import load_transcriber

        lexicon = "" if (ckpt.path / Checkpoint.LEXICON).is_file() else None
        return DemoRun(name, "transcribe", Path(path), load_transcriber(ckpt.path, device, lexicon=lexicon))
    if isinstance(model, Seq2Seq):
        from rnnkit.translation import Translator

        return DemoRun(name, "translate", Path(path), Translator.load(ckpt.path, device))
    for method, kind in (("generate_text", "generate"), ("tag", "tag"), ("classify", "classify")):
        if hasattr(model, method):
            if kind == "generate" and model.vocab is None:
                raise ValueError(f"{path}: the language model has no vocabulary (vocab.json), so it cannot take text")
            return DemoRun(name, kind, Path(path), model)
    raise ValueError(f"{path} holds a {type(model).__name__}; the demo shows language models, speech recognisers, "
                     "translators, taggers and classifiers")


# -- what each kind does with a request ---------------------------------------------------------


def _text(body: dict[str, Any]) -> str:
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("type a sentence first")
    if len(text) > MAX_TEXT:
        raise ValueError(f"at most {MAX_TEXT} characters, please. Received: {len(text)}")
    return text


def _number(body: dict[str, Any], key: str, kind: Callable[[Any], Any], default: Any, low: float, high: float) -> Any:
    value = body.get(key, default)
    if value in (None, ""):
        return default
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key}: expected a number. Received: {value!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{key}: expected a value in [{low}, {high}]. Received: {value}")
    return value


def _png(draw: Callable[[Path], Path]) -> str:
    """A picture drawn to a temporary file, as a data: URL."""
    with tempfile.TemporaryDirectory() as folder:
        out = draw(Path(folder) / "picture.png")
        return "data:image/png;base64," + base64.b64encode(out.read_bytes()).decode()


def stream_generation(run: DemoRun, body: dict[str, Any]) -> Iterator[str]:
    """Server-sent events: {"piece": ...} as each piece of text exists, then {"done": true}
    (or {"error": ...}). The options are checked now, before the stream starts."""
    prompt = body.get("prompt") or ""
    if not isinstance(prompt, str) or len(prompt) > MAX_TEXT:
        raise ValueError(f"prompt: expected text of at most {MAX_TEXT} characters")
    options = {"temperature": _number(body, "temperature", float, 0.8, 0.05, 5.0),
               "top_k": _number(body, "top_k", int, None, 1, 10**6),
               "generator": torch.Generator().manual_seed(_number(body, "seed", int, 0, 0, 2**31))}
    length = _number(body, "length", int, 200, 1, MAX_LENGTH)
    pieces: queue.Queue = queue.Queue()

    def work() -> None:
        try:
            with run.lock, torch.no_grad():
                run.worker.generate_text(prompt, length, on_text=pieces.put, **options)
            pieces.put(None)
        except ValueError as e:
            pieces.put(e)

    def events() -> Iterator[str]:
        threading.Thread(target=work, daemon=True).start()
        while True:
            item = pieces.get()
            if item is None:
                yield f"data: {json.dumps({'done': True})}\n\n"
                return
            if isinstance(item, Exception):
                yield f"data: {json.dumps({'error': str(item)})}\n\n"
                return
            yield f"data: {json.dumps({'piece': item})}\n\n"

    return events()


def transcribe(run: DemoRun, audio: bytes) -> dict[str, Any]:
    """The timed words of a recording (any format soundfile reads), and its alignment picture."""
    from rnnkit.audio import read_audio
    from rnnkit.plots import ctc_alignment

    if not audio:
        raise ValueError("no recording received: record or choose a file first")
    if len(audio) > MAX_AUDIO_BYTES:
        raise ValueError(f"the recording is larger than {MAX_AUDIO_BYTES // 2**20} MB")
    transcriber = run.worker
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "recording"
        path.write_bytes(audio)
        wave, _ = read_audio(path, transcriber.model.frontend.config.sample_rate)
    with run.lock:
        words = transcriber([wave])[0]
        text = " ".join(w.text for w in words)
        picture = _png(lambda out: ctc_alignment(transcriber.align(wave), out, f'"{text}"')) if words else None
    return {"text": text, "words": [{"word": w.text, "start": round(w.start, 3), "end": round(w.end, 3)}
                                    for w in words], "picture": picture}


def translate(run: DemoRun, body: dict[str, Any]) -> dict[str, Any]:
    from rnnkit.plots import attention_map

    beam = _number(body, "beam", int, 5, 1, 64)
    with run.lock:
        (t,) = run.worker.translate([_text(body)], beam=beam, attention=True)
    picture = None if t.attention is None else _png(
        lambda out: attention_map(t.attention, t.source_pieces, t.target_pieces, out, f"{t.source}\n-> {t.text}"))
    return {"translation": t.text, "picture": picture}


def tag(run: DemoRun, body: dict[str, Any]) -> dict[str, Any]:
    from rnnkit.data.tokenize import english_sentences

    sentences = english_sentences(_text(body))
    with run.lock:
        tags = run.worker.tag(sentences)
    return {"sentences": [{"words": w, "tags": t} for w, t in zip(sentences, tags)]}


def classify(run: DemoRun, body: dict[str, Any]) -> dict[str, Any]:
    from rnnkit.data.trees import classifier_inputs
    from rnnkit.models import TreeClassifier

    items, note = classifier_inputs([_text(body)], isinstance(run.worker, TreeClassifier))
    with run.lock:
        (probabilities,) = run.worker.classify(items)
    ranked = sorted(probabilities.items(), key=lambda kv: -kv[1])
    return {"class": ranked[0][0], "probabilities": dict(ranked), "note": note}


ANSWERS = {"translate": translate, "tag": tag, "classify": classify}


# -- the app ------------------------------------------------------------------------------------


def build_app(runs: list[DemoRun]) -> Any:
    """The Starlette app: the page at /, the runs at /api/runs, one endpoint per run."""
    try:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
        from starlette.routing import Route
    except ImportError:
        raise ImportError(f"rnnkit demo needs Starlette and uvicorn: {EXTRA}") from None
    page = resources.files("rnnkit").joinpath("demo.html").read_text(encoding="utf-8")

    def find(request: Request) -> DemoRun:
        index = request.path_params["index"]
        if not 0 <= index < len(runs):
            raise LookupError(f"no run number {index}")
        return runs[index]

    async def body_of(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise ValueError("the request is not JSON") from None
        if not isinstance(body, dict):
            raise ValueError("the request is not a JSON object")
        return body

    async def home(request: Request) -> Response:
        return HTMLResponse(page)

    async def listing(request: Request) -> Response:
        return JSONResponse([r.describe() for r in runs])

    async def answer(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        try:
            run = find(request)
            if run.kind == "generate":
                events = stream_generation(run, await body_of(request))
                return StreamingResponse(events, media_type="text/event-stream",
                                         headers={"Cache-Control": "no-store"})
            if run.kind == "transcribe":
                return JSONResponse(await run_in_threadpool(transcribe, run, await request.body()))
            return JSONResponse(await run_in_threadpool(ANSWERS[run.kind], run, await body_of(request)))
        except LookupError as e:
            return JSONResponse({"error": str(e)}, status_code=404)
        except (ValueError, FileNotFoundError) as e:
            return JSONResponse({"error": str(e)}, status_code=400)

    return Starlette(routes=[Route("/", home), Route("/api/runs", listing),
                             Route("/api/run/{index:int}", answer, methods=["POST"])])


def serve(paths: list[str], host: str = "127.0.0.1", port: int = 7860, device: str = "cpu") -> None:
    """Load the runs and serve the page until interrupted."""
    try:
        import uvicorn
    except ImportError:
        raise ImportError(f"rnnkit demo needs Starlette and uvicorn: {EXTRA}") from None
    with socket.socket() as probe:  # a clear error now rather than uvicorn's log line after loading the runs
        try:
            probe.bind((host, port))
        except OSError as e:
            raise OSError(f"--port {port}: cannot listen on {host}:{port} ({e.strerror}); choose another --port") from None
    runs = [load_run(p, device) for p in paths]
    app = build_app(runs)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    url = f"http://{host}:{port}/"
    print(f"rnnkit demo: {', '.join(f'{r.name} ({r.kind})' for r in runs)} at {url} (Ctrl-C stops)", flush=True)
    server.run()
