#pragma once
// How close an op on the GPU (or in f32 on the CPU) must come to the CPU op in f64 on the same
// (rounded) inputs: max |got − reference| / max |reference|, per output and per gradient.
namespace ssa::test {

// f32: fp32 kernels (cuBLAS without TF32) against f64; sums of a few thousand terms stay ~1e-6.
constexpr double kF32Tolerance = 1e-4;
// bf16: each stored result rounds once to 8 bits (2^-9 relative); two such roundings of the
// largest value, 2^-7, bound what fp32 arithmetic on the same bf16 inputs may add.
constexpr double kBf16Tolerance = 8e-3;

// The attention kernels (flash and block-sparse). f32 runs the same algorithm as the reference
// in fp32: only rounding differs.
constexpr double kAttentionF32Tolerance = 1e-4;
// bf16 inputs are identical to the reference's, but the kernels round P and dS to bf16 (8-bit
// mantissa, relative step 2^-8) before their matrix products and store outputs in bf16, so
// errors of a few 1e-3 of the largest value are expected.
constexpr double kAttentionBf16Tolerance = 2e-2;

}  // namespace ssa::test
