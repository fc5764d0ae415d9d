"""
layers, networks, optimizers
"""
from __future__ import annotations
import numpy
import numpy.typing
import typing
__all__: list[str] = ['Network', 'test_devices']
class Network:
    """
    A sequential network whose training step (forward, loss, backward, optimizer update) runs in one
    native call. See dropnet.models for the user-facing API.
    
    Network(layers: list[dict], input_shape: tuple[int, ...], loss: str, seed: int, device: str = "cpu")
    device: "cpu" or "cuda:<index>" (dropnet.cuda.parse_device gives these).
    """
    def __init__(self, layers: typing.Any, input_shape: typing.Any, loss: str, seed: typing.Any = 0, device: str = 'cpu') -> None:
        ...
    def __repr__(self) -> str:
        ...
    def apply_gradients(self) -> float:
        """
        Second half of train_step: weight penalties' gradients, the optimizer update from grad_buffer, rng_offset advanced past the last compute_gradients' dropout streams. Returns the penalty value.
        """
    def compute_gradients(self, x: typing.Any, y: typing.Any, row_offset: typing.Any = 0, grad_rows: typing.Any = None, sample_weight: typing.Any = None) -> tuple[float, int]:
        """
        First half of train_step: forward (dropout element indices counted from global row row_offset), loss and backward into grad_buffer, each gradient that of (sum of the rows' weighted losses) / grad_rows (default: the rows of x). Every layer runs dense. Returns (loss_sum, correct); correct is -1 when targets have no class. Parameters, optimizer state and rng_offset are unchanged.
        """
    def evaluate(self, x: typing.Any, y: typing.Any, batch_size: typing.Any = 256, sample_weight: typing.Any = None) -> tuple:
        """
        Inference over x in batches: (sum of per-sample losses without penalties, number of correct argmax predictions; binary_crossentropy: correct outputs). With sample_weight (float32 (N,)): (sum of weighted losses, weighted count of correct predictions, sum of the weights).
        """
    def forward(self, x: typing.Any, training: bool = False, stream_offset: typing.Any = None, bn_training: bool = False) -> numpy.typing.NDArray[numpy.float32]:
        """
        Outputs float32 (B, n_out). training=True applies dropout with streams from stream_offset (the network's counter is left alone) or, when None, from the counter (which advances). Batch norm uses its running statistics unless bn_training=True (batch statistics, running ones updated as in a training step); so training=True alone is Monte Carlo dropout.
        """
    def get_grads(self) -> list:
        ...
    def get_mask(self, param_index: typing.Any) -> typing.Any:
        ...
    def get_optimizer_config(self) -> dict:
        ...
    def get_optimizer_state(self) -> dict:
        ...
    def get_params(self) -> list:
        ...
    def get_state(self) -> list:
        """
        Non-trainable state (copies): for each batch_norm layer in order, running_mean then running_var (C,).
        """
    def keep_dataset(self, x: typing.Any, y: typing.Any) -> bool:
        """
        Copy x and y (labels or dense targets) to the network's device, checked once, so that train_steps on these very arrays (no sample weights) gathers its batches there and fetches its losses and correct counts once per call. False on the CPU (nothing copied). Raises when the device has no room; the network is unchanged. Held until release_dataset or the next keep_dataset.
        """
    def layer_info(self) -> list:
        ...
    def release_dataset(self) -> None:
        """
        Free the device copy made by keep_dataset.
        """
    def set_batchnorm_sync(self, sum: typing.Any) -> None:
        """
        Synchronised batch norm for compute_gradients: sum(a) must replace the float64 array a by its sum over the processes, in place (e.g. an MPI allreduce); batch statistics then cover every process's batch. None: each process uses its own batch (the default).
        """
    def set_mask(self, param_index: typing.Any, mask: typing.Any) -> None:
        """
        0/1 float32 mask of params[param_index]'s shape (None removes it): the weight, its gradient and its optimizer state are zeroed where the mask is 0, now and after every step.
        """
    def set_max_norm(self, param_index: typing.Any, max_norm: typing.SupportsFloat | typing.SupportsIndex) -> None:
        """
        Max-norm constraint on the weight of a dense or conv2d layer (0 removes it): after each update every row of W (a unit's incoming weights, a filter) whose L2 norm exceeds max_norm is scaled back to it.
        """
    def set_optimizer(self, config: typing.Any) -> None:
        ...
    def set_optimizer_slot(self, slot: typing.Any, values: typing.Any) -> None:
        """
        Replace optimizer slot `slot` (get_optimizer_state()['slots'] order) with `values`, of its parameter's shape; masked entries become 0. set_optimizer_step sets the step count.
        """
    def set_optimizer_state(self, state: typing.Any) -> None:
        ...
    def set_optimizer_step(self, step: typing.Any) -> None:
        ...
    def set_params(self, params: typing.Any) -> None:
        ...
    def set_sparse_mode(self, param_index: typing.Any, mode: typing.Any) -> None:
        """
        How the dense or conv2d layer owning params[param_index] (its weight or bias) runs once its weight has a mask: 'sparse' (compressed weight in forward, backward and the optimizer), 'dense' (masked dense GEMM) or 'auto' (sparse when the mask's density is below the break-even measured for the layer's shape and batch size).
        """
    def set_state(self, state: typing.Any) -> None:
        """
        Replace the batch norm running statistics (get_state's order and shapes).
        """
    def set_trainable(self, param_index: typing.Any, trainable: bool) -> None:
        """
        Freeze (False) or unfreeze a parameter: the optimizer and weight penalties leave a frozen one alone.
        """
    def sparse_info(self) -> list:
        """
        Per dense and conv2d layer: layer index, weight param_index, density of its mask (1.0 without one), mode ('auto'|'sparse'|'dense'), sparse (whether the last step or forward ran it sparse), break_even_density (training step) / inference_break_even_density (forward) / break_even_batch / dense_seconds (seconds of a dense training step of the layer): the calibration 'auto' used last; None before it ran.
        """
    def train_step(self, x: typing.Any, y: typing.Any, sample_weight: typing.Any = None) -> float:
        """
        One training step on a batch: x float32 (B, *input_shape), y int64 (B,) labels or float32 (B, n_out), sample_weight float32 (B,) or None. Returns the batch's mean loss (sum of weighted losses / B) plus weight penalties.
        """
    def train_steps(self, x: typing.Any, y: typing.Any, order: typing.Any, batch_size: typing.SupportsInt | typing.SupportsIndex, step0: typing.SupportsInt | typing.SupportsIndex, step1: typing.SupportsInt | typing.SupportsIndex, sample_weight: typing.Any = None) -> tuple[numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.int64]]:
        """
        Training steps [step0, step1) of an epoch over the whole dataset: step s trains on rows order[s*batch_size : (s+1)*batch_size] of x and y (order None: rows in sequence), gathered natively; exactly train_step on each batch. Returns (losses float64, correct int64), one entry per step.
        """
    @property
    def device(self) -> str:
        """
        Where the network's parameters live and its steps run: 'cpu' or 'cuda:<index>'.
        """
    @property
    def grad_buffer(self) -> numpy.typing.NDArray[numpy.float32]:
        """
        Every parameter's gradient in one flat float32 array (a writable view, no copy): parameter i at grad_offsets[i] with get_params()[i].size entries; padding between them is 0. Sum it across processes in place between compute_gradients and apply_gradients.
        """
    @property
    def grad_offsets(self) -> list:
        """
        Start of each parameter's gradient in grad_buffer.
        """
    @property
    def input_shape(self) -> tuple:
        ...
    @property
    def last_batch_correct(self) -> int:
        """
        Correct argmax predictions in the last train_step's batch (dropout on); -1 without classes.
        """
    @property
    def lr(self) -> float:
        ...
    @lr.setter
    def lr(self, arg1: typing.Any) -> None:
        ...
    @property
    def n_optimizer_slots(self) -> int:
        ...
    @property
    def output_shape(self) -> tuple:
        ...
    @property
    def param_shapes(self) -> list:
        """
        Shapes of get_params()'s arrays, without copying them.
        """
    @property
    def rng_offset(self) -> int:
        ...
    @rng_offset.setter
    def rng_offset(self, arg1: typing.Any) -> None:
        ...
    @property
    def seed(self) -> int:
        ...
    @property
    def sigmoid_fused(self) -> bool:
        """
        True when the final sigmoid is fused into binary_crossentropy (forward returns probabilities, training works on logits)
        """
    @property
    def softmax_fused(self) -> bool:
        """
        True when the final softmax is fused into the crossentropy loss (forward returns probabilities, training works on logits)
        """
test_devices: tuple[str, ...]  # ('_sim',) in builds with the C++ tests, () in release builds
