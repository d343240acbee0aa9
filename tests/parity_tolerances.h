#pragma once
// How close the CUDA attention kernels (flash and block-sparse) must come to the CPU op in f64
// on the same (rounded) inputs, relative to the largest reference value.
namespace ssa::test {

// f32 runs the same algorithm as the reference in fp32: only rounding differs.
constexpr double kAttentionF32Tolerance = 1e-4;
// bf16 inputs are identical to the reference's, but the kernels round P and dS to bf16 (8-bit
// mantissa, relative step 2^-8) before their matrix products and store outputs in bf16, so
// errors of a few 1e-3 of the largest value are expected.
constexpr double kAttentionBf16Tolerance = 2e-2;

}  // namespace ssa::test
