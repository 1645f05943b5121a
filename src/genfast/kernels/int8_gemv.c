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
 */
#include <math.h>
#include <stdint.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define ROWS 4
#define CHUNK 64
#define TILE_MAX_K 2048 /* up to this many columns: one tile */
#define TILE_K 1024

/* Each row of x: [M][K] fp32 -> xq: [M][Kp] int16 (columns K..Kp zeroed) and its scale xs[m]. */
static void quantize_rows(const float *x, long M, long K, long Kp, int16_t *xq, float *xs) {
  for (long m = 0; m < M; m++) {
    const float *row = x + m * K;
    float top = 0.f;
    for (long k = 0; k < K; k++) top = fabsf(row[k]) > top ? fabsf(row[k]) : top;
    const float scale = top > 0.f ? top / 32767.f : 1.f, inv = 1.f / scale;
    for (long k = 0; k < K; k++) xq[m * Kp + k] = (int16_t)lrintf(row[k] * inv);
    for (long k = K; k < Kp; k++) xq[m * Kp + k] = 0;
    xs[m] = scale;
  }
}

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
  for (int m = 0; m < M; m++)
#pragma GCC unroll 4
    for (int r = 0; r < ROWS; r++) out[m][r] = _mm512_reduce_add_epi32(acc[m][r]);
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

/* Columns [k0, k0 + W) of y's row block b for all M rows: assigned on the first tile, added after;
 * scales and bias applied on the last. */
static inline void block_tile(const int16_t *x, const float *xs, long M, const int8_t *tile, const float *scale,
                              const float *bias, float *y, long N, long K, long k0, long W, long b) {
  const int8_t *w = tile + b * ROWS * W;
  const int first = k0 == 0, last = k0 + W == K;
  for (long m0 = 0; m0 < M; m0 += 4) { /* the block (<= 4 x W bytes) stays in L1 across passes */
    int32_t acc[4][ROWS];
    const int16_t *xm = x + m0 * K + k0;
    switch (M - m0 < 4 ? M - m0 : 4) { /* a constant M per call: the accumulators stay in registers */
      case 1: dot_rows(w, xm, K, W, 1, acc); break;
      case 2: dot_rows(w, xm, K, W, 2, acc); break;
      case 3: dot_rows(w, xm, K, W, 3, acc); break;
      default: dot_rows(w, xm, K, W, 4, acc); break;
    }
    for (long m = m0; m < M && m < m0 + 4; m++)
      for (int r = 0; r < ROWS; r++) {
        long n = b * ROWS + r;
        float v = (float)acc[m - m0][r] * xs[m] + (first ? 0.f : y[m * N + n]);
        y[m * N + n] = last ? v * scale[n] + (bias ? bias[n] : 0.f) : v;
      }
  }
}

/* The calling team's share of the product, without a closing barrier: with the same team, a
 * following `omp for schedule(static)` over the N / ROWS row blocks gives each thread the blocks of
 * y it wrote here (the fused decode layer adds its residual that way). */
static void gemv_team(const int16_t *x, const float *xs, long M, const int8_t *packed, const float *scale,
                      const float *bias, float *y, long N, long K) {
  const long blocks = N / ROWS, tile_k = K <= TILE_MAX_K ? K : TILE_K;
  /* the same static split of blocks for every tile, so a thread adds only to the y it wrote */
  for (long k0 = 0; k0 < K; k0 += tile_k) {
    const long W = K - k0 < tile_k ? K - k0 : tile_k;
#pragma omp for schedule(static) nowait
    for (long b = 0; b < blocks; b++) block_tile(x, xs, M, packed + k0 * N, scale, bias, y, N, K, k0, W, b);
  }
}

/* xq: [M][K] int16 and xs: [M] from quantize_rows; packed: see above; scale, bias (nullable): [N]; y: [M][N]. */
void genfast_int8_gemv(const int16_t *xq, const float *xs, long M, const int8_t *packed, const float *scale,
                       const float *bias, float *y, long N, long K, int threads) {
#pragma omp parallel num_threads(threads)
  gemv_team(xq, xs, M, packed, scale, bias, y, N, K);
}
