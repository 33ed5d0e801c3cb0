"""The field's personalization benchmarks, read into one format and scored one right way (``repic bench``).

``rows`` is the format (a benchmark folder: concepts, task rows, manifest); ``formats`` reads each source
layout into it (``repic bench import``); ``run`` answers a folder's rows with a model, batched and
resumable (``repic bench run``); ``score`` scores the answers (``repic bench score``). The sources and the
flaws of their own scoring scripts are in ``docs/bench/``.
"""
