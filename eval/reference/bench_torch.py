#!/usr/bin/env python3
"""The PyTorch counterpart of ssa-bench (docs/PERF.md): the same shapes, timing method and
operation counts, written the way a PyTorch user would write them. Run from the repository
root on the GPU machine, next to ssa-bench (scripts/bench.sh runs both):

  python3 eval/reference/bench_torch.py kernels [--configs A.conf,B.conf] [--json PATH]
  python3 eval/reference/bench_torch.py attention [--t 4096,8192,16384,32768] [--json PATH]
  python3 eval/reference/bench_torch.py train --config configs/bench-160m.conf \
      [--modes full,sparse,ssa] [--json PATH]

Each prints a table and appends one JSON object per row to --json PATH; the "case" field
matches ssa-bench's, so eval/reference/compare.py can put the two side by side.
"""
import argparse
import configparser
import gc
import json
import math
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

PEAK_FLOPS = 989e12  # H100/H200 dense bf16, as ssa-bench's MFU
BF16, F32 = 2, 4  # bytes per element
DEFAULT_CONFIGS = "configs/bench-160m.conf,configs/bench-1b.conf"


# --- configs (ssa-train's file format; the keys ssa-bench reads, with ssa-train's defaults) ---

class BenchConfig:
    def __init__(self, path):
        if not os.path.isfile(path):
            raise SystemExit(f"bench_torch: config file {path} does not exist")
        ini = configparser.ConfigParser(inline_comment_prefixes=("#",))
        ini.read(path)

        def get(section, key, default, kind=int):
            return kind(ini.get(section, key, fallback=str(default)).strip('"'))

        self.name = os.path.splitext(os.path.basename(path))[0]
        self.vocab = get("model", "vocab_size", 4096)
        self.d_model = get("model", "d_model", 256)
        self.layers = get("model", "n_layers", 4)
        self.heads = get("model", "n_heads", 4)
        self.kv_heads = get("model", "n_kv_heads", 2)
        self.head_dim = get("model", "head_dim", 64)
        self.ffn = get("model", "ffn_dim", 704)
        self.rope_theta = get("model", "rope_theta", 500000.0, float)
        self.norm_eps = get("model", "norm_eps", 1e-5, float)
        self.mode = get("attention", "mode", "full", str)
        self.block_size = get("attention", "block_size", 16)
        self.top_k = get("attention", "top_k", 16)
        self.align_weight = get("attention", "align_weight", 10.0, float)
        self.align_beta = get("attention", "align_beta", 1.0, float)
        self.seq_len = get("data", "seq_len", 256)
        self.batch = get("train", "micro_batch", 8)
        self.lr = get("optim", "lr", 3e-4, float)
        self.weight_decay = get("optim", "weight_decay", 0.1, float)
        self.beta1 = get("optim", "beta1", 0.9, float)
        self.beta2 = get("optim", "beta2", 0.95, float)
        self.eps = get("optim", "eps", 1e-8, float)
        self.grad_clip = get("optim", "grad_clip", 1.0, float)
        self.tokens = self.batch * self.seq_len

    def weight_shapes(self):
        """(names, out, in) of each distinct weight shape of a layer and of the head, in the
        order of the parameter table (models/decoder.cpp), names of equal shapes joined."""
        q, kv, d = self.heads * self.head_dim, self.kv_heads * self.head_dim, self.d_model
        table = [("attn.wq", q, d), ("attn.wk", kv, d), ("attn.wv", kv, d), ("attn.wg", self.heads, d),
                 ("attn.wo", d, q), ("ffn.w1", self.ffn, d), ("ffn.w3", self.ffn, d),
                 ("ffn.w2", d, self.ffn), ("head", self.vocab, d)]
        shapes = []
        for name, out, inp in table:
            same = [s for s in shapes if s[1] == out and s[2] == inp]
            if same:
                same[0][0] += "," + name
            else:
                shapes.append([name, out, inp])
        return shapes

    def params(self):
        d, q, kv = self.d_model, self.heads * self.head_dim, self.kv_heads * self.head_dim
        layer = 2 * d + q * d + 2 * kv * d + self.heads * d + d * q + 3 * self.ffn * d
        return self.vocab * d + self.layers * layer + d

    def flops_per_token(self):
        """Decoder::flops_per_token: 6 · matmul weights (head included) + causal attention."""
        d, q, kv = self.d_model, self.heads * self.head_dim, self.kv_heads * self.head_dim
        matmul = self.layers * (q * d + 2 * kv * d + self.heads * d + d * q + 3 * self.ffn * d)
        matmul += self.vocab * d
        return 6.0 * matmul + 6.0 * self.layers * self.heads * self.head_dim * self.seq_len


# --- timing and output ---

class Timer:
    """Median milliseconds per phase over `repeats` runs after `warmup`, CUDA events around each
    phase, the L2 cache evicted (a write over twice its size) before each run: as ssa-bench."""

    def __init__(self, warmup, repeats):
        self.warmup, self.repeats = warmup, repeats
        l2 = torch.cuda.get_device_properties(0).L2_cache_size
        self.evict = torch.empty(max(2 * l2 // 4, 1), dtype=torch.float32, device="cuda")

    def phases(self, fns):
        for _ in range(self.warmup):
            for fn in fns:
                fn()
        marks = [[torch.cuda.Event(enable_timing=True) for _ in range(len(fns) + 1)]
                 for _ in range(self.repeats)]
        for run in marks:
            self.evict.fill_(1.0)
            run[0].record()
            for i, fn in enumerate(fns):
                fn()
                run[i + 1].record()
        torch.cuda.synchronize()
        return [statistics.median(run[i].elapsed_time(run[i + 1]) for run in marks)
                for i in range(len(fns))]

    def ms(self, fn):
        return self.phases([fn])[0]


class Output:
    def __init__(self, path):
        self.path = path
        self.device = torch.cuda.get_device_name(0)

    def write(self, row):
        if self.path:
            row = dict(row, impl="torch", device=self.device, torch=torch.__version__)
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")


def randn(*shape, std=1.0, dtype=torch.bfloat16, grad=False):
    t = torch.randn(*shape, device="cuda", dtype=dtype) * std
    return t.requires_grad_(grad)


# --- kernels: GEMMs and the fused ops ---

def gemm_row(timer, out, config, names, pas, m, n, k, fn):
    ms = timer.ms(fn)
    tflops = 2 * m * n * k / ms / 1e9
    mnk = f"{m}x{n}x{k}"
    print(f"{config:<11} {names:<22} {pas:<4} {mnk:<20} {ms:>9.3f} {tflops:>8.1f}", flush=True)
    out.write(dict(bench="gemm", case=f"{config} {pas} {mnk}", names=names, m=m, n=n, k=k, ms=ms,
                   tflops=tflops))


def weight_gemm_rows(c, timer, out):
    """Each weight's forward x·Wᵀ, input gradient dy·W and weight gradient dyᵀ·x."""
    n = c.tokens
    for names, o, i in c.weight_shapes():
        x, w, dy = randn(n, i), randn(o, i, std=0.02), randn(n, o)
        gemm_row(timer, out, c.name, names, "fwd", n, o, i, lambda: x @ w.t())
        gemm_row(timer, out, c.name, names, "dx", n, i, o, lambda: dy @ w)
        gemm_row(timer, out, c.name, names, "dw", o, i, n, lambda: dy.t() @ x)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope_tables(seq_len, head_dim, theta):
    """cos and sin [T, head_dim] ("rotate half" layout, each half repeated), fp32."""
    inv = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64, device="cuda") / head_dim)
    angles = torch.arange(seq_len, dtype=torch.float64, device="cuda")[:, None] * inv[None, :]
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x, cos, sin):
    """x [B, T, H, hd]; cos/sin cast to x's dtype, as Hugging Face's Llama does."""
    cos, sin = cos.to(x.dtype)[None, :, None, :], sin.to(x.dtype)[None, :, None, :]
    return x * cos + rotate_half(x) * sin


def forward_backward(fwd, inputs, grad_out=None):
    """Two timed phases: the forward, and autograd's backward of it (the graph kept)."""
    state = {}

    def forward():
        state["y"] = fwd()

    def backward():
        torch.autograd.grad(state["y"], inputs, grad_out, retain_graph=True)

    return forward, backward


def fused_rows(c, timer, out, copy_gbps):
    n, d, h, hd, f, v = c.tokens, c.d_model, c.heads, c.head_dim, c.ffn, c.vocab

    def row(op, nbytes, fn):
        ms = timer.ms(fn)
        gbps = nbytes / ms / 1e6
        print(f"{c.name:<11} {op:<20} {nbytes / 1e6:>10.1f} {ms:>9.3f} {gbps:>8.0f} "
              f"{100 * gbps / copy_gbps:>7.0f}%", flush=True)
        out.write(dict(bench="op", case=f"{c.name} {op}", bytes=nbytes, ms=ms, gbps=gbps,
                       copy_share=gbps / copy_gbps))

    def pair(name, fwd_bytes, bwd_bytes, fwd, inputs, grad_out=None):
        forward, backward = forward_backward(fwd, inputs, grad_out)
        try:
            forward()
            row(name + ".fwd", fwd_bytes, forward)
            row(name + ".bwd", bwd_bytes, backward)
        except RuntimeError as error:  # report it, measure the others
            print(f"{c.name:<11} {name} failed: {error}", flush=True)

    x, w, dy = randn(n, d, grad=True), randn(d, grad=True), randn(n, d)
    pair("rmsnorm", 2 * n * d * BF16 + n * F32 + d * BF16, 3 * n * d * BF16 + n * F32 + 2 * d * BF16,
         lambda: F.rms_norm(x, (d,), w, c.norm_eps), (x, w), dy)
    del x, w, dy

    q = randn(c.batch, c.seq_len, h, hd, grad=True)
    cos, sin = rope_tables(c.seq_len, hd, c.rope_theta)
    rope_bytes = 2 * q.numel() * BF16 + 2 * c.seq_len * (hd // 2) * F32
    pair("rope", rope_bytes, rope_bytes, lambda: apply_rope(q, cos, sin), (q,), torch.randn_like(q))
    del q

    a, b = randn(n * f, grad=True), randn(n * f, grad=True)
    pair("swiglu", 3 * n * f * BF16, 5 * n * f * BF16, lambda: F.silu(a) * b, (a, b), randn(n * f))
    del a, b

    o, logits = randn(n * h, hd, grad=True), randn(n * h, grad=True)
    pair("head_gate", (2 * o.numel() + n * h) * BF16, (3 * o.numel() + 2 * n * h) * BF16,
         lambda: o * torch.sigmoid(logits)[:, None], (o, logits), randn(n * h, hd))
    del o, logits

    logits = randn(n, v, grad=True)
    targets = torch.randint(0, v, (n,), device="cuda")
    # As autocast runs it: the loss in fp32 over bf16 logits.
    pair("cross_entropy", n * v * BF16 + n * 2 * F32, 2 * n * v * BF16 + n * 2 * F32,
         lambda: F.cross_entropy(logits.float(), targets), (logits,))
    del logits, targets

    ids = torch.randint(0, v, (n,), device="cuda")
    table = randn(v, d, std=0.02, grad=True)
    pair("embedding", 2 * n * d * BF16 + n * F32, (n * d + v * d) * BF16 + n * F32,
         lambda: F.embedding(ids, table), (table,), randn(n, d))
    del ids, table

    m = n * h * hd
    a, b = randn(m, grad=True), randn(m, grad=True)
    pair("smooth_l1", 2 * m * BF16, 4 * m * BF16, lambda: F.smooth_l1_loss(a, b, beta=1.0), (a, b))
    del a, b

    a, b = randn(n * d), randn(n * d)
    row("add", 3 * n * d * BF16, lambda: a + b)
    del a, b

    p = c.params()
    grad, bf16_grad = randn(p, std=1e-3, dtype=torch.float32), randn(p, std=1e-3)
    row("grad_accumulate", p * (2 * F32 + BF16), lambda: grad.add_(bf16_grad))
    del bf16_grad
    row("grad_norm", p * F32, lambda: torch.linalg.vector_norm(grad).item())
    param = nn.Parameter(randn(p, std=0.02, dtype=torch.float32))
    param.grad = grad
    bf16_param = torch.empty(p, dtype=torch.bfloat16, device="cuda")
    opt = torch.optim.AdamW([param], lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps,
                            weight_decay=c.weight_decay, fused=True)

    def adamw():  # the fused step, then the bf16 working copy (ours writes it in the same pass)
        opt.step()
        bf16_param.copy_(param.detach())

    row("adamw", p * (7 * F32 + BF16) + p / 8, adamw)


def kernels(args):
    timer, out = Timer(args.warmup, args.repeats), Output(args.json)
    configs = [BenchConfig(p) for p in args.configs.split(",")]
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    src = randn(1 << 28, dtype=torch.float32)
    dst = torch.empty_like(src)
    ms = timer.ms(lambda: dst.copy_(src))
    copy_gbps = 2 * src.numel() * F32 / ms / 1e6
    del src, dst
    print(f"device-to-device copy of 1 GiB: {ms:.3f} ms, {copy_gbps:.0f} GB/s (bytes read + written)\n")
    out.write(dict(bench="op", case="copy", bytes=2 * (1 << 28) * F32, ms=ms, gbps=copy_gbps))
    print(f"{'config':<11} {'weights':<22} {'pass':<4} {'m x n x k':<20} {'ms':>9} {'TFLOP/s':>8}")
    a, b = randn(8192, 8192), randn(8192, 8192)
    gemm_row(timer, out, "square", "-", "fwd", 8192, 8192, 8192, lambda: a @ b)
    del a, b
    for c in configs:
        weight_gemm_rows(c, timer, out)
    print(f"\n{'config':<11} {'kernel':<20} {'MB moved':>10} {'ms':>9} {'GB/s':>8} {'of copy':>8}")
    for c in configs:
        fused_rows(c, timer, out, copy_gbps)
        gc.collect()
        torch.cuda.empty_cache()


# --- attention: full (SDPA, flash backend) and sparse (DESIGN.md in plain PyTorch) ---

def flash_has_gqa():
    """Whether the flash backend takes enable_gqa; otherwise K/V are repeated per query head."""
    q = torch.randn(1, 4, 128, 64, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, 1, 128, 64, device="cuda", dtype=torch.bfloat16)
    try:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            F.scaled_dot_product_attention(q, k, k, is_causal=True, enable_gqa=True)
        return True
    except RuntimeError:
        return False


FLASH_GQA = None


def causal_attention(q, k, v):
    """q [B, T, H, d], k and v [B, T, Hkv, d] -> [B, T, H, d], SDPA's flash kernel."""
    global FLASH_GQA
    if FLASH_GQA is None:
        FLASH_GQA = flash_has_gqa()
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    if not FLASH_GQA:
        group = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=FLASH_GQA)
    return o.transpose(1, 2)


def select_blocks(q, k, block_size, top_k):
    """DESIGN.md's block selection, i64 [B, T, Hkv, W], no gradient. q [B, T, H, d], k [B, T,
    Hkv, d], T a multiple of block_size. Block keys are the means of the blocks' keys; a query
    scores the complete blocks before its own by softmax(q · kbar / sqrt(d)) over them, summed
    over the query heads of the KV group, and keeps its own block and the best top_k - 1 (ties
    to the lower index). Rows of queries with fewer blocks end with later blocks, which
    attend_selected masks out."""
    B, T, H, d = q.shape
    Hkv, nb = k.shape[2], T // block_size
    own = torch.arange(T, device=q.device) // block_size
    with torch.no_grad(), torch.autocast("cuda", enabled=False):  # the selection in fp32
        kbar = k.view(B, nb, block_size, Hkv, d).float().mean(2)  # [B, nb, Hkv, d]
        logits = torch.einsum("bthgd,bnhd->bthgn", q.view(B, T, Hkv, H // Hkv, d).float(), kbar)
        earlier = torch.arange(nb, device=q.device)[None, :] < own[:, None]  # [T, nb]
        logits = logits.masked_fill(~earlier[None, :, None, None, :], float("-inf")) / math.sqrt(d)
        score = torch.softmax(logits, dim=-1).nan_to_num(0.0).sum(3)  # [B, T, Hkv, nb]
        score = score.masked_fill(~earlier[None, :, None, :], float("-inf"))
        score.scatter_(-1, own.view(1, T, 1, 1).expand(B, T, Hkv, 1), float("inf"))
        # Stable descending sort: equal scores keep the lower block first.
        return torch.sort(score, dim=-1, descending=True, stable=True).indices[..., :min(top_k, nb)]


def attend_selected(q, k, v, selected, block_size):
    """Attention of each query over the keys of its selected blocks, causal inside its own."""
    B, T, H, d = q.shape
    Hkv, nb, dev = k.shape[2], T // block_size, q.device
    pos = torch.arange(T, device=dev)
    key_pos = selected[..., None] * block_size + torch.arange(block_size, device=dev)
    allowed = key_pos <= pos[None, :, None, None, None]  # [B, T, Hkv, W, bs]
    b_index = torch.arange(B, device=dev)[:, None, None, None]
    h_index = torch.arange(Hkv, device=dev)[None, None, :, None]
    k_blocks = k.view(B, nb, block_size, Hkv, d).permute(0, 3, 1, 2, 4)  # [B, Hkv, nb, bs, d]
    v_blocks = v.view(B, nb, block_size, Hkv, d).permute(0, 3, 1, 2, 4)
    k_sel = k_blocks[b_index, h_index, selected]  # [B, T, Hkv, W, bs, d]
    v_sel = v_blocks[b_index, h_index, selected]
    s = torch.einsum("bthgd,bthwsd->bthgws", q.view(B, T, Hkv, H // Hkv, d), k_sel) / math.sqrt(d)
    s = s.masked_fill(~allowed[:, :, :, None], float("-inf"))
    p = torch.softmax(s.flatten(-2).float(), dim=-1).to(q.dtype)  # [B, T, Hkv, G, W·bs]
    o = torch.einsum("bthgk,bthkd->bthgd", p, v_sel.flatten(3, 4))
    return o.reshape(B, T, H, d)


def block_sparse_attention(q, k, v, block_size, top_k):
    return attend_selected(q, k, v, select_blocks(q, k, block_size, top_k), block_size)


def causal_pairs(t):
    return t * (t + 1) / 2


def sparse_pairs(t, block_size, top_k):
    """eval/bench_formulas.h: Σ_t min(top_k − 1, o_t)·bs + (t − o_t·bs + 1)."""
    own = torch.arange(t, dtype=torch.float64) // block_size
    return float((torch.clamp(own, max=top_k - 1) * block_size + torch.arange(t) - own * block_size + 1).sum())


def attention(args):
    timer, out = Timer(args.warmup, args.repeats), Output(args.json)
    B, H, Hkv, d = args.batch, args.heads, args.kv_heads, args.head_dim
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}\n"
          f"bf16, batch {B}, {H} heads, {Hkv} KV heads, head_dim {d}; sparse: blocks of "
          f"{args.block_size}, top-{args.top_k}")
    print(f"{'path':<7} {'T':>6} {'select ms':>10} {'fwd ms':>10} {'bwd ms':>10} {'total ms':>10} "
          f"{'fwd TF/s':>9} {'bwd TF/s':>9} {'tot TF/s':>9}")
    for path in args.paths.split(","):
        for t in (int(x) for x in args.t.split(",")):
            row = dict(bench="attention", case=f"{path} T={t}", path=path, seq_len=t, batch=B,
                       heads=H, kv_heads=Hkv, head_dim=d)
            state = {}
            try:
                q = randn(B, t, H, d, grad=True)
                k, v = randn(B, t, Hkv, d, grad=True), randn(B, t, Hkv, d, grad=True)
                dout = randn(B, t, H, d)

                def select():
                    state["selected"] = select_blocks(q, k, args.block_size, args.top_k)

                def forward():
                    state["o"] = (causal_attention(q, k, v) if path == "full" else
                                  attend_selected(q, k, v, state["selected"], args.block_size))

                def backward():
                    torch.autograd.grad(state.pop("o"), (q, k, v), dout)

                if path == "full":
                    pairs, s_ms = B * causal_pairs(t), 0.0
                    f_ms, b_ms = timer.phases([forward, backward])
                else:
                    pairs = B * sparse_pairs(t, args.block_size, args.top_k)
                    s_ms, f_ms, b_ms = timer.phases([select, forward, backward])
                flops, ms = 4 * d * H * pairs, s_ms + f_ms + b_ms
                fwd_tf, bwd_tf, tot_tf = flops / f_ms / 1e9, 2.5 * flops / b_ms / 1e9, 3.5 * flops / ms / 1e9
                print(f"{path:<7} {t:>6} {s_ms:>10.3f} {f_ms:>10.3f} {b_ms:>10.3f} {ms:>10.3f} "
                      f"{fwd_tf:>9.1f} {bwd_tf:>9.1f} {tot_tf:>9.1f}", flush=True)
                row.update(pairs=pairs, select_ms=s_ms, fwd_ms=f_ms, bwd_ms=b_ms, ms=ms,
                           fwd_tflops=fwd_tf, bwd_tflops=bwd_tf, tflops=tot_tf)
                if path == "full":
                    row["variant"] = "enable_gqa" if FLASH_GQA else "repeat_kv"
            except RuntimeError as error:  # out of memory, or no kernel for these inputs
                row["error"] = str(error).split("\n")[0]
                print(f"{path:<7} {t:>6} failed: {row['error']}", flush=True)
            out.write(row)
            q = k = v = dout = state = None
            gc.collect()
            torch.cuda.empty_cache()


# --- train: a Llama-style decoder with the sigmoid head gate (DESIGN.md), autocast bf16 ---

class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, q, kv = c.d_model, c.heads * c.head_dim, c.kv_heads * c.head_dim
        self.c = c
        self.attn_norm, self.ffn_norm = nn.RMSNorm(d, eps=c.norm_eps), nn.RMSNorm(d, eps=c.norm_eps)
        self.wq, self.wk, self.wv = (nn.Linear(d, n, bias=False) for n in (q, kv, kv))
        self.wg, self.wo = nn.Linear(d, c.heads, bias=False), nn.Linear(q, d, bias=False)
        self.w1, self.w3 = nn.Linear(d, c.ffn, bias=False), nn.Linear(d, c.ffn, bias=False)
        self.w2 = nn.Linear(c.ffn, d, bias=False)

    def attention(self, x, cos, sin, path, align):
        """The attention block's output, and with align the layer's alignment loss."""
        c, (B, T, _) = self.c, x.shape
        h = self.attn_norm(x)
        q = apply_rope(self.wq(h).view(B, T, c.heads, c.head_dim), cos, sin)
        k = apply_rope(self.wk(h).view(B, T, c.kv_heads, c.head_dim), cos, sin)
        v = self.wv(h).view(B, T, c.kv_heads, c.head_dim)
        gate = torch.sigmoid(self.wg(h)).unsqueeze(-1)

        def gated(p):
            if p == "full":
                return causal_attention(q, k, v) * gate
            return block_sparse_attention(q, k, v, c.block_size, c.top_k) * gate

        o, alignment = gated(path), None
        if align:
            other = gated("sparse" if path == "full" else "full")
            full, sparse = (o, other) if path == "full" else (other, o)
            alignment = (F.smooth_l1_loss(full, sparse.detach(), beta=c.align_beta)
                         + F.smooth_l1_loss(full.detach(), sparse, beta=c.align_beta))
        return self.wo(o.reshape(B, T, -1)), alignment

    def ffn(self, x):
        h = self.ffn_norm(x)
        return self.w2(F.silu(self.w1(h)) * self.w3(h))


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embedding = nn.Embedding(c.vocab, c.d_model)
        self.layers = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.final_norm = nn.RMSNorm(c.d_model, eps=c.norm_eps)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                scaled = name.endswith("wo.weight") or name.endswith("w2.weight")
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * c.layers) if scaled else 0.02)
        cos, sin = rope_tables(c.seq_len, c.head_dim, c.rope_theta)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def loss(self, ids, targets, path, align):
        x = self.embedding(ids)
        alignments = []
        for layer in self.layers:
            attended, alignment = layer.attention(x, self.cos, self.sin, path, align)
            x = x + attended
            x = x + layer.ffn(x)
            if alignment is not None:
                alignments.append(alignment)
        logits = F.linear(self.final_norm(x), self.embedding.weight)  # tied head
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        if align:
            loss = loss + self.c.align_weight * torch.stack(alignments).mean()
        return loss


def train_mode(c, mode, warmup, steps):
    torch.manual_seed(1337)
    with torch.device("cuda"):
        model = Decoder(c)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": c.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps, fused=True)
    ids = torch.randint(0, c.vocab, (c.batch, c.seq_len), device="cuda")
    targets = torch.randint(0, c.vocab, (c.batch, c.seq_len), device="cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    seconds, loss_value = [], 0.0
    for step in range(warmup + steps):
        path = "sparse" if mode == "sparse" or (mode == "ssa" and step % 2 == 1) else "full"
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model.loss(ids, targets, path, mode == "ssa")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
        opt.step()
        loss_value = loss.item()
        torch.cuda.synchronize()
        if step >= warmup:
            seconds.append(time.perf_counter() - start)
    return seconds, loss_value, torch.cuda.max_memory_allocated() / 2**30


def train(args):
    c, out = BenchConfig(args.config), Output(args.json)
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    for mode in args.modes.split(","):
        row = dict(bench="train", case=f"{c.name} {mode}", config=c.name, mode=mode, batch=c.batch,
                   seq_len=c.seq_len, steps=args.steps)
        try:
            seconds, loss, peak = train_mode(c, mode, args.warmup, args.steps)
            tokens_per_s = c.tokens * len(seconds) / sum(seconds)
            mfu = tokens_per_s * c.flops_per_token() / PEAK_FLOPS
            step_ms = 1e3 * statistics.median(seconds)
            print(f"{c.name} {mode}: step {step_ms:.1f} ms (median) | {tokens_per_s:.0f} tokens/s | "
                  f"MFU {100 * mfu:.1f}% | peak memory {peak:.2f} GiB | last loss {loss:.4f}", flush=True)
            row.update(flops_per_token=c.flops_per_token(), step_ms=step_ms, tokens_per_s=tokens_per_s,
                       mfu=mfu, peak_gib=peak, loss=loss)
        except RuntimeError as error:  # out of memory, or no kernel for these inputs
            row["error"] = str(error).split("\n")[0]
            print(f"{c.name} {mode}: failed: {row['error']}", flush=True)
        out.write(row)
        gc.collect()
        torch.cuda.empty_cache()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("kernels", "attention", "train"):
        p = sub.add_parser(name)
        p.add_argument("--json", default="", help="append one JSON object per row")
        p.add_argument("--warmup", type=int, default=2 if name == "train" else 3)
        if name != "train":
            p.add_argument("--repeats", type=int, default=10)
    sub.choices["kernels"].add_argument("--configs", default=DEFAULT_CONFIGS)
    a = sub.choices["attention"]
    a.add_argument("--t", default="4096,8192,16384,32768")
    a.add_argument("--paths", default="full,sparse")
    for flag, default in (("--batch", 1), ("--heads", 16), ("--kv-heads", 1), ("--head-dim", 64),
                          ("--block-size", 16), ("--top-k", 16)):
        a.add_argument(flag, type=int, default=default)
    t = sub.choices["train"]
    t.add_argument("--config", required=True)
    t.add_argument("--modes", default="full,sparse,ssa")
    t.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_torch: no CUDA GPU is visible to PyTorch")
    {"kernels": kernels, "attention": attention, "train": train}[args.command](args)


if __name__ == "__main__":
    main()
