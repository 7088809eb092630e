"""The technician's local console: a Flask app served over HTTPS inside the gateway process.

`webui.service` is its `linebridge.services` entry point; `webui.app` builds
the app over a `Console`; `webui.api` is the JSON API under /api/v1 that the
pages (`webui.pages`, `templates/`, `static/`) use. It sits on top of
`gateway` and `store`; nothing below imports it.
"""
