"""`dlrun tensorboard` over two runs: its HTTP API from 127.0.0.1, nothing on other interfaces, and the page in
headless Chromium (DOM and a screenshot kept in test-artifacts/)."""

from __future__ import annotations

import base64
import csv
import fcntl
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest

from helpers import ROOT, digits_spec, require_tool, write_spec

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
RUNS = ("digits-test/20260101-100000-aaaaaa", "digits-test/20260101-110000-bbbbbb")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--use-gl=swiftshader", "--enable-unsafe-swiftshader", "--hide-scrollbars"]
# TensorBoard draws lines with WebGL unless forceSVG; software GL here renders the page but not the lines
PAGE = "/?forceSVG=true&tagFilter=epoch_loss#timeseries"


def _get(base: str, path: str, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """Two finished digits runs (different learning rates) and `dlrun tensorboard` over them on a free port."""
    from runner.kernel import run_dir as rd
    from runner.spec import load_config
    from runner.run.experiment import run_experiment

    folder = tmp_path_factory.mktemp("board")
    root = folder / "runs"
    for run, lr in zip(RUNS, (0.003, 0.001)):
        spec = digits_spec(root, train={"epochs": 2, "optimizer": "adam", "lr": lr})
        path = write_spec(folder, spec, f"lr{lr}.yaml")
        cfg, _ = load_config(str(path), [])
        run_experiment(cfg, rd.RunDir.at(str(root / run)), spec_path=str(path))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "runner", "tensorboard", str(root), "--port", str(port)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    expected = {f"{r}/tensorboard{s}" for r in RUNS for s in ("", "/train", "/validation")}
    deadline = time.monotonic() + 120
    while True:
        assert server.poll() is None, server.stderr.read()
        try:
            if set(_get(base, "/data/runs")) == expected:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "TensorBoard did not list both runs within 120 s"
        time.sleep(0.5)
    yield base, port, root
    server.terminate()
    server.wait(timeout=30)


def test_runs_listed_through_the_http_api(board):
    base, _, root = board
    assert sorted(_get(base, "/data/runs")) == sorted(
        f"{r}/tensorboard{s}" for r in RUNS for s in ("", "/train", "/validation"))
    for run in RUNS:
        history = list(csv.DictReader((root / run / "history.csv").open()))
        query = urllib.parse.urlencode({"run": f"{run}/tensorboard/train", "tag": "epoch_loss"})
        series = _get(base, f"/data/plugin/scalars/scalars?{query}")
        assert [step for _, step, _ in series] == [0, 1]
        assert [value for _, _, value in series] == pytest.approx([float(r["loss"]) for r in history])


def test_hparams_table_holds_each_runs_learning_rate_and_best_metric(board):
    base, _, root = board
    request = {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN"], "colParams": [], "startIndex": 0,
               "sliceSize": 10}
    groups = _get(base, "/data/plugin/hparams/session_groups", request)["sessionGroups"]
    seen = {}
    for group in groups:
        (session,) = group["sessions"]
        metrics = {m["name"]["tag"]: m["value"] for m in session["metricValues"] if not m["name"]["group"]}
        seen[session["name"]] = (group["hparams"]["train.lr.base"], metrics["best/val_accuracy"])
    for run, lr in zip(RUNS, (0.003, 0.001)):
        best = json.loads((root / run / "metrics.json").read_text())["best"]["value"]
        assert seen[f"{run}/tensorboard"] == (pytest.approx(lr), pytest.approx(best))


def _non_loopback_ipv4() -> str | None:
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout.split()
    except OSError:
        return None
    return next((a for a in out if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", a) and not a.startswith("127.")), None)


def test_not_reachable_on_other_interfaces(board):
    _, port, _ = board
    address = _non_loopback_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address, port), timeout=5).close()


class DevTools:
    """Chromium driven through the DevTools protocol over --remote-debugging-pipe (fd 3 in, fd 4 out; JSON
    messages ended by NUL), so the test waits for what the page shows instead of guessing a delay."""

    def __init__(self, chromium: str, profile):
        to_browser, self._writer = os.pipe()
        self._reader, from_browser = os.pipe()

        def pipes():  # in the child: the pipe ends become fds 3 and 4 (copied high first, as 3 or 4 may be one)
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        # fds 3 and 4 are kept open through exec (subprocess closes the others after preexec_fn)
        self.proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                      "--remote-debugging-pipe", "about:blank"], pass_fds=(3, 4),
                                     preexec_fn=pipes, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._id = b"", 0
        target = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)["sessionId"]

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self._writer, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._reader, 1 << 20)
                assert chunk, f"chromium closed the DevTools pipe during {method}"
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                assert "error" not in reply, (method, reply["error"])
                return reply["result"]

    def page(self, method: str, **params) -> dict:
        return self.call(method, self.session, **params)

    def evaluate(self, expression: str):
        return self.page("Runtime.evaluate", expression=expression, returnByValue=True)["result"]["value"]

    def close(self):
        self.proc.kill()
        self.proc.wait()
        os.close(self._writer)
        os.close(self._reader)


# the smoothed line of each series is drawn opaque, its raw line faded
SERIES = "[...document.querySelectorAll('line-chart svg path')].filter(p => p.style.opacity === '1')"


@pytest.fixture(scope="module")
def chromium():
    """Chromium's path; checked before the board's runs train (module fixtures set up in argument order)."""
    return require_tool("chromium", "the TensorBoard page is checked in headless Chromium (Debian packages "
                                    "chromium and chromium-driver; .ci/run installs them)")


def test_chromium_shows_both_runs_series(chromium, board, tmp_path):
    base, _, _ = board
    browser = DevTools(chromium, tmp_path / "profile")
    try:
        browser.page("Emulation.setDeviceMetricsOverride", width=1400, height=1000, deviceScaleFactor=1, mobile=False)
        browser.page("Page.navigate", url=base + PAGE)
        deadline = time.monotonic() + 120
        while browser.evaluate(f"{SERIES}.length") < 4:
            assert time.monotonic() < deadline, "the epoch_loss chart did not draw 4 series within 120 s"
            time.sleep(0.5)
        time.sleep(1.0)  # let the chart finish its last frame before the screenshot
        runs_shown = browser.evaluate("document.body.innerText")
        segments = browser.evaluate(f"{SERIES}.map(p => p.getAttribute('d').split('L').length - 1)")
        colors = browser.evaluate(f"{SERIES}.map(p => p.style.stroke)")
        png = base64.b64decode(browser.page("Page.captureScreenshot", format="png")["data"])
    finally:
        browser.close()
    for run in RUNS:  # the run selector shows every run; the text wraps at '-'
        for split in ("train", "validation"):
            assert f"{run}/tensorboard/{split}".replace("-", "") in runs_shown.replace("-", "").replace("\n", "")
    assert segments == [1, 1, 1, 1]  # 2 runs x train/validation, two epochs: one segment each

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "tensorboard_two_runs.png"
    shot.write_bytes(png)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)
    assert pixels.shape == (1000, 1400, 3) and pixels.std() > 20
    for color in colors:  # every series' line colour is on screen: the lines were drawn, not just the frame
        rgb = np.array([int(c) for c in re.findall(r"\d+", color)], dtype=np.int16)
        assert (np.abs(pixels - rgb).max(axis=2) <= 8).sum() > 50, color
