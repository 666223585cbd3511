"""Small apps that the integration tests serve with uvicorn (in a thread or a subprocess)."""
