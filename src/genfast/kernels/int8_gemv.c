/* genfast: int8 weight-only matrix x few-vectors product for CPUs, over a prepacked layout.
 *
 * y[m, n] = scale[n] * xs[m] * sum_k w[n, k] * xq[m, k] + bias[n]
 *
 * The activations come as int16 per row (xq = round(x / xs), xs = max|x| / 32767: error at most
 * max|x| / 65534 per element, two orders below the int8 weights' own rounding), so products and
 * sums are exact integers: AVX512-VNNI's vpdpwssd multiplies 32 weight/activation pairs and adds
 * them in one instruction, with no int8 -> float conversion per weight (which, with the weights
 * in cache, limited the kernel before the memory did). Each column tile sums in int32:
 * at most 2048 columns of |w| <= 127 and |xq| <= 32767 cannot overflow.
 *
 * The weights are packed in column tiles (all of K up to TILE_MAX_K columns, else TILE_K wide and
 * a narrower last one), one after another; inside a tile of width W: [N / ROWS][W / CHUNK][ROWS][CHUNK]
 * int8, so that each thread reads one sequential stream (4 rows x 64 columns = 256 bytes per step)
 * through its rows of a tile. Reading four row-major rows side by side instead halves the
 * bandwidth reached here; software prefetching on top of the hardware's costs about a sixth of it
 * (measured on a 154 MB matrix: 32-38 GB/s with it, 39-45 without). Tiles keep the slice of x a
 * pass reads in L1 (measured, one row, 2 threads, same process: 768 x 3072 matrices streamed 7-13 %
 * faster in tiles of 1024 columns, 2048 x 8192 ones 35-39 % faster; up to 2048 columns one tile
 * loses nothing).
 * N is padded to ROWS and K to CHUNK by the caller (zero weights, zero-padded x).
 *
 * Many rows (prompts): genfast_int8_gemm rounds each activation row to uint8 around a zero point of
 * 128 instead (xq = round(x / xs) + 128, xs = max|x| / 127: the per-row 8-bit activations of
 * CTranslate2's and the dynamic int8 path) and multiplies in vpdpbusd, 64 byte pairs per
 * instruction against vpdpwssd's 32 and no widening of the weights: the same packed weights, a
 * compute-bound product at about twice the rate. The zero point comes back out through each
 * weight row's sum (wsum, int32, from the caller). Without VNNI it runs the int16 product instead.
 */
#include <math.h>
#include <stdint.h>
#if defined(__AVX512F__) || defined(__SSE4_1__)
#include <immintrin.h>
#endif

#define ROWS 4
#define CHUNK 64
#define TILE_MAX_K 2048 /* up to this many columns: one tile */
#define TILE_K 1024

/* max |x[k]| over a row of K floats */
static inline float row_top(const float *row, long K);

/* the step that spreads a row of K floats over +-levels (1 for a row of zeros) */
static inline float row_step(const float *row, long K, float levels) {
  const float top = row_top(row, K);
  return top > 0.f ? top / levels : 1.f;
}

static inline float row_top(const float *row, long K) {
  long k = 0;
  float top = 0.f;
#ifdef __AVX512F__
  __m512 acc = _mm512_setzero_ps();
  for (; k + 16 <= K; k += 16) acc = _mm512_max_ps(acc, _mm512_abs_ps(_mm512_loadu_ps(row + k)));
  top = _mm512_reduce_max_ps(acc);
#endif
  for (; k < K; k++) top = fabsf(row[k]) > top ? fabsf(row[k]) : top;
  return top;
}

/* Each row of x: [M][K] fp32 -> xq: [M][Kp] int16 (columns K..Kp zeroed) and its scale xs[m].
 * (Vectorised: as scalar code it took a tenth of a GPT-2 decode step.) */
static void quantize_rows(const float *x, long M, long K, long Kp, int16_t *xq, float *xs) {
  for (long m = 0; m < M; m++) {
    const float *row = x + m * K, scale = row_step(row, K, 32767.f), inv = 1.f / scale;
    int16_t *out = xq + m * Kp;
    long k = 0;
#ifdef __AVX512F__
    const __m512 vinv = _mm512_set1_ps(inv);
    for (; k + 16 <= K; k += 16) /* rounds to nearest even, as lrintf */
      _mm256_storeu_si256((__m256i *)(out + k), _mm512_cvtsepi32_epi16(_mm512_cvtps_epi32(
                                                    _mm512_mul_ps(_mm512_loadu_ps(row + k), vinv))));
#endif
    for (; k < K; k++) out[k] = (int16_t)lrintf(row[k] * inv);
    for (long j = K; j < Kp; j++) out[j] = 0;
    xs[m] = scale;
  }
}

/* Each row of x: [M][K] fp32 -> xq: [M][Kp] uint8 around 128 (columns K..Kp: 128, against zero
 * weights) and its scale xs[m]. The calling team shares the rows. */
static void quantize_rows_u8(const float *x, long M, long K, long Kp, uint8_t *xq, float *xs) {
#pragma omp for schedule(static)
  for (long m = 0; m < M; m++) {
    const float *row = x + m * K, scale = row_step(row, K, 127.f), inv = 1.f / scale;
    uint8_t *out = xq + m * Kp;
    long k = 0;
#ifdef __AVX512F__
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i zero_point = _mm512_set1_epi32(128);
    for (; k + 16 <= K; k += 16)
      _mm_storeu_si128((__m128i *)(out + k), _mm512_cvtusepi32_epi8(_mm512_add_epi32(
                                                 _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(row + k), vinv)),
                                                 zero_point)));
#endif
    for (; k < K; k++) out[k] = (uint8_t)(lrintf(row[k] * inv) + 128);
    for (long j = K; j < Kp; j++) out[j] = 128;
    xs[m] = scale;
  }
}

#ifdef __AVX512F__
/* The four horizontal sums of a, b, c, d, in one pass of transposing adds (four separate
 * reductions cost about three times the instructions, a third of a prompt's product here). */
static inline void reduce4(__m512i a, __m512i b, __m512i c, __m512i d, int32_t out[4]) {
  const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
  const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
  /* per 128-bit lane: [a a' b b'] and [c c' d d'] partial sums -> [a b c d] */
  const __m512i abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
  const __m256i half = _mm256_add_epi32(_mm512_castsi512_si256(abcd), _mm512_extracti64x4_epi64(abcd, 1));
  const __m128i sums = _mm_add_epi32(_mm256_castsi256_si128(half), _mm256_extracti128_si256(half, 1));
  _mm_storeu_si128((__m128i *)out, sums);
}
#endif

#ifdef __AVX512BW__
static inline __m512i dot_pairs(__m512i acc, __m512i w, __m512i x) {
#ifdef __AVX512VNNI__
  return _mm512_dpwssd_epi32(acc, w, x);
#else
  return _mm512_add_epi32(acc, _mm512_madd_epi16(w, x));
#endif
}
#endif

/* out[m][r] = w's row r . x's row m (exact int32), for m < M (1 to 4: each weight widened once
 * for all M) over W columns; x's rows are ldx apart */
static inline __attribute__((always_inline)) void dot_rows(const int8_t *w, const int16_t *x, long ldx, long W,
                                                          const int M, int32_t out[4][ROWS]) {
#ifdef __AVX512BW__
  __m512i acc[4][ROWS];
#pragma GCC unroll 4
  for (int m = 0; m < M; m++)
#pragma GCC unroll 4
    for (int r = 0; r < ROWS; r++) acc[m][r] = _mm512_setzero_si512();
  for (long k = 0; k < W; k += CHUNK, w += ROWS * CHUNK) {
#pragma GCC unroll 2
    for (int j = 0; j < CHUNK; j += 32) {
      __m512i wv[ROWS];
#pragma GCC unroll 4
      for (int r = 0; r < ROWS; r++) wv[r] = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(w + r * CHUNK + j)));
#pragma GCC unroll 4
      for (int m = 0; m < M; m++) {
        const __m512i xv = _mm512_loadu_si512((const void *)(x + m * ldx + k + j));
#pragma GCC unroll 4
        for (int r = 0; r < ROWS; r++) acc[m][r] = dot_pairs(acc[m][r], wv[r], xv);
      }
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < M; m++) reduce4(acc[m][0], acc[m][1], acc[m][2], acc[m][3], out[m]);
#else /* portable: the compiler vectorizes what it can */
  for (int m = 0; m < M; m++)
    for (int r = 0; r < ROWS; r++) {
      int32_t s = 0;
      for (long k = 0; k < W; k += CHUNK)
        for (int j = 0; j < CHUNK; j++) s += (int32_t)w[(k / CHUNK) * ROWS * CHUNK + r * CHUNK + j] * x[m * ldx + k + j];
      out[m][r] = s;
    }
#endif
}

#ifdef __AVX512VNNI__
#define GF_HAVE_U8_GEMM 1
/* As dot_rows, x in uint8: out[m][r] = w's row r . x's row m (exact int32, zero point included). */
static inline __attribute__((always_inline)) void dot_rows_u8(const int8_t *w, const uint8_t *x, long ldx, long W,
                                                             const int M, int32_t out[4][ROWS]) {
  __m512i acc[4][ROWS];
#pragma GCC unroll 4
  for (int m = 0; m < M; m++)
#pragma GCC unroll 4
    for (int r = 0; r < ROWS; r++) acc[m][r] = _mm512_setzero_si512();
  for (long k = 0; k < W; k += CHUNK, w += ROWS * CHUNK) {
    __m512i wv[ROWS];
#pragma GCC unroll 4
    for (int r = 0; r < ROWS; r++) wv[r] = _mm512_loadu_si512((const void *)(w + r * CHUNK));
#pragma GCC unroll 4
    for (int m = 0; m < M; m++) {
      const __m512i xv = _mm512_loadu_si512((const void *)(x + m * ldx + k));
#pragma GCC unroll 4
      for (int r = 0; r < ROWS; r++) acc[m][r] = _mm512_dpbusd_epi32(acc[m][r], xv, wv[r]);
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < M; m++) reduce4(acc[m][0], acc[m][1], acc[m][2], acc[m][3], out[m]);
}
#else
#define GF_HAVE_U8_GEMM 0
#endif

/* y[m][n0 .. n0 + ROWS) for m < rows from their int32 sums: scaled by the row's xs and added to
 * what earlier tiles wrote; on the last tile the zero point (wsum, nullable) comes out and the
 * channel scales and bias go in. Four outputs per instruction where SSE is there (measured: the
 * scalar version cost a prompt's product a sixth of its time). */
static inline void finish_rows(const int32_t acc[4][ROWS], long rows, const float *xs, const int32_t *wsum,
                               const float *scale, const float *bias, float *y, long N, long n0, int first, int last) {
#if defined(__SSE4_1__) && ROWS == 4
  const __m128 zero = _mm_setzero_ps();
  const __m128 sc = _mm_loadu_ps(scale + n0), bi = bias ? _mm_loadu_ps(bias + n0) : zero;
  const __m128 zp = wsum ? _mm_mul_ps(_mm_set1_ps(128.f), _mm_cvtepi32_ps(_mm_loadu_si128((const __m128i *)(wsum + n0))))
                         : zero;
  for (long m = 0; m < rows; m++) {
    const __m128 xsv = _mm_set1_ps(xs[m]);
    __m128 v = _mm_mul_ps(_mm_cvtepi32_ps(_mm_loadu_si128((const __m128i *)acc[m])), xsv);
    if (!first) v = _mm_add_ps(v, _mm_loadu_ps(y + m * N + n0));
    if (last) v = _mm_add_ps(_mm_mul_ps(_mm_sub_ps(v, _mm_mul_ps(zp, xsv)), sc), bi);
    _mm_storeu_ps(y + m * N + n0, v);
  }
#else
  for (long m = 0; m < rows; m++)
    for (int r = 0; r < ROWS; r++) {
      const long n = n0 + r;
      float v = (float)acc[m][r] * xs[m] + (first ? 0.f : y[m * N + n]);
      if (last && wsum) v -= 128.f * (float)wsum[n] * xs[m]; /* the zero point, over all of K */
      y[m * N + n] = last ? v * scale[n] + (bias ? bias[n] : 0.f) : v;
    }
#endif
}

/* Columns [k0, k0 + W) of y's row block b for all M rows: assigned on the first tile, added after;
 * scales and bias applied on the last. */
static inline void block_tile(const void *x, int x_u8, const float *xs, const int32_t *wsum, long M,
                              const int8_t *tile, const float *scale, const float *bias, float *y, long N, long K,
                              long k0, long W, long b) {
  const int8_t *w = tile + b * ROWS * W;
  const int first = k0 == 0, last = k0 + W == K;
  for (long m0 = 0; m0 < M; m0 += 4) { /* the block (<= 4 x W bytes) stays in L1 across passes */
    int32_t acc[4][ROWS];
    const long rows = M - m0 < 4 ? M - m0 : 4;
#if GF_HAVE_U8_GEMM
    if (x_u8) {
      const uint8_t *xm = (const uint8_t *)x + m0 * K + k0;
      switch (rows) { /* a constant M per call: the accumulators stay in registers */
        case 1: dot_rows_u8(w, xm, K, W, 1, acc); break;
        case 2: dot_rows_u8(w, xm, K, W, 2, acc); break;
        case 3: dot_rows_u8(w, xm, K, W, 3, acc); break;
        default: dot_rows_u8(w, xm, K, W, 4, acc); break;
      }
    } else
#endif
    {
      const int16_t *xm = (const int16_t *)x + m0 * K + k0;
      switch (rows) {
        case 1: dot_rows(w, xm, K, W, 1, acc); break;
        case 2: dot_rows(w, xm, K, W, 2, acc); break;
        case 3: dot_rows(w, xm, K, W, 3, acc); break;
        default: dot_rows(w, xm, K, W, 4, acc); break;
      }
    }
    finish_rows(acc, rows, xs + m0, x_u8 ? wsum : 0, scale, bias, y + m0 * N, N, b * ROWS, first, last);
  }
}

/* The calling team's share of the product, without a closing barrier: with the same team, a
 * following `omp for schedule(static)` over the N / ROWS row blocks gives each thread the blocks of
 * y it wrote here (the fused decode layer adds its residual that way). */
static void product_team(const void *x, int x_u8, const float *xs, const int32_t *wsum, long M,
                         const int8_t *packed, const float *scale, const float *bias, float *y, long N, long K) {
  const long blocks = N / ROWS, tile_k = K <= TILE_MAX_K ? K : TILE_K;
  /* the same static split of blocks for every tile, so a thread adds only to the y it wrote */
  for (long k0 = 0; k0 < K; k0 += tile_k) {
    const long W = K - k0 < tile_k ? K - k0 : tile_k;
#pragma omp for schedule(static) nowait
    for (long b = 0; b < blocks; b++)
      block_tile(x, x_u8, xs, wsum, M, packed + k0 * N, scale, bias, y, N, K, k0, W, b);
  }
}

static void gemv_team(const int16_t *x, const float *xs, long M, const int8_t *packed, const float *scale,
                      const float *bias, float *y, long N, long K) {
  product_team(x, 0, xs, 0, M, packed, scale, bias, y, N, K);
}

/* xq: [M][K] int16 and xs: [M] from quantize_rows; packed: see above; scale, bias (nullable): [N]; y: [M][N]. */
void genfast_int8_gemv(const int16_t *xq, const float *xs, long M, const int8_t *packed, const float *scale,
                       const float *bias, float *y, long N, long K, int threads) {
#pragma omp parallel num_threads(threads)
  gemv_team(xq, xs, M, packed, scale, bias, y, N, K);
}

/* x: [M][Kx] fp32, rounded into xq: [M][K] uint8 and xs: [M] (quantize_rows_u8) by the same team;
 * wsum: [N] each packed row's sum of weights. */
void genfast_int8_gemm_u8(const float *x, long Kx, uint8_t *xq, float *xs, long M, const int8_t *packed,
                          const int32_t *wsum, const float *scale, const float *bias, float *y, long N, long K,
                          int threads) {
#pragma omp parallel num_threads(threads)
  {
    quantize_rows_u8(x, M, Kx, K, xq, xs); /* ends with the omp for's barrier */
    product_team(xq, 1, xs, wsum, M, packed, scale, bias, y, N, K);
  }
}
