/// The run config's named choices that have no type elsewhere; their raw values are the config file's
/// and the command line's words.

/// Dtype of gradients on the wire: fp32, or bf16 (half the bytes; the owners sum in fp32).
public enum GradReduceDtype: String, CaseIterable, Sendable { case fp32, bf16 }

/// Activation recomputation: none (keep every block's activations for backward) or blocks (keep each
/// block's input only; backward recomputes the block: one more block forward per block, activation
/// memory of one block instead of all). Same bits either way.
public enum Recompute: String, CaseIterable, Sendable { case none, blocks }

/// Storage of a LoRA run's frozen base: fp32, or bf16 (`BF16BaseStore`: half the memory of the blocks,
/// one block decoded at a time; the weights are then the bf16-rounded ones).
public enum BaseDtype: String, CaseIterable, Sendable { case fp32, bf16 }

/// Matrix-multiply backend of a run: auto (measured once per machine: `KernelChoice`, `KernelCache`) or
/// one `GemmBackend` by name.
public enum GemmBackendChoice: String, CaseIterable, Sendable { case auto, openblas, onednn }

/// Where a run's metrics go besides metrics.jsonl: nowhere, or TensorBoard event files in
/// RUN_DIR/tensorboard (`TensorBoardWriter`).
public enum ReportTo: String, CaseIterable, Sendable { case none, tensorboard }
