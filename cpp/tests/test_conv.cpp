// Conv / pooling / batch-norm kernels at the C++ level: im2col and col2im are adjoint, the
// conv workspace contract holds when it is smaller than the threads want, the batch-norm ISA
// bodies agree with the baseline unit and column sums do not depend on how columns are split,
// the 2×2 unpool fast path equals the general scatter, and the Winograd path rule.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "dropnet/core/cpu_features.h"
#include "dropnet/core/threading.h"
#include "dropnet/kernels/cpu/batchnorm.h"
#include "dropnet/kernels/cpu/conv2d.h"
#include "dropnet/kernels/cpu/conv2d_winograd.h"
#include "dropnet/kernels/cpu/im2col.h"
#include "dropnet/kernels/cpu/pooling.h"

using namespace dropnet;

namespace {
std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (float& x : v) x = d(gen);
  return v;
}

cpu::ConvGeometry geometry(int64_t C, int64_t H, int64_t W, int64_t k, int64_t stride, int64_t pad_top,
                           int64_t pad_bottom, int64_t dil) {
  cpu::ConvGeometry g;
  g.C = C, g.H = H, g.W = W, g.kh = k, g.kw = k, g.stride_h = g.stride_w = stride;
  g.pad_top = g.pad_left = pad_top, g.dil_h = g.dil_w = dil;
  g.OH = (H + pad_top + pad_bottom - dil * (k - 1) - 1) / stride + 1;
  g.OW = (W + pad_top + pad_bottom - dil * (k - 1) - 1) / stride + 1;
  return g;
}
}  // namespace

TEST_CASE("im2col and col2im are adjoint: <im2col(x), c> == <x, col2im(c)>") {
  const cpu::ConvGeometry cases[] = {geometry(2, 7, 13, 3, 1, 1, 1, 1), geometry(3, 9, 8, 3, 2, 1, 1, 1),
                                     geometry(2, 11, 10, 3, 1, 2, 2, 2), geometry(1, 6, 7, 4, 1, 1, 2, 1),
                                     geometry(2, 5, 5, 5, 3, 0, 0, 1)};
  for (const cpu::ConvGeometry& g : cases) {
    const int64_t K = g.col_rows(), P = g.col_cols();
    const auto x = random_floats(g.C * g.H * g.W, 1);
    const auto c = random_floats(K * P, 2);
    std::vector<float> cols(K * P, -7.f), back(x.size(), -7.f);
    cpu::im2col(x.data(), g, cols.data(), P);
    cpu::col2im(c.data(), P, g, back.data());
    double lhs = 0, rhs = 0;
    for (int64_t i = 0; i < K * P; ++i) lhs += double(cols[i]) * c[i];
    for (size_t i = 0; i < x.size(); ++i) rhs += double(x[i]) * back[i];
    CHECK(lhs == doctest::Approx(rhs).epsilon(1e-5));
  }
}

TEST_CASE("conv2d runs fewer threads when the workspace only fits one, with the same bits") {
  const cpu::ConvGeometry g = geometry(3, 9, 11, 3, 1, 1, 1, 1);
  const int64_t N = 19, F = 4;
  const auto x = random_floats(N * g.C * g.H * g.W, 3), w = random_floats(F * g.col_rows(), 4);
  const auto b = random_floats(F, 5), dy = random_floats(N * F * g.col_cols(), 6);
  const int before = get_num_threads();
  std::vector<float> y1(dy.size()), y2(dy.size()), dx1(x.size()), dx2(x.size());
  std::vector<float> dw1(w.size(), 0.f), dw2(w.size(), 0.f), db1(F, 0.f), db2(F, 0.f);
  set_num_threads(1);
  std::vector<float> ws(cpu::conv2d_backward_workspace(g, N, F, 1) + cpu::conv2d_forward_workspace(g, F, true, 1));
  cpu::conv2d_forward(x.data(), N, g, w.data(), F, b.data(), cpu::Activation::relu, 0.01f, y1.data(), ws.data(),
                      cpu::conv2d_forward_workspace(g, F, true, 1));
  cpu::conv2d_backward(dy.data(), x.data(), N, g, w.data(), F, dx1.data(), dw1.data(), db1.data(), ws.data(),
                       cpu::conv2d_backward_workspace(g, N, F, 1));
  set_num_threads(2);  // the workspace is still sized for one thread
  cpu::conv2d_forward(x.data(), N, g, w.data(), F, b.data(), cpu::Activation::relu, 0.01f, y2.data(), ws.data(),
                      cpu::conv2d_forward_workspace(g, F, true, 1));
  cpu::conv2d_backward(dy.data(), x.data(), N, g, w.data(), F, dx2.data(), dw2.data(), db2.data(), ws.data(),
                       cpu::conv2d_backward_workspace(g, N, F, 1));
  set_num_threads(before);
  CHECK(y1 == y2);
  CHECK(dx1 == dx2);
  CHECK(dw1 == dw2);
  CHECK(db1 == db2);
}

TEST_CASE("batch-norm ISA bodies agree with the baseline unit") {
  std::vector<const cpu::BatchNormKernels*> units = {&cpu::batchnorm_kernels_scalar()};
  if (max_supported_isa() >= Isa::avx2) units.push_back(&cpu::batchnorm_kernels_avx2());
  if (max_supported_isa() >= Isa::avx512) units.push_back(&cpu::batchnorm_kernels_avx512());
  const int64_t n = 5, len = 37, stride = 3 * len;  // channel 1 of a (5, 3, 37) input
  const auto x = random_floats(n * stride, 7), dy = random_floats(n * stride, 8);
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] > 0.f ? x[i] : 0.f;
  double ref[4] = {};
  for (size_t u = 0; u < units.size(); ++u) {
    double s[4];
    units[u]->plane_moments(x.data() + len, n, stride, len, 0.25f, &s[0], &s[1]);
    units[u]->plane_grad_sums(dy.data() + len, x.data() + len, y.data() + len, n, stride, stride, len, 0.1f, &s[2],
                              &s[3]);
    for (int q = 0; q < 4; ++q) {
      if (u == 0) ref[q] = s[q];
      CHECK(s[q] == doctest::Approx(ref[q]).epsilon(1e-12));
    }
  }
}

TEST_CASE("batch-norm column sums do not depend on how the columns are split") {
  const int64_t rows = 19, cols = 150;
  const auto x = random_floats(rows * cols, 9);
  std::vector<float> shift(cols, 0.5f);
  std::vector<const cpu::BatchNormKernels*> units = {&cpu::batchnorm_kernels_scalar()};
  if (max_supported_isa() >= Isa::avx2) units.push_back(&cpu::batchnorm_kernels_avx2());
  if (max_supported_isa() >= Isa::avx512) units.push_back(&cpu::batchnorm_kernels_avx512());
  for (const cpu::BatchNormKernels* k : units) {
    std::vector<double> a1(cols), a2(cols), b1(cols), b2(cols);
    k->column_moments(x.data(), rows, cols, cols, shift.data(), a1.data(), a2.data());
    for (int64_t split : {1, 4, 16, 17, 30, 64, 67, 100}) {
      k->column_moments(x.data(), rows, cols, split, shift.data(), b1.data(), b2.data());
      k->column_moments(x.data() + split, rows, cols, cols - split, shift.data() + split, b1.data() + split,
                        b2.data() + split);
      CHECK(a1 == b1);
      CHECK(a2 == b2);
    }
  }
}

TEST_CASE("2x2 max-pool backward: fast path and general scatter agree") {
  cpu::PoolGeometry g;
  g.H = 9, g.W = 11, g.kh = g.kw = 2, g.stride_h = g.stride_w = 2, g.OH = 4, g.OW = 5;
  const int64_t planes = 3;
  const auto x = random_floats(planes * g.H * g.W, 10), dy = random_floats(planes * g.OH * g.OW, 11);
  std::vector<float> y(dy.size()), dx(x.size(), -1.f), ref(x.size(), 0.f);
  std::vector<int32_t> idx(dy.size());
  cpu::max_pool2d_forward(x.data(), planes, g, y.data(), idx.data());
  cpu::max_pool2d_backward(dy.data(), idx.data(), planes, g, dx.data());
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t o = 0; o < g.OH * g.OW; ++o) ref[p * g.H * g.W + idx[p * g.OH * g.OW + o]] += dy[p * g.OH * g.OW + o];
  CHECK(dx == ref);
  idx[7] = 0;  // not a cell of window 7: the fast path must hand over to the scatter
  cpu::max_pool2d_backward(dy.data(), idx.data(), planes, g, dx.data());
  std::vector<float> ref2(x.size(), 0.f);
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t o = 0; o < g.OH * g.OW; ++o) ref2[p * g.H * g.W + idx[p * g.OH * g.OW + o]] += dy[p * g.OH * g.OW + o];
  CHECK(dx == ref2);
}

TEST_CASE("the Winograd path rule depends on the geometry alone") {
  auto g3 = [](int64_t C, int64_t pad) { return geometry(C, 14, 14, 3, 1, pad, pad, 1); };
  CHECK(cpu::winograd_applies(g3(32, 1), 64));   // the small CNN's second layer
  CHECK(cpu::winograd_applies(g3(16, 0), 32));
  CHECK(cpu::winograd_applies(g3(16, 2), 1));
  CHECK_FALSE(cpu::winograd_applies(g3(1, 1), 32));    // too few channels: im2col
  CHECK_FALSE(cpu::winograd_applies(g3(15, 1), 16));
  CHECK_FALSE(cpu::winograd_applies(g3(16, 1), 33));   // more than 2 filters per channel
  cpu::ConvGeometry strided = g3(32, 1);
  strided.stride_h = 2;
  CHECK_FALSE(cpu::winograd_applies(strided, 32));
  cpu::ConvGeometry dilated = g3(32, 1);
  dilated.dil_w = 2;
  CHECK_FALSE(cpu::winograd_applies(dilated, 32));
  cpu::ConvGeometry grouped = g3(32, 1);
  grouped.groups = 2;
  CHECK_FALSE(cpu::winograd_applies(grouped, 32));
  CHECK_FALSE(cpu::winograd_applies(g3(32, 3), 32));   // pad 3: the input gradient would need pad -1
  CHECK_FALSE(cpu::winograd_applies(geometry(32, 14, 14, 5, 1, 2, 2, 1), 32));
}

TEST_CASE("the Winograd tile is 4 where both output sides are at least 6, else 2") {
  CHECK(cpu::winograd_tile(geometry(32, 28, 28, 3, 1, 1, 1, 1), 32) == 4);  // the VGG net's second layer
  CHECK(cpu::winograd_tile(geometry(64, 14, 14, 3, 1, 1, 1, 1), 64) == 4);
  CHECK(cpu::winograd_tile(geometry(128, 7, 7, 3, 1, 1, 1, 1), 128) == 4);  // the VGG net's last layers
  CHECK(cpu::winograd_tile(geometry(32, 8, 9, 3, 1, 0, 0, 1), 32) == 4);    // output 6 × 7
  CHECK(cpu::winograd_tile(geometry(32, 7, 9, 3, 1, 0, 0, 1), 32) == 2);    // output 5 × 7
  CHECK(cpu::winograd_tile(geometry(32, 28, 5, 3, 1, 1, 1, 1), 32) == 2);   // one side short
  CHECK(cpu::winograd_tile(geometry(128, 4, 4, 3, 1, 1, 1, 1), 128) == 2);
}
