"""The built-in transfer methods: CNN ones (:mod:`.cnn`) and linear ones (:mod:`.linear`).

Each is a plain function ``(MethodContext) -> MethodResult``; the table in
:mod:`transmri.transfer.registry` gives them their names.
"""

__all__: list[str] = []
