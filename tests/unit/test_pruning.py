import pytest
import torch

from genfast.compress import compress_, recipe_of
from genfast.compress.prune import PruneFFN, PruneLayers, PruneUnstructured
from genfast.compress.prune.unstructured import sparsity
from genfast.errors import ConfigError
from genfast.models.loading import from_model, load
from genfast.models.tiny import tiny_model
from genfast.runtime.generate import generate
from genfast.runtime.torch_runtime import TorchRuntime


def _params(model):
    return sum(p.numel() for p in model.parameters())


def test_unstructured_sets_the_share_of_zeros_and_records_the_step(tokenizer):
    model, _ = tiny_model("llama", tokenizer)
    compress_(model, PruneUnstructured(amount=0.5))
    assert sparsity(model) == pytest.approx(0.5, abs=0.01)
    assert recipe_of(model) == [{"technique": "PruneUnstructured", "amount": 0.5, "method": "magnitude", "seed": 0,
                                 "version": 1}]


@pytest.mark.parametrize("arch_name", ["llama", "qwen2", "qwen3", "phi3", "gpt2"])
def test_ffn_pruning_shrinks_matrices_and_reloads(tokenizer, tmp_path, arch_name):
    model, _ = tiny_model(arch_name, tokenizer)
    handle = from_model(model, tokenizer)
    before = _params(model)
    compress_(handle, PruneFFN(fraction=0.25))
    width = 192 if arch_name != "gpt2" else 256  # 3 x 64 (Llama-family) and 4 x 64 (GPT-2)
    expected_removed = (width // 4) * (3 if arch_name != "gpt2" else 2) * 64 * 2  # 2 layers
    assert before - _params(handle.model) >= expected_removed
    handle.model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    reloaded = load(str(tmp_path))
    ids = torch.randint(1, 400, (1, 8))
    torch.testing.assert_close(reloaded.model(ids).logits, handle.model(ids).logits)
    assert generate(TorchRuntime(reloaded.model), ids, 4).shape == (1, 4)  # genfast's decoder follows


def test_layer_pruning_drops_layers_and_still_generates(tokenizer, tmp_path):
    model, _ = tiny_model("llama", tokenizer, layers=3)
    handle = from_model(model, tokenizer)
    compress_(handle, PruneLayers(count=1))
    assert handle.config.num_hidden_layers == 2 and len(handle.model.model.layers) == 2
    assert [layer.self_attn.layer_idx for layer in handle.model.model.layers] == [0, 1]
    ids = torch.randint(1, 400, (1, 8))
    ref = handle.model.generate(ids, max_new_tokens=6, min_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(generate(TorchRuntime(handle.model), ids, 6), ref[:, 8:])
    handle.model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert load(str(tmp_path)).config.num_hidden_layers == 2


@pytest.mark.parametrize("config, match", [
    (PruneUnstructured(amount=1.2), "must be in \\[0, 1\\)"),
    (PruneFFN(fraction=-0.1), "must be in \\[0, 1\\)"),
    (PruneLayers(count=2), "Cannot remove 2 of 2 layers"),
])
def test_out_of_range_amounts(tokenizer, config, match):
    model, _ = tiny_model("llama", tokenizer)
    with pytest.raises(ConfigError, match=match):
        compress_(model, config)


def test_unknown_config_type_lists_the_techniques(tokenizer):
    model, _ = tiny_model("gpt2", tokenizer)
    with pytest.raises(ConfigError, match="PruneFFN"):
        compress_(model, object())


def test_unsupported_family_is_a_clear_error(tokenizer):
    from transformers import BloomConfig, BloomForCausalLM

    bloom = BloomForCausalLM(BloomConfig(vocab_size=len(tokenizer), hidden_size=32, n_layer=1, n_head=2))
    with pytest.raises(ConfigError, match="cannot find the layers of a 'bloom' model"):
        compress_(bloom, PruneFFN(0.25))


@pytest.mark.parametrize("arch_name", ["llama", "qwen2", "qwen3"])
def test_head_pruning_removes_whole_kv_groups_and_reloads(tokenizer, tmp_path, arch_name):
    from genfast.compress.prune import PruneHeads

    model, _ = tiny_model(arch_name, tokenizer)  # 4 query heads, 2 key/value heads, head_dim 16
    handle = from_model(model, tokenizer)
    compress_(handle, PruneHeads(fraction=0.5))
    attn = handle.model.model.layers[0].self_attn
    assert (handle.config.num_attention_heads, handle.config.num_key_value_heads) == (2, 1)
    assert attn.q_proj.out_features == 32 and attn.k_proj.out_features == 16 and attn.o_proj.in_features == 32
    ids = torch.randint(1, 400, (1, 8))
    ref = handle.model.generate(ids, max_new_tokens=6, min_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(generate(TorchRuntime(handle.model), ids, 6), ref[:, 8:])
    handle.model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    torch.testing.assert_close(load(str(tmp_path)).model(ids).logits, handle.model(ids).logits)


def test_pruning_every_head_is_refused(tokenizer):
    from genfast.compress.prune import PruneHeads

    model, _ = tiny_model("llama", tokenizer)
    with pytest.raises(ConfigError, match="remove all 2 key/value groups"):
        compress_(model, PruneHeads(fraction=0.9))


def test_a_head_fraction_that_removes_no_group_is_refused_not_recorded(tokenizer):
    from genfast.compress.prune import PruneHeads

    model, _ = tiny_model("llama", tokenizer)  # 2 key/value groups: 0.25 of them rounds to none
    with pytest.raises(ConfigError, match="removes none.*smallest step is 0.5"):
        compress_(model, PruneHeads(fraction=0.25))
    assert recipe_of(model) == [] and model.config.num_key_value_heads == 2


def test_head_pruning_refuses_families_whose_head_width_transformers_derives(tokenizer):
    from genfast.compress.prune import PruneHeads

    model, _ = tiny_model("gpt2", tokenizer)
    with pytest.raises(ConfigError, match="does not cover gpt2 models: transformers derives their head width"):
        compress_(model, PruneHeads(fraction=0.5))
