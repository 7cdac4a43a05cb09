"""transmri.evaluation."""

__all__: list[str] = []
