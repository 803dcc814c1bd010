"""The sampling peer: d1's generate() (dllm-reasoning/d1, eval/generate.py) as a PyTorch user runs it on CPU,
on a gift/LLaDA model folder, for eval-speed.sh. Written from d1's algorithm, not copied: every step runs
the whole batch through the model, softmax over the vocabulary, argmax, the block's confidences, topk per
row. The model is LLaDA's architecture (RMSNorm, rotate-half RoPE, grouped-query bidirectional attention
via scaled_dot_product_attention, SwiGLU, untied head), weights read from model.safetensors.
--cache prefix|dual and --threshold P add Fast-dLLM's switches as its llada/generate.py runs them
(generate_with_prefix_cache, generate_with_dual_cache, parallel decoding; NVlabs/Fast-dLLM, written from its
algorithm): a block's first step runs the whole sequence and keeps every layer's keys and values, its later steps
run x[:, block_start:] (prefix) or the block alone (dual) against them, their own keys and values written over
the cache's rows at their positions (Fast-dLLM's replace_position); a threshold commits the most confident
prediction and every other at or above it, and a block runs until it holds no mask.

Usage: d1_generate_torch.py MODEL_DIR --prompt-len 48 --batch 8 --gen 128 --block 32 --steps 64
       [--bf16] [--compile] [--threads N] [--rounds R] [--cache none|prefix|dual] [--threshold P]
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

    def forward(self, ids, cache=None, start=0, fill=False):
        """Logits of ids at positions start..start+L; `cache` (per layer [k, v] of every position, after RoPE):
        filled from this forward (`fill`) or read, these rows' keys and values written over it at their positions."""
        B, L = ids.shape
        p, hd = "model.transformer.", self.hd
        cos, sin = self.cos[start:start + L], self.sin[start:start + L]

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
            q, k = rope(q), rope(k)
            if fill:
                cache.append([k.clone(), v.clone()])
            elif cache is not None:
                cache[i][0][:, :, start:start + L], cache[i][1][:, :, start:start + L] = k, v
                k, v = cache[i]
            if self.KV != self.H:
                k, v = k.repeat_interleave(self.H // self.KV, 1), v.repeat_interleave(self.H // self.KV, 1)
            a = F.scaled_dot_product_attention(q, k, v)
            x = x + F.linear(a.transpose(1, 2).reshape(B, L, -1), self.w[b + "attn_out.weight"])
            y = self.rms(x, b + "ff_norm.weight")
            x = x + F.linear(F.silu(F.linear(y, self.w[b + "ff_proj.weight"])) * F.linear(y, self.w[b + "up_proj.weight"]),
                             self.w[b + "ff_out.weight"])
        return F.linear(self.rms(x, p + "ln_f.weight"), self.w[p + "ff_out.weight"])


def commit(x, logits, mask_index, counts, threshold):
    """d1's (and Fast-dLLM's get_transfer_index) choice: x0 = argmax, confidence its softmax probability, the
    `counts[j]` most confident masked candidates of row j committed, or with a threshold the most confident and
    every other at or above it. x, logits, mask_index: the rows' window (the same columns)."""
    x0 = logits.argmax(-1)
    p = F.softmax(logits.float(), dim=-1)
    x0_p = torch.gather(p, -1, x0.unsqueeze(-1)).squeeze(-1)
    conf = torch.where(mask_index, x0_p, torch.tensor(-float("inf")))
    for j in range(conf.shape[0]):
        k = int(mask_index[j].sum()) if threshold is not None else int(counts[j])
        if k > 0:
            v, sel = torch.topk(conf[j], k=k)
            if threshold is not None:
                sel = sel[(v >= threshold) | (torch.arange(k) == 0)]
            x[j, sel] = x0[j, sel]


@torch.no_grad()
def generate(model, prompt, steps, gen_length, block_length, mask_id, cache="none", threshold=None):
    x = torch.full((prompt.shape[0], prompt.shape[1] + gen_length), mask_id, dtype=torch.long)
    x[:, : prompt.shape[1]] = prompt
    num_blocks = gen_length // block_length
    spb = max(1, steps // num_blocks)
    for nb in range(num_blocks):
        end = prompt.shape[1] + (nb + 1) * block_length
        start = end - block_length
        n = (x[:, start: end] == mask_id).sum(1, keepdim=True)
        counts = (n // spb).expand(-1, spb).clone()
        counts[torch.arange(spb)[None, :] < (n % spb)] += 1
        kv = [] if cache != "none" else None
        i = 0
        while (i < spb) if threshold is None else (bool((x[:, start:end] == mask_id).any()) and i < block_length):
            if kv is None or i == 0:   # the whole sequence (and the cache's fill)
                mask_index = x == mask_id
                mask_index[:, end:] = False
                commit(x, model(x, cache=kv, fill=kv is not None), mask_index, counts[:, min(i, spb - 1)], threshold)
            else:                      # the window against the cache
                hi = x.shape[1] if cache == "prefix" else end
                w = x[:, start:hi]
                mask_index = w == mask_id
                mask_index[:, block_length:] = False
                commit(w, model(w, cache=kv, start=start), mask_index, counts[:, min(i, spb - 1)], threshold)  # w: a view of x
            i += 1
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
    ap.add_argument("--cache", choices=["none", "prefix", "dual"], default="none", help="Fast-dLLM's KV cache")
    ap.add_argument("--threshold", type=float, default=None, help="Fast-dLLM's parallel decoding")
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
            generate(fwd, prompt, a.steps, a.gen, a.block, cfg["mask_token_id"], a.cache, a.threshold)
        best = min(best, time.time() - t)
    extra = ("" if a.cache == "none" else f" {a.cache} cache") + ("" if a.threshold is None else f" threshold {a.threshold}")
    print(json.dumps({"system": "torch" + (" compile" if a.compile else " eager") + (" bf16" if a.bf16 else " fp32") + extra,
                      "seconds": round(best, 3), "generated_tokens_per_s": round(a.batch * a.gen / best, 2),
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
