/* genfast: fp32 weights x a few fp32 activation rows (decode), row-major weights as PyTorch holds them.
 *
 * y[m, n] = w[n, :] . x[m, :] + bias[n], for up to FP32_MAX_ROWS rows of x. Each thread takes a
 * contiguous range of weight rows, so it reads one sequential stream; each weight row is read from
 * memory once, then from L1 for the other rows of x. PyTorch's batch-1 fp32 linear read weights at
 * 15.4 GB/s here, this loop at 27.6 (64 chained 1024 x 1024 matrices, 2 threads,
 * benchmarks/cpu_int_kernels.py).
 */
#include <stdint.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define FP32_MAX_ROWS 4

static inline float dot_f32(const float *w, const float *x, long K) {
#ifdef __AVX512F__
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
  long k = 0;
  for (; k + 64 <= K; k += 64) { /* four accumulators: one FMA chain would wait on its latency */
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k), _mm512_loadu_ps(x + k), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k + 16), _mm512_loadu_ps(x + k + 16), a1);
    a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k + 32), _mm512_loadu_ps(x + k + 32), a2);
    a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k + 48), _mm512_loadu_ps(x + k + 48), a3);
  }
  for (; k < K; k += 16) {
    const __mmask16 mask = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
    a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, w + k), _mm512_maskz_loadu_ps(mask, x + k), a0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
#else /* portable */
  float s[8] = {0.f};
  long k = 0;
  for (; k + 8 <= K; k += 8)
    for (int j = 0; j < 8; j++) s[j] += w[k + j] * x[k + j];
  for (; k < K; k++) s[0] += w[k] * x[k];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
#endif
}

/* w . x[0..3] (rows ld apart) into out[0..3]: each load of w serves four rows, two FMA chains per row */
static inline void dot4_f32(const float *w, const float *x, long ld, long K, float *out) {
#ifdef __AVX512F__
  __m512 a[4][2];
  for (int r = 0; r < 4; r++) a[r][0] = a[r][1] = _mm512_setzero_ps();
  long k = 0;
  for (; k + 32 <= K; k += 32) {
    const __m512 w0 = _mm512_loadu_ps(w + k), w1 = _mm512_loadu_ps(w + k + 16);
    for (int r = 0; r < 4; r++) {
      a[r][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + r * ld + k), a[r][0]);
      a[r][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + r * ld + k + 16), a[r][1]);
    }
  }
  for (; k < K; k += 16) {
    const __mmask16 mask = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
    const __m512 w0 = _mm512_maskz_loadu_ps(mask, w + k);
    for (int r = 0; r < 4; r++) a[r][0] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(mask, x + r * ld + k), a[r][0]);
  }
  for (int r = 0; r < 4; r++) out[r] = _mm512_reduce_add_ps(_mm512_add_ps(a[r][0], a[r][1]));
#else
  for (int r = 0; r < 4; r++) out[r] = dot_f32(w, x + r * ld, K);
#endif
}

/* The calling team's share of y[m, n] = w[n, :] . x[m, :] + bias[n] (x: [M][K], y: [M][N]), weight
 * rows split statically in blocks of ``block`` rows, without a closing barrier. */
static void fp32_team(const float *x, long M, const float *w, const float *bias, float *y, long N, long K,
                      long block) {
#pragma omp for schedule(static) nowait
  for (long b = 0; b < (N + block - 1) / block; b++)
    for (long n = b * block; n < (b + 1) * block && n < N; n++) {
      const float add = bias ? bias[n] : 0.f;
      long m = 0;
      for (; m + 4 <= M; m += 4) {
        float out[4];
        dot4_f32(w + n * K, x + m * K, K, K, out);
        for (int r = 0; r < 4; r++) y[(m + r) * N + n] = out[r] + add;
      }
      for (; m < M; m++) y[m * N + n] = dot_f32(w + n * K, x + m * K, K) + add;
    }
}

/* x: [M][K], w: [N][K], bias (nullable): [N], y: [M][N]; M <= FP32_MAX_ROWS. */
void genfast_fp32_gemv(const float *x, long M, const float *w, const float *bias, float *y, long N, long K,
                       int threads) {
#pragma omp parallel num_threads(threads)
  fp32_team(x, M, w, bias, y, N, K, 1);
}
