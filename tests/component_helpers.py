"""Tiny stand-ins for the real component files, in the real key layouts (import as `from component_helpers import ...`).

  tiny_spiece()                     a sentencepiece model trained on a few sentences (T5's ids: pad 0, </s> 1, unk 2)
  tiny_umt5(seed)                   a transformers UMT5EncoderModel (2 blocks, width 32) with random weights
  save_comfy_umt5(model, path, spiece, fp8=False)
                                    ComfyUI's single-file layout (umt5_xxl_fp16 / _fp8_e4m3fn_scaled): transformers
                                    names without the tied `encoder.embed_tokens`, `spiece_model` uint8; fp8: block
                                    Linear weights float8_e4m3fn + float32 scalar `scale_weight`, `scaled_fp8` marker
  save_wan_umt5(model, path)        Wan's own names (models_t5_umt5-xxl-enc-bf16.pth, as safetensors)
  tiny_wan_vae(seed)                a diffusers AutoencoderKLWan (base width 8, 16 latent channels), random weights
  save_original_vae(vae, path)      Wan's original VAE layout (wan_2.1_vae.safetensors), written with its own table
                                    of the original module tree (not camgrid's mapping)
The original VAE names are checked against ComfyUI's own WanVAE in tests/host/test_component_layouts.py.
"""
import io

import torch
from safetensors.torch import save_file

SENTENCES = ["a red fox runs in the snow", "a blue box and a green sphere", "the camera orbits a dancer",
             "a city street at night with lights", "two people walk in a park", "a cat sits on a red chair"]


def tiny_spiece(vocab_size=60) -> bytes:
    import sentencepiece as spm
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(SENTENCES * 20), model_writer=model, vocab_size=vocab_size,
                                   pad_id=0, eos_id=1, unk_id=2, bos_id=-1, model_type="unigram",
                                   minloglevel=2, hard_vocab_limit=False)
    return model.getvalue()


def tiny_umt5(seed=0, vocab=64, d_model=32, layers=2, heads=4, d_kv=8, d_ff=48):
    from transformers import UMT5Config, UMT5EncoderModel
    torch.manual_seed(seed)
    config = UMT5Config(vocab_size=vocab, d_model=d_model, d_kv=d_kv, d_ff=d_ff, num_layers=layers, num_heads=heads,
                        feed_forward_proj="gated-gelu", relative_attention_num_buckets=32, tie_word_embeddings=False)
    model = UMT5EncoderModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if "layer_norm" not in name else 0.1) + ("layer_norm" in name))
    return model


def _linear(name):
    return any(name.endswith(f"{m}.weight") for m in ("SelfAttention.q", "SelfAttention.k", "SelfAttention.v",
                                                       "SelfAttention.o", "wi_0", "wi_1", "wo"))


def save_comfy_umt5(model, path, spiece: bytes, fp8=False, dtype=torch.float16):
    sd = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items() if k != "encoder.embed_tokens.weight"}
    if fp8:
        for key in [k for k in sd if _linear(k)]:
            w = sd[key].float()
            scale = w.abs().max() / 448.0
            sd[key] = (w / scale).to(torch.float8_e4m3fn)
            sd[key[: -len("weight")] + "scale_weight"] = scale.reshape(())
            sd[key[: -len("weight")] + "scale_input"] = torch.ones(())
        sd["scaled_fp8"] = torch.zeros(0, dtype=torch.float8_e4m3fn)
    sd["spiece_model"] = torch.frombuffer(bytearray(spiece), dtype=torch.uint8)
    save_file(sd, str(path))
    return path


def dequantized_comfy_state(path):
    """What the fp8 file means: weight * scale_weight, for loading the reference model directly."""
    from safetensors.torch import load_file
    sd = load_file(str(path))
    out = {}
    for key, value in sd.items():
        if key in ("scaled_fp8", "spiece_model") or key.endswith((".scale_weight", ".scale_input")):
            continue
        scale = sd.get(key[: -len("weight")] + "scale_weight")
        out[key] = value.float() * scale if scale is not None else value.float()
    out["encoder.embed_tokens.weight"] = out["shared.weight"]
    return out


WAN_T5_NAMES = [("shared.", "token_embedding."), ("encoder.final_layer_norm.", "norm."),
                (".layer.0.layer_norm.", ".norm1."), (".layer.0.SelfAttention.relative_attention_bias.", ".pos_embedding.embedding."),
                (".layer.0.SelfAttention.", ".attn."), (".layer.1.layer_norm.", ".norm2."),
                (".layer.1.DenseReluDense.wi_0.", ".ffn.gate.0."), (".layer.1.DenseReluDense.wi_1.", ".ffn.fc1."),
                (".layer.1.DenseReluDense.wo.", ".ffn.fc2."), ("encoder.block.", "blocks.")]


def save_wan_umt5(model, path, dtype=torch.bfloat16):
    sd = {}
    for key, value in model.state_dict().items():
        if key == "encoder.embed_tokens.weight":
            continue
        for old, new in WAN_T5_NAMES:
            key = key.replace(old, new)
        sd[key] = value.detach().to(dtype).contiguous()
    save_file(sd, str(path))
    return path


def tiny_wan_vae(seed=0, base_dim=8):
    """16 latent channels, so the loader's Wan2.1 latent statistics (diffusers' defaults) apply."""
    from diffusers import AutoencoderKLWan
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(base_dim=base_dim).eval()
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.endswith("gamma"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    return vae


def original_vae_names(num_res_blocks=2, stages=4):
    """{diffusers key prefix: original Wan prefix}, from the original module tree (Wan's vae.py)."""
    table = {"encoder.conv_in.": "encoder.conv1.", "decoder.conv_in.": "decoder.conv1.", "quant_conv.": "conv1.",
             "post_quant_conv.": "conv2."}
    for side in ("encoder", "decoder"):
        table.update({f"{side}.mid_block.resnets.0.": f"{side}.middle.0.", f"{side}.mid_block.attentions.0.": f"{side}.middle.1.",
                      f"{side}.mid_block.resnets.1.": f"{side}.middle.2.", f"{side}.norm_out.": f"{side}.head.0.",
                      f"{side}.conv_out.": f"{side}.head.2."})
    flat = 0
    for stage in range(stages):
        for _ in range(num_res_blocks):
            table[f"encoder.down_blocks.{flat}."] = f"encoder.downsamples.{flat}."
            flat += 1
        if stage < stages - 1:
            table[f"encoder.down_blocks.{flat}."] = f"encoder.downsamples.{flat}."
            flat += 1
    flat = 0
    for stage in range(stages):
        for j in range(num_res_blocks + 1):
            table[f"decoder.up_blocks.{stage}.resnets.{j}."] = f"decoder.upsamples.{flat}."
            flat += 1
        if stage < stages - 1:
            table[f"decoder.up_blocks.{stage}.upsamplers.0."] = f"decoder.upsamples.{flat}."
            flat += 1
    return table


RESNET_PARTS = {"norm1.": "residual.0.", "conv1.": "residual.2.", "norm2.": "residual.3.", "conv2.": "residual.6.",
                "conv_shortcut.": "shortcut."}


def save_original_vae(vae, path, dtype=torch.bfloat16):
    table = original_vae_names(vae.config.num_res_blocks, len(vae.config.dim_mult))
    sd = {}
    for key, value in vae.state_dict().items():
        prefix = max((p for p in table if key.startswith(p)), key=len)
        rest = key[len(prefix):]
        if "resnets" in prefix or "down_blocks" in prefix:
            part = next((p for p in RESNET_PARTS if rest.startswith(p)), None)
            rest = RESNET_PARTS[part] + rest[len(part):] if part else rest
        sd[table[prefix] + rest] = value.detach().to(dtype).contiguous()
    save_file(sd, str(path))
    return path
