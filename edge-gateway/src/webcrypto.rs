//! The core's signature port on WebCrypto (`crypto.subtle`): RS256 (attach tokens) and ES256 (runner
//! join tokens), and the isolate's randomness. Imported keys are kept per isolate by their public
//! members, and `subtle` and the algorithm objects are made once per isolate, so a warm isolate verifies
//! with one `subtle.verify` call and nothing else crosses into JavaScript (the token check measured
//! 0.10-0.14 ms per attach when each check computed the key's thumbprint and rebuilt both).

use edgeshell_core::base64url;
use edgeshell_core::jwks::{PublicKey, VerifyingKey};
use edgeshell_core::tokens::{SignatureError, SignatureVerifier};
use js_sys::{Array, Object, Reflect};
use std::cell::RefCell;
use std::collections::HashMap;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Crypto, CryptoKey, SubtleCrypto};

/// `crypto.subtle` and the algorithm objects, made once per isolate.
#[derive(Clone)]
struct Subtle {
    subtle: SubtleCrypto,
    /// RSASSA-PKCS1-v1_5 with SHA-256: import and verify.
    rs256: Object,
    /// ECDSA on P-256: import.
    p256: Object,
    /// ECDSA with SHA-256: verify.
    es256: Object,
}

thread_local! {
    /// Imported keys by their public members (a key's identity, whatever its `kid`).
    static IMPORTED: RefCell<HashMap<PublicKey, CryptoKey>> = RefCell::new(HashMap::new());
    static SUBTLE: RefCell<Option<Subtle>> = const { RefCell::new(None) };
}

fn crypto() -> Result<Crypto, SignatureError> {
    // workerd's global object is not an instance of WorkerGlobalScope, so read the property directly.
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
        .map_err(|e| SignatureError::Backend(format!("no crypto: {e:?}")))?;
    if crypto.is_undefined() {
        return Err(SignatureError::Backend("globalThis.crypto is undefined".into()));
    }
    Ok(crypto.unchecked_into())
}

/// The isolate's `crypto.subtle` and algorithm objects.
fn subtle() -> Result<Subtle, SignatureError> {
    if let Some(made) = SUBTLE.with(|c| c.borrow().clone()) {
        return Ok(made);
    }
    let made = Subtle {
        subtle: crypto()?.subtle(),
        rs256: object(&[("name", "RSASSA-PKCS1-v1_5".into()), ("hash", "SHA-256".into())])?,
        p256: object(&[("name", "ECDSA".into()), ("namedCurve", "P-256".into())])?,
        es256: object(&[("name", "ECDSA".into()), ("hash", "SHA-256".into())])?,
    };
    SUBTLE.with(|c| *c.borrow_mut() = Some(made.clone()));
    Ok(made)
}

/// `n` random bytes from the platform's CSPRNG.
pub fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // Workers always provide crypto.getRandomValues; failing here would mean no secure randomness at
    // all, and tickets or ids must never be made without it.
    crypto()
        .and_then(|c| {
            c.get_random_values_with_u8_array(&mut bytes).map_err(|e| SignatureError::Backend(format!("{e:?}")))
        })
        .expect("crypto.getRandomValues is available in Workers");
    bytes
}

fn object(pairs: &[(&str, JsValue)]) -> Result<Object, SignatureError> {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &JsValue::from_str(k), v).map_err(|e| SignatureError::Backend(format!("{e:?}")))?;
    }
    Ok(o)
}

async fn import(key: &VerifyingKey, subtle: &Subtle) -> Result<CryptoKey, SignatureError> {
    if let Some(k) = IMPORTED.with(|m| m.borrow().get(key.public()).cloned()) {
        return Ok(k);
    }
    let (data, algorithm) = match key.public() {
        PublicKey::Rsa { n, e } => (
            object(&[
                ("kty", "RSA".into()),
                ("n", base64url::encode(n).into()),
                ("e", base64url::encode(e).into()),
                ("alg", "RS256".into()),
                ("ext", true.into()),
            ])?,
            &subtle.rs256,
        ),
        PublicKey::P256 { x, y } => (
            object(&[
                ("kty", "EC".into()),
                ("crv", "P-256".into()),
                ("x", base64url::encode(x).into()),
                ("y", base64url::encode(y).into()),
                ("ext", true.into()),
            ])?,
            &subtle.p256,
        ),
    };
    let usages = Array::of1(&"verify".into());
    // WebCrypto refuses a point off the curve here, before any verification.
    let promise = subtle
        .subtle
        .import_key_with_object("jwk", &data, algorithm, false, &usages)
        .map_err(|e| SignatureError::BadKey(format!("{e:?}")))?;
    let imported: CryptoKey = JsFuture::from(promise)
        .await
        .map_err(|e| SignatureError::BadKey(format!("{e:?}")))?
        .dyn_into()
        .map_err(|_| SignatureError::Backend("importKey returned no CryptoKey".into()))?;
    IMPORTED.with(|m| {
        let mut m = m.borrow_mut();
        // Key sets are small (at most 16 keys); an isolate that saw many rotations starts over.
        if m.len() >= 64 {
            m.clear();
        }
        m.insert(key.public().clone(), imported.clone());
    });
    Ok(imported)
}

/// RS256 and ES256 verification with WebCrypto.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebCryptoVerifier;

impl SignatureVerifier for WebCryptoVerifier {
    async fn verify(&self, key: &VerifyingKey, signing_input: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let subtle = subtle()?;
        let imported = import(key, &subtle).await?;
        let algorithm = match key.public() {
            PublicKey::Rsa { .. } => &subtle.rs256,
            // JWS's ES256 signature is `r || s`, the encoding WebCrypto's ECDSA takes.
            PublicKey::P256 { .. } => &subtle.es256,
        };
        let promise = subtle
            .subtle
            .verify_with_object_and_u8_array_and_u8_array(algorithm, &imported, signature, signing_input)
            .map_err(|e| SignatureError::Backend(format!("{e:?}")))?;
        let valid = JsFuture::from(promise).await.map_err(|e| SignatureError::Backend(format!("{e:?}")))?;
        if valid.as_bool() == Some(true) {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
    }
}
