#pragma once
// The normal and uniform draws of one Philox block, with the same bits on the CPU and the GPU:
// integer argument reduction, then polynomials in double made only of correctly rounded
// operations (+, ×, fused multiply-add, ÷, √), each written out (the `rn_` helpers), so no
// compiler may fuse or reorder them. Host code that includes this must be compiled with
// -ffp-contract=off (core/CMakeLists.txt sets it for rng.cpp), or x·y + z could become one FMA
// there and not on the device.
#include <cmath>
#include <cstdint>

#include "core/philox.h"

namespace ssa {

struct Distribution {
  enum class Kind : uint8_t { normal, uniform };
  Kind kind;
  double a;  // normal: mean; uniform: low end
  double b;  // normal: standard deviation; uniform: high end
};

namespace draws {

#if defined(__CUDA_ARCH__)
__device__ inline double rn_add(double x, double y) { return __dadd_rn(x, y); }
__device__ inline double rn_mul(double x, double y) { return __dmul_rn(x, y); }
__device__ inline double rn_fma(double x, double y, double z) { return __fma_rn(x, y, z); }
__device__ inline double rn_sqrt(double x) { return __dsqrt_rn(x); }
__device__ inline int leading_zeros(uint32_t x) { return __clz(static_cast<int>(x)); }
#else
inline double rn_add(double x, double y) { return x + y; }
inline double rn_mul(double x, double y) { return x * y; }
inline double rn_fma(double x, double y, double z) { return std::fma(x, y, z); }
inline double rn_sqrt(double x) { return std::sqrt(x); }
inline int leading_zeros(uint32_t x) { return __builtin_clz(x); }
#endif

// c[0] + z·(c[1] + z·(… + z·c[n-1])).
template <int N>
SSA_HOST_DEVICE inline double horner(const double (&c)[N], double z) {
  double sum = c[N - 1];
  for (int i = N - 2; i >= 0; --i) sum = rn_fma(sum, z, c[i]);
  return sum;
}

// log(n · 2^-25) for n in [1, 2^25]: n = m · 2^e with m in [√½, √2), then
// log m = 2·atanh(s) = 2s + 2s·s²·(1/3 + s²/5 + …), s = (m − 1)/(m + 1), |s| ≤ 0.172 (terms to
// s^23), and e·ln 2 with ln 2 split so that e·ln2_hi is exact.
SSA_HOST_DEVICE inline double log_of_scaled(uint32_t n) {
  constexpr double kAtanh[] = {0x1.5555555555555p-2, 0x1.999999999999ap-3, 0x1.2492492492492p-3,
                               0x1.c71c71c71c71cp-4, 0x1.745d1745d1746p-4, 0x1.3b13b13b13b14p-4,
                               0x1.1111111111111p-4, 0x1.e1e1e1e1e1e1ep-5, 0x1.af286bca1af28p-5,
                               0x1.8618618618618p-5, 0x1.642c8590b2164p-5};
  constexpr double kLn2Hi = 0x1.62e42fee00000p-1, kLn2Lo = 0x1.a39ef35793c76p-33;
  constexpr double kSqrt2 = 0x1.6a09e667f3bcdp+0;
  // 2^e ≤ n < 2^(e+1); m = n / 2^e exactly, in [1, 2)
  int e = 31 - leading_zeros(n);
  double m = static_cast<double>(n) / static_cast<double>(uint32_t{1} << e);
  if (m > kSqrt2) {
    m = m * 0.5;
    ++e;
  }
  const double s = (m - 1.0) / (m + 1.0);  // m − 1 and m + 1 exact (m has ≤ 26 bits)
  const double two_s = s + s;
  const double log_m = rn_fma(rn_mul(two_s, rn_mul(s, s)), horner(kAtanh, rn_mul(s, s)), two_s);
  const double exponent = static_cast<double>(e - 25);
  return rn_add(rn_mul(exponent, kLn2Hi), rn_fma(exponent, kLn2Lo, log_m));
}

// cos(2π · n · 2^-25) for n in [0, 2^25]: the quadrant is found on the integer n (cos is even and
// cos(π − x) = −cos x, cos(π/2 − x) = sin x), leaving an angle θ = 2π·c·2^-25 ≤ π/4 whose
// Taylor series (cos to θ^20, sin to θ^19) are summed with θ formed from a 31-bit 2π_hi (c·2π_hi
// exact) and 2π_lo.
SSA_HOST_DEVICE inline double cos_of_turn(uint32_t n) {
  constexpr uint32_t kTurn = uint32_t{1} << 25;
  constexpr double kCos[] = {-0x1.0000000000000p-1,  0x1.5555555555555p-5,   -0x1.6c16c16c16c17p-10,
                             0x1.a01a01a01a01ap-16,  -0x1.27e4fb7789f5cp-22, 0x1.1eed8eff8d898p-29,
                             -0x1.93974a8c07c9dp-37, 0x1.ae7f3e733b81fp-45,  -0x1.6827863b97d97p-53,
                             0x1.e542ba4020225p-62};
  constexpr double kSin[] = {
      -0x1.5555555555555p-3,  0x1.1111111111111p-7,   -0x1.a01a01a01a01ap-13,
      0x1.71de3a556c734p-19,  -0x1.ae64567f544e4p-26, 0x1.6124613a86d09p-33,
      -0x1.ae7f3e733b81fp-41, 0x1.952c77030ad4ap-49,  -0x1.2f49b46814157p-57};
  constexpr double kTwoPiHi = 0x1.921fb54400000p+2, kTwoPiLo = 0x1.0b4611a626331p-32;
  uint32_t c = n > kTurn / 2 ? kTurn - n : n;  // [0, half a turn]
  const bool negate = c > kTurn / 4;
  if (negate) c = kTurn / 2 - c;  // [0, a quarter]
  const bool as_sin = c > kTurn / 8;
  if (as_sin) c = kTurn / 4 - c;  // [0, an eighth]
  const double turns = static_cast<double>(c);
  const double theta = rn_fma(turns, kTwoPiLo, turns * kTwoPiHi) * 0x1p-25;
  const double z = rn_mul(theta, theta);
  const double value =
      as_sin ? rn_fma(rn_mul(theta, z), horner(kSin, z), theta) : rn_fma(z, horner(kCos, z), 1.0);
  return negate ? -value : value;
}

}  // namespace draws

// The value of Philox block `r`: uniform a + (b − a)·u1, or normal by Box–Muller,
// a + b·√(−2 log u1)·cos(2π u2), with u1, u2 = philox_uniform_bits of r.v[0], r.v[1] (floats that
// are whole multiples of 2^-25 in (0, 1]).
SSA_HOST_DEVICE inline double draw(const Distribution& d, const Philox4& r) {
  using namespace draws;
  const float u1 = philox_uniform_bits(r.v[0]);
  if (d.kind == Distribution::Kind::uniform) return rn_fma(d.b - d.a, u1, d.a);
  const float u2 = philox_uniform_bits(r.v[1]);
  const auto scaled = [](float u) { return static_cast<uint32_t>(u * 0x1p25f); };  // exact
  const double radius = rn_sqrt(-2.0 * log_of_scaled(scaled(u1)));
  return rn_fma(d.b, rn_mul(radius, cos_of_turn(scaled(u2))), d.a);
}

}  // namespace ssa
