"""Deployment figures of an exported file: its size, its gzipped size, and per-example latency in its runtime."""

from __future__ import annotations

import gzip
import io
import tarfile
import time
from pathlib import Path

from runner.kernel.native_log import native_log

LATENCY_WARMUP = 10  # first calls allocate and tune: not what a served model costs
LATENCY_RUNS = 200  # single-example calls timed; the median is reported


def sizes(path: Path) -> dict:
    """Bytes on disk and gzipped (level 9; a folder such as a SavedModel as one .tar.gz)."""
    path = Path(path)
    if path.is_dir():
        files = [p for p in sorted(path.rglob("*")) if p.is_file()]
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=9) as tar:
            tar.add(path, arcname=path.name)
        return {"size_bytes": sum(p.stat().st_size for p in files), "gzip_bytes": len(buf.getvalue())}
    data = path.read_bytes()
    return {"size_bytes": len(data), "gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0))}


def latency(fmt: str, path: Path, x) -> dict | None:
    """Median per-example latency (batch 1) in onnxruntime or LiteRT; None for the other formats."""
    if fmt == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1  # as LiteRT below: one core per request
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name

        def call(example):
            session.run(None, {name: example})
    elif fmt in ("tflite", "litert"):
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(path), num_threads=1)
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        interpreter.resize_tensor_input(inp["index"], [1, *x.shape[1:]])
        with native_log():  # the process's first allocation logs the XNNPACK delegate it creates
            interpreter.allocate_tensors()

        def call(example):
            interpreter.set_tensor(inp["index"], example.astype(inp["dtype"]))
            interpreter.invoke()
            interpreter.get_tensor(out["index"])
    else:
        return None
    import numpy as np

    examples = [x[i % len(x)][None] for i in range(LATENCY_WARMUP + LATENCY_RUNS)]
    times = []
    for i, example in enumerate(examples):
        started = time.perf_counter()
        call(example)
        if i >= LATENCY_WARMUP:
            times.append(time.perf_counter() - started)
    return {"latency_ms": {"median": float(np.median(times)) * 1e3, "p90": float(np.percentile(times, 90)) * 1e3,
                           "runs": LATENCY_RUNS, "batch": 1}}


def figures(fmt: str, path: Path, x) -> dict:
    return {**sizes(path), **(latency(fmt, path, x) or {})}
