"""The sampling peer: d1's generate() (dllm-reasoning/d1, eval/generate.py) as a PyTorch user runs it on CPU,
on a gift/LLaDA model folder, for eval-speed.sh. Written from d1's algorithm, not copied: every step runs
the whole batch through the model, softmax over the vocabulary, argmax, the block's confidences, topk per
row. The model is LLaDA's architecture (RMSNorm, rotate-half RoPE, grouped-query bidirectional attention
via scaled_dot_product_attention, SwiGLU, untied head), weights read from model.safetensors.

Usage: d1_generate_torch.py MODEL_DIR --prompt-len 48 --batch 8 --gen 128 --block 32 --steps 64
       [--bf16] [--compile] [--threads N] [--rounds R]
Prints one JSON line: seconds (best round), generated tokens/s.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file


class LLaDA(torch.nn.Module):
    def __init__(self, cfg, w):
        super().__init__()
        self.cfg, self.w = cfg, w
        d, H = cfg["d_model"], cfg["n_heads"]
        self.H, self.KV, self.hd = H, cfg.get("n_kv_heads") or H, d // H
        inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, self.hd, 2).float() / self.hd))
        fr = torch.outer(torch.arange(cfg["max_sequence_length"]).float(), inv)
        emb = torch.cat([fr, fr], -1)
        self.cos, self.sin = emb.cos(), emb.sin()

    def rms(self, x, name):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.cfg["rms_norm_eps"]) * self.w[name]

    def forward(self, ids):
        B, L = ids.shape
        p, hd = "model.transformer.", self.hd
        cos, sin = self.cos[:L], self.sin[:L]

        def rope(t):
            t1, t2 = t[..., : hd // 2], t[..., hd // 2:]
            return t * cos + torch.cat([-t2, t1], -1) * sin

        x = F.embedding(ids, self.w[p + "wte.weight"])
        for i in range(self.cfg["n_layers"]):
            b = f"{p}blocks.{i}."
            y = self.rms(x, b + "attn_norm.weight")
            q = F.linear(y, self.w[b + "q_proj.weight"]).view(B, L, self.H, hd).transpose(1, 2)
            k = F.linear(y, self.w[b + "k_proj.weight"]).view(B, L, self.KV, hd).transpose(1, 2)
            v = F.linear(y, self.w[b + "v_proj.weight"]).view(B, L, self.KV, hd).transpose(1, 2)
            if self.KV != self.H:
                k, v = k.repeat_interleave(self.H // self.KV, 1), v.repeat_interleave(self.H // self.KV, 1)
            a = F.scaled_dot_product_attention(rope(q), rope(k), v)
            x = x + F.linear(a.transpose(1, 2).reshape(B, L, -1), self.w[b + "attn_out.weight"])
            y = self.rms(x, b + "ff_norm.weight")
            x = x + F.linear(F.silu(F.linear(y, self.w[b + "ff_proj.weight"])) * F.linear(y, self.w[b + "up_proj.weight"]),
                             self.w[b + "ff_out.weight"])
        return F.linear(self.rms(x, p + "ln_f.weight"), self.w[p + "ff_out.weight"])


@torch.no_grad()
def generate(model, prompt, steps, gen_length, block_length, mask_id):
    x = torch.full((prompt.shape[0], prompt.shape[1] + gen_length), mask_id, dtype=torch.long)
    x[:, : prompt.shape[1]] = prompt
    num_blocks = gen_length // block_length
    spb = max(1, steps // num_blocks)
    for nb in range(num_blocks):
        end = prompt.shape[1] + (nb + 1) * block_length
        n = (x[:, end - block_length: end] == mask_id).sum(1, keepdim=True)
        counts = (n // spb).expand(-1, spb).clone()
        counts[torch.arange(spb)[None, :] < (n % spb)] += 1
        for i in range(spb):
            mask_index = x == mask_id
            logits = model(x)
            x0 = logits.argmax(-1)
            p = F.softmax(logits.float(), dim=-1)
            x0_p = torch.gather(p, -1, x0.unsqueeze(-1)).squeeze(-1)
            x0_p[:, end:] = -float("inf")
            x0 = torch.where(mask_index, x0, x)
            conf = torch.where(mask_index, x0_p, torch.tensor(-float("inf")))
            for j in range(conf.shape[0]):
                k = int(counts[j, i])
                if k > 0:
                    _, sel = torch.topk(conf[j], k=k)
                    x[j, sel] = x0[j, sel]
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--prompt-len", type=int, default=48)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--bf16", action="store_true", help="torch.autocast(cpu, bfloat16)")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = json.load(open(f"{a.model}/config.json"))
    model = LLaDA(cfg, load_file(f"{a.model}/model.safetensors"))
    fwd = torch.compile(model) if a.compile else model
    g = torch.Generator().manual_seed(0)
    vocab = cfg.get("embedding_size") or cfg["vocab_size"]
    prompt = torch.randint(0, min(vocab, cfg["mask_token_id"]), (a.batch, a.prompt_len), generator=g)
    best = float("inf")
    for _ in range(a.rounds):
        t = time.time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            generate(fwd, prompt, a.steps, a.gen, a.block, cfg["mask_token_id"])
        best = min(best, time.time() - t)
    print(json.dumps({"system": "torch" + (" compile" if a.compile else " eager") + (" bf16" if a.bf16 else " fp32"),
                      "seconds": round(best, 3), "generated_tokens_per_s": round(a.batch * a.gen / best, 2),
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
