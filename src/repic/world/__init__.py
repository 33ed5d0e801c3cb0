"""The embedded world: everything that makes the whole RePIC loop run on a laptop CPU with nothing downloaded.

It depends on the library and is never imported by it (``tests/test_layering.py`` keeps it so):

- ``world_config``, ``synthetic``, ``silhouettes``, ``render``: the seeded synthetic concept world, its
  shapes and its renderer (exact boxes and per-pixel object labels);
- ``tokenizer``, ``tiny``: the tiny Qwen2.5-VL-architecture model and its locally trained tokenizer;
- ``pretrain_data``, ``pretrain``, ``probe``: the tiny base's pretraining rows and curriculum, and the probe
  that measures a model on a world's held-out concepts;
- ``demo``: ``repic demo``, the end-to-end run and its report;
- ``cli``: the commands above, added to ``repic`` through the ``repic.commands`` entry point.

Import from the submodules: importing this package loads nothing heavy.
"""
