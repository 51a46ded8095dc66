"""Thin HTTP routers over `backend.api.services`."""
