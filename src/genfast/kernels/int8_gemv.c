/* genfast: int8 weight-only matrix x few-vectors product for CPUs, over a prepacked layout.
 *
 * y[m, n] = scale[n] * sum_k w[n, k] * x[m, k] + bias[n]
 *
 * The weights are packed as [N / ROWS][K / CHUNK][ROWS][CHUNK] int8 so that each thread reads
 * one sequential stream (4 rows x 64 columns = 256 bytes per step). Reading four row-major rows
 * side by side instead halves the bandwidth reached here (benchmarks/cpu_int_kernels.py).
 * N is padded to ROWS and K to CHUNK by the caller (zero weights, zero-padded x).
 */
#include <stdint.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define ROWS 4
#define CHUNK 64
#define PREFETCH_BYTES 1024

static void dot_block(const int8_t *w, const float *x, long K, float out[ROWS]) {
#ifdef __AVX512F__
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (long k = 0; k < K; k += CHUNK, w += ROWS * CHUNK) {
    _mm_prefetch((const char *)(w + PREFETCH_BYTES), _MM_HINT_T0);
    _mm_prefetch((const char *)(w + PREFETCH_BYTES + 64), _MM_HINT_T0);
    _mm_prefetch((const char *)(w + PREFETCH_BYTES + 128), _MM_HINT_T0);
    _mm_prefetch((const char *)(w + PREFETCH_BYTES + 192), _MM_HINT_T0);
    for (int j = 0; j < CHUNK; j += 16) {
      __m512 xv = _mm512_loadu_ps(x + k + j);
#define LANE(r) _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(w + (r) * CHUNK + j))))
      a0 = _mm512_fmadd_ps(LANE(0), xv, a0);
      a1 = _mm512_fmadd_ps(LANE(1), xv, a1);
      a2 = _mm512_fmadd_ps(LANE(2), xv, a2);
      a3 = _mm512_fmadd_ps(LANE(3), xv, a3);
#undef LANE
    }
  }
  out[0] = _mm512_reduce_add_ps(a0);
  out[1] = _mm512_reduce_add_ps(a1);
  out[2] = _mm512_reduce_add_ps(a2);
  out[3] = _mm512_reduce_add_ps(a3);
#else /* portable: the compiler vectorizes what it can */
  float acc[ROWS][16] = {{0}};
  for (long k = 0; k < K; k += CHUNK, w += ROWS * CHUNK)
    for (int r = 0; r < ROWS; r++)
      for (int j = 0; j < CHUNK; j++) acc[r][j % 16] += (float)w[r * CHUNK + j] * x[k + j];
  for (int r = 0; r < ROWS; r++) {
    float s = 0.f;
    for (int j = 0; j < 16; j++) s += acc[r][j];
    out[r] = s;
  }
#endif
}

/* x: [M][K] fp32; packed: see above; scale, bias (nullable): [N]; y: [M][N]. */
void genfast_int8_gemv(const float *x, long M, const int8_t *packed, const float *scale, const float *bias,
                       float *y, long N, long K, int threads) {
  long blocks = N / ROWS;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (long b = 0; b < blocks; b++) {
    const int8_t *w = packed + b * ROWS * K;
    for (long m = 0; m < M; m++) { /* the block (<= 4 x K bytes) stays in L1 across rows */
      float acc[ROWS];
      dot_block(w, x + m * K, K, acc);
      for (int r = 0; r < ROWS; r++) {
        long n = b * ROWS + r;
        y[m * N + n] = acc[r] * scale[n] + (bias ? bias[n] : 0.f);
      }
    }
  }
}
