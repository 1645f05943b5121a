/* genfast: a decode step's whole layer stack (one new token per row), int8, int4 or fp32 weights.
 *
 * Per layer x += attention(norm1(x)) ; x += mlp(norm2(x)), every layer in one OpenMP parallel
 * region: the four projections are int8_gemv.c's GEMV, the attention decode_attention.c's, and
 * between them only barriers, no return to the caller. It replaces about thirty small operators
 * per layer and the serial code around them, during which the other threads waited
 * (benchmarks/step_ablations.py measures the step against the per-op path).
 *
 * Families: GF_GPT2 (LayerNorm, tanh GELU) and GF_LLAMA (RMSNorm, rotate-half RoPE, SiLU-gated MLP
 * whose fused up projection holds the gate rows first). Fused qkv output: [q heads | k | v].
 * Projections are int8 (int8_gemv.c's layout, int16 inputs), int4 (int4_gemv.c's: int8 inputs laid
 * out per row pair, group sums of the input) or fp32 (PyTorch's row-major weights, fp32 inputs as
 * they are), each its own.
 * Requires int8_gemv.c (ROWS, gemv_team), int4_gemv.c, fp32_gemv.c (fp32_team) and decode_attention.c
 * (attend) before it.
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
  int bits;        /* 8, 4 or 32 */
  const int8_t *w; /* 8: packed (int8_gemv.c's layout); 4: int4_gemv.c's packed nibbles */
  const float *wf; /* 32: [n][k] row-major, unpadded */
  const float *scale, *bias; /* 8: scale [n]; bias [n], nullable */
  const uint16_t *scale2, *minimum; /* 4: int4_gemv.c's bf16 group scales and minimums */
  long n, k, group; /* padded rows and columns (32: exact); 4: columns per group */
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
  int16_t *hq, *attnq, *actq; /* the products' inputs: [B][qkv.k], [B][out.k], [B][down.k] int16, or
                                 (int4 projections) the same bytes as int8 [B][2 k] */
  float *xg;     /* [3][xg_slot]: an int4 projection's group sums of its inputs (hq, attnq, actq) */
  long xg_slot;  /* B * (the widest projection input / 32) */
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

/* Row m (width K) of a projection's input in the form its product takes: int16 of width lin->k
 * (zero padding), int4_gemv.c's int8 layout and group sums (K == lin->k), or for fp32 the row itself. */
static void prepare_row(const gf_linear *lin, const float *x, long K, long m, int16_t *xq, float *xs, float *xg) {
  if (lin->bits == 32)
    return;
  if (lin->bits == 4)
    int4_prepare_rows(x, 1, K, lin->group, (int8_t *)xq + m * 2 * lin->k, xs + m, xg + m * (lin->k / lin->group));
  else
    quantize_rows(x, 1, K, lin->k, xq + m * lin->k, xs + m);
}

/* The team's share of lin's product of B prepared rows (fp32: the rows x, lin->k apart) into y, then a
 * barrier if ``wait``. An int4 product always ends with one: its rows are split otherwise than the int8
 * GEMV's blocks, and add_residual relies on that split to add only what the thread wrote. */
static void product_of(const gf_linear *lin, const float *x, const int16_t *xq, const float *xs, const float *xg,
                       long B, float *y, int wait) {
  if (lin->bits == 32)
    fp32_team(x, B, lin->wf, lin->bias, y, lin->n, lin->k, ROWS);
  else if (lin->bits == 4)
    int4_team((const int8_t *)xq, xs, xg, B, (const uint8_t *)lin->w, lin->scale2, lin->minimum, lin->bias, y,
              lin->n, lin->k, lin->group);
  else
    gemv_team(xq, xs, B, lin->w, lin->scale, lin->bias, y, lin->n, lin->k);
  if (wait || lin->bits == 4) {
#pragma omp barrier
  }
}

/* norm of each row of x, as the rows the next product takes */
static void norm_rows(const gf_layer *L, const float *x, const float *w, const float *b) {
#pragma omp for schedule(static)
  for (long m = 0; m < L->B; m++) {
    norm_row(L, x + m * L->D, w, b, L->h + m * L->D);
    prepare_row(&L->qkv, L->h + m * L->D, L->D, m, L->hq, L->xs, L->xg);
  }
}

/* rows of width K, ld apart, as lin's input rows */
static void prepare_team(const gf_linear *lin, const float *x, long B, long K, long ld, int16_t *xq, float *xs,
                         float *xg) {
#pragma omp for schedule(static)
  for (long m = 0; m < B; m++) prepare_row(lin, x + m * ld, K, m, xq, xs, xg);
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
  for (long blk = 0; blk < (n_padded + ROWS - 1) / ROWS; blk++)
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
  float *xg_attn = L->xg + L->xg_slot, *xg_act = L->xg + 2 * L->xg_slot;
  norm_rows(L, x, L->norm1_w, L->norm1_b);
  product_of(&L->qkv, L->h, L->hq, L->xs, L->xg, B, L->qkv_y, 1);
  attention(L);
  prepare_team(&L->out, L->attn, B, L->H * L->hd, L->out.k, L->attnq, L->xs + B, xg_attn);
  product_of(&L->out, L->attn, L->attnq, L->xs + B, xg_attn, B, L->proj, 0);
  add_residual(L, x, L->proj, L->out.n);
  norm_rows(L, x, L->norm2_w, L->norm2_b);
  product_of(&L->up, L->h, L->hq, L->xs, L->xg, B, L->up_y, 1);
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
  prepare_team(&L->down, L->act, B, F, L->down.k, L->actq, L->xs + 2 * B, xg_act);
  product_of(&L->down, L->act, L->actq, L->xs + 2 * B, xg_act, B, L->proj, 0);
  add_residual(L, x, L->proj, L->down.n);
}

/* layers[0..n) in turn over x: [B][D], updated in place, in one parallel region. */
void genfast_decode_layers(const gf_layer *layers, long n, float *x, int threads) {
#pragma omp parallel num_threads(threads)
  for (long i = 0; i < n; i++) layer_team(&layers[i], x);
}
