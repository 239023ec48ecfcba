"""Fixes: apply a rule's libcst replacement as a unified diff or an atomic write (``apply``), and prove
by measurement that it saves energy without changing the outputs (``verify``)."""
