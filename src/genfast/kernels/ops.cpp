// genfast's CPU kernels as PyTorch operators (torch.ops.genfast.*): the dispatcher calls them in
// a few microseconds, from eager code and from torch.compile graphs alike.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

extern "C" {
#include "int8_gemv.c"
#include "decode_attention.c"
}

namespace {

// x (rows, in) fp32 times packed int8 weights (padded out, padded in; int8_gemv.c's tiled order)
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
  at::Tensor xp = x.size(1) == k_padded ? x.contiguous() : at::constant_pad_nd(x, {0, k_padded - x.size(1)});
  at::Tensor y = at::empty({x.size(0), n_padded}, x.options());
  genfast_int8_gemv(xp.data_ptr<float>(), xp.size(0), packed.data_ptr<int8_t>(), scale.data_ptr<float>(),
                    bias.has_value() ? bias->data_ptr<float>() : nullptr, y.data_ptr<float>(), n_padded, k_padded,
                    at::get_num_threads());
  return y;
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

}  // namespace

TORCH_LIBRARY(genfast, m) {
  m.def("int8_gemv(Tensor x, Tensor packed, Tensor scale, Tensor? bias) -> Tensor");
  m.def("decode_attention(Tensor q, Tensor k, Tensor v, Tensor lengths) -> Tensor");
}

TORCH_LIBRARY_IMPL(genfast, CPU, m) {
  m.impl("int8_gemv", &int8_gemv);
  m.impl("decode_attention", &decode_attention);
}
