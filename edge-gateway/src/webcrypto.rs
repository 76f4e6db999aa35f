//! The core's signature port on WebCrypto (`crypto.subtle`), and the isolate's randomness. Imported
//! keys are kept per isolate by thumbprint, so a warm isolate verifies with one `subtle.verify` call.

use edgeshell_core::base64url;
use edgeshell_core::jwks::VerifyingKey;
use edgeshell_core::tokens::{Alg, SignatureError, SignatureVerifier};
use js_sys::{Array, Object, Reflect};
use std::cell::RefCell;
use std::collections::HashMap;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Crypto, CryptoKey, SubtleCrypto};

thread_local! {
    /// Imported keys by RFC 7638 thumbprint (a key's identity, whatever its `kid`).
    static IMPORTED: RefCell<HashMap<String, CryptoKey>> = RefCell::new(HashMap::new());
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

fn subtle() -> Result<SubtleCrypto, SignatureError> {
    Ok(crypto()?.subtle())
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

fn rs256() -> Result<Object, SignatureError> {
    object(&[("name", "RSASSA-PKCS1-v1_5".into()), ("hash", "SHA-256".into())])
}

async fn import(key: &VerifyingKey) -> Result<CryptoKey, SignatureError> {
    let thumbprint = key.thumbprint();
    if let Some(k) = IMPORTED.with(|m| m.borrow().get(&thumbprint).cloned()) {
        return Ok(k);
    }
    let data = object(&[
        ("kty", "RSA".into()),
        ("n", base64url::encode(key.modulus()).into()),
        ("e", base64url::encode(key.exponent()).into()),
        ("alg", "RS256".into()),
        ("ext", true.into()),
    ])?;
    let usages = Array::of1(&"verify".into());
    let promise = subtle()?
        .import_key_with_object("jwk", &data, &rs256()?, false, &usages)
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
        m.insert(thumbprint, imported.clone());
    });
    Ok(imported)
}

/// RS256 verification with WebCrypto.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebCryptoVerifier;

impl SignatureVerifier for WebCryptoVerifier {
    async fn verify(&self, key: &VerifyingKey, signing_input: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        match key.alg() {
            Alg::Rs256 => {}
        }
        let imported = import(key).await?;
        let promise = subtle()?
            .verify_with_object_and_u8_array_and_u8_array(&rs256()?, &imported, signature, signing_input)
            .map_err(|e| SignatureError::Backend(format!("{e:?}")))?;
        let valid = JsFuture::from(promise).await.map_err(|e| SignatureError::Backend(format!("{e:?}")))?;
        if valid.as_bool() == Some(true) {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
    }
}
