"""The condition transformer: exact parity with diffusers' base model at init, the branch's effect, the
stream-replacement flag, save/load, and the rotary helper against the pipeline's own."""
import types

import pytest
import torch
from diffusers import CogVideoXTransformer3DModel

from motion_gen.components import tiny_base_transformer
from motion_gen.config import TinyModelConfig
from motion_gen.model import CogVideoXConditionTransformer, rotary_embeddings

NAMES = ["hand_keypoints", "depth", "seg_mask"]


def _base(learned=False):
    return tiny_base_transformer(TinyModelConfig(learned_positional_embeddings=learned), 9, 32, 48).eval()


def _inputs(model, names=NAMES, batch=2):
    g = torch.Generator().manual_seed(1)
    cfg = model.config
    latent = torch.randn(batch, 3, cfg.in_channels, 4, 6, generator=g)
    text = torch.randn(batch, cfg.max_text_seq_length, cfg.text_embed_dim, generator=g)
    conds = {n: torch.randn(batch, 3, cfg.in_channels, 4, 6, generator=g) for n in names}
    rotary = rotary_embeddings(cfg, 3, 4, 6)
    return dict(hidden_states=latent, encoder_hidden_states=text, timestep=torch.tensor([10, 700]),
                image_rotary_emb=rotary), conds


@pytest.mark.parametrize("learned", [False, True])
def test_exact_parity_with_base_at_init(learned):
    torch.manual_seed(0)
    base = _base(learned)
    model = CogVideoXConditionTransformer.from_base(base, NAMES, num_condition_blocks=2).eval()
    kwargs, conds = _inputs(model)
    with torch.no_grad():
        ref = base(**kwargs).sample
        out = model(conditions=conds, **kwargs).sample
    assert out.shape == (2, 3, 4, 4, 6)
    assert torch.equal(out, ref)  # exact, fp32
    # the copied blocks hold the base blocks' weights, and the new linears are zero
    for i in range(2):
        for (k, a), b in zip(model.condition_blocks[i].state_dict().items(), base.transformer_blocks[i].state_dict().values()):
            assert torch.equal(a, b), k
    assert all(float(p.detach().abs().sum()) == 0 for n, p in model.named_parameters()
               if n.startswith(("condition_embed", "condition_projections")))


def test_nonzero_linear_changes_output_and_conditions_matter():
    torch.manual_seed(0)
    base = _base()
    model = CogVideoXConditionTransformer.from_base(base, NAMES, num_condition_blocks=2).eval()
    kwargs, conds = _inputs(model)
    with torch.no_grad():
        ref = base(**kwargs).sample
        torch.nn.init.normal_(model.condition_projections[0].weight, std=0.1)
        torch.nn.init.normal_(model.condition_embed.weight, std=0.1)
        out = model(conditions=conds, **kwargs).sample
        other = model(conditions={n: c + 1 for n, c in conds.items()}, **kwargs).sample
    assert (out - ref).abs().max() > 1e-3
    assert (other - out).abs().max() > 1e-3  # the condition latents now drive the output
    with pytest.raises(ValueError, match="missing condition latents"):
        model(conditions={"depth": conds["depth"]}, **kwargs)
    with pytest.raises(ValueError, match="needs condition latents"):
        model(**kwargs)


def test_stream_replacement_flag():
    """Projection 0 zero, projection 1 non-zero: with replacement copy block 1 receives projection 0's output
    (all zeros), so the output cannot depend on the conditions; without it block 0's output carries them."""
    torch.manual_seed(0)
    base = _base()
    outs = {}
    for replace in (True, False):
        model = CogVideoXConditionTransformer.from_base(base, NAMES, num_condition_blocks=2,
                                                        replace_condition_stream=replace).eval()
        with torch.no_grad():
            torch.nn.init.normal_(model.condition_embed.weight, std=0.1)
            torch.nn.init.normal_(model.condition_projections[1].weight, std=0.1)
            kwargs, conds = _inputs(model)
            a = model(conditions=conds, **kwargs).sample
            b = model(conditions={n: 2 * c for n, c in conds.items()}, **kwargs).sample
        outs[replace] = (a - b).abs().max().item()
    assert outs[True] == 0.0
    assert outs[False] > 1e-4


def test_only_configured_conditions_and_no_branch():
    torch.manual_seed(0)
    base = _base()
    one = CogVideoXConditionTransformer.from_base(base, ["depth"], num_condition_blocks=1)
    assert one.condition_embed.in_features == base.config.num_attention_heads * base.config.attention_head_dim
    none = CogVideoXConditionTransformer.from_base(base, [], num_condition_blocks=1).eval()
    assert none.condition_embed is None and len(none.condition_blocks) == 0
    kwargs, _ = _inputs(none, names=[])
    with torch.no_grad():
        assert torch.equal(none(**kwargs).sample, base(**kwargs).sample)
    trainable = {n for n, p in one.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("condition_embed", "condition_blocks", "condition_projections"))
                             for n in trainable)
    one.set_trainable(train_base=True)
    assert all(p.requires_grad for p in one.parameters())
    with pytest.raises(ValueError):
        CogVideoXConditionTransformer.from_base(base, ["depth"], num_condition_blocks=5)
    with pytest.raises(Exception, match="unknown"):
        CogVideoXConditionTransformer.from_base(base, ["colour"], num_condition_blocks=1)


def test_save_load_round_trip_and_base_folder(tmp_path):
    torch.manual_seed(0)
    base = _base()
    base.save_pretrained(tmp_path / "base" / "transformer")
    model = CogVideoXConditionTransformer.from_base(tmp_path / "base", ["depth", "hand_keypoints"],
                                                    num_condition_blocks=2, replace_condition_stream=False)
    with torch.no_grad():
        for p in model.branch_parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(tmp_path / "m", safe_serialization=True)
    assert (tmp_path / "m" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = CogVideoXConditionTransformer.from_pretrained(tmp_path / "m").eval()
    assert loaded.config.condition_names == ["depth", "hand_keypoints"]
    assert loaded.config.num_condition_blocks == 2 and loaded.config.replace_condition_stream is False
    model.eval()
    kwargs, conds = _inputs(model, names=["depth", "hand_keypoints"])
    with torch.no_grad():
        assert torch.equal(model(conditions=conds, **kwargs).sample, loaded(conditions=conds, **kwargs).sample)


def test_to_base_exports_trained_base_weights(tmp_path):
    """A model trained without conditions is exported as a plain diffusers transformer: same config (branch keys
    dropped), same weights, same output; a branch built on the export starts from those weights."""
    torch.manual_seed(0)
    model = CogVideoXConditionTransformer.from_base(_base(), [], num_condition_blocks=2).eval()
    with torch.no_grad():  # stands in for training: every base weight moves
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    base = model.to_base().eval()
    assert type(base) is CogVideoXTransformer3DModel and "condition_names" not in base.config
    kwargs, _ = _inputs(model, names=[])
    with torch.no_grad():
        assert torch.equal(base(**kwargs).sample, model(conditions={}, **kwargs).sample)
    # a model with a branch exports its base part alone, in its dtype
    branched = CogVideoXConditionTransformer.from_base(base, ["depth"], num_condition_blocks=2).to(torch.float16)
    exported = branched.to_base()
    assert exported.dtype == torch.float16 and not any(k.startswith("condition") for k in exported.state_dict())
    assert torch.equal(exported.transformer_blocks[0].attn1.to_q.weight, branched.transformer_blocks[0].attn1.to_q.weight)
    base.save_pretrained(tmp_path / "transformer")
    again = CogVideoXConditionTransformer.from_base(tmp_path, ["depth"], num_condition_blocks=2).eval()
    with torch.no_grad():
        assert torch.equal(again.transformer_blocks[1].ff.net[0].proj.weight, model.transformer_blocks[1].ff.net[0].proj.weight)
        assert torch.equal(again.condition_blocks[0].attn1.to_q.weight, model.transformer_blocks[0].attn1.to_q.weight)
    with torch.no_grad():  # the export is a copy: changing it leaves the trained model alone
        next(base.parameters()).add_(1.0)
    assert not torch.equal(next(base.parameters()), next(model.parameters()))


def test_rotary_helper_matches_pipeline():
    from diffusers import CogVideoXImageToVideoPipeline

    base = _base()
    pipe = types.SimpleNamespace(vae_scale_factor_spatial=8, transformer=base)
    cos, sin = CogVideoXImageToVideoPipeline._prepare_rotary_positional_embeddings(pipe, 32, 48, 3, "cpu")
    mine = rotary_embeddings(base.config, 3, 4, 6)
    assert torch.equal(cos, mine[0]) and torch.equal(sin, mine[1])
    assert isinstance(base, CogVideoXTransformer3DModel)


def test_gradient_checkpointing_same_gradients():
    torch.manual_seed(0)
    model = CogVideoXConditionTransformer.from_base(_base(), NAMES, num_condition_blocks=2)
    with torch.no_grad():
        for p in model.branch_parameters():
            p.add_(torch.randn_like(p) * 0.05)
    kwargs, conds = _inputs(model)
    grads = []
    for ckpt in (False, True):
        model.zero_grad()
        if ckpt:
            model.enable_gradient_checkpointing()
        model(conditions=conds, **kwargs).sample.square().mean().backward()
        grads.append(model.condition_embed.weight.grad.clone())
    assert model.gradient_checkpointing
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-7)


def test_convert_reference_layout(tmp_path):
    """A folder in the reference PAM layout (its key names, five streams, num_tracking_blocks) converts to this
    class with the same weights and the same outputs."""
    from motion_gen.convert_ckpt import REFERENCE_CONDITION_ORDER, convert_reference
    from release_fixtures import save_reference_motion_transformer

    torch.manual_seed(0)
    ours = save_reference_motion_transformer(_base(), tmp_path / "ref", num_blocks=2).eval()
    loaded = CogVideoXConditionTransformer.from_pretrained(convert_reference(str(tmp_path / "ref"), str(tmp_path / "out")))
    assert loaded.config.condition_names == list(REFERENCE_CONDITION_ORDER) and loaded.config.replace_condition_stream
    kwargs, conds = _inputs(ours, names=REFERENCE_CONDITION_ORDER)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(conditions=conds, **kwargs).sample, ours(conditions=conds, **kwargs).sample)
