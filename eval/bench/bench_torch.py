#!/usr/bin/env python3
"""The PyTorch counterpart of ssa-bench (docs/PERF.md): the same shapes, timing method and
operation counts, written the way a PyTorch user would write them. Run from the repository
root on the GPU machine, next to ssa-bench (scripts/bench.sh runs both):

  python3 eval/bench/bench_torch.py kernels [--configs A.conf,B.conf] [--json PATH]
  python3 eval/bench/bench_torch.py attention [--t 4096,8192,16384,32768] [--json PATH]
  python3 eval/bench/bench_torch.py train [--configs A.conf,B.conf] \
      [--modes full,sparse,ssa] [--json PATH]

Each prints a table and appends one JSON object per row to --json PATH; the "case" field
matches ssa-bench's, so eval/bench/compare.py can put the two side by side.

attention times full attention through SDPA with each backend PyTorch has (its own choice
"auto", flash, cuDNN, memory-efficient) and keeps the fastest; the sparse path in plain PyTorch;
and the SSA pair (both paths from the same q, k, v, the alignment loss, its backward). With
--authors-kernel DIR it also times the SSA authors' Triton kernel (`parallel_nsa` of their
hf_files/parallel.py, selection included) on the sparse path and in the pair: DIR holds their
parallel.py as native_sparse_attention/ops/parallel.py beside native-sparse-attention's
native_sparse_attention/ops/utils.py and flash-linear-attention's fla/ package (no code of
theirs is in this repository; scripts/authors_kernel.sh assembles DIR from checkouts of the
three); without it those columns say "not run". train --authors-kernel DIR makes their kernel
the model's sparse path (sparse and ssa modes) instead of the plain-PyTorch one; under
--compile their call stays outside the compiled graphs, which break around it.

attention and train take --compile: the same code under torch.compile (default mode), timed
after warm-up runs that absorb the compilation, whose seconds are reported apart ("compile_s":
the warm-up's time beyond that of as many timed runs). train compiles each decoder block (the
blocks share one compiled graph per path: regional compilation) and the head's loss; attention
compiles the path's functions (the sparse path's selection and attention; full attention is
SDPA's flash kernel either way, so --compile times the sparse path unless --paths says
otherwise). Their rows have impl "torch.compile". --case-timeout S ends a case (one training
mode of one config, one attention length) that runs longer than S seconds, compilation
included: like a case that runs out of memory or fails to compile, it is reported as failed
and the others go on.
"""
import argparse
import configparser
import gc
import importlib
import json
import math
import os
import re
import signal
import statistics
import sys
import time
import types
from contextlib import contextmanager, nullcontext

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
    phase, the L2 cache evicted (a read of twice its size, so it holds clean lines) before each
    run: as ssa-bench."""

    def __init__(self, warmup, repeats):
        self.warmup, self.repeats = warmup, repeats
        l2 = torch.cuda.get_device_properties(0).L2_cache_size
        self.evict = torch.zeros(max(2 * l2 // 4, 1), dtype=torch.float32, device="cuda")
        self.evict_sum = torch.zeros((), dtype=torch.float32, device="cuda")

    def phases(self, fns):
        for _ in range(self.warmup):
            for fn in fns:
                fn()
        marks = [[torch.cuda.Event(enable_timing=True) for _ in range(len(fns) + 1)]
                 for _ in range(self.repeats)]
        for run in marks:
            torch.sum(self.evict, dim=0, out=self.evict_sum)
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
    def __init__(self, path, compiled=False):
        self.path, self.compiled = path, compiled
        self.device = torch.cuda.get_device_name(0)

    def write(self, row):
        if self.path:
            row = dict(row, impl="torch.compile" if self.compiled else "torch", device=self.device,
                       torch=torch.__version__)
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")


class CaseTimeout(Exception):
    pass


@contextmanager
def time_limit(seconds):
    """Raises CaseTimeout in the block after `seconds` (0: no limit)."""
    def expire(signum, frame):
        raise CaseTimeout(f"timed out after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def short_reason(error):
    """The first line of an error that says what went wrong (torch.compile's first line names
    the backend)."""
    lines = [line.strip() for line in str(error).splitlines()
             if line.strip() and not line.startswith("backend=")]
    return lines[0][:300] if lines else type(error).__name__


def release_memory(compiled):
    """After a case: drops the compiled code (with --compile) and returns cached GPU memory."""
    if compiled:
        torch.compiler.reset()
    gc.collect()
    torch.cuda.empty_cache()


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


# --- attention: full (SDPA, flash backend) and sparse (docs/METHOD.md in plain PyTorch) ---

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


FLASH_GQA = None  # set by attention() and train() before any attention runs (or is compiled)
AUTHORS_KERNEL = None  # train --authors-kernel: their parallel_nsa as the model's sparse path


def causal_attention(q, k, v):
    """q [B, T, H, d], k and v [B, T, Hkv, d] -> [B, T, H, d], SDPA's flash kernel."""
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    if not FLASH_GQA:
        group = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=FLASH_GQA)
    return o.transpose(1, 2)


def select_blocks(q, k, block_size, top_k):
    """The block selection of docs/METHOD.md, i64 [B, T, Hkv, W], no gradient. q [B, T, H, d],
    k [B, T, Hkv, d], T a multiple of block_size. Block keys are the means of the blocks' keys;
    a query scores the complete blocks before its own by softmax(q · kbar / sqrt(d)) over them,
    summed over the query heads of the KV group, and keeps its own block and the best
    top_k - 1 (ties to the lower index). Rows of queries with fewer blocks end with later
    blocks, which attend_selected masks out."""
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


# SDPA's backends; "auto" lets PyTorch choose.
SDPA_BACKENDS = {"auto": None, "flash": SDPBackend.FLASH_ATTENTION,
                 "cudnn": SDPBackend.CUDNN_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION}


def sdpa_attention(q, k, v, backend):
    """q [B, T, H, d], k and v [B, T, Hkv, d] -> [B, T, H, d] through SDPA with `backend` (a
    name of SDPA_BACKENDS), enable_gqa where the backend takes it, else K/V repeated."""
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    context = sdpa_kernel(SDPA_BACKENDS[backend]) if SDPA_BACKENDS[backend] else nullcontext()
    with context:
        try:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        except RuntimeError:
            group = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return o.transpose(1, 2)


def load_authors_kernel(root):
    """The SSA authors' parallel_nsa from `root` (see the module docstring). The packages'
    __init__ files are skipped (they register whole models): modules with only a path (and
    fla's version string, which its utilities import) stand in."""
    with open(os.path.join(root, "fla", "__init__.py")) as f:
        version = re.search(r'__version__\s*=\s*"([^"]+)"', f.read())
    for name in ("fla", "fla.ops", "native_sparse_attention", "native_sparse_attention.ops"):
        module = types.ModuleType(name)
        module.__path__ = [os.path.join(root, *name.split("."))]
        module.__version__ = version.group(1) if version else "0"
        sys.modules[name] = module
    return importlib.import_module("native_sparse_attention.ops.parallel").parallel_nsa


@torch.compiler.disable
def authors_sparse_attention(parallel_nsa, q, k, v, block_size, top_k):
    """Their sparse path as their SSA model calls it: selection by their top-k kernel (over
    mean-pooled keys), attention over the selected blocks, the selection gate at 1. Left out of
    torch.compile (a graph break around it): their functions launch Triton kernels of their
    own, which dynamo would otherwise trace into, and tracing them takes minutes."""
    gate = torch.ones(q.shape[:3], device=q.device, dtype=q.dtype)
    o, _ = parallel_nsa(q=q, k=k, v=v, g_cmp=0, g_slc=gate, g_swa=0, block_size=block_size,
                        block_counts=top_k, window_size=0, head_first=False)
    return o


def alignment_loss(o_full, o_sparse):
    """SSA's per-layer alignment (beta 1): each term moves one of the two outputs."""
    return (F.smooth_l1_loss(o_full, o_sparse.detach()) +
            F.smooth_l1_loss(o_full.detach(), o_sparse))


def causal_pairs(t):
    return t * (t + 1) / 2


def sparse_pairs(t, block_size, top_k):
    """eval/bench/bench_formulas.h: Σ_t min(top_k − 1, o_t)·bs + (t − o_t·bs + 1)."""
    own = torch.arange(t, dtype=torch.float64) // block_size
    return float((torch.clamp(own, max=top_k - 1) * block_size + torch.arange(t) - own * block_size + 1).sum())


def init_flash_gqa():
    global FLASH_GQA
    FLASH_GQA = flash_has_gqa()


def path_functions(compiled):
    """(select, attend, full): the sparse selection, the attention over the selected blocks and
    full attention; with `compiled`, fresh torch.compile'd ones (static shapes: one compilation
    per length)."""
    fns = (select_blocks, attend_selected, causal_attention)
    if not compiled:
        return fns
    torch.compiler.reset()
    return tuple(torch.compile(fn, dynamic=False) for fn in fns)


def first_run_seconds(fns):
    start = time.perf_counter()
    for fn in fns:
        fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def timed_paths(timer, fns):
    """Median ms of each phase of `fns`, or None when it fails (no kernel for the shape, out of
    memory)."""
    try:
        return timer.phases(fns)
    except (RuntimeError, NotImplementedError):
        return None


def attention_case(args, timer, path, t, authors):
    """The row's measurements of one path at length t. Full: SDPA's fastest backend (every
    backend's total in "sdpa_ms"). Sparse and the SSA pair: the plain-PyTorch sparse path, and
    with `authors` (their parallel_nsa) their kernel in authors_* fields."""
    B, H, Hkv, d = args.batch, args.heads, args.kv_heads, args.head_dim
    select_fn, attend_fn, _ = path_functions(args.compile)
    q = randn(B, t, H, d, grad=True)
    k, v = randn(B, t, Hkv, d, grad=True), randn(B, t, Hkv, d, grad=True)
    dout = randn(B, t, H, d)
    state = {}

    def select():
        state["selected"] = select_fn(q, k, args.block_size, args.top_k)

    def sparse():
        return attend_fn(q, k, v, state["selected"], args.block_size)

    def authors_sparse():
        return authors_sparse_attention(authors, q, k, v, args.block_size, args.top_k)

    def run(output):  # forward into state, backward from it
        def forward():
            state["o"] = output()

        def backward():
            o = state.pop("o")
            if o.dim() == 0:
                torch.autograd.grad(o, (q, k, v))
            else:
                torch.autograd.grad(o, (q, k, v), dout)
        return forward, backward

    full_pairs, sparse_pairs_ = causal_pairs(t), sparse_pairs(t, args.block_size, args.top_k)
    pairs = B * {"full": full_pairs, "sparse": sparse_pairs_, "ssa": full_pairs + sparse_pairs_}[path]
    row, fns, first_s = dict(pairs=pairs), [], 0.0
    if path == "full":
        totals = {}
        for name in SDPA_BACKENDS:
            ms = timed_paths(timer, list(run(lambda name=name: sdpa_attention(q, k, v, name))))
            totals[name] = sum(ms) if ms else None
            if ms and (not fns or sum(ms) < sum(fns)):
                fns, row["variant"] = ms, f"sdpa {name}"
        row["sdpa_ms"] = totals
        if not fns:
            raise RuntimeError("no SDPA backend ran")
        s_ms, (f_ms, b_ms) = 0.0, fns
    else:
        if path == "ssa":
            row["variant"] = "sdpa auto"
        output = sparse if path == "sparse" else (
            lambda: alignment_loss(sdpa_attention(q, k, v, "auto"), sparse()))
        phases = [select, *run(output)]
        first_s = first_run_seconds(phases) if args.compile else 0.0
        s_ms, f_ms, b_ms = timer.phases(phases)
        if authors:
            theirs = authors_sparse if path == "sparse" else (
                lambda: alignment_loss(sdpa_attention(q, k, v, "auto"), authors_sparse()))
            ms = timed_paths(timer, list(run(theirs)))
            if ms:
                row.update(authors_fwd_ms=ms[0], authors_bwd_ms=ms[1], authors_ms=sum(ms))
            else:
                row["authors_error"] = "their kernel failed on this shape"
    flops, ms = 4 * d * H * pairs, s_ms + f_ms + b_ms
    row.update(select_ms=s_ms, fwd_ms=f_ms, bwd_ms=b_ms, ms=ms, fwd_tflops=flops / f_ms / 1e9,
               bwd_tflops=2.5 * flops / b_ms / 1e9, tflops=3.5 * flops / ms / 1e9)
    if args.compile:
        row.update(compile=True, compile_s=max(first_s - ms / 1e3, 0.0))
    return row


def attention(args):
    timer, out = Timer(args.warmup, args.repeats), Output(args.json, args.compile)
    init_flash_gqa()
    authors = load_authors_kernel(args.authors_kernel) if args.authors_kernel else None
    B, H, Hkv, d = args.batch, args.heads, args.kv_heads, args.head_dim
    paths = args.paths or ("sparse" if args.compile else "full,sparse,ssa")
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}"
          f"{', torch.compile' if args.compile else ''}\n"
          f"bf16, batch {B}, {H} heads, {Hkv} KV heads, head_dim {d}; sparse: blocks of "
          f"{args.block_size}, top-{args.top_k}; the authors' kernel: "
          f"{args.authors_kernel or 'not run'}")
    print(f"{'path':<7} {'T':>6} {'select ms':>10} {'fwd ms':>10} {'bwd ms':>10} {'total ms':>10} "
          f"{'fwd TF/s':>9} {'bwd TF/s':>9} {'tot TF/s':>9} {'authors ms':>10} {'variant':<16}"
          + (f" {'compile s':>9}" if args.compile else ""))
    for path in paths.split(","):
        for t in (int(x) for x in args.t.split(",")):
            row = dict(bench="attention", case=f"{path} T={t} B={B} Hkv={Hkv}", path=path, seq_len=t, batch=B,
                       heads=H, kv_heads=Hkv, head_dim=d)
            try:
                with time_limit(args.case_timeout):
                    row.update(attention_case(args, timer, path, t, authors))
                authors_ms = f"{row['authors_ms']:>10.3f}" if "authors_ms" in row else f"{'-':>10}"
                print(f"{path:<7} {t:>6} {row['select_ms']:>10.3f} {row['fwd_ms']:>10.3f} "
                      f"{row['bwd_ms']:>10.3f} {row['ms']:>10.3f} {row['fwd_tflops']:>9.1f} "
                      f"{row['bwd_tflops']:>9.1f} {row['tflops']:>9.1f} {authors_ms} "
                      f"{row.get('variant', ''):<16}"
                      + (f" {row['compile_s']:>9.1f}" if args.compile else ""), flush=True)
                if "sdpa_ms" in row:
                    print("        SDPA backends, total ms: " + ", ".join(
                        f"{name} {'failed' if ms is None else f'{ms:.3f}'}"
                        for name, ms in row["sdpa_ms"].items()), flush=True)
            except Exception as error:  # out of memory, no kernel, a failed compile, the time limit
                row["error"] = short_reason(error)
                print(f"{path:<7} {t:>6} failed: {row['error']}", flush=True)
            out.write(row)
            release_memory(args.compile)


# --- train: a Llama-style decoder with the sigmoid head gate (docs/METHOD.md), autocast bf16 ---

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
            if AUTHORS_KERNEL:
                return authors_sparse_attention(AUTHORS_KERNEL, q, k, v, c.block_size, c.top_k) * gate
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

    def forward(self, x, cos, sin, path, align):
        """The block's output, and with align the layer's alignment loss (else None)."""
        attended, alignment = self.attention(x, cos, sin, path, align)
        x = x + attended
        return x + self.ffn(x), alignment


def head_loss(x, final_norm, table, targets):
    """Cross-entropy of the tied head's logits."""
    logits = F.linear(final_norm(x), table)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


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
        self.head_loss = head_loss

    def compile_regions(self):
        """torch.compile (default mode) on each block, which share one compiled graph per path
        (PyTorch's regional compilation), and on the head's loss."""
        for layer in self.layers:
            layer.compile()
        self.head_loss = torch.compile(head_loss)

    def loss(self, ids, targets, path, align):
        x = self.embedding(ids)
        alignments = []
        for layer in self.layers:
            x, alignment = layer(x, self.cos, self.sin, path, align)
            if alignment is not None:
                alignments.append(alignment)
        loss = self.head_loss(x, self.final_norm, self.embedding.weight, targets)
        if align:
            loss = loss + self.c.align_weight * torch.stack(alignments).mean()
        return loss


def train_mode(c, mode, warmup, steps, compiled, weights="autocast", whole_model=False,
               breakdown=False):
    """Seconds of each step (the warm-up's first), the last loss, the peak GiB, and with
    breakdown one more step's phases and kernel totals (step_breakdown). weights:
    "autocast" (fp32 weights and AdamW state, bf16 compute under autocast) or "bf16" (every
    weight and moment in bf16, no autocast); whole_model: torch.compile on the whole loss
    instead of per block."""
    torch.manual_seed(1337)
    with torch.device("cuda"):
        model = Decoder(c)
    if weights == "bf16":
        model = model.to(torch.bfloat16)
    loss_of = model.loss
    if compiled and whole_model:
        loss_of = torch.compile(model.loss)
    elif compiled:
        model.compile_regions()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": c.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps, fused=True)
    ids = torch.randint(0, c.vocab, (c.batch, c.seq_len), device="cuda")
    targets = torch.randint(0, c.vocab, (c.batch, c.seq_len), device="cuda")
    def run(step, marks=None):
        """One step; with marks, a CUDA event at each boundary of PHASES."""
        mark = (lambda i: marks[i].record()) if marks else (lambda i: None)
        path = "sparse" if mode == "sparse" or (mode == "ssa" and step % 2 == 1) else "full"
        mark(0)
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=weights == "autocast"):
            loss = loss_of(ids, targets, path, mode == "ssa")
        mark(1)
        loss.backward()
        mark(2)
        torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
        opt.step()
        mark(3)
        value = loss.item()
        torch.cuda.synchronize()
        return value

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    seconds, loss_value = [], 0.0
    for step in range(warmup + steps):
        start = time.perf_counter()
        loss_value = run(step)
        seconds.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30
    report = step_breakdown(lambda marks: run(warmup + steps, marks)) if breakdown else None
    return seconds, loss_value, peak, report


PHASES = ("forward", "backward", "optimizer")


def step_breakdown(run):
    """ssa-bench train --breakdown's measure of one step: each phase's GPU time between CUDA
    events, and the part of it when no kernel, copy or memset ran (the profiler's CUDA activity
    only, so that it adds no work on the host); then the GPU time by kernel name, most first.
    The step is the profiler's first (warming it up with a profiler schedule left the recorded
    step without CUDA activity)."""
    marks = [torch.cuda.Event(enable_timing=True) for _ in range(len(PHASES) + 1)]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        run(marks)
    cuda_events = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    spans = sorted((e.time_range.start, e.time_range.end) for e in cuda_events)
    by_name = {}
    for e in cuda_events:
        total = by_name.setdefault(e.name[:90], [0.0, 0])
        total[0] += (e.time_range.end - e.time_range.start) / 1e3
        total[1] += 1
    busy, origin = [], spans[0][0] if spans else 0
    for start, end in spans:  # their union, in ms from the first start
        start, end = (start - origin) / 1e3, (end - origin) / 1e3
        if busy and start <= busy[-1][1]:
            busy[-1][1] = max(busy[-1][1], end)
        else:
            busy.append([start, end])
    phases = []
    for p, name in enumerate(PHASES):
        begin, end = marks[0].elapsed_time(marks[p]), marks[0].elapsed_time(marks[p + 1])
        kernels = sum(max(0.0, min(e, end) - max(s, begin)) for s, e in busy)
        phases.append(dict(name=name, gpu_ms=end - begin, idle_ms=end - begin - kernels))
    names = sorted(by_name.items(), key=lambda item: -item[1][0])[:KERNELS_SHOWN]
    return phases, names


KERNELS_SHOWN = 15


def breakdown_lines(phases, names):
    """The lines ssa-bench train --breakdown prints (without the idle gaps)."""
    total, idle = sum(p["gpu_ms"] for p in phases), sum(p["idle_ms"] for p in phases)
    parts = " | ".join(f"{p['name']} {p['gpu_ms']:.2f} ms (idle {p['idle_ms']:.2f})" for p in phases)
    lines = [f"breakdown (GPU ms; idle: no kernel, copy or memset running): {parts} | idle in all "
             f"{idle:.2f} ms of {total:.2f} ({100 * idle / total:.1f}%)",
             "GPU time by kernel (ms, launches, share of the busy time):"]
    lines += [f"  {ms:8.3f} {count:5d} {100 * ms / (total - idle):5.1f}%  {name}"
              for name, (ms, count) in names]
    return "\n".join(lines)


def train_case(c, mode, args):
    """The row's measurements of one mode: tokens/s over the timed steps, and with --compile
    the warm-up's seconds beyond as many median steps (the compilation)."""
    seconds, loss, peak, report = train_mode(c, mode, args.warmup, args.steps, args.compile,
                                             args.weights, args.whole_model, args.breakdown)
    warm, timed = seconds[:args.warmup], seconds[args.warmup:]
    tokens_per_s = c.tokens * len(timed) / sum(timed)
    step_s = statistics.median(timed)
    row = dict(flops_per_token=c.flops_per_token(), step_ms=1e3 * step_s, tokens_per_s=tokens_per_s,
               mfu=tokens_per_s * c.flops_per_token() / PEAK_FLOPS, peak_gib=peak, loss=loss)
    if args.compile:
        row.update(compile=True, compile_s=max(sum(warm) - len(warm) * step_s, 0.0))
    if report:
        phases, names = report
        for phase in phases:
            row.update({f"{phase['name']}_ms": phase["gpu_ms"],
                        f"{phase['name']}_idle_ms": phase["idle_ms"]})
        row["breakdown"] = breakdown_lines(phases, names)
    return row


def train(args):
    global AUTHORS_KERNEL
    configs, out = [BenchConfig(p) for p in args.configs.split(",")], Output(args.json, args.compile)
    init_flash_gqa()
    AUTHORS_KERNEL = load_authors_kernel(args.authors_kernel) if args.authors_kernel else None
    sparse_path = "the authors' kernel" if AUTHORS_KERNEL else "plain PyTorch"
    compiled = f", torch.compile ({'whole model' if args.whole_model else 'per block'})"
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}"
          f"{compiled if args.compile else ''}, weights {args.weights}, sparse path {sparse_path}")
    for c in configs:
        for mode in args.modes.split(","):
            row = dict(bench="train", case=f"{c.name} {mode}", config=c.name, mode=mode,
                       batch=c.batch, seq_len=c.seq_len, steps=args.steps, weights=args.weights,
                       whole_model=args.whole_model, sparse_path=sparse_path)
            try:
                with time_limit(args.case_timeout):
                    row.update(train_case(c, mode, args))
                compile_s = f" | compile {row['compile_s']:.0f} s" if args.compile else ""
                print(f"{c.name} {mode}: step {row['step_ms']:.1f} ms (median) | "
                      f"{row['tokens_per_s']:.0f} tokens/s | MFU {100 * row['mfu']:.1f}% | peak memory "
                      f"{row['peak_gib']:.2f} GiB | last loss {row['loss']:.4f}{compile_s}", flush=True)
                if "breakdown" in row:
                    print(row.pop("breakdown"), flush=True)
            except Exception as error:  # out of memory, no kernel, a failed compile, the time limit
                row["error"] = short_reason(error)
                print(f"{c.name} {mode}: failed: {row['error']}", flush=True)
            out.write(row)
            release_memory(args.compile)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("kernels", "attention", "train"):
        p = sub.add_parser(name)
        p.add_argument("--json", default="", help="append one JSON object per row")
        p.add_argument("--warmup", type=int, default=2 if name == "train" else 3)
        if name != "train":
            p.add_argument("--repeats", type=int, default=10)
        if name != "kernels":
            p.add_argument("--compile", action="store_true", help="under torch.compile")
            p.add_argument("--case-timeout", type=int, default=0, help="seconds a case may take (0: any)")
        if name != "attention":
            p.add_argument("--configs", default=DEFAULT_CONFIGS)
    a = sub.choices["attention"]
    a.add_argument("--t", default="4096,8192,16384,32768")
    a.add_argument("--paths", default="", help="default full,sparse,ssa; with --compile sparse")
    a.add_argument("--authors-kernel", default="",
                   help="a directory with the SSA authors' parallel_nsa (module docstring)")
    for flag, default in (("--batch", 1), ("--heads", 16), ("--kv-heads", 1), ("--head-dim", 64),
                          ("--block-size", 16), ("--top-k", 16)):
        a.add_argument(flag, type=int, default=default)
    t = sub.choices["train"]
    t.add_argument("--modes", default="full,sparse,ssa")
    t.add_argument("--weights", choices=["autocast", "bf16"], default="autocast",
                   help="autocast: fp32 weights, bf16 compute; bf16: every weight and moment in bf16")
    t.add_argument("--whole-model", action="store_true",
                   help="with --compile: compile the whole loss, not each block")
    t.add_argument("--steps", type=int, default=6)
    t.add_argument("--breakdown", action="store_true",
                   help="time one more step's phases on the GPU, as ssa-bench train --breakdown")
    t.add_argument("--authors-kernel", default="",
                   help="a directory with the SSA authors' parallel_nsa (module docstring): the "
                        "sparse and ssa modes' sparse path")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_torch: no CUDA GPU is visible to PyTorch")
    {"kernels": kernels, "attention": attention, "train": train}[args.command](args)


if __name__ == "__main__":
    main()
