"""Services own transactions' contents; callers own commit (``session_scope``)."""
