"""The proposer prompt: shipped templates overridable by path, a size budget met by trimming, secrets redacted.

    python -m pytest tests/test_prompt.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rewardsearch.config import ProposerConfig, TaskConfig
from rewardsearch.propose.base import HistoryEntry, ProposerError, ProposerNotAvailable, RoundContext
from rewardsearch.propose.prompt import PromptBuilder, redact
from rewardsearch.rewards.spec import RewardSpec
from rewardsearch.sandbox.static import ALLOWED_MODULES
from rewardsearch.tasks import load_task

TASK = load_task(TaskConfig(), 0)


def _entry(i: int, state: str = "evaluated", body_lines: int = 60) -> HistoryEntry:
    body = "\n".join(f"    x{j} = {i} * {j}  # padding line" for j in range(body_lines))
    src = f"def cand_{i}(prompts, completions, answer, **kwargs):\n{body}\n    return [0.0] * len(completions)\n"
    spec = RewardSpec(name=f"cand_{i}", source=src, round=1 + i // 4, description=f"candidate number {i}")
    if state == "evaluated":
        return HistoryEntry(spec=spec, state=state, dev_accuracy=0.5 - i / 100, dev_extraction_rate=0.5,
                            dev_ci95=[0.4, 0.6], dev_n=64, curves={"frac_reward_zero_std": 0.5})
    return HistoryEntry(spec=spec, state=state, reason=f"probe: reason number {i} " + "x" * 200)


def _ctx(history: list[HistoryEntry], **kw) -> RoundContext:
    return RoundContext(round=3, seed=0, task_card=TASK.card(), samples=TASK.split("train")[:3], history=history,
                        feedback_top=5, feedback_bottom=3, **kw)


HISTORY = [_entry(i) for i in range(8)] + [_entry(i, "rejected") for i in range(8, 20)]


def test_the_full_prompt_has_every_slot() -> None:
    prompt = PromptBuilder(ProposerConfig(samples=2)).build(_ctx(HISTORY, baseline_dev={
        "accuracy": 0.25, "ci95": [0.1, 0.4], "n": 64, "extraction_rate": 0.3}), 4)
    system, user = (m["content"] for m in prompt.messages)
    assert "def <name>(prompts, completions, answer, **kwargs)" in system
    assert ", ".join(ALLOWED_MODULES) in system and "|score| <= 100" in system
    assert "def answer_reward(" in system  # the base rewards' source
    assert "write 4 new reward functions" in user and "Task: arith" in user
    assert user.count("  gold answer:") == 2  # two training samples
    assert "Base rewards only: dev accuracy 0.250 (95% CI [0.100, 0.400], n=64)" in user
    assert all(f"cand_{i} (id" in user for i in range(5)) and "cand_7 (id" in user  # top 5, bottom 3
    assert "reason number 19" in user and "reason number 8" in user
    assert not prompt.omitted and prompt.chars == len(system) + len(user)


def test_a_small_budget_trims_least_informative_first_and_says_so() -> None:
    full = PromptBuilder(ProposerConfig()).build(_ctx(HISTORY), 4)
    budget = full.chars - 4000
    prompt = PromptBuilder(ProposerConfig(context_chars=budget)).build(_ctx(HISTORY), 4)
    user = prompt.messages[1]["content"]
    assert prompt.chars <= budget
    assert prompt.omitted[0].startswith("source of worst candidates")
    assert "Left out to fit the prompt budget: source of worst candidates" in user
    assert "def cand_0(" in user  # the leader keeps its source
    assert "reason number 19" in user  # newest rejection kept


def test_a_tiny_budget_keeps_the_leader_and_the_newest_failures_last() -> None:
    # The budget is the prompt with no history (contract, card, base rewards) plus room for about one entry,
    # so the test follows the fixed part as the templates change.
    fixed = PromptBuilder(ProposerConfig()).build(_ctx([]), 4).chars
    prompt = PromptBuilder(ProposerConfig(context_chars=fixed + 1500)).build(_ctx(HISTORY), 4)
    user = prompt.messages[1]["content"]
    assert prompt.chars <= fixed + 1500
    assert "cand_0 (id" in user and "cand_1 (id" not in user
    assert "best candidates (4)" in ", ".join(prompt.omitted)


def test_a_budget_too_small_for_the_contract_is_an_error_naming_it() -> None:
    with pytest.raises(ProposerError, match=r"proposer.context_chars=2000: the prompt needs \d+ characters"):
        PromptBuilder(ProposerConfig(context_chars=2000)).build(_ctx(HISTORY), 4)


def test_secrets_are_redacted_from_feedback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-0123456789abcdef")
    src = ('API_KEY = "abcd1234efgh5678"\nGROQ = "gsk_' + "a" * 40 + '"\nX = "tok-0123456789abcdef"\n'
           "def leaky(prompts, completions, **kwargs):\n    secret = completions[0]\n    return [1.0]\n")
    h = HistoryEntry(spec=RewardSpec(name="leaky", source=src), state="evaluated", dev_accuracy=0.5)
    from rewardsearch.propose.prompt import env_secrets

    user = PromptBuilder(ProposerConfig(), env_secrets()).build(_ctx([h]), 1).messages[1]["content"]
    assert "abcd1234efgh5678" not in user and "gsk_aaaa" not in user and "tok-0123456789abcdef" not in user
    assert user.count("[REDACTED]") == 3
    assert "secret = completions[0]" in user  # ordinary code is left alone
    assert redact("Authorization: Bearer abcdefghijklmnopqrstuvwxyz") == "Authorization: [REDACTED]"


def test_templates_are_overridable_by_path(tmp_path: Path) -> None:
    (tmp_path / "user.j2").write_text("ROUND {{ round }} WANTS {{ n }}; best: {% for e in top %}{{ e.name }} {% endfor %}")
    prompt = PromptBuilder(ProposerConfig(template_dir=str(tmp_path))).build(_ctx(HISTORY[:2]), 3)
    assert prompt.messages[1]["content"] == "ROUND 3 WANTS 3; best: cand_0 cand_1 "
    assert "Answer format" in prompt.messages[0]["content"]  # system.j2 still the shipped one
    with pytest.raises(ProposerNotAvailable, match="proposer.template_dir='/nonexistent' is not a directory"):
        PromptBuilder(ProposerConfig(template_dir="/nonexistent"))


def test_the_compact_prompt_is_short_shows_no_base_reward_code_and_one_line_per_result() -> None:
    ctx = _ctx(HISTORY, baseline_dev={"accuracy": 0.25, "ci95": [0.1, 0.4], "n": 64, "extraction_rate": 0.3})
    full = PromptBuilder(ProposerConfig(samples=2)).build(ctx, 3)
    compact = PromptBuilder(ProposerConfig(samples=2, prompt_style="compact")).build(ctx, 3)
    system, user = (m["content"] for m in compact.messages)
    assert compact.chars < full.chars / 2
    # small models copy what they see: no base-reward source or helpers to copy, and no placeholder to echo
    assert "def answer_reward(" not in system and "completion_text" not in system and "<complete" not in system
    assert "def close_answer_in_solution(prompts, completions, answer, **kwargs):" in system
    assert ", ".join(ALLOWED_MODULES) in system and "between -100 and 100" in system
    assert "Write 3 new, different reward functions as JSON." in user
    assert "- cand_0: 0.500: candidate number 0" in user and "base rewards alone: 0.250" in user
    assert "- cand_19: probe: reason number 19" in user


def test_auto_style_is_item_exactly_when_the_run_serves_its_model() -> None:
    served = ProposerConfig(name="llm", serve="llama.cpp", model="qwen-coder-0.5b")
    assert served.resolved_style() == "item" and served.resolved_json_mode() == "off"
    remote = ProposerConfig(name="llm", base_url="http://h/v1", model="m")
    assert remote.resolved_style() == "full" and remote.resolved_json_mode() == "schema"
    assert ProposerConfig(name="llm", serve="llama.cpp", model="m", prompt_style="full").resolved_style() == "full"
    assert ProposerConfig(prompt_style="compact", json_mode="grammar").resolved_json_mode() == "grammar"
    # a JSON mode would force JSON on a prompt that asks for code blocks: refused, not silently obeyed
    with pytest.raises(ValueError, match="json_mode=grammar forces a JSON answer, but prompt_style=item"):
        ProposerConfig(name="llm", serve="llama.cpp", model="m", json_mode="grammar")
    with pytest.raises(ValueError, match="json_mode=grammar forces a JSON answer, but prompt_style=code"):
        ProposerConfig(prompt_style="code", json_mode="grammar")


def test_the_code_style_asks_for_python_blocks_and_its_answer_parses() -> None:
    from rewardsearch.propose.parse import parse_answer
    from rewardsearch.propose.prompt import example_source

    ctx = _ctx(HISTORY[:2])
    system, user = (m["content"] for m in PromptBuilder(ProposerConfig(prompt_style="code")).build(ctx, 2).messages)
    assert "each reward function in its own ```python block" in system and "JSON" not in system
    assert user.rstrip().endswith("Write 2 new, different reward functions, each in its own ```python block.")
    # the answer the prompt asks for is what the parser takes: the example's shape, fenced, one per block
    variant = example_source().replace("def close_answer_in_solution", "def closer").replace(
        "import re\n", 'import re\n    """Credit for nearly right."""\n', 1)
    res = parse_answer(f"```python\n{variant}```")
    assert res.how == "python blocks" and [c.name for c in res.candidates] == ["closer"]


def test_the_compact_example_passes_every_check_the_candidates_face() -> None:
    """The one reward the compact prompt shows must itself be a valid, non-constant, safe reward."""
    from rewardsearch.config import SandboxConfig
    from rewardsearch.propose.prompt import example_source
    from rewardsearch.sandbox import check_reward

    spec = RewardSpec(name="close_answer_in_solution", source=example_source(), entrypoint="close_answer_in_solution")
    samples = [(p.question, p.answer) for p in TASK.split("train")[:8]]
    results = check_reward(spec, SandboxConfig(allow_weak=True), samples, fmt=TASK.answer_format)
    assert [r.stage for r in results] == ["static", "probe"]
    assert all(r.ok for r in results), [r.reason for r in results]
    assert not results[-1].flags  # not a hacking risk on the probes
