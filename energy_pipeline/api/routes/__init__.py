"""One router per area; :func:`energy_pipeline.api.app.create_app` includes them all."""
