#pragma once
#include "core/tensor.h"

namespace ssa {

// Causal multi-head attention with grouped-query heads, scale 1/sqrt(head_dim).
// q: [B, Tq, H, d], k and v: [B, Tk, Hkv, d], Hkv divides H; query head i reads KV head
// i / (H / Hkv). Queries are the last Tq positions of the Tk keys (Tq ≤ Tk; Tq = Tk in
// training, Tq = 1 when decoding with a KV cache): query t sees keys 0 .. Tk − Tq + t.
// Returns [B, Tq, H, d]. Backward gives dq, dk, dv.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v);

}  // namespace ssa
