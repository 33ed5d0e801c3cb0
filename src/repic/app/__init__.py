"""The personal captioning app (``repic app``): a gradio page over the captioning service.

``ui.build_app(service)`` returns the gradio ``Blocks``; the service (``repic.serve.CaptionService``) is the
same one ``repic serve`` runs, so the app and the HTTP API answer alike and edit the database alike.
Gradio is an optional extra (``repic[app]``), imported only here.
"""
