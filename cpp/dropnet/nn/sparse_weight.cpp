#include "dropnet/nn/sparse_weight.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <tuple>

#include "dropnet/core/cpu_features.h"
#include "dropnet/core/parallel.h"
#include "dropnet/core/threading.h"
#include "dropnet/kernels/cpu/gemm.h"
#include "dropnet/kernels/cpu/gemm_skip_zeros.h"
#include "dropnet/kernels/cpu/optimizer.h"
#include "dropnet/kernels/cpu/sparse_sddmm.h"
#include "dropnet/kernels/cpu/spmm.h"
#include "dropnet/nn/layers.h"

namespace dropnet {
namespace nn {

const char* sparse_mode_name(SparseMode m) {
  switch (m) {
    case SparseMode::automatic: return "auto";
    case SparseMode::sparse: return "sparse";
    case SparseMode::dense: return "dense";
  }
  return "?";
}

namespace {
// CSR pattern (indptr, indices) of a 0/1 keep array and its transpose; values come by gather.
void build_pattern(const uint8_t* keep, int64_t N, int64_t K, SparseWeight& s) {
  s.rows = N;
  s.cols = K;
  s.indptr.assign(static_cast<size_t>(N + 1), 0);
  cpu::csr_count_rows(nullptr, keep, N, K, 0.f, s.indptr.data() + 1);
  for (int64_t n = 0; n < N; ++n) s.indptr[n + 1] += s.indptr[n];
  s.nnz = s.indptr[N];
  s.indices.resize(static_cast<size_t>(std::max<int64_t>(s.nnz, 1)));
  s.values.grow(static_cast<size_t>(std::max<int64_t>(s.nnz, 1)));
  s.grad.grow(static_cast<size_t>(std::max<int64_t>(s.nnz, 1)));
  s.t_indptr.assign(static_cast<size_t>(K + 1), 0);
  s.t_indices.resize(static_cast<size_t>(std::max<int64_t>(s.nnz, 1)));
  s.t_value_index.resize(static_cast<size_t>(std::max<int64_t>(s.nnz, 1)));
  // Column indices straight from the pattern (csr_fill would also copy values we do not have yet).
  parallel_ranges(N, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, K)), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      int64_t p = s.indptr[n];
      const uint8_t* row = keep + n * K;
      for (int64_t k = 0; k < K; ++k)
        if (row[k]) s.indices[p++] = static_cast<int32_t>(k);
    }
  });
  cpu::csr_transpose(N, K, s.indptr.data(), s.indices.data(), s.t_indptr.data(), s.t_indices.data(),
                     s.t_value_index.data());
}

template <class T>
void to_backend(const Backend& backend, Buffer<T>& out, const std::vector<T>& host) {
  out.bind(&backend);
  out.grow(host.size());
  backend.to_device(out.data(), host.data(), host.size() * sizeof(T));
}

}  // namespace

void SparseWeight::build(const float* mask, int64_t n_rows, int64_t n_cols, const Backend& backend) {
  std::vector<uint8_t> keep(static_cast<size_t>(n_rows * n_cols));
  for (size_t i = 0; i < keep.size(); ++i) keep[i] = mask[i] != 0.f;
  build_pattern(keep.data(), n_rows, n_cols, *this);
  compressed_current = false;
  dense_current = true;
  if (backend.host_memory()) return;
  device = &backend;
  values.bind(&backend);
  grad.bind(&backend);
  to_backend(backend, device_indptr, indptr);
  to_backend(backend, device_indices, indices);
  to_backend(backend, device_t_indptr, t_indptr);
  to_backend(backend, device_t_indices, t_indices);
  to_backend(backend, device_t_value_index, t_value_index);
}

cpu::CsrView SparseWeight::view() const {
  cpu::CsrView v;
  v.rows = rows;
  v.cols = cols;
  v.indptr = device ? device_indptr.data() : indptr.data();
  v.indices = device ? device_indices.data() : indices.data();
  v.values = values.data();
  return v;
}

cpu::CsrView SparseWeight::t_view() const {
  cpu::CsrView v;
  v.rows = cols;
  v.cols = rows;
  v.indptr = device ? device_t_indptr.data() : t_indptr.data();
  v.indices = device ? device_t_indices.data() : t_indices.data();
  v.values = values.data();
  v.value_index = device ? device_t_value_index.data() : t_value_index.data();
  return v;
}

void SparseWeight::gather(const float* w, const float* g, const std::vector<const float*>& dense_slots) {
  const size_t n = static_cast<size_t>(std::max<int64_t>(nnz, 1));
  if (slots.size() != dense_slots.size()) {
    slots.clear();
    for (size_t s = 0; s < dense_slots.size(); ++s) {
      slots.emplace_back();
      slots.back().bind(device);
      slots.back().grow(n);
    }
  }
  const Backend& be = device ? *device : cpu_backend();
  const cpu::CsrView v = view();
  be.csr_gather(w, v, values.data());
  be.csr_gather(g, v, grad.data());
  for (size_t s = 0; s < dense_slots.size(); ++s) be.csr_gather(dense_slots[s], v, slots[s].data());
}

void SparseWeight::scatter(float* w, float* g, const std::vector<float*>& dense_slots) const {
  const Backend& be = device ? *device : cpu_backend();
  const cpu::CsrView v = view();
  be.csr_scatter(values.data(), v, w);
  be.csr_scatter(grad.data(), v, g);
  for (size_t s = 0; s < dense_slots.size() && s < slots.size(); ++s) be.csr_scatter(slots[s].data(), v, dense_slots[s]);
}

// ------------------------------------------------------------------------------ calibration

namespace {

int64_t batch_bucket(int64_t rows) {
  int64_t b = 16;
  while (b < rows && b < (int64_t{1} << 20)) b *= 2;
  return b;
}

// A pattern of about `density` kept entries, from a fixed integer hash (no RNG state).
std::vector<uint8_t> calibration_pattern(int64_t N, int64_t K, double density) {
  std::vector<uint8_t> keep(static_cast<size_t>(N * K));
  const uint32_t cut = static_cast<uint32_t>(density * 4294967295.0);
  for (size_t i = 0; i < keep.size(); ++i) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    keep[i] = h < cut;
  }
  return keep;
}

// Values in [-0.5, 0.5) from a fixed integer hash, minus `cut` and clamped at 0 (cut 0.75: 3/4
// zeros, like activations behind ReLU and dropout); cut 0 leaves them signed.
float calibration_value(size_t i, uint32_t mult, float cut) {
  const float v = static_cast<float>((i * mult) % 1000u) * 1e-3f - 0.5f;
  return cut > 0.f ? std::max(0.f, v + 0.5f - cut) : v;
}

// An Adam update (the costliest optimizer pass) with a step too small to matter.
cpu::AdamArgs calibration_adam() {
  cpu::AdamArgs adam;
  adam.step_size = 1e-9f;
  return adam;
}

}  // namespace

BreakEven time_break_even(int64_t N, int64_t K, const float* w, const float* dw, const std::vector<const float*>& slots,
                          const std::function<void()>& dense_forward, const std::function<void()>& dense_rest,
                          const std::function<void(SparseWeight&)>& sparse_forward,
                          const std::function<void(SparseWeight&)>& sparse_rest) {
  BreakEven r;
  r.density_lo = 0.05;
  r.density_hi = 0.4;
  SparseWeight lo, hi;
  for (SparseWeight* s : {&lo, &hi}) {
    const auto keep = calibration_pattern(N, K, s == &lo ? r.density_lo : r.density_hi);
    build_pattern(keep.data(), N, K, *s);
    s->gather(w, dw, slots);
  }
  // One sample: `calls` training steps of one case; the forward part and the whole step.
  struct Times {
    double forward = 0.0, step = 0.0;
  };
  auto sample = [](int calls, auto&& forward, auto&& rest) {
    Times t;
    for (int c = 0; c < calls; ++c) {
      const auto t0 = std::chrono::steady_clock::now();
      forward();
      const auto t1 = std::chrono::steady_clock::now();
      rest();
      const auto t2 = std::chrono::steady_clock::now();
      t.forward += std::chrono::duration<double>(t1 - t0).count();
      t.step += std::chrono::duration<double>(t2 - t0).count();
    }
    t.forward /= calls;
    t.step /= calls;
    return t;
  };
  // Warm caches and the thread team once; every sample is then long enough (>= 1 ms of repeated
  // calls) that a timer tick does not decide it.
  auto calls_for = [](const Times& once) {
    return static_cast<int>(std::max(1.0, std::min(64.0, 1e-3 / std::max(once.step, 1e-7))));
  };
  auto lo_forward = [&] { sparse_forward(lo); };
  auto lo_rest = [&] { sparse_rest(lo); };
  auto hi_forward = [&] { sparse_forward(hi); };
  auto hi_rest = [&] { sparse_rest(hi); };
  const int nd = calls_for(sample(1, dense_forward, dense_rest));
  const int nl = calls_for(sample(1, lo_forward, lo_rest));
  const int nh = calls_for(sample(1, hi_forward, hi_rest));
  // Each case's time is the best of interleaved repetitions: a loaded machine only ever adds time
  // (other processes, a descheduled team thread), so the minimum is the closest to the layer's own
  // cost, and interleaving gives every case the same chances of a quiet moment.
  constexpr int kReps = 7;
  Times d{1e30, 1e30}, l{1e30, 1e30}, h{1e30, 1e30};
  auto keep_best = [](Times& best, const Times& t) {
    best.forward = std::min(best.forward, t.forward);
    best.step = std::min(best.step, t.step);
  };
  for (int rep = 0; rep < kReps; ++rep) {
    keep_best(d, sample(nd, dense_forward, dense_rest));
    keep_best(l, sample(nl, lo_forward, lo_rest));
    keep_best(h, sample(nh, hi_forward, hi_rest));
  }
  // Sparse time is about a + b·density (fixed packing cost plus work per stored entry): the
  // break-even is where that line meets the dense time. A non-increasing pair of points means
  // the noise won; then only what was timed is trusted.
  auto estimate = [&](double td, double tl, double th) {
    const double slope = (th - tl) / (r.density_hi - r.density_lo);
    if (slope > 0.0) return std::min(1.0, std::max(0.0, r.density_lo + (td - tl) / slope));
    return th < td ? r.density_hi : tl < td ? r.density_lo : 0.0;
  };
  r.density = estimate(d.step, l.step, h.step);
  r.inference_density = estimate(d.forward, l.forward, h.forward);
  r.dense_seconds = d.step;
  r.sparse_seconds_lo = l.step;
  r.sparse_seconds_hi = h.step;
  return r;
}

namespace {

BreakEven measure(int64_t N, int64_t K, int64_t M) {
  std::vector<float> x(static_cast<size_t>(M * K)), w(static_cast<size_t>(N * K)), dy(static_cast<size_t>(M * N)),
      y(static_cast<size_t>(M * N)), dx(static_cast<size_t>(M * K)), dw(static_cast<size_t>(N * K)),
      bias(static_cast<size_t>(N), 0.1f), m(w.size(), 0.f), v(w.size(), 0.f), ones(w.size(), 1.f);
  // x and dy as a hidden layer behind ReLU and dropout sees them: 3/4 zeros, which the dense
  // products skip like in DenseLayer; the sparse kernels take them as they come.
  for (size_t i = 0; i < x.size(); ++i) x[i] = calibration_value(i, 7919u, 0.75f);
  for (size_t i = 0; i < w.size(); ++i) w[i] = calibration_value(i, 104729u, 0.f);
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = calibration_value(i, 15485863u, 0.75f);
  const cpu::AdamArgs adam = calibration_adam();

  cpu::GemmEpilogue ep;
  ep.bias = bias.data();
  ep.activation = cpu::Activation::relu;
  // The dense layer's own products (DenseLayer::product_forward / backward).
  auto dense_forward = [&] {
    cpu::sgemm_a_b_skip_zeros(true, M, K, N, x.data(), K, w.data(), K, y.data(), N, &ep, kSkipZerosForward);
  };
  auto dense_rest = [&] {
    cpu::sgemm_at_b_skip_zeros(M, N, K, dy.data(), N, x.data(), K, dw.data(), K, kSkipZerosWeightGrad);
    cpu::sgemm_a_b_skip_zeros(false, M, N, K, dy.data(), N, w.data(), K, dx.data(), K, nullptr, kSkipZerosInputGrad);
    cpu::adam_update(adam, N * K, w.data(), dw.data(), m.data(), v.data(), ones.data());
  };
  auto sparse_forward = [&](SparseWeight& s) {
    cpu::spmm_xt(M, N, K, x.data(), K, s.view(), bias.data(), cpu::Activation::relu, 0.01f, y.data(), N);
  };
  auto sparse_rest = [&](SparseWeight& s) {
    cpu::sddmm(M, dy.data(), N, x.data(), K, s.view(), s.grad.data(), false);
    cpu::spmm_xt(M, K, N, dy.data(), N, s.t_view(), nullptr, cpu::Activation::identity, 0.01f, dx.data(), K);
    cpu::adam_update(adam, s.nnz, s.values.data(), s.grad.data(), s.slots[0].data(), s.slots[1].data(), nullptr);
  };
  BreakEven r = time_break_even(N, K, w.data(), dw.data(), {m.data(), v.data()}, dense_forward, dense_rest,
                                sparse_forward, sparse_rest);
  r.batch = M;
  return r;
}

}  // namespace

BreakEven sparse_break_even(int64_t out, int64_t in, int64_t rows) {
  using Key = std::tuple<int64_t, int64_t, int64_t, int, int>;
  static std::mutex mu;
  static std::map<Key, BreakEven> cache;
  const int64_t batch = batch_bucket(rows);
  const Key key{out, in, batch, static_cast<int>(active_isa()), get_num_threads()};
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  const BreakEven r = measure(out, in, batch);
  cache.emplace(key, r);
  return r;
}

}  // namespace nn
}  // namespace dropnet
