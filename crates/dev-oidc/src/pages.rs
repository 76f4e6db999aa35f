//! The sign-in page of the authorization-code flow with PKCE: the browser client sends the person here,
//! they type a dev user name, and are sent back to the client with a one-time code in the query, which
//! the client redeems at `POST /token` with its PKCE verifier. Only loopback redirect URIs are accepted,
//! so the page cannot hand codes to another site; only `S256` challenges, so a code is useless without
//! the verifier that never left the client.

use crate::grants::{is_challenge, CodeRequest, SignedIn};
use edgeshell_core::api_error::ErrorCode;
use edgeshell_platform::http::{respond, Reply};
use std::collections::BTreeMap;

/// The parameters both steps carry.
struct Authorize {
    redirect_uri: String,
    state: String,
    nonce: String,
    scope: String,
    challenge: String,
}

fn params(encoded: &[u8]) -> BTreeMap<String, String> {
    form_urlencoded::parse(encoded).into_owned().collect()
}

fn check(client_id: &str, p: &BTreeMap<String, String>) -> Result<Authorize, String> {
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    if get("client_id") != client_id {
        return Err(format!("unknown client_id; this issuer serves {client_id:?}"));
    }
    if get("response_type") != "code" {
        return Err("only response_type=code (the authorization-code flow with PKCE) is supported".into());
    }
    let redirect_uri = get("redirect_uri");
    if !is_loopback(&redirect_uri) {
        return Err("redirect_uri must be an http(s) URL on 127.0.0.1, [::1] or localhost".into());
    }
    if get("code_challenge_method") != "S256" || !is_challenge(&get("code_challenge")) {
        return Err("PKCE is required: code_challenge_method=S256 and a 43-character code_challenge".into());
    }
    let scope = get("scope");
    if !scope.split(' ').any(|s| s == "openid") {
        return Err("scope must include openid".into());
    }
    if get("response_mode").as_str() != "" && get("response_mode") != "query" {
        return Err("only response_mode=query is supported".into());
    }
    Ok(Authorize { redirect_uri, state: get("state"), nonce: get("nonce"), scope, challenge: get("code_challenge") })
}

fn is_loopback(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("http://").or_else(|| uri.strip_prefix("https://")) else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    matches!(host, "127.0.0.1" | "::1" | "localhost")
}

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// A refusal shown to the person at the browser: text, with the status and code of the error table.
fn bad(message: &str) -> Reply {
    let code = ErrorCode::BadRequest;
    respond(code.status(), "text/plain; charset=utf-8", format!("sign-in refused ({}): {message}\n", code.name()))
}

pub(crate) fn authorize_page(client_id: &str, query: &str) -> Reply {
    let p = params(query.as_bytes());
    let a = match check(client_id, &p) {
        Ok(a) => a,
        Err(m) => return bad(&m),
    };
    let hidden = [
        ("client_id", client_id),
        ("response_type", "code"),
        ("redirect_uri", a.redirect_uri.as_str()),
        ("state", a.state.as_str()),
        ("nonce", a.nonce.as_str()),
        ("scope", a.scope.as_str()),
        ("code_challenge", a.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| format!(r#"<input type="hidden" name="{k}" value="{}">"#, escape(v)))
    .collect::<String>();
    let page = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>edgeshell dev sign-in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px system-ui,sans-serif;background:#0f1419;color:#e6e1cf;display:grid;place-items:center;height:100vh;margin:0}}
form{{background:#1c232b;padding:2rem;border-radius:12px;min-width:18rem}}h1{{font-size:1.2rem;margin-top:0}}
input[type=text]{{width:100%;padding:.6rem;border-radius:6px;border:1px solid #3d4752;background:#0f1419;color:inherit;box-sizing:border-box}}
button{{margin-top:1rem;width:100%;padding:.6rem;border:0;border-radius:6px;background:#39bae6;color:#0f1419;font-weight:600;cursor:pointer}}
p{{color:#8a9199;font-size:.85rem}}</style></head><body>
<form method="post" action="/authorize"><h1>Sign in to edgeshell (dev)</h1>
<label for="user">Dev user name</label><input id="user" name="user" type="text" value="dev" autofocus required
 pattern="[A-Za-z0-9._\-]{{1,64}}">{hidden}<button type="submit">Sign in</button>
<p>Local development issuer: any name signs in.</p></form></body></html>"#
    );
    respond(200, "text/html; charset=utf-8", page)
}

/// The page's form: a valid dev user name gets a code, sent to the client in the redirect's query.
pub(crate) fn authorize_submit(client_id: &str, body: &[u8], now: u64, issue: impl Fn(CodeRequest) -> String) -> Reply {
    let p = params(body);
    let a = match check(client_id, &p) {
        Ok(a) => a,
        Err(m) => return bad(&m),
    };
    let user = p.get("user").map(|u| u.trim().to_owned()).unwrap_or_default();
    if let Err(m) = crate::server::check_user(&user) {
        return bad(&m);
    }
    let signed_in = SignedIn { user, scope: a.scope, auth_time: now, nonce: Some(a.nonce).filter(|n| !n.is_empty()) };
    let code = issue(CodeRequest {
        client_id: client_id.to_owned(),
        redirect_uri: a.redirect_uri.clone(),
        challenge: a.challenge,
        signed_in,
    });
    let answer = form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &code)
        .append_pair("state", &a.state)
        .finish();
    let base = a.redirect_uri.split('#').next().unwrap_or_default();
    let joiner = if base.contains('?') { '&' } else { '?' };
    let mut response = respond(303, "text/plain; charset=utf-8", "");
    match format!("{base}{joiner}{answer}").parse() {
        Ok(location) => {
            response.headers_mut().insert("location", location);
            response
        }
        Err(_) => bad("redirect_uri is not a valid header value"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_redirects() {
        for ok in ["http://127.0.0.1:8787/", "http://localhost:8787/app?x=1", "https://[::1]:9/cb"] {
            assert!(is_loopback(ok), "{ok}");
        }
        for bad in [
            "http://evil.com/",
            "http://127.0.0.1.evil.com/",
            "http://evil.com@127.0.0.1/",
            "http://127.0.0.1@evil.com/",
            "javascript:alert(1)",
            "//127.0.0.1/",
        ] {
            assert!(!is_loopback(bad), "{bad}");
        }
    }

    #[test]
    fn escaping() {
        assert_eq!(escape(r#""><script>"#), "&quot;&gt;&lt;script&gt;");
    }
}
