from ._app import JSON_OPTION, app, emit, fail  # noqa: F401
