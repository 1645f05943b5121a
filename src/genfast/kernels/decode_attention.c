/* genfast: attention of one new query per row over that row's cached keys and values (decode).
 *
 * out[b, h] = softmax(q[b, h] . K[b, g(h), :len[b]] * scale) @ V[b, g(h), :len[b]]
 *
 * Row b sees the first len[b] cache slots (the slots hold positions 0..len-1), so no mask is
 * read and nothing past a row's length is touched. g(h) = h / (heads / kv_heads) (grouped KV).
 * One task per (row, head), each streaming its keys then its values.
 */
#include <math.h>
#include <stdint.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

static float dot(const float *a, const float *b, long n) {
  long i = 0;
  float s = 0.f;
#ifdef __AVX512F__
  __m512 acc = _mm512_setzero_ps();
  for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
  s = _mm512_reduce_add_ps(acc);
#endif
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

static void axpy(float *y, float a, const float *x, long n) {
  long i = 0;
#ifdef __AVX512F__
  __m512 av = _mm512_set1_ps(a);
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
#endif
  for (; i < n; i++) y[i] += a * x[i];
}

/* q, out: [B][H][D] contiguous; k, v: element strides (row, kv head, slot), D contiguous;
 * scores: scratch of B * H * max_len floats. */
void genfast_decode_attention(const float *q, const float *k, const float *v, long stride_b, long stride_h,
                              long stride_l, const int64_t *lengths, float *out, float *scores, long B, long H,
                              long KVH, long D, long max_len, float scale, int threads) {
  long group = H / KVH;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (long task = 0; task < B * H; task++) {
    long b = task / H, h = task % H, len = lengths[b];
    const float *qv = q + task * D;
    const float *kb = k + b * stride_b + (h / group) * stride_h;
    const float *vb = v + b * stride_b + (h / group) * stride_h;
    float *s = scores + task * max_len, *o = out + task * D;
    float top = -INFINITY, total = 0.f;
    for (long l = 0; l < len; l++) {
      s[l] = dot(qv, kb + l * stride_l, D) * scale;
      top = s[l] > top ? s[l] : top;
    }
    for (long l = 0; l < len; l++) {
      s[l] = expf(s[l] - top);
      total += s[l];
    }
    for (long d = 0; d < D; d++) o[d] = 0.f;
    for (long l = 0; l < len; l++) axpy(o, s[l] / total, vb + l * stride_l, D);
  }
}
