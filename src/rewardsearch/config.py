"""The one configuration tree of a run: pydantic models, YAML presets, strict `KEY=VALUE` overrides.

Every stage receives only its own section (`TaskConfig`, `ScreenConfig`, ...). Unknown keys fail with a
suggestion; bad values fail with one line naming the key, the value and what is allowed (`ConfigError`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)


class ConfigError(ValueError):
    """A bad config file, key or value; the message is one line meant for the user."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ArithConfig(_Section):
    """Procedural word problems (the offline testbed)."""

    train_size: int = Field(2000, ge=1, description="problems in the GRPO training split")
    dev_size: int = Field(500, ge=1, description="problems in the dev split (selection)")
    test_size: int = Field(500, ge=1, description="problems in the test split (final reports only)")
    steps_mix: dict[int, float] = Field(
        default_factory=lambda: {1: 0.4, 2: 0.3, 3: 0.2, 4: 0.1},
        description="share of problems by number of operations (1..4); normalized",
    )
    ops: list[Literal["add", "sub", "mul", "div"]] = Field(
        default_factory=lambda: ["add", "sub", "mul", "div"], description="operations used"
    )
    max_operand: int = Field(50, ge=2, description="largest operand drawn")

    @model_validator(mode="after")
    def _check_mix(self) -> ArithConfig:
        bad = [k for k in self.steps_mix if k not in (1, 2, 3, 4)]
        if bad:
            raise ValueError(f"steps_mix keys must be 1..4, got {bad}")
        if sum(self.steps_mix.values()) <= 0 or any(v < 0 for v in self.steps_mix.values()):
            raise ValueError("steps_mix weights must be >= 0 with a positive sum")
        if not self.ops:
            raise ValueError("ops must name at least one of add, sub, mul, div")
        return self


class TaskConfig(_Section):
    """The task trained and evaluated (see docs/tasks.md): a registered name and the settings tasks read."""

    name: str = Field(
        "arith",
        description="arith | gsm8k | file | hf, a task registered under the entry-point group "
        "'rewardsearch.tasks', or 'package.module:Class'",
    )
    answer_format: str | None = Field(
        None, description="tags | boxed | hashes | answer_is (how completions lay out the answer); unset = the task's own"
    )
    check: Literal["numeric", "exact", "math-verify"] | None = Field(
        None,
        description="correctness check: numeric (the number equals gold), exact (the answer text equals gold), "
        "math-verify (Hugging Face's LaTeX-aware judge; pip install 'rewardsearch[math]'); unset = the task's own",
    )
    data_dir: str | None = Field(
        None,
        description="gsm8k only: a directory holding train.jsonl/test.jsonl; unset reads openai/gsm8k via datasets",
    )
    dev_pool: int = Field(500, ge=1, description="gsm8k, file, hf: size of the seeded dev slice carved out of train")
    path: str | None = Field(None, description="file: a .jsonl, .csv or .parquet file of problems (train)")
    test_path: str | None = Field(
        None, description="file: a file of test problems; unset carves a seeded test slice of test_pool out of path"
    )
    dataset: str | None = Field(None, description="hf: a `datasets` name, e.g. openai/gsm8k")
    config: str | None = Field(None, description="hf: the dataset's config name, e.g. main")
    train_split: str = Field("train", description="hf: the split that train and dev come from")
    test_split: str | None = Field(
        "test", description="hf: the test split; unset carves a seeded test slice of test_pool out of train"
    )
    test_pool: int = Field(200, ge=1, description="file, hf: size of the seeded test slice when no test set is given")
    question_field: str = Field("question", description="file, hf: the column holding the question")
    answer_field: str = Field("answer", description="file, hf: the column holding the gold answer")
    arith: ArithConfig = Field(default_factory=ArithConfig)

    @field_validator("name")
    @classmethod
    def _known_task(cls, name: str) -> str:
        from rewardsearch.tasks.registry import check_name

        check_name(name)  # names only: the task's module is imported when the task is loaded
        return name

    @field_validator("answer_format")
    @classmethod
    def _known_format(cls, name: str | None) -> str | None:
        from rewardsearch.tasks.answers import FORMATS

        if name is not None and name not in FORMATS:
            guess = difflib.get_close_matches(name, FORMATS, n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            raise ValueError(f"unknown answer format{hint}; choose one of {', '.join(FORMATS)}")
        return name

    @model_validator(mode="after")
    def _check_sources(self) -> TaskConfig:
        if self.name == "file" and not self.path:
            raise ValueError("task.name=file needs task.path (a .jsonl, .csv or .parquet file)")
        if self.name == "hf" and not self.dataset:
            raise ValueError("task.name=hf needs task.dataset (a `datasets` name, e.g. openai/gsm8k)")
        return self

    @model_validator(mode="after")
    def _no_ignored_settings(self, info: ValidationInfo) -> TaskConfig:
        # Only on what a person just wrote (a preset, a file, task.* overrides: `_validated` says so in the
        # context), not on configs read back from a run, so that runs made before this check still resume.
        if (info.context or {}).get("refuse_ignored"):
            from rewardsearch.tasks.registry import ignored_setting

            problem = ignored_setting(self)
            if problem:
                raise ValueError(problem)
        return self


class LoraConfigSection(_Section):
    r: int = Field(16, ge=1, description="LoRA rank")
    alpha: int = Field(32, ge=1, description="LoRA alpha")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="LoRA dropout")
    target_modules: str | list[str] = Field("all-linear", description="modules adapted ('all-linear' or names)")


class ModelConfig(_Section):
    name: str = Field(
        "embedded",
        description="'embedded' (SmolLM2-135M-Instruct), a HF id, a local directory or a .gguf file",
    )
    cache_dir: str | None = Field(None, description="where converted models live; default ~/.cache/rewardsearch")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="weights dtype; auto = bfloat16 on CUDA, float32 on CPU"
    )
    lora: LoraConfigSection = Field(default_factory=LoraConfigSection)


class ProposerConfig(_Section):
    name: Literal["evolve", "llm", "files", "replay"] = Field("evolve", description="who writes candidates")
    base_url: str | None = Field(None, description="llm: OpenAI-compatible endpoint")
    model: str | None = Field(
        None,
        description="llm: model name at the endpoint; with proposer.serve: qwen-coder-0.5b, qwen-coder-1.5b or "
        "a .gguf file",
    )
    serve: Literal["off", "llama.cpp"] = Field(
        "off",
        description="llm: llama.cpp = the run starts llama-cpp-python's OpenAI-compatible server on 127.0.0.1 with "
        "proposer.model and stops it at the end (pip install 'rewardsearch[llamacpp]')",
    )
    serve_n_ctx: int = Field(8192, ge=1024, description="llm, serve: context window of the served model, in tokens")
    serve_threads: int | None = Field(None, ge=1, description="llm, serve: CPU threads (None: all cores)")
    serve_start_timeout_s: float = Field(
        300.0, gt=0, description="llm, serve: how long the server may take to load the model and answer"
    )
    api_key_env: str = Field("OPENAI_API_KEY", description="llm: environment variable holding the API key")
    temperature: float = Field(0.6, ge=0.0, le=2.0, description="llm: sampling temperature")
    path: str | None = Field(
        None,
        description="files: directory of .py reward files; replay: a run directory (its run.sqlite) or a "
        "JSON/JSONL cassette of recorded responses",
    )
    json_mode: Literal["auto", "schema", "grammar", "object", "off"] = Field(
        "auto",
        description="llm: structured output asked of the endpoint: schema (OpenAI json_schema), grammar (json_object "
        "with the schema, llama-cpp-python's grammar-constrained form), object (any JSON) or off; an endpoint that "
        "refuses one is asked again one step down, and the answer is parsed robustly anyway; auto = off for the "
        "code prompt style (it asks for ```python blocks), schema otherwise",
    )
    batch_size: int = Field(5, ge=1, description="llm: candidates asked for in one call")
    max_calls_per_round: int = Field(4, ge=1, description="llm: calls made at most to fill one round")
    max_tokens: int | None = Field(8192, ge=1, description="llm: completion tokens per call (None: endpoint default)")
    timeout_s: float = Field(180.0, gt=0, description="llm: deadline of one HTTP request (a hang is a timeout)")
    max_retries: int = Field(5, ge=0, description="llm: retries of one call on 429, 5xx, timeouts, lost connections")
    backoff_s: float = Field(2.0, gt=0, description="llm: first retry delay; doubles per retry, with jitter")
    backoff_max_s: float = Field(
        60.0, gt=0, description="llm: longest wait before a retry; a longer Retry-After ends the call instead"
    )
    budget_calls: int | None = Field(None, ge=1, description="llm: HTTP requests allowed in the whole run")
    budget_tokens: int | None = Field(None, ge=1, description="llm: prompt + completion tokens allowed in the run")
    budget_usd: float | None = Field(None, gt=0, description="llm: money allowed in the run (needs the prices)")
    price_input_per_mtok: float = Field(0.0, ge=0, description="llm: USD per million prompt tokens")
    price_output_per_mtok: float = Field(0.0, ge=0, description="llm: USD per million completion tokens")
    context_chars: int = Field(
        60_000, ge=2_000,
        description="llm: prompt size budget in characters (about 4 per token); feedback is trimmed to fit",
    )
    samples: int = Field(3, ge=0, description="llm: training problems shown in the prompt")
    prompt_style: Literal["auto", "full", "compact", "code", "item"] = Field(
        "auto",
        description="llm: full = the contract, base rewards' source and every result; compact = a short prompt with "
        "one worked example, answered as JSON; code = the compact prompt answered as ```python blocks, which the "
        "1.5B coder gets past the static check far more often than code inside JSON strings (docs/llm-local.md); "
        "item = the model writes only a per-item `def f(text, gold) -> float` in ```python blocks and the "
        "proposer wraps it into the batch reward (pairing each completion with its own answer), which small "
        "models get wrong most often (docs/llm-local.md, 2026-12-03: it got 3 and 6 of 12-14 candidates accepted "
        "by every check for the 0.5B and 1.5B, against 0 and 0 for code); auto = item when proposer.serve runs "
        "the model, full otherwise",
    )
    template_dir: str | None = Field(
        None, description="llm: a directory whose system.j2 / user.j2 replace the shipped prompt templates"
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="llm: extra request fields passed through (e.g. top_p, provider options)"
    )
    parents: int = Field(4, ge=1, description="evolve: ranked parents drawn from the history")
    mutation_rate: float = Field(0.5, ge=0.0, le=1.0, description="evolve: share of children made by mutation")

    def resolved_style(self) -> str:
        """`full`, `compact`, `code` or `item`: `auto` means item exactly when the run serves a (small, local)
        model."""
        if self.prompt_style != "auto":
            return self.prompt_style
        return "item" if self.serve != "off" else "full"

    def resolved_json_mode(self) -> str:
        """The structured output asked for first: `auto` is off for the code and item styles (their answer is
        ```python blocks), schema otherwise."""
        if self.json_mode != "auto":
            return self.json_mode
        return "off" if self.resolved_style() in ("code", "item") else "schema"

    @model_validator(mode="after")
    def _check_serve(self) -> ProposerConfig:
        style = self.resolved_style()
        if style in ("code", "item") and self.json_mode not in ("auto", "off"):
            raise ValueError(f"json_mode={self.json_mode} forces a JSON answer, but prompt_style={style} asks for "
                             "```python blocks: use json_mode=off (or auto), or prompt_style=compact")
        if self.serve == "off":
            return self
        if self.name != "llm":
            raise ValueError(f"serve={self.serve} serves a model to the llm proposer; set proposer.name=llm")
        if self.base_url:
            raise ValueError(f"serve={self.serve} starts its own server and sets the endpoint; leave "
                             "proposer.base_url unset")
        if not self.model:
            raise ValueError(f"serve={self.serve} needs proposer.model=qwen-coder-0.5b, qwen-coder-1.5b or a .gguf file")
        return self


class SandboxConfig(_Section):
    call_timeout_s: float = Field(5.0, gt=0, description="wall-clock deadline of one reward call")
    start_timeout_s: float = Field(20.0, gt=0, description="deadline for a worker to start and load the code")
    memory_mb: int = Field(1024, ge=64, description="address-space limit of a worker")
    max_failures: int = Field(3, ge=1, description="failed calls after which a reward is quarantined")
    score_bound: float = Field(100.0, gt=0, description="|reward| above this is a bad result")
    level: Literal["auto", "strict", "landlock", "seccomp", "process"] = Field(
        "auto",
        description="OS isolation of reward workers: auto = the strongest this machine offers; strict = "
        "namespaces + Landlock + seccomp; landlock = Landlock + seccomp; seccomp; process = none (weak)",
    )
    allow_weak: bool = Field(
        False, description="run candidate code at level 'process' (no OS isolation) when nothing better exists"
    )
    latency_budget_ms: float = Field(
        1000.0, gt=0, description="dry run: p99 latency of one sandboxed call above this rejects the reward"
    )


class EarlyStopConfig(_Section):
    """Stop a screening trial inside its rung when it is clearly dead (the search's candidate trials only: the
    baseline and the final stage's arms always train their full budget). A stopped trial fails with the reason."""

    zero_std_steps: int = Field(
        20, ge=0,
        description="logged steps in a row with reward_std 0 (no GRPO group has any reward spread, so no advantage "
        "and no policy gradient); 0 = never",
    )
    nan_steps: int = Field(
        2, ge=0, description="logged steps in a row with a non-finite loss or grad norm; 0 = never"
    )
    length_fraction: float = Field(
        0.1, ge=0.0, lt=1.0,
        description="stop when the mean sampled completion length over the last `length_window` logged steps falls "
        "below this share of the first window's; 0 = never",
    )
    length_window: int = Field(10, ge=1, description="logged steps averaged at each end for the length rule")


class ScreenConfig(_Section):
    steps: int = Field(500, ge=1, description="GRPO optimizer steps of one screening trial")
    learning_rate: float = Field(5e-6, gt=0)
    num_generations: int = Field(4, ge=2, description="completions per prompt (GRPO group size)")
    prompts_per_step: int = Field(4, ge=1, description="distinct prompts in one optimizer step")
    max_completion_length: int = Field(256, ge=8, description="new tokens sampled per completion")
    temperature: float = Field(1.0, gt=0)
    beta: float = Field(0.04, ge=0.0, description="KL coefficient (TRL's beta)")
    lr_scheduler: str = Field("cosine", description="transformers scheduler name")
    weight_decay: float = Field(0.1, ge=0.0)
    warmup_ratio: float = Field(0.1, ge=0.0, le=1.0)
    max_grad_norm: float = Field(1.0, gt=0)
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto picks CUDA when present")
    logging_steps: int = Field(1, ge=1)
    checkpoint_every: int = Field(
        25, ge=0,
        description="save a resumable checkpoint (adapter, optimizer, scheduler, RNG, log history) every N steps; "
        "a killed trial continues from the last one; 0 = never",
    )
    generation: Literal["auto", "fast", "trl"] = Field(
        "auto",
        description="GRPO rollouts: fast = our CUDA-graph decoder inside TRL (Llama/Qwen2 on CUDA); trl = TRL's own "
        "generate; auto = fast where it applies, else trl with the reason logged",
    )
    rollout_weights: Literal["merged", "live"] = Field(
        "merged",
        description="fast rollouts sample from: merged = a copy with the LoRA deltas folded in, refreshed before "
        "each rollout (fewer kernels a token); live = the PEFT-wrapped modules themselves",
    )
    cudnn_attention: bool = Field(
        False,
        description="let the training pass (forward and backward) use cuDNN's SDPA kernels on CUDA; off because "
        "their backward returns NaN query gradients on H100/H200 with torch >= 2.11 for some sequence lengths "
        "(pytorch/pytorch#196678; screen/nonfinite.py); fast rollouts and evaluation keep every backend, TRL's own "
        "generate (screen.generation=trl) runs inside the training step and so without cuDNN too",
    )
    trl: dict[str, Any] = Field(
        default_factory=dict,
        description="GRPOConfig fields passed through to TRL (screen.trl.loss_type=dr_grpo), checked against the "
        "installed TRL; fields the trial sets from this section (steps, learning rate, ...) are refused",
    )

    @field_validator("trl")
    @classmethod
    def _known_trl_fields(cls, trl: dict[str, Any]) -> dict[str, Any]:
        from rewardsearch.screen.trl_args import check

        check(trl)  # imports TRL only when the mapping is not empty
        return trl

    rungs: list[int] = Field(
        default_factory=list,
        description="successive halving: the steps at which a round's trials are judged, e.g. [60, 150, 300]; the "
        "last must equal screen.steps (every trial's LR schedule spans it); [] = every trial runs screen.steps",
    )
    keep: float | list[float] = Field(
        0.5,
        description="share of a rung's trials promoted to the next (one value, or one per rung except the last); "
        "ceil(keep * n), at least one",
    )
    keep_within_noise: bool = Field(
        True,
        description="also promote trials the paired test cannot tell from the last one kept (Holm at stats.alpha, "
        "as the final ranking), so a drop is a measured difference and not dev-slice noise",
    )
    rung_dev_size: int | None = Field(
        None, ge=1,
        description="dev items evaluated at the rungs before the last (the first N of the dev split, the same items "
        "the final evaluation starts with); unset = eval.dev_size",
    )
    early_stop: EarlyStopConfig = Field(default_factory=lambda: EarlyStopConfig())
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(
        default_factory=list,
        description="TRL's report_to for every trial, each under its trial id (tensorboard writes to "
        "TRIAL/tensorboard; wandb and mlflow read their usual environment variables); [] = none",
    )

    @field_validator("report_to")
    @classmethod
    def _trackers_installed(cls, report_to: list[str]) -> list[str]:
        import importlib.util

        missing = [t for t in report_to if importlib.util.find_spec(t) is None]
        if missing:
            raise ValueError(f"{', '.join(missing)} not installed: pip install {' '.join(missing)}, or drop it")
        return report_to

    @model_validator(mode="after")
    def _check_batch(self) -> ScreenConfig:
        if self.num_generations < 2:
            raise ValueError("num_generations must be >= 2: GRPO compares completions within a group")
        return self

    @model_validator(mode="after")
    def _check_rungs(self) -> ScreenConfig:
        r = self.rungs
        if not r:
            return self
        if r[0] < 1 or any(b <= a for a, b in zip(r, r[1:], strict=False)):
            raise ValueError(f"rungs must be positive, strictly increasing steps, got {r}")
        if r[-1] != self.steps:
            raise ValueError(f"rungs: the last rung ({r[-1]}) must equal screen.steps ({self.steps}): every trial's "
                             "learning-rate schedule spans the final rung")
        if r[0] < 2 * self.warmup_steps:
            raise ValueError(f"rungs: the first rung ({r[0]}) must be at least twice the warmup "
                             f"({self.warmup_steps} steps of screen.warmup_ratio={self.warmup_ratio})")
        keep = self.keep if isinstance(self.keep, list) else [self.keep] * (len(r) - 1)
        if len(keep) != len(r) - 1:
            raise ValueError(f"keep: one share per rung except the last ({len(r) - 1}), got {len(keep)}")
        if any(not 0 < k <= 1 for k in keep):
            raise ValueError(f"keep: every share must be in (0, 1], got {keep}")
        return self

    @property
    def warmup_steps(self) -> int:
        """Warmup in optimizer steps, as transformers derives it from the ratio (ceil(ratio * max_steps))."""
        return math.ceil(self.warmup_ratio * self.steps)

    def schedule(self) -> list[int]:
        """The rungs a trial may reach; one rung of `steps` without successive halving."""
        return list(self.rungs) or [self.steps]

    def keep_at(self, rung: int) -> float:
        """The share promoted out of rung index `rung` (0-based, not the last)."""
        return self.keep[rung] if isinstance(self.keep, list) else self.keep


class PrescreenConfig(_Section):
    """The GPU-free pre-screen (`screen/prescreen.py`): once per run the base policy samples `samples` completions
    for each of `prompts` train prompts (cached in DIR/prescreen/ with their correctness); every candidate that
    passed the other checks is scored on that pool in the sandbox and rejected, with the reason, when GRPO could
    get no signal from it or it ranks wrong completions above right ones."""

    enabled: bool = Field(False, description="run the pre-screen (the gpu preset turns it on)")
    reject: bool = Field(
        True, description="reject on the verdict; false = record it (flag prescreen_would_reject, the reason in the "
        "check's details) and train the candidate anyway: to audit the pre-screen against full training",
    )
    prompts: int = Field(64, ge=2, description="train prompts in the pool (the first N of the train split)")
    samples: int = Field(8, ge=2, description="completions sampled per prompt (one GRPO-like group)")
    max_new_tokens: int | None = Field(
        None, ge=1, description="tokens per sampled completion; unset = screen.max_completion_length"
    )
    batch_size: int = Field(16, ge=1, description="prompts sampled together by `generate` (CPU); the fast decoder "
                            "(CUDA) samples the whole pool in one batch")
    min_signal_groups: float = Field(
        0.05, ge=0.0, le=1.0,
        description="reject when fewer than this share of groups get any spread of the candidate's scores",
    )
    alpha: float = Field(
        0.05, gt=0, lt=1,
        description="reject when a one-sided sign test over the groups holding both right and wrong completions "
        "says the candidate ranks wrong above right (per-group AUC below 0.5) at this level",
    )


class EvalConfig(_Section):
    dev_size: int = Field(128, ge=1, description="dev problems each trial is evaluated on (ranking)")
    test_size: int = Field(500, ge=1, description="test problems for final reports")
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(64, ge=1, description="prompts generated together (left padding)")
    generation: Literal["auto", "fast", "hf"] = Field(
        "auto",
        description="greedy decoding: fast = our CUDA-graph decoder (Llama/Qwen2 on CUDA); hf = transformers' "
        "generate; auto = fast where it applies, else hf with the reason logged",
    )


class SearchConfig(_Section):
    rounds: int = Field(5, ge=1)
    candidates_per_round: int = Field(10, ge=1)
    feedback_top: int = Field(5, ge=1, description="best candidates shown to the proposer")
    feedback_bottom: int = Field(3, ge=0, description="worst candidates shown to the proposer")
    mode: Literal["feedback", "random"] = Field("feedback", description="random = no history to the proposer")
    refills: int = Field(
        2, ge=0,
        description="times a round asks the proposer again, within the round, to replace candidates it lost: "
        "rejected by the static check, by the probes or as duplicates; each ask passes the rejections' one-line "
        "reasons back as notes (\"your previous candidate X was rejected: ...; fix it\"); 0 = never",
    )


class ExecutorConfig(_Section):
    """Where and how trials run (`execute/`): `local` subprocesses on this machine's GPUs (or CPU), or `ray` tasks
    on a Ray cluster (`pip install -e ".[ray]"`). Settings of one executor are refused under the other."""

    name: Literal["local", "ray"] = Field("local", description="local | ray (execute/base.py: EXECUTORS)")
    slots: int = Field(
        1, ge=1,
        description="trials side by side on each GPU (ray: each trial asks for 1/slots of a GPU), or on the CPU "
        "when there is no GPU",
    )
    trial_timeout_s: float = Field(7200.0, gt=0, description="an attempt running longer is killed (and retried)")
    cpu_threads: int = Field(
        0, ge=0,
        description="CPU threads per trial (OMP_NUM_THREADS; ray: the CPUs each task asks for); 0 = the machine's "
        "cores divided by the trials running at once (ray: 1)",
    )
    retries: int = Field(
        2, ge=0,
        description="times a trial that failed for infrastructure reasons (crash, signal, out of memory, past its "
        "deadline, lost node) is started again, from its last checkpoint; then it is marked failed",
    )
    gpus: list[str] | None = Field(
        None,
        description="local: the GPU ids trials are placed on; unset = CUDA_VISIBLE_DEVICES, else every GPU "
        "nvidia-smi lists",
    )
    trial_gpu_gib: float | None = Field(
        None, gt=0,
        description="local: GPU memory one trial holds at its peak (a trial's train.json peak_gpu_mib plus ~1 GiB "
        "of CUDA context); each GPU then runs at most as many trials as fit in what was free when the executor "
        "started, even if executor.slots asks for more; unset = executor.slots, unchecked",
    )
    preflight: bool = Field(
        True,
        description="one tiny baseline step on the target device (through this executor) before the first "
        "proposer call of a session: a broken device fails the run before anything is paid for",
    )
    address: str | None = Field(
        None, description="ray: the cluster to join ('auto', 'ray://HOST:10001'); unset = start a local one"
    )
    artifact_dir: str | None = Field(
        None,
        description="ray: a directory every node sees at the same path and that holds the run directory: trials "
        "write in place; unset = each trial's directory is shipped to the task and back with its result",
    )

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpu_ids(cls, v: Any) -> Any:
        # `executor.gpus=[0,1]` parses as ints; CUDA_VISIBLE_DEVICES takes indices and UUIDs alike, as text
        return [str(x) for x in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _one_executor(self) -> ExecutorConfig:
        if self.name == "ray" and self.trial_gpu_gib is not None:
            raise ValueError("executor.trial_gpu_gib is a local setting: under ray each trial asks for "
                             "1/executor.slots of a GPU; choose slots so that many fit and add executor.trial_gpu_gib=null "
                             "(the gpu preset sets it), or use executor.name=local")
        if self.name == "local":
            for key in ("address", "artifact_dir"):
                if getattr(self, key) is not None:
                    raise ValueError(f"executor.{key} is a ray setting: set executor.name=ray, or unset it")
        if self.name == "ray" and self.gpus is not None:
            raise ValueError("executor.gpus is a local setting: Ray places trials itself (limit the GPUs a node "
                             "offers with `ray start --num-gpus`), or use executor.name=local")
        return self


class EnsembleConfig(_Section):
    """The final stage (`rewardsearch ensemble DIR`): reward sets built from the dev ranking, multi-seed
    retraining of the best single candidates, and controls; every one trained and evaluated on dev and test.

    Ensembles: `top-k` for each k in `ks` (capped by the candidates evaluated; equal sets are trained once) and,
    for each name in `greedy`, forward selection over the members' per-item dev correctness vectors:
    `cover` adds the candidate that solves most dev items the set does not yet solve (complementarity),
    `vote` adds the candidate that most raises the share of items at least half the members solve (consensus).
    The paper preset's seven: top-2, top-3, top-5, top-7, top-10, greedy-cover, greedy-vote.
    """

    ks: list[int] = Field(default_factory=lambda: [2, 3, 5, 7, 10], description="sizes of the top-k ensembles")
    greedy: list[Literal["cover", "vote"]] = Field(
        default_factory=lambda: ["cover", "vote"], description="greedy forward-selection criteria (see class doc)"
    )
    max_members: int = Field(10, ge=2, description="largest reward set a greedy selection may build")
    diverse_rounds: bool = Field(
        False, description="the paper's diverse-rounds ensemble: the best candidate of every search round"
    )
    short_top: list[list[int]] = Field(
        default_factory=list,
        description="[[k, steps], ...]: top-k sets trained with `steps` GRPO steps instead of screen.steps "
        "(the paper's final top-5 at 300 steps: [[5, 300]])",
    )
    normalize: Literal["zscore", "none"] = Field(
        "zscore", description="ensemble/random-set trials: z-score each reward within its GRPO group before summing"
    )
    seeds: int = Field(3, ge=1, description="training seeds per final arm: the run's seed, seed+1, ...")
    retrain_top: int = Field(3, ge=0, description="best single candidates (dev) retrained with `seeds` seeds")
    base_control: bool = Field(True, description="control: the base rewards only")
    random_k: bool = Field(True, description="control: k randomly drawn accepted candidates (k of the best ensemble)")
    random_draws: int = Field(
        3, ge=1, description="random-k controls: independent draws of k candidates (each trained with every seed)"
    )
    random_k_policy: Literal["best", "all"] = Field(
        "best",
        description="best: draw after the ensembles are evaluated, k = the best one's size (a second wave of trials); "
        "all: one draw per distinct ensemble size, trained beside the ensembles (more trials, one wave)",
    )
    random_run: str | None = Field(
        None, description="a finished search.mode=random run directory; its best candidate becomes a control"
    )
    random_search: bool = Field(
        False, description="run that random-mode search here first (DIR/random-search, same budget), then use it"
    )
    select_split: Literal["dev", "test"] = Field(
        "dev", description="split that picks the winner and the best ensemble; test inflates what is reported"
    )
    slots: int = Field(0, ge=0, description="trials side by side in this stage; 0 = executor.slots")
    after_run: bool = Field(False, description="`run` goes on into this stage and writes the report when done")

    @model_validator(mode="after")
    def _check_sizes(self) -> EnsembleConfig:
        bad = [k for k in self.ks if k < 2]
        if bad:
            raise ValueError(f"ks must all be >= 2 (an ensemble has at least two members), got {bad}")
        bad_short = [x for x in self.short_top if len(x) != 2 or x[0] < 2 or x[1] < 1]
        if bad_short:
            raise ValueError(f"short_top entries must be [k >= 2, steps >= 1], got {bad_short}")
        return self


class StatsConfig(_Section):
    """Statistics of the report: bootstrap CIs, paired tests, multiple-comparison corrections."""

    alpha: float = Field(0.05, gt=0, lt=1, description="family-wise error rate of the corrected tests")
    confidence: float = Field(0.95, gt=0, lt=1, description="level of every confidence interval")
    bootstrap_resamples: int = Field(2000, ge=100, description="bootstrap resamples (seeded with the run's seed)")
    matrix_top: int = Field(10, ge=1, description="dev family: the top-N candidates and the baseline, pairwise")


class Config(_Section):
    seed: int = Field(0, ge=0)
    task: TaskConfig = Field(default_factory=TaskConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    proposer: ProposerConfig = Field(default_factory=ProposerConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    screen: ScreenConfig = Field(default_factory=ScreenConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    ensemble: EnsembleConfig = Field(default_factory=EnsembleConfig)
    stats: StatsConfig = Field(default_factory=StatsConfig)
    prescreen: PrescreenConfig = Field(default_factory=PrescreenConfig)

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        if self.proposer.name == "llm" and self.proposer.serve == "off" and not (
            self.proposer.base_url and self.proposer.model
        ):
            raise ValueError("proposer.name=llm needs proposer.base_url and proposer.model (or proposer.serve=llama.cpp "
                             "and proposer.model)")
        if self.proposer.name in ("files", "replay") and not self.proposer.path:
            raise ValueError(f"proposer.name={self.proposer.name} needs proposer.path")
        p = self.proposer
        if p.budget_usd is not None and not (p.price_input_per_mtok or p.price_output_per_mtok):
            raise ValueError(
                f"proposer.budget_usd={p.budget_usd} needs proposer.price_input_per_mtok or "
                "proposer.price_output_per_mtok to count money"
            )
        return self

    def hash(self) -> str:
        """Stable 12-hex digest of the whole tree (provenance of every result)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


PRESETS = ("smoke", "gpu", "paper")


def _format_error(err: ValidationError, overrides: dict[str, Any]) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        known = _all_keys(Config)
        guess = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        return f"unknown key '{key}'{hint}"
    value = first.get("input")
    if key in overrides:
        value = overrides[key]
    msg = msg.removeprefix("Value error, ")
    if not key:  # model-level validator: the message names the keys itself
        return f"invalid config: {msg}"
    if msg.startswith(key + "."):  # the validator named the key inside the mapping itself (screen.trl.FIELD)
        return msg
    if isinstance(value, dict):  # a section's validator: the message names the field
        return f"{key}: {msg}"
    return f"{key}={value!r}: {msg}"


def _all_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.extend(_all_keys(ann, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"unknown key '{key}': '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["screen.steps=8", "task.name=gsm8k"]` -> `{"screen.steps": 8, ...}`; values parse as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. screen.steps=8")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override {item!r}: empty key")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key] = raw
    return out


def preset_text(name: str) -> str:
    if name not in PRESETS:
        guess = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        raise ConfigError(f"preset {name!r} does not exist{hint}; choose one of {', '.join(PRESETS)}")
    return resources.files("rewardsearch.presets").joinpath(f"{name}.yaml").read_text()


def load_config(
    preset: str | None = None, path: str | Path | None = None, overrides: list[str] | None = None
) -> Config:
    """Preset or YAML file (not both), then overrides, validated once."""
    if preset and path:
        raise ConfigError("give --preset or --config, not both")
    tree: dict[str, Any] = {}
    if preset:
        tree = yaml.safe_load(preset_text(preset)) or {}
    elif path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        try:
            tree = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {str(p)!r} is not valid YAML: {exc}".splitlines()[0]) from None
        if not isinstance(tree, dict):
            raise ConfigError(f"config file {str(p)!r} must hold a mapping, got {type(tree).__name__}")
    return _validated(tree, parse_overrides(overrides or []), refuse_ignored=True)


def _validated(tree: dict[str, Any], parsed: dict[str, Any], refuse_ignored: bool) -> Config:
    """`tree` with the parsed overrides applied, validated once; errors name the override that caused them.

    `refuse_ignored`: a task setting its task does not read is an error (`TaskConfig._no_ignored_settings`).
    """
    for key, value in parsed.items():
        _set_dotted(tree, key, value)
    try:
        return Config.model_validate(tree, context={"refuse_ignored": refuse_ignored})
    except ValidationError as err:
        raise ConfigError(_format_error(err, parsed)) from None


def override_config(cfg: Config, overrides: list[str], allowed: tuple[str, ...] = ()) -> Config:
    """`cfg` with `KEY=VALUE` overrides applied and validated once; `allowed` limits the key prefixes."""
    parsed = parse_overrides(overrides)
    for key in parsed:
        if allowed and not key.startswith(allowed):
            raise ConfigError(f"override {key!r}: only {', '.join(p + '*' for p in allowed)} keys may change here")
    # task.* overrides are new input (`eval`); the rest of a stored run's task section is not checked again
    return _validated(cfg.model_dump(mode="json"), parsed, refuse_ignored=any(k.startswith("task.") for k in parsed))


def config_from_json(blob: str) -> Config:
    return Config.model_validate_json(blob)
