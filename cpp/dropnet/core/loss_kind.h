// The elementwise losses as the kernel interface names them (kernels/backend.h): the CPU twin
// maps them to cpu::mse_loss (kernels/cpu/mse_loss.h) and cpu::elementwise_loss
// (kernels/cpu/elementwise_loss.h), which document the formulas; the CUDA twin
// (kernels/cuda/elementwise_loss.h) takes them as they are.
#pragma once

namespace dropnet {

enum class ElementwiseLossKind : int { mse = 0, binary_crossentropy_logits, mae, huber };

}  // namespace dropnet
