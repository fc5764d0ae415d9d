#include "dropnet/nn/sparse_conv.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "dropnet/core/cpu_features.h"
#include "dropnet/core/parallel.h"
#include "dropnet/core/threading.h"
#include "dropnet/kernels/cpu/activation.h"
#include "dropnet/kernels/cpu/conv2d.h"
#include "dropnet/kernels/cpu/csr_matmul.h"
#include "dropnet/kernels/cpu/optimizer.h"

namespace dropnet {
namespace nn {


int64_t sparse_conv_forward_workspace(const cpu::ConvGeometry& g, int threads) {
  return std::max(threads, 1) * g.col_rows() * g.col_cols();
}

int64_t sparse_conv_backward_workspace(const cpu::ConvGeometry& g, int64_t N, int64_t F, int64_t nnz, int threads) {
  const int64_t chunks = (N + cpu::kConvImagesPerChunk - 1) / cpu::kConvImagesPerChunk;
  return nnz + chunks * (nnz + F) + std::max(threads, 1) * g.col_rows() * g.col_cols();
}

void sparse_conv_forward(const float* x, int64_t N, const cpu::ConvGeometry& g, const SparseWeight& w,
                         const float* bias, cpu::Activation activation, float leaky_slope, float* y, float* workspace,
                         int64_t workspace_floats) {
  const int64_t K = g.col_rows(), P = g.col_cols(), CHW = g.C * g.H * g.W, F = w.rows;
  const bool relu = activation == cpu::Activation::relu;
  const cpu::CsrView S = w.view();
  const int parts = cpu::conv_parts_for_workspace(N, 0, K * P, workspace_floats);
  for_each_part(N, parts, [&](int part, int64_t n0, int64_t n1) {
    float* cols = workspace + part * K * P;
    for (int64_t n = n0; n < n1; ++n) {
      cpu::im2col(x + n * CHW, g, cols, P);
      cpu::csr_matmul(S, cols, P, P, bias, relu, y + n * F * P, P);
    }
  });
  if (activation != cpu::Activation::identity && !relu)
    cpu::activation_forward(static_cast<cpu::ActivationKind>(activation), y, y, N * F * P, leaky_slope);
}

void sparse_conv_backward(const float* dy, const float* x, int64_t N, const cpu::ConvGeometry& g,
                          const SparseWeight& w, float* dx, float* dw, float* db, float* workspace,
                          int64_t workspace_floats) {
  const int64_t K = g.col_rows(), P = g.col_cols(), CHW = g.C * g.H * g.W, F = w.rows, nnz = w.nnz;
  const int64_t chunks = (N + cpu::kConvImagesPerChunk - 1) / cpu::kConvImagesPerChunk;
  const int64_t partial_size = nnz + F;  // dW at the stored entries, then db
  float* t_values = workspace;           // Wᵀ's values in its entry order
  float* partials = t_values + nnz;
  float* cols_base = partials + chunks * partial_size;
  const cpu::CsrView S = w.view();
  cpu::CsrView St = w.t_view();
  if (dx) {
    cpu::csr_gather_ordered_values(St, 0, nnz, t_values);
    St.values = t_values;
    St.value_index = nullptr;
  }
  const int parts = cpu::conv_parts_for_workspace(chunks, nnz + chunks * partial_size, K * P, workspace_floats);
  for_each_part(chunks, parts, [&](int part, int64_t c0, int64_t c1) {
    float* cols = cols_base + part * K * P;
    for (int64_t chunk = c0; chunk < c1; ++chunk) {
      float* pdw = partials + chunk * partial_size;
      float* pdb = pdw + nnz;
      std::fill(pdw, pdw + partial_size, 0.f);
      const int64_t n_end = std::min(N, (chunk + 1) * cpu::kConvImagesPerChunk);
      for (int64_t n = chunk * cpu::kConvImagesPerChunk; n < n_end; ++n) {
        const float* dyn = dy + n * F * P;
        cpu::im2col(x + n * CHW, g, cols, P);
        cpu::csr_sampled_dot(S, dyn, P, cols, P, P, pdw);
        if (db) {
          for (int64_t f = 0; f < F; ++f) {
            double s = 0.0;
            for (int64_t j = 0; j < P; ++j) s += dyn[f * P + j];
            pdb[f] += static_cast<float>(s);
          }
        }
        if (dx) {  // dcols (K × P) = Wᵀ · dy[n], then back onto the image
          cpu::csr_matmul(St, dyn, P, P, nullptr, false, cols, P);
          cpu::col2im(cols, P, g, dx + n * CHW);
        }
      }
    }
  });
  // Chunk partials summed in chunk order; threads split the (independent) entries.
  const int64_t total = nnz + (db ? F : 0);
  const int out_parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), total / 4096)));
  for_each_part(total, out_parts, [&](int, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float s = 0.f;
      for (int64_t chunk = 0; chunk < chunks; ++chunk) s += partials[chunk * partial_size + i];
      if (i < nnz) dw[i] = s;
      else db[i - nnz] += s;
    }
  });
}

BreakEven sparse_conv_break_even(const cpu::ConvGeometry& g, int64_t F, int64_t rows) {
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                         int64_t, int, int>;
  static std::mutex mu;
  static std::map<Key, BreakEven> cache;
  const Key key{g.C, g.H, g.W, g.kh, g.kw, g.stride_h, g.stride_w, g.pad_top, g.pad_left, g.dil_h * 1000 + g.dil_w,
                F, static_cast<int>(active_isa()), get_num_threads()};
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) {
    BreakEven r = it->second;
    r.batch = rows;
    return r;
  }
  // A few images per thread: both paths loop over images, so the ratio does not depend on how many.
  const int64_t N = 2 * std::max(1, get_num_threads());
  const int64_t K = g.col_rows(), P = g.col_cols(), CHW = g.C * g.H * g.W;
  std::vector<float> x(static_cast<size_t>(N * CHW)), w(static_cast<size_t>(F * K)), dy(static_cast<size_t>(N * F * P)),
      y(dy.size()), dx(x.size()), dw(w.size()), db(static_cast<size_t>(F)), bias(static_cast<size_t>(F), 0.1f),
      m(w.size(), 0.f), v(w.size(), 0.f), ones(w.size(), 1.f);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 7919u) % 1000u) * 1e-3f;
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>((i * 104729u) % 1000u) * 1e-3f - 0.5f;
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = static_cast<float>((i * 15485863u) % 1000u) * 1e-3f - 0.5f;
  cpu::AdamArgs adam;
  adam.step_size = 1e-9f;
  const int threads = get_num_threads();
  std::vector<float> dense_ws(static_cast<size_t>(std::max(cpu::conv2d_forward_workspace(g, F, true, threads),
                                                           cpu::conv2d_backward_workspace(g, N, F, threads))));
  const int64_t dense_n = static_cast<int64_t>(dense_ws.size());
  std::vector<float> sparse_ws(static_cast<size_t>(sparse_conv_backward_workspace(g, N, F, F * K, threads)));
  const int64_t sparse_n = static_cast<int64_t>(sparse_ws.size());
  // The layer's own calls (Conv2DLayer::forward / backward), ReLU fused.
  auto dense_forward = [&] {
    cpu::conv2d_forward(x.data(), N, g, w.data(), F, bias.data(), cpu::Activation::relu, 0.01f, y.data(),
                        dense_ws.data(), dense_n);
  };
  auto dense_rest = [&] {
    std::fill(dw.begin(), dw.end(), 0.f);
    cpu::conv2d_backward(dy.data(), x.data(), N, g, w.data(), F, dx.data(), dw.data(), db.data(), dense_ws.data(),
                         dense_n);
    cpu::adam_update(adam, F * K, w.data(), dw.data(), m.data(), v.data(), ones.data());
  };
  auto sparse_forward = [&](SparseWeight& s) {
    sparse_conv_forward(x.data(), N, g, s, bias.data(), cpu::Activation::relu, 0.01f, y.data(), sparse_ws.data(),
                        sparse_n);
  };
  auto sparse_rest = [&](SparseWeight& s) {
    sparse_conv_backward(dy.data(), x.data(), N, g, s, dx.data(), s.grad.data(), db.data(), sparse_ws.data(),
                         sparse_n);
    cpu::adam_update(adam, s.nnz, s.values.data(), s.grad.data(), s.slots[0].data(), s.slots[1].data(), nullptr);
  };
  BreakEven r = time_break_even(F, K, w.data(), dw.data(), {m.data(), v.data()}, dense_forward, dense_rest,
                                sparse_forward, sparse_rest);
  cache.emplace(key, r);
  r.batch = rows;
  return r;
}

}  // namespace nn
}  // namespace dropnet
