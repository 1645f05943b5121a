/* genfast: a decode step's whole layer stack (one new token per row), int8 weights.
 *
 * Per layer x += attention(norm1(x)) ; x += mlp(norm2(x)), every layer in one OpenMP parallel
 * region: the four projections are int8_gemv.c's GEMV, the attention decode_attention.c's, and
 * between them only barriers, no return to the caller. It replaces about thirty small operators
 * per layer and the serial code around them, during which the other threads waited
 * (benchmarks/step_ablations.py measures the step against the per-op path).
 *
 * Families: GF_GPT2 (LayerNorm, tanh GELU) and GF_LLAMA (RMSNorm, rotate-half RoPE, SiLU-gated MLP
 * whose fused up projection holds the gate rows first). Fused qkv output: [q heads | k | v].
 * Requires int8_gemv.c (ROWS, gemv_team) and decode_attention.c (attend) before it.
 */
#include <math.h>
#include <stdint.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define GF_GPT2 0
#define GF_LLAMA 1
#define GF_MAX_HEAD_DIM 512

typedef struct {
  const int8_t *w; /* packed (int8_gemv.c's layout) */
  const float *scale, *bias; /* [n]; bias nullable */
  long n, k;       /* padded rows and columns */
} gf_linear;

typedef struct {
  int family;
  long B, D, H, KVH, hd, F; /* rows, model width, heads, kv heads, head dim, MLP width */
  float eps;
  const float *norm1_w, *norm1_b, *norm2_w, *norm2_b; /* biases nullable (RMSNorm has none) */
  gf_linear qkv, out, up, down;
  float *k_cache, *v_cache; /* this layer's; element strides below, head dim contiguous */
  long stride_b, stride_h, stride_l, max_len;
  const int64_t *positions; /* [B]: the slot each row writes; it then attends to slots 0..position */
  const float *cos, *sin;   /* [B][hd] RoPE rows at those positions (GF_LLAMA) */
  /* scratch: */
  float *h;      /* [B][D]: a norm's output */
  float *qkv_y;  /* [B][qkv.n] */
  float *attn;   /* [B][out.k] */
  float *proj;   /* [B][max(out.n, down.n)] */
  float *up_y;   /* [B][up.n] */
  float *act;    /* [B][down.k] */
  float *scores; /* [B * H][max_len] */
  float *xs;     /* [3][B]: the row scales of hq, attnq, actq */
  int16_t *hq, *attnq, *actq; /* the GEMVs' int16 inputs: [B][qkv.k], [B][out.k], [B][down.k] */
} gf_layer;

static void norm_row(const gf_layer *L, const float *x, const float *w, const float *b, float *out) {
  const long D = L->D;
  if (L->family == GF_GPT2) { /* LayerNorm: biased variance, as torch computes it */
    float mean = 0.f, var = 0.f;
    for (long i = 0; i < D; i++) mean += x[i];
    mean /= D;
    for (long i = 0; i < D; i++) var += (x[i] - mean) * (x[i] - mean);
    const float inv = 1.f / sqrtf(var / D + L->eps);
    for (long i = 0; i < D; i++) out[i] = (x[i] - mean) * inv * w[i] + (b ? b[i] : 0.f);
  } else { /* RMSNorm */
    float ms = 0.f;
    for (long i = 0; i < D; i++) ms += x[i] * x[i];
    const float inv = 1.f / sqrtf(ms / D + L->eps);
    for (long i = 0; i < D; i++) out[i] = w[i] * (x[i] * inv);
  }
}

/* norm of each row of x, as the int16 rows the next GEMV takes */
static void norm_rows(const gf_layer *L, const float *x, const float *w, const float *b) {
#pragma omp for schedule(static)
  for (long m = 0; m < L->B; m++) {
    norm_row(L, x + m * L->D, w, b, L->h + m * L->D);
    quantize_rows(L->h + m * L->D, 1, L->D, L->qkv.k, L->hq + m * L->qkv.k, L->xs + m);
  }
}

/* rows of width K, ld apart, as int16 rows of width Kp (zero padding) */
static void quantize_team(const float *x, long B, long K, long ld, long Kp, int16_t *xq, float *xs) {
#pragma omp for schedule(static)
  for (long m = 0; m < B; m++) quantize_rows(x + m * ld, 1, K, Kp, xq + m * Kp, xs + m);
}

/* out = x * cos + rotate_half(x) * sin, rotate_half(x) = [-x[half:], x[:half]] */
static void rope(const float *x, const float *cos, const float *sin, long hd, float *out) {
  const long half = hd / 2;
  for (long i = 0; i < hd; i++) out[i] = x[i] * cos[i] + (i < half ? -x[i + half] : x[i - half]) * sin[i];
}

/* exp, tanh-GELU and SiLU over n floats; AVX-512 where present (a degree-6 polynomial after the
 * usual 2^n range reduction: within a few float ulps of expf) */
#ifdef __AVX512F__
static inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.f)), _mm512_set1_ps(88.f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
  __m512 p = _mm512_set1_ps(1.f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}
#endif

static void gelu_tanh(const float *x, float *out, long n) {
  long i = 0;
#ifdef __AVX512F__
  const __m512 one = _mm512_set1_ps(1.f), two = _mm512_set1_ps(2.f), half = _mm512_set1_ps(0.5f);
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    const __m512 u = _mm512_mul_ps(_mm512_set1_ps(0.7978845608f),
                                   _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(0.044715f), v), _mm512_mul_ps(v, v), v));
    /* tanh(u) = 1 - 2 / (exp(2u) + 1) */
    const __m512 t = _mm512_sub_ps(one, _mm512_div_ps(two, _mm512_add_ps(exp16(_mm512_mul_ps(two, u)), one)));
    _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, t)));
  }
#endif
  for (; i < n; i++) out[i] = 0.5f * x[i] * (1.f + tanhf(0.7978845608f * (x[i] + 0.044715f * x[i] * x[i] * x[i])));
}

static void silu_mul(const float *gate, const float *up, float *out, long n) {
  long i = 0;
#ifdef __AVX512F__
  for (; i + 16 <= n; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i);
    const __m512 s = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.f), exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_storeu_ps(out + i, _mm512_mul_ps(s, _mm512_loadu_ps(up + i)));
  }
#endif
  for (; i < n; i++) out[i] = gate[i] / (1.f + expf(-gate[i])) * up[i];
}

/* x[m][n] += y[m][n] for n < D, over the row blocks this thread wrote in the GEMV before it */
static void add_residual(const gf_layer *L, float *x, const float *y, long n_padded) {
#pragma omp for schedule(static)
  for (long blk = 0; blk < n_padded / ROWS; blk++)
    for (long m = 0; m < L->B; m++)
      for (long n = blk * ROWS; n < blk * ROWS + ROWS && n < L->D; n++) x[m * L->D + n] += y[m * n_padded + n];
}

static void attention(const gf_layer *L) {
  const long B = L->B, H = L->H, KVH = L->KVH, hd = L->hd, group = H / KVH;
  const float scale = 1.f / sqrtf((float)hd);
  /* keys (rotated) and values into this step's slot, then every head attends */
#pragma omp for schedule(static)
  for (long task = 0; task < B * KVH; task++) {
    const long b = task / KVH, g = task % KVH;
    const float *k = L->qkv_y + b * L->qkv.n + (H + g) * hd, *v = k + KVH * hd;
    const long slot = b * L->stride_b + g * L->stride_h + L->positions[b] * L->stride_l;
    if (L->family == GF_LLAMA)
      rope(k, L->cos + b * hd, L->sin + b * hd, hd, L->k_cache + slot);
    else
      for (long i = 0; i < hd; i++) L->k_cache[slot + i] = k[i];
    for (long i = 0; i < hd; i++) L->v_cache[slot + i] = v[i];
  }
#pragma omp for schedule(static)
  for (long task = 0; task < B * H; task++) {
    const long b = task / H, h = task % H;
    float rotated[GF_MAX_HEAD_DIM];
    const float *q = L->qkv_y + b * L->qkv.n + h * hd;
    if (L->family == GF_LLAMA) {
      rope(q, L->cos + b * hd, L->sin + b * hd, hd, rotated);
      q = rotated;
    }
    const long base = b * L->stride_b + (h / group) * L->stride_h;
    attend(q, L->k_cache + base, L->v_cache + base, L->stride_l, L->positions[b] + 1, hd, scale,
           L->scores + task * L->max_len, L->attn + b * L->out.k + h * hd);
  }
}

/* The calling team runs one layer over x: [B][D], updated in place. */
static void layer_team(const gf_layer *L, float *x) {
  const long B = L->B, F = L->F, slices = (F + 255) / 256;
  norm_rows(L, x, L->norm1_w, L->norm1_b);
  gemv_team(L->hq, L->xs, B, L->qkv.w, L->qkv.scale, L->qkv.bias, L->qkv_y, L->qkv.n, L->qkv.k);
#pragma omp barrier
  attention(L);
  quantize_team(L->attn, B, L->H * L->hd, L->out.k, L->out.k, L->attnq, L->xs + B);
  gemv_team(L->attnq, L->xs + B, B, L->out.w, L->out.scale, L->out.bias, L->proj, L->out.n, L->out.k);
  add_residual(L, x, L->proj, L->out.n);
  norm_rows(L, x, L->norm2_w, L->norm2_b);
  gemv_team(L->hq, L->xs, B, L->up.w, L->up.scale, L->up.bias, L->up_y, L->up.n, L->up.k);
#pragma omp barrier
  /* the activation in slices of 256 columns per task */
#pragma omp for schedule(static)
  for (long task = 0; task < B * slices; task++) {
    const long m = task / slices, j = (task % slices) * 256, n = F - j < 256 ? F - j : 256;
    const float *u = L->up_y + m * L->up.n + j;
    if (L->family == GF_LLAMA)
      silu_mul(u, u + F, L->act + m * L->down.k + j, n);
    else
      gelu_tanh(u, L->act + m * L->down.k + j, n);
  }
  quantize_team(L->act, B, F, L->down.k, L->down.k, L->actq, L->xs + 2 * B);
  gemv_team(L->actq, L->xs + 2 * B, B, L->down.w, L->down.scale, L->down.bias, L->proj, L->down.n, L->down.k);
  add_residual(L, x, L->proj, L->down.n);
}

/* layers[0..n) in turn over x: [B][D], updated in place, in one parallel region. */
void genfast_decode_layers(const gf_layer *layers, long n, float *x, int threads) {
#pragma omp parallel num_threads(threads)
  for (long i = 0; i < n; i++) layer_team(&layers[i], x);
}
