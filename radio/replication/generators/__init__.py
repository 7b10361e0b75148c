"""Text-to-image generators behind one protocol, registered by name: `tiny` (a checkpoint trained by
`radio.replication.t2i`) and `sd` (a diffusers `StableDiffusionPipeline` from a local folder).

    gen = load_generator("tiny", "cache/t2i/step-001300")
    images = gen.generate(prompts, seeds, guidance_scale=3.0, num_inference_steps=30)  # uint8 (n, H, W, 3)

Image i depends only on (prompts[i], seeds[i]) and the settings, never on the batch it was generated in.
Importing this package does not import diffusers; `load_generator` does.
"""

from radio.replication.generators.base import (
    GENERATORS,
    GeneratorError,
    ImageGenerator,
    load_generator,
    register_generator,
)

__all__ = ["GENERATORS", "GeneratorError", "ImageGenerator", "load_generator", "register_generator"]
