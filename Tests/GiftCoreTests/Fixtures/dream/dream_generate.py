"""A Python port (written for gift's tests) of Dream's sampler: `DreamGenerationMixin.diffusion_generate` and
`_sample`, with `sample_tokens`, `top_p_logits` and `top_k_logits`, of Dream's generation_utils.py
(Dream-org/Dream-v0-Base-7B on the Hugging Face hub; the copy read is dllm's
dllm/pipelines/dream/models/generation_utils.py, repository ZHZisZZ/dllm). The model is dream_reference.py's
float64 Qwen2 reading a gift Dream folder.

Followed line by line: x = prompt padded to max_length with the mask id; with left padding (an attention mask
with zeros) the mask is padded with ones, tok_idx = cumsum(mask) - 1 (padding: 1) and the attention mask is
the pairwise and; timesteps = torch.linspace(1, eps, steps + 1); every step runs the model, shifts the logits,
and either (origin) commits each masked position with probability 1 - s/t or commits
int(mean masked count * (1 - s/t)) positions (the last step: all) by confidence (top-k).

The one change: origin's torch.rand transfer draws are gift's (a port of gift's CounterRNG below, keyed by
seed, prompt key, step and position from the response start), so that the test can compare `origin`.
Only temperature 0 and alg_temp 0 (Dream's torch draws otherwise); the sampling rows then raise.

Usage: python dream_generate.py FOLDER REQUESTS.json  ->  {"outputs": [[[...], ...], ...]} (per request, the
generated ids of each prompt). A request: prompts, gen_length, steps, eps, alg, temperature, alg_temp, top_p, top_k,
pad_id, seed, keys.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dream_reference import DreamReference  # noqa: E402

M64 = (1 << 64) - 1


def _mix(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def counter_uniform(parts, counter):
    """gift's CounterRNG(parts...).uniform(counter): 53 bits in [0, 1)."""
    h = 0x6A09E667F3BCC908
    for p in parts:
        h = _mix(h ^ _mix((p + 0x9E3779B97F4A7C15) & M64))
    return (_mix(h ^ _mix(counter & M64)) >> 11) * 2.0 ** -53


def top_p_logits(logits, top_p):
    sorted_logits, sorted_indices = torch.sort(logits, descending=True)
    cumulative = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
    remove = cumulative > top_p
    remove[..., 1:] = remove[..., :-1].clone()   # keep the first entry above the threshold
    remove[..., 0] = False
    mask = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, sorted_indices, remove)
    return logits.masked_fill(mask, torch.finfo(logits.dtype).min)


def top_k_logits(logits, top_k):
    top_k = min(top_k, logits.size(-1))
    remove = logits < torch.topk(logits, top_k)[0][..., -1, None]
    return logits.masked_fill(remove, torch.finfo(logits.dtype).min)


def sample_tokens(logits, temperature, top_p, top_k, margin_confidence=False, neg_entropy=False):
    assert temperature == 0, "the port draws no tokens"
    if top_p is not None and top_p < 1:
        logits = top_p_logits(logits, top_p)
    if top_k is not None:
        logits = top_k_logits(logits, top_k)
    probs = torch.softmax(logits, dim=-1)
    confidence, x0 = probs.max(dim=-1)
    if margin_confidence:
        sorted_probs, _ = torch.sort(probs, dim=-1, descending=True)
        confidence = sorted_probs[:, 0] - sorted_probs[:, 1]
    if neg_entropy:
        confidence = torch.sum(probs * torch.log(probs + 1e-10), dim=-1)
    return confidence, x0


def sample(model, input_ids, attention_mask, r):
    """Dream's _sample; `r`: the request (settings, seed, keys)."""
    mask_id = model.config["mask_token_id"]
    steps, eps, alg, temperature = r["steps"], r["eps"], r["alg"], r["temperature"]
    top_p, top_k = r.get("top_p"), r.get("top_k")
    assert not r.get("alg_temp"), "the port selects with alg_temp 0 only"
    P = input_ids.shape[1]
    max_length = P + r["gen_length"]
    x = F.pad(input_ids, (0, max_length - P), value=mask_id)
    if attention_mask is not None and torch.any(attention_mask == 0.0):
        attention_mask = F.pad(attention_mask, (0, max_length - attention_mask.shape[1]), value=1.0)
        tok_idx = attention_mask.long().cumsum(-1) - 1
        tok_idx.masked_fill_(attention_mask == 0, 1)
        attention_mask = torch.logical_and(attention_mask.unsqueeze(1).unsqueeze(-2).bool(),
                                           attention_mask.unsqueeze(1).unsqueeze(-1).bool())
    else:
        tok_idx = None
        attention_mask = None   # Dream's "full"
    timesteps = torch.linspace(1, eps, steps + 1)
    for i in range(steps):
        mask_index = x == mask_id
        logits = model.logits(x, attention_mask, tok_idx)   # shifted as Dream's cat([logits[:, :1], logits[:, :-1]])
        mask_logits = logits[mask_index]
        t, s = timesteps[i], timesteps[i + 1]
        if alg == "origin":
            p_transfer = float(1 - s / t) if i < steps - 1 else 1.0
            x0 = torch.zeros_like(x[mask_index]) + mask_id
            # torch.rand(*x0.shape) < p_transfer, with gift's draws (mask_index's row-major order)
            where = mask_index.nonzero().tolist()
            draws = [counter_uniform([r["seed"], r["keys"][j] & M64, i, (pos - P) & M64], M64) for j, pos in where]
            transfer = torch.tensor([u < p_transfer for u in draws], dtype=torch.bool)
            if transfer.any():
                _, x0[transfer] = sample_tokens(mask_logits[transfer], temperature, top_p, top_k)
            x[mask_index] = x0.clone()
        else:
            if alg == "maskgit_plus":
                confidence, x0 = sample_tokens(mask_logits, temperature, top_p, top_k)
            elif alg == "topk_margin":
                confidence, x0 = sample_tokens(mask_logits, temperature, top_p, top_k, margin_confidence=True)
            elif alg == "entropy":
                confidence, x0 = sample_tokens(mask_logits, temperature, top_p, top_k, neg_entropy=True)
            else:
                raise RuntimeError(f"Unknown alg: {alg}")
            per_row = mask_index.sum(dim=1)
            # Dream counts the batch mean; gift each row's own: the same while every row has as many masks
            assert bool((per_row == per_row[0]).all()), f"rows differ in masked count at step {i}: {per_row.tolist()}"
            num_mask_token = mask_index.sum() / mask_index.shape[0]
            num_mask_token = num_mask_token.float()
            k = int(num_mask_token * (1 - s / t)) if i < steps - 1 else int(num_mask_token)
            full_confidence = torch.full(x.shape, -torch.inf, dtype=logits.dtype)
            full_confidence[mask_index] = confidence
            if k > 0:
                _, transfer_index = torch.topk(full_confidence, k)
                x_ = torch.zeros_like(x) + mask_id
                x_[mask_index] = x0.clone()
                rows = torch.arange(x.size(0)).unsqueeze(1).expand_as(transfer_index)
                x[rows, transfer_index] = x_[rows, transfer_index]
    return x


def generate(model, r):
    """The generated ids of request r's prompts (one batch)."""
    prompts = r["prompts"]
    P = max(len(p) for p in prompts)
    # diffusion_generate's inputs as a left-padding tokenizer gives them: pad ids and an attention mask
    ids = torch.tensor([[r["pad_id"]] * (P - len(p)) + p for p in prompts], dtype=torch.long)
    att = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long)
    return sample(model, ids, att, r)[:, P:].tolist()


def main():
    folder, request = sys.argv[1:3]
    model = DreamReference(folder)
    print(json.dumps({"outputs": [generate(model, r) for r in json.load(open(request))]}))


if __name__ == "__main__":
    main()
