"""A model's settings: batching is one sub-model with one set of defaults, a setting put
where it does not belong says where it lives, and ``config.yaml`` is laid over the
server's defaults key by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from onnx_models import scale_model
from tierwise.errors import ConfigError, ModelLoadError
from tierwise.server import BatcherSettings, ModelConfig, ServerSettings, load_yaml_settings
from tierwise.server.repository import read_model


def test_batching_is_one_sub_model_with_the_batchers_defaults() -> None:
    config = ModelConfig()
    assert config.batching == BatcherSettings()
    assert (config.batching.max_batch_size, config.batching.max_queue_size) == (64, 512)
    assert config.batching.max_queue_delay_ms == 0.0
    assert config.batching.instances == 1
    assert config.runtime == "onnxruntime"
    parsed = ModelConfig.model_validate({"batching": {"preferred_batch_sizes": [32, 8, 8]}})
    assert parsed.batching.preferred_batch_sizes == (8, 32)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch_size": 0}, "max_batch_size: expected >= 1, got 0"),
        ({"max_queue_delay_ms": 20_000}, "max_queue_delay_ms: expected <= 10000.0, got 20000"),
        ({"max_queue_size": 0}, "max_queue_size: expected >= 1, got 0"),
        ({"instances": 65}, "instances: expected <= 64, got 65"),
        (
            {"max_batch_size": 4, "preferred_batch_sizes": (2, 8)},
            "preferred_batch_sizes: expected sizes between 1 and max_batch_size=4, got [8]",
        ),
        ({"max_batch": 4}, "max_batch: expected a known setting (did you mean 'max_batch_size'?)"),
    ],
)
def test_batcher_settings_name_the_field_the_bound_and_the_value(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        BatcherSettings(**kwargs)  # type: ignore[arg-type]
    assert str(info.value) == message


def _repo(tmp_path: Path, config: str) -> Path:
    scale_model(tmp_path / "scale" / "1" / "model.onnx", 2.0)
    (tmp_path / "scale" / "config.yaml").write_text(config)
    return tmp_path


@pytest.mark.parametrize("key", ["max_batch_size", "max_queue_size", "instances"])
def test_a_batching_key_at_the_top_says_where_it_lives(tmp_path: Path, key: str) -> None:
    repo = _repo(tmp_path, f"{key}: 4\n")
    with pytest.raises(ModelLoadError) as info:
        read_model(repo, "scale", ModelConfig())
    assert f"{key}: unknown setting here; it lives under batching.{key}" in str(info.value)


def test_server_yaml_defaults_say_where_a_batching_key_lives(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text(f"model_repo: {tmp_path}\ndefault_model: {{max_queue_size: 8}}\n")
    with pytest.raises(ConfigError) as info:
        load_yaml_settings(path)
    assert (
        "default_model.max_queue_size: unknown setting here; "
        "it lives under default_model.batching.max_queue_size"
    ) in str(info.value)


def test_bad_batching_value_in_config_yaml_names_its_path(tmp_path: Path) -> None:
    repo = _repo(tmp_path, "batching: {max_batch_size: 4, preferred_batch_sizes: [16]}\n")
    with pytest.raises(ModelLoadError) as info:
        read_model(repo, "scale", ModelConfig())
    assert (
        "batching.preferred_batch_sizes: expected sizes between 1 and max_batch_size=4, got [16]"
    ) in str(info.value)


def test_config_yaml_changes_only_the_keys_it_names(tmp_path: Path) -> None:
    repo = _repo(tmp_path, "batching: {max_batch_size: 8}\nonnx: {warmup_runs: 0}\n")
    defaults = ServerSettings.model_validate(
        {
            "model_repo": repo,
            "default_model": {
                "batching": {"max_queue_size": 64, "instances": 2},
                "onnx": {"intra_op_threads": 2},
            },
        }
    ).default_model
    config = read_model(repo, "scale", defaults).config
    assert config.batching == BatcherSettings(max_batch_size=8, max_queue_size=64, instances=2)
    assert (config.onnx.warmup_runs, config.onnx.intra_op_threads) == (0, 2)


def test_unknown_runtime_in_config_yaml_lists_the_known_ones(tmp_path: Path) -> None:
    repo = _repo(tmp_path, "runtime: tensorflow\n")
    with pytest.raises(ModelLoadError) as info:
        read_model(repo, "scale", ModelConfig())
    assert "runtime: expected one of the known runtimes (onnxruntime" in str(info.value)
    assert "got 'tensorflow'" in str(info.value)
