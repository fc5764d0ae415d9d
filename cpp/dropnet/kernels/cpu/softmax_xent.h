// Softmax cross-entropy fused with its gradient, on logits (rows × classes, C order).
// Per row r: lse = log Σ_j exp(z_rj) computed as max + log Σ exp(z − max) (stable for any logits),
//   loss[r] = lse − z[r, label_r]                         (sparse integer labels)
//   loss[r] = Σ_j t_rj (lse − z_rj)                        (dense targets: one-hot or probabilities)
// and, when d_logits is not null, the gradient of grad_scale · Σ_r loss[r]:
//   d_logits[r, j] = grad_scale · (softmax_rj · Σ_j t_rj − t_rj)   (sparse: t = one-hot)
// grad_scale is 1 / rows for a batch mean. Rows are independent; threads split rows.
// Labels must already be checked to lie in [0, classes).
#pragma once
#include <cstdint>

namespace dropnet {
namespace cpu {

void softmax_xent_sparse(const float* logits, const int64_t* labels, int64_t rows, int64_t classes, float grad_scale,
                         float* loss, float* d_logits);
void softmax_xent_dense(const float* logits, const float* targets, int64_t rows, int64_t classes, float grad_scale,
                        float* loss, float* d_logits);

}  // namespace cpu
}  // namespace dropnet
