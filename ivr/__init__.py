"""Voice IVR backend of the French e-CPS support line."""


def create_app(test_config=None):
    """Build the Flask application (imported lazily so that importing `ivr` does nothing)."""
    from .web.app import create_app as factory

    return factory(test_config)
