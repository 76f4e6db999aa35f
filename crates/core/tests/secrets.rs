//! Invariant 7 as a tidy check: no type that derives `Debug` holds a secret as raw text. A field or a
//! tuple variant named like a secret (`join_token`, `ticket`, `api_key`, `Token(..)`, ...) must have a
//! type whose `Debug` redacts (`edgeshell_core::secret::Secret`, a hash, a verified claims set), or the
//! type must write its own `Debug`. Every Rust file of the repository is parsed with `syn`.

mod support;

use quote::ToTokens;
use support::{rust_files, workspace};
use syn::visit::Visit;

/// Names that hold secrets: a field or variant whose lowercased name contains one of these.
const SECRET_WORDS: [&str; 8] = ["token", "ticket", "secret", "password", "passwd", "credential", "cookie", "private"];

/// Fields whose names contain a secret word but hold something public (checked by hand).
const KNOWN_PUBLIC: [&str; 5] = [
    // The kid of a published key that carried private members.
    "JwksError::PrivateKeyMaterial.0",
    // Why a key could not be used.
    "SignatureError::BadKey.0",
    // The names of the user's secrets a template takes, never their values.
    "Template.secrets",
    "TemplateOffer.secrets",
    // The name of the user's secret a template's clone authenticates with.
    "Template.repo_token",
];

/// Names that contain a secret word but name something public.
const NOT_SECRETS: [&str; 3] = [
    // The `iss` every token carries: a URL.
    "token_issuer",
    // How many tokens a rate-limit bucket holds.
    "tokens",
    // A setting's flag saying whether it is secret.
    "secret",
];

/// Whether a field or variant called `name` holds a secret.
fn names_a_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    if NOT_SECRETS.contains(&name.as_str()) || name.ends_with("_hash") || name.contains("public") {
        return false;
    }
    SECRET_WORDS.iter().any(|w| name.contains(w)) || name == "key" || name.ends_with("_key") || name.ends_with("key")
}

/// Whether `ty` keeps text or bytes as they are (so `Debug` prints them), seeing through `Option`,
/// `Vec`, `Box`, references and arrays.
fn is_raw(ty: &syn::Type) -> bool {
    let text = ty.to_token_stream().to_string().replace(' ', "");
    let mut inner = text.as_str();
    loop {
        let bare = inner
            .trim_start_matches('&')
            .trim_start_matches("'static")
            .trim_start_matches("'a")
            .trim_start_matches("'_");
        if matches!(bare, "String" | "str" | "Vec<u8>" | "[u8]" | "bytes::Bytes" | "Bytes" | "serde_json::Value")
            || (bare.starts_with("[u8;") && bare.ends_with(']'))
        {
            return true;
        }
        let stripped = ["Option<", "Vec<", "Box<", "Arc<", "std::sync::Arc<", "Cow<'static,", "Cow<'_,"]
            .iter()
            .find_map(|wrapper| bare.strip_prefix(wrapper).and_then(|rest| rest.strip_suffix('>')));
        match stripped {
            Some(rest) => inner = rest,
            None => return false,
        }
    }
}

fn derives_debug(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("derive")
            && attr.meta.to_token_stream().to_string().split([',', '(', ')', ' ', ':']).any(|w| w == "Debug")
    })
}

#[derive(Default)]
struct Offences {
    file: String,
    found: Vec<String>,
}

impl Offences {
    fn fields(&mut self, owner: &str, fields: &syn::Fields) {
        for (n, field) in fields.iter().enumerate() {
            let name = field
                .ident
                .as_ref()
                .map_or_else(|| owner.rsplit("::").next().unwrap_or(owner).to_owned(), |i| i.to_string());
            let shown = format!("{owner}.{}", field.ident.as_ref().map_or(n.to_string(), |i| i.to_string()));
            if names_a_secret(&name) && is_raw(&field.ty) && !KNOWN_PUBLIC.contains(&shown.as_str()) {
                self.found.push(format!("{}: {shown}: {}", self.file, field.ty.to_token_stream()));
            }
        }
    }
}

impl<'ast> Visit<'ast> for Offences {
    fn visit_item_struct(&mut self, item: &'ast syn::ItemStruct) {
        if derives_debug(&item.attrs) {
            self.fields(&item.ident.to_string(), &item.fields);
        }
        syn::visit::visit_item_struct(self, item);
    }

    fn visit_item_enum(&mut self, item: &'ast syn::ItemEnum) {
        if derives_debug(&item.attrs) {
            for variant in &item.variants {
                self.fields(&format!("{}::{}", item.ident, variant.ident), &variant.fields);
            }
        }
        syn::visit::visit_item_enum(self, item);
    }
}

fn offences_in(file: &str, source: &str) -> Vec<String> {
    let parsed = syn::parse_file(source).unwrap_or_else(|e| panic!("{file} does not parse: {e}"));
    let mut offences = Offences { file: file.to_owned(), found: Vec::new() };
    offences.visit_file(&parsed);
    offences.found
}

#[test]
fn no_debug_type_holds_a_raw_secret() {
    let root = workspace();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 100, "the walk found only {} files", files.len());
    let mut offences = Vec::new();
    for file in files {
        let shown = file.strip_prefix(&root).unwrap_or(&file).display().to_string();
        offences.extend(offences_in(&shown, &std::fs::read_to_string(&file).unwrap()));
    }
    assert!(
        offences.is_empty(),
        "these derive Debug and hold a secret as raw text; wrap it in edgeshell_core::secret::Secret \
         (or write a redacting Debug):\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_check_finds_raw_secrets_and_passes_wrapped_ones() {
    let raw = r#"
        #[derive(Debug, Clone)]
        pub struct StartRunner { pub session_id: String, pub join_token: String }
        #[derive(Clone, PartialEq, Debug)]
        enum Frame { Refresh { token: Option<String> }, Credential(String), Data(Vec<u8>) }
        mod inner { #[derive(Debug)] struct Config { internal_api_key: &'static str, private_jwk: Vec<u8> } }
        fn f() { #[derive(Debug)] struct Local { ticket: Box<str> } }
    "#;
    let found = offences_in("raw.rs", raw);
    assert_eq!(found.len(), 6, "{found:#?}");
    let fine = r#"
        #[derive(Debug)]
        pub struct StartRunner { pub session_id: String, pub join_token: Secret, pub token_issuer: String }
        #[derive(Debug)]
        enum Frame { Refresh { token: Option<Secret> }, Welcome { ticket_hash: [u8; 32] }, Data(Vec<u8>) }
        struct NoDebug { api_key: String }
        #[derive(Clone)]
        struct OwnDebug { password: String }
        impl std::fmt::Debug for OwnDebug { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("..") } }
        #[derive(Debug)]
        struct Public { public_key: String, kid: String, secret: bool }
    "#;
    assert_eq!(offences_in("fine.rs", fine), Vec::<String>::new());
}
