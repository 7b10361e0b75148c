"""Fine-tune methods, registered by name: how the model is wrapped before training and how it is saved.

A method is one module of this package (`full.py`, `lora.py`) holding a class decorated with
`@METHODS.register(name)`; the class has `wrap(model, cfg, base_dir)`, `save(trainer, staging)`,
`finalize(base_dir, staging)` and `adapter_dir(out_dir)`. Every module of the package loads on the first lookup,
so a new method is one new file here, and validating a config (`FinetuneConfig.method`, the sweep's `method` axis)
names every method without a second list.
"""

from __future__ import annotations

from radio.registry import Registry

METHODS: Registry[type] = Registry("fine-tune method", field="method", package=__name__)
