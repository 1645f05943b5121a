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
  float s = 0.f;
  for (long i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

/* scores[l] = q . k[l] * scale for l < len (k rows stride_l apart); returns the largest */
static float scores_of(const float *q, const float *k, long stride_l, long len, long D, float scale, float *scores) {
  float top = -INFINITY;
  long l = 0;
#ifdef __AVX512F__
  if (D % 16 == 0) {
    for (; l + 4 <= len; l += 4) { /* four keys at once: independent FMA chains */
      const float *k0 = k + l * stride_l;
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (long d = 0; d < D; d += 16) {
        __m512 qv = _mm512_loadu_ps(q + d);
        a0 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + d), a0);
        a1 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + stride_l + d), a1);
        a2 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + 2 * stride_l + d), a2);
        a3 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + 3 * stride_l + d), a3);
      }
      scores[l] = _mm512_reduce_add_ps(a0) * scale;
      scores[l + 1] = _mm512_reduce_add_ps(a1) * scale;
      scores[l + 2] = _mm512_reduce_add_ps(a2) * scale;
      scores[l + 3] = _mm512_reduce_add_ps(a3) * scale;
    }
  }
#endif
  for (; l < len; l++) scores[l] = dot(q, k + l * stride_l, D) * scale;
  for (l = 0; l < len; l++) top = scores[l] > top ? scores[l] : top;
  return top;
}

/* out = sum_l p[l] * v[l] */
static void weighted_sum(const float *p, const float *v, long stride_l, long len, long D, float *out) {
  long d = 0;
#ifdef __AVX512F__
  for (; d + 64 <= D; d += 64) { /* 64 output lanes in registers across all keys */
    __m512 o0 = _mm512_setzero_ps(), o1 = o0, o2 = o0, o3 = o0;
    for (long l = 0; l < len; l++) {
      const float *row = v + l * stride_l + d;
      __m512 pl = _mm512_set1_ps(p[l]);
      o0 = _mm512_fmadd_ps(pl, _mm512_loadu_ps(row), o0);
      o1 = _mm512_fmadd_ps(pl, _mm512_loadu_ps(row + 16), o1);
      o2 = _mm512_fmadd_ps(pl, _mm512_loadu_ps(row + 32), o2);
      o3 = _mm512_fmadd_ps(pl, _mm512_loadu_ps(row + 48), o3);
    }
    _mm512_storeu_ps(out + d, o0);
    _mm512_storeu_ps(out + d + 16, o1);
    _mm512_storeu_ps(out + d + 32, o2);
    _mm512_storeu_ps(out + d + 48, o3);
  }
#endif
  for (; d < D; d++) {
    float s = 0.f;
    for (long l = 0; l < len; l++) s += p[l] * v[l * stride_l + d];
    out[d] = s;
  }
}

/* out = softmax(q . k[:len] * scale) @ v[:len] for one query; s: scratch of len floats */
static void attend(const float *q, const float *k, const float *v, long stride_l, long len, long D, float scale,
                   float *s, float *out) {
  float top = scores_of(q, k, stride_l, len, D, scale, s), total = 0.f;
  for (long l = 0; l < len; l++) {
    s[l] = expf(s[l] - top);
    total += s[l];
  }
  for (long l = 0; l < len; l++) s[l] /= total;
  weighted_sum(s, v, stride_l, len, D, out);
}

/* q, out: [B][H][D] contiguous; k, v: element strides (row, kv head, slot), D contiguous;
 * scores: scratch of B * H * max_len floats. */
void genfast_decode_attention(const float *q, const float *k, const float *v, long stride_b, long stride_h,
                              long stride_l, const int64_t *lengths, float *out, float *scores, long B, long H,
                              long KVH, long D, long max_len, float scale, int threads) {
  long group = H / KVH;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (long task = 0; task < B * H; task++) {
    long b = task / H, h = task % H;
    attend(q + task * D, k + b * stride_b + (h / group) * stride_h, v + b * stride_b + (h / group) * stride_h,
           stride_l, lengths[b], D, scale, scores + task * max_len, out + task * D);
  }
}
