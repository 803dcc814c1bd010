"""An independent reference of d1's generate() (dllm-reasoning/d1, eval/generate.py) on an LLaDA model folder,
in numpy float64, for gift's PaddedSampler test.

The model: LLaDA's architecture as the design notes' architecture.md states it (RMSNorm, rotate-half
RoPE, grouped-query bidirectional attention, SwiGLU, untied head), written here from that description.
The sampler: d1's algorithm: prompts left-padded with the pad id to the batch's longest; the response starts
as gen_length mask ids; blocks left to right, get_num_transfer_tokens of the block's masks over
steps // num_blocks steps; each step x0 = argmax of the logits over the whole vocabulary, confidence its
softmax probability, candidates every position before the block's end that still holds the mask id; the k
most confident are committed (ties: lower position, the rule gift documents). With --mask-padding the
padding is left out of attention (keys at pad positions get weight 0); without, every token attends to it
as in d1. With "threshold" (Fast-dLLM's parallel decoding, NVlabs/Fast-dLLM llada/generate.py): a step commits
the most confident candidate and every other at or above the threshold, and a block runs steps until it holds no
mask id (at most block_length steps). With "cache": "prefix" (Fast-dLLM's generate_with_prefix_cache): a block's
first step runs the whole sequence and keeps every layer's keys and values (after RoPE) of the positions before
the block; its later steps run only x[:, block_start:] (RoPE positions from block_start) against those cached keys
and values plus their own, and their candidates are the block's masked positions. With "cache": "dual" (a port of
Fast-dLLM's generate_with_dual_cache and its model's replace_position): a block's first step runs the whole
sequence and keeps every layer's keys (before RoPE, as Fast-dLLM keeps them) and values of every position; its
later steps run only x[:, block_start:block_end], replace the block's keys and values in that cache with theirs,
apply RoPE to the whole key sequence and to the queries at the block's positions, and attend to all of it.

Usage: generate_reference.py MODEL_DIR REQUEST.json  ->  prints a JSON list of the generated id lists.
REQUEST: {"prompts": [[ids]], "gen_length", "block_length", "steps", "pad_id", "mask_padding": bool, "threshold": null,
          "cache": "none" | "prefix" | "dual"}
Prints {"outputs": [[ids]], "forwards": N}.
"""
import json
import sys

import numpy as np
from safetensors.numpy import load_file


def load(model_dir):
    cfg = json.load(open(f"{model_dir}/config.json"))
    w = {k: v.astype(np.float64) for k, v in load_file(f"{model_dir}/model.safetensors").items()}
    return cfg, w


def rms(x, weight, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * weight


def rope(x, theta, offset=0):
    # x: [b, heads, L, hd]; positions offset..offset+L-1
    L, hd = x.shape[2], x.shape[3]
    inv = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = np.arange(offset, offset + L, dtype=np.float64)[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang), np.cos(ang)], -1)
    sin = np.concatenate([np.sin(ang), np.sin(ang)], -1)
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return x * cos + np.concatenate([-x2, x1], -1) * sin


def forward(cfg, w, tokens, key_start, past=None, keep=0, dual=None):
    """Logits of `tokens`; `past` (per layer (K, V) of the positions before these rows) is attended to first,
    the rows' RoPE positions continuing after it; with `keep`, also returns each layer's (K, V) of the first
    `keep` positions. `dual` (Fast-dLLM's dual cache): a dict {"past": per layer (K, V) of every position before
    RoPE, "start": these rows' first position}; with `past` None and `keep` = "dual", returns that cache."""
    b, L = tokens.shape
    offset = 0 if past is None else past[0][0].shape[2]
    if dual is not None:
        offset = dual["start"]
    d, H, KV = cfg["d_model"], cfg["n_heads"], cfg.get("n_kv_heads") or cfg["n_heads"]
    hd, eps, theta = d // H, cfg["rms_norm_eps"], cfg["rope_theta"]
    p = "model.transformer."
    x = w[p + "wte.weight"][tokens]
    keymask = np.zeros((b, 1, 1, offset + L if dual is None else dual["past"][0][0].shape[2]))
    for j, s in enumerate(key_start):
        keymask[j, :, :, :s] = -np.inf
    kept = []
    for i in range(cfg["n_layers"]):
        q = f"{p}blocks.{i}."
        h = rms(x, w[q + "attn_norm.weight"], eps)
        Q = (h @ w[q + "q_proj.weight"].T).reshape(b, L, H, hd).transpose(0, 2, 1, 3)
        K = (h @ w[q + "k_proj.weight"].T).reshape(b, L, KV, hd).transpose(0, 2, 1, 3)
        V = (h @ w[q + "v_proj.weight"].T).reshape(b, L, KV, hd).transpose(0, 2, 1, 3)
        if keep == "dual":
            kept.append((K.copy(), V.copy()))
        if dual is not None:
            pk, pv = dual["past"][i]
            pk[:, :, offset: offset + L], pv[:, :, offset: offset + L] = K, V
            Q, K, V = rope(Q, theta, offset), rope(pk, theta, 0), pv
        else:
            Q, K = rope(Q, theta, offset), rope(K, theta, offset)
        if keep and keep != "dual":
            kept.append((K[:, :, :keep], V[:, :, :keep]))
        if past is not None:
            K, V = np.concatenate([past[i][0], K], 2), np.concatenate([past[i][1], V], 2)
        K, V = np.repeat(K, H // KV, axis=1), np.repeat(V, H // KV, axis=1)
        S = Q @ K.transpose(0, 1, 3, 2) / np.sqrt(hd) + keymask
        S = np.exp(S - S.max(-1, keepdims=True))
        S /= S.sum(-1, keepdims=True)
        A = (S @ V).transpose(0, 2, 1, 3).reshape(b, L, d)
        x = x + A @ w[q + "attn_out.weight"].T
        h = rms(x, w[q + "ff_norm.weight"], eps)
        g, u = h @ w[q + "ff_proj.weight"].T, h @ w[q + "up_proj.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ w[q + "ff_out.weight"].T
    x = rms(x, w[p + "ln_f.weight"], eps)
    logits = x @ w[p + "ff_out.weight"].T
    return (logits, kept) if keep else logits


def transfer_counts(masked, steps):
    base, rem = masked // steps, masked % steps
    return [base + (1 if i < rem else 0) for i in range(steps)]


def generate(cfg, w, prompts, gen_length, block_length, steps, pad_id, mask_padding, threshold=None, cache="none"):
    mask_id = cfg["mask_token_id"]
    P = max(len(p) for p in prompts)
    b, L = len(prompts), P + gen_length
    x = np.full((b, L), mask_id, dtype=np.int64)
    pads = [P - len(p) for p in prompts]
    for j, p in enumerate(prompts):
        x[j, : pads[j]] = pad_id
        x[j, pads[j]: P] = p
    key_start = pads if mask_padding else [0] * b
    num_blocks = gen_length // block_length
    spb = max(1, steps // num_blocks)
    forwards = 0
    for nb in range(num_blocks):
        end = P + (nb + 1) * block_length
        start = end - block_length
        counts = [transfer_counts(int((x[j, start:end] == mask_id).sum()), spb) for j in range(b)]
        i = 0
        past = None
        while (i < spb) if threshold is None else ((x[:, start:end] == mask_id).any() and i < block_length):
            first = start if (cache != "none" and i > 0) else 0
            if cache == "none":
                logits = forward(cfg, w, x, key_start)
            elif i == 0:
                logits, past = forward(cfg, w, x, key_start, keep=start if cache == "prefix" else "dual")
            elif cache == "prefix":
                logits = np.concatenate([np.zeros((b, start, logits.shape[-1])), forward(cfg, w, x[:, start:], key_start, past=past)], 1)
            else:
                logits = np.zeros((b, L, logits.shape[-1]))
                logits[:, start:end] = forward(cfg, w, x[:, start:end], key_start, dual={"past": past, "start": start})
            forwards += 1
            x0 = logits.argmax(-1)
            e = np.exp(logits - logits.max(-1, keepdims=True))
            prob = e / e.sum(-1, keepdims=True)
            conf = np.take_along_axis(prob, x0[..., None], -1)[..., 0]
            for j in range(b):
                cand = [t for t in range(first, end) if x[j, t] == mask_id]
                cand.sort(key=lambda t: (-conf[j, t], t))
                if threshold is None:
                    chosen = cand[: counts[j][i]]
                else:
                    chosen = cand[:1] + [t for t in cand[1:] if conf[j, t] >= threshold]
                for t in chosen:
                    x[j, t] = x0[j, t]
            i += 1
    return [x[j, P:].tolist() for j in range(b)], forwards


if __name__ == "__main__":
    cfg, w = load(sys.argv[1])
    r = json.load(open(sys.argv[2]))
    outputs, forwards = generate(cfg, w, r["prompts"], r["gen_length"], r["block_length"], r["steps"], r["pad_id"],
                                 r["mask_padding"], r.get("threshold"), r.get("cache", "none"))
    print(json.dumps({"outputs": outputs, "forwards": forwards}))
