from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from onnx_models import fixed_batch_model, mixed_model, scale_model
from tierwise.errors import (
    InferenceInputError,
    ModelLoadError,
    ModelNotReadyError,
    ProviderUnavailableError,
    TierwiseError,
)
from tierwise.runtime import OnnxBackend, OnnxSettings, Signature, read_signature, resolve_providers


def _mixed_inputs(batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "a": rng.standard_normal((batch, 3)).astype(np.float32),
        "b": rng.standard_normal((batch, 3)).astype(np.float16),
        "c": rng.integers(-1000, 1000, size=batch, dtype=np.int64),
        "d": rng.integers(0, 2, size=(batch, 2)).astype(bool),
        "e": rng.integers(0, 256, size=(batch, 4), dtype=np.uint8),
        "s": np.array([f"row-{i}-é".encode() for i in range(batch)], dtype=object),
    }


def test_signature_in_v2_terms(tmp_path: Path) -> None:
    sig = read_signature(mixed_model(tmp_path / "m.onnx"))
    assert [(t.name, t.datatype, t.shape) for t in sig.inputs] == [
        ("a", "FP32", (-1, 3)),
        ("b", "FP16", (-1, 3)),
        ("c", "INT64", (-1,)),
        ("d", "BOOL", (-1, 2)),
        ("e", "UINT8", (-1, 4)),
        ("s", "BYTES", (-1,)),
    ]
    assert [t.datatype for t in sig.outputs] == ["FP32", "FP16", "INT64", "BOOL", "UINT8", "BYTES"]
    assert sig.batch_dynamic
    assert Signature.from_dict(sig.to_dict()) == sig
    assert not read_signature(fixed_batch_model(tmp_path / "f.onnx")).batch_dynamic


@pytest.mark.parametrize("batch", [1, 5])
async def test_outputs_equal_onnxruntime_called_directly(tmp_path: Path, batch: int) -> None:
    path = mixed_model(tmp_path / "m.onnx")
    backend = OnnxBackend("mixed", path)
    await backend.load()
    inputs = _mixed_inputs(batch)
    got = await backend.infer(inputs)
    direct = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {k: v for k, v in inputs.items() if k != "s"}
    feeds["s"] = np.array([v.decode() for v in inputs["s"]], dtype=object)
    want = dict(zip([o.name for o in direct.get_outputs()], direct.run(None, feeds), strict=True))
    for name in ("sum", "half", "count", "flipped", "raw"):
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name])
    assert list(got["text"]) == list(inputs["s"])  # strings come back as bytes, unchanged
    await backend.unload()
    assert not backend.loaded


async def test_requested_output_subset(tmp_path: Path) -> None:
    backend = OnnxBackend("mixed", mixed_model(tmp_path / "m.onnx"))
    await backend.load()
    got = await backend.infer(_mixed_inputs(2), ["count"])
    assert list(got) == ["count"]
    with pytest.raises(InferenceInputError, match=r"'nope'.*produces sum, half"):
        await backend.infer(_mixed_inputs(2), ["nope"])
    await backend.unload()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda x: x.pop("c"), r"input 'c': missing input"),
        (lambda x: x.update(z=np.zeros(1, np.float32)), r"input 'z': unknown input"),
        (lambda x: x.update(a=x["a"].astype(np.float64)), r"input 'a': expected datatype FP32"),
        (
            lambda x: x.update(a=np.zeros((2, 4), np.float32)),
            r"input 'a': expected shape \[-1, 3\]",
        ),
        (lambda x: x.update(c=np.zeros((2, 1), np.int64)), r"input 'c': expected shape \[-1\]"),
    ],
)
async def test_bad_inputs_name_the_tensor(tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    backend = OnnxBackend("mixed", mixed_model(tmp_path / "m.onnx"))
    await backend.load()
    inputs = _mixed_inputs(2)
    change(inputs)
    with pytest.raises(InferenceInputError, match=message) as info:
        await backend.infer(inputs)
    assert info.value.status_code == 400
    assert (await backend.infer(_mixed_inputs(2)))["count"].shape == (2,)  # still serving
    await backend.unload()


async def test_missing_and_corrupt_files_fail_to_load(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no model file"):
        await OnnxBackend("gone", tmp_path / "nothing.onnx").load()
    corrupt = tmp_path / "corrupt.onnx"
    data = bytearray(scale_model(tmp_path / "ok.onnx", 2.0).read_bytes())
    corrupt.write_bytes(bytes(data[: len(data) // 2]))
    backend = OnnxBackend("corrupt", corrupt)
    with pytest.raises(ModelLoadError, match="could not load"):
        await backend.load()
    assert not backend.loaded
    with pytest.raises(ModelNotReadyError, match="not loaded"):
        await backend.infer({"x": np.zeros((1, 4), np.float32)})


def test_providers_checked_against_this_build() -> None:
    assert resolve_providers(["cpu"]) == ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ProviderUnavailableError, match="'cuda' is not available") as info:
            resolve_providers(["cuda", "cpu"])
        assert "CPUExecutionProvider" in info.value.available
    with pytest.raises(ProviderUnavailableError, match="'NoSuchExecutionProvider'"):
        resolve_providers(["NoSuchExecutionProvider"])


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="graph_optimization"):
        OnnxSettings(graph_optimization="turbo")
    with pytest.raises(ValueError, match="executor_threads"):
        OnnxSettings(executor_threads=0)
    with pytest.raises(ValueError, match="extra"):
        OnnxSettings(threads=4)  # type: ignore[call-arg]


async def test_predict_runs_off_the_event_loop(tmp_path: Path) -> None:
    settings = OnnxSettings(executor="thread")
    backend = OnnxBackend("scale", scale_model(tmp_path / "m.onnx", 3.0), settings)
    await backend.load()
    loop_thread = threading.get_ident()
    seen: list[int] = []
    original = backend._call

    def spy(*args):  # type: ignore[no-untyped-def]
        seen.append(threading.get_ident())
        return original(*args)

    backend._call = spy  # type: ignore[method-assign]
    results = await asyncio.gather(
        *(backend.infer({"x": np.full((1, 4), i, np.float32)}) for i in range(4))
    )
    assert [float(r["y"][0, 0]) for r in results] == [0.0, 3.0, 6.0, 9.0]
    assert seen
    assert loop_thread not in seen
    await backend.unload()


def test_errors_share_one_root(tmp_path: Path) -> None:
    assert issubclass(ProviderUnavailableError, TierwiseError)
    assert issubclass(ModelLoadError, TierwiseError)


async def test_auto_executor_inlines_fast_models_only(tmp_path: Path) -> None:
    from tierwise.bench import dense_stack_model

    fast = OnnxBackend("scale", scale_model(tmp_path / "fast.onnx", 3.0))
    heavy = OnnxBackend(
        "heavy", dense_stack_model(tmp_path / "heavy.onnx", width=1024, depth=8), OnnxSettings()
    )
    for backend, width in ((fast, 4), (heavy, 1024)):
        await backend.load()  # warm-up runs measure the cost per row
        threads: list[int] = []
        original = backend._call

        def spy(*args, original=original, threads=threads):  # type: ignore[no-untyped-def]
            threads.append(threading.get_ident())
            return original(*args)

        backend._call = spy  # type: ignore[method-assign]
        await backend.infer({"x": np.ones((1, width), np.float32)})
        inline = threads == [threading.get_ident()]
        assert inline is (backend is fast), backend.name
        await backend.unload()


async def test_fixed_dimensions_are_checked(tmp_path: Path) -> None:
    backend = OnnxBackend("fixed", fixed_batch_model(tmp_path / "f.onnx"))
    await backend.load()
    assert (await backend.infer({"x": np.zeros((1, 2), np.float32)}))["y"].shape == (1, 2)
    for bad in ((2, 2), (1, 3)):
        with pytest.raises(InferenceInputError, match=r"expected shape \[1, 2\]"):
            await backend.infer({"x": np.zeros(bad, np.float32)})
    await backend.unload()
