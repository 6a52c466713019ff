"""``tierwise calibrate`` on the user's own cascade: ONNX files and live V2 endpoints the
digits zoo did not make, over the user's labelled ``.npz`` or folder of V2 requests;
every input mistake exits 2 with one line naming what was wrong and what was expected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from score_models import (
    BLURRY,
    PADDLE_OUTPUT,
    SHARP,
    image_classifier,
    images,
    run_cli,
    true_labels,
    v2_request,
)
from server_helpers import free_port, server_process

H, W = 4, 8
ROWS = 40


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """small.onnx (logits, 'logits_out'), big.onnx (probabilities under the PaddlePaddle
    name), two.onnx (two float outputs), eval.npz and a request folder of the same rows."""
    root = tmp_path_factory.mktemp("calibrate-models")
    image_classifier(
        root / "small.onnx", BLURRY, logits=True, output="logits_out", height=H, width=W
    )
    image_classifier(root / "big.onnx", SHARP, height=H, width=W)
    image_classifier(root / "two.onnx", BLURRY, height=H, width=W, second_output="aux")
    x = images(ROWS, height=H, width=W, seed=21)
    y = true_labels(x)
    np.savez(root / "eval.npz", x=x, labels=y)
    folder = root / "requests"
    folder.mkdir()
    for i, row in enumerate(x):
        (folder / f"req-{i:03d}.json").write_bytes(orjson.dumps(v2_request(row[None])))
    (folder / "labels.txt").write_text("".join(f"{v}\n" for v in y))
    return root


def calibrate(
    work: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    monkeypatch.chdir(work)
    return run_cli(["calibrate", *args], capsys, monkeypatch)


def ok(code: int, out: str, err: str) -> dict[str, Any]:
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


STAGES = ["--model", "a=small.onnx", "--model", "b=big.onnx", "--scores", "a=logits"]


def test_npz_and_folder_give_the_same_calibration(
    work: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    npz = ok(*calibrate(work, capsys, monkeypatch, *STAGES, "--eval", "eval.npz", "--json"))
    assert npz["variants"] == ["a", "b"]
    assert npz["tiers"] == ["device", "cloud"]  # by position: default costs
    assert npz["usd_per_inference"] == [0.0, 2e-4]
    assert npz["samples"] == ROWS
    assert npz["variant_outputs"] == {
        "a": {"output": "logits_out", "scores": "logits"},
        "b": {"output": PADDLE_OUTPUT, "scores": "probabilities"},
    }
    assert npz["variant_accuracy"]["b"] == 1.0
    assert npz["variant_accuracy"]["a"] < 1.0  # the blurry model misses some rows
    assert npz["oracle"]["cost_usd_per_million"] < npz["cloud_only"]["cost_usd_per_million"]
    assert set(npz["rules"]) == {"max_prob", "margin", "entropy"}
    folder = ok(*calibrate(work, capsys, monkeypatch, *STAGES, "--eval", "requests", "--json"))
    assert folder == npz | {"variant_outputs": npz["variant_outputs"]}

    # labels.json, as a mapping of file name to label, reads the same
    requests = work / "requests-json"
    requests.mkdir(exist_ok=True)
    labels = (work / "requests" / "labels.txt").read_text().split()
    mapping = {}
    for i, file in enumerate(sorted((work / "requests").glob("*.json"))):
        (requests / file.name).write_bytes(file.read_bytes())
        mapping[file.name] = int(labels[i])
    (requests / "labels.json").write_text(json.dumps(mapping))
    mapped = ok(*calibrate(work, capsys, monkeypatch, *STAGES, "--eval", str(requests), "--json"))
    assert mapped["rules"] == npz["rules"]


def test_tables_say_where_scores_were_read(
    work: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = calibrate(
        work, capsys, monkeypatch, *STAGES, "--eval", "eval.npz", "--steps", "11",
        "--cost", "b=0.001",
    )  # fmt: skip
    assert code == 0, err
    assert f"scores read from: a 'logits_out' (logits), b '{PADDLE_OUTPUT}' (probabilities)" in out
    assert "b (cloud) $0.001" in out
    assert "rule max_prob" in out


def test_an_endpoint_is_a_stage_in_the_order_given(
    work: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = work / "repo"
    image_classifier(repo / "ocr-big" / "1" / "model.onnx", SHARP, height=H, width=W)
    local = ok(*calibrate(work, capsys, monkeypatch, *STAGES, "--eval", "eval.npz", "--json"))
    with server_process(repo) as server:
        url = f"{server.url}/v2/models/ocr-big"
        mixed = ok(
            *calibrate(
                work,
                capsys,
                monkeypatch,
                "--model",
                "a=small.onnx",
                "--endpoint",
                f"b={url}",
                "--scores",
                "a=logits",
                "--eval",
                "eval.npz",
                "--json",
            )
        )
        flipped = ok(
            *calibrate(
                work,
                capsys,
                monkeypatch,
                "--endpoint",
                f"b={url}",
                "--model",
                "a=small.onnx",
                "--scores",
                "a=logits",
                "--eval",
                "requests",
                "--json",
            )
        )
    assert mixed["rules"] == local["rules"]
    assert mixed["variant_outputs"] == local["variant_outputs"]
    assert flipped["variants"] == ["b", "a"]  # the flags' order is the cascade's
    assert flipped["tiers"] == ["device", "cloud"]
    down = calibrate(
        work, capsys, monkeypatch, *STAGES[:2], "--endpoint",
        f"b=http://127.0.0.1:{free_port()}/v2/models/ocr-big", "--eval", "eval.npz",
    )  # fmt: skip
    assert down[0] == 2
    assert down[2].startswith("error: --endpoint b: expected a live V2 model at http://")


def _npz(work: Path, name: str, **arrays: np.ndarray) -> str:
    np.savez(work / name, **arrays)
    return name


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        (
            "missing-model",
            "error: --model a: expected an ONNX file, but there is none at nope.onnx",
        ),
        (
            "array-names",
            "error: eval: expected arrays in names.npz named as the inputs of 'a' (x) plus"
            " optional labels (missing ['x']; unknown arrays ['img', 'mask'])",
        ),
        (
            "dtype",
            "error: --eval f64.npz: array 'x': expected FP32 [N, 3, 4, 8] for input 'x' of"
            " 'a', got 'FP64 [40, 3, 4, 8]'",
        ),
        (
            "shape",
            "error: --eval wide.npz: array 'x': expected FP32 [N, 3, 4, 8] for input 'x' of"
            " 'a', got 'FP32 [40, 3, 4, 9]'",
        ),
        (
            "label-count",
            "error: --eval short.npz: labels: expected 40 labels, one per row of the inputs,"
            " got 39",
        ),
        (
            "label-range",
            "error: --eval range.npz: labels: expected class ids below 2, the classes of"
            " output 'logits_out' of 'a', got '7 (row 3)'",
        ),
        ("no-labels", "error: --eval nolabels.npz: expected an array 'labels'"),
        (
            "missing-output",
            "error: --model b: expected an output named 'probs', but the model has none;"
            f" the model's outputs: '{PADDLE_OUTPUT}' FP32 [?, 2]; name it with --output b=",
        ),
        (
            "ambiguous",
            "error: --model b: expected output: naming the tensor that holds the scores (no"
            f" output is named 'probabilities' and 2 are ('{PADDLE_OUTPUT}', 'aux') float",
        ),
        (
            "folder-labels",
            "error: --eval requests-short/labels.txt: expected 40 labels, one per row of the"
            " inputs, got 2",
        ),
    ],
)
def test_input_mistakes_exit_2_in_one_line(
    work: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    needle: str,
) -> None:
    x = np.load(work / "eval.npz")["x"]
    y = true_labels(x)
    stages = list(STAGES)
    data = "eval.npz"
    if case == "missing-model":
        stages[1] = "a=nope.onnx"
    elif case == "array-names":
        data = _npz(work, "names.npz", img=x, mask=x, labels=y)
    elif case == "dtype":
        data = _npz(work, "f64.npz", x=x.astype(np.float64), labels=y)
    elif case == "shape":
        data = _npz(work, "wide.npz", x=np.concatenate([x, x[..., :1]], axis=3), labels=y)
    elif case == "label-count":
        data = _npz(work, "short.npz", x=x, labels=y[:-1])
    elif case == "label-range":
        bad = y.copy()
        bad[3] = 7
        data = _npz(work, "range.npz", x=x, labels=bad)
    elif case == "no-labels":
        data = _npz(work, "nolabels.npz", x=x)
    elif case == "missing-output":
        stages += ["--output", "b=probs"]
    elif case == "ambiguous":
        stages[3] = "b=two.onnx"
    elif case == "folder-labels":
        short = work / "requests-short"
        short.mkdir(exist_ok=True)
        for file in (work / "requests").glob("*.json"):
            (short / file.name).write_bytes(file.read_bytes())
        (short / "labels.txt").write_text("0\n1\n")
        data = "requests-short"
    code, out, err = calibrate(work, capsys, monkeypatch, *stages, "--eval", data, "--json")
    assert code == 2, err
    assert out == ""
    assert err.count("\n") == 1, err  # one line
    assert err.startswith(needle), err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "a=small.onnx", "--eval", "eval.npz"], "expected 2 to 4 stages"),
        ([*STAGES], "--eval"),
        ([*STAGES, "--eval", "eval.npz", "--scores", "b=logit"], "expected b=probabilities"),
        ([*STAGES, "--eval", "eval.npz", "--output", "c=x"], "unknown stage 'c'"),
        ([*STAGES, "--eval", "eval.npz", "--zoo", "."], "not both"),
        ([*STAGES, "--eval", "eval.npz", "--variants", "a,b"], "--variants"),
        (["--model", "a=small.onnx", "--model", "a=big.onnx", "--eval", "eval.npz"], "NAME"),
        (["--model", "a=small.onnx", "--endpoint", "b=localhost:1/v2/models/m", "--eval", "x"],
         "http://HOST:PORT/v2/models/MODEL"),
        ([], "expected --zoo DIR, or --model"),
    ],
)  # fmt: skip
def test_flag_mistakes_exit_2(
    work: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    needle: str,
) -> None:
    code, out, err = calibrate(work, capsys, monkeypatch, *args)
    assert code == 2, err
    assert needle in " ".join(err.replace("│", " ").split()), err
    assert out == ""
