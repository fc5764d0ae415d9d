// A sequential network that runs a whole training step in one call:
// forward → loss → backward → weight penalties and pruning masks → optimizer update.
// Buffers are sized for the largest batch seen and reused; nothing is allocated per step.
// Every public call validates its inputs before it changes anything, so a failed call leaves
// parameters, optimizer state and the dropout stream counter as they were. Calls are serialised
// by a mutex (bindings release the GIL around them).
//
// Dropout streams: each dropout application in a forward pass (a dense layer's fused dropout, a
// dropout, alpha_dropout or spatial_dropout2d layer; in layer order) takes stream = rng_offset, then
// rng_offset + 1. Batch norm layers keep running statistics (state(), non-trainable): train_step
// uses and updates batch statistics, forward() and evaluate() use the running ones.
// Same seed, same data, same rng_offset → the same bits, whatever the number of threads.
//
// Devices: the network runs on one Backend (kernels/backend.h), the CPU's unless the constructor
// is given another. Parameters, gradients, optimizer state and activations then live in that
// backend's memory; every public call takes and returns host arrays and copies at the boundary
// (docs/design.md, "Devices: one network, two backends").
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "dropnet/kernels/cpu/batchnorm.h"
#include "dropnet/nn/buffer.h"
#include "dropnet/nn/layers.h"
#include "dropnet/nn/optimizer.h"

namespace dropnet {
namespace nn {

enum class LossKind { sparse_categorical_crossentropy, categorical_crossentropy, mse, binary_crossentropy, mae, huber };
LossKind parse_loss(const std::string& name);

// Targets of a batch: labels (int64, rows) for sparse crossentropy, else dense (float, rows × n_out).
// weights: optional per-sample weights (rows floats, >= 0). A step's loss is then
// Σ_r w_r·ℓ_r / rows (Keras' sample_weight: the weighted sum over the batch size), and its gradient
// row r is scaled by w_r.
struct Targets {
  const int64_t* labels = nullptr;
  const float* dense = nullptr;
  const float* weights = nullptr;
};

struct LayerInfo {
  std::string type;
  Shape output_shape;
  int64_t n_params = 0;
};

// Sparse execution of one Dense or Conv2D layer (set_sparse_mode, sparse_info).
struct SparseLayerInfo {
  int64_t layer = 0;         // index in the layer list
  int64_t param_index = 0;   // its weight's parameter index
  double density = 1.0;      // kept fraction of the weight (1 without a mask)
  SparseMode mode = SparseMode::automatic;
  bool sparse = false;       // whether the last step or forward ran it sparse
  BreakEven break_even;      // batch == 0: not measured yet
};

class Network {
 public:
  // backend: where the network runs (null: the CPU). A backend without host memory takes only
  // what its twin implements: the constructor throws ValueError naming the first layer or option
  // that runs on the CPU only (Layer::bind), before anything is allocated there.
  Network(const std::vector<LayerSpec>& layers, const Shape& input_shape, LossKind loss, uint64_t seed,
          std::shared_ptr<const Backend> backend = nullptr);
  const Backend& backend() const { return *backend_; }

  const Shape& input_shape() const { return input_shape_; }
  const Shape& output_shape() const { return output_shape_; }
  int64_t n_inputs() const { return shape_size(input_shape_); }
  int64_t n_outputs() const { return shape_size(output_shape_); }
  LossKind loss() const { return loss_; }
  // Whether forward() ends with the softmax that the crossentropy loss absorbed.
  bool softmax_fused() const { return softmax_fused_; }
  // Whether forward() ends with the sigmoid that binary_crossentropy absorbed.
  bool sigmoid_fused() const { return sigmoid_fused_; }
  std::vector<LayerInfo> layer_info() const;

  // x: rows × n_inputs. Returns the batch's mean loss plus the weight penalties.
  // Exactly compute_gradients(x, rows, y, 0, rows) then apply_gradients().
  double train_step(const float* x, int64_t rows, const Targets& y);

  // The training step in two halves, so that gradients can be summed across processes in between
  // (docs/distributed.md). compute_gradients: forward (dropout streams from rng_offset, element
  // indices from row_offset: ForwardContext), loss and backward over x (rows × n_inputs); every
  // parameter's gradient, in the grad arena, becomes the gradient of (Σ per-row losses) / grad_rows
  // (grad_rows = the whole batch's rows; a rank holding a shard passes the global count, so the
  // sum over ranks is the batch mean's gradient). Every layer runs dense here: the arena is the
  // one place gradients live. Returns Σ per-row losses (row order); last_batch_correct is set.
  // Nothing the optimizer owns changes, and rng_offset stays until apply_gradients.
  // With set_batchnorm_sum, batch norm takes its statistics over every process's batch (the sum is
  // called the same number of times on each: twice per batch norm layer forward, once backward).
  double compute_gradients(const float* x, int64_t rows, const Targets& y, uint64_t row_offset, int64_t grad_rows);
  // sum(data, n): replace n doubles by their sum over the processes; empty: per-process statistics.
  void set_batchnorm_sum(std::function<void(double*, int64_t)> sum);
  // Adds the weight penalties' gradients, runs the optimizer on the arena's gradients, and advances
  // rng_offset past the streams of the last compute_gradients. Returns the penalty value.
  // Throws if no compute_gradients came since the last update.
  double apply_gradients();
  // One flat float32 array holding every parameter's gradient: parameter i's gradient is
  // grad_arena()[grad_offset(i) .. + param(i).size); padding between slices stays 0.
  float* grad_arena() { return grad_arena_.data(); }
  int64_t grad_arena_size() const { return grad_arena_size_; }
  int64_t grad_offset(int64_t i) const { return grad_offsets_[static_cast<size_t>(i)]; }
  // Training steps [step0, step1) of an epoch over a whole dataset x (n × n_inputs) and y (n rows),
  // batches gathered natively: step s trains on rows order[s·batch .. min(n_order, (s+1)·batch))
  // (order null: rows in sequence, n_order = n). Each step is exactly train_step on the gathered
  // batch; losses[s - step0] gets its return value, correct[s - step0] its last_batch_correct.
  // order entries must be in [0, n) (checked by the caller).
  void train_steps(const float* x, int64_t n, const Targets& y, const int64_t* order, int64_t n_order, int64_t batch,
                   int64_t step0, int64_t step1, double* losses, int64_t* correct);
  // A copy of the dataset (x: n rows; y's labels or dense targets and sample weights) in the
  // device's memory, checked once here, from which train_steps on the same x and y (the same
  // pointers) gathers its batches on the device; the chunk's losses and correct counts then cross once.
  // Returns false on the CPU (nothing to copy). Throws when the device has no room (the network
  // is unchanged; train_steps then copies each batch in). Held until release_dataset or the next
  // keep_dataset.
  bool keep_dataset(const float* x, int64_t n, const Targets& y);
  void release_dataset();
  // out: rows × n_outputs. stream_offset: where dropout streams start (training only); none: the
  // network's counter, which then advances.
  // bn_training: batch norm layers use batch statistics and update their running ones (as in
  // train_step); false (inference, and Monte Carlo dropout) uses the running statistics.
  void forward(const float* x, int64_t rows, bool training, std::optional<uint64_t> stream_offset, float* out,
               bool bn_training = false);
  // Inference over all rows in batches; sum of per-sample losses (no penalties; each times its
  // weight with y.weights) and the number of rows whose output argmax equals the label (dense
  // targets: their argmax; mse: only one-hot rows count, and none unless every target row is
  // one-hot; binary_crossentropy: the number of outputs with (logit > 0) == (target >= 0.5)), each
  // row counted with its weight. weight_sum (if not null): Σ weights (rows without weights).
  void evaluate(const float* x, int64_t rows, const Targets& y, int64_t batch_size, double* loss_sum,
                double* n_correct, double* weight_sum = nullptr);

  // Non-trainable state in layer order: for each batch norm layer running_mean then running_var.
  int64_t n_state() const { return static_cast<int64_t>(state_.size()); }
  const Param& state(int64_t i) const { return *state_[static_cast<size_t>(i)]; }
  void copy_state(int64_t i, float* out) const;
  // values[i] has state(i).size floats (callers check shapes); variances must be >= 0.
  void set_state(const std::vector<const float*>& values);

  // Parameters in order: dense and conv2d layers W then b (if it has one), batch norm gamma then beta.
  int64_t n_params() const { return static_cast<int64_t>(params_.size()); }
  const Param& param(int64_t i) const { return *params_[static_cast<size_t>(i)]; }
  // values[i] has param(i).size floats; callers check shapes first. Masked weights stay zero.
  void set_params(const std::vector<const float*>& values);
  void copy_param(int64_t i, float* out) const;
  void copy_grad(int64_t i, float* out) const;

  // mask: param(i).size floats of 0/1, or null to remove. Multiplies the weight and its optimizer
  // state by the mask at once. CPU only (ValueError on another device).
  void set_mask(int64_t i, const float* mask);
  bool has_mask(int64_t i) const { return param(i).has_mask; }
  void copy_mask(int64_t i, float* out) const;

  void set_optimizer(const OptimizerConfig& config);
  const OptimizerConfig& optimizer_config() const { return optimizer_.config(); }
  double lr() const { return optimizer_.config().lr; }
  void set_lr(double lr);
  int64_t optimizer_step() const { return optimizer_.step_count(); }
  int64_t n_optimizer_slots() const { return optimizer_.slots_per_param() * n_params(); }
  // Slot k belongs to parameter k / slots_per_param.
  int64_t slot_param(int64_t k) const { return k / optimizer_.slots_per_param(); }
  void copy_slot(int64_t k, float* out) const;
  // slots: n_optimizer_slots() pointers, each of its parameter's size (masked entries forced to 0).
  void set_optimizer_state(int64_t step, const std::vector<const float*>& slots);
  // One slot at a time (load_model fills a new model so, holding one array of the file at once):
  // slot k from `values` (its parameter's size; masked entries forced to 0), then the step count.
  void set_optimizer_slot(int64_t k, const float* values);
  void set_optimizer_step(int64_t step);

  // Sparse execution (sparse_weight.h, sparse_conv.h). The masked weight of a Dense or Conv2D
  // layer runs sparse when its mode says so: "sparse" always, "dense" never, "auto" when its
  // density is below the measured break-even for the layer's shape and batch (train_step: of a
  // training step; forward, evaluate: of a forward pass). param_index: the layer's weight or bias.
  void set_sparse_mode(int64_t param_index, SparseMode mode);

  // Freeze (false) or unfreeze parameter i: a frozen tensor is left alone by the optimizer and the
  // weight penalties (its optimizer slots keep their values), gradients still flow through it.
  void set_trainable(int64_t i, bool trainable);
  // Max-norm constraint on the weight i of a dense or conv2d layer (0 removes it): after each
  // update each unit's incoming weights (a row of W, a filter) with L2 norm > max_norm are scaled
  // by max_norm / norm (norm summed in double, in index order).
  void set_max_norm(int64_t i, float max_norm);
  std::vector<SparseLayerInfo> sparse_info() const;

  uint64_t seed() const { return seed_; }
  uint64_t rng_offset() const { return rng_offset_; }
  // Correct argmax predictions of the last train_step's batch (with its dropout on); -1 when the
  // targets have no class (mse on targets that are not one-hot).
  int64_t last_batch_correct() const { return last_batch_correct_; }
  void set_rng_offset(uint64_t o);
  // The keep bits that layer `layer` drew in the last training forward of `rows` samples
  // (ceil(rows · bits per sample / 64) words into out, bits past the last one 0: a bit per output
  // element, per channel for spatial dropout); false, out untouched, when it drew none.
  bool copy_keep_bits(int64_t layer, int64_t rows, uint64_t* out) const;

 private:
  // Slot k := values, times its parameter's mask when it has one (callers hold mu_).
  void copy_into_slot(int64_t k, const float* values);
  bool can_count_correct(const Targets& y, int64_t rows) const;
  CorrectKind correct_kind(const Targets& y, int64_t rows) const;
  int64_t count_correct_rows(const float* out, int64_t rows, const Targets& y) const;
  void check_batch(const float* x, int64_t rows, const Targets& y, const char* x_name, const char* y_name) const;
  void reserve(int64_t rows);
  const float* run_forward(const float* x, int64_t rows, bool training, bool bn_training, uint64_t* next_stream,
                           uint64_t row_offset = 0, const cpu::SumAcrossProcesses* sync_batchnorm = nullptr);
  // Batch statistics need >= 2 values per channel: checked before any layer runs.
  void check_bn_batch(int64_t rows) const;
  // Per-row losses into loss_rows_; the gradient of the batch mean into d_out when non-null.
  // grad_scale = 1 / grad_rows.
  void compute_loss(const float* out, int64_t rows, const Targets& y, float* d_out, int64_t grad_rows);
  // sum + the per-row losses compute_loss just wrote, added in row order.
  double add_loss_rows(int64_t rows, double sum);
  // Host arrays as this backend's memory: the array itself on the CPU, else a copy in `staging`.
  template <class T>
  const T* staged(const T* host, int64_t n, Buffer<T>& staging) const;
  Targets staged_targets(const Targets& y, int64_t rows);
  // n floats of this backend readable by the host: the array itself on the CPU, else a copy.
  const float* host_view(const float* data, int64_t n);
  // Throws ValueError naming `what` when the network is not on the CPU.
  void require_cpu(const char* what) const;
  // Chooses dense or sparse for each masked Dense / Conv2D layer for batches of `rows` (by the
  // training or the inference break-even), and syncs the copy it will read (sparse_weight.h).
  // allow_sparse false: every layer dense (the split step's gradients must live in the arena).
  void prepare_execution(int64_t rows, bool training_step, bool allow_sparse = true);
  // After a training step: the copy that was updated is current, the other one stale.
  void mark_updated();
  // The dense copy of parameter i is current (scatters the compressed one if needed). Syncing
  // changes no number anyone can observe, so const readers may call it.
  void sync_dense(int64_t i) const;
  void sync_dense_all() const;
  // External writes went to the dense copies: compressed copies must gather before next use.
  void mark_compressed_stale();
  std::vector<const float*> dense_slots(int64_t i) const;
  SparseCapable* sparse_layer_of(int64_t param_index) const;

  std::shared_ptr<const Backend> backend_;
  Shape input_shape_, output_shape_;
  LossKind loss_;
  uint64_t seed_;
  uint64_t rng_offset_ = 0;
  int64_t last_batch_correct_ = -1;
  bool softmax_fused_ = false;
  bool sigmoid_fused_ = false;
  // Elementwise losses (mse, mae, huber, binary_crossentropy) accept outputs of any shape.
  bool elementwise_loss() const;
  void apply_max_norm();
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Param*> params_;
  std::vector<Param*> state_;
  int64_t bn_min_values_ = 0;  // fewest values per channel in one sample over the batch norm layers (0: none)
  int64_t first_param_layer_ = -1;
  int64_t capacity_rows_ = 0;
  int64_t max_width_ = 0;
  double train_step_locked(const float* x, int64_t rows, const Targets& y);
  // split: the public compute_gradients (every layer dense, batch norm synchronised when a sum is
  // set); false: the fused train_step's first half.
  double compute_gradients_locked(const float* x, int64_t rows, const Targets& y, uint64_t row_offset,
                                  int64_t grad_rows, bool split);
  // compute_gradients' work on a host batch: checked, copied to the backend, then backprop.
  void checked_backprop(const float* x, int64_t rows, const Targets& y, uint64_t row_offset, int64_t grad_rows,
                        bool split, int64_t slot);
  // Forward, loss, backward on a batch in the backend's memory; the loss sum and correct count go
  // to metric_loss_[slot] / metric_correct_[slot] (the backend's memory).
  void backprop(const float* x, int64_t rows, const Targets& y, uint64_t row_offset, int64_t grad_rows, bool split,
                CorrectKind kind, int64_t slot);
  void release_dataset_locked();
  std::function<void(double*, int64_t)> batchnorm_sum_;
  cpu::SumAcrossProcesses batchnorm_across_;  // calls batchnorm_sum_
  // The optimizer step after compute_gradients; each penalised parameter's penalty goes to
  // metric_penalty_[slot · n_params + i] (the backend's memory).
  void apply_gradients_locked(int64_t slot);
  static bool penalised(const Param& p);
  void reserve_metrics(int64_t steps);
  // The first `steps` slots of the metrics to the host (each output may be null); penalties: per
  // step, the penalised parameters' values added in parameter order.
  void fetch_metrics(int64_t steps, double* loss_sums, int64_t* correct, double* penalties);

  // One arena for every parameter's gradient (Param::grad is a view into it), each slice starting
  // on a 64-byte boundary: one allreduce moves a whole step's gradients.
  Buffer<float> grad_arena_;
  int64_t grad_arena_size_ = 0;
  std::vector<int64_t> grad_offsets_;
  bool gradients_ready_ = false;  // a compute_gradients awaits its apply_gradients
  uint64_t pending_stream_ = 0;    // rng_offset after the last compute_gradients' dropout streams

  Buffer<float> d_a_, d_b_, loss_rows_;
  // A device network's staging: the batch and its targets in device memory, outputs on the host.
  Buffer<float> x_device_, dense_y_device_, weights_device_, host_out_, host_loss_;
  Buffer<int64_t> labels_device_;
  Buffer<float> batch_x_, batch_dense_y_;  // train_steps' gathered batch
  Buffer<int64_t> batch_labels_;
  Buffer<float> batch_weights_;
  // keep_dataset's copy, the epoch order's indices of a chunk, and each step's metrics.
  Buffer<float> data_x_, data_dense_;
  Buffer<int64_t> data_labels_, order_device_, metric_correct_;
  Buffer<double> metric_loss_, metric_penalty_;
  Buffer<float> data_weights_;
  const float* data_host_w_ = nullptr;
  const float* data_host_x_ = nullptr;
  const void* data_host_y_ = nullptr;
  int64_t data_rows_ = 0;
  CorrectKind data_kind_ = CorrectKind::none;
  Buffer<double> penalty_blocks_;  // the backend's: weight_penalty_grad's chunk sums and total
  std::vector<SparseCapable*> sparse_layers_;  // Dense and Conv2D layers, in order
  std::vector<int64_t> sparse_layer_index_;     // position of sparse_layers_[j] in layers_
  mutable Optimizer optimizer_;  // mutable for sync_dense (scatters slots; no observable change)
  mutable std::mutex mu_;
};

}  // namespace nn
}  // namespace dropnet
