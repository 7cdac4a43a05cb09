"""transmri.models."""

__all__: list[str] = []
