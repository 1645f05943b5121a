/* genfast: int4 weight-only matrix x few-vectors product for CPUs (asymmetric groups of G columns).
 *
 * y[m, n] = sum_g scale[n, g] * sum_{k in g} q[n, k] * x[m, k] + minimum[n, g] * sum_{k in g} x[m, k] + bias[n]
 *
 * q in [0, 15]. x comes as int8 per row (xq = round(x / xs), xs = max|x| / 127; int4 weights' own
 * rounding is two orders larger), so each group's sum is exact: vpdpbusd multiplies 64 (q, xq)
 * byte pairs in one instruction (q is the unsigned operand). Two weight rows share a register:
 * its int32 lanes alternate rows (lane i: row i & 1, columns 4 * (i >> 1) .. + 3 of a 32-column
 * block), so one 32-byte load (broadcast to both halves) unpacks into 64 weights with a shift and a mask; each
 * row of x is laid out to match (every 4 columns twice, xd), and both rows' group scales come in
 * one 4-byte broadcast (scale2: [N / 2][groups][2] bf16). The minimum's term is a short dot product
 * over groups per output (minimum: [N][groups] bf16), with xg[m][g] = xs * sum of the group's xq.
 * Scales and minimums in bf16 bring a group of 32 to 5 bits a weight (fp32 ones: 6); the quantizer
 * makes them bf16-exact, so nothing is rounded here.
 *
 * packed: [N / 2][K / 32][32] bytes; byte j of a block holds register byte j (low nibble) and
 * j + 32 (high nibble). N is padded to 2 (zero rows, zero scales), K is a multiple of G, G of 32.
 * Requires int8_gemv.c (row_step) before it.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define I4_BLOCK 32 /* columns per 32-byte block of a row pair */
#define I4_M 4      /* activation rows per pass */

/* x: [M][K] fp32 -> xd: [M][2K] int8 (each 4 columns twice), xs[m], xg: [M][K / G]. */
static void int4_prepare_rows(const float *x, long M, long K, long G, int8_t *xd, float *xs, float *xg) {
  for (long m = 0; m < M; m++) {
    const float *row = x + m * K, scale = row_step(row, K, 127.f), inv = 1.f / scale;
    int8_t *out = xd + m * 2 * K;
    for (long g = 0; g < K / G; g++) {
      int32_t sum = 0;
      long k = g * G;
#ifdef __AVX512F__
      /* 16 columns -> 16 int8 = four 4-column words, each written twice (K and G are multiples of 32) */
      for (; k < (g + 1) * G; k += 16) {
        const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(row + k), _mm512_set1_ps(inv)));
        sum += _mm512_reduce_add_epi32(q);
        const __m128i bytes = _mm512_cvtsepi32_epi8(q);
        _mm_storeu_si128((__m128i *)(out + 2 * k), _mm_unpacklo_epi32(bytes, bytes));
        _mm_storeu_si128((__m128i *)(out + 2 * k + 16), _mm_unpackhi_epi32(bytes, bytes));
      }
#endif
      for (; k < (g + 1) * G; k++) {
        const int8_t v = (int8_t)lrintf(row[k] * inv);
        sum += v;
        const long block = k / I4_BLOCK, within = k % I4_BLOCK, group4 = within / 4, b = within % 4;
        out[block * 64 + group4 * 8 + b] = v; /* lane 2 * group4: the pair's first row */
        out[block * 64 + group4 * 8 + 4 + b] = v; /* lane 2 * group4 + 1: its second */
      }
      xg[m * (K / G) + g] = scale * (float)sum;
    }
    xs[m] = scale;
  }
}

static inline float bf16_to_float(uint16_t v) {
  const uint32_t bits = (uint32_t)v << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

/* sum_g a[g] * b[g], a in bf16 (the minimum's term of one output) */
static inline float group_dot(const uint16_t *a, const float *b, long n) {
#if defined(__AVX512F__)
  __m512 acc = _mm512_setzero_ps();
  for (long g = 0; g < n; g += 16) {
    const __mmask16 live = n - g >= 16 ? 0xFFFF : (__mmask16)((1u << (n - g)) - 1);
    const __m512 av = _mm512_castsi512_ps(_mm512_slli_epi32(
        _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(live, (const void *)(a + g))), 16));
    acc = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(live, b + g), acc);
  }
  return _mm512_reduce_add_ps(acc);
#else
  float total = 0.f;
  for (long g = 0; g < n; g++) total += bf16_to_float(a[g]) * b[g];
  return total;
#endif
}

/* rows 2p and 2p + 1 of y for x rows [m0, m0 + rows) */
static inline __attribute__((always_inline)) void int4_pair(const int8_t *xd, const float *xs, const float *xg,
                                                           long m0, const int rows, const uint8_t *w,
                                                           const uint16_t *scale2, const uint16_t *minimum,
                                                           const float *bias, float *y, long N, long K, long G,
                                                           long p) {
  const long groups = K / G, blocks_per_group = G / I4_BLOCK;
  float sums[I4_M][2];
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  __m512 acc[I4_M];
#pragma GCC unroll 4
  for (int m = 0; m < rows; m++) acc[m] = _mm512_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0F), shifts = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
  for (long g = 0; g < groups; g++) {
    __m512i dot[I4_M];
#pragma GCC unroll 4
    for (int m = 0; m < rows; m++) dot[m] = _mm512_setzero_si512();
    for (long c = g * blocks_per_group; c < (g + 1) * blocks_per_group; c++) {
      /* the block in both halves, the upper one shifted down a nibble: 64 weights in three instructions */
      const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w + c * 32)));
      const __m512i q = _mm512_and_si512(_mm512_srlv_epi64(v, shifts), low4);
#pragma GCC unroll 4
      for (int m = 0; m < rows; m++)
        dot[m] = _mm512_dpbusd_epi32(dot[m], q, _mm512_loadu_si512((const void *)(xd + (m0 + m) * 2 * K + c * 64)));
    }
    /* both rows' bf16 scales -> fp32 in alternate lanes: the first row's shifted up, the second's masked */
    uint32_t pair;
    memcpy(&pair, scale2 + g * 2, sizeof pair);
#ifdef __AVX512BF16__
    const __m512 s = _mm512_cvtpbh_ps((__m256bh)_mm256_set1_epi32((int)pair)); /* 16 bf16: s0 s1 s0 s1 ... */
#else
    const __m512i both = _mm512_set1_epi32((int)pair);
    const __m512 s = _mm512_castsi512_ps(_mm512_mask_blend_epi32(0xAAAA, _mm512_slli_epi32(both, 16),
                                                                 _mm512_and_si512(both, _mm512_set1_epi32((int)0xFFFF0000u))));
#endif
#pragma GCC unroll 4
    for (int m = 0; m < rows; m++) acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[m]), s, acc[m]);
  }
#pragma GCC unroll 4
  for (int m = 0; m < rows; m++) {
    sums[m][0] = _mm512_mask_reduce_add_ps(0x5555, acc[m]);
    sums[m][1] = _mm512_mask_reduce_add_ps(0xAAAA, acc[m]);
  }
#else /* portable: the same sums, one weight at a time */
  for (int m = 0; m < rows; m++) {
    const int8_t *xr = xd + (m0 + m) * 2 * K;
    for (int r = 0; r < 2; r++) {
      float total = 0.f;
      for (long g = 0; g < groups; g++) {
        int32_t dot = 0;
        for (long c = g * blocks_per_group; c < (g + 1) * blocks_per_group; c++)
          for (int t = 0; t < 64; t++) {
            if (((t / 4) & 1) != r) continue;
            const uint8_t byte = w[c * 32 + (t & 31)];
            dot += (t < 32 ? byte & 0x0F : byte >> 4) * xr[c * 64 + t];
          }
        total += (float)dot * bf16_to_float(scale2[g * 2 + r]);
      }
      sums[m][r] = total;
    }
  }
#endif
  for (int m = 0; m < rows; m++)
    for (int r = 0; r < 2; r++) {
      const long n = 2 * p + r;
      const uint16_t *mins = minimum + n * groups;
      const float *xgm = xg + (m0 + m) * groups;
      const float shift = group_dot(mins, xgm, groups);
      y[(m0 + m) * N + n] = xs[m0 + m] * sums[m][r] + shift + (bias ? bias[n] : 0.f);
    }
}

/* The calling team's share of the product (row pairs split statically), without a closing barrier. */
static void int4_team(const int8_t *xd, const float *xs, const float *xg, long M, const uint8_t *packed,
                      const uint16_t *scale2, const uint16_t *minimum, const float *bias, float *y, long N, long K,
                      long G) {
  const long pairs = N / 2, groups = K / G;
#pragma omp for schedule(static) nowait
  for (long p = 0; p < pairs; p++) {
    const uint8_t *w = packed + p * (K / I4_BLOCK) * 32;
    const uint16_t *s2 = scale2 + p * groups * 2;
    for (long m0 = 0; m0 < M; m0 += I4_M) {
      switch (M - m0 < I4_M ? M - m0 : I4_M) { /* a constant row count: accumulators in registers */
        case 1: int4_pair(xd, xs, xg, m0, 1, w, s2, minimum, bias, y, N, K, G, p); break;
        case 2: int4_pair(xd, xs, xg, m0, 2, w, s2, minimum, bias, y, N, K, G, p); break;
        case 3: int4_pair(xd, xs, xg, m0, 3, w, s2, minimum, bias, y, N, K, G, p); break;
        default: int4_pair(xd, xs, xg, m0, 4, w, s2, minimum, bias, y, N, K, G, p); break;
      }
    }
  }
}

/* xd, xs, xg from int4_prepare_rows; packed, scale2: see above; minimum: [N][K / G]; bias nullable; y: [M][N]. */
void genfast_int4_gemv(const int8_t *xd, const float *xs, const float *xg, long M, const uint8_t *packed,
                       const uint16_t *scale2, const uint16_t *minimum, const float *bias, float *y, long N, long K,
                       long G, int threads) {
#pragma omp parallel num_threads(threads)
  int4_team(xd, xs, xg, M, packed, scale2, minimum, bias, y, N, K, G);
}

/* For prompts: the weights as bf16 (out [N][K], N padded to 2), for a bf16 GEMM library kernel: at
 * 128 rows it took half to 0.6x the time of the product above, whose unpacking and per-group scaling are
 * paid again for every 4 rows. w = q * scale + minimum, rounded once to bf16. */
static inline uint16_t float_to_bf16(float f) {
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  return (uint16_t)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16); /* round to nearest even */
}

void genfast_int4_dequantize(const uint8_t *packed, const uint16_t *scale2, const uint16_t *minimum, uint16_t *out,
                             long N, long K, long G, int threads) {
  const long pairs = N / 2, groups = K / G, blocks = K / I4_BLOCK;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (long p = 0; p < pairs; p++)
    for (long c = 0; c < blocks; c++) {
      const uint8_t *w = packed + (p * blocks + c) * 32;
      const long g = c * I4_BLOCK / G;
      for (int r = 0; r < 2; r++) {
        const long n = 2 * p + r;
        const float s = bf16_to_float(scale2[(p * groups + g) * 2 + r]), m = bf16_to_float(minimum[n * groups + g]);
        uint16_t *row = out + n * K + c * I4_BLOCK;
#if defined(__AVX512VBMI2__) && defined(__AVX512BF16__) && defined(__AVX512VL__)
        /* unpacked as in the product, then this row's 32 bytes (every other 4) compressed into column order */
        const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)w));
        const __m512i q = _mm512_and_si512(_mm512_srlv_epi64(v, _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0)),
                                           _mm512_set1_epi8(0x0F));
        const __m256i mine = _mm512_castsi512_si256(
            _mm512_maskz_compress_epi8(r ? 0xF0F0F0F0F0F0F0F0ull : 0x0F0F0F0F0F0F0F0Full, q));
        for (int half = 0; half < 2; half++) {
          const __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(half ? _mm256_extracti128_si256(mine, 1)
                                                                          : _mm256_castsi256_si128(mine)));
          const __m256bh b = _mm512_cvtneps_pbh(_mm512_fmadd_ps(f, _mm512_set1_ps(s), _mm512_set1_ps(m)));
          _mm256_storeu_si256((__m256i *)(row + 16 * half), (__m256i)b);
        }
        continue;
#endif
        for (int j = 0; j < I4_BLOCK; j++) { /* register byte t of column j in row r (see the layout above) */
          const int t = 8 * (j / 4) + 4 * r + j % 4;
          const int q = t < 32 ? w[t] & 0x0F : w[t - 32] >> 4;
          row[j] = float_to_bf16((float)q * s + m);
        }
      }
    }
}
