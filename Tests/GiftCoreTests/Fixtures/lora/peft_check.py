"""PEFT itself on gift's output: a small LLaDA-shaped PyTorch model with LLaDA's Hugging Face module names
(model.transformer.wte / blocks.N.{attn_norm,q_proj,k_proj,v_proj,attn_out,ff_norm,ff_proj,up_proj,ff_out} /
ln_f / ff_out), written from LLaDA's architecture (RMSNorm, rotate-half RoPE, bidirectional attention,
SwiGLU), loads gift's model folder, is wrapped by PeftModel.from_pretrained with gift's adapter folder, and
runs in float64. Prints one JSON line: the largest |logit difference| against gift's logits, the logits'
scale, and the largest relative difference between PEFT's merge_and_unload() state and gift's merged export.
Usage: peft_check.py MODEL_DIR ADAPTER_DIR TOKENS.json GIFT_LOGITS.f32 MERGED_DIR
"""
import json
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from peft import PeftModel
from safetensors.torch import load_file

model_dir, adapter_dir, tokens_path, logits_path, merged_dir = sys.argv[1:6]
cfg = json.load(open(model_dir + "/config.json"))
d, H, L_, ff, V = cfg["d_model"], cfg["n_heads"], cfg["n_layers"], cfg["mlp_hidden_size"], cfg["vocab_size"]
KV = cfg.get("n_kv_heads") or H
hd = d // H
eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]


class RMS(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * self.weight


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn_norm, self.ff_norm = RMS(), RMS()
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, KV * hd, bias=False)
        self.v_proj = nn.Linear(d, KV * hd, bias=False)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.ff_proj = nn.Linear(d, ff, bias=False)
        self.up_proj = nn.Linear(d, ff, bias=False)
        self.ff_out = nn.Linear(ff, d, bias=False)

    def forward(self, x, cos, sin):
        B, L, _ = x.shape
        y = self.attn_norm(x)
        q = self.q_proj(y).view(B, L, H, hd).transpose(1, 2)
        k = self.k_proj(y).view(B, L, KV, hd).transpose(1, 2)
        v = self.v_proj(y).view(B, L, KV, hd).transpose(1, 2)

        def rope(t):
            t1, t2 = t[..., : hd // 2], t[..., hd // 2:]
            return t * cos + torch.cat([-t2, t1], -1) * sin

        q, k = rope(q), rope(k)
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        att = torch.softmax(q @ k.transpose(-1, -2) / hd ** 0.5, dim=-1)   # bidirectional
        x = x + self.attn_out((att @ v).transpose(1, 2).reshape(B, L, d))
        y = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(y)) * self.up_proj(y))


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(V, d), blocks=nn.ModuleList(Block() for _ in range(L_)), ln_f=RMS(),
            ff_out=nn.Linear(d, V, bias=False)))


class LLaDALike(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = Inner()

    def forward(self, ids):
        t = self.model.transformer
        L = ids.shape[1]
        inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        fr = torch.outer(torch.arange(L, dtype=torch.float64), inv)
        emb = torch.cat([fr, fr], -1)
        x = t.wte(ids)
        for b in t.blocks:
            x = b(x, emb.cos(), emb.sin())
        return t.ff_out(t.ln_f(x))


base = LLaDALike()
base.load_state_dict(load_file(model_dir + "/model.safetensors"), strict=True)
base = base.double().eval()
peft_model = PeftModel.from_pretrained(base, adapter_dir).double().eval()
ids = torch.tensor(json.load(open(tokens_path)), dtype=torch.long)
with torch.no_grad():
    logits = peft_model(ids).numpy()
gift = np.fromfile(logits_path, dtype=np.float32).reshape(logits.shape).astype(np.float64)
lora_modules = sum(1 for n, _ in peft_model.named_modules() if n.endswith(".lora_A"))
merged = peft_model.merge_and_unload().state_dict()
gm = load_file(merged_dir + "/model.safetensors")
worst = 0.0
for name, w in merged.items():
    g = gm[name].double()
    worst = max(worst, float(((w - g).abs() / (w.abs() + 1e-6)).max()))
if set(merged) != set(gm):
    worst = float("inf")
print(json.dumps({"logit_max_diff": float(np.abs(logits - gift).max()), "logit_scale": float(np.abs(logits).max()),
                  "merged_max_rel_diff": worst, "lora_modules": lora_modules}))
