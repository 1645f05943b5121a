/* genfast: index of the largest value in each row (greedy decoding's last step), as torch.argmax:
 * the first index of the maximum, and the first NaN's index where a row has one.
 *
 * PyTorch's CPU argmax walks a 50k-entry vocabulary one value at a time (about 0.1 ms per decode
 * step on GPT-2's vocabulary, measured); two vectorized passes (the maximum, then where it first
 * occurs) read the row from cache twice in a few microseconds.
 */
#include <math.h>
#include <stdint.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

static int64_t row_argmax(const float *x, long n) {
  float top = -INFINITY;
  long i = 0;
#ifdef __AVX512F__
  __m512 m = _mm512_set1_ps(-INFINITY);
  __mmask16 nan = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_loadu_ps(x + i);
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    m = _mm512_max_ps(m, v);
  }
  top = nan ? NAN : _mm512_reduce_max_ps(m);
#endif
  for (; i < n; i++) top = (x[i] > top || x[i] != x[i]) && top == top ? x[i] : top;
  long j = 0;
  if (top != top) { /* the first NaN */
    while (x[j] == x[j]) j++;
    return j;
  }
#ifdef __AVX512F__
  __m512 t = _mm512_set1_ps(top);
  for (; j + 16 <= n; j += 16) {
    __mmask16 hit = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + j), t, _CMP_EQ_OQ);
    if (hit) return j + __builtin_ctz(hit);
  }
#endif
  while (x[j] != top) j++;
  return j;
}

/* x: [B] rows of n floats, row_stride apart; out: [B] */
void genfast_argmax(const float *x, long B, long n, long row_stride, int64_t *out, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (B > 1)
  for (long b = 0; b < B; b++) out[b] = row_argmax(x + b * row_stride, n);
}
