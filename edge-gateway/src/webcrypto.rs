//! The core's signature port on WebCrypto (`crypto.subtle`), and the isolate's randomness. Imported
//! keys are kept per isolate by their public members, and `subtle` and the algorithm object are made
//! once per isolate, so a warm isolate verifies with one `subtle.verify` call and nothing else crosses
//! into JavaScript (the token check measured 0.10-0.14 ms per attach when each check computed the key's
//! thumbprint and rebuilt both).

use edgeshell_core::base64url;
use edgeshell_core::jwks::VerifyingKey;
use edgeshell_core::tokens::{Alg, SignatureError, SignatureVerifier};
use js_sys::{Array, Object, Reflect};
use std::cell::RefCell;
use std::collections::HashMap;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Crypto, CryptoKey, SubtleCrypto};

/// A key's identity, whatever its `kid`: its public members (modulus, exponent).
type KeyId = (Vec<u8>, Vec<u8>);

thread_local! {
    /// Imported keys by their public members.
    static IMPORTED: RefCell<HashMap<KeyId, CryptoKey>> = RefCell::new(HashMap::new());
    /// `crypto.subtle` and the RS256 algorithm object, made on first use.
    static RS256: RefCell<Option<(SubtleCrypto, Object)>> = const { RefCell::new(None) };
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

/// The isolate's `crypto.subtle` and RS256 algorithm object.
fn rs256_subtle() -> Result<(SubtleCrypto, Object), SignatureError> {
    if let Some(made) = RS256.with(|c| c.borrow().clone()) {
        return Ok(made);
    }
    let made = (crypto()?.subtle(), rs256()?);
    RS256.with(|c| *c.borrow_mut() = Some(made.clone()));
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

fn rs256() -> Result<Object, SignatureError> {
    object(&[("name", "RSASSA-PKCS1-v1_5".into()), ("hash", "SHA-256".into())])
}

async fn import(key: &VerifyingKey) -> Result<CryptoKey, SignatureError> {
    let found = IMPORTED.with(|m| {
        m.borrow().iter().find(|((n, e), _)| n == key.modulus() && e == key.exponent()).map(|(_, k)| k.clone())
    });
    if let Some(k) = found {
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
    let (subtle, rs256) = rs256_subtle()?;
    let promise = subtle
        .import_key_with_object("jwk", &data, &rs256, false, &usages)
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
        m.insert((key.modulus().to_vec(), key.exponent().to_vec()), imported.clone());
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
        let (subtle, rs256) = rs256_subtle()?;
        let promise = subtle
            .verify_with_object_and_u8_array_and_u8_array(&rs256, &imported, signature, signing_input)
            .map_err(|e| SignatureError::Backend(format!("{e:?}")))?;
        let valid = JsFuture::from(promise).await.map_err(|e| SignatureError::Backend(format!("{e:?}")))?;
        if valid.as_bool() == Some(true) {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
    }
}
