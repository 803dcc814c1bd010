"""The Dream reference model of the tests: a Dream folder written by gift read by transformers' Qwen2
(Dream-v0 is Qwen2 blocks with a bidirectional mask and right-shifted logits; see dllm's
dllm/pipelines/dream/models/modeling_dream.py), in float64.

Shared by DreamTests (logits, PEFT) and DreamSamplerTests (the sampler port in dream_generate.py).
"""
import json

import torch
from safetensors.torch import load_file
from transformers import Qwen2Config, Qwen2Model
from transformers.models.qwen2 import modeling_qwen2 as mq


def qwen2_config(cfg):
    """transformers' Qwen2Config of a Dream config.json (eager attention, untied head)."""
    assert cfg["model_type"] == "Dream", cfg["model_type"]
    return Qwen2Config(vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"], intermediate_size=cfg["intermediate_size"],
                       num_hidden_layers=cfg["num_hidden_layers"], num_attention_heads=cfg["num_attention_heads"],
                       num_key_value_heads=cfg["num_key_value_heads"], rope_theta=cfg["rope_theta"],
                       rms_norm_eps=cfg["rms_norm_eps"], max_position_embeddings=cfg["max_position_embeddings"],
                       tie_word_embeddings=False, attn_implementation="eager")


def use_float64_eager_attention():
    """transformers' eager attention takes the softmax in float32 whatever the dtype: the same in float64."""
    def eager64(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        k = mq.repeat_kv(key, module.num_key_value_groups)
        v = mq.repeat_kv(value, module.num_key_value_groups)
        w = torch.matmul(query, k.transpose(2, 3)) * scaling
        if attention_mask is not None:
            w = w + attention_mask
        w = torch.softmax(w, dim=-1)
        return torch.matmul(w, v).transpose(1, 2).contiguous(), w
    mq.eager_attention_forward = eager64


class DreamReference:
    """Qwen2Model + lm_head of a gift Dream folder (one model.safetensors), float64, bidirectional."""

    def __init__(self, folder):
        torch.set_num_threads(1)   # tiny matrices: threads only wait on each other (40x slower on a busy machine)
        cfg = json.load(open(folder + "/config.json"))
        use_float64_eager_attention()
        sd = load_file(folder + "/model.safetensors")
        self.config = cfg
        self.model = Qwen2Model(qwen2_config(cfg)).double().eval()
        body = {k[len("model."):]: v.double() for k, v in sd.items() if k.startswith("model.")}
        self.model.load_state_dict(body, strict=True)
        self.head = sd["lm_head.weight"].double()
        assert set(sd) == set(["lm_head.weight"] + ["model." + k for k in body]), "only model.* and lm_head"

    def raw_logits(self, ids, attention_mask=None, position_ids=None):
        """Unshifted logits [B, L, V] (row i is the model's output at i). `attention_mask`: None (nothing
        masked) or a boolean [B, 1, L, L] (True: may attend), as Dream's _sample builds it."""
        B, L = ids.shape
        bias = torch.zeros(B, 1, L, L, dtype=torch.float64)
        if attention_mask is not None:
            # finite, as transformers' own masks: a padding row that may attend nothing stays finite
            bias = bias.masked_fill(~attention_mask, torch.finfo(torch.float64).min)
        with torch.no_grad():
            h = self.model(input_ids=ids, attention_mask={"full_attention": bias}, position_ids=position_ids).last_hidden_state
            return h @ self.head.T

    def logits(self, ids, attention_mask=None, position_ids=None):
        """Dream's shifted logits: row i predicts token i (cat([logits[:, :1], logits[:, :-1]]))."""
        raw = self.raw_logits(ids, attention_mask, position_ids)
        return torch.cat([raw[:, :1], raw[:, :-1]], dim=1)
