"""The fast decoder against transformers' `generate` on tiny random Llama and Qwen2 models (CPU, fp32)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rewardsearch.evaluate.decoder import FastDecoder, Sampling, unsupported_reason  # noqa: E402

VOCAB, EOS, PAD = 96, 3, 0


def _tiny(arch: str, seed: int = 0):
    common = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  eos_token_id=EOS, pad_token_id=PAD, bos_token_id=1, tie_word_embeddings=True)
    torch.manual_seed(seed)
    if arch == "llama":
        cfg = transformers.LlamaConfig(**common)
        model = transformers.LlamaForCausalLM(cfg)
    elif arch == "qwen2":
        cfg = transformers.Qwen2Config(**common, use_sliding_window=False)
        model = transformers.Qwen2ForCausalLM(cfg)
        with torch.no_grad():  # random-init biases are zero: make them matter, since Qwen2's q/k/v have them
            for layer in model.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    proj.bias.normal_(0, 0.5)
    else:
        raise AssertionError(arch)
    with torch.no_grad():  # sharper logits, so greedy ties (where float order decides) do not happen
        model.lm_head.weight.mul_(4.0)
    return model.eval()


def _prompts(n: int, seed: int = 1) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(3, 40, (1,), generator=g))
        out.append(torch.randint(4, VOCAB, (length,), generator=g).tolist())
    return out


def _hf_greedy(model, prompts, max_new):
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), PAD)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    with torch.no_grad():
        gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new, do_sample=False,
                             eos_token_id=EOS, pad_token_id=PAD, temperature=None, top_p=None, top_k=None)
    rows = []
    for row in gen[:, width:].tolist():
        cut = row.index(EOS) + 1 if EOS in row else len(row)
        rows.append(row[:cut])
    return rows


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_greedy_matches_generate_token_for_token(arch):
    model = _tiny(arch)
    prompts = _prompts(12)
    ours = FastDecoder(model).generate(prompts, 24, [EOS], PAD)
    theirs = _hf_greedy(model, prompts, 24)
    assert ours == theirs
    # exact padding (evaluation) and a prefill split into row chunks give the same tokens
    assert FastDecoder(model).generate(prompts, 24, [EOS], PAD, prompt_bucket=1, prefill_tokens=100) == theirs
    assert any(len(r) < 24 for r in ours) or all(EOS not in r for r in theirs)


def test_batch_composition_does_not_change_a_row():
    # Left padding and the static cache must be invisible: a prompt decodes the same alone or in a batch.
    model = _tiny("qwen2", seed=3)
    prompts = _prompts(6, seed=5)
    dec = FastDecoder(model)
    together = dec.generate(prompts, 16, [EOS], PAD)
    alone = [dec.generate([p], 16, [EOS], PAD)[0] for p in prompts]
    assert together == alone


def test_eos_ends_each_row_at_its_first_eos_which_is_kept():
    model = _tiny("llama")
    prompts = _prompts(5)
    dec = FastDecoder(model, check_every=1)
    free = dec.generate(prompts, 20, [VOCAB + 1], PAD)          # an EOS that never comes: full rows
    assert all(len(r) == 20 for r in free)
    stop = free[0][5]                                           # a token row 0 does emit: now it is EOS
    cut = dec.generate(prompts, 20, [stop], PAD)
    for full, short in zip(free, cut, strict=True):
        expect = full[: full.index(stop) + 1] if stop in full else full
        assert short == expect
    assert len(cut[0]) <= 6


def test_sampling_has_generate_distribution():
    # First sampled token under temperature/top-k/top-p: our draws and generate's draws from one distribution.
    from scipy.stats import chi2_contingency

    model = _tiny("llama", seed=7)
    with torch.no_grad():
        model.lm_head.weight.mul_(0.25)   # a spread-out distribution, so the warpers cut something
    prompt = _prompts(1, seed=9)[0]
    n = 3000
    s = Sampling(greedy=False, temperature=0.8, top_k=12, top_p=0.9)
    torch.manual_seed(0)
    ours = FastDecoder(model).generate([prompt] * n, 1, [EOS], PAD, sampling=s)
    ids = torch.tensor([prompt] * n)
    with torch.no_grad():
        gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=1, do_sample=True,
                             temperature=0.8, top_k=12, top_p=0.9, eos_token_id=EOS, pad_token_id=PAD)
    theirs = gen[:, -1].tolist()
    a = [r[0] for r in ours]
    support = sorted(set(a) | set(theirs))
    assert 2 < len(support) <= 12          # top-k and top-p did cut, and something is left to compare
    table = [[a.count(t) for t in support], [theirs.count(t) for t in support]]
    assert chi2_contingency(table).pvalue > 1e-3


def test_unsupported_architecture_is_named():
    cfg = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=VOCAB)
    reason = unsupported_reason(transformers.GPT2LMHeadModel(cfg))
    assert reason is not None and "gpt2" in reason
    assert "repetition_penalty" in unsupported_reason(_tiny("llama"), {"repetition_penalty": 1.1})
    with pytest.raises(ValueError, match="gpt2"):
        FastDecoder(transformers.GPT2LMHeadModel(cfg))


@pytest.mark.parametrize("key_block,cache_align", [(8, 1), (16, 64), (0, 1)])
def test_key_blocks_and_cache_alignment_keep_generate_tokens(key_block, cache_align):
    # Attending only to the key blocks written so far, and padding the cache past its last slot, change which
    # positions are masked, never which tokens come out; max_new 3 puts a block boundary right at the end.
    model = _tiny("qwen2")
    prompts = _prompts(6, seed=3)
    dec = FastDecoder(model, key_block=key_block, cache_align=cache_align)
    for max_new in (3, 30):
        timings: dict = {}
        ours = dec.generate(prompts, max_new, [EOS], PAD, prompt_bucket=1, timings=timings)
        assert ours == _hf_greedy(model, prompts, max_new)
        assert timings["cache_len"] % cache_align == 0 and timings["decode_steps"] <= max_new - 1
        assert timings["cache_len"] >= timings["prompt_len"] + max_new


def test_bad_cache_settings_are_refused():
    with pytest.raises(ValueError, match="cache_align=0"):
        FastDecoder(_tiny("llama"), cache_align=0)


def test_live_lora_weights_are_seen_without_rebuilding():
    # The decoder calls PEFT's own layers: changing the adapter in place changes the next output.
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(_tiny("qwen2"), peft.LoraConfig(r=4, target_modules="all-linear"))
    dec = FastDecoder(model)
    prompts = _prompts(4)
    before = dec.generate(prompts, 12, [EOS], PAD)
    assert before == _hf_greedy(model, prompts, 12)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    after = dec.generate(prompts, 12, [EOS], PAD)
    assert after != before
    assert after == _hf_greedy(model, prompts, 12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_cuda_graph_replay_matches_generate_and_sees_weight_updates(arch):
    # On the GPU (fp32, so the comparison is exact): captured graphs give generate's tokens, a second call with
    # the same shape replays the same graph, and an in-place weight change reaches the replayed graph.
    model = _tiny(arch).cuda()
    dec = FastDecoder(model, key_block=16)   # several key blocks: graphs captured mid-generation too
    assert dec.use_graphs
    prompts = _prompts(10)
    assert dec.generate(prompts, 40, [EOS], PAD) == _hf_greedy(model, prompts, 40)
    graphs = dict(next(iter(dec._shapes.values())).graphs)
    assert len(graphs) >= 3
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight.mul_(-1.0)
    again = dec.generate(prompts, 40, [EOS], PAD)
    assert next(iter(dec._shapes.values())).graphs == graphs   # replayed, not captured again
    assert again == _hf_greedy(model, prompts, 40)
    s = Sampling(greedy=False, temperature=0.9, top_p=0.95)
    drawn = dec.generate(prompts * 4, 20, [EOS], PAD, sampling=s)
    assert len({tuple(r) for r in drawn}) > len(prompts)   # sampling in the graph draws fresh numbers per replay


def test_evaluation_fast_path_gives_generate_texts(tiny_model_dir):
    # The evaluation wrapper (chat texts in, decoded texts out; one batched tokenizer call) against the
    # `generate` wrapper on a real tokenizer and a tiny real-architecture model, fp32 on CPU.
    from rewardsearch.evaluate.generate import _generate_fast, _generate_hf, load_for_eval

    model, tok = load_for_eval(tiny_model_dir, None, "cpu", torch.float32)
    chats = [[{"role": "user", "content": q}] for q in ("What is 2+3?", "Name a colour.", "Count to three, please.")]
    texts = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in chats]
    timings: list = []
    fast = _generate_fast(model, tok, texts, 10, 2, None, timings=timings)
    assert fast == _generate_hf(model, tok, texts, 10, 3, None)
    assert [t["batch"] for t in timings] == [2, 1]
