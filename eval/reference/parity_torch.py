#!/usr/bin/env python3
"""Gradient parity: our loss and every parameter's gradient on one batch (written by
`ssa-eval grads`) against PyTorch autograd on the same model, weights and batch. Run from the
repository root (scripts/parity.sh runs every mode and precision):

  ssa-eval grads --checkpoint CKPT --out GRADS.h5 [--attention full|sparse|ssa] [--device D] [--dtype P]
  python3 eval/reference/parity_torch.py CKPT GRADS.h5 [--dtype float64|float32|bfloat16] [--device cpu|cuda]

--dtype and --device default to the precision and device GRADS.h5 was computed in. The model
is bench_torch.py's Decoder (sigmoid head gate, rotate-half RoPE, tied head, the alignment
loss of docs/METHOD.md) with the checkpoint's weights, read with h5py; the batch, attention mode,
top_k, block size and alignment weights are GRADS.h5's. bench_torch's two attention functions
are written for its bf16 benchmark (the flash kernel, which takes neither fp32 nor fp64; an
fp32 softmax), so this script swaps in, at its module level, SDPA with its own choice of kernel
for full attention and a plain masked-SDPA version of the sparse path (bench_torch's block
selection, then attention over the selected blocks' keys), and RoPE tables in fp64 rounded to
the model's dtype, as ours.

Per tensor it prints max |ours − torch|, max |torch| and their ratio, the error measure (an
elementwise relative error means nothing where a gradient entry is near zero), and fails a
tensor whose error exceeds the tolerance of the precision:
  float64   1e-10  both sides compute in fp64 (unit roundoff 1.1e-16); they differ only in the
                   order of sums (up to a few thousand terms) through a few layers, which costs
                   about 1e-14; any mistake in a formula shows at 1e-6 or more.
  float32   1e-4   unit roundoff 6e-8; different kernels (cuBLAS vs ours, SDPA vs our flash
                   kernels) sum in different orders over up to d_model · T terms, forward and
                   backward through every layer: ~1e-6 expected, 1e-4 leaves two decades.
  bfloat16  3e-2   unit roundoff 3.9e-3: every matmul input is rounded to bf16 on both sides,
                   but at different places (autocast vs our compute copy, RoPE and the selection
                   in different precisions), so the two differ by several roundoffs.
Under bfloat16 the two implementations round differently, so their difference says how far
apart two bf16 computations are, not whether either is right. The script therefore also runs
PyTorch in float64 as the reference and prints each side's error against it; a bf16 tensor
passes when ours is within 3e-2 of PyTorch's bf16 result or no further than twice PyTorch's own
bf16 error from the float64 reference. Exits 1 if any tensor or loss term fails.
"""
import argparse
import os
import re
import sys
import tempfile

import h5py
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
import bench_torch  # noqa: E402  (the reference model, eval/bench/bench_torch.py)

DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16}
OUR_DTYPES = {"f64": "float64", "f32": "float32", "bf16": "bfloat16"}
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 3e-2}
BF16_REFERENCE_FACTOR = 2.0
# ssa-eval grads' --attention: (the path passed on, whether the alignment loss is added)
PATHS = {"full": ("full", False), "sparse": ("sparse", False), "ssa": ("full", True)}


# --- the reference attention and RoPE, dtype- and device-general ---

def sdpa_attention(q, k, v, mask=None):
    """q [B, T, H, d], k and v [B, T, Hkv, d] -> [B, T, H, d]: SDPA, causal or with a boolean
    mask [B, H, T, T] (True: attend), K/V repeated for the GQA group."""
    group = q.shape[2] // k.shape[2]
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
    return o.transpose(1, 2)


def causal_attention(q, k, v):
    return sdpa_attention(q, k, v)


def block_sparse_attention(q, k, v, block_size, top_k):
    """The sparse path (docs/METHOD.md): bench_torch's block selection, then each query attends
    to the keys of its selected blocks (causal inside its own) through a dense mask."""
    B, T, H, _ = q.shape
    Hkv, nb = k.shape[2], T // block_size
    selected = bench_torch.select_blocks(q, k, block_size, top_k)  # [B, T, Hkv, W]
    chosen = torch.zeros(B, T, Hkv, nb, dtype=torch.bool, device=q.device)
    chosen.scatter_(-1, selected, True)
    pos = torch.arange(T, device=q.device)
    allowed = chosen[..., pos // block_size] & (pos[None, :] <= pos[:, None])[None, :, None, :]
    mask = allowed.repeat_interleave(H // Hkv, dim=2).transpose(1, 2)  # [B, H, T, T]
    return sdpa_attention(q, k, v, mask)


def rope_tables(seq_len, head_dim, theta):
    """cos and sin [T, head_dim] in fp64 (bench_torch's layout); the model's .to(dtype) rounds
    them to its dtype, as our tables are computed in double and stored in the model's dtype."""
    inv = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.arange(seq_len, dtype=torch.float64)[:, None] * inv[None, :]
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


bench_torch.causal_attention = causal_attention
bench_torch.block_sparse_attention = block_sparse_attention
bench_torch.rope_tables = rope_tables


# --- our files ---

def read_grads(path):
    """(settings, inputs, targets, {parameter name: gradient}) of an `ssa-eval grads` file."""
    with h5py.File(path, "r") as f:
        settings = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        if "grads" not in f or "batch" not in f:
            raise SystemExit(f"parity_torch: {path} is not an ssa-eval grads file "
                             "(no grads/ or batch/)")
        grads = {name: torch.from_numpy(f["grads"][name][()]) for name in f["grads"]}
        inputs = torch.from_numpy(f["batch/inputs"][()]).long()
        targets = torch.from_numpy(f["batch/targets"][()]).long()
    return settings, inputs, targets, grads


def read_checkpoint(path):
    """(config text, {parameter name: fp32 weights}) of one of our checkpoints."""
    with h5py.File(path, "r") as f:
        config = f.attrs["config"]
        params = {name: torch.from_numpy(f["params"][name][()]) for name in f["params"]}
    return config.decode() if isinstance(config, bytes) else config, params


def reference_config(config_text, settings):
    """bench_torch's config from the checkpoint's stored ssa-train config, with the batch's
    length and the attention settings of the grads file."""
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
        f.write(config_text)
        f.flush()
        c = bench_torch.BenchConfig(f.name)
    c.seq_len = int(settings["seq_len"])
    c.block_size, c.top_k = int(settings["block_size"]), int(settings["top_k"])
    c.align_weight, c.align_beta = float(settings["align_weight"]), float(settings["align_beta"])
    if c.seq_len % c.block_size:
        raise SystemExit(f"parity_torch: the reference's sparse path needs the length "
                         f"({c.seq_len}) to be a multiple of the block size ({c.block_size})")
    return c


def torch_name(name):
    """Our parameter name -> bench_torch.Decoder's: layers.3.attn.wq -> layers.3.wq.weight,
    layers.3.ffn.w1 -> layers.3.w1.weight, layers.3.attn_norm -> layers.3.attn_norm.weight,
    embedding -> embedding.weight (also the tied head). Both store weights [out, in]."""
    return re.sub(r"^layers\.(\d+)\.(?:attn|ffn)\.", r"layers.\1.", name) + ".weight"


def reference_model(c, params, device, dtype):
    """bench_torch.Decoder holding our weights, every parameter of each side matched once."""
    model = bench_torch.Decoder(c)
    theirs = dict(model.named_parameters())
    mapped = {torch_name(name): name for name in params}
    missing = sorted(set(theirs) - set(mapped))
    extra = sorted(mapped[n] for n in set(mapped) - set(theirs))
    if missing or extra:
        raise SystemExit("parity_torch: the checkpoint's parameters do not match the reference "
                         f"model (gated attention, tied head): it lacks {missing}, has {extra}")
    with torch.no_grad():
        for name, param in theirs.items():
            value = params[mapped[name]]
            if value.shape != param.shape:
                raise SystemExit(f"parity_torch: {mapped[name]} has shape {list(value.shape)}, "
                                 f"the reference expects {list(param.shape)}")
            param.copy_(value)
    model.to(device=device, dtype=dtype)
    captured = []
    for layer in model.layers:  # records each layer's alignment loss: the loss's two parts
        attention = layer.attention

        def recorded(*args, attention=attention):
            out, alignment = attention(*args)
            if alignment is not None:
                captured.append(alignment.detach())
            return out, alignment

        layer.attention = recorded
    model.captured_alignments, model.our_names = captured, mapped
    return model


def run_reference(model, inputs, targets, attention, autocast):
    """PyTorch's loss, cross-entropy, mean alignment and {our name: gradient}."""
    path, align = PATHS[attention]
    device = model.embedding.weight.device
    model.zero_grad(set_to_none=True)
    model.captured_alignments.clear()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        loss = model.loss(inputs.to(device), targets.to(device), path, align)
    loss.backward()
    alignment = torch.stack(model.captured_alignments).double().mean().item() if align else 0.0
    scalars = {"loss": loss.item(), "cross_entropy": loss.item() - model.c.align_weight * alignment,
               "alignment": alignment}
    grads = {model.our_names[name]: param.grad.detach().double().cpu()
             for name, param in model.named_parameters()}
    return scalars, grads


# --- comparison ---

def error(ours, theirs):
    """max |ours − theirs| / max |theirs| (the absolute error where theirs is all zeros)."""
    diff = (ours - theirs).abs().max().item()
    scale = theirs.abs().max().item()
    return diff, scale, diff / scale if scale > 0 else diff


def compare(name, ours, theirs, tolerance, reference=None):
    """One row; `reference` (bf16 only): the float64 result both are measured against."""
    ours, theirs = (torch.as_tensor(x, dtype=torch.float64) for x in (ours, theirs))
    diff, scale, rel = error(ours, theirs)
    row = dict(name=name, shape=list(theirs.shape), diff=diff, scale=scale, rel=rel,
               ok=rel <= tolerance)
    if reference is not None:
        reference = torch.as_tensor(reference, dtype=torch.float64)
        row["ours_ref"], row["torch_ref"] = error(ours, reference)[2], error(theirs, reference)[2]
        row["ok"] = row["ok"] or row["ours_ref"] <= BF16_REFERENCE_FACTOR * row["torch_ref"]
    return row


def print_rows(rows, bf16):
    head = (f"{'tensor':<24} {'shape':<12} {'max|ours-torch|':>15} {'max|torch|':>11} "
            f"{'rel.error':>10}")
    if bf16:
        head += f" {'ours vs f64':>11} {'torch vs f64':>12}"
    print(head + "  result")
    for r in rows:
        line = (f"{r['name']:<24} {'x'.join(map(str, r['shape'])) or '-':<12} {r['diff']:>15.3e} "
                f"{r['scale']:>11.3e} {r['rel']:>10.3e}")
        if bf16:
            line += f" {r['ours_ref']:>11.3e} {r['torch_ref']:>12.3e}"
        print(line + ("  ok" if r["ok"] else "  FAIL"))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("grads")
    parser.add_argument("--dtype", choices=sorted(DTYPES), help="default: the grads file's")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: the grads file's")
    args = parser.parse_args()
    for path in (args.checkpoint, args.grads):
        if not os.path.isfile(path):
            raise SystemExit(f"parity_torch: {path} does not exist")
    settings, inputs, targets, our_grads = read_grads(args.grads)
    config_text, params = read_checkpoint(args.checkpoint)
    dtype = DTYPES[args.dtype or OUR_DTYPES[settings["dtype"]]]
    device = torch.device(args.device or settings["device"])
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("parity_torch: --device cuda, but PyTorch sees no CUDA GPU")
    torch.set_float32_matmul_precision("highest")  # no TF32: fp32 means fp32
    c = reference_config(config_text, settings)
    attention, bf16 = settings["attention"], dtype == torch.bfloat16

    model = reference_model(c, params, device, torch.float32 if bf16 else dtype)
    scalars, grads = run_reference(model, inputs, targets, attention, autocast=bf16)
    reference_scalars, reference_grads = {}, {}
    if bf16:
        model64 = reference_model(c, params, device, torch.float64)
        reference_scalars, reference_grads = run_reference(model64, inputs, targets, attention,
                                                           autocast=False)

    tolerance = TOLERANCE[dtype]
    print(f"parity: ssa-eval grads ({attention} attention, {settings['dtype']} on "
          f"{settings['device']}, batch {inputs.shape[0]} x {inputs.shape[1]}, top-{c.top_k} "
          f"blocks of {c.block_size}) vs "
          f"PyTorch {torch.__version__} {str(dtype).removeprefix('torch.')}"
          f"{' autocast' if bf16 else ''} on {device.type}; tolerance {tolerance:g} on "
          f"max|ours - torch| / max|torch|")
    rows = [compare(key, settings[key], scalars[key], tolerance, reference_scalars.get(key))
            for key in ("loss", "cross_entropy", "alignment")]
    if set(our_grads) != set(grads):
        raise SystemExit(f"parity_torch: gradients of {sorted(set(our_grads) ^ set(grads))} are on "
                         "one side only")
    rows += [compare(f"grad {name}", our_grads[name], grads[name], tolerance,
                     reference_grads.get(name)) for name in our_grads]
    print_rows(rows, bf16)
    failed = [r["name"] for r in rows if not r["ok"]]
    worst = max(rows, key=lambda r: r["rel"])
    print(f"max rel.error {worst['rel']:.3e} ({worst['name']}); "
          + (f"FAILED: {', '.join(failed)}" if failed else f"all {len(rows)} within tolerance"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
