#!/usr/bin/env python3
"""Puts ssa-bench's and bench_torch.py's JSON lines side by side: the Markdown tables of
docs/PERF.md. Rows pair up by their (bench, case) fields; "speed" is torch time / ssa time
(above 1: ssa is faster), "vs eager" against PyTorch eager (TORCH.jsonl), "vs compiled" against
torch.compile (COMPILED.jsonl, bench_torch.py's --compile rows). Standard library only.

  python3 eval/bench/compare.py SSA.jsonl TORCH.jsonl [COMPILED.jsonl] > tables.md
"""
import json
import sys


def read(path):
    rows = {}
    try:
        with open(path) as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    rows[(row["bench"], row["case"])] = row
    except FileNotFoundError:
        print(f"compare: {path} does not exist; its columns stay empty", file=sys.stderr)
    return rows


def value(row, key, spec):
    if row is None:
        return "-"
    if "error" in row:
        return "unavailable" if row.get("impl") == "ssa" else "failed"
    return format(row[key], spec) if key in row else "-"


def speed(ours, theirs, key="ms", higher_is_faster=False):
    """theirs[key] / ours["ms"-like key]: above 1, ssa is faster (tokens/s: the inverse)."""
    if not ours or not theirs or "error" in ours or "error" in theirs or key not in theirs:
        return "-"
    mine = ours[key] if key in ours else ours["ms"]
    ratio = mine / theirs[key] if higher_is_faster else theirs[key] / mine
    return f"{ratio:.2f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def cases(bench, *sides):
    """Per case of `bench`, in the order first met, its row on each side (None where missing)."""
    keys = list(dict.fromkeys(k for side in sides for k in side if k[0] == bench))
    return [tuple(side.get(k) for side in sides) for k in keys]


def gemm_table(ssa, torch):
    rows = []
    for ours, theirs in cases("gemm", ssa, torch):
        any_row = ours or theirs
        config, pas, mnk = any_row["case"].split(" ")
        rows.append([config, any_row["names"], pas, mnk.replace("x", "×"), value(ours, "tflops", ".1f"),
                     value(theirs, "tflops", ".1f"), speed(ours, theirs)])
    return table(["config", "weights", "pass", "m×n×k", "ssa TFLOP/s", "torch TFLOP/s", "speed"], rows)


def op_table(ssa, torch):
    rows = []
    for ours, theirs in cases("op", ssa, torch):
        any_row = ours or theirs
        share = lambda r: "-" if not r or "error" in r or "copy_share" not in r else f"{100 * r['copy_share']:.0f}%"
        rows.append([any_row["case"], f"{any_row['bytes'] / 1e6:.1f}", value(ours, "ms", ".3f"),
                     value(ours, "gbps", ".0f"), share(ours), value(theirs, "ms", ".3f"),
                     value(theirs, "gbps", ".0f"), share(theirs), speed(ours, theirs)])
    return table(["kernel", "MB moved", "ssa ms", "ssa GB/s", "of copy", "torch ms", "torch GB/s",
                  "of copy", "speed"], rows)


def attention_table(ssa, torch, compiled):
    """Full: PyTorch's column is SDPA's fastest backend (named). Sparse and the SSA pair:
    PyTorch's plain sparse path, and the SSA authors' Triton kernel where bench_torch.py ran it
    (--authors-kernel)."""
    rows = []
    for ours, eager, comp in cases("attention", ssa, torch, compiled):
        any_row = ours or eager or comp
        selects = any_row["path"] != "full"
        select = lambda r: value(r, "select_ms", ".2f") if selects else "-"
        side = lambda r: [select(r), value(r, "fwd_tflops", ".0f"), value(r, "bwd_tflops", ".0f"),
                          value(r, "ms", ".2f")]
        variant = eager.get("variant", "-") if eager and "error" not in eager else "-"
        authors = "not run" if not eager or "authors_ms" not in eager else f"{eager['authors_ms']:.2f}"
        rows.append([any_row["path"], any_row["seq_len"], any_row["batch"], any_row["kv_heads"]] + side(ours) + side(eager) + [variant] +
                    [select(comp), value(comp, "ms", ".2f"), authors, speed(ours, eager),
                     speed(ours, comp), speed(ours, eager, "authors_ms") if authors != "not run" else "-"])
    return table(["path", "T", "B", "KV heads", "ssa select ms", "ssa fwd TFLOP/s", "ssa bwd TFLOP/s", "ssa total ms",
                  "eager select ms", "eager fwd TFLOP/s", "eager bwd TFLOP/s", "eager total ms",
                  "eager variant", "compiled select ms", "compiled total ms", "authors' Triton ms",
                  "speed vs eager", "speed vs compiled", "speed vs authors"], rows)


def train_table(ssa, torch, compiled):
    rows = []
    for ours, eager, comp in cases("train", ssa, torch, compiled):
        any_row = ours or eager or comp
        mfu = lambda r: "-" if not r or "error" in r else f"{100 * r['mfu']:.1f}%"
        tokens = lambda r: value(r, "tokens_per_s", ".0f")
        peak = lambda r: value(r, "peak_gib", ".1f")
        faster = lambda r: speed(ours, r, "tokens_per_s", higher_is_faster=True)
        rows.append([any_row["config"], any_row["mode"], tokens(ours), mfu(ours), peak(ours),
                     tokens(eager), peak(eager), tokens(comp), peak(comp), value(comp, "compile_s", ".0f"),
                     faster(eager), faster(comp)])
    return table(["config", "mode", "ssa tokens/s", "ssa MFU", "ssa peak GiB", "eager tokens/s",
                  "eager peak GiB", "compiled tokens/s", "compiled peak GiB", "compile s",
                  "speed vs eager", "speed vs compiled"], rows)


def errors(*sides):
    short = lambda error: ". ".join(error.split(". ")[:2]).rstrip(".") + "."  # two sentences
    lines = [f"- {r['impl']} {r['bench']} {r['case']}: {short(r['error'])}"
             for rows in sides for r in rows.values() if "error" in r]
    return "\n".join(lines) + "\n" if lines else ""


def main():
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    ssa, torch = read(sys.argv[1]), read(sys.argv[2])
    compiled = read(sys.argv[3]) if len(sys.argv) == 4 else {}
    sections = [("Training step", lambda: train_table(ssa, torch, compiled)),
                ("Attention", lambda: attention_table(ssa, torch, compiled)),
                ("GEMMs (cuBLAS vs torch.matmul, bf16)", lambda: gemm_table(ssa, torch)),
                ("Fused kernels", lambda: op_table(ssa, torch))]
    for title, make in sections:
        print(f"### {title}\n\n{make()}")
    failed = errors(ssa, torch, compiled)
    if failed:
        print(f"### Unavailable or failed rows\n\n{failed}")


if __name__ == "__main__":
    main()
