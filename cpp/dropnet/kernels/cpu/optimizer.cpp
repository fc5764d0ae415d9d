// Dispatch entries of the optimizer updates and their scalar twins (optimizer.h).
#include "dropnet/kernels/cpu/optimizer.h"

#include "dropnet/core/cpu_features.h"
#include "dropnet/core/denormals.h"
#include "dropnet/core/parallel.h"
#include "dropnet/kernels/cpu/optimizer_body.h"

namespace dropnet {
namespace cpu {

namespace {
constexpr int64_t kGrain = 1 << 15;

// Elementwise updates: the offset pointers make each piece an independent call of the body.
template <class Body>
void split_elements(int64_t n, Body&& body) {
  parallel_ranges(n, kGrain, [&](int64_t b, int64_t e) {
    DenormalsFlushed ftz;
    body(b, e - b);
  });
}

template <class T>
T* at(T* p, int64_t off) {
  return p ? p + off : nullptr;
}
}  // namespace

void sgd_update_scalar(const SgdArgs& a, int64_t n, float* w, const float* g, float* buf, const float* mask) {
  sgd_any(a, n, w, g, buf, mask);
}

void adam_update_scalar(const AdamArgs& a, int64_t n, float* w, const float* g, float* m, float* v,
                        const float* mask) {
  adam_any(a, n, w, g, m, v, mask);
}

void sgd_update(const SgdArgs& a, int64_t n, float* w, const float* g, float* buf, const float* mask) {
  auto body = sgd_update_scalar;
  switch (active_isa()) {
    case Isa::avx512: body = sgd_update_avx512; break;
    case Isa::avx2: body = sgd_update_avx2; break;
    case Isa::scalar: break;
  }
  split_elements(n, [&](int64_t off, int64_t len) {
    body(a, len, w + off, g + off, at(buf, off), at(mask, off));
  });
}

void adam_update(const AdamArgs& a, int64_t n, float* w, const float* g, float* m, float* v, const float* mask) {
  auto body = adam_update_scalar;
  switch (active_isa()) {
    case Isa::avx512: body = adam_update_avx512; break;
    case Isa::avx2: body = adam_update_avx2; break;
    case Isa::scalar: break;
  }
  split_elements(n, [&](int64_t off, int64_t len) {
    body(a, len, w + off, g + off, m + off, v + off, at(mask, off));
  });
}

}  // namespace cpu
}  // namespace dropnet
