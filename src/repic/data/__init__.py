"""Data: the synthetic concept world, collection folders, and RePIC training samples.

``synthetic`` generates a seeded world of named concepts and scenes (``world_config`` holds its
settings, ``silhouettes`` and ``render`` how it looks, ``describe`` the words for it); ``collection``
reads and writes the folder format that generators and importers produce and sample builders consume;
``samples`` reads and writes the official RePIC sample files. Import from the submodules: importing this
package loads nothing heavy.
"""
