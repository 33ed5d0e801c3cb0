"""Data: collection folders and RePIC training samples.

``collection`` reads and writes the folder format that the synthetic world (``repic.world.synthetic``) and
the importers produce and the sample builders consume; ``describe`` holds the words for a concept's look;
``tasks`` builds the RePIC tasks; ``samples`` reads and writes the official RePIC sample files; ``importers``
turns photo folders, a RAP database or an official training file into a collection. Import from the
submodules: importing this package loads nothing heavy.
"""
