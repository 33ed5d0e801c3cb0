"""repic: personalize multi-modal LLMs for image captioning with RePIC-style verifiable-reward RL.

The package is organised by stage (see README): ``rewards`` and ``tasks`` define the RePIC tasks,
``concepts`` holds the personal-concept database and retrieval, ``data`` builds training samples,
``models`` loads policies, ``train`` post-trains them, ``evaluate`` scores captions, ``cli`` is the
thin command-line front.
"""

__version__ = "0.1.0"
