"""The web console: static files (plain ES modules, vendored libraries under `static/vendor/`)
served by the server itself at `/` and `/console/…`."""
