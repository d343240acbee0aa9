#!/usr/bin/env python3
"""Puts ssa-bench's and bench_torch.py's JSON lines side by side: the Markdown tables of
docs/PERF.md. Rows pair up by their (bench, case) fields; "speed" is torch time / ssa time
(above 1: ssa is faster). Standard library only.

  python3 eval/reference/compare.py SSA.jsonl TORCH.jsonl > tables.md
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
        return "failed" if row.get("impl") == "torch" else "unavailable"
    return format(row[key], spec) if key in row else "-"


def speed(ours, theirs, key="ms", higher_is_faster=False):
    if not ours or not theirs or "error" in ours or "error" in theirs:
        return "-"
    ratio = ours[key] / theirs[key] if higher_is_faster else theirs[key] / ours[key]
    return f"{ratio:.2f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def cases(ssa, torch, bench):
    keys = [k for k in ssa if k[0] == bench] + [k for k in torch if k[0] == bench and k not in ssa]
    return [(ssa.get(k), torch.get(k)) for k in keys]


def gemm_table(ssa, torch):
    rows = []
    for ours, theirs in cases(ssa, torch, "gemm"):
        any_row = ours or theirs
        config, pas, mnk = any_row["case"].split(" ")
        rows.append([config, any_row["names"], pas, mnk.replace("x", "×"), value(ours, "tflops", ".1f"),
                     value(theirs, "tflops", ".1f"), speed(ours, theirs)])
    return table(["config", "weights", "pass", "m×n×k", "ssa TFLOP/s", "torch TFLOP/s", "speed"], rows)


def op_table(ssa, torch):
    rows = []
    for ours, theirs in cases(ssa, torch, "op"):
        any_row = ours or theirs
        share = lambda r: "-" if not r or "error" in r or "copy_share" not in r else f"{100 * r['copy_share']:.0f}%"
        rows.append([any_row["case"], f"{any_row['bytes'] / 1e6:.1f}", value(ours, "ms", ".3f"),
                     value(ours, "gbps", ".0f"), share(ours), value(theirs, "ms", ".3f"),
                     value(theirs, "gbps", ".0f"), share(theirs), speed(ours, theirs)])
    return table(["kernel", "MB moved", "ssa ms", "ssa GB/s", "of copy", "torch ms", "torch GB/s",
                  "of copy", "speed"], rows)


def attention_table(ssa, torch):
    rows = []
    for ours, theirs in cases(ssa, torch, "attention"):
        any_row = ours or theirs
        sparse = any_row["path"] == "sparse"
        side = lambda r: [value(r, "select_ms", ".2f") if sparse else "-", value(r, "fwd_tflops", ".0f"),
                          value(r, "bwd_tflops", ".0f"), value(r, "ms", ".2f")]
        rows.append([any_row["path"], any_row["seq_len"]] + side(ours) + side(theirs) +
                    [speed(ours, theirs)])
    return table(["path", "T", "ssa select ms", "ssa fwd TFLOP/s", "ssa bwd TFLOP/s", "ssa total ms",
                  "torch select ms", "torch fwd TFLOP/s", "torch bwd TFLOP/s", "torch total ms",
                  "speed"], rows)


def train_table(ssa, torch):
    rows = []
    for ours, theirs in cases(ssa, torch, "train"):
        any_row = ours or theirs
        mfu = lambda r: "-" if not r or "error" in r else f"{100 * r['mfu']:.1f}%"
        rows.append([any_row["config"], any_row["mode"], value(ours, "tokens_per_s", ".0f"), mfu(ours),
                     value(ours, "peak_gib", ".1f"), value(theirs, "tokens_per_s", ".0f"), mfu(theirs),
                     value(theirs, "peak_gib", ".1f"),
                     speed(ours, theirs, "tokens_per_s", higher_is_faster=True)])
    return table(["config", "mode", "ssa tokens/s", "ssa MFU", "ssa peak GiB", "torch tokens/s",
                  "torch MFU", "torch peak GiB", "speed"], rows)


def errors(ssa, torch):
    short = lambda error: ". ".join(error.split(". ")[:2]).rstrip(".") + "."  # two sentences
    lines = [f"- {r['impl']} {r['bench']} {r['case']}: {short(r['error'])}"
             for rows in (ssa, torch) for r in rows.values() if "error" in r]
    return "\n".join(lines) + "\n" if lines else ""


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    ssa, torch = read(sys.argv[1]), read(sys.argv[2])
    sections = [("Training step", train_table), ("Attention", attention_table),
                ("GEMMs (cuBLAS vs torch.matmul, bf16)", gemm_table), ("Fused kernels", op_table)]
    for title, make in sections:
        print(f"### {title}\n\n{make(ssa, torch)}")
    failed = errors(ssa, torch)
    if failed:
        print(f"### Unavailable or failed rows\n\n{failed}")


if __name__ == "__main__":
    main()
