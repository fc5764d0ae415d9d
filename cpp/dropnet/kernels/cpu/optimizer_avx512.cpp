// avx512 unit of the optimizer updates: the shared loop bodies, auto-vectorised under this file's flags.
#include "dropnet/kernels/cpu/optimizer_body.h"

namespace dropnet {
namespace cpu {

void sgd_update_avx512(const SgdArgs& a, int64_t n, float* w, const float* g, float* buf, const float* mask) {
  sgd_any(a, n, w, g, buf, mask);
}

void adam_update_avx512(const AdamArgs& a, int64_t n, float* w, const float* g, float* m, float* v,
                        const float* mask) {
  adam_any(a, n, w, g, m, v, mask);
}

}  // namespace cpu
}  // namespace dropnet
