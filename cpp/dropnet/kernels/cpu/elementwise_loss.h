// Losses that average an elementwise term over the outputs of each sample (rows × cols, C order):
//   loss[r]   = (1 / cols) Σ_j ℓ(y_rj, t_rj)
//   d_y[r, j] = grad_scale · ℓ'(y_rj, t_rj) / cols     (when d_y is not null; grad_scale = 1/rows for a
//                                                     batch mean)
// with, for d = y − t:
//   binary_crossentropy_logits: y is a logit z, ℓ = max(z, 0) − z·t + log1p(exp(−|z|)) (the stable
//                               form of −t·log σ(z) − (1 − t)·log(1 − σ(z))), ℓ' = σ(z) − t;
//   mae:                        ℓ = |d|, ℓ' = sign(d) (0 at d = 0, as torch's l1_loss);
//   huber (δ = delta):          ℓ = d²/2 for |d| ≤ δ, else δ(|d| − δ/2); ℓ' = clamp(d, −δ, δ).
// The sum over a row runs in column order, in double; rows are independent and threads split them.
#pragma once
#include <cstdint>

namespace dropnet {
namespace cpu {

enum class ElementwiseLoss { binary_crossentropy_logits, mae, huber };

void elementwise_loss(ElementwiseLoss kind, const float* y, const float* t, int64_t rows, int64_t cols,
                      float grad_scale, float delta, float* loss, float* d_y);

}  // namespace cpu
}  // namespace dropnet
