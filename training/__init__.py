"""Training: data, model, training, evaluation and export of the defect classifier."""

import os

# TensorFlow's CPU allocator hands every tensor to malloc, and glibc serves the big ones (a batch of
# feature maps at the working size is tens of MB) with a fresh mmap that is unmapped again at free:
# each training step then faults its activations in page by page. Measured on 2 cores: a third of
# the CPU time in the kernel, and an epoch at 368x568 nearly twice as long (docs/training.md,
# "Training speed: the CPU allocator"). TensorFlow's own BFC allocator keeps the memory and reuses
# it. Set here, before anything imports TensorFlow; TF_CPU_ALLOCATOR_USE_BFC=false in the
# environment turns it off.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
