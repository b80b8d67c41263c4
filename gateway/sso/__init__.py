"""Single sign-on with an OpenID Connect provider (docs/sso.md)."""

from .oidc import OidcError, OidcProvider, TokenRejected, looks_like_jwt

__all__ = [
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "OidcError",
    "OidcProvider",
    "TokenRejected",
    "looks_like_jwt",
]

# The console's session (HttpOnly: scripts never see it) and a login under way.
SESSION_COOKIE = "accord_session"
LOGIN_COOKIE = "accord_login"
