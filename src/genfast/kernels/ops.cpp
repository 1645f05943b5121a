// genfast's CPU kernels as PyTorch operators (torch.ops.genfast.*): the dispatcher calls them in
// a few microseconds, from eager code and from torch.compile graphs alike.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

extern "C" {
#include "int8_gemv.c"
#include "int4_gemv.c"
#include "decode_attention.c"
#include "fp32_gemv.c"
#include "decode_layer.c"
}

#include <algorithm>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace {

const float* data_or_null(const c10::optional<at::Tensor>& t) { return t.has_value() ? t->data_ptr<float>() : nullptr; }

// x (rows, in) fp32 (as int16 rows, int8_gemv.c) times packed int8 weights (padded out, padded in; int8_gemv.c's tiled order)
// -> (rows, padded out) fp32; scale/bias padded alike.
at::Tensor int8_gemv(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& scale,
                     const c10::optional<at::Tensor>& bias) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && packed.scalar_type() == at::kChar,
              "genfast::int8_gemv wants fp32 (rows, in) activations and packed int8 weights");
  const int64_t n_padded = packed.size(0), k_padded = packed.size(1);
  TORCH_CHECK(packed.dim() == 2 && packed.is_contiguous() && scale.is_contiguous() && n_padded % ROWS == 0 &&
                  k_padded % CHUNK == 0 && scale.numel() == n_padded && x.size(1) <= k_padded &&
                  (!bias.has_value() || bias->numel() == n_padded),
              "genfast::int8_gemv: weights, scale and bias do not match the packed layout");
  const at::Tensor xc = x.contiguous();
  const int64_t rows = x.size(0);
  at::Tensor xq = at::empty({rows, k_padded}, x.options().dtype(at::kShort)), xs = at::empty({rows}, x.options());
  quantize_rows(xc.data_ptr<float>(), rows, x.size(1), k_padded, xq.data_ptr<int16_t>(), xs.data_ptr<float>());
  at::Tensor y = at::empty({rows, n_padded}, x.options());
  genfast_int8_gemv(xq.data_ptr<int16_t>(), xs.data_ptr<float>(), rows, packed.data_ptr<int8_t>(),
                    scale.data_ptr<float>(), data_or_null(bias), y.data_ptr<float>(),
                    n_padded, k_padded, at::get_num_threads());
  return y;
}

// As int8_gemv with the activations rounded to uint8 (int8_gemv.c's genfast_int8_gemm_u8: prompts);
// wsum (padded out) int32: each packed row's sum of weights. Without VNNI: int8_gemv's product.
at::Tensor int8_gemm(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& scale, const at::Tensor& wsum,
                     const c10::optional<at::Tensor>& bias) {
  if (!GF_HAVE_U8_GEMM) return int8_gemv(x, packed, scale, bias);
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && packed.scalar_type() == at::kChar &&
                  wsum.scalar_type() == at::kInt && wsum.is_contiguous() && wsum.numel() == packed.size(0),
              "genfast::int8_gemm wants fp32 (rows, in) activations, packed int8 weights and int32 row sums");
  const int64_t n_padded = packed.size(0), k_padded = packed.size(1);
  TORCH_CHECK(packed.dim() == 2 && packed.is_contiguous() && scale.is_contiguous() && n_padded % ROWS == 0 &&
                  k_padded % CHUNK == 0 && scale.numel() == n_padded && x.size(1) <= k_padded &&
                  (!bias.has_value() || bias->numel() == n_padded),
              "genfast::int8_gemm: weights, scale and bias do not match the packed layout");
  const at::Tensor xc = x.contiguous();
  const int64_t rows = x.size(0);
  at::Tensor xq = at::empty({rows, k_padded}, x.options().dtype(at::kByte)), xs = at::empty({rows}, x.options());
  at::Tensor y = at::empty({rows, n_padded}, x.options());
  genfast_int8_gemm_u8(xc.data_ptr<float>(), x.size(1), xq.data_ptr<uint8_t>(), xs.data_ptr<float>(), rows,
                       packed.data_ptr<int8_t>(), wsum.data_ptr<int32_t>(), scale.data_ptr<float>(), data_or_null(bias),
                       y.data_ptr<float>(), n_padded, k_padded, at::get_num_threads());
  return y;
}

// x (rows, in) fp32 times int4 weights in int4_gemv.c's layout (packed [pairs][in / 32][32] uint8,
// scale2 [pairs][groups][2] bf16, minimum [2 * pairs][groups] bf16, bias [2 * pairs] fp32) -> (rows, 2 * pairs).
at::Tensor int4_gemv(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& scale2, const at::Tensor& minimum,
                     const c10::optional<at::Tensor>& bias, int64_t group_size) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && packed.scalar_type() == at::kByte && packed.dim() == 3 &&
                  packed.size(2) == I4_BLOCK && packed.is_contiguous(),
              "genfast::int4_gemv wants fp32 (rows, in) activations and int4 weights packed by genfast");
  const int64_t pairs = packed.size(0), k = packed.size(1) * I4_BLOCK, groups = k / group_size;
  TORCH_CHECK(group_size % I4_BLOCK == 0 && k % group_size == 0 && x.size(1) == k &&
                  scale2.scalar_type() == at::kBFloat16 && scale2.is_contiguous() && scale2.numel() == pairs * groups * 2 &&
                  minimum.scalar_type() == at::kBFloat16 && minimum.is_contiguous() &&
                  minimum.numel() == 2 * pairs * groups && (!bias.has_value() || bias->numel() == 2 * pairs),
              "genfast::int4_gemv: weights, scales, minimums and bias do not match the packed layout");
  const at::Tensor xc = x.contiguous();
  const int64_t rows = x.size(0);
  at::Tensor xd = at::empty({rows, 2 * k}, x.options().dtype(at::kChar)), xs = at::empty({rows}, x.options());
  at::Tensor xg = at::empty({rows, groups}, x.options());
  int4_prepare_rows(xc.data_ptr<float>(), rows, k, group_size, xd.data_ptr<int8_t>(), xs.data_ptr<float>(),
                    xg.data_ptr<float>());
  at::Tensor y = at::empty({rows, 2 * pairs}, x.options());
  genfast_int4_gemv(xd.data_ptr<int8_t>(), xs.data_ptr<float>(), xg.data_ptr<float>(), rows, packed.data_ptr<uint8_t>(),
                    reinterpret_cast<const uint16_t*>(scale2.data_ptr<at::BFloat16>()),
                    reinterpret_cast<const uint16_t*>(minimum.data_ptr<at::BFloat16>()), data_or_null(bias), y.data_ptr<float>(),
                    2 * pairs, k, group_size, at::get_num_threads());
  return y;
}

// The int4 weights of int4_gemv as a bf16 (2 * pairs, in) matrix (prompts: a bf16 GEMM multiplies them).
at::Tensor int4_dequantize(const at::Tensor& packed, const at::Tensor& scale2, const at::Tensor& minimum,
                           int64_t group_size) {
  TORCH_CHECK(packed.scalar_type() == at::kByte && packed.dim() == 3 && packed.size(2) == I4_BLOCK &&
                  packed.is_contiguous() && scale2.scalar_type() == at::kBFloat16 && scale2.is_contiguous() &&
                  minimum.scalar_type() == at::kBFloat16 && minimum.is_contiguous(),
              "genfast::int4_dequantize wants int4 weights packed by genfast and bf16 scales");
  const int64_t pairs = packed.size(0), k = packed.size(1) * I4_BLOCK;
  TORCH_CHECK(group_size % I4_BLOCK == 0 && k % group_size == 0 && scale2.numel() == pairs * (k / group_size) * 2 &&
                  minimum.numel() == 2 * pairs * (k / group_size),
              "genfast::int4_dequantize: scales and minimums do not match the packed layout");
  at::Tensor out = at::empty({2 * pairs, k}, packed.options().dtype(at::kBFloat16));
  genfast_int4_dequantize(packed.data_ptr<uint8_t>(), reinterpret_cast<const uint16_t*>(scale2.data_ptr<at::BFloat16>()),
                          reinterpret_cast<const uint16_t*>(minimum.data_ptr<at::BFloat16>()),
                          reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>()), 2 * pairs, k, group_size,
                          at::get_num_threads());
  return out;
}

// q (batch, heads, 1, dim) over the first lengths[b] slots of cache rows (batch, kv_heads, max_len, dim).
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& lengths) {
  TORCH_CHECK(q.scalar_type() == at::kFloat && k.strides() == v.strides() && k.stride(3) == 1,
              "genfast::decode_attention wants fp32 tensors and K, V caches laid out alike");
  at::Tensor qc = q.contiguous(), lens = lengths.to(at::kLong).contiguous();
  at::Tensor out = at::empty_like(qc);
  const int64_t b = q.size(0), heads = q.size(1), dim = q.size(3), max_len = k.size(2);
  TORCH_CHECK(q.size(2) == 1 && heads % k.size(1) == 0 && lens.numel() == b, "genfast::decode_attention: bad shapes");
  for (int64_t i = 0; i < b; i++) {  // the kernel reads slots [0, length): never past the cache
    const int64_t len = lens.data_ptr<int64_t>()[i];
    TORCH_CHECK(len >= 1 && len <= max_len, "genfast::decode_attention: row length ", len, " outside 1..", max_len);
  }
  at::Tensor scores = at::empty({b * heads * max_len}, q.options());
  genfast_decode_attention(qc.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(), k.stride(0), k.stride(1),
                           k.stride(2), lens.data_ptr<int64_t>(), out.data_ptr<float>(), scores.data_ptr<float>(), b,
                           heads, k.size(1), dim, max_len, 1.0f / std::sqrt(static_cast<float>(dim)),
                           at::get_num_threads());
  return out;
}

// A projection's (packed, scale, bias?): int8 (int8_gemv.c's layout, fp32 scale), int4 (int4_gemv.c's
// nibbles [pairs][k / 32][32] uint8; scale = its bf16 group scales [pairs][groups][2] followed by its
// minimums [2 * pairs][groups], one tensor) or fp32 (the (out, in) weight itself, no scale).
gf_linear linear_of(const c10::List<c10::optional<at::Tensor>>& w, size_t at) {
  const c10::optional<at::Tensor> packed = w.get(at), scale = w.get(at + 1), bias = w.get(at + 2);
  TORCH_CHECK(packed.has_value() && packed->is_contiguous() && (!scale.has_value() || scale->is_contiguous()),
              "genfast::layer_plan: projection ", at / 3, " has no weights");
  gf_linear lin = {};
  if (packed->scalar_type() == at::kFloat) {
    TORCH_CHECK(packed->dim() == 2 && !scale.has_value(),
                "genfast::layer_plan: projection ", at / 3, "'s fp32 weight must be (out, in), without a scale");
    lin.bits = 32, lin.n = packed->size(0), lin.k = packed->size(1), lin.wf = packed->data_ptr<float>();
  } else if (!scale.has_value()) {
    TORCH_CHECK(false, "genfast::layer_plan: projection ", at / 3, "'s int8 or int4 weights have no scale");
  } else if (packed->scalar_type() == at::kByte && packed->dim() == 3 && packed->size(2) == I4_BLOCK) {
    lin.bits = 4, lin.n = 2 * packed->size(0), lin.k = packed->size(1) * I4_BLOCK;
    const int64_t groups = scale->numel() / (2 * lin.n);
    TORCH_CHECK(scale->scalar_type() == at::kBFloat16 && groups > 0 && scale->numel() == 2 * lin.n * groups &&
                    lin.k % groups == 0 && (lin.k / groups) % I4_BLOCK == 0,
                "genfast::layer_plan: projection ", at / 3, "'s int4 scales do not match its weights");
    lin.group = lin.k / groups;
    const uint16_t* s = reinterpret_cast<const uint16_t*>(scale->data_ptr<at::BFloat16>());
    lin.scale2 = s, lin.minimum = s + lin.n * groups;
    lin.w = reinterpret_cast<const int8_t*>(packed->data_ptr<uint8_t>());
  } else {
    TORCH_CHECK(packed->scalar_type() == at::kChar && packed->dim() == 2 && packed->size(0) % ROWS == 0 &&
                    packed->size(1) % CHUNK == 0 && scale->scalar_type() == at::kFloat &&
                    scale->numel() == packed->size(0),
                "genfast::layer_plan: projection ", at / 3, " is not a packed int8 or int4 layer");
    lin.bits = 8, lin.n = packed->size(0), lin.k = packed->size(1);
    lin.w = packed->data_ptr<int8_t>(), lin.scale = scale->data_ptr<float>();
  }
  TORCH_CHECK(!bias.has_value() || (bias->numel() == lin.n && bias->is_contiguous() && bias->scalar_type() == at::kFloat),
              "genfast::layer_plan: projection ", at / 3, "'s bias does not match its weights");
  lin.bias = data_or_null(bias);
  return lin;
}

// x (rows <= FP32_MAX_ROWS, in) fp32 times weight (out, in) fp32, row-major -> (rows, out).
at::Tensor fp32_gemv(const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& bias) {
  TORCH_CHECK(x.dim() == 2 && weight.dim() == 2 && x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat &&
                  weight.is_contiguous() && x.size(1) == weight.size(1) && x.size(0) <= FP32_MAX_ROWS &&
                  (!bias.has_value() || (bias->numel() == weight.size(0) && bias->is_contiguous() &&
                                         bias->scalar_type() == at::kFloat)),
              "genfast::fp32_gemv wants up to ", FP32_MAX_ROWS, " fp32 rows and contiguous fp32 (out, in) weights");
  const at::Tensor xc = x.contiguous();
  at::Tensor y = at::empty({x.size(0), weight.size(0)}, x.options());
  genfast_fp32_gemv(xc.data_ptr<float>(), x.size(0), weight.data_ptr<float>(), data_or_null(bias), y.data_ptr<float>(),
                    weight.size(0), weight.size(1), at::get_num_threads());
  return y;
}

// A layer's weights and shapes, checked once; decode_layers fills in the per-step fields.
struct LayerPlan {
  std::vector<at::Tensor> keep;  // holds the weights alive
  gf_layer layer;
};
std::mutex plans_mutex;
std::unordered_map<int64_t, LayerPlan> plans;
int64_t next_plan = 1;

// weights: for norm1, qkv, out, norm2, up, down in turn the norm's (weight, bias?) and the
// projection's (packed, scale, bias?), padded as int8_gemv wants. Returns the plan's id.
int64_t layer_plan(const c10::List<c10::optional<at::Tensor>>& weights, int64_t family, int64_t heads,
                   int64_t kv_heads, int64_t head_dim, int64_t mlp_width, double eps) {
  TORCH_CHECK(weights.size() == 16 && (family == GF_GPT2 || family == GF_LLAMA) && heads % kv_heads == 0 &&
                  head_dim <= GF_MAX_HEAD_DIM,
              "genfast::layer_plan: 16 weights, a known family and heads in whole groups expected");
  LayerPlan plan;
  gf_layer& L = plan.layer;
  L.family = static_cast<int>(family);
  L.H = heads, L.KVH = kv_heads, L.hd = head_dim, L.F = mlp_width, L.eps = static_cast<float>(eps);
  L.qkv = linear_of(weights, 2), L.out = linear_of(weights, 5), L.up = linear_of(weights, 10);
  L.down = linear_of(weights, 13);
  TORCH_CHECK(L.qkv.bits == L.up.bits && L.qkv.group == L.up.group,
              "genfast::layer_plan: the qkv and up projections share their input, so their formats must match");
  for (size_t i : {0, 8})
    TORCH_CHECK(weights.get(i).has_value() && weights.get(i)->scalar_type() == at::kFloat &&
                    weights.get(i)->is_contiguous() && weights.get(i)->numel() == weights.get(0)->numel(),
                "genfast::layer_plan: fp32 norm weights of one width expected");
  L.D = weights.get(0)->numel();
  L.norm1_w = weights.get(0)->data_ptr<float>(), L.norm1_b = data_or_null(weights.get(1));
  L.norm2_w = weights.get(8)->data_ptr<float>(), L.norm2_b = data_or_null(weights.get(9));
  TORCH_CHECK(L.qkv.k >= L.D && L.up.k == L.qkv.k && L.qkv.n >= (L.H + 2 * L.KVH) * L.hd && L.out.k >= L.H * L.hd &&
                  L.out.n >= L.D && L.down.n >= L.D && L.down.k >= L.F && L.up.n >= (family == GF_LLAMA ? 2 : 1) * L.F,
              "genfast::layer_plan: projection shapes do not fit the layer");
  // an fp32 product reads its input rows as the layer leaves them: no padding on either side
  TORCH_CHECK((L.qkv.bits != 32 || (L.qkv.k == L.D && L.up.k == L.D)) && (L.out.bits != 32 || L.out.k == L.H * L.hd) &&
                  (L.down.bits != 32 || L.down.k == L.F) && (L.out.bits != 32 || L.out.n == L.D) &&
                  (L.down.bits != 32 || L.down.n == L.D),
              "genfast::layer_plan: fp32 projections must have the layer's exact widths");
  for (size_t i = 0; i < weights.size(); i++)
    if (weights.get(i).has_value()) plan.keep.push_back(*weights.get(i));
  std::lock_guard<std::mutex> lock(plans_mutex);
  plans.emplace(next_plan, std::move(plan));
  return next_plan++;
}

void release_plan(int64_t id) {
  std::lock_guard<std::mutex> lock(plans_mutex);
  plans.erase(id);
}

// The planned layers in turn for one new token per row (decode_layer.c): x (batch, width) fp32
// -> the stack's output; layer i writes each row's key and value to slot positions[b] of
// k_caches[i] / v_caches[i] (batch, kv_heads, max_len, head_dim). RoPE rows (batch, head_dim).
at::Tensor decode_layers(const at::Tensor& x, const at::Tensor& positions, at::TensorList k_caches,
                         at::TensorList v_caches, at::IntArrayRef plan_ids, const c10::optional<at::Tensor>& rope_cos,
                         const c10::optional<at::Tensor>& rope_sin) {
  const int64_t n = static_cast<int64_t>(plan_ids.size());
  TORCH_CHECK(n > 0 && static_cast<int64_t>(k_caches.size()) == n && static_cast<int64_t>(v_caches.size()) == n,
              "genfast::decode_layers: one K and one V cache per layer expected");
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && positions.scalar_type() == at::kLong &&
                  positions.numel() == x.size(0),
              "genfast::decode_layers wants fp32 (batch, width) activations and int64 positions");
  std::vector<gf_layer> layers(n);
  {
    std::lock_guard<std::mutex> lock(plans_mutex);
    for (int64_t i = 0; i < n; i++) {
      auto found = plans.find(plan_ids[i]);
      TORCH_CHECK(found != plans.end(), "genfast::decode_layers: no layer plan ", plan_ids[i]);
      layers[i] = found->second.layer;
    }
  }
  at::Tensor pos = positions.contiguous();
  const int64_t B = x.size(0);
  int64_t sizes[7] = {0}, qsizes[3] = {0};  // scratch, shared by the layers (they run one after another)
  for (int64_t i = 0; i < n; i++) {
    gf_layer& L = layers[i];
    const at::Tensor &k = k_caches[i], &v = v_caches[i];
    TORCH_CHECK(L.D == x.size(1) && k.scalar_type() == at::kFloat && v.scalar_type() == at::kFloat && k.dim() == 4 &&
                    k.sizes() == v.sizes() && k.strides() == v.strides() && k.stride(3) == 1 && k.size(0) == B &&
                    k.size(1) == L.KVH && k.size(3) == L.hd,
                "genfast::decode_layers: layer ", i, "'s caches or activations do not fit its plan");
    if (L.family == GF_LLAMA)
      TORCH_CHECK(rope_cos.has_value() && rope_sin.has_value() && rope_cos->is_contiguous() &&
                      rope_sin->is_contiguous() && rope_cos->numel() == B * L.hd && rope_sin->numel() == B * L.hd,
                  "genfast::decode_layers: RoPE rows (batch, head_dim) expected");
    L.B = B, L.positions = pos.data_ptr<int64_t>(), L.cos = data_or_null(rope_cos), L.sin = data_or_null(rope_sin);
    L.k_cache = k.data_ptr<float>(), L.v_cache = v.data_ptr<float>();
    L.stride_b = k.stride(0), L.stride_h = k.stride(1), L.stride_l = k.stride(2), L.max_len = k.size(2);
    const int64_t need[7] = {B * L.D, B * L.qkv.n, B * L.out.k, B * std::max(L.out.n, L.down.n),
                             B * L.up.n, B * L.down.k, B * L.H * L.max_len};
    const int64_t qneed[3] = {B * L.qkv.k, B * L.out.k, B * L.down.k};
    for (int j = 0; j < 7; j++) sizes[j] = std::max(sizes[j], need[j]);
    for (int j = 0; j < 3; j++) qsizes[j] = std::max(qsizes[j], qneed[j]);
  }
  for (int64_t b = 0; b < B; b++)
    for (const gf_layer& L : layers)
      TORCH_CHECK(L.positions[b] >= 0 && L.positions[b] < L.max_len, "genfast::decode_layers: position ",
                  L.positions[b], " outside 0..", L.max_len - 1);
  int64_t widest = 0;  // an int4 projection's group sums: at most one per 32 input columns
  for (const gf_layer& L : layers) widest = std::max({widest, L.qkv.k, L.out.k, L.down.k});
  const int64_t xg_slot = B * (widest / I4_BLOCK + 1);
  int64_t total = 3 * B + 3 * xg_slot, qtotal = 0;
  for (int64_t size : sizes) total += size;
  for (int64_t size : qsizes) qtotal += size;
  at::Tensor scratch = at::empty({total}, x.options()), qscratch = at::empty({qtotal}, x.options().dtype(at::kShort));
  float* p = scratch.data_ptr<float>();
  float* starts[8];
  for (int j = 0; j < 7; j++) starts[j] = p, p += sizes[j];
  starts[7] = p;
  int16_t* q = qscratch.data_ptr<int16_t>();
  for (gf_layer& L : layers) {
    L.h = starts[0], L.qkv_y = starts[1], L.attn = starts[2], L.proj = starts[3], L.up_y = starts[4],
    L.act = starts[5], L.scores = starts[6], L.xs = starts[7], L.xg = starts[7] + 3 * B, L.xg_slot = xg_slot;
    L.hq = q, L.attnq = q + qsizes[0], L.actq = q + qsizes[0] + qsizes[1];
  }
  at::Tensor out = x.contiguous().clone();
  genfast_decode_layers(layers.data(), n, out.data_ptr<float>(), at::get_num_threads());
  return out;
}

}  // namespace

TORCH_LIBRARY(genfast, m) {
  m.def("int8_gemv(Tensor x, Tensor packed, Tensor scale, Tensor? bias) -> Tensor");
  m.def("int4_gemv(Tensor x, Tensor packed, Tensor scale2, Tensor minimum, Tensor? bias, int group_size) -> Tensor");
  m.def("int4_dequantize(Tensor packed, Tensor scale2, Tensor minimum, int group_size) -> Tensor");
  m.def("int8_gemm(Tensor x, Tensor packed, Tensor scale, Tensor wsum, Tensor? bias) -> Tensor");
  m.def("fp32_gemv(Tensor x, Tensor weight, Tensor? bias) -> Tensor");
  m.def("decode_attention(Tensor q, Tensor k, Tensor v, Tensor lengths) -> Tensor");
  m.def("layer_plan(Tensor?[] weights, int family, int heads, int kv_heads, int head_dim, int mlp_width, float eps) -> int",
        &layer_plan);
  m.def("release_plan(int plan) -> ()", &release_plan);
  m.def(
      "decode_layers(Tensor x, Tensor positions, Tensor(a!)[] k_caches, Tensor(b!)[] v_caches, int[] plans, "
      "Tensor? rope_cos, Tensor? rope_sin) -> Tensor");
}

TORCH_LIBRARY_IMPL(genfast, CPU, m) {
  m.impl("int8_gemv", &int8_gemv);
  m.impl("int8_gemm", &int8_gemm);
  m.impl("int4_gemv", &int4_gemv);
  m.impl("int4_dequantize", &int4_dequantize);
  m.impl("fp32_gemv", &fp32_gemv);
  m.impl("decode_attention", &decode_attention);
  m.impl("decode_layers", &decode_layers);
}
