"""transmri.datasets."""

__all__: list[str] = []
