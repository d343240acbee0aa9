#pragma once
#include "core/tensor.h"

namespace ssa {

// Block-sparse attention (the selection branch of NSA). Shapes and positions as in attention():
// q [B, Tq, H, d], k and v [B, Tk, Hkv, d], Hkv divides H, query head i reads KV head
// i / (H / Hkv), query t sits at key position p = Tk − Tq + t. Block j holds key positions
// j·bs .. j·bs + bs − 1 (bs = block_size); the query's own block is o = p / bs.

// Mean key of every complete block: [B, Tk / bs, Hkv, d] (a trailing partial block is left
// out), summed in double, in k's dtype. No gradient.
Tensor block_means(const Tensor& k, int64_t block_size);

// Selection layout: i32 [B, Tq, Hkv, W], W = min(top_k, ceil(k_len / bs)). Row (b, t, h) lists
// the blocks query t reads through KV head h, in ascending order, then −1 padding.
// select_blocks fills min(top_k, o + 1) slots: the own block o (always, last) and the top_k − 1
// candidates j < o with the highest score_j = Σ over the query heads i of h's group of
// softmax_j(q_i · kbar_j / sqrt(d)), the softmax over the candidates j < o, ties to the lower
// index; summed in double. kbar: block_means of keys 0 .. k_len − 1 (extra blocks are ignored,
// so a decoder may pass its running means). No gradient.
Tensor select_blocks(const Tensor& q, const Tensor& kbar, int64_t k_len, int64_t block_size,
                     int64_t top_k);

// Attention of each query over the keys of its selected blocks only, keys ≤ p in its own
// block, scale 1/sqrt(d). selection: the layout above, any W ≥ 1; each row must hold at least
// one block, strictly ascending, none after o. Returns [B, Tq, H, d]. Backward gives dq, dk, dv.
Tensor sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& selection,
                        int64_t block_size);

// sparse_attention(q, k, v, select_blocks(q, kbar, Tk, bs, top_k), bs), kbar = block_means(k,
// bs) when undefined (a decoder may pass its running means). The selection is valid by
// construction, so it is not checked again: on the GPU the check would wait for the device.
Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t block_size,
                              int64_t top_k, const Tensor& kbar = Tensor());

}  // namespace ssa
