//! How a NATS client over WebSocket logs in, beyond what its CONNECT says, as
//! nats-server does it:
//!
//! - cookies named by `jwt_cookie`, `username_cookie`, `password_cookie` and
//!   `token_cookie` stand in for the CONNECT fields the client left out (a browser
//!   cannot set headers on a WebSocket, but it sends the page's cookies with the upgrade);
//! - `username`/`password`, `token` or `no_auth_user` inside `websocket {}` replace the
//!   server's own simple authentication for WebSocket clients (nats-server's "auth
//!   override"); the users and nkeys lists still apply;
//! - `authorization { timeout }` there is WebSocket clients' authentication timeout.

use std::sync::Arc;

use super::handshake::Request;
use crate::auth::{Auth, Override};

/// A WebSocket client's login material from its upgrade and `websocket {}`.
#[derive(Debug, Clone, Default)]
pub struct WsLogin {
    pub jwt: Option<String>,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub token: Option<String>,
    /// The authentication WebSocket clients get instead of the server's own.
    pub auth: Option<Arc<Auth>>,
    /// `authorization { timeout }` inside `websocket {}`: WebSocket clients' own time to
    /// send CONNECT (nats-server applies it whether or not the block overrides auth).
    pub auth_timeout: Option<std::time::Duration>,
}

impl WsLogin {
    pub fn new(req: &Request, o: &natrix_config::Options, base: &Auth) -> Self {
        let w = &o.websocket;
        let cookie = |name: &str| {
            (!name.is_empty())
                .then(|| req.cookie(name))
                .flatten()
                .map(str::to_owned)
        };
        Self {
            jwt: cookie(&w.jwt_cookie),
            user: cookie(&w.username_cookie),
            pass: cookie(&w.password_cookie),
            token: cookie(&w.token_cookie),
            auth: auth_override(o, base).map(Arc::new),
            auth_timeout: (!w.auth_timeout.is_zero()).then_some(w.auth_timeout),
        }
    }

    /// Fills what CONNECT left out (absent or empty) from the cookies.
    pub fn fill(
        &self,
        jwt: &mut Option<String>,
        user: &mut Option<String>,
        pass: &mut Option<String>,
        token: &mut Option<String>,
    ) {
        for (field, cookie) in [
            (jwt, &self.jwt),
            (user, &self.user),
            (pass, &self.pass),
            (token, &self.token),
        ] {
            if field.as_deref().is_none_or(str::is_empty) && cookie.is_some() {
                field.clone_from(cookie);
            }
        }
    }
}

/// The authentication of WebSocket clients when `websocket {}` has its own `username`,
/// `token` or `no_auth_user` (nats-server's `authOverride`): the server's users and
/// nkeys with the block's single user, token and no_auth_user in place of the
/// top-level ones.
pub fn auth_override(o: &natrix_config::Options, base: &Auth) -> Option<Auth> {
    let w = &o.websocket;
    base.with_override(Override {
        username: &w.username,
        password: &w.password,
        token: &w.token,
        no_auth_user: &w.no_auth_user,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Credentials;

    fn request(cookie: &str) -> Request {
        Request {
            method: "GET".into(),
            path: "/".into(),
            headers: vec![("Cookie".into(), cookie.into())],
        }
    }

    #[test]
    fn cookies_fill_what_connect_left_out() {
        let mut o = natrix_config::Options::default();
        o.websocket.username_cookie = "u".into();
        o.websocket.password_cookie = "p".into();
        o.websocket.token_cookie = "t".into();
        let login = WsLogin::new(&request("u=alice; p=s3cret; x=1"), &o, &Auth::default());
        let (mut jwt, mut user, mut pass, mut token) = (None, Some(String::new()), None, None);
        login.fill(&mut jwt, &mut user, &mut pass, &mut token);
        assert_eq!(user.as_deref(), Some("alice"));
        assert_eq!(pass.as_deref(), Some("s3cret"));
        // No cookie of that name was sent, and none is configured for the JWT.
        assert_eq!((jwt, token), (None, None));
        // CONNECT's own values win.
        let (mut user, mut pass) = (Some("bob".to_owned()), Some("pw".to_owned()));
        login.fill(&mut None, &mut user, &mut pass, &mut None);
        assert_eq!(
            (user.as_deref(), pass.as_deref()),
            (Some("bob"), Some("pw"))
        );
    }

    #[test]
    fn the_blocks_token_replaces_the_servers() {
        let mut o = natrix_config::Options::default();
        let base = Auth {
            token: Some("server".into()),
            ..Auth::default()
        };
        assert!(auth_override(&o, &base).is_none());
        o.websocket.token = "browser".into();
        let auth = auth_override(&o, &base).expect("an override");
        let login = |t: &str| {
            auth.authenticate(&Credentials {
                token: Some(t),
                ..Credentials::default()
            })
            .is_some()
        };
        assert!(login("browser"));
        assert!(!login("server"));
    }
}
